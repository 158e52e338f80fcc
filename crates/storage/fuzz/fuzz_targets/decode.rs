//! The record and segment decoders on arbitrary bytes: they must never panic, never read
//! out of bounds, and never allocate from an untrusted length.
//!
//! `cargo +nightly fuzz run decode` (from `crates/storage`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::format::{decode_header, decode_record, scan};

fuzz_target!(|data: &[u8]| {
    let _ = decode_header(data);
    let _ = decode_record::<Vec<u8>>(data);
    let _ = decode_record::<u64>(data);
    let _ = scan::<Vec<u8>>(data, true);
    let _ = scan::<Vec<u8>>(data, false);
});
