//! The state the model check explores: the replicas with their sequencers, storage and
//! state machines, the network, the clients and the ghost state (see the parent module).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rand_core::RngCore;

use super::super::replica::Timer;
use super::super::{
    Action, Durable, Entry, LogEntry, Message, Replica, RoleKind, Sequencer, Slot, Write,
};
use crate::explore::PartHasher;
use crate::{Ballot, NodeId};

/// for the one `next_u64` drawn per start (the boot number), how many times it started.
#[derive(Clone, Debug, Hash)]
pub(super) struct ModelRng(pub(super) u64);

impl RngCore for ModelRng {
    fn next_u32(&mut self) -> u32 {
        0
    }
    fn next_u64(&mut self) -> u64 {
        self.0
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        dst.fill(0);
    }
}

type ModelReplica = Replica<u64, ModelRng>;

/// A message: (sender's index, recipient's index, message).
pub(super) type Envelope = (usize, usize, Message<u64>);

/// A message sent, with its part hash.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Sent {
    pub(super) hash: u64,
    pub(super) envelope: Arc<Envelope>,
}

/// A vote made durable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Vote {
    pub(super) acceptor: usize,
    pub(super) slot: Slot,
    pub(super) ballot: Ballot,
    pub(super) entry: Entry<u64>,
}

/// What a replica's storage synced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Disk {
    pub(super) promised: Ballot,
    pub(super) votes: BTreeMap<Slot, LogEntry<u64>>,
    pub(super) commit: Slot,
}

impl Disk {
    /// Writes `write` as the server's storage does (for a slot written twice, the later
    /// write wins).
    pub(super) fn write(&mut self, write: &Write<u64>) {
        match write {
            Write::Promise(ballot) => self.promised = self.promised.max(*ballot),
            Write::Votes {
                ballot,
                first,
                entries,
            } => {
                self.promised = self.promised.max(*ballot);
                for (slot, entry) in (*first..).zip(entries.iter()) {
                    let entry = entry.clone();
                    self.votes.insert(
                        slot,
                        LogEntry {
                            ballot: *ballot,
                            entry,
                        },
                    );
                }
            }
            Write::Chosen { first, entries } => {
                self.votes.extend((*first..).zip(entries.iter().cloned()));
            }
            Write::Commit(slot) => self.commit = self.commit.max(*slot),
            Write::Snapshot { .. } => unreachable!("the model takes no snapshots"),
        }
    }

    pub(super) fn durable(&self) -> Durable<u64> {
        Durable {
            promised: self.promised,
            votes: self.votes.iter().map(|(&s, v)| (s, v.clone())).collect(),
            commit: self.commit,
            snapshot: None,
            snapshot_membership: None,
        }
    }
}

/// What the deadness of a message to a member depends on beyond the member.
#[derive(Clone, Copy, Debug)]
pub(super) struct Fate {
    /// Whether the model makes reads.
    pub(super) reads: bool,
    /// Whether the member may still crash.
    pub(super) may_crash: bool,
    /// The membership changes the model makes.
    pub(super) changes: u8,
    /// Whether the rules beyond the synced promise apply (`System::unreduced`).
    pub(super) reduced: bool,
}

/// A replica and what surrounds it.
#[derive(Clone, Debug)]
pub(super) struct Member {
    pub(super) replica: ModelReplica,
    pub(super) sequencer: Sequencer<u64>,
    /// Submissions handed to storage and not yet durable, oldest first: the tag to report
    /// durable once they are (see `Local::submit`), and the writes.
    pub(super) unsynced: VecDeque<(u64, Vec<Write<u64>>)>,
    /// The last tag reported durable.
    pub(super) durable: u64,
    pub(super) disk: Disk,
    /// The state machine: the entries applied since the replica last started, slot 1
    /// first.
    pub(super) machine: Vec<Entry<u64>>,
    /// How many times the replica started.
    pub(super) boot: u64,
}

impl Member {
    pub(super) fn fingerprint(&self) -> u64 {
        let mut h = PartHasher::default();
        self.replica.hash_model_state(&mut h);
        // A tag counts by the sync that makes it durable: 0 for those made durable, `k`
        // for the `k`th unsynced submission.
        let rank = |tag: u64| match self.unsynced.iter().position(|(t, _)| *t >= tag) {
            Some(k) if tag > self.durable => k as u64 + 1,
            _ => 0,
        };
        let mut sends = Vec::new();
        let first_copy = |action: &Action<u64>| match action {
            Action::Send { .. } if sends.contains(action) => false,
            Action::Send { .. } => {
                sends.push(action.clone());
                true
            }
            _ => true,
        };
        self.sequencer.hash_model_state(&mut h, rank, first_copy);
        for (_, writes) in &self.unsynced {
            writes.len().hash(&mut h);
            for write in writes {
                match write {
                    Write::Promise(ballot) => (0u8, ballot).hash(&mut h),
                    Write::Votes {
                        ballot,
                        first,
                        entries,
                    } => (1u8, ballot, first, entries).hash(&mut h),
                    Write::Chosen { first, entries } => (2u8, first, entries).hash(&mut h),
                    Write::Commit(slot) => (3u8, slot).hash(&mut h),
                    Write::Snapshot { .. } => unreachable!("the model takes no snapshots"),
                }
            }
        }
        let disk = &self.disk;
        (&disk.votes, disk.promised, disk.commit, &self.machine).hash(&mut h);
        self.boot.hash(&mut h);
        h.finish()
    }

    /// Whether delivering `message` here changes nothing, now or after any events,
    /// crashes included: a reply addressed to a ballot this replica will never again
    /// lead or campaign at, or that announces a ballot it can never again be below. Each
    /// rule rests on the promise storage synced (`disk.promised`), which never falls
    /// and which a restarted replica starts from: once it is at or above `ballot`, every
    /// ballot the replica campaigns at from then on is above `ballot`; and the rules for
    /// slots already chosen rest on [`Member::commit_floor`], below which the replica's
    /// commit point never falls again.
    ///
    /// "Nothing" is what the replica's model hash sees and what can be read from it
    /// later: a heartbeat's acknowledgement only counts towards confirming reads (a
    /// leader's record of them is read by nothing else the model does: no promotion, no
    /// transfer, no leases), so it is dead in a model without reads.
    ///
    /// A message from a replica no longer in the roster is ignored, and is dead once the
    /// roster cannot change again here: no crash to come (a restart replays the log's
    /// changes over the initial configuration), every change the model makes applied
    /// (`changes`) and the older configuration retired.
    pub(super) fn is_dead(&self, from: NodeId, message: &Message<u64>, fate: Fate) -> bool {
        let Fate {
            reads,
            may_crash,
            changes,
            reduced,
        } = fate;
        if self.is_dead_by_ballot(message) {
            return true;
        }
        if !reduced {
            return false;
        }
        let membership = self.replica.membership();
        let settled = membership.epoch() == u64::from(changes) && !membership.is_changing();
        if !may_crash && settled && membership.position(from).is_none() {
            return true;
        }
        let synced = self.disk.promised;
        match *message {
            // Counted by the leader of `ballot`, or by a follower that promised `ballot`,
            // for the slots above the commit point only (the leader's window starts
            // there, a follower's reports are aligned to it first).
            Message::Accepted { ballot, last, .. } => {
                synced == ballot && last <= self.commit_floor(may_crash)
            }
            Message::HeartbeatAck { .. } => !reads,
            // Chosen entries all at or below the commit point, and a commit point no
            // higher (the known commit point is never below the commit point): nothing
            // to learn. (A leader drops them.)
            Message::Chosen {
                ballot,
                first,
                ref entries,
                commit,
            } => {
                let floor = self.commit_floor(may_crash);
                let last = first + entries.len() as u64 - 1;
                synced >= ballot && commit <= floor && last <= floor
            }
            _ => false,
        }
    }

    /// The rules of [`Member::is_dead`] that rest on the synced promise alone (the only
    /// ones before the checks of a change and a write; see `System::unreduced`).
    fn is_dead_by_ballot(&self, message: &Message<u64>) -> bool {
        let synced = self.disk.promised;
        let replica = &self.replica;
        let at =
            |ballot: Ballot, role: RoleKind| replica.role() == role && replica.promised() == ballot;
        match *message {
            // Counted only by the candidate of `ballot`.
            Message::Promise { ballot, .. } => synced >= ballot && !at(ballot, RoleKind::Candidate),
            // Counted by the leader of `ballot`, or by a follower that promised `ballot`.
            Message::Accepted { ballot, .. } => synced > ballot,
            // Counted by the leader of `ballot`, if at or above its confirmation floor.
            Message::HeartbeatAck { ballot, seq } => {
                let floor = replica.confirmation_floor().unwrap_or(0);
                synced >= ballot
                    && !at(ballot, RoleKind::Candidate)
                    && !(at(ballot, RoleKind::Leader) && seq >= floor)
            }
            // Deposes a leader or candidate below `promised`.
            Message::Nack { promised, .. } => synced >= promised,
            _ => false,
        }
    }

    /// A slot the replica's commit point is at or above now and after any events: the
    /// commit point itself, which never falls while the replica runs, if it may no longer
    /// crash; otherwise where a restart would put it, the commit point synced as far as
    /// the synced log is whole (the commit point in memory is never below it).
    pub(super) fn commit_floor(&self, may_crash: bool) -> Slot {
        if !may_crash {
            return self.replica.commit();
        }
        let disk = &self.disk;
        (1..=disk.commit)
            .take_while(|slot| disk.votes.contains_key(slot))
            .last()
            .unwrap_or(0)
    }
}

/// Where a client's write stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Client {
    Unproposed,
    /// Given to this replica, which answers once it applies it.
    Waiting(usize),
    Completed,
    /// Its replica crashed first: the client never learns.
    Abandoned,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Outcome {
    Waiting,
    Served,
    Failed,
    Abandoned,
}

/// A read: where it was issued, the writes (bit `k`: command `k + 1`) completed before,
/// and how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Read {
    pub(super) at: usize,
    pub(super) must_see: u8,
    pub(super) outcome: Outcome,
}

pub(super) const DISAGREED: u8 = 1;
pub(super) const UNCHOSEN_APPLIED: u8 = 2;
pub(super) const STALE_READ: u8 = 4;

/// What no replica sees.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Ghost {
    pub(super) writes: Vec<Client>,
    pub(super) reads: Vec<Read>,
    /// The first entry any replica applied at each slot (slot 1 first).
    pub(super) first_applied: Vec<Entry<u64>>,
    pub(super) crashes: u8,
    /// The replicas that may crash (bit `i`: replica `i`), chosen by the first step.
    pub(super) crash_prone: Option<u8>,
    pub(super) ballots: u8,
    /// Campaigns at a ballot of a later epoch, when counted apart
    /// (`Bounds::later_campaigns`).
    pub(super) later_ballots: u8,
    /// The catch-ups replicas' timers started, when bounded (`Bounds::catch_ups`).
    pub(super) catch_ups: u8,
    /// Membership changes proposed.
    pub(super) changes: u8,
    /// The safety violations seen in the steps that led here (`DISAGREED`, ...).
    pub(super) violations: u8,
}

#[derive(Clone, Debug)]
pub(super) struct State {
    pub(super) members: Vec<Member>,
    /// Every message sent and not dead ([`Member::is_dead`]), without repeats.
    pub(super) network: Vec<Sent>,
    /// Every vote ever made durable, without repeats.
    pub(super) votes: Vec<Vote>,
    pub(super) ghost: Ghost,
    /// Each member's fingerprint.
    pub(super) member_hashes: Vec<u64>,
    /// The sum of the part hashes of the messages and votes.
    pub(super) parts: u64,
    pub(super) fingerprint: u64,
}

#[derive(Clone, PartialEq)]
pub(super) enum Event {
    Deliver(Sent),
    Tick(usize, Option<Timer>),
    Sync(usize),
    Crash(usize),
    Propose(usize, u64),
    Read(usize),
    /// The leader at this replica is asked for the model's membership change.
    Reconfigure(usize),
    /// The first step: which replicas may crash (bit `i`: replica `i`).
    CrashProne(u8),
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |i: &usize| i + 1;
        match self {
            Event::Deliver(sent) => {
                let (from, to, message) = &*sent.envelope;
                write!(f, "n{} → n{}: {message:?}", n(from), n(to))
            }
            Event::Tick(i, None) => write!(f, "n{} ticks", n(i)),
            Event::Tick(i, Some(timer)) => write!(f, "n{} ticks; its {timer:?} timer fires", n(i)),
            Event::Sync(i) => write!(f, "n{} syncs its oldest submission", n(i)),
            Event::Crash(i) => write!(f, "n{} crashes and restarts", n(i)),
            Event::Propose(i, c) => write!(f, "a client writes {c} at n{}", n(i)),
            Event::Read(i) => write!(f, "a client reads at n{}", n(i)),
            Event::Reconfigure(i) => {
                write!(f, "an operator asks n{} for the membership change", n(i))
            }
            Event::CrashProne(mask) => {
                let prone: Vec<usize> = (0..8).filter(|i| mask & (1 << i) != 0).collect();
                write!(
                    f,
                    "replicas {:?} may crash",
                    prone.iter().map(n).collect::<Vec<_>>()
                )
            }
        }
    }
}
