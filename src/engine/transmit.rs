//! Audio out: mix the playing sounds, encode once per distinct mix, then per connection
//! assert speaking, seal and send; five silence frames when the audio stops.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::ErrorKind;
use std::time::Duration;

use bevy_ecs::prelude::*;

use super::Now;
use super::components::*;
use super::dave::{CallMembers, Dave};
use crate::audio::FRAME_LEN;
use crate::audio::opus::{MAX_PACKET, OpusEncoder, SILENCE_FRAME};
use crate::discord::udp::keepalive;
use crate::discord::voice_gateway::VoiceCommand;
use crate::discord::voice_gateway::payloads::speaking;

/// Silence frames sent after the audio stops, so receivers do not interpolate (doc §4.3).
pub const SILENCE_FRAMES: u8 = 5;
/// A keepalive while idle keeps NAT mappings open (songbird's interval).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(5);

/// One distinct mix this tick: the connections that hear exactly the same sounds.
struct MixGroup {
    key: u64,
    guild_id: u64,
    opus: Vec<u8>,
    len: usize,
}

#[derive(Resource)]
pub struct Mixer {
    /// libopus state is not `Sync`; the Mutex is never locked (`get_mut` through `ResMut`).
    encoder: Option<std::sync::Mutex<OpusEncoder>>,
    groups: Vec<MixGroup>,
    group_of: HashMap<Entity, usize>,
    buffer: Vec<f32>,
}

impl Mixer {
    pub fn new(bitrate: u32) -> Self {
        let encoder = OpusEncoder::new(bitrate)
            .map_err(|e| tracing::error!("Opus encoder unavailable: {e}"))
            .ok()
            .map(std::sync::Mutex::new);
        Self {
            encoder,
            groups: Vec::new(),
            group_of: HashMap::new(),
            buffer: vec![0.0; FRAME_LEN],
        }
    }
}

/// Whether audio can go out on this connection now (a resume keeps UDP flowing).
pub fn can_transmit(phase: &ConnPhase, transport: &Transport) -> bool {
    transport.0.is_some() && matches!(phase, ConnPhase::Ready | ConnPhase::Resuming { .. })
}

/// Mixes and encodes each distinct set of sounds once, however many connections hear it.
pub fn mix_and_encode(
    mut mixer: ResMut<Mixer>,
    mut conns: Query<(
        Entity,
        &VoiceConn,
        &ConnPhase,
        &Transport,
        &mut Dave,
        &CallMembers,
    )>,
    playbacks: Query<(Entity, &Playback, &Target)>,
    now: Res<Now>,
) {
    let mixer = mixer.as_mut();
    mixer.group_of.clear();
    let mut used = 0;
    if playbacks.is_empty() {
        mixer.groups.truncate(0);
        return;
    }
    for (entity, conn, phase, transport, mut dave, members) in &mut conns {
        if !can_transmit(phase, transport) || !dave.media_ready(members, now.0) {
            continue;
        }
        // The key names the set of sounds this connection hears.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let mut any = false;
        for (pe, _, target) in &playbacks {
            if target.includes(conn.guild_id) {
                pe.hash(&mut hasher);
                any = true;
            }
        }
        if !any {
            continue;
        }
        let key = hasher.finish();
        let index = match mixer.groups[..used].iter().position(|g| g.key == key) {
            Some(i) => i,
            None => {
                if used == mixer.groups.len() {
                    mixer.groups.push(MixGroup {
                        key,
                        guild_id: conn.guild_id,
                        opus: vec![0; MAX_PACKET],
                        len: 0,
                    });
                } else {
                    mixer.groups[used].key = key;
                    mixer.groups[used].guild_id = conn.guild_id;
                }
                used += 1;
                used - 1
            }
        };
        mixer.group_of.insert(entity, index);
    }
    mixer.groups.truncate(used);

    let Mixer {
        encoder,
        groups,
        buffer,
        ..
    } = mixer;
    for group in groups.iter_mut() {
        let buffer = buffer.as_mut_slice();
        buffer.fill(0.0);
        for (_, p, target) in &playbacks {
            if target.includes(group.guild_id) {
                let rest = p.samples.get(p.position..).unwrap_or(&[]);
                for (out, s) in buffer.iter_mut().zip(rest.iter()) {
                    *out += s * p.gain;
                }
            }
        }
        // Until the limiter lands, never let overlapping sounds wrap around.
        for s in buffer.iter_mut() {
            *s = s.clamp(-1.0, 1.0);
        }
        let encoder = encoder.as_mut().and_then(|e| e.get_mut().ok());
        group.len = match encoder.map(|e| e.encode(buffer, &mut group.opus)) {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                tracing::warn!("Opus encode failed: {e}");
                0
            }
            None => 0,
        };
    }
}

/// Per connection: speaking, sealing, sending.
#[allow(clippy::type_complexity)]
pub fn transmit(
    mixer: Res<Mixer>,
    now: Res<Now>,
    mut conns: Query<(
        Entity,
        &VoiceConn,
        &ConnPhase,
        &VoiceLink,
        &mut Transport,
        &mut Speaking,
        &mut ConnStats,
        &mut OpusQueue,
        &mut Dave,
    )>,
) {
    let now = now.0;
    let mixer = mixer.into_inner();
    for (
        entity,
        conn,
        phase,
        link,
        mut transport,
        mut speaking_state,
        mut stats,
        mut queue,
        mut dave,
    ) in &mut conns
    {
        if !can_transmit(phase, &transport) {
            continue;
        }
        let Some(udp) = transport.0.as_mut() else {
            continue;
        };
        let queued = queue.0.pop_front();
        let mixed = mixer
            .group_of
            .get(&entity)
            .map(|&i| &mixer.groups[i])
            .filter(|g| g.len > 0)
            .map(|g| &g.opus[..g.len]);
        let frame: &[u8] = match (&queued, mixed) {
            (Some(q), _) => q,
            (None, Some(m)) => m,
            (None, None) if speaking_state.asserted => {
                if speaking_state.silence_left == 0 {
                    // The tail is done: speaking off (discord.js does the same).
                    link.send(VoiceCommand::Json(speaking(0, udp.rtp.ssrc)));
                    speaking_state.asserted = false;
                    continue;
                }
                speaking_state.silence_left -= 1;
                &SILENCE_FRAME
            }
            (None, None) => {
                if now.duration_since(udp.last_sent) >= KEEPALIVE_EVERY {
                    let _ = udp.socket.send(&keepalive(udp.rtp.ssrc));
                    udp.last_sent = now;
                }
                continue;
            }
        };
        // DAVE before transport encryption; without keys the frame is dropped, never sent plain.
        let Some(frame) = dave.protect(frame) else {
            continue;
        };
        let frame: &[u8] = &frame;
        if frame != SILENCE_FRAME {
            if !speaking_state.asserted {
                // op 5 goes out before the first packet of every talk spurt.
                link.send(VoiceCommand::Json(speaking(
                    speaking_state.flags,
                    udp.rtp.ssrc,
                )));
                speaking_state.asserted = true;
            }
            speaking_state.silence_left = SILENCE_FRAMES;
        }
        let header = udp.rtp.next_header();
        let mut packet = std::mem::take(&mut udp.packet);
        udp.cipher.seal(&header, frame, &mut packet);
        match udp.socket.send(&packet) {
            Ok(n) => {
                stats.packets += 1;
                stats.bytes += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => stats.send_errors += 1,
            Err(e) => {
                stats.send_errors += 1;
                if stats.send_errors.is_power_of_two() {
                    tracing::warn!("guild {}: UDP send failed: {e}", conn.guild_id);
                }
            }
        }
        udp.packet = packet;
        udp.last_sent = now;
    }
}

/// Moves each sound one frame on, if anyone can hear it; ends finished ones.
pub fn advance_playbacks(
    mut commands: Commands,
    mut playbacks: Query<(Entity, &mut Playback, &Target)>,
    mut conns: Query<(&VoiceConn, &ConnPhase, &Transport, &mut Dave, &CallMembers)>,
    now: Res<Now>,
) {
    for (entity, mut p, target) in &mut playbacks {
        let mut targeted = false;
        let mut audible = false;
        for (conn, phase, transport, mut dave, members) in &mut conns {
            if target.includes(conn.guild_id) && !phase.is_over() {
                targeted = true;
                audible |= can_transmit(phase, transport) && dave.media_ready(members, now.0);
            }
        }
        // A sound waits while its connections reconnect, so nothing is lost; with no live
        // connection at all it ends.
        if audible {
            p.position += FRAME_LEN;
        }
        if !targeted || p.position >= p.samples.len() {
            if let Some(done) = p.done.take() {
                let _ = done.send(());
            }
            commands.entity(entity).despawn();
        }
    }
}
