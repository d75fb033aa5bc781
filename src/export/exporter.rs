//! The OTLP exporter: a bounded queue of finished traces drained by a tokio task that sends
//! `ExportTraceServiceRequest`s over gRPC or HTTP/protobuf, with batching and retries.
//!
//! Why not the SDK's span processors: podtrace synthesises spans after the fact (past
//! timestamps, deterministic IDs), which `SpanBuilder` cannot express since opentelemetry
//! 0.32, and its spans belong to several resources (podtrace, the scheduler, each node's
//! kubelet) while an SDK exporter carries one. So the request is built here from
//! `opentelemetry-proto` types (one request may carry several `ResourceSpans`) and sent with
//! the same tonic / reqwest stacks `opentelemetry-otlp` uses.
//!
//! # Guarantees
//! - [`Exporter::submit`] never blocks and never grows memory beyond `queue_capacity` traces
//!   plus one batch in flight: when the queue is full the *oldest* queued trace is dropped,
//!   counted in [`ExportStats::dropped_traces`] and reported as [`ExportResult::Dropped`].
//! - A batch that fails with a retryable error (backend down, 429/503, gRPC UNAVAILABLE …)
//!   is retried with exponential backoff up to `max_retries` times; newer traces wait in the
//!   queue meanwhile. A batch that still fails, or fails with a permanent error, is reported
//!   as [`ExportResult::Failed`] and counted in [`ExportStats::failed_traces`].
//! - Every submitted trace ends in exactly one outcome: exported + dropped + failed + queued
//!   always equals submitted.
//! - Header values (which may hold API keys) are never logged nor put in errors.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tokio::sync::{Notify, broadcast};

use super::proto::request;
use crate::trace::{Trace, TraceId};

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (default port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318, path `/v1/traces`).
    HttpProtobuf,
}

impl std::str::FromStr for Protocol {
    type Err = ExportError;

    /// Accepts the `OTEL_EXPORTER_OTLP_PROTOCOL` spellings `grpc` and `http/protobuf`, and
    /// `http` as a shorthand for the latter.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" | "http" => Ok(Protocol::HttpProtobuf),
            other => Err(ExportError::UnsupportedProtocol(other.to_string())),
        }
    }
}

/// Why the exporter could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A protocol other than `grpc` or `http/protobuf` (e.g. `http/json`).
    #[error("unsupported OTLP protocol {0:?} (use grpc or http/protobuf)")]
    UnsupportedProtocol(String),
    /// The endpoint is not a usable URL.
    #[error("invalid OTLP endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header name or value cannot be sent (the value itself is never shown).
    #[error("invalid OTLP header {name:?}: {reason}")]
    InvalidHeader {
        /// Header name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A malformed `key=value` list in an environment variable.
    #[error("malformed {var}: {reason}")]
    MalformedEnv {
        /// Variable name.
        var: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `start` was called outside a tokio runtime.
    #[error("the OTLP exporter must be started inside a tokio runtime")]
    NoRuntime,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// Exporter settings. Its `Debug` output shows header names only: values may be API keys.
#[derive(Clone)]
pub struct ExportConfig {
    /// Receiver URL. gRPC: `http://host:4317`. HTTP: the full traces URL; a base URL without
    /// a `/v1/traces` path gets it appended by [`Exporter::start`].
    pub endpoint: String,
    /// Transport.
    pub protocol: Protocol,
    /// Headers (gRPC metadata) on every request, e.g. an API key. Never logged.
    pub headers: Vec<(String, String)>,
    /// Attributes added to every resource (from `OTEL_RESOURCE_ATTRIBUTES`).
    pub resource_attributes: Vec<(String, String)>,
    /// Traces queued at most; beyond it the oldest queued trace is dropped.
    pub queue_capacity: usize,
    /// Spans per export request at most (a single larger trace is still sent whole).
    pub max_batch_spans: usize,
    /// Retries of a failing batch before it is reported as failed.
    pub max_retries: u32,
    /// Backoff before the first retry; doubles per retry.
    pub initial_backoff: Duration,
    /// Longest backoff between retries.
    pub max_backoff: Duration,
    /// Deadline of one export request.
    pub timeout: Duration,
}

impl std::fmt::Debug for ExportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, _)| (k.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("ExportConfig")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &headers)
            .field("resource_attributes", &self.resource_attributes)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_batch_spans", &self.max_batch_spans)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Default gRPC endpoint (the OTLP specification's).
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// Default HTTP endpoint (the OTLP specification's).
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318/v1/traces";

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            endpoint: DEFAULT_GRPC_ENDPOINT.to_string(),
            protocol: Protocol::Grpc,
            headers: Vec::new(),
            resource_attributes: Vec::new(),
            queue_capacity: 10_000,
            max_batch_spans: 512,
            max_retries: 8,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

impl ExportConfig {
    /// Settings from the standard OpenTelemetry environment variables:
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as-is) or `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (a base URL: `/v1/traces` is appended for HTTP), `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` /
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` | `http/protobuf`; default `grpc`),
    /// `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (`k=v,k2=v2`,
    /// percent-decoded), `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds) and
    /// `OTEL_RESOURCE_ATTRIBUTES` (`k=v,…`). Everything else takes [`Default`] values.
    pub fn from_env() -> Result<Self, ExportError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    /// [`from_env`](Self::from_env) over any variable source (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ExportError> {
        let mut c = ExportConfig::default();
        if let Some(p) =
            get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            c.protocol = p.parse()?;
        }
        c.endpoint = match (
            get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(e), _) => e.trim().to_string(),
            (None, Some(base)) => match c.protocol {
                Protocol::Grpc => base.trim().to_string(),
                Protocol::HttpProtobuf => {
                    format!("{}/v1/traces", base.trim().trim_end_matches('/'))
                }
            },
            (None, None) => match c.protocol {
                Protocol::Grpc => DEFAULT_GRPC_ENDPOINT.to_string(),
                Protocol::HttpProtobuf => DEFAULT_HTTP_ENDPOINT.to_string(),
            },
        };
        for var in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(h) = get(var) {
                c.headers.extend(parse_kv_list(var, &h)?);
            }
        }
        if let Some(a) = get("OTEL_RESOURCE_ATTRIBUTES") {
            c.resource_attributes = parse_kv_list("OTEL_RESOURCE_ATTRIBUTES", &a)?;
        }
        if let Some(t) = get("OTEL_EXPORTER_OTLP_TIMEOUT") {
            let ms: u64 = t.trim().parse().map_err(|_| ExportError::MalformedEnv {
                var: "OTEL_EXPORTER_OTLP_TIMEOUT",
                reason: "expected milliseconds".into(),
            })?;
            c.timeout = Duration::from_millis(ms);
        }
        Ok(c)
    }

    /// The endpoint the transport will use: for HTTP, `/v1/traces` is appended unless the
    /// URL already ends with it; a URL without a scheme gets `http://`.
    pub fn effective_endpoint(&self) -> String {
        let e = self.endpoint.trim();
        let e = if e.contains("://") {
            e.to_string()
        } else {
            format!("http://{e}")
        };
        match self.protocol {
            Protocol::Grpc => e,
            Protocol::HttpProtobuf if e.trim_end_matches('/').ends_with("/v1/traces") => e,
            Protocol::HttpProtobuf => format!("{}/v1/traces", e.trim_end_matches('/')),
        }
    }
}

/// Parses the W3C-baggage-like `k=v,k2=v2` lists of the OTEL variables (values percent-decoded).
/// Errors never echo the values: they may be secrets.
pub fn parse_kv_list(var: &'static str, s: &str) -> Result<Vec<(String, String)>, ExportError> {
    s.split(',')
        .filter(|item| !item.trim().is_empty())
        .enumerate()
        .map(|(i, item)| {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| ExportError::MalformedEnv {
                    var,
                    reason: format!("item {} has no '='", i + 1),
                })?;
            let k = percent_decode(k.trim());
            if k.is_empty() {
                return Err(ExportError::MalformedEnv {
                    var,
                    reason: format!("item {} has an empty key", i + 1),
                });
            }
            Ok((k, percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Counters of an exporter since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Traces submitted.
    pub submitted_traces: u64,
    /// Traces the receiver accepted.
    pub exported_traces: u64,
    /// Spans the receiver accepted.
    pub exported_spans: u64,
    /// Traces dropped because the queue was full (or the shutdown deadline passed).
    pub dropped_traces: u64,
    /// Traces given up on after a permanent error or `max_retries` retries.
    pub failed_traces: u64,
    /// Export requests that failed (each attempt counts).
    pub export_errors: u64,
    /// Export requests retried.
    pub retries: u64,
    /// Traces waiting or in flight.
    pub queued: u64,
}

/// What became of one submitted trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportResult {
    /// The receiver accepted it.
    Exported,
    /// Dropped unsent (queue full, or shutdown deadline).
    Dropped,
    /// Sending failed for good; the error says why (no header values).
    Failed(String),
}

/// A trace's outcome, broadcast to [`Exporter::subscribe`]rs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportOutcome {
    /// The tag given to [`Exporter::submit`] (e.g. which session the trace belongs to).
    pub tag: u64,
    /// The trace.
    pub trace_id: TraceId,
    /// What happened.
    pub result: ExportResult,
}

/// A failed send, as the transport classifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SendError {
    /// Worth retrying (backend down, overloaded, timed out).
    pub retryable: bool,
    /// Description without header values.
    pub message: String,
}

type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// Sends one request. The real ones speak OTLP; tests use an in-process fake.
pub(crate) trait Transport: Send + Sync + 'static {
    fn send(&self, req: ExportTraceServiceRequest) -> SendFuture<'_>;
}

struct Queued {
    trace: Trace,
    extra: Arc<Vec<(String, String)>>,
    tag: u64,
}

struct Shared {
    queue: Mutex<VecDeque<Queued>>,
    in_flight: AtomicU64,
    wake: Notify,
    done: Notify,
    /// Signalled whenever the worker settled a batch (the queue may have room again).
    room: Notify,
    /// The latest failed attempt's description (no header values).
    last_error: Mutex<Option<String>>,
    closing: AtomicBool,
    abort: AtomicBool,
    finished: AtomicBool,
    capacity: usize,
    outcomes: broadcast::Sender<ExportOutcome>,
    submitted: AtomicU64,
    exported_traces: AtomicU64,
    exported_spans: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
}

impl Shared {
    /// Resolves once the worker has exited. The `Notified` future is created before the flag
    /// is read, so a notification between the two is not lost.
    async fn worker_finished(&self) {
        loop {
            let notified = self.done.notified();
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        // A panic while holding the lock cannot leave the deque inconsistent (every
        // operation on it is a single push/pop), so a poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self, tag: u64, trace_id: TraceId, result: ExportResult) {
        // No subscribers is fine: outcomes are best-effort notifications.
        let _ = self.outcomes.send(ExportOutcome {
            tag,
            trace_id,
            result,
        });
    }
}

/// Handle to a running exporter; cheap to clone.
#[derive(Clone)]
pub struct Exporter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Capacity of the outcome broadcast channel; a slow subscriber sees `Lagged`, never blocks us.
const OUTCOME_CHANNEL: usize = 4096;

impl Exporter {
    /// Validates `config` and starts the export task on the current tokio runtime. The task
    /// ends after [`shutdown`](Self::shutdown); its handle is returned for the caller to await
    /// or abort.
    pub fn start(
        config: ExportConfig,
    ) -> Result<(Exporter, tokio::task::JoinHandle<()>), ExportError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ExportError::NoRuntime)?;
        let transport: Box<dyn Transport> = match config.protocol {
            Protocol::Grpc => Box::new(GrpcTransport::new(&config)?),
            Protocol::HttpProtobuf => Box::new(HttpTransport::new(&config)?),
        };
        Ok(Self::start_with(config, transport, &handle))
    }

    pub(crate) fn start_with(
        config: ExportConfig,
        transport: Box<dyn Transport>,
        rt: &tokio::runtime::Handle,
    ) -> (Exporter, tokio::task::JoinHandle<()>) {
        let (outcomes, _) = broadcast::channel(OUTCOME_CHANNEL);
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            in_flight: AtomicU64::new(0),
            wake: Notify::new(),
            done: Notify::new(),
            room: Notify::new(),
            last_error: Mutex::new(None),
            closing: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            capacity: config.queue_capacity.max(1),
            outcomes,
            submitted: AtomicU64::new(0),
            exported_traces: AtomicU64::new(0),
            exported_spans: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        });
        let worker = Worker {
            shared: shared.clone(),
            config,
            transport,
        };
        let join = rt.spawn(worker.run());
        (Exporter { shared }, join)
    }

    /// Queues a finished trace for export, with extra span attributes (a session's
    /// `spec.attributes`) and a caller-defined tag echoed in its [`ExportOutcome`]. Never
    /// blocks: when the queue is full the oldest queued trace is dropped and counted. After
    /// shutdown began, the trace is dropped at once.
    pub fn submit(&self, trace: Trace, extra_attributes: Arc<Vec<(String, String)>>, tag: u64) {
        let s = &self.shared;
        s.submitted.fetch_add(1, Ordering::Relaxed);
        if s.closing.load(Ordering::Acquire) {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            s.report(tag, trace.trace_id, ExportResult::Dropped);
            return;
        }
        let evicted = {
            let mut q = s.lock();
            let evicted = if q.len() >= s.capacity {
                q.pop_front()
            } else {
                None
            };
            q.push_back(Queued {
                trace,
                extra: extra_attributes,
                tag,
            });
            evicted
        };
        if let Some(old) = evicted {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            s.report(old.tag, old.trace.trace_id, ExportResult::Dropped);
        }
        s.wake.notify_one();
    }

    /// Counters so far.
    pub fn stats(&self) -> ExportStats {
        let s = &self.shared;
        let queued = s.lock().len() as u64 + s.in_flight.load(Ordering::Relaxed);
        ExportStats {
            submitted_traces: s.submitted.load(Ordering::Relaxed),
            exported_traces: s.exported_traces.load(Ordering::Relaxed),
            exported_spans: s.exported_spans.load(Ordering::Relaxed),
            dropped_traces: s.dropped.load(Ordering::Relaxed),
            failed_traces: s.failed.load(Ordering::Relaxed),
            export_errors: s.errors.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            queued,
        }
    }

    /// Waits until the queue has room for another trace without dropping one (or the
    /// exporter is shutting down). For producers that prefer backpressure to drops, such as
    /// `podtrace replay`; the live controller submits without waiting.
    pub async fn wait_for_room(&self) {
        let s = &self.shared;
        loop {
            let notified = s.room.notified();
            if s.lock().len() < s.capacity
                || s.closing.load(Ordering::Acquire)
                || s.finished.load(Ordering::Acquire)
            {
                return;
            }
            notified.await;
        }
    }

    /// The description of the latest failed export attempt, if any (never header values).
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Outcomes of traces from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ExportOutcome> {
        self.shared.outcomes.subscribe()
    }

    /// Stops accepting traces and sends what is queued, for at most `deadline`; whatever is
    /// still unsent then is dropped and counted. Returns the final counters.
    pub async fn shutdown(self, deadline: Duration) -> ExportStats {
        let s = &self.shared;
        s.closing.store(true, Ordering::Release);
        s.wake.notify_one();
        if tokio::time::timeout(deadline, s.worker_finished())
            .await
            .is_err()
        {
            s.abort.store(true, Ordering::Release);
            s.wake.notify_one();
            // The worker notices `abort` at its next await point (every sleep and send is
            // raced against `wake`), so this wait is short; bound it anyway.
            let _ = tokio::time::timeout(Duration::from_secs(1), s.worker_finished()).await;
        }
        self.stats()
    }
}

struct Worker {
    shared: Arc<Shared>,
    config: ExportConfig,
    transport: Box<dyn Transport>,
}

/// Takes whole traces from the front of `q` up to `max_spans` spans (at least one trace).
fn take_batch(q: &mut VecDeque<Queued>, max_spans: usize) -> Vec<Queued> {
    let mut batch = Vec::new();
    let mut spans = 0usize;
    while let Some(front) = q.front() {
        let n = front.trace.spans.len();
        if !batch.is_empty() && spans + n > max_spans {
            break;
        }
        spans += n;
        if let Some(item) = q.pop_front() {
            batch.push(item);
        }
    }
    batch
}

impl Worker {
    async fn run(self) {
        let s = self.shared.clone();
        loop {
            if s.abort.load(Ordering::Acquire) {
                break;
            }
            let notified = s.wake.notified();
            let batch = {
                let mut q = s.lock();
                let b = take_batch(&mut q, self.config.max_batch_spans.max(1));
                s.in_flight.store(b.len() as u64, Ordering::Relaxed);
                b
            };
            if batch.is_empty() {
                if s.closing.load(Ordering::Acquire) {
                    break;
                }
                notified.await;
                continue;
            }
            self.export(batch).await;
        }
        // Aborted: whatever is left is dropped, each counted once.
        let rest: Vec<Queued> = s.lock().drain(..).collect();
        for item in rest {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            s.report(item.tag, item.trace.trace_id, ExportResult::Dropped);
        }
        s.finished.store(true, Ordering::Release);
        s.done.notify_waiters();
        s.room.notify_waiters();
    }

    /// Sends one batch, retrying; always settles every trace of the batch.
    async fn export(&self, batch: Vec<Queued>) {
        let s = &self.shared;
        let req = request(
            batch.iter().map(|q| (&q.trace, q.extra.as_slice())),
            &self.config.resource_attributes,
        );
        let mut backoff = self.config.initial_backoff;
        let mut attempt = 0u32;
        let result = loop {
            let sent = tokio::select! {
                r = tokio::time::timeout(self.config.timeout, self.transport.send(req.clone())) => {
                    r.unwrap_or_else(|_| Err(SendError { retryable: true, message: "export request timed out".into() }))
                }
                () = wait_abort(s) => Err(SendError { retryable: false, message: "shutdown deadline passed".into() }),
            };
            match sent {
                Ok(()) => break Ok(()),
                Err(e) => {
                    if s.abort.load(Ordering::Acquire) {
                        break Err(None);
                    }
                    s.errors.fetch_add(1, Ordering::Relaxed);
                    *s.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(e.message.clone());
                    if !e.retryable || attempt >= self.config.max_retries {
                        break Err(Some(e.message));
                    }
                    tracing::warn!(error = %e.message, attempt, "OTLP export failed; retrying");
                    attempt += 1;
                    s.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = wait_abort(s) => break Err(None),
                    }
                    backoff = backoff.saturating_mul(2).min(self.config.max_backoff);
                }
            }
        };
        let spans: u64 = batch.iter().map(|q| q.trace.spans.len() as u64).sum();
        match &result {
            Ok(()) => {
                s.exported_traces
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                s.exported_spans.fetch_add(spans, Ordering::Relaxed);
            }
            Err(None) => {
                s.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(Some(msg)) => {
                tracing::error!(error = %msg, traces = batch.len(), "OTLP export failed; giving up on these traces");
                s.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
        s.in_flight.store(0, Ordering::Relaxed);
        for item in batch {
            let r = match &result {
                Ok(()) => ExportResult::Exported,
                Err(None) => ExportResult::Dropped,
                Err(Some(m)) => ExportResult::Failed(m.clone()),
            };
            s.report(item.tag, item.trace.trace_id, r);
        }
        s.room.notify_waiters();
    }
}

/// Resolves once shutdown's deadline has passed.
async fn wait_abort(s: &Shared) {
    loop {
        let n = s.wake.notified();
        if s.abort.load(Ordering::Acquire) {
            return;
        }
        n.await;
        if s.abort.load(Ordering::Acquire) {
            return;
        }
        // A wake-up for new work, not for abort: pass it on so the main loop still sees it
        // (the worker re-checks the queue after every batch anyway).
    }
}

/// `endpoint` for error messages, with any `user:password@` replaced by `***@`: credentials
/// written into the URL are as secret as header values.
fn without_userinfo(endpoint: &str) -> String {
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return endpoint.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest.get(..authority_end).and_then(|a| a.rfind('@')) {
        Some(at) => format!("{scheme}://***{}", rest.get(at..).unwrap_or("")),
        None => endpoint.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Transports
// ---------------------------------------------------------------------------------------------

struct GrpcTransport {
    client: TraceServiceClient<tonic::transport::Channel>,
    metadata: tonic::metadata::MetadataMap,
}

impl GrpcTransport {
    fn new(config: &ExportConfig) -> Result<Self, ExportError> {
        let endpoint = config.effective_endpoint();
        let invalid = |reason: String| ExportError::InvalidEndpoint {
            endpoint: without_userinfo(&endpoint),
            reason,
        };
        if endpoint.starts_with("https://") {
            return Err(invalid(
                "TLS is not supported by this build; use http://".into(),
            ));
        }
        let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .map_err(|e| invalid(e.to_string()))?
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .connect_lazy();
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (k, v) in &config.headers {
            let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| ExportError::InvalidHeader {
                name: k.clone(),
                reason: "not a valid gRPC metadata key".into(),
            })?;
            let mut value = tonic::metadata::MetadataValue::try_from(v.as_str()).map_err(|_| {
                ExportError::InvalidHeader {
                    name: k.clone(),
                    reason: "value is not valid ASCII metadata".into(),
                }
            })?;
            // As for HTTP: keeps the value out of any Debug output of the request.
            value.set_sensitive(true);
            metadata.insert(key, value);
        }
        Ok(GrpcTransport {
            client: TraceServiceClient::new(channel),
            metadata,
        })
    }
}

impl Transport for GrpcTransport {
    fn send(&self, req: ExportTraceServiceRequest) -> SendFuture<'_> {
        Box::pin(async move {
            let mut client = self.client.clone();
            let request = tonic::Request::from_parts(
                self.metadata.clone(),
                tonic::Extensions::default(),
                req,
            );
            match client.export(request).await {
                Ok(resp) => {
                    if let Some(p) = resp.into_inner().partial_success
                        && p.rejected_spans > 0
                    {
                        return Err(SendError {
                            retryable: false,
                            message: format!(
                                "receiver rejected {} spans: {}",
                                p.rejected_spans, p.error_message
                            ),
                        });
                    }
                    Ok(())
                }
                Err(status) => {
                    use tonic::Code;
                    let retryable = matches!(
                        status.code(),
                        Code::Cancelled
                            | Code::DeadlineExceeded
                            | Code::ResourceExhausted
                            | Code::Aborted
                            | Code::OutOfRange
                            | Code::Unavailable
                            | Code::DataLoss
                    );
                    Err(SendError {
                        retryable,
                        message: format!("gRPC {:?}: {}", status.code(), status.message()),
                    })
                }
            }
        })
    }
}

struct HttpTransport {
    client: reqwest::Client,
    url: String,
    headers: reqwest::header::HeaderMap,
}

impl HttpTransport {
    fn new(config: &ExportConfig) -> Result<Self, ExportError> {
        let url = config.effective_endpoint();
        if url.starts_with("https://") {
            return Err(ExportError::InvalidEndpoint {
                endpoint: without_userinfo(&url),
                reason: "TLS is not supported by this build; use http://".into(),
            });
        }
        reqwest::Url::parse(&url).map_err(|e| ExportError::InvalidEndpoint {
            endpoint: without_userinfo(&url),
            reason: e.to_string(),
        })?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &config.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                ExportError::InvalidHeader {
                    name: k.clone(),
                    reason: "not a valid HTTP header name".into(),
                }
            })?;
            let mut value = reqwest::header::HeaderValue::from_str(v).map_err(|_| {
                ExportError::InvalidHeader {
                    name: k.clone(),
                    reason: "not a valid HTTP header value".into(),
                }
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/x-protobuf"),
        );
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ExportError::HttpClient(e.to_string()))?;
        Ok(HttpTransport {
            client,
            url,
            headers,
        })
    }
}

impl Transport for HttpTransport {
    fn send(&self, req: ExportTraceServiceRequest) -> SendFuture<'_> {
        Box::pin(async move {
            let body = prost::Message::encode_to_vec(&req);
            let resp = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .body(body)
                .send()
                .await
                .map_err(|e| SendError {
                    retryable: true,
                    // Without the URL's query and without headers: only the error kind.
                    message: format!("HTTP request failed: {}", e.without_url()),
                })?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let retryable = matches!(status.as_u16(), 408 | 429 | 502 | 503 | 504);
            Err(SendError {
                retryable,
                message: format!("HTTP {status}"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::spandata::tests::sample_trace;
    use std::collections::HashMap;

    /// A fake receiver: fails while `down` is set, records what it accepted.
    #[derive(Default)]
    struct Fake {
        down: AtomicBool,
        permanent: AtomicBool,
        accepted_spans: AtomicU64,
        requests: AtomicU64,
        gate: Notify,
        gated: AtomicBool,
    }

    struct FakeTransport(Arc<Fake>);

    impl Transport for FakeTransport {
        fn send(&self, req: ExportTraceServiceRequest) -> SendFuture<'_> {
            Box::pin(async move {
                let f = &self.0;
                if f.gated.load(Ordering::Acquire) {
                    f.gate.notified().await;
                }
                f.requests.fetch_add(1, Ordering::Relaxed);
                if f.permanent.load(Ordering::Acquire) {
                    return Err(SendError {
                        retryable: false,
                        message: "HTTP 400 Bad Request".into(),
                    });
                }
                if f.down.load(Ordering::Acquire) {
                    return Err(SendError {
                        retryable: true,
                        message: "connection refused".into(),
                    });
                }
                let spans: usize = req
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum();
                f.accepted_spans.fetch_add(spans as u64, Ordering::Relaxed);
                Ok(())
            })
        }
    }

    fn config(capacity: usize) -> ExportConfig {
        ExportConfig {
            queue_capacity: capacity,
            max_batch_spans: 8,
            max_retries: 1000,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            timeout: Duration::from_secs(5),
            ..ExportConfig::default()
        }
    }

    fn trace(n: u32) -> Trace {
        sample_trace(&format!("uid-{n}"))
    }

    async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn exports_everything_when_backend_is_up() {
        let fake = Arc::new(Fake::default());
        let (exp, join) = Exporter::start_with(
            config(100),
            Box::new(FakeTransport(fake.clone())),
            &tokio::runtime::Handle::current(),
        );
        let mut rx = exp.subscribe();
        for i in 0..10 {
            exp.submit(trace(i), Arc::new(vec![]), u64::from(i));
        }
        let stats = exp.clone().shutdown(Duration::from_secs(5)).await;
        join.await.unwrap();
        assert_eq!(stats.exported_traces, 10);
        assert_eq!(stats.exported_spans, 40);
        assert_eq!(fake.accepted_spans.load(Ordering::Relaxed), 40);
        // 4 spans per trace, 8 per batch: 2 traces per request.
        assert_eq!(fake.requests.load(Ordering::Relaxed), 5);
        assert_eq!(stats.queued, 0);
        let mut tags = Vec::new();
        while let Ok(o) = rx.try_recv() {
            assert_eq!(o.result, ExportResult::Exported);
            tags.push(o.tag);
        }
        tags.sort_unstable();
        assert_eq!(tags, (0..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn backend_down_keeps_bound_and_drops_oldest_exactly() {
        let fake = Arc::new(Fake::default());
        fake.down.store(true, Ordering::Release);
        let (exp, join) = Exporter::start_with(
            config(5),
            Box::new(FakeTransport(fake.clone())),
            &tokio::runtime::Handle::current(),
        );
        let mut rx = exp.subscribe();
        // The worker takes the first batch (traces 0 and 1) and retries it while down.
        exp.submit(trace(0), Arc::new(vec![]), 0);
        exp.submit(trace(1), Arc::new(vec![]), 1);
        wait_for("first batch in flight", || exp.stats().retries >= 2).await;
        for i in 2..20 {
            exp.submit(trace(i), Arc::new(vec![]), u64::from(i));
        }
        let s = exp.stats();
        // 2 in flight + 5 queued; 18 submitted to a 5-slot queue: 13 oldest dropped.
        assert_eq!(s.dropped_traces, 13);
        assert_eq!(s.queued, 7);
        assert_eq!(s.exported_traces, 0);
        let mut dropped = Vec::new();
        while let Ok(o) = rx.try_recv() {
            assert_eq!(o.result, ExportResult::Dropped);
            dropped.push(o.tag);
        }
        assert_eq!(dropped, (2..15).collect::<Vec<_>>());

        fake.down.store(false, Ordering::Release);
        let stats = exp.clone().shutdown(Duration::from_secs(5)).await;
        join.await.unwrap();
        assert_eq!(stats.exported_traces, 7);
        assert_eq!(stats.submitted_traces, 20);
        assert_eq!(
            stats.exported_traces + stats.dropped_traces + stats.failed_traces + stats.queued,
            stats.submitted_traces
        );
        assert!(stats.retries >= 2 && stats.export_errors >= 2);
        let mut exported = Vec::new();
        while let Ok(o) = rx.try_recv() {
            assert_eq!(o.result, ExportResult::Exported);
            exported.push(o.tag);
        }
        exported.sort_unstable();
        assert_eq!(exported, vec![0, 1, 15, 16, 17, 18, 19]);
    }

    #[tokio::test]
    async fn permanent_errors_and_retry_limit_fail_the_batch() {
        let fake = Arc::new(Fake::default());
        fake.permanent.store(true, Ordering::Release);
        let mut c = config(10);
        c.max_retries = 2;
        let (exp, join) = Exporter::start_with(
            c.clone(),
            Box::new(FakeTransport(fake.clone())),
            &tokio::runtime::Handle::current(),
        );
        let mut rx = exp.subscribe();
        exp.submit(trace(1), Arc::new(vec![]), 7);
        let o = rx.recv().await.unwrap();
        assert_eq!(o.tag, 7);
        assert!(matches!(o.result, ExportResult::Failed(ref m) if m.contains("400")));
        assert_eq!(exp.last_error().as_deref(), Some("HTTP 400 Bad Request"));
        assert_eq!(exp.stats().retries, 0, "permanent errors are not retried");

        fake.permanent.store(false, Ordering::Release);
        fake.down.store(true, Ordering::Release);
        exp.submit(trace(2), Arc::new(vec![]), 8);
        let o = rx.recv().await.unwrap();
        assert!(matches!(o.result, ExportResult::Failed(_)));
        let stats = exp.shutdown(Duration::from_secs(5)).await;
        join.await.unwrap();
        assert_eq!(stats.retries, 2);
        assert_eq!(stats.export_errors, 1 + 3);
        assert_eq!(stats.failed_traces, 2);
    }

    #[tokio::test]
    async fn shutdown_deadline_drops_what_cannot_be_sent() {
        let fake = Arc::new(Fake::default());
        fake.gated.store(true, Ordering::Release);
        let (exp, join) = Exporter::start_with(
            config(100),
            Box::new(FakeTransport(fake.clone())),
            &tokio::runtime::Handle::current(),
        );
        for i in 0..6 {
            exp.submit(trace(i), Arc::new(vec![]), u64::from(i));
        }
        let stats = exp.clone().shutdown(Duration::from_millis(50)).await;
        tokio::time::timeout(Duration::from_secs(5), join)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.exported_traces, 0);
        assert_eq!(stats.dropped_traces, 6);
        assert_eq!(stats.queued, 0);
        // After shutdown, submissions are dropped at once.
        exp.submit(trace(9), Arc::new(vec![]), 9);
        assert_eq!(exp.stats().dropped_traces, 7);
    }

    #[test]
    fn config_from_env() {
        let env: HashMap<&str, &str> = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=s%3Dcret, x-tenant = a",
            ),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,k8s.cluster.name=c1",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]
        .into_iter()
        .collect();
        let c = ExportConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(
            c.headers,
            vec![
                ("api-key".into(), "s=cret".into()),
                ("x-tenant".into(), "a".into())
            ]
        );
        assert_eq!(c.resource_attributes.len(), 2);
        assert_eq!(c.timeout, Duration::from_millis(2500));

        let c = ExportConfig::from_lookup(|_| None).unwrap();
        assert_eq!(
            (c.protocol, c.endpoint.as_str()),
            (Protocol::Grpc, DEFAULT_GRPC_ENDPOINT)
        );
        let err = ExportConfig::from_lookup(|k| {
            (k == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "http/json".into())
        });
        assert!(matches!(err, Err(ExportError::UnsupportedProtocol(_))));
        let err = ExportConfig::from_lookup(|k| {
            (k == "OTEL_EXPORTER_OTLP_HEADERS").then(|| "secret-value".into())
        })
        .unwrap_err()
        .to_string();
        assert!(!err.contains("secret-value"), "{err}");
    }

    #[test]
    fn http_endpoint_gets_traces_path() {
        let mut c = ExportConfig {
            protocol: Protocol::HttpProtobuf,
            ..ExportConfig::default()
        };
        for (given, want) in [
            ("http://h:4318", "http://h:4318/v1/traces"),
            ("http://h:4318/", "http://h:4318/v1/traces"),
            ("http://h:4318/v1/traces", "http://h:4318/v1/traces"),
            ("h:4318", "http://h:4318/v1/traces"),
        ] {
            c.endpoint = given.into();
            assert_eq!(c.effective_endpoint(), want);
        }
        c.protocol = Protocol::Grpc;
        c.endpoint = "localhost:4317".into();
        assert_eq!(c.effective_endpoint(), "http://localhost:4317");
    }
}
