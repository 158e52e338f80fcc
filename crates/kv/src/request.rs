//! The store's requests and answers, as etcd's `etcdserverpb` messages carry them, and
//! the checks etcd makes of a request before it looks at any state.

use crate::error::KvError;

/// A key's value at one revision, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The revision of the put that created the key (since its last deletion).
    pub create_revision: i64,
    /// The revision of its latest change.
    pub mod_revision: i64,
    /// Puts since its creation (1 after the creating put).
    pub version: i64,
    /// The value (empty for `keys_only`).
    pub value: Vec<u8>,
    /// The lease it is attached to (0: none).
    pub lease: i64,
}

/// How to order a range's results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Key order, no sorting asked for.
    #[default]
    None,
    /// Ascending.
    Ascend,
    /// Descending.
    Descend,
}

/// What to sort a range by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value.
    Value,
}

/// etcd's `RangeRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// The key, or the start of the range.
    pub key: Vec<u8>,
    /// Empty: just `key`; `[0]`: every key from `key` on; otherwise the end (excluded).
    pub range_end: Vec<u8>,
    /// At most this many results (0: no limit).
    pub limit: i64,
    /// The revision to read at (0 or less: the current one).
    pub revision: i64,
    /// Sort order.
    pub sort_order: SortOrder,
    /// Sort target.
    pub sort_target: SortTarget,
    /// Keys without values.
    pub keys_only: bool,
    /// Only the count.
    pub count_only: bool,
    /// Filters (0: no filter).
    pub min_mod_revision: i64,
    /// Filters (0: no filter).
    pub max_mod_revision: i64,
    /// Filters (0: no filter).
    pub min_create_revision: i64,
    /// Filters (0: no filter).
    pub max_create_revision: i64,
}

/// etcd's `RangeResponse` (header: the store's revision).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// The header revision.
    pub revision: i64,
    /// The results.
    pub kvs: Vec<KeyValue>,
    /// Whether the limit cut results off.
    pub more: bool,
    /// Keys in the range at the revision read (before filters and limit).
    pub count: i64,
}

/// etcd's `PutRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Put {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The lease to attach (0: none).
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value.
    pub ignore_value: bool,
    /// Keep the current lease.
    pub ignore_lease: bool,
}

/// etcd's `PutResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResponse {
    /// The header revision.
    pub revision: i64,
    /// The previous key-value, if asked for and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// etcd's `DeleteRangeRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRange {
    /// The key, or the start of the range.
    pub key: Vec<u8>,
    /// As in [`Range::range_end`].
    pub range_end: Vec<u8>,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

/// etcd's `DeleteRangeResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRangeResponse {
    /// The header revision.
    pub revision: i64,
    /// How many keys were deleted.
    pub deleted: i64,
    /// The deleted key-values, if asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// etcd's `CompactionRequest`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Drop history below this revision.
    pub revision: i64,
}

/// What etcd refuses in `p` before looking at any state.
pub(crate) fn check_put(p: &Put) -> Result<(), KvError> {
    check_put_fields(&p.key, &p.value, p.lease, p.ignore_value, p.ignore_lease)
}

/// What etcd refuses in a put before looking at any state (a server checks it before it
/// proposes the put, so a put refused here costs no slot in the log).
pub fn check_put_fields(
    key: &[u8],
    value: &[u8],
    lease: i64,
    ignore_value: bool,
    ignore_lease: bool,
) -> Result<(), KvError> {
    if key.is_empty() {
        Err(KvError::EmptyKey)
    } else if ignore_value && !value.is_empty() {
        Err(KvError::ValueProvided)
    } else if ignore_lease && lease != 0 {
        Err(KvError::LeaseProvided)
    } else {
        Ok(())
    }
}

/// etcd 3.4's ordering: a sort target without an order sorts ascending; ascending by key
/// is the order already. Descending compares in reverse (ties keep key order, as Go's
/// `sort.Reverse` does on small slices), rather than reversing an ascending sort.
pub(crate) fn sort(kvs: &mut [KeyValue], order: SortOrder, target: SortTarget) {
    let descend = match (order, target) {
        (SortOrder::None | SortOrder::Ascend, SortTarget::Key) => return,
        (SortOrder::Descend, _) => true,
        _ => false,
    };
    kvs.sort_by(|a, b| {
        let (a, b) = if descend { (b, a) } else { (a, b) };
        match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        }
    });
}
