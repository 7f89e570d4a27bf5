//! The output of replicas whose allocation was removed after they ended (a finished training
//! job), so `unictl logs` still shows it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::logs::LogSource;

/// One directory per replica, `NAMESPACE.WORKLOAD.N`, holding its last run; kept for
/// [`FinishedRuns::RETENTION`].
#[derive(Debug, Clone)]
pub struct FinishedRuns {
    root: PathBuf,
}

impl FinishedRuns {
    pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn dir(&self, namespace: &str, workload: &str, replica: u32) -> PathBuf {
        self.root.join(format!("{namespace}.{workload}.{replica}"))
    }

    /// Moves `run_dir` here as the last run of that replica, replacing an older one, and
    /// forgets runs past the retention period.
    pub fn keep(&self, namespace: &str, workload: &str, replica: u32, run_dir: &Path) {
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

    pub(super) fn find(
        &self,
        namespace: &str,
        workload: &str,
        replica: Option<u32>,
    ) -> Vec<LogSource> {
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
