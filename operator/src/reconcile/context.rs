//! What every reconcile shares: clients, the event recorder, timings and backoff state.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;
use tracing::warn;

use super::backoff::ObjectBackoff;
use super::events::Note;
use crate::universal::Universal;

pub struct Context {
    pub client: Client,
    pub universal: Universal,
    recorder: Recorder,
    /// Period of the level-triggered resync of every resource (status refresh, drift repair).
    pub resync: Duration,
    /// How soon to look again while a Universal object is shutting down.
    pub poll: Duration,
    pub backoff: ObjectBackoff,
    /// Kubernetes namespaces whose resources may name a host user or group; `*`: all.
    pub host_identity_namespaces: Vec<String>,
}

impl Context {
    pub fn new(
        client: Client,
        universal: Universal,
        identity: &str,
        resync: Duration,
        backoff: ObjectBackoff,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::labels::OPERATOR.into(),
            instance: Some(identity.to_string()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            universal,
            resync,
            poll: Duration::from_secs(1),
            backoff,
            host_identity_namespaces: Vec::new(),
        }
    }

    /// Whether resources in `namespace` may name a host user or group.
    pub fn host_identity_allowed(&self, namespace: &str) -> bool {
        self.host_identity_namespaces
            .iter()
            .any(|n| n == "*" || n == namespace)
    }

    /// Publishes an event about `regarding`; a failure is logged, never fatal: events are
    /// best effort.
    pub async fn publish(&self, regarding: &ObjectReference, note: Note) {
        let ev = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason,
            note: Some(note.message.chars().take(1000).collect()),
            action: note.action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, regarding).await {
            warn!(error = %e, object = ?regarding.name, "could not publish event");
        }
    }
}
