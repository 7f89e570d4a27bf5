//! The store conformance suite: every test in `suite.rs` runs against a real etcd and against
//! the embedded store, so both implementations keep the same semantics.

mod suite;

use std::sync::Arc;

use tempfile::TempDir;
use uni_core::store::{EmbeddedStore, KvStore};
use uni_core::testing::EtcdServer;

/// A store implementation under test, which can be restarted with its data kept.
pub enum Backend {
    Etcd {
        server: EtcdServer,
        store: Arc<dyn KvStore>,
    },
    Embedded {
        dir: TempDir,
        store: Option<Arc<EmbeddedStore>>,
    },
}

impl Backend {
    pub async fn etcd() -> Self {
        let server = EtcdServer::start().await.expect("start etcd");
        let store = Arc::new(server.store().await.expect("connect etcd"));
        Backend::Etcd { server, store }
    }

    pub async fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path().join("store.redb"))
            .await
            .expect("open embedded store");
        Backend::Embedded {
            dir,
            store: Some(Arc::new(store)),
        }
    }

    pub fn store(&self) -> Arc<dyn KvStore> {
        match self {
            Backend::Etcd { store, .. } => store.clone(),
            Backend::Embedded { store, .. } => store.clone().expect("store is open"),
        }
    }

    /// Stops the store as a crash or a process restart would, and starts it on the same data.
    /// Callers must have dropped every handle from [`Backend::store`].
    pub async fn restart(&mut self) {
        match self {
            Backend::Etcd { server, .. } => server.restart().await.expect("restart etcd"),
            Backend::Embedded { dir, store } => {
                let old = store.take().expect("store is open");
                let old = Arc::try_unwrap(old)
                    .unwrap_or_else(|_| panic!("a handle to the embedded store is still held"));
                old.close().await;
                let reopened = EmbeddedStore::open(dir.path().join("store.redb"))
                    .await
                    .expect("reopen embedded store");
                *store = Some(Arc::new(reopened));
            }
        }
    }
}

macro_rules! conformance {
    ($($test:ident),+ $(,)?) => {
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::suite::$test(super::Backend::etcd().await).await;
                }
            )+
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::suite::$test(super::Backend::embedded().await).await;
                }
            )+
        }
    };
}

conformance!(
    put_get_delete_track_revisions_and_versions,
    range_is_sorted_by_key_and_pages_without_overlap,
    txn_runs_success_branch_when_compares_hold,
    txn_runs_failure_branch_and_writes_nothing_else,
    txn_create_if_absent_and_value_compare,
    txn_rejects_writing_one_key_twice,
    txn_commits_many_keys_at_one_revision,
    watch_replays_history_then_follows_live_writes,
    watch_only_sees_its_prefix,
    watch_reports_deletes,
    watch_resumes_without_gap_after_restart,
    watch_from_compacted_revision_fails_clearly,
    lease_expiry_deletes_attached_keys,
    lease_keep_alive_keeps_keys_and_revoke_deletes_them,
    put_with_unknown_lease_fails,
    data_and_leases_survive_restart,
    concurrent_cas_writers_lose_no_update,
    watcher_lists_in_pages_then_follows_changes,
);
