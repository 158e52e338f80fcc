//! Traces worth drawing: every event of a run with its vector clock and the state of its
//! node, every message with an id that pairs its send with its delivery, loss or
//! duplicate delivery, faults as intervals, and the client history. The file format
//! (`docs/SIMULATOR.md`, "Trace format") is JSON lines under a versioned header.
//!
//! # Layout
//! - this file: the whole [`Trace`] and the [`Recorder`] that stamps events with their
//!   vector clocks as a run records them. The lines themselves (header, event, state,
//!   fault) and the clocks' rules are `node::trace`'s, re-exported here: a real member
//!   writes the same lines.
//! - `read.rs`: the reader, which refuses a malformed, newer or inconsistent trace with the
//!   line and what is wrong, recomputing every clock.
//! - `shiviz.rs`: export to ShiViz's default log format.
//! - `merge.rs`: the members' files of a real cluster (`synod serve --trace-file`) merged
//!   into one trace, in an order the vector clocks allow.

use std::fmt::Write as _;

use crate::history::{self, Operation};

mod merge;
mod read;
mod shiviz;

pub use merge::{merge, MergeError, Merged};
pub use node::trace::{ballot, Clocks, Event, Fault, Header, State, Step, FORMAT, VERSION};
pub use read::{read, ReadError};
pub use shiviz::{shiviz, SHIVIZ_REGEX};

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

#[cfg(test)]
mod tests;
