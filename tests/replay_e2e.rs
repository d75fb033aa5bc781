//! `podtrace replay --otlp-endpoint` against the test environment's real trace backend, over
//! OTLP/gRPC and OTLP/HTTP: every trace must be found by ID with all its spans intact.
#![cfg(feature = "e2e")]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{TestEnv, parse_otlp_json, random_hex, wait_for};
use serde_json::Value;

/// Copies a fixture scenario with every pod UID made unique, so each run yields trace IDs
/// the backend has never seen (trace IDs derive from pod UIDs).
fn unique_copy(scenario: &str, dir: &Path) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(scenario);
    let pods = std::fs::read_to_string(src.join("pods.json")).expect("pods.json");
    let mut uids = BTreeSet::new();
    // A pod with a traceparent takes its trace ID from it: make those unique too.
    let mut remote_trace_ids = BTreeSet::new();
    for line in pods.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("fixture JSON");
        if let Some(uid) = v.pointer("/object/metadata/uid").and_then(Value::as_str) {
            uids.insert(uid.to_string());
        }
        let tp = v
            .pointer("/object/metadata/annotations/tracing.k8s.io~1traceparent")
            .and_then(Value::as_str);
        if let Some(id) = tp.and_then(|tp| tp.split('-').nth(1)) {
            remote_trace_ids.insert(id.to_string());
        }
    }
    assert!(!uids.is_empty(), "{scenario} has no pods");
    let suffix = random_hex(6);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&src).expect("fixture dir") {
        let path = entry.expect("entry").path();
        let mut text = std::fs::read_to_string(&path).expect("fixture file");
        for uid in &uids {
            text = text.replace(uid.as_str(), &format!("{uid}-{suffix}"));
        }
        for id in &remote_trace_ids {
            text = text.replace(id.as_str(), &random_hex(16));
        }
        let out = dir.join(path.file_name().expect("file name"));
        std::fs::write(&out, text).expect("write copy");
        files.push(out);
    }
    files.sort();
    files
}

/// (span, parent, name, service, start, end, status) — what must survive the round trip.
type Key = (String, Option<String>, String, String, u64, u64, i64);

fn keys(view: &common::TraceView) -> BTreeSet<Key> {
    view.spans
        .iter()
        .map(|s| {
            (
                s.span_id.clone(),
                s.parent_span_id.clone(),
                s.name.clone(),
                s.service.clone(),
                s.start_ns,
                // Jaeger stores a zero-length span with a minimal duration (1 ns).
                if s.end_ns.saturating_sub(s.start_ns) <= 1_000 {
                    s.start_ns
                } else {
                    s.end_ns
                },
                s.status_code,
            )
        })
        .collect()
}

async fn replay_and_verify(protocol: &str, endpoint: &str) {
    let env = TestEnv::from_env();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).expect("mkdir");
    std::fs::create_dir_all(&b).expect("mkdir");
    let mut files = unique_copy("multi-container-init", &a);
    files.extend(unique_copy("crash-loop", &b));
    let out = Command::new(env!("CARGO_BIN_EXE_podtrace"))
        .arg("replay")
        .args([
            "--format",
            "otlp-json",
            "--otlp-endpoint",
            endpoint,
            "--otlp-protocol",
            protocol,
        ])
        .args(&files)
        .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .output()
        .expect("run podtrace replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "replay over {protocol} failed: {stderr}"
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let expected: Vec<common::TraceView> = stdout
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("OTLP/JSON line");
            let id = v
                .pointer("/resourceSpans/0/scopeSpans/0/spans/0/traceId")
                .and_then(Value::as_str)
                .expect("traceId");
            parse_otlp_json(id, &v)
        })
        .collect();
    assert!(
        expected.len() >= 2,
        "expected traces from both scenarios, got {}",
        expected.len()
    );
    assert!(
        stderr.contains(&format!("exported {} traces", expected.len())),
        "{stderr}"
    );

    let query = env.traces();
    for want in &expected {
        let want_keys = keys(want);
        let got = wait_for(
            Duration::from_secs(30),
            &format!("trace {} over {protocol}", want.trace_id),
            || {
                let query = query.clone();
                let id = want.trace_id.clone();
                let n = want_keys.len();
                async move { query.get_trace(&id).await.filter(|t| t.spans.len() >= n) }
            },
        )
        .await;
        assert_eq!(
            keys(&got),
            want_keys,
            "trace {} differs in the backend",
            want.trace_id
        );
        // The root's parent is absent, or the remote parent from the pod's traceparent.
        let ids: BTreeSet<&str> = got.spans.iter().map(|s| s.span_id.as_str()).collect();
        let roots: Vec<_> = got
            .spans
            .iter()
            .filter(|s| s.parent_span_id.as_deref().is_none_or(|p| !ids.contains(p)))
            .collect();
        assert_eq!(roots.len(), 1, "one root span");
        assert_eq!(roots[0].name, "pod.startup");
        let kubelet = got
            .spans
            .iter()
            .find(|s| s.service == "kubelet")
            .expect("a kubelet span");
        assert!(
            kubelet.resource.contains_key("k8s.node.name"),
            "kubelet resource names its node"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_exports_over_grpc() {
    let env = TestEnv::from_env();
    replay_and_verify("grpc", &env.otlp_grpc).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_exports_over_http() {
    let env = TestEnv::from_env();
    // A base URL: podtrace appends /v1/traces.
    replay_and_verify("http", &env.otlp_http).await;
}

#[test]
fn replay_fails_when_the_receiver_is_unreachable() {
    // Nothing listens on port 9 (discard) on loopback: export fails, replay says so.
    let dir = tempfile::tempdir().expect("tempdir");
    let files = unique_copy("cached-images", dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_podtrace"))
        .arg("replay")
        .args([
            "--format",
            "none",
            "--otlp-endpoint",
            "http://127.0.0.1:9",
            "--otlp-protocol",
            "http",
        ])
        .args(["--export-deadline", "2s"])
        .args(&files)
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
        .output()
        .expect("run podtrace replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("not exported") && stderr.contains("last error: HTTP request failed"),
        "{stderr}"
    );
}
