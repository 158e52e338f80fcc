//! etcd's authentication and RBAC, compared answer by answer: one script of users, roles,
//! permissions and requests that must be allowed or denied runs against a reference etcd
//! 3.4 (`scripts/etcd-ref`, three members) and against three Synod members, and every
//! answer (its gRPC code and message, or what it returned) must be the same. Tokens are
//! used on another member than the one that issued them, as clients that balance do.
//!
//! Where Synod is stricter than etcd 3.4 on purpose (compaction needs an administrator;
//! membership changes need one, as in etcd 3.5), the script says so and asserts each
//! server's own answer.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use server::proto::authpb::{permission::Type as PermType, Permission, UserAddOptions};
use server::proto::etcdserverpb::{
    self as pb, auth_client::AuthClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// One request of the script, and whom it is sent as.
#[derive(Clone, Debug)]
enum Step {
    /// Authenticates and keeps the token under the user's name.
    Login(&'static str, &'static str),
    /// A request with the token of `as_` (None: no token; Some("bogus"): a made-up one).
    Call(Option<&'static str>, Call),
    /// A request sent to Synod only, and the answer it must get: where Debian's etcd
    /// 3.4.23 has no such call (`AuthStatus` came in 3.5), crashes (a permission grant
    /// without a permission takes every member down; 3.4.25 refuses it), or is laxer
    /// than later etcd releases (empty or inverted permission ranges, refused since
    /// 3.4.25) or than Synod means to be (compaction by anyone).
    Ours(Option<&'static str>, Call, &'static str),
}

#[derive(Clone, Debug)]
enum Call {
    Status,
    Enable,
    Disable,
    UserAdd(&'static str, &'static str, bool),
    UserGet(&'static str),
    UserList,
    UserDelete(&'static str),
    ChangePassword(&'static str, &'static str),
    Grant(&'static str, &'static str),
    Revoke(&'static str, &'static str),
    RoleAdd(&'static str),
    RoleGet(&'static str),
    RoleList,
    RoleDelete(&'static str),
    Permit(&'static str, Option<(PermType, &'static str, &'static str)>),
    Unpermit(&'static str, &'static str, &'static str),
    Range(&'static str, &'static str),
    Put(&'static str, bool),
    PutLeased(&'static str),
    Delete(&'static str, &'static str, bool),
    Txn(pb::TxnRequest),
    Grant2Lease,
    Revoke2Lease,
    MaintenanceStatus,
    HashKv,
    AlarmList,
    Watch(&'static str, &'static str),
}

fn put_op(key: &str, prev_kv: bool) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            prev_kv,
            ..Default::default()
        })),
    }
}

fn range_op(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
            key: key.into(),
            ..Default::default()
        })),
    }
}

fn txn_op(txn: pb::TxnRequest) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestTxn(txn)),
    }
}

fn txn(
    success: Vec<pb::RequestOp>,
    failure: Vec<pb::RequestOp>,
    compare_on: Option<&str>,
) -> pb::TxnRequest {
    let compare = compare_on
        .map(|key| pb::Compare {
            key: key.into(),
            target: pb::compare::CompareTarget::Version as i32,
            result: pb::compare::CompareResult::Greater as i32,
            target_union: Some(pb::compare::TargetUnion::Version(-1)),
            ..Default::default()
        })
        .into_iter()
        .collect();
    pb::TxnRequest {
        compare,
        success,
        failure,
    }
}

const INVALID_MGMT: &str = "InvalidArgument: etcdserver: invalid auth management";
const DENIED: &str = "PermissionDenied: etcdserver: permission denied";
const USER_EMPTY: &str = "InvalidArgument: etcdserver: user name is empty";

/// The script: set up users and roles, enable auth, then requests allowed and denied.
fn script() -> Vec<Step> {
    use Call::*;
    use PermType::{Read, Readwrite, Write};
    use Step::{Call as C, Login, Ours};
    let root = Some("root");
    let alice = Some("alice");
    vec![
        Ours(None, Status, "enabled false revision 1"),
        C(None, Enable),
        C(None, UserAdd("root", "rootpw", false)),
        C(None, Enable),
        C(None, RoleAdd("root")),
        C(None, Grant("root", "root")),
        C(None, UserAdd("", "x", false)),
        C(None, UserAdd("alice", "apw", false)),
        C(None, UserAdd("alice", "apw", false)),
        C(None, UserAdd("bob", "", true)),
        C(None, RoleAdd("")),
        C(None, RoleAdd("reader")),
        C(None, RoleAdd("reader")),
        C(None, RoleAdd("writer")),
        C(None, Permit("reader", Some((Read, "a", "c")))),
        C(None, Permit("writer", Some((Readwrite, "w/", "w0")))),
        C(None, Permit("writer", Some((Write, "x", "")))),
        C(None, Permit("writer", Some((Read, "x", "")))),
        C(None, Permit("writer", Some((Write, "x", "")))),
        C(None, Permit("ghost", Some((Read, "a", "")))),
        Ours(None, Permit("reader", Some((Read, "b", "a"))), INVALID_MGMT),
        Ours(None, Permit("reader", Some((Read, "", "a"))), INVALID_MGMT),
        Ours(
            None,
            Permit("reader", None),
            "InvalidArgument: etcdserver: permission not given",
        ),
        C(None, Grant("alice", "reader")),
        C(None, Grant("alice", "writer")),
        C(None, Grant("alice", "writer")),
        C(None, Grant("carol", "reader")),
        C(None, Grant("alice", "ghost")),
        C(None, Revoke("alice", "ghost")),
        C(None, Unpermit("reader", "zz", "")),
        C(None, UserGet("alice")),
        C(None, UserGet("nobody")),
        C(None, UserList),
        C(None, RoleList),
        C(None, RoleGet("writer")),
        C(None, RoleGet("ghost")),
        C(None, Put("a", false)),
        C(None, Put("b", false)),
        C(None, Put("w/1", false)),
        C(None, Put("z", false)),
        Ours(None, Status, "enabled false revision 15"),
        C(None, Enable),
        C(None, Enable),
        Ours(None, Status, USER_EMPTY),
        // Logging in.
        Login("alice", "wrong"),
        Login("mallory", "apw"),
        Login("bob", ""),
        Login("alice", "apw"),
        Login("root", "rootpw"),
        Ours(root, Status, "enabled true revision 15"),
        // Nobody, and a made-up token.
        C(None, Range("a", "")),
        C(None, Put("w/2", false)),
        Ours(None, Status, USER_EMPTY),
        C(Some("bogus"), Range("a", "")),
        // Alice: reads within [a, c), writes under w/ and on x.
        C(alice, Range("a", "")),
        C(alice, Range("a", "c")),
        C(alice, Range("b", "c")),
        C(alice, Range("a", "d")),
        C(alice, Range("a", "\0")),
        C(alice, Range("w/", "w0")),
        C(alice, Range("x", "")),
        C(alice, Put("a", false)),
        C(alice, Put("w/2", false)),
        C(alice, Put("w/2", true)),
        C(alice, Put("x", false)),
        C(alice, Put("x", true)),
        C(alice, Delete("w/", "w0", false)),
        C(alice, Delete("x", "", true)),
        C(alice, Delete("a", "", false)),
        C(
            alice,
            Txn(txn(vec![put_op("w/3", false)], vec![], Some("w/1"))),
        ),
        C(
            alice,
            Txn(txn(vec![put_op("w/3", false)], vec![], Some("z"))),
        ),
        C(
            alice,
            Txn(txn(vec![put_op("w/3", false)], vec![range_op("z")], None)),
        ),
        // The RBAC bypass through nested transactions: etcd 3.4.23 applies both (it
        // checks only the outer transaction's operations); etcd 3.4.42 and Synod refuse.
        Ours(
            alice,
            Txn(txn(
                vec![txn_op(txn(vec![put_op("z", false)], vec![], None))],
                vec![],
                None,
            )),
            DENIED,
        ),
        Ours(
            alice,
            Txn(txn(
                vec![txn_op(txn(vec![put_op("x", true)], vec![], None))],
                vec![],
                None,
            )),
            DENIED,
        ),
        C(
            alice,
            Txn(txn(
                vec![txn_op(txn(vec![], vec![range_op("a")], None))],
                vec![],
                None,
            )),
        ),
        C(
            alice,
            Txn(txn(vec![range_op("a"), range_op("b")], vec![], None)),
        ),
        C(alice, Txn(txn(vec![range_op("z")], vec![], None))),
        // A lease root attached "z" to: alice may neither revoke it nor put into it.
        C(root, Grant2Lease),
        C(alice, PutLeased("w/l")),
        C(alice, Revoke2Lease),
        C(root, PutLeased("w/l")),
        // Maintenance needs an administrator; listing alarms any user.
        // etcd 3.4.23 lets any user read Status and list alarms without a user; later
        // releases (and Synod) need an administrator, and a user.
        Ours(alice, MaintenanceStatus, DENIED),
        C(alice, HashKv),
        C(alice, AlarmList),
        Ours(None, AlarmList, USER_EMPTY),
        C(root, HashKv),
        // Alice may read herself and her roles.
        C(alice, UserGet("alice")),
        C(alice, UserGet("root")),
        C(alice, RoleGet("reader")),
        C(alice, RoleGet("root")),
        C(alice, UserList),
        C(alice, RoleAdd("mine")),
        // Watches: the whole range must be readable.
        C(alice, Watch("a", "")),
        C(alice, Watch("a", "d")),
        C(None, Watch("a", "")),
        // Root's own rules.
        C(root, UserDelete("root")),
        C(root, RoleDelete("root")),
        C(root, Revoke("root", "root")),
        C(root, Range("\0", "\0")),
        // Changes take effect on alice's next request.
        C(root, Unpermit("writer", "x", "")),
        C(alice, Put("x", false)),
        C(root, RoleDelete("reader")),
        C(alice, Range("a", "")),
        C(alice, UserGet("alice")),
        C(root, ChangePassword("alice", "apw2")),
        C(alice, Range("w/1", "")),
        Login("alice", "apw"),
        Login("alice", "apw2"),
        C(alice, Range("w/1", "")),
        C(root, UserDelete("alice")),
        C(alice, Range("w/1", "")),
        Ours(root, Status, "enabled true revision 19"),
        C(root, Disable),
        C(root, Range("a", "")),
        C(None, Range("a", "")),
        C(None, Put("k", false)),
        Ours(None, Status, "enabled false revision 20"),
        C(None, Disable),
        C(None, UserList),
        C(None, RoleList),
    ]
}

/// One server under test: a channel per member, the tokens, the lease of the script.
struct Runner {
    channels: Vec<Channel>,
    tokens: HashMap<&'static str, String>,
    lease: i64,
    step: usize,
}

fn code(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

fn shown<T>(
    result: Result<tonic::Response<T>, tonic::Status>,
    f: impl FnOnce(T) -> String,
) -> String {
    match result {
        Ok(r) => f(r.into_inner()),
        Err(e) => code(&e),
    }
}

fn done<T>(_: T) -> String {
    "ok".into()
}

fn keys(kvs: &[server::proto::mvccpb::KeyValue]) -> String {
    let keys: Vec<String> = kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    format!("keys {keys:?}")
}

impl Runner {
    /// The next member's channel: the script walks round the members.
    fn channel(&mut self) -> Channel {
        self.step += 1;
        self.channels[self.step % self.channels.len()].clone()
    }

    fn request<T>(&self, as_: Option<&str>, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(user) = as_ {
            let token = self
                .tokens
                .get(user)
                .cloned()
                .unwrap_or_else(|| user.to_string());
            request
                .metadata_mut()
                .insert("token", token.parse().unwrap());
        }
        request
    }

    /// Runs `step`, then waits until every member applied it.
    async fn run(&mut self, step: &Step) -> String {
        let answer = self.run_step(step).await;
        self.settle().await;
        answer
    }

    /// A linearizable read on every member, its answer ignored: each member has then
    /// applied what was chosen before (an auth change, a token), so the next step's
    /// member decides by it whichever member it is. Without this, a write sent right
    /// after a change to a member that has not applied it yet is refused with
    /// `revision of auth store is old` (on etcd as on Synod).
    async fn settle(&self) {
        for channel in &self.channels {
            let read = pb::RangeRequest {
                key: b"settle".to_vec(),
                ..Default::default()
            };
            let _ = KvClient::new(channel.clone()).range(read).await;
        }
    }

    async fn run_step(&mut self, step: &Step) -> String {
        match step {
            Step::Login(user, password) => {
                let mut auth = AuthClient::new(self.channel());
                let r = pb::AuthenticateRequest {
                    name: user.to_string(),
                    password: password.to_string(),
                };
                match auth.authenticate(r).await {
                    Ok(answer) => {
                        let token = answer.into_inner().token;
                        assert!(!token.is_empty());
                        self.tokens.insert(user, token);
                        "token".into()
                    }
                    Err(e) => code(&e),
                }
            }
            Step::Call(as_, call) | Step::Ours(as_, call, _) => self.call(*as_, call.clone()).await,
        }
    }

    async fn call(&mut self, as_: Option<&'static str>, call: Call) -> String {
        let channel = self.channel();
        let mut auth = AuthClient::new(channel.clone());
        let mut kv = KvClient::new(channel.clone());
        match call {
            Call::Status => shown(
                auth.auth_status(self.request(as_, pb::AuthStatusRequest {}))
                    .await,
                |r| format!("enabled {} revision {}", r.enabled, r.auth_revision),
            ),
            Call::Enable => shown(
                auth.auth_enable(self.request(as_, pb::AuthEnableRequest {}))
                    .await,
                done,
            ),
            Call::Disable => shown(
                auth.auth_disable(self.request(as_, pb::AuthDisableRequest {}))
                    .await,
                done,
            ),
            Call::UserAdd(name, password, no_password) => {
                let r = pb::AuthUserAddRequest {
                    name: name.into(),
                    password: password.into(),
                    options: Some(UserAddOptions { no_password }),
                    ..Default::default()
                };
                shown(auth.user_add(self.request(as_, r)).await, done)
            }
            Call::UserGet(name) => {
                let r = pb::AuthUserGetRequest { name: name.into() };
                shown(auth.user_get(self.request(as_, r)).await, |r| {
                    format!("roles {:?}", r.roles)
                })
            }
            Call::UserList => shown(
                auth.user_list(self.request(as_, pb::AuthUserListRequest {}))
                    .await,
                |r| format!("users {:?}", r.users),
            ),
            Call::UserDelete(name) => {
                let r = pb::AuthUserDeleteRequest { name: name.into() };
                shown(auth.user_delete(self.request(as_, r)).await, done)
            }
            Call::ChangePassword(name, password) => {
                let r = pb::AuthUserChangePasswordRequest {
                    name: name.into(),
                    password: password.into(),
                    ..Default::default()
                };
                shown(auth.user_change_password(self.request(as_, r)).await, done)
            }
            Call::Grant(user, role) => {
                let r = pb::AuthUserGrantRoleRequest {
                    user: user.into(),
                    role: role.into(),
                };
                shown(auth.user_grant_role(self.request(as_, r)).await, done)
            }
            Call::Revoke(name, role) => {
                let r = pb::AuthUserRevokeRoleRequest {
                    name: name.into(),
                    role: role.into(),
                };
                shown(auth.user_revoke_role(self.request(as_, r)).await, done)
            }
            Call::RoleAdd(name) => {
                let r = pb::AuthRoleAddRequest { name: name.into() };
                shown(auth.role_add(self.request(as_, r)).await, done)
            }
            Call::RoleGet(role) => {
                let r = pb::AuthRoleGetRequest { role: role.into() };
                shown(auth.role_get(self.request(as_, r)).await, |r| {
                    let perms: Vec<String> = r
                        .perm
                        .iter()
                        .map(|p| {
                            format!(
                                "{} {:?}..{:?}",
                                p.perm_type,
                                String::from_utf8_lossy(&p.key),
                                String::from_utf8_lossy(&p.range_end)
                            )
                        })
                        .collect();
                    format!("perms {perms:?}")
                })
            }
            Call::RoleList => shown(
                auth.role_list(self.request(as_, pb::AuthRoleListRequest {}))
                    .await,
                |r| format!("roles {:?}", r.roles),
            ),
            Call::RoleDelete(role) => {
                let r = pb::AuthRoleDeleteRequest { role: role.into() };
                shown(auth.role_delete(self.request(as_, r)).await, done)
            }
            Call::Permit(name, perm) => {
                let perm = perm.map(|(kind, key, end)| Permission {
                    perm_type: kind as i32,
                    key: key.into(),
                    range_end: end.into(),
                });
                let r = pb::AuthRoleGrantPermissionRequest {
                    name: name.into(),
                    perm,
                };
                shown(auth.role_grant_permission(self.request(as_, r)).await, done)
            }
            Call::Unpermit(role, key, end) => {
                let r = pb::AuthRoleRevokePermissionRequest {
                    role: role.into(),
                    key: key.into(),
                    range_end: end.into(),
                };
                shown(
                    auth.role_revoke_permission(self.request(as_, r)).await,
                    done,
                )
            }
            Call::Range(key, end) => {
                let r = pb::RangeRequest {
                    key: key.into(),
                    range_end: end.into(),
                    ..Default::default()
                };
                shown(kv.range(self.request(as_, r)).await, |r| keys(&r.kvs))
            }
            Call::Put(key, prev_kv) => {
                let r = pb::PutRequest {
                    key: key.into(),
                    value: b"v".to_vec(),
                    prev_kv,
                    ..Default::default()
                };
                shown(kv.put(self.request(as_, r)).await, |r| {
                    format!("prev {}", r.prev_kv.is_some())
                })
            }
            Call::PutLeased(key) => {
                let r = pb::PutRequest {
                    key: key.into(),
                    value: b"v".to_vec(),
                    lease: self.lease,
                    ..Default::default()
                };
                shown(kv.put(self.request(as_, r)).await, done)
            }
            Call::Delete(key, end, prev_kv) => {
                let r = pb::DeleteRangeRequest {
                    key: key.into(),
                    range_end: end.into(),
                    prev_kv,
                };
                shown(kv.delete_range(self.request(as_, r)).await, |r| {
                    format!("deleted {}", r.deleted)
                })
            }
            Call::Txn(t) => shown(kv.txn(self.request(as_, t)).await, |r| {
                format!("succeeded {}", r.succeeded)
            }),
            Call::Grant2Lease => {
                let mut lease = LeaseClient::new(channel);
                let r = pb::LeaseGrantRequest { ttl: 600, id: 0 };
                let granted = lease
                    .lease_grant(self.request(as_, r))
                    .await
                    .unwrap()
                    .into_inner();
                self.lease = granted.id;
                let put = pb::PutRequest {
                    key: b"z".to_vec(),
                    value: b"v".to_vec(),
                    lease: self.lease,
                    ..Default::default()
                };
                shown(kv.put(self.request(as_, put)).await, done)
            }
            Call::Revoke2Lease => {
                let mut lease = LeaseClient::new(channel);
                let r = pb::LeaseRevokeRequest { id: self.lease };
                shown(lease.lease_revoke(self.request(as_, r)).await, done)
            }
            Call::MaintenanceStatus => {
                let mut m = MaintenanceClient::new(channel);
                shown(
                    m.status(self.request(as_, pb::StatusRequest {})).await,
                    done,
                )
            }
            Call::HashKv => {
                let mut m = MaintenanceClient::new(channel);
                shown(
                    m.hash_kv(self.request(as_, pb::HashKvRequest { revision: 0 }))
                        .await,
                    done,
                )
            }
            Call::AlarmList => {
                let mut m = MaintenanceClient::new(channel);
                let r = pb::AlarmRequest::default();
                shown(m.alarm(self.request(as_, r)).await, |r| {
                    format!("alarms {}", r.alarms.len())
                })
            }
            Call::Watch(key, end) => self.watch(channel, as_, key, end).await,
        }
    }

    /// A watch's first answer: created, or created and cancelled with the reason.
    async fn watch(
        &self,
        channel: Channel,
        as_: Option<&'static str>,
        key: &str,
        end: &str,
    ) -> String {
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: key.into(),
                    range_end: end.into(),
                    ..Default::default()
                },
            )),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(create).await.unwrap();
        let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut watch = WatchClient::new(channel);
        let mut answers = match watch.watch(self.request(as_, requests)).await {
            Ok(answers) => answers.into_inner(),
            Err(e) => return code(&e),
        };
        let first = tokio::time::timeout(Duration::from_secs(5), answers.next()).await;
        drop(tx);
        match first {
            Ok(Some(Ok(r))) => format!(
                "created {} canceled {} id {} reason {:?}",
                r.created,
                r.canceled,
                if r.canceled { r.watch_id } else { 0 },
                r.cancel_reason
            ),
            Ok(Some(Err(e))) => code(&e),
            Ok(None) => "ended".into(),
            Err(_) => "no answer".into(),
        }
    }
}

/// Each step's answer, `None` for Synod's own steps when `server` is etcd.
async fn answers(endpoints: &[String], etcd: bool) -> Vec<Option<String>> {
    let mut channels = Vec::new();
    for endpoint in endpoints {
        channels.push(common::ready_channel(endpoint).await);
    }
    let mut runner = Runner {
        channels,
        tokens: HashMap::new(),
        lease: 0,
        step: 0,
    };
    let mut answers = Vec::new();
    for step in script() {
        if etcd && matches!(step, Step::Ours(..)) {
            answers.push(None);
            continue;
        }
        answers.push(Some(runner.run(&step).await));
    }
    answers
}

#[test]
fn auth_answers_match_etcd_answer_for_answer() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let etcd = {
        let (_etcd, endpoints) = common::start_etcd("auth", 3, 32279);
        runtime.block_on(answers(&endpoints, true))
    };
    let synod = common::start_synod_with(&runtime, "auth", 3, |c| c.auth.bcrypt_cost = 4);
    let ours = runtime.block_on(answers(&synod.endpoints, false));
    drop(synod);
    runtime.shutdown_timeout(Duration::from_secs(3));
    let steps = script();
    let mut differences = Vec::new();
    for (i, ((step, theirs), ours)) in steps.iter().zip(&etcd).zip(&ours).enumerate() {
        let ours = ours.as_deref().unwrap_or("");
        let theirs = match (step, theirs) {
            (Step::Ours(_, _, expected), _) => *expected,
            (_, theirs) => theirs.as_deref().unwrap_or(""),
        };
        println!("{i:3} {step:?}\n     expected: {theirs}\n     synod:    {ours}");
        if theirs != ours {
            differences.push(i);
        }
    }
    assert!(
        differences.is_empty(),
        "steps answered differently: {differences:?}"
    );
}

/// With `--auth-token jwt`, a token signed by one member works on every member, carries
/// the auth revision, and goes stale with any change of users or roles (etcd's
/// `ErrAuthOldRevision`, after which clients authenticate again). Synod's alone: etcd-ref
/// runs with simple tokens.
#[test]
fn jwt_tokens_work_on_every_member_and_go_stale_with_a_change() {
    let dir = std::env::temp_dir().join(format!("synod-auth-jwt-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let (private, public) = (dir.join("jwt.key"), dir.join("jwt.pub"));
    std::fs::write(&private, pair.serialize_pem()).unwrap();
    std::fs::write(&public, pair.public_key_pem()).unwrap();
    let spec = format!(
        "jwt,pub-key={},priv-key={},sign-method=ES256,ttl=10m",
        public.display(),
        private.display()
    );
    let jwt = server::config::parse_auth_token(&spec).unwrap();
    assert!(jwt.is_some());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let synod = common::start_synod_with(&runtime, "auth-jwt", 3, |c| {
        c.auth.bcrypt_cost = 4;
        c.auth.jwt = jwt.clone();
    });
    runtime.block_on(async {
        use Call::*;
        let mut channels = Vec::new();
        for endpoint in &synod.endpoints {
            channels.push(common::ready_channel(endpoint).await);
        }
        let mut runner = Runner {
            channels,
            tokens: HashMap::new(),
            lease: 0,
            step: 0,
        };
        let steps = [
            (Step::Call(None, UserAdd("root", "rootpw", false)), "ok"),
            (Step::Call(None, Grant("root", "root")), "ok"),
            (Step::Call(None, Enable), "ok"),
            (Step::Login("root", "rootpw"), "token"),
            (Step::Call(Some("root"), Put("k", false)), "prev false"),
            (Step::Call(Some("root"), Range("k", "")), "keys [\"k\"]"),
            (Step::Call(Some("root"), Range("k", "")), "keys [\"k\"]"),
            (Step::Call(Some("root"), RoleAdd("r")), "ok"),
            (
                Step::Call(Some("root"), Range("k", "")),
                "InvalidArgument: etcdserver: revision of auth store is old",
            ),
            (Step::Login("root", "rootpw"), "token"),
            (Step::Call(Some("root"), Range("k", "")), "keys [\"k\"]"),
            (
                Step::Call(Some("bogus.bogus.bogus"), Range("k", "")),
                "Unauthenticated: etcdserver: invalid auth token",
            ),
        ];
        for (i, (step, expected)) in steps.iter().enumerate() {
            let answer = runner.run(step).await;
            assert_eq!(answer, *expected, "step {i}: {step:?}");
        }
        assert_eq!(runner.tokens["root"].matches('.').count(), 2, "a JWT");
    });
    drop(synod);
    runtime.shutdown_timeout(Duration::from_secs(3));
    let _ = std::fs::remove_dir_all(&dir);
}
