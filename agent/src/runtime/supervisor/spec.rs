//! The run spec of an allocation seen for the first time, read from its workload; retried
//! until the store answers and the workload the allocation was placed for exists (same uid,
//! a generation no older than the allocation's).

use std::time::Duration;

use tracing::warn;
use uni_core::model::{ReplicaPhase, Workload};
use uni_core::store::codec;
use uni_core::store::keys::{TypedKey, WorkloadKey};

use super::Replica;
use crate::runtime::run_spec::RunSpec;

/// Between reads of a workload that is missing or could not be read.
const RETRY: Duration = Duration::from_secs(2);

impl Replica {
    /// Never resolves for a workload name that is invalid (reported Failed).
    pub(super) async fn fetch_spec(&self) -> RunSpec {
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
        let mut reported = String::new();
        loop {
            let waiting = match self.host.store.get(&key).await {
                Ok(Some(kv)) => match codec::decode::<Workload>(&key, &kv.value) {
                    Ok(w) => match self.mismatch(&w) {
                        None => match self.run_spec(&w) {
                            Ok(spec) => return spec,
                            Err(why) => {
                                self.report(ReplicaPhase::Failed, None, None, &why);
                                return std::future::pending().await;
                            }
                        },
                        Some(why) => Some(why),
                    },
                    Err(e) => {
                        warn!(error = %e, "undecodable workload; retrying");
                        None
                    }
                },
                Ok(None) => Some(format!(
                    "workload {}/{} not found",
                    self.alloc.namespace, self.alloc.workload
                )),
                Err(e) => {
                    self.host.metrics.store_error("get_workload");
                    warn!(error = %e, "reading the workload failed; retrying");
                    None
                }
            };
            if let Some(why) = waiting.filter(|w| *w != reported) {
                self.report(ReplicaPhase::Pending, None, None, &why);
                reported = why;
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// The run spec of `w`; a template that names no user runs as its namespace's own.
    fn run_spec(&self, w: &Workload) -> Result<RunSpec, String> {
        let mut spec = RunSpec::from_workload(w, &self.host.opts);
        let t = w.spec.template();
        if let Some(users) = &self.host.namespace_users {
            let id = users
                .id(&self.alloc.namespace)
                .map_err(|e| format!("no user for namespace {}: {e}", self.alloc.namespace))?;
            if t.run_as_user.is_none() {
                spec.run_as.uid = id;
            }
            if t.run_as_group.is_none() {
                spec.run_as.gid = id;
            }
        }
        Ok(spec)
    }

    /// Why `w` is not the workload this allocation was placed for, if it is not.
    fn mismatch(&self, w: &Workload) -> Option<String> {
        let a = &self.alloc;
        if !a.workload_uid.is_empty() && w.meta.uid != a.workload_uid {
            return Some(format!(
                "workload {}/{} was deleted and created again (uid {}, this allocation is for \
                 uid {}); not starting it",
                a.namespace, a.workload, w.meta.uid, a.workload_uid
            ));
        }
        (w.meta.generation < a.generation).then(|| {
            format!(
                "workload {}/{} is at generation {}, older than this allocation's {}; reading \
                 it again",
                a.namespace, a.workload, w.meta.generation, a.generation
            )
        })
    }
}
