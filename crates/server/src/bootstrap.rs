//! Who a member is and what it starts from, decided once, on its first start, and kept in
//! its data directory (`member/bootstrap`) so that later starts do not depend on flags
//! that may have changed since (as etcd ignores `--initial-cluster` once it has data):
//!
//! - a member of a new cluster takes its id, the cluster's id and the first configuration
//!   from `--initial-cluster`;
//! - a member joining an existing one (`--initial-cluster-state existing`, after `member
//!   add`) asks the members it was given, on their peer ports, who it is: they answer
//!   with its id (the one `member add` gave its peer URL), the cluster's id and the
//!   current configuration, which it starts from as a configuration it was *told* of
//!   (`Replica::join`).
//!
//! The file is a CRC32C (u32, little-endian) and a `synodpb.Bootstrap` protobuf, written
//! to a temporary file, synced and renamed into place.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paxos::multi::Members;
use paxos::NodeId;
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::config::{parse_endpoint, ClusterState, Config, Endpoint, Member};
use crate::proto::synodpb::{self as pb, join_answer::Answer};
use crate::tls::TlsClient;
use crate::transport::PeerStream;
use crate::wire;

/// What a member starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bootstrap {
    /// The cluster.
    pub cluster_id: u64,
    /// This member.
    pub me: NodeId,
    /// Whether it joined an existing cluster (`configuration` was told, not chosen).
    pub joined: bool,
    /// The members it knew of then, with their names and peer URLs.
    pub members: Vec<Member>,
    /// The initial configuration, or the one it was told of.
    pub configuration: Arc<Members>,
}

const FILE: &str = "bootstrap";
/// How long a joining member keeps asking before it gives up.
const JOIN_PATIENCE: Duration = Duration::from_secs(30);
/// The largest answer a joining member reads.
const ANSWER_BYTES_MAX: usize = 1 << 20;

/// What the member whose data lives in `dir` starts from: the record there, or a new one
/// from `config` (asking the cluster, to join one, through `tls` where peer URLs are
/// `https`), recorded before it is returned.
pub async fn resolve(
    config: &Config,
    dir: &Path,
    tls: Option<Arc<TlsClient>>,
) -> Result<Bootstrap, String> {
    if let Some(recorded) = load(dir)? {
        return Ok(recorded);
    }
    // Data from before the record existed belongs to the cluster the flags describe.
    let has_data = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    let fresh = match config.cluster_state {
        ClusterState::Existing if !has_data => ask_to_join(config, tls.as_deref()).await?,
        _ => from_flags(config)?,
    };
    save(dir, &fresh)?;
    Ok(fresh)
}

/// A new cluster's member, as `--initial-cluster` describes it.
pub fn from_flags(config: &Config) -> Result<Bootstrap, String> {
    let me = config.me().map_err(|e| e.to_string())?;
    let ids = config.members.iter().map(|m| m.id).collect();
    let configuration = Members::new(ids, config.quorum).map_err(|e| e.to_string())?;
    Ok(Bootstrap {
        cluster_id: config.cluster_id,
        me: me.id,
        joined: false,
        members: config.members.clone(),
        configuration: Arc::new(configuration),
    })
}

/// The record in `dir`, if there is one.
pub fn load(dir: &Path) -> Result<Option<Bootstrap>, String> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let damaged = || format!("{} is damaged", path.display());
    let (crc, body) = bytes.split_at_checked(4).ok_or_else(damaged)?;
    if crc != crc32c::crc32c(body).to_le_bytes() {
        return Err(damaged());
    }
    let record = pb::Bootstrap::decode(body).map_err(|_| damaged())?;
    decode(record).map(Some).ok_or_else(damaged)
}

/// Records `bootstrap` in `dir`, durably.
pub fn save(dir: &Path, bootstrap: &Bootstrap) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("cannot record {} in {}: {e}", FILE, dir.display());
    std::fs::create_dir_all(dir).map_err(failed)?;
    let body = encode(bootstrap).encode_to_vec();
    let temporary: PathBuf = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&temporary).map_err(failed)?;
    file.write_all(&crc32c::crc32c(&body).to_le_bytes())
        .and_then(|()| file.write_all(&body))
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    std::fs::rename(&temporary, dir.join(FILE)).map_err(failed)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed)
}

/// The protobuf of `bootstrap`.
pub fn encode(bootstrap: &Bootstrap) -> pb::Bootstrap {
    let mut configuration = Vec::new();
    storage::format::put_members(&mut configuration, &bootstrap.configuration);
    pb::Bootstrap {
        cluster_id: bootstrap.cluster_id,
        member_id: bootstrap.me.0,
        joined: bootstrap.joined,
        members: (bootstrap.members.iter())
            .map(|m| pb::BootstrapMember {
                id: m.id.0,
                name: m.name.clone(),
                peer_url: m.peer_url.clone(),
            })
            .collect(),
        configuration,
    }
}

/// The bootstrap a protobuf describes; `None` if it is not a valid one.
pub fn decode(record: pb::Bootstrap) -> Option<Bootstrap> {
    let mut reader = storage::format::Reader(&record.configuration);
    let configuration = reader.members()?;
    if !reader.0.is_empty() || configuration.position(NodeId(record.member_id)).is_none() {
        return None;
    }
    let members = (record.members.into_iter())
        .map(|m| Member {
            name: m.name,
            id: NodeId(m.id),
            peer_url: m.peer_url,
        })
        .collect();
    Some(Bootstrap {
        cluster_id: record.cluster_id,
        me: NodeId(record.member_id),
        joined: record.joined,
        members,
        configuration: Arc::new(configuration),
    })
}

/// Asks the other members of `--initial-cluster`, in turn, who this member is, until one
/// answers or [`JOIN_PATIENCE`] runs out.
async fn ask_to_join(config: &Config, tls: Option<&TlsClient>) -> Result<Bootstrap, String> {
    let me = config.me().map_err(|e| e.to_string())?;
    let others: Vec<&Member> = config
        .members
        .iter()
        .filter(|m| m.name != me.name)
        .collect();
    if others.is_empty() {
        return Err(
            "--initial-cluster-state existing needs the cluster's members in --initial-cluster \
             (as `member add` printed it)"
                .into(),
        );
    }
    let request = pb::JoinRequest {
        peer_url: me.peer_url.clone(),
    };
    let started = Instant::now();
    let mut last = String::from("no member answered");
    loop {
        for member in &others {
            let endpoint = parse_endpoint(&member.peer_url).map_err(|e| e.to_string())?;
            match ask(&endpoint, tls, &request).await {
                Ok(Answer::Bootstrap(record)) => {
                    let mut bootstrap = decode(record)
                        .ok_or_else(|| format!("{} answered with a damaged record", member.name))?;
                    bootstrap.joined = true;
                    tracing::info!(
                        id = %format!("{:x}", bootstrap.me.0), asked = %member.name,
                        "joined an existing cluster"
                    );
                    return Ok(bootstrap);
                }
                Ok(Answer::Refused(reason)) => last = format!("{}: {reason}", member.name),
                Err(e) => last = format!("{}: {e}", member.name),
            }
        }
        if started.elapsed() > JOIN_PATIENCE {
            return Err(format!("cannot join the cluster: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn ask(
    endpoint: &Endpoint,
    tls: Option<&TlsClient>,
    request: &pb::JoinRequest,
) -> Result<Answer, String> {
    let exchange = async {
        match crate::transport::dial_peer(endpoint, tls).await? {
            PeerStream::Plain(tcp) => exchange(tcp, request).await,
            PeerStream::Tls(tls) => exchange(*tls, request).await,
        }
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
        .map_err(|e| e.to_string())?;
    answer.answer.ok_or_else(|| "an empty answer".to_string())
}

/// Sends the join request on `stream` and reads the answer.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &pb::JoinRequest,
) -> std::io::Result<pb::JoinAnswer> {
    let mut frame = Vec::new();
    wire::frame(&mut frame, |out| wire::encode_join(request, out));
    stream.write_all(&frame).await?;
    stream.flush().await?;
    let body = crate::transport::read_frame(&mut stream, ANSWER_BYTES_MAX).await?;
    pb::JoinAnswer::decode(&body[..])
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos::QuorumSpec;

    fn sample() -> Bootstrap {
        let ids = [NodeId(7), NodeId(9)];
        let configuration =
            Members::with_learners(vec![ids[0]], vec![ids[1]], QuorumSpec::Majority).unwrap();
        Bootstrap {
            cluster_id: 42,
            me: ids[1],
            joined: true,
            members: vec![Member {
                name: "a".into(),
                id: ids[0],
                peer_url: "http://127.0.0.1:2380".into(),
            }],
            configuration: Arc::new(configuration),
        }
    }

    #[test]
    fn a_record_reads_back_and_damage_is_refused() {
        let dir = std::env::temp_dir().join(format!("synod-bootstrap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&dir), Ok(None));
        save(&dir, &sample()).unwrap();
        assert_eq!(load(&dir), Ok(Some(sample())));
        let path = dir.join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(load(&dir).unwrap_err().contains("damaged"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_record_that_does_not_name_its_member_is_refused() {
        let mut record = encode(&sample());
        record.member_id = 3;
        assert_eq!(decode(record), None);
        let mut record = encode(&sample());
        record.configuration.push(0);
        assert_eq!(decode(record), None);
    }
}
