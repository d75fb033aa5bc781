# Shared settings and helpers for the local test environment scripts (sourced, not run).
# Every port is overridable so two environments (or a busy machine) can coexist.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ENV_SRC="$REPO_ROOT/tests/env"
STATE="${PODTRACE_TESTENV_DIR:-$REPO_ROOT/.testenv}"
CACHE="${PODTRACE_CACHE:-$HOME/.cache/podtrace}"

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"
TRACE_BACKEND="${TRACE_BACKEND:-jaeger}"

# Defaults sit in the 2xxxx range, away from the usual 2379/6443/4317/16686 so a real
# cluster or collector on this machine does not collide with the test one.
ETCD_CLIENT_PORT="${PODTRACE_TESTENV_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${PODTRACE_TESTENV_ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${PODTRACE_TESTENV_APISERVER_PORT:-26443}"
KCM_PORT="${PODTRACE_TESTENV_KCM_PORT:-20257}"
SCHEDULER_PORT="${PODTRACE_TESTENV_SCHEDULER_PORT:-20259}"
KWOK_PORT="${PODTRACE_TESTENV_KWOK_PORT:-20247}"
OTLP_GRPC_PORT="${PODTRACE_TESTENV_OTLP_GRPC_PORT:-24317}"
OTLP_HTTP_PORT="${PODTRACE_TESTENV_OTLP_HTTP_PORT:-24318}"
QUERY_HTTP_PORT="${PODTRACE_TESTENV_QUERY_HTTP_PORT:-26686}"
QUERY_GRPC_PORT="${PODTRACE_TESTENV_QUERY_GRPC_PORT:-26685}"

SERVICE_CIDR="10.96.0.0/16"
POD_CIDR="10.244.0.0/16"

BIN_K8S="$CACHE/kubernetes-$K8S_VERSION/bin"
BIN_ETCD="$CACHE/etcd-$ETCD_VERSION/bin"
BIN_KWOK="$CACHE/kwok-$KWOK_VERSION/bin"
BIN_JAEGER="$CACHE/jaeger-$JAEGER_VERSION/bin"

LOGS="$STATE/logs"
PIDS="$STATE/pids"
PKI="$STATE/pki"
KUBECONFIG_ADMIN="$STATE/kubeconfig"

log() { printf '[testenv] %s\n' "$*" >&2; }
die() { printf '[testenv] ERROR: %s\n' "$*" >&2; exit 1; }

# start_proc NAME BINARY ARGS...: runs detached in its own session (so a Ctrl-C in the
# caller's terminal does not reach it) with output in logs/NAME.log.
start_proc() {
  local name=$1; shift
  mkdir -p "$LOGS" "$PIDS"
  [[ -x "$1" ]] || die "$name: binary $1 missing (run tests/env/build.sh)"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  log "$name started (pid $!, log $LOGS/$name.log)"
}

# pid_of NAME: prints the pid if the recorded process is still the one we started
# (checked by executable path, so a recycled pid is never signalled).
pid_of() {
  local name=$1 f="$PIDS/$1.pid" pid exe
  [[ -f "$f" ]] || return 1
  pid=$(<"$f")
  [[ -n "$pid" && -d /proc/$pid ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [[ "$exe" == "$CACHE"/* ]] || return 1
  echo "$pid"
}

running() { pid_of "$1" >/dev/null; }

# stop_proc NAME [GRACE_SECONDS]: SIGTERM, then SIGKILL once the grace period is over.
stop_proc() {
  local name=$1 grace=${2:-15} pid i
  if pid=$(pid_of "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      [[ -d /proc/$pid ]] || break
      sleep 0.1
    done
    if [[ -d /proc/$pid ]]; then
      log "$name (pid $pid) ignored SIGTERM for ${grace}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    fi
    log "$name stopped"
  fi
  rm -f "$PIDS/$name.pid"
}

# wait_until NAME TIMEOUT_SECONDS CMD...: polls CMD every 0.2 s; on timeout reports the
# component with the tail of its log and fails.
wait_until() {
  local name=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  while ! "$@" >/dev/null 2>&1; do
    if ! running "$name"; then
      fail_component "$name" "process exited during startup"
    fi
    if ((SECONDS >= deadline)); then
      fail_component "$name" "not ready after ${timeout}s"
    fi
    sleep 0.2
  done
}

fail_component() {
  local name=$1 why=$2
  printf '[testenv] ERROR: %s: %s. Last lines of %s:\n' "$name" "$why" "$LOGS/$name.log" >&2
  tail -n 25 "$LOGS/$name.log" >&2 2>/dev/null || true
  exit 1
}

admin_token() { cut -d, -f1 <(grep ',admin,' "$PKI/tokens.csv"); }

# kapi METHOD PATH [curl args...]: the API server as admin, without relying on kubectl.
kapi() {
  local method=$1 path=$2; shift 2
  curl -sS --fail-with-body --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(admin_token)" \
    -X "$method" "https://127.0.0.1:$APISERVER_PORT$path" "$@"
}

# KWOK reads one multi-document file: its configuration, then the node and pod stages.
write_kwok_config() {
  {
    cat "$ENV_SRC/kwok.yaml" "$ENV_SRC/stages/node.yaml"
    printf -- '---\n'
    cat "$ENV_SRC/stages/pod.yaml"
  } >"$STATE/kwok-config.yaml"
}
