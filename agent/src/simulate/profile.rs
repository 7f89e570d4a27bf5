//! Hardware of simulated nodes: an openb-style CSV node list (`sn,cpu_milli,memory_mib,gpu,
//! model`, as in Alibaba's trace) or a YAML profile:
//!
//! ```yaml
//! nodes:
//!   - name: a100            # node name, or prefix when count > 1 (a100-0, a100-1, ...)
//!     count: 4
//!     cpu_model: AMD EPYC 7R13
//!     cpus: 96              # logical CPUs
//!     memory: 1Ti
//!     gpu_model: A100-80GB
//!     gpus: 8
//!     nvlink: true          # every GPU of the node on one NVLink island
//!     labels: {zone: a}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use uni_core::model::{AcceleratorDevice, CpuInfo, Inventory, MigMode};
use uni_core::quantity;

use crate::error::{Error, Result};

/// One kind of simulated machine.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileNode {
    pub name: String,
    pub cpu_model: String,
    /// Thousandths of a logical CPU.
    pub milli_cpus: u64,
    pub memory_bytes: u64,
    pub gpu_model: String,
    pub gpus: u32,
    pub nvlink: bool,
    pub labels: BTreeMap<String, String>,
}

impl ProfileNode {
    /// The inventory an agent on such a machine would discover.
    pub fn inventory(&self, hostname: &str) -> Inventory {
        let threads = u32::try_from(self.milli_cpus.div_ceil(1000)).unwrap_or(u32::MAX);
        let accelerators = (0..self.gpus)
            .map(|i| AcceleratorDevice {
                index: i,
                uuid: format!("GPU-sim-{hostname}-{i}"),
                model: self.gpu_model.clone(),
                memory_bytes: 0,
                mig_mode: MigMode::Disabled,
                nvlink_peers: if self.nvlink {
                    (0..self.gpus).filter(|&j| j != i).collect()
                } else {
                    Vec::new()
                },
                numa_node: None,
                pci_bus_id: String::new(),
                bf16_tflops: 0.0,
                healthy: true,
            })
            .collect();
        Inventory {
            hostname: hostname.to_string(),
            arch: "x86_64".into(),
            os: "simulated".into(),
            kernel_version: String::new(),
            cpu: CpuInfo {
                model: self.cpu_model.clone(),
                vendor: String::new(),
                sockets: 1,
                cores: threads,
                threads,
                ucu_per_core: 0.0,
            },
            memory_bytes: self.memory_bytes,
            numa_nodes: Vec::new(),
            accelerators,
            driver_version: String::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlProfile {
    nodes: Vec<YamlNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlNode {
    name: String,
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    cpu_model: String,
    cpus: f64,
    memory: String,
    #[serde(default)]
    gpu_model: String,
    #[serde(default)]
    gpus: u32,
    #[serde(default)]
    nvlink: bool,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Profile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads a profile: CSV by extension `.csv`, YAML otherwise.
pub fn load(path: &Path) -> Result<Vec<ProfileNode>> {
    let text = std::fs::read_to_string(path).map_err(Error::at("reading profile", path))?;
    let nodes = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        parse_csv(&text).map_err(|r| bad(path, r))?
    } else {
        parse_yaml(&text).map_err(|r| bad(path, r))?
    };
    if nodes.is_empty() {
        return Err(bad(path, "no nodes"));
    }
    Ok(nodes)
}

pub fn parse_csv(text: &str) -> std::result::Result<Vec<ProfileNode>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty file")?
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| {
        header.iter().position(|h| *h == name).ok_or(format!(
            "no column {name:?} (need sn,cpu_milli,memory_mib,gpu,model)"
        ))
    };
    let (sn, cpu, mem, gpu, model) = (
        col("sn")?,
        col("cpu_milli")?,
        col("memory_mib")?,
        col("gpu")?,
        col("model")?,
    );
    lines
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let get = |c: usize| f.get(c).copied().unwrap_or_default();
            let num = |c: usize, what: &str| {
                get(c)
                    .parse::<u64>()
                    .map_err(|_| format!("line {}: bad {what} {:?}", i + 2, get(c)))
            };
            Ok(ProfileNode {
                name: get(sn).to_string(),
                cpu_model: String::new(),
                milli_cpus: num(cpu, "cpu_milli")?,
                memory_bytes: num(mem, "memory_mib")?.saturating_mul(1 << 20),
                gpu_model: get(model).to_string(),
                gpus: u32::try_from(num(gpu, "gpu")?).map_err(|e| e.to_string())?,
                nvlink: false,
                labels: BTreeMap::new(),
            })
        })
        .collect()
}

pub fn parse_yaml(text: &str) -> std::result::Result<Vec<ProfileNode>, String> {
    let p: YamlProfile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for n in p.nodes {
        let memory =
            quantity::parse_bytes(&n.memory).map_err(|e| format!("{}: memory: {e}", n.name))?;
        if !(n.cpus.is_finite() && n.cpus > 0.0) {
            return Err(format!("{}: cpus must be positive", n.name));
        }
        for k in 0..n.count {
            let name = if n.count == 1 {
                n.name.clone()
            } else {
                format!("{}-{k}", n.name)
            };
            out.push(ProfileNode {
                name,
                cpu_model: n.cpu_model.clone(),
                milli_cpus: (n.cpus * 1000.0).round() as u64,
                memory_bytes: memory,
                gpu_model: n.gpu_model.clone(),
                gpus: n.gpus,
                nvlink: n.nvlink,
                labels: n.labels.clone(),
            });
        }
    }
    Ok(out)
}

/// Names of `n` simulated nodes over the profile's machines: the profile's names first, then
/// `{name}-r{k}` for the k-th repetition.
pub fn expand(profile: &[ProfileNode], n: usize) -> Vec<(String, usize)> {
    (0..n)
        .map(|i| {
            let idx = i % profile.len();
            let round = i / profile.len();
            let base = &profile[idx].name;
            let name = if round == 0 {
                base.clone()
            } else {
                format!("{base}-r{round}")
            };
            (name, idx)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_openb_node_list() {
        let path = Path::new("/work/shared/data/openb/openb_node_list_gpu_node.csv");
        let text = "sn,cpu_milli,memory_mib,gpu,model\nopenb-node-0000,64000,262144,2,P100\n";
        let nodes = parse_csv(text).unwrap();
        assert_eq!(nodes[0].milli_cpus, 64000);
        assert_eq!(nodes[0].memory_bytes, 262144 << 20);
        assert_eq!((nodes[0].gpus, nodes[0].gpu_model.as_str()), (2, "P100"));
        if path.exists() {
            assert!(load(path).unwrap().len() > 1000);
        }
        assert!(parse_csv("a,b\n1,2\n").unwrap_err().contains("no column"));
    }

    #[test]
    fn yaml_profile_and_expansion() {
        let nodes = parse_yaml(
            "nodes:\n  - {name: a100, count: 2, cpus: 96, memory: 1Ti, gpu_model: A100-80GB, gpus: 8, nvlink: true}\n  - {name: cpu, cpus: 0.5, memory: 2Gi}\n",
        )
        .unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[1].name, "a100-1");
        assert_eq!(nodes[2].milli_cpus, 500);
        let inv = nodes[0].inventory("a100-0");
        assert_eq!(inv.accelerators.len(), 8);
        assert_eq!(inv.accelerators[0].nvlink_peers.len(), 7);
        let names = expand(&nodes, 7);
        assert_eq!(names[3], ("a100-0-r1".to_string(), 0));
        assert_eq!(names[6].0, "a100-0-r2");
    }
}
