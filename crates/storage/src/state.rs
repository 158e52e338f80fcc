//! The fold of durable writes into what a replica restarts from. Every implementation
//! recovers through it, so "latest wins" means the same everywhere.

use std::collections::BTreeMap;

use paxos::multi::{Durable, LogEntry, Membership, Slot, SnapshotData, Write};
use paxos::Ballot;

use crate::format::Record;

/// The durable state so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State<C> {
    /// The highest promise.
    pub promised: Ballot,
    /// The latest vote (or chosen entry) per slot above the snapshot.
    pub votes: BTreeMap<Slot, LogEntry<C>>,
    /// The highest commit hint.
    pub commit: Slot,
    /// The snapshot index (0: none).
    pub snapshot_index: Slot,
    /// The snapshot's bytes.
    pub snapshot: Option<SnapshotData>,
    /// The membership the snapshot was taken with, if its record says.
    pub snapshot_membership: Option<Membership>,
}

impl<C> Default for State<C> {
    fn default() -> Self {
        State {
            promised: Ballot::ZERO,
            votes: BTreeMap::new(),
            commit: 0,
            snapshot_index: 0,
            snapshot: None,
            snapshot_membership: None,
        }
    }
}

impl<C: Clone> State<C> {
    /// Applies one write.
    pub fn apply(&mut self, write: Write<C>) {
        match write {
            Write::Promise(ballot) => self.promise(ballot),
            Write::Votes {
                ballot,
                first,
                entries,
            } => {
                // A vote implies a promise at least as high (the replica relies on it).
                self.promise(ballot);
                for (slot, entry) in (first..).zip(entries.iter()) {
                    let entry = entry.clone();
                    self.vote(slot, LogEntry { ballot, entry });
                }
            }
            Write::Chosen { first, entries } => {
                for (slot, entry) in (first..).zip(entries) {
                    self.vote(slot, entry);
                }
            }
            Write::Commit(slot) => self.commit = self.commit.max(slot),
            Write::Snapshot {
                index,
                membership,
                data,
            } => self.snapshot_taken(index, Some(membership), Some(data)),
        }
    }

    /// Applies one decoded record; a snapshot record's bytes come from its file.
    pub fn apply_record(&mut self, record: Record<C>, snapshot: Option<SnapshotData>) {
        match record {
            Record::Promise(ballot) => self.apply(Write::Promise(ballot)),
            Record::Votes {
                ballot,
                first,
                entries,
            } => self.apply(Write::Votes {
                ballot,
                first,
                entries: entries.into(),
            }),
            Record::Chosen { first, entries } => self.apply(Write::Chosen { first, entries }),
            Record::Commit(slot) => self.apply(Write::Commit(slot)),
            Record::Snapshot { index, membership } => {
                self.snapshot_taken(index, membership, snapshot);
            }
            Record::State { promised, commit } => {
                self.promise(promised);
                self.commit = self.commit.max(commit);
            }
        }
    }

    fn promise(&mut self, ballot: Ballot) {
        self.promised = self.promised.max(ballot);
    }

    fn vote(&mut self, slot: Slot, entry: LogEntry<C>) {
        if slot > self.snapshot_index {
            self.votes.insert(slot, entry);
        }
    }

    fn snapshot_taken(
        &mut self,
        index: Slot,
        membership: Option<Membership>,
        data: Option<SnapshotData>,
    ) {
        if index < self.snapshot_index {
            return;
        }
        self.snapshot_index = index;
        self.snapshot = data;
        self.snapshot_membership = membership;
        self.votes = self.votes.split_off(&(index + 1));
        self.commit = self.commit.max(index);
    }

    /// What a replica restarts from.
    pub fn durable(&self) -> Durable<C> {
        Durable {
            promised: self.promised,
            votes: self.votes.iter().map(|(&s, v)| (s, v.clone())).collect(),
            commit: self.commit,
            snapshot: self
                .snapshot
                .clone()
                .map(|data| (self.snapshot_index, data)),
            snapshot_membership: self.snapshot_membership.clone(),
        }
    }
}
