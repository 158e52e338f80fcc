//! The Lease service. Grants, revokes and keep-alives go through the log, so any member
//! serves them and every member's lease clocks restart when a keep-alive is applied; the
//! leader alone decides expiry (see `node.rs`).

use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use kv::{Caller, PermKind};

use super::{unexpected, Credentials, Handle};
use crate::convert;
use crate::node::Applied;
use crate::proto::etcdserverpb::{self as pb, lease_server::Lease};
use crate::proto::synodpb::command::Op;

/// The Lease service.
#[derive(Debug)]
pub struct LeaseService(pub Handle);

type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let caller = self.0.caller_of(&request)?;
        let r = request.into_inner();
        if r.ttl > kv::LEASE_TTL_MAX {
            return Err(convert::status(kv::KvError::LeaseTtlTooLarge));
        }
        match self.0.propose_as(Op::LeaseGrant(r), &caller).await? {
            Applied::LeaseGrant(answer) => Ok(Response::new(answer)),
            other => Err(unexpected(&other)),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let caller = self.0.caller_of(&request)?;
        match self
            .0
            .propose_as(Op::LeaseRevoke(request.into_inner()), &caller)
            .await?
        {
            Applied::LeaseRevoke(answer) => Ok(Response::new(answer)),
            other => Err(unexpected(&other)),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let credentials = Credentials::of_request(&request);
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let handle = self.0.clone();
        tokio::spawn(async move {
            while let Some(Ok(r)) = incoming.next().await {
                // etcd's checkLeaseRenew: the keys kept alive must be writable.
                let checked = handle
                    .identify(&credentials, None)
                    .and_then(|c| check_lease_keys(&handle, &c, &[r.id], PermKind::Write));
                if let Err(e) = checked {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
                let answer = match handle.propose(Op::LeaseKeepAlive(r)).await {
                    Ok(Applied::KeepAlive(answer)) => Ok(answer),
                    Ok(other) => Err(unexpected(&other)),
                    Err(e) => Err(e),
                };
                if tx.send(answer).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        // Linearizable, as etcd's: a lease granted or a key attached anywhere before this
        // call is seen (and every auth change: its sender is identified after).
        self.0.linearizable().await?;
        let caller = self.0.caller_of(&request)?;
        let r = request.into_inner();
        check_lease_keys(&self.0, &caller, &[r.id], PermKind::Read)?;
        let answer = self
            .0
            .query(move |core| {
                let info = core.store().lease_info(r.id, r.keys);
                info.map(|info| pb::LeaseTimeToLiveResponse {
                    header: Some(core.header()),
                    id: r.id,
                    ttl: core.lease_remaining(r.id),
                    granted_ttl: info.granted_ttl,
                    keys: info.keys,
                })
            })
            .await?;
        match answer {
            Ok(answer) => Ok(Response::new(answer)),
            // etcd answers an unknown lease with TTL -1, not an error.
            Err(_) => {
                let header = self.0.serializable().header;
                Ok(Response::new(pb::LeaseTimeToLiveResponse {
                    header: Some(header),
                    id: r.id,
                    ttl: -1,
                    ..pb::LeaseTimeToLiveResponse::default()
                }))
            }
        }
    }

    async fn lease_leases(
        &self,
        request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let view = self.0.linearizable().await?;
        let caller = self
            .0
            .identify(&Credentials::of_request(&request), Some(&view))?;
        check_lease_keys(&self.0, &caller, &view.store.lease_ids(), PermKind::Read)?;
        let leases = view
            .store
            .lease_ids()
            .into_iter()
            .map(|id| pb::LeaseStatus { id })
            .collect();
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: Some(view.header),
            leases,
        }))
    }
}

/// etcd's checks of keep-alives, time-to-live and lease listings while auth is on: a
/// caller is needed, and an administrator may do anything; anyone else needs `wanted` on
/// every key attached to the leases.
fn check_lease_keys(
    handle: &Handle,
    caller: &Caller,
    leases: &[i64],
    wanted: PermKind,
) -> Result<(), Status> {
    handle.require_user(caller)?;
    let view = handle.serializable();
    for &lease in leases {
        crate::auth::check_lease_keys(&view.store, lease, caller, wanted)
            .map_err(convert::auth_status)?;
    }
    Ok(())
}
