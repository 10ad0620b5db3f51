//! The simulator's shared state: protocol log, violations, what was heard, and the sessions the
//! gateways and UDP servers consult. One mutex; nothing slow is done while holding it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::config::SimConfig;
use super::events::{SimEvent, Violation};
use super::heard::HeardFrame;
use super::rtp::TransportCipher;

/// How long a voice session whose socket went away stays resumable.
pub const VOICE_RESUME_WINDOW: Duration = Duration::from_secs(60);
/// After a voice session ends, its in-flight RTP is dropped quietly for this long.
pub const ENDED_GRACE: Duration = Duration::from_secs(2);
/// How many numbered voice messages a session keeps for resume.
const VOICE_REPLAY_CAP: usize = 1024;

/// What a socket task is told to do from outside (other tasks or fault injection).
#[derive(Debug)]
pub enum Ctl {
    Send(String),
    /// A binary frame (DAVE opcodes 25–30, already prefixed with seq and op).
    SendBinary(Vec<u8>),
    Close(u16, String),
    Drop,
}

/// One live websocket connection's mailbox.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub id: u64,
    pub tx: UnboundedSender<Ctl>,
}

impl ConnHandle {
    pub fn send(&self, ctl: Ctl) {
        // The task may already be gone; then there is nobody to tell.
        let _ = self.tx.send(ctl);
    }
}

/// A numbered voice message as sent, kept for resume replay.
#[derive(Debug, Clone)]
pub enum Sent {
    Text(String),
    Binary(Vec<u8>),
}

impl Sent {
    pub fn ctl(&self) -> Ctl {
        match self {
            Sent::Text(t) => Ctl::Send(t.clone()),
            Sent::Binary(b) => Ctl::SendBinary(b.clone()),
        }
    }
}

/// A main gateway session (survives its socket for resume).
pub struct MainSession {
    pub seq: u64,
    pub buffer: Vec<(u64, String)>,
    pub conn: Option<ConnHandle>,
}

/// Voice credentials issued by op 4 and checked by voice Identify.
#[derive(Debug, Clone)]
pub struct Grant {
    pub main_session: String,
    pub session_id: String,
    pub token: String,
    /// The voice channel: the DAVE call and its MLS group id (BE64).
    pub channel_id: u64,
    pub server: usize,
    /// The bot's voice state flags when it was granted.
    pub self_mute: bool,
    pub self_deaf: bool,
}

/// Per-guild voice state of the bot plus fault-injection knobs.
#[derive(Default)]
pub struct GuildVoice {
    /// Index of the guild's current voice server ("region A" = 0, "region B" = 1).
    pub server: usize,
    pub grant: Option<Grant>,
    /// The live voice session, if any.
    pub session: Option<u64>,
    /// In a stage channel: the bot is in the audience (Discord forwards none of its audio)
    /// until a PATCH of its voice state (or a moderator) makes it a speaker.
    pub suppressed: bool,
    /// When a moderator moved the bot back to the audience: audio already on its way then is
    /// dropped without blame for a moment (the client cannot have known).
    pub suppressed_at: Option<Instant>,
    /// The bot's raised hand in a stage (`request_to_speak_timestamp`).
    pub request_to_speak: Option<String>,
    pub udp_drop_every: u32,
    pub udp_drop_counter: u32,
    pub udp_delay: Duration,
}

/// One entry of the silence-tail window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    Audio,
    Silence,
    /// Dropped by the simulator itself, or failed to decrypt: cannot be held against the client.
    Unknown,
}

/// RTP continuity and silence-rule tracking of one voice session.
#[derive(Default)]
pub struct RtpTrack {
    pub last: Option<(u16, u32)>,
    /// seq → timestamp of packets the simulator dropped or could not decrypt.
    pub skipped: HashMap<u16, u32>,
    pub nonces: HashSet<[u8; 24]>,
    pub tail: VecDeque<Tail>,
    /// Audio frames flowed since the last stop.
    pub in_audio: bool,
    /// Arrival time (receipt + injected delay) of the last processed packet.
    pub last_packet_at: Option<Instant>,
    /// Arrival time of the newest packet received, processed or not (dropped ones included).
    pub last_arrival: Option<Instant>,
    /// Packets queued for processing and packets done: equal when the processor has caught up,
    /// so its own stalls are never mistaken for the client going quiet.
    pub queued: u64,
    pub processed: u64,
    /// When op 5 with speaking 0 arrived: a stop the silence rule applies to.
    pub speaking_off_at: Option<Instant>,
}

/// A voice gateway session (survives its socket for ~60 s for resume).
pub struct VoiceSession {
    pub guild_id: u64,
    pub server: usize,
    pub grant: Grant,
    pub ssrc: u32,
    pub seq: u64,
    pub buffer: VecDeque<(u64, Sent)>,
    pub conn: Option<ConnHandle>,
    /// `max_dave_protocol_version` from Identify (0 if absent).
    pub max_dave: u16,
    /// The call's DAVE version given in Session Description (None before it).
    pub dave_version: Option<u16>,
    pub detached_at: Option<Instant>,
    pub ended_at: Option<Instant>,
    /// The client closed it with 1000/1001: it knows the session is over, and resuming it is
    /// its own mistake (a server-ended session is refused without blaming the client).
    pub ended_by_client: bool,
    pub mode: Option<String>,
    pub cipher: Option<Arc<TransportCipher>>,
    pub discovered: Option<SocketAddr>,
    /// Last op 5 `speaking` value; None until the first op 5.
    pub speaking: Option<u32>,
    /// When that op 5 was processed.
    pub speaking_at: Option<Instant>,
    pub rtp: RtpTrack,
}

impl VoiceSession {
    fn push_sent(&mut self, m: Sent) {
        if let Some(c) = &self.conn {
            c.send(m.ctl());
        }
        self.buffer.push_back((self.seq, m));
        if self.buffer.len() > VOICE_REPLAY_CAP {
            self.buffer.pop_front();
        }
    }

    pub fn is_live(&self, now: Instant) -> bool {
        self.ended_at.is_none()
            && self
                .detached_at
                .is_none_or(|t| now.duration_since(t) < VOICE_RESUME_WINDOW)
    }
}

#[derive(Default)]
pub struct State {
    pub events: Vec<SimEvent>,
    pub violations: Vec<Violation>,
    pub heard: HashMap<u64, VecDeque<HeardFrame>>,
    /// Non-silence frames heard per guild since the start, never trimmed (`heard` is bounded).
    pub heard_audio: HashMap<u64, u64>,
    /// DAVE calls by guild (the bot's voice channel there).
    pub calls: HashMap<u64, super::dave::Call>,
    pub main_sessions: HashMap<String, MainSession>,
    pub guilds: HashMap<u64, GuildVoice>,
    pub voice: HashMap<u64, VoiceSession>,
    /// The main session fault injection acts on: the last one identified or resumed.
    pub main_current: Option<String>,
    /// Every credential handed out (session ids, voice tokens, transport keys as JSON), for
    /// tests that check a client never prints one.
    pub secrets: Vec<String>,
    /// Per voice server: how many of its next websocket connections are accepted and then
    /// never answered (no Hello), like a voice server that hangs.
    pub silent_connections: [u32; 2],
    /// The bot's guilds and their channels as they are now: the configured ones, changed by
    /// faults (a channel created or deleted, the bot invited to a guild or removed from one).
    pub guilds_now: Vec<super::config::SimGuild>,
    /// A main gateway outage: until then, new main connections are cut before the websocket
    /// handshake, as when Discord's gateway edge is down while voice servers keep running.
    pub main_down_until: Option<std::time::Instant>,
    /// Identifies accepted so far (the day's session starts) and when the last one was.
    pub identifies: u32,
    pub last_identify: Option<std::time::Instant>,
    next_id: u64,
}

impl State {
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Notes a credential handed out, and returns it.
    pub fn secret(&mut self, s: String) -> String {
        self.secrets.push(s.clone());
        s
    }

    pub fn event(&mut self, e: SimEvent) {
        tracing::info!(target: "voxboard_sim", event = ?e, "sim event");
        self.events.push(e);
    }

    pub fn violation(&mut self, guild_id: Option<u64>, rule: &str, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::warn!(target: "voxboard_sim", ?guild_id, rule, %detail, "protocol violation");
        self.violations.push(Violation {
            guild_id,
            rule: rule.into(),
            detail,
        });
    }

    pub fn guild(&mut self, guild_id: u64) -> &mut GuildVoice {
        self.guilds.entry(guild_id).or_default()
    }

    /// Sends a dispatch on a main session: numbered, buffered for resume, delivered if connected.
    pub fn dispatch(&mut self, main_sid: &str, t: &str, d: Value) {
        let Some(s) = self.main_sessions.get_mut(main_sid) else {
            return;
        };
        s.seq += 1;
        let text = json!({"op": 0, "t": t, "s": s.seq, "d": d}).to_string();
        s.buffer.push((s.seq, text.clone()));
        if let Some(c) = &s.conn {
            c.send(Ctl::Send(text));
        }
    }

    /// Sends a dispatch on every main session (guild and channel changes reach every shard).
    pub fn dispatch_all(&mut self, t: &str, d: Value) {
        let sessions: Vec<String> = self.main_sessions.keys().cloned().collect();
        for sid in sessions {
            self.dispatch(&sid, t, d.clone());
        }
    }

    pub fn guild_now(&self, guild_id: u64) -> Option<&super::config::SimGuild> {
        self.guilds_now.iter().find(|g| g.id == guild_id)
    }

    /// Sends a numbered voice message (buffered for a v8 resume).
    pub fn voice_send(&mut self, vid: u64, op: u8, d: Value) {
        let Some(v) = self.voice.get_mut(&vid) else {
            return;
        };
        v.seq += 1;
        let text = json!({"op": op, "d": d, "seq": v.seq}).to_string();
        v.push_sent(Sent::Text(text));
    }

    /// Sends a numbered binary voice message `[seq u16 BE][op][payload]` (docs/protocol.md §3.1),
    /// from the same counter as JSON `seq`, buffered for resume like the JSON ones.
    pub fn voice_send_binary(&mut self, vid: u64, op: u8, payload: &[u8]) {
        let Some(v) = self.voice.get_mut(&vid) else {
            return;
        };
        v.seq += 1;
        let mut frame = Vec::with_capacity(payload.len() + 3);
        frame.extend_from_slice(&(v.seq as u16).to_be_bytes());
        frame.push(op);
        frame.extend_from_slice(payload);
        v.push_sent(Sent::Binary(frame));
    }

    /// Ends a voice session for good, closing its socket with `code` if still open.
    pub fn end_voice(&mut self, vid: u64, code: u16, reason: &str) {
        self.finish_voice(vid, Ctl::Close(code, reason.into()));
    }

    /// Ends a voice session whose client vanished: its socket is cut without a close frame.
    pub fn lose_voice(&mut self, vid: u64) {
        self.finish_voice(vid, Ctl::Drop);
    }

    fn finish_voice(&mut self, vid: u64, last: Ctl) {
        let Some(v) = self.voice.get_mut(&vid) else {
            return;
        };
        if v.ended_at.is_some() {
            return;
        }
        v.ended_at = Some(Instant::now());
        if let Some(c) = v.conn.take() {
            c.send(last);
        }
        let g = v.guild_id;
        let gv = self.guild(g);
        if gv.session == Some(vid) {
            gv.session = None;
        }
        super::dave::socket_gone(self, g, vid);
    }

    /// Ends a main session for good: the bot goes offline, so its voice sessions end with 4014
    /// (a voice connection cannot outlive the main session).
    pub fn invalidate_main(&mut self, sid: &str) {
        // The socket stays up: the client learns of it from op 9 or its close, then reconnects.
        self.main_sessions.remove(sid);
        if self.main_current.as_deref() == Some(sid) {
            self.main_current = None;
        }
        let guilds: Vec<u64> = self
            .guilds
            .iter()
            .filter(|(_, g)| g.grant.as_ref().is_some_and(|gr| gr.main_session == sid))
            .map(|(id, _)| *id)
            .collect();
        for g in guilds {
            if let Some(vid) = self.guild(g).session {
                self.end_voice(vid, 4014, "main gateway session ended");
            }
            self.guild(g).grant = None;
        }
    }

    /// The live voice session of a guild, if any.
    pub fn live_voice(&self, guild_id: u64) -> Option<u64> {
        let vid = self.guilds.get(&guild_id)?.session?;
        self.voice.get(&vid)?.is_live(Instant::now()).then_some(vid)
    }
}

/// Everything the simulator's tasks share.
pub struct Shared {
    pub config: SimConfig,
    pub main_port: u16,
    /// Voice gateway ws ports, one per voice server (region A, region B).
    pub voice_ports: [u16; 2],
    pub udp_ports: [u16; 2],
    /// The REST API's port (plain HTTP).
    pub rest_port: u16,
    /// When the simulator started: its "day" for the session start limit begins here.
    pub started: Instant,
    state: Mutex<State>,
}

impl Shared {
    pub fn new(
        config: SimConfig,
        main_port: u16,
        voice_ports: [u16; 2],
        udp_ports: [u16; 2],
        rest_port: u16,
    ) -> Self {
        let state = State {
            guilds_now: config.guilds.clone(),
            ..State::default()
        };
        Shared {
            config,
            main_port,
            voice_ports,
            udp_ports,
            rest_port,
            started: Instant::now(),
            state: Mutex::new(state),
        }
    }

    /// Locks the state; a panicked holder cannot leave it half-written in a way that matters
    /// more than losing the simulator, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn gateway_url(&self) -> String {
        let scheme = if self.config.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://127.0.0.1:{}", self.main_port)
    }

    pub fn voice_endpoint(&self, server: usize) -> String {
        format!("127.0.0.1:{}", self.voice_ports[server])
    }
}

/// A snowflake as Discord sends it (a string), tolerating a bare number.
pub fn snowflake(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// A random hex id, for session ids and tokens.
pub fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}
