//! Exhaustive model check of the single-decree roles, with the explorer of
//! [`crate::explore`].
//!
//! Every state explored is made of the real [`Acceptor`], [`Proposer`] and [`Learner`]
//! values, changed only by their real handlers. The network is unordered and duplicating:
//! any message ever
//! sent may be delivered at any time, any number of times (duplication, reordering), or
//! never (loss). Loss needs no explicit drop action: every trace with a drop is also a
//! trace in which that message is simply never delivered, so for safety properties drops
//! add no behaviour, only a state for every subset of the messages in flight. A
//! proposer's round timeout may fire at any time (time is asynchronous); it fast-forwards
//! the proposer's own `tick()` to the next round. Rounds are bounded so the space is finite.
//!
//! Properties:
//! - always: at most one value is chosen. "Chosen" is the global view no participant has:
//!   a ghost history records every vote made durable (every [`Action::PersistAcceptor`]
//!   carrying a vote), and a value is chosen when a phase-2 quorum voted for it at one
//!   ballot;
//! - always: whatever a proposer or learner learned is the chosen value;
//! - sometimes: a value is chosen (the check is not vacuous).
//!
//! Negative controls break the protocol on purpose (a proposer that skips P2c; a quorum
//! pair that may not intersect, built through a test-only path) and must be caught.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Acceptor, Action, Config, ConstRng, Learner, Message, Node, Proposer, Timing};
use crate::ballot::Ballot;
use crate::explore::{explore, Expect, Model, Property, Report};
use crate::node::{AcceptorSet, NodeId};
use crate::quorum::{Flexible, Quorum, QuorumSpec, QuorumSystem};

type Value = char;
type ModelNode = Node<Value, ConstRng>;

/// A message in flight: (from, to, message).
type Envelope = (NodeId, NodeId, Message<Value>);

/// A vote made durable: (acceptor index, ballot, value).
type VoteRecord = (usize, Ballot, Value);

/// The whole system. Node ids are indices into `nodes`.
#[derive(Clone, Debug, Hash)]
struct State {
    nodes: Vec<ModelNode>,
    /// Every message ever sent, sorted and without repeats (a duplicating network keeps
    /// them all: each may be delivered again).
    network: Vec<Envelope>,
    /// Ghost history: every vote ever made durable, sorted.
    votes: Vec<VoteRecord>,
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Deliver(Envelope),
    Timeout(NodeId),
}

/// A system to check: acceptors first, then proposers (values 'a', 'b', …), then learners.
struct System {
    config: Arc<Config>,
    rounds_max: u64,
    broken_proposer: bool,
    duplicating: bool,
}

impl System {
    fn new(acceptors: usize, proposers: usize, learners: usize, quorum: QuorumSpec) -> System {
        let ids = |from: usize, count: usize| (from..from + count).map(|i| NodeId(i as u64));
        let config = Config::new(
            ids(0, acceptors).collect(),
            ids(acceptors, proposers).collect(),
            ids(acceptors + proposers, learners).collect(),
            quorum,
        )
        .expect("valid configuration");
        System {
            config: Arc::new(config),
            rounds_max: 1,
            broken_proposer: false,
            duplicating: true,
        }
    }

    /// The first proposer may time out and retry until its ballots reach this round; the
    /// others run one round. (Both retrying is beyond a test-suite budget.)
    fn rounds_max(mut self, rounds: u64) -> System {
        self.rounds_max = rounds;
        self
    }

    /// Each message is delivered at most once (still lost or reordered at will).
    fn without_duplication(mut self) -> System {
        self.duplicating = false;
        self
    }

    fn with_unsafe_quorum(mut self, quorum: Quorum) -> System {
        let config = (*self.config).clone().with_unchecked_quorum(quorum);
        self.config = Arc::new(config);
        self
    }

    fn with_proposers_ignoring_promised_votes(mut self) -> System {
        self.broken_proposer = true;
        self
    }

    fn index(node: NodeId) -> usize {
        usize::try_from(node.0).expect("model ids are small")
    }

    fn can_time_out(&self, node: &ModelNode) -> bool {
        match node {
            Node::Proposer(p) if Some(&p.id()) == self.config.proposers().first() => {
                p.chosen().is_none() && p.highest_seen().round < self.rounds_max
            }
            _ => false,
        }
    }

    /// Applies `actions` of node `from` to a copy of `state` in which `node` replaced it;
    /// `None` if nothing at all changed.
    fn apply(
        &self,
        state: &State,
        from: NodeId,
        node: ModelNode,
        actions: Vec<Action<Value>>,
    ) -> Option<State> {
        let mut sends = Vec::new();
        let mut votes = Vec::new();
        for action in actions {
            match action {
                Action::Send { to, message } => sends.push((from, to, message)),
                Action::PersistAcceptor(durable) => {
                    let index = self.config.acceptor_index(from).expect("acceptor");
                    votes.extend(durable.accepted.map(|v| (index, v.ballot, v.value)));
                }
                Action::PersistBallot(_) | Action::Learn { .. } => {}
            }
        }
        // Only `from` changed, so only messages to it can have died; and a reply that is
        // dead on arrival need not enter the network at all.
        let node_of = |id: NodeId| {
            if id == from {
                &node
            } else {
                &state.nodes[Self::index(id)]
            }
        };
        sends.retain(|e| !Self::is_dead(node_of(e.1), e));
        let unchanged = node == state.nodes[Self::index(from)]
            && sends.iter().all(|e| state.network.binary_search(e).is_ok());
        if unchanged {
            return None;
        }
        let mut next = state.clone();
        next.network
            .retain(|e| e.1 != from || !Self::is_dead(&node, e));
        next.nodes[Self::index(from)] = node;
        for envelope in sends {
            insert_sorted(&mut next.network, envelope);
        }
        for vote in votes {
            insert_sorted(&mut next.votes, vote);
        }
        Some(next)
    }

    /// Whether delivering `envelope` is a no-op now and in every future state, so keeping
    /// it would only split one state into many. True only of replies to a proposer that
    /// has left the reply's round: a proposer acts on `Promise(b)` only while preparing at
    /// `b`, on `Accepted(b)` only while accepting at `b`, and on `Nack(b, p)` only while in
    /// round `b` or if `p` is above every ballot it has seen; its rounds only go up.
    /// Checked: a message declared dead must be a no-op when delivered now.
    fn is_dead(recipient: &ModelNode, (from, _, message): &Envelope) -> bool {
        let Node::Proposer(p) = recipient else {
            return false;
        };
        let ballot = message.ballot();
        // A reply above every ballot the proposer has used could still become current.
        let left_behind = ballot <= p.highest_seen() && p.ballot() != Some(ballot);
        let dead = match message {
            Message::Promise { .. } | Message::Accepted { .. } => left_behind,
            Message::Nack { promised, .. } => left_behind && p.highest_seen() >= *promised,
            Message::Prepare { .. } | Message::Accept { .. } => false,
        };
        if dead && cfg!(debug_assertions) {
            let mut copy = p.clone();
            assert!(copy.step(*from, message.clone()).is_empty() && copy == *p);
        }
        dead
    }

    fn properties() -> Vec<Property<System>> {
        vec![
            Property {
                name: AT_MOST_ONE_CHOSEN,
                expect: Expect::Always,
                holds: |system, state| system.chosen_values(state).len() <= 1,
            },
            Property {
                name: LEARNED_IS_CHOSEN,
                expect: Expect::Always,
                holds: |system, state| {
                    learned_values(state).is_subset(&system.chosen_values(state))
                },
            },
            Property {
                name: SOME_VALUE_CHOSEN,
                expect: Expect::Sometimes,
                holds: |system, state| !system.chosen_values(state).is_empty(),
            },
        ]
    }

    /// The values a phase-2 quorum voted for at one ballot.
    fn chosen_values(&self, state: &State) -> BTreeSet<Value> {
        let mut chosen = BTreeSet::new();
        for &(_, ballot, value) in &state.votes {
            let voters: AcceptorSet = state
                .votes
                .iter()
                .filter(|&&(_, b, v)| b == ballot && v == value)
                .map(|&(i, _, _)| i)
                .collect();
            if self.config.quorum().is_phase2_quorum(voters) {
                chosen.insert(value);
            }
        }
        chosen
    }

    fn check(&self) -> Report<System> {
        let report = explore(self, &System::properties(), true);
        println!(
            "explored {} states, depth {}; violated {:?}; reached {:?}",
            report.states,
            report.depth_max,
            report.violated(),
            report.reached()
        );
        for trace in &report.violations {
            println!("counterexample for {:?}:", trace.property);
            for step in &trace.actions {
                println!("  {step:?}");
            }
            println!("  votes: {:?}", trace.state.votes);
        }
        report
    }
}

impl Model for System {
    type State = State;
    type Action = Step;

    fn init(&self) -> State {
        let config = &self.config;
        let mut state = State {
            nodes: Vec::new(),
            network: Vec::new(),
            votes: Vec::new(),
        };
        for &id in config.acceptors() {
            state.nodes.push(Node::Acceptor(
                Acceptor::new(id, config.clone()).expect("acceptor"),
            ));
        }
        for (&id, value) in config.proposers().iter().zip('a'..) {
            let mut p = Proposer::new(id, config.clone(), value, Timing::default(), ConstRng(0))
                .expect("proposer");
            p.ignores_promised_votes = self.broken_proposer;
            for (from, to, message) in sends(id, p.propose()) {
                insert_sorted(&mut state.network, (from, to, message));
            }
            state.nodes.push(Node::Proposer(p));
        }
        for &id in config.learners() {
            state.nodes.push(Node::Learner(
                Learner::new(id, config.clone()).expect("learner"),
            ));
        }
        state
    }

    fn actions(&self, state: &State, actions: &mut Vec<Step>) {
        actions.extend(state.network.iter().cloned().map(Step::Deliver));
        actions.extend(
            state
                .nodes
                .iter()
                .filter(|node| self.can_time_out(node))
                .map(|node| Step::Timeout(node.id())),
        );
    }

    fn next(&self, state: &State, step: &Step) -> Option<State> {
        match step {
            Step::Deliver(envelope) if !self.duplicating => {
                let mut rest = state.clone();
                rest.network.retain(|e| e != envelope);
                let (from, to, message) = envelope.clone();
                let mut node = rest.nodes[Self::index(to)].clone();
                let actions = node.step(from, message);
                Some(self.apply(&rest, to, node, actions).unwrap_or(rest))
            }
            Step::Deliver((from, to, message)) => {
                let mut node = state.nodes[Self::index(*to)].clone();
                let actions = node.step(*from, message.clone());
                self.apply(state, *to, node, actions)
            }
            Step::Timeout(id) => {
                // Time is asynchronous: a timeout may fire at any point. Tick until the
                // proposer acts (the round timeout, then the end of its backoff).
                let mut node = state.nodes[Self::index(*id)].clone();
                let timing = Timing::default();
                let mut actions = Vec::new();
                for _ in 0..timing.round_timeout_ticks + timing.backoff_max_ticks {
                    actions = node.tick();
                    if !actions.is_empty() {
                        break;
                    }
                }
                self.apply(state, *id, node, actions)
            }
        }
    }
}

fn sends(from: NodeId, actions: Vec<Action<Value>>) -> impl Iterator<Item = Envelope> {
    actions.into_iter().filter_map(move |action| match action {
        Action::Send { to, message } => Some((from, to, message)),
        _ => None,
    })
}

fn insert_sorted<T: Ord>(items: &mut Vec<T>, item: T) {
    if let Err(at) = items.binary_search(&item) {
        items.insert(at, item);
    }
}

fn learned_values(state: &State) -> BTreeSet<Value> {
    state
        .nodes
        .iter()
        .filter_map(|node| match node {
            Node::Proposer(p) => p.chosen().map(|v| v.value),
            Node::Learner(l) => l.learned().map(|v| v.value),
            Node::Acceptor(_) => None,
        })
        .collect()
}

/// No violation, a value can be chosen, and exactly `states` states: a different count means
/// the protocol's behaviour changed, which must be a deliberate change.
fn assert_safe_and_live(report: &Report<System>, states: usize) {
    assert_eq!(report.violated(), Vec::<&str>::new());
    assert_eq!(report.reached(), vec![SOME_VALUE_CHOSEN]);
    assert_eq!(report.states, states, "explored state count changed");
}

const AT_MOST_ONE_CHOSEN: &str = "at most one value is chosen";
const LEARNED_IS_CHOSEN: &str = "only a chosen value is learned";
const SOME_VALUE_CHOSEN: &str = "a value is chosen";

#[test]
fn majority_of_three_with_two_proposers_is_safe() {
    let report = System::new(3, 2, 0, QuorumSpec::Majority).check();
    assert_safe_and_live(&report, 896_120);
}

#[test]
fn majority_of_three_with_retries_is_safe() {
    let report = System::new(3, 2, 0, QuorumSpec::Majority)
        .rounds_max(2)
        .check();
    assert_safe_and_live(&report, 9_473_607);
}

#[test]
fn learner_learns_only_the_chosen_value() {
    // A learner multiplies a duplicating space by 14; loss and reordering suffice here,
    // since the learner's handling of repeats is covered by the random-input tests.
    let report = System::new(3, 2, 1, QuorumSpec::Majority)
        .without_duplication()
        .check();
    assert_safe_and_live(&report, 2_966_380);
}

#[test]
fn grid_of_two_by_two_with_two_proposers_is_safe() {
    let report = System::new(4, 2, 0, QuorumSpec::Grid { rows: 2, cols: 2 })
        .without_duplication()
        .check();
    assert_safe_and_live(&report, 15_037_277);
}

#[test]
fn proposer_that_skips_p2c_is_caught() {
    let system =
        System::new(3, 2, 1, QuorumSpec::Majority).with_proposers_ignoring_promised_votes();
    let report = system.check();
    assert_eq!(
        report.violated(),
        vec![AT_MOST_ONE_CHOSEN],
        "the checker missed a broken proposer"
    );
}

#[test]
fn quorums_that_may_not_intersect_are_caught() {
    // q1 = 1, q2 = 2 over 3: 1 + 2 is not above 3, so a phase 1 can miss a chosen vote.
    let unsafe_pair = Quorum::Flexible(Flexible::new_unchecked(3, 1, 2));
    let system = System::new(3, 2, 1, QuorumSpec::Majority).with_unsafe_quorum(unsafe_pair);
    let report = system.check();
    assert_eq!(
        report.violated(),
        vec![AT_MOST_ONE_CHOSEN],
        "the checker missed an unsafe quorum"
    );
}
