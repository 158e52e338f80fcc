//! Group commit: the queue callers append to, the syncer that writes and syncs each
//! batch, and the hand-over of the syncer's role (see the parent module).

use std::time::Instant;

use super::*;

impl<C: Codec + Clone> DiskStorage<C> {
    /// The syncer's work: one write and one fdatasync for everything pending. The queue
    /// is unlocked meanwhile, so callers keep filling the next batch.
    pub(super) fn sync_pending<'a>(
        &'a self,
        mut queue: MutexGuard<'a, Queue>,
    ) -> MutexGuard<'a, Queue> {
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

    pub(super) fn count_sync(&self, started: Instant) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.io_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Syncs batch after batch while writes keep arriving; once its own call `me` is
    /// durable and it synced a few batches for others, hands the role to a waiter.
    pub(super) fn run_syncer<'a>(&'a self, mut queue: MutexGuard<'a, Queue>, me: u64) {
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
    pub(super) fn wait_for(&self, me: u64) {
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

    pub(super) fn write_and_sync(
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
    pub(super) fn frame(
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
    pub(super) fn write_buffered(
        &self,
        inner: &mut Io,
        frame: &[u8],
        end: u64,
    ) -> Result<(), Failure> {
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
}
