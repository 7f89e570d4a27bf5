#!/usr/bin/env bash
# Builds the Kubernetes binaries the operator tests run (kube-apiserver and kubectl) from the
# official Go modules, without Docker, and caches them outside the repository keyed by version.
#
# Why a throwaway module: k8s.io/kubernetes requires its staging modules (k8s.io/api, ...) at
# v0.0.0 and points them at ./staging with `replace`, which a dependent module ignores, so
# `go install k8s.io/kubernetes/cmd/kube-apiserver@vX` is refused. A module of our own requires
# k8s.io/kubernetes at the release and replaces every staging module with its published
# v0.<minor>.<patch>; the staging list is read from the release's own go.mod.
#
# Prints the bin directory on stdout. Idempotent: a warm cache returns at once.
#   K8S_VERSION          release to build (default: scripts/k8s-version, which tests read too)
#   UNIVERSAL_CACHE_DIR  cache root (default ${XDG_CACHE_HOME:-~/.cache}/universal)
# Tests find the binaries in the same place, or through UNIVERSAL_K8S_BIN_DIR.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-$(tr -d '[:space:]' <"$(dirname "$0")/k8s-version")}"
CACHE="${UNIVERSAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/universal}"
OUT="$CACHE/k8s-$K8S_VERSION"
BIN="$OUT/bin"
BINARIES=(kube-apiserver kubectl)

complete() {
  [ -f "$OUT/.complete" ] || return 1
  for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done
}

# The tests make service-account keys for kube-apiserver with openssl.
if ! command -v openssl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openssl >/dev/null
fi

if complete; then
  echo "$BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "k8s-bins: 'go' not found; install Go 1.26+ (https://go.dev/dl) to build kube-apiserver" >&2
  exit 1
fi

mkdir -p "$OUT"
# One builder at a time; a second caller waits, then finds the cache warm.
exec 9>"$OUT/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if complete; then
  echo "$BIN"
  exit 0
fi

export GOMODCACHE="${GOMODCACHE:-$CACHE/go/mod}"
export GOCACHE="${GOCACHE:-$CACHE/go/build}"
export CGO_ENABLED=0
export GOFLAGS=-mod=mod

ver="${K8S_VERSION#v}"
major="${ver%%.*}"
rest="${ver#*.}"
minor="${rest%%.*}"
patch="${rest#*.}"
staging_version="v0.$minor.$patch"

src="$OUT/src"
rm -rf "$src"
mkdir -p "$src" "$BIN"
cd "$src"

echo "k8s-bins: resolving k8s.io/kubernetes@$K8S_VERSION" >&2
release_mod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
if [ -z "$release_mod" ] || [ ! -f "$release_mod" ]; then
  echo "k8s-bins: could not download k8s.io/kubernetes@$K8S_VERSION's go.mod" >&2
  exit 1
fi
go_directive="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$release_mod" | head -n1)"
have="$(go env GOVERSION | sed 's/^go//')"
if [ "$(printf '%s\n%s\n' "$go_directive" "$have" | sort -V | head -n1)" != "$go_directive" ]; then
  echo "k8s-bins: Kubernetes $K8S_VERSION needs Go $go_directive or newer; found $have" >&2
  exit 1
fi
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$release_mod" | sort -u)
if [ ${#staging[@]} -eq 0 ]; then
  echo "k8s-bins: no staging modules found in $release_mod" >&2
  exit 1
fi

{
  echo "module universal.dev/k8sbins"
  echo
  echo "go $go_directive"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do echo "	$m => $m $staging_version"; done
  echo ")"
} >go.mod

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

start=$(date +%s)
for b in "${BINARIES[@]}"; do
  echo "k8s-bins: building $b $K8S_VERSION (CGO_ENABLED=0; several minutes on a cold cache)" >&2
  nice -n 15 go build -trimpath -ldflags "$ldflags" -o "$BIN/$b" "k8s.io/kubernetes/cmd/$b"
done
echo "k8s-bins: built ${BINARIES[*]} in $(($(date +%s) - start))s into $BIN" >&2
touch "$OUT/.complete"
echo "$BIN"
