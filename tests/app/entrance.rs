//! Entrance sounds through the real app core against the simulator: a virtual member entering
//! the bot's voice channel (a voice state on the main gateway) is greeted at the listener, once
//! per cooldown; a member entering another channel is not.

use std::time::Duration;

use voxboard::board::Entrance;
use voxboard_testkit::heard_tones;

use crate::ui_support::{Env, board_with, step_until};

const ALICE: u64 = 555;
const BOB: u64 = 888;

#[test]
fn a_member_entering_the_bots_channel_is_greeted_once_per_cooldown() {
    let env = Env::new(
        |dir| {
            // 440 Hz greets Alice, 660 Hz greets Bob.
            let mut b = board_with(dir, &["Hi Alice", "Hi Bob"], 1.0);
            b.tabs[0].sounds[0].entrance = Some(Entrance::Member(ALICE));
            b.tabs[0].sounds[1].entrance = Some(Entrance::Member(BOB));
            b.settings.connections.insert(100, 1002);
            b
        },
        true,
    );
    let sim = env.sim.as_ref().expect("sim");
    let mut h = env.harness_joined(100);
    let ids: Vec<u64> = h.state().core.board.tabs[0]
        .sounds
        .iter()
        .map(|s| s.id)
        .collect();
    let silent = |h: &egui_kittest::Harness<'static, voxboard::ui::VoxApp>| {
        ids.iter().all(|id| h.state().core.progress(*id).is_none())
    };

    sim.member_voice_state(100, ALICE, Some(1002));
    step_until(&mut h, Duration::from_secs(10), "Alice's greeting", |h| {
        sim.heard(100).audio_frames() >= 45 && silent(h)
    });
    // Within the cooldown Alice hops out and back in, and Bob enters another channel (the
    // bot is not there): nothing plays. Then Bob enters the bot's channel: his greeting.
    sim.member_voice_state(100, ALICE, None);
    sim.member_voice_state(100, ALICE, Some(1002));
    sim.member_voice_state(100, BOB, Some(1003));
    sim.member_voice_state(100, BOB, Some(1002));
    step_until(&mut h, Duration::from_secs(10), "Bob's greeting", |h| {
        sim.heard(100).audio_frames() >= 95 && silent(h)
    });
    // The joins arrive in order, so a greeting that should not have played would be heard
    // before Bob's (the listener's audio has no gaps: a second greeting of Alice's would make
    // hers last 2 s).
    let tones = heard_tones(sim, 100);
    let freqs: Vec<f32> = tones.iter().map(|t| t.0).collect();
    assert_eq!(freqs, [440.0, 660.0], "heard {tones:?}");
    for (f, secs) in tones {
        assert!(
            (0.9..=1.1).contains(&secs),
            "{f} Hz lasted {secs} s: played once"
        );
    }
    voxboard_testkit::assert_no_violations(sim);
}
