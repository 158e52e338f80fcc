//! Crash tests with real processes: a child appends and acknowledges votes from several
//! threads and is killed with SIGKILL at a random moment, hundreds of times, reusing the
//! same data directory (so every run also recovers from the previous crash). After each
//! kill, every acknowledged vote must be there with its value, and nothing else may be.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use paxos::multi::Entry;
use paxos::NodeId;
use rand_core::{RngCore, SeedableRng};
use storage::{DiskOptions, DiskStorage, Identity, Storage};

fn value(slot: u64) -> u64 {
    slot.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[test]
fn killed_writers_never_lose_an_acknowledged_vote() {
    let seed = 7;
    let runs: u64 = std::env::var("SYNOD_CRASH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    println!("crash test: seed {seed}, {runs} runs");
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let dir = std::env::temp_dir().join(format!("synod-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut acknowledged = BTreeSet::new();
    let mut next_slot = 1;
    for run in 0..runs {
        let mut child = Command::new(env!("CARGO_BIN_EXE_synod-storage-torture"))
            .arg(&dir)
            .arg(next_slot.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the child starts");
        std::thread::sleep(Duration::from_micros(2_000 + rng.next_u64() % 30_000));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(err.is_empty(), "run {run}: the child failed: {err}");
        for line in out.lines() {
            // The kill may cut the last line short: only whole lines count.
            if let Some(slot) = line
                .strip_prefix("ack ")
                .and_then(|s| s.parse::<u64>().ok())
            {
                acknowledged.insert(slot);
            }
        }
        let options = DiskOptions {
            segment_bytes: 16 << 10,
            ..DiskOptions::new(Identity {
                cluster: 1,
                member: NodeId(1),
            })
        };
        let storage = DiskStorage::<u64>::open(&dir, options)
            .unwrap_or_else(|e| panic!("run {run} (seed {seed}): recovery refused: {e}"));
        let durable = storage.recovered().unwrap();
        let present: BTreeSet<u64> = durable.votes.iter().map(|(slot, _)| *slot).collect();
        for (slot, vote) in &durable.votes {
            assert_eq!(
                vote.entry,
                Entry::Command(value(*slot)),
                "run {run}: garbage at {slot}"
            );
        }
        let lost: Vec<_> = acknowledged.difference(&present).take(5).collect();
        assert!(
            lost.is_empty(),
            "run {run} (seed {seed}): acknowledged but lost: {lost:?}"
        );
        next_slot = present.last().map_or(next_slot, |s| s + 1).max(next_slot) + 4;
    }
    assert!(
        acknowledged.len() > 1000,
        "only {} acknowledged",
        acknowledged.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
