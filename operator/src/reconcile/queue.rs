//! Reconciling a Queue: the same decision core as workloads, with queues that exist without
//! the operator adopted (the resource is the source of truth) and the built-in "default"
//! queue never deleted.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tonic::Code;
use tracing::info;
use uni_proto::v1 as pb;

use super::context::Context;
use super::decide::{decide, Observed, ResourceState, Step, Wanted};
use super::events::{for_step, for_transitions, Note};
use super::finalizer;
use super::queue_status::queue_status;
use crate::convert::{desired_queue, Counts};
use crate::crd::Queue;
use crate::error::{Error, Result};
use crate::labels;

/// Universal's built-in queue: mirrored like any other, never deleted.
pub const DEFAULT_QUEUE: &str = "default";

const MAX_STEPS: usize = 6;

pub async fn reconcile(obj: Arc<Queue>, ctx: Arc<Context>) -> Result<Action> {
    let name = obj.name_any();
    let action = run(&obj, &ctx, &name).await?;
    ctx.backoff.succeeded(&format!("Queue/{name}"));
    Ok(action)
}

async fn run(obj: &Queue, ctx: &Context, name: &str) -> Result<Action> {
    let api: Api<Queue> = Api::all(ctx.client.clone());
    let regarding = obj.object_ref(&());
    let what = format!("queue {name}");
    let (queue, fingerprint) = desired_queue(obj);
    let mut state = ResourceState {
        deleting: obj.meta().deletion_timestamp.is_some(),
        has_finalizer: finalizer::has(obj),
    };
    let mut notes: Vec<Note> = Vec::new();
    let mut outcome: Option<(Result<(), String>, Option<pb::Queue>)> = None;
    for _ in 0..MAX_STEPS {
        let current = ctx.universal.get_queue(name).await?;
        let observed = current.as_ref().map(Observed::queue);
        let wanted = Wanted {
            fingerprint: &fingerprint,
            counts: Counts::default(),
        };
        let step = decide(state, Ok(wanted), observed.as_ref());
        let done = match &step {
            Step::AddFinalizer => {
                finalizer::add(&api, obj).await?;
                state.has_finalizer = true;
                None
            }
            Step::Create => match ctx.universal.create_queue(queue.clone()).await {
                Ok(q) => Some((Ok(()), Some(q))),
                Err(s) if s.code() == Code::AlreadyExists => continue,
                Err(s) if s.code() == Code::InvalidArgument => {
                    Some((Err(s.message().to_string()), None))
                }
                Err(s) => return Err(s.into()),
            },
            Step::Update { expected } => {
                match ctx.universal.update_queue(queue.clone(), *expected).await {
                    Ok(q) => Some((Ok(()), Some(q))),
                    Err(s) if matches!(s.code(), Code::Aborted | Code::NotFound) => continue,
                    Err(s) if s.code() == Code::InvalidArgument => {
                        Some((Err(s.message().to_string()), current))
                    }
                    Err(s) => return Err(s.into()),
                }
            }
            Step::Delete { .. } if name == DEFAULT_QUEUE => {
                // Universal keeps its default queue; releasing the resource is all there is.
                finalizer::remove(&api, obj).await?;
                return Ok(Action::await_change());
            }
            Step::Delete { expected } => match ctx.universal.delete_queue(name, *expected).await {
                Ok(()) => None,
                Err(Error::Universal(s)) if s.code() == Code::FailedPrecondition => {
                    ctx.publish(
                        &regarding,
                        Note {
                            warning: true,
                            reason: "QueueInUse".into(),
                            action: "Delete",
                            message: s.message().to_string(),
                        },
                    )
                    .await;
                    return Err(Error::Retry {
                        reason: format!("queue {name} is still in use"),
                        after: ctx.resync,
                    });
                }
                Err(e) => return Err(e),
            },
            Step::RemoveFinalizer => {
                finalizer::remove(&api, obj).await?;
                info!(name, "universal queue gone; finalizer removed");
                return Ok(Action::await_change());
            }
            Step::WaitForDeletion => return Ok(Action::requeue(ctx.poll)),
            Step::Nothing => return Ok(Action::await_change()),
            Step::InSync | Step::Scale { .. } => Some((Ok(()), current)),
            Step::Reject { message } | Step::Conflict { message } => {
                Some((Err(message.clone()), current))
            }
        };
        if matches!(step, Step::Create | Step::Update { .. })
            && done.as_ref().is_some_and(|(v, _)| v.is_ok())
        {
            notes.extend(for_step(&step, &what, obj.status.is_some()));
        }
        if let Some(o) = done {
            outcome = Some(o);
            break;
        }
    }
    let Some((verdict, observed)) = outcome else {
        return Err(Error::Retry {
            reason: format!("queue {name} did not settle"),
            after: ctx.poll,
        });
    };
    let now = Time(Timestamp::now());
    let status = queue_status(
        obj.status.as_ref(),
        obj.meta().generation,
        &verdict,
        observed.as_ref(),
        &now,
    );
    if obj.status.as_ref() != Some(&status) {
        let body = json!({
            "apiVersion": Queue::api_version(&()),
            "kind": Queue::kind(&()),
            "status": status,
        });
        let params = PatchParams::apply(labels::OPERATOR).force();
        api.patch_status(name, &params, &Patch::Apply(&body))
            .await?;
        let before = obj.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
        notes.extend(for_transitions(before, &status.conditions));
    }
    for n in notes {
        ctx.publish(&regarding, n).await;
    }
    Ok(Action::requeue(ctx.resync))
}
