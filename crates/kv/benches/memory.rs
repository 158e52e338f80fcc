//! Resident memory for 1,000,000 keys of 8 bytes with 256-byte values (one version each):
//! the growth of this process's RSS while it loads them (Linux `/proc/self/status`).
//! `cargo bench -p synod-kv --bench memory`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use kv::{Put, Store};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn main() {
    let keys: u64 = 1_000_000;
    let before = rss_bytes();
    let mut store = Store::new();
    for i in 0..keys {
        let put = Put {
            key: i.to_be_bytes().to_vec(),
            value: vec![7; 256],
            ..Put::default()
        };
        store.put(&put).unwrap();
    }
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "{keys} keys (8-byte keys, 256-byte values): RSS grew {:.1} MiB, {} bytes per key \
         (264 of them key and value)",
        grown as f64 / f64::from(1 << 20),
        grown / keys,
    );
    drop(store);
}
