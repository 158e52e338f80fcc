//! One key's changes, as a persistent list: newest first, each change shared by every
//! clone of the store that saw it.
//!
//! The server clones the store for every batch it publishes to readers, so the first write
//! to a key after a publish finds its history shared. Appending to a shared `Vec` copies
//! it (every version of the key); prepending to a shared list copies nothing. Reads at the
//! current revision (the common case) look at the head only.

use std::sync::Arc;

use crate::store::Change;

/// A key's history: never empty (a key without changes is not in the map). One pointer,
/// so the map's entries stay small; its length is counted when asked (snapshots and
/// compactions walk every change anyway).
#[derive(Clone, Debug)]
pub(crate) struct History {
    newest: Arc<Node>,
}

#[derive(Debug)]
struct Node {
    change: Change,
    older: Option<Arc<Node>>,
}

impl Drop for Node {
    /// Unlinks the list iteratively: dropping a key with a million versions must not
    /// recurse a million frames deep.
    fn drop(&mut self) {
        let mut next = self.older.take();
        while let Some(node) = next {
            match Arc::try_unwrap(node) {
                Ok(mut node) => next = node.older.take(),
                Err(_) => break,
            }
        }
    }
}

impl History {
    /// A history of one change.
    pub(crate) fn new(change: Change) -> History {
        History {
            newest: Arc::new(Node {
                change,
                older: None,
            }),
        }
    }

    /// A history of `changes`, oldest first; `None` if there are none.
    pub(crate) fn from_oldest(changes: impl IntoIterator<Item = Change>) -> Option<History> {
        let mut changes = changes.into_iter();
        let mut history = History::new(changes.next()?);
        for change in changes {
            history.push(change);
        }
        Some(history)
    }

    /// Adds the newest change.
    pub(crate) fn push(&mut self, change: Change) {
        let older = Some(Arc::clone(&self.newest));
        self.newest = Arc::new(Node { change, older });
    }

    /// Whether `other` is this very history (a clone of it), not merely an equal one.
    pub(crate) fn is(&self, other: &History) -> bool {
        Arc::ptr_eq(&self.newest, &other.newest)
    }

    /// How many changes.
    pub(crate) fn len(&self) -> usize {
        self.iter().count()
    }

    /// The changes, newest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Change> + Clone {
        let mut next = Some(&*self.newest);
        std::iter::from_fn(move || {
            let node = next?;
            next = node.older.as_deref();
            Some(&node.change)
        })
    }

    /// The changes, oldest first.
    pub(crate) fn oldest_first(&self) -> Vec<&Change> {
        let mut changes: Vec<&Change> = self.iter().collect();
        changes.reverse();
        changes
    }

    /// The put that made the key's state at revision `at`: its latest change at or
    /// below it, unless that is a deletion.
    pub(crate) fn value_at(&self, at: i64) -> Option<&Change> {
        self.iter()
            .find(|change| change.revision <= at)
            .filter(|change| change.kv.is_some())
    }

    /// The history a compaction at `revision` leaves: the latest change at or below it
    /// (what a read at that revision sees) unless it is a deletion, and every later one.
    /// `None` if nothing is left; the history itself (shared) if nothing is dropped.
    pub(crate) fn compacted(&self, revision: i64) -> Option<History> {
        let Some(cut) = self.iter().position(|c| c.revision <= revision) else {
            return Some(self.clone());
        };
        let Some(at_cut) = self.iter().nth(cut) else {
            return Some(self.clone());
        };
        let keep = if at_cut.kv.is_some() { cut + 1 } else { cut };
        if keep == self.len() {
            return Some(self.clone());
        }
        let mut kept: Vec<Change> = self.iter().take(keep).cloned().collect();
        kept.reverse();
        History::from_oldest(kept)
    }
}

impl PartialEq for History {
    fn eq(&self, other: &History) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for History {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Version;

    fn put(revision: i64, value: &[u8]) -> Change {
        Change {
            revision,
            sub: 0,
            kv: Some(Version {
                create_revision: revision,
                version: 1,
                lease: 0,
                value: value.into(),
            }),
        }
    }

    fn value(change: Option<&Change>) -> Option<Vec<u8>> {
        Some(change?.key_value(b"k")?.value)
    }

    fn delete(revision: i64) -> Change {
        Change {
            revision,
            sub: 0,
            kv: None,
        }
    }

    fn revisions(h: &History) -> Vec<i64> {
        h.oldest_first().iter().map(|c| c.revision).collect()
    }

    #[test]
    fn a_clone_keeps_its_versions_while_the_original_grows() {
        let mut h = History::new(put(2, b"a"));
        let snapshot = h.clone();
        h.push(put(3, b"b"));
        assert_eq!(revisions(&h), [2, 3]);
        assert_eq!(revisions(&snapshot), [2]);
        assert_eq!(value(h.value_at(2)).unwrap(), b"a");
        assert_eq!(value(h.value_at(9)).unwrap(), b"b");
        assert!(h.value_at(1).is_none());
    }

    #[test]
    fn compaction_keeps_what_reads_at_and_above_the_revision_see() {
        let h =
            History::from_oldest([put(2, b"a"), put(4, b"b"), delete(6), put(8, b"c")]).unwrap();
        assert_eq!(revisions(&h.compacted(1).unwrap()), [2, 4, 6, 8]);
        assert_eq!(revisions(&h.compacted(5).unwrap()), [4, 6, 8]);
        assert_eq!(revisions(&h.compacted(6).unwrap()), [8]);
        assert_eq!(revisions(&h.compacted(9).unwrap()), [8]);
        let gone = History::from_oldest([put(2, b"a"), delete(3)]).unwrap();
        assert!(gone.compacted(3).is_none());
        assert_eq!(h.compacted(5).unwrap().len(), 3);
        // Nothing dropped: the history itself, which the store keeps without a copy.
        assert!(h.compacted(1).unwrap().is(&h));
        assert!(!h.compacted(5).unwrap().is(&h));
    }

    /// One version of one key: 64 bytes, 80 with the `Arc`'s counts (mimalloc's 80-byte
    /// class). With the key and the mod revision in every version it was 128.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_version_costs_64_bytes_besides_its_value() {
        assert_eq!(size_of::<Node>(), 64);
    }

    #[test]
    fn a_very_long_history_drops_without_recursion() {
        let mut h = History::new(put(1, b""));
        for revision in 2..1_000_000 {
            h.push(delete(revision));
        }
        drop(h);
    }
}
