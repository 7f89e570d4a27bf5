//! The hardware catalog: what discovered hardware is worth and what it costs.
//!
//! The catalog maps what agents discover (a CPU model string, a GPU name as NVML reports it, a
//! model code from a trace) to capability (UCU per logical CPU; device memory, dense bf16/fp16
//! TFLOPS and interconnect) and to an hourly price with a cited source. The default catalog is
//! `core/catalog/hardware.yaml`, embedded in the binary ([`Catalog::builtin`]); a file of the same
//! shape replaces it ([`Catalog::from_path`], [`Catalog::load`]). That file's header documents the
//! units, the name-matching rules and the pricing model.
//!
//! Units: memory in bytes (`u64`), compute in milli-UCU (`u64`), prices in USD per hour (`f64`).
//! 1 UCU is one logical CPU of the reference CPU ([`Catalog::reference`]).

mod model;
mod names;
mod raw;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;

pub use model::{
    AcceleratorModel, CpuModel, CpuPricing, InstancePrice, Interconnect, InterconnectKind, Price,
    TflopsDtype, Throughput, UcuReference, GIB,
};

use crate::{Error, Result};
use names::{normalize, normalize_pattern, NameIndex};

/// The catalog checked into the repository, embedded at build time.
pub const BUILTIN_YAML: &str = include_str!("../../catalog/hardware.yaml");

/// A loaded, validated hardware catalog. Immutable; cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Catalog {
    reference: UcuReference,
    cpu_pricing: CpuPricing,
    cpus: Vec<CpuModel>,
    accelerators: Vec<AcceleratorModel>,
    /// The `generic: true` entry of `cpus`, kept apart so the fallback needs no lookup.
    generic_cpu: CpuModel,
    cpu_index: NameIndex,
    accelerator_index: NameIndex,
}

impl Catalog {
    /// The catalog embedded in the binary.
    ///
    /// # Errors
    /// [`Error::Catalog`] if the embedded file is invalid (a unit test keeps it valid).
    pub fn builtin() -> Result<Catalog> {
        Self::parse(BUILTIN_YAML, Some("builtin"))
    }

    /// The catalog in the YAML file at `path`.
    ///
    /// # Errors
    /// [`Error::Catalog`] naming the path when it cannot be read, and every problem found in it.
    pub fn from_path(path: &Path) -> Result<Catalog> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Catalog(format!("reading {}: {e}", path.display())))?;
        Self::parse(&text, Some(&path.display().to_string()))
    }

    /// A catalog from YAML text.
    ///
    /// # Errors
    /// [`Error::Catalog`] listing every problem, each as `path (entry name).field: reason`.
    pub fn from_yaml(yaml: &str) -> Result<Catalog> {
        Self::parse(yaml, None)
    }

    /// The catalog at `path` when one is given (an operator's override), else the builtin one.
    ///
    /// # Errors
    /// As [`Catalog::from_path`] and [`Catalog::builtin`].
    pub fn load(path: Option<&Path>) -> Result<Catalog> {
        match path {
            Some(path) => Self::from_path(path),
            None => Self::builtin(),
        }
    }

    /// `origin` names where the text came from (`builtin`, a path) in error messages.
    fn parse(yaml: &str, origin: Option<&str>) -> Result<Catalog> {
        let raw: raw::RawCatalog =
            serde_yaml::from_str(yaml).map_err(|e| fail(origin, &[e.to_string()]))?;
        let checked = raw::validate(raw).map_err(|problems| fail(origin, &problems))?;
        let mut problems = Vec::new();
        let cpu_index = build_index(
            "cpus",
            checked
                .cpus
                .iter()
                .map(|c| (&c.name, &c.display_name, &c.aliases, &c.patterns)),
            &mut problems,
        );
        let accelerator_index = build_index(
            "accelerators",
            checked
                .accelerators
                .iter()
                .map(|a| (&a.name, &a.display_name, &a.aliases, &a.patterns)),
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(fail(origin, &problems));
        }
        let generic_cpu = checked
            .cpus
            .iter()
            .find(|c| c.generic)
            .cloned()
            .ok_or_else(|| fail(origin, &["cpus: no generic fallback".to_string()]))?;
        Ok(Catalog {
            reference: checked.reference,
            cpu_pricing: checked.cpu_pricing,
            cpus: checked.cpus,
            accelerators: checked.accelerators,
            generic_cpu,
            cpu_index,
            accelerator_index,
        })
    }

    /// What 1 UCU is.
    pub fn reference(&self) -> &UcuReference {
        &self.reference
    }

    /// Every CPU model, in catalog order.
    pub fn cpus(&self) -> &[CpuModel] {
        &self.cpus
    }

    /// Every accelerator model, in catalog order.
    pub fn accelerators(&self) -> &[AcceleratorModel] {
        &self.accelerators
    }

    /// The accelerator a discovered name refers to: an NVML name (`NVIDIA A100-SXM4-80GB`,
    /// `Tesla T4`), a trace code (`V100M32`) or a canonical name; case-insensitive. `None` when
    /// the catalog does not know it.
    pub fn accelerator(&self, name: &str) -> Option<&AcceleratorModel> {
        self.accelerator_index
            .lookup(name)
            .and_then(|i| self.accelerators.get(i))
    }

    /// The CPU model a discovered model string refers to, or the generic fallback.
    pub fn cpu(&self, model: &str) -> &CpuModel {
        self.cpu_index
            .lookup(model)
            .and_then(|i| self.cpus.get(i))
            .unwrap_or(&self.generic_cpu)
    }

    /// The fallback for CPU models the catalog does not list.
    pub fn generic_cpu(&self) -> &CpuModel {
        &self.generic_cpu
    }

    /// UCU per logical CPU of `cpu_model` (the generic factor for unknown models).
    pub fn ucu_per_core(&self, cpu_model: &str) -> f64 {
        self.cpu(cpu_model).ucu_per_core
    }

    /// Compute capacity, in milli-UCU, of `milli_cpus` thousandths of a logical CPU of
    /// `cpu_model`: a node with 96 logical CPUs passes `96_000`.
    pub fn milli_ucu(&self, cpu_model: &str, milli_cpus: u64) -> u64 {
        self.cpu(cpu_model).milli_ucu(milli_cpus)
    }

    /// The price of CPU-only capacity.
    pub fn cpu_pricing(&self) -> &CpuPricing {
        &self.cpu_pricing
    }

    /// Hourly price of one device of the accelerator `name` refers to.
    pub fn device_usd_per_hour(&self, name: &str) -> Option<f64> {
        self.accelerator(name).map(AcceleratorModel::usd_per_hour)
    }

    /// Hourly price of `milli_ucu` of compute.
    pub fn compute_usd_per_hour(&self, milli_ucu: u64) -> f64 {
        self.cpu_pricing.compute_usd_per_hour(milli_ucu)
    }

    /// Hourly price of `bytes` of host memory.
    pub fn memory_usd_per_hour(&self, bytes: u64) -> f64 {
        self.cpu_pricing.memory_usd_per_hour(bytes)
    }
}

/// A catalog error listing every problem; displayed as `hardware catalog: [origin: ]problems`.
fn fail(origin: Option<&str>, problems: &[String]) -> Error {
    let problems = problems.join("; ");
    Error::Catalog(match origin {
        Some(origin) => format!("{origin}: {problems}"),
        None => problems,
    })
}

/// Indexes the names of one list of entries, reporting duplicate canonical names and names
/// shared by two entries. An entry's canonical and display names count as exact names too.
fn build_index<'a>(
    list: &str,
    entries: impl Iterator<Item = (&'a String, &'a String, &'a Vec<String>, &'a Vec<String>)>,
    problems: &mut Vec<String>,
) -> NameIndex {
    let mut index = NameIndex::default();
    let mut canonical: HashMap<&str, usize> = HashMap::new();
    let mut labels: Vec<String> = Vec::new();
    for (i, (name, display_name, aliases, patterns)) in entries.enumerate() {
        let path = format!("{list}[{i}] ({name})");
        labels.push(path.clone());
        if let Some(&first) = canonical.get(name.as_str()) {
            problems.push(format!(
                "{path}.name: duplicate of {}",
                labels
                    .get(first)
                    .map(String::as_str)
                    .unwrap_or("an earlier entry")
            ));
            continue;
        }
        canonical.insert(name, i);

        let names = [("name", name), ("display_name", display_name)]
            .into_iter()
            .map(|(field, value)| (field.to_string(), value))
            .chain(
                aliases
                    .iter()
                    .enumerate()
                    .map(|(j, alias)| (format!("aliases[{j}]"), alias)),
            );
        for (field, value) in names {
            if let Some(owner) = index.insert_exact(normalize(value), i) {
                problems.push(format!(
                    "{path}.{field}: `{value}` is already a name of {}",
                    labels
                        .get(owner)
                        .map(String::as_str)
                        .unwrap_or("another entry")
                ));
            }
        }
        for pattern in patterns {
            index.insert_pattern(normalize_pattern(pattern), i);
        }
    }
    index
}
