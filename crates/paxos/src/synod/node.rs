//! One role behind one interface, for drivers that run many nodes (the simulator, the
//! model checker).

use rand_core::RngCore;

use crate::node::NodeId;

use super::acceptor::Acceptor;
use super::learner::Learner;
use super::message::{Action, Message};
use super::proposer::Proposer;

/// A node playing one single-decree role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node<V, R> {
    /// See [`Acceptor`].
    Acceptor(Acceptor<V>),
    /// See [`Proposer`].
    Proposer(Proposer<V, R>),
    /// See [`Learner`].
    Learner(Learner<V>),
}

impl<V: Clone + Eq, R: RngCore> Node<V, R> {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        match self {
            Node::Acceptor(a) => a.id(),
            Node::Proposer(p) => p.id(),
            Node::Learner(l) => l.id(),
        }
    }

    /// Hands `message` from `from` to the role.
    pub fn step(&mut self, from: NodeId, message: Message<V>) -> Vec<Action<V>> {
        match self {
            Node::Acceptor(a) => a.step(from, message),
            Node::Proposer(p) => p.step(from, message),
            Node::Learner(l) => l.step(from, message),
        }
    }

    /// One tick of logical time; only proposers have timeouts.
    pub fn tick(&mut self) -> Vec<Action<V>> {
        match self {
            Node::Proposer(p) => p.tick(),
            Node::Acceptor(_) | Node::Learner(_) => Vec::new(),
        }
    }

    /// Checks the role's invariants (panics on a violation).
    pub fn check_invariants(&self) {
        match self {
            Node::Acceptor(a) => a.check_invariants(),
            Node::Proposer(p) => p.check_invariants(),
            Node::Learner(l) => l.check_invariants(),
        }
    }
}
