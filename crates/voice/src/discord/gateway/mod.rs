//! The main gateway client: one tokio task that owns the websocket.
//!
//! It heartbeats on its own (with jitter and zombie detection), resumes or re-identifies on its
//! own (that is session upkeep, invisible to voice), rate-limits what it sends, and turns
//! dispatches into [`GatewayEvent`]s. It makes no voice decisions: the engine sends op 4 through
//! [`GatewayCommand`].

mod identify_budget;
pub mod payloads;
mod ratelimit;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use url::Url;

use self::identify_budget::{IdentifyBudget, Verdict};
use self::payloads::*;
use self::ratelimit::SendBudget;
use crate::discord::ws::{self, Token, WsStream};

/// What the main gateway tells the engine.
#[derive(Debug, Clone)]
pub enum GatewayEvent {
    /// Identified (a new session).
    Ready {
        user_id: u64,
        session_id: String,
        /// Guilds named in READY; a GUILD_CREATE follows for each.
        guild_ids: Vec<u64>,
    },
    /// A dropped connection was resumed; no events were lost.
    Resumed,
    /// The connection dropped, or could not be made (`error`: why, e.g. a TLS failure); the
    /// task is reconnecting (`resume` says how).
    Reconnecting {
        code: Option<u16>,
        resume: bool,
        error: Option<String>,
    },
    Guild(Guild),
    /// CHANNEL_CREATE or CHANNEL_UPDATE.
    Channel {
        guild_id: u64,
        channel: Channel,
    },
    ChannelDeleted {
        guild_id: u64,
        channel_id: u64,
    },
    /// GUILD_DELETE: `unavailable` for an outage, else the bot left or was removed.
    GuildDeleted {
        guild_id: u64,
        unavailable: bool,
    },
    VoiceState(VoiceState),
    VoiceServer(VoiceServer),
    /// The gateway refused us for good (bad token, bad intents, ...). The task has ended.
    Fatal(GatewayError),
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GatewayError {
    #[error("authentication failed: Discord rejected the bot token (close 4004)")]
    AuthenticationFailed,
    #[error("the gateway refused the connection for good (close {code}: {reason})")]
    Refused { code: u16, reason: &'static str },
    #[error(
        "Discord's daily limit of new sessions for this bot is used up ({remaining} of {total} \
         left, resets in {}): not connecting, so that Discord does not reset the bot token",
        hours_minutes(*resets_in)
    )]
    SessionLimit {
        remaining: u32,
        total: u32,
        resets_in: Duration,
    },
}

fn hours_minutes(d: Duration) -> String {
    let minutes = d.as_secs().div_ceil(60);
    format!("{} h {:02} min", minutes / 60, minutes % 60)
}

/// What the engine asks the main gateway to send.
#[derive(Debug, Clone)]
pub enum GatewayCommand {
    UpdateVoiceState {
        guild_id: u64,
        channel_id: Option<u64>,
        self_mute: bool,
        self_deaf: bool,
    },
    /// Close with 1000 (the session ends; the bot goes offline) and end the task.
    Shutdown,
}

pub type EventSink = Arc<dyn Fn(GatewayEvent) + Send + Sync>;

pub struct GatewayConfig {
    pub url: Url,
    pub token: Token,
    pub tls: ws::TlsTrust,
    /// Asked for the bot's session start limit before Identifying (`None`: pace only).
    pub rest: Option<crate::discord::rest::RestClient>,
}

/// Starts the main gateway task on the current tokio runtime.
pub fn spawn(config: GatewayConfig, sink: EventSink) -> mpsc::UnboundedSender<GatewayCommand> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Supervised: a panic in the task (a bug, or a payload we did not foresee) starts it
        // again with a fresh session rather than leaving the engine without a gateway. The new
        // READY makes the engine rejoin its voice channels.
        loop {
            let task = std::panic::AssertUnwindSafe(run(&config, &sink, &mut rx));
            match futures_util::FutureExt::catch_unwind(task).await {
                Ok(()) => return,
                Err(panic) => {
                    let error = format!("internal error, restarted: {}", panic_text(&*panic));
                    tracing::error!("main gateway task: {error}");
                    sink(GatewayEvent::Reconnecting {
                        code: None,
                        resume: false,
                        error: Some(error),
                    });
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    tx
}

/// The message of a caught panic.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Session state kept across connections, for Resume.
#[derive(Default)]
struct Session {
    id: Option<String>,
    resume_url: Option<Url>,
    seq: Option<u64>,
}

/// How one connection ended.
enum Ended {
    Shutdown,
    Reconnect { code: Option<u16>, resume: bool },
    Fatal(GatewayError),
}

async fn run(
    config: &GatewayConfig,
    sink: &EventSink,
    commands: &mut mpsc::UnboundedReceiver<GatewayCommand>,
) {
    let mut session = Session::default();
    let mut budget = SendBudget::discord_default();
    let mut failures: u32 = 0;
    // op 4 payloads not yet sent; kept across reconnects so nothing asked for is lost.
    let mut pending: Vec<String> = Vec::new();
    let mut connect_error: Option<String> = None;
    let mut identifies = IdentifyBudget::default();
    loop {
        let resume = session.id.is_some();
        if !resume {
            match identify_allowed(config, &mut identifies, commands, &mut pending).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(err) => {
                    tracing::error!("main gateway: {err}");
                    sink(GatewayEvent::Fatal(err));
                    return;
                }
            }
        }
        let base = match (&session.resume_url, resume) {
            (Some(u), true) => u.clone(),
            _ => config.url.clone(),
        };
        let url = ws::main_gateway_url(&base);
        let attempt_started = Instant::now();
        let ended = match ws::connect(&url, Duration::from_secs(10), &config.tls).await {
            Ok(socket) => {
                let link = Link {
                    token: &config.token,
                    sink,
                    gateway: &config.url,
                    identifies: &mut identifies,
                };
                connection(
                    socket,
                    link,
                    &mut session,
                    &mut budget,
                    &mut pending,
                    commands,
                )
                .await
            }
            Err(e) => {
                tracing::warn!("main gateway: cannot connect: {e:#}");
                connect_error = Some(format!("{e:#}"));
                Ended::Reconnect { code: None, resume }
            }
        };
        match ended {
            Ended::Shutdown => return,
            Ended::Fatal(err) => {
                tracing::error!("main gateway: {err}");
                sink(GatewayEvent::Fatal(err));
                return;
            }
            Ended::Reconnect { code, resume } => {
                if !resume {
                    session = Session::default();
                }
                sink(GatewayEvent::Reconnecting {
                    code,
                    resume,
                    error: connect_error.take(),
                });
                // The backoff decays with time connected (one step per healthy minute), so a
                // gateway that flaps keeps a long wait while one that blipped once an hour
                // reconnects at once.
                let lasted = attempt_started.elapsed().as_secs() / 60;
                failures = failures.saturating_sub(u32::try_from(lasted).unwrap_or(u32::MAX));
                failures += 1;
                // Full jitter, capped: reconnect storms help no one.
                let cap = Duration::from_millis(250 * 2u64.pow(failures.min(6)));
                let wait = cap.mul_f64(rand::random::<f64>());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    cmd = commands.recv() => match cmd {
                        None | Some(GatewayCommand::Shutdown) => return,
                        Some(cmd) => queue_command(&mut pending, cmd),
                    }
                }
            }
        }
        if session.id.is_some() {
            failures = failures.min(3);
        }
    }
}

/// What a connection needs from its owner, read-only.
struct Link<'a> {
    token: &'a Token,
    sink: &'a EventSink,
    /// The configured gateway, which a READY's resume URL is checked against.
    gateway: &'a Url,
    identifies: &'a mut IdentifyBudget,
}

/// Before a new session: learns the day's budget when it is unknown or reset, then waits out
/// the concurrency window. `Ok(false)`: shut down while waiting; `Err`: the budget is spent.
async fn identify_allowed(
    config: &GatewayConfig,
    identifies: &mut IdentifyBudget,
    commands: &mut mpsc::UnboundedReceiver<GatewayCommand>,
    pending: &mut Vec<String>,
) -> Result<bool, GatewayError> {
    if let Some(rest) = &config.rest
        && identifies.needs_refresh(Instant::now())
    {
        match rest.session_start_limit().await {
            Ok(limit) => {
                tracing::info!(
                    "main gateway: {} of {} session starts left today",
                    limit.remaining,
                    limit.total
                );
                identifies.learn(limit, Instant::now());
            }
            // Not knowing is no reason to stay offline: pacing still applies.
            Err(e) => tracing::warn!("main gateway: session start limit unknown: {e}"),
        }
    }
    let wait = match identifies.before_identify(Instant::now()) {
        Verdict::Go(wait) => wait,
        Verdict::Spent {
            remaining,
            total,
            resets_in,
        } => {
            return Err(GatewayError::SessionLimit {
                remaining,
                total,
                resets_in,
            });
        }
    };
    let until = Instant::now() + wait;
    while Instant::now() < until {
        tokio::select! {
            _ = sleep_until(until) => {}
            cmd = commands.recv() => match cmd {
                None | Some(GatewayCommand::Shutdown) => return Ok(false),
                Some(cmd) => queue_command(pending, cmd),
            }
        }
    }
    Ok(true)
}

/// Queues an op 4; a newer request for the same guild replaces a queued one (debounce).
fn queue_command(pending: &mut Vec<String>, cmd: GatewayCommand) {
    if let GatewayCommand::UpdateVoiceState {
        guild_id,
        channel_id,
        self_mute,
        self_deaf,
    } = cmd
    {
        let key = format!("\"guild_id\":\"{guild_id}\"");
        pending.retain(|p| !p.contains(&key));
        pending.push(voice_state_update(
            guild_id, channel_id, self_mute, self_deaf,
        ));
    }
}

/// Runs one websocket connection until it ends.
async fn connection(
    mut socket: WsStream,
    link: Link<'_>,
    session: &mut Session,
    budget: &mut SendBudget,
    pending: &mut Vec<String>,
    commands: &mut mpsc::UnboundedReceiver<GatewayCommand>,
) -> Ended {
    let Link {
        token,
        sink,
        gateway,
        identifies,
    } = link;
    let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut interval = None::<Duration>;
    let mut next_beat = far_future;
    let mut acked = true;
    let mut next_send = far_future;

    loop {
        tokio::select! {
            frame = socket.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.map(|f| u16::from(f.code));
                        return on_close(code, session);
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        tracing::warn!("main gateway: connection lost: {e}");
                        return Ended::Reconnect { code: None, resume: session.id.is_some() };
                    }
                    None => return Ended::Reconnect { code: None, resume: session.id.is_some() },
                };
                let Ok(env) = serde_json::from_str::<Envelope>(&text) else {
                    tracing::warn!("main gateway: ignoring unparsable payload");
                    continue;
                };
                if let Some(s) = env.s {
                    session.seq = Some(s);
                }
                match env.op {
                    OP_HELLO => {
                        let every = super::heartbeat_interval(&env.d, Duration::from_millis(41_250));
                        interval = Some(every);
                        // First beat after interval × jitter, jitter in [0, 1).
                        next_beat = Instant::now() + every.mul_f64(rand::random::<f64>());
                        let hello = match (&session.id, session.seq) {
                            (Some(id), seq) => resume(token, id, seq),
                            (None, _) => {
                                identifies.identified(Instant::now());
                                identify(token)
                            }
                        };
                        budget.force_take(Instant::now());
                        if socket.send(Message::text(hello)).await.is_err() {
                            return Ended::Reconnect { code: None, resume: session.id.is_some() };
                        }
                    }
                    OP_HEARTBEAT_ACK => acked = true,
                    OP_HEARTBEAT => {
                        // The server asks for a beat now.
                        budget.force_take(Instant::now());
                        if socket.send(Message::text(heartbeat(session.seq))).await.is_err() {
                            return Ended::Reconnect { code: None, resume: session.id.is_some() };
                        }
                    }
                    OP_RECONNECT => {
                        let _ = socket.close(Some(reconnect_close())).await;
                        return Ended::Reconnect { code: None, resume: session.id.is_some() };
                    }
                    OP_INVALID_SESSION => {
                        let resumable = env.d.as_bool().unwrap_or(false);
                        tracing::info!("main gateway: session invalidated (resumable: {resumable})");
                        // The docs ask for a short random wait before identifying again.
                        let wait = Duration::from_millis(1000) + Duration::from_millis(2000).mul_f64(rand::random::<f64>());
                        tokio::time::sleep(wait).await;
                        let _ = socket.close(Some(reconnect_close())).await;
                        return Ended::Reconnect { code: None, resume: resumable && session.id.is_some() };
                    }
                    OP_DISPATCH => on_dispatch(env, session, sink, gateway),
                    other => tracing::debug!("main gateway: ignoring op {other}"),
                }
            }
            _ = sleep_until(next_beat), if interval.is_some() => {
                if !acked {
                    tracing::warn!("main gateway: no heartbeat ACK, reconnecting (zombie connection)");
                    let _ = socket.close(Some(reconnect_close())).await;
                    return Ended::Reconnect { code: None, resume: session.id.is_some() };
                }
                acked = false;
                budget.force_take(Instant::now());
                if socket.send(Message::text(heartbeat(session.seq))).await.is_err() {
                    return Ended::Reconnect { code: None, resume: session.id.is_some() };
                }
                next_beat = Instant::now() + interval.unwrap_or(Duration::from_secs(41));
            }
            _ = sleep_until(next_send), if !pending.is_empty() => {}
            cmd = commands.recv() => match cmd {
                None | Some(GatewayCommand::Shutdown) => {
                    let _ = socket.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await;
                    return Ended::Shutdown;
                }
                Some(cmd) => queue_command(pending, cmd),
            },
        }
        // Flush queued op 4s within the 120-per-60-s budget (headroom kept for heartbeats).
        if interval.is_some() {
            while !pending.is_empty() {
                match budget.try_take(Instant::now()) {
                    Ok(()) => {
                        let payload = pending.remove(0);
                        if socket.send(Message::text(payload)).await.is_err() {
                            return Ended::Reconnect {
                                code: None,
                                resume: session.id.is_some(),
                            };
                        }
                        next_send = far_future;
                    }
                    Err(at) => {
                        next_send = at;
                        break;
                    }
                }
            }
        }
    }
}

fn on_dispatch(env: Envelope, session: &mut Session, sink: &EventSink, gateway: &Url) {
    let event = match env.t.as_deref() {
        Some("READY") => match parse_ready(&env.d) {
            Some(ready) => {
                session.id = Some(ready.session_id.clone());
                // A bad one is ignored: resumes then go to the URL the session started on.
                session.resume_url = ready.resume_gateway_url.as_deref().and_then(|u| {
                    ws::check_resume_url(u, gateway)
                        .inspect_err(|e| {
                            tracing::warn!("main gateway: ignoring READY's resume_gateway_url: {e}")
                        })
                        .ok()
                });
                GatewayEvent::Ready {
                    user_id: ready.user_id,
                    session_id: ready.session_id,
                    guild_ids: ready.guild_ids,
                }
            }
            None => {
                tracing::warn!("main gateway: READY without user or session id");
                return;
            }
        },
        Some("RESUMED") => GatewayEvent::Resumed,
        Some("GUILD_CREATE") => match parse_guild_create(&env.d) {
            Some(g) => GatewayEvent::Guild(g),
            None => return,
        },
        Some("CHANNEL_CREATE" | "CHANNEL_UPDATE") => match parse_guild_channel(&env.d) {
            Some((guild_id, channel)) => GatewayEvent::Channel { guild_id, channel },
            None => return,
        },
        Some("CHANNEL_DELETE") => match parse_guild_channel(&env.d) {
            Some((guild_id, channel)) => GatewayEvent::ChannelDeleted {
                guild_id,
                channel_id: channel.id,
            },
            None => return,
        },
        Some("GUILD_DELETE") => match parse_guild_delete(&env.d) {
            Some((guild_id, unavailable)) => GatewayEvent::GuildDeleted {
                guild_id,
                unavailable,
            },
            None => return,
        },
        Some("VOICE_STATE_UPDATE") => match parse_voice_state(&env.d) {
            Some(v) => GatewayEvent::VoiceState(v),
            None => return,
        },
        Some("VOICE_SERVER_UPDATE") => match parse_voice_server(&env.d) {
            Some(v) => GatewayEvent::VoiceServer(v),
            None => return,
        },
        _ => return,
    };
    sink(event);
}

/// A close that keeps the session resumable: anything but 1000/1001.
fn reconnect_close() -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(4000),
        reason: "reconnecting".into(),
    }
}

/// Maps a close code to what to do next (docs/protocol.md §1.8).
fn on_close(code: Option<u16>, session: &Session) -> Ended {
    let resumable = session.id.is_some();
    match code {
        Some(4004) => Ended::Fatal(GatewayError::AuthenticationFailed),
        Some(c @ (4010..=4014)) => Ended::Fatal(GatewayError::Refused {
            code: c,
            reason: match c {
                4010 => "invalid shard",
                4011 => "sharding required",
                4012 => "invalid API version",
                4013 => "invalid intents",
                _ => "disallowed intents",
            },
        }),
        Some(c @ (4003 | 4007 | 4009)) => Ended::Reconnect {
            code: Some(c),
            resume: false,
        },
        // 1000/1001 from the server end the session too.
        Some(c @ (1000 | 1001)) => Ended::Reconnect {
            code: Some(c),
            resume: false,
        },
        other => Ended::Reconnect {
            code: other,
            resume: resumable,
        },
    }
}
