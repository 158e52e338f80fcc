//! The Election service (etcd's `v3electionpb.Election`): the contender whose key under
//! `name/` was created first leads; its key's value is the proclaimed value.

use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::coordination::{first_created, prefix, prefix_end, scoped, txn, Claim, ServerWatch};
use super::Handle;
use crate::proto::etcdserverpb::{self as pb, compare, request_op};
use crate::proto::v3electionpb::election_server::Election;
use crate::proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use kv::PermKind::{Read, Write};

/// The Election service.
#[derive(Debug)]
pub struct ElectionService(pub Handle);

fn not_leader() -> Status {
    Status::failed_precondition("election: not leader")
}

/// A transaction that runs `then` only while `leader` still holds its key.
fn while_leading(leader: &LeaderKey, then: request_op::Request) -> pb::TxnRequest {
    pb::TxnRequest {
        compare: vec![pb::Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Create as i32,
            key: leader.key.clone(),
            range_end: Vec::new(),
            target_union: Some(compare::TargetUnion::CreateRevision(leader.rev)),
        }],
        success: vec![pb::RequestOp {
            request: Some(then),
        }],
        failure: Vec::new(),
    }
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let handle = scoped(&self.0, &request, |r| &r.name, &[Read, Write])?;
        let r = request.into_inner();
        let claim = Claim::make(&handle, &r.name, &r.value, r.lease).await?;
        let leader = LeaderKey {
            name: r.name.clone(),
            key: claim.kv.key.clone(),
            rev: claim.kv.create_revision,
            lease: claim.lease,
        };
        if claim.kv.value != r.value {
            // Campaigning again with the same lease re-proclaims the new value.
            let put = request_op::Request::RequestPut(pb::PutRequest {
                key: leader.key.clone(),
                value: r.value.clone(),
                lease: leader.lease,
                ..pb::PutRequest::default()
            });
            txn(&handle, while_leading(&leader, put)).await?;
        }
        let header = claim.wait_for_turn(&r.name).await?;
        Ok(Response::new(CampaignResponse {
            header: Some(header),
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let handle = self.0.with_caller(self.0.caller_of(&request)?);
        let r = request.into_inner();
        let leader = r.leader.ok_or_else(not_leader)?;
        let put = request_op::Request::RequestPut(pb::PutRequest {
            key: leader.key.clone(),
            value: r.value,
            lease: leader.lease,
            ..pb::PutRequest::default()
        });
        let answer = txn(&handle, while_leading(&leader, put)).await?;
        if !answer.succeeded {
            return Err(not_leader());
        }
        Ok(Response::new(ProclaimResponse {
            header: answer.header,
        }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let handle = scoped(&self.0, &request, |r| &r.name, &[Read])?;
        let name = request.into_inner().name;
        let (kv, header) = first_created(&handle, &prefix(&name), 0, false).await?;
        let kv = kv.ok_or_else(|| Status::not_found("election: no leader"))?;
        Ok(Response::new(LeaderResponse {
            header: Some(header),
            kv: Some(kv),
        }))
    }

    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let handle = scoped(&self.0, &request, |r| &r.name, &[Read])?;
        let name = request.into_inner().name;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let _ = observe(&handle, &name, &tx).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let handle = self.0.with_caller(self.0.caller_of(&request)?);
        let leader = request.into_inner().leader.ok_or_else(not_leader)?;
        let delete = request_op::Request::RequestDeleteRange(pb::DeleteRangeRequest {
            key: leader.key.clone(),
            ..pb::DeleteRangeRequest::default()
        });
        let answer = txn(&handle, while_leading(&leader, delete)).await?;
        Ok(Response::new(ResignResponse {
            header: answer.header,
        }))
    }
}

/// Sends the leader now and every time it (or its value) changes.
async fn observe(
    handle: &Handle,
    name: &[u8],
    tx: &mpsc::Sender<Result<LeaderResponse, Status>>,
) -> Result<(), Status> {
    let pfx = prefix(name);
    let mut last: Option<(Vec<u8>, i64)> = None;
    loop {
        let (kv, header) = first_created(handle, &pfx, 0, false).await?;
        if let Some(kv) = kv {
            let seen = (kv.key.clone(), kv.mod_revision);
            if last.as_ref() != Some(&seen) {
                last = Some(seen);
                let answer = LeaderResponse {
                    header: Some(header),
                    kv: Some(kv),
                };
                if tx.send(Ok(answer)).await.is_err() {
                    return Ok(());
                }
            }
        }
        let mut watch =
            ServerWatch::start(handle, pfx.clone(), prefix_end(&pfx), header.revision + 1)?;
        tokio::select! {
            events = watch.next() => if events.is_none() { return Ok(()) },
            () = tx.closed() => return Ok(()),
        }
    }
}
