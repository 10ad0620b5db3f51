//! Main gateway v10 (docs/protocol.md §1): Hello, heartbeat, Identify, Resume, op 4 Voice State
//! Update.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::config::ChannelKind;
use super::events::SimEvent;
use super::state::{ConnHandle, Ctl, Grant, MainSession, Shared, State, random_hex, snowflake};
use super::ws::{self, Gateway};

mod objects;
pub(crate) use objects::voice_state;
pub use objects::{channel_json, guild_create};

const MAX_PAYLOAD: usize = 4096;
const RATE_LIMIT: usize = 120;
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// `max_concurrency` 1: Identifies allowed per this window.
pub const IDENTIFY_WINDOW: Duration = Duration::from_secs(5);
const GUILDS: u64 = 1;
const GUILD_VOICE_STATES: u64 = 1 << 7;
/// GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT: privileged, and not enabled for the sim bot.
const PRIVILEGED: u64 = (1 << 1) | (1 << 8) | (1 << 15);

pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(shared.clone(), stream));
            }
            Err(e) => tracing::warn!(target: "voxboard_sim", "main accept failed: {e}"),
        }
    }
}

struct Conn {
    shared: Arc<Shared>,
    handle: ConnHandle,
    session: Option<String>,
    sends: VecDeque<Instant>,
    closing: bool,
    /// When the connection times out unless a heartbeat arrives.
    hb_deadline: Instant,
}

async fn connection(shared: Arc<Shared>, stream: TcpStream) {
    {
        let mut st = shared.lock();
        if st.main_down_until.is_some_and(|t| Instant::now() < t) {
            // An outage: the connection is cut before the websocket handshake.
            st.event(SimEvent::MainRefused);
            return;
        }
    }
    let tls = shared.config.tls.clone();
    let Ok((socket, path)) = ws::accept(stream, tls.as_ref()).await else {
        return;
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let id = shared.lock().next_id();
    let mut c = Conn {
        shared,
        handle: ConnHandle { id, tx },
        session: None,
        sends: VecDeque::new(),
        closing: false,
        hb_deadline: Instant::now(),
    };
    c.shared.lock().event(SimEvent::MainConnected {
        query: path.clone(),
    });
    c.check_query(&path);
    if !c.closing {
        let hb = c.shared.config.main_heartbeat_interval.as_millis() as u64;
        c.send(json!({"op": 10, "d": {"heartbeat_interval": hb}, "s": null, "t": null}));
    }
    c.hb_deadline = ws::heartbeat_deadline(c.shared.config.main_heartbeat_interval);
    ws::pump(socket, rx, &mut c).await;
}

impl Gateway for Conn {
    fn closing(&self) -> bool {
        self.closing
    }

    fn heartbeat_deadline(&self) -> Instant {
        self.hb_deadline
    }

    fn on_heartbeat_missed(&mut self) {
        let detail = "no heartbeat within twice the Hello interval".to_string();
        self.fail(4009, "main.heartbeat_missed", detail);
    }

    fn on_text(&mut self, text: &str) {
        self.text(text);
    }

    fn on_binary(&mut self, _: &[u8]) {
        self.fail(
            4002,
            "main.decode",
            "binary frame on a JSON connection".into(),
        );
    }

    /// The session survives its socket for resume, except after a close that ends it: the
    /// client's 1000/1001 or the server codes that call for a new session
    /// (docs/protocol.md §1.2, §1.8).
    fn on_end(&mut self, code: Option<u16>, by_server: bool) {
        let mut st = self.shared.lock();
        if let Some(sid) = &self.session
            && let Some(s) = st.main_sessions.get_mut(sid)
            && s.conn.as_ref().is_some_and(|c| c.id == self.handle.id)
        {
            s.conn = None;
        }
        st.event(SimEvent::MainClosed { code });
        let ends = match (code, by_server) {
            (Some(c), true) => matches!(c, 1000 | 1001 | 4003 | 4004 | 4007 | 4009..=4014),
            (Some(c), false) => matches!(c, 1000 | 1001),
            (None, _) => false,
        };
        if ends && let Some(sid) = &self.session {
            st.invalidate_main(sid);
        }
    }
}

impl Conn {
    fn send(&self, v: Value) {
        self.handle.send(Ctl::Send(v.to_string()));
    }

    /// Records the breach and closes with `code` after anything already queued.
    fn fail(&mut self, code: u16, rule: &str, detail: String) {
        self.shared.lock().violation(None, rule, detail.clone());
        self.handle.send(Ctl::Close(code, detail));
        self.closing = true;
    }

    fn check_query(&mut self, path: &str) {
        match ws::query_param(path, "v").as_deref() {
            Some("10") => {}
            v => {
                return self.fail(
                    4012,
                    "main.version",
                    format!("gateway version {v:?}, the simulator speaks v=10"),
                );
            }
        }
        match ws::query_param(path, "encoding").as_deref() {
            Some("json") => {}
            None => self.shared.lock().violation(
                None,
                "main.query",
                "no explicit encoding=json in the URL",
            ),
            Some(e) => self.fail(
                4012,
                "main.encoding",
                format!("encoding {e:?} is not supported (json only)"),
            ),
        }
        if let Some(z) = ws::query_param(path, "compress") {
            self.fail(
                4012,
                "main.compress",
                format!("compress={z} is not supported by the simulator"),
            );
        }
    }

    fn text(&mut self, text: &str) {
        let now = Instant::now();
        self.sends.push_back(now);
        while self
            .sends
            .front()
            .is_some_and(|t| now.duration_since(*t) > RATE_WINDOW)
        {
            self.sends.pop_front();
        }
        if self.sends.len() > RATE_LIMIT {
            return self.fail(
                4008,
                "main.rate_limit",
                format!("more than {RATE_LIMIT} payloads in 60 s"),
            );
        }
        if text.len() > MAX_PAYLOAD {
            return self.fail(
                4002,
                "main.payload_size",
                format!("{} bytes > {MAX_PAYLOAD}", text.len()),
            );
        }
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return self.fail(4002, "main.decode", format!("not JSON: {:.80}", text));
        };
        let Some(op) = v.get("op").and_then(Value::as_u64) else {
            return self.fail(4002, "main.decode", "payload without an integer op".into());
        };
        let d = v.get("d").cloned().unwrap_or(Value::Null);
        let authed = self
            .session
            .as_ref()
            .is_some_and(|s| self.shared.lock().main_sessions.contains_key(s));
        match op {
            1 => {
                self.hb_deadline =
                    ws::heartbeat_deadline(self.shared.config.main_heartbeat_interval);
                self.shared
                    .lock()
                    .event(SimEvent::MainHeartbeat { seq: d.as_u64() });
                self.send(json!({"op": 11, "d": null, "s": null, "t": null}));
            }
            2 if self.session.is_some() => {
                self.fail(4005, "main.identify_twice", "second Identify".into())
            }
            2 => self.identify(&d),
            6 if self.session.is_some() => self.fail(
                4005,
                "main.resume_authed",
                "Resume on an identified connection".into(),
            ),
            6 => self.resume(&d),
            _ if !authed => self.fail(
                4003,
                "main.not_authenticated",
                format!("op {op} before Identify"),
            ),
            4 => self.voice_state_update(&d),
            // Presence, guild members, soundboard sounds, channel info: valid, nothing to simulate.
            3 | 8 | 31 | 43 => tracing::debug!(target: "voxboard_sim", op, "main op ignored"),
            _ => self.fail(
                4001,
                "main.unknown_op",
                format!("op {op} is not a client opcode"),
            ),
        }
    }

    fn identify(&mut self, d: &Value) {
        let cfg = &self.shared.config;
        if d.get("token").and_then(Value::as_str) != Some(cfg.bot_token.as_str()) {
            return self.fail(4004, "main.auth", "Identify with a wrong token".into());
        }
        let Some(intents) = d.get("intents").and_then(Value::as_u64) else {
            return self.fail(
                4013,
                "main.intents",
                "Identify without integer intents".into(),
            );
        };
        if intents & (GUILDS | GUILD_VOICE_STATES) != GUILDS | GUILD_VOICE_STATES {
            return self.fail(
                4013,
                "main.intents",
                format!("intents {intents} lack GUILDS|GUILD_VOICE_STATES"),
            );
        }
        if intents & PRIVILEGED != 0 {
            return self.fail(
                4014,
                "main.intents",
                format!("intents {intents} ask for privileged intents"),
            );
        }
        let mut st = self.shared.lock();
        let now = Instant::now();
        if st
            .last_identify
            .is_some_and(|t| now.duration_since(t) < IDENTIFY_WINDOW)
        {
            // max_concurrency 1: one Identify per 5 s; Discord answers a faster one with op 9.
            st.event(SimEvent::IdentifyRateLimited);
            drop(st);
            self.send(json!({"op": 9, "d": false, "s": null, "t": null}));
            return;
        }
        if st.identifies >= cfg.session_start_limit {
            drop(st);
            return self.fail(
                4004,
                "main.session_limit",
                format!(
                    "Identify past the day's {} session starts: Discord resets the bot token",
                    cfg.session_start_limit
                ),
            );
        }
        st.identifies += 1;
        st.last_identify = Some(now);
        let sid = st.secret(random_hex());
        if !d.get("properties").is_some_and(Value::is_object) {
            st.violation(
                None,
                "main.identify_properties",
                "Identify without a properties object",
            );
        }
        st.event(SimEvent::MainIdentify { intents });
        st.main_sessions.insert(
            sid.clone(),
            MainSession {
                seq: 0,
                buffer: Vec::new(),
                conn: Some(self.handle.clone()),
            },
        );
        st.main_current = Some(sid.clone());
        let uid = cfg.bot_user_id.to_string();
        let guild_stubs: Vec<Value> = st
            .guilds_now
            .iter()
            .map(|g| json!({"id": g.id.to_string(), "unavailable": true}))
            .collect();
        let resume_url =
            (cfg.resume_gateway_url.clone()).unwrap_or_else(|| self.shared.gateway_url());
        let ready = json!({
            "v": 10,
            "user": {"id": uid, "username": "voxboard-sim", "discriminator": "0", "global_name": null, "bot": true},
            "guilds": guild_stubs,
            "session_id": sid,
            "resume_gateway_url": resume_url,
            "application": {"id": uid, "flags": 0},
        });
        st.dispatch(&sid, "READY", ready);
        let creates: Vec<Value> = st
            .guilds_now
            .iter()
            .filter(|g| !g.unavailable)
            .map(guild_create)
            .collect();
        for g in creates {
            st.dispatch(&sid, "GUILD_CREATE", g);
        }
        self.session = Some(sid);
    }

    fn resume(&mut self, d: &Value) {
        if d.get("token").and_then(Value::as_str) != Some(self.shared.config.bot_token.as_str()) {
            return self.fail(4004, "main.auth", "Resume with a wrong token".into());
        }
        let sid = d
            .get("session_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let seq = d.get("seq").and_then(Value::as_u64);
        let mut st = self.shared.lock();
        st.event(SimEvent::MainResume {
            seq: seq.unwrap_or(0),
        });
        let Some(s) = st.main_sessions.get_mut(&sid) else {
            drop(st);
            // Unknown or invalidated session: op 9 false, the client must Identify again.
            self.send(json!({"op": 9, "d": false, "s": null, "t": null}));
            return;
        };
        let seq = seq.unwrap_or(0);
        if seq > s.seq {
            let last = s.seq;
            drop(st);
            return self.fail(
                4007,
                "main.resume_seq",
                format!("Resume seq {seq} is ahead of the session's last {last}"),
            );
        }
        if let Some(old) = s.conn.replace(self.handle.clone())
            && old.id != self.handle.id
        {
            old.send(Ctl::Drop);
        }
        let missed: Vec<String> = s
            .buffer
            .iter()
            .filter(|(n, _)| *n > seq)
            .map(|(_, t)| t.clone())
            .collect();
        for t in &missed {
            self.handle.send(Ctl::Send(t.clone()));
        }
        st.dispatch(&sid, "RESUMED", json!({}));
        st.event(SimEvent::MainResumed {
            replayed: missed.len(),
        });
        st.main_current = Some(sid.clone());
        self.session = Some(sid);
    }

    fn voice_state_update(&mut self, d: &Value) {
        let guild_id = d.get("guild_id").and_then(snowflake);
        let channel = d.get("channel_id");
        let channel_id = channel.and_then(snowflake);
        let bools = ["self_mute", "self_deaf"]
            .iter()
            .all(|k| d.get(*k).is_some_and(Value::is_boolean));
        let (Some(guild_id), Some(channel)) = (guild_id, channel) else {
            return self.fail(
                4001,
                "main.op4_payload",
                format!("op 4 needs guild_id and channel_id: {d}"),
            );
        };
        if !channel.is_null() && channel_id.is_none() {
            return self.fail(
                4001,
                "main.op4_payload",
                format!("op 4 channel_id is not a snowflake: {channel}"),
            );
        }
        if !bools {
            return self.fail(
                4001,
                "main.op4_payload",
                format!("op 4 self_mute/self_deaf must be booleans: {d}"),
            );
        }
        let self_mute = d.get("self_mute").and_then(Value::as_bool).unwrap_or(false);
        let self_deaf = d.get("self_deaf").and_then(Value::as_bool).unwrap_or(false);
        let Some(sid) = self.session.clone() else {
            return;
        };
        let shared = self.shared.clone();
        let mut st = shared.lock();
        st.event(SimEvent::VoiceStateRequest {
            guild_id,
            channel_id,
            self_deaf,
        });
        if st.guild_now(guild_id).is_some_and(|g| g.unavailable) {
            return; // a guild in an outage answers nothing
        }
        let Some(guild) = st.guild_now(guild_id).cloned() else {
            // Discord sends nothing back for a guild the bot is not in.
            return st.violation(
                Some(guild_id),
                "main.op4_unknown_guild",
                format!("guild {guild_id} is not one of the bot's guilds"),
            );
        };
        let uid = shared.config.bot_user_id.to_string();
        match channel_id {
            Some(ch) => {
                let Some(chan) = guild
                    .channels
                    .iter()
                    .find(|c| c.id == ch && c.kind.is_voice())
                else {
                    return st.violation(
                        Some(guild_id),
                        "main.op4_not_voice",
                        format!("channel {ch} is not a voice or stage channel of guild {guild_id}"),
                    );
                };
                let server = st.guild(guild_id).server;
                let unchanged = st.guild(guild_id).grant.as_ref().is_some_and(|g| {
                    g.main_session == sid
                        && g.channel_id == ch
                        && (g.self_mute, g.self_deaf) == (self_mute, self_deaf)
                });
                if unchanged {
                    // The bot is already there as asked: its voice state does not change, so
                    // Discord sends no VOICE_STATE_UPDATE, only a new server and token
                    // (discordjs/voice#58, #139: a client that waits for both hangs).
                    return rejoin_same_channel(&mut st, &shared, &sid, guild_id, server);
                }
                // A new join (or move) means a new voice session: the old one is over.
                if let Some(vid) = st.guild(guild_id).session {
                    st.end_voice(vid, 4014, "moved to another channel");
                }
                let grant = Grant {
                    main_session: sid.clone(),
                    // A voice state's session id is the gateway session's, as on Discord.
                    session_id: sid.clone(),
                    token: st.secret(random_hex()),
                    channel_id: ch,
                    server,
                    self_mute,
                    self_deaf,
                };
                // A stage is joined in the audience: Discord forwards none of the bot's audio
                // until it is made a speaker (rest.rs). A move within the same stage keeps it.
                let stage = chan.kind == ChannelKind::Stage;
                let voice = st.guild(guild_id);
                let same_channel = voice.grant.as_ref().is_some_and(|g| g.channel_id == ch);
                if !same_channel {
                    voice.suppressed = stage;
                    voice.request_to_speak = None;
                }
                let (suppressed, hand) = (voice.suppressed, voice.request_to_speak.clone());
                let vsu = voice_state(
                    guild_id,
                    Some(ch),
                    &uid,
                    &grant.session_id,
                    self_mute,
                    self_deaf,
                    suppressed,
                    hand.as_deref(),
                );
                // A voice state change is a guild event: every session of the bot sees it (so a
                // second client with the same token taking the bot is visible to the first).
                st.dispatch_all("VOICE_STATE_UPDATE", vsu);
                st.event(SimEvent::VoiceStateUpdate {
                    guild_id,
                    channel_id: Some(ch),
                });
                let endpoint = shared.voice_endpoint(server);
                st.dispatch(&sid, "VOICE_SERVER_UPDATE", json!({"token": grant.token, "guild_id": guild_id.to_string(), "endpoint": endpoint}));
                st.event(SimEvent::VoiceServerUpdate { guild_id, endpoint });
                st.guild(guild_id).grant = Some(grant);
            }
            None => {
                if let Some(vid) = st.guild(guild_id).session {
                    st.end_voice(vid, 4014, "left the voice channel");
                }
                let voice = st.guild(guild_id);
                let old = voice.grant.take();
                (voice.suppressed, voice.request_to_speak) = (false, None);
                let vsid = old.map_or_else(|| sid.clone(), |g| g.session_id);
                st.dispatch_all(
                    "VOICE_STATE_UPDATE",
                    voice_state(
                        guild_id, None, &uid, &vsid, self_mute, self_deaf, false, None,
                    ),
                );
                st.event(SimEvent::VoiceStateUpdate {
                    guild_id,
                    channel_id: None,
                });
            }
        }
    }
}

/// op 4 for the channel the bot is already in: VOICE_SERVER_UPDATE alone, with a new token for
/// the same voice session id; a voice connection still open on the old token is over.
fn rejoin_same_channel(st: &mut State, shared: &Shared, sid: &str, guild_id: u64, server: usize) {
    if let Some(vid) = st.guild(guild_id).session {
        st.end_voice(vid, 4006, "a new voice server update replaced the session");
    }
    let token = st.secret(random_hex());
    if let Some(grant) = st.guild(guild_id).grant.as_mut() {
        grant.token = token.clone();
        grant.server = server;
    }
    let endpoint = shared.voice_endpoint(server);
    st.dispatch(
        sid,
        "VOICE_SERVER_UPDATE",
        json!({"token": token, "guild_id": guild_id.to_string(), "endpoint": endpoint}),
    );
    st.event(SimEvent::VoiceServerUpdate { guild_id, endpoint });
}

/// The bot's voice state in a guild changed without an op 4 (a stage speaker request, a
/// moderator): every session of the bot gets the new VOICE_STATE_UPDATE.
pub fn dispatch_bot_voice_state(st: &mut State, shared: &Shared, guild_id: u64) {
    let voice = st.guild(guild_id);
    let Some(grant) = voice.grant.clone() else {
        return;
    };
    let vsu = voice_state(
        guild_id,
        Some(grant.channel_id),
        &shared.config.bot_user_id.to_string(),
        &grant.session_id,
        grant.self_mute,
        grant.self_deaf,
        voice.suppressed,
        voice.request_to_speak.clone().as_deref(),
    );
    st.dispatch_all("VOICE_STATE_UPDATE", vsu);
    st.event(SimEvent::VoiceStateUpdate {
        guild_id,
        channel_id: Some(grant.channel_id),
    });
}
