//! The connection state machine: commands in, timers, and the actions shared by both.

use std::time::{Duration, Instant};

use bevy_ecs::prelude::*;
use bevy_ecs::query::QueryData;

use super::components::*;
use super::dave::{CallMembers, Dave};
use super::network::{NetRequest, Outbox};
use super::{Command, ConnIndex, MainGatewayState, Net, Now, Settings, VoiceError};
use crate::discord::voice_gateway::payloads::VoiceCredentials;
use crate::discord::voice_gateway::{Opening, VoiceCommand, VoiceGatewayConfig};
use crate::discord::ws;

/// Everything mutable about one connection.
#[derive(QueryData)]
#[query_data(mutable)]
pub struct Conn {
    pub entity: Entity,
    pub conn: &'static mut VoiceConn,
    pub phase: &'static mut ConnPhase,
    pub info: &'static mut VoiceSessionInfo,
    pub link: &'static mut VoiceLink,
    pub transport: &'static mut Transport,
    pub speaking: &'static mut Speaking,
    pub stats: &'static mut ConnStats,
    pub waiters: &'static mut JoinWaiters,
    pub queue: &'static mut OpusQueue,
    pub dave: &'static mut Dave,
    pub members: &'static mut CallMembers,
    pub stage: &'static mut super::stage::Stage,
}

/// How long a leave may wait for Discord's confirmation before we call it done.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for the main gateway to explain a 4014/4022.
const MAIN_GATEWAY_GRACE: Duration = Duration::from_secs(10);
const MAX_RESUME_ATTEMPTS: u32 = 5;

#[allow(clippy::too_many_arguments)]
pub fn ingest_commands(
    mut commands: Commands,
    mut inbox: ResMut<super::Inbox>,
    mut index: ResMut<ConnIndex>,
    mut gateway: ResMut<MainGatewayState>,
    mut conns: Query<Conn>,
    mut error_subscribers: ResMut<super::status::ErrorSubscribers>,
    mut outbox: ResMut<Outbox>,
    now: Res<Now>,
) {
    let now = now.0;
    for command in std::mem::take(&mut inbox.commands) {
        match command {
            Command::Join {
                guild_id,
                channel_id,
                self_mute,
                self_deaf,
                reply,
            } => {
                if let Err(e) = validate_join(&gateway, guild_id, channel_id) {
                    if let Some(r) = reply {
                        let _ = r.send(Err(e));
                    }
                    continue;
                }
                let entity = match index.0.get(&guild_id).copied() {
                    Some(e) if conns.get(e).is_ok() => e,
                    _ => {
                        let e = commands
                            .spawn(new_connection(guild_id, channel_id, now))
                            .id();
                        index.0.insert(guild_id, e);
                        e
                    }
                };
                // A new entity is not queryable until commands apply; remember its waiter on spawn.
                let conn_config = VoiceConn {
                    guild_id,
                    channel_id,
                    self_mute,
                    self_deaf,
                };
                if let Ok(mut c) = conns.get_mut(entity) {
                    if *c.conn == conn_config && *c.phase == ConnPhase::Ready {
                        // Already there: nothing to ask Discord; the waiter is answered once
                        // media can flow.
                        c.waiters.0.extend(reply);
                        continue;
                    }
                    *c.conn = conn_config.clone();
                    // Whatever server we had, its token is spent: wait for the next one.
                    c.link.close(4000);
                    c.transport.0 = None;
                    c.info.server = None;
                    set_phase(&mut c, ConnPhase::AwaitingServer { since: now });
                    c.link.rejoin_attempts = 0;
                    if let Some(r) = reply {
                        c.waiters.0.push(r);
                    }
                } else {
                    commands
                        .entity(entity)
                        .insert((conn_config, JoinWaiters(reply.into_iter().collect())));
                }
                outbox.update_voice_state(guild_id, Some(channel_id), self_mute, self_deaf);
            }
            Command::Leave { guild_id, reply } => {
                match index.0.get(&guild_id).and_then(|e| conns.get_mut(*e).ok()) {
                    Some(mut c) => {
                        c.link.close(1000);
                        c.transport.0 = None;
                        c.waiters.resolve(Err(VoiceError::ShutDown));
                        set_phase(&mut c, ConnPhase::Leaving { since: now });
                        outbox.update_voice_state(guild_id, None, false, false);
                        if let Some(r) = reply {
                            commands.entity(c.entity).insert(LeaveWaiter(r));
                        }
                    }
                    None => {
                        if let Some(r) = reply {
                            let _ = r.send(());
                        }
                    }
                }
            }
            Command::WriteOpus { guild_id, frame } => {
                if let Some(mut c) = index.0.get(&guild_id).and_then(|e| conns.get_mut(*e).ok()) {
                    c.queue.push(frame);
                }
            }
            Command::SetSpeakingFlags { guild_id, flags } => {
                if let Some(mut c) = index.0.get(&guild_id).and_then(|e| conns.get_mut(*e).ok()) {
                    c.speaking.flags = flags;
                    // Re-assert on the next packet so the server learns the new flags.
                    c.speaking.asserted = false;
                }
            }
            Command::StopSpeaking { guild_id } => {
                if let Some(mut c) = index.0.get(&guild_id).and_then(|e| conns.get_mut(*e).ok()) {
                    c.queue.0.clear();
                }
            }
            // Playback and mix commands were taken out by `playback::ingest_playback_commands`.
            Command::Play(_)
            | Command::Stop { .. }
            | Command::StopSound { .. }
            | Command::StopAll
            | Command::SetMasterGain(_)
            | Command::SetGuildGain { .. }
            | Command::PushToTalk(_)
            | Command::SetMicGain(_)
            | Command::SetMicTarget(_)
            | Command::SetMonitor { .. }
            | Command::SetMic(_)
            | Command::SetMonitorSink(_) => {}
            Command::SubscribeErrors(tx) => error_subscribers.0.push(tx),
            Command::SubscribeMemberJoins(tx) => gateway.members.subscribe(tx),
            Command::AwaitGateway { reply } => match (&gateway.fatal, gateway.user_id) {
                (Some(e), _) => {
                    let _ = reply.send(Err(e.clone()));
                }
                (None, Some(user)) if gateway.ready && gateway.pending_guilds.is_empty() => {
                    let _ = reply.send(Ok(user));
                }
                _ => gateway.waiters.push(reply),
            },
            Command::InjectPanic => panic!("injected by a test"),
            Command::Shutdown => {
                for mut c in conns.iter_mut() {
                    c.link.close(1000);
                    c.waiters.resolve(Err(VoiceError::ShutDown));
                }
                outbox.push(NetRequest::CloseGateway);
            }
        }
    }
}

/// Someone waiting for a leave to be confirmed.
#[derive(Component)]
pub struct LeaveWaiter(pub std::sync::mpsc::Sender<()>);

pub(super) fn new_connection(guild_id: u64, channel_id: u64, now: Instant) -> impl Bundle {
    (
        VoiceConn {
            guild_id,
            channel_id,
            self_mute: false,
            self_deaf: false,
        },
        ConnPhase::AwaitingServer { since: now },
        VoiceSessionInfo::default(),
        VoiceLink {
            last_seq: -1,
            ..Default::default()
        },
        Transport::default(),
        Speaking::default(),
        ConnStats::default(),
        JoinWaiters::default(),
        OpusQueue::default(),
        Dave::default(),
        CallMembers::default(),
        GuildGain::default(),
        super::stage::Stage::default(),
    )
}

/// Refuses a join the gateway already told us cannot work.
pub fn validate_join(
    gateway: &MainGatewayState,
    guild_id: u64,
    channel_id: u64,
) -> Result<(), VoiceError> {
    if let Some(e) = &gateway.fatal {
        return Err(e.clone());
    }
    if !gateway.ready || !gateway.pending_guilds.is_empty() {
        return Ok(()); // checked again once READY and its guilds are in (`settle`)
    }
    if gateway.unavailable.contains(&guild_id) {
        return Err(VoiceError::GuildUnavailable(guild_id));
    }
    let guild = gateway
        .guilds
        .get(&guild_id)
        .ok_or(VoiceError::UnknownGuild(guild_id))?;
    match guild.channels.iter().find(|c| c.id == channel_id) {
        Some(c) if c.kind.is_voice() => Ok(()),
        _ => Err(VoiceError::NotAVoiceChannel {
            guild: guild_id,
            channel: channel_id,
        }),
    }
}

/// Opens a new voice socket for this connection (Identify or Resume).
pub fn open_voice_socket(
    outbox: &mut Outbox,
    net: &Net,
    settings: &Settings,
    user_id: u64,
    c: &mut ConnItem,
    opening: Opening,
    now: Instant,
) {
    let Some(server) = c.info.server.clone() else {
        return;
    };
    let Some(session_id) = c.info.session_id.clone() else {
        return;
    };
    let Some(endpoint) = server.endpoint.clone() else {
        return;
    };
    let url = match ws::voice_gateway_url(&endpoint, &net.gateway_url) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!("guild {}: bad voice endpoint: {e}", c.conn.guild_id);
            return;
        }
    };
    c.link.close(4000);
    c.link.generation += 1;
    c.link.opened_at = Some(now);
    let generation = c.link.generation;
    if matches!(opening, Opening::Identify { .. }) {
        // A new voice session: op 11 will list the call's members afresh.
        c.members.0.clear();
    }
    let guild_id = c.conn.guild_id;
    let config = VoiceGatewayConfig {
        url: url.clone(),
        credentials: VoiceCredentials {
            guild_id,
            user_id,
            session_id,
            token: server.token.clone(),
        },
        opening: match opening {
            Opening::Identify { .. } => Opening::Identify {
                max_dave_protocol_version: settings.max_dave_protocol_version,
            },
            resume => resume,
        },
        last_seq: c.link.last_seq,
    };
    let (tx, commands) = tokio::sync::mpsc::unbounded_channel();
    c.link.tx = Some(tx);
    outbox.push(NetRequest::OpenVoice {
        generation,
        config,
        commands,
    });
    c.link.url = Some(url);
    c.stats.endpoint = Some(endpoint);
}

/// Moves to a terminal state and tells anyone waiting.
pub fn fail(c: &mut ConnItem, error: VoiceError) {
    tracing::warn!("guild {}: {error}", c.conn.guild_id);
    c.link.close(1000);
    c.transport.0 = None;
    c.waiters.resolve(Err(error.clone()));
    set_phase(c, ConnPhase::Failed { error });
}

/// Every phase change of a connection goes through here: one place that sees them all (and
/// logs them), so a card showing the wrong state has one function to read.
pub fn set_phase(c: &mut ConnItem, next: ConnPhase) {
    if *c.phase != next {
        tracing::debug!(
            "guild {}: {} -> {}",
            c.conn.guild_id,
            c.phase.name(),
            next.name()
        );
    }
    // Assigned even when equal: a fresh `since` or `at` counts, and change detection
    // publishes the status at once.
    *c.phase = next;
}

/// A connection that failed for good while the bot may still be in the channel (gave up,
/// E2EE required, closed by the server) takes the bot out with op 4 `channel_id: null`, so it
/// does not linger there silent. Not after a kick (already out) or a refused gateway.
pub fn leave_after_failure(conns: Query<(&VoiceConn, Ref<ConnPhase>)>, mut outbox: ResMut<Outbox>) {
    for (conn, phase) in &conns {
        let ConnPhase::Failed { error } = &*phase else {
            continue;
        };
        let in_channel = !matches!(
            error,
            VoiceError::Kicked
                | VoiceError::TakenOver
                | VoiceError::AuthenticationFailed
                | VoiceError::GatewayRefused(_)
                | VoiceError::ShutDown
                | VoiceError::UnknownGuild(_)
                | VoiceError::GuildUnavailable(_)
                | VoiceError::NotAVoiceChannel { .. }
        );
        if phase.is_changed() && in_channel {
            outbox.update_voice_state(conn.guild_id, None, conn.self_mute, conn.self_deaf);
        }
    }
}

/// Exponential backoff with full jitter, capped at ~8 s.
pub fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(250 * 2u64.pow(attempt.min(5)));
    Duration::from_millis(50) + cap.mul_f64(rand::random::<f64>())
}

/// Starts a full join again now: the old voice session is dropped and op 4 is sent; the new
/// VOICE_SERVER_UPDATE leads to a fresh Identify. The voice state's session id is kept: when the
/// bot is still in the channel, Discord answers with a VOICE_SERVER_UPDATE only (its voice state
/// did not change), and waiting for a VOICE_STATE_UPDATE too would hang. A new main session
/// drops it ([`forget_voice_state`]).
pub fn rejoin_now(c: &mut ConnItem, outbox: &mut Outbox, now: Instant) {
    c.link.close(4000);
    c.transport.0 = None;
    c.info.server = None;
    c.stats.rejoins += 1;
    set_phase(c, ConnPhase::AwaitingServer { since: now });
    let VoiceConn {
        guild_id,
        channel_id,
        self_mute,
        self_deaf,
    } = c.conn.clone();
    outbox.update_voice_state(guild_id, Some(channel_id), self_mute, self_deaf);
}

/// The voice state belonged to a main session that is gone: a rejoin must wait for a new one.
pub fn forget_voice_state(c: &mut ConnItem) {
    c.info.session_id = None;
}

/// Schedules a full rejoin (op 4 again), or gives up after too many.
pub fn schedule_rejoin(c: &mut ConnItem, settings: &Settings, now: Instant) {
    c.link.close(4000);
    c.transport.0 = None;
    c.link.rejoin_attempts += 1;
    if c.link.rejoin_attempts > settings.max_rejoin_attempts {
        fail(c, VoiceError::GaveUp(settings.max_rejoin_attempts));
        return;
    }
    let attempt = c.link.rejoin_attempts;
    let step = c.link.backoff_step();
    set_phase(
        c,
        ConnPhase::Reconnecting {
            attempt,
            at: now + backoff(step),
        },
    );
}

#[allow(clippy::too_many_arguments)]
pub fn run_timers(
    mut commands: Commands,
    mut conns: Query<Conn>,
    leave_waiters: Query<&LeaveWaiter>,
    gateway: Res<MainGatewayState>,
    settings: Res<Settings>,
    net: Option<Res<Net>>,
    mut outbox: ResMut<Outbox>,
    now: Res<Now>,
) {
    let now = now.0;
    let Some(net) = net else { return };
    for mut c in conns.iter_mut() {
        if *c.phase == ConnPhase::Ready && c.link.flaps > 0 {
            c.link.decay_flaps(now);
        }
        if *c.phase == ConnPhase::Ready
            && !c.waiters.0.is_empty()
            && c.dave.media_ready(&c.members, now)
        {
            if c.stage.may_speak() {
                c.waiters.resolve(Ok(()));
            } else if c
                .stage
                .waiting_since
                .is_some_and(|t| now.duration_since(t) > settings.join_timeout)
            {
                // Still in a stage's audience: tell the waiter why; the bot stays, and speaks
                // as soon as a moderator invites it.
                let why = c.stage.describe().unwrap_or_default();
                c.waiters.resolve(Err(VoiceError::StageSuppressed(why)));
            }
        }
        match c.phase.clone() {
            ConnPhase::AwaitingServer { since }
                if now.duration_since(since) > settings.join_timeout =>
            {
                let err = VoiceError::Timeout(settings.join_timeout);
                // A connection that was up (a rejoin, a new main session, a server being
                // reallocated) asks again rather than failing: Discord may simply be late. A
                // first join the user is waiting for fails with the reason instead.
                let was_up = c.stats.rejoins > 0 || c.info.reallocating;
                if c.waiters.0.is_empty() && (c.link.rejoin_attempts > 0 || was_up) {
                    schedule_rejoin(&mut c, &settings, now);
                } else {
                    fail(&mut c, err);
                }
            }
            ConnPhase::Reconnecting { at, .. } if now >= at => {
                tracing::info!(
                    "guild {}: rejoining through the main gateway",
                    c.conn.guild_id
                );
                rejoin_now(&mut c, &mut outbox, now);
            }
            ConnPhase::Resuming { attempt, at } if now >= at && c.link.tx.is_none() => {
                if attempt > MAX_RESUME_ATTEMPTS {
                    schedule_rejoin(&mut c, &settings, now);
                    continue;
                }
                if let Some(user) = gateway.user_id {
                    let seq_ack = c.link.last_seq;
                    open_voice_socket(
                        &mut outbox,
                        &net,
                        &settings,
                        user,
                        &mut c,
                        Opening::Resume { seq_ack },
                        now,
                    );
                }
            }
            ConnPhase::AwaitingMainGateway { since }
                if now.duration_since(since) > MAIN_GATEWAY_GRACE =>
            {
                if !gateway.connected {
                    // The main gateway is down (an outage, a new session on its way): it cannot
                    // have explained the close yet, and its READY will rejoin us. Wait for it.
                    set_phase(&mut c, ConnPhase::AwaitingMainGateway { since: now });
                    continue;
                }
                let code = c.stats.last_close.unwrap_or(4014);
                fail(
                    &mut c,
                    VoiceError::Closed {
                        code,
                        reason: crate::discord::close_codes::voice_close_reason(code),
                    },
                );
            }
            ConnPhase::Connecting | ConnPhase::Discovering | ConnPhase::Selecting
                if handshake_overdue(&c, now) =>
            {
                give_up_on_server(&mut c, &settings, now);
            }
            ConnPhase::Resuming { .. } if c.link.tx.is_some() && handshake_overdue(&c, now) => {
                give_up_on_server(&mut c, &settings, now);
            }
            ConnPhase::Leaving { since } if now.duration_since(since) > LEAVE_TIMEOUT => {
                finish_leave(&mut commands, &mut c, &leave_waiters);
            }
            _ => {}
        }
    }
}

fn handshake_overdue(c: &ConnItem, now: Instant) -> bool {
    c.link
        .opened_at
        .is_some_and(|at| now.duration_since(at) > HANDSHAKE_TIMEOUT)
}

/// The voice server took the socket but did not bring it to audio in time (silent, or stuck
/// mid-handshake): say so on the card and join again through the main gateway.
fn give_up_on_server(c: &mut ConnItem, settings: &Settings, now: Instant) {
    let problem = format!(
        "the voice server did not answer within {} s ({:?})",
        HANDSHAKE_TIMEOUT.as_secs(),
        *c.phase
    );
    tracing::warn!("guild {}: {problem}", c.conn.guild_id);
    c.stats.last_error = Some(problem);
    c.link.opened_at = None;
    schedule_rejoin(c, settings, now);
}

/// The leave is done (confirmed or timed out): tell the waiter, mark the connection.
pub fn finish_leave(
    commands: &mut Commands,
    c: &mut ConnItem,
    leave_waiters: &Query<&LeaveWaiter>,
) {
    if let Ok(w) = leave_waiters.get(c.entity) {
        let _ = w.0.send(());
        commands.entity(c.entity).remove::<LeaveWaiter>();
    }
    set_phase(
        c,
        ConnPhase::Disconnected {
            reason: "left the channel".into(),
        },
    );
}

/// Tells the voice task to send a JSON payload, if connected.
pub fn send_json(c: &ConnItem, payload: String) {
    c.link.send(VoiceCommand::Json(payload));
}
