//! The Lock service (etcd's `v3lockpb.Lock`): a mutex per name, held while the caller's
//! lease lives.

use tonic::{Request, Response, Status};

use super::coordination::{contender_key, create_key, delete_key, prefix, wait_for_turn, Abandon};
use super::Handle;
use crate::proto::v3lockpb::{
    lock_server::Lock, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
};

/// The Lock service.
#[derive(Debug)]
pub struct LockService(pub Handle);

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let r = request.into_inner();
        let key = contender_key(&r.name, r.lease);
        let (kv, _) = create_key(&self.0, &key, b"", r.lease).await?;
        let guard = Abandon::new(&self.0, key.clone());
        let header = wait_for_turn(&self.0, &prefix(&r.name), kv.create_revision).await?;
        guard.disarm();
        Ok(Response::new(LockResponse {
            header: Some(header),
            key,
        }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let header = delete_key(&self.0, request.into_inner().key).await?;
        Ok(Response::new(UnlockResponse {
            header: Some(header),
        }))
    }
}
