//! The node's core: one task that owns the member ([`node::Node`]: the replica, the
//! store, the clients' requests) and is the only one to touch it. Everything else (peer
//! connections, gRPC handlers, the disk) talks to it through one queue of [`Input`]s. The
//! core is a shell: it feeds the node its inputs with the time, and carries out the
//! node's outputs (persists to the [`Persister`], messages to peers, answers to clients,
//! snapshots on a thread of their own). Every decision is the node's, and the simulator
//! runs the same node under its seeds.
//!
//! # The order of actions
//! The node runs the replica's actions through its [`paxos::multi::Sequencer`] (the one
//! implementation of their durability contract): persists come out as numbered
//! submissions that the [`Persister`] writes in order, and sends and answers come out
//! only once the writes before them are durable. So no message reports state that is not
//! on disk.
//!
//! # Layout
//! - this file: the core's loop, its inputs handled and the node's outputs carried out.
//! - `input.rs`: the core's queue and what comes through it.
//! - `membership.rs`: following the membership: dialing members, admitting them, the
//!   member list and changes.
//! - `trace.rs`: the member's trace (`--trace-file`), kept only when asked for: events
//!   as the simulator records them, with a vector clock each message carries.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use node::{Node, NodeOptions, Output, RequestIds};
use paxos::multi::{Replica, Slot};
use paxos::NodeId;
use rand_pcg::Pcg64;

use crate::persist::Persister;
use tokio::sync::watch;
use tonic::Status;

use crate::inflow::Inflow;
use crate::limits::PARKED_COMMANDS_MAX;
use crate::machine::{self, EtcdMachine};
pub use crate::machine::{Applied, View};
use crate::metrics::{Facts, Metrics};
use crate::payload::Payload;
use crate::proto::etcdserverpb as pb;
use crate::transport::{Peers, Roster};
use crate::watchers::Watchers;

mod input;
mod membership;
pub mod trace;

pub(crate) use input::persisted;
pub use input::{Input, InputQueue, Inputs, Proposal, Query, Reply};
pub use membership::{change_status, Directory, Listed, Transfer, REMOVED, REMOVED_MARK};
pub use trace::{TraceFile, Tracer};

/// Tunables of the core.
#[derive(Clone, Debug)]
pub struct CoreOptions {
    /// One engine tick.
    pub tick: Duration,
    /// Take a snapshot after this many applied slots.
    pub snapshot_entries: u64,
    /// Largest fragment of a watch response.
    pub fragment_bytes: usize,
    /// Every this long, watchers that asked get a progress notification.
    pub progress_interval: Duration,
    /// The etcd version this member reports (in `/metrics` among other places).
    pub etcd_version: String,
    /// Raise NOSPACE once the store's estimated size exceeds this.
    pub quota_bytes: u64,
    /// How long a request may wait for the cluster before it is answered with a
    /// time-out (or, if its command never reached a leader, "no leader").
    pub request_timeout: Duration,
}

/// The member the core runs: the etcd store behind Multi-Paxos, answering to replies.
type Member = Node<EtcdMachine, Reply<Applied>, Pcg64>;

/// The core's state.
pub struct Core {
    node: Member,
    /// When the core started: the node's clock counts from here.
    started: Instant,
    persister: Persister,
    snapshot_dir: PathBuf,
    peers: Peers,
    options: CoreOptions,
    watchers: Watchers,
    view: watch::Sender<Arc<View>>,
    inputs: Inputs,
    /// Why the member must stop, once something fatal happened.
    fatal: Option<String>,
    last_progress: Instant,
    /// The room in the core's queue, given back as inputs are taken.
    inflow: Inflow,
    me: NodeId,
    cluster_id: u64,
    /// What the core knows of members besides their ids.
    directory: Directory,
    /// The members whose connections the peer port admits.
    roster: Roster,
    learner: Arc<std::sync::atomic::AtomicBool>,
    followed: membership::Followed,
    metrics: Arc<Metrics>,
    /// The leader last seen, to count changes.
    leader_seen: Option<NodeId>,
    /// The last heartbeat sent to each peer, and when: its acknowledgement times the
    /// round trip.
    heartbeats: std::collections::HashMap<NodeId, (u64, Instant)>,
    /// This member's trace, when it keeps one (`--trace-file`).
    tracer: Option<Box<Tracer>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("node", &self.node).finish()
    }
}

/// What a node starts its core with.
#[derive(Debug)]
pub struct Parts {
    /// This member.
    pub me: NodeId,
    /// The cluster.
    pub cluster_id: u64,
    /// The engine, restarted from storage.
    pub replica: Replica<Payload, Pcg64>,
    /// The state machine, restored from the latest snapshot.
    pub store: kv::Store,
    /// The slot the store's snapshot covers.
    pub snapshot_index: Slot,
    /// The way to the disk.
    pub persister: Persister,
    /// Where the storage keeps snapshot files: the core writes its own there.
    pub snapshot_dir: PathBuf,
    /// Outgoing peer queues.
    pub peers: Peers,
    /// Tunables.
    pub options: CoreOptions,
    /// The room in the core's queue, given back as inputs are taken.
    pub inflow: Inflow,
    /// What this member publishes about itself (its name and client URLs).
    pub attributes: kv::MemberAttributes,
    /// The bootstrap list of members (names and peer URLs).
    pub directory: Directory,
    /// The members whose connections the peer port admits: the core keeps it current.
    pub roster: Roster,
    /// Whether this member is a learner: the core keeps it current.
    pub learner: Arc<std::sync::atomic::AtomicBool>,
    /// Where the core counts what it sees.
    pub metrics: Arc<Metrics>,
    /// The simple tokens that applied `Authenticate` commands assign.
    pub tokens: Arc<crate::auth::Tokens>,
    /// The member's trace, if it keeps one.
    pub tracer: Option<Tracer>,
}

impl Core {
    /// The ids of clients' requests, for the tasks that build [`Proposal`]s.
    pub fn request_ids(&self) -> RequestIds {
        self.node.request_ids()
    }

    /// Builds the core; `inputs` must be the sending side of the queue it will run on.
    pub fn new(parts: Parts, inputs: Inputs) -> (Core, watch::Receiver<Arc<View>>) {
        let options = parts.options;
        let machine = EtcdMachine::new(
            parts.cluster_id,
            parts.store,
            options.quota_bytes,
            Some(parts.attributes),
        )
        .with_tokens(parts.tokens);
        let node_options = NodeOptions {
            request_timeout: options.request_timeout,
            parked_max: PARKED_COMMANDS_MAX,
            snapshot_entries: options.snapshot_entries,
        };
        // Random, so that an entry this member proposed before a restart, applied again
        // during recovery, cannot answer a new request with the same number.
        let first_id = rand_core::TryRngCore::try_next_u64(&mut rand_core::OsRng).unwrap_or(1) >> 1;
        let node = Node::new(
            parts.replica,
            machine,
            parts.snapshot_index,
            first_id,
            node_options,
        );
        let view = node::StateMachine::view(node.machine(), &node.context());
        let (view, views) = watch::channel(view);
        let tracer = parts.tracer.map(|mut tracer| {
            tracer.start(&node);
            Box::new(tracer)
        });
        let core = Core {
            node,
            started: Instant::now(),
            persister: parts.persister,
            snapshot_dir: parts.snapshot_dir,
            peers: parts.peers,
            watchers: Watchers::new(options.fragment_bytes),
            options,
            view,
            inputs,
            fatal: None,
            last_progress: Instant::now(),
            inflow: parts.inflow,
            me: parts.me,
            cluster_id: parts.cluster_id,
            directory: parts.directory,
            roster: parts.roster,
            learner: parts.learner,
            followed: membership::Followed::default(),
            metrics: parts.metrics,
            leader_seen: None,
            heartbeats: std::collections::HashMap::new(),
            tracer,
        };
        (core, views)
    }

    /// Runs until [`Input::Shutdown`] or a fatal error: a storage failure (after a failed
    /// write nothing that depends on it may be acknowledged) or a snapshot that does not
    /// restore. The error says why the member stopped.
    ///
    /// The core is a task on the runtime that serves clients and peers, not a thread of
    /// its own: a request that wakes it, and the answers it sends back, stay on the
    /// worker that is already running (no futex wake-up between threads per request).
    pub async fn run(mut self, inputs: InputQueue) -> Result<(), String> {
        let result = self.serve(inputs).await;
        if let Some(tracer) = self.tracer.as_deref_mut() {
            tracer.stop();
        }
        result
    }

    async fn serve(&mut self, mut inputs: InputQueue) -> Result<(), String> {
        self.follow_membership();
        let mut next_tick = Instant::now() + self.options.tick;
        loop {
            let first = tokio::select! {
                biased;
                done = self.persister.completion() => Some(Input::Persisted(done)),
                input = inputs.recv() => match input {
                    Some(Input::Shutdown) | None => return Ok(()),
                    input => input,
                },
                () = tokio::time::sleep_until(next_tick.into()) => None,
            };
            if let Some(input) = first {
                self.handle(input);
                // Take whatever else arrived meanwhile before publishing: one view,
                // one watch dispatch and one persist batch per burst.
                for _ in 0..4096 {
                    match inputs.try_recv() {
                        Ok(Input::Shutdown) => return Ok(()),
                        Ok(input) => self.handle(input),
                        Err(_) => break,
                    }
                }
            }
            // The burst's writes go out first: the disk is the slowest step of a write.
            self.flush_writes();
            // Events of the burst go out before a tick's progress notifications.
            self.settle();
            if Instant::now() >= next_tick {
                next_tick += self.options.tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.options.tick;
                }
                self.on_tick();
                self.settle();
            }
            self.flush_writes();
            if let Some(tracer) = self.tracer.as_deref_mut() {
                tracer.flush();
            }
            if let Some(reason) = self.fatal.take() {
                return Err(reason);
            }
        }
    }

    /// Sends the writes submitted since the last write went out, unless the member is
    /// stopping (after a failed write nothing may follow it to the disk).
    fn flush_writes(&mut self) {
        if self.fatal.is_some() {
            return;
        }
        if let Err(reason) = self.persister.flush() {
            self.fail(reason);
        }
    }

    fn handle(&mut self, input: Input) {
        let now = self.now();
        match input {
            Input::Peer(from, message, bytes, stamp) => {
                self.inflow.peer_taken(bytes);
                if let paxos::multi::Message::HeartbeatAck { seq, .. } = &message {
                    self.heartbeat_acked(from, *seq);
                }
                let described = self
                    .tracer
                    .is_some()
                    .then(|| node::trace::describe(&message));
                self.node.step(from, message, now);
                if let (Some(tracer), Some(described)) = (self.tracer.as_deref_mut(), described) {
                    tracer.delivered(from, described, stamp, &self.node);
                }
            }
            Input::PeerLost(peer) => self.node.peer_unreachable(peer, now),
            Input::Propose(Proposal { id, command }, reply) => {
                self.inflow.client_taken();
                self.node.propose_command(id, command, reply, now);
            }
            Input::Read(reply) => {
                self.inflow.client_taken();
                self.node.read(reply, now);
            }
            Input::Watch(request) => {
                if request.is_create() {
                    self.inflow.client_taken();
                }
                let header = self.header();
                let store = self.node.machine_mut().store_mut();
                self.watchers.request(request, store, header);
            }
            Input::Query(query) => {
                self.inflow.client_taken();
                query(self);
            }
            Input::Persisted((_, Err(e))) => self.fail(format!("storage failed: {e}")),
            Input::Persisted((tag, Ok(()))) => {
                self.persister.finished(tag);
                self.node.durable(tag, now);
            }
            Input::SnapshotReady(index, written) => {
                let written = written
                    .inspect_err(|e| tracing::warn!(slot = index, "cannot write a snapshot: {e}"))
                    .ok();
                self.node.snapshot_taken(index, written, now);
            }
            Input::Shutdown => {}
        }
        self.carry_out();
    }

    /// Carries out what the node asked for, in order.
    fn carry_out(&mut self) {
        let outputs = self.node.take_outputs();
        if let Some(tracer) = self.tracer.as_deref_mut() {
            tracer.observe(&self.node, &outputs);
        }
        for output in outputs {
            match output {
                // With a ring the writes go out at the end of the burst (`flush_writes`).
                Output::Persist { tag, writes } => {
                    if !self.persister.submit(tag, writes) {
                        self.fail("the storage committer stopped".into());
                    }
                }
                Output::Send { to, message } => {
                    match &message {
                        paxos::multi::Message::Heartbeat { seq, .. } => {
                            self.heartbeats.insert(to, (*seq, Instant::now()));
                        }
                        paxos::multi::Message::Accept { entries, .. } => {
                            #[allow(clippy::cast_precision_loss)]
                            self.metrics.accept_batches.observe(entries.len() as f64);
                        }
                        _ => {}
                    }
                    self.send(to, message);
                }
                Output::SendSnapshot(action) => {
                    let stamp = self.tracer.as_deref_mut().and_then(Tracer::next_stamp);
                    if let Some((to, chunks)) = action.snapshot_chunks() {
                        self.peers.stream(to, chunks, stamp.map(|(_, stamp)| stamp));
                    }
                }
                Output::Answer { waiter, output } => {
                    let _ = waiter.send(output);
                }
                Output::ReadReady { waiter, view } => {
                    let _ = waiter.send(Ok(Applied::Read(view)));
                }
                Output::Refuse { waiter, failure } => {
                    self.metrics.proposals_failed.inc();
                    let _ = waiter.send(Err(Status::unavailable(failure.message())));
                }
                Output::Installed { slot } => {
                    self.watchers.resync_all();
                    tracing::info!(slot, "installed a snapshot from a peer");
                }
                Output::TakeSnapshot { slot } => self.take_snapshot(slot),
            }
        }
        if let Some(reason) = self.node.take_fatal() {
            self.fail(reason);
        }
    }

    /// Queues `message` for `to`, stamped when the member traces (a message that cannot
    /// be queued is then recorded as dropped).
    fn send(&mut self, to: NodeId, message: paxos::multi::Message<Payload>) {
        let Some((id, stamp)) = self.tracer.as_deref_mut().and_then(Tracer::next_stamp) else {
            self.peers.send(to, message, None);
            return;
        };
        let described = node::trace::describe(&message);
        if !self.peers.send(to, message, Some(stamp)) {
            if let Some(tracer) = self.tracer.as_deref_mut() {
                tracer.dropped(to, id, described, &self.node);
            }
        }
    }

    /// Times the round trip of the heartbeat `peer` acknowledged, if it is the last one
    /// sent there (an older one's time is gone).
    fn heartbeat_acked(&mut self, peer: NodeId, seq: u64) {
        if let Some(&(sent, at)) = self.heartbeats.get(&peer) {
            if sent == seq {
                self.heartbeats.remove(&peer);
                self.metrics
                    .peer_round_trip(peer.0, at.elapsed().as_secs_f64());
            }
        }
    }

    /// Stops the member after the current burst, with `reason`.
    fn fail(&mut self, reason: String) {
        if self.fatal.is_some() {
            return;
        }
        tracing::error!("{reason}; this member stops");
        self.fatal = Some(reason);
    }

    /// Time as the node counts it: since the core started.
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn on_tick(&mut self) {
        // Commands whose clients gave up are dropped rather than proposed late.
        self.node.forget(|reply| reply.is_closed());
        self.node.tick(self.now());
        self.carry_out();
        let header = self.header();
        self.watchers.catch_up(self.node.machine().store(), header);
        if self.last_progress.elapsed() >= self.options.progress_interval {
            self.last_progress = Instant::now();
            self.watchers.notify_progress(header);
        }
    }

    /// Serializing a large store takes a while: a clone of it (O(1): its key map is
    /// persistent) is written on a thread of its own while applies go on.
    fn take_snapshot(&mut self, slot: Slot) {
        let store = self.node.machine().store().clone();
        let inputs = self.inputs.clone();
        let dir = self.snapshot_dir.clone();
        let durations = self.metrics.snapshot_writes.clone();
        let spawned = std::thread::Builder::new()
            .name("synod-snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                let written = storage::write_snapshot(&dir, slot, |out| store.write_snapshot(out));
                let written = written.map_err(|e| e.to_string());
                if let Ok(data) = &written {
                    durations.observe(started.elapsed().as_secs_f64());
                    let millis = started.elapsed().as_millis();
                    tracing::info!(slot, bytes = data.len(), millis, "wrote a snapshot");
                }
                let _ = inputs.send(Input::SnapshotReady(slot, written));
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a snapshot thread: {e}; retrying later");
            let now = self.now();
            self.node.snapshot_taken(slot, None, now);
        }
    }

    /// After a burst of inputs: feed watchers, publish the view.
    fn settle(&mut self) {
        let header = self.header();
        let store = self.node.machine_mut().store_mut();
        self.watchers.settle(store, header);
        if self.node.take_changed() {
            self.publish();
        }
        self.follow_membership();
        let leader = self.node.replica().leader();
        if leader != self.leader_seen {
            if leader.is_some() {
                self.metrics.leader_changes.inc();
            }
            self.leader_seen = leader;
        }
    }

    /// Serializable reads and new watchers read the latest view.
    fn publish(&mut self) {
        let view = node::StateMachine::view(self.node.machine(), &self.node.context());
        self.view.send_replace(view);
    }

    /// The header of an answer given now.
    pub fn header(&self) -> pb::ResponseHeader {
        self.node.machine().header(&self.node.context())
    }

    /// The store.
    pub fn store(&self) -> &kv::Store {
        self.node.machine().store()
    }

    /// The engine.
    pub fn replica(&self) -> &Replica<Payload, Pcg64> {
        self.node.replica()
    }

    /// What a scrape of `/metrics` reports about the core.
    pub fn facts(&mut self) -> Facts {
        let pending = self.node.requests_mut().len();
        let replica = self.node.replica();
        let membership = replica.membership().current();
        let store = self.node.machine().store();
        let (in_flight, _) = replica.in_flight();
        Facts {
            member_id: self.me.0,
            has_leader: replica.leader().is_some(),
            is_leader: replica.role() == paxos::multi::RoleKind::Leader,
            is_learner: !membership.is_voter(self.me),
            committed: replica.commit(),
            applied: replica.applied(),
            pending,
            db_bytes: store.size_bytes(),
            keys: store.key_count(),
            revision: store.revision(),
            compacted: store.compacted(),
            quota_bytes: self.options.quota_bytes,
            round: replica.promised().round,
            epoch: replica.membership().epoch(),
            quorum: membership.spec().to_string(),
            voters: membership.replicas().len(),
            learners: membership.learners().len(),
            accepts_in_flight: in_flight as u64,
            etcd_version: self.options.etcd_version.clone(),
        }
    }

    /// The etcd version this member reports.
    pub fn etcd_version(&self) -> &str {
        &self.options.etcd_version
    }

    /// The active alarms.
    pub fn alarms(&self) -> Vec<pb::AlarmMember> {
        machine::alarms(self.store())
    }

    /// Remaining whole seconds of a lease by this member's clock, rounded down as etcd
    /// rounds them (a fresh 30 s lease has 29 left); -1 if it does not exist.
    pub fn lease_remaining(&self, id: i64) -> i64 {
        self.node.machine().lease_remaining(id, self.now())
    }
}
