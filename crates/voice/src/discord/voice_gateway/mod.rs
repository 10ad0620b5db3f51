//! The voice gateway v8 client: one tokio task per voice websocket.
//!
//! The task opens the socket, sends Identify or Resume, heartbeats with `seq_ack`, tracks the
//! last server `seq` (from JSON and from binary DAVE frames alike), and reports typed
//! [`VoiceEvent`]s. When the socket ends it reports [`VoiceEvent::Closed`] with the close code
//! and the last seq; the engine decides between resume, rejoin and giving up.

pub mod payloads;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use self::payloads::*;
use crate::discord::ws::{self, WsStream};

/// When the first heartbeat goes out after Hello (if the interval is longer).
const FIRST_HEARTBEAT: Duration = Duration::from_secs(1);

/// How to open the session on this socket.
#[derive(Debug, Clone)]
pub enum Opening {
    Identify { max_dave_protocol_version: u16 },
    Resume { seq_ack: i64 },
}

#[derive(Debug, Clone)]
pub enum VoiceEvent {
    /// The socket is open and Identify/Resume was sent.
    Connected,
    Ready(Ready),
    SessionDescription(SessionDescription),
    Resumed,
    ClientsConnect(Vec<u64>),
    ClientDisconnect(u64),
    /// Round-trip time of the last heartbeat.
    HeartbeatAck {
        rtt: Duration,
    },
    /// A JSON DAVE opcode (21–24) or binary one (25–30), passed up whole for the DAVE layer.
    DaveJson {
        op: u8,
        d: Value,
    },
    DaveBinary {
        op: u8,
        payload: Vec<u8>,
    },
    /// The socket ended. `code` is `None` when it dropped without a close frame; `error` says
    /// why a connection could not be made at all (refused, TLS, timeout).
    Closed {
        code: Option<u16>,
        last_seq: i64,
        error: Option<String>,
    },
}

#[derive(Debug)]
pub enum VoiceCommand {
    Json(String),
    /// op 5 Speaking, then the talk spurt's first RTP packet on `udp` once op 5 is written:
    /// Discord must see the op before the audio, and this task is the only place that can
    /// order a websocket write before a datagram. The packet goes out even if the write fails.
    SpeakingThen {
        json: String,
        packet: Vec<u8>,
        udp: std::net::UdpSocket,
        /// Packets handed to this task and not sent yet; the task counts each one down once
        /// sent. While it is above zero the engine queues the spurt's next packets behind this
        /// one ([`VoiceCommand::Packet`]) instead of letting them overtake it.
        in_flight: Arc<AtomicU32>,
    },
    /// A packet of the same talk spurt, sent on the socket of the last `SpeakingThen`.
    Packet(Vec<u8>),
    /// A client binary frame: `[op u8] ‖ payload`.
    Binary(Vec<u8>),
    /// Close with this code and end the task (1000 when leaving).
    Close(u16),
}

pub type EventSink = Arc<dyn Fn(VoiceEvent) + Send + Sync>;

/// Heartbeats that may go unanswered before the socket is declared dead (as discord.js).
const MAX_MISSED_ACKS: u32 = 3;

pub struct VoiceGatewayConfig {
    pub url: String,
    pub credentials: VoiceCredentials,
    pub opening: Opening,
    /// The last seq seen on the previous socket (for a resume), else -1.
    pub last_seq: i64,
}

/// Starts a voice gateway task on the current tokio runtime; it takes its commands from `rx`.
pub fn spawn(
    config: VoiceGatewayConfig,
    tls: ws::TlsTrust,
    rx: mpsc::UnboundedReceiver<VoiceCommand>,
    sink: EventSink,
) {
    tokio::spawn(async move {
        let mut last_seq = config.last_seq;
        let (code, error) = match ws::connect(&config.url, Duration::from_secs(10), &tls).await {
            Ok(socket) => {
                // A panic in the task ends this socket like a dropped connection (the
                // engine resumes), instead of leaving a session nobody heartbeats.
                let task =
                    std::panic::AssertUnwindSafe(run(socket, &config, &sink, rx, &mut last_seq));
                match futures_util::FutureExt::catch_unwind(task).await {
                    Ok(code) => (code, None),
                    Err(panic) => {
                        let text = crate::discord::gateway::panic_text(&*panic);
                        tracing::error!(
                            "voice gateway {}: internal error: {text}",
                            config.credentials.guild_id
                        );
                        (None, Some(format!("internal error: {text}")))
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    "voice gateway {}: cannot connect: {e:#}",
                    config.credentials.guild_id
                );
                (None, Some(format!("{e:#}")))
            }
        };
        sink(VoiceEvent::Closed {
            code,
            last_seq,
            error,
        });
    });
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs the socket; returns the close code (None for a drop).
async fn run(
    mut socket: WsStream,
    config: &VoiceGatewayConfig,
    sink: &EventSink,
    mut commands: mpsc::UnboundedReceiver<VoiceCommand>,
    last_seq: &mut i64,
) -> Option<u16> {
    let guild = config.credentials.guild_id;
    let opening = match config.opening {
        Opening::Identify {
            max_dave_protocol_version,
        } => identify(&config.credentials, max_dave_protocol_version),
        Opening::Resume { seq_ack } => resume(&config.credentials, seq_ack),
    };
    if socket.send(Message::text(opening)).await.is_err() {
        return None;
    }
    sink(VoiceEvent::Connected);

    let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut interval = None::<Duration>;
    let mut next_beat = far_future;
    let mut missed: u32 = 0;
    let mut sent_at: Option<(u64, Instant)> = None;
    // The media socket and in-flight count of the current talk spurt's first packet.
    let mut media: Option<(std::net::UdpSocket, Arc<AtomicU32>)> = None;

    loop {
        tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        tracing::warn!("voice gateway {guild}: ignoring unparsable payload");
                        continue;
                    };
                    if let Some(seq) = v.get("seq").and_then(Value::as_i64) {
                        *last_seq = seq;
                    }
                    let op = v.get("op").and_then(Value::as_u64).unwrap_or(u64::MAX);
                    let d = v.get("d").cloned().unwrap_or(Value::Null);
                    match u8::try_from(op).unwrap_or(u8::MAX) {
                        OP_HELLO => {
                            let every = super::heartbeat_interval(&d, Duration::from_millis(13_750));
                            interval = Some(every);
                            // The first beat comes early, so the connection card shows a ping
                            // within a second instead of after a whole interval.
                            next_beat = Instant::now() + every.min(FIRST_HEARTBEAT);
                        }
                        OP_HEARTBEAT_ACK => {
                            missed = 0;
                            let echoed = d.get("t").and_then(Value::as_u64).or_else(|| d.as_u64());
                            if let Some((nonce, at)) = sent_at
                                && echoed == Some(nonce)
                            {
                                sink(VoiceEvent::HeartbeatAck { rtt: at.elapsed() });
                            }
                        }
                        OP_READY => match parse_ready(&d) {
                            Some(r) => sink(VoiceEvent::Ready(r)),
                            None => tracing::warn!("voice gateway {guild}: malformed Ready"),
                        },
                        OP_SESSION_DESCRIPTION => match parse_session_description(&d) {
                            Some(sd) => sink(VoiceEvent::SessionDescription(sd)),
                            None => tracing::warn!("voice gateway {guild}: malformed Session Description"),
                        },
                        OP_RESUMED => sink(VoiceEvent::Resumed),
                        OP_CLIENTS_CONNECT => sink(VoiceEvent::ClientsConnect(parse_user_ids(&d))),
                        OP_CLIENT_DISCONNECT => {
                            if let Some(id) = d.get("user_id").and_then(crate::discord::gateway::payloads::snowflake) {
                                sink(VoiceEvent::ClientDisconnect(id));
                            }
                        }
                        op @ 21..=24 => sink(VoiceEvent::DaveJson { op, d }),
                        // Speaking from others, and opcodes we do not know: ignore
                        // (docs/protocol.md §9, pitfall 10).
                        _ => {}
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    // Server binary frames: [seq u16 BE][op u8][payload].
                    if bytes.len() >= 3 {
                        *last_seq = i64::from(u16::from_be_bytes([bytes[0], bytes[1]]));
                        sink(VoiceEvent::DaveBinary { op: bytes[2], payload: bytes[3..].to_vec() });
                    }
                }
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::info!("voice gateway {guild}: connection lost: {e}");
                    return None;
                }
                None => return None,
            },
            _ = sleep_until(next_beat), if interval.is_some() => {
                if missed >= MAX_MISSED_ACKS {
                    tracing::warn!("voice gateway {guild}: {missed} heartbeats unanswered, dropping the socket");
                    return None;
                }
                missed += 1;
                let nonce = now_ms();
                sent_at = Some((nonce, Instant::now()));
                if socket.send(Message::text(heartbeat(nonce, *last_seq))).await.is_err() {
                    return None;
                }
                next_beat = Instant::now() + interval.unwrap_or(Duration::from_secs(13));
            }
            cmd = commands.recv() => match cmd {
                Some(VoiceCommand::Json(text)) => {
                    if socket.send(Message::text(text)).await.is_err() { return None; }
                }
                Some(VoiceCommand::SpeakingThen { json, packet, udp, in_flight }) => {
                    let written = socket.send(Message::text(json)).await;
                    // Non-blocking socket: a full buffer loses this one frame, like the engine.
                    let _ = udp.send(&packet);
                    in_flight.fetch_sub(1, Ordering::Release);
                    media = Some((udp, in_flight));
                    if written.is_err() { return None; }
                }
                Some(VoiceCommand::Packet(packet)) => {
                    if let Some((udp, in_flight)) = &media {
                        let _ = udp.send(&packet);
                        in_flight.fetch_sub(1, Ordering::Release);
                    }
                }
                Some(VoiceCommand::Binary(bytes)) => {
                    if socket.send(Message::binary(bytes)).await.is_err() { return None; }
                }
                Some(VoiceCommand::Close(code)) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: "".into() };
                    let _ = socket.close(Some(frame)).await;
                    return Some(code);
                }
                // The engine dropped the link: close quietly with a resumable code.
                None => {
                    let _ = socket.close(Some(CloseFrame { code: CloseCode::from(4000), reason: "".into() })).await;
                    return Some(4000);
                }
            },
        }
    }
}
