//! End-to-end tests of `podtrace run` (and `podtrace record`) against the local test
//! environment: real control plane, KWOK nodes acting as kubelets, Jaeger as the backend.
//! Run `make testenv-up` first, then `cargo test --features e2e --test e2e_controller`.
//!
//! Each test starts the built binary as a subprocess (killed by a Drop guard) in its own
//! namespace. Most tests scope the controller to that namespace (`--namespace`) so they can
//! run in parallel without one controller tracing another test's pods; the tests that need a
//! cluster-wide controller, or stop the shared trace backend, take [`CLUSTER`] exclusively.
#![cfg(feature = "e2e")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestEnv, TestNamespace, TraceView, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use podtrace::session::{SessionPhase, TraceSession};
use serde_json::json;

/// Shared by namespace-scoped tests, exclusive for cluster-wide ones and backend outages.
static CLUSTER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const POD_TIMEOUT: Duration = Duration::from_secs(120);
const TRACE_TIMEOUT: Duration = Duration::from_secs(90);

// ------------------------------------------------------------------------------------------
// The controller process
// ------------------------------------------------------------------------------------------

/// A running `podtrace run`; killed (SIGKILL) and reaped on drop.
struct ControllerProc {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

impl ControllerProc {
    /// Starts the controller against the test cluster with the env's OTLP/gRPC endpoint.
    fn start(env: &TestEnv, extra: &[&str]) -> ControllerProc {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("controller.log");
        let port = free_port();
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_podtrace"));
        cmd.arg("run")
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--grace", "2s", "--log-format", "json"])
            .args(extra)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &env.otlp_grpc)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        let child = cmd.spawn().expect("spawning podtrace run");
        ControllerProc {
            child: Some(child),
            port,
            log,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let resp = self
            .http
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    /// Waits until `/readyz` answers 200 (watches synced, or standing by).
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("controller exited early ({status}):\n{}", self.log_tail());
            }
            if let Some((200, _)) = self.get("/readyz").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "controller not ready:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A sample of the Prometheus exposition, by exact series text (`name{labels}`), 0 if absent.
    async fn metric(&self, series: &str) -> f64 {
        let Some((200, text)) = self.get("/metrics").await else {
            return f64::NAN;
        };
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                (k == series).then(|| v.parse().ok()).flatten()
            })
            .unwrap_or(0.0)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGKILL: no chance to flush or write status.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits (bounded) for a clean exit; returns whether it exited 0.
    fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for ControllerProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- controller log (port {}) ---\n{}",
                self.port,
                self.log_tail()
            );
        }
        self.kill9();
    }
}

// ------------------------------------------------------------------------------------------
// Cluster helpers
// ------------------------------------------------------------------------------------------

/// Installs the TraceSession CRD (server-side apply) and waits until it is Established.
async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = TraceSession::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply("podtrace-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("applying the TraceSession CRD");
    wait_for(Duration::from_secs(30), "CRD Established", || {
        let crds = crds.clone();
        let name = name.clone();
        async move {
            let c = crds.get(&name).await.ok()?;
            let est = c
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            est.then_some(())
        }
    })
    .await;
}

async fn create_session(
    client: &Client,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> TraceSession {
    let api: Api<TraceSession> = Api::namespaced(client.clone(), ns);
    let ts: TraceSession = serde_json::from_value(json!({
        "apiVersion": "podtrace.dev/v1alpha1",
        "kind": "TraceSession",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("session json");
    api.create(&PostParams::default(), &ts)
        .await
        .expect("creating the TraceSession")
}

async fn wait_phase(client: &Client, ns: &str, name: &str, phase: SessionPhase) -> TraceSession {
    let api: Api<TraceSession> = Api::namespaced(client.clone(), ns);
    wait_for(
        Duration::from_secs(30),
        &format!("session {name} in phase {phase:?}"),
        || {
            let api = api.clone();
            async move {
                let ts = api.get(name).await.ok()?;
                (ts.status.as_ref()?.phase? == phase).then_some(ts)
            }
        },
    )
    .await
}

async fn create_deployment(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
    labels: serde_json::Value,
    annotations: serde_json::Value,
) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"podtrace-e2e/deployment": name}},
            "template": {
                "metadata": {
                    "labels": merge(json!({"podtrace-e2e/deployment": name}), labels),
                    "annotations": annotations,
                },
                "spec": {"containers": [{"name": "app", "image": format!("registry.example/{name}:1.0")}]}
            }
        }
    }))
    .expect("deployment json");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .unwrap_or_else(|e| panic!("creating deployment {name}: {e}"));
}

async fn create_pod(client: &Client, ns: &str, name: &str, labels: serde_json::Value) -> Pod {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0"}]}
    }))
    .expect("pod json");
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &p)
        .await
        .unwrap_or_else(|e| panic!("creating pod {name}: {e}"))
}

fn merge(mut a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pull_failed(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
            })
        })
}

/// Waits until `n` pods match `selector` and each is Ready or has failed to pull its image.
async fn wait_pods_settled(client: &Client, ns: &str, selector: &str, n: usize) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(
        POD_TIMEOUT,
        &format!("{n} settled pods ({selector})"),
        || {
            let api = api.clone();
            async move {
                let pods = api
                    .list(&ListParams::default().labels(selector))
                    .await
                    .ok()?
                    .items;
                (pods.len() == n && pods.iter().all(|p| is_ready(p) || pull_failed(p)))
                    .then_some(pods)
            }
        },
    )
    .await
}

fn trace_id_of(p: &Pod) -> String {
    podtrace::ids::trace_id(
        podtrace::session::Operation::PodStartup,
        &[&p.uid().expect("pod uid")],
    )
    .to_string()
}

/// Waits for the pod's trace to be queryable with its root span.
async fn wait_trace(env: &TestEnv, pod: &Pod) -> TraceView {
    let q = env.traces();
    let id = trace_id_of(pod);
    wait_for(
        TRACE_TIMEOUT,
        &format!("trace {id} of pod {}", pod.name_any()),
        || {
            let q = q.clone();
            let id = id.clone();
            async move {
                q.get_trace(&id)
                    .await
                    .filter(|t| !t.named("pod.startup").is_empty())
            }
        },
    )
    .await
}

/// The checks every exported startup trace must pass.
fn assert_well_formed(t: &TraceView, pod: &Pod) {
    let roots = t.roots();
    assert_eq!(roots.len(), 1, "one root in {}: {:?}", t.trace_id, names(t));
    let root = roots[0];
    assert_eq!(root.name, "pod.startup");
    assert_eq!(root.service, "podtrace");
    assert_eq!(
        root.attributes.get("k8s.pod.name").and_then(|v| v.as_str()),
        Some(pod.name_any().as_str())
    );
    assert_eq!(
        root.attributes.get("k8s.pod.uid").and_then(|v| v.as_str()),
        pod.uid().as_deref(),
        "root carries the pod uid"
    );
    let ids: Vec<&str> = t.spans.iter().map(|s| s.span_id.as_str()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(
        ids.len(),
        unique.len(),
        "duplicate span IDs in {}: {:?}",
        t.trace_id,
        names(t)
    );
    for s in &t.spans {
        if let Some(p) = &s.parent_span_id {
            assert!(
                unique.contains(p.as_str()),
                "span {} has a parent outside the trace",
                s.name
            );
        }
        assert!(
            s.end_ns >= s.start_ns,
            "span {} ends before it starts",
            s.name
        );
    }
}

fn names(t: &TraceView) -> Vec<String> {
    t.spans
        .iter()
        .map(|s| format!("{}@{}", s.name, s.service))
        .collect()
}

// ------------------------------------------------------------------------------------------
// 1. A mixed Deployment: one trace per pod with the model's span tree; session status counts.
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn traces_every_pod_with_span_tree_attributes_and_status() {
    let _shared = CLUSTER.read().await;
    let env = TestEnv::from_env();
    let client = env.client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&env, "ctl-tree").await;
    let mut ctl = ControllerProc::start(&env, &["--leader-elect=false", "--namespace", &ns.name]);
    ctl.wait_ready().await;

    create_session(
        &client,
        &ns.name,
        "shop",
        json!({"operations": ["PodStartup"], "selector": {"matchLabels": {"app": "shop"}},
               "attributes": {"team": "payments"}}),
    )
    .await;
    let ts = wait_phase(&client, &ns.name, "shop", SessionPhase::Active).await;
    assert!(
        ts.status
            .as_ref()
            .and_then(|s| s.started_at.as_ref())
            .is_some()
    );

    let shop = json!({"app": "shop"});
    let a = "podtrace.dev/testenv-";
    create_deployment(
        &client,
        &ns.name,
        "pulling",
        12,
        shop.clone(),
        json!({format!("{a}image-pull"): "pull", format!("{a}pull-duration"): "1500ms"}),
    )
    .await;
    create_deployment(
        &client,
        &ns.name,
        "cached",
        7,
        shop.clone(),
        json!({format!("{a}image-pull"): "cached"}),
    )
    .await;
    create_deployment(
        &client,
        &ns.name,
        "broken",
        1,
        shop.clone(),
        json!({format!("{a}image-pull"): "fail"}),
    )
    .await;

    let pods = wait_pods_settled(&client, &ns.name, "app=shop", 20).await;
    let failed: Vec<&Pod> = pods.iter().filter(|p| pull_failed(p)).collect();
    assert_eq!(failed.len(), 1, "exactly the broken pod fails to pull");

    for pod in &pods {
        let t = wait_trace(&env, pod).await;
        assert_well_formed(&t, pod);
        let root = t.roots()[0];
        assert_eq!(
            root.attributes.get("team").and_then(|v| v.as_str()),
            Some("payments"),
            "session attributes"
        );
        assert_eq!(
            root.attributes
                .get("k8s.namespace.name")
                .and_then(|v| v.as_str()),
            Some(ns.name.as_str())
        );
        let sched = t.named("pod.schedule");
        assert_eq!(sched.len(), 1, "one pod.schedule in {:?}", names(&t));
        assert_eq!(sched[0].service, "kube-scheduler");
        assert_eq!(
            sched[0].parent_span_id.as_deref(),
            Some(root.span_id.as_str())
        );
        let deployment = pod
            .labels()
            .get("podtrace-e2e/deployment")
            .cloned()
            .unwrap_or_default();
        match deployment.as_str() {
            "broken" => {
                assert_eq!(
                    root.status_code, 2,
                    "failing pod's root has Error status: {root:?}"
                );
                let pulls = t.named("container.image_pull");
                assert!(!pulls.is_empty(), "failed pull is a span: {:?}", names(&t));
                assert!(
                    pulls.iter().any(|s| s.status_code == 2),
                    "the pull span is an error"
                );
            }
            "pulling" => {
                assert_ne!(root.status_code, 2, "{root:?}");
                let pulls = t.named("container.image_pull");
                assert_eq!(pulls.len(), 1, "{:?}", names(&t));
                assert_eq!(pulls[0].service, "kubelet");
                let ms = (pulls[0].end_ns - pulls[0].start_ns) / 1_000_000;
                assert!(
                    (1000..=3000).contains(&ms),
                    "pull took {ms} ms (annotation: 1500ms)"
                );
                assert!(!t.named("container.startup").is_empty(), "{:?}", names(&t));
            }
            "cached" => {
                assert_ne!(root.status_code, 2, "{root:?}");
                assert!(!t.named("container.startup").is_empty(), "{:?}", names(&t));
                for p in t.named("container.image_pull") {
                    assert_eq!(
                        p.attributes
                            .get("podtrace.image.cached")
                            .and_then(|v| v.as_bool()),
                        Some(true)
                    );
                }
            }
            other => panic!("unexpected deployment {other}"),
        }
    }

    // Exactly one trace per pod, nothing else, from the backend's own index.
    let expected: BTreeSet<String> = pods.iter().map(trace_id_of).collect();
    let q = env.traces();
    let found = wait_for(TRACE_TIMEOUT, "search index to list the 20 traces", || {
        let q = q.clone();
        let ns = ns.name.clone();
        let expected = expected.clone();
        async move {
            let ids: BTreeSet<String> = q
                .find_trace_ids(
                    "podtrace",
                    &[("k8s.namespace.name", &ns)],
                    Duration::from_secs(900),
                )
                .await
                .into_iter()
                .collect();
            (ids.len() >= expected.len()).then_some(ids)
        }
    })
    .await;
    assert_eq!(found, expected);

    let api: Api<TraceSession> = Api::namespaced(client.clone(), &ns.name);
    let st = wait_for(
        Duration::from_secs(30),
        "status to count 20 exported traces",
        || {
            let api = api.clone();
            async move {
                let st = api.get("shop").await.ok()?.status?;
                (st.traces_exported == 20).then_some(st)
            }
        },
    )
    .await;
    assert_eq!(st.pods_matched, 20);
    assert_eq!(st.traces_completed, 20);
    assert_eq!(st.traces_dropped, 0);
    assert!(
        st.last_trace_id
            .as_ref()
            .is_some_and(|id| expected.contains(id))
    );
    let lat = st.latency.expect("latency percentiles");
    assert!(
        lat.overall.count >= 1 && lat.overall.count <= 19,
        "{:?}",
        lat.overall
    );
    assert!(!lat.overall.p50.is_empty() && !lat.overall.p99.is_empty());
    assert!(
        lat.phases.contains_key("schedule"),
        "{:?}",
        lat.phases.keys()
    );
    assert!(
        lat.phases.contains_key("image_pull"),
        "{:?}",
        lat.phases.keys()
    );
    let ready = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(ready.status, "True");

    assert_eq!(ctl.metric("podtrace_traces_exported_total").await, 20.0);
    assert_eq!(ctl.metric("podtrace_traces_dropped_total").await, 0.0);
    assert_eq!(
        ctl.metric("podtrace_pod_startup_phase_duration_seconds_count{phase=\"schedule\"}")
            .await,
        20.0
    );
    assert!(
        ctl.terminate(Duration::from_secs(20)),
        "clean exit on SIGTERM:\n{}",
        ctl.log_tail()
    );
}

// ------------------------------------------------------------------------------------------
// 2. Selection, invalid sessions, deletion.
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn only_selected_pods_invalid_sessions_and_deletion() {
    let _exclusive = CLUSTER.write().await;
    let env = TestEnv::from_env();
    let client = env.client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&env, "ctl-sel").await;
    let other = TestNamespace::create(&env, "ctl-sel-other").await;
    // Cluster-wide on purpose: the namespace boundary must come from the session.
    // Also exercises OTLP/HTTP (the other tests export over gRPC).
    let http_endpoint = format!("{}/v1/traces", env.otlp_http);
    let mut ctl = ControllerProc::start(
        &env,
        &[
            "--leader-elect=false",
            "--otlp-protocol",
            "http/protobuf",
            "--otlp-endpoint",
            &http_endpoint,
        ],
    );
    ctl.wait_ready().await;

    create_session(
        &client,
        &ns.name,
        "sel",
        json!({"operations": ["PodStartup"], "selector": {"matchExpressions": [
            {"key": "app", "operator": "In", "values": ["in"]}]}}),
    )
    .await;
    wait_phase(&client, &ns.name, "sel", SessionPhase::Active).await;

    // Invalid: an operator the API server's schema cannot rule out.
    create_session(
        &client,
        &ns.name,
        "bad-op",
        json!({"operations": ["PodStartup"], "selector": {"matchExpressions": [
            {"key": "app", "operator": "Equals", "values": ["in"]}]}}),
    )
    .await;
    let bad = wait_phase(&client, &ns.name, "bad-op", SessionPhase::Invalid).await;
    let cond = bad
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .cloned()
        .expect("Ready condition");
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason, "InvalidSelector");
    assert!(
        cond.message.contains("Equals"),
        "readable message: {}",
        cond.message
    );
    // Invalid: refused by the API server's validation rules.
    let api: Api<TraceSession> = Api::namespaced(client.clone(), &ns.name);
    let refused: TraceSession = serde_json::from_value(json!({
        "apiVersion": "podtrace.dev/v1alpha1", "kind": "TraceSession",
        "metadata": {"name": "bad-duration"},
        "spec": {"operations": ["PodStartup"], "selector": {}, "duration": "ten minutes"}
    }))
    .unwrap();
    match api.create(&PostParams::default(), &refused).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 422, "{e:?}"),
        other => panic!("an unparsable duration must be refused, got {other:?}"),
    }

    let inside = create_pod(&client, &ns.name, "in-1", json!({"app": "in"})).await;
    let unselected = create_pod(&client, &ns.name, "out-1", json!({"app": "out"})).await;
    let elsewhere = create_pod(&client, &other.name, "in-2", json!({"app": "in"})).await;
    wait_pods_settled(&client, &ns.name, "app in (in,out)", 2).await;
    wait_pods_settled(&client, &other.name, "app=in", 1).await;
    let t = wait_trace(&env, &inside).await;
    assert_well_formed(&t, &inside);
    // The other two became Ready at the same time as in-1; once in-1's trace is out, theirs
    // would have been too. Allow one more grace period anyway.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let q = env.traces();
    assert!(
        q.get_trace(&trace_id_of(&unselected)).await.is_none(),
        "unselected pod traced"
    );
    assert!(
        q.get_trace(&trace_id_of(&elsewhere)).await.is_none(),
        "pod of another namespace traced"
    );
    // Counted by the session (the process-wide metrics may include other tests' sessions,
    // since this controller is cluster-wide).
    let st = wait_for(
        Duration::from_secs(10),
        "session status to count the trace",
        || {
            let api = api.clone();
            async move {
                api.get("sel")
                    .await
                    .ok()?
                    .status
                    .filter(|s| s.traces_exported == 1)
            }
        },
    )
    .await;
    assert_eq!((st.pods_matched, st.traces_completed), (1, 1));

    // Deleting the session stops tracing.
    api.delete("sel", &DeleteParams::default())
        .await
        .expect("delete session");
    wait_for(Duration::from_secs(30), "session deleted", || {
        let api = api.clone();
        async move {
            api.get_opt("sel")
                .await
                .ok()
                .and_then(|o| o.is_none().then_some(()))
        }
    })
    .await;
    // The controller's store sees the deletion through its watch: allow it a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let late = create_pod(&client, &ns.name, "in-3", json!({"app": "in"})).await;
    let api_pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    wait_for(POD_TIMEOUT, "in-3 Ready", || {
        let api_pods = api_pods.clone();
        async move { api_pods.get("in-3").await.ok().filter(is_ready) }
    })
    .await;
    // Grace (2 s) plus a tick; a trace would have been emitted by now.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        q.get_trace(&trace_id_of(&late)).await.is_none(),
        "pod traced after its session was deleted"
    );
    assert!(
        ctl.terminate(Duration::from_secs(20)),
        "clean exit on SIGTERM:\n{}",
        ctl.log_tail()
    );
    drop(other);
}

// ------------------------------------------------------------------------------------------
// 3. SIGKILL mid-startup: exactly one complete trace per pod, no duplicate spans.
//    Also the leader-election test: the restarted replica has to wait out the dead one's lease.
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn sigkill_while_pods_start_yields_one_trace_per_pod() {
    let _shared = CLUSTER.read().await;
    let env = TestEnv::from_env();
    let client = env.client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&env, "ctl-kill").await;
    let args = |id: &'static str| -> Vec<String> {
        [
            "--leader-elect=true",
            "--lease-namespace",
            &ns.name,
            "--lease-name",
            "podtrace",
            "--identity",
            id,
            "--namespace",
            &ns.name,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let first_args = args("replica-a");
    let mut first = ControllerProc::start(
        &env,
        &first_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    first.wait_ready().await;
    create_session(
        &client,
        &ns.name,
        "kill",
        json!({"operations": ["PodStartup"], "selector": {"matchLabels": {"app": "k"}}}),
    )
    .await;
    wait_phase(&client, &ns.name, "kill", SessionPhase::Active).await;

    let a = "podtrace.dev/testenv-";
    for (name, n, pull) in [
        ("fast", 6, "500ms"),
        ("medium", 7, "6s"),
        ("slow", 7, "12s"),
    ] {
        create_deployment(
            &client,
            &ns.name,
            name,
            n,
            json!({"app": "k"}),
            json!({format!("{a}image-pull"): "pull", format!("{a}pull-duration"): pull}),
        )
        .await;
    }
    // Kill once some traces are out and others are still starting.
    wait_for(Duration::from_secs(60), "first traces exported", || {
        let first = &first;
        async move { (first.metric("podtrace_traces_exported_total").await >= 3.0).then_some(()) }
    })
    .await;
    let api_pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let ready_at_kill = api_pods
        .list(&ListParams::default().labels("app=k"))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| is_ready(p))
        .count();
    first.kill9();
    assert!(
        ready_at_kill < 20,
        "the kill must land while pods are starting ({ready_at_kill} ready)"
    );

    let second_args = args("replica-b");
    let mut second = ControllerProc::start(
        &env,
        &second_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    second.wait_ready().await; // ready as a standby while the dead replica's lease runs out
    let pods = wait_pods_settled(&client, &ns.name, "app=k", 20).await;
    for pod in &pods {
        let t = wait_trace(&env, pod).await;
        assert_well_formed(&t, pod);
        assert_eq!(
            t.named("container.image_pull").len(),
            1,
            "complete trace: {:?}",
            names(&t)
        );
        assert!(
            !t.named("pod.schedule").is_empty(),
            "complete trace: {:?}",
            names(&t)
        );
    }
    let expected: BTreeSet<String> = pods.iter().map(trace_id_of).collect();
    let ids: BTreeSet<String> = env
        .traces()
        .find_trace_ids(
            "podtrace",
            &[("k8s.namespace.name", &ns.name)],
            Duration::from_secs(900),
        )
        .await
        .into_iter()
        .collect();
    assert_eq!(ids, expected, "one trace per pod and nothing else");
    // The second replica took the lease over.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &ns.name);
    let lease = leases.get("podtrace").await.expect("lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("replica-b")
    );
    assert_eq!(second.metric("podtrace_leader").await, 1.0);
}

// ------------------------------------------------------------------------------------------
// 4. Backend outage: queued traces arrive after it returns; beyond the bound, drops are exact.
// ------------------------------------------------------------------------------------------

/// Restarts the backend if a test panics while it is stopped.
struct BackendGuard<'a>(&'a TestEnv, bool);
impl Drop for BackendGuard<'_> {
    fn drop(&mut self) {
        if self.1 {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/env/backend.sh");
            let _ = Command::new(script)
                .arg("start")
                .env("PODTRACE_TESTENV_DIR", &self.0.dir)
                .status();
        }
    }
}

#[tokio::test]
async fn backend_outage_is_bridged_within_the_queue_bound() {
    let _exclusive = CLUSTER.write().await;
    let env = TestEnv::from_env();
    let client = env.client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&env, "ctl-outage").await;
    const CAPACITY: usize = 4;
    let cap = CAPACITY.to_string();
    let mut ctl = ControllerProc::start(
        &env,
        &[
            "--leader-elect=false",
            "--namespace",
            &ns.name,
            "--export-queue-capacity",
            &cap,
            "--export-max-retries",
            "1000",
        ],
    );
    ctl.wait_ready().await;
    create_session(
        &client,
        &ns.name,
        "out",
        json!({"operations": ["PodStartup"], "selector": {}}),
    )
    .await;
    wait_phase(&client, &ns.name, "out", SessionPhase::Active).await;

    // Within the bound: 3 traces wait out the outage.
    env.backend_stop().await;
    let mut guard = BackendGuard(&env, true);
    for i in 0..3 {
        create_pod(&client, &ns.name, &format!("a-{i}"), json!({"batch": "a"})).await;
    }
    wait_for(Duration::from_secs(60), "3 traces completed while the backend is down", || {
        let ctl = &ctl;
        async move { (ctl.metric("podtrace_traces_completed_total").await >= 3.0).then_some(()) }
    })
    .await;
    assert_eq!(ctl.metric("podtrace_traces_exported_total").await, 0.0);
    env.backend_start().await;
    guard.1 = false;
    let batch_a = wait_pods_settled(&client, &ns.name, "batch=a", 3).await;
    for pod in &batch_a {
        let t = wait_trace(&env, pod).await;
        assert_well_formed(&t, pod);
    }
    assert_eq!(ctl.metric("podtrace_traces_dropped_total").await, 0.0);

    // Beyond the bound: 12 traces during an outage; what does not arrive is exactly what the
    // drop counter says.
    env.backend_stop().await;
    guard.1 = true;
    // Spaced out so traces finish one by one: the exporter then holds the first in its
    // retrying batch and the queue fills behind it.
    for i in 0..12 {
        create_pod(&client, &ns.name, &format!("b-{i}"), json!({"batch": "b"})).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    wait_for(Duration::from_secs(90), "15 traces completed", || {
        let ctl = &ctl;
        async move { (ctl.metric("podtrace_traces_completed_total").await >= 15.0).then_some(()) }
    })
    .await;
    assert_eq!(
        ctl.metric("podtrace_traces_exported_total").await,
        3.0,
        "nothing exported while down"
    );
    env.backend_start().await;
    guard.1 = false;
    let batch_b = wait_pods_settled(&client, &ns.name, "batch=b", 12).await;
    wait_for(
        Duration::from_secs(60),
        "every surviving trace exported",
        || {
            let ctl = &ctl;
            async move {
                let exported = ctl.metric("podtrace_traces_exported_total").await;
                let dropped = ctl.metric("podtrace_traces_dropped_total").await;
                (exported + dropped >= 15.0).then_some(())
            }
        },
    )
    .await;
    let dropped = ctl.metric("podtrace_traces_dropped_total").await as usize;
    let exported_b = ctl.metric("podtrace_traces_exported_total").await as usize - 3;
    // The backend indexes what it accepted within a moment; count arrivals until they match
    // what the exporter reports accepted (or time out and let the assertion below report).
    let q = env.traces();
    let deadline = Instant::now() + Duration::from_secs(30);
    let arrived = loop {
        let mut arrived = 0usize;
        for pod in &batch_b {
            if q.get_trace(&trace_id_of(pod))
                .await
                .is_some_and(|t| !t.named("pod.startup").is_empty())
            {
                arrived += 1;
            }
        }
        if arrived >= exported_b || Instant::now() >= deadline {
            break arrived;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "outage beyond the bound: {arrived} of 12 arrived, {dropped} counted dropped (capacity {CAPACITY})"
    );
    assert_eq!(
        arrived + dropped,
        12,
        "every trace either arrived or was counted dropped"
    );
    // The queue holds CAPACITY traces, plus the batch the exporter was retrying.
    assert!(
        (CAPACITY..=CAPACITY + 2).contains(&arrived),
        "a full queue plus the retried batch arrived, no more ({arrived} of 12, capacity {CAPACITY})"
    );
    let st = Api::<TraceSession>::namespaced(client.clone(), &ns.name);
    let status = wait_for(
        Duration::from_secs(30),
        "status to record the drops",
        || {
            let st = st.clone();
            async move {
                let s = st.get("out").await.ok()?.status?;
                (s.traces_dropped as usize == dropped && s.traces_exported as usize == 15 - dropped)
                    .then_some(s)
            }
        },
    )
    .await;
    assert_eq!(status.traces_completed, 15);
}

// ------------------------------------------------------------------------------------------
// `podtrace record`
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn record_captures_pods_events_and_nodes_in_replay_format() {
    let _shared = CLUSTER.read().await;
    let env = TestEnv::from_env();
    let client = env.client().await;
    let ns = TestNamespace::create(&env, "ctl-rec").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("streams.jsonl.gz");
    let mut child = Command::new(env!("CARGO_BIN_EXE_podtrace"))
        .args(["record", "--duration", "12s", "--kubeconfig"])
        .arg(&env.kubeconfig)
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn record");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(&mut child);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pod = create_pod(&client, &ns.name, "rec-1", json!({"app": "rec"})).await;
    wait_pods_settled(&client, &ns.name, "app=rec", 1).await;
    let status = wait_for(
        Duration::from_secs(30),
        "record to stop after --duration",
        || {
            let st = guard.0.try_wait().ok().flatten();
            async move { st }
        },
    )
    .await;
    let mut stderr = String::new();
    if let Some(mut e) = guard.0.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(status.success(), "record failed: {stderr}");
    drop(guard);

    let file = std::fs::File::open(&out).expect("output written");
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
    let mut kinds: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut pod_types = BTreeSet::new();
    for line in reader.lines() {
        let line = line.expect("gzip stream complete");
        let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON value per line");
        let t = v["type"].as_str().expect("type").to_string();
        assert!(
            matches!(t.as_str(), "ADDED" | "MODIFIED" | "DELETED"),
            "{t}"
        );
        let at: jiff::Timestamp = v["observedAt"]
            .as_str()
            .expect("observedAt")
            .parse()
            .expect("RFC 3339");
        assert_eq!(at.subsec_nanosecond() % 1_000_000, 0);
        let obj = &v["object"];
        assert!(
            obj["metadata"].get("managedFields").is_none(),
            "managedFields stripped"
        );
        let key = (
            obj["apiVersion"].as_str().unwrap_or("").to_string(),
            obj["kind"].as_str().unwrap_or("").to_string(),
        );
        assert_ne!(key.1, "Secret");
        *kinds.entry(key).or_default() += 1;
        if obj["metadata"]["uid"].as_str() == pod.uid().as_deref() {
            pod_types.insert(t);
        }
        // Every line must be something replay can read.
        podtrace::observe::Object::from_json(obj.clone()).expect("replayable object");
    }
    for k in [
        ("v1", "Pod"),
        ("v1", "Event"),
        ("events.k8s.io/v1", "Event"),
        ("v1", "Node"),
    ] {
        assert!(
            kinds.contains_key(&(k.0.to_string(), k.1.to_string())),
            "{k:?} recorded: {kinds:?}"
        );
    }
    assert!(
        pod_types.contains("ADDED") && pod_types.contains("MODIFIED"),
        "{pod_types:?}"
    );
}

// ------------------------------------------------------------------------------------------
// Measurement (not a pass/fail test): `cargo test --features e2e --test e2e_controller --
// --ignored measure --nocapture`.
// ------------------------------------------------------------------------------------------

fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command: utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .trim_end_matches(" kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[tokio::test]
#[ignore = "measurement: 1,000 pod startups; run explicitly"]
async fn measure_thousand_pods() {
    let _exclusive = CLUSTER.write().await;
    let env = TestEnv::from_env();
    let client = env.client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&env, "ctl-measure").await;
    let n: usize = std::env::var("PODTRACE_MEASURE_PODS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut ctl = ControllerProc::start(&env, &["--leader-elect=false"]);
    ctl.wait_ready().await;
    create_session(
        &client,
        &ns.name,
        "m",
        json!({"operations": ["PodStartup"], "selector": {}}),
    )
    .await;
    wait_phase(&client, &ns.name, "m", SessionPhase::Active).await;
    let pid = ctl.pid();
    let cpu0 = proc_cpu_seconds(pid);
    let rss0 = proc_status_kb(pid, "VmRSS:");
    let t0 = Instant::now();
    let a = "podtrace.dev/testenv-";
    create_deployment(
        &client,
        &ns.name,
        "bulk",
        n as i32,
        json!({"app": "bulk"}),
        json!({format!("{a}image-pull"): "cached"}),
    )
    .await;
    let api: Api<TraceSession> = Api::namespaced(client.clone(), &ns.name);
    wait_for(Duration::from_secs(1800), "all traces exported", || {
        let api = api.clone();
        async move {
            let s = api.get("m").await.ok()?.status?;
            (s.traces_exported as usize >= n).then_some(())
        }
    })
    .await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = proc_cpu_seconds(pid) - cpu0;
    let hwm = proc_status_kb(pid, "VmHWM:");
    // Ready → queryable, sampled on a few pods: poll from the moment the pod is Ready.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let sample = create_pod(&client, &ns.name, "latency-probe", json!({"app": "probe"})).await;
    let ready_at = wait_for(POD_TIMEOUT, "probe Ready", || {
        let pods = pods.clone();
        async move {
            pods.get("latency-probe")
                .await
                .ok()
                .filter(is_ready)
                .map(|_| Instant::now())
        }
    })
    .await;
    let q = env.traces();
    let id = trace_id_of(&sample);
    wait_for(TRACE_TIMEOUT, "probe trace", || {
        let q = q.clone();
        let id = id.clone();
        async move { q.get_trace(&id).await }
    })
    .await;
    let ready_to_query = ready_at.elapsed().as_secs_f64();
    println!(
        "MEASURE pods={n} wall={wall:.1}s controller_cpu={cpu:.2}s ({:.1}% of one core) rss_before={rss0}kB VmHWM={hwm}kB ready_to_queryable={ready_to_query:.2}s (grace 2s)",
        100.0 * cpu / wall
    );
    let _ = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .delete("bulk", &DeleteParams::default())
        .await;
}
