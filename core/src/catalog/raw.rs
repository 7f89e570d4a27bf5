//! The catalog file as written (serde), and its checked conversion into domain types.
//!
//! Parsing rejects unknown fields and wrong types (serde_yaml names the path); [`validate`] then
//! checks what types cannot: positive finite numbers, non-empty sources, unique names. Every
//! problem is reported, each as `path (entry name).field: reason`.

use serde::Deserialize;

use super::model::{
    AcceleratorModel, CpuModel, CpuPricing, InstancePrice, Interconnect, InterconnectKind, Price,
    TflopsDtype, Throughput, UcuReference, GIB,
};

/// The only file format version this code reads.
pub(crate) const VERSION: u32 = 1;

/// Largest accepted UCU factor per logical CPU; anything above is a typo.
const MAX_UCU_PER_CORE: f64 = 64.0;
/// Largest accepted device memory, GiB.
const MAX_MEMORY_GIB: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCatalog {
    pub version: u32,
    pub ucu_reference: RawUcuReference,
    pub cpu_pricing: RawCpuPricing,
    pub cpus: Vec<RawCpu>,
    pub accelerators: Vec<RawAccelerator>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUcuReference {
    pub cpu: String,
    pub definition: String,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCpuPricing {
    pub usd_per_ucu_hour: f64,
    pub usd_per_gib_hour: f64,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCpu {
    pub name: String,
    pub display_name: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub patterns: Vec<String>,
    pub ucu_per_core: f64,
    #[serde(default)]
    pub generic: bool,
    pub source: String,
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccelerator {
    pub name: String,
    pub display_name: Option<String>,
    pub vendor: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub patterns: Vec<String>,
    pub memory_gib: u64,
    pub throughput: RawThroughput,
    pub interconnect: RawInterconnect,
    pub price: RawPrice,
    #[serde(default)]
    pub assumed: bool,
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawThroughput {
    pub dense_tflops: f64,
    pub dtype: TflopsDtype,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInterconnect {
    pub kind: InterconnectKind,
    pub generation: u32,
    pub bandwidth_gb_per_s: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrice {
    pub usd_per_hour: f64,
    pub source: String,
    pub derived_from: Option<RawInstancePrice>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInstancePrice {
    pub instance: String,
    pub region: String,
    pub usd_per_hour: f64,
    pub devices: u32,
    pub vcpus: u32,
    pub memory_gib: u32,
}

/// The validated content of a catalog file.
pub(crate) struct Checked {
    pub reference: UcuReference,
    pub cpu_pricing: CpuPricing,
    pub cpus: Vec<CpuModel>,
    pub accelerators: Vec<AcceleratorModel>,
}

/// Collects every problem found, each prefixed with where it is.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, path: &str, reason: impl AsRef<str>) {
        self.0.push(format!("{path}: {}", reason.as_ref()));
    }

    fn text(&mut self, path: &str, value: &str) {
        if value.trim().is_empty() {
            self.push(path, "must not be empty");
        }
    }

    fn positive(&mut self, path: &str, value: f64) {
        if !(value.is_finite() && value > 0.0) {
            self.push(
                path,
                format!("must be a positive finite number, got {value}"),
            );
        }
    }

    fn slug(&mut self, path: &str, value: &str) {
        let ok = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            self.push(
                path,
                format!("`{value}` must be a non-empty slug of a-z, 0-9 and '-'"),
            );
        }
    }

    fn names(&mut self, path: &str, aliases: &[String], patterns: &[String]) {
        for (i, alias) in aliases.iter().enumerate() {
            if super::names::normalize(alias).is_empty() {
                self.push(&format!("{path}.aliases[{i}]"), "has no letters or digits");
            }
        }
        for (i, pattern) in patterns.iter().enumerate() {
            let normalized = super::names::normalize_pattern(pattern);
            if normalized.chars().all(|c| c == '*' || c == '?') {
                self.push(
                    &format!("{path}.patterns[{i}]"),
                    "must contain letters or digits (a bare wildcard would match everything)",
                );
            }
        }
    }
}

/// Checks `raw` and converts it; on failure returns every problem found.
pub(crate) fn validate(raw: RawCatalog) -> Result<Checked, Vec<String>> {
    let mut p = Problems::default();

    if raw.version != VERSION {
        p.push(
            "version",
            format!("unsupported version {}, expected {VERSION}", raw.version),
        );
    }

    p.text("ucu_reference.cpu", &raw.ucu_reference.cpu);
    p.text("ucu_reference.definition", &raw.ucu_reference.definition);
    p.text("ucu_reference.source", &raw.ucu_reference.source);

    p.positive(
        "cpu_pricing.usd_per_ucu_hour",
        raw.cpu_pricing.usd_per_ucu_hour,
    );
    p.positive(
        "cpu_pricing.usd_per_gib_hour",
        raw.cpu_pricing.usd_per_gib_hour,
    );
    p.text("cpu_pricing.source", &raw.cpu_pricing.source);

    let cpus: Vec<CpuModel> = raw
        .cpus
        .into_iter()
        .enumerate()
        .map(|(i, cpu)| check_cpu(&mut p, i, cpu))
        .collect();
    let accelerators: Vec<AcceleratorModel> = raw
        .accelerators
        .into_iter()
        .enumerate()
        .map(|(i, acc)| check_accelerator(&mut p, i, acc))
        .collect();

    if cpus.is_empty() {
        p.push("cpus", "must list at least the generic fallback");
    }
    let generics: Vec<&str> = cpus
        .iter()
        .filter(|c| c.generic)
        .map(|c| c.name.as_str())
        .collect();
    if generics.len() != 1 {
        p.push(
            "cpus",
            format!(
                "exactly one entry must have `generic: true`, found {} ({})",
                generics.len(),
                generics.join(", ")
            ),
        );
    }
    match cpus.iter().find(|c| c.name == raw.ucu_reference.cpu) {
        Some(cpu) if cpu.ucu_per_core != 1.0 => p.push(
            "ucu_reference.cpu",
            format!(
                "the reference CPU `{}` must have ucu_per_core 1.0, has {}",
                cpu.name, cpu.ucu_per_core
            ),
        ),
        Some(_) => {}
        None => p.push(
            "ucu_reference.cpu",
            format!("`{}` is not a CPU in this catalog", raw.ucu_reference.cpu),
        ),
    }

    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Checked {
        reference: UcuReference {
            cpu: raw.ucu_reference.cpu,
            definition: raw.ucu_reference.definition,
            source: raw.ucu_reference.source,
        },
        cpu_pricing: CpuPricing {
            usd_per_ucu_hour: raw.cpu_pricing.usd_per_ucu_hour,
            usd_per_gib_hour: raw.cpu_pricing.usd_per_gib_hour,
            source: raw.cpu_pricing.source,
        },
        cpus,
        accelerators,
    })
}

fn check_cpu(p: &mut Problems, i: usize, raw: RawCpu) -> CpuModel {
    let path = format!("cpus[{i}] ({})", raw.name);
    p.slug(&format!("{path}.name"), &raw.name);
    p.positive(&format!("{path}.ucu_per_core"), raw.ucu_per_core);
    if raw.ucu_per_core > MAX_UCU_PER_CORE {
        p.push(
            &format!("{path}.ucu_per_core"),
            format!(
                "{} is above the limit of {MAX_UCU_PER_CORE}",
                raw.ucu_per_core
            ),
        );
    }
    p.text(&format!("{path}.source"), &raw.source);
    p.names(&path, &raw.aliases, &raw.patterns);
    if !raw.generic && raw.aliases.is_empty() && raw.patterns.is_empty() {
        p.push(
            &path,
            "a non-generic CPU needs at least one alias or pattern",
        );
    }
    // Rounded to whole milli-UCU; a positive factor never rounds to nothing.
    let milli = if raw.ucu_per_core.is_finite() && raw.ucu_per_core > 0.0 {
        ((raw.ucu_per_core * 1000.0).round() as u64).max(1)
    } else {
        0
    };
    CpuModel {
        display_name: raw.display_name.unwrap_or_else(|| raw.name.clone()),
        name: raw.name,
        aliases: raw.aliases,
        patterns: raw.patterns,
        ucu_per_core: raw.ucu_per_core,
        milli_ucu_per_core: milli,
        generic: raw.generic,
        source: raw.source,
        notes: raw.notes,
    }
}

fn check_accelerator(p: &mut Problems, i: usize, raw: RawAccelerator) -> AcceleratorModel {
    let path = format!("accelerators[{i}] ({})", raw.name);
    p.slug(&format!("{path}.name"), &raw.name);
    p.text(&format!("{path}.vendor"), &raw.vendor);
    p.names(&path, &raw.aliases, &raw.patterns);
    if raw.memory_gib == 0 || raw.memory_gib > MAX_MEMORY_GIB {
        p.push(
            &format!("{path}.memory_gib"),
            format!(
                "must be between 1 and {MAX_MEMORY_GIB}, got {}",
                raw.memory_gib
            ),
        );
    }
    p.positive(
        &format!("{path}.throughput.dense_tflops"),
        raw.throughput.dense_tflops,
    );
    p.text(&format!("{path}.throughput.source"), &raw.throughput.source);
    if raw.interconnect.generation == 0 {
        p.push(
            &format!("{path}.interconnect.generation"),
            "must be at least 1",
        );
    }
    p.positive(
        &format!("{path}.interconnect.bandwidth_gb_per_s"),
        raw.interconnect.bandwidth_gb_per_s,
    );
    p.positive(
        &format!("{path}.price.usd_per_hour"),
        raw.price.usd_per_hour,
    );
    p.text(&format!("{path}.price.source"), &raw.price.source);
    let derived_from = raw.price.derived_from.map(|d| {
        let dpath = format!("{path}.price.derived_from");
        p.text(&format!("{dpath}.instance"), &d.instance);
        p.text(&format!("{dpath}.region"), &d.region);
        p.positive(&format!("{dpath}.usd_per_hour"), d.usd_per_hour);
        if d.devices == 0 {
            p.push(&format!("{dpath}.devices"), "must be at least 1");
        }
        InstancePrice {
            instance: d.instance,
            region: d.region,
            usd_per_hour: d.usd_per_hour,
            devices: d.devices,
            vcpus: d.vcpus,
            memory_gib: d.memory_gib,
        }
    });
    AcceleratorModel {
        display_name: raw.display_name.unwrap_or_else(|| raw.name.clone()),
        name: raw.name,
        vendor: raw.vendor,
        aliases: raw.aliases,
        patterns: raw.patterns,
        memory_bytes: raw.memory_gib.min(MAX_MEMORY_GIB) * GIB,
        throughput: Throughput {
            dense_tflops: raw.throughput.dense_tflops,
            dtype: raw.throughput.dtype,
            source: raw.throughput.source,
        },
        interconnect: Interconnect {
            kind: raw.interconnect.kind,
            generation: raw.interconnect.generation,
            bandwidth_gb_per_s: raw.interconnect.bandwidth_gb_per_s,
        },
        price: Price {
            usd_per_hour: raw.price.usd_per_hour,
            source: raw.price.source,
            derived_from,
        },
        assumed: raw.assumed,
        notes: raw.notes,
    }
}
