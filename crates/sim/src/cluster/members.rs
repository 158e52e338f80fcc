//! The shell around each member: its inputs at the current virtual time, and its outputs
//! carried out on the simulated disk and network, as the server's core carries them out.

use super::*;

impl World {
    /// Gives the member of `node` (if it is up) an input at the current time, then
    /// carries out its outputs and checks what it applied.
    pub(super) fn with_member(&mut self, node: usize, input: impl FnOnce(&mut Running, Duration)) {
        let now = Duration::from_micros(self.now);
        let Some(member) = self.nodes[node].member.as_mut() else {
            return;
        };
        input(member, now);
        let outputs = member.take_outputs();
        let leads = member.replica().role() == RoleKind::Leader;
        if leads && !self.nodes[node].was_leader {
            self.stats.elections += 1;
            self.probe_election();
            self.note(node, "elected");
        }
        self.nodes[node].was_leader = leads;
        self.check_applied(node);
        self.note_expiries(node);
        for output in outputs {
            self.carry_out(node, output);
        }
        self.settle_watchers(node);
    }

    /// Carries out one of a member's outputs, as the server's core does with real I/O.
    pub(super) fn carry_out(&mut self, node: usize, output: NodeOutput<Watched, Waiter>) {
        match output {
            NodeOutput::Persist { tag, writes } => self.persist(node, tag, writes),
            NodeOutput::Send { to, message } => self.send(node, to, message),
            NodeOutput::SendSnapshot(action) => {
                if let Some((to, chunks)) = action.snapshot_chunks() {
                    // In memory, a chunk always reads.
                    for message in chunks.flatten() {
                        self.send(node, to, message);
                    }
                }
            }
            NodeOutput::Answer { waiter, output } if waiter.client == KEEPER => {
                self.keeper_answer(waiter.seq, Some(workload::outcome(&output)));
            }
            NodeOutput::Refuse { waiter, .. } if waiter.client == KEEPER => {
                self.keeper_answer(waiter.seq, None);
            }
            // A read that went through the log (a barrier) is answered when applied.
            NodeOutput::Answer {
                waiter,
                output: Ok(Applied::Read(view)),
            } => self.read_ready(node, waiter, &view),
            NodeOutput::Answer { waiter, output } => {
                let outcome = workload::outcome(&output);
                self.answer(waiter.client, waiter.seq, Answer::Wrote(outcome));
            }
            NodeOutput::ReadReady { waiter, view } => self.read_ready(node, waiter, &view),
            NodeOutput::Refuse { waiter, failure } => {
                self.answer(waiter.client, waiter.seq, Answer::Failed(failure));
            }
            NodeOutput::Installed { .. } => {
                // The store was replaced: every watcher catches up from its history.
                self.nodes[node].watchers.resync_all();
                self.note(node, "install-snapshot");
            }
            NodeOutput::TakeSnapshot { slot } => {
                self.stats.snapshots += 1;
                let Some(member) = self.nodes[node].member.as_ref() else {
                    return;
                };
                let data = SnapshotData::from(member.machine().inner.store().snapshot());
                self.with_member(node, |m, now| m.snapshot_taken(slot, Some(data), now));
            }
        }
    }

    /// A read is served from the view it was released with.
    pub(super) fn read_ready(&mut self, node: usize, waiter: Waiter, view: &View) {
        let value = workload::get(&view.store, waiter.key);
        let event = TraceEvent {
            time: self.now,
            node: self.nodes[node].id.0,
            what: "read-ready",
            id: None,
            message: None,
            ballot: self.nodes[node]
                .member
                .as_ref()
                .map(|m| m.replica().promised()),
            slot: None,
            peer: Some(waiter.client as u64),
        };
        self.record(event);
        self.answer(waiter.client, waiter.seq, Answer::Value(value));
    }

    /// Writes submission `tag` to the disk; it is durable once the disk's sync of it
    /// completes, after every earlier one (one disk, in order). Group commit, as the
    /// server's storage does it: while a sync is under way, every submission that arrives
    /// goes out together in the next one, so a slow spell delays writes by a sync or two
    /// rather than leaving a backlog of one sync per submission.
    pub(super) fn persist(&mut self, node: usize, tag: u64, writes: Vec<DiskWrite<Payload>>) {
        let slow = self.nodes[node].slow_disk;
        let latency = self.random(50, 500) * if slow { 20 } else { 1 };
        let now = self.now;
        if self.tracing.is_some() {
            self.trace_votes(node, &writes);
        }
        let n = &mut self.nodes[node];
        if let Err(error) = n.disk.append(writes) {
            let problem = format!("n{}: storage refused a write: {error}", n.id.0);
            self.failures.push(Failure::Liveness(problem));
        }
        if let Some(next) = n.next_sync_ends.filter(|_| n.sync_ends <= now) {
            // The next sync started when the one before it ended.
            n.sync_ends = next;
            n.next_sync_ends = None;
        }
        let done = if now < n.sync_ends {
            *n.next_sync_ends.get_or_insert(n.sync_ends + latency)
        } else {
            n.sync_ends = now + latency;
            n.sync_ends
        };
        let incarnation = n.incarnation;
        let event = Event::Synced {
            node,
            incarnation,
            tag,
        };
        self.schedule(done - self.now, event);
    }

    pub(super) fn synced(&mut self, node: usize, incarnation: u64, tag: u64) {
        let n = &mut self.nodes[node];
        if n.incarnation != incarnation || n.member.is_none() {
            return;
        }
        n.disk.sync();
        if self.tracing.is_some() {
            self.trace_synced(node);
        }
        self.with_member(node, |m, now| m.durable(tag, now));
    }

    pub(super) fn send(&mut self, from: usize, to: NodeId, message: Message<Payload>) {
        let Some(to) = self.node_of(to) else {
            return;
        };
        self.stats.messages += 1;
        self.messages_sent += 1;
        if to != from {
            self.probe_send(&message);
        }
        let id = self.messages_sent;
        let mut event = TraceEvent {
            time: self.now,
            node: self.nodes[from].id.0,
            what: "send",
            id: Some(id),
            message: Some(message.kind()),
            ballot: Some(message.ballot()),
            slot: slot_of(&message),
            peer: Some(self.nodes[to].id.0),
        };
        if to == from {
            // Local delivery: in order, never lost.
            self.record(event);
            let deliver = Event::Deliver {
                id,
                from,
                to,
                message,
            };
            return self.schedule(0, deliver);
        }
        if self.cut.contains(&(from, to)) {
            self.stats.lost += 1;
            self.record(event.clone());
            event.what = "drop";
            self.record(event);
            return;
        }
        let envelope = Envelope {
            id,
            from: self.nodes[from].id,
            to: self.nodes[to].id,
            message,
        };
        let fate = self.network.send(self.now, envelope, &mut self.rng);
        self.record(event.clone());
        match fate {
            Fate::Lost => {
                // Lost on the way: the drop follows its send, at the sender.
                self.stats.lost += 1;
                event.what = "drop";
                self.record(event);
            }
            Fate::Duplicated => self.stats.duplicated += 1,
            Fate::Delivered => {}
        }
    }
}
