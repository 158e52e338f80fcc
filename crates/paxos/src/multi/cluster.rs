//! An in-memory cluster for scenario tests: replicas, a FIFO network that can drop links,
//! in-memory storage that survives crashes, and a state machine per replica (the list of
//! commands it applied). Deterministic: same calls, same run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use rand_core::SeedableRng;
use rand_pcg::Pcg32;

use super::{
    membership::Membership, Action, Change, Durable, Entry, LogEntry, Members, Message, Options,
    ReconfigureError, Replica, Sequencer, Slot, SnapshotData, Step, TransferError, Write,
};
use crate::{NodeId, QuorumSpec};

pub(crate) type TestReplica = Replica<u64, Pcg32>;

/// What storage holds, kept across crashes (writes are durable at once here).
#[derive(Clone, Debug, Default)]
pub(crate) struct Disk {
    promised: crate::Ballot,
    votes: BTreeMap<Slot, LogEntry<u64>>,
    commit: Slot,
    snapshot: Option<(Slot, SnapshotData)>,
    snapshot_membership: Option<Membership>,
}

impl Disk {
    fn write(&mut self, write: Write<u64>) {
        match write {
            Write::Promise(ballot) => self.promised = self.promised.max(ballot),
            Write::Votes {
                ballot,
                first,
                entries,
            } => {
                self.promised = self.promised.max(ballot);
                for (slot, entry) in (first..).zip(entries.iter()) {
                    let entry = entry.clone();
                    self.votes.insert(slot, LogEntry { ballot, entry });
                }
            }
            Write::Chosen { first, entries } => {
                self.votes.extend((first..).zip(entries));
            }
            Write::Commit(slot) => self.commit = self.commit.max(slot),
            Write::Snapshot {
                index,
                membership,
                data,
            } => {
                self.votes.retain(|&slot, _| slot > index);
                self.snapshot = Some((index, data));
                self.snapshot_membership = Some(membership);
            }
        }
    }

    fn durable(&self) -> Durable<u64> {
        Durable {
            promised: self.promised,
            votes: self.votes.iter().map(|(&s, v)| (s, v.clone())).collect(),
            commit: self.commit,
            snapshot: self.snapshot.clone(),
            snapshot_membership: self.snapshot_membership.clone(),
        }
    }
}

/// The replicated state machine of the tests: every command applied, in order.
fn encode(commands: &[u64]) -> Arc<[u8]> {
    commands.iter().flat_map(|c| c.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

pub(crate) struct Cluster {
    pub ids: Vec<NodeId>,
    /// Per replica, the configuration it starts from (a joiner's names itself).
    members: Vec<Arc<Members>>,
    /// Per replica, whether it joined an existing cluster (started with what it was told).
    joined: Vec<bool>,
    options: Options,
    pub replicas: Vec<Option<TestReplica>>,
    /// Per replica, the durability contract its actions go through (as in the server).
    sequencers: Vec<Sequencer<u64>>,
    disks: Vec<Disk>,
    /// Per replica: the commands its state machine holds, in slot order.
    pub state: Vec<Vec<u64>>,
    /// Per replica: the slot its state machine applied last.
    applied: Vec<Slot>,
    /// Every chosen entry any replica applied, by slot: agreement is checked against it.
    chosen: BTreeMap<Slot, Entry<u64>>,
    queue: VecDeque<(NodeId, NodeId, Message<u64>)>,
    /// Directed links that drop everything.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    pub reads_ready: Vec<(NodeId, u64)>,
    pub reads_failed: Vec<(NodeId, u64)>,
    pub delivered: usize,
}

impl Cluster {
    pub(crate) fn new(count: u64, quorum: QuorumSpec, options: Options) -> Cluster {
        Cluster::with_learners(count, 0, quorum, options)
    }

    /// `voters` voters (ids 1 on) and then `learners` learners.
    pub(crate) fn with_learners(
        voters: u64,
        learners: u64,
        quorum: QuorumSpec,
        options: Options,
    ) -> Cluster {
        let ids: Vec<NodeId> = (1..=voters + learners).map(NodeId).collect();
        let (voting, learning) = ids.split_at(usize::try_from(voters).expect("a few"));
        let members = Members::with_learners(voting.to_vec(), learning.to_vec(), quorum);
        let members = Arc::new(members.expect("members"));
        let n = ids.len();
        let mut cluster = Cluster {
            members: vec![members; ids.len()],
            joined: vec![false; ids.len()],
            ids,
            options,
            replicas: Vec::new(),
            sequencers: (0..n).map(|_| Sequencer::new()).collect(),
            disks: vec![Disk::default(); n],
            state: vec![Vec::new(); n],
            applied: vec![0; n],
            chosen: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            reads_ready: Vec::new(),
            reads_failed: Vec::new(),
            delivered: 0,
        };
        for i in 0..n {
            let replica = cluster.boot(i);
            cluster.replicas.push(Some(replica));
        }
        cluster
    }

    fn boot(&mut self, i: usize) -> TestReplica {
        let rng = Pcg32::seed_from_u64(self.ids[i].0 * 7919 + self.applied[i]);
        let durable = self.disks[i].durable();
        // The state machine restarts from the snapshot; the replica re-applies the rest.
        let (index, data) = durable
            .snapshot
            .clone()
            .unwrap_or((0, SnapshotData::from(Vec::new())));
        self.state[i] = decode(&data.to_vec().expect("in memory"));
        self.applied[i] = index;
        let members = self.members[i].clone();
        let options = self.options.clone();
        let replica = if self.joined[i] {
            Replica::join(self.ids[i], members, options, rng, durable)
        } else {
            Replica::restart(self.ids[i], members, options, rng, durable)
        };
        replica.expect("replica")
    }

    pub(crate) fn index(&self, id: NodeId) -> usize {
        self.ids.iter().position(|&i| i == id).expect("member")
    }

    pub(crate) fn replica(&self, i: usize) -> &TestReplica {
        self.replicas[i].as_ref().expect("replica is up")
    }

    fn with(&mut self, i: usize, f: impl FnOnce(&mut TestReplica) -> Vec<Action<u64>>) {
        let Some(replica) = self.replicas[i].as_mut() else {
            return;
        };
        let actions = f(replica);
        self.carry_out(i, actions);
    }

    /// Carries out `actions` through the replica's sequencer; this disk is durable at
    /// once, so every submission is reported durable as soon as it is written.
    fn carry_out(&mut self, i: usize, actions: Vec<Action<u64>>) {
        for step in self.sequencers[i].schedule(actions) {
            match step {
                Step::Persist { tag, writes } => self.persist(i, tag, writes),
                Step::Run(action) => self.execute(i, vec![action]),
            }
        }
    }

    /// Writes submission `tag`, durable at once, and runs what waited for it.
    fn persist(&mut self, i: usize, tag: u64, writes: Vec<Write<u64>>) {
        for write in writes {
            self.disks[i].write(write);
        }
        let released = self.sequencers[i].durable(tag);
        self.execute(i, released);
    }

    fn execute(&mut self, i: usize, actions: Vec<Action<u64>>) {
        let me = self.ids[i];
        for action in actions {
            match action {
                Action::Persist(_) | Action::CommitHint(_) => {
                    unreachable!("the sequencer hands writes over as steps")
                }
                Action::Send { to, message } => {
                    if !self.cut.contains(&(me, to)) {
                        self.queue.push_back((me, to, message));
                    }
                }
                Action::Apply { slot, entry } => self.apply(i, slot, entry),
                Action::InstallSnapshot { index, data } => {
                    self.state[i] = decode(&data.to_vec().expect("in memory"));
                    self.applied[i] = index;
                }
                Action::SendSnapshot { .. } => {
                    let (to, chunks) = action.snapshot_chunks().expect("a snapshot send");
                    if !self.cut.contains(&(me, to)) {
                        for message in chunks {
                            let message = message.expect("in memory");
                            self.queue.push_back((me, to, message));
                        }
                    }
                }
                Action::ReadReady { id } => self.reads_ready.push((me, id)),
                Action::ReadFailed { id, .. } => self.reads_failed.push((me, id)),
            }
        }
    }

    fn apply(&mut self, i: usize, slot: Slot, entry: Entry<u64>) {
        assert_eq!(
            slot,
            self.applied[i] + 1,
            "replica {i} applied out of order"
        );
        self.applied[i] = slot;
        let known = self.chosen.entry(slot).or_insert_with(|| entry.clone());
        assert_eq!(*known, entry, "replicas disagree on slot {slot}");
        if let Entry::Command(c) = entry {
            self.state[i].push(c);
        }
    }

    pub(crate) fn tick(&mut self, i: usize) {
        self.with(i, |r| r.tick());
        // A quiet tick hands storage the commit point no write carried, as the server's.
        if self.replicas[i].is_some() {
            if let Some(Step::Persist { tag, writes }) = self.sequencers[i].flush_commit_hint() {
                self.persist(i, tag, writes);
            }
        }
    }

    pub(crate) fn tick_all(&mut self) {
        for i in 0..self.ids.len() {
            self.tick(i);
        }
    }

    /// Delivers messages until none is left (or `max` were delivered).
    pub(crate) fn deliver(&mut self, max: usize) {
        for _ in 0..max {
            let Some((from, to, message)) = self.queue.pop_front() else {
                return;
            };
            if self.cut.contains(&(from, to)) {
                continue;
            }
            self.delivered += 1;
            let i = self.index(to);
            self.with(i, |r| r.step(from, message));
        }
    }

    /// Ticks everyone and delivers everything, `rounds` times.
    pub(crate) fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.tick_all();
            self.deliver(100_000);
        }
    }

    /// Runs until some replica leads, and returns its index.
    pub(crate) fn elect(&mut self) -> usize {
        for _ in 0..1000 {
            self.run(1);
            if let Some(i) = self.leader() {
                return i;
            }
        }
        panic!("no leader elected");
    }

    pub(crate) fn leader(&self) -> Option<usize> {
        (0..self.ids.len()).find(|&i| {
            self.replicas[i]
                .as_ref()
                .is_some_and(|r| r.role() == super::RoleKind::Leader)
        })
    }

    pub(crate) fn propose(&mut self, i: usize, command: u64) -> bool {
        let Some(replica) = self.replicas[i].as_mut() else {
            return false;
        };
        match replica.propose(command) {
            Ok(actions) => {
                self.carry_out(i, actions);
                true
            }
            Err(_) => false,
        }
    }

    /// Asks replica `i` to change the membership; every running replica counts as up.
    pub(crate) fn reconfigure(&mut self, i: usize, change: Change) -> Result<(), ReconfigureError> {
        let up: Vec<NodeId> = (0..self.ids.len())
            .filter(|&j| self.replicas[j].is_some())
            .map(|j| self.ids[j])
            .collect();
        let Some(replica) = self.replicas[i].as_mut() else {
            return Err(ReconfigureError::NotLeader { leader: None });
        };
        let actions = replica.reconfigure(change, |id| up.contains(&id))?;
        self.carry_out(i, actions);
        Ok(())
    }

    /// Asks replica `i` to hand leadership to `to`.
    pub(crate) fn transfer(&mut self, i: usize, to: NodeId) -> Result<(), TransferError> {
        let Some(replica) = self.replicas[i].as_mut() else {
            return Err(TransferError::NotLeader { leader: None });
        };
        let actions = replica.transfer_leadership(to)?;
        self.carry_out(i, actions);
        Ok(())
    }

    /// A new machine, not yet started: its index.
    pub(crate) fn add_spare(&mut self) -> usize {
        let id = NodeId(self.ids.len() as u64 + 1);
        self.ids.push(id);
        self.members.push(self.members[0].clone());
        self.joined.push(true);
        self.replicas.push(None);
        self.sequencers.push(Sequencer::new());
        self.disks.push(Disk::default());
        self.state.push(Vec::new());
        self.applied.push(0);
        self.ids.len() - 1
    }

    /// Starts spare `i` with `members` (which name it), as an operator starts a member
    /// that `member add` announced.
    pub(crate) fn join(&mut self, i: usize, members: Members) {
        self.members[i] = Arc::new(members);
        self.restart(i);
    }

    pub(crate) fn read(&mut self, i: usize, id: u64) {
        self.with(i, |r| r.read(id));
    }

    pub(crate) fn snapshot(&mut self, i: usize) {
        let index = self.applied[i];
        let commands = self.state[i].clone();
        self.snapshot_at(i, index, &commands);
    }

    /// Replica `i` takes a snapshot through `index`, where `commands` had been applied
    /// (it may have applied more since).
    pub(crate) fn snapshot_at(&mut self, i: usize, index: Slot, commands: &[u64]) {
        let data = SnapshotData::from(encode(commands).to_vec());
        self.with(i, |r| r.snapshot_taken(index, data));
    }

    /// Crash: the replica and its messages in flight are gone; its disk stays.
    pub(crate) fn crash(&mut self, i: usize) {
        self.replicas[i] = None;
        self.sequencers[i] = Sequencer::new();
        let id = self.ids[i];
        self.queue.retain(|(from, to, _)| *from != id && *to != id);
    }

    pub(crate) fn restart(&mut self, i: usize) {
        let replica = self.boot(i);
        self.replicas[i] = Some(replica);
    }

    /// Cuts every link to and from replica `i`.
    pub(crate) fn isolate(&mut self, i: usize) {
        let id = self.ids[i];
        for &other in &self.ids {
            self.cut.insert((id, other));
            self.cut.insert((other, id));
        }
        self.cut.remove(&(id, id));
    }

    pub(crate) fn heal(&mut self) {
        self.cut.clear();
    }

    pub(crate) fn applied(&self, i: usize) -> Slot {
        self.applied[i]
    }
}
