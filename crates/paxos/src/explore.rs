//! A small exhaustive state-space explorer for the model checks of the core.
//!
//! Depth-first, so memory is the visited set (one 64-bit fingerprint per state) plus the
//! current path, never a frontier of whole states. Deterministic: the same model explores
//! the same states in the same order, so the state count can be pinned in tests. As in
//! stateright and TLC, states are remembered by fingerprint; two distinct states sharing a
//! 64-bit fingerprint (odds around 10⁻⁶ for 10⁷ states) would hide one of them.
//!
//! A transition that leaves the state unchanged is recognised by the model before it builds
//! a new state ([`Model::next`] returns `None`), which matters on a duplicating network
//! where most deliveries are redeliveries that change nothing.
//!
//! The model chooses the fingerprint ([`Model::fingerprint`]). A model can keep it up to
//! date as it steps rather than hash whole states, and can give one fingerprint to states
//! it knows to be equivalent: a symmetry reduction (as TLC's `SYMMETRY` or stateright's
//! `symmetry`) gives every state of an orbit under a symmetry group the same fingerprint,
//! so the search visits one state per orbit. That is sound for properties the group
//! preserves, when the transition relation commutes with the group: a state reached by a
//! step from a state of the orbit is, relabelled, reached by the corresponding step from
//! the state the search kept.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use rustc_hash::FxHasher;

/// A transition system to explore.
pub(crate) trait Model {
    /// A state: everything that distinguishes two points of the run.
    type State: Clone + Debug;
    /// A transition label (shown in counterexample traces).
    type Action: Debug;

    /// The initial state.
    fn init(&self) -> Self::State;
    /// The transitions enabled in `state`.
    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>);
    /// The state after `action`, or `None` if it changes nothing. `seen` tells whether a
    /// fingerprint was visited already: a model may also return `None` for a state `seen`,
    /// rather than build a state the search would throw away.
    fn next(
        &self,
        state: &Self::State,
        action: &Self::Action,
        seen: &dyn Fn(u64) -> bool,
    ) -> Option<Self::State>;
    /// The 64-bit key `state` is remembered by: states with one fingerprint are explored
    /// once. [`hash_fingerprint`] is the plain choice.
    fn fingerprint(&self, state: &Self::State) -> u64;
}

/// What a property expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Holds in every reachable state (safety).
    Always,
    /// Holds in some reachable state (the check is not vacuous).
    Sometimes,
}

/// A named predicate over states.
pub(crate) struct Property<M: Model> {
    pub name: &'static str,
    pub expect: Expect,
    pub holds: fn(&M, &M::State) -> bool,
}

/// A path from the initial state to a state that decides a property.
#[derive(Debug)]
pub(crate) struct Trace<M: Model> {
    /// The property.
    pub property: &'static str,
    /// The actions from the initial state.
    pub actions: Vec<M::Action>,
    /// The state reached.
    pub state: M::State,
}

/// What an exploration found.
#[derive(Debug)]
pub(crate) struct Report<M: Model> {
    /// Distinct states visited.
    pub states: usize,
    /// Longest path explored.
    pub depth_max: usize,
    /// One trace per `Always` property that failed somewhere.
    pub violations: Vec<Trace<M>>,
    /// One trace per `Sometimes` property that held somewhere.
    pub examples: Vec<Trace<M>>,
    /// Whether the search stopped before covering the whole space.
    pub stopped_early: bool,
}

impl<M: Model> Report<M> {
    fn empty() -> Self {
        Report {
            states: 0,
            depth_max: 0,
            violations: Vec::new(),
            examples: Vec::new(),
            stopped_early: false,
        }
    }

    /// The names of the failed `Always` properties.
    pub fn violated(&self) -> Vec<&'static str> {
        self.violations.iter().map(|t| t.property).collect()
    }

    /// The names of the `Sometimes` properties seen to hold.
    pub fn reached(&self) -> Vec<&'static str> {
        self.examples.iter().map(|t| t.property).collect()
    }
}

type Fingerprints = HashSet<u64, BuildHasherDefault<NoHash>>;

/// Fingerprints are already hashes; hashing them again is waste.
#[derive(Default)]
struct NoHash(u64);

impl Hasher for NoHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 fingerprints are hashed")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A fingerprint that hashes the whole state.
pub(crate) fn hash_fingerprint<S: Hash>(state: &S) -> u64 {
    BuildHasherDefault::<FxHasher>::default().hash_one(state)
}

/// How often a search reports how far it got.
const PROGRESS_EVERY: usize = 10_000_000;

const PART_SEED: u64 = 0x243f_6a88_85a3_08d3;

/// MurmurHash3's 64-bit finaliser: a bijection in which every input bit flips about half
/// of the output bits.
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Hashes a part of a state, for models that keep their fingerprint as a sum of part
/// hashes, updated by what each step changed. Part hashes are summed, so each must look random: every word
/// written goes through [`fmix64`] (a multiplicative hash such as Fx is nearly linear in
/// small inputs, and sums of such hashes collide).
pub(crate) fn part_hash(part: impl Hash) -> u64 {
    let mut hasher = PartHasher::default();
    part.hash(&mut hasher);
    hasher.0
}

/// The hasher of [`part_hash`]; start it with [`PartHasher::default`].
pub(crate) struct PartHasher(u64);

impl Default for PartHasher {
    fn default() -> Self {
        PartHasher(PART_SEED)
    }
}

impl Hasher for PartHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(n.into());
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(n.into());
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n.into());
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = fmix64(self.0 ^ n);
    }
}

struct Frame<M: Model> {
    state: M::State,
    actions: Vec<M::Action>,
    /// The action that led here from the frame below (none for the initial state).
    arrived_by: Option<M::Action>,
}

/// Explores every state reachable from `model.init()`, checking `properties` in each.
/// Stops early at the first violation if `stop_at_violation`. Violation traces are
/// shrunk ([`shrink`]) so they show only steps the violation needs.
pub(crate) fn explore<M: Model>(
    model: &M,
    properties: &[Property<M>],
    stop_at_violation: bool,
) -> Report<M>
where
    M::Action: Clone + PartialEq,
{
    explore_observed(model, properties, stop_at_violation, &mut |_| {})
}

/// [`explore`], calling `observe` on every state visited (one per fingerprint): for
/// cross-checks of a model's reductions.
pub(crate) fn explore_observed<M: Model>(
    model: &M,
    properties: &[Property<M>],
    stop_at_violation: bool,
    observe: &mut dyn FnMut(&M::State),
) -> Report<M>
where
    M::Action: Clone + PartialEq,
{
    let mut report = search(model, properties, stop_at_violation, observe);
    shrink_violations(model, properties, &mut report);
    report
}

fn shrink_violations<M: Model>(model: &M, properties: &[Property<M>], report: &mut Report<M>)
where
    M::Action: Clone + PartialEq,
{
    for trace in &mut report.violations {
        if let Some(property) = properties.iter().find(|p| p.name == trace.property) {
            let (actions, state) = shrink(model, property, std::mem::take(&mut trace.actions));
            trace.actions = actions;
            trace.state = state;
        }
    }
}

/// Removes, one at a time, every step of a violating trace whose removal still leaves a
/// valid run ending in a violation of `property`. Depth-first traces wander; the shrunk
/// trace is locally minimal: dropping any one more step loses the violation.
fn shrink<M: Model>(
    model: &M,
    property: &Property<M>,
    mut actions: Vec<M::Action>,
) -> (Vec<M::Action>, M::State)
where
    M::Action: Clone + PartialEq,
{
    let violates = |actions: &[M::Action]| {
        replay(model, actions).filter(|state| !(property.holds)(model, state))
    };
    let mut i = 0;
    while i < actions.len() {
        let mut shorter = actions.clone();
        shorter.remove(i);
        if violates(&shorter).is_some() {
            actions = shorter;
        } else {
            i += 1;
        }
    }
    let state = violates(&actions).expect("the shrunk trace still violates");
    (actions, state)
}

/// The state after `actions`, if each was enabled and changed something.
fn replay<M: Model>(model: &M, actions: &[M::Action]) -> Option<M::State>
where
    M::Action: PartialEq,
{
    let mut state = model.init();
    let mut enabled = Vec::new();
    for action in actions {
        enabled.clear();
        model.actions(&state, &mut enabled);
        if !enabled.contains(action) {
            return None;
        }
        state = model.next(&state, action, &|_| false)?;
    }
    Some(state)
}

fn search<M: Model>(
    model: &M,
    properties: &[Property<M>],
    stop_at_violation: bool,
    observe: &mut dyn FnMut(&M::State),
) -> Report<M>
where
    M::Action: Clone,
{
    let mut report = Report::empty();
    let mut visited = Fingerprints::default();
    let init = model.init();
    visited.insert(model.fingerprint(&init));
    observe(&init);
    let mut stack = vec![visit(model, properties, init, None, &mut report, &[])];
    while let Some(top) = stack.last_mut() {
        let Some(action) = top.actions.pop() else {
            stack.pop();
            continue;
        };
        let Some(next) = model.next(&top.state, &action, &|f| visited.contains(&f)) else {
            continue;
        };
        if !visited.insert(model.fingerprint(&next)) {
            continue;
        }
        if visited.len() % PROGRESS_EVERY == 0 {
            // Long searches run by hand: show they move (the harness hides it otherwise).
            eprintln!("explored {} states, depth {}", visited.len(), stack.len());
        }
        observe(&next);
        let frame = visit(model, properties, next, Some(action), &mut report, &stack);
        stack.push(frame);
        report.depth_max = report.depth_max.max(stack.len() - 1);
        if stop_at_violation && !report.violations.is_empty() {
            report.stopped_early = true;
            break;
        }
    }
    report
}

fn visit<M: Model>(
    model: &M,
    properties: &[Property<M>],
    state: M::State,
    arrived_by: Option<M::Action>,
    report: &mut Report<M>,
    stack: &[Frame<M>],
) -> Frame<M>
where
    M::Action: Clone,
{
    let path = || {
        let mut actions: Vec<M::Action> =
            stack.iter().filter_map(|f| f.arrived_by.clone()).collect();
        actions.extend(arrived_by.clone());
        actions
    };
    check(model, properties, &state, path, report);
    let mut actions = Vec::new();
    model.actions(&state, &mut actions);
    // Explore in the order the model listed its actions (the stack pops from the end).
    actions.reverse();
    Frame {
        state,
        actions,
        arrived_by,
    }
}

/// Counts `state` and records, for each property not yet decided, a trace to it if it
/// decides the property (an `Always` that fails, a `Sometimes` that holds).
fn check<M: Model>(
    model: &M,
    properties: &[Property<M>],
    state: &M::State,
    path: impl Fn() -> Vec<M::Action>,
    report: &mut Report<M>,
) {
    report.states += 1;
    for property in properties {
        let decided = match property.expect {
            Expect::Always => &mut report.violations,
            Expect::Sometimes => &mut report.examples,
        };
        if decided.iter().any(|t| t.property == property.name) {
            continue;
        }
        let holds = (property.holds)(model, state);
        if holds == (property.expect == Expect::Sometimes) {
            decided.push(Trace {
                property: property.name,
                actions: path(),
                state: state.clone(),
            });
        }
    }
}

/// How many random walks to take, how long each may be, and the seed that picks them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Walks {
    pub walks: usize,
    pub depth: usize,
    pub seed: u64,
}

/// Random walks from `model.init()`, for bounds too large to explore exhaustively (as
/// stateright's simulation checker and TLC's `-simulate`): each walk takes, at every
/// step, an action drawn uniformly among those that change the state, until none does or
/// the walk reaches `depth`, checking `properties` in every state it passes. Stops at the
/// first violation, shrunk as [`explore`]'s are. `states` counts the steps taken, not
/// distinct states; the same `Walks` take the same steps. Finding nothing proves
/// nothing, but walks reach depths and interleavings exhaustive search cannot.
pub(crate) fn random_walks<M: Model>(
    model: &M,
    properties: &[Property<M>],
    walks: Walks,
) -> Report<M>
where
    M::Action: Clone + PartialEq,
{
    let mut report = Report::empty();
    let mut random = SplitMix(walks.seed);
    for _ in 0..walks.walks {
        let path = walk(model, properties, walks.depth, &mut random, &mut report);
        report.depth_max = report.depth_max.max(path);
        if !report.violations.is_empty() {
            report.stopped_early = true;
            break;
        }
    }
    shrink_violations(model, properties, &mut report);
    report
}

/// One walk; returns its length.
fn walk<M: Model>(
    model: &M,
    properties: &[Property<M>],
    depth: usize,
    random: &mut SplitMix,
    report: &mut Report<M>,
) -> usize
where
    M::Action: Clone,
{
    let mut state = model.init();
    let mut path: Vec<M::Action> = Vec::new();
    check(model, properties, &state, || path.clone(), report);
    let mut enabled = Vec::new();
    while path.len() < depth && report.violations.is_empty() {
        enabled.clear();
        model.actions(&state, &mut enabled);
        let Some((action, next)) = step(model, &state, &mut enabled, random) else {
            break;
        };
        state = next;
        path.push(action);
        check(model, properties, &state, || path.clone(), report);
    }
    path.len()
}

/// A random action of `enabled` that changes `state`, and the state it leads to.
fn step<M: Model>(
    model: &M,
    state: &M::State,
    enabled: &mut Vec<M::Action>,
    random: &mut SplitMix,
) -> Option<(M::Action, M::State)> {
    while !enabled.is_empty() {
        let bound = u64::try_from(enabled.len()).ok()?;
        let pick = usize::try_from(random.next() % bound).ok()?;
        let action = enabled.swap_remove(pick);
        if let Some(next) = model.next(state, &action, &|_| false) {
            return Some((action, next));
        }
    }
    None
}

/// A tiny deterministic generator (splitmix64): walks need spread, not cryptography.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        fmix64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two counters, each may step up to 3. `noise_first` lists counter 1's step first, so
    /// depth-first search wanders through it before the steps a violation needs.
    struct Counters {
        noise_first: bool,
    }

    impl Model for Counters {
        type State = [u8; 2];
        type Action = usize;
        fn init(&self) -> [u8; 2] {
            [0, 0]
        }
        fn actions(&self, state: &[u8; 2], actions: &mut Vec<usize>) {
            let order = if self.noise_first { [1, 0] } else { [0, 1] };
            actions.extend(order.into_iter().filter(|&i| state[i] < 3));
        }
        fn next(&self, state: &[u8; 2], &i: &usize, _: &dyn Fn(u64) -> bool) -> Option<[u8; 2]> {
            let mut next = *state;
            next[i] += 1;
            Some(next)
        }
        fn fingerprint(&self, state: &[u8; 2]) -> u64 {
            hash_fingerprint(state)
        }
    }

    const PLAIN: Counters = Counters { noise_first: false };

    fn properties() -> Vec<Property<Counters>> {
        vec![
            Property {
                name: "sum below 5",
                expect: Expect::Always,
                holds: |_, s| s[0] + s[1] < 5,
            },
            Property {
                name: "both at 3",
                expect: Expect::Sometimes,
                holds: |_, s| *s == [3, 3],
            },
        ]
    }

    #[test]
    fn explores_every_state_once_and_reports_traces() {
        let report = explore(&PLAIN, &properties(), false);
        assert_eq!(report.states, 16);
        assert_eq!(report.depth_max, 6);
        assert_eq!(report.violated(), vec!["sum below 5"]);
        assert_eq!(report.reached(), vec!["both at 3"]);
        let violation = &report.violations[0];
        assert_eq!(
            violation.actions.len(),
            5,
            "shrunk to the five steps it needs"
        );
        assert_eq!(violation.state[0] + violation.state[1], 5);
        assert!(!report.stopped_early);
    }

    #[test]
    fn violation_traces_are_shrunk() {
        let properties = [Property {
            name: "counter 0 below 2",
            expect: Expect::Always,
            holds: |_: &Counters, s: &[u8; 2]| s[0] < 2,
        }];
        let noisy = Counters { noise_first: true };
        let unshrunk = search(&noisy, &properties, true, &mut |_| {});
        assert!(unshrunk.violations[0].actions.len() > 2);
        let report = explore(&noisy, &properties, true);
        assert_eq!(report.violations[0].actions, vec![0, 0]);
        assert_eq!(report.violations[0].state, [2, 0]);
    }

    #[test]
    fn random_walks_find_what_exhaustive_search_finds() {
        let walks = Walks {
            walks: 50,
            depth: 10,
            seed: 7,
        };
        let report = random_walks(&Counters { noise_first: true }, &properties(), walks);
        assert_eq!(report.violated(), vec!["sum below 5"]);
        assert!(report.stopped_early);
        assert_eq!(report.violations[0].actions.len(), 5, "shrunk");
        let again = random_walks(&Counters { noise_first: true }, &properties(), walks);
        assert_eq!(again.states, report.states, "the same walks every time");
    }

    #[test]
    fn random_walks_reach_what_they_can_and_stop_at_the_depth() {
        let properties = [Property {
            name: "both at 3",
            expect: Expect::Sometimes,
            holds: |_: &Counters, s: &[u8; 2]| *s == [3, 3],
        }];
        let walks = Walks {
            walks: 20,
            depth: 4,
            seed: 1,
        };
        let short = random_walks(&PLAIN, &properties, walks);
        assert_eq!(short.depth_max, 4);
        assert_eq!(
            short.states,
            20 * 5,
            "each walk: the initial state and 4 steps"
        );
        assert!(short.reached().is_empty(), "[3, 3] is 6 steps away");
        let long = random_walks(
            &PLAIN,
            &properties,
            Walks {
                depth: 100,
                ..walks
            },
        );
        assert_eq!(
            long.depth_max, 6,
            "every walk ends at [3, 3], where nothing is enabled"
        );
        assert_eq!(long.reached(), vec!["both at 3"]);
    }

    #[test]
    fn can_stop_at_the_first_violation() {
        let report = explore(&PLAIN, &properties(), true);
        assert!(report.stopped_early);
        assert!(report.states < 16);
    }
}
