//! Nodes, requests and allocations for the engine tests, valued with the builtin catalog.

use std::sync::LazyLock;

use uni_core::catalog::Catalog;
use uni_core::model::{Allocation, Interconnect, WorkloadRef};
use uni_core::units::GIB;

use crate::mix::Mix;
use crate::node_state::{DeviceState, NodeState};
use crate::policy::Policy;
use crate::request::{GpuDemand, ModelFilter, ReplicaRequest};
use crate::select::{self, Decision};
use crate::snapshot::Snapshot;
use crate::unschedulable::Unschedulable;

/// The mix the live scheduler starts from (its share prices solved once for all tests).
pub static GENERIC: LazyLock<Mix> = LazyLock::new(Mix::generic);

/// `select::place` measured against the generic mix.
pub fn place(
    s: &Snapshot,
    req: &ReplicaRequest,
    policy: &Policy,
) -> Result<Decision, Unschedulable> {
    select::place(s, req, policy, &GENERIC)
}

/// `select::place_by_scan` measured against the generic mix.
pub fn place_by_scan(
    s: &Snapshot,
    req: &ReplicaRequest,
    policy: &Policy,
) -> Result<Decision, Unschedulable> {
    select::place_by_scan(s, req, policy, &GENERIC)
}

pub fn catalog() -> Catalog {
    Catalog::builtin().expect("builtin catalog")
}

pub fn cpu_node(name: &str, compute_milli: u64, memory_bytes: u64) -> NodeState {
    let pricing = catalog().cpu_pricing().clone();
    NodeState {
        usd_per_ucu_hour: pricing.usd_per_ucu_hour,
        usd_per_gib_hour: pricing.usd_per_gib_hour,
        ..NodeState::new(name, compute_milli, memory_bytes)
    }
}

/// `count` devices of a catalog model, each its own island.
pub fn gpu_node(name: &str, model: &str, count: u32, compute_milli: u64) -> NodeState {
    let catalog = catalog();
    let m = catalog.accelerator(model).expect("catalog model");
    let mut node = cpu_node(name, compute_milli, 1024 * GIB);
    node.class = m.name.clone();
    node.devices = (0..count)
        .map(|i| {
            DeviceState::new(
                i,
                &m.name,
                m.memory_bytes,
                m.throughput.dense_tflops,
                m.usd_per_hour(),
            )
        })
        .collect();
    node
}

/// Joins all devices of `node` into one NVLink island.
pub fn nvlinked(mut node: NodeState) -> NodeState {
    for d in &mut node.devices {
        d.island = 0;
    }
    node
}

pub fn workload(name: &str) -> WorkloadRef {
    WorkloadRef::new("ns", name)
}

pub fn cpu(compute_milli: u64) -> ReplicaRequest {
    ReplicaRequest::new(workload("cpu"), compute_milli, GIB)
}

pub fn whole(min: u32, max: u32, memory_total: u64, interconnect: Interconnect) -> ReplicaRequest {
    ReplicaRequest {
        gpu: Some(GpuDemand::Whole {
            min_devices: min,
            max_devices: max,
            memory_bytes_total: memory_total,
            tflops_total: 0.0,
            interconnect,
            models: ModelFilter::default(),
        }),
        ..ReplicaRequest::new(workload("train"), 4000, 16 * GIB)
    }
}

pub fn fraction(milli: u32) -> ReplicaRequest {
    ReplicaRequest {
        gpu: Some(GpuDemand::Fraction {
            milli: Some(milli),
            memory_bytes: 0,
            tflops: 0.0,
            models: ModelFilter::default(),
        }),
        ..ReplicaRequest::new(workload("infer"), 1000, 4 * GIB)
    }
}

pub fn snapshot(nodes: impl IntoIterator<Item = NodeState>) -> Snapshot {
    let mut s = Snapshot::new();
    for n in nodes {
        s.upsert_node(n);
    }
    s
}

/// The allocation a scheduler would write for `decision`.
pub fn allocation(id: &str, req: &ReplicaRequest, decision: &Decision) -> Allocation {
    Allocation {
        id: id.to_string(),
        namespace: req.workload.namespace.clone(),
        workload: req.workload.name.clone(),
        node: decision.node.clone(),
        compute_milli: req.compute_milli,
        memory_bytes: req.memory_bytes,
        devices: decision.devices.clone(),
        ..Allocation::default()
    }
}

/// Places `req` and reserves it, as the scheduling loop does.
pub fn commit(
    s: &mut Snapshot,
    req: &ReplicaRequest,
    policy: &Policy,
    id: &str,
) -> Result<Decision, Unschedulable> {
    let decision = place(s, req, policy)?;
    s.add_allocation(&allocation(id, req, &decision));
    Ok(decision)
}
