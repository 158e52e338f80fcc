//! Watches as state: the events of a key or range from a revision on, read from the
//! histories the store keeps until compaction. The server holds each watcher's position
//! and sends what this returns; the store itself stays free of streams and clocks.

use crate::store::{KeyValue, Store};

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A put.
    Put,
    /// A deletion.
    Delete,
}

/// etcd's `mvccpb.Event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key's new state; for a deletion only the key and the deleting revision.
    pub kv: KeyValue,
    /// The key's state before, if the watch asked for it (and it existed).
    pub prev_kv: Option<KeyValue>,
}

/// A watch: which keys, from which revision, which events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watch {
    /// The key, or the start of the range.
    pub key: Vec<u8>,
    /// As in [`crate::Range::range_end`].
    pub range_end: Vec<u8>,
    /// The first revision to report (0 or less: changes after the current revision).
    pub start_revision: i64,
    /// Include the previous key-values.
    pub prev_kv: bool,
    /// Leave puts out.
    pub no_put: bool,
    /// Leave deletions out.
    pub no_delete: bool,
}

/// Why a watch cannot start: its revision was compacted (etcd cancels it and reports
/// the compaction revision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchCompacted {
    /// The store's compaction revision.
    pub compact_revision: i64,
}

impl Store {
    /// The events of `w` from its start revision through the current one, in revision
    /// order (and in write order within a transaction's revision).
    pub fn watch_events(&self, w: &Watch) -> Result<Vec<Event>, WatchCompacted> {
        if w.start_revision > 0 && w.start_revision < self.compacted() {
            return Err(WatchCompacted {
                compact_revision: self.compacted(),
            });
        }
        let from = if w.start_revision > 0 {
            w.start_revision
        } else {
            self.revision() + 1
        };
        let mut events = Vec::new();
        for (key, history) in self.keys_in(&w.key, &w.range_end) {
            for change in history.iter().take_while(|c| c.revision >= from) {
                let (kind, kv) = match change.key_value(key) {
                    Some(kv) => (EventKind::Put, kv),
                    None => {
                        let tombstone = KeyValue {
                            key: key.to_vec(),
                            mod_revision: change.revision,
                            ..KeyValue::default()
                        };
                        (EventKind::Delete, tombstone)
                    }
                };
                let skipped = match kind {
                    EventKind::Put => w.no_put,
                    EventKind::Delete => w.no_delete,
                };
                if skipped {
                    continue;
                }
                let prev_kv = if w.prev_kv {
                    history
                        .value_at(change.revision - 1)
                        .and_then(|put| put.key_value(key))
                } else {
                    None
                };
                events.push(((change.revision, change.sub), Event { kind, kv, prev_kv }));
            }
        }
        events.sort_by_key(|(order, _)| *order);
        Ok(events.into_iter().map(|(_, event)| event).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Compaction, DeleteRange, Put};

    fn put(s: &mut Store, key: &str, value: &str) {
        let p = Put {
            key: key.into(),
            value: value.into(),
            ..Put::default()
        };
        s.put(&p).unwrap();
    }

    #[test]
    fn the_journal_holds_the_events_a_watch_from_its_opening_would_see() {
        let mut s = Store::new();
        put(&mut s, "a", "0");
        s.open_journal();
        put(&mut s, "b", "1");
        put(&mut s, "a", "1");
        let txn_like = DeleteRange {
            key: "a".into(),
            range_end: "c".into(),
            ..DeleteRange::default()
        };
        s.delete_range(&txn_like).unwrap();
        let all = Watch {
            key: vec![0],
            range_end: vec![0],
            start_revision: 3,
            prev_kv: true,
            ..Watch::default()
        };
        let journal = s.take_events();
        assert_eq!(journal, s.watch_events(&all).unwrap());
        assert_eq!(journal.len(), 4);
        assert!(s.take_events().is_empty(), "taking drains the journal");
        s.close_journal();
        put(&mut s, "b", "3");
        assert!(
            s.take_events().is_empty(),
            "a closed journal records nothing"
        );
    }

    #[test]
    fn events_come_in_revision_order_with_previous_values_and_filters() {
        let mut s = Store::new();
        put(&mut s, "b", "1");
        put(&mut s, "a", "1");
        let d = DeleteRange {
            key: "b".into(),
            ..DeleteRange::default()
        };
        s.delete_range(&d).unwrap();
        let all = Watch {
            key: vec![0],
            range_end: vec![0],
            start_revision: 1,
            prev_kv: true,
            ..Watch::default()
        };
        let events = s.watch_events(&all).unwrap();
        let keys: Vec<_> = events.iter().map(|e| (e.kind, e.kv.key.clone())).collect();
        assert_eq!(
            keys,
            vec![
                (EventKind::Put, b"b".to_vec()),
                (EventKind::Put, b"a".to_vec()),
                (EventKind::Delete, b"b".to_vec())
            ]
        );
        assert_eq!(events[2].kv.mod_revision, 4);
        assert_eq!(
            events[2].prev_kv.as_ref().map(|kv| kv.value.clone()),
            Some(b"1".to_vec())
        );
        let no_delete = Watch {
            no_delete: true,
            ..all.clone()
        };
        assert_eq!(s.watch_events(&no_delete).unwrap().len(), 2);
        let future = Watch {
            start_revision: 0,
            ..all.clone()
        };
        assert!(s.watch_events(&future).unwrap().is_empty());
        s.compact(Compaction { revision: 3 }).unwrap();
        let old = Watch {
            start_revision: 2,
            ..all
        };
        assert_eq!(
            s.watch_events(&old),
            Err(WatchCompacted {
                compact_revision: 3
            })
        );
    }
}
