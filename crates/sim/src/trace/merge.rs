//! The members' files of a real cluster (`synod serve --trace-file`) merged into one
//! trace that [`super::read`] accepts.
//!
//! Each file holds one member's events in the order it recorded them, each message it
//! sent numbered by its own clock entry, each delivery naming the sender and that number.
//! Happened-before is then exact without synchronized clocks: a member's events in file
//! order, and each send before its deliveries. The merge writes the events in an order
//! that keeps both (a topological order), taking among the events free to go next the one
//! with the earliest local time (then the lowest node): wall clocks only break ties. The
//! merged `time` is microseconds since the earliest event of any file, made monotone: an
//! event whose member's clock says earlier than the event before it in the merged order
//! takes that event's time. Message ids are numbered anew, in the order of the sends;
//! members are numbered 1… in the order of their names (their ids are too large for a
//! browser's numbers), ballots and states with them. Every clock is recomputed, and checked against
//! the one the member recorded (on the nodes every file's header lists).

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::read::{object, parse_event, parse_header};
use super::{Event, Fault, Header, Recorder, Trace};

/// Why the files were refused: which file, which line (0: the file as a whole), what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeError {
    /// The file, as named to [`merge`].
    pub file: String,
    /// 1-based line number; 0 for the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.problem)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.problem)
        }
    }
}

impl std::error::Error for MergeError {}

/// The merged trace, with what was left out (a line a killed member left cut short).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// The trace.
    pub trace: Trace,
    /// Lines left out, as `file:line: why`.
    pub notes: Vec<String>,
}

/// One member's file, read.
struct Member {
    file: String,
    id: u64,
    cluster: String,
    header: Header,
    /// Events with their line numbers.
    events: Vec<(usize, Event)>,
}

fn refuse(file: &str, line: usize, problem: impl Into<String>) -> MergeError {
    MergeError {
        file: file.to_string(),
        line,
        problem: problem.into(),
    }
}

/// Reads one member's file.
fn member(file: &str, bytes: &[u8], notes: &mut Vec<String>) -> Result<Member, MergeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        refuse(file, line + 1, "not UTF-8 text")
    })?;
    let mut lines: Vec<&str> = text.split('\n').collect();
    if let Some(cut) = lines.pop().filter(|last| !last.is_empty()) {
        // What a member killed while writing leaves: the rest of its file stands.
        notes.push(format!(
            "{file}:{}: cut short ({} bytes without a newline: the member was killed while writing it), left out",
            lines.len() + 1,
            cut.len()
        ));
    }
    let Some(first) = lines.first() else {
        return Err(refuse(
            file,
            1,
            "empty: a member's trace starts with its header",
        ));
    };
    let header = parse_header(first).map_err(|problem| refuse(file, 1, problem))?;
    let fields = object(first).map_err(|problem| refuse(file, 1, problem))?;
    if header.source != "serve" {
        return Err(refuse(
            file,
            1,
            format!(
                "source {:?} is not a member's trace (\"serve\"): `synod trace merge` joins the files `synod serve --trace-file` writes",
                header.source
            ),
        ));
    }
    let id = fields
        .get("member")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| refuse(file, 1, "the header names no \"member\""))?;
    let cluster = fields
        .get("cluster")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| refuse(file, 1, "the header names no \"cluster\""))?
        .to_string();
    if !header.nodes.iter().any(|(n, _)| *n == id) {
        return Err(refuse(
            file,
            1,
            "the member is not among its header's nodes",
        ));
    }
    let mut events = Vec::new();
    let mut stopped = None;
    for (index, line) in lines.iter().enumerate().skip(1) {
        let number = index + 1;
        if let Some(stop) = stopped {
            return Err(refuse(
                file,
                number,
                format!("a line after the last one (line {stop} stopped the trace)"),
            ));
        }
        let fields = object(line).map_err(|problem| refuse(file, number, problem))?;
        if fields.contains_key("stop") {
            stopped = Some(number);
            continue;
        }
        if !fields.contains_key("event") {
            return Err(refuse(file, number, "not an event"));
        }
        let event = parse_event(&fields).map_err(|problem| refuse(file, number, problem))?;
        if event.node != id {
            return Err(refuse(
                file,
                number,
                format!("an event of node {} in the file of member {id}", event.node),
            ));
        }
        if event.clock.len() != header.nodes.len() {
            return Err(refuse(
                file,
                number,
                format!(
                    "the clock has {} entries, the header {} nodes",
                    event.clock.len(),
                    header.nodes.len()
                ),
            ));
        }
        if matches!(event.what.as_str(), "send" | "deliver" | "drop") && event.id.is_none() {
            return Err(refuse(
                file,
                number,
                format!("a {} event needs a message id", event.what),
            ));
        }
        if event.what == "deliver" && event.peer.is_none() {
            return Err(refuse(
                file,
                number,
                "a delivery names no sender (\"peer\")",
            ));
        }
        events.push((number, event));
    }
    Ok(Member {
        file: file.to_string(),
        id,
        cluster,
        header,
        events,
    })
}

/// Merges members' files (`name`, bytes), refusing inconsistent ones with the file, the
/// line and what is wrong: a line that is not the format, files of other clusters or two
/// of one member, headers that name a node differently, a message sent twice, a delivery
/// whose send is in no file, a clock other than happened-before gives. A last line cut
/// short (a member killed while writing it) is left out, with a note.
pub fn merge(files: &[(String, Vec<u8>)]) -> Result<Merged, MergeError> {
    let mut notes = Vec::new();
    let mut members = Vec::new();
    for (file, bytes) in files {
        members.push(member(file, bytes, &mut notes)?);
    }
    let Some(first) = members.first() else {
        return Err(refuse("(no file)", 0, "nothing to merge"));
    };
    // The same cluster, one file per member, one name per node.
    let mut names: HashMap<u64, (String, &str)> = HashMap::new();
    let mut seen = HashMap::new();
    for m in &members {
        if m.cluster != first.cluster {
            return Err(refuse(
                &m.file,
                1,
                format!(
                    "a member of cluster {}, {} is of cluster {}",
                    m.cluster, first.file, first.cluster
                ),
            ));
        }
        if let Some(other) = seen.insert(m.id, &m.file) {
            return Err(refuse(
                &m.file,
                1,
                format!("member {:x}'s trace, as {other} is", m.id),
            ));
        }
        for (id, name) in &m.header.nodes {
            match names.get(id) {
                Some((known, by)) if known != name => {
                    return Err(refuse(
                        &m.file,
                        1,
                        format!("node {id:x} is named {name:?} here, {known:?} in {by}"),
                    ));
                }
                Some(_) => {}
                None => {
                    names.insert(*id, (name.clone(), &m.file));
                }
            }
        }
    }
    // Nodes numbered 1… in the order of their names (then ids).
    let mut ids: Vec<u64> = names.keys().copied().collect();
    ids.sort_unstable_by(|a, b| (&names[a].0, a).cmp(&(&names[b].0, b)));
    let number: HashMap<u64, u64> = ids.iter().zip(1..).map(|(&id, n)| (id, n)).collect();
    let header = Header {
        source: "serve".into(),
        seed: 0,
        nodes: ids
            .iter()
            .map(|id| (number[id], names[id].0.clone()))
            .collect(),
    };
    // The nodes every header lists: their clock entries are exact everywhere.
    let common: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|id| {
            members
                .iter()
                .all(|m| m.header.nodes.iter().any(|(n, _)| n == id))
        })
        .collect();

    // Every send, by sender and number.
    let mut sends: HashSet<(u64, u64)> = HashSet::new();
    for m in &members {
        for (line, event) in &m.events {
            if event.what == "send" {
                let key = (m.id, event.id.unwrap_or_default());
                if !sends.insert(key) {
                    return Err(refuse(
                        &m.file,
                        *line,
                        format!("message {} is sent twice", key.1),
                    ));
                }
            }
        }
    }

    let base = (members.iter())
        .flat_map(|m| m.events.iter().map(|(_, e)| e.time))
        .min()
        .unwrap_or(0);
    let mut recorder = Recorder::new(header);
    let mut heads = vec![0usize; members.len()];
    // A message's number in the merged trace, once its send is written.
    let mut sent: HashMap<(u64, u64), u64> = HashMap::new();
    let mut time = 0;
    // Each member's last event's time: where a crash that a restart ends starts (its
    // `crash` event if it shut down; the moment a kill is not recorded).
    let mut last: Vec<Option<u64>> = vec![None; members.len()];
    let mut faults = Vec::new();
    loop {
        let mut next: Option<(u64, u64, usize)> = None;
        let mut waiting = None;
        for (index, m) in members.iter().enumerate() {
            let Some((line, event)) = m.events.get(heads[index]) else {
                continue;
            };
            let key = match event.what.as_str() {
                "deliver" => Some((event.peer.unwrap_or_default(), event.id.unwrap_or_default())),
                "drop" => Some((m.id, event.id.unwrap_or_default())),
                _ => None,
            };
            if let Some(key) = key {
                if !sends.contains(&key) {
                    let problem = if event.what == "drop" {
                        format!("a drop of message {}, which this member never sent", key.1)
                    } else {
                        format!(
                            "a delivery of message {} from {:x}, whose send is in no file",
                            key.1, key.0
                        )
                    };
                    return Err(refuse(&m.file, *line, problem));
                }
                if !sent.contains_key(&key) {
                    waiting.get_or_insert((index, *line, key));
                    continue;
                }
            }
            let candidate = (event.time, number[&m.id], index);
            if next.is_none() || next.is_some_and(|best| candidate < best) {
                next = Some(candidate);
            }
        }
        let Some((_, _, index)) = next else {
            return match waiting {
                None => break,
                Some((index, line, key)) => Err(refuse(
                    &members[index].file,
                    line,
                    format!(
                        "the files contradict each other: this event waits for the send of message {} from {:x}, which waits for it",
                        key.1, key.0
                    ),
                )),
            };
        };
        let m = &members[index];
        let (line, event) = &m.events[heads[index]];
        heads[index] += 1;
        time = time.max(event.time.saturating_sub(base));
        let mut merged = renumbered(event, time, &number);
        match event.what.as_str() {
            "send" => {
                let id = sent.len() as u64 + 1;
                sent.insert((m.id, event.id.unwrap_or_default()), id);
                merged.id = Some(id);
            }
            "deliver" => {
                merged.id = sent
                    .get(&(event.peer.unwrap_or_default(), event.id.unwrap_or_default()))
                    .copied();
            }
            "drop" => {
                merged.id = sent.get(&(m.id, event.id.unwrap_or_default())).copied();
            }
            "restart" => {
                if let Some(start) = last[index] {
                    faults.push(Fault {
                        kind: "crash".into(),
                        nodes: vec![number[&m.id]],
                        start,
                        end: Some(time),
                        detail: None,
                    });
                }
            }
            _ => {}
        }
        last[index] = Some(time);
        let at = recorder.record(merged);
        let recomputed = &recorder.events()[at].clock;
        for node in &common {
            let mine = m.header.nodes.iter().position(|(n, _)| n == node);
            let theirs = ids.iter().position(|n| n == node);
            let (Some(mine), Some(theirs)) = (mine, theirs) else {
                continue;
            };
            if event.clock.get(mine) != recomputed.get(theirs) {
                return Err(refuse(
                    &m.file,
                    *line,
                    format!(
                        "the clock recorded, {:?}, is not the one happened-before gives: node {node:x}'s entry is {} (the files' deliveries and sends do not match)",
                        event.clock,
                        recomputed.get(theirs).copied().unwrap_or_default()
                    ),
                ));
            }
        }
    }
    for fault in faults {
        recorder.fault_starts(fault);
    }
    let trace = recorder
        .finish(Vec::new())
        .map_err(|problem| refuse(&first.file, 0, problem))?;
    Ok(Merged { trace, notes })
}

/// `event` at merged `time`, its nodes numbered as the merged header numbers them.
fn renumbered(event: &Event, time: u64, number: &HashMap<u64, u64>) -> Event {
    let ballot = |text: &String| match text.split_once('.') {
        Some((round, node)) => match node.parse::<u64>().ok().and_then(|n| number.get(&n)) {
            Some(n) => format!("{round}.{n}"),
            None => text.clone(),
        },
        None => text.clone(),
    };
    let mut merged = event.clone();
    merged.time = time;
    merged.node = number.get(&event.node).copied().unwrap_or(event.node);
    merged.ballot = event.ballot.as_ref().map(ballot);
    if let Some(peer) = event.peer {
        match number.get(&peer) {
            Some(n) => merged.peer = Some(*n),
            None => {
                // A member that is no node of any header (the browser could not hold
                // its id as a number): named in words.
                merged.peer = None;
                merged.detail = Some(format!("peer {peer:x}"));
            }
        }
    }
    if let Some(state) = &mut merged.state {
        state.promised = state.promised.as_ref().map(ballot);
        state.vote = state.vote.as_ref().map(ballot);
    }
    merged.clock = Vec::new();
    merged
}
