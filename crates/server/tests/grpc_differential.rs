//! Differential test over gRPC: one seeded random sequence of etcd v3 requests, built as
//! raw protobuf so every field is reachable (count_only, the revision filters, nested
//! transactions, lease options), goes to a three-member Synod cluster and to a real etcd
//! 3.4 (`scripts/etcd-ref`, which installs it when missing). Every answer must match:
//! header revision, key-values with all their revisions and versions, counts, `more`,
//! deleted counts, previous key-values, transaction branches, lease TTLs and keys, and
//! errors by gRPC code and message. Only cluster id, member id and raft term are ignored;
//! lease IDs the servers choose are compared up to renaming.
//!
//! Seed and length: `SYNOD_DIFF_SEED` (default 1), `SYNOD_DIFF_OPS` (default 300).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

use std::collections::HashMap;
use std::time::Duration;

use rand_core::{RngCore, SeedableRng};
use server::proto::etcdserverpb as pb;
use server::proto::etcdserverpb::kv_client::KvClient;
use server::proto::etcdserverpb::lease_client::LeaseClient;
use server::proto::etcdserverpb::watch_client::WatchClient;
use server::proto::mvccpb::KeyValue;
use tonic::transport::Channel;

mod common;

/// One server's clients.
struct Side {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    watch: WatchClient<Channel>,
}

impl Side {
    async fn connect(endpoint: &str) -> Side {
        let channel = common::ready_channel(endpoint).await;
        Side {
            kv: KvClient::new(channel.clone()),
            lease: LeaseClient::new(channel.clone()),
            watch: WatchClient::new(channel),
        }
    }
}

struct Gen(rand_pcg::Pcg64);

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }
    fn chance(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    fn key(&mut self) -> Vec<u8> {
        const KEYS: [&str; 6] = ["a", "a/1", "a/2", "b", "b/1", "c"];
        KEYS[self.below(6) as usize].as_bytes().to_vec()
    }
    fn range_end(&mut self, key: &[u8]) -> Vec<u8> {
        match self.below(4) {
            0 => vec![key[0] + 1],
            1 => {
                let mut end = key.to_vec();
                *end.last_mut().unwrap() += 1;
                end
            }
            2 => vec![0],
            _ => Vec::new(),
        }
    }
}

/// A request, as sent to both (lease IDs symbolic: an index into the granted list).
#[derive(Clone, Debug)]
enum Op {
    Range(pb::RangeRequest),
    Put(pb::PutRequest, Option<usize>),
    Delete(pb::DeleteRangeRequest),
    Txn(pb::TxnRequest),
    Compact(i64),
    Grant(i64),
    Revoke(usize),
    TimeToLive(usize),
}

fn range(g: &mut Gen, revision: i64) -> pb::RangeRequest {
    let key = g.key();
    let mut r = pb::RangeRequest {
        range_end: g.range_end(&key),
        key,
        ..Default::default()
    };
    if g.chance(3) {
        r.revision = g.below(revision as u64 + 3) as i64;
    }
    if g.chance(3) {
        r.limit = 1 + g.below(3) as i64;
    }
    if g.chance(3) {
        r.sort_target = g.below(5) as i32;
        r.sort_order = g.below(3) as i32;
    }
    r.keys_only = g.chance(6);
    r.count_only = g.chance(6);
    for field in [
        &mut r.min_mod_revision,
        &mut r.max_mod_revision,
        &mut r.min_create_revision,
        &mut r.max_create_revision,
    ] {
        if g.chance(5) {
            *field = g.below(revision as u64 + 1) as i64;
        }
    }
    r
}

fn put(g: &mut Gen, value: &mut u64) -> pb::PutRequest {
    *value += 1;
    let ignore_value = g.chance(8);
    pb::PutRequest {
        key: g.key(),
        value: if ignore_value {
            Vec::new()
        } else {
            format!("v{value}").into_bytes()
        },
        prev_kv: g.chance(2),
        ignore_value,
        ignore_lease: g.chance(10),
        ..Default::default()
    }
}

fn delete(g: &mut Gen) -> pb::DeleteRangeRequest {
    let key = g.key();
    pb::DeleteRangeRequest {
        range_end: g.range_end(&key),
        key,
        prev_kv: g.chance(2),
    }
}

fn compare(g: &mut Gen, revision: i64, value: u64) -> pb::Compare {
    use pb::compare::TargetUnion as U;
    let key = g.key();
    let target = g.below(5) as i32;
    let n = g.below(revision as u64 + 2) as i64;
    let union = match target {
        0 => U::Version(g.below(4) as i64),
        1 => U::CreateRevision(n),
        2 => U::ModRevision(n),
        3 => U::Value(format!("v{}", g.below(value + 1)).into_bytes()),
        _ => U::Lease(0),
    };
    pb::Compare {
        result: g.below(4) as i32,
        target,
        range_end: if g.chance(4) {
            g.range_end(&key)
        } else {
            Vec::new()
        },
        key,
        target_union: Some(union),
    }
}

fn request_ops(g: &mut Gen, revision: i64, value: &mut u64, depth: u32) -> Vec<pb::RequestOp> {
    use pb::request_op::Request as R;
    (0..g.below(3))
        .map(|_| pb::RequestOp {
            request: Some(match g.below(if depth < 1 { 4 } else { 3 }) {
                0 => R::RequestRange(range(g, revision)),
                1 => R::RequestPut(put(g, value)),
                2 => R::RequestDeleteRange(delete(g)),
                _ => R::RequestTxn(txn(g, revision, value, depth + 1)),
            }),
        })
        .collect()
}

fn txn(g: &mut Gen, revision: i64, value: &mut u64, depth: u32) -> pb::TxnRequest {
    let compare = (0..g.below(3))
        .map(|_| compare(g, revision, *value))
        .collect();
    let success = request_ops(g, revision, value, depth);
    let failure = request_ops(g, revision, value, depth);
    pb::TxnRequest {
        compare,
        success,
        failure,
    }
}

/// What is compared: the answer with header fields other than the revision dropped and
/// lease IDs renamed, or the error's code and message.
type Answer = Result<String, (i32, String)>;

fn normal_kv(kv: &KeyValue, rename: &HashMap<i64, i64>) -> String {
    let lease = rename.get(&kv.lease).copied().unwrap_or(kv.lease);
    format!(
        "{}:{}:{}:{}:{}:{}",
        String::from_utf8_lossy(&kv.key),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        String::from_utf8_lossy(&kv.value),
        lease
    )
}

fn revision(header: &Option<pb::ResponseHeader>) -> i64 {
    header.as_ref().map_or(-1, |h| h.revision)
}

fn normal_range(r: &pb::RangeResponse, rn: &HashMap<i64, i64>) -> String {
    let kvs: Vec<String> = r.kvs.iter().map(|kv| normal_kv(kv, rn)).collect();
    format!(
        "range rev={} kvs={kvs:?} more={} count={}",
        revision(&r.header),
        r.more,
        r.count
    )
}

fn normal_put(r: &pb::PutResponse, rn: &HashMap<i64, i64>) -> String {
    let prev = r.prev_kv.as_ref().map(|kv| normal_kv(kv, rn));
    format!("put rev={} prev={prev:?}", revision(&r.header))
}

fn normal_delete(r: &pb::DeleteRangeResponse, rn: &HashMap<i64, i64>) -> String {
    let prev: Vec<String> = r.prev_kvs.iter().map(|kv| normal_kv(kv, rn)).collect();
    format!(
        "delete rev={} deleted={} prev={prev:?}",
        revision(&r.header),
        r.deleted
    )
}

fn normal_txn(r: &pb::TxnResponse, rn: &HashMap<i64, i64>) -> String {
    use pb::response_op::Response as R;
    let parts: Vec<String> = r
        .responses
        .iter()
        .map(|op| match &op.response {
            Some(R::ResponseRange(x)) => normal_range(x, rn),
            Some(R::ResponsePut(x)) => normal_put(x, rn),
            Some(R::ResponseDeleteRange(x)) => normal_delete(x, rn),
            Some(R::ResponseTxn(x)) => normal_txn(x, rn),
            None => "none".into(),
        })
        .collect();
    format!(
        "txn rev={} succeeded={} [{}]",
        revision(&r.header),
        r.succeeded,
        parts.join("; ")
    )
}

fn error(e: tonic::Status) -> (i32, String) {
    (e.code() as i32, e.message().to_string())
}

/// Sends `op` to one side. `leases` holds this side's IDs; `rn` renames them to Synod's.
async fn send(side: &mut Side, op: &Op, leases: &mut Vec<i64>, rn: &HashMap<i64, i64>) -> Answer {
    let answer = match op.clone() {
        Op::Range(r) => side
            .kv
            .range(r)
            .await
            .map(|a| normal_range(&a.into_inner(), rn)),
        Op::Put(mut r, lease) => {
            if let Some(i) = lease {
                r.lease = leases[i];
            }
            side.kv
                .put(r)
                .await
                .map(|a| normal_put(&a.into_inner(), rn))
        }
        Op::Delete(r) => side
            .kv
            .delete_range(r)
            .await
            .map(|a| normal_delete(&a.into_inner(), rn)),
        Op::Txn(r) => side
            .kv
            .txn(r)
            .await
            .map(|a| normal_txn(&a.into_inner(), rn)),
        Op::Compact(revision) => {
            let r = pb::CompactionRequest {
                revision,
                physical: false,
            };
            let answer = side.kv.compact(r).await;
            answer.map(|a| format!("compact rev={}", self::revision(&a.into_inner().header)))
        }
        Op::Grant(ttl) => {
            let answer = side
                .lease
                .lease_grant(pb::LeaseGrantRequest { ttl, id: 0 })
                .await;
            answer.map(|a| {
                let a = a.into_inner();
                leases.push(a.id);
                format!(
                    "grant rev={} ttl={} error={:?}",
                    revision(&a.header),
                    a.ttl,
                    a.error
                )
            })
        }
        Op::Revoke(i) => {
            let r = pb::LeaseRevokeRequest { id: leases[i] };
            let answer = side.lease.lease_revoke(r).await;
            answer.map(|a| format!("revoke rev={}", revision(&a.into_inner().header)))
        }
        Op::TimeToLive(i) => {
            let r = pb::LeaseTimeToLiveRequest {
                id: leases[i],
                keys: true,
            };
            side.lease.lease_time_to_live(r).await.map(|a| {
                let a = a.into_inner();
                // etcd lists a lease's keys in Go map order (random): compare sorted.
                let mut keys: Vec<String> = a
                    .keys
                    .iter()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect();
                keys.sort();
                // The remaining TTL depends on the clock; only "gone" (-1) is exact.
                format!(
                    "ttl exists={} granted={} keys={keys:?}",
                    a.ttl != -1,
                    a.granted_ttl
                )
            })
        }
    };
    answer.map_err(error)
}

/// Everything a watch created with `create` reports until it has caught up with
/// `revision` (or was canceled): events, normalized, and a cancellation with its compact
/// revision.
async fn watch_all(
    side: &mut Side,
    create: pb::WatchCreateRequest,
    revision: i64,
    rn: &HashMap<i64, i64>,
) -> Vec<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let request = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create)),
    };
    tx.send(request).await.unwrap();
    let mut stream = side
        .watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
        let Ok(Ok(Some(response))) = next else { break };
        if response.canceled {
            seen.push(format!("canceled compact={}", response.compact_revision));
            break;
        }
        let mut last = 0;
        for e in &response.events {
            let kv = e.kv.as_ref().map(|kv| normal_kv(kv, rn));
            let prev = e.prev_kv.as_ref().map(|kv| normal_kv(kv, rn));
            last = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            seen.push(format!("{} {kv:?} prev={prev:?}", e.r#type));
        }
        if last >= revision {
            break;
        }
    }
    drop(tx);
    seen
}

fn random_watch(g: &mut Gen, revision: i64) -> pb::WatchCreateRequest {
    let key = g.key();
    let mut filters = Vec::new();
    if g.chance(4) {
        filters.push(g.below(2) as i32);
    }
    pb::WatchCreateRequest {
        range_end: g.range_end(&key),
        key,
        start_revision: 1 + g.below(revision as u64) as i64,
        prev_kv: g.chance(2),
        filters,
        ..Default::default()
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn random_op(g: &mut Gen, leases: usize, revision: i64, value: &mut u64) -> Op {
    match g.below(20) {
        0..=5 => {
            let lease = (leases > 0 && g.chance(4)).then(|| g.below(leases as u64) as usize);
            Op::Put(put(g, value), lease)
        }
        10 | 11 => Op::Delete(delete(g)),
        12..=14 => Op::Txn(txn(g, revision, value, 0)),
        15 => Op::Compact(g.below(revision as u64 + 2) as i64),
        16 | 17 => Op::Grant(1 + g.below(1000) as i64),
        18 if leases > 0 => Op::Revoke(g.below(leases as u64) as usize),
        19 if leases > 0 => Op::TimeToLive(g.below(leases as u64) as usize),
        _ => Op::Range(range(g, revision)),
    }
}

#[test]
fn synod_answers_grpc_requests_exactly_as_etcd_does() {
    let seed = env("SYNOD_DIFF_SEED", 1);
    let ops = env("SYNOD_DIFF_OPS", 300);
    println!("gRPC differential test against etcd: seed {seed}, {ops} operations");
    // etcd on ports of its own (24379), apart from the other tests' etcds.
    let (_etcd, etcd_endpoints) = common::start_etcd("grpc-diff", 1, 24279);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let synod_members = common::start_synod(&runtime, "grpc-diff", 3);
    runtime.block_on(async {
        let mut synod = Side::connect(&synod_members.endpoints[0]).await;
        let mut etcd = Side::connect(&etcd_endpoints[0]).await;
        let mut g = Gen(rand_pcg::Pcg64::seed_from_u64(seed));
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut rename: HashMap<i64, i64> = HashMap::new(); // etcd's ID → ours
        let identity = HashMap::new();
        let mut value = 0;
        let mut revision = 1;
        for step in 0..ops {
            let op = random_op(&mut g, ours.len(), revision, &mut value);
            let a = send(&mut synod, &op, &mut ours, &identity).await;
            let b = send(&mut etcd, &op, &mut theirs, &rename).await;
            if let (Op::Grant(_), Some(&o), Some(&t)) = (&op, ours.last(), theirs.last()) {
                rename.insert(t, o);
            }
            assert_eq!(
                a, b,
                "step {step} (seed {seed}): {op:?}\n  synod: {a:?}\n  etcd:  {b:?}"
            );
            let seen = a.as_ref().ok().and_then(|text| {
                let after = text.split("rev=").nth(1)?;
                after.split(' ').next()?.parse::<i64>().ok()
            });
            revision = revision.max(seen.unwrap_or(revision));
        }
        // Watches replay the same history from both servers.
        let mut events = 0;
        for n in 0..20 {
            let create = random_watch(&mut g, revision);
            let a = watch_all(&mut synod, create.clone(), revision, &identity).await;
            let b = watch_all(&mut etcd, create.clone(), revision, &rename).await;
            assert_eq!(a, b, "watch {n} (seed {seed}): {create:?}");
            events += a.len();
        }
        assert!(
            events > 0,
            "the watches saw nothing: the comparison proves nothing"
        );
        println!(
            "{ops} operations, final revision {revision}, 20 watches ({events} events): \
             every answer matched"
        );
    });
    drop(synod_members);
    runtime.shutdown_timeout(Duration::from_secs(3));
}
