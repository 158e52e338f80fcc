//! Seed 000's five-acceptor story, replayed on the real roles with scripted delivery.
//!
//! - t1 = (1.P1): P1's value "apple" is accepted by A1 and A2 only; no majority.
//! - t2 = (1.P2): P2 prepares A3, A4, A5, none of which accepted anything, so it proposes
//!   its own "banana"; A3 and A4 accept it; no majority.
//! - t3 = (1.P3): P3 prepares A2, A3, A4. They report apple at t1 and banana at t2; the
//!   highest is t2, so P3 proposes "banana" (P2c). A2, A3 and A4 accept: banana is chosen,
//!   and at that moment nobody knows it.
//! - Then: whichever majority a later proposer asks, it meets A2, A3 or A4, whose vote at
//!   t3 is the highest in existence, so every later proposal carries banana.

use paxos::synod::{Message, Node, Phase, Vote};
use paxos::{AcceptorSet, NodeId, QuorumSpec, QuorumSystem};

use crate::network::{Envelope, Faults};
use crate::synod::{Options, Run};
use crate::trace::Trace;

const P1: NodeId = NodeId(101);
const P2: NodeId = NodeId(102);
const P3: NodeId = NodeId(103);

fn a(n: u64) -> NodeId {
    NodeId(n)
}

/// Replays the story; returns its timeline.
pub fn replay() -> Result<String, String> {
    Ok(story(false)?.into_parts().0)
}

/// Replays the story; returns its timeline and its trace.
pub fn replay_with_trace() -> Result<(String, Trace), String> {
    let mut run = story(true)?;
    let trace = run.take_trace().ok_or("no trace was recorded")??;
    Ok((run.into_parts().0, trace))
}

fn story(trace: bool) -> Result<Run, String> {
    let options = Options {
        acceptors: 5,
        proposers: 3,
        learners: 1,
        quorum: QuorumSpec::Majority,
        faults: Faults::NONE,
        seed: 0,
        ..Options::default()
    };
    let mut run = Run::new(&options)?;
    if trace {
        run.start_trace(options.seed);
    }
    run.note("seed 000: five acceptors A1-A5, proposers P1-P3 (apple, banana, cherry), learner L1");
    run.note("messages are delivered or lost by hand, as the story needs\n");

    run.note("t1 = (1.P1): apple reaches only A1 and A2");
    ballot_round(&mut run, P1, &[1, 2, 3], &[1, 2]);
    run.note("\nt2 = (1.P2): P2 asks A3, A4, A5; banana reaches only A3 and A4");
    ballot_round(&mut run, P2, &[3, 4, 5], &[3, 4]);
    run.note("\nt3 = (1.P3): P3 asks A2, A3, A4, who report apple@t1 and banana@t2");
    run.propose(P3);
    prepare(&mut run, P3, &[2, 3, 4]);
    collect_promises(&mut run, P3);
    accept(&mut run, P3, &[2, 3, 4]);
    run.note("");
    explain_every_quorum(&mut run);
    run.note("");
    deliver(&mut run, |e| matches!(e.message, Message::Accepted { .. }));

    run.note("\nlater, P1 tries again; even a majority holding its own apple yields banana");
    while !matches!(proposer_phase(&run, P1), Some(Phase::Preparing { .. })) {
        run.advance();
        run.tick(P1);
    }
    prepare(&mut run, P1, &[1, 2, 5]);
    collect_promises(&mut run, P1);
    accept(&mut run, P1, &[1, 2, 3, 4, 5]);
    deliver(&mut run, |e| matches!(e.message, Message::Accepted { .. }));
    Ok(run)
}

/// Phase 1 with `promisers`, then phase 2 reaching only `acceptors`; replies delivered.
fn ballot_round(run: &mut Run, proposer: NodeId, promisers: &[u64], acceptors: &[u64]) {
    run.propose(proposer);
    prepare(run, proposer, promisers);
    collect_promises(run, proposer);
    accept(run, proposer, acceptors);
    deliver(run, |e| matches!(e.message, Message::Accepted { .. }));
}

fn prepare(run: &mut Run, proposer: NodeId, reached: &[u64]) {
    run.advance();
    let from = |e: &Envelope<Message<String>>| e.from == proposer;
    deliver_or_lose(run, from, reached);
}

fn collect_promises(run: &mut Run, proposer: NodeId) {
    run.advance();
    deliver(run, |e| e.to == proposer);
}

fn accept(run: &mut Run, proposer: NodeId, reached: &[u64]) {
    run.advance();
    let accepts = |e: &Envelope<Message<String>>| {
        e.from == proposer && matches!(e.message, Message::Accept { .. })
    };
    deliver_or_lose(run, accepts, reached);
}

/// Delivers the selected messages addressed to `reached` acceptors; loses the rest.
fn deliver_or_lose(
    run: &mut Run,
    select: impl Fn(&Envelope<Message<String>>) -> bool,
    reached: &[u64],
) {
    for envelope in run.network().take(select) {
        if reached.iter().any(|&n| envelope.to == a(n)) {
            run.deliver(envelope);
        } else {
            run.trace_lost(&envelope);
            let text = format!(
                "         ✗ lost: {} {} {}→{}",
                envelope.message.kind(),
                run.ballot(envelope.message.ballot()),
                run.name(envelope.from),
                run.name(envelope.to)
            );
            run.note(&text);
        }
    }
}

fn deliver(run: &mut Run, select: impl FnMut(&Envelope<Message<String>>) -> bool) {
    run.advance();
    for envelope in run.network().take(select) {
        run.deliver(envelope);
    }
}

fn proposer_phase(run: &Run, id: NodeId) -> Option<Phase<String>> {
    match run.node(id) {
        Some(Node::Proposer(p)) => Some(p.phase().clone()),
        _ => None,
    }
}

/// For every smallest phase-1 quorum: the votes its promises would report and the value
/// P2c would then force.
fn explain_every_quorum(run: &mut Run) {
    let acceptors = run.config().acceptors().to_vec();
    let quorum = *run.config().quorum();
    let votes: Vec<Option<Vote<String>>> = acceptors
        .iter()
        .map(|&id| match run.node(id) {
            Some(Node::Acceptor(acc)) => acc.state().accepted.clone(),
            _ => None,
        })
        .collect();
    let all = 1u64 << acceptors.len();
    let quorums: Vec<AcceptorSet> = (0..all)
        .map(AcceptorSet::from_bits)
        .filter(|&s| quorum.is_phase1_quorum(s))
        .collect();
    let smallest = quorums.iter().map(|s| s.len()).min().unwrap_or(0);
    run.note("why a later proposal can only carry banana: any phase-1 quorum a later proposer");
    run.note("asks reports these votes, and P2c makes it propose the highest one's value:");
    for set in quorums.into_iter().filter(|s| s.len() == smallest) {
        let names: Vec<String> = set.iter().map(|i| run.name(acceptors[i])).collect();
        let reported: Vec<&Vote<String>> = set.iter().filter_map(|i| votes[i].as_ref()).collect();
        let shown: Vec<String> = reported
            .iter()
            .map(|v| format!("{}={}", run.ballot(v.ballot), v.value))
            .collect();
        let forced = reported
            .iter()
            .max_by_key(|v| v.ballot)
            .map_or("its own value", |v| v.value.as_str());
        let line = format!(
            "    {:<12} reports {:<44} → {forced}",
            names.join(" "),
            shown.join(" ")
        );
        run.note(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banana_is_chosen_at_t3_and_every_later_proposal_carries_it() {
        let timeline = replay().unwrap();
        assert!(
            timeline.contains("CHOSEN \"banana\" at (1.P3): accepted by A2, A3, A4"),
            "{timeline}"
        );
        let forced: Vec<&str> = timeline
            .lines()
            .filter(|l| l.starts_with("    A"))
            .collect();
        assert_eq!(
            forced.len(),
            10,
            "five acceptors have ten majorities of three"
        );
        assert!(forced.iter().all(|l| l.ends_with("→ banana")), "{timeline}");
        assert!(timeline.contains("by P2c it proposes that, not its own \"apple\""));
        assert!(timeline.contains("P1    learns \"banana\" is chosen"));
        assert_eq!(replay().unwrap(), timeline, "a replay is deterministic");
    }
}

#[cfg(test)]
mod trace_tests {
    use super::*;

    #[test]
    fn the_trace_marks_the_chosen_moment_where_the_timeline_prints_its_star() {
        let (timeline, trace) = replay_with_trace().unwrap();
        assert_eq!(
            replay().unwrap(),
            timeline,
            "tracing changes nothing of the story"
        );
        let star = timeline.lines().find(|l| l.contains('★')).unwrap();
        let tick: u64 = star.split_whitespace().next().unwrap().parse().unwrap();
        let chosen: Vec<_> = trace.events.iter().filter(|e| e.what == "chosen").collect();
        assert_eq!(chosen.len(), 1);
        let chosen = chosen[0];
        assert_eq!(chosen.time, tick);
        assert_eq!(
            trace.name(chosen.node),
            "A4",
            "A4's vote completed the quorum"
        );
        assert_eq!(chosen.ballot.as_deref(), Some("1.103"), "t3 = (1.P3)");
        assert_eq!(
            chosen.detail.as_deref(),
            Some("\"banana\" accepted by A2, A3, A4")
        );
        let state = chosen.state.clone().unwrap();
        assert_eq!(state.vote.as_deref(), Some("1.103=banana"));
        let drops = trace.events.iter().filter(|e| e.what == "drop").count();
        assert_eq!(drops, timeline.matches("✗ lost").count());
        let text = trace.to_jsonl();
        assert_eq!(crate::trace::read(text.as_bytes()), Ok(trace));
    }
}
