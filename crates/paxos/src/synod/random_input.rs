//! Arbitrary input against every role: random messages from known and unknown nodes, with
//! random, forged and extreme ballots, in random order, mixed with ticks. No handler may
//! panic (every handler also checks its role's invariants), and the promises the protocol
//! makes over time must hold: an acceptor's promise never goes down and is durable before
//! any reply that depends on it; a proposer never uses a ballot twice; a learner never
//! changes its mind.

use std::sync::Arc;

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;

use super::{Acceptor, Action, Config, Learner, Message, Proposer, Timing, Vote};
use crate::ballot::Ballot;
use crate::node::NodeId;
use crate::quorum::QuorumSpec;

const SEEDS: u64 = 300;
const STEPS_PER_SEED: usize = 300;

/// Acceptors 1-3, proposers 11-12, learner 21; 99 is a stranger.
const NODES: [u64; 7] = [1, 2, 3, 11, 12, 21, 99];

fn config() -> Arc<Config> {
    let ids = |v: &[u64]| v.iter().copied().map(NodeId).collect();
    Arc::new(
        Config::new(
            ids(&[1, 2, 3]),
            ids(&[11, 12]),
            ids(&[21]),
            QuorumSpec::Majority,
        )
        .unwrap(),
    )
}

fn pick<T: Copy>(rng: &mut Pcg64Mcg, items: &[T]) -> T {
    items[rng.next_u32() as usize % items.len()]
}

fn random_ballot(rng: &mut Pcg64Mcg) -> Ballot {
    let round = pick(rng, &[0, 1, 2, 3, 5, u64::MAX - 1, u64::MAX]);
    Ballot::new(round, NodeId(pick(rng, &NODES)))
}

fn random_message(rng: &mut Pcg64Mcg) -> Message<u8> {
    let ballot = random_ballot(rng);
    let value = pick(rng, &[0u8, 1, 2]);
    match rng.next_u32() % 5 {
        0 => Message::Prepare { ballot },
        1 => Message::Promise {
            ballot,
            accepted: (rng.next_u32() % 2 == 0).then(|| Vote {
                ballot: random_ballot(rng),
                value,
            }),
        },
        2 => Message::Nack {
            ballot,
            promised: random_ballot(rng),
        },
        3 => Message::Accept { ballot, value },
        _ => Message::Accepted { ballot, value },
    }
}

/// A sender that is usually the ballot's owner, so messages get past the sender checks.
fn random_sender(rng: &mut Pcg64Mcg, message: &Message<u8>) -> NodeId {
    if rng.next_u32() % 4 == 0 {
        NodeId(pick(rng, &NODES))
    } else {
        message.ballot().node
    }
}

#[test]
fn acceptor_survives_arbitrary_messages_and_keeps_its_promises() {
    for seed in 0..SEEDS {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let mut acceptor = Acceptor::new(NodeId(2), config()).unwrap();
        let mut durable = acceptor.state().clone();
        for _ in 0..STEPS_PER_SEED {
            let message = random_message(&mut rng);
            let from = random_sender(&mut rng, &message);
            let before = acceptor.state().clone();
            for action in acceptor.step(from, message) {
                match action {
                    Action::PersistAcceptor(state) => durable = state,
                    // Whatever a reply says was made durable before it.
                    Action::Send { .. } => assert_eq!(&durable, acceptor.state(), "seed {seed}"),
                    other => panic!("seed {seed}: an acceptor emitted {other:?}"),
                }
            }
            assert!(
                acceptor.state().promised >= before.promised,
                "seed {seed}: promise fell"
            );
        }
    }
}

#[test]
fn proposer_survives_arbitrary_messages_and_never_reuses_a_ballot() {
    for seed in 0..SEEDS {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let node_rng = Pcg64Mcg::seed_from_u64(!seed);
        let mut proposer =
            Proposer::new(NodeId(11), config(), 7u8, Timing::default(), node_rng).unwrap();
        let mut last_ballot = Ballot::ZERO;
        let mut actions = proposer.propose();
        for _ in 0..STEPS_PER_SEED {
            for action in actions.drain(..) {
                if let Action::PersistBallot(ballot) = action {
                    assert!(ballot > last_ballot, "seed {seed}: ballot {ballot} reused");
                    assert_eq!(ballot.node, NodeId(11));
                    last_ballot = ballot;
                }
            }
            actions = if rng.next_u32() % 3 == 0 {
                proposer.tick()
            } else {
                let message = random_message(&mut rng);
                let from = NodeId(pick(&mut rng, &NODES));
                proposer.step(from, message)
            };
        }
    }
}

#[test]
fn learner_survives_arbitrary_messages_and_never_changes_its_mind() {
    for seed in 0..SEEDS {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let mut learner: Learner<u8> = Learner::new(NodeId(21), config()).unwrap();
        let mut learned = None;
        for _ in 0..STEPS_PER_SEED {
            let message = random_message(&mut rng);
            let from = NodeId(pick(&mut rng, &NODES));
            let actions = learner.step(from, message);
            if let Some(first) = &learned {
                assert!(actions.is_empty(), "seed {seed}: learned twice");
                assert_eq!(learner.learned(), Some(first));
            }
            learned = learner.learned().cloned();
        }
    }
}
