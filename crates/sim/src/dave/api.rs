//! The DAVE side of [`Simulator`]'s public API: virtual listeners, what they heard, the group's
//! epoch and privacy code, transition gaps, and DAVE faults.

use std::time::Duration;

use crate::{Heard, SimEvent, Simulator};

impl Simulator {
    /// Adds a virtual listener (a real DAVE client) to the guild's call; returns its user id.
    /// None if the guild has no voice channel.
    pub fn add_listener(&self, guild_id: u64) -> Option<u64> {
        let mut st = self.shared.lock();
        st.event(SimEvent::FaultInjected {
            what: format!("add_listener guild={guild_id}"),
        });
        super::add_listener(&mut st, &self.shared.config, guild_id, true)
    }

    /// Adds a virtual listener without DAVE (an old client): in a DAVE-optional call the call
    /// downgrades to version 0 (op 21, protocol_version 0) and upgrades again when it leaves
    /// ([`Simulator::remove_listener`]). None in a DAVE-required call, which Discord would close
    /// with 4017, or if the guild has no voice channel.
    pub fn add_listener_without_dave(&self, guild_id: u64) -> Option<u64> {
        let mut st = self.shared.lock();
        st.event(SimEvent::FaultInjected {
            what: format!("add_listener_without_dave guild={guild_id}"),
        });
        super::add_listener(&mut st, &self.shared.config, guild_id, false)
    }

    /// The listener leaves the call (a Remove and a new epoch, or a sole-member reset, follow).
    pub fn remove_listener(&self, guild_id: u64, user_id: u64) {
        let mut st = self.shared.lock();
        st.event(SimEvent::FaultInjected {
            what: format!("remove_listener guild={guild_id} user={user_id}"),
        });
        super::remove_listener(&mut st, guild_id, user_id);
    }

    /// User ids of the guild's virtual listeners, in join order.
    pub fn listeners(&self, guild_id: u64) -> Vec<u64> {
        let st = self.shared.lock();
        st.calls
            .get(&guild_id)
            .map(|c| c.listeners.keys().copied().collect())
            .unwrap_or_default()
    }

    /// What one listener decrypted and decoded from the bot (arrival order).
    pub fn heard_by(&self, guild_id: u64, user_id: u64) -> Heard {
        let st = self.shared.lock();
        Heard {
            frames: st
                .calls
                .get(&guild_id)
                .and_then(|c| c.listeners.get(&user_id))
                .map(|l| l.heard.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// The call's voice privacy code as a listener in the group sees it.
    pub fn privacy_code(&self, guild_id: u64) -> Option<String> {
        let st = self.shared.lock();
        let call = st.calls.get(&guild_id)?;
        call.listeners.values().find_map(|l| l.privacy_code())
    }

    /// The DAVE group's epoch (0 while no group exists); None without a DAVE call.
    pub fn dave_epoch(&self, guild_id: u64) -> Option<u64> {
        let st = self.shared.lock();
        st.calls
            .get(&guild_id)
            .filter(|c| c.version >= 1)
            .map(|c| c.epoch)
    }

    /// Per executed transition, the longest silence in the listeners' audio around it.
    pub fn dave_gaps(&self, guild_id: u64) -> Vec<Duration> {
        super::gaps(&self.shared.lock(), guild_id)
    }

    /// Flips bytes in the next op 30 (Welcome) sent to a socket client: it must answer op 31 and
    /// send a fresh key package.
    pub fn corrupt_next_welcome(&self, guild_id: u64) {
        let mut st = self.shared.lock();
        st.event(SimEvent::FaultInjected {
            what: format!("corrupt_next_welcome guild={guild_id}"),
        });
        if let Some(c) = st.calls.get_mut(&guild_id) {
            c.corrupt_next_welcome = true;
        }
    }

    /// Revokes the newest in-flight Add proposal (op 27 revoke); returns the user it would have
    /// added. That user stays pending until it sends a new key package.
    pub fn revoke_pending_add(&self, guild_id: u64) -> Option<u64> {
        let mut st = self.shared.lock();
        st.event(SimEvent::FaultInjected {
            what: format!("revoke_pending_add guild={guild_id}"),
        });
        let user = st.calls.get_mut(&guild_id)?.revoke_pending_add();
        super::pump(&mut st, guild_id);
        user
    }
}
