//! redb table layout of the embedded store.

use redb::{MultimapTableDefinition, TableDefinition};

use crate::Error;

/// key -> record (revisions, version, lease, value).
pub(super) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// revision -> the events committed at that revision; the watch history.
pub(super) const LOG: TableDefinition<i64, &[u8]> = TableDefinition::new("log");
/// lease id -> TTL in seconds.
pub(super) const LEASES: TableDefinition<i64, u64> = TableDefinition::new("leases");
/// lease id -> keys attached to it.
pub(super) const LEASE_KEYS: MultimapTableDefinition<i64, &str> =
    MultimapTableDefinition::new("lease_keys");
/// Counters: see the `META_*` names.
pub(super) const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

pub(super) const META_REVISION: &str = "revision";
pub(super) const META_COMPACTED: &str = "compacted";
pub(super) const META_NEXT_LEASE: &str = "next_lease";

pub(super) fn db_err(e: impl Into<redb::Error>) -> Error {
    match e.into() {
        redb::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) =>
        {
            Error::NoSpace(format!(
                "embedded store: {io}; free space on its disk and restart uni-scheduler"
            ))
        }
        // redb refuses every write after a failed one until it is reopened.
        redb::Error::PreviousIo => Error::NoSpace(
            "embedded store: an earlier write failed (usually a full disk); free space on its \
             disk and restart uni-scheduler"
                .into(),
        ),
        e => Error::Internal(format!("embedded store: {e}")),
    }
}
