//! Node identities and sets of acceptors.

use std::fmt;

/// The identity of a node. In single-decree Paxos each role has its own id; the Multi-Paxos
/// replica (later) plays all three roles under one.
///
/// Ids are opaque to the protocol; they only need to be unique within a configuration.
/// They break ties between ballots with the same round, which is what keeps ballots unique.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub u64);

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The most acceptors one configuration may hold: an [`AcceptorSet`] is one machine word.
///
/// etcd recommends 3 to 7 voting members; 64 leaves room for the grid quorums that make
/// larger acceptor sets worthwhile (seed 000's 3×6 grid is 18).
pub const ACCEPTORS_MAX: usize = 64;

/// A set of acceptors, by their index in the configuration (bit `i` = acceptor `i`).
///
/// Quorum questions ("is this set a phase-2 quorum?") are asked of these sets, so quorum
/// arithmetic never allocates.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AcceptorSet(u64);

impl AcceptorSet {
    /// The empty set.
    pub const EMPTY: AcceptorSet = AcceptorSet(0);

    /// The set `{0, 1, …, count-1}`: every acceptor of a configuration of `count`.
    pub fn all(count: usize) -> AcceptorSet {
        assert!(count <= ACCEPTORS_MAX);
        if count == ACCEPTORS_MAX {
            AcceptorSet(u64::MAX)
        } else {
            AcceptorSet((1u64 << count) - 1)
        }
    }

    /// A set from its bit pattern.
    pub const fn from_bits(bits: u64) -> AcceptorSet {
        AcceptorSet(bits)
    }

    /// The bit pattern (bit `i` = acceptor `i`).
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Adds acceptor `index`; returns whether it was new.
    pub fn insert(&mut self, index: usize) -> bool {
        assert!(index < ACCEPTORS_MAX);
        let new = !self.contains(index);
        self.0 |= 1 << index;
        new
    }

    /// Whether acceptor `index` is in the set.
    pub fn contains(self, index: usize) -> bool {
        index < ACCEPTORS_MAX && self.0 & (1 << index) != 0
    }

    /// How many acceptors are in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every member of `other` is in `self`.
    pub fn is_superset(self, other: AcceptorSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// The members of both sets.
    pub fn intersection(self, other: AcceptorSet) -> AcceptorSet {
        AcceptorSet(self.0 & other.0)
    }

    /// The acceptors of a configuration of `count` that are not in `self`.
    pub fn complement(self, count: usize) -> AcceptorSet {
        AcceptorSet(!self.0 & AcceptorSet::all(count).0)
    }

    /// The member indices, in increasing order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..ACCEPTORS_MAX).filter(move |&i| self.contains(i))
    }
}

impl FromIterator<usize> for AcceptorSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut set = AcceptorSet::EMPTY;
        for index in iter {
            set.insert(index);
        }
        set
    }
}

impl fmt::Debug for AcceptorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut set = AcceptorSet::EMPTY;
        assert!(set.insert(0));
        assert!(set.insert(5));
        assert!(!set.insert(5));
        assert_eq!(set.len(), 2);
        assert!(set.contains(5) && !set.contains(4) && !set.contains(64));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 5]);
        assert_eq!(set.complement(6), [1, 2, 3, 4].into_iter().collect());
        assert!(AcceptorSet::all(6).is_superset(set));
        assert_eq!(AcceptorSet::all(64).len(), 64);
        assert_eq!(format!("{set:?}"), "{0, 5}");
    }
}
