#!/usr/bin/env bash
# Quick start: builds Universal, starts dev mode (control plane + an agent for this machine, on
# an embedded store, no etcd), applies the examples and shows them running. Dev mode serves
# TLS on loopback with a CA and admin token of its own, and writes the unictl context "dev".
# Stop it with: kill $(cat "$DATA/dev.pid")
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${UNIVERSAL_DATA_DIR:-$HOME/.local/share/universal/dev}"

scripts/install-deps.sh
cargo build --release -p uni-scheduler -p uni-agent -p unictl
BIN="$PWD/target/release"

mkdir -p "$DATA"
if [ -f "$DATA/dev.pid" ] && kill -0 "$(cat "$DATA/dev.pid")" 2>/dev/null; then
  echo "dev mode already running (pid $(cat "$DATA/dev.pid"))"
else
  "$BIN/uni-scheduler" --dev --data-dir "$DATA" >"$DATA/dev.out" 2>"$DATA/dev.log" &
  echo $! >"$DATA/dev.pid"
  # Wait until the API answers, at most 30 s.
  for _ in $(seq 1 300); do
    "$BIN/unictl" --context dev get nodes >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "$DATA/dev.pid")" 2>/dev/null; then
      echo "dev mode failed to start; see $DATA/dev.log" >&2
      exit 1
    fi
    sleep 0.1
  done
fi

"$BIN/unictl" --context dev apply -f examples/
# Give the replicas a moment to start before showing them.
sleep 3
"$BIN/unictl" --context dev get nodes
echo
"$BIN/unictl" --context dev get workloads -o wide
cat <<EOT

Universal is running in dev mode (data in $DATA, log in $DATA/dev.log).
Try:
  export PATH="$BIN:\$PATH"
  unictl describe workload hello
  unictl get isvc
  curl --cacert "$DATA/pki/ca.crt" -H "Authorization: Bearer \$(cat "$DATA/pki/admin.token")" https://127.0.0.1:7080/default/hello/
  unictl logs pair
  unictl scale workload/hello --replicas 3
  unictl delete -f examples/hello-inference.yaml
Stop it: kill \$(cat "$DATA/dev.pid")
EOT
