//! Applying what the store says: one watch event or listed key at a time.

use uni_core::model::{Allocation, GatewayLoad, Node, Queue, ReplicaStatus, Workload, WorkloadRef};
use uni_core::store::keys::{self, AllocationKey, TypedKey};
use uni_core::store::{codec, EventKind, KeyValue, WatchEvent};
use uni_core::Result;
use uni_placement::node_state::NodeState;

use super::{State, Stored};

/// What a key under `/universal/v1/` names.
enum Key {
    Workload(WorkloadRef),
    Node(String),
    Queue(String),
    Allocation(String),
    Status(WorkloadRef, u32),
    Load(String),
    Other,
}

fn classify(key: &str) -> Key {
    let collection = key
        .strip_prefix(keys::ROOT)
        .and_then(|r| r.split('/').next())
        .unwrap_or("");
    match collection {
        "workloads" => keys::WorkloadKey::parse(key).map(|k| {
            Key::Workload(WorkloadRef {
                namespace: k.namespace,
                name: k.name,
            })
        }),
        "nodes" => keys::NodeKey::parse(key).map(|k| Key::Node(k.name)),
        "queues" => keys::QueueKey::parse(key).map(|k| Key::Queue(k.name)),
        "allocations" => AllocationKey::parse(key).map(|k| Key::Allocation(k.id)),
        "status" => keys::StatusKey::parse(key).map(|k| {
            Key::Status(
                WorkloadRef {
                    namespace: k.namespace,
                    name: k.name,
                },
                k.replica,
            )
        }),
        "gateway-load" => keys::GatewayLoadKey::parse(key).map(|k| Key::Load(k.identity)),
        _ => Ok(Key::Other),
    }
    .unwrap_or(Key::Other)
}

impl State {
    /// Applies one watch event or listed key. Events older than what is held are ignored,
    /// so a listing and a watch that overlap apply cleanly.
    pub fn apply(&mut self, event: &WatchEvent) -> Result<()> {
        let kv = &event.kv;
        let put = event.kind == EventKind::Put;
        match classify(&kv.key) {
            Key::Workload(r) => {
                if put {
                    if self
                        .workloads
                        .get(&r)
                        .is_some_and(|w| w.mod_revision >= kv.mod_revision)
                    {
                        return Ok(());
                    }
                    let mut w: Workload = codec::decode(&kv.key, &kv.value)?;
                    w.meta.resource_version = kv.mod_revision;
                    self.workloads.insert(r.clone(), stored(w, kv));
                } else {
                    self.workloads.remove(&r);
                }
                self.dirty.insert(r);
            }
            Key::Node(name) => {
                if put {
                    if self
                        .nodes
                        .get(&name)
                        .is_some_and(|n| n.mod_revision >= kv.mod_revision)
                    {
                        return Ok(());
                    }
                    let mut node: Node = codec::decode(&kv.key, &kv.value)?;
                    node.meta.resource_version = kv.mod_revision;
                    self.snapshot
                        .upsert_node(NodeState::from_node(&node, &self.catalog));
                    self.lost_nodes.remove(&name);
                    if node.status.ready && !node.status.draining {
                        self.troubled_nodes.remove(&name);
                    } else {
                        self.troubled_nodes.insert(name.clone());
                    }
                    self.nodes.insert(name, stored(node, kv));
                    self.capacity_changed = true;
                } else {
                    if let Some(gone) = self.nodes.remove(&name) {
                        self.lost_nodes.insert(name.clone(), gone.value);
                    }
                    self.troubled_nodes.remove(&name);
                    self.snapshot.remove_node(&name);
                }
            }
            Key::Queue(name) => {
                if put {
                    let mut q: Queue = codec::decode(&kv.key, &kv.value)?;
                    q.meta.resource_version = kv.mod_revision;
                    self.queues.insert(name, stored(q, kv));
                } else {
                    self.queues.remove(&name);
                }
            }
            Key::Allocation(id) => {
                if put {
                    let alloc: Allocation = codec::decode(&kv.key, &kv.value)?;
                    self.inflight.remove(&id);
                    if alloc.draining.is_some() {
                        self.drain_seen
                            .entry(id.clone())
                            .or_insert_with(uni_core::model::UnixMillis::now);
                    }
                    self.reserve(alloc);
                } else if let Some(alloc) = self.release(&id) {
                    self.dirty.insert(WorkloadRef::of(&alloc));
                    self.capacity_changed = true;
                }
            }
            Key::Status(r, replica) => {
                if put {
                    let s: ReplicaStatus = codec::decode(&kv.key, &kv.value)?;
                    self.statuses.insert((r.clone(), replica), s);
                } else {
                    self.statuses.remove(&(r.clone(), replica));
                }
                self.dirty.insert(r);
            }
            Key::Load(identity) => {
                if put {
                    let load: GatewayLoad = codec::decode(&kv.key, &kv.value)?;
                    if load.services.iter().any(|s| s.waiting > 0) {
                        self.activation = true;
                    }
                    self.loads.insert(identity, load);
                } else {
                    self.loads.remove(&identity);
                }
            }
            Key::Other => {}
        }
        if kv.mod_revision > self.revision {
            self.revision = kv.mod_revision;
        }
        Ok(())
    }
}

fn stored<T>(value: T, kv: &KeyValue) -> Stored<T> {
    Stored {
        value,
        mod_revision: kv.mod_revision,
        lease: kv.lease,
    }
}
