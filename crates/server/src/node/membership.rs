//! The core keeps up with the membership the log chose: it dials members that joined (at
//! the peer URLs recorded for them), stops dialing those that left, admits only members'
//! connections, stops this member once it is removed, and answers the operators' changes
//! once they are applied.

use std::collections::BTreeMap;
use std::sync::PoisonError;
use std::time::Duration;

use paxos::multi::{Change, ChangeError, Members, ReconfigureError, TransferError};
use paxos::NodeId;
use tonic::Status;

use super::{Core, Reply};
use crate::config::{parse_endpoint, Member};

/// etcd's words for a member that was removed, when it finds out (etcd stops too).
pub const REMOVED: &str = "the member has been permanently removed from the cluster; \
                           the data-dir used by this member must be removed";

/// What the core last acted on, and the changes waiting to be applied.
#[derive(Debug, Default)]
pub(super) struct Followed {
    /// The first active epoch and the current one, and how many members a joining
    /// replica still takes the log from.
    epochs: Option<(u64, u64, usize)>,
    /// The peer URLs recorded in the store when last acted on.
    recorded: BTreeMap<u64, Vec<String>>,
    /// Operators' changes proposed and not yet applied.
    waiting: Vec<Waiting>,
    /// When this member found it was removed.
    removed_at: Option<Duration>,
    /// The leader last logged, with the epoch of the membership then.
    leader: Option<(Option<NodeId>, u64)>,
}

/// How long a removed member goes on answering before it stops: the answer to its own
/// removal (and the member list it carries) reaches the operator.
const REMOVED_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Waiting {
    /// The epoch the change was made against, and the configuration it makes.
    base: u64,
    members: Members,
    reply: Reply<()>,
    deadline: Duration,
}

/// What the core knows of members besides their ids: the bootstrap list (the initial
/// cluster, or what a joining member was told), which recorded peer URLs override.
#[derive(Clone, Debug, Default)]
pub struct Directory(pub Vec<Member>);

impl Directory {
    /// The bootstrap entry of `id`, if any.
    pub fn get(&self, id: NodeId) -> Option<&Member> {
        self.0.iter().find(|m| m.id == id)
    }
}

impl Core {
    /// The peer URLs of `id`: recorded through the log (`member add`, `member update`),
    /// or from the bootstrap list.
    pub fn peer_urls(&self, id: NodeId) -> Vec<String> {
        match self.store().peer_urls(id.0) {
            Some(urls) => urls.to_vec(),
            None => (self.directory.get(id).iter())
                .map(|m| m.peer_url.clone())
                .collect(),
        }
    }

    /// Proposes an operator's change; `reply` is answered once it is applied (or why
    /// not, or on time-out).
    pub fn reconfigure(&mut self, change: Change, reply: Reply<()>) {
        let now = self.now();
        let membership = self.node.replica().membership();
        let base = membership.epoch();
        let members = match membership.changed(change, |_| true) {
            Ok(members) => members,
            Err(e) => {
                let _ = reply.send(Err(change_status(&ReconfigureError::Refused(e))));
                return;
            }
        };
        match self.node.reconfigure(change, now) {
            Ok(()) => {
                let deadline = now + self.options.request_timeout;
                let waiting = Waiting {
                    base,
                    members,
                    reply,
                    deadline,
                };
                self.followed.waiting.push(waiting);
            }
            Err(e) => {
                let _ = reply.send(Err(change_status(&e)));
            }
        }
        self.carry_out();
    }

    /// Acts on a membership or recorded peer URLs that moved since last time, and
    /// answers the changes that were applied or timed out.
    pub(super) fn follow_membership(&mut self) {
        let membership = self.node.replica().membership();
        let sources = self.node.replica().catch_up_sources().len();
        let epochs = (membership.first_epoch(), membership.epoch(), sources);
        let moved = self.followed.epochs != Some(epochs)
            || self.followed.recorded != *self.store().recorded_peer_urls();
        if moved {
            self.followed.epochs = Some(epochs);
            self.followed.recorded = self.store().recorded_peer_urls().clone();
            self.redial();
            let membership = self.node.replica().membership();
            let learner = !membership.current().is_voter(self.me);
            self.learner
                .store(learner, std::sync::atomic::Ordering::Relaxed);
        }
        // Removed by a change this member applied: the change was checked not to count on
        // it for the old configuration's phase 1 (`Membership::changed`), so it may stop.
        if self.node.replica().removed() && self.followed.removed_at.is_none() {
            tracing::warn!("this member was removed from the cluster; it stops in a second");
            self.followed.removed_at = Some(self.now());
            if let Err(e) = mark_removed(&self.snapshot_dir) {
                tracing::warn!("cannot record the removal: {e}");
            }
        }
        self.log_leader();
        self.answer_changes();
        let stop = (self.followed.removed_at).is_some_and(|at| self.now() >= at + REMOVED_GRACE);
        if stop {
            self.fail(REMOVED.to_string());
        }
    }

    /// Logs the leader this member follows whenever it changes, as etcd does.
    fn log_leader(&mut self) {
        let replica = self.node.replica();
        let now = (replica.leader(), replica.membership().epoch());
        if self.followed.leader == Some(now) {
            return;
        }
        self.followed.leader = Some(now);
        let round = replica.promised().round;
        match now.0 {
            Some(leader) => tracing::info!(
                leader = %format!("{:x}", leader.0), round, epoch = now.1, "leader known"
            ),
            None => tracing::info!(round, epoch = now.1, "no leader"),
        }
    }

    /// Dials every member of the roster but this one at its current peer URL, and admits
    /// their connections; stops dialing the others.
    fn redial(&mut self) {
        let replica = self.node.replica();
        let mut roster = replica.membership().roster().to_vec();
        // A joining member takes the log from the members it was told of, whatever the
        // configurations it replays say.
        for &source in replica.catch_up_sources() {
            if !roster.contains(&source) {
                roster.push(source);
            }
        }
        for &id in roster.iter().filter(|&&id| id != self.me) {
            let urls = self.peer_urls(id);
            match urls.first().map(|url| parse_endpoint(url)) {
                Some(Ok(endpoint)) => self.peers.connect(id, endpoint),
                Some(Err(e)) => tracing::warn!(peer = %format!("{:x}", id.0), "cannot dial: {e}"),
                None => {
                    tracing::warn!(peer = %format!("{:x}", id.0), "no peer URL known for a member")
                }
            }
        }
        let gone: Vec<NodeId> = (self.peers.dialed())
            .filter(|id| !roster.contains(id))
            .collect();
        for id in gone {
            self.peers.disconnect(id);
        }
        *self.roster.write().unwrap_or_else(PoisonError::into_inner) = roster;
    }

    fn answer_changes(&mut self) {
        if self.followed.waiting.is_empty() {
            return;
        }
        let now = self.now();
        let membership = self.node.replica().membership();
        let epoch = membership.epoch();
        let mut still = Vec::new();
        for waiting in std::mem::take(&mut self.followed.waiting) {
            let made = membership.get(waiting.base + 1);
            let outcome = if made.is_some_and(|m| **m == waiting.members) {
                Some(Ok(()))
            } else if epoch > waiting.base {
                // Another change was applied against the same epoch first.
                Some(Err(Status::failed_precondition(
                    "etcdserver: another membership change was applied first; retry",
                )))
            } else if now >= waiting.deadline {
                Some(Err(crate::api::timed_out()))
            } else {
                None
            };
            match outcome {
                Some(result) => {
                    let _ = waiting.reply.send(result);
                }
                None => still.push(waiting),
            }
        }
        self.followed.waiting = still;
    }
}

/// How a leadership transfer stands, as the member asked sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// The target leads.
    Done,
    /// Asked of the target (or it is catching up first): wait and ask again.
    UnderWay,
}

impl Core {
    /// etcd's `MoveLeader` at this member: asks `to` to take over if this member leads.
    /// Once `asked` (this member asked before), a member that no longer leads waits for
    /// the election `to` started.
    pub fn transfer_leadership(&mut self, to: NodeId, asked: bool) -> Result<Transfer, Status> {
        let replica = self.node.replica();
        let leads = replica.role() == paxos::multi::RoleKind::Leader;
        if !asked && !leads {
            // etcd's, whoever the target (even the leader itself).
            return Err(Status::failed_precondition("etcdserver: not leader"));
        }
        if replica.leader() == Some(to) {
            return Ok(Transfer::Done);
        }
        if asked && !leads {
            return Ok(Transfer::UnderWay);
        }
        let now = self.now();
        let outcome = match self.node.transfer_leadership(to, now) {
            Ok(()) | Err(TransferError::Behind(_)) => Ok(Transfer::UnderWay),
            Err(TransferError::NotVoter(_)) => Err(Status::failed_precondition(
                "etcdserver: bad leader transferee",
            )),
            Err(TransferError::NotLeader { .. }) => {
                Err(Status::failed_precondition("etcdserver: not leader"))
            }
        };
        self.carry_out();
        outcome
    }
}

/// The file whose presence in a member's data directory says it was removed: it refuses
/// to start again from there (as etcd's removed members do).
pub const REMOVED_MARK: &str = "removed";

/// Records durably that the member whose data is in `dir` was removed.
fn mark_removed(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::create(dir.join(REMOVED_MARK))?.sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

/// etcd's answer for a change the engine refused.
pub fn change_status(error: &ReconfigureError) -> Status {
    match error {
        ReconfigureError::NotLeader { .. } => Status::failed_precondition("etcdserver: not leader"),
        ReconfigureError::InProgress => Status::failed_precondition(
            "etcdserver: another membership change is under way; retry once it completes",
        ),
        ReconfigureError::LearnerBehind(_) => Status::failed_precondition(
            "etcdserver: can only promote a learner member which is in sync with leader",
        ),
        ReconfigureError::Refused(e) => match e {
            ChangeError::AlreadyMember(_) => {
                Status::failed_precondition("etcdserver: member ID already exist")
            }
            ChangeError::NotMember(_) => Status::not_found("etcdserver: member not found"),
            ChangeError::NotLearner(_) => {
                Status::failed_precondition("etcdserver: can only promote a learner member")
            }
            ChangeError::LastVoter => Status::failed_precondition(
                "etcdserver: re-configuration failed due to not enough started members",
            ),
            ChangeError::Unhealthy => Status::unavailable("etcdserver: unhealthy cluster"),
            ChangeError::Unsafe(e) => {
                Status::failed_precondition(format!("synod: unsafe quorum system: {e}"))
            }
            ChangeError::Stale { .. } => Status::failed_precondition(
                "etcdserver: another membership change was applied first; retry",
            ),
        },
    }
}

/// One member as `member list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Its id.
    pub id: NodeId,
    /// Its name: what it published, or its bootstrap entry's; empty if neither (a member
    /// added and not yet started, which etcdctl shows as "unstarted").
    pub name: String,
    /// Where its peers reach it.
    pub peer_urls: Vec<String>,
    /// Where clients reach it, as it published them.
    pub client_urls: Vec<String>,
    /// Whether it is a learner.
    pub is_learner: bool,
}

impl Core {
    /// The members of the current configuration, by id, as `member list` shows them.
    pub fn member_list(&self) -> Vec<Listed> {
        let current = self.node.replica().membership().current().clone();
        let published = self.store().published();
        let mut listed: Vec<Listed> = (current.everyone())
            .map(|id| {
                let attributes = published.get(&id.0);
                let bootstrap_name = self.directory.get(id).map(|m| m.name.clone());
                Listed {
                    id,
                    name: (attributes.map(|a| a.name.clone()))
                        .or(bootstrap_name)
                        .unwrap_or_default(),
                    peer_urls: self.peer_urls(id),
                    client_urls: attributes
                        .map(|a| a.client_urls.clone())
                        .unwrap_or_default(),
                    is_learner: !current.is_voter(id),
                }
            })
            .collect();
        listed.sort_by_key(|m| m.id);
        listed
    }

    /// Where the leader serves clients, if this member is not the leader and knows one
    /// that published its client URLs: changes are made there.
    pub fn leader_client_url(&self) -> Result<Option<String>, Status> {
        let replica = self.node.replica();
        match replica.leader() {
            Some(leader) if leader == self.me => Ok(None),
            Some(leader) => Ok(self
                .store()
                .published()
                .get(&leader.0)
                .and_then(|a| a.client_urls.first().cloned())),
            None => Err(Status::unavailable("etcdserver: no leader")),
        }
    }

    /// For `member add` at the leader: a fresh id for a member at `peer_urls`, refused
    /// if a member has one of those URLs already or if adding one now would be refused.
    pub fn new_member_id(&self, peer_urls: &[String], learner: bool) -> Result<NodeId, Status> {
        let current = self.node.replica().membership().current().clone();
        let taken = (current.everyone())
            .flat_map(|id| self.peer_urls(id))
            .any(|url| peer_urls.contains(&url));
        if taken {
            return Err(Status::failed_precondition(
                "etcdserver: Peer URLs already exists",
            ));
        }
        let mut id = member_id(peer_urls, self.cluster_id, self.now());
        while id.0 == 0 || current.position(id).is_some() {
            id = NodeId(id.0.wrapping_add(1));
        }
        let change = if learner {
            Change::AddLearner(id)
        } else {
            Change::AddVoter(id)
        };
        let replica = self.node.replica();
        let membership = replica.membership();
        membership
            .changed(change, |id| replica.peer_active(id))
            .map_err(|e| change_status(&ReconfigureError::Refused(e)))?;
        Ok(id)
    }
}

/// An added member's id: a hash of its peer URLs, the cluster and the time, as etcd
/// derives one (so a member removed and added again at the same URLs gets a new id).
fn member_id(peer_urls: &[String], cluster: u64, now: Duration) -> NodeId {
    let mut sorted = peer_urls.to_vec();
    sorted.sort();
    let (cluster, now) = (cluster.to_le_bytes(), now.as_nanos().to_le_bytes());
    let mut parts: Vec<&[u8]> = sorted.iter().map(|url| url.as_bytes()).collect();
    parts.extend([&cluster[..], &now[..]]);
    NodeId(crate::config::fnv1a(&parts))
}

impl Core {
    /// The answer to a member starting to join with `peer_url`: who it is, if `member
    /// add` added it (and this member applied that), with the cluster's id and current
    /// configuration.
    pub fn join_answer(&self, peer_url: &str) -> crate::proto::synodpb::JoinAnswer {
        use crate::proto::synodpb::join_answer::Answer;
        let membership = self.node.replica().membership();
        let current = membership.current().clone();
        let joining = current
            .everyone()
            .find(|&id| self.peer_urls(id).iter().any(|url| url == peer_url));
        let answer = match joining {
            None => Answer::Refused(format!(
                "no member has peer URL {peer_url} here: add it with `member add` first"
            )),
            Some(id) => {
                let listed = self.member_list();
                let members = (listed.into_iter())
                    .filter_map(|m| {
                        let peer_url = m.peer_urls.into_iter().next()?;
                        Some(Member {
                            name: m.name,
                            id: m.id,
                            peer_url,
                        })
                    })
                    .collect();
                let bootstrap = crate::bootstrap::Bootstrap {
                    cluster_id: self.cluster_id,
                    me: id,
                    joined: true,
                    members,
                    configuration: current,
                };
                Answer::Bootstrap(crate::bootstrap::encode(&bootstrap))
            }
        };
        crate::proto::synodpb::JoinAnswer {
            answer: Some(answer),
        }
    }
}
