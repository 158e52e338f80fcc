//! Peer transport over TCP, or mutual TLS where peer URLs are `https` (each end presents
//! its peer certificate; the dialer checks the server's against the URL's host). Each
//! member dials every other member once and keeps that
//! connection for its own messages (so each pair shares two connections, one per
//! direction). Frames are length-prefixed and checksummed ([`crate::wire`]); the first
//! one is a handshake naming the cluster and both members, and a connection whose
//! handshake (TLS or Synod's) is wrong is refused with one log line.
//!
//! Paxos tolerates lost messages, so the transport never blocks the core: each peer has
//! a bounded queue, and while a peer is unreachable its messages are dropped rather than
//! kept (they would be stale by the time it is back; the protocol resends what matters).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use paxos::multi::Message;
use paxos::NodeId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::config::Endpoint;
use crate::inflow::Inflow;
use crate::limits::{
    PEER_COALESCE_BYTES, PEER_FRAME_BYTES_MAX, PEER_HANDSHAKES_MAX, PEER_HELLO_BYTES_MAX,
    PEER_QUEUE_MESSAGES_MAX, PEER_SNAPSHOT_CHUNKS_IN_FLIGHT,
};
use crate::node::{Input, Inputs};
use crate::payload::Payload;
use crate::tls::{TlsClient, TlsServer};
use crate::wire::{self, Hello, Stamp, FRAME_HEADER};

/// The longest a write may take before the connection is deemed dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a new connection may take to send its handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection attempt may take (a blackholed peer would otherwise hold
/// the dialer for the kernel's SYN timeout, minutes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What a peer's queue carries.
#[derive(Debug)]
enum Outgoing {
    /// A message, with the sender's stamp when it traces.
    Message(Message<Payload>, Option<Stamp>),
    /// Answered once everything queued before it was written to the socket (dropped,
    /// so the receiver sees an error, if the connection failed first).
    Written(oneshot::Sender<()>),
}

/// The sending side: one queue per peer, and the dialing task that drains it.
#[derive(Debug, Default)]
pub struct Peers {
    /// This member and its cluster, as the handshakes say.
    me: NodeId,
    cluster: u64,
    queues: HashMap<NodeId, Queue>,
    /// Where each peer is dialed.
    addrs: HashMap<NodeId, Endpoint>,
    /// How `https` peer URLs are dialed.
    tls: Option<Arc<TlsClient>>,
    /// The runtime the connections run on (the snapshot streams' blocking threads too).
    runtime: Option<tokio::runtime::Handle>,
}

#[derive(Debug)]
struct Queue {
    sender: mpsc::Sender<Outgoing>,
    /// Whether a snapshot stream to this peer is under way (one at a time).
    streaming: Arc<AtomicBool>,
}

impl Peers {
    /// Queues `message` (with the stamp of a member that traces) for `to`; drops it if
    /// the queue is full or `to` is unknown. Whether it was queued.
    pub fn send(&self, to: NodeId, message: Message<Payload>, stamp: Option<Stamp>) -> bool {
        match self.queues.get(&to) {
            Some(queue) => queue
                .sender
                .try_send(Outgoing::Message(message, stamp))
                .is_ok(),
            None => false,
        }
    }

    /// Streams `chunks` (a snapshot's messages, read as they are reached) to `to` on a
    /// blocking thread, at most `PEER_SNAPSHOT_CHUNKS_IN_FLIGHT` chunks ahead of the socket. A chunk
    /// that cannot be read, or a connection that fails, ends the stream: the replica sends
    /// the snapshot again if the peer still needs it. A stream already under way to `to`
    /// makes this one a no-op. Every chunk carries `stamp` (a member that traces records
    /// the stream as one send).
    pub fn stream<I>(&self, to: NodeId, chunks: I, stamp: Option<Stamp>)
    where
        I: Iterator<Item = std::io::Result<Message<Payload>>> + Send + 'static,
    {
        let Some(queue) = self.queues.get(&to) else {
            return;
        };
        if queue.streaming.swap(true, Ordering::AcqRel) {
            return;
        }
        let (sender, streaming) = (queue.sender.clone(), queue.streaming.clone());
        let Some(runtime) = &self.runtime else {
            tracing::warn!(peer = %format!("{:x}", to.0), "no runtime to stream a snapshot on");
            streaming.store(false, Ordering::Release);
            return;
        };
        runtime.spawn_blocking(move || {
            if let Err(e) = stream_chunks(&sender, chunks, stamp) {
                tracing::warn!(peer = %format!("{:x}", to.0), "snapshot stream ended: {e}");
            }
            streaming.store(false, Ordering::Release);
        });
    }
}

fn stream_chunks<I>(
    sender: &mpsc::Sender<Outgoing>,
    chunks: I,
    stamp: Option<Stamp>,
) -> Result<(), String>
where
    I: Iterator<Item = std::io::Result<Message<Payload>>>,
{
    let closed = |_| "the connection closed".to_string();
    let mut written = VecDeque::new();
    for chunk in chunks {
        let chunk = chunk.map_err(|e| format!("cannot read the snapshot: {e}"))?;
        sender
            .blocking_send(Outgoing::Message(chunk, stamp.clone()))
            .map_err(closed)?;
        let (done, wait) = oneshot::channel();
        sender
            .blocking_send(Outgoing::Written(done))
            .map_err(closed)?;
        written.push_back(wait);
        if written.len() >= PEER_SNAPSHOT_CHUNKS_IN_FLIGHT {
            if let Some(wait) = written.pop_front() {
                wait.blocking_recv().map_err(|_| "the connection failed")?;
            }
        }
    }
    Ok(())
}

/// Starts one dialing task per peer on the current runtime; `https` peers are dialed
/// through `tls`.
pub fn dial(
    me: NodeId,
    cluster: u64,
    peers: &[(NodeId, Endpoint)],
    tls: Option<Arc<TlsClient>>,
) -> Peers {
    let mut dialed = Peers {
        me,
        cluster,
        queues: HashMap::new(),
        addrs: HashMap::new(),
        tls,
        runtime: Some(tokio::runtime::Handle::current()),
    };
    for (to, endpoint) in peers {
        dialed.connect(*to, endpoint.clone());
    }
    dialed
}

impl Peers {
    /// Dials `to` at `addr` from now on (a member that joined, or moved): a new queue
    /// and dialing task, unless `to` is dialed there already. Messages queued for an
    /// older address are dropped with its task.
    pub fn connect(&mut self, to: NodeId, endpoint: Endpoint) {
        if self.addrs.get(&to) == Some(&endpoint) {
            return;
        }
        let Some(runtime) = &self.runtime else {
            return;
        };
        let (sender, rx) = mpsc::channel(PEER_QUEUE_MESSAGES_MAX);
        let streaming = Arc::default();
        self.queues.insert(to, Queue { sender, streaming });
        self.addrs.insert(to, endpoint.clone());
        let hello = Hello {
            cluster: self.cluster,
            from: self.me,
            to,
        };
        runtime.spawn(outbound(hello, endpoint, self.tls.clone(), rx));
    }

    /// Stops dialing `to` (a member that left): its task ends with its queue.
    pub fn disconnect(&mut self, to: NodeId) {
        self.queues.remove(&to);
        self.addrs.remove(&to);
    }

    /// The peers dialed.
    pub fn dialed(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.addrs.keys().copied()
    }
}

async fn outbound(
    hello: Hello,
    endpoint: Endpoint,
    tls: Option<Arc<TlsClient>>,
    mut rx: mpsc::Receiver<Outgoing>,
) {
    let mut backoff = Duration::from_millis(20);
    // The failure last logged: a peer that stays unreachable for one reason makes one
    // line, and another when the reason changes (down, then refusing our certificate).
    let mut reported: Option<String> = None;
    let addr = endpoint.addr;
    loop {
        match dial_peer(&endpoint, tls.as_deref()).await {
            Ok(stream) => {
                if reported.take().is_some() {
                    tracing::info!(peer = %format!("{:x}", hello.to.0), %addr, "peer reachable again");
                }
                backoff = Duration::from_millis(20);
                let pumped = match stream {
                    PeerStream::Plain(tcp) => pump(tcp, hello, &mut rx).await,
                    PeerStream::Tls(tls) => pump(*tls, hello, &mut rx).await,
                };
                match pumped {
                    Ok(()) => return, // The node is shutting down.
                    Err(e) => {
                        tracing::debug!(peer = %format!("{:x}", hello.to.0), "peer connection lost: {e}")
                    }
                }
            }
            Err(e) if reported.as_deref() != Some(&e.to_string()) => {
                tracing::warn!(peer = %format!("{:x}", hello.to.0), url = %endpoint.url(), "cannot reach peer: {e}; retrying");
                reported = Some(e.to_string());
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

/// A connection to a peer: plain TCP, or TLS for an `https` peer URL.
pub(crate) enum PeerStream {
    Plain(TcpStream),
    Tls(Box<crate::tls::ClientStream>),
}

/// Connects to the peer at `endpoint`, with a TLS handshake if its URL is `https`.
pub(crate) async fn dial_peer(
    endpoint: &Endpoint,
    tls: Option<&TlsClient>,
) -> std::io::Result<PeerStream> {
    let connecting = TcpStream::connect(endpoint.addr);
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(tcp) => tcp?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        }
    };
    let _ = tcp.set_nodelay(true);
    if !endpoint.tls {
        return Ok(PeerStream::Plain(tcp));
    }
    let Some(tls) = tls else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "its URL is https, and this member has no peer certificate (--peer-cert-file, --peer-key-file or --peer-auto-tls)",
        ));
    };
    let stream = tls.connect(&endpoint.host, tcp).await?;
    Ok(PeerStream::Tls(Box::new(stream)))
}

async fn pump<S: AsyncWrite + Unpin>(
    mut stream: S,
    hello: Hello,
    rx: &mut mpsc::Receiver<Outgoing>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(64 << 10);
    wire::frame(&mut buf, |out| wire::encode_hello(&hello, out));
    write(&mut stream, &buf).await?;
    let mut written = Vec::new();
    loop {
        let Some(first) = rx.recv().await else {
            return Ok(());
        };
        buf.clear();
        let mut next = Some(first);
        while let Some(outgoing) = next {
            match outgoing {
                Outgoing::Message(m, stamp) => wire::frame(&mut buf, |out| {
                    wire::encode_stamped(&m, stamp.as_ref(), out);
                }),
                Outgoing::Written(done) => written.push(done),
            }
            next = if buf.len() < PEER_COALESCE_BYTES {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !buf.is_empty() {
            write(&mut stream, &buf).await?;
        }
        for done in written.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes `bytes` and flushes them (through TLS too) within [`WRITE_TIMEOUT`].
async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    let written = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, written).await {
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
    /// Every member, as the core keeps it up to date with the membership.
    pub members: Roster,
}

/// The members the core knows, shared with the tasks that admit peers.
pub type Roster = Arc<std::sync::RwLock<Vec<NodeId>>>;

impl Admission {
    fn is_member(&self, id: NodeId) -> bool {
        let members = self
            .members
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        members.contains(&id)
    }

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
        } else if !self.is_member(hello.from) || hello.from == self.me {
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

/// Accepts peer connections (over TLS with `tls`) and feeds their messages to the core,
/// as fast as `inflow` has room for them.
pub async fn accept(
    listener: TcpListener,
    tls: Option<Arc<TlsServer>>,
    admission: Admission,
    inputs: Inputs,
    inflow: Inflow,
) {
    let current: Current = Arc::default();
    let handshakes = Arc::new(tokio::sync::Semaphore::new(PEER_HANDSHAKES_MAX));
    let mut refusing = false;
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!("peer accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
            if !std::mem::replace(&mut refusing, true) {
                tracing::warn!(%addr, "refusing peer connections: {PEER_HANDSHAKES_MAX} handshakes pending");
            }
            continue; // Dropping the stream closes it.
        };
        refusing = false;
        let _ = stream.set_nodelay(true);
        let (admission, queues, current) = (
            admission.clone(),
            (inputs.clone(), inflow.clone()),
            current.clone(),
        );
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(tls) = tls else {
                return inbound(stream, addr, admission, queues, current, handshake).await;
            };
            // A certificate from another CA is refused here, with one log line.
            if let Some(stream) = tls.admit(stream, "peer port").await {
                inbound(stream, addr, admission, queues, current, handshake).await;
            }
        });
    }
}

async fn inbound<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    addr: SocketAddr,
    admission: Admission,
    (inputs, inflow): (Inputs, Inflow),
    current: Current,
    handshake: tokio::sync::OwnedSemaphorePermit,
) {
    let hello =
        tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut stream, PEER_HELLO_BYTES_MAX)).await;
    drop(handshake);
    let hello = match hello {
        Ok(Ok(body)) if wire::decode_join(&body).is_some() => {
            if let Some(request) = wire::decode_join(&body) {
                answer_join(stream, addr, request, (inputs, inflow)).await;
            }
            return;
        }
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
            frame = read_frame(&mut reader, PEER_FRAME_BYTES_MAX) => frame,
            _ = &mut replaced => return,
        };
        let body = match frame {
            Ok(body) => body,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    tracing::warn!(%addr, peer = %format!("{:x}", hello.from.0), "dropped peer connection: {e}");
                }
                // A peer that crashed closes its connections at once: tell the core,
                // which campaigns early if it was the leader.
                let _ = inputs.send(Input::PeerLost(hello.from));
                return;
            }
        };
        let Some((message, stamp)) = wire::decode_stamped(&body) else {
            tracing::warn!(%addr, peer = %format!("{:x}", hello.from.0), "dropped peer connection: undecodable message");
            return;
        };
        let bytes = body.len();
        inflow.admit_peer(bytes).await;
        if inputs
            .send(Input::Peer(hello.from, message, bytes, stamp))
            .is_err()
        {
            return;
        }
    }
}

/// Answers a member starting to join (`crate::bootstrap`) with what the core says of it.
async fn answer_join<S: AsyncWrite + Unpin>(
    mut stream: S,
    addr: SocketAddr,
    request: crate::proto::synodpb::JoinRequest,
    (inputs, inflow): (Inputs, Inflow),
) {
    // A question takes room in the core's queue as a client's request does.
    if inflow.admit_client().is_err() {
        return;
    }
    let (tx, rx) = oneshot::channel();
    let query = Input::Query(Box::new(move |core| {
        let _ = tx.send(core.join_answer(&request.peer_url));
    }));
    if inputs.send(query).is_err() {
        return;
    }
    let Ok(answer) = rx.await else { return };
    match &answer.answer {
        Some(crate::proto::synodpb::join_answer::Answer::Bootstrap(b)) => {
            tracing::info!(%addr, id = %format!("{:x}", b.member_id), "told a joining member who it is");
        }
        other => tracing::info!(%addr, answer = ?other, "a member asked to join"),
    }
    let mut frame = Vec::new();
    wire::frame(&mut frame, |out| {
        prost::Message::encode(&answer, out).unwrap_or_default()
    });
    let _ = write(&mut stream, &frame).await;
    let _ = stream.shutdown().await;
}

/// Reads one frame's body, of at most `max` bytes, checked against its checksum.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use paxos::Ballot;

    fn one_member() -> paxos::multi::Membership {
        let members = paxos::multi::Members::new(vec![NodeId(1)], paxos::QuorumSpec::Majority);
        paxos::multi::Membership::new(Arc::new(members.unwrap()))
    }

    fn chunk(offset: u64) -> std::io::Result<Message<Payload>> {
        Ok(Message::Snapshot {
            ballot: Ballot::ZERO,
            index: 9,
            membership: one_member(),
            offset,
            total: 100,
            data: vec![0; 10],
        })
    }

    fn peers_with_queue() -> (Peers, mpsc::Receiver<Outgoing>) {
        let (sender, rx) = mpsc::channel(PEER_QUEUE_MESSAGES_MAX);
        let queue = Queue {
            sender,
            streaming: Arc::default(),
        };
        let peers = Peers {
            queues: HashMap::from([(NodeId(2), queue)]),
            runtime: Some(tokio::runtime::Handle::current()),
            ..Peers::default()
        };
        (peers, rx)
    }

    async fn next(rx: &mut mpsc::Receiver<Outgoing>) -> Option<Outgoing> {
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Whether the server closes `stream` within `wait`.
    async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
        let mut byte = [0; 1];
        matches!(
            tokio::time::timeout(wait, stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn connections_beyond_the_pending_handshake_cap_are_closed_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admission = Admission {
            me: NodeId(1),
            cluster: 7,
            members: Arc::new(std::sync::RwLock::new(vec![NodeId(1), NodeId(2)])),
        };
        let (inputs, _core) = mpsc::unbounded_channel();
        tokio::spawn(accept(listener, None, admission, inputs, Inflow::default()));
        let mut idle = Vec::new();
        for _ in 0..PEER_HANDSHAKES_MAX {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut extra = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut extra, Duration::from_secs(2)).await);
        // The idle ones leave: handshakes are accepted again.
        drop(idle);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut next = TcpStream::connect(addr).await.unwrap();
        assert!(!closed_within(&mut next, Duration::from_millis(300)).await);
    }

    #[tokio::test]
    async fn a_snapshot_stream_stays_a_window_ahead_of_the_socket() {
        let (peers, mut rx) = peers_with_queue();
        peers.stream(NodeId(2), (0..10).map(|i| chunk(i * 10)), None);
        // A second stream while one is under way is refused.
        peers.stream(NodeId(2), (0..10).map(|i| chunk(i * 10)), None);
        let mut unwritten = Vec::new();
        let mut offsets = Vec::new();
        // Nothing is acknowledged as written: the stream stops after the window.
        while let Some(item) = next(&mut rx).await {
            match item {
                Outgoing::Message(Message::Snapshot { offset, .. }, _) => offsets.push(offset),
                Outgoing::Written(done) => unwritten.push(done),
                Outgoing::Message(other, _) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(offsets, vec![0, 10, 20, 30]);
        // Written: the rest follows, in order, and the stream ends.
        for done in unwritten.drain(..) {
            let _ = done.send(());
        }
        while offsets.len() < 10 {
            match next(&mut rx).await.expect("the stream goes on") {
                Outgoing::Message(Message::Snapshot { offset, .. }, _) => offsets.push(offset),
                Outgoing::Written(done) => {
                    let _ = done.send(());
                }
                Outgoing::Message(other, _) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(offsets, (0..10).map(|i| i * 10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_failed_connection_ends_the_stream_and_allows_the_next() {
        let (peers, mut rx) = peers_with_queue();
        peers.stream(NodeId(2), (0..10).map(|i| chunk(i * 10)), None);
        // Dropping the markers is what a failed connection does.
        let mut sent = 0;
        while let Some(item) = next(&mut rx).await {
            if matches!(item, Outgoing::Message(..)) {
                sent += 1;
            }
        }
        assert_eq!(sent, PEER_SNAPSHOT_CHUNKS_IN_FLIGHT);
        let queue = &peers.queues[&NodeId(2)];
        for _ in 0..100 {
            if !queue.streaming.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !queue.streaming.load(Ordering::Acquire),
            "the stream did not end"
        );
        // A chunk that cannot be read ends a stream too, after the chunks before it.
        let unreadable = std::io::Error::other("disk gone");
        let chunks = vec![chunk(0), Err(unreadable)].into_iter();
        peers.stream(NodeId(2), chunks, None);
        assert!(matches!(next(&mut rx).await, Some(Outgoing::Message(..))));
        assert!(matches!(next(&mut rx).await, Some(Outgoing::Written(_))));
        assert!(next(&mut rx).await.is_none());
    }
}
