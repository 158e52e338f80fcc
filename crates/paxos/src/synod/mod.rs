//! Single-decree Paxos, the Synod protocol of *The Part-Time Parliament*: a set of
//! proposers, acceptors and learners agree on one value.
//!
//! Each role is a pure state machine. A handler takes one input (a message, a tick, a
//! request to propose), updates the role's state and returns the [`Action`]s the driver
//! must carry out, **in order**. Order states durability: an acceptor's promise or
//! accepted reply always follows the [`Action::PersistAcceptor`] that makes it true, and a
//! proposer's prepare follows the [`Action::PersistBallot`] that keeps the ballot from ever
//! being reused. A driver must not let a `Send` leave before every persist the same node
//! emitted earlier has completed.
//!
//! The rules, each with its reason, are in `docs/PROTOCOL.md`. In short:
//! - [`Acceptor`]: promises only above its promised ballot; accepts at or above it; tells
//!   anyone below it what it promised ([`Message::Nack`]).
//! - [`Proposer`]: after a phase-1 quorum of promises, proposes the value of the
//!   highest-ballot vote among them, else its own (P2c); on a nack or a timeout, retries
//!   with a higher ballot after randomized exponential backoff.
//! - [`Learner`]: learns a value once a phase-2 quorum accepted it at one ballot.

mod acceptor;
mod config;
mod learner;
mod message;
mod node;
mod proposer;

#[cfg(test)]
mod model_check;
#[cfg(test)]
mod random_input;

/// A random source that always returns the same number: exact-action tests and the model
/// checker need backoff to be a function of the state alone.
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConstRng(pub u32);

#[cfg(test)]
impl rand_core::RngCore for ConstRng {
    fn next_u32(&mut self) -> u32 {
        self.0
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.0)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        dst.fill(self.0.to_le_bytes()[0]);
    }
}

pub use acceptor::{Acceptor, AcceptorState};
pub use config::{Config, ConfigError, Role};
pub use learner::Learner;
pub use message::{Action, Message, Vote};
pub use node::Node;
pub use proposer::{Phase, Proposer, Timing};
