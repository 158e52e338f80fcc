//! `synod trace merge FILE… -o OUT`: the members' trace files of a real cluster
//! (`synod serve --trace-file`) merged into one trace (`sim::trace::merge`), which
//! `sim::trace::read` (and so the explorer) accepts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// Flags of `synod trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(subcommand)]
    command: TraceCommand,
}

#[derive(Debug, Subcommand)]
enum TraceCommand {
    /// Merge the members' trace files into one trace, in an order their vector clocks
    /// allow (no synchronized clocks needed).
    Merge(MergeArgs),
}

/// Flags of `synod trace merge`.
#[derive(Debug, Args)]
struct MergeArgs {
    /// The members' files (`synod serve --trace-file`), one per member.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Where the merged trace goes (written whole, or not at all).
    #[arg(short, long)]
    output: PathBuf,
}

/// Exit 0: merged; 2: a file is unreadable or inconsistent (named, with its line).
pub fn run(args: TraceArgs) -> Result<ExitCode, String> {
    let TraceCommand::Merge(args) = args.command;
    let mut files = Vec::new();
    for file in &args.files {
        let bytes =
            std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        files.push((file.display().to_string(), bytes));
    }
    let merged = sim::trace::merge(&files).map_err(|e| e.to_string())?;
    for note in &merged.notes {
        eprintln!("synod: {note}");
    }
    let text = merged.trace.to_jsonl();
    // What the explorer will read: refused here rather than there.
    sim::trace::read(text.as_bytes())
        .map_err(|e| format!("the merged trace does not read back (a bug): {e}"))?;
    write_whole(&args.output, text.as_bytes())?;
    let messages = merged
        .trace
        .events
        .iter()
        .filter(|e| e.what == "send")
        .count();
    eprintln!(
        "synod: merged {} events of {} members ({messages} messages) into {}",
        merged.trace.events.len(),
        files.len(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to a file beside `path`, then renames it there: `path` holds the whole
/// of them or what it held before.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file name", path.display()))?;
    let mut temporary = name.to_os_string();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let written =
        std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot write {}: {e}", path.display())
    })
}
