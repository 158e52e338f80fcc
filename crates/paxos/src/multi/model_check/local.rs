//! One member's step in the model check: the replica's actions carried out through its
//! sequencer, storage and state machine, as a driver carries them out.

use std::collections::VecDeque;

use super::super::replica::Timer;
use super::super::{Action, Entry, Message, RoleKind, Slot, Step, Write};
use super::state::{Client, Envelope, Ghost, Member, Outcome, Read, Vote};
use super::state::{DISAGREED, STALE_READ, UNCHOSEN_APPLIED};
use super::system::{is_chosen, ModelChange, System};
use crate::multi::Change;

/// One member's step, being worked out.
pub(super) struct Local<'a> {
    pub(super) system: &'a System,
    pub(super) me: usize,
    pub(super) member: Member,
    pub(super) ghost: Ghost,
    /// The votes made durable before this step.
    pub(super) votes: &'a [Vote],
    /// Votes this step made durable.
    pub(super) new_votes: Vec<Vote>,
    pub(super) sends: Vec<Envelope>,
    /// Messages the replica sent itself, delivered after the current batch (as the
    /// server's node does: in order, once, never lost).
    pub(super) to_self: VecDeque<Message<u64>>,
    /// Submissions storage made durable at once, reported once the current batch has
    /// been carried out (as storage reports them to a driver: later, never amid a batch).
    pub(super) synced: u64,
}

impl Local<'_> {
    /// Hands `actions` to the sequencer and does what it says, as a driver does.
    pub(super) fn carry_out(&mut self, actions: Vec<Action<u64>>) {
        for step in self.member.sequencer.schedule(actions) {
            match step {
                Step::Persist { tag, writes } => self.submit(tag, writes),
                Step::Run(action) => self.execute(action),
            }
        }
    }

    /// Hands submission `tag` to storage. Storage may make consecutive submissions
    /// durable with one sync (as the server's does), and the model makes use of it for a
    /// submission that changes nothing once the ones before it are synced (a duplicate
    /// accept's votes, a commit point already written): it is made durable with the
    /// submission before it, or at once if there is none. Otherwise every duplicate
    /// delivery would queue one more sync, without end.
    pub(super) fn submit(&mut self, tag: u64, writes: Vec<Write<u64>>) {
        let mut projected = self.member.disk.clone();
        for write in self.member.unsynced.iter().flat_map(|(_, w)| w) {
            projected.write(write);
        }
        let before = projected.clone();
        for write in &writes {
            projected.write(write);
        }
        if projected != before && (self.may_crash() || !self.member.unsynced.is_empty()) {
            self.member.unsynced.push_back((tag, writes));
        } else if projected != before {
            // This replica never crashes: when its syncs happen is seen only as a delay
            // of what waits for them, which the network's delays already cover.
            self.write_durably(&writes);
            self.synced = self.synced.max(tag);
        } else if let Some((last, _)) = self.member.unsynced.back_mut() {
            *last = tag;
        } else {
            self.synced = self.synced.max(tag);
        }
    }

    /// Whether this replica may still crash.
    pub(super) fn may_crash(&self) -> bool {
        self.system.may_crash(&self.ghost, self.me)
    }

    /// Storage reports `tag` durable: the sequencer releases what waited for it.
    pub(super) fn durable(&mut self, tag: u64) {
        self.member.durable = tag;
        for action in self.member.sequencer.durable(tag) {
            self.execute(action);
        }
    }

    pub(super) fn execute(&mut self, action: Action<u64>) {
        match action {
            Action::Send { to, message } => {
                let to = self.system.index(to);
                if to == self.me {
                    self.to_self.push_back(message);
                } else {
                    self.sends.push((self.me, to, message));
                }
            }
            Action::Apply { slot, entry } => self.apply(slot, entry),
            Action::ReadReady { id } => {
                let must_see = self.read(id).must_see;
                let machine = &self.member.machine;
                let stale = (0..8)
                    .filter(|k| must_see & (1 << k) != 0)
                    .any(|k| !machine.contains(&Entry::Command(k + 1)));
                self.read(id).outcome = Outcome::Served;
                if stale {
                    self.ghost.violations |= STALE_READ;
                }
            }
            Action::ReadFailed { id, .. } => self.read(id).outcome = Outcome::Failed,
            other => unreachable!("the sequencer handed over {other:?}"),
        }
    }

    pub(super) fn read(&mut self, id: u64) -> &mut Read {
        let me = self.me;
        let read = &mut self.ghost.reads[usize::try_from(id).expect("small")];
        assert_eq!((read.at, read.outcome), (me, Outcome::Waiting), "read {id}");
        read
    }

    pub(super) fn apply(&mut self, slot: Slot, entry: Entry<u64>) {
        let machine = &mut self.member.machine;
        let n = self.me + 1;
        assert_eq!(slot, machine.len() as u64 + 1, "n{n} applied out of order");
        match self.ghost.first_applied.get(machine.len()) {
            Some(first) if *first != entry => self.ghost.violations |= DISAGREED,
            Some(_) => {}
            None => self.ghost.first_applied.push(entry.clone()),
        }
        let votes = self.votes.iter().chain(&self.new_votes);
        if !is_chosen(self.system, votes, slot, &entry) {
            self.ghost.violations |= UNCHOSEN_APPLIED;
        }
        if let Entry::Command(c) = entry {
            let client = &mut self.ghost.writes[usize::try_from(c - 1).expect("small")];
            if *client == Client::Waiting(self.me) {
                *client = Client::Completed;
            }
        }
        machine.push(entry);
    }

    /// Makes the oldest unsynced submission durable.
    pub(super) fn sync(&mut self) -> bool {
        let Some((tag, writes)) = self.member.unsynced.pop_front() else {
            return false;
        };
        self.write_durably(&writes);
        self.durable(tag);
        true
    }

    /// Writes `writes` to the disk, recording the votes made durable.
    pub(super) fn write_durably(&mut self, writes: &[Write<u64>]) {
        for write in writes {
            self.member.disk.write(write);
            let Write::Votes {
                ballot,
                first,
                entries,
            } = write
            else {
                continue;
            };
            for (slot, entry) in (*first..).zip(entries.iter()) {
                let vote = Vote {
                    acceptor: self.me,
                    slot,
                    ballot: *ballot,
                    entry: entry.clone(),
                };
                if !self.votes.contains(&vote) && !self.new_votes.contains(&vote) {
                    self.new_votes.push(vote);
                }
            }
        }
    }

    /// A tick at which `timer` fires (see `Replica::tick_with`). Refused if nothing
    /// happens, or if it would start a ballot beyond the bound.
    pub(super) fn tick(&mut self, timer: Option<Timer>) -> bool {
        let bounds = self.system.bounds;
        let replica = &mut self.member.replica;
        if replica.role() == RoleKind::Leader && timer.is_some() {
            return false; // A leader runs no timers.
        }
        let promised = replica.promised();
        let actions = replica.tick_with(timer);
        if actions.is_empty() {
            return false;
        }
        if let (Some(Timer::CatchUp(_)), Some(bound)) = (timer, bounds.catch_ups) {
            let asked = &mut self.ghost.catch_ups;
            if *asked >= bound {
                return false;
            }
            *asked += 1;
        }
        let own = replica.promised();
        if own != promised && own.node == replica.id() {
            // It campaigns.
            let first = own.epoch() == 0 && self.ghost.ballots == 0;
            if first && bounds.first_campaigner.is_some_and(|i| i != self.me) {
                return false;
            }
            let (count, bound) = match bounds.later_campaigns {
                Some(bound) if own.epoch() > 0 => (&mut self.ghost.later_ballots, bound),
                _ => (&mut self.ghost.ballots, bounds.ballots),
            };
            if *count >= bound {
                return false;
            }
            *count += 1;
        }
        self.carry_out(actions);
        // A quiet tick hands storage the commit point no write carried, as the server's.
        if let Some(Step::Persist { tag, writes }) = self.member.sequencer.flush_commit_hint() {
            self.submit(tag, writes);
        }
        true
    }

    /// The replica crashes and restarts from what its storage synced.
    pub(super) fn crash(&mut self) -> bool {
        if !self.may_crash() {
            return false;
        }
        self.ghost.crashes += 1;
        let disk = self.member.disk.clone();
        self.member = self.system.start(self.me, self.member.boot + 1, disk);
        for client in &mut self.ghost.writes {
            if *client == Client::Waiting(self.me) {
                *client = Client::Abandoned;
            }
        }
        for read in &mut self.ghost.reads {
            if read.at == self.me && read.outcome == Outcome::Waiting {
                read.outcome = Outcome::Abandoned;
            }
        }
        true
    }

    pub(super) fn propose(&mut self, command: u64) -> bool {
        let Ok(actions) = self.member.replica.propose(command) else {
            return false; // No leader known: the client is refused, nothing changed.
        };
        let k = usize::try_from(command - 1).expect("small");
        self.ghost.writes[k] = Client::Waiting(self.me);
        self.carry_out(actions);
        true
    }

    /// The leader here proposes the model's change (see `ModelChange`).
    pub(super) fn reconfigure(&mut self) -> bool {
        if self.ghost.changes >= self.system.bounds.changes {
            return false;
        }
        let change = match self.system.bounds.change {
            ModelChange::QuorumSystem => Change::SetQuorum(self.system.changed.spec()),
            ModelChange::RemoveN2 => Change::Remove(self.system.ids[1]),
        };
        let Ok(actions) = self.member.replica.reconfigure(change, |_| true) else {
            return false;
        };
        self.ghost.changes += 1;
        self.carry_out(actions);
        true
    }

    pub(super) fn issue_read(&mut self) -> bool {
        let ghost = &mut self.ghost;
        let must_see = (ghost.writes.iter().enumerate())
            .filter(|(_, &client)| client == Client::Completed)
            .fold(0u8, |bits, (k, _)| bits | 1 << k);
        let replica = &self.member.replica;
        let refused = replica.role() == RoleKind::Candidate
            || (replica.role() == RoleKind::Follower && replica.leader().is_none());
        if must_see == 0 || ghost.reads.len() >= self.system.bounds.reads || refused {
            return false;
        }
        let id = ghost.reads.len() as u64;
        ghost.reads.push(Read {
            at: self.me,
            must_see,
            outcome: Outcome::Waiting,
        });
        let actions = self.member.replica.read(id);
        self.carry_out(actions);
        true
    }
}
