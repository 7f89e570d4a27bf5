//! One allocation's life on this node: take the policy from the workload, start the process
//! (or re-adopt the one a previous agent started), probe it, report its status, restart an
//! inference replica with exponential backoff, report a training worker's end and leave the
//! decision to the scheduler, and stop it gracefully when the allocation goes away.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uni_core::model::{Allocation, ReplicaPhase, ReplicaStatus, UnixMillis, Workload};
use uni_core::store::codec;
use uni_core::store::keys::{StatusKey, TypedKey, WorkloadKey};

use super::launcher::ExitWait;
use super::policy::{Kind, Policy};
use super::registry::Entry;
use super::state::{ReplicaDir, ReplicaState};
use super::{env, process, Ctx, OnShutdown};
use crate::cgroup::Limits;
use crate::probe::{Prober, Transition};
use crate::shim::{read_json, ExitInfo, LaunchSpec, Launched, EXIT_FILE};

/// How long to wait after SIGKILL before giving up on a run.
const KILL_WAIT: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(2);

/// What ends a supervisor: the allocation was deleted (`remove`), or the agent is stopping
/// (`halt`).
#[derive(Clone)]
pub struct Signals {
    pub remove: CancellationToken,
    pub halt: CancellationToken,
}

struct Run {
    exit: ExitWait,
    launched: Launched,
    started: Instant,
}

enum Outcome {
    Remove,
    Halt,
    Exited(ExitInfo),
    /// The liveness probe failed; the process was stopped.
    Unhealthy(String, ExitInfo),
}

struct Replica {
    ctx: Arc<Ctx>,
    alloc: Allocation,
    dir: ReplicaDir,
    key: StatusKey,
    sig: Signals,
    state: ReplicaState,
    /// Consecutive short-lived runs, for the backoff.
    crashes: u32,
    /// Said with the running status of the current run (e.g. that it has no limits).
    note: String,
}

/// Runs one allocation until it is removed or the agent halts.
pub async fn supervise(ctx: Arc<Ctx>, alloc: Allocation, sig: Signals) {
    let Some(dir) = ReplicaDir::new(&ctx.root, &alloc.id) else {
        warn!(id = %alloc.id, "allocation id cannot name a directory; ignored");
        return;
    };
    let key = match StatusKey::new(
        alloc.namespace.as_str(),
        alloc.workload.as_str(),
        alloc.replica,
    ) {
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
    let mut r = Replica {
        ctx,
        alloc,
        dir,
        key,
        sig,
        state: ReplicaState::default(),
        crashes: 0,
        note: String::new(),
    };
    r.state = match persisted {
        Some(s) => s,
        None => {
            let policy = tokio::select! {
                p = r.fetch_policy() => p,
                _ = r.sig.remove.cancelled() => return r.cleanup().await,
                _ = r.sig.halt.cancelled() => return,
            };
            ReplicaState {
                allocation: r.alloc.clone(),
                policy,
                ..ReplicaState::default()
            }
        }
    };
    r.ctx.registry.upsert(
        &r.alloc.id,
        Entry {
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
        let mut current = self.adopt();
        let mut note = String::new();
        loop {
            let mut run = match current.take() {
                Some(Ok(run)) => run,
                Some(Err(lost)) if self.state.policy.kind == Kind::Training => {
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
            let outcome = self.watch(&mut run).await;
            let (exit, unhealthy) = match outcome {
                Outcome::Remove => {
                    self.terminate(&mut run).await;
                    return self.cleanup().await;
                }
                Outcome::Halt => return self.halt(&mut run).await,
                Outcome::Exited(exit) => (exit, None),
                Outcome::Unhealthy(why, exit) => (exit, Some(why)),
            };
            self.ctx
                .registry
                .update(&self.alloc.id, |e| e.running = false);
            let (phase, code, signal, mut message) = self.classify(&exit);
            if let Some(why) = unhealthy {
                message = format!("liveness probe failed ({why}); {message}");
            }
            self.sweep();
            if self.state.policy.kind == Kind::Training {
                // The scheduler completes or restarts the gang from this report.
                self.report(phase, code, signal, &message);
                return self.wait_for_end().await;
            }
            self.state.launched = None;
            self.state.restarts += 1;
            self.count_restart();
            self.save();
            let lasted = run.started.elapsed();
            self.crashes = if lasted >= self.ctx.opts.backoff_reset_after {
                1
            } else {
                self.crashes + 1
            };
            let delay = backoff(
                self.ctx.opts.backoff_base,
                self.ctx.opts.backoff_max,
                self.crashes,
            );
            self.report(
                phase,
                code,
                signal,
                &format!("{message}; restarting in {:.1}s", delay.as_secs_f64()),
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.sig.remove.cancelled() => return self.cleanup().await,
                _ = self.sig.halt.cancelled() => return self.halt_idle().await,
            }
            note = format!("restart {} after: {message}", self.state.restarts);
        }
    }

    /// A run a previous agent started: still running (re-adopted), ended while no agent
    /// watched (its recorded exit), or lost (`Err`, after stopping what was left of it).
    fn adopt(&mut self) -> Option<Result<Run, String>> {
        let l = self.state.launched?;
        let run_dir = self.dir.run_dir(self.state.run);
        if !self.state.in_process && process::alive(l.shim_pid, l.shim_start) {
            info!(id = %self.alloc.id, pid = l.pid, "re-adopted running process");
            self.ctx
                .registry
                .update(&self.alloc.id, |e| e.running = true);
            return Some(Ok(Run {
                exit: ExitWait::Shim {
                    pid: l.shim_pid,
                    start: l.shim_start,
                    run_dir,
                },
                launched: l,
                started: Instant::now(),
            }));
        }
        if let Ok(Some(exit)) = read_json::<ExitInfo>(&run_dir.join(EXIT_FILE)) {
            return Some(Ok(Run {
                exit: ExitWait::Done(exit),
                launched: l,
                started: Instant::now(),
            }));
        }
        if process::alive(l.pid, l.start) {
            process::signal_group(l.pgid, libc::SIGKILL);
        }
        self.sweep();
        self.state.launched = None;
        warn!(id = %self.alloc.id, pid = l.pid, "could not re-adopt the process; stopped it");
        Some(Err(format!(
            "the agent restarted and could not re-adopt process {} (its supervisor was gone); \
             stopped it",
            l.pid
        )))
    }

    async fn fetch_policy(&self) -> Policy {
        let key =
            match WorkloadKey::new(self.alloc.namespace.as_str(), self.alloc.workload.as_str()) {
                Ok(k) => k.format(),
                Err(e) => {
                    self.report(
                        ReplicaPhase::Failed,
                        None,
                        None,
                        &format!("bad workload name: {e}"),
                    );
                    return std::future::pending().await;
                }
            };
        let mut reported = false;
        loop {
            match self.ctx.store.get(&key).await {
                Ok(Some(kv)) => match codec::decode::<Workload>(&key, &kv.value) {
                    Ok(w) => return Policy::from_workload(&w, self.ctx.opts.default_grace),
                    Err(e) => warn!(error = %e, "undecodable workload; retrying"),
                },
                Ok(None) if !reported => {
                    reported = true;
                    let message = format!(
                        "workload {}/{} not found",
                        self.alloc.namespace, self.alloc.workload
                    );
                    self.report(ReplicaPhase::Pending, None, None, &message);
                }
                Ok(None) => {}
                Err(e) => {
                    self.ctx
                        .metrics
                        .store_errors
                        .with_label_values(&["get_workload"])
                        .inc();
                    warn!(error = %e, "reading the workload failed; retrying");
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Starts a new run; a failure to start is a run that ended at once with the reason.
    async fn launch(&mut self, note: &str) -> Run {
        self.report(ReplicaPhase::Starting, None, None, note);
        self.state.run += 1;
        let run_dir = self.dir.run_dir(self.state.run);
        let failed = |message: String| Run {
            exit: ExitWait::Done(ExitInfo {
                error: Some(message),
                finished: UnixMillis::now(),
                ..ExitInfo::default()
            }),
            launched: Launched::default(),
            started: Instant::now(),
        };
        if let Err(e) = std::fs::create_dir_all(&run_dir) {
            return failed(format!("creating {}: {e}", run_dir.display()));
        }
        self.dir.prune_runs(self.state.run);
        let mut limits_note = String::new();
        if self.state.cgroup.is_none() {
            let limits = Limits {
                compute_milli: self.alloc.compute_milli,
                memory_bytes: self.alloc.memory_bytes,
            };
            match self.ctx.cgroups.create(&self.alloc.id, limits) {
                Ok(cg) => self.state.cgroup = cg,
                Err(e) => {
                    warn!(id = %self.alloc.id, error = %e, "no cgroup: running without limits");
                    limits_note = format!("running without resource limits: {e}");
                }
            }
        }
        if let Err(reason) = self.ctx.cgroups.availability() {
            limits_note =
                format!("running without resource limits (cgroups unavailable: {reason})");
        }
        self.state.oom_baseline = self.state.cgroup.as_ref().map_or(0, |c| c.oom_kills());
        let policy = &self.state.policy;
        let Some((program, rest)) = policy.command.split_first() else {
            self.save();
            return failed("the workload's template.command is empty".into());
        };
        let working_dir = if policy.working_dir.is_empty() {
            self.dir.work_dir()
        } else {
            policy.working_dir.clone().into()
        };
        if let Err(e) = std::fs::create_dir_all(&working_dir) {
            self.save();
            return failed(format!("working directory {}: {e}", working_dir.display()));
        }
        let mut args = rest.to_vec();
        args.extend(policy.args.iter().cloned());
        let spec = LaunchSpec {
            program: program.clone(),
            args,
            env: env::build(
                policy,
                &self.alloc,
                &self.ctx.base_env,
                self.ctx.has_accelerators,
            ),
            working_dir,
            run_dir,
            cgroup_procs: self
                .state
                .cgroup
                .as_ref()
                .map(|c| c.procs_files())
                .unwrap_or_default(),
            log_max_bytes: self.ctx.opts.log_max_bytes,
            log_max_files: self.ctx.opts.log_max_files,
        };
        let result = self.ctx.shim.launch(spec).await;
        let run_number = self.state.run;
        let cgroup = self.state.cgroup.clone();
        self.ctx.registry.update(&self.alloc.id, |e| {
            e.run = run_number;
            e.cgroup = cgroup;
        });
        match result {
            Ok((launched, exit)) => {
                self.state.launched = Some(launched);
                self.state.in_process = matches!(self.ctx.shim, super::ShimMode::InProcess);
                self.save();
                self.ctx
                    .registry
                    .update(&self.alloc.id, |e| e.running = true);
                info!(id = %self.alloc.id, pid = launched.pid, run = run_number, "started");
                self.note = limits_note;
                Run {
                    exit,
                    launched,
                    started: Instant::now(),
                }
            }
            Err(message) => {
                self.state.launched = None;
                self.save();
                failed(message)
            }
        }
    }

    /// Reports the running process and probes it until something ends the run.
    async fn watch(&mut self, run: &mut Run) -> Outcome {
        let inference = self.state.policy.kind == Kind::Inference;
        let mut readiness = self
            .state
            .policy
            .readiness
            .clone()
            .filter(|_| inference)
            .map(|p| Prober::new(p, self.alloc.port));
        let mut liveness = self
            .state
            .policy
            .liveness
            .clone()
            .filter(|_| inference)
            .map(|p| Prober::new(p, self.alloc.port));
        if !matches!(run.exit, ExitWait::Done(_)) {
            let phase = if inference && readiness.is_none() {
                ReplicaPhase::Ready
            } else {
                ReplicaPhase::Running
            };
            self.report(phase, None, None, &self.note);
        }
        let (ns, wl) = (self.alloc.namespace.clone(), self.alloc.workload.clone());
        let failures = self.ctx.metrics.probe_failures.clone();
        loop {
            tokio::select! {
                _ = self.sig.remove.cancelled() => return Outcome::Remove,
                _ = self.sig.halt.cancelled() => return Outcome::Halt,
                exit = run.exit.wait() => return Outcome::Exited(exit),
                t = next(&mut readiness, || failures.with_label_values(&[&ns, &wl, "readiness"]).inc()) => {
                    match t {
                        Transition::Passing => self.report(ReplicaPhase::Ready, None, None, &self.note),
                        Transition::Failing(e) => self.report(
                            ReplicaPhase::Running,
                            None,
                            None,
                            &format!("readiness probe failed: {e}"),
                        ),
                    }
                }
                t = next(&mut liveness, || failures.with_label_values(&[&ns, &wl, "liveness"]).inc()) => {
                    if let Transition::Failing(e) = t {
                        warn!(id = %self.alloc.id, error = %e, "liveness probe failed; restarting");
                        let exit = self.terminate(run).await;
                        return Outcome::Unhealthy(e, exit);
                    }
                }
            }
        }
    }

    /// SIGTERM to the process group (and anything else in the cgroup), the grace period,
    /// then SIGKILL.
    async fn terminate(&mut self, run: &mut Run) -> ExitInfo {
        let l = run.launched;
        let cgroup = self.state.cgroup.clone();
        if l.pid > 0 && process::alive(l.pid, l.start) {
            process::signal_group(l.pgid, libc::SIGTERM);
        }
        if let Some(cg) = &cgroup {
            cg.signal_all(libc::SIGTERM);
        }
        let grace = self.state.policy.grace();
        let exit = match tokio::time::timeout(grace, run.exit.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                info!(id = %self.alloc.id, grace_s = grace.as_secs(), "grace period over: SIGKILL");
                if l.pid > 0 && process::alive(l.pid, l.start) {
                    process::signal_group(l.pgid, libc::SIGKILL);
                }
                if let Some(cg) = &cgroup {
                    cg.signal_all(libc::SIGKILL);
                }
                match tokio::time::timeout(KILL_WAIT, run.exit.wait()).await {
                    Ok(exit) => exit,
                    Err(_) => {
                        warn!(id = %self.alloc.id, "process did not end after SIGKILL; killing its shim");
                        process::signal_pid(l.shim_pid, libc::SIGKILL);
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
        self.ctx
            .registry
            .update(&self.alloc.id, |e| e.running = false);
        exit
    }

    /// Kills whatever is left in the cgroup (descendants that left the process group).
    fn sweep(&self) {
        if let Some(cg) = &self.state.cgroup {
            cg.signal_all(libc::SIGKILL);
        }
    }

    fn classify(&self, exit: &ExitInfo) -> (ReplicaPhase, Option<i32>, Option<i32>, String) {
        if let Some(error) = &exit.error {
            return (
                ReplicaPhase::Failed,
                None,
                None,
                format!("cannot start: {error}"),
            );
        }
        let oom = self
            .state
            .cgroup
            .as_ref()
            .is_some_and(|c| c.oom_kills() > self.state.oom_baseline);
        if oom {
            let message = format!(
                "killed for exceeding its memory limit of {} bytes",
                self.alloc.memory_bytes
            );
            return (ReplicaPhase::OomKilled, exit.code, exit.signal, message);
        }
        match (exit.code, exit.signal) {
            (Some(0), _) => (
                ReplicaPhase::Succeeded,
                Some(0),
                None,
                "exited with code 0".into(),
            ),
            (Some(c), _) => (
                ReplicaPhase::Failed,
                Some(c),
                None,
                format!("exited with code {c}"),
            ),
            (None, Some(s)) => (
                ReplicaPhase::Failed,
                None,
                Some(s),
                format!("killed by signal {s} ({})", signal_name(s)),
            ),
            (None, None) => (
                ReplicaPhase::Failed,
                None,
                None,
                "ended for an unknown reason".into(),
            ),
        }
    }

    /// A finished training worker waits here until its allocation is removed.
    async fn wait_for_end(self) {
        self.ctx
            .registry
            .update(&self.alloc.id, |e| e.running = false);
        self.save();
        tokio::select! {
            _ = self.sig.remove.cancelled() => self.cleanup().await,
            _ = self.sig.halt.cancelled() => self.halt_idle().await,
        }
    }

    /// The agent stops while no process runs (finished worker, restart backoff).
    async fn halt_idle(mut self) {
        if self.ctx.opts.on_shutdown == OnShutdown::Stop {
            self.remove_cgroup().await;
            self.ctx.registry.remove(&self.alloc.id);
            self.dir.remove();
        }
    }

    async fn halt(mut self, run: &mut Run) {
        match self.ctx.opts.on_shutdown {
            OnShutdown::Leave => {
                info!(id = %self.alloc.id, pid = run.launched.pid, "agent stopping: leaving the process running");
            }
            OnShutdown::Stop => {
                self.terminate(run).await;
                self.remove_cgroup().await;
                self.ctx.registry.remove(&self.alloc.id);
                self.dir.remove();
            }
        }
    }

    /// The allocation is gone: no cgroup, no status, no files left, except the output of a
    /// replica that had ended, kept so that its logs stay readable.
    async fn cleanup(mut self) {
        self.remove_cgroup().await;
        self.ctx.reporter.delete(&self.key, &self.alloc.id);
        // Keep the output before forgetting the replica, so a log reader always finds it in
        // one place or the other.
        if self.state.run > 0 {
            self.ctx.finished.keep(
                &self.alloc.namespace,
                &self.alloc.workload,
                self.alloc.replica,
                &self.dir.run_dir(self.state.run),
            );
        }
        self.ctx.registry.remove(&self.alloc.id);
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

    fn report(
        &self,
        phase: ReplicaPhase,
        exit_code: Option<i32>,
        signal: Option<i32>,
        message: &str,
    ) {
        self.ctx.reporter.set(
            &self.key,
            ReplicaStatus {
                allocation_id: self.alloc.id.clone(),
                node: self.ctx.node.clone(),
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
        self.ctx
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

/// The next transition of an optional probe; never resolves without one.
async fn next(p: &mut Option<Prober>, on_failure: impl FnMut()) -> Transition {
    let mut on_failure = on_failure;
    match p {
        Some(p) => p.next(|_| on_failure()).await,
        None => std::future::pending().await,
    }
}

/// `base * 2^(crashes-1)`, capped at `max`.
pub fn backoff(base: Duration, max: Duration, crashes: u32) -> Duration {
    let factor = 1u32
        .checked_shl(crashes.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

/// Stops and removes what a previous agent left for an allocation that no longer exists.
pub async fn remove_orphan(ctx: Arc<Ctx>, dir: ReplicaDir) {
    let state = match dir.load() {
        Ok(Some(s)) => s,
        _ => {
            dir.remove();
            return;
        }
    };
    let alloc = state.allocation.clone();
    let key = match StatusKey::new(
        alloc.namespace.as_str(),
        alloc.workload.as_str(),
        alloc.replica,
    ) {
        Ok(k) => k,
        Err(_) => {
            dir.remove();
            return;
        }
    };
    let mut r = Replica {
        ctx,
        alloc,
        dir,
        key,
        sig: Signals {
            remove: CancellationToken::new(),
            halt: CancellationToken::new(),
        },
        state,
        crashes: 0,
        note: String::new(),
    };
    info!(id = %r.alloc.id, "allocation no longer exists: stopping what is left of it");
    if let Some(Ok(mut run)) = r.adopt() {
        r.terminate(&mut run).await;
    }
    r.cleanup().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = |n| backoff(Duration::from_secs(1), Duration::from_secs(10), n);
        assert_eq!(b(1), Duration::from_secs(1));
        assert_eq!(b(2), Duration::from_secs(2));
        assert_eq!(b(4), Duration::from_secs(8));
        assert_eq!(b(5), Duration::from_secs(10));
        assert_eq!(b(100), Duration::from_secs(10));
    }
}
