//! The run spec of an allocation seen for the first time, read from its workload; retried
//! until the store answers and the workload exists.

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
        let mut reported = false;
        loop {
            match self.host.store.get(&key).await {
                Ok(Some(kv)) => match codec::decode::<Workload>(&key, &kv.value) {
                    Ok(w) => return RunSpec::from_workload(&w, &self.host.opts),
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
                    self.host.metrics.store_error("get_workload");
                    warn!(error = %e, "reading the workload failed; retrying");
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}
