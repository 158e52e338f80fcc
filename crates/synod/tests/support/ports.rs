//! Loopback ports for tests that start servers. Also included by
//! `crates/server/tests/grpc_differential.rs` (by path: test crates share no library).

use std::net::TcpListener;

/// A loopback port nothing listens on, drawn at random in 10000..24000: below the
/// kernel's ephemeral range (32768 and up) and the ports etcd-ref's tests use (24279 on).
/// A port taken by binding port 0 and released is from the ephemeral range, and can be
/// handed to another test's outgoing connection before our server binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let mut x =
        nanos ^ u64::from(std::process::id()) << 32 ^ DRAWS.fetch_add(1, Ordering::Relaxed) | 1;
    for _ in 0..1000 {
        // xorshift: a different sequence per process and call.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 10_000 + (x % 14_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 10000..24000")
}
