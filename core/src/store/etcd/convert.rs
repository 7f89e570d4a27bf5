//! Conversions between etcd-client's types and the store's, and etcd errors to [`Error`].

use etcd_client::{PutOptions, ResponseHeader, TxnOpResponse};
use tonic::Code;

use crate::store::remote::wire::too_large;
use crate::store::{
    Compare, CompareOp, CompareTarget, KeyValue, LeaseId, Revision, Txn, TxnOp, TxnOpResult,
    TxnResponse,
};
use crate::{Error, Result};

pub(super) fn from_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = kv.key_str().map_err(|e| Error::Corrupt {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        reason: format!("key is not UTF-8: {e}"),
    })?;
    Ok(KeyValue {
        key: key.to_string(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    })
}

pub(super) fn revision_of(header: Option<&ResponseHeader>) -> Revision {
    header.map_or(0, ResponseHeader::revision)
}

fn op(op: CompareOp) -> etcd_client::CompareOp {
    match op {
        CompareOp::Equal => etcd_client::CompareOp::Equal,
        CompareOp::NotEqual => etcd_client::CompareOp::NotEqual,
        CompareOp::Greater => etcd_client::CompareOp::Greater,
        CompareOp::Less => etcd_client::CompareOp::Less,
    }
}

fn compare(c: Compare) -> etcd_client::Compare {
    let o = op(c.op);
    match c.target {
        CompareTarget::ModRevision(r) => etcd_client::Compare::mod_revision(c.key, o, r),
        CompareTarget::CreateRevision(r) => etcd_client::Compare::create_revision(c.key, o, r),
        CompareTarget::Version(v) => etcd_client::Compare::version(c.key, o, v),
        CompareTarget::Value(v) => etcd_client::Compare::value(c.key, o, v),
    }
}

fn txn_op(op: TxnOp) -> etcd_client::TxnOp {
    match op {
        TxnOp::Put { key, value, lease } => {
            let opts = (lease != 0).then(|| PutOptions::new().with_lease(lease));
            etcd_client::TxnOp::put(key, value, opts)
        }
        TxnOp::Delete { key } => etcd_client::TxnOp::delete(key, None),
        TxnOp::Get { key } => etcd_client::TxnOp::get(key, None),
    }
}

pub(super) fn to_etcd_txn(txn: Txn) -> etcd_client::Txn {
    etcd_client::Txn::new()
        .when(txn.compares.into_iter().map(compare).collect::<Vec<_>>())
        .and_then(txn.success.into_iter().map(txn_op).collect::<Vec<_>>())
        .or_else(txn.failure.into_iter().map(txn_op).collect::<Vec<_>>())
}

pub(super) fn txn_response(resp: etcd_client::TxnResponse) -> Result<TxnResponse> {
    let results = resp
        .op_responses()
        .into_iter()
        .map(|r| {
            Ok(match r {
                TxnOpResponse::Put(_) => TxnOpResult::Put,
                TxnOpResponse::Delete(d) => TxnOpResult::Delete(d.deleted()),
                TxnOpResponse::Get(g) => {
                    TxnOpResult::Get(g.kvs().first().map(from_kv).transpose()?)
                }
                TxnOpResponse::Txn(_) => {
                    return Err(Error::Internal("nested transactions are not used".into()))
                }
            })
        })
        .collect::<Result<_>>()?;
    Ok(TxnResponse {
        succeeded: resp.succeeded(),
        revision: revision_of(resp.header()),
        results,
    })
}

/// Maps an etcd error; the caller may retry what maps to [`Error::Unavailable`].
pub(super) fn map_err(e: etcd_client::Error) -> Error {
    match e {
        etcd_client::Error::GRpcStatus(s) => map_status(&s),
        etcd_client::Error::TransportError(e) => Error::Unavailable(format!("etcd: {e}")),
        etcd_client::Error::IoError(e) => Error::Unavailable(format!("etcd: {e}")),
        etcd_client::Error::InvalidArgs(m) => Error::invalid("etcd", m),
        etcd_client::Error::LeaseKeepAliveError(m) if m.contains("not found") => {
            Error::NotFound(format!("lease: {m}"))
        }
        other => Error::Internal(format!("etcd: {other}")),
    }
}

/// Like [`map_err`], naming `lease` when etcd says it does not exist.
pub(super) fn map_lease_err(e: etcd_client::Error, lease: LeaseId) -> Error {
    match map_err(e) {
        Error::NotFound(m) if m.contains("lease") => Error::LeaseNotFound(lease),
        other => other,
    }
}

fn map_status(s: &tonic::Status) -> Error {
    let msg = s.message();
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
            Error::Unavailable(format!("etcd: {msg}"))
        }
        Code::NotFound => Error::NotFound(msg.to_string()),
        Code::OutOfRange | Code::ResourceExhausted if too_large(s) => {
            Error::TooLarge(format!("etcd: {msg}"))
        }
        Code::ResourceExhausted if msg.contains("space exceeded") => {
            Error::NoSpace(format!("etcd: {msg}"))
        }
        Code::OutOfRange if msg.contains("compacted") => Error::Compacted {
            requested: 0,
            compact_revision: 0,
        },
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            Error::invalid("etcd", msg)
        }
        _ => Error::Internal(format!("etcd {:?}: {msg}", s.code())),
    }
}
