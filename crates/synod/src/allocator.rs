//! mimalloc rather than the system allocator. A member frees memory in bulk (the log a
//! snapshot releases: a third of its heap after 100,000 puts) among objects it keeps (the
//! store). glibc's arenas kept those pages for good; mimalloc keeps each size class on its
//! own pages, so the released log's pages empty out and go back to the system.
//!
//! When they go back is the trade. mimalloc returns empty pages a second after they
//! empty, and only when some thread calls into it on a slow path: an idle member after a
//! load kept 115 MiB resident instead of 80 (`BENCHMARKS.md`). Returning them at once
//! cost a page fault per put and an `madvise` (with its TLB shootdown) per six; under 256
//! writing clients that was about 8% of puts. So pages go back [`PURGE_DELAY_MS`] after
//! they empty, and every runtime worker that goes idle sweeps what is due
//! ([`collect_when_idle`]), so an idle member still returns them.
//!
//! Transparent huge pages are off: mimalloc asks for them on its arena by default, so
//! one touched byte can keep 2 MiB resident and a purge of less returns nothing. An
//! idle member held 18 MiB instead of 8.4, a member after 100,000 puts 78 MiB instead
//! of 65. mimalloc reads that option before `main` runs, so it is set where mimalloc is
//! compiled: `-DMI_DEFAULT_ALLOW_THP=0` in `.cargo/config.toml` (`CFLAGS`, which only
//! libmimalloc-sys's C build reads).

use std::cell::Cell;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, mimalloc 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long an emptied page stays mapped for reuse before it goes back to the system.
pub const PURGE_DELAY_MS: u16 = 100;

/// Sets mimalloc's options; call before any thread starts.
#[allow(unsafe_code)]
pub fn configure() {
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table (not thread
    // safe: this runs first in `main`, alone); the option has this number in the mimalloc
    // version that crates/synod/Cargo.toml pins exactly (libmimalloc-sys =0.1.49).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS.into()) };
}

thread_local! {
    static LAST_COLLECT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// For a runtime's `on_thread_park`: at most once per purge delay per thread, hands this
/// thread's emptied pages back to mimalloc and returns the pages whose delay has passed.
#[allow(unsafe_code)]
pub fn collect_when_idle() {
    let now = Instant::now();
    let due = LAST_COLLECT.with(|last| {
        let due = last.get().is_none_or(|at| {
            now.duration_since(at) >= Duration::from_millis(PURGE_DELAY_MS.into())
        });
        if due {
            last.set(Some(now));
        }
        due
    });
    if due {
        // SAFETY: `mi_collect` works on the calling thread's own heap and mimalloc's
        // thread-safe arenas; it has no precondition.
        unsafe { libmimalloc_sys::mi_collect(false) };
    }
}
