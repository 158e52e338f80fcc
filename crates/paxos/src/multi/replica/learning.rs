//! Learning what is chosen: from the leader's commit point, or from the acceptors'
//! reports (a follower as a Paxos learner); applying it in slot order. Learning is a
//! follower's: a leader knows what is chosen from its own quorum, and a candidate hears
//! nothing at its own ballot but its own messages, so the callers (`step_follower`, and
//! the acceptor's handlers for a follower) are the only ones.

use super::*;

impl<C: Command, R: RngCore> Shared<C, R> {
    /// A follower counts an acceptor's report of votes at the ballot it follows. The
    /// leader of that ballot proposed one value per slot, which is this follower's vote
    /// there, so a slot a phase-2 quorum reported is chosen with the value held here
    /// (slots reported as already chosen count too: whatever the leader proposed for a
    /// chosen slot is the chosen value). Commits as far as every slot has such a quorum
    /// and a vote here at that ballot.
    pub(super) fn learn_from_report(
        &mut self,
        acceptor: usize,
        ballot: Ballot,
        first: Slot,
        last: Slot,
    ) {
        // Reports are kept by roster position, which only the current epoch's
        // configuration gives a meaning to: a report at a ballot of another epoch (one
        // this replica has yet to learn) is not kept, or it would be counted later with
        // positions that moved.
        if ballot != self.promised || ballot.epoch() != self.membership.epoch() {
            return;
        }
        self.align_reports(ballot);
        let commit = self.log.commit();
        let reports = &mut self.reports;
        // Bounded as votes are: nothing beyond what an acceptor would take.
        let end = last.min(commit.saturating_add(self.options.gap_max_slots));
        for slot in first.max(reports.first)..=end {
            let at = distance(reports.first, slot);
            if at >= reports.acks.len() {
                reports.acks.resize(at + 1, AcceptorSet::EMPTY);
            }
            reports.acks[at].insert(acceptor);
        }
        self.commit_reported(ballot);
    }

    /// Commits every slot past the commit point that a phase-2 quorum reported at
    /// `ballot` and that holds a vote here at `ballot` (a slot reported before its accept
    /// arrived waits for it, rather than raise the known commit point and fetch it).
    ///
    /// The quorum must include the leader's own report. A client may hear of a write
    /// this way before the leader knows it chosen, so the leader's reads must wait for
    /// every slot it gave out ([`Replica::enqueue_read`]); a leader that reports its
    /// votes to followers is one that does. A leader that does not (the option off, or an
    /// older version during an upgrade) is never overtaken.
    pub(super) fn commit_reported(&mut self, ballot: Ballot) {
        // Reports are kept by roster position, which is the current configuration's own
        // order: only a ballot of the current epoch is counted with them.
        if ballot != self.promised || ballot.epoch() != self.membership.epoch() {
            return;
        }
        let Some(leader) = self.membership.position(ballot.node) else {
            return;
        };
        self.align_reports(ballot);
        let commit = self.log.commit();
        let quorum = self.membership.current().quorum();
        let mut through = commit;
        for acks in &self.reports.acks {
            let voted_here = self
                .log
                .get(through + 1)
                .is_some_and(|e| e.ballot == ballot);
            if !voted_here || !acks.contains(leader) || !quorum.is_phase2_quorum(*acks) {
                break;
            }
            through += 1;
        }
        if through > commit {
            self.learn_commit(ballot, through);
        }
    }

    /// Makes the reports describe `ballot` from the slot after the commit point on.
    pub(super) fn align_reports(&mut self, ballot: Ballot) {
        let next = self.log.commit() + 1;
        let reports = &mut self.reports;
        if reports.ballot != ballot {
            reports.acks.clear();
            reports.ballot = ballot;
            reports.first = next;
        } else if reports.first < next {
            let behind = distance(reports.first, next);
            reports.acks.drain(..behind.min(reports.acks.len()));
            reports.first = next;
        }
    }

    /// The leader of `ballot` says every slot through `commit` is chosen. Our vote at a
    /// slot is the chosen entry if we hold it at that same ballot (a leader proposes one
    /// entry per slot per ballot); anything else must be fetched.
    pub(super) fn learn_commit(&mut self, ballot: Ballot, commit: Slot) {
        if ballot != self.promised {
            return;
        }
        self.known_commit = self.known_commit.max(commit);
        let start = self.log.commit();
        let mut through = start;
        while through < commit
            && self
                .log
                .get(through + 1)
                .is_some_and(|e| e.ballot == ballot)
        {
            through += 1;
        }
        if through > start {
            self.log.commit_through(through);
            self.out.push(Action::CommitHint(through));
            self.apply_committed();
        }
    }

    pub(super) fn apply_committed(&mut self) {
        while self.applied < self.log.commit() {
            let slot = self.applied + 1;
            let Some(entry) = self.log.get(slot).map(|e| e.entry.clone()) else {
                break;
            };
            self.note_membership(slot, &entry);
            self.out.push(Action::Apply { slot, entry });
            self.applied = slot;
        }
        if !self.follower_reads.waiting.is_empty() {
            self.serve_follower_reads();
        }
    }
}

/// What a follower heard from acceptors about the slots above its commit point, at the
/// ballot it follows (with [`Options::learn_from_acceptors`]).
#[derive(Clone, Debug, Default, Hash)]
pub(super) struct Reports {
    pub(super) ballot: Ballot,
    /// `acks[0]` is this slot.
    pub(super) first: Slot,
    /// Per slot, the acceptors that reported a vote for it at `ballot` (or it chosen).
    pub(super) acks: VecDeque<AcceptorSet>,
}
