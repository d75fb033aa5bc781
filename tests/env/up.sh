#!/usr/bin/env bash
# Brings up the local test environment: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, KWOK with fake nodes, and the trace backend, all on 127.0.0.1.
# Idempotent: when everything is already up and healthy it only prints the settings.
# On any failure it names the component, shows its log tail, and stops what it started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ENV_SRC/backends/$TRACE_BACKEND.sh" 2>/dev/null || die "unknown TRACE_BACKEND=$TRACE_BACKEND"

TIMEOUT="${PODTRACE_TESTENV_TIMEOUT:-90}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok "$BACKEND_PROC")
NODES=(kwok-node-0 kwok-node-1 kwok-node-2 kwok-node-3)
ZONES=(us-east-1a us-east-1b us-east-1c us-east-1a)
TYPES=(m5.large m5.xlarge c5.2xlarge m5.large)
# Pods per node. A real kubelet defaults to 110; the default here is higher so load tests
# of ~1000 pods fit on the four fake nodes (large real nodes are run with raised max-pods too).
MAX_PODS="${PODTRACE_TESTENV_NODE_MAX_PODS:-500}"

healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do [[ -z "$c" ]] || running "$c" || return 1; done
  [[ -f "$STATE/env.json" ]] || return 1
  kapi GET /readyz >/dev/null 2>&1 && backend_ready >/dev/null 2>&1
}

print_usage() {
  cat >&2 <<MSG
[testenv] up. Use it with:
  source $STATE/env.sh        # KUBECONFIG, PODTRACE_OTLP_GRPC/HTTP, PODTRACE_TRACE_QUERY
  kubectl get nodes
  cargo test --features e2e
  make testenv-down
MSG
}

# curl, jq and openssl come with this kind of machine; install any that is missing (as CI
# on a new machine would need) rather than fail.
need_tools() {
  local missing=() t
  for t in curl jq openssl; do command -v "$t" >/dev/null || missing+=("$t"); done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]} with apt-get"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null \
    || die "${missing[*]} required and could not be installed"
}

gen_pki() {
  [[ -f "$PKI/.complete" ]] && return 0
  rm -rf "$PKI"; mkdir -p "$PKI"; chmod 700 "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt \
      -subj "/CN=podtrace-testenv-ca" 2>/dev/null
    cat >serving.ext <<EXT
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EXT
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile serving.ext -out apiserver.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    # Static bearer tokens: random, readable only by the owner, never logged.
    tok() { openssl rand -hex 24; }
    {
      echo "$(tok),admin,admin-uid,\"system:masters\""
      echo "$(tok),system:kube-controller-manager,kcm-uid"
      echo "$(tok),system:kube-scheduler,scheduler-uid"
      echo "$(tok),system:kwok,kwok-uid,\"system:masters\""
    } >tokens.csv
    chmod 600 ./*.key tokens.csv
  )
  touch "$PKI/.complete"
}

# write_kubeconfig FILE USER: a kubeconfig using USER's static token.
write_kubeconfig() {
  local file=$1 user=$2 token
  token=$(grep ",$user," "$PKI/tokens.csv" | cut -d, -f1)
  cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: podtrace-testenv
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $user
  user:
    token: $token
contexts:
- name: podtrace-testenv
  context: {cluster: podtrace-testenv, user: $user}
current-context: podtrace-testenv
KC
  chmod 600 "$file"
}

# A readiness probe would happily talk to another process already on a port (e.g. a
# second environment with the same ports), so refuse to start on a busy port.
check_ports_free() {
  local spec name port busy=()
  for spec in etcd:$ETCD_CLIENT_PORT etcd-peer:$ETCD_PEER_PORT kube-apiserver:$APISERVER_PORT \
    kube-controller-manager:$KCM_PORT kube-scheduler:$SCHEDULER_PORT kwok:$KWOK_PORT \
    otlp-grpc:$OTLP_GRPC_PORT otlp-http:$OTLP_HTTP_PORT query-http:$QUERY_HTTP_PORT query-grpc:$QUERY_GRPC_PORT; do
    name=${spec%%:*} port=${spec##*:}
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then busy+=("$port ($name)"); fi
  done
  ((${#busy[@]} == 0)) || die "ports already in use on 127.0.0.1: ${busy[*]}; is another environment up? (see the PODTRACE_TESTENV_*_PORT variables)"
}

start_etcd() {
  rm -rf "$STATE/etcd"
  start_proc etcd "$BIN_ETCD/etcd" --name testenv --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "testenv=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls "" --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn
  wait_until etcd "$TIMEOUT" curl -sf "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
}

start_apiserver() {
  start_proc kube-apiserver "$BIN_K8S/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --cert-dir "$STATE/apiserver-certs" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --endpoint-reconciler-type none \
    --allow-privileged=true --profiling=false --v=1
  wait_until kube-apiserver "$TIMEOUT" kapi GET /readyz
}

start_controllers() {
  start_proc kube-controller-manager "$BIN_K8S/kube-controller-manager" \
    --kubeconfig "$STATE/kcm.kubeconfig" \
    --authentication-kubeconfig "$STATE/kcm.kubeconfig" --authorization-kubeconfig "$STATE/kcm.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$STATE/kcm-certs" \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --allocate-node-cidrs=false \
    --controllers '*,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller' \
    --profiling=false --v=1
  start_proc kube-scheduler "$BIN_K8S/kube-scheduler" \
    --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --profiling=false --v=1
  wait_until kube-controller-manager "$TIMEOUT" curl -skf "https://127.0.0.1:$KCM_PORT/healthz"
  wait_until kube-scheduler "$TIMEOUT" curl -skf "https://127.0.0.1:$SCHEDULER_PORT/healthz"
}

start_kwok() {
  write_kwok_config
  start_proc kwok "$BIN_KWOK/kwok" --kubeconfig "$STATE/kwok.kubeconfig" \
    --config "$STATE/kwok-config.yaml" --server-address "127.0.0.1:$KWOK_PORT" \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds 40
  wait_until kwok "$TIMEOUT" curl -sf "http://127.0.0.1:$KWOK_PORT/healthz"
}

node_json() {
  local i=$1 name=${NODES[$1]}
  jq -n --arg name "$name" --arg zone "${ZONES[$i]}" --arg type "${TYPES[$i]}" \
    --arg ip "10.250.0.$((10 + i))" --arg cidr "10.244.$i.0/24" --arg kv "$K8S_VERSION" \
    --arg pods "$MAX_PODS" '{
    apiVersion: "v1", kind: "Node",
    metadata: {
      name: $name,
      annotations: {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
      labels: {
        "type": "kwok", "kubernetes.io/hostname": $name, "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/zone": $zone, "topology.kubernetes.io/region": "us-east-1",
        "node.kubernetes.io/instance-type": $type
      }
    },
    spec: {podCIDR: $cidr, podCIDRs: [$cidr]},
    status: {
      capacity: {cpu: "8", memory: "32Gi", pods: $pods, "ephemeral-storage": "100Gi"},
      allocatable: {cpu: "7800m", memory: "31Gi", pods: $pods, "ephemeral-storage": "95Gi"},
      addresses: [{type: "InternalIP", address: $ip}, {type: "Hostname", address: $name}],
      nodeInfo: {
        kubeletVersion: $kv, kubeProxyVersion: $kv, containerRuntimeVersion: "containerd://2.1.0",
        osImage: "Ubuntu 24.04.2 LTS", kernelVersion: "6.8.0-1024-aws", operatingSystem: "linux",
        architecture: "amd64", machineID: "", systemUUID: "", bootID: ""
      }
    }
  }'
}

create_nodes() {
  local i body
  for i in "${!NODES[@]}"; do
    body=$(node_json "$i")
    kapi POST /api/v1/nodes -H 'Content-Type: application/json' -d "$body" >/dev/null ||
      die "creating node ${NODES[$i]} failed"
    # Status on create is kept for nodes, but set it explicitly so KWOK's templates (which
    # keep existing nodeInfo/capacity) always see it.
    kapi PATCH "/api/v1/nodes/${NODES[$i]}/status" -H 'Content-Type: application/merge-patch+json' \
      -d "$(jq -c '{status: .status}' <<<"$body")" >/dev/null || die "patching node ${NODES[$i]} status failed"
  done
}

nodes_ready() {
  local n
  n=$(kapi GET /api/v1/nodes | jq '[.items[] | select(.status.conditions // [] | any(.type == "Ready" and .status == "True"))] | length')
  [[ "$n" -eq "${#NODES[@]}" ]]
}

default_sa_exists() { kapi GET /api/v1/namespaces/default/serviceaccounts/default >/dev/null; }

write_env() {
  cat >"$STATE/env.sh" <<SH
# Generated by tests/env/up.sh: source it to point tools at the test environment.
export PODTRACE_TESTENV_DIR=$STATE
export KUBECONFIG=$KUBECONFIG_ADMIN
export PODTRACE_OTLP_GRPC=http://127.0.0.1:$OTLP_GRPC_PORT
export PODTRACE_OTLP_HTTP=http://127.0.0.1:$OTLP_HTTP_PORT
export PODTRACE_TRACE_QUERY=$BACKEND_QUERY_URL
export PODTRACE_TRACE_BACKEND=$TRACE_BACKEND
SH
  jq -n --arg dir "$STATE" --arg kc "$KUBECONFIG_ADMIN" \
    --arg grpc "http://127.0.0.1:$OTLP_GRPC_PORT" --arg http "http://127.0.0.1:$OTLP_HTTP_PORT" \
    --arg query "$BACKEND_QUERY_URL" --arg backend "$TRACE_BACKEND" \
    --arg api "https://127.0.0.1:$APISERVER_PORT" --arg kv "$K8S_VERSION" \
    '{PODTRACE_TESTENV_DIR: $dir, KUBECONFIG: $kc, PODTRACE_OTLP_GRPC: $grpc, PODTRACE_OTLP_HTTP: $http,
      PODTRACE_TRACE_QUERY: $query, PODTRACE_TRACE_BACKEND: $backend, apiserver: $api,
      kubernetes_version: $kv, nodes: $ARGS.positional}' --args "${NODES[@]}" >"$STATE/env.json"
}

main() {
  need_tools
  mkdir -p "$STATE"
  if healthy; then
    log "already up and healthy ($STATE)"
    print_usage
    return 0
  fi
  # A partial or stale environment is torn down first, so every start is from scratch.
  "$ENV_SRC/down.sh" >/dev/null 2>&1 || true
  rm -f "$STATE/env.sh" "$STATE/env.json"
  # Keep the previous run's logs one generation back, so a fresh start's log is its own.
  if [[ -d "$LOGS" ]]; then rm -rf "$LOGS.prev"; mv "$LOGS" "$LOGS.prev"; fi
  "$ENV_SRC/build.sh" etcd kubernetes kwok >&2 || die "building components failed"
  backend_build >&2 || die "building the $TRACE_BACKEND backend failed"

  check_ports_free
  local start=$SECONDS
  trap 'rc=$?; if ((rc != 0)); then log "startup failed; stopping what was started"; "$ENV_SRC/down.sh" >&2 || true; fi' EXIT
  gen_pki
  write_kubeconfig "$KUBECONFIG_ADMIN" admin
  write_kubeconfig "$STATE/kcm.kubeconfig" system:kube-controller-manager
  write_kubeconfig "$STATE/scheduler.kubeconfig" system:kube-scheduler
  write_kubeconfig "$STATE/kwok.kubeconfig" system:kwok
  : >"$STATE/.starting"

  start_etcd
  start_apiserver
  backend_start # independent of the cluster: let it boot while the controllers do
  start_controllers
  start_kwok
  create_nodes
  wait_until kwok "$TIMEOUT" nodes_ready
  wait_until kube-controller-manager "$TIMEOUT" default_sa_exists
  [[ -z "$BACKEND_PROC" ]] || wait_until "$BACKEND_PROC" "$TIMEOUT" backend_ready
  write_env
  rm -f "$STATE/.starting"
  echo "$((SECONDS - start))" >"$STATE/start-seconds"
  log "environment up in $((SECONDS - start))s (state in $STATE)"
  print_usage
}

main "$@"
