//! Kubernetes' access patterns (the apiserver's etcd3 storage layer), replayed against a
//! reference etcd 3.4 (`scripts/etcd-ref`) and against Synod, and compared answer by
//! answer: create as a txn on `mod_revision == 0`, get, get with `limit=1`, count-only and
//! keys-only lists, a list in pages with `limit` and a continue key at the first page's
//! revision, optimistic update and delete as txns on `mod_revision` with a get on
//! failure, compaction through a txn on `compact_rev_key` and then Compact, a stale list
//! below the compacted revision, and a watch with `prev_kv` and `progress_notify` from a
//! revision, with `RequestProgress` as a bookmark: a progress notification at revision R
//! comes after every event up to R on that stream. Only member ids, cluster ids and terms
//! are left out of the comparison.
//!
//! Then Synod alone, with etcd's Kubernetes setting of the progress interval (here 1 s):
//! a watcher that asked gets periodic notifications, each after the events below it.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::Duration;

use server::proto::etcdserverpb::{
    compare, kv_client::KvClient, request_op, watch_client::WatchClient, watch_request,
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Streaming;

const PREFIX: &str = "/registry/pods/default/";
const COMPACT_KEY: &str = "compact_rev_key";

fn prefix_end() -> Vec<u8> {
    let mut end = PREFIX.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    end
}

fn pod(name: &str) -> Vec<u8> {
    format!("{PREFIX}{name}").into_bytes()
}

/// Debug text with the fields that differ between any two clusters zeroed.
fn scrub(text: String) -> String {
    let mut out = text;
    for field in ["cluster_id: ", "member_id: ", "raft_term: "] {
        let mut scrubbed = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(field) {
            let (before, after) = rest.split_at(at + field.len());
            scrubbed.push_str(before);
            scrubbed.push('0');
            rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
        }
        scrubbed.push_str(rest);
        out = scrubbed;
    }
    out
}

fn answer<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> String {
    scrub(match result {
        Ok(answer) => format!("{:?}", answer.into_inner()),
        Err(status) => format!("error {:?}: {}", status.code(), status.message()),
    })
}

fn mod_revision_is(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Mod as i32,
        key: key.to_vec(),
        target_union: Some(compare::TargetUnion::ModRevision(revision)),
        ..Default::default()
    }
}

fn put_op(key: &[u8], value: &str) -> RequestOp {
    let put = PutRequest {
        key: key.to_vec(),
        value: value.as_bytes().to_vec(),
        ..Default::default()
    };
    RequestOp {
        request: Some(request_op::Request::RequestPut(put)),
    }
}

fn get_op(key: &[u8]) -> RequestOp {
    let range = RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    };
    RequestOp {
        request: Some(request_op::Request::RequestRange(range)),
    }
}

fn delete_op(key: &[u8]) -> RequestOp {
    let delete = DeleteRangeRequest {
        key: key.to_vec(),
        ..Default::default()
    };
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(delete)),
    }
}

/// The apiserver's conditional write: `then` if `key` is at `revision`, else a get.
async fn guarded(kv: &mut KvClient<Channel>, key: &[u8], revision: i64, then: RequestOp) -> String {
    let txn = TxnRequest {
        compare: vec![mod_revision_is(key, revision)],
        success: vec![then],
        failure: vec![get_op(key)],
    };
    answer(kv.txn(txn).await)
}

fn list(limit: i64, from: &[u8], revision: i64) -> RangeRequest {
    RangeRequest {
        key: from.to_vec(),
        range_end: prefix_end(),
        limit,
        revision,
        ..Default::default()
    }
}

async fn revision(kv: &mut KvClient<Channel>) -> i64 {
    let answer = kv.range(list(1, PREFIX.as_bytes(), 0)).await.unwrap();
    answer.into_inner().header.unwrap().revision
}

/// A watch stream and the way to send it requests.
struct Watch {
    requests: mpsc::Sender<WatchRequest>,
    answers: Streaming<WatchResponse>,
}

impl Watch {
    async fn open(channel: &Channel, start_revision: i64) -> Watch {
        let (requests, rx) = mpsc::channel(8);
        let create = WatchCreateRequest {
            key: PREFIX.as_bytes().to_vec(),
            range_end: prefix_end(),
            start_revision,
            progress_notify: true,
            prev_kv: true,
            ..Default::default()
        };
        requests
            .send(WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
            })
            .await
            .unwrap();
        let mut answers = WatchClient::new(channel.clone())
            .watch(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let created = answers.next().await.unwrap().unwrap();
        assert!(created.created);
        Watch { requests, answers }
    }

    async fn next(&mut self) -> WatchResponse {
        let next = tokio::time::timeout(Duration::from_secs(10), self.answers.next()).await;
        next.expect("an answer in time").unwrap().unwrap()
    }

    /// Asks for progress (again every `every`, as etcd answers only when the stream's
    /// watchers are synced); returns the events that came first and the progress revision.
    async fn progress(&mut self, every: Duration) -> (Vec<String>, i64) {
        let mut events = Vec::new();
        loop {
            let ask = WatchRequest {
                request_union: Some(watch_request::RequestUnion::ProgressRequest(
                    WatchProgressRequest {},
                )),
            };
            self.requests.send(ask).await.unwrap();
            let deadline = tokio::time::Instant::now() + every;
            while let Ok(next) = tokio::time::timeout_at(deadline, self.answers.next()).await {
                let response = next.unwrap().unwrap();
                if response.events.is_empty() {
                    return (events, response.header.unwrap().revision);
                }
                events.extend(response.events.iter().map(|e| scrub(format!("{e:?}"))));
            }
        }
    }
}

/// The transcript of Kubernetes' patterns on a cluster reached through `channel`.
async fn patterns(channel: Channel) -> Transcript {
    let mut kv = KvClient::new(channel.clone());
    let mut t = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        t.push(guarded(&mut kv, &pod(name), 0, put_op(&pod(name), "v1")).await);
    }
    t.push(guarded(&mut kv, &pod("a"), 0, put_op(&pod("a"), "again")).await);
    let created = revision(&mut kv).await;
    let get = |key: &[u8], limit| RangeRequest {
        key: key.to_vec(),
        limit,
        ..Default::default()
    };
    t.push(answer(kv.range(get(&pod("c"), 0)).await));
    t.push(answer(kv.range(get(&pod("c"), 1)).await));
    t.push(answer(kv.range(get(&pod("missing"), 1)).await));
    let count_only = RangeRequest {
        count_only: true,
        ..list(0, PREFIX.as_bytes(), 0)
    };
    t.push(answer(kv.range(count_only).await));
    let keys_only = RangeRequest {
        keys_only: true,
        ..list(0, PREFIX.as_bytes(), 0)
    };
    t.push(answer(kv.range(keys_only).await));

    // A list in pages of two at the first page's revision, while writes go on.
    let first = kv
        .range(list(2, PREFIX.as_bytes(), 0))
        .await
        .unwrap()
        .into_inner();
    let at = first.header.as_ref().unwrap().revision;
    t.push(scrub(format!("{first:?}")));
    let mut last = first.kvs.last().unwrap().key.clone();
    guarded(&mut kv, &pod("f"), 0, put_op(&pod("f"), "v1")).await;
    loop {
        let mut from = last.clone();
        from.push(0);
        let page = kv.range(list(2, &from, at)).await.unwrap().into_inner();
        t.push(scrub(format!("{page:?}")));
        match (page.more, page.kvs.last()) {
            (true, Some(kv)) => last = kv.key.clone(),
            _ => break,
        }
    }

    // A watch from just after the creates, then updates and deletes, some stale.
    let mut watch = Watch::open(&channel, created + 1).await;
    let b = kv.range(get(&pod("b"), 0)).await.unwrap().into_inner().kvs[0].mod_revision;
    t.push(guarded(&mut kv, &pod("b"), b, put_op(&pod("b"), "v2")).await);
    t.push(guarded(&mut kv, &pod("b"), b, put_op(&pod("b"), "stale")).await);
    let c = kv.range(get(&pod("c"), 0)).await.unwrap().into_inner().kvs[0].mod_revision;
    t.push(guarded(&mut kv, &pod("c"), c, delete_op(&pod("c"))).await);
    t.push(guarded(&mut kv, &pod("c"), c, delete_op(&pod("c"))).await);
    let (mut events, progress) = watch.progress(Duration::from_secs(1)).await;
    let before_progress = events.len();
    let written = revision(&mut kv).await;
    t.push(format!(
        "progress at the latest revision: {}",
        progress == written
    ));
    while events.len() < 3 {
        let response = watch.next().await;
        events.extend(response.events.iter().map(|e| scrub(format!("{e:?}"))));
    }
    t.push(format!("events: {events:#?}"));

    // Compaction as the apiserver runs it, then a list below the compacted revision.
    let compact = |version: i64| TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Version as i32,
            key: COMPACT_KEY.as_bytes().to_vec(),
            target_union: Some(compare::TargetUnion::Version(version)),
            ..Default::default()
        }],
        success: vec![put_op(COMPACT_KEY.as_bytes(), "")],
        failure: vec![get_op(COMPACT_KEY.as_bytes())],
    };
    t.push(answer(kv.txn(compact(0)).await));
    t.push(answer(kv.txn(compact(0)).await));
    let compacted = CompactionRequest {
        revision: created,
        physical: false,
    };
    t.push(answer(kv.compact(compacted).await));
    t.push(answer(
        kv.range(list(0, PREFIX.as_bytes(), created - 1)).await,
    ));
    t.push(answer(kv.range(list(0, PREFIX.as_bytes(), created)).await));
    let stale_get = RangeRequest {
        revision: created + 1,
        ..get(&pod("b"), 0)
    };
    t.push(answer(kv.range(stale_get).await));
    Transcript {
        answers: t,
        bookmark_held: before_progress == events.len(),
    }
}

/// What a run of the patterns saw.
struct Transcript {
    /// Each answer, in order.
    answers: Vec<String>,
    /// Whether every event below the progress notification came before it.
    bookmark_held: bool,
}

#[test]
fn kubernetes_patterns_answer_as_etcd_answers_them() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let etcd = {
        let (_etcd, endpoints) = common::start_etcd("k8s", 1, 30279);
        runtime.block_on(async { patterns(common::ready_channel(&endpoints[0]).await).await })
    };
    let synod = common::start_synod(&runtime, "k8s", 3);
    let ours = runtime
        .block_on(async { patterns(common::ready_channel(&synod.endpoints[0]).await).await });
    assert_eq!(ours.answers.len(), etcd.answers.len());
    for (i, (ours, theirs)) in ours.answers.iter().zip(&etcd.answers).enumerate() {
        assert_eq!(ours, theirs, "step {i}");
    }
    // The bookmark guarantee is Synod's; Debian's etcd 3.4.23 answers a progress request
    // on a stream whose watcher is still catching up at once, before the events below it
    // (the bug fixed in 3.4.31 and 3.5.13, the versions Kubernetes requires for it).
    assert!(
        ours.bookmark_held,
        "a progress notification came before its events"
    );
    println!("etcd kept the bookmark guarantee: {}", etcd.bookmark_held);
    drop(synod);
    runtime.shutdown_timeout(Duration::from_secs(3));
}

#[test]
fn periodic_progress_notifications_come_after_the_events_below_them() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let synod = common::start_synod_with(&runtime, "k8s-progress", 3, |config| {
        config.watch_progress_notify_interval = Duration::from_secs(1);
    });
    runtime.block_on(async {
        let channel = common::ready_channel(&synod.endpoints[0]).await;
        let mut kv = KvClient::new(channel.clone());
        let mut watch = Watch::open(&channel, 0).await;
        let mut bookmark = 0;
        let mut notifications = 0;
        let writer = tokio::spawn(async move {
            for i in 0..40 {
                kv.put(PutRequest {
                    key: pod(&format!("p{}", i % 7)),
                    value: vec![b'x'; 10],
                    ..Default::default()
                })
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        while notifications < 3 {
            let response = watch.next().await;
            for event in &response.events {
                // A notification at R promised every event up to R had come.
                let revision = event.kv.as_ref().unwrap().mod_revision;
                assert!(
                    revision > bookmark,
                    "event {revision} after a notification at {bookmark}"
                );
            }
            if response.events.is_empty() {
                bookmark = response.header.unwrap().revision;
                notifications += 1;
            }
        }
        writer.await.unwrap();
    });
    drop(synod);
    runtime.shutdown_timeout(Duration::from_secs(3));
}

/// A watcher that fell behind (its client did not read while more writes came than its
/// stream's queue holds) is answered a progress request only once it has caught up: no
/// event at or below the progress revision may follow the notification. End to end, with
/// a backlog through gRPC's buffers; the rule itself is tested exactly in `watchers.rs`.
#[test]
fn a_progress_request_waits_for_a_watcher_catching_up() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let synod = common::start_synod(&runtime, "k8s-behind", 3);
    runtime.block_on(async {
        let channel = common::ready_channel(&synod.endpoints[0]).await;
        let mut watch = Watch::open(&channel, 0).await;
        let mut writers = Vec::new();
        for w in 0..8 {
            let mut kv = KvClient::new(channel.clone());
            writers.push(tokio::spawn(async move {
                for i in 0..400 {
                    let put = PutRequest {
                        key: pod(&format!("w{w}-{i}")),
                        value: vec![b'x'; 4096],
                        ..Default::default()
                    };
                    kv.put(put).await.unwrap();
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
        // Asked often, so that a request lands while the watcher is still behind.
        let (events, progress) = watch.progress(Duration::from_millis(2)).await;
        assert_eq!(progress, 3201, "every put is a revision");
        assert_eq!(
            events.len(),
            3200,
            "the notification came before its events"
        );
    });
    drop(synod);
    runtime.shutdown_timeout(Duration::from_secs(3));
}
