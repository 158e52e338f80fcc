//! The Multi-Paxos replica: acceptor, learner and (when elected) leader in one state
//! machine. See the module documentation for the rules and `docs/PROTOCOL.md` for why.
//!
//! A replica is its role (follower, candidate or leader, with the state only that role
//! has) and `Shared`, what every role holds: the acceptor's promise and log, the
//! learner's progress, follower reads, catch-up and the actions on their way out. This
//! file holds both, the public handlers and the invariants. `step` picks the role and
//! `dispatch` the message; a handler for one role takes that role's state (leader-only
//! handlers are `Shared` methods taking `&mut Leader`, so none re-checks the role), and
//! the handlers that change the role (`phase1`) are the replica's own. Each sub-protocol
//! is a file:
//! - `dispatch`: which role handles which message;
//! - `phase1`: ballots and roles, election by phase 1, becoming leader;
//! - `replication`: phase 2 (batches, pipeline, accepts, acknowledgements, the commit
//!   point) and forwarding to the leader;
//! - `learning`: learning what is chosen, from the leader or from acceptors' reports,
//!   and applying it in order;
//! - `reads`: heartbeats, read index on the leader and for followers, leader leases;
//! - `catch_up`: chosen entries or a snapshot fetched from a peer;
//! - `reconfiguration`: membership changes proposed, taken into effect, and old
//!   configurations retired;
//! - `model` (tests only): what the exhaustive model check sees of a replica.

use std::collections::{BTreeMap, VecDeque};
use std::mem;
use std::sync::Arc;

use rand_core::RngCore;

use crate::ballot::Ballot;
use crate::node::{AcceptorSet, NodeId};
use crate::quorum::QuorumSystem;
use crate::synod::{ConfigError, Role as SynodRole};

use super::config::{ElectionMode, Members, Options};
use super::election::Election;
use super::log::{Limit, Log};
use super::membership::Membership;
use super::message::{
    Action, Batch, Command, Entry, LogEntry, LogRun, Message, ReadError, Slot, SlotVote, Write,
};
use super::snapshot::SnapshotData;

mod catch_up;
mod dispatch;
mod learning;
#[cfg(test)]
mod model;
mod phase1;
mod reads;
mod reconfiguration;
mod replication;

use catch_up::IncomingSnapshot;
use dispatch::PhaseOne;
use learning::Reports;
#[cfg(test)]
pub(crate) use model::Timer;
use phase1::Candidate;
use reads::{FollowerReads, Grant, PendingRead};
use reconfiguration::MembershipHistory;
pub use reconfiguration::{ReconfigureError, TransferError};
use replication::{InFlight, Leader, SeenForwards};

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
    /// The membership the snapshot was taken with (after every slot it covers); `None`
    /// without a snapshot, or for one stored before membership could change (the
    /// initial configuration then holds).
    pub snapshot_membership: Option<Membership>,
}

impl<C> Default for Durable<C> {
    fn default() -> Self {
        Durable {
            promised: Ballot::ZERO,
            votes: Vec::new(),
            commit: 0,
            snapshot: None,
            snapshot_membership: None,
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

impl<C> Role<C> {
    fn kind(&self) -> RoleKind {
        match self {
            Role::Follower => RoleKind::Follower,
            Role::Candidate(_) => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
        }
    }
}

/// A Multi-Paxos replica. Drive it with [`Replica::step`], [`Replica::tick`],
/// [`Replica::propose`] and [`Replica::read`]; carry out the returned actions in order.
#[derive(Clone, Debug)]
pub struct Replica<C, R> {
    /// Follower, candidate or leader, with what only that role holds.
    role: Role<C>,
    shared: Shared<C, R>,
}

/// What a replica holds whatever its role.
#[derive(Clone, Debug)]
struct Shared<C, R> {
    id: NodeId,
    /// The configurations in force: the current one, and older ones not yet retired.
    membership: Membership,
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
    /// Membership entries applied during this event, by slot, to take effect at its end.
    chosen_membership: Vec<(Slot, Entry<C>)>,
    /// The membership at the compacted point and after each change applied since: what
    /// a snapshot taken at any applied slot is stored and sent with.
    history: MembershipHistory,
    /// The epoch begun by a change this replica applied that removed it (see
    /// [`Replica::removed`]).
    removed_in: Option<u64>,
    /// For a joining member: the members it was told of, which it takes the log from
    /// (even while its replay says they are not members) until the log has added it.
    sources: Vec<NodeId>,
    /// Negative control: a candidate that leads without phase 1.
    #[cfg(feature = "negative-controls")]
    skips_phase1: bool,
    #[cfg(feature = "negative-controls")]
    serves_reads_unapplied: bool,
    #[cfg(feature = "negative-controls")]
    reads_at_commit_point: bool,
    #[cfg(feature = "negative-controls")]
    phase1_in_current_only: bool,
    #[cfg(feature = "negative-controls")]
    drops_snapshot_membership: bool,
    #[cfg(feature = "negative-controls")]
    skips_vote_restriction: bool,
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
    /// `tick()` on. `members` is the configuration of epoch 0 (the initial cluster): the
    /// membership changes in the log are applied over it again as they are replayed.
    pub fn restart(
        id: NodeId,
        members: Arc<Members>,
        options: Options,
        mut rng: R,
        durable: Durable<C>,
    ) -> Result<Replica<C, R>, ConfigError> {
        options.validate()?;
        // The log's changes up to the snapshot were released with it: the membership it
        // was taken with stands for them. This replica may not be in it (a member that
        // joined after the snapshot's index): its addition is in the log after it.
        let membership = match (&durable.snapshot, durable.snapshot_membership) {
            (Some(_), Some(membership)) => membership,
            _ => {
                members.position(id).ok_or(ConfigError::NotInConfig {
                    node: id,
                    role: SynodRole::Acceptor,
                })?;
                Membership::new(members)
            }
        };
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
        let count = membership.roster().len();
        let history = MembershipHistory::new(membership.clone());
        // A grant made before the crash may still run: honour it, whoever holds it.
        let grant = options.lease.map(|lease| Grant {
            holder: None,
            until: u64::from(lease.duration_ticks) + 1,
        });
        let shared = Shared {
            id,
            membership,
            options,
            rng,
            promised,
            highest_seen: promised,
            log,
            applied: compacted,
            known_commit: whole,
            leader: None,
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
            chosen_membership: Vec::new(),
            history,
            removed_in: None,
            sources: Vec::new(),
            #[cfg(feature = "negative-controls")]
            skips_phase1: false,
            #[cfg(feature = "negative-controls")]
            serves_reads_unapplied: false,
            #[cfg(feature = "negative-controls")]
            reads_at_commit_point: false,
            #[cfg(feature = "negative-controls")]
            phase1_in_current_only: false,
            #[cfg(feature = "negative-controls")]
            drops_snapshot_membership: false,
            #[cfg(feature = "negative-controls")]
            skips_vote_restriction: false,
        };
        Ok(Replica {
            role: Role::Follower,
            shared,
        })
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// Leader, candidate or follower.
    pub fn role(&self) -> RoleKind {
        self.role.kind()
    }

    /// The leader this replica knows of (itself if it leads).
    pub fn leader(&self) -> Option<NodeId> {
        self.shared.leader
    }

    /// Slots this replica, leading, proposed that it does not yet know chosen, and the
    /// entries waiting for room in its pipeline (0 and 0 unless it leads).
    pub fn in_flight(&self) -> (usize, usize) {
        match &self.role {
            Role::Leader(leader) => (leader.in_flight.len(), leader.pending.len()),
            _ => (0, 0),
        }
    }

    /// The ballot promised.
    pub fn promised(&self) -> Ballot {
        self.shared.promised
    }

    /// Every slot through this one is chosen and known here.
    pub fn commit(&self) -> Slot {
        self.shared.log.commit()
    }

    /// Every slot through this one was handed to the state machine.
    pub fn applied(&self) -> Slot {
        self.shared.applied
    }

    /// The slot through which the log was compacted into a snapshot.
    pub fn compacted(&self) -> Slot {
        self.shared.log.compacted()
    }

    /// The entry this replica holds for `slot`, with the ballot it holds it at.
    pub fn entry(&self, slot: Slot) -> Option<&LogEntry<C>> {
        self.shared.log.get(slot)
    }

    /// Proposes `command`. A leader gives it a slot as soon as the window has room; a
    /// follower forwards it to the leader it knows of.
    pub fn propose(&mut self, command: C) -> Result<Vec<Action<C>>, ProposeError> {
        let shared = &mut self.shared;
        match &mut self.role {
            Role::Leader(leader) => {
                leader.pending.push_back(Entry::Command(command));
                shared.pump(leader);
            }
            _ => match shared.leader {
                Some(leader) if leader != shared.id => shared.forward(leader, vec![command]),
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
        let shared = &mut self.shared;
        match (&mut self.role, shared.leader) {
            (Role::Leader(leader), _) => shared.enqueue_read(leader, id, None),
            (Role::Follower, Some(leader)) => shared.read_on_follower(id, leader),
            (_, leader) => {
                let error = ReadError::NotLeader { leader };
                shared.out.push(Action::ReadFailed { id, error });
            }
        }
        self.finish()
    }

    /// A member joining an existing cluster, started with the configuration it was told
    /// of (the current members and itself, as `member add` printed them) and what its
    /// storage holds. It takes the log like any member, and never campaigns until the
    /// changes it replays have retired the configuration it was told of
    /// ([`Membership::is_settled`]): that one was never chosen.
    pub fn join(
        id: NodeId,
        told: Arc<Members>,
        options: Options,
        rng: R,
        durable: Durable<C>,
    ) -> Result<Replica<C, R>, ConfigError> {
        let from_snapshot = durable.snapshot.is_some() && durable.snapshot_membership.is_some();
        let mut replica = Replica::restart(id, told.clone(), options, rng, durable)?;
        replica.shared.sources = told.everyone().filter(|&m| m != id).collect();
        if !from_snapshot {
            let membership = Membership::told(told);
            replica.shared.history = MembershipHistory::new(membership.clone());
            replica.shared.membership = membership;
        }
        Ok(replica)
    }

    /// The application took a snapshot covering every slot through `index` (at most what
    /// it applied). The replica keeps it for laggards and releases the log below it.
    pub fn snapshot_taken(&mut self, index: Slot, data: SnapshotData) -> Vec<Action<C>> {
        let shared = &mut self.shared;
        if index > shared.applied || index <= shared.log.compacted() {
            return self.finish();
        }
        let membership = shared.history.compact(index);
        shared.out.push(Action::Persist(Write::Snapshot {
            index,
            membership,
            data: data.clone(),
        }));
        shared.log.compact(index);
        shared.snapshot = Some((index, data));
        self.finish()
    }

    /// The driver lost its connection from `peer` (it closed: on one machine or a LAN,
    /// what a crashed process looks like at once). If `peer` is the leader this follower
    /// follows, it campaigns after a few heartbeats instead of a whole election timeout,
    /// unless the leader is heard from meanwhile. Only liveness depends on this hint: a
    /// wrong one costs at most an election.
    pub fn peer_unreachable(&mut self, peer: NodeId) -> Vec<Action<C>> {
        let shared = &mut self.shared;
        if matches!(self.role, Role::Follower) && shared.leader == Some(peer) {
            shared.election.suspect(&mut shared.rng);
        }
        self.finish()
    }

    /// One tick of logical time.
    pub fn tick(&mut self) -> Vec<Action<C>> {
        let shared = &mut self.shared;
        shared.now += 1;
        shared.apply_committed();
        match &mut self.role {
            Role::Leader(leader) => {
                leader.heartbeat_elapsed += 1;
                if leader.heartbeat_elapsed >= shared.options.heartbeat_ticks {
                    shared.broadcast_heartbeat(leader);
                    shared.resend_if_stalled(leader);
                }
            }
            Role::Candidate(_) | Role::Follower => {
                if shared.election.tick() {
                    self.campaign();
                }
                self.shared.catch_up_if_behind();
                self.shared.ask_read_index_again_if_unanswered();
            }
        }
        self.finish()
    }

    /// Handles `message` from `from`. Messages from non-members, or carrying a ballot of
    /// a known epoch that no voter owns, are ignored.
    pub fn step(&mut self, from: NodeId, message: Message<C>) -> Vec<Action<C>> {
        let shared = &self.shared;
        let Some(sender) = shared.membership.position(from) else {
            return self.step_from_source(from, message);
        };
        let ballot = message.ballot();
        // Who owns a ballot of an epoch this replica has not learned, it cannot tell; it
        // must still hear such messages from the members it knows, to learn that epoch.
        let knowable = ballot.epoch() <= shared.membership.epoch();
        if ballot != Ballot::ZERO && knowable && !shared.membership.is_voter(ballot.node) {
            return Vec::new(); // No voter can own this ballot: forged or corrupt.
        }
        let refused = matches!(message, Message::Prepare { .. })
            && ballot > shared.promised
            && shared.grant_refuses(from);
        if refused {
            // A lease we granted still runs: the candidate is refused, and its ballot
            // must not depose the leader the lease protects.
            return self.finish();
        }
        self.observe(message.ballot());
        if let Message::Campaign { ballot } = message {
            self.on_campaign(from, ballot);
            return self.finish();
        }
        match &mut self.role {
            Role::Leader(leader) => self.shared.step_leader(leader, from, sender, message),
            Role::Candidate(candidate) => {
                match self.shared.step_candidate(candidate, from, sender, message) {
                    PhaseOne::UnderWay => {}
                    PhaseOne::Complete => self.become_leader(),
                    PhaseOne::Behind(peer) => {
                        // Our log is behind a peer's: catch up before leading.
                        self.step_down();
                        self.shared.request_catch_up(peer);
                    }
                }
            }
            Role::Follower => self.shared.step_follower(from, sender, message),
        }
        self.finish()
    }

    /// A message from a member not in the roster: taken only if it is the log (chosen
    /// entries, or a snapshot) from a member this joining replica was told of.
    fn step_from_source(&mut self, from: NodeId, message: Message<C>) -> Vec<Action<C>> {
        if !self.shared.sources.contains(&from) {
            return Vec::new();
        }
        if matches!(message, Message::Chosen { .. } | Message::Snapshot { .. }) {
            self.shared.on_log(from, message);
        }
        self.finish()
    }

    /// The members a joining replica takes the log from until the log has added it
    /// (empty otherwise): a driver dials them and admits their connections.
    pub fn catch_up_sources(&self) -> &[NodeId] {
        &self.shared.sources
    }

    fn finish(&mut self) -> Vec<Action<C>> {
        self.follow_membership();
        self.step_down_if_behind();
        self.check_bounds();
        if self.shared.options.check_invariants {
            self.shared.check_log();
        }
        mem::take(&mut self.shared.out)
    }

    /// The engine's O(1) invariants, checked after every event in every build. A failure
    /// is a bug in the engine, never bad input: it panics with the invariant's name, and
    /// the driver stops the member (going on could acknowledge what is not so).
    fn check_bounds(&self) {
        let shared = &self.shared;
        let commit = shared.log.commit();
        assert!(
            shared.applied <= commit,
            "invariant violated: applied {} beyond the commit point {commit}",
            shared.applied
        );
        assert!(
            shared.log.compacted() <= shared.applied,
            "invariant violated: compacted {} beyond applied {}",
            shared.log.compacted(),
            shared.applied
        );
        assert!(
            commit <= shared.log.last(),
            "invariant violated: commit point {commit} beyond the log's last slot {}",
            shared.log.last()
        );
        match &self.role {
            Role::Leader(leader) => {
                assert_eq!(
                    leader.ballot, shared.promised,
                    "invariant violated: a leader's ballot is not its promise"
                );
                assert_eq!(
                    leader.first,
                    commit + 1,
                    "invariant violated: the leader's window does not start after the commit point"
                );
                let bound = shared
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
                    candidate.ballot, shared.promised,
                    "invariant violated: a candidate's ballot is not its promise"
                );
            }
            Role::Follower => {}
        }
        assert!(
            matches!(self.role, Role::Follower) || shared.follower_reads.waiting.is_empty(),
            "invariant violated: a candidate or leader holds reads for another leader"
        );
    }
}

impl<C: Command, R: RngCore> Shared<C, R> {
    fn nack(&mut self, to: NodeId, ballot: Ballot) {
        let promised = self.promised;
        self.send(to, Message::Nack { ballot, promised });
    }

    fn send(&mut self, to: NodeId, message: Message<C>) {
        self.out.push(Action::Send { to, message });
    }

    /// Sends to every member of the roster, learners and this one included (its own
    /// acceptor votes like any other).
    fn broadcast(&mut self, message: &Message<C>) {
        for i in 0..self.membership.roster().len() {
            let to = self.membership.roster()[i];
            self.out.push(Action::Send {
                to,
                message: message.clone(),
            });
        }
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

/// How many slots `to` is past `from`, as an index (saturating: an index that large
/// finds nothing).
fn distance(from: Slot, to: Slot) -> usize {
    usize::try_from(to.saturating_sub(from)).unwrap_or(usize::MAX)
}
