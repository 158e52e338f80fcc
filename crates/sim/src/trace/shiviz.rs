//! Export to ShiViz (<https://bestchai.bitbucket.io/shiviz/>), which draws happened-before
//! from logs: the file starts with the regular expression that parses it (ShiViz's
//! default) and a blank line, then two lines per event: a description, then the host and
//! its vector clock as JSON of host → count (zero entries left out, as ShiViz's own
//! loggers write them).

use std::fmt::Write as _;

use super::{Event, Trace};

/// ShiViz's default parser: a description line, then `host {clock}`.
pub const SHIVIZ_REGEX: &str = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})";

/// The trace's events in ShiViz's log format.
pub fn shiviz(trace: &Trace) -> String {
    let names: Vec<String> = trace
        .header
        .nodes
        .iter()
        .map(|(_, name)| host(name))
        .collect();
    let mut text = format!("{SHIVIZ_REGEX}\n\n");
    for event in &trace.events {
        let _ = writeln!(text, "{}", describe(trace, event));
        let entries: Vec<String> = names
            .iter()
            .zip(&event.clock)
            .filter(|(_, &count)| count > 0)
            .map(|(name, count)| format!("{}:{count}", serde_json::Value::from(name.as_str())))
            .collect();
        let _ = writeln!(
            text,
            "{} {{{}}}",
            host(&trace.name(event.node)),
            entries.join(", ")
        );
    }
    text
}

/// A host name ShiViz's `\S*` takes whole.
fn host(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join("_")
}

/// One line: the event in words, with the message id that pairs sends and deliveries.
fn describe(trace: &Trace, event: &Event) -> String {
    let mut text = format!("t={} {}", event.time, event.what);
    if let Some(message) = &event.message {
        let _ = write!(text, " {message}");
    }
    if let Some(ballot) = &event.ballot {
        let _ = write!(text, " ({ballot})");
    }
    if let Some(slot) = event.slot {
        let _ = write!(text, " slot {slot}");
    }
    if let Some(peer) = event.peer {
        let arrow = if event.what == "deliver" {
            "from"
        } else {
            "to"
        };
        let _ = write!(text, " {arrow} {}", trace.name(peer));
    }
    if let Some(id) = event.id {
        let _ = write!(text, " #{id}");
    }
    if let Some(detail) = &event.detail {
        let _ = write!(text, ": {detail}");
    }
    text.replace('\n', " ")
}
