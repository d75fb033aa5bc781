//! Pod, Event and Node watches, reduced to engine observations at the edge.
//!
//! Each watch is a kube-runtime `watcher` with the default backoff: it lists, then watches
//! with bookmarks, re-lists after a 410 Gone, and retries errors (which are logged here). No
//! reflector store is kept: every object is reduced to its `observe` facts the moment it
//! arrives and the full object dropped, so memory follows the pods in flight rather than the
//! size of the cluster. Each observation is stamped with `Timestamp::now()` on receipt — the
//! one impure input of the otherwise pure engine.
//!
//! Events are read through core/v1 only, with the field selector `involvedObject.kind=Pod`.
//! events.k8s.io/v1 is another view of the same objects: reading both would double every
//! event, and core/v1 already carries what the extra API would add — the scheduler's events
//! (written through events.k8s.io/v1) come back through core/v1 with their microsecond
//! `eventTime`, and the kubelet writes core/v1 events with second precision either way.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, Pod};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::observe::{Action, EventFacts, NodeFacts, Object, Observation, PodFacts};
use crate::telemetry::Metrics;

/// What the watches send to the engine task.
#[derive(Debug)]
pub enum Input {
    /// A reduced watch event.
    Observation(Observation),
    /// The initial list of a watch is complete.
    Synced(&'static str),
}

/// Starts the Pod, Event and Node watches (Pods and Events in `namespace` only, when given).
/// They stop when the receiver is dropped.
pub fn spawn_watches(
    client: Client,
    namespace: Option<&str>,
    tx: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let pods: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let events: Api<CoreEvent> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    vec![
        tokio::spawn(follow::<Pod, _>(
            pods,
            watcher::Config::default(),
            "Pod",
            tx.clone(),
            metrics.clone(),
            |pod: &Pod| {
                PodFacts::from_pod(pod)
                    .map(|f| Object::Pod(Box::new(f)))
                    .ok()
            },
        )),
        tokio::spawn(follow::<CoreEvent, _>(
            events,
            watcher::Config::default().fields("involvedObject.kind=Pod"),
            "Event",
            tx.clone(),
            metrics.clone(),
            |ev: &CoreEvent| {
                EventFacts::from_core(ev)
                    .map(|f| Object::Event(Box::new(f)))
                    .ok()
            },
        )),
        tokio::spawn(follow_nodes(Api::all(client), tx, metrics)),
    ]
}

async fn follow<K, F>(
    api: Api<K>,
    config: watcher::Config,
    kind: &'static str,
    tx: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
    reduce: F,
) where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
    F: Fn(&K) -> Option<Object>,
{
    let mut stream = watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let (action, obj) = match event {
            Err(e) => {
                metrics.watch_event(kind, "error");
                tracing::warn!(kind, error = %e, "watch failed; retrying with backoff");
                continue;
            }
            Ok(watcher::Event::Init) => continue,
            Ok(watcher::Event::InitDone) => {
                if tx.send(Input::Synced(kind)).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(watcher::Event::InitApply(o)) => (Action::Added, o),
            // The watcher folds ADDED into MODIFIED; the engine task tells them apart by
            // whether it already follows the object.
            Ok(watcher::Event::Apply(o)) => (Action::Modified, o),
            Ok(watcher::Event::Delete(o)) => (Action::Deleted, o),
        };
        metrics.watch_event(kind, action_label(action));
        let observed_at = Some(Timestamp::now());
        let Some(object) = reduce(&obj) else {
            tracing::debug!(kind, "object without the fields podtrace needs; skipped");
            continue;
        };
        drop(obj);
        if tx
            .send(Input::Observation(Observation {
                action,
                object,
                observed_at,
            }))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Nodes change often (status heartbeats) but their facts rarely do: only changes are sent.
async fn follow_nodes(api: Api<Node>, tx: mpsc::Sender<Input>, metrics: Arc<Metrics>) {
    let mut last: HashMap<String, NodeFacts> = HashMap::new();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        let (action, node) = match event {
            Err(e) => {
                metrics.watch_event("Node", "error");
                tracing::warn!(kind = "Node", error = %e, "watch failed; retrying with backoff");
                continue;
            }
            Ok(watcher::Event::Init) => continue,
            Ok(watcher::Event::InitDone) => {
                if tx.send(Input::Synced("Node")).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(watcher::Event::InitApply(n)) => (Action::Added, n),
            Ok(watcher::Event::Apply(n)) => (Action::Modified, n),
            Ok(watcher::Event::Delete(n)) => (Action::Deleted, n),
        };
        metrics.watch_event("Node", action_label(action));
        let Ok(facts) = NodeFacts::from_node(&node) else {
            continue;
        };
        if action == Action::Deleted {
            last.remove(&facts.name);
        } else if last.get(&facts.name) == Some(&facts) {
            continue;
        } else {
            last.insert(facts.name.clone(), facts.clone());
        }
        let obs = Observation {
            action,
            object: Object::Node(Box::new(facts)),
            observed_at: Some(Timestamp::now()),
        };
        if tx.send(Input::Observation(obs)).await.is_err() {
            return;
        }
    }
}

fn action_label(a: Action) -> &'static str {
    match a {
        Action::Added => "added",
        Action::Modified => "modified",
        Action::Deleted => "deleted",
    }
}
