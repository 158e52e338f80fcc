//! The trace format's lines, shared by everything that records one: the simulator (which
//! sees every node and keeps one trace) and a real member (`synod serve --trace-file`,
//! which writes its own events, to be merged with the other members' files). The format
//! (`docs/SIMULATOR.md`, "Trace format") is JSON lines under a versioned header; the
//! simulator's crate (`sim::trace`) reads traces back and merges members' files.
//!
//! What is here: the header, event, state and fault lines and how each is written; the
//! vector clocks' rules ([`Step`], [`Clocks`]); and what a member's events say about its
//! messages and state ([`describe`], [`state_of`]), so that the simulator and a real member
//! describe the same things the same way.

use std::collections::HashMap;
use std::fmt::Write as _;

use paxos::multi::{Command, Message, Replica, RoleKind, Slot};
use rand_core::RngCore;

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

/// What an event of a message says about it: its kind, its ballot, and the slot it
/// concerns (a batch's first).
pub fn describe<C>(message: &Message<C>) -> (&'static str, paxos::Ballot, Option<Slot>) {
    let slot = match message {
        Message::Prepare { from, .. } | Message::Promise { from, .. } => Some(*from),
        Message::Accept { first, .. } | Message::Accepted { first, .. } => Some(*first),
        Message::Chosen { first, .. } => Some(*first),
        Message::CatchUp { from, .. } => Some(*from),
        Message::Snapshot { index, .. } => Some(*index),
        _ => None,
    };
    (message.kind(), message.ballot(), slot)
}

/// The state of a member's replica as an event shows it, with its vote for `slot`.
pub fn state_of<C: Command, R: RngCore>(replica: &Replica<C, R>, slot: Option<Slot>) -> State {
    let role = match replica.role() {
        RoleKind::Leader => "leader",
        RoleKind::Candidate => "candidate",
        RoleKind::Follower => "follower",
    };
    State {
        role: role.into(),
        promised: Some(ballot(replica.promised())),
        vote: slot
            .and_then(|s| replica.entry(s))
            .map(|e| ballot(e.ballot)),
        commit: Some(replica.commit()),
        applied: Some(replica.applied()),
    }
}
