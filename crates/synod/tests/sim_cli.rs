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
