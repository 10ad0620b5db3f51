//! DAVE end to end: the engine against the simulator's external sender, with virtual listeners
//! that are real members of the MLS group and decrypt what the bot sends (docs/protocol.md §8.5).

use std::time::Duration;

use crate::common::*;
use voxboard_sim::{DaveMode, SimConfig, SimEvent, Simulator};
use voxboard_voice::discord::ws::Token;
use voxboard_voice::engine::{Target, Voice, VoiceConfig, VoiceError};

pub(crate) const BOT: u64 = SimConfig::DEFAULT_BOT_USER_ID;

pub(crate) fn sim_with(f: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig::with_guilds(1);
    f(&mut config);
    Simulator::start(config).unwrap()
}

pub(crate) fn events(sim: &Simulator, pred: impl Fn(&SimEvent) -> bool) -> usize {
    sim.events().iter().filter(|e| pred(e)).count()
}

/// Plays the three tones; returns the engine's view of the call's E2EE while it played.
pub(crate) fn play_tones(
    sim: &Simulator,
    voice: &Voice,
) -> voxboard_voice::engine::dave::DaveStatus {
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let playing = voice.play(three_tone_clip().samples, Target::All, 1.0);
    std::thread::sleep(Duration::from_millis(500));
    let dave = voice.status().borrow().connections[0].dave.clone();
    playing.wait();
    wait_quiet(voice);
    let _ = sim;
    dave
}

pub(crate) fn assert_listener_heard_tones(sim: &Simulator, listener: u64) {
    let pcm = sim.heard_by(guild(0), listener).pcm_mono();
    let segments = voxboard_audio::analysis::tone_segments(&pcm, 48_000, &TONES, 0.02);
    let tones: Vec<(f32, f32)> = segments
        .into_iter()
        .map(|(f, s, e)| (f, e - s))
        .filter(|&(_, len)| len >= 0.1)
        .collect();
    let freqs: Vec<f32> = tones.iter().map(|t| t.0).collect();
    assert_eq!(freqs, TONES.to_vec(), "listener {listener} heard {tones:?}");
    for (f, len) in tones {
        assert!(
            (0.9..=1.05).contains(&len),
            "listener {listener}: {f} Hz lasted {len}"
        );
    }
}

#[test]
fn three_tones_are_heard_by_a_member_of_the_mls_group() {
    let sim = sim_with(|_| {});
    let voice = connect(&sim);
    let dave = play_tones(&sim, &voice);
    voice.close();
    let listener = sim.listeners(guild(0))[0];
    assert_listener_heard_tones(&sim, listener);
    assert_eq!(dave.protocol_version, 1);
    assert!(dave.can_encrypt && dave.epoch >= Some(1), "{dave:?}");
    assert!(events(&sim, |e| matches!(e, SimEvent::ExecuteTransition { .. })) >= 1);
    // The simulator flags any non-silence frame that is not DAVE-encrypted after the first
    // transition (dave.plaintext): none may exist.
    assert_no_violations(&sim);
}

#[test]
fn privacy_code_matches_the_listeners() {
    let sim = sim_with(|_| {});
    let voice = connect(&sim);
    let dave = play_tones(&sim, &voice);
    let listeners_code = sim.privacy_code(guild(0)).expect("the listener has a code");
    voice.close();
    let shown = dave.privacy_code.expect("the engine shows a code");
    assert_eq!(shown.replace(' ', ""), listeners_code);
    let groups: Vec<&str> = shown.split(' ').collect();
    assert_eq!(groups.len(), 6, "30 digits in groups of five: {shown}");
    assert!(
        groups
            .iter()
            .all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_digit()))
    );
}

/// docs/protocol.md §8.5.1: alone in a DAVE channel the bot sends its key package and stays
/// pending; playing is not an error, and nothing goes out unencrypted.
#[test]
fn alone_in_a_dave_channel_stays_pending() {
    let sim = sim_with(|c| c.dave_listeners = 0);
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    voice
        .play(three_tone_clip().samples[..48_000].into(), Target::All, 1.0)
        .wait();
    let status = wait_status(&voice, Duration::from_secs(1), |_| true);
    voice.close();
    assert_eq!(
        events(&sim, |e| matches!(
            e,
            SimEvent::KeyPackage { user_id: BOT, .. }
        )),
        1
    );
    assert!(!status.connections[0].dave.can_encrypt);
    assert_eq!(sim.heard(guild(0)).audio_frames(), 0, "no plaintext audio");
    assert_no_violations(&sim);
}

/// docs/protocol.md §8.5.2: both commit; the first valid commit wins. Here the listener never
/// commits, so the bot's commit wins and it gets op 29.
#[test]
fn bots_commit_wins_when_it_is_first() {
    let sim = sim_with(|c| c.listener_commit_delay = None);
    let voice = connect(&sim);
    play_tones(&sim, &voice);
    voice.close();
    assert!(
        events(&sim, |e| matches!(
            e,
            SimEvent::Commit {
                user_id: BOT,
                accepted: true,
                ..
            }
        )) >= 1
    );
    assert_eq!(
        events(&sim, |e| matches!(
            e,
            SimEvent::WelcomeSent { user_id: BOT, .. }
        )),
        0
    );
    assert_listener_heard_tones(&sim, sim.listeners(guild(0))[0]);
    assert_no_violations(&sim);
}

/// docs/protocol.md §8.5.2, other outcome: the listener commits at once and wins; the bot is
/// welcomed (op 30).
#[test]
fn listeners_commit_wins_and_the_bot_is_welcomed() {
    let sim = sim_with(|c| c.listener_commit_delay = Some(Duration::ZERO));
    let voice = connect(&sim);
    play_tones(&sim, &voice);
    voice.close();
    assert!(
        events(&sim, |e| matches!(
            e,
            SimEvent::WelcomeSent { user_id: BOT, .. }
        )) >= 1
    );
    assert!(
        events(&sim, |e| matches!(
            e,
            SimEvent::TransitionReady { user_id: BOT, .. }
        )) >= 1
    );
    assert_listener_heard_tones(&sim, sim.listeners(guild(0))[0]);
    assert_no_violations(&sim);
}

/// docs/protocol.md §8.5.3: the bot joins an established group of two listeners; both decrypt it.
#[test]
fn joining_an_established_group() {
    let sim = sim_with(|c| c.dave_listeners = 0);
    let a = sim.add_listener(guild(0)).unwrap();
    let b = sim.add_listener(guild(0)).unwrap();
    let formed = sim.wait_for(Duration::from_secs(5), |ev| {
        ev.iter()
            .any(|e| matches!(e, SimEvent::ExecuteTransition { .. }))
    });
    assert!(formed, "the listeners formed a group: {:#?}", sim.events());
    let voice = connect(&sim);
    play_tones(&sim, &voice);
    voice.close();
    assert!(
        events(&sim, |e| matches!(
            e,
            SimEvent::WelcomeSent { user_id: BOT, .. }
        )) >= 1
    );
    assert_listener_heard_tones(&sim, a);
    assert_listener_heard_tones(&sim, b);
    assert_no_violations(&sim);
}

/// docs/protocol.md §8.5.4: a listener leaves mid-stream (Remove, new epoch); the other keeps
/// hearing the bot.
#[test]
fn a_member_leaving_mid_stream_rekeys_without_a_gap() {
    let sim = sim_with(|c| c.dave_listeners = 2);
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let playing = voice.play(three_tone_clip().samples, Target::All, 1.0);
    std::thread::sleep(Duration::from_millis(1200));
    let listeners = sim.listeners(guild(0));
    let epoch_before = sim.dave_epoch(guild(0)).unwrap();
    sim.remove_listener(guild(0), listeners[0]);
    playing.wait();
    wait_quiet(&voice);
    let epoch_after = sim.dave_epoch(guild(0)).unwrap();
    voice.close();
    assert!(
        epoch_after > epoch_before,
        "a Remove makes a new epoch: {epoch_before} -> {epoch_after}"
    );
    assert_listener_heard_tones(&sim, listeners[1]);
    assert_no_violations(&sim);
}

/// docs/protocol.md §8.5.5: an in-flight Add is revoked; the bot drops it and carries on.
#[test]
fn revoked_add_is_dropped() {
    let sim = sim_with(|c| c.listener_commit_delay = None);
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let newcomer = sim.add_listener(guild(0)).unwrap();
    let revoked = sim.revoke_pending_add(guild(0));
    assert_eq!(revoked, Some(newcomer));
    let first = sim.listeners(guild(0))[0];
    voice
        .play(three_tone_clip().samples, Target::All, 1.0)
        .wait();
    wait_quiet(&voice);
    voice.close();
    assert!(
        events(&sim, |e| matches!(
            e,
            SimEvent::Proposals { revoked: 1.., .. }
        )) >= 1
    );
    assert_listener_heard_tones(&sim, first);
    assert_no_violations(&sim);
}

/// docs/protocol.md §8.5.6: a corrupted Welcome: the bot answers op 31, sends a fresh key
/// package, and is added again.
#[test]
fn corrupted_welcome_is_reported_and_recovered() {
    let sim = sim_with(|c| c.dave_listeners = 0);
    let listener = sim.add_listener(guild(0)).unwrap();
    sim.add_listener(guild(0)).unwrap();
    sim.corrupt_next_welcome(guild(0));
    let voice = connect(&sim);
    play_tones(&sim, &voice);
    voice.close();
    assert_eq!(
        events(&sim, |e| matches!(
            e,
            SimEvent::InvalidCommitWelcome { user_id: BOT, .. }
        )),
        1
    );
    assert!(
        events(&sim, |e| matches!(
            e,
            SimEvent::KeyPackage { user_id: BOT, .. }
        )) >= 2
    );
    assert_listener_heard_tones(&sim, listener);
}

/// docs/protocol.md §8.5.7: the last listener leaves (sole-member reset: op 24 epoch 1 + op 21
/// tid 0); a new listener joins later and hears the bot.
#[test]
fn sole_member_reset_then_a_new_group() {
    let sim = sim_with(|_| {});
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let first = sim.listeners(guild(0))[0];
    sim.remove_listener(guild(0), first);
    let reset = sim.wait_for(Duration::from_secs(5), |ev| {
        ev.iter().any(|e| {
            matches!(
                e,
                SimEvent::PrepareTransition {
                    transition_id: 0,
                    ..
                }
            )
        })
    });
    assert!(reset, "sole-member reset: {:#?}", sim.events());
    let second = sim.add_listener(guild(0)).unwrap();
    play_tones_again(&voice);
    voice.close();
    assert_listener_heard_tones(&sim, second);
    assert_no_violations(&sim);
}

pub(crate) fn play_tones_again(voice: &Voice) {
    voice
        .play(three_tone_clip().samples, Target::All, 1.0)
        .wait();
    wait_quiet(voice);
}

/// docs/protocol.md §8.5.8: without DAVE (a simulator configured like a stage or a pre-2026
/// call) the audio is plain Opus inside the transport encryption.
#[test]
fn dave_off_sends_plain_opus() {
    let sim = sim_with(|c| c.dave = DaveMode::Off);
    let voice = connect(&sim);
    let dave = play_tones(&sim, &voice);
    voice.close();
    assert_eq!(dave.protocol_version, 0);
    assert_three_tones(&sim, guild(0), 0.98, 1.02);
    assert_no_violations(&sim);
}

/// A stage channel is excluded from E2EE: version 0 even when DAVE is required.
#[test]
fn stage_channels_run_without_dave() {
    use voxboard_sim::{ChannelKind, SimChannel};
    let sim = sim_with(|c| {
        c.guilds[0].channels.push(SimChannel {
            id: 4242,
            name: "Stage".into(),
            kind: ChannelKind::Stage,
            bitrate: 64_000,
            user_limit: 0,
        })
    });
    let voice = connect(&sim);
    voice.join_channel(guild(0), 4242, false, false).unwrap();
    voice
        .play(three_tone_clip().samples, Target::All, 1.0)
        .wait();
    wait_quiet(&voice);
    let dave = voice.status().borrow().connections[0].dave.clone();
    voice.close();
    assert_eq!(dave.protocol_version, 0);
    assert_three_tones(&sim, guild(0), 0.98, 1.02);
    assert_no_violations(&sim);
}

/// docs/protocol.md §8.5.9: a client that does not offer DAVE is refused with 4017: a clear
/// error, no retry loop.
#[test]
fn identify_without_dave_gets_e2ee_required() {
    let sim = sim_with(|_| {});
    let mut config = VoiceConfig::new(Token::new(SimConfig::TEST_TOKEN));
    config.gateway_url = sim.gateway_url();
    config.settings.max_dave_protocol_version = 0;
    let voice = Voice::connect(config).unwrap();
    let err = voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap_err();
    assert_eq!(err, VoiceError::E2eeRequired);
    assert!(err.to_string().contains("E2EE required"));
    // The op 4 put the bot in the channel: giving up must take it out again, not leave a
    // silent bot sitting there.
    let left = sim.wait_for(Duration::from_secs(2), |ev| {
        ev.iter().any(|e| {
            matches!(
                e,
                SimEvent::VoiceStateRequest {
                    channel_id: None,
                    ..
                }
            )
        })
    });
    assert!(left, "no op 4 with channel_id null after the failure");
    voice.close();
    assert_eq!(
        events(&sim, |e| matches!(e, SimEvent::VoiceIdentify { .. })),
        1,
        "no retry loop"
    );
}

/// docs/protocol.md §8.5.10: the voice socket drops in the middle of the DAVE handshake; the
/// resume replays the buffered DAVE messages and the engine's seq_ack is right.
#[test]
fn resume_in_the_middle_of_the_handshake() {
    let sim = sim_with(|c| c.listener_commit_delay = Some(Duration::from_millis(300)));
    let voice = connect(&sim);
    let dropper = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let seen = sim.wait_for(Duration::from_secs(5), |ev| {
                ev.iter()
                    .any(|e| matches!(e, SimEvent::KeyPackage { user_id: BOT, .. }))
            });
            sim.drop_voice(guild(0));
            seen
        });
        let joined = voice.join_channel(guild(0), voice_channel(0), false, false);
        (h.join().unwrap(), joined)
    });
    assert!(dropper.0, "the handshake started");
    dropper.1.unwrap();
    play_tones_again(&voice);
    voice.close();
    assert!(
        events(&sim, |e| matches!(e, SimEvent::VoiceResumed { .. })) >= 1,
        "{:#?}",
        sim.events()
    );
    assert_listener_heard_tones(&sim, sim.listeners(guild(0))[0]);
    assert_no_violations(&sim);
}
