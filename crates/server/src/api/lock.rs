//! The Lock service (etcd's `v3lockpb.Lock`): a mutex per name, held while the caller's
//! lease lives (a session lease of the server's if the caller gave none).

use tonic::{Request, Response, Status};

use super::coordination::{delete_key, Claim};
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
        let claim = Claim::make(&self.0, &r.name, b"", r.lease).await?;
        let key = claim.kv.key.clone();
        let header = claim.wait_for_turn(&r.name).await?;
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
