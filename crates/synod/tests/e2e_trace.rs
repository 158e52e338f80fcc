//! Traces from a real cluster: three `synod serve` members with `--trace-file`, writes,
//! the leader killed with SIGKILL, a new leader elected, more writes, the old leader
//! restarted (catching up by snapshot), then the members' files merged with `synod trace
//! merge` and read back with `sim::trace::read`: every delivery pairs with a send, the
//! clocks are the ones happened-before gives (the reader recomputes them), the new
//! leader's election follows the crash. The merged trace is kept (its path is printed) for
//! the explorer; `scripts/trace-example` copies it into `docs/examples/`.
//!
//! Bad input too: a member's file cut mid-line (what a kill may leave) still merges, and
//! two files of three (deliveries whose sends are in no file) are refused, naming the file
//! and line, with nothing written.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A failure is the report.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::Cluster;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The leader's member id as the members at `endpoints` report it, once they agree on one
/// other than `not`.
fn leader(c: &Cluster, endpoints: &str, not: u64) -> (u64, Vec<(String, u64)>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = c.etcdctl_at(endpoints, &["endpoint", "status", "-w", "json"]);
        if out.status.success() {
            let status = json(&String::from_utf8_lossy(&out.stdout));
            let members: Vec<(String, u64, u64)> = (status.as_array().unwrap().iter())
                .map(|s| {
                    let endpoint = s["Endpoint"].as_str().unwrap().to_string();
                    let id = s["Status"]["header"]["member_id"].as_u64().unwrap();
                    // Protobuf's JSON leaves a zero out: no leader yet.
                    (endpoint, id, s["Status"]["leader"].as_u64().unwrap_or(0))
                })
                .collect();
            let first = members[0].2;
            if first != 0 && first != not && members.iter().all(|m| m.2 == first) {
                return (
                    first,
                    members.into_iter().map(|(e, id, _)| (e, id)).collect(),
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "no agreed leader other than {not:x}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn puts(c: &Cluster, endpoints: &str, from: usize, to: usize) {
    for i in from..to {
        let out = c.etcdctl_at(endpoints, &["put", &format!("k{i}"), &format!("v{i}")]);
        assert!(
            out.status.success(),
            "put k{i}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            c.logs()
        );
    }
}

fn merge(files: &[PathBuf], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["trace", "merge"])
        .args(files)
        .arg("-o")
        .arg(out)
        .output()
        .expect("synod trace merge runs")
}

/// Stops member `i` with SIGTERM (an orderly shutdown: its trace ends with it) and waits.
fn terminate(c: &mut Cluster, i: usize) {
    if let Some(mut child) = c.members[i].child.take() {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "member {i} ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_real_failover_merges_into_a_trace_the_reader_accepts() {
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-trace");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    // Frequent snapshots: the restarted member catches up by one (a snapshot stream).
    let mut c = Cluster::configure("trace", &["--snapshot-count", "10"]);
    let files: Vec<PathBuf> = (0..3)
        .map(|i| c.root().join(format!("{}.trace", c.members[i].name)))
        .collect();
    for (member, file) in c.members.iter_mut().zip(&files) {
        member.extra = vec!["--trace-file".into(), file.display().to_string()];
    }
    c.start_all();
    let all = c.endpoints();
    let (old, ids) = leader(&c, &all, 0);
    let killed = ids.iter().position(|(_, id)| *id == old).unwrap();
    puts(&c, &all, 0, 12);

    c.kill(killed);
    let rest = c.endpoints();
    let (new, _) = leader(&c, &rest, old);
    puts(&c, &rest, 12, 30);

    c.spawn(killed);
    c.wait_healthy();
    puts(&c, &c.endpoints(), 30, 34);
    // The restarted member catches up before the end.
    let deadline = Instant::now() + Duration::from_secs(20);
    let at_restarted = ids[killed].0.clone();
    loop {
        let out = c.etcdctl_at(&at_restarted, &["get", "k33", "--consistency=s"]);
        if String::from_utf8_lossy(&out.stdout).contains("v33") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted member never caught up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..3 {
        terminate(&mut c, i);
    }
    for file in &files {
        std::fs::copy(file, artifacts.join(file.file_name().unwrap())).unwrap();
    }

    let out_path = artifacts.join("failover.jsonl");
    let out = merge(&files, &out_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&out_path).unwrap();
    let trace = sim::trace::read(&bytes).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "merged trace of a real failover ({} events, {} bytes): {}",
        trace.events.len(),
        bytes.len(),
        out_path.display()
    );
    if let Ok(example) = std::env::var("SYNOD_TRACE_EXAMPLE") {
        std::fs::write(&example, &bytes).unwrap();
        eprintln!("copied to {example}");
    }

    // The merged nodes are the members, by name; the killed one's number.
    let names: Vec<&str> = trace.header.nodes.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["s1", "s2", "s3"]);
    let number = |i: usize| trace.header.nodes[i].0;
    let (old_node, killed_name) = (number(killed), &c.members[killed].name);
    assert_eq!(trace.header.nodes[killed].1, *killed_name);

    // Every delivery pairs with a send; every message between the two members that ran
    // throughout, sent before the restart (long before any member stopped), was delivered
    // (or dropped at its sender, its queue full).
    let sent: std::collections::HashSet<u64> = (trace.events.iter())
        .filter(|e| e.what == "send")
        .filter_map(|e| e.id)
        .collect();
    let arrived: std::collections::HashSet<u64> = (trace.events.iter())
        .filter(|e| e.what == "deliver" || e.what == "drop")
        .filter_map(|e| e.id)
        .collect();
    assert!(arrived.iter().all(|id| sent.contains(id)));
    let restart = (trace.events.iter())
        .position(|e| e.node == old_node && e.what == "restart")
        .expect("the killed member's restart is recorded");
    let survivor = |node: Option<u64>| node.is_some_and(|n| n != old_node);
    let lost: Vec<&sim::trace::Event> = (trace.events[..restart].iter())
        .filter(|e| e.what == "send" && survivor(Some(e.node)) && survivor(e.peer))
        .filter(|e| !e.id.is_some_and(|id| arrived.contains(&id)))
        .collect();
    assert!(lost.is_empty(), "sent and never delivered: {lost:?}");
    assert!(
        !trace.events.iter().any(|e| e.what == "receive"),
        "every member traces: every message is stamped"
    );

    // The old leader's crash: its restart, a crash fault before it, and a new leader
    // elected in between, whose election the crash happened before... in wall-clock time;
    // causally, the new leader's election follows the old leader's last event heard of.
    let before_crash = (trace.events[..restart].iter())
        .rposition(|e| e.node == old_node)
        .expect("the killed member recorded events before its crash");
    let fault = (trace.faults.iter())
        .find(|f| f.kind == "crash" && f.nodes == [old_node])
        .expect("a crash fault for the killed member");
    assert_eq!(fault.start, trace.events[before_crash].time);
    assert_eq!(fault.end, Some(trace.events[restart].time));
    let new_index = ids.iter().position(|(_, id)| *id == new).unwrap();
    let elected = (trace.events.iter().enumerate())
        .find(|(i, e)| *i > before_crash && e.what == "elected" && e.node == number(new_index))
        .map(|(i, _)| i)
        .expect("the new leader's election after the crash");
    assert!(elected < restart || trace.events[elected].time >= fault.start);
    let first_ballot = |node: u64| {
        (trace.events.iter())
            .find(|e| e.what == "elected" && e.node == node)
            .and_then(|e| e.state.as_ref())
            .and_then(|s| s.promised.clone())
    };
    assert_ne!(
        first_ballot(old_node),
        trace.events[elected]
            .state
            .as_ref()
            .and_then(|s| s.promised.clone())
    );
    assert!(trace.events[elected]
        .state
        .as_ref()
        .is_some_and(|s| s.role == "leader"));
    // The restarted member installed a snapshot, streamed as one send of many chunks.
    assert!(
        (trace.events[restart..].iter())
            .any(|e| e.node == old_node && e.what == "install-snapshot"),
        "the restarted member catches up by snapshot"
    );
    // Every member applied every write (34 puts, and the no-ops and membership entries).
    for (node, _) in &trace.header.nodes {
        let applies = (trace.events.iter())
            .filter(|e| e.node == *node && e.what == "apply")
            .count();
        assert!(applies >= 20, "node {node} applied {applies} slots");
    }
    // Time never goes backwards (the reader checks it too) and starts at 0.
    assert_eq!(trace.events[0].time, 0);

    // A member's file cut mid-line, as a kill may leave it, still merges (the cut line
    // left out, with a note).
    let cut = artifacts.join(format!("{killed_name}-cut.trace"));
    let mut text = std::fs::read(&files[killed]).unwrap();
    text.extend_from_slice(b"{\"time\":1,\"node\":");
    std::fs::write(&cut, &text).unwrap();
    let mut with_cut = files.clone();
    with_cut[killed] = cut.clone();
    let out = merge(&with_cut, &artifacts.join("cut.jsonl"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("cut short"), "{said}");

    // Two files of three: deliveries whose sends are in no file; refused, nothing written.
    let partial = artifacts.join("partial.jsonl");
    let out = merge(&files[..2], &partial);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("whose send is in no file"), "{said}");
    assert!(said.contains(".trace:"), "names the file and line: {said}");
    assert!(!partial.exists());
}
