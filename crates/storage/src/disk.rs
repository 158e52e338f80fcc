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

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write as _};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::Instant;

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

/// Writes [`DiskStorage::stage`] prepared.
#[derive(Debug)]
pub(crate) enum Staged {
    /// One direct write for the caller to issue.
    Direct(Box<StagedWrite>),
    /// Nothing to issue: the writes are durable already (or failed).
    Done(Result<(), StorageError>),
}

/// A direct write to issue: `bytes()` at offset `start()` of the file `fd`.
#[derive(Debug)]
pub(crate) struct StagedWrite {
    write: DirectWrite,
    fd: RawFd,
    max_slot: u64,
    snapshot: Option<u64>,
    started: Instant,
}

impl StagedWrite {
    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.write.bytes()
    }

    pub(crate) fn start(&self) -> u64 {
        self.write.start
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
                (Record::Snapshot { index }, Some(data)) => {
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

    /// The syncer's work: one write and one fdatasync for everything pending. The queue
    /// is unlocked meanwhile, so callers keep filling the next batch.
    fn sync_pending<'a>(&'a self, mut queue: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        queue.syncing = true;
        let bytes = std::mem::take(&mut queue.pending);
        let max_slot = std::mem::take(&mut queue.pending_max_slot);
        let snapshot = queue.pending_snapshot.take();
        let (first, last) = (self.completed.load(Ordering::Acquire) + 1, queue.appended);
        let (promised, commit) = (queue.promised, queue.commit);
        drop(queue);
        let started = Instant::now();
        let outcome = {
            let mut io = self.lock_io();
            let outcome = self.write_and_sync(&mut io, &bytes, max_slot, promised, commit);
            if let (Ok(()), Some(index)) = (&outcome, snapshot) {
                self.release(&mut io, index);
            }
            outcome
        };
        self.count_sync(started);
        let mut queue = self.lock();
        if let Err(failure) = outcome {
            queue.failures.push_back((first, last, failure));
            if queue.failures.len() > 64 {
                queue.failures.pop_front();
            }
            self.any_failure.store(true, Ordering::Release);
        }
        self.completed.store(last, Ordering::Release);
        queue.syncing = false;
        let mut i = 0;
        while i < queue.waiters.len() {
            if queue.waiters[i].0 <= last {
                queue.waiters.swap_remove(i).1.unpark();
            } else {
                i += 1;
            }
        }
        queue
    }

    fn count_sync(&self, started: Instant) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.io_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Syncs batch after batch while writes keep arriving; once its own call `me` is
    /// durable and it synced a few batches for others, hands the role to a waiter.
    fn run_syncer<'a>(&'a self, mut queue: MutexGuard<'a, Queue>, me: u64) {
        let mut rounds = 0;
        loop {
            queue = self.sync_pending(queue);
            rounds += 1;
            if queue.pending.is_empty() {
                return;
            }
            let mine_done = self.completed.load(Ordering::Acquire) >= me;
            if mine_done && rounds >= SYNCS_FOR_OTHERS {
                let next = queue.waiters.iter().min_by_key(|(seq, _)| *seq);
                if let Some((seq, thread)) = next {
                    self.designated.store(*seq, Ordering::Release);
                    thread.unpark();
                    return;
                }
            }
        }
    }

    /// Waits, parked, until call `me` is durable (or this thread is asked to sync).
    fn wait_for(&self, me: u64) {
        loop {
            std::thread::park();
            if self.completed.load(Ordering::Acquire) >= me {
                return;
            }
            if self.designated.load(Ordering::Acquire) != me {
                continue; // A spurious wake-up.
            }
            self.designated.store(0, Ordering::Release);
            let mut queue = self.lock();
            if self.completed.load(Ordering::Acquire) >= me {
                return;
            }
            if !queue.syncing {
                return self.run_syncer(queue, me);
            }
            queue.waiters.push((me, std::thread::current()));
        }
    }

    fn write_and_sync(
        &self,
        inner: &mut Io,
        bytes: &[u8],
        max_slot: u64,
        promised: Ballot,
        commit: u64,
    ) -> Result<(), Failure> {
        if inner.staged {
            // Its bytes would land where the staged write's do (see `stage`).
            return Err(Failure::Io(ErrorKind::ResourceBusy));
        }
        if bytes.is_empty() {
            return Ok(()); // Every earlier write is durable already.
        }
        let frame = self.frame(inner, bytes, promised, commit)?;
        let end = inner.length + frame.len() as u64;
        if inner.direct {
            let planned = self.plan_direct(inner, &frame, end);
            let written = inner.file.write_all_at(planned.bytes(), planned.start);
            self.finish_direct(inner, planned, written)?;
        } else {
            self.write_buffered(inner, &frame, end)?;
        }
        appended(inner, end, max_slot);
        Ok(())
    }

    /// Frames `bytes` for the end of the current segment, after starting a new segment
    /// if they do not fit in this one.
    fn frame(
        &self,
        inner: &mut Io,
        bytes: &[u8],
        promised: Ballot,
        commit: u64,
    ) -> Result<Vec<u8>, Failure> {
        if inner.length + (FRAME_OVERHEAD + bytes.len()) as u64 > self.options.segment_bytes
            && inner.length > fresh_segment_len()
        {
            self.rotate(inner, promised, commit)?;
        }
        let mut frame = Vec::with_capacity(FRAME_OVERHEAD + bytes.len());
        encode_frame(bytes, inner.length, &mut frame);
        Ok(frame)
    }

    /// Writes `frame` at the end of the current segment through the page cache, and
    /// syncs it.
    fn write_buffered(&self, inner: &mut Io, frame: &[u8], end: u64) -> Result<(), Failure> {
        if end > inner.zeroed {
            self.zero_ahead(inner, end)?;
        }
        let path = self.current_path(inner);
        if let Err(error) = inner.file.write_all_at(frame, inner.length) {
            // Zero the partial write again, so the next frame does not follow garbage; if
            // even that fails the log cannot be trusted: stop.
            // Synced too: the next write may go to a new segment, and this one is then
            // never synced again (garbage in a sealed segment is refused at start-up).
            let zeroed = write_zeros(&inner.file, inner.length, end);
            if zeroed.and_then(|()| inner.file.sync_data()).is_err() {
                fatal(&path, "zeroing a failed write", &error);
            }
            return Err(failure(&error));
        }
        if let Err(error) = inner.file.sync_data() {
            fatal(&path, "fdatasync", &error);
        }
        Ok(())
    }

    /// Plans the direct write of `frame` at the end of the current segment: one write of
    /// whole blocks, from the block boundary before the segment's end (its bytes up to the
    /// end rewritten as they are) through the frame, zeros after it to the next boundary,
    /// and, when the frame passes the zero-filled space, the next stretch of zeros. The
    /// write is durable when it returns (`O_DSYNC`): over blocks already written, the disk
    /// gets the data and a cache flush, and no page-cache writeback or journal commit runs
    /// (measured on ext4, 3 members on one disk: p50 245 → 190 µs per sync).
    fn plan_direct(&self, inner: &Io, frame: &[u8], end: u64) -> DirectWrite {
        let start = round_down(inner.length);
        let mut stop = round_up(end);
        if end > inner.zeroed {
            stop = stop.max(round_up(self.zero_target(inner.zeroed, end)));
        }
        let mut buffer = AlignedBuffer::zeroed(to_usize(stop - start));
        let (tail, rest) = buffer.as_mut().split_at_mut(inner.tail.len());
        tail.copy_from_slice(&inner.tail);
        rest[..frame.len()].copy_from_slice(frame);
        DirectWrite {
            buffer,
            start,
            stop,
            end,
            frame_at: inner.tail.len(),
            frame_len: frame.len(),
        }
    }

    /// Records a planned direct write as done, or undoes what a failed one may have left.
    fn finish_direct(
        &self,
        inner: &mut Io,
        planned: DirectWrite,
        written: std::io::Result<()>,
    ) -> Result<(), Failure> {
        let DirectWrite {
            buffer,
            start,
            stop,
            end,
            ..
        } = &planned;
        if let Err(error) = written {
            if error.raw_os_error() == Some(EINVAL) {
                // The file system took O_DIRECT but not these alignments (nothing was
                // written): go on through the page cache.
                return self.fall_back_to_buffered(inner, planned.frame(), *end);
            }
            self.undo_direct(inner, *end, &error);
            return Err(failure(&error));
        }
        inner.zeroed = inner.zeroed.max(*stop);
        let written = buffer.as_ref();
        inner.tail = written[to_usize(round_down(*end) - start)..to_usize(end - start)].to_vec();
        Ok(())
    }

    fn fall_back_to_buffered(&self, inner: &mut Io, frame: &[u8], end: u64) -> Result<(), Failure> {
        let path = self.current_path(inner);
        eprintln!(
            "synod: warning: {} takes O_DIRECT but refused a {BLOCK}-byte aligned write; \
             writing segments through the page cache instead",
            path.display()
        );
        match OpenOptions::new().write(true).open(&path) {
            Ok(file) => (inner.file, inner.direct, inner.tail) = (file, false, Vec::new()),
            Err(error) => fatal(&path, "reopening a segment", &error),
        }
        self.write_buffered(inner, frame, end)
    }

    /// After a failed direct write, which may have extended the segment or left part of
    /// its frame: cuts the extension off and zeros the frame's blocks again (the bytes
    /// before the frame rewritten as they were), durably. If that fails too the log
    /// cannot be trusted: stop.
    fn undo_direct(&self, inner: &mut Io, end: u64, error: &std::io::Error) {
        let start = round_down(inner.length);
        // Within the last block the segment already has: no allocation, no new failure.
        let stop = round_up(end.min(inner.zeroed)).max(round_up(inner.length));
        let mut buffer = AlignedBuffer::zeroed(to_usize(stop - start));
        buffer.as_mut()[..inner.tail.len()].copy_from_slice(&inner.tail);
        let undone = inner
            .file
            .set_len(inner.zeroed)
            .and_then(|()| inner.file.write_all_at(buffer.as_ref(), start))
            .and_then(|()| inner.file.sync_all());
        if undone.is_err() {
            fatal(&self.current_path(inner), "undoing a failed write", error);
        }
        inner.zeroed = inner.zeroed.max(stop);
    }

    /// How far to zero-fill a segment of size `zeroed` for a write ending at `end`: the
    /// next [`ZERO_AHEAD`] boundary, at most the segment's size limit, at least `end`.
    fn zero_target(&self, zeroed: u64, end: u64) -> u64 {
        let cap = self.options.segment_bytes.max(end);
        end.max((zeroed / ZERO_AHEAD + 1) * ZERO_AHEAD).min(cap)
    }

    /// Zero-fills the current segment from its size to past `end` (the next `fdatasync`
    /// makes the zeros durable with the frame). A failure (a full disk, mostly) cuts the
    /// partial extension off and fails the write: nothing was written yet.
    fn zero_ahead(&self, inner: &mut Io, end: u64) -> Result<(), Failure> {
        let target = self.zero_target(inner.zeroed, end);
        if let Err(error) = write_zeros(&inner.file, inner.zeroed, target) {
            let path = self.current_path(inner);
            if inner.file.set_len(inner.zeroed).is_err() {
                fatal(&path, "truncating after a failed extension", &error);
            }
            return Err(failure(&error));
        }
        inner.zeroed = target;
        Ok(())
    }

    /// Closes the current segment and opens the next, which starts with the promise and
    /// commit point so far (older segments then matter only for their votes).
    fn rotate(&self, inner: &mut Io, promised: Ballot, commit: u64) -> Result<(), Failure> {
        let number = inner.segments.back().map_or(0, |s| s.number + 1);
        let created = create_segment(&self.dir, &self.options, number, promised, commit);
        let path = segment_path(&self.dir, number);
        if let Err(StorageError::Io { error, .. }) = &created {
            if error.kind() == ErrorKind::StorageFull {
                let _ = fs::remove_file(&path);
                return Err(Failure::Full);
            }
        }
        let length = match created {
            Ok(length) => length,
            Err(error) => fatal(&path, "creating a segment", &error),
        };
        match open_for_append(&path, length, self.options.direct_io) {
            Ok((file, direct, tail)) => {
                (inner.file, inner.direct, inner.tail) = (file, direct, tail)
            }
            Err(error) => fatal(&path, "opening a new segment", &error),
        }
        inner.length = length;
        inner.zeroed = length;
        inner.segments.push_back(Segment {
            number,
            max_slot: 0,
        });
        Ok(())
    }

    /// A durable snapshot covers every slot through `index`: release the oldest segments
    /// whose votes it all covers (never the current one, never leaving a gap), and older
    /// snapshot files. The reaper deletes them, oldest segment first.
    fn release(&self, inner: &mut Io, index: u64) {
        let mut released = Vec::new();
        while inner.segments.len() > 1 && inner.segments[0].max_slot <= index {
            let Some(old) = inner.segments.pop_front() else {
                break;
            };
            released.push(segment_path(&self.dir, old.number));
        }
        if let Ok(snapshots) = list(&self.dir, "snap-", ".snap") {
            for old in snapshots.into_iter().filter(|&i| i < index) {
                released.push(snapshot_path(&self.dir, old));
            }
        }
        self.reaper.delete(released);
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

    /// Encodes `writes` and plans them as one direct write at the end of the log, which
    /// the caller issues itself ([`crate::Ring`]) and reports to [`DiskStorage::finish`].
    /// Until then nothing else may write this storage: no other staged write, and no
    /// [`Storage::persist`]. Where the segment is not written with direct I/O (or there
    /// is nothing to write) the writes are made durable here, before this returns.
    pub(crate) fn stage(&self, writes: Vec<Write<C>>) -> Result<Staged, StorageError> {
        if self.lock_io().staged {
            let error = std::io::Error::other("a staged write is still out");
            let path = self.current_path(&self.lock_io());
            return Err(StorageError::Io { path, error });
        }
        let encoded = self.encode(writes)?;
        let (bytes, max_slot, snapshot) = (encoded.bytes, encoded.max_slot, encoded.snapshot);
        let (promised, commit) = {
            let mut queue = self.lock();
            queue.promised = queue.promised.max(encoded.promised);
            queue.commit = queue.commit.max(encoded.commit);
            (queue.promised, queue.commit)
        };
        let started = Instant::now();
        let mut io = self.lock_io();
        if bytes.is_empty() {
            return Ok(Staged::Done(Ok(())));
        }
        let frame = match self.frame(&mut io, &bytes, promised, commit) {
            Ok(frame) => frame,
            Err(failure) => return Ok(Staged::Done(Err(self.error(&io, failure)))),
        };
        let end = io.length + frame.len() as u64;
        if !io.direct {
            // Direct I/O given up (or refused by a new segment): as `write_and_sync` does.
            let outcome = self.write_buffered(&mut io, &frame, end);
            if outcome.is_ok() {
                appended(&mut io, end, max_slot);
                if let Some(index) = snapshot {
                    self.release(&mut io, index);
                }
            }
            self.count_sync(started);
            return Ok(Staged::Done(outcome.map_err(|f| self.error(&io, f))));
        }
        let write = self.plan_direct(&io, &frame, end);
        let fd = io.file.as_raw_fd();
        io.staged = true;
        Ok(Staged::Direct(Box::new(StagedWrite {
            write,
            fd,
            max_slot,
            snapshot,
            started,
        })))
    }

    /// Records the outcome of a write [`DiskStorage::stage`] planned: durable, or failed
    /// (and what it may have left undone). `written` is what the kernel reported: the
    /// bytes it wrote (any rest is written here, as `write_all_at` would) or the error.
    pub(crate) fn finish(
        &self,
        staged: Staged,
        written: std::io::Result<usize>,
    ) -> Result<(), StorageError> {
        let staged = match staged {
            Staged::Done(outcome) => return outcome,
            Staged::Direct(staged) => *staged,
        };
        let mut io = self.lock_io();
        io.staged = false;
        let (start, bytes) = (staged.write.start, staged.write.bytes());
        let written = written.and_then(|n| match bytes.get(n..) {
            Some(rest) if !rest.is_empty() => io.file.write_all_at(rest, start + n as u64),
            _ => Ok(()),
        });
        let end = staged.write.end;
        let outcome = self.finish_direct(&mut io, staged.write, written);
        if outcome.is_ok() {
            appended(&mut io, end, staged.max_slot);
            if let Some(index) = staged.snapshot {
                self.release(&mut io, index);
            }
        }
        self.count_sync(staged.started);
        outcome.map_err(|failure| self.error(&io, failure))
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

/// The length of a segment holding only its header and `State` frame (a fixed size).
fn fresh_segment_len() -> u64 {
    let mut state = Vec::new();
    let record = Record::State {
        promised: Ballot::ZERO,
        commit: 0,
    };
    encode_record::<Vec<u8>>(&record, &mut state);
    (HEADER_LEN + FRAME_OVERHEAD + state.len()) as u64
}

/// Opens a segment whose frames end at `length` for appending: with direct I/O if asked
/// and the file system supports it. Returns the file, whether it is direct, and (if so)
/// the segment's bytes from the last block boundary up to `length`.
fn open_for_append(
    path: &Path,
    length: u64,
    direct_io: bool,
) -> Result<(File, bool, Vec<u8>), StorageError> {
    if direct_io {
        if let Some(file) = open_direct(path).map_err(io(path))? {
            let start = round_down(length);
            let mut tail = vec![0; to_usize(length - start)];
            File::open(path)
                .and_then(|f| f.read_exact_at(&mut tail, start))
                .map_err(io(path))?;
            return Ok((file, true, tail));
        }
    }
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    Ok((file, false, Vec::new()))
}

/// Opens `path` for direct, synchronous writes; `None` where the file system (or the
/// platform) does not offer direct I/O.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> std::io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path);
    match opened {
        Ok(file) => Ok(Some(file)),
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &Path) -> std::io::Result<Option<File>> {
    Ok(None)
}

/// What a write with unsupported alignment fails with.
#[cfg(target_os = "linux")]
const EINVAL: i32 = libc::EINVAL;
#[cfg(not(target_os = "linux"))]
const EINVAL: i32 = 22;

fn round_down(offset: u64) -> u64 {
    offset / BLOCK * BLOCK
}

fn round_up(offset: u64) -> u64 {
    offset.div_ceil(BLOCK) * BLOCK
}

/// A length within one write, which is in memory.
fn to_usize(length: u64) -> usize {
    usize::try_from(length).unwrap_or(usize::MAX)
}

/// Zeroed bytes whose start is aligned to [`BLOCK`] in memory, as direct I/O requires
/// (found inside a slightly larger allocation, without unsafe code).
#[derive(Debug)]
struct AlignedBuffer {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuffer {
    fn zeroed(len: usize) -> AlignedBuffer {
        let align = BLOCK_BYTES;
        let bytes = vec![0; len + align];
        let start = (align - bytes.as_ptr() as usize % align) % align;
        AlignedBuffer { bytes, start, len }
    }

    fn as_ref(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + self.len]
    }
}

/// Writes zeros over bytes `from..to` of `file`, a megabyte at a time.
fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let chunk = |at: u64| usize::try_from(to - at).map_or(CHUNK, |n| n.min(CHUNK));
    let zeros = vec![0u8; chunk(from.min(to))];
    let mut at = from;
    while at < to {
        let n = chunk(at);
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> StorageError + '_ {
    move |error| StorageError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("wal-{number:020}.log"))
}

/// The numbers of the files named `{prefix}{number}{suffix}` in `dir`, sorted.
fn list(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<u64>, StorageError> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let name = entry.map_err(io(dir))?.file_name();
        let name = name.to_string_lossy();
        let number = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .and_then(|n| n.parse::<u64>().ok());
        numbers.extend(number);
    }
    numbers.sort_unstable();
    Ok(numbers)
}

fn remove_temporaries(dir: &Path) -> Result<(), StorageError> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Creates segment `number` (header, then a frame holding a `State` record) durably, via
/// a temporary file renamed into place so that a crash never leaves a half-made segment.
/// Returns its length.
fn create_segment(
    dir: &Path,
    options: &DiskOptions,
    number: u64,
    promised: Ballot,
    commit: u64,
) -> Result<u64, StorageError> {
    let header = Header {
        version: VERSION,
        identity: options.identity,
        segment: number,
    };
    let mut bytes = encode_header(&header).to_vec();
    let mut state = Vec::new();
    encode_record::<Vec<u8>>(&Record::State { promised, commit }, &mut state);
    encode_frame(&state, HEADER_LEN as u64, &mut bytes);
    let path = segment_path(dir, number);
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary).map_err(io(&temporary))?;
    file.write_all(&bytes).map_err(io(&temporary))?;
    file.sync_all().map_err(io(&temporary))?;
    fs::rename(&temporary, &path).map_err(io(&path))?;
    sync_dir(dir)?;
    Ok(bytes.len() as u64)
}

/// Verifies one segment, repairs a torn tail, and folds its records into `state`.
fn recover_segment<C: Codec + Clone>(
    path: &Path,
    options: &DiskOptions,
    number: u64,
    last: bool,
    state: &mut State<C>,
) -> Result<Recovered, StorageError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io(path))?;
    let corrupt = |offset: u64, reason: &'static str| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let header = decode_header(&bytes).map_err(|_| corrupt(0, "bad segment header"))?;
    if header.version > VERSION {
        let version = header.version;
        return Err(StorageError::NewerVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    if header.identity != options.identity {
        return Err(StorageError::Foreign {
            path: path.to_path_buf(),
            found: header.identity,
            expected: options.identity,
        });
    }
    if header.segment != number {
        return Err(corrupt(0, "the header's segment number is not the file's"));
    }
    let body = &bytes[HEADER_LEN..];
    let framed = header.version >= FRAMED_SINCE;
    let scanned = if framed {
        scan_frames::<C>(body, HEADER_LEN as u64, last)
    } else {
        scan::<C>(body, last)
    };
    let scanned =
        scanned.map_err(|(offset, reason)| corrupt(HEADER_LEN as u64 + offset, reason))?;
    let length = (HEADER_LEN + scanned.end) as u64;
    let mut size = bytes.len() as u64;
    let torn = body[scanned.end..].iter().rposition(|&b| b != 0);
    if let (true, Some(last_written)) = (framed, torn) {
        // A torn write: never acknowledged (its sync never returned). Zero it durably, so
        // the zero-filled space after the records stays clean for the next frame.
        let to = (HEADER_LEN + scanned.end + last_written + 1) as u64;
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        write_zeros(&file, length, to).map_err(io(path))?;
        file.sync_data().map_err(io(path))?;
    } else if !framed && scanned.end < body.len() {
        // A torn tail of a version-1 segment: cut it off durably.
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        file.set_len(length).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
        size = length;
    }
    let mut max_slot = 0;
    for (_, record) in scanned.records {
        max_slot = max_slot.max(record.max_slot());
        state.apply_record(record, None);
    }
    let version = header.version;
    Ok(Recovered {
        max_slot,
        length,
        size,
        version,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::conformance::{options, scratch};
    use paxos::multi::Entry;
    use paxos::NodeId;

    pub(crate) fn votes(first: u64, values: &[u64]) -> Write<u64> {
        Write::Votes {
            ballot: Ballot::new(1, NodeId(1)),
            first,
            entries: values.iter().map(|&v| Entry::Command(v)).collect(),
        }
    }

    fn open(dir: &Path) -> Result<DiskStorage<u64>, StorageError> {
        DiskStorage::open(dir, options())
    }

    /// With the default 64 MiB segments: one segment holds every write of a test.
    fn open_large(dir: &Path) -> Result<DiskStorage<u64>, StorageError> {
        DiskStorage::open(dir, DiskOptions::new(options().identity))
    }

    pub(crate) fn slots(s: &DiskStorage<u64>) -> Vec<u64> {
        let d = s.recovered().unwrap();
        d.votes.iter().map(|(slot, _)| *slot).collect()
    }

    /// The frames of a version-2 segment: (offset, length) of each.
    fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        let mut at = HEADER_LEN;
        while let Ok((_, len)) = crate::format::decode_frame(&bytes[at..], at as u64) {
            found.push((at, len));
            at += len;
        }
        found
    }

    /// Slots 1 and 2 in small writes, then 400 slots in one write that spans 11 sectors;
    /// returns the segment and the third write's (offset, length).
    fn two_small_writes_and_a_large_one(dir: &Path) -> (PathBuf, (usize, usize)) {
        let s = open_large(dir).unwrap();
        s.persist(vec![votes(1, &[1])]).unwrap();
        s.persist(vec![votes(2, &[2])]).unwrap();
        s.persist(vec![votes(3, &[3; 400])]).unwrap();
        let path = s.segments().pop().unwrap();
        drop(s);
        let frames = frames(&fs::read(&path).unwrap());
        assert_eq!(frames.len(), 4, "a state frame, then one frame per write");
        assert!(frames[3].1 > 10 * 512);
        (path, frames[3])
    }

    #[test]
    fn a_torn_last_write_is_zeroed_and_everything_before_it_kept() {
        let dir = scratch();
        let (path, (at, len)) = two_small_writes_and_a_large_one(&dir);
        let pristine = fs::read(&path).unwrap();
        let first_boundary = (at / 512 + 1) * 512;
        let torn: [(&str, std::ops::Range<usize>); 4] = [
            (
                "only its first half reached the disk",
                at + len / 2..at + len,
            ),
            (
                "a sector in its middle was lost",
                first_boundary + 1024..first_boundary + 1536,
            ),
            (
                "its first sector was lost, the rest written",
                at..first_boundary,
            ),
            ("none of it reached the disk", at..at + len),
        ];
        for (shape, lost) in torn {
            let mut bytes = pristine.clone();
            bytes[lost].fill(0);
            fs::write(&path, &bytes).unwrap();
            let s = open_large(&dir).unwrap();
            assert_eq!(slots(&s), vec![1, 2], "{shape}");
            let after = fs::read(&path).unwrap();
            assert_eq!(
                after.len(),
                pristine.len(),
                "{shape}: the file keeps its size"
            );
            assert!(
                after[at..].iter().all(|&b| b == 0),
                "{shape}: torn bytes zeroed"
            );
            // The next write lands where the torn one was, and survives a restart.
            s.persist(vec![votes(3, &[33])]).unwrap();
            drop(s);
            let s = open_large(&dir).unwrap();
            assert_eq!(slots(&s), vec![1, 2, 3], "{shape}");
        }
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn damage_to_a_completed_write_is_refused_with_file_and_offset() {
        let dir = scratch();
        let (path, (last, _)) = two_small_writes_and_a_large_one(&dir);
        let pristine = fs::read(&path).unwrap();
        let second = frames(&pristine)[2].0;
        let refused = |bytes: &[u8], at: usize| {
            fs::write(&path, bytes).unwrap();
            match open_large(&dir) {
                Err(StorageError::Corrupt {
                    path: p,
                    offset,
                    reason,
                }) => {
                    assert_eq!(p, path);
                    assert_eq!(offset, at as u64, "{reason}");
                    let message = StorageError::Corrupt {
                        path: p,
                        offset,
                        reason,
                    };
                    let message = message.to_string();
                    assert!(message.contains("byte offset") && message.contains("OPERATIONS.md"));
                    reason
                }
                other => panic!("damage accepted: {other:?}"),
            }
        };
        // A bit flip in a write that later writes follow.
        let mut bytes = pristine.clone();
        bytes[second + 30] ^= 0x10;
        assert_eq!(refused(&bytes, second), "frame checksum mismatch");
        // A bit flip in the last write: nothing follows it, but no sector of it reads as
        // zeros, so it was written whole and damaged since.
        let mut bytes = pristine.clone();
        bytes[last + 700] ^= 0x01;
        assert_eq!(refused(&bytes, last), "frame checksum mismatch");
        // A copy of a frame at another offset is not a write.
        let mut bytes = pristine.clone();
        let end = frames(&pristine).iter().map(|(_, len)| len).sum::<usize>() + HEADER_LEN;
        bytes.copy_within(second..last, end);
        assert_eq!(refused(&bytes, end), "bad frame header");
        fs::write(&path, &pristine).unwrap();
        assert_eq!(slots(&open_large(&dir).unwrap()).len(), 402);
        // A write that looks torn (a sector of zeros), but a valid write follows it: it
        // had completed, and was damaged since.
        let s = open_large(&dir).unwrap();
        s.persist(vec![votes(403, &[4])]).unwrap();
        drop(s);
        let mut bytes = fs::read(&path).unwrap();
        let sector = (last / 512 + 2) * 512;
        bytes[sector..sector + 512].fill(0);
        assert_eq!(refused(&bytes, last), "frame checksum mismatch");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_torn_looking_write_in_a_sealed_segment_is_refused() {
        let dir = scratch();
        let s = open(&dir).unwrap();
        s.persist(vec![votes(1, &[1; 100])]).unwrap(); // Spans three sectors.
        s.persist(vec![votes(101, &[2])]).unwrap(); // In the next segment.
        let sealed = s.segments()[0].clone();
        drop(s);
        let mut bytes = fs::read(&sealed).unwrap();
        assert!(bytes.len() > 1024);
        bytes[512..1024].fill(0); // As a torn write would look, were it the last.
        fs::write(&sealed, &bytes).unwrap();
        assert!(matches!(open(&dir), Err(StorageError::Corrupt { .. })));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn segments_are_zero_filled_ahead_of_their_writes() {
        let dir = scratch();
        let s = open_large(&dir).unwrap();
        s.persist(vec![votes(1, &[1])]).unwrap();
        let path = s.segments().pop().unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, ZERO_AHEAD);
        let end: usize = frames(&bytes).iter().map(|(_, len)| len).sum::<usize>() + HEADER_LEN;
        assert!(bytes[end..].iter().all(|&b| b == 0));
        drop(s);
        let s = open_large(&dir).unwrap();
        s.persist(vec![votes(2, &[2])]).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            ZERO_AHEAD,
            "reused, not grown"
        );
        drop(s);
        assert_eq!(slots(&open_large(&dir).unwrap()), vec![1, 2]);
        let _ = fs::remove_dir_all(dir);
    }

    /// Slots per write: within a block, across blocks, across zero-fill steps.
    pub(crate) const ASSORTED: [u64; 13] = [1, 3, 1, 500, 2, 7000, 1, 1, 130_000, 9, 4, 60_000, 1];

    /// Writes of assorted sizes (within a block, across blocks, across a zero-fill step),
    /// the storage reopened between some of them, with the page cache or direct I/O.
    pub(crate) fn assorted_writes(dir: &Path, direct_io: bool) -> DiskStorage<u64> {
        let options = DiskOptions {
            direct_io,
            ..DiskOptions::new(options().identity)
        };
        let mut s = DiskStorage::open(dir, options).unwrap();
        let mut slot = 1;
        for (i, count) in ASSORTED.iter().enumerate() {
            let values: Vec<u64> = (slot..slot + count).collect();
            s.persist(vec![votes(slot, &values)]).unwrap();
            slot += count;
            if i % 3 == 2 {
                drop(s);
                s = DiskStorage::open(dir, options).unwrap();
            }
        }
        s
    }

    #[test]
    fn direct_io_is_used_where_the_file_system_offers_it() {
        let dir = scratch();
        fs::create_dir_all(&dir).unwrap();
        File::create(dir.join("probe")).unwrap();
        let offered = open_direct(&dir.join("probe")).unwrap().is_some();
        assert_eq!(
            offered,
            cfg!(target_os = "linux"),
            "Linux file systems offer it"
        );
        let s = open_large(&dir.join("data")).unwrap();
        assert_eq!(s.lock_io().direct, offered);
        let buffered = DiskOptions {
            direct_io: false,
            ..DiskOptions::new(options().identity)
        };
        drop(s);
        let s = DiskStorage::<u64>::open(dir.join("data"), buffered).unwrap();
        assert!(!s.lock_io().direct);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn direct_io_writes_the_same_bytes_as_the_page_cache() {
        let (direct, buffered) = (scratch(), scratch());
        let s = assorted_writes(&direct, true);
        let t = assorted_writes(&buffered, false);
        let (a, b) = (s.segments(), t.segments());
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(&b) {
            let (a, b) = (fs::read(a).unwrap(), fs::read(b).unwrap());
            assert!(a.len() as u64 >= 2 * ZERO_AHEAD, "crossed a zero-fill step");
            assert!(
                a == b,
                "segments differ ({} and {} bytes)",
                a.len(),
                b.len()
            );
        }
        let expected: Vec<u64> = (1..=197_523).collect();
        drop((s, t));
        assert_eq!(slots(&open_large(&direct).unwrap()), expected);
        let _ = fs::remove_dir_all(direct);
        let _ = fs::remove_dir_all(buffered);
    }

    #[test]
    fn a_version_1_directory_is_read_and_written_on_in_a_version_2_segment() {
        let dir = scratch();
        fs::create_dir_all(&dir).unwrap();
        let header = Header {
            version: 1,
            identity: options().identity,
            segment: 0,
        };
        let mut bytes = encode_header(&header).to_vec();
        let promised = Ballot::new(1, NodeId(1));
        encode_record::<u64>(
            &Record::State {
                promised,
                commit: 0,
            },
            &mut bytes,
        );
        for slot in 1..=2 {
            let (record, _) = Record::of(votes(slot, &[slot]));
            encode_record(&record, &mut bytes);
        }
        let half = bytes.len();
        let (torn, _) = Record::of(votes(3, &[3]));
        encode_record(&torn, &mut bytes);
        bytes.truncate(half + 5); // Version 1's torn tail: a record cut short.
        fs::write(dir.join("wal-00000000000000000000.log"), &bytes).unwrap();
        let s = open_large(&dir).unwrap();
        assert_eq!(slots(&s), vec![1, 2]);
        s.persist(vec![votes(3, &[3])]).unwrap();
        let segments = s.segments();
        assert_eq!(segments.len(), 2);
        let newest = decode_header(&fs::read(&segments[1]).unwrap()).unwrap();
        assert_eq!(newest.version, VERSION);
        drop(s);
        let s = open_large(&dir).unwrap();
        assert_eq!(slots(&s), vec![1, 2, 3]);
        assert_eq!(s.recovered().unwrap().promised, promised);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn segments_rotate_and_are_released_once_a_snapshot_covers_them() {
        let dir = scratch();
        let s = open(&dir).unwrap();
        for slot in 1..=40 {
            s.persist(vec![votes(slot, &[slot])]).unwrap();
        }
        let before = s.segments().len();
        assert!(before > 5, "only {before} segments");
        let data = SnapshotData::from(b"through 30".to_vec());
        s.persist(vec![Write::Snapshot {
            index: 30,
            data: data.clone(),
        }])
        .unwrap();
        let after = s.segments().len();
        assert!(after < before, "{before} -> {after}");
        drop(s);
        let s = open(&dir).unwrap();
        let d = s.recovered().unwrap();
        assert_eq!(d.snapshot, Some((30, data)));
        assert_eq!(slots(&s), (31..=40).collect::<Vec<_>>());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_truncated_or_missing_snapshot_is_refused() {
        let dir = scratch();
        let s = open(&dir).unwrap();
        s.persist(vec![
            votes(1, &[1]),
            Write::Snapshot {
                index: 1,
                data: vec![9u8; 50].into(),
            },
        ])
        .unwrap();
        drop(s);
        let path = snapshot_path(&dir, 1);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(
            open(&dir),
            Err(StorageError::Snapshot {
                reason: "truncated snapshot",
                ..
            })
        ));
        fs::remove_file(&path).unwrap();
        assert!(matches!(open(&dir), Err(StorageError::Snapshot { .. })));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn another_members_directory_a_newer_version_and_a_missing_segment_are_refused() {
        let dir = scratch();
        let s = open(&dir).unwrap();
        for slot in 1..=20 {
            s.persist(vec![votes(slot, &[slot])]).unwrap();
        }
        let segments = s.segments();
        drop(s);
        let stranger = DiskOptions::new(Identity {
            cluster: 7,
            member: NodeId(2),
        });
        let refused = DiskStorage::<u64>::open(&dir, stranger).unwrap_err();
        assert!(matches!(refused, StorageError::Foreign { .. }), "{refused}");
        assert!(refused
            .to_string()
            .contains("member 1, not cluster 7 member 2"));

        let newest = segments.last().unwrap();
        let original = fs::read(newest).unwrap();
        let mut header = decode_header(&original).unwrap();
        header.version = VERSION + 1;
        let mut newer = encode_header(&header).to_vec();
        newer.extend_from_slice(&original[HEADER_LEN..]);
        fs::write(newest, newer).unwrap();
        assert!(matches!(
            open(&dir),
            Err(StorageError::NewerVersion { version, .. }) if version == VERSION + 1
        ));
        fs::write(newest, original).unwrap();

        fs::remove_file(&segments[1]).unwrap();
        assert!(matches!(
            open(&dir),
            Err(StorageError::MissingSegment { segment: 1, .. })
        ));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn concurrent_writers_share_syncs_and_every_acknowledged_write_survives() {
        let dir = scratch();
        let s = std::sync::Arc::new(open(&dir).unwrap());
        let writers: Vec<_> = (0..16u64)
            .map(|w| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for k in 0..50u64 {
                        let slot = 1 + w * 50 + k;
                        s.persist(vec![votes(slot, &[slot])]).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        drop(s);
        let s = DiskStorage::<u64>::open(&dir, DiskOptions::new(options().identity));
        let recovered = s.unwrap().recovered().unwrap();
        assert_eq!(recovered.votes.len(), 800);
        let _ = fs::remove_dir_all(dir);
    }
}
