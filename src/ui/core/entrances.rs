//! Entrance sounds: when a member enters the bot's voice channel in a guild, the board's sound
//! for that member (or for anyone) plays into that guild, at most once per member and guild
//! per cooldown. The engine reports the joins (the bot's own, and members already there
//! after a reconnect, are not joins); this decides what plays.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use super::Core;
use crate::board::Sound;
use voxboard_voice::engine::members::MemberJoin;
use voxboard_voice::engine::{Command, EngineHandle};

#[derive(Default)]
pub struct Entrances {
    joins: Option<Receiver<MemberJoin>>,
    /// (guild, member) → when their entrance last played.
    played: HashMap<(u64, u64), Instant>,
}

impl Entrances {
    /// Subscribes to a (new) engine's member joins; a thread forwards them and wakes the UI,
    /// which would otherwise sleep until the next input.
    pub fn subscribe(&mut self, engine: &EngineHandle, ctx: Option<egui::Context>) {
        let (tx, from_engine) = channel();
        engine.send(Command::SubscribeMemberJoins(tx));
        let (forward, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("voxboard-entrances".into())
            .spawn(move || {
                // Ends when the engine drops its sender.
                for join in from_engine {
                    if forward.send(join).is_err() {
                        return;
                    }
                    if let Some(ctx) = &ctx {
                        ctx.request_repaint();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("entrance sounds are off: cannot start their thread: {e}");
        }
        self.joins = Some(rx);
    }
}

/// The sounds that greet `user`, if their cooldown in `guild` has passed (and marks it).
fn greetings(
    played: &mut HashMap<(u64, u64), Instant>,
    sounds: &[&Sound],
    join: MemberJoin,
    cooldown: Duration,
    now: Instant,
) -> Vec<u64> {
    let ids: Vec<u64> = sounds
        .iter()
        .filter(|s| s.entrance.is_some_and(|e| e.matches(join.user_id)))
        .map(|s| s.id)
        .collect();
    if ids.is_empty() {
        return ids;
    }
    let key = (join.guild_id, join.user_id);
    if played
        .get(&key)
        .is_some_and(|at| now.saturating_duration_since(*at) < cooldown)
    {
        return Vec::new();
    }
    played.insert(key, now);
    ids
}

impl Core {
    /// Plays the entrance sounds of members who just joined. Returns at once.
    pub fn poll_entrances(&mut self) {
        let Some(rx) = &self.entrances.joins else {
            return;
        };
        let joins: Vec<MemberJoin> = rx.try_iter().collect();
        let secs = self.board.settings.entrance_cooldown_secs;
        let cooldown = Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO);
        for join in joins {
            let sounds: Vec<&Sound> = self.board.sounds().collect();
            let now = Instant::now();
            let ids = greetings(&mut self.entrances.played, &sounds, join, cooldown, now);
            for id in ids {
                tracing::info!(target: "voxboard::ui", guild = join.guild_id, sound = id, "entrance sound");
                self.play_into(id, join.guild_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Entrance;

    #[test]
    fn a_member_is_greeted_once_per_cooldown_and_guild() {
        let anyone = Sound {
            id: 1,
            entrance: Some(Entrance::Anyone),
            ..Sound::default()
        };
        let alice = Sound {
            id: 2,
            entrance: Some(Entrance::Member(7)),
            ..Sound::default()
        };
        let silent = Sound {
            id: 3,
            ..Sound::default()
        };
        let sounds = [&anyone, &alice, &silent];
        let mut played = HashMap::new();
        let t = Instant::now();
        let minute = Duration::from_secs(60);
        let join = |guild_id, user_id| MemberJoin {
            guild_id,
            user_id,
            channel_id: 10,
        };
        assert_eq!(
            greetings(&mut played, &sounds, join(1, 7), minute, t),
            [1, 2]
        );
        assert_eq!(greetings(&mut played, &sounds, join(1, 8), minute, t), [1]);
        let soon = t + Duration::from_secs(5);
        assert!(greetings(&mut played, &sounds, join(1, 7), minute, soon).is_empty());
        assert_eq!(
            greetings(&mut played, &sounds, join(2, 7), minute, soon),
            [1, 2]
        );
        let later = t + Duration::from_secs(61);
        assert_eq!(
            greetings(&mut played, &sounds, join(1, 7), minute, later),
            [1, 2]
        );
    }
}
