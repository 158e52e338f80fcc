//! The bytes on disk: segment headers and records, and their decoders. Every decoder takes
//! arbitrary bytes and returns an answer (a value, "incomplete", or "corrupt"); none panics.
//! `docs/STORAGE-FORMAT.md` documents the layout byte by byte.

use std::sync::Arc;

use paxos::multi::{Entry, LogEntry, Members, Membership, Slot, SnapshotData, Write};
use paxos::{Ballot, NodeId, QuorumSpec, ACCEPTORS_MAX};

/// Commands as bytes. The log stores whatever the replicated state machine proposes.
pub trait Codec: Sized {
    /// Appends the command's bytes to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// The command those bytes encode, or `None` if they encode none.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

impl Codec for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(bytes.to_vec())
    }
}

impl Codec for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }
}

/// The magic bytes that open every segment.
pub const MAGIC: [u8; 8] = *b"SYNODWAL";
/// The segment format version this code writes. It reads every version up to it.
/// Version 3 adds the membership entries (tags 2 and 3), which an older reader must
/// refuse as newer rather than take for damage; version 4 the snapshot record that
/// carries the membership (type 7).
pub const VERSION: u32 = 4;
/// The first segment version whose records come in frames, one per write.
pub const FRAMED_SINCE: u32 = 2;
/// The snapshot file format version (unchanged since version 1).
pub const SNAPSHOT_VERSION: u32 = 1;
/// Bytes of a frame header: magic, header checksum, body checksum, body length, offset.
pub const FRAME_HEADER: usize = 28;
/// Bytes a frame adds to its body: the header and the end mark.
pub const FRAME_OVERHEAD: usize = FRAME_HEADER + 1;
/// The first bytes of every frame. None is zero, and neither is [`FRAME_END`]: a torn
/// write shows as a sector of zeros, and a frame's first and last sector must never hold
/// only zeros by chance.
pub const FRAME_MAGIC: [u8; 4] = *b"SYNF";
/// The last byte of every frame.
pub const FRAME_END: u8 = b'.';
/// Bytes in a segment header.
pub const HEADER_LEN: usize = 40;
/// Bytes before a record's payload: checksum, length, type.
pub const RECORD_OVERHEAD: usize = 9;
/// The most configurations a stored membership may hold at once (a replica has two
/// active during a change; more is corruption, not an allocation).
const MEMBERSHIP_CONFIGS_MAX: usize = 2;

/// The largest record accepted (a larger length is corruption, not an allocation).
pub const RECORD_MAX: usize = 64 << 20;

/// Who a data directory belongs to: a node refuses another cluster's or member's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The cluster.
    pub cluster: u64,
    /// The member.
    pub member: NodeId,
}

/// A segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u32,
    /// Owner.
    pub identity: Identity,
    /// The segment's number (0, 1, 2, … in write order).
    pub segment: u64,
}

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record<C> {
    /// The promised ballot.
    Promise(Ballot),
    /// Votes at `ballot` from slot `first` on.
    Votes {
        /// The ballot.
        ballot: Ballot,
        /// The first slot.
        first: Slot,
        /// One entry per slot.
        entries: Vec<Entry<C>>,
    },
    /// Chosen entries from slot `first` on.
    Chosen {
        /// The first slot.
        first: Slot,
        /// One entry per slot, with its ballot.
        entries: Vec<LogEntry<C>>,
    },
    /// The commit point (a hint).
    Commit(Slot),
    /// A durable snapshot file covers every slot through `index`.
    Snapshot {
        /// The last slot covered.
        index: Slot,
        /// The membership after `index` (type 7); `None` in a type-5 record, written
        /// before membership could change (the initial configuration then holds).
        membership: Option<Membership>,
    },
    /// Opens every segment: the promise and commit point so far, so that older segments
    /// are needed only for the votes they hold.
    State {
        /// The promised ballot.
        promised: Ballot,
        /// The commit point.
        commit: Slot,
    },
}

impl<C: Clone> Record<C> {
    /// The record that logs `write`, and for a snapshot its bytes (which go to their own
    /// file before the record is logged).
    pub fn of(write: Write<C>) -> (Record<C>, Option<SnapshotData>) {
        let record = match write {
            Write::Promise(ballot) => Record::Promise(ballot),
            Write::Votes {
                ballot,
                first,
                entries,
            } => Record::Votes {
                ballot,
                first,
                entries: entries.iter().cloned().collect(),
            },
            Write::Chosen { first, entries } => Record::Chosen { first, entries },
            Write::Commit(slot) => Record::Commit(slot),
            Write::Snapshot {
                index,
                membership,
                data,
            } => {
                let membership = Some(membership);
                return (Record::Snapshot { index, membership }, Some(data));
            }
        };
        (record, None)
    }

    /// The highest slot this record holds a vote for (0 if none).
    pub fn max_slot(&self) -> Slot {
        match self {
            Record::Votes { first, entries, .. } => first + entries.len() as u64,
            Record::Chosen { first, entries } => first + entries.len() as u64,
            _ => 0,
        }
    }
}

const PROMISE: u8 = 1;
const VOTES: u8 = 2;
const CHOSEN: u8 = 3;
const COMMIT: u8 = 4;
const SNAPSHOT: u8 = 5;
const STATE: u8 = 6;
const SNAPSHOT_WITH_MEMBERSHIP: u8 = 7;

/// Encodes a segment header.
pub fn encode_header(header: &Header) -> [u8; HEADER_LEN] {
    let mut bytes = [0u8; HEADER_LEN];
    bytes[..8].copy_from_slice(&MAGIC);
    bytes[8..12].copy_from_slice(&header.version.to_le_bytes());
    bytes[12..20].copy_from_slice(&header.identity.cluster.to_le_bytes());
    bytes[20..28].copy_from_slice(&header.identity.member.0.to_le_bytes());
    bytes[28..36].copy_from_slice(&header.segment.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..36]);
    bytes[36..40].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Why a header was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than a header.
    Short,
    /// Not a Synod segment.
    Magic,
    /// The checksum does not match.
    Checksum,
}

/// Decodes a segment header (the version is returned, not judged: the caller decides).
pub fn decode_header(bytes: &[u8]) -> Result<Header, HeaderError> {
    let bytes = bytes.get(..HEADER_LEN).ok_or(HeaderError::Short)?;
    if bytes[..8] != MAGIC {
        return Err(HeaderError::Magic);
    }
    let mut r = Reader(&bytes[8..]);
    let (version, cluster, member, segment, crc) =
        (|| Some((r.u32()?, r.u64()?, r.u64()?, r.u64()?, r.u32()?)))()
            .ok_or(HeaderError::Short)?;
    if crc != crc32c::crc32c(&bytes[..36]) {
        return Err(HeaderError::Checksum);
    }
    Ok(Header {
        version,
        identity: Identity {
            cluster,
            member: NodeId(member),
        },
        segment,
    })
}

/// Appends `record` to `out`: checksum, length, type, payload.
pub fn encode_record<C: Codec>(record: &Record<C>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    match record {
        Record::Promise(ballot) => {
            out.push(PROMISE);
            put_ballot(out, *ballot);
        }
        Record::Votes {
            ballot,
            first,
            entries,
        } => {
            out.push(VOTES);
            put_ballot(out, *ballot);
            out.extend_from_slice(&first.to_le_bytes());
            put_len(out, entries.len());
            for entry in entries {
                put_entry(out, entry);
            }
        }
        Record::Chosen { first, entries } => {
            out.push(CHOSEN);
            out.extend_from_slice(&first.to_le_bytes());
            put_len(out, entries.len());
            for entry in entries {
                put_ballot(out, entry.ballot);
                put_entry(out, &entry.entry);
            }
        }
        Record::Commit(slot) => {
            out.push(COMMIT);
            out.extend_from_slice(&slot.to_le_bytes());
        }
        Record::Snapshot { index, membership } => {
            out.push(match membership {
                Some(_) => SNAPSHOT_WITH_MEMBERSHIP,
                None => SNAPSHOT,
            });
            out.extend_from_slice(&index.to_le_bytes());
            if let Some(membership) = membership {
                put_membership(out, membership);
            }
        }
        Record::State { promised, commit } => {
            out.push(STATE);
            put_ballot(out, *promised);
            out.extend_from_slice(&commit.to_le_bytes());
        }
    }
    let len = out.len() - start - 8;
    out[start + 4..start + 8]
        .copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Appends a ballot: round, then node (little-endian u64 each).
pub fn put_ballot(out: &mut Vec<u8>, ballot: Ballot) {
    out.extend_from_slice(&ballot.round.to_le_bytes());
    out.extend_from_slice(&ballot.node.0.to_le_bytes());
}

/// Appends a length as a little-endian u32.
pub fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

/// Appends an entry: tag 0 (no-op); tag 1, a u32 length and the command's bytes; tag 2,
/// a membership change (base epoch u64, then [`put_members`]); tag 3, a retirement
/// (epoch u64).
pub fn put_entry<C: Codec>(out: &mut Vec<u8>, entry: &Entry<C>) {
    match entry {
        Entry::Noop => out.push(0),
        Entry::Configure { base, members } => {
            out.push(2);
            out.extend_from_slice(&base.to_le_bytes());
            put_members(out, members);
        }
        Entry::Retire { epoch } => {
            out.push(3);
            out.extend_from_slice(&epoch.to_le_bytes());
        }
        Entry::Command(command) => {
            out.push(1);
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            command.encode(out);
            let len = out.len() - at - 4;
            out[at..at + 4].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
        }
    }
}

/// Appends a configuration: the voters (u32 count, then u64 ids), the learners (likewise),
/// then the quorum system: tag 0 (majority), 1 (flexible: q1 u32, q2 u32) or 2 (grid:
/// rows u32, cols u32).
pub fn put_members(out: &mut Vec<u8>, members: &Members) {
    for ids in [members.replicas(), members.learners()] {
        put_len(out, ids.len());
        for id in ids {
            out.extend_from_slice(&id.0.to_le_bytes());
        }
    }
    let small = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    match members.spec() {
        QuorumSpec::Majority => out.push(0),
        QuorumSpec::Flexible { q1, q2 } => {
            out.push(1);
            out.extend_from_slice(&small(q1));
            out.extend_from_slice(&small(q2));
        }
        QuorumSpec::Grid { rows, cols } => {
            out.push(2);
            out.extend_from_slice(&small(rows));
            out.extend_from_slice(&small(cols));
        }
    }
}

/// Appends a membership: the first active epoch (u64), the epoch of a configuration
/// that was told rather than learned (a byte 0, or 1 then the epoch as u64), then the
/// active configurations (u32 count, then each as [`put_members`]), oldest first.
pub fn put_membership(out: &mut Vec<u8>, membership: &Membership) {
    out.extend_from_slice(&membership.first_epoch().to_le_bytes());
    match membership.told_epoch() {
        None => out.push(0),
        Some(epoch) => {
            out.push(1);
            out.extend_from_slice(&epoch.to_le_bytes());
        }
    }
    let configs: Vec<_> = membership.active().collect();
    put_len(out, configs.len());
    for (_, members) in configs {
        put_members(out, members);
    }
}

/// What the decoder found at the start of some bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded<C> {
    /// A whole, valid record, `len` bytes long.
    Record {
        /// The record.
        record: Record<C>,
        /// Its size on disk.
        len: usize,
    },
    /// The bytes end inside a record: a write that did not complete (a torn tail, if at
    /// the end of the last segment).
    Incomplete,
    /// The bytes cannot be a record written by this code: why.
    Corrupt(&'static str),
}

/// Decodes the record at the start of `bytes`.
pub fn decode_record<C: Codec>(bytes: &[u8]) -> Decoded<C> {
    let mut r = Reader(bytes);
    let (Some(crc), Some(len)) = (r.u32(), r.u32()) else {
        return Decoded::Incomplete;
    };
    let Ok(len) = usize::try_from(len) else {
        return Decoded::Corrupt("record length does not fit in memory");
    };
    if len == 0 || len > RECORD_MAX {
        return Decoded::Corrupt("record length out of range");
    }
    let Some(body) = bytes.get(8..8 + len) else {
        return Decoded::Incomplete;
    };
    if crc != crc32c::crc32c(&bytes[4..8 + len]) {
        return Decoded::Corrupt("checksum mismatch");
    }
    match decode_body(body) {
        Some(record) => Decoded::Record {
            record,
            len: 8 + len,
        },
        None => Decoded::Corrupt("checksum matches but the payload is malformed"),
    }
}

fn decode_body<C: Codec>(body: &[u8]) -> Option<Record<C>> {
    let (&kind, payload) = body.split_first()?;
    let mut r = Reader(payload);
    let record = match kind {
        PROMISE => Record::Promise(r.ballot()?),
        VOTES => {
            let ballot = r.ballot()?;
            let first = r.u64()?;
            let count = r.u32()?;
            let mut entries = Vec::new();
            for _ in 0..count {
                entries.push(r.entry()?);
            }
            Record::Votes {
                ballot,
                first,
                entries,
            }
        }
        CHOSEN => {
            let first = r.u64()?;
            let count = r.u32()?;
            let mut entries = Vec::new();
            for _ in 0..count {
                let ballot = r.ballot()?;
                let entry = r.entry()?;
                entries.push(LogEntry { ballot, entry });
            }
            Record::Chosen { first, entries }
        }
        COMMIT => Record::Commit(r.u64()?),
        SNAPSHOT => Record::Snapshot {
            index: r.u64()?,
            membership: None,
        },
        SNAPSHOT_WITH_MEMBERSHIP => Record::Snapshot {
            index: r.u64()?,
            membership: Some(r.membership()?),
        },
        STATE => Record::State {
            promised: r.ballot()?,
            commit: r.u64()?,
        },
        _ => return None,
    };
    // Trailing bytes mean the record is not what this code writes.
    r.0.is_empty().then_some(record)
}

/// The records of one segment's body (the bytes after its header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan<C> {
    /// Every valid record, in order, with its offset in the body.
    pub records: Vec<(u64, Record<C>)>,
    /// Where the valid records end: the rest, if any, is a torn tail.
    pub end: usize,
}

/// Reads every record of a segment body. In the last segment (`tail`), an incomplete
/// final record, or a final stretch of zero bytes (a write the file system extended but
/// never filled), is a torn tail: the scan ends before it. Anything else that is not a
/// valid record is corruption at the returned offset.
pub fn scan<C: Codec>(bytes: &[u8], tail: bool) -> Result<Scan<C>, (u64, &'static str)> {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        match decode_record(rest) {
            Decoded::Record { record, len } => {
                records.push((offset as u64, record));
                offset += len;
            }
            Decoded::Incomplete if tail => break,
            Decoded::Corrupt(_) if tail && rest.iter().all(|&b| b == 0) => break,
            Decoded::Incomplete => {
                return Err((offset as u64, "incomplete record in a sealed segment"))
            }
            Decoded::Corrupt(reason) => return Err((offset as u64, reason)),
        }
    }
    Ok(Scan {
        records,
        end: offset,
    })
}

/// Wraps `body` (encoded records, at least one byte) in a frame that will sit at byte
/// `offset` of its file: one frame per write, so that recovery can tell a write that
/// never completed from damage to one that did.
pub fn encode_frame(body: &[u8], offset: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    let crc = crc32c::crc32c(&out[start + 8..start + FRAME_HEADER]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(body);
    out.push(FRAME_END);
}

/// The frame at the start of `bytes`, which sit at byte `offset` of their file: its body
/// and its length on disk, or why it is not a whole, valid frame written there.
pub fn decode_frame(bytes: &[u8], offset: u64) -> Result<(&[u8], usize), &'static str> {
    if bytes.len() < FRAME_HEADER {
        return Err("the file ends inside a frame header");
    }
    let end = declared_len(bytes, offset).ok_or("bad frame header")?;
    let frame = bytes.get(..end).ok_or("the file ends inside a frame")?;
    let body = &frame[FRAME_HEADER..end - 1];
    if frame[end - 1] != FRAME_END {
        return Err("a frame without its end mark");
    }
    if frame[8..12] != crc32c::crc32c(body).to_le_bytes() {
        return Err("frame checksum mismatch");
    }
    Ok((body, end))
}

/// The length on disk that a frame header at the start of `bytes` declares, if the
/// header itself is valid (its magic and checksum match, and it was written for
/// `offset`).
fn declared_len(bytes: &[u8], offset: u64) -> Option<usize> {
    let header = bytes.get(..FRAME_HEADER)?;
    let mut r = Reader(&header[4..]);
    let (crc, _, len, at) = (r.u32()?, r.u32()?, r.u64()?, r.u64()?);
    let valid = header[..4] == FRAME_MAGIC && crc == crc32c::crc32c(&header[8..]) && at == offset;
    let len = usize::try_from(len).ok().filter(|&len| len > 0)?;
    valid.then(|| len.checked_add(FRAME_OVERHEAD))?
}

/// The unit a disk writes whole: a write cut short by a crash loses whole sectors.
const SECTOR: u64 = 512;

/// Whether the invalid frame at the start of `bytes` (at byte `offset` of its file) shows
/// the mark of a write cut short: it runs past the end of the file, or one of the disk
/// sectors it spans reads as zeros (what the zero-filled file held before the write). A
/// frame that was written whole and damaged later shows neither (unless its own data
/// held a sector of zeros), and is refused as corrupt. etcd's log tells torn writes from
/// damage the same way.
fn looks_torn(bytes: &[u8], offset: u64) -> bool {
    if bytes.len() < FRAME_HEADER {
        return true; // The file ends inside the header.
    }
    let end = match declared_len(bytes, offset) {
        Some(len) if len > bytes.len() => return true,
        Some(len) => len,
        // Without a valid header the frame's extent is unknown: up to its last byte that
        // is not zero, and at least its header (whose second sector may be the lost one).
        None => {
            let written = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            written.max(FRAME_HEADER.min(bytes.len()))
        }
    };
    let mut start = 0;
    while start < end {
        let sector_end = ((offset + start as u64) / SECTOR + 1) * SECTOR - offset;
        let stop = usize::try_from(sector_end).map_or(end, |s| s.min(end));
        if bytes[start..stop].iter().all(|&b| b == 0) {
            return true;
        }
        start = stop;
    }
    false
}

/// Whether a valid frame starts anywhere in `bytes` (which sit at byte `offset` of their
/// file). Each candidate is first matched on the magic and the offset it declares, so the
/// search is a compare per byte, not a checksum.
fn any_frame(bytes: &[u8], offset: u64) -> bool {
    (0..bytes.len().saturating_sub(FRAME_HEADER - 1)).any(|i| {
        let at = offset + i as u64;
        bytes[i..i + 4] == FRAME_MAGIC
            && bytes[i + 20..i + 28] == at.to_le_bytes()
            && decode_frame(&bytes[i..], at).is_ok()
    })
}

/// Reads every frame of a version-2 segment's body (the bytes after its header, which
/// sit at byte `offset` of the file). The valid frames end at the first position that
/// holds none. What follows decides:
/// - nothing but zero bytes: the end of the log (segments are zero-filled ahead of their
///   writes);
/// - in the last segment (`tail`), a frame that `looks_torn` with no valid frame
///   anywhere after it: a torn write. Writes are synced one at a time and each is one
///   frame, so a write whose sync never returned is the last frame written, and nothing
///   after it was acknowledged. The scan ends before it.
/// - anything else: corruption (a write that completed was damaged), at the offset
///   returned.
pub fn scan_frames<C: Codec>(
    bytes: &[u8],
    offset: u64,
    tail: bool,
) -> Result<Scan<C>, (u64, &'static str)> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let frame_offset = offset + at as u64;
        match decode_frame(&bytes[at..], frame_offset) {
            Ok((body, len)) => {
                let base = at + FRAME_HEADER;
                let inner = scan::<C>(body, false).map_err(|(o, why)| (base as u64 + o, why))?;
                let shifted = inner.records.into_iter().map(|(o, r)| (base as u64 + o, r));
                records.extend(shifted);
                at += len;
            }
            Err(reason) => {
                let rest = &bytes[at..];
                if rest.iter().all(|&b| b == 0) {
                    break;
                }
                let torn = tail
                    && looks_torn(rest, frame_offset)
                    && !any_frame(&rest[1..], frame_offset + 1);
                if torn {
                    break;
                }
                return Err((at as u64, reason));
            }
        }
    }
    Ok(Scan { records, end: at })
}

/// A cursor over bytes whose reads fail (rather than panic) past the end. Shared with the
/// server's peer protocol, which encodes ballots and entries the same way.
#[derive(Debug)]
pub struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A byte.
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A ballot, as [`put_ballot`] wrote it.
    pub fn ballot(&mut self) -> Option<Ballot> {
        Some(Ballot::new(self.u64()?, NodeId(self.u64()?)))
    }

    /// An entry, as [`put_entry`] wrote it.
    pub fn entry<C: Codec>(&mut self) -> Option<Entry<C>> {
        match self.u8()? {
            0 => Some(Entry::Noop),
            1 => {
                let len = usize::try_from(self.u32()?).ok()?;
                Some(Entry::Command(C::decode(self.take(len)?)?))
            }
            2 => {
                let base = self.u64()?;
                let members = Arc::new(self.members()?);
                Some(Entry::Configure { base, members })
            }
            3 => Some(Entry::Retire { epoch: self.u64()? }),
            _ => None,
        }
    }

    /// A membership, as [`put_membership`] wrote it; `None` if it is not a valid one.
    pub fn membership(&mut self) -> Option<Membership> {
        let first_epoch = self.u64()?;
        let told = match self.u8()? {
            0 => None,
            1 => Some(self.u64()?),
            _ => return None,
        };
        let count = usize::try_from(self.u32()?).ok()?;
        if count > MEMBERSHIP_CONFIGS_MAX {
            return None;
        }
        let configs = (0..count)
            .map(|_| self.members().map(Arc::new))
            .collect::<Option<Vec<_>>>()?;
        Membership::from_parts(first_epoch, configs, told)
    }

    /// A configuration, as [`put_members`] wrote it; `None` if it is not a valid one.
    pub fn members(&mut self) -> Option<Members> {
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let count = usize::try_from(self.u32()?).ok()?;
            if count > ACCEPTORS_MAX {
                return None;
            }
            for _ in 0..count {
                list.push(NodeId(self.u64()?));
            }
        }
        let tag = self.u8()?;
        let mut small = || usize::try_from(self.u32()?).ok();
        let spec = match tag {
            0 => QuorumSpec::Majority,
            1 => QuorumSpec::Flexible {
                q1: small()?,
                q2: small()?,
            },
            2 => QuorumSpec::Grid {
                rows: small()?,
                cols: small()?,
            },
            _ => return None,
        };
        let [voters, learners] = lists;
        Members::with_learners(voters, learners, spec).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ballot(round: u64, node: u64) -> Ballot {
        Ballot::new(round, NodeId(node))
    }

    fn samples() -> Vec<Record<Vec<u8>>> {
        vec![
            Record::Promise(ballot(3, 2)),
            Record::Votes {
                ballot: ballot(3, 2),
                first: 7,
                entries: vec![Entry::Command(b"put k v".to_vec()), Entry::Noop],
            },
            Record::Votes {
                ballot: ballot((1 << 32) + 1, 2),
                first: 9,
                entries: configurations()
                    .into_iter()
                    .enumerate()
                    .map(|(base, members)| Entry::Configure {
                        base: base as u64,
                        members: Arc::new(members),
                    })
                    .chain([Entry::Retire { epoch: 3 }])
                    .collect(),
            },
            Record::Chosen {
                first: 1,
                entries: vec![LogEntry {
                    ballot: ballot(1, 1),
                    entry: Entry::Command(vec![]),
                }],
            },
            Record::Commit(9),
            Record::Snapshot {
                index: 4,
                membership: None,
            },
            Record::Snapshot {
                index: 5,
                membership: Membership::from_parts(
                    7,
                    configurations().into_iter().skip(1).map(Arc::new).collect(),
                    Some(6),
                ),
            },
            Record::State {
                promised: ballot(3, 2),
                commit: 9,
            },
        ]
    }

    fn configurations() -> Vec<Members> {
        let ids = |ids: &[u64]| ids.iter().map(|&i| NodeId(i)).collect::<Vec<_>>();
        [
            (&[1, 2, 3][..], &[][..], QuorumSpec::Majority),
            (&[1, 2, 3, 4], &[9], QuorumSpec::Flexible { q1: 3, q2: 2 }),
            (
                &[1, 2, 3, 4, 5, 6],
                &[7, 8],
                QuorumSpec::Grid { rows: 2, cols: 3 },
            ),
        ]
        .into_iter()
        .map(|(voters, learners, spec)| {
            Members::with_learners(ids(voters), ids(learners), spec).unwrap()
        })
        .collect()
    }

    #[test]
    fn a_configuration_that_could_not_be_built_is_refused() {
        let mut bytes = Vec::new();
        put_members(&mut bytes, &configurations()[2]);
        assert!(Reader(&bytes).members().is_some());
        let spec_at = bytes.len() - 9;
        bytes[spec_at + 1] = 4; // grid:4x3 over six voters
        assert_eq!(Reader(&bytes).members(), None);
        let mut duplicate = Vec::new();
        put_members(&mut duplicate, &configurations()[0]);
        duplicate[4 + 8..4 + 16].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(Reader(&duplicate).members(), None, "voter 1 twice");
        let mut huge = Vec::new();
        put_len(&mut huge, 1 << 30);
        assert_eq!(
            Reader(&huge).members(),
            None,
            "no allocation for a forged count"
        );
    }

    #[test]
    fn every_record_round_trips_and_reports_its_length() {
        for record in samples() {
            let mut bytes = Vec::new();
            encode_record(&record, &mut bytes);
            let len = bytes.len();
            bytes.extend_from_slice(b"next");
            assert_eq!(decode_record(&bytes), Decoded::Record { record, len });
        }
    }

    #[test]
    fn a_cut_record_is_incomplete_and_a_flipped_bit_is_corrupt() {
        let mut bytes = Vec::new();
        encode_record(&samples()[1], &mut bytes);
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_record::<Vec<u8>>(&bytes[..cut]),
                Decoded::Incomplete,
                "cut {cut}"
            );
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[i] ^= 1 << bit;
                let decoded = decode_record::<Vec<u8>>(&flipped);
                // A flip in the length field may make the record look longer (incomplete);
                // anywhere else it must be caught by the checksum.
                let caught = matches!(decoded, Decoded::Corrupt(_) | Decoded::Incomplete);
                assert!(caught, "flip at byte {i} bit {bit} accepted: {decoded:?}");
            }
        }
    }

    #[test]
    fn headers_round_trip_and_refuse_strangers() {
        let header = Header {
            version: VERSION,
            identity: Identity {
                cluster: 42,
                member: NodeId(3),
            },
            segment: 5,
        };
        let bytes = encode_header(&header);
        assert_eq!(decode_header(&bytes), Ok(header));
        assert_eq!(decode_header(&bytes[..10]), Err(HeaderError::Short));
        let mut bad = bytes;
        bad[0] = b'X';
        assert_eq!(decode_header(&bad), Err(HeaderError::Magic));
        let mut bad = bytes;
        bad[20] ^= 1;
        assert_eq!(decode_header(&bad), Err(HeaderError::Checksum));
    }

    proptest! {
        /// The decoders never panic, whatever the bytes.
        #[test]
        fn decoders_survive_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_record::<Vec<u8>>(&bytes);
            let _ = decode_record::<u64>(&bytes);
            let _ = decode_header(&bytes);
            let _ = decode_frame(&bytes, 40);
            let _ = scan_frames::<Vec<u8>>(&bytes, 40, true);
            let _ = scan_frames::<u64>(&bytes, 40, false);
        }

        /// A last write that lost any of its sectors is cut, with every earlier write kept;
        /// a bit flipped in an earlier write is refused.
        #[test]
        fn a_torn_last_frame_is_cut_and_damage_before_it_refused(
            sizes in proptest::collection::vec(1..3000usize, 1..6),
            lost in proptest::collection::vec(any::<bool>(), 1..16),
            flip in any::<usize>(),
        ) {
            let base = HEADER_LEN as u64;
            let header = HEADER_LEN;
            let mut body = Vec::new();
            let mut starts = Vec::new();
            for (i, &size) in sizes.iter().enumerate() {
                let mut records = Vec::new();
                let entries = vec![Entry::Command(vec![u8::try_from(i).unwrap() + 1; size])];
                encode_record(&Record::Votes { ballot: ballot(1, 1), first: i as u64 + 1, entries }, &mut records);
                starts.push(body.len());
                encode_frame(&records, base + body.len() as u64, &mut body);
            }
            let whole = body.len();
            body.resize(whole + 4096, 0);
            let scanned = scan_frames::<Vec<u8>>(&body, base, true).unwrap();
            prop_assert_eq!((scanned.records.len(), scanned.end), (sizes.len(), whole));

            let last = *starts.last().unwrap();
            let mut torn = body.clone();
            let mut sectors = Vec::new();
            let mut at = last;
            while at < whole {
                let next = ((((header + at) / 512) + 1) * 512 - header).min(whole);
                sectors.push(at..next);
                at = next;
            }
            let mut gone: Vec<_> = (0..sectors.len()).filter(|i| lost[i % lost.len()]).collect();
            if gone.is_empty() {
                gone.push(0);
            }
            for i in gone {
                torn[sectors[i].clone()].fill(0);
            }
            let scanned = scan_frames::<Vec<u8>>(&torn, base, true).unwrap();
            prop_assert_eq!((scanned.records.len(), scanned.end), (sizes.len() - 1, last));

            if sizes.len() > 1 {
                let mut damaged = body.clone();
                let bit = flip % (last * 8);
                damaged[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(scan_frames::<Vec<u8>>(&damaged, base, true).is_err());
            }
        }

        /// A valid checksum over arbitrary content still never panics the body decoder.
        #[test]
        fn checksummed_garbage_is_refused_not_trusted(body in proptest::collection::vec(any::<u8>(), 1..256)) {
            let mut bytes = vec![0; 8];
            bytes[4..8].copy_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
            bytes.extend_from_slice(&body);
            let crc = crc32c::crc32c(&bytes[4..]);
            bytes[..4].copy_from_slice(&crc.to_le_bytes());
            let _ = decode_record::<Vec<u8>>(&bytes);
        }
    }
}
