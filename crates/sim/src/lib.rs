//! Synod's deterministic simulator: the real Paxos core on a simulated network, in virtual
//! time, with every random choice drawn from one seed, so any run replays exactly.
//!
//! # Layout
//! - [`cluster`]: a whole cluster of the members a server runs (`node::Node` with the etcd
//!   store and the server's watchers), clients, the lease keeper, watchers, and faults of
//!   network, disks, processes and clocks; the checkers' verdicts on each run.
//! - [`generate`]: linearizable histories made to order, for testing the checker.
//! - [`history`]: client histories and their JSON-lines file format.
//! - [`linearizability`]: the Wing–Gong/Lowe linearizability checker, per key.
//! - [`network`]: the simulated network: loss, duplication, random delays (and so
//!   reordering), all from the run's seeded generator.
//! - [`synod`]: single-decree Paxos runs told as a timeline, with the global view of when
//!   a value became chosen.
//! - [`workload`]: the clients' puts, compare-and-sets and deletes as etcd requests, and
//!   the member's etcd store watched for the agreement checkers.
//! - [`trace`]: traces worth drawing: events with message ids, vector clocks and node
//!   states, faults as intervals, the client history; the versioned JSON-lines format,
//!   its reader (which checks every clock), the ShiViz export, and the merge of a real
//!   cluster's member files (`synod serve --trace-file`) into one trace.
//! - [`seed000`]: the scripted five-acceptor story of seed 000, and why a later proposal can
//!   only carry the chosen value.

pub mod cluster;
pub mod generate;
pub mod history;
pub mod linearizability;
pub mod network;
pub mod seed000;
pub mod synod;
pub mod trace;
pub mod workload;
