//! Reconcile triggers from Universal: a watch on the workloads the operator manages, so a
//! workload deleted or changed behind the operator's back is repaired at once (the periodic
//! resync repairs it too, later). Reconnects with backoff; ends on cancel.

use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uni_core::Backoff;
use uni_proto::v1 as pb;

use crate::crd::{InferenceService, TrainingJob};
use crate::reconcile::workload::resource_of;
use crate::universal::Universal;

pub struct Senders {
    pub inference: mpsc::Sender<ObjectRef<InferenceService>>,
    pub training: mpsc::Sender<ObjectRef<TrainingJob>>,
}

impl Senders {
    fn route(&self, w: &pb::Workload) {
        let Some((kind, namespace, name)) = resource_of(w) else {
            return;
        };
        // A full channel means reconciles are queued anyway; the resync covers any drop.
        let _ = match kind.as_str() {
            "InferenceService" => self
                .inference
                .try_send(ObjectRef::new(&name).within(&namespace))
                .is_ok(),
            "TrainingJob" => self
                .training
                .try_send(ObjectRef::new(&name).within(&namespace))
                .is_ok(),
            _ => false,
        };
    }
}

pub async fn run(
    universal: Universal,
    namespace: Option<String>,
    senders: Senders,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let started = tokio::select! {
            _ = cancel.cancelled() => return,
            r = universal.watch_managed(namespace.as_deref()) => r,
        };
        match started {
            Ok(mut stream) => loop {
                let msg = tokio::select! {
                    _ = cancel.cancelled() => return,
                    m = stream.message() => m,
                };
                match msg {
                    Ok(Some(ev)) => {
                        backoff.reset();
                        if let Some(w) = &ev.workload {
                            debug!(kind = ev.r#type, "universal workload event");
                            senders.route(w);
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        warn!(error = %status, "universal watch ended");
                        break;
                    }
                }
            },
            Err(e) => warn!(error = %e, "cannot watch universal workloads"),
        }
        if !backoff.wait(&cancel).await {
            return;
        }
    }
}
