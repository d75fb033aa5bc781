//! Traces as OpenTelemetry SDK [`SpanData`], grouped by the resource each span belongs to.
//!
//! A span's resource depends on its [`Service`]: the root is podtrace's own work, scheduling
//! is the scheduler's, everything on a node is that node's kubelet's. `SpanData` carries no
//! resource, so grouping is done here and the group's [`Resource`] travels beside its spans.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanId as OtelSpanId, SpanKind, Status as OtelStatus, TraceFlags,
    TraceId as OtelTraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value as OtelValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::trace::{Attribute, Service, Span, Status, Trace, Value};

/// Name of the instrumentation scope on every exported span.
pub const SCOPE_NAME: &str = "podtrace";

/// The instrumentation scope on every exported span: `podtrace` and the crate version.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// The resource of spans attributed to `service`: `service.name` (and `k8s.node.name` for a
/// kubelet), plus `extra` (e.g. from `OTEL_RESOURCE_ATTRIBUTES`). `extra` cannot override the
/// keys podtrace sets, because they identify which component did the work.
pub fn resource_for(service: &Service, extra: &[(String, String)]) -> Resource {
    let mut own = vec![KeyValue::new("service.name", service.name())];
    match service {
        Service::Kubelet { node } => own.push(KeyValue::new("k8s.node.name", node.clone())),
        Service::ControllerManager { controller } => {
            own.push(KeyValue::new("podtrace.controller", *controller));
        }
        Service::Podtrace | Service::Scheduler => {}
    }
    if *service == Service::Podtrace {
        own.push(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    }
    let mut attrs: Vec<KeyValue> = extra
        .iter()
        .filter(|(k, _)| !own.iter().any(|kv| kv.key.as_str() == k))
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    attrs.extend(own);
    Resource::builder_empty().with_attributes(attrs).build()
}

fn otel_value(v: &Value) -> OtelValue {
    match v {
        Value::Str(s) => OtelValue::from(s.clone()),
        Value::Int(i) => OtelValue::I64(*i),
        Value::Float(f) => OtelValue::F64(*f),
        Value::Bool(b) => OtelValue::Bool(*b),
        Value::StrList(list) => OtelValue::Array(opentelemetry::Array::String(
            list.iter()
                .map(|s| opentelemetry::StringValue::from(s.clone()))
                .collect(),
        )),
    }
}

fn key_values(attrs: &[Attribute]) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| KeyValue::new(*k, otel_value(v)))
        .collect()
}

/// OTLP carries times as u64 nanoseconds since the epoch (1970 to 2554). The proto
/// conversion maps earlier times to 0 but wraps later ones (`as u64`), so a bogus far-future
/// timestamp in the input would come out as an arbitrary date: clamp to the range instead.
fn time(ts: jiff::Timestamp) -> SystemTime {
    let max =
        jiff::Timestamp::from_nanosecond(i128::from(u64::MAX)).unwrap_or(jiff::Timestamp::MAX);
    SystemTime::from(ts.clamp(jiff::Timestamp::UNIX_EPOCH, max))
}

/// Converts one span of `trace`. `extra` (a session's `spec.attributes`) is appended to the
/// span's own attributes.
pub fn span_data(trace: &Trace, span: &Span, extra: &[(String, String)]) -> SpanData {
    let trace_id = OtelTraceId::from_bytes(trace.trace_id.0);
    // podtrace reports every operation a session selects, whatever a linked caller's
    // sampling decision: the export is the whole point of the session.
    let context = SpanContext::new(
        trace_id,
        OtelSpanId::from_bytes(span.span_id.0),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let parent_span_id = span
        .parent
        .map_or(OtelSpanId::INVALID, |p| OtelSpanId::from_bytes(p.0));
    let mut attributes = key_values(&span.attributes);
    attributes.extend(
        extra
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .iter()
        .map(|e| {
            opentelemetry::trace::Event::new(
                e.name.clone(),
                time(e.time),
                key_values(&e.attributes),
                0,
            )
        })
        .collect();
    let mut links = SpanLinks::default();
    links.links = span
        .links
        .iter()
        .map(|l| {
            let flags = if l.context.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let linked = SpanContext::new(
                OtelTraceId::from_bytes(l.context.trace_id.0),
                OtelSpanId::from_bytes(l.context.span_id.0),
                flags,
                true,
                TraceState::default(),
            );
            opentelemetry::trace::Link::new(linked, key_values(&l.attributes), 0)
        })
        .collect();
    SpanData {
        span_context: context,
        parent_span_id,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed(span.name),
        start_time: time(span.start),
        end_time: time(span.end.max(span.start)),
        attributes,
        dropped_attributes_count: 0,
        events,
        links,
        status: match &span.status {
            Status::Unset => OtelStatus::Unset,
            Status::Error(msg) => OtelStatus::error(msg.clone()),
        },
        instrumentation_scope: scope(),
    }
}

/// All spans of `traces`, grouped by service (in [`Service`] order, so output is stable),
/// each group in trace order then span order.
pub fn group_by_service<'a>(
    traces: impl IntoIterator<Item = (&'a Trace, &'a [(String, String)])>,
) -> BTreeMap<Service, Vec<SpanData>> {
    let mut groups: BTreeMap<Service, Vec<SpanData>> = BTreeMap::new();
    for (trace, extra) in traces {
        for span in &trace.spans {
            groups
                .entry(span.service.clone())
                .or_default()
                .push(span_data(trace, span, extra));
        }
    }
    groups
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::trace::*;
    use jiff::{SignedDuration, Timestamp};

    /// A small trace: root (podtrace), schedule (scheduler), container (kubelet on node-a).
    pub(crate) fn sample_trace(uid: &str) -> Trace {
        let t0: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let ms = SignedDuration::from_millis;
        let root = SpanId([1; 8]);
        let mk = |id: u8, parent: Option<SpanId>, name, service, s: i64, e: i64| Span {
            span_id: SpanId([id; 8]),
            parent,
            name,
            service,
            start: t0 + ms(s),
            end: t0 + ms(e),
            status: Status::Unset,
            attributes: vec![],
            events: vec![],
            links: vec![],
        };
        let mut root_span = mk(1, None, "pod.startup", Service::Podtrace, 0, 4200);
        root_span.attributes = vec![
            ("k8s.pod.name", Value::Str("web-1".into())),
            ("k8s.pod.restarts", Value::Int(0)),
        ];
        let sched = mk(2, Some(root), "pod.schedule", Service::Scheduler, 0, 35);
        let node = Service::Kubelet {
            node: "node-a".into(),
        };
        let mut pull = mk(
            3,
            Some(root),
            "container.image_pull",
            node.clone(),
            100,
            1334,
        );
        pull.attributes = vec![("container.name", Value::Str("app".into()))];
        pull.events = vec![SpanEvent {
            name: "Pulled".into(),
            time: t0 + ms(1334),
            attributes: vec![("message", Value::Str("ok".into()))],
        }];
        let mut start = mk(4, Some(root), "container.start", node, 1400, 4200);
        start.status = Status::Error("CrashLoopBackOff".into());
        start.attributes = vec![("container.name", Value::Str("app".into()))];
        Trace {
            trace_id: crate::ids::trace_id(Operation::PodStartup, &[uid]),
            operation: Operation::PodStartup,
            subject: Subject {
                kind: "Pod",
                namespace: "default".into(),
                name: "web-1".into(),
                uid: uid.into(),
                revision: None,
            },
            outcome: crate::timeline::pod_startup::READY,
            partial: false,
            spans: vec![root_span, sched, pull, start],
            phases: vec![("schedule", ms(35)), ("pod_startup", ms(4200))],
        }
    }

    #[test]
    fn spans_carry_ids_parents_times_and_status() {
        let mut t = sample_trace("u1");
        let extra = vec![("team".to_string(), "payments".to_string())];
        let groups = group_by_service([(&t, extra.as_slice())]);
        assert_eq!(groups.len(), 3);
        let root = &groups[&Service::Podtrace][0];
        assert_eq!(root.span_context.trace_id().to_bytes(), t.trace_id.0);
        assert_eq!(root.parent_span_id, OtelSpanId::INVALID);
        assert!(root.attributes.iter().any(|kv| kv.key.as_str() == "team"));
        let kubelet = &groups[&Service::Kubelet {
            node: "node-a".into(),
        }];
        assert_eq!(kubelet.len(), 2);
        assert_eq!(kubelet[0].parent_span_id.to_bytes(), [1; 8]);
        assert_eq!(kubelet[0].events.len(), 1);
        assert!(matches!(kubelet[1].status, OtelStatus::Error { .. }));
        let d = kubelet[0]
            .end_time
            .duration_since(kubelet[0].start_time)
            .unwrap();
        assert_eq!(d.as_millis(), 1234);

        let caller = TraceContext {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([9; 8]),
            sampled: false,
        };
        t.spans[0].links.push(Link {
            context: caller,
            attributes: vec![("podtrace.link.source", Value::Str("pod".into()))],
        });
        let root = span_data(&t, &t.spans[0], &[]);
        assert_eq!(
            root.parent_span_id,
            OtelSpanId::INVALID,
            "a link, not a parent"
        );
        assert!(!root.parent_span_is_remote);
        let link = &root.links.links[0];
        assert_eq!(link.span_context.trace_id().to_bytes(), [7; 16]);
        assert_eq!(link.span_context.span_id().to_bytes(), [9; 8]);
        assert!(link.span_context.is_remote());
        assert!(!link.span_context.is_sampled());
        assert_eq!(link.attributes.len(), 1);
    }

    #[test]
    fn resources_cannot_be_overridden() {
        let extra = vec![
            ("service.name".to_string(), "evil".to_string()),
            ("deployment.environment".to_string(), "prod".to_string()),
        ];
        let r = resource_for(&Service::Kubelet { node: "n1".into() }, &extra);
        let get = |k: &'static str| r.get(&opentelemetry::Key::from_static_str(k));
        assert_eq!(get("service.name"), Some(OtelValue::from("kubelet")));
        assert_eq!(get("k8s.node.name"), Some(OtelValue::from("n1")));
        assert_eq!(get("deployment.environment"), Some(OtelValue::from("prod")));
    }
}
