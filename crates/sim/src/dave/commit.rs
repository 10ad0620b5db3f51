//! Judging op 28 commits (docs/protocol.md §6.5 C, §8.2): the first valid commit of an epoch
//! wins, is announced (op 29) to the members and welcomed (op 30) to the added users; late or
//! stale commits are dropped quietly, invalid ones are violations.

use std::collections::BTreeSet;
use std::time::Instant;

use super::ToClient;
use super::call::{Call, Kind, Transition};
use super::wire;
use crate::events::SimEvent;

impl Call {
    fn reject(&mut self, user: u64, rule: Option<&'static str>, why: String) {
        let g = self.guild_id;
        match rule {
            Some(rule) => self.violation(rule, format!("commit from {user}: {why}")),
            None => tracing::debug!(target: "voxboard_sim", user, "commit dropped: {why}"),
        }
        self.event(SimEvent::Commit {
            guild_id: g,
            user_id: user,
            accepted: false,
        });
    }

    /// op 28: the first valid commit of the epoch wins (docs/protocol.md §6.5 C, §8.2).
    pub(super) fn commit(&mut self, user: u64, payload: &[u8], now: Instant) {
        const RULE: Option<&str> = Some("dave.commit");
        let info = match wire::parse_commit(payload) {
            Ok(i) => i,
            Err(why) => return self.reject(user, RULE, why),
        };
        if info.group_id != self.channel_id.to_be_bytes() {
            return self.reject(
                user,
                RULE,
                format!("group id {:02x?} is not BE64(channel)", info.group_id),
            );
        }
        if info.epoch < self.epoch {
            return self.reject(
                user,
                None,
                format!("late: epoch {} < {}", info.epoch, self.epoch),
            );
        }
        if info.epoch > self.epoch {
            return self.reject(
                user,
                RULE,
                format!(
                    "epoch {} is ahead of the group's {}",
                    info.epoch, self.epoch
                ),
            );
        }
        let established = self.epoch > 0;
        if established {
            if !self.members.contains(&user) {
                return self.reject(user, RULE, "the sender is not a group member".into());
            }
            if let Some(leaf) = self.leaf_of(user).filter(|l| *l != info.sender_leaf) {
                return self.reject(
                    user,
                    RULE,
                    format!(
                        "sender leaf {} but the user is leaf {leaf}",
                        info.sender_leaf
                    ),
                );
            }
        } else {
            if self.participants.get(&user).is_none_or(|p| p.kp.is_none()) {
                return self.reject(
                    user,
                    None,
                    "no group and no key package of the sender".into(),
                );
            }
            if info.sender_leaf != 0 {
                return self.reject(
                    user,
                    RULE,
                    format!("pending committer must be leaf 0, not {}", info.sender_leaf),
                );
            }
        }
        if info.refs.is_empty() {
            return self.reject(user, RULE, "commit covers no proposal".into());
        }
        let mut covered = Vec::new();
        for r in &info.refs {
            let Some(p) = self.proposals.iter().find(|p| p.proposal_ref[..] == r[..]) else {
                return self.reject(
                    user,
                    RULE,
                    format!("unknown proposal ref {:02x?}", &r[..r.len().min(4)]),
                );
            };
            if p.revoked {
                return self.reject(
                    user,
                    None,
                    "covers a revoked proposal (revoke in flight)".into(),
                );
            }
            if p.kind == Kind::Add(user) {
                return self.reject(user, RULE, "the committer adds itself".into());
            }
            let unwelcomed = info.welcome.is_some()
                && p.kp_ref
                    .as_ref()
                    .is_some_and(|r| !info.welcomed.contains(r));
            if let (true, Kind::Add(u)) = (unwelcomed, p.kind) {
                let why = format!("the Welcome has no group secrets for added user {u}");
                return self.reject(user, RULE, why);
            }
            covered.push(p.kind);
        }
        let missing = self.proposals.iter().any(|p| {
            !p.revoked
                && p.kind != Kind::Add(user)
                && !covered.contains(&p.kind)
                && (established || p.to.contains(&user))
        });
        if missing {
            return self.reject(
                user,
                None,
                "stale: does not cover every proposal of the epoch".into(),
            );
        }
        let adds: Vec<u64> = covered
            .iter()
            .filter_map(|k| match k {
                Kind::Add(u) => Some(*u),
                _ => None,
            })
            .collect();
        let removes: BTreeSet<u64> = covered
            .iter()
            .filter_map(|k| match k {
                Kind::Remove(u) => Some(*u),
                _ => None,
            })
            .collect();
        let welcome = match (adds.is_empty(), info.welcome) {
            (false, Some(w)) => w,
            (true, None) => Vec::new(),
            (false, None) => {
                return self.reject(
                    user,
                    RULE,
                    "commit adds members but carries no Welcome".into(),
                );
            }
            (true, Some(_)) => return self.reject(user, RULE, "Welcome without any Add".into()),
        };
        self.accept(user, info.commit, welcome, adds, removes, established, now);
    }

    #[allow(clippy::too_many_arguments)]
    fn accept(
        &mut self,
        user: u64,
        commit: Vec<u8>,
        welcome: Vec<u8>,
        adds: Vec<u64>,
        removes: BTreeSet<u64>,
        established: bool,
        now: Instant,
    ) {
        let tid = self.alloc_tid();
        let g = self.guild_id;
        self.event(SimEvent::Commit {
            guild_id: g,
            user_id: user,
            accepted: true,
        });
        let before: BTreeSet<u64> = if established {
            self.members.clone()
        } else {
            BTreeSet::from([user])
        };
        let mut frame29 = tid.to_be_bytes().to_vec();
        frame29.extend_from_slice(&commit);
        for m in before.difference(&removes) {
            if self.participants.contains_key(m) {
                self.send(*m, ToClient::Binary(29, frame29.clone()));
            }
        }
        for a in &adds {
            let mut w = welcome.clone();
            let socket = self.participants.get(a).is_some_and(|p| p.vid.is_some());
            if socket && self.corrupt_next_welcome {
                self.corrupt_next_welcome = false;
                for b in w.iter_mut().rev().take(16) {
                    *b ^= 0x5A;
                }
            }
            let mut frame30 = tid.to_be_bytes().to_vec();
            frame30.extend(w);
            self.send(*a, ToClient::Binary(30, frame30));
            self.event(SimEvent::WelcomeSent {
                guild_id: g,
                user_id: *a,
                transition_id: tid,
            });
        }
        self.epoch += 1;
        self.members = before.difference(&removes).copied().chain(adds).collect();
        self.to_remove.retain(|u| !removes.contains(u));
        self.proposals.clear();
        let waiting = self
            .members
            .iter()
            .filter(|m| self.participants.contains_key(m))
            .copied()
            .collect();
        self.transition = Some(Transition {
            id: tid,
            waiting,
            started: now,
        });
        self.reconcile(now);
    }
}
