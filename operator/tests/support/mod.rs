//! Test harness for the operator: a real kube-apiserver (built from the official Go
//! modules by `scripts/k8s-bins.sh`), a real uni-scheduler on a real etcd, simulated agents,
//! and the operator binary itself.
#![allow(dead_code, unused_imports)]

pub mod bins;
pub mod kube_api;
pub mod operator;
pub mod universal;
pub mod wait;

use std::path::PathBuf;

use kube::Client;

pub use kube_api::KubeApiServer;
pub use operator::Operator;
pub use universal::Universal;
pub use wait::eventually;

/// Everything at once: Kubernetes with the CRDs installed, Universal with simulated nodes,
/// and no operator yet (tests start as many as they need).
pub struct Cluster {
    pub kube: KubeApiServer,
    pub universal: Universal,
    pub client: Client,
    logs: PathBuf,
    keep_logs: bool,
}

impl Cluster {
    pub async fn start() -> Self {
        let (kube, universal) = tokio::join!(KubeApiServer::start(), Universal::start());
        kube.install_crds().await;
        let client = kube.client().await;
        // UNIVERSAL_TEST_LOG_DIR keeps the operators' logs after the test.
        let logs = match std::env::var("UNIVERSAL_TEST_LOG_DIR") {
            Ok(dir) => {
                std::fs::create_dir_all(&dir).expect("log dir");
                tempfile::Builder::new()
                    .prefix("uni-operator-logs-")
                    .tempdir_in(dir)
                    .expect("log dir")
                    .keep()
            }
            Err(_) => tempfile::Builder::new()
                .prefix("uni-operator-logs-")
                .tempdir()
                .expect("log dir")
                .keep(),
        };
        Self {
            kube,
            universal,
            client,
            logs,
            keep_logs: std::env::var_os("UNIVERSAL_TEST_LOG_DIR").is_some(),
        }
    }

    pub fn operator(&self, identity: &str) -> Operator {
        Operator::start(
            &self.kube.kubeconfig,
            &self.universal.api,
            self.universal.credentials(),
            identity,
            &self.logs,
        )
    }

    pub fn log_dir(&self) -> PathBuf {
        self.logs.clone()
    }

    /// Creates a namespace (kubectl, as a user would).
    pub async fn namespace(&self, name: &str) {
        self.kube
            .kubectl_ok(&["create", "namespace", name], None)
            .await;
    }

    pub async fn apply(&self, yaml: &str) -> String {
        self.kube
            .kubectl_ok(&["apply", "-f", "-"], Some(yaml))
            .await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.keep_logs {
            let _ = std::fs::remove_dir_all(&self.logs);
        }
    }
}
