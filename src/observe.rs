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
    /// `metadata.deletionTimestamp`: when the pod will be gone (request time + grace period).
    pub deleted: Option<Timestamp>,
    /// `metadata.deletionGracePeriodSeconds`: subtracted from `deleted` to get the request time.
    pub deletion_grace_seconds: Option<i64>,
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

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::events::v1 as events;

/// Annotation carrying a W3C traceparent for the pod (KEP-5915).
pub const TRACEPARENT_ANNOTATION: &str = "tracing.k8s.io/traceparent";
/// Legacy annotation from the abandoned object-tracing KEP; its encoding was never standardised.
pub const LEGACY_TRACE_CONTEXT_ANNOTATION: &str = "trace.kubernetes.io/context";

/// Why an input value could not be turned into an [`Observation`].
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// A field the engine cannot work without is absent or empty.
    #[error("{kind} has no {field}")]
    MissingField {
        /// Object kind (Pod, Event, Node, watch event).
        kind: &'static str,
        /// JSON path of the missing field.
        field: &'static str,
    },
    /// The object does not match the Kubernetes schema of its kind.
    #[error("malformed {kind}: {source}")]
    Malformed {
        /// Object kind.
        kind: &'static str,
        /// What the decoder objected to (names the field).
        #[source]
        source: serde_json::Error,
    },
    /// An object podtrace does not follow; callers usually skip it.
    #[error("unsupported object {api_version}/{kind}")]
    UnsupportedKind {
        /// `apiVersion` as found.
        api_version: String,
        /// `kind` as found.
        kind: String,
    },
    /// A BOOKMARK watch event: carries only a resourceVersion, nothing to observe.
    #[error("watch BOOKMARK carries no object to observe")]
    Bookmark,
    /// An ERROR watch event (e.g. 410 Gone): the stream must be restarted by its reader.
    #[error("watch ERROR event: {0}")]
    WatchError(String),
    /// A watch type that is none of ADDED, MODIFIED, DELETED, BOOKMARK, ERROR.
    #[error("unknown watch event type {0:?}")]
    UnknownWatchType(String),
}

impl Action {
    /// Maps a watch event `type`. BOOKMARK and ERROR are typed errors so callers can tell
    /// "skip this line" from "the stream broke".
    pub fn from_watch_type(kind: &str) -> Result<Action, ObserveError> {
        match kind {
            "ADDED" => Ok(Action::Added),
            "MODIFIED" => Ok(Action::Modified),
            "DELETED" => Ok(Action::Deleted),
            "BOOKMARK" => Err(ObserveError::Bookmark),
            "ERROR" => Err(ObserveError::WatchError(
                "watch stream reported an error".into(),
            )),
            other => Err(ObserveError::UnknownWatchType(other.to_string())),
        }
    }
}

/// Decodes a JSON value into a typed Kubernetes object, naming the kind when it does not fit.
fn typed<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    kind: &'static str,
) -> Result<T, ObserveError> {
    serde_json::from_value(value).map_err(|source| ObserveError::Malformed { kind, source })
}

impl Object {
    /// Decodes and reduces one object, dispatching on `apiVersion` and `kind`.
    pub fn from_json(value: serde_json::Value) -> Result<Object, ObserveError> {
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .ok_or(ObserveError::MissingField {
                kind: "object",
                field: "apiVersion",
            })?
            .to_string();
        let kind = value
            .get("kind")
            .and_then(|v| v.as_str())
            .ok_or(ObserveError::MissingField {
                kind: "object",
                field: "kind",
            })?
            .to_string();
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Pod") => {
                let pod: core::Pod = typed(value, "Pod")?;
                Ok(Object::Pod(Box::new(PodFacts::from_pod(&pod)?)))
            }
            ("v1", "Event") => {
                let ev: core::Event = typed(value, "Event")?;
                Ok(Object::Event(Box::new(EventFacts::from_core(&ev)?)))
            }
            ("events.k8s.io/v1", "Event") => {
                let ev: events::Event = typed(value, "Event")?;
                Ok(Object::Event(Box::new(EventFacts::from_events_v1(&ev)?)))
            }
            ("v1", "Node") => {
                let node: core::Node = typed(value, "Node")?;
                Ok(Object::Node(Box::new(NodeFacts::from_node(&node)?)))
            }
            _ => Err(ObserveError::UnsupportedKind { api_version, kind }),
        }
    }
}

/// `apiVersion`, `kind` and `metadata.resourceVersion` of an object in JSON text, read without
/// materialising the rest (see [`Object::peek_json_str`]). Each is `Some` only when present
/// as a string, as `Value::as_str` would see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectHead {
    /// `apiVersion`.
    pub api_version: Option<String>,
    /// `kind`.
    pub kind: Option<String>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
}

/// A field's raw JSON text; `null` stays `Some("null")` (unlike `Option<&RawValue>`).
#[derive(Default)]
pub(crate) struct Present<'a>(pub(crate) Option<&'a serde_json::value::RawValue>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Present<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a serde_json::value::RawValue as serde::Deserialize>::deserialize(d)
            .map(|r| Present(Some(r)))
    }
}

/// The string a raw JSON value holds, if it is a string.
fn raw_str(raw: Option<&serde_json::value::RawValue>) -> Result<Option<String>, serde_json::Error> {
    match raw {
        Some(r) if r.get().starts_with('"') => serde_json::from_str(r.get()).map(Some),
        _ => Ok(None),
    }
}

/// Whether JSON text is an object (leading whitespace allowed).
fn is_json_object(s: &str) -> bool {
    s.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
}

/// `apiVersion` and `kind` when both are strings among an object's leading keys: reading
/// stops as soon as both were seen, so the rest of the text is neither read nor checked.
/// `None` when one is missing, not a string, or the text is no object.
fn leading_api_version_and_kind(s: &str) -> Option<(String, String)> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};

    enum Key {
        ApiVersion,
        Kind,
        Other,
    }
    impl<'de> serde::Deserialize<'de> for Key {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct KeyVisitor;
            impl Visitor<'_> for KeyVisitor {
                type Value = Key;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a key")
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
                    Ok(match v {
                        "apiVersion" => Key::ApiVersion,
                        "kind" => Key::Kind,
                        _ => Key::Other,
                    })
                }
            }
            d.deserialize_identifier(KeyVisitor)
        }
    }
    struct Head<'o>(&'o mut (Option<String>, Option<String>));
    impl<'de> Visitor<'de> for Head<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<Key>()? {
                match key {
                    Key::ApiVersion => self.0.0 = Some(map.next_value()?),
                    Key::Kind => self.0.1 = Some(map.next_value()?),
                    Key::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                if self.0.0.is_some() && self.0.1.is_some() {
                    // Stop here: the deserializer then reports the unread rest, ignored below.
                    return Ok(());
                }
            }
            Ok(())
        }
    }
    let mut out = (None, None);
    let mut de = serde_json::Deserializer::from_str(s);
    // Only what was read counts; errors (including the one for stopping early) do not.
    let _ = de.deserialize_map(Head(&mut out));
    out.0.zip(out.1)
}

#[derive(serde::Deserialize)]
struct PeekObject<'a> {
    #[serde(rename = "apiVersion", borrow, default)]
    api_version: Present<'a>,
    #[serde(borrow, default)]
    kind: Present<'a>,
    #[serde(borrow, default)]
    metadata: Present<'a>,
}

#[derive(serde::Deserialize)]
struct PeekMetadata<'a> {
    #[serde(rename = "resourceVersion", borrow, default)]
    resource_version: Present<'a>,
}

impl Object {
    /// Reads `apiVersion`, `kind` and `metadata.resourceVersion` from one JSON value without
    /// building it. A value that is not an object has none of them. Errors only where the
    /// text is not valid JSON, or has a duplicate key among the three (callers then fall back
    /// to [`serde_json::Value`], which keeps the last).
    pub fn peek_json_str(s: &str) -> Result<ObjectHead, serde_json::Error> {
        if !is_json_object(s) {
            // Still reject invalid JSON, like parsing into a Value would.
            serde_json::from_str::<serde::de::IgnoredAny>(s)?;
            return Ok(ObjectHead::default());
        }
        let p: PeekObject<'_> = serde_json::from_str(s)?;
        let resource_version = match p.metadata.0 {
            Some(m) if is_json_object(m.get()) => {
                let m: PeekMetadata<'_> = serde_json::from_str(m.get())?;
                raw_str(m.resource_version.0)?
            }
            _ => None,
        };
        Ok(ObjectHead {
            api_version: raw_str(p.api_version.0)?,
            kind: raw_str(p.kind.0)?,
            resource_version,
        })
    }

    /// Decodes and reduces one object given as JSON text: the same result as
    /// `Object::from_json(serde_json::from_str(s)?)`, without the intermediate `Value` —
    /// the typed object is decoded straight from the text. On any decoding error the text is
    /// decoded again through `Value`, so errors read exactly as [`Object::from_json`]'s.
    /// Text that is not JSON at all is `Malformed { kind: "object" }`.
    pub fn from_json_str(s: &str) -> Result<Object, ObserveError> {
        Object::from_json_str_with_resource_version(s).0
    }

    /// [`Object::from_json_str`] for text whose head [`Object::peek_json_str`] already read.
    pub fn from_json_str_with_head(s: &str, head: &ObjectHead) -> Result<Object, ObserveError> {
        let (Some(api_version), Some(kind)) = (&head.api_version, &head.kind) else {
            return Object::from_json_via_value(s);
        };
        let fast = match (api_version.as_str(), kind.as_str()) {
            ("v1", "Pod") => serde_json::from_str::<core::Pod>(s)
                .ok()
                .and_then(|pod| PodFacts::from_pod(&pod).ok())
                .map(|f| Object::Pod(Box::new(f))),
            ("v1", "Event") => serde_json::from_str::<core::Event>(s)
                .ok()
                .and_then(|ev| EventFacts::from_core(&ev).ok())
                .map(|f| Object::Event(Box::new(f))),
            ("events.k8s.io/v1", "Event") => serde_json::from_str::<events::Event>(s)
                .ok()
                .and_then(|ev| EventFacts::from_events_v1(&ev).ok())
                .map(|f| Object::Event(Box::new(f))),
            ("v1", "Node") => serde_json::from_str::<core::Node>(s)
                .ok()
                .and_then(|node| NodeFacts::from_node(&node).ok())
                .map(|f| Object::Node(Box::new(f))),
            _ => {
                return Err(ObserveError::UnsupportedKind {
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                });
            }
        };
        match fast {
            Some(object) => Ok(object),
            None => Object::from_json_via_value(s),
        }
    }

    /// [`Object::from_json_str`], together with the object's non-empty
    /// `metadata.resourceVersion` when it is a string — also for objects that are unsupported
    /// or do not decode — which is what the replay reader merges files by.
    ///
    /// Pods and Events (nearly all of a recording) are decoded in one pass: `apiVersion` and
    /// `kind` are looked for only among the first keys (they usually lead), and the version
    /// comes from the decoded object. Anything else reads the head in full first.
    pub fn from_json_str_with_resource_version(
        s: &str,
    ) -> (Result<Object, ObserveError>, Option<String>) {
        if let Some((api_version, kind)) = leading_api_version_and_kind(s) {
            // A later duplicate `apiVersion`/`kind` that disagrees fails the typed decoding
            // (k8s-openapi checks every occurrence), which then takes the full path below.
            let fast = match (api_version.as_str(), kind.as_str()) {
                ("v1", "Pod") => serde_json::from_str::<core::Pod>(s)
                    .ok()
                    .and_then(|pod| PodFacts::from_pod(&pod).ok())
                    .map(|f| (f.resource_version.clone(), Object::Pod(Box::new(f)))),
                ("v1", "Event") => serde_json::from_str::<core::Event>(s)
                    .ok()
                    .and_then(|ev| EventFacts::from_core(&ev).ok())
                    .map(|f| (f.resource_version.clone(), Object::Event(Box::new(f)))),
                ("events.k8s.io/v1", "Event") => serde_json::from_str::<events::Event>(s)
                    .ok()
                    .and_then(|ev| EventFacts::from_events_v1(&ev).ok())
                    .map(|f| (f.resource_version.clone(), Object::Event(Box::new(f)))),
                _ => None,
            };
            if let Some((rv, object)) = fast {
                return (Ok(object), rv);
            }
        }
        let Ok(head) = Object::peek_json_str(s) else {
            return (Object::from_json_via_value(s), None);
        };
        let rv = head.resource_version.clone().filter(|v| !v.is_empty());
        (Object::from_json_str_with_head(s, &head), rv)
    }

    /// The reference path: through `Value`, for errors.
    fn from_json_via_value(s: &str) -> Result<Object, ObserveError> {
        let value: serde_json::Value =
            serde_json::from_str(s).map_err(|source| ObserveError::Malformed {
                kind: "object",
                source,
            })?;
        Object::from_json(value)
    }
}

fn non_empty(s: Option<&String>) -> Option<String> {
    s.filter(|s| !s.is_empty()).cloned()
}

fn container_state(state: Option<&core::ContainerState>) -> ContainerState {
    let Some(state) = state else {
        return ContainerState::Unknown;
    };
    if let Some(t) = &state.terminated {
        return ContainerState::Terminated(terminated(t));
    }
    if let Some(r) = &state.running {
        return ContainerState::Running {
            started_at: r.started_at.as_ref().map(|t| t.0),
        };
    }
    if let Some(w) = &state.waiting {
        return ContainerState::Waiting {
            reason: non_empty(w.reason.as_ref()),
            message: non_empty(w.message.as_ref()),
        };
    }
    ContainerState::Unknown
}

fn terminated(t: &core::ContainerStateTerminated) -> Terminated {
    Terminated {
        exit_code: t.exit_code,
        reason: non_empty(t.reason.as_ref()),
        started_at: t.started_at.as_ref().map(|t| t.0),
        finished_at: t.finished_at.as_ref().map(|t| t.0),
    }
}

fn join_containers(
    specs: &[core::Container],
    statuses: Option<&Vec<core::ContainerStatus>>,
    init: bool,
) -> Vec<ContainerFacts> {
    specs
        .iter()
        .map(|c| {
            let status = statuses.and_then(|s| s.iter().find(|s| s.name == c.name));
            let mut facts = ContainerFacts {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                sidecar: init && c.restart_policy.as_deref() == Some("Always"),
                ..ContainerFacts::default()
            };
            if let Some(s) = status {
                facts.image_id = Some(s.image_id.clone()).filter(|s| !s.is_empty());
                facts.restart_count = s.restart_count;
                facts.ready = s.ready;
                facts.state = container_state(s.state.as_ref());
                facts.last_terminated = s
                    .last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .map(terminated);
            }
            facts
        })
        .collect()
}

impl PodFacts {
    /// Reduces a Pod. Only the uid is required; everything else degrades to "unknown".
    /// Env, command, args, volumes and annotations other than the two trace-context ones are
    /// deliberately not copied.
    pub fn from_pod(pod: &core::Pod) -> Result<PodFacts, ObserveError> {
        let meta = &pod.metadata;
        let uid = non_empty(meta.uid.as_ref()).ok_or(ObserveError::MissingField {
            kind: "Pod",
            field: "metadata.uid",
        })?;
        let annotation = |key: &str| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let owner = meta.owner_references.as_ref().and_then(|refs| {
            refs.iter()
                .find(|r| r.controller == Some(true))
                .or_else(|| refs.first())
                .map(|r| (r.kind.clone(), r.name.clone()))
        });
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let conditions = status
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| PodCondition {
                        kind: c.type_.clone(),
                        status: c.status == "True",
                        last_transition: c.last_transition_time.as_ref().map(|t| t.0),
                        reason: non_empty(c.reason.as_ref()),
                        message: non_empty(c.message.as_ref()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let init_containers = spec
            .and_then(|s| s.init_containers.as_ref())
            .map(|cs| {
                join_containers(
                    cs,
                    status.and_then(|s| s.init_container_statuses.as_ref()),
                    true,
                )
            })
            .unwrap_or_default();
        let containers = spec
            .map(|s| {
                join_containers(
                    &s.containers,
                    status.and_then(|s| s.container_statuses.as_ref()),
                    false,
                )
            })
            .unwrap_or_default();
        Ok(PodFacts {
            uid,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            resource_version: non_empty(meta.resource_version.as_ref()),
            labels: meta.labels.clone().unwrap_or_default(),
            traceparent: annotation(TRACEPARENT_ANNOTATION),
            legacy_trace_context: annotation(LEGACY_TRACE_CONTEXT_ANNOTATION),
            owner,
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
            deleted: meta.deletion_timestamp.as_ref().map(|t| t.0),
            deletion_grace_seconds: meta.deletion_grace_period_seconds,
            node_name: spec.and_then(|s| non_empty(s.node_name.as_ref())),
            scheduler_name: spec.and_then(|s| non_empty(s.scheduler_name.as_ref())),
            phase: status.and_then(|s| non_empty(s.phase.as_ref())),
            conditions,
            init_containers,
            containers,
        })
    }

    /// The condition of the given type, if reported.
    pub fn condition(&self, kind: &str) -> Option<&PodCondition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }
}

impl EventFacts {
    /// Reduces a core/v1 Event (what the kubelet writes; the scheduler's events.k8s.io/v1
    /// events read back through core/v1 look like this too, with `eventTime` set and empty
    /// `source`).
    pub fn from_core(ev: &core::Event) -> Result<EventFacts, ObserveError> {
        let meta = &ev.metadata;
        let uid = non_empty(meta.uid.as_ref()).ok_or(ObserveError::MissingField {
            kind: "Event",
            field: "metadata.uid",
        })?;
        let obj = &ev.involved_object;
        let source = ev.source.as_ref();
        let series = ev.series.as_ref();
        let count = series
            .and_then(|s| s.count)
            .or(ev.count)
            .unwrap_or(1)
            .max(1);
        Ok(EventFacts {
            uid,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            resource_version: non_empty(meta.resource_version.as_ref()),
            object_kind: obj.kind.clone().unwrap_or_default(),
            object_uid: non_empty(obj.uid.as_ref()),
            object_name: obj.name.clone().unwrap_or_default(),
            object_namespace: non_empty(obj.namespace.as_ref()),
            field_path: non_empty(obj.field_path.as_ref()),
            reason: ev.reason.clone().unwrap_or_default(),
            message: ev.message.clone().unwrap_or_default(),
            warning: ev.type_.as_deref() == Some("Warning"),
            component: source
                .and_then(|s| non_empty(s.component.as_ref()))
                .or_else(|| non_empty(ev.reporting_component.as_ref())),
            host: source
                .and_then(|s| non_empty(s.host.as_ref()))
                .or_else(|| non_empty(ev.reporting_instance.as_ref())),
            event_time: ev.event_time.as_ref().map(|t| t.0),
            first_timestamp: ev.first_timestamp.as_ref().map(|t| t.0),
            last_timestamp: ev.last_timestamp.as_ref().map(|t| t.0),
            count,
            series_last_observed: series
                .and_then(|s| s.last_observed_time.as_ref())
                .map(|t| t.0),
        })
    }

    /// Reduces an events.k8s.io/v1 Event (what the scheduler writes).
    pub fn from_events_v1(ev: &events::Event) -> Result<EventFacts, ObserveError> {
        let meta = &ev.metadata;
        let uid = non_empty(meta.uid.as_ref()).ok_or(ObserveError::MissingField {
            kind: "Event",
            field: "metadata.uid",
        })?;
        let obj = ev.regarding.as_ref();
        let source = ev.deprecated_source.as_ref();
        let series = ev.series.as_ref();
        let count = series
            .map(|s| s.count)
            .or(ev.deprecated_count)
            .unwrap_or(1)
            .max(1);
        Ok(EventFacts {
            uid,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            resource_version: non_empty(meta.resource_version.as_ref()),
            object_kind: obj.and_then(|o| o.kind.clone()).unwrap_or_default(),
            object_uid: obj.and_then(|o| non_empty(o.uid.as_ref())),
            object_name: obj.and_then(|o| o.name.clone()).unwrap_or_default(),
            object_namespace: obj.and_then(|o| non_empty(o.namespace.as_ref())),
            field_path: obj.and_then(|o| non_empty(o.field_path.as_ref())),
            reason: ev.reason.clone().unwrap_or_default(),
            message: ev.note.clone().unwrap_or_default(),
            warning: ev.type_.as_deref() == Some("Warning"),
            component: non_empty(ev.reporting_controller.as_ref())
                .or_else(|| source.and_then(|s| non_empty(s.component.as_ref()))),
            host: source
                .and_then(|s| non_empty(s.host.as_ref()))
                .or_else(|| non_empty(ev.reporting_instance.as_ref())),
            event_time: ev.event_time.as_ref().map(|t| t.0),
            first_timestamp: ev.deprecated_first_timestamp.as_ref().map(|t| t.0),
            last_timestamp: ev.deprecated_last_timestamp.as_ref().map(|t| t.0),
            count,
            series_last_observed: series.map(|s| s.last_observed_time.0),
        })
    }

    /// The container the event is about, from `fieldPath` (`spec.containers{app}`,
    /// `spec.initContainers{init}`, `spec.ephemeralContainers{dbg}`).
    pub fn container_ref(&self) -> Option<ContainerRef> {
        parse_field_path(self.field_path.as_deref()?)
    }

    /// Whether the event comes from a kubelet. Decided by reason and fieldPath/host as well as
    /// by component, because simulated kubelets (KWOK) report `kwok_controller`.
    pub fn is_kubelet(&self) -> bool {
        if self.component.as_deref() == Some("kubelet") {
            return true;
        }
        if self.is_scheduler() {
            return false;
        }
        let kubelet_reason = matches!(
            self.reason.as_str(),
            "Pulling"
                | "Pulled"
                | "Created"
                | "Started"
                | "Killing"
                | "BackOff"
                | "Failed"
                | "ErrImagePull"
                | "ImagePullBackOff"
                | "CrashLoopBackOff"
                | "Unhealthy"
                | "FailedMount"
                | "FailedAttachVolume"
                | "FailedCreatePodSandBox"
                | "FailedKillPod"
                | "SandboxChanged"
                | "FailedPostStartHook"
                | "FailedPreStopHook"
                | "InspectFailed"
                | "ErrImageNeverPull"
                | "NetworkNotReady"
                | "FailedSync"
                | "Preempting"
                | "ProbeWarning"
        );
        kubelet_reason && (self.field_path.is_some() || self.host.is_some())
    }

    /// Whether the event comes from a scheduler (`Scheduled`, `FailedScheduling`, …).
    pub fn is_scheduler(&self) -> bool {
        self.component
            .as_deref()
            .is_some_and(|c| c.contains("scheduler"))
            || matches!(self.reason.as_str(), "Scheduled" | "FailedScheduling")
    }
}

/// Which container a kubelet event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRef {
    /// `spec.initContainers{…}` rather than `spec.containers{…}`.
    pub init: bool,
    /// `spec.ephemeralContainers{…}` (not part of startup).
    pub ephemeral: bool,
    /// Container name.
    pub name: String,
}

/// Parses `spec.containers{name}` style field paths; None for anything else.
pub fn parse_field_path(path: &str) -> Option<ContainerRef> {
    let (head, rest) = path.split_once('{')?;
    let name = rest.strip_suffix('}')?;
    if name.is_empty() || name.contains(['{', '}']) {
        return None;
    }
    let (init, ephemeral) = match head {
        "spec.containers" => (false, false),
        "spec.initContainers" => (true, false),
        "spec.ephemeralContainers" => (false, true),
        _ => return None,
    };
    Some(ContainerRef {
        init,
        ephemeral,
        name: name.to_string(),
    })
}

impl NodeFacts {
    /// Reduces a Node to the attributes kubelet spans carry.
    pub fn from_node(node: &core::Node) -> Result<NodeFacts, ObserveError> {
        let name = non_empty(node.metadata.name.as_ref()).ok_or(ObserveError::MissingField {
            kind: "Node",
            field: "metadata.name",
        })?;
        let label = |k: &str| {
            node.metadata
                .labels
                .as_ref()
                .and_then(|l| non_empty(l.get(k)))
        };
        let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
        Ok(NodeFacts {
            name,
            zone: label("topology.kubernetes.io/zone")
                .or_else(|| label("failure-domain.beta.kubernetes.io/zone")),
            region: label("topology.kubernetes.io/region")
                .or_else(|| label("failure-domain.beta.kubernetes.io/region")),
            instance_type: label("node.kubernetes.io/instance-type")
                .or_else(|| label("beta.kubernetes.io/instance-type")),
            kubelet_version: info.and_then(|i| non_empty(Some(&i.kubelet_version))),
            container_runtime_version: info
                .and_then(|i| non_empty(Some(&i.container_runtime_version))),
            os_image: info.and_then(|i| non_empty(Some(&i.os_image))),
            architecture: info.and_then(|i| non_empty(Some(&i.architecture))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-1", "namespace": "demo", "uid": "u-1", "resourceVersion": "42",
                "creationTimestamp": "2026-11-21T10:00:00Z",
                "annotations": {
                    "tracing.k8s.io/traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    "secret.example.com/token": "hunter2"
                },
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8", "uid": "o", "controller": true}
                ]
            },
            "spec": {
                "nodeName": "node-1",
                "initContainers": [
                    {"name": "init", "image": "busybox:1.36", "command": ["sh", "-c", "echo hunter2"]},
                    {"name": "proxy", "image": "envoy:v1", "restartPolicy": "Always"}
                ],
                "containers": [
                    {"name": "app", "image": "nginx:1.27", "env": [{"name": "PASSWORD", "value": "hunter2"}], "args": ["--token=hunter2"]}
                ]
            },
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-21T10:00:01Z"}],
                "initContainerStatuses": [
                    {"name": "init", "image": "busybox:1.36", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2026-11-21T10:00:02Z", "finishedAt": "2026-11-21T10:00:03Z"}}}
                ],
                "containerStatuses": [
                    {"name": "app", "image": "nginx:1.27", "imageID": "", "ready": false, "restartCount": 2,
                     "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                     "lastState": {"terminated": {"exitCode": 1, "startedAt": "2026-11-21T10:00:04Z", "finishedAt": "2026-11-21T10:00:05Z"}}}
                ]
            }
        })
    }

    #[test]
    fn pod_conversion_joins_spec_and_status_without_secrets() {
        let Object::Pod(p) = Object::from_json(pod_json()).unwrap() else {
            panic!("not a pod")
        };
        assert_eq!(p.uid, "u-1");
        assert_eq!(p.owner, Some(("ReplicaSet".into(), "web-7d9f8".into())));
        assert!(p.traceparent.is_some());
        assert_eq!(p.node_name.as_deref(), Some("node-1"));
        assert_eq!(p.init_containers.len(), 2);
        assert!(!p.init_containers[0].sidecar);
        assert!(p.init_containers[1].sidecar);
        assert!(
            matches!(p.init_containers[0].state, ContainerState::Terminated(ref t) if t.exit_code == 0)
        );
        assert_eq!(p.init_containers[1].state, ContainerState::Unknown);
        assert_eq!(p.containers[0].restart_count, 2);
        assert_eq!(
            p.containers[0]
                .last_terminated
                .as_ref()
                .map(|t| t.exit_code),
            Some(1)
        );
        assert!(p.condition("PodScheduled").is_some_and(|c| c.status));
        assert!(
            !format!("{p:?}").contains("hunter2"),
            "env/command/args/annotations leaked"
        );
    }

    #[test]
    fn pod_without_uid_is_a_typed_error() {
        let mut v = pod_json();
        v["metadata"].as_object_mut().unwrap().remove("uid");
        let err = Object::from_json(v).unwrap_err();
        assert!(matches!(
            err,
            ObserveError::MissingField {
                kind: "Pod",
                field: "metadata.uid"
            }
        ));
        assert!(err.to_string().contains("metadata.uid"));
    }

    #[test]
    fn malformed_and_unsupported() {
        let mut v = pod_json();
        v["spec"]["containers"] = json!("nope");
        assert!(matches!(
            Object::from_json(v),
            Err(ObserveError::Malformed { kind: "Pod", .. })
        ));
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
        assert!(matches!(
            Object::from_json(cm),
            Err(ObserveError::UnsupportedKind { .. })
        ));
        assert!(matches!(
            Object::from_json(json!({"kind": "Pod"})),
            Err(ObserveError::MissingField {
                field: "apiVersion",
                ..
            })
        ));
        assert!(Object::from_json(json!(null)).is_err());
        assert!(Object::from_json(json!([1, 2])).is_err());
    }

    #[test]
    fn watch_types() {
        assert_eq!(Action::from_watch_type("ADDED").unwrap(), Action::Added);
        assert_eq!(
            Action::from_watch_type("MODIFIED").unwrap(),
            Action::Modified
        );
        assert_eq!(Action::from_watch_type("DELETED").unwrap(), Action::Deleted);
        assert!(matches!(
            Action::from_watch_type("BOOKMARK"),
            Err(ObserveError::Bookmark)
        ));
        assert!(matches!(
            Action::from_watch_type("ERROR"),
            Err(ObserveError::WatchError(_))
        ));
        assert!(matches!(
            Action::from_watch_type("added"),
            Err(ObserveError::UnknownWatchType(_))
        ));
    }

    #[test]
    fn scheduler_event_read_through_core_v1() {
        let v = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web-1.1", "namespace": "demo", "uid": "e-1", "resourceVersion": "7"},
            "involvedObject": {"kind": "Pod", "namespace": "demo", "name": "web-1", "uid": "u-1"},
            "reason": "Scheduled", "message": "Successfully assigned demo/web-1 to node-1",
            "source": {}, "firstTimestamp": null, "lastTimestamp": null, "type": "Normal",
            "eventTime": "2026-11-21T10:00:00.812345Z",
            "reportingComponent": "default-scheduler", "reportingInstance": "default-scheduler-cp"
        });
        let Object::Event(e) = Object::from_json(v).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(e.component.as_deref(), Some("default-scheduler"));
        assert_eq!(e.event_time.map(|t| t.subsec_microsecond()), Some(812_345));
        assert_eq!(e.count, 1);
        assert!(e.is_scheduler());
        assert!(!e.is_kubelet());
    }

    #[test]
    fn kubelet_and_kwok_events() {
        let mk = |component: &str| {
            json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "web-1.2", "namespace": "demo", "uid": "e-2"},
                "involvedObject": {"kind": "Pod", "name": "web-1", "uid": "u-1", "fieldPath": "spec.initContainers{init}"},
                "reason": "Pulled", "message": "x", "type": "Warning",
                "source": {"component": component, "host": "node-1"},
                "firstTimestamp": "2026-11-21T10:00:02Z", "lastTimestamp": "2026-11-21T10:00:09Z", "count": 3
            })
        };
        for c in ["kubelet", "kwok_controller"] {
            let Object::Event(e) = Object::from_json(mk(c)).unwrap() else {
                panic!("not an event")
            };
            assert!(e.is_kubelet(), "{c}");
            assert!(e.warning);
            assert_eq!(e.count, 3);
            assert_eq!(e.host.as_deref(), Some("node-1"));
            assert_eq!(
                e.container_ref(),
                Some(ContainerRef {
                    init: true,
                    ephemeral: false,
                    name: "init".into()
                })
            );
        }
    }

    #[test]
    fn events_v1_conversion() {
        let v = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web-1.3", "namespace": "demo", "uid": "e-3"},
            "regarding": {"kind": "Pod", "namespace": "demo", "name": "web-1", "uid": "u-1"},
            "reason": "FailedScheduling", "note": "0/3 nodes are available", "type": "Warning",
            "eventTime": "2026-11-21T10:00:00.100000Z",
            "series": {"count": 4, "lastObservedTime": "2026-11-21T10:00:30.500000Z"},
            "reportingController": "default-scheduler", "reportingInstance": "default-scheduler-cp", "action": "Scheduling"
        });
        let Object::Event(e) = Object::from_json(v).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(e.count, 4);
        assert_eq!(e.message, "0/3 nodes are available");
        assert!(e.series_last_observed.is_some());
        assert_eq!(e.object_uid.as_deref(), Some("u-1"));
        assert!(e.is_scheduler());
    }

    #[test]
    fn field_paths() {
        assert_eq!(
            parse_field_path("spec.containers{app}").map(|c| (c.init, c.name)),
            Some((false, "app".into()))
        );
        assert_eq!(
            parse_field_path("spec.initContainers{i}").map(|c| c.init),
            Some(true)
        );
        assert!(parse_field_path("spec.ephemeralContainers{dbg}").is_some_and(|c| c.ephemeral));
        for bad in [
            "",
            "spec.containers",
            "spec.containers{}",
            "spec.containers{a",
            "spec.volumes{x}",
            "spec.containers{a}{b}",
        ] {
            assert_eq!(parse_field_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn node_conversion() {
        let v = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "labels": {"topology.kubernetes.io/zone": "z1", "node.kubernetes.io/instance-type": "m6i.large"}},
            "status": {"nodeInfo": {"architecture": "amd64", "bootID": "", "containerRuntimeVersion": "containerd://2.1.4",
                "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "v1.36.3", "machineID": "", "operatingSystem": "linux",
                "osImage": "Ubuntu", "systemUUID": ""}}
        });
        let Object::Node(n) = Object::from_json(v).unwrap() else {
            panic!("not a node")
        };
        assert_eq!(n.zone.as_deref(), Some("z1"));
        assert_eq!(n.region, None);
        assert_eq!(n.instance_type.as_deref(), Some("m6i.large"));
        assert_eq!(n.kubelet_version.as_deref(), Some("v1.36.3"));
        assert!(matches!(
            Object::from_json(json!({"apiVersion": "v1", "kind": "Node", "metadata": {}})),
            Err(ObserveError::MissingField { kind: "Node", .. })
        ));
    }
}
