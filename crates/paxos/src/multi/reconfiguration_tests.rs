//! Membership changes on the test cluster: every replica applies the same entries in
//! the same slots (the cluster asserts it on every apply), through changes, leader
//! changes in the middle of one, and lost messages.

use std::sync::Arc;

use super::cluster::{Cluster, TestReplica};
use super::*;
use crate::{NodeId, QuorumSpec};

fn commands(cluster: &Cluster, i: usize) -> &[u64] {
    &cluster.state[i]
}

/// Proposes `count` commands from `first` at the leader, electing one first if needed,
/// and runs on for an election timeout: long enough for the leader to tell which members
/// are in sync (promotions and transfers ask).
fn write(c: &mut Cluster, first: u64, count: u64) {
    let leader = c.elect();
    for k in first..first + count {
        assert!(c.propose(leader, k));
    }
    c.run(12);
}

/// The epoch and current configuration of every running replica, which must agree.
fn agreed_membership(c: &Cluster) -> (u64, Arc<Members>) {
    let mut seen = None;
    for i in 0..c.ids.len() {
        let Some(r) = c.replicas[i].as_ref() else {
            continue;
        };
        let m = r.membership();
        let this = (m.epoch(), m.current().clone());
        assert!(
            !m.is_changing(),
            "replica {i}: the old configuration was retired"
        );
        match &seen {
            None => seen = Some(this),
            Some(s) => assert_eq!(*s, this, "replica {i} disagrees"),
        }
    }
    seen.expect("some replica runs")
}

fn ids(ids: &[u64]) -> Vec<NodeId> {
    ids.iter().map(|&i| NodeId(i)).collect()
}

#[test]
fn a_learner_is_promoted_then_a_voter_removed_while_writes_go_on() {
    let mut c = Cluster::with_learners(3, 1, QuorumSpec::Majority, Options::default());
    write(&mut c, 0, 20);
    let leader = c.elect();
    c.reconfigure(leader, Change::Promote(NodeId(4))).unwrap();
    c.run(10);
    write(&mut c, 20, 20);
    let (epoch, members) = agreed_membership(&c);
    assert_eq!((epoch, members.replicas()), (1, &ids(&[1, 2, 3, 4])[..]));
    // Remove whoever leads: it steps down, and the others go on without it.
    let leader = c.elect();
    let removed = c.ids[leader];
    c.reconfigure(leader, Change::Remove(removed)).unwrap();
    c.run(30);
    write(&mut c, 40, 20);
    let new_leader = c.elect();
    assert_ne!(c.ids[new_leader], removed);
    let (epoch, members) = agreed_membership(&c);
    assert_eq!(epoch, 2);
    assert!(!members.is_voter(removed) && members.replicas().len() == 3);
    let expected: Vec<u64> = (0..60).collect();
    for i in (0..4).filter(|&i| i != leader) {
        assert_eq!(commands(&c, i), expected, "replica {i}");
    }
}

#[test]
fn one_change_at_a_time_and_only_at_the_leader() {
    let mut c = Cluster::with_learners(3, 1, QuorumSpec::Majority, Options::default());
    let leader = c.elect();
    // A leader this new cannot tell whether the learner is in sync.
    assert_eq!(
        c.reconfigure(leader, Change::Promote(NodeId(4))),
        Err(ReconfigureError::LearnerBehind(NodeId(4)))
    );
    c.run(12);
    let follower = (leader + 1) % 3;
    assert!(matches!(
        c.reconfigure(follower, Change::Promote(NodeId(4))),
        Err(ReconfigureError::NotLeader { leader: Some(l) }) if l == c.ids[leader]
    ));
    assert_eq!(
        c.reconfigure(leader, Change::Promote(NodeId(2))),
        Err(ReconfigureError::Refused(ChangeError::NotLearner(NodeId(
            2
        ))))
    );
    c.reconfigure(leader, Change::Promote(NodeId(4))).unwrap();
    assert_eq!(
        c.reconfigure(leader, Change::Remove(NodeId(4))),
        Err(ReconfigureError::InProgress)
    );
    c.run(10);
    let leader = c.elect();
    c.reconfigure(leader, Change::Remove(NodeId(4))).unwrap();
    c.run(10);
    let (epoch, members) = agreed_membership(&c);
    assert_eq!((epoch, members.replicas().len()), (2, 3));
}

#[test]
fn a_new_member_joins_as_a_learner_and_catches_up() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, Options::default());
    write(&mut c, 0, 30);
    let spare = c.add_spare();
    let id = c.ids[spare];
    let leader = c.elect();
    c.reconfigure(leader, Change::AddLearner(id)).unwrap();
    c.run(5);
    // Started as an operator would: the members it was told of, itself a learner.
    let told = Members::with_learners(ids(&[1, 2, 3]), vec![id], QuorumSpec::Majority).unwrap();
    c.join(spare, told);
    c.run(10);
    write(&mut c, 30, 10);
    assert_eq!(commands(&c, spare), (0..40).collect::<Vec<u64>>());
    let leader = c.elect();
    c.reconfigure(leader, Change::Promote(id)).unwrap();
    c.run(10);
    let (epoch, members) = agreed_membership(&c);
    assert_eq!((epoch, members.replicas().len()), (2, 4));
}

#[test]
fn the_quorum_system_changes_at_runtime() {
    let mut c = Cluster::new(4, QuorumSpec::Majority, Options::default());
    write(&mut c, 0, 10);
    let leader = c.elect();
    let flexible = QuorumSpec::Flexible { q1: 3, q2: 2 };
    c.reconfigure(leader, Change::SetQuorum(flexible)).unwrap();
    c.run(10);
    let (_, members) = agreed_membership(&c);
    assert_eq!(members.spec(), flexible);
    // Phase 2 now needs 2 of 4: with two members cut off, writes still commit.
    let leader = c.elect();
    let others: Vec<usize> = (0..4).filter(|&i| i != leader).take(2).collect();
    for &i in &others {
        c.isolate(i);
    }
    let commit = c.replica(leader).commit();
    assert!(c.propose(leader, 99));
    c.run(3);
    assert!(c.replica(leader).commit() > commit, "chosen by 2 of 4");
    c.heal();
    c.run(10);
    assert_eq!(commands(&c, others[0]).last(), Some(&99));
}

#[test]
fn a_leader_change_in_the_middle_of_a_change_leaves_one_membership() {
    for seed in 0..20 {
        let mut c = Cluster::with_learners(3, 1, QuorumSpec::Majority, Options::default());
        write(&mut c, 0, 5);
        let leader = c.elect();
        c.reconfigure(leader, Change::Promote(NodeId(4))).unwrap();
        // The change reaches some members, or none, before its leader is cut off.
        c.deliver(seed * 2);
        c.isolate(leader);
        c.run(40);
        c.heal();
        c.run(40);
        write(&mut c, 5, 5);
        let (epoch, _) = agreed_membership(&c);
        assert!(epoch <= 1, "seed {seed}");
        for i in 0..4 {
            assert_eq!(
                commands(&c, i),
                (0..10).collect::<Vec<u64>>(),
                "seed {seed}"
            );
        }
    }
}

/// A replica that missed a change hears of it through a member it knows, whose promise
/// belongs to a ballot of the new epoch owned by a member it does not know yet: it must
/// take the log, not drop it as forged, and then follow the new configuration.
#[test]
fn a_replica_that_missed_a_change_learns_it_from_a_member_it_knows() {
    use crate::Ballot;
    let mut lagger = lagger();
    let grown = Arc::new(Members::new(ids(&[1, 2, 3, 4]), QuorumSpec::Majority).unwrap());
    let new_leader = Ballot::next_in_epoch(Ballot::ZERO, 1, NodeId(4)).unwrap();
    let chosen = Message::Chosen {
        ballot: new_leader,
        first: 1,
        entries: vec![LogEntry {
            ballot: Ballot::new(1, NodeId(1)),
            entry: Entry::Configure {
                base: 0,
                members: grown.clone(),
            },
        }],
        commit: 1,
    };
    lagger.step(NodeId(2), chosen);
    lagger.tick();
    assert_eq!(lagger.membership().epoch(), 1);
    assert_eq!(lagger.membership().current(), &grown);
}

#[test]
fn a_replica_that_saw_a_later_epoch_asks_a_voter_it_knows_for_the_log() {
    use crate::Ballot;
    let mut lagger = lagger();
    let new_leader = Ballot::next_in_epoch(Ballot::ZERO, 1, NodeId(4)).unwrap();
    let nack = Message::Nack {
        ballot: Ballot::new(1, NodeId(3)),
        promised: new_leader,
    };
    lagger.step(NodeId(1), nack);
    let asked: Vec<NodeId> = (0..10)
        .flat_map(|_| lagger.tick())
        .filter_map(|action| match action {
            Action::Send {
                to,
                message: Message::CatchUp { .. },
            } => Some(to),
            _ => None,
        })
        .collect();
    assert!(!asked.is_empty(), "it asks for the log");
    assert!(asked.iter().all(|&to| to == NodeId(1) || to == NodeId(2)));
}

/// Replica n3 of {n1, n2, n3}, at epoch 0.
fn lagger() -> TestReplica {
    let members = Arc::new(Members::new(ids(&[1, 2, 3]), QuorumSpec::Majority).unwrap());
    TestReplica::new(NodeId(3), members, Options::default(), seeded(3)).unwrap()
}

fn seeded(seed: u64) -> rand_pcg::Pcg32 {
    rand_core::SeedableRng::seed_from_u64(seed)
}

/// A joining voter started with the configuration it was told of never campaigns on it;
/// once the log's changes replayed over it have retired it, it may.
#[test]
fn a_joining_member_campaigns_only_on_configurations_the_log_chose() {
    use crate::Ballot;
    let told = Arc::new(Members::new(ids(&[1, 2, 3, 4]), QuorumSpec::Majority).unwrap());
    let options = Options::default();
    let durable = Durable::default();
    let mut joiner =
        TestReplica::join(NodeId(4), told.clone(), options, seeded(4), durable).unwrap();
    for _ in 0..200 {
        joiner.tick();
    }
    assert_eq!(joiner.promised(), Ballot::ZERO, "it never campaigned");
    assert!(!joiner.membership().is_settled());
    let leader = Ballot::next_in_epoch(Ballot::ZERO, 1, NodeId(1)).unwrap();
    let at = |entry| LogEntry {
        ballot: leader,
        entry,
    };
    let chosen = Message::Chosen {
        ballot: leader,
        first: 1,
        entries: vec![
            at(Entry::Configure {
                base: 0,
                members: told,
            }),
            at(Entry::Retire { epoch: 1 }),
        ],
        commit: 2,
    };
    joiner.step(NodeId(1), chosen);
    joiner.tick();
    assert!(joiner.membership().is_settled());
    let campaigned = (0..200).any(|_| {
        joiner.tick();
        joiner.promised().node == NodeId(4)
    });
    assert!(campaigned, "settled, it campaigns when it hears no leader");
}

/// Promotes the learner of a 3 + 1 cluster and writes on: the membership is epoch 1,
/// four voters, when it returns.
fn promoted_and_written(c: &mut Cluster) {
    write(c, 0, 10);
    let leader = c.elect();
    c.reconfigure(leader, Change::Promote(NodeId(4))).unwrap();
    c.run(10);
    write(c, 10, 10);
    let (epoch, members) = agreed_membership(c);
    assert_eq!((epoch, members.replicas()), (1, &ids(&[1, 2, 3, 4])[..]));
}

#[test]
fn a_restart_from_a_snapshot_past_a_change_keeps_the_change() {
    let mut c = Cluster::with_learners(3, 1, QuorumSpec::Majority, Options::default());
    promoted_and_written(&mut c);
    let follower = (c.elect() + 1) % 4;
    c.snapshot(follower);
    assert!(c.replica(follower).compacted() > 0);
    c.crash(follower);
    c.restart(follower);
    // The change's entry was released with the log: only the snapshot can say it.
    let m = c.replica(follower).membership();
    assert_eq!(
        (m.epoch(), m.current().replicas()),
        (1, &ids(&[1, 2, 3, 4])[..])
    );
    write(&mut c, 20, 10);
    agreed_membership(&c);
    let expected: Vec<u64> = (0..30).collect();
    assert_eq!(commands(&c, follower), expected);
}

#[test]
fn a_replica_that_missed_a_change_learns_it_from_a_snapshot() {
    let mut c = Cluster::with_learners(3, 1, QuorumSpec::Majority, Options::default());
    write(&mut c, 0, 5);
    let leader = c.elect();
    let behind = (leader + 1) % 3;
    c.isolate(behind);
    c.reconfigure(leader, Change::Promote(NodeId(4))).unwrap();
    c.run(10);
    write(&mut c, 5, 10);
    for i in (0..4).filter(|&i| i != behind) {
        c.snapshot(i);
    }
    c.heal();
    c.run(40);
    let r = c.replica(behind);
    assert!(r.compacted() > 5, "caught up by a snapshot, not the log");
    let (epoch, members) = agreed_membership(&c);
    assert_eq!((epoch, members.replicas()), (1, &ids(&[1, 2, 3, 4])[..]));
    // And keeps it across a restart: the installed snapshot was stored with it.
    c.crash(behind);
    c.restart(behind);
    assert_eq!(c.replica(behind).membership().epoch(), 1);
}

#[test]
fn a_snapshot_below_a_change_is_taken_with_the_membership_before_it() {
    let mut c = Cluster::with_learners(3, 1, QuorumSpec::Majority, Options::default());
    write(&mut c, 0, 5);
    let before = c.applied(0);
    promoted_and_written(&mut c);
    // Replica 0 snapshots at a slot before the change although it applied past it.
    let leader = c.elect();
    let i = (leader + 1) % 4;
    c.snapshot_at(i, before, &(0..5).collect::<Vec<u64>>());
    assert_eq!(c.replica(i).compacted(), before);
    assert_eq!(c.replica(i).membership().epoch(), 1);
    // Restarted, it replays the change over the snapshot's membership, which must be
    // the one before it (epoch 0: the change's base), or the change would be refused.
    c.crash(i);
    c.restart(i);
    assert_eq!(c.replica(i).membership().epoch(), 0);
    c.run(10);
    let m = c.replica(i).membership();
    assert_eq!(
        (m.epoch(), m.current().replicas()),
        (1, &ids(&[1, 2, 3, 4])[..])
    );
    write(&mut c, 20, 5);
    let expected: Vec<u64> = (0..5).chain(0..25).collect();
    assert_eq!(commands(&c, i), expected);
}

#[test]
fn a_learner_is_promoted_only_once_it_holds_the_log() {
    let options = Options {
        window_slots: 4,
        ..Options::default()
    };
    let mut c = Cluster::with_learners(3, 1, QuorumSpec::Majority, options);
    c.isolate(3);
    write(&mut c, 0, 20);
    let leader = c.elect();
    let voter = c.ids[(leader + 1) % 3];
    let r = c.replica(leader);
    assert!(r.peer_active(voter) && !r.peer_active(NodeId(4)));
    assert_eq!(
        c.reconfigure(leader, Change::Promote(NodeId(4))),
        Err(ReconfigureError::LearnerBehind(NodeId(4)))
    );
    c.heal();
    c.run(20);
    write(&mut c, 20, 2);
    let leader = c.elect();
    assert!(c.replica(leader).peer_active(NodeId(4)));
    c.reconfigure(leader, Change::Promote(NodeId(4))).unwrap();
    c.run(10);
    let (epoch, members) = agreed_membership(&c);
    assert_eq!((epoch, members.replicas()), (1, &ids(&[1, 2, 3, 4])[..]));
}

#[test]
fn followers_of_a_leader_that_removed_itself_campaign_before_a_whole_timeout() {
    let options = Options::default();
    let timeout = options.election_ticks as usize;
    let mut c = Cluster::new(3, QuorumSpec::Majority, options);
    write(&mut c, 0, 3);
    let leader = c.elect();
    let removed = c.ids[leader];
    c.reconfigure(leader, Change::Remove(removed)).unwrap();
    c.deliver(100_000);
    // Removed, but still needed until a leader of the new epoch is heard from.
    assert!(!c.replica(leader).removed());
    for i in (0..3).filter(|&i| i != leader) {
        let r = c.replica(i);
        assert!(!r.removed());
        assert_eq!(r.membership().epoch(), 1, "replica {i} applied the change");
        assert_eq!(
            r.leader(),
            None,
            "replica {i} forwards nothing to {removed:?}"
        );
    }
    let mut ticks = 0;
    while c.leader().is_none_or(|i| i == leader) {
        c.run(1);
        ticks += 1;
        assert!(ticks < timeout, "no new leader within {ticks} ticks");
    }
    c.run(2);
    assert!(
        c.replica(leader).removed(),
        "it heard from the new epoch's leader"
    );
}

#[test]
fn leadership_moves_to_a_voter_in_sync_and_only_there() {
    let options = Options {
        window_slots: 4,
        ..Options::default()
    };
    let mut c = Cluster::with_learners(3, 1, QuorumSpec::Majority, options);
    write(&mut c, 0, 5);
    let leader = c.elect();
    let follower = (leader + 1) % 3;
    let to = c.ids[(leader + 2) % 3];
    assert_eq!(
        c.transfer(follower, to),
        Err(TransferError::NotLeader {
            leader: Some(c.ids[leader])
        })
    );
    assert_eq!(
        c.transfer(leader, NodeId(4)),
        Err(TransferError::NotVoter(NodeId(4)))
    );
    assert_eq!(
        c.transfer(leader, NodeId(9)),
        Err(TransferError::NotVoter(NodeId(9)))
    );
    c.transfer(leader, to).unwrap();
    c.deliver(100_000);
    assert_eq!(c.leader().map(|i| c.ids[i]), Some(to), "no tick needed");
    write(&mut c, 5, 5);
    for i in 0..4 {
        assert_eq!(
            commands(&c, i),
            (0..10).collect::<Vec<u64>>(),
            "replica {i}"
        );
    }
    // A voter far behind is refused: it could not lead before catching up.
    let leader = c.leader().expect("a leader");
    let behind = (0..3).find(|&i| i != leader).expect("a follower");
    c.isolate(behind);
    write(&mut c, 10, 20);
    let leader = c.leader().expect("a leader");
    let id = c.ids[behind];
    assert_eq!(c.transfer(leader, id), Err(TransferError::Behind(id)));
}

#[test]
fn a_new_member_that_installs_a_snapshot_from_before_its_addition_is_not_removed() {
    let mut c = Cluster::new(3, QuorumSpec::Majority, Options::default());
    write(&mut c, 0, 20);
    for i in 0..3 {
        c.snapshot(i);
    }
    let spare = c.add_spare();
    let id = c.ids[spare];
    let leader = c.elect();
    c.reconfigure(leader, Change::AddLearner(id)).unwrap();
    c.run(10);
    let told = (**c.replica(leader).membership().current()).clone();
    c.join(spare, told);
    c.run(30);
    let r = c.replica(spare);
    assert!(r.compacted() > 0, "it caught up from a snapshot");
    assert!(!r.removed());
    assert!(r.membership().current().position(id).is_some());
    // And a restart from that snapshot (which does not name it) starts.
    c.crash(spare);
    c.restart(spare);
    c.run(10);
    assert!(c
        .replica(spare)
        .membership()
        .current()
        .position(id)
        .is_some());
}

/// Adds `c`'s next spare as a learner, starts it (told the leader's configuration), and
/// promotes it once it is in sync: its index.
fn add_member(c: &mut Cluster) -> usize {
    let spare = c.add_spare();
    let id = c.ids[spare];
    let leader = c.elect();
    c.reconfigure(leader, Change::AddLearner(id)).unwrap();
    c.run(12);
    let told = (**c.replica(leader).membership().current()).clone();
    c.join(spare, told);
    for _ in 0..20 {
        c.run(12);
        let leader = c.elect();
        if c.reconfigure(leader, Change::Promote(id)).is_ok() {
            c.run(12);
            return spare;
        }
    }
    panic!("{id:?} was never in sync");
}

#[test]
fn a_late_member_replays_a_log_whose_first_members_all_left() {
    // Catch-up in chunks of two entries: the replay spans many answers.
    let options = Options {
        chunk_entries: 2,
        ..Options::default()
    };
    let mut c = Cluster::new(3, QuorumSpec::Majority, options);
    write(&mut c, 0, 3);
    // Replace every member, etcd's way: remove one, add a new one. No snapshot is taken.
    for old in 0..3 {
        let leader = c.elect();
        c.reconfigure(leader, Change::Remove(c.ids[old])).unwrap();
        c.run(12);
        c.crash(old);
        add_member(&mut c);
        write(&mut c, 10 * (old as u64 + 1), 3);
    }
    // A member joining now replays the log from slot 1, through configurations whose
    // members are all gone; it must still get the log from the members it was told of.
    let late = add_member(&mut c);
    write(&mut c, 100, 3);
    let leader = c.elect();
    assert_eq!(c.replica(late).commit(), c.replica(leader).commit());
}
