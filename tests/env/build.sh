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
# Tools the chart and dashboard tests use (not part of the running environment).
HELM_VERSION="${HELM_VERSION:-v4.3.2}"
# Prometheus 3.x ships from v0.3xx module tags; v0.316.0 is Prometheus 3.16.0.
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
GRAFANA_SDK_VERSION="${GRAFANA_SDK_VERSION:-v0.0.22}"

CACHE="${PODTRACE_CACHE:-$HOME/.cache/podtrace}"
HERE="$(cd "$(dirname "$0")" && pwd)"
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

build_helm() {
  local v=$1 out=$2
  mkdir -p "$out"
  # Without the version ldflag `helm version` reports the bare major.minor.
  GOBIN="$out" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$v -X helm.sh/helm/v4/internal/version.metadata=" \
    "helm.sh/helm/v4/cmd/helm@$v"
}

build_prometheus() {
  local v=$1 out=$2
  # The tests scrape static targets only: remove_all_sd leaves out the cloud service
  # discovery plugins (AWS, Azure, GCE, Kubernetes, ...) and most of the build. Without the
  # builtinassets tag the web UI is not embedded; the HTTP API, all the tests use, works.
  # Module tag v0.3MM.P is release 3.MM.P; the version shows in the build info metric.
  local n=${v#v0.}; local semver="3.$(( ${n%%.*} - 300 )).${n#*.}"
  local p=github.com/prometheus/common/version
  mkdir -p "$out"
  GOBIN="$out" go install -trimpath -tags remove_all_sd \
    -ldflags "-s -w -X $p.Version=$semver -X $p.Branch=HEAD -X $p.Revision=$v" \
    "github.com/prometheus/prometheus/cmd/prometheus@$v"
}

# A small checker (tests/env/dashboard-check) that strictly decodes Grafana dashboard JSON
# into grafana-foundation-sdk's types; built into its own module pinned to the SDK version.
build_dashboard_check() {
  local v=$1 out=$2
  cp "$HERE/dashboard-check/main.go" .
  printf 'module podtrace.dev/testenv/dashboardcheck\ngo 1.26\nrequire github.com/grafana/grafana-foundation-sdk/go %s\n' "$v" >go.mod
  go mod tidy -e
  mkdir -p "$out"
  go build -trimpath -ldflags "-s -w" -o "$out/dashboard-check" .
}

# component NAME: "<cache name> <version key> <build function>" of a component.
component() {
  case $1 in
    kubernetes) echo "kubernetes $K8S_VERSION build_kubernetes" ;;
    etcd) echo "etcd $ETCD_VERSION build_etcd" ;;
    kwok) echo "kwok $KWOK_VERSION build_kwok" ;;
    jaeger) echo "jaeger $JAEGER_VERSION build_jaeger" ;;
    helm) echo "helm $HELM_VERSION build_helm" ;;
    prometheus) echo "prometheus $PROMETHEUS_VERSION build_prometheus" ;;
    # Keyed by the SDK version and a hash of the checker's source, so editing it rebuilds.
    dashboard-check)
      echo "dashboard-check $GRAFANA_SDK_VERSION-$(sha256sum "$HERE/dashboard-check/main.go" | cut -c1-12) build_dashboard_check" ;;
    *) return 1 ;;
  esac
}

main() {
  # --path NAME: prints the component's bin directory (what tests run); exit status 1 when
  # it has not been built.
  if [[ ${1:-} == --path ]]; then
    local name version
    read -r name version _ < <(component "${2:-}") || { log "unknown component: ${2:-}"; return 2; }
    echo "$CACHE/$name-$version/bin"
    [[ -f "$CACHE/$name-$version/.complete" ]]
    return
  fi
  mkdir -p "$CACHE"
  local want=("$@")
  [[ ${#want[@]} -eq 0 ]] && want=(etcd kwok jaeger kubernetes helm prometheus dashboard-check)
  local rc=0 name version fn
  for c in "${want[@]}"; do
    if ! read -r name version fn < <(component "$c"); then
      log "unknown component: $c"; rc=2; continue
    fi
    done_or_build "$name" "$version" "$fn" || rc=1
  done
  return $rc
}

main "$@"
