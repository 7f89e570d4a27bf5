#!/usr/bin/env bash
# Runs Universal's whole test suite. Installs what the tests need first (protoc, etcd, and the
# Kubernetes API server built from its Go modules, cached outside the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/k8s-bins.sh >/dev/null
cargo test --workspace --all-targets "$@"
