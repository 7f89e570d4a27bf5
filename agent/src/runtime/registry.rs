//! The replicas this agent runs now, shared with the log server and the metrics collector.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::cgroup::Cgroup;
use crate::logs::{LogSource, LogSources};

#[derive(Debug, Clone)]
pub struct Entry {
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
pub struct Registry {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    /// Where the last run of finished replicas is kept after their allocation is gone.
    finished: Option<FinishedRuns>,
}

impl Registry {
    /// A registry that also serves logs of finished replicas kept under `finished`.
    pub fn with_finished(finished: FinishedRuns) -> Self {
        Self {
            finished: Some(finished),
            ..Self::default()
        }
    }

    pub fn upsert(&self, id: &str, entry: Entry) {
        if let Ok(mut m) = self.entries.lock() {
            m.insert(id.to_string(), entry);
        }
    }

    pub fn update(&self, id: &str, f: impl FnOnce(&mut Entry)) {
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

    pub fn snapshot(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl LogSources for Registry {
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

/// The output of replicas whose allocation was removed after they ended (a finished training
/// job), so `unictl logs` still shows it. One directory per replica, `NAMESPACE.WORKLOAD.N`,
/// holding its last run; kept for [`FinishedRuns::RETENTION`].
#[derive(Debug, Clone)]
pub struct FinishedRuns {
    root: PathBuf,
}

impl FinishedRuns {
    pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn dir(&self, namespace: &str, workload: &str, replica: u32) -> PathBuf {
        self.root.join(format!("{namespace}.{workload}.{replica}"))
    }

    /// Moves `run_dir` here as the last run of that replica, replacing an older one, and
    /// forgets runs past the retention period.
    pub fn keep(&self, namespace: &str, workload: &str, replica: u32, run_dir: &std::path::Path) {
        if std::fs::create_dir_all(&self.root).is_err() {
            return;
        }
        let dest = self.dir(namespace, workload, replica);
        let _ = std::fs::remove_dir_all(&dest);
        if std::fs::rename(run_dir, &dest).is_err() {
            return;
        }
        self.expire();
    }

    fn expire(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Self::RETENTION);
            if old {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    fn find(&self, namespace: &str, workload: &str, replica: Option<u32>) -> Vec<LogSource> {
        let prefix = format!("{namespace}.{workload}.");
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let r: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
                replica.is_none_or(|want| want == r).then(|| LogSource {
                    replica: r,
                    run_dir: e.path(),
                })
            })
            .collect()
    }
}
