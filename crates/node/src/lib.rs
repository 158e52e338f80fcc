//! Synod's node layer: what a member decides around the consensus core, without I/O. The
//! server runs it on its core task and the simulator runs it under its seeds, so the same
//! code is checked that serves clients.
//!
//! # Layout
//! - [`requests`]: the client requests a member is answering, and the error each gets when
//!   it cannot be served, chosen so that an error never misreports a write's fate.

pub mod requests;

pub use requests::{Failure, Kind, Requests};
