//! The state machine alone, on one thread: puts applied per second, and a range over
//! 1,000 keys. `cargo bench -p synod-kv --bench store`

#![allow(clippy::expect_used, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kv::{Put, Range, Store};

fn key(i: u64) -> Vec<u8> {
    i.to_be_bytes().to_vec()
}

fn puts(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("put-10k-8B-keys-256B-values", |b| {
        b.iter_batched(
            Store::new,
            |mut store| {
                for i in 0..10_000u64 {
                    let put = Put {
                        key: key(i % 1_000),
                        value: vec![7; 256],
                        ..Put::default()
                    };
                    store.put(&put).unwrap();
                }
                store
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn ranges(c: &mut Criterion) {
    let mut store = Store::new();
    for i in 0..1_000u64 {
        let put = Put {
            key: key(i),
            value: vec![7; 256],
            ..Put::default()
        };
        store.put(&put).unwrap();
    }
    let all = Range {
        key: vec![0],
        range_end: vec![0],
        ..Range::default()
    };
    c.bench_function("store/range-1000-keys", |b| {
        b.iter(|| assert_eq!(store.range(&all).unwrap().kvs.len(), 1_000));
    });
}

criterion_group!(benches, puts, ranges);
criterion_main!(benches);
