//! Audio out, per connection: assert speaking, DAVE-encrypt, seal and send the tick's mix;
//! five silence frames when the audio stops.

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
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
        let mut speak_first = None;
        if frame != SILENCE_FRAME {
            if !speaking_state.asserted || speaking_state.reassert {
                speaking_state.registered = true;
                speaking_state.reassert = false;
                // op 5 goes out before the first packet of every talk spurt.
                speak_first = Some(speaking(speaking_state.flags, udp.rtp.ssrc));
                speaking_state.asserted = true;
            }
            speaking_state.silence_left = SILENCE_FRAMES;
        }
        let header = udp.rtp.next_header();
        let mut packet = std::mem::take(&mut udp.packet);
        udp.cipher.seal(&header, frame, &mut packet);
        let sent = match speak_first {
            Some(op5) => send_after_speaking(link, udp, op5, &packet),
            None => send_in_order(link, udp, &packet),
        };
        match sent {
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

/// Sends op 5 and then the talk spurt's first packet. op 5 leaves through the websocket task and
/// UDP from this thread, so sent side by side the packet could beat the op (it did, by ~0.2 ms,
/// under strace); the packet rides with the op instead and the task sends it once the op is
/// written. Nothing waits here. Without a websocket (resuming) the packet goes at once and the
/// op is sent again after the resume.
fn send_after_speaking(
    link: &VoiceLink,
    udp: &mut UdpTransport,
    op5: String,
    packet: &[u8],
) -> std::io::Result<usize> {
    udp.in_flight = None;
    if let (Some(tx), Ok(socket)) = (&link.tx, udp.socket.try_clone()) {
        let in_flight = Arc::new(AtomicU32::new(1));
        let command = VoiceCommand::SpeakingThen {
            json: op5,
            packet: packet.to_vec(),
            udp: socket,
            in_flight: in_flight.clone(),
        };
        if tx.send(command).is_ok() {
            udp.in_flight = Some(in_flight);
            return Ok(packet.len());
        }
        // The task is gone, and the op with it: the packet still goes.
        return udp.socket.send(packet);
    }
    link.send(VoiceCommand::Json(op5));
    udp.socket.send(packet)
}

/// At most this many packets wait in the voice task behind a talk spurt's first one (200 ms):
/// a websocket stuck longer than that should not hold the audio back, so later packets go
/// straight out again.
const MAX_IN_FLIGHT: u32 = 10;

/// Sends a packet after the spurt's first. While the voice task still holds earlier packets
/// (its op 5 not written yet, on a slow websocket), this one queues behind them, so the server
/// never sees the sequence numbers out of order; otherwise it goes straight out.
fn send_in_order(
    link: &VoiceLink,
    udp: &mut UdpTransport,
    packet: &[u8],
) -> std::io::Result<usize> {
    let waiting = udp
        .in_flight
        .as_ref()
        .map_or(0, |n| n.load(Ordering::Acquire));
    if (1..MAX_IN_FLIGHT).contains(&waiting)
        && let (Some(tx), Some(in_flight)) = (&link.tx, &udp.in_flight)
    {
        in_flight.fetch_add(1, Ordering::AcqRel);
        if tx.send(VoiceCommand::Packet(packet.to_vec())).is_ok() {
            return Ok(packet.len());
        }
    }
    udp.in_flight = None;
    udp.socket.send(packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn pair() -> (UdpSocket, UdpSocket) {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        server.set_nonblocking(true).unwrap();
        (client, server)
    }

    fn arrived(server: &UdpSocket) -> Option<Vec<u8>> {
        // Loopback delivery is immediate, but give a slow machine a moment before saying no.
        let mut buf = [0u8; 64];
        for _ in 0..50 {
            if let Ok(n) = server.recv(&mut buf) {
                return Some(buf[..n].to_vec());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    fn transport(socket: UdpSocket) -> UdpTransport {
        let mode = crate::discord::crypto::TransportMode::AeadAes256GcmRtpsize;
        UdpTransport {
            socket,
            rtp: crate::discord::rtp::RtpStream::new(1),
            cipher: crate::discord::crypto::TransportCipher::new(mode, &[7; 32]).unwrap(),
            packet: Vec::new(),
            last_sent: std::time::Instant::now(),
            in_flight: None,
        }
    }

    /// A transport whose packets arrive at `server`, and a link to a voice task whose commands
    /// the test reads from the receiver (playing the task).
    fn with_a_voice_task() -> (
        UdpTransport,
        UdpSocket,
        VoiceLink,
        tokio::sync::mpsc::UnboundedReceiver<VoiceCommand>,
    ) {
        let (client, server) = pair();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let link = VoiceLink {
            tx: Some(tx),
            ..Default::default()
        };
        (transport(client), server, link, rx)
    }

    #[test]
    fn the_first_packet_waits_for_the_websocket_task_to_write_op5() {
        let (mut udp, server, link, mut rx) = with_a_voice_task();
        send_after_speaking(&link, &mut udp, "op5".into(), b"first").unwrap();
        assert_eq!(arrived(&server), None, "sent before op 5 was handed over");
        // What the task does: write the op, then send the packet.
        let Ok(VoiceCommand::SpeakingThen {
            json,
            packet,
            udp: socket,
            in_flight,
        }) = rx.try_recv()
        else {
            panic!("op 5 and the packet go to the task together");
        };
        assert_eq!(json, "op5");
        socket.send(&packet).unwrap();
        in_flight.fetch_sub(1, Ordering::Release);
        assert_eq!(arrived(&server).as_deref(), Some(&b"first"[..]));
    }

    /// A websocket slower than a tick: the spurt's next packets queue behind the first in the
    /// task instead of overtaking it (the soak's simulator saw seq numbers out of order), and
    /// go straight out again once the task has caught up.
    #[test]
    fn later_packets_never_overtake_the_first() {
        let (mut udp, server, link, mut rx) = with_a_voice_task();
        send_after_speaking(&link, &mut udp, "op5".into(), b"1").unwrap();
        send_in_order(&link, &mut udp, b"2").unwrap();
        send_in_order(&link, &mut udp, b"3").unwrap();
        assert_eq!(
            arrived(&server),
            None,
            "nothing overtakes the unwritten op 5"
        );
        // The task writes op 5 and works through its queue, in order.
        let Ok(VoiceCommand::SpeakingThen {
            packet,
            udp: socket,
            in_flight,
            ..
        }) = rx.try_recv()
        else {
            panic!("the first packet goes with its op 5");
        };
        socket.send(&packet).unwrap();
        in_flight.fetch_sub(1, Ordering::Release);
        for _ in 0..2 {
            let Ok(VoiceCommand::Packet(packet)) = rx.try_recv() else {
                panic!("the next packets queue behind the first");
            };
            socket.send(&packet).unwrap();
            in_flight.fetch_sub(1, Ordering::Release);
        }
        send_in_order(&link, &mut udp, b"4").unwrap();
        assert!(rx.try_recv().is_err(), "caught up: straight out again");
        let order: Vec<_> = (0..4).filter_map(|_| arrived(&server)).collect();
        assert_eq!(order, [b"1", b"2", b"3", b"4"]);
    }

    /// A task that never gets to write (a stuck websocket) holds at most `MAX_IN_FLIGHT`.
    #[test]
    fn a_stuck_websocket_does_not_hold_the_audio_back_for_long() {
        let (mut udp, server, link, _rx) = with_a_voice_task();
        send_after_speaking(&link, &mut udp, "op5".into(), b"first").unwrap();
        for _ in 1..MAX_IN_FLIGHT {
            send_in_order(&link, &mut udp, b"held").unwrap();
        }
        assert_eq!(arrived(&server), None);
        send_in_order(&link, &mut udp, b"direct").unwrap();
        assert_eq!(arrived(&server).as_deref(), Some(&b"direct"[..]));
    }

    #[test]
    fn without_a_websocket_the_packet_still_goes() {
        let (client, server) = pair();
        let mut udp = transport(client);
        // Resuming: no task. And a task that is gone.
        send_after_speaking(&VoiceLink::default(), &mut udp, "op5".into(), b"a").unwrap();
        assert_eq!(arrived(&server).as_deref(), Some(&b"a"[..]));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        drop(rx);
        let link = VoiceLink {
            tx: Some(tx),
            ..Default::default()
        };
        send_after_speaking(&link, &mut udp, "op5".into(), b"b").unwrap();
        assert_eq!(arrived(&server).as_deref(), Some(&b"b"[..]));
        send_in_order(&link, &mut udp, b"c").unwrap();
        assert_eq!(arrived(&server).as_deref(), Some(&b"c"[..]));
    }
}
