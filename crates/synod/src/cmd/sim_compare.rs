//! `synod sim compare-elections`: the same seeds with Paxos's election and with Raft's
//! vote restriction, a leader crash in each, and what each failover cost.

use std::fmt::Write as _;
use std::io::Write as _;
use std::ops::Range;
use std::process::ExitCode;

use clap::Args;
use paxos::multi::ElectionMode;
use paxos::QuorumSpec;
use sim::cluster::{self, FaultRates, Options};

/// Flags of `synod sim compare-elections`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The seeds, `A..B` (B excluded): each runs once per election mode.
    #[arg(long, default_value = "0..200", value_parser = super::sim_cluster::parse_range)]
    seeds: Range<u64>,
    /// Number of replicas.
    #[arg(long, default_value_t = 5)]
    nodes: u64,
    /// Quorum system: majority, flexible:Q1,Q2 or grid:RxC.
    #[arg(long, default_value = "majority", value_parser = super::sim::parse_quorum)]
    quorum: QuorumSpec,
    /// Clients, each with one operation outstanding.
    #[arg(long, default_value_t = 5)]
    clients: u64,
    /// The leader crashes at this tick (it restarts when the run heals).
    #[arg(long, default_value_t = 300)]
    crash_at_tick: u64,
    /// Ticks before the run heals (the crashed leader restarts then).
    #[arg(long, default_value_t = 1_000)]
    duration_ticks: u64,
    /// Chance a message is lost (no other random fault runs: the crash is the failover).
    #[arg(long, default_value_t = FaultRates::default().loss)]
    loss: f64,
    /// Chance a message is delivered twice.
    #[arg(long, default_value_t = FaultRates::default().duplication)]
    dup: f64,
}

/// One mode's runs.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: Vec<u64>,
    /// Per failover that committed: time (µs), messages, bytes, elections.
    times: Vec<u64>,
    messages: Vec<u64>,
    bytes: Vec<u64>,
    elections: Vec<u64>,
    /// Seeds whose failover never committed before the run ended.
    stuck: Vec<u64>,
}

impl CompareArgs {
    fn options(&self, seed: u64, election: ElectionMode) -> Options {
        Options {
            nodes: self.nodes,
            quorum: self.quorum,
            clients: self.clients,
            duration_ticks: self.duration_ticks,
            seed,
            faults: FaultRates {
                loss: self.loss,
                duplication: self.dup,
                ..FaultRates::none()
            },
            trace: false,
            election,
            crash_leader_at_tick: Some(self.crash_at_tick),
            ..Options::default()
        }
    }
}

/// Runs every seed in both modes; exit 1 if a checker failed in either.
pub fn run(args: CompareArgs) -> Result<ExitCode, String> {
    if args.crash_at_tick >= args.duration_ticks {
        return Err("--crash-at-tick must come before --duration-ticks".into());
    }
    let modes = [("paxos", ElectionMode::Paxos), ("raft", ElectionMode::Raft)];
    let mut tallies: [Tally; 2] = Default::default();
    // Per seed, the two times when both committed: paired, as the seeds are the same.
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    for seed in args.seeds.clone() {
        let mut times = [None, None];
        for (i, (_, mode)) in modes.iter().enumerate() {
            let report = cluster::run(args.options(seed, *mode))?;
            let tally = &mut tallies[i];
            if report.failures.is_empty() {
                tally.passed += 1;
            } else {
                tally.failed.push(seed);
            }
            let Some(failover) = report.failover else {
                tally.stuck.push(seed);
                continue;
            };
            match failover.first_commit_us {
                Some(us) => {
                    times[i] = Some(us);
                    tally.times.push(us);
                    tally.messages.push(failover.messages);
                    tally.bytes.push(failover.bytes);
                    tally.elections.push(failover.elections);
                }
                None => tally.stuck.push(seed),
            }
        }
        if let [Some(paxos), Some(raft)] = times {
            pairs.push((paxos, raft));
        }
    }
    let mut out = String::new();
    let runs = args.seeds.end - args.seeds.start;
    let _ = writeln!(
        out,
        "{runs} seeds ({}..{}), {} replicas ({}), {} clients, loss {}, dup {}; the leader \
         crashes at tick {}",
        args.seeds.start,
        args.seeds.end,
        args.nodes,
        args.quorum,
        args.clients,
        args.loss,
        args.dup,
        args.crash_at_tick
    );
    let _ = writeln!(
        out,
        "{:<6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "mode",
        "checkers",
        "failed",
        "no commit",
        "ms p50",
        "ms p90",
        "msgs p50",
        "msgs mean",
        "bytes p50",
        "elections"
    );
    for ((name, _), t) in modes.iter().zip(&tallies) {
        let _ = writeln!(
            out,
            "{:<6} {:>8} {:>8} {:>9} {:>9.1} {:>9.1} {:>9} {:>9.1} {:>10} {:>9.2}",
            name,
            t.passed,
            t.failed.len(),
            t.stuck.len(),
            percentile(&t.times, 50) as f64 / 1000.0,
            percentile(&t.times, 90) as f64 / 1000.0,
            percentile(&t.messages, 50),
            mean(&t.messages),
            percentile(&t.bytes, 50),
            mean(&t.elections)
        );
    }
    let faster = pairs.iter().filter(|(p, r)| r < p).count();
    let slower = pairs.iter().filter(|(p, r)| r > p).count();
    let _ = writeln!(
        out,
        "paired over {} seeds: raft committed sooner in {faster}, later in {slower}, at the \
         same moment in {}",
        pairs.len(),
        pairs.len() - faster - slower
    );
    for ((name, _), t) in modes.iter().zip(&tallies) {
        if !t.failed.is_empty() {
            let _ = writeln!(
                out,
                "{name}: checkers failed on seeds {:?} (replay: synod sim --election {name} \
                 --crash-leader-at-tick {} --seed N …)",
                t.failed, args.crash_at_tick
            );
        }
    }
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    let failed = tallies.iter().any(|t| !t.failed.is_empty());
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The `p`th percentile (nearest rank) of `values`; 0 if there are none.
fn percentile(values: &[u64], p: usize) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1) - 1;
    sorted[rank.min(sorted.len() - 1)]
}

fn mean(values: &[u64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<u64>() as f64 / values.len() as f64
}
