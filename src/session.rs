//! The `TraceSession` custom resource: what a user asks podtrace to follow.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Attribute keys a session may not set, because podtrace owns them.
pub const RESERVED_ATTRIBUTE_PREFIXES: &[&str] = &["k8s.", "podtrace.", "service.", "container."];

/// What a user asks podtrace to follow in one namespace, and for how long.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "podtrace.dev",
    version = "v1alpha1",
    kind = "TraceSession",
    plural = "tracesessions",
    shortname = "tsess",
    namespaced,
    status = "TraceSessionStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Matched","type":"integer","jsonPath":".status.podsMatched"}"#,
    printcolumn = r#"{"name":"Traces","type":"integer","jsonPath":".status.tracesCompleted"}"#,
    printcolumn = r#"{"name":"Exported","type":"integer","jsonPath":".status.tracesExported"}"#,
    printcolumn = r#"{"name":"P90","type":"string","jsonPath":".status.latency.overall.p90"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TraceSessionSpec {
    /// Operations to reconstruct as traces: `PodStartup`, `PodTermination`, `Rollout`.
    #[schemars(length(min = 1, max = 8))]
    #[x_kube(validation = kube::core::Rule::new("self.all(x, self.exists_one(y, y == x))").message("operations must not repeat"))]
    pub operations: Vec<Operation>,

    /// Which pods of this namespace to follow. `{}` follows every pod in the namespace.
    pub selector: LabelSelector,

    /// How long the session stays active after it starts, as a Go duration (`30m`, `2h`, `90s`).
    /// Unset: until deleted or `maxTraces` is reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) > duration('0s')").message("duration must be a positive Go duration such as 90s, 30m or 1h30m"))]
    pub duration: Option<String>,

    /// Stop after this many completed traces. Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_traces: Option<i32>,

    /// Extra attributes set on every span of this session's traces (e.g. `team: payments`).
    /// Keys under `k8s.`, `podtrace.`, `service.` and `container.` are reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new("self.all(k, !k.startsWith('k8s.') && !k.startsWith('podtrace.') && !k.startsWith('service.') && !k.startsWith('container.'))").message("attribute keys under k8s., podtrace., service. and container. are reserved"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(k, size(k) <= 128 && k.matches('^[A-Za-z_][A-Za-z0-9_.-]*$') && size(self[k]) <= 256)").message("attribute keys must match ^[A-Za-z_][A-Za-z0-9_.-]*$ (at most 128 characters) and values must be at most 256 characters"))]
    pub attributes: BTreeMap<String, String>,
}

/// An operation podtrace can reconstruct. Each variant is implemented by one module of
/// `timeline` (see `timeline::operation`); adding one means adding that module and a variant.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    schemars::JsonSchema,
)]
pub enum Operation {
    /// A pod's startup: from creation to Ready (or failure, deletion, timeout).
    PodStartup,
    /// A pod's termination: from the deletion request to the pod object being gone.
    PodTermination,
    /// A workload's rollout (Deployment, StatefulSet, DaemonSet): from a new template revision
    /// being observed to complete, failed, paused, superseded or rolled back.
    Rollout,
}

impl Operation {
    /// Every operation, in declaration order.
    pub const ALL: [Operation; 3] = [
        Operation::PodStartup,
        Operation::PodTermination,
        Operation::Rollout,
    ];

    /// The name used in the spec, in status keys, in IDs and in metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::PodStartup => "PodStartup",
            Operation::PodTermination => "PodTermination",
            Operation::Rollout => "Rollout",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lifecycle of a session.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum SessionPhase {
    /// Accepted, not yet tracing.
    #[default]
    Pending,
    /// Following pods.
    Active,
    /// `duration` elapsed or `maxTraces` reached; nothing more is traced.
    Completed,
    /// The spec cannot be acted on; the `Ready` condition says why.
    Invalid,
}

/// What podtrace reports back about a session.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceSessionStatus {
    /// Where the session is in its lifecycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SessionPhase>,
    /// Standard conditions; `Ready` carries the reason a session is Invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the session became Active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the session became Completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Pods that matched the selector while the session was active.
    #[serde(default)]
    pub pods_matched: i64,
    /// Startup traces finished (Ready, failed, deleted or timed out).
    #[serde(default)]
    pub traces_completed: i64,
    /// Traces accepted by the OTLP backend.
    #[serde(default)]
    pub traces_exported: i64,
    /// Traces dropped because the export queue was full.
    #[serde(default)]
    pub traces_dropped: i64,
    /// Trace ID (32 hex digits) of the most recently completed trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trace_id: Option<String>,
    /// Startup latency percentiles over this session's completed traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyStatus>,
    /// Restart bookkeeping of the controller: which finished startups were already handed to
    /// the exporter, so a restarted controller sends none of them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_watermark: Option<ExportWatermark>,
}

/// Every trace of the session whose startup finished at or before `before` was handed to the
/// exporter (exported, or counted as dropped); so were the traces of the pods in `pods`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportWatermark {
    /// Finish-time watermark.
    pub before: Time,
    /// UIDs of pods whose startup finished after `before` and whose trace was handed off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<String>,
}

/// Startup latency percentiles, overall and per phase.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyStatus {
    /// Creation to Ready.
    pub overall: Percentiles,
    /// Per phase, keyed by the phase names of the trace model (`schedule`, `image_pull`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub phases: BTreeMap<String, Percentiles>,
}

/// Percentiles of a latency distribution, as Go durations (`1.25s`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    /// How many samples these percentiles summarise.
    pub count: i64,
    /// Median.
    pub p50: String,
    /// 90th percentile.
    pub p90: String,
    /// 99th percentile.
    pub p99: String,
    /// Largest sample.
    pub max: String,
}
