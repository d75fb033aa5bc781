//! Publishing session state to `TraceSession` status.
//!
//! One writer task owns every status write, coalescing changes per session: a session with
//! only counter changes is written at most every [`NORMAL_INTERVAL`]; phase changes and export
//! hand-offs (which move the restart watermark) go out after at most [`URGENT_INTERVAL`],
//! because the time between a trace's export and the write recording it is the window in
//! which a SIGKILL leads to that trace being sent twice. Writes are JSON merge patches of the
//! status subresource; podtrace owns the whole status, so no field manager dance is needed.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::watch;

use super::sessions::{SessionKey, SessionState, SharedRegistry, lock};
use crate::session::{SessionPhase, TraceSession, TraceSessionStatus};
use crate::telemetry::Metrics;

/// Minimum time between two writes of one session's counters.
pub const NORMAL_INTERVAL: Duration = Duration::from_secs(2);
/// Minimum time between two writes of one session after a phase change or hand-off.
pub const URGENT_INTERVAL: Duration = Duration::from_millis(500);

/// The status a session's state maps to.
pub fn render(
    s: &SessionState,
    previous: Option<&Condition>,
    now: Timestamp,
) -> TraceSessionStatus {
    let (status, reason, message) = match (s.phase, &s.invalid) {
        (SessionPhase::Invalid, Some((r, m))) => ("False", r.clone(), m.clone()),
        (SessionPhase::Invalid, None) => ("False", "Invalid".into(), "the spec is invalid".into()),
        (SessionPhase::Active, _) => ("True", "Active".into(), "following pod startups".into()),
        (SessionPhase::Completed, _) => (
            "True",
            "Completed".into(),
            "duration elapsed or maxTraces reached".into(),
        ),
        (SessionPhase::Pending, _) => ("False", "Pending".into(), "not tracing yet".into()),
    };
    // lastTransitionTime only moves when the status flips, as for built-in conditions.
    let last_transition = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let ready = Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason,
        message,
        observed_generation: s.generation,
        last_transition_time: last_transition,
    };
    let latency = (s.latencies.traces() > 0).then(|| s.latencies.to_status());
    TraceSessionStatus {
        phase: Some(s.phase),
        conditions: vec![ready],
        observed_generation: s.generation,
        started_at: s.started_at.map(Time),
        completed_at: s.completed_at.map(Time),
        pods_matched: s.pods_matched,
        traces_completed: s.traces_completed,
        traces_exported: s.traces_exported,
        traces_dropped: s.traces_dropped,
        last_trace_id: s.last_trace_id.clone(),
        latency,
        export_watermark: s.watermark.to_status(),
    }
}

/// Writes statuses until `stop` fires, then once more for everything dirty (`final_write`).
pub async fn run_writer(
    client: Client,
    registry: SharedRegistry,
    store: kube::runtime::reflector::Store<TraceSession>,
    wake: Arc<tokio::sync::Notify>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = stop.changed() => true,
            _ = tick.tick() => false,
            _ = wake.notified() => false,
        };
        if stopping {
            return;
        }
        flush(&client, &registry, &store, &metrics, false).await;
    }
}

/// Writes every session whose status is due (all dirty ones when `all`).
pub async fn flush(
    client: &Client,
    registry: &SharedRegistry,
    store: &kube::runtime::reflector::Store<TraceSession>,
    metrics: &Metrics,
    all: bool,
) {
    let now = Timestamp::now();
    let due: Vec<(SessionKey, TraceSessionStatus)> = {
        let mut reg = lock(registry);
        reg.tick(now);
        // Deleted sessions stop being traced: their entries go once the store no longer has
        // them (the store is complete: the controller waited for it before starting).
        reg.retain_existing(|k| {
            store
                .get(&kube::runtime::reflector::ObjectRef::new(&k.name).within(&k.namespace))
                .is_some()
        });
        let instant = tokio::time::Instant::now();
        reg.sessions
            .iter_mut()
            .filter(|(_, s)| s.dirty)
            .filter(|(_, s)| {
                let since = s.last_write.map(|t| instant.duration_since(t));
                all || since.is_none_or(|d| {
                    d >= if s.urgent {
                        URGENT_INTERVAL
                    } else {
                        NORMAL_INTERVAL
                    }
                })
            })
            .map(|(k, s)| {
                let obj = store
                    .get(&kube::runtime::reflector::ObjectRef::new(&k.name).within(&k.namespace));
                let prev = obj
                    .as_ref()
                    .and_then(|o| o.status.as_ref())
                    .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Ready"))
                    .cloned();
                s.dirty = false;
                s.urgent = false;
                s.last_write = Some(instant);
                (k.clone(), render(s, prev.as_ref(), now))
            })
            .collect()
    };
    for (key, status) in due {
        let api: Api<TraceSession> = Api::namespaced(client.clone(), &key.namespace);
        let patch = serde_json::json!({ "status": status });
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {
                lock(registry).sessions.remove(&key);
            }
            Err(e) => {
                metrics.status_write_errors.inc();
                tracing::warn!(session = %key, error = %e, "status write failed; will retry");
                if let Some(s) = lock(registry).sessions.get_mut(&key) {
                    s.dirty = true;
                    s.urgent = true;
                }
            }
        }
    }
}
