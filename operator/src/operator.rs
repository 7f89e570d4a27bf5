//! `uni-operator run`: connects to Kubernetes and Universal, then runs the controllers while
//! holding the leader Lease (or always, with leader election off), until shutdown.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cli::RunArgs;
use crate::controller::{self, Scope};
use crate::error::{Error, Result};
use crate::leader::{Elector, Timings};
use crate::reconcile::backoff::ObjectBackoff;
use crate::reconcile::Context;
use crate::universal::Universal;

pub async fn run(args: RunArgs, shutdown: CancellationToken) -> Result<()> {
    let client = Client::try_default()
        .await
        .map_err(|e| Error::KubeConfig(e.to_string()))?;
    let token = match &args.token_file {
        Some(path) => Some(std::fs::read_to_string(path)?),
        None => None,
    };
    let universal = Universal::new(&args.scheduler, token, args.ca.as_deref())?;
    let identity = args.identity();
    let mut ctx = Context::new(
        client.clone(),
        universal,
        &identity,
        args.resync(),
        ObjectBackoff::new(Duration::from_millis(500), Duration::from_secs(60)),
    );
    ctx.host_identity_namespaces = args.host_identity_namespaces.clone();
    let ctx = Arc::new(ctx);
    let scope = Scope {
        namespace: args.namespace.clone(),
        queues: args.queues,
    };
    info!(%identity, scheduler = %args.scheduler, ?scope, "operator starting");
    if !args.leader_election {
        warn!("leader election is off: run only one replica");
        controller::run(ctx, scope, shutdown).await;
        return Ok(());
    }

    let leases: Api<Lease> = Api::namespaced(client, &args.lease_namespace());
    let timings = Timings::from_duration(args.lease_duration());
    let (leading_tx, mut leading) = watch::channel(false);
    let campaign = CancellationToken::new();
    let elector = tokio::spawn(
        Elector::new(leases, &args.lease_name, &identity, timings)
            .run(leading_tx, campaign.clone()),
    );
    while !shutdown.is_cancelled() {
        let became_leader = tokio::select! {
            _ = shutdown.cancelled() => false,
            r = leading.wait_for(|l| *l) => r.is_ok(),
        };
        if !became_leader {
            break;
        }
        let controllers = shutdown.child_token();
        let mut running = tokio::spawn(controller::run(
            ctx.clone(),
            scope.clone(),
            controllers.clone(),
        ));
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = leading.wait_for(|l| !*l) => warn!("leadership lost: stopping the controllers"),
            _ = &mut running => warn!("controllers stopped on their own"),
        }
        controllers.cancel();
        if !running.is_finished() {
            if let Err(e) = running.await {
                warn!(error = %e, "controllers task failed");
            }
        }
    }
    // Controllers are stopped: now let a standby take over at once.
    campaign.cancel();
    if let Err(e) = elector.await {
        warn!(error = %e, "elector task failed");
    }
    info!("operator stopped");
    Ok(())
}
