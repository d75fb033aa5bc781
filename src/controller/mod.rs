//! `podtrace run`: the live controller.
//!
//! Layout: [`watch`] turns Pod/Event/Node watches into observations; [`pipeline`] owns the
//! engine, matches pods to sessions and hands traces to the exporter; [`sessions`] reconciles
//! `TraceSession`s into a shared registry; [`status`] writes that registry back to the
//! sessions' status; [`leader`] elects one active replica; [`http`] serves `/metrics`,
//! `/healthz` and `/readyz`.
//!
//! # Restart safety
//! The engine is in-memory and rebuilt on start: the initial Pod list re-creates every startup
//! in flight (the engine handles pods first seen mid-startup), so a crash loses no startup.
//! What must not happen is a second export of a trace that already went out. Each session's
//! status therefore carries an `exportWatermark`: a time `before` such that every trace of the
//! session finishing at or before it was handed off (exported, dropped or given up on), plus
//! the UIDs of handed-off pods finishing after it. `before` never passes a trace still queued
//! for export, nor the creation time of any pod still in flight in the engine (its trace can
//! end no earlier; after a restart such pods may have become Ready long ago), nor
//! "now − grace − margin" (covering pods not seen yet because of watch latency), and it only
//! moves once the initial lists are in. After a restart a pod is skipped when its Ready time (or its
//! trace's finish) is covered by every matching session's watermark, so only traces that never
//! left, or whose hand-off had not been recorded yet, are sent.
//!
//! The remaining window is between an export being acknowledged and the status write that
//! records it; such writes are issued within [`status::URGENT_INTERVAL`] of the
//! acknowledgement. A SIGKILL inside that window re-sends the affected traces with the same
//! deterministic trace and span IDs. Exactly-once delivery to a backend that does not
//! deduplicate is impossible without its cooperation; this keeps the window to a fraction of
//! a second instead of re-sending everything finished since the last periodic write.
//!
//! Known limits: latency percentiles are accumulated in memory and restart empty (counts are
//! restored from status); pods in flight at a crash are counted again in `podsMatched`.

pub mod client;
pub mod http;
pub mod leader;
pub mod pipeline;
pub mod sessions;
pub mod status;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use kube::Api;
use kube::runtime::{Controller, watcher};

use crate::export::exporter::{ExportConfig, Exporter};
use crate::session::TraceSession;
use crate::telemetry::{LogFormat, Metrics};

/// Arguments of `podtrace run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Cluster connection.
    #[command(flatten)]
    pub cluster: client::ClusterArgs,
    /// Follow TraceSessions, Pods and Events of this namespace only (default: all namespaces;
    /// a namespaced install then needs only a Role, plus read access to Nodes).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Elect one active replica through a coordination.k8s.io Lease (`--leader-elect=false` to
    /// run alone).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "podtrace-controller")]
    pub lease_name: String,
    /// Namespace of the Lease (default: POD_NAMESPACE, else the service account's namespace,
    /// else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Identity in the Lease (default: POD_NAME, else the hostname).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// OTLP traces endpoint, overriding OTEL_EXPORTER_OTLP_TRACES_ENDPOINT /
    /// OTEL_EXPORTER_OTLP_ENDPOINT (gRPC: `http://host:4317`; HTTP: `http://host:4318/v1/traces`).
    #[arg(long)]
    pub otlp_endpoint: Option<String>,
    /// OTLP protocol, `grpc` or `http/protobuf`, overriding OTEL_EXPORTER_OTLP_PROTOCOL.
    #[arg(long)]
    pub otlp_protocol: Option<String>,
    /// Traces queued for export at most; when full the oldest is dropped and counted.
    #[arg(long, default_value_t = 10_000)]
    pub export_queue_capacity: usize,
    /// Retries of a failing export batch before its traces are given up on.
    #[arg(long, default_value_t = 8)]
    pub export_max_retries: u32,
    /// How long to wait after a pod is Ready (or failed) for late events before its trace is
    /// finished (Go duration).
    #[arg(long, default_value = "10s", value_parser = crate::record::parse_duration)]
    pub grace: Duration,
    /// A startup not ended this long after the pod's creation is finished as timed out.
    #[arg(long, default_value = "15m", value_parser = crate::record::parse_duration)]
    pub startup_timeout: Duration,
    /// On SIGTERM/SIGINT, how long to keep flushing queued traces before dropping them.
    #[arg(long, default_value = "10s", value_parser = crate::record::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

fn identity(args: &RunArgs) -> String {
    args.identity
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("podtrace-{}", std::process::id()))
        })
}

fn lease_namespace(args: &RunArgs) -> String {
    args.lease_namespace
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".to_string())
        })
}

fn export_config(args: &RunArgs) -> anyhow::Result<ExportConfig> {
    let mut c = ExportConfig::from_env().context("reading OTEL_* settings")?;
    if let Some(p) = &args.otlp_protocol {
        c.protocol = p.parse().context("--otlp-protocol")?;
    }
    if let Some(e) = &args.otlp_endpoint {
        c.endpoint = e.clone();
    }
    c.queue_capacity = args.export_queue_capacity.max(1);
    c.max_retries = args.export_max_retries;
    Ok(c)
}

/// Runs the controller until shutdown.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    crate::telemetry::init_logging(args.log_format);
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(http::Health {
        metrics: metrics.clone(),
        ready: false.into(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http_task = http::serve(args.metrics_addr, health.clone(), stop_rx.clone()).await?;
    let client = args.cluster.client().await?;
    let export = export_config(&args)?;

    let mut shutdown = std::pin::pin!(crate::record::shutdown_signal());
    let mut elector = None;
    if args.leader_elect {
        let mut e = leader::Elector::new(
            client.clone(),
            &lease_namespace(&args),
            &args.lease_name,
            &identity(&args),
        );
        // A standby replica is healthy and ready: it is doing what it should.
        health.ready.store(true, Ordering::Release);
        tokio::select! {
            _ = e.acquire() => {}
            _ = &mut shutdown => {
                let _ = stop_tx.send(true);
                let _ = http_task.await;
                return Ok(());
            }
        }
        health.ready.store(false, Ordering::Release);
        elector = Some(e);
    }
    metrics.leader.set(1);

    let (exporter, exporter_task) =
        Exporter::start(export).context("starting the OTLP exporter")?;
    let registry: sessions::SharedRegistry = Default::default();
    let status_wake = Arc::new(tokio::sync::Notify::new());

    let namespace = args.namespace.clone().filter(|n| !n.is_empty());
    let sessions_api: Api<TraceSession> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let controller = Controller::new(sessions_api, watcher::Config::default());
    let store = controller.store();
    let ctx = Arc::new(sessions::Context {
        registry: registry.clone(),
        status_wake: status_wake.clone(),
    });
    let mut stop_for_controller = stop_rx.clone();
    let controller_task = tokio::spawn(
        controller
            .graceful_shutdown_on(async move {
                let _ = stop_for_controller.changed().await;
            })
            .run(sessions::reconcile, sessions::error_policy, ctx)
            .for_each(|r| async move {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "session controller");
                }
            }),
    );
    // Pods are only matched once every session is known, or a restart would briefly see a
    // world without sessions.
    let ready = async {
        let started = tokio::time::Instant::now();
        let mut warned_at = started;
        loop {
            // Polled in short slices: the store's readiness future keeps a single waker, and
            // the controller's own runner waits on it too, so one waiter may never be woken.
            // Once initialised it answers at once.
            match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
                Ok(r) => return r.is_ok(),
                Err(_) if warned_at.elapsed() >= Duration::from_secs(30) => {
                    warned_at = tokio::time::Instant::now();
                    tracing::warn!(
                        "still waiting for the TraceSession list (is the CRD installed?)"
                    );
                }
                Err(_) => {}
            }
        }
    };
    tokio::select! {
        ok = ready => if !ok { anyhow::bail!("the TraceSession watch ended before its first list") },
        _ = &mut shutdown => {
            let _ = stop_tx.send(true);
            exporter.shutdown(args.shutdown_timeout).await;
            return Ok(());
        }
    }
    // Give the reconciler a moment to register what the store holds before pods flow.
    let wait_registered = async {
        loop {
            let want = store.state().len();
            if sessions::lock(&registry).sessions.len() >= want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), wait_registered).await;
    tracing::info!(
        sessions = store.state().len(),
        "sessions loaded; starting watches"
    );

    let status_task = tokio::spawn(status::run_writer(
        client.clone(),
        registry.clone(),
        store.clone(),
        status_wake.clone(),
        metrics.clone(),
        stop_rx.clone(),
    ));

    let (input_tx, input_rx) = tokio::sync::mpsc::channel(4096);
    let watches = watch::spawn_watches(
        client.clone(),
        namespace.as_deref(),
        input_tx,
        metrics.clone(),
    );
    let (synced_tx, mut synced_rx) = tokio::sync::watch::channel(false);
    let engine = crate::timeline::Config {
        grace: jiff::SignedDuration::try_from(args.grace).context("--grace")?,
        timeout: jiff::SignedDuration::try_from(args.startup_timeout)
            .context("--startup-timeout")?,
        ..crate::timeline::Config::default()
    };
    let pipeline = pipeline::Pipeline {
        engine,
        registry: registry.clone(),
        exporter: exporter.clone(),
        metrics: metrics.clone(),
        synced: synced_tx,
        status_wake: status_wake.clone(),
    };
    let outcomes = exporter.subscribe();
    let mut pipeline_task = tokio::spawn(pipeline.run(
        input_rx,
        outcomes,
        stop_rx.clone(),
        args.shutdown_timeout + Duration::from_secs(1),
    ));
    let health_for_sync = health.clone();
    tokio::spawn(async move {
        if synced_rx.wait_for(|s| *s).await.is_ok() {
            health_for_sync.ready.store(true, Ordering::Release);
        }
    });
    let errors_metrics = metrics.clone();
    let errors_exporter = exporter.clone();
    let error_sync = tokio::spawn(async move {
        // The exporter counts failed attempts; mirror them into our counter.
        let mut seen = 0u64;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = errors_exporter.stats().export_errors;
            if now > seen {
                errors_metrics.export_errors.inc_by(now - seen);
                seen = now;
            }
        }
    });

    let lost = async {
        match elector.as_mut() {
            Some(e) => e.hold().await,
            None => std::future::pending().await,
        }
    };
    let outcome: anyhow::Result<()> = tokio::select! {
        _ = &mut shutdown => {
            tracing::info!("shutting down: flushing queued traces");
            Ok(())
        }
        lost = lost => Err(anyhow::Error::new(lost)).context("stopping: leadership lost"),
        r = &mut pipeline_task => Err(anyhow::anyhow!("the engine task ended unexpectedly: {r:?}")),
    };
    for w in &watches {
        w.abort();
    }
    let _ = stop_tx.send(true);
    metrics.leader.set(0);
    if outcome.is_err() {
        // Another replica may be working already: stop at once, flushing nothing more.
        exporter_task.abort();
        return outcome;
    }
    let stats = exporter.shutdown(args.shutdown_timeout).await;
    let _ = tokio::time::timeout(
        args.shutdown_timeout + Duration::from_secs(2),
        &mut pipeline_task,
    )
    .await;
    error_sync.abort();
    let _ = status_task.await;
    status::flush(&client, &registry, &store, &metrics, true).await;
    let _ = controller_task.await;
    if let Some(e) = &elector {
        e.release().await;
    }
    let _ = http_task.await;
    tracing::info!(
        exported = stats.exported_traces,
        dropped = stats.dropped_traces,
        failed = stats.failed_traces,
        "stopped"
    );
    Ok(())
}
