//! End to end with Debian's etcdctl against a real three-member `synod serve` cluster:
//! every command a user of etcd would type, answered as etcd answers it.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{b64, Background, Cluster};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn put_get_delete_and_txn_answer_as_etcd_does() {
    let c = Cluster::start("kv");
    assert_eq!(c.etcdctl(&["put", "foo1", "a"]).trim(), "OK");
    assert_eq!(c.etcdctl(&["put", "foo2", "b"]).trim(), "OK");
    assert_eq!(c.etcdctl(&["put", "foo1", "c"]).trim(), "OK");
    assert_eq!(c.etcdctl(&["get", "foo", "--prefix"]), "foo1\nc\nfoo2\nb\n");

    let limited = json(&c.etcdctl(&["get", "foo", "--prefix", "--limit", "1", "-w", "json"]));
    assert_eq!(limited["count"], 2);
    assert_eq!(limited["more"], true);
    assert_eq!(limited["kvs"][0]["key"], b64("foo1"));
    assert_eq!(limited["kvs"][0]["version"], 2);
    assert_eq!(limited["kvs"][0]["create_revision"], 2);
    assert_eq!(limited["kvs"][0]["mod_revision"], 4);
    assert_eq!(limited["header"]["revision"], 4);

    // A historical read sees the first value.
    assert_eq!(c.etcdctl(&["get", "foo1", "--rev=2"]), "foo1\na\n");
    assert_eq!(c.etcdctl(&["del", "foo", "--prefix"]).trim(), "2");
    assert_eq!(c.etcdctl(&["get", "foo", "--prefix"]), "");

    let mut txn = c.etcdctl_spawn(&c.endpoints(), &["txn"]);
    let script = "create(\"t\") = \"0\"\n\nput t first\n\nput t other\n\n";
    txn.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = txn.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SUCCESS\n\nOK\n");
    assert_eq!(
        c.etcdctl(&["get", "t", "--print-value-only"]).trim(),
        "first"
    );

    // Compaction, then a read below it fails with etcd's error.
    c.etcdctl(&["compact", "6"]);
    let old = c.etcdctl_at(&c.endpoints(), &["get", "t", "--rev=3"]);
    assert!(!old.status.success());
    let err = String::from_utf8_lossy(&old.stderr);
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
}

#[test]
fn watch_sees_writes_made_through_another_member() {
    let c = Cluster::start("watch");
    c.etcdctl(&["put", "w/old", "0"]);
    let first = c.members[0].client.clone();
    let mut watch = Background(c.etcdctl_spawn(&first, &["watch", "w/", "--prefix", "--rev=1"]));
    let stdout = watch.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let third = c.members[2].client.clone();
    assert!(c
        .etcdctl_at(&third, &["put", "w/new", "1"])
        .status
        .success());
    assert!(c.etcdctl_at(&third, &["del", "w/old"]).status.success());
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines.len() < 8 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(line);
        }
    }
    drop(watch);
    assert_eq!(
        lines,
        ["PUT", "w/old", "0", "PUT", "w/new", "1", "DELETE", "w/old"],
        "{}",
        c.logs()
    );
}

#[test]
fn leases_grant_keep_alive_expire_and_revoke() {
    let c = Cluster::start("lease");
    let granted = c.etcdctl(&["lease", "grant", "2"]);
    let id = granted.split_whitespace().nth(1).unwrap().to_string();
    c.etcdctl(&["put", "leased", "v", &format!("--lease={id}")]);
    let ttl = c.etcdctl(&["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.contains("granted with TTL(2s)") && ttl.contains("attached keys([leased])"),
        "{ttl}"
    );
    assert!(c.etcdctl(&["lease", "list"]).contains(&id));

    // Kept alive, the lease outlives its TTL.
    let mut keeper = c.etcdctl_spawn(&c.endpoints(), &["lease", "keep-alive", &id]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        c.etcdctl(&["get", "leased", "--print-value-only"]).trim(),
        "v"
    );
    let _ = keeper.kill();
    let _ = keeper.wait();
    // Left alone it expires, and its key goes with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.etcdctl(&["get", "leased"]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the lease never expired\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(c
        .etcdctl(&["lease", "timetolive", &id])
        .contains("already expired"));

    let other = c.etcdctl(&["lease", "grant", "100"]);
    let other = other.split_whitespace().nth(1).unwrap().to_string();
    c.etcdctl(&["put", "k2", "v", &format!("--lease={other}")]);
    assert!(c.etcdctl(&["lease", "revoke", &other]).contains("revoked"));
    assert_eq!(c.etcdctl(&["get", "k2"]), "");
}

#[test]
fn cluster_maintenance_lock_election_and_snapshot() {
    let c = Cluster::start("maint");
    let members = c.etcdctl(&["member", "list"]);
    for m in &c.members {
        assert!(
            members.contains(&format!("{}, http://{}", m.name, m.peer)),
            "{members}"
        );
    }
    let status = json(&c.etcdctl(&["endpoint", "status", "-w", "json"]));
    let leaders: Vec<u64> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Status"]["leader"].as_u64().unwrap())
        .collect();
    assert!(
        leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]),
        "{status}"
    );
    let health = c.etcdctl_at(&c.endpoints(), &["endpoint", "health"]);
    let said = String::from_utf8_lossy(&health.stderr).into_owned()
        + &String::from_utf8_lossy(&health.stdout);
    assert_eq!(said.matches("is healthy").count(), 3, "{said}");

    // Lock: a second contender waits until the first lets go.
    let mut first = c.etcdctl_spawn(&c.endpoints(), &["lock", "L"]);
    let mut first_out = BufReader::new(first.stdout.take().unwrap());
    let mut key = String::new();
    first_out.read_line(&mut key).unwrap();
    assert!(key.starts_with("L/"), "{key}");
    let second = c.etcdctl_spawn(&c.endpoints(), &["lock", "L", "echo", "got-it"]);
    std::thread::sleep(Duration::from_millis(700));
    let _ = first.kill(); // Its session's lease goes once keep-alives stop.
    let _ = first.wait();
    let out = second.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "got-it",
        "{}",
        c.logs()
    );

    // Election: a campaigner leads and others see its value.
    let mut alice = c.etcdctl_spawn(&c.endpoints(), &["elect", "E", "alice"]);
    let mut alice_out = BufReader::new(alice.stdout.take().unwrap());
    let mut line = String::new();
    alice_out.read_line(&mut line).unwrap();
    assert!(line.starts_with("E/"), "{line}");
    // `elect -l` observes: it prints the leader's key and value, then every change.
    let mut observer = c.etcdctl_spawn(&c.endpoints(), &["elect", "-l", "E"]);
    let mut observed = BufReader::new(observer.stdout.take().unwrap());
    let (mut key, mut value) = (String::new(), String::new());
    observed.read_line(&mut key).unwrap();
    observed.read_line(&mut value).unwrap();
    assert_eq!((key.trim(), value.trim()), (line.trim(), "alice"));
    let _ = observer.kill();
    let _ = observer.wait();
    let _ = alice.kill();
    let _ = alice.wait();

    let path = std::env::temp_dir().join(format!("synod-e2e-snap-{}.db", std::process::id()));
    let first_member = c.members[0].client.clone();
    let saved = c.etcdctl_at(
        &first_member,
        &["snapshot", "save", &path.display().to_string()],
    );
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    assert!(std::fs::metadata(&path).unwrap().len() > 32);
    let _ = std::fs::remove_file(path);
}

/// etcdctl's output, stdout and stderr together (per-endpoint commands report there).
fn said(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn url_endpoints_and_cluster_wide_commands_reach_every_member() {
    let c = Cluster::start("urls");
    // A URL endpoint makes etcdctl send `:authority: http://…` on per-endpoint calls.
    let url = format!("http://{}", c.members[0].client);
    for args in [
        &["endpoint", "status", "-w", "json"][..],
        &["endpoint", "hashkv"],
    ] {
        let out = c.etcdctl_at(&url, args);
        assert!(out.status.success(), "{args:?}: {}", said(&out));
        assert!(said(&out).contains(&url), "{args:?}: {}", said(&out));
    }

    // With --cluster, etcdctl asks one member for the member list and then talks to
    // every member at the client URLs listed: so every member must be listed with them.
    let one = c.members[0].client.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = c.etcdctl_at(&one, &["endpoint", "health", "--cluster"]);
        let healthy = said(&out).matches("is healthy").count();
        if out.status.success() && healthy == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "endpoint health --cluster: {}",
            said(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = c.etcdctl_at(&one, &["endpoint", "status", "--cluster", "-w", "json"]);
    let status = json(&String::from_utf8_lossy(&status.stdout));
    assert_eq!(status.as_array().map(Vec::len), Some(3), "{status}");
    let hashes = c.etcdctl_at(&url, &["endpoint", "hashkv", "--cluster"]);
    let lines: Vec<String> = String::from_utf8_lossy(&hashes.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 3, "{}", said(&hashes));
    let hash = |line: &str| line.rsplit(", ").next().unwrap_or_default().to_owned();
    assert!(
        lines.iter().all(|l| hash(l) == hash(&lines[0])),
        "{lines:?}"
    );
    let defrag = c.etcdctl_at(&url, &["defrag", "--cluster"]);
    assert_eq!(
        said(&defrag).matches("Finished defragmenting").count(),
        3,
        "{}",
        said(&defrag)
    );

    // And every member lists the same members, client URLs included.
    let lists: Vec<Value> = c
        .members
        .iter()
        .map(|m| {
            let out = c.etcdctl_at(&m.client, &["member", "list", "-w", "json"]);
            json(&String::from_utf8_lossy(&out.stdout))["members"].clone()
        })
        .collect();
    for m in &c.members {
        assert!(
            lists[0]
                .to_string()
                .contains(&format!("http://{}", m.client)),
            "{}",
            lists[0]
        );
    }
    assert!(lists.iter().all(|l| *l == lists[0]), "{lists:?}");
}

#[test]
fn bad_requests_get_etcds_errors_and_change_nothing() {
    let c = Cluster::start("errors");
    // Above the 1.5 MiB default limit; etcdctl reads the value from stdin.
    let mut put = c.etcdctl_spawn(&c.endpoints(), &["put", "big"]);
    let mut stdin = put.stdin.take().unwrap();
    stdin.write_all(&vec![b'x'; 2 << 20]).unwrap();
    drop(stdin);
    let out = put.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("request is too large") || err.contains("larger than max"),
        "{err}"
    );
    let out = c.etcdctl_at(&c.endpoints(), &["put", "k", "v", "--lease=1234"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("requested lease not found"));
    let out = c.etcdctl_at(&c.endpoints(), &["get", "k", "--rev=99"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("required revision is a future revision"));
    let status = json(&c.etcdctl(&["get", "k", "-w", "json"]));
    assert_eq!(status["header"]["revision"], 1, "nothing was applied");
}

/// A running `synod dev`: the process, its last member's client endpoint, its data dir.
struct Dev {
    process: Background,
    /// `synod dev`'s stdout, after its banner (dropped to close it).
    stdout: Option<BufReader<std::process::ChildStdout>>,
    endpoint: String,
    dir: std::path::PathBuf,
}

#[allow(clippy::unwrap_used)] // Test support: a failure is the report.
impl Dev {
    /// Starts `synod dev --members N` and waits for its banner.
    fn start(members: u16) -> Dev {
        let last = 10_000 * (members - 1);
        // `synod dev` binds the port + 10,000·i (and each + 1) for each member i: below the
        // kernel's ephemeral range (32768 on) when they fit, where another test's outgoing
        // connection could take one first, and otherwise checked free just before.
        let port = loop {
            let p = support::free_port();
            let Some(top) = p.checked_add(last + 1) else {
                continue;
            };
            let all_free = (0..members).all(|i| {
                let port = p + 10_000 * i;
                std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
                    && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok()
            });
            if all_free && (top < 32_768 || members > 3) {
                break p;
            }
        };
        let dir =
            std::env::temp_dir().join(format!("synod-e2e-dev{members}-{}", std::process::id()));
        let args = [
            "--members".to_string(),
            members.to_string(),
            "--port".to_string(),
            port.to_string(),
            "--data-dir".to_string(),
            dir.display().to_string(),
        ];
        let (process, banner, printed) = support::spawn_dev(&args);
        assert!(
            printed.contains(&format!("synod dev: {members} members")),
            "{printed}"
        );
        let endpoint = format!("127.0.0.1:{}", port + last);
        assert!(printed.contains(&endpoint), "{printed}");
        Dev {
            process,
            stdout: Some(banner),
            endpoint,
            dir,
        }
    }

    fn etcdctl(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .args(args)
            .output()
            .unwrap()
    }

    /// Writes through the last member once the cluster has a leader, and reads it back.
    fn put_and_get(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.etcdctl(&["put", "greeting", "hello"]).status.success() {
            assert!(Instant::now() < deadline, "synod dev never took a write");
            std::thread::sleep(Duration::from_millis(200));
        }
        let got = self.etcdctl(&["get", "greeting", "--print-value-only"]);
        assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "hello");
    }

    /// Sends SIGINT and expects a clean exit.
    fn interrupt(mut self) {
        let interrupted = std::process::Command::new("kill")
            .args(["-INT", &self.process.0.id().to_string()])
            .status()
            .unwrap();
        assert!(interrupted.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.process.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "synod dev did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}");
        assert!(
            self.dir.join("s1/member").is_dir(),
            "data lives under --data-dir"
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn synod_dev_serves_etcdctl_and_stops_cleanly_on_ctrl_c() {
    support::etcdctl_installed();
    let dev = Dev::start(3);
    dev.put_and_get();
    dev.interrupt();
}

#[test]
fn synod_dev_stops_cleanly_when_its_stdout_was_closed() {
    support::etcdctl_installed();
    let mut dev = Dev::start(1);
    dev.put_and_get();
    dev.stdout = None; // Whoever read the banner went away: `synod dev | head -3`.
    dev.interrupt();
}

#[test]
fn synod_dev_runs_five_members() {
    support::etcdctl_installed();
    let dev = Dev::start(5);
    dev.put_and_get();
    let list = dev.etcdctl(&["member", "list"]);
    let mut names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|line| line.split(", ").nth(2).unwrap_or_default().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["s1", "s2", "s3", "s4", "s5"], "{list:?}");
    dev.interrupt();
}

#[test]
fn over_quota_the_cluster_refuses_writes_until_compacted_and_disarmed() {
    let c = Cluster::start_with("quota", &["--quota-backend-bytes", "20000"]);
    let value = "v".repeat(1000);
    let mut refused = None;
    for i in 0..200 {
        let out = c.etcdctl_at(&c.endpoints(), &["put", &format!("k{}", i % 5), &value]);
        if !out.status.success() {
            refused = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = refused.expect("the quota never refused a write");
    assert!(refused.contains("database space exceeded"), "{refused}");
    assert!(c.etcdctl(&["alarm", "list"]).contains("NOSPACE"));
    // Reads and deletes still work.
    assert_eq!(
        c.etcdctl(&["get", "k1", "--print-value-only"]).trim(),
        value
    );
    assert_eq!(c.etcdctl(&["del", "k4"]).trim(), "1");
    let revision = json(&c.etcdctl(&["get", "k1", "-w", "json"]))["header"]["revision"]
        .as_i64()
        .unwrap();
    c.etcdctl(&["compact", &revision.to_string()]);
    c.etcdctl(&["alarm", "disarm"]);
    assert_eq!(c.etcdctl(&["alarm", "list"]), "");
    assert_eq!(c.etcdctl(&["put", "after", "ok"]).trim(), "OK");
}

#[test]
fn a_backup_restores_into_a_new_cluster_with_the_same_keys_and_revision() {
    let c = Cluster::start("backup");
    c.etcdctl(&["put", "a", "1"]);
    c.etcdctl(&["put", "b", "2"]);
    c.etcdctl(&["del", "a"]);
    c.etcdctl(&["put", "b", "3"]);
    let before = json(&c.etcdctl(&["get", "", "--from-key", "-w", "json"]));
    let file = std::env::temp_dir().join(format!("synod-e2e-backup-{}.db", std::process::id()));
    let one = c.members[0].client.clone();
    let saved = c.etcdctl_at(&one, &["snapshot", "save", &file.display().to_string()]);
    assert!(saved.status.success());
    drop(c);

    let mut fresh = Cluster::configure("restored", &[]);
    for i in 0..3 {
        let out = fresh.restore(i, &file);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("at revision 5"));
    }
    // Restoring over existing data is refused.
    let again = fresh.restore(0, &file);
    assert!(!again.status.success());
    fresh.start_all();
    let after = json(&fresh.etcdctl(&["get", "", "--from-key", "-w", "json"]));
    assert_eq!(after["kvs"], before["kvs"]);
    assert_eq!(after["header"]["revision"], before["header"]["revision"]);
    assert_eq!(fresh.etcdctl(&["put", "c", "4"]).trim(), "OK");
    let _ = std::fs::remove_file(file);
}

#[test]
fn synod_bench_runs_every_workload_against_a_cluster() {
    let c = Cluster::start("bench");
    let endpoints = c.endpoints();
    for workload in [
        vec!["put"],
        vec!["range", "--consistency", "l"],
        vec!["range", "--consistency", "s"],
        vec!["txn-put"],
        vec!["watch-latency"],
        vec!["mixed"],
        vec!["kubernetes"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_synod"))
            .arg("bench")
            .args(&workload)
            .args(["--endpoints", &endpoints, "--clients", "8", "--conns", "3"])
            .args(["--total", "300", "--key-space", "50", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{workload:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result = json(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(result["requests"], 300, "{workload:?}: {result}");
        assert_eq!(result["errors"], 0, "{workload:?}: {result}");
        let p50 = result["percentiles_secs"]["p50"].as_f64().unwrap();
        let p99 = result["percentiles_secs"]["p99"].as_f64().unwrap();
        assert!(0.0 < p50 && p50 <= p99, "{workload:?}: {result}");
    }
}
