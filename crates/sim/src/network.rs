//! A simulated network: every message is lost, delivered, or delivered twice, each copy
//! after its own random delay, so messages also reorder. All randomness comes from the
//! caller's seeded generator, so a run is a function of its seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use paxos::NodeId;
use rand_core::RngCore;

/// Fault rates and delays of the simulated network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a delivered message is delivered twice.
    pub duplication: f64,
    /// Shortest delay, in ticks (at least 1: nothing arrives in the tick it was sent).
    pub delay_ticks_min: u64,
    /// Longest delay, in ticks.
    pub delay_ticks_max: u64,
}

impl Faults {
    /// A network that delivers everything once, one tick later.
    pub const NONE: Faults = Faults {
        loss: 0.0,
        duplication: 0.0,
        delay_ticks_min: 1,
        delay_ticks_max: 1,
    };

    /// Checks the rates and delays make sense; the error says which does not.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [("loss", self.loss), ("duplication", self.duplication)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!(
                    "{name} must be a probability between 0 and 1, not {p}"
                ));
            }
        }
        if self.loss >= 1.0 {
            return Err("loss 1 drops every message: nothing could ever be chosen".into());
        }
        let (min, max) = (self.delay_ticks_min, self.delay_ticks_max);
        if min == 0 || min > max || max > DELAY_TICKS_MAX {
            return Err(format!(
                "delays must satisfy 1 <= min <= max <= {DELAY_TICKS_MAX}, not {min}..{max}"
            ));
        }
        Ok(())
    }
}

/// The longest delay a run may ask for: far beyond any timeout, far below overflow.
pub const DELAY_TICKS_MAX: u64 = 1_000_000;

/// A message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope<M> {
    /// The message's id, given by the run that sends it: a duplicate keeps it, so a trace
    /// pairs every delivery with its send.
    pub id: u64,
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The message.
    pub message: M,
}

/// What became of a message handed to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It will never arrive.
    Lost,
    /// It will arrive once.
    Delivered,
    /// It will arrive twice, each copy with its own delay.
    Duplicated,
}

/// Messages in flight, ordered by arrival tick, then by send order.
#[derive(Debug)]
pub struct Network<M> {
    faults: Faults,
    in_flight: BinaryHeap<Scheduled<M>>,
    sequence: u64,
}

#[derive(Debug)]
struct Scheduled<M> {
    at: u64,
    sequence: u64,
    envelope: Envelope<M>,
}

impl<M> PartialEq for Scheduled<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}
impl<M> Eq for Scheduled<M> {}
impl<M> PartialOrd for Scheduled<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Scheduled<M> {
    /// Reversed: the heap's top is the earliest arrival.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.sequence).cmp(&(self.at, self.sequence))
    }
}

/// A uniform draw from `[0, 1)`.
pub fn chance(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl<M: Clone> Network<M> {
    /// An empty network with these faults.
    pub fn new(faults: Faults) -> Network<M> {
        Network {
            faults,
            in_flight: BinaryHeap::new(),
            sequence: 0,
        }
    }

    /// Hands `envelope` to the network at tick `now`; the network decides its fate.
    pub fn send(&mut self, now: u64, envelope: Envelope<M>, rng: &mut impl RngCore) -> Fate {
        if chance(rng) < self.faults.loss {
            return Fate::Lost;
        }
        let duplicated = chance(rng) < self.faults.duplication;
        if duplicated {
            self.schedule(now, envelope.clone(), rng);
        }
        self.schedule(now, envelope, rng);
        if duplicated {
            Fate::Duplicated
        } else {
            Fate::Delivered
        }
    }

    fn schedule(&mut self, now: u64, envelope: Envelope<M>, rng: &mut impl RngCore) {
        let spread = self.faults.delay_ticks_max - self.faults.delay_ticks_min + 1;
        let at = now + self.faults.delay_ticks_min + rng.next_u64() % spread;
        self.sequence += 1;
        self.in_flight.push(Scheduled {
            at,
            sequence: self.sequence,
            envelope,
        });
    }

    /// Changes the fault rates for messages sent from now on (the simulator turns faults
    /// off when a run heals). Rejects rates that do not validate.
    pub fn set_faults(&mut self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        self.faults = faults;
        Ok(())
    }

    /// When the next message arrives, if any is in flight.
    pub fn next_arrival(&self) -> Option<u64> {
        self.in_flight.peek().map(|s| s.at)
    }

    /// Removes and returns the next message due at or before `now`.
    pub fn next_due(&mut self, now: u64) -> Option<Envelope<M>> {
        if self.in_flight.peek()?.at > now {
            return None;
        }
        self.in_flight.pop().map(|s| s.envelope)
    }

    /// Removes and returns every message in flight that `select` picks, in arrival order,
    /// whenever it was due: scripted scenarios deliver messages by hand.
    pub fn take(&mut self, mut select: impl FnMut(&Envelope<M>) -> bool) -> Vec<Envelope<M>> {
        let mut all = std::mem::take(&mut self.in_flight).into_sorted_vec();
        all.reverse(); // into_sorted_vec is ascending by Ord, which is reversed arrival
        let mut taken = Vec::new();
        for scheduled in all {
            if select(&scheduled.envelope) {
                taken.push(scheduled.envelope);
            } else {
                self.in_flight.push(scheduled);
            }
        }
        taken
    }

    /// Messages still in flight.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use rand_pcg::Pcg64Mcg;

    fn envelope(n: u32) -> Envelope<u32> {
        Envelope {
            id: u64::from(n),
            from: NodeId(1),
            to: NodeId(2),
            message: n,
        }
    }

    #[test]
    fn messages_arrive_in_delay_order_and_not_before_their_tick() {
        let faults = Faults {
            delay_ticks_min: 1,
            delay_ticks_max: 5,
            ..Faults::NONE
        };
        let mut net = Network::new(faults);
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        for n in 0..50 {
            assert_eq!(net.send(0, envelope(n), &mut rng), Fate::Delivered);
        }
        assert_eq!(
            net.next_due(0),
            None,
            "nothing arrives in the tick it was sent"
        );
        let mut arrived = Vec::new();
        for now in 1..=5 {
            while let Some(e) = net.next_due(now) {
                arrived.push(e.message);
            }
        }
        assert_eq!(arrived.len(), 50);
        assert_ne!(
            arrived,
            (0..50).collect::<Vec<_>>(),
            "delays reorder messages"
        );
        assert!(net.is_empty());
    }

    #[test]
    fn loss_and_duplication_follow_their_rates() {
        let faults = Faults {
            loss: 0.2,
            duplication: 0.1,
            ..Faults::NONE
        };
        let mut net = Network::new(faults);
        let mut rng = Pcg64Mcg::seed_from_u64(7);
        let fates: Vec<Fate> = (0..10_000)
            .map(|n| net.send(0, envelope(n), &mut rng))
            .collect();
        let lost = fates.iter().filter(|&&f| f == Fate::Lost).count();
        let duplicated = fates.iter().filter(|&&f| f == Fate::Duplicated).count();
        assert!((1800..2200).contains(&lost), "lost {lost}");
        assert!((700..900).contains(&duplicated), "duplicated {duplicated}");
        assert_eq!(net.len(), 10_000 - lost + duplicated);
    }

    #[test]
    fn take_removes_only_the_selected_messages() {
        let mut net = Network::new(Faults::NONE);
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        for n in 0..6 {
            net.send(0, envelope(n), &mut rng);
        }
        let even: Vec<u32> = net
            .take(|e| e.message % 2 == 0)
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(even, vec![0, 2, 4]);
        assert_eq!(net.len(), 3);
    }

    #[test]
    fn bad_fault_settings_are_refused() {
        assert!(Faults {
            loss: 1.5,
            ..Faults::NONE
        }
        .validate()
        .is_err());
        assert!(Faults {
            loss: 1.0,
            ..Faults::NONE
        }
        .validate()
        .is_err());
        assert!(Faults {
            delay_ticks_min: 0,
            ..Faults::NONE
        }
        .validate()
        .is_err());
        assert!(Faults {
            delay_ticks_min: 4,
            delay_ticks_max: 2,
            ..Faults::NONE
        }
        .validate()
        .is_err());
        let overflowing = Faults {
            delay_ticks_min: u64::MAX,
            delay_ticks_max: u64::MAX,
            ..Faults::NONE
        };
        assert!(overflowing.validate().is_err());
        assert!(Faults::NONE.validate().is_ok());
    }
}
