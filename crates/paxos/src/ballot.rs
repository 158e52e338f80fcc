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
    fn next_above_refuses_to_wrap() {
        assert_eq!(
            Ballot::next_above(Ballot::new(u64::MAX, NodeId(0)), NodeId(1)),
            None
        );
    }
}
