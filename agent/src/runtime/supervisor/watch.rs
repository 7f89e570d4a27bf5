//! Following a running process: its running or ready status, the readiness probe's passing
//! and failing, the liveness probe, whose failure stops the run, and the node's lease, whose
//! loss for too long stops it too (fencing).

use tracing::warn;
use uni_core::model::{Probe, ReplicaPhase};

use super::{Outcome, Replica, Run};
use crate::probe::{Prober, Transition};
use crate::runtime::fence;
use crate::runtime::launcher::ExitWait;
use crate::runtime::run_spec::Kind;

impl Replica {
    /// Reports the running process and probes it until something ends the run.
    pub(super) async fn watch(&mut self, run: &mut Run) -> Outcome {
        let inference = self.state.run_spec.kind == Kind::Inference;
        // Only inference replicas are probed.
        let prober = |probe: &Option<Probe>| {
            probe
                .clone()
                .filter(|_| inference)
                .map(|p| Prober::new(p, self.alloc.port))
        };
        let mut readiness = prober(&self.state.run_spec.readiness);
        let mut liveness = prober(&self.state.run_spec.liveness);
        if !matches!(run.exit, ExitWait::Done(_)) {
            let phase = if inference && readiness.is_none() {
                ReplicaPhase::Ready
            } else {
                ReplicaPhase::Running
            };
            self.report(phase, None, None, &self.note);
        }
        let (ns, wl) = (self.alloc.namespace.clone(), self.alloc.workload.clone());
        let failures = self.host.metrics.probe_failures.clone();
        let mut notice = self.sig.notice.clone();
        loop {
            tokio::select! {
                _ = self.sig.remove.cancelled() => return Outcome::Remove,
                n = super::notice::next(&mut notice) => return Outcome::Notice(n),
                _ = self.sig.halt.cancelled() => return Outcome::Halt,
                lost = self.fence() => return Outcome::Fenced(lost),
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
}

impl Replica {
    /// Resolves when this replica must stop because the node's lease has been lost too long;
    /// never for a replica that is not fenced.
    pub(super) async fn fence(&self) -> std::time::Duration {
        let opts = &self.host.opts;
        let fenced = self.state.run_spec.kind == Kind::Training || opts.fence_inference;
        match opts.fence_after.filter(|_| fenced) {
            Some(after) => fence::lost_for(self.host.lease.clone(), after).await,
            None => std::future::pending().await,
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
