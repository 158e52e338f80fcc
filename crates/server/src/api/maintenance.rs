//! The Maintenance service: status, hashes, alarms, snapshots.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{unexpected, Handle};
use crate::convert;
use crate::limits::BACKUP_CHUNK_BYTES;
use crate::node::{Applied, Transfer};
use crate::proto::etcdserverpb::{self as pb, maintenance_server::Maintenance};
use crate::proto::synodpb::command::Op;

/// A backup file ends with the SHA-256 of what precedes it.
const DIGEST_BYTES: usize = 32;

/// The Maintenance service.
#[derive(Debug)]
pub struct MaintenanceService(pub Handle);

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let caller = self.0.caller_of(&request)?;
        let r = request.into_inner();
        if r.action == pb::alarm_request::AlarmAction::Get as i32 {
            self.0.require_user(&caller)?;
            // Linearizable: an alarm raised or cleared anywhere before this call shows.
            self.0.linearizable().await?;
            let answer = self
                .0
                .query(|core| pb::AlarmResponse {
                    // etcd 3.4's Alarm answers carry no header.
                    header: None,
                    alarms: core.alarms().to_vec(),
                })
                .await?;
            return Ok(Response::new(answer));
        }
        self.0.check_admin(&caller)?;
        match self.0.propose(Op::Alarm(r)).await? {
            Applied::Alarm(answer) => Ok(Response::new(answer)),
            other => Err(unexpected(&other)),
        }
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.0.check_admin(&self.0.caller_of(&request)?)?;
        let answer = self
            .0
            .query(|core| {
                let replica = core.replica();
                let size = i64::try_from(core.store().size_bytes()).unwrap_or(i64::MAX);
                let errors = core
                    .alarms()
                    .iter()
                    .map(|a| format!("memberID:{} alarm:{} ", a.member_id, alarm_name(a.alarm)))
                    .collect();
                pb::StatusResponse {
                    header: Some(core.header()),
                    version: core.etcd_version().to_string(),
                    db_size: size,
                    leader: replica.leader().map_or(0, |l| l.0),
                    raft_index: replica.commit(),
                    raft_term: replica.promised().round,
                    raft_applied_index: replica.applied(),
                    errors,
                    db_size_in_use: size,
                    is_learner: !replica.membership().current().is_voter(replica.id()),
                }
            })
            .await?;
        Ok(Response::new(answer))
    }

    async fn defragment(
        &self,
        request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        self.0.check_admin_unconverted(&request)?;
        // Nothing to defragment: the store is in memory and the log is released by
        // snapshots. etcd's answer carries no header.
        Ok(Response::new(pb::DefragmentResponse { header: None }))
    }

    async fn hash(
        &self,
        request: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        self.0.check_admin_unconverted(&request)?;
        let view = self.0.serializable();
        let hash = crc32c::crc32c(&view.store.snapshot());
        Ok(Response::new(pb::HashResponse {
            header: Some(view.header),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        self.0.check_admin_unconverted(&request)?;
        let r = request.into_inner();
        let view = self.0.serializable();
        let h = view.store.hash_kv(r.revision).map_err(convert::status)?;
        Ok(Response::new(pb::HashKvResponse {
            header: Some(pb::ResponseHeader {
                revision: h.revision,
                ..view.header
            }),
            hash: h.hash,
            compact_revision: h.compact_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.0.check_admin_unconverted(&request)?;
        let view = self.0.linearizable().await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let bytes =
                tokio::task::spawn_blocking(move || backup_file(view.store.snapshot())).await;
            let Ok(bytes) = bytes else { return };
            for message in snapshot_messages(&bytes) {
                if tx.send(Ok(message)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    /// etcd's: asked of the leader, which hands over to a voter in sync with it and
    /// answers once it sees that voter lead (asking again while the voter catches up).
    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        self.0.check_admin(&self.0.caller_of(&request)?)?;
        self.0.refuse_on_learner()?;
        let to = paxos::NodeId(request.get_ref().target_id);
        let deadline = tokio::time::Instant::now() + self.0.info.request_timeout;
        let mut asked = false;
        loop {
            let transfer = self
                .0
                .query(move |core| core.transfer_leadership(to, asked));
            if transfer.await?? == Transfer::Done {
                break;
            }
            asked = true;
            if tokio::time::Instant::now() >= deadline {
                return Err(Status::unavailable(
                    "etcdserver: request timed out, leader transfer took too long",
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let header = self.0.serializable().header;
        Ok(Response::new(pb::MoveLeaderResponse {
            header: Some(header),
        }))
    }
}

/// Etcd's clients take a snapshot stream for a database of 512-byte pages followed by
/// its SHA-256, and `etcdctl snapshot save` refuses a size that is not 32 more than a
/// multiple of 512. So the store's snapshot is padded with zeros, its length follows as a
/// little-endian u64 ending on a 512-byte boundary, and the SHA-256 of all that closes it
/// (docs/OPERATIONS.md, "Backup").
pub fn backup_file(snapshot: Vec<u8>) -> Vec<u8> {
    use sha2::Digest;
    let length = snapshot.len() as u64;
    let mut bytes = snapshot;
    while (bytes.len() + 8) % 512 != 0 {
        bytes.push(0);
    }
    bytes.extend_from_slice(&length.to_le_bytes());
    let digest = sha2::Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    bytes
}

/// A [`backup_file`] as etcd streams its database: the data in chunks counting down to
/// `remaining_bytes` 0, then one more message holding only the SHA-256 (clients check it
/// separately, and etcdctl writes every blob to the file).
fn snapshot_messages(file: &[u8]) -> impl Iterator<Item = pb::SnapshotResponse> + '_ {
    let (data, digest) = file.split_at(file.len().saturating_sub(DIGEST_BYTES));
    let mut remaining = data.len();
    let chunks = data.chunks(BACKUP_CHUNK_BYTES).map(move |chunk| {
        remaining -= chunk.len();
        (remaining, chunk)
    });
    chunks
        .chain([(0, digest)])
        .map(|(remaining, blob)| pb::SnapshotResponse {
            header: None,
            remaining_bytes: remaining as u64,
            blob: blob.to_vec(),
        })
}

/// The store's snapshot inside a [`backup_file`], if the file is whole.
pub fn from_backup_file(file: &[u8]) -> Option<&[u8]> {
    use sha2::Digest;
    let (body, digest) = file.split_at_checked(file.len().checked_sub(DIGEST_BYTES)?)?;
    if sha2::Sha256::digest(body).as_slice() != digest {
        return None;
    }
    let (padded, length) = body.split_at_checked(body.len().checked_sub(8)?)?;
    let length = usize::try_from(u64::from_le_bytes(length.try_into().ok()?)).ok()?;
    padded.get(..length)
}

fn alarm_name(alarm: i32) -> &'static str {
    match pb::AlarmType::try_from(alarm) {
        Ok(pb::AlarmType::Nospace) => "NOSPACE",
        Ok(pb::AlarmType::Corrupt) => "CORRUPT",
        _ => "NONE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_files_have_the_size_etcdctl_checks_and_round_trip() {
        for n in [0, 1, 503, 504, 505, 4096, 70_000] {
            let snapshot: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let file = backup_file(snapshot.clone());
            assert_eq!(file.len() % 512, 32, "n = {n}");
            assert_eq!(from_backup_file(&file), Some(snapshot.as_slice()));
            let mut damaged = file.clone();
            damaged[0] ^= 1;
            assert_eq!(from_backup_file(&damaged), None);
            assert_eq!(from_backup_file(&file[..file.len() - 1]), None);
        }
        assert_eq!(from_backup_file(b"short"), None);
    }

    #[test]
    fn a_snapshot_streams_as_data_counting_down_to_zero_then_its_digest() {
        for n in [0, 1, 504, BACKUP_CHUNK_BYTES, 3 * BACKUP_CHUNK_BYTES + 7] {
            let file = backup_file(vec![7; n]);
            let messages: Vec<_> = snapshot_messages(&file).collect();
            let (digest, data) = messages.split_last().unwrap();
            assert_eq!(digest.blob, file[file.len() - DIGEST_BYTES..], "n = {n}");
            assert_eq!(digest.remaining_bytes, 0);
            assert_eq!(data.last().unwrap().remaining_bytes, 0, "n = {n}");
            let mut left = file.len() - DIGEST_BYTES;
            for message in data {
                assert!(!message.blob.is_empty() && message.blob.len() <= BACKUP_CHUNK_BYTES);
                left -= message.blob.len();
                assert_eq!(message.remaining_bytes, left as u64, "n = {n}");
                assert!(message.header.is_none());
            }
            let whole: Vec<u8> = messages.iter().flat_map(|m| m.blob.clone()).collect();
            assert_eq!(whole, file, "n = {n}");
        }
    }
}
