//! The Watch service: one bidirectional stream carries many watchers. The stream's task
//! reads the client's requests and hands them to the core; the core queues responses on
//! the stream's bounded channel (a client that does not read makes its watchers fall
//! behind, not the server's memory grow).

use std::collections::HashSet;
use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::Credentials;
use super::Handle;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{self as pb, WatchResponse};
use crate::watchers::{self, Spec};

/// Responses queued per stream.
const STREAM_QUEUE: usize = 1024;

/// The Watch service.
#[derive(Debug)]
pub struct WatchService(pub Handle);

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let credentials = Credentials::of_request(&request);
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let handle = self.0.clone();
        let stream = handle.next_stream();
        tokio::spawn(async move {
            let mut ids = HashSet::new();
            let mut next_id = 0i64;
            let mut half_closed = false;
            loop {
                let request = match incoming.next().await {
                    Some(Ok(request)) => request,
                    // The client sends no more requests but still reads: as etcd, keep
                    // its watches until it goes away (its answer stream is dropped).
                    None => {
                        half_closed = true;
                        break;
                    }
                    Some(Err(_)) => break,
                };
                let Some(union) = request.request_union else {
                    continue;
                };
                let sent = match union {
                    RequestUnion::CreateRequest(c) => match refusal(&handle, &credentials, &c) {
                        Some(refused) => send(&tx, refused).await,
                        None => create(&handle, stream, &tx, &mut ids, &mut next_id, c).await,
                    },
                    RequestUnion::CancelRequest(c) => {
                        ids.remove(&c.watch_id);
                        handle.watch_request(watchers::Request::Cancel {
                            stream,
                            id: c.watch_id,
                        })
                    }
                    RequestUnion::ProgressRequest(_) => {
                        handle.watch_request(watchers::Request::Progress {
                            stream,
                            tx: tx.clone(),
                        })
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
            if half_closed {
                tx.closed().await;
            }
            let _ = handle.watch_request(watchers::Request::Close { stream });
        });
        let out = ReceiverStream::new(rx).map(Ok);
        Ok(Response::new(Box::pin(out)))
    }
}

/// Why a watch may not be created for the stream's caller, as etcd answers it: the
/// whole range must be readable.
fn refusal(
    handle: &Handle,
    credentials: &Credentials,
    c: &pb::WatchCreateRequest,
) -> Option<WatchResponse> {
    use kv::AuthError;
    let error = match handle.identify(credentials, None) {
        // The only way to have no caller: a token that is not (or no longer) known.
        Err(_) => AuthError::InvalidAuthToken,
        Ok(caller) => {
            let view = handle.serializable();
            match view
                .store
                .auth()
                .check(&caller, &c.key, &c.range_end, kv::PermKind::Read)
            {
                Ok(()) => return None,
                Err(e) => e,
            }
        }
    };
    let error = match error {
        AuthError::InvalidAuthToken | AuthError::AuthOldRevision | AuthError::UserEmpty => error,
        _ => AuthError::PermissionDenied,
    };
    let status = crate::convert::auth_status(error);
    Some(WatchResponse {
        header: Some(handle.serializable().header),
        watch_id: -1,
        created: true,
        canceled: true,
        // etcd sends the gRPC error's text, code included.
        cancel_reason: format!(
            "rpc error: code = {:?} desc = {}",
            status.code(),
            status.message()
        ),
        ..WatchResponse::default()
    })
}

async fn send(tx: &mpsc::Sender<WatchResponse>, response: WatchResponse) -> Result<(), Status> {
    tx.send(response)
        .await
        .map_err(|_| Status::cancelled("closed"))
}

async fn create(
    handle: &Handle,
    stream: u64,
    tx: &mpsc::Sender<WatchResponse>,
    ids: &mut HashSet<i64>,
    next_id: &mut i64,
    c: pb::WatchCreateRequest,
) -> Result<(), Status> {
    let id = if c.watch_id != 0 {
        c.watch_id
    } else {
        while ids.contains(next_id) {
            *next_id += 1;
        }
        *next_id
    };
    if ids.contains(&id) {
        let refused = WatchResponse {
            header: Some(handle.serializable().header),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream".into(),
            ..WatchResponse::default()
        };
        return tx
            .send(refused)
            .await
            .map_err(|_| Status::cancelled("closed"));
    }
    ids.insert(id);
    let filters = |f: i32| c.filters.contains(&f);
    let spec = Spec {
        watch: kv::Watch {
            key: c.key,
            range_end: c.range_end,
            start_revision: c.start_revision,
            prev_kv: c.prev_kv,
            no_put: filters(pb::watch_create_request::FilterType::Noput as i32),
            no_delete: filters(pb::watch_create_request::FilterType::Nodelete as i32),
        },
        progress_notify: c.progress_notify,
        fragment: c.fragment,
    };
    handle.watch_request(watchers::Request::Create {
        stream,
        id,
        spec,
        tx: tx.clone(),
    })
}
