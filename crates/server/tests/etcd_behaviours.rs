//! What real etcd clients were seen to depend on, each scenario run against a reference
//! etcd 3.4 (`scripts/etcd-ref`) and against Synod, three members each, with the same
//! assertions: so every expectation here is etcd's own behaviour, shown on etcd. Where
//! Synod promises more than etcd (a session lease revoked when its call is abandoned), the
//! extra assertion is Synod's alone and says so.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use server::proto::etcdserverpb::{
    cluster_client::ClusterClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, DefragmentRequest, LeaseGrantRequest,
    LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseTimeToLiveRequest, MemberListRequest,
    PutRequest, RangeRequest, SnapshotRequest,
};
use server::proto::v3electionpb::{
    election_client::ElectionClient, CampaignRequest, LeaderKey, ResignRequest,
};
use server::proto::v3lockpb::{lock_client::LockClient, LockRequest, UnlockRequest};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// Which server a scenario runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    Etcd,
    Synod,
}

/// Runs `scenario` against a fresh three-member etcd (client ports `base + 100·i`) and
/// then a fresh three-member Synod, with a channel to each member.
fn on_both<F, Fut>(name: &str, base: u16, scenario: F)
where
    F: Fn(Server, Vec<Channel>) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    {
        let (_etcd, endpoints) = common::start_etcd(name, 3, base);
        runtime.block_on(async {
            let channels = channels(&endpoints).await;
            scenario(Server::Etcd, channels).await;
        });
    }
    let synod = common::start_synod(&runtime, name, 3);
    runtime.block_on(async {
        let channels = channels(&synod.endpoints).await;
        scenario(Server::Synod, channels).await;
    });
    drop(synod);
    runtime.shutdown_timeout(Duration::from_secs(3));
}

async fn channels(endpoints: &[String]) -> Vec<Channel> {
    let mut channels = Vec::new();
    for endpoint in endpoints {
        channels.push(common::ready_channel(endpoint).await);
    }
    channels
}

fn lock(name: &str, lease: i64) -> LockRequest {
    LockRequest {
        name: name.as_bytes().to_vec(),
        lease,
    }
}

/// The keys under `prefix/`, with the lease each lives under.
async fn keys_under(channel: &Channel, prefix: &str) -> Vec<(String, i64)> {
    let range = RangeRequest {
        key: format!("{prefix}/").into_bytes(),
        range_end: format!("{prefix}0").into_bytes(),
        ..Default::default()
    };
    let answer = KvClient::new(channel.clone())
        .range(range)
        .await
        .unwrap()
        .into_inner();
    answer
        .kvs
        .into_iter()
        .map(|kv| (String::from_utf8(kv.key).unwrap(), kv.lease))
        .collect()
}

async fn leases(channel: &Channel) -> Vec<i64> {
    let answer = LeaseClient::new(channel.clone())
        .lease_leases(LeaseLeasesRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut ids: Vec<i64> = answer.leases.into_iter().map(|l| l.id).collect();
    ids.sort_unstable();
    ids
}

/// Polls `check` until it holds, for up to five seconds.
async fn eventually<Fut: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> Fut) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_lock_without_a_lease_gets_a_session_lease_and_excludes() {
    on_both("lock-session", 25279, |server, members| async move {
        let first = LockClient::new(members[0].clone())
            .lock(lock("mutex", 0))
            .await
            .unwrap()
            .into_inner();
        let held = String::from_utf8(first.key.clone()).unwrap();
        // The key is NAME/<lease in hex>, under a 60 s session lease.
        let under = keys_under(&members[0], "mutex").await;
        assert_eq!(under.len(), 1, "{server:?}: {under:?}");
        let (key, lease) = under[0].clone();
        assert_eq!(key, held, "{server:?}");
        assert_eq!(key, format!("mutex/{lease:x}"), "{server:?}");
        let ttl = LeaseClient::new(members[0].clone())
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: lease,
                keys: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ttl.granted_ttl, 60, "{server:?}");
        assert_eq!(ttl.keys, vec![first.key.clone()], "{server:?}");

        // A second lease-0 call, through another member, waits for the first.
        let mut other = LockClient::new(members[1].clone());
        let second = tokio::spawn(async move { other.lock(lock("mutex", 0)).await });
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(!second.is_finished(), "{server:?}: both hold the lock");
        LockClient::new(members[2].clone())
            .unlock(UnlockRequest { key: first.key })
            .await
            .unwrap();
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the second caller gets the lock once the first unlocks")
            .unwrap()
            .unwrap()
            .into_inner();
        assert_ne!(second.key, held.as_bytes(), "{server:?}");
        assert!(second.key.starts_with(b"mutex/"), "{server:?}");
    });
}

#[test]
fn a_lock_is_released_when_its_holders_lease_expires() {
    on_both("lock-expiry", 25779, |server, members| async move {
        let short = LeaseClient::new(members[0].clone())
            .lease_grant(LeaseGrantRequest { ttl: 2, id: 0 })
            .await
            .unwrap()
            .into_inner()
            .id;
        LockClient::new(members[0].clone())
            .lock(lock("expiring", short))
            .await
            .unwrap();
        let started = Instant::now();
        // Nobody keeps the short lease alive: the lock passes on when it expires.
        let second = LockClient::new(members[1].clone())
            .lock(lock("expiring", 0))
            .await
            .unwrap()
            .into_inner();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1000),
            "{server:?}: {waited:?}"
        );
        let under = keys_under(&members[1], "expiring").await;
        assert_eq!(under.len(), 1, "{server:?}: {under:?}");
        assert_eq!(under[0].0.as_bytes(), second.key.as_slice(), "{server:?}");
    });
}

#[test]
fn a_lock_call_abandoned_while_waiting_leaves_nothing_behind() {
    on_both("lock-abandon", 26279, |server, members| async move {
        let holder = LockClient::new(members[0].clone())
            .lock(lock("gate", 0))
            .await
            .unwrap()
            .into_inner();
        let before = leases(&members[0]).await;
        let mut waiting = tonic::Request::new(lock("gate", 0));
        waiting.set_timeout(Duration::from_millis(700));
        let gave_up = LockClient::new(members[1].clone()).lock(waiting).await;
        assert!(gave_up.is_err(), "{server:?}: {gave_up:?}");
        let held = String::from_utf8(holder.key.clone()).unwrap();
        eventually("the abandoned contender's key is deleted", || async {
            keys_under(&members[2], "gate").await.len() == 1
        })
        .await;
        assert_eq!(keys_under(&members[2], "gate").await[0].0, held);
        if server == Server::Synod {
            // Beyond etcd (which leaves an abandoned session lease to expire): the
            // session lease is revoked too.
            eventually("the abandoned session lease is revoked", || async {
                leases(&members[0]).await == before
            })
            .await;
        }
        // Nothing blocks the next caller once the holder unlocks.
        LockClient::new(members[0].clone())
            .unlock(UnlockRequest { key: holder.key })
            .await
            .unwrap();
        let mut next = tonic::Request::new(lock("gate", 0));
        next.set_timeout(Duration::from_secs(3));
        LockClient::new(members[2].clone())
            .lock(next)
            .await
            .unwrap_or_else(|e| panic!("{server:?}: the next caller is blocked: {e:?}"));
    });
}

#[test]
fn a_waiter_whose_lease_expired_is_not_given_the_lock() {
    on_both("lock-lost", 29279, |server, members| async move {
        let holder = LockClient::new(members[0].clone())
            .lock(lock("lost", 0))
            .await
            .unwrap()
            .into_inner();
        let short = LeaseClient::new(members[1].clone())
            .lease_grant(LeaseGrantRequest { ttl: 2, id: 0 })
            .await
            .unwrap()
            .into_inner()
            .id;
        let mut waiter = LockClient::new(members[1].clone());
        let waiting = tokio::spawn(async move { waiter.lock(lock("lost", short)).await });
        eventually("the waiter's key is made", || async {
            keys_under(&members[2], "lost").await.len() == 2
        })
        .await;
        // Nobody keeps the waiter's lease alive: its key expires while it waits.
        eventually("the waiter's key expires", || async {
            keys_under(&members[2], "lost").await.len() == 1
        })
        .await;
        LockClient::new(members[0].clone())
            .unlock(UnlockRequest { key: holder.key })
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiter is answered once the holder unlocks")
            .unwrap();
        match server {
            // etcd 3.4 hands the lock to a contender whose key is gone (its `Mutex` does not
            // look again; 3.5's answers "session expired", as Synod does).
            Server::Etcd => assert!(answer.is_ok(), "{answer:?}"),
            Server::Synod => {
                let refused = answer.expect_err("a lock without its key");
                assert_eq!(refused.message(), "session expired");
            }
        }
    });
}

#[test]
fn a_lock_excludes_among_many_clients_on_every_member() {
    let seed = std::env::var("SYNOD_LOCK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1u64);
    println!("lock exclusion: seed {seed} (SYNOD_LOCK_SEED)");
    on_both("lock-many", 26779, |server, members| async move {
        use rand_core::{RngCore, SeedableRng};
        const CLIENTS: usize = 8;
        const ROUNDS: usize = 4;
        let started = Instant::now();
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let channel = members[client % members.len()].clone();
            let mut rng = rand_pcg::Pcg64::seed_from_u64(seed * 1000 + client as u64);
            clients.push(tokio::spawn(async move {
                let mut lock_client = LockClient::new(channel);
                let mut held = Vec::new();
                for _ in 0..ROUNDS {
                    let key = lock_client.lock(lock("shared", 0)).await.unwrap();
                    // The holder's own measure of its hold: after Lock returned, before
                    // Unlock is sent.
                    let from = started.elapsed();
                    let hold = 5 + rng.next_u64() % 40;
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    let to = started.elapsed();
                    let key = key.into_inner().key;
                    lock_client.unlock(UnlockRequest { key }).await.unwrap();
                    held.push((from, to, client));
                }
                held
            }));
        }
        let mut holds = Vec::new();
        for client in clients {
            holds.extend(client.await.unwrap());
        }
        holds.sort();
        assert_eq!(holds.len(), CLIENTS * ROUNDS);
        for pair in holds.windows(2) {
            let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
            assert!(
                end <= start,
                "{server:?}, seed {seed}: client {a} held the lock until {end:?}, \
                 client {b} from {start:?}"
            );
        }
    });
}

#[test]
fn a_campaign_without_a_lease_gets_a_session_lease_and_waits_its_turn() {
    on_both("elect-session", 27279, |server, members| async move {
        let campaign = |value: &str| CampaignRequest {
            name: b"office".to_vec(),
            lease: 0,
            value: value.as_bytes().to_vec(),
        };
        let first = ElectionClient::new(members[0].clone())
            .campaign(campaign("one"))
            .await
            .unwrap()
            .into_inner()
            .leader
            .unwrap();
        assert_ne!(first.lease, 0, "{server:?}");
        assert_eq!(
            first.key,
            format!("office/{:x}", first.lease).into_bytes(),
            "{server:?}"
        );
        let mut other = ElectionClient::new(members[1].clone());
        let second = tokio::spawn(async move { other.campaign(campaign("two")).await });
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(!second.is_finished(), "{server:?}: two leaders at once");
        ElectionClient::new(members[2].clone())
            .resign(ResignRequest {
                leader: Some(first.clone()),
            })
            .await
            .unwrap();
        let second: LeaderKey = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the second campaign wins once the first resigns")
            .unwrap()
            .unwrap()
            .into_inner()
            .leader
            .unwrap();
        assert_ne!(second.lease, first.lease, "{server:?}");
    });
}

#[test]
fn maintenance_and_cluster_answers_are_shaped_as_etcds() {
    on_both("shapes", 27779, |server, members| async move {
        let mut maintenance = MaintenanceClient::new(members[0].clone());
        let defrag = maintenance
            .defragment(DefragmentRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(defrag.header, None, "{server:?}");

        KvClient::new(members[0].clone())
            .put(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut stream = maintenance
            .snapshot(SnapshotRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut messages = Vec::new();
        while let Some(message) = stream.next().await {
            messages.push(message.unwrap());
        }
        let (digest, data) = messages.split_last().expect("a snapshot has messages");
        assert!(!data.is_empty(), "{server:?}");
        assert_eq!(data.last().unwrap().remaining_bytes, 0, "{server:?}");
        assert_eq!(digest.remaining_bytes, 0, "{server:?}");
        assert_eq!(
            digest.blob.len(),
            32,
            "{server:?}: the last message is the digest"
        );
        let bytes: Vec<u8> = data.iter().flat_map(|m| m.blob.clone()).collect();
        use sha2::Digest;
        assert_eq!(
            sha2::Sha256::digest(&bytes).as_slice(),
            digest.blob.as_slice(),
            "{server:?}"
        );
        assert!(messages.iter().all(|m| m.header.is_none()), "{server:?}");

        let list = ClusterClient::new(members[0].clone())
            .member_list(MemberListRequest::default())
            .await
            .unwrap()
            .into_inner();
        let header = list.header.unwrap();
        assert_eq!(header.revision, 0, "{server:?}");
        assert_ne!(header.cluster_id, 0, "{server:?}");
        assert_ne!(header.member_id, 0, "{server:?}");
    });
}

#[test]
fn every_member_lists_every_members_client_urls() {
    on_both("members", 28279, |server, members| async move {
        // Publishing is asynchronous on both: each member announces itself once it
        // starts, through the log.
        let mut lists = Vec::new();
        for (i, channel) in members.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(5);
            let listed = loop {
                let list = ClusterClient::new(channel.clone())
                    .member_list(MemberListRequest::default())
                    .await
                    .unwrap()
                    .into_inner();
                let mut listed: Vec<_> = list
                    .members
                    .into_iter()
                    .map(|m| (m.id, m.name, m.client_ur_ls, m.peer_ur_ls, m.is_learner))
                    .collect();
                listed.sort();
                if listed.len() == 3 && listed.iter().all(|m| m.2.len() == 1) {
                    break listed;
                }
                assert!(
                    Instant::now() < deadline,
                    "{server:?} member {i} never lists every client URL: {listed:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            println!("{server:?} member {i}: {listed:?}");
            lists.push(listed);
        }
        assert_eq!(lists[0], lists[1], "{server:?}");
        assert_eq!(lists[0], lists[2], "{server:?}");
    });
}

#[test]
fn lease_ttls_are_whole_seconds_rounded_down() {
    on_both("ttl", 28779, |server, members| async move {
        let mut leases = LeaseClient::new(members[0].clone());
        let id = leases
            .lease_grant(LeaseGrantRequest { ttl: 30, id: 0 })
            .await
            .unwrap()
            .into_inner()
            .id;
        let remaining = |leases: &mut LeaseClient<Channel>| {
            let mut leases = leases.clone();
            async move {
                let ask = LeaseTimeToLiveRequest { id, keys: false };
                let answer = leases.lease_time_to_live(ask).await.unwrap().into_inner();
                (answer.ttl, answer.granted_ttl)
            }
        };
        assert_eq!(remaining(&mut leases).await, (29, 30), "{server:?}");
        tokio::time::sleep(Duration::from_millis(1400)).await;
        assert_eq!(remaining(&mut leases).await, (28, 30), "{server:?}");
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
        let mut kept = leases
            .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let answer = kept.next().await.unwrap().unwrap();
        // A keep-alive answers with the whole TTL granted.
        assert_eq!((answer.id, answer.ttl), (id, 30), "{server:?}");
        assert_eq!(remaining(&mut leases).await, (29, 30), "{server:?}");
    });
}

/// A client that closes its side of a watch stream (no more requests) still gets the
/// events of the watches it made, until it goes away: etcd ends a watch stream only with
/// its client (the JSON gateway closes its side as soon as the request body ends).
#[test]
fn a_watch_outlives_its_clients_half_close() {
    on_both("half-close", 31779, |server, members| async move {
        let create = server::proto::etcdserverpb::WatchRequest {
            request_union: Some(
                server::proto::etcdserverpb::watch_request::RequestUnion::CreateRequest(
                    server::proto::etcdserverpb::WatchCreateRequest {
                        key: b"half".to_vec(),
                        ..Default::default()
                    },
                ),
            ),
        };
        // One request, then the stream's request side ends.
        let requests = tokio_stream::iter([create]);
        let mut answers =
            server::proto::etcdserverpb::watch_client::WatchClient::new(members[0].clone())
                .watch(requests)
                .await
                .unwrap()
                .into_inner();
        let created = answers.next().await.unwrap().unwrap();
        assert!(created.created, "{server:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        KvClient::new(members[0].clone())
            .put(PutRequest {
                key: b"half".to_vec(),
                value: b"closed".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), answers.next()).await;
        let event = next.expect("an answer in time").unwrap().unwrap();
        assert_eq!(event.events.len(), 1, "{server:?}: {event:?}");
    });
}
