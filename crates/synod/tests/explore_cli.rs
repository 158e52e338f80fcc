//! `synod explore` as a user runs it: the real binary turning traces into pages, and
//! refusing bad traces with the line and what is wrong, writing nothing. (What the page
//! draws is checked in a real browser by scripts/explorer-test.)

// A test that cannot start the binary or use its scratch folder has nothing left to check.
#![allow(clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{stdout, synod};

/// A scratch folder of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("synod-explore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

fn seed000_trace(dir: &Path) -> String {
    let trace = path(dir, "seed000.jsonl");
    let output = synod(&["sim", "synod", "--scenario", "seed000", "--trace", &trace]);
    assert!(output.status.success());
    trace
}

#[test]
fn a_trace_becomes_one_page_that_needs_no_network() {
    let dir = scratch("page");
    let trace = seed000_trace(&dir);
    let output = synod(&["explore", &trace]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page =
        std::fs::read_to_string(dir.join("seed000.html")).expect("the page, beside the trace");
    assert!(stdout(&output).contains("seed000.html (161 events"));
    assert!(page.starts_with("<!DOCTYPE html>"));
    // Self-contained: the script and style are inline, nothing is fetched.
    for outside in [
        "src=",
        "href=",
        "https://",
        "@import",
        "fetch(",
        "XMLHttpRequest",
    ] {
        assert!(
            !page.contains(outside),
            "the page refers outside: {outside}"
        );
    }
    // The one address is SVG's namespace, a name that is never fetched.
    assert_eq!(
        page.matches("http://").count(),
        page.matches("http://www.w3.org/2000/svg").count()
    );
    assert!(page.contains("<script type=\"application/json\" id=\"synod-runs\">[{"));
    assert_eq!(
        page.matches("<script").count(),
        2,
        "the model and the script"
    );
}

#[test]
fn two_traces_make_one_page_with_two_runs_and_a_story_needs_no_trace() {
    let dir = scratch("two");
    let trace = seed000_trace(&dir);
    let out = path(&dir, "both.html");
    let output = synod(&["explore", &trace, &trace, "-o", &out]);
    assert!(output.status.success());
    let page = std::fs::read_to_string(&out).expect("the page");
    assert_eq!(page.matches("\"source\":\"synod\"").count(), 2);
    let story = path(&dir, "story.html");
    let output = synod(&["explore", "--story", "seed000", "-o", &story]);
    assert!(output.status.success());
    assert!(std::fs::read_to_string(&story)
        .expect("the story")
        .contains("\"chapters\":[{"));
}

/// Each bad trace is refused with its line and what is wrong, and no page is written.
#[test]
fn bad_traces_name_the_line_and_write_nothing() {
    let dir = scratch("bad");
    let good = std::fs::read_to_string(seed000_trace(&dir)).expect("the trace");
    let lines: Vec<&str> = good.lines().collect();
    let truncated = &good[..good.len() - 20];
    let newer = good.replacen("\"version\":1", "\"version\":99", 1);
    let mut swapped = lines.clone();
    swapped.swap(20, 40);
    let swapped = swapped.join("\n") + "\n";
    let garbage = format!("{}\n{{\"time\":oops}}\n", lines[0]);
    let cases: [(&str, &str, &str); 5] = [
        ("truncated", truncated, "line 162"),
        ("newer", &newer, "line 1: "),
        ("out-of-order", &swapped, "line 21"),
        ("garbage", &garbage, "line 2: "),
        ("empty", "", "line 1"),
    ];
    for (name, text, line) in cases {
        let trace = path(&dir, &format!("{name}.jsonl"));
        std::fs::write(&trace, text).expect("write the trace");
        let out = path(&dir, &format!("{name}.html"));
        let output = synod(&["explore", &trace, "-o", &out]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}.jsonl: {line}")),
            "{name}: {stderr}"
        );
        assert!(!Path::new(&out).exists(), "{name}: a page was written");
    }
    let listing: Vec<_> = std::fs::read_dir(&dir)
        .expect("the folder")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        listing
            .iter()
            .all(|n| !n.to_string_lossy().contains(".tmp")),
        "no temporary file left: {listing:?}"
    );
}

/// `--serve` answers the page, refuses what is not a GET of it, and outlives clients that
/// send garbage or nothing at all.
#[test]
fn serve_answers_the_page_and_survives_bad_clients() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::process::{Command, Stdio};

    let dir = scratch("serve");
    let trace = seed000_trace(&dir);
    let out = path(&dir, "served.html");
    /// The server, stopped however the test ends.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_synod"))
            .args(["explore", &trace, "-o", &out, "--serve", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("synod explore starts"),
    );
    let mut lines = BufReader::new(server.0.stdout.take().expect("its output"));
    let mut address = String::new();
    while !address.starts_with("serving http://") {
        address.clear();
        assert!(
            lines.read_line(&mut address).expect("a line") > 0,
            "no address printed"
        );
    }
    let address = address["serving http://".len()..]
        .split('/')
        .next()
        .expect("host:port")
        .to_string();
    let ask = |request: &[u8]| {
        let mut stream = TcpStream::connect(&address).expect("connects");
        stream.write_all(request).expect("sends");
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("half-closes");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    let page = std::fs::read_to_string(&out).expect("the page");
    for garbage in [&b"\x00\xff\xfe garbage\r\n\r\n"[..], b"", b"GET"] {
        let answer = ask(garbage);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
    }
    let answer = ask(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:.100}");
    assert!(answer.ends_with(&page), "the page as written");
    assert!(ask(b"GET /etc/passwd HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(ask(b"POST / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    let head = ask(b"HEAD / HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
}
