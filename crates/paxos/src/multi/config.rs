//! Who the replicas are, the quorum system they form, and the engine's tunables.

use crate::node::{NodeId, ACCEPTORS_MAX};
use crate::quorum::{Quorum, QuorumError, QuorumSpec};
use crate::synod::ConfigError;

/// The members of a cluster. Voters are acceptors, learners and potential leaders; a
/// voter's position in [`Members::replicas`] is the acceptor index the quorum system
/// speaks of (for a grid, row-major). Learners receive the log and apply it, and are never
/// counted in any quorum nor campaign.
///
/// Every member also has a position in [`Members::everyone`]: voters first, in acceptor
/// order, then learners. A replica keeps what it knows of each peer by that position, so
/// a set of positions is an [`crate::node::AcceptorSet`] whose bits past the voters the
/// quorum system ignores: a learner's acknowledgement never completes a quorum.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Members {
    replicas: Vec<NodeId>,
    learners: Vec<NodeId>,
    spec: QuorumSpec,
    quorum: Quorum,
}

impl Members {
    /// Voters only. Refuses an empty or unsafe quorum system and duplicate ids.
    pub fn new(replicas: Vec<NodeId>, quorum: QuorumSpec) -> Result<Members, ConfigError> {
        Members::with_learners(replicas, Vec::new(), quorum)
    }

    /// Voters and learners. Refuses an empty or unsafe quorum system over the voters,
    /// duplicate ids, and more members than an acceptor set holds.
    pub fn with_learners(
        replicas: Vec<NodeId>,
        learners: Vec<NodeId>,
        quorum: QuorumSpec,
    ) -> Result<Members, ConfigError> {
        let spec = quorum;
        let quorum = spec.build(replicas.len())?;
        let everyone: Vec<NodeId> = replicas.iter().chain(&learners).copied().collect();
        for (i, id) in everyone.iter().enumerate() {
            if everyone[..i].contains(id) {
                return Err(ConfigError::DuplicateNode(*id));
            }
        }
        if everyone.len() > ACCEPTORS_MAX {
            return Err(ConfigError::Quorum(QuorumError::TooManyAcceptors {
                count: everyone.len(),
            }));
        }
        Ok(Members {
            replicas,
            learners,
            spec,
            quorum,
        })
    }

    /// The voters, in acceptor-index order.
    pub fn replicas(&self) -> &[NodeId] {
        &self.replicas
    }

    /// The learners.
    pub fn learners(&self) -> &[NodeId] {
        &self.learners
    }

    /// Every member, voters first: the position of each is its place in this order.
    pub fn everyone(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.replicas.iter().chain(&self.learners).copied()
    }

    /// How many members, voters and learners.
    pub fn count(&self) -> usize {
        self.replicas.len() + self.learners.len()
    }

    /// The quorum system as written.
    pub fn spec(&self) -> QuorumSpec {
        self.spec
    }

    /// The quorum system.
    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    /// The acceptor index of `id`, if it is a voter.
    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        self.replicas.iter().position(|&r| r == id)
    }

    /// The position of `id` among [`Members::everyone`], if it is a member.
    pub fn position(&self, id: NodeId) -> Option<usize> {
        self.everyone().position(|r| r == id)
    }

    /// Whether `id` is a voter.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.replicas.contains(&id)
    }
}

/// The engine's tunables. Time is in ticks: the driver decides how long a tick is (the
/// server uses its `--heartbeat-interval`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// A leader sends a heartbeat every this many ticks.
    pub heartbeat_ticks: u32,
    /// A follower that hears nothing from a leader for a random time in
    /// `[election_ticks, 2·election_ticks)` campaigns.
    pub election_ticks: u32,
    /// At most this many slots are proposed and not yet chosen (the pipeline window).
    pub window_slots: u64,
    /// At most this many accepts of new commands in flight. Once they are, commands
    /// wait and leave together in the next batch: this, not a timer, is what makes batches
    /// grow with load while a lone command still leaves at once.
    pub pipeline_depth: usize,
    /// At most this many commands per accept.
    pub batch_max_commands: usize,
    /// At most about this many bytes of commands per accept, promise chunk or catch-up
    /// reply (one larger command still goes, alone).
    pub batch_max_bytes: usize,
    /// At most this many entries per promise chunk or catch-up reply.
    pub chunk_entries: usize,
    /// At most this many bytes per snapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// An acceptor ignores votes more than this many slots beyond its commit point (a
    /// bound on memory against a runaway or forged leader; the leader resends later).
    pub gap_max_slots: u64,
    /// Leader leases, for reads without a message round; `None` (the default) uses none.
    pub lease: Option<Lease>,
    /// Acceptors send their `Accepted` to every replica, not only the leader, and a
    /// follower counts them: a slot a phase-2 quorum reported at the ballot it follows is
    /// chosen (Paxos's learners), so the follower applies it without waiting for the
    /// leader's commit point, one message later. Costs each acceptor a message per peer.
    pub learn_from_acceptors: bool,
    /// Also check, after every event, the invariants that walk the whole uncompacted log
    /// (the O(1) ones are checked in every build). For tests and the simulator (which
    /// turn it on), never for a server: with 100,000 entries kept between snapshots it
    /// took a third of a member's CPU.
    pub check_invariants: bool,
    /// How a candidate wins phase 1: Paxos's (every promise reports its votes and the
    /// new leader re-proposes the highest-ballot one of each slot, the default) or
    /// Raft's vote restriction (a voter promises only a candidate whose log covers its
    /// own, and reports nothing). See [`ElectionMode`].
    pub election: ElectionMode,
}

/// How phase 1 finds what may have been chosen (`docs/PROTOCOL.md`, "Raft as a special
/// case of Paxos").
///
/// Every replica of a cluster should run the same mode, but mixing them is safe, only
/// less live: a Paxos voter reports its votes to any candidate (a Raft candidate takes
/// them as a Paxos one does), and a Raft voter refuses a Paxos candidate that has
/// votes to cover, since a Paxos prepare describes no log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ElectionMode {
    /// Promises carry the voters' votes; the new leader re-proposes, slot by slot, the
    /// highest-ballot vote reported (P2c).
    #[default]
    Paxos,
    /// Raft's vote restriction: the prepare describes the candidate's log above its
    /// commit point (the ballot of each run of slots, as Raft's RequestVote gives the
    /// last entry's term and index), and a voter promises only if, at every slot where
    /// it holds a vote, the candidate holds one at a ballot at least as high. Promises
    /// then carry no votes: the new leader re-proposes its own log, which already holds
    /// everything that may have been chosen.
    Raft,
}

/// A leader lease: an acceptor that acknowledges a leader's heartbeat promises no other
/// candidate anything for `duration_ticks` of its own ticks; the leader, once a phase-2
/// quorum acknowledged a heartbeat, serves reads locally for `duration_ticks -
/// drift_ticks` of its own ticks counted from when it sent that heartbeat.
///
/// Safe only if, over any `duration_ticks` ticks of an acceptor, the leader's clock
/// advances by at least `duration_ticks - drift_ticks`: the drift bound is the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// How long a grant lasts, in the granting acceptor's ticks.
    pub duration_ticks: u32,
    /// The most the leader's clock may lag an acceptor's over one lease.
    pub drift_ticks: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            heartbeat_ticks: 1,
            election_ticks: 10,
            window_slots: 4096,
            pipeline_depth: 8,
            batch_max_commands: 1024,
            batch_max_bytes: 1 << 20,
            chunk_entries: 1024,
            snapshot_chunk_bytes: 256 << 10,
            gap_max_slots: 1 << 16,
            lease: None,
            learn_from_acceptors: true,
            check_invariants: cfg!(test),
            election: ElectionMode::Paxos,
        }
    }
}

impl Options {
    /// Refuses tunables the engine cannot work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problem = if self.heartbeat_ticks == 0 {
            "heartbeat_ticks must be at least 1"
        } else if u64::from(self.election_ticks) <= 2 * u64::from(self.heartbeat_ticks) {
            "election_ticks must exceed two heartbeats, or a healthy leader looks dead"
        } else if self.window_slots == 0 || self.batch_max_commands == 0 {
            "window_slots and batch_max_commands must be at least 1"
        } else if self.pipeline_depth == 0 {
            "pipeline_depth must be at least 1"
        } else if self.batch_max_bytes == 0 || self.snapshot_chunk_bytes == 0 {
            "batch_max_bytes and snapshot_chunk_bytes must be at least 1"
        } else if self.chunk_entries == 0 {
            "chunk_entries must be at least 1"
        } else if self.lease.is_some_and(|l| {
            l.drift_ticks >= l.duration_ticks || l.duration_ticks > self.election_ticks
        }) {
            "a lease must last longer than its drift bound and no longer than election_ticks"
        } else if self.gap_max_slots < self.window_slots {
            "gap_max_slots must be at least window_slots, or followers refuse a full window"
        } else {
            return Ok(());
        };
        Err(ConfigError::Timing(problem))
    }
}
