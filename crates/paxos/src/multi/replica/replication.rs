//! Phase 2 as the leader runs it (batches, the pipeline, accepts, acknowledgements, the
//! commit point) and as an acceptor answers it; commands forwarded to the leader.

use super::*;

impl<C: Command, R: RngCore> Shared<C, R> {
    /// Gives slots to pending commands while the window has room, one accept per batch.
    /// Sends what pending commands the pipeline has room for; whether it sent any.
    pub(super) fn pump(&mut self, leader: &mut Leader<C>) -> bool {
        self.retire_when_recovered(leader);
        let commit = self.log.commit();
        let options = &self.options;
        while leader.batch_ends.front().is_some_and(|&end| end <= commit) {
            leader.batch_ends.pop_front();
        }
        let mut batches = Vec::new();
        while !leader.pending.is_empty() && leader.batch_ends.len() < options.pipeline_depth {
            let room = options
                .window_slots
                .saturating_sub(leader.in_flight.len() as u64);
            let room = usize::try_from(room).unwrap_or(usize::MAX);
            let count_max = options.batch_max_commands.min(room);
            if count_max == 0 {
                break;
            }
            let first = leader.first + leader.in_flight.len() as u64;
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(entry) = leader.pending.front() {
                let full = batch.len() == count_max
                    || (!batch.is_empty() && bytes + entry.size() > options.batch_max_bytes);
                if full {
                    break;
                }
                bytes += entry.size();
                if let Some(entry) = leader.pending.pop_front() {
                    batch.push(entry);
                }
            }
            leader.in_flight.extend(batch.iter().map(|entry| InFlight {
                entry: entry.clone(),
                acks: AcceptorSet::EMPTY,
            }));
            leader.batch_ends.push_back(first + batch.len() as u64 - 1);
            batches.push((first, Batch::from(batch)));
        }
        let ballot = leader.ballot;
        let sent = !batches.is_empty();
        for (first, entries) in batches {
            self.broadcast(&Message::Accept {
                ballot,
                first,
                entries,
                commit,
            });
        }
        sent
    }

    /// The bound on one promise chunk or catch-up reply.
    pub(super) fn chunk_limit(&self) -> Limit {
        Limit {
            entries: self.options.chunk_entries,
            bytes: self.options.batch_max_bytes,
        }
    }

    /// Sends accepts for in-flight slots `from..=to`, in batches (bounded by count and
    /// bytes, like new batches), to `only` or everyone.
    pub(super) fn send_in_flight(
        &mut self,
        leader: &Leader<C>,
        from: Slot,
        to: Slot,
        only: Option<NodeId>,
    ) {
        let commit = self.log.commit();
        let step = u64::try_from(self.options.batch_max_commands).unwrap_or(u64::MAX);
        let ballot = leader.ballot;
        let mut messages = Vec::new();
        let mut first = from.max(leader.first);
        let to = to.min(leader.first.saturating_add(leader.in_flight.len() as u64) - 1);
        while first <= to {
            let mut bytes = 0;
            let mut entries = Vec::new();
            let mut slot = first;
            while slot <= to && (entries.len() as u64) < step {
                let Some(f) = leader.in_flight.get(distance(leader.first, slot)) else {
                    break;
                };
                let size = f.entry.size();
                if !entries.is_empty() && bytes + size > self.options.batch_max_bytes {
                    break;
                }
                bytes += size;
                entries.push(f.entry.clone());
                slot += 1;
            }
            if entries.is_empty() {
                break;
            }
            messages.push(Message::Accept {
                ballot,
                first,
                entries: entries.into(),
                commit,
            });
            first = slot;
        }
        for message in messages {
            match only {
                Some(to) => self.send(to, message),
                None => self.broadcast(&message),
            }
        }
    }

    /// An acceptor's answer to an accept. A follower also learns the leader's commit
    /// point from it (a leader or candidate gets accepts only at its own ballot, from
    /// itself, and knows its commit point already).
    pub(super) fn on_accept(
        &mut self,
        role: RoleKind,
        ballot: Ballot,
        first: Slot,
        entries: Batch<C>,
        commit: Slot,
    ) {
        let leader = ballot.node;
        if ballot < self.promised {
            return self.nack(leader, ballot);
        }
        self.follow(ballot);
        let last = first.saturating_add(entries.len() as u64).saturating_sub(1);
        let learner = role == RoleKind::Follower;
        if entries.is_empty() || first == 0 {
            if learner {
                self.learn_commit(ballot, commit);
            }
            return;
        }
        // Slots already chosen here need no vote; slots too far ahead are refused.
        let start = first.max(self.log.commit() + 1);
        let end = last.min(self.log.commit().saturating_add(self.options.gap_max_slots));
        if start <= end {
            let skip = distance(first, start);
            let kept = distance(start, end) + 1;
            let kept: Batch<C> = if skip == 0 && kept == entries.len() {
                entries
            } else {
                entries[skip..skip + kept].into()
            };
            for (slot, entry) in (start..).zip(kept.iter()) {
                let entry = entry.clone();
                self.log.set(slot, LogEntry { ballot, entry });
            }
            self.out.push(Action::Persist(Write::Votes {
                ballot,
                first: start,
                entries: kept,
            }));
        }
        // Slots through `end` are now durably voted for at `ballot` or already chosen.
        if first <= end {
            let accepted = Message::Accepted {
                ballot,
                first,
                last: end,
            };
            if self.options.learn_from_acceptors {
                self.broadcast(&accepted);
            } else {
                self.send(leader, accepted);
            }
        }
        if learner {
            self.learn_commit(ballot, commit);
            // Reports that came before this accept may already make its slots chosen.
            self.commit_reported(ballot);
        }
    }

    /// A message from the leader of `ballot` (at or above our promise) arrived.
    pub(super) fn follow(&mut self, ballot: Ballot) {
        if ballot > self.promised {
            self.promised = ballot;
        }
        // A leader of an epoch older than ours steps down when it applies the change
        // that ended it (or already did): it is not followed, and does not hold off an
        // election in the new epoch.
        let superseded = ballot.epoch() < self.membership.epoch();
        if ballot.node != self.id && !superseded {
            self.leader = Some(ballot.node);
            self.election.heard_from_leader(&mut self.rng);
            if !self.stranded.is_empty() {
                let commands = mem::take(&mut self.stranded);
                self.forward(ballot.node, commands);
            }
        }
    }

    pub(super) fn on_accepted(
        &mut self,
        leader: &mut Leader<C>,
        acceptor: usize,
        ballot: Ballot,
        first: Slot,
        last: Slot,
    ) {
        if ballot != leader.ballot {
            return;
        }
        let start = first.max(leader.first);
        let end = last.min(leader.first + leader.in_flight.len() as u64 - 1);
        for slot in start..=end {
            if let Some(slot) = leader.in_flight.get_mut(distance(leader.first, slot)) {
                slot.acks.insert(acceptor);
            }
        }
        self.advance_commit(leader);
    }

    /// Moves the commit point over every leading slot a phase-2 quorum accepted.
    pub(super) fn advance_commit(&mut self, leader: &mut Leader<C>) {
        let quorum = self.membership.current().quorum();
        let mut advanced = false;
        while let Some(front) = leader.in_flight.front() {
            if !quorum.is_phase2_quorum(front.acks) {
                break;
            }
            let Some(chosen) = leader.in_flight.pop_front() else {
                break;
            };
            let slot = leader.first;
            let existing = self.log.get(slot).map(|e| &e.entry);
            if existing != Some(&chosen.entry) {
                // Our own vote is not in yet (or a stale one is): record the chosen entry,
                // durably before any commit point that covers it is written.
                let entry = LogEntry {
                    ballot: leader.ballot,
                    entry: chosen.entry,
                };
                self.log.set(slot, entry.clone());
                let entries = vec![entry];
                self.out.push(Action::Persist(Write::Chosen {
                    first: slot,
                    entries,
                }));
            }
            self.log.commit_through(slot);
            leader.first += 1;
            advanced = true;
        }
        if advanced {
            self.known_commit = self.known_commit.max(self.log.commit());
            self.apply_committed();
            self.serve_reads(leader);
            if !self.pump(leader) {
                // No accept leaves to carry the new commit point: tell the followers now,
                // or they (and the clients waiting on them) learn it a heartbeat later.
                self.broadcast_heartbeat(leader);
            }
        }
    }

    /// Every heartbeat interval: if the commit point has not moved since the last check,
    /// some accept or ack was lost; resend the oldest batch to those that did not ack.
    pub(super) fn resend_if_stalled(&mut self, leader: &mut Leader<C>) {
        let commit = self.log.commit();
        let stalled = leader.commit_at_check == commit && !leader.in_flight.is_empty();
        leader.commit_at_check = commit;
        if !stalled {
            return;
        }
        let first = leader.first;
        let step = u64::try_from(self.options.batch_max_commands).unwrap_or(u64::MAX);
        let last = first.saturating_add(step - 1);
        let acks = leader.in_flight[0].acks;
        let missing: Vec<NodeId> = self
            .membership
            .roster()
            .iter()
            .copied()
            .enumerate()
            .filter(|&(i, _)| !acks.contains(i))
            .map(|(_, id)| id)
            .collect();
        for to in missing {
            self.send_in_flight(leader, first, last, Some(to));
        }
    }

    pub(super) fn forward(&mut self, leader: NodeId, commands: Vec<C>) {
        self.forward_seq += 1;
        let message = Message::Forward {
            ballot: self.promised,
            boot: self.boot,
            seq: self.forward_seq,
            commands,
        };
        self.send(leader, message);
    }

    pub(super) fn on_forward(
        &mut self,
        leader: &mut Leader<C>,
        sender: usize,
        boot: u64,
        seq: u64,
        commands: Vec<C>,
    ) {
        if !self.forwards_seen[sender].first_time(boot, seq) {
            return; // A duplicate: its commands were taken already.
        }
        leader
            .pending
            .extend(commands.into_iter().map(Entry::Command));
        self.pump(leader);
    }
}

#[derive(Clone, Debug, Hash)]
pub(super) struct InFlight<C> {
    pub(super) entry: Entry<C>,
    pub(super) acks: AcceptorSet,
}

#[derive(Clone, Debug)]
pub(super) struct Leader<C> {
    pub(super) ballot: Ballot,
    /// `in_flight[0]` is this slot; always the commit point + 1.
    pub(super) first: Slot,
    pub(super) in_flight: VecDeque<InFlight<C>>,
    /// Commands (and this leader's membership entries) not yet given a slot (the
    /// pipeline is full).
    pub(super) pending: VecDeque<Entry<C>>,
    /// The last slot of each batch of new commands not yet chosen.
    pub(super) batch_ends: VecDeque<Slot>,
    /// Whether this leader proposed the retirement of the older configurations.
    pub(super) retire_proposed: bool,
    /// Every slot chosen before this ballot is at or below this one.
    pub(super) recovered_through: Slot,
    pub(super) heartbeat_elapsed: u32,
    /// The commit point at the last resend check, to tell a stalled pipeline.
    pub(super) commit_at_check: Slot,
    pub(super) seq: u64,
    /// Per acceptor, the highest heartbeat it acknowledged at this ballot.
    pub(super) acked_seq: Vec<u64>,
    /// Per member, the tick of its last request to catch up at this ballot: it was then
    /// missing chosen entries. Only the answers to a promotion or a transfer read it.
    pub(super) behind_at: Vec<Option<u64>>,
    /// The tick this replica started to lead.
    pub(super) since: u64,
    /// When each heartbeat not yet confirmed by a phase-2 quorum was sent: (seq, tick).
    pub(super) sent_at: VecDeque<(u64, u64)>,
    /// Reads may be served locally before this tick (0: no lease).
    pub(super) lease_until: u64,
    pub(super) reads: VecDeque<PendingRead>,
}

impl<C> Leader<C> {
    /// The member at roster position `member` asked to catch up at tick `now`.
    pub(super) fn heard_behind(&mut self, member: usize, now: u64) {
        if let Some(at) = self.behind_at.get_mut(member) {
            *at = Some(now);
        }
    }

    /// Whether the member at roster position `member` is known to hold the log: this
    /// leader has led for an election timeout (`quiet` ticks), the member acknowledged
    /// its heartbeats (which carry the commit point) within the last `recent` of them,
    /// and it has not asked to catch up for an election timeout. A member that knows the
    /// commit point and lacks entries below it asks for them within two heartbeats; its
    /// votes alone prove nothing, since an acceptor votes for slots far past its own
    /// commit point.
    pub(super) fn in_sync(&self, member: usize, now: u64, quiet: u64, recent: u64) -> bool {
        let acked = self.acked_seq.get(member).copied().unwrap_or(0);
        let asked = self.behind_at.get(member).copied().flatten();
        now.saturating_sub(self.since) >= quiet
            && acked > 0
            && acked.saturating_add(recent) >= self.seq
            && asked.is_none_or(|at| now.saturating_sub(at) >= quiet)
    }
}

/// The forwards taken from one sender: the highest number of its current boot, and which
/// of the 63 below it arrived too. Anything older is treated as a duplicate (dropped; its
/// client times out), so a reordered forward is lost only if 64 newer ones overtook it.
#[derive(Clone, Copy, Debug, Default, Hash)]
pub(super) struct SeenForwards {
    pub(super) boot: u64,
    pub(super) highest: u64,
    pub(super) below: u64,
}

impl SeenForwards {
    /// Records forward `seq` of `boot`; false if it was seen (or may have been) before.
    pub(super) fn first_time(&mut self, boot: u64, seq: u64) -> bool {
        if boot != self.boot {
            *self = SeenForwards {
                boot,
                highest: seq,
                below: 0,
            };
            return true;
        }
        if seq > self.highest {
            let shift = seq - self.highest;
            self.below = if shift >= 64 {
                0
            } else {
                (self.below << shift) | (1 << (shift - 1))
            };
            self.highest = seq;
            return true;
        }
        let back = self.highest - seq;
        if back == 0 || back > 63 {
            return false;
        }
        let bit = 1 << (back - 1);
        let fresh = self.below & bit == 0;
        self.below |= bit;
        fresh
    }
}
