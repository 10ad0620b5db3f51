//! DAVE end-to-end encryption for one connection: the MLS handshake driven by voice gateway
//! opcodes 21–31, and frame encryption before transport encryption (docs/protocol.md §6–7).
//!
//! One `davey::DaveSession` per connection, created when Session Description announces a DAVE
//! version > 0. Audio is held (the playbacks wait) until the session can encrypt, so nothing
//! goes out unencrypted in a DAVE call.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU16;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bevy_ecs::prelude::*;
use davey::{DaveSession, ProposalsOperationType};
use serde_json::{Value, json};

use crate::discord::voice_gateway::{VoiceCommand, VoiceEvent};
use voxboard_audio::opus::SILENCE_FRAME;

use super::components::VoiceLink;

pub const OP_PREPARE_TRANSITION: u8 = 21;
pub const OP_EXECUTE_TRANSITION: u8 = 22;
pub const OP_READY_FOR_TRANSITION: u8 = 23;
pub const OP_PREPARE_EPOCH: u8 = 24;
pub const OP_EXTERNAL_SENDER: u8 = 25;
pub const OP_KEY_PACKAGE: u8 = 26;
pub const OP_PROPOSALS: u8 = 27;
pub const OP_COMMIT_WELCOME: u8 = 28;
pub const OP_ANNOUNCE_COMMIT: u8 = 29;
pub const OP_WELCOME: u8 = 30;
pub const OP_INVALID_COMMIT_WELCOME: u8 = 31;

/// The highest DAVE version we speak (offered in Identify).
pub const MAX_PROTOCOL_VERSION: u16 = davey::DAVE_PROTOCOL_VERSION;

/// How long audio waits for DAVE keys before frames for that connection are dropped instead.
/// A fresh join normally has keys within a round trip or two; the gateway's transition timeout
/// is about 2 s, so 5 s covers a slow peer with room to spare.
pub const KEY_WAIT: Duration = Duration::from_secs(5);
/// How long a bot that seems alone in a DAVE call waits for op 11 to name someone before it
/// stops holding audio (nobody could hear it anyway).
pub const ALONE_GRACE: Duration = Duration::from_secs(1);

/// Users in the call (from op 11/13), kept from the first message on: proposals for anyone not
/// in it are refused (docs/protocol.md §9, pitfall 11).
#[derive(Component, Debug, Default)]
pub struct CallMembers(pub HashSet<u64>);

/// The DAVE state of a connection. `session` is `None` in a version-0 (transport-only) call.
#[derive(Component, Default)]
pub struct Dave {
    /// libdave state is not `Sync`; the Mutex is never contended (`get_mut` through `&mut`).
    session: Option<Mutex<DaveSession>>,
    /// The call's negotiated version (from Session Description, op 21 and op 24).
    pub protocol_version: u16,
    /// The version media is sent with now: it follows `protocol_version` when a transition
    /// executes (op 22), so a downgrade sends plain Opus only after the switch and an upgrade
    /// keeps sending plain Opus until the new group's keys are live.
    pub media_version: u16,
    /// Since when keys have been expected: the session start, or a member joining while we
    /// could not encrypt. `None` while we can encrypt.
    waiting_since: Option<Instant>,
    /// Frames dropped because the session could not encrypt (never sent in the clear).
    pub dropped_frames: u64,
    /// Set once the first transition executed: from then on every audio frame is encrypted.
    pub transitions: u32,
    /// The version each prepared transition (op 21, or a commit or welcome) switches to, by
    /// transition id: op 22 moves media to that version, never to whatever op came last, and
    /// an op 22 for a transition never prepared changes nothing (found by fuzz/dave_ops).
    pending: HashMap<u16, u16>,
}

impl std::fmt::Debug for Dave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dave")
            .field("protocol_version", &self.protocol_version)
            .field("active", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

/// What the status panel shows about E2EE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaveStatus {
    pub protocol_version: u16,
    pub epoch: Option<u64>,
    pub can_encrypt: bool,
    /// The voice privacy code in groups of five, as Discord shows it.
    pub privacy_code: Option<String>,
}

impl Dave {
    fn session(&mut self) -> Option<&mut DaveSession> {
        self.session.as_mut().and_then(|m| m.get_mut().ok())
    }

    pub fn status(&self) -> DaveStatus {
        let Some(s) = self.session.as_ref().and_then(|m| m.lock().ok()) else {
            return DaveStatus::default();
        };
        DaveStatus {
            protocol_version: self.media_version,
            epoch: s.epoch().map(|e| e.as_u64()),
            can_encrypt: s.can_encrypt(),
            privacy_code: s.voice_privacy_code().map(group_in_fives),
        }
    }

    /// Whether audio can go out now. In a DAVE call that needs keys; while they are missing the
    /// sound waits: up to [`KEY_WAIT`] when others are in the call, or [`ALONE_GRACE`] when
    /// nobody is (op 11 may still be on its way; after that there is no one to hear it).
    pub fn media_ready(&mut self, members: &CallMembers, now: Instant) -> bool {
        if self.media_version == 0 {
            return true;
        }
        // No session in a DAVE call (it could not be made) is "no keys", never "no DAVE".
        let can = self.session().is_some_and(|s| s.can_encrypt());
        if can {
            self.waiting_since = None;
            return true;
        }
        let waited = now.saturating_duration_since(*self.waiting_since.get_or_insert(now));
        waited
            >= if members.0.is_empty() {
                ALONE_GRACE
            } else {
                KEY_WAIT
            }
    }

    /// Someone joined the call: if we have no keys, audio waits for the handshake again.
    pub fn member_joined(&mut self, now: Instant) {
        if self.session().is_some_and(|s| !s.can_encrypt()) {
            self.waiting_since = Some(now);
        }
    }

    /// DAVE-encrypts one Opus frame, or returns `None` when it must not be sent (no keys yet).
    /// The silence frame passes as is, as davey does (docs/protocol.md §6.8).
    pub fn protect<'a>(&mut self, frame: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        if self.media_version == 0 || frame == SILENCE_FRAME {
            return Some(Cow::Borrowed(frame));
        }
        // Fail closed: a DAVE call without a working session sends nothing, never plain Opus.
        // Only a downgrade the protocol announced (media_version 0) sends plain audio.
        let sealed = self.session().map(|s| s.encrypt_opus(frame));
        match sealed {
            Some(Ok(sealed)) => Some(sealed),
            _ => {
                self.dropped_frames += 1;
                None
            }
        }
    }

    /// A connection whose group is already established (benchmarks and media-path tests).
    pub fn with_session(session: DaveSession) -> Self {
        let version = session.protocol_version().get();
        Dave {
            protocol_version: version,
            media_version: version,
            session: Some(Mutex::new(session)),
            ..Default::default()
        }
    }

    /// Session Description: start (or stop) DAVE for this session. An error means the call is
    /// end-to-end encrypted but we cannot take part (a version davey does not speak): audio is
    /// then held back, never sent in the clear, and the caller says why on the card.
    pub fn start(
        &mut self,
        version: u16,
        user_id: u64,
        channel_id: u64,
        link: &VoiceLink,
        now: Instant,
    ) -> Result<(), String> {
        self.protocol_version = version;
        self.media_version = version;
        self.transitions = 0;
        self.waiting_since = Some(now);
        self.session = None;
        self.pending.clear();
        let Some(v) = NonZeroU16::new(version) else {
            return Ok(());
        };
        let session = DaveSession::new(v, user_id, channel_id, None).map_err(|e| {
            format!("E2EE (DAVE v{version}) could not start, so no audio is sent: {e}")
        })?;
        self.session = Some(Mutex::new(session));
        self.send_key_package(link);
        Ok(())
    }

    fn send_key_package(&mut self, link: &VoiceLink) {
        if let Some(s) = self.session()
            && let Ok(kp) = s.create_key_package()
        {
            link.send(binary(OP_KEY_PACKAGE, &[&kp]));
        }
    }

    /// Drops the MLS state and asks to be added again (after an invalid commit or welcome).
    fn recover(&mut self, transition_id: u16, user_id: u64, channel_id: u64, link: &VoiceLink) {
        link.send(json_op(
            OP_INVALID_COMMIT_WELCOME,
            json!({"transition_id": transition_id}),
        ));
        self.reinit(user_id, channel_id, link);
    }

    fn reinit(&mut self, user_id: u64, channel_id: u64, link: &VoiceLink) {
        let Some(v) = NonZeroU16::new(self.protocol_version) else {
            return;
        };
        if let Some(s) = self.session() {
            if let Err(e) = s.reinit(v, user_id, channel_id, None) {
                tracing::warn!("DAVE reinit failed: {e}");
                return;
            }
        } else if let Ok(s) = DaveSession::new(v, user_id, channel_id, None) {
            self.session = Some(Mutex::new(s));
        }
        self.send_key_package(link);
    }

    /// Handles one DAVE opcode from the voice gateway.
    pub fn on_event(
        &mut self,
        event: &VoiceEvent,
        members: &CallMembers,
        user_id: u64,
        channel_id: u64,
        link: &VoiceLink,
    ) {
        // The welcome's roster includes us: davey checks every member against this list.
        let known: Vec<u64> = members
            .0
            .iter()
            .copied()
            .chain(std::iter::once(user_id))
            .collect();
        match event {
            VoiceEvent::DaveBinary { op, payload } => {
                self.on_binary(*op, payload, &known, user_id, channel_id, link)
            }
            VoiceEvent::DaveJson { op, d } => self.on_json(*op, d, user_id, channel_id, link),
            _ => {}
        }
    }

    fn on_binary(
        &mut self,
        op: u8,
        p: &[u8],
        known: &[u64],
        user_id: u64,
        channel_id: u64,
        link: &VoiceLink,
    ) {
        let version = self.protocol_version;
        let Some(s) = self.session() else {
            tracing::debug!("DAVE op {op} in a version-0 call: ignored");
            return;
        };
        match op {
            OP_EXTERNAL_SENDER => {
                if let Err(e) = s.set_external_sender(p) {
                    tracing::warn!("DAVE external sender refused: {e}");
                }
            }
            OP_PROPOSALS => {
                let Some((&kind, proposals)) = p.split_first() else {
                    return;
                };
                let kind = if kind == 1 {
                    ProposalsOperationType::REVOKE
                } else {
                    ProposalsOperationType::APPEND
                };
                match s.process_proposals(kind, proposals, Some(known)) {
                    Ok(Some(cw)) => {
                        let welcome = cw.welcome.unwrap_or_default();
                        link.send(binary(OP_COMMIT_WELCOME, &[&cw.commit, &welcome]));
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("DAVE proposals refused: {e}"),
                }
            }
            OP_ANNOUNCE_COMMIT | OP_WELCOME => {
                if p.len() < 2 {
                    return;
                }
                let tid = u16::from_be_bytes([p[0], p[1]]);
                let body = &p[2..];
                let applied = if op == OP_ANNOUNCE_COMMIT {
                    s.process_commit(body).map_err(|e| e.to_string())
                } else {
                    s.process_welcome(body, Some(known))
                        .map(|()| true)
                        .map_err(|e| e.to_string())
                };
                match applied {
                    Ok(true) => {
                        match s.prepare_transition(tid, version) {
                            Ok(()) if tid != 0 => {
                                self.pending.insert(tid, version);
                            }
                            Ok(()) => {}
                            Err(e) => tracing::warn!("DAVE prepare transition {tid} failed: {e}"),
                        }
                        if tid != 0 {
                            link.send(ready_for_transition(tid));
                        }
                    }
                    // A commit for a group we are not in yet: not ours to apply
                    // (docs/protocol.md §9, pitfall 14).
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(
                            "DAVE {} {tid} invalid ({e}); asking to be re-added",
                            if op == OP_WELCOME {
                                "welcome"
                            } else {
                                "commit"
                            }
                        );
                        self.recover(tid, user_id, channel_id, link);
                    }
                }
            }
            other => tracing::debug!("DAVE binary op {other} ignored"),
        }
    }

    fn on_json(&mut self, op: u8, d: &Value, user_id: u64, channel_id: u64, link: &VoiceLink) {
        let tid = d
            .get("transition_id")
            .and_then(Value::as_u64)
            .and_then(|t| u16::try_from(t).ok());
        let pv = d
            .get("protocol_version")
            .and_then(Value::as_u64)
            .and_then(|v| u16::try_from(v).ok());
        match op {
            OP_PREPARE_TRANSITION => {
                let (Some(tid), Some(pv)) = (tid, pv) else {
                    return;
                };
                let Some(s) = self.session() else { return };
                match s.prepare_transition(tid, pv) {
                    Ok(()) if tid != 0 => {
                        self.pending.insert(tid, pv);
                    }
                    Ok(()) => {}
                    Err(e) => tracing::warn!("DAVE prepare transition {tid} failed: {e}"),
                }
                let Some(s) = self.session() else { return };
                if pv == 0 {
                    // Downgrade: accept non-DAVE frames from others for a while.
                    s.set_passthrough_mode(true, Some(10));
                }
                self.protocol_version = pv;
                if tid != 0 {
                    link.send(ready_for_transition(tid));
                } else {
                    // Transition 0 applies at once (a sole-member reset or a forced change).
                    self.media_version = pv;
                }
            }
            OP_EXECUTE_TRANSITION => {
                let Some(tid) = tid else { return };
                let Some(s) = self.session() else { return };
                match s.execute_transition(tid) {
                    // Nothing was prepared under this id: nothing switches.
                    Ok(false) => tracing::debug!("DAVE transition {tid} was never prepared"),
                    Ok(true) => {
                        tracing::info!(
                            "DAVE transition {tid} executed (epoch {:?}, privacy code {:?})",
                            s.epoch().map(|e| e.as_u64()),
                            s.voice_privacy_code().map(group_in_fives)
                        );
                        self.transitions += 1;
                        if let Some(version) = self.pending.remove(&tid) {
                            self.media_version = version;
                        }
                    }
                    Err(e) => tracing::warn!("DAVE execute transition {tid} failed: {e}"),
                }
            }
            OP_PREPARE_EPOCH => {
                let epoch = d.get("epoch").and_then(Value::as_u64);
                // An epoch belongs to a DAVE group: version 0 comes only by a transition (op 21),
                // which the server must announce and execute (found by fuzz/dave_ops).
                match pv {
                    Some(0) => tracing::warn!("DAVE prepare epoch to version 0 ignored"),
                    Some(pv) => self.protocol_version = pv,
                    None => {}
                }
                // Epoch 1 is a new group: start over with a fresh key package.
                if epoch == Some(1) {
                    self.reinit(user_id, channel_id, link);
                }
            }
            other => tracing::debug!("DAVE JSON op {other} ignored"),
        }
    }
}

/// Keeps the call's membership current (op 11 and op 13 can arrive at any time).
pub fn track_members(event: &VoiceEvent, members: &mut CallMembers) {
    match event {
        VoiceEvent::ClientsConnect(ids) => members.0.extend(ids),
        VoiceEvent::ClientDisconnect(id) => {
            members.0.remove(id);
        }
        _ => {}
    }
}

fn binary(op: u8, parts: &[&[u8]]) -> VoiceCommand {
    let mut out = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    out.push(op);
    for p in parts {
        out.extend_from_slice(p);
    }
    VoiceCommand::Binary(out)
}

fn json_op(op: u8, d: Value) -> VoiceCommand {
    VoiceCommand::Json(json!({"op": op, "d": d}).to_string())
}

fn ready_for_transition(tid: u16) -> VoiceCommand {
    json_op(OP_READY_FOR_TRANSITION, json!({"transition_id": tid}))
}

/// "123451234512345…" → "12345 12345 12345 …", as Discord displays the privacy code.
pub fn group_in_fives(code: &str) -> String {
    code.as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
