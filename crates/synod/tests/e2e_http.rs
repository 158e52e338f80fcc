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
use support::etcd::Etcd;
use support::http::{scrubbed, Answer};
use support::{free_port, Cluster};

/// One HTTP/1.1 request on a fresh connection (`Connection: close`, so the answer ends
/// with the connection).
fn request(address: &str, method: &str, path: &str) -> Answer {
    request_with(address, method, path, "")
}

/// A request with `body` (JSON), on a fresh connection.
fn request_with(address: &str, method: &str, path: &str, body: &str) -> Answer {
    support::http::request(address, method, path, &[], body)
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

    // The leader times its heartbeats' round trips to each peer.
    let timed = c.members.iter().any(|m| {
        get(&m.client, "/metrics").body.lines().any(|l| {
            l.starts_with("etcd_network_peer_round_trip_time_seconds_count{To=\"")
                && !l.ends_with(" 0")
        })
    });
    assert!(timed, "no member timed a peer round trip");
    let batched = c.members.iter().any(|m| {
        let metrics = get(&m.client, "/metrics").body;
        sample(&metrics, "synod_accept_batch_slots_count").unwrap_or(0.0) > 0.0
    });
    assert!(batched, "no leader counted its accept batches");

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

/// One etcd member with its client port at `base + 100` (etcd-ref's scheme: each test
/// its own base).
fn start_etcd(name: &str, base: u16) -> (Etcd, String) {
    start_etcds(name, base, 1)
}

/// `members` etcd members; the first one's endpoint.
fn start_etcds(name: &str, base: u16, members: u32) -> (Etcd, String) {
    let (etcd, endpoints) = support::etcd::start(name, base, members);
    (etcd, endpoints[0].clone())
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
    // Three members, so that etcd has peers to time round trips to.
    let (_etcd, etcd) = start_etcds("http", 29779, 3);
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

    // etcd probes its peers every few seconds; its first round trips take that long.
    let deadline = Instant::now() + Duration::from_secs(15);
    let theirs = loop {
        let names = metric_names(&get(&etcd, "/metrics").body);
        if names.contains("etcd_network_peer_round_trip_time_seconds") || Instant::now() > deadline
        {
            break names;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
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

/// The lines a streaming gateway call answers with, `n` of them, while `meanwhile` runs
/// once the first has arrived.
fn stream_lines(
    address: &str,
    path: &str,
    body: &str,
    n: usize,
    meanwhile: impl FnOnce(),
) -> Vec<Value> {
    use std::io::{BufRead, BufReader};
    let mut tcp = TcpStream::connect(address).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        tcp,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    // The head, then chunks: a size line, the data line(s), an empty line.
    while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
        line.clear();
    }
    let mut lines = Vec::new();
    let mut meanwhile = Some(meanwhile);
    while lines.len() < n {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let text = line.trim();
        if text.starts_with('{') {
            let mut json: Value = serde_json::from_str(text).unwrap();
            if let Some(map) = json.get_mut("result").and_then(Value::as_object_mut) {
                if let Some(header) = map.get_mut("header").and_then(Value::as_object_mut) {
                    for field in ["cluster_id", "member_id", "raft_term"] {
                        header.remove(field);
                    }
                }
            }
            lines.push(json);
            if let Some(run) = meanwhile.take() {
                run();
            }
        }
    }
    lines
}

/// etcd's JSON gateway, request by request against etcd 3.4's: the same status, and the
/// same JSON but for cluster and member ids and terms.
#[test]
fn the_json_gateway_answers_as_etcds() {
    let (_etcd, etcd) = start_etcd("gateway", 30779);
    let c = Cluster::start("gateway");
    let synod = c.members[0].client.clone();
    let calls: &[(&str, &str)] = &[
        ("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#),
        (
            "/v3/kv/put",
            r#"{"key":"Zm9vMg==","value":"YmF6","prev_kv":true}"#,
        ),
        ("/v3/kv/range", r#"{"key":"Zm9v"}"#),
        (
            "/v3/kv/range",
            r#"{"key":"Zm9v","range_end":"Zm9w","keys_only":true}"#,
        ),
        (
            "/v3/kv/range",
            r#"{"key":"Zm9v","rangeEnd":"Zm9w","countOnly":true}"#,
        ),
        ("/v3/kv/range", r#"{"key":"Zm9v","revision":"999"}"#),
        ("/v3/kv/range", r#"{"key":"bm9uZQ=="}"#),
        ("/v3/kv/range", ""),
        (
            "/v3/kv/txn",
            r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],"success":[{"request_put":{"key":"Zm9v","value":"cXV4"}}],"failure":[{"request_range":{"key":"Zm9v"}}]}"#,
        ),
        (
            "/v3/kv/txn",
            r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],"success":[{"request_put":{"key":"Zm9v","value":"cXV4"}}],"failure":[{"request_range":{"key":"Zm9v"}}]}"#,
        ),
        ("/v3/kv/deleterange", r#"{"key":"Zm9vMg==","prev_kv":true}"#),
        ("/v3/lease/grant", r#"{"TTL":"60","ID":"4242"}"#),
        (
            "/v3/kv/put",
            r#"{"key":"bGVhc2Vk","value":"eA==","lease":"4242"}"#,
        ),
        ("/v3/lease/timetolive", r#"{"ID":"4242","keys":true}"#),
        ("/v3/kv/lease/leases", "{}"),
        ("/v3/lease/revoke", r#"{"ID":"4242"}"#),
        ("/v3/lease/revoke", r#"{"ID":"4242"}"#),
        ("/v3/kv/compaction", r#"{"revision":"2"}"#),
        ("/v3/kv/range", r#"{"key":"Zm9v","revision":"1"}"#),
        ("/v3/maintenance/alarm", r#"{"action":"GET"}"#),
    ];
    for (path, body) in calls {
        let ours = scrubbed(&request_with(&synod, "POST", path, body));
        let theirs = scrubbed(&request_with(&etcd, "POST", path, body));
        assert_eq!(ours, theirs, "POST {path} {body}");
    }
    // Bad input: the status and gRPC code match; the message is the JSON parser's own.
    for (path, body) in [("/v3/kv/range", "not json"), ("/v3/kv/put", r#"{"key":5}"#)] {
        let (ours, theirs) = (
            request_with(&synod, "POST", path, body),
            request_with(&etcd, "POST", path, body),
        );
        assert_eq!(
            ours.status, theirs.status,
            "{path} {body}: {ours:?} {theirs:?}"
        );
        assert_eq!(ours.json()["code"], theirs.json()["code"], "{path} {body}");
    }
    for (method, path) in [("POST", "/v3/no/such"), ("GET", "/v3/kv/range")] {
        let (ours, theirs) = (request(&synod, method, path), request(&etcd, method, path));
        assert_eq!(
            (ours.status, &ours.body),
            (theirs.status, &theirs.body),
            "{method} {path}"
        );
    }
    for path in ["/v3/maintenance/status", "/v3/cluster/member/list"] {
        let keys = |answer: Answer| {
            let json = answer.json();
            json.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
        };
        let (ours, theirs) = (
            request_with(&synod, "POST", path, "{}"),
            request_with(&etcd, "POST", path, "{}"),
        );
        assert_eq!(keys(ours), keys(theirs), "{path}");
    }

    // A watch streams its events as lines; a keep-alive answers once the body ends.
    let watch = r#"{"create_request":{"key":"d2F0Y2hlZA==","prev_kv":true}}"#;
    let put = r#"{"key":"d2F0Y2hlZA==","value":"MQ=="}"#;
    let on = |address: &str| {
        stream_lines(address, "/v3/watch", watch, 2, || {
            request_with(address, "POST", "/v3/kv/put", put);
        })
    };
    assert_eq!(on(&synod), on(&etcd));
    for address in [&synod, &etcd] {
        request_with(
            address,
            "POST",
            "/v3/lease/grant",
            r#"{"TTL":"60","ID":"77"}"#,
        );
    }
    let keepalive = |address: &str| {
        scrubbed(&request_with(
            address,
            "POST",
            "/v3/lease/keepalive",
            r#"{"ID":"77"}"#,
        ))
    };
    let (ours, theirs) = (keepalive(&synod), keepalive(&etcd));
    assert_eq!(ours, theirs);
    assert_eq!(ours.1["result"]["TTL"], "60", "{ours:?}");
}

/// `--logger zap` writes etcd's JSON lines, to every `--log-outputs` file.
#[test]
fn zap_logs_are_etcds_json_lines() {
    let mut c = Cluster::configure("zap", &[]);
    let log = std::env::temp_dir().join(format!("synod-zap-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let outputs = format!("stderr,{}", log.display());
    c.members[0].extra = ["--logger", "zap", "--log-outputs", &outputs]
        .iter()
        .map(|s| s.to_string())
        .collect();
    c.start_all();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["msg"] == "member serving"), "{text}");
    for (line, raw) in lines.iter().zip(text.lines()) {
        assert!(raw.starts_with("{\"level\":"), "{raw}");
        let ts = line["ts"].as_str().unwrap();
        assert_eq!(
            (ts.len(), &ts[ts.len() - 1..], &ts[10..11]),
            (27, "Z", "T"),
            "{ts}"
        );
        assert!(line["caller"].as_str().unwrap().contains(".rs:"), "{raw}");
        assert!(["info", "warn", "error", "debug"].contains(&line["level"].as_str().unwrap()));
    }
    let _ = std::fs::remove_file(&log);
}

/// A gateway watch whose client never reads: the events back up to it (bounded queues,
/// then the watcher falls behind), and the member goes on serving everyone else.
#[test]
fn a_gateway_watch_that_never_reads_holds_no_one_up() {
    let c = Cluster::start("gateway-stall");
    let client = c.members[0].client.clone();
    let mut stalled = TcpStream::connect(&client).unwrap();
    let body = r#"{"create_request":{"key":"cw==","range_end":"dA=="}}"#;
    write!(
        stalled,
        "POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let value = support::b64(&"x".repeat(3000));
    for i in 0..1500 {
        let key = support::b64(&format!("s{i}"));
        let put = format!(r#"{{"key":"{key}","value":"{value}"}}"#);
        let answer = request_with(&client, "POST", "/v3/kv/put", &put);
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(get(&client, "/health").status, 200);
    assert_eq!(c.etcdctl(&["put", "after", "stall"]).trim(), "OK");
    let rss = sample(
        &get(&client, "/metrics").body,
        "process_resident_memory_bytes",
    )
    .unwrap();
    assert!(rss < 400e6, "resident memory {rss} with one stalled watch");
    drop(stalled);
    assert_eq!(c.etcdctl(&["put", "after", "close"]).trim(), "OK");
}
