//! Loopback ports for tests that start servers. Also included by
//! `crates/server/tests/grpc_differential.rs` (by path: test crates share no library).

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// A loopback port nothing listens on, drawn at random in 10000..24000: below the
/// kernel's ephemeral range (32768 and up) and the ports etcd-ref's tests use (24279 on).
/// A port taken by binding port 0 and released is from the ephemeral range, and can be
/// handed to another test's outgoing connection before our server binds it.
///
/// A port free now can still be drawn by another test (of this process or another
/// test binary running beside it) before our server binds it, so each draw also
/// claims the port with a marker file in the temp directory that no other draw in the
/// next ten minutes will take.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let mut x =
        nanos ^ u64::from(std::process::id()) << 32 ^ DRAWS.fetch_add(1, Ordering::Relaxed) | 1;
    for _ in 0..1000 {
        // xorshift: a different sequence per process and call.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 10_000 + (x % 14_000) as u16;
        if claim(port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 10000..24000")
}

/// Claims `port` for this test run: true if no other draw claimed it in the last ten
/// minutes (a claim older than that belongs to a finished run and is taken over).
fn claim(port: u16) -> bool {
    const STALE: Duration = Duration::from_secs(600);
    let dir = claims_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return true; // No temp directory to coordinate through: the bind check alone.
    }
    let marker = dir.join(port.to_string());
    let fresh = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
            .is_ok()
    };
    if fresh() {
        return true;
    }
    let age = std::fs::metadata(&marker)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    // Two draws that find one stale claim at the same instant could both take it;
    // the bind check after the claim is what remains against that.
    age.is_some_and(|age| age > STALE) && std::fs::remove_file(&marker).is_ok() && fresh()
}

fn claims_dir() -> PathBuf {
    std::env::temp_dir().join("synod-test-ports")
}
