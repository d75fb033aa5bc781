#!/usr/bin/env bash
# Builds the real components the test environment runs, from Go modules, into a
# cache outside the repository keyed by version, so a second run is a no-op.
# Usage: tests/env/build.sh [component...]   (default: all)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
# Jaeger v2 ships from the v1.x module tags; v1.76.0 is Jaeger v2.13.
JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"

CACHE="${PODTRACE_CACHE:-$HOME/.cache/podtrace}"
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local

log() { printf '[build] %s\n' "$*" >&2; }

# done_or_build NAME VERSION FUNC: runs FUNC into a temp dir, then moves it into
# place, so an interrupted build never leaves a half-filled cache entry.
done_or_build() {
  local name=$1 version=$2 fn=$3
  local dest="$CACHE/$name-$version"
  if [[ -f "$dest/.complete" ]]; then
    log "$name $version: cached in $dest"
    return 0
  fi
  local work; work=$(mktemp -d "$CACHE/.build-$name-XXXXXX")
  log "$name $version: building (log: $work/build.log)"
  local start=$SECONDS
  if ! ( cd "$work" && "$fn" "$version" "$work/bin" ) >"$work/build.log" 2>&1; then
    log "$name $version: FAILED; last lines of $work/build.log:"
    tail -n 30 "$work/build.log" >&2
    return 1
  fi
  rm -rf "$dest"
  mkdir -p "$dest"
  mv "$work/bin" "$dest/bin"
  mv "$work/build.log" "$dest/build.log"
  echo "$((SECONDS - start))" >"$dest/build-seconds"
  touch "$dest/.complete"
  rm -rf "$work"
  log "$name $version: built in $((SECONDS - start))s"
}

build_kubernetes() {
  local v=$1 out=$2 minor
  minor=${v#v1.}; minor=${minor%%.*}
  local staging_v="v0.${v#v1.}"
  local staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
    cloud-provider cluster-bootstrap code-generator component-base component-helpers
    controller-manager cri-api cri-client cri-streaming csi-translation-lib
    dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
    kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils
    pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming)
  {
    echo "module podtrace.dev/testenv/kubernetes"
    echo "go 1.26"
    echo "require k8s.io/kubernetes $v"
    for m in "${staging[@]}"; do echo "replace k8s.io/$m => k8s.io/$m $staging_v"; done
  } >go.mod
  cat >tools.go <<'GO'
//go:build tools
package tools
import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  go mod tidy -e
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  mkdir -p "$out"
  go build -trimpath -ldflags "$ld" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler
}

build_etcd() {
  local v=$1 out=$2
  printf 'module podtrace.dev/testenv/etcd\ngo 1.26\nrequire go.etcd.io/etcd/server/v3 %s\n' "$v" >go.mod
  printf '//go:build tools\npackage tools\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n' >tools.go
  # etcd's own main lives in the etcd/v3 root module; etcdmain.Main is what it calls.
  mkdir -p cmd/etcd
  cat >cmd/etcd/main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go mod tidy -e
  mkdir -p "$out"
  go build -trimpath -ldflags "-s -w" -o "$out/etcd" ./cmd/etcd
}

build_kwok() {
  local v=$1 out=$2
  mkdir -p "$out"
  GOBIN="$out" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$v"
  # The stage sets KWOK ships are read from the module cache by our own stages' docs.
  local src; src=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$v
  mkdir -p "$out/../stage"; cp -r "$src/kustomize/stage/." "$out/../stage/" 2>/dev/null || true
}

build_jaeger() {
  local v=$1 out=$2
  # Jaeger's go.mod replaces sarama, which `go install pkg@version` refuses; a wrapper
  # module carrying the same replace builds the identical binary.
  printf 'module podtrace.dev/testenv/jaeger\ngo 1.26\nrequire github.com/jaegertracing/jaeger %s\nreplace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0\n' "$v" >go.mod
  printf '//go:build tools\npackage tools\nimport _ "github.com/jaegertracing/jaeger/cmd/jaeger"\n' >tools.go
  # The checksum database behind this proxy does not know many OpenTelemetry Collector
  # module versions (404); Jaeger's own go.sum already pins every one of them, so seeding
  # ours with it keeps verification on without needing those lookups.
  go mod download "github.com/jaegertracing/jaeger@$v"
  cp "$(go env GOMODCACHE)/github.com/jaegertracing/jaeger@$v/go.sum" go.sum
  chmod u+w go.sum
  go mod tidy -e
  mkdir -p "$out"
  go build -trimpath -ldflags "-s -w" -o "$out/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
}

main() {
  mkdir -p "$CACHE"
  local want=("$@")
  [[ ${#want[@]} -eq 0 ]] && want=(etcd kwok jaeger kubernetes)
  local rc=0
  for c in "${want[@]}"; do
    case $c in
      kubernetes) done_or_build kubernetes "$K8S_VERSION" build_kubernetes || rc=1 ;;
      etcd) done_or_build etcd "$ETCD_VERSION" build_etcd || rc=1 ;;
      kwok) done_or_build kwok "$KWOK_VERSION" build_kwok || rc=1 ;;
      jaeger) done_or_build jaeger "$JAEGER_VERSION" build_jaeger || rc=1 ;;
      *) log "unknown component: $c"; rc=2 ;;
    esac
  done
  return $rc
}

main "$@"
