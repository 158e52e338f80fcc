//! Membership over time: the configurations a replica must respect, by epoch.
//!
//! A configuration ([`Members`]) changes only through a change chosen in the log, which
//! starts a new **epoch**; every ballot belongs to one epoch ([`crate::Ballot::epoch`]) and
//! uses that epoch's configuration for phase 2. A ballot's phase 1 must meet every phase-2
//! quorum that may have chosen a value at an earlier ballot, and earlier ballots may belong
//! to earlier epochs: so phase 1 needs a phase-1 quorum of **every active configuration**,
//! the current one and each older one not yet retired. Each configuration's own quorum
//! system makes its phase-1 and phase-2 quorums meet; no two configurations' quorums ever
//! need to (as in Vertical Paxos), which is why any two safe quorum systems may follow one
//! another. An old configuration is retired once a leader of a later epoch has finished
//! phase 1 with it and made everything that phase 1 found chosen in the new one
//! (`docs/PROTOCOL.md`, "Reconfiguration").
//!
//! A replica keeps what it knows of each peer by its position in the **roster**: the
//! current configuration's members in their own order (voters, then learners), then the
//! members of older active configurations that the current one dropped. With one active
//! configuration the roster is that configuration, position for position.

use std::fmt;
use std::sync::Arc;

use crate::node::{AcceptorSet, NodeId, ACCEPTORS_MAX};
use crate::quorum::{QuorumError, QuorumSpec, QuorumSystem};
use crate::synod::ConfigError;

use super::config::Members;

/// The active configurations, oldest first; the last is current.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Membership {
    /// The epoch of `configs[0]`; the others follow one epoch apart.
    first_epoch: u64,
    /// Never empty.
    configs: Vec<Arc<Members>>,
    /// See [`Membership::roster`]; kept, since every message asks for a position in it.
    roster: Vec<NodeId>,
    /// The epoch of a configuration a joining member was told of rather than learned
    /// from the log ([`Membership::told`]); it settles once that epoch is retired.
    told: Option<u64>,
}

/// One change to a configuration, as an operator asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Add a voter.
    AddVoter(NodeId),
    /// Add a learner.
    AddLearner(NodeId),
    /// Make a learner a voter.
    Promote(NodeId),
    /// Remove a voter or a learner.
    Remove(NodeId),
    /// Use another quorum system over the same voters.
    SetQuorum(QuorumSpec),
}

/// Why a change was refused. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeError {
    /// The node is a member already.
    AlreadyMember(NodeId),
    /// The node is not a member.
    NotMember(NodeId),
    /// Only a learner can be promoted.
    NotLearner(NodeId),
    /// The last voter cannot be removed: nothing could be chosen after.
    LastVoter,
    /// The quorum system does not fit the new voters, or is unsafe.
    Unsafe(QuorumError),
    /// The members that are up would not form the quorums of the old and new
    /// configurations, so the cluster could not choose anything after the change.
    Unhealthy,
    /// The change was made against epoch `base`, but another change came first.
    Stale {
        /// The epoch the change was based on.
        base: u64,
        /// The current epoch.
        current: u64,
    },
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeError::AlreadyMember(id) => write!(f, "{id:?} is a member already"),
            ChangeError::NotMember(id) => write!(f, "{id:?} is not a member"),
            ChangeError::NotLearner(id) => write!(f, "{id:?} is not a learner"),
            ChangeError::LastVoter => write!(f, "the last voter cannot be removed"),
            ChangeError::Unsafe(e) => write!(f, "unsafe quorum system: {e}"),
            ChangeError::Unhealthy => {
                write!(
                    f,
                    "too few members are up to form the quorums after the change"
                )
            }
            ChangeError::Stale { base, current } => write!(
                f,
                "the change was made against epoch {base}, but epoch {current} came first"
            ),
        }
    }
}

impl std::error::Error for ChangeError {}

impl Membership {
    /// The initial configuration, epoch 0.
    pub fn new(members: Arc<Members>) -> Membership {
        let roster = members.everyone().collect();
        Membership {
            first_epoch: 0,
            configs: vec![members],
            roster,
            told: None,
        }
    }

    /// The configuration a member joining an existing cluster was told of (what `member
    /// add` printed), standing for epoch 0 until the log's changes are replayed over it.
    /// It may not be the configuration epoch 0 had, so a replica must not campaign on it:
    /// the membership is not [settled](Membership::is_settled) until the log has retired
    /// it.
    pub fn told(members: Arc<Members>) -> Membership {
        Membership {
            told: Some(0),
            ..Membership::new(members)
        }
    }

    /// A membership rebuilt from what [`Membership::first_epoch`],
    /// [`Membership::active`] and [`Membership::told_epoch`] said of one (as storage and
    /// the peer protocol carry it with a snapshot); `None` if it is not one a replica can
    /// hold: no configuration, more than two active (a change waits for the one before
    /// it to retire), an epoch a ballot cannot carry (32 bits), or more members in all
    /// than an [`AcceptorSet`] counts.
    pub fn from_parts(
        first_epoch: u64,
        configs: Vec<Arc<Members>>,
        told: Option<u64>,
    ) -> Option<Membership> {
        if configs.is_empty() || configs.len() > 2 {
            return None;
        }
        let last = first_epoch.checked_add(configs.len() as u64 - 1)?;
        if last > u64::from(u32::MAX) {
            return None;
        }
        let mut membership = Membership {
            first_epoch,
            configs,
            roster: Vec::new(),
            told,
        };
        membership.roster = membership.compute_roster();
        (membership.roster.len() <= ACCEPTORS_MAX).then_some(membership)
    }

    /// The epoch of the oldest active configuration.
    pub fn first_epoch(&self) -> u64 {
        self.first_epoch
    }

    /// The epoch of a configuration that was told rather than learned, if any (see
    /// [`Membership::told`]); it may be retired already.
    pub fn told_epoch(&self) -> Option<u64> {
        self.told
    }

    /// Whether every active configuration was learned from the log (none was only told).
    pub fn is_settled(&self) -> bool {
        self.told.is_none_or(|epoch| self.first_epoch > epoch)
    }

    /// Whether an older configuration is still active: a change is under way.
    pub fn is_changing(&self) -> bool {
        self.configs.len() > 1
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.first_epoch + self.configs.len() as u64 - 1
    }

    /// The current configuration.
    pub fn current(&self) -> &Arc<Members> {
        let last = self.configs.len() - 1;
        &self.configs[last]
    }

    /// The configuration of `epoch`, if it is active.
    pub fn get(&self, epoch: u64) -> Option<&Arc<Members>> {
        let at = usize::try_from(epoch.checked_sub(self.first_epoch)?).ok()?;
        self.configs.get(at)
    }

    /// The active configurations with their epochs, oldest first.
    pub fn active(&self) -> impl Iterator<Item = (u64, &Arc<Members>)> {
        (self.first_epoch..).zip(&self.configs)
    }

    /// The configuration `change` makes of the current one, refused if it breaks a rule
    /// or if the members `up` would not form a phase-1 quorum of the current configuration
    /// and phase-1 and phase-2 quorums of the new one (etcd's strict reconfiguration
    /// check, for any quorum system). A member being removed does not count as up: it
    /// stops once it applies its removal.
    pub fn changed(
        &self,
        change: Change,
        up: impl Fn(NodeId) -> bool,
    ) -> Result<Members, ChangeError> {
        let current = self.current();
        let mut voters = current.replicas().to_vec();
        let mut learners = current.learners().to_vec();
        let mut spec = current.spec();
        let member = |id| current.position(id).is_some();
        match change {
            Change::AddVoter(id) | Change::AddLearner(id) if member(id) => {
                return Err(ChangeError::AlreadyMember(id))
            }
            Change::AddVoter(id) => voters.push(id),
            Change::AddLearner(id) => learners.push(id),
            Change::Promote(id) if !member(id) => return Err(ChangeError::NotMember(id)),
            Change::Promote(id) if current.is_voter(id) => return Err(ChangeError::NotLearner(id)),
            Change::Promote(id) => {
                learners.retain(|&l| l != id);
                voters.push(id);
            }
            Change::Remove(id) if !member(id) => return Err(ChangeError::NotMember(id)),
            Change::Remove(id) if voters == [id] => return Err(ChangeError::LastVoter),
            Change::Remove(id) => {
                voters.retain(|&v| v != id);
                learners.retain(|&l| l != id);
            }
            Change::SetQuorum(new) => spec = new,
        }
        // The old and new members together must fit the sets acknowledgements are
        // counted in while both configurations are active.
        let together = current
            .everyone()
            .chain(voters.iter().chain(&learners).copied())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if together > ACCEPTORS_MAX {
            let count = together;
            return Err(ChangeError::Unsafe(QuorumError::TooManyAcceptors { count }));
        }
        let next = Members::with_learners(voters, learners, spec).map_err(|e| match e {
            ConfigError::Quorum(e) => ChangeError::Unsafe(e),
            ConfigError::DuplicateNode(id) => ChangeError::AlreadyMember(id),
            _ => ChangeError::Unsafe(QuorumError::NoAcceptors),
        })?;
        // A removed member stops once it applies its removal: the old configuration's
        // phase-1 quorum, which the next leader needs, must not count on it.
        let leaving = match change {
            Change::Remove(id) => Some(id),
            _ => None,
        };
        let up = |id| Some(id) != leaving && up(id);
        let old_up = up_set(current, &up);
        let new_up = up_set(&next, &up);
        // A single voter may take a second one that has not started yet, as etcd allows:
        // the only way to grow one member to more; the cluster waits for the new one.
        let growing_one = current.replicas().len() == 1 && matches!(change, Change::AddVoter(_));
        let healthy = current.quorum().is_phase1_quorum(old_up)
            && (growing_one
                || next.quorum().is_phase1_quorum(new_up)
                    && next.quorum().is_phase2_quorum(new_up));
        if !healthy {
            return Err(ChangeError::Unhealthy);
        }
        Ok(next)
    }

    /// A change chosen in the log, made against epoch `base`, takes effect: `next` is the
    /// configuration of a new epoch (returned). Refused, changing nothing, if `base` is
    /// not the current epoch: another change was chosen first, and this one was checked
    /// against a configuration that no longer holds.
    pub fn adopt(&mut self, base: u64, next: Arc<Members>) -> Result<u64, ChangeError> {
        let current = self.epoch();
        if base != current {
            return Err(ChangeError::Stale { base, current });
        }
        self.configs.push(next);
        self.roster = self.compute_roster();
        Ok(current + 1)
    }

    /// Retires every configuration of an epoch before `epoch` (never the current one).
    pub fn retire_before(&mut self, epoch: u64) {
        let epoch = epoch.min(self.epoch());
        if let Some(drop) = epoch.checked_sub(self.first_epoch) {
            let drop = usize::try_from(drop).unwrap_or(usize::MAX);
            self.configs.drain(..drop.min(self.configs.len() - 1));
            self.first_epoch = epoch.max(self.first_epoch);
            self.roster = self.compute_roster();
        }
    }

    /// Every member a replica keeps track of: the current configuration's members in
    /// order, then the members of older active configurations it dropped.
    pub fn roster(&self) -> &[NodeId] {
        &self.roster
    }

    fn compute_roster(&self) -> Vec<NodeId> {
        let mut roster: Vec<NodeId> = self.current().everyone().collect();
        for (_, config) in self.active() {
            for id in config.everyone() {
                if !roster.contains(&id) {
                    roster.push(id);
                }
            }
        }
        roster
    }

    /// The position of `id` in the [`Membership::roster`].
    pub fn position(&self, id: NodeId) -> Option<usize> {
        self.roster.iter().position(|&r| r == id)
    }

    /// Whether `id` is a voter of some active configuration: only those may lead.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.configs.iter().any(|c| c.is_voter(id))
    }

    /// Whether the roster positions in `promised` hold a phase-1 quorum of every active
    /// configuration.
    pub fn is_phase1_quorum(&self, promised: AcceptorSet) -> bool {
        let roster = &self.roster;
        self.configs.iter().all(|config| {
            let set: AcceptorSet = config
                .replicas()
                .iter()
                .enumerate()
                .filter(|(_, id)| {
                    roster
                        .iter()
                        .position(|r| r == *id)
                        .is_some_and(|p| promised.contains(p))
                })
                .map(|(i, _)| i)
                .collect();
            config.quorum().is_phase1_quorum(set)
        })
    }
}

/// The acceptor indices of `members`' voters that are up.
fn up_set(members: &Members, up: &impl Fn(NodeId) -> bool) -> AcceptorSet {
    members
        .replicas()
        .iter()
        .enumerate()
        .filter(|(_, &id)| up(id))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn n(id: u64) -> NodeId {
        NodeId(id)
    }

    fn members(voters: &[u64], learners: &[u64], spec: QuorumSpec) -> Arc<Members> {
        let ids = |ids: &[u64]| ids.iter().map(|&i| n(i)).collect();
        Arc::new(Members::with_learners(ids(voters), ids(learners), spec).unwrap())
    }

    fn three() -> Membership {
        Membership::new(members(&[1, 2, 3], &[], QuorumSpec::Majority))
    }

    const ALL_UP: fn(NodeId) -> bool = |_| true;

    #[test]
    fn each_change_makes_the_configuration_it_names() {
        let m = three();
        let add = m.changed(Change::AddVoter(n(4)), ALL_UP).unwrap();
        assert_eq!(add.replicas(), [n(1), n(2), n(3), n(4)]);
        let learner = m.changed(Change::AddLearner(n(4)), ALL_UP).unwrap();
        assert_eq!(
            (learner.replicas().len(), learner.learners()),
            (3, &[n(4)][..])
        );
        let mut with_learner = Membership::new(Arc::new(learner));
        let promoted = with_learner.changed(Change::Promote(n(4)), ALL_UP).unwrap();
        assert_eq!(
            (promoted.replicas().len(), promoted.learners()),
            (4, &[][..])
        );
        let removed = m.changed(Change::Remove(n(2)), ALL_UP).unwrap();
        assert_eq!(removed.replicas(), [n(1), n(3)]);
        let flexible = QuorumSpec::Flexible { q1: 3, q2: 1 };
        let set = m.changed(Change::SetQuorum(flexible), ALL_UP).unwrap();
        assert_eq!(set.spec(), flexible);
        assert_eq!(with_learner.adopt(0, Arc::new(promoted)), Ok(1));
    }

    #[test]
    fn changes_that_break_a_rule_are_refused() {
        let m = three();
        assert_eq!(
            m.changed(Change::AddVoter(n(2)), ALL_UP),
            Err(ChangeError::AlreadyMember(n(2)))
        );
        assert_eq!(
            m.changed(Change::AddLearner(n(3)), ALL_UP),
            Err(ChangeError::AlreadyMember(n(3)))
        );
        assert_eq!(
            m.changed(Change::Promote(n(2)), ALL_UP),
            Err(ChangeError::NotLearner(n(2)))
        );
        assert_eq!(
            m.changed(Change::Promote(n(9)), ALL_UP),
            Err(ChangeError::NotMember(n(9)))
        );
        assert_eq!(
            m.changed(Change::Remove(n(9)), ALL_UP),
            Err(ChangeError::NotMember(n(9)))
        );
        let one = Membership::new(members(&[1], &[], QuorumSpec::Majority));
        assert_eq!(
            one.changed(Change::Remove(n(1)), ALL_UP),
            Err(ChangeError::LastVoter)
        );
        let grid = QuorumSpec::Grid { rows: 2, cols: 2 };
        assert!(matches!(
            m.changed(Change::SetQuorum(grid), ALL_UP),
            Err(ChangeError::Unsafe(_))
        ));
        let unsafe_flexible = QuorumSpec::Flexible { q1: 1, q2: 1 };
        assert!(matches!(
            m.changed(Change::SetQuorum(unsafe_flexible), ALL_UP),
            Err(ChangeError::Unsafe(_))
        ));
        // A 2x2 grid cannot take a fifth voter.
        let g = Membership::new(members(&[1, 2, 3, 4], &[], grid));
        assert!(matches!(
            g.changed(Change::AddVoter(n(5)), ALL_UP),
            Err(ChangeError::Unsafe(_))
        ));
    }

    #[test]
    fn a_change_that_would_leave_too_few_members_up_is_refused() {
        let m = three();
        let only_1_and_2_up = |id: NodeId| id == n(1) || id == n(2);
        // Adding a fourth (not up yet) to three with one down: 2 of 4 up, no majority.
        assert_eq!(
            m.changed(Change::AddVoter(n(4)), only_1_and_2_up),
            Err(ChangeError::Unhealthy)
        );
        // Removing a member that is up leaves 1 of 2 up.
        assert_eq!(
            m.changed(Change::Remove(n(1)), only_1_and_2_up),
            Err(ChangeError::Unhealthy)
        );
        // Removing the one that is down leaves 2 of 2: fine, as is adding a learner.
        assert!(m.changed(Change::Remove(n(3)), only_1_and_2_up).is_ok());
        assert!(m.changed(Change::AddLearner(n(4)), only_1_and_2_up).is_ok());
        // One voter may take a second before it starts (etcd's exception); two may not.
        let one = Membership::new(members(&[1], &[], QuorumSpec::Majority));
        assert!(one.changed(Change::AddVoter(n(2)), |id| id == n(1)).is_ok());
        let two = Membership::new(members(&[1, 2], &[], QuorumSpec::Majority));
        assert_eq!(
            two.changed(Change::AddVoter(n(3)), |id| id == n(1)),
            Err(ChangeError::Unhealthy)
        );
        // The member removed does not count as up for the old configuration's phase 1
        // (it stops once it applies its removal): two members cannot become one.
        let two = Membership::new(members(&[1, 2], &[], QuorumSpec::Majority));
        assert_eq!(
            two.changed(Change::Remove(n(2)), |_| true),
            Err(ChangeError::Unhealthy)
        );
    }

    #[test]
    fn a_membership_no_replica_could_hold_is_not_rebuilt() {
        let a = members(&[1, 2, 3], &[], QuorumSpec::Majority);
        assert!(Membership::from_parts(4, vec![a.clone(), a.clone()], None).is_some());
        assert!(Membership::from_parts(4, vec![], None).is_none());
        assert!(Membership::from_parts(4, vec![a.clone(), a.clone(), a.clone()], None).is_none());
        let too_late = u64::from(u32::MAX);
        assert!(Membership::from_parts(too_late, vec![a.clone(), a.clone()], None).is_none());
        // Two valid configurations of 64 members each, none in common: 128 in all.
        let ids = |from: u64| (from..from + 64).collect::<Vec<u64>>();
        let low = members(&ids(1), &[], QuorumSpec::Majority);
        let high = members(&ids(1_000), &[], QuorumSpec::Majority);
        assert!(Membership::from_parts(0, vec![low.clone(), high], None).is_none());
        // Nor does a change make one: a 65th member added to 64.
        let full = Membership::new(low);
        assert!(matches!(
            full.changed(Change::AddLearner(n(9_999)), |_| true),
            Err(ChangeError::Unsafe(QuorumError::TooManyAcceptors { .. }))
        ));
    }

    #[test]
    fn a_change_against_a_past_epoch_is_stale() {
        let mut m = three();
        let a = Arc::new(m.changed(Change::AddLearner(n(4)), ALL_UP).unwrap());
        let b = Arc::new(m.changed(Change::AddLearner(n(5)), ALL_UP).unwrap());
        assert_eq!(m.adopt(0, a), Ok(1));
        assert_eq!(
            m.adopt(0, b),
            Err(ChangeError::Stale {
                base: 0,
                current: 1
            })
        );
        assert_eq!(m.epoch(), 1);
        assert_eq!(m.current().learners(), [n(4)]);
    }

    #[test]
    fn phase_1_needs_a_quorum_of_every_active_configuration() {
        let mut m = three();
        let grown = m.changed(Change::AddVoter(n(4)), ALL_UP).unwrap();
        m.adopt(0, Arc::new(grown)).unwrap();
        let shrunk = m.changed(Change::Remove(n(1)), ALL_UP).unwrap();
        m.adopt(1, Arc::new(shrunk)).unwrap();
        // Current {2,3,4}; active {1,2,3} and {1,2,3,4} too. Roster: 2,3,4 then 1.
        assert_eq!(m.roster(), [n(2), n(3), n(4), n(1)]);
        let set = |m: &Membership, ids: &[u64]| -> AcceptorSet {
            ids.iter().map(|&i| m.position(n(i)).unwrap()).collect()
        };
        assert!(
            !m.is_phase1_quorum(set(&m, &[3, 4])),
            "{{1,2,3}} has only 3"
        );
        assert!(
            !m.is_phase1_quorum(set(&m, &[1, 4])),
            "{{2,3,4}} has only 4"
        );
        assert!(m.is_phase1_quorum(set(&m, &[1, 2, 3])));
        assert!(m.is_phase1_quorum(set(&m, &[1, 3, 4])));
        assert!(m.is_phase1_quorum(set(&m, &[2, 3, 4])));
        m.retire_before(2);
        assert_eq!(m.active().count(), 1);
        assert_eq!(m.roster(), [n(2), n(3), n(4)]);
        assert!(m.is_phase1_quorum(set(&m, &[3, 4])));
        m.retire_before(9);
        assert_eq!(m.epoch(), 2, "the current configuration is never retired");
    }
}
