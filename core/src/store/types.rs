//! Values exchanged with a [`KvStore`](super::KvStore). They follow etcd's data model:
//! one global revision counter, and per key a create revision, a mod revision and a version.

use std::pin::Pin;

use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::Result;

/// Position in the store's global history; every committed write increments it.
pub type Revision = i64;
/// A lease id; keys attached to a lease are deleted when it expires or is revoked.
pub type LeaseId = i64;

/// One key with its value and MVCC metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision at which the key was (last) created.
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
    /// Writes since creation, starting at 1; a deleted key has version 0.
    pub version: i64,
    /// Lease the key is attached to, 0 for none.
    pub lease: LeaseId,
}

#[derive(Debug, Clone, Default)]
pub struct RangeOptions {
    /// Only keys strictly after this one; paging passes the last key of the previous page.
    pub start_after: Option<String>,
    /// At most this many keys; `more` tells whether the range was cut short.
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// More keys match beyond `limit`.
    pub more: bool,
    /// Store revision at which the range was read.
    pub revision: Revision,
}

/// What [`KvStore::health`](super::KvStore::health) reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// Size of the backing database (etcd's `dbSize` of the member asked, or the file).
    pub db_size_bytes: u64,
    /// Of that, what holds data (etcd's `dbSizeInUse`; the rest is free pages a defrag would
    /// return): what compaction keeps flat.
    pub db_size_in_use_bytes: u64,
    /// Raised alarms, e.g. `NOSPACE`, sorted.
    pub alarms: Vec<String>,
}

/// What a compare in a transaction looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    /// 0 when the key does not exist.
    ModRevision(Revision),
    /// 0 when the key does not exist.
    CreateRevision(Revision),
    /// 0 when the key does not exist.
    Version(i64),
    /// A missing key compares as never equal.
    Value(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    pub fn mod_revision(key: impl Into<String>, op: CompareOp, rev: Revision) -> Self {
        Self {
            key: key.into(),
            op,
            target: CompareTarget::ModRevision(rev),
        }
    }

    pub fn version(key: impl Into<String>, op: CompareOp, version: i64) -> Self {
        Self {
            key: key.into(),
            op,
            target: CompareTarget::Version(version),
        }
    }

    pub fn value(key: impl Into<String>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            op,
            target: CompareTarget::Value(value.into()),
        }
    }

    /// True when the key does not exist (its version is 0).
    pub fn absent(key: impl Into<String>) -> Self {
        Self::version(key, CompareOp::Equal, 0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    Put {
        key: String,
        value: Vec<u8>,
        lease: LeaseId,
    },
    Delete {
        key: String,
    },
    Get {
        key: String,
    },
}

impl TxnOp {
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
            lease: 0,
        }
    }

    pub fn delete(key: impl Into<String>) -> Self {
        TxnOp::Delete { key: key.into() }
    }

    pub fn get(key: impl Into<String>) -> Self {
        TxnOp::Get { key: key.into() }
    }
}

/// If every compare holds, run `success`, otherwise run `failure`; atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops);
        self
    }

    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops);
        self
    }
}

/// The result of one op of the branch that ran, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResult {
    Put,
    /// How many keys were deleted (0 or 1).
    Delete(i64),
    Get(Option<KeyValue>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether the compares held (the success branch ran).
    pub succeeded: bool,
    /// Store revision after the transaction.
    pub revision: Revision,
    pub results: Vec<TxnOpResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a watch. For a delete, `kv.value` is empty, `kv.version` is 0 and
/// `kv.mod_revision` is the revision of the delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub kv: KeyValue,
}

/// Events in revision order; all events of one revision arrive in the same batch. The stream
/// ends with `Err(Error::Compacted)` when the history it needs is gone.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Vec<WatchEvent>>> + Send>>;
