//! The client requests a member is answering, and the answer each gets when it cannot be
//! served.
//!
//! A client that hears an error must know whether its write may have happened: etcd's
//! clients, and the applications on them, take "no leader" and "leader changed" to mean
//! *not applied*, and retry; they take a time-out to mean *unknown*. So:
//!
//! - a write stays waiting across a leader change: its command may still be chosen (a new
//!   leader re-proposes what a quorum voted for, and a replica hands the commands it held
//!   to the next leader), and once applied here it is answered as a success;
//! - a write whose deadline passes after its command went to the replica is answered
//!   [`Failure::TimedOut`], or [`Failure::TimedOutLeaderFailure`] if the leader changed
//!   while it waited: the outcome is unknown;
//! - only a write whose command never left this member is answered [`Failure::NoLeader`]:
//!   it waited for a leader ([`Requests::park`]) and is dropped with the answer, so it is
//!   not applied and never will be;
//! - a read changes nothing, so any error is true of it: a leader change answers waiting
//!   reads at once with [`Failure::LeaderChanged`], as etcd answers them.
//!
//! Time is passed in (a [`Duration`] since any fixed start), so the simulator drives this
//! table as the server does.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use paxos::NodeId;

/// What a request waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A write: its command's application here.
    Write,
    /// A linearizable read: a read index (or a barrier's application) here.
    Read,
}

/// Why a request was answered with an error, in etcd's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No leader took the request: not applied, and never will be.
    NoLeader,
    /// A read cut short by a leader change (a read changes nothing).
    LeaderChanged,
    /// Not answered in time, and a leader changed meanwhile: the outcome is unknown.
    TimedOutLeaderFailure,
    /// Not answered in time: the outcome is unknown.
    TimedOut,
}

impl Failure {
    /// etcd's message for it (each is gRPC `Unavailable`).
    pub fn message(self) -> &'static str {
        match self {
            Failure::NoLeader => "etcdserver: no leader",
            Failure::LeaderChanged => "etcdserver: leader changed",
            Failure::TimedOutLeaderFailure => {
                "etcdserver: request timed out, possibly due to previous leader failure"
            }
            Failure::TimedOut => "etcdserver: request timed out",
        }
    }

    /// Whether a client may take it to mean that nothing was applied.
    pub fn not_applied(self) -> bool {
        matches!(self, Failure::NoLeader | Failure::LeaderChanged)
    }
}

#[derive(Debug)]
struct Waiting<R> {
    reply: R,
    kind: Kind,
    deadline: Duration,
    /// The leader changed (or was lost) since the request arrived.
    leader_changed: bool,
}

/// The requests a member is answering, by id, with their replies `R` (a channel in the
/// server, a client's address in the simulator), and the commands `C` waiting for a
/// leader.
#[derive(Debug)]
pub struct Requests<R, C> {
    timeout: Duration,
    waiting: HashMap<u64, Waiting<R>>,
    /// Every request's deadline, in arrival order, which is deadline order (one timeout,
    /// and time passed in never goes back): an expiry looks only at the expired ones, and
    /// at the answered ones ahead of the first still waiting.
    deadlines: VecDeque<(Duration, u64)>,
    /// Commands no leader took yet, by request id (0: the member's own, nobody waits).
    parked: VecDeque<(u64, C)>,
    parked_max: usize,
    leader: Option<NodeId>,
    #[cfg(feature = "negative-controls")]
    misreports_writes: bool,
}

impl<R, C> Requests<R, C> {
    /// An empty table: requests get `timeout` to be answered, and at most `parked_max`
    /// commands wait for a leader.
    pub fn new(timeout: Duration, parked_max: usize) -> Requests<R, C> {
        Requests {
            timeout,
            waiting: HashMap::new(),
            deadlines: VecDeque::new(),
            parked: VecDeque::new(),
            parked_max,
            leader: None,
            #[cfg(feature = "negative-controls")]
            misreports_writes: false,
        }
    }

    /// Request `id` arrived at `now`; `reply` answers it.
    pub fn insert(&mut self, id: u64, kind: Kind, reply: R, now: Duration) {
        let deadline = now + self.timeout;
        debug_assert!(
            self.deadlines
                .back()
                .is_none_or(|&(last, _)| last <= deadline),
            "time went back"
        );
        let waiting = Waiting {
            reply,
            kind,
            deadline,
            leader_changed: false,
        };
        let replaced = self.waiting.insert(id, waiting);
        debug_assert!(replaced.is_none(), "request {id} is waiting already");
        self.deadlines.push_back((deadline, id));
    }

    /// Request `id` was served (its command applied here, or its read may be served):
    /// its reply, unless it was answered already.
    pub fn answer(&mut self, id: u64) -> Option<R> {
        self.waiting.remove(&id).map(|w| w.reply)
    }

    /// Whether request `id` is still waiting.
    pub fn is_waiting(&self, id: u64) -> bool {
        self.waiting.contains_key(&id)
    }

    /// How many requests are waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no request is waiting.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// No leader is known: `command` (of request `id`, 0 for the member's own) waits for
    /// one, unless too many wait already: then request `id` is answered now, with
    /// [`Failure::NoLeader`] (the command is dropped, so that is true).
    pub fn park(&mut self, id: u64, command: C) -> Option<(R, Failure)> {
        if self.parked.len() < self.parked_max {
            self.parked.push_back((id, command));
            return None;
        }
        self.fail(id, Failure::NoLeader)
    }

    /// The parked commands, to propose again now, in the order they came: the member's
    /// own, and those of requests still waiting (a request answered meanwhile is dropped
    /// with its command).
    pub fn unpark(&mut self) -> Vec<(u64, C)> {
        let parked = std::mem::take(&mut self.parked);
        parked
            .into_iter()
            .filter(|(id, _)| *id == 0 || self.waiting.contains_key(id))
            .collect()
    }

    /// The leader this member knows of is now `leader`. If it changed from a known one,
    /// waiting reads are answered with [`Failure::LeaderChanged`] (returned), and waiting
    /// writes remember it for their time-out's message.
    pub fn leader_is(&mut self, leader: Option<NodeId>) -> Vec<(R, Failure)> {
        let previous = std::mem::replace(&mut self.leader, leader);
        if previous.is_none() || previous == leader {
            return Vec::new();
        }
        #[cfg(feature = "negative-controls")]
        if self.misreports_writes {
            let ids: Vec<u64> = self.waiting.keys().copied().collect();
            return self.fail_all(ids, Failure::LeaderChanged);
        }
        let mut reads = Vec::new();
        for (&id, waiting) in &mut self.waiting {
            match waiting.kind {
                Kind::Read => reads.push(id),
                Kind::Write => waiting.leader_changed = true,
            }
        }
        self.fail_all(reads, Failure::LeaderChanged)
    }

    /// Answers every request whose deadline is past at `now`: a parked one with
    /// [`Failure::NoLeader`] (its command is dropped), any other with a time-out.
    pub fn expire(&mut self, now: Duration) -> Vec<(R, Failure)> {
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.front() {
            // Answered already (or a later request under a reused id): drop it, due or
            // not, so that under load the queue holds about what is still waiting.
            let Some(waiting) = self.waiting.get(&id).filter(|w| w.deadline == deadline) else {
                self.deadlines.pop_front();
                continue;
            };
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            let parked = self.parked.iter().position(|(p, _)| *p == id);
            let failure = match parked {
                Some(at) => {
                    self.parked.remove(at);
                    Failure::NoLeader
                }
                None if waiting.leader_changed => Failure::TimedOutLeaderFailure,
                None => Failure::TimedOut,
            };
            expired.extend(self.fail(id, failure));
        }
        expired
    }

    /// Forgets the requests whose clients went away (`gone` says which), and their parked
    /// commands: nobody hears the answer, and a command nobody waits for is not proposed.
    pub fn forget(&mut self, mut gone: impl FnMut(&R) -> bool) {
        self.waiting.retain(|_, w| !gone(&w.reply));
        let waiting = &self.waiting;
        self.deadlines.retain(|(_, id)| waiting.contains_key(id));
        self.parked
            .retain(|(id, _)| *id == 0 || waiting.contains_key(id));
    }

    /// Answers request `id` with `failure`; its reply, if it was waiting.
    pub fn fail(&mut self, id: u64, failure: Failure) -> Option<(R, Failure)> {
        self.answer(id).map(|reply| (reply, failure))
    }

    fn fail_all(&mut self, mut ids: Vec<u64>, failure: Failure) -> Vec<(R, Failure)> {
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| self.fail(id, failure))
            .collect()
    }

    /// Breaks the rule on purpose, for the simulator's negative control: a leader change
    /// answers every waiting request, writes included, with [`Failure::LeaderChanged`],
    /// though their commands may still be chosen.
    #[cfg(feature = "negative-controls")]
    pub fn misreport_writes_on_leader_change(&mut self) {
        self.misreports_writes = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Table = Requests<&'static str, &'static str>;

    const SECOND: Duration = Duration::from_secs(1);

    fn table() -> Table {
        Requests::new(5 * SECOND, 3)
    }

    #[test]
    fn an_applied_write_is_answered_once() {
        let mut t = table();
        t.insert(1, Kind::Write, "w1", SECOND);
        assert_eq!(t.answer(1), Some("w1"));
        assert_eq!(t.answer(1), None);
        assert!(t.is_empty());
    }

    #[test]
    fn a_leader_change_fails_reads_at_once_but_keeps_writes_waiting() {
        let mut t = table();
        assert_eq!(
            t.leader_is(Some(NodeId(1))),
            vec![],
            "a first leader is no change"
        );
        t.insert(1, Kind::Write, "w1", SECOND);
        t.insert(2, Kind::Read, "r2", SECOND);
        t.insert(3, Kind::Read, "r3", SECOND);
        assert_eq!(t.leader_is(Some(NodeId(1))), vec![], "the same leader");
        assert_eq!(
            t.leader_is(None),
            vec![
                ("r2", Failure::LeaderChanged),
                ("r3", Failure::LeaderChanged)
            ]
        );
        // The write is still waiting, and answered as applied if its command is chosen.
        assert!(t.is_waiting(1));
        assert_eq!(t.leader_is(Some(NodeId(2))), vec![], "nothing left to fail");
        assert_eq!(t.answer(1), Some("w1"));
    }

    #[test]
    fn a_write_past_its_deadline_is_unknown_and_says_whether_a_leader_failed() {
        let mut t = table();
        t.leader_is(Some(NodeId(1)));
        t.insert(1, Kind::Write, "calm", SECOND);
        t.insert(2, Kind::Write, "late", 2 * SECOND);
        assert_eq!(t.expire(6 * SECOND - Duration::from_nanos(1)), vec![]);
        assert_eq!(t.expire(6 * SECOND), vec![("calm", Failure::TimedOut)]);
        t.leader_is(Some(NodeId(2)));
        t.insert(3, Kind::Write, "after", 3 * SECOND);
        assert_eq!(
            t.expire(7 * SECOND),
            vec![("late", Failure::TimedOutLeaderFailure)]
        );
        // Arrived after the change: a plain time-out.
        assert_eq!(t.expire(8 * SECOND), vec![("after", Failure::TimedOut)]);
        assert!(t.is_empty());
    }

    #[test]
    fn a_parked_write_past_its_deadline_is_dropped_and_answered_no_leader() {
        let mut t = table();
        t.insert(1, Kind::Write, "w1", SECOND);
        assert_eq!(t.park(1, "put a"), None);
        assert_eq!(t.park(0, "expire a lease"), None);
        assert_eq!(t.expire(6 * SECOND), vec![("w1", Failure::NoLeader)]);
        // Its command is gone: only the member's own is proposed once a leader is known.
        assert_eq!(t.unpark(), vec![(0, "expire a lease")]);
        assert!(Failure::NoLeader.not_applied());
    }

    #[test]
    fn parked_commands_come_back_in_order_and_a_full_park_refuses_at_once() {
        let mut t = table();
        for (id, reply) in [(1, "w1"), (2, "w2"), (3, "w3"), (4, "w4")] {
            t.insert(id, Kind::Write, reply, SECOND);
        }
        assert_eq!(t.park(1, "c1"), None);
        assert_eq!(t.park(2, "c2"), None);
        assert_eq!(t.park(3, "c3"), None);
        assert_eq!(t.park(4, "c4"), Some(("w4", Failure::NoLeader)));
        assert!(!t.is_waiting(4));
        // A request answered meanwhile takes its command with it.
        assert_eq!(t.answer(1), Some("w1"));
        assert_eq!(t.unpark(), vec![(2, "c2"), (3, "c3")]);
        assert_eq!(t.unpark(), vec![], "unparked once");
    }

    #[test]
    fn requests_whose_clients_left_are_forgotten_with_their_commands() {
        let mut t = table();
        t.insert(1, Kind::Write, "gone", SECOND);
        t.insert(2, Kind::Write, "here", SECOND);
        t.park(1, "c1");
        t.park(2, "c2");
        t.park(0, "own");
        t.forget(|reply| *reply == "gone");
        assert_eq!(t.len(), 1);
        assert_eq!(t.unpark(), vec![(2, "c2"), (0, "own")]);
    }

    #[test]
    fn answered_requests_leave_the_deadline_queue_and_ids_can_be_reused() {
        let mut t = table();
        for id in 1..=100 {
            t.insert(id, Kind::Write, "w", SECOND);
        }
        for id in 2..=100 {
            t.answer(id);
        }
        // Only request 1 is due; the answered ones behind it stay until it goes.
        assert_eq!(t.expire(2 * SECOND), vec![]);
        assert_eq!(t.deadlines.len(), 100);
        assert_eq!(t.answer(1), Some("w"));
        assert_eq!(t.expire(2 * SECOND), vec![]);
        assert!(
            t.deadlines.is_empty(),
            "answered requests pruned before their deadline"
        );
        // An id answered and used again expires by its new deadline only.
        t.insert(7, Kind::Write, "old", SECOND);
        t.answer(7);
        t.insert(7, Kind::Write, "new", 3 * SECOND);
        assert_eq!(t.expire(6 * SECOND), vec![]);
        assert_eq!(t.expire(8 * SECOND), vec![("new", Failure::TimedOut)]);
    }

    #[test]
    fn only_no_leader_and_leader_changed_say_not_applied() {
        let said: Vec<(&str, bool)> = [
            Failure::NoLeader,
            Failure::LeaderChanged,
            Failure::TimedOutLeaderFailure,
            Failure::TimedOut,
        ]
        .into_iter()
        .map(|f| (f.message(), f.not_applied()))
        .collect();
        assert_eq!(
            said,
            vec![
                ("etcdserver: no leader", true),
                ("etcdserver: leader changed", true),
                (
                    "etcdserver: request timed out, possibly due to previous leader failure",
                    false
                ),
                ("etcdserver: request timed out", false),
            ]
        );
    }
}
