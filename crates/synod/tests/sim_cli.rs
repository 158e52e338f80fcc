//! The `synod sim synod` command as a user runs it: the real binary, its output and its
//! exit codes.

// A test that cannot start the binary or read its output has nothing left to check.
#![allow(clippy::expect_used)]

use std::process::{Command, Output};

fn synod(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(args)
        .output()
        .expect("the synod binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

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

#[test]
fn unsafe_or_malformed_configurations_are_refused_with_the_reason() {
    let unsafe_quorum = synod(&["sim", "synod", "--quorum", "flexible:2,2"]);
    assert_eq!(unsafe_quorum.status.code(), Some(2));
    let err = String::from_utf8_lossy(&unsafe_quorum.stderr);
    assert!(
        err.contains("is unsafe") && err.contains("flexible:4,2"),
        "{err}"
    );

    let malformed = synod(&["sim", "synod", "--quorum", "grid:3*6"]);
    assert_eq!(malformed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("expected majority"));

    let no_acceptors = synod(&["sim", "synod", "--acceptors", "0"]);
    assert_eq!(no_acceptors.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_acceptors.stderr).contains("at least one acceptor"));

    let zero_timeout = synod(&["sim", "synod", "--round-timeout-ticks", "0"]);
    assert_eq!(zero_timeout.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&zero_timeout.stderr).contains("round_timeout_ticks"));

    let bad_loss = synod(&["sim", "synod", "--loss", "1.5"]);
    assert_eq!(bad_loss.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_loss.stderr).contains("probability"));
}
