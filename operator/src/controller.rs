//! The controllers: one per resource kind, each a kube-runtime Controller driving the
//! reconcile functions, triggered by Kubernetes watches, by the Universal watch and by the
//! periodic resync. Every task is owned here and joined before `run` returns.

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::controller::{Action, Controller, Error as ControllerError};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::convert::WorkloadResource;
use crate::crd::{InferenceService, Queue, TrainingJob};
use crate::error::Error;
use crate::reconcile::{queue, workload, Context};
use crate::trigger;

/// Which resources this operator instance manages.
#[derive(Clone, Debug)]
pub struct Scope {
    /// Only this namespace's workload resources; None: every namespace.
    pub namespace: Option<String>,
    /// Mirror Queue resources (cluster-scoped).
    pub queues: bool,
}

/// Runs the controllers until `cancel`.
pub async fn run(ctx: Arc<Context>, scope: Scope, cancel: CancellationToken) {
    let (inference_tx, inference_rx) = mpsc::channel(1024);
    let (training_tx, training_rx) = mpsc::channel(1024);
    let mut tasks = JoinSet::new();
    tasks.spawn(trigger::run(
        ctx.universal.clone(),
        scope.namespace.clone(),
        trigger::Senders {
            inference: inference_tx,
            training: training_tx,
        },
        cancel.clone(),
    ));
    tasks.spawn(workloads::<InferenceService>(
        api(&ctx, &scope),
        ctx.clone(),
        inference_rx,
        cancel.clone(),
    ));
    tasks.spawn(workloads::<TrainingJob>(
        api(&ctx, &scope),
        ctx.clone(),
        training_rx,
        cancel.clone(),
    ));
    if scope.queues {
        tasks.spawn(queues(ctx.clone(), cancel.clone()));
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            warn!(error = %e, "controller task failed");
            cancel.cancel();
        }
    }
}

fn api<K: WorkloadResource>(ctx: &Context, scope: &Scope) -> Api<K> {
    match &scope.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    }
}

async fn workloads<K: WorkloadResource>(
    api: Api<K>,
    ctx: Arc<Context>,
    trigger: mpsc::Receiver<ObjectRef<K>>,
    cancel: CancellationToken,
) {
    Controller::new(api, watcher::Config::default())
        .reconcile_on(ReceiverStream::new(trigger))
        .graceful_shutdown_on(cancel.cancelled_owned())
        .run(workload::reconcile::<K>, retry_after, ctx)
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => debug!(kind = K::KIND, object = %obj, "reconciled"),
                // A Universal event about a resource already deleted: nothing to do.
                Err(ControllerError::ObjectNotFound(obj)) => {
                    debug!(kind = K::KIND, object = %obj, "resource gone")
                }
                Err(e) => warn!(kind = K::KIND, error = %e, "reconcile failed"),
            }
        })
        .await;
}

async fn queues(ctx: Arc<Context>, cancel: CancellationToken) {
    let api: Api<Queue> = Api::all(ctx.client.clone());
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(cancel.cancelled_owned())
        .run(queue::reconcile, retry_after, ctx)
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => debug!(object = %obj, "reconciled queue"),
                Err(e) => warn!(error = %e, "queue reconcile failed"),
            }
        })
        .await;
}

/// Retries a failed reconcile after the error's own delay or the object's backoff.
fn retry_after<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let wait = match err {
        Error::Retry { after, .. } => *after,
        _ => ctx.backoff.failed(&*obj),
    };
    warn!(object = %ObjectRef::from_obj(&*obj), error = %err, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}
