//! Ending a run and a replica: SIGTERM, the grace period, SIGKILL; what is left in the cgroup;
//! and what stays behind when the allocation goes or the agent stops.

use std::time::Duration;

use tokio::time::timeout;
use tracing::{info, warn};
use uni_core::model::UnixMillis;

use super::{Replica, Run};
use crate::process;
use crate::runtime::options::OnShutdown;
use crate::shim::ExitInfo;

/// How long to wait after SIGKILL before giving up on a run.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Replica {
    /// SIGTERM to the process group (and anything else in the cgroup), the grace period,
    /// then SIGKILL.
    pub(super) async fn terminate(&mut self, run: &mut Run) -> ExitInfo {
        let grace = self.state.run_spec.grace();
        self.terminate_within(run, grace).await
    }

    /// [`Replica::terminate`] with `grace` instead of the replica's own grace period.
    pub(super) async fn terminate_within(&mut self, run: &mut Run, grace: Duration) -> ExitInfo {
        self.signal_run(run, libc::SIGTERM);
        let exit = match timeout(grace, run.exit.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                info!(id = %self.alloc.id, grace_s = grace.as_secs(), "grace period over: SIGKILL");
                self.signal_run(run, libc::SIGKILL);
                match timeout(KILL_WAIT, run.exit.wait()).await {
                    Ok(exit) => exit,
                    Err(_) => {
                        warn!(id = %self.alloc.id, "process did not end after SIGKILL; killing its shim");
                        process::signal_pid(run.launched.shim_pid, libc::SIGKILL);
                        ExitInfo {
                            signal: Some(libc::SIGKILL),
                            finished: UnixMillis::now(),
                            ..ExitInfo::default()
                        }
                    }
                }
            }
        };
        self.sweep();
        self.host
            .replicas
            .update(&self.alloc.id, |e| e.running = false);
        exit
    }

    /// `signal` to the run's process group, if it is still the one started, and to
    /// everything in the cgroup.
    fn signal_run(&self, run: &Run, signal: i32) {
        let l = run.launched;
        if l.pid > 0 && process::alive(l.pid, l.start) {
            process::signal_group(l.pgid, signal);
        }
        if let Some(cg) = &self.state.cgroup {
            cg.signal_all(signal);
        }
    }

    /// Kills whatever is left in the cgroup (descendants that left the process group).
    pub(super) fn sweep(&self) {
        if let Some(cg) = &self.state.cgroup {
            cg.signal_all(libc::SIGKILL);
        }
    }

    /// A finished training worker waits here until its allocation is removed.
    pub(super) async fn wait_for_end(self) {
        self.host
            .replicas
            .update(&self.alloc.id, |e| e.running = false);
        self.save();
        tokio::select! {
            _ = self.sig.remove.cancelled() => self.cleanup().await,
            _ = self.sig.halt.cancelled() => self.halt_idle().await,
        }
    }

    /// The agent stops while no process runs (finished worker, restart backoff).
    pub(super) async fn halt_idle(mut self) {
        if self.host.opts.on_shutdown == OnShutdown::Stop {
            self.forget().await;
        }
    }

    pub(super) async fn halt(mut self, run: &mut Run) {
        match self.host.opts.on_shutdown {
            OnShutdown::Leave => {
                info!(id = %self.alloc.id, pid = run.launched.pid, "agent stopping: leaving the process running");
            }
            OnShutdown::Stop => {
                self.terminate(run).await;
                self.forget().await;
            }
        }
    }

    /// No cgroup, no table entry, no files.
    async fn forget(&mut self) {
        self.remove_cgroup().await;
        self.host.replicas.remove(&self.alloc.id);
        self.dir.remove();
    }

    /// The allocation is gone: no cgroup, no status, no files left, except the output of a
    /// replica that had ended, kept so that its logs stay readable.
    pub(super) async fn cleanup(mut self) {
        self.remove_cgroup().await;
        self.host.reporter.delete(&self.key, &self.alloc.id);
        // Keep the output before forgetting the replica, so a log reader always finds it in
        // one place or the other.
        if self.state.run > 0 {
            self.host.finished.keep(
                &self.alloc.namespace,
                &self.alloc.workload,
                self.alloc.replica,
                &self.dir.run_dir(self.state.run),
            );
        }
        self.host.replicas.remove(&self.alloc.id);
        self.dir.remove();
        info!(id = %self.alloc.id, "allocation removed: stopped and cleaned up");
    }

    async fn remove_cgroup(&mut self) {
        let Some(cg) = self.state.cgroup.take() else {
            return;
        };
        // The kernel empties a cgroup shortly after its last process dies.
        for _ in 0..50 {
            cg.signal_all(libc::SIGKILL);
            if cg.remove().is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Err(e) = cg.remove() {
            warn!(id = %self.alloc.id, error = %e, "cgroup left behind");
        }
    }
}
