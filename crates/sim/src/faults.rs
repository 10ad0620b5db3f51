//! Fault injection: what `Simulator::close_voice`, `kick`, `move_voice_server`, `main_*` do to
//! the sessions. Each function acts on the locked state; sockets are told through their mailboxes.

use serde_json::json;

use super::events::SimEvent;
use super::state::{Ctl, Shared, State, random_hex};
use super::voice_gw;

/// Fault injection on the current main connection.
pub fn inject(st: &mut State, what: MainFault) {
    let Some(sid) = st.main_current.clone() else {
        return;
    };
    let Some(conn) = st.main_sessions.get(&sid).and_then(|s| s.conn.clone()) else {
        return;
    };
    match what {
        MainFault::Reconnect => conn.send(Ctl::Send(
            json!({"op": 7, "d": null, "s": null, "t": null}).to_string(),
        )),
        MainFault::Invalidate(resumable) => {
            conn.send(Ctl::Send(
                json!({"op": 9, "d": resumable, "s": null, "t": null}).to_string(),
            ));
            if !resumable {
                st.invalidate_main(&sid);
            }
        }
        MainFault::Drop => conn.send(Ctl::Drop),
        MainFault::Close(code) => conn.send(Ctl::Close(code, "closed by the simulator".into())),
        MainFault::Outage(length) => {
            // The edge goes away mid-session and stays away longer than Discord keeps the
            // session: when it is back, the session (and the voice states with it) is gone.
            st.main_down_until = Some(std::time::Instant::now() + length);
            st.invalidate_main(&sid);
            conn.send(Ctl::Drop);
        }
    }
}

pub enum MainFault {
    Reconnect,
    Invalidate(bool),
    Drop,
    Close(u16),
    Outage(std::time::Duration),
}

/// Closes a guild's voice socket with `code`; codes after which Discord expects a resume
/// keep the session (see `voice_gw::resumable_close`), the rest end it.
pub fn close_voice(st: &mut State, guild_id: u64, code: u16) {
    let Some(vid) = st.live_voice(guild_id) else {
        return;
    };
    if voice_gw::resumable_close(code) {
        if let Some(c) = st.voice.get(&vid).and_then(|v| v.conn.clone()) {
            c.send(Ctl::Close(code, "closed by the simulator".into()));
        }
    } else {
        st.end_voice(vid, code, "closed by the simulator");
    }
}

pub fn drop_voice(st: &mut State, guild_id: u64) {
    if let Some(c) = st
        .live_voice(guild_id)
        .and_then(|vid| st.voice.get(&vid))
        .and_then(|v| v.conn.clone())
    {
        c.send(Ctl::Drop);
    }
}

/// Kick: voice close 4014, then VOICE_STATE_UPDATE with channel_id null on the main gateway.
pub fn kick(st: &mut State, guild_id: u64, bot_user_id: u64) {
    if let Some(vid) = st.live_voice(guild_id) {
        st.end_voice(vid, 4014, "kicked from the voice channel");
    }
    leave_channel(st, guild_id, bot_user_id);
}

/// The bot's network went away long enough for Discord to time its voice connection out: both
/// sockets are cut without a close frame, the voice session ends (a resume gets 4006), and
/// Discord takes the bot out of the channel. That VOICE_STATE_UPDATE waits in the main
/// session's buffer and arrives with the resume, while the voice side is reconnecting: no 4014
/// came first, which is how it differs from a moderator's kick.
pub fn network_blip(st: &mut State, guild_id: u64, bot_user_id: u64) {
    // The main socket first: its mailbox then drops before it could send the update.
    if let Some(conn) = st
        .main_current
        .as_ref()
        .and_then(|sid| st.main_sessions.get(sid))
        .and_then(|s| s.conn.clone())
    {
        conn.send(Ctl::Drop);
    }
    if let Some(vid) = st.live_voice(guild_id) {
        st.lose_voice(vid);
    }
    leave_channel(st, guild_id, bot_user_id);
}

/// Takes the bot out of the guild's voice channel: VOICE_STATE_UPDATE with no channel.
fn leave_channel(st: &mut State, guild_id: u64, bot_user_id: u64) {
    let Some(grant) = st.guild(guild_id).grant.take() else {
        return;
    };
    let d = json!({"guild_id": guild_id.to_string(), "channel_id": null, "user_id": bot_user_id.to_string(),
                   "session_id": grant.session_id, "deaf": false, "mute": false, "self_deaf": false,
                   "self_mute": false, "self_video": false, "suppress": false, "request_to_speak_timestamp": null});
    st.dispatch(&grant.main_session, "VOICE_STATE_UPDATE", d);
    st.event(SimEvent::VoiceStateUpdate {
        guild_id,
        channel_id: None,
    });
}

/// Region move: the guild's voice now lives on the other server. Sends VOICE_SERVER_UPDATE with a
/// new token; returns the old voice session, which the caller ends (4022) after a grace period.
pub fn move_voice_server(st: &mut State, shared: &Shared, guild_id: u64) -> Option<u64> {
    let gv = st.guild(guild_id);
    gv.server = 1 - gv.server;
    let old = gv.session;
    server_update(st, shared, guild_id, true)?;
    old
}

/// Sends VOICE_SERVER_UPDATE with a fresh token for the guild's current server (`endpoint: null`
/// when `real` is false: the allocated server went away). None if the bot holds no voice grant.
pub fn server_update(st: &mut State, shared: &Shared, guild_id: u64, real: bool) -> Option<()> {
    let endpoint = real.then(|| shared.voice_endpoint(st.guild(guild_id).server));
    announce_voice_server(st, guild_id, endpoint)
}

/// Sends VOICE_SERVER_UPDATE pointing at `dead_endpoint`, where nothing listens (a server that
/// failed between allocation and connect). The grant stays on the guild's real server, so the
/// client's next op 4 gets a working endpoint.
pub fn announce_unreachable_server(
    st: &mut State,
    guild_id: u64,
    dead_endpoint: String,
) -> Option<()> {
    announce_voice_server(st, guild_id, Some(dead_endpoint))
}

fn announce_voice_server(st: &mut State, guild_id: u64, endpoint: Option<String>) -> Option<()> {
    let token = st.secret(random_hex());
    let gv = st.guild(guild_id);
    let server = gv.server;
    let grant = gv.grant.as_mut()?;
    grant.server = server;
    grant.token = token;
    let (main, token) = (grant.main_session.clone(), grant.token.clone());
    st.dispatch(
        &main,
        "VOICE_SERVER_UPDATE",
        json!({"token": token, "guild_id": guild_id.to_string(), "endpoint": endpoint}),
    );
    st.event(SimEvent::VoiceServerUpdate {
        guild_id,
        endpoint: endpoint.unwrap_or_default(),
    });
    Some(())
}

/// The voice server vanished: its connection drops without a close frame and the session is gone
/// (nothing to resume), then VOICE_SERVER_UPDATE with `endpoint: null`.
pub fn lose_voice_server(st: &mut State, shared: &Shared, guild_id: u64) -> Option<()> {
    if let Some(vid) = st.live_voice(guild_id) {
        if let Some(c) = st.voice.get_mut(&vid).and_then(|v| v.conn.take()) {
            c.send(Ctl::Drop);
        }
        st.end_voice(vid, 1006, "voice server lost");
    }
    server_update(st, shared, guild_id, false)
}
