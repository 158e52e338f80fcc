//! `synod bench kubernetes`: etcd's robustness "Kubernetes" traffic as a load. Each
//! client runs a read loop or a write loop (even clients read, odd ones write, as each
//! robustness client runs one of each) over pods under `/registry/pods/default/`:
//!
//! - reads: 80% list-and-watch (a list in pages of 10 at one revision, then a watch from
//!   the revision after it, up to its creation), 8% get-rev (a get of `/registry/pods`,
//!   which Kubernetes uses to learn the current revision), 5% get, 5% stale list (at the
//!   revision of an earlier list), 2% stale get;
//! - writes, as the apiserver makes them (txns on `mod_revision`, a get on failure): with
//!   fewer than 5 pods known a create, with more than 15 a delete, otherwise 90% update,
//!   5% delete, 5% create.
//!
//! A shared view of the pods (key → mod revision, and the last list's revision) stands in
//! for the apiserver's cache: lists reset it, writes and failed writes' gets update it.
//! One operation is one request in the report (a paged list counts once).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use server::proto::etcdserverpb as pb;
use server::proto::etcdserverpb::watch_client::WatchClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::conn::Conn;
use super::{Plan, Results, RANGE, TXN};

const PREFIX: &str = "/registry/pods/";
const NAMESPACE: &str = "/registry/pods/default/";
/// The pods the traffic keeps around, on average.
const AVERAGE_PODS: usize = 10;
const PAGE: i64 = 10;

/// What the clients know of the pods: the apiserver's cache, shared.
#[derive(Debug, Default)]
pub struct Pods {
    known: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    pods: BTreeMap<Vec<u8>, i64>,
    /// The revision of the last complete list.
    listed_at: i64,
}

impl Pods {
    fn with<T>(&self, f: impl FnOnce(&mut Known) -> T) -> T {
        f(&mut self.known.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A known pod and its mod revision, picked by `random`.
    fn pick(&self, random: u64) -> Option<(Vec<u8>, i64)> {
        self.with(|k| {
            let n = u64::try_from(k.pods.len()).ok().filter(|&n| n > 0)?;
            let index = usize::try_from(random % n).ok()?;
            k.pods
                .iter()
                .nth(index)
                .map(|(key, rev)| (key.clone(), *rev))
        })
    }
}

/// What one operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    ListAndWatch,
    GetRev,
    Get,
    ListStale,
    GetStale,
    Create,
    Update,
    Delete,
}

/// A read, by etcd's weights (out of 100).
fn read_op(roll: u64) -> Op {
    match roll % 100 {
        0..80 => Op::ListAndWatch,
        80..88 => Op::GetRev,
        88..93 => Op::Get,
        93..98 => Op::ListStale,
        _ => Op::GetStale,
    }
}

/// A write, by etcd's rules: the pod count kept near its average.
fn write_op(roll: u64, pods: usize) -> Op {
    if pods < AVERAGE_PODS / 2 {
        return Op::Create;
    }
    if pods > AVERAGE_PODS * 3 / 2 {
        return Op::Delete;
    }
    match roll % 100 {
        0..90 => Op::Update,
        90..95 => Op::Delete,
        _ => Op::Create,
    }
}

/// One client's loop: reads if `reader`, else writes.
pub async fn client(plan: Arc<Plan>, conn: Conn, pods: Arc<Pods>, reader: bool) -> Results {
    let mut results = Results::default();
    let watch = Channel::from_shared(format!("http://{}", conn.endpoint()))
        .map(|endpoint| WatchClient::new(endpoint.connect_lazy()));
    let Ok(mut watch) = watch else {
        results.errors += 1;
        return results;
    };
    while plan.take().is_some() {
        let op = match reader {
            true => read_op(plan.random()),
            false => write_op(plan.random(), pods.with(|k| k.pods.len())),
        };
        let start = Instant::now();
        if run(op, &plan, &conn, &mut watch, &pods).await {
            results.latencies.push(start.elapsed());
        } else {
            results.errors += 1;
        }
    }
    results
}

async fn run(
    op: Op,
    plan: &Plan,
    conn: &Conn,
    watch: &mut WatchClient<Channel>,
    pods: &Pods,
) -> bool {
    match op {
        Op::ListAndWatch => match list(conn, pods, 0).await {
            Some(revision) => watch_from(watch, revision + 1).await,
            None => false,
        },
        Op::GetRev => get(conn, PREFIX.trim_end_matches('/').as_bytes(), 0).await,
        Op::Get => match pods.pick(plan.random()) {
            Some((key, _)) => get(conn, &key, 0).await,
            None => get(conn, NAMESPACE.as_bytes(), 0).await,
        },
        Op::GetStale => {
            let at = pods.with(|k| k.listed_at);
            match pods.pick(plan.random()) {
                Some((key, _)) => get(conn, &key, at).await,
                None => get(conn, NAMESPACE.as_bytes(), at).await,
            }
        }
        Op::ListStale => {
            let at = pods.with(|k| k.listed_at);
            list(conn, pods, at).await.is_some()
        }
        Op::Create => {
            let key = format!("{NAMESPACE}{:05x}", plan.random() & 0xf_ffff).into_bytes();
            write(conn, pods, key, 0, Write::Put(plan.random())).await
        }
        Op::Update | Op::Delete => {
            let Some((key, revision)) = pods.pick(plan.random()) else {
                // Nothing known yet: a list fills the cache first.
                return list(conn, pods, 0).await.is_some();
            };
            let write_kind = match op {
                Op::Update => Write::Put(plan.random()),
                _ => Write::Delete,
            };
            write(conn, pods, key, revision, write_kind).await
        }
    }
}

async fn get(conn: &Conn, key: &[u8], revision: i64) -> bool {
    let range = pb::RangeRequest {
        key: key.to_vec(),
        revision,
        ..Default::default()
    };
    conn.unary::<_, pb::RangeResponse>(RANGE, &range)
        .await
        .is_ok()
}

/// A list in pages at one revision (`at`, or the first page's); a current list resets
/// the cache. Returns the list's revision.
async fn list(conn: &Conn, pods: &Pods, at: i64) -> Option<i64> {
    let mut from = NAMESPACE.as_bytes().to_vec();
    let mut end = PREFIX.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let mut revision = at;
    let mut seen = BTreeMap::new();
    loop {
        let range = pb::RangeRequest {
            key: from.clone(),
            range_end: end.clone(),
            limit: PAGE,
            revision,
            ..Default::default()
        };
        let page = conn
            .unary::<_, pb::RangeResponse>(RANGE, &range)
            .await
            .ok()?;
        if revision == 0 {
            revision = page.header.map_or(0, |h| h.revision);
        }
        let more = page.count > i64::try_from(page.kvs.len()).unwrap_or(i64::MAX);
        for kv in page.kvs {
            from = kv.key.clone();
            seen.insert(kv.key, kv.mod_revision);
        }
        if !more {
            break;
        }
        from.push(0);
    }
    if at == 0 {
        pods.with(|k| {
            k.pods = seen;
            k.listed_at = revision;
        });
    }
    Some(revision)
}

/// A watch on the pods from `revision`, as the apiserver opens one after a list, until
/// it is created; then it is closed.
async fn watch_from(watch: &mut WatchClient<Channel>, revision: i64) -> bool {
    let create = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: PREFIX.as_bytes().to_vec(),
                range_end: b"/registry/pods0".to_vec(),
                start_revision: revision,
                progress_notify: true,
                prev_kv: true,
                ..Default::default()
            },
        )),
    };
    let (requests, rx) = tokio::sync::mpsc::channel(1);
    if requests.send(create).await.is_err() {
        return false;
    }
    let rx = tokio_stream::wrappers::ReceiverStream::new(rx);
    let Ok(answer) = watch.watch(rx).await else {
        return false;
    };
    let mut answers = answer.into_inner();
    let created = tokio::time::timeout(Duration::from_secs(10), answers.next()).await;
    // Both halves dropped: the stream is reset, and the server drops the watcher (as
    // the apiserver's cancelled context does).
    drop(requests);
    drop(answers);
    matches!(created, Ok(Some(Ok(response))) if response.created)
}

enum Write {
    Put(u64),
    Delete,
}

/// The apiserver's optimistic write: if `key` is still at `revision` (0: absent), put or
/// delete it, else read it (the cache learns where it is now).
async fn write(conn: &Conn, pods: &Pods, key: Vec<u8>, revision: i64, kind: Write) -> bool {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let then = match kind {
        Write::Put(value) => pb::request_op::Request::RequestPut(pb::PutRequest {
            key: key.clone(),
            value: value.to_string().into_bytes(),
            ..Default::default()
        }),
        Write::Delete => pb::request_op::Request::RequestDeleteRange(pb::DeleteRangeRequest {
            key: key.clone(),
            ..Default::default()
        }),
    };
    let deleting = matches!(then, pb::request_op::Request::RequestDeleteRange(_));
    let get = pb::request_op::Request::RequestRange(pb::RangeRequest {
        key: key.clone(),
        ..Default::default()
    });
    let txn = pb::TxnRequest {
        compare: vec![pb::Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Mod as i32,
            key: key.clone(),
            range_end: Vec::new(),
            target_union: Some(TargetUnion::ModRevision(revision)),
        }],
        success: vec![pb::RequestOp {
            request: Some(then),
        }],
        failure: match revision {
            0 => Vec::new(),
            _ => vec![pb::RequestOp { request: Some(get) }],
        },
    };
    let Ok(answer) = conn.unary::<_, pb::TxnResponse>(TXN, &txn).await else {
        return false;
    };
    let now = answer.header.map_or(0, |h| h.revision);
    pods.with(|k| match (answer.succeeded, deleting) {
        (true, true) => {
            k.pods.remove(&key);
        }
        (true, false) => {
            k.pods.insert(key, now);
        }
        (false, _) => {
            let current = answer.responses.first().and_then(|r| match &r.response {
                Some(pb::response_op::Response::ResponseRange(range)) => range.kvs.first(),
                _ => None,
            });
            match current {
                Some(kv) => k.pods.insert(key, kv.mod_revision),
                None => k.pods.remove(&key),
            };
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_follow_etcds_weights() {
        let count = |op: Op, pick: &dyn Fn(u64) -> Op| (0..100).filter(|&r| pick(r) == op).count();
        let read = |r| read_op(r);
        assert_eq!(count(Op::ListAndWatch, &read), 80);
        assert_eq!(count(Op::GetRev, &read), 8);
        assert_eq!(count(Op::Get, &read), 5);
        assert_eq!(count(Op::ListStale, &read), 5);
        assert_eq!(count(Op::GetStale, &read), 2);
        let write = |r| write_op(r, AVERAGE_PODS);
        assert_eq!(count(Op::Update, &write), 90);
        assert_eq!(count(Op::Delete, &write), 5);
        assert_eq!(count(Op::Create, &write), 5);
        assert_eq!(write_op(50, 2), Op::Create);
        assert_eq!(write_op(50, 20), Op::Delete);
    }
}
