//! The openb trace files (Alibaba cluster-trace-gpu-v2023): node and pod lists as CSV, turned
//! into the placement engine's nodes and requests. Devices are valued with the hardware
//! catalog (trace codes such as `V100M32` are catalog aliases); the trace code stays the
//! device's raw model, so a pod's `gpu_spec` matches it.

use std::path::Path;

use anyhow::{bail, Context};
use uni_core::catalog::Catalog;
use uni_core::model::WorkloadRef;
use uni_core::units::{MIB, MILLI_PER_DEVICE};
use uni_placement::node_state::{DeviceState, NodeState};
use uni_placement::request::{GpuDemand, ModelFilter, ReplicaRequest};

/// Namespace of every replayed pod.
pub const NAMESPACE: &str = "openb";

/// One row of a node list: `sn,cpu_milli,memory_mib,gpu,model`.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceNode {
    pub name: String,
    pub cpu_milli: u64,
    pub memory_mib: u64,
    pub gpus: u32,
    pub model: String,
}

/// One row of a pod list: `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,...`.
#[derive(Debug, Clone, PartialEq)]
pub struct TracePod {
    pub name: String,
    pub cpu_milli: u64,
    pub memory_mib: u64,
    pub num_gpu: u32,
    /// Per GPU, 0..=1000.
    pub gpu_milli: u32,
    /// Allowed GPU models; empty: any.
    pub gpu_spec: Vec<String>,
}

impl TracePod {
    /// Thousandths of a GPU the pod asks for in all.
    pub fn total_gpu_milli(&self) -> u64 {
        u64::from(self.num_gpu) * u64::from(self.gpu_milli)
    }

    /// A pod with 1 CPU and 1 GiB (tests).
    #[cfg(test)]
    pub fn sample(name: &str, num_gpu: u32, gpu_milli: u32) -> Self {
        Self {
            name: name.into(),
            cpu_milli: 1000,
            memory_mib: 1024,
            num_gpu,
            gpu_milli,
            gpu_spec: Vec::new(),
        }
    }

    /// A shared GPU: one device, part of it.
    pub fn is_shared(&self) -> bool {
        self.num_gpu == 1 && self.gpu_milli < MILLI_PER_DEVICE
    }
}

/// Rows of a CSV file with a header, as maps from column name to field. The openb files have
/// no quoting, so a plain split is exact.
fn rows(path: &Path) -> anyhow::Result<Vec<Vec<(String, String)>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .context("empty file")?
        .split(',')
        .map(|h| h.trim().to_string())
        .collect();
    Ok(lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(|f| f.trim().to_string()))
                .collect()
        })
        .collect())
}

fn field<'a>(row: &'a [(String, String)], name: &str) -> anyhow::Result<&'a str> {
    row.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .with_context(|| format!("missing column {name}"))
}

fn number(row: &[(String, String)], name: &str) -> anyhow::Result<u64> {
    let v = field(row, name)?;
    if v.is_empty() {
        return Ok(0);
    }
    v.parse()
        .or_else(|_| v.parse::<f64>().map(|f| f.max(0.0) as u64))
        .with_context(|| format!("column {name}: {v:?} is not a number"))
}

pub fn load_nodes(path: &Path) -> anyhow::Result<Vec<TraceNode>> {
    let mut out = Vec::new();
    for (i, row) in rows(path)?.iter().enumerate() {
        let node = (|| -> anyhow::Result<TraceNode> {
            Ok(TraceNode {
                name: field(row, "sn")?.to_string(),
                cpu_milli: number(row, "cpu_milli")?,
                memory_mib: number(row, "memory_mib")?,
                gpus: u32::try_from(number(row, "gpu")?)?,
                model: field(row, "model")?.to_string(),
            })
        })()
        .with_context(|| format!("{} row {}", path.display(), i + 2))?;
        out.push(node);
    }
    if out.is_empty() {
        bail!("{}: no nodes", path.display());
    }
    Ok(out)
}

pub fn load_pods(path: &Path) -> anyhow::Result<Vec<TracePod>> {
    let mut out = Vec::new();
    for (i, row) in rows(path)?.iter().enumerate() {
        let pod = (|| -> anyhow::Result<TracePod> {
            let num_gpu = u32::try_from(number(row, "num_gpu")?)?;
            // As the paper's converter does: a share above one GPU is one whole GPU.
            let milli = number(row, "gpu_milli")?.min(u64::from(MILLI_PER_DEVICE)) as u32;
            let spec = row
                .iter()
                .find(|(k, _)| k == "gpu_spec")
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            Ok(TracePod {
                name: field(row, "name")?.to_string(),
                cpu_milli: number(row, "cpu_milli")?,
                memory_mib: number(row, "memory_mib")?,
                num_gpu,
                gpu_milli: if num_gpu == 0 { 0 } else { milli },
                gpu_spec: spec
                    .split('|')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })()
        .with_context(|| format!("{} row {}", path.display(), i + 2))?;
        out.push(pod);
    }
    if out.is_empty() {
        bail!("{}: no pods", path.display());
    }
    Ok(out)
}

/// The engine's view of a trace node: its devices valued with the catalog (an unknown model
/// is kept by name, unpriced).
pub fn node_state(node: &TraceNode, catalog: &Catalog) -> NodeState {
    let pricing = catalog.cpu_pricing();
    let model = catalog.accelerator(&node.model);
    let canonical = model.map_or(node.model.clone(), |m| m.name.clone());
    let mut state = NodeState::new(&node.name, node.cpu_milli, node.memory_mib * MIB);
    state.usd_per_ucu_hour = pricing.usd_per_ucu_hour;
    state.usd_per_gib_hour = pricing.usd_per_gib_hour;
    if node.gpus > 0 {
        state.class = canonical.clone();
        state.devices = (0..node.gpus)
            .map(|i| {
                let mut d = DeviceState::new(
                    i,
                    &canonical,
                    model.map_or(0, |m| m.memory_bytes),
                    model.map_or(0.0, |m| m.throughput.dense_tflops),
                    model.map_or(0.0, |m| m.usd_per_hour()),
                );
                d.raw_model = node.model.clone();
                d
            })
            .collect();
    }
    state
}

/// The request for one pod instance (`name` is unique per instance: copies drawn by the
/// inflation get a suffix). CPU-only work may use GPU nodes freely, as in the paper.
pub fn pod_request(pod: &TracePod, name: &str) -> ReplicaRequest {
    let mut req = ReplicaRequest::new(
        WorkloadRef::new(NAMESPACE, name),
        pod.cpu_milli,
        pod.memory_mib * MIB,
    );
    req.reserve_host_for_accelerators = false;
    let models = ModelFilter {
        allowed: pod.gpu_spec.clone(),
        forbidden: Vec::new(),
    };
    req.gpu = match (pod.num_gpu, pod.gpu_milli) {
        (0, _) | (_, 0) => None,
        (1, m) if m < MILLI_PER_DEVICE => Some(GpuDemand::Fraction {
            milli: Some(m),
            memory_bytes: 0,
            tflops: 0.0,
            models,
        }),
        (n, _) => Some(GpuDemand::Whole {
            min_devices: n,
            max_devices: n,
            memory_bytes_total: 0,
            tflops_total: 0.0,
            interconnect: Default::default(),
            models,
        }),
    };
    req
}
