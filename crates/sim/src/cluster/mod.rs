//! A whole Synod cluster in one deterministic process: the members a server runs
//! (`node::Node` with the etcd store), a simulated network and disk, clients, faults, all
//! driven by one event queue in virtual time and one seeded generator. Same seed, same
//! run, event for event.
//!
//! Time is in virtual microseconds; a node's tick is about a millisecond, off by its clock
//! drift. Faults: message loss, duplication and random delay (so reordering); partitions,
//! symmetric or one-way, that heal; a node paused and resumed (its clock runs on, so it
//! catches up the ticks it missed before anything else); crashes that lose every write
//! not yet synced, and restarts; slow disks; clock drift within a bound.
//!
//! # Layout
//! - this file: the world (members, clients, the network, the event queue) and its loop.
//! - `config.rs`: fault rates, negative controls, options; the trace, counts and report.
//! - `members.rs`: the shell around each `node::Node`: inputs in, outputs carried out.
//! - `clients.rs`: what clients ask, where, and what they make of the answers.
//! - `faults.rs`: partitions, crashes and restarts, pauses, slow disks, the heal.
//! - `failover.rs`: the scripted leader crash and what the failover cost (time to the
//!   next commit, messages, bytes), to compare elections.
//! - `nemesis.rs`: membership changes (add a spare as a learner, promote, remove,
//!   switch the quorum system), through the leader's `Node::reconfigure`.
//! - `keeper.rs`: the lease keeper, and its check that leases never expire early.
//! - `watches.rs`: watchers through the faults, and their check against the log.
//! - `tracing.rs`: the trace for `--trace` (vector clocks, node states, faults as
//!   intervals, the chosen moment of each slot), kept only when asked for.
//! - `checks.rs`: agreement and states as members apply; truthful errors, final states
//!   and memberships at the end.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use node::requests::Failure as RequestFailure;
use node::{Node as Member, NodeOptions, Output as NodeOutput};
use paxos::multi::{
    Durable, ElectionMode, Entry, Lease, Members, Message, Options as ReplicaOptions, Replica,
    RoleKind, Slot, SnapshotData, Write as DiskWrite,
};
use paxos::{Ballot, NodeId, QuorumSpec};
use prost::Message as _;
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64;
use server::machine::{Applied, View};
use server::payload::Payload;
use server::proto::synodpb::Command;
use server::watchers::Watchers;

use crate::history::{Input, Operation, Output};
use crate::linearizability::{self, Verdict};
use crate::network::{Envelope, Fate, Faults, Network};
use crate::trace::Trace;
use crate::workload::{self, Key, LeaseAsk, Outcome, Value, Watched, Write};
use keeper::{Keeper, KEEPER};
use nemesis::Standing;
use storage::FaultyStorage;
use watches::WatchClient;

/// Virtual microseconds in a nominal tick.
pub const TICK_US: u64 = 1_000;

mod checks;
mod clients;
mod config;
mod failover;
mod faults;
mod keeper;
mod members;
mod nemesis;
#[cfg(test)]
mod tests;
mod tracing;
mod watches;

pub use config::{Controls, Failure, FaultRates, Options, Report, Stats, TraceEvent};
pub use failover::Failover;

/// What a client asked a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    Get(Key),
    Write(Write),
}

/// What a node answered.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Value(Option<Value>),
    Wrote(Outcome),
    /// A request answered with an error by the node's request table.
    Failed(RequestFailure),
}

/// Who waits for a member's answer: a client's attempt, and the key a read asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Waiter {
    client: usize,
    seq: u64,
    key: Key,
}

/// The member a server runs: its replica, sequencer, request table and the etcd store,
/// under the simulator's eye.
type Running = Member<Watched, Waiter, Pcg64>;

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        id: u64,
        from: usize,
        to: usize,
        message: Message<Payload>,
    },
    Tick(usize),
    Synced {
        node: usize,
        incarnation: u64,
        tag: u64,
    },
    Request {
        node: usize,
        client: usize,
        seq: u64,
        ask: Ask,
    },
    Reply {
        client: usize,
        seq: u64,
        answer: Answer,
    },
    ClientStart(usize),
    ClientRetry {
        client: usize,
        seq: u64,
    },
    ClientTimeout {
        client: usize,
        seq: u64,
    },
    /// The lease keeper's next request (see `keeper.rs`).
    KeeperRetry(LeaseAsk),
    KeeperRequest {
        node: usize,
        seq: u64,
        ask: LeaseAsk,
    },
    KeeperReply {
        seq: u64,
        outcome: Option<Outcome>,
    },
    KeeperTimeout(u64),
    /// A watcher opens a stream at its target member (see `watches.rs`).
    WatchOpen(usize),
    WatchCreate {
        node: usize,
        watcher: usize,
    },
    WatchPoll(usize),
    FaultTick,
    /// `node`'s connection from `peer` closed (the peer crashed), as a real transport
    /// reports: a hint that lets a follower campaign early.
    PeerLost {
        node: usize,
        peer: usize,
    },
    Restart(usize),
    /// A spare the nemesis added starts, if a member knows it was added.
    Join(usize),
    Resume(usize),
    HealPartition(u64),
    DiskRecovers(usize),
    /// The scripted crash of whoever leads is armed (`Options::crash_leader_at_tick`).
    CrashLeader,
}

struct Node {
    id: NodeId,
    /// The running member (none while crashed): the very node the server's core runs.
    member: Option<Running>,
    incarnation: u64,
    /// The storage layer's fault-injecting implementation: the real log format, the real
    /// torn-tail repair.
    disk: FaultyStorage,
    /// When this node's disk finishes the sync under way or the last one (syncs complete
    /// in order, as on one disk).
    sync_ends: u64,
    /// When the next sync ends: it starts when the one under way ends and carries every
    /// write that arrived meanwhile (group commit, as the server's storage does).
    next_sync_ends: Option<u64>,
    /// Applies that ran ahead of a sync, under sequencers before the last restart.
    applies_ahead_before: u64,
    paused: bool,
    /// Events that arrived while paused, handled on resume.
    held: Vec<Event>,
    missed_ticks: u64,
    tick_us: u64,
    slow_disk: bool,
    was_leader: bool,
    /// The watch streams open at this member: the server's own, fed as its core feeds
    /// them.
    watchers: Watchers,
    /// Where it stands in the membership (the nemesis adds and removes members).
    standing: Standing,
    /// For a member that joined: the configuration it was told of (it restarts with it).
    told: Option<Arc<Members>>,
}

struct Client {
    /// The attempt number: a new one for every operation, and for every retry of an
    /// operation a node answered as not applied.
    seq: u64,
    /// The operation outstanding: what, when it was called, where it went.
    pending: Option<(Ask, u64)>,
    target: usize,
    history_index: usize,
    /// Whether the pending operation is one of the final, liveness-checked ones.
    final_op: bool,
    /// Final operations completed.
    finals: u64,
}

/// A simulation in progress.
pub struct World {
    options: Options,
    rng: Pcg64,
    now: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Event>>,
    free: Vec<usize>,
    order: u64,
    members: Arc<Members>,
    replica_options: ReplicaOptions,
    nodes: Vec<Node>,
    clients: Vec<Client>,
    /// Messages between replicas in flight: the simulator's network, shared with the
    /// single-decree runs (`crate::synod`).
    network: Network<Message<Payload>>,
    cut: BTreeSet<(usize, usize)>,
    partition: u64,
    history: Vec<Operation>,
    /// Write attempts answered as not applied, with the answer's words.
    not_applied: HashMap<(u64, u64), &'static str>,
    /// Every write attempt proposed, by the member and request id its command carries:
    /// the client, the attempt, the write.
    attempts: HashMap<(u64, u64), (u64, u64, Write)>,
    chosen: HashMap<Slot, (Entry<Payload>, u64)>,
    /// The state's hash after each sampled slot, and the member that first reported it.
    hashes: HashMap<Slot, (u64, u64)>,
    disagreed: BTreeSet<Slot>,
    failures: Vec<Failure>,
    stats: Stats,
    /// The trace being recorded, with vector clocks and node states (only with
    /// `Options::trace`: nothing of it runs otherwise).
    tracing: Option<Box<tracing::Tracing>>,
    /// Messages sent so far (each gets the next id).
    messages_sent: u64,
    hasher: rustc_hash::FxHasher,
    next_value: Value,
    faults_on: bool,
    keeper: Keeper,
    watch_clients: Vec<WatchClient>,
    /// Watch streams opened so far (each gets the next number).
    watch_streams: u64,
    /// The scripted leader crash, and the failover it measures.
    scripted: failover::Scripted,
}

/// An operation with no answer for this long is recorded as unknown.
const OP_TIMEOUT_TICKS: u64 = 100;
/// A node answers a write it could not serve within this long (the server's request
/// timeout: a few election timeouts), before the client gives up on it.
const REQUEST_TIMEOUT_TICKS: u64 = 60;
/// At most this many writes wait at a node for a leader.
const PARKED_MAX: usize = 1_000;
/// Each member snapshots its store every this many slots.
const SNAPSHOT_EVERY: Slot = 64;
/// The cluster's id (members use it only in answers' headers).
const CLUSTER_ID: u64 = 0x5350_4d31;

/// Runs one simulation to the end and checks it.
pub fn run(options: Options) -> Result<Report, String> {
    let mut world = World::new(options)?;
    world.run_to_end();
    Ok(world.finish())
}

impl World {
    /// A cluster ready to run; refuses options that make no sense.
    pub fn new(options: Options) -> Result<World, String> {
        options.faults.validate()?;
        if options.nodes == 0 || options.nodes > 64 {
            return Err(format!("nodes must be 1..=64, not {}", options.nodes));
        }
        if options.clients == 0 || options.keys == 0 {
            return Err("at least one client and one key".into());
        }
        let ids: Vec<NodeId> = (1..=options.nodes + options.spares).map(NodeId).collect();
        let initial = ids[..index(options.nodes)].to_vec();
        let members = Members::new(initial, options.quorum).map_err(|e| e.to_string())?;
        let replica_options = ReplicaOptions {
            lease: options.leases.then_some(Lease {
                duration_ticks: 8,
                drift_ticks: 2,
            }),
            snapshot_chunk_bytes: 64,
            check_invariants: true,
            election: options.election,
            ..ReplicaOptions::default()
        };
        let mut rng = Pcg64::seed_from_u64(options.seed);
        let drift = options.faults.drift;
        let nodes = ids
            .iter()
            .map(|&id| {
                let skew = (unit(&mut rng) * 2.0 - 1.0) * drift;
                let tick_us = scale(TICK_US, 1.0 + skew);
                let mut node =
                    Node::new(id, tick_us.max(1), watches::new_watchers(&options.controls));
                if id.0 > options.nodes {
                    node.standing = Standing::Spare;
                }
                node
            })
            .collect();
        let clients = (0..options.clients)
            .map(|c| Client {
                seq: 0,
                pending: None,
                target: index(c % options.nodes),
                history_index: 0,
                final_op: false,
                finals: 0,
            })
            .collect();
        let network = Network::new(options.faults.network(true));
        let mut world = World {
            options,
            rng,
            now: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            free: Vec::new(),
            order: 0,
            members: Arc::new(members),
            replica_options,
            nodes,
            clients,
            network,
            cut: BTreeSet::new(),
            partition: 0,
            history: Vec::new(),
            not_applied: HashMap::new(),
            attempts: HashMap::new(),
            chosen: HashMap::new(),
            hashes: HashMap::new(),
            disagreed: BTreeSet::new(),
            failures: Vec::new(),
            stats: Stats::default(),
            tracing: None,
            messages_sent: 0,
            hasher: rustc_hash::FxHasher::default(),
            next_value: 0,
            faults_on: true,
            keeper: Keeper::default(),
            watch_clients: Vec::new(),
            watch_streams: 0,
            scripted: failover::Scripted::default(),
        };
        if world.options.trace {
            world.tracing = Some(Box::new(tracing::Tracing::new(&world.options)));
        }
        for i in 0..index(world.options.nodes) {
            world.boot(i);
        }
        for c in 0..world.clients.len() {
            let start = world.random(0, 20 * TICK_US);
            world.schedule(start, Event::ClientStart(c));
        }
        if world.options.lease_keeper {
            let start = world.random(0, 20 * TICK_US);
            world.schedule(start, Event::KeeperRetry(LeaseAsk::Grant));
        }
        world.start_watchers();
        world.schedule(TICK_US, Event::FaultTick);
        if let Some(tick) = world.options.crash_leader_at_tick {
            world.schedule(tick * TICK_US, Event::CrashLeader);
        }
        Ok(world)
    }

    fn run_to_end(&mut self) {
        let heal_at = self.options.duration_ticks * TICK_US;
        let end = heal_at + self.options.liveness_ticks * TICK_US;
        let mut healed = false;
        while let Some((time, event)) = self.pop() {
            if !healed && time >= heal_at {
                self.now = heal_at;
                self.heal_all();
                healed = true;
            }
            if time > end {
                break;
            }
            self.now = time;
            self.handle(event);
            self.after_event();
            if healed
                && self
                    .clients
                    .iter()
                    .all(|c| c.pending.is_none() && c.final_op)
            {
                break;
            }
        }
        let stuck = self
            .clients
            .iter()
            .enumerate()
            .find(|(_, c)| c.pending.is_some() || !c.final_op);
        if let Some((c, client)) = stuck {
            let op = &self.history[client.history_index];
            self.failures.push(Failure::Liveness(format!(
                "{} ticks after every fault healed, client {c}'s {:?} on {} (called at {} µs) has no answer",
                self.options.liveness_ticks, op.input, op.key, op.call
            )));
        }
    }

    fn finish(mut self) -> Report {
        self.stats.slots = self.chosen.keys().copied().max().unwrap_or(0);
        self.stats.applies_ahead = self
            .nodes
            .iter()
            .map(|n| n.applies_ahead_before + n.member.as_ref().map_or(0, Running::applies_ahead))
            .sum();
        self.check_truthfulness();
        self.check_final_states();
        self.check_final_memberships();
        self.check_leases();
        self.check_watches();
        self.stats.lease_renewals = self.keeper.renewals.len() as u64;
        self.stats.leases_expired = self.keeper.expired.len() as u64;
        let budget = 10_000_000;
        let mut linearizability_unknown = false;
        match linearizability::check(&self.history, budget) {
            Verdict::Linearizable => {}
            Verdict::Violation(v) => self.failures.push(Failure::Linearizability(v)),
            Verdict::Unknown { .. } => linearizability_unknown = true,
        }
        let nodes = self.nodes.iter().map(Node::describe).collect();
        let trace = self
            .tracing
            .take()
            .map(|t| t.finish(self.now, &self.history));
        let trace = match trace {
            Some(Err(problem)) => {
                self.failures.push(Failure::Liveness(problem));
                None
            }
            Some(Ok(trace)) => Some(trace),
            None => None,
        };
        Report {
            nodes,
            failover: match &self.scripted {
                failover::Scripted::Crashed(probe) => Some(probe.failover()),
                _ => None,
            },
            stats: self.stats,
            history: self.history,
            failures: self.failures,
            linearizability_unknown,
            trace_hash: self.hasher.finish(),
            trace,
        }
    }

    // ---- the event queue ---------------------------------------------------------------

    fn schedule(&mut self, delay: u64, event: Event) {
        let index = match self.free.pop() {
            Some(index) => {
                self.events[index] = Some(event);
                index
            }
            None => {
                self.events.push(Some(event));
                self.events.len() - 1
            }
        };
        self.order += 1;
        self.queue
            .push(Reverse((self.now + delay, self.order, index)));
    }

    /// The next event: from the event queue or the network, whichever is due first (the
    /// queue first at equal times).
    fn pop(&mut self) -> Option<(u64, Event)> {
        let queued = self.queue.peek().map(|Reverse((time, _, _))| *time);
        let arriving = self.network.next_arrival();
        if let Some(at) = arriving.filter(|&at| queued.is_none_or(|q| at < q)) {
            let envelope = self.network.next_due(at)?;
            let from = self.node_of(envelope.from)?;
            let to = self.node_of(envelope.to)?;
            let (id, message) = (envelope.id, envelope.message);
            return Some((
                at,
                Event::Deliver {
                    id,
                    from,
                    to,
                    message,
                },
            ));
        }
        let Reverse((time, _, index)) = self.queue.pop()?;
        let event = self.events[index].take()?;
        self.free.push(index);
        Some((time, event))
    }

    fn random(&mut self, low: u64, high: u64) -> u64 {
        low + self.rng.next_u64() % (high - low + 1)
    }

    /// A uniform index below `n` (which is not zero).
    fn pick(&mut self, n: usize) -> usize {
        index(self.rng.next_u64() % n as u64)
    }

    fn pick_key(&mut self) -> Key {
        key_of(self.rng.next_u64() % u64::from(self.options.keys))
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && unit(&mut self.rng) < p
    }

    /// Hashes `event` into the run's trace hash and, when tracing, records it with its
    /// vector clock and its node's state; returns its index in the trace.
    fn record(&mut self, event: TraceEvent) -> Option<usize> {
        event.hash(&mut self.hasher);
        self.tracing.is_some().then(|| self.trace_event(&event))
    }

    fn note(&mut self, node: usize, what: &'static str) {
        let event = TraceEvent {
            time: self.now,
            node: self.nodes[node].id.0,
            what,
            id: None,
            message: None,
            ballot: None,
            slot: None,
            peer: None,
        };
        self.record(event);
    }

    // ---- events ------------------------------------------------------------------------

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { to, .. }
            | Event::Request { node: to, .. }
            | Event::KeeperRequest { node: to, .. }
            | Event::WatchCreate { node: to, .. }
                if self.nodes[to].paused =>
            {
                self.nodes[to].held.push(event);
            }
            Event::Synced { node, .. } | Event::PeerLost { node, .. }
                if self.nodes[node].paused =>
            {
                self.nodes[node].held.push(event);
            }
            Event::Deliver {
                id,
                from,
                to,
                message,
            } => self.deliver(id, from, to, message),
            Event::Tick(node) => self.tick(node),
            Event::Synced {
                node,
                incarnation,
                tag,
            } => self.synced(node, incarnation, tag),
            Event::Request {
                node,
                client,
                seq,
                ask,
            } => self.request(node, client, seq, ask),
            Event::Reply {
                client,
                seq,
                answer,
            } => self.reply(client, seq, answer),
            Event::ClientStart(client) => self.client_start(client),
            Event::ClientRetry { client, seq } => self.client_send(client, seq),
            Event::ClientTimeout { client, seq } => self.client_timeout(client, seq),
            Event::KeeperRetry(ask) => self.keeper_ask(ask),
            Event::KeeperRequest { node, seq, ask } => self.keeper_request(node, seq, ask),
            Event::KeeperReply { seq, outcome } => self.keeper_reply(seq, outcome),
            Event::KeeperTimeout(seq) => self.keeper_timeout(seq),
            Event::WatchOpen(watcher) => self.watch_open(watcher),
            Event::WatchCreate { node, watcher } => self.watch_create(node, watcher),
            Event::WatchPoll(watcher) => self.watch_poll(watcher),
            Event::FaultTick => self.fault_tick(),
            Event::PeerLost { node, peer } => {
                let peer = self.nodes[peer].id;
                self.with_member(node, |m, now| m.peer_unreachable(peer, now));
            }
            Event::Restart(node) => self.restart(node),
            Event::Join(node) => self.join(node),
            Event::Resume(node) => self.resume(node),
            Event::HealPartition(id) => {
                if id == self.partition {
                    self.cut.clear();
                    self.fault_ends("partition", index(id));
                }
            }
            Event::DiskRecovers(node) => {
                self.nodes[node].slow_disk = false;
                self.fault_ends("slow-disk", node);
            }
            Event::CrashLeader => self.arm_leader_crash(),
        }
    }

    fn deliver(&mut self, id: u64, from: usize, to: usize, message: Message<Payload>) {
        let slot = slot_of(&message);
        let event = TraceEvent {
            time: self.now,
            node: self.nodes[to].id.0,
            what: "deliver",
            id: Some(id),
            message: Some(message.kind()),
            ballot: Some(message.ballot()),
            slot,
            peer: Some(self.nodes[from].id.0),
        };
        let recorded = self.record(event);
        let from_id = self.nodes[from].id;
        self.with_member(to, |m, now| m.step(from_id, message, now));
        // The delivery's state is its node's once it has handled the message.
        if let Some(index) = recorded {
            let state = self.state_of(to, slot);
            self.tracing_mut(|t| t.recorder.set_state(index, state));
        }
    }

    fn tick(&mut self, node: usize) {
        if self.nodes[node].member.is_none() {
            return; // Crashed: the restart schedules ticks again.
        }
        let period = self.nodes[node].tick_us;
        self.schedule(period, Event::Tick(node));
        if self.nodes[node].paused {
            self.nodes[node].missed_ticks += 1;
            return;
        }
        self.with_member(node, |m, now| m.tick(now));
        self.catch_up_watchers(node);
        self.stop_if_removed(node);
    }
}

impl Node {
    fn new(id: NodeId, tick_us: u64, watchers: Watchers) -> Node {
        Node {
            id,
            member: None,
            incarnation: 0,
            disk: FaultyStorage::new(),
            sync_ends: 0,
            next_sync_ends: None,
            applies_ahead_before: 0,
            paused: false,
            held: Vec::new(),
            missed_ticks: 0,
            tick_us,
            slow_disk: false,
            was_leader: false,
            watchers,
            standing: Standing::Member,
            told: None,
        }
    }

    /// Where this node stands, in a line.
    fn describe(&self) -> String {
        let Some(member) = &self.member else {
            return format!("n{}: {:?}, not running", self.id.0, self.standing);
        };
        let r = member.replica();
        let m = r.membership();
        format!(
            "n{}: {:?} promised {} (epoch {}), membership epoch {} (first active {}, settled \
             {}), current {:?}, commit {}, applied {}, leader {:?}",
            self.id.0,
            r.role(),
            r.promised(),
            r.promised().epoch(),
            m.epoch(),
            m.first_epoch(),
            m.is_settled(),
            m.current().replicas(),
            r.commit(),
            r.applied(),
            r.leader()
        )
    }

    /// Everything in memory is gone, and so is every write not yet synced.
    fn crash(&mut self) {
        if let Some(member) = self.member.take() {
            self.applies_ahead_before += member.applies_ahead();
        }
        self.incarnation += 1;
        self.paused = false;
        self.held.clear();
        self.missed_ticks = 0;
        self.was_leader = false;
    }
}

/// `n` as an index; the simulator's counts are far below any pointer width.
fn index(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// `n` as a key; keys are below `Options::keys`, a `u8`.
fn key_of(n: u64) -> Key {
    Key::try_from(n).unwrap_or(Key::MAX)
}

/// `value · factor`, rounded (factors are near 1).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn scale(value: u64, factor: f64) -> u64 {
    (value as f64 * factor).round() as u64
}

fn unit(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn value_name(value: Value) -> String {
    format!("v{value}")
}

/// An applied entry, for a report: the etcd request it carries.
fn describe(entry: &Entry<Payload>) -> String {
    match entry {
        Entry::Noop => "no-op".into(),
        Entry::Configure { base, members } => format!("configure after epoch {base}: {members:?}"),
        Entry::Retire { epoch } => format!("retire the configurations before epoch {epoch}"),
        Entry::Command(payload) => match Command::decode(&payload.0[..]) {
            Ok(command) => format!("{:?}", command.op),
            Err(_) => format!("{} undecodable bytes", payload.0.len()),
        },
    }
}

/// The slot a message concerns, as the trace (the server's too) says it.
fn slot_of(message: &Message<Payload>) -> Option<Slot> {
    node::trace::describe(message).2
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("seed", &self.options.seed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
