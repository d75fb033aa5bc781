//! Every PromQL expression of `config/dashboards/*.json`, run on a real Prometheus (built
//! by `tests/env/build.sh prometheus`) that scrapes a real `podtrace run` while a workload
//! starts on the test cluster, must return data, and data that makes sense.
//!
//! Prometheus scrapes the one controller twice: job `podtrace` as it is, and job
//! `podtrace-with-operation` with an `operation` label added to the phase histogram by
//! relabelling, the label the controller may grow later. The two jobs get the target label
//! `namespace` = `plain` / `with-operation`, so the dashboards' `$namespace` variable picks
//! one; every query runs against both, proving the dashboards survive that label.
//!
//! Queries are evaluated the way Grafana would send them: range queries over the test's
//! window with `step` = `$__interval` = the scrape interval (1 s), `$__rate_interval` =
//! max(`$__interval` + scrape interval, 4 × scrape interval) = 4 s, `$__range` = the window,
//! and every option of custom variables such as `$quantile`.
#![cfg(feature = "e2e")]

mod common;
mod tools;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{TestEnv, TestNamespace, wait_for};
use serde_json::{Value, json};
use workload::{Proc, free_port};

const SCRAPE_SECONDS: u64 = 1;
/// Grafana's `$__rate_interval` for a 1 s scrape interval and a 1 s `$__interval`.
const RATE_INTERVAL: &str = "4s";
/// The bucket range of podtrace's phase histograms (the kubelet's SLI buckets).
const BUCKET_MAX: f64 = 3600.0;
const NAMESPACES: [&str; 2] = ["plain", "with-operation"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// ---------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------

struct Prometheus {
    proc: Proc,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus on 127.0.0.1 with its own data directory, scraping `target`.
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"
global:
  scrape_interval: {SCRAPE_SECONDS}s
  scrape_timeout: {SCRAPE_SECONDS}s
  evaluation_interval: {SCRAPE_SECONDS}s
scrape_configs:
- job_name: podtrace
  static_configs:
  - targets: ["{target}"]
    labels: {{namespace: plain}}
- job_name: podtrace-with-operation
  static_configs:
  - targets: ["{target}"]
    labels: {{namespace: with-operation}}
  metric_relabel_configs:
  - source_labels: [__name__]
    regex: podtrace_pod_startup_phase_duration_seconds_(bucket|sum|count)
    target_label: operation
    replacement: PodStartup
"#
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let port = free_port();
        let mut cmd = Command::new(tools::tool("prometheus", "prometheus"));
        cmd.arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=1h");
        let proc = Proc::spawn("prometheus", cmd, &dir.path().join("prometheus.log"));
        Prometheus {
            proc,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn wait_ready(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            self.proc.assert_running();
            if let Ok(r) = self.http.get(format!("{}/-/ready", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Prometheus not ready:\n{}",
                self.proc.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// GET an API path; the `data` of a success answer, or the error Prometheus gave.
    async fn api(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.base), params)
            .map_err(|e| e.to_string())?;
        let resp = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        if let Some(w) = body.get("warnings") {
            return Err(format!("warnings: {w}"));
        }
        Ok(body["data"].clone())
    }

    async fn instant(&self, expr: &str, at: f64) -> Result<Value, String> {
        self.api(
            "/api/v1/query",
            &[("query", expr.to_owned()), ("time", format!("{at:.3}"))],
        )
        .await
    }

    async fn range(&self, expr: &str, start: f64, end: f64) -> Result<Value, String> {
        self.api(
            "/api/v1/query_range",
            &[
                ("query", expr.to_owned()),
                ("start", format!("{start:.3}")),
                ("end", format!("{end:.3}")),
                ("step", format!("{SCRAPE_SECONDS}s")),
            ],
        )
        .await
    }

    /// A scalar view of an instant query: the single sample's value, None if no series.
    async fn value(&self, expr: &str) -> Option<f64> {
        let data = self.instant(expr, now_s()).await.ok()?;
        let r = data["result"].as_array()?;
        (r.len() == 1).then(|| parse(&r[0]["value"][1]))
    }
}

fn parse(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a sample value: {v}"))
}

/// A query result as series: labels and (time, value) points.
#[derive(Debug)]
struct Series {
    labels: BTreeMap<String, String>,
    points: Vec<(f64, f64)>,
}

fn series_of(data: &Value) -> Vec<Series> {
    let result = data["result"].as_array().cloned().unwrap_or_default();
    result
        .iter()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let raw: Vec<Value> = match (&s["values"], &s["value"]) {
                (Value::Array(vs), _) => vs.clone(),
                (_, v @ Value::Array(_)) => vec![v.clone()],
                _ => Vec::new(),
            };
            let points = raw
                .iter()
                .map(|p| (p[0].as_f64().unwrap(), parse(&p[1])))
                .collect();
            Series { labels, points }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The dashboards' queries
// ---------------------------------------------------------------------------------------

/// One query of one panel, as Grafana would send it.
#[derive(Clone, Debug)]
struct PanelQuery {
    dashboard: String,
    panel: String,
    ref_id: String,
    expr: String,
    instant: bool,
}

fn dashboards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root().join("config/dashboards")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let d: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            out.push((p.file_name().unwrap().to_string_lossy().into_owned(), d));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every Prometheus query of every dashboard (panels in rows included).
fn prometheus_queries() -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for (file, d) in dashboards() {
        let mut stack: Vec<&Value> = d["panels"].as_array().unwrap().iter().collect();
        while let Some(p) = stack.pop() {
            stack.extend(p["panels"].as_array().into_iter().flatten());
            for t in p["targets"].as_array().into_iter().flatten() {
                let ds = if t["datasource"].is_object() {
                    &t["datasource"]
                } else {
                    &p["datasource"]
                };
                if ds["type"] != "prometheus" {
                    continue;
                }
                out.push(PanelQuery {
                    dashboard: file.clone(),
                    panel: p["title"].as_str().unwrap_or("?").to_owned(),
                    ref_id: t["refId"].as_str().unwrap_or("?").to_owned(),
                    expr: t["expr"].as_str().expect("expr").to_owned(),
                    instant: t["instant"] == true && t["range"] != true,
                });
            }
        }
    }
    out
}

/// The `label_values(metric, label)` queries of the dashboards' query variables.
fn variable_queries() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (file, d) in dashboards() {
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] != "query" || v["datasource"]["type"] != "prometheus" {
                continue;
            }
            let q = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .expect("variable query")
                .trim();
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| {
                    panic!("{file}: variable query {q} is not label_values(metric, label)")
                });
            let (metric, label) = inner.rsplit_once(',').expect("label_values(metric, label)");
            out.push((
                file.clone(),
                metric.trim().to_owned(),
                label.trim().to_owned(),
            ));
        }
    }
    out
}

/// The values a custom variable offers, by name, across the dashboards.
fn custom_variables() -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (_, d) in dashboards() {
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] == "custom" {
                let values = v["query"]
                    .as_str()
                    .unwrap()
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .collect();
                out.insert(v["name"].as_str().unwrap().to_owned(), values);
            }
        }
    }
    out
}

/// The expression with Grafana's variables replaced: one expression per combination of
/// custom variable values it uses.
fn substitute(expr: &str, namespace: &str, range_s: u64) -> Vec<(String, String)> {
    let mut e = expr
        .replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__range", &format!("{range_s}s"))
        .replace("$__interval", &format!("{SCRAPE_SECONDS}s"))
        .replace("${namespace}", namespace)
        .replace("$namespace", namespace);
    let mut variants = vec![(String::new(), std::mem::take(&mut e))];
    for (name, values) in custom_variables() {
        let mut next = Vec::new();
        for (desc, ex) in variants {
            let pats = [format!("${{{name}}}"), format!("${name}")];
            if pats.iter().any(|p| ex.contains(p.as_str())) {
                for v in &values {
                    let mut x = ex.clone();
                    for p in &pats {
                        x = x.replace(p.as_str(), v);
                    }
                    next.push((format!("{desc} ${name}={v}"), x));
                }
            } else {
                next.push((desc, ex));
            }
        }
        variants = next;
    }
    for (_, ex) in &variants {
        assert!(!ex.contains('$'), "unsubstituted Grafana variable in {ex}");
    }
    variants
}

// ---------------------------------------------------------------------------------------
// What "plausible" means, per kind of query
// ---------------------------------------------------------------------------------------

/// What the test created and the controller should have counted.
struct Expected {
    ready_pods: f64,
    traces: f64,
    pull_seconds: (f64, f64),
}

/// Names the plausibility rule that applies, or panics: a new kind of query needs a rule.
fn check_result(q: &PanelQuery, expr: &str, series: &[Series], exp: &Expected) -> Vec<String> {
    let mut wrong = Vec::new();
    let what = format!("{} / {} / {} `{expr}`", q.dashboard, q.panel, q.ref_id);
    let finite: Vec<(&Series, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().map(move |p| (s, p.1)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    if finite.is_empty() {
        return vec![format!(
            "{what}: no data ({} series, all empty or NaN)",
            series.len()
        )];
    }
    let values = || finite.iter().map(|(_, v)| *v);
    let max = values().fold(f64::MIN, f64::max);
    let min = values().fold(f64::MAX, f64::min);
    let last = |s: &Series| s.points.last().map(|p| p.1).unwrap_or(f64::NAN);
    let metric = expr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| w.starts_with("podtrace_"))
        .unwrap_or("");

    if expr.contains("histogram_quantile(") {
        if !(min >= 0.0 && max <= BUCKET_MAX) {
            wrong.push(format!(
                "{what}: quantile outside [0, {BUCKET_MAX}]: {min}..{max}"
            ));
        }
        for (s, v) in &finite {
            let phase = s
                .labels
                .get("phase")
                .map(String::as_str)
                .or(expr.contains(r#"phase="total""#).then_some("total"));
            match phase {
                // The pulls that succeed last the annotation's 800 ms, the (0.5, 1] bucket; the
                // failing one lasts until the failure is known (1-2 s: the kubelet's event
                // times have whole seconds), the (1, 2] bucket.
                Some("image_pull") if !(exp.pull_seconds.0..=exp.pull_seconds.1).contains(v) => {
                    wrong.push(format!(
                        "{what}: image_pull quantile {v} s outside {:?}",
                        exp.pull_seconds
                    ))
                }
                // Creation to Ready includes that pull and at least the sandbox step.
                Some("total") if !(exp.pull_seconds.0..=60.0).contains(v) => {
                    wrong.push(format!("{what}: startup quantile {v} s is implausible"))
                }
                _ => {}
            }
        }
    } else if expr.contains("rate(") {
        if min < 0.0 {
            wrong.push(format!("{what}: negative rate {min}"));
        }
        match metric {
            "podtrace_traces_completed_total"
            | "podtrace_traces_exported_total"
            | "podtrace_watch_events_total" => {
                if max <= 0.0 {
                    wrong.push(format!("{what}: no activity seen, max rate {max}"));
                }
            }
            // Nothing may be dropped with a healthy backend and a near-empty queue, and an
            // export error would have shown up in the controller's log as well.
            "podtrace_traces_dropped_total" | "podtrace_export_errors_total" => {
                if max != 0.0 {
                    wrong.push(format!("{what}: expected 0, got up to {max}"));
                }
            }
            "podtrace_status_write_errors_total" => {}
            other => panic!("no plausibility rule for the rate of {other:?} in {what}"),
        }
    } else {
        match metric {
            "podtrace_active_sessions" => {
                for s in series {
                    if last(s) != 1.0 {
                        wrong.push(format!(
                            "{what}: {} active sessions at the end, the test has 1",
                            last(s)
                        ));
                    }
                }
            }
            "podtrace_pods_in_flight" => {
                if max < 1.0 || min < 0.0 {
                    wrong.push(format!(
                        "{what}: pods in flight {min}..{max}, expected some"
                    ));
                }
                for s in series {
                    if last(s) != 0.0 {
                        wrong.push(format!(
                            "{what}: {} pods still in flight at the end",
                            last(s)
                        ));
                    }
                }
            }
            "podtrace_leader" => {
                if min != 1.0 || max != 1.0 {
                    wrong.push(format!(
                        "{what}: leader {min}..{max}; the only replica leads"
                    ));
                }
            }
            other => panic!("no plausibility rule for {other:?} in {what}"),
        }
    }
    wrong
}

/// Quantile panels must be ordered: for the same series, p50 ≤ p90 ≤ p99 at every instant.
fn check_quantile_order(
    what: &str,
    by_quantile: &BTreeMap<String, Vec<Series>>,
    wrong: &mut Vec<String>,
) {
    let mut qs: Vec<(f64, &Vec<Series>)> = by_quantile
        .iter()
        .map(|(q, s)| (q.parse::<f64>().unwrap(), s))
        .collect();
    qs.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in qs.windows(2) {
        let ((lo_q, lo), (hi_q, hi)) = (pair[0], pair[1]);
        for s in lo {
            let Some(h) = hi.iter().find(|h| h.labels == s.labels) else {
                wrong.push(format!("{what}: series {:?} only at q={lo_q}", s.labels));
                continue;
            };
            for (t, v) in &s.points {
                if let Some((_, hv)) = h.points.iter().find(|(ht, _)| ht == t)
                    && v.is_finite()
                    && hv.is_finite()
                    && v > hv
                {
                    wrong.push(format!(
                        "{what}: q={lo_q} gives {v} > q={hi_q} gives {hv} for {:?}",
                        s.labels
                    ));
                }
            }
        }
    }
}

/// `histogram_quantile(0.90, rest)` → ("0.90", "histogram_quantile(Q, rest)").
fn split_quantile(expr: &str) -> Option<(String, String)> {
    let rest = expr.strip_prefix("histogram_quantile(")?;
    let (q, tail) = rest.split_once(',')?;
    q.trim().parse::<f64>().ok()?;
    Some((q.trim().to_owned(), format!("histogram_quantile(Q,{tail}")))
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_dashboard_query_returns_plausible_data_from_a_real_prometheus() {
    let env = TestEnv::from_env();
    let client = env.client().await;
    workload::install_crd(&client).await;
    let ns = TestNamespace::create(&env, "dash").await;
    let t0 = now_s();

    // The controller, confined to the test's namespace so parallel tests do not feed it.
    let ctl_port = free_port();
    let ctl_dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podtrace"));
    cmd.arg("run")
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .arg(format!("--metrics-addr=127.0.0.1:{ctl_port}"))
        .args(["--leader-elect=false", "--grace=2s", "--log-format=json"])
        .arg(format!("--namespace={}", ns.name))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &env.otlp_grpc)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("RUST_LOG", "info");
    let mut ctl = Proc::spawn("podtrace run", cmd, &ctl_dir.path().join("controller.log"));

    let mut prom = Prometheus::start(&format!("127.0.0.1:{ctl_port}"));
    prom.wait_ready().await;
    let p = &prom;
    wait_for(
        Duration::from_secs(60),
        "both scrape jobs up",
        || async move {
            let up = p.instant("sum(up)", now_s()).await.ok()?;
            (series_of(&up).first()?.points.first()?.1 == 2.0).then_some(())
        },
    )
    .await;
    ctl.assert_running();

    workload::create_session(&client, &ns.name, "web", "web", json!({"team": "dash"})).await;
    workload::wait_active(&client, &ns.name, "web").await;

    // Wave 1 creates the histogram series; Prometheus cannot see a series' first samples as
    // an increase, so the rate()-based panels need wave 2 to move existing series.
    let a = "podtrace.dev/testenv-";
    let pull = json!({format!("{a}image-pull"): "pull", format!("{a}pull-duration"): "800ms"});
    workload::create_deployment(&client, &ns.name, "web", "web", 2, pull).await;
    workload::create_deployment(
        &client,
        &ns.name,
        "broken",
        "web",
        1,
        json!({format!("{a}image-pull"): "fail"}),
    )
    .await;
    let pr = &prom;
    let count = |expr: String, want: f64| async move {
        let p = pr;
        let what = format!("Prometheus to show {expr} == {want}");
        wait_for(Duration::from_secs(90), &what, || {
            let expr = expr.clone();
            async move { (p.value(&expr).await? == want).then_some(()) }
        })
        .await;
    };
    let total =
        r#"podtrace_pod_startup_phase_duration_seconds_count{phase="total", namespace="NS"}"#;
    for n in NAMESPACES {
        count(
            format!(r#"sum(podtrace_traces_completed_total{{namespace="{n}"}})"#),
            3.0,
        )
        .await;
        count(format!("sum({})", total.replace("NS", n)), 2.0).await;
    }
    workload::wait_settled(&client, &ns.name, "app=web", 3).await;

    workload::scale(&client, &ns.name, "web", 4).await;
    let pods = workload::wait_settled(&client, &ns.name, "app=web", 5).await;
    assert_eq!(pods.iter().filter(|p| workload::pull_failed(p)).count(), 1);
    // The counts must equal what the test created: 5 startups, 4 of them Ready.
    let expected = Expected {
        ready_pods: 4.0,
        traces: 5.0,
        pull_seconds: (0.5, 2.0),
    };
    for n in NAMESPACES {
        count(
            format!(r#"sum(podtrace_traces_completed_total{{namespace="{n}"}})"#),
            expected.traces,
        )
        .await;
        count(
            format!(r#"sum(podtrace_traces_exported_total{{namespace="{n}"}})"#),
            expected.traces,
        )
        .await;
        count(
            format!("sum({})", total.replace("NS", n)),
            expected.ready_pods,
        )
        .await;
        count(
            format!(r#"max(podtrace_pods_in_flight{{namespace="{n}"}})"#),
            0.0,
        )
        .await;
        count(
            format!(r#"sum(podtrace_pod_startup_phase_duration_seconds_count{{phase="image_pull", namespace="{n}"}})"#),
            expected.traces,
        )
        .await;
    }
    // The relabelled job really carries the extra label.
    let labelled = prom
        .value(r#"count(podtrace_pod_startup_phase_duration_seconds_bucket{namespace="with-operation", operation="PodStartup"})"#)
        .await;
    assert!(
        labelled.is_some_and(|n| n > 0.0),
        "relabelling added no operation label"
    );
    ctl.assert_running();

    // A whole number of steps, so the last step is `end` itself: it is after the samples
    // the waits above saw, and its rate window still reaches back across their increments.
    let end = now_s();
    let range_s = (end - t0).ceil() as u64;
    let start = end - range_s as f64;
    let mut wrong = Vec::new();
    let mut ran = 0;

    for (file, metric, label) in variable_queries() {
        // What Grafana's label_values(metric, label) asks: the label's values on that metric.
        let data = prom
            .api(
                &format!("/api/v1/label/{label}/values"),
                &[
                    ("match[]", metric.clone()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("{file}: label_values({metric}, {label}): {e}"));
        let got: BTreeSet<&str> = data
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if label == "namespace" {
            assert_eq!(
                got,
                NAMESPACES.into(),
                "{file}: label_values({metric}, {label})"
            );
        } else {
            assert!(
                !got.is_empty(),
                "{file}: label_values({metric}, {label}) is empty"
            );
        }
        ran += 1;
    }

    let queries = prometheus_queries();
    assert!(
        queries.len() >= 15,
        "dashboards lost their queries: {queries:#?}"
    );
    for q in &queries {
        for n in NAMESPACES {
            for (desc, expr) in substitute(&q.expr, n, range_s) {
                let data = if q.instant {
                    prom.instant(&expr, end).await
                } else {
                    prom.range(&expr, start, end).await
                };
                let data = data.unwrap_or_else(|e| {
                    panic!(
                        "{} / {}{desc}: Prometheus refused `{expr}`: {e}",
                        q.dashboard, q.panel
                    )
                });
                wrong.extend(check_result(q, &expr, &series_of(&data), &expected));
                ran += 1;
            }
        }
    }

    // Panels showing several quantiles of one histogram must not cross.
    let mut groups: BTreeMap<(String, String, String), BTreeMap<String, Vec<Series>>> =
        BTreeMap::new();
    for q in &queries {
        let Some((quantile, shape)) = split_quantile(&q.expr) else {
            continue;
        };
        for n in NAMESPACES {
            let (_, expr) = substitute(&q.expr, n, range_s).remove(0);
            let data = if q.instant {
                prom.instant(&expr, end).await
            } else {
                prom.range(&expr, start, end).await
            }
            .unwrap();
            groups
                .entry((q.panel.clone(), shape.clone(), n.to_owned()))
                .or_default()
                .insert(quantile.clone(), series_of(&data));
        }
    }
    let mut ordered = 0;
    for ((panel, shape, n), by_q) in &groups {
        if by_q.len() > 1 {
            check_quantile_order(&format!("{panel} ({n}) {shape}"), by_q, &mut wrong);
            ordered += 1;
        }
    }
    assert!(
        ordered >= 2,
        "no multi-quantile panel was compared: {groups:?}"
    );

    assert!(
        wrong.is_empty(),
        "{} of {ran} dashboard queries returned implausible data:\n  {}",
        wrong.len(),
        wrong.join("\n  ")
    );
    eprintln!("{ran} dashboard queries returned plausible data");
    assert!(
        !ctl.log_text().to_lowercase().contains("forbidden"),
        "controller log: {}",
        ctl.log_tail()
    );
    ns.delete().await;
}
