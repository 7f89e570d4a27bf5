//! Reconciling an InferenceService or TrainingJob: mirrored as a Universal workload by the
//! shared step driver; this is what workloads bring to it.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tonic::Status;
use uni_proto::v1 as pb;

use super::context::Context;
use super::decide::{Observed, Step, Wanted};
use super::driver::{self, Deletion, Mirror};
use super::events::{for_step, Note};
use super::status::{workload_status, Verdict};
use crate::convert::{desired, host_identity_field, Counts, Desired, WorkloadResource};
use crate::crd::WorkloadStatus;
use crate::error::{Error, Result};
use crate::labels;
use crate::universal::Universal;

pub async fn reconcile<K: WorkloadResource>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = obj.namespace().ok_or(Error::MissingField {
        what: "metadata.namespace",
    })?;
    let name = obj.name_any();
    let desired = desired(&*obj).and_then(|d| allowed(d, &namespace, &ctx));
    let mirror = WorkloadMirror {
        obj: &*obj,
        api: Api::namespaced(ctx.client.clone(), &namespace),
        what: format!("workload {namespace}/{name}"),
        namespace,
        name,
        desired,
        mirrored_before: obj
            .workload_status()
            .is_some_and(|s| s.universal_uid.is_some()),
    };
    driver::reconcile(&mirror, &ctx).await
}

/// A resource naming a host user runs as that user on the node: only in the namespaces the
/// operator's `--host-identity-namespaces` lists (its token must also be a cluster admin's).
fn allowed(d: Desired, namespace: &str, ctx: &Context) -> Result<Desired, String> {
    match host_identity_field(&d.workload) {
        Some(field) if !ctx.host_identity_allowed(namespace) => Err(format!(
            "{field}: naming a host user or group is not allowed in namespace {namespace} (the \
             operator's --host-identity-namespaces)"
        )),
        _ => Ok(d),
    }
}

struct WorkloadMirror<'a, K> {
    obj: &'a K,
    api: Api<K>,
    namespace: String,
    name: String,
    /// Names the Universal object in events.
    what: String,
    desired: Result<Desired, String>,
    /// A Universal workload was recorded before, so a create is a re-creation.
    mirrored_before: bool,
}

impl<K: WorkloadResource> WorkloadMirror<'_, K> {
    /// The spec to write. `decide` only asks to write a valid one; were it not, this answers
    /// as Universal would.
    fn spec(&self) -> Result<&pb::Workload, Status> {
        match &self.desired {
            Ok(d) => Ok(&d.workload),
            Err(e) => Err(Status::invalid_argument(e.clone())),
        }
    }
}

impl<K: WorkloadResource> Mirror for WorkloadMirror<'_, K> {
    type Resource = K;
    type Object = pb::Workload;
    type Status = WorkloadStatus;

    fn resource(&self) -> &K {
        self.obj
    }

    fn api(&self) -> &Api<K> {
        &self.api
    }

    fn wanted(&self) -> Result<Wanted<'_>, &str> {
        match &self.desired {
            Ok(d) => Ok(Wanted {
                fingerprint: &d.fingerprint,
                counts: d.counts,
            }),
            Err(e) => Err(e.as_str()),
        }
    }

    fn observe(w: &pb::Workload) -> Observed {
        Observed::workload(w, K::KIND)
    }

    fn note(&self, step: &Step) -> Option<Note> {
        for_step(step, &self.what, self.mirrored_before)
    }

    fn written(&self) -> Option<&WorkloadStatus> {
        self.obj.workload_status()
    }

    fn finished(&self) -> bool {
        K::KIND == "TrainingJob"
            && self
                .written()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|p| matches!(p, "Succeeded" | "Failed"))
    }

    fn status(
        &self,
        verdict: &Verdict,
        observed: Option<&pb::Workload>,
        now: &Time,
    ) -> WorkloadStatus {
        let generation = self.obj.meta().generation;
        workload_status(self.written(), generation, verdict, observed, now)
    }

    fn conditions(status: &WorkloadStatus) -> &[Condition] {
        &status.conditions
    }

    async fn get(&self, u: &Universal) -> Result<Option<pb::Workload>> {
        u.get_workload(&self.namespace, &self.name).await
    }

    async fn create(&self, u: &Universal) -> Result<pb::Workload, Status> {
        u.create_workload(self.spec()?.clone()).await
    }

    async fn update(&self, u: &Universal, expected: i64) -> Result<pb::Workload, Status> {
        u.update_workload(self.spec()?.clone(), expected).await
    }

    async fn scale(
        &self,
        u: &Universal,
        counts: Counts,
        expected: i64,
    ) -> Result<pb::Workload, Status> {
        u.scale_workload(&self.namespace, &self.name, counts, expected)
            .await
    }

    async fn delete(&self, u: &Universal, expected: i64) -> Result<Deletion> {
        u.delete_workload(&self.namespace, &self.name, expected)
            .await?;
        Ok(Deletion::Requested)
    }
}

/// Universal workloads are named as their resources; the reverse mapping for watch events.
pub fn resource_of(w: &pb::Workload) -> Option<(String, String, String)> {
    let meta = w.meta.as_ref()?;
    let kind = meta.labels.get(labels::KIND)?.clone();
    Some((kind, meta.namespace.clone(), meta.name.clone()))
}
