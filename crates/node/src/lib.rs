//! Synod's node layer: what a member decides around the consensus core, without I/O. The
//! server runs it on its core task and the simulator runs it under its seeds. (Today the
//! simulator runs the request table for writes; its reads take a path of their own.)
//!
//! # Layout
//! - [`requests`]: the client requests a member is answering, and the error each gets when
//!   it cannot be served, chosen so that an error never misreports a write's fate.

pub mod requests;

pub use requests::{Failure, Kind, Requests};
