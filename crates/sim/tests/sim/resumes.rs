//! Resumes on both gateways: what is replayed, and which sessions can be resumed at all.

use std::time::Duration;

use crate::sim_client::*;
use serde_json::json;
use voxboard_sim::{SimConfig, SimEvent};

#[tokio::test]
async fn voice_resume_replays_missed_messages_and_keeps_the_key() {
    let sim = sim();
    let mut main = main_identify(&sim.gateway_url(), SimConfig::TEST_TOKEN).await;
    let (sid, token, endpoint) = join_channel(&mut main, GUILD, VOICE).await;
    let mut voice = Voice::connect(&endpoint).await;
    send(&mut voice.ws, json!({"op": 0, "d": {"server_id": "100", "user_id": main.user_id, "session_id": sid, "token": token}})).await;
    let ready = voice.recv_op(2).await;
    let ssrc = ready["d"]["ssrc"].as_u64().expect("ssrc") as u32;
    let port = ready["d"]["port"].as_u64().expect("port") as u16;
    let mut media = Media::new(([127, 0, 0, 1], port).into(), ssrc).await;
    let (ip, uport) = media.discover().await;
    send(&mut voice.ws, json!({"op": 1, "d": {"protocol": "udp", "data": {"address": ip, "port": uport, "mode": AES}}})).await;
    // The Session Description is sent, but the socket drops before we read it.
    assert!(sim.wait_for(STEP, |e| {
        e.iter()
            .any(|e| matches!(e, SimEvent::SessionDescription { .. }))
    }));
    sim.drop_voice(GUILD);
    let acked = voice.last_seq;
    assert_eq!(acked, 1, "only Ready was read");

    let mut voice = Voice::connect(&endpoint).await;
    send(&mut voice.ws, json!({"op": 7, "d": {"server_id": "100", "session_id": sid, "token": token, "seq_ack": acked}})).await;
    voice.recv_op(8).await;
    let resumed = voice.next().await;
    assert!(
        matches!(&resumed, Got::Json(v) if v["op"] == 9),
        "got {resumed:?}"
    );
    let desc = voice.recv_op(4).await;
    assert_eq!(desc["seq"], 2);
    assert!(sim.wait_for(STEP, |e| {
        e.iter()
            .any(|e| matches!(e, SimEvent::VoiceResumed { replayed: 1, .. }))
    }));

    // The replayed key works on the same UDP session.
    media.key = desc["d"]["secret_key"]
        .as_array()
        .expect("key")
        .iter()
        .map(|b| b.as_u64().expect("u8") as u8)
        .collect::<Vec<_>>()
        .try_into()
        .expect("32");
    media.mode = AES.into();
    send(
        &mut voice.ws,
        json!({"op": 5, "d": {"speaking": 1, "delay": 0, "ssrc": ssrc}}),
    )
    .await;
    for f in sine_opus(440.0, 5) {
        media.send(&f).await;
    }
    media.send_silence(5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    assert_eq!(sim.heard(GUILD).audio_frames(), 5);
}

/// docs/protocol.md §1.2 (main gateway, mirrored for voice): a client that closes with 1000 has
/// ended its session, so resuming it is refused; any other code keeps it resumable.
#[tokio::test]
async fn voice_resume_after_the_client_closed_with_1000_is_refused() {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let close_with = |code: u16| CloseFrame {
        code: CloseCode::from(code),
        reason: "".into(),
    };

    let sim = sim();
    let mut main = main_identify(&sim.gateway_url(), SimConfig::TEST_TOKEN).await;
    let (sid, token, endpoint) = join_channel(&mut main, GUILD, VOICE).await;
    let resume = json!({"op": 7, "d": {"server_id": "100", "session_id": sid, "token": token, "seq_ack": 1}});
    let mut voice = Voice::connect(&endpoint).await;
    send(&mut voice.ws, json!({"op": 0, "d": {"server_id": "100", "user_id": main.user_id, "session_id": sid, "token": token}})).await;
    voice.recv_op(2).await;

    // 4000: the session waits for a resume.
    voice.ws.close(Some(close_with(4000))).await.expect("close");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut voice = Voice::connect(&endpoint).await;
    send(&mut voice.ws, resume.clone()).await;
    voice.recv_op(9).await;

    // 1000: the session is over.
    voice.ws.close(Some(close_with(1000))).await.expect("close");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut voice = Voice::connect(&endpoint).await;
    send(&mut voice.ws, resume).await;
    assert_eq!(expect_close(&mut voice.ws).await, Some(4006));
    // The client ended it itself: resuming it is the client's mistake.
    assert!(
        wait_rule(&sim, "voice.resume_invalid"),
        "{:?}",
        sim.violations()
    );
}

/// A session the server ended (here a 4006 close; in the field a blip that outlasted it) is
/// refused with 4006 like an unknown one, but the client could not have known: no violation.
#[tokio::test]
async fn voice_resume_of_a_session_the_server_ended_is_refused_without_blame() {
    let sim = sim();
    let mut main = main_identify(&sim.gateway_url(), SimConfig::TEST_TOKEN).await;
    let (sid, token, endpoint) = join_channel(&mut main, GUILD, VOICE).await;
    let mut voice = Voice::connect(&endpoint).await;
    send(&mut voice.ws, json!({"op": 0, "d": {"server_id": "100", "user_id": main.user_id, "session_id": sid, "token": token}})).await;
    voice.recv_op(2).await;
    sim.close_voice(GUILD, 4006);
    assert_eq!(expect_close(&mut voice.ws).await, Some(4006));
    let mut voice = Voice::connect(&endpoint).await;
    send(&mut voice.ws, json!({"op": 7, "d": {"server_id": "100", "session_id": sid, "token": token, "seq_ack": 1}})).await;
    assert_eq!(expect_close(&mut voice.ws).await, Some(4006));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn voice_resume_of_an_unknown_session_is_closed_4006() {
    let sim = sim();
    let mut main = main_identify(&sim.gateway_url(), SimConfig::TEST_TOKEN).await;
    let (sid, token, endpoint) = join_channel(&mut main, GUILD, VOICE).await;
    let mut voice = Voice::connect(&endpoint).await;
    send(&mut voice.ws, json!({"op": 7, "d": {"server_id": "100", "session_id": sid, "token": token, "seq_ack": -1}})).await;
    assert_eq!(expect_close(&mut voice.ws).await, Some(4006));
    assert!(
        wait_rule(&sim, "voice.resume_invalid"),
        "{:?}",
        sim.violations()
    );
}

#[tokio::test]
async fn main_resume_replays_missed_dispatches_then_resumed() {
    let sim = sim();
    let mut ws = connect(&format!("{}/?v=10&encoding=json", sim.gateway_url())).await;
    recv_op(&mut ws, 10).await;
    send(&mut ws, identify_payload(SimConfig::TEST_TOKEN)).await;
    let ready = recv_dispatch(&mut ws, "READY").await;
    assert_eq!(ready["s"], 1);
    let sid = ready["d"]["session_id"].as_str().expect("sid").to_string();
    let resume_url = ready["d"]["resume_gateway_url"]
        .as_str()
        .expect("url")
        .to_string();
    sim.drop_main();
    assert_eq!(
        expect_close(&mut ws).await,
        None,
        "dropped without a close frame"
    );

    let mut ws = connect(&format!("{resume_url}/?v=10&encoding=json")).await;
    recv_op(&mut ws, 10).await;
    send(
        &mut ws,
        json!({"op": 6, "d": {"token": SimConfig::TEST_TOKEN, "session_id": sid, "seq": 1}}),
    )
    .await;
    let gc = recv_op(&mut ws, 0).await;
    assert_eq!(
        (gc["t"].as_str(), gc["s"].as_u64()),
        (Some("GUILD_CREATE"), Some(2))
    );
    let resumed = recv_op(&mut ws, 0).await;
    assert_eq!(
        (resumed["t"].as_str(), resumed["s"].as_u64()),
        (Some("RESUMED"), Some(3))
    );

    let mut ws = connect(&format!("{resume_url}/?v=10&encoding=json")).await;
    send(
        &mut ws,
        json!({"op": 6, "d": {"token": SimConfig::TEST_TOKEN, "session_id": "nope", "seq": 1}}),
    )
    .await;
    let inv = recv_op(&mut ws, 9).await;
    assert_eq!(inv["d"], false);
}
