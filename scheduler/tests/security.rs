//! The API's protection, end to end: a control plane set up as `uni-scheduler init` sets it
//! up (TLS, client CA, token file, audit log, OIDC) on an etcd that itself requires TLS
//! client certificates; callers with no, bad, or too-weak credentials.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use futures::StreamExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use tonic::Code;
use uni_agent::credentials::NodeCredentials;
use uni_core::catalog::Catalog;
use uni_core::client::AuthChannel;
use uni_core::store::KvStore;
use uni_core::testing::EtcdServer;
use uni_core::tls::client::{channel, ClientTls};
use uni_core::tls::pki::Ca;
use uni_proto::v1 as pb;
use uni_proto::v1::access_service_client::AccessServiceClient;
use uni_proto::v1::log_service_client::LogServiceClient;
use uni_proto::v1::workload_service_client::WorkloadServiceClient;
use uni_scheduler::config::{Config, OidcSettings};
use uni_scheduler::control_plane::ControlPlane;
use uni_scheduler::init::{init, InitOptions, Initialized};

use common::{inference, WAIT};

const ISSUER: &str = "https://idp.test";
const ALICE: &str = "alice-token-0123456789";
const CAROL: &str = "carol-token-0123456789";
const NOBODY: &str = "nobody-token-012345678";
const BOOTSTRAP: &str = "bootstrap-token-0123456789";
const EXPIRED_BOOTSTRAP: &str = "expired-bootstrap-token-0123456789";

struct Cluster {
    _etcd: EtcdServer,
    plane: ControlPlane,
    pki: Initialized,
    url: String,
    oidc_key: Vec<u8>,
}

fn tokens_yaml(admin: &str, extra: &str) -> String {
    format!(
        "- token: {admin}\n  user: admin\n  groups: [system:masters]\n\
         - token: {BOOTSTRAP}\n  user: system:bootstrap\n  groups: [system:bootstrappers]\n\
         - token: {EXPIRED_BOOTSTRAP}\n  user: system:bootstrap\n  groups: [system:bootstrappers]\n  \
         expires: 2020-01-01T00:00:00Z\n\
         - token: {ALICE}\n  user: alice\n\
         - token: {CAROL}\n  user: carol\n\
         - token: {NOBODY}\n  user: nobody\n{extra}"
    )
}

/// A P-256 key as PKCS#8 and its JWKS.
fn oidc_key() -> (Vec<u8>, Value) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .unwrap()
        .as_ref()
        .to_vec();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
    let p = pair.public_key().as_ref();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "k1",
        "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])}]});
    (pkcs8, jwks)
}

fn jwt(pkcs8: &[u8], sub: &str, exp_from_now: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    let claims = json!({"iss": ISSUER, "aud": "universal", "sub": sub,
        "groups": ["ml"], "exp": now + exp_from_now});
    encode(&h, &claims, &EncodingKey::from_ec_der(pkcs8)).unwrap()
}

async fn start(dir: &Path) -> Cluster {
    let etcd = EtcdServer::start_tls().await.expect("TLS etcd");
    let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("etcd over TLS"));
    let pki = init(&InitOptions {
        dir: dir.join("pki"),
        server_names: vec![],
        server_url: String::new(),
        context: None,
    })
    .unwrap();
    std::fs::write(
        pki.dir.join("tokens.yaml"),
        tokens_yaml(&pki.admin_token, ""),
    )
    .unwrap();
    let (oidc_key, jwks) = oidc_key();
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let mut security = pki.security();
    security.oidc = Some(OidcSettings {
        issuer: ISSUER.into(),
        audience: "universal".into(),
        jwks: jwks_path.display().to_string(),
        username_claim: "sub".into(),
        groups_claim: "groups".into(),
    });
    let config = Config {
        etcd_endpoints: vec![],
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        gateway_listen: "127.0.0.1:0".parse().unwrap(),
        gateway_url: String::new(),
        identity: "security".into(),
        lease_ttl: Duration::from_secs(2),
        node_grace: Duration::from_secs(2),
        catalog: None,
        max_commits_in_flight: 4,
        compaction_interval: std::time::Duration::from_secs(300),
        event_ttl: std::time::Duration::from_secs(3600),
        finished_ttl: None,
        starvation_after: std::time::Duration::from_secs(600),
        elastic_window: std::time::Duration::from_secs(60),
        max_watches: 10_000,
        dev: false,
        data_dir: PathBuf::new(),
        security,
    };
    let plane = ControlPlane::start(store, Arc::new(Catalog::builtin().unwrap()), &config)
        .await
        .expect("secured control plane starts");
    Cluster {
        url: format!("https://{}", plane.api_addr),
        _etcd: etcd,
        plane,
        pki,
        oidc_key,
    }
}

impl Cluster {
    fn tls(&self) -> ClientTls {
        ClientTls::from_files(Some(&self.pki.ca), None, None).unwrap()
    }

    /// A channel presenting `token` (none when `None`).
    async fn as_token(&self, token: Option<&str>) -> AuthChannel {
        let target = uni_core::client::Target {
            server: self.url.clone(),
            namespace: "default".into(),
            tls: Some(self.tls()),
            token: token.map(str::to_string),
        };
        target.connect().await.expect("TLS connection")
    }

    async fn workloads(&self, token: Option<&str>) -> WorkloadServiceClient<AuthChannel> {
        WorkloadServiceClient::new(self.as_token(token).await)
    }

    async fn access(&self, token: &str) -> AccessServiceClient<AuthChannel> {
        AccessServiceClient::new(self.as_token(Some(token)).await)
    }

    async fn bind(&self, name: &str, ns: &str, role: &str, user: &str) {
        self.access(&self.pki.admin_token)
            .await
            .create_role_binding(pb::CreateRoleBindingRequest {
                role_binding: Some(pb::RoleBinding {
                    meta: Some(pb::ObjectMeta {
                        name: name.into(),
                        namespace: ns.into(),
                        ..Default::default()
                    }),
                    role: role.into(),
                    users: vec![user.into()],
                    groups: vec![],
                }),
            })
            .await
            .expect("admin creates a role binding");
    }
}

fn create(ns: &str, name: &str) -> pb::CreateWorkloadRequest {
    pb::CreateWorkloadRequest {
        workload: Some(inference(ns, name)),
        ..Default::default()
    }
}

/// Polls `f` until it returns true, for at most [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn callers_are_authenticated_and_held_to_their_roles() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;

    // No credential, an unknown token: Unauthenticated, and nothing is written.
    let err = c
        .workloads(None)
        .await
        .create_workload(create("team-a", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = c
        .workloads(Some("not-a-real-token-at-all"))
        .await
        .create_workload(create("team-a", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // A plaintext client cannot talk to the TLS port.
    let plain = channel(&c.url.replace("https://", "http://"), None)
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        let err = WorkloadServiceClient::new(ch)
            .list_workloads(pb::ListWorkloadsRequest::default())
            .await
            .unwrap_err();
        assert_ne!(err.code(), Code::Ok);
    }

    c.bind("alice-edits", "team-a", "edit", "alice").await;
    c.bind("carol-views", "team-a", "view", "carol").await;
    c.bind("carol-edits-b", "team-b", "edit", "carol").await;

    // An editor creates in its namespace, not in another one.
    let mut alice = c.workloads(Some(ALICE)).await;
    alice
        .create_workload(create("team-a", "llm"))
        .await
        .expect("alice creates in team-a");
    let err = alice
        .create_workload(create("team-b", "llm"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("alice")
            && err.message().contains("create")
            && err.message().contains("workloads")
            && err.message().contains("team-b"),
        "the denial names who, what and where: {}",
        err.message()
    );

    // Naming the host user replicas run as is the cluster's to grant, not an editor's: on
    // create and on update, and whichever of user and group is named.
    for (user, group) in [(Some(0), None), (None, Some(1000))] {
        let mut w = inference("team-a", "as-root");
        if let Some(pb::workload::Spec::Inference(s)) = w.spec.as_mut() {
            let t = s.template.as_mut().unwrap();
            (t.run_as_user, t.run_as_group) = (user, group);
        }
        let err = alice
            .create_workload(pb::CreateWorkloadRequest {
                workload: Some(w.clone()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        let field = if user.is_some() {
            "run_as_user"
        } else {
            "run_as_group"
        };
        assert!(
            err.message().contains(field) && err.message().contains("hostidentities"),
            "{}",
            err.message()
        );
        w.meta.as_mut().unwrap().name = "llm".into();
        let err = alice
            .update_workload(pb::UpdateWorkloadRequest {
                workload: Some(w),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    let mut root_job = inference("team-a", "as-root");
    if let Some(pb::workload::Spec::Inference(s)) = root_job.spec.as_mut() {
        s.template.as_mut().unwrap().run_as_user = Some(0);
    }
    c.workloads(Some(&c.pki.admin_token))
        .await
        .create_workload(pb::CreateWorkloadRequest {
            workload: Some(root_job),
            dry_run: true,
        })
        .await
        .expect("a cluster admin may name the host user");

    // A cluster admin may grant it per namespace (role host-user); a namespace's own admin
    // may not, and the grant reaches no other namespace.
    let grant = |who: &str, ns: &str| pb::CreateRoleBindingRequest {
        role_binding: Some(pb::RoleBinding {
            meta: Some(pb::ObjectMeta {
                name: format!("{who}-host-user"),
                namespace: ns.into(),
                ..Default::default()
            }),
            role: "host-user".into(),
            users: vec![who.into()],
            groups: vec![],
        }),
    };
    c.bind("carol-admins-b", "team-b", "admin", "carol").await;
    let err = c
        .access(CAROL)
        .await
        .create_role_binding(grant("carol", "team-b"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("host-user"), "{}", err.message());
    c.access(&c.pki.admin_token)
        .await
        .create_role_binding(grant("alice", "team-a"))
        .await
        .expect("a cluster admin grants host-user");
    let as_root = |ns: &str| {
        let mut w = inference(ns, "as-root");
        if let Some(pb::workload::Spec::Inference(s)) = w.spec.as_mut() {
            s.template.as_mut().unwrap().run_as_user = Some(0);
        }
        pb::CreateWorkloadRequest {
            workload: Some(w),
            dry_run: true,
        }
    };
    alice
        .create_workload(as_root("team-a"))
        .await
        .expect("host-user names the host user in its namespace");
    // Where she only edits, she may create workloads, not name the host user.
    c.bind("alice-edits-c", "team-c", "edit", "alice").await;
    let err = alice.create_workload(as_root("team-c")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("hostidentities"),
        "{}",
        err.message()
    );

    // A viewer reads but does not write; someone bound nowhere reads nothing.
    let mut carol = c.workloads(Some(CAROL)).await;
    carol
        .get_workload(pb::GetWorkloadRequest {
            namespace: "team-a".into(),
            name: "llm".into(),
        })
        .await
        .expect("carol reads team-a");
    let err = carol
        .delete_workload(pb::DeleteWorkloadRequest {
            namespace: "team-a".into(),
            name: "llm".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    carol
        .create_workload(create("team-b", "job"))
        .await
        .expect("carol edits team-b");
    let err = c
        .workloads(Some(NOBODY))
        .await
        .get_workload(pb::GetWorkloadRequest {
            namespace: "team-a".into(),
            name: "llm".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Lists across namespaces return only what the caller may read.
    let all = pb::ListWorkloadsRequest {
        all_namespaces: true,
        ..Default::default()
    };
    let names = |r: pb::ListWorkloadsResponse| -> Vec<String> {
        let mut v: Vec<String> = r
            .workloads
            .iter()
            .map(|w| format!("{}/{}", common::meta(w).namespace, common::meta(w).name))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(
            alice
                .list_workloads(all.clone())
                .await
                .unwrap()
                .into_inner()
        ),
        ["team-a/llm"]
    );
    assert_eq!(
        names(
            carol
                .list_workloads(all.clone())
                .await
                .unwrap()
                .into_inner()
        ),
        ["team-a/llm", "team-b/job"]
    );
    let mut admin = c.workloads(Some(&c.pki.admin_token)).await;
    assert_eq!(
        names(
            admin
                .list_workloads(all.clone())
                .await
                .unwrap()
                .into_inner()
        )
        .len(),
        2
    );

    // A watch over every namespace carries only the caller's namespaces.
    let mut watch = alice
        .watch_workloads(pb::WatchWorkloadsRequest {
            all_namespaces: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    admin
        .create_workload(create("team-b", "hidden"))
        .await
        .unwrap();
    admin
        .create_workload(create("team-a", "seen"))
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, async {
        loop {
            let ev = watch.next().await.expect("watch open").expect("event");
            if let Some(w) = ev.workload {
                let m = common::meta(&w);
                if m.name != "llm" {
                    return format!("{}/{}", m.namespace, m.name);
                }
            }
        }
    })
    .await
    .expect("watch event");
    assert_eq!(
        first, "team-a/seen",
        "team-b's workload must not reach alice's watch"
    );

    // Logs of another tenant's workload are refused before anything is looked up.
    let err = LogServiceClient::new(c.as_token(Some(ALICE)).await)
        .stream_logs(pb::StreamLogsRequest {
            namespace: "team-b".into(),
            workload: "job".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A namespace editor cannot grant itself more.
    let err = c
        .access(ALICE)
        .await
        .create_role_binding(pb::CreateRoleBindingRequest {
            role_binding: Some(pb::RoleBinding {
                meta: Some(pb::ObjectMeta {
                    name: "me".into(),
                    ..Default::default()
                }),
                role: "cluster-admin".into(),
                users: vec!["alice".into()],
                groups: vec![],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // WhoAmI reports the identity and what it may do.
    let me = c
        .access(ALICE)
        .await
        .who_am_i(pb::WhoAmIRequest {
            namespace: "team-a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.user, "alice");
    assert!(
        me.allowed.contains(&"create workloads".to_string()),
        "{:?}",
        me.allowed
    );
    assert!(
        !me.allowed.contains(&"create rolebindings".to_string()),
        "{:?}",
        me.allowed
    );

    // Every mutating call, allowed or not, is in the audit log.
    let log = std::fs::read_to_string(c.pki.dir.join("audit.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |user: &str, ns: &str, result: &str| {
        lines.iter().any(|l| {
            l["user"] == user
                && l["verb"] == "create"
                && l["resource"] == "workloads"
                && l["namespace"] == ns
                && l["result"] == result
        })
    };
    assert!(has("alice", "team-a", "OK"), "{log}");
    assert!(has("alice", "team-b", "PERMISSION_DENIED"), "{log}");

    c.plane.shutdown().await;
}

#[tokio::test]
async fn certificates_and_tokens_identify_callers_and_rotate_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    c.bind("dana-edits", "team-a", "edit", "dana").await;
    c.bind("oidc-edits", "team-a", "edit", "oidc:erin").await;

    // A client certificate from the cluster CA: CN is the user.
    let ca = Ca::load(&c.pki.ca, &c.pki.dir.join("ca.key")).unwrap();
    let cert = ca
        .issue_client("dana", None, Duration::from_secs(600))
        .unwrap();
    let mut tls = c.tls();
    tls.identity = Some((cert.cert_pem.clone(), cert.key_pem.clone()));
    let ch = channel(&c.url, Some(&tls))
        .unwrap()
        .connect()
        .await
        .unwrap();
    WorkloadServiceClient::new(ch.clone())
        .create_workload(create("team-a", "by-cert"))
        .await
        .expect("dana, by certificate, edits team-a");
    let err = WorkloadServiceClient::new(ch)
        .create_workload(create("team-b", "by-cert"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A certificate from another CA does not get through the handshake.
    let rogue = Ca::generate("rogue").unwrap();
    let forged = rogue
        .issue_client("admin", Some("system:masters"), Duration::from_secs(600))
        .unwrap();
    let mut tls = c.tls();
    tls.identity = Some((forged.cert_pem, forged.key_pem));
    let refused = match channel(&c.url, Some(&tls)).unwrap().connect().await {
        Err(_) => true,
        Ok(ch) => WorkloadServiceClient::new(ch)
            .list_workloads(pb::ListWorkloadsRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "a certificate from another CA must be refused");

    // OIDC: a valid token maps to its prefixed user; expired or foreign-signed ones do not.
    let good = jwt(&c.oidc_key, "erin", 600);
    c.workloads(Some(&good))
        .await
        .create_workload(create("team-a", "by-oidc"))
        .await
        .expect("oidc:erin edits team-a");
    let expired = jwt(&c.oidc_key, "erin", -3600);
    let err = c
        .workloads(Some(&expired))
        .await
        .create_workload(create("team-a", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let (other_key, _) = oidc_key();
    let foreign = jwt(&other_key, "erin", 600);
    let err = c
        .workloads(Some(&foreign))
        .await
        .create_workload(create("team-a", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // A token added to the token file works without a restart.
    let frank = "frank-token-0123456789";
    let tokens = c.pki.dir.join("tokens.yaml");
    std::fs::write(
        &tokens,
        tokens_yaml(
            &c.pki.admin_token,
            &format!("- token: {frank}\n  user: frank\n"),
        ),
    )
    .unwrap();
    eventually("the new token is accepted", || async {
        let me = c
            .access(frank)
            .await
            .who_am_i(pb::WhoAmIRequest::default())
            .await;
        me.is_ok_and(|m| m.into_inner().user == "frank")
    })
    .await;

    // The server certificate is replaced by one from a new CA: new connections get it.
    let new_ca = Ca::generate("new-ca").unwrap();
    let new_ca_path = dir.path().join("new-ca.crt");
    std::fs::write(&new_ca_path, new_ca.cert_pem()).unwrap();
    new_ca
        .issue_server(
            "uni-scheduler",
            &["127.0.0.1".into()],
            Duration::from_secs(600),
        )
        .unwrap()
        .write(&c.pki.dir.join("server.crt"), &c.pki.dir.join("server.key"))
        .unwrap();
    let trusts_new = ClientTls::from_files(Some(&new_ca_path), None, None).unwrap();
    let admin = c.pki.admin_token.clone();
    eventually("the rotated certificate is served", || {
        let url = c.url.clone();
        let tls = trusts_new.clone();
        let admin = admin.clone();
        async move {
            let target = uni_core::client::Target {
                server: url,
                namespace: "default".into(),
                tls: Some(tls),
                token: Some(admin),
            };
            match target.connect().await {
                Ok(ch) => AccessServiceClient::new(ch)
                    .who_am_i(pb::WhoAmIRequest::default())
                    .await
                    .is_ok(),
                Err(_) => false,
            }
        }
    })
    .await;

    c.plane.shutdown().await;
}

/// Credentials of node `name` joining with the bootstrap token (files under `dir`).
fn node_credentials(c: &Cluster, dir: &Path, name: &str) -> NodeCredentials {
    let token = dir.join(format!("{name}.bootstrap"));
    std::fs::write(&token, BOOTSTRAP).unwrap();
    NodeCredentials {
        server: c.url.clone(),
        ca: c.pki.ca.clone(),
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
        bootstrap_token_file: Some(token),
        node: name.into(),
    }
}

fn refused(r: uni_core::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

#[tokio::test]
async fn a_node_credential_reaches_only_its_own_keys() {
    use uni_core::model::{Allocation, Node, ReplicaStatus};
    use uni_core::store::keys::{
        AllocationKey, NodeKey, RoleBindingKey, StatusKey, TypedKey, WorkloadKey,
    };
    use uni_core::store::{codec, RangeOptions, RemoteStore, Txn, TxnOp};

    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;

    // Join with the bootstrap token: the CA names the node whatever the CSR says.
    let n1 = node_credentials(&c, dir.path(), "n1");
    n1.ensure().await.expect("n1 joins");
    let info =
        uni_core::tls::pki::cert_info_pem(&std::fs::read_to_string(&n1.cert).unwrap()).unwrap();
    assert_eq!(info.common_name, "system:node:n1");
    assert_eq!(info.organizations, ["system:nodes"]);
    // Its only server name is under the nodes' domain: never the API's.
    assert_eq!(info.server_names, ["n1.nodes.universal.internal"]);
    let store = RemoteStore::new(n1.connect().await.unwrap());

    // Its own node key, under a lease it holds.
    let lease = store.lease_grant(Duration::from_secs(30)).await.unwrap();
    let own = NodeKey::new("n1").unwrap().format();
    let mut node = Node::default();
    node.meta.name = "n1".into();
    store
        .put(&own, codec::encode(&node).unwrap(), lease)
        .await
        .expect("n1 writes its node");
    store
        .lease_keep_alive(lease)
        .await
        .expect("n1 renews its lease");
    assert!(store.get(&own).await.unwrap().is_some());

    // Another node's keys, the fleet, workloads it does not run, other collections: refused.
    let n2 = NodeKey::new("n2").unwrap().format();
    node.meta.name = "n2".into();
    let msg = refused(store.put(&n2, codec::encode(&node).unwrap(), 0).await);
    assert!(msg.contains("may not"), "{msg}");
    refused(store.put(&own, codec::encode(&node).unwrap(), 0).await);
    refused(store.get(&n2).await);
    refused(
        store
            .range(&NodeKey::prefix(), RangeOptions::default())
            .await,
    );
    assert!(store
        .watch(&AllocationKey::node_prefix("n2"), 0)
        .await
        .is_err());
    refused(
        store
            .range(&RoleBindingKey::prefix(), RangeOptions::default())
            .await,
    );
    refused(
        store
            .get(&WorkloadKey::new("team-a", "w").unwrap().format())
            .await,
    );
    refused(store.compact(1).await);
    let admin_lease = {
        // A lease granted to someone else cannot be renewed or revoked by n1.
        let n2c = node_credentials(&c, dir.path(), "n2");
        n2c.ensure().await.expect("n2 joins");
        let other = RemoteStore::new(n2c.connect().await.unwrap());
        other.lease_grant(Duration::from_secs(30)).await.unwrap()
    };
    refused(store.lease_keep_alive(admin_lease).await);
    refused(store.lease_revoke(admin_lease).await);
    // A prefix range of its own node key does not leak n10.
    let n10 = NodeKey::new("n10").unwrap().format();
    let etcd_store = c._etcd.store().await.unwrap();
    node.meta.name = "n10".into();
    etcd_store
        .put(&n10, codec::encode(&node).unwrap(), 0)
        .await
        .unwrap();
    let seen = store.range(&own, RangeOptions::default()).await.unwrap();
    assert_eq!(
        seen.kvs
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        [own.as_str()]
    );

    // Replicas: status only for its own allocations, and the workload only while it runs it.
    // The node registers as ready, a workload is created, and the scheduler places it there.
    let wkey = WorkloadKey::new("team-a", "w").unwrap().format();
    refused(store.get(&wkey).await);
    let mut node = Node::default();
    node.meta.name = "n1".into();
    let capacity = uni_core::model::ResourceAmounts {
        compute_milli: 8000,
        memory_bytes: 32 << 30,
        ..Default::default()
    };
    node.status.capacity = capacity;
    node.status.allocatable = capacity;
    node.status.ready = true;
    store
        .put(&own, codec::encode(&node).unwrap(), lease)
        .await
        .unwrap();
    c.workloads(Some(&c.pki.admin_token))
        .await
        .create_workload(create("team-a", "w"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let alloc_id = loop {
        let r = store
            .range(&AllocationKey::node_prefix("n1"), RangeOptions::default())
            .await
            .expect("n1 lists its allocations");
        if let Some(kv) = r.kvs.first() {
            break codec::decode::<Allocation>(&kv.key, &kv.value).unwrap().id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workload was not placed on n1"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(store.get(&wkey).await.expect("n1 runs team-a/w").is_some());
    let skey = StatusKey::new("team-a", "w", 0u32).unwrap().format();
    let mine = ReplicaStatus {
        allocation_id: alloc_id.clone(),
        node: "n1".into(),
        ..Default::default()
    };
    store
        .put(&skey, codec::encode(&mine).unwrap(), 0)
        .await
        .expect("n1 reports its replica");
    let forged = ReplicaStatus {
        allocation_id: alloc_id.clone(),
        node: "n2".into(),
        ..Default::default()
    };
    refused(store.put(&skey, codec::encode(&forged).unwrap(), 0).await);
    let unallocated = ReplicaStatus {
        allocation_id: "zz".into(),
        node: "n1".into(),
        ..Default::default()
    };
    let other_skey = StatusKey::new("team-b", "x", 0u32).unwrap().format();
    refused(
        store
            .put(&other_skey, codec::encode(&unallocated).unwrap(), 0)
            .await,
    );
    refused(
        store
            .txn(Txn::new().and_then([TxnOp::delete(wkey.clone())]))
            .await,
    );

    // Joining again under a registered name, or without a bootstrap token, is refused.
    std::fs::create_dir_all(dir.path().join("again")).unwrap();
    let again = node_credentials(&c, &dir.path().join("again"), "n1");
    let msg = again.ensure().await.unwrap_err().to_string();
    assert!(msg.contains("registered"), "{msg}");
    let mut no_token = node_credentials(&c, dir.path(), "n3");
    std::fs::write(no_token.bootstrap_token_file.as_ref().unwrap(), ALICE).unwrap();
    no_token.cert = dir.path().join("n3-alice.crt");
    let msg = no_token.ensure().await.unwrap_err().to_string();
    assert!(msg.contains("may not join"), "{msg}");
    std::fs::write(
        no_token.bootstrap_token_file.as_ref().unwrap(),
        EXPIRED_BOOTSTRAP,
    )
    .unwrap();
    no_token.cert = dir.path().join("n3-expired.crt");
    let msg = no_token.ensure().await.unwrap_err().to_string();
    assert!(msg.contains("expired at 2020-01-01T00:00:00Z"), "{msg}");

    // Renewal replaces the certificate; the new one works.
    let before = std::fs::read_to_string(&n1.cert).unwrap();
    n1.renew().await.expect("n1 renews its certificate");
    assert_ne!(std::fs::read_to_string(&n1.cert).unwrap(), before);
    store.replace_channel(n1.connect().await.unwrap());
    assert!(store.get(&own).await.unwrap().is_some());

    // A user credential is not a node's.
    let target = uni_core::client::Target {
        server: c.url.clone(),
        namespace: "default".into(),
        tls: Some(c.tls()),
        token: Some(ALICE.into()),
    };
    let as_alice = RemoteStore::new(target.connect().await.unwrap());
    refused(as_alice.revision().await);

    c.plane.shutdown().await;
}

/// An HTTPS client that trusts the cluster CA, speaking HTTP/1.1 or (by ALPN) HTTP/2.
fn https_client(
    ca: &Path,
) -> hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<bytes::Bytes>,
> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in uni_core::tls::pem::load_certs(ca).unwrap() {
        roots.add(cert).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(uni_core::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_all_versions()
        .build();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https)
}

#[tokio::test]
async fn the_gateway_holds_callers_to_the_api_rules_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    c.bind("alice-edits", "team-a", "edit", "alice").await;
    let w = c
        .workloads(Some(ALICE))
        .await
        .create_workload(create("team-a", "llm"))
        .await
        .expect("alice creates in team-a")
        .into_inner();
    let gateway = format!("https://{}", c.plane.gateway_addr);
    assert_eq!(
        w.status.unwrap_or_default().endpoint,
        format!("{gateway}/team-a/llm/"),
        "the service's endpoint is under the gateway"
    );

    let client = https_client(&c.pki.ca);
    let call = |path: &str, token: Option<&str>| {
        let mut req = http::Request::get(format!("{gateway}{path}"));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(http_body_util::Empty::new()).unwrap();
        let client = client.clone();
        async move {
            let resp = tokio::time::timeout(WAIT, client.request(req))
                .await
                .expect("gateway answers")
                .expect("response");
            let version = resp.version();
            let code = resp.status();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            (code, version, String::from_utf8_lossy(&body).into_owned())
        }
    };

    let (code, _, body) = call("/team-a/llm/v1/models", None).await;
    assert_eq!(code, http::StatusCode::UNAUTHORIZED, "{body}");
    let (code, _, _) = call("/team-a/llm/v1/models", Some("not-a-real-token-at-all")).await;
    assert_eq!(code, http::StatusCode::UNAUTHORIZED);
    let (code, _, body) = call("/team-b/llm/v1/models", Some(ALICE)).await;
    assert_eq!(code, http::StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("alice"), "{body}");
    let (code, _, body) = call("/team-a/llm/v1/models", Some(NOBODY)).await;
    assert_eq!(code, http::StatusCode::FORBIDDEN, "{body}");
    // Past the checks: the service exists and has no replica yet. ALPN chose HTTP/2.
    let (code, version, body) = call("/team-a/llm/v1/models", Some(ALICE)).await;
    assert_eq!(code, http::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("no ready replica"), "{body}");
    assert_eq!(version, http::Version::HTTP_2);

    // Plain HTTP on the TLS port gets no answer from a service.
    let mut plain = tokio::net::TcpStream::connect(c.plane.gateway_addr)
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    plain
        .write_all(b"GET /team-a/llm/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut got)).await;
    assert!(
        !String::from_utf8_lossy(&got).contains("HTTP/1.1 "),
        "plaintext was served"
    );
}
