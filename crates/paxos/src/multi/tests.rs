//! Exact-action tests of each handler, and scenario tests on the in-memory cluster.

#![allow(clippy::cast_possible_truncation)]

use std::sync::Arc;

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;

use super::cluster::{Cluster, TestReplica};
use super::*;
use crate::{Ballot, NodeId, QuorumSpec};

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);

fn options() -> Options {
    Options {
        chunk_entries: 2,
        ..Options::default()
    }
}

fn replica(id: NodeId) -> TestReplica {
    let members = Arc::new(Members::new(vec![N1, N2, N3], QuorumSpec::Majority).unwrap());
    Replica::new(id, members, options(), Pcg32::seed_from_u64(id.0)).unwrap()
}

fn ballot(round: u64, node: NodeId) -> Ballot {
    Ballot::new(round, node)
}

fn cmd(c: u64) -> Entry<u64> {
    Entry::Command(c)
}

fn batch(entries: &[Entry<u64>]) -> Batch<u64> {
    entries.to_vec().into()
}

fn send(to: NodeId, message: Message<u64>) -> Action<u64> {
    Action::Send { to, message }
}

fn accept(ballot: Ballot, first: Slot, entries: &[Entry<u64>], commit: Slot) -> Message<u64> {
    Message::Accept {
        ballot,
        first,
        entries: batch(entries),
        commit,
    }
}

fn accepted(ballot: Ballot, first: Slot, last: Slot) -> Message<u64> {
    Message::Accepted {
        ballot,
        first,
        last,
    }
}

fn prepare(ballot: Ballot, from: Slot) -> Message<u64> {
    let log = Vec::new();
    Message::Prepare { ballot, from, log }
}

fn heartbeat(ballot: Ballot, commit: Slot, seq: u64) -> Message<u64> {
    Message::Heartbeat {
        ballot,
        commit,
        seq,
    }
}

fn vote(slot: Slot, ballot: Ballot, entry: Entry<u64>) -> SlotVote<u64> {
    SlotVote {
        slot,
        vote: LogEntry { ballot, entry },
    }
}

/// Ticks `replica` until it campaigns, and returns what it did then.
fn campaign(replica: &mut TestReplica) -> Vec<Action<u64>> {
    for _ in 0..1000 {
        let actions = replica.tick();
        if !actions.is_empty() {
            return actions;
        }
    }
    panic!("never campaigned");
}

/// Makes `replica` (node 1) leader at round 1 with the given promise chunks from node 2.
fn elect_n1(replica: &mut TestReplica, votes: Vec<SlotVote<u64>>) -> Vec<Action<u64>> {
    campaign(replica);
    let b = ballot(1, N1);
    let own = Message::Promise {
        ballot: b,
        from: 1,
        votes: vec![],
        next: None,
    };
    assert!(replica.step(N1, own).is_empty());
    let theirs = Message::Promise {
        ballot: b,
        from: 1,
        votes,
        next: None,
    };
    replica.step(N2, theirs)
}

// ---- exact actions ------------------------------------------------------------------

#[test]
fn a_campaign_persists_its_ballot_before_the_prepares_leave() {
    let mut r = replica(N1);
    let b = ballot(1, N1);
    let prepare = prepare(b, 1);
    assert_eq!(
        campaign(&mut r),
        vec![
            Action::Persist(Write::Promise(b)),
            send(N1, prepare.clone()),
            send(N2, prepare.clone()),
            send(N3, prepare),
        ]
    );
    assert_eq!(r.role(), RoleKind::Candidate);
}

#[test]
fn a_prepare_is_promised_durably_and_votes_come_in_chunks() {
    let mut r = replica(N2);
    let b1 = ballot(1, N1);
    r.step(N1, accept(b1, 1, &[cmd(10), cmd(11), cmd(12)], 0));
    let b2 = ballot(2, N3);
    let actions = r.step(N3, prepare(b2, 1));
    let first_chunk = Message::Promise {
        ballot: b2,
        from: 1,
        votes: vec![vote(1, b1, cmd(10)), vote(2, b1, cmd(11))],
        next: Some(3),
    };
    assert_eq!(
        actions,
        vec![Action::Persist(Write::Promise(b2)), send(N3, first_chunk)]
    );
    // The next chunk: same ballot, nothing new to persist.
    let actions = r.step(N3, prepare(b2, 3));
    let rest = Message::Promise {
        ballot: b2,
        from: 3,
        votes: vec![vote(3, b1, cmd(12))],
        next: None,
    };
    assert_eq!(actions, vec![send(N3, rest)]);
}

#[test]
fn anything_below_the_promise_is_nacked() {
    let mut r = replica(N2);
    let high = ballot(5, N3);
    r.step(N3, prepare(high, 1));
    let low = ballot(4, N1);
    let nack = Message::Nack {
        ballot: low,
        promised: high,
    };
    for message in [
        prepare(low, 1),
        accept(low, 1, &[cmd(1)], 0),
        heartbeat(low, 0, 1),
    ] {
        assert_eq!(r.step(N1, message), vec![send(N1, nack.clone())]);
    }
}

#[test]
fn an_accept_is_acknowledged_only_after_its_votes_are_persisted() {
    let mut r = replica(N2);
    let b = ballot(1, N1);
    let actions = r.step(N1, accept(b, 1, &[cmd(7), cmd(8)], 0));
    assert_eq!(
        actions,
        vec![
            Action::Persist(Write::Votes {
                ballot: b,
                first: 1,
                entries: batch(&[cmd(7), cmd(8)]),
            }),
            // To every replica: the leader counts it, and so do followers (learners).
            send(N1, accepted(b, 1, 2)),
            send(N2, accepted(b, 1, 2)),
            send(N3, accepted(b, 1, 2)),
        ]
    );
    assert_eq!(r.promised(), b);
    assert_eq!(r.leader(), Some(N1));
}

#[test]
fn without_learning_from_acceptors_an_accept_is_acknowledged_to_the_leader_alone() {
    let members = Arc::new(Members::new(vec![N1, N2, N3], QuorumSpec::Majority).unwrap());
    let options = Options {
        learn_from_acceptors: false,
        ..options()
    };
    let mut r: TestReplica = Replica::new(N2, members, options, Pcg32::seed_from_u64(2)).unwrap();
    let b = ballot(1, N1);
    let actions = r.step(N1, accept(b, 1, &[cmd(7)], 0));
    assert_eq!(actions.last(), Some(&send(N1, accepted(b, 1, 1))));
    assert_eq!(actions.len(), 2);
}

#[test]
fn a_follower_applies_what_a_phase2_quorum_reported_at_the_ballot_it_follows() {
    let mut r = replica(N2);
    let b = ballot(1, N1);
    r.step(N1, accept(b, 1, &[cmd(7), cmd(8)], 0));
    assert_eq!(
        r.step(N3, accepted(b, 1, 2)),
        vec![],
        "one report is no quorum"
    );
    // Its own report (after its persist) makes two of three, but without the leader's:
    // a leader that does not report may not know to wait for these slots in its reads.
    assert_eq!(r.step(N2, accepted(b, 1, 2)), vec![]);
    assert_eq!(
        r.step(N1, accepted(b, 1, 2)),
        vec![
            Action::CommitHint(2),
            Action::Apply {
                slot: 1,
                entry: cmd(7)
            },
            Action::Apply {
                slot: 2,
                entry: cmd(8)
            },
        ]
    );
    assert_eq!(r.commit(), 2);
    // Later reports and the leader's own commit point change nothing.
    assert_eq!(r.step(N3, accepted(b, 1, 2)), vec![]);
    assert_eq!(
        r.step(N1, heartbeat(b, 2, 1)).len(),
        1,
        "only the heartbeat's ack"
    );
    // The next slot starts from no reports.
    r.step(N1, accept(b, 3, &[cmd(9)], 2));
    assert_eq!(
        r.step(N3, accepted(b, 3, 3)),
        vec![],
        "one report for slot 3"
    );
    assert_eq!(
        r.step(N1, accepted(b, 3, 3)).len(),
        2,
        "a commit and an apply"
    );
    assert_eq!(r.commit(), 3);
}

#[test]
fn reports_commit_only_slots_voted_here_at_their_ballot() {
    let mut r = replica(N2);
    let old = ballot(1, N1);
    r.step(N1, accept(old, 1, &[cmd(1)], 0));
    let new = ballot(2, N3);
    r.step(N3, accept(new, 2, &[cmd(2)], 0));
    // Slot 1 holds a vote at the old ballot, whose value the new ballot's reports do not
    // vouch for: nothing is applied, slot 2 included (it waits for slot 1).
    assert_eq!(r.step(N3, accepted(new, 1, 2)), vec![]);
    assert_eq!(r.step(N1, accepted(new, 1, 2)), vec![]);
    assert_eq!(r.commit(), 0);
    // Reports at a ballot it does not follow count for nothing either.
    let mut r = replica(N2);
    r.step(N1, accept(old, 1, &[cmd(1)], 0));
    r.step(N3, accept(new, 2, &[cmd(2)], 0));
    assert_eq!(r.step(N1, accepted(old, 1, 1)), vec![]);
    assert_eq!(r.step(N3, accepted(old, 1, 1)), vec![]);
    assert_eq!(r.commit(), 0);
    // Reports at two ballots never add up to a quorum.
    let mut r = replica(N2);
    r.step(N3, accept(new, 1, &[cmd(2)], 0));
    assert_eq!(r.step(N1, accepted(old, 1, 1)), vec![]);
    assert_eq!(r.step(N3, accepted(new, 1, 1)), vec![]);
    assert_eq!(r.commit(), 0);
}

#[test]
fn reports_that_arrive_before_the_accept_commit_it_on_arrival() {
    let mut r = replica(N2);
    let b = ballot(1, N1);
    r.step(N1, heartbeat(b, 0, 1));
    assert_eq!(r.step(N1, accepted(b, 1, 1)), vec![]);
    assert_eq!(r.step(N3, accepted(b, 1, 1)), vec![]);
    // Chosen already, by two durable votes: applied without waiting for its own.
    let actions = r.step(N1, accept(b, 1, &[cmd(5)], 0));
    assert!(actions.contains(&Action::Apply {
        slot: 1,
        entry: cmd(5)
    }));
    assert_eq!(r.commit(), 1);
}

#[test]
fn the_commit_point_applies_only_votes_held_at_the_leaders_ballot() {
    let mut r = replica(N2);
    let old = ballot(1, N1);
    r.step(N1, accept(old, 1, &[cmd(1)], 0));
    let new = ballot(2, N3);
    r.step(N3, accept(new, 2, &[cmd(2)], 0));
    // Slot 1 holds a vote at the old ballot: the new leader's commit point cannot vouch
    // for it, so nothing is applied (catch-up will fetch slot 1).
    let heartbeat = heartbeat(new, 2, 1);
    let actions = r.step(N3, heartbeat);
    assert_eq!(
        actions,
        vec![send(
            N3,
            Message::HeartbeatAck {
                ballot: new,
                seq: 1
            }
        )]
    );
    assert_eq!(r.commit(), 0);
    // Catch-up brings slot 1's chosen entry; then both slots apply, in order.
    let chosen = Message::Chosen {
        ballot: new,
        first: 1,
        entries: vec![LogEntry {
            ballot: new,
            entry: cmd(1),
        }],
        commit: 2,
    };
    let actions = r.step(N3, chosen);
    let applied: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Apply { slot, entry } => Some((*slot, entry.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(applied, vec![(1, cmd(1))]);
    assert_eq!(r.commit(), 1);
}

#[test]
fn accepts_far_beyond_the_commit_point_are_refused() {
    let mut r = replica(N2);
    let b = ballot(1, N1);
    let far = options().gap_max_slots + 1;
    assert_eq!(r.step(N1, accept(b, far, &[cmd(1)], 0)), vec![]);
    assert_eq!(r.entry(far), None);
}

#[test]
fn a_new_leader_reproposes_the_highest_ballot_vote_and_fills_holes() {
    let mut r = replica(N1);
    let (b_low, b_high) = (ballot(0, N2), ballot(0, N3));
    let actions = elect_n1(
        &mut r,
        vec![
            vote(1, b_low, cmd(10)),
            vote(1, b_high, cmd(11)),
            vote(3, b_low, cmd(30)),
        ],
    );
    assert_eq!(r.role(), RoleKind::Leader);
    let b = ballot(1, N1);
    let recovered = accept(b, 1, &[cmd(11), Entry::Noop, cmd(30)], 0);
    let heartbeat = heartbeat(b, 0, 1);
    let mut expected: Vec<_> = [N1, N2, N3]
        .into_iter()
        .map(|to| send(to, recovered.clone()))
        .collect();
    expected.extend([N1, N2, N3].map(|to| send(to, heartbeat.clone())));
    assert_eq!(actions, expected);
}

#[test]
fn a_leader_chooses_once_a_phase2_quorum_acknowledged_and_then_applies() {
    let mut r = replica(N1);
    elect_n1(&mut r, vec![]);
    let b = ballot(1, N1);
    let actions = r.propose(42).unwrap();
    let proposal = accept(b, 1, &[cmd(42)], 0);
    let to_all: Vec<_> = [N1, N2, N3].map(|to| send(to, proposal.clone())).into();
    assert_eq!(
        actions, to_all,
        "its own acceptor gets the accept like any other"
    );
    let ack = accepted(b, 1, 1);
    assert_eq!(
        r.step(N1, proposal),
        vec![
            Action::Persist(Write::Votes {
                ballot: b,
                first: 1,
                entries: batch(&[cmd(42)]),
            }),
            send(N1, ack.clone()),
            send(N2, ack.clone()),
            send(N3, ack.clone()),
        ]
    );
    assert_eq!(r.step(N1, ack.clone()), vec![], "one vote is not a quorum");
    // Nothing else is pending, so no accept would carry the new commit point: a
    // heartbeat tells the followers at once (they answer their clients on applying).
    let notice = Message::Heartbeat {
        ballot: b,
        commit: 1,
        seq: 2,
    };
    assert_eq!(
        r.step(N3, ack),
        vec![
            Action::Apply {
                slot: 1,
                entry: cmd(42)
            },
            send(N1, notice.clone()),
            send(N2, notice.clone()),
            send(N3, notice),
        ]
    );
    assert_eq!(r.commit(), 1);
}

#[test]
fn any_higher_ballot_makes_a_leader_step_down() {
    let mut r = replica(N1);
    elect_n1(&mut r, vec![]);
    let higher = ballot(2, N3);
    let forward = Message::Forward {
        ballot: higher,
        boot: 1,
        seq: 1,
        commands: vec![],
    };
    r.step(N2, forward);
    assert_eq!(r.role(), RoleKind::Follower);
    assert_eq!(r.propose(1), Err(ProposeError::NoLeader));
}

#[test]
fn a_follower_forwards_proposals_to_the_leader_it_knows() {
    let mut r = replica(N2);
    assert_eq!(r.propose(5), Err(ProposeError::NoLeader));
    let b = ballot(1, N1);
    r.step(N1, heartbeat(b, 0, 1));
    let actions = r.propose(5).unwrap();
    let [Action::Send {
        to: N1,
        message:
            Message::Forward {
                ballot: sent,
                seq: 1,
                commands,
                ..
            },
    }] = actions.as_slice()
    else {
        panic!("not one forward to the leader: {actions:?}");
    };
    assert_eq!((*sent, commands.as_slice()), (b, &[5][..]));
}

#[test]
fn a_duplicated_forward_is_proposed_once() {
    let mut r = replica(N1);
    elect_n1(&mut r, vec![]);
    let forward = |boot, seq| Message::Forward {
        ballot: Ballot::ZERO,
        boot,
        seq,
        commands: vec![seq],
    };
    let proposes = |actions: Vec<Action<u64>>| !actions.is_empty();
    assert!(proposes(r.step(N2, forward(7, 2))));
    assert!(
        !proposes(r.step(N2, forward(7, 2))),
        "duplicate proposed again"
    );
    assert!(
        proposes(r.step(N2, forward(7, 1))),
        "a reordered forward is not a duplicate"
    );
    assert!(!proposes(r.step(N2, forward(7, 1))));
    assert!(
        proposes(r.step(N3, forward(7, 2))),
        "another sender's numbers are its own"
    );
    assert!(
        proposes(r.step(N2, forward(8, 1))),
        "a restarted sender numbers afresh"
    );
    assert!(proposes(r.step(N2, forward(8, 100))));
    assert!(
        !proposes(r.step(N2, forward(8, 30))),
        "too old to tell: dropped"
    );
}

#[test]
fn a_prepare_for_compacted_slots_is_answered_behind() {
    let mut r = replica(N2);
    let b = ballot(1, N1);
    r.step(N1, accept(b, 1, &[cmd(1), cmd(2)], 2));
    r.tick();
    assert_eq!(r.applied(), 2);
    r.snapshot_taken(2, vec![0u8; 4].into());
    let candidate = ballot(2, N3);
    let actions = r.step(N3, prepare(candidate, 1));
    let behind = Message::Behind {
        ballot: candidate,
        compacted: 2,
    };
    assert_eq!(actions, vec![send(N3, behind)]);
}

/// Ticks until `r` campaigns; how many ticks that took.
fn ticks_to_campaign(r: &mut TestReplica) -> usize {
    (1..1000)
        .find(|_| {
            r.tick().iter().any(|a| {
                matches!(
                    a,
                    Action::Send {
                        message: Message::Prepare { .. },
                        ..
                    }
                )
            })
        })
        .expect("never campaigned")
}

#[test]
fn a_follower_that_loses_its_leaders_connection_campaigns_after_a_few_heartbeats() {
    let b = ballot(1, N1);
    let mut r = replica(N2);
    r.step(N1, heartbeat(b, 0, 1));
    // Another member's connection says nothing about the leader: a whole timeout.
    assert_eq!(r.peer_unreachable(N3), vec![]);
    assert!(ticks_to_campaign(&mut r) >= 10);
    let mut r = replica(N2);
    r.step(N1, heartbeat(b, 0, 1));
    assert_eq!(r.peer_unreachable(N1), vec![]);
    assert!(ticks_to_campaign(&mut r) < 10 / 3 * 2);
    // A leader heard from again (it only reconnected) cancels the suspicion.
    let mut r = replica(N2);
    r.step(N1, heartbeat(b, 0, 1));
    r.peer_unreachable(N1);
    r.tick();
    r.step(N1, heartbeat(b, 0, 2));
    assert!(ticks_to_campaign(&mut r) >= 10);
}

#[test]
fn reads_fail_away_from_the_leader() {
    let mut r = replica(N2);
    let failed = Action::ReadFailed {
        id: 9,
        error: ReadError::NotLeader { leader: None },
    };
    assert_eq!(r.read(9), vec![failed]);
}

#[test]
fn messages_from_strangers_are_ignored() {
    let mut r = replica(N2);
    let b = ballot(9, NodeId(99));
    assert_eq!(r.step(NodeId(99), prepare(b, 1)), vec![]);
    assert_eq!(r.promised(), Ballot::ZERO);
}

#[test]
fn unusable_options_and_members_are_refused() {
    let members = Arc::new(Members::new(vec![N1, N2, N3], QuorumSpec::Majority).unwrap());
    let bad = Options {
        election_ticks: 2,
        ..Options::default()
    };
    let refused = Replica::<u64, _>::new(N1, members.clone(), bad, Pcg32::seed_from_u64(0));
    assert!(refused.is_err());
    let stranger = Replica::<u64, _>::new(NodeId(7), members, options(), Pcg32::seed_from_u64(0));
    assert!(stranger.is_err());
    assert!(Members::new(vec![N1, N1], QuorumSpec::Majority).is_err());
    assert!(Members::new(vec![N1, N2, N3], QuorumSpec::Grid { rows: 2, cols: 2 }).is_err());
}

// ---- scenarios ------------------------------------------------------------------------

fn commands(cluster: &Cluster, i: usize) -> &[u64] {
    &cluster.state[i]
}

#[test]
fn a_cluster_elects_a_leader_and_every_replica_applies_the_same_commands() {
    for quorum in [
        QuorumSpec::Majority,
        QuorumSpec::Grid { rows: 2, cols: 2 },
        QuorumSpec::Flexible { q1: 4, q2: 2 },
    ] {
        let n = if quorum == QuorumSpec::Majority { 3 } else { 4 };
        let mut c = Cluster::new(n, quorum, Options::default());
        let leader = c.elect();
        for k in 0..200 {
            assert!(c.propose(leader, k));
        }
        c.run(5);
        let expected: Vec<u64> = (0..200).collect();
        for i in 0..n as usize {
            assert_eq!(commands(&c, i), expected, "replica {i} under {quorum}");
        }
    }
}

#[test]
fn a_full_pipeline_turns_proposals_into_batches() {
    let options = Options {
        pipeline_depth: 2,
        batch_max_commands: 64,
        ..Options::default()
    };
    let mut c = Cluster::new(3, QuorumSpec::Majority, options);
    let leader = c.elect();
    let before = c.delivered;
    for k in 0..1000 {
        c.propose(leader, k);
    }
    c.run(3);
    assert_eq!(commands(&c, 0).len(), 1000);
    // 1000 slots one accept each would need ~6000 deliveries; batches need far fewer.
    assert!(
        c.delivered - before < 1500,
        "{} deliveries",
        c.delivered - before
    );
}

#[test]
fn a_new_leader_recovers_a_partial_log_and_fills_the_hole() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, Options::default());
    let old = c.elect();
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    // Slot 1 reaches nobody but the leader; slot 2 reaches one follower.
    c.isolate(old);
    c.propose(old, 100);
    c.deliver(100);
    c.heal();
    let (follower, other) = (c.ids[others[0]], c.ids[others[1]]);
    let old_id = c.ids[old];
    c.cut.insert((old_id, other));
    c.cut.insert((follower, old_id));
    c.propose(old, 200);
    c.deliver(100);
    c.crash(old);
    c.heal();
    let new = c.elect();
    assert_ne!(new, old);
    c.run(5);
    for &i in &others {
        assert_eq!(c.replica(i).entry(1).map(|e| &e.entry), Some(&Entry::Noop));
        assert_eq!(commands(&c, i), [200]);
    }
    // The old leader comes back, learns what was chosen, and agrees.
    c.restart(old);
    c.run(10);
    assert_eq!(commands(&c, old), [200]);
}

#[test]
fn a_deposed_leader_is_fenced_and_its_isolated_proposals_never_apply() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, Options::default());
    let old = c.elect();
    c.propose(old, 1);
    c.run(2);
    c.isolate(old);
    c.propose(old, 666); // Never reaches a quorum.
    c.read(old, 7); // Cannot be confirmed.
    let mut new = None;
    for _ in 0..200 {
        c.run(1);
        new = (0..3).find(|&i| i != old && c.replica(i).role() == RoleKind::Leader);
        if new.is_some() {
            break;
        }
    }
    let new = new.expect("a new leader");
    c.propose(new, 2);
    c.run(2);
    assert!(c.reads_ready.is_empty(), "an isolated leader served a read");
    c.heal();
    c.run(10);
    assert_ne!(
        c.replica(old).role(),
        RoleKind::Leader,
        "the old leader kept leading"
    );
    assert_eq!(c.reads_failed, vec![(c.ids[old], 7)]);
    for i in 0..3 {
        assert_eq!(commands(&c, i), [1, 2], "replica {i}");
    }
}

#[test]
fn a_lagging_replica_catches_up_by_entries() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, Options::default());
    let leader = c.elect();
    let lagging = (leader + 1) % 3;
    c.isolate(lagging);
    for k in 0..3000 {
        c.propose(leader, k);
    }
    c.run(3);
    assert_eq!(c.applied(lagging), 0);
    c.heal();
    c.run(20);
    assert_eq!(commands(&c, lagging).len(), 3000);
}

#[test]
fn a_replica_behind_the_compaction_point_catches_up_by_snapshot() {
    let options = Options {
        snapshot_chunk_bytes: 100,
        ..Options::default()
    };
    let mut c = Cluster::new(3, QuorumSpec::Majority, options);
    let leader = c.elect();
    let lagging = (leader + 1) % 3;
    c.isolate(lagging);
    for k in 0..500 {
        c.propose(leader, k);
    }
    c.run(3);
    for i in (0..3).filter(|&i| i != lagging) {
        c.snapshot(i);
        assert_eq!(c.replica(i).compacted(), c.applied(i));
    }
    for k in 500..510 {
        c.propose(leader, k);
    }
    c.heal();
    c.run(20);
    let expected: Vec<u64> = (0..510).collect();
    assert_eq!(commands(&c, lagging), expected);
    assert_eq!(
        c.replica(lagging).compacted(),
        500 + c.replica(leader).compacted() - 500
    );
}

#[test]
fn a_restarted_replica_recovers_from_its_disk() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, Options::default());
    let leader = c.elect();
    for k in 0..50 {
        c.propose(leader, k);
    }
    c.run(3);
    let follower = (leader + 1) % 3;
    c.snapshot(follower);
    c.crash(follower);
    for k in 50..60 {
        c.propose(leader, k);
    }
    c.run(2);
    c.restart(follower);
    c.run(10);
    let expected: Vec<u64> = (0..60).collect();
    assert_eq!(commands(&c, follower), expected);
}

#[test]
fn reads_are_served_by_a_confirmed_leader_after_it_applied() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, Options::default());
    let leader = c.elect();
    c.propose(leader, 1);
    c.read(leader, 1);
    c.read(leader, 2);
    assert!(c.reads_ready.is_empty(), "served before confirmation");
    c.deliver(1000);
    let id = c.ids[leader];
    assert_eq!(c.reads_ready, vec![(id, 1), (id, 2)]);
    assert_eq!(commands(&c, leader), [1]);
    // A follower asks the leader for its read index and serves the read itself.
    let follower = (leader + 1) % 3;
    c.read(follower, 3);
    assert_eq!(c.reads_ready.len(), 2, "served before the leader answered");
    c.deliver(1000);
    assert_eq!(c.reads_ready[2], (c.ids[follower], 3));
    assert!(c.reads_failed.is_empty());
}

/// A follower following N1 at `b` that applied slot 1.
fn follower_of_n1(b: Ballot) -> TestReplica {
    let mut r = replica(N2);
    r.step(N1, accept(b, 1, &[cmd(1)], 1));
    assert_eq!(r.applied(), 1);
    r
}

/// The read-index request in `actions`: (to, boot, seq).
fn read_index_request(actions: &[Action<u64>]) -> Vec<(NodeId, u64, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                message: Message::ReadIndex { boot, seq, .. },
            } => Some((*to, *boot, *seq)),
            _ => None,
        })
        .collect()
}

fn read_index_reply(b: Ballot, boot: u64, seq: u64, index: Slot) -> Message<u64> {
    Message::ReadIndexReply {
        ballot: b,
        boot,
        seq,
        index,
    }
}

#[test]
fn a_follower_read_waits_for_the_leaders_read_index_and_its_own_apply() {
    let b = ballot(1, N1);
    let mut r = follower_of_n1(b);
    let asked = read_index_request(&r.read(7));
    let [(to, boot, 1)] = asked[..] else {
        panic!("expected one request numbered 1, got {asked:?}");
    };
    assert_eq!(to, N1);
    // Arrived after request 1 left: waits for request 2, which waits for 1's answer.
    assert_eq!(r.read(8), vec![]);
    // An answer for another boot of this replica is ignored.
    assert_eq!(r.step(N1, read_index_reply(b, boot + 1, 1, 1)), vec![]);
    // Index 2 is not applied yet: read 7 waits; request 2 leaves for read 8.
    let actions = r.step(N1, read_index_reply(b, boot, 1, 2));
    assert_eq!(read_index_request(&actions), vec![(N1, boot, 2)]);
    assert_eq!(actions.len(), 1);
    // Slot 2 applies: read 7 is served, after the apply.
    let actions = r.step(N1, accept(b, 2, &[cmd(2)], 2));
    let ready = Action::ReadReady { id: 7 };
    assert_eq!(actions.last(), Some(&ready));
    assert!(matches!(
        actions[actions.len() - 2],
        Action::Apply { slot: 2, .. }
    ));
    // A duplicate of the first answer does not serve read 8.
    assert_eq!(r.step(N1, read_index_reply(b, boot, 1, 2)), vec![]);
    let actions = r.step(N1, read_index_reply(b, boot, 2, 2));
    assert_eq!(actions, vec![Action::ReadReady { id: 8 }]);
}

#[test]
fn an_unanswered_read_index_request_is_sent_again_and_fails_when_the_follower_campaigns() {
    let b = ballot(1, N1);
    let mut r = follower_of_n1(b);
    let asked = read_index_request(&r.read(7));
    let [(_, boot, 1)] = asked[..] else {
        panic!("expected one request, got {asked:?}");
    };
    let mut again = Vec::new();
    let mut failed = Vec::new();
    for _ in 0..100 {
        let actions = r.tick();
        again.extend(read_index_request(&actions));
        failed.extend(
            actions
                .into_iter()
                .filter(|a| matches!(a, Action::ReadFailed { .. })),
        );
        if !failed.is_empty() {
            break;
        }
    }
    assert!(again.len() >= 2, "resent: {again:?}");
    assert!(again.iter().all(|&r| r == (N1, boot, 1)), "{again:?}");
    let lost = Action::ReadFailed {
        id: 7,
        error: ReadError::LeadershipLost,
    };
    assert_eq!(failed, vec![lost]);
}

#[test]
fn a_leader_answers_a_read_index_request_once_a_quorum_confirms_its_ballot() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, Options::default());
    let leader = c.elect();
    c.propose(leader, 1);
    c.deliver(1000);
    let lead = c.ids[leader];
    let b = c.replicas[leader].as_ref().unwrap().promised();
    let follower = c.ids[(leader + 1) % 3];
    let request = Message::ReadIndex {
        ballot: b,
        boot: 42,
        seq: 5,
    };
    let actions = c.replicas[leader].as_mut().unwrap().step(follower, request);
    let heartbeat = actions
        .iter()
        .find_map(|a| match a {
            Action::Send {
                message: Message::Heartbeat { seq, .. },
                ..
            } => Some(*seq),
            _ => None,
        })
        .expect("a confirming heartbeat");
    assert!(
        !actions.iter().any(|a| matches!(
            a,
            Action::Send {
                message: Message::ReadIndexReply { .. },
                ..
            }
        )),
        "answered before confirmation"
    );
    let other = c.ids[(leader + 2) % 3];
    let ack = Message::HeartbeatAck {
        ballot: b,
        seq: heartbeat,
    };
    let replica = c.replicas[leader].as_mut().unwrap();
    // Its own ack and one other make a quorum.
    assert_eq!(replica.step(lead, ack.clone()), vec![]);
    let index = replica.commit();
    let reply = send(follower, read_index_reply(b, 42, 5, index));
    assert_eq!(replica.step(other, ack), vec![reply]);
}

/// The index a leader (N1, with slot 1 given out and not chosen) answers a read-index
/// request with.
fn read_index_with_a_slot_in_flight(learn_from_acceptors: bool) -> Slot {
    let members = Arc::new(Members::new(vec![N1, N2, N3], QuorumSpec::Majority).unwrap());
    let options = Options {
        learn_from_acceptors,
        ..options()
    };
    let mut r: TestReplica = Replica::new(N1, members, options, Pcg32::seed_from_u64(1)).unwrap();
    elect_n1(&mut r, vec![]);
    let b = ballot(1, N1);
    r.propose(42).unwrap();
    let request = Message::ReadIndex {
        ballot: b,
        boot: 42,
        seq: 5,
    };
    let heartbeat = |actions: &[Action<u64>]| {
        actions.iter().find_map(|a| match a {
            Action::Send {
                message: Message::Heartbeat { seq, .. },
                ..
            } => Some(*seq),
            _ => None,
        })
    };
    // The heartbeat that confirms it: at once, or the next tick's.
    let mut actions = r.step(N2, request);
    let seq = loop {
        if let Some(seq) = heartbeat(&actions) {
            break seq;
        }
        actions = r.tick();
    };
    let ack = Message::HeartbeatAck { ballot: b, seq };
    r.step(N1, ack.clone());
    let mut actions = r.step(N3, ack);
    assert_eq!(r.commit(), 0);
    if learn_from_acceptors {
        assert_eq!(actions, vec![], "the read waits for slot 1");
        r.step(N1, accepted(b, 1, 1));
        actions = r.step(N3, accepted(b, 1, 1));
        actions.retain(|a| {
            matches!(
                a,
                Action::Send {
                    message: Message::ReadIndexReply { .. },
                    ..
                }
            )
        });
    }
    match actions.as_slice() {
        [Action::Send {
            message: Message::ReadIndexReply { index, .. },
            ..
        }] => *index,
        other => panic!("expected one read-index reply, got {other:?}"),
    }
}

#[test]
fn a_leader_whose_followers_learn_from_acceptors_reads_at_the_last_slot_it_gave_out() {
    // A follower may have answered slot 1's client already: a read must include it.
    assert_eq!(read_index_with_a_slot_in_flight(true), 1);
    assert_eq!(read_index_with_a_slot_in_flight(false), 0);
}

#[test]
fn forwarded_proposals_are_chosen() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, Options::default());
    let leader = c.elect();
    let follower = (leader + 1) % 3;
    assert!(c.propose(follower, 77));
    c.run(3);
    for i in 0..3 {
        assert_eq!(commands(&c, i), [77]);
    }
}

/// Random crashes, restarts, cut links and snapshots, with a printed seed: replicas never
/// disagree (the cluster asserts it on every apply), and once all heals every command the
/// final leader accepted is applied everywhere.
#[test]
fn random_faults_never_break_agreement() {
    let quorums = [
        (5, QuorumSpec::Majority),
        (6, QuorumSpec::Grid { rows: 2, cols: 3 }),
        (5, QuorumSpec::Flexible { q1: 4, q2: 2 }),
    ];
    for seed in 0..60u64 {
        let (n, quorum) = quorums[(seed % 3) as usize];
        println!("seed {seed}, {n} replicas, {quorum}");
        let mut rng = Pcg32::seed_from_u64(seed);
        let mut c = Cluster::new(n, quorum, Options::default());
        let n = n as usize;
        let mut next = 0;
        for _ in 0..300 {
            let i = (rng.next_u32() % n as u32) as usize;
            match rng.next_u32() % 20 {
                0 if c.replicas[i].is_some() => c.crash(i),
                1 if c.replicas[i].is_none() => c.restart(i),
                2 => c.isolate(i),
                3 => c.heal(),
                4 if c.replicas[i].is_some() => c.snapshot(i),
                _ => {
                    if c.replicas[i].is_some() {
                        next += 1;
                        c.propose(i, next);
                    }
                }
            }
            c.tick_all();
            c.deliver((rng.next_u32() % 50) as usize);
        }
        c.heal();
        for i in 0..n {
            if c.replicas[i].is_none() {
                c.restart(i);
            }
        }
        let leader = c.elect();
        c.run(30);
        assert!(c.propose(leader, 1_000_000), "seed {seed}");
        c.run(30);
        for i in 0..n {
            assert_eq!(
                c.state[i], c.state[leader],
                "seed {seed}: replica {i} differs"
            );
            assert_eq!(c.state[i].last(), Some(&1_000_000), "seed {seed}");
        }
    }
}

/// Arbitrary messages (stale and future ballots, slots far beyond the window, strangers,
/// repeats) never panic and never break an invariant (checked after every event).
#[test]
fn arbitrary_messages_are_handled_by_rule() {
    let ids = [N1, N2, N3, NodeId(9)];
    for seed in 0..50u64 {
        let mut rng = Pcg32::seed_from_u64(seed);
        let mut r = replica(ids[(seed % 3) as usize]);
        let mut pick = |n: u64| u64::from(rng.next_u32()) % n;
        for _ in 0..2000 {
            let b = ballot(pick(4), ids[pick(4) as usize]);
            let slot = match pick(4) {
                0 => pick(u64::MAX),
                _ => pick(40),
            };
            let entries: Vec<Entry<u64>> = (0..pick(4)).map(|k| cmd(pick(3) + k)).collect();
            let message = match pick(14) {
                0 => prepare(b, slot),
                1 => Message::Promise {
                    ballot: b,
                    from: slot,
                    votes: vec![vote(slot, ballot(pick(3), N2), cmd(pick(3)))],
                    next: (pick(2) == 0).then_some(slot + 1),
                },
                2 => Message::Nack {
                    ballot: b,
                    promised: ballot(pick(5), N3),
                },
                3 => Message::Behind {
                    ballot: b,
                    compacted: slot,
                },
                4 => accept(b, slot, &entries, pick(40)),
                5 => Message::Accepted {
                    ballot: b,
                    first: slot,
                    last: slot + pick(5),
                },
                6 => heartbeat(b, pick(40), pick(5)),
                7 => Message::HeartbeatAck {
                    ballot: b,
                    seq: pick(5),
                },
                8 => Message::Forward {
                    ballot: b,
                    boot: pick(2),
                    seq: pick(4),
                    commands: vec![pick(9)],
                },
                9 => Message::CatchUp {
                    ballot: b,
                    from: slot,
                },
                12 => Message::ReadIndex {
                    ballot: b,
                    boot: pick(2),
                    seq: pick(4),
                },
                13 => read_index_reply(b, pick(2), pick(4), pick(40)),
                10 => Message::Chosen {
                    ballot: b,
                    first: slot,
                    entries: entries
                        .iter()
                        .map(|e| LogEntry {
                            ballot: b,
                            entry: e.clone(),
                        })
                        .collect(),
                    commit: pick(40),
                },
                _ => Message::Snapshot {
                    ballot: b,
                    index: slot,
                    membership: r.membership().clone(),
                    offset: pick(3) * 4,
                    total: 8,
                    data: vec![0; pick(6) as usize],
                },
            };
            let from = ids[pick(4) as usize];
            r.step(from, message);
            match pick(10) {
                0 => drop(r.tick()),
                1 => drop(r.propose(pick(9))),
                2 => drop(r.read(pick(9))),
                3 => {
                    let applied = r.applied();
                    r.snapshot_taken(applied, vec![1u8; 8].into());
                }
                _ => {}
            }
        }
    }
}

// ---- leases ---------------------------------------------------------------------------

fn lease_options() -> Options {
    Options {
        lease: Some(Lease {
            duration_ticks: 8,
            drift_ticks: 2,
        }),
        ..options()
    }
}

fn leased_replica(id: NodeId) -> TestReplica {
    let members = Arc::new(Members::new(vec![N1, N2, N3], QuorumSpec::Majority).unwrap());
    Replica::new(id, members, lease_options(), Pcg32::seed_from_u64(id.0)).unwrap()
}

fn promises(actions: &[Action<u64>]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            Action::Send {
                message: Message::Promise { .. },
                ..
            }
        )
    })
}

#[test]
fn a_restarted_acceptor_promises_nothing_until_any_lease_it_granted_has_ended() {
    let mut r = leased_replica(N2);
    let b = ballot(1, N3);
    // The grant counts from the next tick: eight whole ticks, then one more.
    for _ in 0..8 {
        assert!(
            !promises(&r.step(N3, prepare(b, 1))),
            "promised inside a lease"
        );
        r.tick();
    }
    r.tick();
    assert!(promises(&r.step(N3, prepare(b, 1))));
}

#[test]
fn an_acceptor_that_granted_a_lease_refuses_other_candidates_until_it_ends() {
    let mut r = leased_replica(N2);
    for _ in 0..8 {
        r.tick();
    }
    let leader = ballot(1, N1);
    r.step(N1, heartbeat(leader, 0, 1)); // Granted for 8 whole ticks from the next.
    let rival = ballot(2, N3);
    for _ in 0..8 {
        r.tick();
        assert_eq!(r.step(N3, prepare(rival, 1)), vec![]);
    }
    r.tick();
    assert!(promises(&r.step(N3, prepare(rival, 1))));
    assert_eq!(r.promised(), rival);
}

#[test]
fn a_leader_with_a_lease_serves_reads_without_a_message_round() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, lease_options());
    let leader = c.elect();
    c.propose(leader, 5);
    c.run(2);
    c.read(leader, 1);
    assert_eq!(
        c.reads_ready,
        vec![(c.ids[leader], 1)],
        "not served at once"
    );
}

#[test]
fn an_isolated_leader_stops_lease_reads_before_another_can_be_elected() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, lease_options());
    let old = c.elect();
    c.run(3);
    c.isolate(old);
    let old_id = c.ids[old];
    let mut last_lease_read = None;
    let mut new_leader_at = None;
    for tick in 0..200 {
        c.run(1);
        let before = c.reads_ready.len();
        c.read(old, tick);
        if c.reads_ready.len() > before {
            last_lease_read = Some(tick);
        }
        let others_lead = (0..3).any(|i| i != old && c.replica(i).role() == RoleKind::Leader);
        if others_lead && new_leader_at.is_none() {
            new_leader_at = Some(tick);
        }
    }
    let (last, new) = (last_lease_read.unwrap(), new_leader_at.unwrap());
    assert!(last < new, "lease read at tick {last}, new leader at {new}");
    assert!(c.reads_ready.iter().all(|&(id, _)| id == old_id));
}

#[test]
fn a_lease_longer_than_the_election_timeout_or_drift_bound_is_refused() {
    for (duration_ticks, drift_ticks) in [(11, 1), (4, 4)] {
        let lease = Some(Lease {
            duration_ticks,
            drift_ticks,
        });
        assert!(Options {
            lease,
            ..Options::default()
        }
        .validate()
        .is_err());
    }
}

/// A follower cut off from the leader campaigns early, while the leader still holds its
/// lease through the other follower. The grant makes that follower refuse the candidate:
/// nobody else leads while the old leader serves reads from its lease.
#[test]
fn a_lease_keeps_an_early_candidate_from_winning_while_it_holds() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, lease_options());
    let leader = c.elect();
    c.run(3);
    let cut_off = (leader + 1) % 3;
    let (l, f) = (c.ids[leader], c.ids[cut_off]);
    c.cut.insert((l, f));
    c.cut.insert((f, l));
    let mut lease_reads = 0;
    for tick in 0..100 {
        c.run(1);
        let before = c.reads_ready.len();
        c.read(leader, tick);
        if c.reads_ready.len() > before {
            lease_reads += 1;
            let rivals = (0..3).filter(|&i| i != leader);
            let rival_leads = rivals
                .into_iter()
                .any(|i| c.replica(i).role() == RoleKind::Leader);
            assert!(
                !rival_leads,
                "tick {tick}: a lease read while another replica leads"
            );
        }
    }
    assert!(lease_reads > 90, "{lease_reads} lease reads");
}

// ---- learners --------------------------------------------------------------------------

#[test]
fn a_learner_applies_every_command_and_never_campaigns() {
    let mut c = Cluster::with_learners(3, 2, QuorumSpec::Majority, Options::default());
    let leader = c.elect();
    assert!(leader < 3, "a voter leads");
    for k in 0..100 {
        assert!(c.propose(leader, k));
    }
    c.run(5);
    let expected: Vec<u64> = (0..100).collect();
    for i in 0..5 {
        assert_eq!(commands(&c, i), expected, "member {i}");
    }
    // With every voter out of reach, a learner waits for ever: it never campaigns.
    for i in 0..3 {
        c.isolate(i);
    }
    c.run(300);
    for learner in [3, 4] {
        let r = c.replica(learner);
        assert_eq!(r.role(), RoleKind::Follower);
        assert_ne!(r.promised().node, c.ids[learner], "it never made a ballot");
    }
}

#[test]
fn a_learners_acknowledgements_complete_no_quorum() {
    let mut c = Cluster::with_learners(3, 2, QuorumSpec::Majority, Options::default());
    let leader = c.elect();
    let commit = c.replica(leader).commit();
    // The leader reaches both learners and no other voter: three votes, one of a voter.
    let leader_id = c.ids[leader];
    for voter in (0..3).filter(|&i| i != leader) {
        c.cut.insert((leader_id, c.ids[voter]));
        c.cut.insert((c.ids[voter], leader_id));
    }
    assert!(c.propose(leader, 7));
    for _ in 0..3 {
        c.deliver(100_000);
    }
    assert_eq!(
        c.replica(3).entry(commit + 1).map(|e| &e.entry),
        Some(&cmd(7)),
        "the learner holds the entry"
    );
    assert_eq!(c.replica(leader).commit(), commit, "but nothing is chosen");
    c.heal();
    c.run(3);
    assert!(c.replica(leader).commit() > commit);
    assert_eq!(commands(&c, 4), [7]);
}

#[test]
fn a_learner_that_fell_behind_a_snapshot_catches_up() {
    let mut c = Cluster::with_learners(3, 1, QuorumSpec::Majority, Options::default());
    let leader = c.elect();
    c.isolate(3);
    for k in 0..50 {
        assert!(c.propose(leader, k));
    }
    c.run(3);
    for i in 0..3 {
        c.snapshot(i);
    }
    assert!(c.replica(leader).compacted() > 0);
    c.heal();
    c.run(20);
    assert_eq!(commands(&c, 3), commands(&c, leader));
    assert_eq!(commands(&c, 3).len(), 50);
}

#[test]
fn a_member_is_a_voter_or_a_learner_not_both() {
    let both = Members::with_learners(vec![N1, N2, N3], vec![N3], QuorumSpec::Majority);
    assert_eq!(both, Err(crate::synod::ConfigError::DuplicateNode(N3)));
    let members =
        Members::with_learners(vec![N1, N2, N3], vec![NodeId(4)], QuorumSpec::Majority).unwrap();
    assert_eq!(
        members.position(NodeId(4)),
        Some(3),
        "learners after the voters"
    );
    assert_eq!(members.index_of(NodeId(4)), None, "no acceptor index");
    assert!(!members.is_voter(NodeId(4)));
    assert_eq!(members.count(), 4);
}

// ---- Raft's vote restriction ----------------------------------------------------------

fn raft_options() -> Options {
    Options {
        election: ElectionMode::Raft,
        ..options()
    }
}

fn raft_replica(id: NodeId) -> TestReplica {
    let members = Arc::new(Members::new(vec![N1, N2, N3], QuorumSpec::Majority).unwrap());
    Replica::new(id, members, raft_options(), Pcg32::seed_from_u64(id.0)).unwrap()
}

fn raft_prepare(ballot: Ballot, from: Slot, log: &[(Slot, Ballot)]) -> Message<u64> {
    let log = log
        .iter()
        .map(|&(last, ballot)| LogRun { last, ballot })
        .collect();
    Message::Prepare { ballot, from, log }
}

fn promised_anything(actions: &[Action<u64>]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            Action::Send {
                message: Message::Promise { .. },
                ..
            }
        )
    })
}

#[test]
fn a_raft_candidate_describes_its_log_in_its_prepare() {
    let mut r = raft_replica(N1);
    let b1 = ballot(1, N2);
    let b2 = ballot(2, N3);
    r.step(N2, accept(b1, 1, &[cmd(10), cmd(11)], 0));
    r.step(N3, accept(b2, 1, &[cmd(10)], 0));
    r.step(N3, accept(b2, 4, &[cmd(13)], 0));
    let actions = campaign(&mut r);
    let b = ballot(3, N1);
    let prepare = raft_prepare(b, 1, &[(1, b2), (2, b1), (3, Ballot::ZERO), (4, b2)]);
    assert_eq!(
        actions,
        vec![
            Action::Persist(Write::Promise(b)),
            send(N1, prepare.clone()),
            send(N2, prepare.clone()),
            send(N3, prepare),
        ]
    );
}

/// The vote restriction, exactly: a voter holding a vote promises only a candidate that
/// holds that slot at a ballot at least as high, and then reports nothing.
#[test]
fn a_stale_raft_candidate_is_refused() {
    let mut r = raft_replica(N2);
    let b1 = ballot(2, N1);
    r.step(N1, accept(b1, 1, &[cmd(10), cmd(11)], 0));
    // No log at all; a log one slot short; a hole; the slot at a lower ballot.
    let stale = [
        vec![],
        vec![(1, b1)],
        vec![(1, b1), (2, Ballot::ZERO)],
        vec![(1, b1), (2, ballot(1, N3))],
    ];
    for (round, log) in (3..).zip(stale) {
        let b = ballot(round, N3);
        let actions = r.step(N3, raft_prepare(b, 1, &log));
        assert!(!promised_anything(&actions), "{log:?}: {actions:?}");
        assert_eq!(r.promised(), b1, "a refusal promises nothing");
    }
    // A candidate whose log covers the voter's: promised durably, with no votes.
    let b = ballot(7, N3);
    let actions = r.step(
        N3,
        raft_prepare(b, 1, &[(1, ballot(3, N3)), (2, b1), (5, b1)]),
    );
    let promise = Message::Promise {
        ballot: b,
        from: 1,
        votes: vec![],
        next: None,
    };
    assert_eq!(
        actions,
        vec![Action::Persist(Write::Promise(b)), send(N3, promise)]
    );
    // Votes below `from` are the candidate's commit point: chosen, it holds them.
    let mut r = raft_replica(N2);
    r.step(N1, accept(b1, 1, &[cmd(10)], 0));
    assert!(promised_anything(
        &r.step(N3, raft_prepare(ballot(2, N3), 2, &[]))
    ));
}

/// The same voter under Paxos's rule promises the stale candidate and reports its votes.
#[test]
fn a_paxos_voter_promises_any_higher_ballot() {
    let mut r = replica(N2);
    let b1 = ballot(1, N1);
    r.step(N1, accept(b1, 1, &[cmd(10)], 0));
    let b = ballot(2, N3);
    let promise = Message::Promise {
        ballot: b,
        from: 1,
        votes: vec![vote(1, b1, cmd(10))],
        next: None,
    };
    assert_eq!(
        r.step(N3, raft_prepare(b, 1, &[])),
        vec![Action::Persist(Write::Promise(b)), send(N3, promise)]
    );
}

/// A value chosen by the leader and one follower; the leader crashes; the follower that
/// missed it campaigns first and is refused by the one that holds it (under Paxos it
/// would win and re-propose it from that promise). The follower holding it wins, and
/// leads with its own log.
#[test]
fn raft_mode_elects_only_a_candidate_holding_every_chosen_entry() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, raft_options());
    let old = c.elect();
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let (holder, stale) = (others[0], others[1]);
    let (old_id, stale_id) = (c.ids[old], c.ids[stale]);
    c.cut.insert((old_id, stale_id));
    c.propose(old, 100);
    c.deliver(100);
    c.crash(old);
    c.heal();
    assert_eq!(
        c.replica(holder).entry(1).map(|e| &e.entry),
        Some(&cmd(100))
    );
    assert_eq!(c.replica(stale).entry(1), None);
    // Only the stale one's timer runs: it campaigns, again and again, and never leads.
    for _ in 0..200 {
        c.tick(stale);
        c.deliver(1000);
        assert_ne!(c.replica(stale).role(), RoleKind::Leader);
    }
    let new = c.elect();
    assert_eq!(new, holder);
    c.run(5);
    assert_eq!(commands(&c, holder), [100]);
    assert_eq!(commands(&c, stale), [100]);
}
