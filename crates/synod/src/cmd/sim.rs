//! `synod sim`: the deterministic simulator.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use paxos::synod::Timing;
use paxos::QuorumSpec;
use sim::network::Faults;
use sim::synod::{Options, Run};
use sim::trace::Trace;

/// `synod sim …`: a Multi-Paxos cluster under faults, or (`synod sim synod`) the
/// single-decree demo.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    mode: Option<SimMode>,
    #[command(flatten)]
    cluster: super::sim_cluster::ClusterArgs,
}

#[derive(Debug, Subcommand)]
enum SimMode {
    /// Single-decree Paxos (the Synod protocol): proposers, acceptors and learners agree on
    /// one value over a lossy, duplicating, reordering network. Prints the timeline.
    Synod(SynodArgs),
    /// The same seeds with Paxos's election and with Raft's vote restriction, the leader
    /// crashed in each: time to the first commit after the crash, messages and bytes per
    /// failover, the checkers' verdicts.
    CompareElections(super::sim_compare::CompareArgs),
}

/// Flags of `synod sim synod`.
#[derive(Debug, Args)]
struct SynodArgs {
    /// Number of acceptors.
    #[arg(long, default_value_t = 5)]
    acceptors: usize,
    /// Number of proposers; each proposes its own value.
    #[arg(long, default_value_t = 3)]
    proposers: usize,
    /// Number of learners.
    #[arg(long, default_value_t = 2)]
    learners: usize,
    /// Probability that a message is lost.
    #[arg(long, default_value_t = 0.2)]
    loss: f64,
    /// Probability that a delivered message is delivered twice.
    #[arg(long, default_value_t = 0.1)]
    dup: f64,
    /// Shortest message delay, in ticks.
    #[arg(long, default_value_t = 1)]
    delay_min: u64,
    /// Longest message delay, in ticks (a spread reorders messages).
    #[arg(long, default_value_t = 6)]
    delay_max: u64,
    /// The seed: the same seed always prints the same run.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Quorum system: majority, flexible:Q1,Q2 (Q1 + Q2 > acceptors) or grid:RxC
    /// (R x C = acceptors; phase 1 = a row, phase 2 = a column).
    #[arg(long, default_value = "majority", value_parser = parse_quorum)]
    quorum: QuorumSpec,
    /// A proposer abandons a round that has not reached a quorum after this many ticks.
    #[arg(long, default_value_t = Timing::default().round_timeout_ticks)]
    round_timeout_ticks: u32,
    /// Stop after this many ticks even if some node never learned.
    #[arg(long, default_value_t = 2_000)]
    ticks_max: u64,
    /// Replay a scripted story instead of a random run.
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// Write the run's trace to this file: every event with its message id, vector clock
    /// and node state, and the moment the value was chosen.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// The trace's format: Synod's JSON lines, or ShiViz's log format.
    #[arg(long, value_enum, default_value = "jsonl", requires = "trace")]
    format: TraceFormat,
}

/// How `--trace` writes a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TraceFormat {
    /// Synod's trace format: versioned JSON lines (docs/SIMULATOR.md, "Trace format").
    Jsonl,
    /// ShiViz's default log format: a description line, then `host {vector clock}`.
    Shiviz,
}

/// Writes `trace` to `path` in `format`, whole or not at all.
pub(crate) fn write_trace(path: &Path, trace: &Trace, format: TraceFormat) -> Result<(), String> {
    let text = match format {
        TraceFormat::Jsonl => trace.to_jsonl(),
        TraceFormat::Shiviz => sim::trace::shiviz(trace),
    };
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// Seed 000's five acceptors: t1 accepted by A1,A2; t2 by A3,A4; t3 by A2,A3,A4.
    Seed000,
}

pub(crate) fn parse_quorum(text: &str) -> Result<QuorumSpec, String> {
    text.parse().map_err(|e: paxos::QuorumError| e.to_string())
}

/// Runs `synod sim`; exit code 1 if the run was unsafe (which would be a bug).
pub fn run(args: SimArgs) -> Result<ExitCode, String> {
    let args = match args.mode {
        Some(SimMode::Synod(args)) => args,
        Some(SimMode::CompareElections(args)) => return super::sim_compare::run(args),
        None => return super::sim_cluster::run(args.cluster),
    };
    let (timeline, safe, trace) = match (args.scenario, &args.trace) {
        (Some(Scenario::Seed000), None) => (sim::seed000::replay()?, true, None),
        (Some(Scenario::Seed000), Some(_)) => {
            let (timeline, trace) = sim::seed000::replay_with_trace()?;
            (timeline, true, Some(trace))
        }
        (None, None) => {
            let (timeline, outcome) = Run::simulate(&options(&args))?;
            (timeline, outcome.is_safe(), None)
        }
        (None, Some(_)) => {
            let (timeline, outcome, trace) = Run::simulate_with_trace(&options(&args))?;
            (timeline, outcome.is_safe(), Some(trace))
        }
    };
    if let (Some(path), Some(trace)) = (&args.trace, &trace) {
        write_trace(path, trace, args.format)?;
    }
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = out.write_all(timeline.as_bytes());
    Ok(if safe {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn options(args: &SynodArgs) -> Options {
    Options {
        acceptors: args.acceptors,
        proposers: args.proposers,
        learners: args.learners,
        quorum: args.quorum,
        faults: Faults {
            loss: args.loss,
            duplication: args.dup,
            delay_ticks_min: args.delay_min,
            delay_ticks_max: args.delay_max,
        },
        seed: args.seed,
        timing: Timing {
            round_timeout_ticks: args.round_timeout_ticks,
            ..Timing::default()
        },
        ticks_max: args.ticks_max,
    }
}
