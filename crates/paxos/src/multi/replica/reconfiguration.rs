//! Membership changes: a leader proposes one as an entry; once chosen and applied, it is
//! the configuration of a new epoch, and the leader of the old epoch steps down and
//! campaigns in the new one, with phase 1 over both configurations; once that leader made
//! chosen everything its phase 1 found, it proposes the old configuration's retirement
//! (`docs/PROTOCOL.md`, "Reconfiguration").
//!
//! Chosen membership entries take effect at the end of the event that applied them
//! (`follow_membership`), never in the middle of a handler: the roster positions that
//! acknowledgements are counted by must not move under it.

use super::*;
use crate::multi::membership::{Change, ChangeError};

/// Why [`Replica::reconfigure`] proposed nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReconfigureError {
    /// Only the leader proposes changes; this is the one it knows of, if any.
    NotLeader {
        /// The leader this replica knows of.
        leader: Option<NodeId>,
    },
    /// Another change is under way: proposed and not yet applied, or applied and its old
    /// configuration not yet retired. One change at a time.
    InProgress,
    /// The learner to promote is not known to hold the log (it asked to catch up within
    /// the last election timeout, or has not acknowledged the leader lately, or the
    /// leader is too new to tell): promoted now, it could count in quorums before it
    /// can vote on what they decide.
    LearnerBehind(NodeId),
    /// The change breaks a rule; nothing was proposed.
    Refused(ChangeError),
}

impl std::fmt::Display for ReconfigureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReconfigureError::NotLeader { .. } => write!(f, "not the leader"),
            ReconfigureError::InProgress => write!(f, "another membership change is under way"),
            ReconfigureError::LearnerBehind(id) => {
                write!(f, "learner {id:?} is not in sync with the leader")
            }
            ReconfigureError::Refused(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReconfigureError {}

/// Why [`Replica::transfer_leadership`] sent nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferError {
    /// Only the leader hands over; this is the one this replica knows of, if any.
    NotLeader {
        /// The leader this replica knows of.
        leader: Option<NodeId>,
    },
    /// The target is not a voter of the current configuration (unknown, or a learner).
    NotVoter(NodeId),
    /// The target does not hold the log within one pipeline window of the commit point.
    Behind(NodeId),
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::NotLeader { .. } => write!(f, "not the leader"),
            TransferError::NotVoter(id) => write!(f, "{id:?} is not a voter"),
            TransferError::Behind(id) => write!(f, "{id:?} is not in sync with the leader"),
        }
    }
}

impl std::error::Error for TransferError {}

impl<C: Command, R: RngCore> Replica<C, R> {
    /// The configurations in force.
    pub fn membership(&self) -> &Membership {
        &self.shared.membership
    }

    /// Whether this replica was removed and is no longer needed, so its process should
    /// stop (a server's does, as etcd's): it applied a change out of a configuration
    /// (learned from the log) that had it, and has since heard from a leader of the epoch
    /// that change began, or a later one. Until then it still answers as an acceptor of
    /// the old configuration: the others may not have learned that the change, or the
    /// retirement before it, was chosen, and their phase 1 may need it. Set only by
    /// applying such a change since this replica started; a driver records it durably if
    /// it must outlive a restart.
    pub fn removed(&self) -> bool {
        let shared = &self.shared;
        shared.removed_in.is_some_and(|epoch| {
            shared.leader.is_some_and(|leader| leader != shared.id)
                && shared.promised.epoch() >= epoch
        })
    }

    /// For the leader: whether `peer` acknowledged one of its heartbeats within the last
    /// election timeout (itself counts as active). What an operator's change is checked
    /// against (`up` of [`Replica::reconfigure`]). `false` on any other replica.
    pub fn peer_active(&self, peer: NodeId) -> bool {
        let Role::Leader(leader) = &self.role else {
            return false;
        };
        if peer == self.shared.id {
            return true;
        }
        let options = &self.shared.options;
        let recent = u64::from((options.election_ticks / options.heartbeat_ticks.max(1)).max(1));
        self.shared
            .membership
            .position(peer)
            .and_then(|at| leader.acked_seq.get(at))
            .is_some_and(|&acked| acked > 0 && acked.saturating_add(recent) >= leader.seq)
    }

    /// Proposes `change` to the current configuration, checked against it and against
    /// which members are `up` (see [`Membership::changed`]). It takes effect when chosen
    /// and applied: the [`Action::Apply`] of an [`Entry::Configure`] says so, and
    /// [`Replica::membership`] shows it.
    pub fn reconfigure(
        &mut self,
        change: Change,
        up: impl Fn(NodeId) -> bool,
    ) -> Result<Vec<Action<C>>, ReconfigureError> {
        let shared = &mut self.shared;
        let Role::Leader(leader) = &mut self.role else {
            let leader = shared.leader;
            return Err(ReconfigureError::NotLeader { leader });
        };
        let proposed = leader
            .in_flight
            .iter()
            .map(|f| &f.entry)
            .chain(&leader.pending)
            .any(|e| matches!(e, Entry::Configure { .. }));
        if proposed || shared.membership.is_changing() || !shared.chosen_membership.is_empty() {
            return Err(ReconfigureError::InProgress);
        }
        let members = shared
            .membership
            .changed(change, up)
            .map_err(ReconfigureError::Refused)?;
        if let Change::Promote(id) = change {
            if !shared.in_sync(leader, id) {
                return Err(ReconfigureError::LearnerBehind(id));
            }
        }
        let base = shared.membership.epoch();
        leader.pending.push_back(Entry::Configure {
            base,
            members: Arc::new(members),
        });
        shared.pump(leader);
        Ok(self.finish())
    }

    /// For the leader: hands leadership to `to` (etcd's `MoveLeader`), a voter holding the
    /// log within one pipeline window of the commit point, by asking it to campaign now.
    /// Its higher ballot deposes this leader when its prepare arrives; until then this
    /// one leads on. Nothing is sent if `to` leads already.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<Vec<Action<C>>, TransferError> {
        let shared = &mut self.shared;
        let Role::Leader(leader) = &self.role else {
            let leader = shared.leader;
            return Err(TransferError::NotLeader { leader });
        };
        if to == shared.id {
            return Ok(self.finish());
        }
        if !shared.membership.current().is_voter(to) {
            return Err(TransferError::NotVoter(to));
        }
        if !shared.in_sync(leader, to) {
            return Err(TransferError::Behind(to));
        }
        let ballot = leader.ballot;
        shared.send(to, Message::Campaign { ballot });
        Ok(self.finish())
    }

    /// The leader this follower follows asks it to take over.
    pub(super) fn on_campaign(&mut self, from: NodeId, ballot: Ballot) {
        let asked = matches!(self.role, Role::Follower)
            && ballot == self.shared.promised
            && ballot.node == from
            && self.shared.leader == Some(from);
        if asked {
            self.campaign();
        }
    }

    /// Takes into effect the membership entries applied during this event. A leader or
    /// candidate of an older epoch then steps down; a leader that is a voter of the new
    /// configuration campaigns in it at once.
    pub(super) fn follow_membership(&mut self) {
        let shared = &mut self.shared;
        if shared.chosen_membership.is_empty() {
            return;
        }
        let before = shared.membership.roster().to_vec();
        for (slot, entry) in mem::take(&mut shared.chosen_membership) {
            match entry {
                // A change made against an epoch that is past changes nothing (its
                // requester sees the epoch did not move to it).
                Entry::Configure { base, members } => {
                    // Removed: a member of a configuration learned from the log, and not
                    // of the next one. (Installing a snapshot never counts: a member that
                    // joined after the snapshot's index is not in its membership either.)
                    let was_member = shared.membership.is_settled()
                        && shared.membership.current().position(shared.id).is_some();
                    let _ = shared.membership.adopt(base, members);
                    let is_member = shared.membership.current().position(shared.id).is_some();
                    if was_member && !is_member {
                        shared.removed_in = Some(shared.membership.epoch());
                    }
                }
                Entry::Retire { epoch } => shared.membership.retire_before(epoch),
                Entry::Noop | Entry::Command(_) => {}
            }
            shared.history.changed(slot, &shared.membership);
        }
        shared.follow_roster(&before);
        if matches!(self.role, Role::Follower) {
            self.shared.forget_departed_leader();
        }
    }

    /// A leader or candidate of an epoch older than the current one steps down; a leader
    /// that is a voter of the current configuration campaigns in it at once.
    pub(super) fn step_down_if_behind(&mut self) {
        let epoch = self.shared.membership.epoch();
        let (behind, leading) = match &self.role {
            Role::Leader(l) => (l.ballot.epoch() < epoch, true),
            Role::Candidate(c) => (c.ballot.epoch() < epoch, false),
            Role::Follower => (false, false),
        };
        if behind {
            self.step_down();
            if leading && self.shared.membership.current().is_voter(self.shared.id) {
                self.campaign();
            }
        }
    }
}

impl<C: Command, R: RngCore> Shared<C, R> {
    /// Notes a membership entry just applied, to take effect at the end of the event.
    pub(super) fn note_membership(&mut self, slot: Slot, entry: &Entry<C>) {
        if matches!(entry, Entry::Configure { .. } | Entry::Retire { .. }) {
            self.chosen_membership.push((slot, entry.clone()));
        }
    }

    /// An installed snapshot's membership replaces this replica's: the changes the
    /// snapshot covers were released with it, so they are learned from it or never.
    pub(super) fn install_membership(&mut self, membership: Membership) {
        let before = self.membership.roster().to_vec();
        self.history = MembershipHistory::new(membership.clone());
        self.membership = membership;
        self.follow_roster(&before);
    }

    /// Whether `member` is known to hold the log (see [`Leader::in_sync`]).
    fn in_sync(&self, leader: &Leader<C>, member: NodeId) -> bool {
        let quiet = u64::from(self.options.election_ticks);
        let recent = u64::from(self.options.election_ticks / self.options.heartbeat_ticks.max(1));
        self.membership
            .position(member)
            .is_some_and(|at| leader.in_sync(at, self.now, quiet, recent.max(1)))
    }

    /// The leader this follower follows is no longer a voter (it was removed, or made a
    /// learner): it stepped down and will not campaign. Forward nothing more to it, and
    /// campaign soon rather than after a whole election timeout.
    fn forget_departed_leader(&mut self) {
        let departed = self
            .leader
            .is_some_and(|l| l != self.id && !self.membership.current().is_voter(l));
        if departed {
            self.leader = None;
            self.election.suspect(&mut self.rng);
        }
    }

    /// What this replica keeps per peer follows the peer to its new roster position.
    pub(super) fn follow_roster(&mut self, before: &[NodeId]) {
        let after = self.membership.roster();
        if after == before {
            return;
        }
        let old = |id: NodeId| before.iter().position(|&b| b == id);
        let forwards: Vec<SeenForwards> = after
            .iter()
            .map(|&id| old(id).map_or_else(SeenForwards::default, |i| self.forwards_seen[i]))
            .collect();
        let snapshots: Vec<Option<u64>> = after
            .iter()
            .map(|&id| old(id).and_then(|i| self.snapshot_sent[i]))
            .collect();
        self.forwards_seen = forwards;
        self.snapshot_sent = snapshots;
        // Reports name acceptors by position: counted after the roster moved, they would
        // name others. Forget them; acceptors report again with their next votes.
        self.reports = Reports::default();
    }

    /// A leader of the newest epoch, with an older configuration still active, proposes
    /// its retirement once everything its phase 1 found is chosen: from then on every
    /// value an older configuration may have chosen is chosen in this one too.
    pub(super) fn retire_when_recovered(&mut self, leader: &mut Leader<C>) {
        let ready = self.membership.is_changing()
            && !leader.retire_proposed
            && self.log.commit() >= leader.recovered_through
            && leader.ballot.epoch() == self.membership.epoch();
        if ready {
            leader.retire_proposed = true;
            let epoch = self.membership.epoch();
            leader.pending.push_front(Entry::Retire { epoch });
        }
    }
}

/// The membership at the compacted point, and after each change applied above it: a
/// snapshot at any applied slot is taken with the membership the log had there.
#[derive(Clone, Debug)]
pub(super) struct MembershipHistory {
    compacted: Membership,
    /// By slot, ascending: the membership after applying that slot's change.
    changes: VecDeque<(Slot, Membership)>,
}

impl MembershipHistory {
    pub(super) fn new(compacted: Membership) -> MembershipHistory {
        MembershipHistory {
            compacted,
            changes: VecDeque::new(),
        }
    }

    /// The change at `slot` left `membership`.
    pub(super) fn changed(&mut self, slot: Slot, membership: &Membership) {
        self.changes.push_back((slot, membership.clone()));
    }

    /// The membership at the compacted point.
    pub(super) fn compacted(&self) -> &Membership {
        &self.compacted
    }

    /// The log is compacted through `index`: returns the membership there, which the
    /// history now starts from.
    pub(super) fn compact(&mut self, index: Slot) -> Membership {
        while self.changes.front().is_some_and(|(slot, _)| *slot <= index) {
            if let Some((_, membership)) = self.changes.pop_front() {
                self.compacted = membership;
            }
        }
        self.compacted.clone()
    }
}
