//! What a run is asked to do (fault rates, negative controls, options) and what it
//! reports (the trace, counts, the checkers' findings).

use super::*;

/// Fault rates. Per-tick rates are the chance, each nominal tick, that the fault starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultRates {
    /// Chance a message is lost.
    pub loss: f64,
    /// Chance a delivered message is delivered twice.
    pub duplication: f64,
    /// Shortest and longest message delay, µs.
    pub delay_us: (u64, u64),
    /// Per tick: a partition starts (symmetric or one-way); it heals after a while.
    pub partition: f64,
    /// Per tick: a node crashes, losing unsynced writes; it restarts after a while.
    pub crash: f64,
    /// Per tick: a node pauses; it resumes after a while.
    pub pause: f64,
    /// Per tick: a node's disk turns slow for a while.
    pub slow_disk: f64,
    /// Largest relative clock drift of a node (0.01 = 1%).
    pub drift: f64,
    /// Per tick: the nemesis changes the membership (`nemesis.rs`): adds a spare as a
    /// learner, promotes a learner, removes a member, or switches the quorum system.
    pub membership: f64,
}

impl Default for FaultRates {
    /// Every kind of fault, often enough that each run sees several.
    fn default() -> Self {
        FaultRates {
            loss: 0.05,
            duplication: 0.02,
            delay_us: (100, 2_000),
            partition: 0.01,
            crash: 0.005,
            pause: 0.005,
            slow_disk: 0.005,
            drift: 0.01,
            membership: 0.0,
        }
    }
}

impl FaultRates {
    /// No faults at all: every message arrives once, after the shortest delay.
    pub fn none() -> FaultRates {
        FaultRates {
            loss: 0.0,
            duplication: 0.0,
            delay_us: (100, 100),
            partition: 0.0,
            crash: 0.0,
            pause: 0.0,
            slow_disk: 0.0,
            drift: 0.0,
            membership: 0.0,
        }
    }

    /// Refuses rates that are not probabilities and delays that are not ordered.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("loss", self.loss),
            ("duplication", self.duplication),
            ("partition", self.partition),
            ("crash", self.crash),
            ("pause", self.pause),
            ("slow-disk", self.slow_disk),
            ("membership", self.membership),
        ];
        for (name, p) in rates {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} must be a probability in [0, 1), not {p}"));
            }
        }
        if !(0.0..0.5).contains(&self.drift) {
            return Err(format!("drift must be in [0, 0.5), not {}", self.drift));
        }
        self.network(true).validate()
    }

    /// The network's share of these rates (without loss and duplication once a run has
    /// healed). Delays are in virtual µs.
    pub(super) fn network(&self, faulty: bool) -> Faults {
        Faults {
            loss: if faulty { self.loss } else { 0.0 },
            duplication: if faulty { self.duplication } else { 0.0 },
            delay_ticks_min: self.delay_us.0,
            delay_ticks_max: self.delay_us.1,
        }
    }
}

/// Deliberate protocol breakage, to show the checkers catch it (all off normally).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Controls {
    /// Storage forgets the promised ballot across a restart.
    pub forget_promise_on_restart: bool,
    /// A candidate leads at once, without phase 1 (needs the `negative-controls` feature
    /// of `synod-paxos`; without it this knob does nothing).
    pub leader_skips_phase1: bool,
    /// The sequencer lets what follows a persist run without waiting for the sync (needs
    /// the `negative-controls` feature of `synod-paxos`).
    pub ack_before_sync: bool,
    /// A follower serves a read once the leader's read index arrives, before applying
    /// through it (needs the `negative-controls` feature of `synod-paxos`).
    pub follower_reads_unapplied: bool,
    /// A leader reads at its commit point while its followers learn from acceptors
    /// (needs the `negative-controls` feature of `synod-paxos`).
    pub leader_reads_at_commit_point: bool,
    /// A leader change answers waiting writes "leader changed", though their commands
    /// may still be chosen (needs the `negative-controls` feature of `synod-node`).
    pub writes_misreported_on_leader_change: bool,
    /// The first member's store drifts from the log it applies (the same entries as every
    /// other member, a different state).
    pub first_member_drifts: bool,
    /// Keep-alives refresh a lease in the store but not the leader's clock (needs the
    /// `negative-controls` feature of `synod-server`).
    pub keep_alives_forgotten: bool,
    /// The server's watchers skip the batch a full stream could not take, instead of
    /// catching up from it: watchers miss events.
    pub watch_skips_unqueued: bool,
    /// A candidate in a new epoch completes phase 1 with a quorum of the new
    /// configuration alone, not of the older ones still active (needs the
    /// `negative-controls` feature of `synod-paxos`).
    pub phase1_in_current_configuration_only: bool,
    /// A snapshot installed from a peer leaves the member's membership as it was (needs
    /// the `negative-controls` feature of `synod-paxos`).
    pub snapshot_membership_dropped: bool,
}

#[cfg(test)]
impl Controls {
    /// Breaks a freshly booted member as these controls ask.
    pub(super) fn break_member(&self, member: &mut Running) {
        if self.follower_reads_unapplied {
            member.replica_mut().serve_follower_reads_unapplied();
        }
        if self.leader_skips_phase1 {
            member.replica_mut().skip_phase1();
        }
        if self.phase1_in_current_configuration_only {
            member.replica_mut().phase1_in_current_configuration_only();
        }
        if self.snapshot_membership_dropped {
            member.replica_mut().drop_snapshot_membership();
        }
        if self.leader_reads_at_commit_point {
            member.replica_mut().read_at_commit_point();
        }
        if self.ack_before_sync {
            member.sequencer_mut().acknowledge_before_sync();
        }
        if self.writes_misreported_on_leader_change {
            member.requests_mut().misreport_writes_on_leader_change();
        }
        if self.keep_alives_forgotten {
            member.machine_mut().inner.forget_keep_alives();
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Replicas of the initial cluster.
    pub nodes: u64,
    /// Spare machines the membership nemesis may add, each once.
    pub spares: u64,
    /// Their quorum system.
    pub quorum: QuorumSpec,
    /// Clients, each with one operation outstanding at a time.
    pub clients: u64,
    /// Keys the clients share.
    pub keys: u8,
    /// How long faults are injected, in ticks; then everything heals.
    pub duration_ticks: u64,
    /// After healing, every pending operation must finish and a new write commit within
    /// this many ticks.
    pub liveness_ticks: u64,
    /// The seed.
    pub seed: u64,
    /// Fault rates.
    pub faults: FaultRates,
    /// Use leader leases for reads (safe under the drift bound).
    pub leases: bool,
    /// Run the lease keeper: etcd leases granted, attached to a key, kept alive or let
    /// expire, and checked never to expire early (`keeper.rs`).
    pub lease_keeper: bool,
    /// Clients that watch every key from revision 1 through the faults, reconnecting
    /// elsewhere from the next revision when their member goes, as etcd clients do; what
    /// they receive is checked against the log (`watches.rs`).
    pub watchers: usize,
    /// Negative controls.
    pub controls: Controls,
    /// Keep a trace of every event (for `--trace` and violation excerpts).
    pub trace: bool,
    /// How candidates win phase 1: Paxos's rule or Raft's vote restriction.
    pub election: ElectionMode,
    /// From this tick on, the leader crashes as soon as it has slots in flight
    /// (restarting when the faults heal), and the failover is measured
    /// ([`Report::failover`]); `None`: no scripted crash.
    pub crash_leader_at_tick: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 5,
            spares: 0,
            quorum: QuorumSpec::Majority,
            clients: 5,
            keys: 10,
            duration_ticks: 2_000,
            liveness_ticks: 1_000,
            seed: 0,
            faults: FaultRates::default(),
            leases: false,
            lease_keeper: false,
            watchers: 0,
            controls: Controls::default(),
            trace: true,
            election: ElectionMode::Paxos,
            crash_leader_at_tick: None,
        }
    }
}

/// One line of the trace: what happened, when, where.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceEvent {
    /// Virtual time, µs.
    pub time: u64,
    /// The node it happened at (the receiver for a delivery).
    pub node: u64,
    /// What: `send`, `deliver`, `drop`, `apply`, `crash`, `restart`, `pause`, …
    pub what: &'static str,
    /// The message's id, for network events: a send, its deliveries (two for a
    /// duplicate) and its drop share it.
    pub id: Option<u64>,
    /// The message kind, for network events.
    pub message: Option<&'static str>,
    /// The ballot the message or event carries.
    pub ballot: Option<Ballot>,
    /// The slot, for slot events.
    pub slot: Option<Slot>,
    /// The peer (sender of a delivery, recipient of a send).
    pub peer: Option<u64>,
}

/// Counts of what happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations that completed.
    pub ops_ok: u64,
    /// Operations whose outcome is unknown (timed out).
    pub ops_unknown: u64,
    /// Write attempts a node answered as not applied (and the client retried).
    pub not_applied: u64,
    /// Messages sent, lost, duplicated.
    pub messages: u64,
    /// Lost messages.
    pub lost: u64,
    /// Duplicated messages.
    pub duplicated: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Crashes.
    pub crashes: u64,
    /// Pauses.
    pub pauses: u64,
    /// Slow-disk episodes.
    pub slow_disks: u64,
    /// Times a replica became leader.
    pub elections: u64,
    /// Highest slot applied anywhere.
    pub slots: Slot,
    /// Snapshots taken.
    pub snapshots: u64,
    /// Applies carried out while a sync before them was still pending.
    pub applies_ahead: u64,
    /// The lease keeper's grants and keep-alives answered with a live lease.
    pub lease_renewals: u64,
    /// Leases that expired.
    pub leases_expired: u64,
    /// Events the watchers received.
    pub watch_events: u64,
    /// Watch streams opened again after their member went (crashed, or refused).
    pub watch_reopens: u64,
    /// Events of the log the watchers had not received when the run ended, summed.
    pub watch_lag: u64,
    /// Membership changes the nemesis asked the leader for.
    pub membership_changes: u64,
    /// Of those, refused at once (another under way, unhealthy, a learner behind…).
    pub membership_refused: u64,
    /// Spares that joined.
    pub joins: u64,
    /// Members that stopped on their removal.
    pub removals: u64,
}

/// A checker's finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Two replicas applied different entries at `slot`.
    Agreement {
        /// The slot.
        slot: Slot,
        /// What was first applied there, and by whom.
        first: String,
        /// What a replica applied later.
        second: String,
    },
    /// The history is not linearizable.
    Linearizability(linearizability::Violation),
    /// After healing, the cluster did not finish its operations or commit a new write.
    Liveness(String),
    /// Two members' states (etcd's HashKV) differ after applying the same slots.
    Divergence {
        /// The slot both had applied through.
        slot: Slot,
        /// The first member's id and hash.
        first: (u64, u64),
        /// The other member's id and hash.
        second: (u64, u64),
    },
    /// Two members that applied through the same slot hold different memberships (the
    /// membership is replicated state: the log's changes through that slot decide it).
    Membership {
        /// The slot both had applied through.
        slot: Slot,
        /// The first member and its membership.
        first: String,
        /// The other member and its membership.
        second: String,
    },
    /// A watcher received events that are not the log's, in the log's order, from the
    /// revision it asked for: one missed, repeated, reordered or wrong.
    Watch {
        /// The watcher.
        watcher: usize,
        /// What it received against what the log says.
        problem: String,
    },
    /// A lease expired sooner than its TTL after a request answered with it.
    LeaseExpiredEarly {
        /// The lease.
        lease: i64,
        /// When the grant or keep-alive was sent (µs).
        sent_us: u64,
        /// The TTL it was answered with (seconds).
        ttl_s: i64,
        /// When a member first applied its expiry (µs).
        expired_us: u64,
    },
    /// A write answered with an error that says it was not applied was chosen.
    Truthfulness {
        /// The slot it was chosen in.
        slot: Slot,
        /// The request: client and attempt.
        request: String,
        /// The error it was answered with.
        answer: &'static str,
    },
}

/// The result of a run.
#[derive(Debug)]
pub struct Report {
    /// Counts.
    pub stats: Stats,
    /// The client history.
    pub history: Vec<Operation>,
    /// Checker failures (empty: all passed).
    pub failures: Vec<Failure>,
    /// Whether the linearizability search gave up (a run is then not a pass).
    pub linearizability_unknown: bool,
    /// A hash of the whole trace: equal for equal seeds.
    pub trace_hash: u64,
    /// The trace, if kept (`Options::trace`).
    pub trace: Option<Trace>,
    /// Where each node's replica stood at the end (role, ballot, epoch, commit point…),
    /// for a report of a liveness failure.
    pub nodes: Vec<String>,
    /// What the scripted leader crash's failover cost, if one happened.
    pub failover: Option<Failover>,
}
