//! etcd's errors, with the gRPC status code and the message text clients see.

use std::fmt;

/// A gRPC status code (the subset etcd's key-value errors use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// 3
    InvalidArgument,
    /// 5
    NotFound,
    /// 9
    FailedPrecondition,
    /// 11
    OutOfRange,
    /// 7
    PermissionDenied,
    /// 16
    Unauthenticated,
    /// 2
    Unknown,
}

/// Why a request was refused. Nothing of a refused request is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvError {
    /// The request has no key.
    EmptyKey,
    /// The revision asked for was compacted away.
    Compacted,
    /// The revision asked for does not exist yet.
    FutureRevision,
    /// `ignore_value` on a key that does not exist.
    KeyNotFound,
    /// `ignore_value` together with a value.
    ValueProvided,
    /// `ignore_lease` together with a lease.
    LeaseProvided,
    /// The lease does not exist.
    LeaseNotFound,
    /// A transaction branch (or its compares) exceeds the operation limit.
    TooManyOps,
    /// A transaction branch writes one key twice.
    DuplicateKey,
    /// A lease with the requested ID exists.
    LeaseExists,
    /// The TTL asked for is above etcd's maximum.
    LeaseTtlTooLarge,
}

impl KvError {
    /// The gRPC code etcd answers with.
    pub fn code(self) -> Code {
        match self {
            KvError::EmptyKey
            | KvError::KeyNotFound
            | KvError::ValueProvided
            | KvError::LeaseProvided
            | KvError::TooManyOps
            | KvError::DuplicateKey => Code::InvalidArgument,
            KvError::Compacted | KvError::FutureRevision | KvError::LeaseTtlTooLarge => {
                Code::OutOfRange
            }
            KvError::LeaseExists => Code::FailedPrecondition,
            KvError::LeaseNotFound => Code::NotFound,
        }
    }

    /// etcd's message text, exactly.
    pub fn message(self) -> &'static str {
        match self {
            KvError::EmptyKey => "etcdserver: key is not provided",
            KvError::Compacted => "etcdserver: mvcc: required revision has been compacted",
            KvError::FutureRevision => "etcdserver: mvcc: required revision is a future revision",
            KvError::KeyNotFound => "etcdserver: key not found",
            KvError::ValueProvided => "etcdserver: value is provided",
            KvError::LeaseProvided => "etcdserver: lease is provided",
            KvError::LeaseNotFound => "etcdserver: requested lease not found",
            KvError::TooManyOps => "etcdserver: too many operations in txn request",
            KvError::DuplicateKey => "etcdserver: duplicate key given in txn request",
            KvError::LeaseExists => "etcdserver: lease already exists",
            KvError::LeaseTtlTooLarge => "etcdserver: too large lease TTL",
        }
    }
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for KvError {}
