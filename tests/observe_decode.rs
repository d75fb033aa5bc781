//! Direct decoding (JSON text straight into typed objects, `Object::from_json_str` and the
//! replay reader's fast path) against the reference path through `serde_json::Value`: same
//! objects, same errors, same records, no panics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use podtrace::observe::{Object, ObserveError};
use podtrace::replay::input::{InputError, Inputs, Record, Source};
use proptest::prelude::*;
use serde_json::Value;
use serde_json::value::RawValue;

/// Every `*.json` under tests/fixtures, recursively, in name order.
fn fixture_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        &mut out,
    );
    out.sort();
    assert!(out.len() >= 20, "fixtures not found: {out:?}");
    out
}

/// A comparable rendering of a conversion result (errors by their message).
fn outcome(r: Result<Object, ObserveError>) -> Result<Object, String> {
    r.map_err(|e| e.to_string())
}

/// The original text of every `object` in a watch-stream file, one value per line.
fn raw_objects(path: &Path) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Event {
        object: Box<RawValue>,
    }
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let e: Event =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            e.object.get().to_string()
        })
        .collect()
}

fn all_raw_objects() -> Vec<String> {
    fixture_files()
        .iter()
        .flat_map(|f| raw_objects(f))
        .collect()
}

fn records(data: &[u8], via_value: bool) -> Vec<Result<Record, InputError>> {
    let sources = [Source::Bytes {
        name: "in.json".into(),
        data: Arc::from(data),
    }];
    let inputs = if via_value {
        Inputs::open_via_value(&sources)
    } else {
        Inputs::open(&sources)
    };
    inputs.unwrap().collect()
}

#[test]
fn every_fixture_object_decodes_to_the_same_object_directly() {
    let mut n = 0;
    for f in fixture_files() {
        for text in raw_objects(&f) {
            let value: Value = serde_json::from_str(&text).unwrap();
            let reference = outcome(Object::from_json(value));
            assert!(reference.is_ok(), "{}: {reference:?}", f.display());
            assert_eq!(
                outcome(Object::from_json_str(&text)),
                reference,
                "{}",
                f.display()
            );
            n += 1;
        }
    }
    assert!(n > 100, "only {n} objects");
}

#[test]
fn every_fixture_file_reads_to_the_same_records_directly() {
    for f in fixture_files() {
        let data = std::fs::read(&f).unwrap();
        let direct = records(&data, false);
        assert!(!direct.is_empty(), "{}", f.display());
        assert_eq!(direct, records(&data, true), "{}", f.display());
        // Pretty-printed and as a List, too.
        let values: Vec<Value> = serde_json::Deserializer::from_slice(&data)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let mut pretty = Vec::new();
        for v in &values {
            pretty.extend(serde_json::to_vec_pretty(v).unwrap());
            pretty.push(b'\n');
        }
        assert_eq!(
            records(&pretty, false),
            records(&pretty, true),
            "{} pretty",
            f.display()
        );
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List",
            "items": values.iter().map(|v| v["object"].clone()).collect::<Vec<_>>()});
        let list = serde_json::to_vec(&list).unwrap();
        assert_eq!(
            records(&list, false),
            records(&list, true),
            "{} list",
            f.display()
        );
    }
}

#[test]
fn peek_reads_head_fields_like_value_as_str() {
    let h = Object::peek_json_str(
        r#"{"kind":"Pod","metadata":{"managedFields":[{"a":1}],"resourceVersion":"42"},"apiVersion":"v1"}"#,
    )
    .unwrap();
    assert_eq!(h.api_version.as_deref(), Some("v1"));
    assert_eq!(h.kind.as_deref(), Some("Pod"));
    assert_eq!(h.resource_version.as_deref(), Some("42"));
    let h = Object::peek_json_str(r#"{"kind":1,"apiVersion":null,"metadata":"x"}"#).unwrap();
    assert_eq!(
        (h.api_version, h.kind, h.resource_version),
        (None, None, None)
    );
    for not_object in ["null", "[1]", "\"Pod\"", " 3 "] {
        assert_eq!(
            Object::peek_json_str(not_object).unwrap(),
            Default::default(),
            "{not_object}"
        );
    }
    assert!(Object::peek_json_str("{\"kind\":").is_err());
    assert!(Object::peek_json_str("[1,").is_err());
}

/// Edge cases where the fast path must step aside; records must be identical either way.
#[test]
fn odd_values_read_the_same_on_both_paths() {
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"d","uid":"u","resourceVersion":"7"},"spec":{"containers":[{"name":"c","image":"i"}]}}"#;
    let cases: Vec<String> = vec![
        format!(r#"{{"type":"ADDED","object":{pod}}}"#),
        // Duplicate keys: the last one wins in a Value.
        format!(r#"{{"type":"ADDED","type":"MODIFIED","object":{pod}}}"#),
        format!(r#"{{"type":"ADDED","object":{{"apiVersion":"v1","kind":"Pod","kind":"Node","metadata":{{"name":"n"}}}}}}"#),
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"uid":"a","uid":"b","name":"x"}}}"#.into(),
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"uid":5,"uid":"b","name":"x"}}}"#.into(),
        format!(r#"{{"type":null,"object":{pod}}}"#),
        format!(r#"{{"type":3,"object":{pod}}}"#),
        r#"{"type":"ADDED","object":null}"#.into(),
        r#"{"type":"ADDED"}"#.into(),
        r#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"9"}}}"#.into(),
        r#"{"type":"BOOKMARK"}"#.into(),
        r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","message":"too old resource version","code":410}}"#.into(),
        r#"{"type":"ERROR","object":{"kind":"Status"}}"#.into(),
        format!(r#"{{"type":"SOMETHING","object":{pod}}}"#),
        format!(r#"{{"type":"ADDED","observedAt":null,"object":{pod}}}"#),
        format!(r#"{{"type":"ADDED","observedAt":"2026-11-21T10:00:00.5Z","object":{pod}}}"#),
        format!(r#"{{"type":"ADDED","observedAt":"soon","object":{pod}}}"#),
        format!(r#"{{"type":"ADDED","observedAt":5,"object":{pod}}}"#),
        format!(r#"{{"type":"ADDED","object":{pod},"object":{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"n","resourceVersion":"3"}}}}}}"#),
        format!(r#"{{"type":"ADDED","object":[{pod}]}}"#),
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}}"#.into(),
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"uid":"u"},"spec":{"containers":"no"}}}"#.into(),
        r#"{"type":"ADDED","object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"resourceVersion":"11"}}}"#.into(),
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Event","metadata":{"uid":"e"},"involvedObject":{}}}"#.into(),
        r#"{"type":"ADDED","object":{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"uid":"e"},"eventTime":"nope"}}"#.into(),
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Node","metadata":{"name":"n"},"status":{"nodeInfo":{"kubeletVersion":1}}}}"#.into(),
        // The compact kubectl shape, and near misses of it.
        format!(r#"{{"type":"MODIFIED","object":{pod} }}"#),
        format!(r#"{{"type":"ADDED","object":{pod},"observedAt":"2026-11-21T10:00:00.5Z"}}"#),
        format!(r#"{{"type":"ADDED","object":{pod},"observedAt":"later"}}"#),
        format!(r#"{{"type":"ADDED","observedAt":"2026-11-21T10:00:00.5Z","object":{pod}}}"#),
        format!(r#"{{"type":"ADDED","observedAt":"2026-11-21T10:00:00.5Z","object":{pod},"observedAt":null}}"#),
        format!(r#"{{"type":"ADDED","observedAt":"2026-11-21T10:00:00.5Z","observedAt":"2026-11-21T10:00:01Z","object":{pod}}}"#),
        format!(r#"{{"type":"ADDED","observedAt":"2026-11-21T10:00:00.5Z","object":{pod}}}"#),
        format!("{{\"type\":\"ADDED\",\"observedAt\":\"2026-11-21T10:00:00\t5Z\",\"object\":{pod}}}"),
        format!(r#"{{"type":"ADDED","observedAt":"never","object":{pod}}}"#),
        format!(r#"{{"type":"ADDED","observedAt":"","object":{pod}}}"#),
        format!(r#"{{"type":"ADDED","object":{pod},"type":"DELETED"}}"#),
        format!(r#"{{"type":"ADDED","object":{pod},"x":1}}"#),
        format!(r#"{{"type":"ADDED","object":{pod}]}}"#),
        format!(r#"{{"type":"ADDED","object":{pod}}}}}"#),
        format!(r#"{{"type":"ADDED","object":{pod},}}"#),
        format!(r#"{{"type":"added","object":{pod}}}"#),
        format!(r#"{{"type":"ERROR","object":{pod}}}"#),
        format!(r#"{{"type":"BOOKMARK","object":{pod}}}"#),
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"resourceVersion":"8"}},"b":{"kind":"x"}}"#.into(),
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"resourceVersion":"8"}}}"#.into(),
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Node","metadata":{"name":"n","resourceVersion":"9"}}}"#.into(),
        r#"{"type":"ADDED","object":"{"apiVersion":"v1"}"}"#.into(),
        // apiVersion and kind last, or repeated.
        r#"{"type":"ADDED","object":{"metadata":{"uid":"u","resourceVersion":"12"},"spec":{"containers":[]},"kind":"Pod","apiVersion":"v1"}}"#.into(),
        r#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"uid":"u","resourceVersion":"12"},"kind":"Pod"}}"#.into(),
        r#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"uid":"u"},"apiVersion":"v2"}}"#.into(),
        r#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"uid":"u"},"kind":7}}"#.into(),
        r#"{"type":"ADDED","object":{"kind":"Event","apiVersion":"v1","metadata":{"uid":"u","resourceVersion":""},"involvedObject":{}}}"#.into(),
        r#"{"type":"ADDED","object":{"kind":"Event","apiVersion":"v1","metadata":{"uid":"u","resourceVersion":"x1"},"involvedObject":{}}}"#.into(),
        r#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"uid":"u","resourceVersion":"5"},"metadata":{"uid":"w","resourceVersion":"6"}}}"#.into(),
        format!(r#"{{"apiVersion":"v1","kind":"List","items":[{pod},{pod}]}}"#),
        format!(r#"{{"apiVersion":"v1","kind":"PodList","items":[{pod},5,{pod}]}}"#),
        format!(r#"{{"apiVersion":"v1","kind":"List","items":{pod}}}"#),
        format!(r#"{{"kind":"List","items":[]}}"#),
        pod.to_string(),
        r#"{"apiVersion":"v1","kind":null}"#.into(),
        r#"{"apiVersion":"v1"}"#.into(),
        r#"{"metadata":{}}"#.into(),
        r#"[{"type":"ADDED"}]"#.into(),
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"uid":"\u00e9\ud83d\ude00","name":"\"q\""}}}"#.into(),
        "{\"type\":\"ADDED\",\"object\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"uid\":\"u\"},\"x\":\"\u{7f}\"}}".into(),
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"uid":"u"}},}"#.into(),
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"uid":"u"}} x"#.into(),
    ];
    for case in &cases {
        for data in [format!("{case}\n"), format!("{}\n", pretty_or_same(case))] {
            let direct = records(data.as_bytes(), false);
            assert_eq!(direct, records(data.as_bytes(), true), "{data}");
        }
    }
    // Not UTF-8.
    let mut bad =
        br#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"uid":"#.to_vec();
    bad.extend(b"\"\xff\xfe\"}}}\n");
    assert_eq!(records(&bad, false), records(&bad, true));
    assert!(records(&bad, false)[0].is_err());
}

fn pretty_or_same(s: &str) -> String {
    serde_json::from_str::<Value>(s)
        .map(|v| serde_json::to_string_pretty(&v).unwrap())
        .unwrap_or_else(|_| s.into())
}

#[test]
fn resource_version_comes_with_the_object_whatever_its_kind() {
    let rv = |s: &str| Object::from_json_str_with_resource_version(s).1;
    assert_eq!(
        rv(r#"{"apiVersion":"v1","kind":"Pod","metadata":{"uid":"u","resourceVersion":"42"}}"#)
            .as_deref(),
        Some("42")
    );
    assert_eq!(
        rv(r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n","resourceVersion":"43"}}"#)
            .as_deref(),
        Some("43")
    );
    assert_eq!(
        rv(r#"{"apiVersion":"v1","kind":"Secret","metadata":{"resourceVersion":"44"}}"#).as_deref(),
        Some("44")
    );
    // Does not decode (no uid), still has a version.
    assert_eq!(
        rv(r#"{"apiVersion":"v1","kind":"Pod","metadata":{"resourceVersion":"45"}}"#).as_deref(),
        Some("45")
    );
    assert_eq!(
        rv(r#"{"apiVersion":"v1","kind":"Pod","metadata":{"uid":"u","resourceVersion":""}}"#),
        None
    );
    assert_eq!(
        rv(r#"{"apiVersion":"v1","kind":"Pod","metadata":{"uid":"u","resourceVersion":46}}"#),
        None
    );
    assert_eq!(rv("[1]"), None);
}

#[test]
fn malformed_text_is_an_error_not_a_panic() {
    for bad in [
        "",
        "{",
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\"",
        "nul",
        "[",
        "}",
    ] {
        assert!(Object::from_json_str(bad).is_err(), "{bad:?}");
    }
}

/// Every JSON object (not array) reachable in `v`, as a path of keys.
fn object_paths(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            path.push(k.clone());
            out.push(path.clone());
            object_paths(child, path, out);
            path.pop();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Mutated objects (fields dropped or replaced by wrong-typed values): the direct path
    /// yields exactly what the `Value` path does, objects and error messages alike.
    #[test]
    fn direct_decoding_equals_value_decoding_on_mutated_objects(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..6), 1..6),
    ) {
        let objects = all_raw_objects();
        let mut v: Value = serde_json::from_str(&objects[pick.index(objects.len())]).unwrap();
        for (at, how) in edits {
            let mut paths = Vec::new();
            object_paths(&v, &mut Vec::new(), &mut paths);
            if paths.is_empty() { break; }
            let path = &paths[at.index(paths.len())];
            let Some((last, parents)) = path.split_last() else { continue };
            let mut cur = &mut v;
            for p in parents {
                cur = &mut cur[p.as_str()];
            }
            if let Value::Object(m) = cur {
                match how {
                    0 => { m.remove(last); }
                    1 => { m.insert(last.clone(), Value::Null); }
                    2 => { m.insert(last.clone(), serde_json::json!(-1)); }
                    3 => { m.insert(last.clone(), serde_json::json!("")); }
                    4 => { m.insert(last.clone(), serde_json::json!([{"x": 1.5}])); }
                    _ => { m.insert(last.clone(), serde_json::json!("spec.containers{")); }
                }
            }
        }
        let text = v.to_string();
        prop_assert_eq!(outcome(Object::from_json_str(&text)), outcome(Object::from_json(v)));
    }

    /// Byte-level damage to whole recordings (cut, duplicated or inserted bytes): the reader
    /// never panics and yields the same records on both paths.
    #[test]
    fn damaged_streams_read_the_same_on_both_paths(
        pick in any::<prop::sample::Index>(),
        ops in proptest::collection::vec(
            (0u8..3, any::<prop::sample::Index>(), 1usize..40, prop::sample::select(b"{}[]\",: 0-1an\nx\\".to_vec())),
            1..8,
        ),
    ) {
        let files = fixture_files();
        let mut data = std::fs::read(&files[pick.index(files.len())]).unwrap();
        for (op, at, len, byte) in ops {
            if data.is_empty() { break; }
            let i = at.index(data.len());
            let j = (i + len).min(data.len());
            match op {
                0 => { data.drain(i..j); }
                1 => { let dup = data[i..j].to_vec(); data.splice(i..i, dup); }
                _ => { data.insert(i, byte); }
            }
        }
        prop_assert_eq!(records(&data, false), records(&data, true));
    }
}
