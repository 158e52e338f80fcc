//! The built-in stories: runs chosen to show one idea each, with chapters that point at
//! the moments that matter. Chapters are found in the trace itself (the first `chosen`,
//! the `nack` that fences a zombie), never written down as times, so a story stays true
//! when the simulator changes; and a story whose moment is missing is refused, which the
//! tests would see.

use clap::ValueEnum;
use paxos::synod::Timing;
use paxos::QuorumSpec;
use sim::cluster::{FaultRates, Options};
use sim::network::Faults;
use sim::synod::Run as SynodRun;
use sim::trace::{Event, Fault, Trace};

use super::page::{Chapter, Run};

/// A built-in story.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Story {
    /// Seed 000: five acceptors; t1 accepted by A1, A2; t2 by A3, A4; t3 by A2, A3, A4,
    /// where a majority first appears.
    Seed000,
    /// Two proposers preempt each other's ballots until randomized backoff lets one
    /// finish both phases.
    Duelling,
    /// Six acceptors in a 2×3 grid: phase 1 by a row, phase 2 by a column.
    Grid,
    /// A paused leader comes back believing it still leads; a higher ballot fences it.
    Zombie,
    /// A follower serves a linearizable read: the leader confirms it still leads, then
    /// the follower waits to apply up to the leader's commit point.
    ReadIndex,
    /// A spare machine joins and a member leaves, each change chosen in the log and
    /// followed by phase 1 in the new configuration.
    Membership,
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
            Story::Duelling => duelling(),
            Story::Grid => grid(),
            Story::Zombie => zombie(),
            Story::ReadIndex => read_index(),
            Story::Membership => membership(),
        }
    }
}

/// Chapters in the making: each found from the one before, so they come in order.
struct Chapters<'a> {
    trace: &'a Trace,
    story: &'static str,
    list: Vec<Chapter>,
}

impl<'a> Chapters<'a> {
    fn new(trace: &'a Trace, story: &'static str) -> Self {
        Chapters {
            trace,
            story,
            list: Vec::new(),
        }
    }

    /// The index of the first event from `from` on that `matches`; the story is refused
    /// without it.
    fn find(
        &self,
        from: usize,
        what: &str,
        matches: impl Fn(&Event) -> bool,
    ) -> Result<usize, String> {
        self.trace.events[from.min(self.trace.events.len())..]
            .iter()
            .position(matches)
            .map(|i| i + from)
            .ok_or_else(|| format!("the {} story has lost its moment: {what}", self.story))
    }

    /// A chapter at a moment no single event stands for (a fault starting).
    fn add(&mut self, time: u64, text: String) {
        self.list.push(Chapter {
            time,
            text,
            event: None,
        });
    }

    /// A chapter about event `i`: opening it selects the event.
    fn add_event(&mut self, i: usize, text: String) {
        let time = self.trace.events[i].time;
        self.list.push(Chapter {
            time,
            text,
            event: Some(i),
        });
    }

    /// Finds the first event from `from` on that `matches` and makes it a chapter saying
    /// `text` of it; returns its index.
    fn chapter(
        &mut self,
        from: usize,
        what: &str,
        matches: impl Fn(&Event) -> bool,
        text: impl FnOnce(&Event) -> String,
    ) -> Result<usize, String> {
        let i = self.find(from, what, matches)?;
        let text = text(self.event(i));
        self.add_event(i, text);
        Ok(i)
    }

    fn event(&self, i: usize) -> &'a Event {
        &self.trace.events[i]
    }
}

fn promised(event: &Event) -> String {
    readable(
        event
            .state
            .as_ref()
            .and_then(|s| s.promised.as_deref())
            .unwrap_or("?"),
    )
}

/// A ballot as the page shows it: `round.node`, and `epoch:round.node` once a
/// configuration change has put an epoch in the round's upper 32 bits.
fn readable(ballot: &str) -> String {
    let Some((round, node)) = ballot.split_once('.') else {
        return ballot.to_string();
    };
    match round.parse::<u64>() {
        Ok(round) if round >> 32 > 0 => format!("{}:{}.{node}", round >> 32, round & 0xffff_ffff),
        _ => ballot.to_string(),
    }
}

fn role(event: &Event) -> &str {
    event.state.as_ref().map_or("down", |s| s.role.as_str())
}

fn story(title: &str, trace: Trace, chapters: Vec<Chapter>, grid: Option<(usize, usize)>) -> Run {
    Run {
        title: title.to_string(),
        trace,
        chapters,
        grid,
    }
}

/// An event's detail, or `otherwise`.
fn detail<'e>(event: &'e Event, otherwise: &'e str) -> &'e str {
    event.detail.as_deref().unwrap_or(otherwise)
}

/// The ballot an event carries, readable.
fn carried(event: &Event) -> String {
    readable(event.ballot.as_deref().unwrap_or("?"))
}

fn is_message(event: &Event, what: &str, kind: &str) -> bool {
    event.what == what && event.message.as_deref() == Some(kind)
}

fn seed000() -> Result<Run, String> {
    let (_, trace) = sim::seed000::replay_with_trace()?;
    let name = |id: u64| trace.name(id);
    let mut c = Chapters::new(&trace, "seed000");
    for (proposer, round) in [(101, "t1"), (102, "t2"), (103, "t3")] {
        c.chapter(
            0,
            "a proposal",
            |e| e.node == proposer && e.what == "propose",
            |e| {
                let value = detail(e, "a value");
                format!(
                    "{round}: {} proposes {value} at ballot {}",
                    name(proposer),
                    promised(e)
                )
            },
        )?;
    }
    let chosen = c.chapter(
        0,
        "the chosen moment",
        |e| e.what == "chosen",
        |e| format!("★ chosen: {}; no node knows it yet", detail(e, "")),
    )?;
    c.chapter(
        chosen,
        "a learner learning",
        |e| e.what == "learn",
        |e| format!("{} learns {}", name(e.node), detail(e, "the value")),
    )?;
    let chapters = c.list;
    Ok(story(
        "Seed 000: five acceptors, three proposers, one value chosen",
        trace,
        chapters,
        None,
    ))
}

fn duelling() -> Result<Run, String> {
    let options = sim::synod::Options {
        acceptors: 3,
        proposers: 2,
        learners: 2,
        quorum: QuorumSpec::Majority,
        faults: Faults {
            loss: 0.0,
            duplication: 0.0,
            delay_ticks_min: 1,
            delay_ticks_max: 6,
        },
        seed: 0,
        timing: Timing::default(),
        ticks_max: 2_000,
    };
    let (_, _, trace) = SynodRun::simulate_with_trace(&options)?;
    let name = |id: u64| trace.name(id);
    let mut c = Chapters::new(&trace, "duelling");
    c.add(
        0,
        "P1 and P2 propose at once, each at round 1 of its own ballot".into(),
    );
    let mut from = 0;
    for _ in 0..3 {
        let retry = c.find(from, "a retry", |e| e.what == "retry")?;
        let retrier = c.event(retry).node;
        // What made it retry: the last refusal it received before.
        let refused = trace.events[..retry]
            .iter()
            .rposition(|e| e.node == retrier && is_message(e, "deliver", "nack"))
            .ok_or("the duelling story has lost its moment: a nack before a retry")?;
        let nack = c.event(refused);
        let text = format!(
            "{} refuses {}'s ballot {} (nack): it promised a higher one. {} steps down and backs off",
            name(nack.peer.unwrap_or_default()),
            name(retrier),
            carried(nack),
            name(retrier)
        );
        c.add_event(refused, text);
        c.chapter(
            retry,
            "the retry",
            |e| e.what == "retry",
            |e| format!("{} retries at ballot {}", name(e.node), promised(e)),
        )?;
        from = retry + 1;
    }
    let chosen = c.chapter(
        0,
        "the chosen moment",
        |e| e.what == "chosen",
        |e| format!("★ chosen at {}: {}", carried(e), detail(e, "")),
    )?;
    c.chapter(
        chosen,
        "the loser learning",
        |e| e.what == "learn" && e.node == 102,
        |e| {
            let value = detail(e, "");
            format!(
                "{} finishes its own round and learns {value}: what was chosen stays chosen",
                name(e.node)
            )
        },
    )?;
    let mut chapters = c.list;
    chapters.sort_by_key(|c| c.time);
    Ok(story(
        "Duelling proposers: preemption and randomized backoff",
        trace,
        chapters,
        None,
    ))
}

/// A quiet cluster: no loss, no faults unless the story asks for them.
fn quiet(nodes: u64, seed: u64, duration_ticks: u64) -> Options {
    Options {
        nodes,
        clients: 2,
        duration_ticks,
        liveness_ticks: 200,
        seed,
        faults: FaultRates {
            loss: 0.0,
            duplication: 0.0,
            partition: 0.0,
            crash: 0.0,
            pause: 0.0,
            slow_disk: 0.0,
            membership: 0.0,
            ..FaultRates::default()
        },
        trace: true,
        ..Options::default()
    }
}

fn cluster(options: Options) -> Result<Trace, String> {
    let report = sim::cluster::run(options)?;
    report
        .trace
        .ok_or_else(|| "the run recorded no trace".to_string())
}

fn grid() -> Result<Run, String> {
    let mut options = quiet(6, 1, 80);
    options.quorum = "grid:2x3"
        .parse()
        .map_err(|e: paxos::QuorumError| e.to_string())?;
    let trace = cluster(options)?;
    let name = |id: u64| trace.name(id);
    let mut c = Chapters::new(&trace, "grid");
    let prepare = c.chapter(
        0,
        "a campaign",
        |e| is_message(e, "send", "prepare"),
        |e| {
            format!(
                "{} campaigns at ballot {}: phase 1 needs a full row of the grid",
                name(e.node),
                carried(e)
            )
        },
    )?;
    let elected = c.chapter(
        prepare,
        "an election",
        |e| e.what == "elected",
        |e| {
            format!(
                "{} has promises from a whole row: it leads (see the grid)",
                name(e.node)
            )
        },
    )?;
    c.chapter(
        elected,
        "a chosen slot",
        |e| e.what == "chosen",
        |e| {
            let slot = e.slot.unwrap_or_default();
            format!(
                "★ slot {slot} chosen: a whole column voted for it at {}; two acceptors of six",
                carried(e)
            )
        },
    )?;
    let chapters = c.list;
    Ok(story(
        "Grid quorums: six acceptors in two rows of three",
        trace,
        chapters,
        Some((2, 3)),
    ))
}

/// The first pause of a node that led when it stopped and lost the lead while away.
fn zombie_pause(trace: &Trace) -> Option<&Fault> {
    trace.faults.iter().find(|f| {
        let (Some(&node), Some(end)) = (f.nodes.first(), f.end) else {
            return false;
        };
        let elected = |e: &&Event| e.what == "elected";
        let leader = trace
            .events
            .iter()
            .filter(elected)
            .take_while(|e| e.time < f.start)
            .last();
        let usurper = trace
            .events
            .iter()
            .filter(elected)
            .any(|e| e.node != node && (f.start..end).contains(&e.time));
        f.kind == "pause" && leader.is_some_and(|e| e.node == node) && usurper
    })
}

fn zombie() -> Result<Run, String> {
    let mut options = quiet(3, 24, 100);
    options.faults.pause = 0.004;
    let trace = cluster(options)?;
    let name = |id: u64| trace.name(id);
    let pause = zombie_pause(&trace)
        .ok_or("the zombie story has lost its moment: a leader paused and replaced")?;
    let (zombie, end) = (pause.nodes[0], pause.end.unwrap_or_default());
    let mut c = Chapters::new(&trace, "zombie");
    let elected = c.chapter(
        0,
        "the first leader",
        |e| e.what == "elected" && e.node == zombie,
        |e| format!("{} leads at ballot {}", name(zombie), promised(e)),
    )?;
    c.add(
        pause.start,
        format!(
            "{} pauses (a long GC, a stalled VM): it stops, and so do its heartbeats",
            name(zombie)
        ),
    );
    let usurper = c.chapter(
        elected + 1,
        "a new leader",
        |e| e.what == "elected" && e.node != zombie,
        |e| {
            format!(
                "{} times out, campaigns and leads at the higher ballot {}",
                name(e.node),
                promised(e)
            )
        },
    )?;
    let resumed = c.chapter(
        usurper,
        "the resume",
        |e| e.node == zombie && e.time >= end,
        |e| {
            let old = promised(e);
            format!(
                "{} resumes still believing it leads at {old}, and sends what it had queued",
                name(zombie)
            )
        },
    )?;
    c.chapter(resumed, "the fence", |e| is_message(e, "send", "nack") && e.peer == Some(zombie), |e| {
        let higher = carried(e);
        format!("{} refuses the old ballot: nack carrying {higher}; the zombie's writes cannot be chosen", name(e.node))
    })?;
    c.chapter(
        resumed,
        "the step-down",
        |e| e.node == zombie && role(e) == "follower",
        |e| format!("{} learns of {} and follows", name(zombie), promised(e)),
    )?;
    let mut chapters = c.list;
    chapters.sort_by_key(|c| c.time);
    Ok(story(
        "A zombie leader fenced by a higher ballot",
        trace,
        chapters,
        None,
    ))
}

fn read_index() -> Result<Run, String> {
    let trace = cluster(quiet(3, 1, 60))?;
    let name = |id: u64| trace.name(id);
    let mut c = Chapters::new(&trace, "read-index");
    let lost = |what: &str| format!("the read-index story has lost its moment: {what}");
    let ready = c.find(0, "a follower's read", |e| {
        e.what == "read-ready" && role(e) == "follower"
    })?;
    let r = c.event(ready);
    let follower = r.node;
    // Back along the chain that released the read: the reply it waited for, the leader's
    // send of it, the question that reply answers, the follower's send of that.
    let before = |end: usize, matches: &dyn Fn(&Event) -> bool| {
        trace.events[..end].iter().rposition(matches)
    };
    let answered = before(ready, &|e| {
        e.node == follower && is_message(e, "deliver", "read-index-reply")
    })
    .ok_or_else(|| lost("the reply"))?;
    let reply_id = c.event(answered).id;
    let replied = before(answered, &|e| e.what == "send" && e.id == reply_id)
        .ok_or_else(|| lost("the reply's send"))?;
    let leader = c.event(replied).node;
    let asked = before(replied, &|e| {
        e.node == leader && is_message(e, "deliver", "read-index") && e.peer == Some(follower)
    })
    .ok_or_else(|| lost("the question"))?;
    let question_id = c.event(asked).id;
    let sent = before(asked, &|e| e.what == "send" && e.id == question_id)
        .ok_or_else(|| lost("the question's send"))?;
    let client = detail(r, "")
        .strip_prefix("client ")
        .and_then(|n| n.parse::<u64>().ok());
    let op = trace.ops.iter().find(|o| {
        Some(o.client) == client && o.call <= r.time && o.ret.is_none_or(|t| t >= r.time)
    });
    if let Some(op) = op {
        let text = format!(
            "client {} sends a linearizable get of {} to {}",
            op.client,
            op.key,
            name(follower)
        );
        c.add(op.call, text);
    }
    let asking = format!(
        "{} holds a read from {}; it asks the leader {} for its commit point (read-index)",
        name(follower),
        detail(r, "a client"),
        name(leader)
    );
    c.add_event(sent, asking);
    c.add_event(asked, format!("{} must first make sure it still leads: a newer leader could have chosen writes it has not seen", name(leader)));
    if let Some(beat) = trace.events[asked..replied]
        .iter()
        .position(|e| e.node == leader && is_message(e, "send", "heartbeat"))
    {
        c.add_event(
            asked + beat,
            "a heartbeat round: acknowledgements from a quorum confirm its ballot".into(),
        );
    }
    let commit = c
        .event(replied)
        .state
        .as_ref()
        .and_then(|s| s.commit)
        .unwrap_or_default();
    c.add_event(
        replied,
        format!("{} answers with its commit point, {commit}", name(leader)),
    );
    c.add_event(
        answered,
        format!(
            "{} waits until it has applied through that point",
            name(follower)
        ),
    );
    c.add_event(
        ready,
        format!(
            "{} serves the read from its own state: linearizable, and the leader served no data",
            name(follower)
        ),
    );
    let mut chapters = c.list;
    chapters.sort_by_key(|c| c.time);
    Ok(story(
        "A linearizable read on a follower (read index)",
        trace,
        chapters,
        None,
    ))
}

fn membership() -> Result<Run, String> {
    let mut options = quiet(3, 3, 300);
    options.spares = 1;
    options.faults.membership = 0.01;
    let trace = cluster(options)?;
    let name = |id: u64| trace.name(id);
    let mut c = Chapters::new(&trace, "membership");
    let mut from = 0;
    for _ in 0..2 {
        let change = c.chapter(
            from,
            "a configuration change",
            |e| e.what == "reconfigure",
            |e| {
                format!(
                    "{} proposes a new configuration; it takes effect once chosen in the log",
                    name(e.node)
                )
            },
        )?;
        let elected = c.chapter(
            change,
            "phase 1 in the new configuration",
            |e| e.what == "elected",
            |e| {
                format!(
                    "{} runs phase 1 again under the new configuration's quorums (ballot {})",
                    name(e.node),
                    promised(e)
                )
            },
        )?;
        from = elected + 1;
    }
    // The spare is node 4 (after the three members); both moments are told if they happen.
    let _ = c.chapter(
        0,
        "the spare's first message",
        |e| e.node == 4,
        |_| {
            format!(
                "{} (the spare) hears from the cluster: it catches up as a member",
                name(4)
            )
        },
    );
    let _ = c.chapter(
        0,
        "a removal",
        |e| e.what == "removed",
        |e| format!("{} learns it was removed and stops serving", name(e.node)),
    );
    let mut chapters = c.list;
    chapters.sort_by_key(|c| c.time);
    Ok(story(
        "Membership changes: a spare joins, a member leaves",
        trace,
        chapters,
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballots_read_with_their_epoch() {
        assert_eq!(readable("1.3"), "1.3");
        assert_eq!(readable("4294967297.1"), "1:1.1");
        assert_eq!(readable("8589934593.3"), "2:1.3");
        assert_eq!(readable("?"), "?");
    }

    /// Every story finds all its moments in today's simulator.
    #[test]
    fn every_story_plays() {
        for story in Story::value_variants() {
            let run = story.play().unwrap_or_else(|e| panic!("{story:?}: {e}"));
            assert!(run.chapters.len() >= 3, "{story:?}");
            assert!(
                run.chapters.windows(2).all(|w| w[0].time <= w[1].time),
                "{story:?}"
            );
        }
    }
}
