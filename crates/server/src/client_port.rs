//! The client port: the HTTP/2 connections etcd clients open.
//!
//! The KV calls (Range, Put, DeleteRange, Txn, Compact) carry almost all of a busy
//! cluster's requests, one message each way. They are served here, inside the connection's
//! own task: the request is read and decoded, the KV service answers it, and the answer is
//! framed and queued on its stream, with no task per call. hyper (under tonic) spawns a
//! task per stream, which wakes the connection's task for every answer, and tonic adds a
//! streaming decoder and boxed bodies per call: a fifth of a member's CPU under 256
//! clients, by perf (issue 8).
//!
//! A connection that does not open with HTTP/2's preface is HTTP/1.1 ([`crate::http_api`]:
//! `/health`, `/metrics`, …), as etcd serves both on one port. Over TLS (an `https`
//! client URL), ALPN says which (`h2` or `http/1.1`), and the first bytes when the client
//! offered none. A request over HTTP/2 that is not gRPC (`curl --http2 …/health`) goes to
//! the same HTTP API, as etcd routes by content type.
//!
//! Every other call (Watch, the Lease calls, Maintenance, Cluster, Lock, Election, Health),
//! and KV calls this path does not take (compressed, or not plain `application/grpc`), go
//! to tonic's router, each in a task of its own as hyper would run it: their behaviour is
//! tonic's.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use http_body::{Body, Frame};
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::codegen::Service;
use tonic::service::Routes;
use tonic::Status;

use crate::api::kv::KvService;
use crate::api::Credentials;
use crate::http_api::HttpApi;
use crate::metrics::CallCounters;
use crate::proto::etcdserverpb as pb;
use crate::tls::{self, ClientCertificate, TlsServer};

/// The gRPC prefix of a message: a compression flag byte, then its length (big endian).
const PREFIX: usize = 5;

/// What serves a member's client port.
#[derive(Clone, Debug)]
pub struct ClientPort {
    /// The KV calls served on the connection's task.
    kv: Arc<KvService>,
    /// Every service, for the calls handed to tonic.
    routes: Routes,
    /// The largest gRPC message accepted (`--max-request-bytes` and gRPC's margin).
    max_message: usize,
    /// HTTP/1.1 requests.
    http: Arc<HttpApi>,
    /// The metrics of the KV calls, by [`KvCall`].
    kv_calls: Vec<Arc<CallCounters>>,
}

impl ClientPort {
    /// A port serving `kv` on connections' tasks, everything in `routes` through tonic,
    /// and HTTP/1.1 through `http` (whose metrics count the calls).
    pub fn new(kv: KvService, routes: Routes, max_message: usize, http: Arc<HttpApi>) -> Self {
        let kv_calls = KvCall::PATHS
            .iter()
            .map(|path| http.metrics.call(path))
            .collect();
        ClientPort {
            kv: Arc::new(kv),
            routes,
            max_message,
            http,
            kv_calls,
        }
    }
}

/// The KV calls served on the connection's task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KvCall {
    Range,
    Put,
    DeleteRange,
    Txn,
    Compact,
}

impl KvCall {
    /// Their paths, in the order of the variants.
    const PATHS: [&'static str; 5] = [
        "/etcdserverpb.KV/Range",
        "/etcdserverpb.KV/Put",
        "/etcdserverpb.KV/DeleteRange",
        "/etcdserverpb.KV/Txn",
        "/etcdserverpb.KV/Compact",
    ];

    /// The call `request` makes, if this path serves it.
    fn of<B>(request: &Request<B>) -> Option<KvCall> {
        if request.method() != Method::POST || !plain_grpc(request.headers()) {
            return None;
        }
        match request.uri().path() {
            "/etcdserverpb.KV/Range" => Some(KvCall::Range),
            "/etcdserverpb.KV/Put" => Some(KvCall::Put),
            "/etcdserverpb.KV/DeleteRange" => Some(KvCall::DeleteRange),
            "/etcdserverpb.KV/Txn" => Some(KvCall::Txn),
            "/etcdserverpb.KV/Compact" => Some(KvCall::Compact),
            _ => None,
        }
    }
}

/// Whether a request over HTTP/2 is gRPC (to the services) rather than HTTP (to the
/// HTTP API): etcd tells them by the content type alone.
fn is_grpc(headers: &HeaderMap) -> bool {
    let content_type = headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes);
    content_type.is_some_and(|t| t.windows(16).any(|w| w == b"application/grpc"))
}

/// gRPC with protobuf messages and no compression.
fn plain_grpc(headers: &HeaderMap) -> bool {
    let grpc = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t == "application/grpc"
                || t.starts_with("application/grpc+proto")
                || t.starts_with("application/grpc;")
        });
    let identity = headers
        .get("grpc-encoding")
        .is_none_or(|e| e.as_bytes() == b"identity");
    grpc && identity
}

/// HTTP/2 settings: hyper's defaults, which tonic served this port with before.
fn http2() -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 20)
        .max_frame_size(16 << 10)
        .max_header_list_size(16 << 10)
        .max_send_buffer_size(400 << 10)
        .max_local_error_reset_streams(Some(1024));
    builder
}

/// Serves `listener` (over TLS with `tls`) until `stop` turns true (or its sender is
/// gone), then lets open connections finish their calls (a GOAWAY tells clients to go
/// elsewhere). Dropping the future closes them all.
pub async fn serve(
    listener: TcpListener,
    port: ClientPort,
    tls: Option<Arc<TlsServer>>,
    stop: watch::Receiver<bool>,
) {
    let port = Arc::new(port);
    accept_until_stopped(listener, stop, "client port", |tcp, stop| {
        port.clone().accepted(tcp, tls.clone(), stop)
    })
    .await;
}

/// Accepts connections on `listener` and serves each in a task of its own (`serve`),
/// until `stop` turns true (or its sender is gone); then waits for the connections,
/// which `serve` is to let finish once it sees `stop`.
pub async fn accept_until_stopped<F>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    port_name: &str,
    serve: impl Fn(TcpStream, watch::Receiver<bool>) -> F,
) where
    F: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    let each_connection = stop.clone();
    loop {
        tokio::select! {
            _ = async { stop.wait_for(|s| *s).await.is_ok() } => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    connections.spawn(serve(tcp, each_connection.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("{port_name}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Reads the client's first bytes: whether they are HTTP/2's preface, and the stream with
/// them put back, for whichever protocol serves it to read again (None: it closed first,
/// or sent one byte and no second in time).
async fn opens_with_http2<S: AsyncRead + Unpin>(mut stream: S) -> Option<(bool, Prefixed<S>)> {
    let mut first = [0u8; 2];
    let mut n = stream.read(&mut first).await.ok()?;
    if n == 1 && first[0] == PREFACE[0] {
        // The next byte normally comes with the first; a client that sends one and stops
        // is dropped after a while.
        let next = tokio::time::timeout(FIRST_BYTES_WAIT, stream.read(&mut first[1..]));
        n += next.await.ok()?.ok()?;
    }
    if n == 0 || (n == 1 && first[0] == PREFACE[0]) {
        return None;
    }
    let http2 = first[..n] == *PREFACE;
    Some((http2, Prefixed::new(&first[..n], stream)))
}

/// How long a connection may take to send its first two bytes once it sent one.
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(10);

/// A KV call, run on its connection's task.
type Call = Pin<Box<dyn Future<Output = ()> + Send>>;

/// HTTP/2's connection preface begins so; no HTTP/1.1 method does (POST, PUT and PATCH
/// part from it at the second byte).
const PREFACE: &[u8] = b"PR";

impl ClientPort {
    /// Serves a new connection as HTTP/2 (gRPC) or HTTP/1.1: by ALPN over TLS, by its
    /// first bytes otherwise.
    async fn accepted(
        self: Arc<Self>,
        tcp: TcpStream,
        tls: Option<Arc<TlsServer>>,
        stop: watch::Receiver<bool>,
    ) {
        // Small answers must not wait for the client's delayed ACK (Nagle).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("client port: TCP_NODELAY: {e}");
        }
        let Some(tls) = tls else {
            return self.sniffed(tcp, None, stop).await;
        };
        let Some(stream) = tls.admit(tcp, "client port").await else {
            return;
        };
        let certificate = tls::client_certificate(&stream);
        match tls::negotiated(&stream) {
            Some(b"h2") => {
                let stream = Prefixed::new(&[], stream);
                self.connection(stream, certificate, stop).await;
            }
            Some(_) => {
                self.http
                    .clone()
                    .connection(stream, certificate, stop)
                    .await
            }
            None => self.sniffed(stream, certificate, stop).await,
        }
    }

    /// Serves a connection as HTTP/2 or HTTP/1.1 by its first bytes.
    async fn sniffed<S>(
        self: Arc<Self>,
        stream: S,
        certificate: Option<ClientCertificate>,
        stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match opens_with_http2(stream).await {
            Some((true, stream)) => self.connection(stream, certificate, stop).await,
            Some((false, stream)) => {
                let http = self.http.clone();
                http.connection(stream, certificate, stop).await;
            }
            None => {}
        }
    }

    /// Serves one HTTP/2 connection until the client closes it, or it has drained after
    /// `stop`. Every request carries the client's verified `certificate`, if any.
    async fn connection<S>(
        self: Arc<Self>,
        stream: Prefixed<S>,
        certificate: Option<ClientCertificate>,
        mut stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut connection = match http2().handshake::<_, Bytes>(stream).await {
            Ok(connection) => connection,
            Err(e) => {
                tracing::debug!("client port: HTTP/2 handshake failed: {e}");
                return;
            }
        };
        let mut stopping = pin!(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        let mut draining = false;
        let mut calls: FuturesUnordered<Call> = FuturesUnordered::new();
        let mut bridged = JoinSet::new();
        let closed = poll_fn(|cx| loop {
            if !draining && stopping.as_mut().poll(cx).is_ready() {
                connection.graceful_shutdown();
                draining = true;
            }
            // Take every request that has arrived, then run the calls: the answers they
            // queue go out together, in one write, when the connection is next polled.
            loop {
                match connection.poll_accept(cx) {
                    Poll::Ready(Some(Ok((mut request, respond)))) => {
                        if let Some(certificate) = &certificate {
                            request.extensions_mut().insert(certificate.clone());
                        }
                        match KvCall::of(&request) {
                            Some(call) => {
                                calls.push(Box::pin(self.clone().unary(call, request, respond)));
                            }
                            None if is_grpc(request.headers()) => {
                                let counters = self.http.metrics.call(request.uri().path());
                                let routes = self.routes.clone();
                                bridged.spawn(async move {
                                    counters.started();
                                    counters.handled(bridge(routes, request, respond).await);
                                });
                            }
                            None => {
                                bridged.spawn(http_over_h2(self.http.clone(), request, respond));
                            }
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                    Poll::Ready(None) => return Poll::Ready(Ok(())),
                    Poll::Pending => break,
                }
            }
            while let Poll::Ready(Some(_)) = bridged.poll_join_next(cx) {}
            let mut answered = false;
            while let Poll::Ready(Some(())) = calls.poll_next_unpin(cx) {
                answered = true;
            }
            if !answered {
                return Poll::Pending;
            }
        })
        .await;
        if let Err(e) = closed {
            tracing::debug!("client port: connection failed: {e}");
        }
    }

    /// Reads a KV call's request, answers it, and queues the answer on its stream.
    async fn unary(
        self: Arc<Self>,
        call: KvCall,
        request: Request<RecvStream>,
        respond: SendResponse<Bytes>,
    ) {
        let deadline = grpc_timeout(request.headers());
        let counters = &self.kv_calls[call as usize];
        counters.started();
        let certificate = request.extensions().get::<ClientCertificate>();
        let credentials = Credentials::of(request.headers(), certificate);
        let answer = self.answer(call, request.into_body(), credentials);
        let answer = match deadline {
            // The client gave up by then; so does the call (gRPC's deadline propagation).
            Some(deadline) => tokio::time::timeout(deadline, answer)
                .await
                .unwrap_or_else(|_| Err(Status::deadline_exceeded("context deadline exceeded"))),
            None => answer.await,
        };
        counters.handled(
            answer
                .as_ref()
                .map_or_else(Status::code, |_| tonic::Code::Ok),
        );
        if let Err(e) = send_answer(respond, answer) {
            tracing::debug!("client port: answer not sent: {e}");
        }
    }

    /// The framed answer to a KV call with `credentials`. As in gRPC, a message above
    /// the size limit is refused before anything else, credentials included.
    async fn answer(
        &self,
        call: KvCall,
        body: RecvStream,
        credentials: Credentials,
    ) -> Result<Bytes, Status> {
        let message = read_message(body, self.max_message).await?;
        let kv = &self.kv;
        let who = &credentials;
        match call {
            KvCall::Range => {
                let request: pb::RangeRequest = decode(message)?;
                if request.range_end.is_empty() {
                    return frame(&kv.range_answer(request, who).await?);
                }
                let kv = kv.clone();
                off_connection(async move { frame(&kv.range_answer(request, &credentials).await?) })
                    .await
            }
            KvCall::Put => frame(&kv.put_answer(decode(message)?, who).await?),
            KvCall::DeleteRange => frame(&kv.delete_answer(decode(message)?, who).await?),
            KvCall::Txn => {
                let request: pb::TxnRequest = decode(message)?;
                if !reads_ranges(&request) {
                    return frame(&kv.txn_answer(request, who).await?);
                }
                let kv = kv.clone();
                off_connection(async move { frame(&kv.txn_answer(request, &credentials).await?) })
                    .await
            }
            KvCall::Compact => frame(&kv.compact_answer(decode(message)?, who).await?),
        }
    }
}

/// Runs a call that may read many keys in a task of its own. Evaluating and encoding a
/// range over many keys can take long, and the connection's other calls, its watch
/// events and its keep-alive pings (etcd's clients put everything on one connection)
/// must not wait behind it. Single-key reads and writes stay on the connection's task.
async fn off_connection<F>(work: F) -> Result<Bytes, Status>
where
    F: Future<Output = Result<Bytes, Status>> + Send + 'static,
{
    tokio::spawn(work)
        .await
        .unwrap_or_else(|e| Err(Status::internal(format!("the call failed: {e}"))))
}

/// Whether a transaction reads a range of keys (not a single key), at any depth.
fn reads_ranges(txn: &pb::TxnRequest) -> bool {
    use pb::request_op::Request as Op;
    txn.success
        .iter()
        .chain(&txn.failure)
        .any(|op| match &op.request {
            Some(Op::RequestRange(range)) => !range.range_end.is_empty(),
            Some(Op::RequestTxn(nested)) => reads_ranges(nested),
            _ => false,
        })
}

/// The one message of a unary request, without its prefix.
async fn read_message(mut body: RecvStream, max: usize) -> Result<Bytes, Status> {
    let mut message = UnaryMessage::new(max);
    while let Some(chunk) = poll_fn(|cx| body.poll_data(cx)).await {
        let chunk = chunk.map_err(|e| Status::internal(format!("h2 protocol error: {e}")))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        message.push(chunk)?;
    }
    message.finish()
}

/// A unary request's body as its chunks arrive. A message above the limit is refused as
/// soon as its prefix is in, before its bytes are buffered.
#[derive(Debug)]
struct UnaryMessage {
    max: usize,
    /// The body so far, while it is one chunk: usually the whole message is, and it is
    /// kept as it came, without a copy.
    single: Option<Bytes>,
    /// The body so far, once it is more than one chunk.
    joined: BytesMut,
}

impl UnaryMessage {
    fn new(max: usize) -> UnaryMessage {
        UnaryMessage {
            max,
            single: None,
            joined: BytesMut::new(),
        }
    }

    fn push(&mut self, chunk: Bytes) -> Result<(), Status> {
        match self.single.take() {
            None if self.joined.is_empty() => self.single = Some(chunk),
            None => self.joined.extend_from_slice(&chunk),
            Some(earlier) => {
                self.joined.extend_from_slice(&earlier);
                self.joined.extend_from_slice(&chunk);
            }
        }
        let so_far = self.single.as_deref().unwrap_or(&self.joined);
        match message_length(so_far, self.max)? {
            Some(length) if so_far.len() > PREFIX + length => Err(Status::internal(
                "protocol error: a unary call sent more than one message",
            )),
            _ => Ok(()),
        }
    }

    /// The message, once the body has ended.
    fn finish(self) -> Result<Bytes, Status> {
        let mut whole = self.single.unwrap_or_else(|| self.joined.freeze());
        match message_length(&whole, self.max)? {
            None if whole.is_empty() => Err(Status::internal("Missing request message.")),
            Some(length) if whole.len() == PREFIX + length => {
                whole.advance(PREFIX);
                Ok(whole)
            }
            _ => Err(Status::internal("Unexpected EOF decoding stream.")),
        }
    }
}

/// The length a message's prefix announces, once the prefix is all there. The messages
/// of this path are never compressed (`plain_grpc`), so the flag must be 0.
fn message_length(bytes: &[u8], max: usize) -> Result<Option<usize>, Status> {
    let Some(prefix) = bytes.get(..PREFIX) else {
        return Ok(None);
    };
    match prefix[0] {
        0 => {}
        1 => {
            return Err(Status::internal(
                "protocol error: received message with compressed-flag but no grpc-encoding was specified",
            ))
        }
        flag => {
            return Err(Status::internal(format!(
                "protocol error: received message with invalid compression flag: {flag} (valid flags are 0 and 1), while sending request"
            )))
        }
    }
    let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if length > max {
        return Err(Status::out_of_range(format!(
            "Error, decoded message length too large: found {length} bytes, the limit is: {max} bytes"
        )));
    }
    Ok(Some(length))
}

fn decode<M: Message + Default>(message: Bytes) -> Result<M, Status> {
    M::decode(message).map_err(|e| Status::internal(e.to_string()))
}

/// `message` with its gRPC prefix, as one buffer.
fn frame(message: &impl Message) -> Result<Bytes, Status> {
    let length = message.encoded_len();
    let prefix_length = u32::try_from(length)
        .map_err(|_| Status::resource_exhausted("the answer is larger than gRPC allows"))?;
    let mut buf = BytesMut::with_capacity(PREFIX + length);
    buf.put_u8(0);
    buf.put_u32(prefix_length);
    message
        .encode(&mut buf)
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(buf.freeze())
}

/// Sends a unary answer: headers, the message and an OK status in the trailers, or a
/// failed status alone ("trailers-only").
fn send_answer(
    mut respond: SendResponse<Bytes>,
    answer: Result<Bytes, Status>,
) -> Result<(), h2::Error> {
    let message = match answer {
        Ok(message) => message,
        Err(status) => return respond.send_response(status.into_http(), true).map(drop),
    };
    let mut head = Response::new(());
    head.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    let mut stream = respond.send_response(head, false)?;
    stream.send_data(message, false)?;
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    stream.send_trailers(trailers)
}

/// The deadline a client set with `grpc-timeout` (gRPC over HTTP/2: at most 8 digits and
/// a unit), if it set one that parses.
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Answers an HTTP request that came over HTTP/2 (not gRPC) as the HTTP API answers it
/// over HTTP/1.1.
async fn http_over_h2(
    http: Arc<HttpApi>,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let request = request.map(|stream| IncomingBody {
        stream,
        data_done: false,
    });
    let (head, body) = http.answer(request).await.into_parts();
    let end = body.is_end_stream();
    let sent = match respond.send_response(Response::from_parts(head, ()), end) {
        Ok(stream) if !end => pump(tonic::body::Body::new(body), stream).await.map(drop),
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        tracing::debug!("client port: HTTP answer over HTTP/2 not sent: {e}");
    }
}

/// Runs one call through tonic's router and streams its answer back; returns how it
/// ended (a client that went away: cancelled).
async fn bridge(
    mut routes: Routes,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) -> tonic::Code {
    let deadline = grpc_timeout(request.headers());
    let request = request.map(|stream| IncomingBody {
        stream,
        data_done: false,
    });
    let Ok(()) = poll_fn(|cx| Service::<Request<IncomingBody>>::poll_ready(&mut routes, cx)).await;
    // A client that gives up (resets the stream, or passes its deadline) drops the call,
    // as hyper and tonic's server do: a Lock or Campaign waiting for its turn must stop
    // waiting, or it would take the lock for a caller that is gone.
    let outcome = tokio::select! {
        Ok(response) = routes.call(request) => Ok(response),
        _ = poll_fn(|cx| respond.poll_reset(cx)) => return tonic::Code::Cancelled,
        () = expiry(deadline) => Err(Status::deadline_exceeded("context deadline exceeded")),
    };
    let response = match outcome {
        Ok(response) => response,
        Err(status) => {
            let code = status.code();
            let _ = respond.send_response(status.into_http(), true);
            return code;
        }
    };
    let (head, body) = response.into_parts();
    let end = body.is_end_stream();
    // A failure comes "trailers-only": its status in the head.
    let head_code = grpc_status(&head.headers);
    let sent = match respond.send_response(Response::from_parts(head, ()), end) {
        Ok(stream) if !end => pump(body, stream).await,
        Ok(_) => Ok(head_code),
        Err(e) => Err(e),
    };
    match sent {
        Ok(code) => code.unwrap_or(tonic::Code::Unknown),
        Err(e) => {
            tracing::debug!("client port: stream ended early: {e}");
            tonic::Code::Cancelled
        }
    }
}

/// The `grpc-status` in `headers`, if any.
fn grpc_status(headers: &HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(tonic::Code::from_i32(value.parse().ok()?))
}

/// Ready once `deadline` (if any) has passed.
async fn expiry(deadline: Option<Duration>) {
    match deadline {
        Some(deadline) => tokio::time::sleep(deadline).await,
        None => std::future::pending().await,
    }
}

/// Sends `body`'s frames on `stream` as the client's flow control allows, until the body
/// ends or the client resets the stream (a cancelled watch, say); returns the status its
/// trailers carried.
async fn pump(
    body: tonic::body::Body,
    mut stream: SendStream<Bytes>,
) -> Result<Option<tonic::Code>, h2::Error> {
    let mut body = pin!(body);
    loop {
        // Hold the next frame until the client has room for some of it, so a slow reader
        // holds back the body instead of growing a buffer here (hyper does the same).
        stream.reserve_capacity(1);
        if stream.capacity() == 0 {
            poll_fn(|cx| poll_room(&mut stream, cx)).await?;
        }
        let next = poll_fn(|cx| {
            if let Poll::Ready(reset) = stream.poll_reset(cx) {
                return Poll::Ready(Err(reset.map_or_else(|e| e, h2::Error::from)));
            }
            body.as_mut().poll_frame(cx).map(Ok)
        })
        .await?;
        let frame = match next {
            None => return stream.send_data(Bytes::new(), true).map(|()| None),
            Some(Ok(frame)) => frame,
            Some(Err(status)) => {
                tracing::debug!("client port: answer body failed: {status}");
                stream.send_reset(h2::Reason::INTERNAL_ERROR);
                return Ok(Some(status.code()));
            }
        };
        match frame.into_data() {
            Ok(data) => stream.send_data(data, false)?,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    let code = grpc_status(&trailers);
                    return stream.send_trailers(trailers).map(|()| code);
                }
            }
        }
    }
}

/// Ready once the client's flow-control window gives `stream` room to send.
fn poll_room(stream: &mut SendStream<Bytes>, cx: &mut Context<'_>) -> Poll<Result<(), h2::Error>> {
    loop {
        match ready!(stream.poll_capacity(cx)) {
            Some(Ok(0)) => {}
            Some(Ok(_)) => return Poll::Ready(Ok(())),
            Some(Err(e)) => return Poll::Ready(Err(e)),
            None => return Poll::Ready(Err(h2::Error::from(h2::Reason::CANCEL))),
        }
    }
}

/// A request's body as tonic reads it: data, then trailers.
struct IncomingBody {
    stream: RecvStream,
    data_done: bool,
}

impl Body for IncomingBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    // The window reopens as tonic takes the bytes, as with hyper.
                    let _ = self.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => self.data_done = true,
            }
        }
        match ready!(self.stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }
}

/// A stream whose first bytes, already read, are read again.
#[derive(Debug)]
struct Prefixed<S> {
    first: Bytes,
    stream: S,
}

impl<S> Prefixed<S> {
    fn new(first: &[u8], stream: S) -> Prefixed<S> {
        Prefixed {
            first: Bytes::copy_from_slice(first),
            stream,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.first.is_empty() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let n = self.first.len().min(buf.remaining());
        buf.put_slice(&self.first.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::lease::LeaseService;
    use crate::node::{Applied, Input, InputQueue};
    use crate::proto::etcdserverpb as pb;
    use crate::proto::etcdserverpb::{kv_server::KvServer, lease_server::LeaseServer};
    use crate::proto::synodpb::command::Op;
    use std::net::SocketAddr;

    /// The limit of the port under test, with gRPC's margin.
    const MAX_MESSAGE: usize = 1024;

    /// A client port in front of a core that is only a queue; returns its address, the
    /// queue, and the switch that stops it.
    async fn port() -> (
        SocketAddr,
        InputQueue,
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ) {
        let (handle, core) = crate::api::test_handle(512);
        let routes = Routes::new(KvServer::new(KvService(handle.clone())))
            .add_service(LeaseServer::new(LeaseService(handle.clone())))
            .prepare();
        let http = Arc::new(HttpApi {
            handle: handle.clone(),
            metrics: Arc::default(),
            etcd_version: "3.5.13".into(),
            gateway: crate::gateway::Gateway::new(routes.clone(), MAX_MESSAGE),
        });
        let port = ClientPort::new(KvService(handle), routes, MAX_MESSAGE, http);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let served = tokio::spawn(serve(listener, port, None, stopped));
        (address, core, stop, served)
    }

    /// Answers every put with revision 7, as many as come.
    fn core_answering_puts(mut core: InputQueue) {
        tokio::spawn(async move {
            while let Some(input) = core.recv().await {
                let Input::Propose(proposal, reply) = input else {
                    continue;
                };
                if let Some(Op::Put(_)) = proposal.op() {
                    let header = pb::ResponseHeader {
                        revision: 7,
                        ..Default::default()
                    };
                    let answer = pb::PutResponse {
                        header: Some(header),
                        prev_kv: None,
                    };
                    let _ = reply.send(Ok(Applied::Put(answer)));
                }
            }
        });
    }

    /// One call on a fresh connection: its status and the bytes of its answer.
    async fn call(
        address: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (Status, Bytes) {
        let tcp = TcpStream::connect(address).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let mut request = Request::post(format!("http://{address}{path}"))
            .header(CONTENT_TYPE, "application/grpc");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (response, mut send) = client
            .send_request(request.body(()).unwrap(), false)
            .unwrap();
        send.send_data(Bytes::from(body), true).unwrap();
        let (head, mut answer) = response.await.unwrap().into_parts();
        if let Some(status) = Status::from_header_map(&head.headers) {
            return (status, Bytes::new());
        }
        let mut bytes = BytesMut::new();
        while let Some(chunk) = answer.data().await {
            let chunk = chunk.unwrap();
            let _ = answer.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        let trailers = answer.trailers().await.unwrap().unwrap_or_default();
        (Status::from_header_map(&trailers).unwrap(), bytes.freeze())
    }

    fn put_request() -> Vec<u8> {
        let put = pb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        frame(&put).unwrap().to_vec()
    }

    #[tokio::test]
    async fn a_put_is_proposed_and_its_answer_framed() {
        let (address, core, _stop, _) = port().await;
        core_answering_puts(core);
        let (status, body) = call(address, "/etcdserverpb.KV/Put", &[], put_request()).await;
        assert_eq!(status.code(), tonic::Code::Ok, "{status:?}");
        let length = message_length(&body, MAX_MESSAGE).unwrap().unwrap();
        assert_eq!(body.len(), PREFIX + length);
        let answer: pb::PutResponse = decode(body.slice(PREFIX..)).unwrap();
        assert_eq!(answer.header.unwrap().revision, 7);
    }

    #[tokio::test]
    async fn malformed_requests_are_refused_before_they_reach_the_core() {
        let (address, mut core, _stop, _) = port().await;
        let put = put_request();
        let mut two = put.clone();
        two.extend_from_slice(&put);
        let cases: Vec<(&str, Vec<u8>, tonic::Code)> = vec![
            ("no message", Vec::new(), tonic::Code::Internal),
            ("a cut prefix", vec![0, 0], tonic::Code::Internal),
            (
                "a cut message",
                put[..put.len() - 1].to_vec(),
                tonic::Code::Internal,
            ),
            ("two messages", two, tonic::Code::Internal),
            (
                "not protobuf",
                prefixed(0, 4, &[0xff; 4]),
                tonic::Code::Internal,
            ),
            (
                "a compressed flag",
                prefixed(1, 3, b"abc"),
                tonic::Code::Internal,
            ),
            ("a bad flag", prefixed(9, 3, b"abc"), tonic::Code::Internal),
            // Refused from its prefix: the bytes announced are never sent.
            (
                "above the limit",
                prefixed(0, 1 << 30, b""),
                tonic::Code::OutOfRange,
            ),
        ];
        for (case, body, code) in cases {
            let (status, _) = call(address, "/etcdserverpb.KV/Put", &[], body).await;
            assert_eq!(status.code(), code, "{case}: {status:?}");
        }
        // A message within gRPC's limit but above --max-request-bytes: etcd's answer.
        let big = pb::PutRequest {
            key: b"k".to_vec(),
            value: vec![b'v'; 600],
            ..Default::default()
        };
        let (status, _) = call(
            address,
            "/etcdserverpb.KV/Put",
            &[],
            frame(&big).unwrap().to_vec(),
        )
        .await;
        assert_eq!(status.message(), "etcdserver: request is too large");
        assert!(
            core.try_recv().is_err(),
            "a malformed request reached the core"
        );
    }

    /// Credentials are looked at only once the message is read: a message above gRPC's
    /// limit is refused for its size whatever its token says (as gRPC refuses it before
    /// any handler); one within it with an unknown token gets etcd's answer. Neither
    /// reaches the core.
    #[tokio::test]
    async fn a_message_above_the_limit_is_refused_before_its_token_is_looked_at() {
        let (address, mut core, _stop, _) = port().await;
        let bogus = [("token", "bogus.1")];
        let huge = prefixed(0, 1 << 30, b"");
        let (status, _) = call(address, "/etcdserverpb.KV/Put", &bogus, huge).await;
        assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
        let (status, _) = call(address, "/etcdserverpb.KV/Put", &bogus, put_request()).await;
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        assert_eq!(status.message(), "etcdserver: invalid auth token");
        assert!(
            core.try_recv().is_err(),
            "a refused request reached the core"
        );
    }

    #[tokio::test]
    async fn a_call_past_the_client_deadline_fails_with_deadline_exceeded() {
        // Nobody answers the queue: only the deadline ends the call.
        let (address, _core, _stop, _) = port().await;
        let started = std::time::Instant::now();
        let (status, _) = call(
            address,
            "/etcdserverpb.KV/Put",
            &[("grpc-timeout", "100m")],
            put_request(),
        )
        .await;
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn other_calls_get_tonic_answers() {
        let (address, _core, _stop, _) = port().await;
        let (status, _) = call(address, "/etcdserverpb.Nope/Call", &[], put_request()).await;
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
        // A compressed KV call is tonic's to refuse (no compression is enabled).
        let (status, _) = call(
            address,
            "/etcdserverpb.KV/Put",
            &[("grpc-encoding", "gzip")],
            put_request(),
        )
        .await;
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    }

    #[tokio::test]
    async fn a_range_over_many_keys_is_answered_off_the_connection_task() {
        let (address, _core, _stop, _) = port().await;
        let range = pb::RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            serializable: true,
            ..Default::default()
        };
        let body = frame(&range).unwrap().to_vec();
        let (status, answer) = call(address, "/etcdserverpb.KV/Range", &[], body).await;
        assert_eq!(status.code(), tonic::Code::Ok, "{status:?}");
        let answer: pb::RangeResponse = decode(answer.slice(PREFIX..)).unwrap();
        assert_eq!(answer.count, 0);
        let read = pb::RequestOp {
            request: Some(pb::request_op::Request::RequestRange(range)),
        };
        let nested = pb::TxnRequest {
            success: vec![read],
            ..Default::default()
        };
        let txn = pb::TxnRequest {
            failure: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestTxn(nested)),
            }],
            ..Default::default()
        };
        assert!(reads_ranges(&txn));
        assert!(!reads_ranges(&pb::TxnRequest::default()));
    }

    fn lease_grant() -> Vec<u8> {
        let grant = pb::LeaseGrantRequest { ttl: 60, id: 0 };
        frame(&grant).unwrap().to_vec()
    }

    #[tokio::test]
    async fn a_bridged_call_past_the_client_deadline_fails_with_deadline_exceeded() {
        let (address, _core, _stop, _) = port().await;
        let deadline = [("grpc-timeout", "100m")];
        let path = "/etcdserverpb.Lease/LeaseGrant";
        let (status, _) = call(address, path, &deadline, lease_grant()).await;
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    }

    #[tokio::test]
    async fn a_bridged_call_the_client_resets_is_dropped() {
        let (address, mut core, _stop, _) = port().await;
        let tcp = TcpStream::connect(address).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let request = Request::post(format!("http://{address}/etcdserverpb.Lease/LeaseGrant"))
            .header(CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap();
        let (_response, mut send) = client.send_request(request, false).unwrap();
        send.send_data(Bytes::from(lease_grant()), true).unwrap();
        let Some(Input::Propose(_, mut reply)) = core.recv().await else {
            panic!("the grant did not reach the core");
        };
        send.send_reset(h2::Reason::CANCEL);
        // The call (and the answer it waited for) is gone.
        tokio::time::timeout(Duration::from_secs(2), reply.closed())
            .await
            .expect("the call still waits for its answer");
    }

    /// One call with a hand-built header block, so that `:authority` can be anything a
    /// client sends (an `http::Uri` cannot hold `http://host:port`): the status and the
    /// message of its answer, or `Err` with the reason the stream was reset.
    async fn raw_call(
        address: SocketAddr,
        authority: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(Status, Bytes), h2::Reason> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        fn frame_header(length: usize, kind: u8, flags: u8, stream: u32) -> Vec<u8> {
            let mut bytes = u32::try_from(length).unwrap().to_be_bytes()[1..].to_vec();
            bytes.extend([kind, flags]);
            bytes.extend(stream.to_be_bytes());
            bytes
        }
        // HPACK "literal header field without indexing, new name", lengths < 127.
        let mut block = Vec::new();
        let fields = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ];
        for (name, value) in fields {
            block.push(0);
            for text in [name, value] {
                block.push(u8::try_from(text.len()).unwrap());
                block.extend_from_slice(text.as_bytes());
            }
        }
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame_header(0, 4, 0, 0)); // SETTINGS
        out.extend(frame_header(block.len(), 1, 0x4, 1)); // HEADERS, END_HEADERS
        out.extend(&block);
        out.extend(frame_header(body.len(), 0, 0x1, 1)); // DATA, END_STREAM
        out.extend(body);
        let mut tcp = TcpStream::connect(address).await.unwrap();
        tcp.write_all(&out).await.unwrap();
        let mut message = BytesMut::new();
        loop {
            let mut head = [0u8; 9];
            tcp.read_exact(&mut head).await.unwrap();
            let length =
                usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let (kind, flags) = (head[3], head[4]);
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0; length];
            tcp.read_exact(&mut payload).await.unwrap();
            match (kind, stream) {
                (4, 0) if flags & 0x1 == 0 => {
                    tcp.write_all(&frame_header(0, 4, 0x1, 0)).await.unwrap()
                }
                (3, 1) => {
                    let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
                    return Err(h2::Reason::from(code));
                }
                (0, 1) => message.extend_from_slice(&payload),
                _ => {}
            }
            // The trailers end the stream: the call is answered.
            if stream == 1 && flags & 0x1 != 0 {
                let message = message.freeze();
                let status = if message.is_empty() {
                    Status::unknown("no message")
                } else {
                    Status::ok("")
                };
                return Ok((status, message));
            }
        }
    }

    /// Answers every lease grant with lease 7.
    fn core_answering_grants(mut core: InputQueue) {
        tokio::spawn(async move {
            while let Some(input) = core.recv().await {
                let Input::Propose(proposal, reply) = input else {
                    continue;
                };
                if let Some(Op::LeaseGrant(r)) = proposal.op() {
                    let answer = pb::LeaseGrantResponse {
                        id: 7,
                        ttl: r.ttl,
                        ..Default::default()
                    };
                    let _ = reply.send(Ok(Applied::LeaseGrant(answer)));
                }
            }
        });
    }

    #[tokio::test]
    async fn any_authority_a_grpc_go_server_takes_is_taken_on_both_paths() {
        let (address, core, _stop, _) = port().await;
        core_answering_grants(core);
        let range = pb::RangeRequest {
            key: b"k".to_vec(),
            serializable: true,
            ..Default::default()
        };
        let range = frame(&range).unwrap();
        // What etcdctl 3.4 sends for a URL endpoint, what clientv3 3.5.0 sent, and a
        // plain host:port.
        let authorities = [
            format!("http://{address}"),
            format!("#initially=[http://{address}]"),
            address.to_string(),
        ];
        for authority in &authorities {
            let answered = raw_call(address, authority, "/etcdserverpb.KV/Range", &range).await;
            let (status, body) = answered.unwrap_or_else(|reason| {
                panic!("{authority}: the KV path reset the stream: {reason:?}")
            });
            assert_eq!(status.code(), tonic::Code::Ok, "{authority}");
            let answer: pb::RangeResponse = decode(body.slice(PREFIX..)).unwrap();
            assert_eq!(answer.count, 0, "{authority}");

            let path = "/etcdserverpb.Lease/LeaseGrant";
            let answered = raw_call(address, authority, path, &lease_grant()).await;
            let (status, body) = answered.unwrap_or_else(|reason| {
                panic!("{authority}: the tonic path reset the stream: {reason:?}")
            });
            assert_eq!(status.code(), tonic::Code::Ok, "{authority}");
            let answer: pb::LeaseGrantResponse = decode(body.slice(PREFIX..)).unwrap();
            assert_eq!((answer.id, answer.ttl), (7, 60), "{authority}");
        }
    }

    /// HTTP/2 by its preface, HTTP/1.1 by anything else, however the bytes are cut.
    #[tokio::test]
    async fn the_first_two_bytes_tell_http2_from_http1() {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let cases: [(Vec<&'static [u8]>, Option<bool>); 6] = [
            (vec![b"PRI * HTTP/2.0"], Some(true)),
            (vec![b"GET / HTTP/1.1"], Some(false)),
            (vec![b"P", b"OST /v3/kv/range"], Some(false)),
            (vec![b"P", b"RI * HTTP/2.0"], Some(true)),
            (vec![b"\x16\x03"], Some(false)),
            (vec![], None),
        ];
        for (sent, expected) in cases {
            let mut client = TcpStream::connect(address).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let parts = sent.clone();
            let writing = tokio::spawn(async move {
                for part in parts {
                    client.write_all(part).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                client.shutdown().await.unwrap();
                client
            });
            let sniffed = opens_with_http2(server).await.map(|(http2, _)| http2);
            assert_eq!(sniffed, expected, "{sent:?}");
            drop(writing.await.unwrap());
        }
    }

    #[tokio::test]
    async fn stopping_closes_idle_connections_and_the_listener() {
        let (address, core, stop, served) = port().await;
        core_answering_puts(core);
        // An open, idle connection does not hold the port open.
        let tcp = TcpStream::connect(address).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        let connection = tokio::spawn(connection);
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), served)
            .await
            .expect("the port stops")
            .unwrap();
        // The client was told to go away, and its connection closed (cleanly or with a
        // reset, depending on whether its last frames crossed the close).
        let _ = tokio::time::timeout(Duration::from_secs(2), connection)
            .await
            .expect("the connection closes");
        drop(client);
        assert!(
            TcpStream::connect(address).await.is_err(),
            "still listening"
        );
    }

    fn prefixed(flag: u8, length: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![flag];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    /// The message `body` yields when it arrives cut at `cuts`.
    fn read_in_chunks(body: &[u8], cuts: &[usize], max: usize) -> Result<Bytes, Status> {
        let mut message = UnaryMessage::new(max);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts.into_iter().chain([body.len()]) {
            message.push(Bytes::copy_from_slice(&body[start..cut]))?;
            start = cut;
        }
        message.finish()
    }

    proptest::proptest! {
        #[test]
        fn any_body_in_any_chunks_is_a_message_or_an_error(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            cuts in proptest::collection::vec(0usize..64, 0..6),
            max in 0usize..64,
        ) {
            if let Ok(message) = read_in_chunks(&body, &cuts, max) {
                proptest::prop_assert_eq!(&body[PREFIX..], &message[..]);
                proptest::prop_assert!(message.len() <= max);
            }
        }

        #[test]
        fn a_framed_message_reads_back_however_it_is_cut(
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            cuts in proptest::collection::vec(0usize..300, 0..6),
        ) {
            let put = crate::proto::etcdserverpb::PutRequest { value, ..Default::default() };
            let framed = frame(&put).unwrap();
            let message = read_in_chunks(&framed, &cuts, 1 << 10).unwrap();
            proptest::prop_assert_eq!(&framed[PREFIX..], &message[..]);
        }
    }

    #[test]
    fn a_prefix_announces_its_message_length_once_it_is_all_there() {
        assert_eq!(message_length(&[0, 0, 0], 100).unwrap(), None);
        assert_eq!(
            message_length(&prefixed(0, 7, b"abc"), 100).unwrap(),
            Some(7)
        );
        assert_eq!(
            message_length(&prefixed(0, 100, b""), 100).unwrap(),
            Some(100)
        );
    }

    #[test]
    fn a_message_above_the_limit_is_refused_from_its_prefix() {
        let refused = message_length(&prefixed(0, 101, b""), 100).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::OutOfRange);
        assert!(refused.message().contains("found 101 bytes"), "{refused:?}");
    }

    #[test]
    fn compressed_or_unknown_flags_are_protocol_errors() {
        for flag in [1, 2, 255] {
            let refused = message_length(&prefixed(flag, 3, b"abc"), 100).unwrap_err();
            assert_eq!(refused.code(), tonic::Code::Internal, "flag {flag}");
        }
    }

    #[test]
    fn a_framed_message_carries_its_length() {
        let message = crate::proto::etcdserverpb::PutRequest {
            key: b"k".to_vec(),
            value: b"value".to_vec(),
            ..Default::default()
        };
        let framed = frame(&message).unwrap();
        let length = message.encoded_len();
        assert_eq!(framed.len(), PREFIX + length);
        assert_eq!(message_length(&framed, 1 << 20).unwrap(), Some(length));
        let back: crate::proto::etcdserverpb::PutRequest = decode(framed.slice(PREFIX..)).unwrap();
        assert_eq!(back, message);
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_bad_ones_are_ignored() {
        let timeout = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-timeout", HeaderValue::from_str(value).unwrap());
            grpc_timeout(&headers)
        };
        assert_eq!(timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(timeout("10u"), Some(Duration::from_micros(10)));
        assert_eq!(timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "S", "5", "5s", "123456789S", "-5S", "5 S"] {
            assert_eq!(timeout(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn only_plain_grpc_kv_calls_take_the_inline_path() {
        let request = |path: &str, content_type: &str, encoding: Option<&str>| {
            let mut builder = Request::post(path).header(CONTENT_TYPE, content_type);
            if let Some(encoding) = encoding {
                builder = builder.header("grpc-encoding", encoding);
            }
            builder.body(()).unwrap()
        };
        let grpc = "application/grpc";
        assert_eq!(
            KvCall::of(&request("/etcdserverpb.KV/Put", grpc, None)),
            Some(KvCall::Put)
        );
        assert_eq!(
            KvCall::of(&request(
                "/etcdserverpb.KV/Range",
                "application/grpc+proto",
                None
            )),
            Some(KvCall::Range)
        );
        assert_eq!(
            KvCall::of(&request("/etcdserverpb.KV/Txn", grpc, Some("identity"))),
            Some(KvCall::Txn)
        );
        assert_eq!(
            KvCall::of(&request("/etcdserverpb.KV/Put", grpc, Some("gzip"))),
            None
        );
        assert_eq!(
            KvCall::of(&request("/etcdserverpb.KV/Put", "application/json", None)),
            None
        );
        assert_eq!(
            KvCall::of(&request("/etcdserverpb.Watch/Watch", grpc, None)),
            None
        );
        assert_eq!(
            KvCall::of(&request("/etcdserverpb.KV/Nope", grpc, None)),
            None
        );
        let get = Request::get("/etcdserverpb.KV/Put")
            .header(CONTENT_TYPE, grpc)
            .body(())
            .unwrap();
        assert_eq!(KvCall::of(&get), None);
    }
}
