//! The DAVE handler against recorded links: what it sends, and what it lets out unencrypted.

use super::*;

/// A link whose sent commands can be read back.
fn recording_link() -> (
    VoiceLink,
    tokio::sync::mpsc::UnboundedReceiver<VoiceCommand>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let link = VoiceLink {
        tx: Some(tx),
        ..Default::default()
    };
    (link, rx)
}

fn json(op: u8, d: Value) -> VoiceEvent {
    VoiceEvent::DaveJson { op, d }
}

#[test]
fn downgrade_to_version_0_and_upgrade_back() {
    let (bot, _listener) = voxboard_sim::ready_pair(1, 2, 9).unwrap();
    let mut dave = Dave::with_session(bot);
    let members = CallMembers(std::iter::once(2).collect());
    let (link, mut sent) = recording_link();
    let frame = b"opus frame";
    assert!(
        dave.protect(frame).unwrap().ends_with(&[0xFA, 0xFA]),
        "DAVE frames at first"
    );

    // Downgrade (a non-DAVE client joined): ready, then plain Opus once it executes.
    dave.on_event(
        &json(
            OP_PREPARE_TRANSITION,
            json!({"transition_id": 5, "protocol_version": 0}),
        ),
        &members,
        1,
        9,
        &link,
    );
    match sent.try_recv() {
        Ok(VoiceCommand::Json(j)) => assert!(
            j.contains("\"op\":23") && j.contains("\"transition_id\":5"),
            "{j}"
        ),
        other => panic!("expected op 23, got {other:?}"),
    }
    assert!(
        dave.protect(frame).unwrap().ends_with(&[0xFA, 0xFA]),
        "still DAVE before op 22"
    );
    dave.on_event(
        &json(OP_EXECUTE_TRANSITION, json!({"transition_id": 5})),
        &members,
        1,
        9,
        &link,
    );
    assert_eq!(
        dave.protect(frame).as_deref(),
        Some(&frame[..]),
        "plain Opus after the downgrade"
    );
    assert_eq!(dave.status().protocol_version, 0);

    // Upgrade (the non-DAVE client left): a new group is built; media stays plain meanwhile.
    dave.on_event(
        &json(OP_PREPARE_EPOCH, json!({"epoch": 1, "protocol_version": 1})),
        &members,
        1,
        9,
        &link,
    );
    match sent.try_recv() {
        Ok(VoiceCommand::Binary(b)) => assert_eq!(b[0], OP_KEY_PACKAGE, "a fresh key package"),
        other => panic!("expected op 26, got {other:?}"),
    }
    assert_eq!(
        dave.protect(frame).as_deref(),
        Some(&frame[..]),
        "plain until the new keys are live"
    );
}

#[test]
fn only_a_prepared_downgrade_sends_plain_opus() {
    // fuzz/corpus/dave_ops/finding-*: op 24 to version 0 and then any op 22 (even for a
    // transition never prepared, or one prepared to version 1) switched media to plain.
    let members = CallMembers([2].into());
    let (link, _sent) = recording_link();
    let frame = b"opus frame";
    for prepared in [None, Some(1)] {
        let (bot, _listener) = voxboard_sim::ready_pair(1, 2, 9).unwrap();
        let mut dave = Dave::with_session(bot);
        if let Some(pv) = prepared {
            let d = json!({"transition_id": 7, "protocol_version": pv});
            dave.on_event(&json(OP_PREPARE_TRANSITION, d), &members, 1, 9, &link);
        }
        let epoch = json!({"epoch": 2, "protocol_version": 0});
        dave.on_event(&json(OP_PREPARE_EPOCH, epoch), &members, 1, 9, &link);
        let execute = json!({"transition_id": 7});
        dave.on_event(&json(OP_EXECUTE_TRANSITION, execute), &members, 1, 9, &link);
        assert_eq!(dave.media_version, 1, "prepared {prepared:?}");
        assert_ne!(
            dave.protect(frame).as_deref(),
            Some(&frame[..]),
            "no plain Opus without an announced downgrade (prepared {prepared:?})"
        );
    }
}

#[test]
fn privacy_code_is_shown_in_groups_of_five() {
    assert_eq!(
        group_in_fives("123456789012345678901234567890"),
        "12345 67890 12345 67890 12345 67890"
    );
}

#[test]
fn silence_passes_and_audio_waits_for_keys() {
    let mut dave = Dave::default();
    assert_eq!(
        dave.protect(b"opus").as_deref(),
        Some(&b"opus"[..]),
        "version 0: plain"
    );
    let link = VoiceLink::default();
    let t0 = Instant::now();
    dave.start(1, 42, 7, &link, t0).unwrap();
    assert_eq!(
        dave.protect(&SILENCE_FRAME).as_deref(),
        Some(&SILENCE_FRAME[..])
    );
    assert_eq!(dave.protect(b"opus"), None, "no keys: never in the clear");
    assert_eq!(dave.dropped_frames, 1);
    let mut members = CallMembers::default();
    assert!(!dave.media_ready(&members, t0), "op 11 may still come");
    assert!(
        dave.media_ready(&members, t0 + ALONE_GRACE),
        "alone: nobody to wait for"
    );
    members.0.insert(9);
    dave.member_joined(t0 + ALONE_GRACE);
    assert!(!dave.media_ready(&members, t0 + ALONE_GRACE));
    assert!(
        dave.media_ready(&members, t0 + ALONE_GRACE + KEY_WAIT),
        "the wait is bounded"
    );
}

#[test]
fn a_dave_call_we_cannot_join_sends_nothing_in_the_clear() {
    let mut dave = Dave::default();
    let t0 = Instant::now();
    let err = dave
        .start(2, 42, 7, &VoiceLink::default(), t0)
        .expect_err("davey speaks DAVE v1 only");
    assert!(err.contains("no audio is sent"), "{err}");
    assert_eq!(
        dave.protect(b"opus"),
        None,
        "never plain Opus in an E2EE call"
    );
    assert_eq!(
        dave.protect(&SILENCE_FRAME).as_deref(),
        Some(&SILENCE_FRAME[..])
    );
    let members = CallMembers([9].into());
    assert!(
        !dave.media_ready(&members, t0),
        "the sound waits as for keys"
    );
    assert!(
        dave.media_ready(&members, t0 + KEY_WAIT),
        "and then is dropped, bounded"
    );
    assert_eq!(dave.protect(b"opus"), None);
    assert_eq!(dave.dropped_frames, 2);
}
