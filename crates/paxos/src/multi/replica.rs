//! The Multi-Paxos replica: acceptor, learner and (when elected) leader in one state
//! machine. See the module documentation for the rules and `docs/PROTOCOL.md` for why.

use std::collections::{BTreeMap, VecDeque};
use std::mem;
use std::sync::Arc;

use rand_core::RngCore;

use crate::ballot::Ballot;
use crate::node::{AcceptorSet, NodeId};
use crate::quorum::QuorumSystem;
use crate::synod::{ConfigError, Role as SynodRole};

use super::config::{Members, Options};
use super::election::Election;
use super::log::{Limit, Log};
use super::message::{
    Action, Batch, Command, Entry, LogEntry, Message, ReadError, Slot, SlotVote, Write,
};
use super::snapshot::SnapshotData;

/// What a replica's storage hands back on restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable<C> {
    /// The promised ballot.
    pub promised: Ballot,
    /// Every vote (or chosen entry) above the snapshot, by slot.
    pub votes: Vec<(Slot, LogEntry<C>)>,
    /// The last commit point written (a hint; may be behind).
    pub commit: Slot,
    /// The latest durable snapshot: index and application bytes.
    pub snapshot: Option<(Slot, SnapshotData)>,
}

impl<C> Default for Durable<C> {
    fn default() -> Self {
        Durable {
            promised: Ballot::ZERO,
            votes: Vec::new(),
            commit: 0,
            snapshot: None,
        }
    }
}

/// Why a proposal was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// No leader is known (an election is under way); retry shortly.
    NoLeader,
}

/// What a replica is doing, as a label (for drivers, traces and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleKind {
    /// Following the leader it knows of, if any.
    Follower,
    /// Running phase 1.
    Candidate,
    /// Leading: phase 1 done for every slot above its commit point.
    Leader,
}

#[derive(Clone, Debug)]
enum Role<C> {
    Follower,
    Candidate(Candidate<C>),
    Leader(Leader<C>),
}

#[derive(Clone, Debug)]
struct Candidate<C> {
    ballot: Ballot,
    /// The first slot phase 1 covers.
    from: Slot,
    /// Per acceptor: the next chunk expected (`None` once its promise is complete).
    cursor: Vec<Option<Slot>>,
    /// Acceptors whose whole promise arrived.
    promised: AcceptorSet,
    /// The highest-ballot vote reported for each slot.
    votes: BTreeMap<Slot, LogEntry<C>>,
}

#[derive(Clone, Debug)]
struct InFlight<C> {
    entry: Entry<C>,
    acks: AcceptorSet,
}

#[derive(Clone, Debug)]
struct PendingRead {
    /// The read's id; for a follower's request, the request's number.
    id: u64,
    /// The state machine must have applied this slot before the read is served.
    index: Slot,
    /// The heartbeat a phase-2 quorum must acknowledge to confirm the ballot.
    seq: u64,
    /// `Some((follower, boot))` for a follower's read-index request: once confirmed, the
    /// index goes back to it (its own state machine must apply it, not ours).
    asker: Option<(NodeId, u64)>,
}

/// Linearizable reads a follower holds for the leader's read index.
#[derive(Clone, Debug, Default)]
struct FollowerReads {
    /// In arrival order.
    waiting: VecDeque<FollowerRead>,
    /// The last request sent (numbers start at 1).
    sent: u64,
    /// The highest request answered.
    answered: u64,
    /// Ticks `sent` has gone unanswered: past a few heartbeats it is sent again.
    unanswered_ticks: u32,
}

#[derive(Clone, Copy, Debug)]
struct FollowerRead {
    id: u64,
    /// The request whose answer covers it: one that left after the read arrived.
    seq: u64,
    /// The leader's read index, once it answered.
    index: Option<Slot>,
}

/// What a follower heard from acceptors about the slots above its commit point, at the
/// ballot it follows (with [`Options::learn_from_acceptors`]).
#[derive(Clone, Debug, Default)]
struct Reports {
    ballot: Ballot,
    /// `acks[0]` is this slot.
    first: Slot,
    /// Per slot, the acceptors that reported a vote for it at `ballot` (or it chosen).
    acks: VecDeque<AcceptorSet>,
}

#[derive(Clone, Debug)]
struct Leader<C> {
    ballot: Ballot,
    /// `in_flight[0]` is this slot; always the commit point + 1.
    first: Slot,
    in_flight: VecDeque<InFlight<C>>,
    /// Commands not yet given a slot (the pipeline is full).
    pending: VecDeque<C>,
    /// The last slot of each batch of new commands not yet chosen.
    batch_ends: VecDeque<Slot>,
    /// Every slot chosen before this ballot is at or below this one.
    recovered_through: Slot,
    heartbeat_elapsed: u32,
    /// The commit point at the last resend check, to tell a stalled pipeline.
    commit_at_check: Slot,
    seq: u64,
    /// Per acceptor, the highest heartbeat it acknowledged at this ballot.
    acked_seq: Vec<u64>,
    /// When each heartbeat not yet confirmed by a phase-2 quorum was sent: (seq, tick).
    sent_at: VecDeque<(u64, u64)>,
    /// Reads may be served locally before this tick (0: no lease).
    lease_until: u64,
    reads: VecDeque<PendingRead>,
}

#[derive(Clone, Debug)]
struct IncomingSnapshot {
    index: Slot,
    total: u64,
    /// Chunks by offset: they may arrive in any order, and more than once.
    chunks: BTreeMap<u64, Vec<u8>>,
}

impl IncomingSnapshot {
    /// The whole snapshot, once the chunks cover it end to end.
    fn assemble(&mut self) -> Option<Vec<u8>> {
        let mut covered = 0;
        for (&offset, data) in &self.chunks {
            if offset != covered {
                return None;
            }
            covered += data.len() as u64;
        }
        if covered != self.total {
            return None;
        }
        Some(
            mem::take(&mut self.chunks)
                .into_values()
                .flatten()
                .collect(),
        )
    }
}

/// A Multi-Paxos replica. Drive it with [`Replica::step`], [`Replica::tick`],
/// [`Replica::propose`] and [`Replica::read`]; carry out the returned actions in order.
#[derive(Debug)]
pub struct Replica<C, R> {
    id: NodeId,
    members: Arc<Members>,
    options: Options,
    rng: R,
    promised: Ballot,
    /// The highest ballot seen in any message: a new ballot goes above it.
    highest_seen: Ballot,
    log: Log<C>,
    applied: Slot,
    /// The highest commit point a leader announced at the ballot we follow.
    known_commit: Slot,
    leader: Option<NodeId>,
    role: Role<C>,
    election: Election,
    snapshot: Option<(Slot, SnapshotData)>,
    incoming: Option<IncomingSnapshot>,
    catch_up_elapsed: u32,
    /// Ticks since this replica started.
    now: u64,
    /// The lease this acceptor granted: it promises no other candidate until it ends.
    grant: Option<Grant>,
    out: Vec<Action<C>>,
    /// Numbers this replica's forwards: `boot` is drawn at start, `forward_seq` counts.
    boot: u64,
    forward_seq: u64,
    /// Per member, the forwards already taken from it.
    forwards_seen: Vec<SeenForwards>,
    /// Commands this replica took as leader but never gave a slot before it stepped down.
    stranded: Vec<C>,
    /// Per member, when a snapshot was last sent to it (tick).
    snapshot_sent: Vec<Option<u64>>,
    /// Reads this replica holds as a follower.
    follower_reads: FollowerReads,
    /// Acceptors' reports a follower learns chosen slots from.
    reports: Reports,
    /// Negative control: a candidate that leads without phase 1.
    #[cfg(feature = "negative-controls")]
    skips_phase1: bool,
    #[cfg(feature = "negative-controls")]
    serves_reads_unapplied: bool,
    #[cfg(feature = "negative-controls")]
    reads_at_commit_point: bool,
}

/// The forwards taken from one sender: the highest number of its current boot, and which
/// of the 63 below it arrived too. Anything older is treated as a duplicate (dropped; its
/// client times out), so a reordered forward is lost only if 64 newer ones overtook it.
#[derive(Clone, Copy, Debug, Default)]
struct SeenForwards {
    boot: u64,
    highest: u64,
    below: u64,
}

impl SeenForwards {
    /// Records forward `seq` of `boot`; false if it was seen (or may have been) before.
    fn first_time(&mut self, boot: u64, seq: u64) -> bool {
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

/// A lease an acceptor granted.
#[derive(Clone, Copy, Debug)]
struct Grant {
    /// The leader it was granted to; `None` after a restart, when whatever was granted
    /// before is unknown and so refuses everyone.
    holder: Option<NodeId>,
    /// The tick at which it ends.
    until: u64,
}

impl<C: Command, R: RngCore> Replica<C, R> {
    /// A replica with empty storage.
    pub fn new(
        id: NodeId,
        members: Arc<Members>,
        options: Options,
        rng: R,
    ) -> Result<Replica<C, R>, ConfigError> {
        Replica::restart(id, members, options, rng, Durable::default())
    }

    /// A replica restarted from what its storage holds. The state machine restarts from
    /// the snapshot; the replica applies the chosen entries after it again, from its first
    /// `tick()` on.
    pub fn restart(
        id: NodeId,
        members: Arc<Members>,
        options: Options,
        mut rng: R,
        durable: Durable<C>,
    ) -> Result<Replica<C, R>, ConfigError> {
        options.validate()?;
        members.index_of(id).ok_or(ConfigError::NotInConfig {
            node: id,
            role: SynodRole::Acceptor,
        })?;
        // A durable vote implies a durable promise at least as high (the storage contract
        // of `Write::Votes`).
        let promised = durable
            .votes
            .iter()
            .map(|(_, vote)| vote.ballot)
            .fold(durable.promised, Ballot::max);
        let mut log = Log::new();
        let compacted = durable.snapshot.as_ref().map_or(0, |(index, _)| *index);
        log.compact(compacted);
        for (slot, vote) in durable.votes {
            log.set(slot, vote);
        }
        // The stored commit point is a hint; trust it only as far as the log is whole.
        let whole = (compacted + 1..=durable.commit)
            .take_while(|&s| log.get(s).is_some())
            .last()
            .unwrap_or(compacted);
        log.commit_through(whole);
        let election = Election::new(options.election_ticks, &mut rng);
        let boot = rng.next_u64();
        let count = members.replicas().len();
        // A grant made before the crash may still run: honour it, whoever holds it.
        let grant = options.lease.map(|lease| Grant {
            holder: None,
            until: u64::from(lease.duration_ticks) + 1,
        });
        Ok(Replica {
            id,
            members,
            options,
            rng,
            promised,
            highest_seen: promised,
            log,
            applied: compacted,
            known_commit: whole,
            leader: None,
            role: Role::Follower,
            election,
            snapshot: durable.snapshot,
            incoming: None,
            catch_up_elapsed: 0,
            now: 0,
            grant,
            out: Vec::new(),
            boot,
            forward_seq: 0,
            forwards_seen: vec![SeenForwards::default(); count],
            stranded: Vec::new(),
            snapshot_sent: vec![None; count],
            follower_reads: FollowerReads::default(),
            reports: Reports::default(),
            #[cfg(feature = "negative-controls")]
            skips_phase1: false,
            #[cfg(feature = "negative-controls")]
            serves_reads_unapplied: false,
            #[cfg(feature = "negative-controls")]
            reads_at_commit_point: false,
        })
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Leader, candidate or follower.
    pub fn role(&self) -> RoleKind {
        match self.role {
            Role::Follower => RoleKind::Follower,
            Role::Candidate(_) => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
        }
    }

    /// The leader this replica knows of (itself if it leads).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The ballot promised.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// Every slot through this one is chosen and known here.
    pub fn commit(&self) -> Slot {
        self.log.commit()
    }

    /// Every slot through this one was handed to the state machine.
    pub fn applied(&self) -> Slot {
        self.applied
    }

    /// The slot through which the log was compacted into a snapshot.
    pub fn compacted(&self) -> Slot {
        self.log.compacted()
    }

    /// The entry this replica holds for `slot`, with the ballot it holds it at.
    pub fn entry(&self, slot: Slot) -> Option<&LogEntry<C>> {
        self.log.get(slot)
    }

    /// Proposes `command`. A leader gives it a slot as soon as the window has room; a
    /// follower forwards it to the leader it knows of.
    pub fn propose(&mut self, command: C) -> Result<Vec<Action<C>>, ProposeError> {
        match &mut self.role {
            Role::Leader(leader) => {
                leader.pending.push_back(command);
                self.pump();
            }
            _ => match self.leader {
                Some(leader) if leader != self.id => self.forward(leader, vec![command]),
                _ => return Err(ProposeError::NoLeader),
            },
        }
        Ok(self.finish())
    }

    /// A linearizable read: once it may be served, [`Action::ReadReady`] with `id`
    /// follows (or [`Action::ReadFailed`]). The leader notes its commit point (the read
    /// index), confirms with a phase-2 quorum that its ballot is still current, and waits
    /// until its state machine has applied through the index. A follower asks the leader
    /// for a read index and waits until its own state machine has applied through it.
    pub fn read(&mut self, id: u64) -> Vec<Action<C>> {
        match (&self.role, self.leader) {
            (Role::Leader(_), _) => self.enqueue_read(id, None),
            (Role::Follower, Some(leader)) => self.read_on_follower(id, leader),
            _ => {
                let error = ReadError::NotLeader {
                    leader: self.leader,
                };
                self.out.push(Action::ReadFailed { id, error });
            }
        }
        self.finish()
    }

    /// As leader: a read of ours (`asker` `None`) or a follower's read-index request.
    fn enqueue_read(&mut self, id: u64, asker: Option<(NodeId, u64)>) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
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
            return self.serve_reads();
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
        if !round_open && !self.heartbeat_outstanding() {
            self.broadcast_heartbeat();
        }
    }

    /// The application took a snapshot covering every slot through `index` (at most what
    /// it applied). The replica keeps it for laggards and releases the log below it.
    pub fn snapshot_taken(&mut self, index: Slot, data: SnapshotData) -> Vec<Action<C>> {
        if index > self.applied || index <= self.log.compacted() {
            return self.finish();
        }
        self.out.push(Action::Persist(Write::Snapshot {
            index,
            data: data.clone(),
        }));
        self.log.compact(index);
        self.snapshot = Some((index, data));
        self.finish()
    }

    /// The driver lost its connection from `peer` (it closed: on one machine or a LAN,
    /// what a crashed process looks like at once). If `peer` is the leader this follower
    /// follows, it campaigns after a few heartbeats instead of a whole election timeout,
    /// unless the leader is heard from meanwhile. Only liveness depends on this hint: a
    /// wrong one costs at most an election.
    pub fn peer_unreachable(&mut self, peer: NodeId) -> Vec<Action<C>> {
        if matches!(self.role, Role::Follower) && self.leader == Some(peer) {
            self.election.suspect(&mut self.rng);
        }
        self.finish()
    }

    /// One tick of logical time.
    pub fn tick(&mut self) -> Vec<Action<C>> {
        self.now += 1;
        self.apply_committed();
        match &mut self.role {
            Role::Leader(leader) => {
                leader.heartbeat_elapsed += 1;
                if leader.heartbeat_elapsed >= self.options.heartbeat_ticks {
                    self.broadcast_heartbeat();
                    self.resend_if_stalled();
                }
            }
            Role::Candidate(_) | Role::Follower => {
                if self.election.tick() {
                    self.campaign();
                }
                self.catch_up_if_behind();
                self.ask_read_index_again_if_unanswered();
            }
        }
        self.finish()
    }

    /// Handles `message` from `from`. Messages from non-members, or carrying a ballot no
    /// member owns, are ignored.
    pub fn step(&mut self, from: NodeId, message: Message<C>) -> Vec<Action<C>> {
        let Some(sender) = self.members.index_of(from) else {
            return Vec::new();
        };
        let ballot = message.ballot();
        if ballot != Ballot::ZERO && self.members.index_of(ballot.node).is_none() {
            return Vec::new(); // No member can own this ballot: forged or corrupt.
        }
        let refused = matches!(message, Message::Prepare { .. })
            && ballot > self.promised
            && self.grant_refuses(from);
        if refused {
            // A lease we granted still runs: the candidate is refused, and its ballot
            // must not depose the leader the lease protects.
            return self.finish();
        }
        self.observe(message.ballot());
        match message {
            Message::Prepare { ballot, from: slot } => self.on_prepare(from, ballot, slot),
            Message::Promise {
                ballot,
                from: slot,
                votes,
                next,
            } => self.on_promise(from, sender, ballot, slot, votes, next),
            Message::Nack { .. } => {} // `observe` stepped down if it mattered.
            Message::Behind { ballot, .. } => self.on_behind(from, ballot),
            Message::Accept {
                ballot,
                first,
                entries,
                commit,
            } => self.on_accept(ballot, first, entries, commit),
            Message::Accepted {
                ballot,
                first,
                last,
            } => self.on_accepted(sender, ballot, first, last),
            Message::Heartbeat {
                ballot,
                commit,
                seq,
            } => self.on_heartbeat(ballot, commit, seq),
            Message::HeartbeatAck { ballot, seq } => self.on_heartbeat_ack(sender, ballot, seq),
            Message::ReadIndex { boot, seq, .. } => self.enqueue_read(seq, Some((from, boot))),
            Message::ReadIndexReply {
                boot, seq, index, ..
            } => self.on_read_index_reply(boot, seq, index),
            Message::Forward {
                boot,
                seq,
                commands,
                ..
            } => self.on_forward(sender, boot, seq, commands),
            Message::CatchUp { from: slot, .. } => self.on_catch_up(from, slot),
            Message::Chosen {
                first,
                entries,
                commit,
                ..
            } => self.on_chosen(from, first, entries, commit),
            Message::Snapshot {
                index,
                offset,
                total,
                data,
                ..
            } => self.on_snapshot_chunk(from, index, offset, total, data),
        }
        self.finish()
    }

    // ---- ballots and roles -------------------------------------------------------------

    /// Any ballot above our own, in any message, means a newer leader or candidate exists:
    /// a leader or candidate steps down.
    fn observe(&mut self, ballot: Ballot) {
        self.highest_seen = self.highest_seen.max(ballot);
        if self.own_ballot().is_some_and(|own| ballot > own) {
            self.step_down();
        }
    }

    fn own_ballot(&self) -> Option<Ballot> {
        match &self.role {
            Role::Follower => None,
            Role::Candidate(c) => Some(c.ballot),
            Role::Leader(l) => Some(l.ballot),
        }
    }

    fn step_down(&mut self) {
        let role = mem::replace(&mut self.role, Role::Follower);
        self.leader = None;
        if let Role::Leader(old) = role {
            // A follower's request is dropped: it asks again, of the next leader.
            for read in old.reads.into_iter().filter(|r| r.asker.is_none()) {
                let error = ReadError::LeadershipLost;
                self.out.push(Action::ReadFailed { id: read.id, error });
            }
            // Commands that never got a slot: `propose` took them, so they are not
            // dropped; they go to the next leader this replica learns of (or back into
            // its own queue if it leads again).
            self.stranded.extend(old.pending);
        }
    }

    fn campaign(&mut self) {
        self.election.campaign_started(&mut self.rng);
        if self.grant_refuses(self.id) {
            return; // Our own acceptor still honours another leader's lease.
        }
        self.fail_follower_reads();
        let Some(ballot) = Ballot::next_above(self.highest_seen.max(self.promised), self.id) else {
            return; // Rounds exhausted: never reuse a ballot, stay a follower.
        };
        self.step_down();
        self.promised = ballot;
        self.highest_seen = ballot;
        // Durable before the prepares leave: a restarted replica then never reuses it.
        self.out.push(Action::Persist(Write::Promise(ballot)));
        let from = self.log.commit() + 1;
        let count = self.members.replicas().len();
        self.role = Role::Candidate(Candidate {
            ballot,
            from,
            cursor: vec![Some(from); count],
            promised: AcceptorSet::EMPTY,
            votes: BTreeMap::new(),
        });
        self.broadcast(&Message::Prepare { ballot, from });
        #[cfg(feature = "negative-controls")]
        if self.skips_phase1 {
            self.become_leader();
        }
    }

    /// Breaks the protocol on purpose, for the simulator's negative controls: a candidate
    /// declares itself leader at once, without any promise, and so without the votes P2c
    /// needs.
    #[cfg(feature = "negative-controls")]
    pub fn skip_phase1(&mut self) {
        self.skips_phase1 = true;
    }

    /// Breaks the protocol on purpose, for the simulator's negative controls: a follower
    /// serves a read as soon as the leader's read index arrives, without applying through
    /// it first, so it can answer from a state older than a completed write.
    #[cfg(feature = "negative-controls")]
    pub fn serve_follower_reads_unapplied(&mut self) {
        self.serves_reads_unapplied = true;
    }

    /// Breaks the protocol on purpose, for the simulator's negative controls: a leader
    /// reads at its commit point even while its followers learn from acceptors, so it can
    /// miss a write a follower has already answered.
    #[cfg(feature = "negative-controls")]
    pub fn read_at_commit_point(&mut self) {
        self.reads_at_commit_point = true;
    }

    // ---- phase 1 -----------------------------------------------------------------------

    fn on_prepare(&mut self, candidate: NodeId, ballot: Ballot, from: Slot) {
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
        if ballot > self.promised {
            self.promised = ballot;
            self.out.push(Action::Persist(Write::Promise(ballot)));
            self.leader = None;
        }
        if candidate != self.id {
            self.election.heard_from_leader(&mut self.rng);
        }
        let (votes, next) = self.log.votes_from(from, self.chunk_limit());
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

    fn on_promise(
        &mut self,
        acceptor: NodeId,
        index: usize,
        ballot: Ballot,
        from: Slot,
        votes: Vec<SlotVote<C>>,
        next: Option<Slot>,
    ) {
        let Role::Candidate(candidate) = &mut self.role else {
            return;
        };
        if ballot != candidate.ballot || candidate.cursor[index] != Some(from) {
            return; // Stale, repeated or out-of-order chunk.
        }
        let horizon = candidate.from.saturating_add(self.options.gap_max_slots);
        if votes.iter().any(|v| v.slot > horizon) {
            // The acceptor holds votes far beyond our log: we are too far behind to
            // lead. Catch up from it first.
            self.step_down();
            return self.request_catch_up(acceptor);
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
            return self.send(acceptor, Message::Prepare { ballot, from: next });
        }
        candidate.promised.insert(index);
        if self.members.quorum().is_phase1_quorum(candidate.promised) {
            self.become_leader();
        }
    }

    fn on_behind(&mut self, from: NodeId, ballot: Ballot) {
        if self.own_ballot() == Some(ballot) && self.role() == RoleKind::Candidate {
            // Our log is behind a peer's snapshot: catch up before leading.
            self.step_down();
            self.request_catch_up(from);
        }
    }

    /// Phase 1 is complete for every slot from `candidate.from` on. Re-propose, at our
    /// ballot, the highest-ballot vote of every slot we learned of; fill holes with
    /// no-ops; then serve new commands.
    fn become_leader(&mut self) {
        let Role::Candidate(candidate) = mem::replace(&mut self.role, Role::Follower) else {
            return;
        };
        let first = self.log.commit() + 1;
        let recovered_through = candidate
            .votes
            .last_key_value()
            .map_or(first - 1, |(&slot, _)| slot)
            .max(self.log.commit());
        let mut votes = candidate.votes;
        let in_flight: VecDeque<InFlight<C>> = (first..=recovered_through)
            .map(|slot| InFlight {
                entry: votes.remove(&slot).map_or(Entry::Noop, |v| v.entry),
                acks: AcceptorSet::EMPTY,
            })
            .collect();
        let count = self.members.replicas().len();
        self.role = Role::Leader(Leader {
            ballot: candidate.ballot,
            first,
            in_flight,
            pending: mem::take(&mut self.stranded).into(),
            batch_ends: VecDeque::new(),
            recovered_through,
            heartbeat_elapsed: 0,
            commit_at_check: self.log.commit(),
            seq: 0,
            acked_seq: vec![0; count],
            sent_at: VecDeque::new(),
            lease_until: 0,
            reads: VecDeque::new(),
        });
        self.leader = Some(self.id);
        self.send_in_flight(first, recovered_through, None);
        self.broadcast_heartbeat();
        self.pump();
    }

    // ---- phase 2 -----------------------------------------------------------------------

    /// Gives slots to pending commands while the window has room, one accept per batch.
    /// Sends what pending commands the pipeline has room for; whether it sent any.
    fn pump(&mut self) -> bool {
        let commit = self.log.commit();
        let options = &self.options;
        let Role::Leader(leader) = &mut self.role else {
            return false;
        };
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
            while let Some(command) = leader.pending.front() {
                let full = batch.len() == count_max
                    || (!batch.is_empty() && bytes + command.size() > options.batch_max_bytes);
                if full {
                    break;
                }
                bytes += command.size();
                if let Some(command) = leader.pending.pop_front() {
                    batch.push(Entry::Command(command));
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
    fn chunk_limit(&self) -> Limit {
        Limit {
            entries: self.options.chunk_entries,
            bytes: self.options.batch_max_bytes,
        }
    }

    /// Sends accepts for in-flight slots `from..=to`, in batches (bounded by count and
    /// bytes, like new batches), to `only` or everyone.
    fn send_in_flight(&mut self, from: Slot, to: Slot, only: Option<NodeId>) {
        let commit = self.log.commit();
        let step = u64::try_from(self.options.batch_max_commands).unwrap_or(u64::MAX);
        let Role::Leader(leader) = &self.role else {
            return;
        };
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

    fn on_accept(&mut self, ballot: Ballot, first: Slot, entries: Batch<C>, commit: Slot) {
        let leader = ballot.node;
        if ballot < self.promised {
            return self.nack(leader, ballot);
        }
        self.follow(ballot);
        let last = first.saturating_add(entries.len() as u64).saturating_sub(1);
        if entries.is_empty() || first == 0 {
            return self.learn_commit(ballot, commit);
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
        self.learn_commit(ballot, commit);
        // Reports that came before this accept may already make its slots chosen.
        self.commit_reported(ballot);
    }

    /// A message from the leader of `ballot` (at or above our promise) arrived.
    fn follow(&mut self, ballot: Ballot) {
        if ballot > self.promised {
            self.promised = ballot;
        }
        if ballot.node != self.id {
            self.leader = Some(ballot.node);
            self.election.heard_from_leader(&mut self.rng);
            if !self.stranded.is_empty() {
                let commands = mem::take(&mut self.stranded);
                self.forward(ballot.node, commands);
            }
        }
    }

    fn on_accepted(&mut self, acceptor: usize, ballot: Ballot, first: Slot, last: Slot) {
        let Role::Leader(leader) = &mut self.role else {
            return self.learn_from_report(acceptor, ballot, first, last);
        };
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
        self.advance_commit();
    }

    /// A follower counts an acceptor's report of votes at the ballot it follows. The
    /// leader of that ballot proposed one value per slot, which is this follower's vote
    /// there, so a slot a phase-2 quorum reported is chosen with the value held here
    /// (slots reported as already chosen count too: whatever the leader proposed for a
    /// chosen slot is the chosen value). Commits as far as every slot has such a quorum
    /// and a vote here at that ballot.
    fn learn_from_report(&mut self, acceptor: usize, ballot: Ballot, first: Slot, last: Slot) {
        if ballot != self.promised || self.own_ballot().is_some() {
            return;
        }
        self.align_reports(ballot);
        let commit = self.log.commit();
        let reports = &mut self.reports;
        // Bounded as votes are: nothing beyond what an acceptor would take.
        let end = last.min(commit.saturating_add(self.options.gap_max_slots));
        for slot in first.max(reports.first)..=end {
            let at = distance(reports.first, slot);
            if at >= reports.acks.len() {
                reports.acks.resize(at + 1, AcceptorSet::EMPTY);
            }
            reports.acks[at].insert(acceptor);
        }
        self.commit_reported(ballot);
    }

    /// Commits every slot past the commit point that a phase-2 quorum reported at
    /// `ballot` and that holds a vote here at `ballot` (a slot reported before its accept
    /// arrived waits for it, rather than raise the known commit point and fetch it).
    ///
    /// The quorum must include the leader's own report. A client may hear of a write
    /// this way before the leader knows it chosen, so the leader's reads must wait for
    /// every slot it gave out ([`Replica::enqueue_read`]); a leader that reports its
    /// votes to followers is one that does. A leader that does not (the option off, or an
    /// older version during an upgrade) is never overtaken.
    fn commit_reported(&mut self, ballot: Ballot) {
        if ballot != self.promised || self.own_ballot().is_some() {
            return;
        }
        let Some(leader) = self.members.index_of(ballot.node) else {
            return;
        };
        self.align_reports(ballot);
        let commit = self.log.commit();
        let quorum = self.members.quorum();
        let mut through = commit;
        for acks in &self.reports.acks {
            let voted_here = self
                .log
                .get(through + 1)
                .is_some_and(|e| e.ballot == ballot);
            if !voted_here || !acks.contains(leader) || !quorum.is_phase2_quorum(*acks) {
                break;
            }
            through += 1;
        }
        if through > commit {
            self.learn_commit(ballot, through);
        }
    }

    /// Makes the reports describe `ballot` from the slot after the commit point on.
    fn align_reports(&mut self, ballot: Ballot) {
        let next = self.log.commit() + 1;
        let reports = &mut self.reports;
        if reports.ballot != ballot {
            reports.acks.clear();
            reports.ballot = ballot;
            reports.first = next;
        } else if reports.first < next {
            let behind = distance(reports.first, next);
            reports.acks.drain(..behind.min(reports.acks.len()));
            reports.first = next;
        }
    }

    /// Moves the commit point over every leading slot a phase-2 quorum accepted.
    fn advance_commit(&mut self) {
        let quorum = self.members.quorum();
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
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
            self.serve_reads();
            if !self.pump() {
                // No accept leaves to carry the new commit point: tell the followers now,
                // or they (and the clients waiting on them) learn it a heartbeat later.
                self.broadcast_heartbeat();
            }
        }
    }

    /// Every heartbeat interval: if the commit point has not moved since the last check,
    /// some accept or ack was lost; resend the oldest batch to those that did not ack.
    fn resend_if_stalled(&mut self) {
        let commit = self.log.commit();
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
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
            .members
            .replicas()
            .iter()
            .enumerate()
            .filter(|&(i, _)| !acks.contains(i))
            .map(|(_, &id)| id)
            .collect();
        for to in missing {
            self.send_in_flight(first, last, Some(to));
        }
    }

    fn forward(&mut self, leader: NodeId, commands: Vec<C>) {
        self.forward_seq += 1;
        let message = Message::Forward {
            ballot: self.promised,
            boot: self.boot,
            seq: self.forward_seq,
            commands,
        };
        self.send(leader, message);
    }

    fn on_forward(&mut self, sender: usize, boot: u64, seq: u64, commands: Vec<C>) {
        if self.role() == RoleKind::Leader && !self.forwards_seen[sender].first_time(boot, seq) {
            return; // A duplicate: its commands were taken already.
        }
        if let Role::Leader(leader) = &mut self.role {
            leader.pending.extend(commands);
            self.pump();
        }
        // Not the leader: drop them. Forwarding again could loop between two replicas
        // with stale views; the client times out and retries.
    }

    // ---- commit and apply --------------------------------------------------------------

    /// The leader of `ballot` says every slot through `commit` is chosen. Our vote at a
    /// slot is the chosen entry if we hold it at that same ballot (a leader proposes one
    /// entry per slot per ballot); anything else must be fetched.
    fn learn_commit(&mut self, ballot: Ballot, commit: Slot) {
        if ballot != self.promised || self.own_ballot().is_some() {
            return;
        }
        self.known_commit = self.known_commit.max(commit);
        let start = self.log.commit();
        let mut through = start;
        while through < commit
            && self
                .log
                .get(through + 1)
                .is_some_and(|e| e.ballot == ballot)
        {
            through += 1;
        }
        if through > start {
            self.log.commit_through(through);
            self.out.push(Action::Persist(Write::Commit(through)));
            self.apply_committed();
        }
    }

    fn apply_committed(&mut self) {
        while self.applied < self.log.commit() {
            let slot = self.applied + 1;
            let Some(entry) = self.log.get(slot).map(|e| e.entry.clone()) else {
                break;
            };
            self.out.push(Action::Apply { slot, entry });
            self.applied = slot;
        }
        if !self.follower_reads.waiting.is_empty() {
            self.serve_follower_reads();
        }
    }

    // ---- heartbeats and reads ----------------------------------------------------------

    fn heartbeat_outstanding(&self) -> bool {
        let Role::Leader(leader) = &self.role else {
            return false;
        };
        leader.seq > 0 && !self.confirmed(leader, leader.seq)
    }

    fn broadcast_heartbeat(&mut self) {
        let commit = self.log.commit();
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
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

    fn on_heartbeat(&mut self, ballot: Ballot, commit: Slot, seq: u64) {
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
        self.learn_commit(ballot, commit);
    }

    fn on_heartbeat_ack(&mut self, acceptor: usize, ballot: Ballot, seq: u64) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if ballot != leader.ballot {
            return;
        }
        let acked = &mut leader.acked_seq[acceptor];
        *acked = (*acked).max(seq);
        self.extend_lease();
        self.serve_reads();
        // Reads that arrived after the last heartbeat left wait for the next one.
        let Role::Leader(leader) = &self.role else {
            return;
        };
        let waiting = leader.reads.back().is_some_and(|r| r.seq > leader.seq);
        if waiting && !self.heartbeat_outstanding() {
            self.broadcast_heartbeat();
        }
    }

    /// Whether a phase-2 quorum acknowledged heartbeat `seq` or a later one. Every
    /// phase-1 quorum meets that quorum, so no higher ballot had finished phase 1 when
    /// the heartbeat was acknowledged: nothing could be chosen that this leader lacks.
    fn confirmed(&self, leader: &Leader<C>, seq: u64) -> bool {
        let acks: AcceptorSet = leader
            .acked_seq
            .iter()
            .enumerate()
            .filter(|&(_, &acked)| acked >= seq)
            .map(|(i, _)| i)
            .collect();
        self.members.quorum().is_phase2_quorum(acks)
    }

    fn serve_reads(&mut self) {
        let Role::Leader(leader) = &self.role else {
            return;
        };
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
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
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

    // ---- reads on a follower -----------------------------------------------------------

    fn read_on_follower(&mut self, id: u64, leader: NodeId) {
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

    fn ask_read_index(&mut self, leader: NodeId) {
        self.follower_reads.sent += 1;
        self.send_read_index(leader);
    }

    /// Sends the latest request (again, if it was sent before).
    fn send_read_index(&mut self, leader: NodeId) {
        self.follower_reads.unanswered_ticks = 0;
        let message = Message::ReadIndex {
            ballot: self.promised,
            boot: self.boot,
            seq: self.follower_reads.sent,
        };
        self.send(leader, message);
    }

    fn on_read_index_reply(&mut self, boot: u64, seq: u64, index: Slot) {
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
    fn serve_follower_reads(&mut self) {
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
    fn ask_read_index_again_if_unanswered(&mut self) {
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
    fn fail_follower_reads(&mut self) {
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
    fn extend_lease(&mut self) {
        let Some(lease) = self.options.lease else {
            return;
        };
        let Role::Leader(leader) = &self.role else {
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
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        while leader.sent_at.front().is_some_and(|&(s, _)| s <= seq) {
            leader.sent_at.pop_front();
        }
        let length = u64::from(lease.duration_ticks - lease.drift_ticks);
        leader.lease_until = leader.lease_until.max(sent + length);
    }

    /// Whether a lease this acceptor granted forbids promising `candidate` now.
    fn grant_refuses(&self, candidate: NodeId) -> bool {
        self.grant
            .is_some_and(|g| self.now < g.until && g.holder != Some(candidate))
    }

    // ---- catch-up ----------------------------------------------------------------------

    fn catch_up_if_behind(&mut self) {
        self.catch_up_elapsed += 1;
        let behind = self.log.commit() < self.known_commit;
        if behind && self.catch_up_elapsed >= self.options.heartbeat_ticks.saturating_mul(2) {
            if let Some(leader) = self.leader.filter(|&l| l != self.id) {
                self.request_catch_up(leader);
            }
        }
    }

    fn request_catch_up(&mut self, peer: NodeId) {
        self.catch_up_elapsed = 0;
        let from = self.log.commit() + 1;
        let ballot = self.promised;
        self.send(peer, Message::CatchUp { ballot, from });
    }

    fn on_catch_up(&mut self, peer: NodeId, from: Slot) {
        let ballot = self.promised;
        if from > self.log.compacted() {
            let entries = self.log.chosen_from(from, self.chunk_limit());
            let commit = self.log.commit();
            if !entries.is_empty() {
                let chosen = Message::Chosen {
                    ballot,
                    first: from,
                    entries,
                    commit,
                };
                self.send(peer, chosen);
            }
            return;
        }
        let Some((index, data)) = self.snapshot.clone() else {
            return;
        };
        // A snapshot is big: send it again only if the last copy has had time to arrive.
        let Some(member) = self.members.index_of(peer) else {
            return;
        };
        let wait = u64::from(self.options.election_ticks);
        if self.snapshot_sent[member].is_some_and(|at| self.now < at + wait) {
            return;
        }
        self.snapshot_sent[member] = Some(self.now);
        self.out.push(Action::SendSnapshot {
            to: peer,
            ballot,
            index,
            data,
            chunk_bytes: self.options.snapshot_chunk_bytes,
        });
    }

    fn on_chosen(&mut self, peer: NodeId, first: Slot, entries: Vec<LogEntry<C>>, commit: Slot) {
        if self.role() == RoleKind::Leader {
            // A late answer to a request made as a follower. A leader learns what is
            // chosen from its own quorum; its window starts at its commit point.
            return;
        }
        self.known_commit = self.known_commit.max(commit);
        let start = self.log.commit() + 1;
        if first > start {
            return; // A gap: ask again from where we are.
        }
        let skip = distance(first, start);
        let fresh: Vec<LogEntry<C>> = entries.into_iter().skip(skip).collect();
        if fresh.is_empty() {
            return;
        }
        let through = start + fresh.len() as u64 - 1;
        for (slot, chosen) in (start..).zip(&fresh) {
            let same = self.log.get(slot).is_some_and(|e| e.entry == chosen.entry);
            if !same {
                self.log.set(slot, chosen.clone());
            }
        }
        self.log.commit_through(through);
        self.out.push(Action::Persist(Write::Chosen {
            first: start,
            entries: fresh,
        }));
        self.out.push(Action::Persist(Write::Commit(through)));
        self.apply_committed();
        if self.log.commit() < self.known_commit {
            self.request_catch_up(peer);
        }
    }

    fn on_snapshot_chunk(
        &mut self,
        peer: NodeId,
        index: Slot,
        offset: u64,
        total: u64,
        data: Vec<u8>,
    ) {
        if index <= self.log.commit() || self.role() == RoleKind::Leader {
            return;
        }
        let newer = self
            .incoming
            .as_ref()
            .is_none_or(|i| index > i.index || (index == i.index && total != i.total));
        if newer {
            let chunks = BTreeMap::new();
            self.incoming = Some(IncomingSnapshot {
                index,
                total,
                chunks,
            });
        }
        let Some(incoming) = &mut self.incoming else {
            return;
        };
        let fits = incoming.index == index
            && offset
                .checked_add(data.len() as u64)
                .is_some_and(|end| end <= total);
        if !fits {
            return; // An older snapshot's chunk, or one that does not fit: ignore it.
        }
        incoming.chunks.entry(offset).or_insert(data);
        let Some(data) = incoming.assemble() else {
            return;
        };
        let data = SnapshotData::from(data);
        self.incoming = None;
        self.out.push(Action::Persist(Write::Snapshot {
            index,
            data: data.clone(),
        }));
        self.out.push(Action::InstallSnapshot {
            index,
            data: data.clone(),
        });
        self.log.compact(index);
        self.applied = index;
        self.known_commit = self.known_commit.max(index);
        self.snapshot = Some((index, data));
        self.apply_committed();
        if self.log.commit() < self.known_commit {
            self.request_catch_up(peer);
        }
    }

    // ---- output ------------------------------------------------------------------------

    fn nack(&mut self, to: NodeId, ballot: Ballot) {
        let promised = self.promised;
        self.send(to, Message::Nack { ballot, promised });
    }

    fn send(&mut self, to: NodeId, message: Message<C>) {
        self.out.push(Action::Send { to, message });
    }

    /// Sends to every replica, this one included (its own acceptor votes like any other).
    fn broadcast(&mut self, message: &Message<C>) {
        for i in 0..self.members.replicas().len() {
            let to = self.members.replicas()[i];
            self.out.push(Action::Send {
                to,
                message: message.clone(),
            });
        }
    }

    fn finish(&mut self) -> Vec<Action<C>> {
        self.check_bounds();
        if self.options.check_invariants {
            self.check_log();
        }
        mem::take(&mut self.out)
    }

    /// The engine's O(1) invariants, checked after every event in every build. A failure
    /// is a bug in the engine, never bad input: it panics with the invariant's name, and
    /// the driver stops the member (going on could acknowledge what is not so).
    fn check_bounds(&self) {
        let commit = self.log.commit();
        assert!(
            self.applied <= commit,
            "invariant violated: applied {} beyond the commit point {commit}",
            self.applied
        );
        assert!(
            self.log.compacted() <= self.applied,
            "invariant violated: compacted {} beyond applied {}",
            self.log.compacted(),
            self.applied
        );
        assert!(
            commit <= self.log.last(),
            "invariant violated: commit point {commit} beyond the log's last slot {}",
            self.log.last()
        );
        match &self.role {
            Role::Leader(leader) => {
                assert_eq!(
                    leader.ballot, self.promised,
                    "invariant violated: a leader's ballot is not its promise"
                );
                assert_eq!(
                    leader.first,
                    commit + 1,
                    "invariant violated: the leader's window does not start after the commit point"
                );
                let bound = self
                    .options
                    .window_slots
                    .max(leader.recovered_through.saturating_sub(commit));
                assert!(
                    leader.in_flight.len() as u64 <= bound,
                    "invariant violated: {} slots in flight, above the window's {bound}",
                    leader.in_flight.len()
                );
            }
            Role::Candidate(candidate) => {
                assert_eq!(
                    candidate.ballot, self.promised,
                    "invariant violated: a candidate's ballot is not its promise"
                );
            }
            Role::Follower => {}
        }
        assert!(
            matches!(self.role, Role::Follower) || self.follower_reads.waiting.is_empty(),
            "invariant violated: a candidate or leader holds reads for another leader"
        );
    }

    /// The invariants that walk the log (O(n)), checked after every event when
    /// `Options::check_invariants` is on (tests and the simulator).
    fn check_log(&self) {
        let commit = self.log.commit();
        for slot in self.log.compacted() + 1..=commit {
            assert!(
                self.log.get(slot).is_some(),
                "invariant violated: chosen slot {slot} missing"
            );
        }
        for slot in commit + 1..=self.log.last() {
            if let Some(vote) = self.log.get(slot) {
                assert!(
                    vote.ballot <= self.promised,
                    "invariant violated: a vote at slot {slot} above the promise"
                );
            }
        }
    }
}

/// Heartbeats remembered for leases while unconfirmed (an isolated leader would
/// otherwise remember one per tick forever).
const SENT_AT_MAX: usize = 64;

/// How many slots `to` is past `from`, as an index (saturating: an index that large
/// finds nothing).
fn distance(from: Slot, to: Slot) -> usize {
    usize::try_from(to.saturating_sub(from)).unwrap_or(usize::MAX)
}
