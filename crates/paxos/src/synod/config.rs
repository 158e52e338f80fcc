//! Who plays which role, and the quorum system the acceptors form.

use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use crate::node::NodeId;
#[cfg(test)]
use crate::quorum::QuorumSystem;
use crate::quorum::{Quorum, QuorumError, QuorumSpec};

/// A role in single-decree Paxos.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Votes on proposals; holds the durable state.
    Acceptor,
    /// Proposes values.
    Proposer,
    /// Learns the chosen value.
    Learner,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Acceptor => "acceptor",
            Role::Proposer => "proposer",
            Role::Learner => "learner",
        })
    }
}

/// Why a configuration or a role was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The acceptors and the quorum system do not fit together, or the system is unsafe.
    Quorum(QuorumError),
    /// Nobody can propose.
    NoProposers,
    /// The same id names two nodes.
    DuplicateNode(NodeId),
    /// Stored acceptor state that no correct acceptor could have written (a vote above its
    /// promise, or at the zero ballot).
    CorruptAcceptorState,
    /// Unusable proposer timeouts (what is wrong with them).
    Timing(&'static str),
    /// A role was built for a node the configuration does not list in that role.
    NotInConfig {
        /// The node.
        node: NodeId,
        /// The role it was to play.
        role: Role,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Quorum(e) => e.fmt(f),
            ConfigError::NoProposers => {
                write!(
                    f,
                    "the configuration has no proposer; nothing can be chosen"
                )
            }
            ConfigError::DuplicateNode(id) => write!(
                f,
                "node id {id} appears twice in the configuration; give every node its own id"
            ),
            ConfigError::Timing(problem) => write!(f, "bad proposer timing: {problem}"),
            ConfigError::CorruptAcceptorState => write!(
                f,
                "the stored acceptor state is corrupt (a vote above its promise, or at ballot \
                 zero); recover this member from its peers"
            ),
            ConfigError::NotInConfig { node, role } => {
                let article = if *role == Role::Acceptor { "an" } else { "a" };
                write!(
                    f,
                    "node {node} is not {article} {role} in this configuration; list it among \
                     the {role}s or build the {role} for one of theirs"
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<QuorumError> for ConfigError {
    fn from(e: QuorumError) -> Self {
        ConfigError::Quorum(e)
    }
}

/// The membership of one single-decree instance, checked when built.
///
/// Acceptor `i` of [`Config::acceptors`] is index `i` of the quorum system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    acceptors: Vec<NodeId>,
    proposers: Vec<NodeId>,
    learners: Vec<NodeId>,
    quorum: Quorum,
}

impl Config {
    /// Checks that ids are distinct, that someone can propose, and that `quorum` is a safe
    /// quorum system over exactly these acceptors.
    pub fn new(
        acceptors: Vec<NodeId>,
        proposers: Vec<NodeId>,
        learners: Vec<NodeId>,
        quorum: QuorumSpec,
    ) -> Result<Config, ConfigError> {
        let quorum = quorum.build(acceptors.len())?;
        if proposers.is_empty() {
            return Err(ConfigError::NoProposers);
        }
        let mut seen = BTreeSet::new();
        for &id in acceptors.iter().chain(&proposers).chain(&learners) {
            if !seen.insert(id) {
                return Err(ConfigError::DuplicateNode(id));
            }
        }
        Ok(Config {
            acceptors,
            proposers,
            learners,
            quorum,
        })
    }

    /// A configuration with a quorum system built through a test-only path that may be
    /// unsafe: the negative controls of the model checker need one.
    #[cfg(test)]
    pub(crate) fn with_unchecked_quorum(mut self, quorum: Quorum) -> Config {
        assert_eq!(quorum.acceptor_count(), self.acceptors.len());
        self.quorum = quorum;
        self
    }

    /// The acceptors, in quorum-index order.
    pub fn acceptors(&self) -> &[NodeId] {
        &self.acceptors
    }

    /// The proposers.
    pub fn proposers(&self) -> &[NodeId] {
        &self.proposers
    }

    /// The learners (acceptors send them their votes).
    pub fn learners(&self) -> &[NodeId] {
        &self.learners
    }

    /// The quorum system over the acceptors.
    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    /// The quorum index of acceptor `id`, or `None` if `id` is not an acceptor.
    pub fn acceptor_index(&self, id: NodeId) -> Option<usize> {
        self.acceptors.iter().position(|&a| a == id)
    }

    /// The role `id` plays, if any.
    pub fn role_of(&self, id: NodeId) -> Option<Role> {
        if self.acceptors.contains(&id) {
            Some(Role::Acceptor)
        } else if self.proposers.contains(&id) {
            Some(Role::Proposer)
        } else if self.learners.contains(&id) {
            Some(Role::Learner)
        } else {
            None
        }
    }

    /// `Ok` if `id` plays `role` here.
    pub(crate) fn require(&self, id: NodeId, role: Role) -> Result<(), ConfigError> {
        if self.role_of(id) == Some(role) {
            Ok(())
        } else {
            Err(ConfigError::NotInConfig { node: id, role })
        }
    }
}

/// A role's handle on its configuration. It is left out of the role's hash: it never
/// changes during the role's life, so it cannot tell two states apart, and the model
/// checker hashes every state it explores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SharedConfig(pub(crate) Arc<Config>);

impl Hash for SharedConfig {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

impl Deref for SharedConfig {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(range: std::ops::Range<u64>) -> Vec<NodeId> {
        range.map(NodeId).collect()
    }

    #[test]
    fn refuses_bad_configurations_with_clear_errors() {
        let unsafe_flexible = Config::new(
            ids(1..6),
            ids(10..11),
            vec![],
            QuorumSpec::Flexible { q1: 2, q2: 3 },
        );
        assert!(matches!(
            unsafe_flexible,
            Err(ConfigError::Quorum(
                QuorumError::FlexibleMayNotIntersect { .. }
            ))
        ));
        let no_acceptors = Config::new(vec![], ids(10..11), vec![], QuorumSpec::Majority);
        assert_eq!(
            no_acceptors,
            Err(ConfigError::Quorum(QuorumError::NoAcceptors))
        );
        let no_proposers = Config::new(ids(1..4), vec![], vec![], QuorumSpec::Majority);
        assert_eq!(no_proposers, Err(ConfigError::NoProposers));
        let duplicate = Config::new(ids(1..4), ids(3..5), vec![], QuorumSpec::Majority);
        assert_eq!(duplicate, Err(ConfigError::DuplicateNode(NodeId(3))));
        assert_eq!(
            ConfigError::NotInConfig {
                node: NodeId(9),
                role: Role::Acceptor
            }
            .to_string(),
            "node 9 is not an acceptor in this configuration; list it among the acceptors or \
             build the acceptor for one of theirs"
        );
    }

    #[test]
    fn roles_and_indices() {
        let config =
            Config::new(ids(1..4), ids(10..12), ids(20..21), QuorumSpec::Majority).unwrap();
        assert_eq!(config.acceptor_index(NodeId(3)), Some(2));
        assert_eq!(config.acceptor_index(NodeId(10)), None);
        assert_eq!(config.role_of(NodeId(11)), Some(Role::Proposer));
        assert_eq!(config.role_of(NodeId(20)), Some(Role::Learner));
        assert_eq!(config.role_of(NodeId(99)), None);
        assert!(config.require(NodeId(1), Role::Acceptor).is_ok());
        assert!(config.require(NodeId(1), Role::Proposer).is_err());
    }
}
