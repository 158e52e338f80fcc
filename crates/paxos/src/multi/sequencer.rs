//! The durability contract of a replica's actions, carried out in one place. Every driver
//! (the server's core, the simulator, the scenario-test cluster) hands its replica's
//! actions to a [`Sequencer`] and does what comes back, in order; none decides for itself
//! what may run before a sync.
//!
//! The rules ([`Action`]'s contract):
//! - consecutive [`Action::Persist`]s form one **submission**, numbered (its tag), which
//!   the driver hands to storage; storage makes submissions durable in tag order (a later
//!   one durable implies every earlier one) and the driver reports each with
//!   [`Sequencer::durable`];
//! - every other action waits until the last submission before it is durable, and until
//!   every action held before it ran (sends leave in order);
//! - except an **apply**: its entry is chosen, so durable on a phase-2 quorum already; it
//!   waits only for the applies and snapshot installs held before it (the state machine
//!   changes in log order). A crash may then roll the state machine back to the durable
//!   log, from which the slots are learned again;
//! - a **commit hint** ([`Action::CommitHint`]) is no submission: the engine may lose it
//!   (the commit point is learned again), so it is written (as `Write::Commit`) with the
//!   persists it follows, or the next submission, or a quiet tick's
//!   ([`Sequencer::flush_commit_hint`]), and nothing waits for it. A sync per commit
//!   point would make every write's sync queue behind the previous one's.

use std::collections::VecDeque;

use super::message::{Action, Slot, Write};

/// What the driver does next, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<C> {
    /// Hand `writes` to storage as submission `tag`; call [`Sequencer::durable`] with
    /// `tag` once they are durable.
    Persist {
        /// The submission's number: they count up from 1.
        tag: u64,
        /// The writes, in order.
        writes: Vec<Write<C>>,
    },
    /// Carry out this action now.
    Run(Action<C>),
}

/// Holds each action until what it reports is durable (see the module documentation).
#[derive(Clone, Debug)]
pub struct Sequencer<C> {
    held: VecDeque<(u64, Action<C>)>,
    /// How many held actions change the state machine (applies and snapshot installs).
    store_changes: usize,
    /// The last submission's tag.
    submitted: u64,
    /// The submission every action from now on waits for (a commit hint alone is none).
    required: u64,
    /// Every submission through this tag is durable.
    durable: u64,
    /// The latest commit point not yet handed to storage.
    commit_hint: Option<Slot>,
    /// Applies that ran while a submission before them was not yet durable.
    applies_ahead: u64,
    #[cfg(feature = "negative-controls")]
    acks_before_sync: bool,
}

impl<C> Default for Sequencer<C> {
    fn default() -> Self {
        Sequencer {
            held: VecDeque::new(),
            store_changes: 0,
            submitted: 0,
            required: 0,
            durable: 0,
            commit_hint: None,
            applies_ahead: 0,
            #[cfg(feature = "negative-controls")]
            acks_before_sync: false,
        }
    }
}

impl<C> Sequencer<C> {
    /// A sequencer with nothing submitted.
    pub fn new() -> Sequencer<C> {
        Sequencer::default()
    }

    /// Takes a replica's actions, in the order it emitted them; returns what to do now.
    pub fn schedule(&mut self, actions: Vec<Action<C>>) -> Vec<Step<C>> {
        let mut steps = Vec::new();
        let mut writes = Vec::new();
        for action in actions {
            match action {
                Action::Persist(write) => {
                    writes.push(write);
                    continue;
                }
                Action::CommitHint(through) if !writes.is_empty() => {
                    writes.push(Write::Commit(through));
                    continue;
                }
                Action::CommitHint(through) => {
                    self.commit_hint = self.commit_hint.max(Some(through));
                    continue;
                }
                _ => {}
            }
            if !writes.is_empty() {
                steps.push(self.submit(std::mem::take(&mut writes)));
            }
            if let Some(action) = self.admit(action) {
                steps.push(Step::Run(action));
            }
        }
        if !writes.is_empty() {
            steps.push(self.submit(writes));
        }
        steps
    }

    /// Submission `tag` (and so every one before it) is durable: the actions that may run
    /// now, in order.
    pub fn durable(&mut self, tag: u64) -> Vec<Action<C>> {
        debug_assert!(tag <= self.submitted, "submission {tag} was never made");
        self.durable = self.durable.max(tag);
        let mut released = Vec::new();
        while self.held.front().is_some_and(|(t, _)| *t <= self.durable) {
            let Some((_, action)) = self.held.pop_front() else {
                break;
            };
            if changes_the_store(&action) {
                self.store_changes -= 1;
            }
            released.push(action);
        }
        released
    }

    /// A commit point no submission has carried, as a submission of its own (on a quiet
    /// tick: a member's durable commit point is then at most a tick behind). Nothing
    /// waits for it.
    pub fn flush_commit_hint(&mut self) -> Option<Step<C>> {
        let through = self.commit_hint.take()?;
        self.submitted += 1;
        Some(Step::Persist {
            tag: self.submitted,
            writes: vec![Write::Commit(through)],
        })
    }

    /// Whether every submission is durable and nothing is held.
    pub fn is_idle(&self) -> bool {
        self.held.is_empty() && self.durable == self.submitted
    }

    /// Applies that ran while a submission before them was not yet durable.
    pub fn applies_ahead(&self) -> u64 {
        self.applies_ahead
    }

    /// Breaks the contract on purpose, for the simulator's negative control: every action
    /// runs at once, acknowledgements before the state they report is durable.
    #[cfg(feature = "negative-controls")]
    pub fn acknowledge_before_sync(&mut self) {
        self.acks_before_sync = true;
    }

    /// Feeds `hasher` what decides this sequencer's future, for the exhaustive model check
    /// (`multi/model_check.rs`): every submission tag as `rank` classes it (the model's
    /// storage reports submissions durable in groups, and tags reported together behave
    /// alike), and, of the actions held, those `keep` keeps (the model leaves out a send
    /// held a second time: its network is a set, and the first copy leaves no later). The
    /// count of applies that ran ahead is a statistic, left out.
    #[cfg(test)]
    pub(crate) fn hash_model_state<H: std::hash::Hasher>(
        &self,
        h: &mut H,
        rank: impl Fn(u64) -> u64,
        mut keep: impl FnMut(&Action<C>) -> bool,
    ) where
        C: std::hash::Hash + std::fmt::Debug,
    {
        use std::hash::Hash;
        let Sequencer {
            held,
            store_changes,
            submitted,
            required,
            durable,
            commit_hint,
            applies_ahead: _,
            #[cfg(feature = "negative-controls")]
            acks_before_sync,
        } = self;
        for (tag, action) in held.iter().filter(|(_, action)| keep(action)) {
            rank(*tag).hash(h);
            match action {
                Action::Send { to, message } => (0u8, to, message).hash(h),
                Action::Apply { slot, entry } => (1u8, slot, entry).hash(h),
                Action::ReadReady { id } => (2u8, id).hash(h),
                Action::ReadFailed { id, error } => (3u8, id, error).hash(h),
                other => unreachable!("a model sequencer holds no {other:?}"),
            }
        }
        let tags = [*submitted, *required, *durable].map(rank);
        (u64::MAX, store_changes, tags, commit_hint).hash(h);
        #[cfg(feature = "negative-controls")]
        acks_before_sync.hash(h);
    }

    fn submit(&mut self, mut writes: Vec<Write<C>>) -> Step<C> {
        if let Some(through) = self.commit_hint.take() {
            writes.push(Write::Commit(through));
        }
        self.submitted += 1;
        self.required = self.submitted;
        Step::Persist {
            tag: self.submitted,
            writes,
        }
    }

    /// `action` if it may run now; held otherwise.
    fn admit(&mut self, action: Action<C>) -> Option<Action<C>> {
        #[cfg(feature = "negative-controls")]
        if self.acks_before_sync {
            return Some(action);
        }
        let apply = matches!(action, Action::Apply { .. });
        let settled = self.held.is_empty() && self.durable >= self.required;
        if settled || (apply && self.store_changes == 0) {
            if apply && !settled {
                self.applies_ahead += 1;
            }
            return Some(action);
        }
        if changes_the_store(&action) {
            self.store_changes += 1;
        }
        self.held.push_back((self.required, action));
        None
    }
}

fn changes_the_store<C>(action: &Action<C>) -> bool {
    matches!(
        action,
        Action::Apply { .. } | Action::InstallSnapshot { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multi::{Entry, Message, SnapshotData};
    use crate::{Ballot, NodeId};

    fn apply(slot: Slot) -> Action<u64> {
        Action::Apply {
            slot,
            entry: Entry::Command(slot),
        }
    }

    fn send(to: u64) -> Action<u64> {
        Action::Send {
            to: NodeId(to),
            message: Message::Nack {
                ballot: Ballot::ZERO,
                promised: Ballot::ZERO,
            },
        }
    }

    fn install(index: Slot) -> Action<u64> {
        Action::InstallSnapshot {
            index,
            data: SnapshotData::from(vec![1, 2, 3]),
        }
    }

    fn persist(ballot: u64) -> Action<u64> {
        Action::Persist(Write::Promise(Ballot::new(ballot, NodeId(1))))
    }

    fn written(ballot: u64) -> Write<u64> {
        Write::Promise(Ballot::new(ballot, NodeId(1)))
    }

    #[test]
    fn sends_wait_for_the_persists_before_them_and_applies_do_not() {
        let mut s = Sequencer::new();
        let steps = s.schedule(vec![send(9), persist(1), send(2), apply(5), send(3)]);
        assert_eq!(
            steps,
            vec![
                Step::Run(send(9)),
                Step::Persist {
                    tag: 1,
                    writes: vec![written(1)]
                },
                Step::Run(apply(5)),
            ]
        );
        assert_eq!(s.applies_ahead(), 1);
        assert!(!s.is_idle());
        assert_eq!(s.durable(1), vec![send(2), send(3)]);
        assert!(s.is_idle());
        // Nothing held and everything durable: anything runs at once.
        assert_eq!(s.schedule(vec![send(4)]), vec![Step::Run(send(4))]);
    }

    #[test]
    fn consecutive_persists_are_one_submission_and_a_later_durable_covers_earlier() {
        let mut s = Sequencer::new();
        let steps = s.schedule(vec![persist(1), persist(2), send(2), persist(3), send(3)]);
        assert_eq!(
            steps,
            vec![
                Step::Persist {
                    tag: 1,
                    writes: vec![written(1), written(2)]
                },
                Step::Persist {
                    tag: 2,
                    writes: vec![written(3)]
                },
            ]
        );
        assert_eq!(s.durable(2), vec![send(2), send(3)]);
    }

    #[test]
    fn a_held_action_keeps_later_ones_behind_it_even_once_durable() {
        let mut s = Sequencer::new();
        s.schedule(vec![persist(1), send(2)]);
        let steps = s.schedule(vec![persist(2)]);
        assert_eq!(steps.len(), 1);
        assert_eq!(s.durable(1), vec![send(2)]);
        // Submission 1 is durable, but a send after submission 2 waits for it.
        assert_eq!(s.schedule(vec![send(3)]), vec![]);
        assert_eq!(s.durable(2), vec![send(3)]);
    }

    #[test]
    fn applies_wait_for_a_held_snapshot_install_and_keep_their_order() {
        let mut s = Sequencer::new();
        s.schedule(vec![persist(1), install(10), apply(11)]);
        assert_eq!(s.schedule(vec![persist(2), apply(12)]).len(), 1);
        assert_eq!(s.durable(1), vec![install(10), apply(11)]);
        assert_eq!(s.durable(2), vec![apply(12)]);
        // Nothing that changes the store is held: applies run ahead again.
        s.schedule(vec![persist(3), send(2)]);
        assert_eq!(s.schedule(vec![apply(13)]), vec![Step::Run(apply(13))]);
    }

    #[test]
    fn a_commit_hint_after_persists_rides_on_their_submission() {
        let mut s = Sequencer::new();
        let steps = s.schedule(vec![persist(1), Action::CommitHint(3), send(2)]);
        assert_eq!(
            steps,
            vec![Step::Persist {
                tag: 1,
                writes: vec![written(1), Write::Commit(3)]
            }]
        );
        assert_eq!(s.flush_commit_hint(), None);
        assert_eq!(s.durable(1), vec![send(2)]);
    }

    #[test]
    fn a_commit_hint_rides_on_the_next_submission_or_a_flush_and_holds_nothing() {
        let mut s = Sequencer::new();
        let steps = s.schedule(vec![Action::CommitHint(4), send(2)]);
        assert_eq!(
            steps,
            vec![Step::Run(send(2))],
            "a hint alone holds nothing"
        );
        s.schedule(vec![Action::CommitHint(7)]);
        let steps = s.schedule(vec![persist(1)]);
        assert_eq!(
            steps,
            vec![Step::Persist {
                tag: 1,
                writes: vec![written(1), Write::Commit(7)]
            }]
        );
        assert_eq!(s.flush_commit_hint(), None, "carried already");
        s.schedule(vec![Action::CommitHint(9)]);
        assert_eq!(
            s.flush_commit_hint(),
            Some(Step::Persist {
                tag: 2,
                writes: vec![Write::Commit(9)]
            })
        );
        // Nothing waits for the flushed hint's submission.
        assert_eq!(s.durable(1), vec![]);
        assert_eq!(s.schedule(vec![send(3)]), vec![Step::Run(send(3))]);
    }
}
