//! The page: the trace turned into the compact model the embedded script draws, and the
//! HTML that holds the script, the style sheet and the model.

use std::collections::HashMap;

use serde_json::{json, Value};
use sim::history::{Input, Operation, Output};
use sim::trace::{Event, Fault, State, Trace};

/// The script and style sheet, built into the binary: the page needs no network.
const SCRIPT: &str = include_str!("explorer.js");
const STYLE: &str = include_str!("explorer.css");
const TEMPLATE: &str = include_str!("explorer.html");

/// One run shown on the page, with its title and, for a story, its chapters.
pub struct Run {
    /// Shown above its diagram.
    pub title: String,
    /// What was recorded.
    pub trace: Trace,
    /// A story's chapters: a moment and what to look at then.
    pub chapters: Vec<Chapter>,
    /// For a grid quorum system, its rows and columns: the page draws the grid.
    pub grid: Option<(usize, usize)>,
}

/// A moment of a story and its words.
pub struct Chapter {
    /// The trace's time the chapter points at.
    pub time: u64,
    /// What happens then.
    pub text: String,
    /// The event the chapter is about (the page selects it), if one is.
    pub event: Option<usize>,
}

/// The whole HTML page for `runs` (one, or two side by side).
pub fn html(title: &str, runs: &[Run]) -> String {
    let model = Value::Array(runs.iter().map(model).collect());
    fill(&[
        ("{{TITLE}}", &escape_html(title)),
        ("{{STYLE}}", STYLE),
        ("{{MODEL}}", &script_safe(&model.to_string())),
        ("{{SCRIPT}}", SCRIPT),
    ])
}

/// The template with each marker replaced, in the order they appear in it: what goes in
/// (a trace's words) is never searched for markers itself.
fn fill(values: &[(&str, &str)]) -> String {
    let mut page =
        String::with_capacity(TEMPLATE.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = TEMPLATE;
    for (marker, value) in values {
        if let Some((before, after)) = rest.split_once(marker) {
            page.push_str(before);
            page.push_str(value);
            rest = after;
        }
    }
    page.push_str(rest);
    page
}

/// Text for an HTML element's content.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// JSON that cannot end the `<script>` element holding it: `<` only occurs inside JSON
/// strings, where `\u003c` means the same.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// Strings written once and referred to by index (kinds, ballots, roles recur thousands of
/// times in a long run).
#[derive(Default)]
struct Strings {
    index: HashMap<String, i64>,
    list: Vec<String>,
}

impl Strings {
    fn of(&mut self, text: Option<&str>) -> i64 {
        let Some(text) = text else { return -1 };
        if let Some(&i) = self.index.get(text) {
            return i;
        }
        let i = i64::try_from(self.list.len()).unwrap_or(i64::MAX);
        self.index.insert(text.to_string(), i);
        self.list.push(text.to_string());
        i
    }
}

/// The events, column by column (a number per event and field; -1 for none), each node
/// state written once.
#[derive(Default)]
struct Columns {
    time: Vec<u64>,
    node: Vec<i64>,
    what: Vec<i64>,
    id: Vec<i64>,
    message: Vec<i64>,
    ballot: Vec<i64>,
    slot: Vec<i64>,
    peer: Vec<i64>,
    detail: Vec<i64>,
    clock: Vec<u64>,
    state: Vec<i64>,
}

fn model(run: &Run) -> Value {
    let trace = &run.trace;
    let position: HashMap<u64, i64> = trace
        .header
        .nodes
        .iter()
        .zip(0..)
        .map(|((id, _), i)| (*id, i))
        .collect();
    let node = |id: Option<u64>| id.and_then(|id| position.get(&id).copied()).unwrap_or(-1);
    let number = |n: Option<u64>| n.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1);
    let mut strings = Strings::default();
    let mut states: Vec<[i64; 5]> = Vec::new();
    let mut state_index: HashMap<[i64; 5], i64> = HashMap::new();
    let mut columns = Columns::default();
    for event in &trace.events {
        let state = event.state.as_ref().map_or(-1, |state| {
            let row = state_row(state, &mut strings, number);
            *state_index.entry(row).or_insert_with(|| {
                states.push(row);
                i64::try_from(states.len() - 1).unwrap_or(-1)
            })
        });
        push_event(&mut columns, event, &mut strings, node, number, state);
    }
    let faults: Vec<Value> = trace.faults.iter().map(|f| fault(f, &position)).collect();
    json!({
        "title": run.title,
        "source": trace.header.source,
        "seed": trace.header.seed,
        "unit": if trace.header.source == "synod" { "tick" } else { "µs" },
        "nodes": trace.header.nodes.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
        "events": {
            "time": columns.time, "node": columns.node, "what": columns.what, "id": columns.id,
            "message": columns.message, "ballot": columns.ballot, "slot": columns.slot,
            "peer": columns.peer, "detail": columns.detail, "clock": columns.clock,
            "state": columns.state,
        },
        "states": states,
        "strings": strings.list,
        "faults": faults,
        "ops": trace.ops.iter().map(operation).collect::<Vec<_>>(),
        "grid": run.grid.map(|(rows, cols)| json!({"rows": rows, "cols": cols})),
        "chapters": run.chapters.iter().map(|c| json!({"time": c.time, "text": c.text, "event": c.event})).collect::<Vec<_>>(),
    })
}

fn state_row(
    state: &State,
    strings: &mut Strings,
    number: impl Fn(Option<u64>) -> i64,
) -> [i64; 5] {
    [
        strings.of(Some(&state.role)),
        strings.of(state.promised.as_deref()),
        strings.of(state.vote.as_deref()),
        number(state.commit),
        number(state.applied),
    ]
}

fn push_event(
    columns: &mut Columns,
    event: &Event,
    strings: &mut Strings,
    node: impl Fn(Option<u64>) -> i64,
    number: impl Fn(Option<u64>) -> i64,
    state: i64,
) {
    columns.time.push(event.time);
    columns.node.push(node(Some(event.node)));
    columns.what.push(strings.of(Some(&event.what)));
    columns.id.push(number(event.id));
    columns.message.push(strings.of(event.message.as_deref()));
    columns.ballot.push(strings.of(event.ballot.as_deref()));
    columns.slot.push(number(event.slot));
    columns.peer.push(node(event.peer));
    columns.detail.push(strings.of(event.detail.as_deref()));
    columns.clock.extend(&event.clock);
    columns.state.push(state);
}

fn fault(fault: &Fault, position: &HashMap<u64, i64>) -> Value {
    let nodes: Vec<i64> = fault
        .nodes
        .iter()
        .filter_map(|id| position.get(id).copied())
        .collect();
    json!({
        "kind": fault.kind, "nodes": nodes, "start": fault.start, "end": fault.end,
        "detail": fault.detail,
    })
}

/// A client operation: what it asked and what it was told, in words.
fn operation(op: &Operation) -> Value {
    let asked = match &op.input {
        Input::Get => format!("get {}", op.key),
        Input::Put(value) => format!("put {}={value}", op.key),
        Input::Delete => format!("delete {}", op.key),
        Input::Cas { expect, value } => format!(
            "cas {} {}→{value}",
            op.key,
            expect.as_deref().unwrap_or("(absent)")
        ),
    };
    let (told, outcome) = match &op.output {
        Output::Get(Some(value)) => (value.clone(), "ok"),
        Output::Get(None) => ("(absent)".to_string(), "ok"),
        Output::Done => ("ok".to_string(), "ok"),
        Output::Cas(true) => ("swapped".to_string(), "ok"),
        Output::Cas(false) => ("not swapped".to_string(), "failed"),
        Output::Unknown => ("no answer".to_string(), "unknown"),
    };
    json!({
        "client": op.client, "call": op.call, "ret": op.ret,
        "asked": asked, "told": told, "outcome": outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_cannot_close_its_script_element() {
        let mut trace = sim::trace::read(
            concat!(
                r#"{"format":"synod-trace","version":1,"source":"cluster","seed":1,"nodes":[{"id":1,"name":"</script><b>"}]}"#,
                "\n",
                r#"{"time":0,"node":1,"event":"elected","detail":"</script>","clock":[1]}"#,
                "\n"
            )
            .as_bytes(),
        )
        .unwrap();
        trace.events[0].detail = Some("<!-- </SCRIPT>".into());
        let page = html(
            "a <title>",
            &[Run {
                title: "t".into(),
                trace,
                chapters: Vec::new(),
                grid: None,
            }],
        );
        // Cut where the browser would end the element: what is left must be the whole model.
        let start = page.find("id=\"synod-runs\">").unwrap() + "id=\"synod-runs\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        let model: Value = serde_json::from_str(&page[start..end]).unwrap();
        assert_eq!(model[0]["nodes"][0]["name"], "</script><b>");
        assert_eq!(model[0]["strings"][1], "<!-- </SCRIPT>");
        assert!(page.contains("<title>Synod Explorer: a &lt;title&gt;</title>"));
    }

    #[test]
    fn columns_hold_every_event_and_states_are_shared() {
        let (_, trace) = sim::seed000::replay_with_trace().unwrap();
        let run = Run {
            title: "seed000".into(),
            trace: trace.clone(),
            chapters: Vec::new(),
            grid: None,
        };
        let model = model(&run);
        let events = trace.events.len();
        assert_eq!(model["events"]["time"].as_array().unwrap().len(), events);
        let width = trace.header.nodes.len();
        assert_eq!(
            model["events"]["clock"].as_array().unwrap().len(),
            events * width
        );
        let states = model["states"].as_array().unwrap().len();
        assert!(
            states > 0 && states < events,
            "{states} states for {events} events"
        );
        // Every event's state, looked up, is its own.
        let strings = model["strings"].as_array().unwrap();
        for (i, event) in trace.events.iter().enumerate() {
            let index = model["events"]["state"][i].as_i64().unwrap();
            match &event.state {
                None => assert_eq!(index, -1),
                Some(state) => {
                    let role = model["states"][usize::try_from(index).unwrap()][0]
                        .as_u64()
                        .unwrap();
                    assert_eq!(strings[usize::try_from(role).unwrap()], state.role.as_str());
                }
            }
        }
    }
}
