//! Stage channels. The bot joins a stage in the audience (its voice state says `suppress`), and
//! Discord forwards none of an audience member's audio. So once in, it asks to speak through the
//! REST API (docs/protocol.md §1.10): with Mute Members it becomes a speaker at once; without, its
//! hand is raised and a moderator must invite it. Until then nothing is sent, join waiters wait
//! (up to the join timeout), and the card says why. A moderator moving the bot back to the
//! audience is respected: it is not asked again, like a kick is never fought.

use std::time::Instant;

use bevy_ecs::prelude::*;

use super::Net;
use super::components::ConnPhase;
use super::network::{NetRequest, Outbox};
use crate::discord::gateway::payloads::VoiceState;
use crate::discord::rest::SpeakOutcome;

/// A connection's place on a stage (default: not in a stage, nothing held back).
#[derive(Component, Debug, Default, Clone, PartialEq)]
pub struct Stage {
    /// The stage channel this is about; `None` outside stages.
    pub channel: Option<u64>,
    /// In the audience: Discord forwards none of our audio.
    pub suppressed: bool,
    pub hand_raised: bool,
    pub request: SpeakRequest,
    /// Since when the bot has been waiting for a speaker slot.
    pub waiting_since: Option<Instant>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub enum SpeakRequest {
    /// Not asked yet in this channel.
    #[default]
    NotAsked,
    Asking,
    Answered(SpeakOutcome),
}

impl Stage {
    /// Our voice state arrived; `is_stage` says whether its channel is a stage.
    pub fn on_voice_state(&mut self, vs: &VoiceState, is_stage: bool, now: Instant) {
        let channel = vs.channel_id.filter(|_| is_stage);
        if channel != self.channel {
            *self = Stage {
                channel,
                ..Stage::default()
            };
        }
        if channel.is_none() {
            return;
        }
        self.suppressed = vs.suppress;
        self.hand_raised = vs.hand_raised;
        if !self.suppressed {
            // A speaker (by our request or a moderator's invitation): if the bot is moved back
            // to the audience later, that is a moderator's decision, not asked against.
            self.request = SpeakRequest::Answered(SpeakOutcome::Unsuppressed);
        }
        self.waiting_since = match (self.suppressed, self.waiting_since) {
            (true, None) => Some(now),
            (true, since) => since,
            (false, _) => None,
        };
    }

    /// Whether audio may go out: Discord would drop an audience member's.
    pub fn may_speak(&self) -> bool {
        !self.suppressed
    }

    /// The card's line while the bot cannot speak, with the reason.
    pub fn describe(&self) -> Option<String> {
        if !self.suppressed {
            return None;
        }
        let why = match &self.request {
            SpeakRequest::NotAsked | SpeakRequest::Asking => "asking to speak".to_owned(),
            SpeakRequest::Answered(SpeakOutcome::Unsuppressed) => {
                "moved to the audience by a moderator".to_owned()
            }
            SpeakRequest::Answered(SpeakOutcome::HandRaised) => {
                "the bot lacks the Mute Members permission: its hand is raised for a moderator \
                 to invite it"
                    .to_owned()
            }
            SpeakRequest::Answered(SpeakOutcome::Failed(e)) => {
                format!("asking to speak failed: {e}")
            }
        };
        Some(format!(
            "stage: suppressed — waiting for a speaker slot ({why})"
        ))
    }
}

/// Asks to speak, once per stage channel, for every connection that joined one suppressed.
pub fn ask_to_speak(
    mut conns: Query<(&super::components::VoiceConn, &ConnPhase, &mut Stage)>,
    mut outbox: ResMut<Outbox>,
    net: Option<Res<Net>>,
) {
    if net.is_none() {
        return;
    }
    for (conn, phase, mut stage) in &mut conns {
        let (Some(channel_id), true) = (stage.channel, stage.suppressed) else {
            continue;
        };
        if stage.request != SpeakRequest::NotAsked
            || phase.is_over()
            || matches!(phase, ConnPhase::Leaving { .. })
        {
            continue;
        }
        stage.request = SpeakRequest::Asking;
        let guild_id = conn.guild_id;
        tracing::info!(
            "guild {guild_id}: joined stage {channel_id} in the audience; asking to speak"
        );
        outbox.push(NetRequest::RequestToSpeak {
            guild_id,
            channel_id,
        });
    }
}

/// The answer to [`ask_to_speak`] came back (ignored if the bot moved on meanwhile).
pub fn on_speak_outcome(stage: &mut Stage, guild_id: u64, channel_id: u64, outcome: SpeakOutcome) {
    if stage.channel != Some(channel_id) {
        return;
    }
    match &outcome {
        SpeakOutcome::Unsuppressed => tracing::info!("guild {guild_id}: now a stage speaker"),
        SpeakOutcome::HandRaised => tracing::warn!(
            "guild {guild_id}: no Mute Members permission in the stage; hand raised, waiting for \
             a moderator"
        ),
        SpeakOutcome::Failed(e) => tracing::warn!("guild {guild_id}: asking to speak failed: {e}"),
    }
    stage.request = SpeakRequest::Answered(outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(channel: Option<u64>, suppress: bool) -> VoiceState {
        VoiceState {
            guild_id: 1,
            user_id: 2,
            channel_id: channel,
            session_id: "s".into(),
            suppress,
            hand_raised: false,
        }
    }

    #[test]
    fn a_stage_is_joined_suppressed_and_a_new_channel_asks_again() {
        let now = Instant::now();
        let mut stage = Stage::default();
        stage.on_voice_state(&vs(Some(7), true), true, now);
        assert!(!stage.may_speak());
        assert_eq!(stage.waiting_since, Some(now));
        let line = stage.describe().unwrap();
        assert!(
            line.starts_with("stage: suppressed — waiting for a speaker slot"),
            "{line}"
        );

        stage.request = SpeakRequest::Answered(SpeakOutcome::HandRaised);
        assert!(stage.describe().unwrap().contains("Mute Members"));
        stage.on_voice_state(&vs(Some(7), false), true, now);
        assert!(stage.may_speak() && stage.describe().is_none());
        assert_eq!(stage.waiting_since, None);

        // Moved back to the audience in the same stage: not asked again (the moderator wins).
        stage.on_voice_state(&vs(Some(7), true), true, now);
        assert_ne!(stage.request, SpeakRequest::NotAsked);
        assert!(stage.describe().unwrap().contains("moved to the audience"));
        // Another stage: a new request.
        stage.on_voice_state(&vs(Some(8), true), true, now);
        assert_eq!(stage.request, SpeakRequest::NotAsked);
    }

    #[test]
    fn outside_stages_nothing_is_held_back() {
        let mut stage = Stage::default();
        // `suppress` in a voice channel (the AFK channel) is not a stage matter.
        stage.on_voice_state(&vs(Some(3), true), false, Instant::now());
        assert!(stage.may_speak());
        assert_eq!(stage, Stage::default());
    }

    #[test]
    fn a_late_answer_for_another_channel_is_ignored() {
        let mut stage = Stage::default();
        stage.on_voice_state(&vs(Some(8), true), true, Instant::now());
        on_speak_outcome(&mut stage, 1, 7, SpeakOutcome::HandRaised);
        assert_eq!(stage.request, SpeakRequest::NotAsked);
    }
}
