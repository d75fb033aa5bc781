//! The Helm chart in `charts/podtrace`, rendered by the real `helm` (built by
//! `tests/env/build.sh helm`): `helm lint --strict`, and `helm template` with several value
//! sets, checked against the kustomize manifests in `config/`. No cluster needed;
//! `tests/e2e_helm.rs` installs the chart for real.
//!
//! The RBAC checks compare with `config/rbac` grant for grant, for every value set: the
//! chart must never be wider than the manifests the project tests against a live API server,
//! and never narrower than what the controller needs.

mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};

const CHART: &str = "charts/podtrace";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn yaml_docs(text: &str, origin: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{origin} is not valid YAML: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// Runs helm with `args` and a values file holding `values`; Ok(stdout) or Err(stderr).
fn helm(args: &[&str], values: &Value) -> Result<String, String> {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("values.json");
    // JSON is YAML, so this is a values file.
    std::fs::write(&file, serde_json::to_vec(values).unwrap()).unwrap();
    let out = tools::helm(home.path())
        .args(args)
        .arg(root().join(CHART))
        .arg("--values")
        .arg(&file)
        .output()
        .expect("running helm");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `helm template RELEASE -n NAMESPACE` with `values`, parsed.
fn render(release: &str, namespace: &str, values: &Value) -> Vec<Value> {
    let text = helm(
        &[
            "template",
            release,
            "--namespace",
            namespace,
            "--include-crds",
        ],
        values,
    )
    .unwrap_or_else(|e| panic!("helm template with {values} failed:\n{e}"));
    yaml_docs(&text, &format!("helm template with {values}"))
}

fn render_err(values: &Value) -> String {
    match helm(&["template", "podtrace", "--namespace", "x"], values) {
        Ok(_) => panic!("helm template accepted {values}"),
        Err(e) => e,
    }
}

fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    let all = of_kind(objs, kind);
    assert_eq!(all.len(), 1, "expected one {kind}, got {}", all.len());
    all[0]
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

/// The value sets the chart is rendered with; every test that says "each value set" walks
/// them all.
fn value_sets() -> Vec<(&'static str, Value)> {
    vec![
        ("defaults", json!({})),
        ("namespace-scoped", json!({"watchNamespace": "shop"})),
        (
            "single replica without leader election",
            json!({"replicaCount": 1, "leaderElection": {"enabled": false}}),
        ),
        (
            "namespace-scoped, no leader election",
            json!({"watchNamespace": "shop", "replicaCount": 1, "leaderElection": {"enabled": false}}),
        ),
        (
            "everything on",
            json!({
                "replicaCount": 3,
                "serviceMonitor": {"enabled": true, "labels": {"release": "kube-prometheus-stack"}},
                "otlp": {"endpoint": "https://otel.example:4318", "protocol": "http/protobuf",
                         "headersSecret": {"name": "otlp-auth", "key": "h"},
                         "resourceAttributes": "k8s.cluster.name=prod"},
                "serviceAccount": {"name": "tracer", "annotations": {"a": "b"}},
                "extraArgs": ["--grace=5s"],
                "logLevel": "debug",
                "image": {"tag": "dev"},
            }),
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Lint and structure
// ---------------------------------------------------------------------------------------

#[test]
fn helm_lint_is_clean_for_every_value_set() {
    for (name, values) in value_sets() {
        let out = helm(&["lint", "--strict"], &values)
            .unwrap_or_else(|e| panic!("helm lint --strict ({name}) failed:\n{e}"));
        assert!(
            out.contains("0 chart(s) failed"),
            "helm lint ({name}):\n{out}"
        );
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "helm lint ({name}) complains:\n{out}"
        );
    }
}

#[test]
fn chart_versions_follow_the_crate() {
    let chart = &yaml_docs(&read("charts/podtrace/Chart.yaml"), "Chart.yaml")[0];
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "podtrace");
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
    // config/manager pins the same image; the chart's default is repository:appVersion.
    let dep = config_deployment();
    let image = render("podtrace", "podtrace-system", &json!({}))
        .into_iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .clone();
    assert_eq!(
        image, dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "chart and config/manager deploy different images"
    );
}

/// Helm installs `crds/` as is, so a stale copy would install an outdated schema.
#[test]
fn chart_crd_is_the_generated_crd() {
    let generated = podtrace::crd::crd_yaml().expect("generating the CRD");
    let rel = "charts/podtrace/crds/tracesessions.podtrace.dev.yaml";
    assert!(
        read(rel) == generated,
        "{rel} differs from `podtrace crd` (src/session.rs changed?). Run `make crds`, \
         which regenerates every copy, and commit them."
    );
    let files: Vec<String> = std::fs::read_dir(root().join("charts/podtrace/crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        ["tracesessions.podtrace.dev.yaml"],
        "charts/podtrace/crds"
    );
    // And helm really ships it.
    let objs = render("podtrace", "podtrace-system", &json!({}));
    assert_eq!(of_kind(&objs, "CustomResourceDefinition").len(), 1);
}

#[test]
fn every_object_lives_in_the_release_namespace_unless_cluster_scoped() {
    for (name, values) in value_sets() {
        let objs = render("tracer", "observability", &values);
        let watched = values["watchNamespace"].as_str();
        for o in &objs {
            let kind = o["kind"].as_str().unwrap();
            let what = format!("{name}: {kind} {}", o["metadata"]["name"]);
            match kind {
                "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding" => {
                    assert!(o["metadata"]["namespace"].is_null(), "{what}")
                }
                // The read Role of a namespace-scoped install belongs where the pods are.
                "Role" | "RoleBinding"
                    if !o["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .ends_with("-leader-election") =>
                {
                    assert_eq!(o["metadata"]["namespace"].as_str(), watched, "{what}")
                }
                _ => assert_eq!(o["metadata"]["namespace"], "observability", "{what}"),
            }
            if kind != "CustomResourceDefinition" {
                assert_eq!(
                    o["metadata"]["labels"]["app.kubernetes.io/instance"], "tracer",
                    "{what}: every object is labelled with its release"
                );
            }
            assert_ne!(kind, "Secret", "{what}: the chart must not create Secrets");
        }
    }
}

// ---------------------------------------------------------------------------------------
// RBAC: exactly config/rbac's grants
// ---------------------------------------------------------------------------------------

/// (apiGroup, resource, verb) triples, so splitting or merging rules does not matter but
/// any added verb, resource or group does.
type Grants = BTreeSet<(String, String, String)>;

fn grants(role: &Value) -> Grants {
    let name = role["metadata"]["name"].as_str().unwrap_or("?");
    let mut out = Grants::new();
    for rule in role["rules"].as_array().expect("rules") {
        for key in rule.as_object().unwrap().keys() {
            assert!(
                ["apiGroups", "resources", "verbs"].contains(&key.as_str()),
                "{name}: rule uses {key}; resourceNames/nonResourceURLs are not expected"
            );
        }
        for g in str_list(&rule["apiGroups"]) {
            for r in str_list(&rule["resources"]) {
                for v in str_list(&rule["verbs"]) {
                    for s in [&g, &r, &v] {
                        assert!(!s.contains('*'), "{name}: wildcard in {rule}");
                    }
                    out.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    out
}

fn config_object(file: &str) -> Value {
    yaml_docs(&read(&format!("config/rbac/{file}")), file).remove(0)
}

fn config_deployment() -> Value {
    yaml_docs(
        &read("config/manager/deployment.yaml"),
        "config/manager/deployment.yaml",
    )
    .remove(0)
}

fn assert_same(what: &str, actual: &Grants, expected: &Grants) {
    let extra: Vec<_> = actual.difference(expected).collect();
    let missing: Vec<_> = expected.difference(actual).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{what} differs from config/rbac.\n  granted but not in config/rbac: {extra:?}\n  \
         in config/rbac but not granted: {missing:?}"
    );
}

fn is_node_rule(g: &(String, String, String)) -> bool {
    g.0.is_empty() && g.1 == "nodes"
}

#[test]
fn rbac_is_config_rbac_for_every_value_set() {
    let cluster_role = grants(&config_object("cluster_role.yaml"));
    let lease_role = grants(&config_object("leader_election_role.yaml"));
    // The rules that a Role can hold (everything but the cluster-scoped Nodes).
    let namespaced: Grants = cluster_role
        .iter()
        .filter(|g| !is_node_rule(g))
        .cloned()
        .collect();
    let nodes: Grants = cluster_role
        .iter()
        .filter(|g| is_node_rule(g))
        .cloned()
        .collect();
    assert!(!nodes.is_empty() && !namespaced.is_empty());

    for (name, values) in value_sets() {
        let ns = "observability";
        let objs = render("tracer", ns, &values);
        let sa_name = one(&objs, "ServiceAccount")["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let leader = values["leaderElection"]["enabled"] != false;
        let watched = values["watchNamespace"].as_str();

        // Every role, keyed by (kind, namespace), with its grants.
        let mut roles: BTreeMap<(String, Option<String>, String), Grants> = BTreeMap::new();
        for kind in ["ClusterRole", "Role"] {
            for r in of_kind(&objs, kind) {
                roles.insert(
                    (
                        kind.to_owned(),
                        r["metadata"]["namespace"].as_str().map(String::from),
                        r["metadata"]["name"].as_str().unwrap().to_owned(),
                    ),
                    grants(r),
                );
            }
        }
        let find = |kind: &str, namespace: Option<&str>, pred: &dyn Fn(&str) -> bool| {
            let found: Vec<&Grants> = roles
                .iter()
                .filter(|((k, n, nm), _)| k == kind && n.as_deref() == namespace && pred(nm))
                .map(|(_, g)| g)
                .collect();
            found
        };
        let lease_roles = find("Role", Some(ns), &|n| n.ends_with("-leader-election"));
        if leader {
            assert_eq!(lease_roles.len(), 1, "{name}: one Lease Role in {ns}");
            assert_same(&format!("{name}: Lease Role"), lease_roles[0], &lease_role);
        } else {
            assert!(
                lease_roles.is_empty(),
                "{name}: no Lease Role without leader election"
            );
        }
        let cluster_roles = find("ClusterRole", None, &|_| true);
        assert_eq!(cluster_roles.len(), 1, "{name}: one ClusterRole");
        match watched {
            None => {
                assert_same(
                    &format!("{name}: ClusterRole"),
                    cluster_roles[0],
                    &cluster_role,
                );
                assert_eq!(
                    roles.len(),
                    1 + usize::from(leader),
                    "{name}: roles {roles:?}"
                );
            }
            Some(w) => {
                let read = find("Role", Some(w), &|n| !n.ends_with("-leader-election"));
                assert_eq!(read.len(), 1, "{name}: one read Role in {w}");
                assert_same(&format!("{name}: Role in {w}"), read[0], &namespaced);
                assert_same(
                    &format!("{name}: nodes ClusterRole"),
                    cluster_roles[0],
                    &nodes,
                );
                assert_eq!(
                    roles.len(),
                    2 + usize::from(leader),
                    "{name}: roles {roles:?}"
                );
            }
        }

        // Each binding grants exactly its role to the chart's ServiceAccount, nothing else.
        let bindings: Vec<&Value> = of_kind(&objs, "RoleBinding")
            .into_iter()
            .chain(of_kind(&objs, "ClusterRoleBinding"))
            .collect();
        assert_eq!(bindings.len(), roles.len(), "{name}: one binding per role");
        for b in bindings {
            let role_kind = if b["kind"] == "RoleBinding" {
                "Role"
            } else {
                "ClusterRole"
            };
            let key = (
                role_kind.to_owned(),
                b["metadata"]["namespace"].as_str().map(String::from),
                b["roleRef"]["name"].as_str().unwrap().to_owned(),
            );
            assert!(
                roles.contains_key(&key),
                "{name}: {} refers to {key:?}",
                b["metadata"]["name"]
            );
            assert_eq!(b["roleRef"]["kind"], role_kind);
            assert_eq!(b["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
            assert_eq!(
                b["subjects"],
                json!([{"kind": "ServiceAccount", "name": sa_name, "namespace": ns}]),
                "{name}: {} subjects",
                b["metadata"]["name"]
            );
        }
    }
}

#[test]
fn rbac_and_service_account_can_be_left_to_the_user() {
    let objs = render(
        "podtrace",
        "ns",
        &json!({"rbac": {"create": false}, "serviceAccount": {"create": false, "name": "mine"}}),
    );
    for kind in [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    ] {
        assert!(of_kind(&objs, kind).is_empty(), "{kind} rendered");
    }
    assert_eq!(
        one(&objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
        "mine"
    );
    let e = render_err(&json!({"serviceAccount": {"create": false}}));
    assert!(e.contains("serviceAccount.name is required"), "{e}");
}

// ---------------------------------------------------------------------------------------
// The Deployment: config/manager's hardening and the values
// ---------------------------------------------------------------------------------------

fn container(dep: &Value) -> &Value {
    let cs = dep["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(cs.len(), 1);
    &cs[0]
}

fn env_of(c: &Value) -> BTreeMap<String, Value> {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

#[test]
fn defaults_match_config_manager_hardening_replicas_and_probes() {
    let objs = render("podtrace", "podtrace-system", &json!({}));
    let dep = one(&objs, "Deployment");
    let want = config_deployment();
    assert_eq!(dep["metadata"]["name"], want["metadata"]["name"]);
    assert_eq!(dep["spec"]["replicas"], 2);
    assert_eq!(dep["spec"]["replicas"], want["spec"]["replicas"]);
    let (pod, want_pod) = (
        &dep["spec"]["template"]["spec"],
        &want["spec"]["template"]["spec"],
    );
    for field in [
        "securityContext",
        "terminationGracePeriodSeconds",
        "serviceAccountName",
    ] {
        assert_eq!(pod[field], want_pod[field], "pod {field}");
    }
    assert_ne!(pod["automountServiceAccountToken"], false);
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(pod[host].is_null(), "{host}");
    }
    let (c, want_c) = (container(dep), container(&want));
    for field in [
        "securityContext",
        "livenessProbe",
        "readinessProbe",
        "ports",
        "resources",
        "image",
        "imagePullPolicy",
        "name",
    ] {
        assert_eq!(c[field], want_c[field], "container {field}");
    }
    // Spelled out too, so that a change to both copies at once still has to pass here.
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert!(sc["runAsUser"].as_i64().is_some_and(|u| u > 0));
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"], json!({"drop": ["ALL"]}));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");

    // config/manager's args and env, and only the Lease name on top.
    let args = str_list(&c["args"]);
    let want_args = str_list(&want_c["args"]);
    assert_eq!(args[0], "run");
    for a in &want_args {
        assert!(args.contains(a), "missing arg {a}: {args:?}");
    }
    let extra: Vec<&String> = args.iter().filter(|a| !want_args.contains(a)).collect();
    assert_eq!(extra, ["--lease-name=podtrace-controller"], "{args:?}");
    assert_eq!(env_of(c), env_of(want_c), "env");

    // The anti-affinity spreads replicas like config/manager's (selector labels differ: the
    // chart adds the release).
    let term =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(
        term["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    let pod_labels = &dep["spec"]["template"]["metadata"]["labels"];
    for (k, v) in term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&pod_labels[k], v, "anti-affinity selector {k}");
    }

    let pdb = one(&objs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        dep["spec"]["selector"]["matchLabels"]
    );
    for (k, v) in dep["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "selector {k} misses the pods");
    }
    let svc = one(&objs, "Service");
    assert_eq!(svc["metadata"]["name"], "podtrace-metrics");
    assert_eq!(
        svc["spec"]["selector"],
        dep["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(svc["metadata"]["annotations"]["prometheus.io/port"], "8080");
    assert!(
        of_kind(&objs, "ServiceMonitor").is_empty(),
        "ServiceMonitor is off by default"
    );
}

#[test]
fn otlp_values_become_the_environment_and_headers_come_only_from_a_secret() {
    let objs = render(
        "podtrace",
        "o11y",
        &json!({"otlp": {"endpoint": "http://collector.o11y:4318", "protocol": "http/protobuf",
                         "headersSecret": {"name": "otlp-auth", "key": "headers"},
                         "resourceAttributes": "k8s.cluster.name=prod-eu-1"}}),
    );
    let env = env_of(container(one(&objs, "Deployment")));
    assert_eq!(
        env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"],
        "http://collector.o11y:4318"
    );
    assert_eq!(env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"], "http/protobuf");
    assert_eq!(
        env["OTEL_RESOURCE_ATTRIBUTES"]["value"],
        "k8s.cluster.name=prod-eu-1"
    );
    assert_eq!(
        env["OTEL_EXPORTER_OTLP_HEADERS"],
        json!({"name": "OTEL_EXPORTER_OTLP_HEADERS",
               "valueFrom": {"secretKeyRef": {"name": "otlp-auth", "key": "headers"}}}),
        "headers must be a secretKeyRef, never a value"
    );
    // Without a Secret there is no header variable at all.
    let plain = render("podtrace", "o11y", &json!({}));
    assert!(
        !env_of(container(one(&plain, "Deployment"))).contains_key("OTEL_EXPORTER_OTLP_HEADERS")
    );

    // Inline headers have no value to go into: the schema refuses them, naming the key.
    for bad in [
        json!({"otlp": {"headers": "Authorization=Bearer s3cret"}}),
        json!({"otlp": {"headersSecret": {"value": "s3cret"}}}),
    ] {
        let e = render_err(&bad);
        assert!(e.contains("additional properties"), "{bad}: {e}");
        assert!(!e.contains("s3cret"), "helm echoed the secret: {e}");
    }
    let e = render_err(&json!({"otlp": {"protocol": "http"}}));
    assert!(e.contains("grpc") && e.contains("http/protobuf"), "{e}");
    let e = render_err(&json!({"otlp": {"endpoint": "collector:4317"}}));
    assert!(e.contains("/otlp/endpoint"), "{e}");
}

#[test]
fn watching_one_namespace_passes_it_to_the_controller() {
    let objs = render(
        "podtrace",
        "podtrace-system",
        &json!({"watchNamespace": "shop"}),
    );
    let args = str_list(&container(one(&objs, "Deployment"))["args"]);
    assert!(args.contains(&"--namespace=shop".to_owned()), "{args:?}");
    let all = render("podtrace", "podtrace-system", &json!({}));
    let args = str_list(&container(one(&all, "Deployment"))["args"]);
    assert!(
        !args.iter().any(|a| a.starts_with("--namespace")),
        "{args:?}"
    );
    let e = render_err(&json!({"watchNamespace": "Not_A_Namespace"}));
    assert!(e.contains("/watchNamespace"), "{e}");
}

#[test]
fn replicas_leader_election_and_pdb_go_together() {
    let objs = render("podtrace", "ns", &json!({"replicaCount": 3}));
    assert_eq!(one(&objs, "Deployment")["spec"]["replicas"], 3);
    assert_eq!(of_kind(&objs, "PodDisruptionBudget").len(), 1);

    let single = render(
        "podtrace",
        "ns",
        &json!({"replicaCount": 1, "leaderElection": {"enabled": false}}),
    );
    let c = container(one(&single, "Deployment"));
    let args = str_list(&c["args"]);
    assert!(
        args.contains(&"--leader-elect=false".to_owned()),
        "{args:?}"
    );
    assert!(
        !args.iter().any(|a| a.starts_with("--lease-name")),
        "{args:?}"
    );
    // A PDB over one replica would block every node drain.
    assert!(of_kind(&single, "PodDisruptionBudget").is_empty());

    let named = render(
        "podtrace",
        "ns",
        &json!({"leaderElection": {"leaseName": "my-lease"}}),
    );
    let args = str_list(&container(one(&named, "Deployment"))["args"]);
    assert!(
        args.contains(&"--lease-name=my-lease".to_owned()),
        "{args:?}"
    );

    let e = render_err(&json!({"leaderElection": {"enabled": false}}));
    assert!(
        e.contains("replicaCount > 1 needs leaderElection.enabled"),
        "{e}"
    );
}

#[test]
fn resources_image_and_extra_args_are_values() {
    let objs = render(
        "podtrace",
        "ns",
        &json!({
            // Helm merges maps: a key is removed with null, as for any chart.
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"cpu": null, "memory": "1Gi"}},
            "image": {"repository": "registry.example/podtrace", "tag": "dev", "pullPolicy": "Always"},
            "extraArgs": ["--grace=5s", "--export-queue-capacity=20000"],
            "logFormat": "text",
        }),
    );
    let c = container(one(&objs, "Deployment"));
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}})
    );
    assert_eq!(c["image"], "registry.example/podtrace:dev");
    assert_eq!(c["imagePullPolicy"], "Always");
    let args = str_list(&c["args"]);
    assert!(args.ends_with(&["--grace=5s".into(), "--export-queue-capacity=20000".into()]));
    assert!(args.contains(&"--log-format=text".to_owned()));
    // A typo'd key fails instead of being ignored.
    let e = render_err(&json!({"replicas": 3}));
    assert!(e.contains("additional properties 'replicas'"), "{e}");
}

#[test]
fn service_monitor_scrapes_the_metrics_service_when_enabled() {
    let objs = render(
        "podtrace",
        "ns",
        &json!({"serviceMonitor": {"enabled": true, "interval": "15s", "labels": {"release": "prom"}},
                "metrics": {"port": 9100}}),
    );
    let sm = one(&objs, "ServiceMonitor");
    let svc = one(&objs, "Service");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor selector {k} misses the Service"
        );
    }
    assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"], json!(["ns"]));
    let ep = &sm["spec"]["endpoints"][0];
    assert_eq!(ep["port"], svc["spec"]["ports"][0]["name"]);
    assert_eq!(ep["path"], "/metrics");
    assert_eq!(ep["interval"], "15s");
    // The port value moves the container port, the probes (by name), the flag and the
    // scrape annotation together.
    let c = container(one(&objs, "Deployment"));
    assert_eq!(c["ports"][0]["containerPort"], 9100);
    assert!(str_list(&c["args"]).contains(&"--metrics-addr=0.0.0.0:9100".to_owned()));
    assert_eq!(svc["spec"]["ports"][0]["port"], 9100);
    assert_eq!(svc["metadata"]["annotations"]["prometheus.io/port"], "9100");

    let e = render_err(
        &json!({"serviceMonitor": {"enabled": true}, "metrics": {"service": {"enabled": false}}}),
    );
    assert!(
        e.contains("serviceMonitor.enabled needs metrics.service.enabled"),
        "{e}"
    );
}
