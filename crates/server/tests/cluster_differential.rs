//! Differential test of the Cluster and MoveLeader refusals: the same wrong requests go
//! to a three-member Synod cluster and to a three-member etcd 3.4 (`scripts/etcd-ref`),
//! and every answer must be the same gRPC code and message. (The successful changes are
//! tested end to end with etcdctl in `crates/synod/tests/e2e_membership.rs`.)

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::time::Duration;

use server::proto::etcdserverpb as pb;
use server::proto::etcdserverpb::cluster_client::ClusterClient;
use server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tonic::transport::Channel;

mod common;

/// The code and message of an answer, or "ok".
fn outcome<T>(answer: Result<tonic::Response<T>, tonic::Status>) -> String {
    match answer {
        Ok(_) => "ok".into(),
        Err(status) => format!("{:?}: {}", status.code(), status.message()),
    }
}

/// Each wrong request's answer at the cluster whose members serve `endpoints`.
async fn refusals(endpoints: &[String]) -> Vec<(&'static str, String)> {
    let channel: Channel = common::ready_channel(&endpoints[0]).await;
    let mut cluster = ClusterClient::new(channel);
    let members = cluster
        .member_list(pb::MemberListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .members;
    let (first, second) = (&members[0], &members[1]);
    let mut answers = Vec::new();
    let add = |urls: Vec<String>| pb::MemberAddRequest {
        peer_ur_ls: urls,
        is_learner: false,
    };
    let used = first.peer_ur_ls.clone();
    answers.push((
        "add, a peer URL in use",
        outcome(cluster.member_add(add(used)).await),
    ));
    let bad = vec!["127.0.0.1:1".to_string()];
    answers.push((
        "add, a URL without scheme",
        outcome(cluster.member_add(add(bad)).await),
    ));
    let remove = pb::MemberRemoveRequest { id: 0x1234 };
    answers.push((
        "remove, unknown",
        outcome(cluster.member_remove(remove).await),
    ));
    let promote = pb::MemberPromoteRequest { id: first.id };
    answers.push((
        "promote, a voter",
        outcome(cluster.member_promote(promote).await),
    ));
    let promote = pb::MemberPromoteRequest { id: 0x1234 };
    answers.push((
        "promote, unknown",
        outcome(cluster.member_promote(promote).await),
    ));
    let update = pb::MemberUpdateRequest {
        id: 0x1234,
        peer_ur_ls: vec!["http://127.0.0.1:1".into()],
    };
    answers.push((
        "update, unknown",
        outcome(cluster.member_update(update).await),
    ));
    let update = pb::MemberUpdateRequest {
        id: first.id,
        peer_ur_ls: second.peer_ur_ls.clone(),
    };
    answers.push((
        "update, another's URL",
        outcome(cluster.member_update(update).await),
    ));
    // MoveLeader, asked of the leader, and of a member that is not.
    let mut leader = None;
    let mut follower = None;
    for endpoint in endpoints {
        let channel = common::ready_channel(endpoint).await;
        let mut maintenance = MaintenanceClient::new(channel);
        let status = maintenance
            .status(pb::StatusRequest::default())
            .await
            .unwrap();
        let status = status.into_inner();
        let me = status.header.map(|h| h.member_id);
        if me == Some(status.leader) {
            leader = Some(maintenance);
        } else {
            follower = Some((maintenance, status.leader));
        }
    }
    let mut leader = leader.expect("a leader");
    let (mut follower, leader_id) = follower.expect("a follower");
    let unknown = pb::MoveLeaderRequest { target_id: 0x1234 };
    answers.push((
        "move-leader, unknown",
        outcome(leader.move_leader(unknown).await),
    ));
    let to_leader = pb::MoveLeaderRequest {
        target_id: leader_id,
    };
    let from_follower = outcome(follower.move_leader(to_leader).await);
    answers.push(("move-leader, asked of a follower", from_follower));
    answers
}

#[test]
fn cluster_api_refusals_answer_as_etcd_does() {
    let (_etcd, etcd_endpoints) = common::start_etcd("cluster-diff", 3, 24479);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let synod_members = common::start_synod(&runtime, "cluster-diff", 3);
    runtime.block_on(async {
        // etcd refuses any change within five seconds of its start ("unhealthy cluster").
        tokio::time::sleep(Duration::from_secs(6)).await;
        let ours = refusals(&synod_members.endpoints).await;
        let theirs = refusals(&etcd_endpoints).await;
        for ((what, a), (_, b)) in ours.iter().zip(&theirs) {
            println!("{what}: {a}");
            assert_eq!(a, b, "{what}: synod answered {a:?}, etcd {b:?}");
        }
    });
    drop(synod_members);
    runtime.shutdown_timeout(Duration::from_secs(3));
}
