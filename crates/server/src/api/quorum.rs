//! Synod's Quorum service: the quorum system over the current voters, read and changed
//! at runtime (majority ↔ flexible ↔ grid). A change is a membership change like any
//! other (chosen in the log, one at a time, passed on to the leader), refused with the
//! reason when the system does not fit the voters or its quorums do not meet.

use paxos::multi::Change;
use paxos::QuorumSpec;
use tonic::{Request, Response, Status};

use super::cluster::{leader_channel, leader_elsewhere, passed_on};
use super::Handle;
use crate::node::Reply;
use crate::proto::synodpb::{
    quorum_client::QuorumClient, quorum_server::Quorum, QuorumGetRequest, QuorumResponse,
    QuorumSetRequest,
};

/// The Quorum service.
#[derive(Debug)]
pub struct QuorumService(pub Handle);

impl QuorumService {
    async fn current(&self) -> Result<QuorumResponse, Status> {
        let (spec, epoch, voters) = self
            .0
            .query(|core| {
                let membership = core.replica().membership();
                let current = membership.current();
                (current.spec(), membership.epoch(), current.replicas().len())
            })
            .await?;
        Ok(QuorumResponse {
            header: Some(self.0.serializable().header),
            spec: spec.to_string(),
            epoch,
            voters: voters as u64,
        })
    }
}

#[tonic::async_trait]
impl Quorum for QuorumService {
    async fn get(&self, _: Request<QuorumGetRequest>) -> Result<Response<QuorumResponse>, Status> {
        self.0.refuse_on_learner()?;
        Ok(Response::new(self.current().await?))
    }

    async fn set(
        &self,
        request: Request<QuorumSetRequest>,
    ) -> Result<Response<QuorumResponse>, Status> {
        self.0.refuse_on_learner()?;
        self.0.check_admin(&self.0.caller_of(&request)?)?;
        let spec: QuorumSpec = (request.get_ref().spec.parse())
            .map_err(|e| Status::invalid_argument(format!("synod: {e}")))?;
        if let Some(url) = leader_elsewhere(&self.0, &request).await? {
            let channel = leader_channel(&self.0, url).await?;
            return QuorumClient::new(channel).set(passed_on(request)).await;
        }
        let change = Change::SetQuorum(spec);
        self.0
            .ask(move |core, reply: Reply<()>| core.reconfigure(change, reply))
            .await?;
        Ok(Response::new(self.current().await?))
    }
}
