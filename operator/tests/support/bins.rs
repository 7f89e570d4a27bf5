//! Where the tests find the programs they run: Kubernetes binaries built by
//! `scripts/k8s-bins.sh`, and `uni-scheduler` built from this workspace.

use std::path::PathBuf;
use std::process::Command;

/// The Kubernetes release the tests run, shared with `scripts/k8s-bins.sh`.
pub const K8S_VERSION: &str = include_str!("../../../scripts/k8s-version");

/// Directory with kube-apiserver and kubectl: `UNIVERSAL_K8S_BIN_DIR`, else the cache the
/// build script fills.
pub fn k8s_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("UNIVERSAL_K8S_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var("UNIVERSAL_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|_| {
                    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                        .join(".cache")
                })
                .join("universal")
        });
    cache
        .join(format!("k8s-{}", K8S_VERSION.trim()))
        .join("bin")
}

/// A Kubernetes binary; fails the test, saying how to build it, when it is missing.
pub fn k8s_bin(name: &str) -> PathBuf {
    let path = k8s_bin_dir().join(name);
    assert!(
        path.is_file(),
        "{name} not found at {}: the operator tests run a real Kubernetes API server. Build it \
         (once; cached outside the repository) with `scripts/k8s-bins.sh`, or point \
         UNIVERSAL_K8S_BIN_DIR at a directory holding kube-apiserver and kubectl {}.",
        path.display(),
        K8S_VERSION.trim(),
    );
    path
}

/// The `uni-scheduler` binary: `UNIVERSAL_SCHEDULER_BIN`, else built now by cargo (a no-op
/// when it is up to date) so the tests never run a stale one.
pub fn scheduler_bin() -> PathBuf {
    if let Ok(p) = std::env::var("UNIVERSAL_SCHEDULER_BIN") {
        return PathBuf::from(p);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "uni-scheduler",
            "--bin",
            "uni-scheduler",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo build for uni-scheduler");
    assert!(
        out.status.success(),
        "building uni-scheduler failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported the uni-scheduler executable")
}
