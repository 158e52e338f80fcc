//! Bounds on what waits in the core's queue, so that a flood of clients or a peer that
//! sends faster than the core keeps up cannot grow the member's memory without end.
//!
//! A client's write or read that would exceed [`CLIENT_INPUTS_MAX`] waiting requests is
//! refused at once with etcd's "too many requests" (nothing is proposed, so nothing is
//! applied). A peer's message waits for room, up to [`PEER_INPUT_BYTES_MAX`] bytes of
//! messages in the queue: its connection is read no further meanwhile, and TCP slows the
//! sender. The core gives the room back as it takes each input off the queue.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tonic::Status;

use crate::limits::{CLIENT_INPUTS_MAX, PEER_INPUT_BYTES_MAX};

/// Peer room is counted in units of this many bytes (a semaphore counts in `u32`).
const PEER_UNIT_BYTES: usize = 1024;

/// The room left in the core's queue.
#[derive(Clone, Debug)]
pub struct Inflow {
    clients: Arc<Semaphore>,
    peer_units: Arc<Semaphore>,
    peer_units_max: usize,
}

impl Default for Inflow {
    fn default() -> Self {
        Inflow::with_limits(CLIENT_INPUTS_MAX, PEER_INPUT_BYTES_MAX)
    }
}

impl Inflow {
    /// Room for `clients` client requests and `peer_bytes` bytes of peer messages.
    pub fn with_limits(clients: usize, peer_bytes: usize) -> Inflow {
        let peer_units_max = peer_bytes / PEER_UNIT_BYTES;
        Inflow {
            clients: Arc::new(Semaphore::new(clients)),
            peer_units: Arc::new(Semaphore::new(peer_units_max)),
            peer_units_max,
        }
    }

    /// Takes room for one client request, or refuses it as etcd refuses a member that
    /// falls behind.
    pub fn admit_client(&self) -> Result<(), Status> {
        match self.clients.try_acquire() {
            Ok(permit) => {
                permit.forget();
                Ok(())
            }
            Err(_) => Err(too_many_requests()),
        }
    }

    /// The core took a client request off the queue (or it was never queued).
    pub fn client_taken(&self) {
        self.clients.add_permits(1);
    }

    /// Waits for room for a peer message of `bytes`.
    pub async fn admit_peer(&self, bytes: usize) {
        let units = self.peer_units(bytes);
        if let Ok(permit) = self.peer_units.acquire_many(units).await {
            permit.forget();
        }
    }

    /// The core took a peer message of `bytes` off the queue.
    pub fn peer_taken(&self, bytes: usize) {
        let units = self.peer_units(bytes);
        self.peer_units.add_permits(units as usize);
    }

    /// A message's room in units, never more than there is in all (so a message as large
    /// as a frame may be can always be admitted, once the queue is empty).
    fn peer_units(&self, bytes: usize) -> u32 {
        let units = bytes
            .div_ceil(PEER_UNIT_BYTES)
            .clamp(1, self.peer_units_max.max(1));
        u32::try_from(units).unwrap_or(u32::MAX)
    }
}

/// etcd's answer when a member cannot take more requests.
pub fn too_many_requests() -> Status {
    Status::resource_exhausted("etcdserver: too many requests")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clients_beyond_the_limit_are_refused_until_the_core_takes_one() {
        let inflow = Inflow::with_limits(2, 1 << 20);
        assert!(inflow.admit_client().is_ok());
        assert!(inflow.admit_client().is_ok());
        let refused = inflow.admit_client().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(refused.message(), "etcdserver: too many requests");
        inflow.client_taken();
        assert!(inflow.admit_client().is_ok());
    }

    #[tokio::test]
    async fn a_peer_waits_for_room_and_the_largest_message_always_fits() {
        let inflow = Inflow::with_limits(1, 4 * PEER_UNIT_BYTES);
        inflow.admit_peer(3 * PEER_UNIT_BYTES).await;
        let waiting = {
            let inflow = inflow.clone();
            tokio::spawn(async move { inflow.admit_peer(2 * PEER_UNIT_BYTES).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "admitted beyond the room");
        inflow.peer_taken(3 * PEER_UNIT_BYTES);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("admitted once the core took the first")
            .unwrap();
        inflow.peer_taken(2 * PEER_UNIT_BYTES);
        // Larger than all the room: it waits for an empty queue, not forever.
        tokio::time::timeout(Duration::from_secs(1), inflow.admit_peer(1 << 20))
            .await
            .expect("a message larger than the room still gets in");
    }
}
