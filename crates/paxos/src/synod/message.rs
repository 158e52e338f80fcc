//! The messages of single-decree Paxos and the actions its roles emit.

use crate::ballot::Ballot;
use crate::node::NodeId;

use super::acceptor::AcceptorState;

/// A value accepted at a ballot: what an acceptor reports in a promise (seed 002's
/// "piggybacked" value) and what a learner counts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vote<V> {
    /// The ballot the value was accepted at.
    pub ballot: Ballot,
    /// The value.
    pub value: V,
}

/// A protocol message. Every message carries a ballot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Message<V> {
    /// Phase 1a, proposer → acceptors: "promise me nothing below `ballot`".
    Prepare {
        /// The proposer's new ballot.
        ballot: Ballot,
    },
    /// Phase 1b, acceptor → proposer: the promise, with the acceptor's vote if it has one.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The highest-ballot (the only) value this acceptor accepted, if any.
        accepted: Option<Vote<V>>,
    },
    /// Acceptor → proposer: `ballot` is below what the acceptor promised. Fences stale
    /// proposers: the receiver learns a higher ballot exists and steps down.
    Nack {
        /// The ballot refused.
        ballot: Ballot,
        /// The ballot the acceptor has promised.
        promised: Ballot,
    },
    /// Phase 2a, proposer → acceptors: "accept `value` at `ballot`".
    Accept {
        /// The proposer's ballot, for which it holds a phase-1 quorum.
        ballot: Ballot,
        /// The value chosen by the P2c rule.
        value: V,
    },
    /// Phase 2b, acceptor → proposer and learners: "I accepted `value` at `ballot`".
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
        /// The value accepted.
        value: V,
    },
}

impl<V> Message<V> {
    /// The ballot the message carries.
    pub fn ballot(&self) -> Ballot {
        match *self {
            Message::Prepare { ballot }
            | Message::Promise { ballot, .. }
            | Message::Nack { ballot, .. }
            | Message::Accept { ballot, .. }
            | Message::Accepted { ballot, .. } => ballot,
        }
    }

    /// The message's name, as the papers call it.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Prepare { .. } => "prepare",
            Message::Promise { .. } => "promise",
            Message::Nack { .. } => "nack",
            Message::Accept { .. } => "accept",
            Message::Accepted { .. } => "accepted",
        }
    }
}

/// What a role asks its driver to do, in the order given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action<V> {
    /// Make this acceptor state durable (fdatasync). Every later action of this node waits
    /// for it: the promise or accepted reply that follows is only true once it is durable.
    PersistAcceptor(AcceptorState<V>),
    /// Make this proposer's ballot durable before its prepare leaves, so that a proposer
    /// restarted from its storage never uses the ballot again (a reused ballot could carry
    /// a second value).
    PersistBallot(Ballot),
    /// Send `message` to `to`.
    Send {
        /// The recipient.
        to: NodeId,
        /// The message.
        message: Message<V>,
    },
    /// This node now knows that `value` is chosen (a phase-2 quorum accepted it at
    /// `ballot`). Chosen is permanent: no other value can ever be chosen.
    Learn {
        /// The ballot whose phase-2 quorum the node saw.
        ballot: Ballot,
        /// The chosen value.
        value: V,
    },
}
