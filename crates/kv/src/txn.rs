//! Transactions: compare, then run one branch of requests, all at one revision.

use crate::error::KvError;
use crate::store::{
    DeleteRange, DeleteRangeResponse, Put, PutResponse, Range, RangeResponse, Store,
};

/// etcd's limit on the requests of one branch (and on compares), `--max-txn-ops`.
pub const TXN_OPS_MAX: usize = 128;

/// What a compare looks at, with the operand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The version (0 for a missing key).
    Version(i64),
    /// The create revision (0 for a missing key).
    Create(i64),
    /// The mod revision (0 for a missing key).
    Mod(i64),
    /// The value, bytewise (a missing key never matches).
    Value(Vec<u8>),
    /// The lease (0 for none or a missing key).
    Lease(i64),
}

/// How a compare relates the key's field to the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// `=`
    Equal,
    /// `>`
    Greater,
    /// `<`
    Less,
    /// `!=`
    NotEqual,
}

/// etcd's `Compare`: true when every key of the range satisfies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The relation.
    pub relation: Relation,
    /// The field and operand.
    pub target: Target,
    /// The key, or the start of the range.
    pub key: Vec<u8>,
    /// As in [`Range::range_end`].
    pub range_end: Vec<u8>,
}

/// One request of a branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOp {
    /// A read.
    Range(Range),
    /// A write.
    Put(Put),
    /// A deletion.
    DeleteRange(DeleteRange),
    /// A nested transaction.
    Txn(Txn),
}

/// The answer to one request of a branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseOp {
    /// A read's answer.
    Range(RangeResponse),
    /// A write's answer.
    Put(PutResponse),
    /// A deletion's answer.
    DeleteRange(DeleteRangeResponse),
    /// A nested transaction's answer.
    Txn(TxnResponse),
}

/// etcd's `TxnRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    /// All must hold for `success` to run; otherwise `failure` runs.
    pub compare: Vec<Compare>,
    /// Run when every compare holds.
    pub success: Vec<RequestOp>,
    /// Run otherwise.
    pub failure: Vec<RequestOp>,
}

/// etcd's `TxnResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResponse {
    /// The header revision.
    pub revision: i64,
    /// Whether the compares held.
    pub succeeded: bool,
    /// One answer per request of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

impl Store {
    /// Runs a transaction. Refused as a whole (nothing applied) when a branch has too many
    /// requests, a request is invalid, or a branch writes a key twice.
    ///
    /// As etcd 3.4 does: every compare, nested ones included, is decided against the state
    /// before the transaction (the path through it); the requests on that path are then
    /// checked against that same state (leases exist, keys that `ignore_value` needs exist,
    /// read revisions exist); only then is anything applied, and applying cannot fail.
    pub fn txn(&mut self, t: &Txn) -> Result<TxnResponse, KvError> {
        validate(t)?;
        let mut path = Vec::new();
        self.choose_path(t, &mut path);
        let mut steps = path.iter().copied();
        self.check_path(t, &mut steps)?;
        let mut steps = path.iter().copied();
        let response = self.run_txn(t, &mut steps);
        self.end_write();
        response
    }

    /// Which branch each transaction (outer first, then nested ones depth-first) takes,
    /// judged on the current state.
    fn choose_path(&self, t: &Txn, path: &mut Vec<bool>) {
        let succeeded = t.compare.iter().all(|c| self.holds(c));
        path.push(succeeded);
        let branch = if succeeded { &t.success } else { &t.failure };
        for op in branch {
            if let RequestOp::Txn(nested) = op {
                self.choose_path(nested, path);
            }
        }
    }

    /// The requests on the path, checked against the current state: puts first, then
    /// reads, as etcd does.
    fn check_path(&self, t: &Txn, path: &mut impl Iterator<Item = bool>) -> Result<(), KvError> {
        let mut puts = Vec::new();
        let mut ranges = Vec::new();
        collect_path(t, path, &mut puts, &mut ranges);
        for p in puts {
            if p.lease != 0 && !self.lease_exists(p.lease) {
                return Err(KvError::LeaseNotFound);
            }
            if p.ignore_value && !p.value.is_empty() {
                return Err(KvError::ValueProvided);
            }
            if p.ignore_lease && p.lease != 0 {
                return Err(KvError::LeaseProvided);
            }
            if p.ignore_value || p.ignore_lease {
                let r = Range {
                    key: p.key.clone(),
                    ..Range::default()
                };
                if self.range(&r).map_or(true, |r| r.kvs.is_empty()) {
                    return Err(KvError::KeyNotFound);
                }
            }
        }
        for r in ranges {
            if r.revision > self.revision() {
                return Err(KvError::FutureRevision);
            }
            if r.revision > 0 && r.revision < self.compacted() {
                return Err(KvError::Compacted);
            }
        }
        Ok(())
    }

    fn run_txn(
        &mut self,
        t: &Txn,
        path: &mut impl Iterator<Item = bool>,
    ) -> Result<TxnResponse, KvError> {
        let succeeded = path.next().unwrap_or(false);
        let branch = if succeeded { &t.success } else { &t.failure };
        let mut responses = Vec::with_capacity(branch.len());
        for op in branch {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range(r)?),
                RequestOp::Put(p) => ResponseOp::Put(self.put_in_txn(p)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete_in_txn(d)?),
                RequestOp::Txn(nested) => ResponseOp::Txn(self.run_txn(nested, path)?),
            });
        }
        Ok(TxnResponse {
            revision: self.revision(),
            succeeded,
            responses,
        })
    }

    fn holds(&self, c: &Compare) -> bool {
        let r = Range {
            key: c.key.clone(),
            range_end: c.range_end.clone(),
            ..Range::default()
        };
        let kvs = self.range(&r).map(|r| r.kvs).unwrap_or_default();
        if kvs.is_empty() {
            if matches!(c.target, Target::Value(_)) {
                return false;
            }
            return compare_field(c, &crate::store::KeyValue::default());
        }
        kvs.iter().all(|kv| compare_field(c, kv))
    }
}

/// The puts and reads on a transaction's path (nested transactions included).
fn collect_path<'a>(
    t: &'a Txn,
    path: &mut impl Iterator<Item = bool>,
    puts: &mut Vec<&'a Put>,
    ranges: &mut Vec<&'a Range>,
) {
    let succeeded = path.next().unwrap_or(false);
    let branch = if succeeded { &t.success } else { &t.failure };
    for op in branch {
        match op {
            RequestOp::Put(p) => puts.push(p),
            RequestOp::Range(r) => ranges.push(r),
            RequestOp::DeleteRange(_) => {}
            RequestOp::Txn(nested) => collect_path(nested, path, puts, ranges),
        }
    }
}

fn compare_field(c: &Compare, kv: &crate::store::KeyValue) -> bool {
    use std::cmp::Ordering;
    let ordering = match &c.target {
        Target::Version(v) => kv.version.cmp(v),
        Target::Create(v) => kv.create_revision.cmp(v),
        Target::Mod(v) => kv.mod_revision.cmp(v),
        Target::Lease(v) => kv.lease.cmp(v),
        Target::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
    };
    match c.relation {
        Relation::Equal => ordering == Ordering::Equal,
        Relation::Greater => ordering == Ordering::Greater,
        Relation::Less => ordering == Ordering::Less,
        Relation::NotEqual => ordering != Ordering::Equal,
    }
}

/// etcd's checks before anything runs: sizes, empty keys, and no key written twice in a
/// branch (counting nested transactions' branches). A server checks them before it
/// proposes the transaction, so one refused here costs no slot in the log.
pub fn validate(t: &Txn) -> Result<(), KvError> {
    if t.compare.len() > TXN_OPS_MAX
        || t.success.len() > TXN_OPS_MAX
        || t.failure.len() > TXN_OPS_MAX
    {
        return Err(KvError::TooManyOps);
    }
    for branch in [&t.success, &t.failure] {
        for op in branch {
            let key = match op {
                RequestOp::Range(r) => &r.key,
                RequestOp::Put(p) => &p.key,
                RequestOp::DeleteRange(d) => &d.key,
                RequestOp::Txn(nested) => {
                    validate(nested)?;
                    continue;
                }
            };
            if key.is_empty() {
                return Err(KvError::EmptyKey);
            }
        }
        check_intervals(branch)?;
    }
    Ok(())
}

/// A branch's puts and the ranges it deletes.
type Writes<'a> = (Vec<&'a [u8]>, Vec<(&'a [u8], &'a [u8])>);

/// etcd 3.4's duplicate check (`checkIntervals`), rule for rule, since clients see its
/// verdicts: a branch's deletes are collected first; each nested transaction's puts must
/// not repeat an earlier put nor fall in a delete collected so far (the two branches of
/// one nested transaction may put the same key: only one runs); its deletes then join
/// the collection; last, the branch's own puts must be new and outside every delete.
/// A delete's range is `[key, range_end)` compared as strings, so a "from key" delete
/// (`range_end` = `"\0"`) covers nothing here, as in etcd.
fn check_intervals(branch: &[RequestOp]) -> Result<Writes<'_>, KvError> {
    let mut deletes: Vec<(&[u8], &[u8])> = branch
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some((d.key.as_slice(), d.range_end.as_slice())),
            _ => None,
        })
        .collect();
    let deleted = |deletes: &[(&[u8], &[u8])], key: &[u8]| {
        deletes.iter().any(|(start, end)| covers(start, end, key))
    };
    let mut puts: Vec<&[u8]> = Vec::new();
    for op in branch {
        let RequestOp::Txn(nested) = op else { continue };
        let (puts_then, deletes_then) = check_intervals(&nested.success)?;
        let (puts_else, deletes_else) = check_intervals(&nested.failure)?;
        for key in &puts_then {
            if puts.contains(key) || deleted(&deletes, key) {
                return Err(KvError::DuplicateKey);
            }
            puts.push(key);
        }
        for key in &puts_else {
            let repeated = puts.contains(key) && !puts_then.contains(key);
            if repeated || deleted(&deletes, key) {
                return Err(KvError::DuplicateKey);
            }
            if !puts.contains(key) {
                puts.push(key);
            }
        }
        deletes.extend(deletes_then);
        deletes.extend(deletes_else);
    }
    for op in branch {
        let RequestOp::Put(p) = op else { continue };
        if puts.contains(&p.key.as_slice()) || deleted(&deletes, &p.key) {
            return Err(KvError::DuplicateKey);
        }
        puts.push(&p.key);
    }
    Ok((puts, deletes))
}

/// Whether a delete of `[start, end)` (just `start` if `end` is empty) covers `key`,
/// comparing as plain strings as etcd's interval tree does.
fn covers(start: &[u8], end: &[u8], key: &[u8]) -> bool {
    if end.is_empty() {
        key == start
    } else {
        start <= key && key < end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> RequestOp {
        RequestOp::Put(Put {
            key: key.into(),
            value: value.into(),
            ..Put::default()
        })
    }

    fn b_is_absent() -> Compare {
        Compare {
            relation: Relation::Equal,
            target: Target::Version(0),
            key: "b".into(),
            range_end: Vec::new(),
        }
    }

    #[test]
    fn a_transaction_is_one_revision_and_nested_branches_run_by_their_own_compares() {
        let mut s = Store::new();
        let nested = Txn {
            compare: vec![b_is_absent()],
            success: vec![put("b", "nested")],
            failure: vec![put("c", "never")],
        };
        let t = Txn {
            compare: Vec::new(),
            success: vec![put("a", "1"), RequestOp::Txn(nested)],
            failure: Vec::new(),
        };
        let r = s.txn(&t).unwrap();
        assert_eq!((r.revision, r.succeeded, s.revision()), (2, true, 2));
        let read = |s: &Store, key: &str| {
            let range = Range {
                key: key.into(),
                ..Range::default()
            };
            s.range(&range).unwrap().kvs
        };
        assert_eq!(
            read(&s, "b")[0].mod_revision,
            2,
            "one revision for the whole txn"
        );
        assert!(read(&s, "c").is_empty());
    }

    #[test]
    fn nested_compares_and_checks_see_the_state_before_the_transaction() {
        let mut s = Store::new();
        let nested = Txn {
            compare: vec![b_is_absent()],
            success: vec![put("c", "b was absent")],
            failure: vec![put("c", "b was present")],
        };
        let t = Txn {
            success: vec![put("b", "1"), RequestOp::Txn(nested)],
            ..Txn::default()
        };
        s.txn(&t).unwrap();
        let c = Range {
            key: "c".into(),
            ..Range::default()
        };
        assert_eq!(s.range(&c).unwrap().kvs[0].value, b"b was absent".to_vec());
        // A read of the revision the transaction itself creates is refused, as in etcd.
        let future_read = Txn {
            success: vec![
                put("d", "1"),
                RequestOp::Range(Range {
                    key: "d".into(),
                    revision: s.revision() + 1,
                    ..Range::default()
                }),
            ],
            ..Txn::default()
        };
        let before = s.clone();
        assert_eq!(s.txn(&future_read), Err(KvError::FutureRevision));
        assert_eq!(s, before);
    }

    #[test]
    fn oversized_or_duplicating_transactions_are_refused_whole() {
        let mut s = Store::new();
        let big = Txn {
            success: (0..=TXN_OPS_MAX)
                .map(|i| put(&format!("k{i}"), "v"))
                .collect(),
            ..Txn::default()
        };
        assert_eq!(s.txn(&big), Err(KvError::TooManyOps));
        let duplicate = Txn {
            success: vec![put("a", "1"), put("a", "2")],
            ..Txn::default()
        };
        assert_eq!(s.txn(&duplicate), Err(KvError::DuplicateKey));
        let put_then_delete = Txn {
            success: vec![
                put("a/1", "1"),
                RequestOp::DeleteRange(DeleteRange {
                    key: "a".into(),
                    range_end: "b".into(),
                    ..DeleteRange::default()
                }),
            ],
            ..Txn::default()
        };
        assert_eq!(s.txn(&put_then_delete), Err(KvError::DuplicateKey));
        // etcd compares a delete's range as plain strings: a "from key" delete (range
        // end "\0") covers nothing in the duplicate check.
        let from_key = Txn {
            success: vec![
                put("b/1", "1"),
                RequestOp::DeleteRange(DeleteRange {
                    key: "b".into(),
                    range_end: vec![0],
                    ..DeleteRange::default()
                }),
            ],
            ..Txn::default()
        };
        assert!(s.clone().txn(&from_key).is_ok());
        // The two branches of a nested transaction may put the same key.
        let either = Txn {
            success: vec![RequestOp::Txn(Txn {
                success: vec![put("n", "1")],
                failure: vec![put("n", "2")],
                ..Txn::default()
            })],
            ..Txn::default()
        };
        assert!(s.clone().txn(&either).is_ok());
        let failing = Txn {
            success: vec![
                put("x", "1"),
                RequestOp::Put(Put {
                    key: "y".into(),
                    ignore_value: true,
                    ..Put::default()
                }),
            ],
            ..Txn::default()
        };
        assert_eq!(s.txn(&failing), Err(KvError::KeyNotFound));
        assert_eq!(
            s,
            Store::new(),
            "nothing of a refused transaction is applied"
        );
    }
}
