//! Ballots: the proposal numbers of Paxos.
//!
//! A ballot is `(round, node)`, compared round first, then node. Embedding the proposer's
//! id makes ballots unique across proposers without coordination (seed 002: "unique,
//! increasing proposal numbers"), and a proposer never reuses one of its own because each
//! new ballot is strictly above every ballot it has seen ([`Ballot::next_above`]).
//!
//! Every protocol message carries a ballot. An acceptor that promised ballot `b` refuses
//! anything below `b` and says so ([`crate::synod::Message::Nack`] carries `b`), which is
//! how a deposed leader learns that it is a zombie (seed 000) and steps down.

use std::fmt;

use crate::node::NodeId;

/// A proposal number: totally ordered, unique per proposer, never reused.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ballot {
    /// Compared first. Round 0 is never proposed: it is the ballot of "nothing yet".
    pub round: u64,
    /// The proposer that owns the ballot; breaks ties between equal rounds.
    pub node: NodeId,
}

impl Ballot {
    /// Below every ballot a proposer can use: what an acceptor has promised before any
    /// prepare arrived.
    pub const ZERO: Ballot = Ballot {
        round: 0,
        node: NodeId(0),
    };

    /// A ballot of `node` at `round`.
    pub const fn new(round: u64, node: NodeId) -> Ballot {
        Ballot { round, node }
    }

    /// The smallest ballot of `node` that is above `seen`, or `None` when rounds are
    /// exhausted (`seen.round == u64::MAX`).
    ///
    /// Returning `None` instead of saturating matters: a saturated ballot could equal one
    /// the node already used, and a reused ballot can carry two different values.
    pub fn next_above(seen: Ballot, node: NodeId) -> Option<Ballot> {
        let round = seen.round.checked_add(1)?;
        Some(Ballot { round, node })
    }
}

/// A round's high 32 bits are the configuration epoch of the ballot (Multi-Paxos
/// reconfiguration, `docs/PROTOCOL.md`): every ballot of a later epoch is above every
/// ballot of an earlier one, so an acceptor that promised a ballot of a new configuration
/// refuses every ballot of the old one, whatever its round.
const EPOCH_SHIFT: u32 = 32;

impl Ballot {
    /// The configuration epoch this ballot belongs to (0 until the membership changes).
    pub const fn epoch(self) -> u64 {
        self.round >> EPOCH_SHIFT
    }

    /// The smallest ballot of `node` in `epoch` that is above `seen`, or `None` if `seen`
    /// belongs to a later epoch (the node must learn that configuration before it may
    /// campaign), if `epoch` is past the largest one, or if the epoch's rounds are
    /// exhausted (a ballot never spills into the next epoch).
    pub fn next_in_epoch(seen: Ballot, epoch: u64, node: NodeId) -> Option<Ballot> {
        let base = epoch
            .checked_shl(EPOCH_SHIFT)
            .filter(|b| b >> EPOCH_SHIFT == epoch)?;
        let round = match seen.epoch().cmp(&epoch) {
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => base + 1,
            std::cmp::Ordering::Equal => seen.round.checked_add(1)?,
        };
        (round >> EPOCH_SHIFT == epoch).then_some(Ballot { round, node })
    }
}

impl fmt::Debug for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}.{})", self.round, self.node.0)
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_by_round_then_node() {
        let a = Ballot::new(1, NodeId(9));
        let b = Ballot::new(2, NodeId(1));
        let c = Ballot::new(2, NodeId(3));
        assert!(Ballot::ZERO < a && a < b && b < c);
        assert_eq!(format!("{c}"), "(2.3)");
    }

    #[test]
    fn next_above_is_strictly_above_and_owned_by_the_node() {
        for seen in [
            Ballot::ZERO,
            Ballot::new(4, NodeId(7)),
            Ballot::new(4, NodeId(1)),
        ] {
            let next = Ballot::next_above(seen, NodeId(3)).unwrap();
            assert!(next > seen);
            assert_eq!(next.node, NodeId(3));
            assert_eq!(next.round, seen.round + 1);
        }
    }

    #[test]
    fn a_later_epoch_is_above_every_round_of_an_earlier_one() {
        let last_of_0 = Ballot::new((1 << 32) - 1, NodeId(9));
        let first_of_1 = Ballot::next_in_epoch(last_of_0, 1, NodeId(1)).unwrap();
        assert!(first_of_1 > last_of_0);
        assert_eq!((last_of_0.epoch(), first_of_1.epoch()), (0, 1));
        assert_eq!(first_of_1.round, (1 << 32) + 1);
        assert_eq!(
            Ballot::new(7, NodeId(1)).epoch(),
            0,
            "today's ballots are epoch 0"
        );
    }

    #[test]
    fn next_in_epoch_stays_in_its_epoch() {
        let seen = Ballot::new((2 << 32) + 5, NodeId(4));
        let next = Ballot::next_in_epoch(seen, 2, NodeId(3)).unwrap();
        assert_eq!(
            (next.epoch(), next.round, next.node),
            (2, seen.round + 1, NodeId(3))
        );
        assert_eq!(
            Ballot::next_in_epoch(seen, 1, NodeId(3)),
            None,
            "behind a later epoch: learn it first"
        );
        let exhausted = Ballot::new((3 << 32) - 1, NodeId(1));
        assert_eq!(Ballot::next_in_epoch(exhausted, 2, NodeId(3)), None);
        assert_eq!(
            Ballot::next_in_epoch(Ballot::ZERO, u64::MAX, NodeId(3)),
            None
        );
        // Epoch 0 steps as next_above does.
        for seen in [Ballot::ZERO, Ballot::new(41, NodeId(2))] {
            assert_eq!(
                Ballot::next_in_epoch(seen, 0, NodeId(3)),
                Ballot::next_above(seen, NodeId(3))
            );
        }
    }

    #[test]
    fn next_above_refuses_to_wrap() {
        assert_eq!(
            Ballot::next_above(Ballot::new(u64::MAX, NodeId(0)), NodeId(1)),
            None
        );
    }
}
