//! Faults: partitions, crashes and restarts (through the storage that survived), pauses,
//! slow disks, and the heal at the end of the faulty phase.

use super::*;

impl World {
    pub(super) fn fault_tick(&mut self) {
        if !self.faults_on {
            return;
        }
        self.schedule(TICK_US, Event::FaultTick);
        let f = self.options.faults;
        let n = self.nodes.len();
        if self.chance(f.partition) && self.cut.is_empty() && n > 1 {
            self.start_partition();
        }
        if self.chance(f.crash) {
            let node = self.pick(n);
            self.crash(node);
        }
        if self.chance(f.pause) {
            let node = self.pick(n);
            if self.nodes[node].member.is_some() && !self.nodes[node].paused {
                self.stats.pauses += 1;
                self.nodes[node].paused = true;
                self.note(node, "pause");
                self.fault_starts("pause", node, &[node], None);
                let resume = self.random(5, 150) * TICK_US;
                self.schedule(resume, Event::Resume(node));
            }
        }
        if self.chance(f.membership) {
            self.change_membership();
        }
        if self.chance(f.slow_disk) {
            let node = self.pick(n);
            self.stats.slow_disks += 1;
            self.nodes[node].slow_disk = true;
            self.fault_starts("slow-disk", node, &[node], None);
            let recover = self.random(20, 300) * TICK_US;
            self.schedule(recover, Event::DiskRecovers(node));
        }
    }

    pub(super) fn start_partition(&mut self) {
        let n = self.nodes.len();
        self.partition += 1;
        self.stats.partitions += 1;
        if self.rng.next_u32() % 4 == 0 {
            // One-way: a → b only.
            let a = self.pick(n);
            let b = (a + 1 + self.pick(n - 1)) % n;
            self.cut.insert((a, b));
        } else {
            let side: Vec<bool> = (0..n).map(|_| self.rng.next_u32() % 2 == 0).collect();
            for a in 0..n {
                for b in 0..n {
                    if side[a] != side[b] {
                        self.cut.insert((a, b));
                    }
                }
            }
        }
        let heal = self.random(20, 400) * TICK_US;
        let id = self.partition;
        self.partition_starts(id);
        self.schedule(heal, Event::HealPartition(id));
    }

    pub(super) fn crash(&mut self, node: usize) {
        let downtime = self.random(10, 300) * TICK_US;
        self.crash_for(node, downtime);
    }

    /// `node` crashes and restarts `downtime` µs later.
    pub(super) fn crash_for(&mut self, node: usize, downtime: u64) {
        if self.nodes[node].member.is_none() {
            return;
        }
        self.stats.crashes += 1;
        self.note(node, "crash");
        self.fault_starts("crash", node, &[node], None);
        // Of the bytes no sync covered, a random prefix reached the disk (half the time
        // none): it may end inside a record, a torn write that recovery must cut off.
        let unsynced = self.nodes[node].disk.unsynced() as u64;
        let reached = if unsynced > 0 && self.chance(0.5) {
            self.random(0, unsynced)
        } else {
            0
        };
        self.nodes[node].disk.crash(index(reached));
        // Votes no sync covered never count towards a chosen moment (even if some of
        // their bytes survived: the moment would then come at a later vote's sync).
        self.tracing_mut(|t| t.forget_unsynced(node));
        self.nodes[node].crash();
        // Its watch streams close with it.
        self.nodes[node].watchers = watches::new_watchers(&self.options.controls);
        self.close_connections(node);
        self.schedule(downtime, Event::Restart(node));
    }

    /// `node`'s process is gone: its connections close, and each peer hears of it after
    /// a network delay.
    pub(super) fn close_connections(&mut self, node: usize) {
        for other in (0..self.nodes.len()).filter(|&other| other != node) {
            let delay = self.random(50, 500);
            self.schedule(
                delay,
                Event::PeerLost {
                    node: other,
                    peer: node,
                },
            );
        }
    }

    pub(super) fn restart(&mut self, node: usize) {
        if self.nodes[node].member.is_some() || self.nodes[node].standing != Standing::Member {
            return;
        }
        self.boot(node);
        self.note(node, "restart");
        self.fault_ends("crash", node);
    }

    pub(super) fn boot(&mut self, node: usize) {
        let seed = self.rng.next_u64();
        let first_id = self.rng.next_u64() >> 1;
        let n = &mut self.nodes[node];
        let mut durable: Durable<Payload> = match n.disk.recover() {
            Ok(durable) => durable,
            Err(error) => {
                let problem = format!("n{} cannot recover its storage: {error}", n.id.0);
                self.failures.push(Failure::Liveness(problem));
                return;
            }
        };
        if self.options.controls.forget_promise_on_restart {
            durable.promised = Ballot::ZERO;
        }
        let (index, data) = durable
            .snapshot
            .clone()
            .unwrap_or((0, SnapshotData::from(Vec::new())));
        let mut machine = match Watched::restore(&data.to_vec().unwrap_or_default(), CLUSTER_ID) {
            Ok(machine) => machine,
            Err(error) => {
                let problem = format!("n{}: its snapshot does not restore: {error}", n.id.0);
                self.failures.push(Failure::Liveness(problem));
                return;
            }
        };
        let options = self.replica_options.clone();
        let rng = Pcg64::seed_from_u64(seed);
        let replica = match &n.told {
            Some(told) => Replica::join(n.id, told.clone(), options, rng, durable),
            None => Replica::restart(n.id, self.members.clone(), options, rng, durable),
        };
        let replica = match replica {
            Ok(replica) => replica,
            Err(e) => {
                let problem = format!("n{} cannot restart: {e}", n.id.0);
                self.failures.push(Failure::Liveness(problem));
                return;
            }
        };
        let node_options = NodeOptions {
            request_timeout: Duration::from_micros(REQUEST_TIMEOUT_TICKS * TICK_US),
            parked_max: PARKED_MAX,
            snapshot_entries: SNAPSHOT_EVERY,
        };
        machine.drifts = self.options.controls.first_member_drifts && node == 0;
        #[allow(unused_mut)]
        let mut member = Member::new(replica, machine, index, first_id, node_options);
        #[cfg(test)]
        self.options.controls.break_member(&mut member);
        n.member = Some(member);
        let period = n.tick_us;
        self.schedule(period, Event::Tick(node));
    }

    pub(super) fn resume(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        if !n.paused {
            return;
        }
        n.paused = false;
        self.note(node, "resume");
        self.fault_ends("pause", node);
        // The clock ran on while the process stood still: its ticks come first.
        let missed = std::mem::take(&mut self.nodes[node].missed_ticks);
        for _ in 0..missed {
            self.with_member(node, |m, now| m.tick(now));
        }
        let held = std::mem::take(&mut self.nodes[node].held);
        for event in held {
            self.handle(event);
        }
    }

    pub(super) fn heal_all(&mut self) {
        self.faults_on = false;
        let calm = self.options.faults.network(false);
        if let Err(problem) = self.network.set_faults(calm) {
            self.failures.push(Failure::Liveness(problem));
        }
        self.cut.clear();
        self.fault_ends("partition", index(self.partition));
        for node in 0..self.nodes.len() {
            self.nodes[node].slow_disk = false;
            self.fault_ends("slow-disk", node);
            let member = self.nodes[node].standing == Standing::Member;
            if member && self.nodes[node].member.is_none() {
                self.boot(node);
                self.note(node, "restart");
                self.fault_ends("crash", node);
            }
            if self.nodes[node].paused {
                self.resume(node);
            }
        }
        for client in 0..self.clients.len() {
            if self.clients[client].pending.is_none() {
                self.schedule(0, Event::ClientStart(client));
            }
        }
    }
}
