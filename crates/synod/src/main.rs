//! `synod`: the command-line entry point. Thin by design: each subcommand parses its flags
//! and calls into the library crates.
//!
//! # Layout
//! - `cmd/serve.rs`: `synod serve`, one member with etcd's flags.
//! - `cmd/dev.rs`: `synod dev`, a local three-member cluster.
//! - `cmd/bench/`: `synod bench`, a load generator for any etcd v3 endpoint (`conn.rs`: its
//!   lean HTTP/2 connection).
//! - `cmd/snapshot.rs`: `synod snapshot restore`, a data directory from a backup.
//! - `cmd/sim.rs`: `synod sim synod`, single-decree Paxos on the simulated network.
//! - `cmd/sim_cluster.rs`: `synod sim`, a Multi-Paxos cluster under faults, checked.
//! - `cmd/check.rs`: `synod check FILE`, the linearizability checker on a history.
//! - `cmd/explore/`: `synod explore TRACE`, a trace drawn in one self-contained HTML page.
//! - `cmd/trace.rs`: `synod trace merge`, the members' trace files of a real cluster
//!   merged into one trace.
//! - `allocator.rs`: mimalloc, and when it returns freed pages to the system.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

mod allocator;

/// Synod: a Multi-Paxos key-value store that speaks the etcd v3 API.
#[derive(Debug, Parser)]
#[command(name = "synod", version, about, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one member of a Synod cluster (etcd's flags).
    Serve(Box<cmd::serve::ServeArgs>),
    /// Start a local three-member cluster for development.
    Dev(cmd::dev::DevArgs),
    /// Load-test an etcd v3 endpoint (Synod or etcd).
    Bench(Box<cmd::bench::BenchArgs>),
    /// Restore a member's data directory from a backup.
    Snapshot(Box<cmd::snapshot::SnapshotArgs>),
    /// Run Paxos in the deterministic simulator and print what happened.
    Sim(Box<cmd::sim::SimArgs>),
    /// Check a recorded client history for linearizability.
    Check(cmd::check::CheckArgs),
    /// Draw a trace (or a built-in story) as a space-time diagram in one HTML page.
    Explore(Box<cmd::explore::ExploreArgs>),
    /// Read or change a running cluster's quorum system.
    Quorum(cmd::quorum::QuorumArgs),
    /// Work with traces: merge the files members wrote with `serve --trace-file`.
    Trace(cmd::trace::TraceArgs),
}

/// Parses the command line; for `serve`, a `--config-file` contributes flags first.
fn parse() -> Result<Cli, String> {
    let args: Vec<String> = std::env::args().collect();
    let cli = Cli::parse_from(&args);
    let Command::Serve(serve) = &cli.command else {
        return Ok(cli);
    };
    let Some(file) = serve.config_file() else {
        return Ok(cli);
    };
    let mut merged = vec![args[0].clone(), "serve".to_string()];
    merged.extend(cmd::serve::file_flags(&file)?);
    merged.extend(args.iter().skip(2).cloned());
    Ok(Cli::parse_from(merged))
}

fn main() -> ExitCode {
    allocator::configure();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(message) => {
            eprintln!("synod: {message}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(*args),
        Command::Dev(args) => cmd::dev::run(args),
        Command::Snapshot(args) => cmd::snapshot::run(*args),
        Command::Bench(args) => cmd::bench::run(*args),
        Command::Sim(args) => cmd::sim::run(*args),
        Command::Check(args) => cmd::check::run(args),
        Command::Explore(args) => cmd::explore::run(*args),
        Command::Quorum(args) => cmd::quorum::run(args),
        Command::Trace(args) => cmd::trace::run(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("synod: {message}");
            ExitCode::from(2)
        }
    }
}
