//! Guilds and channels change while the bot runs: a channel is created or deleted, the bot is
//! invited to a guild or removed from one. The pickers follow, and joins into what is new work.

use std::time::Duration;

use crate::common::*;
use voxboard_sim::{ChannelKind, SimChannel, SimConfig, SimEvent, SimGuild, Simulator};
use voxboard_voice::engine::{Status, Target, VoiceError};

fn voice_channel_named(id: u64, name: &str) -> SimChannel {
    SimChannel {
        id,
        name: name.into(),
        kind: ChannelKind::Voice,
        bitrate: 64_000,
        user_limit: 0,
    }
}

fn has_channel(s: &Status, guild_id: u64, channel_id: u64) -> bool {
    s.guilds
        .iter()
        .any(|g| g.id == guild_id && g.voice_channels.iter().any(|c| c.0 == channel_id))
}

#[test]
fn a_channel_created_while_running_can_be_joined_and_its_deletion_ends_the_connection() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    sim.create_channel(guild(0), voice_channel_named(5555, "Made just now"));
    let seen = wait_status(&voice, Duration::from_secs(3), |s| {
        has_channel(s, guild(0), 5555)
    });
    assert!(
        has_channel(&seen, guild(0), 5555),
        "the picker never showed it"
    );
    voice
        .join_channel(guild(0), 5555, false, false)
        .expect("a new voice channel is a voice channel");
    let playing = voice.play(three_tone_clip().samples, Target::All, 1.0);
    assert!(playing.wait_timeout(Duration::from_secs(10)));
    wait_quiet(&voice);
    assert_three_tones(&sim, guild(0), 0.95, 1.05);

    let errors = voice.errors();
    sim.delete_channel(guild(0), 5555);
    let (g, error) = errors
        .recv_timeout(Duration::from_secs(5))
        .expect("the deletion ends the connection");
    assert_eq!((g, error), (guild(0), VoiceError::Kicked));
    let gone = wait_status(&voice, Duration::from_secs(3), |s| {
        !has_channel(s, guild(0), 5555)
    });
    assert!(
        !has_channel(&gone, guild(0), 5555),
        "the picker still shows it"
    );
    voice.close();
    assert_no_violations(&sim);
}

#[test]
fn a_guild_the_bot_is_invited_to_while_running_can_be_joined_until_it_is_removed() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    sim.invite_to_guild(SimGuild {
        id: 777,
        name: "New friends".into(),
        channels: vec![voice_channel_named(7772, "Lounge")],
        unavailable: false,
        bot_permissions: Default::default(),
    });
    let seen = wait_status(&voice, Duration::from_secs(3), |s| {
        has_channel(s, 777, 7772)
    });
    assert!(has_channel(&seen, 777, 7772), "the new guild never showed");
    voice.join_channel(777, 7772, false, false).unwrap();
    let playing = voice.play(three_tone_clip().samples, Target::All, 1.0);
    assert!(playing.wait_timeout(Duration::from_secs(10)));
    wait_quiet(&voice);
    assert_three_tones(&sim, 777, 0.95, 1.05);

    let errors = voice.errors();
    sim.remove_from_guild(777);
    let (g, error) = errors
        .recv_timeout(Duration::from_secs(5))
        .expect("removal ends the connection");
    assert_eq!((g, error), (777, VoiceError::UnknownGuild(777)));
    let gone = wait_status(&voice, Duration::from_secs(3), |s| {
        s.guilds.iter().all(|g| g.id != 777)
    });
    assert!(gone.guilds.iter().all(|g| g.id != 777));
    assert!(
        voice.join_channel(777, 7772, false, false).is_err(),
        "a guild the bot left cannot be joined"
    );
    voice.close();
    assert_no_violations(&sim);
}

/// A second client with the same bot token (another Voxboard, `voxboard play` on another PC)
/// joins voice in the same guild: Discord moves the bot's voice to it. The first says so and
/// stays out; rejoining would start a tug of war over the bot.
#[test]
fn another_client_taking_the_bot_is_reported_and_not_fought() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let first = connect(&sim);
    first
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let errors = first.errors();
    let second = connect(&sim);
    second
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let (g, error) = errors
        .recv_timeout(Duration::from_secs(5))
        .expect("the first client learns it lost the bot");
    assert_eq!((g, error.clone()), (guild(0), VoiceError::TakenOver));
    assert!(error.to_string().contains("another client"), "{error}");
    let playing = second.play(three_tone_clip().samples, Target::All, 1.0);
    assert!(playing.wait_timeout(Duration::from_secs(10)));
    wait_quiet(&second);
    assert_three_tones(&sim, guild(0), 0.95, 1.05);
    let op4s = sim
        .events()
        .iter()
        .filter(|e| matches!(e, voxboard_sim::SimEvent::VoiceStateRequest { .. }))
        .count();
    assert_eq!(op4s, 2, "the first client must neither leave nor rejoin");
    second.close();
    first.close();
    assert_no_violations(&sim);
}

/// Switching channel in a guild is a new voice session with a new token: the old one is spent
/// the moment Discord moves the bot (the old socket closes with 4014). The next Identify must
/// carry the new token (the simulator refuses a stale one with 4004, `voice.auth`), and the
/// sound after the switch is heard.
#[test]
fn a_channel_switch_identifies_with_the_new_token_and_is_heard() {
    let mut config = SimConfig::with_guilds(1);
    config.guilds[0]
        .channels
        .push(voice_channel_named(4242, "Second room"));
    let sim = Simulator::start(config).unwrap();
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let first = voice.play(sine_clip(440.0, 0.3, 0.5), Target::All, 1.0);
    assert!(first.wait_timeout(Duration::from_secs(10)));
    wait_quiet(&voice);
    voice
        .join_channel(guild(0), 4242, false, false)
        .expect("the switch completes");
    let before = sim.heard(guild(0)).audio_frames();
    let playing = voice.play(three_tone_clip().samples, Target::All, 1.0);
    assert!(playing.wait_timeout(Duration::from_secs(10)));
    wait_quiet(&voice);
    let status = voice.status().borrow().clone();
    voice.close();
    assert_eq!(status.connections[0].channel_id, 4242, "{status:?}");
    let identifies = sim
        .events()
        .iter()
        .filter(|e| matches!(e, SimEvent::VoiceIdentify { .. }))
        .count();
    assert_eq!(identifies, 2, "one Identify per voice session");
    assert!(
        sim.heard(guild(0)).audio_frames() >= before + 140,
        "the sound after the switch was heard"
    );
    assert_no_violations(&sim);
}
