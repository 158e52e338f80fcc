//! The state machine a Synod member replicates: etcd's store ([`kv::Store`]) behind
//! etcd's requests. Commands are protobuf `synodpb.Command`s (see [`Payload`]); applying
//! one answers with etcd's response. Besides the store it keeps what the leader times
//! (leases' clocks) and what the member proposes of its own accord: lease expiry, the
//! NOSPACE alarm, and its own name and client URLs (etcd's `publish`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use node::{Answer, Context, StateMachine};
use paxos::multi::{Slot, SnapshotData};
use paxos::NodeId;
use prost::Message as _;
use tonic::Status;

use kv::Caller;

use crate::auth::{self, Tokens};
use crate::convert;
use crate::payload::Payload;
use crate::proto::etcdserverpb as pb;
use crate::proto::synodpb::{command::Op, Barrier, Command, LeaseExpire, Publish};

/// What applying a command answers.
#[derive(Debug)]
pub enum Applied {
    /// A put.
    Put(pb::PutResponse),
    /// A delete.
    Delete(pb::DeleteRangeResponse),
    /// A transaction.
    Txn(pb::TxnResponse),
    /// A compaction.
    Compact(pb::CompactionResponse),
    /// A lease grant.
    LeaseGrant(pb::LeaseGrantResponse),
    /// A lease revoke.
    LeaseRevoke(pb::LeaseRevokeResponse),
    /// A keep-alive.
    KeepAlive(pb::LeaseKeepAliveResponse),
    /// An alarm change.
    Alarm(pb::AlarmResponse),
    /// A member's attributes recorded.
    Published,
    /// A linearizable read may now be served from this view.
    Read(Arc<View>),
    /// An auth request, with the header of its answer.
    Auth(auth::AuthAnswer, pb::ResponseHeader),
}

/// What the store looked like after some apply: readers evaluate ranges on it without
/// holding up the core (cloning the store is O(1): its key map is persistent).
#[derive(Debug)]
pub struct View {
    /// The store.
    pub store: kv::Store,
    /// The header fields of answers read from this view.
    pub header: pb::ResponseHeader,
}

/// A lease the leader is timing, by the node's clock.
#[derive(Clone, Copy, Debug)]
struct LeaseClock {
    refreshed: Duration,
    /// When the leader last proposed its expiry (proposed again after a second).
    expiring: Option<Duration>,
}

/// How often a member proposes again what it proposes of its own accord (the proposal
/// may be lost with a leader).
const RETRY_OWN: Duration = Duration::from_secs(1);

/// The etcd store as a replicated state machine.
#[derive(Debug)]
pub struct EtcdMachine {
    cluster_id: u64,
    store: kv::Store,
    leases: HashMap<i64, LeaseClock>,
    was_leader: bool,
    quota_bytes: u64,
    /// When this leader last proposed raising NOSPACE.
    quota_proposed: Option<Duration>,
    /// What this member publishes about itself, and when it last proposed it.
    attributes: Option<kv::MemberAttributes>,
    publish_proposed: Option<Duration>,
    /// The simple tokens, which `Authenticate` commands assign on every member.
    tokens: Arc<Tokens>,
    /// A negative control: keep-alives refresh the store's lease but not the leader's
    /// clock, so a lease kept alive expires a TTL after its grant.
    #[cfg(feature = "negative-controls")]
    forgets_keep_alives: bool,
}

impl EtcdMachine {
    /// Breaks lease keep-alives on purpose, for the simulator's negative controls (see
    /// the field).
    #[cfg(feature = "negative-controls")]
    pub fn forget_keep_alives(&mut self) {
        self.forgets_keep_alives = true;
    }

    /// The machine around `store`; it raises NOSPACE past `quota_bytes` and publishes
    /// `attributes` (if any) through the log.
    pub fn new(
        cluster_id: u64,
        store: kv::Store,
        quota_bytes: u64,
        attributes: Option<kv::MemberAttributes>,
    ) -> EtcdMachine {
        EtcdMachine {
            cluster_id,
            store,
            leases: HashMap::new(),
            was_leader: false,
            quota_bytes,
            quota_proposed: None,
            attributes,
            publish_proposed: None,
            tokens: Arc::new(Tokens::new(auth::TOKEN_TTL_DEFAULT)),
            #[cfg(feature = "negative-controls")]
            forgets_keep_alives: false,
        }
    }

    /// The machine with `tokens` as its simple tokens (shared with the API layer).
    pub fn with_tokens(mut self, tokens: Arc<Tokens>) -> EtcdMachine {
        self.tokens = tokens;
        self
    }

    /// The store.
    pub fn store(&self) -> &kv::Store {
        &self.store
    }

    /// The store, for what is not replicated state (the watch journal and its events).
    pub fn store_mut(&mut self) -> &mut kv::Store {
        &mut self.store
    }

    /// The header of an answer given in `at`.
    pub fn header(&self, at: &Context) -> pb::ResponseHeader {
        pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: at.me.0,
            revision: self.store.revision(),
            raft_term: at.round,
        }
    }

    /// Remaining whole seconds of a lease by this member's clock at `now`, rounded down
    /// as etcd rounds them (a fresh 30 s lease has 29 left); -1 if it does not exist.
    pub fn lease_remaining(&self, id: i64, now: Duration) -> i64 {
        let Ok(info) = self.store.lease_info(id, false) else {
            return -1;
        };
        let ttl = Duration::from_secs(u64::try_from(info.granted_ttl).unwrap_or(0));
        let elapsed = self
            .leases
            .get(&id)
            .map_or(Duration::ZERO, |c| now.saturating_sub(c.refreshed));
        i64::try_from(ttl.saturating_sub(elapsed).as_secs()).unwrap_or(i64::MAX)
    }

    fn apply_op(
        &mut self,
        op: Op,
        caller: &Caller,
        slot: Slot,
        at: &Context,
    ) -> Result<Applied, Status> {
        auth::check_command(&self.store, &op, caller).map_err(convert::auth_status)?;
        let header = self.header(at);
        let fresh = LeaseClock {
            refreshed: at.now,
            expiring: None,
        };
        Ok(match op {
            Op::Put(r) => {
                self.check_space()?;
                let response = self.store.put(&convert::put(r)).map_err(convert::status)?;
                Applied::Put(convert::put_response(response, header))
            }
            Op::DeleteRange(r) => {
                let response = self.store.delete_range(&convert::delete(&r));
                Applied::Delete(convert::delete_response(
                    response.map_err(convert::status)?,
                    header,
                ))
            }
            Op::Txn(r) => {
                if !convert::txn_is_read_only(&r) {
                    self.check_space()?;
                }
                let txn = convert::txn(&r)?;
                let response = self.store.txn(&txn).map_err(convert::status)?;
                Applied::Txn(convert::txn_response(response, header))
            }
            Op::Compact(r) => {
                let compaction = kv::Compaction {
                    revision: r.revision,
                };
                self.store.compact(compaction).map_err(convert::status)?;
                Applied::Compact(pb::CompactionResponse {
                    header: Some(header),
                })
            }
            Op::LeaseGrant(r) => {
                self.check_space()?;
                let grant = kv::LeaseGrant {
                    ttl: r.ttl,
                    id: r.id,
                };
                let response = self.store.lease_grant(grant).map_err(convert::status)?;
                self.leases.insert(response.id, fresh);
                Applied::LeaseGrant(pb::LeaseGrantResponse {
                    header: Some(pb::ResponseHeader {
                        revision: response.revision,
                        ..header
                    }),
                    id: response.id,
                    ttl: response.ttl,
                    error: String::new(),
                })
            }
            Op::LeaseRevoke(r) => {
                let revision = self.store.lease_revoke(r.id).map_err(convert::status)?;
                self.leases.remove(&r.id);
                Applied::LeaseRevoke(pb::LeaseRevokeResponse {
                    header: Some(pb::ResponseHeader { revision, ..header }),
                })
            }
            Op::LeaseExpire(r) => {
                let revoked = self.store.lease_expire(r.id, r.refreshes);
                if let Ok(Some(_)) = revoked {
                    self.leases.remove(&r.id);
                }
                let revision = self.store.revision();
                Applied::LeaseRevoke(pb::LeaseRevokeResponse {
                    header: Some(pb::ResponseHeader { revision, ..header }),
                })
            }
            Op::LeaseKeepAlive(r) => {
                // etcd answers a keep-alive of an unknown lease with TTL 0, not an error.
                let ttl = match self.store.lease_keep_alive(r.id) {
                    Ok(ttl) => {
                        #[cfg(feature = "negative-controls")]
                        let fresh = match self.leases.get(&r.id) {
                            Some(clock) if self.forgets_keep_alives => *clock,
                            _ => fresh,
                        };
                        self.leases.insert(r.id, fresh);
                        ttl
                    }
                    Err(_) => 0,
                };
                Applied::KeepAlive(pb::LeaseKeepAliveResponse {
                    header: Some(header),
                    id: r.id,
                    ttl,
                })
            }
            Op::Alarm(r) => Applied::Alarm(self.apply_alarm(&r)),
            Op::Publish(r) => {
                let attributes = kv::MemberAttributes {
                    name: r.name,
                    client_urls: r.client_urls,
                };
                self.store.publish(r.member_id, attributes);
                Applied::Published
            }
            Op::MemberPeers(r) => {
                self.store.record_peer_urls(r.member_id, r.peer_urls);
                Applied::Published
            }
            // A read carried through the log: served from the store as it stands here.
            Op::Barrier(_) => Applied::Read(self.view(at)),
            // etcd's auth requests: checked and applied by the auth module.
            auth_op @ (Op::AuthEnable(_)
            | Op::AuthDisable(_)
            | Op::AuthStatus(_)
            | Op::Authenticate(_)
            | Op::UserAdd(_)
            | Op::UserGet(_)
            | Op::UserList(_)
            | Op::UserDelete(_)
            | Op::UserChangePassword(_)
            | Op::UserGrantRole(_)
            | Op::UserRevokeRole(_)
            | Op::RoleAdd(_)
            | Op::RoleGet(_)
            | Op::RoleList(_)
            | Op::RoleDelete(_)
            | Op::RoleGrantPermission(_)
            | Op::RoleRevokePermission(_)) => {
                let answer = auth::apply(&mut self.store, &self.tokens, auth_op, caller, slot)
                    .map_err(convert::auth_status)?;
                Applied::Auth(answer, header)
            }
        })
    }

    fn check_space(&self) -> Result<(), Status> {
        let nospace = pb::AlarmType::Nospace as i32;
        if self.store.alarms().iter().any(|&(_, a)| a == nospace) {
            return Err(Status::resource_exhausted(
                "etcdserver: mvcc: database space exceeded",
            ));
        }
        Ok(())
    }

    /// etcd 3.4's Alarm answers carry no header.
    fn apply_alarm(&mut self, r: &pb::AlarmRequest) -> pb::AlarmResponse {
        let changed = match pb::alarm_request::AlarmAction::try_from(r.action) {
            Ok(pb::alarm_request::AlarmAction::Activate) => {
                if self.store.alarm_activate(r.member_id, r.alarm) {
                    vec![(r.member_id, r.alarm)]
                } else {
                    Vec::new()
                }
            }
            Ok(pb::alarm_request::AlarmAction::Deactivate) => {
                self.store.alarm_deactivate(r.member_id, r.alarm)
            }
            _ => Vec::new(),
        };
        pb::AlarmResponse {
            header: None,
            alarms: changed.into_iter().map(alarm_member).collect(),
        }
    }

    /// The leader times leases; a lease not refreshed within its TTL is revoked through
    /// the log like any other command. A new leader restarts every clock (etcd extends
    /// leases on leader change: the old leader's clocks are not trusted).
    fn expire_leases(&mut self, at: &Context, own: &mut Vec<Op>) {
        if at.leading && !self.was_leader {
            self.restart_lease_clocks(at.now);
        }
        self.was_leader = at.leading;
        if !at.leading {
            return;
        }
        let now = at.now;
        for (&id, clock) in &mut self.leases {
            let (Ok(info), Some(refreshes)) = (
                self.store.lease_info(id, false),
                self.store.lease_refreshes(id),
            ) else {
                continue;
            };
            let ttl = Duration::from_secs(u64::try_from(info.granted_ttl).unwrap_or(0));
            let retry = clock
                .expiring
                .is_none_or(|at| now.saturating_sub(at) > RETRY_OWN);
            if now.saturating_sub(clock.refreshed) > ttl && retry {
                clock.expiring = Some(now);
                own.push(Op::LeaseExpire(LeaseExpire { id, refreshes }));
            }
        }
    }

    /// The leader raises NOSPACE once the kept history outgrows the quota (through the
    /// log, so every member refuses writes from the same slot on). Clearing it is the
    /// operator's `alarm disarm`, after compacting.
    fn check_quota(&mut self, at: &Context, own: &mut Vec<Op>) {
        let nospace = pb::AlarmType::Nospace as i32;
        let over = self.store.size_bytes() > self.quota_bytes;
        let raised = self.store.alarms().iter().any(|&(_, a)| a == nospace);
        if !over || raised || !at.leading || !due(self.quota_proposed, at.now) {
            return;
        }
        tracing::warn!(
            bytes = self.store.size_bytes(),
            quota = self.quota_bytes,
            "database space exceeded; raising NOSPACE (compact, then `etcdctl alarm disarm`)"
        );
        self.quota_proposed = Some(at.now);
        own.push(Op::Alarm(pb::AlarmRequest {
            action: pb::alarm_request::AlarmAction::Activate as i32,
            member_id: at.me.0,
            alarm: nospace,
        }));
    }

    /// A member announces its name and client URLs through the log once it runs (as
    /// etcd's `publish`), so every member lists every member alike; proposed again every
    /// second until the store shows them.
    fn publish_attributes(&mut self, at: &Context, own: &mut Vec<Op>) {
        let Some(attributes) = &self.attributes else {
            return;
        };
        let published = self.store.published().get(&at.me.0) == Some(attributes);
        if published || !at.leader_known || !due(self.publish_proposed, at.now) {
            return;
        }
        self.publish_proposed = Some(at.now);
        own.push(Op::Publish(Publish {
            member_id: at.me.0,
            name: attributes.name.clone(),
            client_urls: attributes.client_urls.clone(),
        }));
    }

    /// Every lease's clock starts again at `now`: the full TTL remains.
    fn restart_lease_clocks(&mut self, now: Duration) {
        let fresh = LeaseClock {
            refreshed: now,
            expiring: None,
        };
        self.leases = self
            .store
            .lease_ids()
            .into_iter()
            .map(|id| (id, fresh))
            .collect();
    }
}

/// Whether something last proposed at `last` may be proposed again at `now`.
fn due(last: Option<Duration>, now: Duration) -> bool {
    last.is_none_or(|at| now.saturating_sub(at) > RETRY_OWN)
}

/// The command for `op`, answered on member `origin` (0: nobody) to request `id`, sent
/// by nobody (the members' own commands).
pub fn encode(origin: NodeId, id: u64, op: Op) -> Payload {
    encode_as(origin, id, op, &Caller::default())
}

/// The command for `op` from `caller`, answered on member `origin` to request `id`.
pub fn encode_as(origin: NodeId, id: u64, op: Op, caller: &Caller) -> Payload {
    let command = Command {
        origin: origin.0,
        id,
        op: Some(op),
        user: caller.user.clone(),
        auth_revision: caller.revision,
    };
    Payload(command.encode_to_vec().into())
}

impl StateMachine for EtcdMachine {
    type Op = Op;
    type Command = Payload;
    type Output = Result<Applied, Status>;
    type View = Arc<View>;

    fn view(&self, at: &Context) -> Arc<View> {
        Arc::new(View {
            store: self.store.clone(),
            header: self.header(at),
        })
    }

    fn command(&self, origin: NodeId, id: u64, op: Op) -> Payload {
        encode(origin, id, op)
    }

    fn barrier(&self, origin: NodeId, id: u64) -> Payload {
        encode(origin, id, Op::Barrier(Barrier {}))
    }

    fn apply(
        &mut self,
        slot: Slot,
        payload: &Payload,
        at: &Context,
    ) -> Option<Answer<Self::Output>> {
        let Ok(command) = Command::decode(&payload.0[..]) else {
            tracing::error!("a chosen command does not decode; skipped on every member alike");
            return None;
        };
        let caller = Caller {
            user: command.user,
            revision: command.auth_revision,
        };
        let output = self.apply_op(command.op?, &caller, slot, at);
        Some(Answer {
            origin: NodeId(command.origin),
            id: command.id,
            output,
        })
    }

    /// Rebuilds the store from a peer's snapshot: seconds for a large one. The core is a
    /// task, so on a multi-threaded runtime the worker hands its other tasks (clients,
    /// peers) to another worker meanwhile.
    fn restore(&mut self, data: &SnapshotData, at: &Context) -> Result<(), String> {
        let read = || kv::Store::read_snapshot(&mut data.reader());
        let mut store = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(read),
            _ => read(),
        }
        .map_err(|e| e.to_string())?;
        // Events the old store journaled but did not dispatch, and those the snapshot
        // skips, reach watchers from the new store's history (the core resyncs them).
        if self.store.journal_is_open() {
            store.open_journal();
        }
        self.store = store;
        self.restart_lease_clocks(at.now);
        Ok(())
    }

    fn tick(&mut self, at: &Context) -> Vec<Op> {
        let mut own = Vec::new();
        self.expire_leases(at, &mut own);
        self.check_quota(at, &mut own);
        self.publish_attributes(at, &mut own);
        own
    }

    fn hash(&self) -> u64 {
        self.store.hash_kv(0).map_or(0, |h| u64::from(h.hash))
    }
}

fn alarm_member((member_id, alarm): (u64, i32)) -> pb::AlarmMember {
    pb::AlarmMember { member_id, alarm }
}

/// The active alarms of `store`, as etcd lists them.
pub fn alarms(store: &kv::Store) -> Vec<pb::AlarmMember> {
    store.alarms().into_iter().map(alarm_member).collect()
}
