//! The status snapshot the UI and CLI read: published a few times a second, never blocking.

use std::time::Duration;

use bevy_ecs::prelude::*;
use tokio::sync::watch;

use super::MainGatewayState;
use super::components::*;

/// One guild connection as a panel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnStatus {
    pub guild_id: u64,
    pub channel_id: u64,
    pub phase: Phase,
    /// Set when the phase is failed or disconnected: why, in plain words.
    pub reason: Option<String>,
    pub endpoint: Option<String>,
    pub mode: Option<&'static str>,
    pub speaking: bool,
    pub packets: u64,
    pub bytes: u64,
    pub heartbeat_rtt: Option<Duration>,
    pub last_close: Option<u16>,
    /// Why a voice connection attempt last failed (refused, TLS, timeout), if one ever did.
    pub last_error: Option<String>,
    pub resumes: u32,
    pub rejoins: u32,
    pub moves: u32,
    pub dave: super::dave::DaveStatus,
    /// From the last play command to the first packet carrying it.
    pub last_play_latency: Option<Duration>,
    /// Audio frames not sent because DAVE had no keys (never sent unencrypted).
    pub dave_dropped_frames: u64,
    /// In a stage's audience: why the bot cannot speak yet ("stage: suppressed — …").
    pub stage: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub gateway_ready: bool,
    pub gateway_error: Option<String>,
    /// Why the main gateway is still retrying (cannot connect: DNS, TLS, refused, …).
    pub gateway_trouble: Option<String>,
    pub gateway_reconnects: u32,
    /// The bot's user id, once READY arrived.
    pub user_id: Option<u64>,
    /// Guilds and their voice channels, for the pickers.
    pub guilds: Vec<GuildInfo>,
    pub connections: Vec<ConnStatus>,
    pub playing: Vec<PlayingStatus>,
    /// Microphone peak level of the last frame (0..=1), and whether a microphone is attached.
    pub mic_level: f32,
    pub mic_present: bool,
    pub push_to_talk: bool,
    /// How often the engine was rebuilt after an internal error, and the last one, in words.
    pub engine_restarts: u32,
    pub engine_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GuildInfo {
    pub id: u64,
    pub name: String,
    /// (channel id, name, is a stage)
    pub voice_channels: Vec<(u64, String, bool)>,
}

/// A sound that is playing, for progress bars.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayingStatus {
    pub id: u64,
    pub sound: Option<u64>,
    /// 0..=1
    pub progress: f32,
    /// For a sound streamed from disk: ticks its ring ran dry (each played a gap of silence).
    pub underruns: u64,
}

#[derive(Resource)]
pub struct StatusOut {
    tx: watch::Sender<Status>,
    ticks: u32,
    engine_restarts: u32,
    engine_error: Option<String>,
}

impl Default for StatusOut {
    fn default() -> Self {
        Self {
            tx: watch::channel(Status::default()).0,
            ticks: 0,
            engine_restarts: 0,
            engine_error: None,
        }
    }
}

impl StatusOut {
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.tx.subscribe()
    }

    /// The supervisor rebuilt the engine: count it and keep the reason for the status.
    pub fn engine_restarted(&mut self, why: String) {
        self.engine_restarts += 1;
        self.engine_error = Some(why);
    }
}

/// Every 5th tick (100 ms), and at once when a phase changes; receivers are woken only when
/// something changed.
const PUBLISH_EVERY: u32 = 5;

#[allow(clippy::type_complexity)]
pub fn publish_status(
    mut out: ResMut<StatusOut>,
    gateway: Res<MainGatewayState>,
    mic: Res<super::mix::MicInput>,
    mix: Res<super::mix::MixSettings>,
    conns: Query<(
        &VoiceConn,
        Ref<ConnPhase>,
        &Speaking,
        &ConnStats,
        &super::dave::Dave,
        &super::stage::Stage,
    )>,
    playbacks: Query<&Playback>,
) {
    out.ticks = out.ticks.wrapping_add(1);
    let phase_changed = conns.iter().any(|(_, phase, ..)| phase.is_changed());
    if !out.ticks.is_multiple_of(PUBLISH_EVERY) && !phase_changed {
        return;
    }
    let mut connections: Vec<ConnStatus> = conns
        .iter()
        .map(|(conn, phase, speaking, stats, dave, stage)| ConnStatus {
            guild_id: conn.guild_id,
            channel_id: conn.channel_id,
            phase: phase.kind(),
            reason: match &*phase {
                ConnPhase::Failed { error } => Some(error.to_string()),
                ConnPhase::Disconnected { reason } => Some(reason.clone()),
                _ => None,
            },
            endpoint: stats.endpoint.clone(),
            mode: stats.mode,
            speaking: speaking.asserted,
            packets: stats.packets,
            bytes: stats.bytes,
            heartbeat_rtt: stats.heartbeat_rtt,
            last_close: stats.last_close,
            last_error: stats.last_error.clone(),
            resumes: stats.resumes,
            rejoins: stats.rejoins,
            moves: stats.moves,
            dave: dave.status(),
            last_play_latency: stats.last_play_latency,
            dave_dropped_frames: dave.dropped_frames,
            stage: stage.describe(),
        })
        .collect();
    connections.sort_by_key(|c| c.guild_id);
    let status = Status {
        gateway_ready: gateway.ready,
        gateway_error: gateway.fatal.as_ref().map(ToString::to_string),
        gateway_trouble: gateway.trouble.clone(),
        gateway_reconnects: gateway.reconnects,
        connections,
        user_id: gateway.user_id,
        guilds: guild_infos(&gateway),
        playing: playbacks
            .iter()
            .map(|p| PlayingStatus {
                id: p.id,
                sound: p.sound,
                progress: p.cursor.progress(),
                underruns: p.cursor.stream().map_or(0, |s| s.underruns),
            })
            .collect(),
        mic_level: mic.level,
        mic_present: mic.is_present(),
        push_to_talk: mix.push_to_talk,
        engine_restarts: out.engine_restarts,
        engine_error: out.engine_error.clone(),
    };
    out.tx.send_if_modified(|current| {
        // Unchanged snapshots do not wake the UI (idle CPU near zero).
        if *current == status {
            false
        } else {
            *current = status;
            true
        }
    });
}

fn guild_infos(gateway: &MainGatewayState) -> Vec<GuildInfo> {
    let mut guilds: Vec<GuildInfo> = gateway
        .guilds
        .values()
        .map(|g| GuildInfo {
            id: g.id,
            name: g.name.clone(),
            voice_channels: g
                .channels
                .iter()
                .filter(|c| c.kind.is_voice())
                .map(|c| {
                    let stage = c.kind == crate::discord::gateway::payloads::ChannelKind::Stage;
                    (c.id, c.name.clone(), stage)
                })
                .collect(),
        })
        .collect();
    guilds.sort_by_key(|g| g.id);
    guilds
}

/// Listeners for connection failures (the library API's error stream).
#[derive(Resource, Default)]
pub struct ErrorSubscribers(pub Vec<std::sync::mpsc::Sender<(u64, super::VoiceError)>>);

/// Sends each connection that just failed to every subscriber; drops subscribers that left.
pub fn report_failures(
    mut subscribers: ResMut<ErrorSubscribers>,
    conns: Query<(&VoiceConn, Ref<ConnPhase>)>,
) {
    if subscribers.0.is_empty() {
        return;
    }
    for (conn, phase) in &conns {
        if let (true, ConnPhase::Failed { error }) = (phase.is_changed(), &*phase) {
            subscribers
                .0
                .retain(|s| s.send((conn.guild_id, error.clone())).is_ok());
        }
    }
}
