//! Playback and mix commands: start, stop and retrigger sounds; gains; push-to-talk; devices.

use std::time::Instant;

use bevy_ecs::prelude::*;

use super::components::{GuildGain, Playback, Target, VoiceConn};
use super::mix::{MicInput, MixSettings, MonitorOutput};
use super::{Command, Inbox, PlayRequest, Retrigger};
use voxboard_audio::mixer::Cursor;

/// Takes the playback and mix commands out of the inbox and applies them; leaves the rest.
pub fn ingest_playback_commands(
    mut commands: Commands,
    mut inbox: ResMut<Inbox>,
    mut playbacks: Query<(Entity, &mut Playback)>,
    mut guilds: Query<(&VoiceConn, &mut GuildGain)>,
    mut settings: ResMut<MixSettings>,
    mut mic: ResMut<MicInput>,
    mut monitor: ResMut<MonitorOutput>,
) {
    let queued = std::mem::take(&mut inbox.commands);
    for command in queued {
        match command {
            Command::Play(request) => play(&mut commands, &mut playbacks, request),
            Command::Stop { id } => {
                for (_, mut p) in &mut playbacks {
                    if p.id == id {
                        p.cursor.stop();
                    }
                }
            }
            Command::StopSound { sound } => {
                for (_, mut p) in &mut playbacks {
                    if p.sound == Some(sound) {
                        p.cursor.stop();
                    }
                }
            }
            Command::StopAll => playbacks.iter_mut().for_each(|(_, mut p)| p.cursor.stop()),
            Command::SetMasterGain(g) => settings.master_gain = sanitize_gain(g),
            Command::SetGuildGain { guild_id, gain } => {
                for (conn, mut g) in &mut guilds {
                    if conn.guild_id == guild_id {
                        g.0 = sanitize_gain(gain);
                    }
                }
            }
            Command::PushToTalk(held) => settings.push_to_talk = held,
            Command::SetMicGain(g) => settings.mic_gain = sanitize_gain(g),
            Command::SetMicTarget(t) => settings.mic_target = t,
            Command::SetMonitor { gain, include_mic } => {
                settings.monitor_gain = sanitize_gain(gain);
                settings.monitor_includes_mic = include_mic;
            }
            Command::SetMic(source) => mic.set_source(source),
            Command::SetMonitorSink(sink) => monitor.set_sink(sink),
            other => inbox.commands.push(other),
        }
    }
}

/// Gains are linear, 0..=4 (+12 dB); anything else (NaN from a broken config) becomes 1.
fn sanitize_gain(g: f32) -> f32 {
    if g.is_finite() {
        g.clamp(0.0, 4.0)
    } else {
        1.0
    }
}

fn play(
    commands: &mut Commands,
    playbacks: &mut Query<(Entity, &mut Playback)>,
    request: PlayRequest,
) {
    let PlayRequest {
        id,
        sound,
        source,
        target,
        gain,
        looped,
        retrigger,
        choke,
        shape,
        done,
    } = request;
    if let Some(sound) = sound {
        let mut playing = playbacks
            .iter_mut()
            .filter(|(_, p)| p.sound == Some(sound) && p.cursor.fade_out.is_none())
            .peekable();
        if playing.peek().is_some() {
            match retrigger {
                Retrigger::Overlap => {}
                Retrigger::Ignore => return finish(done),
                Retrigger::Stop => {
                    playing.for_each(|(_, mut p)| p.cursor.stop());
                    return finish(done);
                }
                Retrigger::Restart => playing.for_each(|(_, mut p)| p.cursor.stop()),
            }
        }
    }
    if let Some(group) = choke {
        // Newest wins: the others of its group fade out as it starts.
        playbacks
            .iter_mut()
            .filter(|(_, p)| p.choke == Some(group))
            .for_each(|(_, mut p)| p.cursor.stop());
    }
    commands.spawn((
        Playback {
            id,
            sound,
            cursor: Cursor::open(source, sanitize_gain(gain), looped, &shape),
            choke,
            done,
            issued_at: Instant::now(),
            first_sent: false,
        },
        target_or_all(target),
    ));
}

fn target_or_all(target: Target) -> Target {
    match target {
        Target::Guilds(g) if g.is_empty() => Target::All,
        t => t,
    }
}

fn finish(done: Option<std::sync::mpsc::Sender<()>>) {
    if let Some(d) = done {
        let _ = d.send(());
    }
}
