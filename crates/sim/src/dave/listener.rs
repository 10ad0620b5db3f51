//! A virtual listener: an in-process DAVE participant with its own user id, a real
//! `davey::DaveSession`. It is fed exactly what a socket client would be sent and answers with
//! what a client sends, so the gateway handles both through the same code. It also decrypts and
//! decodes the bot's audio, like a Discord client in the channel.
//!
//! A listener without DAVE (an old client; `session` is None) ignores DAVE opcodes and hears only
//! plain Opus: in an Optional call its presence downgrades the call to version 0.

use std::collections::{BTreeSet, VecDeque};
use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use audiopus::coder::Decoder;
use audiopus::{Channels, SampleRate};
use davey::{DaveSession, MediaType, ProposalsOperationType};
use serde_json::Value;

use super::{FromClient, ToClient};
use crate::heard::HeardFrame;
use crate::rtp::FRAME_LEN;

pub struct Listener {
    pub user_id: u64,
    channel_id: u64,
    /// None for a client without DAVE.
    session: Option<DaveSession>,
    /// Protocol version of the call (op 21/24 change it).
    version: u16,
    /// Users the gateway said are connected (op 11 / op 13).
    known: BTreeSet<u64>,
    commit_delay: Option<Duration>,
    /// A commit waiting for its delay to pass.
    pending_commit: Option<(Instant, Vec<u8>)>,
    pub heard: VecDeque<HeardFrame>,
    decoder: Option<Decoder>,
}

impl Listener {
    pub fn new(
        user_id: u64,
        channel_id: u64,
        commit_delay: Option<Duration>,
    ) -> anyhow::Result<Self> {
        let session = DaveSession::new(NonZeroU16::MIN, user_id, channel_id, None)
            .map_err(|e| anyhow::anyhow!("DaveSession::new: {e}"))?;
        Ok(Self::with_session(
            user_id,
            channel_id,
            Some(session),
            commit_delay,
        ))
    }

    pub fn without_dave(user_id: u64, channel_id: u64) -> Self {
        Self::with_session(user_id, channel_id, None, None)
    }

    fn with_session(
        user_id: u64,
        channel_id: u64,
        session: Option<DaveSession>,
        commit_delay: Option<Duration>,
    ) -> Self {
        Listener {
            user_id,
            channel_id,
            session,
            version: 1,
            known: BTreeSet::new(),
            commit_delay,
            pending_commit: None,
            heard: VecDeque::new(),
            decoder: Decoder::new(SampleRate::Hz48000, Channels::Stereo).ok(),
        }
    }

    /// Group epoch, if the listener is in an established group.
    pub fn epoch(&self) -> Option<u64> {
        self.session
            .as_ref()?
            .epoch()
            .map(|e| e.as_u64())
            .filter(|e| *e > 0)
    }

    /// The leaf index of `user_id` in this listener's view of the group.
    pub fn leaf_of(&self, user_id: u64) -> Option<u32> {
        self.session
            .as_ref()?
            .group()?
            .members()
            .find(|m| m.credential.serialized_content() == user_id.to_be_bytes())
            .map(|m| m.index.u32())
    }

    pub fn privacy_code(&self) -> Option<String> {
        self.session
            .as_ref()?
            .voice_privacy_code()
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
    }

    fn expected(&self) -> Vec<u64> {
        self.known.iter().copied().chain([self.user_id]).collect()
    }

    fn key_package(&mut self) -> Vec<FromClient> {
        let Some(session) = &mut self.session else {
            return Vec::new();
        };
        match session.create_key_package() {
            Ok(kp) => vec![FromClient::KeyPackage(kp)],
            Err(e) => {
                tracing::warn!(target: "voxboard_sim", user = self.user_id, "listener key package: {e}");
                Vec::new()
            }
        }
    }

    fn reinit(&mut self) -> Vec<FromClient> {
        let v = NonZeroU16::new(self.version).unwrap_or(NonZeroU16::MIN);
        let Some(session) = &mut self.session else {
            return Vec::new();
        };
        if let Err(e) = session.reinit(v, self.user_id, self.channel_id, None) {
            tracing::warn!(target: "voxboard_sim", user = self.user_id, "listener reinit: {e}");
        }
        self.pending_commit = None;
        self.key_package()
    }

    /// After op 29/30: prepare the transition and say so, or report the failure (op 31) and rejoin.
    fn joined(&mut self, tid: u16, ok: Result<bool, String>) -> Vec<FromClient> {
        self.pending_commit = None;
        match ok {
            Ok(true) => {
                let prepared = match &mut self.session {
                    Some(s) => s.prepare_transition(tid, self.version),
                    None => return Vec::new(),
                };
                if let Err(e) = prepared {
                    tracing::warn!(target: "voxboard_sim", user = self.user_id, "listener prepare: {e}");
                }
                if tid == 0 {
                    Vec::new()
                } else {
                    vec![FromClient::Ready(tid)]
                }
            }
            Ok(false) => Vec::new(),
            Err(e) => {
                tracing::warn!(target: "voxboard_sim", user = self.user_id, tid, "listener rejects commit/welcome: {e}");
                let mut out = vec![FromClient::Invalid(tid)];
                out.extend(self.reinit());
                out
            }
        }
    }

    /// Handles one server message; returns the client messages it answers with.
    pub fn handle(&mut self, msg: &ToClient, now: Instant) -> Vec<FromClient> {
        let expected = self.expected();
        let Some(session) = &mut self.session else {
            return Vec::new();
        };
        match msg {
            ToClient::Json(11, d) => {
                let ids = d.get("user_ids").and_then(Value::as_array);
                self.known.extend(
                    ids.into_iter()
                        .flatten()
                        .filter_map(crate::state::snowflake),
                );
                Vec::new()
            }
            ToClient::Json(13, d) => {
                if let Some(u) = d.get("user_id").and_then(crate::state::snowflake) {
                    self.known.remove(&u);
                }
                Vec::new()
            }
            ToClient::Json(21, d) => {
                let tid = super::wire::transition_id(d).unwrap_or(0);
                let pv = d
                    .get("protocol_version")
                    .and_then(Value::as_u64)
                    .unwrap_or(1) as u16;
                if pv == 0 {
                    session.set_passthrough_mode(true, Some(10));
                }
                self.version = pv;
                self.joined(tid, Ok(true))
            }
            ToClient::Json(22, d) => {
                let tid = super::wire::transition_id(d).unwrap_or(0);
                if let Err(e) = session.execute_transition(tid) {
                    tracing::warn!(target: "voxboard_sim", user = self.user_id, "listener execute: {e}");
                }
                Vec::new()
            }
            ToClient::Json(24, d) => {
                let epoch = d.get("epoch").and_then(Value::as_u64);
                let pv = d
                    .get("protocol_version")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                self.version = pv.max(1) as u16;
                if epoch == Some(1) {
                    self.reinit()
                } else {
                    Vec::new()
                }
            }
            ToClient::Binary(25, p) => match session.set_external_sender(p) {
                Ok(()) => self.key_package(),
                Err(e) => {
                    tracing::warn!(target: "voxboard_sim", user = self.user_id, "listener external sender: {e}");
                    Vec::new()
                }
            },
            ToClient::Binary(27, p) => self.proposals(p, now),
            ToClient::Binary(29, p) if p.len() >= 2 => {
                let tid = u16::from_be_bytes([p[0], p[1]]);
                let r = session.process_commit(&p[2..]).map_err(|e| e.to_string());
                self.joined(tid, r)
            }
            ToClient::Binary(30, p) if p.len() >= 2 => {
                let tid = u16::from_be_bytes([p[0], p[1]]);
                let r = session
                    .process_welcome(&p[2..], Some(&expected))
                    .map(|()| true)
                    .map_err(|e| e.to_string());
                self.joined(tid, r)
            }
            _ => Vec::new(),
        }
    }

    fn proposals(&mut self, p: &[u8], now: Instant) -> Vec<FromClient> {
        let Some((&op, body)) = p.split_first() else {
            return Vec::new();
        };
        let op = if op == 1 {
            ProposalsOperationType::REVOKE
        } else {
            ProposalsOperationType::APPEND
        };
        let ids = self.expected();
        let Some(session) = &mut self.session else {
            return Vec::new();
        };
        match session.process_proposals(op, body, Some(&ids)) {
            Ok(Some(cw)) => {
                let mut bytes = cw.commit;
                bytes.extend(cw.welcome.unwrap_or_default());
                match self.commit_delay {
                    Some(d) if d.is_zero() => return vec![FromClient::Commit(bytes)],
                    Some(d) => self.pending_commit = Some((now + d, bytes)),
                    None => self.pending_commit = None,
                }
            }
            Ok(None) => self.pending_commit = None,
            Err(e) => {
                tracing::warn!(target: "voxboard_sim", user = self.user_id, "listener rejects proposals: {e}")
            }
        }
        Vec::new()
    }

    /// A delayed commit whose time has come.
    pub fn due(&mut self, now: Instant) -> Option<FromClient> {
        if self
            .pending_commit
            .as_ref()
            .is_some_and(|(at, _)| *at <= now)
        {
            return self
                .pending_commit
                .take()
                .map(|(_, b)| FromClient::Commit(b));
        }
        None
    }

    /// Whether this listener has a decryptor for `sender` (it is in the group with them).
    pub fn can_decrypt_from(&self, sender: u64) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.get_decryption_stats(sender, MediaType::AUDIO).is_ok())
    }

    /// DAVE-decrypts one audio frame from `sender`.
    pub fn decrypt(&mut self, sender: u64, frame: &[u8]) -> Result<Vec<u8>, String> {
        let Some(session) = &mut self.session else {
            return Err("this listener has no DAVE".into());
        };
        session
            .decrypt(sender, MediaType::AUDIO, frame)
            .map_err(|e| e.to_string())
    }

    /// Opus-decodes a frame into this listener's recording; None if it is not 20 ms of Opus.
    pub fn record(
        &mut self,
        mut frame: HeardFrame,
        opus: &[u8],
        silence: bool,
        limit: usize,
    ) -> Option<Vec<f32>> {
        let pcm = if silence {
            vec![0.0; FRAME_LEN]
        } else {
            crate::udp::decode_frame(self.decoder.as_mut()?, opus)?
        };
        frame.pcm = pcm.clone();
        frame.silence = silence;
        self.heard.push_back(frame);
        while self.heard.len() > limit {
            self.heard.pop_front();
        }
        Some(pcm)
    }
}
