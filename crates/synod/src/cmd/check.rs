//! `synod check FILE`: the linearizability checker on a recorded history.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sim::history;
use sim::linearizability::{self, Verdict};

/// Flags of `synod check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A history in JSON lines (format: `sim::history`, or docs/TESTING.md).
    file: PathBuf,
    /// Search steps allowed per key before the verdict is "unknown".
    #[arg(long, default_value_t = 100_000_000)]
    budget: u64,
}

/// Exit 0: linearizable; 1: a violation; 3: unknown (budget exhausted); 2: bad input.
pub fn run(args: CheckArgs) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let operations = history::parse(&text).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let verdict = linearizability::check(&operations, args.budget);
    let mut out = String::new();
    let code = match &verdict {
        Verdict::Linearizable => {
            let _ = writeln!(out, "linearizable ({} operations)", operations.len());
            ExitCode::SUCCESS
        }
        Verdict::Violation(v) => {
            let _ = writeln!(out, "NOT linearizable: key {}", v.key);
            let _ = writeln!(
                out,
                "longest valid prefix (in order), then the operations that cannot follow it:"
            );
            let listed = v.longest_prefix.iter().map(|&i| ("ok   ", i));
            for (label, i) in listed.chain(v.stuck_at.iter().map(|&i| ("stuck", i))) {
                let line = line_of(&text, i);
                let op = history::to_line(&operations[i]);
                let _ = writeln!(out, "  {label} line {line}: {op}");
            }
            ExitCode::FAILURE
        }
        Verdict::Unknown { key } => {
            let _ = writeln!(
                out,
                "unknown: the search on key {key} ran out of budget (raise --budget)"
            );
            ExitCode::from(3)
        }
    };
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(code)
}

/// The 1-based line of the `index`-th operation (blank lines are skipped by the parser).
fn line_of(text: &str, index: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .nth(index)
        .map_or(0, |(n, _)| n + 1)
}
