//! Migrating from etcd: a database `etcdctl snapshot save` took from a real etcd 3.4
//! (`scripts/etcd-ref`) restores into a three-member Synod cluster with `synod snapshot
//! restore`, and the cluster answers as the etcd it came from did: every kept revision
//! (`get --rev`), the compacted revision refused, the leases with their attached keys.
//! A truncated or damaged database is refused with the page and what is wrong, and
//! nothing is restored.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A failure is the report.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::Cluster;

/// A reference etcd (one member, client port 31379), stopped when dropped.
struct Etcd(PathBuf);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = Command::new(etcd_ref()).arg("stop").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn etcd_ref() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/etcd-ref")
}

fn etcdctl(endpoint: &str, args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .output()
        .expect("etcdctl runs")
}

fn ok(endpoint: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoint, args);
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `get "" --from-key --rev REV` answers: the key-values and count, or the error.
fn at_revision(endpoint: &str, revision: i64) -> String {
    let rev = format!("--rev={revision}");
    let out = etcdctl(endpoint, &["get", "", "--from-key", &rev, "-w", "json"]);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return stderr.lines().last().unwrap_or_default().to_string();
    }
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    format!(
        "{} {} {}",
        json["kvs"], json["count"], json["header"]["revision"]
    )
}

#[test]
fn an_etcd_snapshot_restores_into_synod_with_every_kept_revision() {
    let dir = std::env::temp_dir().join(format!("synod-migrate-etcd-{}", std::process::id()));
    let out = Command::new(etcd_ref())
        .args(["start", dir.to_str().unwrap(), "1", "31279"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _etcd = Etcd(dir.clone());
    let etcd = String::from_utf8_lossy(&out.stdout).trim().to_string();

    // History worth carrying: overwrites, a deletion, a transaction of several writes
    // at one revision, a lease with a key, a large value, then a compaction.
    ok(&etcd, &["put", "a", "1"]);
    ok(&etcd, &["put", "a", "2"]);
    ok(&etcd, &["put", "b", "x"]);
    ok(&etcd, &["del", "a"]);
    let lease = ok(&etcd, &["lease", "grant", "900"]);
    let lease = lease.split_whitespace().nth(1).unwrap().to_string();
    ok(&etcd, &["put", "leased", "y", &format!("--lease={lease}")]);
    let mut txn = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={etcd}"))
        .arg("txn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    txn.stdin
        .take()
        .unwrap()
        .write_all(b"\nput t1 one\nput t2 two\ndel b\n\n\n")
        .unwrap();
    assert!(txn.wait().unwrap().success());
    for i in 0..200 {
        ok(
            &etcd,
            &[
                "put",
                &format!("many/{}", i % 13),
                &"v".repeat(i * 37 % 2000),
            ],
        );
    }
    ok(&etcd, &["compact", "3"]);
    let file = dir.join("etcd.db");
    ok(&etcd, &["snapshot", "save", &file.display().to_string()]);
    let current: i64 = serde_json::from_str::<Value>(&ok(&etcd, &["get", "a", "-w", "json"]))
        .unwrap()["header"]["revision"]
        .as_i64()
        .unwrap();

    let mut synod = Cluster::configure("migrated", &[]);
    // Damaged copies are refused, naming the page; nothing is written.
    let bytes = std::fs::read(&file).unwrap();
    let truncated = dir.join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let refused = synod.restore(0, &truncated);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        why.contains("etcd database") && why.contains("page"),
        "{why}"
    );
    assert!(why.contains("truncated.db"), "the file is named: {why}");
    assert!(
        !synod.members[0].dir.join("member").exists(),
        "half-restored"
    );

    for i in 0..3 {
        let out = synod.restore(i, &file);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("at revision {current}")),
            "{stdout}"
        );
    }
    synod.start_all();
    let ours = synod.members[0].client.clone();
    for revision in 1..=current + 1 {
        assert_eq!(
            at_revision(&ours, revision),
            at_revision(&etcd, revision),
            "--rev={revision}"
        );
    }
    assert_eq!(at_revision(&ours, 0), at_revision(&etcd, 0));
    assert_eq!(ok(&ours, &["lease", "list"]), ok(&etcd, &["lease", "list"]));
    let keys = |endpoint: &str| {
        let ttl = ok(
            endpoint,
            &["lease", "timetolive", &lease, "--keys", "-w", "json"],
        );
        let json: Value = serde_json::from_str(&ttl).unwrap();
        (json["granted-ttl"].clone(), json["keys"].clone())
    };
    assert_eq!(keys(&ours), keys(&etcd));
    // The cluster goes on from there.
    ok(&ours, &["put", "after", "migration"]);
    let next = at_revision(&ours, current + 1);
    assert!(next.contains(&format!(" {}", current + 1)), "{next}");
}
