//! Keeps CPU-only work from stranding accelerators: on a node with free accelerators, a
//! request without accelerators must leave, per free device, a share of the host's compute
//! and memory (the node's per-device share, capped at 1 UCU and 4 GiB), so those devices can
//! still be used. This is a hard rule; the fragmentation score only prefers.

use uni_core::units::GIB;

use super::Reason;
use crate::node_state::NodeState;
use crate::request::ReplicaRequest;

const MAX_COMPUTE_PER_DEVICE: u64 = 1000;
const MAX_MEMORY_PER_DEVICE: u64 = 4 * GIB;

pub fn check(node: &NodeState, req: &ReplicaRequest) -> Result<(), Reason> {
    if req.gpu.is_some() || !req.reserve_host_for_accelerators || node.devices.is_empty() {
        return Ok(());
    }
    let free = u64::from(node.whole_free_devices());
    if free == 0 {
        return Ok(());
    }
    let devices = node.devices.len() as u64;
    let compute = (node.compute_milli / devices).min(MAX_COMPUTE_PER_DEVICE) * free;
    let memory = (node.memory_bytes / devices).min(MAX_MEMORY_PER_DEVICE) * free;
    let compute_left = node.free_compute_milli().saturating_sub(req.compute_milli);
    let memory_left = node.free_memory_bytes().saturating_sub(req.memory_bytes);
    if compute_left < compute || memory_left < memory {
        Err("would strand free accelerators")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_state::DeviceState;
    use uni_core::model::WorkloadRef;

    fn gpu_node() -> NodeState {
        NodeState {
            devices: (0..4)
                .map(|i| DeviceState::new(i, "A100-80GB", 80 * GIB, 312.0, 2.0))
                .collect(),
            ..NodeState::new("g", 8000, 64 * GIB)
        }
    }

    fn cpu_req(compute: u64) -> ReplicaRequest {
        ReplicaRequest {
            reserve_host_for_accelerators: true,
            ..ReplicaRequest::new(WorkloadRef::new("ns", "w"), compute, GIB)
        }
    }

    #[test]
    fn cpu_work_leaves_a_core_per_free_gpu() {
        let n = gpu_node();
        // 4 free GPUs need 4 cores kept: 4 of 8 may go to CPU-only work.
        assert_eq!(check(&n, &cpu_req(4000)), Ok(()));
        assert_eq!(
            check(&n, &cpu_req(4001)),
            Err("would strand free accelerators")
        );
        // Trace replays of baselines may opt out.
        let mut free_for_all = cpu_req(8000);
        free_for_all.reserve_host_for_accelerators = false;
        assert_eq!(check(&n, &free_for_all), Ok(()));
    }

    #[test]
    fn nodes_without_free_accelerators_are_not_held_back() {
        let mut n = gpu_node();
        for d in &mut n.devices {
            d.used_milli = 1000;
        }
        assert_eq!(check(&n, &cpu_req(8000)), Ok(()));
    }
}
