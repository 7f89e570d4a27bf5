//! Accelerators: the right models, then enough device memory, speed and free devices.

use uni_core::model::Interconnect;

use super::Reason;
use crate::node_state::{DeviceState, NodeState};
use crate::request::{GpuDemand, ReplicaRequest};
use crate::shape::{self, fits_whole, fraction_share, whole_eligible};

/// The node has healthy devices of an allowed model (always true for CPU-only requests).
pub fn models(node: &NodeState, req: &ReplicaRequest) -> Result<(), Reason> {
    let Some(gpu) = &req.gpu else {
        return Ok(());
    };
    if node.devices.is_empty() {
        return Err("no accelerators");
    }
    let mut allowed = node
        .devices
        .iter()
        .filter(|d| gpu.models().allows_device(d));
    match allowed.clone().next() {
        None => Err("no matching accelerator model"),
        Some(_) if !allowed.any(|d| d.healthy) => Err("unhealthy accelerators"),
        Some(_) => Ok(()),
    }
}

/// Some shape fits now; else why not, from the most permanent reason to the most transient.
pub fn capacity(node: &NodeState, req: &ReplicaRequest) -> Result<(), Reason> {
    let Some(gpu) = &req.gpu else {
        return Ok(());
    };
    let usable = || {
        node.devices
            .iter()
            .filter(|d| d.healthy && gpu.models().allows_device(d))
    };
    match gpu {
        GpuDemand::Fraction {
            milli,
            memory_bytes,
            tflops,
            ..
        } => {
            if !usable().any(|d| d.memory_bytes >= *memory_bytes) {
                return Err("insufficient accelerator memory");
            }
            let share = |d: &DeviceState| fraction_share(d, *milli, *memory_bytes, *tflops);
            if !usable().any(|d| d.memory_bytes >= *memory_bytes && share(d).is_some()) {
                return Err("insufficient accelerator tflops");
            }
        }
        GpuDemand::Whole {
            memory_bytes_total,
            tflops_total,
            interconnect,
            models,
            ..
        } => {
            let counts = gpu.device_counts();
            let enough = |ok: &dyn Fn(&DeviceState, u32) -> bool| {
                counts
                    .clone()
                    .any(|n| usable().filter(|d| ok(d, n)).count() >= n as usize)
            };
            let per_device = |n: u32| memory_bytes_total.div_ceil(u64::from(n.max(1)));
            if !enough(&|d, n| d.memory_bytes >= per_device(n)) {
                return Err("insufficient accelerator memory");
            }
            if !enough(&|d, n| fits_whole(d, models, *memory_bytes_total, *tflops_total, n)) {
                return Err("insufficient accelerator tflops");
            }
            if !enough(&|d, n| whole_eligible(d, gpu, n)) {
                return Err("insufficient accelerators");
            }
            if *interconnect == Interconnect::NvLink && !has_shape(node, req) {
                return Err("no NVLink island large enough");
            }
        }
    }
    if has_shape(node, req) {
        Ok(())
    } else {
        Err("insufficient accelerators")
    }
}

fn has_shape(node: &NodeState, req: &ReplicaRequest) -> bool {
    let mut any = false;
    shape::for_each(node, req, |_| any = true);
    any
}

#[cfg(test)]
mod tests {
    use uni_core::units::GIB;

    use super::*;
    use crate::request::ModelFilter;
    use uni_core::model::WorkloadRef;

    fn node(count: u32, memory: u64) -> NodeState {
        NodeState {
            devices: (0..count)
                .map(|i| DeviceState::new(i, "nvidia-a100-40gb", memory, 312.0, 1.8))
                .collect(),
            ..NodeState::new("n", 96_000, 512 * GIB)
        }
    }

    fn req(gpu: GpuDemand) -> ReplicaRequest {
        ReplicaRequest {
            gpu: Some(gpu),
            ..ReplicaRequest::new(WorkloadRef::new("ns", "w"), 1000, GIB)
        }
    }

    fn whole(n: u32, memory: u64, tflops: f64, interconnect: Interconnect) -> ReplicaRequest {
        req(GpuDemand::Whole {
            min_devices: n,
            max_devices: n,
            memory_bytes_total: memory,
            tflops_total: tflops,
            interconnect,
            models: ModelFilter::default(),
        })
    }

    fn fraction(memory: u64, models: ModelFilter) -> ReplicaRequest {
        req(GpuDemand::Fraction {
            milli: None,
            memory_bytes: memory,
            tflops: 0.0,
            models,
        })
    }

    #[test]
    fn model_reasons() {
        let cpu = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 1, 1);
        assert_eq!(models(&node(0, 0), &cpu), Ok(()));
        let any = fraction(GIB, ModelFilter::default());
        assert_eq!(models(&node(0, 0), &any), Err("no accelerators"));
        let h100 = fraction(
            GIB,
            ModelFilter {
                allowed: vec!["nvidia-h100-sxm".into()],
                forbidden: vec![],
            },
        );
        assert_eq!(
            models(&node(2, 40 * GIB), &h100),
            Err("no matching accelerator model")
        );
        let mut sick = node(1, 40 * GIB);
        sick.devices[0].healthy = false;
        assert_eq!(models(&sick, &any), Err("unhealthy accelerators"));
    }

    #[test]
    fn capacity_reasons() {
        let n = node(4, 40 * GIB);
        assert_eq!(
            capacity(&n, &fraction(41 * GIB, ModelFilter::default())),
            Err("insufficient accelerator memory")
        );
        assert_eq!(
            capacity(&n, &fraction(40 * GIB, ModelFilter::default())),
            Ok(())
        );
        assert_eq!(
            capacity(&n, &whole(2, 160 * GIB, 0.0, Interconnect::Any)),
            Err("insufficient accelerator memory")
        );
        assert_eq!(
            capacity(&n, &whole(2, 80 * GIB, 1000.0, Interconnect::Any)),
            Err("insufficient accelerator tflops")
        );
        assert_eq!(
            capacity(&n, &whole(4, 0, 0.0, Interconnect::NvLink)),
            Err("no NVLink island large enough")
        );
        let mut busy = n.clone();
        busy.devices[0].used_milli = 1;
        assert_eq!(
            capacity(&busy, &whole(4, 0, 0.0, Interconnect::Any)),
            Err("insufficient accelerators")
        );
        let mut linked = n;
        for d in &mut linked.devices {
            d.island = 0;
        }
        assert_eq!(
            capacity(&linked, &whole(4, 0, 0.0, Interconnect::NvLink)),
            Ok(())
        );
    }
}
