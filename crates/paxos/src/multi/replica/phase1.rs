//! Election: ballots and roles, and phase 1 (prepare, promise, and becoming leader with
//! the highest-ballot vote of every slot re-proposed), by Paxos's rule or with Raft's
//! vote restriction ([`ElectionMode`]).

use super::*;

impl<C: Command, R: RngCore> Replica<C, R> {
    /// Any ballot above our own, in any message, means a newer leader or candidate exists:
    /// a leader or candidate steps down.
    pub(super) fn observe(&mut self, ballot: Ballot) {
        self.shared.highest_seen = self.shared.highest_seen.max(ballot);
        let own = match &self.role {
            Role::Follower => None,
            Role::Candidate(c) => Some(c.ballot),
            Role::Leader(l) => Some(l.ballot),
        };
        if own.is_some_and(|own| ballot > own) {
            self.step_down();
        }
    }

    pub(super) fn step_down(&mut self) {
        let role = mem::replace(&mut self.role, Role::Follower);
        let shared = &mut self.shared;
        shared.leader = None;
        if let Role::Leader(old) = role {
            // A follower's request is dropped: it asks again, of the next leader.
            for read in old.reads.into_iter().filter(|r| r.asker.is_none()) {
                let error = ReadError::LeadershipLost;
                shared.out.push(Action::ReadFailed { id: read.id, error });
            }
            // Commands that never got a slot: `propose` took them, so they are not
            // dropped; they go to the next leader this replica learns of (or back into
            // its own queue if it leads again).
            // A membership entry is dropped: its requester learns so from the epoch.
            shared
                .stranded
                .extend(old.pending.into_iter().filter_map(Entry::into_command));
        }
    }

    pub(super) fn campaign(&mut self) {
        let shared = &mut self.shared;
        shared.election.campaign_started(&mut shared.rng);
        if !shared.membership.current().is_voter(shared.id) {
            return; // A learner never leads.
        }
        if !shared.membership.is_settled() {
            return; // A joining member leads only on configurations the log chose.
        }
        if shared.grant_refuses(shared.id) {
            return; // Our own acceptor still honours another leader's lease.
        }
        shared.fail_follower_reads();
        let above = shared.highest_seen.max(shared.promised);
        let epoch = shared.membership.epoch();
        let Some(ballot) = Ballot::next_in_epoch(above, epoch, shared.id) else {
            // Rounds exhausted (never reuse a ballot), or a ballot of a later epoch was
            // seen, whose configuration this replica must learn before it may lead.
            return;
        };
        self.step_down();
        let shared = &mut self.shared;
        if ballot.epoch() > shared.promised.epoch() {
            // The first ballot of a new epoch: the commit point that covers the change
            // which began the epoch is durable before the promise. A replica that
            // restarted knowing the promise but not the change could never campaign
            // again (it waits to learn the epoch), nor could the acceptors that
            // promised it, if no one else had applied the change.
            let commit = shared.log.commit();
            shared.out.push(Action::Persist(Write::Commit(commit)));
        }
        shared.promised = ballot;
        shared.highest_seen = ballot;
        // Durable before the prepares leave: a restarted replica then never reuses it.
        shared.out.push(Action::Persist(Write::Promise(ballot)));
        let from = shared.log.commit() + 1;
        let count = shared.membership.roster().len();
        self.role = Role::Candidate(Candidate {
            ballot,
            from,
            cursor: vec![Some(from); count],
            promised: AcceptorSet::EMPTY,
            votes: BTreeMap::new(),
        });
        let log = match shared.options.election {
            ElectionMode::Paxos => Vec::new(),
            ElectionMode::Raft => shared.log.runs_from(from, LOG_RUNS_MAX),
        };
        shared.broadcast(&Message::Prepare { ballot, from, log });
        #[cfg(feature = "negative-controls")]
        if shared.skips_phase1 {
            self.become_leader();
        }
    }

    /// Breaks the protocol on purpose, for the negative controls: a candidate in a new
    /// epoch completes phase 1 with a phase-1 quorum of the current configuration alone,
    /// not of the older ones still active.
    #[cfg(feature = "negative-controls")]
    pub fn phase1_in_current_configuration_only(&mut self) {
        self.shared.phase1_in_current_only = true;
    }

    /// Breaks the protocol on purpose, for the negative controls: a snapshot installed
    /// from a peer leaves this replica's membership as it was (openraft #1808's class of
    /// bug), so the changes the snapshot covers are never learned.
    #[cfg(feature = "negative-controls")]
    pub fn drop_snapshot_membership(&mut self) {
        self.shared.drops_snapshot_membership = true;
    }

    /// Breaks the protocol on purpose, for the negative controls: with Raft's election, a
    /// voter promises any higher ballot without checking that the candidate's log covers
    /// its own (and still reports no votes).
    #[cfg(feature = "negative-controls")]
    pub fn skip_vote_restriction(&mut self) {
        self.shared.skips_vote_restriction = true;
    }

    /// Breaks the protocol on purpose, for the simulator's negative controls: a candidate
    /// declares itself leader at once, without any promise, and so without the votes P2c
    /// needs.
    #[cfg(feature = "negative-controls")]
    pub fn skip_phase1(&mut self) {
        self.shared.skips_phase1 = true;
    }

    /// Phase 1 is complete for every slot from `candidate.from` on. Re-propose, at our
    /// ballot, the highest-ballot vote of every slot we learned of; fill holes with
    /// no-ops; then serve new commands.
    pub(super) fn become_leader(&mut self) {
        let Role::Candidate(candidate) = mem::replace(&mut self.role, Role::Follower) else {
            return;
        };
        let shared = &mut self.shared;
        let first = shared.log.commit() + 1;
        let mut candidate = candidate;
        if shared.options.election == ElectionMode::Raft {
            // The voters reported nothing: their votes are covered by ours (or, from a
            // Paxos voter, reported and merged like any). Our own log is what we lead
            // with; it holds every entry that may have been chosen.
            for slot in first..=shared.log.last() {
                if let Some(vote) = shared.log.get(slot) {
                    let higher = candidate
                        .votes
                        .get(&slot)
                        .is_none_or(|known| vote.ballot > known.ballot);
                    if higher {
                        candidate.votes.insert(slot, vote.clone());
                    }
                }
            }
        }
        let recovered_through = candidate
            .votes
            .last_key_value()
            .map_or(first - 1, |(&slot, _)| slot)
            .max(shared.log.commit());
        let mut votes = candidate.votes;
        let in_flight: VecDeque<InFlight<C>> = (first..=recovered_through)
            .map(|slot| InFlight {
                entry: votes.remove(&slot).map_or(Entry::Noop, |v| v.entry),
                acks: AcceptorSet::EMPTY,
            })
            .collect();
        let count = shared.membership.roster().len();
        let mut leader = Leader {
            ballot: candidate.ballot,
            first,
            in_flight,
            pending: mem::take(&mut shared.stranded)
                .into_iter()
                .map(Entry::Command)
                .collect(),
            batch_ends: VecDeque::new(),
            retire_proposed: false,
            recovered_through,
            heartbeat_elapsed: 0,
            commit_at_check: shared.log.commit(),
            seq: 0,
            acked_seq: vec![0; count],
            behind_at: vec![None; count],
            since: shared.now,
            sent_at: VecDeque::new(),
            lease_until: 0,
            reads: VecDeque::new(),
        };
        shared.leader = Some(shared.id);
        shared.send_in_flight(&leader, first, recovered_through, None);
        shared.broadcast_heartbeat(&mut leader);
        shared.pump(&mut leader);
        self.role = Role::Leader(leader);
    }
}

impl<C: Command, R: RngCore> Shared<C, R> {
    pub(super) fn on_prepare(
        &mut self,
        candidate: NodeId,
        ballot: Ballot,
        from: Slot,
        log: &[LogRun],
    ) {
        if ballot < self.promised {
            return self.nack(candidate, ballot);
        }
        if from <= self.log.compacted() {
            let compacted = self.log.compacted();
            return self.send(candidate, Message::Behind { ballot, compacted });
        }
        if ballot > self.promised && self.grant_refuses(candidate) {
            return; // A lease we granted still runs; the candidate retries later.
        }
        let raft = self.options.election == ElectionMode::Raft;
        let restricted = raft && candidate != self.id;
        #[cfg(feature = "negative-controls")]
        let restricted = restricted && !self.skips_vote_restriction;
        if restricted && !self.log.covered_by(from, log) {
            // Raft's vote restriction: the candidate's log lacks a vote of ours, or holds
            // it at a lower ballot. No promise: another, better candidate will come.
            return;
        }
        if ballot > self.promised {
            self.promised = ballot;
            self.out.push(Action::Persist(Write::Promise(ballot)));
            self.leader = None;
        }
        if candidate != self.id {
            self.election.heard_from_leader(&mut self.rng);
        }
        let (votes, next) = if raft {
            // Everything we hold, the candidate holds at a ballot as high.
            (Vec::new(), None)
        } else {
            self.log.votes_from(from, self.chunk_limit())
        };
        let votes = votes
            .into_iter()
            .map(|(slot, vote)| SlotVote { slot, vote })
            .collect();
        let promise = Message::Promise {
            ballot,
            from,
            votes,
            next,
        };
        self.send(candidate, promise);
    }

    /// A chunk of a promise at the candidate's ballot (`step_candidate` drops those for
    /// an earlier ballot of ours).
    pub(super) fn on_promise(
        &mut self,
        candidate: &mut Candidate<C>,
        acceptor: NodeId,
        index: usize,
        from: Slot,
        votes: Vec<SlotVote<C>>,
        next: Option<Slot>,
    ) -> PhaseOne {
        if candidate.cursor[index] != Some(from) {
            return PhaseOne::UnderWay; // Repeated or out-of-order chunk.
        }
        let ballot = candidate.ballot;
        let horizon = candidate.from.saturating_add(self.options.gap_max_slots);
        if votes.iter().any(|v| v.slot > horizon) {
            // The acceptor holds votes far beyond our log: we are too far behind to
            // lead. Catch up from it first.
            return PhaseOne::Behind(acceptor);
        }
        for SlotVote { slot, vote } in votes {
            if slot < candidate.from {
                continue;
            }
            let higher = candidate
                .votes
                .get(&slot)
                .is_none_or(|known| vote.ballot > known.ballot);
            if higher {
                candidate.votes.insert(slot, vote);
            }
        }
        candidate.cursor[index] = next;
        if let Some(next) = next {
            let log = Vec::new();
            self.send(
                acceptor,
                Message::Prepare {
                    ballot,
                    from: next,
                    log,
                },
            );
            return PhaseOne::UnderWay;
        }
        candidate.promised.insert(index);
        #[cfg(feature = "negative-controls")]
        if self.phase1_in_current_only {
            let quorum = self.membership.current().quorum();
            return if quorum.is_phase1_quorum(candidate.promised) {
                PhaseOne::Complete
            } else {
                PhaseOne::UnderWay
            };
        }
        if self.membership.is_phase1_quorum(candidate.promised) {
            PhaseOne::Complete
        } else {
            PhaseOne::UnderWay
        }
    }
}

/// At most this many runs describe a Raft candidate's log: past them the prepare claims
/// nothing, so a voter holding votes there refuses (safe; a log that fragmented is rare).
const LOG_RUNS_MAX: usize = 64;

#[derive(Clone, Debug, Hash)]
pub(super) struct Candidate<C> {
    pub(super) ballot: Ballot,
    /// The first slot phase 1 covers.
    pub(super) from: Slot,
    /// Per acceptor: the next chunk expected (`None` once its promise is complete).
    pub(super) cursor: Vec<Option<Slot>>,
    /// Acceptors whose whole promise arrived.
    pub(super) promised: AcceptorSet,
    /// The highest-ballot vote reported for each slot.
    pub(super) votes: BTreeMap<Slot, LogEntry<C>>,
}
