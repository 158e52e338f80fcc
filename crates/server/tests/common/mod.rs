//! What the server's integration tests share: a reference etcd from `scripts/etcd-ref`,
//! and Synod members in the test's own process.

#![allow(dead_code)] // Each test crate uses part of it.

use std::time::Duration;

use paxos::QuorumSpec;
use server::config::{self, ClusterState, Config};

#[path = "../../../synod/tests/support/ports.rs"]
mod ports;
pub use ports::free_port;

#[path = "../../../synod/tests/support/etcd.rs"]
mod etcd;
pub use etcd::Etcd;

/// Starts `members` etcd members with client ports `base + 100·i` (etcd-ref's scheme:
/// each test takes a base of its own); returns their `http://` endpoints.
pub fn start_etcd(name: &str, members: u32, base: u16) -> (Etcd, Vec<String>) {
    let (etcd, endpoints) = etcd::start(name, base, members);
    let endpoints = endpoints.iter().map(|e| format!("http://{e}")).collect();
    (etcd, endpoints)
}

/// Synod members running on a runtime of the test's; stopped when dropped.
pub struct Synod {
    stop: tokio::sync::watch::Sender<bool>,
    /// Each member's client endpoint (`http://127.0.0.1:PORT`).
    pub endpoints: Vec<String>,
}

impl Drop for Synod {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts `members` Synod members on `runtime`, data under a fresh temp dir named after
/// `name`.
pub fn start_synod(runtime: &tokio::runtime::Runtime, name: &str, members: usize) -> Synod {
    start_synod_with(runtime, name, members, |_| {})
}

/// As [`start_synod`], each member's configuration changed by `tweak` first.
pub fn start_synod_with(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    members: usize,
    tweak: impl Fn(&mut Config),
) -> Synod {
    let root = std::env::temp_dir().join(format!("synod-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let ports: Vec<(u16, u16)> = (0..members).map(|_| (free_port(), free_port())).collect();
    let cluster: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("s{i}=http://127.0.0.1:{peer}"))
        .collect();
    let (members, cluster_id) =
        config::parse_initial_cluster(&cluster.join(","), name).expect("a valid cluster");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for (i, (client, peer)) in ports.iter().enumerate() {
        let mut config = Config {
            name: format!("s{i}"),
            data_dir: root.join(format!("s{i}")),
            listen_client: vec![config::Endpoint::plain(
                format!("127.0.0.1:{client}").parse().expect("an address"),
            )],
            advertise_client_urls: vec![format!("http://127.0.0.1:{client}")],
            listen_peer: config::Endpoint::plain(
                format!("127.0.0.1:{peer}").parse().expect("an address"),
            ),
            members: members.clone(),
            cluster_id,
            cluster_state: ClusterState::New,
            heartbeat: Duration::from_millis(50),
            election_timeout: Duration::from_millis(500),
            max_request_bytes: server::limits::REQUEST_BYTES_DEFAULT,
            quota_backend_bytes: server::limits::QUOTA_BACKEND_BYTES_DEFAULT,
            quorum: QuorumSpec::Majority,
            snapshot_entries: 100,
            io_uring: true,
            auth: Default::default(),
            listen_metrics: Vec::new(),
            etcd_version: config::ETCD_VERSION_DEFAULT.into(),
            watch_progress_notify_interval: config::WATCH_PROGRESS_NOTIFY_DEFAULT,
            client_tls: Default::default(),
            trace_file: None,
            peer_tls: Default::default(),
        };
        tweak(&mut config);
        let mut stopped = stopped.clone();
        runtime.spawn(server::server::run(config, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
    }
    let endpoints = ports
        .iter()
        .map(|(client, _)| format!("http://127.0.0.1:{client}"))
        .collect();
    Synod { stop, endpoints }
}

/// A channel to `endpoint` once a linearizable read succeeds there (a leader is known).
pub async fn ready_channel(endpoint: &str) -> tonic::transport::Channel {
    use server::proto::etcdserverpb::{kv_client::KvClient, RangeRequest};
    for _ in 0..100 {
        let channel =
            tonic::transport::Channel::from_shared(endpoint.to_string()).expect("a valid endpoint");
        if let Ok(channel) = channel.connect().await {
            let probe = RangeRequest {
                key: b"probe".to_vec(),
                ..Default::default()
            };
            if KvClient::new(channel.clone()).range(probe).await.is_ok() {
                return channel;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{endpoint} never became ready");
}
