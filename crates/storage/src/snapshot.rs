//! Snapshot files: written durably by streaming (the state machine serialises straight
//! into the file, never into one buffer of its whole size), verified on open, and read
//! back in chunks by [`SnapshotFile`], so a member serves laggards from disk rather than
//! from a copy in memory.
//!
//! A file is a 36-byte header (`docs/STORAGE-FORMAT.md`: magic, format version, index,
//! data length, CRC32C of the data, CRC32C of the header before it) and the data. It is
//! written as a temporary file, synced, renamed into place, and the directory synced, so
//! a crash leaves the whole file or none (temporaries are removed on open).

use std::fs::{self, File};
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use paxos::multi::{SnapshotBytes, SnapshotData};

use crate::disk::{fatal, io, sync_dir};
use crate::format::SNAPSHOT_VERSION as VERSION;
use crate::StorageError;

const MAGIC: [u8; 8] = *b"SYNODSNP";
const HEADER_LEN: usize = 36;
/// Bytes buffered between the serialiser and the file, and read per verification step.
const BUFFER: usize = 1 << 20;
/// Bytes a snapshot writes between syncs of its file. The log's fsyncs share the disk
/// (and, on ext4, the journal) with the snapshot's: one sync of a whole large snapshot
/// at the end would queue every log write of that moment behind tens of megabytes.
const SYNC_EVERY: u64 = 4 << 20;

/// Where the snapshot covering `index` lives in `dir`.
pub(crate) fn snapshot_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("snap-{index:020}.snap"))
}

/// A verified snapshot file, open for reading. Deleting the file (a newer snapshot
/// replaced it) does not disturb a reader already holding it.
#[derive(Debug)]
pub struct SnapshotFile {
    file: File,
    path: PathBuf,
    len: u64,
}

impl SnapshotBytes for SnapshotFile {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let past_end = offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len);
        if past_end {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "read past the end of the snapshot",
            ));
        }
        self.file.read_exact_at(buf, HEADER_LEN as u64 + offset)
    }

    fn stored_at(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

impl SnapshotFile {
    /// Opens the snapshot covering `index` at `path`, verifying its header and, reading it
    /// through once, its checksum.
    pub fn open(path: &Path, index: u64) -> Result<SnapshotFile, StorageError> {
        let refuse = |reason| StorageError::Snapshot {
            path: path.to_path_buf(),
            reason,
        };
        let mut file =
            File::open(path).map_err(|_| refuse("the snapshot the log refers to is missing"))?;
        let mut header = [0u8; HEADER_LEN];
        file.read_exact(&mut header)
            .map_err(|_| refuse("truncated snapshot header"))?;
        let field = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
        let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap_or([0; 4]));
        if header[..8] != MAGIC || word(32) != crc32c::crc32c(&header[..32]) {
            return Err(refuse("bad snapshot header"));
        }
        if word(8) > VERSION {
            return Err(refuse("snapshot written by a newer format version"));
        }
        if field(12) != index {
            return Err(refuse(
                "the snapshot covers another index than the log says",
            ));
        }
        let (len, crc) = (field(20), word(28));
        let (found, read) = checksum(&mut file).map_err(io(path))?;
        if read != len {
            return Err(refuse("truncated snapshot"));
        }
        if found != crc {
            return Err(refuse("snapshot checksum mismatch"));
        }
        Ok(SnapshotFile {
            file,
            path: path.to_path_buf(),
            len,
        })
    }
}

/// The CRC32C and length of everything left in `file`.
fn checksum(file: &mut File) -> io::Result<(u32, u64)> {
    let mut buf = vec![0; BUFFER];
    let (mut crc, mut len) = (0, 0);
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok((crc, len)),
            Ok(n) => {
                crc = crc32c::crc32c_append(crc, &buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes the snapshot covering `index` into `dir` durably, with whatever `fill` writes,
/// and returns it open for reading. `fill` sees a buffered writer; its errors (and the
/// disk's) leave no file behind. A full disk is [`StorageError::Full`].
pub fn write_snapshot(
    dir: &Path,
    index: u64,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<SnapshotData, StorageError> {
    let path = snapshot_path(dir, index);
    let temporary = path.with_extension("tmp");
    let (file, len) = match write_temporary(&temporary, index, fill) {
        Ok(written) => written,
        Err(error) => {
            let _ = fs::remove_file(&temporary);
            return Err(match error.kind() {
                ErrorKind::StorageFull => StorageError::Full { path: temporary },
                _ => StorageError::Io {
                    path: temporary,
                    error,
                },
            });
        }
    };
    fs::rename(&temporary, &path).map_err(io(&path))?;
    sync_dir(dir)?;
    Ok(SnapshotData::new(SnapshotFile { file, path, len }))
}

/// Copies `data` into `out`, a chunk at a time.
pub(crate) fn copy(data: &SnapshotData, out: &mut dyn Write) -> io::Result<()> {
    for chunk in data.chunks(BUFFER) {
        out.write_all(&chunk?.1)?;
    }
    Ok(())
}

fn write_temporary(
    temporary: &Path,
    index: u64,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<(File, u64)> {
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(temporary)?;
    // The header needs the length and checksum: a placeholder now, the header at the end.
    file.write_all(&[0; HEADER_LEN])?;
    let mut out = Checksummed {
        inner: BufWriter::with_capacity(
            BUFFER,
            SyncingFile {
                file: &file,
                unsynced: 0,
            },
        ),
        crc: 0,
        len: 0,
    };
    fill(&mut out)?;
    out.inner.flush()?;
    let (crc, len) = (out.crc, out.len);
    drop(out);
    file.write_all_at(&header(index, len, crc), 0)?;
    if let Err(error) = file.sync_all() {
        fatal(temporary, "fsync", &error);
    }
    Ok((file, len))
}

fn header(index: u64, len: u64, crc: u32) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&index.to_le_bytes());
    header.extend_from_slice(&len.to_le_bytes());
    header.extend_from_slice(&crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&header);
    header.extend_from_slice(&header_crc.to_le_bytes());
    header
}

/// A file that syncs its data every [`SYNC_EVERY`] bytes written.
struct SyncingFile<'a> {
    file: &'a File,
    unsynced: u64,
}

impl Write for SyncingFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= SYNC_EVERY {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer that keeps the CRC32C and length of what went through it.
struct Checksummed<W> {
    inner: W,
    crc: u32,
    len: u64,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::scratch;

    #[test]
    fn a_written_snapshot_reads_back_in_chunks_and_reopens() {
        let dir = scratch();
        fs::create_dir_all(&dir).unwrap();
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let data = write_snapshot(&dir, 7, |out| out.write_all(&bytes)).unwrap();
        assert_eq!(data.len(), bytes.len() as u64);
        assert_eq!(data.stored_at(), Some(snapshot_path(&dir, 7).as_path()));
        assert_eq!(
            data.read(1_000_000, 5).unwrap(),
            bytes[1_000_000..1_000_005]
        );
        assert!(data.read(bytes.len() as u64 - 1, 2).is_err());
        let reopened = SnapshotFile::open(&snapshot_path(&dir, 7), 7).unwrap();
        assert_eq!(SnapshotData::new(reopened).to_vec().unwrap(), bytes);
        assert!(matches!(
            SnapshotFile::open(&snapshot_path(&dir, 7), 8),
            Err(StorageError::Snapshot { .. })
        ));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_failed_fill_leaves_no_file() {
        let dir = scratch();
        fs::create_dir_all(&dir).unwrap();
        let failed = write_snapshot(&dir, 3, |out| {
            out.write_all(b"partial")?;
            Err(io::Error::other("serialiser failed"))
        });
        assert!(matches!(failed, Err(StorageError::Io { .. })));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_flipped_byte_is_refused_on_open() {
        let dir = scratch();
        fs::create_dir_all(&dir).unwrap();
        write_snapshot(&dir, 2, |out| out.write_all(&[5u8; 4000])).unwrap();
        let path = snapshot_path(&dir, 2);
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_LEN + 1234] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            SnapshotFile::open(&path, 2),
            Err(StorageError::Snapshot {
                reason: "snapshot checksum mismatch",
                ..
            })
        ));
        let _ = fs::remove_dir_all(dir);
    }
}
