//! One suite of behaviours every implementation must show: the contract of the crate
//! documentation, run against memory, faulty and disk storage alike.

use std::sync::Arc;

use paxos::multi::{Durable, Entry, LogEntry, Members, Membership, SnapshotData, Write};
use paxos::{Ballot, NodeId, QuorumSpec};

use crate::{DiskOptions, DiskStorage, FaultyStorage, Identity, MemoryStorage, Storage};

fn ballot(round: u64) -> Ballot {
    Ballot::new(round, NodeId(1))
}

fn votes(round: u64, first: u64, values: &[u64]) -> Write<u64> {
    Write::Votes {
        ballot: ballot(round),
        first,
        entries: values.iter().map(|&v| Entry::Command(v)).collect(),
    }
}

fn vote(round: u64, value: u64) -> LogEntry<u64> {
    LogEntry {
        ballot: ballot(round),
        entry: Entry::Command(value),
    }
}

/// Runs every case against storage made by `open` and reopened (a clean restart) by
/// `reopen`.
pub(crate) fn conformance<S: Storage<u64>>(
    open: &mut dyn FnMut() -> S,
    reopen: &mut dyn FnMut(S) -> S,
) {
    // Empty storage recovers nothing.
    let s = open();
    assert_eq!(s.recovered().unwrap(), Durable::default());

    // Everything persisted survives a restart; later writes win; promise and commit rise.
    let s = open();
    s.persist(vec![Write::Promise(ballot(2)), votes(2, 1, &[10, 11, 12])])
        .unwrap();
    s.persist(vec![
        votes(3, 2, &[21]),
        Write::Commit(1),
        Write::Promise(ballot(1)),
    ])
    .unwrap();
    let chosen = vec![LogEntry {
        ballot: ballot(2),
        entry: Entry::Noop,
    }];
    s.persist(vec![Write::Chosen {
        first: 4,
        entries: chosen,
    }])
    .unwrap();
    let d = reopen(s).recovered().unwrap();
    assert_eq!(
        d.promised,
        ballot(3),
        "a vote implies its promise; promises never fall"
    );
    assert_eq!(d.commit, 1);
    let expected = vec![
        (1, vote(2, 10)),
        (2, vote(3, 21)),
        (3, vote(2, 12)),
        (
            4,
            LogEntry {
                ballot: ballot(2),
                entry: Entry::Noop,
            },
        ),
    ];
    assert_eq!(d.votes, expected);
    assert_eq!(d.snapshot, None);

    // A snapshot replaces every vote at or below its index, and its bytes come back.
    let s = open();
    s.persist(vec![votes(1, 1, &[1, 2, 3, 4])]).unwrap();
    let data = SnapshotData::from(b"state through slot 2".to_vec());
    let membership = a_membership();
    s.persist(vec![Write::Snapshot {
        index: 2,
        membership: membership.clone(),
        data: data.clone(),
    }])
    .unwrap();
    let d = reopen(s).recovered().unwrap();
    assert_eq!(d.snapshot, Some((2, data)));
    assert_eq!(d.snapshot_membership, Some(membership));
    assert_eq!(d.votes, vec![(3, vote(1, 3)), (4, vote(1, 4))]);
    assert_eq!(d.commit, 2, "a snapshot's index is chosen");
}

/// Two active configurations (a change under way), the newer with a learner.
pub(crate) fn a_membership() -> Membership {
    let ids = |ids: &[u64]| ids.iter().map(|&i| NodeId(i)).collect::<Vec<_>>();
    let old = Members::new(ids(&[1, 2, 3]), QuorumSpec::Majority).unwrap();
    let new = Members::with_learners(ids(&[1, 2, 3, 4]), ids(&[5]), QuorumSpec::Majority);
    Membership::from_parts(3, vec![Arc::new(old), Arc::new(new.unwrap())], None).unwrap()
}

#[test]
fn memory_storage_keeps_the_contract() {
    conformance(&mut MemoryStorage::new, &mut |s: MemoryStorage<u64>| {
        s.reopen()
    });
}

#[test]
fn faulty_storage_keeps_the_contract() {
    conformance(&mut FaultyStorage::new, &mut |s: FaultyStorage| s);
}

pub(crate) fn scratch() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("synod-storage-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub(crate) fn options() -> DiskOptions {
    DiskOptions {
        segment_bytes: 256, // Tiny: the suite crosses segment boundaries.
        ..DiskOptions::new(Identity {
            cluster: 7,
            member: NodeId(1),
        })
    }
}

#[test]
fn disk_storage_keeps_the_contract() {
    disk_storage_keeps_the_contract_with(options());
}

#[test]
fn disk_storage_through_the_page_cache_keeps_the_contract() {
    disk_storage_keeps_the_contract_with(DiskOptions {
        direct_io: false,
        ..options()
    });
}

fn disk_storage_keeps_the_contract_with(options: DiskOptions) {
    let mut dirs = Vec::new();
    conformance(
        &mut || {
            let dir = scratch();
            dirs.push(dir.clone());
            DiskStorage::open(dir, options).unwrap()
        },
        &mut |s: DiskStorage<u64>| {
            let dir = s.dir().to_path_buf();
            drop(s);
            DiskStorage::open(dir, options).unwrap()
        },
    );
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}
