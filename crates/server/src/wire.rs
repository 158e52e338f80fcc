//! The peer protocol's bytes: frames, the handshake, and the replica messages inside.
//!
//! A frame is `[len: u32 LE][crc32c of body: u32 LE][body]`. The first frame on a
//! connection is the [`Hello`]; every later one holds one [`Message`], which a member
//! that traces (`synod serve --trace-file`) prefixes with a [`Stamp`]: its vector clock.
//! An unstamped message is the same bytes as before stamps existed. Decoders take
//! arbitrary bytes and answer `None` (or an error) rather than panic: a peer port is open
//! to anyone who can reach it.

use paxos::multi::{Entry, LogEntry, LogRun, Message, SlotVote};
use paxos::NodeId;
use storage::format::{put_ballot, put_entry, put_len, put_membership, Reader};

use crate::limits::PEER_FRAME_BYTES_MAX;
use crate::payload::Payload;
use crate::proto::synodpb::JoinRequest;

/// Bytes before a frame's body.
pub const FRAME_HEADER: usize = 8;

/// What opens a connection: who is calling whom, in which cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The cluster the caller belongs to.
    pub cluster: u64,
    /// The caller.
    pub from: NodeId,
    /// The member the caller thinks it reached.
    pub to: NodeId,
}

/// Version 2: snapshot chunks carry the membership.
const HELLO_MAGIC: [u8; 8] = *b"SYNODP02";

/// Why a frame header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length is zero or above [`PEER_FRAME_BYTES_MAX`].
    Length(u32),
    /// The body does not match its checksum.
    Checksum,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Length(len) => write!(f, "frame length {len} out of range"),
            FrameError::Checksum => write!(f, "frame checksum mismatch"),
        }
    }
}

/// Appends a frame holding `body` (written by `fill`) to `out`.
pub fn frame(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    fill(out);
    let body = &out[start + FRAME_HEADER..];
    let crc = crc32c::crc32c(body);
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads a frame header: the body's length and checksum.
pub fn frame_header(header: [u8; FRAME_HEADER]) -> Result<(usize, u32), FrameError> {
    let mut r = Reader(&header);
    let (len, crc) = (r.u32().unwrap_or(0), r.u32().unwrap_or(0));
    match usize::try_from(len) {
        Ok(n) if n > 0 && n <= PEER_FRAME_BYTES_MAX => Ok((n, crc)),
        _ => Err(FrameError::Length(len)),
    }
}

/// Checks a frame body against the checksum its header carried.
pub fn check_body(body: &[u8], crc: u32) -> Result<(), FrameError> {
    if crc32c::crc32c(body) == crc {
        Ok(())
    } else {
        Err(FrameError::Checksum)
    }
}

/// Encodes a handshake body.
pub fn encode_hello(hello: &Hello, out: &mut Vec<u8>) {
    out.extend_from_slice(&HELLO_MAGIC);
    out.extend_from_slice(&hello.cluster.to_le_bytes());
    out.extend_from_slice(&hello.from.0.to_le_bytes());
    out.extend_from_slice(&hello.to.0.to_le_bytes());
}

/// Opens a joining member's question instead of a [`Hello`]: the rest is a
/// [`JoinRequest`] protobuf, and the answer one frame holding a `JoinAnswer` protobuf.
const JOIN_MAGIC: [u8; 8] = *b"SYNODJ01";

/// Encodes a joining member's question.
pub fn encode_join(request: &JoinRequest, out: &mut Vec<u8>) {
    out.extend_from_slice(&JOIN_MAGIC);
    prost::Message::encode(request, out).unwrap_or_default();
}

/// Decodes a joining member's question, if the first frame is one.
pub fn decode_join(body: &[u8]) -> Option<JoinRequest> {
    let rest = body.strip_prefix(&JOIN_MAGIC)?;
    prost::Message::decode(rest).ok()
}

/// Decodes a handshake body.
pub fn decode_hello(body: &[u8]) -> Option<Hello> {
    let mut r = Reader(body);
    if r.take(8)? != HELLO_MAGIC {
        return None;
    }
    let hello = Hello {
        cluster: r.u64()?,
        from: NodeId(r.u64()?),
        to: NodeId(r.u64()?),
    };
    r.0.is_empty().then_some(hello)
}

const PREPARE: u8 = 1;
const PROMISE: u8 = 2;
const NACK: u8 = 3;
const BEHIND: u8 = 4;
const ACCEPT: u8 = 5;
const ACCEPTED: u8 = 6;
const HEARTBEAT: u8 = 7;
const HEARTBEAT_ACK: u8 = 8;
const FORWARD: u8 = 9;
const CATCH_UP: u8 = 10;
const CHOSEN: u8 = 11;
const SNAPSHOT: u8 = 12;
const READ_INDEX: u8 = 13;
const READ_INDEX_REPLY: u8 = 14;
const CAMPAIGN: u8 = 15;
/// Not a message: a [`Stamp`] before one.
const STAMPED: u8 = 16;

/// A traced message's stamp: the sender's vector clock when it sent it, as
/// `(member id, count)` pairs. The sender's own count is also the message's number among
/// the ones it sent (see `crate::node::trace`).
pub type Stamp = Box<[(u64, u64)]>;

/// Encodes a replica message body, after `stamp` if there is one (without one: the
/// bytes [`encode_message`] writes).
pub fn encode_stamped(message: &Message<Payload>, stamp: Option<&Stamp>, out: &mut Vec<u8>) {
    if let Some(stamp) = stamp {
        out.push(STAMPED);
        put_len(out, stamp.len());
        for &(node, count) in stamp.iter() {
            put_u64(out, node);
            put_u64(out, count);
        }
    }
    encode_message(message, out);
}

/// Decodes a replica message body, stamped or not; `None` if it is not one this code
/// wrote.
pub fn decode_stamped(body: &[u8]) -> Option<(Message<Payload>, Option<Stamp>)> {
    let Some(rest) = body.strip_prefix(&[STAMPED]) else {
        return Some((decode_message(body)?, None));
    };
    let mut r = Reader(rest);
    let n = count(&mut r, 16)?;
    let mut stamp = Vec::with_capacity(n);
    for _ in 0..n {
        stamp.push((r.u64()?, r.u64()?));
    }
    Some((decode_message(r.0)?, Some(stamp.into())))
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Encodes a replica message body.
pub fn encode_message(message: &Message<Payload>, out: &mut Vec<u8>) {
    match message {
        Message::Prepare { ballot, from, log } => {
            out.push(PREPARE);
            put_ballot(out, *ballot);
            put_u64(out, *from);
            // A Raft-mode candidate's log runs follow; a Paxos prepare ends here, as it
            // always did.
            if !log.is_empty() {
                put_len(out, log.len());
                for run in log {
                    put_u64(out, run.last);
                    put_ballot(out, run.ballot);
                }
            }
        }
        Message::Promise {
            ballot,
            from,
            votes,
            next,
        } => {
            out.push(PROMISE);
            put_ballot(out, *ballot);
            put_u64(out, *from);
            put_u64(out, next.map_or(0, |n| n));
            put_len(out, votes.len());
            for vote in votes {
                put_u64(out, vote.slot);
                put_ballot(out, vote.vote.ballot);
                put_entry(out, &vote.vote.entry);
            }
        }
        Message::Nack { ballot, promised } => {
            out.push(NACK);
            put_ballot(out, *ballot);
            put_ballot(out, *promised);
        }
        Message::Behind { ballot, compacted } => {
            out.push(BEHIND);
            put_ballot(out, *ballot);
            put_u64(out, *compacted);
        }
        Message::Accept {
            ballot,
            first,
            entries,
            commit,
        } => {
            out.push(ACCEPT);
            put_ballot(out, *ballot);
            put_u64(out, *first);
            put_u64(out, *commit);
            put_len(out, entries.len());
            entries.iter().for_each(|e| put_entry(out, e));
        }
        Message::Accepted {
            ballot,
            first,
            last,
        } => {
            out.push(ACCEPTED);
            put_ballot(out, *ballot);
            put_u64(out, *first);
            put_u64(out, *last);
        }
        Message::Heartbeat {
            ballot,
            commit,
            seq,
        } => {
            out.push(HEARTBEAT);
            put_ballot(out, *ballot);
            put_u64(out, *commit);
            put_u64(out, *seq);
        }
        Message::HeartbeatAck { ballot, seq } => {
            out.push(HEARTBEAT_ACK);
            put_ballot(out, *ballot);
            put_u64(out, *seq);
        }
        Message::ReadIndex { ballot, boot, seq } => {
            out.push(READ_INDEX);
            put_ballot(out, *ballot);
            put_u64(out, *boot);
            put_u64(out, *seq);
        }
        Message::ReadIndexReply {
            ballot,
            boot,
            seq,
            index,
        } => {
            out.push(READ_INDEX_REPLY);
            put_ballot(out, *ballot);
            put_u64(out, *boot);
            put_u64(out, *seq);
            put_u64(out, *index);
        }
        Message::Forward {
            ballot,
            boot,
            seq,
            commands,
        } => {
            out.push(FORWARD);
            put_ballot(out, *ballot);
            put_u64(out, *boot);
            put_u64(out, *seq);
            put_len(out, commands.len());
            commands.iter().for_each(|c| put_bytes(out, &c.0));
        }
        Message::CatchUp { ballot, from } => {
            out.push(CATCH_UP);
            put_ballot(out, *ballot);
            put_u64(out, *from);
        }
        Message::Campaign { ballot } => {
            out.push(CAMPAIGN);
            put_ballot(out, *ballot);
        }
        Message::Chosen {
            ballot,
            first,
            entries,
            commit,
        } => {
            out.push(CHOSEN);
            put_ballot(out, *ballot);
            put_u64(out, *first);
            put_u64(out, *commit);
            put_len(out, entries.len());
            for e in entries {
                put_ballot(out, e.ballot);
                put_entry(out, &e.entry);
            }
        }
        Message::Snapshot {
            ballot,
            index,
            membership,
            offset,
            total,
            data,
        } => {
            out.push(SNAPSHOT);
            put_ballot(out, *ballot);
            put_u64(out, *index);
            put_membership(out, membership);
            put_u64(out, *offset);
            put_u64(out, *total);
            put_bytes(out, data);
        }
    }
}

/// A count read from the wire, refused if the bytes left cannot hold that many items of
/// at least `min_item` bytes (so a forged count cannot make us allocate).
fn count(r: &mut Reader<'_>, min_item: usize) -> Option<usize> {
    let n = usize::try_from(r.u32()?).ok()?;
    (n.checked_mul(min_item)? <= r.0.len()).then_some(n)
}

fn bytes(r: &mut Reader<'_>) -> Option<Vec<u8>> {
    let len = usize::try_from(r.u32()?).ok()?;
    Some(r.take(len)?.to_vec())
}

/// Decodes a replica message body; `None` if it is not one this code wrote.
pub fn decode_message(body: &[u8]) -> Option<Message<Payload>> {
    let mut r = Reader(body);
    let message = match r.u8()? {
        PREPARE => {
            let (ballot, from) = (r.ballot()?, r.u64()?);
            let mut log = Vec::new();
            if !r.0.is_empty() {
                let n = count(&mut r, 24)?;
                log.reserve(n);
                for _ in 0..n {
                    let (last, ballot) = (r.u64()?, r.ballot()?);
                    log.push(LogRun { last, ballot });
                }
            }
            Message::Prepare { ballot, from, log }
        }
        PROMISE => {
            let (ballot, from, next) = (r.ballot()?, r.u64()?, r.u64()?);
            let n = count(&mut r, 25)?;
            let mut votes = Vec::with_capacity(n);
            for _ in 0..n {
                let slot = r.u64()?;
                let vote = LogEntry {
                    ballot: r.ballot()?,
                    entry: r.entry()?,
                };
                votes.push(SlotVote { slot, vote });
            }
            Message::Promise {
                ballot,
                from,
                votes,
                next: (next != 0).then_some(next),
            }
        }
        NACK => Message::Nack {
            ballot: r.ballot()?,
            promised: r.ballot()?,
        },
        BEHIND => Message::Behind {
            ballot: r.ballot()?,
            compacted: r.u64()?,
        },
        ACCEPT => {
            let (ballot, first, commit) = (r.ballot()?, r.u64()?, r.u64()?);
            let n = count(&mut r, 1)?;
            let entries: Option<Vec<Entry<Payload>>> = (0..n).map(|_| r.entry()).collect();
            Message::Accept {
                ballot,
                first,
                entries: entries?.into(),
                commit,
            }
        }
        ACCEPTED => Message::Accepted {
            ballot: r.ballot()?,
            first: r.u64()?,
            last: r.u64()?,
        },
        HEARTBEAT => Message::Heartbeat {
            ballot: r.ballot()?,
            commit: r.u64()?,
            seq: r.u64()?,
        },
        HEARTBEAT_ACK => Message::HeartbeatAck {
            ballot: r.ballot()?,
            seq: r.u64()?,
        },
        READ_INDEX => Message::ReadIndex {
            ballot: r.ballot()?,
            boot: r.u64()?,
            seq: r.u64()?,
        },
        READ_INDEX_REPLY => Message::ReadIndexReply {
            ballot: r.ballot()?,
            boot: r.u64()?,
            seq: r.u64()?,
            index: r.u64()?,
        },
        FORWARD => {
            let (ballot, boot, seq) = (r.ballot()?, r.u64()?, r.u64()?);
            let n = count(&mut r, 4)?;
            let commands: Option<Vec<Payload>> = (0..n)
                .map(|_| Some(Payload(bytes(&mut r)?.into())))
                .collect();
            Message::Forward {
                ballot,
                boot,
                seq,
                commands: commands?,
            }
        }
        CATCH_UP => Message::CatchUp {
            ballot: r.ballot()?,
            from: r.u64()?,
        },
        CAMPAIGN => Message::Campaign {
            ballot: r.ballot()?,
        },
        CHOSEN => {
            let (ballot, first, commit) = (r.ballot()?, r.u64()?, r.u64()?);
            let n = count(&mut r, 17)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push(LogEntry {
                    ballot: r.ballot()?,
                    entry: r.entry()?,
                });
            }
            Message::Chosen {
                ballot,
                first,
                entries,
                commit,
            }
        }
        SNAPSHOT => Message::Snapshot {
            ballot: r.ballot()?,
            index: r.u64()?,
            membership: r.membership()?,
            offset: r.u64()?,
            total: r.u64()?,
            data: bytes(&mut r)?,
        },
        _ => return None,
    };
    r.0.is_empty().then_some(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos::multi::{Members, Membership};
    use paxos::{Ballot, QuorumSpec};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn b(round: u64, node: u64) -> Ballot {
        Ballot::new(round, NodeId(node))
    }

    fn cmd(bytes: &[u8]) -> Entry<Payload> {
        Entry::Command(Payload(bytes.into()))
    }

    fn samples() -> Vec<Message<Payload>> {
        let vote = |slot, entry| SlotVote {
            slot,
            vote: LogEntry {
                ballot: b(2, 1),
                entry,
            },
        };
        vec![
            Message::Prepare {
                ballot: b(3, 2),
                from: 7,
                log: vec![],
            },
            Message::Prepare {
                ballot: b(3, 2),
                from: 7,
                log: vec![
                    LogRun {
                        last: 9,
                        ballot: b(2, 1),
                    },
                    LogRun {
                        last: 10,
                        ballot: Ballot::ZERO,
                    },
                ],
            },
            Message::Promise {
                ballot: b(3, 2),
                from: 7,
                votes: vec![vote(7, cmd(b"put")), vote(9, Entry::Noop)],
                next: Some(10),
            },
            Message::Promise {
                ballot: b(3, 2),
                from: 1,
                votes: vec![],
                next: None,
            },
            Message::Nack {
                ballot: b(1, 1),
                promised: b(4, 3),
            },
            Message::Behind {
                ballot: b(1, 1),
                compacted: 99,
            },
            Message::Accept {
                ballot: b(5, 1),
                first: 11,
                entries: vec![cmd(b"a"), Entry::Noop, cmd(b"")].into(),
                commit: 10,
            },
            Message::Accepted {
                ballot: b(5, 1),
                first: 11,
                last: 13,
            },
            Message::Heartbeat {
                ballot: b(5, 1),
                commit: 13,
                seq: 4,
            },
            Message::HeartbeatAck {
                ballot: b(5, 1),
                seq: 4,
            },
            Message::ReadIndex {
                ballot: b(5, 1),
                boot: 0xbeef,
                seq: 3,
            },
            Message::ReadIndexReply {
                ballot: b(5, 1),
                boot: 0xbeef,
                seq: 3,
                index: 12,
            },
            Message::Forward {
                ballot: b(5, 1),
                boot: 0xdead,
                seq: 2,
                commands: vec![Payload(b"x".as_slice().into())],
            },
            Message::CatchUp {
                ballot: b(5, 1),
                from: 3,
            },
            Message::Campaign { ballot: b(5, 1) },
            Message::Chosen {
                ballot: b(5, 1),
                first: 3,
                entries: vec![LogEntry {
                    ballot: b(4, 2),
                    entry: cmd(b"z"),
                }],
                commit: 3,
            },
            Message::Snapshot {
                ballot: b(5, 1),
                index: 100,
                membership: two_configurations(),
                offset: 0,
                total: 3,
                data: b"abc".to_vec(),
            },
        ]
    }

    /// A change under way: the old configuration and the new, with a learner.
    fn two_configurations() -> Membership {
        let ids = |ids: &[u64]| ids.iter().map(|&i| NodeId(i)).collect::<Vec<_>>();
        let old = Members::new(ids(&[1, 2, 3]), QuorumSpec::Majority).unwrap();
        let spec = QuorumSpec::Flexible { q1: 3, q2: 2 };
        let new = Members::with_learners(ids(&[1, 2, 3, 4]), ids(&[7]), spec).unwrap();
        Membership::from_parts(2, vec![Arc::new(old), Arc::new(new)], None).unwrap()
    }

    #[test]
    fn every_message_kind_round_trips() {
        for message in samples() {
            let mut body = Vec::new();
            encode_message(&message, &mut body);
            assert_eq!(decode_message(&body), Some(message.clone()), "{message:?}");
            body.push(0);
            assert_eq!(decode_message(&body), None, "trailing bytes are refused");
        }
    }

    #[test]
    fn stamps_round_trip_and_an_unstamped_message_is_the_old_bytes() {
        let stamp: Stamp = vec![(0x8e9e_05c5_2164_694d, 7), (2, 0), (u64::MAX, u64::MAX)].into();
        for message in samples() {
            let mut old = Vec::new();
            encode_message(&message, &mut old);
            let mut unstamped = Vec::new();
            encode_stamped(&message, None, &mut unstamped);
            assert_eq!(unstamped, old, "without a stamp, the bytes of before");
            assert_eq!(decode_stamped(&old), Some((message.clone(), None)));
            let mut stamped = Vec::new();
            encode_stamped(&message, Some(&stamp), &mut stamped);
            let decoded = decode_stamped(&stamped);
            assert_eq!(decoded, Some((message.clone(), Some(stamp.clone()))));
            // A member that never stamps refuses the stamp rather than misread it.
            assert_eq!(decode_message(&stamped), None);
            stamped.push(0);
            assert_eq!(decode_stamped(&stamped), None, "trailing bytes are refused");
        }
        // A forged count does not allocate.
        let mut forged = vec![STAMPED];
        put_len(&mut forged, u32::MAX as usize);
        assert_eq!(decode_stamped(&forged), None);
    }

    #[test]
    fn frames_and_hellos_round_trip_and_checksums_catch_flips() {
        let hello = Hello {
            cluster: 42,
            from: NodeId(1),
            to: NodeId(2),
        };
        let mut out = Vec::new();
        frame(&mut out, |o| encode_hello(&hello, o));
        let header: [u8; FRAME_HEADER] = out[..FRAME_HEADER].try_into().unwrap();
        let (len, crc) = frame_header(header).unwrap();
        let body = &out[FRAME_HEADER..];
        assert_eq!(len, body.len());
        check_body(body, crc).unwrap();
        assert_eq!(decode_hello(body), Some(hello));
        let mut flipped = body.to_vec();
        flipped[9] ^= 1;
        assert_eq!(check_body(&flipped, crc), Err(FrameError::Checksum));
        assert_eq!(frame_header([0; 8]), Err(FrameError::Length(0)));
        assert!(frame_header([0xff; 8]).is_err());
    }

    #[test]
    fn a_forged_count_does_not_allocate() {
        let mut body = vec![ACCEPT];
        put_ballot(&mut body, b(1, 1));
        put_u64(&mut body, 1);
        put_u64(&mut body, 0);
        put_len(&mut body, u32::MAX as usize);
        assert_eq!(decode_message(&body), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_message(&bytes);
            let _ = decode_stamped(&bytes);
            let _ = decode_hello(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic(index in 0usize..13, at in any::<usize>(), byte in any::<u8>()) {
            let message = &samples()[index % 13];
            let mut body = Vec::new();
            encode_message(message, &mut body);
            let at = at % body.len();
            body[at] = byte;
            let _ = decode_message(&body);
            body.truncate(at);
            let _ = decode_message(&body);
        }
    }
}
