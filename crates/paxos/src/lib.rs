//! Synod's consensus core: Paxos as pure, deterministic state machines.
//!
//! Nothing here touches a socket, a file, a clock or a global random source. Handlers take
//! one input, change state, and return the [`synod::Action`]s a driver must carry out, in
//! order (persist before the reply that depends on it). Time enters only as `tick()`,
//! randomness only through an injected [`rand_core::RngCore`]. The same code therefore runs
//! in unit tests, under the exhaustive model checker, in the simulator and in production.
//!
//! # Layout
//! - [`ballot`]: [`Ballot`], the totally ordered, never reused proposal number.
//! - [`node`]: [`NodeId`] and [`AcceptorSet`], the bit set quorum questions are asked of.
//! - [`quorum`]: the [`QuorumSystem`] trait and [`Majority`], [`Flexible`] and [`Grid`],
//!   each refused at construction unless every phase-1 quorum meets every phase-2 quorum.
//! - [`synod`]: single-decree Paxos: [`synod::Acceptor`], [`synod::Proposer`],
//!   [`synod::Learner`], their [`synod::Message`]s and [`synod::Action`]s. Its tests include
//!   the exhaustive model check (`synod/model_check.rs`, on the explorer in `explore.rs`).
//! - [`multi`]: Multi-Paxos, the replicated log every Synod node runs:
//!   [`multi::Replica`] (acceptor, learner and leader in one), its election timers, its
//!   log, its [`multi::Message`]s and [`multi::Action`]s, the [`multi::Sequencer`] every
//!   driver runs the actions through (their durability contract, in one place), and
//!   [`multi::SnapshotData`], the handle on a snapshot's bytes (in memory or in a file) it
//!   serves laggards from, and [`multi::Membership`], the configurations in force by
//!   epoch, which changes chosen in the log replace. Its tests include an in-memory
//!   cluster (`multi/cluster.rs`) for scenario tests and the model check of the replica
//!   (`multi/model_check.rs`).
//!
//! `docs/PROTOCOL.md` explains every rule and why it exists.
//!
//! To replicate a state machine of your own, run the replica inside `node::Node` (crate
//! `synod-node`), which adds the sequencer, request ids, reads and snapshots around it:
//! `crates/node/examples/counter.rs` replicates a counter on three members in 150 lines.
//!
//! # Example
//! One proposer, three acceptors, messages delivered by hand:
//! ```
//! use std::sync::Arc;
//! use paxos::synod::{Acceptor, Action, Config, Message, Proposer, Timing};
//! use paxos::{NodeId, QuorumSpec};
//!
//! let acceptors = vec![NodeId(1), NodeId(2), NodeId(3)];
//! let config = Arc::new(
//!     Config::new(acceptors.clone(), vec![NodeId(10)], vec![], QuorumSpec::Majority).unwrap(),
//! );
//! let mut nodes: Vec<Acceptor<&str>> = acceptors
//!     .iter()
//!     .map(|&id| Acceptor::new(id, config.clone()).unwrap())
//!     .collect();
//! // Backoff randomness is injected; any `RngCore` works (the simulator seeds a PCG).
//! # #[derive(Debug)] struct Zero; impl rand_core::RngCore for Zero {
//! #   fn next_u32(&mut self) -> u32 { 0 } fn next_u64(&mut self) -> u64 { 0 }
//! #   fn fill_bytes(&mut self, d: &mut [u8]) { d.fill(0) } }
//! let mut proposer =
//!     Proposer::new(NodeId(10), config.clone(), "hello", Timing::default(), Zero).unwrap();
//!
//! // Deliver every message until nothing is left in flight.
//! let mut in_flight: Vec<(NodeId, NodeId, Message<&str>)> = Vec::new();
//! let mut emit = |from: NodeId, actions: Vec<Action<&'static str>>, q: &mut Vec<_>| {
//!     for action in actions {
//!         if let Action::Send { to, message } = action {
//!             q.push((from, to, message));
//!         }
//!     }
//! };
//! emit(NodeId(10), proposer.propose(), &mut in_flight);
//! while let Some((from, to, message)) = in_flight.pop() {
//!     let actions = match nodes.iter_mut().find(|a| a.id() == to) {
//!         Some(acceptor) => acceptor.step(from, message),
//!         None => proposer.step(from, message),
//!     };
//!     emit(to, actions, &mut in_flight);
//! }
//! assert_eq!(proposer.chosen().map(|vote| vote.value), Some("hello"));
//! ```

pub mod ballot;
pub mod multi;
pub mod node;
pub mod quorum;
pub mod synod;

#[cfg(test)]
mod explore;

pub use ballot::Ballot;
pub use node::{AcceptorSet, NodeId, ACCEPTORS_MAX};
pub use quorum::{Flexible, Grid, Majority, Quorum, QuorumError, QuorumSpec, QuorumSystem};
