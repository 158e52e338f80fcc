//! `synod`: the command-line entry point. Thin by design: each subcommand parses its flags
//! and calls into the library crates.
//!
//! # Layout
//! - `cmd/sim.rs`: `synod sim synod`, single-decree Paxos on the simulated network.
//! - `cmd/sim_cluster.rs`: `synod sim`, a Multi-Paxos cluster under faults, checked.
//! - `cmd/check.rs`: `synod check FILE`, the linearizability checker on a history.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Synod: a Multi-Paxos key-value store that speaks the etcd v3 API.
#[derive(Debug, Parser)]
#[command(name = "synod", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Paxos in the deterministic simulator and print what happened.
    Sim(Box<cmd::sim::SimArgs>),
    /// Check a recorded client history for linearizability.
    Check(cmd::check::CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => cmd::sim::run(*args),
        Command::Check(args) => cmd::check::run(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("synod: {message}");
            ExitCode::from(2)
        }
    }
}
