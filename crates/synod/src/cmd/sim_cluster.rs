//! `synod sim` without a mode: a whole Multi-Paxos cluster under faults, with clients and
//! checkers; one seed or a range of them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::ops::Range;
use std::process::ExitCode;

use clap::Args;
use paxos::multi::ElectionMode;
use paxos::QuorumSpec;
use sim::cluster::{self, Failure, FaultRates, Options, Report};

/// Flags of `synod sim`.
#[derive(Clone, Debug, Args)]
pub struct ClusterArgs {
    /// Number of replicas.
    #[arg(long, default_value_t = 5)]
    nodes: u64,
    /// Quorum system: majority, flexible:Q1,Q2 or grid:RxC.
    #[arg(long, default_value = "majority", value_parser = super::sim::parse_quorum)]
    quorum: QuorumSpec,
    /// Clients, each with one operation outstanding.
    #[arg(long, default_value_t = 5)]
    clients: u64,
    /// Keys the clients share.
    #[arg(long, default_value_t = 10)]
    keys: u8,
    /// Ticks (≈ virtual milliseconds) of faults before everything heals.
    #[arg(long, default_value_t = 2_000)]
    duration_ticks: u64,
    /// After healing, every operation must finish within this many ticks.
    #[arg(long, default_value_t = 1_000)]
    liveness_ticks: u64,
    /// The seed of a single run.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A range of seeds, `A..B` (B excluded): one run each.
    #[arg(long, value_parser = parse_range)]
    seeds: Option<Range<u64>>,
    /// Chance a message is lost.
    #[arg(long, default_value_t = FaultRates::default().loss)]
    loss: f64,
    /// Chance a message is delivered twice.
    #[arg(long, default_value_t = FaultRates::default().duplication)]
    dup: f64,
    /// Shortest message delay, virtual µs.
    #[arg(long, default_value_t = FaultRates::default().delay_us.0)]
    delay_min_us: u64,
    /// Longest message delay, virtual µs.
    #[arg(long, default_value_t = FaultRates::default().delay_us.1)]
    delay_max_us: u64,
    /// Per tick: chance a partition (symmetric or one-way) starts.
    #[arg(long, default_value_t = FaultRates::default().partition)]
    partition: f64,
    /// Per tick: chance a node crashes (losing unsynced writes).
    #[arg(long, default_value_t = FaultRates::default().crash)]
    crash: f64,
    /// Per tick: chance a node pauses.
    #[arg(long, default_value_t = FaultRates::default().pause)]
    pause: f64,
    /// Per tick: chance a disk turns slow.
    #[arg(long, default_value_t = FaultRates::default().slow_disk)]
    slow_disk: f64,
    /// Largest relative clock drift of a node.
    #[arg(long, default_value_t = FaultRates::default().drift)]
    drift: f64,
    /// Per tick: chance the membership nemesis changes the membership (adds a spare as
    /// a learner, promotes a learner, removes a member, or switches the quorum system).
    #[arg(long, default_value_t = FaultRates::default().membership)]
    membership: f64,
    /// Spare machines the membership nemesis may add (each once).
    #[arg(long, default_value_t = 0)]
    spares: u64,
    /// Serve reads from leader leases.
    #[arg(long)]
    leases: bool,
    /// Run the lease keeper: etcd leases granted, attached to a key, kept alive or let
    /// expire, checked never to expire sooner than their TTL after an answered request.
    #[arg(long)]
    lease_keeper: bool,
    /// Clients that watch every key from revision 1 through the faults, reconnecting
    /// at the next member when theirs goes; what they receive is checked against the log.
    #[arg(long, default_value_t = 0)]
    watchers: usize,
    /// Write the run's trace to this file (single seed only): every event with its
    /// message id, vector clock and node state, the faults, the client history.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
    /// The trace's format: Synod's JSON lines, or ShiViz's log format.
    #[arg(long, value_enum, default_value = "jsonl", requires = "trace")]
    format: super::sim::TraceFormat,
    /// How candidates win phase 1: Paxos's rule (promises carry votes, the new leader
    /// re-proposes them) or Raft's vote restriction (only a candidate whose log covers
    /// a voter's gets its promise).
    #[arg(long, value_enum, default_value = "paxos")]
    election: Election,
    /// At this tick the leader crashes (restarting when the faults heal); the summary
    /// reports what the failover cost.
    #[arg(long)]
    crash_leader_at_tick: Option<u64>,
}

/// `--election`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Election {
    /// Paxos's phase 1: every promise reports its votes.
    Paxos,
    /// Raft's vote restriction.
    Raft,
}

impl Election {
    fn mode(self) -> ElectionMode {
        match self {
            Election::Paxos => ElectionMode::Paxos,
            Election::Raft => ElectionMode::Raft,
        }
    }
}

pub(crate) fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("expected A..B, not {text:?}"))?;
    let parse = |s: &str| s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
    let range = parse(a)?..parse(b)?;
    if range.is_empty() {
        return Err(format!("the range {text} holds no seed"));
    }
    Ok(range)
}

impl ClusterArgs {
    fn options(&self, seed: u64, trace: bool) -> Options {
        Options {
            nodes: self.nodes,
            spares: self.spares,
            quorum: self.quorum,
            clients: self.clients,
            keys: self.keys,
            duration_ticks: self.duration_ticks,
            liveness_ticks: self.liveness_ticks,
            seed,
            faults: FaultRates {
                loss: self.loss,
                duplication: self.dup,
                delay_us: (self.delay_min_us, self.delay_max_us),
                partition: self.partition,
                crash: self.crash,
                pause: self.pause,
                slow_disk: self.slow_disk,
                drift: self.drift,
                membership: self.membership,
            },
            leases: self.leases,
            lease_keeper: self.lease_keeper,
            watchers: self.watchers,
            controls: cluster::Controls::default(),
            trace,
            election: self.election.mode(),
            crash_leader_at_tick: self.crash_leader_at_tick,
        }
    }

    /// The command that replays `seed` with these flags.
    fn replay(&self, seed: u64) -> String {
        let f = self.options(seed, false).faults;
        let mut command = format!(
            "synod sim --nodes {} --quorum {} --clients {} --keys {} --duration-ticks {} \
             --liveness-ticks {} --loss {} --dup {} --delay-min-us {} --delay-max-us {} \
             --partition {} --crash {} --pause {} --slow-disk {} --drift {}",
            self.nodes,
            self.quorum,
            self.clients,
            self.keys,
            self.duration_ticks,
            self.liveness_ticks,
            f.loss,
            f.duplication,
            f.delay_us.0,
            f.delay_us.1,
            f.partition,
            f.crash,
            f.pause,
            f.slow_disk,
            f.drift
        );
        if self.leases {
            command.push_str(" --leases");
        }
        if self.lease_keeper {
            command.push_str(" --lease-keeper");
        }
        if self.watchers > 0 {
            let _ = write!(command, " --watchers {}", self.watchers);
        }
        if f.membership > 0.0 || self.spares > 0 {
            let _ = write!(
                command,
                " --membership {} --spares {}",
                f.membership, self.spares
            );
        }
        if self.election == Election::Raft {
            command.push_str(" --election raft");
        }
        if let Some(tick) = self.crash_leader_at_tick {
            let _ = write!(command, " --crash-leader-at-tick {tick}");
        }
        let _ = write!(command, " --seed {seed}");
        command
    }
}

/// Runs `synod sim`: exit 0 if every run passed every checker, 1 on a violation, 3 if the
/// linearizability search gave up on some run (not a pass).
pub fn run(args: ClusterArgs) -> Result<ExitCode, String> {
    let seeds = match (args.seed, args.seeds.clone()) {
        (Some(seed), _) => seed..seed + 1,
        (None, Some(range)) => range,
        (None, None) => 0..1,
    };
    if args.trace.is_some() && seeds.end - seeds.start != 1 {
        return Err("--trace needs a single --seed".into());
    }
    let single = seeds.end - seeds.start == 1;
    let mut out = std::io::stdout().lock();
    let (mut failed, mut unknown) = (0u64, 0u64);
    for seed in seeds.clone() {
        // Only `--trace` pays for a trace (vector clocks, states): sweeps never do.
        let report = cluster::run(args.options(seed, args.trace.is_some()))?;
        if let (Some(path), Some(trace)) = (&args.trace, &report.trace) {
            super::sim::write_trace(path, trace, args.format)?;
        }
        let text = if single {
            summary(&args, seed, &report)
        } else if !report.failures.is_empty() {
            failure_text(&args, seed, &report)
        } else if report.linearizability_unknown {
            format!("seed {seed}: linearizability unknown (search budget exhausted)\n")
        } else {
            String::new()
        };
        let _ = out.write_all(text.as_bytes());
        failed += u64::from(!report.failures.is_empty());
        unknown += u64::from(report.failures.is_empty() && report.linearizability_unknown);
    }
    if !single {
        let runs = seeds.end - seeds.start;
        let line = format!(
            "{runs} seeds ({}..{}): {} passed, {failed} failed, {unknown} unknown\n",
            seeds.start,
            seeds.end,
            runs - failed - unknown
        );
        let _ = out.write_all(line.as_bytes());
    }
    Ok(match (failed, unknown) {
        (0, 0) => ExitCode::SUCCESS,
        (0, _) => ExitCode::from(3),
        _ => ExitCode::FAILURE,
    })
}

fn summary(args: &ClusterArgs, seed: u64, report: &Report) -> String {
    let s = &report.stats;
    let mut text = format!(
        "seed {seed}: {} replicas ({}), {} clients on {} keys, {} ticks of faults\n\
         operations: {} completed, {} unknown (timed out), {} write attempts refused as \
         not applied (and retried); {} slots chosen\n\
         faults: {} messages ({} lost, {} duplicated), {} partitions, {} crashes, \
         {} pauses, {} slow disks\n\
         elections: {}; snapshots: {}; applies ahead of a sync: {}; trace hash {:016x}\n",
        args.nodes,
        args.quorum,
        args.clients,
        args.keys,
        args.duration_ticks,
        s.ops_ok,
        s.ops_unknown,
        s.not_applied,
        s.slots,
        s.messages,
        s.lost,
        s.duplicated,
        s.partitions,
        s.crashes,
        s.pauses,
        s.slow_disks,
        s.elections,
        s.snapshots,
        s.applies_ahead,
        report.trace_hash
    );
    if args.watchers > 0 {
        let _ = writeln!(
            text,
            "watchers: {} events received, {} streams opened again elsewhere, {} events \
             of the log not yet received at the end",
            s.watch_events, s.watch_reopens, s.watch_lag
        );
    }
    if let Some(f) = &report.failover {
        let committed = f.first_commit_us.map_or("never".into(), |us| {
            format!("{:.1} ms later", us as f64 / 1000.0)
        });
        let _ = writeln!(
            text,
            "failover: the leader (ballot {}) crashed at {:.1} ms; a new leader committed \
             {committed}, after {} messages ({} bytes) and {} elections",
            f.ballot,
            f.crashed_us as f64 / 1000.0,
            f.messages,
            f.bytes,
            f.elections
        );
    }
    if s.membership_changes > 0 {
        let _ = writeln!(
            text,
            "membership: {} changes asked ({} refused at once), {} spares joined, {} members \
             removed",
            s.membership_changes, s.membership_refused, s.joins, s.removals
        );
    }
    if report.failures.is_empty() {
        let linearizable = if report.linearizability_unknown {
            "UNKNOWN (search budget exhausted)"
        } else {
            "ok"
        };
        let _ = writeln!(
            text,
            "checkers: agreement ok, states (HashKV) agree, memberships agree, linearizability \
             {linearizable}, durability ok, liveness ok, truthful errors ok{}",
            if args.watchers > 0 {
                ", watches ok"
            } else {
                ""
            }
        );
    } else {
        text.push_str(&failure_text(args, seed, report));
    }
    text
}

/// What went wrong, the command that replays it, and the part of the run that shows it.
fn failure_text(args: &ClusterArgs, seed: u64, report: &Report) -> String {
    let mut text = format!("seed {seed}: VIOLATION\n");
    for failure in &report.failures {
        match failure {
            Failure::Agreement {
                slot,
                first,
                second,
            } => {
                let _ = writeln!(text, "  agreement: slot {slot} holds {first} and {second}");
                let Some(trace) = &report.trace else {
                    let _ = writeln!(
                        text,
                        "    (replay it with --trace FILE for the slot's events)"
                    );
                    continue;
                };
                let excerpt = trace.events.iter().filter(|e| e.slot == Some(*slot));
                for event in excerpt.take(40) {
                    let _ = writeln!(text, "    {}", event.to_json());
                }
            }
            Failure::Linearizability(v) => {
                let _ = writeln!(
                    text,
                    "  linearizability: key {} has no valid order; after its longest valid \
                     prefix, none of the next operations fits",
                    v.key
                );
                for &i in &v.longest_prefix {
                    let _ = writeln!(
                        text,
                        "    ok    {}",
                        sim::history::to_line(&report.history[i])
                    );
                }
                for &i in &v.stuck_at {
                    let _ = writeln!(
                        text,
                        "    stuck {}",
                        sim::history::to_line(&report.history[i])
                    );
                }
            }
            Failure::Liveness(problem) => {
                let _ = writeln!(text, "  liveness: {problem}");
                for node in &report.nodes {
                    let _ = writeln!(text, "    {node}");
                }
            }
            Failure::LeaseExpiredEarly {
                lease,
                sent_us,
                ttl_s,
                expired_us,
            } => {
                let _ = writeln!(
                    text,
                    "  lease {lease} expired at {expired_us} µs, sooner than its TTL of \
                     {ttl_s} s after a request sent at {sent_us} µs and answered with it"
                );
            }
            Failure::Divergence {
                slot,
                first,
                second,
            } => {
                let _ = writeln!(
                    text,
                    "  state: after slot {slot}, n{} holds HashKV {:#x} and n{} holds {:#x}",
                    first.0, first.1, second.0, second.1
                );
            }
            Failure::Membership {
                slot,
                first,
                second,
            } => {
                let _ = writeln!(
                    text,
                    "  membership: after slot {slot}, {first}, but {second}"
                );
            }
            Failure::Watch { watcher, problem } => {
                let _ = writeln!(text, "  watcher {watcher}: {problem}");
            }
            Failure::Truthfulness {
                slot,
                request,
                answer,
            } => {
                let _ = writeln!(
                    text,
                    "  truthfulness: {request} was answered \"{answer}\" (not applied), \
                     yet chosen at slot {slot}"
                );
            }
        }
    }
    let _ = writeln!(text, "  replay: {}", args.replay(seed));
    text
}
