//! Playing: board sounds (decoded first when needed), the edit dialog's monitor-only
//! preview, stops and push-to-talk.

use std::time::Instant;

use super::{Core, PLAY_WAIT, PlayOutcome};
use crate::board::Sound;
use voxboard_audio::library::{SoundId, SoundState};
use voxboard_voice::engine::{Command, PlayRequest, Source, Target};

impl Core {
    /// Plays a board sound now if it is decoded; otherwise asks for it and plays it once ready.
    pub fn play(&mut self, id: u64) -> PlayOutcome {
        self.start(id, None)
    }

    /// Plays a board sound into one guild only, whatever its own targets (entrance sounds).
    pub fn play_into(&mut self, id: u64, guild_id: u64) -> PlayOutcome {
        self.start(id, Some(guild_id))
    }

    fn start(&mut self, id: u64, into: Option<u64>) -> PlayOutcome {
        let Some(lid) = self.lib_id(id) else {
            return PlayOutcome::Unknown;
        };
        if self.engine.is_none() {
            self.toast("Not connected to Discord: enter your bot token in Settings.");
            return PlayOutcome::NotConnected;
        }
        if let Some(samples) = self.library.get(lid) {
            self.send_play(id, samples, into);
            return PlayOutcome::Playing;
        }
        if let Some(SoundState::Failed { reason }) = self.library.state(lid) {
            self.toast(&format!("Cannot play: {reason}"));
            return PlayOutcome::Failed(reason);
        }
        self.library.request(lid);
        if !self
            .pending_play
            .iter()
            .any(|(p, _, i)| *p == id && *i == into)
        {
            self.pending_play.push((id, Instant::now(), into));
        }
        PlayOutcome::Loading
    }

    /// Plays clicked sounds whose decode has finished. Returns whether any still waits.
    pub fn poll_pending_plays(&mut self) -> bool {
        let pending = std::mem::take(&mut self.pending_play);
        for (id, at, into) in pending {
            let Some(lid) = self.lib_id(id) else { continue };
            match self.library.state(lid) {
                Some(SoundState::Ready { .. }) => match self.library.get(lid) {
                    Some(samples) => self.send_play(id, samples, into),
                    None => {
                        self.library.request(lid);
                        self.pending_play.push((id, at, into));
                    }
                },
                Some(SoundState::Failed { reason }) => {
                    self.toast(&format!("Cannot play: {reason}"))
                }
                None => {}
                Some(_) if at.elapsed() > PLAY_WAIT => {
                    let name = self
                        .board
                        .sound(id)
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    self.toast(&format!("{name} is still loading; try again in a moment."));
                }
                Some(SoundState::Unloaded) => {
                    self.library.request(lid);
                    self.pending_play.push((id, at, into));
                }
                Some(_) => self.pending_play.push((id, at, into)),
            }
        }
        !self.pending_play.is_empty()
    }

    fn send_play(&mut self, id: u64, samples: Source, into: Option<u64>) {
        let Some(sound) = self.board.sound(id).cloned() else {
            return;
        };
        let Some(engine) = &self.engine else { return };
        let target = into.map_or_else(|| target_of(&sound.targets), |g| Target::Guilds(vec![g]));
        let mut request = PlayRequest::new(engine.next_id(), samples, target);
        request.sound = Some(id);
        request.gain = sound.gain * self.normalisation(&sound);
        request.looped = sound.looped;
        request.retrigger = sound.retrigger;
        request.choke = sound.choke_group;
        request.shape = sound.shape();
        self.send(Command::Play(request));
    }

    fn normalisation(&self, sound: &Sound) -> f32 {
        if !sound.normalise {
            return 1.0;
        }
        self.lib_id(sound.id)
            .and_then(|lid| {
                let target = self.board.settings.loudness_target_lufs;
                // The trimmed window's loudness: a loud intro cut off must not hold it down.
                self.library.normalisation_gain(lid, target, &sound.shape())
            })
            .unwrap_or(1.0)
    }

    /// Plays `draft` (a sound being edited: its trim, fades and gain as they stand) on the
    /// local monitor only, for the streamer's ears. Returns the playback id, for
    /// [`Core::playback_progress`] and [`Core::stop_playback`].
    pub fn preview(&mut self, draft: &Sound) -> Result<u64, String> {
        let lid = self
            .lib_id(draft.id)
            .ok_or("This sound is not on the board.")?;
        if self.engine.is_none() {
            return Err("The preview plays through the voice engine: connect first.".into());
        }
        if !self.board.settings.monitor {
            return Err("Turn the monitor output on in Settings to preview.".into());
        }
        let Some(samples) = self.library.get(lid) else {
            self.library.request(lid);
            return Err("Still loading: try again in a moment.".into());
        };
        let gain = draft.gain * self.normalisation(draft);
        let engine = self.engine.as_ref().ok_or("no engine")?;
        let mut request = PlayRequest::new(engine.next_id(), samples, Target::Monitor);
        request.gain = gain;
        request.shape = draft.shape();
        let id = request.id;
        self.send(Command::Play(request));
        Ok(id)
    }

    /// Progress (0..=1) of one playback, while it plays.
    pub fn playback_progress(&self, playback: u64) -> Option<f32> {
        self.status
            .playing
            .iter()
            .find(|p| p.id == playback)
            .map(|p| p.progress)
    }

    pub fn stop_playback(&mut self, playback: u64) {
        self.send(Command::Stop { id: playback });
    }

    /// Progress (0..=1) of the furthest playback of a board sound, if it plays.
    pub fn progress(&self, id: u64) -> Option<f32> {
        self.status
            .playing
            .iter()
            .filter(|p| p.sound == Some(id))
            .map(|p| p.progress)
            .reduce(f32::max)
    }

    pub fn is_waiting_to_play(&self, id: u64) -> bool {
        self.pending_play.iter().any(|(p, _, _)| *p == id)
    }

    /// Stops every playback of one board sound (and a click on it still decoding).
    pub fn stop_sound(&mut self, id: u64) {
        self.pending_play.retain(|(p, _, _)| *p != id);
        self.send(Command::StopSound { sound: id });
    }

    pub fn stop_all(&mut self) {
        self.pending_play.clear();
        self.send(Command::StopAll);
    }

    /// Routes the microphone (empty: every connected guild), saves the board and tells the
    /// engine, so push-to-talk goes only where the routing matrix says.
    pub fn set_mic_targets(&mut self, targets: Vec<u64>) {
        self.board.settings.mic_targets = targets;
        self.save();
        if self.engine.is_some() {
            self.send(Command::SetMicTarget(target_of(
                &self.board.settings.mic_targets,
            )));
        }
    }

    pub fn push_to_talk(&mut self, held: bool) {
        if self.ptt_held != held {
            self.ptt_held = held;
            self.send(Command::PushToTalk(held));
        }
    }

    /// Queues background decodes for sounds likely to be clicked soon.
    pub fn preload(&self, ids: &[u64]) {
        let lids: Vec<SoundId> = ids.iter().filter_map(|id| self.lib_id(*id)).collect();
        self.library.preload(&lids);
    }
}

/// A board target list as the engine takes it: empty is every connected guild.
pub(crate) fn target_of(targets: &[u64]) -> Target {
    if targets.is_empty() {
        Target::All
    } else {
        Target::Guilds(targets.to_vec())
    }
}
