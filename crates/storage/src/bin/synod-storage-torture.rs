//! The child of the crash test (`tests/crash.rs`): opens a data directory, then appends
//! votes from several threads forever, printing `ack SLOT` for each one only after
//! `persist` returned. The test kills it with SIGKILL at a random moment and checks that
//! every acknowledged vote survived and nothing garbled was accepted.
//!
//! Usage: `synod-storage-torture DIR FIRST_SLOT`

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use paxos::multi::{Entry, Write};
use paxos::{Ballot, NodeId};
use storage::{DiskOptions, DiskStorage, Identity, Storage};

/// The value stored at `slot`: a function of the slot, so garbage is recognisable.
fn value(slot: u64) -> u64 {
    slot.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(first)) = (args.next(), args.next().and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: synod-storage-torture DIR FIRST_SLOT");
        std::process::exit(2);
    };
    let options = DiskOptions {
        segment_bytes: 16 << 10,
        ..DiskOptions::new(Identity {
            cluster: 1,
            member: NodeId(1),
        })
    };
    let storage = match DiskStorage::<u64>::open(&dir, options) {
        Ok(storage) => Arc::new(storage),
        Err(error) => {
            eprintln!("open failed: {error}");
            std::process::exit(1);
        }
    };
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..4u64)
        .map(|w| {
            let (storage, stdout) = (storage.clone(), stdout.clone());
            std::thread::spawn(move || {
                for k in 0.. {
                    let slot = first + k * 4 + w;
                    let write = Write::Votes {
                        ballot: Ballot::new(1, NodeId(1)),
                        first: slot,
                        entries: vec![Entry::Command(value(slot))].into(),
                    };
                    if storage.persist(vec![write]).is_err() {
                        std::process::exit(1);
                    }
                    let mut out = stdout.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = writeln!(out, "ack {slot}");
                    let _ = out.flush();
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}
