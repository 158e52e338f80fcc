//! The scripted leader crash (`Options::crash_leader_at_tick`) and what the failover cost:
//! how long until the cluster committed again under a new leader, and the messages and
//! bytes the members sent each other meanwhile.
//!
//! From the tick named on, the leader crashes at the first moment it has slots in flight
//! (proposed, not yet known chosen): the failover then has a log tail to recover, the
//! case where Paxos's promises carry votes and Raft's vote restriction decides who may
//! win.

use super::*;

/// What one failover cost, from the leader's crash to the first commit after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failover {
    /// When the leader crashed (virtual µs).
    pub crashed_us: u64,
    /// The crashed leader's ballot.
    pub ballot: Ballot,
    /// How long until a member leading at a higher ballot had moved its commit point past
    /// every commit point known at the crash (virtual µs); `None` if that never happened
    /// before the run ended.
    pub first_commit_us: Option<u64>,
    /// Messages between members (not those a member sends itself) over that time.
    pub messages: u64,
    /// Their bytes on the wire: the peer protocol's frames (`server::wire`).
    pub bytes: u64,
    /// Times a member became leader over that time.
    pub elections: u64,
}

/// The scripted crash: waiting for its tick, armed, or done and measured.
#[derive(Debug, Default)]
pub(super) enum Scripted {
    /// No crash yet.
    #[default]
    Waiting,
    /// The tick came: the leader crashes once it has slots in flight.
    Armed,
    /// The leader crashed; its failover is measured.
    Crashed(Probe),
}

/// The probe while a failover is measured.
#[derive(Debug)]
pub(super) struct Probe {
    pub(super) failover: Failover,
    /// The highest commit point any member knew at the crash.
    commit: Slot,
    /// Whether the first commit was seen (counting stops).
    done: bool,
}

/// A member's ballot as leader, if it leads.
fn leading(node: &Node) -> Option<(Ballot, Slot)> {
    let replica = node.member.as_ref()?.replica();
    (replica.role() == RoleKind::Leader).then(|| (replica.promised(), replica.commit()))
}

impl Probe {
    /// What was measured.
    pub(super) fn failover(&self) -> Failover {
        self.failover
    }
}

impl World {
    /// The scripted crash's tick came.
    pub(super) fn arm_leader_crash(&mut self) {
        if matches!(self.scripted, Scripted::Waiting) {
            self.scripted = Scripted::Armed;
        }
    }

    /// After each event: once armed, the member leading at the highest ballot crashes as
    /// soon as it has slots in flight (its restart waits for the heal, so it plays no
    /// part in the failover); then, has a new leader committed?
    pub(super) fn after_event(&mut self) {
        match &self.scripted {
            Scripted::Waiting => {}
            Scripted::Armed => self.crash_leader_if_in_flight(),
            Scripted::Crashed(_) => self.probe_commit(),
        }
    }

    fn crash_leader_if_in_flight(&mut self) {
        let leader = (0..self.nodes.len())
            .filter_map(|i| leading(&self.nodes[i]).map(|(ballot, _)| (ballot, i)))
            .max();
        let Some((ballot, node)) = leader else {
            return;
        };
        let in_flight = self.nodes[node]
            .member
            .as_ref()
            .is_some_and(|m| m.replica().in_flight().0 > 0);
        if !in_flight {
            return;
        }
        let commit = self
            .nodes
            .iter()
            .filter_map(|n| n.member.as_ref().map(|m| m.replica().commit()))
            .max()
            .unwrap_or(0);
        self.scripted = Scripted::Crashed(Probe {
            failover: Failover {
                crashed_us: self.now,
                ballot,
                first_commit_us: None,
                messages: 0,
                bytes: 0,
                elections: 0,
            },
            commit,
            done: false,
        });
        let heal_at = self.options.duration_ticks * TICK_US;
        self.crash_for(node, heal_at.saturating_sub(self.now).max(TICK_US));
    }

    /// Has a new leader committed?
    fn probe_commit(&mut self) {
        let Scripted::Crashed(probe) = &mut self.scripted else {
            return;
        };
        if probe.done {
            return;
        }
        let committed = self
            .nodes
            .iter()
            .filter_map(leading)
            .any(|(ballot, commit)| ballot > probe.failover.ballot && commit > probe.commit);
        if committed {
            probe.done = true;
            probe.failover.first_commit_us = Some(self.now - probe.failover.crashed_us);
        }
    }

    /// A message from one member to another is on its way.
    pub(super) fn probe_send(&mut self, message: &Message<Payload>) {
        let Some(probe) = self.probe_mut() else {
            return;
        };
        let mut frame = Vec::new();
        server::wire::frame(&mut frame, |out| {
            server::wire::encode_message(message, out);
        });
        probe.failover.messages += 1;
        probe.failover.bytes += frame.len() as u64;
    }

    /// A member became leader.
    pub(super) fn probe_election(&mut self) {
        if let Some(probe) = self.probe_mut() {
            probe.failover.elections += 1;
        }
    }

    /// The failover being measured, until its first commit.
    fn probe_mut(&mut self) -> Option<&mut Probe> {
        match &mut self.scripted {
            Scripted::Crashed(probe) if !probe.done => Some(probe),
            _ => None,
        }
    }
}
