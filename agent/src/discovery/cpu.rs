//! CPU model, sockets, cores and threads from `/proc/cpuinfo`.

use std::collections::BTreeSet;
use std::path::Path;

use uni_core::model::CpuInfo;

use crate::error::{Error, Result};

pub(super) fn discover(root: &Path) -> Result<CpuInfo> {
    let text = super::read(root, "/proc/cpuinfo").map_err(Error::io("reading /proc/cpuinfo"))?;
    let info = parse_cpuinfo(&text);
    if info.threads == 0 {
        return Err(Error::Discovery("/proc/cpuinfo lists no processor".into()));
    }
    Ok(info)
}

/// Parses `/proc/cpuinfo`. Threads are `processor` entries; cores are distinct
/// (`physical id`, `core id`) pairs where the kernel reports them, else threads; sockets are
/// distinct `physical id`s, at least 1. `ucu_per_core` is left for the catalog to fill in.
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut model = String::new();
    let mut vendor = String::new();
    let mut threads = 0u32;
    let mut sockets = BTreeSet::new();
    let mut cores = BTreeSet::new();
    let mut physical: Option<String> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => {
                threads += 1;
                physical = None;
            }
            "model name" | "Model Name" if model.is_empty() => model = value.to_string(),
            // ARM kernels name the part rather than the model.
            "CPU part" if model.is_empty() => model = format!("CPU part {value}"),
            "vendor_id" | "CPU implementer" if vendor.is_empty() => vendor = value.to_string(),
            "physical id" => {
                sockets.insert(value.to_string());
                physical = Some(value.to_string());
            }
            "core id" => {
                cores.insert((physical.clone().unwrap_or_default(), value.to_string()));
            }
            _ => {}
        }
    }
    let threads_count = threads;
    CpuInfo {
        model,
        vendor,
        sockets: u32::try_from(sockets.len()).unwrap_or(u32::MAX).max(1),
        cores: if cores.is_empty() {
            threads_count
        } else {
            u32::try_from(cores.len()).unwrap_or(u32::MAX)
        },
        threads: threads_count,
        ucu_per_core: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sockets_cores_and_threads() {
        let mut text = String::new();
        for p in 0..8 {
            let socket = p / 4;
            let core = (p % 4) / 2;
            text.push_str(&format!(
                "processor\t: {p}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\nphysical id\t: {socket}\ncore id\t\t: {core}\n\n"
            ));
        }
        let info = parse_cpuinfo(&text);
        assert_eq!(info.model, "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz");
        assert_eq!(info.vendor, "GenuineIntel");
        assert_eq!((info.sockets, info.cores, info.threads), (2, 4, 8));
    }

    #[test]
    fn without_topology_cores_are_threads() {
        let info = parse_cpuinfo("processor : 0\nCPU part : 0xd0c\n\nprocessor : 1\n");
        assert_eq!((info.sockets, info.cores, info.threads), (1, 2, 2));
        assert_eq!(info.model, "CPU part 0xd0c");
    }
}
