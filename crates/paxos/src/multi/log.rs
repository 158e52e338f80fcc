//! A replica's log: its votes per slot, the chosen prefix, and where compaction cut it.

use std::collections::VecDeque;

use super::message::{Command, LogEntry, LogRun, Slot};
use crate::ballot::Ballot;

/// Votes from slot `first` on; slots up to `commit` are chosen and hold the chosen entry
/// (those below `first` live only in the application's snapshot).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Log<C> {
    /// Slots through `compacted` were released after a snapshot covered them.
    compacted: Slot,
    /// `slots[i]` is slot `compacted + 1 + i`; `None` is a slot without a vote.
    slots: VecDeque<Option<LogEntry<C>>>,
    /// Every slot through `commit` is chosen, and this log holds its chosen entry.
    commit: Slot,
}

impl<C: Clone> Log<C> {
    pub(crate) fn new() -> Log<C> {
        Log {
            compacted: 0,
            slots: VecDeque::new(),
            commit: 0,
        }
    }

    pub(crate) fn compacted(&self) -> Slot {
        self.compacted
    }

    pub(crate) fn commit(&self) -> Slot {
        self.commit
    }

    /// The highest slot with a vote (or the compaction point if none).
    pub(crate) fn last(&self) -> Slot {
        self.compacted + self.slots.len() as u64
    }

    fn index(&self, slot: Slot) -> Option<usize> {
        let offset = slot.checked_sub(self.compacted + 1)?;
        usize::try_from(offset).ok()
    }

    pub(crate) fn get(&self, slot: Slot) -> Option<&LogEntry<C>> {
        self.slots.get(self.index(slot)?)?.as_ref()
    }

    /// Records a vote. Slots at or below the commit point are chosen and never change;
    /// the caller bounds how far beyond the log a slot may be.
    pub(crate) fn set(&mut self, slot: Slot, entry: LogEntry<C>) {
        if slot <= self.commit {
            return;
        }
        let Some(index) = self.index(slot) else {
            return;
        };
        if index >= self.slots.len() {
            self.slots.resize(index + 1, None);
        }
        self.slots[index] = Some(entry);
    }

    /// Declares every slot through `slot` chosen; each must hold its chosen entry.
    pub(crate) fn commit_through(&mut self, slot: Slot) {
        debug_assert!((self.commit + 1..=slot).all(|s| self.get(s).is_some()));
        self.commit = self.commit.max(slot);
    }

    /// Releases every slot through `index`, which a durable snapshot covers. If the
    /// snapshot is ahead of the log (installed from a peer), the log restarts after it.
    pub(crate) fn compact(&mut self, index: Slot) {
        if index <= self.compacted {
            return;
        }
        if index >= self.last() {
            self.slots.clear();
        } else {
            let drop = self.index(index).map_or(0, |i| i + 1);
            self.slots.drain(..drop);
        }
        // The slots' buffer grew to a whole snapshot interval (100,000 slots by default,
        // megabytes); once a snapshot released them, keep room for what is left.
        self.slots.shrink_to_fit();
        self.compacted = index;
        self.commit = self.commit.max(index);
    }
}

impl<C: Clone> Log<C> {
    /// The log from `from` to its last vote as runs of one ballot ([`Ballot::ZERO`] for
    /// slots without a vote), at most `max` of them: what a Raft candidate's prepare
    /// describes. Past `max` runs it stops: claiming less is safe (voters refuse more).
    pub(crate) fn runs_from(&self, from: Slot, max: usize) -> Vec<LogRun> {
        let mut runs: Vec<LogRun> = Vec::new();
        for slot in from.max(self.compacted + 1)..=self.last() {
            let ballot = self.get(slot).map_or(Ballot::ZERO, |vote| vote.ballot);
            let full = runs.len() == max;
            match runs.last_mut() {
                Some(run) if run.ballot == ballot => run.last = slot,
                _ if full => break,
                _ => runs.push(LogRun { last: slot, ballot }),
            }
        }
        runs
    }

    /// Raft's vote restriction, slot by slot: whether a candidate whose log from `from`
    /// on is `runs` holds, at every slot where this log holds a vote, a vote at a ballot
    /// at least as high. Runs are read in order, each covering the slots after the one
    /// before it; a slot past the last run is not covered.
    pub(crate) fn covered_by(&self, from: Slot, runs: &[LogRun]) -> bool {
        let mut runs = runs.iter().peekable();
        for slot in from.max(self.compacted + 1)..=self.last() {
            let Some(vote) = self.get(slot) else {
                continue;
            };
            while runs.next_if(|run| run.last < slot).is_some() {}
            let covered = runs
                .peek()
                .is_some_and(|run| run.ballot != Ballot::ZERO && run.ballot >= vote.ballot);
            if !covered {
                return false;
            }
        }
        true
    }
}

/// How much one promise chunk or catch-up reply may carry: at most `entries` entries and,
/// past the first entry, about `bytes` bytes (so a message always makes progress, and a
/// batch of large commands cannot outgrow what a transport accepts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limit {
    pub(crate) entries: usize,
    pub(crate) bytes: usize,
}

impl Limit {
    /// Whether a chunk holding `count` entries of `bytes` bytes can take one of `size`.
    fn admits(&self, count: usize, bytes: usize, size: usize) -> bool {
        count < self.entries && (count == 0 || bytes + size <= self.bytes)
    }
}

impl<C: Command> Log<C> {
    /// Votes from `from` on, up to `limit`; and the slot to continue from, if more.
    pub(crate) fn votes_from(
        &self,
        from: Slot,
        limit: Limit,
    ) -> (Vec<(Slot, LogEntry<C>)>, Option<Slot>) {
        let mut votes = Vec::new();
        let mut bytes = 0;
        let mut slot = from.max(self.compacted + 1);
        while slot <= self.last() {
            if let Some(entry) = self.get(slot) {
                let size = entry.entry.size();
                if !limit.admits(votes.len(), bytes, size) {
                    return (votes, Some(slot));
                }
                bytes += size;
                votes.push((slot, entry.clone()));
            }
            slot += 1;
        }
        (votes, None)
    }

    /// Chosen entries from `from` on, up to `limit`.
    pub(crate) fn chosen_from(&self, from: Slot, limit: Limit) -> Vec<LogEntry<C>> {
        let mut chosen = Vec::new();
        let mut bytes = 0;
        for slot in from..=self.commit {
            let Some(entry) = self.get(slot) else { break };
            let size = entry.entry.size();
            if !limit.admits(chosen.len(), bytes, size) {
                break;
            }
            bytes += size;
            chosen.push(entry.clone());
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multi::message::Entry;
    use crate::{Ballot, NodeId};

    fn limit(entries: usize) -> Limit {
        Limit {
            entries,
            bytes: usize::MAX,
        }
    }

    #[test]
    fn chunks_are_bounded_in_bytes_but_always_carry_one_entry() {
        let mut log: Log<Vec<u8>> = Log::new();
        for slot in 1..=6 {
            let entry = Entry::Command(vec![0; 400]);
            log.set(
                slot,
                LogEntry {
                    ballot: Ballot::new(1, NodeId(1)),
                    entry,
                },
            );
        }
        log.commit_through(6);
        let small = Limit {
            entries: 100,
            bytes: 1000,
        };
        let (votes, next) = log.votes_from(1, small);
        assert_eq!((votes.len(), next), (2, Some(3)));
        assert_eq!(log.chosen_from(3, small).len(), 2);
        let tiny = Limit {
            entries: 100,
            bytes: 10,
        };
        assert_eq!(
            log.chosen_from(1, tiny).len(),
            1,
            "one entry even if larger than the limit"
        );
        assert_eq!(log.votes_from(1, tiny).0.len(), 1);
    }

    fn vote(round: u64, value: u64) -> LogEntry<u64> {
        LogEntry {
            ballot: Ballot::new(round, NodeId(1)),
            entry: Entry::Command(value),
        }
    }

    #[test]
    fn holes_are_empty_and_votes_can_be_replaced_until_chosen() {
        let mut log = Log::new();
        log.set(3, vote(1, 30));
        assert_eq!(log.last(), 3);
        assert_eq!(log.get(1), None);
        log.set(1, vote(1, 10));
        log.set(1, vote(2, 11));
        assert_eq!(log.get(1), Some(&vote(2, 11)));
        log.commit_through(1);
        log.set(1, vote(3, 12));
        assert_eq!(
            log.get(1),
            Some(&vote(2, 11)),
            "a chosen slot never changes"
        );
    }

    #[test]
    fn votes_come_in_chunks() {
        let mut log = Log::new();
        for slot in [1, 2, 4, 5] {
            log.set(slot, vote(1, slot));
        }
        let (first, next) = log.votes_from(1, limit(2));
        assert_eq!(first, vec![(1, vote(1, 1)), (2, vote(1, 2))]);
        assert_eq!(
            next,
            Some(4),
            "continue from the next vote (slot 3 has none)"
        );
        let (rest, next) = log.votes_from(3, limit(2));
        assert_eq!(rest, vec![(4, vote(1, 4)), (5, vote(1, 5))]);
        assert_eq!(next, None);
    }

    #[test]
    fn compaction_releases_slots_and_chosen_reads_stop_at_commit() {
        let mut log = Log::new();
        for slot in 1..=5 {
            log.set(slot, vote(1, slot));
        }
        log.commit_through(4);
        assert_eq!(log.chosen_from(2, limit(10)).len(), 3);
        assert_eq!(log.chosen_from(2, limit(2)).len(), 2);
        log.compact(2);
        assert_eq!(log.get(2), None);
        assert_eq!(log.last(), 5, "compaction keeps the votes above it");
        assert_eq!(log.get(3), Some(&vote(1, 3)));
        assert_eq!(log.votes_from(1, limit(10)).0.len(), 3);
        log.compact(9);
        assert_eq!((log.compacted(), log.commit(), log.last()), (9, 9, 9));
    }

    /// A log with votes in slots 1 to `last`, chosen through `commit`.
    fn log_of(last: Slot, commit: Slot) -> Log<u64> {
        let mut log = Log::new();
        for slot in 1..=last {
            log.set(slot, vote(1, slot));
        }
        log.commit_through(commit);
        log
    }

    #[test]
    fn compaction_returns_the_released_slots_memory() {
        let mut log = log_of(10_000, 10_000);
        log.compact(9_990);
        assert_eq!(log.last(), 10_000);
        assert!(
            log.slots.capacity() < 100,
            "{} slots kept",
            log.slots.capacity()
        );
    }

    #[test]
    fn compacting_most_of_the_log_keeps_the_votes_above_the_snapshot() {
        let mut log = log_of(10, 6);
        log.compact(6);
        assert_eq!(log.last(), 10);
        assert_eq!(log.get(7), Some(&vote(1, 7)));
    }
}
