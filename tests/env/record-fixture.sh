#!/usr/bin/env bash
# Records the fixture set in tests/fixtures/recorded/ (see its README.md): runs a fixed
# scenario on the test cluster while tests/env/record.sh captures the watch streams.
# Usage: tests/env/record-fixture.sh [OUT_DIR]   (default tests/fixtures/recorded)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
out=${1:-$REPO_ROOT/tests/fixtures/recorded}
export KUBECONFIG="${KUBECONFIG:-$KUBECONFIG_ADMIN}"
NS=shop
k() { kubectl "$@" 2>/dev/null; }

# wait_cond WHAT TIMEOUT CMD...: bounded polling; fails naming WHAT.
wait_cond() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.3
  done
}

if k get ns "$NS" >/dev/null; then
  log "deleting namespace $NS left from an earlier run"
  k delete ns "$NS" --wait=false >/dev/null
  wait_cond "namespace $NS to go away" 120 bash -c "! kubectl get ns $NS 2>/dev/null"
fi
k label node kwok-node-3 podtrace.dev/pool- >/dev/null || true

tmp=$(mktemp -d)
PODTRACE_RECORD_NAMESPACE=$NS "$ENV_SRC/record.sh" "$tmp" &
rec=$!
trap 'kill -TERM $rec 2>/dev/null || true' EXIT
sleep 2 # let the four watches finish their initial lists before the scenario starts

k create namespace "$NS" >/dev/null
wait_cond "default ServiceAccount in $NS" 30 k get sa default -n "$NS"

kubectl apply -n "$NS" -f - >/dev/null 2>&1 <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 5
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations:
        podtrace.dev/testenv-cached-images: "busybox:1.36,prom/statsd-exporter:v0.27.0"
        podtrace.dev/testenv-pull-duration: "1200ms"
    spec:
      initContainers:
      - {name: migrate, image: "busybox:1.36"}
      containers:
      - {name: app, image: "nginx:1.27"}
      - {name: metrics, image: "prom/statsd-exporter:v0.27.0"}
---
apiVersion: v1
kind: Pod
metadata:
  name: bad-pull
  labels: {app: bad-pull}
  annotations: {podtrace.dev/testenv-image-pull: fail}
spec:
  containers:
  - {name: app, image: "registry.example.com/team/app:does-not-exist"}
---
apiVersion: v1
kind: Pod
metadata:
  name: crashy
  labels: {app: crashy}
  annotations: {podtrace.dev/testenv-crash: "true"}
spec:
  containers:
  - {name: app, image: "busybox:1.36"}
---
apiVersion: v1
kind: Pod
metadata:
  name: needs-gpu
  labels: {app: needs-gpu}
spec:
  nodeSelector: {podtrace.dev/pool: gpu}
  containers:
  - {name: app, image: "nvidia/cuda:12.4.1-base-ubuntu22.04"}
---
apiVersion: v1
kind: Pod
metadata:
  name: short-lived
  labels: {app: short-lived}
  annotations: {podtrace.dev/testenv-pull-duration: "8s"}
spec:
  containers:
  - {name: app, image: "python:3.13-slim"}
YAML

wait_cond "FailedScheduling of needs-gpu" 30 bash -c \
  "kubectl get events -n $NS --field-selector involvedObject.name=needs-gpu,reason=FailedScheduling -o name 2>/dev/null | grep -q ."
sleep 2
k label node kwok-node-3 podtrace.dev/pool=gpu >/dev/null
wait_cond "short-lived pulling" 30 bash -c \
  "kubectl get events -n $NS --field-selector involvedObject.name=short-lived,reason=Pulling -o name 2>/dev/null | grep -q ."
k delete pod -n "$NS" short-lived --wait=false >/dev/null

ready_count() {
  kubectl get pods -n "$NS" -l app=web -o json 2>/dev/null |
    jq -e '[.items[] | select(.status.conditions // [] | any(.type == "Ready" and .status == "True"))] | length == 5'
}
wait_cond "5 Ready web pods" 60 ready_count
wait_cond "needs-gpu Ready" 60 bash -c \
  "kubectl get pod -n $NS needs-gpu -o json 2>/dev/null | jq -e '.status.conditions // [] | any(.type == \"Ready\" and .status == \"True\")'"
wait_cond "bad-pull in ImagePullBackOff" 60 bash -c \
  "kubectl get pod -n $NS bad-pull -o json 2>/dev/null | jq -e '.status.containerStatuses[0].state.waiting.reason == \"ImagePullBackOff\"'"
wait_cond "crashy restarted twice" 60 bash -c \
  "kubectl get pod -n $NS crashy -o json 2>/dev/null | jq -e '.status.containerStatuses[0].restartCount >= 2'"
wait_cond "short-lived gone" 60 bash -c "! kubectl get pod -n $NS short-lived 2>/dev/null"
sleep 2 # trailing events

kill -TERM $rec; wait $rec || true
trap - EXIT
mkdir -p "$out"
for f in pods events events.k8s.io nodes; do cp "$tmp/$f.json" "$out/$f.json"; done
rm -rf "$tmp"
log "fixture recorded in $out: $(for f in pods events events.k8s.io nodes; do printf '%s=%s ' $f "$(jq -s length "$out/$f.json")"; done)"
