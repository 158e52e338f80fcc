//! The acceptor: the only role with durable state, and the one that makes Paxos safe.

use std::sync::Arc;

use crate::ballot::Ballot;
use crate::node::NodeId;

use super::config::{Config, ConfigError, Role, SharedConfig};
use super::message::{Action, Message, Vote};

/// What an acceptor must never forget: written by [`Action::PersistAcceptor`] before any
/// reply that depends on it leaves, and handed back to [`Acceptor::restart`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AcceptorState<V> {
    /// The highest ballot promised; nothing below it is promised or accepted.
    pub promised: Ballot,
    /// The last (and so highest-ballot) proposal accepted.
    pub accepted: Option<Vote<V>>,
}

/// A Paxos acceptor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Acceptor<V> {
    id: NodeId,
    config: SharedConfig,
    state: AcceptorState<V>,
}

impl<V> Default for AcceptorState<V> {
    fn default() -> Self {
        AcceptorState {
            promised: Ballot::ZERO,
            accepted: None,
        }
    }
}

impl<V: Clone + Eq> Acceptor<V> {
    /// A fresh acceptor with empty storage.
    pub fn new(id: NodeId, config: Arc<Config>) -> Result<Acceptor<V>, ConfigError> {
        Acceptor::restart(id, config, AcceptorState::default())
    }

    /// An acceptor restarted from the state its storage holds.
    pub fn restart(
        id: NodeId,
        config: Arc<Config>,
        durable: AcceptorState<V>,
    ) -> Result<Acceptor<V>, ConfigError> {
        config.require(id, Role::Acceptor)?;
        let consistent = durable
            .accepted
            .as_ref()
            .is_none_or(|v| v.ballot > Ballot::ZERO && v.ballot <= durable.promised);
        if !consistent {
            return Err(ConfigError::CorruptAcceptorState);
        }
        Ok(Acceptor {
            id,
            config: SharedConfig(config),
            state: durable,
        })
    }

    /// This acceptor's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current (and, once the last persist completed, durable) state.
    pub fn state(&self) -> &AcceptorState<V> {
        &self.state
    }

    /// Handles one message. Messages an acceptor does not take, from nodes that are not
    /// proposers, or whose ballot is not the sender's own, are ignored.
    pub fn step(&mut self, from: NodeId, message: Message<V>) -> Vec<Action<V>> {
        let from_owner =
            self.config.role_of(from) == Some(Role::Proposer) && message.ballot().node == from;
        let actions = match message {
            Message::Prepare { ballot } if from_owner => self.on_prepare(from, ballot),
            Message::Accept { ballot, value } if from_owner => self.on_accept(from, ballot, value),
            _ => Vec::new(),
        };
        self.check_invariants();
        actions
    }

    fn on_prepare(&mut self, from: NodeId, ballot: Ballot) -> Vec<Action<V>> {
        let promise = |accepted: &Option<Vote<V>>| Action::Send {
            to: from,
            message: Message::Promise {
                ballot,
                accepted: accepted.clone(),
            },
        };
        if ballot > self.state.promised {
            self.state.promised = ballot;
            vec![
                Action::PersistAcceptor(self.state.clone()),
                promise(&self.state.accepted),
            ]
        } else if ballot == self.state.promised {
            // A duplicated prepare: the promise is already durable; answer it again. The vote
            // it reports may by now be at this very ballot, which the proposer ignores: it
            // has left phase 1 for this ballot by then.
            vec![promise(&self.state.accepted)]
        } else {
            vec![self.nack(from, ballot)]
        }
    }

    fn on_accept(&mut self, from: NodeId, ballot: Ballot, value: V) -> Vec<Action<V>> {
        if ballot < self.state.promised {
            return vec![self.nack(from, ballot)];
        }
        let vote = Vote {
            ballot,
            value: value.clone(),
        };
        let mut actions = Vec::with_capacity(2 + self.config.learners().len());
        match &self.state.accepted {
            // A duplicated accept: already durable, only the replies are repeated.
            Some(existing) if *existing == vote => {}
            // One ballot carries one value; a second value at the same ballot cannot come
            // from a correct proposer, and accepting it could let two values be chosen.
            Some(existing) if existing.ballot == ballot => return Vec::new(),
            _ => {
                self.state.promised = ballot;
                self.state.accepted = Some(vote);
                actions.push(Action::PersistAcceptor(self.state.clone()));
            }
        }
        let accepted = Message::Accepted { ballot, value };
        for &to in std::iter::once(&from).chain(self.config.learners()) {
            actions.push(Action::Send {
                to,
                message: accepted.clone(),
            });
        }
        actions
    }

    fn nack(&self, to: NodeId, ballot: Ballot) -> Action<V> {
        Action::Send {
            to,
            message: Message::Nack {
                ballot,
                promised: self.state.promised,
            },
        }
    }

    /// Panics if the state breaks an acceptor invariant. Runs after every handler, so a
    /// broken invariant stops a test or a simulation at the event that broke it.
    pub fn check_invariants(&self) {
        if let Some(vote) = &self.state.accepted {
            assert!(
                vote.ballot <= self.state.promised,
                "acceptor {:?} accepted {:?} above its promise {:?}",
                self.id,
                vote.ballot,
                self.state.promised
            );
            assert!(vote.ballot > Ballot::ZERO, "accepted the zero ballot");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::QuorumSpec;

    const P1: NodeId = NodeId(11);
    const P2: NodeId = NodeId(12);
    const L1: NodeId = NodeId(21);

    fn acceptor() -> Acceptor<&'static str> {
        let config = Config::new(
            vec![NodeId(1), NodeId(2), NodeId(3)],
            vec![P1, P2],
            vec![L1],
            QuorumSpec::Majority,
        )
        .unwrap();
        Acceptor::new(NodeId(1), Arc::new(config)).unwrap()
    }

    fn b(round: u64, node: NodeId) -> Ballot {
        Ballot::new(round, node)
    }

    fn promise(ballot: Ballot, accepted: Option<Vote<&'static str>>) -> Message<&'static str> {
        Message::Promise { ballot, accepted }
    }

    fn nack(ballot: Ballot, promised: Ballot) -> Message<&'static str> {
        Message::Nack { ballot, promised }
    }

    fn send(to: NodeId, message: Message<&'static str>) -> Action<&'static str> {
        Action::Send { to, message }
    }

    fn state(
        promised: Ballot,
        accepted: Option<(Ballot, &'static str)>,
    ) -> AcceptorState<&'static str> {
        AcceptorState {
            promised,
            accepted: accepted.map(|(ballot, value)| Vote { ballot, value }),
        }
    }

    #[test]
    fn promise_is_persisted_before_it_is_sent() {
        let mut a = acceptor();
        let actions = a.step(P1, Message::Prepare { ballot: b(1, P1) });
        assert_eq!(
            actions,
            vec![
                Action::PersistAcceptor(state(b(1, P1), None)),
                send(P1, promise(b(1, P1), None)),
            ]
        );
    }

    #[test]
    fn duplicate_prepare_repeats_the_promise_without_persisting() {
        let mut a = acceptor();
        a.step(P1, Message::Prepare { ballot: b(1, P1) });
        let actions = a.step(P1, Message::Prepare { ballot: b(1, P1) });
        assert_eq!(actions, vec![send(P1, promise(b(1, P1), None))]);
    }

    #[test]
    fn prepare_below_the_promise_is_nacked_with_the_promise() {
        let mut a = acceptor();
        a.step(P2, Message::Prepare { ballot: b(2, P2) });
        let actions = a.step(P1, Message::Prepare { ballot: b(2, P1) });
        assert_eq!(actions, vec![send(P1, nack(b(2, P1), b(2, P2)))]);
        assert_eq!(a.state().promised, b(2, P2));
    }

    #[test]
    fn accept_at_the_promise_persists_then_tells_proposer_and_learners() {
        let mut a = acceptor();
        a.step(P1, Message::Prepare { ballot: b(1, P1) });
        let actions = a.step(
            P1,
            Message::Accept {
                ballot: b(1, P1),
                value: "x",
            },
        );
        let accepted = Message::Accepted {
            ballot: b(1, P1),
            value: "x",
        };
        assert_eq!(
            actions,
            vec![
                Action::PersistAcceptor(state(b(1, P1), Some((b(1, P1), "x")))),
                send(P1, accepted.clone()),
                send(L1, accepted),
            ]
        );
    }

    #[test]
    fn accept_above_the_promise_raises_the_promise() {
        let mut a = acceptor();
        let actions = a.step(
            P2,
            Message::Accept {
                ballot: b(3, P2),
                value: "y",
            },
        );
        assert_eq!(
            actions[0],
            Action::PersistAcceptor(state(b(3, P2), Some((b(3, P2), "y"))))
        );
        assert_eq!(actions.len(), 3);
    }

    #[test]
    fn accept_below_the_promise_is_nacked() {
        let mut a = acceptor();
        a.step(P2, Message::Prepare { ballot: b(2, P2) });
        let actions = a.step(
            P1,
            Message::Accept {
                ballot: b(1, P1),
                value: "x",
            },
        );
        assert_eq!(actions, vec![send(P1, nack(b(1, P1), b(2, P2)))]);
        assert_eq!(a.state().accepted, None);
    }

    #[test]
    fn promise_reports_the_accepted_vote() {
        let mut a = acceptor();
        a.step(
            P1,
            Message::Accept {
                ballot: b(1, P1),
                value: "x",
            },
        );
        let actions = a.step(P2, Message::Prepare { ballot: b(2, P2) });
        assert_eq!(
            actions,
            vec![
                Action::PersistAcceptor(state(b(2, P2), Some((b(1, P1), "x")))),
                send(
                    P2,
                    Message::Promise {
                        ballot: b(2, P2),
                        accepted: Some(Vote {
                            ballot: b(1, P1),
                            value: "x"
                        })
                    }
                ),
            ]
        );
    }

    #[test]
    fn duplicate_accept_repeats_replies_without_persisting() {
        let mut a = acceptor();
        a.step(
            P1,
            Message::Accept {
                ballot: b(1, P1),
                value: "x",
            },
        );
        let actions = a.step(
            P1,
            Message::Accept {
                ballot: b(1, P1),
                value: "x",
            },
        );
        assert_eq!(actions.len(), 2);
        assert!(actions.iter().all(|x| matches!(x, Action::Send { .. })));
    }

    #[test]
    fn second_value_at_the_same_ballot_is_ignored() {
        let mut a = acceptor();
        a.step(
            P1,
            Message::Accept {
                ballot: b(1, P1),
                value: "x",
            },
        );
        assert_eq!(
            a.step(
                P1,
                Message::Accept {
                    ballot: b(1, P1),
                    value: "z"
                }
            ),
            vec![]
        );
        assert_eq!(
            a.state().accepted,
            Some(Vote {
                ballot: b(1, P1),
                value: "x"
            })
        );
    }

    #[test]
    fn ignores_strangers_forged_ballots_and_foreign_messages() {
        let mut a = acceptor();
        let before = a.clone();
        assert_eq!(
            a.step(
                NodeId(99),
                Message::Prepare {
                    ballot: b(1, NodeId(99))
                }
            ),
            vec![]
        );
        assert_eq!(a.step(P1, Message::Prepare { ballot: b(5, P2) }), vec![]);
        assert_eq!(
            a.step(
                L1,
                Message::Accept {
                    ballot: b(5, L1),
                    value: "w"
                }
            ),
            vec![]
        );
        assert_eq!(a.step(P1, promise(b(1, P1), None)), vec![]);
        assert_eq!(a.step(P1, nack(b(1, P1), b(9, P2))), vec![]);
        assert_eq!(a, before);
    }

    #[test]
    fn restart_resumes_from_durable_state() {
        let config = acceptor().config.0.clone();
        let durable = state(b(4, P2), Some((b(3, P1), "x")));
        let mut a = Acceptor::restart(NodeId(2), config.clone(), durable).unwrap();
        let actions = a.step(P1, Message::Prepare { ballot: b(4, P1) });
        assert_eq!(actions, vec![send(P1, nack(b(4, P1), b(4, P2)))]);
        assert!(Acceptor::<&str>::new(P1, config.clone()).is_err());
        let vote_above_promise = state(b(1, P1), Some((b(2, P2), "x")));
        let err = Acceptor::restart(NodeId(2), config, vote_above_promise).unwrap_err();
        assert_eq!(err, ConfigError::CorruptAcceptorState);
    }
}
