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
    let dir = std::env::temp_dir().join(format!("synod-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&dir)
        .status()
        .expect("mount runs");
    assert!(mounted.success(), "mounting a tmpfs needs root");
    let options = DiskOptions {
        segment_bytes: 8 << 10,
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
    let _ = Command::new("umount").arg(&dir).status();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        votes.len() as u64,
        acknowledged,
        "acknowledged appends lost or extra"
    );
}
