#!/usr/bin/env bash
# Start, stop or check the trace backend alone, e.g. to test the controller while the
# backend is down. Usage: tests/env/backend.sh start|stop|restart|status
# TRACE_BACKEND selects the implementation in tests/env/backends/<name>.sh (default jaeger).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
impl="$ENV_SRC/backends/$TRACE_BACKEND.sh"
[[ -f "$impl" ]] || die "unknown TRACE_BACKEND=$TRACE_BACKEND (no $impl)"
source "$impl"

start_and_wait() {
  backend_start
  wait_until "$BACKEND_PROC" "${PODTRACE_TESTENV_TIMEOUT:-60}" backend_ready
  log "$TRACE_BACKEND ready: query $BACKEND_QUERY_URL, OTLP grpc :$OTLP_GRPC_PORT http :$OTLP_HTTP_PORT"
}

case "${1:-}" in
  start) start_and_wait ;;
  stop) backend_stop ;;
  restart) backend_stop; start_and_wait ;;
  status)
    if running "$BACKEND_PROC" && backend_ready; then echo up; else echo down; exit 3; fi ;;
  *) die "usage: $0 start|stop|restart|status" ;;
esac
