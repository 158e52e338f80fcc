//! The checkers that watch members as they apply (agreement, states) and the ones run
//! on a finished run (truthful errors, final states).

use super::*;

impl World {
    /// No write a node answered as not applied may be chosen, then or later: a client
    /// that took the answer at its word and retried would have written twice.
    pub(super) fn check_truthfulness(&mut self) {
        let mut slots: Vec<&Slot> = self.chosen.keys().collect();
        slots.sort_unstable();
        for &slot in slots {
            let Some((Entry::Command(payload), _)) = self.chosen.get(&slot) else {
                continue;
            };
            let Ok(command) = Command::decode(&payload.0[..]) else {
                continue;
            };
            let Some(&(client, seq, write)) = self.attempts.get(&(command.origin, command.id))
            else {
                continue;
            };
            if let Some(&answer) = self.not_applied.get(&(client, seq)) {
                self.failures.push(Failure::Truthfulness {
                    slot,
                    request: format!("client {client} attempt {seq}: {write:?}"),
                    answer,
                });
            }
        }
    }

    /// Members that end at the same applied slot hold the same membership: the epoch,
    /// the active configurations and so the current one (a member still replaying over a
    /// configuration it was told of is not compared).
    pub(super) fn check_final_memberships(&mut self) {
        let mut seen: HashMap<Slot, String> = HashMap::new();
        for n in &self.nodes {
            let Some(member) = &n.member else { continue };
            let membership = member.replica().membership();
            if !membership.is_settled() {
                continue;
            }
            let configs: Vec<_> = membership.active().map(|(e, m)| (e, m.clone())).collect();
            let mine = format!("n{} has {configs:?}", n.id.0);
            let slot = member.applied();
            match seen.get(&slot) {
                Some(first)
                    if first.split_once(" has ").map(|f| f.1)
                        != mine.split_once(" has ").map(|m| m.1) =>
                {
                    self.failures.push(Failure::Membership {
                        slot,
                        first: first.clone(),
                        second: mine,
                    });
                }
                Some(_) => {}
                None => {
                    seen.insert(slot, mine);
                }
            }
        }
    }

    /// Members that end at the same applied slot hold the same state (etcd's HashKV).
    pub(super) fn check_final_states(&mut self) {
        let mut seen: HashMap<Slot, (u64, u64)> = HashMap::new();
        for n in &self.nodes {
            let Some(member) = &n.member else { continue };
            let hash = node::StateMachine::hash(member.machine());
            let mine = (n.id.0, hash);
            match seen.get(&member.applied()) {
                Some(&first) if first.1 != hash => self.failures.push(Failure::Divergence {
                    slot: member.applied(),
                    first,
                    second: mine,
                }),
                Some(_) => {}
                None => {
                    seen.insert(member.applied(), mine);
                }
            }
        }
    }

    /// What the member of `node` applied since the last look: every replica must apply
    /// the same entry at a slot, and hold the same state after it.
    pub(super) fn check_applied(&mut self, node: usize) {
        let id = self.nodes[node].id.0;
        let Some(member) = self.nodes[node].member.as_mut() else {
            return;
        };
        let machine = member.machine_mut();
        let applied = std::mem::take(&mut machine.applied);
        let hashes = std::mem::take(&mut machine.hashes);
        let refused = std::mem::take(&mut machine.refused);
        for (slot, reason) in refused {
            let problem = format!("n{id} refused the write at slot {slot}: {reason}");
            self.failures.push(Failure::Liveness(problem));
        }
        for (slot, entry) in applied {
            self.agree(id, slot, entry);
        }
        for (slot, hash) in hashes {
            match self.hashes.get(&slot) {
                Some(&first) if first.1 != hash && !self.disagreed.contains(&slot) => {
                    self.disagreed.insert(slot);
                    self.failures.push(Failure::Divergence {
                        slot,
                        first,
                        second: (id, hash),
                    });
                }
                Some(_) => {}
                None => {
                    self.hashes.insert(slot, (id, hash));
                }
            }
        }
    }

    pub(super) fn agree(&mut self, id: u64, slot: Slot, entry: Entry<Payload>) {
        match self.chosen.get(&slot) {
            Some((first, by)) if *first != entry && !self.disagreed.contains(&slot) => {
                self.disagreed.insert(slot);
                self.failures.push(Failure::Agreement {
                    slot,
                    first: format!("{} (applied by n{by})", describe(first)),
                    second: format!("{} (applied by n{id})", describe(&entry)),
                });
            }
            Some(_) => {}
            None => {
                self.chosen.insert(slot, (entry, id));
            }
        }
        let event = TraceEvent {
            time: self.now,
            node: id,
            what: "apply",
            id: None,
            message: None,
            ballot: None,
            slot: Some(slot),
            peer: None,
        };
        self.record(event);
    }
}
