//! Audio out, per connection: assert speaking, DAVE-encrypt, seal and send the tick's mix;
//! five silence frames when the audio stops.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use bevy_ecs::prelude::*;

use super::Now;
use super::components::*;
use super::dave::{CallMembers, Dave};
use super::mix::Mixer;
use crate::discord::udp::keepalive;
use crate::discord::voice_gateway::VoiceCommand;
use crate::discord::voice_gateway::payloads::speaking;
use voxboard_audio::opus::SILENCE_FRAME;

/// Silence frames sent after the audio stops, so receivers do not interpolate
/// (docs/protocol.md §4.3).
pub const SILENCE_FRAMES: u8 = 5;
/// A keepalive while idle keeps NAT mappings open (songbird's interval).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(5);

/// Whether audio can go out on this connection now (a resume keeps UDP flowing).
pub fn can_transmit(phase: &ConnPhase, transport: &Transport) -> bool {
    transport.0.is_some() && matches!(phase, ConnPhase::Ready | ConnPhase::Resuming { .. })
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
        &CallMembers,
        &super::stage::Stage,
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
        members,
        stage,
    ) in &mut conns
    {
        if !can_transmit(phase, &transport) {
            continue;
        }
        let Some(udp) = transport.0.as_mut() else {
            continue;
        };
        // In a stage's audience Discord forwards nothing: send no audio (a talk spurt that was
        // going ends with its silence tail); written frames wait for a speaker slot.
        let may_speak = stage.may_speak();
        // Written Opus frames wait for DAVE keys like sounds do, rather than being dropped.
        let queued = if may_speak && (queue.0.is_empty() || dave.media_ready(members, now)) {
            queue.0.pop_front()
        } else {
            None
        };
        let group = mixer.frame_for(entity).filter(|_| may_speak);
        let mixed = group.map(|g| &g.opus[..g.len]);
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
                if !speaking_state.registered {
                    // Register the SSRC right away (as discord.py does) while idle; when audio is
                    // already waiting, its op 5 with the real flags registers it instead, so the
                    // server never sees a "speaking 0" just before the first packet.
                    link.send(VoiceCommand::Json(speaking(0, udp.rtp.ssrc)));
                    speaking_state.registered = true;
                }
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
            if !speaking_state.asserted || speaking_state.reassert {
                speaking_state.registered = true;
                speaking_state.reassert = false;
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
                if queued.is_none()
                    && let Some(issued) = group.and_then(|g| g.fresh_since)
                {
                    stats.last_play_latency =
                        Some(Instant::now().saturating_duration_since(issued));
                }
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
