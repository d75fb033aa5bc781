//! Smoke tests of the local test environment itself: real control plane, KWOK nodes that
//! behave like kubelets, and the trace backend. Run with `make testenv-up` first:
//! `cargo test --features e2e --test e2e_smoke`.
#![cfg(feature = "e2e")]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{TestEnv, TestNamespace, events_for, random_hex, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn find<'a>(evs: &'a [Event], reason: &str, field_path: &str) -> Option<&'a Event> {
    evs.iter().find(|e| {
        e.reason.as_deref() == Some(reason)
            && e.involved_object.field_path.as_deref() == Some(field_path)
    })
}

/// Asserts the event looks like one written by the kubelet on `node`.
fn assert_kubelet_event(e: &Event, node: &str, message: &str) {
    let src = e.source.as_ref().expect("kubelet events have a source");
    assert_eq!(src.component.as_deref(), Some("kubelet"), "{e:?}");
    assert_eq!(src.host.as_deref(), Some(node), "{e:?}");
    assert!(
        e.first_timestamp.is_some() && e.last_timestamp.is_some(),
        "{e:?}"
    );
    assert!(e.count.unwrap_or(0) >= 1, "{e:?}");
    assert_eq!(e.message.as_deref(), Some(message), "{e:?}");
}

#[tokio::test]
async fn deployment_pods_start_on_kwok_nodes_with_kubelet_events() {
    let env = TestEnv::from_env();
    let client = env.client().await;
    let ns = TestNamespace::create(&env, "smoke-deploy").await;

    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {
                    "labels": {"app": "web"},
                    "annotations": {"podtrace.dev/testenv-cached-images": "busybox:1.36"}
                },
                "spec": {
                    "initContainers": [{"name": "setup", "image": "busybox:1.36"}],
                    "containers": [
                        {"name": "app", "image": "nginx:1.27"},
                        {"name": "sidecar", "image": "busybox:1.36"}
                    ]
                }
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &deploy)
        .await
        .expect("create deployment");

    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let pods = wait_for(TIMEOUT, "4 Ready pods of deployment web", || {
        let pods_api = pods_api.clone();
        async move {
            let pods = pods_api
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?
                .items;
            (pods.len() == 4 && pods.iter().all(is_ready)).then_some(pods)
        }
    })
    .await;

    let kwok_nodes: Vec<String> = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels("type=kwok"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(
        kwok_nodes.len() >= 3,
        "expected the fake nodes, got {kwok_nodes:?}"
    );

    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap();
        let node = pod
            .spec
            .as_ref()
            .unwrap()
            .node_name
            .clone()
            .expect("scheduled");
        assert!(
            kwok_nodes.contains(&node),
            "{name} on unexpected node {node}"
        );
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.is_some(), "{name} has no pod IP");
        let conds: Vec<_> = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        for c in [
            "PodScheduled",
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready",
        ] {
            assert!(conds.contains(&c), "{name} lacks condition {c}: {conds:?}");
        }
        let init = &status.init_container_statuses.as_ref().unwrap()[0];
        let term = init
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .expect("init container terminated");
        assert_eq!(
            (term.exit_code, term.reason.as_deref()),
            (0, Some("Completed"))
        );

        let evs = wait_for(TIMEOUT, &format!("kubelet events of {name}"), || {
            let (client, ns, name) = (client.clone(), ns.name.clone(), name.clone());
            async move {
                let evs = events_for(&client, &ns, &name).await;
                find(&evs, "Started", "spec.containers{sidecar}")
                    .is_some()
                    .then_some(evs)
            }
        })
        .await;

        // Scheduled comes from the real scheduler, through events.k8s.io/v1.
        let sched = evs
            .iter()
            .find(|e| e.reason.as_deref() == Some("Scheduled"))
            .expect("Scheduled event");
        assert_eq!(
            sched.reporting_component.as_deref(),
            Some("default-scheduler")
        );
        assert_eq!(
            sched.message.as_deref(),
            Some(format!("Successfully assigned {}/{name} to {node}", ns.name).as_str())
        );
        assert!(sched.event_time.is_some());

        let app = "spec.containers{app}";
        assert_kubelet_event(
            find(&evs, "Pulling", app).expect("Pulling app"),
            &node,
            r#"Pulling image "nginx:1.27""#,
        );
        let pulled = find(&evs, "Pulled", app).expect("Pulled app");
        let msg = pulled.message.as_deref().unwrap();
        assert!(
            msg.starts_with(r#"Successfully pulled image "nginx:1.27" in "#)
                && msg.contains(" including waiting). Image size: ")
                && msg.ends_with(" bytes."),
            "unexpected Pulled message: {msg}"
        );
        assert_kubelet_event(
            find(&evs, "Created", app).unwrap(),
            &node,
            "Created container: app",
        );
        assert_kubelet_event(
            find(&evs, "Started", app).unwrap(),
            &node,
            "Started container app",
        );

        let side = "spec.containers{sidecar}";
        assert!(
            find(&evs, "Pulling", side).is_none(),
            "a cached image is not pulled"
        );
        assert_kubelet_event(
            find(&evs, "Pulled", side).unwrap(),
            &node,
            r#"Container image "busybox:1.36" already present on machine"#,
        );
        assert_kubelet_event(
            find(&evs, "Started", "spec.initContainers{setup}").unwrap(),
            &node,
            "Started container setup",
        );
    }
    ns.delete().await;
}

#[tokio::test]
async fn failed_image_pull_backs_off_and_never_gets_ready() {
    let env = TestEnv::from_env();
    let client = env.client().await;
    let ns = TestNamespace::create(&env, "smoke-pullfail").await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "bad-image", "annotations": {"podtrace.dev/testenv-image-pull": "fail"}},
        "spec": {"containers": [{"name": "app", "image": "example.invalid/nope:1"}]}
    }))
    .unwrap();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    api.create(&PostParams::default(), &pod).await.unwrap();

    wait_for(TIMEOUT, "bad-image in ImagePullBackOff", || {
        let api = api.clone();
        async move {
            let p = api.get("bad-image").await.ok()?;
            let reason = p.status?.container_statuses?[0]
                .state
                .clone()?
                .waiting?
                .reason?;
            (reason == "ImagePullBackOff").then_some(())
        }
    })
    .await;
    assert!(!is_ready(&api.get("bad-image").await.unwrap()));

    let evs = events_for(&client, &ns.name, "bad-image").await;
    let fp = "spec.containers{app}";
    let node = api
        .get("bad-image")
        .await
        .unwrap()
        .spec
        .unwrap()
        .node_name
        .unwrap();
    let msgs: Vec<(&str, &str)> = evs
        .iter()
        .filter(|e| e.involved_object.field_path.as_deref() == Some(fp))
        .map(|e| (e.reason.as_deref().unwrap(), e.message.as_deref().unwrap()))
        .collect();
    assert!(
        msgs.contains(&("Pulling", r#"Pulling image "example.invalid/nope:1""#)),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|(r, m)| *r == "Failed"
            && m.starts_with(r#"Failed to pull image "example.invalid/nope:1": "#)),
        "{msgs:?}"
    );
    assert!(
        msgs.contains(&("Failed", "Error: ErrImagePull")),
        "{msgs:?}"
    );
    assert!(
        msgs.contains(&(
            "BackOff",
            r#"Back-off pulling image "example.invalid/nope:1""#
        )),
        "{msgs:?}"
    );
    assert!(
        msgs.contains(&("Failed", "Error: ImagePullBackOff")),
        "{msgs:?}"
    );
    assert_kubelet_event(
        find(&evs, "BackOff", fp).unwrap(),
        &node,
        r#"Back-off pulling image "example.invalid/nope:1""#,
    );
    ns.delete().await;
}

#[tokio::test]
async fn crash_loop_restarts_with_backoff() {
    let env = TestEnv::from_env();
    let client = env.client().await;
    let ns = TestNamespace::create(&env, "smoke-crash").await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "crasher", "annotations": {"podtrace.dev/testenv-crash": "true"}},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}
    }))
    .unwrap();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    api.create(&PostParams::default(), &pod).await.unwrap();

    let cs = wait_for(
        TIMEOUT,
        "crasher in CrashLoopBackOff after a restart",
        || {
            let api = api.clone();
            async move {
                let cs = api
                    .get("crasher")
                    .await
                    .ok()?
                    .status?
                    .container_statuses?
                    .remove(0);
                let waiting =
                    cs.state.as_ref()?.waiting.as_ref()?.reason.as_deref()? == "CrashLoopBackOff";
                (waiting && cs.restart_count >= 2).then_some(cs)
            }
        },
    )
    .await;
    let last = cs
        .last_state
        .unwrap()
        .terminated
        .expect("lastState.terminated");
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));

    let evs = events_for(&client, &ns.name, "crasher").await;
    let backoff = find(&evs, "BackOff", "spec.containers{app}").expect("BackOff event");
    let uid = api.get("crasher").await.unwrap().metadata.uid.unwrap();
    assert_eq!(
        backoff.message.as_deref().unwrap(),
        format!(
            "Back-off restarting failed container app in pod crasher_{}({uid})",
            ns.name
        )
    );
    assert_eq!(backoff.type_.as_deref(), Some("Warning"));
    // Repeated kubelet events aggregate into one object with a growing count.
    let started = find(&evs, "Started", "spec.containers{app}").unwrap();
    assert!(
        started.count.unwrap() >= 2,
        "Started count {:?}",
        started.count
    );
    ns.delete().await;
}

#[tokio::test]
async fn span_sent_over_otlp_http_can_be_read_back_by_id_and_search() {
    let env = TestEnv::from_env();
    let traces = env.traces();
    let trace_id = random_hex(16);
    let span_id = random_hex(8);
    let marker = random_hex(6);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "podtrace-smoke"}}]},
        "scopeSpans": [{"scope": {"name": "e2e_smoke"}, "spans": [{
            "traceId": trace_id, "spanId": span_id, "name": "smoke-span", "kind": 1,
            "startTimeUnixNano": (now - 5_000_000).to_string(), "endTimeUnixNano": now.to_string(),
            "attributes": [
                {"key": "smoke.marker", "value": {"stringValue": marker}},
                {"key": "smoke.count", "value": {"intValue": "3"}}
            ],
            "status": {"code": 2, "message": "expected failure"}
        }]}]
    }]});
    // The backend is shared and other e2e tests stop and restart it: retry the export
    // (bounded) rather than fail on a restart window.
    let http = reqwest::Client::new();
    let url = format!("{}/v1/traces", env.otlp_http);
    let status = wait_for(
        Duration::from_secs(30),
        "OTLP/HTTP receiver accepting the span",
        || {
            let req = http.post(&url).json(&body);
            async move { req.send().await.ok().map(|r| r.status()) }
        },
    )
    .await;
    assert!(status.is_success(), "OTLP export status {status}");

    let trace = wait_for(Duration::from_secs(20), "span readable by trace ID", || {
        let (traces, id) = (traces.clone(), trace_id.clone());
        async move { traces.get_trace(&id).await }
    })
    .await;
    assert_eq!(trace.spans.len(), 1);
    let s = &trace.spans[0];
    assert_eq!(
        (s.name.as_str(), s.service.as_str()),
        ("smoke-span", "podtrace-smoke")
    );
    assert_eq!(s.span_id, span_id);
    assert_eq!(s.parent_span_id, None);
    assert_eq!((s.start_ns, s.end_ns), (now - 5_000_000, now));
    assert_eq!(s.attributes["smoke.marker"], json!(marker));
    assert_eq!(s.attributes["smoke.count"], json!(3));
    assert_eq!(
        (s.status_code, s.status_message.as_deref()),
        (2, Some("expected failure"))
    );

    let found = wait_for(
        Duration::from_secs(20),
        "span found by service and tag",
        || {
            let (traces, marker) = (traces.clone(), marker.clone());
            async move {
                let ids = traces
                    .find_trace_ids(
                        "podtrace-smoke",
                        &[("smoke.marker", &marker)],
                        Duration::from_secs(600),
                    )
                    .await;
                (!ids.is_empty()).then_some(ids)
            }
        },
    )
    .await;
    assert_eq!(found, vec![trace_id.clone()]);
    assert!(
        traces.get_trace(&random_hex(16)).await.is_none(),
        "unknown trace IDs are absent"
    );
}

/// Stops and restarts the trace backend through the harness. Ignored by default because it
/// takes the backend away from any other e2e test running at the same time:
/// `cargo test --features e2e --test e2e_smoke -- --ignored backend_`.
#[tokio::test]
#[ignore]
async fn backend_can_be_stopped_and_restarted() {
    let env = TestEnv::from_env();
    let traces = env.traces();
    let http = reqwest::Client::new();
    env.backend_stop().await;
    assert!(
        http.get(format!("{}/api/services", env.trace_query))
            .send()
            .await
            .is_err(),
        "query API still answering after backend_stop"
    );
    assert!(
        http.post(format!("{}/v1/traces", env.otlp_http))
            .json(&json!({"resourceSpans": []}))
            .send()
            .await
            .is_err(),
        "OTLP receiver still accepting after backend_stop"
    );
    env.backend_start().await;
    // In-memory storage: whatever was stored before the stop is gone, but the API is back.
    let services = wait_for(
        Duration::from_secs(20),
        "query API after backend_start",
        || {
            let traces = traces.clone();
            async move { Some(traces.services().await) }
        },
    )
    .await;
    assert!(services.iter().all(|s| !s.is_empty()));
    let resp = http
        .post(format!("{}/v1/traces", env.otlp_http))
        .json(&json!({"resourceSpans": []}))
        .send()
        .await
        .expect("OTLP receiver back after backend_start");
    assert!(resp.status().is_success());
}
