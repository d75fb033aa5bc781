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
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Scope, pinned_kind};
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
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn render(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(root().join(dir))
        .output()
        .expect("kubectl is needed to render kustomizations");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
            // get_mut, not indexing: IndexMut would add `subjects: null` to every object.
            for s in o
                .get_mut("subjects")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                s["namespace"] = json!(ns);
            }
            o
        })
        .collect()
}

async fn api_for(client: &Client, obj: &Value) -> (Api<DynamicObject>, ApiResource) {
    let (group, version) = match obj["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (
            String::new(),
            obj["apiVersion"].as_str().unwrap().to_owned(),
        ),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, obj["kind"].as_str().unwrap());
    let (ar, caps) = pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("discovering {gvk:?}: {e}"));
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
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
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
    poll(
        "the TraceSession CRD to be Established",
        Duration::from_secs(30),
        || async {
            let c = crds
                .get("tracesessions.podtrace.dev")
                .await
                .map_err(|e| e.to_string())?;
            let established = c
                .status
                .and_then(|s| s.conditions)
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Established" && c.status == "True");
            Ok(established.then_some(()))
        },
    )
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
    let cleanup_objs: Vec<Value> = objs
        .iter()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
        .cloned()
        .collect();

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
        let token = service_account_token(&client, &ns).await;
        let sa_client = token_client(&token).await;
        rbac_is_sufficient_and_least_privilege(&sa_client, &ns).await;
        controller_works_with_only_these_permissions(&client, &token, &ns).await;
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
    poll(
        "the controller's 2 pods to be admitted",
        Duration::from_secs(90),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=podtrace"))
                .await
                .map_err(|e| e.to_string())?;
            if list.items.len() >= 2 {
                return Ok(Some(()));
            }
            // A PodSecurity refusal shows up only as a ReplicaSet condition; surface it.
            let sets = rs
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            for set in sets.items {
                for c in set.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let msg = c["message"].as_str().unwrap_or_default();
                    assert!(
                        !(c["type"] == "ReplicaFailure" && msg.contains("PodSecurity")),
                        "restricted Pod Security refused the controller's pods: {msg}"
                    );
                }
            }
            Err(format!("{} pods so far", list.items.len()))
        },
    )
    .await;
}

/// A fresh token of the `podtrace` ServiceAccount, so the checks below go through the real
/// authenticator and authorizer.
async fn service_account_token(admin: &Client, ns: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    sas.create_token_request("podtrace", &PostParams::default(), &req)
        .await
        .expect("TokenRequest for the podtrace ServiceAccount")
        .status
        .expect("TokenRequest status")
        .token
        .expect("TokenRequest returned no token")
}

async fn token_client(token: &str) -> Client {
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
        checks.push(c(
            verb,
            "podtrace.dev",
            "tracesessions",
            "status",
            Some(elsewhere.clone()),
            true,
        ));
    }
    for verb in ["get", "create", "update"] {
        checks.push(c(
            verb,
            "coordination.k8s.io",
            "leases",
            "",
            own.clone(),
            true,
        ));
        checks.push(c(
            verb,
            "coordination.k8s.io",
            "leases",
            "",
            Some(elsewhere.clone()),
            false,
        ));
    }
    checks.extend([
        c(
            "delete",
            "coordination.k8s.io",
            "leases",
            "",
            own.clone(),
            false,
        ),
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
        c(
            "update",
            "podtrace.dev",
            "tracesessions",
            "",
            Some(elsewhere.clone()),
            false,
        ),
        c(
            "delete",
            "podtrace.dev",
            "tracesessions",
            "",
            Some(elsewhere.clone()),
            false,
        ),
        c(
            "create",
            "podtrace.dev",
            "tracesessions",
            "",
            Some(elsewhere.clone()),
            false,
        ),
        c("list", "apps", "deployments", "", None, false),
        c(
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings",
            "",
            own.clone(),
            false,
        ),
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
                if check.group.is_empty() {
                    "core"
                } else {
                    check.group
                },
                check.resource,
                if check.subresource.is_empty() {
                    ""
                } else {
                    "/"
                },
                check.subresource,
                check.namespace.as_deref().unwrap_or("<cluster>"),
                check.allowed,
                answer.allowed,
                answer.reason.unwrap_or_default(),
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "RBAC of the podtrace ServiceAccount is off:\n  {}",
        wrong.join("\n  ")
    );
}

/// Kills the controller process this test started, also when an assertion fails.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The admin kubeconfig's cluster with the ServiceAccount token as the only user.
fn service_account_kubeconfig(token: &str) -> tempfile::NamedTempFile {
    let env = common::TestEnv::from_env();
    let admin: Value = serde_saphyr::from_str(&std::fs::read_to_string(&env.kubeconfig).unwrap())
        .expect("admin kubeconfig is YAML");
    let cluster = admin["clusters"][0].clone();
    let kc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{ "name": "podtrace", "user": { "token": token } }],
        "contexts": [{ "name": "podtrace", "context": { "cluster": cluster["name"], "user": "podtrace" } }],
        "current-context": "podtrace",
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    // JSON is YAML, so this is a valid kubeconfig.
    std::fs::write(file.path(), serde_json::to_vec_pretty(&kc).unwrap()).unwrap();
    file
}

/// The access reviews prove the rules say what we mean; this proves they are what the
/// controller needs: the real binary, authenticated as the ServiceAccount, must sync its
/// watches, win the Lease in its namespace, write a TraceSession's status and see a pod,
/// without a single "forbidden" in its log.
async fn controller_works_with_only_these_permissions(admin: &Client, token: &str, ns: &str) {
    let env = common::TestEnv::from_env();
    let kubeconfig = service_account_kubeconfig(token);
    let log = tempfile::NamedTempFile::new().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let identity = format!("e2e-deploy-{}", common::random_hex(3));
    let child = Command::new(env!("CARGO_BIN_EXE_podtrace"))
        .args(["run", "--leader-elect=true", "--log-format=json"])
        .arg("--kubeconfig")
        .arg(kubeconfig.path())
        .arg(format!("--metrics-addr=127.0.0.1:{port}"))
        .arg(format!("--lease-namespace={ns}"))
        // Confined to its own namespace so it never follows sessions of tests running alongside.
        .arg(format!("--namespace={ns}"))
        .arg(format!("--identity={identity}"))
        .arg(format!("--otlp-endpoint={}", env.otlp_grpc))
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("starting podtrace run");
    let child = std::sync::Mutex::new(ChildGuard(child));
    let log_tail = || {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let exited = || child.lock().unwrap().0.try_wait().ok().flatten();
    // Watches retry a 403 forever, so a missing permission would otherwise only show as a
    // timeout; fail on the first denial instead, quoting it.
    let denied = || {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.to_lowercase().contains("forbidden"))
            .take(3)
            .map(String::from)
            .collect();
        assert!(
            lines.is_empty(),
            "the controller was denied something it needs:\n{}",
            lines.join("\n")
        );
    };

    let http = reqwest::Client::new();
    poll(
        "the controller's /readyz",
        Duration::from_secs(60),
        || async {
            if let Some(status) = exited() {
                panic!("podtrace run exited with {status}:\n{}", log_tail());
            }
            denied();
            let r = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .map_err(|e| format!("{e}; controller log:\n{}", log_tail()))?;
            if r.status().is_success() {
                Ok(Some(()))
            } else {
                Err(format!(
                    "/readyz answered {}; controller log:\n{}",
                    r.status(),
                    log_tail()
                ))
            }
        },
    )
    .await;

    let leases: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        ns,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease")),
    );
    poll(
        "the controller to hold the Lease in its namespace",
        Duration::from_secs(60),
        || async {
            denied();
            let list = leases
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            if list
                .items
                .iter()
                .any(|l| l.data["spec"]["holderIdentity"] == identity.as_str())
            {
                Ok(Some(()))
            } else {
                Err(format!(
                    "{} leases, none held by {identity}:\n{}",
                    list.items.len(),
                    log_tail()
                ))
            }
        },
    )
    .await;

    let sessions: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        ns,
        &ApiResource::erase::<podtrace::session::TraceSession>(&()),
    );
    let mut session: DynamicObject = serde_json::from_value(valid_session("rbac-proof")).unwrap();
    session.data["spec"]["selector"] = json!({ "matchLabels": { "app": "rbac-proof" } });
    sessions
        .create(&PostParams::default(), &session)
        .await
        .expect("creating a TraceSession as admin");
    poll(
        "the controller to mark the session Active",
        Duration::from_secs(60),
        || async {
            denied();
            let s = sessions
                .get("rbac-proof")
                .await
                .map_err(|e| e.to_string())?;
            let phase = &s.data["status"]["phase"];
            if phase == "Active" {
                Ok(Some(()))
            } else {
                Err(format!("phase {phase}:\n{}", log_tail()))
            }
        },
    )
    .await;

    // The namespace enforces restricted Pod Security, so the pod has to comply too.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "rbac-proof", "labels": { "app": "rbac-proof" } },
        "spec": {
            "securityContext": { "runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [{
                "name": "c",
                "image": "registry.k8s.io/pause:3.10",
                "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } }
            }]
        }
    }))
    .unwrap();
    Api::<Pod>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .expect("creating a pod");
    poll(
        "the session to count the matching pod",
        Duration::from_secs(60),
        || async {
            denied();
            let s = sessions
                .get("rbac-proof")
                .await
                .map_err(|e| e.to_string())?;
            let matched = s.data["status"]["podsMatched"].as_i64().unwrap_or(0);
            if matched >= 1 {
                Ok(Some(()))
            } else {
                Err(format!("podsMatched {matched}:\n{}", log_tail()))
            }
        },
    )
    .await;

    if let Some(status) = exited() {
        panic!("podtrace run exited with {status}:\n{}", log_tail());
    }
    denied();
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
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::erase::<podtrace::session::TraceSession>(&()),
    );
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
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
    poll(
        "a valid TraceSession to be accepted",
        Duration::from_secs(30),
        || async {
            create(valid_session("valid"))
                .await
                .map(|_| Some(()))
                .map_err(|e| e.to_string())
        },
    )
    .await;

    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, &[&str])> = vec![
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
        (
            "empty operations",
            Box::new(|s| s["spec"]["operations"] = json!([])),
            &["spec.operations", "at least 1"],
        ),
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
        (
            "maxTraces 0",
            Box::new(|s| s["spec"]["maxTraces"] = json!(0)),
            &["spec.maxTraces", "greater than or equal to 1"],
        ),
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
                eprintln!("{what}: {}", status.message);
                let missing: Vec<_> = expected
                    .iter()
                    .filter(|e| !status.message.contains(**e))
                    .collect();
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
    assert!(
        wrong.is_empty(),
        "invalid TraceSessions not refused as expected:\n  {}",
        wrong.join("\n  ")
    );
}

#[tokio::test]
async fn samples_are_accepted_by_the_api_server() {
    let client = admin_client().await;
    ensure_crd(&client).await;
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    for mut obj in render("config/samples") {
        // What `kubectl apply -n default -k config/samples` does; dry-run leaves nothing behind.
        obj["metadata"]["namespace"] = json!("default");
        let (api, _) = api_for(&client, &obj).await;
        let what = format!("{} {}", obj["kind"], obj["metadata"]["name"]);
        let obj: DynamicObject = serde_json::from_value(obj).unwrap();
        poll(
            &format!("the API server to accept sample {what}"),
            Duration::from_secs(30),
            || async {
                api.create(&dry, &obj)
                    .await
                    .map(|_| Some(()))
                    .map_err(|e| e.to_string())
            },
        )
        .await;
    }
}
