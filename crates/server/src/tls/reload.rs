//! Certificates replaced on disk without a restart: a value built from files (a rustls
//! configuration from a certificate, a key and a CA) is rebuilt when one of the files
//! changes, checked when a new connection asks for it and at most once per interval.
//! Connections already open keep the configuration they were made with.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// How often the files are looked at, at most: a stat per file per second costs nothing,
/// and a rotation is seen within the second.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What a file looked like: modified when, how long, which inode (a file renamed into
/// place may keep the old one's time and length); `None` if it could not be read.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len(), metadata.ino()))
}

/// A value built from files, rebuilt when they change.
pub struct Reloading<T> {
    /// What the value is, for the log ("client TLS").
    what: String,
    files: Vec<PathBuf>,
    build: Box<dyn Fn() -> Result<T, String> + Send + Sync>,
    interval: Duration,
    state: Mutex<State<T>>,
}

struct State<T> {
    current: Arc<T>,
    /// The files as they were when `current` was built.
    built_from: Vec<Stamp>,
    checked: Instant,
    /// The files as they were when a rebuild last failed (that failure is logged once).
    failed_on: Option<Vec<Stamp>>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl<T> Reloading<T> {
    /// Builds the value from `files` now (an error if it cannot be built: a member does
    /// not start with certificates it cannot use), and again whenever they change.
    pub fn new(
        what: &str,
        files: Vec<PathBuf>,
        interval: Duration,
        build: impl Fn() -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Reloading<T>, String> {
        let built_from = files.iter().map(stamp).collect();
        let current = Arc::new(build()?);
        Ok(Reloading {
            what: what.to_string(),
            files,
            build: Box::new(build),
            interval,
            state: Mutex::new(State {
                current,
                built_from,
                checked: Instant::now(),
                failed_on: None,
            }),
        })
    }

    /// The value built from the files as they are now (checked at most once per
    /// interval). Files that cannot be built from (half-written, a key that does not
    /// match its certificate) leave the previous value in use, with one warning.
    pub fn current(&self) -> Arc<T> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() < self.interval {
            return state.current.clone();
        }
        state.checked = Instant::now();
        let now: Vec<Stamp> = self.files.iter().map(stamp).collect();
        if now == state.built_from || state.failed_on.as_ref() == Some(&now) {
            return state.current.clone();
        }
        match (self.build)() {
            Ok(value) => {
                tracing::info!(files = ?self.files, "{}: reloaded the changed certificate files", self.what);
                state.current = Arc::new(value);
                state.built_from = now;
                state.failed_on = None;
            }
            Err(e) => {
                tracing::warn!("{}: the changed certificate files cannot be used, keeping the previous ones: {e}", self.what);
                state.failed_on = Some(now);
            }
        }
        state.current.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A value built from the text of one file, refusing files that say "bad".
    fn reading(path: &Path, interval: Duration) -> Result<Reloading<String>, String> {
        let file = path.to_path_buf();
        Reloading::new("test", vec![path.to_path_buf()], interval, move || {
            let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
            match text.as_str() {
                "bad" => Err("bad contents".into()),
                _ => Ok(text),
            }
        })
    }

    fn temporary(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("synod-reload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("file")
    }

    /// Replaces `path` the way rotations do: a new file renamed over the old one.
    fn replace(path: &Path, text: &str) {
        let next = path.with_extension("next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, path).unwrap();
    }

    #[test]
    fn a_changed_file_is_seen_after_the_interval_and_not_before() {
        let path = temporary("changed");
        std::fs::write(&path, "one").unwrap();
        let reloading = reading(&path, Duration::from_millis(200)).unwrap();
        assert_eq!(*reloading.current(), "one");
        replace(&path, "two");
        assert_eq!(
            *reloading.current(),
            "one",
            "checked again within the interval"
        );
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(*reloading.current(), "two");
        // Rewritten in place with the same length: the time tells.
        std::thread::sleep(Duration::from_millis(10));
        std::fs::write(&path, "six").unwrap();
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(*reloading.current(), "six");
    }

    #[test]
    fn unusable_files_keep_the_previous_value_until_they_are_fixed() {
        let path = temporary("unusable");
        std::fs::write(&path, "good").unwrap();
        let reloading = reading(&path, Duration::ZERO).unwrap();
        replace(&path, "bad");
        assert_eq!(*reloading.current(), "good");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(*reloading.current(), "good", "a missing file keeps it too");
        replace(&path, "better");
        assert_eq!(*reloading.current(), "better");
    }

    #[test]
    fn files_that_cannot_be_used_at_the_start_are_an_error() {
        let path = temporary("start");
        assert!(reading(&path, Duration::ZERO).is_err(), "missing");
        std::fs::write(&path, "bad").unwrap();
        assert_eq!(reading(&path, Duration::ZERO).unwrap_err(), "bad contents");
    }

    #[test]
    fn an_unchanged_file_is_not_read_again() {
        let path = temporary("unchanged");
        std::fs::write(&path, "one").unwrap();
        let builds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = builds.clone();
        let reloading = Reloading::new("test", vec![path.clone()], Duration::ZERO, move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        for _ in 0..10 {
            reloading.current();
        }
        assert_eq!(builds.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
