//! The KV service: ranges are read from views, writes go through the log.

use tonic::{Request, Response, Status};

use super::{too_large, unexpected, Handle};
use crate::convert;
use crate::node::Applied;
use crate::proto::etcdserverpb::{self as pb, kv_server::Kv};
use crate::proto::synodpb::command::Op;

/// The KV service.
#[derive(Debug)]
pub struct KvService(pub Handle);

impl KvService {
    fn check_size(&self, request: &impl prost::Message) -> Result<(), Status> {
        if request.encoded_len() > self.0.info.max_request_bytes {
            return Err(too_large());
        }
        Ok(())
    }
}

/// Refuses a transaction with too many operations before it is proposed.
fn check_txn(r: &pb::TxnRequest) -> Result<(), Status> {
    let most = r.compare.len().max(r.success.len()).max(r.failure.len());
    if most > kv::TXN_OPS_MAX {
        return Err(convert::status(kv::KvError::TooManyOps));
    }
    Ok(())
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let r = request.into_inner();
        let range = convert::range(&r)?;
        let view = self.0.view(r.serializable).await?;
        let answer = view.store.range(&range).map_err(convert::status)?;
        Ok(Response::new(convert::range_response(answer, view.header)))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let r = request.into_inner();
        self.check_size(&r)?;
        match self.0.propose(Op::Put(r)).await? {
            Applied::Put(answer) => Ok(Response::new(answer)),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let r = request.into_inner();
        self.check_size(&r)?;
        match self.0.propose(Op::DeleteRange(r)).await? {
            Applied::Delete(answer) => Ok(Response::new(answer)),
            other => Err(unexpected(&other)),
        }
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let r = request.into_inner();
        self.check_size(&r)?;
        check_txn(&r)?;
        let txn = convert::txn(&r)?;
        if convert::txn_is_read_only(&r) {
            // A read-only transaction needs no slot: run it on a linearizable view.
            let view = self.0.linearizable().await?;
            let mut store = view.store.clone();
            let answer = store.txn(&txn).map_err(convert::status)?;
            return Ok(Response::new(convert::txn_response(answer, view.header)));
        }
        match self.0.propose(Op::Txn(r)).await? {
            Applied::Txn(answer) => Ok(Response::new(answer)),
            other => Err(unexpected(&other)),
        }
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        match self.0.propose(Op::Compact(request.into_inner())).await? {
            Applied::Compact(answer) => Ok(Response::new(answer)),
            other => Err(unexpected(&other)),
        }
    }
}
