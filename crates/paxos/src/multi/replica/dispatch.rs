//! Which role handles which message: the leader's, the candidate's and the follower's
//! own, and what every role answers as an acceptor and learner. `Replica::step` picks
//! the role; a handler for one role receives that role's state.

use super::*;

impl<C: Command, R: RngCore> Shared<C, R> {
    /// A leader's messages: acknowledgements, read-index requests and forwards are its
    /// own; a late answer to a catch-up it asked for as a follower is dropped (a leader
    /// learns what is chosen from its own quorum, and its window starts at its commit
    /// point); the rest it answers as any acceptor does.
    pub(super) fn step_leader(
        &mut self,
        leader: &mut Leader<C>,
        from: NodeId,
        sender: usize,
        message: Message<C>,
    ) {
        match message {
            Message::Accepted {
                ballot,
                first,
                last,
            } => self.on_accepted(leader, sender, ballot, first, last),
            Message::CatchUp { from: slot, .. } => {
                leader.heard_behind(sender, self.now);
                self.on_catch_up(from, slot);
            }
            Message::HeartbeatAck { ballot, seq } => {
                self.on_heartbeat_ack(leader, sender, ballot, seq)
            }
            Message::ReadIndex { boot, seq, .. } => {
                self.enqueue_read(leader, seq, Some((from, boot)))
            }
            Message::Forward {
                boot,
                seq,
                commands,
                ..
            } => self.on_forward(leader, sender, boot, seq, commands),
            Message::Chosen { .. } | Message::Snapshot { .. } => {}
            message => self.step_any(RoleKind::Leader, from, message),
        }
    }

    /// A candidate's messages: promises, and `Behind` at its ballot (a peer compacted
    /// what phase 1 needs); the rest it answers as any acceptor does. Says whether phase
    /// 1 completed.
    pub(super) fn step_candidate(
        &mut self,
        candidate: &mut Candidate<C>,
        from: NodeId,
        sender: usize,
        message: Message<C>,
    ) -> PhaseOne {
        match message {
            Message::Promise {
                ballot,
                from: slot,
                votes,
                next,
            } if ballot == candidate.ballot => {
                self.on_promise(candidate, from, sender, slot, votes, next)
            }
            Message::Behind { ballot, .. } if ballot == candidate.ballot => PhaseOne::Behind(from),
            message => {
                self.step_any(RoleKind::Candidate, from, message);
                PhaseOne::UnderWay
            }
        }
    }

    /// A follower's messages: acceptors' reports of their votes, which it learns chosen
    /// slots from; the rest as any acceptor and learner.
    pub(super) fn step_follower(&mut self, from: NodeId, sender: usize, message: Message<C>) {
        match message {
            Message::Accepted {
                ballot,
                first,
                last,
            } => self.learn_from_report(sender, ballot, first, last),
            message => self.step_any(RoleKind::Follower, from, message),
        }
    }

    /// What every role answers: phase 1 and 2 as an acceptor, heartbeats, read-index
    /// answers, catch-up. The rest is for another role and dropped: promises and
    /// `Behind` (a candidate's), acknowledgements and read-index requests (a leader's;
    /// the asker asks again), forwards (a leader's: forwarding again could loop between
    /// replicas with stale views; the client times out and retries), and nacks
    /// (`observe` stepped down if it mattered).
    pub(super) fn step_any(&mut self, role: RoleKind, from: NodeId, message: Message<C>) {
        match message {
            Message::Prepare {
                ballot,
                from: slot,
                log,
            } => self.on_prepare(from, ballot, slot, &log),
            Message::Accept {
                ballot,
                first,
                entries,
                commit,
            } => self.on_accept(role, ballot, first, entries, commit),
            Message::Heartbeat {
                ballot,
                commit,
                seq,
            } => self.on_heartbeat(role, ballot, commit, seq),
            Message::ReadIndexReply {
                boot, seq, index, ..
            } => self.on_read_index_reply(boot, seq, index),
            Message::CatchUp { from: slot, .. } => self.on_catch_up(from, slot),
            message @ (Message::Chosen { .. } | Message::Snapshot { .. }) => {
                self.on_log(from, message);
            }
            Message::Promise { .. }
            | Message::Behind { .. }
            | Message::Accepted { .. }
            | Message::HeartbeatAck { .. }
            | Message::ReadIndex { .. }
            | Message::Forward { .. }
            | Message::Nack { .. } => {}
            // `Replica::step` takes it before any role does.
            Message::Campaign { .. } => {}
        }
    }
}

/// What a promise did to a candidate's phase 1.
pub(super) enum PhaseOne {
    /// Still waiting for promises.
    UnderWay,
    /// A phase-1 quorum promised: lead.
    Complete,
    /// This peer holds what the candidate lacks (votes far beyond its log, or a
    /// snapshot past where phase 1 starts): step down and catch up from it first.
    Behind(NodeId),
}
