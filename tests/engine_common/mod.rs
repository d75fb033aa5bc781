//! Loads hand-written watch-stream fixtures for engine tests (independent of the replay reader).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use podtrace::observe::{Action, Object, Observation};
use podtrace::timeline::{Config, Engine};
use podtrace::trace::{Span, Trace};

/// Directory of a scenario under tests/fixtures.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// All observations of a scenario, from every `*.json` file, ordered by resourceVersion
/// (file order breaks ties, so a re-delivered object stays where it was written).
pub fn load(name: &str) -> Vec<Observation> {
    let dir = fixture_dir(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out: Vec<(u64, usize, Observation)> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("fixture readable");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("fixture line is JSON");
            let action =
                Action::from_watch_type(v["type"].as_str().unwrap_or("")).expect("watch type");
            let rv = v["object"]["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            let observed_at = v
                .get("observedAt")
                .and_then(|o| o.as_str())
                .map(|s| s.parse().expect("observedAt"));
            let object = Object::from_json(v["object"].clone()).expect("fixture object converts");
            let n = out.len();
            out.push((
                rv,
                n,
                Observation {
                    action,
                    object,
                    observed_at,
                },
            ));
        }
    }
    out.sort_by_key(|(rv, n, _)| (*rv, *n));
    out.into_iter().map(|(_, _, o)| o).collect()
}

/// Runs observations through a fresh engine and drains it.
pub fn run(obs: Vec<Observation>, config: Config) -> (Vec<Trace>, Engine) {
    let mut engine = Engine::new(config);
    let mut traces = Vec::new();
    for o in obs {
        traces.extend(engine.observe(o));
    }
    traces.extend(engine.drain());
    (traces, engine)
}

/// Runs a scenario with the default config; expects exactly one trace.
pub fn one_trace(name: &str) -> Trace {
    let (traces, _) = run(load(name), Config::default());
    assert_eq!(
        traces.len(),
        1,
        "{name}: expected one trace, got {}",
        traces.len()
    );
    traces.into_iter().next().expect("one trace")
}

/// Spans with the given name.
pub fn spans<'t>(t: &'t Trace, name: &str) -> Vec<&'t Span> {
    t.spans.iter().filter(|s| s.name == name).collect()
}

/// The single span with the given name.
pub fn span<'t>(t: &'t Trace, name: &str) -> &'t Span {
    let v = spans(t, name);
    assert_eq!(v.len(), 1, "expected one {name}, got {}", v.len());
    v[0]
}

/// A string attribute.
pub fn attr<'s>(s: &'s Span, key: &str) -> Option<&'s podtrace::trace::Value> {
    s.attributes.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// A string attribute as &str.
pub fn attr_str<'s>(s: &'s Span, key: &str) -> Option<&'s str> {
    match attr(s, key) {
        Some(podtrace::trace::Value::Str(v)) => Some(v.as_str()),
        _ => None,
    }
}

/// Structural invariants every trace must satisfy.
pub fn check_invariants(t: &Trace) {
    assert!(!t.spans.is_empty());
    assert_eq!(t.spans[0].name, "pod.startup");
    assert_eq!(t.spans[0].parent, None);
    let mut ids = std::collections::HashSet::new();
    for s in &t.spans {
        assert!(ids.insert(s.span_id), "duplicate span id {}", s.span_id);
        assert!(s.end >= s.start, "{} ends before it starts", s.name);
        assert!(
            attr_str(s, "podtrace.timing.start_source").is_some(),
            "{} lacks start source",
            s.name
        );
        assert!(
            attr_str(s, "podtrace.timing.end_source").is_some(),
            "{} lacks end source",
            s.name
        );
        let mut keys: Vec<&str> = s.attributes.iter().map(|(k, _)| *k).collect();
        let sorted = {
            let mut k = keys.clone();
            k.sort();
            k
        };
        assert_eq!(keys, sorted, "attributes of {} not sorted", s.name);
        keys.dedup();
        assert_eq!(
            keys.len(),
            s.attributes.len(),
            "duplicate attribute keys on {}",
            s.name
        );
        if let Some(p) = s.parent {
            let parent = t
                .spans
                .iter()
                .find(|x| x.span_id == p)
                .expect("parent exists in trace");
            assert!(
                s.start >= parent.start && s.end <= parent.end,
                "{} outside its parent {}",
                s.name,
                parent.name
            );
            // Depth-first order: a parent precedes its children.
            let pi = t
                .spans
                .iter()
                .position(|x| x.span_id == p)
                .unwrap_or(usize::MAX);
            let si = t
                .spans
                .iter()
                .position(|x| x.span_id == s.span_id)
                .unwrap_or(0);
            assert!(pi < si, "{} listed before its parent", s.name);
        }
        for w in s.events.windows(2) {
            assert!(
                w[0].time <= w[1].time,
                "events of {} not in time order",
                s.name
            );
        }
        for (k, v) in &s.attributes {
            if let podtrace::trace::Value::Str(v) = v {
                assert!(
                    !v.contains("hunter2"),
                    "secret material leaked via {k} on {}",
                    s.name
                );
            }
        }
    }
}
