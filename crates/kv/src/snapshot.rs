//! The whole state as bytes, and back: what a replica ships to a laggard and stores as
//! its snapshot. Restoring verifies a checksum and every length; a damaged snapshot is an
//! error, never a panic.
//!
//! Taking a snapshot does not stall applies: clone the store (the key map is persistent,
//! so a clone shares every node and costs O(1)), hand the clone to another thread, and
//! serialise it there while the original keeps applying.
//!
//! Both directions stream: [`Store::write_snapshot`] writes through a 64 KiB buffer into
//! any writer (the server's is the snapshot file), and [`Store::read_snapshot`] rebuilds
//! the store from any reader, checksumming as it goes. Neither needs the whole snapshot
//! in memory; [`Store::snapshot`] and [`Store::restore`] are the same over a byte slice.
//!
//! Layout (integers little-endian, byte strings as a u32 length and the bytes):
//! magic `SYNODKV5`; revision, compaction revision, next lease ID, minimum lease TTL
//! (i64 each); lease count (u64), then per lease its ID and TTL (i64), its refresh count
//! (u64), and its key count (u32) and keys; alarm count (u64), then per alarm the member
//! (u64) and the alarm type (i32); member count (u64), then per member its id (u64), its
//! name, and its client URL count (u32) and URLs; peer count (u64), then per member whose
//! peer URLs were recorded its id (u64) and its peer URL count (u32) and URLs; the auth
//! state: enabled (one byte, 0 or 1), auth revision (u64), user count (u32), then per
//! user its name, bcrypt hash (empty for none), no-password byte, and its role count
//! (u32) and role names, role count (u32), then per role its name and its permission
//! count (u32) and per permission its kind (i32: 0 read, 1 write, 2 both), key and range
//! end; key count (u64), then per key the key,
//! its change count (u32) and per change its revision and sub-revision (i64) and a kind
//! byte (0 deletion, 1 value, followed by create revision, mod revision, version, lease as
//! i64 and the value); last, a CRC32C of everything before it (u32).
//!
//! Older versions are still read: version 4 (`SYNODKV4`, before auth) has no auth
//! section (auth off, no users or roles), version 3 (`SYNODKV3`, before membership changes
//! recorded peer URLs) has no peer section, version 2 (`SYNODKV2`, before members
//! published themselves) no member section either.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use crate::auth::{Auth, PermKind, Permission, Role, User};
use crate::history::History;
use crate::lease::LeaseState;
use crate::store::{Change, MemberAttributes, Store, Version};

const MAGIC: &[u8; 8] = b"SYNODKV5";
/// Version 4: no auth state (auth off, no users or roles).
const MAGIC_V4: &[u8; 8] = b"SYNODKV4";
/// Version 3: no peer section.
const MAGIC_V3: &[u8; 8] = b"SYNODKV3";
/// Version 2: no member section either.
const MAGIC_V2: &[u8; 8] = b"SYNODKV2";

/// Why a snapshot was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a snapshot of this format.
    Magic,
    /// The checksum does not match: damaged or truncated.
    Checksum,
    /// The checksum matches but the contents are malformed.
    Malformed,
    /// The bytes could not be read (an I/O error of this kind).
    Read(io::ErrorKind),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SnapshotError::Magic => "not a Synod key-value snapshot",
            SnapshotError::Checksum => "snapshot checksum mismatch (damaged or truncated)",
            SnapshotError::Malformed => "malformed snapshot",
            SnapshotError::Read(kind) => return write!(f, "cannot read the snapshot: {kind}"),
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
        w.put(&(self.members.len() as u64).to_le_bytes())?;
        for (id, member) in &self.members {
            w.put(&id.to_le_bytes())?;
            w.bytes(member.name.as_bytes())?;
            w.len(member.client_urls.len())?;
            for url in &member.client_urls {
                w.bytes(url.as_bytes())?;
            }
        }
        w.put(&(self.peer_urls.len() as u64).to_le_bytes())?;
        for (id, urls) in &self.peer_urls {
            w.put(&id.to_le_bytes())?;
            w.len(urls.len())?;
            for url in urls {
                w.bytes(url.as_bytes())?;
            }
        }
        write_auth(&mut w, &self.auth)?;
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
                        for n in [kv.create_revision, change.revision, kv.version, kv.lease] {
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
    pub fn restore(mut bytes: &[u8]) -> Result<Store, SnapshotError> {
        Store::read_snapshot(&mut bytes)
    }

    /// The state the snapshot `input` holds, read as it goes: memory grows with the store
    /// being rebuilt, not with a copy of the snapshot. Damaged bytes are refused as
    /// [`Store::restore`] refuses them: a checksum mismatch whatever the damage, a
    /// malformed store only if the checksum matches.
    pub fn read_snapshot(input: &mut dyn io::Read) -> Result<Store, SnapshotError> {
        let mut r = Reader::new(input);
        let mut magic = [0; MAGIC.len()];
        let version = match r.fill(&mut magic) {
            Some(()) if &magic == MAGIC => 5,
            Some(()) if &magic == MAGIC_V4 => 4,
            Some(()) if &magic == MAGIC_V3 => 3,
            Some(()) if &magic == MAGIC_V2 => 2,
            _ => return Err(r.io_error().unwrap_or(SnapshotError::Magic)),
        };
        let decoded = decode(&mut r, version);
        if let Some(error) = r.io_error() {
            return Err(error);
        }
        match (decoded, r.at_end()) {
            (Some(store), true) => r
                .checksum_matches()
                .then_some(store)
                .ok_or(SnapshotError::Checksum),
            // Undecodable, or more after the store: damage unless the checksum matches.
            _ => match r.skip_to_end() {
                Some(error) => Err(error),
                None if r.checksum_matches() => Err(SnapshotError::Malformed),
                None => Err(SnapshotError::Checksum),
            },
        }
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

/// Reads a snapshot's bytes from a stream: everything but the last four (the checksum)
/// is the body, checksummed as it is consumed.
struct Reader<'a> {
    input: &'a mut dyn io::Read,
    /// Bytes read ahead: `buf[at..]` is not consumed yet.
    buf: Vec<u8>,
    at: usize,
    /// The input has ended.
    ended: bool,
    crc: u32,
    error: Option<io::ErrorKind>,
}

/// Bytes read from the input at a time; also the most a length in the input can make the
/// reader allocate ahead of the bytes arriving.
const READ_BUFFER: usize = 64 << 10;
const TRAILER: usize = 4;

impl<'a> Reader<'a> {
    fn new(input: &'a mut dyn io::Read) -> Reader<'a> {
        Reader {
            input,
            buf: Vec::with_capacity(READ_BUFFER + TRAILER),
            at: 0,
            ended: false,
            crc: 0,
            error: None,
        }
    }

    /// Body bytes ready to consume (the last four bytes of the input are held back).
    fn ready(&self) -> usize {
        (self.buf.len() - self.at).saturating_sub(TRAILER)
    }

    /// Reads more of the input; false once it has ended (or failed).
    fn read_more(&mut self) -> bool {
        if self.ended {
            return false;
        }
        self.buf.drain(..self.at);
        self.at = 0;
        let filled = self.buf.len();
        self.buf.resize(filled + READ_BUFFER, 0);
        loop {
            match self.input.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.buf.truncate(filled);
                    self.ended = true;
                    return false;
                }
                Ok(n) => {
                    self.buf.truncate(filled + n);
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(filled);
                    self.ended = true;
                    self.error = Some(e.kind());
                    return false;
                }
            }
        }
    }

    /// Consumes up to `n` body bytes, reading more when none are ready.
    fn consume(&mut self, n: usize) -> Option<&[u8]> {
        while self.ready() == 0 {
            if !self.read_more() {
                return None;
            }
        }
        let n = n.min(self.ready());
        let bytes = &self.buf[self.at..self.at + n];
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.at += n;
        Some(bytes)
    }

    fn fill(&mut self, out: &mut [u8]) -> Option<()> {
        let mut done = 0;
        while done < out.len() {
            let bytes = self.consume(out.len() - done)?;
            out[done..done + bytes.len()].copy_from_slice(bytes);
            done += bytes.len();
        }
        Some(())
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut out = [0; N];
        self.fill(&mut out)?;
        Some(out)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(u32::from_le_bytes(self.array()?)).ok()
    }

    /// A length-prefixed byte string; its buffer grows as its bytes arrive, so a damaged
    /// length cannot make the reader allocate gigabytes.
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.len()?;
        let mut out = Vec::with_capacity(len.min(READ_BUFFER));
        while out.len() < len {
            let bytes = self.consume(len - out.len())?;
            out.extend_from_slice(bytes);
        }
        Some(out)
    }

    /// Whether the body is all consumed.
    fn at_end(&mut self) -> bool {
        while self.ready() == 0 {
            if !self.read_more() {
                return true;
            }
        }
        false
    }

    /// Consumes the rest of the body; the read error, if one ends it.
    fn skip_to_end(&mut self) -> Option<SnapshotError> {
        while self.consume(usize::MAX).is_some() {}
        self.io_error()
    }

    /// Whether the four bytes after the body are the body's checksum.
    fn checksum_matches(&self) -> bool {
        self.ended
            && self.buf.len() - self.at == TRAILER
            && self.buf[self.at..] == self.crc.to_le_bytes()
    }

    fn io_error(&self) -> Option<SnapshotError> {
        self.error.map(SnapshotError::Read)
    }
}

/// A URL count (u32) and the URLs.
/// The auth state: on or off, revision, users (name, hash, no-password, roles), roles
/// (name, permissions: kind, key, end).
fn write_auth(w: &mut Encoder<'_>, auth: &Auth) -> io::Result<()> {
    w.put(&[u8::from(auth.enabled)])?;
    w.put(&auth.revision.to_le_bytes())?;
    w.len(auth.users.len())?;
    for (name, user) in &auth.users {
        w.bytes(name.as_bytes())?;
        w.bytes(&user.password)?;
        w.put(&[u8::from(user.no_password)])?;
        w.len(user.roles.len())?;
        for role in &user.roles {
            w.bytes(role.as_bytes())?;
        }
    }
    w.len(auth.roles.len())?;
    for (name, role) in &auth.roles {
        w.bytes(name.as_bytes())?;
        w.len(role.perms.len())?;
        for perm in &role.perms {
            w.put(&perm.kind.number().to_le_bytes())?;
            w.bytes(&perm.key)?;
            w.bytes(&perm.range_end)?;
        }
    }
    Ok(())
}

fn read_auth(r: &mut Reader<'_>) -> Option<Auth> {
    let mut auth = Auth {
        enabled: flag(r)?,
        revision: r.u64()?,
        ..Auth::default()
    };
    for _ in 0..r.len()? {
        let name = String::from_utf8(r.bytes()?).ok()?;
        let password = r.bytes()?;
        let no_password = flag(r)?;
        let roles = urls(r)?;
        let user = User {
            password,
            no_password,
            roles,
        };
        auth.users.insert(name, user);
    }
    for _ in 0..r.len()? {
        let name = String::from_utf8(r.bytes()?).ok()?;
        let mut perms = Vec::new();
        for _ in 0..r.len()? {
            let kind = PermKind::from_number(i32::from_le_bytes(r.array()?));
            let (key, range_end) = (r.bytes()?, r.bytes()?);
            perms.push(Permission {
                kind,
                key,
                range_end,
            });
        }
        auth.roles.insert(name, Role { perms });
    }
    Some(auth)
}

fn flag(r: &mut Reader<'_>) -> Option<bool> {
    match r.array::<1>()?[0] {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// A list of strings (URLs, role names).
fn urls(r: &mut Reader<'_>) -> Option<Vec<String>> {
    let mut urls = Vec::new();
    for _ in 0..r.len()? {
        urls.push(String::from_utf8(r.bytes()?).ok()?);
    }
    Some(urls)
}

fn decode(r: &mut Reader<'_>, version: u8) -> Option<Store> {
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
        let alarm = i32::from_le_bytes(r.array()?);
        store.alarms.insert((member, alarm));
    }
    if version >= 3 {
        for _ in 0..r.u64()? {
            let id = r.u64()?;
            let name = String::from_utf8(r.bytes()?).ok()?;
            let client_urls = urls(r)?;
            store
                .members
                .insert(id, MemberAttributes { name, client_urls });
        }
    }
    if version >= 4 {
        for _ in 0..r.u64()? {
            let id = r.u64()?;
            store.peer_urls.insert(id, urls(r)?);
        }
    }
    if version >= 5 {
        store.auth = std::sync::Arc::new(read_auth(r)?);
    }
    for _ in 0..r.u64()? {
        let key = r.bytes()?;
        let mut changes = Vec::new();
        for _ in 0..r.len()? {
            let (revision, sub) = (r.i64()?, r.i64()?);
            let kv = match r.array::<1>()?[0] {
                0 => None,
                1 => {
                    let (create_revision, mod_revision) = (r.i64()?, r.i64()?);
                    let (version, lease) = (r.i64()?, r.i64()?);
                    // A put's mod revision is its change's: this code never wrote another.
                    if mod_revision != revision {
                        return None;
                    }
                    Some(Version {
                        create_revision,
                        version,
                        value: r.bytes()?.into(),
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
    Some(store)
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
        let attributes = MemberAttributes {
            name: "s1".into(),
            client_urls: vec!["http://127.0.0.1:2379".into(), "http://[::1]:2379".into()],
        };
        s.publish(7, attributes);
        s.publish(9, MemberAttributes::default());
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
        let auth = s.auth_mut();
        auth.user_add("root", b"$2a$10$hash".to_vec(), false)
            .unwrap();
        auth.user_grant_role("root", "root").unwrap();
        auth.user_add("cert-only", Vec::new(), true).unwrap();
        auth.role_add("r").unwrap();
        let perm = Permission {
            kind: PermKind::ReadWrite,
            key: b"k".to_vec(),
            range_end: vec![0],
        };
        auth.role_grant_permission("r", perm).unwrap();
        auth.user_grant_role("cert-only", "r").unwrap();
        auth.enable().unwrap();
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

    /// [`sample`] with `count` more keys of `value_len`-byte values.
    fn sample_with_keys(count: u32, value_len: usize) -> Store {
        let mut s = sample();
        for i in 0..count {
            let put = Put {
                key: format!("key-{i:05}").into_bytes(),
                value: vec![(i % 251) as u8; value_len],
                ..Put::default()
            };
            s.put(&put).unwrap();
        }
        s
    }

    #[test]
    fn a_store_larger_than_the_encoder_buffer_streams_and_restores() {
        let s = sample_with_keys(2_000, 100);
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
            let expected = if i < MAGIC.len() {
                SnapshotError::Magic
            } else {
                SnapshotError::Checksum
            };
            assert_eq!(Store::restore(&flipped), Err(expected), "flip at {i}");
        }
    }

    /// A version 5 snapshot of a store without auth state as version 4 wrote it: the
    /// auth section at `at` (off, revision 1, no users, no roles) taken out, checksum
    /// recomputed.
    fn without_auth(v5: &[u8], at: usize) -> Vec<u8> {
        let default_auth = [&[0u8][..], &1u64.to_le_bytes(), &[0; 8]].concat();
        assert_eq!(&v5[at..at + default_auth.len()], &default_auth[..]);
        let mut v4 = MAGIC_V4.to_vec();
        v4.extend_from_slice(&v5[MAGIC.len()..at]);
        v4.extend_from_slice(&v5[at + default_auth.len()..v5.len() - 4]);
        let crc = crc32c::crc32c(&v4);
        v4.extend_from_slice(&crc.to_le_bytes());
        v4
    }

    #[test]
    fn a_version_4_snapshot_restores_with_auth_off_and_no_users() {
        let mut store = Store::new();
        store.publish(7, MemberAttributes::default());
        let v4 = without_auth(&store.snapshot(), MAGIC.len() + 4 * 8 + 4 * 8 + 16);
        assert_eq!(Store::restore(&v4), Ok(store.clone()));
        store.auth_mut().role_add("r").unwrap();
        assert_ne!(Store::restore(&v4), Ok(store));
    }

    #[test]
    fn a_version_2_snapshot_restores_with_no_member_published() {
        let mut store = Store::new();
        let put = Put {
            key: "k".into(),
            value: b"v".to_vec(),
            ..Put::default()
        };
        store.put(&put).unwrap();
        let v4 = without_auth(&store.snapshot(), MAGIC.len() + 4 * 8 + 4 * 8);
        // Version 2: its own magic, and neither member nor peer count after the (empty)
        // lease and alarm sections.
        let members_at = MAGIC.len() + 4 * 8 + 8 + 8;
        let mut v2 = MAGIC_V2.to_vec();
        v2.extend_from_slice(&v4[MAGIC.len()..members_at]);
        v2.extend_from_slice(&v4[members_at + 16..v4.len() - 4]);
        let crc = crc32c::crc32c(&v2);
        v2.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(Store::restore(&v2), Ok(store.clone()));
        store.publish(1, MemberAttributes::default());
        assert_ne!(Store::restore(&v2), Ok(store));
    }

    #[test]
    fn a_version_3_snapshot_restores_with_no_peer_urls() {
        let mut store = Store::new();
        store.publish(7, MemberAttributes::default());
        let v4 = without_auth(&store.snapshot(), MAGIC.len() + 4 * 8 + 4 * 8 + 16);
        // Version 3: its own magic, and no peer count after the one member.
        let peers_at = v4.len() - 4 - 8 - 8;
        let mut v3 = MAGIC_V3.to_vec();
        v3.extend_from_slice(&v4[MAGIC.len()..peers_at]);
        v3.extend_from_slice(&v4[peers_at + 8..v4.len() - 4]);
        let crc = crc32c::crc32c(&v3);
        v3.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(Store::restore(&v3), Ok(store.clone()));
        store.record_peer_urls(7, vec!["http://127.0.0.1:2380".into()]);
        let restored = Store::restore(&store.snapshot()).unwrap();
        assert_eq!(
            restored.peer_urls(7),
            Some(&["http://127.0.0.1:2380".to_string()][..])
        );
    }

    #[test]
    fn a_huge_length_with_a_good_checksum_is_malformed_not_an_allocation() {
        let mut body = MAGIC.to_vec();
        for n in [1i64, 0, 1, 0] {
            body.extend_from_slice(&n.to_le_bytes());
        }
        body.extend_from_slice(&0u64.to_le_bytes()); // no leases
        body.extend_from_slice(&0u64.to_le_bytes()); // no alarms
        body.extend_from_slice(&0u64.to_le_bytes()); // no members
        body.extend_from_slice(&0u64.to_le_bytes()); // no peer URLs
        body.extend_from_slice(&1u64.to_le_bytes()); // one key...
        body.extend_from_slice(&u32::MAX.to_le_bytes()); // ...of 4 GiB, absent
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(Store::restore(&body), Err(SnapshotError::Malformed));
    }

    /// Gives `good` bytes, then fails.
    struct Failing {
        good: Vec<u8>,
    }

    impl io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.good.is_empty() {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone"));
            }
            let n = buf.len().min(self.good.len()).min(1000);
            buf[..n].copy_from_slice(&self.good[..n]);
            self.good.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn a_failing_reader_is_a_read_error_wherever_it_fails() {
        let bytes = sample_with_keys(300, 300).snapshot();
        for cut in [0, 5, 100, 70_000, bytes.len() - 2] {
            let mut input = Failing {
                good: bytes[..cut].to_vec(),
            };
            let read = Store::read_snapshot(&mut input);
            assert_eq!(
                read,
                Err(SnapshotError::Read(io::ErrorKind::BrokenPipe)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder() {
        use rand_core::{RngCore, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(9);
        for _ in 0..2000 {
            let len = (rng.next_u32() % 300) as usize;
            let mut body: Vec<u8> = (0..len).map(|_| rng.next_u32().to_le_bytes()[0]).collect();
            let _ = Store::restore(&body);
            body.splice(0..0, MAGIC.iter().copied());
            let crc = crc32c::crc32c(&body);
            body.extend_from_slice(&crc.to_le_bytes());
            let _ = Store::restore(&body);
        }
    }
}
