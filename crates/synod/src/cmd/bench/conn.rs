//! One HTTP/2 connection for the load generator: unary gRPC calls straight on h2.
//!
//! The load generator shares the cores with the members it measures, so every microsecond
//! it spends per request is taken from them. tonic's `Channel` queues each request through
//! a buffer task and hyper's dispatch task, and hyper's client spawns a task per request to
//! stream its body; tonic's codec adds a streaming decoder and header maps of its own.
//! Here a client frames its message (the 5-byte gRPC prefix, then protobuf), sends it as
//! one HTTP/2 stream and reads the answer and its trailers itself: no task per request.
//! No reconnection: a load run fails on a broken connection, as it should.

use bytes::{BufMut, Bytes, BytesMut};
use h2::client::SendRequest;

/// A connection to one endpoint; clones share it (HTTP/2 multiplexes their requests).
#[derive(Clone, Debug)]
pub struct Conn {
    sender: SendRequest<Bytes>,
    authority: String,
}

/// Why a call failed: transport, HTTP or gRPC status, as text (the benchmark counts it).
pub type CallError = String;

/// The gRPC prefix: a compression flag byte, then the message's length (big endian).
const PREFIX: usize = 5;

impl Conn {
    /// Connects to `endpoint` (host:port) over plain-text HTTP/2.
    pub async fn connect(endpoint: &str) -> Result<Conn, String> {
        let stream = tokio::net::TcpStream::connect(endpoint)
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        // Small requests must not wait for the peer's delayed ACK.
        stream
            .set_nodelay(true)
            .map_err(|e| format!("{endpoint}: {e}"))?;
        let (sender, connection) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake(stream)
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("benchmark connection closed: {e}");
            }
        });
        Ok(Conn {
            sender,
            authority: endpoint.to_string(),
        })
    }

    /// The endpoint (host:port) this connection goes to.
    pub fn endpoint(&self) -> &str {
        &self.authority
    }

    /// Calls the unary method `path` (e.g. `/etcdserverpb.KV/Put`) with `request`.
    pub async fn unary<Req, Resp>(&self, path: &str, request: &Req) -> Result<Resp, CallError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let head = http::Request::post(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| e.to_string())?;
        let mut sender = self.sender.clone().ready().await.map_err(text)?;
        let (response, mut body) = sender.send_request(head, false).map_err(text)?;
        body.send_data(frame(request), true).map_err(text)?;
        let response = response.await.map_err(text)?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("HTTP status {}", response.status()));
        }
        // A "trailers-only" answer (an error, usually) carries its status in the headers.
        grpc_status(response.headers())?;
        let mut answer = response.into_body();
        let mut message = BytesMut::new();
        while let Some(chunk) = answer.data().await {
            let chunk = chunk.map_err(text)?;
            let _ = answer.flow_control().release_capacity(chunk.len());
            message.extend_from_slice(&chunk);
        }
        if let Some(trailers) = answer.trailers().await.map_err(text)? {
            grpc_status(&trailers)?;
        }
        unframe(&message)
    }
}

fn text(e: h2::Error) -> CallError {
    e.to_string()
}

/// `message` with the gRPC prefix (uncompressed).
fn frame(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut out = BytesMut::with_capacity(PREFIX + len);
    out.put_u8(0);
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // Encoding into a buffer of exactly the encoded length cannot run out of space.
    let _ = message.encode(&mut out);
    out.freeze()
}

/// The one message of a unary answer.
fn unframe<Resp: prost::Message + Default>(body: &[u8]) -> Result<Resp, CallError> {
    let Some((prefix, rest)) = body.split_first_chunk::<PREFIX>() else {
        return Err(format!(
            "an answer of {} bytes has no gRPC message",
            body.len()
        ));
    };
    if prefix[0] != 0 {
        return Err("a compressed answer (the benchmark asks for none)".into());
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    let message = rest
        .get(..len)
        .ok_or_else(|| format!("an answer cut short: {} of {len} bytes", rest.len()))?;
    Resp::decode(message).map_err(|e| e.to_string())
}

/// An error unless `headers` say `grpc-status: 0` or carry no status at all.
fn grpc_status(headers: &http::HeaderMap) -> Result<(), CallError> {
    match headers.get("grpc-status") {
        None => Ok(()),
        Some(code) if code == "0" => Ok(()),
        Some(code) => {
            let message = headers
                .get("grpc-message")
                .and_then(|m| m.to_str().ok())
                .unwrap_or("");
            Err(format!("gRPC status {code:?}: {message}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use server::proto::etcdserverpb as pb;

    #[test]
    fn a_framed_message_unframes_to_itself() {
        let put = pb::PutRequest {
            key: b"k".to_vec(),
            value: vec![7; 300],
            ..Default::default()
        };
        let framed = frame(&put);
        assert_eq!(framed[0], 0);
        assert_eq!(framed.len(), PREFIX + prost::Message::encoded_len(&put));
        assert_eq!(unframe::<pb::PutRequest>(&framed), Ok(put));
    }

    #[test]
    fn a_short_or_compressed_answer_is_an_error() {
        assert!(unframe::<pb::PutResponse>(&[0, 0, 0]).is_err());
        assert!(unframe::<pb::PutResponse>(&[0, 0, 0, 0, 9, 1]).is_err());
        assert!(unframe::<pb::PutResponse>(&[1, 0, 0, 0, 0]).is_err());
        assert_eq!(
            unframe::<pb::PutResponse>(&[0, 0, 0, 0, 0]),
            Ok(pb::PutResponse::default())
        );
    }

    #[test]
    fn a_nonzero_grpc_status_is_an_error() {
        let mut headers = http::HeaderMap::new();
        assert!(grpc_status(&headers).is_ok());
        headers.insert("grpc-status", http::HeaderValue::from_static("0"));
        assert!(grpc_status(&headers).is_ok());
        headers.insert("grpc-status", http::HeaderValue::from_static("14"));
        headers.insert("grpc-message", http::HeaderValue::from_static("no leader"));
        let error = grpc_status(&headers).unwrap_err();
        assert!(
            error.contains("14") && error.contains("no leader"),
            "{error}"
        );
    }
}
