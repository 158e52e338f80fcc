//! An application snapshot's bytes, wherever they live.
//!
//! The engine holds its latest snapshot to serve laggards, but must not pin it in memory:
//! a server's snapshot is the whole store (tens of megabytes) and already lies in a file.
//! So the engine holds a [`SnapshotData`], a cheap handle over [`SnapshotBytes`]: bytes
//! in memory for tests and the simulator, a file for a server. Sending one is a
//! [`crate::multi::Action::SendSnapshot`] the driver streams chunk by chunk
//! ([`SnapshotData::chunks`]), at the pace its transport drains them.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Random access to a snapshot's bytes.
pub trait SnapshotBytes: fmt::Debug + Send + Sync {
    /// The length in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes from `offset`; an error if they cannot all be read.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// The file that already holds these bytes durably, if any: a storage asked to
    /// persist the snapshot there has nothing left to write.
    fn stored_at(&self) -> Option<&Path> {
        None
    }
}

impl SnapshotBytes for Vec<u8> {
    fn size(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let range = usize::try_from(offset)
            .ok()
            .and_then(|start| Some(start..start.checked_add(buf.len())?))
            .and_then(|range| self.get(range));
        match range {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the snapshot",
            )),
        }
    }
}

/// A snapshot's bytes: cloning shares them.
#[derive(Clone, Debug)]
pub struct SnapshotData(Arc<dyn SnapshotBytes>);

impl SnapshotData {
    /// Wraps `bytes`.
    pub fn new(bytes: impl SnapshotBytes + 'static) -> SnapshotData {
        SnapshotData(Arc::new(bytes))
    }

    /// The length in bytes.
    pub fn len(&self) -> u64 {
        self.0.size()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// See [`SnapshotBytes::stored_at`].
    pub fn stored_at(&self) -> Option<&Path> {
        self.0.stored_at()
    }

    /// `len` bytes from `offset`.
    pub fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.0.read_at(offset, &mut buf)?;
        Ok(buf)
    }

    /// All the bytes in memory at once: for restoring a state machine, not for sending.
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.len())
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "snapshot too large"))?;
        self.read(0, len)
    }

    /// The bytes as a stream, from the start: for restoring a state machine without a
    /// copy of the whole snapshot in memory.
    pub fn reader(&self) -> SnapshotReader {
        SnapshotReader {
            data: self.clone(),
            offset: 0,
        }
    }

    /// The bytes in order, at most `chunk_bytes` at a time, as (offset, bytes). Each chunk
    /// is read only when the iterator reaches it, so a sender holds one at a time.
    pub fn chunks(
        &self,
        chunk_bytes: usize,
    ) -> impl Iterator<Item = io::Result<(u64, Vec<u8>)>> + Send + 'static {
        let data = self.clone();
        let total = self.len();
        let step = chunk_bytes.max(1);
        let mut offset = 0;
        let mut first = true;
        std::iter::from_fn(move || {
            // An empty snapshot is still sent: one empty chunk says "nothing".
            if offset >= total && !(first && total == 0) {
                return None;
            }
            first = false;
            let len = usize::try_from(total - offset).map_or(step, |left| left.min(step));
            let chunk = data.read(offset, len).map(|bytes| (offset, bytes));
            offset += len as u64;
            Some(chunk)
        })
    }
}

/// [`SnapshotData::reader`].
#[derive(Debug)]
pub struct SnapshotReader {
    data: SnapshotData,
    offset: u64,
}

impl io::Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.data.len().saturating_sub(self.offset);
        let n = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        self.data.0.read_at(self.offset, &mut buf[..n])?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl From<Vec<u8>> for SnapshotData {
    fn from(bytes: Vec<u8>) -> SnapshotData {
        SnapshotData::new(bytes)
    }
}

/// Equal when the bytes are: for tests that compare actions. A handle that cannot be read
/// equals only itself.
impl PartialEq for SnapshotData {
    fn eq(&self, other: &SnapshotData) -> bool {
        if Arc::ptr_eq(&self.0, &other.0) {
            return true;
        }
        match (self.to_vec(), other.to_vec()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for SnapshotData {}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(data: &SnapshotData, chunk: usize) -> Vec<(u64, Vec<u8>)> {
        data.chunks(chunk).map(|c| c.unwrap()).collect()
    }

    #[test]
    fn chunks_cover_the_bytes_in_order() {
        let data = SnapshotData::from((0..10u8).collect::<Vec<u8>>());
        let chunks = collect(&data, 4);
        assert_eq!(
            chunks,
            vec![
                (0, vec![0, 1, 2, 3]),
                (4, vec![4, 5, 6, 7]),
                (8, vec![8, 9])
            ]
        );
        assert_eq!(collect(&data, 10), vec![(0, (0..10).collect())]);
    }

    #[test]
    fn a_reader_streams_the_bytes_to_the_end() {
        use std::io::Read;
        let bytes: Vec<u8> = (0..=255).collect();
        let mut reader = SnapshotData::from(bytes.clone()).reader();
        let mut first = [0; 100];
        reader.read_exact(&mut first).unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!([&first[..], &rest[..]].concat(), bytes);
        assert_eq!(reader.read(&mut first).unwrap(), 0);
    }

    #[test]
    fn an_empty_snapshot_is_one_empty_chunk() {
        let data = SnapshotData::from(Vec::new());
        assert_eq!(collect(&data, 4), vec![(0, vec![])]);
    }

    #[test]
    fn reading_past_the_end_is_an_error_not_a_panic() {
        let data = SnapshotData::from(vec![1, 2, 3]);
        assert!(data.read(2, 2).is_err());
        assert!(data.read(u64::MAX, 1).is_err());
        assert_eq!(data.read(1, 2).unwrap(), vec![2, 3]);
    }

    #[test]
    fn equal_bytes_are_equal_handles() {
        let a = SnapshotData::from(vec![1, 2]);
        assert_eq!(a, a.clone());
        assert_eq!(a, SnapshotData::from(vec![1, 2]));
        assert_ne!(a, SnapshotData::from(vec![1, 3]));
    }
}
