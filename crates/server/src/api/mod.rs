//! The etcd v3 gRPC services. Each handler turns a request into a proposal, a read of a
//! published view, or a query on the core, and waits with a deadline: a request that
//! cannot complete (no quorum) fails with etcd's retryable "request timed out".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tonic::Status;

use crate::config::Member;
use crate::node::{Applied, Core, Input, View};
use crate::proto::synodpb::command::Op;

pub mod cluster;
pub mod coordination;
pub mod election;
pub mod health;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod watch_api;

/// What every service shares: the way to the core and the latest view.
#[derive(Clone, Debug)]
pub struct Handle {
    inputs: Sender<Input>,
    views: watch::Receiver<Arc<View>>,
    /// Static facts about the cluster.
    pub info: Arc<Info>,
    streams: Arc<AtomicU64>,
}

/// Facts the services answer from without asking the core.
#[derive(Debug)]
pub struct Info {
    /// The cluster id.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// Every member.
    pub members: Vec<Member>,
    /// The largest request accepted.
    pub max_request_bytes: usize,
    /// How long a request may wait for the cluster.
    pub request_timeout: Duration,
}

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
    pub fn new(inputs: Sender<Input>, views: watch::Receiver<Arc<View>>, info: Info) -> Handle {
        Handle {
            inputs,
            views,
            info: Arc::new(info),
            streams: Arc::new(AtomicU64::new(1)),
        }
    }

    fn send(&self, input: Input) -> Result<(), Status> {
        self.inputs.send(input).map_err(|_| stopped())
    }

    async fn wait<T>(&self, rx: oneshot::Receiver<Result<T, Status>>) -> Result<T, Status> {
        match tokio::time::timeout(self.info.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(timed_out()),
        }
    }

    /// Proposes `op` and waits until this member applied it.
    pub async fn propose(&self, op: Op) -> Result<Applied, Status> {
        let (tx, rx) = oneshot::channel();
        self.send(Input::Propose(op, tx))?;
        self.wait(rx).await
    }

    /// A view every write completed before this call is visible in.
    pub async fn linearizable(&self) -> Result<Arc<View>, Status> {
        let (tx, rx) = oneshot::channel();
        self.send(Input::Read(tx))?;
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
        self.send(Input::Query(Box::new(move |core| {
            let _ = tx.send(Ok(f(core)));
        })))?;
        self.wait(rx).await
    }

    /// A fresh stream number (watch streams are keyed by it).
    pub fn next_stream(&self) -> u64 {
        self.streams.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a watch request to the core (no answer expected).
    pub fn watch_request(&self, request: crate::watchers::Request) -> Result<(), Status> {
        self.send(Input::Watch(request))
    }
}

/// The answer a proposal of one kind must get; anything else is a bug.
fn unexpected(applied: &Applied) -> Status {
    Status::internal(format!("unexpected answer {applied:?}"))
}
