//! UDP media server (docs/protocol.md §4, §5): IP discovery, keepalives, and strict RTP checking,
//! decryption and Opus decoding into what a listener in the channel hears.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use audiopus::coder::Decoder;
use audiopus::packet::Packet;
use audiopus::{Channels, MutSignals, SampleRate};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::dave::{self, Received};
use super::events::SimEvent;
use super::heard::HeardFrame;
use super::rtp::{self, FRAME_LEN, FRAME_SAMPLES, PT_OPUS, SILENCE};
use super::state::{ENDED_GRACE, Shared, State, Tail, VOICE_RESUME_WINDOW};

/// Audio is considered stopped after this long without a packet (the silence rule's trigger).
/// Well above a frame or two: a client stalled by a loaded machine has not "stopped".
pub const STOP_GAP: Duration = Duration::from_millis(300);
/// How long a packet that beat its op 5 over loopback is given for the op 5 to be processed.
/// Generous for a loaded 2-core CI machine; it only costs time when the client is at fault.
const SPEAKING_GRACE: Duration = Duration::from_millis(200);
/// How far a packet's arrival may trail the op 5 that stopped speaking and still count as sent
/// before it (the UDP and websocket tasks are scheduled independently).
const SPEAKING_RACE: Duration = Duration::from_millis(60);
/// How long after a moderator moves the bot to a stage's audience its audio still in flight is
/// dropped without blame (the VOICE_STATE_UPDATE telling it has to reach the client first).
const SUPPRESS_GRACE: Duration = Duration::from_millis(300);
const TS_STEP: u32 = FRAME_SAMPLES as u32;
const FRAME_PERIOD: Duration = Duration::from_millis(20);
/// Ended or expired voice sessions are dropped from memory after this long.
const FORGET_AFTER: Duration = Duration::from_secs(60);

struct Queued {
    pkt: Vec<u8>,
    received: Instant,
    due: Instant,
}

pub async fn serve(shared: Arc<Shared>, server: usize, socket: UdpSocket) {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(process_loop(shared.clone(), server, rx));
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, src) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some platforms; keep serving.
                tracing::debug!(target: "voxboard_sim", "udp recv: {e}");
                continue;
            }
        };
        let pkt = &buf[..n];
        if n == 74 && pkt[0] == 0 {
            if let Some(reply) = discovery(&shared, server, pkt, src) {
                let _ = socket.send_to(&reply, src).await;
            }
        } else if n == 4 || n == 8 {
            tracing::trace!(target: "voxboard_sim", "udp keepalive from {src}");
        } else if let Some(due) = admit(&shared, server, pkt) {
            let _ = tx.send(Queued {
                received: Instant::now(),
                pkt: pkt.to_vec(),
                due,
            });
        }
    }
}

/// Answers an IP discovery request (docs/protocol.md §4.1) from the same socket, with the
/// sender's apparent address.
fn discovery(shared: &Shared, server: usize, pkt: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
    let mut st = shared.lock();
    let ty = u16::from_be_bytes([pkt[0], pkt[1]]);
    let len = u16::from_be_bytes([pkt[2], pkt[3]]);
    let ssrc = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
    if ty != 1 || len != 70 {
        st.violation(
            None,
            "udp.discovery",
            format!(
                "74-byte datagram with type {ty} length {len}, expected request type 1 length 70"
            ),
        );
        return None;
    }
    let now = Instant::now();
    let Some(v) = st
        .voice
        .values_mut()
        .find(|v| v.server == server && v.ssrc == ssrc && v.is_live(now))
    else {
        st.violation(
            None,
            "udp.discovery_ssrc",
            format!("IP discovery for ssrc {ssrc}, which no live session on this server owns"),
        );
        return None;
    };
    v.discovered = Some(src);
    let guild_id = v.guild_id;
    st.event(SimEvent::IpDiscovery { guild_id, ssrc });
    let mut reply = vec![0u8; 74];
    reply[..2].copy_from_slice(&2u16.to_be_bytes());
    reply[2..4].copy_from_slice(&70u16.to_be_bytes());
    reply[4..8].copy_from_slice(&ssrc.to_be_bytes());
    let ip = src.ip().to_string();
    reply[8..8 + ip.len()].copy_from_slice(ip.as_bytes());
    reply[72..74].copy_from_slice(&src.port().to_be_bytes());
    Some(reply)
}

/// Fault injection happens here, before processing: drop every n-th RTP packet of a guild (the
/// gap is then not held against the client) or delay it.
fn admit(shared: &Shared, server: usize, pkt: &[u8]) -> Option<Instant> {
    let now = Instant::now();
    let mut st = shared.lock();
    let Some((vid, hdr)) = session_of(&st, server, pkt) else {
        return Some(now);
    };
    let Some(guild_id) = st.voice.get(&vid).map(|v| v.guild_id) else {
        return Some(now);
    };
    let gv = st.guild(guild_id);
    let due = now + gv.udp_delay;
    gv.udp_drop_counter = gv.udp_drop_counter.wrapping_add(1);
    let drop = gv.udp_drop_every > 0 && gv.udp_drop_counter.is_multiple_of(gv.udp_drop_every);
    let v = st.voice.get_mut(&vid)?;
    v.rtp.last_arrival = Some(due);
    if drop {
        v.rtp.skipped.insert(hdr.seq, hdr.timestamp);
        tracing::debug!(target: "voxboard_sim", guild_id, seq = hdr.seq, "sim dropped RTP packet");
        return None;
    }
    v.rtp.queued += 1;
    Some(due)
}

/// The voice session (of any state) an RTP datagram names by SSRC on this server.
fn session_of(st: &State, server: usize, pkt: &[u8]) -> Option<(u64, rtp::RtpHeader)> {
    let hdr = rtp::parse_header(pkt).ok()?;
    st.voice
        .iter()
        .find(|(_, v)| v.server == server && v.ssrc == hdr.ssrc)
        .map(|(id, _)| (*id, hdr))
}

/// Whether a packet may be decrypted yet.
enum Gate {
    Open(Arc<rtp::TransportCipher>),
    Wait,
    Refuse(&'static str, String),
}

async fn process_loop(shared: Arc<Shared>, server: usize, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let mut decoders: HashMap<u32, Decoder> = HashMap::new();
    while let Some(q) = rx.recv().await {
        tokio::time::sleep_until(q.due.into()).await;
        process(&shared, server, &mut decoders, &q).await;
        let mut st = shared.lock();
        if let Some((vid, _)) = session_of(&st, server, &q.pkt)
            && let Some(v) = st.voice.get_mut(&vid)
        {
            v.rtp.processed += 1;
        }
    }
}

/// Finds the session owning `ssrc` on this server: Ok((vid, guild)) if it may send, Err(None) to
/// drop quietly (session ended moments ago, packets still in flight).
fn owner(st: &mut State, server: usize, ssrc: u32) -> Result<(u64, u64), Option<String>> {
    let now = Instant::now();
    let mut found = None;
    for (id, v) in st
        .voice
        .iter()
        .filter(|(_, v)| v.server == server && v.ssrc == ssrc)
    {
        if v.is_live(now) {
            return Ok((*id, v.guild_id));
        }
        found = Some(
            v.ended_at
                .is_some_and(|t| now.duration_since(t) < ENDED_GRACE),
        );
    }
    match found {
        Some(true) => Err(None),
        Some(false) => Err(Some(format!(
            "ssrc {ssrc} belongs to a session that ended or expired"
        ))),
        None => Err(Some(format!(
            "ssrc {ssrc} belongs to no voice session on this server"
        ))),
    }
}

async fn process(shared: &Shared, server: usize, decoders: &mut HashMap<u32, Decoder>, q: &Queued) {
    let (pkt, received, arrival) = (&q.pkt[..], q.received, q.due);
    if (200..=204).contains(&pkt.get(1).copied().unwrap_or(0)) {
        return shared.lock().violation(
            None,
            "rtp.rtcp",
            "RTCP from a sending bot is not expected",
        );
    }
    let hdr = match rtp::parse_header(pkt) {
        Ok(h) => h,
        Err(e) => return shared.lock().violation(None, "rtp.parse", e),
    };
    // Bound first: a guard in the match scrutinee would live through the arms, which lock again.
    let found = owner(&mut shared.lock(), server, hdr.ssrc);
    let (vid, guild_id) = match found {
        Ok(x) => x,
        Err(None) => return,
        Err(Some(why)) => return shared.lock().violation(None, "rtp.unknown_ssrc", why),
    };
    let g = Some(guild_id);
    // A refused packet still took its place in the sequence: one breach, one violation.
    let refuse = |rule: &str, detail: String| {
        let mut st = shared.lock();
        if let Some(v) = st.voice.get_mut(&vid) {
            v.rtp.skipped.insert(hdr.seq, hdr.timestamp);
        }
        st.violation(g, rule, detail);
    };
    if hdr.payload_type != PT_OPUS {
        let pt = hdr.payload_type;
        return refuse(
            "rtp.payload_type",
            format!("payload type {pt}, expected {PT_OPUS}"),
        );
    }
    // Speaking must come first (docs/protocol.md §3.3). The op 5 may still sit in the gateway
    // task's queue when its packet arrives over loopback, so a short grace applies only to the
    // violating case.
    let waited = Instant::now();
    let cipher = loop {
        let gate = {
            let mut st = shared.lock();
            let Some(v) = st.voice.get_mut(&vid) else {
                return;
            };
            match (v.speaking.is_some(), v.cipher.clone()) {
                (true, Some(c)) => Gate::Open(c),
                (true, None) => Gate::Refuse(
                    "rtp.before_session_description",
                    "RTP before Session Description: no key yet".into(),
                ),
                (false, _) if waited.elapsed() >= SPEAKING_GRACE => Gate::Refuse(
                    "rtp.before_speaking",
                    format!("RTP seq {} before any op 5 Speaking", hdr.seq),
                ),
                (false, _) => Gate::Wait,
            }
        };
        match gate {
            Gate::Open(c) => break c,
            Gate::Wait => tokio::time::sleep(Duration::from_millis(5)).await,
            Gate::Refuse(rule, detail) => return refuse(rule, detail),
        }
    };
    let dec = match cipher.decrypt(pkt, &hdr) {
        Ok(d) => d,
        Err(e) => return refuse("rtp.decrypt", format!("seq {}: {e}", hdr.seq)),
    };
    let template = HeardFrame {
        at: arrival,
        ssrc: hdr.ssrc,
        seq: hdr.seq,
        timestamp: hdr.timestamp,
        silence: false,
        pcm: Vec::new(),
    };
    let limit = shared.config.heard_limit;
    let bot = shared.config.bot_user_id;
    // A DAVE call's listeners decrypt and decode it themselves (dave::media).
    let outcome = dave::receive(
        &mut shared.lock(),
        guild_id,
        bot,
        &dec.payload,
        template,
        limit,
    );
    let (silence, pcm, refused) = match outcome {
        Received::Plain => {
            let silence = dec.payload == SILENCE;
            let pcm = if silence {
                Some(vec![0.0; FRAME_LEN])
            } else {
                decode(decoders, hdr.ssrc, &dec.payload)
            };
            (silence, pcm, None)
        }
        Received::Heard { silence, pcm } => (silence, pcm, None),
        Received::Refused { silence } => (silence, None, Some(Tail::Audio)),
        Received::Dropped => (false, None, Some(Tail::Unknown)),
    };
    if !silence {
        check_speaking_nonzero(shared, vid, g, hdr.seq, received).await;
    }
    let mut st = shared.lock();
    let Some(v) = st.voice.get_mut(&vid) else {
        return;
    };
    if !v.rtp.nonces.insert(dec.nonce) {
        return st.violation(
            g,
            "rtp.nonce_reuse",
            format!(
                "seq {}: nonce {:02x?} already used under this key",
                hdr.seq,
                &dec.nonce[..4]
            ),
        );
    }
    let t = &mut v.rtp;
    let resumed_after_stop = t
        .last_packet_at
        .is_some_and(|at| arrival.duration_since(at) >= STOP_GAP);
    let mut problems = Vec::new();
    if let Some((ls, lt)) = t.last {
        let (mut es, mut et) = (ls.wrapping_add(1), lt.wrapping_add(TS_STEP));
        while es != hdr.seq && t.skipped.remove(&es).is_some() {
            t.tail.push_back(Tail::Unknown);
            (es, et) = (es.wrapping_add(1), et.wrapping_add(TS_STEP));
        }
        if hdr.seq != es {
            problems.push((
                "rtp.seq",
                format!("seq {} after {ls}, expected {es}", hdr.seq),
            ));
        } else if hdr.timestamp != et {
            // After audio stopped, a forward jump by the elapsed time is allowed
            // (docs/protocol.md §4.2 leaves the choice open); within a stream the step is
            // exactly 960.
            let forward = hdr.timestamp.wrapping_sub(et);
            if !(resumed_after_stop && forward < 1 << 31) {
                problems.push((
                    "rtp.timestamp",
                    format!("timestamp {} after {lt}, expected {et}", hdr.timestamp),
                ));
            }
        }
    }
    t.last = Some((hdr.seq, hdr.timestamp));
    t.last_packet_at = Some(arrival);
    t.tail.push_back(match refused {
        Some(tail) => tail,
        None if silence => Tail::Silence,
        None => Tail::Audio,
    });
    while t.tail.len() > 5 {
        t.tail.pop_front();
    }
    if !silence {
        t.in_audio = true;
    }
    for (rule, detail) in problems {
        st.violation(g, rule, detail);
    }
    if refused.is_some() {
        return; // its violation, if any, is recorded already; it was not heard
    }
    let Some(pcm) = pcm else {
        return st.violation(
            g,
            "opus.decode",
            format!(
                "seq {}: payload of {} bytes is not a 20 ms stereo Opus frame",
                hdr.seq,
                dec.payload.len()
            ),
        );
    };
    let voice = st.guild(guild_id);
    if voice.suppressed && !silence {
        // A stage audience member: Discord forwards none of its audio.
        let in_flight = voice
            .suppressed_at
            .is_some_and(|t| arrival.saturating_duration_since(t) < SUPPRESS_GRACE);
        if in_flight {
            return;
        }
        return st.violation(
            g,
            "rtp.suppressed",
            format!(
                "seq {}: audio while suppressed in a stage (not heard)",
                hdr.seq
            ),
        );
    }
    let frame = HeardFrame {
        at: arrival,
        ssrc: hdr.ssrc,
        seq: hdr.seq,
        timestamp: hdr.timestamp,
        silence,
        pcm,
    };
    if !silence {
        *st.heard_audio.entry(guild_id).or_default() += 1;
    }
    let heard = st.heard.entry(guild_id).or_default();
    heard.push_back(frame);
    while heard.len() > limit {
        heard.pop_front();
    }
}

/// Audio needs a non-zero `speaking` (docs/protocol.md §3.3). A packet that left the client
/// before its op 5 speaking 0 was processed is fine; one after it waits briefly for a speaking 1
/// that may still be in the gateway's queue. Recorded, not dropped: the SFU still forwards the
/// audio.
async fn check_speaking_nonzero(
    shared: &Shared,
    vid: u64,
    g: Option<u64>,
    seq: u16,
    received: Instant,
) {
    let waited = Instant::now();
    loop {
        let (speaking, at) = {
            let st = shared.lock();
            let Some(v) = st.voice.get(&vid) else { return };
            (v.speaking, v.speaking_at)
        };
        let sent_before_off = at.is_some_and(|at| received <= at + SPEAKING_RACE);
        if speaking != Some(0) || sent_before_off {
            return;
        }
        if waited.elapsed() >= SPEAKING_GRACE {
            let detail = format!("audio frame seq {seq} while speaking is 0");
            return shared
                .lock()
                .violation(g, "rtp.audio_while_not_speaking", detail);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Decodes one Opus frame to 48 kHz stereo; None unless it is valid and exactly 20 ms.
fn decode(decoders: &mut HashMap<u32, Decoder>, ssrc: u32, payload: &[u8]) -> Option<Vec<f32>> {
    let dec = match decoders.entry(ssrc) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(Decoder::new(SampleRate::Hz48000, Channels::Stereo).ok()?)
        }
    };
    decode_frame(dec, payload)
}

/// Decodes one Opus packet with `dec`; None unless it is valid and exactly one 20 ms frame.
pub(crate) fn decode_frame(dec: &mut Decoder, payload: &[u8]) -> Option<Vec<f32>> {
    let mut out = vec![0f32; FRAME_LEN * 6]; // room for Opus' longest (120 ms) frame
    let packet = Packet::try_from(payload).ok()?;
    let n = dec
        .decode_float(
            Some(packet),
            MutSignals::try_from(&mut out[..]).ok()?,
            false,
        )
        .ok()?;
    (n == FRAME_SAMPLES).then(|| {
        out.truncate(FRAME_LEN);
        out
    })
}

/// Runs every 20 ms: forgets long-dead sessions, and when a session's audio stops (no packet for
/// STOP_GAP after audio frames, or op 5 speaking 0), the last five frames must have been silence
/// frames (docs/protocol.md §4.3). A speaking-0 stop is judged once the packets sent before it
/// have had time to be processed (the guild's injected delay plus two frame periods), since UDP
/// and the websocket race each other.
pub async fn silence_watch(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let now = Instant::now();
        let mut st = shared.lock();
        let delays: HashMap<u64, Duration> =
            st.guilds.iter().map(|(g, gv)| (*g, gv.udp_delay)).collect();
        // Each guild's current voice token: a session holding an older one was replaced by a
        // VOICE_SERVER_UPDATE (a region move), and the client rightly drops it mid-stream.
        let tokens: HashMap<u64, String> = st
            .guilds
            .iter()
            .filter_map(|(g, gv)| gv.grant.as_ref().map(|gr| (*g, gr.token.clone())))
            .collect();
        // Forget sessions long over, so a long demo does not accumulate them.
        st.voice.retain(|_, v| {
            let over = v
                .ended_at
                .or(v.detached_at.map(|t| t + VOICE_RESUME_WINDOW));
            over.is_none_or(|t| now.saturating_duration_since(t) < FORGET_AFTER)
        });
        let mut found = Vec::new();
        for v in st.voice.values_mut() {
            let settle = delays.get(&v.guild_id).copied().unwrap_or_default() + 2 * FRAME_PERIOD;
            let t = &mut v.rtp;
            let replaced = tokens
                .get(&v.guild_id)
                .is_some_and(|current| *current != v.grant.token);
            if v.ended_at.is_some() || replaced {
                // A session that ended (closed by the server, replaced by a move or a rejoin)
                // cannot carry a tail: its key is gone, or its server is being left. The rule
                // is for audio that stops.
                t.in_audio = false;
                continue;
            }
            // Judge only what the processor has caught up with, so its own waits are never
            // mistaken for the client going quiet.
            let caught_up = t.queued == t.processed;
            let gap = caught_up
                && t.last_arrival
                    .is_some_and(|at| now.duration_since(at) >= STOP_GAP);
            let off = caught_up
                && t.speaking_off_at
                    .is_some_and(|at| now.duration_since(at) >= settle);
            if !(t.in_audio && (gap || off)) {
                if off {
                    t.speaking_off_at = None;
                }
                continue;
            }
            t.in_audio = false;
            t.speaking_off_at = None;
            // Trailing frames the simulator itself dropped count as unknown, not as audio.
            if let Some((mut ls, mut lt)) = t.last {
                while t.skipped.remove(&ls.wrapping_add(1)).is_some() {
                    (ls, lt) = (ls.wrapping_add(1), lt.wrapping_add(TS_STEP));
                    t.tail.push_back(Tail::Unknown);
                    if t.tail.len() > 5 {
                        t.tail.pop_front();
                    }
                }
                t.last = Some((ls, lt));
            }
            let ok = t.tail.len() == 5 && t.tail.iter().all(|e| *e != Tail::Audio);
            if !ok {
                let why = if gap {
                    "audio stopped"
                } else {
                    "speaking went to 0"
                };
                found.push((
                    v.guild_id,
                    format!(
                        "{why} after {:?}; the last 5 frames must be F8 FF FE silence",
                        t.tail
                    ),
                ));
            }
        }
        for (g, detail) in found {
            st.violation(Some(g), "rtp.silence_tail", detail);
        }
    }
}
