//! The Cluster service, as etcd's: the membership is the one the log chose (voters and
//! learners, `paxos::multi::Membership`); names and client URLs are what each member
//! published through the log when it started, peer URLs what `member add` and `member
//! update` recorded through it (or the initial cluster's), so every member lists the
//! same. Changes are made by the leader: another member passes them on to it, at the
//! client URL it published, and answers with what it answered.

use paxos::multi::Change;
use paxos::NodeId;
use tonic::{Request, Response, Status};

use super::Handle;
use crate::node::{Listed, Reply};
use crate::proto::etcdserverpb::{
    self as pb, cluster_client::ClusterClient, cluster_server::Cluster,
};
use crate::proto::synodpb::{command::Op, MemberPeers};

/// The Cluster service.
#[derive(Debug)]
pub struct ClusterService(pub Handle);

/// Marks a request one member passed on to the leader, which must not pass it on again.
const PASSED_ON: &str = "synod-passed-on";

fn bad_urls() -> Status {
    Status::invalid_argument("etcdserver: given member URLs are invalid")
}

/// etcd refuses peer URLs that are not `scheme://host:port` URLs.
fn check_urls(urls: &[String]) -> Result<(), Status> {
    let valid = |url: &String| {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        rest.is_some_and(|hostport| {
            hostport
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        })
    };
    if urls.is_empty() || !urls.iter().all(valid) {
        return Err(bad_urls());
    }
    Ok(())
}

fn member(m: Listed) -> pb::Member {
    pb::Member {
        id: m.id.0,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

impl ClusterService {
    /// The header of a Cluster answer (etcd's carries no revision: the membership is
    /// not in the key space) and the member list.
    async fn listing(&self) -> Result<(pb::ResponseHeader, Vec<pb::Member>), Status> {
        let listed = self.0.query(|core| core.member_list()).await?;
        let header = pb::ResponseHeader {
            revision: 0,
            ..self.0.serializable().header
        };
        Ok((header, listed.into_iter().map(member).collect()))
    }

    async fn leader_elsewhere<T>(&self, request: &Request<T>) -> Result<Option<String>, Status> {
        leader_elsewhere(&self.0, request).await
    }

    /// A Cluster client of the leader at `url`.
    async fn leader(
        &self,
        url: String,
    ) -> Result<ClusterClient<tonic::transport::Channel>, Status> {
        Ok(ClusterClient::new(leader_channel(&self.0, url).await?))
    }

    /// Makes `change` and waits until it is applied.
    async fn change(&self, change: Change) -> Result<(), Status> {
        self.0
            .ask(move |core, reply: Reply<()>| core.reconfigure(change, reply))
            .await
    }
}

/// The leader's client URL when a change must be made there (not at this member).
pub(crate) async fn leader_elsewhere<T>(
    handle: &Handle,
    request: &Request<T>,
) -> Result<Option<String>, Status> {
    let elsewhere = handle.query(|core| core.leader_client_url()).await??;
    if elsewhere.is_some() && request.metadata().contains_key(PASSED_ON) {
        return Err(Status::unavailable("etcdserver: leader changed"));
    }
    Ok(elsewhere)
}

/// A connection to the leader's client port at `url` (over TLS if it is `https`).
pub(crate) async fn leader_channel(
    handle: &Handle,
    url: String,
) -> Result<tonic::transport::Channel, Status> {
    let endpoint = crate::config::parse_endpoint(&url)
        .map_err(|_| Status::unavailable("etcdserver: no leader"))?;
    let dialer = handle.info.client_dialer.clone();
    crate::tls::channel(&endpoint, dialer, std::time::Duration::from_secs(2))
        .await
        .map_err(|e| Status::unavailable(format!("etcdserver: cannot reach the leader: {e}")))
}

/// `request` as passed on to the leader, with the client's token (every member knows
/// every token, and the leader checks the caller again).
pub(crate) fn passed_on<T>(request: Request<T>) -> Request<T> {
    let token = request.metadata().get("token").cloned();
    let mut passed = Request::new(request.into_inner());
    let metadata = passed.metadata_mut();
    metadata.insert(PASSED_ON, tonic::metadata::MetadataValue::from_static("1"));
    if let Some(token) = token {
        metadata.insert("token", token);
    }
    passed
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        self.0.check_admin(&self.0.caller_of(&request)?)?;
        self.0.refuse_on_learner()?;
        check_urls(&request.get_ref().peer_ur_ls)?;
        if let Some(url) = self.leader_elsewhere(&request).await? {
            return self.leader(url).await?.member_add(passed_on(request)).await;
        }
        let pb::MemberAddRequest {
            peer_ur_ls: urls,
            is_learner,
        } = request.into_inner();
        let asked = urls.clone();
        let id = self
            .0
            .query(move |core| core.new_member_id(&asked, is_learner))
            .await??;
        // The peer URLs first: once the change is applied every member dials them.
        let record = MemberPeers {
            member_id: id.0,
            peer_urls: urls.clone(),
        };
        self.0.propose(Op::MemberPeers(record)).await?;
        let change = if is_learner {
            Change::AddLearner(id)
        } else {
            Change::AddVoter(id)
        };
        self.change(change).await?;
        let (header, members) = self.listing().await?;
        let added = pb::Member {
            id: id.0,
            name: String::new(),
            peer_ur_ls: urls,
            client_ur_ls: Vec::new(),
            is_learner,
        };
        Ok(Response::new(pb::MemberAddResponse {
            header: Some(header),
            member: Some(added),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        self.0.check_admin(&self.0.caller_of(&request)?)?;
        self.0.refuse_on_learner()?;
        if let Some(url) = self.leader_elsewhere(&request).await? {
            return self
                .leader(url)
                .await?
                .member_remove(passed_on(request))
                .await;
        }
        self.change(Change::Remove(NodeId(request.get_ref().id)))
            .await?;
        let (header, members) = self.listing().await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: Some(header),
            members,
        }))
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        self.0.check_admin(&self.0.caller_of(&request)?)?;
        self.0.refuse_on_learner()?;
        check_urls(&request.get_ref().peer_ur_ls)?;
        if let Some(url) = self.leader_elsewhere(&request).await? {
            return self
                .leader(url)
                .await?
                .member_update(passed_on(request))
                .await;
        }
        let pb::MemberUpdateRequest {
            id,
            peer_ur_ls: urls,
        } = request.into_inner();
        let asked = urls.clone();
        self.0
            .query(move |core| {
                let listed = core.member_list();
                if !listed.iter().any(|m| m.id.0 == id) {
                    return Err(Status::not_found("etcdserver: member not found"));
                }
                let taken = (listed.iter())
                    .filter(|m| m.id.0 != id)
                    .any(|m| m.peer_urls.iter().any(|u| asked.contains(u)));
                if taken {
                    return Err(Status::failed_precondition(
                        "etcdserver: Peer URLs already exists",
                    ));
                }
                Ok(())
            })
            .await??;
        let record = MemberPeers {
            member_id: id,
            peer_urls: urls,
        };
        self.0.propose(Op::MemberPeers(record)).await?;
        let (header, members) = self.listing().await?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: Some(header),
            members,
        }))
    }

    async fn member_list(
        &self,
        _: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        self.0.refuse_on_learner()?;
        let (header, members) = self.listing().await?;
        Ok(Response::new(pb::MemberListResponse {
            header: Some(header),
            members,
        }))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        self.0.check_admin(&self.0.caller_of(&request)?)?;
        self.0.refuse_on_learner()?;
        if let Some(url) = self.leader_elsewhere(&request).await? {
            return self
                .leader(url)
                .await?
                .member_promote(passed_on(request))
                .await;
        }
        self.change(Change::Promote(NodeId(request.get_ref().id)))
            .await?;
        let (header, members) = self.listing().await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: Some(header),
            members,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_must_be_scheme_host_and_port() {
        let urls = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_urls(&urls(&["http://127.0.0.1:2380"])).is_ok());
        assert!(check_urls(&urls(&[
            "https://node-4.example:2380",
            "http://10.0.0.4:7001"
        ]))
        .is_ok());
        for bad in [
            &[][..],
            &["127.0.0.1:2380"],
            &["http://:2380"],
            &["http://a:99999"],
            &["ftp://a:1"],
        ] {
            assert_eq!(
                check_urls(&urls(bad)).unwrap_err().message(),
                bad_urls().message(),
                "{bad:?}"
            );
        }
    }
}
