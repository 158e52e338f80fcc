//! Peer transport over TCP. Each member dials every other member once and keeps that
//! connection for its own messages (so each pair shares two connections, one per
//! direction). Frames are length-prefixed and checksummed ([`crate::wire`]); the first
//! one is a handshake naming the cluster and both members, and a connection whose
//! handshake is wrong is refused with one log line.
//!
//! Paxos tolerates lost messages, so the transport never blocks the core: each peer has
//! a bounded queue, and while a peer is unreachable its messages are dropped rather than
//! kept (they would be stale by the time it is back; the protocol resends what matters).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::time::Duration;

use paxos::multi::Message;
use paxos::NodeId;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::node::Input;
use crate::payload::Payload;
use crate::wire::{self, Hello, FRAME_HEADER};

/// Messages queued per peer before new ones are dropped.
const QUEUE: usize = 16 * 1024;
/// Bytes gathered into one write.
const COALESCE_BYTES: usize = 1 << 20;
/// The longest a write may take before the connection is deemed dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a new connection may take to send its handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// A handshake frame is small; a larger first frame is garbage.
const HELLO_MAX: usize = 64;
/// The longest a connection attempt may take (a blackholed peer would otherwise hold
/// the dialer for the kernel's SYN timeout, minutes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The sending side: one queue per peer.
#[derive(Debug, Default)]
pub struct Peers {
    queues: HashMap<NodeId, mpsc::Sender<Message<Payload>>>,
}

impl Peers {
    /// Queues `message` for `to`; drops it if the queue is full or `to` is unknown.
    pub fn send(&self, to: NodeId, message: Message<Payload>) {
        if let Some(queue) = self.queues.get(&to) {
            let _ = queue.try_send(message);
        }
    }
}

/// Starts one dialing task per peer on the current runtime.
pub fn dial(me: NodeId, cluster: u64, peers: &[(NodeId, SocketAddr)]) -> Peers {
    let mut queues = HashMap::new();
    for &(to, addr) in peers {
        let (tx, rx) = mpsc::channel(QUEUE);
        queues.insert(to, tx);
        let hello = Hello {
            cluster,
            from: me,
            to,
        };
        tokio::spawn(outbound(hello, addr, rx));
    }
    Peers { queues }
}

async fn outbound(hello: Hello, addr: SocketAddr, mut rx: mpsc::Receiver<Message<Payload>>) {
    let mut backoff = Duration::from_millis(20);
    let mut reported = false;
    loop {
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
        let attempt = attempt.unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        });
        match attempt {
            Ok(stream) => {
                if reported {
                    tracing::info!(peer = %hello.to, %addr, "peer reachable again");
                    reported = false;
                }
                backoff = Duration::from_millis(20);
                let _ = stream.set_nodelay(true);
                match pump(stream, hello, &mut rx).await {
                    Ok(()) => return, // The node is shutting down.
                    Err(e) => tracing::debug!(peer = %hello.to, "peer connection lost: {e}"),
                }
            }
            Err(e) if !reported => {
                tracing::warn!(peer = %hello.to, %addr, "cannot reach peer: {e}; retrying");
                reported = true;
            }
            Err(_) => {}
        }
        while rx.try_recv().is_ok() {}
        if rx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

async fn pump(
    mut stream: TcpStream,
    hello: Hello,
    rx: &mut mpsc::Receiver<Message<Payload>>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(64 << 10);
    wire::frame(&mut buf, |out| wire::encode_hello(&hello, out));
    write(&mut stream, &buf).await?;
    loop {
        let Some(first) = rx.recv().await else {
            return Ok(());
        };
        buf.clear();
        wire::frame(&mut buf, |out| wire::encode_message(&first, out));
        while buf.len() < COALESCE_BYTES {
            let Ok(next) = rx.try_recv() else { break };
            wire::frame(&mut buf, |out| wire::encode_message(&next, out));
        }
        write(&mut stream, &buf).await?;
    }
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "peer stopped reading",
        )),
    }
}

/// Who may connect: this member, its cluster, and the other members.
#[derive(Clone, Debug)]
pub struct Admission {
    /// This member.
    pub me: NodeId,
    /// The cluster.
    pub cluster: u64,
    /// Every member.
    pub members: Vec<NodeId>,
}

impl Admission {
    /// Why `hello` is refused, if it is.
    pub fn refuse(&self, hello: &Hello) -> Option<String> {
        if hello.cluster != self.cluster {
            Some(format!(
                "it belongs to cluster {:x}, not {:x}",
                hello.cluster, self.cluster
            ))
        } else if hello.to != self.me {
            Some(format!(
                "it expected member {:x}, this is {:x}",
                hello.to.0, self.me.0
            ))
        } else if !self.members.contains(&hello.from) || hello.from == self.me {
            Some(format!(
                "member {:x} is not a peer in this cluster",
                hello.from.0
            ))
        } else {
            None
        }
    }
}

/// The newest admitted connection from each peer; admitting another ends the older one
/// (a peer keeps one connection to us, so an older one is dead or half-open).
type Current = Arc<Mutex<HashMap<NodeId, oneshot::Sender<()>>>>;

/// Accepts peer connections and feeds their messages to the core.
pub async fn accept(listener: TcpListener, admission: Admission, inputs: Sender<Input>) {
    let current: Current = Arc::default();
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!("peer accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(inbound(
            stream,
            addr,
            admission.clone(),
            inputs.clone(),
            current.clone(),
        ));
    }
}

async fn inbound(
    mut stream: TcpStream,
    addr: SocketAddr,
    admission: Admission,
    inputs: Sender<Input>,
    current: Current,
) {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut stream, HELLO_MAX)).await
    {
        Ok(Ok(body)) => wire::decode_hello(&body),
        Ok(Err(e)) => {
            tracing::warn!(%addr, "refused peer connection: {e}");
            return;
        }
        Err(_) => {
            tracing::warn!(%addr, "refused peer connection: no handshake within 5 s");
            return;
        }
    };
    let Some(hello) = hello else {
        tracing::warn!(%addr, "refused peer connection: not a Synod peer handshake");
        return;
    };
    if let Some(reason) = admission.refuse(&hello) {
        tracing::warn!(%addr, "refused peer connection: {reason}");
        return;
    }
    let (replaced_tx, mut replaced) = oneshot::channel();
    if let Ok(mut current) = current.lock() {
        // Dropping the older connection's sender ends it.
        current.insert(hello.from, replaced_tx);
    }
    let mut reader = tokio::io::BufReader::with_capacity(256 << 10, stream);
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, wire::FRAME_MAX) => frame,
            _ = &mut replaced => return,
        };
        let body = match frame {
            Ok(body) => body,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    tracing::warn!(%addr, peer = %hello.from, "dropped peer connection: {e}");
                }
                // A peer that crashed closes its connections at once: tell the core,
                // which campaigns early if it was the leader.
                let _ = inputs.send(Input::PeerLost(hello.from));
                return;
            }
        };
        let Some(message) = wire::decode_message(&body) else {
            tracing::warn!(%addr, peer = %hello.from, "dropped peer connection: undecodable message");
            return;
        };
        if inputs.send(Input::Peer(hello.from, message)).is_err() {
            return;
        }
    }
}

async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, max: usize) -> std::io::Result<Vec<u8>> {
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut header = [0; FRAME_HEADER];
    reader.read_exact(&mut header).await?;
    let (len, crc) = wire::frame_header(header).map_err(|e| bad(e.to_string()))?;
    if len > max {
        return Err(bad(format!("frame of {len} bytes exceeds {max}")));
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await?;
    wire::check_body(&body, crc).map_err(|e| bad(e.to_string()))?;
    Ok(body)
}
