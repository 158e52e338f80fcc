//! Traces worth drawing: every event of a run with its vector clock and the state of its
//! node, every message with an id that pairs its send with its delivery, loss or
//! duplicate delivery, faults as intervals, and the client history. The file format
//! (`docs/SIMULATOR.md`, "Trace format") is JSON lines under a versioned header.
//!
//! # Layout
//! - this file: the format's types, the vector clocks and the [`Recorder`] that stamps
//!   events with them, and the writer.
//! - `read.rs`: the reader, which refuses a malformed, newer or inconsistent trace with the
//!   line and what is wrong, recomputing every clock.
//! - `shiviz.rs`: export to ShiViz's default log format.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::history::{self, Operation};

mod read;
mod shiviz;

pub use read::{read, ReadError};
pub use shiviz::{shiviz, SHIVIZ_REGEX};

/// The `format` field of every trace's header.
pub const FORMAT: &str = "synod-trace";
/// The format's version; a reader refuses newer ones.
pub const VERSION: u64 = 1;

/// A ballot as the trace writes it: `round.node`.
pub fn ballot(ballot: paxos::Ballot) -> String {
    format!("{}.{}", ballot.round, ballot.node.0)
}

/// The first line: what the trace is, and the nodes whose clocks it keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// What produced it: `cluster` (`synod sim`) or `synod` (`synod sim synod`).
    pub source: String,
    /// The run's seed.
    pub seed: u64,
    /// Every node that may appear, as id and display name; a vector clock has one entry
    /// per node, in this order.
    pub nodes: Vec<(u64, String)>,
}

/// A node's state as the explorer shows it, just after the event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// `leader`, `candidate`, `follower` (Multi-Paxos); `proposer`, `acceptor`,
    /// `learner` (single decree).
    pub role: String,
    /// The ballot promised (a proposer's: the ballot it runs), as `round.node`.
    pub promised: Option<String>,
    /// The vote this node holds for the event's slot: `ballot` or `ballot=value`.
    pub vote: Option<String>,
    /// Every slot through this one is chosen and known here.
    pub commit: Option<u64>,
    /// Every slot through this one is applied here.
    pub applied: Option<u64>,
}

/// One event at one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Virtual time (µs in a cluster run, ticks in a single-decree run).
    pub time: u64,
    /// The node's id.
    pub node: u64,
    /// What happened: `send`, `deliver`, `drop`, `chosen`, `crash`, …
    pub what: String,
    /// The message's id, for `send`, `deliver` and `drop`.
    pub id: Option<u64>,
    /// The message's kind.
    pub message: Option<String>,
    /// The ballot the message or event carries, as `round.node`.
    pub ballot: Option<String>,
    /// The slot it concerns.
    pub slot: Option<u64>,
    /// The other node: the recipient of a send or drop, the sender of a delivery.
    pub peer: Option<u64>,
    /// Words for what the ids and numbers do not say (a value, a client).
    pub detail: Option<String>,
    /// The vector clock: one entry per node of the header, in its order.
    pub clock: Vec<u64>,
    /// The node's state after the event (none while it is down).
    pub state: Option<State>,
}

impl Event {
    /// An event with nothing but its time, node and kind.
    pub fn new(time: u64, node: u64, what: &str) -> Event {
        Event {
            time,
            node,
            what: what.to_string(),
            id: None,
            message: None,
            ballot: None,
            slot: None,
            peer: None,
            detail: None,
            clock: Vec::new(),
            state: None,
        }
    }
}

/// A fault, from its start to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// `crash`, `pause`, `partition` or `slow-disk`.
    pub kind: String,
    /// The nodes it affects.
    pub nodes: Vec<u64>,
    /// When it started.
    pub start: u64,
    /// When it ended (none: it lasted to the end of the run).
    pub end: Option<u64>,
    /// For a partition: the links cut, as `from>to`.
    pub detail: Option<String>,
}

/// A whole trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// The first line.
    pub header: Header,
    /// Events in the order they happened.
    pub events: Vec<Event>,
    /// Faults, in the order they started.
    pub faults: Vec<Fault>,
    /// The clients' operations (the linearizability history).
    pub ops: Vec<Operation>,
}

/// Whether an event sends, delivers, or happens locally: the vector clock's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A message leaves: increment the sender's own entry; the message carries the clock.
    Send(u64),
    /// A message arrives: the element-wise maximum with the message's clock, then
    /// increment the own entry. A duplicate is a second delivery of the same id.
    Deliver(u64),
    /// Anything else (a drop included): increment the own entry.
    Local,
}

impl Step {
    /// The rule an event follows.
    pub fn of(event: &Event) -> Result<Step, String> {
        let id = || {
            event
                .id
                .ok_or_else(|| format!("a {} event needs a message id", event.what))
        };
        Ok(match event.what.as_str() {
            "send" => Step::Send(id()?),
            "deliver" => Step::Deliver(id()?),
            "drop" => {
                id()?;
                Step::Local
            }
            _ => Step::Local,
        })
    }
}

/// Vector clocks of a run's nodes, and of the messages they sent.
#[derive(Clone, Debug, Default)]
pub struct Clocks {
    position: HashMap<u64, usize>,
    nodes: Vec<Vec<u64>>,
    messages: HashMap<u64, (u64, Vec<u64>)>,
}

impl Clocks {
    /// All zero, for `nodes` in this order.
    pub fn new(nodes: impl IntoIterator<Item = u64>) -> Clocks {
        let position: HashMap<u64, usize> =
            nodes.into_iter().enumerate().map(|(i, n)| (n, i)).collect();
        let width = position.len();
        Clocks {
            position,
            nodes: vec![vec![0; width]; width],
            messages: HashMap::new(),
        }
    }

    /// Applies `step` at `node`; returns the node's clock after it.
    pub fn step(&mut self, node: u64, step: Step) -> Result<Vec<u64>, String> {
        let &at = self
            .position
            .get(&node)
            .ok_or_else(|| format!("node {node} is not in the header"))?;
        let mut clock = self.nodes[at].clone();
        match step {
            Step::Send(id) => {
                if self.messages.contains_key(&id) {
                    return Err(format!("message {id} is sent twice"));
                }
                clock[at] += 1;
                self.messages.insert(id, (node, clock.clone()));
            }
            Step::Deliver(id) => {
                let (_, sent) = self
                    .messages
                    .get(&id)
                    .ok_or_else(|| format!("message {id} is delivered before it is sent"))?;
                for (mine, theirs) in clock.iter_mut().zip(sent) {
                    *mine = (*mine).max(*theirs);
                }
                clock[at] += 1;
            }
            Step::Local => clock[at] += 1,
        }
        self.nodes[at].clone_from(&clock);
        Ok(clock)
    }

    /// The sender of message `id`, if it was sent.
    pub fn sender(&self, id: u64) -> Option<u64> {
        self.messages.get(&id).map(|(node, _)| *node)
    }
}

/// Stamps events with their vector clocks as a run records them, and keeps the trace.
#[derive(Debug)]
pub struct Recorder {
    trace: Trace,
    clocks: Clocks,
    /// The first inconsistency (a delivery of a message never sent): a simulator bug.
    problem: Option<String>,
}

impl Recorder {
    /// An empty trace under `header`.
    pub fn new(header: Header) -> Recorder {
        let clocks = Clocks::new(header.nodes.iter().map(|(id, _)| *id));
        Recorder {
            trace: Trace {
                header,
                events: Vec::new(),
                faults: Vec::new(),
                ops: Vec::new(),
            },
            clocks,
            problem: None,
        }
    }

    /// Records `event`, stamped with its node's clock; returns its index.
    pub fn record(&mut self, mut event: Event) -> usize {
        match Step::of(&event).and_then(|step| self.clocks.step(event.node, step)) {
            Ok(clock) => event.clock = clock,
            Err(problem) => {
                self.problem
                    .get_or_insert(format!("at {}: {problem}", event.time));
            }
        }
        self.trace.events.push(event);
        self.trace.events.len() - 1
    }

    /// Replaces the state recorded with event `index` (a delivery's, once handled).
    pub fn set_state(&mut self, index: usize, state: Option<State>) {
        if let Some(event) = self.trace.events.get_mut(index) {
            event.state = state;
        }
    }

    /// A fault starts; returns its index, to end it.
    pub fn fault_starts(&mut self, fault: Fault) -> usize {
        self.trace.faults.push(fault);
        self.trace.faults.len() - 1
    }

    /// Fault `index` ends at `time` (if it has not already).
    pub fn fault_ends(&mut self, index: usize, time: u64) {
        if let Some(fault) = self.trace.faults.get_mut(index) {
            fault.end.get_or_insert(time);
        }
    }

    /// The events so far.
    pub fn events(&self) -> &[Event] {
        &self.trace.events
    }

    /// The trace, with the clients' history; refuses one whose clocks went wrong.
    pub fn finish(mut self, ops: Vec<Operation>) -> Result<Trace, String> {
        if let Some(problem) = self.problem {
            return Err(format!("the trace is inconsistent: {problem}"));
        }
        self.trace.ops = ops;
        Ok(self.trace)
    }
}

impl Trace {
    /// The whole file: the header, the events, the faults, the operations, a line each.
    pub fn to_jsonl(&self) -> String {
        let mut text = self.header.to_json();
        text.push('\n');
        for event in &self.events {
            text.push_str(&event.to_json());
            text.push('\n');
        }
        for fault in &self.faults {
            text.push_str(&fault.to_json());
            text.push('\n');
        }
        for op in &self.ops {
            let _ = writeln!(text, "{{\"op\":{}}}", history::to_line(op));
        }
        text
    }

    /// The display name of node `id`.
    pub fn name(&self, id: u64) -> String {
        self.header
            .nodes
            .iter()
            .find(|(n, _)| *n == id)
            .map_or_else(|| format!("n{id}"), |(_, name)| name.clone())
    }
}

/// A JSON object written field by field, in a fixed order.
struct Line(String);

impl Line {
    fn new() -> Line {
        Line(String::from("{"))
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        let _ = write!(self.0, "\"{key}\":");
    }

    fn number(&mut self, key: &str, value: u64) {
        self.key(key);
        let _ = write!(self.0, "{value}");
    }

    fn text(&mut self, key: &str, value: &str) {
        self.key(key);
        self.0.push_str(&quote(value));
    }

    fn some_number(&mut self, key: &str, value: Option<u64>) {
        if let Some(value) = value {
            self.number(key, value);
        }
    }

    fn some_text(&mut self, key: &str, value: Option<&String>) {
        if let Some(value) = value {
            self.text(key, value);
        }
    }

    fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.0.push_str(json);
    }

    fn end(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// `text` as a JSON string.
fn quote(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn numbers(values: &[u64]) -> String {
    let items: Vec<String> = values.iter().map(u64::to_string).collect();
    format!("[{}]", items.join(","))
}

impl Header {
    /// The header as its line.
    pub fn to_json(&self) -> String {
        let mut line = Line::new();
        line.text("format", FORMAT);
        line.number("version", VERSION);
        line.text("source", &self.source);
        line.number("seed", self.seed);
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|(id, name)| format!("{{\"id\":{id},\"name\":{}}}", quote(name)))
            .collect();
        line.raw("nodes", &format!("[{}]", nodes.join(",")));
        line.end()
    }
}

impl State {
    fn to_json(&self) -> String {
        let mut line = Line::new();
        line.text("role", &self.role);
        line.some_text("promised", self.promised.as_ref());
        line.some_text("vote", self.vote.as_ref());
        line.some_number("commit", self.commit);
        line.some_number("applied", self.applied);
        line.end()
    }
}

impl Event {
    /// The event as its line.
    pub fn to_json(&self) -> String {
        let mut line = Line::new();
        line.number("time", self.time);
        line.number("node", self.node);
        line.text("event", &self.what);
        line.some_number("id", self.id);
        line.some_text("message", self.message.as_ref());
        line.some_text("ballot", self.ballot.as_ref());
        line.some_number("slot", self.slot);
        line.some_number("peer", self.peer);
        line.some_text("detail", self.detail.as_ref());
        line.raw("clock", &numbers(&self.clock));
        if let Some(state) = &self.state {
            line.raw("state", &state.to_json());
        }
        line.end()
    }
}

impl Fault {
    /// The fault as its line.
    pub fn to_json(&self) -> String {
        let mut line = Line::new();
        line.text("fault", &self.kind);
        line.raw("nodes", &numbers(&self.nodes));
        line.number("start", self.start);
        match self.end {
            Some(end) => line.number("end", end),
            None => line.raw("end", "null"),
        }
        line.some_text("detail", self.detail.as_ref());
        line.end()
    }
}

#[cfg(test)]
mod tests;
