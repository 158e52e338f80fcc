//! An etcd v3 database (the bbolt file `etcdctl snapshot save` writes against etcd) read
//! into a store: every kept revision of every key (puts and deletions, with their create
//! and mod revisions, versions and leases), the leases with their TTLs, and the
//! compacted revision. Read with [`crate::bbolt`]; nothing is half-read: any damage is
//! an error naming the page or the record.
//!
//! etcd's buckets (`docs/STORAGE-FORMAT.md`): `key` maps a revision (8 bytes of main
//! revision, big-endian, `_`, 8 bytes of sub-revision, and a `t` for a deletion) to the
//! key's `mvccpb.KeyValue` after it; `lease` maps a lease id (8 bytes, big-endian) to a
//! `leasepb.Lease` (ID, TTL); `meta` holds `finishedCompactRev` (a revision, same form);
//! `auth` holds `authEnabled` (one byte) and `authRevision` (8 bytes, big-endian),
//! `authUsers` maps a name to an `authpb.User` (bcrypt hash, roles, no-password) and
//! `authRoles` a name to an `authpb.Role` (its permissions).

use prost::Message;

use crate::bbolt::{BoltError, Db};
use crate::proto::{authpb, mvccpb};

/// The magic of a bbolt meta page, at byte 16 of the file: how an etcd database is told
/// from a Synod backup.
pub fn looks_like_bbolt(file: &[u8]) -> bool {
    file.get(16..20) == Some(&0xED0C_DAEDu32.to_le_bytes()[..])
}

/// etcd's `leasepb.Lease`.
#[derive(Clone, PartialEq, Message)]
struct Lease {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
}

fn record(what: impl Into<String>) -> BoltError {
    BoltError {
        page: None,
        what: what.into(),
    }
}

/// A revision key: (main, sub, deletion).
fn revision(bytes: &[u8]) -> Result<(i64, i64, bool), BoltError> {
    let tombstone = match bytes.len() {
        17 => false,
        18 if bytes[17] == b't' => true,
        _ => return Err(record(format!("a revision key of {} bytes", bytes.len()))),
    };
    let main = i64::from_be_bytes(bytes[..8].try_into().unwrap_or_default());
    let sub = i64::from_be_bytes(bytes[9..17].try_into().unwrap_or_default());
    if bytes[8] != b'_' || main < 1 || sub < 0 {
        return Err(record(format!("a malformed revision key {bytes:?}")));
    }
    Ok((main, sub, tombstone))
}

/// The store the etcd database `file` holds.
pub fn read(file: &[u8], min_lease_ttl: i64) -> Result<kv::Store, BoltError> {
    let db = Db::open(file)?;
    let mut changes = Vec::new();
    let found = db.for_each(b"key", &mut |key, value| {
        let (main, sub, tombstone) = revision(key)?;
        let kv = mvccpb::KeyValue::decode(value)
            .map_err(|e| record(format!("revision {main}.{sub}: its key-value: {e}")))?;
        changes.push(kv::ImportedChange {
            revision: main,
            sub,
            key: kv.key.clone(),
            put: match tombstone {
                true => None,
                false => Some(crate::convert::from_key_value(kv)),
            },
        });
        Ok(())
    })?;
    if found.is_none() {
        return Err(record("no `key` bucket: not an etcd v3 database"));
    }
    let mut compacted = -1;
    db.for_each(b"meta", &mut |key, value| {
        if key == b"finishedCompactRev" {
            compacted = revision(value.get(..17).unwrap_or(value))?.0;
        }
        Ok(())
    })?;
    let mut leases = Vec::new();
    db.for_each(b"lease", &mut |_, value| {
        let lease = Lease::decode(value).map_err(|e| record(format!("a lease: {e}")))?;
        leases.push((lease.id, lease.ttl));
        Ok(())
    })?;
    let mut store = kv::Store::import(changes, compacted, &leases, min_lease_ttl)
        .map_err(|e| record(e.to_string()))?;
    *store.auth_mut() = read_auth(&db)?;
    Ok(store)
}

/// Users, roles and whether auth is on: the passwords stay bcrypt hashes, which Synod
/// checks as etcd does.
fn read_auth(db: &Db<'_>) -> Result<kv::Auth, BoltError> {
    let (mut enabled, mut revision) = (false, 1);
    db.for_each(b"auth", &mut |key, value| {
        match key {
            b"authEnabled" => enabled = value == [1],
            b"authRevision" => {
                let bytes: [u8; 8] = value
                    .try_into()
                    .map_err(|_| record(format!("an auth revision of {} bytes", value.len())))?;
                revision = u64::from_be_bytes(bytes);
            }
            _ => {}
        }
        Ok(())
    })?;
    let mut users = std::collections::BTreeMap::new();
    db.for_each(b"authUsers", &mut |_, value| {
        let user = authpb::User::decode(value).map_err(|e| record(format!("a user: {e}")))?;
        let name =
            String::from_utf8(user.name).map_err(|_| record("a user name that is not UTF-8"))?;
        let no_password = user.options.is_some_and(|o| o.no_password);
        let user = kv::User {
            password: user.password,
            no_password,
            roles: user.roles,
        };
        users.insert(name, user);
        Ok(())
    })?;
    let mut roles = std::collections::BTreeMap::new();
    db.for_each(b"authRoles", &mut |_, value| {
        let role = authpb::Role::decode(value).map_err(|e| record(format!("a role: {e}")))?;
        let name =
            String::from_utf8(role.name).map_err(|_| record("a role name that is not UTF-8"))?;
        let perms = role
            .key_permission
            .into_iter()
            .map(|p| kv::Permission {
                kind: kv::PermKind::from_number(p.perm_type),
                key: p.key,
                range_end: p.range_end,
            })
            .collect();
        roles.insert(name, kv::Role { perms });
        Ok(())
    })?;
    Ok(kv::Auth::restore(enabled, revision, users, roles))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn revision_keys_parse_as_etcd_writes_them() {
        let mut key = 7i64.to_be_bytes().to_vec();
        key.push(b'_');
        key.extend(2i64.to_be_bytes());
        assert_eq!(revision(&key).unwrap(), (7, 2, false));
        key.push(b't');
        assert_eq!(revision(&key).unwrap(), (7, 2, true));
        key.push(b'x');
        assert!(revision(&key).is_err());
        assert!(revision(b"0000000_00000000").is_err());
    }

    /// A database etcd 3.4.23 wrote (`etcdctl snapshot save`, so with its SHA-256 at the
    /// end): `put a 1`, `put a 2`, `put b x`, `del a`, a 600 s lease, `put c y` under
    /// it, `compact 2`.
    const FIXTURE: &[u8] = include_bytes!("../tests/data/etcd-3.4.23.db");

    /// etcd 3.4.23 with auth enabled (`root`; `alice` with role `reader`: read on
    /// [a, c), read-write on the prefix w/; `bob` without a password), saved by
    /// `etcdctl snapshot save`.
    #[test]
    fn users_roles_and_auth_come_over_from_etcd() {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/etcd-3.4.23-auth.db"
        ))
        .unwrap();
        let store = read(&file, 2).unwrap();
        let auth = store.auth();
        assert!(auth.enabled());
        assert_eq!(auth.user_names(), ["alice", "bob", "root"]);
        assert_eq!(auth.user("root").unwrap().roles, ["root"]);
        assert!(auth.user("bob").unwrap().no_password);
        let alice = auth.user("alice").unwrap();
        assert_eq!(alice.roles, ["reader"]);
        let hash = String::from_utf8(alice.password.clone()).unwrap();
        assert!(bcrypt::verify("apw", &hash).unwrap(), "etcd's hash checks");
        let perms = &auth.role("reader").unwrap().perms;
        let shown: Vec<_> = perms
            .iter()
            .map(|p| (p.kind, &p.key[..], &p.range_end[..]))
            .collect();
        assert_eq!(
            shown,
            [
                (kv::PermKind::Read, &b"a"[..], &b"c"[..]),
                (kv::PermKind::ReadWrite, b"w/", b"w0"),
            ]
        );
        let alice = kv::Caller {
            user: "alice".into(),
            revision: auth.revision(),
        };
        assert_eq!(auth.check(&alice, b"b", b"", kv::PermKind::Read), Ok(()));
        assert!(auth.check(&alice, b"b", b"", kv::PermKind::Write).is_err());
    }

    #[test]
    fn a_database_etcd_wrote_reads_with_its_history_leases_and_compaction() {
        let database = &FIXTURE[..FIXTURE.len() - 32];
        let store = read(database, 1).unwrap();
        assert_eq!(store.revision(), 6);
        assert_eq!(store.compacted(), 2);
        let all = |revision| {
            let range = kv::Range {
                key: b"\0".to_vec(),
                range_end: vec![0],
                revision,
                ..kv::Range::default()
            };
            let answer = store.range(&range).unwrap();
            answer
                .kvs
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone(), kv.mod_revision))
                .collect::<Vec<_>>()
        };
        let kv = |k: &str, v: &str, r| (k.as_bytes().to_vec(), v.as_bytes().to_vec(), r);
        assert_eq!(all(0), [kv("b", "x", 4), kv("c", "y", 6)]);
        assert_eq!(all(3), [kv("a", "2", 3)]);
        assert_eq!(all(4), [kv("a", "2", 3), kv("b", "x", 4)]);
        assert_eq!(all(5), [kv("b", "x", 4)]);
        let lease = store.lease_ids();
        assert_eq!(lease.len(), 1);
        let info = store.lease_info(lease[0], true).unwrap();
        assert_eq!(
            (info.granted_ttl, info.keys.clone()),
            (600, vec![b"c".to_vec()])
        );
    }

    proptest! {
        /// A real database with bytes overwritten anywhere: read or refused, never a panic.
        #[test]
        fn a_damaged_database_is_refused_or_read(flips in proptest::collection::vec((0..20_480usize, any::<u8>()), 1..40)) {
            let mut database = FIXTURE[..FIXTURE.len() - 32].to_vec();
            let length = database.len();
            for (at, byte) in flips {
                database[at % length] = byte;
            }
            let _ = read(&database, 1);
        }

        /// Whatever the bytes, a read is a store or an error, never a panic; the same
        /// for a bbolt-looking prefix followed by garbage.
        #[test]
        fn any_bytes_are_refused_or_read(bytes in proptest::collection::vec(any::<u8>(), 0..20_000)) {
            let _ = read(&bytes, 1);
            let mut bolt = bytes;
            if bolt.len() >= 20 {
                bolt[16..20].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
                let _ = read(&bolt, 1);
            }
        }
    }
}
