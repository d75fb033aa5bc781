# No trace backend: the cluster alone (for work that needs no traces, or while debugging).
BACKEND_PROC=""
BACKEND_QUERY_URL=""
backend_build() { :; }
backend_start() { :; }
backend_ready() { :; }
backend_stop() { :; }
