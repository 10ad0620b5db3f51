//! Network events in: the main gateway's dispatches and each voice socket's messages.

use std::time::Instant;

use bevy_ecs::prelude::*;

use super::components::*;
use super::connection::{
    Conn, ConnItem, LeaveWaiter, fail, finish_leave, open_voice_socket, set_phase,
};
use super::network::Outbox;
use super::{ConnIndex, Inbox, MainGatewayState, Net, NetEvent, Now, Settings, VoiceError};
use crate::discord::gateway::payloads::ChannelKind;
use crate::discord::gateway::{GatewayError, GatewayEvent};
use crate::discord::voice_gateway::Opening;

#[allow(clippy::too_many_arguments)]
pub fn ingest_net_events(
    mut commands: Commands,
    mut inbox: ResMut<Inbox>,
    mut gateway: ResMut<MainGatewayState>,
    index: Res<ConnIndex>,
    mut conns: Query<Conn>,
    leave_waiters: Query<&LeaveWaiter>,
    settings: Res<Settings>,
    net: Option<Res<Net>>,
    mut outbox: ResMut<Outbox>,
    now: Res<Now>,
) {
    let now = now.0;
    let Some(net) = net else {
        inbox.net.clear();
        return;
    };
    for event in std::mem::take(&mut inbox.net) {
        match event {
            NetEvent::Gateway(event) => on_gateway_event(
                event,
                &mut gateway,
                &index,
                &mut conns,
                &mut commands,
                &leave_waiters,
                &mut outbox,
                &net,
                &settings,
                now,
            ),
            NetEvent::Voice {
                guild_id,
                generation,
                event,
            } => {
                let Some(mut c) = index.0.get(&guild_id).and_then(|e| conns.get_mut(*e).ok())
                else {
                    continue;
                };
                if c.link.generation != generation {
                    continue; // a socket we already replaced
                }
                let Some(user_id) = gateway.user_id else {
                    continue;
                };
                super::voice_events::on_voice_event(
                    event,
                    &mut c,
                    &mut outbox,
                    &settings,
                    user_id,
                    now,
                );
            }
            NetEvent::Discovered {
                guild_id,
                generation,
                result,
            } => {
                let Some(mut c) = index.0.get(&guild_id).and_then(|e| conns.get_mut(*e).ok())
                else {
                    continue;
                };
                if c.link.generation != generation || *c.phase != ConnPhase::Discovering {
                    continue;
                }
                super::voice_events::on_discovered(result, &mut c, &settings, now);
            }
            NetEvent::Speak {
                guild_id,
                channel_id,
                outcome,
            } => {
                if let Some(mut c) = index.0.get(&guild_id).and_then(|e| conns.get_mut(*e).ok()) {
                    super::stage::on_speak_outcome(&mut c.stage, guild_id, channel_id, outcome);
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn on_gateway_event(
    event: GatewayEvent,
    gateway: &mut MainGatewayState,
    index: &ConnIndex,
    conns: &mut Query<Conn>,
    commands: &mut Commands,
    leave_waiters: &Query<&LeaveWaiter>,
    outbox: &mut Outbox,
    net: &Net,
    settings: &Settings,
    now: Instant,
) {
    match event {
        GatewayEvent::Ready {
            user_id,
            session_id,
            guild_ids,
        } => {
            gateway.session_id = Some(session_id);
            if gateway.user_id.is_some() {
                // A new main session (not a resume): Discord dropped our voice states with the
                // old one, so every connection we still want joins again.
                rejoin_all(conns, outbox, now);
            }
            gateway.user_id = Some(user_id);
            gateway.ready = true;
            gateway.connected = true;
            gateway.trouble = None;
            gateway.pending_guilds = guild_ids
                .into_iter()
                .filter(|g| !gateway.guilds.contains_key(g))
                .collect();
            gateway.last_guild_event = Some(now);
            settle(gateway, conns);
        }
        GatewayEvent::Resumed => {
            gateway.trouble = None;
            gateway.connected = true;
        }
        GatewayEvent::Reconnecting { error, .. } => {
            gateway.reconnects += 1;
            gateway.connected = false;
            if error.is_some() {
                gateway.trouble = error;
            }
        }
        GatewayEvent::Guild(guild) => {
            gateway.pending_guilds.remove(&guild.id);
            if gateway.unavailable.remove(&guild.id) {
                tracing::info!("guild {} is available again", guild.id);
            }
            gateway.last_guild_event = Some(now);
            gateway.members.seed(guild.id, &guild.voice_states);
            gateway.guilds.insert(guild.id, guild);
            settle(gateway, conns);
        }
        GatewayEvent::Channel { guild_id, channel } => {
            if let Some(guild) = gateway.guilds.get_mut(&guild_id) {
                match guild.channels.iter_mut().find(|c| c.id == channel.id) {
                    Some(known) => *known = channel,
                    None => guild.channels.push(channel),
                }
            }
        }
        GatewayEvent::ChannelDeleted {
            guild_id,
            channel_id,
        } => {
            if let Some(guild) = gateway.guilds.get_mut(&guild_id) {
                guild.channels.retain(|c| c.id != channel_id);
            }
        }
        GatewayEvent::GuildDeleted {
            guild_id,
            unavailable,
        } => {
            gateway.guilds.remove(&guild_id);
            gateway.pending_guilds.remove(&guild_id);
            if unavailable {
                tracing::warn!("guild {guild_id} became unavailable (a Discord outage?)");
                gateway.unavailable.insert(guild_id);
            } else if let Some(mut c) = index.0.get(&guild_id).and_then(|e| conns.get_mut(*e).ok())
                && !c.phase.is_over()
            {
                // Removed from the guild: its voice connection is over too.
                fail(&mut c, VoiceError::UnknownGuild(guild_id));
            }
        }
        GatewayEvent::Fatal(error) => {
            let error = match error {
                GatewayError::AuthenticationFailed => VoiceError::AuthenticationFailed,
                other => VoiceError::GatewayRefused(other.to_string()),
            };
            gateway.fatal = Some(error.clone());
            for w in gateway.waiters.drain(..) {
                let _ = w.send(Err(error.clone()));
            }
            for mut c in conns.iter_mut() {
                if !c.phase.is_over() {
                    fail(&mut c, error.clone());
                }
            }
        }
        GatewayEvent::VoiceState(vs) => {
            if Some(vs.user_id) != gateway.user_id {
                let bot_channel = index
                    .0
                    .get(&vs.guild_id)
                    .and_then(|e| conns.get(*e).ok())
                    .filter(|c| !c.phase.is_over())
                    .map(|c| c.conn.channel_id);
                let (guild, user, channel) = (vs.guild_id, vs.user_id, vs.channel_id);
                gateway
                    .members
                    .on_voice_state(guild, user, channel, bot_channel);
                return;
            }
            let Some(mut c) = index
                .0
                .get(&vs.guild_id)
                .and_then(|e| conns.get_mut(*e).ok())
            else {
                return;
            };
            match vs.channel_id {
                None => match c.phase.clone() {
                    ConnPhase::Leaving { .. } => finish_leave(commands, &mut c, leave_waiters),
                    phase if phase.is_over() => {}
                    phase if lost_connection(&c, &phase) => {
                        // Our socket was already gone, without a 4014: Discord timed our voice
                        // connection out during a network blip. Not a kick: join again.
                        let why = "Discord dropped the bot from the channel while its \
                                   connection was down; joining again";
                        tracing::warn!("guild {}: {why}", c.conn.guild_id);
                        c.stats.last_error = Some(why.into());
                        super::connection::forget_voice_state(&mut c);
                        if let ConnPhase::AwaitingServer { .. } = phase {
                            // Our rejoin's op 4 is already on its way and reaches Discord after
                            // this removal, so it is a new join: both dispatches will come.
                            set_phase(&mut c, ConnPhase::AwaitingServer { since: now });
                        } else {
                            super::connection::rejoin_now(&mut c, outbox, now);
                        }
                    }
                    _ => {
                        // Removed from the channel by someone else: never auto-rejoin a kick.
                        fail(&mut c, VoiceError::Kicked);
                    }
                },
                Some(channel_id) => {
                    if matches!(*c.phase, ConnPhase::Leaving { .. }) || c.phase.is_over() {
                        return;
                    }
                    if gateway
                        .session_id
                        .as_ref()
                        .is_some_and(|ours| *ours != vs.session_id)
                    {
                        // Discord moved the bot's voice to another gateway session: someone
                        // else runs this bot. Rejoining would only start a tug of war.
                        fail(&mut c, VoiceError::TakenOver);
                        return;
                    }
                    c.conn.channel_id = channel_id;
                    let is_stage = gateway.guilds.get(&vs.guild_id).is_some_and(|g| {
                        g.channels
                            .iter()
                            .any(|ch| ch.id == channel_id && ch.kind == ChannelKind::Stage)
                    });
                    c.stage.on_voice_state(&vs, is_stage, now);
                    c.info.session_id = Some(vs.session_id);
                    maybe_connect(&mut c, outbox, net, settings, gateway.user_id, now);
                }
            }
        }
        GatewayEvent::VoiceServer(server) => {
            let Some(mut c) = index
                .0
                .get(&server.guild_id)
                .and_then(|e| conns.get_mut(*e).ok())
            else {
                return;
            };
            if matches!(*c.phase, ConnPhase::Leaving { .. }) || c.phase.is_over() {
                return;
            }
            let had_session = c.transport.0.is_some() || c.link.tx.is_some();
            if server.endpoint.is_none() {
                // Discord is reallocating the voice server: drop the old one, wait for the next.
                tracing::info!(
                    "guild {}: voice server going away, waiting for a new one",
                    server.guild_id
                );
                c.link.close(4000);
                c.transport.0 = None;
                c.info.server = None;
                c.info.reallocating = true;
                c.stats.last_error = Some(
                    "Discord is moving this call to another voice server; waiting for it".into(),
                );
                set_phase(&mut c, ConnPhase::AwaitingServer { since: now });
                return;
            }
            c.info.reallocating = false;
            if had_session {
                tracing::info!(
                    "guild {}: moving to voice server {:?}",
                    server.guild_id,
                    server.endpoint
                );
                c.stats.moves += 1;
            }
            c.info.server = Some(server);
            // Each server update carries a new token: a fresh Identify, never a resume.
            c.link.close(1000);
            c.transport.0 = None;
            set_phase(&mut c, ConnPhase::AwaitingServer { since: now });
            maybe_connect(&mut c, outbox, net, settings, gateway.user_id, now);
        }
    }
}

/// Whether the connection was recovering from a socket lost for a reason other than a 4014
/// (resuming, or rejoining after a failed resume or handshake). A moderator's kick closes the
/// live socket with 4014 first; a voice state with no channel now is Discord timing us out.
fn lost_connection(c: &ConnItem, phase: &ConnPhase) -> bool {
    matches!(
        phase,
        ConnPhase::Resuming { .. } | ConnPhase::Reconnecting { .. }
    ) || (c.link.rejoin_attempts > 0 && !matches!(phase, ConnPhase::AwaitingMainGateway { .. }))
}

fn rejoin_all(conns: &mut Query<Conn>, outbox: &mut Outbox, now: Instant) {
    for mut c in conns.iter_mut() {
        if c.phase.is_over() || matches!(*c.phase, ConnPhase::Leaving { .. }) {
            continue;
        }
        tracing::info!(
            "guild {}: main session replaced, joining again",
            c.conn.guild_id
        );
        super::connection::forget_voice_state(&mut c);
        super::connection::rejoin_now(&mut c, outbox, now);
    }
}

/// Guilds still missing [`GUILD_WAIT`] after READY are in an outage: they must not hold up
/// the guilds that are fine (a join into one of them is refused with the reason).
pub fn settle_unavailable_guilds(
    mut gateway: ResMut<MainGatewayState>,
    mut conns: Query<Conn>,
    now: Res<Now>,
) {
    let overdue = gateway
        .last_guild_event
        .is_some_and(|t| now.0.duration_since(t) >= super::GUILD_WAIT);
    if !gateway.ready || gateway.pending_guilds.is_empty() || !overdue {
        return;
    }
    let missing = std::mem::take(&mut gateway.pending_guilds);
    tracing::warn!("guilds {missing:?} are unavailable (a Discord outage?); going on without them");
    gateway.unavailable.extend(missing);
    settle(&mut gateway, &mut conns);
}

/// Once READY and all its guilds are in: answers `AwaitGateway` callers, and refuses joins
/// made earlier that name an unknown guild or a channel that is not a voice channel.
fn settle(gateway: &mut MainGatewayState, conns: &mut Query<Conn>) {
    let (true, true, Some(user)) = (
        gateway.ready,
        gateway.pending_guilds.is_empty(),
        gateway.user_id,
    ) else {
        return;
    };
    for w in gateway.waiters.drain(..) {
        let _ = w.send(Ok(user));
    }
    for mut c in conns.iter_mut() {
        if matches!(*c.phase, ConnPhase::AwaitingServer { .. })
            && let Err(e) =
                super::connection::validate_join(gateway, c.conn.guild_id, c.conn.channel_id)
        {
            fail(&mut c, e);
        }
    }
}

/// Opens the voice socket once both dispatches of a join (or move) have arrived.
fn maybe_connect(
    c: &mut ConnItem,
    outbox: &mut Outbox,
    net: &Net,
    settings: &Settings,
    user_id: Option<u64>,
    now: Instant,
) {
    let waiting = matches!(
        *c.phase,
        ConnPhase::AwaitingServer { .. } | ConnPhase::AwaitingMainGateway { .. }
    );
    let have_both =
        c.info.session_id.is_some() && c.info.server.as_ref().is_some_and(|s| s.endpoint.is_some());
    if let (true, true, Some(user)) = (waiting, have_both, user_id) {
        c.link.last_seq = -1;
        open_voice_socket(
            outbox,
            net,
            settings,
            user,
            c,
            Opening::Identify {
                max_dave_protocol_version: settings.max_dave_protocol_version,
            },
            now,
        );
        set_phase(c, ConnPhase::Connecting);
    }
}
