//! The lease keeper: one more client, beside the linearizability checker's, that grants
//! leases, attaches a key to each, and keeps it alive at random intervals, some longer
//! than the TTL, so that leases expire under every fault. Its check is the guarantee an
//! etcd client builds on: a lease whose grant or keep-alive was answered with a TTL
//! outlives that request by the TTL. It never expires, on any member, sooner than TTL
//! after the request was sent (the leader's clock starts at the apply, which is later).

use super::*;

/// The keeper's place in [`Waiter::client`].
pub(super) const KEEPER: usize = usize::MAX;

/// The keeper's state.
#[derive(Debug, Default)]
pub(super) struct Keeper {
    seq: u64,
    /// What is outstanding, and when it was sent.
    pending: Option<(LeaseAsk, u64)>,
    target: usize,
    /// The TTL of the lease kept, in seconds.
    ttl_s: u64,
    /// Requests answered with a live lease: (lease, sent at in µs, TTL in seconds).
    pub(super) renewals: Vec<(i64, u64, i64)>,
    /// Each lease's first expiry applied by any member, in µs.
    pub(super) expired: HashMap<i64, u64>,
}

/// How long the keeper waits for an answer before it tries again elsewhere.
const KEEPER_TIMEOUT_TICKS: u64 = 100;

impl World {
    pub(super) fn keeper_ask(&mut self, ask: LeaseAsk) {
        let keeper = &mut self.keeper;
        keeper.seq += 1;
        keeper.pending = Some((ask, self.now));
        let (node, seq) = (keeper.target, keeper.seq);
        let delay = self.random(
            self.options.faults.delay_us.0,
            self.options.faults.delay_us.1,
        );
        self.schedule(delay, Event::KeeperRequest { node, seq, ask });
        self.schedule(KEEPER_TIMEOUT_TICKS * TICK_US, Event::KeeperTimeout(seq));
    }

    pub(super) fn keeper_request(&mut self, node: usize, seq: u64, ask: LeaseAsk) {
        let waiter = Waiter {
            client: KEEPER,
            seq,
            key: 0,
        };
        self.with_member(node, |m, now| {
            m.propose(workload::lease_op(ask), waiter, now);
        });
    }

    /// A member's answer (`None`: refused), on its way back to the keeper.
    pub(super) fn keeper_answer(&mut self, seq: u64, outcome: Option<Outcome>) {
        let faults = self.options.faults;
        if self.faults_on && self.chance(faults.loss) {
            return;
        }
        let delay = self.random(faults.delay_us.0, faults.delay_us.1);
        self.schedule(delay, Event::KeeperReply { seq, outcome });
    }

    pub(super) fn keeper_reply(&mut self, seq: u64, outcome: Option<Outcome>) {
        let keeper = &mut self.keeper;
        let Some((ask, sent)) = keeper.pending.filter(|_| keeper.seq == seq) else {
            return; // Given up on already.
        };
        keeper.pending = None;
        let next = match (ask, outcome) {
            (LeaseAsk::Grant, Some(Outcome::Granted { lease, ttl })) => {
                keeper.renewals.push((lease, sent, ttl));
                keeper.ttl_s = u64::try_from(ttl).unwrap_or(1);
                Some((0, LeaseAsk::Attach(lease)))
            }
            (LeaseAsk::Attach(lease), Some(Outcome::Done)) => Some((1, LeaseAsk::KeepAlive(lease))),
            (LeaseAsk::KeepAlive(lease), Some(Outcome::Alive(ttl))) if ttl > 0 => {
                keeper.renewals.push((lease, sent, ttl));
                Some((1, LeaseAsk::KeepAlive(lease)))
            }
            // Expired (a keep-alive answered with TTL 0, an attach to a lease gone): a
            // new lease.
            (_, Some(_)) => Some((2, LeaseAsk::Grant)),
            (_, None) => None,
        };
        match next {
            Some((0, ask)) => self.keeper_ask(ask),
            Some((1, ask)) => {
                // Mostly within the TTL, sometimes past it: between a tenth of a TTL
                // and two.
                let ttl_ms = self.keeper.ttl_s.max(1) * 1_000;
                let wait = self.random(ttl_ms / 10, ttl_ms * 2) * TICK_US;
                self.schedule(wait, Event::KeeperRetry(ask));
            }
            Some((_, ask)) => self.schedule(10 * TICK_US, Event::KeeperRetry(ask)),
            None => self.keeper_elsewhere(ask),
        }
    }

    pub(super) fn keeper_timeout(&mut self, seq: u64) {
        let keeper = &mut self.keeper;
        let Some((ask, _)) = keeper.pending.filter(|_| keeper.seq == seq) else {
            return;
        };
        keeper.pending = None;
        self.keeper_elsewhere(ask);
    }

    /// Asks again, at the next member, after a pause.
    fn keeper_elsewhere(&mut self, ask: LeaseAsk) {
        self.keeper.target = self.next_member(self.keeper.target);
        self.schedule(10 * TICK_US, Event::KeeperRetry(ask));
    }

    /// Notes the leases member `node` just expired.
    pub(super) fn note_expiries(&mut self, node: usize) {
        let Some(member) = self.nodes[node].member.as_mut() else {
            return;
        };
        let expired = std::mem::take(&mut member.machine_mut().expired);
        for (lease, at) in expired {
            let at = u64::try_from(at.as_micros()).unwrap_or(u64::MAX);
            self.keeper.expired.entry(lease).or_insert(at);
        }
    }

    /// No lease expired sooner than its TTL after a request that was answered with it.
    pub(super) fn check_leases(&mut self) {
        for &(lease, sent, ttl) in &self.keeper.renewals {
            let Some(&expired) = self.keeper.expired.get(&lease) else {
                continue;
            };
            let ttl_us = u64::try_from(ttl).unwrap_or(0) * 1_000_000;
            if expired < sent + ttl_us {
                self.failures.push(Failure::LeaseExpiredEarly {
                    lease,
                    sent_us: sent,
                    ttl_s: ttl,
                    expired_us: expired,
                });
                return;
            }
        }
    }
}
