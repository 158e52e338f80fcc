//! Regression tests for the findings of a review of the replica: each reproduces the event
//! sequence that once broke a rule, and checks the rule now holds.

#![allow(clippy::cast_possible_truncation)]
use std::collections::VecDeque;
use std::sync::Arc;

use rand_core::SeedableRng;
use rand_pcg::Pcg32;

use super::*;
use crate::{Ballot, NodeId, QuorumSpec};

type R = Replica<u64, Pcg32>;
const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);

fn members() -> Arc<Members> {
    Arc::new(Members::new(vec![N1, N2, N3], QuorumSpec::Majority).unwrap())
}
fn mk(id: NodeId, options: Options) -> R {
    Replica::new(id, members(), options, Pcg32::seed_from_u64(id.0)).unwrap()
}
fn b(round: u64, node: NodeId) -> Ballot {
    Ballot::new(round, node)
}
fn le(ballot: Ballot, c: u64) -> LogEntry<u64> {
    LogEntry {
        ballot,
        entry: Entry::Command(c),
    }
}
fn sends(actions: &[Action<u64>]) -> Vec<(NodeId, Message<u64>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, message } => Some((*to, message.clone())),
            _ => None,
        })
        .collect()
}
/// Ticks until the replica sends prepares; returns its ballot.
fn campaign(r: &mut R) -> Ballot {
    for _ in 0..1000 {
        let a = r.tick();
        if let Some((_, Message::Prepare { ballot, .. })) = sends(&a).first() {
            return *ballot;
        }
    }
    panic!("never campaigned")
}
fn promise(ballot: Ballot, votes: Vec<SlotVote<u64>>) -> Message<u64> {
    Message::Promise {
        ballot,
        from: 1,
        votes,
        next: None,
    }
}

/// Finding 1: a catch-up reply (Chosen) requested while a follower arrives after the
/// replica has been elected: the leader's commit point jumps past its window.
#[test]
fn a_late_catch_up_reply_leaves_a_new_leaders_window_alone() {
    let mut n1 = mk(N1, Options::default());
    let b0 = b(1, N2);
    // N1 follows N2, learns commit 1 without holding slot 1, asks N2 for it.
    n1.step(
        N2,
        Message::Heartbeat {
            ballot: b0,
            commit: 1,
            seq: 1,
        },
    );
    let mut asked = false;
    for _ in 0..3 {
        asked |= sends(&n1.tick())
            .iter()
            .any(|(to, m)| *to == N2 && matches!(m, Message::CatchUp { .. }));
    }
    assert!(asked, "catch-up sent to N2");
    // N2 goes quiet; N1 campaigns and wins with N3, which reports slot 1.
    let mine = campaign(&mut n1);
    n1.step(N1, promise(mine, vec![]));
    let v = SlotVote {
        slot: 1,
        vote: le(b0, 7),
    };
    n1.step(N3, promise(mine, vec![v]));
    assert_eq!(n1.role(), RoleKind::Leader);
    // N2's (delayed) answer to the old catch-up arrives.
    let a = n1.step(
        N2,
        Message::Chosen {
            ballot: b0,
            first: 1,
            entries: vec![le(b0, 7)],
            commit: 1,
        },
    );
    assert_eq!(
        a,
        vec![],
        "a leader learns what is chosen from its own quorum"
    );
    assert_eq!((n1.role(), n1.commit()), (RoleKind::Leader, 0));
}

/// Finding 1b: same with a snapshot chunk.
#[test]
fn a_late_snapshot_leaves_a_new_leaders_window_alone() {
    let mut n1 = mk(N1, Options::default());
    let b0 = b(1, N2);
    n1.step(
        N2,
        Message::Heartbeat {
            ballot: b0,
            commit: 1,
            seq: 1,
        },
    );
    let mine = campaign(&mut n1);
    n1.step(N1, promise(mine, vec![]));
    let v = SlotVote {
        slot: 1,
        vote: le(b0, 7),
    };
    n1.step(N3, promise(mine, vec![v]));
    assert_eq!(n1.role(), RoleKind::Leader);
    n1.step(
        N2,
        Message::Snapshot {
            ballot: b0,
            index: 1,
            membership: n1.membership().clone(),
            offset: 0,
            total: 8,
            data: vec![7, 0, 0, 0, 0, 0, 0, 0],
        },
    );
}

/// Finding 3: a follower catching up by `Chosen` persists entries at a ballot above its
/// durable promise; if it crashes after that write and before the Commit hint (which the
/// docs say may be lost), the restarted replica violates its own invariant.
#[test]
fn a_lost_commit_hint_after_catch_up_restarts_consistently() {
    let mut f = mk(N2, Options::default());
    let old = b(1, N1);
    let new = b(2, N3);
    let mut writes = Vec::new();
    let keep = |a: Vec<Action<u64>>, w: &mut Vec<Write<u64>>| {
        for x in a {
            if let Action::Persist(p) = x {
                w.push(p);
            }
        }
    };
    keep(
        f.step(
            N1,
            Message::Prepare {
                ballot: old,
                from: 1,
                log: Vec::new(),
            },
        ),
        &mut writes,
    );
    // The new leader's heartbeat raises the promise in memory only; its accepts are lost.
    keep(
        f.step(
            N3,
            Message::Heartbeat {
                ballot: new,
                commit: 1,
                seq: 1,
            },
        ),
        &mut writes,
    );
    keep(
        f.step(
            N3,
            Message::Chosen {
                ballot: new,
                first: 1,
                entries: vec![le(new, 5)],
                commit: 1,
            },
        ),
        &mut writes,
    );
    // Crash after the Chosen write synced, before the Commit write did.
    let mut d = Durable::default();
    for w in writes {
        match w {
            Write::Promise(p) => d.promised = d.promised.max(p),
            Write::Chosen { first, entries } => d.votes.extend((first..).zip(entries)),
            Write::Commit(_) => {} // lost
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(d.promised, old);
    let r = restart_and_check(N2, d);
    assert_eq!(
        r.promised(),
        new,
        "the durable vote's ballot is the floor of the promise"
    );
}

/// Finding 2: the promise raised by an Accept is never written as `Write::Promise`; a
/// storage that keeps `promised` from `Write::Promise` only (as `Durable` documents it)
/// restarts with a vote above its promise.
#[test]
fn a_promise_raised_by_an_accept_survives_a_restart() {
    let mut f = mk(N1, Options::default());
    let b2 = b(2, N2);
    let a = f.step(
        N2,
        Message::Accept {
            ballot: b2,
            first: 1,
            entries: vec![Entry::Command(1)].into(),
            commit: 0,
        },
    );
    assert!(!a
        .iter()
        .any(|x| matches!(x, Action::Persist(Write::Promise(_)))));
    let mut d = Durable::default();
    for x in a {
        if let Action::Persist(Write::Votes {
            ballot,
            first,
            entries,
        }) = x
        {
            for (s, e) in (first..).zip(entries.iter()) {
                d.votes.push((
                    s,
                    LogEntry {
                        ballot,
                        entry: e.clone(),
                    },
                ));
            }
        }
    }
    let r = restart_and_check(N1, d);
    assert_eq!(r.promised(), b2, "a durable vote implies its promise");
}

/// Restarts a replica from `durable` and runs one tick, so the invariants (checked after
/// every event in tests) see the recovered state.
fn restart_and_check(id: NodeId, durable: Durable<u64>) -> R {
    let rng = Pcg32::seed_from_u64(9);
    let mut r = Replica::restart(id, members(), Options::default(), rng, durable).unwrap();
    r.tick();
    r
}

/// Finding 5: a leader that steps down drops its unslotted commands even when the new
/// leader is known (the forwarding branch in step_down is dead: every caller passes None).
#[test]
fn a_leader_that_steps_down_forwards_its_unslotted_commands() {
    let o = Options {
        pipeline_depth: 1,
        ..Options::default()
    };
    let mut n1 = mk(N1, o);
    let mine = campaign(&mut n1);
    n1.step(N1, promise(mine, vec![]));
    n1.step(N3, promise(mine, vec![]));
    assert_eq!(n1.role(), RoleKind::Leader);
    n1.propose(1).unwrap();
    n1.propose(2).unwrap(); // pipeline full: pending
    let higher = b(5, N2);
    let a = n1.step(
        N2,
        Message::Heartbeat {
            ballot: higher,
            commit: 0,
            seq: 1,
        },
    );
    assert_eq!(n1.leader(), Some(N2));
    let forwarded = sends(&a)
        .iter()
        .any(|(_, m)| matches!(m, Message::Forward { .. }));
    assert!(forwarded, "command 2 silently dropped; actions: {a:?}");
}

/// Finding 6: a promise reporting a vote at a huge slot makes the new leader allocate
/// a window for every slot up to it.
#[test]
fn a_promise_with_a_far_slot_sends_the_candidate_to_catch_up() {
    let mut n1 = mk(N1, Options::default());
    let mine = campaign(&mut n1);
    n1.step(N1, promise(mine, vec![]));
    let v = SlotVote {
        slot: u64::MAX,
        vote: le(b(0, N2), 1),
    };
    let a = n1.step(N2, promise(mine, vec![v]));
    assert_ne!(n1.role(), RoleKind::Leader);
    let asks = sends(&a)
        .iter()
        .any(|(to, m)| *to == N2 && matches!(m, Message::CatchUp { .. }));
    assert!(asks, "{a:?}");
}

/// Finding 4: with drift_ticks = 0 (accepted by validate), tick quantization lets an
/// acceptor's grant end up to one tick before the leader's lease does.
#[test]
fn a_lease_with_zero_drift_never_serves_a_stale_read() {
    stale_lease(0);
}
#[test]
fn a_lease_with_drift_one_never_serves_a_stale_read() {
    stale_lease(1);
}
fn stale_lease(drift: u32) {
    let o = Options {
        lease: Some(Lease {
            duration_ticks: 8,
            drift_ticks: drift,
        }),
        ..Options::default()
    };
    assert!(o.validate().is_ok());
    let mut r = [mk(N1, o.clone()), mk(N2, o.clone()), mk(N3, o)];
    // Let the restart grants run out.
    for _ in 0..9 {
        for x in r.iter_mut() {
            x.tick();
        }
    }
    let mut q: VecDeque<(NodeId, NodeId, Message<u64>)> = VecDeque::new();
    let push = |q: &mut VecDeque<_>, from: NodeId, a: Vec<Action<u64>>| {
        for (to, m) in sends(&a) {
            q.push_back((from, to, m));
        }
    };
    // Elect N1 with N2 (N3 hears nothing from N1 from now on).
    let mine = campaign(&mut r[0]);
    for to in [N1, N2] {
        let a = r[to.0 as usize - 1].step(
            N1,
            Message::Prepare {
                ballot: mine,
                from: 1,
                log: Vec::new(),
            },
        );
        push(&mut q, to, a);
    }
    let run = |r: &mut [R; 3],
               q: &mut VecDeque<(NodeId, NodeId, Message<u64>)>,
               allow: &dyn Fn(NodeId, NodeId) -> bool| {
        while let Some((from, to, m)) = q.pop_front() {
            if !allow(from, to) {
                continue;
            }
            let a = r[to.0 as usize - 1].step(from, m);
            for (t, m2) in sends(&a) {
                q.push_back((to, t, m2));
            }
        }
    };
    let no_n3 = |f: NodeId, t: NodeId| f != N3 && t != N3;
    run(&mut r, &mut q, &no_n3);
    assert_eq!(r[0].role(), RoleKind::Leader);
    // N3 campaigns (it heard no leader); its prepare to N2 is delayed in the network.
    let rival = campaign(&mut r[2]);
    assert!(rival > mine);
    // Leader tick t: heartbeat; N2 receives it just before its own tick.
    let a = r[0].tick();
    push(&mut q, N1, a);
    run(&mut r, &mut q, &no_n3);
    // From here N1 -> N2 is cut (N1's later heartbeats never arrive). Clocks run at the
    // same rate; N2's ticks fall just before N1's.
    for _ in 0..12 {
        r[1].tick(); // N2
        if r[1]
            .step(
                N3,
                Message::Prepare {
                    ballot: rival,
                    from: 1,
                    log: Vec::new(),
                },
            )
            .iter()
            .any(|a| {
                matches!(
                    a,
                    Action::Send {
                        message: Message::Promise { .. },
                        ..
                    }
                )
            })
        {
            break;
        }
        r[0].tick(); // N1, its output dropped
    }
    assert_eq!(r[1].promised(), rival, "N2 promised the rival");
    // N3 wins, and writes 99 with N2.
    let a = r[2].step(
        N3,
        Message::Prepare {
            ballot: rival,
            from: 1,
            log: Vec::new(),
        },
    );
    push(&mut q, N3, a);
    q.push_back((
        N2,
        N3,
        Message::Promise {
            ballot: rival,
            from: 1,
            votes: vec![],
            next: None,
        },
    ));
    let only_23 = |f: NodeId, t: NodeId| f != N1 && t != N1;
    run(&mut r, &mut q, &only_23);
    assert_eq!(r[2].role(), RoleKind::Leader);
    let a = r[2].propose(99).unwrap();
    push(&mut q, N3, a);
    run(&mut r, &mut q, &only_23);
    let n3_applied = r[2].applied();
    assert!(n3_applied >= 1, "the write completed at N3");
    // The same instant, a read at the old leader.
    let a = r[0].read(42);
    let served = a.iter().any(|x| matches!(x, Action::ReadReady { id: 42 }));
    assert!(
        !served,
        "stale lease read: N1 applied {} while N3 committed the write at {}",
        r[0].applied(),
        n3_applied
    );
}

/// Finding 7: tunables that validate() accepts overflow in the hot path.
#[test]
fn an_unbounded_gap_max_slots_still_replicates() {
    let o = Options {
        gap_max_slots: u64::MAX,
        ..Options::default()
    };
    assert!(o.validate().is_ok());
    let mut c = cluster::Cluster::new(3, QuorumSpec::Majority, o);
    let l = c.elect();
    for k in 0..3 {
        c.propose(l, k);
        c.run(2);
    }
    assert_eq!(c.state[l], vec![0, 1, 2]);
}

#[test]
fn an_unbounded_batch_max_commands_still_replicates() {
    let o = Options {
        batch_max_commands: usize::MAX,
        ..Options::default()
    };
    assert!(o.validate().is_ok());
    let mut c = cluster::Cluster::new(3, QuorumSpec::Majority, o);
    let l = c.elect();
    c.propose(l, 1);
    c.run(5);
    assert_eq!(c.state[l], vec![1]);
}

#[test]
fn huge_heartbeat_ticks_are_refused_not_overflowed() {
    let o = Options {
        heartbeat_ticks: u32::MAX,
        election_ticks: u32::MAX,
        ..Options::default()
    };
    assert!(o.validate().is_err());
}

/// Snapshot chunks reordered and duplicated by the network still assemble.
#[test]
fn snapshot_chunks_in_any_order_assemble() {
    let mut f = mk(N2, Options::default());
    let leader = b(1, N1);
    f.step(
        N1,
        Message::Heartbeat {
            ballot: leader,
            commit: 3,
            seq: 1,
        },
    );
    let membership = f.membership().clone();
    let chunk = |offset: u64, data: &[u8]| Message::Snapshot {
        ballot: leader,
        index: 3,
        membership: membership.clone(),
        offset,
        total: 6,
        data: data.to_vec(),
    };
    assert!(f.step(N1, chunk(4, &[5, 6])).is_empty());
    assert!(f.step(N1, chunk(4, &[5, 6])).is_empty());
    assert!(f.step(N1, chunk(0, &[1, 2])).is_empty());
    let a = f.step(N1, chunk(2, &[3, 4]));
    let installed = a.iter().any(|x| matches!(x, Action::InstallSnapshot { index: 3, data } if data.to_vec().unwrap() == [1, 2, 3, 4, 5, 6]));
    assert!(installed, "{a:?}");
    assert_eq!((f.applied(), f.commit()), (3, 3));
}
