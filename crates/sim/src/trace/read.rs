//! Reading a trace back: every line parsed and checked, the vector clocks recomputed from
//! the sends and deliveries, so a trace that reads is one the explorer can trust.

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value as Json};

use super::{Clocks, Event, Fault, Header, State, Step, Trace, FORMAT, VERSION};
use crate::history;

/// Why a trace was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

impl std::error::Error for ReadError {}

/// Reads a whole trace file. Refuses, naming the line: bytes that are not UTF-8, a line
/// cut short (the file must end with a newline), a line that is not the JSON the format
/// says, a header of another format or of a newer version, time going backwards, a
/// message delivered or dropped before it was sent, and any vector clock other than
/// the one its node's earlier events and the messages it received give.
pub fn read(bytes: &[u8]) -> Result<Trace, ReadError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        refuse(line, "not UTF-8 text")
    })?;
    let mut lines: Vec<&str> = text.split('\n').collect();
    match lines.pop() {
        Some("") => {}
        _ => {
            return Err(refuse(
                lines.len() + 1,
                "truncated: the line has no newline at its end",
            ))
        }
    }
    let Some((first, rest)) = lines.split_first() else {
        return Err(refuse(1, "empty: a trace starts with its header"));
    };
    let header = parse_header(first).map_err(|problem| refuse(1, problem))?;
    let mut reader = Reader::new(header);
    for (index, line) in rest.iter().enumerate() {
        reader
            .line(line)
            .map_err(|problem| refuse(index + 2, problem))?;
    }
    Ok(reader.trace)
}

fn refuse(line: usize, problem: impl Into<String>) -> ReadError {
    ReadError {
        line,
        problem: problem.into(),
    }
}

struct Reader {
    trace: Trace,
    clocks: Clocks,
    sent: HashSet<u64>,
}

impl Reader {
    fn new(header: Header) -> Reader {
        Reader {
            clocks: Clocks::new(header.nodes.iter().map(|(id, _)| *id)),
            trace: Trace {
                header,
                events: Vec::new(),
                faults: Vec::new(),
                ops: Vec::new(),
            },
            sent: HashSet::new(),
        }
    }

    fn line(&mut self, line: &str) -> Result<(), String> {
        let object = object(line)?;
        if object.contains_key("event") {
            let event = parse_event(&object)?;
            self.check(&event)?;
            self.trace.events.push(event);
        } else if object.contains_key("fault") {
            self.trace.faults.push(parse_fault(&object)?);
        } else if let Some(op) = object.get("op") {
            let mut ops = history::parse(&op.to_string()).map_err(|e| e.problem)?;
            self.trace.ops.append(&mut ops);
        } else {
            return Err("neither an event, a fault nor an op".into());
        }
        Ok(())
    }

    /// Time never goes backwards, and the clock is exactly what happened-before gives.
    fn check(&mut self, event: &Event) -> Result<(), String> {
        if let Some(last) = self.trace.events.last() {
            if event.time < last.time {
                return Err(format!(
                    "time goes backwards: {} after {}",
                    event.time, last.time
                ));
            }
        }
        let width = self.trace.header.nodes.len();
        if event.clock.len() != width {
            return Err(format!(
                "the clock has {} entries, the header {width} nodes",
                event.clock.len()
            ));
        }
        let step = Step::of(event)?;
        if event.what == "drop" {
            let id = event.id.unwrap_or_default();
            match self.clocks.sender(id) {
                Some(sender) if sender == event.node => {}
                Some(sender) => {
                    return Err(format!(
                        "message {id} is dropped at {}, sent by {sender}",
                        event.node
                    ))
                }
                None => return Err(format!("message {id} is dropped before it is sent")),
            }
            if !self.sent.insert(id) {
                return Err(format!("message {id} is dropped twice"));
            }
        }
        let expected = self.clocks.step(event.node, step)?;
        if expected != event.clock {
            return Err(format!(
                "the clock {:?} is not the one happened-before gives: {expected:?}",
                event.clock
            ));
        }
        Ok(())
    }
}

pub(super) fn object(line: &str) -> Result<Map<String, Json>, String> {
    match serde_json::from_str(line) {
        Ok(Json::Object(object)) => Ok(object),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("malformed or truncated JSON ({e})")),
    }
}

pub(super) fn parse_header(line: &str) -> Result<Header, String> {
    let object = object(line).map_err(|e| format!("not a trace header: {e}"))?;
    let format = text(&object, "format")?;
    if format != FORMAT {
        return Err(format!("format {format:?} is not {FORMAT:?}"));
    }
    let version = number(&object, "version")?;
    if version > VERSION {
        return Err(format!(
            "format version {version} is newer than this reader's {VERSION}: use a newer synod"
        ));
    }
    let mut nodes = Vec::new();
    let list = object
        .get("nodes")
        .and_then(Json::as_array)
        .ok_or("field \"nodes\" must be an array")?;
    for node in list {
        let node = node.as_object().ok_or("each node must be an object")?;
        let id = number(node, "id")?;
        if nodes.iter().any(|(n, _)| *n == id) {
            return Err(format!("node {id} is listed twice"));
        }
        nodes.push((id, text(node, "name")?));
    }
    Ok(Header {
        source: text(&object, "source")?,
        seed: number(&object, "seed")?,
        nodes,
    })
}

pub(super) fn parse_event(object: &Map<String, Json>) -> Result<Event, String> {
    let clock = numbers(object, "clock", "clock entries must be counts")?;
    let state = match object.get("state") {
        None => None,
        Some(state) => Some(parse_state(
            state
                .as_object()
                .ok_or("field \"state\" must be an object")?,
        )?),
    };
    Ok(Event {
        time: number(object, "time")?,
        node: number(object, "node")?,
        what: text(object, "event")?,
        id: some_number(object, "id")?,
        message: some_text(object, "message")?,
        ballot: some_text(object, "ballot")?,
        slot: some_number(object, "slot")?,
        peer: some_number(object, "peer")?,
        detail: some_text(object, "detail")?,
        clock,
        state,
    })
}

/// Field `field`, an array of non-negative integers; `each` says what an entry that is
/// not one is refused with.
fn numbers(
    object: &Map<String, Json>,
    field: &str,
    each: &'static str,
) -> Result<Vec<u64>, String> {
    object
        .get(field)
        .and_then(Json::as_array)
        .ok_or_else(|| format!("field \"{field}\" must be an array"))?
        .iter()
        .map(|n| n.as_u64().ok_or_else(|| each.to_string()))
        .collect()
}

fn parse_state(object: &Map<String, Json>) -> Result<State, String> {
    Ok(State {
        role: text(object, "role")?,
        promised: some_text(object, "promised")?,
        vote: some_text(object, "vote")?,
        commit: some_number(object, "commit")?,
        applied: some_number(object, "applied")?,
    })
}

fn parse_fault(object: &Map<String, Json>) -> Result<Fault, String> {
    let nodes = numbers(object, "nodes", "nodes must be ids")?;
    let fault = Fault {
        kind: text(object, "fault")?,
        nodes,
        start: number(object, "start")?,
        end: some_number(object, "end")?,
        detail: some_text(object, "detail")?,
    };
    if fault.end.is_some_and(|end| end < fault.start) {
        return Err(format!("the {} ends before it starts", fault.kind));
    }
    Ok(fault)
}

fn number(object: &Map<String, Json>, name: &str) -> Result<u64, String> {
    some_number(object, name)?.ok_or_else(|| format!("missing field {name:?}"))
}

fn text(object: &Map<String, Json>, name: &str) -> Result<String, String> {
    some_text(object, name)?.ok_or_else(|| format!("missing field {name:?}"))
}

fn some_number(object: &Map<String, Json>, name: &str) -> Result<Option<u64>, String> {
    match object.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("field {name:?} must be a count")),
    }
}

fn some_text(object: &Map<String, Json>, name: &str) -> Result<Option<String>, String> {
    match object.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(value) => value
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| format!("field {name:?} must be a string")),
    }
}
