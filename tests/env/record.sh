#!/usr/bin/env bash
# Records Pod, Event (core/v1 and events.k8s.io/v1) and Node watch streams from the test
# cluster in the format `podtrace replay` reads: what `kubectl get --watch
# --output-watch-events -o json` writes, a sequence of {"type": ..., "object": ...} JSON
# values. Each stream starts with the current objects (as ADDED) and then follows changes.
#
# Usage: tests/env/record.sh OUT_DIR [SECONDS]
#   Without SECONDS it records until interrupted (Ctrl-C / SIGTERM).
#   Writes OUT_DIR/{pods,events,events.k8s.io,nodes}.json; kubectl's stderr goes to
#   OUT_DIR/record.log (kubectl 1.32 warns about the version skew with the 1.36 server).
# Uses $KUBECONFIG if set, else the test environment's admin kubeconfig.
# PODTRACE_RECORD_NAMESPACE=NS limits pods and events to one namespace (nodes are
# cluster-scoped and always recorded whole).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out=${1:-}; secs=${2:-}
[[ -n "$out" ]] || die "usage: $0 OUT_DIR [SECONDS]"
[[ -z "$secs" || "$secs" =~ ^[0-9]+$ ]] || die "SECONDS must be a whole number, got '$secs'"
command -v kubectl >/dev/null || die "kubectl is required"
export KUBECONFIG="${KUBECONFIG:-$KUBECONFIG_ADMIN}"
[[ -f "$KUBECONFIG" ]] || die "no kubeconfig at $KUBECONFIG: run make testenv-up"
kubectl get --raw /readyz >/dev/null 2>&1 || die "cluster at $KUBECONFIG is not reachable"
mkdir -p "$out"

pids=()
watch() {
  local file=$1; shift
  kubectl get "$@" --watch --output-watch-events -o json >"$out/$file" 2>>"$out/record.log" &
  pids+=($!)
}
stop() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap 'stop; log "recording stopped; files in $out"; exit 0' INT TERM

: >"$out/record.log"
scope=(--all-namespaces)
[[ -n "${PODTRACE_RECORD_NAMESPACE:-}" ]] && scope=(--namespace "$PODTRACE_RECORD_NAMESPACE")
watch pods.json pods "${scope[@]}"
watch events.json events "${scope[@]}"
watch events.k8s.io.json events.v1.events.k8s.io "${scope[@]}"
watch nodes.json nodes
log "recording to $out (pids ${pids[*]})${secs:+ for ${secs}s}; interrupt to stop"

if [[ -n "$secs" ]]; then
  sleep "$secs" &
  wait $! || true
  stop
  log "recording finished; files in $out"
else
  # Waits until interrupted, or until every watcher exits (e.g. the cluster went away).
  wait "${pids[@]}" || true
  log "all watches ended; files in $out"
fi
