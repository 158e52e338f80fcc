//! The simulator's state machine: a tiny key-value store with compare-and-set, applied by
//! every replica in slot order. (The real etcd-semantics store, `crates/kv`, replaces it
//! when it exists; the checkers only need puts, reads, compare-and-sets and deletes.)

use paxos::multi::Command;

/// A key: one of a small set, so operations collide.
pub type Key = u8;
/// A value: unique per write, so a read names the write it saw.
pub type Value = u64;

/// A write a client asked for, tagged so the replica that received it can answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The client.
    pub client: u64,
    /// The client's operation number.
    pub seq: u64,
    /// The write.
    pub op: Write,
}

/// A write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Key,
        /// The value.
        value: Value,
    },
    /// Set `key` to `value` if it holds `expect` (`None`: if absent).
    Cas {
        /// The key.
        key: Key,
        /// The value required.
        expect: Option<Value>,
        /// The value written.
        value: Value,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Key,
    },
}

impl Command for Request {
    fn size(&self) -> usize {
        40
    }
}

/// How requests are stored in the write-ahead log: client, seq (u64 each), then the
/// write: a tag (1 put, 2 compare-and-set, 3 delete), the key, and its values.
impl storage::Codec for Request {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.client.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        match self.op {
            Write::Put { key, value } => {
                out.extend_from_slice(&[1, key]);
                out.extend_from_slice(&value.to_le_bytes());
            }
            Write::Cas { key, expect, value } => {
                out.extend_from_slice(&[2, key, u8::from(expect.is_some())]);
                out.extend_from_slice(&expect.unwrap_or(0).to_le_bytes());
                out.extend_from_slice(&value.to_le_bytes());
            }
            Write::Delete { key } => out.extend_from_slice(&[3, key]),
        }
    }

    fn decode(bytes: &[u8]) -> Option<Request> {
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        let (client, seq) = (word(0)?, word(8)?);
        let (tag, key) = (*bytes.get(16)?, *bytes.get(17)?);
        let (op, len) = match tag {
            1 => (
                Write::Put {
                    key,
                    value: word(18)?,
                },
                26,
            ),
            2 => {
                let expect = match bytes.get(18)? {
                    0 => None,
                    1 => Some(word(19)?),
                    _ => return None,
                };
                (
                    Write::Cas {
                        key,
                        expect,
                        value: word(27)?,
                    },
                    35,
                )
            }
            3 => (Write::Delete { key }, 18),
            _ => return None,
        };
        (bytes.len() == len).then_some(Request { client, seq, op })
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A put or delete took effect.
    Done,
    /// A compare-and-set took effect (`true`) or found another value (`false`).
    Cas(bool),
    /// The state machine refused the write (never for the simulator's requests; the
    /// simulator reports it as a failure).
    Refused(&'static str),
}

/// The replicated state machine: `crates/kv` (etcd's semantics), driven through the small
/// API the simulator's clients need. A key `k` is stored as the bytes `k`, `key`; a value
/// as 8 little-endian bytes; a compare-and-set is a transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    inner: kv::Store,
}

fn key_bytes(key: Key) -> Vec<u8> {
    vec![b'k', key]
}

impl Store {
    /// Applies `write`.
    pub fn apply(&mut self, write: Write) -> Outcome {
        let result = match write {
            Write::Put { key, value } => {
                let put = kv::Put {
                    key: key_bytes(key),
                    value: value.to_le_bytes().to_vec(),
                    ..kv::Put::default()
                };
                self.inner.put(&put).map(|_| Outcome::Done)
            }
            Write::Cas { key, expect, value } => {
                let target = match expect {
                    Some(v) => kv::Target::Value(v.to_le_bytes().to_vec()),
                    None => kv::Target::Version(0),
                };
                let compare = kv::Compare {
                    relation: kv::Relation::Equal,
                    target,
                    key: key_bytes(key),
                    range_end: Vec::new(),
                };
                let put = kv::Put {
                    key: key_bytes(key),
                    value: value.to_le_bytes().to_vec(),
                    ..kv::Put::default()
                };
                let txn = kv::Txn {
                    compare: vec![compare],
                    success: vec![kv::RequestOp::Put(put)],
                    failure: Vec::new(),
                };
                self.inner.txn(&txn).map(|r| Outcome::Cas(r.succeeded))
            }
            Write::Delete { key } => {
                let delete = kv::DeleteRange {
                    key: key_bytes(key),
                    ..kv::DeleteRange::default()
                };
                self.inner.delete_range(&delete).map(|_| Outcome::Done)
            }
        };
        result.unwrap_or_else(|e| Outcome::Refused(e.message()))
    }

    /// Reads `key`.
    pub fn get(&self, key: Key) -> Option<Value> {
        let range = kv::Range {
            key: key_bytes(key),
            ..kv::Range::default()
        };
        let kvs = self.inner.range(&range).ok()?.kvs;
        let bytes: [u8; 8] = kvs.first()?.value.as_slice().try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    }

    /// The whole store as bytes (the state machine's snapshot format).
    pub fn snapshot(&self) -> Vec<u8> {
        self.inner.snapshot()
    }

    /// The store a snapshot describes (no bytes: an empty store).
    pub fn restore(bytes: &[u8]) -> Result<Store, kv::SnapshotError> {
        if bytes.is_empty() {
            return Ok(Store::default());
        }
        kv::Store::restore(bytes).map(|inner| Store { inner })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_apply_and_snapshots_restore() {
        let mut store = Store::default();
        assert_eq!(store.apply(Write::Put { key: 1, value: 10 }), Outcome::Done);
        let cas = |expect, value| Write::Cas {
            key: 1,
            expect,
            value,
        };
        assert_eq!(store.apply(cas(Some(9), 11)), Outcome::Cas(false));
        assert_eq!(store.apply(cas(Some(10), 11)), Outcome::Cas(true));
        assert_eq!(store.apply(Write::Put { key: 2, value: 20 }), Outcome::Done);
        assert_eq!(store.apply(Write::Delete { key: 2 }), Outcome::Done);
        assert_eq!(
            store.apply(Write::Cas {
                key: 2,
                expect: None,
                value: 21
            }),
            Outcome::Cas(true)
        );
        assert_eq!(Store::restore(&store.snapshot()), Ok(store.clone()));
        assert_eq!(store.get(1), Some(11));
    }

    #[test]
    fn requests_round_trip_through_the_log_codec() {
        use storage::Codec;
        for op in [
            Write::Put { key: 1, value: 7 },
            Write::Cas {
                key: 2,
                expect: None,
                value: 8,
            },
            Write::Cas {
                key: 2,
                expect: Some(3),
                value: 9,
            },
            Write::Delete { key: 4 },
        ] {
            let request = Request {
                client: 5,
                seq: 6,
                op,
            };
            let mut bytes = Vec::new();
            request.encode(&mut bytes);
            assert_eq!(Request::decode(&bytes), Some(request));
            assert_eq!(Request::decode(&bytes[..bytes.len() - 1]), None);
        }
    }
}
