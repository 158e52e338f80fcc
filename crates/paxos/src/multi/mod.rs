//! Multi-Paxos: a replicated log of commands, one Paxos instance per slot, with one
//! phase 1 covering every slot a leader will use.
//!
//! Every replica plays every role. As an **acceptor** it holds a single promised ballot
//! for all slots and a vote per slot; as a **learner** it applies chosen slots in order;
//! when elected it is the **leader**, the only proposer. The rules:
//!
//! - **Election** ([`election`](self) timers): a follower that hears nothing from a leader
//!   for a randomized timeout becomes a candidate with a ballot above any it has seen and
//!   sends one prepare covering every slot above its commit point. Promises report the
//!   votes above that point in bounded chunks (the candidate asks for the next chunk).
//! - **Recovery**: with a phase-1 quorum of complete promises, the new leader re-proposes
//!   in each slot the highest-ballot vote reported (P2c, slot by slot), fills holes with
//!   no-ops, and only then gives slots to new commands. With Raft's vote restriction
//!   ([`ElectionMode::Raft`]) a voter promises only a candidate whose log covers its own
//!   and reports nothing: the new leader re-proposes its own log.
//! - **Replication**: accepts are pipelined (at most `window_slots` unchosen) and batched
//!   (bounded in count and bytes); a slot is chosen when a phase-2 quorum acknowledged it
//!   at the leader's ballot; the commit point travels on accepts and heartbeats.
//! - **Durability**: a reply that reports state (promise, accepted) follows the
//!   [`Action::Persist`] that makes it durable. The leader sends its accepts to every
//!   replica, itself included, so its own vote is persisted in parallel with the sends and
//!   counts only once its own acknowledgement (after the persist) comes back.
//! - **Fencing**: every message carries a ballot; a leader or candidate that sees a higher
//!   one steps down. An acceptor answers anything below its promise with a nack.
//! - **Catch-up**: a replica that learns of a commit point beyond what it holds fetches the
//!   chosen entries, or the application's snapshot when they were compacted away.
//! - **Reads** (read-index): the leader notes its commit point, confirms with a phase-2
//!   quorum of heartbeat acks that no higher ballot finished phase 1 meanwhile, and answers
//!   once the state machine has applied through the noted point.
//! - **Leases** (optional, [`Lease`]): an acceptor that acknowledged a leader's heartbeat
//!   promises no other candidate anything for a while; a leader whose heartbeat a phase-2
//!   quorum acknowledged serves reads locally until shortly before those grants can end.
//! - **Reconfiguration** ([`Membership`]): a change is a log entry that begins a new
//!   epoch (the high bits of a ballot's round) with its configuration; phase 1 asks every
//!   configuration still active; a snapshot carries the membership at its index; the
//!   leader hands over to a voter in sync on request ([`Replica::transfer_leadership`]).
//!
//! `docs/PROTOCOL.md` gives each rule with its reason.

mod config;
mod election;
mod log;
mod membership;
mod message;
mod replica;
mod sequencer;
mod snapshot;

#[cfg(test)]
mod cluster;
#[cfg(test)]
mod model_check;
#[cfg(test)]
mod reconfiguration_tests;
#[cfg(test)]
mod regressions;
#[cfg(test)]
mod tests;

pub use config::{ElectionMode, Lease, Members, Options};
pub use membership::{Change, ChangeError, Membership};
pub use message::{
    Action, Batch, Command, Entry, LogEntry, LogRun, Message, ReadError, Slot, SlotVote, Write,
};
pub use replica::{Durable, ProposeError, ReconfigureError, Replica, RoleKind, TransferError};
pub use sequencer::{Sequencer, Step};
pub use snapshot::{SnapshotBytes, SnapshotData, SnapshotReader};
