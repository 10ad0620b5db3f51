//! DAVE on the simulated voice gateway (docs/protocol.md §6, §8.2): the external sender and
//! delivery service of each call's MLS group, and virtual listeners that are real group members.
//!
//! Violation rules: `voice.dave_required` (4017), `dave.key_package`, `dave.commit`,
//! `dave.payload`, `dave.plaintext`, `dave.decrypt`, `dave.after_downgrade`.

mod api;
mod call;
mod commit;
mod external_sender;
mod listener;
mod media;
mod pair;
pub use pair::ready_pair;
mod wire;

use std::collections::hash_map::Entry;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use call::Call;
pub use media::{Received, gaps, receive};
pub use wire::transition_id;

use super::config::{ChannelKind, DaveMode, SimConfig};
use super::state::{Shared, State};
use listener::Listener;

/// Virtual listeners get user ids from here up.
const LISTENER_ID_BASE: u64 = 2_000_000_000_000_000;

/// A server message to a call participant (payload without seq/op prefix).
#[derive(Debug, Clone)]
pub enum ToClient {
    Json(u8, Value),
    Binary(u8, Vec<u8>),
}

/// A DAVE message from a participant.
#[derive(Debug, Clone)]
pub enum FromClient {
    KeyPackage(Vec<u8>),
    Commit(Vec<u8>),
    Ready(u16),
    Invalid(u16),
}

/// What a call noticed, flushed into the simulator's log by [`pump`].
pub enum Log {
    Event(super::events::SimEvent),
    Violation(&'static str, String),
}

/// The DAVE version a voice channel's call gets (docs/protocol.md §6.1): 0 for stages and with
/// DAVE off; in Optional mode the lowest version offered (listeners offer 1).
pub fn call_version(config: &SimConfig, kind: ChannelKind, offered: u16) -> u16 {
    match (config.dave, kind) {
        (_, ChannelKind::Stage) | (DaveMode::Off, _) => 0,
        (DaveMode::Required, _) => 1,
        (DaveMode::Optional, _) => offered.min(davey::DAVE_PROTOCOL_VERSION),
    }
}

/// Whether Identify must be refused with 4017.
pub fn identify_refused(config: &SimConfig, kind: Option<ChannelKind>, max_dave: u16) -> bool {
    config.dave == DaveMode::Required && kind == Some(ChannelKind::Voice) && max_dave < 1
}

pub fn channel_kind(config: &SimConfig, guild_id: u64, channel_id: u64) -> Option<ChannelKind> {
    config
        .guild(guild_id)?
        .channels
        .iter()
        .find(|c| c.id == channel_id)
        .map(|c| c.kind)
}

/// The guild's call, created (or replaced, if the bot is now in another channel) as needed.
fn call_for<'a>(
    st: &'a mut State,
    config: &SimConfig,
    guild_id: u64,
    channel_id: u64,
    offered: u16,
) -> Option<&'a mut Call> {
    if st
        .calls
        .get(&guild_id)
        .is_some_and(|c| c.channel_id != channel_id)
    {
        st.calls.remove(&guild_id);
    }
    match st.calls.entry(guild_id) {
        Entry::Occupied(e) => Some(e.into_mut()),
        Entry::Vacant(e) => {
            let kind = channel_kind(config, guild_id, channel_id)?;
            let version = call_version(config, kind, offered);
            // Stages never use DAVE, so they never up- or downgrade.
            let optional = config.dave == DaveMode::Optional && kind == ChannelKind::Voice;
            match Call::new(guild_id, channel_id, version, optional) {
                Ok(c) => Some(e.insert(c)),
                Err(err) => {
                    tracing::warn!(target: "voxboard_sim", "DAVE call setup failed: {err}");
                    None
                }
            }
        }
    }
}

/// The bot's voice session got its Session Description: it joins the call (op 11, op 25), and a
/// DAVE call gets its default listeners. Returns the call's DAVE version (for op 4 it is decided
/// before the message is built, so this is split in two: [`version_for`] then this).
pub fn join_socket(
    st: &mut State,
    config: &SimConfig,
    guild_id: u64,
    channel_id: u64,
    user: u64,
    vid: u64,
    max_dave: u16,
) {
    let now = Instant::now();
    let Some(call) = call_for(st, config, guild_id, channel_id, max_dave) else {
        return;
    };
    call.join(user, Some(vid), max_dave, now);
    let add = call.version >= 1 && !call.default_listeners_added;
    call.default_listeners_added |= add;
    if add {
        for _ in 0..config.dave_listeners {
            add_listener_to(call, config, true, now);
        }
    }
    pump(st, guild_id);
}

/// The version the bot's Session Description carries.
pub fn version_for(
    st: &State,
    config: &SimConfig,
    guild_id: u64,
    channel_id: u64,
    max_dave: u16,
) -> u16 {
    match st.calls.get(&guild_id) {
        Some(c) if c.channel_id == channel_id => c.version.min(max_dave),
        _ => channel_kind(config, guild_id, channel_id)
            .map_or(0, |k| call_version(config, k, max_dave)),
    }
}

/// `dave`: a DAVE client (a group member) or one without DAVE, like an old client in an
/// Optional call (it makes the call downgrade to version 0).
fn add_listener_to(call: &mut Call, config: &SimConfig, dave: bool, now: Instant) -> Option<u64> {
    let id = LISTENER_ID_BASE + (call.guild_id << 8) + call.listeners.len() as u64 + 1;
    let id = (id..).find(|i| !call.participants.contains_key(i))?;
    let listener = if dave {
        Listener::new(id, call.channel_id, config.listener_commit_delay)
    } else {
        Ok(Listener::without_dave(id, call.channel_id))
    };
    match listener {
        Ok(l) => {
            call.listeners.insert(id, l);
            let max_version = if dave {
                davey::DAVE_PROTOCOL_VERSION
            } else {
                0
            };
            call.join(id, None, max_version, now);
            Some(id)
        }
        Err(e) => {
            tracing::warn!(target: "voxboard_sim", "listener: {e}");
            None
        }
    }
}

/// Adds a virtual listener to the guild's call (created for the guild's first voice channel if
/// the bot has not joined yet). A listener without DAVE is refused where Discord would close it
/// with 4017: in a DAVE-required call.
pub fn add_listener(st: &mut State, config: &SimConfig, guild_id: u64, dave: bool) -> Option<u64> {
    let channel = match st.calls.get(&guild_id) {
        Some(c) => c.channel_id,
        None => {
            config
                .guild(guild_id)?
                .channels
                .iter()
                .find(|c| c.kind == ChannelKind::Voice)?
                .id
        }
    };
    let offered = if dave {
        davey::DAVE_PROTOCOL_VERSION
    } else {
        0
    };
    let call = call_for(st, config, guild_id, channel, offered)?;
    if !dave && call.version >= 1 && config.dave == DaveMode::Required {
        return None;
    }
    call.default_listeners_added = true;
    let id = add_listener_to(call, config, dave, Instant::now());
    pump(st, guild_id);
    id
}

pub fn remove_listener(st: &mut State, guild_id: u64, user: u64) {
    if let Some(call) = st.calls.get_mut(&guild_id)
        && call.listeners.remove(&user).is_some()
    {
        call.leave(user, Instant::now());
        pump(st, guild_id);
    }
}

/// A DAVE message from a socket client.
pub fn from_socket(st: &mut State, guild_id: u64, user: u64, msg: FromClient) {
    if let Some(call) = st.calls.get_mut(&guild_id) {
        call.on_client(user, msg, Instant::now());
        pump(st, guild_id);
    }
}

/// A socket participant's voice session ended.
pub fn socket_gone(st: &mut State, guild_id: u64, vid: u64) {
    let Some(call) = st.calls.get_mut(&guild_id) else {
        return;
    };
    let gone: Vec<u64> = call
        .participants
        .iter()
        .filter(|(_, p)| p.vid == Some(vid))
        .map(|(u, _)| *u)
        .collect();
    for u in gone {
        call.leave(u, Instant::now());
    }
    pump(st, guild_id);
}

/// Delivers what calls queued: to sockets (numbered, buffered for resume) and to listeners, whose
/// answers go back through the same handler as a socket client's.
pub fn pump(st: &mut State, guild_id: u64) {
    let now = Instant::now();
    loop {
        let Some(call) = st.calls.get_mut(&guild_id) else {
            return;
        };
        let logs = std::mem::take(&mut call.log);
        let next = call.out.pop_front();
        let mut to_socket = None;
        if let Some((to, msg)) = next.clone() {
            match call.participants.get(&to).map(|p| p.vid) {
                Some(Some(vid)) => to_socket = Some((vid, msg)),
                Some(None) => {
                    let replies = call
                        .listeners
                        .get_mut(&to)
                        .map(|l| l.handle(&msg, now))
                        .unwrap_or_default();
                    for r in replies {
                        call.on_client(to, r, now);
                    }
                }
                None => {}
            }
        }
        for l in logs {
            match l {
                Log::Event(e) => st.event(e),
                Log::Violation(rule, detail) => st.violation(Some(guild_id), rule, detail),
            }
        }
        match to_socket {
            Some((vid, ToClient::Json(op, d))) => st.voice_send(vid, op, d),
            Some((vid, ToClient::Binary(op, b))) => st.voice_send_binary(vid, op, &b),
            None => {}
        }
        if next.is_none() {
            return;
        }
    }
}

/// Every 10 ms: sockets whose session is gone leave, transitions time out, listeners commit.
pub async fn tick(shared: std::sync::Arc<Shared>) {
    let mut every = tokio::time::interval(Duration::from_millis(10));
    loop {
        every.tick().await;
        let now = Instant::now();
        let mut st = shared.lock();
        let guilds: Vec<u64> = st.calls.keys().copied().collect();
        for g in guilds {
            let Some(call) = st.calls.get(&g) else {
                continue;
            };
            let dead: Vec<u64> = call
                .participants
                .values()
                .filter_map(|p| p.vid)
                .filter(|vid| !st.voice.get(vid).is_some_and(|v| v.is_live(now)))
                .collect();
            for vid in dead {
                socket_gone(&mut st, g, vid);
            }
            if let Some(call) = st.calls.get_mut(&g) {
                call.tick(now);
            }
            pump(&mut st, g);
        }
    }
}
