//! Watchers: clients that watch every key from revision 1 through every fault, as etcd
//! clients do. Each opens a watch stream at a member (the server's own `Watchers`, fed
//! by the calls the server's core makes, through a bounded queue it drains now and
//! then, so streams fill up and watchers fall behind and catch up from history); when
//! its member crashes it opens another at the next member, from the revision after the
//! last it received. What each received, stream after stream, must be exactly the
//! events of the log from revision 1 on, in order, none missed or repeated: the log
//! replayed from the start on a fresh store says which.

use tokio::sync::mpsc;

use server::proto::etcdserverpb::WatchResponse;
use server::proto::mvccpb;
use server::watchers::{Request as WatchRequest, Spec, Watchers};

use super::*;

/// Responses a stream holds before its watcher falls behind: small, so it often does.
const STREAM_QUEUE: usize = 4;
/// A watcher drains its stream every 1 to this many ticks.
const POLL_TICKS_MAX: u64 = 30;
/// A watcher whose member went opens a stream at the next one after this long.
const REOPEN_TICKS: u64 = 10;

/// One watcher.
#[derive(Debug, Default)]
pub(super) struct WatchClient {
    /// The member it watches at, or will next.
    target: usize,
    /// The stream open at `target`, once the member took it.
    stream: Option<mpsc::Receiver<WatchResponse>>,
    /// The first revision not yet received.
    next: i64,
    /// Every event received, in order, across streams.
    received: Vec<Seen>,
    /// What went wrong (at most one report per watcher).
    problem: Option<String>,
}

/// An event as a watcher sees it, and as the log says it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    revision: i64,
    put: bool,
    key: Vec<u8>,
    value: Vec<u8>,
    create_revision: i64,
    version: i64,
    lease: i64,
}

impl Seen {
    fn from_wire(event: &mvccpb::Event) -> Seen {
        let kv = event.kv.clone().unwrap_or_default();
        Seen {
            revision: kv.mod_revision,
            put: event.r#type == mvccpb::event::EventType::Put as i32,
            key: kv.key,
            value: kv.value,
            create_revision: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }

    fn from_store(event: &kv::Event) -> Seen {
        let kv = &event.kv;
        Seen {
            revision: kv.mod_revision,
            put: event.kind == kv::EventKind::Put,
            key: kv.key.clone(),
            value: kv.value.clone(),
            create_revision: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

/// A member's watchers, as the server's core makes them (with the negative control, in
/// tests, that breaks them).
pub(super) fn new_watchers(controls: &Controls) -> Watchers {
    #[allow(unused_mut)]
    let mut watchers = Watchers::new(usize::MAX);
    #[cfg(test)]
    {
        watchers.skips_unqueued = controls.watch_skips_unqueued;
    }
    let _ = controls;
    watchers
}

impl World {
    pub(super) fn start_watchers(&mut self) {
        for w in 0..self.options.watchers {
            self.watch_clients.push(WatchClient {
                target: w % self.nodes.len(),
                next: 1,
                ..WatchClient::default()
            });
            let start = self.random(0, 20 * TICK_US);
            self.schedule(start, Event::WatchOpen(w));
        }
    }

    /// Watcher `w` asks its target member for a stream (the request crosses the network).
    pub(super) fn watch_open(&mut self, w: usize) {
        let node = self.watch_clients[w].target;
        let faults = self.options.faults;
        let delay = self.random(faults.delay_us.0, faults.delay_us.1);
        self.schedule(delay, Event::WatchCreate { node, watcher: w });
    }

    /// The member of `node` takes watcher `w`'s stream, as the server's core does.
    pub(super) fn watch_create(&mut self, node: usize, w: usize) {
        let n = &mut self.nodes[node];
        let Some(member) = n.member.as_mut() else {
            return self.watch_lost(w);
        };
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let spec = Spec {
            watch: kv::Watch {
                key: vec![0],
                range_end: vec![0],
                start_revision: self.watch_clients[w].next,
                ..kv::Watch::default()
            },
            ..Spec::default()
        };
        let stream = self.watch_streams;
        self.watch_streams += 1;
        let request = WatchRequest::Create {
            stream,
            id: 0,
            spec,
            tx,
        };
        let header = member.machine().inner.header(&member.context());
        let store = member.machine_mut().inner.store_mut();
        n.watchers.request(request, store, header);
        self.watch_clients[w].stream = Some(rx);
        self.schedule_poll(w);
    }

    fn schedule_poll(&mut self, w: usize) {
        let wait = self.random(1, POLL_TICKS_MAX) * TICK_US;
        self.schedule(wait, Event::WatchPoll(w));
    }

    /// Watcher `w` drains its stream.
    pub(super) fn watch_poll(&mut self, w: usize) {
        if self.watch_clients[w].stream.is_some() {
            match self.drain(w) {
                Ok(()) => self.schedule_poll(w),
                Err(()) => self.watch_lost(w),
            }
        }
    }

    /// Takes every response queued on `w`'s stream; `Err` once the stream is gone.
    fn drain(&mut self, w: usize) -> Result<(), ()> {
        let client = &mut self.watch_clients[w];
        let Some(stream) = client.stream.as_mut() else {
            return Ok(());
        };
        loop {
            let response = match stream.try_recv() {
                Ok(response) => response,
                Err(mpsc::error::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    client.stream = None;
                    return Err(());
                }
            };
            if response.canceled {
                // The simulator never compacts: no watch has a reason to end.
                let reason = response.cancel_reason;
                client.problem.get_or_insert(format!("canceled: {reason}"));
                client.stream = None;
                return Err(());
            }
            for event in &response.events {
                let seen = Seen::from_wire(event);
                client.next = client.next.max(seen.revision + 1);
                client.received.push(seen);
                self.stats.watch_events += 1;
            }
        }
    }

    /// `w`'s member went (or was down): a stream at the next member, from the next
    /// revision.
    fn watch_lost(&mut self, w: usize) {
        self.watch_clients[w].stream = None;
        let next = self.next_member(self.watch_clients[w].target);
        self.watch_clients[w].target = next;
        self.stats.watch_reopens += 1;
        self.schedule(REOPEN_TICKS * TICK_US, Event::WatchOpen(w));
    }

    /// After each input: the member's new events go to its watchers, as the server's
    /// core hands them over after each burst.
    pub(super) fn settle_watchers(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let Some(member) = n.member.as_mut() else {
            return;
        };
        let header = member.machine().inner.header(&member.context());
        n.watchers
            .settle(member.machine_mut().inner.store_mut(), header);
    }

    /// Every tick: watchers that fell behind catch up if their streams have room.
    pub(super) fn catch_up_watchers(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let Some(member) = n.member.as_ref() else {
            return;
        };
        let header = member.machine().inner.header(&member.context());
        n.watchers.catch_up(member.machine().inner.store(), header);
    }

    /// What every watcher received is the log's events from revision 1, in order.
    pub(super) fn check_watches(&mut self) {
        if self.watch_clients.is_empty() {
            return;
        }
        for w in 0..self.watch_clients.len() {
            let _ = self.drain(w);
        }
        let log = match self.events_of_the_log() {
            Ok(log) => log,
            Err(problem) => return self.failures.push(Failure::Liveness(problem)),
        };
        for (w, client) in self.watch_clients.iter().enumerate() {
            let lag = log.len().saturating_sub(client.received.len());
            self.stats.watch_lag += lag as u64;
            let problem = client
                .problem
                .clone()
                .or_else(|| compare(&client.received, &log));
            if let Some(problem) = problem {
                self.failures.push(Failure::Watch {
                    watcher: w,
                    problem,
                });
            }
        }
    }

    /// The events of every chosen slot, applied in order to a fresh store.
    fn events_of_the_log(&self) -> Result<Vec<Seen>, String> {
        let mut machine = Watched::restore(&[], CLUSTER_ID).map_err(|e| e.to_string())?;
        machine.inner.store_mut().open_journal();
        let context = node::Context {
            me: NodeId(0),
            now: Duration::ZERO,
            round: 0,
            leading: false,
            leader_known: true,
        };
        let last = self.chosen.keys().copied().max().unwrap_or(0);
        for slot in 1..=last {
            match self.chosen.get(&slot) {
                Some((Entry::Command(command), _)) => {
                    node::StateMachine::apply(&mut machine, slot, command, &context);
                }
                Some((Entry::Noop | Entry::Configure { .. } | Entry::Retire { .. }, _)) => {
                    node::StateMachine::noop(&mut machine, slot);
                }
                None => return Err(format!("slot {slot} was never applied, yet {last} was")),
            }
        }
        let events = machine.inner.store_mut().take_events();
        Ok(events.iter().map(Seen::from_store).collect())
    }
}

/// Where `received` departs from the start of `log`, if it does.
fn compare(received: &[Seen], log: &[Seen]) -> Option<String> {
    let departs = received.iter().zip(log).position(|(got, want)| got != want);
    match departs {
        Some(i) => Some(format!(
            "event {i}: received {:?}, the log says {:?}",
            received[i], log[i]
        )),
        None if received.len() > log.len() => Some(format!(
            "{} events received, the log has {}",
            received.len(),
            log.len()
        )),
        None => None,
    }
}
