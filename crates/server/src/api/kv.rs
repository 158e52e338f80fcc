//! The KV service: ranges are read from views, writes go through the log.

use tonic::{Request, Response, Status};

use super::{too_large, unexpected, Credentials, Handle};
use crate::auth;
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

/// Requests are checked as etcd's API layer checks them, before anything is proposed: a
/// request refused here costs no slot in the log and no sync.
fn check_put(r: &pb::PutRequest) -> Result<(), Status> {
    kv::check_put_fields(&r.key, &r.value, r.lease, r.ignore_value, r.ignore_lease)
        .map_err(convert::status)
}

fn check_delete(r: &pb::DeleteRangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(convert::status(kv::KvError::EmptyKey));
    }
    Ok(())
}

/// Refuses a transaction with too many operations before it is converted.
fn check_txn_size(r: &pb::TxnRequest) -> Result<(), Status> {
    let most = r.compare.len().max(r.success.len()).max(r.failure.len());
    if most > kv::TXN_OPS_MAX {
        return Err(convert::status(kv::KvError::TooManyOps));
    }
    Ok(())
}

impl KvService {
    /// Answers a range: from a published view, without a slot in the log.
    pub async fn range_answer(
        &self,
        r: pb::RangeRequest,
        credentials: &Credentials,
    ) -> Result<pb::RangeResponse, Status> {
        let range = convert::range(&r)?;
        let view = self.0.view(r.serializable).await?;
        let caller = self.0.identify(credentials, Some(&view))?;
        auth::check_range(view.store.auth(), &r, &caller).map_err(convert::auth_status)?;
        let answer = view.store.range(&range).map_err(convert::status)?;
        Ok(convert::range_response(answer, view.header))
    }

    /// Answers a put once this member applied it.
    pub async fn put_answer(
        &self,
        r: pb::PutRequest,
        credentials: &Credentials,
    ) -> Result<pb::PutResponse, Status> {
        let caller = self.0.identify(credentials, None)?;
        self.check_size(&r)?;
        check_put(&r)?;
        match self.0.propose_as(Op::Put(r), &caller).await? {
            Applied::Put(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    /// Answers a delete once this member applied it.
    pub async fn delete_answer(
        &self,
        r: pb::DeleteRangeRequest,
        credentials: &Credentials,
    ) -> Result<pb::DeleteRangeResponse, Status> {
        let caller = self.0.identify(credentials, None)?;
        self.check_size(&r)?;
        check_delete(&r)?;
        match self.0.propose_as(Op::DeleteRange(r), &caller).await? {
            Applied::Delete(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    /// Answers a transaction: a read-only one from a linearizable view, any other once
    /// this member applied it.
    pub async fn txn_answer(
        &self,
        r: pb::TxnRequest,
        credentials: &Credentials,
    ) -> Result<pb::TxnResponse, Status> {
        self.check_size(&r)?;
        check_txn_size(&r)?;
        let txn = convert::txn(&r)?;
        kv::check_txn(&txn).map_err(convert::status)?;
        if convert::txn_is_read_only(&r) {
            // A read-only transaction needs no slot: run it on a linearizable view.
            let view = self.0.linearizable().await?;
            let caller = self.0.identify(credentials, Some(&view))?;
            auth::check_txn(&view.store, &r, &caller).map_err(convert::auth_status)?;
            let mut store = view.store.clone();
            let answer = store.txn(&txn).map_err(convert::status)?;
            return Ok(convert::txn_response(answer, view.header));
        }
        let caller = self.0.identify(credentials, None)?;
        match self.0.propose_as(Op::Txn(r), &caller).await? {
            Applied::Txn(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    /// Answers a compaction once this member applied it.
    pub async fn compact_answer(
        &self,
        r: pb::CompactionRequest,
        credentials: &Credentials,
    ) -> Result<pb::CompactionResponse, Status> {
        let caller = self.0.identify(credentials, None)?;
        match self.0.propose_as(Op::Compact(r), &caller).await? {
            Applied::Compact(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }
}

/// The tonic service, for the KV calls the client port hands to tonic's router
/// (`crate::client_port` serves the usual ones itself).
#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let credentials = Credentials::of_request(&request);
        self.range_answer(request.into_inner(), &credentials)
            .await
            .map(Response::new)
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let credentials = Credentials::of_request(&request);
        self.put_answer(request.into_inner(), &credentials)
            .await
            .map(Response::new)
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let credentials = Credentials::of_request(&request);
        self.delete_answer(request.into_inner(), &credentials)
            .await
            .map(Response::new)
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let credentials = Credentials::of_request(&request);
        self.txn_answer(request.into_inner(), &credentials)
            .await
            .map(Response::new)
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let credentials = Credentials::of_request(&request);
        self.compact_answer(request.into_inner(), &credentials)
            .await
            .map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each request etcd's API layer refuses, and what it says; none may reach the core.
    #[tokio::test]
    async fn requests_etcd_refuses_are_refused_before_they_are_proposed() {
        let (handle, mut core) = super::super::test_handle(1 << 20);
        let service = KvService(handle);
        fn refused<T: std::fmt::Debug>(r: Result<T, Status>) -> Status {
            r.expect_err("refused")
        }
        let put = |key: &[u8]| pb::PutRequest {
            key: key.to_vec(),
            ..pb::PutRequest::default()
        };
        let cases = [
            (
                refused(service.put_answer(put(b""), &Credentials::default()).await),
                "etcdserver: key is not provided",
            ),
            (
                refused(
                    service
                        .put_answer(
                            pb::PutRequest {
                                ignore_value: true,
                                value: b"v".to_vec(),
                                ..put(b"k")
                            },
                            &Credentials::default(),
                        )
                        .await,
                ),
                "etcdserver: value is provided",
            ),
            (
                refused(
                    service
                        .put_answer(
                            pb::PutRequest {
                                ignore_lease: true,
                                lease: 7,
                                ..put(b"k")
                            },
                            &Credentials::default(),
                        )
                        .await,
                ),
                "etcdserver: lease is provided",
            ),
            (
                refused(
                    service
                        .delete_answer(pb::DeleteRangeRequest::default(), &Credentials::default())
                        .await,
                ),
                "etcdserver: key is not provided",
            ),
        ];
        for (status, message) in cases {
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert_eq!(status.message(), message);
        }
        let twice = pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(put(b"k"))),
        };
        let txn = pb::TxnRequest {
            success: vec![twice.clone(), twice],
            ..pb::TxnRequest::default()
        };
        let status = refused(service.txn_answer(txn, &Credentials::default()).await);
        assert_eq!(
            status.message(),
            "etcdserver: duplicate key given in txn request"
        );
        assert!(core.try_recv().is_err(), "nothing was proposed");
    }
}
