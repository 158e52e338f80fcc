//! Storage for the simulator, with the faults real disks have: writes not yet synced are
//! lost on a crash, the last of them may be torn (a prefix of its bytes survives), and
//! calls can fail with injected I/O errors. It keeps the log as the same frames and
//! records the disk implementation writes (one frame per append) and recovers through
//! the same decoder, so the simulator exercises the real format and the real torn-write
//! repair.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use paxos::multi::{Durable, SnapshotData, Write};

use crate::format::{encode_frame, encode_record, scan_frames, Codec, Record};
use crate::state::State;
use crate::{Storage, StorageError};

#[derive(Debug, Default)]
struct Inner {
    /// The encoded log.
    log: Vec<u8>,
    /// How much of it a sync covered.
    synced: usize,
    /// Snapshot files (durable as soon as written, as the disk writes them before the
    /// record that refers to them).
    snapshots: BTreeMap<u64, SnapshotData>,
    /// Calls left before the next injected error.
    fail_after: Option<u32>,
}

/// Storage with injected faults. [`Storage::persist`] appends and syncs (the contract);
/// the simulator drives the two halves itself with [`FaultyStorage::append`] and
/// [`FaultyStorage::sync`], and [`FaultyStorage::crash`] loses what no sync covered.
#[derive(Debug, Default)]
pub struct FaultyStorage {
    inner: Mutex<Inner>,
}

impl FaultyStorage {
    /// Empty storage.
    pub fn new() -> FaultyStorage {
        FaultyStorage::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything appended so far becomes durable.
    pub fn sync(&self) {
        let mut inner = self.lock();
        inner.synced = inner.log.len();
    }

    /// A crash. Of the bytes no sync covered, only the first `reached_disk` survive: the
    /// page cache wrote some of them before the power went, possibly stopping inside a
    /// record (a torn write). 0 loses them all.
    pub fn crash(&self, reached_disk: usize) {
        let mut inner = self.lock();
        let keep = inner
            .synced
            .saturating_add(reached_disk)
            .min(inner.log.len());
        inner.log.truncate(keep);
        inner.synced = keep;
    }

    /// Bytes appended but not yet covered by a sync.
    pub fn unsynced(&self) -> usize {
        let inner = self.lock();
        inner.log.len() - inner.synced
    }

    /// The next `calls` calls succeed; the one after fails with an injected error.
    pub fn fail_after(&self, calls: u32) {
        self.lock().fail_after = Some(calls);
    }

    /// Bytes in the log (durable or not).
    pub fn len(&self) -> usize {
        self.lock().log.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flips one bit of the log (corruption, for tests).
    pub fn flip_bit(&self, byte: usize, bit: u8) {
        let mut inner = self.lock();
        if let Some(b) = inner.log.get_mut(byte) {
            *b ^= 1 << (bit % 8);
        }
    }

    /// Recovers what survives, as a restart would; a torn tail is cut off (and the cut
    /// is durable). Corruption is an error with the offset.
    pub fn recover<C: Codec + Clone>(&self) -> Result<Durable<C>, StorageError> {
        let mut inner = self.lock();
        let scanned = scan_frames::<C>(&inner.log, 0, true).map_err(|(offset, reason)| {
            StorageError::Corrupt {
                path: "faulty-storage".into(),
                offset,
                reason,
            }
        })?;
        inner.log.truncate(scanned.end);
        inner.synced = inner.synced.min(scanned.end);
        let mut state = State::default();
        for (_, record) in scanned.records {
            let data = match &record {
                Record::Snapshot { index, .. } => inner.snapshots.get(index).cloned(),
                _ => None,
            };
            state.apply_record(record, data);
        }
        Ok(state.durable())
    }
}

impl FaultyStorage {
    /// Appends `writes` without making them durable (the simulator syncs later).
    pub fn append<C: Codec + Clone>(&self, writes: Vec<Write<C>>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if let Some(left) = inner.fail_after.as_mut() {
            if *left == 0 {
                inner.fail_after = None;
                return Err(StorageError::Injected);
            }
            *left -= 1;
        }
        let mut bytes = Vec::new();
        for write in writes {
            let (record, snapshot) = Record::of(write);
            if let (Record::Snapshot { index, .. }, Some(data)) = (&record, snapshot) {
                inner.snapshots.insert(*index, data);
            }
            encode_record(&record, &mut bytes);
        }
        if !bytes.is_empty() {
            let offset = inner.log.len() as u64;
            encode_frame(&bytes, offset, &mut inner.log);
        }
        Ok(())
    }
}

impl<C: Codec + Clone> Storage<C> for FaultyStorage {
    fn recovered(&self) -> Result<Durable<C>, StorageError> {
        self.recover()
    }

    fn persist(&self, writes: Vec<Write<C>>) -> Result<(), StorageError> {
        self.append(writes)?;
        self.sync();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos::multi::Entry;
    use paxos::{Ballot, NodeId};

    fn votes(first: u64, value: u64) -> Vec<Write<u64>> {
        vec![Write::Votes {
            ballot: Ballot::new(1, NodeId(1)),
            first,
            entries: vec![Entry::Command(value)].into(),
        }]
    }

    fn slots(s: &FaultyStorage) -> Vec<u64> {
        let d: Durable<u64> = s.recover().unwrap();
        d.votes.iter().map(|(slot, _)| *slot).collect()
    }

    #[test]
    fn a_crash_loses_unsynced_writes_and_a_torn_one_is_cut_off() {
        let s = FaultyStorage::new();
        s.persist(votes(1, 1)).unwrap();
        s.append(votes(2, 2)).unwrap();
        s.append(votes(3, 3)).unwrap();
        let unsynced = s.unsynced();
        // The first unsynced record and half the second reached the disk.
        s.crash(unsynced * 3 / 4);
        assert_eq!(slots(&s), vec![1, 2]);
        s.crash(0);
        assert_eq!(slots(&s), vec![1, 2], "what recovery kept is durable");
        s.append(votes(4, 4)).unwrap();
        s.crash(0);
        assert_eq!(slots(&s), vec![1, 2]);
    }

    #[test]
    fn injected_errors_and_bit_flips_are_reported() {
        let s = FaultyStorage::new();
        s.fail_after(1);
        s.persist(votes(1, 1)).unwrap();
        assert!(matches!(
            s.persist(votes(2, 2)),
            Err(StorageError::Injected)
        ));
        s.persist(votes(3, 3)).unwrap();
        assert_eq!(slots(&s), vec![1, 3]);
        s.flip_bit(3, 0);
        assert!(matches!(
            s.recover::<u64>(),
            Err(StorageError::Corrupt { offset: 0, .. })
        ));
    }
}
