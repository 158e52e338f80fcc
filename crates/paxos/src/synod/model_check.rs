//! Exhaustive model check of the single-decree roles, with the explorer of
//! [`crate::explore`].
//!
//! Every state explored is made of the real [`Acceptor`], [`Proposer`] and [`Learner`]
//! values, changed only by their real handlers. The network is unordered and duplicating:
//! any message ever sent may be delivered at any time, any number of times (duplication,
//! reordering), or never (loss). This covers a network that delivers each message at most
//! once, too: such a run is a run here. A proposer's round timeout may fire at any time
//! (time is asynchronous); it fast-forwards the proposer's own `tick()` to the next round.
//! Rounds are bounded so the space is finite.
//!
//! Properties:
//! - always: at most one value is chosen. "Chosen" is the global view no participant has:
//!   a ghost history records every vote made durable (every [`Action::PersistAcceptor`]
//!   carrying a vote), and a value is chosen when a phase-2 quorum voted for it at one
//!   ballot;
//! - always: whatever a proposer or learner learned is the chosen value;
//! - sometimes: a value is chosen (the check is not vacuous).
//!
//! Three reductions keep the space small. None loses a reachable combination of node
//! states and votes, which is all the properties read:
//! - Loss needs no drop action: a run with a drop is also a run in which that message is
//!   simply never delivered, so drops would add no behaviour, only a state for every
//!   subset of the messages in flight.
//! - Dead messages leave the network ([`System::is_dead`]): replies that their proposer
//!   can never act on again, because it has left their round for good or has already
//!   counted them. Kept, each would double the states around it while changing nothing.
//!   Each deletion is checked to be a no-op when made, and `dead_messages_change_nothing`
//!   checks that a search that keeps every message reaches exactly the same nodes and
//!   votes.
//! - Symmetry ([`System::symmetric`]): two states that differ by a relabelling of the
//!   acceptors that maps phase-1 quorums onto phase-1 quorums and phase-2 quorums onto
//!   phase-2 quorums (any permutation of a majority; a grid's rows among themselves and
//!   its columns among themselves, never a transposition) count as one. Sound because the
//!   properties are invariant under such a relabelling (they ask only whether a set of
//!   voters is a phase-2 quorum, and what proposers learned), and the transition relation
//!   commutes with it: a role knows an acceptor only by its index, asks only quorum
//!   questions of sets of indices and broadcasts to all acceptors, and the network is a
//!   set. A state's fingerprint is the least of its hashes under each relabelling, the
//!   same for every state of its orbit, so the search keeps one state per reachable orbit;
//!   `check_with_and_without_symmetry` checks exactly that against an unreduced search.
//!   A learner's per-acceptor record is private and cannot be relabelled, so checks with
//!   a learner are not reduced.
//!
//! Negative controls break the protocol on purpose (a proposer that skips P2c; a quorum
//! pair that may not intersect, built through a test-only path) and must be caught, with
//! and without the symmetry reduction.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use super::{Acceptor, Action, Config, ConstRng, Learner, Message, Node, Phase, Proposer, Timing};
use crate::ballot::Ballot;
use crate::explore::{explore_observed, fmix64, part_hash, Expect, Model, Property, Report};
use crate::node::{AcceptorSet, NodeId};
use crate::quorum::{Flexible, Quorum, QuorumSpec, QuorumSystem};

type Value = char;
type ModelNode = Node<Value, ConstRng>;

/// A message in flight: (from, to, message).
type Envelope = (NodeId, NodeId, Message<Value>);

/// A vote made durable: (acceptor index, ballot, value).
type VoteRecord = (usize, Ballot, Value);

/// A permutation of the acceptors: acceptor `i` becomes acceptor `perm[i]`.
type Perm = Vec<usize>;

/// The most symmetries one check may use (every permutation of 4 acceptors).
const SYMMETRIES_MAX: usize = 24;

/// The whole system. Node ids are indices into `nodes`.
#[derive(Clone, Debug)]
struct State {
    nodes: Vec<ModelNode>,
    /// Every message ever sent, sorted and without repeats (a duplicating network keeps
    /// them all: each may be delivered again).
    network: Vec<Envelope>,
    /// Ghost history: every vote ever made durable, sorted.
    votes: Vec<VoteRecord>,
    /// `hashes[k]`: the hash of this state relabelled by the system's symmetry `k`, a sum
    /// of one hash per node, message and vote ([`System::account`]), so that a step updates
    /// it by what it changed instead of hashing the whole state again.
    hashes: [u64; SYMMETRIES_MAX],
}

/// A node, message or vote of a state: the parts its hashes sum over.
#[derive(Clone, Copy)]
enum Part<'a> {
    Node(usize, &'a ModelNode),
    Envelope(&'a Envelope),
    Vote(&'a VoteRecord),
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
    /// How many proposers, the first ones, may time out and retry.
    retrying: usize,
    broken_proposer: bool,
    /// Whether messages that can never change anything are deleted ([`System::is_dead`]).
    prunes_dead: bool,
    /// The acceptor permutations under which states are identified: the identity alone,
    /// or, for a [`System::symmetric`] check, every automorphism of the quorum system.
    symmetries: Vec<Perm>,
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
            retrying: 1,
            broken_proposer: false,
            prunes_dead: true,
            symmetries: vec![(0..acceptors).collect()],
        }
    }

    /// The first proposer may time out and retry until its ballots reach this round; the
    /// others run one round (unless [`System::all_retrying`]).
    fn rounds_max(mut self, rounds: u64) -> System {
        self.rounds_max = rounds;
        self
    }

    /// Every proposer may time out and retry, up to [`System::rounds_max`].
    fn all_retrying(mut self) -> System {
        self.retrying = self.config.proposers().len();
        self
    }

    /// Identifies states that differ only by a relabelling of the acceptors that maps
    /// phase-1 quorums onto phase-1 quorums and phase-2 quorums onto phase-2 quorums (see
    /// the module documentation): for a majority every permutation, for a grid the
    /// permutations of its rows and of its columns.
    fn symmetric(mut self) -> System {
        assert!(
            self.config.learners().is_empty(),
            "a learner's per-acceptor votes are private, so it cannot be relabelled"
        );
        self.symmetries = automorphisms(self.config.quorum());
        let count = self.symmetries.len();
        assert!(
            count <= SYMMETRIES_MAX,
            "{count} symmetries: raise SYMMETRIES_MAX"
        );
        self
    }

    /// Keeps every message ever sent, even one that can never change anything.
    fn keeping_dead_messages(mut self) -> System {
        self.prunes_dead = false;
        self
    }

    fn with_unsafe_quorum(mut self, quorum: Quorum) -> System {
        assert_eq!(
            self.symmetries.len(),
            1,
            "set the quorum before the symmetry"
        );
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
            Node::Proposer(p) if self.config.proposers()[..self.retrying].contains(&p.id()) => {
                p.chosen().is_none() && p.highest_seen().round < self.rounds_max
            }
            _ => false,
        }
    }

    /// Applies `actions` of node `from` to a copy of `state` in which `node` replaced it.
    /// `None` if nothing at all changed, or if the result was `seen` already: its hashes
    /// are worked out first, and the state is built only if it is new.
    fn apply(
        &self,
        state: &State,
        from: NodeId,
        node: ModelNode,
        actions: Vec<Action<Value>>,
        seen: &dyn Fn(u64) -> bool,
    ) -> Option<State> {
        let index = Self::index(from);
        let mut sends = Vec::new();
        let mut votes = Vec::new();
        for action in actions {
            match action {
                Action::Send { to, message } => sends.push((from, to, message)),
                Action::PersistAcceptor(durable) => {
                    let acceptor = self.config.acceptor_index(from).expect("acceptor");
                    let vote = durable.accepted.map(|v| (acceptor, v.ballot, v.value));
                    votes.extend(vote.filter(|v| state.votes.binary_search(v).is_err()));
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
        sends.retain(|e| state.network.binary_search(e).is_err() && !self.is_dead(node_of(e.1), e));
        sends.sort();
        sends.dedup();
        if node == state.nodes[index] && sends.is_empty() {
            return None;
        }
        let mut hashes = state.hashes;
        self.account(&mut hashes, Part::Node(index, &state.nodes[index]), false);
        self.account(&mut hashes, Part::Node(index, &node), true);
        let dead = |e: &Envelope| e.1 == from && self.is_dead(&node, e);
        for envelope in state.network.iter().filter(|e| dead(e)) {
            self.account(&mut hashes, Part::Envelope(envelope), false);
        }
        for envelope in &sends {
            self.account(&mut hashes, Part::Envelope(envelope), true);
        }
        for vote in &votes {
            self.account(&mut hashes, Part::Vote(vote), true);
        }
        if seen(self.orbit_fingerprint(&hashes)) {
            return None;
        }
        let mut network: Vec<Envelope> =
            state.network.iter().filter(|e| !dead(e)).cloned().collect();
        for envelope in sends {
            insert_sorted(&mut network, envelope);
        }
        let mut next = State {
            nodes: state.nodes.clone(),
            network,
            votes: state.votes.clone(),
            hashes,
        };
        next.nodes[index] = node;
        for vote in votes {
            insert_sorted(&mut next.votes, vote);
        }
        Some(next)
    }

    /// Adds `part`'s hash under each symmetry to `hashes` (`add`), or takes it away.
    ///
    /// A part hashes as what a relabelling cannot change (its content) combined with what
    /// it can (its label: the positions of the acceptors it names, and the proposer's set
    /// of promised or accepted acceptors). A proposer counts by its public state alone:
    /// its id, value, phase and highest ballot seen. The two private counters it also holds
    /// cannot tell states apart here: `phase_ticks` is 0 between steps (every phase change
    /// resets it, and [`Step::Timeout`] ticks until the proposer acts), and `failed_rounds`
    /// only sizes the backoff range, from which `ConstRng(0)` always draws one tick.
    fn account(&self, hashes: &mut [u64; SYMMETRIES_MAX], part: Part<'_>, add: bool) {
        let content = match part {
            Part::Node(_, Node::Acceptor(a)) => part_hash((0u8, a.state())),
            Part::Node(_, Node::Proposer(p)) => part_hash((
                1u8,
                p.own_value(),
                p.highest_seen(),
                p.ignores_promised_votes,
                without_acceptors(p.phase()),
            )),
            Part::Node(_, Node::Learner(l)) => part_hash((2u8, l)),
            Part::Envelope((_, _, message)) => part_hash((3u8, message)),
            Part::Vote((_, ballot, value)) => part_hash((4u8, ballot, value)),
        };
        for (hash, perm) in hashes.iter_mut().zip(&self.symmetries) {
            let label = match part {
                Part::Node(i, Node::Acceptor(_)) => perm[i] as u64,
                Part::Node(i, Node::Proposer(p)) => {
                    part_hash((i, relabel_set(perm, acceptors_of(p.phase()))))
                }
                Part::Node(i, Node::Learner(_)) => {
                    debug_assert_eq!(self.symmetries.len(), 1);
                    i as u64
                }
                Part::Envelope(&(from, to, _)) => {
                    part_hash((relabel(perm, from), relabel(perm, to)))
                }
                Part::Vote(&(i, _, _)) => perm[i] as u64,
            };
            let h = fmix64(content ^ fmix64(label ^ LABEL_SEED));
            *hash = if add {
                hash.wrapping_add(h)
            } else {
                hash.wrapping_sub(h)
            };
        }
    }

    /// `state`'s hashes computed from nothing, as [`System::account`] keeps them.
    fn hashes_of(&self, state: &State) -> [u64; SYMMETRIES_MAX] {
        let mut hashes = [0; SYMMETRIES_MAX];
        for (i, node) in state.nodes.iter().enumerate() {
            self.account(&mut hashes, Part::Node(i, node), true);
        }
        for envelope in &state.network {
            self.account(&mut hashes, Part::Envelope(envelope), true);
        }
        for vote in &state.votes {
            self.account(&mut hashes, Part::Vote(vote), true);
        }
        hashes
    }

    /// The fingerprint of the orbit of a state with these `hashes`: the least of them.
    fn orbit_fingerprint(&self, hashes: &[u64; SYMMETRIES_MAX]) -> u64 {
        let hashes = &hashes[..self.symmetries.len()];
        hashes
            .iter()
            .copied()
            .min()
            .expect("the identity is a symmetry")
    }

    /// Whether delivering `envelope` is a no-op now and in every future state, so keeping
    /// it would only split one state into many. True only of replies a proposer can never
    /// act on again. A proposer never acts on a promise reporting a vote at or above the
    /// promise's ballot (an acceptor sends one only when it repeats a promise after voting
    /// at its ballot); it acts on `Promise(b)` only while preparing at `b`; on `Accepted(b, v)`
    /// only while preparing at `b`, or accepting `v` at `b` and not yet counting that
    /// acceptor (the count only grows until the round ends); on `Nack(b, p)` only while in
    /// round `b` or if `p` is above every ballot it has seen. It never returns to a round
    /// it has left: its next ballot is above every ballot it has seen, which only grows.
    /// Checked: a message declared dead must be a no-op when delivered now.
    fn is_dead(&self, recipient: &ModelNode, (from, _, message): &Envelope) -> bool {
        let Node::Proposer(p) = recipient else {
            return false;
        };
        if !self.prunes_dead {
            return false;
        }
        let ballot = message.ballot();
        let current = p.ballot() == Some(ballot);
        let dead = match (message, p.phase()) {
            (
                Message::Promise {
                    accepted: Some(vote),
                    ..
                },
                _,
            ) if vote.ballot >= ballot => true,
            // A reply above every ballot the proposer has seen could still become current.
            _ if ballot > p.highest_seen() => false,
            (Message::Promise { .. }, Phase::Preparing { .. }) => !current,
            (Message::Promise { .. }, _) => true,
            (Message::Accepted { .. }, Phase::Preparing { .. }) => !current,
            (
                Message::Accepted { value, .. },
                Phase::Accepting {
                    value: proposed,
                    accepted,
                    ..
                },
            ) => {
                let counted = self
                    .config
                    .acceptor_index(*from)
                    .is_some_and(|i| accepted.contains(i));
                !current || value != proposed || counted
            }
            (Message::Accepted { .. }, _) => true,
            (Message::Nack { promised, .. }, _) => !current && p.highest_seen() >= *promised,
            (Message::Prepare { .. } | Message::Accept { .. }, _) => false,
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
        self.check_observed(&mut |_| {})
    }

    /// [`System::check`], calling `observe` on every state visited.
    fn check_observed(&self, observe: &mut dyn FnMut(&State)) -> Report<System> {
        let report = explore_observed(self, &System::properties(), true, observe);
        println!(
            "explored {} states ({} symmetries), depth {}; violated {:?}; reached {:?}",
            report.states,
            self.symmetries.len(),
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
            hashes: [0; SYMMETRIES_MAX],
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
        state.hashes = self.hashes_of(&state);
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

    fn next(&self, state: &State, step: &Step, seen: &dyn Fn(u64) -> bool) -> Option<State> {
        match step {
            Step::Deliver((from, to, message)) => {
                let mut node = state.nodes[Self::index(*to)].clone();
                let actions = node.step(*from, message.clone());
                self.apply(state, *to, node, actions, seen)
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
                self.apply(state, *id, node, actions, seen)
            }
        }
    }

    fn fingerprint(&self, state: &State) -> u64 {
        // Spot-check the incremental hashes against hashes computed from nothing.
        if cfg!(debug_assertions) && state.hashes[0] % 64 == 0 {
            assert_eq!(state.hashes, self.hashes_of(state), "hashes out of date");
        }
        self.orbit_fingerprint(&state.hashes)
    }
}

/// Every permutation of the acceptors that maps phase-1 quorums onto phase-1 quorums and
/// phase-2 quorums onto phase-2 quorums: the symmetries of the quorum system (a group;
/// the identity first).
fn automorphisms(quorum: &Quorum) -> Vec<Perm> {
    fn permutations(prefix: &mut Perm, n: usize, all: &mut Vec<Perm>) {
        if prefix.len() == n {
            all.push(prefix.clone());
            return;
        }
        for i in 0..n {
            if !prefix.contains(&i) {
                prefix.push(i);
                permutations(prefix, n, all);
                prefix.pop();
            }
        }
    }
    let n = quorum.acceptor_count();
    assert!(n <= 8, "{n} acceptors have too many permutations to try");
    let mut all = Vec::new();
    permutations(&mut Vec::new(), n, &mut all);
    all.retain(|perm| {
        (0..1u64 << n).all(|bits| {
            let set = AcceptorSet::from_bits(bits);
            let image = relabel_set(perm, set);
            quorum.is_phase1_quorum(image) == quorum.is_phase1_quorum(set)
                && quorum.is_phase2_quorum(image) == quorum.is_phase2_quorum(set)
        })
    });
    all
}

/// The image of `set` under `perm`.
fn relabel_set(perm: &[usize], set: AcceptorSet) -> AcceptorSet {
    let mut bits = set.bits();
    let mut image = AcceptorSet::EMPTY;
    while bits != 0 {
        image.insert(perm[bits.trailing_zeros() as usize]);
        bits &= bits - 1;
    }
    image
}

/// The image of node `id` under `perm`: acceptors are ids `0..n`, the other nodes stay.
fn relabel(perm: &[usize], id: NodeId) -> NodeId {
    match usize::try_from(id.0).ok().and_then(|i| perm.get(i)) {
        Some(&image) => NodeId(image as u64),
        None => id,
    }
}

/// The acceptors a proposer's phase records (promised or accepted).
fn acceptors_of(phase: &Phase<Value>) -> AcceptorSet {
    match phase {
        Phase::Preparing { promised, .. } => *promised,
        Phase::Accepting { accepted, .. } => *accepted,
        _ => AcceptorSet::EMPTY,
    }
}

/// `phase` without the acceptors it records.
fn without_acceptors(phase: &Phase<Value>) -> Phase<Value> {
    let mut phase = phase.clone();
    if let Phase::Preparing { promised: set, .. } | Phase::Accepting { accepted: set, .. } =
        &mut phase
    {
        *set = AcceptorSet::EMPTY;
    }
    phase
}

const LABEL_SEED: u64 = 0x1319_8a2e_0370_7344;

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

/// Checks the system `build` makes, unreduced and reduced by symmetry. The reduced search
/// must keep exactly one state per orbit of the unreduced one: a relabelling that did not
/// commute with the protocol would lose orbits or split them.
fn check_with_and_without_symmetry(build: impl Fn() -> System) -> [Report<System>; 2] {
    let reduced = build().symmetric();
    let mut orbits = HashSet::new();
    let unreduced = build().check_observed(&mut |state| {
        orbits.insert(reduced.orbit_fingerprint(&reduced.hashes_of(state)));
    });
    let report = reduced.check();
    assert_eq!(orbits.len(), report.states, "one state per orbit");
    [unreduced, report]
}

#[test]
fn majority_of_three_with_two_proposers_is_safe() {
    let report = System::new(3, 2, 0, QuorumSpec::Majority).check();
    assert_safe_and_live(&report, 20_731);
}

#[test]
fn majority_of_three_with_retries_is_safe() {
    let [unreduced, reduced] = check_with_and_without_symmetry(|| {
        System::new(3, 2, 0, QuorumSpec::Majority).rounds_max(2)
    });
    assert_safe_and_live(&unreduced, 248_453);
    assert_safe_and_live(&reduced, 44_692);
}

#[test]
fn majority_of_three_with_both_proposers_retrying_is_safe() {
    let report = System::new(3, 2, 0, QuorumSpec::Majority)
        .rounds_max(2)
        .all_retrying()
        .symmetric()
        .check();
    assert_safe_and_live(&report, 3_121_460);
}

#[test]
fn learner_learns_only_the_chosen_value() {
    // Not reduced by symmetry: the learner's record of each acceptor's vote is private.
    let report = System::new(3, 2, 1, QuorumSpec::Majority)
        .rounds_max(2)
        .check();
    assert_safe_and_live(&report, 2_660_645);
}

#[test]
fn grid_of_two_by_two_with_two_proposers_is_safe() {
    let [unreduced, reduced] = check_with_and_without_symmetry(|| {
        System::new(4, 2, 0, QuorumSpec::Grid { rows: 2, cols: 2 })
    });
    assert_safe_and_live(&unreduced, 406_723);
    assert_safe_and_live(&reduced, 102_433);
}

#[test]
fn grid_of_two_by_two_with_retries_is_safe() {
    let report = System::new(4, 2, 0, QuorumSpec::Grid { rows: 2, cols: 2 })
        .rounds_max(2)
        .symmetric()
        .check();
    assert_safe_and_live(&report, 2_250_833);
}

#[test]
fn dead_messages_change_nothing() {
    // Deleting messages that can never change a node must leave the reachable nodes and
    // votes exactly as they were.
    let reachable = |system: System| {
        let mut reachable = HashSet::new();
        let report = system.check_observed(&mut |state| {
            reachable.insert(crate::explore::hash_fingerprint(&(
                &state.nodes,
                &state.votes,
            )));
        });
        (report.states, reachable)
    };
    let (all, everything) =
        reachable(System::new(3, 2, 0, QuorumSpec::Majority).keeping_dead_messages());
    let (pruned, live) = reachable(System::new(3, 2, 0, QuorumSpec::Majority));
    assert_eq!((all, pruned), (1_840_708, 20_731));
    assert_eq!(everything, live);
}

#[test]
fn symmetries_are_the_quorum_systems_automorphisms() {
    let symmetries = |acceptors, spec: QuorumSpec| automorphisms(&spec.build(acceptors).unwrap());
    assert_eq!(symmetries(3, QuorumSpec::Majority).len(), 6);
    let grid = symmetries(4, QuorumSpec::Grid { rows: 2, cols: 2 });
    // Rows {0, 1} and {2, 3}, columns {0, 2} and {1, 3}: swap rows, swap columns, or both;
    // never transpose, which would turn phase-1 quorums into phase-2 ones.
    assert_eq!(
        grid,
        vec![
            vec![0, 1, 2, 3],
            vec![1, 0, 3, 2],
            vec![2, 3, 0, 1],
            vec![3, 2, 1, 0]
        ]
    );
    assert_eq!(
        symmetries(6, QuorumSpec::Grid { rows: 2, cols: 3 }).len(),
        2 * 6
    );
    let flexible = QuorumSpec::Flexible { q1: 3, q2: 2 };
    assert_eq!(symmetries(4, flexible).len(), 24);
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

#[test]
fn proposer_that_skips_p2c_is_caught_with_symmetry() {
    let system = System::new(4, 2, 0, QuorumSpec::Grid { rows: 2, cols: 2 })
        .with_proposers_ignoring_promised_votes()
        .symmetric();
    let report = system.check();
    assert_eq!(report.violated(), vec![AT_MOST_ONE_CHOSEN]);
}

#[test]
fn quorums_that_may_not_intersect_are_caught_with_symmetry() {
    // The grid's four acceptors with q1 = q2 = 2: two disjoint pairs are a phase-1 and a
    // phase-2 quorum (say, the two rows of the grid).
    let unsafe_pair = Quorum::Flexible(Flexible::new_unchecked(4, 2, 2));
    let system = System::new(4, 2, 0, QuorumSpec::Grid { rows: 2, cols: 2 })
        .with_unsafe_quorum(unsafe_pair)
        .symmetric();
    let report = system.check();
    assert_eq!(report.violated(), vec![AT_MOST_ONE_CHOSEN]);
}

#[test]
#[ignore = "about 3 minutes in release: cargo test --release -p synod-paxos --lib -- --ignored"]
fn grid_of_two_by_three_with_two_proposers_is_safe() {
    let report = System::new(6, 2, 0, QuorumSpec::Grid { rows: 2, cols: 3 })
        .symmetric()
        .check();
    assert_safe_and_live(&report, 11_569_053);
}
