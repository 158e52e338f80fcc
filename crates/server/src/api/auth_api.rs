//! The Auth service, as etcd's: every request goes through the log (reads too, so they
//! see every change chosen before them) and is checked where it is applied; passwords
//! are hashed here, on the member that receives them, so that no password enters the log.

use tonic::{Request, Response, Status};

use super::{unexpected, Handle};
use crate::auth::{self, AuthAnswer};
use crate::convert;
use crate::node::Applied;
use crate::proto::etcdserverpb::{self as pb, auth_server::Auth};
use crate::proto::synodpb::{command::Op, Authenticate};

/// The Auth service.
#[derive(Debug)]
pub struct AuthService(pub Handle);

type Answer = (AuthAnswer, pb::ResponseHeader);

impl AuthService {
    /// Proposes `op` from the sender of `request` and waits for its answer.
    async fn run<T>(&self, request: &Request<T>, op: Op) -> Result<Answer, Status> {
        let caller = self.0.caller_of(request)?;
        match self.0.propose_as(op, &caller).await? {
            Applied::Auth(answer, header) => Ok((answer, header)),
            other => Err(unexpected(&other)),
        }
    }

    /// A request whose answer is only a header.
    async fn header<T>(&self, request: &Request<T>, op: Op) -> Result<pb::ResponseHeader, Status> {
        self.run(request, op).await.map(|(_, header)| header)
    }

    /// A request whose answer is a list of names.
    async fn names<T>(
        &self,
        request: &Request<T>,
        op: Op,
    ) -> Result<(Vec<String>, pb::ResponseHeader), Status> {
        match self.run(request, op).await? {
            (AuthAnswer::Names(names), header) => Ok((names, header)),
            (other, _) => Err(Status::internal(format!("unexpected answer {other:?}"))),
        }
    }

    async fn hashed(&self, password: String) -> Result<String, Status> {
        auth::hash_password(password, self.0.info.authn.bcrypt_cost).await
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        request: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        let op = Op::AuthEnable(*request.get_ref());
        let header = self.header(&request, op).await?;
        Ok(Response::new(pb::AuthEnableResponse {
            header: Some(header),
        }))
    }

    async fn auth_disable(
        &self,
        request: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        let op = Op::AuthDisable(*request.get_ref());
        let header = self.header(&request, op).await?;
        Ok(Response::new(pb::AuthDisableResponse {
            header: Some(header),
        }))
    }

    async fn auth_status(
        &self,
        request: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        let op = Op::AuthStatus(*request.get_ref());
        match self.run(&request, op).await? {
            (AuthAnswer::Status { enabled, revision }, header) => {
                Ok(Response::new(pb::AuthStatusResponse {
                    header: Some(header),
                    enabled,
                    auth_revision: revision,
                }))
            }
            (other, _) => Err(Status::internal(format!("unexpected answer {other:?}"))),
        }
    }

    /// The password is checked here against a linearizable view (as etcd checks it
    /// before proposing); the token is assigned where the command is applied.
    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let r = request.into_inner();
        let view = self.0.linearizable().await?;
        let cost = self.0.info.authn.bcrypt_cost;
        if let Err(e) = auth::check_password(view.store.auth(), &r.name, r.password, cost).await {
            if e != kv::AuthError::AuthNotEnabled {
                tracing::warn!(user = %r.name, "invalid authentication was requested: {e}");
            }
            return Err(convert::auth_status(e));
        }
        let jwt = self.0.info.authn.jwt.clone();
        let op = Op::Authenticate(Authenticate {
            name: r.name.clone(),
            token: match jwt {
                Some(_) => String::new(),
                None => auth::token_prefix()?,
            },
        });
        let (token, revision, header) = match self.0.propose(op).await? {
            Applied::Auth(AuthAnswer::Token { token, revision }, header) => {
                (token, revision, header)
            }
            other => return Err(unexpected(&other)),
        };
        let token = match jwt {
            Some(jwt) => jwt.sign(&r.name, revision)?,
            None => token,
        };
        Ok(Response::new(pb::AuthenticateResponse {
            header: Some(header),
            token,
        }))
    }

    async fn user_add(
        &self,
        request: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        let mut r = request.get_ref().clone();
        let no_password = r.options.is_some_and(|o| o.no_password);
        let password = std::mem::take(&mut r.password);
        r.hashed_password = if no_password {
            String::new()
        } else {
            self.hashed(password).await?
        };
        let header = self.header(&request, Op::UserAdd(r)).await?;
        Ok(Response::new(pb::AuthUserAddResponse {
            header: Some(header),
        }))
    }

    async fn user_get(
        &self,
        request: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        let op = Op::UserGet(request.get_ref().clone());
        let (roles, header) = self.names(&request, op).await?;
        Ok(Response::new(pb::AuthUserGetResponse {
            header: Some(header),
            roles,
        }))
    }

    async fn user_list(
        &self,
        request: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        let op = Op::UserList(*request.get_ref());
        let (users, header) = self.names(&request, op).await?;
        Ok(Response::new(pb::AuthUserListResponse {
            header: Some(header),
            users,
        }))
    }

    async fn user_delete(
        &self,
        request: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        let op = Op::UserDelete(request.get_ref().clone());
        let header = self.header(&request, op).await?;
        Ok(Response::new(pb::AuthUserDeleteResponse {
            header: Some(header),
        }))
    }

    async fn user_change_password(
        &self,
        request: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        let mut r = request.get_ref().clone();
        let password = std::mem::take(&mut r.password);
        r.hashed_password = self.hashed(password).await?;
        let header = self.header(&request, Op::UserChangePassword(r)).await?;
        Ok(Response::new(pb::AuthUserChangePasswordResponse {
            header: Some(header),
        }))
    }

    async fn user_grant_role(
        &self,
        request: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        let op = Op::UserGrantRole(request.get_ref().clone());
        let header = self.header(&request, op).await?;
        Ok(Response::new(pb::AuthUserGrantRoleResponse {
            header: Some(header),
        }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        let op = Op::UserRevokeRole(request.get_ref().clone());
        let header = self.header(&request, op).await?;
        Ok(Response::new(pb::AuthUserRevokeRoleResponse {
            header: Some(header),
        }))
    }

    async fn role_add(
        &self,
        request: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        let op = Op::RoleAdd(request.get_ref().clone());
        let header = self.header(&request, op).await?;
        Ok(Response::new(pb::AuthRoleAddResponse {
            header: Some(header),
        }))
    }

    async fn role_get(
        &self,
        request: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        let op = Op::RoleGet(request.get_ref().clone());
        match self.run(&request, op).await? {
            (AuthAnswer::Permissions(perm), header) => Ok(Response::new(pb::AuthRoleGetResponse {
                header: Some(header),
                perm,
            })),
            (other, _) => Err(Status::internal(format!("unexpected answer {other:?}"))),
        }
    }

    async fn role_list(
        &self,
        request: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        let op = Op::RoleList(*request.get_ref());
        let (roles, header) = self.names(&request, op).await?;
        Ok(Response::new(pb::AuthRoleListResponse {
            header: Some(header),
            roles,
        }))
    }

    async fn role_delete(
        &self,
        request: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        let op = Op::RoleDelete(request.get_ref().clone());
        let header = self.header(&request, op).await?;
        Ok(Response::new(pb::AuthRoleDeleteResponse {
            header: Some(header),
        }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        let op = Op::RoleGrantPermission(request.get_ref().clone());
        let header = self.header(&request, op).await?;
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse {
            header: Some(header),
        }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        let op = Op::RoleRevokePermission(request.get_ref().clone());
        let header = self.header(&request, op).await?;
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse {
            header: Some(header),
        }))
    }
}
