//! The system the model check explores: its bounds, its steps and their fingerprints.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

use super::super::replica::Timer;
use super::super::{ElectionMode, Entry, Members, Options, Replica, RoleKind, Sequencer, Slot};
use super::local::Local;
use super::state::{Client, Disk, Event, Fate, Ghost, Member, ModelRng, Sent, State, Vote};
use crate::explore::{part_hash, Model};
use crate::{AcceptorSet, NodeId, QuorumSpec, QuorumSystem};

/// How far the search goes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    /// Commands the clients write (1, 2, …).
    pub(super) commands: usize,
    /// Campaigns (ballots started on an election timeout), in all, or in epoch 0 only if
    /// `later_campaigns` is set. (A leader that applies a change campaigns in the new
    /// epoch at once: that campaign is the change's own, never counted.)
    pub(super) ballots: u8,
    /// If set, campaigns at a ballot of a later epoch are counted apart, up to this many.
    pub(super) later_campaigns: Option<u8>,
    /// If set, the first campaign is this replica's.
    pub(super) first_campaigner: Option<usize>,
    /// If set, how many times, in all, a replica's catch-up timer may fire.
    pub(super) catch_ups: Option<u8>,
    pub(super) crashes: u8,
    pub(super) reads: usize,
    /// Heartbeats a leader may send at one ballot (on a tick, when a read needs one, or
    /// when its commit point moved without an accept to carry it).
    pub(super) heartbeats: u64,
    /// Membership changes, each the one `change` names.
    pub(super) changes: u8,
    pub(super) change: ModelChange,
    /// Whether a client may write at a follower, which forwards the write to the leader
    /// it knows of (otherwise writes are made at the leader only).
    pub(super) forwards: bool,
}

/// The membership change a model's leader may make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ModelChange {
    /// Majority to `flexible:1,3` over the same replicas: one promise is then a phase-1
    /// quorum, so a phase 1 in the new configuration alone misses what the old one chose.
    QuorumSystem,
    /// Remove n2: the roster positions of n2 and n3 swap, so anything counted by
    /// position across the change is counted wrong.
    RemoveN2,
}

/// The broken variants (each needs the `negative-controls` feature).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(not(feature = "negative-controls"), allow(dead_code))]
pub(super) struct Controls {
    pub(super) skip_phase1: bool,
    pub(super) read_at_commit_point: bool,
    pub(super) ack_before_sync: bool,
    pub(super) phase1_in_current_only: bool,
    pub(super) no_vote_restriction: bool,
}

/// Transitions of one member known to change nothing, by a hash of the member's
/// fingerprint and the event: the hashes of the messages such a transition sends (all of
/// which were in the network), or `None` if it is refused. Lossy (one entry per slot), so
/// that it stays small: a miss only means working the transition out again.
type NoOps = Vec<(u64, Option<[u64; NO_OP_SENDS]>)>;

const NO_OP_SENDS: usize = 4;
const NO_OP_SLOTS: usize = 1 << 20;

pub(super) struct System {
    pub(super) ids: Vec<NodeId>,
    pub(super) members: Arc<Members>,
    /// The configuration a change makes (see [`ModelChange`]).
    pub(super) changed: Arc<Members>,
    options: Options,
    pub(super) bounds: Bounds,
    controls: Controls,
    /// Whether messages are dead by the rules beyond the synced promise too
    /// (`Member::is_dead`); off only to cross-check them.
    reduced: bool,
    no_ops: RefCell<NoOps>,
}

/// What one member's step came to.
enum Stepped {
    Refused,
    /// Nothing changed; the part hashes of what it sent, if it may be remembered.
    Unchanged(Option<[u64; NO_OP_SENDS]>),
    Seen,
    New(State),
}

impl System {
    pub(super) fn new(bounds: Bounds) -> System {
        let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let members = Members::new(ids.clone(), QuorumSpec::Majority).expect("members");
        let changed = match bounds.change {
            ModelChange::QuorumSystem => {
                let flexible = QuorumSpec::Flexible { q1: 1, q2: 3 };
                Members::new(ids.clone(), flexible)
            }
            ModelChange::RemoveN2 => Members::new(vec![ids[0], ids[2]], QuorumSpec::Majority),
        };
        let changed = changed.expect("members");
        let options = Options {
            heartbeat_ticks: 1,
            election_ticks: 3,
            learn_from_acceptors: true,
            check_invariants: true,
            ..Options::default()
        };
        System {
            ids,
            members: Arc::new(members),
            changed: Arc::new(changed),
            options,
            bounds,
            controls: Controls::default(),
            reduced: true,
            no_ops: RefCell::new(Vec::new()),
        }
    }

    /// The same model with Raft's vote restriction ([`ElectionMode::Raft`]).
    pub(super) fn raft(mut self) -> System {
        self.options.election = ElectionMode::Raft;
        self
    }

    /// The same model, with messages dead by the synced promise alone: every state it
    /// reaches, the reduced model reaches too, up to what the other rules say nothing
    /// reads.
    pub(super) fn unreduced(mut self) -> System {
        self.reduced = false;
        self
    }

    #[cfg(feature = "negative-controls")]
    pub(super) fn with(mut self, controls: Controls) -> System {
        self.controls = controls;
        self
    }

    /// Replica `i`'s `boot`th start, from what its storage synced.
    pub(super) fn start(&self, i: usize, boot: u64, disk: Disk) -> Member {
        let members = self.members.clone();
        let options = self.options.clone();
        let durable = disk.durable();
        #[allow(unused_mut)]
        let mut replica = Replica::restart(self.ids[i], members, options, ModelRng(boot), durable)
            .expect("replica");
        #[allow(unused_mut)]
        let mut sequencer = Sequencer::new();
        #[cfg(feature = "negative-controls")]
        {
            if self.controls.skip_phase1 {
                replica.skip_phase1();
            }
            if self.controls.read_at_commit_point {
                replica.read_at_commit_point();
            }
            if self.controls.no_vote_restriction {
                replica.skip_vote_restriction();
            }
            if self.controls.ack_before_sync {
                sequencer.acknowledge_before_sync();
            }
            if self.controls.phase1_in_current_only {
                replica.phase1_in_current_configuration_only();
            }
        }
        #[cfg(not(feature = "negative-controls"))]
        assert_eq!(self.controls, Controls::default());
        Member {
            replica,
            sequencer,
            unsynced: VecDeque::new(),
            durable: 0,
            disk,
            machine: Vec::new(),
            boot,
        }
    }

    /// Whether replica `i` may still crash.
    pub(super) fn may_crash(&self, ghost: &Ghost, i: usize) -> bool {
        let prone = ghost.crash_prone.unwrap_or(0) & (1 << i) != 0;
        prone && ghost.crashes < self.bounds.crashes
    }

    /// The configuration of `epoch` (the first, or the one a change makes).
    pub(super) fn config_of(&self, epoch: u64) -> &Members {
        if epoch == 0 {
            &self.members
        } else {
            &self.changed
        }
    }

    pub(super) fn index(&self, id: NodeId) -> usize {
        self.members.index_of(id).expect("a member")
    }

    /// The step of member `me` that `change` makes (it returns false if the event is
    /// refused). Its fingerprint is worked out first, and the state built only if new.
    fn local(
        &self,
        state: &State,
        me: usize,
        seen: &dyn Fn(u64) -> bool,
        change: impl FnOnce(&mut Local<'_>) -> bool,
    ) -> Stepped {
        let mut local = Local {
            system: self,
            me,
            member: state.members[me].clone(),
            ghost: state.ghost.clone(),
            votes: &state.votes,
            new_votes: Vec::new(),
            sends: Vec::new(),
            to_self: VecDeque::new(),
            synced: 0,
        };
        if !change(&mut local) {
            return Stepped::Refused;
        }
        let id = self.ids[me];
        loop {
            if let Some(message) = local.to_self.pop_front() {
                let actions = local.member.replica.step(id, message);
                local.carry_out(actions);
            } else if local.synced > local.member.durable {
                local.durable(local.synced);
            } else {
                break;
            }
        }
        if local.member.replica.heartbeat_seq() > Some(self.bounds.heartbeats) {
            return Stepped::Refused;
        }
        let Local {
            member,
            ghost,
            new_votes,
            sends,
            ..
        } = local;
        let mut parts = state.parts;
        let fate = |i: usize| Fate {
            reads: self.bounds.reads > 0,
            may_crash: self.may_crash(&ghost, i),
            changes: self.bounds.changes,
            reduced: self.reduced,
        };
        // Messages to this member that its step made dead leave the network.
        let dead = |sent: &Sent| {
            let (from, to, message) = &*sent.envelope;
            *to == me && member.is_dead(self.ids[*from], message, fate(me))
        };
        for sent in state.network.iter().filter(|s| dead(s)) {
            parts = parts.wrapping_sub(sent.hash);
        }
        let mut fresh: Vec<Sent> = Vec::new();
        let mut known = Vec::new();
        let mut memorable = true;
        for envelope in sends {
            let hash = part_hash((0u8, &envelope));
            let same = |s: &Sent| s.hash == hash && *s.envelope == envelope;
            let recipient = if envelope.1 == me {
                &member
            } else {
                &state.members[envelope.1]
            };
            if state.network.iter().any(same) {
                known.push(hash);
            } else if recipient.is_dead(self.ids[envelope.0], &envelope.2, fate(envelope.1)) {
                memorable = false;
            } else if !fresh.iter().any(same) {
                parts = parts.wrapping_add(hash);
                fresh.push(Sent {
                    hash,
                    envelope: Arc::new(envelope),
                });
            }
        }
        for vote in &new_votes {
            parts = parts.wrapping_add(part_hash((1u8, vote)));
        }
        let mut member_hashes = state.member_hashes.clone();
        member_hashes[me] = member.fingerprint();
        let fingerprint = part_hash((&member_hashes, parts, &ghost));
        if fingerprint == state.fingerprint {
            let mut sends = [0; NO_OP_SENDS];
            let fits = memorable && known.len() <= NO_OP_SENDS;
            sends[..known.len().min(NO_OP_SENDS)]
                .copy_from_slice(&known[..known.len().min(NO_OP_SENDS)]);
            return Stepped::Unchanged(fits.then_some(sends));
        }
        if seen(fingerprint) {
            return Stepped::Seen;
        }
        let mut network: Vec<Sent> = state.network.iter().filter(|s| !dead(s)).cloned().collect();
        network.extend(fresh);
        let mut members = state.members.clone();
        members[me] = member;
        let mut votes = state.votes.clone();
        votes.extend(new_votes);
        Stepped::New(State {
            members,
            network,
            votes,
            ghost,
            member_hashes,
            parts,
            fingerprint,
        })
    }

    /// The key under which a transition of one member that changed nothing is
    /// remembered: events whose effect depends on that member's state alone.
    fn no_op_key(&self, state: &State, event: &Event) -> Option<u64> {
        let (i, what) = match event {
            Event::Deliver(sent) => (sent.envelope.1, part_hash((0u8, sent.hash))),
            // Whether a tick may campaign depends on the campaigns made.
            Event::Tick(i, timer) => {
                let ghost = &state.ghost;
                let campaigns = (ghost.ballots, ghost.later_ballots, ghost.catch_ups);
                (*i, part_hash((1u8, timer, campaigns)))
            }
            Event::Propose(i, command) => (*i, part_hash((2u8, command))),
            Event::Sync(_)
            | Event::Crash(_)
            | Event::Read(_)
            | Event::Reconfigure(_)
            | Event::CrashProne(_) => return None,
        };
        Some(part_hash((state.member_hashes[i], what)))
    }

    fn step(&self, state: &State, event: &Event, seen: &dyn Fn(u64) -> bool) -> Stepped {
        match event {
            Event::Deliver(sent) => {
                let (from, to, message) = &*sent.envelope;
                let from = self.ids[*from];
                self.local(state, *to, seen, |l| {
                    let actions = l.member.replica.step(from, message.clone());
                    l.carry_out(actions);
                    true
                })
            }
            Event::Tick(i, timer) => self.local(state, *i, seen, |l| l.tick(*timer)),
            Event::Sync(i) => self.local(state, *i, seen, |l| l.sync()),
            Event::Crash(i) => self.local(state, *i, seen, |l| l.crash()),
            Event::Propose(i, c) => self.local(state, *i, seen, |l| l.propose(*c)),
            Event::Read(i) => self.local(state, *i, seen, |l| l.issue_read()),
            Event::Reconfigure(i) => self.local(state, *i, seen, |l| l.reconfigure()),
            Event::CrashProne(mask) => self.local(state, 0, seen, |l| {
                l.ghost.crash_prone = Some(*mask);
                true
            }),
        }
    }
}

/// at one ballot durable, by the quorum system of the ballot's epoch.
pub(super) fn is_chosen<'v>(
    system: &System,
    votes: impl Iterator<Item = &'v Vote> + Clone,
    slot: Slot,
    entry: &Entry<u64>,
) -> bool {
    let at_slot = votes.filter(move |v| v.slot == slot && v.entry == *entry);
    at_slot.clone().any(|v| {
        let config = system.config_of(v.ballot.epoch());
        let voters: AcceptorSet = (at_slot.clone())
            .filter(|w| w.ballot == v.ballot)
            .filter_map(|w| config.index_of(system.ids[w.acceptor]))
            .collect();
        config.quorum().is_phase2_quorum(voters)
    })
}

impl Model for System {
    type State = State;
    type Action = Event;

    fn init(&self) -> State {
        let members: Vec<Member> = (0..self.ids.len())
            .map(|i| self.start(i, 1, Disk::default()))
            .collect();
        let member_hashes: Vec<u64> = members.iter().map(Member::fingerprint).collect();
        let ghost = Ghost {
            writes: vec![Client::Unproposed; self.bounds.commands],
            reads: Vec::new(),
            first_applied: Vec::new(),
            crashes: 0,
            changes: 0,
            crash_prone: (self.bounds.crashes == 0).then_some(0),
            ballots: 0,
            later_ballots: 0,
            catch_ups: 0,
            violations: 0,
        };
        let fingerprint = part_hash((&member_hashes, 0u64, &ghost));
        State {
            members,
            network: Vec::new(),
            votes: Vec::new(),
            ghost,
            member_hashes,
            parts: 0,
            fingerprint,
        }
    }

    fn actions(&self, state: &State, actions: &mut Vec<Event>) {
        if state.ghost.crash_prone.is_none() {
            // The first step chooses which replicas may crash (as many as crashes).
            let n = state.members.len();
            let count = u32::from(self.bounds.crashes).min(n.try_into().expect("few members"));
            let masks = (1..1u8 << n).filter(|mask| mask.count_ones() == count);
            actions.extend(masks.map(Event::CrashProne));
            return;
        }
        let next_command = (state.ghost.writes.iter()).position(|&c| c == Client::Unproposed);
        actions.extend(state.network.iter().cloned().map(Event::Deliver));
        for (i, member) in state.members.iter().enumerate() {
            actions.push(Event::Tick(i, None));
            if member.replica.role() != RoleKind::Leader {
                // The catch-up timer fires at a time that asks any of the peers asked in
                // turn (see `Replica::tick_with`).
                let turns = (0..member.replica.catch_up_turns()).map(Timer::CatchUp);
                let timers = [Timer::Election].into_iter().chain(turns);
                let timers = timers.chain([Timer::ReadIndex]);
                actions.extend(timers.map(|timer| Event::Tick(i, Some(timer))));
            }
            if !member.unsynced.is_empty() {
                actions.push(Event::Sync(i));
            }
            let leads = member.replica.role() == RoleKind::Leader;
            if let Some(k) = next_command.filter(|_| self.bounds.forwards || leads) {
                actions.push(Event::Propose(i, k as u64 + 1));
            }
            if state.ghost.reads.len() < self.bounds.reads {
                actions.push(Event::Read(i));
            }
            if state.ghost.changes < self.bounds.changes
                && member.replica.role() == RoleKind::Leader
            {
                actions.push(Event::Reconfigure(i));
            }
            let prone = state.ghost.crash_prone.unwrap_or(0) & (1 << i) != 0;
            if prone && state.ghost.crashes < self.bounds.crashes {
                actions.push(Event::Crash(i));
            }
        }
    }

    fn next(&self, state: &State, event: &Event, seen: &dyn Fn(u64) -> bool) -> Option<State> {
        let key = self.no_op_key(state, event);
        let slot = key.map(|key| usize::try_from(key % NO_OP_SLOTS as u64).expect("a slot"));
        if let (Some(key), Some(slot)) = (key, slot) {
            let no_ops = self.no_ops.borrow();
            if let Some((k, known)) = no_ops.get(slot) {
                if *k == key {
                    let sent = |h: &u64| *h == 0 || state.network.iter().any(|s| s.hash == *h);
                    if known.is_none_or(|sends| sends.iter().all(sent)) {
                        return None;
                    }
                }
            }
        }
        let remember = |entry: Option<[u64; NO_OP_SENDS]>| {
            if let (Some(key), Some(slot)) = (key, slot) {
                let mut no_ops = self.no_ops.borrow_mut();
                if no_ops.is_empty() {
                    no_ops.resize(NO_OP_SLOTS, (0, None));
                }
                no_ops[slot] = (key, entry);
            }
        };
        match self.step(state, event, seen) {
            Stepped::New(next) => Some(next),
            Stepped::Refused => {
                remember(None);
                None
            }
            Stepped::Unchanged(Some(sends)) => {
                remember(Some(sends));
                None
            }
            Stepped::Unchanged(None) | Stepped::Seen => None,
        }
    }

    fn fingerprint(&self, state: &State) -> u64 {
        state.fingerprint
    }
}
