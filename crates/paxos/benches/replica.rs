//! The Multi-Paxos engine alone: three replicas in one thread, an in-memory network, no
//! disk. What it measures is the engine's own CPU cost per command, the ceiling every
//! layer above (storage, transport, gRPC) can only lower.
//!
//! `cargo bench -p synod-paxos --bench replica`

#![allow(clippy::expect_used, clippy::cast_possible_truncation)]

use std::collections::VecDeque;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use paxos::multi::{Action, Members, Message, Options, Replica, RoleKind};
use paxos::{NodeId, QuorumSpec};
use rand_core::SeedableRng;
use rand_pcg::Pcg32;

/// A 64-byte command, as the benchmark asks.
type Command = [u8; 64];

struct Cluster {
    ids: Vec<NodeId>,
    replicas: Vec<Replica<Command, Pcg32>>,
    queue: VecDeque<(NodeId, NodeId, Message<Command>)>,
    leader: usize,
    /// Commands the leader applied (its clients' answers).
    applied: u64,
}

impl Cluster {
    fn new(quorum: QuorumSpec, count: u64) -> Cluster {
        let ids: Vec<NodeId> = (1..=count).map(NodeId).collect();
        let members = Arc::new(Members::new(ids.clone(), quorum).expect("members"));
        let replicas = ids
            .iter()
            .map(|&id| {
                let rng = Pcg32::seed_from_u64(id.0);
                Replica::new(id, members.clone(), Options::default(), rng).expect("replica")
            })
            .collect();
        let mut cluster = Cluster {
            ids,
            replicas,
            queue: VecDeque::new(),
            leader: 0,
            applied: 0,
        };
        cluster.elect();
        cluster
    }

    fn elect(&mut self) {
        for _ in 0..1000 {
            for i in 0..self.replicas.len() {
                let actions = self.replicas[i].tick();
                self.carry_out(i, actions);
            }
            self.deliver_all();
            if let Some(i) = self
                .replicas
                .iter()
                .position(|r| r.role() == RoleKind::Leader)
            {
                self.leader = i;
                return;
            }
        }
        panic!("no leader");
    }

    fn carry_out(&mut self, i: usize, actions: Vec<Action<Command>>) {
        let from = self.ids[i];
        for action in actions {
            match action {
                Action::Send { to, message } => self.queue.push_back((from, to, message)),
                Action::Apply { .. } if i == self.leader => self.applied += 1,
                _ => {}
            }
        }
    }

    fn deliver_all(&mut self) {
        while let Some((from, to, message)) = self.queue.pop_front() {
            let i = (to.0 - 1) as usize;
            let actions = self.replicas[i].step(from, message);
            self.carry_out(i, actions);
        }
    }

    fn propose(&mut self, command: Command) {
        let actions = self.replicas[self.leader].propose(command).expect("leader");
        self.carry_out(self.leader, actions);
    }

    /// Proposes `count` commands at once (as many clients would) and runs the cluster
    /// until the leader applied them all.
    fn commit(&mut self, count: u64) {
        let target = self.applied + count;
        for k in 0..count {
            let mut command = [0u8; 64];
            command[..8].copy_from_slice(&k.to_le_bytes());
            self.propose(command);
        }
        while self.applied < target {
            self.deliver_all();
        }
    }

    /// The application snapshots, so the logs stay small over millions of commands.
    fn compact(&mut self) {
        for i in 0..self.replicas.len() {
            let applied = self.replicas[i].applied();
            let actions = self.replicas[i].snapshot_taken(applied, Vec::new().into());
            self.carry_out(i, actions);
        }
    }
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("replica");
    const BURST: u64 = 10_000;
    group.throughput(Throughput::Elements(BURST));
    for (name, quorum, count) in [
        ("majority-3", QuorumSpec::Majority, 3),
        ("grid-2x2", QuorumSpec::Grid { rows: 2, cols: 2 }, 4),
    ] {
        let mut cluster = Cluster::new(quorum, count);
        group.bench_function(format!("commit-10k-64B/{name}"), |b| {
            // Compacting every burst is part of the cost: the application snapshots too.
            b.iter(|| {
                cluster.commit(BURST);
                cluster.compact();
            });
        });
    }
    group.finish();
}

fn round_trip(c: &mut Criterion) {
    let mut cluster = Cluster::new(QuorumSpec::Majority, 3);
    let mut done = 0u64;
    c.bench_function("replica/round-trip-1-command/majority-3", |b| {
        b.iter(|| {
            cluster.commit(1);
            done += 1;
            if done % 100_000 == 0 {
                cluster.compact();
            }
        });
    });
}

criterion_group!(benches, throughput, round_trip);
criterion_main!(benches);
