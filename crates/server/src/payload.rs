//! The replicated command as the engine and the log see it: opaque bytes (a protobuf
//! `synodpb.Command`), shared rather than copied as batches fan out to peers.

use std::sync::Arc;

use paxos::multi::Command;

/// An encoded command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload(pub Arc<[u8]>);

impl Command for Payload {
    fn size(&self) -> usize {
        self.0.len()
    }
}

impl storage::Codec for Payload {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }

    fn decode(bytes: &[u8]) -> Option<Payload> {
        Some(Payload(bytes.into()))
    }
}
