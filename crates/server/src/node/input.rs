//! What reaches the core: its queue, the inputs on it, and a client's write made into
//! its command on the client's task.

use node::RequestIds;
use paxos::multi::{Message, Slot, SnapshotData};
use paxos::NodeId;
use storage::Completion;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tonic::Status;

use super::Core;
use crate::machine::{self, Applied};
use crate::payload::Payload;
use crate::proto::synodpb::command::Op;
use crate::watchers;
use crate::wire::Stamp;

/// The way into the core's queue.
pub type Inputs = UnboundedSender<Input>;

/// The core's end of its queue.
pub type InputQueue = UnboundedReceiver<Input>;

/// Where the answer to a command or read goes.
pub type Reply<T> = oneshot::Sender<Result<T, Status>>;

/// A closure run on the core with access to its state (status, lease TTLs, hashes).
pub type Query = Box<dyn FnOnce(&mut Core) + Send>;

/// What reaches the core.
pub enum Input {
    /// A message from a peer, the bytes of its frame (room in the queue, given back
    /// once the core takes it), and the peer's stamp if it traces.
    Peer(NodeId, Message<Payload>, usize, Option<Stamp>),
    /// A peer's connection to this member closed.
    PeerLost(NodeId),
    /// A client's write, already made into its command.
    Propose(Proposal, Reply<Applied>),
    /// A client's linearizable read: answered with a view once it may be served.
    Read(Reply<Applied>),
    /// A watch stream's request.
    Watch(watchers::Request),
    /// Run a closure on the core.
    Query(Query),
    /// The committer finished a persist.
    Persisted(Completion),
    /// A background snapshot is in its file (or could not be written).
    SnapshotReady(Slot, Result<SnapshotData, String>),
    /// Stop.
    Shutdown,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Peer(from, m, ..) => write!(f, "Peer({from}, {})", m.kind()),
            Input::PeerLost(from) => write!(f, "PeerLost({from})"),
            Input::Propose(proposal, _) => write!(f, "Propose({})", proposal.id),
            Input::Read(_) => write!(f, "Read"),
            Input::Watch(r) => write!(f, "Watch({r:?})"),
            Input::Query(_) => write!(f, "Query"),
            Input::Persisted((tag, r)) => write!(f, "Persisted({tag}, {})", r.is_ok()),
            Input::SnapshotReady(slot, _) => write!(f, "SnapshotReady({slot})"),
            Input::Shutdown => write!(f, "Shutdown"),
        }
    }
}

/// A client's write made into the command the log carries, by the client's task: the
/// core only sequences it (see [`node::Node::propose_command`]).
#[derive(Debug)]
pub struct Proposal {
    /// The request id, from the core's [`RequestIds`].
    pub id: u64,
    /// The command: this member, `id` and the operation, encoded.
    pub command: Payload,
}

impl Proposal {
    /// `op` from this member (`me`), with the next of `ids`.
    pub fn new(me: NodeId, ids: &RequestIds, op: Op) -> Proposal {
        Proposal::new_as(me, ids, op, &kv::Caller::default())
    }

    /// `op` from this member (`me`) on behalf of `caller`, with the next of `ids`.
    pub fn new_as(me: NodeId, ids: &RequestIds, op: Op, caller: &kv::Caller) -> Proposal {
        let id = ids.next();
        Proposal {
            id,
            command: machine::encode_as(me, id, op, caller),
        }
    }

    /// The operation it carries, for tests that play the core.
    #[cfg(test)]
    pub(crate) fn op(&self) -> Option<Op> {
        use prost::Message as _;
        crate::proto::synodpb::Command::decode(&self.command.0[..])
            .ok()?
            .op
    }
}

/// The committer's answer, put straight into the core's queue from the committer's thread.
pub(crate) fn persisted(inputs: Inputs) -> impl FnOnce(Completion) + Send {
    move |completion| {
        let _ = inputs.send(Input::Persisted(completion));
    }
}
