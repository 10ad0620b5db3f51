//! One function per fuzz target: what Voxboard reads from the network, from disk or from what a
//! user types, fed arbitrary bytes. Each must return (an error is fine) and never panic, hang or
//! allocate without bound. `cargo fuzz` drives them through `fuzz_targets/`; `cargo test` replays the committed
//! corpus (`corpus/<target>/`) through the very same functions on every CI run.

mod board;
mod dave;

pub use board::{board_json, hotkey_strings};
pub use dave::dave_ops;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use voxboard_audio::FRAME_LEN;
use voxboard_audio::mixer::{Cursor, Limiter, add_frame, advance};
use voxboard_voice::discord::crypto::{TransportCipher, TransportMode};
use voxboard_voice::discord::gateway::payloads as main_payloads;
use voxboard_voice::discord::voice_gateway::payloads as voice_payloads;
use voxboard_voice::discord::{heartbeat_interval, udp, ws};

/// A fuzz target: arbitrary bytes in, nothing out, no panic.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("gateway_payloads", gateway_payloads),
    ("voice_payloads", voice_payloads),
    ("ip_discovery", ip_discovery),
    ("transport_open", transport_open),
    ("gateway_urls", gateway_urls),
    ("audio_decode", audio_decode),
    ("opus_decode", opus_decode),
    ("mixer", mixer),
    ("dave_ops", dave_ops),
    ("board_json", board_json),
    ("hotkey_strings", hotkey_strings),
];

/// A main gateway dispatch's `d`, through every parser that could see it.
pub fn gateway_payloads(data: &[u8]) {
    let Ok(d) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = main_payloads::parse_ready(&d);
    let _ = main_payloads::parse_guild_create(&d);
    let _ = main_payloads::parse_guild_channel(&d);
    let _ = main_payloads::parse_guild_delete(&d);
    let _ = main_payloads::parse_voice_state(&d);
    let _ = main_payloads::parse_voice_server(&d);
    let every = heartbeat_interval(&d, Duration::from_millis(41_250));
    assert!((Duration::from_secs(1)..=Duration::from_secs(120)).contains(&every));
}

/// A voice gateway message's `d`: Hello, Ready, Session Description, client lists.
pub fn voice_payloads(data: &[u8]) {
    let Ok(d) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = voice_payloads::parse_ready(&d);
    let _ = voice_payloads::parse_session_description(&d);
    let _ = voice_payloads::parse_user_ids(&d);
    let _ = heartbeat_interval(&d, Duration::from_millis(13_750));
}

/// An IP discovery reply; the first four bytes choose the SSRC we asked about.
pub fn ip_discovery(data: &[u8]) {
    let Some((ssrc, reply)) = data.split_first_chunk::<4>() else {
        return;
    };
    let _ = udp::parse_discovery_response(reply, u32::from_be_bytes(*ssrc));
}

/// A packet through every transport mode's `open`; the first byte picks the RTP header length.
pub fn transport_open(data: &[u8]) {
    let Some((&header, packet)) = data.split_first() else {
        return;
    };
    for mode in TransportMode::PREFERENCE {
        let cipher = TransportCipher::new(mode, &[7; 32]).expect("a 32-byte key is valid");
        let _ = cipher.open(packet, usize::from(header));
    }
}

/// Gateway URLs and voice endpoints. Property: plain `ws://` is accepted only for loopback, and
/// a READY resume URL never moves a `wss://` session to plain `ws://`.
pub fn gateway_urls(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let discord = url::Url::parse(ws::DISCORD_GATEWAY).expect("the default gateway parses");
    if let Ok(resume) = ws::check_resume_url(text, &discord) {
        assert_eq!(resume.scheme(), "wss", "resume moved wss:// to {resume}");
    }
    if let Ok(url) = ws::check_gateway_url(text) {
        if url.scheme() == "ws" {
            let host = url.host_str().unwrap_or("");
            assert!(ws::is_loopback_host(host), "plain ws:// to {host} accepted");
        }
        let _ = ws::main_gateway_url(&url);
        if let Ok(voice) = ws::voice_gateway_url(text, &url)
            && voice.starts_with("ws://")
        {
            let parsed = url::Url::parse(&voice).expect("voice_gateway_url checks its result");
            let host = parsed.host_str().unwrap_or("");
            assert!(ws::is_loopback_host(host), "plain ws:// voice to {host}");
        }
    }
}

/// A sound file from anywhere; the first byte picks the format hint.
pub fn audio_decode(data: &[u8]) {
    let Some((&hint, file)) = data.split_first() else {
        return;
    };
    let name = ["x.wav", "x.mp3", "x.ogg", "x.flac", "x.opus", "x"][usize::from(hint) % 6];
    let _ = voxboard_audio::decode::decode_bytes(file, name, &mut |_| {});
}

/// An Opus packet from the network.
pub fn opus_decode(data: &[u8]) {
    let mut decoder = voxboard_audio::opus::OpusDecoder::new().expect("decoder");
    let mut out = Vec::new();
    let _ = decoder.decode(data, &mut out);
}

/// Arbitrary samples (NaN, infinities, odd lengths) and trim/fade values through the mixer and the limiter: no panic,
/// and the limiter never lets a finite sample past full scale.
pub fn mixer(data: &[u8]) {
    let samples: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let gain = samples.first().copied().unwrap_or(1.0);
    // Trim and fades as a hand-edited board may hold them: any values at all.
    let at = |i: usize| f64::from(samples.get(i).copied().unwrap_or(0.0));
    let shape = voxboard_audio::shaping::Shape {
        start: at(1),
        end: data.len().is_multiple_of(3).then(|| at(2)),
        fade_in: at(3),
        fade_out: at(4),
    };
    let mut cursor = Cursor::shaped(Arc::from(samples), gain, data.len() % 2 == 1, &shape);
    let mut limiter = Limiter::default();
    for _ in 0..4 {
        let mut frame = vec![0.0; FRAME_LEN];
        add_frame(&mut frame, &cursor, 1.0);
        limiter.process(&mut frame);
        for s in frame.iter().filter(|s| s.is_finite()) {
            assert!(s.abs() <= 1.0 + 1e-6, "limiter let {s} through");
        }
        if !advance(&mut cursor) {
            break;
        }
    }
}
