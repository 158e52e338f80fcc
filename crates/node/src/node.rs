//! A member, sans I/O: the consensus replica, the durability contract, the state machine
//! and the clients' requests, driven by inputs (a peer's message, a client's request, a
//! finished sync, a tick) with the time passed in, and answering with [`Output`]s for the
//! shell to carry out. The server's core runs it on a task; the simulator runs it under
//! its seeds. Neither decides anything this module does not.
//!
//! # What a shell does
//! Call an input method, then take the outputs ([`Node::take_outputs`]) and carry them out in order:
//! [`Output::Persist`] goes to storage, and once it is durable the shell calls
//! [`Node::durable`] with its tag; [`Output::Send`] goes to a peer; answers go to
//! the clients waiting for them. No output is ever ahead of the disk (the [`Sequencer`]
//! holds them), and a read's view is taken when the replica releases it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use paxos::multi::{
    Action, Change, Entry, Message, ProposeError, ReconfigureError, Replica, RoleKind, Sequencer,
    Slot, SnapshotData, Step, TransferError, Write,
};
use paxos::NodeId;
use rand_core::RngCore;

use crate::machine::{Context, StateMachine};
use crate::requests::{Failure, Kind, Requests};

/// What the shell carries out for the node, in the order given.
pub enum Output<M: StateMachine, W> {
    /// Make `writes` durable as submission `tag`; report it with [`Node::durable`].
    Persist {
        /// The submission's number (later ones imply earlier ones durable).
        tag: u64,
        /// What to write.
        writes: Vec<Write<M::Command>>,
    },
    /// Send `message` to peer `to`.
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        message: Message<M::Command>,
    },
    /// Stream a snapshot to a peer: [`Action::snapshot_chunks`] gives its messages.
    SendSnapshot(Action<M::Command>),
    /// A client's write was applied: here is its answer.
    Answer {
        /// Who waits.
        waiter: W,
        /// What the state machine answered.
        output: M::Output,
    },
    /// A client's linearizable read may be served from `view` (the state machine as it
    /// stood when the read was released).
    ReadReady {
        /// Who waits.
        waiter: W,
        /// What it reads.
        view: M::View,
    },
    /// A request that cannot be served, and why (etcd's error for it).
    Refuse {
        /// Who waits.
        waiter: W,
        /// Why.
        failure: Failure,
    },
    /// The state machine was replaced by a peer's snapshot through `slot`.
    Installed {
        /// The slot the snapshot covers.
        slot: Slot,
    },
    /// Time for a snapshot of the state machine as it is now (through `slot`): write it,
    /// then report it with [`Node::snapshot_taken`].
    TakeSnapshot {
        /// The last slot applied.
        slot: Slot,
    },
}

impl<M: StateMachine, W> std::fmt::Debug for Output<M, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Persist { tag, writes } => write!(f, "Persist({tag}, {} writes)", writes.len()),
            Output::Send { to, message } => write!(f, "Send({to}, {})", message.kind()),
            Output::SendSnapshot(_) => write!(f, "SendSnapshot"),
            Output::Answer { .. } => write!(f, "Answer"),
            Output::ReadReady { .. } => write!(f, "ReadReady"),
            Output::Refuse { failure, .. } => write!(f, "Refuse({failure:?})"),
            Output::Installed { slot } => write!(f, "Installed({slot})"),
            Output::TakeSnapshot { slot } => write!(f, "TakeSnapshot({slot})"),
        }
    }
}

/// A node's tunables.
#[derive(Clone, Copy, Debug)]
pub struct NodeOptions {
    /// How long a request may wait for the cluster before it is refused.
    pub request_timeout: Duration,
    /// At most this many commands wait for a leader.
    pub parked_max: usize,
    /// Take a snapshot after this many applied slots.
    pub snapshot_entries: u64,
}

/// A member's request ids, shared by the node and whoever builds commands for it (see
/// [`Node::propose_command`]): unique within one start of the member, never 0 (the id
/// of the node's own commands, which nobody waits for).
#[derive(Clone, Debug)]
pub struct RequestIds(Arc<AtomicU64>);

impl RequestIds {
    /// Ids from `first + 1` on.
    pub fn after(first: u64) -> RequestIds {
        RequestIds(Arc::new(AtomicU64::new(first)))
    }

    /// The next id.
    pub fn next(&self) -> u64 {
        // Relaxed: an id only has to be unique, not ordered with anything else.
        let id = self.0.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if id == 0 {
            self.next()
        } else {
            id
        }
    }
}

/// A member of the cluster, sans I/O.
pub struct Node<M: StateMachine, W, R> {
    me: NodeId,
    replica: Replica<M::Command, R>,
    machine: M,
    /// The durability contract: what of the replica's actions may run when.
    sequencer: Sequencer<M::Command>,
    /// Messages this replica sent itself, delivered after the current action batch.
    local: VecDeque<Message<M::Command>>,
    /// The clients' requests, and the commands waiting for a leader.
    requests: Requests<W, M::Command>,
    ids: RequestIds,
    /// Reads the replica could not serve, redone through the log after the batch.
    failed_reads: Vec<u64>,
    options: NodeOptions,
    now: Duration,
    /// The last slot the state machine applied (the replica's count runs ahead while
    /// applies wait behind a snapshot install that waits for a sync).
    applied: Slot,
    last_snapshot: Slot,
    snapshotting: bool,
    /// Whether the state machine changed since [`Node::take_changed`].
    changed: bool,
    fatal: Option<String>,
    outputs: Vec<Output<M, W>>,
}

impl<M: StateMachine, W, R: RngCore> Node<M, W, R> {
    /// A node around `replica` (restarted from storage) and `machine` (restored from the
    /// snapshot through `snapshot_index`). Request ids start after `first_id`: a random
    /// number, so that a command this member proposed before a restart, applied again
    /// during recovery, cannot answer a new request.
    pub fn new(
        replica: Replica<M::Command, R>,
        machine: M,
        snapshot_index: Slot,
        first_id: u64,
        options: NodeOptions,
    ) -> Node<M, W, R> {
        Node {
            me: replica.id(),
            replica,
            machine,
            sequencer: Sequencer::new(),
            local: VecDeque::new(),
            requests: Requests::new(options.request_timeout, options.parked_max),
            ids: RequestIds::after(first_id),
            failed_reads: Vec::new(),
            options,
            now: Duration::ZERO,
            applied: snapshot_index,
            last_snapshot: snapshot_index,
            snapshotting: false,
            changed: false,
            fatal: None,
            outputs: Vec::new(),
        }
    }

    // ---- inputs -----------------------------------------------------------------------

    /// A peer's message.
    pub fn step(&mut self, from: NodeId, message: Message<M::Command>, now: Duration) {
        self.now = now;
        let actions = self.replica.step(from, message);
        self.run(actions);
        self.settle();
    }

    /// A peer's connection closed.
    pub fn peer_unreachable(&mut self, peer: NodeId, now: Duration) {
        self.now = now;
        let actions = self.replica.peer_unreachable(peer);
        self.run(actions);
        self.settle();
    }

    /// A client's write: `waiter` gets an [`Output::Answer`] once it is applied, or an
    /// [`Output::Refuse`]. Returns the request's id (its command carries it).
    pub fn propose(&mut self, op: M::Op, waiter: W, now: Duration) -> u64 {
        let id = self.ids.next();
        let command = self.machine.command(self.me, id, op);
        self.propose_command(id, command, waiter, now);
        id
    }

    /// A client's write whose command the shell already built, off the node's thread:
    /// stamped with this member and `id` from [`Node::request_ids`] (as
    /// [`StateMachine::command`] does), so the node only sequences it. Otherwise as
    /// [`Node::propose`].
    pub fn propose_command(&mut self, id: u64, command: M::Command, waiter: W, now: Duration) {
        self.now = now;
        self.requests.insert(id, Kind::Write, waiter, now);
        self.submit(id, command);
        self.settle();
    }

    /// The source of this node's request ids, to share with the threads that build
    /// commands for [`Node::propose_command`].
    pub fn request_ids(&self) -> RequestIds {
        self.ids.clone()
    }

    /// A client's linearizable read: `waiter` gets [`Output::ReadReady`] once it may be
    /// served, or an [`Output::Refuse`]. The leader confirms its ballot; a follower asks
    /// the leader for its read index.
    pub fn read(&mut self, waiter: W, now: Duration) {
        self.now = now;
        let id = self.ids.next();
        self.requests.insert(id, Kind::Read, waiter, now);
        let actions = self.replica.read(id);
        self.run(actions);
        self.settle();
    }

    /// An operator's membership change (see [`Replica::reconfigure`]), checked against
    /// the members this leader heard from within an election timeout
    /// ([`Replica::peer_active`]). It takes effect once chosen and applied:
    /// [`Replica::membership`] shows it.
    pub fn reconfigure(&mut self, change: Change, now: Duration) -> Result<(), ReconfigureError> {
        self.now = now;
        let replica = &self.replica;
        let up: Vec<NodeId> = (replica.membership().roster().iter().copied())
            .filter(|&id| replica.peer_active(id))
            .collect();
        let actions = self.replica.reconfigure(change, |id| up.contains(&id))?;
        self.run(actions);
        self.settle();
        Ok(())
    }

    /// For the leader: hands leadership to `to` (see [`Replica::transfer_leadership`]).
    pub fn transfer_leadership(&mut self, to: NodeId, now: Duration) -> Result<(), TransferError> {
        self.now = now;
        let actions = self.replica.transfer_leadership(to)?;
        self.run(actions);
        self.settle();
        Ok(())
    }

    /// Storage made submission `tag` durable.
    pub fn durable(&mut self, tag: u64, now: Duration) {
        self.now = now;
        for action in self.sequencer.durable(tag) {
            self.execute(action);
        }
        self.drain_local();
        self.settle();
    }

    /// A snapshot the shell took after [`Output::TakeSnapshot`] is in storage (or could
    /// not be written: the next attempt waits for as many applies again).
    pub fn snapshot_taken(&mut self, slot: Slot, written: Option<SnapshotData>, now: Duration) {
        self.now = now;
        self.snapshotting = false;
        self.last_snapshot = slot;
        if let Some(data) = written {
            let actions = self.replica.snapshot_taken(slot, data);
            self.run(actions);
        }
        self.settle();
    }

    /// A tick of the clock: the engine's timers, a commit hint no write carried, commands
    /// waiting for a leader, requests past their deadline, the state machine's own
    /// proposals, and a snapshot when one is due.
    pub fn tick(&mut self, now: Duration) {
        self.now = now;
        let actions = self.replica.tick();
        self.run(actions);
        if let Some(step) = self.sequencer.flush_commit_hint() {
            self.take_step(step);
        }
        for (id, command) in self.requests.unpark() {
            self.submit(id, command);
        }
        for (waiter, failure) in self.requests.expire(now) {
            self.outputs.push(Output::Refuse { waiter, failure });
        }
        let context = self.context();
        for op in self.machine.tick(&context) {
            let command = self.machine.command(NodeId(0), 0, op);
            self.submit(0, command);
        }
        self.settle();
        self.maybe_snapshot();
    }

    /// Drops the requests whose clients went away (`gone`), so their commands are not
    /// proposed late.
    pub fn forget(&mut self, gone: impl FnMut(&W) -> bool) {
        self.requests.forget(gone);
    }

    // ---- outputs and state ------------------------------------------------------------

    /// The outputs of the inputs so far, to carry out in order.
    pub fn take_outputs(&mut self) -> Vec<Output<M, W>> {
        std::mem::take(&mut self.outputs)
    }

    /// Why the member must stop, once something fatal happened (a snapshot that does not
    /// restore: going on would diverge from every other member).
    pub fn take_fatal(&mut self) -> Option<String> {
        self.fatal.take()
    }

    /// Whether the state machine changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The state machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The state machine, for what the shell keeps in it (for example the etcd store's
    /// watch journal). Changing the replicated state here breaks replication.
    pub fn machine_mut(&mut self) -> &mut M {
        &mut self.machine
    }

    /// The engine.
    pub fn replica(&self) -> &Replica<M::Command, R> {
        &self.replica
    }

    /// The engine, for the shell's test knobs.
    pub fn replica_mut(&mut self) -> &mut Replica<M::Command, R> {
        &mut self.replica
    }

    /// The durability contract, for the shell's test knobs.
    pub fn sequencer_mut(&mut self) -> &mut Sequencer<M::Command> {
        &mut self.sequencer
    }

    /// The request table, for the shell's test knobs.
    pub fn requests_mut(&mut self) -> &mut Requests<W, M::Command> {
        &mut self.requests
    }

    /// The last slot the state machine applied.
    pub fn applied(&self) -> Slot {
        self.applied
    }

    /// Applies that ran ahead of a pending sync (see [`Sequencer::applies_ahead`]).
    pub fn applies_ahead(&self) -> u64 {
        self.sequencer.applies_ahead()
    }

    /// Where the member stands now, as the state machine is told.
    pub fn context(&self) -> Context {
        Context {
            me: self.me,
            now: self.now,
            round: self.replica.promised().round,
            leading: self.replica.role() == RoleKind::Leader,
            leader_known: self.replica.leader().is_some(),
        }
    }

    // ---- the work ---------------------------------------------------------------------

    /// Proposes request `id`'s command (id 0: the node's own, nobody waits). Without a
    /// leader it waits for one, up to `parked_max` commands.
    fn submit(&mut self, id: u64, command: M::Command) {
        match self.replica.propose(command.clone()) {
            Ok(actions) => self.run(actions),
            Err(ProposeError::NoLeader) => {
                if let Some((waiter, failure)) = self.requests.park(id, command) {
                    self.outputs.push(Output::Refuse { waiter, failure });
                }
            }
        }
    }

    /// Hands the replica's actions to the sequencer, carries out what it lets through,
    /// then delivers what the replica sent itself.
    fn run(&mut self, actions: Vec<Action<M::Command>>) {
        self.schedule(actions);
        self.drain_local();
    }

    fn schedule(&mut self, actions: Vec<Action<M::Command>>) {
        for step in self.sequencer.schedule(actions) {
            self.take_step(step);
        }
    }

    fn take_step(&mut self, step: Step<M::Command>) {
        match step {
            Step::Persist { tag, writes } => self.outputs.push(Output::Persist { tag, writes }),
            Step::Run(action) => self.execute(action),
        }
    }

    fn drain_local(&mut self) {
        while let Some(message) = self.local.pop_front() {
            let actions = self.replica.step(self.me, message);
            self.schedule(actions);
        }
    }

    fn execute(&mut self, action: Action<M::Command>) {
        match action {
            // The sequencer hands writes over as steps, never to run.
            Action::Persist(_) | Action::CommitHint(_) => {}
            Action::Send { to, message } if to == self.me => self.local.push_back(message),
            Action::Send { to, message } => self.outputs.push(Output::Send { to, message }),
            Action::SendSnapshot { .. } => self.outputs.push(Output::SendSnapshot(action)),
            Action::Apply { slot, entry } => self.apply(slot, entry),
            Action::InstallSnapshot { index, data } => self.install(index, &data),
            Action::ReadReady { id } => {
                if let Some(waiter) = self.requests.answer(id) {
                    let view = self.machine.view(&self.context());
                    self.outputs.push(Output::ReadReady { waiter, view });
                }
            }
            // Not here, mid-batch: proposing now would run new actions ahead of older ones.
            Action::ReadFailed { id, .. } => self.failed_reads.push(id),
        }
    }

    fn apply(&mut self, slot: Slot, entry: Entry<M::Command>) {
        self.applied = slot;
        let command = match entry {
            Entry::Command(command) => command,
            Entry::Noop => return self.machine.noop(slot),
            Entry::Configure { .. } | Entry::Retire { .. } => {
                return self.machine.membership_changed(slot, &entry);
            }
        };
        self.changed = true;
        let context = self.context();
        let Some(answer) = self.machine.apply(slot, &command, &context) else {
            return;
        };
        if answer.origin == self.me {
            if let Some(waiter) = self.requests.answer(answer.id) {
                let output = answer.output;
                self.outputs.push(Output::Answer { waiter, output });
            }
        }
    }

    fn install(&mut self, slot: Slot, data: &SnapshotData) {
        let context = self.context();
        match self.machine.restore(data, &context) {
            Ok(()) => {
                self.applied = slot;
                self.last_snapshot = slot;
                self.changed = true;
                self.outputs.push(Output::Installed { slot });
            }
            // The replica now counts the snapshot's slots as applied: going on with the
            // old state would diverge from every other member.
            Err(e) => {
                let reason = format!("the snapshot for slot {slot} does not restore: {e}");
                self.fatal.get_or_insert(reason);
            }
        }
    }

    /// After an input: reads the replica could not serve go through the log (a barrier
    /// the leader slots after the read arrived, so every write completed before then is
    /// below it), and requests a leader change strands are answered.
    fn settle(&mut self) {
        for id in std::mem::take(&mut self.failed_reads) {
            // A read answered meanwhile (a leader change fails reads) needs no barrier.
            if self.requests.is_waiting(id) {
                let barrier = self.machine.barrier(self.me, id);
                self.submit(id, barrier);
            }
        }
        for (waiter, failure) in self.requests.leader_is(self.replica.leader()) {
            self.outputs.push(Output::Refuse { waiter, failure });
        }
    }

    fn maybe_snapshot(&mut self) {
        let due = self
            .last_snapshot
            .saturating_add(self.options.snapshot_entries);
        if self.snapshotting || self.applied < due {
            return;
        }
        self.snapshotting = true;
        self.outputs
            .push(Output::TakeSnapshot { slot: self.applied });
    }
}

impl<M: StateMachine, W, R> std::fmt::Debug for Node<M, W, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("me", &self.me).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Answer;
    use paxos::multi::{Members, Options};
    use paxos::QuorumSpec;
    use std::sync::Arc;

    /// A register: each command sets it (a barrier, `None`, leaves it); a read sees it.
    #[derive(Debug, Default)]
    struct Register(u64);

    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Set(NodeId, u64, Option<u64>);

    impl paxos::multi::Command for Set {
        fn size(&self) -> usize {
            24
        }
    }

    impl StateMachine for Register {
        type Op = u64;
        type Command = Set;
        type Output = u64;
        type View = u64;
        fn command(&self, origin: NodeId, id: u64, value: u64) -> Set {
            Set(origin, id, Some(value))
        }
        fn barrier(&self, origin: NodeId, id: u64) -> Set {
            Set(origin, id, None)
        }
        fn apply(
            &mut self,
            _: Slot,
            &Set(origin, id, v): &Set,
            _: &Context,
        ) -> Option<Answer<u64>> {
            self.0 = v.unwrap_or(self.0);
            Some(Answer {
                origin,
                id,
                output: self.0,
            })
        }
        fn view(&self, _: &Context) -> u64 {
            self.0
        }
        fn restore(&mut self, _: &SnapshotData, _: &Context) -> Result<(), String> {
            Err("no snapshots here".into())
        }
        fn hash(&self) -> u64 {
            self.0
        }
    }

    const MS: Duration = Duration::from_millis(1);

    /// A member of a cluster of one, with storage that reports every write durable.
    fn alone() -> Node<Register, &'static str, rand_pcg::Pcg64> {
        let members = Members::new(vec![NodeId(1)], QuorumSpec::Majority).expect("one member");
        let rng = <rand_pcg::Pcg64 as rand_core::SeedableRng>::seed_from_u64(1);
        let replica = Replica::new(NodeId(1), Arc::new(members), Options::default(), rng);
        let options = NodeOptions {
            request_timeout: 100 * MS,
            parked_max: 10,
            snapshot_entries: 1_000,
        };
        Node::new(
            replica.expect("a replica"),
            Register::default(),
            0,
            0,
            options,
        )
    }

    /// Ticks until the member leads, making every write durable at once.
    fn lead(node: &mut Node<Register, &'static str, rand_pcg::Pcg64>) -> Duration {
        let mut now = Duration::ZERO;
        while node.replica().role() != RoleKind::Leader {
            now += MS;
            node.tick(now);
            make_durable(node, now);
            assert!(now < 1_000 * MS, "no leader");
        }
        now
    }

    fn make_durable(node: &mut Node<Register, &'static str, rand_pcg::Pcg64>, now: Duration) {
        loop {
            let tags: Vec<u64> = node
                .take_outputs()
                .into_iter()
                .filter_map(|o| match o {
                    Output::Persist { tag, .. } => Some(tag),
                    _ => None,
                })
                .collect();
            if tags.is_empty() {
                return;
            }
            tags.into_iter().for_each(|tag| node.durable(tag, now));
        }
    }

    fn answers(outputs: &[Output<Register, &'static str>]) -> Vec<(&'static str, u64)> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Answer { waiter, output } => Some((*waiter, *output)),
                Output::ReadReady { waiter, view } => Some((*waiter, *view)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_write_is_answered_only_once_its_vote_is_durable() {
        let mut node = alone();
        let now = lead(&mut node);
        node.propose(7, "client", now);
        let outputs = node.take_outputs();
        let tags: Vec<u64> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Persist { tag, .. } => Some(*tag),
                _ => None,
            })
            .collect();
        assert_eq!(tags.len(), 1, "{outputs:?}");
        assert_eq!(answers(&outputs), vec![], "answered before the sync");
        node.durable(tags[0], now);
        let outputs = node.take_outputs();
        assert_eq!(answers(&outputs), vec![("client", 7)], "{outputs:?}");
        assert_eq!(node.applied(), node.replica().applied());
    }

    #[test]
    fn a_read_sees_the_writes_completed_before_it() {
        let mut node = alone();
        let now = lead(&mut node);
        node.propose(3, "writer", now);
        make_durable(&mut node, now);
        node.read("reader", now);
        let mut outputs = node.take_outputs();
        for step in 1..20u32 {
            if !answers(&outputs).is_empty() {
                break;
            }
            node.tick(now + step * MS);
            make_durable(&mut node, now + step * MS);
            outputs.extend(node.take_outputs());
        }
        assert_eq!(answers(&outputs), vec![("reader", 3)], "{outputs:?}");
    }

    #[test]
    fn a_read_without_a_leader_goes_through_the_log_once_there_is_one() {
        let mut node = alone();
        node.propose(4, "writer", Duration::ZERO);
        // No leader known yet: the replica cannot serve the read, so the node parks a
        // barrier for it, with the write, until a leader exists.
        node.read("reader", Duration::ZERO);
        assert_eq!(answers(&node.take_outputs()), vec![]);
        let mut answered = Vec::new();
        let mut now = Duration::ZERO;
        while answered.len() < 2 && now < 1_000 * MS {
            now += MS;
            node.tick(now);
            loop {
                let outputs = node.take_outputs();
                if outputs.is_empty() {
                    break;
                }
                answered.extend(answers(&outputs));
                for output in outputs {
                    if let Output::Persist { tag, .. } = output {
                        node.durable(tag, now);
                    }
                }
            }
        }
        // Proposed in order: the barrier after the write, so the read sees it.
        assert_eq!(answered, vec![("writer", 4), ("reader", 4)]);
    }
}
