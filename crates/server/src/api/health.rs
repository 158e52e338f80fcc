//! gRPC health checking: SERVING while this member knows a leader (it can complete
//! requests), NOT_SERVING otherwise.

use std::pin::Pin;
use std::time::Duration;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::Handle;
use crate::proto::health::health_check_response::ServingStatus;
use crate::proto::health::health_server::Health;
use crate::proto::health::{HealthCheckRequest, HealthCheckResponse};

/// The health service.
#[derive(Debug)]
pub struct HealthService(pub Handle);

impl HealthService {
    async fn status(&self) -> ServingStatus {
        match self.0.query(|core| core.replica().leader()).await {
            Ok(Some(_)) => ServingStatus::Serving,
            _ => ServingStatus::NotServing,
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: self.status().await as i32,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let handle = self.0.clone();
        let stream = async_stream(handle);
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Reports the status now and then whenever it changes (checked every 500 ms).
fn async_stream(handle: Handle) -> impl Stream<Item = Result<HealthCheckResponse, Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let service = HealthService(handle);
        let mut last = None;
        loop {
            let now = service.status().await;
            if last != Some(now) {
                last = Some(now);
                let answer = HealthCheckResponse { status: now as i32 };
                if tx.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = tx.closed() => return,
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
