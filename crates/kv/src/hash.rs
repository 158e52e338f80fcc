//! `HashKV` as etcd 3.4 defines it, so that the same history hashes the same on every
//! Synod member and on etcd: CRC32C over the string `key`, then, in revision order, each
//! stored revision's backend key (8-byte big-endian main revision, `_`, 8-byte big-endian
//! sub-revision, and `t` for a deletion) and its value (the protobuf-encoded
//! `mvccpb.KeyValue`; a deletion stores just the key). Revisions above the one hashed are
//! left out; at or below the compaction revision only those a compaction at the hashed
//! revision would keep are included.

use crate::error::KvError;
use crate::store::{KeyValue, Store};

/// etcd's `HashKVResponse` (without the header's ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKv {
    /// The header revision (the current one).
    pub revision: i64,
    /// The hash.
    pub hash: u32,
    /// The compaction revision.
    pub compact_revision: i64,
}

impl Store {
    /// The hash of the history up to `revision` (0: the current one).
    pub fn hash_kv(&self, revision: i64) -> Result<HashKv, KvError> {
        if revision > 0 && revision <= self.compacted() {
            return Err(KvError::Compacted);
        }
        if revision > self.revision() {
            return Err(KvError::FutureRevision);
        }
        let at = if revision == 0 {
            self.revision()
        } else {
            revision
        };
        let compacted = self.compacted();
        // What a compaction at `at` would keep: each key's latest revision at or below
        // it, unless that is a deletion.
        let mut kept = Vec::new();
        for history in self.keys.values() {
            if let Some(latest) = history.iter().find(|c| c.revision <= at) {
                if latest.kv.is_some() {
                    kept.push((latest.revision, latest.sub));
                }
            }
        }
        let mut stored = Vec::new();
        for (key, history) in &self.keys {
            for change in history.iter().filter(|c| c.revision <= at) {
                let old = change.revision <= compacted;
                if old && !kept.is_empty() && !kept.contains(&(change.revision, change.sub)) {
                    continue;
                }
                stored.push((change.revision, change.sub, key, change));
            }
        }
        stored.sort_by_key(|&(revision, sub, _, _)| (revision, sub));
        let mut crc = crc32c::crc32c(b"key");
        let mut bytes = Vec::new();
        for (revision, sub, key, change) in stored {
            bytes.clear();
            bytes.extend_from_slice(&(revision as u64).to_be_bytes());
            bytes.push(b'_');
            bytes.extend_from_slice(&(sub as u64).to_be_bytes());
            match change.key_value(key) {
                Some(kv) => encode_kv(&kv, &mut bytes),
                None => {
                    bytes.push(b't');
                    let tombstone = KeyValue {
                        key: key.to_vec(),
                        ..KeyValue::default()
                    };
                    encode_kv(&tombstone, &mut bytes);
                }
            }
            crc = crc32c::crc32c_append(crc, &bytes);
        }
        Ok(HashKv {
            revision: self.revision(),
            hash: crc,
            // -1 for a store never compacted, as etcd reports it.
            compact_revision: compacted,
        })
    }
}

/// `mvccpb.KeyValue` in protobuf's wire format (proto3: zero fields omitted).
fn encode_kv(kv: &KeyValue, out: &mut Vec<u8>) {
    let bytes = |out: &mut Vec<u8>, field: u8, data: &[u8]| {
        if !data.is_empty() {
            out.push(field << 3 | 2);
            varint(out, data.len() as u64);
            out.extend_from_slice(data);
        }
    };
    let number = |out: &mut Vec<u8>, field: u8, n: i64| {
        if n != 0 {
            out.push(field << 3);
            varint(out, n as u64);
        }
    };
    bytes(out, 1, &kv.key);
    number(out, 2, kv.create_revision);
    number(out, 3, kv.mod_revision);
    number(out, 4, kv.version);
    bytes(out, 5, &kv.value);
    number(out, 6, kv.lease);
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push((n & 0x7f) as u8);
}
