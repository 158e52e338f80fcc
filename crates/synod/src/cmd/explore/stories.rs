//! The built-in stories: runs chosen to show one idea each, with chapters that point at
//! the moments that matter. Chapters are found in the trace itself (the first `chosen`,
//! the `nack` that fences a zombie), so a story stays true when the simulator changes;
//! the tests check each story still shows what it says.

use clap::ValueEnum;
use sim::trace::{Event, Trace};

use super::page::{Chapter, Run};

/// A built-in story.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Story {
    /// Seed 000: five acceptors; t1 accepted by A1, A2; t2 by A3, A4; t3 by A2, A3, A4,
    /// where a majority first appears.
    Seed000,
}

impl Story {
    /// The story's name, as on the command line.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_string())
    }

    /// Runs the story's simulation and finds its chapters.
    pub fn play(self) -> Result<Run, String> {
        match self {
            Story::Seed000 => seed000(),
        }
    }
}

/// The first event that `matches`, as a chapter saying `text`.
fn chapter(
    trace: &Trace,
    matches: impl Fn(&Event) -> bool,
    text: impl FnOnce(&Event) -> String,
) -> Option<Chapter> {
    trace.events.iter().find(|e| matches(e)).map(|e| Chapter {
        time: e.time,
        text: text(e),
    })
}

fn seed000() -> Result<Run, String> {
    let (_, trace) = sim::seed000::replay_with_trace()?;
    let name = |id: u64| trace.name(id);
    let mut chapters = Vec::new();
    for (proposer, round) in [(101, "t1"), (102, "t2"), (103, "t3")] {
        chapters.extend(chapter(
            &trace,
            |e| e.node == proposer && e.what == "propose",
            |e| {
                format!(
                    "{round}: {} proposes {} at ballot {}",
                    name(proposer),
                    e.detail.as_deref().unwrap_or("a value"),
                    e.state
                        .as_ref()
                        .and_then(|s| s.promised.as_deref())
                        .unwrap_or("?")
                )
            },
        ));
    }
    chapters.extend(chapter(
        &trace,
        |e| e.what == "chosen",
        |e| {
            format!(
                "★ chosen: {} — no node knows it yet",
                e.detail.as_deref().unwrap_or("")
            )
        },
    ));
    chapters.extend(chapter(
        &trace,
        |e| e.what == "learn",
        |e| {
            format!(
                "{} learns {}",
                name(e.node),
                e.detail.as_deref().unwrap_or("the value")
            )
        },
    ));
    chapters.sort_by_key(|c| c.time);
    Ok(Run {
        title: "Seed 000: five acceptors, three proposers, one value chosen".into(),
        trace,
        chapters,
    })
}
