//! HTTP/1.1 on a real cluster's client ports and on `--listen-metrics-urls`: the probes
//! (`/health`, `/livez`, `/readyz`), `/version` and `/metrics` answer as etcd's do, gRPC
//! keeps working on the same port, `etcdctl check datascale` passes, and the probes turn
//! to failures (etcd's words) when the member loses its quorum.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A failure is the report.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{free_port, Cluster};

/// An answer: status code, headers (names lowercased), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`, so the answer ends
/// with the connection).
fn request(address: &str, method: &str, path: &str) -> Answer {
    let mut tcp = TcpStream::connect(address).expect("connects");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        tcp,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).expect("an answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v == "chunked");
    Answer {
        status: status.parse().expect("a status code"),
        headers,
        body: if chunked {
            unchunk(body)
        } else {
            body.to_string()
        },
    }
}

/// A chunked body's content: each chunk is its size in hex, CRLF, the bytes, CRLF.
fn unchunk(mut body: &str) -> String {
    let mut content = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        content.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    content
}

fn get(address: &str, path: &str) -> Answer {
    request(address, "GET", path)
}

/// The value of the sample `name` (no labels) in a scrape.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (n, value) = line.split_once(' ')?;
        (n == name).then(|| value.parse().ok()).flatten()
    })
}

#[test]
fn probes_version_and_metrics_answer_on_the_client_port_beside_grpc() {
    let mut c = Cluster::configure("http", &[]);
    let metrics_port = format!("127.0.0.1:{}", free_port());
    c.members[0].extra = vec![
        "--listen-metrics-urls".into(),
        format!("http://{metrics_port}"),
    ];
    c.start_all();
    let client = c.members[0].client.clone();

    for address in [&client, &metrics_port] {
        let health = get(address, "/health");
        assert_eq!(health.status, 200, "{health:?}");
        assert_eq!(
            health.json(),
            serde_json::json!({"health": "true", "reason": ""})
        );
        let version = get(address, "/version");
        assert_eq!(version.header("content-type"), Some("application/json"));
        assert_eq!(
            version.json(),
            serde_json::json!({"etcdserver": "3.5.13", "etcdcluster": "3.5.0"})
        );
        assert_eq!(get(address, "/livez").body, "ok\n");
        let ready = get(address, "/readyz?verbose");
        assert_eq!(
            (ready.status, ready.body.as_str()),
            (
                200,
                "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok\n"
            )
        );
        assert_eq!(get(address, "/readyz/linearizable_read").body, "ok\n");
    }

    // gRPC still answers on the port that just served HTTP/1.1.
    assert_eq!(c.etcdctl(&["put", "k", "v"]).trim(), "OK");
    let scrape = get(&client, "/metrics");
    assert_eq!(scrape.status, 200);
    let metrics = &scrape.body;
    assert_eq!(
        sample(metrics, "etcd_server_has_leader"),
        Some(1.0),
        "{metrics}"
    );
    assert!(sample(metrics, "process_resident_memory_bytes").unwrap_or(0.0) > 1e6);
    assert!(sample(metrics, "etcd_server_proposals_committed_total").unwrap_or(0.0) >= 1.0);
    assert!(sample(metrics, "etcd_debugging_mvcc_keys_total").unwrap_or(0.0) >= 1.0);
    assert!(metrics.contains("synod_quorum_system{spec=\"majority\"} 1"));
    let handled_puts = metrics
        .lines()
        .find(|l| l.starts_with("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\""));
    assert!(handled_puts.is_some(), "{metrics}");
    assert!(sample(metrics, "etcd_disk_wal_fsync_duration_seconds_count").unwrap_or(0.0) >= 1.0);

    let datascale = c.etcdctl(&["check", "datascale"]);
    assert!(datascale.contains("PASS"), "{datascale}");
}

#[test]
fn probes_fail_as_etcds_do_once_the_quorum_is_gone() {
    let mut c = Cluster::start("http-quorum");
    let client = c.members[0].client.clone();
    c.kill(1);
    c.kill(2);
    // The survivor loses its leader within an election timeout or two.
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let health = get(&client, "/health");
        if health.status != 200 || Instant::now() > deadline {
            break health;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(health.header("x-content-type-options"), Some("nosniff"));
    let json: Value = serde_json::from_str(health.body.trim_end()).expect("JSON");
    assert_eq!(json["health"], "false");
    let reason = json["reason"].as_str().unwrap_or_default();
    assert!(
        reason == "RAFT NO LEADER" || reason.starts_with("RANGE ERROR:"),
        "{reason}"
    );
    // A serializable check and liveness do not need the cluster.
    assert_eq!(get(&client, "/health?serializable=true").status, 200);
    assert_eq!(get(&client, "/livez").status, 200);
    let ready = get(&client, "/readyz");
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(
        ready.body.starts_with(
            "[+]data_corruption ok\n[+]serializable_read ok\n[-]linearizable_read failed: "
        ),
        "{ready:?}"
    );
    let scrape = get(&client, "/metrics").body;
    assert!(sample(&scrape, "etcd_server_health_failures").unwrap_or(0.0) >= 1.0);
}

#[test]
fn bad_requests_get_etcds_answers_and_the_member_serves_on() {
    let c = Cluster::start("http-bad");
    let client = c.members[0].client.clone();
    let missing = get(&client, "/no/such/path");
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, "404 page not found\n")
    );
    for path in ["/health", "/version", "/livez", "/readyz"] {
        let refused = request(&client, "POST", path);
        assert_eq!(refused.status, 405, "{path}: {refused:?}");
        assert_eq!(refused.body, "Method Not Allowed\n");
        assert_eq!(refused.header("allow"), Some("GET"));
    }
    // Garbage that is neither HTTP/2 nor HTTP/1.1: a 400 and a closed connection.
    let mut tcp = TcpStream::connect(&client).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"\x16\x03\x01garbage\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    // A client that connects and sends nothing holds no one up.
    let _idle = TcpStream::connect(&client).unwrap();
    assert_eq!(get(&client, "/health").status, 200);
    assert_eq!(c.etcdctl(&["put", "after", "bad"]).trim(), "OK");
}

/// A reference etcd 3.4 (`scripts/etcd-ref`), stopped when dropped.
struct Etcd(std::path::PathBuf);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = std::process::Command::new(etcd_ref())
            .arg("stop")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn etcd_ref() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/etcd-ref")
}

/// One etcd member with its client port at 29879 (this test's base of etcd-ref's scheme).
fn start_etcd() -> (Etcd, String) {
    let dir = std::env::temp_dir().join(format!("synod-http-etcd-{}", std::process::id()));
    let out = std::process::Command::new(etcd_ref())
        .args(["start", dir.to_str().unwrap(), "1", "29779"])
        .output()
        .expect("scripts/etcd-ref runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let endpoint = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (Etcd(dir), endpoint)
}

/// The metric names of a scrape's samples, histogram series folded into their name.
fn metric_names(scrape: &str) -> std::collections::BTreeSet<String> {
    let names = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    let names = names.filter_map(|l| l.split(['{', ' ']).next());
    let folded = names.map(|n| {
        let n = n.strip_suffix("_bucket").unwrap_or(n);
        let n = n.strip_suffix("_sum").unwrap_or(n);
        n.strip_suffix("_count").unwrap_or(n).to_string()
    });
    folded.collect()
}

/// Where etcd 3.4 has the same endpoint, Synod answers as it does: error codes and
/// bodies, the JSON keys, and every metric Synod exports under an etcd, gRPC or process
/// name is one etcd exports too (a misspelt name would break a dashboard silently).
#[test]
fn the_http_surface_matches_etcd_where_etcd_34_has_it() {
    let (_etcd, etcd) = start_etcd();
    let c = Cluster::start("http-diff");
    let synod = c.members[0].client.clone();
    for (method, path) in [
        ("GET", "/no/such/path"),
        ("POST", "/health"),
        ("POST", "/version"),
    ] {
        let (ours, theirs) = (request(&synod, method, path), request(&etcd, method, path));
        assert_eq!(
            (
                ours.status,
                &ours.body,
                ours.header("allow"),
                ours.header("content-type")
            ),
            (
                theirs.status,
                &theirs.body,
                theirs.header("allow"),
                theirs.header("content-type")
            ),
            "{method} {path}"
        );
    }
    let keys = |answer: Answer| {
        let json = answer.json();
        json.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(keys(get(&synod, "/version")), keys(get(&etcd, "/version")));
    assert_eq!(
        get(&synod, "/health").json()["health"],
        get(&etcd, "/health").json()["health"]
    );

    let theirs = metric_names(&get(&etcd, "/metrics").body);
    let ours = metric_names(&get(&synod, "/metrics").body);
    let borrowed: Vec<&String> = ours
        .iter()
        .filter(|n| {
            ["etcd_", "grpc_", "process_"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    assert!(borrowed.len() > 25, "{borrowed:?}");
    let unknown: Vec<&&String> = borrowed.iter().filter(|n| !theirs.contains(**n)).collect();
    assert!(unknown.is_empty(), "not etcd's names: {unknown:?}");
}
