//! Synod's durable acceptor state: the promise, the votes, the commit hint and snapshots,
//! behind one [`Storage`] trait with three implementations that keep the same contract.
//!
//! # The contract
//! - **Durable when `persist` returns `Ok`.** Every write passed to [`Storage::persist`]
//!   survives any later crash once the call returned `Ok`. Concurrent callers may share
//!   one sync (group commit); none returns before the sync covering its writes returned.
//! - **Prefix atomicity.** Each write is atomic: after a crash it is there whole or not
//!   at all. Writes are durable in order: if a write survived a crash, every write
//!   persisted before it survived too. A `persist` that had not returned when the process
//!   crashed may leave any prefix of its writes.
//! - **Latest wins.** A later vote for a slot replaces an earlier one; the promise and the
//!   commit point only rise; a snapshot replaces every vote at or below its index.
//! - **Errors.** `Err` from `persist` means none of that call's writes may be assumed
//!   durable, and the caller must not acknowledge anything that depends on them (the node
//!   reports the error; a full disk is [`StorageError::Full`]). A failed *sync* is not
//!   an error the disk implementation returns: it aborts the process, because after a
//!   failed fsync the kernel may have dropped the dirty pages, and retrying would report
//!   success for data that is gone (PostgreSQL's "fsyncgate").
//! - **Recovery.** Opening verifies every frame (one per write) and record. A torn last
//!   write (cut short, or with a sector that reads as zeros, and nothing valid after it)
//!   is zeroed: it was never acknowledged. Anything else that fails its checksum stops the
//!   open with an error naming the file and byte offset
//!   (`docs/OPERATIONS.md` says how to rebuild the member from its peers).
//!
//! # Layout
//! - [`format`](mod@format): the bytes on disk (segment headers, frames, records) and their decoders, which
//!   never panic. Documented byte by byte in `docs/STORAGE-FORMAT.md`.
//! - [`state`]: the fold of writes (or decoded records) into what a replica restarts from.
//! - [`memory`]: [`MemoryStorage`], the contract in memory.
//! - [`faulty`]: [`FaultyStorage`], for the simulator: loses unsynced writes on crash,
//!   tears the last write, returns injected I/O errors.
//! - [`disk`]: [`DiskStorage`], segment files (written with direct I/O where offered),
//!   group commit, recovery.
//! - [`snapshot`]: snapshot files, written by streaming and read back in chunks.
//! - `reaper`: deletes released segments and snapshots on a thread of its own.
//! - [`committer`]: [`Committer`], group commit on a dedicated thread for callers that
//!   are tasks, not threads.
//! - [`ring`]: [`Ring`], log writes issued through io_uring by a caller on an event loop
//!   (the server's core), one at a time, with no thread between the caller and the disk.

use std::fmt;
use std::path::PathBuf;

use paxos::multi::{Durable, Write};

pub mod committer;
pub mod disk;
pub mod faulty;
pub mod format;
pub mod memory;
mod reaper;
pub mod ring;
pub mod snapshot;
pub mod state;

pub use committer::{Committer, Completion, Notify};
pub use disk::{DiskOptions, DiskStorage};
pub use faulty::FaultyStorage;
pub use format::{Codec, Identity};
pub use memory::MemoryStorage;
pub use ring::Ring;
pub use snapshot::{write_snapshot, SnapshotFile};

/// A replica's durable state.
pub trait Storage<C> {
    /// What a replica restarts from: everything durable when the storage was opened
    /// (call it right after opening). An error means the state cannot be trusted.
    fn recovered(&self) -> Result<Durable<C>, StorageError>;
    /// Makes `writes` durable, in order. See the crate documentation for the contract.
    fn persist(&self, writes: Vec<Write<C>>) -> Result<(), StorageError>;
}

/// What can go wrong.
#[derive(Debug)]
pub enum StorageError {
    /// An I/O error on `path`.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The disk is full: nothing of the failed call was made durable.
    Full {
        /// The file being written.
        path: PathBuf,
    },
    /// A record or file that fails its checksum (or cannot be what this code wrote).
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The data directory belongs to another cluster or member.
    Foreign {
        /// The file whose header says so.
        path: PathBuf,
        /// Whose it is.
        found: Identity,
        /// Whose it should be.
        expected: Identity,
    },
    /// Written by a newer format version than this code reads.
    NewerVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        version: u32,
    },
    /// A segment in the middle of the log is missing.
    MissingSegment {
        /// The data directory.
        dir: PathBuf,
        /// The missing segment's number.
        segment: u64,
    },
    /// The log refers to a snapshot that is missing or damaged.
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// Injected by [`FaultyStorage`].
    Injected,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const RECOVER: &str = "see docs/OPERATIONS.md to rebuild this member from its peers";
        match self {
            StorageError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            StorageError::Full { path } => write!(
                f,
                "{}: no space left on the device; nothing of the failed write was acknowledged",
                path.display()
            ),
            StorageError::Corrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "{} is corrupt at byte offset {offset}: {reason}; {RECOVER}",
                path.display()
            ),
            StorageError::Foreign {
                path,
                found,
                expected,
            } => write!(
                f,
                "{} belongs to cluster {} member {}, not cluster {} member {}; \
                 point --data-dir at this member's own directory",
                path.display(),
                found.cluster,
                found.member,
                expected.cluster,
                expected.member
            ),
            StorageError::NewerVersion { path, version } => write!(
                f,
                "{} has format version {version}, newer than this build reads \
                 (segments up to {}); run a newer synod",
                path.display(),
                format::VERSION
            ),
            StorageError::MissingSegment { dir, segment } => write!(
                f,
                "{}: log segment {segment} is missing between others; {RECOVER}",
                dir.display()
            ),
            StorageError::Snapshot { path, reason } => {
                write!(f, "{}: {reason}; {RECOVER}", path.display())
            }
            StorageError::Injected => write!(f, "injected I/O error"),
        }
    }
}

impl std::error::Error for StorageError {}

#[cfg(test)]
mod conformance;
