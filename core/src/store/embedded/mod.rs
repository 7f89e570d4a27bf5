//! [`KvStore`] on a local redb file: dev mode's store. It keeps etcd's semantics (one global
//! revision, compare-and-swap transactions, watches from any retained revision, leases whose
//! expiry deletes their keys) and survives restarts: every write is fsynced before it returns.

mod apply;
mod maintenance;
mod record;
mod tables;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    KeyValue, KvStore, LeaseId, RangeOptions, RangeResponse, Revision, StoreHealth, Txn,
    TxnResponse, WatchEvent, WatchStream,
};
use crate::{Error, Result};
use record::decode_record;
use tables::*;

/// How much watch history is kept. Automatic compaction drops what is beyond any one bound.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Most revisions kept.
    pub history_revisions: i64,
    /// Most bytes of logged values kept.
    pub history_bytes: u64,
    /// Revisions older than this are dropped (measured from when this process saw them).
    pub history_age: Duration,
    /// How often automatic compaction runs.
    pub compaction_interval: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            history_revisions: 100_000,
            history_bytes: 64 << 20,
            history_age: Duration::from_secs(3600),
            compaction_interval: Duration::from_secs(60),
        }
    }
}

/// A committed revision, as broadcast to live watchers.
struct Batch {
    revision: Revision,
    events: Vec<WatchEvent>,
}

struct LeaseState {
    ttl: Duration,
    deadline: Instant,
}

struct Inner {
    db: Database,
    path: PathBuf,
    /// Serializes commits so that revisions are published in order.
    write_lock: Mutex<()>,
    revision: AtomicI64,
    compacted: AtomicI64,
    live: broadcast::Sender<Arc<Batch>>,
    leases: Mutex<HashMap<LeaseId, LeaseState>>,
    leases_changed: Notify,
    opts: EmbeddedOptions,
    /// A write failed for lack of space: reported as the NOSPACE alarm.
    no_space: std::sync::atomic::AtomicBool,
}

pub struct EmbeddedStore {
    inner: Arc<Inner>,
    cancel: CancellationToken,
    maintenance: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks leaves no partial state behind (redb rolls back),
    // so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, EmbeddedOptions::default()).await
    }

    pub async fn open_with(path: impl AsRef<Path>, opts: EmbeddedOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let (db, revision, compacted, leases) = tokio::task::spawn_blocking(move || open_db(&p))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        // Like etcd after a leader change, a restart gives every lease a full TTL again.
        let now = Instant::now();
        let leases = leases
            .into_iter()
            .map(|(id, ttl)| {
                let ttl = Duration::from_secs(ttl);
                (
                    id,
                    LeaseState {
                        ttl,
                        deadline: now + ttl,
                    },
                )
            })
            .collect();
        let (live, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            db,
            path,
            write_lock: Mutex::new(()),
            revision: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
            live,
            leases: Mutex::new(leases),
            leases_changed: Notify::new(),
            opts,
            no_space: Default::default(),
        });
        let cancel = CancellationToken::new();
        let maintenance = tokio::spawn(maintenance::run(Arc::downgrade(&inner), cancel.clone()));
        Ok(Self {
            inner,
            cancel,
            maintenance: Some(maintenance),
        })
    }

    /// Where the data lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops background work and closes the file, so it can be opened again at once.
    pub async fn close(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.maintenance.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

type Opened = (Database, Revision, Revision, Vec<(LeaseId, u64)>);

fn open_db(path: &Path) -> Result<Opened> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Internal(format!("create {}: {e}", dir.display())))?;
    }
    let db = Database::create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::Unavailable(format!(
            "{} is already open in another process",
            path.display()
        )),
        other => db_err(other),
    })?;
    // Create every table up front so readers never meet a missing one.
    let w = db.begin_write().map_err(db_err)?;
    let (revision, compacted, leases) = {
        w.open_table(KV).map_err(db_err)?;
        w.open_table(LOG).map_err(db_err)?;
        w.open_multimap_table(LEASE_KEYS).map_err(db_err)?;
        let meta = w.open_table(META).map_err(db_err)?;
        let get = |k| -> Result<i64> { Ok(meta.get(k).map_err(db_err)?.map_or(0, |v| v.value())) };
        let (revision, compacted) = (get(META_REVISION)?, get(META_COMPACTED)?);
        let leases = w
            .open_table(LEASES)
            .map_err(db_err)?
            .iter()
            .map_err(db_err)?
            .map(|e| e.map(|(k, v)| (k.value(), v.value())).map_err(db_err))
            .collect::<Result<Vec<_>>>()?;
        (revision, compacted, leases)
    };
    w.commit().map_err(db_err)?;
    Ok((db, revision, compacted, leases))
}

impl Inner {
    fn current(&self) -> Revision {
        self.revision.load(Ordering::Acquire)
    }

    /// Runs `f` in a write transaction at the next revision. If it produced events they are
    /// logged, committed (fsynced) and published; otherwise nothing is written and the
    /// revision does not move, as in etcd.
    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction, Revision) -> Result<(T, Vec<WatchEvent>)>,
    ) -> Result<(T, Revision)> {
        let out = self.write_inner(f);
        if let Err(Error::NoSpace(msg)) = &out {
            if !self.no_space.swap(true, Ordering::AcqRel) {
                tracing::error!(error = %msg, "embedded store is out of space: writes fail");
            }
        }
        out
    }

    fn write_inner<T>(
        &self,
        f: impl FnOnce(&WriteTransaction, Revision) -> Result<(T, Vec<WatchEvent>)>,
    ) -> Result<(T, Revision)> {
        let _guard = lock(&self.write_lock);
        let current = self.current();
        let rev = current + 1;
        let w = self.db.begin_write().map_err(db_err)?;
        let (out, events) = f(&w, rev)?;
        if events.is_empty() {
            w.abort().map_err(db_err)?;
            return Ok((out, current));
        }
        {
            let mut meta = w.open_table(META).map_err(db_err)?;
            meta.insert(META_REVISION, rev).map_err(db_err)?;
            let mut log = w.open_table(LOG).map_err(db_err)?;
            log.insert(rev, record::encode_events(&events).as_slice())
                .map_err(db_err)?;
        }
        w.commit().map_err(db_err)?;
        self.revision.store(rev, Ordering::Release);
        // No receivers is fine: nobody is watching.
        let _ = self.live.send(Arc::new(Batch {
            revision: rev,
            events,
        }));
        Ok((out, rev))
    }

    /// A write that touches no keys (lease bookkeeping, compaction): no revision, no events.
    fn write_meta<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let w = self.db.begin_write().map_err(db_err)?;
        let out = f(&w)?;
        w.commit().map_err(db_err)?;
        Ok(out)
    }

    fn revoke(&self, lease: LeaseId) -> Result<()> {
        self.write(|w, rev| Ok(((), apply::revoke_lease(w, lease, rev)?)))?;
        lock(&self.leases).remove(&lease);
        Ok(())
    }

    fn compact(&self, revision: Revision) -> Result<()> {
        let current = self.current();
        if revision > current {
            return Err(Error::invalid(
                "revision",
                format!("{revision} is a future revision (current: {current})"),
            ));
        }
        let compacted = self.compacted.load(Ordering::Acquire);
        if revision <= compacted {
            return Err(Error::Compacted {
                requested: revision,
                compact_revision: compacted,
            });
        }
        self.write_meta(|w| {
            let mut log = w.open_table(LOG).map_err(db_err)?;
            log.retain_in(..revision, |_, _| false).map_err(db_err)?;
            let mut meta = w.open_table(META).map_err(db_err)?;
            meta.insert(META_COMPACTED, revision).map_err(db_err)?;
            Ok(())
        })?;
        self.compacted.store(revision, Ordering::Release);
        Ok(())
    }

    /// The oldest revision to keep so that the logged values after it take at most `bytes`.
    fn keep_within_bytes(&self, bytes: u64) -> Result<Revision> {
        let r = self.db.begin_read().map_err(db_err)?;
        let log = r.open_table(LOG).map_err(db_err)?;
        let mut total = 0u64;
        for entry in log.iter().map_err(db_err)?.rev() {
            let (rev, value) = entry.map_err(db_err)?;
            total += value.value().len() as u64;
            if total > bytes {
                return Ok(rev.value() + 1);
            }
        }
        Ok(0)
    }

    /// Logged events under `prefix` with revisions in `from..=to`.
    fn history(&self, prefix: &str, from: Revision, to: Revision) -> Result<Vec<WatchEvent>> {
        let r = self.db.begin_read().map_err(db_err)?;
        let log = r.open_table(LOG).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in log.range(from..=to).map_err(db_err)? {
            let (rev, bytes) = entry.map_err(db_err)?;
            let events = record::decode_events(rev.value(), bytes.value())?;
            out.extend(events.into_iter().filter(|e| e.kv.key.starts_with(prefix)));
        }
        Ok(out)
    }
}

/// Runs blocking redb work off the async runtime.
async fn blocking<T: Send + 'static>(
    inner: &Arc<Inner>,
    f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
) -> Result<T> {
    let inner = inner.clone();
    tokio::task::spawn_blocking(move || f(&inner))
        .await
        .map_err(|e| Error::Internal(format!("embedded store task: {e}")))?
}

#[async_trait]
impl KvStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let r = self.inner.db.begin_read().map_err(db_err)?;
        let kv = r.open_table(KV).map_err(db_err)?;
        let value = kv.get(key).map_err(db_err)?;
        value
            .map(|v| decode_record(key, v.value()).map(|rec| rec.into_kv(key)))
            .transpose()
    }

    async fn range(&self, prefix: &str, opts: RangeOptions) -> Result<RangeResponse> {
        let r = self.inner.db.begin_read().map_err(db_err)?;
        // The revision of this snapshot, so that a watch from `revision + 1` has no gap.
        let revision = r
            .open_table(META)
            .map_err(db_err)?
            .get(META_REVISION)
            .map_err(db_err)?
            .map_or(0, |v| v.value());
        let kv = r.open_table(KV).map_err(db_err)?;
        let start = opts.start_after.as_deref().unwrap_or(prefix);
        let limit = opts.limit.unwrap_or(usize::MAX);
        let mut kvs = Vec::new();
        let mut more = false;
        for entry in kv.range(start..).map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            if opts.start_after.as_deref() == Some(key) {
                continue;
            }
            if kvs.len() == limit {
                more = true;
                break;
            }
            kvs.push(decode_record(key, v.value())?.into_kv(key));
        }
        Ok(RangeResponse {
            kvs,
            more,
            revision,
        })
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<Revision> {
        let txn = Txn::new().and_then([super::TxnOp::Put {
            key: key.to_string(),
            value,
            lease,
        }]);
        Ok(self.txn(txn).await?.revision)
    }

    async fn delete(&self, key: &str) -> Result<(Revision, bool)> {
        let resp = self
            .txn(Txn::new().and_then([super::TxnOp::delete(key)]))
            .await?;
        let existed = matches!(resp.results.first(), Some(super::TxnOpResult::Delete(1)));
        Ok((resp.revision, existed))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let ((succeeded, results), revision) = blocking(&self.inner, move |inner| {
            inner.write(|w, rev| {
                let a = apply::apply_txn(w, &txn, rev)?;
                Ok(((a.succeeded, a.results), a.events))
            })
        })
        .await?;
        Ok(TxnResponse {
            succeeded,
            revision,
            results,
        })
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        watch::open(&self.inner, prefix, from)
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId> {
        let ttl = ttl.max(Duration::from_secs(1));
        let secs = ttl.as_secs();
        let id = blocking(&self.inner, move |inner| {
            inner.write_meta(|w| {
                let mut meta = w.open_table(META).map_err(db_err)?;
                let id = meta
                    .get(META_NEXT_LEASE)
                    .map_err(db_err)?
                    .map_or(1, |v| v.value());
                meta.insert(META_NEXT_LEASE, id + 1).map_err(db_err)?;
                w.open_table(LEASES)
                    .map_err(db_err)?
                    .insert(id, secs)
                    .map_err(db_err)?;
                Ok(id)
            })
        })
        .await?;
        let ttl = Duration::from_secs(secs);
        lock(&self.inner.leases).insert(
            id,
            LeaseState {
                ttl,
                deadline: Instant::now() + ttl,
            },
        );
        self.inner.leases_changed.notify_one();
        Ok(id)
    }

    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        let now = Instant::now();
        let mut leases = lock(&self.inner.leases);
        match leases.get_mut(&lease) {
            Some(l) if l.deadline > now => {
                l.deadline = now + l.ttl;
                Ok(l.ttl)
            }
            _ => Err(Error::LeaseNotFound(lease)),
        }
    }

    async fn lease_revoke(&self, lease: LeaseId) -> Result<()> {
        blocking(&self.inner, move |inner| inner.revoke(lease)).await
    }

    async fn revision(&self) -> Result<Revision> {
        Ok(self.inner.current())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        blocking(&self.inner, move |inner| inner.compact(revision)).await
    }

    async fn health(&self) -> Result<StoreHealth> {
        let size = tokio::fs::metadata(&self.inner.path)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let alarms = if self.inner.no_space.load(Ordering::Acquire) {
            vec!["NOSPACE".to_string()]
        } else {
            Vec::new()
        };
        Ok(StoreHealth {
            db_size_bytes: size,
            // redb reuses freed pages; the file is what it holds.
            db_size_in_use_bytes: size,
            alarms,
        })
    }
}
