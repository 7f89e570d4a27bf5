//! Instance types a fleet is bought in: the sizes of AWS's GPU and general-purpose families
//! (devices, vCPUs, GiB, as AWS lists them; the sizes are not in the hardware catalog and were
//! not re-checked against AWS's pages here), each priced with the catalog's model: devices at
//! the catalog's device price plus vCPUs and memory at its CPU prices. That model reproduces
//! the catalog's own source instances (g4dn.xlarge, g5.xlarge, g6.xlarge, p3.2xlarge) exactly.

use uni_core::catalog::Catalog;
use uni_core::units::GIB;
use uni_placement::node_state::{DeviceState, NodeState};

/// One instance size.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceType {
    pub name: String,
    /// Catalog accelerator name; empty for CPU-only types.
    pub model: String,
    pub devices: u32,
    pub vcpus: u32,
    pub memory_gib: u32,
    pub usd_per_hour: f64,
}

/// (family, catalog model, [(size, devices, vcpus, GiB)]).
type Family = (
    &'static str,
    &'static str,
    &'static [(&'static str, u32, u32, u32)],
);

const GPU_FAMILIES: [Family; 4] = [
    (
        "g4dn",
        "nvidia-t4",
        &[
            ("xlarge", 1, 4, 16),
            ("2xlarge", 1, 8, 32),
            ("4xlarge", 1, 16, 64),
            ("8xlarge", 1, 32, 128),
            ("16xlarge", 1, 64, 256),
            ("12xlarge", 4, 48, 192),
            ("metal", 8, 96, 384),
        ],
    ),
    (
        "g6",
        "nvidia-l4",
        &[
            ("xlarge", 1, 4, 16),
            ("2xlarge", 1, 8, 32),
            ("4xlarge", 1, 16, 64),
            ("8xlarge", 1, 32, 128),
            ("16xlarge", 1, 64, 256),
            ("12xlarge", 4, 48, 192),
            ("24xlarge", 4, 96, 384),
            ("48xlarge", 8, 192, 768),
        ],
    ),
    (
        "g5",
        "nvidia-a10g",
        &[
            ("xlarge", 1, 4, 16),
            ("2xlarge", 1, 8, 32),
            ("4xlarge", 1, 16, 64),
            ("8xlarge", 1, 32, 128),
            ("16xlarge", 1, 64, 256),
            ("12xlarge", 4, 48, 192),
            ("24xlarge", 4, 96, 384),
            ("48xlarge", 8, 192, 768),
        ],
    ),
    (
        "p3",
        "nvidia-v100-16gb",
        &[
            ("2xlarge", 1, 8, 61),
            ("8xlarge", 4, 32, 244),
            ("16xlarge", 8, 64, 488),
        ],
    ),
];

/// General-purpose families by GiB per vCPU: c6i (2), m6i (4), r6i (8).
const CPU_FAMILIES: [(&str, u32); 3] = [("c6i", 2), ("m6i", 4), ("r6i", 8)];
const CPU_SIZES: [(&str, u32); 9] = [
    ("large", 2),
    ("xlarge", 4),
    ("2xlarge", 8),
    ("4xlarge", 16),
    ("8xlarge", 32),
    ("12xlarge", 48),
    ("16xlarge", 64),
    ("24xlarge", 96),
    ("32xlarge", 128),
];

/// Every instance type, priced with `catalog`.
pub fn all(catalog: &Catalog) -> Vec<InstanceType> {
    let cpu = catalog.cpu_pricing();
    let host = |vcpus: u32, gib: u32| {
        f64::from(vcpus) * cpu.usd_per_ucu_hour + f64::from(gib) * cpu.usd_per_gib_hour
    };
    let mut out = Vec::new();
    for (family, model, sizes) in GPU_FAMILIES {
        let device = catalog.device_usd_per_hour(model).unwrap_or(0.0);
        for &(size, devices, vcpus, gib) in sizes {
            out.push(InstanceType {
                name: format!("{family}.{size}"),
                model: model.to_string(),
                devices,
                vcpus,
                memory_gib: gib,
                usd_per_hour: f64::from(devices) * device + host(vcpus, gib),
            });
        }
    }
    for (family, per_vcpu) in CPU_FAMILIES {
        for (size, vcpus) in CPU_SIZES {
            out.push(InstanceType {
                name: format!("{family}.{size}"),
                model: String::new(),
                devices: 0,
                vcpus,
                memory_gib: vcpus * per_vcpu,
                usd_per_hour: host(vcpus, vcpus * per_vcpu),
            });
        }
    }
    out
}

/// A node of this type, as the placement engine sees it (vCPUs as UCU: the reference CPU's).
pub fn node(t: &InstanceType, name: &str, catalog: &Catalog) -> NodeState {
    let pricing = catalog.cpu_pricing();
    let mut n = NodeState::new(
        name,
        u64::from(t.vcpus) * 1000,
        u64::from(t.memory_gib) * GIB,
    );
    n.usd_per_ucu_hour = pricing.usd_per_ucu_hour;
    n.usd_per_gib_hour = pricing.usd_per_gib_hour;
    if let Some(m) = catalog.accelerator(&t.model) {
        n.class = m.name.clone();
        n.devices = (0..t.devices)
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
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogs_source_instances_are_priced_as_listed() {
        let catalog = Catalog::builtin().expect("catalog");
        let types = all(&catalog);
        let price = |name: &str| {
            types
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.usd_per_hour)
                .expect("listed")
        };
        assert!((price("g4dn.xlarge") - 0.526).abs() < 1e-3);
        assert!((price("g5.xlarge") - 1.006).abs() < 1e-3);
        assert!((price("g6.xlarge") - 0.8048).abs() < 1e-3);
        assert!((price("p3.2xlarge") - 3.06).abs() < 1e-3);
        assert!((price("m6i.large") - 0.0987).abs() < 1e-3);
    }
}
