//! `synod snapshot restore FILE`: a member's data directory from a backup taken with
//! `etcdctl snapshot save` (against Synod, or against etcd to migrate), for a new cluster (run it once per member, with that member's
//! `synod serve` flags; then start the members).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// `synod snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Write a member's data directory from a backup file.
    Restore(RestoreArgs),
}

/// Flags of `synod snapshot restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup, as `etcdctl snapshot save` wrote it.
    file: PathBuf,
    /// The member's flags, as it will be started with.
    #[command(flatten)]
    serve: super::serve::ServeArgs,
}

/// Runs `synod snapshot`.
#[allow(clippy::print_stdout)] // Reporting what was restored is the point.
pub fn run(args: SnapshotArgs) -> Result<ExitCode, String> {
    let SnapshotCommand::Restore(args) = args.command;
    let config = args.serve.config()?;
    let bytes = std::fs::read(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let store = server::restore::restore(&config, &bytes)
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    println!(
        "restored {} into {} at revision {}; start it with the same flags",
        config.name,
        config.data_dir.display(),
        store.revision()
    );
    Ok(ExitCode::SUCCESS)
}
