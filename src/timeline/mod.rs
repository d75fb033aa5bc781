//! The reconstruction engine: observations in, finished traces out.
//!
//! Pure: no I/O, no clock reads. Time comes from the objects themselves and from the
//! observation times carried with each event; `advance` lets a live caller move time on
//! when nothing arrives. The trace model it implements is written down in
//! `docs/trace-model.md`.

pub mod parse;
pub mod pod_startup;

use std::collections::{BTreeSet, HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};

use crate::observe::{Action, EventFacts, NodeFacts, Object, Observation, PodFacts};
use crate::trace::Trace;

use pod_startup::build;
use pod_startup::state::{self, PodState};

/// Engine settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long to wait after Ready (or failure) for late events before finishing a trace.
    pub grace: SignedDuration,
    /// Finish a startup as timed out when it has not ended this long after creation.
    pub timeout: SignedDuration,
    /// Pods whose startup ended before this instant are not traced (restart safety: the
    /// controller sets it so it does not re-send what it already exported). None: trace all.
    pub ignore_finished_before: Option<Timestamp>,
    /// Upper bound on events buffered for pods not (yet) seen.
    pub max_orphan_events: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grace: SignedDuration::from_secs(10),
            timeout: SignedDuration::from_secs(15 * 60),
            ignore_finished_before: None,
            max_orphan_events: 10_000,
        }
    }
}

/// Counters the engine keeps about its own input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Observations consumed.
    pub observations: u64,
    /// Events that matched no pod before they expired.
    pub orphan_events_dropped: u64,
    /// Duplicate events ignored.
    pub duplicate_events: u64,
    /// Events or pod updates that arrived after their pod's trace was finished.
    pub late_observations: u64,
    /// Traces finished (emitted or suppressed by `ignore_finished_before`).
    pub traces_finished: u64,
    /// Traces suppressed by `ignore_finished_before`.
    pub traces_ignored: u64,
}

/// How long events for a pod not yet seen are kept. Events normally trail or closely follow
/// their pod; a short bound keeps unrelated namespace noise from filling the buffer.
const ORPHAN_TTL: SignedDuration = SignedDuration::from_secs(120);
/// Upper bound on remembered finished pod UIDs (on top of the time bound).
const MAX_FINISHED_REMEMBERED: usize = 200_000;

#[derive(Debug, Default)]
struct Orphans {
    by_pod: HashMap<String, Vec<EventFacts>>,
    queue: VecDeque<(Timestamp, String, String)>,
    count: usize,
}

/// Reconstructs pod startups from observations.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    stats: Stats,
    now: Option<Timestamp>,
    pods: HashMap<String, PodState>,
    by_name: HashMap<(String, String), String>,
    deadlines: BTreeSet<(Timestamp, String)>,
    finished: HashMap<String, Timestamp>,
    finished_queue: VecDeque<(Timestamp, String)>,
    orphans: Orphans,
    nodes: HashMap<String, NodeFacts>,
}

fn pod_times(p: &PodFacts) -> impl Iterator<Item = Timestamp> + '_ {
    p.created
        .into_iter()
        .chain(p.conditions.iter().filter_map(|c| c.last_transition))
}

fn event_times(e: &EventFacts) -> impl Iterator<Item = Timestamp> + '_ {
    [
        e.event_time,
        e.first_timestamp,
        e.last_timestamp,
        e.series_last_observed,
    ]
    .into_iter()
    .flatten()
}

impl Engine {
    /// A new engine with no pods in flight.
    pub fn new(config: Config) -> Self {
        Engine {
            config,
            stats: Stats::default(),
            now: None,
            pods: HashMap::new(),
            by_name: HashMap::new(),
            deadlines: BTreeSet::new(),
            finished: HashMap::new(),
            finished_queue: VecDeque::new(),
            orphans: Orphans::default(),
            nodes: HashMap::new(),
        }
    }

    fn bump_now(&mut self, t: Timestamp) {
        if self.now.is_none_or(|n| t > n) {
            self.now = Some(t);
        }
    }

    /// Feeds one observation; returns traces it finished.
    pub fn observe(&mut self, obs: Observation) -> Vec<Trace> {
        self.stats.observations += 1;
        if let Some(t) = obs.observed_at {
            self.bump_now(t);
        }
        let times: Vec<Timestamp> = match &obs.object {
            Object::Pod(p) => pod_times(p).collect(),
            Object::Event(e) => event_times(e).collect(),
            Object::Node(_) => Vec::new(),
        };
        // Object timestamps come from other components' clocks. With an observation time they
        // may move engine time at most `grace` past it, so one kubelet with a skewed clock (or
        // one bogus timestamp) cannot finish every pod in flight as timed out.
        let cap = obs
            .observed_at
            .map(|o| o.checked_add(self.config.grace).unwrap_or(Timestamp::MAX));
        times
            .into_iter()
            .for_each(|t| self.bump_now(cap.map_or(t, |c| t.min(c))));
        // Finish what this observation's time makes due before applying it, so input that
        // arrives after a trace's grace period counts as late instead of slipping in.
        let mut out = match self.now {
            Some(now) => self.finish_due(now),
            None => Vec::new(),
        };
        match obs.object {
            Object::Pod(p) => {
                self.on_pod(obs.action, *p, obs.observed_at);
            }
            Object::Event(mut e) => {
                if obs.action != Action::Deleted {
                    // Redacted on the way in, so no span, status or log downstream can see it.
                    if let Some(m) = parse::redact_event_message(&e.message) {
                        e.message = m;
                    }
                    self.on_event(*e);
                }
            }
            Object::Node(n) => {
                if obs.action == Action::Deleted {
                    self.nodes.remove(&n.name);
                } else {
                    self.nodes.insert(n.name.clone(), *n);
                }
            }
        }
        if let Some(now) = self.now {
            out.extend(self.finish_due(now));
        }
        out
    }

    fn on_pod(&mut self, action: Action, pod: PodFacts, observed_at: Option<Timestamp>) {
        let uid = pod.uid.clone();
        if self.finished.contains_key(&uid) {
            self.stats.late_observations += 1;
            return;
        }
        let now = self.now.or(pod.created).unwrap_or(Timestamp::UNIX_EPOCH);
        if !self.pods.contains_key(&uid) {
            let mut st = PodState::new(pod.clone(), now);
            if let Some(events) = self.orphans.by_pod.remove(&uid) {
                self.orphans.count = self.orphans.count.saturating_sub(events.len());
                for e in events {
                    if !st.merge_event(e) {
                        self.stats.duplicate_events += 1;
                    }
                }
            }
            self.by_name
                .insert((pod.namespace.clone(), pod.name.clone()), uid.clone());
            self.pods.insert(uid.clone(), st);
        }
        if let Some(st) = self.pods.get_mut(&uid) {
            st.merge_pod(action, pod, observed_at, now);
        }
        // A startup that ended before `ignore_finished_before` can only end earlier with more
        // input (earliest end wins), so drop it now instead of holding it through the grace.
        if let (Some(before), Some(st)) = (self.config.ignore_finished_before, self.pods.get(&uid))
            && st.end().is_some_and(|(_, (end, _))| end < before)
        {
            let _suppressed = self.finish(&uid, now, false);
            return;
        }
        self.reschedule(&uid);
    }

    fn on_event(&mut self, e: EventFacts) {
        if e.object_kind != "Pod" {
            return;
        }
        let ns = e
            .object_namespace
            .clone()
            .unwrap_or_else(|| e.namespace.clone());
        let uid = match &e.object_uid {
            Some(u) => Some(u.clone()),
            None => self.by_name.get(&(ns, e.object_name.clone())).cloned(),
        };
        let Some(uid) = uid else {
            self.stats.orphan_events_dropped += 1;
            return;
        };
        if self.finished.contains_key(&uid) {
            self.stats.late_observations += 1;
            return;
        }
        if let Some(st) = self.pods.get_mut(&uid) {
            if !st.merge_event(e) {
                self.stats.duplicate_events += 1;
            }
            self.reschedule(&uid);
            return;
        }
        self.buffer_orphan(uid, e);
    }

    fn buffer_orphan(&mut self, uid: String, e: EventFacts) {
        if self.config.max_orphan_events == 0 {
            self.stats.orphan_events_dropped += 1;
            return;
        }
        // A newer version or a re-delivery of an event already buffered replaces it in place:
        // it takes no new slot, so it neither evicts another event nor queues a second expiry
        // entry (re-lists after a 410 re-deliver every event; the queue would grow with them).
        if let Some(old) = self
            .orphans
            .by_pod
            .get_mut(&uid)
            .and_then(|list| list.iter_mut().find(|o| o.uid == e.uid))
        {
            if state::event_supersedes(&e, old) {
                *old = e;
            } else {
                self.stats.duplicate_events += 1;
            }
            return;
        }
        // Full: evict the oldest buffered event, so fresh events (most likely to belong to a
        // pod about to appear) win over stale noise.
        while self.orphans.count >= self.config.max_orphan_events {
            let Some((_, pod, ev)) = self.orphans.queue.pop_front() else {
                break;
            };
            if self.remove_orphan(&pod, &ev) {
                self.stats.orphan_events_dropped += 1;
            }
        }
        let now = self.now.unwrap_or(Timestamp::UNIX_EPOCH);
        self.orphans
            .queue
            .push_back((now, uid.clone(), e.uid.clone()));
        self.orphans.by_pod.entry(uid).or_default().push(e);
        self.orphans.count += 1;
    }

    fn remove_orphan(&mut self, pod: &str, event_uid: &str) -> bool {
        let Some(list) = self.orphans.by_pod.get_mut(pod) else {
            return false;
        };
        let before = list.len();
        list.retain(|e| e.uid != event_uid);
        let removed = before - list.len();
        if list.is_empty() {
            self.orphans.by_pod.remove(pod);
        }
        self.orphans.count = self.orphans.count.saturating_sub(removed);
        removed > 0
    }

    fn expire_orphans(&mut self, now: Timestamp) {
        while let Some((t, _, _)) = self.orphans.queue.front() {
            if t.checked_add(ORPHAN_TTL).is_ok_and(|due| due > now) {
                break;
            }
            let Some((_, pod, ev)) = self.orphans.queue.pop_front() else {
                break;
            };
            if self.remove_orphan(&pod, &ev) {
                self.stats.orphan_events_dropped += 1;
            }
        }
    }

    fn remember_finished(&mut self, uid: String, now: Timestamp) {
        if self.finished.insert(uid.clone(), now).is_none() {
            self.finished_queue.push_back((now, uid));
        }
        while self.finished_queue.len() > MAX_FINISHED_REMEMBERED {
            if let Some((_, u)) = self.finished_queue.pop_front() {
                self.finished.remove(&u);
            }
        }
    }

    fn expire_finished(&mut self, now: Timestamp) {
        let keep = self
            .config
            .timeout
            .checked_add(self.config.grace)
            .unwrap_or(self.config.timeout);
        while let Some((t, _)) = self.finished_queue.front() {
            if t.checked_add(keep).is_ok_and(|due| due > now) {
                break;
            }
            if let Some((_, u)) = self.finished_queue.pop_front() {
                self.finished.remove(&u);
            }
        }
    }

    /// Recomputes a pod's deadline: end + grace once the end is known, else creation + timeout.
    fn reschedule(&mut self, uid: &str) {
        let Some(st) = self.pods.get_mut(uid) else {
            return;
        };
        let now = self.now.unwrap_or(st.first_seen);
        let due = match st.end() {
            Some((_, (end, _))) => {
                let learned = *st.end_learned.get_or_insert(now);
                end.max(learned)
                    .checked_add(self.config.grace)
                    .unwrap_or(Timestamp::MAX)
            }
            None => {
                st.end_learned = None;
                st.pod
                    .created
                    .unwrap_or(st.first_seen)
                    .checked_add(self.config.timeout)
                    .unwrap_or(Timestamp::MAX)
            }
        };
        if due != st.due || !self.deadlines.contains(&(st.due, uid.to_string())) {
            self.deadlines.remove(&(st.due, uid.to_string()));
            st.due = due;
            self.deadlines.insert((due, uid.to_string()));
        }
    }

    fn finish_due(&mut self, now: Timestamp) -> Vec<Trace> {
        self.expire_orphans(now);
        self.expire_finished(now);
        let mut out = Vec::new();
        while let Some((due, uid)) = self.deadlines.first().cloned() {
            if due > now {
                break;
            }
            self.deadlines.remove(&(due, uid.clone()));
            if let Some(t) = self.finish(&uid, now, false) {
                out.push(t);
            }
        }
        out
    }

    /// Removes a pod's state and builds its trace (None when suppressed).
    fn finish(&mut self, uid: &str, now: Timestamp, draining: bool) -> Option<Trace> {
        let st = self.pods.remove(uid)?;
        self.deadlines.remove(&(st.due, uid.to_string()));
        self.by_name
            .remove(&(st.pod.namespace.clone(), st.pod.name.clone()));
        self.remember_finished(uid.to_string(), now);
        self.stats.traces_finished += 1;
        let (outcome, end) = match st.end() {
            Some((o, s)) => (o, s),
            None if draining => (
                pod_startup::INCOMPLETE,
                (st.last_activity.unwrap_or(now), "lastSeen"),
            ),
            None => {
                let start = st.pod.created.unwrap_or(st.first_seen);
                (
                    pod_startup::TIMED_OUT,
                    (
                        start.checked_add(self.config.timeout).unwrap_or(now),
                        "timeout",
                    ),
                )
            }
        };
        if let Some(before) = self.config.ignore_finished_before {
            // Only an end the input showed counts; a timeout or an incomplete trace may still
            // be re-sent by a later controller, which is the safe direction.
            let ended = [
                pod_startup::READY,
                pod_startup::FAILED,
                pod_startup::DELETED,
            ]
            .iter()
            .any(|o| o.label == outcome.label);
            if ended && end.0 < before {
                self.stats.traces_ignored += 1;
                return None;
            }
        }
        Some(build::build(&st, outcome, end, &self.nodes))
    }

    /// Moves time on to `now` (live ticks); returns traces whose grace period or timeout ended.
    pub fn advance(&mut self, now: Timestamp) -> Vec<Trace> {
        self.bump_now(now);
        match self.now {
            Some(n) => self.finish_due(n),
            None => Vec::new(),
        }
    }

    /// Ends the input: finishes every startup still in flight as it stands.
    pub fn drain(&mut self) -> Vec<Trace> {
        let now = self.now.unwrap_or(Timestamp::UNIX_EPOCH);
        let mut uids: Vec<(Timestamp, String)> =
            self.pods.iter().map(|(u, s)| (s.due, u.clone())).collect();
        uids.sort();
        let out = uids
            .into_iter()
            .filter_map(|(_, u)| self.finish(&u, now, true))
            .collect();
        let dropped = self.orphans.count as u64;
        self.stats.orphan_events_dropped += dropped;
        self.orphans = Orphans::default();
        out
    }

    /// Pods whose startup is being followed.
    pub fn in_flight(&self) -> usize {
        self.pods.len()
    }

    /// Input counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Engine time: the latest observation time or object timestamp seen.
    pub fn now(&self) -> Option<Timestamp> {
        self.now
    }

    /// Events buffered for pods not yet seen.
    pub fn orphan_events(&self) -> usize {
        self.orphans.count
    }

    /// Finished pod UIDs still remembered (to ignore late input).
    pub fn finished_remembered(&self) -> usize {
        self.finished.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Action;

    fn orphan_event(uid: &str, count: i32) -> Observation {
        let t: Timestamp = "2026-01-01T00:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        Observation {
            action: Action::Added,
            object: Object::Event(Box::new(EventFacts {
                uid: uid.into(),
                namespace: "ns".into(),
                object_kind: "Pod".into(),
                object_uid: Some("pod-not-seen-yet".into()),
                object_name: "p".into(),
                reason: "Pulling".into(),
                first_timestamp: Some(t),
                last_timestamp: Some(t),
                count,
                ..EventFacts::default()
            })),
            observed_at: Some(t),
        }
    }

    #[test]
    fn redelivered_orphans_take_no_slot_and_evict_nothing() {
        let mut engine = Engine::new(Config {
            max_orphan_events: 2,
            ..Config::default()
        });
        engine.observe(orphan_event("a", 1));
        engine.observe(orphan_event("b", 1));
        // Re-deliveries and count updates of buffered events while the buffer is full.
        for count in [1, 2, 2, 3] {
            engine.observe(orphan_event("a", count));
            engine.observe(orphan_event("b", count));
        }
        assert_eq!(engine.orphan_events(), 2);
        assert_eq!(
            engine.stats().orphan_events_dropped,
            0,
            "an update evicted a buffered event"
        );
        assert_eq!(
            engine.orphans.queue.len(),
            2,
            "one expiry entry per buffered event"
        );
        assert_eq!(engine.stats().duplicate_events, 4);
        assert_eq!(
            engine
                .orphans
                .by_pod
                .get("pod-not-seen-yet")
                .map(|l| l.iter().map(|e| e.count).collect::<Vec<_>>()),
            Some(vec![3, 3])
        );
    }
}
