//! A replicated counter on Synod's consensus (`cargo run --example counter`): three
//! members in one process, each a `node::Node` around the replica, sequencer and request
//! table the etcd server runs, a `storage::MemoryStorage` each, a queue for a network.
//! Your system brings its state machine, transport, disk and clock (as `synod serve` does).

#![allow(clippy::print_stdout)] // An example shows its result.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use node::{Answer, Context, Node, NodeOptions, Output, StateMachine};
use paxos::multi::{Members, Message, Options, Replica, Slot, SnapshotData};
use paxos::{NodeId, QuorumSpec};
use rand_core::SeedableRng;
use rand_pcg::Pcg64;
use storage::{MemoryStorage, Storage};

/// A log entry: add `n` (the last field), answered on member `origin` to request `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Add(NodeId, u64, u64);

impl paxos::multi::Command for Add {
    fn size(&self) -> usize {
        24
    }
}

/// The replicated state: one number.
#[derive(Debug, Default)]
struct Counter(u64);

impl StateMachine for Counter {
    type Op = u64;
    type Command = Add;
    type Output = u64;
    type View = u64;

    fn command(&self, origin: NodeId, id: u64, n: u64) -> Add {
        Add(origin, id, n)
    }
    fn barrier(&self, origin: NodeId, id: u64) -> Add {
        self.command(origin, id, 0)
    }
    fn apply(&mut self, _: Slot, &Add(origin, id, n): &Add, _: &Context) -> Option<Answer<u64>> {
        self.0 += n;
        let output = self.0;
        Some(Answer { origin, id, output })
    }
    fn view(&self, _at: &Context) -> u64 {
        self.0
    }
    fn restore(&mut self, data: &SnapshotData, _at: &Context) -> Result<(), String> {
        let bytes = data.to_vec().map_err(|e| e.to_string())?;
        let total: [u8; 8] = bytes.try_into().map_err(|_| "not a counter".to_string())?;
        self.0 = u64::from_le_bytes(total);
        Ok(())
    }
    fn hash(&self) -> u64 {
        self.0
    }
}

/// A member: the node and its disk. The waiter of a request is the client's number.
type Member = (Node<Counter, u64, Pcg64>, MemoryStorage<Add>);
type Network = VecDeque<(NodeId, NodeId, Message<Add>)>;

pub fn main() -> Result<(), String> {
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let config = Members::new(ids.clone(), QuorumSpec::Majority).map_err(|e| e.to_string())?;
    let (config, mut members) = (Arc::new(config), Vec::<Member>::new());
    let options = NodeOptions {
        request_timeout: Duration::from_secs(5),
        parked_max: 1_000,
        snapshot_entries: 16,
    };
    for &id in &ids {
        let rng = Pcg64::seed_from_u64(id.0);
        let replica = Replica::new(id, config.clone(), Options::default(), rng);
        let replica = replica.map_err(|e| e.to_string())?;
        let node = Node::new(replica, Counter::default(), 0, id.0 << 32, options);
        members.push((node, MemoryStorage::new()));
    }
    let (mut network, mut answered, mut sent) = (Network::new(), 0, 0u64);
    for millis in 1..=5_000u64 {
        let now = Duration::from_millis(millis);
        members.iter_mut().for_each(|(node, _)| node.tick(now));
        // A client adds 1, 2, 3... through the members in turn, one request a tick.
        if sent < 30
            && members
                .iter()
                .any(|(node, _)| node.replica().leader().is_some())
        {
            sent += 1;
            members.rotate_left(1);
            members[0].0.propose(sent, sent, now);
        }
        loop {
            answered += carry_out(&mut members, &mut network, now)?;
            let Some((from, to, message)) = network.pop_front() else {
                break;
            };
            if let Some((node, _)) = members.iter_mut().find(|(n, _)| n.replica().id() == to) {
                node.step(from, message, now);
            }
        }
        if answered == 30 {
            break;
        }
    }
    let totals: Vec<u64> = members.iter().map(|(node, _)| node.machine().0).collect();
    println!("{answered} adds answered; every member's counter: {totals:?}");
    let expected = (1..=30).sum::<u64>();
    match totals.iter().all(|&t| t == expected) && answered == 30 {
        true => Ok(()),
        false => Err(format!("expected {expected} everywhere, got {totals:?}")),
    }
}

/// Carries out the members' outputs until none is left: writes go to the disk (then the
/// node hears they are durable), messages into the network, snapshots are taken when due.
/// Returns how many clients' adds were answered.
fn carry_out(members: &mut [Member], net: &mut Network, now: Duration) -> Result<u64, String> {
    let mut answered = 0;
    for (node, disk) in members.iter_mut() {
        let me = node.replica().id();
        let mut outputs = node.take_outputs();
        while !outputs.is_empty() {
            for output in outputs {
                match output {
                    Output::Persist { tag, writes } => {
                        disk.persist(writes).map_err(|e| format!("{e:?}"))?;
                        node.durable(tag, now);
                    }
                    Output::Send { to, message } => net.push_back((me, to, message)),
                    Output::Answer { .. } => answered += 1,
                    Output::TakeSnapshot { slot } => {
                        let data = SnapshotData::from(node.machine().0.to_le_bytes().to_vec());
                        node.snapshot_taken(slot, Some(data), now);
                    }
                    Output::Refuse { failure, .. } => return Err(failure.message().into()),
                    _ => {}
                }
            }
            outputs = node.take_outputs();
        }
    }
    Ok(answered)
}
