//! The Cluster service: the membership is fixed at start (`--initial-cluster`); changing
//! it comes with reconfiguration. Each member's name and client URLs are what it
//! published through the log when it started, so every member lists the same.

use tonic::{Request, Response, Status};

use super::Handle;
use crate::proto::etcdserverpb::{self as pb, cluster_server::Cluster};

/// The Cluster service.
#[derive(Debug)]
pub struct ClusterService(pub Handle);

fn not_yet() -> Status {
    Status::unimplemented("synod: membership changes are not supported yet; the membership is fixed by --initial-cluster")
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        Err(not_yet())
    }

    async fn member_remove(
        &self,
        _: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        Err(not_yet())
    }

    async fn member_update(
        &self,
        _: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(not_yet())
    }

    async fn member_list(
        &self,
        _: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let view = self.0.serializable();
        let published = view.store.published();
        let members = self
            .0
            .info
            .members
            .iter()
            .map(|m| {
                // A member that has not published yet lists with no client URLs, as in
                // etcd (etcdctl then shows it "unstarted" if it has no name either).
                let attributes = published.get(&m.id.0);
                pb::Member {
                    id: m.id.0,
                    name: attributes.map_or_else(|| m.name.clone(), |a| a.name.clone()),
                    peer_ur_ls: vec![m.peer_url.clone()],
                    client_ur_ls: attributes
                        .map(|a| a.client_urls.clone())
                        .unwrap_or_default(),
                    is_learner: false,
                }
            })
            .collect();
        // etcd's header here carries no revision: the membership is not in the key space.
        let header = pb::ResponseHeader {
            revision: 0,
            ..view.header
        };
        Ok(Response::new(pb::MemberListResponse {
            header: Some(header),
            members,
        }))
    }

    async fn member_promote(
        &self,
        _: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        Err(not_yet())
    }
}
