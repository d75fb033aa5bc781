//! Robustness: the pure entry points that see watch-stream, recording or user data never
//! panic, whatever the input, and keep their promises at the edges (extreme timestamps,
//! absurd counts, parent cycles, secrets in headers).

mod engine_common;

use jiff::{SignedDuration, Timestamp};
use podtrace::export::exporter::{ExportConfig, parse_kv_list};
use podtrace::export::otlp_json;
use podtrace::ids::parse_traceparent;
use podtrace::latency::{Distribution, Latencies, go_duration};
use podtrace::observe::{ContainerState, Object, Observation};
use podtrace::render::{summary, waterfall};
use podtrace::timeline::parse::{
    PulledMessage, deployment_from_replicaset, node_from_scheduled_message, parse_go_duration,
    parse_pulled_message, split_image,
};
use podtrace::timeline::pod_startup::{READY, TIMED_OUT, failed};
use podtrace::timeline::{Config, Engine};
use podtrace::trace::{
    Operation, Service, Span, SpanEvent, SpanId, Status, Subject, Trace, TraceId, Value,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Free-text parsers
// ---------------------------------------------------------------------------------------------

/// Strings that look like Go durations often enough to reach the arithmetic.
fn durationish() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9.]{0,25}(ns|us|µs|μs|ms|s|m|h|x|)([0-9.]{0,25}(ns|us|µs|ms|s|m|h)){0,4}",
        "[+-]?[0-9]{1,30}(\\.[0-9]{0,30})?(h|m|s)",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn go_duration_parser_never_panics(s in durationish()) {
        if let Some(d) = parse_go_duration(&s) {
            prop_assert!(!d.is_negative(), "{s:?} -> {d:?}");
        }
    }

    /// What `latency::go_duration` prints (status values), the parser reads back, to within
    /// the printer's rounding (1 ms above 1 s, 1 µs above 1 ms, exact below).
    #[test]
    fn go_duration_round_trips(nanos in 0i64..=i64::MAX) {
        let d = SignedDuration::from_nanos(nanos);
        let text = go_duration(d);
        let back = parse_go_duration(&text);
        prop_assert!(back.is_some(), "{text:?} does not parse back");
        let diff = (back.unwrap().as_nanos() - d.as_nanos()).abs();
        let tolerance = if nanos >= 1_000_000_000 { 500_000 } else if nanos >= 1_000_000 { 500 } else { 0 };
        prop_assert!(diff <= tolerance, "{d:?} -> {text:?} -> {back:?}");
    }

    #[test]
    fn pulled_message_parser_never_panics(
        s in prop_oneof![
            any::<String>(),
            "Successfully pulled image \"[^\"]{0,20}\"( in [0-9.]{0,12}(ms|s|m|µs)?( \\([0-9.]{0,12}(ms|s)? including waiting\\))?)?\\.?( Image size: [0-9]{0,30} bytes\\.)?",
            "Container image \"[^\"]{0,20}\"( already present on machine)?",
        ]
    ) {
        let _ = parse_pulled_message(&s);
    }

    /// A well-formed message gives back exactly what was written, for any image and size.
    #[test]
    fn pulled_message_round_trips(
        image in "[a-z0-9./:@-]{1,40}",
        pull_ms in 0i64..10_000_000,
        wait_ms in 0i64..10_000_000,
        size in 0i64..=i64::MAX,
    ) {
        let msg = format!(
            "Successfully pulled image \"{image}\" in {} ({} including waiting). Image size: {size} bytes.",
            go_duration(SignedDuration::from_millis(pull_ms)),
            go_duration(SignedDuration::from_millis(wait_ms)),
        );
        let Some(PulledMessage::Pulled { image: got, pull, including_waiting, size_bytes }) =
            parse_pulled_message(&msg)
        else {
            return Err(TestCaseError::fail(format!("not parsed: {msg}")));
        };
        prop_assert_eq!(got, image);
        prop_assert_eq!(pull, Some(SignedDuration::from_millis(pull_ms)));
        prop_assert_eq!(including_waiting, Some(SignedDuration::from_millis(wait_ms)));
        prop_assert_eq!(size_bytes, Some(size));
    }

    #[test]
    fn name_parsers_never_panic(s in any::<String>()) {
        let (name, tag) = split_image(&s);
        prop_assert!(name.len() <= s.len());
        prop_assert!(tag.is_none_or(|t| !t.is_empty()));
        let _ = deployment_from_replicaset(&s);
        if let Some(node) = node_from_scheduled_message(&s) {
            prop_assert!(!node.is_empty() && !node.contains(' '));
        }
    }

    #[test]
    fn traceparent_parser_never_panics(
        s in prop_oneof![any::<String>(), "[0-9a-fA-Fé-]{0,60}", "00-[0-9a-f]{30,34}-[0-9a-f]{14,18}-[0-9a-f]{1,3}"]
    ) {
        let _ = parse_traceparent(&s);
    }

    /// Every valid traceparent is accepted with its IDs and flag; its upper-case form is not.
    #[test]
    fn traceparent_round_trips(trace in any::<[u8; 16]>(), span in any::<[u8; 8]>(), flags in any::<u8>()) {
        let text = format!("00-{}-{}-{flags:02x}", TraceId(trace), SpanId(span));
        let parsed = parse_traceparent(&text);
        if trace == [0; 16] || span == [0; 8] {
            prop_assert_eq!(parsed, None);
        } else {
            let p = parsed.ok_or_else(|| TestCaseError::fail(format!("rejected {text}")))?;
            prop_assert_eq!(p.trace_id, TraceId(trace));
            prop_assert_eq!(p.span_id, SpanId(span));
            prop_assert_eq!(p.sampled, flags & 1 == 1);
            if text.chars().any(|c| c.is_ascii_lowercase()) {
                prop_assert_eq!(parse_traceparent(&text.to_ascii_uppercase()), None);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering and export of arbitrary traces
// ---------------------------------------------------------------------------------------------

/// Any instant jiff can represent, with a bias towards the edges.
fn timestamp() -> impl Strategy<Value = Timestamp> {
    let (min, max) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    prop_oneof![
        Just(Timestamp::MIN),
        Just(Timestamp::MAX),
        Just(Timestamp::UNIX_EPOCH),
        (min..=max, 0i32..1_000_000_000)
            .prop_map(move |(s, n)| Timestamp::new(s, n).unwrap_or(Timestamp::MAX)),
        // Around 2026, where real traces are, so bars and offsets are exercised too.
        (1_767_225_600i64..1_767_229_200, 0i32..1_000_000_000)
            .prop_map(|(s, n)| Timestamp::new(s, n).unwrap_or(Timestamp::UNIX_EPOCH)),
    ]
}

const NAMES: &[&str] = &[
    "pod.startup",
    "pod.schedule",
    "container.startup",
    "container.image_pull",
    "x",
];

fn arbitrary_trace() -> impl Strategy<Value = Trace> {
    let span = (
        any::<[u8; 8]>(),
        proptest::option::of(0usize..12),
        0usize..NAMES.len(),
        0u8..3,
        timestamp(),
        timestamp(),
        proptest::option::of(any::<String>()),
        proptest::collection::vec((any::<String>(), timestamp()), 0..4),
        any::<String>(),
    );
    (
        proptest::collection::vec(span, 0..12),
        any::<bool>(),
        prop_oneof![
            Just(READY),
            any::<String>().prop_map(failed),
            Just(TIMED_OUT)
        ],
    )
        .prop_map(|(raw, partial, outcome)| {
            let ids: Vec<[u8; 8]> = raw.iter().map(|r| r.0).collect();
            let spans = raw
                .into_iter()
                .map(
                    |(id, parent, name, service, start, end, error, events, container)| Span {
                        span_id: SpanId(id),
                        // Parents point anywhere in the trace: forwards, backwards, to itself,
                        // or nowhere, so cycles and dangling parents are covered.
                        parent: parent.map(|p| SpanId(ids.get(p).copied().unwrap_or([9; 8]))),
                        name: NAMES[name],
                        service: match service {
                            0 => Service::Podtrace,
                            1 => Service::Scheduler,
                            _ => Service::Kubelet {
                                node: container.clone(),
                            },
                        },
                        start,
                        end,
                        status: error.map(Status::Error).unwrap_or_default(),
                        attributes: vec![
                            ("k8s.container.name", Value::Str(container)),
                            ("podtrace.image.size_bytes", Value::Int(i64::MIN)),
                            ("podtrace.image.pull_duration_ms", Value::Float(f64::NAN)),
                        ],
                        events: events
                            .into_iter()
                            .map(|(message, time)| SpanEvent {
                                name: message.chars().take(3).collect(),
                                time,
                                attributes: vec![("k8s.event.message", Value::Str(message))],
                            })
                            .collect(),
                        links: vec![],
                    },
                )
                .collect();
            Trace {
                trace_id: TraceId([7; 16]),
                operation: Operation::PodStartup,
                subject: Subject {
                    kind: "Pod",
                    namespace: String::new(),
                    name: "\u{0}\u{202e}".into(),
                    uid: String::new(),
                    revision: None,
                },
                outcome,
                partial,
                spans,
                phases: vec![
                    ("schedule", SignedDuration::MAX),
                    ("total", SignedDuration::MIN),
                ],
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Every span is shown exactly once, whatever its times or parents (cycles included).
    #[test]
    fn waterfall_renders_any_trace(trace in arbitrary_trace(), width in 0usize..120, color in any::<bool>()) {
        let style = waterfall::Style { color, bar_width: width, max_events: 0 };
        let out = waterfall::render(&trace, &style);
        // One header and one line per span (events are summarised on `·` lines): control
        // characters in names and messages are escaped, so none adds a line.
        let lines = out.lines().filter(|l| !l.trim_start().starts_with('·')).count();
        prop_assert_eq!(lines, 1 + trace.spans.len().max(1), "{}", out);
        prop_assert!(!out.chars().any(|c| c.is_control() && c != '\n' && !(color && c == '\x1b')), "{}", out);
        let style = waterfall::Style { color, bar_width: width, max_events: 2 };
        let _ = waterfall::render(&trace, &style);
    }

    #[test]
    fn otlp_json_encodes_any_trace(trace in arbitrary_trace()) {
        let doc = otlp_json::document(&trace, &[("k".into(), "v".into())], &[]);
        let doc = doc.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let v: serde_json::Value = serde_json::from_str(&doc).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let spans = v["resourceSpans"].as_array().map(|rs| {
            rs.iter().flat_map(|r| r["scopeSpans"][0]["spans"].as_array().cloned().unwrap_or_default()).count()
        });
        prop_assert_eq!(spans.unwrap_or(0), trace.spans.len());
    }

    #[test]
    fn latency_of_any_trace(traces in proptest::collection::vec(arbitrary_trace(), 0..5)) {
        let mut l = Latencies::default();
        for t in &traces {
            l.record(t);
        }
        let _ = l.to_status();
        let _ = summary::render(&l);
    }

    /// Percentiles stay within [0, max] and grow with p, in exact and histogram mode, for
    /// any durations (negative and i64-overflowing ones included) and any p (NaN included).
    #[test]
    fn percentiles_are_bounded_and_monotone(
        samples in proptest::collection::vec(any::<i64>().prop_map(SignedDuration::from_nanos), 1..50),
        copies in prop_oneof![Just(1usize), Just(200usize)],
        ps in proptest::collection::vec(prop_oneof![any::<f64>(), 0.0f64..=100.0], 1..8),
        huge in any::<bool>(),
    ) {
        let mut d = Distribution::default();
        for _ in 0..copies {
            for s in &samples {
                d.record(*s);
            }
        }
        if huge {
            d.record(SignedDuration::MAX);
            d.record(SignedDuration::MIN);
        }
        let max = d.max().unwrap_or(SignedDuration::ZERO);
        let mut ps: Vec<f64> = ps.into_iter().filter(|p| !p.is_nan()).collect();
        ps.sort_by(f64::total_cmp);
        let mut last = SignedDuration::ZERO;
        for p in ps {
            let v = d.percentile(p).ok_or_else(|| TestCaseError::fail("empty"))?;
            prop_assert!(v >= SignedDuration::ZERO && v <= max, "p{p}: {v:?} max {max:?}");
            prop_assert!(v >= last, "p{p}: {v:?} < {last:?}");
            last = v;
        }
        let _ = d.percentile(f64::NAN);
        let _ = d.to_percentiles();
    }
}

#[test]
fn waterfall_child_longer_than_root_does_not_overflow() {
    let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let span = |id: u8, parent: Option<u8>, start: Timestamp, end: Timestamp| Span {
        span_id: SpanId([id; 8]),
        parent: parent.map(|p| SpanId([p; 8])),
        name: "x",
        service: Service::Podtrace,
        start,
        end,
        status: Status::Unset,
        attributes: vec![],
        events: vec![],
        links: vec![],
    };
    // A 1 ns root and a child spanning jiff's whole range: the cell count saturates usize.
    let trace = Trace {
        trace_id: TraceId([1; 16]),
        operation: Operation::PodStartup,
        subject: Subject {
            kind: "Pod",
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u".into(),
            revision: None,
        },
        outcome: READY,
        partial: false,
        spans: vec![
            span(1, None, t0, t0 + SignedDuration::from_nanos(1)),
            span(2, Some(1), t0, Timestamp::MAX),
            // A two-span parent cycle that never reaches the root.
            span(3, Some(4), t0, t0),
            span(4, Some(3), t0, t0),
        ],
        phases: vec![],
    };
    let out = waterfall::render(&trace, &waterfall::Style::default());
    assert_eq!(out.lines().count(), 5, "{out}");
}

#[test]
fn human_duration_never_prints_sixty_seconds() {
    for ms in [119_960, 59_999, 60_000, 3_599_990, 999_600] {
        let text = waterfall::human_duration(SignedDuration::from_millis(ms));
        assert!(!text.contains("m60"), "{ms} ms -> {text}");
    }
    assert_eq!(
        waterfall::human_duration(SignedDuration::from_millis(119_960)),
        "2m00.0s"
    );
    assert_eq!(
        waterfall::human_duration(SignedDuration::from_millis(123_500)),
        "2m03.5s"
    );
    assert_eq!(
        waterfall::human_duration(SignedDuration::from_micros(999_600)),
        "1.000s"
    );
    for extreme in [SignedDuration::MIN, SignedDuration::MAX] {
        let text = waterfall::human_duration(extreme);
        assert!(text.ends_with('s') && !text.contains("m60"), "{text}");
    }
}

#[test]
fn far_future_times_are_clamped_not_wrapped_in_otlp() {
    let t0: Timestamp = "9000-01-01T00:00:00Z".parse().unwrap();
    let trace = Trace {
        trace_id: TraceId([1; 16]),
        operation: Operation::PodStartup,
        subject: Subject {
            kind: "Pod",
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u".into(),
            revision: None,
        },
        outcome: READY,
        partial: false,
        spans: vec![Span {
            span_id: SpanId([1; 8]),
            parent: None,
            name: "pod.startup",
            service: Service::Podtrace,
            start: "2026-01-01T00:00:00Z".parse().unwrap(),
            end: t0,
            status: Status::Unset,
            attributes: vec![],
            events: vec![],
            links: vec![],
        }],
        phases: vec![],
    };
    let doc: serde_json::Value =
        serde_json::from_str(&otlp_json::document(&trace, &[], &[]).unwrap()).unwrap();
    let span = &doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    let start: u64 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u64 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(end >= start, "end {end} wrapped below start {start}");
    assert_eq!(end, u64::MAX);
}

// ---------------------------------------------------------------------------------------------
// The engine over mangled real input
// ---------------------------------------------------------------------------------------------

const SCENARIOS: &[&str] = &[
    "multi-container-init",
    "image-pull-failure",
    "crash-loop",
    "deleted-before-ready",
    "recorded",
];

/// One mangling of one observation: which observation, which field, what value.
#[derive(Clone, Debug)]
struct Mangle {
    at: usize,
    field: u8,
    time: Timestamp,
    n: i64,
    text: String,
}

fn mangle() -> impl Strategy<Value = Mangle> {
    (
        any::<usize>(),
        0u8..12,
        timestamp(),
        any::<i64>(),
        any::<String>(),
    )
        .prop_map(|(at, field, time, n, text)| Mangle {
            at,
            field,
            time,
            n,
            text,
        })
}

fn apply(obs: &mut [Observation], m: &Mangle) {
    let len = obs.len();
    let Some(o) = obs.get_mut(m.at % len.max(1)) else {
        return;
    };
    let n32 = i32::try_from(m.n).unwrap_or(if m.n < 0 { i32::MIN } else { i32::MAX });
    match (&mut o.object, m.field) {
        (_, 0) => o.observed_at = Some(m.time),
        (Object::Pod(p), 1) => p.created = Some(m.time),
        (Object::Pod(p), 2) => {
            p.deleted = Some(m.time);
            p.deletion_grace_seconds = Some(m.n);
        }
        (Object::Pod(p), 3) => p
            .conditions
            .iter_mut()
            .for_each(|c| c.last_transition = Some(m.time)),
        (Object::Pod(p), 4) => p
            .containers
            .iter_mut()
            .chain(p.init_containers.iter_mut())
            .for_each(|c| {
                c.restart_count = n32;
                c.image = m.text.clone();
                c.state = ContainerState::Running {
                    started_at: Some(m.time),
                };
            }),
        (Object::Pod(p), 5) => {
            p.traceparent = Some(m.text.clone());
            p.resource_version = Some(m.n.to_string());
        }
        (Object::Event(e), 6) => e.first_timestamp = Some(m.time),
        (Object::Event(e), 7) => e.last_timestamp = Some(m.time),
        (Object::Event(e), 8) => e.event_time = Some(m.time),
        (Object::Event(e), 9) => {
            e.count = n32;
            e.series_last_observed = Some(m.time);
        }
        (Object::Event(e), 10) => {
            e.message = format!("Successfully pulled image \"x\" in {}", m.text)
        }
        (Object::Event(e), 11) => e.message = m.text.clone(),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Extreme timestamps, counts, grace periods and messages in real input: the engine and
    /// everything downstream of it neither panic nor emit a span that ends before it starts.
    #[test]
    fn engine_survives_mangled_input(
        scenario in 0..SCENARIOS.len(),
        mangles in proptest::collection::vec(mangle(), 1..6),
        grace in prop_oneof![Just(SignedDuration::ZERO), Just(SignedDuration::MAX), Just(SignedDuration::from_secs(10))],
        timeout in prop_oneof![Just(SignedDuration::ZERO), Just(SignedDuration::MAX), Just(SignedDuration::from_secs(900))],
        advance in proptest::option::of(timestamp()),
    ) {
        let mut obs = engine_common::load(SCENARIOS[scenario]);
        for m in &mangles {
            apply(&mut obs, m);
        }
        let mut engine = Engine::new(Config { grace, timeout, ..Config::default() });
        let mut traces = Vec::new();
        for o in obs {
            traces.extend(engine.observe(o));
        }
        if let Some(t) = advance {
            traces.extend(engine.advance(t));
        }
        traces.extend(engine.drain());
        let mut l = Latencies::default();
        for t in &traces {
            for s in &t.spans {
                prop_assert!(s.end >= s.start, "{} ends before it starts", s.name);
            }
            l.record(t);
            let _ = waterfall::render(t, &waterfall::Style::default());
            prop_assert!(otlp_json::document(t, &[], &[]).is_ok());
        }
        let _ = summary::render(&l);
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

#[test]
fn export_config_debug_redacts_header_values() {
    let c = ExportConfig::from_lookup(|k| {
        (k == "OTEL_EXPORTER_OTLP_HEADERS")
            .then(|| "Authorization=Bearer%20s3cr3t-token,X-Scope-OrgID=tenant".to_string())
    })
    .unwrap();
    assert_eq!(c.headers.len(), 2);
    let debug = format!("{c:?} {c:#?}");
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert!(!debug.contains("tenant"), "{debug}");
    assert!(
        debug.contains("Authorization"),
        "header names stay visible: {debug}"
    );
}

#[test]
fn malformed_header_lists_do_not_echo_values() {
    for bad in ["s3cr3t-token", "a=b,s3cr3t-token", "=s3cr3t-token"] {
        let e = parse_kv_list("OTEL_EXPORTER_OTLP_HEADERS", bad).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }
}

/// A single Event stamped far in the future (a kubelet with a broken clock, or a bogus
/// recording) must not drag engine time along and time out every pod in flight, when the
/// input carries observation times (live, `podtrace record`): docs/trace-model.md promises
/// the skew is then bounded by the grace period.
#[test]
fn future_event_timestamp_does_not_time_out_pods() {
    let mut checked = 0;
    for scenario in [
        "multi-container-init",
        "cached-images",
        "crash-loop",
        "deleted-before-ready",
        "failed-scheduling",
        "image-pull-failure",
        "late-duplicate-out-of-order",
        "mid-startup",
        "recorded",
    ] {
        let mut obs = engine_common::load(scenario);
        if !obs.iter().all(|o| o.observed_at.is_some()) {
            continue;
        }
        checked += 1;
        let clean = engine_common::run(obs.clone(), Config::default()).0;
        let first_pod = obs
            .iter()
            .position(|o| matches!(o.object, Object::Pod(_)))
            .unwrap();
        let skewed = obs
            .iter_mut()
            .skip(first_pod + 1)
            .find_map(|o| match &mut o.object {
                Object::Event(e) if e.first_timestamp.is_some() => Some(e),
                _ => None,
            })
            .unwrap();
        eprintln!("{scenario}: event {} stamped 2030", skewed.reason);
        let future: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        skewed.last_timestamp = Some(future);
        let traces = engine_common::run(obs, Config::default()).0;
        let outcomes = |ts: &[Trace]| ts.iter().map(|t| t.outcome.clone()).collect::<Vec<_>>();
        assert_eq!(outcomes(&traces), outcomes(&clean), "{scenario}");
    }
    assert!(
        checked >= 1,
        "only {checked} scenarios carry observation times"
    );
}

#[test]
fn endpoint_errors_do_not_echo_credentials() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    for (protocol, endpoint) in [
        (
            podtrace::export::exporter::Protocol::Grpc,
            "https://user:s3cr3t@collector:4317",
        ),
        (
            podtrace::export::exporter::Protocol::HttpProtobuf,
            "https://user:s3cr3t@collector:4318",
        ),
        (
            podtrace::export::exporter::Protocol::HttpProtobuf,
            "http://user:s3cr3t@[::1/v1/traces",
        ),
        (
            podtrace::export::exporter::Protocol::Grpc,
            "http://s3cr3t@col lector:4317",
        ),
    ] {
        let config = ExportConfig {
            endpoint: endpoint.into(),
            protocol,
            ..ExportConfig::default()
        };
        let e = podtrace::export::exporter::Exporter::start(config)
            .map(|_| ())
            .unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(
            text.contains("collector") || text.contains("::1") || text.contains("col lector"),
            "{text}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The controller's parser for `spec.duration` and the `run`/`record` duration flags (a
    /// separate, float-based implementation) must not panic either, and must agree with the
    /// engine's exact parser on what both accept, to within float rounding.
    #[test]
    fn session_duration_parser_never_panics(s in durationish()) {
        let controller = podtrace::controller::sessions::parse_go_duration(&s);
        let _ = podtrace::record::parse_duration(&s);
        if let (Ok(a), Some(b)) = (&controller, parse_go_duration(&s)) {
            let diff = (a.as_nanos() - b.as_nanos()).abs();
            let tolerance = (b.as_nanos().abs() / 1_000_000_000_000).max(1);
            prop_assert!(diff <= tolerance, "{s:?}: controller {a:?}, engine {b:?}");
        }
    }
}
