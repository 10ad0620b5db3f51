//! The bot's audio in a DAVE call (docs/protocol.md §6.6, §6.8): each listener DAVE-decrypts and
//! decodes it, plaintext after the first transition is refused, and the gap around each
//! transition is measured.

use std::time::{Duration, Instant};

use crate::heard::HeardFrame;
use crate::rtp::SILENCE;
use crate::state::State;

/// Old keys may legitimately be in use this long after a transition (davey's RATCHET_EXPIRY).
const DECRYPT_GRACE: Duration = Duration::from_secs(10);
/// When a transition switches media between plain and E2EE, frames the sender made before it
/// got op 22 may still arrive this long (a few ticks of a loaded sender plus the network).
const IN_FLIGHT: Duration = Duration::from_millis(250);
/// The window around a transition in which listeners' audio gaps are measured.
const GAP_WINDOW: Duration = Duration::from_secs(1);

/// What became of one audio frame of the bot.
pub enum Received {
    /// Not a DAVE call (or nobody to decode it): the caller decodes it as plain Opus.
    Plain,
    /// Heard: `pcm` is what the first listener decoded (None: not 20 ms of Opus).
    Heard {
        silence: bool,
        pcm: Option<Vec<f32>>,
    },
    /// Refused with a violation already recorded; not heard.
    Refused { silence: bool },
    /// A DAVE frame nobody could decrypt during a transition's grace: dropped quietly.
    Dropped,
}

fn is_dave_frame(p: &[u8]) -> bool {
    p.len() >= 11 && p.ends_with(&[0xFA, 0xFA]) && {
        let suppl = usize::from(p[p.len() - 3]);
        suppl >= 11 && suppl < p.len()
    }
}

/// Handles one transport-decrypted audio payload from `sender` (the bot) in `guild_id`.
pub fn receive(
    st: &mut State,
    guild_id: u64,
    sender: u64,
    payload: &[u8],
    frame: HeardFrame,
    limit: usize,
) -> Received {
    let Some(call) = st.calls.get_mut(&guild_id) else {
        return Received::Plain;
    };
    let now = Instant::now();
    // A call that never used DAVE has no DAVE frames: plain Opus can end in FA FA by chance.
    let dave_call = call.version >= 1 || call.e2ee_since.is_some() || call.downgraded_at.is_some();
    if payload == SILENCE || !dave_call || !is_dave_frame(payload) {
        let silence = payload == SILENCE;
        let e2ee_for = call.e2ee_since.map(|t| now.saturating_duration_since(t));
        if !silence && e2ee_for.is_some_and(|d| d > IN_FLIGHT) {
            let detail = format!(
                "seq {}: {}-byte audio frame without the DAVE marker after the call went E2EE",
                frame.seq,
                payload.len()
            );
            st.violation(Some(guild_id), "dave.plaintext", detail);
            return Received::Refused { silence };
        }
        // Silence always passes (docs/protocol.md §6.8); before the first transition (and
        // after a downgrade) plain Opus is passthrough.
        let mut first = None;
        for l in call.listeners.values_mut() {
            let pcm = l.record(frame.clone(), payload, silence, limit);
            first.get_or_insert(pcm);
        }
        return match first {
            Some(pcm) => Received::Heard { silence, pcm },
            None => Received::Plain,
        };
    }
    if let Some(at) = call.downgraded_at
        && now.duration_since(at) > IN_FLIGHT
    {
        let detail = format!(
            "seq {}: DAVE-encrypted frame {} ms after the downgrade to version 0 executed \
             (members without DAVE cannot play it)",
            frame.seq,
            now.duration_since(at).as_millis()
        );
        st.violation(Some(guild_id), "dave.after_downgrade", detail);
        return Received::Refused { silence: false };
    }
    let mut first: Option<(bool, Option<Vec<f32>>)> = None;
    let mut errors = Vec::new();
    for l in call.listeners.values_mut() {
        if !l.can_decrypt_from(sender) {
            continue;
        }
        match l.decrypt(sender, payload) {
            Ok(opus) => {
                let silence = opus == SILENCE;
                let pcm = l.record(frame.clone(), &opus, silence, limit);
                first.get_or_insert((silence, pcm));
            }
            Err(e) => errors.push(format!("listener {}: {e}", l.user_id)),
        }
    }
    if let Some((silence, pcm)) = first {
        return Received::Heard { silence, pcm };
    }
    let in_grace = call
        .executed
        .last()
        .is_some_and(|t| now.duration_since(*t) < DECRYPT_GRACE);
    if in_grace {
        return Received::Dropped;
    }
    let why = if errors.is_empty() {
        "no listener shares a group with the sender".to_string()
    } else {
        errors.join("; ")
    };
    st.violation(
        Some(guild_id),
        "dave.decrypt",
        format!("seq {}: DAVE frame nobody can decrypt: {why}", frame.seq),
    );
    Received::Refused { silence: false }
}

/// Per executed transition, the longest interval between consecutive frames any listener decoded
/// within a second either side of it.
pub fn gaps(st: &State, guild_id: u64) -> Vec<Duration> {
    let Some(call) = st.calls.get(&guild_id) else {
        return Vec::new();
    };
    call.executed
        .iter()
        .map(|t| {
            let (lo, hi) = (t.checked_sub(GAP_WINDOW).unwrap_or(*t), *t + GAP_WINDOW);
            call.listeners
                .values()
                .map(|l| {
                    let ats: Vec<Instant> = l.heard.iter().map(|f| f.at).collect();
                    ats.windows(2)
                        .filter(|w| w[1] >= lo && w[0] <= hi)
                        .map(|w| w[1].saturating_duration_since(w[0]))
                        .max()
                        .unwrap_or_default()
                })
                .max()
                .unwrap_or_default()
        })
        .collect()
}
