//! The Lock service (etcd's `v3lockpb.Lock`): a mutex per name, held while the caller's
//! lease lives (a session lease of the server's if the caller gave none).

use tonic::{Request, Response, Status};

use super::coordination::{delete_key, scoped, Claim};
use super::Handle;
use crate::proto::v3lockpb::{
    lock_server::Lock, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
};
use kv::PermKind::{Read, Write};

/// The Lock service.
#[derive(Debug)]
pub struct LockService(pub Handle);

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let handle = scoped(&self.0, &request, |r| &r.name, &[Read, Write])?;
        let r = request.into_inner();
        let claim = Claim::make(&handle, &r.name, b"", r.lease).await?;
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
        let handle = self.0.with_caller(self.0.caller_of(&request)?);
        let header = delete_key(&handle, request.into_inner().key).await?;
        Ok(Response::new(UnlockResponse {
            header: Some(header),
        }))
    }
}
