//! Linearizable reads: heartbeats and their acknowledgements, read index on the leader
//! and for followers, and leader leases.

use super::*;

#[cfg(feature = "negative-controls")]
impl<C, R> Replica<C, R> {
    /// Breaks the protocol on purpose, for the simulator's negative controls: a follower
    /// serves a read as soon as the leader's read index arrives, without applying through
    /// it first, so it can answer from a state older than a completed write.
    #[cfg(feature = "negative-controls")]
    pub fn serve_follower_reads_unapplied(&mut self) {
        self.shared.serves_reads_unapplied = true;
    }

    /// Breaks the protocol on purpose, for the simulator's negative controls: a leader
    /// reads at its commit point even while its followers learn from acceptors, so it can
    /// miss a write a follower has already answered.
    #[cfg(feature = "negative-controls")]
    pub fn read_at_commit_point(&mut self) {
        self.shared.reads_at_commit_point = true;
    }
}

impl<C: Command, R: RngCore> Shared<C, R> {
    /// As leader: a read of ours (`asker` `None`) or a follower's read-index request.
    pub(super) fn enqueue_read(
        &mut self,
        leader: &mut Leader<C>,
        id: u64,
        asker: Option<(NodeId, u64)>,
    ) {
        // A follower that learns from acceptors may answer a write this leader has not
        // yet seen chosen: every slot it gave out counts, not only its commit point.
        let given_out = leader.first + leader.in_flight.len() as u64 - 1;
        #[cfg(feature = "negative-controls")]
        let given_out = if self.reads_at_commit_point {
            0
        } else {
            given_out
        };
        let index = if self.options.learn_from_acceptors {
            given_out.max(self.log.commit())
        } else {
            self.log.commit()
        };
        let index = index.max(leader.recovered_through);
        if self.now < leader.lease_until {
            // Under the lease no other leader can have finished phase 1: the read needs
            // no message round, only the state machine to catch up with `index`.
            let read = PendingRead {
                id,
                index,
                seq: 0,
                asker,
            };
            leader.reads.push_back(read);
            return self.serve_reads(leader);
        }
        // A heartbeat sent before the read arrived proves nothing about the time after
        // it; wait for the next one. Reads arriving together share it.
        let seq = leader.seq + 1;
        let round_open = leader.reads.back().is_some_and(|r| r.seq == seq);
        leader.reads.push_back(PendingRead {
            id,
            index,
            seq,
            asker,
        });
        if !round_open && !self.heartbeat_outstanding(leader) {
            self.broadcast_heartbeat(leader);
        }
    }

    pub(super) fn heartbeat_outstanding(&self, leader: &Leader<C>) -> bool {
        leader.seq > 0 && !self.confirmed(leader, leader.seq)
    }

    pub(super) fn broadcast_heartbeat(&mut self, leader: &mut Leader<C>) {
        let commit = self.log.commit();
        leader.heartbeat_elapsed = 0;
        leader.seq += 1;
        leader.sent_at.push_back((leader.seq, self.now));
        if leader.sent_at.len() > SENT_AT_MAX {
            leader.sent_at.pop_front(); // Unconfirmed for long: it will not give a lease.
        }
        let message = Message::Heartbeat {
            ballot: leader.ballot,
            commit,
            seq: leader.seq,
        };
        self.broadcast(&message);
    }

    /// An acceptor's answer to a heartbeat (and a lease granted, with leases on). A
    /// follower also learns the leader's commit point from it.
    pub(super) fn on_heartbeat(&mut self, role: RoleKind, ballot: Ballot, commit: Slot, seq: u64) {
        let leader = ballot.node;
        if ballot < self.promised {
            return self.nack(leader, ballot);
        }
        self.follow(ballot);
        if let Some(lease) = self.options.lease {
            // Granted before the ack leaves, so the leader's count starts after ours.
            // The holder moves to the newest leader; a grant never ends earlier (only
            // refusing more candidates for longer can follow, never fewer).
            // Counted from our next tick: the heartbeat arrived somewhere inside the
            // current one, so `now + D` could end the grant up to a tick early.
            let until = self.now + u64::from(lease.duration_ticks) + 1;
            let until = self.grant.map_or(until, |g| g.until.max(until));
            let holder = Some(leader);
            self.grant = Some(Grant { holder, until });
        }
        self.send(leader, Message::HeartbeatAck { ballot, seq });
        if role == RoleKind::Follower {
            self.learn_commit(ballot, commit);
        }
    }

    pub(super) fn on_heartbeat_ack(
        &mut self,
        leader: &mut Leader<C>,
        acceptor: usize,
        ballot: Ballot,
        seq: u64,
    ) {
        if ballot != leader.ballot {
            return;
        }
        let acked = &mut leader.acked_seq[acceptor];
        *acked = (*acked).max(seq);
        self.extend_lease(leader);
        self.serve_reads(leader);
        // Reads that arrived after the last heartbeat left wait for the next one.
        let waiting = leader.reads.back().is_some_and(|r| r.seq > leader.seq);
        if waiting && !self.heartbeat_outstanding(leader) {
            self.broadcast_heartbeat(leader);
        }
    }

    /// Whether a phase-2 quorum acknowledged heartbeat `seq` or a later one. Every
    /// phase-1 quorum meets that quorum, so no higher ballot had finished phase 1 when
    /// the heartbeat was acknowledged: nothing could be chosen that this leader lacks.
    pub(super) fn confirmed(&self, leader: &Leader<C>, seq: u64) -> bool {
        let acks: AcceptorSet = leader
            .acked_seq
            .iter()
            .enumerate()
            .filter(|&(_, &acked)| acked >= seq)
            .map(|(i, _)| i)
            .collect();
        self.membership.current().quorum().is_phase2_quorum(acks)
    }

    pub(super) fn serve_reads(&mut self, leader: &mut Leader<C>) {
        let mut ready = 0;
        for read in &leader.reads {
            if read.index > self.applied || !self.confirmed(leader, read.seq) {
                break;
            }
            ready += 1;
        }
        if ready == 0 {
            return;
        }
        let ballot = leader.ballot;
        let served: Vec<PendingRead> = leader.reads.drain(..ready).collect();
        for read in served {
            match read.asker {
                None => self.out.push(Action::ReadReady { id: read.id }),
                Some((follower, boot)) => {
                    let reply = Message::ReadIndexReply {
                        ballot,
                        boot,
                        seq: read.id,
                        index: read.index,
                    };
                    self.send(follower, reply);
                }
            }
        }
    }

    pub(super) fn read_on_follower(&mut self, id: u64, leader: NodeId) {
        let reads = &mut self.follower_reads;
        // A request that left before the read arrived proves nothing about the time
        // after it: the read waits for the next one. Reads arriving together share it.
        let seq = reads.sent + 1;
        let round_open = reads.waiting.back().is_some_and(|r| r.seq == seq);
        reads.waiting.push_back(FollowerRead {
            id,
            seq,
            index: None,
        });
        if !round_open && reads.answered == reads.sent {
            self.ask_read_index(leader);
        }
    }

    pub(super) fn ask_read_index(&mut self, leader: NodeId) {
        self.follower_reads.sent += 1;
        self.send_read_index(leader);
    }

    /// Sends the latest request (again, if it was sent before).
    pub(super) fn send_read_index(&mut self, leader: NodeId) {
        self.follower_reads.unanswered_ticks = 0;
        let message = Message::ReadIndex {
            ballot: self.promised,
            boot: self.boot,
            seq: self.follower_reads.sent,
        };
        self.send(leader, message);
    }

    pub(super) fn on_read_index_reply(&mut self, boot: u64, seq: u64, index: Slot) {
        let reads = &mut self.follower_reads;
        if boot != self.boot || seq > reads.sent {
            return; // For an earlier life of this replica, or forged.
        }
        reads.answered = reads.answered.max(seq);
        for read in reads.waiting.iter_mut().filter(|r| r.seq <= seq) {
            read.index.get_or_insert(index);
        }
        self.serve_follower_reads();
        let reads = &self.follower_reads;
        let next_round = reads.waiting.back().is_some_and(|r| r.seq > reads.sent);
        if next_round && reads.answered == reads.sent {
            if let Some(leader) = self.leader {
                self.ask_read_index(leader);
            }
        }
    }

    /// Serves every read whose index the state machine has reached.
    pub(super) fn serve_follower_reads(&mut self) {
        #[allow(unused_mut)]
        let mut applied = self.applied;
        #[cfg(feature = "negative-controls")]
        if self.serves_reads_unapplied {
            applied = Slot::MAX;
        }
        let mut served = Vec::new();
        self.follower_reads.waiting.retain(|read| {
            let ready = read.index.is_some_and(|index| index <= applied);
            if ready {
                served.push(Action::ReadReady { id: read.id });
            }
            !ready
        });
        self.out.extend(served);
    }

    /// A request or its answer may be lost, or the leader may have changed: after a few
    /// heartbeats without an answer, the same request goes to the current leader. (The
    /// reads it covers arrived before its first sending, so a later one still covers them.)
    pub(super) fn ask_read_index_again_if_unanswered(&mut self) {
        let reads = &mut self.follower_reads;
        if reads.answered == reads.sent {
            return;
        }
        reads.unanswered_ticks += 1;
        if reads.unanswered_ticks < 2 * self.options.heartbeat_ticks {
            return;
        }
        if let Some(leader) = self.leader {
            self.send_read_index(leader);
        }
    }

    /// This replica campaigns: the leader its reads wait for is presumed gone.
    pub(super) fn fail_follower_reads(&mut self) {
        let reads = &mut self.follower_reads;
        reads.answered = reads.sent;
        for read in mem::take(&mut reads.waiting) {
            let error = ReadError::LeadershipLost;
            self.out.push(Action::ReadFailed { id: read.id, error });
        }
    }

    /// Once a phase-2 quorum acknowledged heartbeat `seq`, the leader holds a lease from
    /// when it sent `seq`: every phase-1 quorum meets that phase-2 quorum, and each of its
    /// acceptors granted after the send, so none of them promises another candidate
    /// before the lease (shortened by the drift bound) ends here.
    pub(super) fn extend_lease(&mut self, leader: &mut Leader<C>) {
        let Some(lease) = self.options.lease else {
            return;
        };
        let confirmed = leader
            .sent_at
            .iter()
            .rev()
            .find(|&&(seq, _)| self.confirmed(leader, seq))
            .copied();
        let Some((seq, sent)) = confirmed else {
            return;
        };
        while leader.sent_at.front().is_some_and(|&(s, _)| s <= seq) {
            leader.sent_at.pop_front();
        }
        let length = u64::from(lease.duration_ticks - lease.drift_ticks);
        leader.lease_until = leader.lease_until.max(sent + length);
    }

    /// Whether a lease this acceptor granted forbids promising `candidate` now.
    pub(super) fn grant_refuses(&self, candidate: NodeId) -> bool {
        self.grant
            .is_some_and(|g| self.now < g.until && g.holder != Some(candidate))
    }
}

/// Heartbeats remembered for leases while unconfirmed (an isolated leader would
/// otherwise remember one per tick forever).
const SENT_AT_MAX: usize = 64;

#[derive(Clone, Debug, Hash)]
pub(super) struct PendingRead {
    /// The read's id; for a follower's request, the request's number.
    pub(super) id: u64,
    /// The state machine must have applied this slot before the read is served.
    pub(super) index: Slot,
    /// The heartbeat a phase-2 quorum must acknowledge to confirm the ballot.
    pub(super) seq: u64,
    /// `Some((follower, boot))` for a follower's read-index request: once confirmed, the
    /// index goes back to it (its own state machine must apply it, not ours).
    pub(super) asker: Option<(NodeId, u64)>,
}

/// Linearizable reads a follower holds for the leader's read index.
#[derive(Clone, Debug, Default)]
pub(super) struct FollowerReads {
    /// In arrival order.
    pub(super) waiting: VecDeque<FollowerRead>,
    /// The last request sent (numbers start at 1).
    pub(super) sent: u64,
    /// The highest request answered.
    pub(super) answered: u64,
    /// Ticks `sent` has gone unanswered: past a few heartbeats it is sent again.
    pub(super) unanswered_ticks: u32,
}

#[derive(Clone, Copy, Debug, Hash)]
pub(super) struct FollowerRead {
    pub(super) id: u64,
    /// The request whose answer covers it: one that left after the read arrived.
    pub(super) seq: u64,
    /// The leader's read index, once it answered.
    pub(super) index: Option<Slot>,
}

/// A lease an acceptor granted.
#[derive(Clone, Copy, Debug)]
pub(super) struct Grant {
    /// The leader it was granted to; `None` after a restart, when whatever was granted
    /// before is unknown and so refuses everyone.
    pub(super) holder: Option<NodeId>,
    /// The tick at which it ends.
    pub(super) until: u64,
}
