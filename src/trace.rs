//! What the engine produces: finished traces of synthesized spans with deterministic IDs, one
//! trace per operation (a pod's startup or termination, a workload's rollout).

use jiff::{SignedDuration, Timestamp};

pub use crate::session::Operation;

/// A 16-byte trace ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Display for SpanId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// What a trace is about: the object whose operation it reconstructs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// Kubernetes kind (`Pod`, `Deployment`, `StatefulSet`, `DaemonSet`).
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// The workload revision a rollout brings in (`deployment.kubernetes.io/revision`,
    /// StatefulSet `updateRevision`, DaemonSet template generation); None for pods.
    pub revision: Option<String>,
}

/// How an operation ended, in terms every consumer (status, metrics, summaries) understands
/// without knowing the operation: each operation module defines its outcomes as values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Stable snake_case label, exported as `podtrace.outcome` (`ready`, `failed`, …).
    pub label: &'static str,
    /// Whether the operation reached the end it aims for (a pod Ready, a rollout complete, a
    /// pod gone). Only such traces feed the overall latency.
    pub success: bool,
    /// Short machine-readable reason (ImagePullBackOff, ProgressDeadlineExceeded, …), if any.
    pub reason: Option<String>,
}

impl Outcome {
    /// An outcome without a reason.
    pub const fn new(label: &'static str, success: bool) -> Outcome {
        Outcome {
            label,
            success,
            reason: None,
        }
    }

    /// The same outcome with a reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Outcome {
        self.reason = Some(reason.into());
        self
    }

    /// The label as people read it: `timed_out` → `TimedOut`.
    pub fn title(&self) -> String {
        title_case(self.label)
    }
}

/// `snake_case` → `CamelCase`, for labels shown to people.
pub fn title_case(label: &str) -> String {
    label
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// Which component did the work a span describes; becomes the resource's `service.name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// podtrace itself (root spans).
    Podtrace,
    /// The scheduler.
    Scheduler,
    /// The kubelet of a node.
    Kubelet {
        /// Node name.
        node: String,
    },
    /// A controller of kube-controller-manager (`deployment`, `replicaset`, `statefulset`,
    /// `daemonset`), recorded as `podtrace.controller`.
    ControllerManager {
        /// Controller name.
        controller: &'static str,
    },
}

impl Service {
    /// The `service.name` resource attribute.
    pub fn name(&self) -> &'static str {
        match self {
            Service::Podtrace => "podtrace",
            Service::Scheduler => "kube-scheduler",
            Service::Kubelet { .. } => "kubelet",
            Service::ControllerManager { .. } => "kube-controller-manager",
        }
    }
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// String.
    Str(String),
    /// Integer.
    Int(i64),
    /// Floating point.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// List of strings (OTLP array value), e.g. `container.image.tags`.
    StrList(Vec<String>),
}

/// A key/value attribute. Keys are static: the trace model fixes them.
pub type Attribute = (&'static str, Value);

/// Span status.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Status {
    /// Nothing went wrong that podtrace knows of.
    #[default]
    Unset,
    /// Something failed; the description says what.
    Error(String),
}

/// A timestamped annotation on a span (a warning Event, a FailedScheduling attempt, …).
#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent {
    /// Event name (usually the Kubernetes event reason).
    pub name: String,
    /// When it happened.
    pub time: Timestamp,
    /// Attributes (message, count, …).
    pub attributes: Vec<Attribute>,
}

/// A span link: a pointer from a span to a span of another trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The linked context.
    pub context: TraceContext,
    /// Link attributes (where the context came from).
    pub attributes: Vec<Attribute>,
}

/// A W3C trace context (`traceparent`), parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// Trace ID.
    pub trace_id: TraceId,
    /// Span ID.
    pub span_id: SpanId,
    /// Sampled flag.
    pub sampled: bool,
}

/// A synthesized span.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Deterministic span ID.
    pub span_id: SpanId,
    /// Parent within this trace (None for the root).
    pub parent: Option<SpanId>,
    /// Stable, low-cardinality name (`pod.startup`, `pod.schedule`, …).
    pub name: &'static str,
    /// The component the span is attributed to.
    pub service: Service,
    /// Start.
    pub start: Timestamp,
    /// End (never before start).
    pub end: Timestamp,
    /// Status.
    pub status: Status,
    /// Attributes.
    pub attributes: Vec<Attribute>,
    /// Span events.
    pub events: Vec<SpanEvent>,
    /// Links to spans of other traces (on a root: the trace context its subject carried).
    pub links: Vec<Link>,
}

impl Span {
    /// `end - start`.
    pub fn duration(&self) -> SignedDuration {
        self.end.duration_since(self.start)
    }
}

/// A finished trace of one operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Deterministic trace ID (see `ids`).
    pub trace_id: TraceId,
    /// Which operation this trace reconstructs.
    pub operation: Operation,
    /// The object the operation happened to.
    pub subject: Subject,
    /// How the operation ended.
    pub outcome: Outcome,
    /// True when the operation was first seen part-way through, so early spans are rebuilt
    /// from status alone.
    pub partial: bool,
    /// Spans; `spans[0]` is the root.
    pub spans: Vec<Span>,
    /// Phase durations for summaries and session status (name from the trace model, duration).
    pub phases: Vec<(&'static str, SignedDuration)>,
}

impl Trace {
    /// The root span (always `spans[0]` for engine-built traces).
    pub fn root(&self) -> Option<&Span> {
        self.spans.first()
    }

    /// A phase duration by name (`total`, `create_to_schedule`, …), if known.
    pub fn phase(&self, name: &str) -> Option<SignedDuration> {
        self.phases
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| *d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        assert_eq!(Outcome::new("timed_out", false).title(), "TimedOut");
        assert_eq!(title_case("ready"), "Ready");
        assert_eq!(title_case("rolled_back"), "RolledBack");
        assert_eq!(title_case(""), "");
    }
}
