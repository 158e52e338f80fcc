//! A full disk: appends fail with `StorageError::Full`, and nothing acknowledged is lost.
//! Needs a small file system to fill, so it mounts a 64 KiB tmpfs, which needs root:
//! `sudo -E cargo test -p synod-storage --test full_disk -- --ignored`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

use paxos::multi::{Entry, Write};
use paxos::{Ballot, NodeId};
use storage::{DiskOptions, DiskStorage, Identity, Storage, StorageError};

#[test]
#[ignore = "mounts a tmpfs: needs root"]
fn a_full_disk_fails_appends_and_loses_nothing_acknowledged() {
    // Small segments fill the disk when a new one is created; large ones when a write's
    // zero-fill extends one (a partial write, undone).
    for segment_bytes in [8 << 10, 48 << 10] {
        for direct_io in [true, false] {
            fill_the_disk(segment_bytes, direct_io);
        }
    }
}

fn fill_the_disk(segment_bytes: u64, direct_io: bool) {
    let dir = std::env::temp_dir().join(format!(
        "synod-full-{}-{segment_bytes}-{direct_io}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&dir)
        .status()
        .expect("mount runs");
    assert!(mounted.success(), "mounting a tmpfs needs root");
    let options = DiskOptions {
        segment_bytes,
        direct_io,
        ..DiskOptions::new(Identity {
            cluster: 1,
            member: NodeId(1),
        })
    };
    let storage = DiskStorage::<Vec<u8>>::open(dir.join("data"), options).unwrap();
    let mut acknowledged = 0;
    let error = loop {
        let write = Write::Votes {
            ballot: Ballot::new(1, NodeId(1)),
            first: acknowledged + 1,
            entries: vec![Entry::Command(vec![7u8; 200])].into(),
        };
        match storage.persist(vec![write]) {
            Ok(()) => acknowledged += 1,
            Err(error) => break error,
        }
        assert!(acknowledged < 10_000, "the disk never filled");
    };
    assert!(matches!(error, StorageError::Full { .. }), "{error}");
    assert!(error.to_string().contains("no space left"));
    drop(storage);
    let storage = DiskStorage::<Vec<u8>>::open(dir.join("data"), options).unwrap();
    let votes = storage.recovered().unwrap().votes;
    let _ = Command::new("umount").arg("-l").arg(&dir).status();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        votes.len() as u64,
        acknowledged,
        "acknowledged appends lost or extra ({segment_bytes}-byte segments, direct {direct_io})"
    );
    assert!(acknowledged > 0);
}
