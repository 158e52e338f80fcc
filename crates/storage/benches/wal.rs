//! Fsynced appends of 256-byte records with 1, 16 and 256 concurrent writers, beside the
//! raw fdatasync rate of the same disk, measured the same way; the committer's cases with
//! direct I/O (the default) and through the page cache.
//!
//! `cargo bench -p synod-storage --bench wal` (directory: `$SYNOD_BENCH_DIR`, default
//! `target/wal-bench`; seconds per case: `$SYNOD_BENCH_SECONDS`, default 3).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]
#![allow(clippy::cast_possible_truncation)]

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paxos::multi::{Entry, Write};
use paxos::{Ballot, NodeId};
use storage::{Committer, DiskOptions, DiskStorage, Identity, Storage};

/// A command whose record is 256 bytes on disk.
const COMMAND_BYTES: usize = 256 - 9 - 16 - 8 - 4 - 1 - 4;

fn main() {
    let dir = std::env::var("SYNOD_BENCH_DIR")
        .map_or_else(|_| PathBuf::from("target/wal-bench"), PathBuf::from);
    let seconds: u64 = std::env::var("SYNOD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let duration = Duration::from_secs(seconds);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!("directory {}, {seconds} s per case", dir.display());
    println!(
        "{:<40} {:>12} {:>10} {:>10}",
        "case", "appends/s", "p50 µs", "p99 µs"
    );
    let raw = raw_fdatasync(&dir, duration);
    report("raw write+fdatasync", &raw, duration);
    for writers in [1, 16, 256] {
        let latencies = appends(&dir, writers, duration);
        report(&format!("persist, {writers} threads"), &latencies, duration);
    }
    for direct_io in [true, false] {
        let how = if direct_io { "" } else { " (page cache)" };
        for writers in [1, 16, 256] {
            let latencies = committed(&dir, writers, direct_io, duration);
            report(
                &format!("committer, {writers} writers{how}"),
                &latencies,
                duration,
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn raw_fdatasync(dir: &std::path::Path, duration: Duration) -> Vec<Duration> {
    let path = dir.join("raw");
    let mut file: File = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let record = [7u8; 256];
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        file.write_all(&record).unwrap();
        file.sync_data().unwrap();
        latencies.push(t.elapsed());
    }
    latencies
}

fn appends(dir: &std::path::Path, writers: u64, duration: Duration) -> Vec<Duration> {
    let path = dir.join(format!("wal-{writers}"));
    let options = DiskOptions::new(Identity {
        cluster: 1,
        member: NodeId(1),
    });
    let storage = Arc::new(DiskStorage::<Vec<u8>>::open(path, options).unwrap());
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let storage = storage.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut slot = w + 1;
                while start.elapsed() < duration {
                    let t = Instant::now();
                    storage.persist(vec![write_at(slot)]).unwrap();
                    latencies.push(t.elapsed());
                    slot += writers;
                }
                latencies
            })
        })
        .collect();
    let latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    print_sync_stats(writers, latencies.len(), &storage);
    latencies
}

/// `writers` closed-loop writers as tasks (each with one append outstanding), in front of
/// one group-commit thread: how a server's requests reach the disk.
fn committed(
    dir: &std::path::Path,
    writers: u64,
    direct_io: bool,
    duration: Duration,
) -> Vec<Duration> {
    let path = dir.join(format!("committer-{writers}-{direct_io}"));
    let options = DiskOptions {
        direct_io,
        ..DiskOptions::new(Identity {
            cluster: 1,
            member: NodeId(1),
        })
    };
    let storage = Arc::new(DiskStorage::<Vec<u8>>::open(path, options).unwrap());
    let committer = Committer::start(storage.clone());
    let (reply, answers) = std::sync::mpsc::channel();
    let mut sent_at = vec![Instant::now(); writers as usize];
    let mut slot = 0;
    let mut submit = |writer: u64, sent_at: &mut Vec<Instant>| {
        slot += 1;
        sent_at[writer as usize] = Instant::now();
        let reply = reply.clone();
        let notify = Box::new(move |completion| {
            let _ = reply.send(completion);
        });
        assert!(committer.submit(vec![write_at(slot)], writer, notify));
    };
    for writer in 0..writers {
        submit(writer, &mut sent_at);
    }
    let start = Instant::now();
    let mut latencies = Vec::new();
    while start.elapsed() < duration {
        let (writer, result) = answers.recv().unwrap();
        result.unwrap();
        latencies.push(sent_at[writer as usize].elapsed());
        submit(writer, &mut sent_at);
    }
    print_sync_stats(writers, latencies.len(), &storage);
    latencies
}

/// The 256-byte record written at `slot`.
fn write_at(slot: u64) -> Write<Vec<u8>> {
    Write::Votes {
        ballot: Ballot::new(1, NodeId(1)),
        first: slot,
        entries: vec![Entry::Command(vec![1u8; COMMAND_BYTES])].into(),
    }
}

fn print_sync_stats(writers: u64, appends: usize, storage: &DiskStorage<Vec<u8>>) {
    let (syncs, micros) = storage.sync_stats();
    println!(
        "  ({writers} writers: {syncs} syncs, {:.1} appends per sync, {:.0} µs per sync)",
        appends as f64 / syncs.max(1) as f64,
        micros as f64 / syncs.max(1) as f64
    );
}

fn report(name: &str, latencies: &[Duration], duration: Duration) {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| {
        sorted.get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
    };
    let micros = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e6);
    let rate = latencies.len() as f64 / duration.as_secs_f64();
    println!(
        "{name:<40} {rate:>12.0} {:>10.1} {:>10.1}",
        micros(at(0.5)),
        micros(at(0.99))
    );
}
