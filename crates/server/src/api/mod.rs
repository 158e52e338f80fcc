//! The etcd v3 gRPC services. Each handler turns a request into a proposal, a read of a
//! published view, or a query on the core, and waits with a deadline: a request that
//! cannot complete (no quorum) fails with etcd's retryable "request timed out".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::kv::Caller;

pub use crate::auth::Credentials;
use node::RequestIds;
use paxos::NodeId;
use tokio::sync::{oneshot, watch};
use tonic::Status;

use crate::inflow::Inflow;
use crate::node::{Applied, Core, Input, Inputs, Proposal, View};
use crate::proto::synodpb::command::Op;

pub mod auth_api;
pub mod cluster;
pub mod coordination;
pub mod election;
pub mod health;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod quorum;
pub mod watch_api;

/// What every service shares: the way to the core and the latest view.
#[derive(Clone, Debug)]
pub struct Handle {
    inputs: Inputs,
    views: watch::Receiver<Arc<View>>,
    /// Static facts about the cluster.
    pub info: Arc<Info>,
    streams: Arc<AtomicU64>,
    reads: Arc<Mutex<ReadRounds>>,
    inflow: Inflow,
    request_ids: RequestIds,
    /// Whom `propose` proposes for.
    caller: Arc<Caller>,
}

/// Linearizable reads, coalesced: one read at a time goes to the core, and the reads that
/// arrive while it is under way share the next one. The next round starts after they
/// arrived, so the read index the core takes for it covers every write that completed
/// before any of them: each still sees all writes that completed before it began. Under
/// load the core handles one read per round trip instead of one per request.
#[derive(Debug, Default)]
struct ReadRounds {
    /// A round is under way.
    running: bool,
    /// Readers for the next round.
    next: Vec<oneshot::Sender<Result<Arc<View>, Status>>>,
}

/// Facts the services answer from without asking the core.
#[derive(Debug)]
pub struct Info {
    /// The cluster id.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// Whether this member is a learner now (the core keeps it up to date).
    pub learner: Arc<std::sync::atomic::AtomicBool>,
    /// The largest request accepted.
    pub max_request_bytes: usize,
    /// How long a request may wait for the cluster: the core answers it by then (with a
    /// time-out, or "no leader" if its command never reached a leader).
    pub request_timeout: Duration,
    /// Tokens and password hashing.
    pub authn: Arc<crate::auth::Authn>,
    /// How to reach other members' `https` client URLs (a change passed on to the
    /// leader); `None` without client TLS.
    pub client_dialer: Option<Arc<crate::tls::TlsClient>>,
}

/// How much longer than its deadline a handler waits for the core's answer.
const BACKSTOP: Duration = Duration::from_secs(2);

/// etcd's answer when the cluster could not complete a request in time.
pub fn timed_out() -> Status {
    Status::unavailable("etcdserver: request timed out")
}

fn stopped() -> Status {
    Status::unavailable("etcdserver: server stopped")
}

/// etcd's answer to a request above `--max-request-bytes`.
pub fn too_large() -> Status {
    Status::invalid_argument("etcdserver: request is too large")
}

impl Handle {
    /// A handle on the core fed by `inputs`.
    pub fn new(
        inputs: Inputs,
        views: watch::Receiver<Arc<View>>,
        info: Info,
        inflow: Inflow,
        request_ids: RequestIds,
    ) -> Handle {
        Handle {
            request_ids,
            inputs,
            views,
            info: Arc::new(info),
            streams: Arc::new(AtomicU64::new(1)),
            reads: Arc::default(),
            inflow,
            caller: Arc::default(),
        }
    }

    /// etcd's answer on a learner to anything but a serializable read or a status.
    pub fn refuse_on_learner(&self) -> Result<(), Status> {
        if self.info.learner.load(Ordering::Relaxed) {
            return Err(Status::unavailable(
                "etcdserver: rpc not supported for learner",
            ));
        }
        Ok(())
    }

    fn send(&self, input: Input) -> Result<(), Status> {
        self.inputs.send(input).map_err(|_| stopped())
    }

    /// Sends a client's write or read, if the core's queue has room for it.
    fn send_request(&self, input: Input) -> Result<(), Status> {
        self.inflow.admit_client()?;
        self.send(input).inspect_err(|_| self.inflow.client_taken())
    }

    async fn wait<T>(&self, rx: oneshot::Receiver<Result<T, Status>>) -> Result<T, Status> {
        // The core answers every request by its deadline; this one only guards against a
        // core that stopped answering (the outcome is then unknown: a time-out).
        let backstop = self.info.request_timeout + BACKSTOP;
        match tokio::time::timeout(backstop, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(timed_out()),
        }
    }

    /// Proposes `op` on behalf of this handle's caller (nobody unless
    /// [`Handle::with_caller`] named one).
    pub async fn propose(&self, op: Op) -> Result<Applied, Status> {
        let caller = self.caller.clone();
        self.propose_as(op, &caller).await
    }

    /// Proposes `op` from `caller` and waits until this member applied it: its
    /// permissions are checked where it is applied. The command is built here, on the
    /// client's task, not on the core's.
    pub async fn propose_as(&self, op: Op, caller: &Caller) -> Result<Applied, Status> {
        self.refuse_on_learner()?;
        let (tx, rx) = oneshot::channel();
        let me = NodeId(self.info.member_id);
        let proposal = Proposal::new_as(me, &self.request_ids, op, caller);
        self.send_request(Input::Propose(proposal, tx))?;
        self.wait(rx).await
    }

    /// Who presents `credentials`, by the auth state of `view` (this member's latest
    /// view if none). A linearizable read identifies its sender with the view its read
    /// barrier gave: every auth change and token chosen before the read is then applied
    /// here, as etcd looks after its read index.
    pub fn identify(
        &self,
        credentials: &Credentials,
        view: Option<&View>,
    ) -> Result<Caller, Status> {
        if credentials.is_empty() {
            // Nobody: no need to look at the auth state (the common case, without auth).
            return Ok(self.caller.as_ref().clone());
        }
        let latest;
        let view = match view {
            Some(view) => view,
            None => {
                latest = self.serializable();
                &latest
            }
        };
        self.info.authn.caller(credentials, view.store.auth())
    }

    /// The caller of a tonic request, by this member's state now.
    pub fn caller_of<T>(&self, request: &tonic::Request<T>) -> Result<Caller, Status> {
        self.identify(&Credentials::of_request(request), None)
    }

    /// This handle, proposing on behalf of `caller` (for services that propose from
    /// several places, as Lock and Election do).
    pub fn with_caller(&self, caller: Caller) -> Handle {
        Handle {
            caller: Arc::new(caller),
            ..self.clone()
        }
    }

    /// Refuses nobody while auth is on (etcd's `requireAuthInfo`).
    pub fn require_user(&self, caller: &Caller) -> Result<(), Status> {
        let view = self.serializable();
        if view.store.auth().enabled() && caller.user.is_empty() {
            return Err(crate::convert::auth_status(::kv::AuthError::UserEmpty));
        }
        Ok(())
    }

    /// Refuses the sender of `request` unless it is an administrator, as etcd's
    /// Defragment, Snapshot, Hash and HashKV do: with the auth error unconverted (code
    /// Unknown, `auth: …`).
    pub fn check_admin_unconverted<T>(&self, request: &tonic::Request<T>) -> Result<(), Status> {
        let checked = match self.caller_of(request) {
            Err(_) => Err(::kv::AuthError::InvalidAuthToken),
            Ok(caller) => self.serializable().store.auth().check_admin(&caller),
        };
        checked.map_err(|e| Status::unknown(e.unconverted_message()))
    }

    /// Refuses `caller` unless it is an administrator (while auth is on).
    pub fn check_admin(&self, caller: &Caller) -> Result<(), Status> {
        let view = self.serializable();
        view.store
            .auth()
            .check_admin(caller)
            .map_err(crate::convert::auth_status)
    }

    /// A view every write completed before this call is visible in.
    pub async fn linearizable(&self) -> Result<Arc<View>, Status> {
        self.refuse_on_learner()?;
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut rounds = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
            rounds.next.push(tx);
            !std::mem::replace(&mut rounds.running, true)
        };
        if first {
            tokio::spawn(self.clone().read_rounds());
        }
        self.wait(rx).await
    }

    /// Runs read rounds until no reader is waiting for one.
    async fn read_rounds(self) {
        loop {
            let readers = {
                let mut rounds = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
                if rounds.next.is_empty() {
                    rounds.running = false;
                    return;
                }
                std::mem::take(&mut rounds.next)
            };
            let view = self.read_once().await;
            for reader in readers {
                let _ = reader.send(view.clone());
            }
        }
    }

    async fn read_once(&self) -> Result<Arc<View>, Status> {
        let (tx, rx) = oneshot::channel();
        self.send_request(Input::Read(tx))?;
        match self.wait(rx).await? {
            Applied::Read(view) => Ok(view),
            other => Err(Status::internal(format!("read answered with {other:?}"))),
        }
    }

    /// This member's latest view, possibly behind the cluster.
    pub fn serializable(&self) -> Arc<View> {
        self.views.borrow().clone()
    }

    /// A view: linearizable unless `serializable`.
    pub async fn view(&self, serializable: bool) -> Result<Arc<View>, Status> {
        if serializable {
            Ok(self.serializable())
        } else {
            self.linearizable().await
        }
    }

    /// Runs `f` on the core and returns its result.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.send_request(Input::Query(Box::new(move |core| {
            let _ = tx.send(Ok(f(core)));
        })))?;
        self.wait(rx).await
    }

    /// Runs `f` on the core with the way to answer, which it may keep and answer later
    /// (a membership change answers once applied).
    pub async fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core, crate::node::Reply<T>) + Send + 'static,
    ) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.send_request(Input::Query(Box::new(move |core| f(core, tx))))?;
        self.wait(rx).await
    }

    /// A fresh stream number (watch streams are keyed by it).
    pub fn next_stream(&self) -> u64 {
        self.streams.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a watch request to the core (no answer expected). A new watcher takes room
    /// in the core's queue like any request; a cancel or a progress request, which frees
    /// or costs nothing lasting, always goes through.
    pub fn watch_request(&self, request: crate::watchers::Request) -> Result<(), Status> {
        if request.is_create() {
            self.refuse_on_learner()?;
            return self.send_request(Input::Watch(request));
        }
        self.send(Input::Watch(request))
    }
}

/// The answer a proposal of one kind must get; anything else is a bug.
fn unexpected(applied: &Applied) -> Status {
    Status::internal(format!("unexpected answer {applied:?}"))
}

/// Authentication with fresh tokens and the cheapest bcrypt cost, for tests.
#[cfg(test)]
pub(crate) fn test_authn() -> Arc<crate::auth::Authn> {
    Arc::new(crate::auth::Authn {
        tokens: Arc::new(crate::auth::Tokens::new(crate::auth::TOKEN_TTL_DEFAULT)),
        bcrypt_cost: 4,
        jwt: None,
    })
}

/// A handle on a core that is only a queue, for tests to play the core: an empty store,
/// and requests up to `max_request_bytes`.
#[cfg(test)]
pub(crate) fn test_handle(max_request_bytes: usize) -> (Handle, crate::node::InputQueue) {
    let (inputs, core) = tokio::sync::mpsc::unbounded_channel();
    let view = View {
        store: ::kv::Store::new(),
        header: crate::proto::etcdserverpb::ResponseHeader::default(),
    };
    let (_, views) = watch::channel(Arc::new(view));
    let info = Info {
        cluster_id: 1,
        member_id: 1,
        learner: Arc::default(),
        max_request_bytes,
        request_timeout: Duration::from_secs(5),
        authn: test_authn(),
        client_dialer: None,
    };
    let ids = RequestIds::after(0);
    (
        Handle::new(inputs, views, info, Inflow::default(), ids),
        core,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::InputQueue;
    use crate::proto::etcdserverpb as pb;

    fn handle() -> (Handle, InputQueue) {
        test_handle(1 << 20)
    }

    /// The core's answer to read round `round`: a view whose header revision says which.
    fn answer(input: Input, round: i64) {
        let Input::Read(reply) = input else {
            panic!("expected a read, got {input:?}");
        };
        let header = pb::ResponseHeader {
            revision: round,
            ..Default::default()
        };
        let view = View {
            store: ::kv::Store::new(),
            header,
        };
        let _ = reply.send(Ok(Applied::Read(Arc::new(view))));
    }

    async fn next_input(core: &mut InputQueue) -> Option<Input> {
        tokio::time::timeout(Duration::from_secs(1), core.recv())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn reads_arriving_during_a_round_share_the_next_one_never_the_current() {
        let (handle, mut core) = handle();
        let first = tokio::spawn({
            let handle = handle.clone();
            async move { handle.linearizable().await }
        });
        let round_one = next_input(&mut core)
            .await
            .expect("the first read reaches the core");
        // Nine reads arrive while round one is under way.
        let later: Vec<_> = (0..9)
            .map(|_| {
                let handle = handle.clone();
                tokio::spawn(async move { handle.linearizable().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(core.try_recv().is_err(), "a second round started early");
        answer(round_one, 1);
        assert_eq!(first.await.unwrap().unwrap().header.revision, 1);
        let round_two = next_input(&mut core).await.expect("the next round");
        answer(round_two, 2);
        for read in later {
            // Served by the round that began after they arrived.
            assert_eq!(read.await.unwrap().unwrap().header.revision, 2);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            core.try_recv().is_err(),
            "no reader was waiting for a third round"
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_clients_with_too_many_requests_and_proposes_nothing() {
        let (inputs, mut core) = tokio::sync::mpsc::unbounded_channel();
        let (_, views) = watch::channel(Arc::new(View {
            store: ::kv::Store::new(),
            header: pb::ResponseHeader::default(),
        }));
        let info = Info {
            cluster_id: 1,
            member_id: 1,
            learner: Arc::default(),
            max_request_bytes: 1 << 20,
            request_timeout: Duration::from_secs(5),
            authn: test_authn(),
            client_dialer: None,
        };
        let inflow = Inflow::with_limits(1, 1 << 20);
        let handle = Handle::new(inputs, views, info, inflow.clone(), RequestIds::after(0));
        let put = || Op::Put(pb::PutRequest::default());
        let first = {
            let handle = handle.clone();
            tokio::spawn(async move { handle.propose(put()).await })
        };
        let queued = next_input(&mut core)
            .await
            .expect("the first reaches the core");
        let refused = handle.propose(put()).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(refused.message(), "etcdserver: too many requests");
        // Queries and new watchers take room as requests do; a cancel always goes through.
        let query = handle.query(|_| ()).await.unwrap_err();
        assert_eq!(query.code(), tonic::Code::ResourceExhausted);
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let create = crate::watchers::Request::Create {
            stream: 1,
            id: 1,
            spec: crate::watchers::Spec::default(),
            tx,
        };
        let refused = handle.watch_request(create).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            core.try_recv().is_err(),
            "a refused request reached the core"
        );
        let cancel = crate::watchers::Request::Cancel { stream: 1, id: 1 };
        handle
            .watch_request(cancel)
            .expect("a cancel is never refused");
        assert!(matches!(core.try_recv(), Ok(Input::Watch(_))));
        // The core takes the first off the queue: there is room again.
        inflow.client_taken();
        let Input::Propose(_, reply) = queued else {
            panic!("expected a proposal, got {queued:?}");
        };
        let _ = reply.send(Err(Status::unavailable("done")));
        assert!(first.await.unwrap().is_err());
        let again = tokio::spawn(async move { handle.propose(put()).await });
        assert!(
            next_input(&mut core).await.is_some(),
            "admitted once there is room"
        );
        drop(again);
    }

    #[tokio::test]
    async fn a_failed_round_fails_its_readers_and_the_next_round_starts_afresh() {
        let (handle, mut core) = handle();
        let read = {
            let handle = handle.clone();
            tokio::spawn(async move { handle.linearizable().await })
        };
        let Some(Input::Read(reply)) = next_input(&mut core).await else {
            panic!("no read");
        };
        let _ = reply.send(Err(Status::unavailable("etcdserver: no leader")));
        let failed = read.await.unwrap().unwrap_err();
        assert_eq!(failed.message(), "etcdserver: no leader");
        let again = {
            let handle = handle.clone();
            tokio::spawn(async move { handle.linearizable().await })
        };
        answer(next_input(&mut core).await.expect("a new round"), 3);
        assert_eq!(again.await.unwrap().unwrap().header.revision, 3);
    }
}
