//! A real three-member Synod cluster for end-to-end tests: `synod serve` processes on
//! free loopback ports, driven by Debian's etcdctl (installed by `scripts/etcd-ref` when
//! missing) or the `etcd-client` crate. Dropping the cluster kills its processes.
#![allow(dead_code)] // Each test file uses a different part.
#![allow(clippy::expect_used, clippy::unwrap_used)] // Test support: a failure is the report.

pub mod etcd;
pub mod http;
mod ports;
pub mod tls;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// One member process.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub client: String,
    pub peer: String,
    pub dir: PathBuf,
    pub child: Option<Child>,
    /// For a member that joins a running cluster: the `--initial-cluster` `member add`
    /// printed (it starts with `--initial-cluster-state existing`).
    pub joining: Option<String>,
    /// Flags for this member alone.
    pub extra: Vec<String>,
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    pub members: Vec<Member>,
    initial: String,
    root: PathBuf,
    extra: Vec<String>,
    /// `http`, or `https` for a cluster whose client and peer URLs are TLS.
    scheme: &'static str,
    /// Flags every etcdctl run gets (`--cacert`, `--cert`, `--key` for a TLS cluster).
    pub etcdctl_flags: Vec<String>,
}

pub use ports::free_port;

/// Starts `synod dev` with `args`, its stdout piped, and reads its banner (through the
/// line that says Ctrl-C): the process, its stdout after the banner (kept open: a member
/// writing to a closed stdout would fail), and the banner.
pub fn spawn_dev(
    args: &[String],
) -> (
    Background,
    std::io::BufReader<std::process::ChildStdout>,
    String,
) {
    use std::io::BufRead;
    let mut process = Background(
        Command::new(env!("CARGO_BIN_EXE_synod"))
            .arg("dev")
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut banner = std::io::BufReader::new(process.0.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("Ctrl-C") {
        let mut line = String::new();
        assert!(
            banner.read_line(&mut line).unwrap() > 0,
            "synod dev exited: {printed}"
        );
        printed += &line;
    }
    (process, banner, printed)
}

/// Standard base64 of `text`, as etcd's JSON (etcdctl's and the gateway's) carries bytes.
pub fn b64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A loopback address nothing listens on, for URLs that are never dialed.
pub fn free_port_url() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Makes sure etcdctl is installed (the project's script installs Debian's package).
pub fn etcdctl_installed() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/etcd-ref");
        let status = Command::new(script)
            .arg("install")
            .status()
            .expect("scripts/etcd-ref runs");
        assert!(
            status.success(),
            "etcdctl is needed: scripts/etcd-ref install failed"
        );
    });
}

impl Cluster {
    /// Starts three members under a fresh temporary directory and waits until they serve.
    pub fn start(test: &str) -> Cluster {
        Cluster::start_with(test, &[])
    }

    /// Starts three members with `extra` flags each.
    pub fn start_with(test: &str, extra: &[&str]) -> Cluster {
        let mut cluster = Cluster::configure(test, extra);
        cluster.start_all();
        cluster
    }

    /// Three members with `extra` flags each, configured but not started.
    pub fn configure(test: &str, extra: &[&str]) -> Cluster {
        etcdctl_installed();
        let root = std::env::temp_dir().join(format!("synod-e2e-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut members = Vec::new();
        for i in 1..=3 {
            members.push(Member {
                name: format!("s{i}"),
                client: format!("127.0.0.1:{}", free_port()),
                peer: format!("127.0.0.1:{}", free_port()),
                dir: root.join(format!("s{i}")),
                child: None,
                joining: None,
                extra: Vec::new(),
            });
        }
        let initial = members
            .iter()
            .map(|m| format!("{}=http://{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        Cluster {
            members,
            initial,
            root,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            scheme: "http",
            etcdctl_flags: Vec::new(),
        }
    }

    /// Makes every client and peer URL `https`; etcdctl runs with `etcdctl_flags`.
    pub fn use_https(&mut self, etcdctl_flags: &[String]) {
        self.scheme = "https";
        self.initial = self.initial.replace("=http://", "=https://");
        self.etcdctl_flags = etcdctl_flags.to_vec();
    }

    /// Where this cluster's files live (certificates, logs, data).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts every member and waits until they serve.
    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.spawn(i);
        }
        self.wait_healthy();
    }

    /// `synod serve`'s flags for member `i`.
    pub fn serve_flags(&self, i: usize) -> Vec<String> {
        let m = &self.members[i];
        let (initial, state) = match &m.joining {
            Some(initial) => (initial.as_str(), "existing"),
            None => (self.initial.as_str(), "new"),
        };
        let mut flags: Vec<String> = [
            "--name",
            &m.name,
            "--data-dir",
            &m.dir.display().to_string(),
            "--listen-client-urls",
            &format!("{}://{}", self.scheme, m.client),
            "--listen-peer-urls",
            &format!("{}://{}", self.scheme, m.peer),
            "--initial-cluster",
            initial,
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            "e2e",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        flags.extend(self.extra.iter().cloned());
        flags.extend(m.extra.iter().cloned());
        flags
    }

    /// `synod snapshot restore FILE` with member `i`'s flags.
    pub fn restore(&self, i: usize, file: &Path) -> Output {
        Command::new(env!("CARGO_BIN_EXE_synod"))
            .args(["snapshot", "restore", &file.display().to_string()])
            .args(self.serve_flags(i))
            .output()
            .expect("synod snapshot restore runs")
    }

    /// Starts (or restarts) member `i` from its data directory.
    pub fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let log = std::fs::create_dir_all(&self.root)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.root.join(format!("{}.log", m.name)))
            })
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_synod"))
            .arg("serve")
            .args(self.serve_flags(i))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("synod serve starts");
        self.members[i].child = Some(child);
    }

    /// A new machine for member `name`, not started and not yet added: its index.
    pub fn add_spare(&mut self, name: &str) -> usize {
        self.members.push(Member {
            name: name.to_string(),
            client: format!("127.0.0.1:{}", free_port()),
            peer: format!("127.0.0.1:{}", free_port()),
            dir: self.root.join(name),
            child: None,
            joining: None,
            extra: Vec::new(),
        });
        self.members.len() - 1
    }

    /// Whether member `i`'s process exited by itself (and how), reaping it if so.
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let child = self.members[i].child.as_mut()?;
        let status = child.try_wait().ok().flatten()?;
        self.members[i].child = None;
        Some(status)
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every running member's client endpoint, comma-separated.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| self.endpoint(&m.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The endpoint etcdctl is given for a client address: `https://` ones on a TLS
    /// cluster.
    fn endpoint(&self, client: &str) -> String {
        match self.scheme {
            "https" => format!("https://{client}"),
            _ => client.to_string(),
        }
    }

    /// Runs etcdctl against `endpoints`.
    pub fn etcdctl_at(&self, endpoints: &str, args: &[&str]) -> Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg("--command-timeout=10s")
            .args(&self.etcdctl_flags)
            .args(args)
            .output()
            .expect("etcdctl runs")
    }

    /// Runs etcdctl against every member; panics unless it succeeds; its stdout.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let out = self.etcdctl_at(&self.endpoints(), args);
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An etcdctl command with piped stdin/stdout, running in the background.
    pub fn etcdctl_spawn(&self, endpoints: &str, args: &[&str]) -> Child {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .args(&self.etcdctl_flags)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("etcdctl starts")
    }

    /// Waits until every running member answers a health check.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let running: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| self.endpoint(&m.client))
            .collect();
        loop {
            let out = self.etcdctl_at(&running.join(","), &["endpoint", "health"]);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not healthy in 30 s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Member `i`'s log.
    pub fn log(&self, i: usize) -> String {
        let name = &self.members[i].name;
        std::fs::read_to_string(self.root.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Every member's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for m in &self.members {
            let log = std::fs::read_to_string(self.root.join(format!("{}.log", m.name)))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            all += &format!("--- {} (last lines)\n", m.name);
            for line in tail.into_iter().rev() {
                all += line;
                all.push('\n');
            }
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// A child process killed (and reaped) when dropped, even if the test panics first.
#[derive(Debug)]
pub struct Background(pub Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
