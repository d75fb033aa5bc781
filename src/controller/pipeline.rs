//! The engine task: the one owner of the [`Engine`], fed by the watches, ticked by a clock,
//! handing finished traces to the exporter and attributing them to sessions.
//!
//! Pods are matched to sessions the first time they are seen; only matched pods (and events
//! in namespaces with an active session, which may precede their pod) reach the engine, so
//! its memory follows the pods being traced. A pod matching several sessions yields one
//! trace, counted by each, carrying the union of their attributes (first session by name wins
//! on a key clash).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{broadcast, mpsc, watch};

use super::sessions::{SessionKey, SharedRegistry, lock};
use super::watch::Input;
use crate::export::exporter::{ExportOutcome, ExportResult, Exporter};
use crate::observe::{Action, Object, Observation};
use crate::telemetry::Metrics;
use crate::timeline::{Config as EngineConfig, Engine};
use crate::trace::Trace;

/// Pods created up to this long before a session became Active still belong to it:
/// `creationTimestamp` has one-second precision (truncated) and `startedAt` is podtrace's clock.
pub const START_SLACK: SignedDuration = SignedDuration::from_secs(2);

/// How far behind "now minus grace" a trace not yet emitted by the engine may finish: watch
/// latency plus the one-second precision of pod conditions. The watermark stays this far back.
pub const WATERMARK_MARGIN: SignedDuration = SignedDuration::from_secs(10);

/// How long finished pods are remembered so late updates do not start a second trace.
const DONE_TTL: Duration = Duration::from_secs(30 * 60);

/// What the engine task needs.
pub struct Pipeline {
    /// Engine settings.
    pub engine: EngineConfig,
    /// Shared sessions.
    pub registry: SharedRegistry,
    /// Where traces go.
    pub exporter: Exporter,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Set once every watch has finished its initial list.
    pub synced: watch::Sender<bool>,
    /// Wakes the status writer when something urgent changed.
    pub status_wake: Arc<tokio::sync::Notify>,
}

struct Followed {
    sessions: Vec<SessionKey>,
    /// No trace of this pod can finish before its creation: a lower bound for the watermark
    /// while the pod is in flight, however old its end turns out to be (after a restart the
    /// engine rebuilds pods that became Ready while no controller ran).
    created: Timestamp,
}

struct Outstanding {
    uid: String,
    sessions: Vec<SessionKey>,
}

struct State {
    engine: Engine,
    followed: HashMap<String, Followed>,
    done: HashMap<String, tokio::time::Instant>,
    outstanding: HashMap<u64, Outstanding>,
    next_tag: u64,
    synced_kinds: Vec<&'static str>,
    synced: bool,
}

impl Pipeline {
    /// Runs until `inputs` closes or `stop` fires, then keeps applying export outcomes (the
    /// exporter flushing its queue during shutdown) until none is outstanding or
    /// `outcome_deadline` has passed.
    pub async fn run(
        self,
        mut inputs: mpsc::Receiver<Input>,
        mut outcomes: broadcast::Receiver<ExportOutcome>,
        mut stop: watch::Receiver<bool>,
        outcome_deadline: Duration,
    ) {
        let mut st = State {
            engine: Engine::new(self.engine.clone()),
            followed: HashMap::new(),
            done: HashMap::new(),
            outstanding: HashMap::new(),
            next_tag: 1,
            synced_kinds: Vec::new(),
            synced: false,
        };
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                outcome = outcomes.recv() => match outcome {
                    Ok(o) => self.on_outcome(&mut st, o),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Cannot happen with a 4096-deep channel drained by this loop, but if
                        // it does the watermark must not advance past the lost outcomes:
                        // leaving them pending holds it back, which is the safe direction.
                        tracing::error!(lost = n, "missed export outcomes; watermark held back");
                    }
                    Err(broadcast::error::RecvError::Closed) => {}
                },
                input = inputs.recv() => match input {
                    None => break,
                    Some(Input::Synced(kind)) => {
                        if !st.synced_kinds.contains(&kind) {
                            st.synced_kinds.push(kind);
                        }
                        if st.synced_kinds.len() >= 3 && !st.synced {
                            st.synced = true;
                            tracing::info!("watches synced");
                            let _ = self.synced.send(true);
                        }
                    }
                    Some(Input::Observation(obs)) => self.on_observation(&mut st, obs),
                },
                _ = tick.tick() => {
                    let now = Timestamp::now();
                    let traces = st.engine.advance(now);
                    for t in traces {
                        self.on_trace(&mut st, t);
                    }
                    self.advance_watermarks(&st, now);
                    self.metrics.pods_in_flight.set(st.engine.in_flight() as i64);
                    self.metrics.active_sessions.set(lock(&self.registry).active_count() as i64);
                    if last_prune.elapsed() > Duration::from_secs(60) {
                        last_prune = tokio::time::Instant::now();
                        st.done.retain(|_, at| at.elapsed() < DONE_TTL);
                        // The engine finishes every startup by its timeout; an entry older than
                        // that was suppressed by it and would otherwise pin the watermark.
                        let stale = now - self.engine.timeout - SignedDuration::from_secs(300);
                        st.followed.retain(|_, f| f.created > stale);
                    }
                }
            }
        }
        // Shutdown: in-flight startups are deliberately not drained into incomplete traces; the
        // next controller rebuilds them from Pod status. What was submitted is being flushed
        // by the exporter; apply its outcomes so the final status write records them.
        let deadline = tokio::time::Instant::now() + outcome_deadline;
        while !st.outstanding.is_empty() {
            match tokio::time::timeout_at(deadline, outcomes.recv()).await {
                Ok(Ok(o)) => self.on_outcome(&mut st, o),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => break,
            }
        }
        self.advance_watermarks(&st, Timestamp::now());
    }

    fn on_observation(&self, st: &mut State, obs: Observation) {
        match &obs.object {
            Object::Node(_) => {
                self.feed(st, obs);
            }
            Object::Pod(p) => {
                let uid = p.uid.clone();
                if st.done.contains_key(&uid) {
                    if obs.action == Action::Deleted {
                        st.done.remove(&uid);
                    }
                    return;
                }
                if st.followed.contains_key(&uid) {
                    self.feed(st, obs);
                    return;
                }
                {
                    let sessions = {
                        let reg = lock(&self.registry);
                        let mut matched =
                            reg.matching(&p.namespace, &p.labels, p.created, START_SLACK);
                        // Already handed off before a restart: a pod Ready before every
                        // matching session's watermark is not followed again.
                        if let Some(ready) = p
                            .condition("Ready")
                            .filter(|c| c.status)
                            .and_then(|c| c.last_transition)
                        {
                            matched.retain(|k| {
                                reg.sessions
                                    .get(k)
                                    .is_none_or(|s| !s.watermark.covers(&uid, ready))
                            });
                        }
                        matched
                    };
                    if sessions.is_empty() {
                        return;
                    }
                    {
                        let mut reg = lock(&self.registry);
                        for k in &sessions {
                            if let Some(s) = reg.sessions.get_mut(k) {
                                s.pods_matched += 1;
                                s.dirty = true;
                            }
                        }
                    }
                    let created = p.created.unwrap_or_else(Timestamp::now);
                    st.followed.insert(uid, Followed { sessions, created });
                    let obs = Observation {
                        action: Action::Added,
                        ..obs
                    };
                    self.feed(st, obs);
                }
            }
            Object::Event(e) => {
                let known = e
                    .object_uid
                    .as_ref()
                    .is_some_and(|u| st.followed.contains_key(u));
                let done = e
                    .object_uid
                    .as_ref()
                    .is_some_and(|u| st.done.contains_key(u));
                if done {
                    return;
                }
                let ns = e.object_namespace.as_deref().unwrap_or(&e.namespace);
                // An event for a pod not seen yet (after a restart the event list may come in
                // before the pod list) goes to the engine's bounded orphan buffer, but only in
                // namespaces where some session is active.
                if known || lock(&self.registry).namespace_active(ns) {
                    self.feed(st, obs);
                }
            }
        }
    }

    fn feed(&self, st: &mut State, obs: Observation) {
        let traces = st.engine.observe(obs);
        for t in traces {
            self.on_trace(st, t);
        }
    }

    fn on_trace(&self, st: &mut State, trace: Trace) {
        let uid = trace.subject.uid.clone();
        let Some(followed) = st.followed.remove(&uid) else {
            return;
        };
        st.done.insert(uid.clone(), tokio::time::Instant::now());
        let finish = trace
            .spans
            .first()
            .map(|s| s.end)
            .unwrap_or_else(Timestamp::now);
        let now = Timestamp::now();
        let mut attrs: Vec<(String, String)> = Vec::new();
        let mut counted: Vec<SessionKey> = Vec::new();
        {
            let mut reg = lock(&self.registry);
            for k in &followed.sessions {
                let Some(s) = reg.sessions.get_mut(k) else {
                    continue;
                };
                if !s.accepting() || s.watermark.covers(&uid, finish) {
                    continue;
                }
                s.traces_completed += 1;
                s.last_trace_id = Some(trace.trace_id.to_string());
                s.latencies.record(&trace);
                s.dirty = true;
                if let Some(spec) = &s.spec {
                    for (k, v) in spec.attributes.iter() {
                        if !attrs.iter().any(|(ak, _)| ak == k) {
                            attrs.push((k.clone(), v.clone()));
                        }
                    }
                    if spec.max_traces.is_some_and(|m| s.traces_completed >= m) {
                        s.complete(now);
                    }
                }
                counted.push(k.clone());
            }
            if counted.is_empty() {
                return;
            }
            let tag = st.next_tag;
            st.next_tag += 1;
            for k in &counted {
                if let Some(s) = reg.sessions.get_mut(k) {
                    s.watermark.pending.insert(tag, finish);
                }
            }
            st.outstanding.insert(
                tag,
                Outstanding {
                    uid: uid.clone(),
                    sessions: counted,
                },
            );
            attrs.sort();
            self.metrics.traces_completed.inc();
            self.metrics.observe_trace(&trace);
            drop(reg);
            tracing::info!(
                operation = %trace.operation,
                name = %trace.subject.name,
                namespace = %trace.subject.namespace,
                trace_id = %trace.trace_id,
                outcome = crate::latency::outcome_label(&trace.outcome),
                spans = trace.spans.len(),
                "trace finished"
            );
            self.exporter.submit(trace, Arc::new(attrs), tag);
        }
    }

    fn on_outcome(&self, st: &mut State, o: ExportOutcome) {
        let Some(out) = st.outstanding.remove(&o.tag) else {
            return;
        };
        match &o.result {
            ExportResult::Exported => {
                self.metrics.traces_exported.inc();
            }
            ExportResult::Dropped => {
                self.metrics.traces_dropped.inc();
            }
            ExportResult::Failed(msg) => {
                tracing::warn!(trace_id = %o.trace_id, error = %msg, "trace export failed for good");
            }
        };
        let mut reg = lock(&self.registry);
        for k in &out.sessions {
            let Some(s) = reg.sessions.get_mut(k) else {
                continue;
            };
            match &o.result {
                ExportResult::Exported => s.traces_exported += 1,
                ExportResult::Dropped => s.traces_dropped += 1,
                ExportResult::Failed(_) => {}
            }
            if let Some(finish) = s.watermark.pending.remove(&o.tag) {
                // Failed traces are handed off too: the exporter gave up on them, and
                // re-sending after a restart would not make the backend accept them.
                s.watermark.handed.insert(out.uid.clone(), finish);
            }
            s.dirty = true;
            s.urgent = true;
        }
        drop(reg);
        self.status_wake.notify_one();
    }

    fn advance_watermarks(&self, st: &State, now: Timestamp) {
        if !st.synced {
            // Before the initial lists are in, traces the engine has not emitted yet may finish
            // arbitrarily far back: the watermark must not move.
            return;
        }
        let mut frontier = now - self.engine.grace - WATERMARK_MARGIN;
        if let Some(oldest) = st.followed.values().map(|f| f.created).min() {
            frontier = frontier.min(oldest - SignedDuration::from_nanos(1));
        }
        let mut reg = lock(&self.registry);
        for s in reg.sessions.values_mut() {
            // A moved watermark alone is not worth a status write: the persisted one is still
            // true (just more conservative). It goes out with the next write a hand-off causes.
            if s.started_at.is_some() {
                s.watermark.advance(frontier);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Mutex;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    use super::*;
    use crate::controller::sessions::{Registry, SessionState, ValidSpec, Watermark};
    use crate::export::exporter::{ExportConfig, SendError, Transport};
    use crate::latency::Latencies;
    use crate::observe::{PodCondition, PodFacts};
    use crate::session::SessionPhase;

    /// Records the trace IDs of every span it receives.
    #[derive(Default, Clone)]
    struct Sink(Arc<Mutex<Vec<String>>>);

    impl Transport for Sink {
        fn send(
            &self,
            req: ExportTraceServiceRequest,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SendError>> + Send + '_>>
        {
            let ids: Vec<String> = req
                .resource_spans
                .iter()
                .flat_map(|r| r.scope_spans.iter())
                .flat_map(|s| s.spans.iter())
                .map(|s| s.trace_id.iter().map(|b| format!("{b:02x}")).collect())
                .collect();
            self.0.lock().unwrap_or_else(|e| e.into_inner()).extend(ids);
            Box::pin(async { Ok(()) })
        }
    }

    fn session(started: Timestamp, watermark: Watermark) -> SessionState {
        SessionState {
            uid: "s-uid".into(),
            generation: Some(1),
            phase: SessionPhase::Active,
            invalid: None,
            spec: Some(ValidSpec {
                selector: crate::controller::sessions::Selector::compile(
                    &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                        match_labels: Some([("app".to_string(), "x".to_string())].into()),
                        match_expressions: None,
                    },
                )
                .expect("selector"),
                duration: None,
                max_traces: None,
                attributes: Arc::new(vec![("team".into(), "t".into())]),
            }),
            started_at: Some(started),
            completed_at: None,
            pods_matched: 0,
            traces_completed: 0,
            traces_exported: 0,
            traces_dropped: 0,
            last_trace_id: None,
            latencies: Latencies::default(),
            watermark,
            dirty: false,
            urgent: false,
            last_write: None,
        }
    }

    fn ready_pod(ns: &str, name: &str, app: &str, created: Timestamp) -> Observation {
        let ready = created + SignedDuration::from_secs(2);
        let cond = |kind: &str, at: Timestamp| PodCondition {
            kind: kind.into(),
            status: true,
            last_transition: Some(at),
            reason: None,
            message: None,
        };
        Observation {
            action: Action::Modified,
            object: Object::Pod(Box::new(PodFacts {
                uid: format!("uid-{ns}-{name}"),
                namespace: ns.into(),
                name: name.into(),
                labels: BTreeMap::from([("app".to_string(), app.to_string())]),
                created: Some(created),
                node_name: Some("n1".into()),
                phase: Some("Running".into()),
                conditions: vec![cond("PodScheduled", created), cond("Ready", ready)],
                ..PodFacts::default()
            })),
            observed_at: Some(Timestamp::now()),
        }
    }

    /// Runs a pipeline over `inputs` until every trace it submits has an outcome; returns the
    /// exported trace IDs.
    async fn run_once(registry: SharedRegistry, inputs: Vec<Observation>) -> BTreeSet<String> {
        let sink = Sink::default();
        let config = ExportConfig {
            queue_capacity: 100,
            ..ExportConfig::default()
        };
        let (exporter, task) = crate::export::exporter::Exporter::start_with(
            config,
            Box::new(sink.clone()),
            &tokio::runtime::Handle::current(),
        );
        let (tx, rx) = mpsc::channel(64);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (synced_tx, _synced_rx) = watch::channel(false);
        let pipeline = Pipeline {
            engine: EngineConfig {
                grace: SignedDuration::ZERO,
                ..EngineConfig::default()
            },
            registry: registry.clone(),
            exporter: exporter.clone(),
            metrics: Arc::new(Metrics::new()),
            synced: synced_tx,
            status_wake: Arc::new(tokio::sync::Notify::new()),
        };
        let outcomes = exporter.subscribe();
        let run = tokio::spawn(pipeline.run(rx, outcomes, stop_rx, Duration::from_secs(5)));
        for kind in ["Pod", "Event", "Node"] {
            tx.send(Input::Synced(kind)).await.expect("send");
        }
        let n = inputs.len();
        for obs in inputs {
            tx.send(Input::Observation(obs)).await.expect("send");
        }
        // Ticks move the engine past the (zero) grace; give it a few.
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let _ = stop_tx.send(true);
        exporter.shutdown(Duration::from_secs(5)).await;
        run.await.expect("pipeline task");
        task.abort();
        let ids = sink
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        assert!(n > 0);
        ids
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn selects_by_session_and_skips_what_a_previous_run_handed_off() {
        let now = Timestamp::now();
        let started = now - SignedDuration::from_secs(30);
        let key = SessionKey {
            namespace: "a".into(),
            name: "s".into(),
        };
        let registry: SharedRegistry = Arc::new(std::sync::Mutex::new(Registry::default()));
        lock(&registry)
            .sessions
            .insert(key.clone(), session(started, Watermark::default()));
        let created = now - SignedDuration::from_secs(20);
        let inputs = vec![
            ready_pod("a", "in", "x", created),
            ready_pod("a", "unselected", "y", created),
            ready_pod("b", "other-namespace", "x", created),
            // Created before the session started (beyond the slack): not followed.
            ready_pod("a", "too-old", "x", started - SignedDuration::from_secs(10)),
        ];
        let exported = run_once(registry.clone(), inputs.clone()).await;
        let want =
            crate::ids::trace_id(crate::session::Operation::PodStartup, &["uid-a-in"]).to_string();
        assert_eq!(exported, BTreeSet::from([want.clone()]));
        let status = {
            let reg = lock(&registry);
            let s = &reg.sessions[&key];
            assert_eq!(
                (s.pods_matched, s.traces_completed, s.traces_exported),
                (1, 1, 1)
            );
            assert_eq!(s.last_trace_id.as_deref(), Some(want.as_str()));
            assert!(
                s.watermark
                    .covers("uid-a-in", created + SignedDuration::from_secs(2))
            );
            crate::controller::status::render(s, None, Timestamp::now())
        };

        // A restarted controller, restored from the status the first one wrote, sees the same
        // pods again (its initial list) and sends nothing twice.
        let restored = Watermark::from_status(status.export_watermark.as_ref());
        let registry2: SharedRegistry = Arc::new(std::sync::Mutex::new(Registry::default()));
        lock(&registry2)
            .sessions
            .insert(key.clone(), session(started, restored));
        let mut again = inputs;
        // A pod that starts after the restart (Ready half a second from now) is traced.
        let fresh = Timestamp::now() - SignedDuration::from_millis(1500);
        again.push(ready_pod("a", "new", "x", fresh));
        let exported2 = run_once(registry2.clone(), again).await;
        assert_eq!(
            exported2,
            BTreeSet::from([crate::ids::trace_id(
                crate::session::Operation::PodStartup,
                &["uid-a-new"]
            )
            .to_string()])
        );
    }
}
