//! The rest of the public `Voice`/`Session` API, each through the simulator's listeners:
//! stopping one playback or every playback of a board sound, a guild's own gain, playing into
//! one guild's session, and ending a talk spurt early.

use std::time::Duration;

use crate::common::*;
use voxboard_audio::analysis::rms;
use voxboard_sim::{SimConfig, Simulator};
use voxboard_voice::engine::{Command, PlayRequest, Target};

/// What a guild's listener heard, without the near-silent 20 ms frames.
fn loud_frames(sim: &Simulator, guild_id: u64) -> Vec<Vec<f32>> {
    let pcm = sim.heard(guild_id).pcm_mono();
    pcm.chunks(960)
        .filter(|f| rms(f) > 0.01)
        .map(<[f32]>::to_vec)
        .collect()
}

/// Seconds of sound a guild's listener heard.
fn heard_seconds(sim: &Simulator, guild_id: u64) -> f32 {
    loud_frames(sim, guild_id).len() as f32 * 0.02
}

/// A simulator with two guilds and an engine joined to both.
fn two_guilds() -> (Simulator, voxboard_voice::engine::Voice) {
    let sim = Simulator::start(SimConfig::with_guilds(2)).unwrap();
    let voice = connect(&sim);
    for g in 0..2 {
        voice
            .join_channel(guild(g), voice_channel(g), false, false)
            .unwrap();
    }
    (sim, voice)
}

#[test]
fn a_playback_and_a_board_sound_stop_early() {
    let (sim, voice) = two_guilds();
    // A one-off playback into guild 0, stopped through its handle.
    let one_off = voice.play(
        sine_clip(440.0, 0.3, 5.0),
        Target::Guilds(vec![guild(0)]),
        1.0,
    );
    // A looping board sound into guild 1, stopped by its sound id.
    let mut request = PlayRequest::new(
        voice.next_id(),
        sine_clip(660.0, 0.3, 0.5),
        Target::Guilds(vec![guild(1)]),
    );
    request.sound = Some(42);
    request.looped = true;
    let board_sound = voice.play_request(request);
    std::thread::sleep(Duration::from_secs(1));
    one_off.stop();
    voice.command(Command::StopSound { sound: 42 });
    assert!(
        one_off.wait_timeout(Duration::from_secs(2)),
        "stop() ends it"
    );
    assert!(
        board_sound.wait_timeout(Duration::from_secs(2)),
        "StopSound ends a looping sound"
    );
    wait_quiet(&voice);
    voice.close();
    for g in 0..2 {
        let secs = heard_seconds(&sim, guild(g));
        assert!((0.8..1.6).contains(&secs), "guild {g} heard {secs} s");
    }
    assert_no_violations(&sim);
}

#[test]
fn a_guild_gain_scales_that_guild_only() {
    let (sim, voice) = two_guilds();
    voice.command(Command::SetGuildGain {
        guild_id: guild(1),
        gain: 0.5,
    });
    let playing = voice.play(sine_clip(440.0, 0.4, 1.0), Target::All, 1.0);
    assert!(playing.wait_timeout(Duration::from_secs(5)));
    wait_quiet(&voice);
    voice.close();
    let level = |g| rms(&loud_frames(&sim, guild(g)).concat());
    let ratio = level(1) / level(0);
    assert!((0.45..0.55).contains(&ratio), "guild 1 / guild 0 = {ratio}");
    assert_no_violations(&sim);
}

#[test]
fn play_pcm_on_a_session_reaches_that_guild_only() {
    let sim = Simulator::start(SimConfig::with_guilds(2)).unwrap();
    let voice = connect(&sim);
    let session = voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    voice
        .join_channel(guild(1), voice_channel(1), false, false)
        .unwrap();
    let playing = session.play_pcm(sine_clip(440.0, 0.3, 1.0));
    assert!(playing.wait_timeout(Duration::from_secs(5)));
    wait_quiet(&voice);
    voice.close();
    let secs = heard_seconds(&sim, guild(0));
    assert!((0.9..1.1).contains(&secs), "guild 0 heard {secs} s");
    assert_eq!(sim.heard(guild(1)).audio_frames(), 0, "guild 1 heard it");
    assert_no_violations(&sim);
}

#[test]
fn stop_speaking_drops_queued_frames_and_ends_with_the_silence_tail() {
    use std::io::Write;
    use voxboard_audio::FRAME_LEN;
    use voxboard_audio::opus::{MAX_PACKET, OpusEncoder};

    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    let mut session = voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let tone = sine_clip(440.0, 0.3, 1.0);
    let mut encoder = OpusEncoder::new(64_000).unwrap();
    let mut packet = vec![0u8; MAX_PACKET];
    // Five frames fit in the session's lead, so they are queued at once; stop before they
    // have all gone out.
    for frame in tone.chunks_exact(FRAME_LEN).take(5) {
        let n = encoder.encode(frame, &mut packet).unwrap();
        session.write_all(&packet[..n]).unwrap();
    }
    session.stop_speaking();
    wait_quiet(&voice);
    voice.close();
    let sent = sim.heard(guild(0)).audio_frames();
    assert!(
        sent < 5,
        "{sent} of 5 queued frames went out after stop_speaking"
    );
    // The simulator flags audio that stops without five silence frames (rtp.silence_tail).
    assert_no_violations(&sim);
}
