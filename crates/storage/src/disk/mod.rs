//! The disk implementation: segment files of checksummed records, group commit, snapshot
//! files written atomically, and verified recovery.
//!
//! Group commit: every caller of [`Storage::persist`] appends its encoded records to a
//! shared buffer and waits (parked). Whoever finds no sync in progress becomes the syncer:
//! it takes the whole buffer, writes it as one frame (one direct, synchronous write, or a
//! `write` and an `fdatasync` where direct I/O is not offered), and wakes exactly the
//! callers the sync covered. While it syncs, new callers fill the next
//! buffer, so under load each sync carries many callers' writes; the syncer keeps going
//! for a few batches, then hands the role to a waiter. Callers that are tasks rather than
//! threads go through [`crate::Committer`], one thread that does the same for them.
//!
//! # Layout
//! - this file: the storage, its state, and the `Storage` contract.
//! - `direct.rs`: direct I/O (whole aligned blocks, the page-cache fallback, undo) and
//!   zero-filling ahead of the writes.
//! - `segments.rs`: segment files: creation, rotation, release, recovery on open.
//! - `commit.rs`: group commit: the syncer's write and sync of each batch, and waiting
//!   for it.
//! - `staged.rs`: a write planned here and issued by the caller's io_uring.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::Thread;

use paxos::multi::{Durable, SnapshotData, Write};
use paxos::Ballot;

use crate::format::{
    decode_header, encode_frame, encode_header, encode_record, scan, scan_frames, Codec, Header,
    Identity, Record, FRAMED_SINCE, FRAME_OVERHEAD, HEADER_LEN, VERSION,
};
use crate::reaper::Reaper;
use crate::snapshot::{self, snapshot_path, write_snapshot, SnapshotFile};
use crate::state::State;
use crate::{Storage, StorageError};

mod commit;
mod direct;
mod segments;
mod staged;

use direct::*;
pub(crate) use segments::sync_dir;
use segments::*;
pub(crate) use staged::Staged;

/// A syncer whose own write is durable syncs this many batches in all before it hands
/// the role to a waiter.
const SYNCS_FOR_OTHERS: u32 = 4;

/// A segment is zero-filled this far ahead of its writes. Overwriting blocks that are
/// already written and durable changes no file-system metadata, so each `fdatasync`
/// flushes the data alone: no journal commit for a new file size or newly allocated
/// blocks (measured on ext4: 3 members syncing at once on one disk, p50 271 → 207 µs).
/// Only the sync that follows an extension pays for it, once per chunk.
const ZERO_AHEAD: u64 = 1 << 20;

/// With direct I/O, writes start and end on a multiple of this (the file system's block
/// on ext4 and xfs; a multiple of any disk's logical sector).
const BLOCK: u64 = BLOCK_BYTES as u64;
const BLOCK_BYTES: usize = 4096;

/// Tunables of the disk implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskOptions {
    /// Who the directory belongs to.
    pub identity: Identity,
    /// A segment is closed and a new one started once it exceeds this many bytes.
    pub segment_bytes: u64,
    /// Write segments with direct I/O (`O_DIRECT | O_DSYNC`, Linux) where the file system
    /// allows it; otherwise, or when false, through the page cache with `fdatasync`.
    pub direct_io: bool,
}

impl DiskOptions {
    /// Defaults for `identity`: 64 MiB segments, direct I/O.
    pub fn new(identity: Identity) -> DiskOptions {
        DiskOptions {
            identity,
            segment_bytes: 64 << 20,
            direct_io: true,
        }
    }
}

/// Storage in a directory.
#[derive(Debug)]
pub struct DiskStorage<C> {
    dir: PathBuf,
    options: DiskOptions,
    recovered: Durable<C>,
    queue: Mutex<Queue>,
    /// Calls whose batch completed (synced or failed): waiters read it without the lock.
    completed: AtomicU64,
    /// A waiter asked to take over as syncer (0: none).
    designated: AtomicU64,
    /// Whether any batch ever failed (only then do callers look for their failure).
    any_failure: AtomicBool,
    /// Syncs done, and microseconds spent in write + fdatasync (for benchmarks).
    syncs: AtomicU64,
    io_micros: AtomicU64,
    io: Mutex<Io>,
    /// Deletes released files off the syncing thread.
    reaper: Reaper,
}

/// A closed or open segment and the highest slot it holds a vote for.
#[derive(Clone, Copy, Debug)]
struct Segment {
    number: u64,
    max_slot: u64,
}

/// How a batch failed (errors are not `Clone`; each waiter gets its own).
#[derive(Clone, Copy, Debug)]
enum Failure {
    Full,
    Io(ErrorKind),
}

/// What callers share: the writes waiting for a sync, and how syncs went.
#[derive(Debug)]
struct Queue {
    /// Encoded records waiting for the next sync, and the highest slot among them.
    pending: Vec<u8>,
    pending_max_slot: u64,
    /// A snapshot record waiting in `pending`: release segments once it is durable.
    pending_snapshot: Option<u64>,
    /// Calls so far.
    appended: u64,
    syncing: bool,
    /// Callers waiting for a sync, with their call number (woken one by one, so that a
    /// sync does not stampede every thread into the lock at once).
    waiters: Vec<(u64, Thread)>,
    /// Recent failed batches: (first call, last call, how).
    failures: VecDeque<(u64, u64, Failure)>,
    /// What the next segment's `State` record must carry.
    promised: Ballot,
    commit: u64,
}

/// One call's writes, encoded, with what the queue must learn from them.
struct Encoded {
    bytes: Vec<u8>,
    max_slot: u64,
    snapshot: Option<u64>,
    promised: Ballot,
    commit: u64,
}

/// A direct write planned for the end of the current segment (see
/// [`DiskStorage::plan_direct`]): whole blocks from `start` to `stop`, the frame in them
/// ending at `end`.
#[derive(Debug)]
struct DirectWrite {
    buffer: AlignedBuffer,
    start: u64,
    stop: u64,
    end: u64,
    frame_at: usize,
    frame_len: usize,
}

impl DirectWrite {
    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn frame(&self) -> &[u8] {
        &self.bytes()[self.frame_at..self.frame_at + self.frame_len]
    }
}

/// What only the syncer touches (its lock is never held by a waiting caller).
#[derive(Debug)]
struct Io {
    file: File,
    /// Whether `file` was opened for direct I/O: each write is then durable when it
    /// returns, and covers whole blocks (see [`DiskStorage::write_direct`]).
    direct: bool,
    /// With direct I/O, the current segment's bytes from the last block boundary at or
    /// before `length` up to `length`: the next write starts at that boundary.
    tail: Vec<u8>,
    /// Bytes of frames in the current segment: the next frame goes here.
    length: u64,
    /// The current segment's size: every byte from `length` to here is zero.
    zeroed: u64,
    segments: VecDeque<Segment>,
    /// A staged write is out (see [`DiskStorage::stage`]): nothing else may write.
    staged: bool,
}

/// What recovering one segment found.
struct Recovered {
    /// The highest slot it holds a vote for.
    max_slot: u64,
    /// Where its records end.
    length: u64,
    /// Its size (zeros from `length` on).
    size: u64,
    /// Its format version.
    version: u32,
}

impl<C: Codec + Clone> DiskStorage<C> {
    /// Opens (or creates) the data directory and recovers it: every record is verified,
    /// a torn tail is cut off, anything else that is wrong is an error naming the file.
    pub fn open(
        dir: impl Into<PathBuf>,
        options: DiskOptions,
    ) -> Result<DiskStorage<C>, StorageError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        remove_temporaries(&dir)?;
        let mut numbers = list(&dir, "wal-", ".log")?;
        if numbers.is_empty() {
            create_segment(&dir, &options, 0, Ballot::ZERO, 0)?;
            numbers.push(0);
        }
        for pair in numbers.windows(2) {
            if pair[1] != pair[0] + 1 {
                let segment = pair[0] + 1;
                return Err(StorageError::MissingSegment { dir, segment });
            }
        }
        let mut state = State::default();
        let mut segments = VecDeque::new();
        let last = numbers.len() - 1;
        let mut current = None;
        for (i, &number) in numbers.iter().enumerate() {
            let path = segment_path(&dir, number);
            let found = recover_segment(&path, &options, number, i == last, &mut state)?;
            let max_slot = found.max_slot;
            segments.push_back(Segment { number, max_slot });
            current = Some(found);
        }
        let (mut length, mut zeroed) = current.as_ref().map_or((0, 0), |c| (c.length, c.size));
        let mut number = numbers[last];
        if current.is_some_and(|c| c.version < FRAMED_SINCE) {
            // A directory from before frames: it is read as it is, and written to from a
            // segment of the current version on.
            number += 1;
            length = create_segment(&dir, &options, number, state.promised, state.commit)?;
            zeroed = length;
            let max_slot = 0;
            segments.push_back(Segment { number, max_slot });
        }
        if state.snapshot_index > 0 {
            let path = snapshot_path(&dir, state.snapshot_index);
            let file = SnapshotFile::open(&path, state.snapshot_index)?;
            state.snapshot = Some(SnapshotData::new(file));
        }
        let current = segment_path(&dir, number);
        let (file, direct, tail) = open_for_append(&current, length, options.direct_io)?;
        let queue = Queue {
            pending: Vec::new(),
            pending_max_slot: 0,
            pending_snapshot: None,
            appended: 0,
            syncing: false,
            waiters: Vec::new(),
            failures: VecDeque::new(),
            promised: state.promised,
            commit: state.commit,
        };
        let io = Io {
            file,
            direct,
            tail,
            length,
            zeroed,
            segments,
            staged: false,
        };
        let reaper = Reaper::new(&dir);
        Ok(DiskStorage {
            dir,
            options,
            recovered: state.durable(),
            queue: Mutex::new(queue),
            completed: AtomicU64::new(0),
            designated: AtomicU64::new(0),
            any_failure: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
            io_micros: AtomicU64::new(0),
            io: Mutex::new(io),
            reaper,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_io(&self) -> MutexGuard<'_, Io> {
        self.io.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Encodes `writes`; snapshot files are written (durably) here, before their records.
    fn encode(&self, writes: Vec<Write<C>>) -> Result<Encoded, StorageError> {
        let mut bytes = Vec::new();
        let (mut max_slot, mut snapshot, mut promised, mut commit) = (0, None, Ballot::ZERO, 0);
        for write in writes {
            let (record, data) = Record::of(write);
            max_slot = max_slot.max(record.max_slot());
            match (&record, data) {
                (Record::Promise(b) | Record::Votes { ballot: b, .. }, _) => {
                    promised = promised.max(*b);
                }
                (Record::Commit(slot), _) => commit = commit.max(*slot),
                (Record::Snapshot { index, .. }, Some(data)) => {
                    let path = snapshot_path(&self.dir, *index);
                    // The server serialises its own snapshots straight into their file.
                    if data.stored_at() != Some(path.as_path()) {
                        write_snapshot(&self.dir, *index, |out| snapshot::copy(&data, out))?;
                    }
                    snapshot = Some(*index);
                    commit = commit.max(*index);
                }
                _ => {}
            }
            encode_record(&record, &mut bytes);
        }
        Ok(Encoded {
            bytes,
            max_slot,
            snapshot,
            promised,
            commit,
        })
    }

    /// The error a failed write of the current segment reports.
    fn error(&self, inner: &Io, failure: Failure) -> StorageError {
        let path = self.current_path(inner);
        match failure {
            Failure::Full => StorageError::Full { path },
            Failure::Io(kind) => StorageError::Io {
                path,
                error: kind.into(),
            },
        }
    }

    fn current_path(&self, inner: &Io) -> PathBuf {
        segment_path(&self.dir, inner.segments.back().map_or(0, |s| s.number))
    }

    /// Whether the current segment is written with direct I/O (see [`DiskOptions`]).
    pub fn writes_direct(&self) -> bool {
        self.lock_io().direct
    }

    /// Syncs so far, and the microseconds they took (write and fdatasync together; for a
    /// staged write, from staging to its completion being reaped, the caller's delay in it).
    pub fn sync_stats(&self) -> (u64, u64) {
        let syncs = self.syncs.load(Ordering::Relaxed);
        (syncs, self.io_micros.load(Ordering::Relaxed))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment files present, oldest first (for tests and operators).
    pub fn segments(&self) -> Vec<PathBuf> {
        let inner = self.lock_io();
        inner
            .segments
            .iter()
            .map(|s| segment_path(&self.dir, s.number))
            .collect()
    }
}

impl<C: Codec + Clone> Storage<C> for DiskStorage<C> {
    fn recovered(&self) -> Result<Durable<C>, StorageError> {
        Ok(self.recovered.clone())
    }

    fn persist(&self, writes: Vec<Write<C>>) -> Result<(), StorageError> {
        let Encoded {
            bytes,
            max_slot,
            snapshot,
            promised,
            commit,
        } = self.encode(writes)?;
        let mut inner = self.lock();
        inner.pending.extend_from_slice(&bytes);
        inner.pending_max_slot = inner.pending_max_slot.max(max_slot);
        if snapshot.is_some() {
            inner.pending_snapshot = snapshot.max(inner.pending_snapshot);
        }
        inner.promised = inner.promised.max(promised);
        inner.commit = inner.commit.max(commit);
        inner.appended += 1;
        let me = inner.appended;
        if inner.syncing {
            inner.waiters.push((me, std::thread::current()));
            drop(inner);
            self.wait_for(me);
        } else {
            self.run_syncer(inner, me);
        }
        if !self.any_failure.load(Ordering::Acquire) {
            return Ok(());
        }
        let inner = self.lock();
        let failed = inner
            .failures
            .iter()
            .find(|&&(first, last, _)| (first..=last).contains(&me));
        let failed = failed.map(|&(_, _, failure)| failure);
        drop(inner);
        match failed {
            None => Ok(()),
            Some(failure) => Err(self.error(&self.lock_io(), failure)),
        }
    }
}

/// Records a frame ending at `end`, holding votes up to `max_slot`, as written.
fn appended(inner: &mut Io, end: u64, max_slot: u64) {
    inner.length = end;
    if let Some(segment) = inner.segments.back_mut() {
        segment.max_slot = segment.max_slot.max(max_slot);
    }
}

/// After a failed fsync the kernel may have dropped the dirty pages: retrying could report
/// success for data that is gone. Never retry, never acknowledge: stop the process.
pub(crate) fn fatal(path: &Path, what: &str, error: &dyn std::fmt::Display) -> ! {
    eprintln!(
        "synod: fatal: {what} failed on {}: {error}; stopping without acknowledging \
         anything not already durable",
        path.display()
    );
    std::process::abort()
}

fn failure(error: &std::io::Error) -> Failure {
    match error.kind() {
        ErrorKind::StorageFull => Failure::Full,
        kind => Failure::Io(kind),
    }
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> StorageError + '_ {
    move |error| StorageError::Io {
        path: path.to_path_buf(),
        error,
    }
}

#[cfg(test)]
pub(crate) mod tests;
