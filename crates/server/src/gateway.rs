//! etcd's JSON gateway (grpc-gateway, as etcd 3.4 serves it) at `/v3/…` on the client
//! port: each POST's JSON body becomes the gRPC request of the method its path names,
//! which runs through the same gRPC services as any other call; the answer comes back
//! as JSON. Field names are the `.proto`'s, 64-bit integers are strings, bytes base64,
//! enums by name, defaults left out (the proto3 JSON mapping `pbjson` generates).
//!
//! Streaming methods (Watch, LeaseKeepAlive, Observe, Snapshot) take a sequence of JSON
//! requests and answer with one line per message, `{"result":{…}}`, until the stream
//! ends (a watch's ends when the client goes away: the Watch service keeps a stream
//! whose requests ended, as etcd's does). A failure is `{"error":…,"message":…,"code":N}` with grpc-gateway's
//! HTTP status for the gRPC code, or in a stream an `{"error":{…}}` line.

use std::convert::Infallible;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::stream::StreamExt;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body as _, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tonic::codegen::Service;
use tonic::service::Routes;
use tonic::{Code, Status};

use crate::proto::etcdserverpb as pb;
use crate::proto::{v3electionpb as election, v3lockpb as lock};
use crate::tls::ClientCertificate;

/// An HTTP answer of the gateway.
pub type Answer = Response<BoxBody<Bytes, Infallible>>;

/// How a method streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Unary,
    /// One request, many answers.
    ServerStream,
    /// Many requests and answers. The service decides what the end of the requests
    /// means: a watch stays until the client goes away, as etcd's; a keep-alive ends.
    BidiStream,
}

/// JSON to a request's protobuf bytes.
type Decode = fn(&[u8]) -> Result<Vec<u8>, String>;
/// An answer's protobuf bytes to JSON.
type Encode = fn(&[u8]) -> Result<String, String>;

/// One path of the gateway.
#[derive(Clone, Copy)]
struct Route {
    path: &'static str,
    grpc: &'static str,
    kind: Kind,
    decode: Decode,
    encode: Encode,
}

fn decode<T: DeserializeOwned + Message>(json: &[u8]) -> Result<Vec<u8>, String> {
    let json = if json.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        json
    };
    let request: T = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(request.encode_to_vec())
}

fn encode<T: Serialize + Message + Default>(bytes: &[u8]) -> Result<String, String> {
    let answer = T::decode(bytes).map_err(|e| e.to_string())?;
    serde_json::to_string(&answer).map_err(|e| e.to_string())
}

macro_rules! route {
    ($path:literal, $grpc:literal, $kind:ident, $request:ty, $response:ty) => {
        Route {
            path: $path,
            grpc: $grpc,
            kind: Kind::$kind,
            decode: decode::<$request>,
            encode: encode::<$response>,
        }
    };
}

/// Every path etcd's gateway serves (3.4's, and 3.5's `/v3/auth/status`).
const ROUTES: &[Route] = &[
    route!(
        "/v3/kv/range",
        "/etcdserverpb.KV/Range",
        Unary,
        pb::RangeRequest,
        pb::RangeResponse
    ),
    route!(
        "/v3/kv/put",
        "/etcdserverpb.KV/Put",
        Unary,
        pb::PutRequest,
        pb::PutResponse
    ),
    route!(
        "/v3/kv/deleterange",
        "/etcdserverpb.KV/DeleteRange",
        Unary,
        pb::DeleteRangeRequest,
        pb::DeleteRangeResponse
    ),
    route!(
        "/v3/kv/txn",
        "/etcdserverpb.KV/Txn",
        Unary,
        pb::TxnRequest,
        pb::TxnResponse
    ),
    route!(
        "/v3/kv/compaction",
        "/etcdserverpb.KV/Compact",
        Unary,
        pb::CompactionRequest,
        pb::CompactionResponse
    ),
    route!(
        "/v3/watch",
        "/etcdserverpb.Watch/Watch",
        BidiStream,
        pb::WatchRequest,
        pb::WatchResponse
    ),
    route!(
        "/v3/lease/grant",
        "/etcdserverpb.Lease/LeaseGrant",
        Unary,
        pb::LeaseGrantRequest,
        pb::LeaseGrantResponse
    ),
    route!(
        "/v3/lease/revoke",
        "/etcdserverpb.Lease/LeaseRevoke",
        Unary,
        pb::LeaseRevokeRequest,
        pb::LeaseRevokeResponse
    ),
    route!(
        "/v3/kv/lease/revoke",
        "/etcdserverpb.Lease/LeaseRevoke",
        Unary,
        pb::LeaseRevokeRequest,
        pb::LeaseRevokeResponse
    ),
    route!(
        "/v3/lease/keepalive",
        "/etcdserverpb.Lease/LeaseKeepAlive",
        BidiStream,
        pb::LeaseKeepAliveRequest,
        pb::LeaseKeepAliveResponse
    ),
    route!(
        "/v3/lease/timetolive",
        "/etcdserverpb.Lease/LeaseTimeToLive",
        Unary,
        pb::LeaseTimeToLiveRequest,
        pb::LeaseTimeToLiveResponse
    ),
    route!(
        "/v3/kv/lease/timetolive",
        "/etcdserverpb.Lease/LeaseTimeToLive",
        Unary,
        pb::LeaseTimeToLiveRequest,
        pb::LeaseTimeToLiveResponse
    ),
    route!(
        "/v3/lease/leases",
        "/etcdserverpb.Lease/LeaseLeases",
        Unary,
        pb::LeaseLeasesRequest,
        pb::LeaseLeasesResponse
    ),
    route!(
        "/v3/kv/lease/leases",
        "/etcdserverpb.Lease/LeaseLeases",
        Unary,
        pb::LeaseLeasesRequest,
        pb::LeaseLeasesResponse
    ),
    route!(
        "/v3/cluster/member/add",
        "/etcdserverpb.Cluster/MemberAdd",
        Unary,
        pb::MemberAddRequest,
        pb::MemberAddResponse
    ),
    route!(
        "/v3/cluster/member/remove",
        "/etcdserverpb.Cluster/MemberRemove",
        Unary,
        pb::MemberRemoveRequest,
        pb::MemberRemoveResponse
    ),
    route!(
        "/v3/cluster/member/update",
        "/etcdserverpb.Cluster/MemberUpdate",
        Unary,
        pb::MemberUpdateRequest,
        pb::MemberUpdateResponse
    ),
    route!(
        "/v3/cluster/member/list",
        "/etcdserverpb.Cluster/MemberList",
        Unary,
        pb::MemberListRequest,
        pb::MemberListResponse
    ),
    route!(
        "/v3/cluster/member/promote",
        "/etcdserverpb.Cluster/MemberPromote",
        Unary,
        pb::MemberPromoteRequest,
        pb::MemberPromoteResponse
    ),
    route!(
        "/v3/maintenance/alarm",
        "/etcdserverpb.Maintenance/Alarm",
        Unary,
        pb::AlarmRequest,
        pb::AlarmResponse
    ),
    route!(
        "/v3/maintenance/status",
        "/etcdserverpb.Maintenance/Status",
        Unary,
        pb::StatusRequest,
        pb::StatusResponse
    ),
    route!(
        "/v3/maintenance/defragment",
        "/etcdserverpb.Maintenance/Defragment",
        Unary,
        pb::DefragmentRequest,
        pb::DefragmentResponse
    ),
    // etcd 3.4 gives Hash and HashKV this one path; the first, Hash, answers it.
    route!(
        "/v3/maintenance/hash",
        "/etcdserverpb.Maintenance/Hash",
        Unary,
        pb::HashRequest,
        pb::HashResponse
    ),
    route!(
        "/v3/maintenance/snapshot",
        "/etcdserverpb.Maintenance/Snapshot",
        ServerStream,
        pb::SnapshotRequest,
        pb::SnapshotResponse
    ),
    route!(
        "/v3/maintenance/transfer-leadership",
        "/etcdserverpb.Maintenance/MoveLeader",
        Unary,
        pb::MoveLeaderRequest,
        pb::MoveLeaderResponse
    ),
    route!(
        "/v3/lock/lock",
        "/v3lockpb.Lock/Lock",
        Unary,
        lock::LockRequest,
        lock::LockResponse
    ),
    route!(
        "/v3/lock/unlock",
        "/v3lockpb.Lock/Unlock",
        Unary,
        lock::UnlockRequest,
        lock::UnlockResponse
    ),
    route!(
        "/v3/election/campaign",
        "/v3electionpb.Election/Campaign",
        Unary,
        election::CampaignRequest,
        election::CampaignResponse
    ),
    route!(
        "/v3/election/proclaim",
        "/v3electionpb.Election/Proclaim",
        Unary,
        election::ProclaimRequest,
        election::ProclaimResponse
    ),
    route!(
        "/v3/election/leader",
        "/v3electionpb.Election/Leader",
        Unary,
        election::LeaderRequest,
        election::LeaderResponse
    ),
    route!(
        "/v3/election/observe",
        "/v3electionpb.Election/Observe",
        ServerStream,
        election::LeaderRequest,
        election::LeaderResponse
    ),
    route!(
        "/v3/election/resign",
        "/v3electionpb.Election/Resign",
        Unary,
        election::ResignRequest,
        election::ResignResponse
    ),
    route!(
        "/v3/auth/enable",
        "/etcdserverpb.Auth/AuthEnable",
        Unary,
        pb::AuthEnableRequest,
        pb::AuthEnableResponse
    ),
    route!(
        "/v3/auth/disable",
        "/etcdserverpb.Auth/AuthDisable",
        Unary,
        pb::AuthDisableRequest,
        pb::AuthDisableResponse
    ),
    route!(
        "/v3/auth/status",
        "/etcdserverpb.Auth/AuthStatus",
        Unary,
        pb::AuthStatusRequest,
        pb::AuthStatusResponse
    ),
    route!(
        "/v3/auth/authenticate",
        "/etcdserverpb.Auth/Authenticate",
        Unary,
        pb::AuthenticateRequest,
        pb::AuthenticateResponse
    ),
    route!(
        "/v3/auth/user/add",
        "/etcdserverpb.Auth/UserAdd",
        Unary,
        pb::AuthUserAddRequest,
        pb::AuthUserAddResponse
    ),
    route!(
        "/v3/auth/user/get",
        "/etcdserverpb.Auth/UserGet",
        Unary,
        pb::AuthUserGetRequest,
        pb::AuthUserGetResponse
    ),
    route!(
        "/v3/auth/user/list",
        "/etcdserverpb.Auth/UserList",
        Unary,
        pb::AuthUserListRequest,
        pb::AuthUserListResponse
    ),
    route!(
        "/v3/auth/user/delete",
        "/etcdserverpb.Auth/UserDelete",
        Unary,
        pb::AuthUserDeleteRequest,
        pb::AuthUserDeleteResponse
    ),
    route!(
        "/v3/auth/user/changepw",
        "/etcdserverpb.Auth/UserChangePassword",
        Unary,
        pb::AuthUserChangePasswordRequest,
        pb::AuthUserChangePasswordResponse
    ),
    route!(
        "/v3/auth/user/grant",
        "/etcdserverpb.Auth/UserGrantRole",
        Unary,
        pb::AuthUserGrantRoleRequest,
        pb::AuthUserGrantRoleResponse
    ),
    route!(
        "/v3/auth/user/revoke",
        "/etcdserverpb.Auth/UserRevokeRole",
        Unary,
        pb::AuthUserRevokeRoleRequest,
        pb::AuthUserRevokeRoleResponse
    ),
    route!(
        "/v3/auth/role/add",
        "/etcdserverpb.Auth/RoleAdd",
        Unary,
        pb::AuthRoleAddRequest,
        pb::AuthRoleAddResponse
    ),
    route!(
        "/v3/auth/role/get",
        "/etcdserverpb.Auth/RoleGet",
        Unary,
        pb::AuthRoleGetRequest,
        pb::AuthRoleGetResponse
    ),
    route!(
        "/v3/auth/role/list",
        "/etcdserverpb.Auth/RoleList",
        Unary,
        pb::AuthRoleListRequest,
        pb::AuthRoleListResponse
    ),
    route!(
        "/v3/auth/role/delete",
        "/etcdserverpb.Auth/RoleDelete",
        Unary,
        pb::AuthRoleDeleteRequest,
        pb::AuthRoleDeleteResponse
    ),
    route!(
        "/v3/auth/role/grant",
        "/etcdserverpb.Auth/RoleGrantPermission",
        Unary,
        pb::AuthRoleGrantPermissionRequest,
        pb::AuthRoleGrantPermissionResponse
    ),
    route!(
        "/v3/auth/role/revoke",
        "/etcdserverpb.Auth/RoleRevokePermission",
        Unary,
        pb::AuthRoleRevokePermissionRequest,
        pb::AuthRoleRevokePermissionResponse
    ),
];

/// Who sent a gateway request: its `Authorization` header (a token, as etcd's gateway
/// takes it) and the connection's verified client certificate, passed on to the call.
#[derive(Debug, Default)]
struct Sender {
    authorization: Option<HeaderValue>,
    certificate: Option<ClientCertificate>,
}

impl Sender {
    fn of<B>(request: &Request<B>) -> Sender {
        Sender {
            authorization: request.headers().get(http::header::AUTHORIZATION).cloned(),
            certificate: request.extensions().get::<ClientCertificate>().cloned(),
        }
    }

    fn attach<B>(self, grpc: &mut Request<B>) {
        if let Some(token) = self.authorization {
            grpc.headers_mut().insert("authorization", token);
        }
        if let Some(certificate) = self.certificate {
            grpc.extensions_mut().insert(certificate);
        }
    }
}

/// Whether `path` is the gateway's.
pub fn serves(path: &str) -> bool {
    path.starts_with("/v3/")
}

/// The gateway of one member: its gRPC services, and the largest request body taken.
#[derive(Clone, Debug)]
pub struct Gateway {
    routes: Routes,
    max_body: usize,
}

impl Gateway {
    /// A gateway calling `routes`, taking bodies of at most `max_body` bytes.
    pub fn new(routes: Routes, max_body: usize) -> Gateway {
        Gateway { routes, max_body }
    }

    /// The answer to a request for a `/v3/` path.
    pub async fn answer<B>(&self, request: Request<B>) -> Answer
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin,
        B::Error: std::fmt::Display,
    {
        let path = request.uri().path();
        let Some(route) = ROUTES.iter().find(|r| r.path == path).copied() else {
            return plain(StatusCode::NOT_FOUND, "Not Found\n");
        };
        if request.method() != Method::POST {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        }
        let sender = Sender::of(&request);
        let body = match read_body(request.into_body(), self.max_body).await {
            Ok(body) => body,
            Err(status) => return failure(&status),
        };
        let frames = match requests(route, &body) {
            Ok(frames) => frames,
            Err(why) => return failure(&Status::invalid_argument(why)),
        };
        match route.kind {
            Kind::Unary => self.unary(route, frames, sender).await,
            _ => self.streaming(route, frames, sender).await,
        }
    }

    async fn call(
        &self,
        route: Route,
        body: BoxBody<Bytes, Infallible>,
        sender: Sender,
    ) -> Result<Response<tonic::body::Body>, Status> {
        let mut grpc = Request::new(body);
        sender.attach(&mut grpc);
        *grpc.method_mut() = Method::POST;
        *grpc.uri_mut() = http::Uri::from_static(route.grpc);
        let headers = grpc.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        let mut routes = self.routes.clone();
        std::future::poll_fn(|cx| {
            Service::<Request<BoxBody<Bytes, Infallible>>>::poll_ready(&mut routes, cx)
        })
        .await
        .map_err(|e| Status::internal(format!("{e:?}")))?;
        routes
            .call(grpc)
            .await
            .map_err(|e| Status::internal(format!("{e:?}")))
    }

    async fn unary(&self, route: Route, frames: Bytes, sender: Sender) -> Answer {
        let answer = match self.call(route, Full::new(frames).boxed(), sender).await {
            Ok(answer) => answer,
            Err(status) => return failure(&status),
        };
        let (head, mut body) = answer.into_parts();
        if let Some(status) = failed(&head.headers) {
            return failure(&status);
        }
        let mut messages = Messages::default();
        let mut status = None;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => messages.push(&data),
                    Err(frame) => status = frame.into_trailers().ok().and_then(|t| failed(&t)),
                },
                Err(error) => status = Some(error),
            }
        }
        if let Some(status) = status {
            return failure(&status);
        }
        let json = match messages.next() {
            Some(Ok(message)) => (route.encode)(&message),
            Some(Err(why)) => Err(why),
            None => Err("no answer".into()),
        };
        match json {
            Ok(json) => respond(StatusCode::OK, "application/json", json),
            Err(why) => failure(&Status::internal(why)),
        }
    }

    async fn streaming(&self, route: Route, frames: Bytes, sender: Sender) -> Answer {
        let answer = match self.call(route, Full::new(frames).boxed(), sender).await {
            Ok(answer) => answer,
            Err(status) => return failure(&status),
        };
        let (head, body) = answer.into_parts();
        if let Some(status) = failed(&head.headers) {
            return failure(&status);
        }
        let (lines, rx) = mpsc::channel::<Bytes>(16);
        tokio::spawn(relay(route, body, lines));
        let chunks = tokio_stream::wrappers::ReceiverStream::new(rx)
            .map(|line| Ok::<_, Infallible>(Frame::data(line)));
        let mut answer = Response::new(BodyExt::boxed(StreamBody::new(chunks)));
        answer
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        answer
    }
}

/// Sends each answer of a stream as a `{"result":…}` line, and a failure as an
/// `{"error":…}` line, until the stream ends or the client is gone.
async fn relay(route: Route, mut body: tonic::body::Body, lines: mpsc::Sender<Bytes>) {
    let mut messages = Messages::default();
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = lines.closed() => return,
        };
        let status = match frame {
            None => return,
            Some(Err(status)) => Some(status),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    messages.push(&data);
                    None
                }
                Err(frame) => frame.into_trailers().ok().and_then(|t| failed(&t)),
            },
        };
        for message in messages.by_ref() {
            let line = match message.and_then(|m| (route.encode)(&m)) {
                Ok(json) => format!("{{\"result\":{json}}}\n"),
                Err(why) => stream_error(&Status::internal(why)),
            };
            if lines.send(Bytes::from(line)).await.is_err() {
                return;
            }
        }
        if let Some(status) = status {
            let _ = lines.send(Bytes::from(stream_error(&status))).await;
            return;
        }
        if body.is_end_stream() {
            return;
        }
    }
}

/// The body, read whole (at most `max` bytes).
async fn read_body<B>(body: B, max: usize) -> Result<Bytes, Status>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin,
    B::Error: std::fmt::Display,
{
    let mut body = body;
    let mut bytes = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > max {
                return Err(Status::resource_exhausted(format!(
                    "grpc: received message larger than max ({} vs. {max})",
                    bytes.len() + data.len()
                )));
            }
            bytes.put(data);
        }
    }
    Ok(bytes.freeze())
}

/// The JSON requests in `body` (one, or for a stream a sequence), as gRPC frames.
fn requests(route: Route, body: &[u8]) -> Result<Bytes, String> {
    let mut frames = BytesMut::new();
    let mut push = |message: Vec<u8>| {
        frames.put_u8(0);
        frames.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
        frames.put_slice(&message);
    };
    if matches!(route.kind, Kind::Unary | Kind::ServerStream) {
        push((route.decode)(body)?);
        return Ok(frames.freeze());
    }
    let values = serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>();
    for value in values {
        let value = value.map_err(|e| e.to_string())?;
        push((route.decode)(value.to_string().as_bytes())?);
    }
    Ok(frames.freeze())
}

/// gRPC messages split out of the data frames of an answer.
#[derive(Default)]
struct Messages {
    buffer: BytesMut,
}

impl Messages {
    fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }
}

impl Iterator for Messages {
    type Item = Result<Vec<u8>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.len() < 5 {
            return None;
        }
        if self.buffer[0] != 0 {
            self.buffer.clear();
            return Some(Err("a compressed answer".into()));
        }
        let length = u32::from_be_bytes([
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
            self.buffer[4],
        ]);
        let length = usize::try_from(length).ok()?;
        if self.buffer.len() < 5 + length {
            return None;
        }
        self.buffer.advance(5);
        Some(Ok(self.buffer.split_to(length).to_vec()))
    }
}

/// The failure a `grpc-status` in `headers` reports, if any.
fn failed(headers: &HeaderMap) -> Option<Status> {
    Status::from_header_map(headers).filter(|s| s.code() != Code::Ok)
}

/// grpc-gateway's HTTP status for a gRPC code.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// grpc-gateway's error body: `{"error":…,"message":…,"code":N}`.
fn failure(status: &Status) -> Answer {
    let message = serde_json::Value::from(status.message()).to_string();
    let body = format!(
        "{{\"error\":{message},\"message\":{message},\"code\":{}}}",
        status.code() as i32
    );
    respond(http_status(status.code()), "application/json", body)
}

/// A failure in the middle of a stream, as grpc-gateway writes it.
fn stream_error(status: &Status) -> String {
    let http = http_status(status.code());
    let error = serde_json::json!({
        "grpc_code": status.code() as i32,
        "http_code": http.as_u16(),
        "message": status.message(),
        "http_status": http.canonical_reason().unwrap_or(""),
    });
    format!("{{\"error\":{error}}}\n")
}

/// An answer of `status` with `body` as `content_type`.
pub(crate) fn respond(status: StatusCode, content_type: &'static str, body: String) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(body)).boxed());
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
}

fn plain(status: StatusCode, body: &'static str) -> Answer {
    respond(status, "text/plain; charset=utf-8", body.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Route {
        *ROUTES.iter().find(|r| r.path == path).unwrap()
    }

    #[test]
    fn requests_take_the_protos_names_or_json_names_and_strings_for_64_bits() {
        let range = route("/v3/kv/range");
        let frames = requests(
            range,
            br#"{"key":"Zm9v","keys_only":true,"countOnly":true,"revision":"7"}"#,
        )
        .unwrap();
        let mut messages = Messages::default();
        messages.push(&frames);
        let request =
            pb::RangeRequest::decode(messages.next().unwrap().unwrap().as_slice()).unwrap();
        assert_eq!(request.key, b"foo");
        assert!(request.keys_only && request.count_only);
        assert_eq!(request.revision, 7);
        assert!(messages.next().is_none());
        // An empty body is an empty request.
        assert_eq!(requests(range, b"").unwrap().as_ref(), &[0, 0, 0, 0, 0]);
        assert!(requests(range, b"{\"key\":5}").is_err());
        assert!(requests(range, b"not json").is_err());
    }

    #[test]
    fn a_stream_takes_a_sequence_of_requests() {
        let watch = route("/v3/watch");
        let body = br#"{"create_request":{"key":"YQ=="}} {"progress_request":{}}"#;
        let mut messages = Messages::default();
        messages.push(&requests(watch, body).unwrap());
        assert_eq!(messages.by_ref().count(), 2);
        assert!(requests(watch, b"{} {").is_err());
    }

    #[test]
    fn answers_are_written_with_the_protos_names_and_defaults_left_out() {
        let answer = pb::RangeResponse {
            header: Some(pb::ResponseHeader {
                cluster_id: 1,
                revision: 9,
                ..Default::default()
            }),
            kvs: vec![crate::proto::mvccpb::KeyValue {
                key: b"foo".to_vec(),
                mod_revision: 9,
                ..Default::default()
            }],
            count: 1,
            more: false,
        };
        let json = (route("/v3/kv/range").encode)(&answer.encode_to_vec()).unwrap();
        assert_eq!(
            json,
            r#"{"header":{"cluster_id":"1","revision":"9"},"kvs":[{"key":"Zm9v","mod_revision":"9"}],"count":"1"}"#
        );
        let status = pb::StatusResponse {
            db_size: 5,
            ..Default::default()
        };
        let json = (route("/v3/maintenance/status").encode)(&status.encode_to_vec()).unwrap();
        assert_eq!(json, r#"{"dbSize":"5"}"#);
    }

    #[test]
    fn messages_are_split_however_the_frames_cut_them() {
        let mut bytes = Vec::new();
        for message in [&b"ab"[..], b"", b"cde"] {
            bytes.push(0);
            bytes.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
            bytes.extend_from_slice(message);
        }
        for cut in 0..bytes.len() {
            let mut messages = Messages::default();
            messages.push(&bytes[..cut]);
            let mut got: Vec<Vec<u8>> = messages.by_ref().map(Result::unwrap).collect();
            messages.push(&bytes[cut..]);
            got.extend(messages.by_ref().map(Result::unwrap));
            assert_eq!(
                got,
                [b"ab".to_vec(), Vec::new(), b"cde".to_vec()],
                "cut at {cut}"
            );
        }
        let mut compressed = Messages::default();
        compressed.push(&[1, 0, 0, 0, 0]);
        assert!(compressed.next().unwrap().is_err());
    }

    #[test]
    fn failures_carry_grpc_gateways_status_and_body() {
        let answer = failure(&Status::out_of_range(
            "etcdserver: mvcc: required revision is a future revision",
        ));
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        let line = stream_error(&Status::unavailable("etcdserver: no leader"));
        assert_eq!(
            line,
            "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"http_status\":\"Service Unavailable\",\"message\":\"etcdserver: no leader\"}}\n"
        );
    }
}
