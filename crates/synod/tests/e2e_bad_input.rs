//! What a real cluster does with bad input and bad company: garbage on its ports, a
//! member of another cluster, a minority cut off from its quorum, and configuration from
//! a file and the environment, a flood of clients.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Background, Cluster};

fn wait_for_log(c: &Cluster, member: usize, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.log(member).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn garbage_on_either_port_is_dropped_and_the_member_serves_on() {
    let c = Cluster::start("garbage");
    let peer = c.members[0].peer.clone();
    let mut stream = TcpStream::connect(&peer).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink); // The member hangs up.
    wait_for_log(&c, 0, "refused peer connection");

    // A valid header announcing a 1 GiB frame after a valid handshake is refused too.
    let mut oversized = TcpStream::connect(&peer).unwrap();
    oversized.write_all(&(1u32 << 30).to_le_bytes()).unwrap();
    oversized.write_all(&[0; 4]).unwrap();
    let _ = oversized.read_to_end(&mut sink);

    let client = c.members[0].client.clone();
    let mut junk = TcpStream::connect(&client).unwrap();
    junk.write_all(&[0xff; 4096]).unwrap();
    let _ = junk.read_to_end(&mut sink);
    // A half-open client connection that never speaks.
    let _idle = TcpStream::connect(&client).unwrap();

    assert_eq!(c.etcdctl(&["put", "still", "here"]).trim(), "OK");
    let got = c.etcdctl_at(&client, &["get", "still", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "here");
}

#[test]
fn a_member_of_another_cluster_is_refused_with_one_clear_line() {
    let c = Cluster::start("foreign");
    let own_peer = format!("127.0.0.1:{}", support::free_port());
    let dir = std::env::temp_dir().join(format!("synod-e2e-stranger-{}", std::process::id()));
    let _stranger = Background(
        Command::new(env!("CARGO_BIN_EXE_synod"))
            .args([
                "serve",
                "--name",
                "x",
                "--data-dir",
                &dir.display().to_string(),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{}", support::free_port()),
                "--listen-peer-urls",
                &format!("http://{own_peer}"),
                "--initial-cluster",
                &format!("x=http://{own_peer},s1=http://{}", c.members[0].peer),
                "--initial-cluster-token",
                "another-cluster",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_log(&c, 0, "refused peer connection: it belongs to cluster");
    let refusals = c.log(0).matches("refused peer connection").count();
    assert!(refusals >= 1);
    assert_eq!(c.etcdctl(&["put", "k", "v"]).trim(), "OK");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_member_without_a_quorum_refuses_linearizable_reads_but_serves_serializable_ones() {
    let mut c = Cluster::start("minority");
    c.etcdctl(&["put", "k", "v"]);
    let lone = c.members[2].client.clone();
    // Let the lone member apply the put before its peers go.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = c.etcdctl_at(
            &lone,
            &["get", "k", "--consistency=s", "--print-value-only"],
        );
        if String::from_utf8_lossy(&out.stdout).trim() == "v" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the put never reached the third member"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    c.kill(0);
    c.kill(1);
    let started = Instant::now();
    let out = c.etcdctl_at(&lone, &["get", "k"]);
    assert!(
        !out.status.success(),
        "a linearizable read without a quorum must fail"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let retryable = [
        "request timed out",
        "leader changed",
        "no leader",
        "deadline exceeded",
    ];
    assert!(retryable.iter().any(|e| err.contains(e)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(12));
    let out = c.etcdctl_at(
        &lone,
        &["get", "k", "--consistency=s", "--print-value-only"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
}

#[test]
fn flags_come_from_a_config_file_and_the_environment() {
    support::etcdctl_installed();
    let dir = std::env::temp_dir().join(format!("synod-e2e-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (client, peer) = (support::free_port(), support::free_port());
    let file = dir.join("synod.conf");
    std::fs::write(
        &file,
        format!(
            "# a one-member cluster\nname: solo\nlisten-client-urls: http://127.0.0.1:1\n\
             listen-peer-urls: 'http://127.0.0.1:{peer}'\n\
             initial-cluster: solo=http://127.0.0.1:{peer}\n"
        ),
    )
    .unwrap();
    let mut member = Background(
        Command::new(env!("CARGO_BIN_EXE_synod"))
            .args(["serve", "--config-file", &file.display().to_string()])
            // The command line overrides the file (port 1 would fail to bind).
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .env("SYNOD_DATA_DIR", dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let endpoint = format!("127.0.0.1:{client}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([&format!("--endpoints={endpoint}"), "put", "k", "v"])
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        if let Ok(Some(status)) = member.0.try_wait() {
            panic!("synod serve exited: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the configured member never served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(dir.join("data/member").is_dir(), "SYNOD_DATA_DIR was used");
    drop(member);
    let _ = std::fs::remove_dir_all(dir);
}

/// The resident memory of process `pid`, in bytes (Linux).
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        });
    kib.unwrap_or(0) * 1024
}

/// Twelve thousand clients, more than the core's queue admits, read one member as fast as
/// they can: the member's memory stays bounded, and the cluster keeps serving writes and
/// reads from others meanwhile.
#[test]
fn a_flood_of_clients_leaves_memory_bounded_and_others_served() {
    let c = Cluster::start("flood");
    c.etcdctl(&["put", "k", "v"]);
    let flooded = c.members[0].client.clone();
    let pid = c.members[0].child.as_ref().expect("running").id();
    let flood = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["bench", "range", "--endpoints", &flooded])
        .args(["--clients", "12000", "--conns", "96", "--consistency", "l"])
        .args(["--duration", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("synod bench starts");
    std::thread::sleep(Duration::from_secs(1));
    let mut peak = 0;
    let other = c.members[1].client.clone();
    for round in 0..4 {
        peak = peak.max(resident_bytes(pid));
        let started = Instant::now();
        let value = format!("v{round}");
        let out = c.etcdctl_at(&other, &["put", "k", &value]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = c.etcdctl_at(&flooded, &["get", "k", "--print-value-only"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), value);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a write and a read took {:?} under the flood",
            started.elapsed()
        );
        peak = peak.max(resident_bytes(pid));
    }
    // The flood was one: the load generator kept reading all along.
    let report = flood.wait_with_output().expect("synod bench ends");
    let report = String::from_utf8_lossy(&report.stdout);
    let rate: f64 = report
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .unwrap_or(0.0);
    println!(
        "flood: {rate:.0} reads/s; peak resident memory {} MiB",
        peak >> 20
    );
    assert!(rate > 2_000.0, "the flood ran at {rate}/s\n{report}");
    assert!(peak > 0, "no memory figure for pid {pid}");
    assert!(
        peak < 512 << 20,
        "the flooded member grew to {} MiB",
        peak >> 20
    );
}
