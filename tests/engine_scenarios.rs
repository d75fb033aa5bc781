//! Scenario tests: hand-written watch streams in, span trees out.

mod engine_common;

use engine_common::*;
use jiff::{SignedDuration, Timestamp};
use podtrace::timeline::Config;
use podtrace::timeline::pod_startup::{DELETED, READY, TIMED_OUT, failed};
use podtrace::trace::{Operation, Service, Status, Value};

const SCENARIOS: &[&str] = &[
    "multi-container-init",
    "cached-images",
    "failed-scheduling",
    "image-pull-failure",
    "crash-loop",
    "deleted-before-ready",
    "late-duplicate-out-of-order",
    "mid-startup",
];

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

#[test]
fn every_scenario_satisfies_invariants_and_is_deterministic() {
    for name in SCENARIOS {
        let a = one_trace(name);
        check_invariants(&a);
        let b = one_trace(name);
        assert_eq!(a, b, "{name}: two runs differ");
    }
}

#[test]
fn multi_container_init_tree() {
    let t = one_trace("multi-container-init");
    assert_eq!(t.outcome, READY);
    assert!(!t.partial);
    // The pod's traceparent becomes a link on the root, not the trace's parent: the caller's
    // trace is already finished, and the startup keeps its own deterministic trace ID.
    assert_eq!(
        t.trace_id,
        podtrace::ids::trace_id(Operation::PodStartup, &[&t.subject.uid])
    );
    assert_eq!(t.spans[0].parent, None);
    let links = &t.spans[0].links;
    assert_eq!(links.len(), 1, "one link to the caller");
    assert_eq!(
        links[0].context.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(links[0].context.span_id.to_string(), "00f067aa0ba902b7");
    assert!(t.spans[1..].iter().all(|s| s.links.is_empty()));
    let names: Vec<(&str, Option<&str>)> = t
        .spans
        .iter()
        .map(|s| (s.name, attr_str(s, "k8s.container.name")))
        .collect();
    assert_eq!(
        names,
        vec![
            ("pod.startup", None),
            ("pod.schedule", None),
            ("pod.sandbox", None),
            ("container.init", Some("migrate")),
            ("container.image_pull", Some("migrate")),
            ("container.create", Some("migrate")),
            ("container.start", Some("migrate")),
            ("container.startup", Some("proxy")),
            ("container.image_pull", Some("proxy")),
            ("container.create", Some("proxy")),
            ("container.start", Some("proxy")),
            ("container.startup", Some("app")),
            ("container.image_pull", Some("app")),
            ("container.create", Some("app")),
            ("container.start", Some("app")),
            ("container.startup", Some("metrics")),
            ("container.image_pull", Some("metrics")),
            ("container.create", Some("metrics")),
            ("container.start", Some("metrics")),
            ("pod.readiness", None),
        ]
    );
    let root = &t.spans[0];
    assert_eq!(root.service, Service::Podtrace);
    assert_eq!(root.start, ts("2026-11-21T10:00:00Z"));
    assert_eq!(root.end, ts("2026-11-21T10:00:19Z"));
    assert_eq!(
        attr_str(root, "podtrace.timing.end_source"),
        Some("condition.Ready")
    );
    assert_eq!(attr_str(root, "k8s.deployment.name"), Some("shop"));
    assert_eq!(
        attr_str(root, "k8s.replicaset.name"),
        Some("shop-7d9f8c6b5")
    );
    assert_eq!(attr_str(root, "podtrace.outcome"), Some("ready"));

    let sched = span(&t, "pod.schedule");
    assert_eq!(sched.service, Service::Scheduler);
    assert_eq!(
        sched.end,
        ts("2026-11-21T10:00:00.812345Z"),
        "µs eventTime used"
    );
    assert_eq!(
        attr_str(sched, "podtrace.timing.end_source"),
        Some("event.eventTime")
    );

    let sandbox = span(&t, "pod.sandbox");
    assert_eq!(
        sandbox.service,
        Service::Kubelet {
            node: "node-a".into()
        }
    );
    assert_eq!(
        attr_str(sandbox, "podtrace.timing.end_source"),
        Some("condition.PodReadyToStartContainers")
    );
    assert_eq!(
        attr_str(sandbox, "cloud.availability_zone"),
        Some("eu-west-1a")
    );
    assert_eq!(attr_str(sandbox, "k8s.kubelet.version"), Some("v1.36.3"));

    let init = span(&t, "container.init");
    assert_eq!(init.end, ts("2026-11-21T10:00:08Z"));
    assert_eq!(
        attr_str(init, "podtrace.timing.end_source"),
        Some("status.finishedAt")
    );

    // The app pull lasts the "including waiting" figure from Pulling.
    let pulls = spans(&t, "container.image_pull");
    let app_pull = pulls
        .iter()
        .find(|s| attr_str(s, "k8s.container.name") == Some("app"))
        .expect("app pull");
    assert_eq!(app_pull.duration(), SignedDuration::from_millis(3900));
    assert_eq!(
        attr_str(app_pull, "podtrace.timing.end_source"),
        Some("pulled.message")
    );
    assert_eq!(
        attr(app_pull, "podtrace.image.size_bytes"),
        Some(&Value::Int(48_213_211))
    );
    assert_eq!(
        attr(app_pull, "podtrace.image.pull_duration_ms"),
        Some(&Value::Float(3100.0))
    );
    assert_eq!(
        attr_str(app_pull, "container.image.name"),
        Some("ghcr.io/acme/shop")
    );
    assert_eq!(
        attr(app_pull, "container.image.tags"),
        Some(&Value::StrList(vec!["1.4.2".into()]))
    );
    let metrics_pull = pulls
        .iter()
        .find(|s| attr_str(s, "k8s.container.name") == Some("metrics"))
        .expect("metrics pull");
    assert_eq!(
        attr(metrics_pull, "podtrace.image.cached"),
        Some(&Value::Bool(true))
    );

    // Sidecar is done when started, not when it exits.
    let proxy = t
        .spans
        .iter()
        .find(|s| {
            attr_str(s, "k8s.container.name") == Some("proxy") && s.name == "container.startup"
        })
        .unwrap();
    assert_eq!(attr_str(proxy, "podtrace.container.kind"), Some("sidecar"));
    assert_eq!(proxy.end, ts("2026-11-21T10:00:11Z"));

    let readiness = span(&t, "pod.readiness");
    assert_eq!(readiness.start, ts("2026-11-21T10:00:16Z"));
    assert_eq!(readiness.end, ts("2026-11-21T10:00:19Z"));

    let phase = |n: &str| t.phases.iter().find(|(k, _)| *k == n).map(|(_, d)| *d);
    assert_eq!(phase("total"), Some(SignedDuration::from_secs(19)));
    assert_eq!(
        phase("create_to_schedule"),
        Some(SignedDuration::from_micros(812_345))
    );
    // CL2: watch = first observation with phase Running (10:00:17.000), run = latest startedAt (16 s).
    assert_eq!(phase("run_to_watch"), Some(SignedDuration::from_secs(1)));
    assert_eq!(phase("pod_startup"), Some(SignedDuration::from_secs(17)));
    assert!(phase("init_containers").is_some());
}

#[test]
fn cached_images_with_kwok_component() {
    let t = one_trace("cached-images");
    assert_eq!(t.outcome, READY);
    assert!(t.spans[0].links.is_empty());
    assert_eq!(
        t.trace_id,
        podtrace::ids::trace_id(
            Operation::PodStartup,
            &["22222222-bbbb-4000-8000-000000000002"]
        )
    );
    let pull = span(&t, "container.image_pull");
    assert_eq!(
        attr(pull, "podtrace.image.cached"),
        Some(&Value::Bool(true))
    );
    assert_eq!(pull.duration(), SignedDuration::ZERO);
    assert_eq!(
        span(&t, "container.startup").service,
        Service::Kubelet {
            node: "kwok-node-0".into()
        }
    );
    assert_eq!(attr_str(&t.spans[0], "k8s.deployment.name"), Some("web"));
    // Without observation times, ClusterLoader2's watch-based phases are unknown, not invented.
    assert!(
        !t.phases
            .iter()
            .any(|(k, _)| *k == "run_to_watch" || *k == "pod_startup")
    );
}

#[test]
fn failed_scheduling_then_scheduled() {
    let t = one_trace("failed-scheduling");
    assert_eq!(t.outcome, READY);
    let sched = span(&t, "pod.schedule");
    assert_eq!(
        sched.events.len(),
        1,
        "one span event per FailedScheduling event, however often it repeats"
    );
    let ev = &sched.events[0];
    assert_eq!(ev.name, "FailedScheduling");
    assert!(ev.attributes.contains(&("k8s.event.count", Value::Int(2))));
    assert_eq!(sched.end, ts("2026-11-21T10:00:30.104017Z"));
    assert_eq!(sched.status, Status::Unset);
    assert_eq!(
        attr_str(&t.spans[0], "k8s.statefulset.name"),
        Some("batch-worker")
    );
}

#[test]
fn image_pull_failure_is_failed() {
    let t = one_trace("image-pull-failure");
    assert_eq!(t.outcome, failed("ImagePullBackOff"));
    assert!(matches!(t.spans[0].status, Status::Error(ref m) if m.contains("ImagePullBackOff")));
    let pull = span(&t, "container.image_pull");
    assert!(matches!(pull.status, Status::Error(_)));
    assert!(pull.events.iter().any(|e| e.name == "Failed"));
    assert!(pull.events.iter().any(|e| e.name == "BackOff"));
    let c = span(&t, "container.startup");
    assert!(matches!(c.status, Status::Error(_)));
    // Known when the back-off began (the BackOff event at 10:00:03).
    assert_eq!(t.spans[0].end, ts("2026-11-21T10:00:03Z"));
    assert!(span(&t, "pod.sandbox").status == Status::Unset);
    assert!(spans(&t, "pod.readiness").is_empty());
}

#[test]
fn crash_loop_is_failed() {
    let t = one_trace("crash-loop");
    assert_eq!(t.outcome, failed("CrashLoopBackOff"));
    let c = span(&t, "container.startup");
    assert!(matches!(c.status, Status::Error(ref m) if m.starts_with("CrashLoopBackOff")));
    assert!(c.events.iter().any(|e| e.name == "BackOff"));
    assert_eq!(attr(c, "k8s.container.restart_count"), Some(&Value::Int(1)));
    // Duplicated Created/Started (count 2) yield one span each.
    assert_eq!(spans(&t, "container.create").len(), 1);
    assert_eq!(spans(&t, "container.start").len(), 1);
}

#[test]
fn deleted_before_ready() {
    let t = one_trace("deleted-before-ready");
    assert_eq!(t.outcome, DELETED);
    assert!(matches!(t.spans[0].status, Status::Error(_)));
    // Ends when the deletion was first observed (10:00:05.000), not at the grace deadline.
    assert_eq!(t.spans[0].end, ts("2026-11-21T10:00:05Z"));
    assert_eq!(
        attr_str(&t.spans[0], "podtrace.timing.end_source"),
        Some("observedAt")
    );
    assert_eq!(attr_str(&t.spans[0], "k8s.job.name"), Some("slow-start"));
    let pull = span(&t, "container.image_pull");
    assert_eq!(
        pull.end, t.spans[0].end,
        "an unfinished pull runs to the end of the trace"
    );

    // Without observation times: deletionTimestamp (10:00:35) minus the 30 s grace period.
    let obs: Vec<_> = load("deleted-before-ready")
        .into_iter()
        .map(|mut o| {
            o.observed_at = None;
            o
        })
        .collect();
    let (traces, _) = run(obs, Config::default());
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].spans[0].end, ts("2026-11-21T10:00:05Z"));
    assert_eq!(
        attr_str(&traces[0].spans[0], "podtrace.timing.end_source"),
        Some("deletionTimestamp")
    );
}

#[test]
fn late_duplicate_and_out_of_order_events() {
    let (traces, engine) = run(load("late-duplicate-out-of-order"), Config::default());
    assert_eq!(traces.len(), 1, "late input must not start a second trace");
    let t = &traces[0];
    check_invariants(t);
    assert_eq!(t.outcome, READY);
    assert_eq!(spans(t, "container.start").len(), 1);
    assert!(engine.stats().duplicate_events >= 1);
    assert!(engine.stats().late_observations >= 2);
    assert_eq!(engine.in_flight(), 0);
    assert_eq!(
        engine.orphan_events(),
        0,
        "buffered events were adopted by their pod"
    );
    // The late Unhealthy warning arrived after the grace period: not attached anywhere.
    assert!(
        t.spans
            .iter()
            .all(|s| s.events.iter().all(|e| e.name != "Unhealthy"))
    );
    assert_eq!(attr_str(&t.spans[0], "k8s.daemonset.name"), Some("echo"));
}

#[test]
fn pod_first_seen_mid_startup_is_partial() {
    let t = one_trace("mid-startup");
    assert!(t.partial);
    assert_eq!(
        attr(&t.spans[0], "podtrace.partial"),
        Some(&Value::Bool(true))
    );
    assert_eq!(t.outcome, READY);
    // Malformed traceparent ignored; legacy context only noted.
    assert!(t.spans[0].links.is_empty());
    assert_eq!(
        attr(&t.spans[0], "podtrace.traceparent_invalid"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        attr(&t.spans[0], "podtrace.legacy_trace_context"),
        Some(&Value::Bool(true))
    );
    let sched = span(&t, "pod.schedule");
    assert_eq!(
        attr_str(sched, "podtrace.timing.end_source"),
        Some("condition.PodScheduled")
    );
    let app = t
        .spans
        .iter()
        .find(|s| s.name == "container.startup" && attr_str(s, "k8s.container.name") == Some("app"))
        .unwrap();
    assert_eq!(
        attr_str(app, "podtrace.timing.end_source"),
        Some("status.startedAt")
    );
    assert_eq!(app.end, ts("2026-11-21T10:00:06Z"));
    assert_eq!(
        attr_str(app, "container.image.name"),
        Some("registry.example.com:5000/team/app")
    );
}

#[test]
fn ignore_finished_before_suppresses_old_startups() {
    let config = Config {
        ignore_finished_before: Some(ts("2026-11-21T11:00:00Z")),
        ..Config::default()
    };
    let (traces, engine) = run(load("cached-images"), config);
    assert!(traces.is_empty());
    assert_eq!(engine.stats().traces_ignored, 1);
    // Dropped as soon as the end is known, not held through the grace period.
    let mut engine = podtrace::timeline::Engine::new(Config {
        ignore_finished_before: Some(ts("2026-11-21T11:00:00Z")),
        ..Config::default()
    });
    for o in load("cached-images") {
        assert!(engine.observe(o).is_empty());
    }
    assert_eq!(engine.in_flight(), 0);
    let config = Config {
        ignore_finished_before: Some(ts("2026-11-21T09:00:00Z")),
        ..Config::default()
    };
    let (traces, _) = run(load("cached-images"), config);
    assert_eq!(traces.len(), 1);
}

#[test]
fn timeout_and_advance() {
    // Only the first two pod observations: never Ready.
    let obs: Vec<_> = load("deleted-before-ready").into_iter().take(4).collect();
    let mut engine = podtrace::timeline::Engine::new(Config {
        timeout: SignedDuration::from_secs(60),
        ..Config::default()
    });
    for o in obs {
        assert!(engine.observe(o).is_empty());
    }
    assert_eq!(engine.in_flight(), 1);
    assert!(engine.advance(ts("2026-11-21T10:00:30Z")).is_empty());
    let t = engine.advance(ts("2026-11-21T10:01:01Z"));
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].outcome, TIMED_OUT);
    assert_eq!(engine.in_flight(), 0);
    check_invariants(&t[0]);
}

#[test]
fn ready_trace_is_emitted_after_grace_by_advance() {
    let mut engine = podtrace::timeline::Engine::new(Config::default());
    let mut out = Vec::new();
    for o in load("failed-scheduling") {
        out.extend(engine.observe(o));
    }
    assert!(out.is_empty(), "still within grace");
    assert!(engine.advance(ts("2026-11-21T10:00:40Z")).is_empty());
    let t = engine.advance(ts("2026-11-21T10:00:43.500Z"));
    assert_eq!(t.len(), 1);
    assert_eq!(engine.in_flight(), 0);
    assert!(engine.drain().is_empty());
}

#[test]
fn orphan_events_are_bounded_and_expire() {
    let obs: Vec<_> = load("multi-container-init")
        .into_iter()
        .filter(|o| matches!(o.object, podtrace::observe::Object::Event(_)))
        .collect();
    let n = obs.len();
    let mut engine = podtrace::timeline::Engine::new(Config {
        max_orphan_events: 5,
        ..Config::default()
    });
    for o in obs {
        engine.observe(o);
    }
    assert!(engine.orphan_events() <= 5);
    assert_eq!(
        engine.stats().orphan_events_dropped as usize,
        n - engine.orphan_events()
    );
    engine.advance(ts("2026-11-21T10:10:00Z"));
    assert_eq!(engine.orphan_events(), 0, "orphans expire");
    assert!(engine.drain().is_empty(), "events alone never make a trace");
}

#[test]
fn memory_scales_with_pods_in_flight() {
    use podtrace::observe::{Action, Object, Observation, PodCondition, PodFacts};
    let base = ts("2026-11-21T10:00:00Z");
    let mut engine = podtrace::timeline::Engine::new(Config::default());
    let mut emitted = 0;
    for i in 0..2000i64 {
        let created = base + SignedDuration::from_secs(i);
        let pod = PodFacts {
            uid: format!("uid-{i}"),
            namespace: "ns".into(),
            name: format!("p-{i}"),
            resource_version: Some(format!("{}", 10 + i)),
            created: Some(created),
            node_name: Some("n".into()),
            conditions: vec![PodCondition {
                kind: "Ready".into(),
                status: true,
                last_transition: Some(created + SignedDuration::from_secs(2)),
                reason: None,
                message: None,
            }],
            ..PodFacts::default()
        };
        emitted += engine
            .observe(Observation {
                action: Action::Added,
                object: Object::Pod(Box::new(pod)),
                observed_at: Some(created),
            })
            .len();
        // Only pods within the last grace period are still held.
        assert!(
            engine.in_flight() <= 13,
            "in flight: {}",
            engine.in_flight()
        );
    }
    emitted += engine
        .advance(base + SignedDuration::from_secs(2000 + 20))
        .len();
    assert_eq!(emitted, 2000);
    assert_eq!(engine.in_flight(), 0);
    assert!(engine.finished_remembered() > 0);
    // Finished UIDs are forgotten after timeout + grace.
    engine.advance(base + SignedDuration::from_secs(2000 + 16 * 60));
    assert_eq!(engine.finished_remembered(), 0);
}

#[test]
fn failed_init_container_of_a_never_restarting_pod() {
    use podtrace::observe::{
        Action, ContainerFacts, ContainerState, Object, Observation, PodFacts, Terminated,
    };
    let created = ts("2026-11-21T10:00:00Z");
    let pod = PodFacts {
        uid: "uid-init-fail".into(),
        namespace: "ns".into(),
        name: "job-x".into(),
        created: Some(created),
        node_name: Some("n1".into()),
        phase: Some("Failed".into()),
        init_containers: vec![ContainerFacts {
            name: "setup".into(),
            image: "busybox".into(),
            state: ContainerState::Terminated(Terminated {
                exit_code: 3,
                reason: Some("Error".into()),
                started_at: Some(created + SignedDuration::from_secs(2)),
                finished_at: Some(created + SignedDuration::from_secs(4)),
            }),
            ..ContainerFacts::default()
        }],
        containers: vec![ContainerFacts {
            name: "main".into(),
            image: "busybox".into(),
            ..ContainerFacts::default()
        }],
        ..PodFacts::default()
    };
    let (traces, _) = run(
        vec![Observation {
            action: Action::Modified,
            object: Object::Pod(Box::new(pod)),
            observed_at: None,
        }],
        Config::default(),
    );
    assert_eq!(traces.len(), 1);
    let t = &traces[0];
    check_invariants(t);
    assert_eq!(t.outcome, failed("Error"));
    assert!(t.partial);
    let init = span(t, "container.init");
    assert!(
        matches!(init.status, Status::Error(ref m) if m.contains("exited with code 3")),
        "{:?}",
        init.status
    );
    assert_eq!(t.spans[0].end, ts("2026-11-21T10:00:04Z"));
    assert_eq!(
        attr_str(&t.spans[0], "podtrace.timing.end_source"),
        Some("status.finishedAt")
    );
}

/// Causal ordering (docs/trace-model.md, "Causal lower bounds"): kubelet spans start no earlier
/// than the scheduled instant; init containers run one after the other; app containers start
/// after the init containers are done; create follows the pull, start follows create.
fn assert_causal_order(t: &podtrace::trace::Trace) {
    let sched = span(t, "pod.schedule");
    let kubelet = |s: &&podtrace::trace::Span| matches!(s.service, Service::Kubelet { .. });
    for s in t.spans.iter().filter(kubelet) {
        assert!(
            s.start >= sched.end,
            "{}: {} {:?} starts at {} before scheduled {}",
            t.subject.name,
            s.name,
            attr_str(s, "k8s.container.name"),
            s.start,
            sched.end
        );
    }
    let kind =
        |s: &podtrace::trace::Span| attr_str(s, "podtrace.container.kind").map(str::to_owned);
    let containers: Vec<&podtrace::trace::Span> = t
        .spans
        .iter()
        .filter(|s| s.name == "container.init" || s.name == "container.startup")
        .collect();
    let mut prev_init_end = None;
    for c in &containers {
        match kind(c).as_deref() {
            Some("init") | Some("sidecar") => {
                if let Some(e) = prev_init_end {
                    assert!(c.start >= e, "{}: init chain broken", t.subject.name);
                }
                prev_init_end = Some(c.end);
            }
            _ => {
                if let Some(e) = prev_init_end {
                    assert!(
                        c.start >= e,
                        "{}: app {:?} starts before the init containers are done",
                        t.subject.name,
                        attr_str(c, "k8s.container.name")
                    );
                }
            }
        }
        let child = |name: &str| {
            t.spans
                .iter()
                .find(|s| s.parent == Some(c.span_id) && s.name == name)
        };
        if let (Some(p), Some(cr)) = (child("container.image_pull"), child("container.create")) {
            assert!(
                cr.start >= p.end,
                "{}: create before the pull ended",
                t.subject.name
            );
        }
        if let (Some(cr), Some(st)) = (child("container.create"), child("container.start")) {
            assert!(
                st.start >= cr.end,
                "{}: start before create ended",
                t.subject.name
            );
        }
    }
}

fn causal(s: &podtrace::trace::Span) -> bool {
    attr(s, "podtrace.timing.causal") == Some(&Value::Bool(true))
}

#[test]
fn multi_container_init_is_causally_ordered() {
    let t = one_trace("multi-container-init");
    assert_causal_order(&t);
    // `Created` at :04 (1 s) lies before the pull's end computed from the stated duration
    // (:04.304): create is raised to the pull's end and becomes zero-length, marked causal.
    let migrate_create = t
        .spans
        .iter()
        .find(|s| {
            s.name == "container.create" && attr_str(s, "k8s.container.name") == Some("migrate")
        })
        .unwrap();
    assert_eq!(migrate_create.start, ts("2026-11-21T10:00:04.304Z"));
    assert_eq!(migrate_create.end, migrate_create.start);
    assert!(causal(migrate_create));
    assert_eq!(attr(migrate_create, "podtrace.timing.clamped"), None);
    assert_eq!(
        attr_str(migrate_create, "podtrace.timing.end_source"),
        Some("event.firstTimestamp"),
        "the source still names the raised timestamp"
    );
    // Nothing needed raising against the scheduled instant here: Pulling (:02) is after it.
    // The only other raise is `metrics`, whose 1 s events (:15) precede `app`'s start: the
    // kubelet starts app containers one after the other, so its work follows app's start.
    let app_started = t
        .spans
        .iter()
        .find(|s| s.name == "container.start" && attr_str(s, "k8s.container.name") == Some("app"))
        .unwrap()
        .end;
    for s in &t.spans {
        let metrics = attr_str(s, "k8s.container.name") == Some("metrics");
        if metrics {
            assert!(
                s.start >= app_started,
                "{} of metrics starts before app started",
                s.name
            );
        }
        if s.name != "container.create" && !metrics {
            assert!(!causal(s), "{} unexpectedly raised", s.name);
        }
    }
    let metrics_startup = t
        .spans
        .iter()
        .find(|s| {
            s.name == "container.startup" && attr_str(s, "k8s.container.name") == Some("metrics")
        })
        .unwrap();
    assert!(
        causal(metrics_startup),
        "metrics should be marked as causally raised"
    );
}

/// cached-images with the scheduler's µs `Scheduled` moved to `at`: the kubelet's 1 s
/// timestamps (PodReadyToStartContainers and Pulled/Created at :01, Started at :02, Ready at
/// :03) now lie partly before the pod was bound.
fn cached_images_scheduled_at(at: &str) -> podtrace::trace::Trace {
    let obs: Vec<_> = load("cached-images")
        .into_iter()
        .map(|mut o| {
            if let podtrace::observe::Object::Event(e) = &mut o.object
                && e.reason == "Scheduled"
            {
                e.event_time = Some(ts(at));
            }
            o
        })
        .collect();
    let (traces, _) = run(obs, Config::default());
    assert_eq!(traces.len(), 1);
    let t = traces.into_iter().next().unwrap();
    check_invariants(&t);
    assert_causal_order(&t);
    t
}

#[test]
fn kubelet_spans_are_raised_to_the_scheduled_instant() {
    let t = cached_images_scheduled_at("2026-11-21T10:00:01.500Z");
    let at = ts("2026-11-21T10:00:01.500Z");
    assert_eq!(span(&t, "pod.schedule").end, at);
    let sandbox = span(&t, "pod.sandbox");
    assert_eq!((sandbox.start, sandbox.end), (at, at));
    assert!(causal(sandbox));
    assert_eq!(
        attr_str(sandbox, "podtrace.timing.end_source"),
        Some("condition.PodReadyToStartContainers")
    );
    let c = span(&t, "container.startup");
    assert_eq!(c.start, at);
    assert_eq!(
        c.end,
        ts("2026-11-21T10:00:02Z"),
        "Started (:02) is after the bound"
    );
    assert!(causal(c));
    assert_eq!(
        attr_str(c, "podtrace.timing.start_source"),
        Some("event.firstTimestamp")
    );
    let pull = span(&t, "container.image_pull");
    assert_eq!((pull.start, pull.end), (at, at));
    assert!(causal(pull));
    let create = span(&t, "container.create");
    assert_eq!((create.start, create.end), (at, at));
    assert!(causal(create));
    let start = span(&t, "container.start");
    assert_eq!((start.start, start.end), (at, ts("2026-11-21T10:00:02Z")));
    assert!(!causal(start), "neither boundary of start had to move");
    let readiness = span(&t, "pod.readiness");
    assert_eq!(readiness.start, ts("2026-11-21T10:00:02Z"));
    assert!(!causal(readiness));
    assert!(!causal(&t.spans[0]));
    assert!(
        t.spans
            .iter()
            .all(|s| attr(s, "podtrace.timing.clamped").is_none())
    );
}

#[test]
fn ready_is_raised_to_the_last_container_started() {
    // Scheduled after every kubelet timestamp, even Ready (:03): the whole kubelet side
    // collapses onto the scheduled instant and the root ends there too.
    let at = ts("2026-11-21T10:00:03.250Z");
    let t = cached_images_scheduled_at("2026-11-21T10:00:03.250Z");
    let root = &t.spans[0];
    assert_eq!(root.end, at);
    assert!(causal(root));
    assert_eq!(
        attr_str(root, "podtrace.timing.end_source"),
        Some("condition.Ready")
    );
    assert_eq!(t.phase("total"), Some(SignedDuration::from_millis(3250)));
    for name in ["container.startup", "container.start", "pod.readiness"] {
        let s = span(&t, name);
        assert_eq!((s.start, s.end), (at, at), "{name}");
        assert!(causal(s), "{name}");
    }
}
