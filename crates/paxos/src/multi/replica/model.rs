//! What the exhaustive model check (`multi/model_check.rs`) sees of a replica: a hash of
//! everything that decides what the replica does next, and nothing that cannot. Tests only.

use std::hash::{Hash, Hasher};

use super::*;

impl<C: Command + Hash, R: RngCore + Hash> Replica<C, R> {
    /// Feeds `hasher` the replica's state, so that two replicas hash alike when no
    /// sequence of events can tell them apart. Left out or cut down, and why:
    /// - the timers (election, catch-up, read-index retry): a model ticks a replica only
    ///   through [`Replica::tick_with`], which sets every timer before the tick;
    /// - the clock (`now`, and when each unconfirmed heartbeat left): only leases,
    ///   snapshot sends and the turn of a catch-up read it; a model replica has no lease
    ///   or snapshot (asserted), and the model picks the turn ([`Replica::tick_with`]);
    /// - a follower's acceptor reports at a ballot other than the one promised, or at or
    ///   below the commit point: `align_reports` drops them before any use;
    /// - which heartbeat an acceptor acknowledged last, if below the confirmation floor
    ///   ([`Replica::confirmation_floor`]): no read will ever ask;
    /// - a leader's pending read identical to one before it in the queue (a follower's
    ///   read-index request delivered again): it is served with the first, and its reply
    ///   is the same message, which the model's network (a set) holds once;
    /// - the membership history, a function of the applied log;
    /// - a leader's record of its followers' progress and catch-up requests, and when it
    ///   began to lead, which only the answers to a promotion or a transfer read (the
    ///   model makes neither);
    /// - the actions not yet handed out (none between events: asserted), the members and
    ///   the options (the same for every state of one model).
    pub(crate) fn hash_model_state<H: Hasher>(&self, h: &mut H) {
        let Replica { role, shared } = self;
        let Shared {
            id,
            membership,
            options,
            rng,
            promised,
            highest_seen,
            log,
            applied,
            known_commit,
            leader,
            election: _,
            snapshot,
            incoming,
            catch_up_elapsed: _,
            now: _,
            grant,
            out,
            boot,
            forward_seq,
            forwards_seen,
            stranded,
            snapshot_sent,
            follower_reads,
            reports,
            chosen_membership,
            // A function of the applied entries, which the log holds (the model takes
            // no snapshots).
            history: _,
            // Read only by the driver (`Replica::removed`); the model removes no one's
            // process.
            removed_in: _,
            // Empty: the model's replicas never join.
            sources: _,
            #[cfg(feature = "negative-controls")]
            skips_phase1,
            #[cfg(feature = "negative-controls")]
            serves_reads_unapplied,
            #[cfg(feature = "negative-controls")]
            reads_at_commit_point,
            #[cfg(feature = "negative-controls")]
            phase1_in_current_only,
            #[cfg(feature = "negative-controls")]
                drops_snapshot_membership: _,
            #[cfg(feature = "negative-controls")]
                skips_vote_restriction: _,
        } = shared;
        assert!(
            options.lease.is_none() && grant.is_none(),
            "the model hash leaves out the clock, which leases read"
        );
        assert!(
            snapshot.is_none() && incoming.is_none() && snapshot_sent.iter().all(Option::is_none),
            "the model hash leaves out the clock, which snapshot sends read"
        );
        assert!(out.is_empty(), "actions left between events");
        assert!(
            chosen_membership.is_empty(),
            "membership entries left between events"
        );
        membership.hash(h);
        id.hash(h);
        rng.hash(h);
        (promised, highest_seen, log, applied, known_commit, leader).hash(h);
        match role {
            Role::Follower => 0u8.hash(h),
            Role::Candidate(candidate) => (1u8, candidate).hash(h),
            Role::Leader(l) => {
                2u8.hash(h);
                (l.ballot, l.first, &l.in_flight, &l.pending, &l.batch_ends).hash(h);
                l.retire_proposed.hash(h);
                (l.recovered_through, l.heartbeat_elapsed, l.commit_at_check).hash(h);
                let floor = self.confirmation_floor().unwrap_or(0);
                let acked = l
                    .acked_seq
                    .iter()
                    .map(|&seq| if seq < floor { 0 } else { seq });
                (l.seq, l.lease_until).hash(h);
                acked.for_each(|seq| seq.hash(h));
                for (i, read) in l.reads.iter().enumerate() {
                    let key = |r: &PendingRead| (r.id, r.index, r.seq, r.asker);
                    if !l.reads.iter().take(i).any(|r| key(r) == key(read)) {
                        read.hash(h);
                    }
                }
                let unconfirmed: Vec<u64> = l.sent_at.iter().map(|&(seq, _)| seq).collect();
                unconfirmed.hash(h);
            }
        }
        (boot, forward_seq, forwards_seen, stranded).hash(h);
        // Reports are read only at the ballot promised (which never falls while the
        // replica runs), and only above the commit point: `align_reports` drops the rest
        // before any use.
        if reports.ballot == *promised {
            let next = log.commit() + 1;
            let below = usize::try_from(next.saturating_sub(reports.first)).unwrap_or(usize::MAX);
            (reports.ballot, reports.first.max(next)).hash(h);
            reports.acks.len().saturating_sub(below).hash(h);
            reports
                .acks
                .iter()
                .skip(below)
                .for_each(|acks| acks.hash(h));
        } else {
            Reports::default().hash(h);
        }
        let reads = follower_reads;
        (&reads.waiting, reads.sent, reads.answered).hash(h);
        #[cfg(feature = "negative-controls")]
        (skips_phase1, serves_reads_unapplied, reads_at_commit_point).hash(h);
        #[cfg(feature = "negative-controls")]
        phase1_in_current_only.hash(h);
    }

    /// How many peers a catch-up may ask, in turn, by the clock: those a joining member
    /// was told of, or the current voters once a ballot of an unknown epoch was seen; 1
    /// when it asks the leader or no one, whatever the clock.
    pub(crate) fn catch_up_turns(&self) -> usize {
        let shared = &self.shared;
        if !shared.sources.is_empty() {
            shared.sources.len()
        } else if shared.highest_seen.epoch() > shared.membership.epoch() {
            shared.membership.current().replicas().len()
        } else {
            1
        }
    }

    /// A leader's last heartbeat number (`None` if it does not lead).
    pub(crate) fn heartbeat_seq(&self) -> Option<u64> {
        match &self.role {
            Role::Leader(leader) => Some(leader.seq),
            _ => None,
        }
    }

    /// For a leader, the lowest heartbeat a read may still wait for: its last heartbeat's
    /// (whether one is outstanding), or a pending read's. It never falls while the
    /// replica leads at its ballot (a new read waits for the next heartbeat), and with
    /// leases off, acknowledgements only ever answer "was heartbeat `seq` or a later one
    /// acknowledged?" for such a `seq`: an acknowledgement below the floor is as good as
    /// none, now and later.
    pub(crate) fn confirmation_floor(&self) -> Option<u64> {
        let Role::Leader(leader) = &self.role else {
            return None;
        };
        leader.reads.iter().map(|r| r.seq).chain([leader.seq]).min()
    }

    /// One tick, at which exactly `timer` expires (`None`: no timer does). The model
    /// check decides when timers fire rather than count ticks: time is asynchronous, so
    /// any timer may expire at any moment, and safety must not depend on when (leases,
    /// which do, are off). A tick at which several timers expire is the ticks at which
    /// they expire one by one: an election starts a campaign, after which no catch-up or
    /// read-index retry happens; those two only send.
    ///
    /// A replica that asks its peers in turn (`Shared::catch_up_if_behind`) picks the
    /// peer by the clock; the ticks at which nothing happens, which a model leaves out,
    /// still move the clock, so the catch-up timer of [`Timer::CatchUp`]`(turn)` fires
    /// at the first time from now that picks turn `turn` (see
    /// [`Replica::catch_up_turns`]).
    pub(crate) fn tick_with(&mut self, timer: Option<Timer>) -> Vec<Action<C>> {
        let threshold = self.shared.options.heartbeat_ticks.saturating_mul(2);
        let set = |expire: bool| if expire { threshold - 1 } else { 0 };
        let turns = self.catch_up_turns() as u64;
        let shared = &mut self.shared;
        shared
            .election
            .expire_at_next_tick(timer == Some(Timer::Election));
        let catch_up = match timer {
            Some(Timer::CatchUp(turn)) => Some(turn as u64 % turns),
            _ => None,
        };
        if let Some(turn) = catch_up {
            while (shared.now + 1) % turns != turn {
                shared.now += 1;
            }
        }
        shared.catch_up_elapsed = set(catch_up.is_some());
        shared.follower_reads.unanswered_ticks = set(timer == Some(Timer::ReadIndex));
        self.tick()
    }
}

/// A timer of a replica that does not lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// No leader heard from: campaign.
    Election,
    /// Behind the known commit point: ask the leader for the chosen entries; or a ballot
    /// of an unknown epoch seen: ask a peer, the one of this turn (below
    /// [`Replica::catch_up_turns`]).
    CatchUp(usize),
    /// A read-index request unanswered: send it again.
    ReadIndex,
}
