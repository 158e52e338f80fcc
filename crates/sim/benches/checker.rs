//! The linearizability checker on a 10,000-operation history over 10 keys (5 concurrent
//! clients, about 1 write in 20 with an unknown outcome).
//!
//! `cargo bench -p synod-sim --bench checker`

use criterion::{criterion_group, criterion_main, Criterion};
use rand_core::SeedableRng;
use sim::generate::linearizable_history;
use sim::linearizability::{check, Verdict};

fn checker(c: &mut Criterion) {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
    let history = linearizable_history(&mut rng, 10_000, 5, 10, 20);
    c.bench_function("check/10k-ops-10-keys", |b| {
        b.iter(|| assert_eq!(check(&history, u64::MAX), Verdict::Linearizable));
    });
}

criterion_group!(benches, checker);
criterion_main!(benches);
