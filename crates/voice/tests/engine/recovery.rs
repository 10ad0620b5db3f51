//! Staying connected: each fault is injected one second into the audio; the file must still be
//! heard whole and the right recovery path (resume, rejoin, move) must have been taken.

use std::time::Duration;

use crate::common::*;
use voxboard_sim::{SimConfig, SimEvent, Simulator};
use voxboard_voice::discord::ws::{TlsTrust, Token};
use voxboard_voice::engine::{Phase, PlaybackHandle, Target, Voice, VoiceConfig};

/// One guild joined and the three tones one second in: where each fault is injected.
fn one_second_into_the_tones() -> (Simulator, Voice, PlaybackHandle) {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let playing = voice.play(three_tone_clip().samples, Target::All, 1.0);
    std::thread::sleep(Duration::from_secs(1));
    (sim, voice, playing)
}

/// Plays the three tones, injecting `fault` one second in; returns the simulator to inspect.
fn play_with_fault(fault: impl FnOnce(&Simulator)) -> Simulator {
    let (sim, voice, playing) = one_second_into_the_tones();
    fault(&sim);
    assert!(
        playing.wait_timeout(Duration::from_secs(20)),
        "playback never finished"
    );
    wait_quiet(&voice);
    voice.close();
    sim
}

fn count(sim: &Simulator, pred: impl Fn(&SimEvent) -> bool) -> usize {
    sim.events().iter().filter(|e| pred(e)).count()
}

fn identifies(sim: &Simulator) -> usize {
    count(sim, |e| matches!(e, SimEvent::VoiceIdentify { .. }))
}

fn resumes(sim: &Simulator) -> usize {
    count(sim, |e| matches!(e, SimEvent::VoiceResume { .. }))
}

/// Every tone must be there; the one cut by a reconnect may be short by the outage.
fn assert_heard_whole(sim: &Simulator) {
    assert_three_tones(sim, guild(0), 0.75, 1.1);
}

#[test]
fn voice_socket_drop_resumes_with_seq_ack() {
    let sim = play_with_fault(|sim| sim.drop_voice(guild(0)));
    assert_heard_whole(&sim);
    assert_eq!(identifies(&sim), 1, "a drop must resume, not re-identify");
    assert_eq!(resumes(&sim), 1);
    let resumed_ok = count(&sim, |e| matches!(e, SimEvent::VoiceResumed { .. }));
    assert_eq!(
        resumed_ok,
        1,
        "the simulator accepted the resume: {:#?}",
        sim.events()
    );
    // The resumed socket is told we speak before the audio goes on.
    let events = sim.events();
    let resumed_at = events
        .iter()
        .position(|e| matches!(e, SimEvent::VoiceResumed { .. }))
        .unwrap();
    let speaking_again = events[resumed_at..]
        .iter()
        .any(|e| matches!(e, SimEvent::Speaking { speaking, .. } if *speaking != 0));
    assert!(speaking_again, "no op 5 after the resume: {events:#?}");
    assert_no_violations(&sim);
}

#[test]
fn close_4015_resumes() {
    let sim = play_with_fault(|sim| sim.close_voice(guild(0), 4015));
    assert_heard_whole(&sim);
    assert_eq!(identifies(&sim), 1);
    assert_eq!(resumes(&sim), 1);
    assert_no_violations(&sim);
}

/// A voice server restarting closes with 1001, and its sessions end with it (as 1000): the
/// engine rejoins through the main gateway and the rest of the sound is heard. It used to stop
/// for good and lose the rest.
#[test]
fn close_1001_rejoins_and_the_sound_goes_on() {
    let sim = play_with_fault(|sim| sim.close_voice(guild(0), 1001));
    assert_heard_whole(&sim);
    assert_eq!(resumes(&sim), 0, "the session ended with the server");
    assert_eq!(identifies(&sim), 2, "a fresh Identify after the rejoin");
    assert_no_violations(&sim);
}

#[test]
fn close_4006_rejoins_through_the_main_gateway() {
    let sim = play_with_fault(|sim| sim.close_voice(guild(0), 4006));
    assert_heard_whole(&sim);
    assert_eq!(resumes(&sim), 0, "4006 cannot be resumed");
    assert_eq!(identifies(&sim), 2);
    let joins = count(&sim, |e| {
        matches!(
            e,
            SimEvent::VoiceStateRequest {
                channel_id: Some(_),
                ..
            }
        )
    });
    assert_eq!(joins, 2, "a second op 4");
    // The bot never left the channel, so Discord (and the simulator) answers the second op 4
    // with a VOICE_SERVER_UPDATE alone: the engine must not wait for a voice state update.
    let state_updates = count(&sim, |e| {
        matches!(
            e,
            SimEvent::VoiceStateUpdate {
                channel_id: Some(_),
                ..
            }
        )
    });
    let server_updates = count(&sim, |e| matches!(e, SimEvent::VoiceServerUpdate { .. }));
    assert_eq!((state_updates, server_updates), (1, 2));
    assert_no_violations(&sim);
}

#[test]
fn close_4009_rejoins() {
    let sim = play_with_fault(|sim| sim.close_voice(guild(0), 4009));
    assert_heard_whole(&sim);
    assert_eq!(resumes(&sim), 0);
    assert_eq!(identifies(&sim), 2);
    assert_no_violations(&sim);
}

#[test]
fn region_move_identifies_on_the_new_server() {
    let sim = play_with_fault(|sim| sim.move_voice_server(guild(0)));
    assert_heard_whole(&sim);
    assert_eq!(
        identifies(&sim),
        2,
        "a new server update means a fresh Identify"
    );
    assert_eq!(resumes(&sim), 0);
    assert_no_violations(&sim);
}

#[test]
fn main_gateway_reconnect_resumes_without_touching_voice() {
    let sim = play_with_fault(|sim| sim.main_reconnect());
    assert_heard_whole(&sim);
    assert!(count(&sim, |e| matches!(e, SimEvent::MainResume { .. })) >= 1);
    assert_eq!(identifies(&sim), 1);
    assert_no_violations(&sim);
}

#[test]
fn main_gateway_resumable_invalid_session_resumes_without_touching_voice() {
    let sim = play_with_fault(|sim| sim.main_invalidate(true));
    assert_heard_whole(&sim);
    assert!(count(&sim, |e| matches!(e, SimEvent::MainResume { .. })) >= 1);
    assert_eq!(
        count(&sim, |e| matches!(e, SimEvent::MainIdentify { .. })),
        1
    );
    assert_eq!(identifies(&sim), 1);
    assert_no_violations(&sim);
}

/// op 9 `d:false` ends the main session; Discord then ends its voice sessions too (4014), so
/// the engine re-identifies and joins again, and the sound waits for it rather than being lost.
#[test]
fn main_gateway_invalid_session_reidentifies_and_rejoins_voice() {
    let sim = play_with_fault(|sim| sim.main_invalidate(false));
    assert_heard_whole(&sim);
    assert_eq!(
        count(&sim, |e| matches!(e, SimEvent::MainIdentify { .. })),
        2
    );
    assert_eq!(
        identifies(&sim),
        2,
        "voice joined again on the new main session"
    );
    assert_no_violations(&sim);
}

/// A main gateway outage longer than the 4014 grace: Discord ends the voice session with the
/// main one, and nothing can explain that close until the gateway is back. The connection waits
/// for the new session and joins again; the sound playing meanwhile is finished, not lost.
/// (The soak found this: a connection failed for good after a 4014 while READY was late.)
#[test]
fn a_main_gateway_outage_past_the_4014_grace_rejoins_when_the_gateway_is_back() {
    let (sim, voice, playing) = one_second_into_the_tones();
    sim.main_outage(Duration::from_secs(12));
    assert!(
        sim.wait_for(Duration::from_secs(10), |e| e
            .contains(&SimEvent::MainRefused)),
        "the engine tried the main gateway during the outage"
    );
    assert!(
        playing.wait_timeout(Duration::from_secs(60)),
        "playback never finished"
    );
    wait_quiet(&voice);
    let status = voice.status().borrow().clone();
    voice.close();
    assert_eq!(status.connections[0].phase, Phase::Ready, "{status:?}");
    assert_heard_whole(&sim);
    assert_eq!(
        count(&sim, |e| matches!(e, SimEvent::MainIdentify { .. })),
        2,
        "a new main session after the outage"
    );
    assert_eq!(identifies(&sim), 2, "voice joined again on the new session");
    assert_no_violations(&sim);
}

#[test]
fn main_gateway_drop_resumes() {
    let sim = play_with_fault(|sim| sim.drop_main());
    assert_heard_whole(&sim);
    assert!(count(&sim, |e| matches!(e, SimEvent::MainResume { .. })) >= 1);
    assert_eq!(identifies(&sim), 1);
    assert_no_violations(&sim);
}

#[test]
fn kick_stops_for_good() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let playing = voice.play(three_tone_clip().samples, Target::All, 1.0);
    let errors = voice.errors();
    std::thread::sleep(Duration::from_millis(500));
    sim.kick(guild(0));
    let (guild_id, error) = errors
        .recv_timeout(Duration::from_secs(5))
        .expect("the error stream reports the kick");
    assert_eq!(
        (guild_id, error),
        (guild(0), voxboard_voice::engine::VoiceError::Kicked)
    );
    assert!(
        playing.wait_timeout(Duration::from_secs(5)),
        "a kicked connection must end its sounds"
    );
    let status = wait_status(&voice, Duration::from_secs(1), |s| {
        s.connections[0].phase == Phase::Failed
    });
    assert_eq!(status.connections[0].phase, Phase::Failed);
    assert!(
        status.connections[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("disconnected from the voice channel by someone")
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(identifies(&sim), 1, "never auto-rejoin after a kick");
    voice.close();
}

/// A network blip long enough for Discord to drop the bot from the channel: the voice state
/// with no channel arrives (with the main gateway's resume) while the voice side is already
/// reconnecting, with no 4014 before it. That is not a kick: the bot joins again, the card says
/// what happened, and the sound goes on.
#[test]
fn a_network_blip_that_drops_the_bot_from_the_channel_is_not_a_kick() {
    let sim = play_with_fault(|sim| sim.network_blip(guild(0)));
    assert_heard_whole(&sim);
    // In the channel, out (the blip), in again, and out at the end (the test's own leave).
    let channels: Vec<bool> = sim
        .events()
        .iter()
        .filter_map(|e| match e {
            SimEvent::VoiceStateUpdate { channel_id, .. } => Some(channel_id.is_some()),
            _ => None,
        })
        .collect();
    assert_eq!(channels, [true, false, true, false]);
    assert!(
        count(&sim, |e| matches!(e, SimEvent::MainResume { .. })) >= 1,
        "the update came with the main gateway's resume"
    );
    assert_eq!(identifies(&sim), 2, "joined again on a new voice session");
}

/// The card after a blip says what happened, and the connection is ready again.
#[test]
fn after_a_network_blip_the_card_says_the_bot_was_dropped_and_joined_again() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    sim.network_blip(guild(0));
    let status = wait_status(&voice, Duration::from_secs(30), |s| {
        s.connections[0].phase == Phase::Ready && s.connections[0].last_error.is_some()
    });
    voice.close();
    let card = &status.connections[0];
    assert_eq!(card.phase, Phase::Ready, "{status:?}");
    assert!(
        card.last_error
            .as_deref()
            .is_some_and(|e| e.contains("dropped the bot from the channel")),
        "{card:?}"
    );
}

/// Discord reallocating the voice server: `endpoint: null` first, the new server a bit later.
#[test]
fn null_endpoint_waits_for_the_reallocated_server() {
    let sim =
        play_with_fault(|sim| sim.reallocate_voice_server(guild(0), Duration::from_millis(300)));
    assert_heard_whole(&sim);
    assert_eq!(identifies(&sim), 2, "a fresh Identify on the new server");
    assert_eq!(resumes(&sim), 0);
    assert_no_violations(&sim);
}

/// `endpoint: null` and no new server for longer than the join timeout: a connection that was up
/// says it is waiting, asks again rather than failing, and the sound goes on once a server comes.
#[test]
fn a_reallocation_slower_than_the_join_timeout_is_waited_out() {
    let (sim, voice, playing) = one_second_into_the_tones();
    sim.reallocate_voice_server(guild(0), Duration::from_secs(14));
    let waiting = wait_status(&voice, Duration::from_secs(5), |s| {
        s.connections[0].last_error.is_some()
    });
    assert!(
        waiting.connections[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("moving this call to another voice server")),
        "{waiting:?}"
    );
    assert!(
        playing.wait_timeout(Duration::from_secs(60)),
        "playback never finished"
    );
    wait_quiet(&voice);
    let status = voice.status().borrow().clone();
    voice.close();
    assert_eq!(status.connections[0].phase, Phase::Ready, "{status:?}");
    assert_heard_whole(&sim);
    assert_no_violations(&sim);
}

/// A VOICE_SERVER_UPDATE names a server that refuses connections: the engine says why on the
/// connection card, rejoins through the main gateway, gets a working server and the file is still
/// heard whole.
#[test]
fn an_unreachable_voice_server_is_reported_and_rejoined() {
    let (sim, voice, playing) = one_second_into_the_tones();
    sim.announce_unreachable_voice_server(guild(0));
    let trouble = wait_status(&voice, Duration::from_secs(5), |s| {
        s.connections
            .first()
            .is_some_and(|c| c.last_error.is_some())
    });
    assert!(
        playing.wait_timeout(Duration::from_secs(20)),
        "playback never finished"
    );
    wait_quiet(&voice);
    let status = voice.status().borrow().clone();
    voice.close();
    let problem = trouble.connections[0]
        .last_error
        .clone()
        .unwrap_or_default();
    println!("the card said: {problem}");
    assert!(
        problem.contains("voice server") && problem.contains("refused"),
        "{problem}"
    );
    assert_eq!(status.connections[0].phase, Phase::Ready, "{status:?}");
    assert_eq!(
        identifies(&sim),
        2,
        "a fresh Identify on the working server"
    );
    assert_heard_whole(&sim);
    assert_no_violations(&sim);
}

/// A voice server that accepts the websocket and then says nothing (no Hello): the engine gives
/// it up after the handshake deadline, says so on the card, and joins again; the join the
/// caller is waiting for succeeds and the sound is heard whole.
#[test]
fn a_silent_voice_server_is_abandoned_and_joined_again() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    sim.silence_voice_server(guild(0), 1);
    let voice = connect(&sim);
    let started = std::time::Instant::now();
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .expect("the second attempt joins");
    let took = started.elapsed();
    let problem = voice.status().borrow().connections[0]
        .last_error
        .clone()
        .unwrap_or_default();
    println!("joined after {took:?}; the card said: {problem}");
    assert!(problem.contains("did not answer"), "{problem}");
    assert!(took < Duration::from_secs(8), "joined after {took:?}");
    let playing = voice.play(three_tone_clip().samples, Target::All, 1.0);
    assert!(playing.wait_timeout(Duration::from_secs(10)));
    wait_quiet(&voice);
    voice.close();
    assert_three_tones(&sim, guild(0), 0.95, 1.05);
    assert_eq!(
        identifies(&sim),
        1,
        "the silent server never got an Identify answered"
    );
    assert_no_violations(&sim);
}

/// READY lists a guild that stays unavailable (a Discord outage): the engine goes on without it
/// after a short wait, the guild that is fine plays, and a join into the missing one says why.
#[test]
fn an_unavailable_guild_does_not_hold_up_the_others() {
    let mut config = SimConfig::with_guilds(2);
    config.guilds[1].unavailable = true;
    let sim = Simulator::start(config).unwrap();
    let started = std::time::Instant::now();
    let voice = connect(&sim);
    let ready_after = started.elapsed();
    assert!(
        ready_after < Duration::from_secs(4),
        "ready after {ready_after:?}"
    );
    let err = voice
        .join_channel(guild(1), voice_channel(1), false, false)
        .expect_err("a guild in an outage cannot be joined");
    assert!(err.to_string().contains("unavailable"), "{err}");
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let playing = voice.play(three_tone_clip().samples, Target::All, 1.0);
    assert!(playing.wait_timeout(Duration::from_secs(10)));
    wait_quiet(&voice);
    voice.close();
    assert_three_tones(&sim, guild(0), 0.95, 1.05);
    assert_no_violations(&sim);
}

/// READY names a plain `ws://` loopback resume URL for a session on `wss://`: a downgrade, so it
/// is ignored and after a dropped connection the engine resumes on the `wss://` URL it started
/// on; nothing ever connects to the plain port (it would have carried the token in clear).
#[test]
fn a_plain_resume_url_under_wss_is_ignored_and_the_session_resumes_on_wss() {
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let mut config = SimConfig::with_guilds(1);
    let cert = config.serve_self_signed_tls().unwrap().der;
    config.resume_gateway_url = Some(format!("ws://{}", trap.local_addr().unwrap()));
    let sim = Simulator::start(config).unwrap();
    let mut engine = VoiceConfig::new(Token::new(SimConfig::TEST_TOKEN));
    engine.gateway_url = sim.gateway_url();
    engine.tls = TlsTrust::with_extra_roots([cert]).unwrap();
    let voice = Voice::connect(engine).expect("connect over wss://");
    sim.drop_main();
    let resumed = sim.wait_for(Duration::from_secs(15), |events| {
        events
            .iter()
            .any(|e| matches!(e, SimEvent::MainResumed { .. }))
    });
    assert!(resumed, "no resume on the wss:// URL: {:#?}", sim.events());
    let knocked = trap.accept().map(|(_, from)| from);
    assert!(
        knocked
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "the engine connected to the plain resume URL: {knocked:?}"
    );
    voice.close();
    assert_no_violations(&sim);
}

/// A bug that panics in a tick must not end the engine: it is rebuilt, says so in words, joins
/// its channel again, and the next sound is heard.
#[test]
fn a_panic_in_the_engine_is_survived_reported_and_rejoined() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let cut = voice.play(sine_clip(330.0, 0.3, 4.0), Target::All, 1.0);
    std::thread::sleep(Duration::from_millis(500));
    voice.command(voxboard_voice::engine::Command::InjectPanic);
    // Generous: the guard is that the caller is answered at all, not how fast (a loaded CI
    // machine once took over 2 s to rebuild the world).
    assert!(
        cut.wait_timeout(Duration::from_secs(15)),
        "a sound lost in the restart still ends for its caller"
    );
    let back = wait_status(&voice, Duration::from_secs(30), |s| {
        s.engine_restarts == 1
            && s.connections
                .first()
                .is_some_and(|c| c.phase == Phase::Ready)
    });
    assert_eq!(back.engine_restarts, 1, "{back:?}");
    let said = back.engine_error.clone().unwrap_or_default();
    assert!(
        said.contains("internal error") && said.contains("injected by a test"),
        "{said}"
    );
    assert_eq!(back.connections[0].phase, Phase::Ready, "{back:?}");
    let before = sim.heard(guild(0)).audio_frames();
    let playing = voice.play(three_tone_clip().samples, Target::All, 1.0);
    assert!(playing.wait_timeout(Duration::from_secs(10)));
    wait_quiet(&voice);
    voice.close();
    assert!(
        sim.heard(guild(0)).audio_frames() >= before + 140,
        "the sound after the restart was heard"
    );
    let tones = heard_tones(&sim, guild(0));
    let freqs: Vec<f32> = tones.iter().map(|t| t.0).collect();
    assert!(freqs.ends_with(&TONES), "heard {tones:?}");
    // The sound cut by the crash ended without its silence tail; nothing else may be wrong.
    let other: Vec<_> = sim
        .violations()
        .into_iter()
        .filter(|v| v.rule != "rtp.silence_tail")
        .collect();
    assert!(other.is_empty(), "{other:#?}");
}
