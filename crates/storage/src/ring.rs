//! Log writes issued through io_uring by the caller's own thread, for a caller that is a
//! task on an event loop (the server's core): it submits a write and goes on; the ring's
//! file descriptor turns readable once the write is durable, and the caller reaps it on
//! its loop. No thread stands between the caller and the disk, so neither side of a sync
//! pays a hand-off between threads, which [`crate::Committer`] pays twice per sync (on
//! this project's 2-vCPU VM a wake-up on another vCPU costs 40–55 µs).
//!
//! One write is out at a time: the caller batches whatever arrives meanwhile into the
//! next, which keeps the log's order (a later write durable implies every earlier one)
//! and gives group commit. Only where segments are written with direct I/O
//! (`O_DIRECT | O_DSYNC`): there one `write` is the whole sync.

use std::sync::Arc;

use paxos::multi::Write;

use crate::disk::{DiskStorage, Staged};
use crate::{Codec, StorageError};

/// An io_uring in front of a [`DiskStorage`]: at most one write out at a time.
///
/// While a `Ring` has a write out, nothing else may write the storage (no
/// [`crate::Storage::persist`], no [`crate::Committer`] submission).
pub struct Ring<C> {
    storage: Arc<DiskStorage<C>>,
    #[cfg(target_os = "linux")]
    uring: io_uring::IoUring,
    /// The write out, whose buffer the kernel reads until its completion is reaped.
    out: Option<Staged>,
    /// Elsewhere a ring cannot be made ([`Ring::new`] says `None`).
    #[cfg(not(target_os = "linux"))]
    never: std::convert::Infallible,
}

/// Whether this process may use io_uring (Linux, not disabled by
/// `kernel.io_uring_disabled` or a seccomp profile).
pub fn available() -> bool {
    #[cfg(target_os = "linux")]
    return io_uring::IoUring::new(1).is_ok();
    #[cfg(not(target_os = "linux"))]
    false
}

impl<C> std::fmt::Debug for Ring<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("busy", &self.out.is_some())
            .finish()
    }
}

impl<C: Codec + Clone> Ring<C> {
    /// A ring for `storage`, or `None` where it cannot help: segments not written with
    /// direct I/O, io_uring unavailable (not Linux, an old kernel, or disabled by
    /// `kernel.io_uring_disabled` or a seccomp profile).
    pub fn new(storage: Arc<DiskStorage<C>>) -> Option<Ring<C>> {
        if !storage.writes_direct() {
            return None;
        }
        Self::with_uring(storage)
    }

    #[cfg(target_os = "linux")]
    fn with_uring(storage: Arc<DiskStorage<C>>) -> Option<Ring<C>> {
        let uring = io_uring::IoUring::new(4).ok()?;
        Some(Ring {
            storage,
            uring,
            out: None,
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn with_uring(_: Arc<DiskStorage<C>>) -> Option<Ring<C>> {
        None
    }

    /// The storage it writes.
    pub fn storage(&self) -> &Arc<DiskStorage<C>> {
        &self.storage
    }

    /// Whether a write is out.
    pub fn busy(&self) -> bool {
        self.out.is_some()
    }

    /// Starts writing `writes` (in the order given): [`Ring::complete`] reports when they
    /// are durable. Only when no write is out. Encoding, a new segment when this one is
    /// full, and (should the file system refuse direct writes after all) a write through
    /// the page cache happen here, before this returns.
    pub fn submit(&mut self, writes: Vec<Write<C>>) -> Result<(), StorageError> {
        if self.out.is_some() {
            let error = std::io::Error::other("a ring write is still out");
            let path = self.storage.dir().to_path_buf();
            return Err(StorageError::Io { path, error });
        }
        let staged = self.storage.stage(writes)?;
        self.issue(staged)
    }

    #[cfg(target_os = "linux")]
    fn issue(&mut self, staged: Staged) -> Result<(), StorageError> {
        use io_uring::{opcode, types};
        let entry = match &staged {
            Staged::Direct(write) => {
                let bytes = write.bytes();
                let Ok(len) = u32::try_from(bytes.len()) else {
                    let error = std::io::Error::other("a write of 4 GiB or more");
                    return self.refuse(staged, error);
                };
                opcode::Write::new(types::Fd(write.fd()), bytes.as_ptr(), len)
                    .offset(write.start())
                    .build()
            }
            // Durable already (or failed): a no-op's completion reports it in order.
            Staged::Done(_) => opcode::Nop::new().build(),
        };
        // SAFETY: the kernel reads the write's buffer and uses its file descriptor until
        // the completion is reaped. The buffer belongs to `self.out` from here until
        // `complete` reaps that completion (or `drop` waits for it), and nothing writes to
        // it meanwhile; the file stays open, since the storage neither rotates nor
        // reopens a segment while a staged write is out (it refuses every other writer).
        #[allow(unsafe_code)]
        let pushed = unsafe { self.uring.submission().push(&entry) };
        if pushed.is_err() {
            // Impossible with one entry out of four, but then nothing was queued.
            return self.refuse(staged, std::io::Error::other("io_uring queue full"));
        }
        self.out = Some(staged);
        loop {
            match self.uring.submit() {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // The entry may still be consumed later: `out` keeps its buffer alive.
                Err(error) => {
                    let path = self.storage.dir().to_path_buf();
                    return Err(StorageError::Io { path, error });
                }
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn issue(&mut self, _: Staged) -> Result<(), StorageError> {
        match self.never {}
    }

    /// Gives a staged write back as failed before the kernel saw it (and fails, even
    /// where the writes were durable already: the caller stops rather than wait for a
    /// completion that never comes).
    #[cfg(target_os = "linux")]
    fn refuse(&mut self, staged: Staged, error: std::io::Error) -> Result<(), StorageError> {
        let message = error.to_string();
        self.storage.finish(staged, Err(error))?;
        let path = self.storage.dir().to_path_buf();
        let error = std::io::Error::other(message);
        Err(StorageError::Io { path, error })
    }

    /// The outcome of the write out, if it completed (never waits). A caller on an event
    /// loop waits for the ring's file descriptor to be readable first.
    #[cfg(target_os = "linux")]
    pub fn complete(&mut self) -> Option<Result<(), StorageError>> {
        let result = self.uring.completion().next()?.result();
        let staged = self.out.take()?;
        // A short write's rest, or a write to redo, is written by `finish` (blocking),
        // as `write_all_at` does on the committer's path.
        let written = match result.saturating_neg() {
            libc::EINTR | libc::EAGAIN => Ok(0),
            error if error > 0 => Err(std::io::Error::from_raw_os_error(error)),
            _ => Ok(usize::try_from(result).unwrap_or(0)),
        };
        Some(self.storage.finish(staged, written))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn complete(&mut self) -> Option<Result<(), StorageError>> {
        match self.never {}
    }

    /// Waits for the write out, if any, and reports it (for callers that may block).
    pub fn wait(&mut self) -> Option<Result<(), StorageError>> {
        self.out.as_ref()?;
        #[cfg(target_os = "linux")]
        loop {
            if let Some(done) = self.complete() {
                return Some(done);
            }
            match self.uring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    let path = self.storage.dir().to_path_buf();
                    return Some(Err(StorageError::Io { path, error }));
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        match self.never {}
    }
}

impl<C> std::os::fd::AsRawFd for Ring<C> {
    /// Readable while a completion waits to be reaped.
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        #[cfg(target_os = "linux")]
        return self.uring.as_raw_fd();
        #[cfg(not(target_os = "linux"))]
        match self.never {}
    }
}

impl<C> Drop for Ring<C> {
    fn drop(&mut self) {
        // The kernel may still read the buffer: wait for it before it is freed.
        #[cfg(target_os = "linux")]
        while self.out.is_some() && self.uring.completion().is_empty() {
            match self.uring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Cannot wait: leak the buffer rather than free memory the kernel reads.
                Err(_) => return std::mem::forget(self.out.take()),
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers, not only tests.
mod tests {
    use super::*;
    use crate::conformance::{conformance, options, scratch};
    use crate::disk::tests::{assorted_writes, slots, votes, ASSORTED};
    use crate::{DiskOptions, Storage};
    use paxos::multi::Durable;
    use std::path::Path;
    use std::sync::Mutex;

    /// The storage contract, with every write through a ring.
    #[derive(Debug)]
    struct Ringed(Mutex<Ring<u64>>);

    impl Ringed {
        fn open(dir: &Path, options: DiskOptions) -> Ringed {
            let storage = Arc::new(DiskStorage::open(dir, options).unwrap());
            let ring = Ring::new(storage).expect("direct I/O and io_uring on Linux");
            Ringed(Mutex::new(ring))
        }
    }

    impl Storage<u64> for Ringed {
        fn recovered(&self) -> Result<Durable<u64>, StorageError> {
            self.0.lock().unwrap().storage().recovered()
        }

        fn persist(&self, writes: Vec<Write<u64>>) -> Result<(), StorageError> {
            let mut ring = self.0.lock().unwrap();
            ring.submit(writes)?;
            assert!(ring.busy());
            ring.wait().expect("a write was out")
        }
    }

    /// Whether to go on: io_uring may be disabled (`kernel.io_uring_disabled`, seccomp).
    fn ring_available() -> bool {
        let available = available();
        if !available {
            eprintln!("skipped: io_uring is not available to this process");
        }
        available
    }

    #[test]
    fn writes_through_a_ring_keep_the_storage_contract() {
        if !ring_available() {
            return;
        }
        let mut dirs = Vec::new();
        conformance(
            &mut || {
                let dir = scratch();
                dirs.push(dir.clone());
                Ringed::open(&dir, options())
            },
            &mut |s: Ringed| {
                let dir = s.0.lock().unwrap().storage().dir().to_path_buf();
                drop(s);
                Ringed::open(&dir, options())
            },
        );
        for dir in dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Byte for byte what `persist` writes, across blocks and zero-fill steps.
    #[test]
    fn a_ring_writes_the_same_bytes_as_persist() {
        if !ring_available() {
            return;
        }
        let (ringed, persisted) = (scratch(), scratch());
        let large = DiskOptions::new(options().identity);
        let s = Ringed::open(&ringed, large);
        let mut slot = 1;
        for count in ASSORTED {
            let values: Vec<u64> = (slot..slot + count).collect();
            s.persist(vec![votes(slot, &values)]).unwrap();
            slot += count;
        }
        let t = assorted_writes(&persisted, true);
        let storage = s.0.lock().unwrap().storage().clone();
        let (a, b) = (storage.segments(), t.segments());
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(&b) {
            let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
            assert!(a.len() > 2 << 20, "crossed zero-fill steps");
            assert!(
                a == b,
                "segments differ ({} and {} bytes)",
                a.len(),
                b.len()
            );
        }
        let (syncs, _) = storage.sync_stats();
        assert_eq!(syncs, 13);
        let _ = std::fs::remove_dir_all(ringed);
        let _ = std::fs::remove_dir_all(persisted);
    }

    #[test]
    fn one_write_out_at_a_time_and_nothing_else_writes_meanwhile() {
        if !ring_available() {
            return;
        }
        let dir = scratch();
        let storage = Arc::new(DiskStorage::<u64>::open(&dir, options()).unwrap());
        let mut ring = Ring::new(storage.clone()).unwrap();
        assert!(ring.complete().is_none(), "nothing out");
        ring.submit(vec![votes(1, &[1])]).unwrap();
        assert!(ring.submit(vec![votes(2, &[2])]).is_err());
        assert!(storage.stage(vec![votes(2, &[2])]).is_err());
        assert!(storage.persist(vec![votes(2, &[2])]).is_err());
        ring.wait().unwrap().unwrap();
        assert!(!ring.busy());
        ring.submit(vec![votes(2, &[2])]).unwrap();
        drop(ring); // Waits for the write out.
        drop(storage);
        let reopened = DiskStorage::<u64>::open(&dir, options()).unwrap();
        assert_eq!(slots(&reopened), [1, 2]);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// What `DiskStorage::finish` does with what the kernel reports, ring or not.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod finish_tests {
    use crate::conformance::{options, scratch};
    use crate::disk::tests::{slots, votes};
    use crate::disk::Staged;
    use crate::{DiskStorage, Storage, StorageError};

    #[test]
    fn a_failed_write_is_undone_and_a_short_one_completed() {
        let dir = scratch();
        let s = DiskStorage::<u64>::open(&dir, options()).unwrap();
        if !s.writes_direct() {
            return eprintln!("skipped: no direct I/O here");
        }
        s.persist(vec![votes(1, &[1])]).unwrap();
        // The kernel wrote nothing of this one, and said why: nothing of it survives.
        let staged = s.stage(vec![votes(2, &[2])]).unwrap();
        assert!(matches!(staged, Staged::Direct(_)));
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(matches!(
            s.finish(staged, Err(full)),
            Err(StorageError::Full { .. })
        ));
        // The kernel wrote none of this one (an interrupted write): finish writes it.
        let staged = s.stage(vec![votes(3, &[3])]).unwrap();
        s.finish(staged, Ok(0)).unwrap();
        s.persist(vec![votes(4, &[4])]).unwrap();
        drop(s);
        assert_eq!(
            slots(&DiskStorage::open(&dir, options()).unwrap()),
            [1, 3, 4]
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
