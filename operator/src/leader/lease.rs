//! Leader election through a coordination.k8s.io/v1 Lease: every replica tries to acquire
//! or renew it every retry period with optimistic concurrency (the read resourceVersion),
//! and publishes whether it leads. Released on shutdown so a standby takes over at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::decide::{decide, Timings, Verdict};
use crate::error::Result;

pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: Timings,
    /// The lease record as last read and when it last changed, on the monotonic clock.
    seen: Option<(String, Instant)>,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Elector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timings: Timings) -> Self {
        Self {
            api,
            name: name.to_string(),
            identity: identity.to_string(),
            timings,
            seen: None,
        }
    }

    /// Campaigns until `cancel`, sending `true` on `leading` while this replica may act.
    /// Releases the lease before returning if it holds it.
    pub async fn run(mut self, leading: watch::Sender<bool>, cancel: CancellationToken) {
        let mut last_renew: Option<Instant> = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renew = Some(Instant::now()),
                Ok(false) => last_renew = None,
                Err(e) => warn!(error = %e, lease = %self.name, "lease update failed"),
            }
            let lead = last_renew.is_some_and(|t| t.elapsed() < self.timings.renew_deadline);
            leading.send_if_modified(|was| {
                if *was != lead {
                    if lead {
                        info!(identity = %self.identity, lease = %self.name, "became leader");
                    } else {
                        warn!(identity = %self.identity, lease = %self.name, "not leading");
                    }
                    *was = lead;
                    true
                } else {
                    false
                }
            });
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(self.timings.retry_period) => {}
            }
        }
        leading.send_replace(false);
        if last_renew.is_some() {
            if let Err(e) = self.release().await {
                warn!(error = %e, "could not release the lease; a standby takes over when it expires");
            }
        }
    }

    fn seconds(&self) -> i32 {
        i32::try_from(self.timings.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// One round: Ok(true) when this replica holds the lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let now = MicroTime(Timestamp::now());
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e.into()),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = format!("{:?}/{:?}", spec.holder_identity, spec.renew_time);
        let changed_at = match &self.seen {
            Some((r, at)) if *r == record => *at,
            _ => {
                let at = Instant::now();
                self.seen = Some((record, at));
                at
            }
        };
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.timings.duration, Duration::from_secs);
        let verdict = decide(
            &self.identity,
            spec.holder_identity.as_deref(),
            changed_at.elapsed(),
            duration,
        );
        let mut next = spec.clone();
        match verdict {
            Verdict::Follow { .. } => return Ok(false),
            Verdict::Renew => next.renew_time = Some(now),
            Verdict::Acquire => {
                let transitions = spec.lease_transitions.unwrap_or(0);
                next.holder_identity = Some(self.identity.clone());
                next.acquire_time = Some(now.clone());
                next.renew_time = Some(now);
                next.lease_duration_seconds = Some(self.seconds());
                next.lease_transitions = Some(transitions.saturating_add(1));
            }
        }
        lease.spec = Some(next);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn release(&self) -> Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(spec);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await?;
        info!(lease = %self.name, "lease released");
        Ok(())
    }
}
