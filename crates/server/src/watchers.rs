//! The watchers of every watch stream, kept by the node's core next to the store: after
//! each batch of applies the core hands them the new events.
//!
//! A watcher is **synced** while every event up to the store's revision has been queued
//! on its stream. A stream's queue is bounded: when it is full (the client is not
//! reading), the watcher falls behind instead of growing memory, and catches up from the
//! store's history once the queue drains, as etcd's unsynced watchers do. If compaction
//! overtakes it meanwhile, it is canceled with the compaction revision.
//!
//! The core (and the simulator, which runs the same calls) hands every stream's request
//! to [`Watchers::request`], calls [`Watchers::settle`] after each burst of inputs,
//! [`Watchers::catch_up`] every tick and [`Watchers::resync_all`] after a snapshot from a
//! peer replaced the store.

use std::collections::BTreeMap;

use kv::{Event, Store, Watch};
use tokio::sync::mpsc;

use crate::convert;
use crate::proto::etcdserverpb::{ResponseHeader, WatchResponse};

/// Which keys and events a watcher wants.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    /// The store's view of the watch (keys, start revision, filters, `prev_kv`).
    pub watch: Watch,
    /// Send periodic progress notifications.
    pub progress_notify: bool,
    /// Split responses larger than the request limit.
    pub fragment: bool,
}

/// What a watch stream asks of the core.
#[derive(Debug)]
pub enum Request {
    /// Start watcher `id` on `stream`, answering on `tx`.
    Create {
        /// The stream.
        stream: u64,
        /// The watch id (unique on the stream).
        id: i64,
        /// What to watch.
        spec: Spec,
        /// The stream's queue.
        tx: mpsc::Sender<WatchResponse>,
    },
    /// Stop watcher `id` on `stream`.
    Cancel {
        /// The stream.
        stream: u64,
        /// The watch id.
        id: i64,
    },
    /// Report the revision every watcher of `stream` has reached.
    Progress {
        /// The stream.
        stream: u64,
        /// The stream's queue.
        tx: mpsc::Sender<WatchResponse>,
    },
    /// The client went away.
    Close {
        /// The stream.
        stream: u64,
    },
}

impl Request {
    /// Whether it starts a watcher (the one kind that takes room in the core's queue).
    pub fn is_create(&self) -> bool {
        matches!(self, Request::Create { .. })
    }
}

#[derive(Debug)]
struct Watcher {
    spec: Spec,
    tx: mpsc::Sender<WatchResponse>,
    /// The first revision not yet queued.
    next: i64,
    synced: bool,
}

/// Every watcher, by (stream, id).
#[derive(Debug, Default)]
pub struct Watchers {
    all: BTreeMap<(u64, i64), Watcher>,
    /// Largest response a fragmenting watcher receives, in bytes.
    pub fragment_bytes: usize,
    /// Negative control (the simulator's): a watcher whose stream was full skips the
    /// batch it could not queue, rather than catch up from it.
    #[cfg(feature = "negative-controls")]
    pub skips_unqueued: bool,
}

fn in_range(w: &Watch, key: &[u8]) -> bool {
    if w.range_end.is_empty() {
        key == w.key.as_slice()
    } else if w.range_end == [0] {
        key >= w.key.as_slice()
    } else {
        key >= w.key.as_slice() && key < w.range_end.as_slice()
    }
}

fn wanted(w: &Watch, e: &Event) -> bool {
    let skipped = match e.kind {
        kv::EventKind::Put => w.no_put,
        kv::EventKind::Delete => w.no_delete,
    };
    !skipped && in_range(w, &e.kv.key)
}

impl Watchers {
    /// No watchers; fragments of at most `fragment_bytes`.
    pub fn new(fragment_bytes: usize) -> Watchers {
        Watchers {
            fragment_bytes,
            ..Watchers::default()
        }
    }

    /// The number of watchers.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// A watch stream's request. Events already applied go first: a progress answer
    /// promises them, and a new watcher starting at the next revision must not see them.
    pub fn request(&mut self, request: Request, store: &mut Store, header: ResponseHeader) {
        self.dispatch_from(store, header);
        self.handle(request, store, header);
        self.keep_journal(store);
    }

    /// After a burst of inputs: the events applied go to the synced watchers, and the
    /// store keeps its journal only while there are watchers to feed (on a member nobody
    /// watches, a put then costs no event, two copies of its key-value; a new watcher
    /// starts at the store's revision or catches up from history, so it never needs
    /// events from before the journal opened).
    pub fn settle(&mut self, store: &mut Store, header: ResponseHeader) {
        self.dispatch_from(store, header);
        self.keep_journal(store);
    }

    fn dispatch_from(&mut self, store: &mut Store, header: ResponseHeader) {
        let events = store.take_events();
        if !events.is_empty() {
            self.dispatch(&events, header);
        }
    }

    fn keep_journal(&self, store: &mut Store) {
        if self.all.is_empty() {
            store.close_journal();
        } else {
            store.open_journal();
        }
    }

    /// Handles a stream's request.
    fn handle(&mut self, request: Request, store: &Store, header: ResponseHeader) {
        match request {
            Request::Create {
                stream,
                id,
                spec,
                tx,
            } => {
                let created = WatchResponse {
                    header: Some(header),
                    watch_id: id,
                    created: true,
                    ..WatchResponse::default()
                };
                if tx.try_send(created).is_err() {
                    return;
                }
                let start = spec.watch.start_revision;
                let watcher = Watcher {
                    next: if start > 0 {
                        start
                    } else {
                        store.revision() + 1
                    },
                    synced: start <= 0 || start > store.revision(),
                    spec,
                    tx,
                };
                self.all.insert((stream, id), watcher);
                if !self.all.get(&(stream, id)).is_some_and(|w| w.synced) {
                    self.catch_up_one((stream, id), store, header);
                }
            }
            Request::Cancel { stream, id } => {
                if let Some(w) = self.all.remove(&(stream, id)) {
                    let _ = w.tx.try_send(WatchResponse {
                        header: Some(header),
                        watch_id: id,
                        canceled: true,
                        ..WatchResponse::default()
                    });
                }
            }
            Request::Progress { stream, tx } => {
                let mut mine = self.all.range((stream, i64::MIN)..=(stream, i64::MAX));
                // Only a revision every watcher has reached is progress.
                if mine.all(|(_, w)| w.synced) {
                    let _ = tx.try_send(WatchResponse {
                        header: Some(header),
                        watch_id: -1,
                        ..WatchResponse::default()
                    });
                }
            }
            Request::Close { stream } => self.all.retain(|(s, _), _| *s != stream),
        }
    }

    /// Queues `events` (all of revisions up to `header.revision`) for every synced
    /// watcher that wants them.
    fn dispatch(&mut self, events: &[Event], header: ResponseHeader) {
        let fragment_bytes = self.fragment_bytes;
        #[cfg(feature = "negative-controls")]
        let skips_unqueued = self.skips_unqueued;
        self.all.retain(|&(_, id), w| {
            if !w.synced {
                return true;
            }
            let mine: Vec<&Event> = events
                .iter()
                .filter(|e| e.kv.mod_revision >= w.next && wanted(&w.spec.watch, e))
                .collect();
            if mine.is_empty() {
                // Never below a start revision still in the future.
                w.next = w.next.max(header.revision + 1);
                return true;
            }
            let first = mine[0].kv.mod_revision;
            let owned: Vec<Event> = mine.into_iter().cloned().collect();
            match send(w, id, owned, header, fragment_bytes) {
                Sent::All => {
                    w.next = header.revision + 1;
                    true
                }
                Sent::Full => {
                    w.synced = false;
                    w.next = first;
                    #[cfg(feature = "negative-controls")]
                    if skips_unqueued {
                        w.next = header.revision + 1;
                    }
                    true
                }
                Sent::Closed => false,
            }
        });
    }

    /// The store was replaced (a snapshot from a peer): every watcher catches up from
    /// the new store's history, or is canceled if that history was compacted.
    pub fn resync_all(&mut self) {
        for w in self.all.values_mut() {
            w.synced = false;
        }
    }

    /// Lets watchers that fell behind catch up, if their streams have room again.
    pub fn catch_up(&mut self, store: &Store, header: ResponseHeader) {
        let behind: Vec<(u64, i64)> = self
            .all
            .iter()
            .filter(|(_, w)| !w.synced && w.tx.capacity() > 0)
            .map(|(k, _)| *k)
            .collect();
        for key in behind {
            self.catch_up_one(key, store, header);
        }
    }

    fn catch_up_one(&mut self, key: (u64, i64), store: &Store, header: ResponseHeader) {
        let Some(w) = self.all.get_mut(&key) else {
            return;
        };
        let from = Watch {
            start_revision: w.next,
            ..w.spec.watch.clone()
        };
        let outcome = match store.watch_events(&from) {
            Ok(events) if events.is_empty() => Sent::All,
            Ok(events) => send(w, key.1, events, header, self.fragment_bytes),
            Err(compacted) => {
                let _ = w.tx.try_send(WatchResponse {
                    header: Some(header),
                    watch_id: key.1,
                    canceled: true,
                    compact_revision: compacted.compact_revision,
                    cancel_reason: "etcdserver: mvcc: required revision has been compacted".into(),
                    ..WatchResponse::default()
                });
                Sent::Closed
            }
        };
        match outcome {
            Sent::All => {
                w.next = w.next.max(header.revision + 1);
                w.synced = true;
            }
            Sent::Full => {}
            Sent::Closed => {
                self.all.remove(&key);
            }
        }
    }

    /// Sends a progress notification to every synced watcher that asked for them.
    pub fn notify_progress(&mut self, header: ResponseHeader) {
        for (&(_, id), w) in &self.all {
            if w.synced && w.spec.progress_notify {
                let _ = w.tx.try_send(WatchResponse {
                    header: Some(header),
                    watch_id: id,
                    ..WatchResponse::default()
                });
            }
        }
    }
}

enum Sent {
    All,
    Full,
    Closed,
}

/// Queues `events` for one watcher, in fragments if it asked for them. Reserves every
/// slot first, so a watcher never receives half of a batch.
fn send(
    w: &Watcher,
    id: i64,
    events: Vec<Event>,
    header: ResponseHeader,
    fragment_bytes: usize,
) -> Sent {
    let prev_kv = w.spec.watch.prev_kv;
    let events: Vec<_> = events
        .into_iter()
        .map(|e| convert::event(e, prev_kv))
        .collect();
    let chunks = if w.spec.fragment {
        fragments(events, fragment_bytes)
    } else {
        vec![events]
    };
    if w.tx.is_closed() {
        return Sent::Closed;
    }
    if w.tx.capacity() < chunks.len() {
        return Sent::Full;
    }
    let last = chunks.len() - 1;
    for (i, events) in chunks.into_iter().enumerate() {
        let response = WatchResponse {
            header: Some(header),
            watch_id: id,
            fragment: i < last,
            events,
            ..WatchResponse::default()
        };
        match w.tx.try_send(response) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return Sent::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => return Sent::Closed,
        }
    }
    Sent::All
}

/// Splits events into runs of at most `limit` encoded bytes (a larger single event goes
/// alone).
fn fragments(
    events: Vec<crate::proto::mvccpb::Event>,
    limit: usize,
) -> Vec<Vec<crate::proto::mvccpb::Event>> {
    let mut out: Vec<Vec<_>> = vec![Vec::new()];
    let mut size = 0;
    for e in events {
        let n = prost::Message::encoded_len(&e);
        if size + n > limit && out.last().is_some_and(|c| !c.is_empty()) {
            out.push(Vec::new());
            size = 0;
        }
        size += n;
        if let Some(chunk) = out.last_mut() {
            chunk.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(store: &mut Store, key: &str, value: &str) {
        let p = kv::Put {
            key: key.into(),
            value: value.into(),
            ..kv::Put::default()
        };
        store.put(&p).unwrap();
    }

    fn header(store: &Store) -> ResponseHeader {
        ResponseHeader {
            revision: store.revision(),
            ..ResponseHeader::default()
        }
    }

    fn create(
        w: &mut Watchers,
        store: &Store,
        spec: Spec,
        cap: usize,
    ) -> mpsc::Receiver<WatchResponse> {
        let (tx, rx) = mpsc::channel(cap);
        let request = Request::Create {
            stream: 1,
            id: 0,
            spec,
            tx,
        };
        w.handle(request, store, header(store));
        rx
    }

    fn prefix(p: &str, start: i64) -> Spec {
        let mut end = p.as_bytes().to_vec();
        *end.last_mut().unwrap() += 1;
        Spec {
            watch: Watch {
                key: p.into(),
                range_end: end,
                start_revision: start,
                ..Watch::default()
            },
            ..Spec::default()
        }
    }

    #[test]
    fn a_watcher_gets_created_then_backlog_then_live_events_in_its_range() {
        let mut store = Store::new();
        store.open_journal();
        put(&mut store, "a1", "x");
        put(&mut store, "b1", "x");
        store.take_events();
        let mut w = Watchers::default();
        let mut rx = create(&mut w, &store, prefix("a", 1), 16);
        assert!(rx.try_recv().unwrap().created);
        let backlog = rx.try_recv().unwrap();
        assert_eq!(backlog.events.len(), 1, "b1 is outside the range");
        put(&mut store, "a2", "y");
        put(&mut store, "c", "y");
        w.dispatch(&store.take_events(), header(&store));
        let live = rx.try_recv().unwrap();
        assert_eq!(live.events.len(), 1);
        assert_eq!(live.events[0].kv.as_ref().unwrap().key, b"a2");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_full_stream_falls_behind_and_catches_up_without_loss_or_duplicates() {
        let mut store = Store::new();
        store.open_journal();
        let mut w = Watchers::default();
        let mut rx = create(&mut w, &store, prefix("k", 0), 2);
        assert!(rx.try_recv().unwrap().created);
        for i in 0..5 {
            put(&mut store, &format!("k{i}"), "v");
            w.dispatch(&store.take_events(), header(&store));
        }
        // Capacity 2: two batches queued, the rest left for catch-up.
        let mut keys = Vec::new();
        while let Ok(r) = rx.try_recv() {
            keys.extend(r.events.into_iter().map(|e| e.kv.unwrap().key));
        }
        assert_eq!(keys.len(), 2);
        w.catch_up(&store, header(&store));
        put(&mut store, "k9", "v");
        w.dispatch(&store.take_events(), header(&store));
        while let Ok(r) = rx.try_recv() {
            keys.extend(r.events.into_iter().map(|e| e.kv.unwrap().key));
        }
        let want: Vec<Vec<u8>> = ["k0", "k1", "k2", "k3", "k4", "k9"]
            .iter()
            .map(|k| k.as_bytes().to_vec())
            .collect();
        assert_eq!(keys, want);
    }

    /// A progress answer at R promises every event up to R: a stream with a watcher
    /// behind gets none until it caught up, and then the answer follows the events.
    #[test]
    fn progress_waits_for_a_watcher_behind_and_follows_its_events() {
        let mut store = Store::new();
        store.open_journal();
        let mut w = Watchers::default();
        let (tx, mut rx) = mpsc::channel(2);
        let create = Request::Create {
            stream: 1,
            id: 0,
            spec: prefix("k", 0),
            tx: tx.clone(),
        };
        let at = header(&store);
        w.request(create, &mut store, at);
        assert!(rx.try_recv().unwrap().created);
        for i in 0..4 {
            put(&mut store, &format!("k{i}"), "v");
            w.dispatch(&store.take_events(), header(&store));
        }
        // Two batches queued, two left behind. Take one: room for a progress answer.
        let mut seen = vec![rx.try_recv().unwrap()];
        let progress = |tx: &mpsc::Sender<WatchResponse>| Request::Progress {
            stream: 1,
            tx: tx.clone(),
        };
        let at = header(&store);
        w.request(progress(&tx), &mut store, at);
        while let Ok(r) = rx.try_recv() {
            seen.push(r);
        }
        assert!(
            seen.iter().all(|r| !r.events.is_empty()),
            "progress while behind"
        );
        w.catch_up(&store, header(&store));
        let at = header(&store);
        w.request(progress(&tx), &mut store, at);
        while let Ok(r) = rx.try_recv() {
            seen.push(r);
        }
        let events: usize = seen.iter().map(|r| r.events.len()).sum();
        let last = seen.last().unwrap();
        assert_eq!(events, 4);
        assert!(last.events.is_empty(), "the progress answer comes last");
        assert_eq!(last.header.unwrap().revision, store.revision());
    }

    #[test]
    fn a_compacted_start_is_canceled_with_the_compaction_revision() {
        let mut store = Store::new();
        for i in 0..4 {
            put(&mut store, "k", &i.to_string());
        }
        store.compact(kv::Compaction { revision: 4 }).unwrap();
        let mut w = Watchers::default();
        let mut rx = create(&mut w, &store, prefix("k", 2), 4);
        assert!(rx.try_recv().unwrap().created);
        let canceled = rx.try_recv().unwrap();
        assert!(canceled.canceled);
        assert_eq!(canceled.compact_revision, 4);
        assert!(w.is_empty());
    }

    #[test]
    fn large_batches_are_fragmented_for_watchers_that_ask() {
        let mut store = Store::new();
        let value = "v".repeat(100);
        for i in 0..10 {
            put(&mut store, &format!("k{i}"), &value);
        }
        let mut w = Watchers::new(300);
        let mut spec = prefix("k", 1);
        spec.fragment = true;
        let mut rx = create(&mut w, &store, spec, 64);
        assert!(rx.try_recv().unwrap().created);
        let mut parts = Vec::new();
        while let Ok(r) = rx.try_recv() {
            parts.push((r.fragment, r.events.len()));
        }
        assert!(parts.len() > 1, "{parts:?}");
        assert!(parts[..parts.len() - 1].iter().all(|(f, _)| *f));
        assert!(!parts.last().unwrap().0);
        assert_eq!(parts.iter().map(|(_, n)| n).sum::<usize>(), 10);
    }
}
