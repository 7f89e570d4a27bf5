//! Resource limits with cgroups: v2 where the unified hierarchy has the cpu and memory
//! controllers, v1 where only v1 has them, none where neither can be used (not root and no
//! delegated cgroup). Without cgroups replicas still run, without limits, and the agent says so.
//!
//! Each replica gets `<hierarchy>/<parent>/<allocation id>`: `cpu.max` (v2) or
//! `cpu.cfs_quota_us` (v1) from its compute units, `memory.max` / `memory.limit_in_bytes` from
//! its memory. An OOM kill shows in `memory.events` (v2) or `memory.oom_control` (v1) as
//! `oom_kill N`.

mod detect;
mod files;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::error::{Error, Result};

pub use detect::{parse_mountinfo, Hierarchies};

/// CFS period used for CPU quotas, microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;
/// Smallest quota the kernel accepts, microseconds.
const MIN_QUOTA_US: u64 = 1_000;

#[derive(Debug, Clone)]
pub struct CgroupConfig {
    pub enabled: bool,
    /// Directory under each hierarchy's root that holds the replicas' cgroups: `universal`, or
    /// a delegated path such as `system.slice/uni-agent.service/replicas`.
    pub parent: String,
    /// `/proc/self/mountinfo`, or a test's copy.
    pub mountinfo: PathBuf,
}

impl Default for CgroupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            parent: "universal".to_string(),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
        }
    }
}

/// What a replica may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Milli-UCU; 0 = unlimited.
    pub compute_milli: u64,
    /// Bytes; 0 = unlimited.
    pub memory_bytes: u64,
}

/// The CFS quota, in microseconds per [`CPU_PERIOD_US`], of `compute_milli` milli-UCU on a
/// CPU worth `ucu_per_core` UCU per logical CPU; `None` for no limit.
pub fn cpu_quota_us(compute_milli: u64, ucu_per_core: f64) -> Option<u64> {
    if compute_milli == 0 {
        return None;
    }
    let factor = if ucu_per_core > 0.0 {
        ucu_per_core
    } else {
        1.0
    };
    let milli_cpus = compute_milli as f64 / factor;
    let quota = (milli_cpus * CPU_PERIOD_US as f64 / 1000.0).round() as u64;
    Some(quota.max(MIN_QUOTA_US))
}

/// Where one replica's cgroup lives; persisted so a restarted agent finds it again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    pub v2: bool,
    pub memory: Option<PathBuf>,
    pub cpu: Option<PathBuf>,
    /// v1 only, where `cpuacct` is mounted apart from `cpu`.
    pub cpuacct: Option<PathBuf>,
}

/// Creates and finds replicas' cgroups.
#[derive(Debug, Clone)]
pub struct CgroupManager {
    state: State,
    ucu_per_core: f64,
}

#[derive(Debug, Clone)]
enum State {
    Ready(Hierarchies),
    Unavailable(String),
}

impl CgroupManager {
    /// Finds the hierarchies and creates the parent directory; logs once, clearly, when
    /// replicas will run without limits.
    pub fn detect(config: &CgroupConfig, ucu_per_core: f64) -> Self {
        let state = if !config.enabled {
            State::Unavailable("disabled by configuration".into())
        } else {
            match Self::prepare(config) {
                Ok(h) => {
                    info!(hierarchy = %h.describe(), "cgroups: replicas get cpu and memory limits");
                    State::Ready(h)
                }
                Err(reason) => {
                    warn!(
                        "cgroups unavailable ({reason}): replicas run WITHOUT cpu/memory limits \
                         and OOM kills cannot be detected; run the agent as root or delegate a \
                         cgroup to it (--cgroup-parent)"
                    );
                    State::Unavailable(reason)
                }
            }
        };
        Self {
            state,
            ucu_per_core,
        }
    }

    fn prepare(config: &CgroupConfig) -> std::result::Result<Hierarchies, String> {
        let text = std::fs::read_to_string(&config.mountinfo)
            .map_err(|e| format!("reading {}: {e}", config.mountinfo.display()))?;
        let h = parse_mountinfo(&text, &config.parent)?;
        h.create_parent()?;
        Ok(h)
    }

    /// A manager that never creates cgroups (simulation, tests).
    pub fn disabled(reason: &str) -> Self {
        Self {
            state: State::Unavailable(reason.to_string()),
            ucu_per_core: 1.0,
        }
    }

    /// `Err(reason)` when replicas run without limits.
    pub fn availability(&self) -> std::result::Result<&'static str, &str> {
        match &self.state {
            State::Ready(h) if h.v2.is_some() => Ok("v2"),
            State::Ready(_) => Ok("v1"),
            State::Unavailable(reason) => Err(reason),
        }
    }

    /// Creates (or reuses) the cgroup of allocation `id` and sets its limits. `Ok(None)` when
    /// cgroups are unavailable.
    pub fn create(&self, id: &str, limits: Limits) -> Result<Option<Cgroup>> {
        let State::Ready(h) = &self.state else {
            return Ok(None);
        };
        let cg = h.cgroup_for(id);
        for dir in cg.dirs() {
            std::fs::create_dir_all(&dir).map_err(Error::at("creating cgroup", &dir))?;
        }
        files::apply_limits(
            &cg,
            limits,
            cpu_quota_us(limits.compute_milli, self.ucu_per_core),
        )?;
        Ok(Some(cg))
    }
}

impl Cgroup {
    /// Every directory of this cgroup, one per hierarchy.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = [&self.memory, &self.cpu, &self.cpuacct]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The `cgroup.procs` files a process must be written to, to join this cgroup.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Processes in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.memory.as_ref().or(self.cpu.as_ref()) else {
            return Vec::new();
        };
        files::read_pids(&dir.join("cgroup.procs"))
    }

    /// OOM kills in this cgroup so far.
    pub fn oom_kills(&self) -> u64 {
        let Some(dir) = &self.memory else { return 0 };
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        files::read_keyed(&dir.join(file), "oom_kill").unwrap_or(0)
    }

    /// Memory in use now, bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        let dir = self.memory.as_ref()?;
        let file = if self.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        files::read_u64(&dir.join(file))
    }

    /// CPU time used so far, seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        if self.v2 {
            let dir = self.cpu.as_ref()?;
            files::read_keyed(&dir.join("cpu.stat"), "usage_usec").map(|us| us as f64 / 1e6)
        } else {
            let dir = self.cpuacct.as_ref().or(self.cpu.as_ref())?;
            files::read_u64(&dir.join("cpuacct.usage")).map(|ns| ns as f64 / 1e9)
        }
    }

    /// Sends `signal` to every process in the cgroup (v2 `cgroup.kill` for SIGKILL).
    pub fn signal_all(&self, signal: i32) {
        if self.v2 && signal == libc::SIGKILL {
            if let Some(dir) = &self.memory {
                if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
                    return;
                }
            }
        }
        for pid in self.pids() {
            crate::process::signal_pid(pid, signal);
        }
    }

    /// Removes the cgroup's directories (they must be empty of processes).
    pub fn remove(&self) -> Result<()> {
        for dir in self.dirs() {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::at("removing cgroup", &dir)(e)),
            }
        }
        Ok(())
    }

    /// Whether the cgroup's directories exist.
    pub fn exists(&self) -> bool {
        self.dirs().iter().any(|d| Path::new(d).is_dir())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_follows_compute_units_and_the_cpu_factor() {
        assert_eq!(cpu_quota_us(0, 1.0), None);
        assert_eq!(cpu_quota_us(1000, 1.0), Some(100_000));
        assert_eq!(cpu_quota_us(500, 1.0), Some(50_000));
        // A core worth 2 UCU: 1 UCU is half a core.
        assert_eq!(cpu_quota_us(1000, 2.0), Some(50_000));
        assert_eq!(cpu_quota_us(1, 1.0), Some(MIN_QUOTA_US));
    }
}
