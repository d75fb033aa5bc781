//! Per-pod state while a startup is in flight, merged so that the order of observations does
//! not matter: every fact is kept as the earliest (or latest-by-resourceVersion) value seen.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::observe::{Action, ContainerState, EventFacts, PodFacts};
use crate::trace::Outcome;

/// Where a boundary time came from; becomes `podtrace.timing.*_source`.
pub type Source = &'static str;

/// A time with its provenance.
pub type Stamp = (Timestamp, Source);

/// How finely a source states its instant: 2 = µs, 1 = ms, 0 = truncated to the second
/// (kubelet event timestamps, condition transitions, container `startedAt`/`finishedAt`,
/// `creationTimestamp`, …). Used to decide whether one boundary may bound another.
pub fn precision(src: Source) -> u8 {
    match src {
        "event.eventTime" | "event.series.lastObservedTime" => 2,
        "pulled.message" | "observedAt" => 1,
        _ => 0,
    }
}

/// Raises `t` to the causal lower bound `floor` when it lies before it (a 1 s-truncated
/// timestamp only says the instant is at or after it). The source is kept: it names the
/// timestamp that was raised. Returns whether it moved.
pub fn raise(t: Stamp, floor: Option<Timestamp>) -> (Stamp, bool) {
    match floor {
        Some(f) if t.0 < f => ((f, t.1), true),
        _ => (t, false),
    }
}

/// The later of two optional instants.
pub fn max_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Earliest-wins merge for optional stamps.
pub fn min_stamp(a: Option<Stamp>, b: Option<Stamp>) -> Option<Stamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.0 < x.0 { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// What the statuses said about one container over time.
#[derive(Clone, Debug, Default)]
pub struct ContainerTrack {
    /// Earliest `startedAt` of any run (running, terminated or lastState).
    pub first_started: Option<Timestamp>,
    /// Earliest `finishedAt` of a successful run (exit 0): when an init container completed.
    pub completed: Option<Timestamp>,
    /// A back-off/fatal waiting reason and when it was first observed (None: no observation time).
    pub failure: Option<(String, Option<String>, Option<Timestamp>)>,
}

/// The best available time for when an event (first) happened.
pub fn event_start(e: &EventFacts) -> Option<Stamp> {
    e.event_time
        .map(|t| (t, "event.eventTime"))
        .or(e.first_timestamp.map(|t| (t, "event.firstTimestamp")))
        .or(e.last_timestamp.map(|t| (t, "event.lastTimestamp")))
        .or(e
            .series_last_observed
            .map(|t| (t, "event.series.lastObservedTime")))
}

/// The best available time for when an event last happened.
pub fn event_last(e: &EventFacts) -> Option<Stamp> {
    e.series_last_observed
        .map(|t| (t, "event.series.lastObservedTime"))
        .or(e.last_timestamp.map(|t| (t, "event.lastTimestamp")))
        .or_else(|| event_start(e))
}

/// Whether `new` (same Event uid) carries more than `old`: a higher count, or the same count
/// with a later last occurrence. Anything else is a re-delivery.
pub fn event_supersedes(new: &EventFacts, old: &EventFacts) -> bool {
    new.count > old.count
        || (new.count == old.count && event_last(new).map(|s| s.0) > event_last(old).map(|s| s.0))
}

/// A known startup failure: which container, why, and when it became known.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// Short reason (ImagePullBackOff, CrashLoopBackOff, …).
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// Affected container, if container-scoped.
    pub container: Option<String>,
    /// When the failure became known.
    pub at: Stamp,
    /// Whether it is an image pull failure (attributed to `container.image_pull`).
    pub image: bool,
}

/// Classifies a container waiting reason as a known failure (see docs/trace-model.md).
pub fn failure_reason_is_final(reason: &str) -> bool {
    matches!(
        reason,
        "ImagePullBackOff" | "CrashLoopBackOff" | "InvalidImageName" | "ErrImageNeverPull"
    )
}

/// Whether a waiting reason concerns the image.
pub fn reason_is_image(reason: &str) -> bool {
    matches!(
        reason,
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull"
    )
}

/// Failure evidence carried by a kubelet event, if any.
pub fn event_failure(e: &EventFacts) -> Option<(&'static str, bool)> {
    let msg = e.message.as_str();
    match e.reason.as_str() {
        "BackOff" if msg.starts_with("Back-off pulling image") => Some(("ImagePullBackOff", true)),
        "BackOff" if msg.starts_with("Back-off restarting failed container") => {
            Some(("CrashLoopBackOff", false))
        }
        "Failed" if msg == "Error: ImagePullBackOff" => Some(("ImagePullBackOff", true)),
        "Failed" if msg == "Error: InvalidImageName" => Some(("InvalidImageName", true)),
        "Failed" if msg == "Error: ErrImageNeverPull" => Some(("ErrImageNeverPull", true)),
        "ErrImageNeverPull" => Some(("ErrImageNeverPull", true)),
        "InspectFailed" => Some(("InvalidImageName", true)),
        _ => None,
    }
}

/// `status.phase = Failed`, attributed to a container when one exited non-zero.
#[derive(Clone, Debug)]
pub struct PhaseFailure {
    /// The container's termination reason (`Error`, `OOMKilled`, …), else `PodFailed`.
    pub reason: String,
    /// Which container exited with which code, when known.
    pub message: String,
    /// The container that failed.
    pub container: Option<String>,
    /// Observation time, else the container's `finishedAt`.
    pub at: Option<Stamp>,
}

/// Everything known about one pod's startup.
#[derive(Clone, Debug)]
pub struct PodState {
    /// The newest pod object (by resourceVersion).
    pub pod: PodFacts,
    latest_rv: Option<u64>,
    /// Some observation showed the pod not yet bound to a node.
    pub saw_unscheduled: bool,
    /// Earliest `lastTransitionTime` at which each condition was seen True.
    pub conditions_true: BTreeMap<String, Timestamp>,
    /// Per container name.
    pub containers: BTreeMap<String, ContainerTrack>,
    /// Events about this pod, deduplicated by Event uid.
    pub events: BTreeMap<String, EventFacts>,
    /// When the pod was seen deleted or terminating.
    pub deleted: Option<Stamp>,
    /// `status.phase == Failed`: reason and when observed.
    pub phase_failed: Option<PhaseFailure>,
    /// ClusterLoader2's watch point: earliest observation time with phase Running, and the
    /// latest container `startedAt` in that object.
    pub cl2_watch: Option<(Timestamp, Option<Timestamp>)>,
    /// Latest timestamp anywhere in this pod's data (end of an incomplete trace).
    pub last_activity: Option<Timestamp>,
    /// Engine time at first sight (start when the pod has no creationTimestamp).
    pub first_seen: Timestamp,
    /// Engine time when the end first became known.
    pub end_learned: Option<Timestamp>,
    /// Current deadline in the engine's index.
    pub due: Timestamp,
}

fn bump(t: &mut Option<Timestamp>, v: Option<Timestamp>) {
    if let Some(v) = v
        && t.is_none_or(|c| v > c)
    {
        *t = Some(v);
    }
}

fn min_opt(t: &mut Option<Timestamp>, v: Option<Timestamp>) {
    if let Some(v) = v
        && t.is_none_or(|c| v < c)
    {
        *t = Some(v);
    }
}

impl PodState {
    /// Fresh state for a pod first seen at engine time `now`.
    pub fn new(pod: PodFacts, now: Timestamp) -> PodState {
        PodState {
            pod,
            latest_rv: None,
            saw_unscheduled: false,
            conditions_true: BTreeMap::new(),
            containers: BTreeMap::new(),
            events: BTreeMap::new(),
            deleted: None,
            phase_failed: None,
            cl2_watch: None,
            last_activity: None,
            first_seen: now,
            end_learned: None,
            due: now,
        }
    }

    /// Merges one pod observation.
    pub fn merge_pod(
        &mut self,
        action: Action,
        pod: PodFacts,
        observed_at: Option<Timestamp>,
        now: Timestamp,
    ) {
        if pod.node_name.is_none() && action != Action::Deleted {
            self.saw_unscheduled = true;
        }
        for c in &pod.conditions {
            if c.status
                && let Some(t) = c.last_transition
            {
                let e = self.conditions_true.entry(c.kind.clone()).or_insert(t);
                if t < *e {
                    *e = t;
                }
            }
            bump(&mut self.last_activity, c.last_transition);
        }
        for c in pod.init_containers.iter().chain(pod.containers.iter()) {
            let track = self.containers.entry(c.name.clone()).or_default();
            let mut runs = vec![];
            match &c.state {
                ContainerState::Running { started_at } => runs.push(*started_at),
                ContainerState::Terminated(t) => {
                    runs.push(t.started_at);
                    if t.exit_code == 0 {
                        min_opt(&mut track.completed, t.finished_at);
                    }
                    bump(&mut self.last_activity, t.finished_at);
                }
                ContainerState::Waiting {
                    reason: Some(r),
                    message,
                } if failure_reason_is_final(r) => {
                    let replace = match &track.failure {
                        None => true,
                        Some((_, _, prev)) => match (prev, observed_at) {
                            (None, Some(_)) => true,
                            (Some(p), Some(o)) => o < *p,
                            _ => false,
                        },
                    };
                    if replace {
                        track.failure = Some((r.clone(), message.clone(), observed_at));
                    }
                }
                _ => {}
            }
            if let Some(t) = &c.last_terminated {
                runs.push(t.started_at);
                if t.exit_code == 0 {
                    min_opt(&mut track.completed, t.finished_at);
                }
            }
            for r in runs {
                min_opt(&mut track.first_started, r);
                bump(&mut self.last_activity, r);
            }
        }
        if action == Action::Deleted || pod.deleted.is_some() {
            let stamp = observed_at
                .map(|t| (t, "observedAt"))
                .or(pod.deleted.map(|t| {
                    // deletionTimestamp is the deadline: request time + grace period.
                    let grace = jiff::SignedDuration::from_secs(
                        pod.deletion_grace_seconds
                            .unwrap_or(0)
                            .clamp(0, 86_400 * 365),
                    );
                    (t.checked_sub(grace).unwrap_or(t), "deletionTimestamp")
                }))
                .unwrap_or((now, "engineTime"));
            self.deleted = min_stamp(self.deleted, Some(stamp));
        }
        if pod.phase.as_deref() == Some("Failed") && self.phase_failed.is_none() {
            // Attribute the failure to the first container that exited non-zero, if any
            // (e.g. an init container of a `restartPolicy: Never` pod).
            let culprit = pod
                .init_containers
                .iter()
                .chain(pod.containers.iter())
                .find_map(|c| match &c.state {
                    ContainerState::Terminated(t) if t.exit_code != 0 => {
                        Some((c.name.clone(), t.clone()))
                    }
                    _ => None,
                });
            self.phase_failed = Some(match culprit {
                Some((name, t)) => PhaseFailure {
                    reason: t.reason.clone().unwrap_or_else(|| "Error".into()),
                    message: format!("container {name} exited with code {}", t.exit_code),
                    container: Some(name),
                    at: observed_at
                        .map(|o| (o, "observedAt"))
                        .or(t.finished_at.map(|f| (f, "status.finishedAt"))),
                },
                None => PhaseFailure {
                    reason: "PodFailed".into(),
                    message: String::new(),
                    container: None,
                    at: observed_at.map(|o| (o, "observedAt")),
                },
            });
        }
        if pod.phase.as_deref() == Some("Running")
            && let Some(o) = observed_at
        {
            let run = pod
                .containers
                .iter()
                .filter_map(|c| match c.state {
                    ContainerState::Running { started_at } => started_at,
                    _ => None,
                })
                .max();
            if self.cl2_watch.is_none_or(|(w, _)| o < w) {
                self.cl2_watch = Some((o, run));
            }
        }
        bump(&mut self.last_activity, observed_at);
        bump(&mut self.last_activity, pod.created);
        // Older objects (lower resourceVersion) still contribute facts above, but must not
        // replace the newer object's spec/status.
        let rv = pod
            .resource_version
            .as_deref()
            .and_then(|r| r.parse::<u64>().ok());
        let newer = match (self.latest_rv, rv) {
            (Some(cur), Some(new)) => new >= cur,
            _ => true,
        };
        if newer {
            // Keep first-known identity fields if a later object lacks them.
            let created = pod.created.or(self.pod.created);
            let node = pod.node_name.clone().or(self.pod.node_name.take());
            self.pod = pod;
            self.pod.created = created;
            self.pod.node_name = node;
            if rv.is_some() {
                self.latest_rv = rv;
            }
        } else if self.pod.node_name.is_none() {
            self.pod.node_name = pod.node_name;
        }
    }

    /// Merges one event. Returns false when it added nothing (a duplicate).
    pub fn merge_event(&mut self, e: EventFacts) -> bool {
        bump(&mut self.last_activity, event_last(&e).map(|s| s.0));
        match self.events.get(&e.uid) {
            Some(old) if !event_supersedes(&e, old) => false,
            _ => {
                self.events.insert(e.uid.clone(), e);
                true
            }
        }
    }

    /// The earliest known failure, from statuses and from events.
    pub fn failure(&self) -> Option<Failure> {
        let mut best: Option<Failure> = None;
        let mut consider = |f: Failure| {
            if best.as_ref().is_none_or(|b| f.at.0 < b.at.0) {
                best = Some(f);
            }
        };
        for e in self.events.values() {
            if let Some((reason, image)) = event_failure(e)
                && let Some(at) = event_start(e)
            {
                consider(Failure {
                    reason: reason.to_string(),
                    message: e.message.clone(),
                    container: e.container_ref().map(|c| c.name),
                    at,
                    image,
                });
            }
        }
        for (name, t) in &self.containers {
            if let Some((reason, message, at)) = &t.failure {
                let at = at
                    .map(|t| (t, "observedAt"))
                    .or(self.last_activity.map(|t| (t, "lastSeen")));
                if let Some(at) = at {
                    consider(Failure {
                        reason: reason.clone(),
                        message: message.clone().unwrap_or_default(),
                        container: Some(name.clone()),
                        at,
                        image: reason_is_image(reason),
                    });
                }
            }
        }
        if let Some(p) = &self.phase_failed {
            let at = p.at.or(self.last_activity.map(|t| (t, "lastSeen")));
            if let Some(at) = at {
                consider(Failure {
                    reason: p.reason.clone(),
                    message: p.message.clone(),
                    container: p.container.clone(),
                    at,
                    image: false,
                });
            }
        }
        best
    }

    /// How and when the startup ended, if it has: the earliest of Ready, a known failure and
    /// deletion (ties: Ready, then failure, then deletion).
    pub fn end(&self) -> Option<(Outcome, Stamp)> {
        let mut out: Option<(Outcome, Stamp)> = None;
        let mut consider = |o: Outcome, s: Stamp| {
            if out.as_ref().is_none_or(|(_, b)| s.0 < b.0) {
                out = Some((o, s));
            }
        };
        if let Some(t) = self.conditions_true.get("Ready") {
            consider(super::READY, (*t, "condition.Ready"));
        }
        if let Some(f) = self.failure() {
            consider(super::failed(f.reason), f.at);
        }
        if let Some(d) = self.deleted {
            consider(super::DELETED, d);
        }
        out
    }
}
