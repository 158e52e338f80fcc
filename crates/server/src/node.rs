//! The node's core: one task that owns the replica and the store and is the only one
//! to touch them. Everything else (peer connections, gRPC handlers, the disk) talks
//! to it through one queue of [`Input`]s, so the core is as sequential as the simulator
//! that checked the engine.
//!
//! # The order of actions
//! The replica's actions go through a [`Sequencer`], the one implementation of their
//! durability contract (`paxos::multi::sequencer`), which the simulator and the engine's
//! test cluster run too: persists go to the [`Persister`] as numbered submissions (it
//! keeps their order, and a later write durable implies every earlier one), and sends and
//! read answers wait behind the last submission before them until storage reports it
//! durable. So no message reports state that is not on disk. Applies wait only for the
//! applies and snapshot installs before them, and a commit hint alone holds nothing up.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use node::requests::{Failure, Kind, Requests};
use paxos::multi::{
    Action, Entry, Message, ProposeError, Replica, RoleKind, Sequencer, Slot, SnapshotData, Step,
};
use paxos::NodeId;
use prost::Message as _;
use rand_pcg::Pcg64;
use storage::Completion;

use crate::persist::Persister;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{oneshot, watch};
use tonic::Status;

use crate::convert;
use crate::inflow::Inflow;
use crate::limits::PARKED_COMMANDS_MAX;
use crate::payload::Payload;
use crate::proto::etcdserverpb as pb;
use crate::proto::synodpb::{command::Op, Barrier, Command, LeaseExpire, Publish};
use crate::transport::Peers;
use crate::watchers::{self, Watchers};

/// What the core answers for an applied command.
#[derive(Debug)]
pub enum Applied {
    /// A put.
    Put(pb::PutResponse),
    /// A delete.
    Delete(pb::DeleteRangeResponse),
    /// A transaction.
    Txn(pb::TxnResponse),
    /// A compaction.
    Compact(pb::CompactionResponse),
    /// A lease grant.
    LeaseGrant(pb::LeaseGrantResponse),
    /// A lease revoke.
    LeaseRevoke(pb::LeaseRevokeResponse),
    /// A keep-alive.
    KeepAlive(pb::LeaseKeepAliveResponse),
    /// An alarm change.
    Alarm(pb::AlarmResponse),
    /// A member's attributes recorded.
    Published,
    /// A linearizable read may now be served from this view.
    Read(Arc<View>),
}

/// The way into the core's queue.
pub type Inputs = UnboundedSender<Input>;

/// The core's end of its queue.
pub type InputQueue = UnboundedReceiver<Input>;

/// Where the answer to a command or read goes.
pub type Reply<T> = oneshot::Sender<Result<T, Status>>;

/// What the store looked like after some apply: readers evaluate ranges on it without
/// holding up the core (cloning the store is O(1): its key map is persistent).
#[derive(Debug)]
pub struct View {
    /// The store.
    pub store: kv::Store,
    /// The header fields of answers read from this view.
    pub header: pb::ResponseHeader,
}

/// A closure run on the core with access to its state (status, lease TTLs, hashes).
pub type Query = Box<dyn FnOnce(&mut Core) + Send>;

/// What reaches the core.
pub enum Input {
    /// A message from a peer, and the bytes of its frame (room in the queue, given back
    /// once the core takes it).
    Peer(NodeId, Message<Payload>, usize),
    /// A peer's connection to this member closed.
    PeerLost(NodeId),
    /// A client's write (an encoded [`Command`] without origin and id yet).
    Propose(Op, Reply<Applied>),
    /// A client's linearizable read: answered with a view once it may be served.
    Read(Reply<Applied>),
    /// A watch stream's request.
    Watch(watchers::Request),
    /// Run a closure on the core.
    Query(Query),
    /// The committer finished a persist.
    Persisted(Completion),
    /// A background snapshot is in its file (or could not be written).
    SnapshotReady(Slot, Result<SnapshotData, String>),
    /// Stop.
    Shutdown,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Peer(from, m, _) => write!(f, "Peer({from}, {})", m.kind()),
            Input::PeerLost(from) => write!(f, "PeerLost({from})"),
            Input::Propose(op, _) => write!(f, "Propose({op:?})"),
            Input::Read(_) => write!(f, "Read"),
            Input::Watch(r) => write!(f, "Watch({r:?})"),
            Input::Query(_) => write!(f, "Query"),
            Input::Persisted((tag, r)) => write!(f, "Persisted({tag}, {})", r.is_ok()),
            Input::SnapshotReady(slot, _) => write!(f, "SnapshotReady({slot})"),
            Input::Shutdown => write!(f, "Shutdown"),
        }
    }
}

/// The committer's answer, put straight into the core's queue from the committer's thread.
pub(crate) fn persisted(inputs: Inputs) -> impl FnOnce(Completion) + Send {
    move |completion| {
        let _ = inputs.send(Input::Persisted(completion));
    }
}

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
    /// Raise NOSPACE once the store's estimated size exceeds this.
    pub quota_bytes: u64,
    /// How long a request may wait for the cluster before it is answered with a
    /// time-out (or, if its command never reached a leader, "no leader").
    pub request_timeout: Duration,
}

/// A lease the leader is timing.
#[derive(Clone, Copy, Debug)]
struct LeaseClock {
    refreshed: Instant,
    /// When the leader last proposed its expiry (proposed again after a second).
    expiring: Option<Instant>,
}

/// The core's state.
pub struct Core {
    me: NodeId,
    cluster_id: u64,
    replica: Replica<Payload, Pcg64>,
    store: kv::Store,
    persister: Persister,
    snapshot_dir: PathBuf,
    peers: Peers,
    options: CoreOptions,
    /// Messages this replica sent itself.
    local: VecDeque<Message<Payload>>,
    /// The durability contract: what of the replica's actions may run when.
    sequencer: Sequencer<Payload>,
    next_id: u64,
    /// The clients' requests, and the commands waiting for a leader (retried every tick).
    requests: Requests<Reply<Applied>, Payload>,
    /// Time as the request table counts it: since the core started.
    started: Instant,
    watchers: Watchers,
    leases: HashMap<i64, LeaseClock>,
    was_leader: bool,
    view: watch::Sender<Arc<View>>,
    view_stale: bool,
    snapshotting: bool,
    last_snapshot: Slot,
    /// The last slot the store has applied (the replica's own count runs ahead while
    /// applies wait for a snapshot install that waits for a persist).
    store_applied: Slot,
    inputs: Inputs,
    /// Reads the replica could not serve, redone by barrier after the burst.
    failed_reads: Vec<u64>,
    /// Why the member must stop, once something fatal happened.
    fatal: Option<String>,
    /// When this leader last proposed raising NOSPACE.
    quota_proposed: Option<Instant>,
    last_progress: Instant,
    /// The room in the core's queue, given back as inputs are taken.
    inflow: Inflow,
    /// What this member publishes about itself, and when it last proposed it.
    attributes: kv::MemberAttributes,
    publish_proposed: Option<Instant>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("me", &self.me).finish()
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
}

impl Core {
    /// Builds the core; `inputs` must be the sending side of the queue it will run on.
    pub fn new(parts: Parts, inputs: Inputs) -> (Core, watch::Receiver<Arc<View>>) {
        let store = parts.store;
        let header = pb::ResponseHeader {
            cluster_id: parts.cluster_id,
            member_id: parts.me.0,
            revision: store.revision(),
            raft_term: parts.replica.promised().round,
        };
        let (view, views) = watch::channel(Arc::new(View {
            store: store.clone(),
            header,
        }));
        let watchers = Watchers::new(parts.options.fragment_bytes);
        let request_timeout = parts.options.request_timeout;
        let core = Core {
            me: parts.me,
            cluster_id: parts.cluster_id,
            replica: parts.replica,
            store,
            persister: parts.persister,
            snapshot_dir: parts.snapshot_dir,
            peers: parts.peers,
            options: parts.options,
            local: VecDeque::new(),
            sequencer: Sequencer::new(),
            // Random, so that an entry this member proposed before a restart, applied
            // again during recovery, cannot answer a new request with the same number.
            next_id: rand_core::TryRngCore::try_next_u64(&mut rand_core::OsRng).unwrap_or(1) >> 1,
            requests: Requests::new(request_timeout, PARKED_COMMANDS_MAX),
            started: Instant::now(),
            watchers,
            leases: HashMap::new(),
            was_leader: false,
            view,
            view_stale: false,
            snapshotting: false,
            last_snapshot: parts.snapshot_index,
            store_applied: parts.snapshot_index,
            inputs,
            quota_proposed: None,
            failed_reads: Vec::new(),
            fatal: None,
            last_progress: Instant::now(),
            inflow: parts.inflow,
            attributes: parts.attributes,
            publish_proposed: None,
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
    pub async fn run(mut self, mut inputs: InputQueue) -> Result<(), String> {
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
        match input {
            Input::Peer(from, message, bytes) => {
                self.inflow.peer_taken(bytes);
                let actions = self.replica.step(from, message);
                self.run_actions(actions);
            }
            Input::PeerLost(peer) => {
                let actions = self.replica.peer_unreachable(peer);
                self.run_actions(actions);
            }
            Input::Propose(op, reply) => {
                self.inflow.client_taken();
                let id = self.next_id();
                self.requests.insert(id, Kind::Write, reply, self.now());
                let payload = self.encode(id, op);
                self.propose(id, payload);
            }
            Input::Read(reply) => {
                self.inflow.client_taken();
                self.read(reply);
            }
            Input::Watch(request) => {
                // Events already applied go first: a progress answer promises them.
                self.dispatch_events();
                let header = self.header();
                self.watchers.handle(request, &self.store, header);
                self.journal_for_watchers();
            }
            Input::Query(query) => query(self),
            Input::Persisted((_, Err(e))) => self.fail(format!("storage failed: {e}")),
            Input::Persisted((tag, Ok(()))) => {
                self.persister.finished(tag);
                for action in self.sequencer.durable(tag) {
                    self.execute(action);
                }
                self.drain_local();
            }
            Input::SnapshotReady(index, written) => {
                self.snapshotting = false;
                // After a failure too: the next attempt waits for as many applies again.
                self.last_snapshot = index;
                match written {
                    Ok(data) => {
                        let actions = self.replica.snapshot_taken(index, data);
                        self.run_actions(actions);
                    }
                    Err(e) => tracing::warn!(slot = index, "cannot write a snapshot: {e}"),
                }
            }
            Input::Shutdown => {}
        }
    }

    /// Stops the member after the current burst, with `reason`.
    fn fail(&mut self, reason: String) {
        tracing::error!("{reason}; this member stops");
        self.fatal.get_or_insert(reason);
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn encode(&self, id: u64, op: Op) -> Payload {
        self.encode_as(self.me.0, id, op)
    }

    /// Proposes a command of the node's own (lease expiry, an alarm): nobody waits on it.
    fn propose_own(&mut self, op: Op) {
        let payload = self.encode_as(0, 0, op);
        self.propose(0, payload);
    }

    fn encode_as(&self, origin: u64, id: u64, op: Op) -> Payload {
        let command = Command {
            origin,
            id,
            op: Some(op),
        };
        Payload(command.encode_to_vec().into())
    }

    /// Proposes request `id`'s command (id 0: the node's own, nobody waits). Without a
    /// leader it waits for one, up to [`PARKED_COMMANDS_MAX`] commands.
    fn propose(&mut self, id: u64, payload: Payload) {
        match self.replica.propose(payload.clone()) {
            Ok(actions) => self.run_actions(actions),
            Err(ProposeError::NoLeader) => {
                if let Some(refused) = self.requests.park(id, payload) {
                    refuse(refused);
                }
            }
        }
    }

    /// Time as the request table counts it.
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn read(&mut self, reply: Reply<Applied>) {
        let id = self.next_id();
        self.requests.insert(id, Kind::Read, reply, self.now());
        // The leader confirms its ballot; a follower asks the leader for its read index.
        let actions = self.replica.read(id);
        self.run_actions(actions);
    }

    /// A read the replica could not serve (no leader known, or the leader was lost while
    /// it waited) goes through the log instead: it is served once this member applied a
    /// barrier the leader slotted after the read arrived, so every write completed before
    /// then is below it. The barrier waits in the no-leader queue until a leader exists.
    fn read_by_barrier(&mut self, id: u64) {
        let barrier = self.encode(id, Op::Barrier(Barrier {}));
        self.propose(id, barrier);
    }

    fn on_tick(&mut self) {
        let actions = self.replica.tick();
        self.run_actions(actions);
        if let Some(step) = self.sequencer.flush_commit_hint() {
            self.take_step(step);
        }
        // Commands whose clients gave up are dropped rather than proposed late.
        self.requests.forget(|reply| reply.is_closed());
        for (id, payload) in self.requests.unpark() {
            self.propose(id, payload);
        }
        for expired in self.requests.expire(self.now()) {
            refuse(expired);
        }
        self.expire_leases();
        self.check_quota();
        self.publish_attributes();
        let header = self.header();
        self.watchers.catch_up(&self.store, header);
        if self.last_progress.elapsed() >= self.options.progress_interval {
            self.last_progress = Instant::now();
            self.watchers.notify_progress(header);
        }
        self.maybe_snapshot();
    }

    /// Runs actions (see [`Core::schedule`]), then whatever the replica sent itself.
    fn run_actions(&mut self, actions: Vec<Action<Payload>>) {
        self.schedule(actions);
        self.drain_local();
    }

    /// Hands persists to storage and carries out the other actions, or holds them
    /// (the [`Sequencer`] decides).
    fn schedule(&mut self, actions: Vec<Action<Payload>>) {
        for step in self.sequencer.schedule(actions) {
            self.take_step(step);
        }
    }

    fn take_step(&mut self, step: Step<Payload>) {
        match step {
            // With a ring the writes go out at the end of the burst (`flush_writes`).
            Step::Persist { tag, writes } => {
                if !self.persister.submit(tag, writes) {
                    self.fail("the storage committer stopped".into());
                }
            }
            Step::Run(action) => self.execute(action),
        }
    }

    fn drain_local(&mut self) {
        while let Some(message) = self.local.pop_front() {
            let actions = self.replica.step(self.me, message);
            self.schedule(actions);
        }
    }

    fn execute(&mut self, action: Action<Payload>) {
        match action {
            // The sequencer hands writes over as steps, never to run.
            Action::Persist(_) | Action::CommitHint(_) => {}
            Action::Send { to, message } if to == self.me => self.local.push_back(message),
            Action::Send { to, message } => self.peers.send(to, message),
            Action::SendSnapshot { .. } => {
                if let Some((to, chunks)) = action.snapshot_chunks() {
                    self.peers.stream(to, chunks);
                }
            }
            Action::Apply { slot, entry } => self.apply(slot, entry),
            Action::InstallSnapshot { index, data } => match self.restore(&data) {
                Ok(mut store) => {
                    // Events the old store journaled but did not dispatch, and those the
                    // snapshot skips, reach watchers from the new store's history.
                    let _ = self.store.take_events();
                    if !self.watchers.is_empty() {
                        store.open_journal();
                    }
                    self.store = store;
                    self.last_snapshot = index;
                    self.store_applied = index;
                    self.view_stale = true;
                    self.restart_lease_clocks();
                    self.watchers.resync_all();
                    tracing::info!(slot = index, "installed a snapshot from a peer");
                }
                // The replica now counts the snapshot's slots as applied: going on with
                // the old store would diverge from every other member.
                Err(e) => self.fail(format!(
                    "the snapshot for slot {index} does not restore: {e}"
                )),
            },
            Action::ReadReady { id } => {
                if let Some(reply) = self.requests.answer(id) {
                    let _ = reply.send(Ok(Applied::Read(self.publish())));
                }
            }
            // Not here, mid-batch: proposing now would run new actions ahead of older ones.
            Action::ReadFailed { id, .. } => self.failed_reads.push(id),
        }
    }

    /// The store a snapshot from a peer describes.
    /// Rebuilds a store from a peer's snapshot: seconds for a large one. The core is a
    /// task, so on a multi-threaded runtime the worker hands its other tasks (clients,
    /// peer connections) to another thread for the time being.
    fn restore(&self, data: &SnapshotData) -> Result<kv::Store, kv::SnapshotError> {
        let read = || kv::Store::read_snapshot(&mut data.reader());
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(read),
            _ => read(),
        }
    }

    fn apply(&mut self, slot: Slot, entry: Entry<Payload>) {
        self.store_applied = slot;
        let Entry::Command(payload) = entry else {
            return;
        };
        let Ok(command) = Command::decode(&payload.0[..]) else {
            tracing::error!("a chosen command does not decode; skipped on every member alike");
            return;
        };
        let Some(op) = command.op else {
            return;
        };
        self.view_stale = true;
        let result = self.apply_op(op);
        if command.origin == self.me.0 {
            if let Some(reply) = self.requests.answer(command.id) {
                let _ = reply.send(result);
            }
        }
    }

    fn apply_op(&mut self, op: Op) -> Result<Applied, Status> {
        let header = self.header();
        let now = Instant::now();
        let fresh = LeaseClock {
            refreshed: now,
            expiring: None,
        };
        Ok(match op {
            Op::Put(r) => {
                self.check_space()?;
                let response = self.store.put(&convert::put(&r)).map_err(convert::status)?;
                Applied::Put(convert::put_response(response, header))
            }
            Op::DeleteRange(r) => {
                let response = self.store.delete_range(&convert::delete(&r));
                Applied::Delete(convert::delete_response(
                    response.map_err(convert::status)?,
                    header,
                ))
            }
            Op::Txn(r) => {
                if !convert::txn_is_read_only(&r) {
                    self.check_space()?;
                }
                let txn = convert::txn(&r)?;
                let response = self.store.txn(&txn).map_err(convert::status)?;
                Applied::Txn(convert::txn_response(response, header))
            }
            Op::Compact(r) => {
                let compaction = kv::Compaction {
                    revision: r.revision,
                };
                self.store.compact(compaction).map_err(convert::status)?;
                Applied::Compact(pb::CompactionResponse {
                    header: Some(header),
                })
            }
            Op::LeaseGrant(r) => {
                self.check_space()?;
                let grant = kv::LeaseGrant {
                    ttl: r.ttl,
                    id: r.id,
                };
                let response = self.store.lease_grant(grant).map_err(convert::status)?;
                self.leases.insert(response.id, fresh);
                Applied::LeaseGrant(pb::LeaseGrantResponse {
                    header: Some(pb::ResponseHeader {
                        revision: response.revision,
                        ..header
                    }),
                    id: response.id,
                    ttl: response.ttl,
                    error: String::new(),
                })
            }
            Op::LeaseRevoke(r) => {
                let revision = self.store.lease_revoke(r.id).map_err(convert::status)?;
                self.leases.remove(&r.id);
                Applied::LeaseRevoke(pb::LeaseRevokeResponse {
                    header: Some(pb::ResponseHeader { revision, ..header }),
                })
            }
            Op::LeaseExpire(r) => {
                let revoked = self.store.lease_expire(r.id, r.refreshes);
                if let Ok(Some(_)) = revoked {
                    self.leases.remove(&r.id);
                }
                let revision = self.store.revision();
                Applied::LeaseRevoke(pb::LeaseRevokeResponse {
                    header: Some(pb::ResponseHeader { revision, ..header }),
                })
            }
            Op::LeaseKeepAlive(r) => {
                // etcd answers a keep-alive of an unknown lease with TTL 0, not an error.
                let ttl = match self.store.lease_keep_alive(r.id) {
                    Ok(ttl) => {
                        self.leases.insert(r.id, fresh);
                        ttl
                    }
                    Err(_) => 0,
                };
                Applied::KeepAlive(pb::LeaseKeepAliveResponse {
                    header: Some(header),
                    id: r.id,
                    ttl,
                })
            }
            Op::Alarm(r) => Applied::Alarm(self.apply_alarm(&r, header)),
            Op::Publish(r) => {
                let attributes = kv::MemberAttributes {
                    name: r.name,
                    client_urls: r.client_urls,
                };
                self.store.publish(r.member_id, attributes);
                Applied::Published
            }
            Op::Barrier(_) => Applied::Read(self.publish()),
        })
    }

    fn check_space(&self) -> Result<(), Status> {
        let nospace = pb::AlarmType::Nospace as i32;
        if self.store.alarms().iter().any(|&(_, a)| a == nospace) {
            return Err(Status::resource_exhausted(
                "etcdserver: mvcc: database space exceeded",
            ));
        }
        Ok(())
    }

    fn apply_alarm(
        &mut self,
        r: &pb::AlarmRequest,
        header: pb::ResponseHeader,
    ) -> pb::AlarmResponse {
        let changed = match pb::alarm_request::AlarmAction::try_from(r.action) {
            Ok(pb::alarm_request::AlarmAction::Activate) => {
                if self.store.alarm_activate(r.member_id, r.alarm) {
                    vec![(r.member_id, r.alarm)]
                } else {
                    Vec::new()
                }
            }
            Ok(pb::alarm_request::AlarmAction::Deactivate) => {
                self.store.alarm_deactivate(r.member_id, r.alarm)
            }
            _ => Vec::new(),
        };
        pb::AlarmResponse {
            header: Some(header),
            alarms: changed.into_iter().map(alarm_member).collect(),
        }
    }

    /// The leader times leases; a lease not refreshed within its TTL is revoked through
    /// the log like any other command. A new leader restarts every clock (etcd extends
    /// leases on leader change: the old leader's clocks are not trusted).
    fn expire_leases(&mut self) {
        let leader = self.replica.role() == RoleKind::Leader;
        let now = Instant::now();
        if leader && !self.was_leader {
            self.restart_lease_clocks();
        }
        self.was_leader = leader;
        if !leader {
            return;
        }
        let mut expired = Vec::new();
        for (&id, clock) in &mut self.leases {
            let (Ok(info), Some(refreshes)) = (
                self.store.lease_info(id, false),
                self.store.lease_refreshes(id),
            ) else {
                continue;
            };
            let ttl = Duration::from_secs(u64::try_from(info.granted_ttl).unwrap_or(0));
            let retry = clock
                .expiring
                .is_none_or(|at| now.duration_since(at) > Duration::from_secs(1));
            if now.duration_since(clock.refreshed) > ttl && retry {
                clock.expiring = Some(now);
                expired.push(LeaseExpire { id, refreshes });
            }
        }
        for expire in expired {
            self.propose_own(Op::LeaseExpire(expire));
        }
    }

    /// The leader raises NOSPACE once the kept history outgrows the quota (through the
    /// log, so every member refuses writes from the same slot on). Clearing it is the
    /// operator's `alarm disarm`, after compacting.
    fn check_quota(&mut self) {
        let nospace = pb::AlarmType::Nospace as i32;
        let over = self.store.size_bytes() > self.options.quota_bytes;
        let raised = self.store.alarms().iter().any(|&(_, a)| a == nospace);
        let due = self
            .quota_proposed
            .is_none_or(|at| at.elapsed() > Duration::from_secs(1));
        if !over || raised || !due || self.replica.role() != RoleKind::Leader {
            return;
        }
        tracing::warn!(
            bytes = self.store.size_bytes(),
            quota = self.options.quota_bytes,
            "database space exceeded; raising NOSPACE (compact, then `etcdctl alarm disarm`)"
        );
        self.quota_proposed = Some(Instant::now());
        let raise = Op::Alarm(pb::AlarmRequest {
            action: pb::alarm_request::AlarmAction::Activate as i32,
            member_id: self.me.0,
            alarm: nospace,
        });
        self.propose_own(raise);
    }

    /// A member announces its name and client URLs through the log once it runs (as
    /// etcd's `publish`), so every member lists every member alike; proposed again every
    /// second until the store shows them (a proposal can be lost with a leader).
    fn publish_attributes(&mut self) {
        let published = self.store.published().get(&self.me.0) == Some(&self.attributes);
        let due = self
            .publish_proposed
            .is_none_or(|at| at.elapsed() > Duration::from_secs(1));
        if published || !due || self.replica.leader().is_none() {
            return;
        }
        self.publish_proposed = Some(Instant::now());
        let publish = Op::Publish(Publish {
            member_id: self.me.0,
            name: self.attributes.name.clone(),
            client_urls: self.attributes.client_urls.clone(),
        });
        self.propose_own(publish);
    }

    /// Every lease's clock starts again now: the full TTL remains.
    fn restart_lease_clocks(&mut self) {
        let now = Instant::now();
        self.leases = self
            .store
            .lease_ids()
            .into_iter()
            .map(|id| {
                let clock = LeaseClock {
                    refreshed: now,
                    expiring: None,
                };
                (id, clock)
            })
            .collect();
    }

    /// Remaining whole seconds of a lease by this member's clock, rounded down as etcd
    /// rounds them (a fresh 30 s lease has 29 left); -1 if it does not exist.
    pub fn lease_remaining(&self, id: i64) -> i64 {
        let Ok(info) = self.store.lease_info(id, false) else {
            return -1;
        };
        let ttl = Duration::from_secs(u64::try_from(info.granted_ttl).unwrap_or(0));
        let elapsed = self
            .leases
            .get(&id)
            .map_or(Duration::ZERO, |c| c.refreshed.elapsed());
        i64::try_from(ttl.saturating_sub(elapsed).as_secs()).unwrap_or(i64::MAX)
    }

    fn maybe_snapshot(&mut self) {
        let applied = self.store_applied;
        if self.snapshotting || applied < self.last_snapshot + self.options.snapshot_entries {
            return;
        }
        self.snapshotting = true;
        let store = self.store.clone();
        let inputs = self.inputs.clone();
        let dir = self.snapshot_dir.clone();
        // Serializing a large store takes a while; the clone lets applies go on.
        let spawned = std::thread::Builder::new()
            .name("synod-snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                let written =
                    storage::write_snapshot(&dir, applied, |out| store.write_snapshot(out));
                let written = written.map_err(|e| e.to_string());
                if let Ok(data) = &written {
                    let millis = started.elapsed().as_millis();
                    tracing::info!(
                        slot = applied,
                        bytes = data.len(),
                        millis,
                        "wrote a snapshot"
                    );
                }
                let _ = inputs.send(Input::SnapshotReady(applied, written));
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a snapshot thread: {e}; retrying later");
            self.snapshotting = false;
        }
    }

    /// After a burst of inputs: feed watchers, publish the view.
    fn settle(&mut self) {
        for id in std::mem::take(&mut self.failed_reads) {
            // A read answered meanwhile (a leader change fails reads) needs no barrier.
            if self.requests.is_waiting(id) {
                self.read_by_barrier(id);
            }
        }
        for failed in self.requests.leader_is(self.replica.leader()) {
            refuse(failed);
        }
        self.dispatch_events();
        self.journal_for_watchers();
        if self.view_stale {
            self.publish();
        }
    }

    /// The store journals events only while there are watchers to feed: on a member
    /// nobody watches, a put costs no event (two copies of its key-value). A new watcher
    /// starts at the store's revision or catches up from history, so it never needs
    /// events from before the journal opened.
    fn journal_for_watchers(&mut self) {
        if self.watchers.is_empty() {
            self.store.close_journal();
        } else {
            self.store.open_journal();
        }
    }

    fn dispatch_events(&mut self) {
        let events = self.store.take_events();
        if !events.is_empty() {
            let header = self.header();
            self.watchers.dispatch(&events, header);
        }
    }

    fn publish(&mut self) -> Arc<View> {
        if self.view_stale {
            self.view_stale = false;
            let view = Arc::new(View {
                store: self.store.clone(),
                header: self.header(),
            });
            self.view.send_replace(view);
        }
        self.view.borrow().clone()
    }

    /// The header of an answer given now.
    pub fn header(&self) -> pb::ResponseHeader {
        pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.me.0,
            revision: self.store.revision(),
            raft_term: self.replica.promised().round,
        }
    }

    /// The store.
    pub fn store(&self) -> &kv::Store {
        &self.store
    }

    /// The engine.
    pub fn replica(&self) -> &Replica<Payload, Pcg64> {
        &self.replica
    }

    /// The active alarms.
    pub fn alarms(&self) -> Vec<pb::AlarmMember> {
        self.store.alarms().into_iter().map(alarm_member).collect()
    }
}

/// Answers a request the core could not serve, with etcd's error for why (see
/// [`node::requests`]: "no leader" and "leader changed" only where nothing was applied).
fn refuse((reply, failure): (Reply<Applied>, Failure)) {
    let _ = reply.send(Err(Status::unavailable(failure.message())));
}

fn alarm_member((member_id, alarm): (u64, i32)) -> pb::AlarmMember {
    pb::AlarmMember { member_id, alarm }
}
