//! Other members' voice channels, from the main gateway's voice states: who just joined the
//! channel the bot is in (for entrance sounds). Members already there when a guild arrives
//! (GUILD_CREATE, also after a reconnect) are known, not joining; the bot's own states never
//! reach here.

use std::collections::HashMap;
use std::sync::mpsc::Sender;

/// A member entered the voice channel the bot is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberJoin {
    pub guild_id: u64,
    pub user_id: u64,
    pub channel_id: u64,
}

#[derive(Default)]
pub struct MemberWatch {
    /// (guild, user) → voice channel, for members in one.
    channels: HashMap<(u64, u64), u64>,
    subscribers: Vec<Sender<MemberJoin>>,
}

impl MemberWatch {
    pub fn subscribe(&mut self, tx: Sender<MemberJoin>) {
        self.subscribers.push(tx);
    }

    /// A guild arrived (GUILD_CREATE): its voice states replace what was known of it, and
    /// nobody in them counts as joining.
    pub fn seed(&mut self, guild_id: u64, states: &[(u64, u64)]) {
        self.channels.retain(|(g, _), _| *g != guild_id);
        for &(user, channel) in states {
            self.channels.insert((guild_id, user), channel);
        }
    }

    /// Another member's voice state. `bot_channel` is the channel the bot is connected to in
    /// that guild, if any. A move into it is a join; a mute or deafen in place is not.
    pub fn on_voice_state(
        &mut self,
        guild_id: u64,
        user_id: u64,
        channel_id: Option<u64>,
        bot_channel: Option<u64>,
    ) {
        let before = match channel_id {
            Some(c) => self.channels.insert((guild_id, user_id), c),
            None => self.channels.remove(&(guild_id, user_id)),
        };
        let Some(channel_id) = channel_id.filter(|c| Some(*c) == bot_channel) else {
            return;
        };
        if before == Some(channel_id) {
            return;
        }
        let join = MemberJoin {
            guild_id,
            user_id,
            channel_id,
        };
        self.subscribers.retain(|tx| tx.send(join).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn joins_into_the_bots_channel_count_once_and_nothing_else_does() {
        let mut w = MemberWatch::default();
        let (tx, rx) = channel();
        w.subscribe(tx);
        // Already there when the guild arrived: a later mute (same channel) is no join.
        w.seed(1, &[(7, 10)]);
        w.on_voice_state(1, 7, Some(10), Some(10));
        // Joining another channel, or any channel of a guild the bot is not in.
        w.on_voice_state(1, 8, Some(11), Some(10));
        w.on_voice_state(2, 8, Some(10), None);
        assert!(rx.try_recv().is_err());
        // Moving into the bot's channel, then muting there: one join.
        w.on_voice_state(1, 8, Some(10), Some(10));
        w.on_voice_state(1, 8, Some(10), Some(10));
        let joins: Vec<MemberJoin> = rx.try_iter().collect();
        assert_eq!(
            joins,
            [MemberJoin {
                guild_id: 1,
                user_id: 8,
                channel_id: 10
            }]
        );
        // Leaving and coming back is a new join (the app's cooldown decides what plays).
        w.on_voice_state(1, 8, None, Some(10));
        w.on_voice_state(1, 8, Some(10), Some(10));
        assert_eq!(rx.try_iter().count(), 1);
        // A reconnect's GUILD_CREATE lists who is there: not joins.
        w.seed(1, &[(7, 10), (8, 10), (9, 10)]);
        w.on_voice_state(1, 9, Some(10), Some(10));
        assert!(rx.try_recv().is_err());
    }
}
