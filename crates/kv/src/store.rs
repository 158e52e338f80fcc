//! The multi-version store: one revision counter for the whole store, a history per key.

use std::ops::Bound;
use std::sync::Arc;

use crate::error::KvError;
use crate::history::History;
use crate::request::{check_put, sort};
pub use crate::request::{
    check_put_fields, Compaction, DeleteRange, DeleteRangeResponse, KeyValue, Put, PutResponse,
    Range, RangeResponse, SortOrder, SortTarget,
};
use crate::watch::{Event, EventKind};

/// A key as the map holds it: shared, so a copied map node copies pointers.
pub(crate) type Key = Arc<[u8]>;

/// A change to one key: its new state, or `None` for a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// The change's revision (after a put, the key's mod revision).
    pub(crate) revision: i64,
    /// The change's place among the changes of its revision (a transaction's writes).
    pub(crate) sub: i64,
    pub(crate) kv: Option<Version>,
}

/// A key's state after a put, as its history keeps it: without the key (the map holds
/// it once) and the mod revision (the change's). Every version of every key is one of
/// these, so its size is most of the store's per-key overhead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) create_revision: i64,
    pub(crate) version: i64,
    pub(crate) lease: i64,
    pub(crate) value: Box<[u8]>,
}

impl Change {
    /// The key's state after this change, as a reader gets it (`None` for a deletion).
    pub(crate) fn key_value(&self, key: &[u8]) -> Option<KeyValue> {
        self.kv.as_ref().map(|v| KeyValue {
            key: key.to_vec(),
            create_revision: v.create_revision,
            mod_revision: self.revision,
            version: v.version,
            value: v.value.to_vec(),
            lease: v.lease,
        })
    }
}

/// The store.
#[derive(Clone, Debug)]
pub struct Store {
    /// The current revision; 1 for an empty store, as in etcd.
    pub(crate) revision: i64,
    /// Reads below this revision are refused.
    pub(crate) compacted: i64,
    /// Per key, its history. A persistent map: cloning the store (to take a snapshot
    /// while applies go on) shares every node until one side changes it.
    pub(crate) keys: imbl::OrdMap<Key, History>,
    /// While a request runs: the revision its writes share, once it has written.
    pub(crate) writing: Option<i64>,
    /// The next sub-revision within the running write.
    sub: i64,
    pub(crate) leases: crate::lease::Leases,
    /// Events not yet taken, if the owner asked for them. Not part of the state: a
    /// snapshot leaves it out and equality ignores it.
    journal: Option<Vec<Event>>,
    /// The estimated bytes of every change kept (see [`Store::size_bytes`]).
    pub(crate) bytes: u64,
    /// Active alarms: (member, etcd `AlarmType`). Replicated state, because they decide
    /// which writes are refused (NOSPACE).
    pub(crate) alarms: std::collections::BTreeSet<(u64, i32)>,
    /// What each member published about itself (etcd's `publish`): replicated, so every
    /// member lists every member alike.
    pub(crate) members: std::collections::BTreeMap<u64, MemberAttributes>,
    /// The peer URLs recorded for members by `member add` and `member update`: replicated,
    /// so every member dials a new one alike.
    pub(crate) peer_urls: std::collections::BTreeMap<u64, Vec<String>>,
    /// Users, roles and whether auth is on: replicated, because they decide which
    /// requests are refused. Shared between clones (views are cloned on every apply
    /// batch; auth changes rarely), copied on the first change.
    pub(crate) auth: Arc<crate::auth::Auth>,
}

/// What a member publishes about itself when it starts: its name and where clients reach
/// it (etcd's member `Attributes`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberAttributes {
    /// `--name`.
    pub name: String,
    /// `--advertise-client-urls`.
    pub client_urls: Vec<String>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            revision: 1,
            compacted: -1,
            keys: imbl::OrdMap::new(),
            writing: None,
            sub: 0,
            leases: crate::lease::Leases::default(),
            journal: None,
            bytes: 0,
            alarms: std::collections::BTreeSet::new(),
            members: std::collections::BTreeMap::new(),
            peer_urls: std::collections::BTreeMap::new(),
            auth: Arc::default(),
        }
    }
}

impl PartialEq for Store {
    fn eq(&self, other: &Store) -> bool {
        // The journal is a view for the owner, not state.
        self.revision == other.revision
            && self.compacted == other.compacted
            && self.keys == other.keys
            && self.writing == other.writing
            && self.sub == other.sub
            && self.leases == other.leases
            && self.alarms == other.alarms
            && self.members == other.members
            && self.auth == other.auth
    }
}

impl Eq for Store {}

impl Store {
    /// An empty store at revision 1.
    pub fn new() -> Store {
        Store::default()
    }

    /// An empty store whose leases are granted at least `seconds` (etcd derives this from
    /// the election timeout: 1.5 timeouts, rounded up; 2 s by default).
    pub fn with_min_lease_ttl(seconds: i64) -> Store {
        let mut store = Store::default();
        store.leases.min_ttl = seconds;
        store
    }

    /// The auth state.
    pub fn auth(&self) -> &crate::auth::Auth {
        &self.auth
    }

    /// The auth state, to change it (as a chosen command says).
    pub fn auth_mut(&mut self) -> &mut crate::auth::Auth {
        Arc::make_mut(&mut self.auth)
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The compaction revision (-1: never compacted, as etcd reports it; compacting at
    /// revision 0 is allowed once, as in etcd).
    pub fn compacted(&self) -> i64 {
        self.compacted
    }

    /// Reads a range.
    pub fn range(&self, r: &Range) -> Result<RangeResponse, KvError> {
        if r.key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        let at = if r.revision <= 0 {
            self.revision
        } else {
            r.revision
        };
        if at > self.revision {
            return Err(KvError::FutureRevision);
        }
        if at < self.compacted {
            return Err(KvError::Compacted);
        }
        let live = self
            .keys_in(&r.key, &r.range_end)
            .filter_map(|(key, history)| Some((key, history.value_at(at)?)));
        let count = live.clone().count() as i64;
        // As etcd 3.4: with sorting or filters, fetch everything, then cut; otherwise
        // fetch in key order one more than the limit (to tell whether there is more).
        let filtered = r.sort_order != SortOrder::None
            || r.min_mod_revision != 0
            || r.max_mod_revision != 0
            || r.min_create_revision != 0
            || r.max_create_revision != 0;
        let fetch = if filtered || r.limit <= 0 {
            usize::MAX
        } else {
            usize::try_from(r.limit + 1).unwrap_or(usize::MAX)
        };
        let mut kvs: Vec<KeyValue> = live
            .take(fetch)
            .filter_map(|(key, change)| change.key_value(key))
            .collect();
        kvs.retain(|kv| {
            (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
                && (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
                && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
                && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
        });
        sort(&mut kvs, r.sort_order, r.sort_target);
        // etcd's count-only read returns no key-values to cut, so never `more`.
        if r.count_only {
            kvs.clear();
        }
        let mut more = false;
        if r.limit > 0 && kvs.len() as i64 > r.limit {
            kvs.truncate(usize::try_from(r.limit).unwrap_or(usize::MAX));
            more = true;
        }
        if r.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(RangeResponse {
            revision: self.revision,
            kvs,
            more,
            count,
        })
    }

    /// Writes a key.
    pub fn put(&mut self, p: &Put) -> Result<PutResponse, KvError> {
        // Outside a transaction etcd looks the lease up before the key (inside one, the
        // key comes first: `put_in_txn`'s order).
        check_put(p)?;
        if p.lease != 0 && !self.lease_exists(p.lease) {
            return Err(KvError::LeaseNotFound);
        }
        let response = self.put_in_txn(p);
        self.end_write();
        response
    }

    /// The revision a write of the running request gets: the next one for its first
    /// write, the same for every later one (a transaction is one revision).
    fn write_revision(&mut self) -> i64 {
        if let Some(revision) = self.writing {
            return revision;
        }
        self.revision += 1;
        self.writing = Some(self.revision);
        self.sub = 0;
        self.revision
    }

    /// The running request is over: its next write starts a new revision.
    pub(crate) fn end_write(&mut self) {
        self.writing = None;
        self.sub = 0;
    }

    /// The next sub-revision of the running write.
    fn next_sub(&mut self) -> i64 {
        self.sub += 1;
        self.sub - 1
    }

    pub(crate) fn put_in_txn(&mut self, p: &Put) -> Result<PutResponse, KvError> {
        check_put(p)?;
        // The key's history, shared (one reference count): the previous state is read
        // from it in place, and a `KeyValue` (copies of key and value) is built only for
        // a caller that asked for `prev_kv` or a journal that records it.
        let history = self.keys.get(p.key.as_slice()).cloned();
        let before = history.as_ref().and_then(|h| h.value_at(self.revision));
        let previous = before.and_then(|change| change.kv.as_ref());
        if (p.ignore_value || p.ignore_lease) && previous.is_none() {
            return Err(KvError::KeyNotFound);
        }
        if p.lease != 0 && !self.lease_exists(p.lease) {
            return Err(KvError::LeaseNotFound);
        }
        let revision = self.write_revision();
        let kv = Version {
            create_revision: previous.as_ref().map_or(revision, |kv| kv.create_revision),
            version: previous.as_ref().map_or(1, |kv| kv.version + 1),
            value: match (previous, p.ignore_value) {
                (Some(old), true) => old.value.clone(),
                _ => p.value.as_slice().into(),
            },
            lease: match (previous, p.ignore_lease) {
                (Some(old), true) => old.lease,
                _ => p.lease,
            },
        };
        let old_lease = previous.map_or(0, |kv| kv.lease);
        self.attach(&p.key, old_lease, kv.lease);
        let change = Change {
            revision,
            sub: self.next_sub(),
            kv: Some(kv),
        };
        let previous_kv = |wanted: bool| before.filter(|_| wanted)?.key_value(&p.key);
        let journaled = previous_kv(self.journal.is_some());
        self.record(&p.key, change, journaled);
        Ok(PutResponse {
            revision,
            prev_kv: previous_kv(p.prev_kv),
        })
    }

    /// Deletes a key or a range. The revision moves only if something was deleted.
    pub fn delete_range(&mut self, d: &DeleteRange) -> Result<DeleteRangeResponse, KvError> {
        let response = self.delete_in_txn(d);
        self.end_write();
        response
    }

    pub(crate) fn delete_in_txn(
        &mut self,
        d: &DeleteRange,
    ) -> Result<DeleteRangeResponse, KvError> {
        if d.key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        let at = self.revision;
        let doomed: Vec<KeyValue> = self
            .keys_in(&d.key, &d.range_end)
            .filter_map(|(key, history)| history.value_at(at)?.key_value(key))
            .collect();
        if doomed.is_empty() {
            return Ok(DeleteRangeResponse {
                revision: self.revision,
                ..DeleteRangeResponse::default()
            });
        }
        let revision = self.write_revision();
        for kv in &doomed {
            self.attach(&kv.key, kv.lease, 0);
            let change = Change {
                revision,
                sub: self.next_sub(),
                kv: None,
            };
            let journaled = self.journal.is_some().then(|| kv.clone());
            self.record(&kv.key, change, journaled);
        }
        Ok(DeleteRangeResponse {
            revision,
            deleted: doomed.len() as i64,
            prev_kvs: if d.prev_kv { doomed } else { Vec::new() },
        })
    }

    /// Drops every change no read at or above `revision` can see.
    pub fn compact(&mut self, c: Compaction) -> Result<i64, KvError> {
        if c.revision <= self.compacted {
            return Err(KvError::Compacted);
        }
        if c.revision > self.revision {
            return Err(KvError::FutureRevision);
        }
        self.compacted = c.revision;
        let mut emptied = Vec::new();
        let mut trimmed = Vec::new();
        for (key, history) in self.keys.iter() {
            match history.compacted(c.revision) {
                None => emptied.push(key.clone()),
                // `compacted` hands back the history itself when it drops nothing.
                Some(kept) if !kept.is(history) => trimmed.push((key.clone(), kept)),
                Some(_) => {}
            }
        }
        for key in emptied {
            self.keys.remove(&key);
        }
        for (key, history) in trimmed {
            self.keys.insert(key, history);
        }
        self.measure();
        Ok(self.revision)
    }

    /// Appends `change` to `key`'s history and, if a journal is open, its event.
    fn record(&mut self, key: &[u8], change: Change, previous: Option<KeyValue>) {
        if let Some(journal) = &mut self.journal {
            let (kind, kv) = match change.key_value(key) {
                Some(kv) => (EventKind::Put, kv),
                None => (
                    EventKind::Delete,
                    KeyValue {
                        key: key.to_vec(),
                        mod_revision: change.revision,
                        ..KeyValue::default()
                    },
                ),
            };
            journal.push(Event {
                kind,
                kv,
                prev_kv: previous,
            });
        }
        self.bytes += change_bytes(key, &change);
        match self.keys.get_mut(key) {
            Some(history) => history.push(change),
            None => {
                self.keys.insert(Arc::from(key), History::new(change));
            }
        }
    }

    /// Raises `alarm` for `member`; false if it was already raised.
    pub fn alarm_activate(&mut self, member: u64, alarm: i32) -> bool {
        self.alarms.insert((member, alarm))
    }

    /// Clears `alarm` for `member` (every member's if 0); returns what was cleared.
    pub fn alarm_deactivate(&mut self, member: u64, alarm: i32) -> Vec<(u64, i32)> {
        let cleared: Vec<(u64, i32)> = self
            .alarms
            .iter()
            .copied()
            .filter(|&(m, a)| a == alarm && (member == 0 || m == member))
            .collect();
        for pair in &cleared {
            self.alarms.remove(pair);
        }
        cleared
    }

    /// The active alarms, as (member, alarm type).
    pub fn alarms(&self) -> Vec<(u64, i32)> {
        self.alarms.iter().copied().collect()
    }

    /// Records what `member` published about itself (replacing what it published before).
    /// Not a change of the key space: the revision stays.
    pub fn publish(&mut self, member: u64, attributes: MemberAttributes) {
        self.members.insert(member, attributes);
    }

    /// Records the peer URLs of `member` (replacing any recorded before). Not a change of
    /// the key space: the revision stays.
    pub fn record_peer_urls(&mut self, member: u64, urls: Vec<String>) {
        self.peer_urls.insert(member, urls);
    }

    /// The peer URLs recorded for `member`, if any.
    pub fn peer_urls(&self, member: u64) -> Option<&[String]> {
        self.peer_urls.get(&member).map(Vec::as_slice)
    }

    /// Every member's recorded peer URLs, by member id.
    pub fn recorded_peer_urls(&self) -> &std::collections::BTreeMap<u64, Vec<String>> {
        &self.peer_urls
    }

    /// What each member published, by member id.
    pub fn published(&self) -> &std::collections::BTreeMap<u64, MemberAttributes> {
        &self.members
    }

    /// An estimate of the bytes the kept history takes (keys, values and revisions of
    /// every change not yet compacted): what the backend quota is checked against.
    pub fn size_bytes(&self) -> u64 {
        self.bytes
    }

    /// Keys with a kept history, deleted ones included until compaction removes them
    /// (etcd's index count).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Recomputes [`Store::size_bytes`] from the histories.
    pub(crate) fn measure(&mut self) {
        self.bytes = self
            .keys
            .iter()
            .flat_map(|(key, history)| history.iter().map(move |c| change_bytes(key, c)))
            .sum();
    }

    /// Starts keeping a journal of every event from now on, for [`Store::take_events`]
    /// (the server feeds its watchers from it rather than rescanning histories).
    pub fn open_journal(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
    }

    /// Whether a journal is kept (see [`Store::open_journal`]).
    pub fn journal_is_open(&self) -> bool {
        self.journal.is_some()
    }

    /// Stops the journal and drops what it held (a server with no watchers left).
    pub fn close_journal(&mut self) {
        self.journal = None;
    }

    /// The events since the last call, in revision and write order, each with the key's
    /// previous value. Empty unless [`Store::open_journal`] was called.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub(crate) fn keys_in<'a>(
        &'a self,
        key: &'a [u8],
        range_end: &'a [u8],
    ) -> Box<dyn CloneIterator<'a> + 'a> {
        if range_end.is_empty() {
            return Box::new(self.keys.get_key_value(key).into_iter());
        }
        let start = Bound::Included(key);
        if range_end == [0] {
            return Box::new(self.keys.range::<_, [u8]>((start, Bound::Unbounded)));
        }
        if range_end <= key {
            return Box::new(std::iter::empty());
        }
        let end = Bound::Excluded(range_end);
        Box::new(self.keys.range::<_, [u8]>((start, end)))
    }
}

/// The keys of a range: an iterator that can be counted and then used again.
pub(crate) trait CloneIterator<'a>: Iterator<Item = (&'a Key, &'a History)> {
    fn clone_box(&self) -> Box<dyn CloneIterator<'a> + 'a>;
}

impl<'a, I> CloneIterator<'a> for I
where
    I: Iterator<Item = (&'a Key, &'a History)> + Clone + 'a,
{
    fn clone_box(&self) -> Box<dyn CloneIterator<'a> + 'a> {
        Box::new(self.clone())
    }
}

impl<'a> Clone for Box<dyn CloneIterator<'a> + 'a> {
    fn clone(&self) -> Self {
        (**self).clone_box()
    }
}

/// The estimated size of one change: its key and value, and five revision-sized numbers.
fn change_bytes(key: &[u8], change: &Change) -> u64 {
    let value = change.kv.as_ref().map_or(0, |kv| kv.value.len());
    (key.len() + value + 40) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    fn put(store: &mut Store, key: &str, value: &str) -> i64 {
        let p = Put {
            key: key.into(),
            value: value.into(),
            ..Put::default()
        };
        store.put(&p).unwrap().revision
    }

    fn range(key: &str, end: &str) -> Range {
        Range {
            key: key.into(),
            range_end: end.into(),
            ..Range::default()
        }
    }

    #[test]
    fn revisions_versions_and_history() {
        let mut s = Store::new();
        assert_eq!(s.revision(), 1);
        assert_eq!(put(&mut s, "a", "1"), 2);
        assert_eq!(put(&mut s, "a", "2"), 3);
        let d = DeleteRange {
            key: "a".into(),
            ..DeleteRange::default()
        };
        assert_eq!(s.delete_range(&d).unwrap().deleted, 1);
        assert_eq!(
            s.delete_range(&d).unwrap().revision,
            4,
            "nothing deleted, no revision"
        );
        assert_eq!(put(&mut s, "a", "3"), 5);
        let now = s.range(&range("a", "")).unwrap().kvs.remove(0);
        assert_eq!(
            (now.create_revision, now.mod_revision, now.version),
            (5, 5, 1)
        );
        let then = s
            .range(&Range {
                revision: 3,
                ..range("a", "")
            })
            .unwrap()
            .kvs
            .remove(0);
        assert_eq!((then.value, then.version), (b"2".to_vec(), 2));
        assert!(s
            .range(&Range {
                revision: 4,
                ..range("a", "")
            })
            .unwrap()
            .kvs
            .is_empty());
    }

    #[test]
    fn count_only_and_revision_filters() {
        let mut s = Store::new();
        for key in ["a", "b", "c", "d"] {
            put(&mut s, key, "x");
        }
        let counted = s.range(&Range {
            count_only: true,
            ..range("a", "\0")
        });
        let counted = counted.unwrap();
        assert_eq!((counted.count, counted.kvs.len()), (4, 0));
        let filtered = Range {
            min_mod_revision: 3,
            max_create_revision: 4,
            limit: 1,
            ..range("a", "\0")
        };
        let r = s.range(&filtered).unwrap();
        let keys: Vec<_> = r.kvs.iter().map(|kv| kv.key.clone()).collect();
        assert_eq!((keys, r.more, r.count), (vec![b"b".to_vec()], true, 4));
    }

    #[test]
    fn invalid_requests_get_etcds_errors_and_change_nothing() {
        let mut s = Store::new();
        put(&mut s, "a", "1");
        let before = s.clone();
        let cases = [
            s.clone().put(&Put::default()).unwrap_err(),
            s.clone()
                .put(&Put {
                    key: "a".into(),
                    lease: 5,
                    ..Put::default()
                })
                .unwrap_err(),
            s.clone()
                .put(&Put {
                    key: "zz".into(),
                    ignore_value: true,
                    ..Put::default()
                })
                .unwrap_err(),
            s.range(&Range {
                revision: 9,
                ..range("a", "")
            })
            .unwrap_err(),
            s.clone().compact(Compaction { revision: 9 }).unwrap_err(),
        ];
        let expected = [
            (Code::InvalidArgument, "etcdserver: key is not provided"),
            (Code::NotFound, "etcdserver: requested lease not found"),
            (Code::InvalidArgument, "etcdserver: key not found"),
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
        ];
        for (error, (code, message)) in cases.iter().zip(expected) {
            assert_eq!((error.code(), error.message()), (code, message));
        }
        assert_eq!(s, before);
        s.compact(Compaction { revision: 2 }).unwrap();
        assert_eq!(
            s.compact(Compaction { revision: 2 }).unwrap_err().message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        assert!(s
            .range(&Range {
                revision: 1,
                ..range("a", "")
            })
            .is_err());
        assert!(s
            .range(&Range {
                revision: 2,
                ..range("a", "")
            })
            .is_ok());
    }
}
