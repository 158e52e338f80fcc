//! The learner: finds out which value was chosen from the votes acceptors send it.

use std::sync::Arc;

use crate::ballot::Ballot;
use crate::node::{AcceptorSet, NodeId};
use crate::quorum::QuorumSystem;

use super::config::{Config, ConfigError, Role, SharedConfig};
use super::message::{Action, Message, Vote};

/// A Paxos learner. Acceptors send it every vote they cast (seed 001's second way to
/// learn); once the latest votes of a phase-2 quorum are for the same ballot, that ballot's
/// value is chosen.
///
/// It keeps only each acceptor's latest vote, so its memory is bounded by the number of
/// acceptors. Dropping older votes can delay learning, never make it wrong: a vote counts
/// only toward its own ballot, and a phase-2 quorum at one ballot means chosen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Learner<V> {
    id: NodeId,
    config: SharedConfig,
    latest: Vec<Option<Vote<V>>>,
    learned: Option<Vote<V>>,
}

impl<V: Clone + Eq> Learner<V> {
    /// A learner that has heard nothing yet.
    pub fn new(id: NodeId, config: Arc<Config>) -> Result<Learner<V>, ConfigError> {
        config.require(id, Role::Learner)?;
        Ok(Learner {
            id,
            latest: vec![None; config.acceptors().len()],
            config: SharedConfig(config),
            learned: None,
        })
    }

    /// This learner's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The chosen value, once learned.
    pub fn learned(&self) -> Option<&Vote<V>> {
        self.learned.as_ref()
    }

    /// Handles one message; only [`Message::Accepted`] from an acceptor matters.
    pub fn step(&mut self, from: NodeId, message: Message<V>) -> Vec<Action<V>> {
        let actions = match (self.config.acceptor_index(from), message) {
            (Some(index), Message::Accepted { ballot, value }) => {
                self.on_accepted(index, ballot, value)
            }
            _ => Vec::new(),
        };
        self.check_invariants();
        actions
    }

    fn on_accepted(&mut self, index: usize, ballot: Ballot, value: V) -> Vec<Action<V>> {
        if self.learned.is_some() {
            return Vec::new();
        }
        match &self.latest[index] {
            Some(vote) if vote.ballot >= ballot => return Vec::new(),
            _ => self.latest[index] = Some(Vote { ballot, value }),
        }
        let Some(vote) = self.quorum_vote(ballot) else {
            return Vec::new();
        };
        self.learned = Some(vote.clone());
        vec![Action::Learn {
            ballot: vote.ballot,
            value: vote.value,
        }]
    }

    /// The vote at `ballot`, if a phase-2 quorum's latest votes are all for it.
    fn quorum_vote(&self, ballot: Ballot) -> Option<Vote<V>> {
        let voters: AcceptorSet = self
            .latest
            .iter()
            .enumerate()
            .filter(|(_, v)| v.as_ref().is_some_and(|v| v.ballot == ballot))
            .map(|(i, _)| i)
            .collect();
        if !self.config.quorum().is_phase2_quorum(voters) {
            return None;
        }
        self.latest
            .iter()
            .flatten()
            .find(|v| v.ballot == ballot)
            .cloned()
    }

    /// Panics if the state breaks a learner invariant.
    pub fn check_invariants(&self) {
        assert_eq!(self.latest.len(), self.config.acceptors().len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::QuorumSpec;

    const P1: NodeId = NodeId(11);
    const L1: NodeId = NodeId(21);

    fn learner(quorum: QuorumSpec, acceptors: u64) -> Learner<&'static str> {
        let config = Config::new(
            (1..=acceptors).map(NodeId).collect(),
            vec![P1],
            vec![L1],
            quorum,
        )
        .unwrap();
        Learner::new(L1, Arc::new(config)).unwrap()
    }

    fn accepted(round: u64, value: &'static str) -> Message<&'static str> {
        Message::Accepted {
            ballot: Ballot::new(round, P1),
            value,
        }
    }

    #[test]
    fn learns_once_a_phase2_quorum_voted_one_ballot() {
        let mut l = learner(QuorumSpec::Majority, 3);
        assert_eq!(l.step(NodeId(1), accepted(1, "x")), vec![]);
        assert_eq!(
            l.step(NodeId(1), accepted(1, "x")),
            vec![],
            "one acceptor counts once"
        );
        assert_eq!(
            l.step(NodeId(3), accepted(1, "x")),
            vec![Action::Learn {
                ballot: Ballot::new(1, P1),
                value: "x"
            }]
        );
        assert_eq!(l.step(NodeId(2), accepted(1, "x")), vec![]);
        assert_eq!(l.learned().map(|v| v.value), Some("x"));
    }

    #[test]
    fn votes_at_different_ballots_do_not_add_up() {
        let mut l = learner(QuorumSpec::Majority, 3);
        l.step(NodeId(1), accepted(1, "x"));
        assert_eq!(l.step(NodeId(2), accepted(2, "x")), vec![]);
        assert_eq!(l.learned(), None);
        // Acceptor 1 moves on to ballot 2: now two votes at ballot 2.
        assert_eq!(l.step(NodeId(1), accepted(2, "x")).len(), 1);
    }

    #[test]
    fn stale_votes_and_strangers_are_ignored() {
        let mut l = learner(QuorumSpec::Majority, 3);
        l.step(NodeId(1), accepted(2, "y"));
        let before = l.clone();
        assert_eq!(l.step(NodeId(1), accepted(1, "x")), vec![]);
        assert_eq!(l.step(NodeId(42), accepted(2, "y")), vec![]);
        assert_eq!(l.step(P1, accepted(2, "y")), vec![]);
        assert_eq!(l, before);
    }

    #[test]
    fn grid_learner_needs_a_full_column() {
        // 2x2 grid: columns {0, 2} and {1, 3} = acceptors {1, 3} and {2, 4}.
        let mut l = learner(QuorumSpec::Grid { rows: 2, cols: 2 }, 4);
        assert_eq!(l.step(NodeId(1), accepted(1, "x")), vec![]);
        assert_eq!(
            l.step(NodeId(2), accepted(1, "x")),
            vec![],
            "a row is not enough"
        );
        assert_eq!(l.step(NodeId(4), accepted(1, "x")).len(), 1);
    }
}
