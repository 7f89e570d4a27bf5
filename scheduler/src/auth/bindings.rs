//! The role bindings in force, kept current by a watch on `rolebindings/`, and the decision
//! they make: may this subject do this here?

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uni_core::model::{Resource, Role, RoleBinding, Verb};
use uni_core::store::codec;
use uni_core::store::keys::{RoleBindingKey, TypedKey};
use uni_core::store::watcher::Event;
use uni_core::store::{KvStore, Revision, Watcher};

use super::subject::{Subject, MASTERS_GROUP};

/// How long a request waits for the first list of bindings before it is refused.
const SYNC_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Bindings {
    by_key: Arc<RwLock<HashMap<String, RoleBinding>>>,
    /// The store revision the bindings reflect; `None` until the first list.
    applied: watch::Receiver<Option<Revision>>,
}

impl Bindings {
    /// The bindings, and the task that keeps them current by watching the store until
    /// `cancel`; the caller owns (spawns and joins) the task.
    pub fn watched(
        store: Arc<dyn KvStore>,
        cancel: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let by_key = Arc::new(RwLock::new(HashMap::new()));
        let (tx, applied) = watch::channel(None);
        let map = by_key.clone();
        let task = async move {
            let mut watcher = Watcher::new(store, RoleBindingKey::prefix());
            loop {
                let events = tokio::select! {
                    _ = cancel.cancelled() => return,
                    e = watcher.next() => e,
                };
                let events = match events {
                    Ok(e) => e,
                    Err(e) => {
                        warn!(error = %e, "role binding watch failed; listing again");
                        continue;
                    }
                };
                let mut m = map.write().unwrap_or_else(|p| p.into_inner());
                let mut reached = None;
                for event in events {
                    match event {
                        Event::Restarted { kvs, revision } => {
                            m.clear();
                            for kv in kvs {
                                insert(&mut m, &kv.key, &kv.value);
                            }
                            reached = reached.max(Some(revision));
                        }
                        Event::Applied(kv) => {
                            insert(&mut m, &kv.key, &kv.value);
                            reached = reached.max(Some(kv.mod_revision));
                        }
                        Event::Deleted(kv) => {
                            m.remove(&kv.key);
                            reached = reached.max(Some(kv.mod_revision));
                        }
                    }
                }
                drop(m);
                if reached.is_some() {
                    tx.send_if_modified(|r| {
                        let newer = reached > *r;
                        if newer {
                            *r = reached;
                        }
                        newer
                    });
                }
            }
        };
        (Self { by_key, applied }, task)
    }

    /// Fixed bindings, for tests of the decision.
    pub fn fixed(bindings: Vec<RoleBinding>) -> Self {
        let mut m = HashMap::new();
        for b in bindings {
            m.insert(format!("{}/{}", b.meta.namespace, b.meta.name), b);
        }
        let (_tx, applied) = watch::channel(Some(Revision::MAX));
        Self {
            by_key: Arc::new(RwLock::new(m)),
            applied,
        }
    }

    /// Waits until the first list arrived; false if it did not in time.
    pub async fn synced(&self) -> bool {
        self.reached(0).await
    }

    /// Waits until the bindings reflect store revision `revision` (so a binding just written
    /// is in force for the writer's next call); false if they did not in time.
    pub async fn reached(&self, revision: Revision) -> bool {
        let mut rx = self.applied.clone();
        tokio::time::timeout(SYNC_WAIT, rx.wait_for(|r| r.is_some_and(|r| r >= revision)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether `who` may do `verb` on `resource` in `namespace` (empty for cluster-scoped
    /// resources and for "every namespace").
    pub fn allows(&self, who: &Subject, verb: Verb, resource: Resource, namespace: &str) -> bool {
        if who.in_group(MASTERS_GROUP) {
            return true;
        }
        // Cluster-wide bindings are the cluster-admin's alone: a namespace admin held
        // everywhere must not grant itself more.
        let cluster_bindings = resource == Resource::RoleBindings && namespace.is_empty();
        let m = self.by_key.read().unwrap_or_else(|p| p.into_inner());
        m.values().any(|b| {
            b.binds(&who.user, &who.groups)
                && (b.cluster_wide() || (!namespace.is_empty() && b.meta.namespace == namespace))
                && (!cluster_bindings || b.role == Role::ClusterAdmin)
                && b.role.allows(verb, resource, b.cluster_wide())
        })
    }

    /// The namespaces where `who` holds some role, and whether it holds one cluster-wide.
    pub fn roles_of(&self, who: &Subject) -> Vec<(String, Role)> {
        let m = self.by_key.read().unwrap_or_else(|p| p.into_inner());
        m.values()
            .filter(|b| b.binds(&who.user, &who.groups))
            .map(|b| (b.meta.namespace.clone(), b.role))
            .collect()
    }
}

fn insert(m: &mut HashMap<String, RoleBinding>, key: &str, value: &[u8]) {
    match codec::decode::<RoleBinding>(key, value) {
        Ok(b) => {
            m.insert(key.to_string(), b);
        }
        Err(e) => warn!(key, error = %e, "undecodable role binding ignored"),
    }
}
