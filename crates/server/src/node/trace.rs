//! A member's trace (`synod serve --trace-file FILE`): the events the simulator records
//! (`node::trace`'s lines: sends, deliveries, applies, elections, reads released,
//! snapshots installed, restarts), each with this member's vector clock and state, in its
//! own file. `synod trace merge` puts the members' files together into one trace.
//!
//! # Clocks and message ids across processes
//! The member keeps its vector clock over the nodes its file's header lists (the members
//! it knew when the file was started). Every message it sends carries a [`Stamp`]: its
//! clock just after the send. The sender's own count in it numbers the message among the
//! ones that sender sent, so `(sender, count)` names a message cluster-wide without any
//! other id on the wire. A delivery takes the element-wise maximum with the stamp, then
//! counts itself. A message that arrives without a stamp (from a member that does not
//! trace, or stopped tracing) is recorded as a `receive`: a local event.
//!
//! # What survives a crash
//! Events go to a buffer, written to the file (one `write`, no fsync) before any message
//! of the burst leaves the core, and at the end of every burst. So a member killed with
//! SIGKILL may lose the tail of its burst, never a send whose message a peer received;
//! the page cache keeps what was written (a machine's crash may lose more). A restarted
//! member appends to its file: it cuts a line the kill left half-written, takes its clock
//! from its last event, and records a `restart`.
//!
//! # Bounded
//! Once the file would grow past its limit (`--trace-file-max-bytes`), the member writes
//! a last line, `{"stop": …}`, and traces nothing more (its messages go out unstamped),
//! restarts included, until the file is moved away.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use node::trace::{self, Event, Header, State};
use node::Output;
use paxos::multi::{Action, RoleKind, Slot};
use paxos::{Ballot, NodeId};
use serde_json::Value as Json;

use super::Member;
use crate::machine::Applied;
use crate::wire::Stamp;

/// `--trace-file-max-bytes`'s default: 64 MiB.
pub const MAX_BYTES_DEFAULT: u64 = 64 << 20;

/// Room kept at the end of the file for the last line.
const RESERVE: u64 = 512;

/// Where a member traces, and how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceFile {
    /// The file.
    pub path: PathBuf,
    /// It grows to at most this many bytes.
    pub max_bytes: u64,
}

/// A member's trace as it records it.
#[derive(Debug)]
pub struct Tracer {
    me: u64,
    path: PathBuf,
    file: File,
    /// Lines not yet written.
    buffer: Vec<u8>,
    /// Bytes in the file.
    written: u64,
    max_bytes: u64,
    /// The file is full (or could not be written): nothing more is recorded.
    stopped: bool,
    /// The header's nodes (the clock's order), and where each is in it.
    nodes: Vec<u64>,
    position: HashMap<u64, usize>,
    /// This member's place in the clock.
    at: usize,
    clock: Vec<u64>,
    /// Whether the file held an earlier run of this member.
    restarted: bool,
    was_leader: bool,
    /// The last slot recorded as applied.
    applied: Slot,
    /// Microseconds since the Unix epoch at `started`: the events' time is the wall clock,
    /// advanced by a monotonic one.
    epoch: u64,
    started: Instant,
    /// For the outputs being carried out, in order: each send's id and stamp.
    stamps: VecDeque<Option<(u64, Stamp)>>,
}

fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

impl Tracer {
    /// Opens (or starts) member `me`'s trace in `cluster`, whose members it knows as
    /// `nodes` (id and name). A file that holds an earlier run of this member is continued;
    /// one that holds anything else is refused.
    pub fn open(
        options: &TraceFile,
        me: NodeId,
        cluster: u64,
        nodes: &[(u64, String)],
    ) -> Result<Tracer, String> {
        let path = &options.path;
        let fail = |e: std::io::Error| format!("--trace-file {}: {e}", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(fail)?;
        let length = file.metadata().map_err(fail)?.len();
        // A full file is only checked for whose it is.
        let full = length + RESERVE > options.max_bytes;
        let mut text = Vec::new();
        let limit = if full { 1 << 20 } else { length };
        (&mut file)
            .take(limit)
            .read_to_end(&mut text)
            .map_err(fail)?;
        let mut tracer = Tracer {
            me: me.0,
            path: path.clone(),
            file,
            buffer: Vec::new(),
            written: length,
            max_bytes: options.max_bytes,
            stopped: false,
            nodes: Vec::new(),
            position: HashMap::new(),
            at: 0,
            clock: Vec::new(),
            restarted: false,
            was_leader: false,
            applied: 0,
            epoch: micros(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default(),
            ),
            started: Instant::now(),
            stamps: VecDeque::new(),
        };
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete == 0 && !full {
            // New, or a header the last run did not finish writing.
            tracer.begin(cluster, nodes)?;
        } else {
            tracer.resume(&text[..complete], cluster, full)?;
            if !full && complete < text.len() {
                tracing::warn!(file = %path.display(), bytes = text.len() - complete, "the trace file ends in a line cut short (the member was killed while writing it): cutting it");
                tracer.file.set_len(complete as u64).map_err(fail)?;
                tracer.written = complete as u64;
            }
        }
        Ok(tracer)
    }

    fn set_nodes(&mut self, nodes: Vec<u64>) -> Result<(), String> {
        self.position = nodes.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        self.at = *self.position.get(&self.me).ok_or_else(|| {
            format!(
                "--trace-file {}: this member ({:x}) is not among the nodes of its header",
                self.path.display(),
                self.me
            )
        })?;
        self.clock = vec![0; nodes.len()];
        self.nodes = nodes;
        Ok(())
    }

    /// A new file: its header.
    fn begin(&mut self, cluster: u64, nodes: &[(u64, String)]) -> Result<(), String> {
        self.file
            .set_len(0)
            .map_err(|e| format!("--trace-file {}: {e}", self.path.display()))?;
        self.written = 0;
        let mut nodes = nodes.to_vec();
        nodes.sort_unstable();
        self.set_nodes(nodes.iter().map(|(id, _)| *id).collect())?;
        let header = Header {
            source: "serve".into(),
            seed: 0,
            nodes,
        };
        let mut line = header.to_json();
        line.pop();
        line += &format!(",\"cluster\":\"{cluster:x}\",\"member\":{}}}\n", self.me);
        self.buffer.extend_from_slice(line.as_bytes());
        self.flush();
        Ok(())
    }

    /// An earlier run's file: whose it is, the nodes and the clock it ended with.
    fn resume(&mut self, text: &[u8], cluster: u64, full: bool) -> Result<(), String> {
        let path = self.path.display().to_string();
        let refuse = |problem: &str| {
            format!("--trace-file {path} {problem}: move it away or name another file")
        };
        let mut lines = text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
        let header: Json = lines
            .next()
            .and_then(|l| serde_json::from_slice(l).ok())
            .ok_or_else(|| refuse("does not start with a trace header"))?;
        let ours = header["format"] == trace::FORMAT
            && header["source"] == "serve"
            && header["member"].as_u64() == Some(self.me)
            && header["cluster"] == format!("{cluster:x}");
        if !ours {
            return Err(refuse(&format!(
                "holds another trace than this member's ({:x} of cluster {cluster:x})",
                self.me
            )));
        }
        let nodes: Option<Vec<u64>> = header["nodes"]
            .as_array()
            .map(|nodes| nodes.iter().filter_map(|n| n["id"].as_u64()).collect());
        self.set_nodes(nodes.ok_or_else(|| refuse("has a header without its nodes"))?)?;
        self.restarted = true;
        let last: Vec<Json> = text
            .split(|&b| b == b'\n')
            .rev()
            .filter(|l| !l.is_empty())
            .take(64)
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        if full || last.first().is_some_and(|line| line.get("stop").is_some()) {
            tracing::warn!(file = %self.path.display(), "the trace file is full: this member records nothing more");
            self.stopped = true;
            return Ok(());
        }
        let clock = last.iter().find_map(|line| line["clock"].as_array());
        if let Some(clock) = clock {
            let clock: Vec<u64> = clock.iter().filter_map(Json::as_u64).collect();
            if clock.len() != self.nodes.len() {
                return Err(refuse("ends with a clock that does not match its header"));
            }
            self.clock = clock;
        }
        Ok(())
    }

    /// The member runs, from `member`'s state: a restart is recorded.
    pub(super) fn start(&mut self, member: &Member) {
        self.applied = member.applied();
        if self.restarted {
            let state = trace::state_of(member.replica(), None);
            self.local(Event::new(self.now(), self.me, "restart"), Some(state));
        }
    }

    /// The member stops on its own (a shutdown): recorded as its crash, and written out.
    pub(super) fn stop(&mut self) {
        let event = Event {
            detail: Some("shutdown".into()),
            ..Event::new(self.now(), self.me, "crash")
        };
        self.local(event, None);
        self.flush();
    }

    fn now(&self) -> u64 {
        self.epoch.saturating_add(micros(self.started.elapsed()))
    }

    /// Appends `event` with the clock as it stands and `state`; false once stopped.
    fn record(&mut self, mut event: Event, state: Option<State>) -> bool {
        if self.stopped {
            return false;
        }
        event.clock.clone_from(&self.clock);
        event.state = state;
        let line = event.to_json();
        let length = (self.buffer.len() + line.len() + 1) as u64;
        if self.written + length + RESERVE > self.max_bytes {
            self.full();
            return false;
        }
        self.buffer.extend_from_slice(line.as_bytes());
        self.buffer.push(b'\n');
        true
    }

    fn local(&mut self, event: Event, state: Option<State>) {
        if !self.stopped {
            self.clock[self.at] += 1;
            self.record(event, state);
        }
    }

    /// The file reached its limit: the last line, then nothing.
    fn full(&mut self) {
        let line = serde_json::json!({
            "stop": format!("the trace reached --trace-file-max-bytes ({} bytes)", self.max_bytes),
            "time": self.now(),
            "node": self.me,
        });
        self.buffer.extend_from_slice(line.to_string().as_bytes());
        self.buffer.push(b'\n');
        self.flush();
        self.stopped = true;
        tracing::warn!(file = %self.path.display(), max_bytes = self.max_bytes, "the trace file is full: this member records nothing more");
    }

    /// Writes what was recorded to the file.
    pub(super) fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        match self.file.write_all(&self.buffer) {
            Ok(()) => self.written += self.buffer.len() as u64,
            Err(e) => {
                tracing::warn!(file = %self.path.display(), "cannot write the trace: {e}; this member records nothing more");
                self.stopped = true;
                // What was written of a line stays: the merge leaves a cut line out.
                self.written = self.file.seek(SeekFrom::End(0)).unwrap_or(self.written);
            }
        }
        self.buffer.clear();
    }

    /// A peer's message, handled: `described` is what [`trace::describe`] said of it
    /// before, `stamp` what it carried.
    pub(super) fn delivered(
        &mut self,
        from: NodeId,
        described: (&'static str, Ballot, Option<Slot>),
        stamp: Option<Stamp>,
        member: &Member,
    ) {
        if !self.stopped {
            let state = trace::state_of(member.replica(), described.2);
            self.deliver(from, described, stamp, state);
        }
    }

    fn deliver(
        &mut self,
        from: NodeId,
        described: (&'static str, Ballot, Option<Slot>),
        stamp: Option<Stamp>,
        state: State,
    ) {
        let id = stamp
            .as_ref()
            .and_then(|s| s.iter().find(|(node, _)| *node == from.0))
            .map(|&(_, count)| count)
            .filter(|_| self.position.contains_key(&from.0));
        let what = match (&stamp, id) {
            (Some(stamp), Some(_)) => {
                for &(node, count) in stamp.iter() {
                    if let Some(&i) = self.position.get(&node) {
                        self.clock[i] = self.clock[i].max(count);
                    }
                }
                "deliver"
            }
            _ => "receive",
        };
        self.clock[self.at] += 1;
        let event = self.message_event(what, id, from, described);
        self.record(event, Some(state));
    }

    /// The event `what` of a message `described`, exchanged with `peer`.
    fn message_event(
        &self,
        what: &'static str,
        id: Option<u64>,
        peer: NodeId,
        described: (&'static str, Ballot, Option<Slot>),
    ) -> Event {
        let (kind, ballot, slot) = described;
        Event {
            id,
            message: Some(kind.into()),
            ballot: Some(trace::ballot(ballot)),
            slot,
            peer: Some(peer.0),
            ..Event::new(self.now(), self.me, what)
        }
    }

    /// A send: its event, and the stamp its message carries (none once stopped).
    fn send(&mut self, to: NodeId, described: (&'static str, Ballot, Option<Slot>), state: State) {
        if self.stopped {
            return self.stamps.push_back(None);
        }
        self.clock[self.at] += 1;
        let id = self.clock[self.at];
        let event = self.message_event("send", Some(id), to, described);
        let stamp = self.record(event, Some(state)).then(|| {
            let pairs: Vec<(u64, u64)> = (self.nodes.iter().copied())
                .zip(self.clock.iter().copied())
                .filter(|&(_, count)| count > 0)
                .collect();
            (id, pairs.into())
        });
        self.stamps.push_back(stamp);
    }

    /// What the member did since the last look, as its outputs show it (before they are
    /// carried out): an election won, slots applied, then each send (a snapshot stream is
    /// one), read released and snapshot installed, in order. The sends are written to
    /// the file before any of them leaves.
    pub(super) fn observe(
        &mut self,
        member: &Member,
        outputs: &[Output<crate::machine::EtcdMachine, super::Reply<Applied>>],
    ) {
        self.stamps.clear();
        if self.stopped {
            return;
        }
        let replica = member.replica();
        let leads = replica.role() == RoleKind::Leader;
        if leads && !self.was_leader {
            self.local(
                Event::new(self.now(), self.me, "elected"),
                Some(trace::state_of(replica, None)),
            );
        }
        self.was_leader = leads;
        let installed = outputs.iter().filter_map(|o| match o {
            Output::Installed { slot } => Some(*slot),
            _ => None,
        });
        let first = installed.fold(self.applied, Slot::max) + 1;
        self.applied = self.applied.max(member.applied());
        for slot in first..=self.applied {
            let event = Event {
                slot: Some(slot),
                ..Event::new(self.now(), self.me, "apply")
            };
            self.local(event, Some(trace::state_of(replica, Some(slot))));
        }
        for output in outputs {
            match output {
                Output::Send { to, message } => {
                    let described = trace::describe(message);
                    self.send(*to, described, trace::state_of(replica, described.2));
                }
                Output::SendSnapshot(Action::SendSnapshot {
                    to, ballot, index, ..
                }) => {
                    let state = trace::state_of(replica, Some(*index));
                    self.send(*to, ("snapshot", *ballot, Some(*index)), state);
                }
                Output::SendSnapshot(_) => self.stamps.push_back(None),
                Output::ReadReady { .. }
                | Output::Answer {
                    output: Ok(Applied::Read(_)),
                    ..
                } => {
                    let event = Event {
                        ballot: Some(trace::ballot(replica.promised())),
                        ..Event::new(self.now(), self.me, "read-ready")
                    };
                    self.local(event, Some(trace::state_of(replica, None)));
                }
                Output::Installed { slot } => {
                    let event = Event {
                        slot: Some(*slot),
                        ..Event::new(self.now(), self.me, "install-snapshot")
                    };
                    self.local(event, Some(trace::state_of(replica, Some(*slot))));
                }
                _ => {}
            }
        }
        if !self.stamps.is_empty() {
            self.flush();
        }
    }

    /// The stamp of the next send [`Tracer::observe`] recorded, with the message's id.
    pub(super) fn next_stamp(&mut self) -> Option<(u64, Stamp)> {
        self.stamps.pop_front().flatten()
    }

    /// Message `id` to `to` could not be queued (the peer's queue is full, or it is not
    /// dialed): it is dropped here.
    pub(super) fn dropped(
        &mut self,
        to: NodeId,
        id: u64,
        described: (&'static str, Ballot, Option<Slot>),
        member: &Member,
    ) {
        let event = self.message_event("drop", Some(id), to, described);
        self.local(event, Some(trace::state_of(member.replica(), described.2)));
    }

    /// Where the trace goes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: u64 = 0xc1;

    fn nodes() -> Vec<(u64, String)> {
        vec![(30, "c".into()), (10, "a".into()), (20, "b".into())]
    }

    fn file(name: &str, max_bytes: u64) -> TraceFile {
        let dir = std::env::temp_dir().join(format!("synod-tracer-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        TraceFile { path, max_bytes }
    }

    fn open(file: &TraceFile, me: u64) -> Tracer {
        Tracer::open(file, NodeId(me), CLUSTER, &nodes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn lines(file: &TraceFile) -> Vec<Json> {
        let text = std::fs::read_to_string(&file.path).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn state() -> State {
        State {
            role: "follower".into(),
            ..State::default()
        }
    }

    const ACCEPT: (&str, Ballot, Option<Slot>) = ("accept", Ballot::ZERO, Some(4));

    #[test]
    fn sends_carry_the_clock_and_deliveries_merge_it() {
        let file = file("clocks.trace", MAX_BYTES_DEFAULT);
        let mut a = open(&file, 10);
        a.send(NodeId(20), ACCEPT, state());
        a.send(NodeId(30), ACCEPT, state());
        let (id, stamp) = a.next_stamp().unwrap_or_else(|| panic!("stamped"));
        assert_eq!(
            (id, &*stamp),
            (1, &[(10, 1)][..]),
            "the header sorted by id"
        );
        assert_eq!(a.next_stamp().map(|(id, _)| id), Some(2));
        // From b, who heard from c: the maximum, then a's own count.
        let from_b: Stamp = vec![(20, 5), (30, 2), (99, 7)].into();
        a.deliver(NodeId(20), ACCEPT, Some(from_b), state());
        // Without a stamp (a member that does not trace): a local `receive`.
        a.deliver(NodeId(30), ACCEPT, None, state());
        a.flush();
        let lines = lines(&file);
        assert_eq!(lines[0]["member"], 10);
        assert_eq!(lines[0]["cluster"], "c1");
        assert_eq!(lines[0]["source"], "serve");
        let ids: Vec<u64> = lines[0]["nodes"].as_array().map_or(Vec::new(), |n| {
            n.iter().filter_map(|n| n["id"].as_u64()).collect()
        });
        assert_eq!(ids, [10, 20, 30]);
        assert_eq!(lines[3]["event"], "deliver");
        assert_eq!(lines[3]["id"], 5);
        assert_eq!(lines[3]["peer"], 20);
        assert_eq!(lines[3]["clock"], serde_json::json!([3, 5, 2]));
        assert_eq!(lines[4]["event"], "receive");
        assert_eq!(lines[4]["clock"], serde_json::json!([4, 5, 2]));
        assert!(lines[4].get("id").is_none());
    }

    #[test]
    fn a_restart_continues_the_file_and_its_clock_and_cuts_a_half_written_line() {
        let file = file("restart.trace", MAX_BYTES_DEFAULT);
        let mut a = open(&file, 10);
        a.send(NodeId(20), ACCEPT, state());
        a.flush();
        drop(a);
        let mut text = std::fs::read(&file.path).unwrap_or_default();
        text.extend_from_slice(b"{\"time\":12,\"node\"");
        std::fs::write(&file.path, &text).unwrap_or_else(|e| panic!("{e}"));
        let mut a = open(&file, 10);
        assert!(a.restarted);
        a.local(Event::new(0, 10, "restart"), None);
        a.send(NodeId(20), ACCEPT, state());
        assert_eq!(
            a.next_stamp().map(|(id, _)| id),
            Some(3),
            "ids go on after a restart"
        );
        a.flush();
        let lines = lines(&file);
        assert_eq!(lines.len(), 4, "the header, a send, the restart, a send");
        assert_eq!(lines[2]["clock"], serde_json::json!([2, 0, 0]));
        // Another member's file is refused.
        let refused = Tracer::open(&file, NodeId(20), CLUSTER, &nodes());
        assert!(refused.is_err_and(|e| e.contains("another trace")));
        let refused = Tracer::open(&file, NodeId(10), 0xc2, &nodes());
        assert!(refused.is_err());
    }

    #[test]
    fn a_full_file_ends_with_a_stop_line_and_stays_full() {
        let file = file("full.trace", 4096);
        let mut a = open(&file, 10);
        for _ in 0..100 {
            a.send(NodeId(20), ACCEPT, state());
            a.flush();
        }
        let sent = std::iter::from_fn(|| a.stamps.pop_front()).collect::<Vec<_>>();
        assert!(sent.iter().any(Option::is_none), "unstamped once full");
        assert!(sent[0].is_some());
        let size = std::fs::metadata(&file.path).map_or(0, |m| m.len());
        assert!(size <= 4096, "{size} bytes");
        let written = lines(&file);
        let last = written.last().cloned().unwrap_or_default();
        assert!(
            last["stop"].as_str().is_some_and(|s| s.contains("4096")),
            "{last}"
        );
        drop(a);
        let mut a = open(&file, 10);
        a.send(NodeId(20), ACCEPT, state());
        a.flush();
        assert!(a.next_stamp().is_none());
        assert_eq!(lines(&file).len(), written.len(), "nothing more");
    }
}
