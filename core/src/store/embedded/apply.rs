//! The embedded store's write engine: applies a transaction or a lease revocation inside one
//! redb write transaction, producing the watch events of the new revision.

use std::collections::HashSet;

use redb::{ReadableTable, Table, WriteTransaction};

use super::record::{decode_record, encode_record, Record};
use super::tables::{db_err, KV, LEASES, LEASE_KEYS};
use crate::store::{
    Compare, CompareOp, CompareTarget, EventKind, KeyValue, LeaseId, Revision, Txn, TxnOp,
    TxnOpResult, WatchEvent,
};
use crate::{Error, Result};

pub(super) struct Applied {
    pub succeeded: bool,
    pub results: Vec<TxnOpResult>,
    pub events: Vec<WatchEvent>,
}

fn read(kv: &Table<&str, &[u8]>, key: &str) -> Result<Option<Record>> {
    kv.get(key)
        .map_err(db_err)?
        .map(|v| decode_record(key, v.value()))
        .transpose()
}

/// etcd's compare semantics: a missing key has revisions and version 0, and fails every
/// value comparison.
pub(super) fn compare_holds(rec: Option<&Record>, c: &Compare) -> bool {
    use std::cmp::Ordering;
    let ord = match (&c.target, rec) {
        (CompareTarget::Value(_), None) => return false,
        (CompareTarget::Value(v), Some(r)) => r.value.as_slice().cmp(v.as_slice()),
        (CompareTarget::ModRevision(x), r) => r.map_or(0, |r| r.mod_revision).cmp(x),
        (CompareTarget::CreateRevision(x), r) => r.map_or(0, |r| r.create_revision).cmp(x),
        (CompareTarget::Version(x), r) => r.map_or(0, |r| r.version).cmp(x),
    };
    match c.op {
        CompareOp::Equal => ord == Ordering::Equal,
        CompareOp::NotEqual => ord != Ordering::Equal,
        CompareOp::Greater => ord == Ordering::Greater,
        CompareOp::Less => ord == Ordering::Less,
    }
}

fn deleted(key: &str, rev: Revision) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Delete,
        kv: KeyValue {
            key: key.to_string(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: rev,
            version: 0,
            lease: 0,
        },
    }
}

/// Like etcd, one transaction may write each key at most once.
fn check_unique_writes(ops: &[TxnOp]) -> Result<()> {
    let mut seen = HashSet::new();
    for op in ops {
        let key = match op {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } => key,
            TxnOp::Get { .. } => continue,
        };
        if !seen.insert(key.as_str()) {
            return Err(Error::invalid(
                "txn",
                format!("key {key:?} is written more than once"),
            ));
        }
    }
    Ok(())
}

pub(super) fn apply_txn(w: &WriteTransaction, txn: &Txn, rev: Revision) -> Result<Applied> {
    let mut kv = w.open_table(KV).map_err(db_err)?;
    let mut lease_keys = w.open_multimap_table(LEASE_KEYS).map_err(db_err)?;
    let leases = w.open_table(LEASES).map_err(db_err)?;

    let mut succeeded = true;
    for c in &txn.compares {
        if !compare_holds(read(&kv, &c.key)?.as_ref(), c) {
            succeeded = false;
            break;
        }
    }
    let ops = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    check_unique_writes(ops)?;

    let mut results = Vec::with_capacity(ops.len());
    let mut events = Vec::new();
    for op in ops {
        match op {
            TxnOp::Put { key, value, lease } => {
                if *lease != 0 && leases.get(*lease).map_err(db_err)?.is_none() {
                    return Err(Error::LeaseNotFound(*lease));
                }
                let prev = read(&kv, key)?;
                let rec = Record {
                    create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                    mod_revision: rev,
                    version: prev.as_ref().map_or(1, |p| p.version + 1),
                    lease: *lease,
                    value: value.clone(),
                };
                if let Some(p) = prev.as_ref().filter(|p| p.lease != 0 && p.lease != *lease) {
                    lease_keys.remove(p.lease, key.as_str()).map_err(db_err)?;
                }
                if *lease != 0 {
                    lease_keys.insert(*lease, key.as_str()).map_err(db_err)?;
                }
                kv.insert(key.as_str(), encode_record(&rec).as_slice())
                    .map_err(db_err)?;
                events.push(WatchEvent {
                    kind: EventKind::Put,
                    kv: rec.into_kv(key),
                });
                results.push(TxnOpResult::Put);
            }
            TxnOp::Delete { key } => match read(&kv, key)? {
                Some(prev) => {
                    if prev.lease != 0 {
                        lease_keys
                            .remove(prev.lease, key.as_str())
                            .map_err(db_err)?;
                    }
                    kv.remove(key.as_str()).map_err(db_err)?;
                    events.push(deleted(key, rev));
                    results.push(TxnOpResult::Delete(1));
                }
                None => results.push(TxnOpResult::Delete(0)),
            },
            TxnOp::Get { key } => {
                results.push(TxnOpResult::Get(read(&kv, key)?.map(|r| r.into_kv(key))));
            }
        }
    }
    Ok(Applied {
        succeeded,
        results,
        events,
    })
}

/// Deletes a lease and every key attached to it. Fails if the lease does not exist.
pub(super) fn revoke_lease(
    w: &WriteTransaction,
    lease: LeaseId,
    rev: Revision,
) -> Result<Vec<WatchEvent>> {
    let mut kv = w.open_table(KV).map_err(db_err)?;
    let mut lease_keys = w.open_multimap_table(LEASE_KEYS).map_err(db_err)?;
    let mut leases = w.open_table(LEASES).map_err(db_err)?;
    if leases.remove(lease).map_err(db_err)?.is_none() {
        return Err(Error::LeaseNotFound(lease));
    }
    let keys: Vec<String> = lease_keys
        .remove_all(lease)
        .map_err(db_err)?
        .map(|k| k.map(|k| k.value().to_string()).map_err(db_err))
        .collect::<Result<_>>()?;
    let mut events = Vec::with_capacity(keys.len());
    for key in keys {
        // Only keys still bound to this lease; a later put may have moved them.
        if read(&kv, &key)?.is_some_and(|r| r.lease == lease) {
            kv.remove(key.as_str()).map_err(db_err)?;
            events.push(deleted(&key, rev));
        }
    }
    Ok(events)
}
