//! Stored API objects (workloads, nodes, queues, events) and the read, create, compare-and-swap
//! and delete steps every service shares. Writes that depend on a read compare the key's
//! `mod_revision`, so a concurrent writer is never overwritten silently.

use serde::de::DeserializeOwned;
use serde::Serialize;
use uni_core::model::{Event, Node, ObjectMeta, Queue, RoleBinding, Workload};
use uni_core::store::keys::{
    EventKey, NodeKey, QueueKey, RoleBindingKey, TypedKey, WorkloadKey, CLUSTER_SCOPE,
};
use uni_core::store::{codec, Compare, CompareOp, KeyValue, KvStore, Revision, Txn, TxnOp};
use uni_core::Error as CoreError;

use crate::error::Result;

/// How often an unconditional update re-reads and retries after losing a race.
const MAX_ATTEMPTS: usize = 8;

/// An object stored as JSON under its typed key.
pub(crate) trait Object:
    Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static
{
    /// For messages: "workload", "node", ...
    const KIND: &'static str;

    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;

    /// An object known only by its key: what a watch reports for a deletion of an object it
    /// never saw.
    fn from_key(key: &str) -> Option<Self>;
}

impl Object for Workload {
    const KIND: &'static str = "workload";

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }

    fn from_key(key: &str) -> Option<Self> {
        let k = WorkloadKey::parse(key).ok()?;
        Some(Workload {
            meta: ObjectMeta::namespaced(k.namespace, k.name),
            ..Workload::default()
        })
    }
}

impl Object for Node {
    const KIND: &'static str = "node";

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }

    fn from_key(key: &str) -> Option<Self> {
        let k = NodeKey::parse(key).ok()?;
        Some(Node {
            meta: ObjectMeta::cluster(k.name),
            ..Node::default()
        })
    }
}

impl Object for Queue {
    const KIND: &'static str = "queue";

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }

    fn from_key(key: &str) -> Option<Self> {
        let k = QueueKey::parse(key).ok()?;
        Some(Queue {
            meta: ObjectMeta::cluster(k.name),
            ..Queue::default()
        })
    }
}

impl Object for Event {
    const KIND: &'static str = "event";

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }

    fn from_key(key: &str) -> Option<Self> {
        let k = EventKey::parse(key).ok()?;
        Some(Event {
            meta: ObjectMeta::namespaced(k.namespace, k.id),
            ..Event::default()
        })
    }
}

/// Decodes a stored value; its resource version is the key's last write.
pub(crate) fn decode<T: Object>(kv: &KeyValue) -> Result<T> {
    let mut obj: T = codec::decode(&kv.key, &kv.value)?;
    obj.meta_mut().resource_version = kv.mod_revision;
    Ok(obj)
}

/// Encodes for storage. The resource version is left out: the store's revision is the truth.
/// An object over [`MAX_OBJECT_BYTES`] is refused: the field limits keep real ones far below
/// it, and etcd refuses requests over 1.5 MiB by default.
fn encode<T: Object>(obj: &T) -> Result<Vec<u8>> {
    let mut obj = obj.clone();
    obj.meta_mut().resource_version = 0;
    let bytes = codec::encode(&obj)?;
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(uni_core::Error::invalid(
            "spec",
            format!(
                "the {} is {} bytes when stored, more than the {MAX_OBJECT_BYTES} allowed; \
                 move large data (env values, args) into files or a config store",
                T::KIND,
                bytes.len()
            ),
        )
        .into());
    }
    Ok(bytes)
}

/// Largest stored object.
pub(crate) const MAX_OBJECT_BYTES: usize = 1024 * 1024;

/// `kind namespace/name` for messages.
fn describe<T: Object>(obj: &T) -> String {
    format!("{} {}", T::KIND, obj.meta().key())
}

/// The object at `key` and its store metadata; `NotFound` naming `what` when absent.
pub(crate) async fn read<T: Object>(
    store: &dyn KvStore,
    key: &str,
    what: &str,
) -> Result<(T, KeyValue)> {
    let kv = store
        .get(key)
        .await?
        .ok_or_else(|| CoreError::NotFound(what.to_string()))?;
    Ok((decode(&kv)?, kv))
}

/// Stores a new object; `AlreadyExists` when the key is taken. Returns the write's revision.
pub(crate) async fn create<T: Object>(store: &dyn KvStore, key: &str, obj: &T) -> Result<Revision> {
    let txn = Txn::new()
        .when([Compare::absent(key)])
        .and_then([TxnOp::put(key, encode(obj)?)]);
    let resp = store.txn(txn).await?;
    if !resp.succeeded {
        return Err(CoreError::AlreadyExists(describe(obj)).into());
    }
    Ok(resp.revision)
}

/// [`create`] through the group-commit batcher.
pub(crate) async fn create_batched<T: Object>(
    batcher: &super::create_batch::CreateBatcher,
    key: &str,
    obj: &T,
) -> Result<Revision> {
    batcher
        .create(key.to_string(), encode(obj)?)
        .await?
        .ok_or_else(|| CoreError::AlreadyExists(describe(obj)).into())
}

/// Fails with `Conflict` unless `expected` is 0 (unconditional) or the stored revision.
fn check_expected(what: &str, expected: Revision, actual: Revision) -> Result<()> {
    if expected != 0 && expected != actual {
        return Err(CoreError::Conflict(format!(
            "{what} has resource_version {actual}, the request expected {expected}"
        ))
        .into());
    }
    Ok(())
}

/// Read-modify-write with compare-and-swap on `mod_revision`. `change` gets the stored object
/// and returns the new one; an unchanged object is not written. The key keeps its lease (a
/// node stays bound to its agent's lease). With `expected` nonzero the stored revision must
/// equal it; with 0 a lost race is retried on a fresh read. A dry run stops before writing.
pub(crate) async fn update<T, F>(
    store: &dyn KvStore,
    key: &str,
    what: &str,
    expected: Revision,
    dry_run: bool,
    mut change: F,
) -> Result<T>
where
    T: Object,
    F: FnMut(T) -> Result<T>,
{
    for _ in 0..MAX_ATTEMPTS {
        let (old, kv) = read::<T>(store, key, what).await?;
        check_expected(what, expected, kv.mod_revision)?;
        let mut new = change(old.clone())?;
        if new == old || dry_run {
            return Ok(new);
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key,
                CompareOp::Equal,
                kv.mod_revision,
            )])
            .and_then([TxnOp::Put {
                key: key.to_string(),
                value: encode(&new)?,
                lease: kv.lease,
            }]);
        let resp = store.txn(txn).await?;
        if resp.succeeded {
            new.meta_mut().resource_version = resp.revision;
            return Ok(new);
        }
        if expected != 0 {
            return Err(CoreError::Conflict(format!("{what} was changed concurrently")).into());
        }
    }
    Err(CoreError::Conflict(format!("{what} keeps changing; try again")).into())
}

/// Deletes the object at `key` with compare-and-swap, as [`update`] writes. Returns its last
/// state and the revision of the delete.
pub(crate) async fn delete<T: Object>(
    store: &dyn KvStore,
    key: &str,
    what: &str,
    expected: Revision,
) -> Result<(T, Revision)> {
    for _ in 0..MAX_ATTEMPTS {
        let (old, kv) = read::<T>(store, key, what).await?;
        check_expected(what, expected, kv.mod_revision)?;
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key,
                CompareOp::Equal,
                kv.mod_revision,
            )])
            .and_then([TxnOp::delete(key)]);
        let resp = store.txn(txn).await?;
        if resp.succeeded {
            return Ok((old, resp.revision));
        }
        if expected != 0 {
            return Err(CoreError::Conflict(format!("{what} was changed concurrently")).into());
        }
    }
    Err(CoreError::Conflict(format!("{what} keeps changing; try again")).into())
}

impl Object for RoleBinding {
    const KIND: &'static str = "role binding";

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }

    fn from_key(key: &str) -> Option<Self> {
        let k = RoleBindingKey::parse(key).ok()?;
        let namespace = if k.scope == CLUSTER_SCOPE {
            String::new()
        } else {
            k.scope
        };
        Some(RoleBinding {
            meta: ObjectMeta::namespaced(namespace, k.name),
            ..RoleBinding::default()
        })
    }
}
