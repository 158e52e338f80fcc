//! The membership nemesis: changes the membership under every other fault, as operators
//! do, through the leader's `Node::reconfigure` (the server's path): adds a spare as a
//! learner, which then joins as a server's member does (told the configuration by a
//! member that has it), promotes a learner, removes a voter or a learner (which stops once
//! it applies its removal, as a server's does), and switches the quorum system. Spare ids
//! are used once: replacing a member is removing it and adding a fresh, empty one, and a
//! removed member never comes back.

use super::*;
use paxos::multi::Change;

/// Where a node slot stands in the membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Standing {
    /// A member (of the initial cluster, or joined).
    Member,
    /// A spare machine, never started.
    Spare,
    /// Added as a learner; starts once some member knows the configuration that has it.
    Joining {
        /// Give up (the change was lost) after this time.
        until: u64,
    },
    /// Removed: stopped for good.
    Removed,
}

/// How long a spare waits to be told it was added before the addition counts as lost.
const JOIN_PATIENCE_TICKS: u64 = 300;

impl World {
    /// One change, picked at random among those that apply, proposed at the leader.
    pub(super) fn change_membership(&mut self) {
        let Some(leader) = self.leading_node() else {
            return;
        };
        let Some(member) = self.nodes[leader].member.as_ref() else {
            return;
        };
        let current = member.replica().membership().current().clone();
        let mut changes = Vec::new();
        if let Some(spare) = self
            .nodes
            .iter()
            .position(|n| n.standing == Standing::Spare)
        {
            changes.push(Change::AddLearner(self.nodes[spare].id));
        }
        changes.extend(current.learners().iter().map(|&id| Change::Promote(id)));
        changes.extend(current.everyone().map(Change::Remove));
        changes.push(Change::SetQuorum(
            self.random_quorum(current.replicas().len()),
        ));
        let change = changes[self.pick(changes.len())];
        let mut outcome = Ok(());
        self.with_member(leader, |m, now| outcome = m.reconfigure(change, now));
        self.stats.membership_changes += 1;
        if outcome.is_err() {
            self.stats.membership_refused += 1;
            return;
        }
        self.note(leader, "reconfigure");
        if let Change::AddLearner(id) = change {
            if let Some(spare) = self.nodes.iter().position(|n| n.id == id) {
                let until = self.now + JOIN_PATIENCE_TICKS * TICK_US;
                self.nodes[spare].standing = Standing::Joining { until };
                self.schedule(5 * TICK_US, Event::Join(spare));
            }
        }
    }

    /// A running member that leads, if any.
    fn leading_node(&self) -> Option<usize> {
        self.nodes.iter().position(|n| {
            !n.paused && (n.member.as_ref()).is_some_and(|m| m.replica().role() == RoleKind::Leader)
        })
    }

    /// Majority, or a flexible system with quorums that meet, over `voters`; a grid when
    /// `voters` is the product of two numbers above one.
    fn random_quorum(&mut self, voters: usize) -> QuorumSpec {
        let mut specs = vec![QuorumSpec::Majority];
        for q2 in 1..=voters {
            specs.push(QuorumSpec::Flexible {
                q1: voters + 1 - q2,
                q2,
            });
        }
        for rows in 2..voters {
            if voters % rows == 0 && voters / rows > 1 {
                let cols = voters / rows;
                specs.push(QuorumSpec::Grid { rows, cols });
            }
        }
        specs[self.pick(specs.len())]
    }

    /// A spare that was added starts, told the configuration by a member that applied
    /// its addition (as a server's joining member asks one on its peer port).
    pub(super) fn join(&mut self, node: usize) {
        let Standing::Joining { until } = self.nodes[node].standing else {
            return;
        };
        let id = self.nodes[node].id;
        let told = self.nodes.iter().find_map(|n| {
            let current = n.member.as_ref()?.replica().membership().current();
            current.position(id).map(|_| current.clone())
        });
        match told {
            Some(told) if self.faults_on => {
                self.nodes[node].told = Some(told);
                self.nodes[node].standing = Standing::Member;
                self.stats.joins += 1;
                self.note(node, "join");
                self.boot(node);
            }
            // Not yet known anywhere: ask again, unless the addition was lost.
            None if self.now < until && self.faults_on => {
                self.schedule(5 * TICK_US, Event::Join(node));
            }
            _ => self.nodes[node].standing = Standing::Spare,
        }
    }

    /// A member that applied its own removal stops for good, as a server's does.
    pub(super) fn stop_if_removed(&mut self, node: usize) {
        let Some(member) = self.nodes[node].member.as_ref() else {
            return;
        };
        if !member.replica().removed() {
            return;
        }
        self.stats.removals += 1;
        self.note(node, "removed");
        self.nodes[node].crash();
        self.nodes[node].standing = Standing::Removed;
        self.nodes[node].watchers = watches::new_watchers(&self.options.controls);
        self.close_connections(node);
    }

    /// The next node slot after `after` (in turn) that is a member: where a client goes
    /// next, as a real client's endpoint list names the members (spares and removed
    /// members are not on it).
    pub(super) fn next_member(&self, after: usize) -> usize {
        let n = self.nodes.len();
        (1..=n)
            .map(|step| (after + step) % n)
            .find(|&i| self.nodes[i].standing == Standing::Member)
            .unwrap_or((after + 1) % n)
    }

    /// The slot of the node with id `id`.
    pub(super) fn node_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }
}
