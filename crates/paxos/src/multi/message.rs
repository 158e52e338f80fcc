//! The messages replicas exchange and the actions a replica asks its driver to carry out.

use std::sync::Arc;

use crate::ballot::Ballot;
use crate::multi::config::Members;
use crate::multi::membership::Membership;
use crate::multi::snapshot::SnapshotData;
use crate::node::NodeId;

/// A log position. Slot 1 is the first; slot 0 means "before the log".
pub type Slot = u64;

/// What a replicated command must tell the engine: its size, so batches stay bounded in
/// bytes as well as in count.
pub trait Command: Clone + std::fmt::Debug + PartialEq + Eq {
    /// Roughly the encoded size in bytes.
    fn size(&self) -> usize;
}

impl Command for Vec<u8> {
    fn size(&self) -> usize {
        self.len()
    }
}

impl Command for Arc<[u8]> {
    fn size(&self) -> usize {
        self.len()
    }
}

impl<const N: usize> Command for [u8; N] {
    fn size(&self) -> usize {
        N
    }
}

impl Command for String {
    fn size(&self) -> usize {
        self.len()
    }
}

impl Command for u64 {
    fn size(&self) -> usize {
        8
    }
}

/// The content of one slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Entry<C> {
    /// Fills a hole a new leader found: chosen so later slots can be applied.
    Noop,
    /// A client command.
    Command(C),
    /// A membership change made against epoch `base`: once chosen and applied, `members`
    /// is the configuration of epoch `base + 1`, unless another change was applied first
    /// (then this one changes nothing). See [`crate::multi::Membership`].
    Configure {
        /// The epoch the change was checked against.
        base: u64,
        /// The new configuration.
        members: Arc<Members>,
    },
    /// The leader of a ballot of `epoch` made chosen everything its phase 1 found: the
    /// configurations before `epoch` retire, and phase 1 no longer needs their quorums.
    Retire {
        /// The epoch whose leader proposed it.
        epoch: u64,
    },
}

impl<C: Command> Entry<C> {
    /// Size for batching; a no-op counts as one byte.
    pub fn size(&self) -> usize {
        match self {
            Entry::Noop => 1,
            Entry::Command(c) => c.size(),
            Entry::Configure { members, .. } => 16 + 8 * members.count(),
            Entry::Retire { .. } => 8,
        }
    }

    /// The command, if this is one.
    pub fn into_command(self) -> Option<C> {
        match self {
            Entry::Command(c) => Some(c),
            _ => None,
        }
    }
}

/// An entry with the ballot it was accepted at: an acceptor's vote for one slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LogEntry<C> {
    /// The ballot the entry was accepted at.
    pub ballot: Ballot,
    /// The entry.
    pub entry: Entry<C>,
}

/// A vote reported in a promise: slot, ballot, entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SlotVote<C> {
    /// The slot.
    pub slot: Slot,
    /// The vote.
    pub vote: LogEntry<C>,
}

/// A run of a candidate's log in a Raft-mode prepare: every slot after the previous
/// run's `last` (or from the prepare's `from`) through `last` holds a vote at `ballot`;
/// [`Ballot::ZERO`] for slots that hold none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogRun {
    /// The run's last slot.
    pub last: Slot,
    /// The ballot of every vote in the run, or [`Ballot::ZERO`] for a run of holes.
    pub ballot: Ballot,
}

/// A batch of consecutive entries, shared by every copy of an accept (one allocation per
/// batch, not per recipient).
pub type Batch<C> = Arc<[Entry<C>]>;

/// A message between replicas. Every message carries a ballot: the sender's current one
/// (a leader's or candidate's own, an acceptor's promised). Seeing a higher ballot in any
/// message makes a leader or candidate step down.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message<C> {
    /// Phase 1a, candidate → every replica: promise nothing below `ballot`, and report
    /// your votes for slots from `from` on.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The first slot the candidate wants votes for (its commit point + 1, or where
        /// the previous chunk ended).
        from: Slot,
        /// With Raft's vote restriction ([`crate::multi::ElectionMode::Raft`]): the
        /// candidate's log from `from` on, as runs of consecutive slots it holds at one
        /// ballot, in slot order (Raft's last log term and index, per run). Empty from a
        /// Paxos candidate and in a chunk's follow-up.
        log: Vec<LogRun>,
    },
    /// Phase 1b: the promise, with one bounded chunk of votes from `from` on.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// Where this chunk starts.
        from: Slot,
        /// The votes in this chunk, in slot order (slots without a vote are absent).
        votes: Vec<SlotVote<C>>,
        /// `Some(slot)` if more votes follow from `slot` on (ask with another prepare).
        next: Option<Slot>,
    },
    /// The sender promised `promised`, above `ballot`, so it refused a message at
    /// `ballot`. Fences a stale leader or candidate.
    Nack {
        /// The ballot refused.
        ballot: Ballot,
        /// The ballot the sender promised.
        promised: Ballot,
    },
    /// The sender cannot report votes from `from` on: it compacted them into a snapshot
    /// through `compacted`. The candidate steps down and catches up first.
    Behind {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The sender's snapshot index.
        compacted: Slot,
    },
    /// Phase 2a, leader → every replica: accept `entries` at slots `first..`.
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// The slot of `entries[0]`.
        first: Slot,
        /// The entries, one per slot.
        entries: Batch<C>,
        /// The leader's commit point: every slot up to it is chosen.
        commit: Slot,
    },
    /// Phase 2b, acceptor → leader, sent once the votes are durable.
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
        /// The first slot accepted.
        first: Slot,
        /// The last slot accepted.
        last: Slot,
    },
    /// Leader → every replica: "I still lead"; carries the commit point, and a sequence
    /// number that read-index confirmations wait for.
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's commit point.
        commit: Slot,
        /// The leader's heartbeat sequence number.
        seq: u64,
    },
    /// Acceptor → leader: "at the time I got heartbeat `seq`, I had promised nothing
    /// above `ballot`".
    HeartbeatAck {
        /// The leader's ballot.
        ballot: Ballot,
        /// The heartbeat acknowledged.
        seq: u64,
    },
    /// Follower → leader: what is your read index? Asked for linearizable reads that
    /// arrived at the follower before this request left. Numbered per boot, so that a
    /// reply to a request from before a restart is never taken for a newer one.
    ReadIndex {
        /// The sender's promised ballot.
        ballot: Ballot,
        /// A random number the sender drew when it started.
        boot: u64,
        /// The request's number in this boot.
        seq: u64,
    },
    /// Leader → follower, once a phase-2 quorum confirmed its ballot after the request
    /// arrived: reads covered by request `seq` may be served once `index` is applied.
    ReadIndexReply {
        /// The leader's ballot.
        ballot: Ballot,
        /// The request's boot, echoed.
        boot: u64,
        /// The request's number, echoed.
        seq: u64,
        /// The leader's commit point when the request arrived (or the last slot it
        /// recovered, if higher).
        index: Slot,
    },
    /// Follower → leader: commands a client gave to a follower. Numbered, so that a
    /// duplicate (the network may deliver a message twice) is proposed only once.
    Forward {
        /// The sender's promised ballot (the leader it believes in).
        ballot: Ballot,
        /// A random number the sender drew when it started: numbering restarts with it.
        boot: u64,
        /// The sender's forward number in this boot.
        seq: u64,
        /// The commands.
        commands: Vec<C>,
    },
    /// Leader → a voter: campaign now, to take over (a leadership transfer, etcd's
    /// `MoveLeader`). Heeded only from the leader the voter follows, at its ballot.
    Campaign {
        /// The leader's ballot.
        ballot: Ballot,
    },
    /// Lagging replica → leader: send me the chosen entries from `from` on.
    CatchUp {
        /// The sender's promised ballot.
        ballot: Ballot,
        /// The first slot wanted.
        from: Slot,
    },
    /// Chosen entries, in answer to [`Message::CatchUp`].
    Chosen {
        /// The sender's ballot.
        ballot: Ballot,
        /// The slot of `entries[0]`.
        first: Slot,
        /// Chosen entries with the ballot the sender holds them at.
        entries: Vec<LogEntry<C>>,
        /// The sender's commit point.
        commit: Slot,
    },
    /// One chunk of an application snapshot, in answer to a [`Message::CatchUp`] for
    /// slots the sender has compacted.
    Snapshot {
        /// The sender's ballot.
        ballot: Ballot,
        /// The last slot the snapshot covers.
        index: Slot,
        /// The membership after every slot through `index`: the configurations a
        /// replica installing the snapshot must respect, as the log left them there.
        membership: Membership,
        /// Byte offset of `data` in the snapshot.
        offset: u64,
        /// The snapshot's total size.
        total: u64,
        /// The bytes.
        data: Vec<u8>,
    },
}

impl<C> Message<C> {
    /// The ballot the message carries.
    pub fn ballot(&self) -> Ballot {
        match *self {
            Message::Prepare { ballot, .. }
            | Message::Promise { ballot, .. }
            | Message::Behind { ballot, .. }
            | Message::Accept { ballot, .. }
            | Message::Accepted { ballot, .. }
            | Message::Heartbeat { ballot, .. }
            | Message::HeartbeatAck { ballot, .. }
            | Message::ReadIndex { ballot, .. }
            | Message::ReadIndexReply { ballot, .. }
            | Message::Forward { ballot, .. }
            | Message::CatchUp { ballot, .. }
            | Message::Campaign { ballot }
            | Message::Chosen { ballot, .. }
            | Message::Snapshot { ballot, .. } => ballot,
            // A nack is evidence of the ballot promised, not the one refused.
            Message::Nack { promised, .. } => promised,
        }
    }

    /// The message's name, for traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Prepare { .. } => "prepare",
            Message::Promise { .. } => "promise",
            Message::Nack { .. } => "nack",
            Message::Behind { .. } => "behind",
            Message::Accept { .. } => "accept",
            Message::Accepted { .. } => "accepted",
            Message::Heartbeat { .. } => "heartbeat",
            Message::HeartbeatAck { .. } => "heartbeat-ack",
            Message::ReadIndex { .. } => "read-index",
            Message::ReadIndexReply { .. } => "read-index-reply",
            Message::Forward { .. } => "forward",
            Message::CatchUp { .. } => "catch-up",
            Message::Campaign { .. } => "campaign",
            Message::Chosen { .. } => "chosen",
            Message::Snapshot { .. } => "snapshot",
        }
    }
}

/// A write to the replica's durable state. The storage layer applies writes in order;
/// for a slot written twice, the later write wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write<C> {
    /// The promised ballot.
    Promise(Ballot),
    /// Votes at `ballot` for `first..first + entries.len()`.
    Votes {
        /// The ballot the entries were accepted at.
        ballot: Ballot,
        /// The slot of `entries[0]`.
        first: Slot,
        /// The entries.
        entries: Batch<C>,
    },
    /// Chosen entries learned by catch-up, each with the ballot the sender held it at.
    Chosen {
        /// The slot of `entries[0]`.
        first: Slot,
        /// The entries.
        entries: Vec<LogEntry<C>>,
    },
    /// The commit point. A hint: losing it loses no safety (it is learned again), so it
    /// may ride on the next sync rather than force one.
    Commit(Slot),
    /// An application snapshot covering every slot through `index`; slots up to it may be
    /// released.
    Snapshot {
        /// The last slot covered.
        index: Slot,
        /// The membership after every slot through `index` (the log's changes up to
        /// there are released with it).
        membership: Membership,
        /// The application's bytes.
        data: SnapshotData,
    },
}

/// Why a read could not be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadError {
    /// This replica is not the leader; `leader` is the one it knows of, if any.
    NotLeader {
        /// The leader this replica believes in.
        leader: Option<NodeId>,
    },
    /// The leader lost its ballot before it could confirm the read.
    LeadershipLost,
}

/// What a replica asks its driver to do, **in order**: an action waits for every
/// [`Action::Persist`] emitted before it (by this replica) to be durable. So an ack that
/// follows a persist is sent only once the state it reports is durable, while sends
/// emitted before a persist (the leader's accepts to its peers) go out in parallel with it.
/// An [`Action::Apply`] may run ahead of the persists before it (never ahead of an earlier
/// apply or install): its entry is chosen, so durable on a phase-2 quorum already.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<C> {
    /// Make `Write` durable (fdatasync, batched with others).
    Persist(Write<C>),
    /// The commit point moved through this slot. A hint for storage that nothing waits
    /// for: losing it loses no safety (the commit point is learned again), so it is
    /// written with the next persist (as [`Write::Commit`]) rather than synced alone.
    CommitHint(Slot),
    /// Send `message` to `to` (which may be this replica itself: deliver it locally, as
    /// any other, in order).
    Send {
        /// The recipient.
        to: NodeId,
        /// The message.
        message: Message<C>,
    },
    /// Apply the chosen `entry` at `slot` to the state machine. Emitted strictly in slot
    /// order, once per slot.
    Apply {
        /// The slot.
        slot: Slot,
        /// The entry.
        entry: Entry<C>,
    },
    /// Replace the state machine with this snapshot, covering every slot through `index`.
    /// Applies resume at `index + 1`.
    InstallSnapshot {
        /// The last slot covered.
        index: Slot,
        /// The application's bytes.
        data: SnapshotData,
    },
    /// Send `data`, the snapshot covering every slot through `index`, to `to`: as
    /// [`Message::Snapshot`] chunks of at most `chunk_bytes` at `ballot`
    /// ([`Action::snapshot_chunks`]). The driver streams them at its transport's pace
    /// rather than all at once; a chunk it cannot read or send is simply lost (the
    /// replica sends the snapshot again if the peer still needs it).
    SendSnapshot {
        /// The recipient.
        to: NodeId,
        /// The ballot the chunks carry.
        ballot: Ballot,
        /// The last slot covered.
        index: Slot,
        /// The membership after every slot through `index`.
        membership: Membership,
        /// The application's bytes.
        data: SnapshotData,
        /// At most this many bytes per chunk.
        chunk_bytes: usize,
    },
    /// Read `id` may now be served from the local state machine: it has applied every
    /// write that completed before the read arrived.
    ReadReady {
        /// The read's id, as given to `read`.
        id: u64,
    },
    /// Read `id` cannot be served here; the caller retries (elsewhere).
    ReadFailed {
        /// The read's id.
        id: u64,
        /// Why.
        error: ReadError,
    },
}

impl<C> Action<C> {
    /// The messages of a [`Action::SendSnapshot`], each chunk read as the iterator reaches
    /// it; `None` for any other action.
    #[allow(clippy::type_complexity)]
    pub fn snapshot_chunks(
        &self,
    ) -> Option<(
        NodeId,
        impl Iterator<Item = std::io::Result<Message<C>>> + Send + 'static,
    )> {
        let Action::SendSnapshot {
            to,
            ballot,
            index,
            membership,
            data,
            chunk_bytes,
        } = self
        else {
            return None;
        };
        let (ballot, index, total) = (*ballot, *index, data.len());
        let membership = membership.clone();
        let messages = data.chunks(*chunk_bytes).map(move |chunk| {
            chunk.map(|(offset, data)| Message::Snapshot {
                ballot,
                index,
                membership: membership.clone(),
                offset,
                total,
                data,
            })
        });
        Some((*to, messages))
    }
}
