//! TraceSession reconciler and the in-memory registry of sessions.
//!
//! The reconciler only validates specs and moves phases (Pending → Active, → Invalid); counts,
//! latencies and export bookkeeping are updated by the engine task, and time-based completion
//! by the status writer's tick. All of them share one [`Registry`] behind a mutex whose
//! critical sections are short and never await.
//!
//! No finalizer: a session owns nothing outside itself. When it is deleted the registry entry is
//! pruned (the next tick sees it gone from the controller's store), pods stop being matched to
//! it, and traces already queued for export simply finish. Nothing needs cleaning up before
//! the object disappears, so blocking its deletion would only add a failure mode.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::latency::Latencies;
use crate::session::{ExportWatermark, Operation, SessionPhase, TraceSession, TraceSessionSpec};

/// Errors of the session reconciler.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no namespace or name (cannot happen for a namespaced CRD, but is input).
    #[error("TraceSession without {0}")]
    MissingMetadata(&'static str),
}

pub use crate::timeline::parse::{DurationError, go_duration as parse_go_duration};

/// A validated label selector.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector {
    labels: BTreeMap<String, String>,
    exprs: Vec<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// Validates a `LabelSelector` the way the API server would for built-in objects (CEL on
    /// the CRD cannot express these checks).
    pub fn compile(sel: &LabelSelector) -> Result<Selector, String> {
        let labels = sel.match_labels.clone().unwrap_or_default();
        for (k, v) in &labels {
            check_key(k)?;
            check_value(v).map_err(|e| format!("matchLabels[{k}]: {e}"))?;
        }
        let mut exprs = Vec::new();
        for (i, r) in sel.match_expressions.iter().flatten().enumerate() {
            check_key(&r.key).map_err(|e| format!("matchExpressions[{i}]: {e}"))?;
            let values: BTreeSet<String> = r.values.iter().flatten().cloned().collect();
            for v in &values {
                check_value(v).map_err(|e| format!("matchExpressions[{i}]: {e}"))?;
            }
            let e = match r.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!(
                        "matchExpressions[{i}]: operator {} needs at least one value",
                        r.operator
                    ));
                }
                "In" => Expr::In(r.key.clone(), values),
                "NotIn" => Expr::NotIn(r.key.clone(), values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!(
                        "matchExpressions[{i}]: operator {} takes no values",
                        r.operator
                    ));
                }
                "Exists" => Expr::Exists(r.key.clone()),
                "DoesNotExist" => Expr::DoesNotExist(r.key.clone()),
                other => {
                    return Err(format!(
                        "matchExpressions[{i}]: unknown operator {other:?} (want In, NotIn, Exists or DoesNotExist)"
                    ));
                }
            };
            exprs.push(e);
        }
        Ok(Selector { labels, exprs })
    }

    /// Whether a pod with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.exprs.iter().all(|e| match e {
                Expr::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
                Expr::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
                Expr::Exists(k) => labels.contains_key(k),
                Expr::DoesNotExist(k) => !labels.contains_key(k),
            })
    }
}

fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty()
            || p.len() > 253
            || !p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            }))
    {
        return Err(format!("label key {key:?} has an invalid prefix"));
    }
    if name.is_empty() || name.len() > 63 || !is_label_token(name) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(())
}

fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() || (v.len() <= 63 && is_label_token(v)) {
        Ok(())
    } else {
        Err(format!("invalid label value {v:?}"))
    }
}

fn is_label_token(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.chars().next().is_some_and(alnum)
        && s.chars().last().is_some_and(alnum)
}

/// A validated spec: what the engine task needs to match pods.
#[derive(Clone, Debug)]
pub struct ValidSpec {
    /// Which pods.
    pub selector: Selector,
    /// Active period, if limited.
    pub duration: Option<SignedDuration>,
    /// Trace limit, if any.
    pub max_traces: Option<i64>,
    /// Attributes added to every span, sorted by key.
    pub attributes: Arc<Vec<(String, String)>>,
}

/// Checks what CEL on the CRD cannot (or what an older CRD without the rules let through).
pub fn validate(spec: &TraceSessionSpec) -> Result<ValidSpec, (String, String)> {
    // Operations this controller version reconstructs; the CRD's enum may list more.
    const IMPLEMENTED: &[Operation] = &[Operation::PodStartup];
    if let Some(op) = spec.operations.iter().find(|o| !IMPLEMENTED.contains(o)) {
        return Err((
            "UnsupportedOperations".into(),
            format!("operation {op} is not supported by this podtrace version"),
        ));
    }
    let selector = Selector::compile(&spec.selector)
        .map_err(|m| ("InvalidSelector".to_string(), format!("selector: {m}")))?;
    let duration = match &spec.duration {
        None => None,
        Some(d) => match parse_go_duration(d) {
            Ok(d) if d.is_positive() => Some(d),
            Ok(_) => {
                return Err((
                    "InvalidDuration".into(),
                    format!("duration {d:?} must be positive"),
                ));
            }
            Err(e) => return Err(("InvalidDuration".into(), e.to_string())),
        },
    };
    if let Some(m) = spec.max_traces
        && m < 1
    {
        return Err((
            "InvalidMaxTraces".into(),
            format!("maxTraces {m} must be at least 1"),
        ));
    }
    for k in spec.attributes.keys() {
        if crate::session::RESERVED_ATTRIBUTE_PREFIXES
            .iter()
            .any(|p| k.starts_with(p))
        {
            return Err((
                "ReservedAttribute".into(),
                format!("attribute key {k:?} is reserved"),
            ));
        }
    }
    Ok(ValidSpec {
        selector,
        duration,
        max_traces: spec.max_traces.map(i64::from),
        attributes: Arc::new(
            spec.attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
    })
}

/// Namespace and name of a session.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Export bookkeeping of one session (see the restart-safety notes in `controller/mod.rs`).
#[derive(Clone, Debug, Default)]
pub struct Watermark {
    /// Every trace finishing at or before this was handed off.
    pub before: Option<Timestamp>,
    /// Handed-off pods finishing after `before`, with their finish time.
    pub handed: HashMap<String, Timestamp>,
    /// Submitted, not yet exported or dropped: tag → finish time.
    pub pending: HashMap<u64, Timestamp>,
}

impl Watermark {
    /// Restores from status.
    pub fn from_status(w: Option<&ExportWatermark>) -> Self {
        match w {
            None => Watermark::default(),
            Some(w) => Watermark {
                before: Some(w.before.0),
                // The finish time of restored entries is unknown, but it was at most grace +
                // margin + one status interval after `before`; five minutes bounds that
                // generously and lets them be pruned eventually.
                handed: w
                    .pods
                    .iter()
                    .map(|u| (u.clone(), w.before.0 + SignedDuration::from_secs(300)))
                    .collect(),
                pending: HashMap::new(),
            },
        }
    }

    /// Whether the trace of `uid` finishing at `finish` was already handed off.
    pub fn covers(&self, uid: &str, finish: Timestamp) -> bool {
        self.before.is_some_and(|b| finish <= b) || self.handed.contains_key(uid)
    }

    /// Moves `before` on as far as is safe: not past any pending trace, and not past
    /// `frontier` (the earliest finish time a trace not yet emitted by the engine can have).
    /// Returns whether it moved.
    pub fn advance(&mut self, frontier: Timestamp) -> bool {
        let mut target = frontier;
        if let Some(min_pending) = self.pending.values().min() {
            target = target.min(*min_pending - SignedDuration::from_nanos(1));
        }
        if self.before.is_some_and(|b| target <= b) {
            return false;
        }
        self.before = Some(target);
        self.handed.retain(|_, f| *f > target);
        true
    }

    /// The status form.
    pub fn to_status(&self) -> Option<ExportWatermark> {
        let before = self.before?;
        let mut pods: Vec<String> = self.handed.keys().cloned().collect();
        pods.sort();
        Some(ExportWatermark {
            before: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(before),
            pods,
        })
    }
}

/// Everything podtrace tracks about one session.
#[derive(Debug)]
pub struct SessionState {
    /// `metadata.uid` (a recreated session with the same name starts afresh).
    pub uid: String,
    /// `metadata.generation` last reconciled.
    pub generation: Option<i64>,
    /// Current phase.
    pub phase: SessionPhase,
    /// (reason, message) of the Ready condition when Invalid.
    pub invalid: Option<(String, String)>,
    /// Validated spec (None while Invalid).
    pub spec: Option<ValidSpec>,
    /// When it became Active.
    pub started_at: Option<Timestamp>,
    /// When it became Completed.
    pub completed_at: Option<Timestamp>,
    /// Pods matched.
    pub pods_matched: i64,
    /// Traces completed.
    pub traces_completed: i64,
    /// Traces exported.
    pub traces_exported: i64,
    /// Traces dropped.
    pub traces_dropped: i64,
    /// Last trace ID.
    pub last_trace_id: Option<String>,
    /// Latency accumulator (since this controller process started).
    pub latencies: Latencies,
    /// Restart bookkeeping.
    pub watermark: Watermark,
    /// Status differs from what was last written.
    pub dirty: bool,
    /// A change worth writing soon (phase, watermark) rather than at the normal pace.
    pub urgent: bool,
    /// When status was last written.
    pub last_write: Option<tokio::time::Instant>,
}

impl SessionState {
    fn from_object(ts: &TraceSession) -> Self {
        let st = ts.status.clone().unwrap_or_default();
        let latencies = Latencies::default();
        SessionState {
            uid: ts.uid().unwrap_or_default(),
            generation: None,
            phase: st.phase.unwrap_or_default(),
            invalid: None,
            spec: None,
            started_at: st.started_at.map(|t| t.0),
            completed_at: st.completed_at.map(|t| t.0),
            pods_matched: st.pods_matched,
            traces_completed: st.traces_completed,
            traces_exported: st.traces_exported,
            traces_dropped: st.traces_dropped,
            last_trace_id: st.last_trace_id,
            latencies,
            watermark: Watermark::from_status(st.export_watermark.as_ref()),
            dirty: true,
            urgent: true,
            last_write: None,
        }
    }

    /// Whether this session takes new traces.
    pub fn accepting(&self) -> bool {
        self.phase == SessionPhase::Active
            && self
                .spec
                .as_ref()
                .is_some_and(|s| s.max_traces.is_none_or(|m| self.traces_completed < m))
    }

    /// Moves to Completed.
    pub fn complete(&mut self, now: Timestamp) {
        if self.phase == SessionPhase::Active {
            self.phase = SessionPhase::Completed;
            self.completed_at = Some(now);
            self.dirty = true;
            self.urgent = true;
        }
    }
}

/// All sessions podtrace knows, by key.
#[derive(Debug, Default)]
pub struct Registry {
    /// Sessions.
    pub sessions: BTreeMap<SessionKey, SessionState>,
}

/// The registry shared by the reconciler, the engine task and the status writer.
pub type SharedRegistry = Arc<Mutex<Registry>>;

/// Locks the registry; a panic elsewhere while holding it must not stop the controller, and
/// the data is counters that stay meaningful.
pub fn lock(reg: &SharedRegistry) -> std::sync::MutexGuard<'_, Registry> {
    reg.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// Applies a (re)observed TraceSession. Returns the new phase.
    pub fn upsert(&mut self, ts: &TraceSession, now: Timestamp) -> Result<SessionPhase, Error> {
        let key = SessionKey {
            namespace: ts.namespace().ok_or(Error::MissingMetadata("namespace"))?,
            name: ts
                .metadata
                .name
                .clone()
                .ok_or(Error::MissingMetadata("name"))?,
        };
        let uid = ts.uid().unwrap_or_default();
        if self.sessions.get(&key).is_some_and(|s| s.uid != uid) {
            self.sessions.remove(&key);
        }
        let state = self
            .sessions
            .entry(key)
            .or_insert_with(|| SessionState::from_object(ts));
        let generation = ts.metadata.generation;
        if state.generation == generation && state.spec.is_some() {
            return Ok(state.phase);
        }
        if state.generation == generation && state.invalid.is_some() {
            return Ok(state.phase);
        }
        state.generation = generation;
        state.dirty = true;
        state.urgent = true;
        match validate(&ts.spec) {
            Err(reason) => {
                state.spec = None;
                state.invalid = Some(reason);
                if state.phase != SessionPhase::Completed {
                    state.phase = SessionPhase::Invalid;
                }
            }
            Ok(spec) => {
                state.invalid = None;
                state.spec = Some(spec);
                match state.phase {
                    SessionPhase::Pending | SessionPhase::Invalid => {
                        state.phase = SessionPhase::Active;
                        state.started_at.get_or_insert(now);
                    }
                    SessionPhase::Active => {
                        state.started_at.get_or_insert(now);
                    }
                    SessionPhase::Completed => {}
                }
            }
        }
        Ok(state.phase)
    }

    /// Time-based transitions: sessions whose duration elapsed complete.
    pub fn tick(&mut self, now: Timestamp) {
        for s in self.sessions.values_mut() {
            let expired = match (&s.spec, s.started_at) {
                (Some(spec), Some(start)) => spec.duration.is_some_and(|d| start + d <= now),
                _ => false,
            };
            if expired {
                s.complete(now);
            }
        }
    }

    /// Forgets sessions that no longer exist.
    pub fn retain_existing(&mut self, exists: impl Fn(&SessionKey) -> bool) {
        self.sessions.retain(|k, _| exists(k));
    }

    /// Sessions that would follow a pod: Active, same namespace, selector matches, and the pod
    /// created no earlier than `slack` before the session started.
    pub fn matching(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        created: Option<Timestamp>,
        slack: SignedDuration,
    ) -> Vec<SessionKey> {
        self.sessions
            .range(
                SessionKey {
                    namespace: namespace.to_string(),
                    name: String::new(),
                }..,
            )
            .take_while(|(k, _)| k.namespace == namespace)
            .filter(|(_, s)| s.accepting())
            .filter(|(_, s)| match (s.started_at, created) {
                (Some(start), Some(c)) => c >= start - slack,
                _ => false,
            })
            .filter(|(_, s)| {
                s.spec
                    .as_ref()
                    .is_some_and(|sp| sp.selector.matches(labels))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether any session in the namespace is taking traces.
    pub fn namespace_active(&self, namespace: &str) -> bool {
        self.sessions
            .iter()
            .any(|(k, s)| k.namespace == namespace && s.accepting())
    }

    /// Sessions in phase Active.
    pub fn active_count(&self) -> usize {
        self.sessions
            .values()
            .filter(|s| s.phase == SessionPhase::Active)
            .count()
    }
}

/// What the reconciler needs.
#[derive(Debug)]
pub struct Context {
    /// Shared session state.
    pub registry: SharedRegistry,
    /// Wakes the status writer after a phase change.
    pub status_wake: Arc<tokio::sync::Notify>,
}

/// Reconciles one TraceSession: validate, move its phase, let the status writer publish it.
pub async fn reconcile(ts: Arc<TraceSession>, ctx: Arc<Context>) -> Result<Action, Error> {
    let phase = lock(&ctx.registry).upsert(&ts, Timestamp::now())?;
    ctx.status_wake.notify_one();
    tracing::debug!(session = %ts.name_any(), namespace = ?ts.namespace(), ?phase, "reconciled");
    // Changes to the object trigger reconciles; time-based completion is the status
    // writer's tick, so a slow periodic requeue is only a safety net.
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Retries failed reconciles with a fixed delay (they can only fail on malformed metadata).
pub fn error_policy(_ts: Arc<TraceSession>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "reconcile failed");
    Action::requeue(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("90s"), Ok(SignedDuration::from_secs(90)));
        assert_eq!(
            parse_go_duration("1h30m"),
            Ok(SignedDuration::from_secs(5400))
        );
        assert_eq!(
            parse_go_duration("1.5h"),
            Ok(SignedDuration::from_secs(5400))
        );
        assert_eq!(
            parse_go_duration("250ms"),
            Ok(SignedDuration::from_millis(250))
        );
        assert_eq!(parse_go_duration("-2s"), Ok(SignedDuration::from_secs(-2)));
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("10x").is_err());
        assert!(parse_go_duration("1..5s").is_err());
        assert!(parse_go_duration("s").is_err());
    }

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn selector_semantics() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![
                req("tier", "In", &["a", "b"]),
                req("canary", "DoesNotExist", &[]),
            ]),
        };
        let s = Selector::compile(&sel).expect("valid");
        let l = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(s.matches(&l(&[("app", "web"), ("tier", "b")])));
        assert!(!s.matches(&l(&[("app", "web"), ("tier", "c")])));
        assert!(!s.matches(&l(&[("app", "web"), ("tier", "a"), ("canary", "")])));
        assert!(!s.matches(&l(&[("tier", "a")])));
        assert!(
            Selector::compile(&LabelSelector::default())
                .expect("empty")
                .matches(&l(&[]))
        );
    }

    #[test]
    fn selector_errors_are_readable() {
        let bad_op = LabelSelector {
            match_expressions: Some(vec![req("a", "Equals", &["x"])]),
            ..Default::default()
        };
        let e = Selector::compile(&bad_op).expect_err("bad operator");
        assert!(e.contains("unknown operator \"Equals\""), "{e}");
        let no_values = LabelSelector {
            match_expressions: Some(vec![req("a", "In", &[])]),
            ..Default::default()
        };
        assert!(
            Selector::compile(&no_values)
                .expect_err("no values")
                .contains("needs at least one value")
        );
        let exists_values = LabelSelector {
            match_expressions: Some(vec![req("a", "Exists", &["x"])]),
            ..Default::default()
        };
        assert!(Selector::compile(&exists_values).is_err());
        let bad_key = LabelSelector {
            match_labels: Some([("-a".to_string(), "x".to_string())].into()),
            ..Default::default()
        };
        assert!(Selector::compile(&bad_key).is_err());
    }

    fn session(name: &str, spec: serde_json::Value, generation: i64) -> TraceSession {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "podtrace.dev/v1alpha1",
            "kind": "TraceSession",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "generation": generation},
            "spec": spec,
        }))
        .expect("session")
    }

    #[test]
    fn phases_follow_spec_and_time() {
        let t0 = Timestamp::from_second(1_800_000_000).expect("ts");
        let mut reg = Registry::default();
        let timed = session(
            "timed",
            serde_json::json!({"operations": ["PodStartup"], "selector": {}, "duration": "90s"}),
            1,
        );
        assert_eq!(
            reg.upsert(&timed, t0).expect("upsert"),
            SessionPhase::Active
        );
        let key = SessionKey {
            namespace: "ns".into(),
            name: "timed".into(),
        };
        assert_eq!(reg.sessions[&key].started_at, Some(t0));
        reg.tick(t0 + SignedDuration::from_secs(89));
        assert_eq!(reg.sessions[&key].phase, SessionPhase::Active);
        reg.tick(t0 + SignedDuration::from_secs(90));
        assert_eq!(reg.sessions[&key].phase, SessionPhase::Completed);
        assert_eq!(
            reg.sessions[&key].completed_at,
            Some(t0 + SignedDuration::from_secs(90))
        );
        assert!(!reg.sessions[&key].accepting());

        let bad = session(
            "bad",
            serde_json::json!({"operations": ["PodStartup"], "selector": {"matchExpressions": [
                {"key": "app", "operator": "Equals", "values": ["x"]}]}}),
            1,
        );
        assert_eq!(reg.upsert(&bad, t0).expect("upsert"), SessionPhase::Invalid);
        let bkey = SessionKey {
            namespace: "ns".into(),
            name: "bad".into(),
        };
        let (reason, message) = reg.sessions[&bkey].invalid.clone().expect("reason");
        assert_eq!(reason, "InvalidSelector");
        assert!(message.contains("Equals"), "{message}");
        // Fixing the spec (new generation) activates it.
        let fixed = session(
            "bad",
            serde_json::json!({"operations": ["PodStartup"], "selector": {"matchLabels": {"app": "x"}}}),
            2,
        );
        assert_eq!(
            reg.upsert(&fixed, t0).expect("upsert"),
            SessionPhase::Active
        );
        let labels = BTreeMap::from([("app".to_string(), "x".to_string())]);
        let slack = SignedDuration::from_secs(2);
        assert_eq!(
            reg.matching("ns", &labels, Some(t0), slack),
            vec![bkey.clone()]
        );
        assert!(
            reg.matching(
                "ns",
                &labels,
                Some(t0 - SignedDuration::from_secs(3)),
                slack
            )
            .is_empty()
        );
        assert!(reg.matching("other", &labels, Some(t0), slack).is_empty());

        let capped = session(
            "capped",
            serde_json::json!({"operations": ["PodStartup"], "selector": {}, "maxTraces": 2}),
            1,
        );
        reg.upsert(&capped, t0).expect("upsert");
        let ckey = SessionKey {
            namespace: "ns".into(),
            name: "capped".into(),
        };
        let s = reg.sessions.get_mut(&ckey).expect("capped");
        s.traces_completed = 2;
        assert!(!s.accepting(), "no traces beyond maxTraces");

        reg.retain_existing(|k| k.name != "capped");
        assert!(
            !reg.sessions.contains_key(&ckey),
            "deleted sessions are forgotten"
        );
    }

    #[test]
    fn watermark_never_passes_pending_or_frontier() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).expect("ts");
        let mut w = Watermark::default();
        w.pending.insert(1, t(10));
        assert!(w.advance(t(20)));
        assert_eq!(w.before, Some(t(10) - SignedDuration::from_nanos(1)));
        assert!(!w.covers("p1", t(10)));
        w.pending.remove(&1);
        w.handed.insert("p1".into(), t(10));
        w.handed.insert("p2".into(), t(30));
        assert!(w.advance(t(20)));
        assert_eq!(w.before, Some(t(20)));
        assert!(w.covers("p1", t(10)) && w.covers("p2", t(30)) && !w.covers("p3", t(25)));
        assert!(
            !w.handed.contains_key("p1"),
            "entries under the watermark are pruned"
        );
        assert!(!w.advance(t(15)), "never moves back");
        let st = w.to_status().expect("status");
        assert_eq!(st.pods, vec!["p2".to_string()]);
        let mut back = Watermark::from_status(Some(&st));
        assert!(back.covers("p2", t(30)) && back.covers("x", t(19)) && !back.covers("x", t(21)));
        assert!(back.advance(t(60)));
        assert!(
            back.covers("p2", t(30)),
            "restored entries outlive a small advance"
        );
    }
}
