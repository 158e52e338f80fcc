//! Deleting released files (old segments and snapshots) off the log's path.
//!
//! Unlinking tens of megabytes took the syncing thread 4–20 ms in a benchmark (ext4
//! frees the extents, and with `discard` trims them at the next journal commit), and every
//! log write waited meanwhile. So a release only names its files, and one thread per
//! directory deletes them, in the order named: segments go oldest first, so a crash never
//! leaves a gap between the segments that remain.
//!
//! Each file is first renamed to `<name>.tmp` (opening a directory removes those, so a
//! crash mid-deletion leaves nothing recovery would read), then shrunk a few megabytes at
//! a time before the unlink: each step frees a little, so no single journal commit, on
//! which the log's own fsyncs wait, has to free it all.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use crate::disk::sync_dir;

/// Bytes freed per step of a deletion.
const SHRINK_STEP: u64 = 4 << 20;

/// The deleting thread of one directory; dropping it waits for what it was given.
#[derive(Debug)]
pub(crate) struct Reaper {
    dir: PathBuf,
    sender: Option<Sender<Vec<PathBuf>>>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// A reaper for files of `dir`.
    pub(crate) fn new(dir: &Path) -> Reaper {
        let (sender, receiver) = mpsc::channel::<Vec<PathBuf>>();
        let owned = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("synod-reaper".into())
            .spawn(move || {
                for paths in receiver {
                    delete_all(&owned, &paths);
                }
            });
        match thread {
            Ok(thread) => Reaper {
                dir: dir.to_path_buf(),
                sender: Some(sender),
                thread: Some(thread),
            },
            // Without a thread, deletions happen on the caller's: slower, still correct.
            Err(_) => Reaper {
                dir: dir.to_path_buf(),
                sender: None,
                thread: None,
            },
        }
    }

    /// Deletes `paths`, in order, after whatever it was given before.
    pub(crate) fn delete(&self, paths: Vec<PathBuf>) {
        if paths.is_empty() {
            return;
        }
        let unsent = match &self.sender {
            Some(sender) => sender.send(paths).err().map(|e| e.0),
            None => Some(paths),
        };
        if let Some(paths) = unsent {
            delete_all(&self.dir, &paths);
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Deletes each of `paths` (a missing one is already deleted), then syncs `dir`.
/// Failures are left for the next open: a released file that stays is only space.
fn delete_all(dir: &Path, paths: &[PathBuf]) {
    for path in paths {
        let mut doomed = path.clone().into_os_string();
        doomed.push(".tmp");
        let doomed = PathBuf::from(doomed);
        if fs::rename(path, &doomed).is_err() {
            continue;
        }
        let _ = shrink(&doomed);
        let _ = fs::remove_file(&doomed);
    }
    let _ = sync_dir(dir);
}

/// Frees `path`'s blocks a step at a time.
fn shrink(path: &Path) -> io::Result<()> {
    let file: File = OpenOptions::new().write(true).open(path)?;
    let mut len = file.metadata()?.len();
    while len > SHRINK_STEP {
        len -= SHRINK_STEP;
        file.set_len(len)?;
        file.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::scratch;

    #[test]
    fn deleted_files_are_gone_once_the_reaper_is_dropped_and_others_stay() {
        let dir = scratch();
        fs::create_dir_all(&dir).unwrap();
        let big = dir.join("wal-0.log");
        fs::write(&big, vec![7u8; 12 << 20]).unwrap();
        let small = dir.join("snap-1.snap");
        fs::write(&small, b"x").unwrap();
        let kept = dir.join("wal-1.log");
        fs::write(&kept, b"y").unwrap();
        let reaper = Reaper::new(&dir);
        reaper.delete(vec![big.clone(), small.clone(), dir.join("missing")]);
        drop(reaper);
        let mut left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["wal-1.log"]);
        let _ = fs::remove_dir_all(dir);
    }
}
