//! The Helm chart on the real test cluster: `helm install` into a fresh namespace (which
//! enforces the restricted Pod Security Standard), then the controller exactly as the
//! installed Deployment describes it, authenticated as the chart's ServiceAccount, follows a
//! TraceSession and every pod's trace reaches Jaeger; `helm uninstall` leaves nothing of the
//! release behind but the CRD.
//!
//! The test cluster has no container engine (KWOK plays the kubelet), so the chart's own
//! pods are admitted, scheduled and marked Ready but run nothing. The test runs the real
//! binary locally in their place, with the args and env of the installed Deployment: env
//! values as written, the downward API fields as the kubelet would fill them for one of the
//! chart's pods, the OTLP headers read from the Secret the chart references, and only
//! `--metrics-addr` moved to 127.0.0.1 (a local process must not listen on every address).
#![cfg(feature = "e2e")]

mod common;
mod tools;
mod workload;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{TestEnv, TestNamespace, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};
use workload::{Proc, free_port};

/// Both tests run a controller that exports for its own sessions only, but they install
/// cluster-scoped RBAC and would compete for CPU: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CHART: &str = "charts/podtrace";

fn helm(env: &TestEnv, home: &Path, args: &[&str]) -> String {
    let out = tools::helm(home)
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(args)
        .output()
        .expect("running helm");
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn token_for(admin: &Client, ns: &str, sa: &str) -> String {
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(900),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create_token_request(sa, &PostParams::default(), &req)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {ns}/{sa}: {e}"))
        .status
        .expect("TokenRequest status")
        .token
        .expect("TokenRequest returned no token")
}

/// The admin kubeconfig's cluster with `token` as the only user.
fn token_kubeconfig(env: &TestEnv, token: &str, dir: &Path) -> std::path::PathBuf {
    let admin: Value = serde_saphyr::from_str(&std::fs::read_to_string(&env.kubeconfig).unwrap())
        .expect("admin kubeconfig is YAML");
    let cluster = admin["clusters"][0].clone();
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
        "current-context": "sa",
    });
    let path = dir.join("sa.kubeconfig");
    std::fs::write(&path, serde_json::to_vec_pretty(&kc).unwrap()).unwrap();
    path
}

async fn token_client(env: &TestEnv, token: &str) -> Client {
    let kc = Kubeconfig::read_from(&env.kubeconfig).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info = serde_json::from_value(json!({ "token": token })).unwrap();
    Client::try_from(config).unwrap()
}

async fn allowed(sa: &Client, verb: &str, resource: &str, namespace: Option<&str>) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                namespace: namespace.map(String::from),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SelfSubjectAccessReview>::all(sa.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectAccessReview")
        .status
        .expect("review status")
        .allowed
}

/// The container's environment as the kubelet would build it for `pod`: plain values, the
/// downward API fields the chart uses, and secretKeyRefs read from the Secret.
async fn container_env(admin: &Client, ns: &str, env: &Value, pod: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in env.as_array().expect("env list") {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_owned()
        } else if let Some(field) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match field {
                "metadata.name" => pod.to_owned(),
                "metadata.namespace" => ns.to_owned(),
                other => panic!("env {name}: fieldRef {other} not simulated here"),
            }
        } else if let Some(sel) = e["valueFrom"]["secretKeyRef"].as_object() {
            let secret = Api::<Secret>::namespaced(admin.clone(), ns)
                .get(sel["name"].as_str().unwrap())
                .await
                .expect("the Secret the chart references");
            let bytes = secret
                .data
                .and_then(|d| d.get(sel["key"].as_str().unwrap()).cloned())
                .expect("the key the chart references");
            String::from_utf8(bytes.0).unwrap()
        } else {
            panic!("env {name}: {e} not simulated here");
        };
        out.push((name, value));
    }
    out
}

/// Uninstalls the release when the test fails before its own `helm uninstall`, so a failed
/// run leaves no cluster-scoped RBAC behind (namespaces go with [`TestNamespace`]).
struct Release<'a> {
    env: &'a TestEnv,
    home: &'a Path,
    name: String,
    namespace: String,
    installed: bool,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if self.installed {
            let _ = tools::helm(self.home)
                .arg("--kubeconfig")
                .arg(&self.env.kubeconfig)
                .args(["uninstall", &self.name, "--namespace", &self.namespace])
                .output();
        }
    }
}

/// Fails at once, quoting it, when the controller logged a denial: watches retry a 403
/// forever, so a missing permission would otherwise only show as a timeout.
fn assert_not_denied(ctl: &Proc) {
    let log = ctl.log_text();
    let denied: Vec<&str> = log
        .lines()
        .filter(|l| l.to_lowercase().contains("forbidden"))
        .take(3)
        .collect();
    assert!(
        denied.is_empty(),
        "the controller was denied something it needs:\n{}",
        denied.join("\n")
    );
}

enum Watch {
    ClusterWide,
    Namespace,
}

async fn install_follow_uninstall(watch: Watch) {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::from_env();
    let admin = env.client().await;
    // Shared with the other e2e tests; helm skips crds/ when the CRD already exists.
    workload::install_crd(&admin).await;
    let release_ns = TestNamespace::create(&env, "helm").await;
    let app_ns = TestNamespace::create(&env, "helm-app").await;
    let (rns, ans) = (release_ns.name.clone(), app_ns.name.clone());
    // As config/manager's namespace does: pods must pass restricted admission to exist.
    Api::<Namespace>::all(admin.clone())
        .patch(
            &rns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest"}}})),
        )
        .await
        .unwrap();
    let header_value = format!("x-e2e-tenant={}", common::random_hex(8));
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "otlp-auth"},
        "stringData": {"headers": header_value},
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &rns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let release = format!("podtrace-{}", common::random_hex(3));
    let home = tempfile::tempdir().unwrap();
    let mut values = json!({
        "otlp": {"endpoint": env.otlp_grpc, "protocol": "grpc",
                 "headersSecret": {"name": "otlp-auth", "key": "headers"},
                 "resourceAttributes": format!("k8s.cluster.name={release}")},
        "extraArgs": ["--grace=2s"],
        "logLevel": "info",
    });
    if let Watch::Namespace = watch {
        values["watchNamespace"] = json!(ans);
    }
    let values_file = home.path().join("values.json");
    std::fs::write(&values_file, serde_json::to_vec(&values).unwrap()).unwrap();
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join(CHART);
    helm(
        &env,
        home.path(),
        &[
            "install",
            &release,
            chart.to_str().unwrap(),
            "--namespace",
            &rns,
            "--values",
            values_file.to_str().unwrap(),
        ],
    );
    let mut guard = Release {
        env: &env,
        home: home.path(),
        name: release.clone(),
        namespace: rns.clone(),
        installed: true,
    };
    let status = helm(
        &env,
        home.path(),
        &["status", &release, "--namespace", &rns, "-o", "json"],
    );
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["info"]["status"], "deployed", "{status}");

    // The chart's 2 pods: admitted under restricted Pod Security, scheduled, "Ready".
    let selector = format!("app.kubernetes.io/instance={release}");
    let chart_pods = workload::wait_settled(&admin, &rns, &selector, 2).await;
    let deployment = Api::<Deployment>::namespaced(admin.clone(), &rns)
        .get(&release)
        .await
        .expect("the chart's Deployment");
    let deployment = serde_json::to_value(&deployment).unwrap();
    let spec = &deployment["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let sa_name = spec["serviceAccountName"].as_str().unwrap();

    // The controller, as that Deployment runs it, authenticated as its ServiceAccount.
    let token = token_for(&admin, &rns, sa_name).await;
    let kubeconfig = token_kubeconfig(&env, &token, home.path());
    let as_pod = chart_pods[0].name_any();
    let port = free_port();
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            if a.starts_with("--metrics-addr=") {
                format!("--metrics-addr=127.0.0.1:{port}")
            } else {
                a.to_owned()
            }
        })
        .collect();
    assert!(
        args.contains(&format!("--lease-name={release}-controller")),
        "{args:?}"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podtrace"));
    cmd.args(&args)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        // A container gets only what its spec says.
        .env_clear()
        .envs(container_env(&admin, &rns, &container["env"], &as_pod).await);
    let mut ctl = Proc::spawn("podtrace run", cmd, &home.path().join("controller.log"));
    let http = reqwest::Client::new();
    wait_for(Duration::from_secs(60), "the controller's /readyz", || {
        ctl.assert_running();
        assert_not_denied(&ctl);
        let r = http.get(format!("http://127.0.0.1:{port}/readyz")).send();
        async move { r.await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
    })
    .await;
    let leases: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &rns,
        &kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "coordination.k8s.io",
            "v1",
            "Lease",
        )),
    );
    let lease_name = format!("{release}-controller");
    wait_for(
        Duration::from_secs(60),
        "the controller to hold the chart's Lease as the chart's pod",
        || {
            let (leases, lease_name, as_pod) = (leases.clone(), lease_name.clone(), as_pod.clone());
            assert_not_denied(&ctl);
            async move {
                let l = leases.get(&lease_name).await.ok()?;
                (l.data["spec"]["holderIdentity"] == as_pod.as_str()).then_some(())
            }
        },
    )
    .await;

    if let Watch::Namespace = watch {
        // Only the watched namespace: the Role is there, nowhere else.
        let sa = token_client(&env, &token).await;
        assert!(allowed(&sa, "list", "pods", Some(&ans)).await);
        assert!(
            !allowed(&sa, "list", "pods", None).await,
            "cluster-wide pods"
        );
        assert!(
            !allowed(&sa, "list", "pods", Some("default")).await,
            "pods elsewhere"
        );
        assert!(allowed(&sa, "list", "nodes", None).await, "nodes");
    }

    // A session and a small Deployment: each pod gets its trace, from this install.
    workload::create_session(&admin, &ans, "web", "web", json!({"team": "helm"})).await;
    workload::wait_active(&admin, &ans, "web").await;
    let a = "podtrace.dev/testenv-";
    workload::create_deployment(
        &admin,
        &ans,
        "web",
        "web",
        3,
        json!({format!("{a}image-pull"): "pull", format!("{a}pull-duration"): "500ms"}),
    )
    .await;
    let pods = workload::wait_settled(&admin, &ans, "app=web", 3).await;
    let q = env.traces();
    for pod in &pods {
        let id = workload::trace_id_of(pod);
        let t = wait_for(
            Duration::from_secs(90),
            &format!("trace {id} of pod {}", pod.name_any()),
            || {
                let (q, id) = (q.clone(), id.clone());
                async move {
                    q.get_trace(&id)
                        .await
                        .filter(|t| !t.named("pod.startup").is_empty())
                }
            },
        )
        .await;
        let root = t.named("pod.startup")[0];
        assert_eq!(
            root.attributes.get("k8s.pod.name").and_then(Value::as_str),
            Some(pod.name_any().as_str())
        );
        assert_eq!(
            root.attributes.get("team").and_then(Value::as_str),
            Some("helm")
        );
        assert_eq!(
            root.resource
                .get("k8s.cluster.name")
                .and_then(Value::as_str),
            Some(release.as_str()),
            "the trace did not come through this release's OTEL_RESOURCE_ATTRIBUTES"
        );
        assert!(t.named("pod.schedule").len() == 1 && !t.named("container.image_pull").is_empty());
    }
    ctl.assert_running();
    let log = ctl.log_text();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "denied:\n{}",
        ctl.log_tail()
    );
    assert!(
        !log.contains(&header_value),
        "the OTLP header from the Secret was logged"
    );
    assert!(
        ctl.terminate(Duration::from_secs(20)),
        "clean exit:\n{}",
        ctl.log_tail()
    );

    // Uninstall: nothing labelled with the release may remain anywhere, the namespace holds
    // only what others created, and the CRD stays (helm never deletes crds/).
    helm(
        &env,
        home.path(),
        &["uninstall", &release, "--namespace", &rns],
    );
    guard.installed = false;
    let types = resource_types(&admin).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let left = release_objects(&admin, &types, &release, &rns).await;
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "helm uninstall left objects of {release} behind: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let expected: BTreeSet<String> = [
        "ServiceAccount/default".to_owned(),
        "ConfigMap/kube-root-ca.crt".to_owned(),
        // The test's own Secret, and the Lease the controller (not the chart) took.
        "Secret/otlp-auth".to_owned(),
        format!("Lease/{lease_name}"),
    ]
    .into();
    // Objects the control plane derives (EndpointSlices, ...) go a moment after their owner.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let remaining = namespace_contents(&admin, &types, &rns).await;
        if remaining == expected {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left in {rns} after helm uninstall: {remaining:?}, expected only {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        Api::<CustomResourceDefinition>::all(admin.clone())
            .get_opt("tracesessions.podtrace.dev")
            .await
            .unwrap()
            .is_some(),
        "helm uninstall must keep the CRD"
    );
    release_ns.delete().await;
    app_ns.delete().await;
}

/// Every listable resource type the API server serves, with its scope.
async fn resource_types(admin: &Client) -> Vec<(kube::core::ApiResource, bool)> {
    let discovery = Discovery::new(admin.clone())
        .run()
        .await
        .expect("discovery");
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.supports_operation(verbs::LIST) {
                out.push((ar, caps.scope == Scope::Namespaced));
            }
        }
    }
    out
}

/// "Kind/name" of everything, in any namespace or cluster-scoped, labelled with the release,
/// plus Helm's own release records (Secrets labelled owner=helm).
async fn release_objects(
    admin: &Client,
    types: &[(kube::core::ApiResource, bool)],
    release: &str,
    rns: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for (ar, _) in types {
        let api: Api<DynamicObject> = Api::all_with(admin.clone(), ar);
        let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={release}"));
        if let Ok(list) = api.list(&lp).await {
            out.extend(
                list.items
                    .iter()
                    .map(|o| format!("{}/{}", ar.kind, o.name_any())),
            );
        }
    }
    let helm_records = Api::<Secret>::namespaced(admin.clone(), rns)
        .list(&ListParams::default().labels(&format!("owner=helm,name={release}")))
        .await
        .unwrap();
    out.extend(
        helm_records
            .items
            .iter()
            .map(|s| format!("Secret/{}", s.name_any())),
    );
    out
}

/// "Kind/name" of every object in the namespace except Events (which outlive their objects
/// by design and expire on their own).
async fn namespace_contents(
    admin: &Client,
    types: &[(kube::core::ApiResource, bool)],
    ns: &str,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (ar, namespaced) in types {
        if !namespaced || ar.kind == "Event" {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), ns, ar);
        if let Ok(list) = api.list(&ListParams::default()).await {
            out.extend(
                list.items
                    .iter()
                    .map(|o| format!("{}/{}", ar.kind, o.name_any())),
            );
        }
    }
    out
}

#[tokio::test]
async fn chart_installed_cluster_wide_follows_a_session_and_uninstalls_cleanly() {
    install_follow_uninstall(Watch::ClusterWide).await;
}

#[tokio::test]
async fn chart_installed_for_one_namespace_follows_a_session_there_and_uninstalls_cleanly() {
    install_follow_uninstall(Watch::Namespace).await;
}
