//! What the agent keeps on disk per allocation, under `DATA_DIR/replicas/ALLOCATION_ID/`:
//! `state.json` (run number, restarts, cgroup, the shim's and process's pid and start time,
//! the run spec) and `runs/N/` per run. A restarted agent reads it to re-adopt.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uni_core::model::Allocation;

use super::run_spec::RunSpec;
use crate::cgroup::Cgroup;
use crate::error::Result;
use crate::shim::{read_json, write_json, Launched, ShimProcess};

pub const STATE_FILE: &str = "state.json";
/// Runs kept: the current one and the one before (`previous` logs).
const RUNS_KEPT: u32 = 2;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    pub allocation: Allocation,
    /// Named `policy` on disk, as agents before the rename wrote it.
    #[serde(rename = "policy")]
    pub run_spec: RunSpec,
    /// Number of the current run, from 1; 0 before the first.
    pub run: u32,
    pub restarts: u32,
    pub cgroup: Option<Cgroup>,
    /// OOM kills counted in the cgroup when the current run started.
    pub oom_baseline: u64,
    pub launched: Option<Launched>,
    /// Saved before the shim is asked to start run `run` and cleared once its answer is
    /// recorded: an agent that finds it set crashed in between, and finds out from the run
    /// directory what was started instead of starting it again.
    #[serde(default)]
    pub launching: bool,
    /// The first shim process of that launch, which exits once the run started or could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starter: Option<ShimProcess>,
    /// Why a training replica was stopped by fencing: it never starts again on this
    /// allocation, even after an agent restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced: Option<String>,
    /// The current run is supervised on an agent thread and dies with the agent.
    pub in_process: bool,
}

/// An allocation id usable as a directory name.
pub fn dir_name(id: &str) -> Option<&str> {
    (!id.is_empty() && !id.starts_with('.') && !id.contains('/')).then_some(id)
}

pub struct ReplicaDir {
    pub path: PathBuf,
}

impl ReplicaDir {
    pub fn new(root: &Path, id: &str) -> Option<Self> {
        dir_name(id).map(|name| Self {
            path: root.join(name),
        })
    }

    pub fn run_dir(&self, run: u32) -> PathBuf {
        self.path.join("runs").join(run.to_string())
    }

    pub fn work_dir(&self) -> PathBuf {
        self.path.join("work")
    }

    /// Where a stop notice appears (`UNIVERSAL_PREEMPTION_NOTICE_FILE`).
    pub fn notice_file(&self) -> PathBuf {
        self.path.join("preemption-notice.json")
    }

    pub fn load(&self) -> Result<Option<ReplicaState>> {
        read_json(&self.path.join(STATE_FILE))
    }

    pub fn save(&self, state: &ReplicaState) -> Result<()> {
        std::fs::create_dir_all(&self.path)
            .map_err(crate::error::Error::at("creating", &self.path))?;
        write_json(&self.path.join(STATE_FILE), state)
    }

    /// Removes runs older than the previous one of `current`.
    pub fn prune_runs(&self, current: u32) {
        let Ok(entries) = std::fs::read_dir(self.path.join("runs")) else {
            return;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let old = e
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n + RUNS_KEPT <= current);
            if old {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_old_runs_are_pruned() {
        let root = tempfile::tempdir().unwrap();
        let dir = ReplicaDir::new(root.path(), "ns.w.0.abc").unwrap();
        assert!(dir.load().unwrap().is_none());
        let state = ReplicaState {
            run: 3,
            restarts: 2,
            ..ReplicaState::default()
        };
        dir.save(&state).unwrap();
        assert_eq!(dir.load().unwrap(), Some(state));
        for r in 1..=3 {
            std::fs::create_dir_all(dir.run_dir(r)).unwrap();
        }
        dir.prune_runs(3);
        assert!(!dir.run_dir(1).exists());
        assert!(dir.run_dir(2).exists() && dir.run_dir(3).exists());
        assert!(ReplicaDir::new(root.path(), "..").is_none());
    }
}
