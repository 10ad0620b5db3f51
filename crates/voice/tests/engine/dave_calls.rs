//! DAVE in busier calls: several guilds at once, members coming and going, and a call that
//! downgrades for a client without DAVE and upgrades again.

use std::time::Duration;

use super::dave::{BOT, events, sim_with};
use crate::common::*;
use voxboard_sim::{DaveMode, SimConfig, SimEvent, Simulator};
use voxboard_voice::engine::Target;

#[test]
fn three_guilds_each_with_their_own_group() {
    let sim = Simulator::start(SimConfig::with_guilds(3)).unwrap();
    let voice = connect(&sim);
    for i in 0..3 {
        voice
            .join_channel(guild(i), voice_channel(i), false, false)
            .unwrap();
    }
    voice
        .play(three_tone_clip().samples, Target::All, 1.0)
        .wait();
    wait_quiet(&voice);
    let codes: Vec<Option<String>> = voice
        .status()
        .borrow()
        .connections
        .iter()
        .map(|c| c.dave.privacy_code.clone())
        .collect();
    voice.close();
    for i in 0..3 {
        let listener = sim.listeners(guild(i))[0];
        let pcm = sim.heard_by(guild(i), listener).pcm_mono();
        assert!(
            pcm.len() >= 48_000 * 29 / 10,
            "guild {i} listener heard {} samples",
            pcm.len()
        );
    }
    assert!(codes.iter().all(Option::is_some));
    assert!(
        codes[0] != codes[1] && codes[1] != codes[2],
        "separate groups, separate codes: {codes:?}"
    );
    assert_no_violations(&sim);
}

/// Member churn: a listener joins or leaves every 2 s for 30 s while a long sound plays. Every
/// listener hears continuous audio while present; each transition's longest gap is reported.
#[test]
fn member_churn_keeps_audio_continuous() {
    let sim = sim_with(|c| c.dave_listeners = 2);
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let long = sine_clip(440.0, 0.3, 32.0);
    let playing = voice.play(long, Target::All, 1.0);
    let mut present = sim.listeners(guild(0));
    let mut ever = present.clone();
    for round in 0..15 {
        std::thread::sleep(Duration::from_secs(2));
        if round % 2 == 0 {
            let id = sim.add_listener(guild(0)).unwrap();
            present.push(id);
            ever.push(id);
        } else {
            let leaving = present.remove(0);
            sim.remove_listener(guild(0), leaving);
        }
    }
    playing.wait();
    wait_quiet(&voice);
    let gaps = sim.dave_gaps(guild(0));
    voice.close();
    let longest = gaps.iter().max().copied().unwrap_or_default();
    println!(
        "DAVE churn: {} transitions, longest gap per transition (ms): {:?}",
        gaps.len(),
        gaps.iter().map(|g| g.as_millis()).collect::<Vec<_>>()
    );
    assert!(
        gaps.len() >= 15,
        "every join and leave made a transition: {}",
        gaps.len()
    );
    assert!(
        longest <= Duration::from_millis(120),
        "audio broke up for {longest:?} at a transition"
    );
    for id in present {
        let heard = sim.heard_by(guild(0), id);
        assert!(
            heard.audio_frames() > 50,
            "listener {id} heard {} frames",
            heard.audio_frames()
        );
    }
    assert_no_violations(&sim);
}

/// docs/protocol.md §6.5 F and E: in a DAVE-optional call a client without DAVE joins mid-sound.
/// The call downgrades (op 21, protocol_version 0); on op 22 the bot switches to plain Opus and
/// the old client hears it. When it leaves, the call upgrades (op 24, epoch 1), a new group forms
/// and the bot encrypts again. The DAVE member hears the sound throughout; the simulator flags a
/// DAVE frame after the downgrade and a plain one after the upgrade.
#[test]
fn downgrade_for_a_client_without_dave_and_upgrade_when_it_leaves() {
    let sim = sim_with(|c| c.dave = DaveMode::Optional);
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let dave = |s: &voxboard_voice::engine::Status| s.connections.first().map(|c| c.dave.clone());
    let e2ee = wait_status(&voice, Duration::from_secs(5), |s| {
        dave(s).is_some_and(|d| d.can_encrypt)
    });
    assert!(
        dave(&e2ee).is_some_and(|d| d.protocol_version == 1),
        "{e2ee:?}"
    );
    let playing = voice.play(sine_clip(440.0, 0.3, 9.0), Target::All, 1.0);
    std::thread::sleep(Duration::from_millis(1500));

    let old_client = sim
        .add_listener_without_dave(guild(0))
        .expect("an optional call admits a client without DAVE");
    let plain = wait_status(&voice, Duration::from_secs(5), |s| {
        dave(s).is_some_and(|d| d.protocol_version == 0)
    });
    assert_eq!(
        dave(&plain).map(|d| d.protocol_version),
        Some(0),
        "{plain:?}"
    );
    assert!(
        dave(&plain).is_some_and(|d| d.privacy_code.is_none() && d.epoch.is_none()),
        "no stale privacy code once the call is not E2EE: {plain:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let heard_plain = sim.heard_by(guild(0), old_client);

    sim.remove_listener(guild(0), old_client);
    let again = wait_status(&voice, Duration::from_secs(5), |s| {
        dave(s).is_some_and(|d| d.protocol_version == 1 && d.can_encrypt)
    });
    let upgraded_at = std::time::Instant::now();
    assert!(
        dave(&again).is_some_and(|d| d.can_encrypt && d.epoch >= Some(1)),
        "{again:?}"
    );
    playing.wait();
    wait_quiet(&voice);
    voice.close();

    let downgrades = events(&sim, |e| {
        matches!(
            e,
            SimEvent::PrepareTransition {
                protocol_version: 0,
                ..
            }
        )
    });
    let upgrades = events(&sim, |e| {
        matches!(
            e,
            SimEvent::PrepareEpoch {
                user_id: BOT,
                epoch: 1,
                protocol_version: 1,
                ..
            }
        )
    });
    assert_eq!((downgrades, upgrades), (1, 1));

    let pcm = heard_plain.pcm_mono();
    let tones = voxboard_audio::analysis::tone_segments(&pcm, 48_000, &[440.0], 0.02);
    let seconds: f32 = tones.iter().map(|(_, s, e)| e - s).sum();
    assert!(
        heard_plain.audio_frames() >= 50 && seconds >= 1.0,
        "the client without DAVE heard {} frames, {seconds:.2} s of 440 Hz",
        heard_plain.audio_frames()
    );
    let member = sim.listeners(guild(0))[0];
    let after_upgrade = sim
        .heard_by(guild(0), member)
        .frames
        .iter()
        .filter(|f| !f.silence && f.at > upgraded_at)
        .count();
    assert!(
        after_upgrade >= 50,
        "the DAVE member heard {after_upgrade} frames after the upgrade"
    );
    println!(
        "downgrade/upgrade: longest gap per transition (ms): {:?}",
        sim.dave_gaps(guild(0))
            .iter()
            .map(|g| g.as_millis())
            .collect::<Vec<_>>()
    );
    assert_no_violations(&sim);
}
