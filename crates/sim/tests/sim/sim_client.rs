//! A small raw Discord client for the simulator's own tests: websockets, UDP, transport crypto
//! and Opus written straight from docs/protocol.md. It deliberately does not use
//! `voxboard_voice::discord` or `voxboard_voice::engine`, so the simulator is checked
//! independently of them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use voxboard_sim::{DaveMode, SimConfig, Simulator};

pub const STEP: Duration = Duration::from_secs(5);
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What came off a socket.
#[derive(Debug)]
pub enum Got {
    Json(Value),
    Binary(Vec<u8>),
    Closed(Option<u16>),
}

pub async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .expect("connect");
    ws
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// The next frame, or Closed(code) when the socket ends (None: no close frame).
pub async fn recv(ws: &mut Ws) -> Got {
    loop {
        let m = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("nothing received in 5 s");
        return match m {
            Some(Ok(Message::Text(t))) => {
                Got::Json(serde_json::from_str(&t).expect("server sent bad JSON"))
            }
            Some(Ok(Message::Binary(b))) => Got::Binary(b.to_vec()),
            Some(Ok(Message::Close(f))) => Got::Closed(f.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => Got::Closed(None),
        };
    }
}

/// Reads until the socket closes; returns the close code.
pub async fn expect_close(ws: &mut Ws) -> Option<u16> {
    loop {
        if let Got::Closed(c) = recv(ws).await {
            return c;
        }
    }
}

/// Reads until a JSON message with this op arrives (panics on close).
pub async fn recv_op(ws: &mut Ws, op: u64) -> Value {
    loop {
        match recv(ws).await {
            Got::Json(v) if v["op"] == op => return v,
            Got::Json(_) | Got::Binary(_) => {}
            Got::Closed(c) => panic!("closed with {c:?} while waiting for op {op}"),
        }
    }
}

pub async fn recv_dispatch(ws: &mut Ws, t: &str) -> Value {
    loop {
        let v = recv_op(ws, 0).await;
        if v["t"] == t {
            return v;
        }
    }
}

pub fn snowflake(v: &Value) -> u64 {
    v.as_str()
        .expect("snowflake string")
        .parse()
        .expect("snowflake")
}

/// Main gateway: connect, Hello, Identify, READY, every GUILD_CREATE.
pub struct Main {
    pub ws: Ws,
    pub session_id: String,
    pub user_id: String,
    pub last_s: u64,
}

pub async fn main_identify(url: &str, token: &str) -> Main {
    let mut ws = connect(&format!("{url}/?v=10&encoding=json")).await;
    let hello = recv_op(&mut ws, 10).await;
    assert!(hello["d"]["heartbeat_interval"].as_u64().is_some());
    send(&mut ws, identify_payload(token)).await;
    let ready = recv_dispatch(&mut ws, "READY").await;
    let mut last_s = ready["s"].as_u64().expect("s");
    for _ in 0..ready["d"]["guilds"].as_array().expect("guilds").len() {
        last_s = recv_dispatch(&mut ws, "GUILD_CREATE").await["s"]
            .as_u64()
            .expect("s");
    }
    let session_id = ready["d"]["session_id"]
        .as_str()
        .expect("session_id")
        .to_string();
    let user_id = ready["d"]["user"]["id"]
        .as_str()
        .expect("user id")
        .to_string();
    Main {
        ws,
        session_id,
        user_id,
        last_s,
    }
}

pub fn identify_payload(token: &str) -> Value {
    json!({"op": 2, "d": {"token": token, "intents": 129,
        "properties": {"os": "linux", "browser": "sim-test", "device": "sim-test"}}})
}

/// The two dispatches op 4 brings back: (voice session_id, token, endpoint).
pub async fn join_channel(main: &mut Main, guild: u64, channel: u64) -> (String, String, String) {
    send(
        &mut main.ws,
        json!({"op": 4, "d": {"guild_id": guild.to_string(), "channel_id": channel.to_string(),
        "self_mute": false, "self_deaf": false}}),
    )
    .await;
    let (mut session, mut server) = (None, None);
    while session.is_none() || server.is_none() {
        let v = recv_op(&mut main.ws, 0).await;
        main.last_s = v["s"].as_u64().expect("s");
        match v["t"].as_str() {
            Some("VOICE_STATE_UPDATE") => {
                session = Some(v["d"]["session_id"].as_str().expect("sid").to_string())
            }
            Some("VOICE_SERVER_UPDATE") => {
                server = Some((
                    v["d"]["token"].as_str().expect("token").to_string(),
                    v["d"]["endpoint"].as_str().expect("endpoint").to_string(),
                ))
            }
            _ => {}
        }
    }
    let (token, endpoint) = server.expect("server update");
    (session.expect("state update"), token, endpoint)
}

/// Voice gateway socket that tracks the last seq seen (v8).
pub struct Voice {
    pub ws: Ws,
    pub last_seq: i64,
}

impl Voice {
    pub async fn connect(endpoint: &str) -> Voice {
        Voice {
            ws: connect(&format!("ws://{endpoint}/?v=8")).await,
            last_seq: -1,
        }
    }

    pub async fn recv_op(&mut self, op: u64) -> Value {
        let v = recv_op(&mut self.ws, op).await;
        self.note(&v);
        v
    }

    /// The next JSON message of any op.
    pub async fn next(&mut self) -> Got {
        let g = recv(&mut self.ws).await;
        if let Got::Json(v) = &g {
            self.note(v);
        }
        g
    }

    fn note(&mut self, v: &Value) {
        if let Some(s) = v["seq"].as_i64() {
            self.last_seq = s;
        }
    }
}

/// Transport state for sending RTP.
pub struct Media {
    pub sock: UdpSocket,
    pub ssrc: u32,
    pub mode: String,
    pub key: [u8; 32],
    pub seq: u16,
    pub ts: u32,
    pub nonce: u32,
}

impl Media {
    pub async fn new(server: SocketAddr, ssrc: u32) -> Media {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        sock.connect(server).await.expect("connect udp");
        Media {
            sock,
            ssrc,
            mode: String::new(),
            key: [0; 32],
            seq: 40_000,
            ts: 123_456,
            nonce: 0,
        }
    }

    /// IP discovery (docs/protocol.md §4.1): returns the address and port the server saw.
    pub async fn discover(&self) -> (String, u16) {
        let mut req = vec![0u8; 74];
        req[..2].copy_from_slice(&1u16.to_be_bytes());
        req[2..4].copy_from_slice(&70u16.to_be_bytes());
        req[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        self.sock.send(&req).await.expect("send discovery");
        let mut buf = [0u8; 128];
        let n = tokio::time::timeout(STEP, self.sock.recv(&mut buf))
            .await
            .expect("no discovery reply")
            .expect("recv");
        assert_eq!(n, 74);
        assert_eq!(&buf[..2], &2u16.to_be_bytes());
        assert_eq!(&buf[4..8], &self.ssrc.to_be_bytes());
        let end = buf[8..72].iter().position(|b| *b == 0).expect("NUL") + 8;
        let ip = String::from_utf8(buf[8..end].to_vec()).expect("ascii");
        (ip, u16::from_be_bytes([buf[72], buf[73]]))
    }

    /// Builds one RTP packet (X=0, CC=0) encrypted with the `_rtpsize` rule, using the given
    /// nonce counter; advances seq and timestamp.
    pub fn packet_with_nonce(&mut self, payload: &[u8], nonce: u32) -> Vec<u8> {
        let mut hdr = vec![0x80, 0x78];
        hdr.extend_from_slice(&self.seq.to_be_bytes());
        hdr.extend_from_slice(&self.ts.to_be_bytes());
        hdr.extend_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(960);
        let ct = match self.mode.as_str() {
            "aead_aes256_gcm_rtpsize" => {
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(&nonce.to_be_bytes());
                Aes256Gcm::new(&self.key.into()).encrypt(
                    &n.into(),
                    Payload {
                        msg: payload,
                        aad: &hdr,
                    },
                )
            }
            "aead_xchacha20_poly1305_rtpsize" => {
                let mut n = [0u8; 24];
                n[..4].copy_from_slice(&nonce.to_be_bytes());
                XChaCha20Poly1305::new(&self.key.into()).encrypt(
                    &n.into(),
                    Payload {
                        msg: payload,
                        aad: &hdr,
                    },
                )
            }
            m => panic!("test client has no mode {m}"),
        }
        .expect("encrypt");
        [hdr, ct, nonce.to_be_bytes().to_vec()].concat()
    }

    pub fn packet(&mut self, payload: &[u8]) -> Vec<u8> {
        self.nonce = self.nonce.wrapping_add(1);
        self.packet_with_nonce(payload, self.nonce)
    }

    pub async fn send_raw(&self, pkt: &[u8]) {
        self.sock.send(pkt).await.expect("udp send");
        // A gentle pace keeps loopback buffers small; the simulator does not check pacing.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    pub async fn send(&mut self, payload: &[u8]) {
        let p = self.packet(payload);
        self.send_raw(&p).await;
    }

    pub async fn send_silence(&mut self, n: usize) {
        for _ in 0..n {
            self.send(&[0xF8, 0xFF, 0xFE]).await;
        }
    }
}

/// `n` 20 ms frames of a stereo sine, Opus-encoded with audiopus.
pub fn sine_opus(freq: f32, n: usize) -> Vec<Vec<u8>> {
    use audiopus::coder::Encoder;
    use audiopus::{Application, Channels, SampleRate};
    let enc =
        Encoder::new(SampleRate::Hz48000, Channels::Stereo, Application::Audio).expect("encoder");
    let mut i = 0usize;
    (0..n)
        .map(|_| {
            let pcm: Vec<f32> = (0..960)
                .flat_map(|_| {
                    let s = 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / 48_000.0).sin();
                    i += 1;
                    [s, s]
                })
                .collect();
            let mut out = vec![0u8; 1500];
            let len = enc.encode_float(&pcm, &mut out).expect("encode");
            out.truncate(len);
            out
        })
        .collect()
}

/// Dominant frequency estimate from upward zero crossings.
pub fn zero_crossing_hz(mono: &[f32]) -> f32 {
    let ups = mono
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count();
    ups as f32 * 48_000.0 / mono.len() as f32
}

/// A bot fully joined to a guild's voice channel, ready to send RTP after Speaking.
pub struct Session {
    /// The op 4 payload.
    pub description: Value,
    pub main: Main,
    pub voice: Voice,
    pub media: Media,
    pub guild: u64,
    pub voice_session_id: String,
    pub token: String,
    pub endpoint: String,
}

/// The whole flow up to Session Description: main Identify → op 4 → voice Identify → Ready →
/// IP discovery → Select Protocol → Session Description.
pub async fn join(url: &str, token: &str, guild: u64, channel: u64, mode: &str) -> Session {
    join_offering(url, token, guild, channel, mode, 0).await
}

/// [`join`] with `max_dave_protocol_version: max_dave` in Identify; returns after op 4 (the
/// Session Description, kept in `Session::description`).
pub async fn join_offering(
    url: &str,
    token: &str,
    guild: u64,
    channel: u64,
    mode: &str,
    max_dave: u64,
) -> Session {
    let mut main = main_identify(url, token).await;
    let (voice_session_id, vtoken, endpoint) = join_channel(&mut main, guild, channel).await;
    let mut voice = Voice::connect(&endpoint).await;
    send(
        &mut voice.ws,
        json!({"op": 0, "d": {"server_id": guild.to_string(), "user_id": main.user_id,
        "session_id": voice_session_id, "token": vtoken, "max_dave_protocol_version": max_dave}}),
    )
    .await;
    voice.recv_op(8).await;
    let ready = voice.recv_op(2).await;
    let ssrc = ready["d"]["ssrc"].as_u64().expect("ssrc") as u32;
    let port = ready["d"]["port"].as_u64().expect("port") as u16;
    let mut media = Media::new(SocketAddr::from(([127, 0, 0, 1], port)), ssrc).await;
    let (ip, uport) = media.discover().await;
    send(&mut voice.ws, json!({"op": 1, "d": {"protocol": "udp", "data": {"address": ip, "port": uport, "mode": mode}}})).await;
    let desc = voice.recv_op(4).await;
    assert_eq!(desc["d"]["mode"], mode);
    let key: Vec<u8> = desc["d"]["secret_key"]
        .as_array()
        .expect("key")
        .iter()
        .map(|b| b.as_u64().expect("byte") as u8)
        .collect();
    media.key = key.try_into().expect("32-byte key");
    media.mode = mode.to_string();
    Session {
        description: desc["d"].clone(),
        main,
        voice,
        media,
        guild,
        voice_session_id,
        token: vtoken,
        endpoint,
    }
}

impl Session {
    pub async fn speaking(&mut self, flags: u32) {
        send(
            &mut self.voice.ws,
            json!({"op": 5, "d": {"speaking": flags, "delay": 0, "ssrc": self.media.ssrc}}),
        )
        .await;
    }
}

// ---- Shared test setup and waiting on the simulator ----

pub const GUILD: u64 = 100;
pub const VOICE: u64 = 1002;
pub const AES: &str = "aead_aes256_gcm_rtpsize";
pub const XCHACHA: &str = "aead_xchacha20_poly1305_rtpsize";

/// A simulator without DAVE: these tests check the transport layer, which DAVE does not change.
pub fn sim() -> Simulator {
    Simulator::start(with_modes(&[AES, XCHACHA])).expect("simulator starts")
}

pub fn with_modes(modes: &[&str]) -> SimConfig {
    SimConfig {
        transport_modes: modes.iter().map(|m| m.to_string()).collect(),
        dave: DaveMode::Off,
        ..SimConfig::default()
    }
}

pub fn rules(sim: &Simulator) -> Vec<String> {
    sim.violations().into_iter().map(|v| v.rule).collect()
}

/// Waits (up to 5 s) until a violation with `rule` is recorded.
pub fn wait_rule(sim: &Simulator, rule: &str) -> bool {
    let end = std::time::Instant::now() + STEP;
    while !rules(sim).iter().any(|x| x == rule) {
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Waits until the listener heard `n` frames in GUILD.
pub fn wait_heard(sim: &Simulator, n: usize) -> bool {
    let end = std::time::Instant::now() + STEP;
    while sim.heard(GUILD).frames.len() < n {
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

pub async fn play_tone(s: &mut Session, frames: usize) {
    s.speaking(1).await;
    for f in sine_opus(440.0, frames) {
        s.media.send(&f).await;
    }
    s.media.send_silence(5).await;
    // discord.js order: five silence frames, then speaking 0.
    s.speaking(0).await;
}
