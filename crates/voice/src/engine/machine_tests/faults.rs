//! Voice servers that fail: closes by code, servers that accept and say nothing, handshakes
//! that stop halfway, servers that fail over and over.

use std::time::Duration;

use super::harness::*;
use crate::discord::voice_gateway::VoiceEvent;
use crate::discord::voice_gateway::payloads::Ready;
use crate::engine::VoiceError;
use crate::engine::components::{ConnPhase, HANDSHAKE_TIMEOUT};

/// The first rejoin waits 50 ms plus up to 250 ms of jitter; one tick more to send it.
const FIRST_BACKOFF_MAX: Duration = Duration::from_millis(320);
/// The bound: a recoverable fault is back to audio within 3 s.
const BACK_TO_AUDIO: Duration = Duration::from_secs(3);

/// 4006: the session is gone. The rejoin's op 4 names the channel the bot is still in, so
/// Discord answers with a VOICE_SERVER_UPDATE only (its voice state did not change): that
/// alone must lead to Identify, with the new token.
#[test]
fn a_4006_rejoins_and_a_server_update_alone_is_enough() {
    let mut m = Machine::in_call();
    let fault = m.now;
    m.voice_closed(Some(4006));
    let (waited, asked) = m.wait_for_request(BACK_TO_AUDIO);
    assert_eq!(
        asked,
        [Asked::VoiceState {
            channel: Some(VOICE)
        }]
    );
    assert!(waited <= FIRST_BACKOFF_MAX, "op 4 after {waited:?}");
    m.gateway(voice_server("token-2"));
    assert_eq!(m.asked(), [identify("token-2")]);
    m.answer_handshake();
    assert!(m.now - fault <= BACK_TO_AUDIO, "{:?}", m.now - fault);
    assert_eq!(m.card().rejoins, 1);
}

/// 1000 and 1001 (a voice server restarting) end the session but not the user's wish to be
/// there: join again, never stop with the rest of the sound lost.
#[test]
fn a_1000_or_1001_close_joins_again() {
    for code in [1000, 1001] {
        let mut m = Machine::in_call();
        m.voice_closed(Some(code));
        let (waited, asked) = m.wait_for_request(BACK_TO_AUDIO);
        assert_eq!(
            asked,
            [Asked::VoiceState {
                channel: Some(VOICE)
            }],
            "close {code}"
        );
        assert!(
            waited <= FIRST_BACKOFF_MAX,
            "close {code}: op 4 after {waited:?}"
        );
        m.gateway(voice_server("token-2"));
        assert_eq!(m.asked(), [identify("token-2")], "close {code}");
        m.answer_handshake();
        assert_eq!(m.card().last_close, Some(code));
    }
}

/// A dropped socket, an abnormal close and 4015 (the voice server crashed) keep the session:
/// resume at once with the last seq, and announce speaking again on the new socket.
#[test]
fn transport_failures_resume_at_once_and_speak_again() {
    for code in [None, Some(1006), Some(4015)] {
        let mut m = Machine::in_call();
        m.voice_closed(code);
        m.tick();
        assert_eq!(m.asked(), [Asked::Resume { seq_ack: 12 }], "close {code:?}");
        m.voice(VoiceEvent::Resumed);
        assert_eq!(m.phase(), ConnPhase::Ready, "close {code:?}");
        assert!(m.speaking().reassert, "op 5 goes out again after a resume");
        assert_eq!(m.card().resumes, 1);
    }
}

/// A voice server that takes the websocket and then says nothing is abandoned after the
/// handshake deadline, with the reason on the card, and the next attempt made.
#[test]
fn a_silent_voice_server_is_abandoned_within_5_s() {
    let mut m = Machine::identifying();
    let opened = m.now;
    m.voice(VoiceEvent::Connected);
    m.advance(HANDSHAKE_TIMEOUT - Duration::from_millis(100));
    assert_eq!(m.asked(), [], "gave up before the deadline");
    assert_eq!(m.phase(), ConnPhase::Connecting);
    let (_, asked) = m.wait_for_request(Duration::from_secs(2));
    assert_eq!(
        asked,
        [Asked::VoiceState {
            channel: Some(VOICE)
        }]
    );
    let gave_up = m.now - opened;
    assert!(
        gave_up <= HANDSHAKE_TIMEOUT + FIRST_BACKOFF_MAX,
        "next attempt {gave_up:?} after the socket opened"
    );
    m.assert_card_error("did not answer within 5 s");
    m.gateway(voice_server("token-2"));
    assert_eq!(m.asked(), [identify("token-2")]);
    m.answer_handshake();
}

/// The same deadline covers a handshake that stops halfway (no answer to IP discovery) and a
/// resume the server never confirms.
#[test]
fn a_handshake_or_resume_that_stops_halfway_is_abandoned() {
    let mut m = Machine::identifying();
    m.voice(VoiceEvent::Ready(Ready {
        ssrc: 7,
        ip: "192.0.2.1".into(),
        port: 50_000,
        modes: vec!["aead_aes256_gcm_rtpsize".into()],
    }));
    assert_eq!(m.asked(), [Asked::Discover]);
    expect_rejoin_by_the_deadline(&mut m);

    let mut m = Machine::in_call();
    m.voice_closed(None);
    m.tick();
    assert_eq!(m.asked(), [Asked::Resume { seq_ack: 12 }]);
    expect_rejoin_by_the_deadline(&mut m);
}

/// A Ready naming a media address that is not an IP is a broken server: join again, say why.
#[test]
fn a_ready_with_a_bad_media_address_rejoins() {
    let mut m = Machine::identifying();
    m.voice(VoiceEvent::Ready(Ready {
        ssrc: 7,
        ip: "not an address".into(),
        port: 50_000,
        modes: vec!["aead_aes256_gcm_rtpsize".into()],
    }));
    let (_, asked) = m.wait_for_request(Duration::from_secs(1));
    assert_eq!(
        asked,
        [Asked::VoiceState {
            channel: Some(VOICE)
        }]
    );
    m.assert_card_error("bad media address");
}

/// A server that fails again right after each recovery is not hammered: every rejoin counts,
/// and a success does not wipe the count (only healthy minutes do).
#[test]
fn a_flapping_server_keeps_its_backoff_until_healthy_minutes_pass() {
    let mut m = Machine::in_call();
    for round in 1..=3 {
        m.voice_closed(Some(4006));
        let (_, asked) = m.wait_for_request(Duration::from_secs(30));
        assert_eq!(
            asked,
            [Asked::VoiceState {
                channel: Some(VOICE)
            }],
            "round {round}"
        );
        m.gateway(voice_server("token-again"));
        assert_eq!(m.asked(), [identify("token-again")]);
        m.answer_handshake();
        assert_eq!(m.flaps(), round, "a success must not reset the count");
    }
    m.advance(Duration::from_secs(61));
    assert_eq!(m.flaps(), 2, "one healthy minute forgives one rejoin");
}

/// 4017 (E2EE required) cannot be fixed by trying again: the connection fails with the reason
/// and the bot leaves the channel (op 4 with no channel) instead of lingering there silent.
#[test]
fn e2ee_required_fails_and_leaves_the_channel() {
    let mut m = Machine::in_call();
    m.voice_closed(Some(4017));
    assert_eq!(
        m.phase(),
        ConnPhase::Failed {
            error: VoiceError::E2eeRequired
        }
    );
    assert_eq!(m.asked(), [Asked::VoiceState { channel: None }]);
    m.advance(Duration::from_secs(30));
    assert_eq!(m.asked(), [], "nothing more after a permanent failure");
}

/// The next request is the rejoin's op 4, no later than the handshake deadline and the first
/// backoff.
fn expect_rejoin_by_the_deadline(m: &mut Machine) {
    let (waited, asked) = m.wait_for_request(Duration::from_secs(10));
    assert_eq!(
        asked,
        [Asked::VoiceState {
            channel: Some(VOICE)
        }]
    );
    assert!(
        waited <= HANDSHAKE_TIMEOUT + FIRST_BACKOFF_MAX,
        "{waited:?}"
    );
}
