//! Static checks of the deployment artefacts under `config/`, the dashboards and the
//! Dockerfile. No cluster needed; `tests/e2e_deploy.rs` proves the API server agrees.
//!
//! The RBAC checks pin the exact rule set on purpose: widening podtrace's permissions
//! must be a deliberate edit here, not a side effect of a manifest change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const NAMESPACE: &str = "podtrace-system";
const SERVICE_ACCOUNT: &str = "podtrace";
const IMAGE: &str = "ghcr.io/podtrace/podtrace:0.1.0";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn parse_yaml_docs(text: &str, origin: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{origin} is not valid YAML: {e}"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("listing {}: {e}", d.display()))
        {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn is_kustomization(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "kustomization.yaml")
}

/// Every Kubernetes object in config/ (kustomization files excluded), with its file.
fn objects() -> Vec<(PathBuf, Value)> {
    yaml_files(&root().join("config"))
        .into_iter()
        .filter(|p| !is_kustomization(p))
        .flat_map(|p| {
            let docs = parse_yaml_docs(&read(&p), &p.display().to_string());
            docs.into_iter().map(move |d| (p.clone(), d))
        })
        .collect()
}

fn objects_of_kind(kind: &str) -> Vec<Value> {
    objects()
        .into_iter()
        .filter(|(_, o)| o["kind"] == kind)
        .map(|(_, o)| o)
        .collect()
}

fn one_of_kind(kind: &str) -> Value {
    let mut all = objects_of_kind(kind);
    assert_eq!(
        all.len(),
        1,
        "expected exactly one {kind} under config/, found {}",
        all.len()
    );
    all.remove(0)
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("string list").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_config_yaml_parses_into_named_objects() {
    let files = yaml_files(&root().join("config"));
    assert!(files.len() >= 15, "config/ looks incomplete: {files:?}");
    for path in files {
        let docs = parse_yaml_docs(&read(&path), &path.display().to_string());
        assert!(!docs.is_empty(), "{} has no YAML document", path.display());
        for doc in docs {
            let where_ = path.display();
            assert!(
                doc["apiVersion"].is_string(),
                "{where_}: a document lacks apiVersion"
            );
            assert!(doc["kind"].is_string(), "{where_}: a document lacks kind");
            if is_kustomization(&path) {
                assert_eq!(doc["kind"], "Kustomization", "{where_}");
            } else {
                assert!(
                    doc["metadata"]["name"].is_string(),
                    "{where_}: object without metadata.name"
                );
            }
        }
    }
}

/// A manifest dropped into a directory but not listed in its kustomization silently never
/// gets deployed; a listed file that is missing breaks `kubectl apply -k`.
#[test]
fn kustomizations_reference_exactly_the_files_beside_them() {
    for kfile in yaml_files(&root().join("config"))
        .into_iter()
        .filter(|p| is_kustomization(p))
    {
        let dir = kfile.parent().unwrap();
        let k = &parse_yaml_docs(&read(&kfile), &kfile.display().to_string())[0];
        let mut referenced = BTreeSet::new();
        for r in str_list(&k["resources"]) {
            let target = dir.join(&r);
            assert!(
                target.exists(),
                "{}: resource {r} does not exist",
                kfile.display()
            );
            if target.is_dir() {
                assert!(
                    target.join("kustomization.yaml").exists(),
                    "{}: resource {r} is a directory without kustomization.yaml",
                    kfile.display()
                );
            }
            referenced.insert(target.canonicalize().unwrap());
        }
        for generator in k["configMapGenerator"].as_array().into_iter().flatten() {
            for f in str_list(&generator["files"]) {
                let target = dir.join(&f);
                assert!(
                    target.exists(),
                    "{}: generator file {f} does not exist",
                    kfile.display()
                );
                referenced.insert(target.canonicalize().unwrap());
            }
        }
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            let manifest = p.is_file()
                && !is_kustomization(&p)
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                );
            if manifest {
                assert!(
                    referenced.contains(&p.canonicalize().unwrap()),
                    "{} is not referenced by {}",
                    p.display(),
                    kfile.display()
                );
            }
        }
    }
}

#[test]
fn crd_copies_are_fresh() {
    let generated = podtrace::crd::crd_yaml().expect("generating the CRD");
    for rel in [
        podtrace::crd::CRD_PATH,
        "config/crd/tracesessions.podtrace.dev.yaml",
    ] {
        let on_disk = read(&root().join(rel));
        assert!(
            on_disk == generated,
            "{rel} differs from `podtrace crd` (src/session.rs changed?). Run `make crds` to \
             regenerate crds/ and config/crd/, then commit both."
        );
    }
}

/// (apiGroup, resource, verb) triples, so that splitting or merging rules does not matter
/// but any added verb, resource or group does.
type Grants = BTreeSet<(String, String, String)>;

fn grants(role: &Value) -> Grants {
    let name = role["metadata"]["name"].as_str().unwrap_or("?");
    let mut out = Grants::new();
    for rule in role["rules"].as_array().expect("rules") {
        let keys: BTreeSet<&str> = rule
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let allowed: BTreeSet<&str> = ["apiGroups", "resources", "verbs"].into();
        assert!(
            keys.is_subset(&allowed),
            "{name}: rule uses {keys:?}; resourceNames/nonResourceURLs are not expected here"
        );
        let (groups, resources, verbs) = (
            str_list(&rule["apiGroups"]),
            str_list(&rule["resources"]),
            str_list(&rule["verbs"]),
        );
        for s in groups.iter().chain(&resources).chain(&verbs) {
            assert!(!s.contains('*'), "{name}: wildcard {s:?} in {rule}");
        }
        for g in &groups {
            for r in &resources {
                for v in &verbs {
                    out.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    out
}

fn expect(triples: &[(&str, &[&str], &[&str])]) -> Grants {
    let mut out = Grants::new();
    for (g, resources, verbs) in triples {
        for r in *resources {
            for v in *verbs {
                out.insert((g.to_string(), r.to_string(), v.to_string()));
            }
        }
    }
    out
}

fn assert_same_grants(role: &str, actual: &Grants, expected: &Grants) {
    let extra: Vec<_> = actual.difference(expected).collect();
    let missing: Vec<_> = expected.difference(actual).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{role} is not the least-privilege set.\n  granted but not needed: {extra:?}\n  \
         needed but not granted: {missing:?}"
    );
}

const READ: &[&str] = &["get", "list", "watch"];

#[test]
fn cluster_role_is_exactly_least_privilege() {
    let role = one_of_kind("ClusterRole");
    assert_eq!(role["metadata"]["name"], "podtrace");
    let expected = expect(&[
        ("", &["pods", "events", "nodes"], READ),
        ("events.k8s.io", &["events"], READ),
        ("podtrace.dev", &["tracesessions"], READ),
        (
            "podtrace.dev",
            &["tracesessions/status"],
            &["get", "patch", "update"],
        ),
    ]);
    assert_same_grants("ClusterRole podtrace", &grants(&role), &expected);
}

#[test]
fn leader_election_role_only_touches_leases_in_own_namespace() {
    let role = one_of_kind("Role");
    assert_eq!(
        role["metadata"]["namespace"], NAMESPACE,
        "the Lease Role must live in {NAMESPACE}"
    );
    let expected = expect(&[(
        "coordination.k8s.io",
        &["leases"],
        &["get", "create", "update"],
    )]);
    assert_same_grants("Role podtrace-leader-election", &grants(&role), &expected);
}

#[test]
fn bindings_grant_each_role_to_the_podtrace_service_account_only() {
    let sa = one_of_kind("ServiceAccount");
    assert_eq!(sa["metadata"]["name"], SERVICE_ACCOUNT);
    assert_eq!(sa["metadata"]["namespace"], NAMESPACE);

    let role = one_of_kind("Role");
    let cluster_role = one_of_kind("ClusterRole");
    for (binding_kind, role_kind, role) in [
        ("RoleBinding", "Role", &role),
        ("ClusterRoleBinding", "ClusterRole", &cluster_role),
    ] {
        let binding = one_of_kind(binding_kind);
        assert_eq!(
            binding["roleRef"]["kind"], role_kind,
            "{binding_kind}.roleRef.kind"
        );
        assert_eq!(
            binding["roleRef"]["name"], role["metadata"]["name"],
            "{binding_kind}.roleRef.name"
        );
        assert_eq!(binding["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        let subjects = binding["subjects"].as_array().expect("subjects");
        assert_eq!(
            subjects.len(),
            1,
            "{binding_kind} must bind only the podtrace ServiceAccount"
        );
        assert_eq!(subjects[0]["kind"], "ServiceAccount");
        assert_eq!(subjects[0]["name"], SERVICE_ACCOUNT);
        assert_eq!(subjects[0]["namespace"], NAMESPACE);
        if binding_kind == "RoleBinding" {
            assert_eq!(binding["metadata"]["namespace"], NAMESPACE);
        }
    }
}

fn deployment() -> Value {
    objects_of_kind("Deployment")
        .into_iter()
        .find(|d| d["metadata"]["name"] == "podtrace")
        .expect("Deployment podtrace under config/manager")
}

fn container(dep: &Value) -> Value {
    let containers = dep["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "podtrace runs as a single container");
    containers[0].clone()
}

#[test]
fn deployment_runs_two_leader_elected_replicas_of_the_released_image() {
    let dep = deployment();
    assert_eq!(dep["metadata"]["namespace"], NAMESPACE);
    assert_eq!(dep["spec"]["replicas"], 2);
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], SERVICE_ACCOUNT);
    assert_ne!(
        pod["automountServiceAccountToken"], false,
        "the controller needs its token"
    );
    let c = container(&dep);
    assert_eq!(c["image"], IMAGE);
    let args = str_list(&c["args"]);
    // args replace the image CMD, so the subcommand must come first.
    assert_eq!(
        args.first().map(String::as_str),
        Some("run"),
        "args: {args:?}"
    );
    assert!(
        args.iter().any(|a| a == "--leader-elect=true"),
        "args: {args:?}"
    );
    assert!(
        args.iter().any(|a| a == "--metrics-addr=0.0.0.0:8080"),
        "args: {args:?}"
    );

    let env: BTreeMap<String, Value> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
        .collect();
    let endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"]
        .as_str()
        .expect("OTLP endpoint value");
    assert!(
        endpoint.starts_with("http://") || endpoint.starts_with("https://"),
        "{endpoint}"
    );
    for (var, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        assert_eq!(
            env.get(var)
                .map(|e| &e["valueFrom"]["fieldRef"]["fieldPath"]),
            Some(&Value::from(field)),
            "{var} must come from the downward API ({field}): leader election needs it"
        );
    }

    // The manager kustomization must keep the image overridable and consistent.
    let k = &parse_yaml_docs(
        &read(&root().join("config/manager/kustomization.yaml")),
        "manager",
    )[0];
    let images = k["images"]
        .as_array()
        .expect("images in config/manager/kustomization.yaml");
    let (name, tag) = IMAGE.rsplit_once(':').unwrap();
    assert!(
        images
            .iter()
            .any(|i| i["name"] == name && i["newTag"] == tag),
        "{images:?}"
    );
    assert_eq!(
        tag,
        env!("CARGO_PKG_VERSION"),
        "image tag should follow the crate version"
    );
}

#[test]
fn deployment_is_hardened() {
    let dep = deployment();
    let pod_sc = &dep["spec"]["template"]["spec"]["securityContext"];
    let c = container(&dep);
    let sc = &c["securityContext"];
    for (what, ctx) in [("pod", pod_sc), ("container", sc)] {
        assert_eq!(ctx["runAsNonRoot"], true, "{what} runAsNonRoot");
        let uid = ctx["runAsUser"]
            .as_i64()
            .unwrap_or_else(|| panic!("{what} runAsUser must be numeric"));
        assert!(uid > 0, "{what} runAsUser must not be root");
        assert_eq!(
            ctx["seccompProfile"]["type"], "RuntimeDefault",
            "{what} seccomp"
        );
    }
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert!(
        !sc["privileged"].as_bool().unwrap_or(false),
        "privileged container"
    );
    assert_eq!(str_list(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(
        sc["capabilities"]["add"].is_null(),
        "no capabilities may be added"
    );
    let pod = &dep["spec"]["template"]["spec"];
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod[host], true, "{host}");
    }
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][res].is_string(),
                "resources.{kind}.{res} must be set"
            );
        }
    }

    let port = c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "metrics")
        .cloned();
    assert_eq!(
        port.expect("container port named metrics")["containerPort"],
        8080
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe} path");
        assert!(
            get["port"] == "metrics" || get["port"] == 8080,
            "{probe} port: {}",
            get["port"]
        );
    }
}

#[test]
fn metrics_service_and_pdb_select_the_controller_pods() {
    let dep = deployment();
    let pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap()
        .clone();
    let selects = |sel: &Value, what: &str| {
        let sel = sel
            .as_object()
            .unwrap_or_else(|| panic!("{what} has no selector"));
        assert!(!sel.is_empty(), "{what}: empty selector");
        for (k, v) in sel {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "{what} selector {k}={v} misses the pods"
            );
        }
    };
    let svc = one_of_kind("Service");
    assert_eq!(svc["metadata"]["namespace"], NAMESPACE);
    selects(&svc["spec"]["selector"], "Service");
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["name"], "metrics");
    assert_eq!(port["port"], 8080);
    assert!(port["targetPort"] == "metrics" || port["targetPort"] == 8080);

    let pdb = one_of_kind("PodDisruptionBudget");
    selects(
        &pdb["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget",
    );
    assert!(
        pdb["spec"]["maxUnavailable"] == 1 || pdb["spec"]["minAvailable"] == 1,
        "with 2 replicas the PDB must keep one running: {}",
        pdb["spec"]
    );
    // And the ServiceMonitor for Prometheus Operator users points at that port.
    let sm = one_of_kind("ServiceMonitor");
    selects(&sm["spec"]["selector"]["matchLabels"], "ServiceMonitor");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
}

#[test]
fn sample_session_is_a_valid_trace_session_following_the_sample_deployment() {
    use podtrace::session::{Operation, RESERVED_ATTRIBUTE_PREFIXES, TraceSession};

    let path = root().join("config/samples/tracesession.yaml");
    let session: TraceSession =
        serde_saphyr::from_str(&read(&path)).expect("sample matches the Rust types");
    let spec = &session.spec;
    assert_eq!(spec.operations, [Operation::PodStartup]);
    let labels = spec.selector.match_labels.clone().expect("matchLabels");
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    let duration = spec.duration.as_deref().expect("sample sets a duration");
    assert!(
        duration
            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .parse::<u32>()
            .is_ok_and(|n| n > 0),
        "duration {duration:?} should be a simple positive Go duration"
    );
    assert!(spec.max_traces.is_some_and(|n| n >= 1));
    assert!(
        !spec.attributes.is_empty(),
        "sample shows session attributes"
    );
    for key in spec.attributes.keys() {
        assert!(
            !RESERVED_ATTRIBUTE_PREFIXES
                .iter()
                .any(|p| key.starts_with(p)),
            "sample attribute {key} is reserved"
        );
    }

    let web = objects_of_kind("Deployment")
        .into_iter()
        .find(|d| d["metadata"]["name"] == "web")
        .expect("sample Deployment web");
    let pod_labels = &web["spec"]["template"]["metadata"]["labels"];
    for (k, v) in &labels {
        assert_eq!(
            pod_labels[k],
            v.as_str(),
            "sample session selector {k}={v} misses the web pods"
        );
    }
    assert!(
        web["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].is_object(),
        "the readiness phase needs a probe to be interesting"
    );
}

fn dashboard(name: &str) -> Value {
    let path = root().join("config/dashboards").join(name);
    serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// Every panel (rows flattened) with its targets; checks the panels all use the templated
/// datasource so the dashboard works whatever the datasource's uid is.
fn panels_and_queries(d: &Value, ds_type: &str, query_field: &str) -> Vec<String> {
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds_var = vars
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a `datasource` variable");
    assert_eq!(ds_var["type"], "datasource");
    assert_eq!(ds_var["query"], ds_type);

    let mut panels: Vec<&Value> = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        panels.push(p);
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }
    let mut ids = BTreeSet::new();
    let mut queries = Vec::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().expect("panel id")),
            "duplicate panel id {}",
            p["id"]
        );
        assert!(
            p["gridPos"]["w"].is_i64() && p["gridPos"]["h"].is_i64(),
            "panel {} lacks gridPos",
            p["id"]
        );
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().expect("panel title");
        for ds in std::iter::once(&p["datasource"]).chain(
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| &t["datasource"]),
        ) {
            assert_eq!(ds["type"], ds_type, "{title}: datasource type");
            assert_eq!(
                ds["uid"], "${datasource}",
                "{title}: datasource must be the templated one"
            );
        }
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no targets");
        for t in targets {
            queries.push(
                t[query_field]
                    .as_str()
                    .unwrap_or_else(|| panic!("{title}: target without {query_field}"))
                    .to_owned(),
            );
        }
    }
    queries
}

/// Variables a query references must be defined, or Grafana sends them literally.
fn assert_variables_defined(d: &Value, queries: &[String]) {
    let defined: BTreeSet<String> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    for q in queries {
        let mut rest = q.as_str();
        while let Some(i) = rest.find('$') {
            rest = &rest[i + 1..];
            let name: String = rest
                .trim_start_matches('{')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.starts_with("__") {
                assert!(
                    defined.contains(&name),
                    "query uses undefined variable ${name}: {q}"
                );
            }
        }
    }
}

#[test]
fn traces_dashboard_queries_tempo_for_startups_phases_and_failures() {
    let d = dashboard("podtrace-traces.json");
    assert_eq!(d["uid"], "podtrace-traces");
    let queries = panels_and_queries(&d, "tempo", "query");
    assert_variables_defined(&d, &queries);
    for q in &queries {
        assert!(q.trim_start().starts_with('{'), "not a TraceQL query: {q}");
        assert_eq!(
            q.matches('{').count(),
            q.matches('}').count(),
            "unbalanced braces: {q}"
        );
        assert_eq!(q.matches('"').count() % 2, 0, "unbalanced quotes: {q}");
    }
    let has = |pred: &dyn Fn(&str) -> bool| queries.iter().any(|q| pred(q));
    assert!(
        has(&|q| q.starts_with(r#"{ name = "pod.startup""#)
            && !q.contains("status = error")
            && !q.contains('|')),
        "missing the slowest-startups table over pod.startup: {queries:#?}"
    );
    assert!(
        has(&|q| q.contains(r#"name = "pod.startup""#) && q.contains("status = error")),
        "missing the failures panel: {queries:#?}"
    );
    for phase in [
        "pod.schedule",
        "pod.sandbox",
        "container.image_pull",
        "container.startup",
        "pod.readiness",
    ] {
        assert!(
            has(&|q| q.contains(&format!(r#""{phase}""#))
                || (q.contains("quantile_over_time") && q.contains(phase))),
            "no panel covers phase {phase}"
        );
    }
    assert!(
        has(&|q| q.contains("quantile_over_time(duration")),
        "no TraceQL metrics latency panel"
    );
    let tables = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "table");
    for t in tables {
        let tt = &t["targets"][0]["tableType"];
        assert!(
            tt == "traces" || tt == "spans",
            "{}: tableType {tt}",
            t["title"]
        );
    }
}

/// Metric names the dashboard must chart; keep in step with src/telemetry.rs.
const METRICS: &[&str] = &[
    "podtrace_pod_startup_phase_duration_seconds_bucket",
    "podtrace_traces_completed_total",
    "podtrace_traces_exported_total",
    "podtrace_traces_dropped_total",
    "podtrace_export_errors_total",
    "podtrace_pods_in_flight",
    "podtrace_active_sessions",
];

#[test]
fn metrics_dashboard_charts_the_controller_metrics() {
    let d = dashboard("podtrace-metrics.json");
    assert_eq!(d["uid"], "podtrace-metrics");
    let exprs = panels_and_queries(&d, "prometheus", "expr");
    assert_variables_defined(&d, &exprs);
    let all = exprs.join("\n");
    for m in METRICS {
        assert!(all.contains(m), "metrics dashboard never queries {m}");
    }
    assert!(
        exprs.iter().any(|e| e.contains("histogram_quantile(")
            && e.contains("by (le, phase)")
            && e.contains("podtrace_pod_startup_phase_duration_seconds_bucket")),
        "no per-phase histogram_quantile panel"
    );
    for e in &exprs {
        assert_eq!(
            e.matches('(').count(),
            e.matches(')').count(),
            "unbalanced parentheses: {e}"
        );
        // Counters are only meaningful as rates.
        for counter in METRICS
            .iter()
            .filter(|m| m.ends_with("_total") || m.ends_with("_bucket"))
        {
            if let Some(i) = e.find(counter) {
                assert!(
                    e[..i].trim_end().ends_with("rate("),
                    "{counter} used without rate(): {e}"
                );
            }
        }
    }
}

/// Sample names the controller actually exposes, derived from the `# TYPE` lines of its
/// registry (counters gain `_total`, histograms `_bucket`/`_sum`/`_count`).
fn exposed_sample_names() -> BTreeSet<String> {
    let metrics = podtrace::telemetry::Metrics::new();
    // Labelled families print nothing, not even `# TYPE`, until they have a child.
    metrics.watch_event("Pod", "added");
    metrics
        .phase_duration
        .get_or_create(&podtrace::telemetry::PhaseLabel {
            phase: "overall".into(),
        })
        .observe(1.0);
    let text = metrics.encode();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("TYPE line");
        match kind {
            "counter" => names.insert(format!("{name}_total")),
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .all(|s| names.insert(format!("{name}{s}"))),
            _ => names.insert(name.to_owned()),
        };
    }
    names
}

/// A renamed metric would leave the dashboard charting nothing, silently.
#[test]
fn metrics_dashboard_only_queries_metrics_the_controller_exposes() {
    let exposed = exposed_sample_names();
    for m in METRICS {
        assert!(
            exposed.contains(*m),
            "{m} is not exposed by podtrace::telemetry::Metrics: {exposed:?}"
        );
    }
    let d = dashboard("podtrace-metrics.json");
    for expr in panels_and_queries(&d, "prometheus", "expr") {
        for (i, _) in expr.match_indices("podtrace_") {
            let name: String = expr[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                exposed.contains(&name),
                "dashboard queries {name}, which podtrace does not expose: {expr}"
            );
        }
    }
}

#[test]
fn dashboards_become_configmaps_for_the_grafana_sidecar() {
    let k = &parse_yaml_docs(
        &read(&root().join("config/dashboards/kustomization.yaml")),
        "dashboards",
    )[0];
    assert_eq!(
        k["generatorOptions"]["labels"]["grafana_dashboard"], "1",
        "sidecar label must be the string \"1\""
    );
    let files: BTreeSet<String> = k["configMapGenerator"]
        .as_array()
        .expect("configMapGenerator")
        .iter()
        .flat_map(|g| str_list(&g["files"]))
        .collect();
    assert_eq!(
        files,
        ["podtrace-metrics.json", "podtrace-traces.json"]
            .map(String::from)
            .into()
    );

    let Some(rendered) = kustomize("config/dashboards") else {
        return;
    };
    let maps: Vec<&Value> = rendered
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .collect();
    assert_eq!(maps.len(), 2);
    for cm in maps {
        assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
        for (key, json) in cm["data"].as_object().unwrap() {
            let parsed: Value = serde_json::from_str(json.as_str().unwrap())
                .expect("dashboard JSON survives kustomize");
            assert_eq!(parsed, dashboard(key), "{key} altered by kustomize");
        }
    }
}

#[test]
fn dockerfile_builds_a_non_root_distroless_image() {
    let df = read(&root().join("Dockerfile"));
    let lines: Vec<&str> = df
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "expected a multi-stage build");
    assert!(
        froms[0].contains("rust:") && froms[0].contains("bookworm"),
        "{}",
        froms[0]
    );
    assert!(
        df.contains("ARG RUST_VERSION=1.95"),
        "builder should pin Rust 1.95"
    );
    assert_eq!(
        **froms.last().unwrap(),
        "FROM gcr.io/distroless/cc-debian12:nonroot"
    );
    let user = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("USER");
    let uid = user["USER ".len()..].split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u > 0),
        "USER must be a numeric non-root uid: {user}"
    );
    let deployment_uid = container(&deployment())["securityContext"]["runAsUser"]
        .as_i64()
        .unwrap();
    assert_eq!(
        uid,
        deployment_uid.to_string(),
        "image USER and Deployment runAsUser disagree"
    );
    assert!(lines.contains(&r#"ENTRYPOINT ["/podtrace"]"#));
    assert!(lines.contains(&r#"CMD ["run"]"#));
    assert!(
        df.contains("--locked"),
        "release builds must use Cargo.lock"
    );
    let ignore = read(&root().join(".dockerignore"));
    assert!(
        ignore
            .lines()
            .any(|l| l.trim().trim_end_matches('/') == "target"),
        ".dockerignore must exclude target/"
    );
}

/// Renders a kustomization with the system kubectl; None (with a note) if there is none.
fn kustomize(dir: &str) -> Option<Vec<Value>> {
    let out = match Command::new("kubectl")
        .arg("kustomize")
        .arg(root().join(dir))
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("note: skipping `kubectl kustomize {dir}`: kubectl not runnable ({e})");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(parse_yaml_docs(
        &String::from_utf8(out.stdout).unwrap(),
        &format!("kustomize {dir}"),
    ))
}

/// Where two JSON values first differ, ignoring how numbers are spelled (kustomize prints
/// `1000000` where the generator wrote `1000000.0`).
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64() != y.as_f64()).then(|| format!("{path}: {x} vs {y}"))
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(xv), Some(yv)) => first_difference(xv, yv, &format!("{path}.{k}")),
                (xv, _) => Some(format!(
                    "{path}.{k}: only in the {}",
                    if xv.is_some() {
                        "rendered manifests"
                    } else {
                        "generated CRD"
                    }
                )),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (xv, yv))| first_difference(xv, yv, &format!("{path}[{i}]"))),
        _ => (a != b).then(|| format!("{path}: {a} vs {b}")),
    }
}

#[test]
fn default_kustomization_renders_everything_into_podtrace_system() {
    let Some(objs) = kustomize("config/default") else {
        return;
    };
    let kinds: BTreeMap<String, usize> = objs.iter().fold(BTreeMap::new(), |mut m, o| {
        *m.entry(o["kind"].as_str().unwrap().to_owned()).or_default() += 1;
        m
    });
    let expected: BTreeMap<String, usize> = [
        ("Namespace", 1),
        ("CustomResourceDefinition", 1),
        ("ServiceAccount", 1),
        ("ClusterRole", 1),
        ("ClusterRoleBinding", 1),
        ("Role", 1),
        ("RoleBinding", 1),
        ("Deployment", 1),
        ("Service", 1),
        ("PodDisruptionBudget", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(kinds, expected);

    let cluster_scoped = [
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    for o in &objs {
        let kind = o["kind"].as_str().unwrap();
        if cluster_scoped.contains(&kind) {
            assert!(
                o["metadata"]["namespace"].is_null(),
                "{kind} is cluster-scoped"
            );
        } else {
            assert_eq!(
                o["metadata"]["namespace"], NAMESPACE,
                "{kind} {}",
                o["metadata"]["name"]
            );
        }
        for s in o["subjects"].as_array().into_iter().flatten() {
            assert_eq!(s["namespace"], NAMESPACE, "{kind} subject namespace");
        }
    }
    // Kustomize reformats YAML; the CRD must still be the generated one, semantically.
    let crd = objs
        .iter()
        .find(|o| o["kind"] == "CustomResourceDefinition")
        .unwrap();
    let generated: Value = serde_saphyr::from_str(&podtrace::crd::crd_yaml().unwrap()).unwrap();
    if let Some(diff) = first_difference(crd, &generated, "") {
        panic!("rendered CRD differs from `podtrace crd` at {diff}; run `make crds`");
    }
    let dep = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        IMAGE
    );
}

#[test]
fn samples_render_without_a_namespace() {
    let Some(objs) = kustomize("config/samples") else {
        return;
    };
    let kinds: BTreeSet<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Deployment", "TraceSession"].into());
    for o in &objs {
        assert!(
            o["metadata"]["namespace"].is_null(),
            "samples are applied with -n <namespace>"
        );
    }
}
