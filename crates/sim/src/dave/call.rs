//! One DAVE call (a voice channel): the gateway's view of the MLS group and the decisions of the
//! delivery service (docs/protocol.md §6.5, §8.2). It never touches sockets: what it sends goes
//! to `out` (addressed by user id) and what it notices goes to `log`; `super::pump` delivers
//! both.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use openmls::prelude::KeyPackage;
use serde_json::json;

use super::external_sender::{self, ExternalSender};
use super::listener::Listener;
use super::{FromClient, Log, ToClient};
use crate::events::SimEvent;

mod transitions;

/// How long the gateway waits for every op 23 before executing a transition anyway.
pub const TRANSITION_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Participant {
    /// The voice session of a socket client; None for a virtual listener.
    pub vid: Option<u64>,
    pub max_version: u16,
    pub(super) kp: Option<KeyPackage>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Add(u64),
    Remove(u64),
}

pub(super) struct Prop {
    pub(super) proposal_ref: [u8; 32],
    pub(super) kind: Kind,
    pub(super) revoked: bool,
    /// Who it was sent to.
    pub(super) to: BTreeSet<u64>,
    pub(super) message: Vec<u8>,
    /// For an Add: the KeyPackageRef the Welcome must carry secrets for.
    pub(super) kp_ref: Option<Vec<u8>>,
}

pub(super) struct Transition {
    pub(super) id: u16,
    pub(super) waiting: BTreeSet<u64>,
    pub(super) started: Instant,
}

pub struct Call {
    optional: bool,
    pub guild_id: u64,
    pub channel_id: u64,
    /// The call's DAVE protocol version (0: no E2EE).
    pub version: u16,
    pub(super) sender: ExternalSender,
    pub participants: BTreeMap<u64, Participant>,
    pub listeners: BTreeMap<u64, Listener>,
    /// Group epoch; 0 while no group exists.
    pub epoch: u64,
    /// Who is in the group, as the gateway sees it.
    pub(super) members: BTreeSet<u64>,
    /// Members that must be removed though still connected (after op 31).
    pub(super) to_remove: BTreeSet<u64>,
    pub(super) proposals: Vec<Prop>,
    pub(super) transition: Option<Transition>,
    pub(super) next_tid: u16,
    /// Since when media is E2EE: set when a transition at version ≥ 1 executes after plain media
    /// (the first group, or the upgrade's); non-DAVE audio is a violation from then on.
    pub e2ee_since: Option<Instant>,
    /// When a downgrade to version 0 executed (until the upgrade's first transition): from then
    /// on non-DAVE members are listening, and DAVE frames reach no one who can play them.
    pub downgraded_at: Option<Instant>,
    /// When each op 22 (and each immediate op 21) went out, for gaps and the decrypt grace.
    pub executed: Vec<Instant>,
    pub corrupt_next_welcome: bool,
    pub default_listeners_added: bool,
    pub out: VecDeque<(u64, ToClient)>,
    pub log: Vec<Log>,
}

impl Call {
    /// `optional`: DAVE is negotiated (the call downgrades to 0 when a non-DAVE client joins and
    /// upgrades again when the last one leaves).
    pub fn new(
        guild_id: u64,
        channel_id: u64,
        version: u16,
        optional: bool,
    ) -> anyhow::Result<Call> {
        Ok(Call {
            optional,
            guild_id,
            channel_id,
            version,
            sender: ExternalSender::new()?,
            participants: BTreeMap::new(),
            listeners: BTreeMap::new(),
            epoch: 0,
            members: BTreeSet::new(),
            to_remove: BTreeSet::new(),
            proposals: Vec::new(),
            transition: None,
            next_tid: 0,
            e2ee_since: None,
            downgraded_at: None,
            executed: Vec::new(),
            corrupt_next_welcome: false,
            default_listeners_added: false,
            out: VecDeque::new(),
            log: Vec::new(),
        })
    }

    pub(super) fn event(&mut self, e: SimEvent) {
        self.log.push(Log::Event(e));
    }

    pub(super) fn violation(&mut self, rule: &'static str, detail: String) {
        self.log.push(Log::Violation(rule, detail));
    }

    pub(super) fn send(&mut self, to: u64, m: ToClient) {
        self.out.push_back((to, m));
    }

    pub(super) fn send_json(&mut self, to: u64, op: u8, d: serde_json::Value) {
        self.send(to, ToClient::Json(op, d));
    }

    /// A user joins the call: op 11 both ways, then op 25 if the call uses DAVE.
    pub fn join(&mut self, user: u64, vid: Option<u64>, max_version: u16, now: Instant) {
        if self.participants.contains_key(&user) {
            self.leave(user, now);
        }
        if self.optional && self.version >= 1 && max_version == 0 {
            self.downgrade(now);
        }
        let g = self.guild_id;
        self.event(SimEvent::CallJoin {
            guild_id: g,
            user_id: user,
        });
        let others: Vec<u64> = self.participants.keys().copied().collect();
        if !others.is_empty() {
            let ids: Vec<String> = others.iter().map(u64::to_string).collect();
            self.send_json(user, 11, json!({ "user_ids": ids }));
        }
        for o in others {
            self.send_json(o, 11, json!({ "user_ids": [user.to_string()] }));
        }
        self.participants.insert(
            user,
            Participant {
                vid,
                max_version,
                kp: None,
            },
        );
        if self.version >= 1 {
            let pkg = self.sender.package.clone();
            self.send(user, ToClient::Binary(25, pkg));
        }
    }

    /// A user's voice session ended (or a listener was removed).
    pub fn leave(&mut self, user: u64, now: Instant) {
        if self.participants.remove(&user).is_none() {
            return;
        }
        let g = self.guild_id;
        self.event(SimEvent::CallLeave {
            guild_id: g,
            user_id: user,
        });
        let others: Vec<u64> = self.participants.keys().copied().collect();
        for o in others {
            self.send_json(o, 13, json!({ "user_id": user.to_string() }));
        }
        self.revoke_where(|k| k == Kind::Add(user));
        self.unwait(user, now);
        let all_dave = self.participants.values().all(|p| p.max_version >= 1);
        if self.optional && self.version == 0 && all_dave && !self.participants.is_empty() {
            self.upgrade();
        }
        self.reconcile(now);
    }

    /// What a client (socket or listener) sent.
    pub fn on_client(&mut self, user: u64, msg: FromClient, now: Instant) {
        let handshake = matches!(msg, FromClient::KeyPackage(_) | FromClient::Commit(_));
        if (handshake && self.version == 0) || !self.participants.contains_key(&user) {
            return;
        }
        match msg {
            FromClient::KeyPackage(b) => self.key_package(user, &b, now),
            FromClient::Commit(b) => self.commit(user, &b, now),
            FromClient::Ready(tid) => {
                let g = self.guild_id;
                self.event(SimEvent::TransitionReady {
                    guild_id: g,
                    user_id: user,
                    transition_id: tid,
                });
                if self.transition.as_ref().is_some_and(|t| t.id == tid) {
                    self.unwait(user, now);
                }
            }
            FromClient::Invalid(tid) => {
                let g = self.guild_id;
                self.event(SimEvent::InvalidCommitWelcome {
                    guild_id: g,
                    user_id: user,
                    transition_id: tid,
                });
                if let Some(p) = self.participants.get_mut(&user) {
                    p.kp = None;
                }
                if self.members.contains(&user) {
                    self.to_remove.insert(user);
                }
                self.unwait(user, now);
                self.reconcile(now);
            }
        }
    }

    fn key_package(&mut self, user: u64, bytes: &[u8], now: Instant) {
        let kp = match self.sender.validate_key_package(bytes, user) {
            Ok(kp) => kp,
            Err(why) => {
                return self.violation("dave.key_package", format!("user {user}: {why}; ignored"));
            }
        };
        let g = self.guild_id;
        self.event(SimEvent::KeyPackage {
            guild_id: g,
            user_id: user,
        });
        // Only the newest key package can be used to join: withdraw an Add made with an older one.
        self.revoke_where(|k| k == Kind::Add(user));
        if let Some(p) = self.participants.get_mut(&user) {
            p.kp = Some(kp);
        }
        self.reconcile(now);
    }

    fn pending_with_kp(&self) -> Vec<u64> {
        self.participants
            .iter()
            .filter(|(u, p)| p.kp.is_some() && !self.members.contains(u))
            .map(|(u, _)| *u)
            .collect()
    }

    fn live(&self, kind: Kind) -> bool {
        self.proposals.iter().any(|p| p.kind == kind && !p.revoked)
    }

    /// Decides what the group needs next: removals of members who left (or failed), a sole-member
    /// reset, and Adds for connected users with a key package who are not in the group.
    pub(super) fn reconcile(&mut self, now: Instant) {
        if self.version == 0 {
            return;
        }
        if self.epoch > 0 {
            let departing: BTreeSet<u64> = self
                .members
                .iter()
                .filter(|m| !self.participants.contains_key(m) || self.to_remove.contains(m))
                .copied()
                .collect();
            let remaining: Vec<u64> = self.members.difference(&departing).copied().collect();
            let rejoining = departing.iter().any(|d| self.participants.contains_key(d));
            if remaining.is_empty() {
                self.forget_group();
            } else if remaining.len() == 1 && !rejoining && self.pending_with_kp().is_empty() {
                if !departing.is_empty() {
                    self.sole_member_reset(remaining[0], now);
                }
                return;
            } else {
                for d in departing {
                    if !self.live(Kind::Remove(d)) {
                        self.propose_remove(d, &remaining);
                    }
                }
            }
        }
        for u in self.pending_with_kp() {
            if !self.live(Kind::Add(u)) {
                self.propose_add(u);
            }
        }
    }

    fn forget_group(&mut self) {
        self.epoch = 0;
        self.members.clear();
        self.to_remove.clear();
        self.proposals.clear();
        self.transition = None;
    }

    /// docs/protocol.md §6.5 G: op 24 {epoch 1} then op 21 {transition_id 0}; the member starts
    /// over.
    fn sole_member_reset(&mut self, user: u64, now: Instant) {
        self.forget_group();
        let (g, v) = (self.guild_id, self.version);
        self.send_json(
            user,
            24,
            json!({"epoch": 1, "protocol_version": v, "transition_id": 0}),
        );
        self.event(SimEvent::PrepareEpoch {
            guild_id: g,
            user_id: user,
            epoch: 1,
            protocol_version: v,
        });
        self.send_json(user, 21, json!({"transition_id": 0, "protocol_version": v}));
        self.event(SimEvent::PrepareTransition {
            guild_id: g,
            transition_id: 0,
            protocol_version: v,
        });
        if let Some(p) = self.participants.get_mut(&user) {
            p.kp = None;
        }
        self.executed.push(now);
    }

    /// The leaf of `user`, read from a listener that is a member at the current epoch
    /// (docs/protocol.md §8.2, option a).
    pub(super) fn leaf_of(&self, user: u64) -> Option<u32> {
        self.listeners
            .values()
            .filter(|l| l.user_id != user && self.members.contains(&l.user_id))
            .filter(|l| l.epoch() == Some(self.epoch))
            .find_map(|l| l.leaf_of(user))
    }

    fn propose_remove(&mut self, user: u64, to: &[u64]) {
        let Some(leaf) = self.leaf_of(user) else {
            tracing::warn!(target: "voxboard_sim", user, "no listener knows the leaf to remove");
            return;
        };
        let to: BTreeSet<u64> = to
            .iter()
            .copied()
            .filter(|u| self.participants.contains_key(u))
            .collect();
        match self.sender.remove(leaf, self.channel_id, self.epoch) {
            Ok(sp) => self.broadcast_proposal(Kind::Remove(user), sp, to, None),
            Err(e) => tracing::warn!(target: "voxboard_sim", "remove proposal: {e}"),
        }
    }

    fn propose_add(&mut self, user: u64) {
        let Some(kp) = self.participants.get(&user).and_then(|p| p.kp.clone()) else {
            return;
        };
        let to: BTreeSet<u64> = if self.epoch > 0 {
            self.members
                .iter()
                .filter(|m| self.participants.contains_key(m) && !self.to_remove.contains(m))
                .copied()
                .collect()
        } else {
            self.pending_with_kp()
                .into_iter()
                .filter(|u| *u != user)
                .collect()
        };
        let kp_ref = self.sender.key_package_ref(&kp);
        let sp = match self.sender.add(kp, self.channel_id, self.epoch) {
            Ok(sp) => sp,
            Err(e) => return tracing::warn!(target: "voxboard_sim", "add proposal: {e}"),
        };
        self.broadcast_proposal(Kind::Add(user), sp, to, kp_ref);
        if self.epoch == 0 {
            // A late joiner with no group gets the Adds still in flight for the others.
            let mut msgs = Vec::new();
            let mut adds = Vec::new();
            for p in self.proposals.iter_mut().filter(|p| !p.revoked) {
                if let Kind::Add(o) = p.kind
                    && o != user
                    && !p.to.contains(&user)
                {
                    p.to.insert(user);
                    msgs.push(p.message.clone());
                    adds.push(o);
                }
            }
            if !msgs.is_empty() {
                self.send_proposals(user, &msgs, adds, Vec::new());
            }
        }
    }

    fn broadcast_proposal(
        &mut self,
        kind: Kind,
        sp: external_sender::SignedProposal,
        to: BTreeSet<u64>,
        kp_ref: Option<Vec<u8>>,
    ) {
        let (adds, removes) = match kind {
            Kind::Add(u) => (vec![u], vec![]),
            Kind::Remove(u) => (vec![], vec![u]),
        };
        for t in &to {
            self.send_proposals(
                *t,
                std::slice::from_ref(&sp.message),
                adds.clone(),
                removes.clone(),
            );
        }
        self.proposals.push(Prop {
            proposal_ref: sp.proposal_ref,
            kind,
            revoked: false,
            to,
            message: sp.message,
            kp_ref,
        });
    }

    fn send_proposals(&mut self, to: u64, msgs: &[Vec<u8>], adds: Vec<u64>, removes: Vec<u64>) {
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        match external_sender::append_body(&refs) {
            Ok(body) => self.send(to, ToClient::Binary(27, body)),
            Err(e) => return tracing::warn!(target: "voxboard_sim", "op 27: {e}"),
        }
        let (g, epoch) = (self.guild_id, self.epoch);
        self.event(SimEvent::Proposals {
            guild_id: g,
            epoch,
            adds,
            removes,
            revoked: 0,
        });
    }

    /// Revokes every live proposal matching `pred` (op 27 type 1 to those who got it).
    fn revoke_where(&mut self, pred: impl Fn(Kind) -> bool) -> usize {
        let mut by_user: BTreeMap<u64, Vec<[u8; 32]>> = BTreeMap::new();
        let mut n = 0;
        for p in self
            .proposals
            .iter_mut()
            .filter(|p| !p.revoked && pred(p.kind))
        {
            p.revoked = true;
            n += 1;
            for t in &p.to {
                by_user.entry(*t).or_default().push(p.proposal_ref);
            }
        }
        for (u, refs) in by_user {
            if !self.participants.contains_key(&u) {
                continue;
            }
            if let Ok(body) = external_sender::revoke_body(&refs) {
                self.send(u, ToClient::Binary(27, body));
                let (g, epoch) = (self.guild_id, self.epoch);
                self.event(SimEvent::Proposals {
                    guild_id: g,
                    epoch,
                    adds: vec![],
                    removes: vec![],
                    revoked: refs.len(),
                });
            }
        }
        n
    }

    /// Fault: revoke the newest in-flight Add; its user's key package is dropped (it stays pending
    /// until it sends a new one). Returns the user whose Add was revoked.
    pub fn revoke_pending_add(&mut self) -> Option<u64> {
        let user = self.proposals.iter().rev().find_map(|p| match p.kind {
            Kind::Add(u) if !p.revoked => Some(u),
            _ => None,
        })?;
        self.revoke_where(|k| k == Kind::Add(user));
        if let Some(p) = self.participants.get_mut(&user) {
            p.kp = None;
        }
        Some(user)
    }

    pub(super) fn alloc_tid(&mut self) -> u16 {
        self.next_tid = self.next_tid.checked_add(1).unwrap_or(1);
        self.next_tid
    }

    /// `user` no longer holds up the current transition.
    pub(super) fn unwait(&mut self, user: u64, now: Instant) {
        if let Some(t) = &mut self.transition {
            t.waiting.remove(&user);
            if t.waiting.is_empty() {
                self.execute(now);
            }
        }
    }

    /// op 22 to every DAVE member of the call.
    fn execute(&mut self, now: Instant) {
        let Some(t) = self.transition.take() else {
            return;
        };
        for u in self.dave_capable() {
            self.send_json(u, 22, json!({ "transition_id": t.id }));
        }
        let (g, epoch) = (self.guild_id, self.epoch);
        self.event(SimEvent::ExecuteTransition {
            guild_id: g,
            transition_id: t.id,
            epoch,
        });
        if self.version == 0 {
            if self.e2ee_since.take().is_some() {
                self.downgraded_at = Some(now);
            }
        } else {
            self.downgraded_at = None;
            self.e2ee_since.get_or_insert(now);
        }
        self.executed.push(now);
    }

    /// Timers: the transition timeout and listeners' delayed commits.
    pub fn tick(&mut self, now: Instant) {
        if self
            .transition
            .as_ref()
            .is_some_and(|t| now.duration_since(t.started) >= TRANSITION_TIMEOUT)
        {
            self.execute(now);
        }
        let due: Vec<(u64, FromClient)> = self
            .listeners
            .iter_mut()
            .filter_map(|(u, l)| l.due(now).map(|m| (*u, m)))
            .collect();
        for (u, m) in due {
            self.on_client(u, m, now);
        }
    }
}
