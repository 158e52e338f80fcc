//! The whole state as bytes, and back: what a replica ships to a laggard and stores as
//! its snapshot. Restoring verifies a checksum and every length; a damaged snapshot is an
//! error, never a panic.
//!
//! Taking a snapshot does not stall applies: clone the store (the key map is persistent,
//! so a clone shares every node and costs O(1)), hand the clone to another thread, and
//! serialise it there while the original keeps applying.
//!
//! Layout (integers little-endian, byte strings as a u32 length and the bytes):
//! magic `SYNODKV1`; revision, compaction revision, next lease ID, minimum lease TTL
//! (i64 each); lease count (u64), then per lease its ID and TTL (i64) and its key count
//! (u32) and keys; key count (u64), then per key the key, its change count (u32) and per
//! change its revision and sub-revision (i64) and a kind byte (0 deletion, 1 value,
//! followed by create revision, mod revision, version, lease as i64 and the value); last,
//! a CRC32C of everything before it (u32).

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use crate::history::History;
use crate::lease::LeaseState;
use crate::store::{Change, KeyValue, Store};

const MAGIC: &[u8; 8] = b"SYNODKV2";

/// Why a snapshot was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a snapshot of this format.
    Magic,
    /// The checksum does not match: damaged or truncated.
    Checksum,
    /// The checksum matches but the contents are malformed.
    Malformed,
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SnapshotError::Magic => "not a Synod key-value snapshot",
            SnapshotError::Checksum => "snapshot checksum mismatch (damaged or truncated)",
            SnapshotError::Malformed => "malformed snapshot",
        })
    }
}

impl std::error::Error for SnapshotError {}

impl Store {
    /// The whole state as bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = self.write_snapshot(&mut out);
        out
    }

    /// Writes the whole state to `out` as it goes, a few kilobytes at a time: a large
    /// store never needs a second copy of itself in memory.
    pub fn write_snapshot(&self, out: &mut dyn io::Write) -> io::Result<()> {
        let mut w = Encoder::new(out);
        w.put(MAGIC)?;
        for n in [
            self.revision,
            self.compacted,
            self.leases.next_id,
            self.leases.min_ttl,
        ] {
            w.put(&n.to_le_bytes())?;
        }
        w.put(&(self.leases.leases.len() as u64).to_le_bytes())?;
        for (id, lease) in &self.leases.leases {
            w.put(&id.to_le_bytes())?;
            w.put(&lease.ttl.to_le_bytes())?;
            w.put(&lease.refreshes.to_le_bytes())?;
            w.len(lease.keys.len())?;
            for key in &lease.keys {
                w.bytes(key)?;
            }
        }
        w.put(&(self.alarms.len() as u64).to_le_bytes())?;
        for (member, alarm) in &self.alarms {
            w.put(&member.to_le_bytes())?;
            w.put(&alarm.to_le_bytes())?;
        }
        w.put(&(self.keys.len() as u64).to_le_bytes())?;
        for (key, history) in &self.keys {
            w.bytes(key)?;
            w.len(history.len())?;
            for change in history.oldest_first() {
                w.put(&change.revision.to_le_bytes())?;
                w.put(&change.sub.to_le_bytes())?;
                match &change.kv {
                    None => w.put(&[0])?,
                    Some(kv) => {
                        w.put(&[1])?;
                        for n in [kv.create_revision, kv.mod_revision, kv.version, kv.lease] {
                            w.put(&n.to_le_bytes())?;
                        }
                        w.bytes(&kv.value)?;
                    }
                }
            }
        }
        w.finish()
    }

    /// The state a snapshot describes.
    pub fn restore(bytes: &[u8]) -> Result<Store, SnapshotError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(SnapshotError::Magic);
        }
        let (body, crc) = bytes.split_at(bytes.len().saturating_sub(4).max(MAGIC.len()));
        let crc = <[u8; 4]>::try_from(crc).ok().map(u32::from_le_bytes);
        if crc != Some(crc32c::crc32c(body)) {
            return Err(SnapshotError::Checksum);
        }
        decode(&body[MAGIC.len()..]).ok_or(SnapshotError::Malformed)
    }
}

/// Bytes gathered before they go to the writer (and into the checksum).
const ENCODER_BUFFER: usize = 64 << 10;

/// Buffers small writes, checksums everything, and ends with the checksum.
struct Encoder<'a> {
    out: &'a mut dyn io::Write,
    buf: Vec<u8>,
    crc: u32,
}

impl<'a> Encoder<'a> {
    fn new(out: &'a mut dyn io::Write) -> Encoder<'a> {
        Encoder {
            out,
            buf: Vec::with_capacity(ENCODER_BUFFER),
            crc: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= ENCODER_BUFFER {
            self.drain()?;
        }
        Ok(())
    }

    fn len(&mut self, len: usize) -> io::Result<()> {
        self.put(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes())
    }

    fn bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.len(bytes.len())?;
        self.put(bytes)
    }

    fn drain(&mut self) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.drain()?;
        self.out.write_all(&self.crc.to_le_bytes())?;
        self.out.flush()
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn len(&mut self) -> Option<usize> {
        usize::try_from(u32::from_le_bytes(self.take(4)?.try_into().ok()?)).ok()
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.len()?;
        Some(self.take(len)?.to_vec())
    }
}

fn decode(body: &[u8]) -> Option<Store> {
    let mut r = Reader(body);
    let mut store = Store::new();
    store.revision = r.i64()?;
    store.compacted = r.i64()?;
    store.leases.next_id = r.i64()?;
    store.leases.min_ttl = r.i64()?;
    let mut leases = BTreeMap::new();
    for _ in 0..r.u64()? {
        let id = r.i64()?;
        let ttl = r.i64()?;
        let refreshes = r.u64()?;
        let mut keys = BTreeSet::new();
        for _ in 0..r.len()? {
            keys.insert(r.bytes()?);
        }
        leases.insert(
            id,
            LeaseState {
                ttl,
                keys,
                refreshes,
            },
        );
    }
    store.leases.leases = leases;
    for _ in 0..r.u64()? {
        let member = r.u64()?;
        let alarm = i32::from_le_bytes(r.take(4)?.try_into().ok()?);
        store.alarms.insert((member, alarm));
    }
    for _ in 0..r.u64()? {
        let key = r.bytes()?;
        let mut changes = Vec::new();
        for _ in 0..r.len()? {
            let (revision, sub) = (r.i64()?, r.i64()?);
            let kv = match r.take(1)?[0] {
                0 => None,
                1 => {
                    let (create_revision, mod_revision) = (r.i64()?, r.i64()?);
                    let (version, lease) = (r.i64()?, r.i64()?);
                    Some(KeyValue {
                        key: key.clone(),
                        create_revision,
                        mod_revision,
                        version,
                        value: r.bytes()?,
                        lease,
                    })
                }
                _ => return None,
            };
            changes.push(Change { revision, sub, kv });
        }
        // A key without changes is never written; one in the bytes is not a snapshot.
        store
            .keys
            .insert(key.into(), History::from_oldest(changes)?);
    }
    store.measure();
    r.0.is_empty().then_some(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::LeaseGrant;
    use crate::store::{Compaction, DeleteRange, Put};

    fn sample() -> Store {
        let mut s = Store::new();
        let lease = s.lease_grant(LeaseGrant { ttl: 60, id: 0 }).unwrap();
        s.lease_keep_alive(lease.id).unwrap();
        s.alarm_activate(7, 1);
        for (i, key) in ["a", "b", "c", "a"].iter().enumerate() {
            let put = Put {
                key: (*key).into(),
                value: format!("v{i}").into_bytes(),
                lease: if i == 1 { lease.id } else { 0 },
                ..Put::default()
            };
            s.put(&put).unwrap();
        }
        let d = DeleteRange {
            key: "c".into(),
            ..DeleteRange::default()
        };
        s.delete_range(&d).unwrap();
        s.compact(Compaction { revision: 3 }).unwrap();
        s
    }

    /// A writer that takes at most 7 bytes a call: the encoder must not assume whole writes.
    struct Trickle(Vec<u8>);

    impl io::Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_store_larger_than_the_encoder_buffer_streams_and_restores() {
        let mut s = sample();
        for i in 0..2_000u32 {
            let put = Put {
                key: format!("key-{i:05}").into_bytes(),
                value: vec![(i % 251) as u8; 100],
                ..Put::default()
            };
            s.put(&put).unwrap();
        }
        let mut out = Trickle(Vec::new());
        s.write_snapshot(&mut out).unwrap();
        assert!(out.0.len() > 3 * ENCODER_BUFFER);
        assert_eq!(out.0, s.snapshot());
        assert_eq!(Store::restore(&out.0).unwrap(), s);
    }

    #[test]
    fn a_snapshot_restores_the_same_store() {
        let s = sample();
        let restored = Store::restore(&s.snapshot()).unwrap();
        assert!(s.size_bytes() > 0);
        assert_eq!(
            restored.size_bytes(),
            s.size_bytes(),
            "the size estimate is state"
        );
        assert_eq!(restored, s);
    }

    #[test]
    fn a_clone_is_a_cheap_consistent_view_while_applies_go_on() {
        let mut s = sample();
        let view = s.clone(); // Shares the key map's nodes: no copy of the data.
        let expected = view.snapshot();
        for i in 0..100 {
            let put = Put {
                key: format!("k{i}").into_bytes(),
                value: b"later".to_vec(),
                ..Put::default()
            };
            s.put(&put).unwrap();
        }
        assert_eq!(
            view.snapshot(),
            expected,
            "the view did not see later applies"
        );
        assert_ne!(s.snapshot(), expected);
    }

    #[test]
    fn damaged_snapshots_are_refused_never_trusted() {
        let bytes = sample().snapshot();
        for cut in [0, 4, 8, 20, bytes.len() - 1] {
            assert!(Store::restore(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x04;
            assert!(Store::restore(&flipped).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder() {
        use rand_core::{RngCore, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(9);
        for _ in 0..2000 {
            let len = (rng.next_u32() % 300) as usize;
            let mut body: Vec<u8> = (0..len).map(|_| rng.next_u32().to_le_bytes()[0]).collect();
            let _ = decode(&body);
            body.splice(0..0, MAGIC.iter().copied());
            let crc = crc32c::crc32c(&body);
            body.extend_from_slice(&crc.to_le_bytes());
            let _ = Store::restore(&body);
        }
    }
}
