//! NUMA nodes from `/sys/devices/system/node`.

use std::path::Path;

use uni_core::model::NumaNode;

use super::memory::parse_meminfo_total;

/// Every NUMA node with its CPUs and memory; empty where the kernel exposes none.
pub(super) fn discover(root: &Path) -> Vec<NumaNode> {
    let dir = super::under(root, "/sys/devices/system/node");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut nodes: Vec<NumaNode> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id: u32 = name.strip_prefix("node")?.parse().ok()?;
            let path = e.path();
            let cpus = std::fs::read_to_string(path.join("cpulist"))
                .map(|s| parse_cpulist(&s))
                .unwrap_or_default();
            let memory_bytes = std::fs::read_to_string(path.join("meminfo"))
                .ok()
                .and_then(|s| parse_meminfo_total(&s))
                .unwrap_or(0);
            Some(NumaNode {
                id,
                cpus,
                memory_bytes,
            })
        })
        .collect();
    nodes.sort_by_key(|n| n.id);
    nodes
}

/// Parses a kernel CPU list such as `0-3,8,10-11`; malformed parts are skipped.
pub fn parse_cpulist(text: &str) -> Vec<u32> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                    cpus.extend(a..=b);
                }
            }
            None => {
                if let Ok(c) = part.trim().parse() {
                    cpus.push(c);
                }
            }
        }
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_singles() {
        assert_eq!(parse_cpulist("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpulist(""), Vec::<u32>::new());
    }

    #[test]
    fn reads_a_fake_sysfs_tree() {
        let dir = tempfile::tempdir().unwrap();
        for (id, cpus, kb) in [(0, "0-1", 1024), (1, "2-3", 2048)] {
            let n = dir.path().join(format!("sys/devices/system/node/node{id}"));
            std::fs::create_dir_all(&n).unwrap();
            std::fs::write(n.join("cpulist"), cpus).unwrap();
            std::fs::write(n.join("meminfo"), format!("Node {id} MemTotal:  {kb} kB\n")).unwrap();
        }
        let nodes = discover(dir.path());
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].cpus, vec![2, 3]);
        assert_eq!(nodes[1].memory_bytes, 2048 * 1024);
    }
}
