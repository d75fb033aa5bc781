//! Golden files of `podtrace replay --format otlp-json` for every scenario under
//! `tests/fixtures/`. Regenerate with `UPDATE_GOLDEN=1 cargo test --test replay_golden`
//! and review the diff before committing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Scenario directories: every directory under tests/fixtures holding recordings.
fn scenarios() -> Vec<(String, Vec<PathBuf>)> {
    let dir = root().join("tests/fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/fixtures exists") {
        let path = entry.expect("dir entry").path();
        if !path.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
            .expect("scenario readable")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                n.ends_with(".json") || n.ends_with(".json.gz") || n.ends_with(".jsonl")
            })
            .collect();
        if files.is_empty() {
            continue;
        }
        // Sorted so equal resourceVersions always merge in the same order.
        files.sort();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_string();
        out.push((name, files));
    }
    out.sort();
    out
}

fn replay(files: &[PathBuf]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_podtrace"))
        .arg("replay")
        .args(["--format", "otlp-json"])
        .args(files)
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .env("NO_COLOR", "1")
        .output()
        .expect("run podtrace");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn is_kv_list(l: &[Value]) -> bool {
    !l.is_empty()
        && l.iter()
            .all(|v| v.get("key").is_some_and(Value::is_string) && v.get("value").is_some())
}

/// Up to `limit` JSON paths where `a` and `b` differ.
fn json_diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => json_diff(&format!("{path}.{k}"), p, q, out, limit),
                    (Some(_), None) => out.push(format!("{path}.{k}: missing from output")),
                    (None, Some(_)) => out.push(format!("{path}.{k}: not in golden file")),
                    (None, None) => {}
                }
            }
        }
        // OTLP key/value lists (attributes): compare by key, so an added or removed
        // attribute is named instead of the whole list being reported.
        (Value::Array(x), Value::Array(y)) if is_kv_list(x) && is_kv_list(y) => {
            let by_key = |l: &[Value]| -> serde_json::Map<String, Value> {
                l.iter()
                    .map(|kv| {
                        (
                            kv["key"].as_str().unwrap_or_default().to_string(),
                            kv["value"].clone(),
                        )
                    })
                    .collect()
            };
            json_diff(
                &format!("{path}{{by key}}"),
                &Value::Object(by_key(x)),
                &Value::Object(by_key(y)),
                out,
                limit,
            );
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                // Name spans and events in the path: `spans[3](container.start)`.
                let label = p
                    .get("name")
                    .and_then(Value::as_str)
                    .map(|n| format!("({n})"))
                    .unwrap_or_default();
                json_diff(&format!("{path}[{i}]{label}"), p, q, out, limit);
            }
        }
        _ => {
            let short = |v: &Value| {
                let s = v.to_string();
                if s.chars().count() > 120 {
                    format!("{}…", s.chars().take(120).collect::<String>())
                } else {
                    s
                }
            };
            out.push(format!(
                "{path}: golden {} != output {}",
                short(a),
                short(b)
            ));
        }
    }
}

fn compare(name: &str, golden_path: &Path, got: &str) -> Result<(), String> {
    let Ok(want) = std::fs::read_to_string(golden_path) else {
        return Err(format!(
            "{name}: no golden file {}; create it with UPDATE_GOLDEN=1 cargo test --test replay_golden",
            golden_path.display()
        ));
    };
    if want == got {
        return Ok(());
    }
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut msg = format!("{name}: output differs from {}", golden_path.display());
    if w.len() != g.len() {
        msg += &format!("\n  golden has {} traces, output has {}", w.len(), g.len());
    }
    for (i, (a, b)) in w.iter().zip(&g).enumerate() {
        if a == b {
            continue;
        }
        msg += &format!("\n  line {} (trace {}):", i + 1, i + 1);
        match (
            serde_json::from_str::<Value>(a),
            serde_json::from_str::<Value>(b),
        ) {
            (Ok(a), Ok(b)) => {
                let mut diffs = Vec::new();
                json_diff("$", &a, &b, &mut diffs, 12);
                for d in diffs {
                    msg += &format!("\n    {d}");
                }
            }
            _ => msg += "\n    (not JSON)",
        }
    }
    msg += "\n  if the change is intended: UPDATE_GOLDEN=1 cargo test --test replay_golden";
    Err(msg)
}

#[test]
fn otlp_json_matches_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let golden_dir = root().join("tests/golden");
    let scenarios = scenarios();
    assert!(!scenarios.is_empty(), "no fixture scenarios found");
    let mut failures = Vec::new();
    for (name, files) in &scenarios {
        let got = replay(files);
        assert!(!got.trim().is_empty(), "{name}: replay produced no trace");
        for (i, line) in got.lines().enumerate() {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name} line {}: {e}", i + 1));
            assert!(
                v["resourceSpans"].as_array().is_some_and(|a| !a.is_empty()),
                "{name} line {}",
                i + 1
            );
        }
        // Replay is deterministic: a second run gives the same bytes.
        assert_eq!(
            got,
            replay(files),
            "{name}: replay output is not deterministic"
        );
        let golden = golden_dir.join(format!("{name}.otlp.json"));
        if update {
            std::fs::create_dir_all(&golden_dir).expect("create tests/golden");
            std::fs::write(&golden, &got).expect("write golden file");
            continue;
        }
        if let Err(e) = compare(name, &golden, &got) {
            failures.push(e);
        }
    }
    // A golden file without a scenario is stale.
    if let Ok(entries) = std::fs::read_dir(&golden_dir) {
        for e in entries.filter_map(Result::ok) {
            let file = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = file.strip_suffix(".otlp.json")
                && !scenarios.iter().any(|(n, _)| n == stem)
            {
                failures.push(format!(
                    "stale golden file tests/golden/{file}: no tests/fixtures/{stem}/"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn diff_summary_names_the_differing_field() {
    let a: Value =
        serde_json::json!({"resourceSpans": [{"spans": [{"name": "a", "endTimeUnixNano": "1"}]}]});
    let b: Value =
        serde_json::json!({"resourceSpans": [{"spans": [{"name": "a", "endTimeUnixNano": "2"}]}]});
    let mut d = Vec::new();
    json_diff("$", &a, &b, &mut d, 10);
    assert_eq!(
        d,
        ["$.resourceSpans[0].spans[0](a).endTimeUnixNano: golden \"1\" != output \"2\""]
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.otlp.json");
    std::fs::write(&p, format!("{a}\n")).unwrap();
    let err = compare("x", &p, &format!("{b}\n")).unwrap_err();
    assert!(
        err.contains("line 1") && err.contains("endTimeUnixNano"),
        "{err}"
    );
    assert!(compare("x", &p, &format!("{a}\n")).is_ok());
    let kv = |keys: &[&str]| -> Value {
        keys.iter()
            .map(|k| serde_json::json!({"key": k, "value": {"stringValue": "v"}}))
            .collect()
    };
    let mut d = Vec::new();
    json_diff(
        "$.attributes",
        &kv(&["a", "b", "c"]),
        &kv(&["a", "c", "d"]),
        &mut d,
        10,
    );
    assert_eq!(
        d,
        [
            "$.attributes{by key}.b: missing from output",
            "$.attributes{by key}.d: not in golden file"
        ]
    );
}
