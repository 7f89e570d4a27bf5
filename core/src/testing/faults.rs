//! A real store with faults injected that it will not produce on demand (a lost reply after a
//! commit, a watch that breaks): everything else goes to the real store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::store::{
    KeyValue, KvStore, LeaseId, RangeOptions, RangeResponse, Revision, Txn, TxnResponse,
    WatchStream,
};
use crate::Result;

/// Where a test injects faults; each hook's default passes the real answer through.
pub trait Faults: Send + Sync + 'static {
    /// Called after `txn` was applied; an error replaces its answer (the commit stands).
    fn after_txn(&self, _txn: &Txn) -> Result<()> {
        Ok(())
    }

    /// Wraps a watch from `from` of the real store.
    fn watch(&self, stream: WatchStream, _from: Revision) -> WatchStream {
        stream
    }
}

/// `inner` with `faults` injected.
pub struct FaultyStore<F> {
    pub inner: Arc<dyn KvStore>,
    pub faults: F,
}

#[async_trait]
impl<F: Faults> KvStore for FaultyStore<F> {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn range(&self, prefix: &str, opts: RangeOptions) -> Result<RangeResponse> {
        self.inner.range(prefix, opts).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<Revision> {
        self.inner.put(key, value, lease).await
    }
    async fn delete(&self, key: &str) -> Result<(Revision, bool)> {
        self.inner.delete(key).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let resp = self.inner.txn(txn.clone()).await?;
        self.faults.after_txn(&txn)?;
        Ok(resp)
    }
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        let stream = self.inner.watch(prefix, from).await?;
        Ok(self.faults.watch(stream, from))
    }
    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId> {
        self.inner.lease_grant(ttl).await
    }
    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        self.inner.lease_keep_alive(lease).await
    }
    async fn lease_revoke(&self, lease: LeaseId) -> Result<()> {
        self.inner.lease_revoke(lease).await
    }
    async fn revision(&self) -> Result<Revision> {
        self.inner.revision().await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
}
