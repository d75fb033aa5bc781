# Trace backend implementation: Jaeger v2 with in-memory storage (sourced by backend.sh).
# Contract for any backend: backend_build, backend_start, backend_stop, backend_ready,
# and the query API base URL in BACKEND_QUERY_URL.

BACKEND_PROC=jaeger
BACKEND_QUERY_URL="http://127.0.0.1:$QUERY_HTTP_PORT"

backend_build() { "$ENV_SRC/build.sh" jaeger; }

backend_start() {
  running "$BACKEND_PROC" && return 0
  PODTRACE_QUERY_HTTP_PORT=$QUERY_HTTP_PORT PODTRACE_QUERY_GRPC_PORT=$QUERY_GRPC_PORT \
  PODTRACE_OTLP_GRPC_PORT=$OTLP_GRPC_PORT PODTRACE_OTLP_HTTP_PORT=$OTLP_HTTP_PORT \
    start_proc "$BACKEND_PROC" "$BIN_JAEGER/jaeger" --config "$ENV_SRC/backends/jaeger.yaml"
}

# Ready means the query API answers, not just that the process is up: that is what tests
# poll, and the OTLP receivers start before it.
backend_ready() {
  curl -sf "$BACKEND_QUERY_URL/api/services" >/dev/null &&
    curl -sf -o /dev/null "http://127.0.0.1:$OTLP_HTTP_PORT/v1/traces" -X POST \
      -H 'Content-Type: application/json' -d '{"resourceSpans":[]}'
}

backend_stop() { stop_proc "$BACKEND_PROC" 10; }
