//! One allocation's life on this node: take the run spec from the workload, start the process
//! (or re-adopt the one a previous agent started), probe it, report its status, restart an
//! inference replica with exponential backoff, report a training worker's end and leave the
//! decision to the scheduler, stop it when the node's lease has been lost too long (fencing),
//! and stop it gracefully when the allocation goes away.

mod adopt;
mod exit;
mod launch;
mod notice;
mod orphan;
mod recover;
mod spec;
mod stop;
mod watch;

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uni_core::model::{Allocation, ReplicaPhase, ReplicaStatus, StopNotice, UnixMillis};
use uni_core::store::keys::StatusKey;
use uni_core::Backoff;

use super::fence;
use super::host::ReplicaHost;
use super::launcher::ExitWait;
use super::replica_table::ReplicaEntry;
use super::run_spec::Kind;
use super::state::{ReplicaDir, ReplicaState};
use crate::shim::{ExitInfo, Launched};

pub use orphan::remove_orphan;

/// What ends a supervisor: the allocation was deleted (`remove`), or the agent is stopping
/// (`halt`).
#[derive(Clone)]
pub struct Signals {
    pub remove: CancellationToken,
    pub halt: CancellationToken,
    /// The allocation's stop notice, once it has one.
    pub notice: tokio::sync::watch::Receiver<Option<StopNotice>>,
}

struct Run {
    exit: ExitWait,
    launched: Launched,
    started: Instant,
}

impl Run {
    /// A run that could not start: it ended at once, with the reason.
    fn failed(message: String) -> Self {
        Run {
            exit: ExitWait::Done(ExitInfo {
                error: Some(message),
                finished: UnixMillis::now(),
                ..ExitInfo::default()
            }),
            launched: Launched::default(),
            started: Instant::now(),
        }
    }
}

enum Outcome {
    Remove,
    Halt,
    Exited(ExitInfo),
    /// The liveness probe failed; the process was stopped.
    Unhealthy(String, ExitInfo),
    /// The node's lease has been lost this long: the replica must stop.
    Fenced(std::time::Duration),
    /// Told to stop (preemption or resize).
    Notice(StopNotice),
}

struct Replica {
    host: Arc<ReplicaHost>,
    alloc: Allocation,
    dir: ReplicaDir,
    key: StatusKey,
    sig: Signals,
    state: ReplicaState,
    /// Consecutive short-lived runs, for the restart delay.
    crashes: Backoff,
    /// Said with the running status of the current run (e.g. that it has no limits).
    note: String,
}

impl Replica {
    fn new(
        host: Arc<ReplicaHost>,
        alloc: Allocation,
        dir: ReplicaDir,
        key: StatusKey,
        sig: Signals,
        state: ReplicaState,
    ) -> Self {
        let crashes = Backoff::new(host.opts.backoff_base, host.opts.backoff_max);
        Self {
            host,
            alloc,
            dir,
            key,
            sig,
            state,
            crashes,
            note: String::new(),
        }
    }
}

/// Where the replica's status goes; fails when the allocation names no valid replica.
fn status_key(alloc: &Allocation) -> uni_core::Result<StatusKey> {
    StatusKey::new(
        alloc.namespace.as_str(),
        alloc.workload.as_str(),
        alloc.replica,
    )
}

/// Runs one allocation until it is removed or the agent halts.
pub async fn supervise(host: Arc<ReplicaHost>, alloc: Allocation, sig: Signals) {
    let Some(dir) = ReplicaDir::new(&host.root, &alloc.id) else {
        warn!(id = %alloc.id, "allocation id cannot name a directory; ignored");
        return;
    };
    let key = match status_key(&alloc) {
        Ok(k) => k,
        Err(e) => {
            warn!(id = %alloc.id, error = %e, "allocation names no valid replica; ignored");
            return;
        }
    };
    let persisted = dir
        .load()
        .unwrap_or_else(|e| {
            warn!(id = %alloc.id, error = %e, "unreadable replica state; starting afresh");
            None
        })
        .filter(|s| s.allocation.id == alloc.id);
    let mut r = Replica::new(host, alloc, dir, key, sig, ReplicaState::default());
    r.state = match persisted {
        Some(s) => s,
        None => {
            let run_spec = tokio::select! {
                s = r.fetch_spec() => s,
                _ = r.sig.remove.cancelled() => return r.cleanup().await,
                _ = r.sig.halt.cancelled() => return,
            };
            ReplicaState {
                allocation: r.alloc.clone(),
                run_spec,
                ..ReplicaState::default()
            }
        }
    };
    r.host.replicas.upsert(
        &r.alloc.id,
        ReplicaEntry {
            namespace: r.alloc.namespace.clone(),
            workload: r.alloc.workload.clone(),
            replica: r.alloc.replica,
            dir: r.dir.path.clone(),
            run: r.state.run,
            running: false,
            cgroup: r.state.cgroup.clone(),
        },
    );
    r.run().await;
}

impl Replica {
    async fn run(mut self) {
        self.recover_launch().await;
        if let Some(why) = self.state.fenced.clone() {
            // Fenced before an agent restart: its end is told again, nothing runs.
            self.report(ReplicaPhase::Failed, None, None, &why);
            return self.wait_for_end().await;
        }
        let told = self.sig.notice.borrow().clone();
        if let Some(n) = told {
            // Told to stop before (or while) this agent started: whatever runs stops, nothing
            // starts.
            if let Some(Ok(mut run)) = self.adopt() {
                return self.stop_for(&mut run, n).await;
            }
            self.stopped_by(&n);
            return self.wait_for_end().await;
        }
        let mut current = self.adopt();
        let mut note = String::new();
        loop {
            let mut run = match current.take() {
                Some(Ok(run)) => run,
                Some(Err(lost)) if self.state.run_spec.kind == Kind::Training => {
                    self.report(ReplicaPhase::Failed, None, None, &lost);
                    return self.wait_for_end().await;
                }
                Some(Err(lost)) => {
                    self.state.restarts += 1;
                    self.count_restart();
                    note = format!("{lost}; started again");
                    self.launch(&note).await
                }
                None => self.launch(&note).await,
            };
            let (exit, unhealthy) = match self.watch(&mut run).await {
                Outcome::Remove => {
                    self.terminate(&mut run).await;
                    return self.cleanup().await;
                }
                Outcome::Halt => return self.halt(&mut run).await,
                Outcome::Notice(n) => return self.stop_for(&mut run, n).await,
                Outcome::Fenced(lost) => {
                    warn!(id = %self.alloc.id, lost_s = lost.as_secs(), "lease lost too long: stopping the replica");
                    let grace = self.state.run_spec.grace().min(self.host.opts.fence_grace);
                    self.terminate_within(&mut run, grace).await;
                    self.state.launched = None;
                    let message = format!(
                        "stopped by its agent: the node's lease was lost {}s ago (the store is \
                         unreachable from this node), so the replica may be placed elsewhere",
                        lost.as_secs()
                    );
                    if self.state.run_spec.kind == Kind::Training {
                        // Never again on this allocation; the scheduler restarts the gang from
                        // this report, or has already.
                        self.state.fenced = Some(message.clone());
                        self.save();
                        self.report(ReplicaPhase::Failed, None, None, &message);
                        return self.wait_for_end().await;
                    }
                    self.save();
                    self.report(ReplicaPhase::Failed, None, None, &message);
                    tokio::select! {
                        _ = fence::held(self.host.lease.clone()) => {}
                        _ = self.sig.remove.cancelled() => return self.cleanup().await,
                        _ = self.sig.halt.cancelled() => return self.halt_idle().await,
                    }
                    self.state.restarts += 1;
                    self.count_restart();
                    note = "started again: the node's lease is held again".into();
                    continue;
                }
                Outcome::Exited(exit) => (exit, None),
                Outcome::Unhealthy(why, exit) => (exit, Some(why)),
            };
            self.host
                .replicas
                .update(&self.alloc.id, |e| e.running = false);
            let mut ended = self.classify(&exit);
            if let Some(why) = unhealthy {
                ended.message = format!("liveness probe failed ({why}); {}", ended.message);
            }
            self.sweep();
            if self.state.run_spec.kind == Kind::Training {
                // The scheduler completes or restarts the gang from this report.
                self.report(ended.phase, ended.code, ended.signal, &ended.message);
                return self.wait_for_end().await;
            }
            self.state.launched = None;
            self.state.restarts += 1;
            self.count_restart();
            self.save();
            if run.started.elapsed() >= self.host.opts.backoff_reset_after {
                self.crashes.reset();
            }
            let delay = self.crashes.fail();
            self.report(
                ended.phase,
                ended.code,
                ended.signal,
                &format!(
                    "{}; restarting in {:.1}s",
                    ended.message,
                    delay.as_secs_f64()
                ),
            );
            let mut notice = self.sig.notice.clone();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.sig.remove.cancelled() => return self.cleanup().await,
                _ = self.sig.halt.cancelled() => return self.halt_idle().await,
                n = notice::next(&mut notice) => {
                    self.stopped_by(&n);
                    return self.wait_for_end().await;
                }
            }
            note = format!("restart {} after: {}", self.state.restarts, ended.message);
        }
    }

    fn report(
        &self,
        phase: ReplicaPhase,
        exit_code: Option<i32>,
        signal: Option<i32>,
        message: &str,
    ) {
        self.host.reporter.set(
            &self.key,
            ReplicaStatus {
                allocation_id: self.alloc.id.clone(),
                node: self.host.node.clone(),
                phase,
                exit_code,
                signal,
                restarts: self.state.restarts,
                message: message.to_string(),
                updated: UnixMillis::now(),
            },
        );
    }

    fn count_restart(&self) {
        let replica = self.alloc.replica.to_string();
        self.host
            .metrics
            .restarts
            .with_label_values(&[&self.alloc.namespace, &self.alloc.workload, &replica])
            .inc();
    }

    fn save(&self) {
        if let Err(e) = self.dir.save(&self.state) {
            warn!(id = %self.alloc.id, error = %e, "cannot persist replica state");
        }
    }
}
