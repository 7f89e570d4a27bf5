//! Shapes: the concrete devices one request would take on one node (e.g. 1 x 80 GB device, or
//! 2 x 40 GB devices on one NVLink island). A node offers zero or more shapes per request; the
//! scores pick among them.

use uni_core::model::{DeviceBinding, Interconnect, Preference};
use uni_core::units::MILLI_PER_DEVICE;

use super::node_state::{DeviceState, NodeState};
use super::request::{GpuDemand, ModelFilter, ReplicaRequest};

/// Devices past this position on a node are never bound (a shape is a 64-bit set).
pub const MAX_DEVICES: usize = 64;

/// Devices chosen on one node. `Copy`, so the hot path enumerates shapes without allocating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Positions in `node.devices`: bit `i` is `devices[i]`. Empty for CPU-only work.
    pub devices: u64,
    /// Thousandths of each chosen device.
    pub share_milli: u32,
    /// Device memory reserved on each chosen device when shared; a whole device reserves all
    /// of its memory.
    pub memory_bytes: u64,
    /// Hourly price of the chosen devices (shares priced pro rata), without host resources.
    pub usd_per_hour: f64,
    /// Dense bf16 TFLOPS of the chosen devices (whole devices, as a measure of speed).
    pub tflops: f64,
}

impl Shape {
    pub const CPU_ONLY: Shape = Shape {
        devices: 0,
        share_milli: 0,
        memory_bytes: 0,
        usd_per_hour: 0.0,
        tflops: 0.0,
    };

    pub fn count(&self) -> u32 {
        self.devices.count_ones()
    }

    pub fn is_whole(&self) -> bool {
        self.share_milli >= MILLI_PER_DEVICE
    }

    pub fn includes(&self, position: usize) -> bool {
        position < MAX_DEVICES && self.devices & (1 << position) != 0
    }

    /// Free thousandths of `node.devices[position]` once this shape is placed.
    pub fn free_milli_after(&self, d: &DeviceState, position: usize) -> u32 {
        if self.includes(position) {
            d.free_milli().saturating_sub(self.share_milli)
        } else {
            d.free_milli()
        }
    }

    /// Free thousandths of each of `node`'s devices (up to `MAX_DEVICES`) once this shape is
    /// placed, and how many devices that is.
    pub fn free_after(&self, node: &NodeState) -> ([u32; MAX_DEVICES], usize) {
        let mut free = [0u32; MAX_DEVICES];
        let devices = node.devices.len().min(MAX_DEVICES);
        for (i, d) in node.devices.iter().enumerate().take(devices) {
            free[i] = self.free_milli_after(d, i);
        }
        (free, devices)
    }

    /// The bindings an allocation records for this shape.
    pub fn bindings(&self, node: &NodeState) -> Vec<DeviceBinding> {
        node.devices
            .iter()
            .enumerate()
            .filter(|(i, _)| self.includes(*i))
            .map(|(_, d)| DeviceBinding {
                index: d.index,
                uuid: d.uuid.clone(),
                share_milli: self.share_milli,
                memory_bytes: if self.is_whole() {
                    d.memory_bytes
                } else {
                    self.memory_bytes
                },
            })
            .collect()
    }
}

/// The share of `d` a fractional demand takes: `milli` when explicit, else the larger of the
/// memory and TFLOPS ratios, rounded up; `None` when it cannot fit in one device.
pub fn fraction_share(
    d: &DeviceState,
    milli: Option<u32>,
    memory: u64,
    tflops: f64,
) -> Option<u32> {
    let full = u64::from(MILLI_PER_DEVICE);
    let share = match milli {
        Some(m) => u64::from(m.max(1)),
        None => {
            let by_memory = match (memory, d.memory_bytes) {
                (0, _) => 0,
                (_, 0) => return None,
                (m, total) => {
                    let share = (u128::from(m) * u128::from(full)).div_ceil(u128::from(total));
                    u64::try_from(share).unwrap_or(u64::MAX)
                }
            };
            let by_tflops = if tflops <= 0.0 {
                0
            } else if d.bf16_tflops <= 0.0 {
                return None;
            } else {
                // The epsilon keeps exact ratios (0.5 -> 500) from rounding up.
                (tflops / d.bf16_tflops * full as f64 - 1e-9)
                    .ceil()
                    .max(0.0) as u64
            };
            by_memory.max(by_tflops).max(1)
        }
    };
    (share <= full).then_some(share as u32)
}

/// Calls `f` with every shape `req` may take on `node` (CPU and memory not checked here):
/// one per distinct usable device for a fraction, one per device count for whole devices.
pub fn for_each(node: &NodeState, req: &ReplicaRequest, mut f: impl FnMut(Shape)) {
    match &req.gpu {
        None => f(Shape::CPU_ONLY),
        Some(GpuDemand::Fraction {
            milli,
            memory_bytes,
            tflops,
            models,
        }) => {
            for (i, d) in node.devices.iter().enumerate().take(MAX_DEVICES) {
                if !d.healthy || !models.allows_device(d) || d.memory_bytes < *memory_bytes {
                    continue;
                }
                // Devices alike in every way offer the same shape: offer the first only.
                if node.devices[..i].iter().any(|e| alike(d, e)) {
                    continue;
                }
                let Some(share) = fraction_share(d, *milli, *memory_bytes, *tflops) else {
                    continue;
                };
                if share <= d.free_milli() && *memory_bytes <= d.free_memory_bytes() {
                    f(Shape {
                        devices: 1 << i,
                        share_milli: share,
                        memory_bytes: *memory_bytes,
                        usd_per_hour: d.price_per_hour * f64::from(share) / 1000.0,
                        tflops: d.bf16_tflops,
                    });
                }
            }
        }
        Some(demand @ GpuDemand::Whole { interconnect, .. }) => {
            for n in demand.device_counts() {
                if let Some(shape) = whole_shape(node, demand, n, *interconnect, req.prefer) {
                    f(shape);
                }
            }
        }
    }
}

/// Same model, size, speed, price and usage: interchangeable for a shared placement.
fn alike(a: &DeviceState, b: &DeviceState) -> bool {
    a.healthy == b.healthy
        && a.used_milli == b.used_milli
        && a.used_memory_bytes == b.used_memory_bytes
        && a.memory_bytes == b.memory_bytes
        && a.bf16_tflops == b.bf16_tflops
        && a.price_per_hour == b.price_per_hour
        && a.model == b.model
        && a.raw_model == b.raw_model
}

/// Whether `d` can be bound whole as one of `n` devices for `demand`.
pub fn whole_eligible(d: &DeviceState, demand: &GpuDemand, n: u32) -> bool {
    let GpuDemand::Whole {
        memory_bytes_total,
        tflops_total,
        models,
        ..
    } = demand
    else {
        return false;
    };
    d.is_whole_free() && fits_whole(d, models, *memory_bytes_total, *tflops_total, n)
}

/// Whether `d` is big and fast enough to be one of `n` devices (free or not).
pub fn fits_whole(d: &DeviceState, models: &ModelFilter, memory: u64, tflops: f64, n: u32) -> bool {
    let n = n.max(1);
    d.healthy
        && models.allows_device(d)
        && d.memory_bytes >= memory.div_ceil(u64::from(n))
        && (tflops <= 0.0 || d.bf16_tflops + 1e-9 >= tflops / f64::from(n))
}

/// `n` whole devices: on one island when NVLink is required (the island with the fewest
/// eligible devices that still has `n`, so larger islands stay whole), else the cheapest (or
/// fastest) devices, taken from the least-free islands first.
fn whole_shape(
    node: &NodeState,
    demand: &GpuDemand,
    n: u32,
    interconnect: Interconnect,
    prefer: Preference,
) -> Option<Shape> {
    let mut eligible = [0u8; MAX_DEVICES];
    let mut count = 0;
    for (i, d) in node.devices.iter().enumerate().take(MAX_DEVICES) {
        if whole_eligible(d, demand, n) {
            eligible[count] = i as u8;
            count += 1;
        }
    }
    let n = n as usize;
    if count < n {
        return None;
    }
    let eligible = &eligible[..count];
    let device = |k: usize| &node.devices[usize::from(eligible[k])];
    // How many eligible devices share each one's island.
    let mut island_sizes = [0usize; MAX_DEVICES];
    for (k, size) in island_sizes.iter_mut().enumerate().take(count) {
        *size = (0..count)
            .filter(|&j| device(j).island == device(k).island)
            .count();
    }
    let mut order: [usize; MAX_DEVICES] = std::array::from_fn(|k| k);
    let order = &mut order[..count];
    let by_preference = |a: usize, b: usize| match prefer {
        Preference::Cost => device(a)
            .price_per_hour
            .total_cmp(&device(b).price_per_hour),
        Preference::Speed => device(b).bf16_tflops.total_cmp(&device(a).bf16_tflops),
    };
    let chosen_island = if interconnect == Interconnect::NvLink {
        let best = (0..count)
            .filter(|&k| island_sizes[k] >= n)
            .min_by_key(|&k| (island_sizes[k], device(k).island))?;
        Some(device(best).island)
    } else {
        None
    };
    order.sort_by(|&a, &b| {
        by_preference(a, b)
            .then(island_sizes[a].cmp(&island_sizes[b]))
            .then(eligible[a].cmp(&eligible[b]))
    });
    let mut shape = Shape {
        devices: 0,
        share_milli: MILLI_PER_DEVICE,
        memory_bytes: 0,
        usd_per_hour: 0.0,
        tflops: 0.0,
    };
    let mut taken = 0;
    for &k in order.iter() {
        if taken == n {
            break;
        }
        let d = device(k);
        if chosen_island.is_some_and(|island| d.island != island) {
            continue;
        }
        shape.devices |= 1 << eligible[k];
        shape.usd_per_hour += d.price_per_hour;
        shape.tflops += d.bf16_tflops;
        taken += 1;
    }
    (taken == n).then_some(shape)
}

#[cfg(test)]
mod tests {
    use uni_core::units::GIB;

    use super::*;
    use uni_core::model::WorkloadRef;

    fn node(devices: Vec<DeviceState>) -> NodeState {
        NodeState {
            devices,
            ..NodeState::new("n", 64_000, 256 * GIB)
        }
    }

    fn whole(min: u32, max: u32, memory: u64, interconnect: Interconnect) -> ReplicaRequest {
        ReplicaRequest {
            gpu: Some(GpuDemand::Whole {
                min_devices: min,
                max_devices: max,
                memory_bytes_total: memory,
                tflops_total: 0.0,
                interconnect,
                models: ModelFilter::default(),
            }),
            ..ReplicaRequest::new(WorkloadRef::new("ns", "w"), 1000, GIB)
        }
    }

    fn shapes(node: &NodeState, req: &ReplicaRequest) -> Vec<Shape> {
        let mut out = Vec::new();
        for_each(node, req, |s| out.push(s));
        out
    }

    #[test]
    fn fraction_share_from_memory_tflops_or_explicit() {
        let d = DeviceState::new(0, "m", 80 * GIB, 300.0, 2.0);
        assert_eq!(fraction_share(&d, Some(250), 0, 0.0), Some(250));
        assert_eq!(fraction_share(&d, Some(1001), 0, 0.0), None);
        assert_eq!(fraction_share(&d, None, 40 * GIB, 0.0), Some(500));
        assert_eq!(fraction_share(&d, None, 40 * GIB, 225.0), Some(750));
        assert_eq!(fraction_share(&d, None, 81 * GIB, 0.0), None);
        assert_eq!(fraction_share(&d, None, 0, 0.0), Some(1));
    }

    #[test]
    fn fraction_fits_inside_one_device_only() {
        let mut n = node(vec![
            DeviceState::new(0, "m", 16 * GIB, 100.0, 1.0),
            DeviceState::new(1, "m", 16 * GIB, 100.0, 1.0),
        ]);
        n.devices[0].used_milli = 600;
        n.devices[1].used_milli = 600;
        let mut req = whole(1, 1, 0, Interconnect::Any);
        req.gpu = Some(GpuDemand::Fraction {
            milli: Some(500),
            memory_bytes: 0,
            tflops: 0.0,
            models: ModelFilter::default(),
        });
        // 800 milli are free in total, but no single device has 500.
        assert!(shapes(&n, &req).is_empty());
        n.devices[1].used_milli = 500;
        let found = shapes(&n, &req);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].devices, 0b10);
        assert!((found[0].usd_per_hour - 0.5).abs() < 1e-9);
    }

    #[test]
    fn nvlink_shapes_stay_in_the_smallest_island_that_fits() {
        let mut devices: Vec<DeviceState> = (0..6)
            .map(|i| DeviceState::new(i, "m", 40 * GIB, 300.0, 1.0))
            .collect();
        // Islands: {0,1,2,3} and {4,5}.
        for d in &mut devices {
            d.island = if d.index < 4 { 0 } else { 4 };
        }
        let n = node(devices);
        let found = shapes(&n, &whole(2, 2, 80 * GIB, Interconnect::NvLink));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].devices, 0b11_0000);
        let found = shapes(&n, &whole(3, 3, 0, Interconnect::NvLink));
        assert_eq!(found[0].devices, 0b0111);
        assert!(shapes(&n, &whole(5, 5, 0, Interconnect::NvLink)).is_empty());
        // Without NVLink, five devices may straddle islands.
        assert_eq!(shapes(&n, &whole(5, 5, 0, Interconnect::Any))[0].count(), 5);
    }

    #[test]
    fn whole_counts_need_memory_per_device() {
        let n = node(vec![
            DeviceState::new(0, "m", 40 * GIB, 300.0, 1.0),
            DeviceState::new(1, "m", 40 * GIB, 300.0, 1.0),
        ]);
        let found = shapes(&n, &whole(1, 2, 80 * GIB, Interconnect::Any));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].count(), 2);
        let bindings = found[0].bindings(&n);
        assert_eq!(bindings.len(), 2);
        assert!(bindings
            .iter()
            .all(|b| b.share_milli == 1000 && b.memory_bytes == 40 * GIB));
    }
}
