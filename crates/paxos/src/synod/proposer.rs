//! The proposer: runs ballots until its proposal, or the value already chosen, is chosen.

use std::sync::Arc;

use rand_core::RngCore;

use crate::ballot::Ballot;
use crate::node::{AcceptorSet, NodeId};
use crate::quorum::QuorumSystem;

use super::config::{Config, ConfigError, Role, SharedConfig};
use super::message::{Action, Message, Vote};

/// How long a proposer waits, in ticks. The driver decides how long a tick is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timing {
    /// A round (phase 1 or phase 2 of one ballot) that has not reached a quorum after this
    /// many ticks is abandoned: messages were lost or acceptors are down.
    pub round_timeout_ticks: u32,
    /// The first backoff is drawn from `1..=backoff_base_ticks`; each further failed round
    /// doubles the range.
    pub backoff_base_ticks: u32,
    /// The backoff range never exceeds `1..=backoff_max_ticks`.
    pub backoff_max_ticks: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            round_timeout_ticks: 20,
            backoff_base_ticks: 4,
            backoff_max_ticks: 64,
        }
    }
}

impl Timing {
    /// Checks the timeouts are usable; the error says which is not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problem = if self.round_timeout_ticks == 0 {
            "round_timeout_ticks must be at least 1"
        } else if self.backoff_base_ticks == 0 {
            "backoff_base_ticks must be at least 1"
        } else if self.backoff_base_ticks > self.backoff_max_ticks {
            "backoff_base_ticks must not exceed backoff_max_ticks"
        } else {
            return Ok(());
        };
        Err(ConfigError::Timing(problem))
    }
}

/// Where a proposer is in its protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Phase<V> {
    /// Not proposing yet.
    Idle,
    /// Phase 1: prepare sent, collecting promises.
    Preparing {
        /// This round's ballot.
        ballot: Ballot,
        /// Acceptors that promised.
        promised: AcceptorSet,
        /// The highest-ballot vote reported in those promises.
        highest: Option<Vote<V>>,
    },
    /// Phase 2: accept sent, collecting accepted replies.
    Accepting {
        /// This round's ballot.
        ballot: Ballot,
        /// The value proposed (the P2c choice).
        value: V,
        /// Acceptors that accepted.
        accepted: AcceptorSet,
    },
    /// A round failed; waiting before the next one so duelling proposers drift apart.
    BackingOff {
        /// Ticks to wait in all.
        wait_ticks: u32,
    },
    /// The proposer knows the chosen value.
    Chosen(Vote<V>),
    /// Every ballot round is used up (a ballot at `u64::MAX` was seen): never proposes again.
    Exhausted,
}

/// A Paxos proposer (also the distinguished learner of its own ballots).
///
/// `R` is the injected random source for backoff; the driver owns its seed, which keeps
/// runs replayable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposer<V, R> {
    id: NodeId,
    config: SharedConfig,
    value: V,
    timing: Timing,
    rng: R,
    phase: Phase<V>,
    /// The highest ballot seen anywhere (own, in promises, in nacks): the next ballot is
    /// above it. Also durable (see [`Action::PersistBallot`]) when it is the proposer's own.
    highest_seen: Ballot,
    /// Consecutive failed rounds: the backoff exponent.
    failed_rounds: u32,
    /// Ticks spent in the current phase.
    phase_ticks: u32,
    /// Negative control for the model checker: skip P2c and always propose `value`.
    #[cfg(test)]
    pub(crate) ignores_promised_votes: bool,
}

impl<V: Clone + Eq, R: RngCore> Proposer<V, R> {
    /// A proposer that will propose `value`, never having used a ballot.
    pub fn new(
        id: NodeId,
        config: Arc<Config>,
        value: V,
        timing: Timing,
        rng: R,
    ) -> Result<Proposer<V, R>, ConfigError> {
        Proposer::restart(id, config, value, timing, rng, Ballot::ZERO)
    }

    /// A proposer restarted with the last ballot its storage holds
    /// ([`Action::PersistBallot`]); its next ballot will be above it.
    pub fn restart(
        id: NodeId,
        config: Arc<Config>,
        value: V,
        timing: Timing,
        rng: R,
        last_ballot: Ballot,
    ) -> Result<Proposer<V, R>, ConfigError> {
        config.require(id, Role::Proposer)?;
        timing.validate()?;
        Ok(Proposer {
            id,
            config: SharedConfig(config),
            value,
            timing,
            rng,
            phase: Phase::Idle,
            highest_seen: last_ballot,
            failed_rounds: 0,
            phase_ticks: 0,
            #[cfg(test)]
            ignores_promised_votes: false,
        })
    }

    /// This proposer's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The value this proposer would like chosen.
    pub fn own_value(&self) -> &V {
        &self.value
    }

    /// Where the proposer is.
    pub fn phase(&self) -> &Phase<V> {
        &self.phase
    }

    /// The highest ballot this proposer has seen.
    pub fn highest_seen(&self) -> Ballot {
        self.highest_seen
    }

    /// The ballot of the round in progress, if one is.
    pub fn ballot(&self) -> Option<Ballot> {
        match self.phase {
            Phase::Preparing { ballot, .. } | Phase::Accepting { ballot, .. } => Some(ballot),
            _ => None,
        }
    }

    /// The chosen value, once this proposer knows it.
    pub fn chosen(&self) -> Option<&Vote<V>> {
        match &self.phase {
            Phase::Chosen(vote) => Some(vote),
            _ => None,
        }
    }

    /// Starts proposing. Does nothing unless idle: a proposer runs one proposal.
    pub fn propose(&mut self) -> Vec<Action<V>> {
        let actions = match self.phase {
            Phase::Idle => self.start_round(),
            _ => Vec::new(),
        };
        self.check_invariants();
        actions
    }

    /// Handles one message. Messages a proposer does not take, from nodes that are not
    /// acceptors, or for a ballot other than the current round's, change nothing — except
    /// that any higher ballot is remembered, so the next round starts above it.
    pub fn step(&mut self, from: NodeId, message: Message<V>) -> Vec<Action<V>> {
        let Some(index) = self.config.acceptor_index(from) else {
            return Vec::new();
        };
        let actions = match message {
            Message::Promise { ballot, accepted } => self.on_promise(index, ballot, accepted),
            Message::Nack { ballot, promised } => self.on_nack(ballot, promised),
            Message::Accepted { ballot, value } => self.on_accepted(index, ballot, value),
            Message::Prepare { .. } | Message::Accept { .. } => Vec::new(),
        };
        self.check_invariants();
        actions
    }

    /// Advances logical time by one tick: abandons a round that timed out, and starts the
    /// next round when the backoff is over.
    pub fn tick(&mut self) -> Vec<Action<V>> {
        self.phase_ticks = self.phase_ticks.saturating_add(1);
        let actions = match self.phase {
            Phase::Preparing { .. } | Phase::Accepting { .. }
                if self.phase_ticks >= self.timing.round_timeout_ticks =>
            {
                self.on_round_timeout()
            }
            Phase::BackingOff { wait_ticks } if self.phase_ticks >= wait_ticks => {
                self.start_round()
            }
            _ => Vec::new(),
        };
        self.check_invariants();
        actions
    }

    fn start_round(&mut self) -> Vec<Action<V>> {
        let Some(ballot) = Ballot::next_above(self.highest_seen, self.id) else {
            self.enter(Phase::Exhausted);
            return Vec::new();
        };
        self.highest_seen = ballot;
        self.enter(Phase::Preparing {
            ballot,
            promised: AcceptorSet::EMPTY,
            highest: None,
        });
        let mut actions = vec![Action::PersistBallot(ballot)];
        self.broadcast(&mut actions, Message::Prepare { ballot });
        actions
    }

    fn on_promise(
        &mut self,
        index: usize,
        ballot: Ballot,
        accepted: Option<Vote<V>>,
    ) -> Vec<Action<V>> {
        let Phase::Preparing {
            ballot: current,
            promised,
            highest,
        } = &mut self.phase
        else {
            return Vec::new();
        };
        // A correct acceptor's vote is below the ballot it promises; anything else is
        // malformed and must not steer the P2c choice.
        if ballot != *current || accepted.as_ref().is_some_and(|v| v.ballot >= ballot) {
            return Vec::new();
        }
        promised.insert(index);
        if let Some(vote) = accepted {
            if highest.as_ref().is_none_or(|h| vote.ballot > h.ballot) {
                *highest = Some(vote);
            }
        }
        if !self.config.quorum().is_phase1_quorum(*promised) {
            return Vec::new();
        }
        let highest = highest.take();
        let value = self.choose_value(highest);
        self.enter(Phase::Accepting {
            ballot,
            value: value.clone(),
            accepted: AcceptorSet::EMPTY,
        });
        let mut actions = Vec::with_capacity(self.config.acceptors().len());
        self.broadcast(&mut actions, Message::Accept { ballot, value });
        actions
    }

    /// P2c: the value of the highest-ballot vote among a phase-1 quorum's promises, or, if
    /// none of them accepted anything, the proposer's own.
    fn choose_value(&self, highest: Option<Vote<V>>) -> V {
        #[cfg(test)]
        if self.ignores_promised_votes {
            return self.value.clone();
        }
        match highest {
            Some(vote) => vote.value,
            None => self.value.clone(),
        }
    }

    fn on_nack(&mut self, ballot: Ballot, promised: Ballot) -> Vec<Action<V>> {
        self.highest_seen = self.highest_seen.max(promised);
        if self.ballot() == Some(ballot) && promised > ballot {
            // Fenced: an acceptor promised a higher ballot, so this round cannot reach a
            // quorum that includes it. Step down and retry above `promised` after a backoff.
            self.back_off();
        }
        Vec::new()
    }

    fn on_accepted(&mut self, index: usize, ballot: Ballot, value: V) -> Vec<Action<V>> {
        let Phase::Accepting {
            ballot: current,
            value: proposed,
            accepted,
        } = &mut self.phase
        else {
            return Vec::new();
        };
        if ballot != *current || value != *proposed {
            return Vec::new();
        }
        accepted.insert(index);
        if !self.config.quorum().is_phase2_quorum(*accepted) {
            return Vec::new();
        }
        self.failed_rounds = 0;
        self.enter(Phase::Chosen(Vote {
            ballot,
            value: value.clone(),
        }));
        vec![Action::Learn { ballot, value }]
    }

    fn on_round_timeout(&mut self) -> Vec<Action<V>> {
        self.back_off();
        Vec::new()
    }

    /// Randomized exponential backoff with full jitter: the wait is uniform in
    /// `1..=min(max, base · 2^min(failures-1, 16))`, so two duelling proposers soon pick different
    /// waits and one completes both phases before the other prepares again.
    fn back_off(&mut self) {
        self.failed_rounds = self.failed_rounds.saturating_add(1);
        let doublings = self.failed_rounds.saturating_sub(1).min(16);
        let range = u64::from(self.timing.backoff_base_ticks)
            .saturating_mul(1 << doublings)
            .min(u64::from(self.timing.backoff_max_ticks));
        let wait = 1 + self.rng.next_u64() % range;
        let wait_ticks = u32::try_from(wait).unwrap_or(self.timing.backoff_max_ticks);
        self.enter(Phase::BackingOff { wait_ticks });
    }

    fn enter(&mut self, phase: Phase<V>) {
        self.phase = phase;
        self.phase_ticks = 0;
    }

    fn broadcast(&self, actions: &mut Vec<Action<V>>, message: Message<V>) {
        for &to in self.config.acceptors() {
            actions.push(Action::Send {
                to,
                message: message.clone(),
            });
        }
    }

    /// Panics if the state breaks a proposer invariant. Runs after every handler, so a
    /// broken invariant stops a test or a simulation at the event that broke it.
    pub fn check_invariants(&self) {
        let acceptors = AcceptorSet::all(self.config.acceptors().len());
        if let Some(ballot) = self.ballot() {
            assert_eq!(ballot.node, self.id, "a proposer uses only its own ballots");
            assert!(
                ballot <= self.highest_seen,
                "the round's ballot was not recorded as seen"
            );
        }
        match &self.phase {
            Phase::Preparing {
                ballot,
                promised,
                highest,
            } => {
                assert!(
                    acceptors.is_superset(*promised),
                    "promise from a stranger counted"
                );
                if let Some(vote) = highest {
                    assert!(
                        vote.ballot < *ballot,
                        "a promise reported a vote at or above it"
                    );
                }
            }
            Phase::Accepting { accepted, .. } => {
                assert!(
                    acceptors.is_superset(*accepted),
                    "vote from a stranger counted"
                );
            }
            Phase::BackingOff { wait_ticks } => {
                assert!((1..=self.timing.backoff_max_ticks).contains(wait_ticks));
            }
            Phase::Idle | Phase::Chosen(_) | Phase::Exhausted => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::QuorumSpec;
    use crate::synod::ConstRng;

    const A1: NodeId = NodeId(1);
    const A2: NodeId = NodeId(2);
    const A3: NodeId = NodeId(3);
    const P1: NodeId = NodeId(11);
    const P2: NodeId = NodeId(12);

    type P = Proposer<&'static str, ConstRng>;

    fn timing() -> Timing {
        Timing {
            round_timeout_ticks: 5,
            backoff_base_ticks: 4,
            backoff_max_ticks: 16,
        }
    }

    fn proposer_with_rng(rng: u32) -> P {
        let config =
            Config::new(vec![A1, A2, A3], vec![P1, P2], vec![], QuorumSpec::Majority).unwrap();
        Proposer::new(P1, Arc::new(config), "mine", timing(), ConstRng(rng)).unwrap()
    }

    fn proposer() -> P {
        proposer_with_rng(0)
    }

    fn b(round: u64, node: NodeId) -> Ballot {
        Ballot::new(round, node)
    }

    fn to_all(message: Message<&'static str>) -> Vec<Action<&'static str>> {
        [A1, A2, A3]
            .into_iter()
            .map(|to| Action::Send {
                to,
                message: message.clone(),
            })
            .collect()
    }

    fn promise(ballot: Ballot, vote: Option<(Ballot, &'static str)>) -> Message<&'static str> {
        Message::Promise {
            ballot,
            accepted: vote.map(|(ballot, value)| Vote { ballot, value }),
        }
    }

    /// A proposer that has sent its accept for `value` at (1, P1).
    fn accepting(value_from_promise: Option<(Ballot, &'static str)>) -> P {
        let mut p = proposer();
        p.propose();
        p.step(A1, promise(b(1, P1), value_from_promise));
        p.step(A2, promise(b(1, P1), None));
        assert!(matches!(p.phase(), Phase::Accepting { .. }));
        p
    }

    #[test]
    fn propose_persists_the_ballot_then_prepares_everyone() {
        let mut p = proposer();
        let mut expected = vec![Action::PersistBallot(b(1, P1))];
        expected.extend(to_all(Message::Prepare { ballot: b(1, P1) }));
        assert_eq!(p.propose(), expected);
        assert_eq!(p.propose(), vec![], "a proposer runs one proposal");
    }

    #[test]
    fn restarted_proposer_never_reuses_a_ballot() {
        let config = proposer().config.0.clone();
        let mut p: P =
            Proposer::restart(P1, config, "mine", timing(), ConstRng(0), b(7, P1)).unwrap();
        assert_eq!(p.propose()[0], Action::PersistBallot(b(8, P1)));
    }

    #[test]
    fn phase1_quorum_without_votes_proposes_its_own_value() {
        let mut p = proposer();
        p.propose();
        assert_eq!(p.step(A1, promise(b(1, P1), None)), vec![]);
        assert_eq!(
            p.step(A1, promise(b(1, P1), None)),
            vec![],
            "a duplicate is one promise"
        );
        assert_eq!(
            p.step(A3, promise(b(1, P1), None)),
            to_all(Message::Accept {
                ballot: b(1, P1),
                value: "mine"
            })
        );
    }

    #[test]
    fn phase1_quorum_proposes_the_highest_ballot_vote_p2c() {
        let older = Some((b(2, P2), "older"));
        let newer = Some((b(4, P2), "newer"));
        // Whichever order the votes arrive in, the highest ballot's value wins.
        for (first, second) in [(older, newer), (newer, older)] {
            let mut p = proposer();
            p.highest_seen = b(5, P2);
            p.propose();
            let ballot = b(6, P1);
            p.step(A1, promise(ballot, first));
            let actions = p.step(A3, promise(ballot, second));
            let value = "newer";
            assert_eq!(actions, to_all(Message::Accept { ballot, value }));
        }
    }

    #[test]
    fn promises_for_other_ballots_or_from_strangers_are_ignored() {
        let mut p = proposer();
        p.propose();
        let before = p.clone();
        assert_eq!(p.step(A1, promise(b(2, P1), None)), vec![]);
        assert_eq!(p.step(NodeId(99), promise(b(1, P1), None)), vec![]);
        assert_eq!(p.step(P2, promise(b(1, P1), None)), vec![]);
        // A vote at or above the promised ballot cannot come from a correct acceptor.
        assert_eq!(
            p.step(A2, promise(b(1, P1), Some((b(1, P1), "forged")))),
            vec![]
        );
        assert_eq!(p, before);
    }

    #[test]
    fn phase2_quorum_learns_the_value() {
        let mut p = accepting(None);
        let accepted = Message::Accepted {
            ballot: b(1, P1),
            value: "mine",
        };
        assert_eq!(p.step(A2, accepted.clone()), vec![]);
        assert_eq!(
            p.step(A3, accepted.clone()),
            vec![Action::Learn {
                ballot: b(1, P1),
                value: "mine"
            }]
        );
        assert_eq!(
            p.chosen(),
            Some(&Vote {
                ballot: b(1, P1),
                value: "mine"
            })
        );
        assert_eq!(p.step(A1, accepted), vec![], "learned once");
    }

    #[test]
    fn nack_for_the_current_round_fences_and_backs_off() {
        let mut p = proposer_with_rng(2);
        p.propose();
        assert_eq!(
            p.step(
                A2,
                Message::Nack {
                    ballot: b(1, P1),
                    promised: b(3, P2)
                }
            ),
            vec![]
        );
        assert_eq!(p.phase(), &Phase::BackingOff { wait_ticks: 3 });
        assert_eq!(p.highest_seen(), b(3, P2));
        assert_eq!(p.tick(), vec![]);
        assert_eq!(p.tick(), vec![]);
        let mut expected = vec![Action::PersistBallot(b(4, P1))];
        expected.extend(to_all(Message::Prepare { ballot: b(4, P1) }));
        assert_eq!(
            p.tick(),
            expected,
            "retries above the ballot that fenced it"
        );
    }

    #[test]
    fn stale_nack_only_raises_the_next_ballot() {
        let mut p = accepting(None);
        let phase = p.phase().clone();
        assert_eq!(
            p.step(
                A1,
                Message::Nack {
                    ballot: b(0, P1),
                    promised: b(9, P2)
                }
            ),
            vec![]
        );
        assert_eq!(p.phase(), &phase);
        assert_eq!(p.highest_seen(), b(9, P2));
    }

    #[test]
    fn deposed_leader_in_phase2_steps_down_on_nack() {
        let mut p = accepting(None);
        p.step(
            A1,
            Message::Nack {
                ballot: b(1, P1),
                promised: b(2, P2),
            },
        );
        assert!(matches!(p.phase(), Phase::BackingOff { .. }));
    }

    #[test]
    fn round_timeout_backs_off_then_retries() {
        let mut p = proposer_with_rng(0);
        p.propose();
        for _ in 0..4 {
            assert_eq!(p.tick(), vec![]);
        }
        assert_eq!(p.tick(), vec![], "the fifth tick times the round out");
        assert_eq!(p.phase(), &Phase::BackingOff { wait_ticks: 1 });
        assert_eq!(p.tick()[0], Action::PersistBallot(b(2, P1)));
    }

    #[test]
    fn backoff_range_doubles_up_to_the_cap() {
        // u32::MAX % range == range - 1 for these power-of-two ranges, so wait == range.
        let mut p = proposer_with_rng(u32::MAX);
        let mut waits = Vec::new();
        for round in 1..=5 {
            p.back_off();
            let Phase::BackingOff { wait_ticks } = *p.phase() else {
                unreachable!()
            };
            waits.push(wait_ticks);
            assert_eq!(p.failed_rounds, round);
        }
        assert_eq!(waits, vec![4, 8, 16, 16, 16]);
    }

    #[test]
    fn exhausted_rounds_stop_the_proposer_instead_of_reusing_a_ballot() {
        let mut p = proposer();
        p.highest_seen = b(u64::MAX, P2);
        assert_eq!(p.propose(), vec![]);
        assert_eq!(p.phase(), &Phase::Exhausted);
    }

    #[test]
    fn refuses_unusable_timeouts() {
        let config = proposer().config.0.clone();
        let zero_round = Timing {
            round_timeout_ticks: 0,
            ..timing()
        };
        let zero_base = Timing {
            backoff_base_ticks: 0,
            ..timing()
        };
        let inverted = Timing {
            backoff_base_ticks: 32,
            ..timing()
        };
        for bad in [zero_round, zero_base, inverted] {
            let err = P::new(P1, config.clone(), "x", bad, ConstRng(0)).unwrap_err();
            assert!(matches!(err, ConfigError::Timing(_)), "{bad:?}");
        }
        assert_eq!(
            ConfigError::Timing("backoff_base_ticks must be at least 1").to_string(),
            "bad proposer timing: backoff_base_ticks must be at least 1"
        );
    }

    #[test]
    fn refuses_a_node_that_is_not_a_proposer() {
        let config = proposer().config.0.clone();
        let err = P::new(A1, config, "x", timing(), ConstRng(0)).unwrap_err();
        assert_eq!(
            err,
            ConfigError::NotInConfig {
                node: A1,
                role: Role::Proposer
            }
        );
    }
}
