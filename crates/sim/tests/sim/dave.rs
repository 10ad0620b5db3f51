//! DAVE on the simulator, proven with a raw DAVE client (davey over the raw test client, not
//! Voxboard's engine) against the simulated gateway and its virtual listeners
//! (docs/protocol.md §8.5).

use std::time::Duration;

use crate::sim_client::*;
use crate::sim_dave::*;
use serde_json::json;
use voxboard_sim::{DaveMode, SimConfig, SimEvent, Simulator};

const ZERO: Option<Duration> = Some(Duration::ZERO);

fn accepted_commits(sim: &Simulator) -> Vec<u64> {
    sim.events()
        .into_iter()
        .filter_map(|e| match e {
            SimEvent::Commit {
                user_id,
                accepted: true,
                ..
            } => Some(user_id),
            _ => None,
        })
        .collect()
}

fn bin_ops(c: &DaveClient, op: u8) -> Vec<Vec<u8>> {
    c.log
        .iter()
        .filter_map(|m| match m {
            In::Binary(_, o, p) if *o == op => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// Joins and waits for the first op 22: the client and the listener(s) share a group.
async fn formed(sim: &Simulator) -> DaveClient {
    let mut c = dave_join(sim).await;
    c.until_state("encrypting", |c| c.dave.can_encrypt()).await;
    c
}

#[tokio::test]
async fn a_lone_dave_client_sends_its_key_package_and_stays_pending() {
    let sim = dave_sim(0, None);
    let mut c = dave_join(&sim).await;
    c.pump_for(Duration::from_millis(600)).await;
    assert_eq!(c.ops(), vec![25], "only the external sender arrives");
    assert_eq!(
        bin_ops(&c, 25)[0].len(),
        74,
        "ExternalSender with a 4-byte identity"
    );
    assert!(!c.dave.can_encrypt());
    assert_eq!(sim.dave_epoch(GUILD), Some(0));
    assert!(sim.events().contains(&SimEvent::KeyPackage {
        guild_id: GUILD,
        user_id: c.user
    }));
    assert_no_violations(&sim);
}

#[tokio::test]
async fn the_listener_wins_the_race_the_client_is_welcomed_and_its_tone_is_heard() {
    let sim = dave_sim(1, ZERO);
    let mut c = formed(&sim).await;
    let listener = sim.listeners(GUILD)[0];
    assert_eq!(accepted_commits(&sim), vec![listener]);
    assert_eq!(bin_ops(&c, 30).len(), 1, "welcomed: ops {:?}", c.ops());
    assert!(bin_ops(&c, 29).is_empty());
    assert!(
        c.known.contains(&listener),
        "op 11 named the listener first"
    );
    assert_eq!(sim.dave_epoch(GUILD), Some(1));
    assert_eq!(
        sim.privacy_code(GUILD).as_deref(),
        c.dave.voice_privacy_code(),
        "same group, same privacy code"
    );
    c.play(&sine_opus(440.0, 50)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let heard = sim.heard_by(GUILD, listener);
    assert_eq!(
        heard.audio_frames(),
        50,
        "the listener decrypted every frame"
    );
    let hz = zero_crossing_hz(&heard.pcm_mono()[4800..]);
    assert!((430.0..450.0).contains(&hz), "heard {hz} Hz");
    assert_eq!(
        sim.heard(GUILD).audio_frames(),
        50,
        "heard() is the first listener's"
    );
    assert_no_violations(&sim);
}

#[tokio::test]
async fn a_listener_that_never_commits_lets_the_clients_commit_win() {
    let sim = dave_sim(1, None);
    let mut c = formed(&sim).await;
    let listener = sim.listeners(GUILD)[0];
    assert_eq!(accepted_commits(&sim), vec![c.user]);
    assert_eq!(
        bin_ops(&c, 29).len(),
        1,
        "announce commit: ops {:?}",
        c.ops()
    );
    assert!(bin_ops(&c, 30).is_empty());
    assert!(sim.events().iter().any(|e| matches!(e,
        SimEvent::WelcomeSent { user_id, .. } if *user_id == listener)));
    c.play(&sine_opus(440.0, 20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.heard_by(GUILD, listener).audio_frames(), 20);
    assert_no_violations(&sim);
}

#[tokio::test]
async fn plain_opus_after_the_transition_is_flagged_and_not_heard() {
    let sim = dave_sim(1, ZERO);
    let mut c = formed(&sim).await;
    // Plain frames made before op 22 arrived may still be in flight for 250 ms; later ones not.
    tokio::time::sleep(Duration::from_millis(300)).await;
    play_tone(&mut c.s, 5).await;
    assert!(wait_rule(&sim, "dave.plaintext"), "{:?}", sim.violations());
    assert_eq!(sim.heard(GUILD).audio_frames(), 0);
}

#[tokio::test]
async fn an_undecryptable_dave_frame_is_a_violation_only_after_the_grace() {
    let sim = dave_sim(1, ZERO);
    let mut c = formed(&sim).await;
    // A frame shaped like DAVE (marker, sane supplemental size) that no key decrypts.
    let mut fake = vec![0x11; 40];
    fake.extend_from_slice(&[0x01, 0x0C, 0xFA, 0xFA]);
    c.s.speaking(1).await;
    c.s.media.send(&fake).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Within 10 s of the transition old keys may be in use: no violation yet.
    assert!(!rules(&sim).contains(&"dave.decrypt".to_string()));
    assert_eq!(sim.heard(GUILD).audio_frames(), 0);
    // After the grace it is a real failure.
    tokio::time::sleep(Duration::from_millis(10_200)).await;
    c.s.media.send(&fake).await;
    assert!(wait_rule(&sim, "dave.decrypt"), "{:?}", sim.violations());
    // A real DAVE frame still decrypts.
    c.play(&sine_opus(440.0, 5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.heard(GUILD).audio_frames(), 5);
}

#[tokio::test]
async fn a_non_dave_identify_is_closed_4017_when_dave_is_required() {
    let sim = dave_sim(1, ZERO);
    let mut main = main_identify(&sim.gateway_url(), SimConfig::TEST_TOKEN).await;
    let (sid, token, endpoint) = join_channel(&mut main, GUILD, VOICE).await;
    let mut v = Voice::connect(&endpoint).await;
    send(
        &mut v.ws,
        json!({"op": 0, "d": {"server_id": GUILD.to_string(), "user_id": main.user_id,
        "session_id": sid, "token": token}}),
    )
    .await;
    assert_eq!(expect_close(&mut v.ws).await, Some(4017));
    assert_eq!(rules(&sim), vec!["voice.dave_required".to_string()]);
}

#[tokio::test]
async fn without_dave_or_with_optional_dave_a_non_dave_client_gets_version_0() {
    for mode in [DaveMode::Off, DaveMode::Optional] {
        let sim = Simulator::start(SimConfig {
            dave: mode,
            ..SimConfig::default()
        })
        .expect("start");
        let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
        assert_eq!(s.description["dave_protocol_version"], 0, "{mode:?}");
        play_tone(&mut s, 10).await;
        assert!(wait_heard(&sim, 15), "{mode:?}");
        assert_no_violations(&sim);
    }
}

#[tokio::test]
async fn a_listener_leaving_is_removed_in_a_new_epoch() {
    let sim = dave_sim(2, ZERO);
    let mut c = formed(&sim).await;
    let ls = sim.listeners(GUILD);
    assert_eq!(ls.len(), 2);
    c.pump_for(Duration::from_millis(300)).await;
    let epoch = sim.dave_epoch(GUILD).expect("dave call");
    let mut ids = c.dave.get_user_ids().expect("group");
    ids.sort();
    assert_eq!(
        ids,
        [c.user, ls[0], ls[1]]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    let before = c.log.len();
    sim.remove_listener(GUILD, ls[1]);
    c.until_op(22).await;
    let after: Vec<u64> = c.log[before..].iter().filter_map(In::op).collect();
    assert!(
        after.starts_with(&[13, 27]),
        "op 13 then the Remove: {after:?}"
    );
    assert!(after.contains(&29), "{after:?}");
    assert_eq!(sim.dave_epoch(GUILD), Some(epoch + 1));
    assert_eq!(c.dave.epoch().map(|e| e.as_u64()), Some(epoch + 1));
    assert_eq!(c.dave.get_user_ids().map(|u| u.len()), Some(2));
    // The remaining listener still hears the client under the new keys.
    c.play(&sine_opus(440.0, 10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.heard_by(GUILD, ls[0]).audio_frames(), 10);
    assert_eq!(
        sim.dave_gaps(GUILD).len(),
        sim.events()
            .iter()
            .filter(|e| matches!(e, SimEvent::ExecuteTransition { .. }))
            .count()
    );
    assert_no_violations(&sim);
}

#[tokio::test]
async fn a_corrupted_welcome_gets_op_31_then_a_fresh_join() {
    let sim = dave_sim(0, ZERO);
    let listener = sim.add_listener(GUILD).expect("listener");
    sim.corrupt_next_welcome(GUILD);
    let mut c = dave_join(&sim).await;
    c.until_state("op 31", |c| c.sent.iter().any(|(op, _)| *op == 31))
        .await;
    let seen_31 = true;
    // Removed, then added again with the fresh key package: encrypting once op 22 comes.
    c.until_state("a working group", |c| c.dave.can_encrypt())
        .await;
    assert!(seen_31, "sent {:?}", c.sent);
    assert!(
        c.sent.iter().filter(|(op, _)| *op == 26).count() >= 2,
        "fresh key package: {:?}",
        c.sent
    );
    assert!(sim.events().iter().any(
        |e| matches!(e, SimEvent::InvalidCommitWelcome { user_id, .. } if *user_id == c.user)
    ));
    c.play(&sine_opus(440.0, 10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.heard_by(GUILD, listener).audio_frames(), 10);
    assert_no_violations(&sim);
}

#[tokio::test]
async fn a_revoked_add_is_withdrawn_and_a_commit_covering_it_is_ignored() {
    let sim = dave_sim(1, None);
    let mut c = formed(&sim).await;
    c.auto_commit = false;
    let epoch = sim.dave_epoch(GUILD);
    let newcomer = sim.add_listener(GUILD).expect("listener");
    c.until(
        "the Add",
        |m| matches!(m, In::Binary(_, 27, p) if p[0] == 0),
    )
    .await;
    let stale = c.held.clone().expect("a commit for the Add");
    assert_eq!(sim.revoke_pending_add(GUILD), Some(newcomer));
    c.until(
        "the revoke",
        |m| matches!(m, In::Binary(_, 27, p) if p[0] == 1),
    )
    .await;
    assert!(c.held.is_none(), "nothing left to commit");
    c.bin(28, &stale).await;
    c.pump_for(Duration::from_millis(300)).await;
    assert_eq!(sim.dave_epoch(GUILD), epoch, "the stale commit did not win");
    assert_eq!(accepted_commits(&sim), vec![c.user]);
    assert_no_violations(&sim);
}

#[tokio::test]
async fn the_last_listener_leaving_resets_the_sole_member() {
    let sim = dave_sim(1, ZERO);
    let mut c = formed(&sim).await;
    let listener = sim.listeners(GUILD)[0];
    let before = c.log.len();
    sim.remove_listener(GUILD, listener);
    c.until("op 21", |m| m.op() == Some(21)).await;
    c.pump_for(Duration::from_millis(200)).await;
    let after: Vec<&In> = c.log[before..].iter().collect();
    assert!(
        matches!(after[1], In::Json(24, d) if d["epoch"] == 1),
        "{after:?}"
    );
    assert!(
        matches!(after[2], In::Json(21, d) if d["transition_id"] == 0),
        "{after:?}"
    );
    assert_eq!(sim.dave_epoch(GUILD), Some(0));
    assert!(!c.dave.can_encrypt());
    assert_eq!(c.sent.iter().filter(|(op, _)| *op == 26).count(), 2);
    assert_no_violations(&sim);
}

#[tokio::test]
async fn a_key_package_for_another_user_is_a_violation() {
    let sim = dave_sim(0, None);
    let mut c = dave_join(&sim).await;
    let mut other =
        davey::DaveSession::new(std::num::NonZeroU16::MIN, 42, VOICE, None).expect("session");
    let kp = other.create_key_package().expect("kp");
    c.bin(26, &kp).await;
    assert!(wait_rule(&sim, "dave.key_package"));
    c.bin(28, &[0, 1, 0, 1, 9, 9]).await;
    assert!(wait_rule(&sim, "dave.commit"));
}

#[tokio::test]
async fn optional_dave_downgrades_for_a_non_dave_client_and_upgrades_when_it_leaves() {
    let sim = Simulator::start(SimConfig {
        dave: DaveMode::Optional,
        dave_listeners: 0,
        listener_commit_delay: ZERO,
        ..SimConfig::default()
    })
    .expect("start");
    let l1 = sim.add_listener(GUILD).expect("listener");
    let l2 = sim.add_listener(GUILD).expect("listener");
    assert!(sim.wait_for(STEP, |e| {
        e.iter()
            .any(|e| matches!(e, SimEvent::ExecuteTransition { .. }))
    }));
    assert_eq!(
        sim.dave_epoch(GUILD),
        Some(1),
        "the two listeners formed a group"
    );
    let mut s = join(&sim.gateway_url(), SimConfig::TEST_TOKEN, GUILD, VOICE, AES).await;
    assert_eq!(s.description["dave_protocol_version"], 0);
    assert!(
        sim.wait_for(STEP, |e| e
            .iter()
            .any(|e| matches!(e, SimEvent::ExecuteTransition { epoch: 0, .. }))),
        "downgrade executed"
    );
    assert_eq!(sim.dave_epoch(GUILD), None, "version 0 now");
    play_tone(&mut s, 10).await;
    assert!(wait_heard(&sim, 15));
    assert_eq!(
        sim.heard_by(GUILD, l2).audio_frames(),
        10,
        "passthrough for version 0"
    );
    sim.close_voice(GUILD, 1000);
    let upgraded = |e: &[SimEvent]| {
        e.iter()
            .filter(|e| matches!(e, SimEvent::PrepareEpoch { epoch: 1, .. }))
            .count()
            == 2
    };
    assert!(sim.wait_for(STEP, upgraded), "op 24 to both listeners");
    let end = std::time::Instant::now() + STEP;
    while sim.dave_epoch(GUILD) != Some(1) && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        sim.dave_epoch(GUILD),
        Some(1),
        "a new group after the upgrade"
    );
    assert!(sim.privacy_code(GUILD).is_some());
    let _ = l1;
    assert_no_violations(&sim);
}

#[tokio::test]
async fn resume_replays_binary_dave_messages_with_their_original_seq() {
    let sim = dave_sim(0, None);
    let mut c = dave_join(&sim).await;
    let In::Binary(seq, _, payload) = c.until_op(25).await else {
        panic!("op 25 is binary");
    };
    sim.drop_voice(GUILD);
    assert_eq!(expect_close(&mut c.s.voice.ws).await, None);
    let mut v = Voice::connect(&c.s.endpoint).await;
    send(
        &mut v.ws,
        json!({"op": 7, "d": {"server_id": GUILD.to_string(),
        "session_id": c.s.voice_session_id, "token": c.s.token, "seq_ack": i64::from(seq) - 1}}),
    )
    .await;
    v.recv_op(9).await;
    match recv(&mut v.ws).await {
        Got::Binary(b) => {
            assert_eq!(u16::from_be_bytes([b[0], b[1]]), seq, "original seq");
            assert_eq!(b[2], 25);
            assert_eq!(b[3..], payload[..]);
        }
        other => panic!("expected the replayed op 25, got {other:?}"),
    }
    assert_no_violations(&sim);
}

#[tokio::test]
async fn audio_keeps_flowing_through_a_transition_and_its_gap_is_measured() {
    let sim = dave_sim(2, ZERO);
    let mut c = formed(&sim).await;
    let ls = sim.listeners(GUILD);
    c.pump_for(Duration::from_millis(300)).await;
    let before = sim.dave_gaps(GUILD).len();
    let epoch = sim.dave_epoch(GUILD);
    c.play_live(&sine_opus(440.0, 100), || sim.remove_listener(GUILD, ls[1]))
        .await;
    c.pump_for(Duration::from_millis(300)).await;
    assert_eq!(
        sim.dave_epoch(GUILD),
        epoch.map(|e| e + 1),
        "ops {:?}",
        c.ops()
    );
    assert_eq!(
        sim.heard_by(GUILD, ls[0]).audio_frames(),
        100,
        "no frame lost to the key change"
    );
    let gaps = sim.dave_gaps(GUILD);
    assert_eq!(gaps.len(), before + 1);
    let gap = gaps[before];
    assert!(
        gap < Duration::from_millis(120),
        "gap {gap:?} around the transition"
    );
    assert!(
        gap >= Duration::from_millis(10),
        "a real interval was measured: {gap:?}"
    );
    assert_no_violations(&sim);
}

/// Discord closes a client without DAVE with 4017 in a DAVE-required call: the simulator does not
/// let one join, so the call never downgrades.
#[tokio::test]
async fn a_client_without_dave_cannot_join_a_required_call() {
    let sim = dave_sim(1, ZERO);
    let _c = formed(&sim).await;
    assert_eq!(sim.add_listener_without_dave(GUILD), None);
    assert_eq!(sim.listeners(GUILD).len(), 1);
    assert!(
        !sim.events().iter().any(|e| matches!(
            e,
            SimEvent::PrepareTransition {
                protocol_version: 0,
                ..
            }
        )),
        "no downgrade"
    );
}
