//! `synod explore`: a trace drawn as a space-time diagram, in one self-contained HTML page
//! (no network, no CDN: the script and style sheet are built into the binary), written to
//! a file and, if asked, served on localhost.
//!
//! # Layout
//! - this file: the command: read the traces (or play a story), write the page whole or
//!   not at all, serve it.
//! - `page.rs`: the trace as the compact model the page's script draws, and the page.
//! - `stories.rs`: the built-in stories: scripted or seeded runs with their chapters.
//! - `explorer.html`, `explorer.css`, `explorer.js`: the page's template, style and script.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

mod page;
mod stories;

pub use stories::Story;

/// `synod explore`'s flags.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// The trace to draw (from `synod sim --trace`, `synod sim synod --trace`, or merged
    /// from members' trace files). A second trace is drawn under the first on the same
    /// time axis: the same seed under two election modes, say.
    #[arg(required_unless_present = "story", num_args = 1..=2)]
    traces: Vec<PathBuf>,
    /// Draw a built-in story instead of a trace file.
    #[arg(long, value_enum, conflicts_with = "traces")]
    story: Option<Story>,
    /// Where to write the page (default: the trace's path with `.html`; a story's name
    /// with `.html` in the current directory).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Serve the page over HTTP on this address (default 127.0.0.1:8380) until
    /// interrupted; port 0 picks a free one. The address printed is the one to open.
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:8380")]
    serve: Option<SocketAddr>,
}

/// Runs `synod explore`: reads every trace first, so a bad one writes nothing.
pub fn run(args: ExploreArgs) -> Result<ExitCode, String> {
    let (title, runs, default_output) = match args.story {
        Some(story) => {
            let run = story.play()?;
            (
                run.title.clone(),
                vec![run],
                PathBuf::from(format!("{}.html", story.name())),
            )
        }
        None => {
            let runs = args
                .traces
                .iter()
                .map(|path| read(path))
                .collect::<Result<Vec<_>, _>>()?;
            let title = runs
                .iter()
                .map(|r| r.title.as_str())
                .collect::<Vec<_>>()
                .join(" | ");
            let first = args.traces.first().ok_or("a trace to draw is needed")?;
            (title, runs, first.with_extension("html"))
        }
    };
    let page = page::html(&title, &runs);
    let output = args.output.unwrap_or(default_output);
    write_whole(&output, page.as_bytes())?;
    let events: usize = runs.iter().map(|r| r.trace.events.len()).sum();
    say(&format!(
        "wrote {} ({events} events, {} bytes)",
        output.display(),
        page.len()
    ));
    if let Some(address) = args.serve {
        serve(address, page.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A trace file, checked whole by the trace reader (which names the line at fault).
fn read(path: &Path) -> Result<page::Run, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let trace = sim::trace::read(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(page::Run {
        title: format!("{name} ({} run)", trace.header.source),
        trace,
        chapters: Vec::new(),
        grid: None,
    })
}

/// Writes `bytes` to `path` through a temporary file beside it: never a page half-made.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let result = std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(())
}

/// Answers every `GET /` with the page, one connection at a time, until interrupted.
fn serve(address: SocketAddr, page: &[u8]) -> Result<(), String> {
    let listener =
        TcpListener::bind(address).map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    say(&format!("serving http://{bound}/ (Ctrl-C to stop)"));
    loop {
        match listener.accept() {
            // A client that misbehaves loses its own connection, not the server.
            Ok((stream, _)) => drop(answer(stream, page)),
            // Out of descriptors, say: wait rather than spin.
            Err(e) => {
                eprintln!("synod explore: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A line on standard output, flushed (a test waits for it); a closed pipe is no error.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The longest request head read; the page needs no more.
const REQUEST_HEAD_MAX: usize = 16 * 1024;

fn answer(mut stream: TcpStream, page: &[u8]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < REQUEST_HEAD_MAX {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body): (&str, &[u8]) = match (method, target) {
        ("GET" | "HEAD", "/" | "/index.html") => ("200 OK", page),
        ("GET" | "HEAD", _) => ("404 Not Found", b"not found\n"),
        _ => ("405 Method Not Allowed", b"only GET\n"),
    };
    let kind = if status.starts_with("200") {
        "text/html; charset=utf-8"
    } else {
        "text/plain"
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        stream.write_all(body)?;
    }
    stream.flush()
}
