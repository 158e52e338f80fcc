//! What the Lock and Election services share: etcd's recipes (`concurrency.Mutex` and
//! `concurrency.Election`) run on the server. A contender holds a key `name/<lease>`
//! created under its lease; the contender whose key has the lowest create revision holds
//! the lock (or leads), and the others wait for the key just before theirs to go.

use tokio::sync::mpsc;
use tonic::Status;

use super::{unexpected, Handle};
use crate::node::{Applied, View};
use crate::proto::etcdserverpb::{self as pb, compare, request_op, response_op};
use crate::proto::mvccpb;
use crate::proto::synodpb::command::Op;
use crate::watchers::{self, Spec};

/// A handle proposing for the sender of `request`, once it is known to have each of
/// `wanted` on every key under the lock or election `name(request)` (the requests made
/// for it are checked again where they are applied).
pub fn scoped<T>(
    handle: &Handle,
    request: &tonic::Request<T>,
    name: impl Fn(&T) -> &Vec<u8>,
    wanted: &[kv::PermKind],
) -> Result<Handle, Status> {
    let caller = handle.caller_of(request)?;
    let keys = prefix(name(request.get_ref()));
    let end = prefix_end(&keys);
    let view = handle.serializable();
    for &kind in wanted {
        view.store
            .auth()
            .check(&caller, &keys, &end, kind)
            .map_err(crate::convert::auth_status)?;
    }
    Ok(handle.with_caller(caller))
}

/// `name/` as etcd's recipes spell the prefix.
pub fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// The key a contender with `lease` holds.
pub fn contender_key(name: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix(name);
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key
}

/// The end of the range of keys starting with `p`.
pub fn prefix_end(p: &[u8]) -> Vec<u8> {
    let mut end = p.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Runs a transaction through the log.
pub async fn txn(handle: &Handle, r: pb::TxnRequest) -> Result<pb::TxnResponse, Status> {
    match handle.propose(Op::Txn(r)).await? {
        Applied::Txn(answer) => Ok(answer),
        other => Err(unexpected(&other)),
    }
}

/// Creates `key` with `value` under `lease` unless it exists. Returns the create
/// revision of the key and the header revision of the transaction.
pub async fn create_key(
    handle: &Handle,
    key: &[u8],
    value: &[u8],
    lease: i64,
) -> Result<(mvccpb::KeyValue, i64), Status> {
    let absent = pb::Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(compare::TargetUnion::CreateRevision(0)),
    };
    let put = pb::RequestOp {
        request: Some(request_op::Request::RequestPut(pb::PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..pb::PutRequest::default()
        })),
    };
    let get = pb::RequestOp {
        request: Some(request_op::Request::RequestRange(pb::RangeRequest {
            key: key.to_vec(),
            ..pb::RangeRequest::default()
        })),
    };
    let answer = txn(
        handle,
        pb::TxnRequest {
            compare: vec![absent],
            success: vec![put, get.clone()],
            failure: vec![get],
        },
    )
    .await?;
    let revision = answer.header.map_or(0, |h| h.revision);
    let kv = answer.responses.into_iter().find_map(|r| match r.response {
        Some(response_op::Response::ResponseRange(range)) => range.kvs.into_iter().next(),
        _ => None,
    });
    let kv = kv.ok_or_else(|| Status::internal("the contender key vanished"))?;
    Ok((kv, revision))
}

/// The key under `prefix` with the lowest create revision, optionally only among those
/// created at or before `max_create`, or the highest if `last`.
pub async fn first_created(
    handle: &Handle,
    prefix: &[u8],
    max_create: i64,
    last: bool,
) -> Result<(Option<mvccpb::KeyValue>, pb::ResponseHeader), Status> {
    let view = handle.linearizable().await?;
    let kv = first_created_in(&view, prefix, max_create, last)?;
    Ok((kv, view.header))
}

/// [`first_created`] in `view`.
fn first_created_in(
    view: &View,
    prefix: &[u8],
    max_create: i64,
    last: bool,
) -> Result<Option<mvccpb::KeyValue>, Status> {
    let range = kv::Range {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: if last {
            kv::SortOrder::Descend
        } else {
            kv::SortOrder::Ascend
        },
        sort_target: kv::SortTarget::Create,
        max_create_revision: max_create,
        ..kv::Range::default()
    };
    let answer = view.store.range(&range).map_err(crate::convert::status)?;
    Ok(answer.kvs.into_iter().next().map(crate::convert::key_value))
}

/// Whether `key` exists in `view` as created at `revision`.
fn holds(view: &View, key: &[u8], revision: i64) -> Result<bool, Status> {
    let range = kv::Range {
        key: key.to_vec(),
        ..kv::Range::default()
    };
    let answer = view.store.range(&range).map_err(crate::convert::status)?;
    Ok(answer
        .kvs
        .first()
        .is_some_and(|kv| kv.create_revision == revision))
}

/// etcd's answer (its `concurrency` package's) when a contender's key went while it
/// waited: its lease expired, or someone deleted it.
fn session_expired() -> Status {
    Status::unknown("session expired")
}

/// A server-side watch of a key or range from a revision on.
#[derive(Debug)]
pub struct ServerWatch {
    handle: Handle,
    stream: u64,
    rx: mpsc::Receiver<pb::WatchResponse>,
}

impl ServerWatch {
    /// Starts watching `key`..`range_end` from `start`.
    pub fn start(
        handle: &Handle,
        key: Vec<u8>,
        range_end: Vec<u8>,
        start: i64,
    ) -> Result<ServerWatch, Status> {
        let (tx, rx) = mpsc::channel(64);
        let stream = handle.next_stream();
        let spec = Spec {
            watch: kv::Watch {
                key,
                range_end,
                start_revision: start,
                ..kv::Watch::default()
            },
            ..Spec::default()
        };
        handle.watch_request(watchers::Request::Create {
            stream,
            id: 0,
            spec,
            tx,
        })?;
        Ok(ServerWatch {
            handle: handle.clone(),
            stream,
            rx,
        })
    }

    /// The next batch of events (`None` if the watch ended).
    pub async fn next(&mut self) -> Option<Vec<mvccpb::Event>> {
        loop {
            let response = self.rx.recv().await?;
            if response.canceled {
                return None;
            }
            if !response.events.is_empty() {
                return Some(response.events);
            }
        }
    }
}

impl Drop for ServerWatch {
    fn drop(&mut self) {
        let _ = self.handle.watch_request(watchers::Request::Close {
            stream: self.stream,
        });
    }
}

/// Waits until no key under `prefix` created before `revision` remains: the contender
/// holding `key`, created at `revision`, is then first. If its key went meanwhile (its
/// lease expired while this member could not keep it alive, or it was deleted), the wait
/// fails: whoever came next may hold the lock already.
pub async fn wait_for_turn(
    handle: &Handle,
    prefix: &[u8],
    key: &[u8],
    revision: i64,
) -> Result<pb::ResponseHeader, Status> {
    loop {
        let view = handle.linearizable().await?;
        let Some(before) = first_created_in(&view, prefix, revision - 1, true)? else {
            if !holds(&view, key, revision)? {
                return Err(session_expired());
            }
            return Ok(view.header);
        };
        let from = view.header.revision + 1;
        let mut watch = ServerWatch::start(handle, before.key.clone(), Vec::new(), from)?;
        loop {
            let Some(events) = watch.next().await else {
                return Err(Status::unavailable("etcdserver: watch ended while waiting"));
            };
            if events
                .iter()
                .any(|e| e.r#type == mvccpb::event::EventType::Delete as i32)
            {
                break;
            }
        }
    }
}

/// Deletes `key` (a lock or leadership given up), whatever its state.
pub async fn delete_key(handle: &Handle, key: Vec<u8>) -> Result<pb::ResponseHeader, Status> {
    let request = pb::DeleteRangeRequest {
        key,
        ..pb::DeleteRangeRequest::default()
    };
    match handle.propose(Op::DeleteRange(request)).await? {
        Applied::Delete(answer) => Ok(answer.header.unwrap_or_default()),
        other => Err(unexpected(&other)),
    }
}

/// The TTL of a session lease, etcd's `concurrency` default.
pub const SESSION_TTL_SECONDS: i64 = 60;

/// A lease the server grants for a Lock or Campaign call that brought none (lease 0), as
/// etcd's lock and election services do (`concurrency.NewSession`): the contender's key is
/// created under it, so a lock held by a client that died expires. It is kept alive while
/// the call waits; once the call returns it is left to run out (the holder unlocks, or it
/// expires [`SESSION_TTL_SECONDS`] after its last refresh). Dropped before that (the call
/// was abandoned or failed), it is revoked, which deletes the key made under it.
#[derive(Debug)]
pub struct Session {
    handle: Handle,
    id: i64,
    keep_alive: Option<tokio::task::JoinHandle<()>>,
    /// Revoke the lease when dropped.
    armed: bool,
}

impl Session {
    /// A fresh session lease if `lease` is 0; `None` if the caller brought one.
    pub async fn unless_given(handle: &Handle, lease: i64) -> Result<Option<Session>, Status> {
        if lease != 0 {
            return Ok(None);
        }
        // The id is chosen here rather than by the store, so that a call abandoned while
        // its grant is under way still revokes it (a revoke that finds nothing is harmless).
        let id = random_lease_id();
        let mut session = Session {
            handle: handle.clone(),
            id,
            keep_alive: None,
            armed: true,
        };
        let grant = pb::LeaseGrantRequest {
            ttl: SESSION_TTL_SECONDS,
            id,
        };
        match handle.propose(Op::LeaseGrant(grant)).await? {
            Applied::LeaseGrant(_) => {}
            other => return Err(unexpected(&other)),
        }
        let refresh = handle.clone();
        session.keep_alive = Some(tokio::spawn(async move {
            let every = std::time::Duration::from_secs(SESSION_TTL_SECONDS.unsigned_abs() / 3);
            loop {
                tokio::time::sleep(every).await;
                let _ = refresh
                    .propose(Op::LeaseKeepAlive(pb::LeaseKeepAliveRequest { id }))
                    .await;
            }
        }));
        Ok(Some(session))
    }

    /// The lease's id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The call returned: stop refreshing the lease and leave it to run out.
    fn orphan(mut self) {
        self.armed = false;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(keep_alive) = &self.keep_alive {
            keep_alive.abort();
        }
        if self.armed {
            let id = self.id;
            spawn_cleanup(&self.handle, Op::LeaseRevoke(pb::LeaseRevokeRequest { id }));
        }
    }
}

/// A random positive lease id (etcd's are random too; 0 means "none").
fn random_lease_id() -> i64 {
    let drawn = rand_core::TryRngCore::try_next_u64(&mut rand_core::OsRng).unwrap_or(1);
    i64::try_from(drawn >> 1).unwrap_or(1).max(1)
}

/// Proposes `op` in the background, if the member still runs (outside a runtime it is
/// shutting down, and there is nobody to tell).
fn spawn_cleanup(handle: &Handle, op: Op) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let handle = handle.clone();
    runtime.spawn(async move {
        let _ = handle.propose(op).await;
    });
}

/// A contender's key under `name/`, created under its lease, with the guard that gives it
/// up if the call holding it is abandoned.
#[derive(Debug)]
pub struct Claim {
    /// The key as created (or as found, if this lease contended before).
    pub kv: mvccpb::KeyValue,
    /// The lease the key lives under: the caller's, or a session lease.
    pub lease: i64,
    abandon: Abandon,
}

impl Claim {
    /// Creates the contender key of `lease` (a session lease if 0) with `value`, unless it
    /// exists.
    pub async fn make(
        handle: &Handle,
        name: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Result<Claim, Status> {
        let session = Session::unless_given(handle, lease).await?;
        let lease = session.as_ref().map_or(lease, Session::id);
        let key = contender_key(name, lease);
        // Armed before the key is asked for: a call abandoned while its create is under
        // way leaves nothing behind either.
        let abandon = Abandon {
            handle: handle.clone(),
            key: Some(key.clone()),
            session,
        };
        let (kv, _) = create_key(handle, &key, value, lease).await?;
        Ok(Claim { kv, lease, abandon })
    }

    /// Waits until this claim is first in line (see [`wait_for_turn`]), then keeps it: the
    /// key stays, and a session lease is left to run out.
    pub async fn wait_for_turn(self, name: &[u8]) -> Result<pb::ResponseHeader, Status> {
        let (handle, key) = (&self.abandon.handle, &self.kv.key);
        let header = wait_for_turn(handle, &prefix(name), key, self.kv.create_revision).await?;
        self.abandon.disarm();
        Ok(header)
    }
}

/// Gives up a contender's claim when the call holding it is abandoned (the client went
/// away, or the call failed): its session lease is revoked, which deletes its key, or,
/// under the caller's own lease, its key is deleted. Nothing is left to block later
/// callers.
#[derive(Debug)]
struct Abandon {
    handle: Handle,
    key: Option<Vec<u8>>,
    session: Option<Session>,
}

impl Abandon {
    /// The wait succeeded: keep the key (and let a session lease run out).
    fn disarm(mut self) {
        self.key = None;
        if let Some(session) = self.session.take() {
            session.orphan();
        }
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        // A session lease is revoked as it drops, and its key with it.
        if self.session.take().is_none() {
            let delete = pb::DeleteRangeRequest {
                key,
                ..pb::DeleteRangeRequest::default()
            };
            spawn_cleanup(&self.handle, Op::DeleteRange(delete));
        }
    }
}
