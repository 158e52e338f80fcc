//! Model check of the Multi-Paxos replica, exhaustive and by random walks, with the explorer of
//! [`crate::explore`].
//!
//! Every state explored is made of real [`Replica`] values, each driven through its own
//! real [`Sequencer`] (the durability contract every driver runs), changed only by their
//! real handlers. Around them the model keeps what the world holds:
//! - per replica, its storage: what was synced (`Disk`), and the submissions handed to
//!   storage but not yet synced, oldest first. A sync step makes the oldest durable and
//!   reports it to the sequencer, which releases what waited for it;
//! - per replica, its state machine: the entries applied since it last started;
//! - the network: every message ever sent. Any may be delivered at any time, any number
//!   of times (duplication, reordering), or never (loss): a dropped message and one never
//!   delivered give the same runs, so loss needs no step of its own;
//! - ghost state no replica sees: every vote made durable, each client's writes and
//!   reads, and the first entry any replica applied at each slot.
//!
//! Steps: deliver a message; tick a replica (time is asynchronous: each replica's ticks
//! come whenever they come, and a tick step runs its ticks until one does something, at
//! most an election timeout of them); sync a replica's oldest submission; crash a
//! replica (it restarts at once from what was synced: its unsynced writes, held actions,
//! state machine and clients are lost); propose a command at a replica; issue a read at
//! a replica. Bounds keep the space finite: ballot rounds (a tick that would start a
//! higher round is refused), commands, reads, crashes, and ticks of a leader per ballot;
//! and, for the checks of a change with a client write, writes made at the leader only,
//! how often catch-up timers fire, which replica campaigns first, and campaigns in the
//! new epoch counted apart (`system::Bounds`). A bound only leaves runs out; every run
//! explored is one the replicas can take.
//!
//! A replica that asks its peers in turn for the log (having seen a ballot of an epoch
//! it does not know) picks the peer by its clock, which the fingerprint leaves out; the
//! ticks at which nothing happens, which the model skips, still move the clock, so a
//! catch-up timer fires at a time that asks any one of them (`Replica::tick_with`).
//!
//! Properties:
//! - always: at most one entry is chosen per slot. "Chosen" is the global view no
//!   replica has: a phase-2 quorum made votes for the entry at one ballot durable;
//! - always: applied prefixes agree: whatever any replica applies at a slot, in any of
//!   its lives, is what every replica applied there;
//! - always: only chosen entries are applied (chosen when applied);
//! - always: a read released by the read barrier ([`Action::ReadReady`]) sees, in its
//!   replica's state machine, every write completed before the read was issued. A write
//!   completes when the replica its client gave it to applies it (as the server answers
//!   it);
//! - sometimes (the check is not vacuous): an entry is chosen; a write completes; a read
//!   is served; a replica that crashed applies again after its restart; a replica leads
//!   at a later round.
//!
//! Reductions, none of which loses a run the properties can tell apart:
//! - commands are proposed in order (command 1 first): the replica treats commands as
//!   opaque values, so a run proposing 2 first is a relabelled run proposing 1 first;
//! - a read is issued only once some write completed: a read that must see nothing cannot
//!   be stale. A read refused at once (no leader known) changes nothing and is not taken;
//! - a state's fingerprint leaves out what cannot change the future: the replica's clock
//!   (see `Replica::hash_model_state`), submission tags (only which sync makes each
//!   durable counts: `Sequencer::hash_model_state`), copies of a message already
//!   held to be sent, and a follower's acceptor reports other than those above its
//!   commit point at the ballot it promised (the only ones it ever reads again);
//! - a message whose delivery can change nothing its recipient will ever read, now or
//!   after any step, crashes included, leaves the network (`Member::is_dead`): a reply to
//!   a ballot its recipient will never again lead or campaign at; a heartbeat's
//!   acknowledgement in a model without reads (only read confirmations count them: the
//!   model makes no promotion or transfer, and no leases); an acceptor's report, or
//!   chosen entries from a peer, all at or below the slot the recipient's commit point
//!   never again falls under (it drops such slots; with a ballot it has promised
//!   durably, the ballot tells it nothing either); and a message from a replica the
//!   recipient's roster no longer holds, once no crash and no change is left to bring it
//!   back (it is ignored). A run that delivers such a message reaches, without that
//!   delivery, a state that differs only in what nothing reads.
//!
//! Bounds too large to explore exhaustively (three campaigns) are covered by seeded
//! random walks through the same model and properties ([`random_walks`]).
//!
//! Negative controls (with the `negative-controls` feature) break the protocol on purpose
//! and must be caught: a leader that skips phase 1 (also the new epoch's, at the bounds
//! of the removal and a write), a leader that reads at its commit point, a sequencer
//! that acknowledges before the sync, and a new configuration's leader that completes
//! phase 1 without the old configuration's quorum.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use super::{Entry, RoleKind};

use crate::explore::{
    explore, explore_observed, part_hash, random_walks, Expect, PartHasher, Property, Report, Walks,
};

mod local;
mod state;
mod system;

use state::{Client, Outcome, State, DISAGREED, STALE_READ, UNCHOSEN_APPLIED};
#[cfg(feature = "negative-controls")]
use system::Controls;
use system::{Bounds, ModelChange, System};

impl System {
    fn check(&self) -> Report<System> {
        let started = Instant::now();
        let report = explore(self, &properties(), true);
        self.print("explored", &report, started);
        report
    }

    /// Random walks through bounds exhaustive search cannot cover.
    fn walk(&self, walks: Walks) -> Report<System> {
        let started = Instant::now();
        let report = random_walks(self, &properties(), walks);
        self.print(&format!("{walks:?}: walked"), &report, started);
        report
    }

    fn print(&self, what: &str, report: &Report<System>, started: Instant) {
        println!(
            "{:?}: {what} {} states in {:.1?}, depth {}; violated {:?}; reached {:?}",
            self.bounds,
            report.states,
            started.elapsed(),
            report.depth_max,
            report.violated(),
            report.reached()
        );
        for trace in &report.violations {
            println!(
                "counterexample for {:?} ({} steps):",
                trace.property,
                trace.actions.len()
            );
            for event in &trace.actions {
                println!("  {event:?}");
            }
            println!("  votes: {:?}", trace.state.votes);
            println!("  ghost: {:?}", trace.state.ghost);
        }
    }
}

/// Every (slot, entry) chosen.
fn chosen(system: &System, state: &State) -> Vec<(u64, Entry<u64>)> {
    let mut chosen: Vec<(u64, Entry<u64>)> = Vec::new();
    for vote in &state.votes {
        let known = chosen
            .iter()
            .any(|(s, e)| *s == vote.slot && *e == vote.entry);
        if !known && system::is_chosen(system, state.votes.iter(), vote.slot, &vote.entry) {
            chosen.push((vote.slot, vote.entry.clone()));
        }
    }
    chosen
}

const ONE_CHOSEN_PER_SLOT: &str = "at most one entry is chosen per slot";
const APPLIED_AGREE: &str = "applied prefixes agree";
const ONLY_CHOSEN_APPLIED: &str = "only chosen entries are applied";
const READS_SEE_WRITES: &str = "a read sees every write completed before it";
const SOME_CHOSEN: &str = "an entry is chosen";
const SOME_WRITE_COMPLETED: &str = "a write completes";
const SOME_READ_SERVED: &str = "a read is served";
const SOME_RECOVERY: &str = "a restarted replica applies again";
const SOME_LATER_LEADER: &str = "a replica leads at a later round";
const SOME_THIRD_ROUND_LEADER: &str = "a replica leads at round 3";
const SOME_NEW_EPOCH_LEADER: &str = "a replica leads in the new configuration";
const SOME_RETIRED: &str = "the old configuration retired";

fn properties() -> Vec<Property<System>> {
    let always = |name, holds| Property {
        name,
        expect: Expect::Always,
        holds,
    };
    let sometimes = |name, holds| Property {
        name,
        expect: Expect::Sometimes,
        holds,
    };
    vec![
        always(ONE_CHOSEN_PER_SLOT, |system, state| {
            let chosen = chosen(system, state);
            chosen
                .iter()
                .all(|(slot, entry)| chosen.iter().all(|(s, e)| s != slot || e == entry))
        }),
        always(APPLIED_AGREE, |_, s| s.ghost.violations & DISAGREED == 0),
        always(ONLY_CHOSEN_APPLIED, |_, s| {
            s.ghost.violations & UNCHOSEN_APPLIED == 0
        }),
        always(READS_SEE_WRITES, |_, s| {
            s.ghost.violations & STALE_READ == 0
        }),
        sometimes(SOME_CHOSEN, |system, state| {
            !chosen(system, state).is_empty()
        }),
        sometimes(SOME_WRITE_COMPLETED, |_, s| {
            s.ghost.writes.contains(&Client::Completed)
        }),
        sometimes(SOME_READ_SERVED, |_, s| {
            s.ghost.reads.iter().any(|r| r.outcome == Outcome::Served)
        }),
        sometimes(SOME_RECOVERY, |_, s| {
            s.members
                .iter()
                .any(|m| m.boot > 1 && !m.machine.is_empty())
        }),
        sometimes(SOME_LATER_LEADER, |_, s| {
            s.members
                .iter()
                .any(|m| m.replica.role() == RoleKind::Leader && m.replica.promised().round >= 2)
        }),
        sometimes(SOME_NEW_EPOCH_LEADER, |_, s| {
            s.members
                .iter()
                .any(|m| m.replica.role() == RoleKind::Leader && m.replica.promised().epoch() == 1)
        }),
        sometimes(SOME_RETIRED, |_, s| {
            s.members.iter().any(|m| {
                let membership = m.replica.membership();
                membership.epoch() == 1 && !membership.is_changing()
            })
        }),
        sometimes(SOME_THIRD_ROUND_LEADER, |_, s| {
            s.members
                .iter()
                .any(|m| m.replica.role() == RoleKind::Leader && m.replica.promised().round >= 3)
        }),
    ]
}

/// No violation, every `Sometimes` property reached, and exactly `states` states: a
/// different count means the replica's behaviour changed, which must be deliberate.
fn assert_safe(report: &Report<System>, reached: &[&str], states: usize) {
    assert_eq!(report.violated(), Vec::<&str>::new());
    let mut expected = reached.to_vec();
    let mut reached = report.reached();
    expected.sort_unstable();
    reached.sort_unstable();
    assert_eq!(reached, expected);
    assert_eq!(report.states, states, "explored state count changed");
}

const fn bounds(
    commands: usize,
    ballots: u8,
    crashes: u8,
    reads: usize,
    heartbeats: u64,
) -> Bounds {
    Bounds {
        commands,
        ballots,
        crashes,
        reads,
        heartbeats,
        changes: 0,
        change: ModelChange::QuorumSystem,
        forwards: true,
        later_campaigns: None,
        first_campaigner: None,
        catch_ups: None,
    }
}

/// `bounds` and one change of the quorum system.
const fn with_a_change(bounds: Bounds) -> Bounds {
    Bounds {
        changes: 1,
        ..bounds
    }
}

/// `bounds` and the removal of n2.
const fn with_a_removal(bounds: Bounds) -> Bounds {
    Bounds {
        changes: 1,
        change: ModelChange::RemoveN2,
        ..bounds
    }
}

/// One leader, a write and a read through the read barrier.
#[test]
fn one_round_a_write_and_a_read() {
    let report = System::new(bounds(1, 1, 0, 1, 2)).check();
    let reached = [SOME_CHOSEN, SOME_WRITE_COMPLETED, SOME_READ_SERVED];
    assert_safe(&report, &reached, 54_139);
}

/// One leader, a write, and one replica (any) that crashes and restarts from its disk.
#[test]
fn one_round_a_crash() {
    let report = System::new(bounds(1, 1, 1, 0, 1)).check();
    let reached = [SOME_CHOSEN, SOME_WRITE_COMPLETED, SOME_RECOVERY];
    assert_safe(&report, &reached, 16_483);
}

/// Two campaigns, any replicas, duelling or one after the other, and a write.
#[test]
fn two_rounds_a_write() {
    let report = System::new(bounds(1, 2, 0, 0, 1)).check();
    let reached = [SOME_CHOSEN, SOME_WRITE_COMPLETED, SOME_LATER_LEADER];
    assert_safe(&report, &reached, 57_493);
}

/// Raft's vote restriction ([`super::ElectionMode::Raft`]): two campaigns, any replicas,
/// and a write, as `two_rounds_a_write`.
#[test]
fn raft_two_rounds_a_write() {
    let report = System::new(bounds(1, 2, 0, 0, 1)).raft().check();
    let reached = [SOME_CHOSEN, SOME_WRITE_COMPLETED, SOME_LATER_LEADER];
    assert_safe(&report, &reached, RAFT_TWO_ROUNDS_STATES);
}

const RAFT_TWO_ROUNDS_STATES: usize = 45_301;

/// Raft's vote restriction at three rounds, with a crash, a read and a change of the
/// quorum system among the steps: random walks.
#[test]
fn raft_three_rounds_and_a_change_random_walks() {
    let bounds = with_a_change(bounds(2, 3, 1, 1, 2));
    let walks = Walks {
        walks: WALKS / 4,
        depth: WALK_DEPTH,
        seed: 1,
    };
    let report = System::new(bounds).raft().walk(walks);
    let mut reached = REACHED_IN_THREE_ROUNDS.to_vec();
    reached.extend([SOME_NEW_EPOCH_LEADER, SOME_RETIRED]);
    assert_safe_walked(&report, &reached);
}

/// What every walk at three rounds reaches.
const REACHED_IN_THREE_ROUNDS: [&str; 6] = [
    SOME_CHOSEN,
    SOME_WRITE_COMPLETED,
    SOME_READ_SERVED,
    SOME_RECOVERY,
    SOME_LATER_LEADER,
    SOME_THIRD_ROUND_LEADER,
];

/// Three rounds, two commands, a crash and a read: beyond exhaustive reach (see
/// docs/PROTOCOL.md), so random walks. `MODEL_WALKS=N` takes N walks instead.
#[test]
fn three_rounds_random_walks() {
    let report = walk_three_rounds(bounds(2, 3, 1, 1, 2));
    assert_safe_walked(&report, &REACHED_IN_THREE_ROUNDS);
}

/// The same walks with a change of the quorum system among the other steps.
#[test]
fn three_rounds_and_a_change_random_walks() {
    let report = walk_three_rounds(with_a_change(bounds(2, 3, 1, 1, 2)));
    let mut reached = REACHED_IN_THREE_ROUNDS.to_vec();
    reached.extend([SOME_NEW_EPOCH_LEADER, SOME_RETIRED]);
    assert_safe_walked(&report, &reached);
}

/// The same walks with n2 removed among the other steps: roster positions move.
#[test]
fn three_rounds_and_a_removal_random_walks() {
    let report = walk_three_rounds(with_a_removal(bounds(2, 3, 1, 1, 2)));
    let mut reached = REACHED_IN_THREE_ROUNDS.to_vec();
    reached.extend([SOME_NEW_EPOCH_LEADER, SOME_RETIRED]);
    assert_safe_walked(&report, &reached);
}

fn walk_three_rounds(bounds: Bounds) -> Report<System> {
    let walks = std::env::var("MODEL_WALKS").map_or(WALKS, |n| n.parse().expect("a number"));
    System::new(bounds).walk(Walks {
        walks,
        depth: WALK_DEPTH,
        seed: 1,
    })
}

const WALKS: usize = 20_000;
const WALK_DEPTH: usize = 300;

fn assert_safe_walked(report: &Report<System>, reached: &[&str]) {
    assert_safe(report, reached, report.states);
}

/// What an exhaustive search of a change with no client write reaches.
const REACHED_BY_A_CHANGE: [&str; 5] = [
    SOME_CHOSEN,
    SOME_LATER_LEADER,
    SOME_THIRD_ROUND_LEADER,
    SOME_NEW_EPOCH_LEADER,
    SOME_RETIRED,
];

/// A change of the quorum system, from majority to `flexible:1,3`, under which one
/// promise is a phase-1 quorum: a leader of the new configuration that asked only it
/// would miss what the old one chose. Every interleaving of the change's own entries
/// (the change, then `Retire` in the new configuration) and campaigns: one campaign and
/// the change's own ones, any replica leading, messages lost, duplicated and reordered.
/// 3.4 million states, a few minutes in release (see docs/PROTOCOL.md §20).
#[test]
fn a_change_of_the_quorum_system() {
    let report = System::new(with_a_change(bounds(0, 1, 0, 0, 1))).check();
    assert_safe(&report, &REACHED_BY_A_CHANGE, 3_431_128);
}

/// The bounds of [`a_change_of_the_quorum_system_and_a_write`].
const A_CHANGE_AND_A_WRITE: Bounds =
    with_writes_at_the_leader(with_a_change(bounds(1, 1, 0, 0, 1)));

/// The switch from majority to `flexible:1,3` and a client write, every interleaving, as
/// [`a_removal_and_a_write`].
#[test]
fn a_change_of_the_quorum_system_and_a_write() {
    let report = System::new(A_CHANGE_AND_A_WRITE).check();
    assert_safe(&report, &REACHED_BY_A_CHANGE_AND_A_WRITE, 338_419);
}

/// The removal of n2 from three voters (majority of three to majority of two, roster
/// positions moving), every interleaving of the change's own entries and campaigns, no
/// client write: 1.1 million states, about a minute in release.
#[test]
fn a_removal_from_three_voters() {
    let report = System::new(with_a_removal(bounds(0, 1, 0, 0, 1))).check();
    assert_safe(&report, &REACHED_BY_A_CHANGE, 1_101_219);
}

/// `bounds` with client writes made at the leader only (a follower's forward is covered by
/// the checks without a change) and no catch-up timer: a replica learns what is chosen
/// from the leader and the acceptors' reports only. (Catch-ups multiply the space a
/// hundredfold: with one catch-up timer in all, the removal and a write pass 6 million
/// states unfinished; the walks keep them.)
const fn with_writes_at_the_leader(bounds: Bounds) -> Bounds {
    Bounds {
        forwards: false,
        catch_ups: Some(0),
        ..bounds
    }
}

/// What an exhaustive search of a change and a client write reaches.
const REACHED_BY_A_CHANGE_AND_A_WRITE: [&str; 6] = [
    SOME_CHOSEN,
    SOME_WRITE_COMPLETED,
    SOME_LATER_LEADER,
    SOME_THIRD_ROUND_LEADER,
    SOME_NEW_EPOCH_LEADER,
    SOME_RETIRED,
];

/// The bounds of [`a_removal_and_a_write`].
const A_REMOVAL_AND_A_WRITE: Bounds =
    with_writes_at_the_leader(with_a_removal(bounds(1, 1, 0, 0, 1)));

/// The removal of n2 from three voters and a client write, every interleaving: the leader
/// of one campaign (any replica) takes the write and the change in either order, the
/// write lands before, between or after the change's own entries (the change, then
/// `Retire` in the new configuration), or is stranded by the leader's step-down and
/// proposed again in the new epoch; messages lost, duplicated and reordered.
#[test]
fn a_removal_and_a_write() {
    let report = System::new(A_REMOVAL_AND_A_WRITE).check();
    assert_safe(&report, &REACHED_BY_A_CHANGE_AND_A_WRITE, 181_376);
}

/// The bounds of [`a_change_of_the_quorum_system_a_write_and_a_later_campaign`]: those of
/// the switch and a write, n1 campaigning first, and one campaign more, by any replica,
/// in the new epoch.
const A_CHANGE_A_WRITE_AND_A_LATER_CAMPAIGN: Bounds = Bounds {
    later_campaigns: Some(1),
    first_campaigner: Some(0),
    ..A_CHANGE_AND_A_WRITE
};

/// The switch to `flexible:1,3` and a write, with a second leader in the new epoch: a
/// replica that learned the change may lead it on a phase 1 over both configurations.
/// 4.2 million states, three minutes in release (see docs/PROTOCOL.md §20).
#[test]
#[ignore = "three minutes in release; run by hand"]
fn a_change_of_the_quorum_system_a_write_and_a_later_campaign() {
    let report = System::new(A_CHANGE_A_WRITE_AND_A_LATER_CAMPAIGN).check();
    assert_safe(&report, &REACHED_BY_A_CHANGE_AND_A_WRITE, 4_248_162);
}

/// What the reductions of `Member::is_dead` keep of a state: everything but the
/// network, a leader's record of heartbeat acknowledgements and a follower's reports.
fn projection(state: &State) -> u64 {
    let mut h = PartHasher::default();
    for member in &state.members {
        let r = &member.replica;
        (
            r.role() as u8,
            r.promised(),
            r.commit(),
            r.applied(),
            r.leader(),
        )
            .hash(&mut h);
        (1..=r.commit() + 4).for_each(|slot| r.entry(slot).hash(&mut h));
        r.membership().hash(&mut h);
        (&member.machine, &member.disk, member.boot).hash(&mut h);
        member
            .unsynced
            .iter()
            .for_each(|(_, w)| w.len().hash(&mut h));
    }
    let mut votes: Vec<u64> = state.votes.iter().map(part_hash).collect();
    votes.sort_unstable();
    let ghost = &state.ghost;
    (votes, &ghost.writes, &ghost.reads, &ghost.first_applied).hash(&mut h);
    (
        ghost.crashes,
        ghost.ballots,
        ghost.changes,
        ghost.violations,
    )
        .hash(&mut h);
    h.finish()
}

/// The reductions of `Member::is_dead` beyond the synced promise lose no state: the model
/// without them reaches the same states, up to what those rules say nothing reads.
#[test]
fn the_reductions_lose_no_state() {
    for bounds in [
        bounds(1, 1, 1, 0, 1),
        with_writes_at_the_leader(with_a_removal(bounds(1, 1, 0, 0, 1))),
    ] {
        let mut seen = [HashSet::new(), HashSet::new()];
        let mut states = [0; 2];
        for ((system, seen), states) in [System::new(bounds), System::new(bounds).unreduced()]
            .iter()
            .zip(&mut seen)
            .zip(&mut states)
        {
            let report = explore_observed(system, &properties(), true, &mut |state| {
                seen.insert(projection(state));
            });
            assert!(report.violations.is_empty());
            *states = report.states;
        }
        println!(
            "{bounds:?}: {states:?} states, {} projections",
            seen[0].len()
        );
        assert!(states[0] < states[1], "the rules merged states");
        assert_eq!(seen[0].len(), seen[1].len(), "{bounds:?}");
        assert!(seen[0] == seen[1], "{bounds:?}");
    }
}

/// Larger bounds, too slow for every run: `MODEL_BOUNDS="commands,ballots,crashes,reads,
/// heartbeats[,flag…];…" cargo test -p synod-paxos --release --lib larger_bounds -- --ignored
/// --nocapture` explores each and prints its count and time (see docs/PROTOCOL.md). Flags:
/// `q` a change of the quorum system, `r` the removal of n2, `l` writes at the leader
/// only, `eN` N campaigns in the new epoch counted apart, `fN` the first campaign is nN's, `cN` N
/// catch-ups in all.
#[test]
#[ignore = "minutes to hours; run by hand with MODEL_BOUNDS"]
fn larger_bounds() {
    let spec = std::env::var("MODEL_BOUNDS").unwrap_or_else(|_| "2,1,0,0,1".into());
    for config in spec.split(';') {
        let fields: Vec<&str> = config.split(',').map(str::trim).collect();
        let (numbers, flags) = fields.split_at(5.min(fields.len()));
        let numbers: Vec<u64> = numbers
            .iter()
            .map(|n| n.parse().expect("a number"))
            .collect();
        let [commands, ballots, crashes, reads, heartbeats] = numbers[..] else {
            panic!("MODEL_BOUNDS wants commands,ballots,crashes,reads,heartbeats[,flag…]");
        };
        let small = |n: &str| n.parse::<u8>().expect("a small bound");
        let many = |n: u64| usize::try_from(n).expect("a small bound");
        let mut bounds = bounds(
            many(commands),
            u8::try_from(ballots).expect("a small bound"),
            u8::try_from(crashes).expect("a small bound"),
            many(reads),
            heartbeats,
        );
        for flag in flags {
            bounds = match flag.split_at(1) {
                ("q", "") => with_a_change(bounds),
                ("r", "") => with_a_removal(bounds),
                ("l", "") => Bounds {
                    forwards: false,
                    ..bounds
                },
                ("e", n) => Bounds {
                    later_campaigns: Some(small(n)),
                    ..bounds
                },
                ("c", n) => Bounds {
                    catch_ups: Some(small(n)),
                    ..bounds
                },
                ("f", n) => Bounds {
                    first_campaigner: Some(usize::from(small(n)) - 1),
                    ..bounds
                },
                _ => panic!("unknown flag {flag}"),
            };
        }
        let report = System::new(bounds).check();
        assert_eq!(report.violated(), Vec::<&str>::new());
    }
}

/// Each broken variant is caught, with a counterexample.
#[cfg(feature = "negative-controls")]
mod negative_controls {
    use super::*;

    fn violated(bounds: Bounds, controls: Controls) -> Vec<&'static str> {
        let report = System::new(bounds).with(controls).check();
        assert!(!report.violations.is_empty(), "{controls:?} not caught");
        report.violated()
    }

    #[test]
    fn a_leader_that_skips_phase_1() {
        let controls = Controls {
            skip_phase1: true,
            ..Controls::default()
        };
        let violated = violated(bounds(2, 2, 0, 0, 1), controls);
        assert!(
            violated.contains(&ONE_CHOSEN_PER_SLOT) || violated.contains(&APPLIED_AGREE),
            "{violated:?}"
        );
    }

    /// Random walks at three rounds catch the broken variants too: finding nothing there
    /// means something.
    #[test]
    fn random_walks_catch_them_at_three_rounds() {
        for controls in [
            Controls {
                skip_phase1: true,
                ..Controls::default()
            },
            Controls {
                ack_before_sync: true,
                ..Controls::default()
            },
            Controls {
                read_at_commit_point: true,
                ..Controls::default()
            },
        ] {
            let walks = Walks {
                walks: WALKS,
                depth: WALK_DEPTH,
                seed: 1,
            };
            let report = System::new(bounds(2, 3, 1, 1, 2))
                .with(controls)
                .walk(walks);
            assert!(!report.violations.is_empty(), "{controls:?} not caught");
        }
    }

    /// A leader of the new configuration that completes phase 1 with its quorum alone,
    /// without the old configuration's, misses what the old one chose.
    #[test]
    fn a_new_configuration_used_without_the_old_ones_phase_1() {
        let controls = Controls {
            phase1_in_current_only: true,
            ..Controls::default()
        };
        let walks = Walks {
            walks: WALKS,
            depth: WALK_DEPTH,
            seed: 1,
        };
        let report = System::new(with_a_change(bounds(2, 3, 0, 0, 2)))
            .with(controls)
            .walk(walks);
        let violated = report.violated();
        assert!(
            violated.contains(&ONE_CHOSEN_PER_SLOT) || violated.contains(&APPLIED_AGREE),
            "{violated:?}"
        );
    }

    /// Raft's election without its vote restriction: promises report nothing, so a
    /// candidate that lacks a chosen entry leads without it and gives its slot to the
    /// next command (two are needed: with one, the new leader has nothing to propose).
    #[test]
    fn a_raft_election_without_the_vote_restriction() {
        let controls = Controls {
            no_vote_restriction: true,
            ..Controls::default()
        };
        let walks = Walks {
            walks: WALKS,
            depth: WALK_DEPTH,
            seed: 1,
        };
        let report = System::new(bounds(2, 2, 0, 0, 1))
            .raft()
            .with(controls)
            .walk(walks);
        assert!(!report.violations.is_empty(), "{controls:?} not caught");
        let violated = report.violated();
        assert!(
            violated.contains(&ONE_CHOSEN_PER_SLOT) || violated.contains(&APPLIED_AGREE),
            "{violated:?}"
        );
    }

    /// The leader of the new epoch skips phase 1: it leads from its commit point, and
    /// the write its old ballot had made chosen just after the change is overwritten
    /// there by the retirement. Caught at the bounds the protocol passes.
    #[test]
    fn a_new_epoch_leader_that_skips_phase_1() {
        let controls = Controls {
            skip_phase1: true,
            ..Controls::default()
        };
        let violated = violated(A_REMOVAL_AND_A_WRITE, controls);
        assert!(
            violated.contains(&ONE_CHOSEN_PER_SLOT) || violated.contains(&APPLIED_AGREE),
            "{violated:?}"
        );
    }

    /// The same variant, exhaustively, at the bounds the protocol passes in
    /// [`a_change_of_the_quorum_system_a_write_and_a_later_campaign`].
    #[test]
    fn a_new_configuration_used_without_the_old_ones_phase_1_exhaustively() {
        let controls = Controls {
            phase1_in_current_only: true,
            ..Controls::default()
        };
        let violated = violated(A_CHANGE_A_WRITE_AND_A_LATER_CAMPAIGN, controls);
        assert!(
            violated.contains(&ONE_CHOSEN_PER_SLOT) || violated.contains(&APPLIED_AGREE),
            "{violated:?}"
        );
    }

    #[test]
    fn a_leader_that_reads_at_its_commit_point() {
        let controls = Controls {
            read_at_commit_point: true,
            ..Controls::default()
        };
        assert_eq!(
            violated(bounds(1, 1, 0, 1, 2), controls),
            [READS_SEE_WRITES]
        );
    }

    #[test]
    fn a_sequencer_that_acknowledges_before_the_sync() {
        let controls = Controls {
            ack_before_sync: true,
            ..Controls::default()
        };
        let violated = violated(bounds(1, 2, 1, 0, 1), controls);
        assert!(
            violated.contains(&ONE_CHOSEN_PER_SLOT)
                || violated.contains(&APPLIED_AGREE)
                || violated.contains(&ONLY_CHOSEN_APPLIED),
            "{violated:?}"
        );
    }
}
