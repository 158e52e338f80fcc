//! The `synod sim synod` command as a user runs it: the real binary, its output and its
//! exit codes.

// A test that cannot start the binary or read its output has nothing left to check.
#![allow(clippy::expect_used)]

mod common;

use common::{stdout, synod};

const README_DEMO: &[&str] = &[
    "sim",
    "synod",
    "--acceptors",
    "5",
    "--proposers",
    "3",
    "--loss",
    "0.2",
    "--dup",
    "0.1",
    "--seed",
    "7",
];

#[test]
fn readme_demo_prints_a_safe_timeline_and_the_same_one_every_time() {
    let first = synod(README_DEMO);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = stdout(&first);
    for expected in [
        "prepare (1.P1)",
        "promise",
        "accept",
        "nack",
        "✗ lost",
        "★     CHOSEN",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.contains("safety: safe"));
    assert_eq!(stdout(&synod(README_DEMO)), text, "same seed, same output");
}

#[test]
fn every_quorum_system_runs() {
    for (quorum, acceptors) in [("majority", "3"), ("flexible:4,2", "5"), ("grid:2x3", "6")] {
        let output = synod(&["sim", "synod", "--quorum", quorum, "--acceptors", acceptors]);
        assert!(output.status.success(), "{quorum}");
        assert!(stdout(&output).contains("safety: safe"), "{quorum}");
    }
}

#[test]
fn seed000_scenario_shows_why_later_proposals_carry_the_chosen_value() {
    let output = synod(&["sim", "synod", "--scenario", "seed000"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("CHOSEN \"banana\" at (1.P3): accepted by A2, A3, A4"));
    assert!(text.contains("P1    learns \"banana\" is chosen"));
}

/// Runs `synod sim synod ARGS`, expecting exit code 2 and each of `reasons` on stderr.
fn refused(args: &[&str], reasons: &[&str]) {
    let output = synod(&[&["sim", "synod"], args].concat());
    assert_eq!(output.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8_lossy(&output.stderr);
    for reason in reasons {
        assert!(err.contains(reason), "{args:?}: {err}");
    }
}

#[test]
fn unsafe_or_malformed_configurations_are_refused_with_the_reason() {
    refused(
        &["--quorum", "flexible:2,2"],
        &["is unsafe", "flexible:4,2"],
    );
    refused(&["--quorum", "grid:3*6"], &["expected majority"]);
    refused(&["--acceptors", "0"], &["at least one acceptor"]);
    refused(&["--round-timeout-ticks", "0"], &["round_timeout_ticks"]);
    refused(&["--loss", "1.5"], &["probability"]);
}

/// A file in the test's own temporary directory.
fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("synod-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir.join(name)
}

/// `synod sim` of seed 2 for 200 ticks, its trace written to `path`.
fn seed_2_traced_to(path: &str) -> [&str; 7] {
    [
        "sim",
        "--seed",
        "2",
        "--duration-ticks",
        "200",
        "--trace",
        path,
    ]
}

#[test]
fn trace_flags_write_traces_that_read_back_and_shiviz_logs() {
    let seed000 = temp("seed000.jsonl");
    let path = seed000.to_str().expect("a UTF-8 path");
    let output = synod(&["sim", "synod", "--scenario", "seed000", "--trace", path]);
    assert!(output.status.success());
    let bytes = std::fs::read(&seed000).expect("the trace was written");
    let trace = sim::trace::read(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trace.header.source, "synod");
    assert!(trace.events.iter().any(|e| e.what == "chosen"));

    let cluster = temp("cluster.jsonl");
    let path = cluster.to_str().expect("a UTF-8 path");
    let args = seed_2_traced_to(path);
    assert!(synod(&args).status.success());
    let first = std::fs::read(&cluster).expect("the trace was written");
    sim::trace::read(&first).unwrap_or_else(|e| panic!("{e}"));
    assert!(synod(&args).status.success());
    assert!(
        std::fs::read(&cluster).expect("written again") == first,
        "same seed, same trace, byte for byte"
    );

    let shiviz = temp("cluster.log");
    let path = shiviz.to_str().expect("a UTF-8 path");
    let args = seed_2_traced_to(path);
    assert!(synod(&[&args[..], &["--format", "shiviz"]].concat())
        .status
        .success());
    let text = std::fs::read_to_string(&shiviz).expect("the log was written");
    assert!(text.starts_with(sim::trace::SHIVIZ_REGEX));
    assert!(text.contains("n1 {\"n1\":1"), "{}", &text[..400]);
    let _ = std::fs::remove_dir_all(seed000.parent().expect("a directory"));
}

#[test]
fn format_without_trace_is_refused() {
    let output = synod(&["sim", "synod", "--format", "shiviz"]);
    assert_eq!(output.status.code(), Some(2));
}
