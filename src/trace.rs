//! What the engine produces: finished traces of synthesized spans with deterministic IDs.

use jiff::{SignedDuration, Timestamp};

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

/// The pod a trace describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// How a startup ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The Ready condition turned True.
    Ready,
    /// The startup is known to have failed (image pull failure, crash loop, …).
    Failed {
        /// Short machine-readable reason (ErrImagePull, CrashLoopBackOff, …).
        reason: String,
    },
    /// The pod was deleted before it became Ready.
    Deleted,
    /// Nothing ended the startup within the configured timeout.
    TimedOut,
    /// The input ended (replay) before the startup did.
    Incomplete,
}

/// Which component did the work a span describes; becomes the resource's `service.name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// podtrace itself (the root span).
    Podtrace,
    /// The scheduler.
    Scheduler,
    /// The kubelet of a node.
    Kubelet {
        /// Node name.
        node: String,
    },
}

impl Service {
    /// The `service.name` resource attribute.
    pub fn name(&self) -> &'static str {
        match self {
            Service::Podtrace => "podtrace",
            Service::Scheduler => "kube-scheduler",
            Service::Kubelet { .. } => "kubelet",
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

/// A synthesized span.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Deterministic span ID.
    pub span_id: SpanId,
    /// Parent within this trace (None for the root, whose remote parent is on the [`Trace`]).
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
}

impl Span {
    /// `end - start`.
    pub fn duration(&self) -> SignedDuration {
        self.end.duration_since(self.start)
    }
}

/// A W3C trace context the pod asked to be linked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteParent {
    /// Trace ID from the traceparent.
    pub trace_id: TraceId,
    /// Parent span ID from the traceparent.
    pub span_id: SpanId,
    /// Sampled flag.
    pub sampled: bool,
}

/// A finished startup trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Trace ID (deterministic, or the remote parent's).
    pub trace_id: TraceId,
    /// The pod.
    pub pod: PodRef,
    /// How the startup ended.
    pub outcome: Outcome,
    /// True when the pod was first seen part-way through its startup, so early spans are
    /// rebuilt from status alone.
    pub partial: bool,
    /// The trace context the pod carried, if any.
    pub remote_parent: Option<RemoteParent>,
    /// Spans; `spans[0]` is the root `pod.startup`.
    pub spans: Vec<Span>,
    /// Phase durations for summaries and session status (name from the trace model, duration).
    pub phases: Vec<(&'static str, SignedDuration)>,
}

impl Trace {
    /// The root `pod.startup` span (always `spans[0]` for engine-built traces).
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
