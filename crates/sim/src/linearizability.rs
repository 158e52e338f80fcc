//! A linearizability checker for key-value histories: Wing and Gong's search with Lowe's
//! memoisation (as in Porcupine), run separately per key (linearizability is compositional:
//! a history is linearizable iff each key's sub-history is).
//!
//! The search walks the history's call and return events in time order, tries to
//! linearize each operation that has been called (apply it to the model; if the model
//! agrees with what the client was told, go on), and backtracks when it reaches the return
//! of an operation not yet linearized. A cache of (operations linearized, model state)
//! stops it from exploring the same situation twice.
//!
//! An operation with an unknown outcome returns "at infinity": it may be linearized
//! anywhere after its call, including after everything else, which is the same as never.
//! A search that exceeds its budget reports [`Verdict::Unknown`], never a pass.

use std::collections::HashMap;

use rustc_hash::FxHashSet;

use crate::history::{Input, Operation, Output};

/// The outcome of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history is linearizable.
    Linearizable,
    /// Some key's history is not.
    Violation(Violation),
    /// The search ran out of budget on some key before deciding (and found no violation
    /// on the keys it finished).
    Unknown {
        /// The key it gave up on.
        key: String,
    },
}

/// A key whose history cannot be linearized, with the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: String,
    /// The longest prefix of that key's operations the search could linearize (indices
    /// into the history given to [`check`]), in linearization order.
    pub longest_prefix: Vec<usize>,
    /// The operations that could not be placed after that prefix: each was either not
    /// called yet or contradicted the value the key held.
    pub stuck_at: Vec<usize>,
}

/// Checks `history`, spending at most `budget` search steps per key.
pub fn check(history: &[Operation], budget: u64) -> Verdict {
    let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, op) in history.iter().enumerate() {
        if op.input == Input::Get && op.output == Output::Unknown {
            continue; // A read that never answered changed nothing and showed nothing.
        }
        by_key.entry(op.key.as_str()).or_default().push(i);
    }
    let mut keys: Vec<&str> = by_key.keys().copied().collect();
    keys.sort_unstable();
    let mut unknown = None;
    for key in keys {
        match check_key(history, &by_key[key], budget) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Violation {
                longest_prefix,
                stuck_at,
            } => {
                return Verdict::Violation(Violation {
                    key: key.to_owned(),
                    longest_prefix,
                    stuck_at,
                })
            }
            KeyVerdict::OutOfBudget => {
                unknown.get_or_insert_with(|| key.to_owned());
            }
        }
    }
    match unknown {
        Some(key) => Verdict::Unknown { key },
        None => Verdict::Linearizable,
    }
}

enum KeyVerdict {
    Linearizable,
    Violation {
        longest_prefix: Vec<usize>,
        stuck_at: Vec<usize>,
    },
    OutOfBudget,
}

/// The model's state for one key: the interned value it holds, if any.
type State = Option<u32>;

/// One key's operations with values interned, so states are small and cheap to hash.
#[derive(Clone, Copy)]
enum Step {
    Get(State),
    Put(u32),
    Delete,
    Cas {
        expect: State,
        value: u32,
        ok: Option<bool>,
    },
    /// A write whose outcome is unknown: it takes effect wherever it is linearized.
    Any(Effect),
    /// Constrains nothing, changes nothing.
    Nothing,
}

#[derive(Clone, Copy)]
enum Effect {
    Put(u32),
    Delete,
}

impl Step {
    /// The state after this step from `state`, if what the client was told is possible.
    fn apply(self, state: State) -> Option<State> {
        match self {
            Step::Get(seen) => (seen == state).then_some(state),
            Step::Nothing => Some(state),
            Step::Put(v) | Step::Any(Effect::Put(v)) => Some(Some(v)),
            Step::Delete | Step::Any(Effect::Delete) => Some(None),
            Step::Cas { expect, value, ok } => {
                let matches = state == expect;
                match ok {
                    Some(ok) if ok != matches => None,
                    _ if matches => Some(Some(value)),
                    _ => Some(state),
                }
            }
        }
    }
}

struct Interner<'a>(HashMap<&'a str, u32>);

impl<'a> Interner<'a> {
    fn id(&mut self, value: &'a str) -> u32 {
        let next = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        *self.0.entry(value).or_insert(next)
    }

    fn state(&mut self, value: &'a Option<String>) -> State {
        value.as_deref().map(|v| self.id(v))
    }

    fn step(&mut self, op: &'a Operation) -> Step {
        match (&op.input, &op.output) {
            (Input::Get, Output::Get(seen)) => Step::Get(self.state(seen)),
            (Input::Put(v), Output::Unknown) => Step::Any(Effect::Put(self.id(v))),
            (Input::Put(v), _) => Step::Put(self.id(v)),
            (Input::Delete, Output::Unknown) => Step::Any(Effect::Delete),
            (Input::Delete, _) => Step::Delete,
            (Input::Cas { expect, value }, output) => Step::Cas {
                expect: self.state(expect),
                value: self.id(value),
                ok: match output {
                    Output::Cas(ok) => Some(*ok),
                    _ => None,
                },
            },
            // A read answered like a write (not produced by `parse`) shows nothing.
            (Input::Get, _) => Step::Nothing,
        }
    }
}

/// A call or return event in the doubly linked list the search lifts operations out of.
#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    /// For a call: the index of its return event.
    partner: usize,
    prev: usize,
    next: usize,
}

fn check_key(history: &[Operation], ops: &[usize], budget: u64) -> KeyVerdict {
    let mut interner = Interner(HashMap::new());
    let steps: Vec<Step> = ops.iter().map(|&i| interner.step(&history[i])).collect();
    let mut events = build_events(history, ops);
    let head = 0;
    let mut linearized = vec![0u64; ops.len().div_ceil(64)];
    let mut cache: FxHashSet<(Vec<u64>, State)> = FxHashSet::default();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = None;
    let mut longest: Vec<usize> = Vec::new();
    let mut stuck = Vec::new();
    let mut spent = 0u64;
    let mut entry = events[head].next;
    while events[head].next != head {
        spent += 1;
        if spent > budget {
            return KeyVerdict::OutOfBudget;
        }
        let event = events[entry];
        if event.is_call {
            if let Some(next_state) = steps[event.op].apply(state) {
                set_bit(&mut linearized, event.op, true);
                if cache.insert((linearized.clone(), next_state)) {
                    stack.push((entry, state));
                    state = next_state;
                    lift(&mut events, entry);
                    entry = events[head].next;
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|&(e, _)| ops[events[e].op]).collect();
                        stuck.clear();
                    }
                    continue;
                }
                set_bit(&mut linearized, event.op, false);
            }
            entry = event.next;
        } else {
            if stack.len() == longest.len() {
                stuck.push(ops[event.op]);
            }
            let Some((call, previous)) = stack.pop() else {
                return KeyVerdict::Violation {
                    longest_prefix: longest,
                    stuck_at: stuck,
                };
            };
            state = previous;
            set_bit(&mut linearized, events[call].op, false);
            unlift(&mut events, call);
            entry = events[call].next;
        }
    }
    KeyVerdict::Linearizable
}

/// Events sorted by time (calls before returns at equal times, the permissive choice:
/// equal times are treated as overlapping), linked in a circular list headed by event 0.
fn build_events(history: &[Operation], ops: &[usize]) -> Vec<Event> {
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (k, &i) in ops.iter().enumerate() {
        let op = &history[i];
        order.push((op.call, false, k));
        order.push((op.ret.unwrap_or(u64::MAX), true, k));
    }
    // (time, is_return): calls sort first at equal times.
    order.sort_unstable();
    let mut events = vec![Event {
        op: usize::MAX,
        is_call: false,
        partner: 0,
        prev: order.len(),
        next: 1,
    }];
    let mut return_of = vec![0; ops.len()];
    for (position, &(_, is_return, k)) in order.iter().enumerate() {
        let index = position + 1;
        if is_return {
            return_of[k] = index;
        }
        events.push(Event {
            op: k,
            is_call: !is_return,
            partner: 0,
            prev: index - 1,
            next: (index + 1) % (order.len() + 1),
        });
    }
    for event in events.iter_mut().skip(1) {
        if event.is_call {
            event.partner = return_of[event.op];
        }
    }
    events
}

fn lift(events: &mut [Event], call: usize) {
    for e in [call, events[call].partner] {
        let (prev, next) = (events[e].prev, events[e].next);
        events[prev].next = next;
        events[next].prev = prev;
    }
}

fn unlift(events: &mut [Event], call: usize) {
    for e in [events[call].partner, call] {
        let (prev, next) = (events[e].prev, events[e].next);
        events[prev].next = e;
        events[next].prev = e;
    }
}

fn set_bit(bits: &mut [u64], i: usize, on: bool) {
    let (word, bit) = (i / 64, 1u64 << (i % 64));
    if on {
        bits[word] |= bit;
    } else {
        bits[word] &= !bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::parse;

    fn verdict(text: &str) -> Verdict {
        check(&parse(text).unwrap(), 1_000_000)
    }

    #[test]
    fn a_read_of_a_completed_write_is_linearizable() {
        let text = r#"{"client":1,"key":"k","op":"put","value":"a","call":0,"return":10}
{"client":2,"key":"k","op":"get","call":11,"return":12,"result":"a"}"#;
        assert_eq!(verdict(text), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_a_violation() {
        let text = r#"{"client":1,"key":"k","op":"put","value":"a","call":0,"return":10}
{"client":1,"key":"k","op":"put","value":"b","call":11,"return":20}
{"client":2,"key":"k","op":"get","call":21,"return":22,"result":"a"}"#;
        let Verdict::Violation(v) = verdict(text) else {
            panic!("missed a stale read");
        };
        assert_eq!(v.key, "k");
        assert_eq!(v.longest_prefix, vec![0, 1]);
        assert_eq!(v.stuck_at, vec![2]);
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        let text = r#"{"client":1,"key":"k","op":"put","value":"a","call":0,"return":10}
{"client":2,"key":"k","op":"put","value":"b","call":1,"return":9}
{"client":3,"key":"k","op":"get","call":11,"return":12,"result":"a"}
{"client":3,"key":"k","op":"get","call":13,"return":14,"result":"a"}"#;
        assert_eq!(verdict(text), Verdict::Linearizable);
    }

    #[test]
    fn reads_cannot_go_back_in_time() {
        let text = r#"{"client":1,"key":"k","op":"put","value":"a","call":0,"return":10}
{"client":2,"key":"k","op":"put","value":"b","call":1,"return":9}
{"client":3,"key":"k","op":"get","call":11,"return":12,"result":"a"}
{"client":3,"key":"k","op":"get","call":13,"return":14,"result":"b"}"#;
        assert!(matches!(verdict(text), Verdict::Violation(_)));
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_happened() {
        let took_effect = r#"{"client":1,"key":"k","op":"put","value":"a","call":0}
{"client":2,"key":"k","op":"get","call":5,"return":6,"result":"a"}
{"client":2,"key":"k","op":"get","call":7,"return":8,"result":"a"}"#;
        assert_eq!(verdict(took_effect), Verdict::Linearizable);
        let never = r#"{"client":1,"key":"k","op":"put","value":"a","call":0}
{"client":2,"key":"k","op":"get","call":5,"return":6,"result":null}"#;
        assert_eq!(verdict(never), Verdict::Linearizable);
        let flickers = r#"{"client":1,"key":"k","op":"put","value":"a","call":0}
{"client":2,"key":"k","op":"get","call":5,"return":6,"result":"a"}
{"client":2,"key":"k","op":"get","call":7,"return":8,"result":null}"#;
        assert!(matches!(verdict(flickers), Verdict::Violation(_)));
    }

    #[test]
    fn compare_and_set_must_agree_with_the_value_held() {
        let ok = r#"{"client":1,"key":"k","op":"put","value":"a","call":0,"return":1}
{"client":1,"key":"k","op":"cas","expect":"a","value":"b","call":2,"return":3,"ok":true}
{"client":1,"key":"k","op":"cas","expect":"a","value":"c","call":4,"return":5,"ok":false}
{"client":1,"key":"k","op":"get","call":6,"return":7,"result":"b"}"#;
        assert_eq!(verdict(ok), Verdict::Linearizable);
        let wrong = r#"{"client":1,"key":"k","op":"put","value":"a","call":0,"return":1}
{"client":1,"key":"k","op":"cas","expect":"a","value":"b","call":2,"return":3,"ok":false}"#;
        assert!(matches!(verdict(wrong), Verdict::Violation(_)));
        let absent = r#"{"client":1,"key":"k","op":"cas","expect":null,"value":"b","call":2,"return":3,"ok":true}
{"client":1,"key":"k","op":"delete","call":4,"return":5}
{"client":1,"key":"k","op":"get","call":6,"return":7,"result":null}"#;
        assert_eq!(verdict(absent), Verdict::Linearizable);
    }

    #[test]
    fn keys_are_checked_separately_and_a_tiny_budget_is_unknown_not_a_pass() {
        let text = r#"{"client":1,"key":"x","op":"put","value":"a","call":0,"return":10}
{"client":2,"key":"y","op":"get","call":1,"return":2,"result":"a"}"#;
        let Verdict::Violation(v) = verdict(text) else {
            panic!("y was never written");
        };
        assert_eq!(v.key, "y");
        let fine = r#"{"client":1,"key":"x","op":"put","value":"a","call":0,"return":10}"#;
        assert_eq!(
            check(&parse(fine).unwrap(), 0),
            Verdict::Unknown { key: "x".into() }
        );
    }
}
