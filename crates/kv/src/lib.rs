//! Synod's replicated state machine: a multi-version key-value store with etcd v3
//! semantics. Deterministic (no clocks, no I/O): replicas apply the same requests in slot
//! order and reach the same state, revision for revision.
//!
//! Every change creates a new **revision** of the whole store. Each key keeps its history
//! (`create_revision`, `mod_revision`, `version`, value, lease at every change, and
//! tombstones for deletions) until a compaction drops what no read may ask for any more.
//! Requests and answers follow etcd's `RangeRequest`, `PutRequest`, `DeleteRangeRequest`
//! and `CompactionRequest`, field for field; errors carry etcd's gRPC code and its exact
//! message text.
//!
//! Status: ranges (every option), puts, deletes, transactions, compaction, leases as
//! state (with the keep-alive count that makes expiry safe against a racing refresh),
//! alarms, watch events by revision and an event journal for live watchers, etcd's
//! `HashKV`, and snapshot and restore from a cheap clone (the key map is persistent).
//! Watch streams, progress notifications and fragmentation are the server's part
//! (`crates/server/src/watchers.rs`). Checked against etcd 3.4 through etcdctl
//! (`tests/etcd_differential.rs`) and over gRPC (`crates/server/tests/grpc_differential.rs`).
//!
//! # Layout
//! - [`auth`]: users, roles, permissions and whether auth is on, as replicated state,
//!   and the permission checks (etcd's auth store without the hashing and the tokens).
//! - [`error`]: [`KvError`], etcd's errors with their codes and messages.
//! - [`store`]: [`Store`], the revisions and per-key histories, and how it applies requests.
//! - [`request`]: the requests and answers (range, put, delete, compaction), and the
//!   checks etcd makes before it looks at any state.
//! - `history`: one key's changes as a persistent list, so clones of the store share them.
//! - [`txn`]: transactions: compares, branches, one revision per transaction.
//! - [`lease`]: leases as state: grant, revoke (deleting the keys), granted TTL, keys.
//! - [`watch`]: the events of a key or range from a revision on.
//! - [`hash`]: `HashKV` exactly as etcd computes it.
//! - [`snapshot`]: the whole state as checksummed bytes, and back.
//! - `import`: a store built from another's history, change by change, at its revisions
//!   (how an etcd database becomes a store).

pub mod auth;
pub mod error;
pub mod hash;
mod history;
mod import;
pub mod lease;
pub mod request;
pub mod snapshot;
pub mod store;
pub mod txn;
pub mod watch;

pub use auth::{Auth, AuthError, Caller, PermKind, Permission, Role, User};
pub use error::{Code, KvError};
pub use hash::HashKv;
pub use import::{ImportError, ImportedChange};
pub use lease::{LeaseGrant, LeaseGrantResponse, LeaseInfo, LEASE_TTL_MAX};
pub use snapshot::SnapshotError;
pub use store::{
    check_put_fields, Compaction, DeleteRange, DeleteRangeResponse, KeyValue, MemberAttributes,
    Put, PutResponse, Range, RangeResponse, SortOrder, SortTarget, Store,
};
pub use txn::{
    validate as check_txn, Compare, Relation, RequestOp, ResponseOp, Target, Txn, TxnResponse,
    TXN_OPS_MAX,
};
pub use watch::{Event, EventKind, Watch, WatchCompacted};
