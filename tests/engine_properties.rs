//! Property tests: order, duplication and loss in the input never break the engine's promises.

mod engine_common;

use engine_common::*;
use jiff::SignedDuration;
use podtrace::observe::{Object, Observation};
use podtrace::timeline::Config;
use podtrace::trace::Trace;
use proptest::prelude::*;

const SCENARIOS: &[&str] = &[
    "multi-container-init",
    "cached-images",
    "failed-scheduling",
    "image-pull-failure",
    "crash-loop",
    "deleted-before-ready",
    "mid-startup",
];

/// Grace long enough that no trace finishes mid-stream, so reordering cannot make input late.
fn patient() -> Config {
    Config {
        grace: SignedDuration::from_secs(24 * 3600),
        ..Config::default()
    }
}

/// The span set, as (name, id, parent) — what must not depend on arrival order.
fn shape(traces: &[Trace]) -> Vec<(String, String, Option<String>, &'static str)> {
    let mut v: Vec<_> = traces
        .iter()
        .flat_map(|t| {
            t.spans.iter().map(move |s| {
                (
                    t.trace_id.to_string(),
                    s.span_id.to_string(),
                    s.parent.map(|p| p.to_string()),
                    s.name,
                )
            })
        })
        .collect();
    v.sort();
    v
}

/// Every span's boundaries and attributes (timing sources, causal/clamped flags).
fn timing(traces: &[Trace]) -> Vec<String> {
    let mut v: Vec<String> = traces
        .iter()
        .flat_map(|t| {
            t.spans
                .iter()
                .map(|s| format!("{} {} {} {:?}", s.span_id, s.start, s.end, s.attributes))
        })
        .collect();
    v.sort();
    v
}

fn scenario_and_order() -> impl Strategy<Value = (usize, Vec<usize>)> {
    (0..SCENARIOS.len()).prop_flat_map(|i| {
        let n = load(SCENARIOS[i]).len();
        (Just(i), Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_permutation_yields_the_same_spans((i, order) in scenario_and_order()) {
        let obs = load(SCENARIOS[i]);
        let (expected, _) = run(obs.clone(), patient());
        let shuffled: Vec<Observation> = order.iter().filter_map(|&k| obs.get(k).cloned()).collect();
        let (got, _) = run(shuffled, patient());
        prop_assert_eq!(got.len(), 1);
        for t in &got {
            check_invariants(t);
        }
        prop_assert_eq!(shape(&got), shape(&expected));
        prop_assert_eq!(&got[0].outcome, &expected[0].outcome);
        // Timing too (causal lower bounds included): boundaries, sources and flags.
        prop_assert_eq!(timing(&got), timing(&expected));
    }

    #[test]
    fn mutated_streams_never_panic_or_break_invariants(
        i in 0..SCENARIOS.len(),
        ops in proptest::collection::vec((0u8..4, any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..40),
        grace_s in 0i64..30,
    ) {
        let mut obs = load(SCENARIOS[i]);
        for (op, a, b) in ops {
            if obs.is_empty() { break; }
            let ia = a.index(obs.len());
            let ib = b.index(obs.len());
            match op {
                0 => obs.swap(ia, ib),
                1 => { let o = obs[ia].clone(); obs.insert(ib, o); }
                2 => { obs.remove(ia); }
                _ => {
                    // Strip observation times: replay of plain kubectl output has none.
                    obs[ia].observed_at = None;
                }
            }
        }
        let uids: std::collections::HashSet<String> = obs.iter().filter_map(|o| match &o.object {
            Object::Pod(p) => Some(p.uid.clone()),
            _ => None,
        }).collect();
        let config = Config { grace: SignedDuration::from_secs(grace_s), ..Config::default() };
        let (traces, engine) = run(obs, config);
        prop_assert!(traces.len() <= uids.len().max(1));
        let mut seen = std::collections::HashSet::new();
        for t in &traces {
            check_invariants(t);
            prop_assert!(seen.insert(t.subject.uid.clone()), "two traces for one pod");
            // Causal lower bound: once scheduled, no kubelet span starts before the binding.
            if let Some(sched) = t.spans.iter().find(|s| s.name == "pod.schedule").filter(|s| {
                matches!(
                    attr_str(s, "podtrace.timing.end_source"),
                    Some("event.eventTime" | "condition.PodScheduled")
                )
            }) {
                for s in &t.spans {
                    if matches!(s.service, podtrace::trace::Service::Kubelet { .. }) {
                        prop_assert!(s.start >= sched.end, "{} starts before scheduled", s.name);
                    }
                }
            }
        }
        prop_assert_eq!(engine.in_flight(), 0);
        prop_assert_eq!(engine.orphan_events(), 0);
    }
}

#[test]
fn duplicated_stream_equals_single_stream() {
    for name in SCENARIOS {
        let obs = load(name);
        let doubled: Vec<Observation> = obs.iter().flat_map(|o| [o.clone(), o.clone()]).collect();
        let (a, _) = run(obs, patient());
        let (b, engine) = run(doubled, patient());
        assert_eq!(a, b, "{name}: re-delivery changed the trace");
        assert!(
            engine.stats().duplicate_events > 0
                || !a[0].spans.iter().any(|s| s.name.starts_with("container"))
        );
    }
}

/// Every JSON object (not array) reachable in `v`, as a path of keys.
fn object_paths(v: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let serde_json::Value::Object(m) = v {
        for (k, child) in m {
            path.push(k.clone());
            out.push(path.clone());
            object_paths(child, path, out);
            path.pop();
        }
    }
}

fn raw_objects() -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for name in SCENARIOS {
        let dir = fixture_dir(name);
        for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                    out.push(v["object"].clone());
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Conversions never panic: drop or replace arbitrary fields with wrong-typed values.
    #[test]
    fn conversions_never_panic_on_mutated_objects(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..5), 1..6),
    ) {
        let objects = raw_objects();
        prop_assume!(!objects.is_empty());
        let mut v = objects[pick.index(objects.len())].clone();
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
            if let serde_json::Value::Object(m) = cur {
                match how {
                    0 => { m.remove(last); }
                    1 => { m.insert(last.clone(), serde_json::Value::Null); }
                    2 => { m.insert(last.clone(), serde_json::json!(-1)); }
                    3 => { m.insert(last.clone(), serde_json::json!("")); }
                    _ => { m.insert(last.clone(), serde_json::json!("spec.containers{")); }
                }
            }
        }
        if let Ok(object) = Object::from_json(v) {
            let mut engine = podtrace::timeline::Engine::new(Config::default());
            engine.observe(Observation { action: podtrace::observe::Action::Added, object, observed_at: None });
            for t in engine.drain() {
                check_invariants(&t);
            }
        }
    }
}
