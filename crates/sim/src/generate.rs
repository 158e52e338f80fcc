//! Linearizable histories made to order, for testing and benchmarking the checker: every
//! operation takes effect at a random instant between its call and its return, and its
//! answer is computed from a sequential store at that instant. Operations whose outcome is
//! unknown take effect or not, at random.

use std::collections::BTreeMap;

use rand_core::RngCore;

use crate::history::{Input, Operation, Output};

/// `ops` operations by `clients` clients on `keys` keys; each client has one operation
/// outstanding at a time. About one write in `unknown_every` has an unknown outcome.
pub fn linearizable_history(
    rng: &mut impl RngCore,
    ops: usize,
    clients: u64,
    keys: u64,
    unknown_every: u64,
) -> Vec<Operation> {
    // Each client's operations one after the other, with random gaps and durations.
    let mut clock: Vec<u64> = (0..clients).map(|_| rng.next_u64() % 10).collect();
    let mut planned = Vec::with_capacity(ops);
    for n in 0..ops {
        let client = n as u64 % clients;
        let Some(now) = clock.get_mut(usize::try_from(client).unwrap_or(0)) else {
            break;
        };
        let call = *now + rng.next_u64() % 5;
        let duration = 1 + rng.next_u64() % 30;
        let point = call + rng.next_u64() % duration;
        *now = call + duration;
        let key = format!("k{}", rng.next_u64() % keys);
        let value = format!("v{n}");
        let input = match rng.next_u64() % 4 {
            0 | 1 => Input::Get,
            2 => Input::Put(value),
            _ => Input::Cas {
                expect: (rng.next_u64() % 3 > 0)
                    .then(|| format!("v{}", rng.next_u64() % (n as u64 + 1))),
                value,
            },
        };
        let unknown = input != Input::Get && rng.next_u64() % unknown_every == 0;
        let takes_effect = !unknown || rng.next_u64() % 2 == 0;
        planned.push((
            point,
            n,
            client,
            key,
            input,
            call,
            call + duration,
            unknown,
            takes_effect,
        ));
    }
    // Run the sequential store in linearization order.
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| (planned[i].0, planned[i].1));
    let mut store: BTreeMap<String, String> = BTreeMap::new();
    let mut outputs = vec![Output::Unknown; planned.len()];
    for i in order {
        let (_, _, _, key, input, _, _, unknown, takes_effect) = &planned[i];
        let output = match input {
            Input::Get => Output::Get(store.get(key).cloned()),
            Input::Put(value) => {
                if *takes_effect {
                    store.insert(key.clone(), value.clone());
                }
                Output::Done
            }
            Input::Delete => {
                if *takes_effect {
                    store.remove(key);
                }
                Output::Done
            }
            Input::Cas { expect, value } => {
                let ok = store.get(key) == expect.as_ref();
                if ok && *takes_effect {
                    store.insert(key.clone(), value.clone());
                }
                Output::Cas(ok)
            }
        };
        outputs[i] = if *unknown { Output::Unknown } else { output };
    }
    planned
        .into_iter()
        .zip(outputs)
        .map(
            |((_, _, client, key, input, call, ret, unknown, _), output)| Operation {
                client,
                key,
                input,
                output,
                call,
                ret: (!unknown).then_some(ret),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::{check, Verdict};
    use rand_core::SeedableRng;

    /// The checker never condemns a history that is linearizable by construction.
    #[test]
    fn generated_histories_are_found_linearizable() {
        for seed in 0..300 {
            let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
            let history = linearizable_history(&mut rng, 300, 4, 3, 5);
            assert_eq!(
                check(&history, 10_000_000),
                Verdict::Linearizable,
                "seed {seed}"
            );
        }
    }

    /// Moving a completed write's answer back in time (so a later read sees the old
    /// value) is caught at least sometimes: the checker is not vacuous on these histories.
    #[test]
    fn stale_reads_planted_in_generated_histories_are_caught() {
        let mut caught = 0;
        for seed in 0..100 {
            let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
            let mut history = linearizable_history(&mut rng, 200, 3, 2, 1_000);
            // Make every read of a key return the key's first written value.
            let mut first: BTreeMap<String, String> = BTreeMap::new();
            for op in &history {
                if let Input::Put(v) = &op.input {
                    first.entry(op.key.clone()).or_insert_with(|| v.clone());
                }
            }
            for op in history.iter_mut() {
                if matches!(op.output, Output::Get(_)) {
                    op.output = Output::Get(first.get(&op.key).cloned());
                }
            }
            caught += u32::from(matches!(check(&history, 10_000_000), Verdict::Violation(_)));
        }
        assert!(caught > 90, "caught only {caught} of 100");
    }
}
