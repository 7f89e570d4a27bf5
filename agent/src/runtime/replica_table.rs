//! The replicas this agent runs now, shared with the log server and the metrics collector.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::finished_runs::FinishedRuns;
use crate::cgroup::Cgroup;
use crate::logs::{LogSource, LogSources};

#[derive(Debug, Clone)]
pub struct ReplicaEntry {
    pub namespace: String,
    pub workload: String,
    pub replica: u32,
    /// The replica's directory (`runs/N` below it).
    pub dir: PathBuf,
    pub run: u32,
    /// A process is running now.
    pub running: bool,
    pub cgroup: Option<Cgroup>,
}

#[derive(Clone, Default)]
pub struct ReplicaTable {
    entries: Arc<Mutex<HashMap<String, ReplicaEntry>>>,
    /// Where the last run of finished replicas is kept after their allocation is gone.
    finished: Option<FinishedRuns>,
}

impl ReplicaTable {
    /// A table that also serves logs of finished replicas kept under `finished`.
    pub fn with_finished(finished: FinishedRuns) -> Self {
        Self {
            finished: Some(finished),
            ..Self::default()
        }
    }

    pub fn upsert(&self, id: &str, entry: ReplicaEntry) {
        if let Ok(mut m) = self.entries.lock() {
            m.insert(id.to_string(), entry);
        }
    }

    pub fn update(&self, id: &str, f: impl FnOnce(&mut ReplicaEntry)) {
        if let Ok(mut m) = self.entries.lock() {
            if let Some(e) = m.get_mut(id) {
                f(e);
            }
        }
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut m) = self.entries.lock() {
            m.remove(id);
        }
    }

    pub fn snapshot(&self) -> Vec<ReplicaEntry> {
        self.entries
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl LogSources for ReplicaTable {
    fn find(
        &self,
        namespace: &str,
        workload: &str,
        replica: Option<u32>,
        previous: bool,
    ) -> Vec<LogSource> {
        let mut found: Vec<LogSource> = self
            .snapshot()
            .into_iter()
            .filter(|e| e.namespace == namespace && e.workload == workload)
            .filter(|e| replica.is_none_or(|r| r == e.replica))
            .filter_map(|e| {
                let run = if previous {
                    e.run.checked_sub(1)?
                } else {
                    e.run
                };
                let run_dir = e.dir.join("runs").join(run.to_string());
                (run > 0 && run_dir.is_dir()).then_some(LogSource {
                    replica: e.replica,
                    run_dir,
                })
            })
            .collect();
        // Replicas whose allocation is gone (or going) after they ended: their kept output.
        if !previous {
            if let Some(f) = &self.finished {
                let live: std::collections::HashSet<u32> =
                    found.iter().map(|s| s.replica).collect();
                found.extend(
                    f.find(namespace, workload, replica)
                        .into_iter()
                        .filter(|s| !live.contains(&s.replica)),
                );
            }
        }
        found.sort_by_key(|s| s.replica);
        found
    }
}
