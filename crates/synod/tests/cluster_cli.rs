//! `synod sim` (a Multi-Paxos cluster under faults) and `synod check` as a user runs them:
//! the real binary, its output, its files and its exit codes.

// A test that cannot start the binary or read its output has nothing left to check.
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::process::Output;

mod common;

use common::{stdout, synod};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("synod-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[test]
fn one_seed_prints_a_summary_with_every_checker_and_replays_identically() {
    let run = synod(&["sim", "--seed", "3", "--duration-ticks", "500"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = stdout(&run);
    for expected in [
        "operations:",
        "faults:",
        "elections:",
        "trace hash",
        "agreement ok",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let again = synod(&["sim", "--seed", "3", "--duration-ticks", "500"]);
    assert_eq!(stdout(&again), text, "same seed, same run");
}

#[test]
fn a_seed_range_runs_every_quorum_system() {
    for (quorum, nodes) in [("majority", "3"), ("grid:2x2", "4"), ("flexible:4,2", "5")] {
        let run = synod(&[
            "sim",
            "--seeds",
            "0..20",
            "--quorum",
            quorum,
            "--nodes",
            nodes,
            "--duration-ticks",
            "300",
        ]);
        assert!(run.status.success(), "{quorum}: {}", stdout(&run));
        assert!(
            stdout(&run).contains("20 seeds (0..20): 20 passed, 0 failed"),
            "{quorum}"
        );
    }
}

#[test]
fn the_trace_is_written_as_json_lines() {
    let path = scratch("trace.jsonl");
    let file = path.to_str().expect("utf-8 path");
    let run = synod(&[
        "sim",
        "--seed",
        "1",
        "--duration-ticks",
        "200",
        "--trace",
        file,
    ]);
    assert!(run.status.success());
    let text = std::fs::read_to_string(&path).expect("trace written");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 100);
    // The versioned header (docs/SIMULATOR.md, "Trace format"), then events with their
    // vector clocks.
    assert!(
        lines[0].starts_with("{\"format\":\"synod-trace\",\"version\":1,"),
        "{}",
        lines[0]
    );
    for line in lines.iter().skip(1).take(50) {
        assert!(
            line.starts_with("{\"time\":")
                && line.contains("\"event\":")
                && line.contains("\"clock\":["),
            "{line}"
        );
    }
    assert!(text.contains("\"message\":\"accept\"") && text.contains("\"slot\":"));
}

#[test]
fn nonsense_flags_are_refused_with_the_reason() {
    for (args, reason) in [
        (&["sim", "--seeds", "5..5"][..], "holds no seed"),
        (
            &["sim", "--seeds", "0..3", "--trace", "t.jsonl"][..],
            "single --seed",
        ),
        (&["sim", "--quorum", "grid:2x2", "--nodes", "5"][..], "grid"),
        (&["sim", "--loss", "2"][..], "probability"),
    ] {
        let run = synod(args);
        assert_eq!(run.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(reason), "{args:?}: {err}");
    }
}

fn check(name: &str, history: &str) -> Output {
    let path = scratch(name);
    std::fs::write(&path, history).expect("history written");
    synod(&["check", path.to_str().expect("utf-8 path")])
}

#[test]
fn check_tells_linearizable_from_not_and_names_the_operations() {
    let good = "{\"client\":1,\"key\":\"k\",\"op\":\"put\",\"value\":\"a\",\"call\":0,\"return\":5}\n\
                {\"client\":2,\"key\":\"k\",\"op\":\"get\",\"call\":6,\"return\":7,\"result\":\"a\"}\n";
    let run = check("good.jsonl", good);
    assert!(run.status.success());
    assert!(stdout(&run).contains("linearizable (2 operations)"));

    let stale = format!(
        "{good}{{\"client\":1,\"key\":\"k\",\"op\":\"put\",\"value\":\"b\",\"call\":8,\"return\":9}}\n\
         {{\"client\":2,\"key\":\"k\",\"op\":\"get\",\"call\":10,\"return\":11,\"result\":\"a\"}}\n"
    );
    let run = check("stale.jsonl", &stale);
    assert_eq!(run.status.code(), Some(1));
    let text = stdout(&run);
    assert!(text.contains("NOT linearizable: key k"), "{text}");
    assert!(text.contains("stuck line 4"), "{text}");
}

#[test]
fn check_refuses_malformed_histories_naming_the_line() {
    let truncated = "{\"client\":1,\"key\":\"k\",\"op\":\"put\",\"value\":\"a\",\"call\":0,\"return\":5}\n{\"client\":1,";
    let run = check("truncated.jsonl", truncated);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("line 2: not valid JSON"));
    let backwards =
        "{\"client\":1,\"key\":\"k\",\"op\":\"get\",\"call\":9,\"return\":3,\"result\":null}";
    let run = check("backwards.jsonl", backwards);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("line 1: returns at 3 before its call at 9")
    );
    let run = synod(&["check", "/nonexistent/history.jsonl"]);
    assert_eq!(run.status.code(), Some(2));
}
