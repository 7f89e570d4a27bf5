//! Reading and writing cgroup control files.

use std::path::Path;

use super::{Cgroup, Limits, CPU_PERIOD_US};
use crate::error::{Error, Result};

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(Error::at(&format!("writing {value:?} to"), path))
}

/// Writes the limits; an unlimited resource is written as such, so a reused cgroup is reset.
pub(super) fn apply_limits(cg: &Cgroup, limits: Limits, quota_us: Option<u64>) -> Result<()> {
    if cg.v2 {
        if let Some(dir) = &cg.memory {
            let max = match limits.memory_bytes {
                0 => "max".to_string(),
                b => b.to_string(),
            };
            write(&dir.join("memory.max"), &max)?;
            // No swap: exceeding the limit is an OOM kill, not a slow swap storm.
            let swap = dir.join("memory.swap.max");
            if swap.exists() {
                write(&swap, "0")?;
            }
        }
        if let Some(dir) = &cg.cpu {
            let quota = quota_us.map_or_else(|| "max".to_string(), |q| q.to_string());
            write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
        }
        return Ok(());
    }
    if let Some(dir) = &cg.memory {
        let limit = match limits.memory_bytes {
            0 => "-1".to_string(),
            b => b.to_string(),
        };
        // memsw must stay >= the memory limit: raise memory first when unlimiting.
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        if limits.memory_bytes == 0 && memsw.exists() {
            let _ = std::fs::write(&memsw, "-1");
        }
        write(&dir.join("memory.limit_in_bytes"), &limit)?;
        if memsw.exists() {
            // Without swap accounting this file is absent; otherwise keep swap out of it.
            let _ = std::fs::write(&memsw, &limit);
        }
    }
    if let Some(dir) = &cg.cpu {
        write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
        let quota = quota_us.map_or_else(|| "-1".to_string(), |q| q.to_string());
        write(&dir.join("cpu.cfs_quota_us"), &quota)?;
    }
    Ok(())
}

pub(super) fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

pub(super) fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (`oom_kill 3`).
pub(super) fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_limits_and_counters_in_a_fake_tree() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let cg = Cgroup {
            v2: true,
            memory: Some(d.clone()),
            cpu: Some(d.clone()),
            cpuacct: None,
        };
        apply_limits(
            &cg,
            Limits {
                compute_milli: 500,
                memory_bytes: 1 << 20,
            },
            Some(50_000),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("memory.max")).unwrap(),
            "1048576"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("cpu.max")).unwrap(),
            "50000 100000"
        );
        std::fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(d.join("cpu.stat"), "usage_usec 2500000\nuser_usec 1\n").unwrap();
        std::fs::write(d.join("memory.current"), "4096\n").unwrap();
        assert_eq!(cg.oom_kills(), 1);
        assert_eq!(cg.cpu_seconds(), Some(2.5));
        assert_eq!(cg.memory_bytes(), Some(4096));
        apply_limits(&cg, Limits::default(), None).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("cpu.max")).unwrap(),
            "max 100000"
        );
    }

    #[test]
    fn v1_counters() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let cg = Cgroup {
            v2: false,
            memory: Some(d.clone()),
            cpu: Some(d.clone()),
            cpuacct: None,
        };
        std::fs::write(
            d.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        std::fs::write(d.join("cpuacct.usage"), "1500000000\n").unwrap();
        assert_eq!(cg.oom_kills(), 2);
        assert_eq!(cg.cpu_seconds(), Some(1.5));
    }
}
