//! Segment files: creating, rotating and releasing them, and recovering one on open.

use super::*;

impl<C: Codec + Clone> DiskStorage<C> {
    /// Closes the current segment and opens the next, which starts with the promise and
    /// commit point so far (older segments then matter only for their votes).
    pub(super) fn rotate(
        &self,
        inner: &mut Io,
        promised: Ballot,
        commit: u64,
    ) -> Result<(), Failure> {
        let number = inner.segments.back().map_or(0, |s| s.number + 1);
        let created = create_segment(&self.dir, &self.options, number, promised, commit);
        let path = segment_path(&self.dir, number);
        if let Err(StorageError::Io { error, .. }) = &created {
            if error.kind() == ErrorKind::StorageFull {
                let _ = fs::remove_file(&path);
                return Err(Failure::Full);
            }
        }
        let length = match created {
            Ok(length) => length,
            Err(error) => fatal(&path, "creating a segment", &error),
        };
        match open_for_append(&path, length, self.options.direct_io) {
            Ok((file, direct, tail)) => {
                (inner.file, inner.direct, inner.tail) = (file, direct, tail)
            }
            Err(error) => fatal(&path, "opening a new segment", &error),
        }
        inner.length = length;
        inner.zeroed = length;
        inner.segments.push_back(Segment {
            number,
            max_slot: 0,
        });
        Ok(())
    }

    /// A durable snapshot covers every slot through `index`: release the oldest segments
    /// whose votes it all covers (never the current one, never leaving a gap), and older
    /// snapshot files. The reaper deletes them, oldest segment first.
    pub(super) fn release(&self, inner: &mut Io, index: u64) {
        let mut released = Vec::new();
        while inner.segments.len() > 1 && inner.segments[0].max_slot <= index {
            let Some(old) = inner.segments.pop_front() else {
                break;
            };
            released.push(segment_path(&self.dir, old.number));
        }
        if let Ok(snapshots) = list(&self.dir, "snap-", ".snap") {
            for old in snapshots.into_iter().filter(|&i| i < index) {
                released.push(snapshot_path(&self.dir, old));
            }
        }
        self.reaper.delete(released);
    }
}

/// The length of a segment holding only its header and `State` frame (a fixed size).
pub(super) fn fresh_segment_len() -> u64 {
    let mut state = Vec::new();
    let record = Record::State {
        promised: Ballot::ZERO,
        commit: 0,
    };
    encode_record::<Vec<u8>>(&record, &mut state);
    (HEADER_LEN + FRAME_OVERHEAD + state.len()) as u64
}

/// Opens a segment whose frames end at `length` for appending: with direct I/O if asked
/// and the file system supports it. Returns the file, whether it is direct, and (if so)
/// the segment's bytes from the last block boundary up to `length`.
pub(super) fn open_for_append(
    path: &Path,
    length: u64,
    direct_io: bool,
) -> Result<(File, bool, Vec<u8>), StorageError> {
    if direct_io {
        if let Some(file) = open_direct(path).map_err(io(path))? {
            let start = round_down(length);
            let mut tail = vec![0; to_usize(length - start)];
            File::open(path)
                .and_then(|f| f.read_exact_at(&mut tail, start))
                .map_err(io(path))?;
            return Ok((file, true, tail));
        }
    }
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    Ok((file, false, Vec::new()))
}

pub(super) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("wal-{number:020}.log"))
}

/// The numbers of the files named `{prefix}{number}{suffix}` in `dir`, sorted.
pub(super) fn list(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<u64>, StorageError> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let name = entry.map_err(io(dir))?.file_name();
        let name = name.to_string_lossy();
        let number = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .and_then(|n| n.parse::<u64>().ok());
        numbers.extend(number);
    }
    numbers.sort_unstable();
    Ok(numbers)
}

pub(super) fn remove_temporaries(dir: &Path) -> Result<(), StorageError> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Creates segment `number` (header, then a frame holding a `State` record) durably, via
/// a temporary file renamed into place so that a crash never leaves a half-made segment.
/// Returns its length.
pub(super) fn create_segment(
    dir: &Path,
    options: &DiskOptions,
    number: u64,
    promised: Ballot,
    commit: u64,
) -> Result<u64, StorageError> {
    let header = Header {
        version: VERSION,
        identity: options.identity,
        segment: number,
    };
    let mut bytes = encode_header(&header).to_vec();
    let mut state = Vec::new();
    encode_record::<Vec<u8>>(&Record::State { promised, commit }, &mut state);
    encode_frame(&state, HEADER_LEN as u64, &mut bytes);
    let path = segment_path(dir, number);
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary).map_err(io(&temporary))?;
    file.write_all(&bytes).map_err(io(&temporary))?;
    file.sync_all().map_err(io(&temporary))?;
    fs::rename(&temporary, &path).map_err(io(&path))?;
    sync_dir(dir)?;
    Ok(bytes.len() as u64)
}

/// Verifies one segment, repairs a torn tail, and folds its records into `state`.
pub(super) fn recover_segment<C: Codec + Clone>(
    path: &Path,
    options: &DiskOptions,
    number: u64,
    last: bool,
    state: &mut State<C>,
) -> Result<Recovered, StorageError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io(path))?;
    let corrupt = |offset: u64, reason: &'static str| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let header = decode_header(&bytes).map_err(|_| corrupt(0, "bad segment header"))?;
    if header.version > VERSION {
        let version = header.version;
        return Err(StorageError::NewerVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    if header.identity != options.identity {
        return Err(StorageError::Foreign {
            path: path.to_path_buf(),
            found: header.identity,
            expected: options.identity,
        });
    }
    if header.segment != number {
        return Err(corrupt(0, "the header's segment number is not the file's"));
    }
    let body = &bytes[HEADER_LEN..];
    let framed = header.version >= FRAMED_SINCE;
    let scanned = if framed {
        scan_frames::<C>(body, HEADER_LEN as u64, last)
    } else {
        scan::<C>(body, last)
    };
    let scanned =
        scanned.map_err(|(offset, reason)| corrupt(HEADER_LEN as u64 + offset, reason))?;
    let length = (HEADER_LEN + scanned.end) as u64;
    let mut size = bytes.len() as u64;
    let torn = body[scanned.end..].iter().rposition(|&b| b != 0);
    if let (true, Some(last_written)) = (framed, torn) {
        // A torn write: never acknowledged (its sync never returned). Zero it durably, so
        // the zero-filled space after the records stays clean for the next frame.
        let to = (HEADER_LEN + scanned.end + last_written + 1) as u64;
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        write_zeros(&file, length, to).map_err(io(path))?;
        file.sync_data().map_err(io(path))?;
    } else if !framed && scanned.end < body.len() {
        // A torn tail of a version-1 segment: cut it off durably.
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        file.set_len(length).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
        size = length;
    }
    let mut max_slot = 0;
    for (_, record) in scanned.records {
        max_slot = max_slot.max(record.max_slot());
        state.apply_record(record, None);
    }
    let version = header.version;
    Ok(Recovered {
        max_slot,
        length,
        size,
        version,
    })
}
