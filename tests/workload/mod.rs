//! Workloads and processes for the chart and dashboard e2e tests: the TraceSession CRD, a
//! session, Deployments whose pods KWOK starts (or fails to), and child processes that
//! are killed when the test ends, also on failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use podtrace::session::{SessionPhase, TraceSession};
use serde_json::{Value, json};

use crate::common::wait_for;

pub const POD_TIMEOUT: Duration = Duration::from_secs(120);

/// A free port on 127.0.0.1 (released again, so the process can bind it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// A child process writing its output to a log file; SIGKILLed and reaped on drop, and its
/// log's tail printed when the test is failing.
pub struct Proc {
    name: &'static str,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr into `log`.
    pub fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Proc {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name,
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// Panics (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
            panic!("{} exited with {status}:\n{}", self.name, self.log_tail());
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL after `within`; whether it exited 0 on its own.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + within;
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if std::thread::panicking() {
                eprintln!("--- {} log ---\n{}", self.name, self.log_tail());
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Applies the TraceSession CRD (shared by all tests, never deleted) and waits until it is
/// Established.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = TraceSession::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply("podtrace-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("applying the TraceSession CRD");
    wait_for(Duration::from_secs(30), "CRD Established", || {
        let crds = crds.clone();
        let name = name.clone();
        async move {
            let c = crds.get(&name).await.ok()?;
            c.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        }
    })
    .await;
}

/// Creates a TraceSession following `app=<app>` pods in `ns`.
pub async fn create_session(client: &Client, ns: &str, name: &str, app: &str, attrs: Value) {
    let api: Api<TraceSession> = Api::namespaced(client.clone(), ns);
    let ts: TraceSession = serde_json::from_value(json!({
        "apiVersion": "podtrace.dev/v1alpha1",
        "kind": "TraceSession",
        "metadata": {"name": name},
        "spec": {"operations": ["PodStartup"], "selector": {"matchLabels": {"app": app}},
                 "attributes": attrs},
    }))
    .expect("session json");
    // Retried: a just-established CRD can briefly answer 404.
    wait_for(Duration::from_secs(30), "creating the TraceSession", || {
        let (api, ts) = (api.clone(), ts.clone());
        async move { api.create(&PostParams::default(), &ts).await.ok() }
    })
    .await;
}

/// Waits until the session reports phase Active.
pub async fn wait_active(client: &Client, ns: &str, name: &str) {
    let api: Api<TraceSession> = Api::namespaced(client.clone(), ns);
    wait_for(
        Duration::from_secs(60),
        &format!("session {name} Active"),
        || {
            let api = api.clone();
            async move {
                let st = api.get(name).await.ok()?.status?;
                (st.phase? == SessionPhase::Active).then_some(())
            }
        },
    )
    .await;
}

/// A Deployment of `replicas` pods labelled `app=<app>`, with KWOK stage annotations.
pub async fn create_deployment(
    client: &Client,
    ns: &str,
    name: &str,
    app: &str,
    replicas: i32,
    annotations: Value,
) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"podtrace-e2e/deployment": name}},
            "template": {
                "metadata": {
                    "labels": {"podtrace-e2e/deployment": name, "app": app},
                    "annotations": annotations,
                },
                "spec": {"containers": [{"name": "app", "image": format!("registry.example/{name}:1.0")}]}
            }
        }
    }))
    .expect("deployment json");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .unwrap_or_else(|e| panic!("creating deployment {name}: {e}"));
}

pub async fn scale(client: &Client, ns: &str, name: &str, replicas: i32) {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap_or_else(|e| panic!("scaling {name}: {e}"));
}

pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn pull_failed(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
            })
        })
}

/// Waits until exactly `n` pods match `selector`, each Ready or failed to pull its image.
pub async fn wait_settled(client: &Client, ns: &str, selector: &str, n: usize) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(
        POD_TIMEOUT,
        &format!("{n} settled pods ({selector}) in {ns}"),
        || {
            let api = api.clone();
            async move {
                let pods = api
                    .list(&ListParams::default().labels(selector))
                    .await
                    .ok()?
                    .items;
                (pods.len() == n && pods.iter().all(|p| is_ready(p) || pull_failed(p)))
                    .then_some(pods)
            }
        },
    )
    .await
}

/// The trace ID podtrace derives for a pod's startup.
pub fn trace_id_of(p: &Pod) -> String {
    podtrace::ids::trace_id(
        podtrace::session::Operation::PodStartup,
        &[&p.uid().expect("pod uid")],
    )
    .to_string()
}
