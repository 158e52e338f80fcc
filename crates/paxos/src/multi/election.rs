//! Leader election's timers, kept beside the log as their own small state machine (as
//! OmniPaxos keeps ballot leader election apart from its log): when to suspect the leader,
//! and how long a candidate that lost waits before it tries again.

use rand_core::RngCore;

/// Ticks since the leader was last heard from, against a randomized timeout.
///
/// The timeout is drawn from `[base, base + base·2^failures)`: random so that replicas
/// that lose the leader together rarely campaign together, and widening after each failed
/// campaign (capped) so that duelling candidates spread out, as exponential backoff does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Election {
    base: u32,
    failures: u32,
    elapsed: u32,
    timeout: u32,
}

/// The backoff stops widening after this many failed campaigns in a row.
const WIDEN_MAX: u32 = 4;

impl Election {
    pub(crate) fn new(base: u32, rng: &mut impl RngCore) -> Election {
        let mut election = Election {
            base,
            failures: 0,
            elapsed: 0,
            timeout: base,
        };
        election.restart(rng);
        election
    }

    /// A leader (or a candidate we promised) was heard from: start over.
    pub(crate) fn heard_from_leader(&mut self, rng: &mut impl RngCore) {
        self.failures = 0;
        self.restart(rng);
    }

    /// A campaign failed or was started: wait a new, wider random timeout.
    pub(crate) fn campaign_started(&mut self, rng: &mut impl RngCore) {
        self.failures = (self.failures + 1).min(WIDEN_MAX);
        self.restart(rng);
    }

    /// The leader looks gone (its connection closed): campaign soon, after a short random
    /// wait rather than a whole timeout. The wait is several heartbeats long, so a leader
    /// that is alive (it only reconnected) is heard from first and cancels it.
    pub(crate) fn suspect(&mut self, rng: &mut impl RngCore) {
        let quick = (self.base / 3).max(2);
        let wait = quick + rng.next_u32() % quick;
        if wait < self.timeout.saturating_sub(self.elapsed) {
            self.elapsed = 0;
            self.timeout = wait;
        }
    }

    /// One tick; true when the timeout expired (and the timer restarted).
    pub(crate) fn tick(&mut self) -> bool {
        self.elapsed += 1;
        self.elapsed >= self.timeout
    }

    fn restart(&mut self, rng: &mut impl RngCore) {
        let span = self.base.saturating_mul(1 << self.failures).max(1);
        self.elapsed = 0;
        self.timeout = self.base.saturating_add(rng.next_u32() % span);
    }

    /// Sets the timer so that the next tick expires it, or so that it does not: for the
    /// model check, which decides when timers fire (`Replica::tick_with`).
    #[cfg(test)]
    pub(crate) fn expire_at_next_tick(&mut self, expire: bool) {
        self.elapsed = if expire {
            self.timeout.saturating_sub(1)
        } else {
            0
        };
    }

    #[cfg(test)]
    pub(crate) fn timeout(&self) -> u32 {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn timeouts_are_random_within_a_window_that_widens_after_failures() {
        let mut rng = rand_pcg::Pcg32::seed_from_u64(1);
        let mut election = Election::new(10, &mut rng);
        let mut first = Vec::new();
        for _ in 0..200 {
            election.heard_from_leader(&mut rng);
            first.push(election.timeout());
        }
        assert!(first.iter().all(|&t| (10..20).contains(&t)));
        // A suspected leader shortens the wait to [base/3, 2·base/3), never lengthens it.
        for _ in 0..50 {
            election.heard_from_leader(&mut rng);
            election.suspect(&mut rng);
            assert!(
                (3..6).contains(&election.timeout()),
                "{}",
                election.timeout()
            );
            election.suspect(&mut rng);
            assert!(election.timeout() < 6);
        }
        assert!(first.iter().min() < first.iter().max(), "not random");
        for _ in 0..10 {
            election.campaign_started(&mut rng);
        }
        let wide: Vec<u32> = (0..200)
            .map(|_| {
                election.restart(&mut rng);
                election.timeout()
            })
            .collect();
        assert!(wide.iter().all(|&t| (10..170).contains(&t)));
        assert!(wide.iter().any(|&t| t >= 20), "backoff did not widen");
    }

    #[test]
    fn expires_after_its_timeout() {
        let mut rng = rand_pcg::Pcg32::seed_from_u64(2);
        let mut election = Election::new(5, &mut rng);
        let timeout = election.timeout();
        for _ in 1..timeout {
            assert!(!election.tick());
        }
        assert!(election.tick());
    }
}
