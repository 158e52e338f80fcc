//! A reference etcd 3.4 (`scripts/etcd-ref`) to compare answers with. Also included by
//! `crates/server/tests/common/mod.rs` (by path: test crates share no library).

use std::path::PathBuf;
use std::process::Command;

/// Reference etcd members, stopped (and their files removed) when dropped.
#[derive(Debug)]
pub struct Etcd(PathBuf);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = Command::new(etcd_ref()).arg("stop").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn etcd_ref() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/etcd-ref")
}

/// Starts `members` etcd members with client ports `base + 100·i` (etcd-ref's scheme:
/// each test its own base); their client endpoints.
pub fn start(name: &str, base: u16, members: u32) -> (Etcd, Vec<String>) {
    let dir = std::env::temp_dir().join(format!("synod-{name}-etcd-{}", std::process::id()));
    let out = Command::new(etcd_ref())
        .args([
            "start",
            dir.to_str().expect("a UTF-8 temp dir"),
            &members.to_string(),
            &base.to_string(),
        ])
        .output()
        .expect("scripts/etcd-ref runs");
    assert!(
        out.status.success(),
        "cannot start etcd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let endpoints = stdout.trim().split(',').map(String::from).collect();
    (Etcd(dir), endpoints)
}
