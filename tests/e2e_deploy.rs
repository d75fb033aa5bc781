//! The deployment artefacts against the real local cluster (`make testenv-up`):
//! the API server accepts the rendered `config/default`, the restricted Pod Security
//! Standard admits the controller's pods, the RBAC is sufficient and no wider than needed,
//! and the CRD's validation refuses bad TraceSessions with messages a user can act on.
#![cfg(feature = "e2e")]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Scope, pinned_kind};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

mod common;

const FIELD_MANAGER: &str = "podtrace-e2e-deploy";
/// The namespace config/default deploys into; rewritten per run (see `isolate`).
const HOME_NAMESPACE: &str = "podtrace-system";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn admin_client() -> Client {
    common::TestEnv::from_env().client().await
}

/// Unique per run, so a previous run's Terminating namespace or a parallel run never
/// collides with this one.
fn run_suffix() -> String {
    common::random_hex(4)
}

/// Polls `check` until it returns Some, or fails with `what` after `timeout`.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("(no attempt finished)");
    loop {
        match check().await {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) => last = e,
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}; last: {last}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn render(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(root().join(dir))
        .output()
        .expect("kubectl is needed to render kustomizations");
    assert!(out.status.success(), "kubectl kustomize {dir}: {}", String::from_utf8_lossy(&out.stderr));
    serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).expect("rendered YAML")
}

/// Moves the rendered objects into `ns` and suffixes the cluster-scoped RBAC names, so the
/// test is repeatable and never fights a real installation. The CRD stays as it is: other
/// tests share it, so it is applied (idempotently) but never deleted.
fn isolate(objs: Vec<Value>, ns: &str, suffix: &str) -> Vec<Value> {
    objs.into_iter()
        .map(|mut o| {
            let kind = o["kind"].as_str().unwrap().to_owned();
            if kind == "Namespace" {
                o["metadata"]["name"] = json!(ns);
                // The test environment's convention for namespaces it may sweep.
                o["metadata"]["labels"]["podtrace.dev/e2e"] = json!("true");
            }
            if o["metadata"]["namespace"] == HOME_NAMESPACE {
                o["metadata"]["namespace"] = json!(ns);
            }
            if kind == "ClusterRole" || kind == "ClusterRoleBinding" {
                let name = format!("{}-{suffix}", o["metadata"]["name"].as_str().unwrap());
                o["metadata"]["name"] = json!(name);
            }
            if kind == "ClusterRoleBinding" {
                let name = format!("{}-{suffix}", o["roleRef"]["name"].as_str().unwrap());
                o["roleRef"]["name"] = json!(name);
            }
            for s in o["subjects"].as_array_mut().into_iter().flatten() {
                s["namespace"] = json!(ns);
            }
            o
        })
        .collect()
}

async fn api_for(client: &Client, obj: &Value) -> (Api<DynamicObject>, ApiResource) {
    let (group, version) = match obj["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), obj["apiVersion"].as_str().unwrap().to_owned()),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, obj["kind"].as_str().unwrap());
    let (ar, caps) = pinned_kind(client, &gvk).await.unwrap_or_else(|e| panic!("discovering {gvk:?}: {e}"));
    let api = match (caps.scope, obj["metadata"]["namespace"].as_str()) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (Scope::Namespaced, None) => panic!("namespaced {} without namespace", obj["kind"]),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
    };
    (api, ar)
}

async fn apply(client: &Client, obj: &Value) {
    let (api, _) = api_for(client, obj).await;
    let name = obj["metadata"]["name"].as_str().unwrap();
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj))
        .await
        .unwrap_or_else(|e| panic!("the API server refused {} {name}: {e}", obj["kind"]));
}

async fn delete(client: &Client, obj: &Value) {
    let (api, _) = api_for(client, obj).await;
    let name = obj["metadata"]["name"].as_str().unwrap();
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => eprintln!("cleanup: deleting {} {name}: {e}", obj["kind"]),
    }
}

/// Installs the CRD (shared with other tests, never removed) and waits until TraceSessions
/// can be served.
async fn ensure_crd(client: &Client) {
    let crd: Value = serde_saphyr::from_str(&podtrace::crd::crd_yaml().unwrap()).unwrap();
    apply(client, &crd).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    poll("the TraceSession CRD to be Established", Duration::from_secs(30), || async {
        let c = crds.get("tracesessions.podtrace.dev").await.map_err(|e| e.to_string())?;
        let established = c
            .status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Established" && c.status == "True");
        Ok(established.then_some(()))
    })
    .await;
}

/// Runs `body`, then `cleanup` even if `body` panicked, then re-raises the panic.
async fn with_cleanup<B: Future<Output = ()>, C: Future<Output = ()>>(body: B, cleanup: C) {
    let outcome = AssertUnwindSafe(body).catch_unwind().await;
    cleanup.await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn default_config_is_accepted_and_its_rbac_is_sufficient_and_least_privilege() {
    let client = admin_client().await;
    let suffix = run_suffix();
    let ns = format!("podtrace-e2e-{suffix}");
    let objs = isolate(render("config/default"), &ns, &suffix);
    let (first, rest): (Vec<_>, Vec<_>) = objs
        .iter()
        .cloned()
        .partition(|o| o["kind"] == "Namespace" || o["kind"] == "CustomResourceDefinition");
    let cleanup_objs: Vec<Value> =
        objs.iter().filter(|o| o["kind"] != "CustomResourceDefinition").cloned().collect();

    let body = async {
        // The Namespace and CRD first: everything else lives in the one or needs the other.
        for o in &first {
            apply(&client, o).await;
        }
        ensure_crd(&client).await;
        for o in &rest {
            apply(&client, o).await;
        }
        pods_pass_restricted_pod_security(&client, &ns).await;
        let sa_client = service_account_client(&client, &ns).await;
        rbac_is_sufficient_and_least_privilege(&sa_client, &ns).await;
    };
    let cleanup = async {
        // Namespace last: its deletion would take the namespaced objects with it anyway,
        // but the cluster-scoped RBAC must go explicitly.
        for o in cleanup_objs.iter().rev() {
            delete(&client, o).await;
        }
    };
    with_cleanup(body, cleanup).await;
}

/// The namespace enforces the restricted Pod Security Standard, so pods being created at all
/// proves the Deployment's securityContext is compliant (admission would refuse them).
async fn pods_pass_restricted_pod_security(client: &Client, ns: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let rs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "ReplicaSet")),
    );
    poll("the controller's 2 pods to be admitted", Duration::from_secs(90), || async {
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=podtrace"))
            .await
            .map_err(|e| e.to_string())?;
        if list.items.len() >= 2 {
            return Ok(Some(()));
        }
        // A PodSecurity refusal shows up only as a ReplicaSet condition; surface it.
        let sets = rs.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        for set in sets.items {
            for c in set.data["status"]["conditions"].as_array().into_iter().flatten() {
                let msg = c["message"].as_str().unwrap_or_default();
                assert!(
                    !(c["type"] == "ReplicaFailure" && msg.contains("PodSecurity")),
                    "restricted Pod Security refused the controller's pods: {msg}"
                );
            }
        }
        Err(format!("{} pods so far", list.items.len()))
    })
    .await;
}

/// A client that authenticates with a fresh token of the `podtrace` ServiceAccount, so the
/// access checks below go through the real authenticator and authorizer.
async fn service_account_client(admin: &Client, ns: &str) -> Client {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let req = TokenRequest {
        spec: TokenRequestSpec { expiration_seconds: Some(600), ..Default::default() },
        ..Default::default()
    };
    let token = sas
        .create_token_request("podtrace", &PostParams::default(), &req)
        .await
        .expect("TokenRequest for the podtrace ServiceAccount")
        .status
        .expect("TokenRequest status")
        .token;
    let env = common::TestEnv::from_env();
    let kubeconfig = Kubeconfig::read_from(&env.kubeconfig).expect("admin kubeconfig");
    // Same server and CA as the admin, different identity.
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config from admin kubeconfig");
    // AuthInfo's token is a secrecy::SecretString; deserialising avoids depending on secrecy.
    config.auth_info = serde_json::from_value(json!({ "token": token })).unwrap();
    Client::try_from(config).expect("client from ServiceAccount token")
}

struct Check {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: &'static str,
    /// None: cluster-wide (all namespaces, or a cluster-scoped resource).
    namespace: Option<String>,
    allowed: bool,
}

async fn rbac_is_sufficient_and_least_privilege(sa: &Client, ns: &str) {
    let elsewhere = "default".to_owned();
    let own = Some(ns.to_owned());
    let c = |verb, group, resource, subresource, namespace: Option<String>, allowed| Check {
        verb,
        group,
        resource,
        subresource,
        namespace,
        allowed,
    };
    let mut checks = Vec::new();
    for verb in ["get", "list", "watch"] {
        checks.push(c(verb, "", "pods", "", None, true));
        checks.push(c(verb, "", "events", "", None, true));
        checks.push(c(verb, "events.k8s.io", "events", "", None, true));
        checks.push(c(verb, "", "nodes", "", None, true));
        checks.push(c(verb, "podtrace.dev", "tracesessions", "", None, true));
    }
    for verb in ["get", "patch", "update"] {
        checks.push(c(verb, "podtrace.dev", "tracesessions", "status", Some(elsewhere.clone()), true));
    }
    for verb in ["get", "create", "update"] {
        checks.push(c(verb, "coordination.k8s.io", "leases", "", own.clone(), true));
        checks.push(c(verb, "coordination.k8s.io", "leases", "", Some(elsewhere.clone()), false));
    }
    checks.extend([
        c("delete", "coordination.k8s.io", "leases", "", own.clone(), false),
        c("get", "", "secrets", "", own.clone(), false),
        c("list", "", "secrets", "", None, false),
        c("get", "", "configmaps", "", own.clone(), false),
        c("list", "", "configmaps", "", None, false),
        c("create", "", "pods", "", Some(elsewhere.clone()), false),
        c("delete", "", "pods", "", Some(elsewhere.clone()), false),
        c("create", "", "pods", "exec", Some(elsewhere.clone()), false),
        c("get", "", "pods", "log", Some(elsewhere.clone()), false),
        c("create", "", "events", "", own.clone(), false),
        c("create", "events.k8s.io", "events", "", own.clone(), false),
        c("patch", "", "nodes", "", None, false),
        c("update", "podtrace.dev", "tracesessions", "", Some(elsewhere.clone()), false),
        c("delete", "podtrace.dev", "tracesessions", "", Some(elsewhere.clone()), false),
        c("create", "podtrace.dev", "tracesessions", "", Some(elsewhere.clone()), false),
        c("list", "apps", "deployments", "", None, false),
        c("create", "rbac.authorization.k8s.io", "rolebindings", "", own.clone(), false),
    ]);

    let reviews: Api<SelfSubjectAccessReview> = Api::all(sa.clone());
    let mut wrong = Vec::new();
    for check in &checks {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(check.verb.into()),
                    group: Some(check.group.into()),
                    resource: Some(check.resource.into()),
                    subresource: Some(check.subresource.into()),
                    namespace: check.namespace.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .expect("SelfSubjectAccessReview with the ServiceAccount token")
            .status
            .expect("review status");
        if answer.allowed != check.allowed {
            wrong.push(format!(
                "{} {}/{}{}{} in {}: expected allowed={}, got {} ({})",
                check.verb,
                if check.group.is_empty() { "core" } else { check.group },
                check.resource,
                if check.subresource.is_empty() { "" } else { "/" },
                check.subresource,
                check.namespace.as_deref().unwrap_or("<cluster>"),
                check.allowed,
                answer.allowed,
                answer.reason.unwrap_or_default(),
            ));
        }
    }
    assert!(wrong.is_empty(), "RBAC of the podtrace ServiceAccount is off:\n  {}", wrong.join("\n  "));
}

/// A TraceSession the API server must accept; each case below breaks one field of it.
fn valid_session(name: &str) -> Value {
    json!({
        "apiVersion": "podtrace.dev/v1alpha1",
        "kind": "TraceSession",
        "metadata": { "name": name },
        "spec": {
            "operations": ["PodStartup"],
            "selector": { "matchLabels": { "app": "web" } },
            "duration": "30m",
            "maxTraces": 10,
            "attributes": { "team": "payments" }
        }
    })
}

#[tokio::test]
async fn api_server_refuses_invalid_trace_sessions_with_readable_messages() {
    let client = admin_client().await;
    ensure_crd(&client).await;
    // Dry-run creates: full validation, nothing persisted, nothing to clean up.
    let ns = "default";
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<podtrace::session::TraceSession>(&()));
    let dry = PostParams { dry_run: true, ..Default::default() };
    let create = |obj: Value| {
        let api = api.clone();
        let dry = dry.clone();
        async move {
            let obj: DynamicObject = serde_json::from_value(obj).unwrap();
            api.create(&dry, &obj).await
        }
    };

    // Control: the unmodified session is accepted, so each refusal below is down to its one
    // change. Polled because a just-established CRD can briefly answer 404.
    poll("a valid TraceSession to be accepted", Duration::from_secs(30), || async {
        create(valid_session("valid")).await.map(|_| Some(())).map_err(|e| e.to_string())
    })
    .await;

    let cases: Vec<(&str, Box<dyn Fn(&mut Value)>, &[&str])> = vec![
        (
            "bad duration",
            Box::new(|s| s["spec"]["duration"] = json!("ten minutes")),
            &["spec.duration", "positive Go duration"],
        ),
        (
            "zero duration",
            Box::new(|s| s["spec"]["duration"] = json!("0s")),
            &["spec.duration", "positive Go duration"],
        ),
        (
            "reserved attribute key",
            Box::new(|s| s["spec"]["attributes"] = json!({ "k8s.foo": "bar" })),
            &["spec.attributes", "reserved"],
        ),
        ("empty operations", Box::new(|s| s["spec"]["operations"] = json!([])), &["spec.operations", "at least 1"]),
        (
            "unknown operation",
            Box::new(|s| s["spec"]["operations"] = json!(["PodExplode"])),
            &["spec.operations[0]", "Unsupported value", "PodExplode"],
        ),
        (
            "repeated operation",
            Box::new(|s| s["spec"]["operations"] = json!(["PodStartup", "PodStartup"])),
            &["spec.operations", "must not repeat"],
        ),
        ("maxTraces 0", Box::new(|s| s["spec"]["maxTraces"] = json!(0)), &["spec.maxTraces", "greater than or equal to 1"]),
        (
            "missing selector",
            Box::new(|s| {
                s["spec"].as_object_mut().unwrap().remove("selector");
            }),
            &["spec.selector", "Required"],
        ),
    ];

    let mut wrong = Vec::new();
    for (i, (what, mutate, expected)) in cases.iter().enumerate() {
        let mut session = valid_session(&format!("invalid-{i}"));
        mutate(&mut session);
        match create(session).await {
            Ok(_) => wrong.push(format!("{what}: accepted")),
            Err(kube::Error::Api(status)) => {
                let missing: Vec<_> = expected.iter().filter(|e| !status.message.contains(**e)).collect();
                if status.code != 422 || !missing.is_empty() {
                    wrong.push(format!(
                        "{what}: HTTP {} with message {:?}, which lacks {missing:?}",
                        status.code, status.message
                    ));
                }
            }
            Err(e) => wrong.push(format!("{what}: unexpected error {e}")),
        }
    }
    assert!(wrong.is_empty(), "invalid TraceSessions not refused as expected:\n  {}", wrong.join("\n  "));
}

