//! Cluster capacity and allocation gauges, per resource class, refreshed by the leader.

use std::collections::BTreeMap;

use crate::cache::State;
use crate::metrics::Metrics;

/// Sets `universal_cluster_{capacity,allocated,nodes}` from the current picture. Device
/// classes are named `accelerator:<model>` and counted in whole devices.
pub fn refresh(metrics: &Metrics, st: &State) {
    let mut capacity: BTreeMap<String, f64> = BTreeMap::new();
    let mut allocated: BTreeMap<String, f64> = BTreeMap::new();
    let (mut ready, mut not_ready, mut cordoned) = (0.0, 0.0, 0.0);
    for stored in st.nodes().values() {
        let n = &stored.value;
        if !n.status.ready {
            not_ready += 1.0;
            continue;
        }
        ready += 1.0;
        if n.spec.cordoned {
            cordoned += 1.0;
        }
        *capacity.entry("compute_ucu".into()).or_default() +=
            n.status.allocatable.compute_milli as f64 / 1000.0;
        *capacity.entry("memory_bytes".into()).or_default() +=
            n.status.allocatable.memory_bytes as f64;
        for d in &n.status.inventory.accelerators {
            *capacity
                .entry(format!("accelerator:{}", d.model))
                .or_default() += 1.0;
        }
    }
    // Usage per node, as the snapshot keeps it: the leader refreshes under the cache lock, and
    // summing ten thousand nodes is cheap where a pass over every allocation is not.
    let (mut compute, mut memory) = (0u64, 0u64);
    let mut devices: BTreeMap<&str, u64> = BTreeMap::new();
    for n in st.snapshot().nodes() {
        compute += n.used_compute_milli;
        memory += n.used_memory_bytes;
        for d in n.devices.iter().filter(|d| d.used_milli > 0) {
            *devices.entry(d.raw_model.as_str()).or_default() += u64::from(d.used_milli);
        }
    }
    // Allocations on nodes the snapshot does not know (yet).
    for a in st.snapshot().allocations_off_nodes() {
        compute += a.compute_milli;
        memory += a.memory_bytes;
        let share: u64 = a.devices.iter().map(|d| u64::from(d.share_milli)).sum();
        if share > 0 {
            *devices.entry("unknown").or_default() += share;
        }
    }
    allocated.insert("compute_ucu".into(), compute as f64 / 1000.0);
    allocated.insert("memory_bytes".into(), memory as f64);
    for (model, milli) in devices {
        allocated.insert(format!("accelerator:{model}"), milli as f64 / 1000.0);
    }
    metrics.capacity.reset();
    metrics.allocated.reset();
    for (k, v) in capacity {
        metrics.capacity.with_label_values(&[&k]).set(v);
    }
    for (k, v) in allocated {
        metrics.allocated.with_label_values(&[&k]).set(v);
    }
    metrics.nodes.with_label_values(&["ready"]).set(ready);
    metrics
        .nodes
        .with_label_values(&["not_ready"])
        .set(not_ready);
    metrics.nodes.with_label_values(&["cordoned"]).set(cordoned);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use uni_core::catalog::Catalog;
    use uni_core::model::{AcceleratorDevice, Allocation, DeviceBinding, Node, ObjectMeta};
    use uni_core::store::{codec, EventKind, KeyValue, WatchEvent};

    use super::*;

    fn put(key: &str, value: Vec<u8>, rev: i64) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.into(),
                value,
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                lease: 0,
            },
        }
    }

    #[test]
    fn capacity_and_allocation_per_resource_class() {
        let mut st = State::new(Arc::new(Catalog::builtin().unwrap()));
        let mut node = Node {
            meta: ObjectMeta::cluster("g1"),
            ..Node::default()
        };
        node.status.ready = true;
        node.status.allocatable.compute_milli = 8000;
        node.status.inventory.accelerators = (0..2)
            .map(|i| AcceleratorDevice {
                index: i,
                model: "NVIDIA L4".into(),
                healthy: true,
                ..AcceleratorDevice::default()
            })
            .collect();
        let alloc = Allocation {
            id: "a1".into(),
            namespace: "ns".into(),
            workload: "w".into(),
            node: "g1".into(),
            compute_milli: 2000,
            devices: vec![DeviceBinding {
                index: 0,
                share_milli: 500,
                ..DeviceBinding::default()
            }],
            ..Allocation::default()
        };
        st.apply(&put(
            "/universal/v1/nodes/g1",
            codec::encode(&node).unwrap(),
            2,
        ))
        .unwrap();
        st.apply(&put(
            "/universal/v1/allocations/g1/a1",
            codec::encode(&alloc).unwrap(),
            3,
        ))
        .unwrap();
        // On a node not (yet) known: counted from the allocation itself.
        let ghost = Allocation {
            id: "a2".into(),
            node: "ghost".into(),
            compute_milli: 1000,
            ..alloc.clone()
        };
        st.apply(&put(
            "/universal/v1/allocations/ghost/a2",
            codec::encode(&ghost).unwrap(),
            4,
        ))
        .unwrap();
        let m = Metrics::new().unwrap();
        refresh(&m, &st);
        let cap = |k: &str| m.capacity.with_label_values(&[k]).get();
        let used = |k: &str| m.allocated.with_label_values(&[k]).get();
        assert_eq!(cap("compute_ucu"), 8.0);
        assert_eq!(cap("accelerator:NVIDIA L4"), 2.0);
        assert_eq!(used("compute_ucu"), 3.0);
        assert_eq!(used("accelerator:NVIDIA L4"), 0.5);
        assert_eq!(used("accelerator:unknown"), 0.5);
        assert_eq!(m.nodes.with_label_values(&["ready"]).get(), 1.0);
    }
}
