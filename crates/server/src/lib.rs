//! Synod's node runtime: a member of a Synod cluster. It drives the sans-I/O Multi-Paxos
//! replica (`paxos`), makes its votes durable through the write-ahead log (`storage`),
//! applies chosen commands to the etcd-semantics store (`kv`), talks to its peers over
//! TCP, and serves etcd's v3 gRPC API to clients (and HTTP probes and metrics).
//!
//! One task, the **core**, owns the replica and the store; everything else reaches it
//! through one queue. gRPC handlers (on tokio) propose commands, read published views of
//! the store, or run queries on the core; peer connections feed it messages; the core
//! writes the log through io_uring (or a committer thread), one write out at a time, the
//! rest grouped into the next. See `docs/ARCHITECTURE.md`.
//!
//! The member itself (replica, durability contract, requests, reads, snapshots) is
//! `node::Node`, generic over a state machine; this crate's [`machine`] is the etcd one,
//! and any other (see `crates/node/examples/counter.rs`) runs on the same consensus,
//! storage and node layer.
//!
//! # Layout
//! - [`config`]: a member's configuration, from etcd's flag values; member and cluster ids.
//! - [`bootstrap`]: who a member is and what it starts from, decided on its first start
//!   (from the flags, or by asking the cluster it joins) and kept in its data directory.
//! - [`server`]: start a member: recover the data directory, bind, serve, stop; the
//!   runtime members (and the benchmark client) run on.
//! - [`node`]: the core: the shell around the member (`node::Node`) that feeds it inputs
//!   and carries out its outputs: persists, messages, answers, snapshots, watchers; it
//!   follows the membership (dials members, admits their connections, answers changes);
//!   `node::trace`: the member's own trace (`--trace-file`), its clock on its messages.
//! - [`machine`]: the etcd store as the member's replicated state machine: applies
//!   commands, times leases, raises NOSPACE, publishes the member's attributes.
//! - [`inflow`]: the bounds on the core's queue: "too many requests" for clients, a
//!   pause in reading for peers.
//! - [`limits`]: every size and count limit, named with its unit.
//! - [`persist`]: the core's way to the disk: io_uring from the core's own loop, or a
//!   committer thread.
//! - [`watchers`]: watchers, their synced/behind state, fragmentation, progress.
//! - [`transport`]: peer connections: dialing with backoff, handshake, framed messages
//!   (over mutual TLS on `https` peer URLs).
//! - [`tls`]: TLS on every port with etcd's flags: rustls servers and dialers rebuilt
//!   when their certificate files change, `--auto-tls` and test certificates (rcgen), the
//!   verified client certificate's common name ([`tls::ClientCertificate`]).
//! - [`auth`]: who a request comes from (a simple token, a JWT, or the client
//!   certificate's CN), password hashing (bcrypt), and the permission checks of every
//!   request (nested transactions, `prev_kv`, leases' keys); the auth state itself is
//!   replicated in the store ([`kv::Auth`]).
//! - [`wire`]: the peer protocol's bytes; decoders never panic.
//! - [`payload`]: the replicated command as bytes (a protobuf `synodpb.Command`).
//! - [`convert`]: etcd's protobuf requests to the store's types and back; errors.
//! - [`client_port`]: clients' connections (plain or TLS): HTTP/2 (gRPC) KV calls served
//!   on each connection's task, every other call through tonic's router; HTTP/1.1, and
//!   HTTP/2 requests that are not gRPC, to [`http_api`].
//! - [`http_api`]: HTTP/1.1 on the client port and `--listen-metrics-urls`: `/health`,
//!   `/livez`, `/readyz`, `/version`, `/metrics`.
//! - [`gateway`]: etcd's JSON gateway (`/v3/…`): JSON to gRPC requests through the same
//!   services, answers back to JSON.
//! - [`metrics`]: Prometheus metrics under etcd's names and Synod's own; process metrics.
//! - [`api`]: the gRPC services: KV, Watch, Lease, Cluster, Maintenance, Auth, Lock, Election,
//!   health, and Synod's own Quorum (the quorum system, changed at runtime).
//! - [`restore`]: a member's data directory from a backup (Synod's, or an etcd
//!   database read by [`etcd_db`] through [`bbolt`]), for a new cluster.
//! - [`proto`]: generated protobuf code (`proto/`: etcd 3.4's API, wire-compatible).

pub mod api;
pub mod auth;
pub mod bbolt;
pub mod bootstrap;
pub mod client_port;
pub mod config;
pub mod convert;
pub mod etcd_db;
pub mod gateway;
pub mod http_api;
pub mod inflow;
pub mod limits;
pub mod machine;
pub mod metrics;
pub mod node;
pub mod payload;
pub mod persist;
pub mod proto;
pub mod restore;
pub mod server;
pub mod tls;
pub mod transport;
pub mod watchers;
pub mod wire;
