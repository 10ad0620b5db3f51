//! DAVE op sequences (voice gateway ops 21–31, JSON and binary, with Session Description and
//! members coming and going) into the engine's DAVE handler, `voxboard_voice::engine::dave::Dave`.
//!
//! Property: no panic, and a non-silence Opus frame leaves in the clear only after the server
//! put the call at version 0 by the protocol's own means (Session Description version 0, or a
//! prepare-transition op 21 to version 0). A session that could not be made never sends plain.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use voxboard_audio::opus::SILENCE_FRAME;
use voxboard_voice::discord::voice_gateway::{VoiceCommand, VoiceEvent};
use voxboard_voice::engine::components::VoiceLink;
use voxboard_voice::engine::dave::{CallMembers, Dave, track_members};

const USER: u64 = 1;
const CHANNEL: u64 = 9;
/// Enough steps to reach any state the handler has; more only slows the fuzzer.
const MAX_STEPS: usize = 64;

/// Reads the input as a script of small structured steps.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn bytes(&mut self, len: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// A JSON `d` for ops 21, 22 and 24 with each field present or not; versions 0–2 (we speak 1).
fn dave_json(s: &mut Script) -> Option<Value> {
    let flags = s.byte()?;
    let mut d = Map::new();
    if flags & 1 != 0 {
        d.insert("transition_id".into(), json!(s.u16()?));
    }
    if flags & 2 != 0 {
        d.insert("protocol_version".into(), json!(s.byte()? % 3));
    }
    if flags & 4 != 0 {
        d.insert("epoch".into(), json!(s.byte()? % 3));
    }
    if flags & 8 != 0 {
        // A number out of range for the field's type.
        d.insert("transition_id".into(), json!(u64::from(s.u16()?) << 20));
    }
    Some(Value::Object(d))
}

pub fn dave_ops(data: &[u8]) {
    let mut s = Script(data);
    let (tx, mut sent) = tokio::sync::mpsc::unbounded_channel::<VoiceCommand>();
    let link = VoiceLink {
        tx: Some(tx),
        ..Default::default()
    };
    let mut dave = Dave::default();
    let mut members = CallMembers::default();
    let t0 = Instant::now();
    // What the server said the call's version is, by the protocol's means only.
    let mut plain_allowed = true;
    for _ in 0..MAX_STEPS {
        let Some(step) = s.byte() else { break };
        match step % 8 {
            0 => {
                let Some(v) = s.byte() else { break };
                let version = u16::from(v % 3);
                let _ = dave.start(version, USER, CHANNEL, &link, t0);
                plain_allowed = version == 0;
            }
            1 => {
                let Some(op) = s.byte() else { break };
                let op = [21, 22, 23, 24][usize::from(op % 4)];
                let Some(d) = dave_json(&mut s) else { break };
                if op == 21
                    && d.get("protocol_version") == Some(&json!(0))
                    && d.get("transition_id")
                        .and_then(Value::as_u64)
                        .is_some_and(|t| t <= u64::from(u16::MAX))
                {
                    plain_allowed = true;
                }
                let event = VoiceEvent::DaveJson { op, d };
                dave.on_event(&event, &members, USER, CHANNEL, &link);
            }
            2 => {
                let (Some(op), Some(len)) = (s.byte(), s.u16()) else {
                    break;
                };
                let op = 25 + op % 7;
                let payload = s.bytes(usize::from(len)).to_vec();
                let event = VoiceEvent::DaveBinary { op, payload };
                dave.on_event(&event, &members, USER, CHANNEL, &link);
            }
            3 => {
                let Some(n) = s.byte() else { break };
                let ids: Vec<u64> = s
                    .bytes(usize::from(n % 8))
                    .iter()
                    .map(|&b| u64::from(b))
                    .collect();
                track_members(&VoiceEvent::ClientsConnect(ids), &mut members);
                dave.member_joined(t0);
            }
            4 => {
                let Some(id) = s.byte() else { break };
                track_members(&VoiceEvent::ClientDisconnect(u64::from(id)), &mut members);
            }
            5 => {
                let Some(len) = s.byte() else { break };
                let frame = s.bytes(usize::from(len % 64) + 1).to_vec();
                let out = dave.protect(&frame).map(|f| f.into_owned());
                if frame != SILENCE_FRAME && out.as_deref() == Some(&frame[..]) {
                    assert!(
                        plain_allowed,
                        "plain Opus in a DAVE call the server never downgraded ({dave:?})"
                    );
                }
            }
            6 => {
                let Some(ms) = s.byte() else { break };
                let later = t0 + Duration::from_millis(u64::from(ms) * 50);
                let _ = dave.media_ready(&members, later);
            }
            _ => {
                // Any JSON at all under any DAVE op number.
                let (Some(op), Some(len)) = (s.byte(), s.byte()) else {
                    break;
                };
                let Ok(d) = serde_json::from_slice::<Value>(s.bytes(usize::from(len))) else {
                    continue;
                };
                if op == 21 {
                    // The model cannot tell which of these the handler takes as a downgrade.
                    plain_allowed |= d.get("protocol_version").and_then(Value::as_u64) == Some(0);
                }
                let event = VoiceEvent::DaveJson { op, d };
                dave.on_event(&event, &members, USER, CHANNEL, &link);
            }
        }
        let _ = dave.status();
        while sent.try_recv().is_ok() {}
    }
}
