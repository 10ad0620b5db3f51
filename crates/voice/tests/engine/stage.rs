//! Stage channels against the simulator: the bot joins in the audience and asks to speak over
//! real HTTP; without Mute Members it raises its hand and waits, sending nothing, until a
//! moderator invites it; a moderator moving it back to the audience silences it.

use std::time::Duration;

use crate::common::*;
use voxboard_sim::{BotPermissions, ChannelKind, SimChannel, SimConfig, SimEvent, Simulator};
use voxboard_voice::engine::{Phase, Target, VoiceError};

const STAGE: u64 = 4242;

fn stage_sim(mute_members: bool) -> Simulator {
    let mut config = SimConfig::with_guilds(1);
    config.guilds[0].channels.push(SimChannel {
        id: STAGE,
        name: "Stage".into(),
        kind: ChannelKind::Stage,
        bitrate: 64_000,
        user_limit: 0,
    });
    config.guilds[0].bot_permissions = BotPermissions {
        mute_members,
        request_to_speak: true,
    };
    Simulator::start(config).unwrap()
}

fn speak_requests(sim: &Simulator) -> Vec<(Option<bool>, bool, bool)> {
    sim.events()
        .into_iter()
        .filter_map(|e| match e {
            SimEvent::SpeakRequest {
                suppress,
                request_to_speak,
                allowed,
                ..
            } => Some((suppress, request_to_speak, allowed)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_stage_moderator_bot_makes_itself_a_speaker_and_is_heard() {
    let sim = stage_sim(true);
    let voice = connect(&sim);
    // The join returns once the bot may speak, not merely once media is up.
    voice.join_channel(guild(0), STAGE, false, true).unwrap();
    assert_eq!(speak_requests(&sim), [(Some(false), false, true)]);
    assert_eq!(voice.status().borrow().connections[0].stage, None);
    voice
        .play(three_tone_clip().samples, Target::All, 1.0)
        .wait();
    wait_quiet(&voice);
    voice.close();
    assert_three_tones(&sim, guild(0), 0.98, 1.02);
    // Among them: no audio while suppressed, and the REST call carried Discord's User-Agent.
    assert_no_violations(&sim);
}

#[test]
fn without_mute_members_the_hand_is_raised_nothing_is_sent_and_an_invitation_lets_it_speak() {
    let sim = stage_sim(false);
    let mut config = voxboard_voice::engine::VoiceConfig::new(
        voxboard_voice::discord::ws::Token::new(SimConfig::TEST_TOKEN),
    );
    config.gateway_url = sim.gateway_url();
    config.rest_url = sim.rest_url();
    config.settings.join_timeout = Duration::from_secs(2);
    let voice = voxboard_voice::engine::Voice::connect(config).unwrap();

    let err = voice
        .join_channel(guild(0), STAGE, false, true)
        .unwrap_err();
    let VoiceError::StageSuppressed(why) = &err else {
        panic!("expected a stage error, got {err:?}");
    };
    assert!(
        why.starts_with("stage: suppressed — waiting for a speaker slot")
            && why.contains("Mute Members"),
        "{why}"
    );
    // Refused to speak (403), then the hand raised.
    assert_eq!(
        speak_requests(&sim),
        [(Some(false), false, false), (None, true, true)]
    );
    let card = voice.status().borrow().connections[0].clone();
    assert_eq!(
        card.phase,
        Phase::Ready,
        "the bot stays in the stage, ready to speak"
    );
    assert_eq!(card.stage.as_deref(), Some(why.as_str()));

    // A sound played while in the audience goes nowhere: nothing is sent.
    voice
        .play(sine_clip(440.0, 0.3, 0.5), Target::All, 1.0)
        .wait();
    assert_eq!(sim.heard(guild(0)).audio_frames(), 0);

    // A moderator invites the bot: it speaks.
    sim.set_stage_speaker(guild(0), true);
    let seen = wait_status(&voice, Duration::from_secs(3), |s| {
        s.connections.first().is_some_and(|c| c.stage.is_none())
    });
    assert_eq!(seen.connections[0].stage, None);
    voice
        .play(three_tone_clip().samples, Target::All, 1.0)
        .wait();
    wait_quiet(&voice);
    assert_three_tones(&sim, guild(0), 0.98, 1.02);

    // Moved back to the audience mid-sound: the audio stops (the moderator is not fought).
    let long = voice.play(sine_clip(440.0, 0.3, 3.0), Target::All, 1.0);
    std::thread::sleep(Duration::from_millis(300));
    sim.set_stage_speaker(guild(0), false);
    let seen = wait_status(&voice, Duration::from_secs(3), |s| {
        s.connections.first().is_some_and(|c| c.stage.is_some())
    });
    let line = seen.connections[0].stage.clone().unwrap_or_default();
    assert!(line.contains("moved to the audience"), "{line}");
    long.wait();
    voice.close();
    assert_eq!(
        speak_requests(&sim).len(),
        2,
        "asked again after the moderator's move"
    );
    // No audio arrived while suppressed, beyond what was already in flight.
    assert_no_violations(&sim);
}

/// The simulator's REST side refuses what Discord refuses, and the client reads its errors.
#[test]
fn the_rest_api_checks_token_voice_state_and_channel_type() {
    use voxboard_voice::discord::rest::{RestClient, RestError, check_rest_url};
    use voxboard_voice::discord::ws::{TlsTrust, Token};
    let sim = stage_sim(true);
    let url = check_rest_url(&sim.rest_url()).unwrap();
    let client = |token: &str| RestClient::new(url.clone(), Token::new(token), TlsTrust::default());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let speak = |c: &RestClient, channel: u64| {
        let body = serde_json::json!({"channel_id": channel.to_string(), "suppress": false});
        runtime.block_on(c.modify_own_voice_state(guild(0), body))
    };
    let code = |r: Result<(), RestError>| match r {
        Err(RestError::Refused { status, code, .. }) => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(code(speak(&client("not-the-token"), STAGE)), (401, 0));
    let bot = client(SimConfig::TEST_TOKEN);
    // Not in any voice channel of the guild yet.
    assert_eq!(code(speak(&bot, STAGE)), (404, 10065));

    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, true)
        .unwrap();
    // In a plain voice channel there is no speaker slot to ask for.
    assert_eq!(code(speak(&bot, voice_channel(0))), (400, 50024));
    // Naming a channel the bot is not in is a bad form.
    assert_eq!(code(speak(&bot, STAGE)), (400, 50035));
    voice.close();
    assert_no_violations(&sim);
}
