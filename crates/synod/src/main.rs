//! `synod`: the command-line entry point. Thin by design: each subcommand parses its flags
//! and calls into the library crates.
//!
//! # Layout
//! - `cmd/sim.rs`: `synod sim synod`, single-decree Paxos on the simulated network.

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
    Sim(cmd::sim::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => cmd::sim::run(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("synod: {message}");
            ExitCode::from(2)
        }
    }
}
