//! Staged writes: one direct write, planned here and issued by the caller's io_uring
//! ([`crate::Ring`]), whose outcome comes back to [`DiskStorage::finish`].

use std::os::fd::RawFd;
use std::time::Instant;

use paxos::multi::Write;

use super::*;

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

impl<C: Codec + Clone> DiskStorage<C> {
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
}
