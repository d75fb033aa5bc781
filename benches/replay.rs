//! Replay throughput and engine memory per pod in flight.
//!
//! A synthetic recording is generated in memory: pods created every 20 ms, each taking about
//! three seconds to become Ready, so roughly 150 are in flight at any time; per pod the
//! stream holds what a real cluster writes (pod ADDED, scheduler event, pod scheduled,
//! kubelet Pulling/Pulled/Created/Started events, pod running, pod Ready), as full objects
//! with managedFields, one JSON value per line, in resourceVersion order.
//!
//! Measured:
//! - `parse`: bare `serde_json::Value` parsing of the same bytes (the floor);
//! - `replay`: podtrace's reader (splitting, parsing, reduction), the engine, and the
//!   conversion of every finished trace to an OTLP export request; `*_via_value` is the same
//!   with the reference reader, which builds a `serde_json::Value` before each typed object
//!   (how podtrace decoded before), so the gain is measured within one run;
//! - `reader`: the reader alone;
//! - live heap bytes per pod in flight (N vs 2N pods mid-startup, through a counting global
//!   allocator), and whether memory returns to the baseline once they have finished.
//!
//! Run: `cargo bench --bench replay -- --warm-up-time 1 --measurement-time 5`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use criterion::{Criterion, Throughput};
use jiff::{SignedDuration, Timestamp};
use podtrace::observe::{Action, Object, Observation};
use podtrace::replay::input::{Inputs, Record, Source};
use podtrace::timeline::{Config, Engine};
use serde_json::{Value, json};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: delegates every operation to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Pods in the recording (`PODTRACE_BENCH_PODS` overrides, e.g. for a quick check).
fn pods() -> usize {
    std::env::var("PODTRACE_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}
const NODES: usize = 50;

fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn ts_micro(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// One pod's values in time order: (time, phase, value). Phase 0 values leave the pod
/// mid-startup; phase 1 values finish it.
fn pod_values(i: usize, t0: Timestamp) -> Vec<(Timestamp, u8, Value)> {
    let ms = SignedDuration::from_millis;
    let created = t0 + ms(20 * i as i64);
    let name = format!("web-7d9f8c6b5-{i:05}");
    let uid = format!("{:08x}-aaaa-4bbb-8ccc-{:012x}", i, i * 7919);
    let node = format!("node-{:03}", i % NODES);
    let image = "registry.example.com/shop/web:1.27.3";
    let scheduled = created + ms(5 + (i % 40) as i64);
    let pulled = scheduled + ms(1200 + (i % 7) as i64 * 100);
    let started = pulled + ms(400);
    let ready = started + ms(1000);
    let managed = json!([{"apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:generateName":{},
        "f:labels":{".":{},"f:app":{},"f:pod-template-hash":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"rs-uid\"}":{}}},
        "f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},
        "f:ports":{".":{},"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{}},"f:resources":{".":{},"f:limits":{},"f:requests":{}}}}}},
        "manager":"kube-controller-manager","operation":"Update","time": ts(created)}]);
    let pod = |node: Option<&str>, status: Value| {
        let mut spec = json!({"containers":[{"name":"web","image":image,"imagePullPolicy":"IfNotPresent",
            "ports":[{"containerPort":8080,"protocol":"TCP"}],
            "resources":{"limits":{"cpu":"500m","memory":"256Mi"},"requests":{"cpu":"100m","memory":"128Mi"}},
            "env":[{"name":"LOG_LEVEL","value":"info"},{"name":"PORT","value":"8080"}],
            "volumeMounts":[{"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","name":"kube-api-access","readOnly":true}]}],
            "dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler",
            "serviceAccountName":"default","terminationGracePeriodSeconds":30,
            "tolerations":[{"effect":"NoExecute","key":"node.kubernetes.io/not-ready","operator":"Exists","tolerationSeconds":300}]});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":name,"generateName":"web-7d9f8c6b5-","namespace":"shop",
            "uid":uid,"creationTimestamp":ts(created),"labels":{"app":"web","pod-template-hash":"7d9f8c6b5"},
            "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f8c6b5","uid":"rs-uid","controller":true,"blockOwnerDeletion":true}],
            "managedFields":managed},"spec":spec,"status":status})
    };
    let cond = |kind: &str, status: &str, at: Timestamp| json!({"type":kind,"status":status,"lastTransitionTime":ts(at),"lastProbeTime":null});
    let kubelet_event = |n: usize, reason: &str, msg: String, at: Timestamp| {
        json!({"apiVersion":"v1","kind":"Event","metadata":{"name":format!("{name}.{n:016x}"),"namespace":"shop",
            "uid":format!("ev-{i}-{n}"),"creationTimestamp":ts(at)},
            "involvedObject":{"kind":"Pod","namespace":"shop","name":name,"uid":uid,"apiVersion":"v1","fieldPath":"spec.containers{web}"},
            "reason":reason,"message":msg,"source":{"component":"kubelet","host":node},
            "firstTimestamp":ts(at),"lastTimestamp":ts(at),"count":1,"type":"Normal","eventTime":null,
            "reportingComponent":"kubelet","reportingInstance":node})
    };
    let waiting = json!([{"name":"web","image":image,"imageID":"","ready":false,"restartCount":0,"started":false,
        "state":{"waiting":{"reason":"ContainerCreating"}}}]);
    let running = json!([{"name":"web","image":image,"imageID":format!("{image}@sha256:0123456789abcdef"),"ready":true,"restartCount":0,"started":true,
        "containerID":format!("containerd://{uid}"),"state":{"running":{"startedAt":ts(started)}}}]);
    vec![
        (
            created,
            0,
            json!({"type":"ADDED","object":pod(None, json!({"phase":"Pending","qosClass":"Burstable"}))}),
        ),
        (
            scheduled,
            0,
            json!({"type":"ADDED","object":{"apiVersion":"v1","kind":"Event",
            "metadata":{"name":format!("{name}.sched"),"namespace":"shop","uid":format!("ev-{i}-s"),"creationTimestamp":ts(scheduled)},
            "involvedObject":{"kind":"Pod","namespace":"shop","name":name,"uid":uid,"apiVersion":"v1"},
            "reason":"Scheduled","message":format!("Successfully assigned shop/{name} to {node}"),"source":{},
            "firstTimestamp":null,"lastTimestamp":null,"type":"Normal","eventTime":ts_micro(scheduled),
            "action":"Binding","reportingComponent":"default-scheduler","reportingInstance":"default-scheduler-cp-1"}}),
        ),
        (
            scheduled,
            0,
            json!({"type":"MODIFIED","object":pod(Some(&node), json!({"phase":"Pending","qosClass":"Burstable",
            "conditions":[cond("PodScheduled","True",scheduled)]}))}),
        ),
        (
            scheduled + ms(100),
            0,
            json!({"type":"MODIFIED","object":pod(Some(&node), json!({"phase":"Pending","qosClass":"Burstable",
            "hostIP":"10.0.0.1","startTime":ts(scheduled),"containerStatuses":waiting,
            "conditions":[cond("PodReadyToStartContainers","False",scheduled),cond("Initialized","True",scheduled),
                cond("Ready","False",scheduled),cond("ContainersReady","False",scheduled),cond("PodScheduled","True",scheduled)]}))}),
        ),
        (
            scheduled + ms(150),
            0,
            json!({"type":"ADDED","object":kubelet_event(1, "Pulling", format!("Pulling image \"{image}\""), scheduled + ms(150))}),
        ),
        (
            pulled,
            1,
            json!({"type":"ADDED","object":kubelet_event(2, "Pulled",
            format!("Successfully pulled image \"{image}\" in 1.2s (1.2s including waiting). Image size: 61512940 bytes."), pulled)}),
        ),
        (
            pulled + ms(50),
            1,
            json!({"type":"ADDED","object":kubelet_event(3, "Created", "Created container: web".into(), pulled + ms(50))}),
        ),
        (
            started,
            1,
            json!({"type":"ADDED","object":kubelet_event(4, "Started", "Started container web".into(), started)}),
        ),
        (
            started,
            1,
            json!({"type":"MODIFIED","object":pod(Some(&node), json!({"phase":"Running","qosClass":"Burstable",
            "hostIP":"10.0.0.1","podIP":"10.244.1.5","startTime":ts(scheduled),"containerStatuses":running.clone(),
            "conditions":[cond("PodReadyToStartContainers","True",started),cond("Initialized","True",scheduled),
                cond("Ready","False",scheduled),cond("ContainersReady","False",scheduled),cond("PodScheduled","True",scheduled)]}))}),
        ),
        (
            ready,
            1,
            json!({"type":"MODIFIED","object":pod(Some(&node), json!({"phase":"Running","qosClass":"Burstable",
            "hostIP":"10.0.0.1","podIP":"10.244.1.5","startTime":ts(scheduled),"containerStatuses":running,
            "conditions":[cond("PodReadyToStartContainers","True",started),cond("Initialized","True",scheduled),
                cond("Ready","True",ready),cond("ContainersReady","True",ready),cond("PodScheduled","True",scheduled)]}))}),
        ),
    ]
}

fn t0() -> Timestamp {
    "2026-11-21T10:00:00Z".parse().expect("valid timestamp")
}

/// The whole recording: every value, globally in time order, with increasing
/// resourceVersions, one per line. Returns the bytes and the number of values.
fn recording(pods: usize) -> (Vec<u8>, usize) {
    let t0 = t0();
    let mut all: Vec<(Timestamp, usize, Value)> = Vec::new();
    for i in 0..pods {
        for (k, (t, _, v)) in pod_values(i, t0).into_iter().enumerate() {
            all.push((t, i * 16 + k, v));
        }
    }
    all.sort_by_key(|(t, seq, _)| (*t, *seq));
    let mut out = Vec::new();
    let n = all.len();
    for (rv, (_, _, mut v)) in all.into_iter().enumerate() {
        v["object"]["metadata"]["resourceVersion"] = json!((1000 + rv).to_string());
        serde_json::to_writer(&mut out, &v).expect("serialise");
        out.push(b'\n');
    }
    (out, n)
}

fn open(bytes: &Arc<[u8]>, via_value: bool) -> Inputs {
    let sources = [Source::Bytes {
        name: "bench".into(),
        data: bytes.clone(),
    }];
    if via_value {
        Inputs::open_via_value(&sources)
    } else {
        Inputs::open(&sources)
    }
    .expect("open")
}

/// Full replay of `bytes`: reader, engine, OTLP request per finished trace. Returns spans.
/// `via_value`: the reference reader, which decodes every value into a `serde_json::Value`
/// before the typed object (what podtrace did before decoding directly).
fn replay(bytes: &Arc<[u8]>, via_value: bool) -> usize {
    let inputs = open(bytes, via_value);
    let mut engine = Engine::new(Config::default());
    let mut spans = 0;
    let mut finish = |t: podtrace::trace::Trace| {
        let req = podtrace::export::proto::request([(&t, &[][..])], &[]);
        spans += req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum::<usize>();
        black_box(req);
    };
    for r in inputs {
        if let Ok(Record::Observation { observation, .. }) = r {
            for t in engine.observe(observation) {
                finish(t);
            }
        }
    }
    for t in engine.drain() {
        finish(t);
    }
    spans
}

fn parse_only(bytes: &[u8]) -> usize {
    let mut n = 0;
    for v in serde_json::Deserializer::from_slice(bytes).into_iter::<Value>() {
        black_box(v.expect("valid JSON"));
        n += 1;
    }
    n
}

fn observe_value(engine: &mut Engine, v: Value) -> usize {
    let action = Action::from_watch_type(v["type"].as_str().unwrap_or("")).expect("watch type");
    let Value::Object(mut m) = v else { return 0 };
    let object = Object::from_json(m.remove("object").unwrap_or(Value::Null)).expect("object");
    engine
        .observe(Observation {
            action,
            object,
            observed_at: None,
        })
        .len()
}

/// Live bytes attributable to pods held mid-startup (N, then 2N), and after they finished —
/// twice over with fresh pods, to show retained memory does not grow with pods ever seen.
fn memory_report() {
    let t0 = t0();
    let n = 2_000;
    // Serialised up front so that parsing is part of each step, as in replay, and the input
    // held by the benchmark itself is outside the measurement.
    let per_pod: Vec<Vec<(u8, String)>> = (0..4 * n)
        // The second batch starts after the first one's grace periods, as new pods would.
        .map(|i| {
            if i < 2 * n {
                (i, t0)
            } else {
                (i, t0 + SignedDuration::from_secs(7200))
            }
        })
        .map(|(i, base)| {
            pod_values(i, base)
                .into_iter()
                .map(|(_, phase, v)| (phase, v.to_string()))
                .collect()
        })
        .collect();
    let feed = |engine: &mut Engine, pods: std::ops::Range<usize>, phase: u8| {
        let mut finished = 0;
        for p in pods {
            for (ph, s) in &per_pod[p] {
                if *ph == phase {
                    finished += observe_value(engine, serde_json::from_str(s).expect("json"));
                }
            }
        }
        finished
    };
    let mut engine = Engine::new(Config::default());
    let base = live();
    feed(&mut engine, 0..n, 0);
    let at_n = live() - base;
    let in_flight_n = engine.in_flight();
    feed(&mut engine, n..2 * n, 0);
    let at_2n = live() - base;
    let in_flight_2n = engine.in_flight();
    let mut done = feed(&mut engine, 0..2 * n, 1);
    // Past every pod's grace period: finished traces leave the engine.
    done += engine.advance(t0 + SignedDuration::from_secs(3600)).len();
    let after_1 = live() - base;
    let in_flight_after = engine.in_flight();
    // A second, equally large batch of new pods through the same engine.
    done += feed(&mut engine, 2 * n..4 * n, 0);
    let in_flight_second = engine.in_flight();
    done += feed(&mut engine, 2 * n..4 * n, 1);
    done += engine
        .advance(t0 + SignedDuration::from_secs(4 * 3600))
        .len();
    assert_eq!(
        in_flight_second,
        2 * n,
        "second batch should be in flight before it finishes"
    );
    assert_eq!(done, 4 * n, "every pod should finish");
    let after_2 = live() - base;
    println!(
        "memory: {in_flight_n} pods in flight: {at_n} B ({} B/pod); {in_flight_2n} in flight: {at_2n} B; \
         marginal {} B per pod in flight",
        at_n / in_flight_n.max(1) as isize,
        (at_2n - at_n) / (in_flight_2n.saturating_sub(in_flight_n)).max(1) as isize,
    );
    println!(
        "memory: after {} pods finished ({in_flight_after} in flight): {after_1} B above baseline; \
         after {done} finished in total: {after_2} B above baseline",
        2 * n
    );
    drop(engine);
    println!("memory: engine dropped: {} B above baseline", live() - base);
}

fn main() {
    let pods = pods();
    let (bytes, values) = recording(pods);
    let bytes: Arc<[u8]> = Arc::from(bytes);
    println!(
        "recording: {pods} pods, {values} watch events, {:.1} MiB",
        bytes.len() as f64 / (1 << 20) as f64
    );

    // One timed pass each for the headline ratio (criterion below gives the distributions).
    let t = Instant::now();
    let parsed = parse_only(&bytes);
    let parse_s = t.elapsed().as_secs_f64();
    for (label, via_value) in [("via Value (reference)", true), ("direct", false)] {
        let t = Instant::now();
        let spans = replay(&bytes, via_value);
        let replay_s = t.elapsed().as_secs_f64();
        assert_eq!(parsed, values);
        assert!(
            spans >= pods * 4,
            "every pod should yield a trace ({spans} spans)"
        );
        println!(
            "single pass, {label}: parse {:.0} events/s, replay {:.0} events/s ({spans} spans); replay/parse time ratio {:.2}",
            values as f64 / parse_s,
            values as f64 / replay_s,
            replay_s / parse_s
        );
        // Where the time goes: the reader alone (split, parse, reduce to facts).
        let t = Instant::now();
        let read = open(&bytes, via_value)
            .filter(|r| matches!(r, Ok(Record::Observation { .. })))
            .count();
        let reader_s = t.elapsed().as_secs_f64();
        assert_eq!(read, values);
        println!(
            "breakdown, {label}: reader (split + parse + reduce) {:.2}x parse time; engine + OTLP conversion {:.2}x",
            reader_s / parse_s,
            (replay_s - reader_s) / parse_s
        );
    }
    memory_report();

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(values as u64));
    g.sample_size(10);
    g.bench_function("parse_json_values", |b| b.iter(|| parse_only(&bytes)));
    g.bench_function("full_replay", |b| b.iter(|| replay(&bytes, false)));
    g.bench_function("full_replay_via_value", |b| b.iter(|| replay(&bytes, true)));
    g.bench_function("reader", |b| b.iter(|| open(&bytes, false).count()));
    g.bench_function("reader_via_value", |b| {
        b.iter(|| open(&bytes, true).count())
    });
    g.finish();
    c.final_summary();
}
