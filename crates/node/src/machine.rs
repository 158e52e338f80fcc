//! What a [`Node`](crate::Node) replicates: any state machine that applies commands in log
//! order, restores from a snapshot and hashes its state. The etcd store is one (the
//! server's `EtcdMachine`); a replicated counter is another (`examples/counter.rs`).

use std::time::Duration;

use paxos::multi::{Command, Entry, Slot, SnapshotData};
use paxos::NodeId;

/// A replicated state machine, driven by a [`Node`](crate::Node): every member applies the
/// same commands in the same order, so every member holds the same state.
///
/// Commands carry the member and request id they answer (the node stamps them through
/// [`StateMachine::command`]): a command is applied on every member, and only the member
/// that proposed it answers its client.
pub trait StateMachine {
    /// What a client asks for (decoded, validated).
    type Op;
    /// A command as the log holds it.
    type Command: Command;
    /// What applying a command answers.
    type Output;
    /// What a linearizable read is served from: the state as it stands when the read is
    /// released (a read released before an apply must not see it, nor miss what was
    /// applied before).
    type View;

    /// The command for `op`, stamped with the member and request id it answers (origin 0:
    /// the node's own, nobody waits for it).
    fn command(&self, origin: NodeId, id: u64, op: Self::Op) -> Self::Command;

    /// A command that changes nothing and answers `id` once applied: the node reads
    /// through the log with it when the replica cannot serve a read itself.
    fn barrier(&self, origin: NodeId, id: u64) -> Self::Command;

    /// Applies a chosen command. Returns the request it answers (if any) and the answer.
    /// Must be deterministic: every member applies the same commands to the same state.
    fn apply(
        &mut self,
        slot: Slot,
        command: &Self::Command,
        at: &Context,
    ) -> Option<Answer<Self::Output>>;

    /// The state as it stands now, for a read released now.
    fn view(&self, at: &Context) -> Self::View;

    /// A slot was chosen without a command (a hole a new leader filled): nothing to apply,
    /// but a machine that counts slots counts it.
    fn noop(&mut self, _slot: Slot) {}

    /// A membership change (`Entry::Configure` or `Entry::Retire`) was applied at `slot`:
    /// the replica takes it into effect; the machine has nothing to apply (as for a
    /// no-op), but may note it.
    fn membership_changed(&mut self, slot: Slot, _entry: &Entry<Self::Command>) {
        self.noop(slot);
    }

    /// Replaces the state with a snapshot's (taken by some member at some slot).
    fn restore(&mut self, data: &SnapshotData, at: &Context) -> Result<(), String>;

    /// The commands this member proposes of its own accord now (for example, the etcd
    /// store's leader expires leases). Nobody waits for their answers.
    fn tick(&mut self, _at: &Context) -> Vec<Self::Op> {
        Vec::new()
    }

    /// A hash of the replicated state: equal on members that applied the same slots.
    fn hash(&self) -> u64;
}

/// The request an applied command answers, and the answer.
#[derive(Debug)]
pub struct Answer<O> {
    /// The member that proposed it (only that member has a client waiting).
    pub origin: NodeId,
    /// The request's id there.
    pub id: u64,
    /// What the command did.
    pub output: O,
}

/// Where the member stands when the state machine is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// This member.
    pub me: NodeId,
    /// The time the node was given with its input (the shell's clock, or virtual time).
    pub now: Duration,
    /// The round of the highest ballot this member promised (etcd's "term").
    pub round: u64,
    /// Whether this member leads.
    pub leading: bool,
    /// Whether this member knows a leader (itself included).
    pub leader_known: bool,
}
