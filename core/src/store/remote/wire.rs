//! The gateway's wire form of store values and errors, both ways. Store errors keep their
//! kind across the wire (a compaction stays [`Error::Compacted`], an expired lease stays
//! [`Error::LeaseNotFound`]) so that code written against [`KvStore`](crate::store::KvStore)
//! behaves the same over the gateway.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use uni_proto::v1 as pb;

use crate::store::{
    Compare, CompareOp, CompareTarget, EventKind, KeyValue, Txn, TxnOp, TxnOpResult, TxnResponse,
    WatchEvent,
};
use crate::Error;

/// Metadata naming the store error a status stands for.
const KIND: &str = "x-universal-store-error";
const REQUESTED: &str = "x-universal-requested-revision";
const COMPACTED: &str = "x-universal-compact-revision";
const LEASE: &str = "x-universal-lease";

pub fn kv_to_wire(kv: &KeyValue) -> pb::Kv {
    pb::Kv {
        key: kv.key.clone(),
        value: kv.value.clone(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        lease: kv.lease,
    }
}

pub fn kv_from_wire(kv: pb::Kv) -> KeyValue {
    KeyValue {
        key: kv.key,
        value: kv.value,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        lease: kv.lease,
    }
}

fn op_to_wire(op: CompareOp) -> pb::kv_compare::Op {
    match op {
        CompareOp::Equal => pb::kv_compare::Op::Equal,
        CompareOp::NotEqual => pb::kv_compare::Op::NotEqual,
        CompareOp::Greater => pb::kv_compare::Op::Greater,
        CompareOp::Less => pb::kv_compare::Op::Less,
    }
}

fn txn_op_to_wire(op: &TxnOp) -> pb::KvOp {
    use pb::kv_op::Op;
    let op = match op {
        TxnOp::Put { key, value, lease } => Op::Put(pb::KvPut {
            key: key.clone(),
            value: value.clone(),
            lease: *lease,
        }),
        TxnOp::Delete { key } => Op::Delete(key.clone()),
        TxnOp::Get { key } => Op::Get(key.clone()),
    };
    pb::KvOp { op: Some(op) }
}

fn txn_op_from_wire(op: pb::KvOp) -> Result<TxnOp, Status> {
    use pb::kv_op::Op;
    Ok(match op.op {
        Some(Op::Put(p)) => TxnOp::Put {
            key: p.key,
            value: p.value,
            lease: p.lease,
        },
        Some(Op::Delete(key)) => TxnOp::Delete { key },
        Some(Op::Get(key)) => TxnOp::Get { key },
        None => return Err(Status::invalid_argument("txn op: empty")),
    })
}

pub fn txn_to_wire(txn: &Txn) -> pb::KvTxnRequest {
    use pb::kv_compare::Target;
    pb::KvTxnRequest {
        compares: txn
            .compares
            .iter()
            .map(|c| pb::KvCompare {
                key: c.key.clone(),
                op: op_to_wire(c.op).into(),
                target: Some(match &c.target {
                    CompareTarget::ModRevision(r) => Target::ModRevision(*r),
                    CompareTarget::CreateRevision(r) => Target::CreateRevision(*r),
                    CompareTarget::Version(v) => Target::Version(*v),
                    CompareTarget::Value(v) => Target::Value(v.clone()),
                }),
            })
            .collect(),
        success: txn.success.iter().map(txn_op_to_wire).collect(),
        failure: txn.failure.iter().map(txn_op_to_wire).collect(),
    }
}

pub fn txn_from_wire(req: pb::KvTxnRequest) -> Result<Txn, Status> {
    use pb::kv_compare::Target;
    let mut compares = Vec::with_capacity(req.compares.len());
    for c in req.compares {
        let op = match pb::kv_compare::Op::try_from(c.op) {
            Ok(pb::kv_compare::Op::Equal) => CompareOp::Equal,
            Ok(pb::kv_compare::Op::NotEqual) => CompareOp::NotEqual,
            Ok(pb::kv_compare::Op::Greater) => CompareOp::Greater,
            Ok(pb::kv_compare::Op::Less) => CompareOp::Less,
            Err(_) => return Err(Status::invalid_argument("compare op: unknown")),
        };
        let target = match c.target {
            Some(Target::ModRevision(r)) => CompareTarget::ModRevision(r),
            Some(Target::CreateRevision(r)) => CompareTarget::CreateRevision(r),
            Some(Target::Version(v)) => CompareTarget::Version(v),
            Some(Target::Value(v)) => CompareTarget::Value(v),
            None => return Err(Status::invalid_argument("compare target: required")),
        };
        compares.push(Compare {
            key: c.key,
            op,
            target,
        });
    }
    let ops = |v: Vec<pb::KvOp>| {
        v.into_iter()
            .map(txn_op_from_wire)
            .collect::<Result<_, _>>()
    };
    Ok(Txn {
        compares,
        success: ops(req.success)?,
        failure: ops(req.failure)?,
    })
}

pub fn txn_response_to_wire(r: &TxnResponse) -> pb::KvTxnResponse {
    use pb::kv_op_result::Result as R;
    pb::KvTxnResponse {
        succeeded: r.succeeded,
        revision: r.revision,
        results: r
            .results
            .iter()
            .map(|res| pb::KvOpResult {
                result: Some(match res {
                    TxnOpResult::Put => R::Put(true),
                    TxnOpResult::Delete(n) => R::Deleted(*n),
                    TxnOpResult::Get(kv) => R::Get(pb::KvGetResponse {
                        kv: kv.as_ref().map(kv_to_wire),
                    }),
                }),
            })
            .collect(),
    }
}

pub fn txn_response_from_wire(r: pb::KvTxnResponse) -> TxnResponse {
    use pb::kv_op_result::Result as R;
    TxnResponse {
        succeeded: r.succeeded,
        revision: r.revision,
        results: r
            .results
            .into_iter()
            .map(|res| match res.result {
                Some(R::Deleted(n)) => TxnOpResult::Delete(n),
                Some(R::Get(g)) => TxnOpResult::Get(g.kv.map(kv_from_wire)),
                Some(R::Put(_)) | None => TxnOpResult::Put,
            })
            .collect(),
    }
}

pub fn events_to_wire(events: &[WatchEvent]) -> pb::KvWatchResponse {
    pb::KvWatchResponse {
        events: events
            .iter()
            .map(|e| pb::KvWatchEvent {
                deleted: e.kind == EventKind::Delete,
                kv: Some(kv_to_wire(&e.kv)),
            })
            .collect(),
    }
}

pub fn events_from_wire(r: pb::KvWatchResponse) -> Vec<WatchEvent> {
    r.events
        .into_iter()
        .filter_map(|e| {
            Some(WatchEvent {
                kind: if e.deleted {
                    EventKind::Delete
                } else {
                    EventKind::Put
                },
                kv: kv_from_wire(e.kv?),
            })
        })
        .collect()
}

/// A store error as a status that [`error_of`] turns back into the same error.
pub fn status_of(e: &Error) -> Status {
    let (code, kind) = match e {
        Error::Invalid(_) => (Code::InvalidArgument, "invalid"),
        Error::NotFound(_) => (Code::NotFound, "not-found"),
        Error::AlreadyExists(_) => (Code::AlreadyExists, "already-exists"),
        Error::Conflict(_) => (Code::Aborted, "conflict"),
        Error::Compacted { .. } => (Code::OutOfRange, "compacted"),
        Error::LeaseNotFound(_) => (Code::NotFound, "lease-not-found"),
        Error::Unavailable(_) => (Code::Unavailable, "unavailable"),
        Error::TooLarge(_) => (Code::ResourceExhausted, "too-large"),
        Error::NoSpace(_) => (Code::ResourceExhausted, "no-space"),
        Error::Corrupt { .. } | Error::Catalog(_) | Error::Tls(_) | Error::Internal(_) => {
            (Code::Internal, "internal")
        }
    };
    let mut s = Status::new(code, e.to_string());
    let md = s.metadata_mut();
    md.insert(KIND, MetadataValue::from_static(kind));
    match e {
        Error::Compacted {
            requested,
            compact_revision,
        } => {
            md.insert(REQUESTED, MetadataValue::from(*requested));
            md.insert(COMPACTED, MetadataValue::from(*compact_revision));
        }
        Error::LeaseNotFound(id) => {
            md.insert(LEASE, MetadataValue::from(*id));
        }
        _ => {}
    }
    s
}

/// The store error a gateway status stands for; statuses from elsewhere (authentication,
/// authorization, transport) keep their code and message.
pub fn error_of(s: Status) -> Error {
    let md = s.metadata();
    let int = |k: &str| {
        md.get(k)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_default()
    };
    match md.get(KIND).and_then(|v| v.to_str().ok()) {
        Some("compacted") => Error::Compacted {
            requested: int(REQUESTED),
            compact_revision: int(COMPACTED),
        },
        Some("lease-not-found") => Error::LeaseNotFound(int(LEASE)),
        Some("conflict") => Error::Conflict(s.message().to_string()),
        Some("not-found") => Error::NotFound(s.message().to_string()),
        Some("already-exists") => Error::AlreadyExists(s.message().to_string()),
        Some("invalid") => Error::invalid("request", s.message()),
        Some("too-large") => Error::TooLarge(s.message().to_string()),
        Some("no-space") => Error::NoSpace(s.message().to_string()),
        _ => match s.code() {
            Code::OutOfRange | Code::ResourceExhausted if too_large(&s) => {
                Error::TooLarge(s.message().to_string())
            }
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                Error::Unavailable(s.message().to_string())
            }
            Code::PermissionDenied | Code::Unauthenticated => {
                Error::Internal(format!("gateway refused: {}", s.message()))
            }
            _ => Error::Internal(s.message().to_string()),
        },
    }
}

/// Whether a status is tonic refusing a message over its size limit.
pub fn too_large(s: &Status) -> bool {
    s.message().contains("message length too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_survive_the_wire() {
        let e = error_of(status_of(&Error::Compacted {
            requested: 5,
            compact_revision: 9,
        }));
        assert!(matches!(
            e,
            Error::Compacted {
                requested: 5,
                compact_revision: 9
            }
        ));
        assert!(matches!(
            error_of(status_of(&Error::LeaseNotFound(42))),
            Error::LeaseNotFound(42)
        ));
        assert!(matches!(
            error_of(Status::unavailable("down")),
            Error::Unavailable(_)
        ));
    }

    #[test]
    fn transactions_round_trip() {
        let txn = Txn::new()
            .when([
                Compare::absent("a"),
                Compare::value("b", CompareOp::NotEqual, b"x".to_vec()),
            ])
            .and_then([TxnOp::Put {
                key: "a".into(),
                value: b"1".to_vec(),
                lease: 7,
            }])
            .or_else([TxnOp::get("a"), TxnOp::delete("b")]);
        assert_eq!(txn_from_wire(txn_to_wire(&txn)).unwrap(), txn);
    }
}
