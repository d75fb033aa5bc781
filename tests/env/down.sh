#!/usr/bin/env bash
# Stops everything tests/env/up.sh started (SIGTERM, then SIGKILL after a bounded wait).
# Safe to run twice, or after a partial start. Keeps certificates and logs; etcd data is
# wiped on the next up.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Reverse start order: clients before the API server, the API server before etcd.
for c in kwok kube-scheduler kube-controller-manager jaeger kube-apiserver etcd; do
  stop_proc "$c" 15
done
for f in "$PIDS"/*.pid; do
  [[ -e "$f" ]] || continue
  stop_proc "$(basename "$f" .pid)" 15
done
rm -f "$STATE/env.sh" "$STATE/env.json"
log "down"
