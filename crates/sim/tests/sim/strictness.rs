//! The simulator is strict: the happy path is clean and heard as a 440 Hz tone, and every breach
//! a real Discord would refuse is refused or recorded. Driven by a raw client written from the
//! protocol description in docs/protocol.md (sim_client.rs), not by Voxboard's own Discord code.

use std::time::Duration;

use crate::sim_client::*;
use serde_json::json;
use voxboard_sim::{DaveMode, SimConfig, SimEvent, Simulator};

async fn happy_path(mode: &str) {
    let sim = Simulator::start(with_modes(&[mode])).expect("start");
    let mut s = join(
        &sim.gateway_url(),
        SimConfig::TEST_TOKEN,
        GUILD,
        VOICE,
        mode,
    )
    .await;
    play_tone(&mut s, 50).await;
    // Let the silence watcher see the stop (>= 100 ms without packets).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    let heard = sim.heard(GUILD);
    assert_eq!(heard.audio_frames(), 50);
    assert_eq!(heard.frames.len(), 55);
    assert!(heard.frames[50..].iter().all(|f| f.silence));
    let mono = heard.pcm_mono();
    assert_eq!(mono.len(), 50 * 960);
    let hz = zero_crossing_hz(&mono[4800..]);
    assert!((430.0..450.0).contains(&hz), "heard {hz} Hz");
    let ev = sim.events();
    assert!(
        ev.iter()
            .any(|e| matches!(e, SimEvent::MainIdentify { intents: 129 }))
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, SimEvent::SessionDescription { mode: m, .. } if m == mode))
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, SimEvent::Speaking { speaking: 1, .. }))
    );
}

#[tokio::test]
async fn happy_path_aes_gcm_is_clean_and_heard_as_440_hz() {
    happy_path(AES).await;
}

#[tokio::test]
async fn happy_path_xchacha_is_clean_and_heard_as_440_hz() {
    happy_path(XCHACHA).await;
}

#[tokio::test]
async fn wrong_key_is_flagged_rtp_decrypt() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    s.speaking(1).await;
    s.media.key[0] ^= 0xFF;
    s.media.send(&sine_opus(440.0, 1)[0]).await;
    assert!(wait_rule(&sim, "rtp.decrypt"), "{:?}", sim.violations());
    assert!(
        rules(&sim).contains(&"rtp.decrypt".to_string()),
        "{:?}",
        sim.violations()
    );
    assert_eq!(
        sim.heard(GUILD).frames.len(),
        0,
        "an undecryptable packet is not heard"
    );
}

#[tokio::test]
async fn reused_nonce_is_flagged() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    s.speaking(1).await;
    let frames = sine_opus(440.0, 2);
    let a = s.media.packet_with_nonce(&frames[0], 7);
    let b = s.media.packet_with_nonce(&frames[1], 7);
    s.media.send_raw(&a).await;
    s.media.send_raw(&b).await;
    assert!(wait_rule(&sim, "rtp.nonce_reuse"), "{:?}", sim.violations());
    assert_eq!(rules(&sim), vec!["rtp.nonce_reuse".to_string()]);
}

#[tokio::test]
async fn audio_before_speaking_is_flagged() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    s.media.send(&sine_opus(440.0, 1)[0]).await;
    assert!(
        wait_rule(&sim, "rtp.before_speaking"),
        "{:?}",
        sim.violations()
    );
    assert!(
        rules(&sim).contains(&"rtp.before_speaking".to_string()),
        "{:?}",
        sim.violations()
    );
}

#[tokio::test]
async fn bad_voice_identify_token_is_closed_4004() {
    let sim = sim();
    let mut main = main_identify(&sim.gateway_url(), SimConfig::TEST_TOKEN).await;
    let (sid, _token, endpoint) = join_channel(&mut main, GUILD, VOICE).await;
    let mut voice = Voice::connect(&endpoint).await;
    send(
        &mut voice.ws,
        json!({"op": 0, "d": {"server_id": GUILD.to_string(), "user_id": main.user_id,
        "session_id": sid, "token": "not-the-token", "max_dave_protocol_version": 0}}),
    )
    .await;
    assert_eq!(expect_close(&mut voice.ws).await, Some(4004));
    assert!(rules(&sim).contains(&"voice.auth".to_string()));
}

#[tokio::test]
async fn bad_main_token_is_closed_4004() {
    let sim = sim();
    let mut ws = connect(&format!("{}/?v=10&encoding=json", sim.gateway_url())).await;
    recv_op(&mut ws, 10).await;
    send(&mut ws, identify_payload("wrong.token")).await;
    assert_eq!(expect_close(&mut ws).await, Some(4004));
    assert!(sim.wait_for(STEP, |e| {
        e.iter()
            .any(|e| matches!(e, SimEvent::MainClosed { code: Some(4004) }))
    }));
}

#[tokio::test]
async fn main_gateway_refuses_bad_versions_early_payloads_and_double_identify() {
    let sim = sim();
    let mut ws = connect(&format!("{}/?v=9&encoding=json", sim.gateway_url())).await;
    assert_eq!(expect_close(&mut ws).await, Some(4012));

    let mut ws = connect(&format!("{}/?v=10&encoding=json", sim.gateway_url())).await;
    send(&mut ws, json!({"op": 4, "d": {"guild_id": "100", "channel_id": null, "self_mute": false, "self_deaf": false}})).await;
    assert_eq!(expect_close(&mut ws).await, Some(4003));

    let mut ws = connect(&format!("{}/?v=10&encoding=json", sim.gateway_url())).await;
    let mut p = identify_payload(SimConfig::TEST_TOKEN);
    p["d"]["intents"] = json!(1);
    send(&mut ws, p).await;
    assert_eq!(expect_close(&mut ws).await, Some(4013));

    let mut m = main_identify(&sim.gateway_url(), SimConfig::TEST_TOKEN).await;
    send(&mut m.ws, identify_payload(SimConfig::TEST_TOKEN)).await;
    assert_eq!(expect_close(&mut m.ws).await, Some(4005));

    // max_concurrency 1: a second session within 5 s of the first is answered with op 9.
    let mut ws = connect(&format!("{}/?v=10&encoding=json", sim.gateway_url())).await;
    recv_op(&mut ws, 10).await;
    send(&mut ws, identify_payload(SimConfig::TEST_TOKEN)).await;
    assert_eq!(recv_op(&mut ws, 9).await["d"], false);
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut m = main_identify(&sim.gateway_url(), SimConfig::TEST_TOKEN).await;
    send(&mut m.ws, json!({"op": 1, "d": m.last_s})).await;
    assert_eq!(recv_op(&mut m.ws, 11).await["op"], 11);
    futures_util::SinkExt::send(
        &mut m.ws,
        tokio_tungstenite::tungstenite::Message::text("x".repeat(5000)),
    )
    .await
    .expect("send");
    assert_eq!(expect_close(&mut m.ws).await, Some(4002));
}

#[tokio::test]
async fn op4_for_a_text_channel_is_ignored_with_a_violation() {
    let sim = sim();
    let mut m = main_identify(&sim.gateway_url(), SimConfig::TEST_TOKEN).await;
    send(&mut m.ws, json!({"op": 4, "d": {"guild_id": "100", "channel_id": "1001", "self_mute": false, "self_deaf": false}})).await;
    send(&mut m.ws, json!({"op": 1, "d": m.last_s})).await;
    // Nothing comes back for the refused op 4: the next message is the heartbeat ACK.
    let next = recv(&mut m.ws).await;
    assert!(
        matches!(&next, Got::Json(v) if v["op"] == 11),
        "got {next:?}"
    );
    assert_eq!(rules(&sim), vec!["main.op4_not_voice".to_string()]);
}

#[tokio::test]
async fn select_protocol_with_unoffered_mode_is_closed_4016() {
    let sim = Simulator::start(with_modes(&[XCHACHA])).expect("start");
    let mut main = main_identify(&sim.gateway_url(), SimConfig::TEST_TOKEN).await;
    let (sid, token, endpoint) = join_channel(&mut main, GUILD, VOICE).await;
    let mut voice = Voice::connect(&endpoint).await;
    send(&mut voice.ws, json!({"op": 0, "d": {"server_id": "100", "user_id": main.user_id, "session_id": sid, "token": token}})).await;
    voice.recv_op(2).await;
    send(&mut voice.ws, json!({"op": 1, "d": {"protocol": "udp", "data": {"address": "127.0.0.1", "port": 5, "mode": AES}}})).await;
    assert_eq!(expect_close(&mut voice.ws).await, Some(4016));
}

#[tokio::test]
async fn missing_silence_tail_and_seq_gap_are_flagged() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    s.speaking(1).await;
    let frames = sine_opus(440.0, 6);
    for f in &frames[..3] {
        s.media.send(f).await;
    }
    s.media.seq = s.media.seq.wrapping_add(1); // skip one sequence number
    s.media.ts = s.media.ts.wrapping_add(960);
    for f in &frames[3..] {
        s.media.send(f).await;
    }
    // Stop without the five silence frames.
    assert!(
        wait_rule(&sim, "rtp.silence_tail"),
        "{:?}",
        sim.violations()
    );
    assert_eq!(
        rules(&sim),
        vec!["rtp.seq".to_string(), "rtp.silence_tail".to_string()]
    );
}

#[tokio::test]
async fn speaking_with_a_foreign_ssrc_and_string_heartbeat_nonce_are_flagged() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    send(
        &mut s.voice.ws,
        json!({"op": 5, "d": {"speaking": 1, "delay": 0, "ssrc": s.media.ssrc.wrapping_add(1)}}),
    )
    .await;
    send(
        &mut s.voice.ws,
        json!({"op": 3, "d": {"t": "123", "seq_ack": s.voice.last_seq}}),
    )
    .await;
    send(
        &mut s.voice.ws,
        json!({"op": 3, "d": {"t": 123, "seq_ack": s.voice.last_seq}}),
    )
    .await;
    let ack = s.voice.recv_op(6).await;
    assert_eq!(
        ack["d"]["t"], 123,
        "only the valid heartbeat is acknowledged"
    );
    assert_eq!(
        rules(&sim),
        vec![
            "voice.speaking_ssrc".to_string(),
            "voice.heartbeat_nonce".to_string()
        ]
    );
}

#[tokio::test]
async fn main_rate_limit_closes_4008() {
    let sim = sim();
    let mut m = main_identify(&sim.gateway_url(), SimConfig::TEST_TOKEN).await;
    // Identify was payload 1; 120 more heartbeats make 121 in one minute.
    for _ in 0..120 {
        send(&mut m.ws, json!({"op": 1, "d": m.last_s})).await;
    }
    assert_eq!(expect_close(&mut m.ws).await, Some(4008));
    assert!(rules(&sim).contains(&"main.rate_limit".to_string()));
}

#[tokio::test]
async fn speaking_zero_without_silence_frames_is_flagged() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    s.speaking(1).await;
    for f in sine_opus(440.0, 10) {
        s.media.send(&f).await;
    }
    s.speaking(0).await;
    assert!(
        wait_rule(&sim, "rtp.silence_tail"),
        "{:?}",
        sim.violations()
    );
    let v = sim.violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].rule, "rtp.silence_tail");
    assert_eq!(v[0].guild_id, Some(GUILD));
}

#[tokio::test]
async fn malformed_op4_is_closed_4001_even_with_a_long_payload() {
    let sim = sim();
    let mut m = main_identify(&sim.gateway_url(), SimConfig::TEST_TOKEN).await;
    let pad = "x".repeat(300);
    send(&mut m.ws, json!({"op": 4, "d": {"guild_id": "100", "channel_id": "1002", "self_mute": "no", "self_deaf": false, "pad": pad}})).await;
    assert_eq!(expect_close(&mut m.ws).await, Some(4001));
    assert_eq!(rules(&sim), vec!["main.op4_payload".to_string()]);
}

#[tokio::test]
async fn audio_after_speaking_zero_is_flagged_but_registration_with_zero_is_fine() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    // discord.py registers the SSRC with speaking 0, then sets 1 before playing: clean.
    s.speaking(0).await;
    play_tone(&mut s, 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    // Now speaking is 0 and audio comes anyway.
    for f in sine_opus(440.0, 3) {
        s.media.send(&f).await;
    }
    s.media.send_silence(5).await;
    assert!(
        wait_heard(&sim, 18),
        "heard {}",
        sim.heard(GUILD).frames.len()
    );
    assert_eq!(
        rules(&sim),
        vec!["rtp.audio_while_not_speaking".to_string(); 3]
    );
}

#[tokio::test]
async fn a_voice_socket_without_heartbeats_times_out_4009() {
    let cfg = SimConfig {
        voice_heartbeat_interval: Duration::from_millis(100),
        dave: DaveMode::Off,
        ..SimConfig::default()
    };
    let sim = Simulator::start(cfg).expect("start");
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    let hello_interval = 100;
    // Heartbeating keeps it open past the deadline (2 x 100 ms + 500 ms)...
    for t in 0..10u64 {
        send(
            &mut s.voice.ws,
            json!({"op": 3, "d": {"t": t, "seq_ack": s.voice.last_seq}}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(hello_interval)).await;
    }
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    // ...and stopping gets the session timed out.
    assert_eq!(expect_close(&mut s.voice.ws).await, Some(4009));
    assert_eq!(rules(&sim), vec!["voice.heartbeat_missed".to_string()]);
}

#[tokio::test]
async fn garbage_from_the_network_is_refused_without_breaking_the_simulator() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    // UDP: empty, short, bad discovery, not RTP, RTP with CC/X lying about its length, wrong SSRC.
    let mut bad_discovery = vec![0u8; 74];
    bad_discovery[1] = 1;
    bad_discovery[3] = 70;
    bad_discovery[4..8].copy_from_slice(&s.media.ssrc.wrapping_add(1).to_be_bytes());
    let mut lying = vec![0x9F, 0x78, 0, 1, 0, 0, 0, 1];
    lying.extend_from_slice(&s.media.ssrc.to_be_bytes());
    let mut foreign = lying.clone();
    foreign[0] = 0x80;
    foreign[8..12].copy_from_slice(&s.media.ssrc.wrapping_add(1).to_be_bytes());
    foreign.extend_from_slice(&[0; 40]);
    for d in [
        vec![],
        vec![1, 2, 3],
        bad_discovery,
        vec![0x40; 30],
        lying,
        foreign,
        vec![0xFF; 1400],
    ] {
        s.media.sock.send(&d).await.expect("send");
    }
    // Voice gateway: JSON of the wrong shapes on a live session, none of which may crash it.
    for bad in [
        json!({"op": 5, "d": []}),
        json!({"op": 5, "d": {"speaking": "yes", "ssrc": s.media.ssrc}}),
        json!({"op": 3, "d": null}),
        json!({"op": 3, "d": {"t": -5}}),
        json!({"op": 23, "d": {"transition_id": 1}}),
    ] {
        send(&mut s.voice.ws, bad).await;
    }
    // Still fully working afterwards: heartbeat ACKed, audio heard.
    send(
        &mut s.voice.ws,
        json!({"op": 3, "d": {"t": 1, "seq_ack": s.voice.last_seq}}),
    )
    .await;
    assert_eq!(s.voice.recv_op(6).await["d"]["t"], 1);
    play_tone(&mut s, 5).await;
    assert!(
        wait_heard(&sim, 10),
        "heard {}",
        sim.heard(GUILD).frames.len()
    );
    // RTCP, and RTP with another payload type from the real SSRC.
    let mut rtcp = vec![0x80, 200, 0, 6];
    rtcp.extend_from_slice(&[0; 24]);
    s.media.sock.send(&rtcp).await.expect("send");
    let mut pt96 = s.media.packet(&[0xF8, 0xFF, 0xFE]);
    pt96[1] = 96;
    s.media.sock.send(&pt96).await.expect("send");
    assert!(
        wait_rule(&sim, "rtp.payload_type"),
        "{:?}",
        sim.violations()
    );
    let r = rules(&sim);
    for expected in [
        "rtp.rtcp",
        "udp.discovery_ssrc",
        "rtp.parse",
        "rtp.unknown_ssrc",
        "voice.speaking_payload",
        "voice.heartbeat_v8",
        "voice.heartbeat_nonce",
    ] {
        assert!(
            r.iter().any(|x| x == expected),
            "{expected} missing from {r:?}"
        );
    }
    // Main gateway garbage closes with 4002 and nothing else.
    let mut ws = connect(&format!("{}/?v=10&encoding=json", sim.gateway_url())).await;
    futures_util::SinkExt::send(
        &mut ws,
        tokio_tungstenite::tungstenite::Message::text("{not json"),
    )
    .await
    .expect("send");
    assert_eq!(expect_close(&mut ws).await, Some(4002));
}
