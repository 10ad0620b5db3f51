//! A raw DAVE client for the simulator's tests: a `davey::DaveSession` driven straight from the
//! protocol (docs/protocol.md §6.5, §7.2 wiring) over the raw test client's voice socket. It
//! does not use `voxboard_voice::discord` or `voxboard_voice::engine`.
#![allow(dead_code)]

use std::num::NonZeroU16;
use std::time::Duration;

use davey::{DaveSession, ProposalsOperationType};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use voxboard_sim::{SimConfig, Simulator};

use crate::sim_client::*;

/// One message the client got, after handling it.
#[derive(Debug, Clone)]
pub enum In {
    Json(u64, Value),
    /// (seq, op, payload)
    Binary(u16, u8, Vec<u8>),
    Closed(Option<u16>),
}

impl In {
    pub fn op(&self) -> Option<u64> {
        match self {
            In::Json(op, _) => Some(*op),
            In::Binary(_, op, _) => Some(u64::from(*op)),
            In::Closed(_) => None,
        }
    }
}

pub struct DaveClient {
    pub s: Session,
    pub dave: DaveSession,
    pub user: u64,
    pub channel: u64,
    pub version: u16,
    pub known: Vec<u64>,
    /// Send commits as soon as proposals produce them (false: keep them in `held`).
    pub auto_commit: bool,
    pub held: Option<Vec<u8>>,
    /// Everything received, in order.
    pub log: Vec<In>,
    /// What we sent on the DAVE side: (op, transition id if any).
    pub sent: Vec<(u8, Option<u16>)>,
}

/// Joins GUILD's voice channel offering DAVE 1 and sends the first key package.
pub async fn dave_join(sim: &Simulator) -> DaveClient {
    let s = join_offering(
        &sim.gateway_url(),
        SimConfig::TEST_TOKEN,
        GUILD,
        VOICE,
        AES,
        1,
    )
    .await;
    assert_eq!(
        s.description["dave_protocol_version"], 1,
        "{}",
        s.description
    );
    let user: u64 = s.main.user_id.parse().expect("user id");
    let dave = DaveSession::new(NonZeroU16::MIN, user, VOICE, None).expect("dave session");
    let mut c = DaveClient {
        s,
        dave,
        user,
        channel: VOICE,
        version: 1,
        known: Vec::new(),
        auto_commit: true,
        held: None,
        log: Vec::new(),
        sent: Vec::new(),
    };
    c.key_package().await;
    c
}

impl DaveClient {
    pub async fn bin(&mut self, op: u8, payload: &[u8]) {
        let mut b = vec![op];
        b.extend_from_slice(payload);
        self.s
            .voice
            .ws
            .send(Message::binary(b))
            .await
            .expect("send binary");
        self.sent.push((op, None));
    }

    pub async fn json(&mut self, op: u8, tid: u16) {
        send(
            &mut self.s.voice.ws,
            json!({"op": op, "d": {"transition_id": tid}}),
        )
        .await;
        self.sent.push((op, Some(tid)));
    }

    pub async fn key_package(&mut self) {
        let kp = self.dave.create_key_package().expect("key package");
        self.bin(26, &kp).await;
    }

    async fn reinit(&mut self) {
        let v = NonZeroU16::new(self.version).unwrap_or(NonZeroU16::MIN);
        self.dave
            .reinit(v, self.user, self.channel, None)
            .expect("reinit");
        self.key_package().await;
    }

    pub async fn send_commit(&mut self) {
        if let Some(c) = self.held.take() {
            self.bin(28, &c).await;
        }
    }

    fn known_with_me(&self) -> Vec<u64> {
        let mut k = self.known.clone();
        k.push(self.user);
        k
    }

    async fn joined(&mut self, tid: u16, ok: Result<bool, String>) {
        match ok {
            Ok(true) => {
                self.dave
                    .prepare_transition(tid, self.version)
                    .expect("prepare");
                if tid != 0 {
                    self.json(23, tid).await;
                }
            }
            Ok(false) => {}
            Err(_) => {
                self.json(31, tid).await;
                self.reinit().await;
            }
        }
    }

    /// Receives and handles one message (panics after 5 s of nothing).
    pub async fn step(&mut self) -> In {
        let got = recv(&mut self.s.voice.ws).await;
        self.handle(got).await
    }

    /// Plays `frames` DAVE-encrypted at the real 20 ms pace while handling the gateway, calling
    /// `mid` halfway through (to change the group under a live stream).
    pub async fn play_live(&mut self, frames: &[Vec<u8>], mid: impl FnOnce()) {
        self.s.speaking(1).await;
        let mut mid = Some(mid);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut next = 0;
        while next < frames.len() {
            // Only the socket read is raced against the clock: it is cancel-safe.
            let got = tokio::select! {
                g = recv(&mut self.s.voice.ws) => Some(g),
                _ = tick.tick() => None,
            };
            match got {
                Some(g) => {
                    self.handle(g).await;
                }
                None => {
                    let e = self
                        .dave
                        .encrypt_opus(&frames[next])
                        .expect("encrypt")
                        .into_owned();
                    let p = self.s.media.packet(&e);
                    self.s.media.sock.send(&p).await.expect("udp send");
                    next += 1;
                    if next == frames.len() / 2
                        && let Some(f) = mid.take()
                    {
                        f();
                    }
                }
            }
        }
        self.s.media.send_silence(5).await;
        self.s.speaking(0).await;
    }

    /// Handles one received message.
    pub async fn handle(&mut self, got: Got) -> In {
        let msg = match got {
            Got::Json(v) => {
                if let Some(s) = v["seq"].as_i64() {
                    self.s.voice.last_seq = s;
                }
                In::Json(v["op"].as_u64().unwrap_or(999), v["d"].clone())
            }
            Got::Binary(b) => {
                assert!(b.len() >= 3, "short binary frame {b:?}");
                let seq = u16::from_be_bytes([b[0], b[1]]);
                self.s.voice.last_seq = i64::from(seq);
                In::Binary(seq, b[2], b[3..].to_vec())
            }
            Got::Closed(c) => In::Closed(c),
        };
        self.log.push(msg.clone());
        let tid_of = |d: &Value| d["transition_id"].as_u64().unwrap_or(0) as u16;
        match &msg {
            In::Json(11, d) => self.known.extend(
                d["user_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(snowflake),
            ),
            In::Json(13, d) => {
                let u = snowflake(&d["user_id"]);
                self.known.retain(|k| *k != u);
            }
            In::Json(21, d) => {
                let pv = d["protocol_version"].as_u64().unwrap_or(1) as u16;
                self.dave
                    .prepare_transition(tid_of(d), pv)
                    .expect("prepare");
                if tid_of(d) != 0 {
                    self.json(23, tid_of(d)).await;
                }
            }
            In::Json(22, d) => {
                self.dave.execute_transition(tid_of(d)).expect("execute");
            }
            In::Json(24, d) if d["epoch"] == 1 => self.reinit().await,
            In::Binary(_, 25, p) => self.dave.set_external_sender(p).expect("external sender"),
            In::Binary(_, 27, p) => {
                let op = if p[0] == 1 {
                    ProposalsOperationType::REVOKE
                } else {
                    ProposalsOperationType::APPEND
                };
                let known = self.known_with_me();
                match self.dave.process_proposals(op, &p[1..], Some(&known)) {
                    Ok(Some(cw)) => {
                        let mut c = cw.commit;
                        c.extend(cw.welcome.unwrap_or_default());
                        self.held = Some(c);
                        if self.auto_commit {
                            self.send_commit().await;
                        }
                    }
                    Ok(None) => self.held = None,
                    Err(e) => panic!("client rejects proposals: {e}"),
                }
            }
            In::Binary(_, 29, p) => {
                let tid = u16::from_be_bytes([p[0], p[1]]);
                let r = self.dave.process_commit(&p[2..]).map_err(|e| e.to_string());
                self.joined(tid, r).await;
            }
            In::Binary(_, 30, p) => {
                let tid = u16::from_be_bytes([p[0], p[1]]);
                let known = self.known_with_me();
                let r = self
                    .dave
                    .process_welcome(&p[2..], Some(&known))
                    .map(|()| true)
                    .map_err(|e| e.to_string());
                self.joined(tid, r).await;
            }
            _ => {}
        }
        msg
    }

    /// Handles messages until one satisfies `pred`; returns it.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&In) -> bool) -> In {
        let end = tokio::time::Instant::now() + Duration::from_secs(8);
        loop {
            assert!(
                tokio::time::Instant::now() < end,
                "timed out waiting for {what}; got {:?}",
                self.ops()
            );
            let m = self.step().await;
            if pred(&m) {
                return m;
            }
            if let In::Closed(c) = m {
                panic!("closed with {c:?} while waiting for {what}");
            }
        }
    }

    pub async fn until_op(&mut self, op: u64) -> In {
        self.until(&format!("op {op}"), |m| m.op() == Some(op))
            .await
    }

    /// Ops received so far, in order.
    pub fn ops(&self) -> Vec<u64> {
        self.log.iter().filter_map(In::op).collect()
    }

    /// Keeps handling messages for `d` (a quiet socket is fine).
    pub async fn pump_for(&mut self, d: Duration) {
        let end = tokio::time::Instant::now() + d;
        while let Ok(m) = tokio::time::timeout_at(end, self.step()).await {
            if let In::Closed(c) = m {
                panic!("closed with {c:?}");
            }
        }
    }

    /// Sends `frames` DAVE-encrypted (silence frames pass as they are), after Speaking.
    pub async fn play(&mut self, frames: &[Vec<u8>]) {
        self.s.speaking(1).await;
        for f in frames {
            let e = self.dave.encrypt_opus(f).expect("encrypt").into_owned();
            self.s.media.send(&e).await;
        }
        self.s.media.send_silence(5).await;
        self.s.speaking(0).await;
    }
}

pub fn dave_sim(listeners: usize, delay: Option<Duration>) -> Simulator {
    Simulator::start(SimConfig {
        dave_listeners: listeners,
        listener_commit_delay: delay,
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

pub fn assert_no_violations(sim: &Simulator) {
    let v = sim.violations();
    assert!(v.is_empty(), "protocol violations: {v:#?}");
}

impl DaveClient {
    /// Handles messages until `done(self)` holds.
    pub async fn until_state(&mut self, what: &str, done: impl Fn(&DaveClient) -> bool) {
        let end = tokio::time::Instant::now() + Duration::from_secs(8);
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < end,
                "timed out waiting for {what}; got {:?}",
                self.ops()
            );
            if let In::Closed(c) = self.step().await {
                panic!("closed with {c:?} while waiting for {what}");
            }
        }
    }
}
