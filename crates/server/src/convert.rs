//! etcd's protobuf requests into the state machine's types, and its answers back. What
//! the protobuf allows but etcd refuses (an unknown enum value) is refused here with an
//! `InvalidArgument` status, before anything is proposed.

use kv::{
    Compare, DeleteRange, KeyValue, KvError, Put, Range, Relation, RequestOp, ResponseOp,
    SortOrder, SortTarget, Target, Txn,
};
use tonic::Status;

use crate::proto::etcdserverpb as pb;
use crate::proto::mvccpb;

/// An etcd error as the gRPC status clients see.
pub fn status(e: KvError) -> Status {
    Status::new(code(e.code()), e.message())
}

/// etcd's answer for an auth error.
pub fn auth_status(e: kv::AuthError) -> Status {
    Status::new(code(e.code()), e.message())
}

fn code(code: kv::Code) -> tonic::Code {
    match code {
        kv::Code::InvalidArgument => tonic::Code::InvalidArgument,
        kv::Code::NotFound => tonic::Code::NotFound,
        kv::Code::FailedPrecondition => tonic::Code::FailedPrecondition,
        kv::Code::OutOfRange => tonic::Code::OutOfRange,
        kv::Code::PermissionDenied => tonic::Code::PermissionDenied,
        kv::Code::Unauthenticated => tonic::Code::Unauthenticated,
        kv::Code::Unknown => tonic::Code::Unknown,
    }
}

fn invalid(what: &str) -> Status {
    Status::invalid_argument(format!("etcdserver: invalid {what}"))
}

/// A range request.
pub fn range(r: &pb::RangeRequest) -> Result<Range, Status> {
    let sort_order = match r.sort_order {
        0 => SortOrder::None,
        1 => SortOrder::Ascend,
        2 => SortOrder::Descend,
        _ => return Err(invalid("sort option")),
    };
    let sort_target = match r.sort_target {
        0 => SortTarget::Key,
        1 => SortTarget::Version,
        2 => SortTarget::Create,
        3 => SortTarget::Mod,
        4 => SortTarget::Value,
        _ => return Err(invalid("sort option")),
    };
    Ok(Range {
        key: r.key.clone(),
        range_end: r.range_end.clone(),
        limit: r.limit,
        revision: r.revision,
        sort_order,
        sort_target,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    })
}

/// A put.
pub fn put(r: pb::PutRequest) -> Put {
    Put {
        key: r.key,
        value: r.value,
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

/// A delete.
pub fn delete(r: &pb::DeleteRangeRequest) -> DeleteRange {
    DeleteRange {
        key: r.key.clone(),
        range_end: r.range_end.clone(),
        prev_kv: r.prev_kv,
    }
}

fn compare(c: &pb::Compare) -> Result<Compare, Status> {
    use pb::compare::TargetUnion as U;
    let relation = match c.result {
        0 => Relation::Equal,
        1 => Relation::Greater,
        2 => Relation::Less,
        3 => Relation::NotEqual,
        _ => return Err(invalid("compare result")),
    };
    let union = c.target_union.as_ref();
    let number = |want: fn(&U) -> Option<i64>| union.and_then(want).unwrap_or(0);
    let target = match c.target {
        0 => Target::Version(number(|u| match u {
            U::Version(v) => Some(*v),
            _ => None,
        })),
        1 => Target::Create(number(|u| match u {
            U::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        2 => Target::Mod(number(|u| match u {
            U::ModRevision(v) => Some(*v),
            _ => None,
        })),
        3 => Target::Value(match union {
            Some(U::Value(v)) => v.clone(),
            _ => Vec::new(),
        }),
        4 => Target::Lease(number(|u| match u {
            U::Lease(v) => Some(*v),
            _ => None,
        })),
        _ => return Err(invalid("compare target")),
    };
    Ok(Compare {
        relation,
        target,
        key: c.key.clone(),
        range_end: c.range_end.clone(),
    })
}

fn request_op(op: &pb::RequestOp) -> Result<RequestOp, Status> {
    use pb::request_op::Request as R;
    Ok(match &op.request {
        Some(R::RequestRange(r)) => RequestOp::Range(range(r)?),
        Some(R::RequestPut(r)) => RequestOp::Put(put(r.clone())),
        Some(R::RequestDeleteRange(r)) => RequestOp::DeleteRange(delete(r)),
        Some(R::RequestTxn(r)) => RequestOp::Txn(txn(r)?),
        None => return Err(invalid("empty request in txn")),
    })
}

/// A transaction.
pub fn txn(r: &pb::TxnRequest) -> Result<Txn, Status> {
    let ops = |list: &[pb::RequestOp]| list.iter().map(request_op).collect::<Result<_, _>>();
    Ok(Txn {
        compare: r.compare.iter().map(compare).collect::<Result<_, _>>()?,
        success: ops(&r.success)?,
        failure: ops(&r.failure)?,
    })
}

/// Whether a transaction only reads (then it needs no log slot).
pub fn txn_is_read_only(r: &pb::TxnRequest) -> bool {
    use pb::request_op::Request as R;
    r.success
        .iter()
        .chain(&r.failure)
        .all(|op| match &op.request {
            Some(R::RequestRange(_)) => true,
            Some(R::RequestTxn(t)) => txn_is_read_only(t),
            _ => false,
        })
}

/// A key-value.
pub fn key_value(kv: KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// A key-value from etcd's protobuf.
pub fn from_key_value(kv: mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// A range answer.
pub fn range_response(r: kv::RangeResponse, header: pb::ResponseHeader) -> pb::RangeResponse {
    pb::RangeResponse {
        header: Some(pb::ResponseHeader {
            revision: r.revision,
            ..header
        }),
        kvs: r.kvs.into_iter().map(key_value).collect(),
        more: r.more,
        count: r.count,
    }
}

/// A put answer.
pub fn put_response(r: kv::PutResponse, header: pb::ResponseHeader) -> pb::PutResponse {
    pb::PutResponse {
        header: Some(pb::ResponseHeader {
            revision: r.revision,
            ..header
        }),
        prev_kv: r.prev_kv.map(key_value),
    }
}

/// A delete answer.
pub fn delete_response(
    r: kv::DeleteRangeResponse,
    header: pb::ResponseHeader,
) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: Some(pb::ResponseHeader {
            revision: r.revision,
            ..header
        }),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(key_value).collect(),
    }
}

/// A transaction answer. As in etcd 3.4, only the outermost answer carries the full
/// header; the answers inside carry a bare header with just their own revision, and a
/// nested transaction's own header is empty.
pub fn txn_response(r: kv::TxnResponse, header: pb::ResponseHeader) -> pb::TxnResponse {
    let revision = r.revision;
    let mut answer = nested_txn_response(r);
    answer.header = Some(pb::ResponseHeader { revision, ..header });
    answer
}

fn nested_txn_response(r: kv::TxnResponse) -> pb::TxnResponse {
    use pb::response_op::Response as R;
    let bare = pb::ResponseHeader::default();
    let responses = r
        .responses
        .into_iter()
        .map(|op| pb::ResponseOp {
            response: Some(match op {
                ResponseOp::Range(x) => R::ResponseRange(range_response(x, bare)),
                ResponseOp::Put(x) => R::ResponsePut(put_response(x, bare)),
                ResponseOp::DeleteRange(x) => R::ResponseDeleteRange(delete_response(x, bare)),
                ResponseOp::Txn(x) => R::ResponseTxn(nested_txn_response(x)),
            }),
        })
        .collect();
    pb::TxnResponse {
        header: Some(bare),
        succeeded: r.succeeded,
        responses,
    }
}

/// A watch event.
pub fn event(e: kv::Event, prev_kv: bool) -> mvccpb::Event {
    mvccpb::Event {
        r#type: match e.kind {
            kv::EventKind::Put => mvccpb::event::EventType::Put as i32,
            kv::EventKind::Delete => mvccpb::event::EventType::Delete as i32,
        },
        kv: Some(key_value(e.kv)),
        prev_kv: if prev_kv {
            e.prev_kv.map(key_value)
        } else {
            None
        },
    }
}
