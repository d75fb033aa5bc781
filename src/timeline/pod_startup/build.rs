//! Turns a finished pod's state into a trace: span tree, timing sources, clamping, IDs.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use super::state::{
    Failure, PodState, Source, Stamp, event_last, event_start, max_opt, min_stamp, precision, raise,
};
use crate::ids;
use crate::observe::{ContainerFacts, EventFacts, NodeFacts};
use crate::timeline::parse::{self, PulledMessage};
use crate::trace::{
    Attribute, Link, Operation, Outcome, Service, Span, SpanEvent, Status, Subject, Trace, Value,
};

/// A span under construction; `path` feeds its deterministic ID.
struct Node {
    path: String,
    parent: Option<usize>,
    name: &'static str,
    service: Service,
    start: Stamp,
    end: Stamp,
    status: Status,
    attributes: Vec<Attribute>,
    events: Vec<SpanEvent>,
    /// A boundary had to be moved to keep the span consistent (recorded as clamped).
    clamped: bool,
    /// A 1 s-truncated boundary was raised to a causal predecessor's instant (recorded as
    /// `podtrace.timing.causal`).
    causal: bool,
}

struct Builder<'a> {
    st: &'a PodState,
    nodes: Vec<Node>,
    common: Vec<Attribute>,
    kubelet: Option<(Service, Vec<Attribute>)>,
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

fn span_event(e: &EventFacts) -> Option<SpanEvent> {
    let (time, _) = event_start(e)?;
    let mut attributes: Vec<Attribute> = vec![
        ("k8s.event.reason", s(&e.reason)),
        ("k8s.event.count", Value::Int(i64::from(e.count))),
        (
            "k8s.event.type",
            s(if e.warning { "Warning" } else { "Normal" }),
        ),
    ];
    if !e.message.is_empty() {
        attributes.push(("k8s.event.message", s(&e.message)));
    }
    if e.count > 1
        && let Some((last, _)) = event_last(e)
    {
        attributes.push(("k8s.event.last_time", s(&last.to_string())));
    }
    Some(SpanEvent {
        name: e.reason.clone(),
        time,
        attributes,
    })
}

/// Whether a kubelet event is about the image (attributed to `container.image_pull`).
fn is_image_event(e: &EventFacts) -> bool {
    let m = e.message.as_str();
    matches!(
        e.reason.as_str(),
        "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull" | "InspectFailed"
    ) || (e.reason == "Failed"
        && (m.starts_with("Failed to pull image")
            || m == "Error: ErrImagePull"
            || m == "Error: ImagePullBackOff"
            || m == "Error: InvalidImageName"
            || m == "Error: ErrImageNeverPull"))
        || (e.reason == "BackOff" && m.starts_with("Back-off pulling image"))
}

fn add(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(t)
}

impl<'a> Builder<'a> {
    fn push(
        &mut self,
        parent: Option<usize>,
        seg: String,
        name: &'static str,
        service: Service,
        start: Stamp,
        end: Stamp,
    ) -> usize {
        let path = match parent.and_then(|p| self.nodes.get(p)) {
            Some(p) => format!("{}/{seg}", p.path),
            None => seg,
        };
        // 1 s timestamps can put an end before a finer start; keep the finer start and say so.
        let clamped = end.0 < start.0;
        let end = if clamped { (start.0, end.1) } else { end };
        self.nodes.push(Node {
            clamped,
            causal: false,
            path,
            parent,
            name,
            service,
            start,
            end,
            status: Status::Unset,
            attributes: Vec::new(),
            events: Vec::new(),
        });
        self.nodes.len() - 1
    }

    fn node(&mut self, i: usize) -> Option<&mut Node> {
        self.nodes.get_mut(i)
    }

    /// Pushes a container step (create, start) that runs from `cursor` to `at`, where `at` is
    /// raised to `cursor` because each step follows the previous one. Returns where the next
    /// step starts: this step's end, with the source of whatever decided it.
    fn step(
        &mut self,
        parent: usize,
        name: &'static str,
        service: Service,
        cursor: Stamp,
        at: Stamp,
        attributes: &[Attribute],
    ) -> Option<Stamp> {
        let (at, moved) = raise(at, Some(cursor.0));
        let i = self.push(Some(parent), name.into(), name, service, cursor, at);
        let n = self.node(i)?;
        n.attributes = attributes.to_vec();
        n.causal = moved;
        let source = if n.clamped || moved {
            n.start.1
        } else {
            n.end.1
        };
        Some((n.end.0, source))
    }

    fn container_events(&self, c: &ContainerFacts, init: bool) -> Vec<&'a EventFacts> {
        let mut v: Vec<&EventFacts> = self
            .st
            .events
            .values()
            .filter(|e| e.is_kubelet())
            .filter(|e| {
                e.container_ref()
                    .is_some_and(|r| !r.ephemeral && r.init == init && r.name == c.name)
            })
            .collect();
        v.sort_by(|a, b| {
            event_start(a)
                .map(|s| s.0)
                .cmp(&event_start(b).map(|s| s.0))
                .then(a.uid.cmp(&b.uid))
        });
        v
    }

    fn kubelet_service(&self) -> Service {
        self.kubelet
            .as_ref()
            .map(|(s, _)| s.clone())
            .unwrap_or(Service::Podtrace)
    }

    fn kubelet_attrs(&self) -> Vec<Attribute> {
        self.kubelet
            .as_ref()
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }

    /// Builds one container's span and its children; returns (span index, ready point, whether
    /// the ready point was raised to a causal lower bound).
    ///
    /// Causal lower bounds: `floor` is an instant the container's work certainly follows (the
    /// scheduled instant, the previous init container done); `soft_floor` is the sandbox-ready
    /// instant with its precision, applied only when more precise than the container's own
    /// first timestamp. Steps follow each other (create after the pull, start after create).
    #[allow(clippy::too_many_arguments)]
    fn container(
        &mut self,
        parent: usize,
        c: &ContainerFacts,
        init: bool,
        default_start: Stamp,
        trace_end: Stamp,
        failure: Option<&Failure>,
        failed_outcome: bool,
        floor: Option<Timestamp>,
        soft_floor: Option<(Timestamp, u8)>,
    ) -> (usize, Option<Stamp>, bool) {
        let evs = self.container_events(c, init);
        let first = |reason: &str| evs.iter().copied().find(|e| e.reason == reason);
        let pulling = first("Pulling");
        let pulled = first("Pulled");
        let created = first("Created");
        let started = first("Started");
        let track = self.st.containers.get(&c.name);
        let my_failure = failure.filter(|f| f.container.as_deref() == Some(c.name.as_str()));

        let mut start = None;
        for e in [pulling, pulled, created, started].into_iter().flatten() {
            start = min_stamp(start, event_start(e));
        }
        let start = start.unwrap_or(default_start);
        let floor = max_opt(
            floor,
            soft_floor
                .filter(|(_, p)| *p > precision(start.1))
                .map(|(t, _)| t),
        );
        let (start, mut causal) = raise(start, floor);
        let started_at = started.and_then(event_start).or_else(|| {
            track
                .and_then(|t| t.first_started)
                .map(|t| (t, "status.startedAt"))
        });
        let run_to_completion = init && !c.sidecar;
        let done = if run_to_completion {
            track
                .and_then(|t| t.completed)
                .map(|t| (t, "status.finishedAt"))
        } else {
            started_at
        };
        let (end, status) = match (my_failure, done) {
            (Some(f), _) if failed_outcome => {
                (f.at, Status::Error(format!("{}: {}", f.reason, f.message)))
            }
            (_, Some(d)) => (d, Status::Unset),
            (_, None) => (trace_end, Status::Unset),
        };
        let (end, end_raised) = raise(end, floor);
        causal |= end_raised;
        let (name, kind, seg) = if run_to_completion {
            (
                "container.init",
                "init",
                format!("container.init:{}", c.name),
            )
        } else {
            (
                "container.startup",
                if c.sidecar { "sidecar" } else { "app" },
                format!("container.startup:{}", c.name),
            )
        };
        let service = self.kubelet_service();
        let idx = self.push(Some(parent), seg, name, service.clone(), start, end);
        if let Some(n) = self.node(idx) {
            n.causal = causal;
        }
        let (image_name, tag) = parse::split_image(&c.image);
        let mut attrs = self.kubelet_attrs();
        attrs.push(("k8s.container.name", s(&c.name)));
        attrs.push(("container.image.name", s(&image_name)));
        if let Some(tag) = tag {
            attrs.push(("container.image.tags", Value::StrList(vec![tag])));
        }
        attrs.push((
            "k8s.container.restart_count",
            Value::Int(i64::from(c.restart_count)),
        ));
        attrs.push(("podtrace.container.kind", s(kind)));
        let container_attrs = attrs.clone();
        // Image pull.
        let spans_before = self.nodes.len();
        let pull_end = self.image_pull(
            idx,
            c,
            pulling,
            pulled,
            created.or(started),
            my_failure,
            failed_outcome,
            &container_attrs,
            start.0,
        );
        // Create.
        let has_pull_span = self.nodes.len() > spans_before;
        let mut cursor = pull_end.unwrap_or(start);
        if let Some(cr) = created.and_then(event_start)
            && let Some(next) = self.step(
                idx,
                "container.create",
                service.clone(),
                cursor,
                cr,
                &container_attrs,
            )
        {
            cursor = next;
        }
        if let Some(st) = started_at {
            self.step(
                idx,
                "container.start",
                service,
                cursor,
                st,
                &container_attrs,
            );
        }
        // The container is done no earlier than its steps: raise its end to the last child's
        // end rather than cutting the (causally placed) children off.
        let child_end = self
            .nodes
            .iter()
            .filter(|n| n.parent == Some(idx))
            .map(|n| n.end.0)
            .max();
        let done_raised = done.map(|d| raise(d, max_opt(Some(start.0), child_end)));
        let done = done_raised.map(|(d, _)| d);
        let done_moved = done_raised.is_some_and(|(_, m)| m);
        if let Some(n) = self.node(idx)
            && let Some(ce) = child_end
            && ce > n.end.0
        {
            n.end.0 = ce;
            n.causal = true;
        }
        // Warnings and other notable events on the container span (image ones went to the pull).
        let notes: Vec<SpanEvent> = evs
            .iter()
            .filter(|e| {
                !matches!(
                    e.reason.as_str(),
                    "Pulling" | "Pulled" | "Created" | "Started"
                )
            })
            // Image events went to the pull span when there is one; otherwise keep them here.
            .filter(|e| !(is_image_event(e) && has_pull_span))
            .filter_map(|e| span_event(e))
            .collect();
        if let Some(n) = self.node(idx) {
            n.attributes = attrs;
            n.events = notes;
            n.status = status;
        }
        (idx, done, done_moved)
    }

    #[allow(clippy::too_many_arguments)]
    fn image_pull(
        &mut self,
        parent: usize,
        c: &ContainerFacts,
        pulling: Option<&EventFacts>,
        pulled: Option<&EventFacts>,
        next: Option<&EventFacts>,
        failure: Option<&Failure>,
        failed_outcome: bool,
        container_attrs: &[Attribute],
        floor: Timestamp,
    ) -> Option<Stamp> {
        let floor = Some(floor);
        let parsed = pulled.and_then(|p| parse::parse_pulled_message(&p.message));
        // Every kubelet timestamp here is a lower bound; the pull starts inside its container.
        let mut causal = false;
        let pulling_at = pulling.and_then(event_start).map(|p| {
            let (p, moved) = raise(p, floor);
            causal |= moved;
            p
        });
        let mut attrs: Vec<Attribute> = container_attrs.to_vec();
        let image_failure = failure.filter(|f| f.image);
        let (start, end, status) = match (pulling_at, &parsed) {
            (_, Some(PulledMessage::Cached { .. })) => {
                let t = pulled.and_then(event_start)?;
                attrs.push(("podtrace.image.cached", Value::Bool(true)));
                (t, t, Status::Unset)
            }
            (
                Some(ps),
                Some(PulledMessage::Pulled {
                    pull,
                    including_waiting,
                    size_bytes,
                    ..
                }),
            ) => {
                attrs.push(("podtrace.image.cached", Value::Bool(false)));
                if let Some(p) = pull {
                    attrs.push((
                        "podtrace.image.pull_duration_ms",
                        Value::Float(p.as_secs_f64() * 1000.0),
                    ));
                }
                if let Some(w) = including_waiting {
                    attrs.push((
                        "podtrace.image.pull_including_waiting_ms",
                        Value::Float(w.as_secs_f64() * 1000.0),
                    ));
                }
                if let Some(sz) = size_bytes {
                    attrs.push(("podtrace.image.size_bytes", Value::Int(*sz)));
                }
                let attempts = pulling.map_or(1, |p| p.count);
                attrs.push((
                    "podtrace.image.pull_attempts",
                    Value::Int(i64::from(attempts)),
                ));
                // A stated duration is finer than the 1 s event timestamps, but it covers only
                // the last attempt: after retries the Pulled event time is the better end.
                let end = match (including_waiting.or(*pull), attempts) {
                    (Some(d), 1) => (add(ps.0, d), "pulled.message"),
                    _ => pulled.and_then(event_start).unwrap_or(ps),
                };
                (ps, end, Status::Unset)
            }
            (
                None,
                Some(PulledMessage::Pulled {
                    pull,
                    including_waiting,
                    size_bytes,
                    ..
                }),
            ) => {
                // Pulling was not seen (partial): go back from Pulled by the stated duration.
                let pe = pulled.and_then(event_start)?;
                attrs.push(("podtrace.image.cached", Value::Bool(false)));
                if let Some(sz) = size_bytes {
                    attrs.push(("podtrace.image.size_bytes", Value::Int(*sz)));
                }
                match including_waiting.or(*pull) {
                    Some(d) => {
                        let (start, m1) = raise(
                            (pe.0.checked_sub(d).unwrap_or(pe.0), "pulled.message"),
                            floor,
                        );
                        // Raised start: the pull still lasted the stated duration.
                        let (end, m2) = raise(pe, Some(add(start.0, d)));
                        causal |= m1 || m2;
                        (start, end, Status::Unset)
                    }
                    None => (pe, pe, Status::Unset),
                }
            }
            (Some(ps), None) => match (
                image_failure,
                pulled.and_then(event_start),
                next.and_then(event_start),
            ) {
                (Some(f), _, _) if failed_outcome => (
                    ps,
                    f.at,
                    Status::Error(format!("{}: {}", f.reason, f.message)),
                ),
                (_, Some(pe), _) => (ps, pe, Status::Unset),
                (_, None, Some(ne)) => (ps, ne, Status::Unset),
                (_, None, None) => {
                    let end = self.nodes.get(parent).map_or(ps, |n| n.end);
                    (ps, end, Status::Unset)
                }
            },
            (None, None) => return None,
        };
        let (start, m1) = raise(start, floor);
        let (end, m2) = raise(end, floor);
        causal |= m1 || m2;
        let status = match (status, image_failure) {
            (Status::Unset, Some(f)) if failed_outcome => {
                Status::Error(format!("{}: {}", f.reason, f.message))
            }
            (s, _) => s,
        };
        let service = self.kubelet_service();
        let i = self.push(
            Some(parent),
            "container.image_pull".into(),
            "container.image_pull",
            service,
            start,
            end,
        );
        let evs: Vec<SpanEvent> = self
            .container_events(
                c,
                self.nodes
                    .get(parent)
                    .is_some_and(|n| n.name == "container.init")
                    || is_init(c, self.st),
            )
            .into_iter()
            .filter(|e| is_image_event(e))
            .filter_map(span_event)
            .collect();
        if let Some(n) = self.node(i) {
            n.attributes = attrs;
            n.status = status;
            n.events = evs;
            n.causal = causal;
        }
        self.nodes.get(i).map(|n| n.end)
    }
}

fn is_init(c: &ContainerFacts, st: &PodState) -> bool {
    st.pod.init_containers.iter().any(|i| i.name == c.name)
}

fn owner_attributes(owner: Option<&(String, String)>) -> Vec<Attribute> {
    let Some((kind, name)) = owner else {
        return vec![];
    };
    match kind.as_str() {
        "ReplicaSet" => {
            let mut v = vec![("k8s.replicaset.name", s(name))];
            if let Some(d) = parse::deployment_from_replicaset(name) {
                v.push(("k8s.deployment.name", s(&d)));
                v.push(("podtrace.k8s.deployment.name_inferred", Value::Bool(true)));
            }
            v
        }
        "StatefulSet" => vec![("k8s.statefulset.name", s(name))],
        "DaemonSet" => vec![("k8s.daemonset.name", s(name))],
        "Job" => vec![("k8s.job.name", s(name))],
        "ReplicationController" => vec![("k8s.replicationcontroller.name", s(name))],
        _ => vec![],
    }
}

fn node_attributes(node: &str, facts: Option<&NodeFacts>) -> Vec<Attribute> {
    let mut v = vec![("k8s.node.name", s(node))];
    if let Some(f) = facts {
        let opt = |k: &'static str, val: &Option<String>| val.as_ref().map(|x| (k, s(x)));
        v.extend(
            [
                opt("cloud.availability_zone", &f.zone),
                opt("cloud.region", &f.region),
                opt("host.type", &f.instance_type),
                opt("k8s.kubelet.version", &f.kubelet_version),
                opt("container.runtime.version", &f.container_runtime_version),
                opt("os.description", &f.os_image),
                opt("host.arch", &f.architecture),
            ]
            .into_iter()
            .flatten(),
        );
    }
    v
}

/// Builds the trace for a pod whose startup ended with `outcome` at `end`.
pub fn build(
    st: &PodState,
    outcome: Outcome,
    end: Stamp,
    nodes: &HashMap<String, NodeFacts>,
) -> Trace {
    let pod = &st.pod;
    let uid = pod.uid.as_str();
    let caller = pod.traceparent.as_deref().and_then(ids::parse_traceparent);
    let trace_id = ids::trace_id(Operation::PodStartup, &[uid]);

    let scheduled_ev = {
        let mut v: Vec<&EventFacts> = st
            .events
            .values()
            .filter(|e| e.reason == "Scheduled" && e.is_scheduler())
            .collect();
        v.sort_by_key(|e| (event_start(e).map(|s| s.0), e.uid.clone()));
        v.into_iter().next()
    };
    let node_name = pod
        .node_name
        .clone()
        .or_else(|| scheduled_ev.and_then(|e| parse::node_from_scheduled_message(&e.message)));
    let has_kubelet_events = st.events.values().any(|e| e.is_kubelet());
    let partial = !st.saw_unscheduled && scheduled_ev.is_none();

    let created: Stamp = pod
        .created
        .map(|t| (t, "creationTimestamp"))
        .unwrap_or((st.first_seen, "firstSeen"));
    let failed_outcome = outcome.label == super::FAILED.label;
    let failure = st.failure().filter(|_| failed_outcome);

    let mut common: Vec<Attribute> = vec![
        ("k8s.namespace.name", s(&pod.namespace)),
        ("k8s.pod.name", s(&pod.name)),
        ("k8s.pod.uid", s(uid)),
    ];
    common.extend(owner_attributes(pod.owner.as_ref()));
    let kubelet = node_name.as_ref().map(|n| {
        (
            Service::Kubelet { node: n.clone() },
            node_attributes(n, nodes.get(n)),
        )
    });
    let mut b = Builder {
        st,
        nodes: Vec::new(),
        common,
        kubelet,
    };

    let root_end = if end.0 < created.0 {
        (created.0, end.1)
    } else {
        end
    };
    let root = b.push(
        None,
        "pod.startup".into(),
        "pod.startup",
        Service::Podtrace,
        created,
        root_end,
    );

    // Scheduling.
    let sched_end: Option<Stamp> = scheduled_ev.and_then(event_start).or_else(|| {
        st.conditions_true
            .get("PodScheduled")
            .map(|t| (*t, "condition.PodScheduled"))
    });
    let sched = b.push(
        Some(root),
        "pod.schedule".into(),
        "pod.schedule",
        Service::Scheduler,
        created,
        sched_end.unwrap_or(root_end),
    );
    {
        let mut fs: Vec<&EventFacts> = st
            .events
            .values()
            .filter(|e| e.is_scheduler() && e.reason != "Scheduled")
            .collect();
        fs.sort_by_key(|e| (event_start(e).map(|s| s.0), e.uid.clone()));
        let last_msg = fs.last().map(|e| e.message.clone());
        let evs: Vec<SpanEvent> = fs.into_iter().filter_map(span_event).collect();
        let mut attrs = vec![];
        if let Some(n) = &node_name {
            attrs.push(("k8s.node.name", s(n)));
        }
        if let Some(sn) = &pod.scheduler_name {
            attrs.push(("podtrace.scheduler.name", s(sn)));
        }
        if let Some(n) = b.node(sched) {
            n.events = evs;
            n.attributes = attrs;
            if sched_end.is_none()
                && outcome != super::READY
                && let Some(m) = last_msg
            {
                n.status = Status::Error(format!("Unschedulable: {m}"));
            }
        }
    }

    let mut readiness_from: Option<(Stamp, bool)> = None;
    if node_name.is_some()
        && (has_kubelet_events
            || st.conditions_true.contains_key("PodReadyToStartContainers")
            || !st.containers.is_empty())
    {
        let kubelet_start = sched_end.unwrap_or(created);
        // The kubelet can do nothing for the pod before it is bound: the scheduled instant is
        // a causal lower bound for every kubelet-side (1 s-truncated) boundary.
        let kubelet_floor = sched_end.map(|s| s.0);
        // Sandbox: scheduled → PodReadyToStartContainers, else → the first container event.
        let first_container_event = st
            .events
            .values()
            .filter(|e| e.is_kubelet() && e.container_ref().is_some_and(|r| !r.ephemeral))
            .filter_map(event_start)
            .min_by_key(|s| s.0);
        let sandbox_end = st
            .conditions_true
            .get("PodReadyToStartContainers")
            .map(|t| (*t, "condition.PodReadyToStartContainers"))
            .or(first_container_event);
        let pod_warnings: Vec<SpanEvent> = {
            let mut v: Vec<&EventFacts> = st
                .events
                .values()
                .filter(|e| e.is_kubelet() && e.container_ref().is_none() && e.warning)
                .collect();
            v.sort_by_key(|e| (event_start(e).map(|s| s.0), e.uid.clone()));
            v.into_iter().filter_map(span_event).collect()
        };
        let sandbox_failed =
            failed_outcome && failure.as_ref().is_some_and(|f| f.container.is_none());
        // Sandbox ready no earlier than scheduled; when raised, it is known as precisely as
        // the scheduled instant.
        let sandbox_ready = sandbox_end.map(|e| {
            let (r, moved) = raise(e, kubelet_floor);
            let prec = match (moved, sched_end) {
                (true, Some(se)) => precision(se.1),
                _ => precision(e.1),
            };
            (r, moved, prec)
        });
        let (sandbox_stop, sandbox_causal) = match sandbox_ready {
            Some((r, moved, _)) => (r, moved),
            None => raise(root_end, kubelet_floor),
        };
        let sandbox = b.push(
            Some(root),
            "pod.sandbox".into(),
            "pod.sandbox",
            b.kubelet_service(),
            kubelet_start,
            sandbox_stop,
        );
        let ka = b.kubelet_attrs();
        if let Some(n) = b.node(sandbox) {
            n.causal = sandbox_causal;
            n.attributes = ka;
            n.events = pod_warnings;
            if sandbox_failed && let Some(f) = &failure {
                n.status = Status::Error(format!("{}: {}", f.reason, f.message));
            }
        }
        let soft_floor = sandbox_ready.map(|(r, _, prec)| (r.0, prec));
        let mut cursor = sandbox_end.unwrap_or(kubelet_start);
        // Init containers run one after the other: each starts after the previous one is done
        // (completed; sidecars: started). `init_done` stays None when one never finished.
        let mut init_floor = kubelet_floor;
        let mut init_done = Some(kubelet_floor);
        for c in &pod.init_containers {
            let (_, done, _) = b.container(
                root,
                c,
                true,
                cursor,
                root_end,
                failure.as_ref(),
                failed_outcome,
                init_floor,
                soft_floor,
            );
            match done {
                Some(d) => {
                    cursor = d;
                    init_floor = max_opt(init_floor, Some(d.0));
                    init_done = Some(init_floor);
                }
                None => {
                    init_done = None;
                    break;
                }
            }
        }
        // App containers start after the init containers are done, when that is known.
        let app_floor = init_done.unwrap_or(kubelet_floor);
        let app_start = if pod.init_containers.is_empty() {
            cursor
        } else {
            st.conditions_true
                .get("Initialized")
                .map(|t| (*t, "condition.Initialized"))
                .unwrap_or(cursor)
        };
        let mut last_started: Option<(Stamp, bool)> = None;
        let mut all_started = true;
        // The kubelet's SyncPod starts app containers one after the other in spec order (pull,
        // create, start, then the next), so each one's work follows the previous one's start.
        // A container that never started gives no bound: the kubelet moved on at an unknown time.
        let mut seq_floor = app_floor;
        for c in &pod.containers {
            let (_, done, moved) = b.container(
                root,
                c,
                false,
                app_start,
                root_end,
                failure.as_ref(),
                failed_outcome,
                seq_floor,
                soft_floor,
            );
            match done {
                Some(d) => {
                    seq_floor = max_opt(seq_floor, Some(d.0));
                    if last_started.is_none_or(|(l, _)| d.0 > l.0) {
                        last_started = Some((d, moved));
                    }
                }
                None => all_started = false,
            }
        }
        if all_started {
            readiness_from = last_started;
        }
    }
    if outcome == super::READY
        && let Some((from, from_raised)) = readiness_from
    {
        // Ready (1 s) comes no earlier than the last app container started: raise the root's
        // end with it rather than cutting the causally placed container spans off.
        if let Some(n) = b.node(root)
            && from.0 > n.end.0
            && precision(n.end.1) == 0
        {
            n.end.0 = from.0;
            n.causal = true;
        }
        let (root_end, root_raised) = b
            .nodes
            .get(root)
            .map_or((root_end, false), |n| (n.end, n.causal));
        let i = b.push(
            Some(root),
            "pod.readiness".into(),
            "pod.readiness",
            b.kubelet_service(),
            from,
            root_end,
        );
        let ka = b.kubelet_attrs();
        if let Some(n) = b.node(i) {
            n.attributes = ka;
            n.causal = from_raised || root_raised;
        }
    }

    // Root.
    let root_status = if outcome.label == super::FAILED.label {
        let reason = outcome.reason.clone().unwrap_or_default();
        Status::Error(match &failure {
            Some(f) if !f.message.is_empty() => format!("{reason}: {}", f.message),
            _ => reason,
        })
    } else if outcome == super::DELETED {
        Status::Error("pod deleted before it became Ready".into())
    } else if outcome == super::TIMED_OUT {
        Status::Error("startup did not end within the timeout".into())
    } else {
        Status::Unset
    };
    let mut root_attrs: Vec<Attribute> = vec![
        ("podtrace.outcome", s(outcome.label)),
        ("podtrace.partial", Value::Bool(partial)),
    ];
    if outcome.label == super::FAILED.label
        && let Some(reason) = &outcome.reason
    {
        root_attrs.push(("podtrace.failure.reason", s(reason)));
    }
    if let Some(n) = &node_name {
        root_attrs.push(("k8s.node.name", s(n)));
    }
    if pod.legacy_trace_context.is_some() {
        root_attrs.push(("podtrace.legacy_trace_context", Value::Bool(true)));
    }
    if pod.traceparent.is_some() && caller.is_none() {
        root_attrs.push(("podtrace.traceparent_invalid", Value::Bool(true)));
    }
    let root_events: Vec<SpanEvent> = if b.nodes.iter().any(|n| n.name == "pod.sandbox") {
        vec![]
    } else {
        let mut v: Vec<&EventFacts> = st
            .events
            .values()
            .filter(|e| e.is_kubelet() && e.container_ref().is_none() && e.warning)
            .collect();
        v.sort_by_key(|e| (event_start(e).map(|s| s.0), e.uid.clone()));
        v.into_iter().filter_map(span_event).collect()
    };
    if let Some(n) = b.node(root) {
        n.attributes = root_attrs;
        n.status = root_status;
        n.events = root_events;
    }

    let common = b.common.clone();
    let spans = finalize(uid, b.nodes, &common);
    let phases = phases(st, &spans, scheduled_ev, created, &outcome);
    let mut spans = spans;
    if let (Some(context), Some(root)) = (caller, spans.first_mut()) {
        root.links.push(Link {
            context,
            attributes: vec![(
                "podtrace.link.source",
                s(crate::observe::TRACEPARENT_ANNOTATION),
            )],
        });
    }
    Trace {
        trace_id,
        operation: Operation::PodStartup,
        subject: Subject {
            kind: "Pod",
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: uid.to_string(),
            revision: None,
        },
        outcome,
        partial,
        spans,
        phases,
    }
}

/// Clamps children into parents, records timing sources, sorts, assigns IDs.
fn finalize(uid: &str, mut nodes: Vec<Node>, common: &[Attribute]) -> Vec<Span> {
    let mut spans = Vec::with_capacity(nodes.len());
    let mut ids = Vec::with_capacity(nodes.len());
    for i in 0..nodes.len() {
        let bounds = nodes
            .get(nodes.get(i).and_then(|n| n.parent).unwrap_or(usize::MAX))
            .map(|p| (p.start.0, p.end.0));
        let Some(n) = nodes.get_mut(i) else { continue };
        let mut clamped = n.clamped;
        if let Some((ps, pe)) = bounds {
            if n.start.0 < ps {
                n.start.0 = ps;
                clamped = true;
            }
            if n.start.0 > pe {
                n.start.0 = pe;
                clamped = true;
            }
            if n.end.0 > pe {
                n.end.0 = pe;
                clamped = true;
            }
        }
        if n.end.0 < n.start.0 {
            n.end.0 = n.start.0;
            clamped = true;
        }
        let mut attributes: Vec<Attribute> = common.to_vec();
        attributes.append(&mut n.attributes);
        attributes.push(("podtrace.timing.start_source", s(n.start.1)));
        attributes.push(("podtrace.timing.end_source", s(n.end.1)));
        if clamped {
            attributes.push(("podtrace.timing.clamped", Value::Bool(true)));
        }
        if n.causal {
            attributes.push(("podtrace.timing.causal", Value::Bool(true)));
        }
        attributes.sort_by(|a, b| a.0.cmp(b.0));
        attributes.dedup_by(|a, b| a.0 == b.0);
        let mut events = std::mem::take(&mut n.events);
        events.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.name.cmp(&b.name)));
        for e in &mut events {
            e.attributes.sort_by(|a, b| a.0.cmp(b.0));
        }
        let id = ids::span_id(Operation::PodStartup, &[uid], &n.path);
        ids.push(id);
        spans.push(Span {
            span_id: id,
            parent: n.parent.and_then(|p| ids.get(p).copied()),
            name: n.name,
            service: n.service.clone(),
            start: n.start.0,
            end: n.end.0,
            status: std::mem::take(&mut n.status),
            attributes,
            events,
            links: Vec::new(),
        });
    }
    spans
}

fn span<'n>(nodes: &'n [Span], name: &str) -> Option<&'n Span> {
    nodes.iter().find(|n| n.name == name)
}

fn phases(
    st: &PodState,
    nodes: &[Span],
    scheduled_ev: Option<&EventFacts>,
    created: Stamp,
    outcome: &Outcome,
) -> Vec<(&'static str, SignedDuration)> {
    let mut out = Vec::new();
    let dur = |n: &Span| n.duration();
    let sched_done = scheduled_ev.is_some() || st.conditions_true.contains_key("PodScheduled");
    if let Some(n) = span(nodes, "pod.schedule").filter(|_| sched_done) {
        out.push(("schedule", dur(n)));
    }
    if let Some(n) = span(nodes, "pod.sandbox") {
        out.push(("sandbox", dur(n)));
    }
    let inits: Vec<&Span> = nodes
        .iter()
        .filter(|n| n.name == "container.init")
        .collect();
    if let (Some(a), Some(z)) = (
        inits.iter().map(|n| n.start).min(),
        inits.iter().map(|n| n.end).max(),
    ) {
        out.push(("init_containers", z.duration_since(a)));
    }
    // Time during which at least one image pull was in progress (union of pull spans), so
    // parallel pulls are not double-counted and gaps between init containers are not counted.
    let mut pulls: Vec<(Timestamp, Timestamp)> = nodes
        .iter()
        .filter(|n| n.name == "container.image_pull")
        .map(|n| (n.start, n.end))
        .collect();
    if !pulls.is_empty() {
        pulls.sort();
        let mut total = SignedDuration::ZERO;
        let mut cur: Option<(Timestamp, Timestamp)> = None;
        for (a, z) in pulls {
            cur = match cur {
                Some((ca, cz)) if a <= cz => Some((ca, cz.max(z))),
                Some((ca, cz)) => {
                    total = total.saturating_add(cz.duration_since(ca));
                    Some((a, z))
                }
                None => Some((a, z)),
            };
        }
        if let Some((ca, cz)) = cur {
            total = total.saturating_add(cz.duration_since(ca));
        }
        out.push(("image_pull", total));
    }
    let apps: Vec<&Span> = nodes
        .iter()
        .filter(|n| {
            n.name == "container.startup"
                && n.attributes
                    .iter()
                    .any(|(k, v)| *k == "podtrace.container.kind" && *v == Value::Str("app".into()))
        })
        .collect();
    if let (Some(a), Some(z)) = (
        apps.iter().map(|n| n.start).min(),
        apps.iter().map(|n| n.end).max(),
    ) {
        out.push(("containers_start", z.duration_since(a)));
    }
    if let Some(n) = span(nodes, "pod.readiness") {
        out.push(("readiness", dur(n)));
    }
    if let Some(n) = span(nodes, "pod.startup")
        && *outcome == super::READY
    {
        out.push(("total", dur(n)));
    }
    // ClusterLoader2 PodStartupLatency: create = creationTimestamp; schedule = the scheduler's
    // event time; run = latest container startedAt when the watch first saw phase Running;
    // watch = when that happened (observation time).
    let create = st
        .pod
        .created
        .or((created.1 == "creationTimestamp").then_some(created.0));
    let sched = scheduled_ev.and_then(event_start).map(|s| s.0);
    let (watch, run) = match st.cl2_watch {
        Some((w, r)) => (Some(w), r),
        None => (None, None),
    };
    let pair = |a: Option<Timestamp>, b: Option<Timestamp>| match (a, b) {
        (Some(a), Some(b)) => Some(b.duration_since(a)),
        _ => None,
    };
    for (name, d) in [
        ("create_to_schedule", pair(create, sched)),
        ("schedule_to_run", pair(sched, run)),
        ("run_to_watch", pair(run, watch)),
        ("schedule_to_watch", pair(sched, watch)),
        ("pod_startup", pair(create, watch)),
    ] {
        if let Some(d) = d {
            out.push((name, d));
        }
    }
    out
}

#[allow(dead_code)]
fn _source_is_static(_: Source) {}
