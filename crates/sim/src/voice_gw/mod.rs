//! Voice gateway v8 (docs/protocol.md §2, §3): Hello, Identify, Ready, Select Protocol, Session
//! Description, Speaking, heartbeats with `seq_ack`, and buffered Resume.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::dave::{self, FromClient};
use super::events::SimEvent;
use super::rtp::TransportCipher;
use super::state::{ConnHandle, Ctl, RtpTrack, Shared, VoiceSession, random_hex, snowflake};
use super::ws::{self, Gateway};

mod media_ops;

/// Client opcodes that are valid but have nothing to do here: the undocumented ones real clients
/// send (12, 14, 15, 16, 18, 20; docs/protocol.md §3.2).
const TOLERATED_OPS: [u64; 6] = [12, 14, 15, 16, 18, 20];
/// DAVE client ops: JSON 23 (ready) and 31 (invalid commit/welcome), binary 26 (key package) and
/// 28 (commit/welcome). Ignored while the call's DAVE version is 0.
const DAVE_OPS: [u64; 2] = [23, 31];
const DAVE_BINARY_OPS: [u8; 2] = [26, 28];

pub async fn serve(shared: Arc<Shared>, server: usize, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(shared.clone(), server, stream));
            }
            Err(e) => tracing::warn!(target: "voxboard_sim", "voice accept failed: {e}"),
        }
    }
}

struct Conn {
    shared: Arc<Shared>,
    server: usize,
    handle: ConnHandle,
    /// The voice session this socket is bound to (after Identify or Resume).
    session: Option<u64>,
    guild_id: Option<u64>,
    closing: bool,
    /// When the connection times out unless a heartbeat arrives.
    hb_deadline: Instant,
}

async fn connection(shared: Arc<Shared>, server: usize, stream: TcpStream) {
    let tls = shared.config.tls.clone();
    let Ok((socket, path)) = ws::accept(stream, tls.as_ref()).await else {
        return;
    };
    let silent = {
        let mut st = shared.lock();
        let left = &mut st.silent_connections[server];
        let silent = *left > 0;
        *left = left.saturating_sub(1);
        silent
    };
    if silent {
        shared.lock().event(SimEvent::VoiceConnected {
            server,
            query: path,
        });
        // Accepted, then nothing: read and drop whatever comes until the client gives up.
        let mut socket = socket;
        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut socket).await {}
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let id = shared.lock().next_id();
    let mut c = Conn {
        shared,
        server,
        handle: ConnHandle { id, tx },
        session: None,
        guild_id: None,
        closing: false,
        hb_deadline: Instant::now(),
    };
    c.shared.lock().event(SimEvent::VoiceConnected {
        server,
        query: path.clone(),
    });
    c.check_version(&path);
    if !c.closing {
        let hb = c.shared.config.voice_heartbeat_interval.as_millis() as u64;
        // Hello is per connection, so it is not numbered (docs/protocol.md §3.1, §8.1).
        c.send_raw(json!({"op": 8, "d": {"heartbeat_interval": hb, "v": 8}}));
    }
    c.hb_deadline = ws::heartbeat_deadline(c.shared.config.voice_heartbeat_interval);
    ws::pump(socket, rx, &mut c).await;
}

/// Whether a server-side voice close leaves the session resumable (docs/protocol.md §3.4): 4015
/// (voice server crashed) and network-level codes do; 1000/1001 and every other 4xxx end it.
pub fn resumable_close(code: u16) -> bool {
    code == 4015 || (code < 4000 && !matches!(code, 1000 | 1001))
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
        self.fail(4009, "voice.heartbeat_missed", detail);
    }

    fn on_text(&mut self, text: &str) {
        self.text(text);
    }

    fn on_binary(&mut self, bytes: &[u8]) {
        self.binary(bytes);
    }

    fn on_end(&mut self, code: Option<u16>, by_server: bool) {
        self.gone(code, by_server);
    }
}

impl Conn {
    fn send_raw(&self, v: Value) {
        self.handle.send(Ctl::Send(v.to_string()));
    }

    fn fail(&mut self, code: u16, rule: &str, detail: String) {
        self.shared
            .lock()
            .violation(self.guild_id, rule, detail.clone());
        self.handle.send(Ctl::Close(code, detail));
        self.closing = true;
    }

    /// Discord rejects a missing `v` or `v` < 4 (docs/protocol.md §2) without naming the code;
    /// 4012 ("unknown protocol") is the closest documented one. Versions 4–7 exist at Discord, but
    /// they frame messages differently (no seq) and Voxboard must speak v8, so they are refused
    /// here too.
    fn check_version(&mut self, path: &str) {
        let v = ws::query_param(path, "v");
        match v.as_deref().map(str::parse::<u32>) {
            Some(Ok(8)) => {}
            Some(Ok(n)) if (4..8).contains(&n) => self.fail(
                4012,
                "voice.version",
                format!("voice gateway v={n}: the simulator (and Voxboard) speak v8 only"),
            ),
            _ => self.fail(
                4012,
                "voice.version",
                format!(
                    "voice gateway version {v:?} missing or below 4 (rejected since 2024-11-18)"
                ),
            ),
        }
    }

    fn text(&mut self, text: &str) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return self.fail(4002, "voice.decode", format!("not JSON: {text:.80}"));
        };
        let Some(op) = v.get("op").and_then(Value::as_u64) else {
            return self.fail(4002, "voice.decode", "payload without an integer op".into());
        };
        let d = v.get("d").cloned().unwrap_or(Value::Null);
        match op {
            3 => self.heartbeat(&d),
            0 if self.session.is_some() => {
                self.fail(4005, "voice.identify_twice", "second Identify".into())
            }
            7 if self.session.is_some() => self.fail(
                4005,
                "voice.resume_authed",
                "Resume on an identified socket".into(),
            ),
            0 => self.identify(&d),
            7 => self.resume(&d),
            _ if self.session.is_none() => self.fail(
                4003,
                "voice.not_authenticated",
                format!("op {op} before Identify"),
            ),
            1 => self.select_protocol(&d),
            5 => self.speaking(&d),
            op if DAVE_OPS.contains(&op) => {
                let msg = match (op, dave::transition_id(&d)) {
                    (23, Some(t)) => Some(FromClient::Ready(t)),
                    (31, Some(t)) => Some(FromClient::Invalid(t)),
                    _ => None,
                };
                self.dave(msg, || format!("op {op} needs a u16 transition_id: {d}"));
            }
            op if TOLERATED_OPS.contains(&op) => {
                tracing::debug!(target: "voxboard_sim", op, "voice op tolerated")
            }
            _ => self.fail(
                4001,
                "voice.unknown_op",
                format!("op {op} is not a client opcode"),
            ),
        }
    }

    fn binary(&mut self, b: &[u8]) {
        match b.first() {
            None => self.fail(4002, "voice.decode", "empty binary frame".into()),
            Some(_) if self.session.is_none() => self.fail(
                4003,
                "voice.not_authenticated",
                "binary frame before Identify".into(),
            ),
            Some(op) if DAVE_BINARY_OPS.contains(op) => {
                let body = b[1..].to_vec();
                let msg = match op {
                    26 => FromClient::KeyPackage(body),
                    _ => FromClient::Commit(body),
                };
                self.dave(Some(msg), String::new);
            }
            Some(op) => self.fail(
                4001,
                "voice.unknown_op",
                format!("binary op {op} is not a client opcode"),
            ),
        }
    }

    /// Hands a DAVE message to the call, if the session has a DAVE call.
    fn dave(&mut self, msg: Option<FromClient>, bad: impl FnOnce() -> String) {
        let (Some(vid), Some(g)) = (self.session, self.guild_id) else {
            return;
        };
        let mut st = self.shared.lock();
        let version = st.voice.get(&vid).and_then(|v| v.dave_version);
        if version.is_none_or(|v| v == 0) {
            return tracing::debug!(target: "voxboard_sim", "DAVE op ignored: no DAVE call on this session");
        }
        match msg {
            Some(m) => dave::from_socket(&mut st, g, self.shared.config.bot_user_id, m),
            None => st.violation(Some(g), "dave.payload", bad()),
        }
    }

    fn identify(&mut self, d: &Value) {
        let guild_id = d.get("server_id").and_then(snowflake);
        let user_id = d.get("user_id").and_then(snowflake);
        let session_id = d.get("session_id").and_then(Value::as_str);
        let token = d.get("token").and_then(Value::as_str);
        let max_dave = d.get("max_dave_protocol_version").and_then(Value::as_u64);
        let max_dave16 = max_dave.map_or(0, |m| m.min(u64::from(u16::MAX)) as u16);
        let shared = self.shared.clone();
        let mut st = shared.lock();
        let Some(guild_id) = guild_id else {
            drop(st);
            return self.fail(
                4004,
                "voice.auth",
                "Identify without a server_id snowflake".into(),
            );
        };
        self.guild_id = Some(guild_id);
        st.event(SimEvent::VoiceIdentify {
            guild_id,
            max_dave_protocol_version: max_dave,
        });
        let grant = st.guild(guild_id).grant.clone();
        let why = match &grant {
            None => {
                Some("no voice credentials were issued for this guild (op 4 first)".to_string())
            }
            Some(g) if g.server != self.server => {
                Some("credentials were issued for the other voice server".into())
            }
            Some(_) if user_id != Some(shared.config.bot_user_id) => {
                Some(format!("user_id {user_id:?} is not the bot"))
            }
            Some(g) if session_id != Some(g.session_id.as_str()) => {
                Some("session_id is not the VOICE_STATE_UPDATE one".into())
            }
            Some(g) if token != Some(g.token.as_str()) => {
                Some("token is not the current VOICE_SERVER_UPDATE one".into())
            }
            Some(_) => None,
        };
        let (Some(grant), None) = (grant, why.clone()) else {
            drop(st);
            return self.fail(
                4004,
                "voice.auth",
                format!("Identify rejected: {}", why.unwrap_or_default()),
            );
        };
        let kind = dave::channel_kind(&shared.config, guild_id, grant.channel_id);
        if dave::identify_refused(&shared.config, kind, max_dave16) {
            drop(st);
            return self.fail(
                4017,
                "voice.dave_required",
                format!("max_dave_protocol_version {max_dave:?}: this voice channel requires DAVE (E2EE)"),
            );
        }
        if let Some(old) = st.guild(guild_id).session {
            st.end_voice(old, 4022, "superseded by a new voice session");
        }
        let vid = st.next_id();
        let ssrc = rand::random::<u32>().max(1);
        st.voice.insert(
            vid,
            VoiceSession {
                guild_id,
                server: self.server,
                grant,
                ssrc,
                seq: 0,
                buffer: VecDeque::new(),
                conn: Some(self.handle.clone()),
                max_dave: max_dave16,
                dave_version: None,
                detached_at: None,
                ended_at: None,
                ended_by_client: false,
                mode: None,
                cipher: None,
                discovered: None,
                speaking: None,
                speaking_at: None,
                rtp: RtpTrack::default(),
            },
        );
        st.guild(guild_id).session = Some(vid);
        self.session = Some(vid);
        let ready = json!({"ssrc": ssrc, "ip": "127.0.0.1", "port": shared.udp_ports[self.server],
                           "modes": shared.config.transport_modes, "experiments": [],
                           // Real Ready carries this bogus field; clients must ignore it
                           // (docs/protocol.md §3.3).
                           "heartbeat_interval": 1});
        st.voice_send(vid, 2, ready);
        st.event(SimEvent::VoiceReady { guild_id, ssrc });
    }

    fn resume(&mut self, d: &Value) {
        let guild_id = d.get("server_id").and_then(snowflake);
        let session_id = d.get("session_id").and_then(Value::as_str);
        let token = d.get("token").and_then(Value::as_str);
        let seq_ack = d.get("seq_ack").and_then(Value::as_i64);
        let shared = self.shared.clone();
        let mut st = shared.lock();
        self.guild_id = guild_id;
        let g = guild_id.unwrap_or(0);
        st.event(SimEvent::VoiceResume {
            guild_id: g,
            seq_ack: seq_ack.unwrap_or(-1),
        });
        if seq_ack.is_none() {
            st.violation(
                guild_id,
                "voice.resume_seq_ack",
                "v8 Resume without an integer seq_ack",
            );
        }
        let seq_ack = seq_ack.unwrap_or(-1);
        let vid = st.live_voice(g).filter(|vid| {
            st.voice.get(vid).is_some_and(|v| {
                v.server == self.server
                    && session_id == Some(v.grant.session_id.as_str())
                    && token == Some(v.grant.token.as_str())
            })
        });
        let Some(vid) = vid else {
            // A session this server issued and then ended (a fault, a blip that outlasted it,
            // a move) is refused with 4006 as Discord does, but the client could not have
            // known: it is not a violation. Credentials never issued here are, and so is a
            // session the client itself ended with 1000/1001.
            let issued = st.voice.values().any(|v| {
                v.server == self.server
                    && !v.ended_by_client
                    && session_id == Some(v.grant.session_id.as_str())
                    && token == Some(v.grant.token.as_str())
            });
            drop(st);
            if issued {
                self.handle
                    .send(Ctl::Close(4006, "voice session no longer valid".into()));
                self.closing = true;
                return;
            }
            return self.fail(
                4006,
                "voice.resume_invalid",
                "Resume of a voice session this server never issued, or one the client ended itself"
                    .into(),
            );
        };
        let Some(v) = st.voice.get_mut(&vid) else {
            return;
        };
        // Numbering starts at 1, so -1 and 0 both mean "nothing seen yet".
        let oldest = v.buffer.front().map_or(v.seq + 1, |(n, _)| *n);
        let first_missed = seq_ack.max(0) + 1;
        if first_missed < oldest as i64 || seq_ack > v.seq as i64 {
            let detail = format!(
                "seq_ack {seq_ack} outside the replay buffer {oldest}..={}",
                v.seq
            );
            drop(st);
            return self.fail(4006, "voice.resume_seq_ack", detail);
        }
        if let Some(old) = v.conn.replace(self.handle.clone())
            && old.id != self.handle.id
        {
            old.send(Ctl::Drop);
        }
        v.detached_at = None;
        // Resumed is about this socket, not a replayable message, so it carries no seq; the
        // buffered messages follow it in their original order.
        self.handle
            .send(Ctl::Send(json!({"op": 9, "d": null}).to_string()));
        // Binary DAVE messages are replayed too, with their original seq prefix.
        let missed: Vec<Ctl> = v
            .buffer
            .iter()
            .filter(|(n, _)| *n as i64 > seq_ack)
            .map(|(_, m)| m.ctl())
            .collect();
        let replayed = missed.len();
        for m in missed {
            self.handle.send(m);
        }
        self.session = Some(vid);
        st.event(SimEvent::VoiceResumed {
            guild_id: g,
            replayed,
        });
    }

    /// The socket ended. A session survives for resume unless the server ended it for good.
    fn gone(&mut self, code: Option<u16>, by_server: bool) {
        let mut st = self.shared.lock();
        if let Some(g) = self.guild_id {
            st.event(SimEvent::VoiceClosed { guild_id: g, code });
        }
        let Some(vid) = self.session else { return };
        // As on the main gateway (docs/protocol.md §1.2), a client's 1000/1001 ends the session:
        // it is not coming back to resume it (Voxboard closes so when it moves to another server).
        let resumable = if by_server {
            code.is_none_or(resumable_close)
        } else {
            !matches!(code, Some(1000 | 1001))
        };
        if !resumable {
            st.end_voice(vid, code.unwrap_or(1000), "closed");
            if let Some(v) = st.voice.get_mut(&vid)
                && !by_server
            {
                v.ended_by_client = true;
            }
            return;
        }
        if let Some(v) = st.voice.get_mut(&vid)
            && v.conn.as_ref().is_some_and(|c| c.id == self.handle.id)
        {
            v.conn = None;
            v.detached_at = Some(Instant::now());
        }
    }
}
