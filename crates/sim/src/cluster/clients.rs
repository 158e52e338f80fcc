//! The simulated clients: what they ask, where, and what they make of the answers.

use super::*;

impl World {
    pub(super) fn client_start(&mut self, client: usize) {
        if !self.faults_on {
            return self.client_final(client);
        }
        let key = self.pick_key();
        let ask = match self.rng.next_u32() % 10 {
            0..=3 => Ask::Get(key),
            4..=6 => Ask::Write(Write::Put {
                key,
                value: self.fresh_value(),
            }),
            7..=8 => {
                let expect = self.recent_value(key);
                Ask::Write(Write::Cas {
                    key,
                    expect,
                    value: self.fresh_value(),
                })
            }
            _ => Ask::Write(Write::Delete { key }),
        };
        self.client_begin(client, ask);
    }

    /// After the heal: one last write per client, then (client 0) a read of every key.
    /// They are the liveness check: a timed-out one is tried again, and all must be done
    /// before the deadline.
    pub(super) fn client_final(&mut self, client: usize) {
        let step = self.clients[client].finals;
        let keys = u64::from(self.options.keys);
        let ask = if step == 0 {
            Ask::Write(Write::Put {
                key: key_of(client as u64 % u64::from(self.options.keys)),
                value: self.fresh_value(),
            })
        } else if client == 0 && step <= keys {
            Ask::Get(key_of(step - 1))
        } else {
            return;
        };
        self.client_begin(client, ask);
    }

    pub(super) fn client_begin(&mut self, client: usize, ask: Ask) {
        let c = &mut self.clients[client];
        c.seq += 1;
        c.final_op = !self.faults_on;
        let seq = c.seq;
        c.pending = Some((ask, self.now));
        c.history_index = self.history.len();
        let (key, input) = match ask {
            Ask::Get(key) => (key, Input::Get),
            Ask::Write(Write::Put { key, value }) => (key, Input::Put(value_name(value))),
            Ask::Write(Write::Cas { key, expect, value }) => (
                key,
                Input::Cas {
                    expect: expect.map(value_name),
                    value: value_name(value),
                },
            ),
            Ask::Write(Write::Delete { key }) => (key, Input::Delete),
        };
        self.history.push(Operation {
            client: client as u64,
            key: format!("k{key}"),
            input,
            output: Output::Unknown,
            call: self.now,
            ret: None,
        });
        let timeout = OP_TIMEOUT_TICKS * TICK_US;
        self.schedule(timeout, Event::ClientTimeout { client, seq });
        self.client_send(client, seq);
    }

    pub(super) fn client_send(&mut self, client: usize, seq: u64) {
        let c = &self.clients[client];
        let Some((ask, _)) = c.pending.filter(|_| c.seq == seq) else {
            return;
        };
        let node = c.target;
        let delay = self.random(
            self.options.faults.delay_us.0,
            self.options.faults.delay_us.1,
        );
        let event = Event::Request {
            node,
            client,
            seq,
            ask,
        };
        self.schedule(delay, event);
    }

    pub(super) fn request(&mut self, node: usize, client: usize, seq: u64, ask: Ask) {
        let id = self.nodes[node].id.0;
        match ask {
            Ask::Get(key) => {
                let waiter = Waiter { client, seq, key };
                self.with_member(node, |m, now| m.read(waiter, now));
            }
            Ask::Write(write) => {
                let key = match write {
                    Write::Put { key, .. } | Write::Cas { key, .. } | Write::Delete { key } => key,
                };
                let waiter = Waiter { client, seq, key };
                let mut proposed = None;
                self.with_member(node, |m, now| {
                    proposed = Some(m.propose(workload::op(write), waiter, now));
                });
                // Crashed: no member took it, and the client times out.
                if let Some(request) = proposed {
                    let attempt = (client as u64, seq, write);
                    self.attempts.insert((id, request), attempt);
                }
            }
        }
    }

    pub(super) fn answer(&mut self, client: usize, seq: u64, answer: Answer) {
        // Recorded where the node says it, whether or not the client ever hears it.
        let write = matches!(self.clients[client].pending, Some((Ask::Write(_), _)));
        if let Answer::Failed(failure) = &answer {
            if failure.not_applied() && write {
                self.not_applied
                    .insert((client as u64, seq), failure.message());
                self.stats.not_applied += 1;
            }
        }
        let faults = self.options.faults;
        if self.faults_on && self.chance(faults.loss) {
            return;
        }
        let delay = self.random(faults.delay_us.0, faults.delay_us.1);
        self.schedule(
            delay,
            Event::Reply {
                client,
                seq,
                answer,
            },
        );
    }

    pub(super) fn reply(&mut self, client: usize, seq: u64, answer: Answer) {
        let c = &mut self.clients[client];
        if c.seq != seq || c.pending.is_none() {
            return; // An answer to an operation already given up on.
        }
        let output = match answer {
            Answer::Failed(failure) if failure.not_applied() => {
                // Taken at its word: the write did not happen, so the client tries it
                // again, as a new attempt, elsewhere.
                c.seq += 1;
                let target = c.target;
                let next = self.next_member(target);
                let c = &mut self.clients[client];
                c.target = next;
                let retry = c.seq;
                let deadline = c
                    .pending
                    .map_or(self.now, |(_, called)| called + OP_TIMEOUT_TICKS * TICK_US);
                let left = deadline.saturating_sub(self.now);
                self.schedule(left, Event::ClientTimeout { client, seq: retry });
                let backoff = 2 * TICK_US;
                return self.schedule(backoff, Event::ClientRetry { client, seq: retry });
            }
            // A time-out: the outcome is unknown, as if the client had given up itself.
            Answer::Failed(_) => return self.client_timeout(client, seq),
            Answer::Value(value) => Output::Get(value.map(value_name)),
            Answer::Wrote(Outcome::Done) => Output::Done,
            Answer::Wrote(Outcome::Cas(ok)) => Output::Cas(ok),
            // Reported as a failure where it happened; the client cannot tell (a lease's
            // answer never reaches a client: the keeper's go to the keeper).
            Answer::Wrote(Outcome::Refused(_) | Outcome::Granted { .. } | Outcome::Alive(_)) => {
                Output::Unknown
            }
        };
        c.pending = None;
        if c.final_op {
            c.finals += 1;
        }
        let op = &mut self.history[c.history_index];
        op.output = output;
        op.ret = Some(self.now);
        self.stats.ops_ok += 1;
        let think = self.random(0, 2 * TICK_US);
        self.schedule(think, Event::ClientStart(client));
    }

    pub(super) fn client_timeout(&mut self, client: usize, seq: u64) {
        let c = &mut self.clients[client];
        if c.seq != seq || c.pending.is_none() {
            return;
        }
        c.pending = None;
        let target = c.target;
        self.clients[client].target = self.next_member(target);
        self.stats.ops_unknown += 1;
        self.schedule(0, Event::ClientStart(client));
    }

    pub(super) fn fresh_value(&mut self) -> Value {
        self.next_value += 1;
        self.next_value
    }

    /// A value the key may hold, so some compare-and-sets succeed.
    pub(super) fn recent_value(&mut self, key: Key) -> Option<Value> {
        let name = format!("k{key}");
        let last = self.history.iter().rev().find(|op| op.key == name);
        match last.map(|op| (&op.input, &op.output)) {
            Some((_, Output::Get(Some(v)))) | Some((Input::Put(v), _)) => {
                v.trim_start_matches('v').parse().ok()
            }
            _ => None,
        }
    }
}
