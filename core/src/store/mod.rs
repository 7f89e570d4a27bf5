//! The store layer: one [`KvStore`] trait with two implementations, [`EtcdStore`] for clusters
//! and [`EmbeddedStore`] for single-machine dev mode. Both pass the same conformance suite
//! (`core/tests/conformance`).

pub mod codec;
mod embedded;
mod etcd;
pub mod keys;
mod lease;
pub mod pager;
pub mod remote;
mod types;
pub mod watcher;

use std::time::Duration;

use async_trait::async_trait;

pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use etcd::{EtcdOptions, EtcdStore, MAX_RESPONSE_BYTES as ETCD_MAX_RESPONSE_BYTES};
pub use lease::LeaseKeeper;
pub use pager::Pager;
pub use remote::RemoteStore;
pub use types::*;
pub use watcher::Watcher;

use crate::Result;

/// A transactional, watchable key-value store with leases, following etcd's semantics.
///
/// Keys are UTF-8 strings built from [`keys`]; ranges are by prefix and sorted by key.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, in key order.
    async fn range(&self, prefix: &str, opts: RangeOptions) -> Result<RangeResponse>;

    /// Writes `value`, attached to `lease` (0 for none); returns the new store revision.
    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<Revision>;

    /// Deletes `key`; returns the new store revision and whether the key existed.
    async fn delete(&self, key: &str) -> Result<(Revision, bool)>;

    /// Runs a transaction atomically.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse>;

    /// Changes to keys under `prefix`, starting at `from` (inclusive; 0 means "from now").
    /// Fails, at once or later on the stream, with [`crate::Error::Compacted`] when `from`
    /// is older than the retained history.
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream>;

    /// Grants a lease that expires `ttl` after its last keep-alive.
    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId>;

    /// Renews a lease; returns its TTL. Fails with [`crate::Error::LeaseNotFound`] once expired.
    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<Duration>;

    /// Revokes a lease, deleting every key attached to it.
    async fn lease_revoke(&self, lease: LeaseId) -> Result<()>;

    /// The store's current revision.
    async fn revision(&self) -> Result<Revision>;

    /// Drops history older than `revision`; watches from before it then fail.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The store's size and raised alarms (`NOSPACE`: writes fail until space is freed).
    /// Stores that cannot tell report nothing.
    async fn health(&self) -> Result<StoreHealth> {
        Ok(StoreHealth::default())
    }
}

/// The next key after every key starting with `prefix` (etcd's range end for a prefix).
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (or the prefix is empty): the range runs to the end of the key space.
    vec![0]
}
