//! A store built from another's history, change by change, with the revisions it had:
//! how an etcd database (`etcdctl snapshot save`) becomes a Synod store.

use std::collections::BTreeMap;

use crate::history::History;
use crate::store::{Change, Key, Store, Version};
use crate::{KeyValue, LeaseGrant};

/// One change of the history to import: a put (the key's state after it) or a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedChange {
    /// The change's revision and its place within the revision.
    pub revision: i64,
    pub sub: i64,
    pub key: Vec<u8>,
    /// The key's state after a put; `None` for a deletion.
    pub put: Option<KeyValue>,
}

/// What an import refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportError {
    /// A change's revision is not above zero, or a put says another mod revision.
    Revision { key: Vec<u8>, revision: i64 },
    /// Two changes at one revision and sub-revision.
    Duplicate {
        key: Vec<u8>,
        revision: i64,
        sub: i64,
    },
    /// A lease the store cannot hold (TTL out of range).
    Lease { id: i64, why: String },
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        match self {
            ImportError::Revision { key: k, revision } => {
                write!(
                    f,
                    "key {:?}: a change at revision {revision} that says otherwise",
                    key(k)
                )
            }
            ImportError::Duplicate {
                key: k,
                revision,
                sub,
            } => {
                write!(
                    f,
                    "key {:?}: two changes at revision {revision}.{sub}",
                    key(k)
                )
            }
            ImportError::Lease { id, why } => write!(f, "lease {id}: {why}"),
        }
    }
}

impl std::error::Error for ImportError {}

impl Store {
    /// A store holding `changes` (any order) as its history, compacted at `compacted`
    /// (-1: never), at the revision of its newest change (or the compaction's, if
    /// later), with `leases` (id, TTL) granted and the live keys that name one attached.
    pub fn import(
        changes: Vec<ImportedChange>,
        compacted: i64,
        leases: &[(i64, i64)],
        min_lease_ttl: i64,
    ) -> Result<Store, ImportError> {
        let mut store = Store::with_min_lease_ttl(min_lease_ttl);
        let mut by_key: BTreeMap<Vec<u8>, Vec<Change>> = BTreeMap::new();
        let mut newest = 1;
        for c in changes {
            let says_other = c
                .put
                .as_ref()
                .is_some_and(|kv| kv.mod_revision != c.revision);
            if c.revision < 1 || says_other {
                return Err(ImportError::Revision {
                    key: c.key,
                    revision: c.revision,
                });
            }
            newest = newest.max(c.revision);
            let kv = c.put.map(|kv| Version {
                create_revision: kv.create_revision,
                version: kv.version,
                lease: kv.lease,
                value: kv.value.into_boxed_slice(),
            });
            let change = Change {
                revision: c.revision,
                sub: c.sub,
                kv,
            };
            by_key.entry(c.key).or_default().push(change);
        }
        for (key, mut history) in by_key {
            history.sort_by_key(|c| (c.revision, c.sub));
            if let Some(pair) = history
                .windows(2)
                .find(|w| (w[0].revision, w[0].sub) == (w[1].revision, w[1].sub))
            {
                let (revision, sub) = (pair[0].revision, pair[0].sub);
                return Err(ImportError::Duplicate { key, revision, sub });
            }
            if let Some(history) = History::from_oldest(history) {
                store.keys.insert(Key::from(key), history);
            }
        }
        store.revision = newest.max(compacted);
        store.compacted = compacted;
        for &(id, ttl) in leases {
            store
                .lease_grant(LeaseGrant { id, ttl })
                .map_err(|e| ImportError::Lease {
                    id,
                    why: e.to_string(),
                })?;
        }
        let attached: Vec<(Vec<u8>, i64)> = store
            .keys
            .iter()
            .filter_map(|(key, history)| {
                let lease = history.iter().next()?.kv.as_ref()?.lease;
                (lease != 0).then(|| (key.to_vec(), lease))
            })
            .collect();
        for (key, lease) in attached {
            if store.lease_exists(lease) {
                store.attach(&key, 0, lease);
            }
        }
        store.measure();
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, revision: i64, create: i64, version: i64) -> ImportedChange {
        ImportedChange {
            revision,
            sub: 0,
            key: key.into(),
            put: Some(KeyValue {
                key: key.into(),
                create_revision: create,
                mod_revision: revision,
                version,
                value: revision.to_string().into_bytes(),
                lease: 0,
            }),
        }
    }

    #[test]
    fn an_imported_history_reads_as_the_original_at_every_revision() {
        let deleted = ImportedChange {
            put: None,
            ..put("a", 4, 0, 0)
        };
        let changes = vec![put("b", 3, 3, 1), deleted, put("a", 2, 2, 1)];
        let store = Store::import(changes, 2, &[], 1).unwrap();
        assert_eq!((store.revision(), store.compacted()), (4, 2));
        let at = |revision| {
            let range = crate::Range {
                key: b"a".to_vec(),
                range_end: b"c".to_vec(),
                revision,
                ..crate::Range::default()
            };
            let kvs = store.range(&range).map(|r| r.kvs);
            kvs.map(|kvs| kvs.into_iter().map(|kv| kv.key).collect::<Vec<_>>())
        };
        assert_eq!(at(2), Ok(vec![b"a".to_vec()]));
        assert_eq!(at(3), Ok(vec![b"a".to_vec(), b"b".to_vec()]));
        assert_eq!(at(4), Ok(vec![b"b".to_vec()]));
        assert!(at(1).is_err(), "below the compaction");
    }

    #[test]
    fn contradictions_are_refused() {
        let mut wrong = put("a", 3, 3, 1);
        wrong.revision = 4;
        assert!(matches!(
            Store::import(vec![wrong], -1, &[], 1),
            Err(ImportError::Revision { .. })
        ));
        let twice = vec![put("a", 3, 3, 1), put("a", 3, 3, 1)];
        assert!(matches!(
            Store::import(twice, -1, &[], 1),
            Err(ImportError::Duplicate { .. })
        ));
        let too_long = Store::import(Vec::new(), -1, &[(5, i64::MAX)], 1);
        assert!(matches!(too_long, Err(ImportError::Lease { id: 5, .. })));
    }
}
