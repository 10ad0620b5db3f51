//! Protocol transitions of a call between DAVE and plain Opus (docs/protocol.md §6.5 E and F):
//! a client without DAVE joining an Optional call downgrades it; the last one leaving upgrades
//! it again.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::json;

use super::{Call, ToClient, Transition};
use crate::events::SimEvent;

impl Call {
    /// Participants that speak DAVE: only they get DAVE opcodes.
    pub(super) fn dave_capable(&self) -> BTreeSet<u64> {
        self.participants
            .iter()
            .filter(|(_, p)| p.max_version >= 1)
            .map(|(u, _)| *u)
            .collect()
    }

    /// docs/protocol.md §6.5 F: a non-DAVE client joins an Optional call: op 21 {tid,
    /// protocol_version 0} to every DAVE member, op 22 once they are ready; the group is gone.
    /// Media stays E2EE until op 22 (the members switch to plain Opus then).
    pub(super) fn downgrade(&mut self, now: Instant) {
        self.forget_group();
        self.version = 0;
        let tid = self.alloc_tid();
        let to = self.dave_capable();
        for u in &to {
            self.send_json(*u, 21, json!({"transition_id": tid, "protocol_version": 0}));
            if let Some(p) = self.participants.get_mut(u) {
                p.kp = None;
            }
        }
        let g = self.guild_id;
        self.event(SimEvent::PrepareTransition {
            guild_id: g,
            transition_id: tid,
            protocol_version: 0,
        });
        self.transition = Some(Transition {
            id: tid,
            waiting: to,
            started: now,
        });
    }

    /// docs/protocol.md §6.5 E: the last non-DAVE client left an Optional call: op 24 {epoch 1}
    /// to everyone, then the initial-creation flow.
    pub(super) fn upgrade(&mut self) {
        self.forget_group();
        self.version = davey::DAVE_PROTOCOL_VERSION;
        let (g, v) = (self.guild_id, self.version);
        let to: Vec<u64> = self.participants.keys().copied().collect();
        for u in to {
            let pkg = self.sender.package.clone();
            self.send(u, ToClient::Binary(25, pkg));
            self.send_json(u, 24, json!({"epoch": 1, "protocol_version": v}));
            self.event(SimEvent::PrepareEpoch {
                guild_id: g,
                user_id: u,
                epoch: 1,
                protocol_version: v,
            });
        }
    }
}
