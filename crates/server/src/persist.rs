//! Where the core's writes go to become durable.
//!
//! With direct I/O and io_uring (Linux), the core issues each write itself, through a
//! [`Ring`] whose file descriptor its event loop watches: one write out at a time, and
//! whatever the core submits meanwhile goes out together, as the next write, once that one
//! is durable (group commit, in order). No thread stands between the core and the disk.
//! A write carrying a snapshot (rare, and its file may need copying first) goes to the
//! [`Committer`]'s thread instead, still as the only write out. Without a ring every write
//! goes to the committer, which groups them on its own.
//!
//! What a write needs besides the write itself now runs on the core: encoding and
//! copying into the aligned buffer (microseconds), and, once per 64 MiB segment, creating
//! the next segment (a file and a directory sync, a few milliseconds with the core
//! waiting). A write the kernel cuts short is finished synchronously, as is the undo of a
//! failed one; both are rare.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;

use paxos::multi::Write;
use storage::{Committer, Completion, DiskStorage, Ring, StorageError};
use tokio::io::unix::AsyncFd;

use crate::node::{persisted, Inputs};
use crate::payload::Payload;

/// The core's way to the disk (see the module's documentation).
#[derive(Debug)]
pub struct Persister {
    committer: Committer<Payload>,
    ring: Option<AsyncFd<RingFd>>,
    /// Submissions waiting for the write out, and the last of them.
    queued: Vec<Write<Payload>>,
    queued_tag: u64,
    /// The write out: the last submission it covers, and whether the ring has it (or
    /// the committer).
    out: Option<(u64, bool)>,
    inputs: Inputs,
    /// Writes sent and not yet durable: the last submission each covers, and when it went.
    sent: VecDeque<(u64, Instant)>,
    /// How long each write took to become durable.
    durations: Option<Histogram>,
}

/// A ring, for [`AsyncFd`].
#[derive(Debug)]
struct RingFd(Ring<Payload>);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl Persister {
    /// Writes to `storage`, through a ring where one can be had; completions from the
    /// committer arrive on `inputs` as [`crate::node::Input::Persisted`]. Must be called
    /// on a tokio runtime (the ring's descriptor is registered with its reactor).
    pub fn new(storage: Arc<DiskStorage<Payload>>, inputs: Inputs, use_ring: bool) -> Persister {
        let ring = use_ring
            .then(|| Ring::new(storage.clone()))
            .flatten()
            .and_then(|ring| {
                let interest = tokio::io::Interest::READABLE;
                // SAFETY: the descriptor is the io_uring's, which the ring owns and keeps
                // open, unchanged, for as long as it lives; the `AsyncFd` owns the ring.
                #[allow(unsafe_code)]
                let registered = unsafe { AsyncFd::register_with_interest(RingFd(ring), interest) };
                registered.ok()
            });
        tracing::debug!(ring = ring.is_some(), "log writes");
        Persister {
            committer: Committer::start(storage),
            ring,
            queued: Vec::new(),
            queued_tag: 0,
            out: None,
            inputs,
            sent: VecDeque::new(),
            durations: None,
        }
    }

    /// Records how long each write takes to become durable in `durations`.
    pub fn observe_writes(&mut self, durations: Histogram) {
        self.durations = Some(durations);
    }

    /// Whether writes go through a ring.
    pub fn has_ring(&self) -> bool {
        self.ring.is_some()
    }

    /// Takes submission `tag` (tags rise); its completion arrives as a [`Completion`],
    /// from [`Persister::completion`] or on the core's queue. With a ring it waits for
    /// [`Persister::flush`]. False if the committer has stopped (without a ring).
    pub fn submit(&mut self, tag: u64, writes: Vec<Write<Payload>>) -> bool {
        if self.ring.is_none() {
            return self.send_to_committer(tag, writes);
        }
        self.queued.extend(writes);
        self.queued_tag = tag;
        true
    }

    /// Sends what is queued, if no write is out (the end of each burst of the core's).
    /// An error means the writes queued may not be durable: the core must stop.
    pub fn flush(&mut self) -> Result<(), String> {
        if self.out.is_some() || self.queued.is_empty() {
            return Ok(());
        }
        let Some(ring) = &mut self.ring else {
            return Ok(());
        };
        let (tag, writes) = (self.queued_tag, std::mem::take(&mut self.queued));
        let ring = &mut ring.get_mut().0;
        let snapshot = writes.iter().any(|w| matches!(w, Write::Snapshot { .. }));
        if snapshot || !ring.storage().writes_direct() {
            self.out = Some((tag, false));
            return match self.send_to_committer(tag, writes) {
                true => Ok(()),
                false => Err("the storage committer stopped".into()),
            };
        }
        // Out even if the submission failed: nothing else may go out after it.
        self.out = Some((tag, true));
        self.sent.push_back((tag, Instant::now()));
        ring.submit(writes)
            .map_err(|e| format!("storage failed: {e}"))
    }

    /// Submission `tag` is durable (the core calls this for every completion).
    pub fn finished(&mut self, tag: u64) {
        if self.out == Some((tag, false)) {
            self.out = None;
        }
        while let Some(&(sent, at)) = self.sent.front() {
            if sent > tag {
                break;
            }
            self.sent.pop_front();
            if let Some(durations) = &self.durations {
                durations.observe(at.elapsed().as_secs_f64());
            }
        }
    }

    /// The next completion of a ring write (pending while none is out).
    pub async fn completion(&mut self) -> Completion {
        let (Some(ring), Some((tag, true))) = (&mut self.ring, self.out) else {
            return std::future::pending().await;
        };
        loop {
            let mut ready = match ring.readable_mut().await {
                Ok(ready) => ready,
                Err(error) => {
                    let path = ring.get_ref().0.storage().dir().to_path_buf();
                    self.out = None;
                    return (tag, Err(StorageError::Io { path, error }));
                }
            };
            if let Some(result) = ready.get_inner_mut().0.complete() {
                self.out = None;
                return (tag, result);
            }
            ready.clear_ready();
        }
    }

    fn send_to_committer(&mut self, tag: u64, writes: Vec<Write<Payload>>) -> bool {
        self.sent.push_back((tag, Instant::now()));
        let reply = Box::new(persisted(self.inputs.clone()));
        self.committer.submit(writes, tag, reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Input;
    use paxos::multi::{Entry, Members, Membership, SnapshotData};
    use paxos::{Ballot, NodeId};
    use storage::{DiskOptions, Identity, Storage};

    fn votes(first: u64, n: u64) -> Write<Payload> {
        let entries = (first..first + n)
            .map(|slot| Entry::Command(Payload(slot.to_le_bytes().to_vec().into())))
            .collect();
        Write::Votes {
            ballot: Ballot::new(1, NodeId(1)),
            first,
            entries,
        }
    }

    fn open(dir: &std::path::Path) -> Arc<DiskStorage<Payload>> {
        let identity = Identity {
            cluster: 1,
            member: NodeId(1),
        };
        Arc::new(DiskStorage::open(dir, DiskOptions::new(identity)).unwrap())
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("synod-persist-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn recovered_slots(dir: &std::path::Path) -> Vec<u64> {
        let durable = open(dir).recovered().unwrap();
        durable.votes.iter().map(|(slot, _)| *slot).collect()
    }

    /// What the core does with a committer's completion.
    async fn from_committer(queue: &mut crate::node::InputQueue, persister: &mut Persister) -> u64 {
        match queue.recv().await {
            Some(Input::Persisted((tag, Ok(())))) => {
                persister.finished(tag);
                tag
            }
            other => panic!("expected a completion, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn one_ring_write_out_at_a_time_the_rest_batched_and_snapshots_through_the_committer() {
        let dir = scratch("ring");
        let (inputs, mut queue) = tokio::sync::mpsc::unbounded_channel();
        if !storage::ring::available() {
            eprintln!("skipped: io_uring is not available to this process");
            return;
        }
        let mut persister = Persister::new(open(&dir), inputs, true);
        assert!(persister.has_ring(), "direct I/O and io_uring on Linux");
        assert!(persister.submit(1, vec![votes(1, 1)]));
        assert!(persister.submit(2, vec![votes(2, 1)]));
        assert!(
            persister.out.is_none(),
            "nothing goes out before the burst ends"
        );
        persister.flush().unwrap();
        assert!(persister.submit(3, vec![votes(3, 2)]));
        persister.flush().unwrap();
        assert_eq!(persister.out, Some((2, true)), "one write out at a time");
        assert_eq!(
            persister.completion().await.0,
            2,
            "one write for tags 1 and 2"
        );
        persister.flush().unwrap();
        assert_eq!(persister.completion().await.0, 3);
        // A snapshot goes through the committer, and the ring waits for it.
        let data = SnapshotData::from(b"state".to_vec());
        let members = Members::new(vec![NodeId(1)], paxos::QuorumSpec::Majority).unwrap();
        let membership = Membership::new(Arc::new(members));
        let snapshot = Write::Snapshot {
            index: 4,
            membership,
            data,
        };
        persister.submit(4, vec![snapshot]);
        persister.flush().unwrap();
        persister.submit(5, vec![votes(5, 1)]);
        persister.flush().unwrap();
        assert_eq!(persister.out, Some((4, false)));
        assert_eq!(from_committer(&mut queue, &mut persister).await, 4);
        persister.flush().unwrap();
        assert_eq!(persister.completion().await.0, 5);
        drop(persister);
        assert_eq!(
            recovered_slots(&dir),
            [5],
            "slots up to the snapshot released"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn without_a_ring_every_submission_goes_to_the_committer() {
        let dir = scratch("thread");
        let (inputs, mut queue) = tokio::sync::mpsc::unbounded_channel();
        let mut persister = Persister::new(open(&dir), inputs, false);
        assert!(!persister.has_ring());
        for tag in 1..=3 {
            assert!(persister.submit(tag, vec![votes(tag, 1)]));
        }
        let mut tags = Vec::new();
        for _ in 1..=3 {
            tags.push(from_committer(&mut queue, &mut persister).await);
        }
        tags.sort_unstable();
        assert_eq!(tags, [1, 2, 3]);
        drop(persister);
        assert_eq!(recovered_slots(&dir), [1, 2, 3]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
