//! Harness for end-to-end tests against the local test environment (`make testenv-up`).
//!
//! Use from a test file with `mod common;`. Everything here reads the environment that
//! `tests/env/up.sh` describes in `<state>/env.json`, so tests never hard-code ports.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Event, Namespace, ServiceAccount};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::Value;

/// The running test environment, as described by `<state>/env.json`.
#[derive(Clone, Debug)]
pub struct TestEnv {
    /// State directory (`PODTRACE_TESTENV_DIR`).
    pub dir: PathBuf,
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// OTLP/gRPC endpoint, e.g. `http://127.0.0.1:24317`.
    pub otlp_grpc: String,
    /// OTLP/HTTP base endpoint (append `/v1/traces`).
    pub otlp_http: String,
    /// Trace backend query API base URL.
    pub trace_query: String,
    /// Backend implementation name (`jaeger`).
    pub trace_backend: String,
    /// Names of the fake nodes.
    pub nodes: Vec<String>,
}

impl TestEnv {
    /// Reads `env.json` from `PODTRACE_TESTENV_DIR` (default `<crate>/.testenv`).
    /// Panics with instructions when the environment is not running.
    pub fn from_env() -> TestEnv {
        let dir = std::env::var_os("PODTRACE_TESTENV_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".testenv"));
        let file = dir.join("env.json");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "test environment not running: run `make testenv-up` ({} unreadable: {e})",
                file.display()
            )
        });
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", file.display()));
        let s = |k: &str| -> String {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{} lacks {k}", file.display()))
                .to_string()
        };
        TestEnv {
            dir,
            kubeconfig: PathBuf::from(s("KUBECONFIG")),
            otlp_grpc: s("PODTRACE_OTLP_GRPC"),
            otlp_http: s("PODTRACE_OTLP_HTTP"),
            trace_query: s("PODTRACE_TRACE_QUERY"),
            trace_backend: s("PODTRACE_TRACE_BACKEND"),
            nodes: v
                .get("nodes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// A client authenticated as cluster admin.
    pub async fn client(&self) -> Client {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// A query client for the trace backend.
    pub fn traces(&self) -> TraceQuery {
        TraceQuery {
            base: self.trace_query.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// Stops the trace backend (e.g. to test export while it is down). Blocks until stopped.
    pub async fn backend_stop(&self) {
        self.backend("stop").await
    }

    /// Starts the trace backend again and waits until its query API answers.
    pub async fn backend_start(&self) {
        self.backend("start").await
    }

    async fn backend(&self, verb: &'static str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/env/backend.sh");
        let dir = self.dir.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(&script)
                .arg(verb)
                .env("PODTRACE_TESTENV_DIR", &dir)
                .output()
        })
        .await
        .expect("backend.sh task panicked")
        .unwrap_or_else(|e| panic!("running tests/env/backend.sh {verb}: {e}"));
        assert!(
            out.status.success(),
            "tests/env/backend.sh {verb} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn client_from_kubeconfig(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("reading kubeconfig {}: {e}", path.display()));
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", path.display()));
    Client::try_from(config).expect("building kube client")
}

/// Polls `f` every 200 ms until it yields `Some`, or panics naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A uniquely named namespace for one test, deleted on drop (unless
/// `PODTRACE_KEEP_NAMESPACES=1`, for debugging) or by [`TestNamespace::delete`].
pub struct TestNamespace {
    /// Namespace name.
    pub name: String,
    kubeconfig: PathBuf,
    deleted: bool,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>` labelled `podtrace.dev/e2e=true` and waits until its
    /// `default` ServiceAccount exists (pods are rejected before that).
    pub async fn create(env: &TestEnv, prefix: &str) -> TestNamespace {
        let client = env.client().await;
        let name = format!("{prefix}-{}", random_hex(4));
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"podtrace.dev/e2e": "true"}}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let sas: Api<ServiceAccount> = Api::namespaced(client, &name);
        wait_for(
            Duration::from_secs(30),
            &format!("default ServiceAccount in {name}"),
            || {
                let sas = sas.clone();
                async move { sas.get_opt("default").await.ok().flatten() }
            },
        )
        .await;
        TestNamespace {
            name,
            kubeconfig: env.kubeconfig.clone(),
            deleted: false,
        }
    }

    /// Deletes the namespace now (does not wait for it to disappear).
    pub async fn delete(mut self) {
        self.deleted = true;
        let client = client_from_kubeconfig(&self.kubeconfig).await;
        let _ = Api::<Namespace>::all(client)
            .delete(&self.name, &DeleteParams::background())
            .await;
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.deleted || std::env::var("PODTRACE_KEEP_NAMESPACES").as_deref() == Ok("1") {
            return;
        }
        // The test's runtime may be shutting down, and a kube Client is bound to the runtime
        // it was built on: delete from a fresh runtime on its own thread.
        let (name, kubeconfig) = (self.name.clone(), self.kubeconfig.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let client = client_from_kubeconfig(&kubeconfig).await;
                Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Events whose involved object is the named object in `namespace`, oldest first.
pub async fn events_for(client: &Client, namespace: &str, object: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut evs = api
        .list(&ListParams::default().fields(&format!("involvedObject.name={object}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    evs.sort_by_key(|e| {
        e.first_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
    });
    evs
}

/// `n` random bytes as lowercase hex (no RNG crate: std's hasher is randomly keyed).
pub fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    while out.len() < n * 2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(n * 2);
    out
}

/// One span as read back from the backend, normalised from its API.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanView {
    /// Span name.
    pub name: String,
    /// `service.name` of the span's resource.
    pub service: String,
    /// Span ID (16 hex digits).
    pub span_id: String,
    /// Parent span ID, `None` for a root span.
    pub parent_span_id: Option<String>,
    /// Start, ns since the Unix epoch.
    pub start_ns: u64,
    /// End, ns since the Unix epoch.
    pub end_ns: u64,
    /// Span kind as the OTLP enum number (1 internal, 2 server, 3 client, ...).
    pub kind: i64,
    /// Span attributes (OTLP AnyValue as JSON: strings, numbers, bools, arrays).
    pub attributes: BTreeMap<String, Value>,
    /// Resource attributes.
    pub resource: BTreeMap<String, Value>,
    /// Status code as the OTLP enum number: 0 unset, 1 ok, 2 error.
    pub status_code: i64,
    /// Status message, if any.
    pub status_message: Option<String>,
    /// Span events: (name, time ns, attributes).
    pub events: Vec<(String, u64, BTreeMap<String, Value>)>,
}

/// A trace as read back from the backend.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceView {
    /// Trace ID (32 hex digits).
    pub trace_id: String,
    /// Spans in start order.
    pub spans: Vec<SpanView>,
}

impl TraceView {
    /// The spans named `name`.
    pub fn named(&self, name: &str) -> Vec<&SpanView> {
        self.spans.iter().filter(|s| s.name == name).collect()
    }

    /// Spans without a parent.
    pub fn roots(&self) -> Vec<&SpanView> {
        self.spans
            .iter()
            .filter(|s| s.parent_span_id.is_none())
            .collect()
    }

    /// Direct children of `span_id`.
    pub fn children(&self, span_id: &str) -> Vec<&SpanView> {
        self.spans
            .iter()
            .filter(|s| s.parent_span_id.as_deref() == Some(span_id))
            .collect()
    }
}

/// Reads traces over the backend's HTTP API (Jaeger v2: `/api/v3` for OTLP-shaped traces,
/// `/api/traces` for search).
#[derive(Clone, Debug)]
pub struct TraceQuery {
    base: String,
    http: reqwest::Client,
}

impl TraceQuery {
    /// The trace with this ID, or `None` if the backend does not have it (yet).
    pub async fn get_trace(&self, trace_id_hex: &str) -> Option<TraceView> {
        let url = format!(
            "{}/api/v3/traces/{}",
            self.base,
            trace_id_hex.to_ascii_lowercase()
        );
        let resp = self.http.get(&url).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body: Value = resp.json().await.ok()?;
        let view = parse_otlp_json(trace_id_hex, body.get("result")?);
        (!view.spans.is_empty()).then_some(view)
    }

    /// IDs of traces with a span of `service` carrying all `tags` (string-valued attributes)
    /// that started within the last `lookback`.
    pub async fn find_trace_ids(
        &self,
        service: &str,
        tags: &[(&str, &str)],
        lookback: Duration,
    ) -> Vec<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let start = now.saturating_sub(lookback);
        let tags: serde_json::Map<String, Value> = tags
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/traces", self.base),
            &[
                ("service", service.to_string()),
                ("tags", Value::Object(tags).to_string()),
                ("start", start.as_micros().to_string()),
                (
                    "end",
                    (now + Duration::from_secs(60)).as_micros().to_string(),
                ),
                ("limit", "1000".to_string()),
            ],
        )
        .expect("trace query URL");
        let resp = self.http.get(url).send().await;
        let Ok(resp) = resp else { return Vec::new() };
        let Ok(body) = resp.json::<Value>().await else {
            return Vec::new();
        };
        let mut ids: Vec<String> = body
            .get("data")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.get("traceID").and_then(Value::as_str))
                    .map(|s| format!("{s:0>32}"))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Service names the backend knows.
    pub async fn services(&self) -> Vec<String> {
        let Ok(resp) = self
            .http
            .get(format!("{}/api/services", self.base))
            .send()
            .await
        else {
            return Vec::new();
        };
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        body.get("data")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Normalises OTLP/JSON `{"resourceSpans": [...]}` into a [`TraceView`].
pub fn parse_otlp_json(trace_id: &str, v: &Value) -> TraceView {
    let mut spans = Vec::new();
    for rs in v
        .get("resourceSpans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let resource = attrs(rs.pointer("/resource/attributes"));
        let service = resource
            .get("service.name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        for ss in rs
            .get("scopeSpans")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for s in ss
                .get("spans")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let str_of = |k: &str| {
                    s.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let parent = str_of("parentSpanId");
                spans.push(SpanView {
                    name: str_of("name"),
                    service: service.clone(),
                    span_id: str_of("spanId"),
                    parent_span_id: (!parent.is_empty() && parent.chars().any(|c| c != '0'))
                        .then_some(parent),
                    start_ns: num(s.get("startTimeUnixNano")) as u64,
                    end_ns: num(s.get("endTimeUnixNano")) as u64,
                    kind: num(s.get("kind")),
                    attributes: attrs(s.get("attributes")),
                    resource: resource.clone(),
                    status_code: s.pointer("/status/code").map(status_code).unwrap_or(0),
                    status_message: s
                        .pointer("/status/message")
                        .and_then(Value::as_str)
                        .filter(|m| !m.is_empty())
                        .map(String::from),
                    events: s
                        .get("events")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|e| {
                            (
                                e.get("name")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .to_string(),
                                num(e.get("timeUnixNano")) as u64,
                                attrs(e.get("attributes")),
                            )
                        })
                        .collect(),
                });
            }
        }
    }
    spans.sort_by(|a, b| (a.start_ns, &a.span_id).cmp(&(b.start_ns, &b.span_id)));
    TraceView {
        trace_id: trace_id.to_ascii_lowercase(),
        spans,
    }
}

fn status_code(v: &Value) -> i64 {
    match v {
        Value::String(s) if s.ends_with("ERROR") => 2,
        Value::String(s) if s.ends_with("OK") => 1,
        other => num(Some(other)),
    }
}

/// OTLP/JSON writes 64-bit integers as strings.
fn num(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn attrs(v: Option<&Value>) -> BTreeMap<String, Value> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|kv| {
            Some((
                kv.get("key")?.as_str()?.to_string(),
                any_value(kv.get("value")?),
            ))
        })
        .collect()
}

fn any_value(v: &Value) -> Value {
    if let Some(s) = v.get("stringValue") {
        return s.clone();
    }
    if let Some(b) = v.get("boolValue") {
        return b.clone();
    }
    if let Some(i) = v.get("intValue") {
        return Value::from(num(Some(i)));
    }
    if let Some(d) = v.get("doubleValue") {
        return d.clone();
    }
    if let Some(a) = v.pointer("/arrayValue/values").and_then(Value::as_array) {
        return Value::Array(a.iter().map(any_value).collect());
    }
    if let Some(kv) = v.pointer("/kvlistValue/values") {
        return Value::Object(attrs(Some(kv)).into_iter().collect());
    }
    Value::Null
}
