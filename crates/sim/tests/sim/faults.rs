//! Fault injection: what the simulator does to the client on demand (kick, region move, voice
//! close codes, main-session invalidation, packet loss), checked with the raw test client.

use std::time::Duration;

use crate::sim_client::*;
use serde_json::json;
use voxboard_sim::SimConfig;

#[tokio::test]
async fn packets_the_simulator_drops_are_not_held_against_the_client() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    sim.set_udp_drop_every(GUILD, 3);
    play_tone(&mut s, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    // 25 packets sent, every third dropped.
    assert_eq!(sim.heard(GUILD).frames.len(), 25 - 8);
}

#[tokio::test]
async fn kick_closes_voice_4014_then_reports_channel_null() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    sim.kick(GUILD);
    assert_eq!(expect_close(&mut s.voice.ws).await, Some(4014));
    let vsu = recv_dispatch(&mut s.main.ws, "VOICE_STATE_UPDATE").await;
    assert!(vsu["d"]["channel_id"].is_null());
}

#[tokio::test]
async fn region_move_sends_the_other_endpoint_and_a_new_token() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    sim.move_voice_server(GUILD);
    let vsu = recv_dispatch(&mut s.main.ws, "VOICE_SERVER_UPDATE").await;
    let endpoint = vsu["d"]["endpoint"].as_str().expect("endpoint").to_string();
    let token = vsu["d"]["token"].as_str().expect("token").to_string();
    assert_ne!(endpoint, s.endpoint);
    assert_ne!(token, s.token);
    // The old token is refused on the new server; the new one is accepted.
    let mut v = Voice::connect(&endpoint).await;
    send(&mut v.ws, json!({"op": 0, "d": {"server_id": "100", "user_id": s.main.user_id, "session_id": s.voice_session_id, "token": s.token}})).await;
    assert_eq!(expect_close(&mut v.ws).await, Some(4004));
    let mut v = Voice::connect(&endpoint).await;
    send(&mut v.ws, json!({"op": 0, "d": {"server_id": "100", "user_id": s.main.user_id, "session_id": s.voice_session_id, "token": token}})).await;
    let ready = v.recv_op(2).await;
    assert_ne!(
        ready["d"]["port"].as_u64(),
        Some(u64::from(s.media.sock.peer_addr().expect("peer").port()))
    );
    // The old session is over: its socket gets closed.
    let code = expect_close(&mut s.voice.ws).await;
    assert!(
        matches!(code, Some(4022)),
        "old socket closed with {code:?}"
    );
}

#[tokio::test]
async fn voice_close_4015_stays_resumable_but_4014_does_not() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    sim.close_voice(GUILD, 4015);
    assert_eq!(expect_close(&mut s.voice.ws).await, Some(4015));
    let resume = json!({"op": 7, "d": {"server_id": "100", "session_id": s.voice_session_id, "token": s.token, "seq_ack": s.voice.last_seq}});
    let mut v = Voice::connect(&s.endpoint).await;
    send(&mut v.ws, resume.clone()).await;
    v.recv_op(9).await;
    // A second drop, then a resume that saw nothing (-1): everything is replayed.
    sim.drop_voice(GUILD);
    assert_eq!(expect_close(&mut v.ws).await, None);
    let mut v = Voice::connect(&s.endpoint).await;
    let mut from_start = resume.clone();
    from_start["d"]["seq_ack"] = json!(-1);
    send(&mut v.ws, from_start).await;
    v.recv_op(9).await;
    assert_eq!(v.recv_op(2).await["seq"], 1, "Ready replayed");
    assert_eq!(v.recv_op(4).await["seq"], 2, "Session Description replayed");

    sim.close_voice(GUILD, 4014);
    assert_eq!(expect_close(&mut v.ws).await, Some(4014));
    let mut v = Voice::connect(&s.endpoint).await;
    send(&mut v.ws, resume).await;
    assert_eq!(expect_close(&mut v.ws).await, Some(4006));
}

#[tokio::test]
async fn invalidated_main_session_ends_voice_with_4014() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    sim.main_invalidate(false);
    assert_eq!(recv_op(&mut s.main.ws, 9).await["d"], false);
    assert_eq!(expect_close(&mut s.voice.ws).await, Some(4014));
}

#[tokio::test]
async fn delayed_packets_arrive_late_and_the_speaking_race_is_not_a_violation() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    let delay = Duration::from_millis(250);
    sim.set_udp_delay(GUILD, delay);
    let sent = std::time::Instant::now();
    // speaking 0 reaches the gateway long before the delayed silence frames are processed.
    play_tone(&mut s, 10).await;
    assert!(
        wait_heard(&sim, 15),
        "heard {}",
        sim.heard(GUILD).frames.len()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    let first = &sim.heard(GUILD).frames[0];
    assert!(
        first.at.duration_since(sent) >= delay,
        "heard after {:?}",
        first.at.duration_since(sent)
    );
}

#[tokio::test]
async fn reallocation_sends_a_null_endpoint_then_a_real_one() {
    let sim = sim();
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    sim.reallocate_voice_server(GUILD, Duration::from_millis(200));
    assert_eq!(
        expect_close(&mut s.voice.ws).await,
        None,
        "dropped, no close frame"
    );
    let first = recv_dispatch(&mut s.main.ws, "VOICE_SERVER_UPDATE").await;
    assert!(first["d"]["endpoint"].is_null());
    let second = recv_dispatch(&mut s.main.ws, "VOICE_SERVER_UPDATE").await;
    let endpoint = second["d"]["endpoint"]
        .as_str()
        .expect("endpoint")
        .to_string();
    assert_eq!(endpoint, s.endpoint);
    // The lost session cannot be resumed; the new token identifies.
    let mut v = Voice::connect(&endpoint).await;
    send(&mut v.ws, json!({"op": 7, "d": {"server_id": "100", "session_id": s.voice_session_id, "token": s.token, "seq_ack": s.voice.last_seq}})).await;
    assert_eq!(expect_close(&mut v.ws).await, Some(4006));
    let mut v = Voice::connect(&endpoint).await;
    send(&mut v.ws, json!({"op": 0, "d": {"server_id": "100", "user_id": s.main.user_id, "session_id": s.voice_session_id, "token": second["d"]["token"]}})).await;
    v.recv_op(2).await;
}
