//! One HTTP/2 connection for the load generator, without tonic's `Channel` in front.
//!
//! A `Channel` queues every request through a buffer task and hyper's dispatch task to the
//! connection: two task hand-offs per request, on a machine where the load generator
//! shares the cores with the members it measures. Here each client holds a clone of the
//! connection's `SendRequest` and hands its request straight to h2. No reconnection: a
//! load run fails on a broken connection, as it should.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A connection to one endpoint; clones share it (HTTP/2 multiplexes their requests).
#[derive(Clone, Debug)]
pub struct Conn {
    sender: http2::SendRequest<tonic::body::Body>,
    authority: http::uri::Authority,
}

impl Conn {
    /// Connects to `endpoint` (host:port) over plain-text HTTP/2.
    pub async fn connect(endpoint: &str) -> Result<Conn, String> {
        let authority: http::uri::Authority =
            endpoint.parse().map_err(|e| format!("{endpoint}: {e}"))?;
        let stream = tokio::net::TcpStream::connect(endpoint)
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        // Small requests must not wait for the peer's delayed ACK.
        stream
            .set_nodelay(true)
            .map_err(|e| format!("{endpoint}: {e}"))?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("benchmark connection closed: {e}");
            }
        });
        Ok(Conn { sender, authority })
    }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for Conn {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        // tonic gives the path only; HTTP/2 needs the scheme and authority too.
        let mut parts = request.uri().clone().into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
        Box::pin(self.sender.send_request(request))
    }
}
