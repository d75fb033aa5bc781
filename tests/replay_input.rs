//! `podtrace replay` input reading: formats, merge order, error locations, `--strict`.

use std::io::Write as _;
use std::process::Command;
use std::sync::Arc;

use podtrace::observe::{Action, Object};
use podtrace::replay::input::{InputError, Inputs, Record, Skip, Source};
use serde_json::{Value, json};

fn pod(name: &str, rv: Option<&str>) -> Value {
    let mut meta = json!({"name": name, "namespace": "demo", "uid": format!("uid-{name}"),
        "creationTimestamp": "2026-11-21T10:00:00Z"});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}})
}

fn event(name: &str, rv: Option<&str>) -> Value {
    let mut meta = json!({"name": name, "namespace": "demo", "uid": format!("ev-{name}")});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv);
    }
    json!({"apiVersion": "v1", "kind": "Event", "metadata": meta,
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "demo", "uid": "uid-p"},
        "reason": "Scheduled", "message": "ok", "type": "Normal",
        "eventTime": "2026-11-21T10:00:00.031250Z", "reportingComponent": "default-scheduler"})
}

fn watch(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

fn lines(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        out.extend(serde_json::to_vec(v).unwrap());
        out.push(b'\n');
    }
    out
}

fn pretty(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        out.extend(serde_json::to_vec_pretty(v).unwrap());
        out.push(b'\n');
    }
    out
}

fn src(name: &str, data: Vec<u8>) -> Source {
    Source::Bytes {
        name: name.into(),
        data: Arc::from(data),
    }
}

/// (action, object name, file, line) per observation; errors and skips as text.
fn read(sources: Vec<Source>) -> Vec<String> {
    Inputs::open(&sources)
        .unwrap()
        .map(|r| match r {
            Ok(Record::Observation {
                observation,
                file,
                line,
            }) => {
                let name = match &observation.object {
                    Object::Pod(p) => format!("pod/{}", p.name),
                    Object::Event(e) => format!("event/{}", e.name),
                    Object::Node(n) => format!("node/{}", n.name),
                };
                let action = match observation.action {
                    Action::Added => "ADDED",
                    Action::Modified => "MODIFIED",
                    Action::Deleted => "DELETED",
                };
                format!("{action} {name} {file}:{line}")
            }
            Ok(Record::Skipped(Skip::Bookmark)) => "skip BOOKMARK".into(),
            Ok(Record::Skipped(Skip::Unsupported(k))) => format!("skip {k}"),
            Err(InputError { file, line, reason }) => format!("error {file}:{line}: {reason}"),
        })
        .collect()
}

#[test]
fn line_delimited_and_pretty_printed_streams() {
    let values = vec![
        watch("ADDED", pod("a", Some("10"))),
        watch("MODIFIED", pod("a", Some("11"))),
        watch("DELETED", pod("a", Some("12"))),
    ];
    assert_eq!(
        read(vec![src("w.json", lines(&values))]),
        [
            "ADDED pod/a w.json:1",
            "MODIFIED pod/a w.json:2",
            "DELETED pod/a w.json:3"
        ]
    );
    let pretty_bytes = pretty(&values);
    // Each pretty value starts where the previous one ended, plus one line.
    let first_len = serde_json::to_string_pretty(&values[0])
        .unwrap()
        .lines()
        .count() as u64;
    let got = read(vec![src("p.json", pretty_bytes)]);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], "ADDED pod/a p.json:1");
    assert_eq!(got[1], format!("MODIFIED pod/a p.json:{}", first_len + 1));
    assert_eq!(
        got[2],
        format!("DELETED pod/a p.json:{}", 2 * first_len + 1)
    );
}

#[test]
fn list_documents_and_plain_objects_are_added() {
    let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
        "items": [pod("x", Some("5")), pod("y", Some("6")), event("e", Some("7"))]});
    let plain = pod("z", Some("8"));
    let mut data = serde_json::to_vec_pretty(&list).unwrap();
    data.push(b'\n');
    let list_lines = data.iter().filter(|b| **b == b'\n').count() as u64;
    data.extend(serde_json::to_vec(&plain).unwrap());
    assert_eq!(
        read(vec![src("l.json", data)]),
        [
            "ADDED pod/x l.json:1".to_string(),
            "ADDED pod/y l.json:1".to_string(),
            "ADDED event/e l.json:1".to_string(),
            format!("ADDED pod/z l.json:{}", list_lines + 1),
        ]
    );
}

#[test]
fn gzip_input_is_detected_by_magic() {
    let values = vec![
        watch("ADDED", pod("g", Some("1"))),
        watch("MODIFIED", pod("g", Some("2"))),
    ];
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&lines(&values)).unwrap();
    let gz = enc.finish().unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    // The name does not end in .gz: detection is by content.
    assert_eq!(
        read(vec![src("rec.json", gz)]),
        ["ADDED pod/g rec.json:1", "MODIFIED pod/g rec.json:2"]
    );
}

#[test]
fn files_merge_by_resource_version_keeping_file_order_for_the_rest() {
    let pods = lines(&[
        watch("ADDED", pod("a", Some("1"))),
        watch("MODIFIED", pod("a", Some("5"))),
        watch("MODIFIED", pod("a", Some("9"))),
    ]);
    let events = lines(&[
        watch("ADDED", event("e2", Some("2"))),
        watch("ADDED", event("e6", Some("6"))),
        // No numeric resourceVersion: stays right after its file neighbour e6.
        watch("ADDED", event("enorv", None)),
        watch("ADDED", event("e7", Some("7"))),
        watch("ADDED", event("e10", Some("10"))),
    ]);
    let nodes = lines(&[watch(
        "ADDED",
        json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "resourceVersion": "5"}}),
    )]);
    assert_eq!(
        read(vec![
            src("pods", pods),
            src("events", events),
            src("nodes", nodes)
        ]),
        [
            "ADDED pod/a pods:1",
            "ADDED event/e2 events:1",
            // Equal resourceVersions: the file named first goes first.
            "MODIFIED pod/a pods:2",
            "ADDED node/n1 nodes:1",
            "ADDED event/e6 events:2",
            "ADDED event/enorv events:3",
            "ADDED event/e7 events:4",
            "MODIFIED pod/a pods:3",
            "ADDED event/e10 events:5",
        ]
    );
}

#[test]
fn malformed_values_are_reported_with_their_line_and_reading_continues() {
    let good = serde_json::to_string(&watch("ADDED", pod("a", Some("1")))).unwrap();
    let good2 = serde_json::to_string(&watch("MODIFIED", pod("a", Some("2")))).unwrap();
    let data = format!(
        "{good}\n\n{{\"type\":\"ADDED\",\"object\":{{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{{\"uid\":1}}}}}}\nnot json at all\n{{\"type\":\"ADDED\",\"object\":{{\"kind\":\n{good2}\n{{\"type\":\"BOOKMARK\",\"object\":{{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"3\"}}}}}}\n{{\"type\":\"ADDED\",\"object\":{{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"metadata\":{{\"name\":\"r\"}}}}}}\n"
    );
    let got = read(vec![src("bad.json", data.into_bytes())]);
    assert_eq!(got.len(), 7, "{got:#?}");
    assert_eq!(got[0], "ADDED pod/a bad.json:1");
    assert!(
        got[1].starts_with("error bad.json:3: malformed Pod"),
        "{}",
        got[1]
    );
    assert!(
        got[2].starts_with("error bad.json:4: not JSON"),
        "{}",
        got[2]
    );
    // A truncated value is cut where the next value starts in column 0.
    assert!(
        got[3].starts_with("error bad.json:5: unexpected end of JSON value"),
        "{}",
        got[3]
    );
    assert_eq!(got[4], "MODIFIED pod/a bad.json:6");
    assert_eq!(got[5], "skip BOOKMARK");
    assert_eq!(got[6], "skip apps/v1/ReplicaSet");
}

#[test]
fn syntax_errors_in_pretty_printed_values_point_at_the_offending_line() {
    let first = serde_json::to_string_pretty(&watch("ADDED", pod("a", Some("1")))).unwrap();
    let n = first.lines().count() as u64;
    // Second value: a missing comma on its 4th line.
    let second = "{\n  \"type\": \"ADDED\",\n  \"object\": {\n    \"apiVersion\": \"v1\"\n    \"kind\": \"Pod\"\n  }\n}\n";
    let third = serde_json::to_string_pretty(&watch("MODIFIED", pod("a", Some("2")))).unwrap();
    let data = format!("{first}\n{second}{third}\n");
    let got = read(vec![src("pretty.json", data.into_bytes())]);
    assert_eq!(got.len(), 3, "{got:#?}");
    // Line of `"kind"` (the token after the missing comma): value start + 4.
    let want = n + 1 + 4;
    assert!(
        got[1].starts_with(&format!("error pretty.json:{want}: invalid JSON")),
        "{}",
        got[1]
    );
    assert_eq!(got[2], format!("MODIFIED pod/a pretty.json:{}", n + 1 + 7));
}

#[test]
fn observed_at_is_carried() {
    let mut v = watch("ADDED", pod("a", Some("1")));
    v["observedAt"] = json!("2026-11-21T10:00:00.123Z");
    let mut bad = watch("ADDED", pod("b", Some("2")));
    bad["observedAt"] = json!("yesterday");
    let mut it = Inputs::open(&[src("o.json", lines(&[v, bad]))]).unwrap();
    match it.next() {
        Some(Ok(Record::Observation { observation, .. })) => {
            assert_eq!(
                observation.observed_at,
                Some("2026-11-21T10:00:00.123Z".parse().unwrap())
            );
        }
        other => panic!("{other:?}"),
    }
    match it.next() {
        Some(Err(e)) => assert!(
            e.to_string().starts_with("o.json:2: invalid observedAt"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(it.next().is_none());
}

fn write_temp(dir: &tempfile::TempDir, name: &str, data: &[u8]) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, data).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn strict_exits_non_zero_and_lenient_reports_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::to_string(&watch("ADDED", pod("a", Some("1")))).unwrap();
    let path = write_temp(&dir, "in.json", format!("{good}\n{{\"type\":\n").as_bytes());
    let bin = env!("CARGO_BIN_EXE_podtrace");

    let out = Command::new(bin)
        .args(["replay", "--strict", "--format", "summary", &path])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{path}:2:")), "{stderr}");

    let out = Command::new(bin)
        .args(["replay", "--format", "summary", &path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{path}:2: unexpected end of input")),
        "{stderr}"
    );
    assert!(stderr.contains("1 malformed values"), "{stderr}");

    let out = Command::new(bin)
        .args(["replay", &dir.path().join("missing.json").to_string_lossy()])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn stdin_is_read_with_dash() {
    let good = serde_json::to_string(&watch("ADDED", pod("a", Some("1")))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_podtrace"))
        .args(["replay", "--format", "otlp-json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{good}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replayed 1 observations"), "{stderr}");
}

#[test]
fn a_directory_stands_for_its_recordings_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    write_temp(
        &dir,
        "b-pods.json",
        &lines(&[watch("ADDED", pod("b", Some("2")))]),
    );
    write_temp(
        &dir,
        "a-pods.json",
        &lines(&[watch("ADDED", pod("a", Some("2")))]),
    );
    write_temp(&dir, "notes.txt", b"not a recording");
    write_temp(&dir, ".hidden.json", b"garbage");
    let files = podtrace::replay::input::recordings_in(dir.path()).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a-pods.json", "b-pods.json"]);
    let got: Vec<String> = Inputs::open_paths(&[dir.path()])
        .unwrap()
        .map(|r| match r {
            Ok(Record::Observation { observation: o, .. }) => match o.object {
                Object::Pod(p) => p.name,
                _ => "other".into(),
            },
            other => format!("{other:?}"),
        })
        .collect();
    // Equal resourceVersions: name order decides.
    assert_eq!(got, ["a", "b"]);
    let empty = tempfile::tempdir().unwrap();
    assert!(Inputs::open_paths(&[empty.path()]).is_err());
}
