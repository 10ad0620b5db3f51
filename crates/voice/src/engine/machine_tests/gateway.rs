//! What the main gateway tells a connection: kicks and network blips, moves, reallocated
//! servers, another client taking the bot, new sessions, guilds and channels that come and go,
//! stages.

use std::time::Duration;

use super::harness::*;
use crate::discord::gateway::GatewayEvent;
use crate::discord::gateway::payloads::{Channel, ChannelKind, VoiceServer};
use crate::discord::rest::SpeakOutcome;
use crate::discord::ws::Token;
use crate::engine::components::ConnPhase;
use crate::engine::{Command, GUILD_WAIT, VoiceError};

/// A moderator's disconnect closes the live socket with 4014, then the voice state loses its
/// channel: that is a kick, and a kick is never undone by the bot.
#[test]
fn a_kick_is_never_rejoined() {
    let mut m = Machine::in_call();
    m.voice_closed(Some(4014));
    assert!(matches!(m.phase(), ConnPhase::AwaitingMainGateway { .. }));
    assert_eq!(m.asked(), []);
    m.gateway(our_voice_state(None));
    assert_eq!(
        m.phase(),
        ConnPhase::Failed {
            error: VoiceError::Kicked
        }
    );
    m.advance(Duration::from_secs(30));
    assert_eq!(m.asked(), [], "no rejoin and no leave after a kick");
    let card = m.card();
    assert!(
        card.reason
            .as_deref()
            .is_some_and(|r| r.contains("by someone in the server")),
        "{card:?}"
    );
}

/// A socket lost without a 4014 (a network blip), then Discord timing the bot out of the
/// channel: not a kick. Join again, and say on the card what happened.
#[test]
fn a_network_blip_is_not_a_kick() {
    let mut m = Machine::in_call();
    m.voice_closed(None);
    m.tick();
    assert_eq!(m.asked(), [Asked::Resume { seq_ack: 12 }]);
    m.gateway(our_voice_state(None));
    assert_eq!(
        m.asked(),
        [Asked::VoiceState {
            channel: Some(VOICE)
        }]
    );
    m.assert_card_error("while its connection was down");
    // The bot was out of the channel: this join is a new one, both dispatches come.
    m.gateway(our_voice_state(Some(VOICE)));
    m.gateway(voice_server("token-2"));
    assert_eq!(m.asked(), [identify("token-2")]);
    m.answer_handshake();
}

/// A 4014 that was a move: the voice state names the new channel, and the new server's token
/// (not the old one) is used.
#[test]
fn a_4014_that_was_a_move_follows_the_bot() {
    let mut m = Machine::in_call();
    m.voice_closed(Some(4014));
    m.gateway(our_voice_state(Some(OTHER_VOICE)));
    assert_eq!(m.asked(), [], "no Identify with the old server's token");
    m.gateway(voice_server("token-2"));
    assert_eq!(m.asked(), [identify("token-2")]);
    m.answer_handshake();
    assert_eq!(m.card().channel_id, OTHER_VOICE);
}

/// Switching channel from the app: the old server's token is spent the moment op 4 leaves.
#[test]
fn switching_channel_waits_for_the_new_servers_token() {
    let mut m = Machine::in_call();
    let _reply = m.join(OTHER_VOICE);
    assert_eq!(
        m.asked(),
        [Asked::VoiceState {
            channel: Some(OTHER_VOICE)
        }]
    );
    m.gateway(our_voice_state(Some(OTHER_VOICE)));
    assert_eq!(m.asked(), [], "Identify waits for the new server");
    m.gateway(voice_server("token-2"));
    assert_eq!(m.asked(), [identify("token-2")]);
    m.answer_handshake();
}

/// `endpoint: null`: Discord is moving the call to another voice server and sends the real
/// endpoint later. Wait for it (saying so), do not fail.
#[test]
fn a_null_endpoint_waits_for_the_real_one() {
    let mut m = Machine::in_call();
    m.gateway(GatewayEvent::VoiceServer(VoiceServer {
        guild_id: GUILD,
        token: Token::new("token-2"),
        endpoint: None,
    }));
    assert!(matches!(m.phase(), ConnPhase::AwaitingServer { .. }));
    m.advance(Duration::from_secs(8));
    assert_eq!(m.asked(), []);
    m.assert_card_error("moving this call to another voice server");
    m.gateway(voice_server("token-3"));
    assert_eq!(m.asked(), [identify("token-3")]);
    m.answer_handshake();
    assert_eq!(m.card().moves, 0, "a reallocation is not counted as a move");
}

/// A voice state for our bot from another gateway session: someone else runs the bot (a
/// second Voxboard, `play` on another PC). Say so and do not fight over it.
#[test]
fn another_client_taking_the_bot_is_said_not_fought() {
    let mut m = Machine::in_call();
    m.gateway(voice_state(Some(VOICE), "someone-elses-session", false));
    assert_eq!(
        m.phase(),
        ConnPhase::Failed {
            error: VoiceError::TakenOver
        }
    );
    m.advance(Duration::from_secs(30));
    assert_eq!(
        m.asked(),
        [],
        "no rejoin and no leave: the channel is theirs now"
    );
}

/// A new main session (not a resume) drops every voice state: each connection joins again and
/// waits for both dispatches, then Identifies with the new session id.
#[test]
fn a_new_main_session_joins_every_connection_again() {
    let mut m = Machine::in_call();
    m.gateway(GatewayEvent::Reconnecting {
        code: Some(4009),
        resume: false,
        error: None,
    });
    m.gateway(GatewayEvent::Ready {
        user_id: USER,
        session_id: "main-2".into(),
        guild_ids: vec![GUILD],
    });
    assert_eq!(
        m.asked(),
        [Asked::VoiceState {
            channel: Some(VOICE)
        }]
    );
    m.gateway(voice_server("token-2"));
    assert_eq!(m.asked(), [], "the old session's voice state is gone");
    m.gateway(voice_state(Some(VOICE), "main-2", false));
    assert_eq!(
        m.asked(),
        [Asked::Identify {
            token: "token-2".into(),
            session: "main-2".into()
        }]
    );
}

/// A guild listed in READY that stays unavailable (an outage) holds nothing up past
/// [`GUILD_WAIT`]; a join into it is refused with the reason.
#[test]
fn an_unavailable_guild_does_not_hold_up_the_others() {
    let mut m = Machine::new();
    let (tx, ready_reply) = std::sync::mpsc::channel();
    m.command(Command::AwaitGateway { reply: tx });
    m.gateway(ready(&[GUILD, OTHER_GUILD]));
    m.gateway(GatewayEvent::Guild(guild(GUILD)));
    assert!(
        ready_reply.try_recv().is_err(),
        "GUILD_CREATEs may still come"
    );
    m.advance(GUILD_WAIT);
    assert_eq!(ready_reply.try_recv(), Ok(Ok(USER)));
    let refused = m.join_guild(OTHER_GUILD, VOICE);
    assert_eq!(
        refused.try_recv(),
        Ok(Err(VoiceError::GuildUnavailable(OTHER_GUILD)))
    );
    assert_eq!(m.asked(), []);
    // The outage ends: its GUILD_CREATE arrives and the guild can be joined.
    m.gateway(GatewayEvent::Guild(guild(OTHER_GUILD)));
    let _reply = m.join_guild(OTHER_GUILD, VOICE);
    assert_eq!(
        m.asked(),
        [Asked::VoiceState {
            channel: Some(VOICE)
        }]
    );
}

/// Channels made, changed and deleted while running, a guild the bot is invited to, and a
/// guild the bot is removed from.
#[test]
fn channels_and_guilds_that_change_while_running() {
    let mut m = Machine::connected();
    let refused = m.join(555);
    assert!(matches!(
        refused.try_recv(),
        Ok(Err(VoiceError::NotAVoiceChannel { channel: 555, .. }))
    ));
    m.gateway(GatewayEvent::Channel {
        guild_id: GUILD,
        channel: Channel {
            id: 555,
            name: "new voice".into(),
            kind: ChannelKind::Voice,
            bitrate: None,
        },
    });
    let _reply = m.join(555);
    assert_eq!(m.asked(), [Asked::VoiceState { channel: Some(555) }]);
    m.gateway(GatewayEvent::ChannelDeleted {
        guild_id: GUILD,
        channel_id: OTHER_VOICE,
    });
    let refused = m.join(OTHER_VOICE);
    assert!(matches!(
        refused.try_recv(),
        Ok(Err(VoiceError::NotAVoiceChannel { .. }))
    ));

    // Invited to a new guild while running: it can be joined at once.
    let mut invited = guild(3);
    invited.id = 3;
    m.gateway(GatewayEvent::Guild(invited));
    let _reply = m.join_guild(3, VOICE);
    assert_eq!(
        m.asked(),
        [Asked::VoiceState {
            channel: Some(VOICE)
        }]
    );

    // Removed from the guild of a live connection: it is over, with the reason.
    let mut m = Machine::in_call();
    m.gateway(GatewayEvent::GuildDeleted {
        guild_id: GUILD,
        unavailable: false,
    });
    assert_eq!(
        m.phase(),
        ConnPhase::Failed {
            error: VoiceError::UnknownGuild(GUILD)
        }
    );
}

/// A stage is joined in the audience: the bot asks to speak once, the card says why it is
/// silent (and, without Mute Members, that its hand is raised), and the join is answered
/// only once a moderator makes it a speaker.
#[test]
fn a_stage_is_joined_suppressed_and_asks_to_speak() {
    let mut m = Machine::connected();
    let reply = m.join(STAGE);
    assert_eq!(
        m.asked(),
        [Asked::VoiceState {
            channel: Some(STAGE)
        }]
    );
    m.gateway(voice_state(Some(STAGE), MAIN_SESSION, true));
    assert_eq!(m.asked(), [Asked::AskToSpeak { channel: STAGE }]);
    m.gateway(voice_server("token-1"));
    assert_eq!(m.asked(), [identify("token-1")]);
    m.answer_handshake();
    let card = m.card();
    assert!(
        card.stage
            .as_deref()
            .is_some_and(|s| s.starts_with("stage: suppressed — waiting for a speaker slot")),
        "{card:?}"
    );
    assert!(reply.try_recv().is_err(), "not answered while suppressed");

    m.speak_answer(STAGE, SpeakOutcome::HandRaised);
    let card = m.card();
    assert!(
        card.stage
            .as_deref()
            .is_some_and(|s| s.contains("Mute Members")),
        "{card:?}"
    );
    assert_eq!(m.asked(), [], "asked once, not again");

    m.gateway(voice_state(Some(STAGE), MAIN_SESSION, false));
    m.tick();
    assert_eq!(reply.try_recv(), Ok(Ok(())));
    assert_eq!(m.card().stage, None);
}

/// Leaving: op 4 with no channel, done when Discord confirms.
#[test]
fn a_leave_is_confirmed_by_the_voice_state() {
    let mut m = Machine::in_call();
    let (tx, left) = std::sync::mpsc::channel();
    m.command(Command::Leave {
        guild_id: GUILD,
        reply: Some(tx),
    });
    assert_eq!(m.asked(), [Asked::VoiceState { channel: None }]);
    assert!(left.try_recv().is_err());
    m.gateway(our_voice_state(None));
    assert_eq!(left.try_recv(), Ok(()));
    assert!(matches!(m.phase(), ConnPhase::Disconnected { .. }));
}
