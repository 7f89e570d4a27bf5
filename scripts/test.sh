#!/usr/bin/env bash
# Runs Universal's whole test suite. Tests start their own etcd on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo test --workspace --all-targets "$@"
