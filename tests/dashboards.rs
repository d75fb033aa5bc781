//! The Grafana dashboards in `config/dashboards`, without Grafana (AGPL, not used here):
//! - each file strictly decodes into grafana-foundation-sdk's dashboard types, the Go
//!   types generated from Grafana's published schema (`tests/env/dashboard-check`, built by
//!   `tests/env/build.sh dashboard-check`);
//! - the TraceQL of the Tempo panels names only spans and attributes that
//!   docs/trace-model.md documents, read from that document rather than a list kept here.
//!
//! `tests/e2e_dashboards.rs` runs every PromQL expression on a real Prometheus.

mod tools;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboards() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("config/dashboards"))
        .expect("config/dashboards")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "dashboards missing: {files:?}");
    files
}

fn check(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(tools::tool("dashboard-check", "dashboard-check"))
        .args(files)
        .output()
        .expect("running dashboard-check");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn dashboards_fit_grafanas_dashboard_schema() {
    let files = dashboards();
    let (ok, report) = check(&files);
    assert!(
        ok,
        "dashboards do not fit grafana-foundation-sdk's schema types:\n{report}"
    );
    for f in &files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let panels = d["panels"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] != "row")
            .count();
        assert!(
            report.contains(&format!("ok {} ({panels} panels,", f.display())),
            "dashboard-check did not look at every panel of {}:\n{report}",
            f.display()
        );
    }
}

/// The checker must be able to say no, and say where: a dashboard with one defect of each
/// kind it is meant to catch.
#[test]
fn schema_check_reports_the_json_path_of_each_defect() {
    let mut d: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("config/dashboards/podtrace-metrics.json")).unwrap(),
    )
    .unwrap();
    let panels = d["panels"].as_array_mut().unwrap();
    panels[0]["options"]["colourMode"] = "value".into();
    panels[1]["fieldConfig"]["defaults"]["unitt"] = "s".into();
    panels[2]["type"] = "no-such-panel".into();
    panels[3]["targets"][0]["datasource"]["type"] = "no-such-datasource".into();
    panels[3]["datasource"]["type"] = "no-such-datasource".into();
    panels[4]["gridPos"]["w"] = "wide".into();
    d["refresh"] = Value::from(30);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&d).unwrap()).unwrap();
    let (ok, report) = check(std::slice::from_ref(&bad));
    assert!(!ok, "a broken dashboard passed:\n{report}");
    for path in [
        "panels[0].options.colourMode",
        "panels[1].fieldConfig",
        "panels[2].type",
        "panels[3].targets[0]",
        "panels[4].gridPos",
        "refresh",
    ] {
        assert!(
            report.lines().any(|l| l.contains(&format!(": {path}"))),
            "no problem reported at {path}:\n{report}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// TraceQL against docs/trace-model.md
// ---------------------------------------------------------------------------------------

/// What docs/trace-model.md documents: span names (first column of every table whose first
/// header cell is `span`) and attribute keys (every backticked dotted lowercase word).
struct TraceModel {
    spans: BTreeSet<String>,
    attributes: BTreeSet<String>,
}

fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

fn is_dotted_key(s: &str) -> bool {
    s.contains('.')
        && !s.starts_with('.')
        && !s.ends_with('.')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

fn trace_model() -> TraceModel {
    let doc = std::fs::read_to_string(root().join("docs/trace-model.md")).unwrap();
    let mut spans = BTreeSet::new();
    let mut in_span_table = false;
    for line in doc.lines() {
        let l = line.trim();
        if !l.starts_with('|') {
            in_span_table = false;
            continue;
        }
        let first = l.trim_matches('|').split('|').next().unwrap_or("").trim();
        if first.eq_ignore_ascii_case("span") {
            in_span_table = true;
            continue;
        }
        if in_span_table {
            spans.extend(
                backticked(first)
                    .into_iter()
                    .filter(|s| is_dotted_key(s))
                    .map(String::from),
            );
        }
    }
    let attributes = backticked(&doc)
        .into_iter()
        .filter(|s| is_dotted_key(s))
        .map(String::from)
        .collect();
    TraceModel { spans, attributes }
}

/// TraceQL words that are not span names or attributes.
const TRACEQL_WORDS: &[&str] = &[
    // intrinsics
    "name",
    "status",
    "duration",
    "kind",
    "statusMessage",
    "rootName",
    "rootServiceName",
    "traceDuration",
    "span:name",
    "span:status",
    "span:duration",
    "span:kind",
    "trace:duration",
    "trace:rootName",
    "trace:rootService",
    "event:name",
    // status and kind values, literals
    "error",
    "ok",
    "unset",
    "server",
    "client",
    "internal",
    "producer",
    "consumer",
    "unspecified",
    "true",
    "false",
    "nil",
    // pipeline
    "by",
    "select",
    "rate",
    "count_over_time",
    "quantile_over_time",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "histogram_over_time",
    "compare",
    "topk",
    "bottomk",
    "count",
    "avg",
    "min",
    "max",
    "sum",
    "with",
];

/// Problems of one TraceQL query: unknown span names in `name` comparisons, attributes
/// the model does not document, and words TraceQL does not know.
fn traceql_problems(q: &str, model: &TraceModel) -> Vec<String> {
    let mut problems = Vec::new();
    // Grafana variables (`${min_duration}`, `$x`) stand for durations or values.
    let mut text = String::new();
    let mut rest = q;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let end = if let Some(r) = rest.strip_prefix('{') {
            r.find('}').map(|j| j + 2).unwrap_or(rest.len())
        } else {
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len())
        };
        text.push_str(" 1s ");
        rest = &rest[end..];
    }
    text.push_str(rest);

    // Split off string literals; each is checked against the word before its operator.
    let parts: Vec<&str> = text.split('"').collect();
    if parts.len().is_multiple_of(2) {
        return vec![format!("unbalanced quotes: {q}")];
    }
    for (i, code) in parts.iter().enumerate().step_by(2) {
        for word in code
            .split(|c: char| !(c.is_ascii_alphanumeric() || "._:".contains(c)))
            .filter(|w| !w.is_empty())
        {
            if word.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                continue; // numbers and durations: 1s, .5, 100ms
            }
            let attr = word
                .strip_prefix("span.")
                .or_else(|| word.strip_prefix("resource."))
                .or_else(|| word.strip_prefix('.'));
            match attr {
                Some(a) if a.chars().next().is_some_and(|c| c.is_ascii_digit()) => {}
                Some(a) => {
                    if !model.attributes.contains(a) {
                        problems.push(format!("attribute {a} is not in docs/trace-model.md: {q}"));
                    }
                }
                None if TRACEQL_WORDS.contains(&word) => {}
                None => problems.push(format!("unknown TraceQL word {word:?}: {q}")),
            }
        }
        // The literal after this code part, if it is compared with `name`.
        if let Some(literal) = parts.get(i + 1) {
            let op_end = code.trim_end();
            let compared_with_name = ["=", "!=", "=~", "!~"].iter().any(|op| {
                op_end.strip_suffix(op).is_some_and(|l| {
                    let last = l
                        .trim_end()
                        .rsplit(|c: char| c.is_whitespace() || "{(&|".contains(c))
                        .next()
                        .unwrap_or("");
                    last == "name" || last == "span:name"
                })
            });
            if compared_with_name {
                for name in literal.split('|') {
                    if !model.spans.contains(name) {
                        problems.push(format!(
                            "span name {name:?} is not in docs/trace-model.md: {q}"
                        ));
                    }
                }
            }
        }
    }
    problems
}

fn traces_queries() -> Vec<String> {
    let d: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("config/dashboards/podtrace-traces.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = d["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = stack.pop() {
        stack.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(q) = t["query"].as_str() {
                out.push(q.to_owned());
            }
        }
    }
    out
}

#[test]
fn trace_model_document_yields_the_span_names_and_attributes() {
    let m = trace_model();
    // The parse itself must work, or every query check below would pass vacuously.
    for s in [
        "pod.startup",
        "pod.schedule",
        "container.image_pull",
        "pod.readiness",
    ] {
        assert!(
            m.spans.contains(s),
            "span {s} not found in docs/trace-model.md: {:?}",
            m.spans
        );
    }
    for a in [
        "k8s.pod.name",
        "podtrace.outcome",
        "k8s.node.name",
        "service.name",
    ] {
        assert!(m.attributes.contains(a), "attribute {a} not found");
    }
    assert!(
        !m.spans.contains("k8s.pod.name"),
        "attribute keys leaked into the span names: {:?}",
        m.spans
    );
}

#[test]
fn tempo_panels_use_only_spans_and_attributes_of_the_trace_model() {
    let model = trace_model();
    let queries = traces_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    let problems: Vec<String> = queries
        .iter()
        .flat_map(|q| traceql_problems(q, &model))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker must reject what it is there to reject.
#[test]
fn traceql_check_rejects_undocumented_names() {
    let model = trace_model();
    let bad = [
        r#"{ name = "pod.start" }"#,
        r#"{ name =~ "pod.schedule|pod.bogus" }"#,
        r#"{ .k8s.pod.nam = "x" }"#,
        r#"{ span.podtrace.made_up = true }"#,
        r#"{ name = "pod.startup" } | quantile_over_tim(duration, .9)"#,
    ];
    for q in bad {
        assert!(!traceql_problems(q, &model).is_empty(), "accepted {q}");
    }
    let good = [
        r#"{ name = "pod.startup" && resource.service.name = "podtrace" && .podtrace.outcome = "failed" }"#,
        r#"{ name != "pod.startup" && status = error } | count_over_time() by (name)"#,
        r#"{ name = "pod.schedule" && duration > ${min_phase_duration} }"#,
    ];
    for q in good {
        assert_eq!(traceql_problems(q, &model), Vec::<String>::new(), "{q}");
    }
}
