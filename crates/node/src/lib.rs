//! Synod's node layer: a member, sans I/O. [`Node`] holds the consensus replica, the
//! durability contract, the replicated state machine and the clients' requests; inputs go
//! in with the time, [`Output`]s come out. The server runs it on its core task (a thin
//! shell of channels, storage and sockets around it) and the simulator runs it under its
//! seeds, so every decision a member makes is simulated.
//!
//! # Embedding
//! Implement [`StateMachine`] for your state (apply a command, restore a snapshot, take a
//! view for reads, hash), wrap each member's [`paxos::multi::Replica`] in a [`Node`], and
//! carry out its [`Output`]s with your transport and storage. `examples/counter.rs` does
//! it for a counter on three in-process members (run by the test suite); the server's
//! `synod_server::machine::EtcdMachine` is the etcd store behind the same trait.
//!
//! # Layout
//! - [`node`]: the member: inputs, outputs, the order of actions, reads that fall back to
//!   the log, snapshots when due.
//! - [`machine`]: the [`StateMachine`] trait a node replicates (the etcd store is one
//!   implementation, in the server crate).
//! - [`requests`]: the client requests a member is answering, and the error each gets when
//!   it cannot be served, chosen so that an error never misreports a write's fate.
//! - [`trace`]: the trace format's lines and vector clocks, written by the simulator and
//!   by a real member (`synod serve --trace-file`) alike.

pub mod machine;
pub mod node;
pub mod requests;
pub mod trace;

pub use machine::{Answer, Context, StateMachine};
pub use node::{Node, NodeOptions, Output, RequestIds};
pub use requests::{Failure, Kind, Requests};
