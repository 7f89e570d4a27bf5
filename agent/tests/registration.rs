//! The node is registered under the agent's lease; what the API owns (cordon, taints,
//! draining) survives the agent's rewrites; a node marked NotReady by the scheduler, or whose
//! lease was revoked, is registered again.

mod common;

use std::time::Duration;

use common::*;
use uni_core::model::{Node, Taint, TaintEffect};
use uni_core::store::keys::{NodeKey, TypedKey};
use uni_core::store::{codec, Compare, CompareOp, Txn, TxnOp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_keeps_what_the_api_owns_and_recovers() {
    let (_etcd, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut cfg = config("n1", data.path());
    cfg.labels.insert("zone".into(), "a".into());
    let agent = start_agent(cfg, &store).await;
    let key = NodeKey::new("n1").expect("key").format();
    let (n, lease) = eventually(Duration::from_secs(10), "registered", || async {
        node(&store, "n1").await
    })
    .await;
    assert!(n.status.ready);
    assert_eq!(n.meta.labels.get("zone").map(String::as_str), Some("a"));
    assert_eq!(n.status.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(n.status.address, "127.0.0.1");
    assert_eq!(n.status.inventory.accelerators.len(), 2);
    assert_eq!(n.status.inventory.accelerators[0].model, "nvidia-h100-sxm");
    assert!(n.status.price_per_hour > 0.0);

    // The API cordons and drains (keeping the lease), then the scheduler, believing the
    // node lost, writes it back without a lease and NotReady.
    let kv = store.get(&key).await.expect("get").expect("node");
    let mut api: Node = codec::decode(&key, &kv.value).expect("decode");
    api.spec.cordoned = true;
    api.spec.taints = vec![Taint {
        key: "maintenance".into(),
        value: "yes".into(),
        effect: TaintEffect::NoSchedule,
        ..Taint::default()
    }];
    api.status.draining = true;
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.as_str(),
            CompareOp::Equal,
            kv.mod_revision,
        )])
        .and_then([TxnOp::Put {
            key: key.clone(),
            value: codec::encode(&api).expect("encode"),
            lease: kv.lease,
        }]);
    assert!(store.txn(txn).await.expect("txn").succeeded);
    let mut lost = api.clone();
    lost.status.ready = false;
    store
        .put(&key, codec::encode(&lost).expect("encode"), 0)
        .await
        .expect("put");
    let (n, again) = eventually(
        Duration::from_secs(10),
        "rewritten by the agent",
        || async {
            node(&store, "n1")
                .await
                .filter(|(n, l)| n.status.ready && *l != 0)
        },
    )
    .await;
    assert_eq!(again, lease, "the same live lease");
    assert_eq!(n.spec, api.spec, "cordon and taints kept");
    assert!(n.status.draining, "draining kept");

    // The lease revoked elsewhere: the key goes, the agent registers under a new lease.
    store.lease_revoke(lease).await.expect("revoke");
    let (_, fresh) = eventually(
        Duration::from_secs(15),
        "registered under a new lease",
        || async {
            node(&store, "n1")
                .await
                .filter(|(n, l)| n.status.ready && *l != lease)
        },
    )
    .await;
    assert!(store.lease_keep_alive(fresh).await.is_ok());
    agent.shutdown().await;
    // Embedded agents stop with their host and revoke their lease: the node goes at once.
    let left = node(&store, "n1").await;
    assert!(
        left.is_none(),
        "{:?} (fresh lease {fresh})",
        left.map(|(n, l)| (n.status.ready, l))
    );
}
