//! Every size and count limit of a member, in one place, each named with its unit, and
//! the relations between them checked when the crate compiles.

/// etcd's default `--max-request-bytes`.
pub const REQUEST_BYTES_DEFAULT: usize = 1536 * 1024;
/// The largest `--max-request-bytes` accepted: a peer frame must hold one batch (about
/// 1 MiB) plus one command.
pub const REQUEST_BYTES_CEILING: usize = 16 << 20;
/// gRPC's own bytes allowed on top of the largest request (etcd allows the same margin).
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// etcd's default `--quota-backend-bytes`.
pub const QUOTA_BACKEND_BYTES_DEFAULT: u64 = 2 << 30;

/// Client requests (writes and linearizable reads) waiting in the core's queue; beyond
/// it, clients hear etcd's "too many requests" (`crate::inflow`).
pub const CLIENT_INPUTS_MAX: usize = 10_000;
/// Commands kept waiting for a leader; beyond it, their clients hear "no leader".
pub const PARKED_COMMANDS_MAX: usize = 10_000;
/// Bytes of peer messages waiting in the core's queue; beyond it, peer connections are
/// read no further until the core catches up (`crate::inflow`).
pub const PEER_INPUT_BYTES_MAX: usize = 64 << 20;

/// The largest peer frame body accepted: a batch is at most about 1 MiB of commands and a
/// snapshot chunk 256 KiB, so anything near this is garbage or an attack.
pub const PEER_FRAME_BYTES_MAX: usize = 32 << 20;
/// A peer handshake (or a joining member's question) is small; a larger first frame is
/// garbage.
pub const PEER_HELLO_BYTES_MAX: usize = 4096;
/// Messages queued to one peer before new ones are dropped.
pub const PEER_QUEUE_MESSAGES_MAX: usize = 16 * 1024;
/// Bytes gathered into one write to a peer.
pub const PEER_COALESCE_BYTES: usize = 1 << 20;
/// Connections allowed to be waiting for their handshake at once. Members need one each;
/// beyond this, new connections are closed at once, so a flood of idle connections
/// cannot hold a task and a socket each for the handshake's timeout.
pub const PEER_HANDSHAKES_MAX: usize = 64;
/// Snapshot chunks queued to one peer and not yet written to its socket: a stream reads
/// the next chunk from disk only when an earlier one has gone out.
pub const PEER_SNAPSHOT_CHUNKS_IN_FLIGHT: usize = 4;

/// Bytes per message of a Maintenance `Snapshot` stream.
pub const BACKUP_CHUNK_BYTES: usize = 32 << 10;

/// The engine's batches of new commands are bounded near this (`paxos::multi::Options`).
const BATCH_BYTES_ABOUT: usize = 1 << 20;

const _: () = {
    assert!(REQUEST_BYTES_DEFAULT <= REQUEST_BYTES_CEILING);
    // A frame holds a whole batch plus the largest command.
    assert!(REQUEST_BYTES_CEILING + BATCH_BYTES_ABOUT <= PEER_FRAME_BYTES_MAX);
    // The largest frame fits in the peer queue's room, so it can always be admitted.
    assert!(PEER_FRAME_BYTES_MAX <= PEER_INPUT_BYTES_MAX);
    assert!(PEER_HELLO_BYTES_MAX < PEER_FRAME_BYTES_MAX);
    assert!(BACKUP_CHUNK_BYTES > 0 && PEER_SNAPSHOT_CHUNKS_IN_FLIGHT > 0);
};
