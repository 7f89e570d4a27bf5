//! Two operator replicas under a Lease, killed (SIGKILL) and restarted mid-stream: exactly
//! one acts at a time, nothing is duplicated in Universal and nothing is lost.

mod support;

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, ResourceExt};
use support::{eventually, Cluster, Operator};
use uni_operator::crd::status::condition;
use uni_operator::crd::InferenceService;
use uni_operator::labels;
use uni_proto::v1 as pb;

const NS: &str = "batch";
const COUNT: usize = 12;

fn services() -> String {
    (0..COUNT)
        .map(|i| {
            format!(
                "apiVersion: universal.dev/v1alpha1\nkind: InferenceService\nmetadata:\n  \
                 name: svc-{i}\n  namespace: {NS}\nspec:\n  replicas: 1\n  template:\n    \
                 command: [\"/usr/bin/serve\"]\n    resources: {{compute: 250m, memory: 256Mi}}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

async fn holder(leases: &Api<Lease>) -> Result<String, String> {
    let lease = leases
        .get_opt("uni-operator")
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no lease yet")?;
    lease
        .spec
        .and_then(|s| s.holder_identity)
        .ok_or_else(|| "lease not held".to_string())
}

/// The replica holding the lease, killed with SIGKILL.
async fn kill_leader(leases: &Api<Lease>, replicas: &mut [Operator]) -> String {
    let leader = eventually("a lease holder", || holder(leases)).await;
    let op = replicas
        .iter_mut()
        .find(|o| o.identity == leader)
        .unwrap_or_else(|| panic!("leader {leader} is not one of ours"));
    op.kill().await;
    leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_mid_stream_loses_and_duplicates_nothing() {
    let cluster = Cluster::start().await;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "default");
    let mut replicas = vec![
        cluster.operator("operator-a"),
        cluster.operator("operator-b"),
    ];
    eventually("one replica to lead", || holder(&leases)).await;
    cluster.namespace(NS).await;
    let u = &cluster.universal;

    // Mid-stream crash 1: kill the leader as soon as the first workload reaches Universal.
    cluster.apply(&services()).await;
    eventually("the first workload in Universal", || async {
        if u.list(NS).await.is_empty() {
            Err("none yet".to_string())
        } else {
            Ok(())
        }
    })
    .await;
    let first = kill_leader(&leases, &mut replicas).await;
    let second = eventually("the standby to take over", || async {
        let h = holder(&leases).await?;
        if h != first {
            Ok(h)
        } else {
            Err(format!("still {h}"))
        }
    })
    .await;
    // The crashed replica comes back as a new pod would.
    replicas.push(cluster.operator("operator-a-restarted"));

    // Mid-stream crash 2: scale some, delete some, and kill the new leader straight away.
    for i in 0..4 {
        cluster
            .kube
            .kubectl_ok(
                &[
                    "-n",
                    NS,
                    "scale",
                    &format!("inferenceservice/svc-{i}"),
                    "--replicas=2",
                ],
                None,
            )
            .await;
    }
    cluster
        .kube
        .kubectl_ok(
            &[
                "-n",
                NS,
                "delete",
                "inferenceservice/svc-10",
                "inferenceservice/svc-11",
                "--wait=false",
            ],
            None,
        )
        .await;
    let killed = kill_leader(&leases, &mut replicas).await;
    assert_eq!(killed, second);

    // Converges: exactly svc-0..9, the right counts, one allocation per replica, every
    // resource Ready for its latest generation.
    let want: BTreeMap<String, u32> = (0..10)
        .map(|i| (format!("svc-{i}"), if i < 4 { 2 } else { 1 }))
        .collect();
    let api: Api<InferenceService> = Api::namespaced(cluster.client.clone(), NS);
    eventually("Universal and Kubernetes to converge", || async {
        let workloads = u.list(NS).await;
        let got: BTreeMap<String, u32> = workloads
            .iter()
            .map(|w| {
                let name = w.meta.as_ref().map(|m| m.name.clone()).unwrap_or_default();
                let desired = w.status.as_ref().map_or(0, |s| s.replicas_desired);
                (name, desired)
            })
            .collect();
        if got != want || workloads.len() != want.len() {
            return Err(format!("universal has {got:?}"));
        }
        let allocations = u.allocations().await;
        for (name, n) in &want {
            let placed = allocations
                .iter()
                .filter(|a| a.namespace == NS && &a.workload == name)
                .count();
            if placed != *n as usize {
                return Err(format!("{name} has {placed} allocations, wants {n}"));
            }
        }
        let list = api
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        if list.items.len() != want.len() {
            return Err(format!("{} resources left", list.items.len()));
        }
        for svc in &list.items {
            let s = svc.status.clone().unwrap_or_default();
            let ready = s
                .conditions
                .iter()
                .any(|c| c.type_ == condition::READY && c.status == "True");
            if !ready || s.observed_generation != svc.metadata.generation {
                return Err(format!(
                    "{} not ready at its generation: {s:?}",
                    svc.name_any()
                ));
            }
            let w = workloads
                .iter()
                .find(|w| w.meta.as_ref().is_some_and(|m| m.name == svc.name_any()))
                .ok_or("missing workload")?;
            let owner = w
                .meta
                .as_ref()
                .and_then(|m| m.annotations.get(labels::OWNER_UID).cloned());
            if owner != svc.uid() {
                return Err(format!("{} owned by {owner:?}", svc.name_any()));
            }
        }
        Ok(())
    })
    .await;

    // Graceful shutdown of the last leader releases the lease at once.
    let last = eventually("a leader after the second crash", || async {
        let h = holder(&leases).await?;
        if h != second {
            Ok(h)
        } else {
            Err(format!("still {h}"))
        }
    })
    .await;
    let op = replicas
        .iter_mut()
        .find(|o| o.identity == last)
        .expect("leader is ours");
    let status = op.terminate().await;
    assert!(status.success(), "clean exit: {status}\n{}", op.log());
    let lease = leases.get("uni-operator").await.expect("lease");
    let spec = lease.spec.expect("lease spec");
    assert_eq!(spec.holder_identity, None, "released on shutdown");
    assert!(spec.lease_transitions.unwrap_or(0) >= 2);
    let total = u
        .workloads()
        .await
        .list_workloads(pb::ListWorkloadsRequest {
            all_namespaces: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .workloads
        .len();
    assert_eq!(total, want.len(), "nothing outside the namespace either");
}
