//! The engine against the simulator over real sockets: join, play, verify what a listener heard.

use std::time::Duration;

use crate::common::*;
use voxboard_sim::{SimConfig, SimEvent, Simulator};
use voxboard_voice::discord::ws::{TlsTrust, Token};
use voxboard_voice::engine::{Target, Voice, VoiceConfig};

/// One frame of audio at 48 kHz, in seconds: the tolerance on durations.
const FRAME: f32 = 0.02;

fn play_three_tones(modes: &[&str]) -> (Simulator, String) {
    let mut config = SimConfig::with_guilds(1);
    config.transport_modes = modes.iter().map(|m| m.to_string()).collect();
    let sim = Simulator::start(config).unwrap();
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let clip = three_tone_clip();
    voice.play(clip.samples.clone(), Target::All, 1.0).wait();
    wait_quiet(&voice);
    let mode = voice.status().borrow().connections[0]
        .mode
        .unwrap_or("")
        .to_owned();
    voice.close();
    (sim, mode)
}

fn assert_whole_file_heard(sim: &Simulator) {
    // 3 s at 48 kHz is exactly 150 frames.
    let frames = sim.heard(guild(0)).audio_frames();
    assert!(
        (149..=151).contains(&frames),
        "heard {frames} audio frames, expected 150 ± 1"
    );
    assert_three_tones(sim, guild(0), 1.0 - 2.0 * FRAME, 1.0 + 2.0 * FRAME);
    assert_no_violations(sim);
}

#[test]
fn three_tones_over_aes_gcm() {
    let (sim, mode) =
        play_three_tones(&["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"]);
    assert_eq!(mode, "aead_aes256_gcm_rtpsize");
    assert_whole_file_heard(&sim);
}

#[test]
fn three_tones_over_xchacha_when_aes_is_not_offered() {
    let (sim, mode) =
        play_three_tones(&["aead_xchacha20_poly1305_rtpsize", "xsalsa20_poly1305_lite"]);
    assert_eq!(mode, "aead_xchacha20_poly1305_rtpsize");
    assert_whole_file_heard(&sim);
}

#[test]
fn legacy_mode_only_when_it_is_all_that_is_offered() {
    let (sim, mode) = play_three_tones(&["xsalsa20_poly1305_lite"]);
    assert_eq!(mode, "xsalsa20_poly1305_lite");
    assert_whole_file_heard(&sim);
}

#[test]
fn three_guilds_hear_the_whole_file() {
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
    voice.close();
    for i in 0..3 {
        let frames = sim.heard(guild(i)).audio_frames();
        assert!((149..=151).contains(&frames), "guild {i}: {frames} frames");
        assert_three_tones(&sim, guild(i), 1.0 - 2.0 * FRAME, 1.0 + 2.0 * FRAME);
    }
    assert_no_violations(&sim);
}

/// The connection card shows a websocket ping soon after joining, not one heartbeat interval
/// (13.75 s) later; the heartbeat is a valid v8 one (the simulator acknowledges only those).
#[test]
fn the_voice_ping_is_known_within_seconds_of_joining() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let status = wait_status(&voice, Duration::from_secs(4), |s| {
        s.connections
            .first()
            .is_some_and(|c| c.heartbeat_rtt.is_some())
    });
    voice.close();
    let rtt = status.connections.first().and_then(|c| c.heartbeat_rtt);
    assert!(
        rtt.is_some_and(|r| r < Duration::from_secs(1)),
        "{status:?}"
    );
    assert_no_violations(&sim);
}

#[test]
fn leaving_sends_voice_state_with_null_channel() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    let session = voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    assert!(voice.get_session(guild(0)).is_some());
    drop(session);
    voice.remove_session(guild(0));
    let left = sim.wait_for(Duration::from_secs(3), |events| {
        events.iter().any(|e| {
            matches!(
                e,
                SimEvent::VoiceStateRequest {
                    channel_id: None,
                    ..
                }
            )
        })
    });
    assert!(left, "no op 4 with channel_id null: {:#?}", sim.events());
    assert!(voice.get_session(guild(0)).is_none());
    voice.close();
}

#[test]
fn joining_a_text_channel_or_unknown_guild_fails_clearly() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    let text_channel = voice_channel(0) - 1;
    let err = voice
        .join_channel(guild(0), text_channel, false, false)
        .unwrap_err();
    assert!(err.to_string().contains("not a voice channel"), "{err}");
    let err = voice.join_channel(999, 1, false, false).unwrap_err();
    assert!(err.to_string().contains("unknown"), "{err}");
    voice.close();
}

#[test]
fn speaking_precedes_audio_and_silence_ends_it() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    // Two short sounds with a gap: two talk spurts, each ending in five silence frames.
    let half_second: std::sync::Arc<[f32]> = three_tone_clip().samples[..48_000].into();
    voice.play(half_second.clone(), Target::All, 1.0).wait();
    wait_quiet(&voice);
    voice.play(half_second, Target::All, 1.0).wait();
    wait_quiet(&voice);
    voice.close();
    let heard = sim.heard(guild(0));
    let silence = heard.frames.iter().filter(|f| f.silence).count();
    assert_eq!(silence, 10, "five silence frames per talk spurt");
    let speaking: Vec<u32> = sim
        .events()
        .iter()
        .filter_map(|e| match e {
            SimEvent::Speaking { speaking, .. } => Some(*speaking),
            _ => None,
        })
        .collect();
    assert_eq!(
        speaking,
        vec![0, 1, 0, 1, 0],
        "registration, then on/off per spurt"
    );
    assert_no_violations(&sim);
}

#[test]
fn opus_frames_written_to_a_session_are_heard_in_order() {
    use std::io::Write;
    use voxboard_audio::FRAME_LEN;
    use voxboard_audio::opus::{MAX_PACKET, OpusEncoder};

    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    let mut session = voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let clip = three_tone_clip();
    let mut encoder = OpusEncoder::new(64_000).unwrap();
    let mut packet = vec![0u8; MAX_PACKET];
    for frame in clip.samples.chunks_exact(FRAME_LEN) {
        let n = encoder.encode(frame, &mut packet).unwrap();
        // Paced by the session: each write is one 20 ms frame.
        session.write_all(&packet[..n]).unwrap();
    }
    wait_quiet(&voice);
    voice.close();
    let frames = sim.heard(guild(0)).audio_frames();
    assert_eq!(frames, 150, "every written frame arrives");
    assert_three_tones(&sim, guild(0), 1.0 - 2.0 * FRAME, 1.0 + 2.0 * FRAME);
    assert_no_violations(&sim);
}

#[test]
fn write_with_timeout_refuses_to_run_ahead_of_real_time() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    let mut session = voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let silence = voxboard_audio::opus::SILENCE_FRAME;
    // The session lets a writer get about 100 ms (five frames) ahead, then asks it to wait.
    let accepted = (0..20)
        .take_while(|_| session.write_opus_timeout(&silence, Duration::ZERO).is_ok())
        .count();
    assert!(
        (4..=6).contains(&accepted),
        "accepted {accepted} frames without waiting"
    );
    let err = session
        .write_opus_timeout(&silence, Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(
        session
            .write_opus_timeout(&silence, Duration::from_millis(200))
            .is_ok()
    );
    voice.close();
}

/// Two guilds hearing different sounds at once: two distinct mixes, each with its own encoder,
/// and neither guild hears the other's sound.
#[test]
fn targeted_sounds_reach_only_their_guilds() {
    use voxboard_audio::analysis::dominant_frequency;
    let sim = Simulator::start(SimConfig::with_guilds(2)).unwrap();
    let voice = connect(&sim);
    for i in 0..2 {
        voice
            .join_channel(guild(i), voice_channel(i), false, false)
            .unwrap();
    }
    let a = voice.play(
        sine_clip(500.0, 0.4, 1.0),
        Target::Guilds(vec![guild(0)]),
        1.0,
    );
    let b = voice.play(
        sine_clip(1200.0, 0.4, 1.0),
        Target::Guilds(vec![guild(1)]),
        1.0,
    );
    a.wait();
    b.wait();
    wait_quiet(&voice);
    voice.close();
    for (i, expected) in [(0, 500.0), (1, 1200.0)] {
        let pcm = sim.heard(guild(i)).pcm_mono();
        assert!(pcm.len() >= 47_000, "guild {i} heard {} samples", pcm.len());
        let f = dominant_frequency(&pcm, 48_000, 100.0, 5_000.0);
        assert!(
            (f - expected).abs() < 2.0,
            "guild {i} heard {f} Hz, expected {expected}"
        );
        let other = if i == 0 { 1200.0 } else { 500.0 };
        let leak = voxboard_audio::analysis::goertzel_power(&pcm, 48_000, other);
        let own = voxboard_audio::analysis::goertzel_power(&pcm, 48_000, expected);
        assert!(
            leak < own * 1e-3,
            "guild {i} hears the other guild's sound: {leak} vs {own}"
        );
    }
    assert_no_violations(&sim);
}

/// The app joins its saved channels before the gateway is ready: a bad one still fails clearly
/// (once the guilds are known), a good one connects.
#[test]
fn joins_sent_before_ready_are_checked_when_the_guilds_arrive() {
    use voxboard_voice::discord::ws::Token;
    use voxboard_voice::engine::{Command, EngineHandle, VoiceConfig};
    let sim = Simulator::start(SimConfig::with_guilds(2)).unwrap();
    let mut config = VoiceConfig::new(Token::new(SimConfig::TEST_TOKEN));
    config.gateway_url = sim.gateway_url();
    let engine = EngineHandle::start(config).unwrap();
    let (bad, bad_reply) = std::sync::mpsc::channel();
    let (good, good_reply) = std::sync::mpsc::channel();
    let join = |guild_id, channel_id, reply| Command::Join {
        guild_id,
        channel_id,
        self_mute: false,
        self_deaf: false,
        reply: Some(reply),
    };
    engine.send(join(guild(0), voice_channel(0) - 1, bad));
    engine.send(join(guild(1), voice_channel(1), good));
    let err = bad_reply
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("not a voice channel"), "{err}");
    good_reply
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    engine.shutdown(Duration::from_secs(2));
}

/// The `wss://` path real Discord uses, main and voice gateway alike (rustls, the crypto
/// provider, server names for IP endpoints): with the simulator's certificate trusted, the
/// three tones are heard as over plain `ws://`.
#[test]
fn three_tones_over_wss() {
    let (sim, cert) = tls_sim();
    let cert = cert.der;
    assert!(sim.gateway_url().starts_with("wss://127.0.0.1:"));
    let mut config = VoiceConfig::new(Token::new(SimConfig::TEST_TOKEN));
    config.gateway_url = sim.gateway_url();
    config.tls = TlsTrust::with_extra_roots([cert]).unwrap();
    let voice = Voice::connect(config).expect("connect over wss://");
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    voice
        .play(three_tone_clip().samples, Target::All, 1.0)
        .wait();
    wait_quiet(&voice);
    voice.close();
    assert_three_tones(&sim, guild(0), 1.0 - FRAME, 1.0 + FRAME);
    assert_no_violations(&sim);
}

/// A gateway whose certificate is not trusted is never talked to, and the user is told why:
/// the connect error (and the status while retrying) names the certificate problem.
#[test]
fn an_untrusted_certificate_is_refused_and_named() {
    let (sim, _) = tls_sim();
    let mut config = VoiceConfig::new(Token::new(SimConfig::TEST_TOKEN));
    config.gateway_url = sim.gateway_url();
    config.connect_timeout = Duration::from_secs(2);
    let err = match Voice::connect(config) {
        Ok(_) => panic!("connected to a gateway with an untrusted certificate"),
        Err(e) => e.to_string(),
    };
    println!("as the user sees it: {err}");
    assert!(
        err.contains("did not become ready") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(
        !sim.events()
            .iter()
            .any(|e| matches!(e, SimEvent::MainConnected { .. })),
        "no websocket was opened"
    );
}
