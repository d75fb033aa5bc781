//! What the engine is fed: watch events reduced to the facts a startup trace needs.
//!
//! Reducing at the edge keeps memory proportional to pods in flight (no managedFields, no
//! env, no command lines, nothing from Secrets) and lets replay and the live controller share
//! one input type. Conversions from k8s-openapi objects live here and are pure.

use std::collections::BTreeMap;

use jiff::Timestamp;

/// One watch event as the engine sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// What happened to the object.
    pub action: Action,
    /// The reduced object.
    pub object: Object,
    /// When podtrace saw this event (ms precision), if known. Replay of plain `kubectl`
    /// output has none; `podtrace record` and the live controller carry one.
    pub observed_at: Option<Timestamp>,
}

/// Watch event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// ADDED, or an object from a list.
    Added,
    /// MODIFIED.
    Modified,
    /// DELETED.
    Deleted,
}

/// A reduced Kubernetes object.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// A Pod.
    Pod(Box<PodFacts>),
    /// A core/v1 or events.k8s.io/v1 Event.
    Event(Box<EventFacts>),
    /// A Node.
    Node(Box<NodeFacts>),
}

/// The parts of a Pod a startup trace needs.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PodFacts {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// `metadata.labels` (kept for session selection; never exported wholesale).
    pub labels: BTreeMap<String, String>,
    /// `tracing.k8s.io/traceparent` annotation, if any.
    pub traceparent: Option<String>,
    /// Legacy `trace.kubernetes.io/context` annotation, if any.
    pub legacy_trace_context: Option<String>,
    /// Controlling owner (kind, name), e.g. ("ReplicaSet", "web-7d9f8").
    pub owner: Option<(String, String)>,
    /// `metadata.creationTimestamp`.
    pub created: Option<Timestamp>,
    /// `metadata.deletionTimestamp`.
    pub deleted: Option<Timestamp>,
    /// `spec.nodeName`.
    pub node_name: Option<String>,
    /// `spec.schedulerName`.
    pub scheduler_name: Option<String>,
    /// `status.phase`.
    pub phase: Option<String>,
    /// `status.conditions`.
    pub conditions: Vec<PodCondition>,
    /// Init containers in spec order, with their status when known.
    pub init_containers: Vec<ContainerFacts>,
    /// App containers in spec order, with their status when known.
    pub containers: Vec<ContainerFacts>,
}

/// A pod condition.
#[derive(Clone, Debug, PartialEq)]
pub struct PodCondition {
    /// `type` (PodScheduled, PodReadyToStartContainers, Initialized, ContainersReady, Ready).
    pub kind: String,
    /// `status == "True"`.
    pub status: bool,
    /// `lastTransitionTime` (1 s precision).
    pub last_transition: Option<Timestamp>,
    /// `reason`.
    pub reason: Option<String>,
    /// `message`.
    pub message: Option<String>,
}

/// A container from spec, joined with its status.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ContainerFacts {
    /// Container name.
    pub name: String,
    /// Image as written in the spec.
    pub image: String,
    /// Init container with `restartPolicy: Always` (a sidecar): done when Started, not when it exits.
    pub sidecar: bool,
    /// `status.imageID`, if reported.
    pub image_id: Option<String>,
    /// `restartCount`.
    pub restart_count: i32,
    /// `ready`.
    pub ready: bool,
    /// Current state.
    pub state: ContainerState,
    /// `lastState.terminated`, if any (a crash before the current run).
    pub last_terminated: Option<Terminated>,
}

/// A container's state, from `containerStatuses[].state`.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum ContainerState {
    /// No status reported yet.
    #[default]
    Unknown,
    /// `waiting` with reason (ContainerCreating, PodInitializing, ErrImagePull, ImagePullBackOff, CrashLoopBackOff) and message.
    Waiting {
        /// Reason.
        reason: Option<String>,
        /// Message.
        message: Option<String>,
    },
    /// `running.startedAt`.
    Running {
        /// Start time (1 s precision).
        started_at: Option<Timestamp>,
    },
    /// `terminated`.
    Terminated(Terminated),
}

/// A terminated container state.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Terminated {
    /// `exitCode`.
    pub exit_code: i32,
    /// `reason` (Completed, Error, OOMKilled, …).
    pub reason: Option<String>,
    /// `startedAt`.
    pub started_at: Option<Timestamp>,
    /// `finishedAt`.
    pub finished_at: Option<Timestamp>,
}

/// The parts of an Event a startup trace needs, from either Event API.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct EventFacts {
    /// `metadata.uid` of the Event.
    pub uid: String,
    /// `metadata.namespace` of the Event.
    pub namespace: String,
    /// `metadata.name` of the Event.
    pub name: String,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// `involvedObject.kind` / `regarding.kind`.
    pub object_kind: String,
    /// `involvedObject.uid` / `regarding.uid`.
    pub object_uid: Option<String>,
    /// `involvedObject.name`.
    pub object_name: String,
    /// `involvedObject.namespace`.
    pub object_namespace: Option<String>,
    /// `involvedObject.fieldPath`, e.g. `spec.containers{app}`.
    pub field_path: Option<String>,
    /// `reason` (Scheduled, FailedScheduling, Pulling, Pulled, Created, Started, BackOff, …).
    pub reason: String,
    /// `message` / `note`.
    pub message: String,
    /// `Normal` or `Warning`.
    pub warning: bool,
    /// `source.component` or `reportingComponent` (kubelet, default-scheduler, …).
    pub component: Option<String>,
    /// `source.host` or `reportingInstance` (the node, for the kubelet).
    pub host: Option<String>,
    /// `eventTime` (µs precision), when set.
    pub event_time: Option<Timestamp>,
    /// `firstTimestamp` (1 s precision), when set.
    pub first_timestamp: Option<Timestamp>,
    /// `lastTimestamp` (1 s precision), when set.
    pub last_timestamp: Option<Timestamp>,
    /// `count` or `series.count` (1 when absent).
    pub count: i32,
    /// `series.lastObservedTime`, when set.
    pub series_last_observed: Option<Timestamp>,
}

/// The parts of a Node that kubelet spans carry.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct NodeFacts {
    /// `metadata.name`.
    pub name: String,
    /// `topology.kubernetes.io/zone` label.
    pub zone: Option<String>,
    /// `topology.kubernetes.io/region` label.
    pub region: Option<String>,
    /// `node.kubernetes.io/instance-type` label.
    pub instance_type: Option<String>,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet_version: Option<String>,
    /// `status.nodeInfo.containerRuntimeVersion`.
    pub container_runtime_version: Option<String>,
    /// `status.nodeInfo.osImage`.
    pub os_image: Option<String>,
    /// `status.nodeInfo.architecture`.
    pub architecture: Option<String>,
}
