//! Reconciling an InferenceService or TrainingJob: observe Universal, ask the decision core
//! for the next step, take it, and repeat until in sync; then write the status and publish
//! events for what changed. Idempotent and level-triggered: it reads everything it acts on
//! and can be re-run at any time, after any crash.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;
use tonic::Code;
use tracing::{debug, info};
use uni_proto::v1 as pb;

use super::context::Context;
use super::decide::{decide, Observed, ResourceState, Step, Wanted};
use super::events::{for_step, for_transitions, Note};
use super::finalizer;
use super::status::{workload_status, Verdict};
use crate::convert::{desired, WorkloadResource};
use crate::error::{Error, Result};
use crate::labels;

/// Steps taken in one reconcile before giving up and retrying later (each step changes
/// something, so a healthy reconcile needs at most three: finalizer, create, done).
const MAX_STEPS: usize = 6;

pub async fn reconcile<K: WorkloadResource>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = obj.namespace().ok_or(Error::MissingField {
        what: "metadata.namespace",
    })?;
    let name = obj.name_any();
    let key = format!("{}/{namespace}/{name}", K::KIND);
    let action = run::<K>(&obj, &ctx, &namespace, &name).await?;
    ctx.backoff.succeeded(&key);
    Ok(action)
}

async fn run<K: WorkloadResource>(
    obj: &K,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Action> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let regarding = obj.object_ref(&());
    let what = format!("workload {namespace}/{name}");
    let want = desired(obj);
    let mirrored_before = obj
        .workload_status()
        .is_some_and(|s| s.universal_uid.is_some());
    let mut state = ResourceState {
        deleting: obj.meta().deletion_timestamp.is_some(),
        has_finalizer: finalizer::has(obj),
    };
    let mut notes: Vec<Note> = Vec::new();

    let mut outcome = None;
    for _ in 0..MAX_STEPS {
        let current = ctx.universal.get_workload(namespace, name).await?;
        let observed = current.as_ref().map(|w| Observed::workload(w, K::KIND));
        let wanted = match &want {
            Ok(d) => Ok(Wanted {
                fingerprint: &d.fingerprint,
                counts: d.counts,
            }),
            Err(e) => Err(e.as_str()),
        };
        let step = decide(state, wanted, observed.as_ref());
        debug!(kind = K::KIND, namespace, name, ?step, "reconcile step");
        let done = match (&step, &want) {
            (Step::AddFinalizer, _) => {
                finalizer::add(&api, obj).await?;
                state.has_finalizer = true;
                None
            }
            (Step::Create, Ok(d)) => {
                match ctx.universal.create_workload(d.workload.clone()).await {
                    Ok(w) => Some((Verdict::Accepted, Some(w))),
                    // Created concurrently (e.g. by a previous leader): observe it.
                    Err(s) if s.code() == Code::AlreadyExists => continue,
                    Err(s) if s.code() == Code::InvalidArgument => {
                        Some((rejected("InvalidSpec", s.message()), None))
                    }
                    Err(s) => return Err(s.into()),
                }
            }
            (Step::Update { expected }, Ok(d)) => {
                match ctx
                    .universal
                    .update_workload(d.workload.clone(), *expected)
                    .await
                {
                    Ok(w) => Some((Verdict::Accepted, Some(w))),
                    Err(s) if matches!(s.code(), Code::Aborted | Code::NotFound) => continue,
                    Err(s) if s.code() == Code::InvalidArgument => {
                        Some((rejected("InvalidSpec", s.message()), current))
                    }
                    Err(s) => return Err(s.into()),
                }
            }
            (Step::Scale { counts, expected }, Ok(_)) => {
                match ctx
                    .universal
                    .scale_workload(namespace, name, *counts, *expected)
                    .await
                {
                    Ok(w) => Some((Verdict::Accepted, Some(w))),
                    Err(s) if matches!(s.code(), Code::Aborted | Code::NotFound) => continue,
                    Err(s) if s.code() == Code::InvalidArgument => {
                        Some((rejected("InvalidScale", s.message()), current))
                    }
                    Err(s) => return Err(s.into()),
                }
            }
            (Step::InSync, _) => Some((Verdict::Accepted, current)),
            (Step::Reject { message }, _) => Some((rejected("InvalidSpec", message), current)),
            (Step::Conflict { message }, _) => Some((rejected("NameConflict", message), None)),
            (Step::WaitForDeletion, _) => return Ok(Action::requeue(ctx.poll)),
            (Step::Delete { expected }, _) => {
                ctx.universal
                    .delete_workload(namespace, name, *expected)
                    .await?;
                None
            }
            (Step::RemoveFinalizer, _) => {
                finalizer::remove(&api, obj).await?;
                info!(
                    kind = K::KIND,
                    namespace, name, "universal workload gone; finalizer removed"
                );
                notes.extend(for_step(&step, &what, mirrored_before));
                for n in notes {
                    ctx.publish(&regarding, n).await;
                }
                return Ok(Action::await_change());
            }
            (Step::Nothing, _) => return Ok(Action::await_change()),
            // Create, Update and Scale are only decided for a valid spec.
            (Step::Create | Step::Update { .. } | Step::Scale { .. }, Err(e)) => {
                Some((rejected("InvalidSpec", e), current))
            }
        };
        if matches!(
            step,
            Step::Create | Step::Update { .. } | Step::Scale { .. } | Step::Delete { .. }
        ) && done.as_ref().is_none_or(|(v, _)| *v == Verdict::Accepted)
        {
            info!(
                kind = K::KIND,
                namespace,
                name,
                ?step,
                "mirrored to universal"
            );
            notes.extend(for_step(&step, &what, mirrored_before));
        }
        if let Some(o) = done {
            outcome = Some(o);
            break;
        }
    }
    let Some((verdict, observed)) = outcome else {
        return Err(Error::Retry {
            reason: format!("{} {namespace}/{name} did not settle", K::KIND),
            after: ctx.poll,
        });
    };

    let previous = obj.workload_status();
    let now = Time(Timestamp::now());
    let status = workload_status(
        previous,
        obj.meta().generation,
        &verdict,
        observed.as_ref(),
        &now,
    );
    if previous != Some(&status) {
        write_status::<K>(&api, name, &status).await?;
        let before = previous.map_or(&[][..], |p| &p.conditions[..]);
        notes.extend(for_transitions(before, &status.conditions));
    }
    for n in notes {
        ctx.publish(&regarding, n).await;
    }
    Ok(Action::requeue(ctx.resync))
}

fn rejected(reason: &str, message: &str) -> Verdict {
    Verdict::Rejected {
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

/// Writes the status with server-side apply: fields the operator no longer sets (a
/// placement that went away) are removed, and nobody else's fields are touched.
async fn write_status<K: WorkloadResource>(
    api: &Api<K>,
    name: &str,
    status: &crate::crd::WorkloadStatus,
) -> Result<()> {
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(labels::OPERATOR).force();
    api.patch_status(name, &params, &Patch::Apply(&body))
        .await?;
    Ok(())
}

/// Universal workloads are named as their resources; the reverse mapping for watch events.
pub fn resource_of(w: &pb::Workload) -> Option<(String, String, String)> {
    let meta = w.meta.as_ref()?;
    let kind = meta.labels.get(labels::KIND)?.clone();
    Some((kind, meta.namespace.clone(), meta.name.clone()))
}
