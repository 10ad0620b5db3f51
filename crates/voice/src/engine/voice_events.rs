//! What the voice gateway tasks report, applied to their connection: Ready, IP discovery,
//! Session Description, Resumed, DAVE ops, and closes (resume, rejoin, wait for the main
//! gateway, or stop, per the close code).

use std::time::Instant;

use super::components::*;
use super::connection::{ConnItem, fail, schedule_rejoin, send_json, set_phase};
use super::network::{NetRequest, Outbox};
use super::{Settings, VoiceError};
use crate::discord::close_codes::{VoiceCloseAction, voice_close_action, voice_close_reason};
use crate::discord::crypto::{TransportCipher, TransportMode};
use crate::discord::rtp::RtpStream;
use crate::discord::voice_gateway::VoiceEvent;
use crate::discord::voice_gateway::payloads::select_protocol;

pub fn on_voice_event(
    event: VoiceEvent,
    c: &mut ConnItem,
    outbox: &mut Outbox,
    settings: &Settings,
    user_id: u64,
    now: Instant,
) {
    let guild_id = c.conn.guild_id;
    match event {
        VoiceEvent::Connected => {}
        VoiceEvent::Ready(ready) => {
            let Ok(ip) = ready.ip.parse::<std::net::IpAddr>() else {
                let problem = format!("the voice server named a bad media address {:?}", ready.ip);
                tracing::warn!("guild {guild_id}: {problem}");
                c.stats.last_error = Some(problem);
                schedule_rejoin(c, settings, now);
                return;
            };
            set_phase(c, ConnPhase::Discovering);
            outbox.push(NetRequest::Discover {
                guild_id,
                generation: c.link.generation,
                server: std::net::SocketAddr::new(ip, ready.port),
                ssrc: ready.ssrc,
            });
            c.link.ready = Some(ready);
        }
        VoiceEvent::SessionDescription(sd) => {
            let Some(ready) = c.link.ready.clone() else {
                return;
            };
            let Some(socket) = c.link.pending_socket.take() else {
                return;
            };
            let Some(mode) = TransportMode::parse(&sd.mode) else {
                fail(c, VoiceError::NoSupportedMode(vec![sd.mode]));
                return;
            };
            let cipher = match TransportCipher::new(mode, &sd.secret_key) {
                Ok(cipher) => cipher,
                Err(e) => {
                    tracing::warn!("guild {guild_id}: unusable session key: {e}");
                    schedule_rejoin(c, settings, now);
                    return;
                }
            };
            c.transport.0 = Some(UdpTransport {
                socket,
                rtp: RtpStream::new(ready.ssrc),
                cipher,
                packet: Vec::with_capacity(1500),
                last_sent: now,
                in_flight: None,
            });
            c.stats.mode = Some(mode.as_str());
            if let Err(problem) = c.dave.start(
                sd.dave_protocol_version,
                user_id,
                c.conn.channel_id,
                &c.link,
                now,
            ) {
                tracing::error!("guild {guild_id}: {problem}");
                c.stats.last_error = Some(problem);
            }
            // The first transmit tick registers the SSRC with op 5 (see `transmit`).
            c.speaking.registered = false;
            c.speaking.asserted = false;
            c.speaking.silence_left = 0;
            c.link.rejoin_attempts = 0;
            set_phase(c, ConnPhase::Ready);
            // Join callers are answered once audio can flow (`run_timers`): at once without
            // DAVE, after the first key exchange with it.
            tracing::info!(
                "guild {guild_id}: voice ready ({mode}, ssrc {})",
                ready.ssrc
            );
        }
        VoiceEvent::Resumed => {
            c.stats.resumes += 1;
            c.speaking.reassert = true;
            set_phase(c, ConnPhase::Ready);
            tracing::info!("guild {guild_id}: voice session resumed");
        }
        VoiceEvent::HeartbeatAck { rtt } => c.stats.heartbeat_rtt = Some(rtt),
        VoiceEvent::ClientsConnect(_) | VoiceEvent::ClientDisconnect(_) => {
            if matches!(event, VoiceEvent::ClientsConnect(_)) {
                c.dave.member_joined(now);
            }
            super::dave::track_members(&event, &mut c.members);
        }
        VoiceEvent::DaveJson { .. } | VoiceEvent::DaveBinary { .. } => {
            let channel_id = c.conn.channel_id;
            c.dave
                .on_event(&event, &c.members, user_id, channel_id, &c.link);
        }
        VoiceEvent::Closed {
            code,
            last_seq,
            error,
        } => {
            c.link.tx = None;
            c.link.last_seq = last_seq;
            if let Some(e) = error {
                c.stats.last_error = Some(format!("cannot reach the voice server: {e}"));
            } else {
                c.stats.last_close = code;
            }
            on_voice_closed(c, code, settings, now);
        }
    }
}

pub fn on_discovered(
    result: Result<(std::net::UdpSocket, crate::discord::udp::Discovered), String>,
    c: &mut ConnItem,
    settings: &Settings,
    now: Instant,
) {
    let guild_id = c.conn.guild_id;
    match result {
        Ok((socket, found)) => {
            let offered = c
                .link
                .ready
                .as_ref()
                .map(|r| r.modes.clone())
                .unwrap_or_default();
            let Some(mode) = TransportMode::choose(&offered) else {
                fail(c, VoiceError::NoSupportedMode(offered));
                return;
            };
            if !mode.is_current() {
                tracing::warn!("guild {guild_id}: server offers only the discontinued mode {mode}");
            }
            c.link.pending_socket = Some(socket);
            send_json(
                c,
                select_protocol(&found.address, found.port, mode.as_str()),
            );
            set_phase(c, ConnPhase::Selecting);
        }
        Err(e) => {
            tracing::warn!("guild {guild_id}: IP discovery failed: {e}");
            schedule_rejoin(c, settings, now);
        }
    }
}

fn on_voice_closed(c: &mut ConnItem, code: Option<u16>, settings: &Settings, now: Instant) {
    let guild_id = c.conn.guild_id;
    if matches!(*c.phase, ConnPhase::Leaving { .. }) || c.phase.is_over() {
        return;
    }
    let established = c.transport.0.is_some();
    let action = voice_close_action(code);
    tracing::info!(
        "guild {guild_id}: voice socket closed ({}), {action:?}",
        code.map_or("no close frame".to_owned(), |c| format!(
            "{c}: {}",
            voice_close_reason(c)
        ))
    );
    match action {
        VoiceCloseAction::Resume if established => {
            let attempt = match *c.phase {
                ConnPhase::Resuming { attempt, .. } => attempt + 1,
                _ => 0,
            };
            let at = now
                + if attempt == 0 {
                    std::time::Duration::ZERO
                } else {
                    super::connection::backoff(attempt)
                };
            set_phase(c, ConnPhase::Resuming { attempt, at });
        }
        VoiceCloseAction::Resume | VoiceCloseAction::Rejoin => schedule_rejoin(c, settings, now),
        VoiceCloseAction::AwaitMainGateway => {
            c.transport.0 = None;
            // Moved or kicked: the next server (if any) comes with a new token.
            c.info.server = None;
            set_phase(c, ConnPhase::AwaitingMainGateway { since: now });
        }
        VoiceCloseAction::Stop => {
            let error = match code {
                Some(4017) => VoiceError::E2eeRequired,
                Some(code) => VoiceError::Closed {
                    code,
                    reason: voice_close_reason(code),
                },
                None => VoiceError::Closed {
                    code: 1006,
                    reason: voice_close_reason(1006),
                },
            };
            fail(c, error);
        }
    }
}
