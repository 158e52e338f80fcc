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
        membership: crate::conformance::a_membership(),
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
            membership: crate::conformance::a_membership(),
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
