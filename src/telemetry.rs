//! podtrace's own logs and metrics.
//!
//! Logs go to stderr through `tracing` (text for people, JSON for log pipelines). Metrics are a
//! prometheus-client registry served by the controller's `/metrics`; they describe podtrace's
//! own work, never pod contents (labels are fixed, low-cardinality sets).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global `tracing` subscriber. `RUST_LOG` overrides the default `info` filter.
/// Calling it twice is harmless (the second call keeps the first subscriber).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // An already-installed subscriber (tests, a second call) is not an error worth failing on.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The kubelet's `pod_start_sli_duration_seconds` buckets, so podtrace's histograms line up
/// with the kubelet's own SLI.
pub const POD_START_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// Label of the phase histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// Phase name from the trace model (`schedule`, `image_pull`, …, `total`).
    pub phase: String,
}

/// Labels of the watch-event counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    /// Pod, Event or Node.
    pub kind: String,
    /// added, modified, deleted or error.
    pub r#type: String,
}

fn phase_histogram() -> Histogram {
    Histogram::new(POD_START_BUCKETS)
}

/// podtrace's metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    /// Phase durations of completed startups.
    pub phase_duration: Family<PhaseLabel, Histogram, fn() -> Histogram>,
    /// Watch events received, by kind and type.
    pub watch_events: Family<WatchLabels, Counter>,
    /// Startup traces finished by the engine and attributed to at least one session.
    pub traces_completed: Counter,
    /// Traces accepted by the OTLP backend.
    pub traces_exported: Counter,
    /// Traces dropped because the export queue was full (or still queued at shutdown).
    pub traces_dropped: Counter,
    /// Failed export attempts (a trace may fail several times before it is exported).
    pub export_errors: Counter,
    /// Pods whose startup is being followed.
    pub pods_in_flight: Gauge,
    /// TraceSessions in phase Active.
    pub active_sessions: Gauge,
    /// 1 while this replica holds the lease (or runs without leader election).
    pub leader: Gauge,
    /// TraceSession status writes that failed.
    pub status_write_errors: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates every metric and registers it.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let phase_duration =
            Family::<PhaseLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                phase_histogram as fn() -> Histogram,
            );
        registry.register(
            "podtrace_pod_startup_phase_duration_seconds",
            "Duration of pod startup phases (total: creation to Ready), with the kubelet's pod_start_sli_duration_seconds buckets",
            phase_duration.clone(),
        );
        let watch_events = Family::<WatchLabels, Counter>::default();
        registry.register(
            "podtrace_watch_events",
            "Watch events received",
            watch_events.clone(),
        );
        let traces_completed = Counter::default();
        registry.register(
            "podtrace_traces_completed",
            "Startup traces finished and attributed to a session",
            traces_completed.clone(),
        );
        let traces_exported = Counter::default();
        registry.register(
            "podtrace_traces_exported",
            "Traces accepted by the OTLP backend",
            traces_exported.clone(),
        );
        let traces_dropped = Counter::default();
        registry.register(
            "podtrace_traces_dropped",
            "Traces dropped because the export queue was full",
            traces_dropped.clone(),
        );
        let export_errors = Counter::default();
        registry.register(
            "podtrace_export_errors",
            "Failed export attempts",
            export_errors.clone(),
        );
        let pods_in_flight = Gauge::default();
        registry.register(
            "podtrace_pods_in_flight",
            "Pods whose startup is being followed",
            pods_in_flight.clone(),
        );
        let active_sessions = Gauge::default();
        registry.register(
            "podtrace_active_sessions",
            "TraceSessions in phase Active",
            active_sessions.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "podtrace_leader",
            "1 while this replica does the work (holds the lease or runs without election)",
            leader.clone(),
        );
        let status_write_errors = Counter::default();
        registry.register(
            "podtrace_status_write_errors",
            "TraceSession status writes that failed",
            status_write_errors.clone(),
        );
        Metrics {
            registry,
            phase_duration,
            watch_events,
            traces_completed,
            traces_exported,
            traces_dropped,
            export_errors,
            pods_in_flight,
            active_sessions,
            leader,
            status_write_errors,
        }
    }

    /// Counts one watch event.
    pub fn watch_event(&self, kind: &str, kind_of_event: &str) {
        self.watch_events
            .get_or_create(&WatchLabels {
                kind: kind.to_string(),
                r#type: kind_of_event.to_string(),
            })
            .inc();
    }

    /// Records the phase durations of one completed trace (the engine's phase list includes
    /// `total`, creation to Ready, for pods that became Ready).
    pub fn observe_trace(&self, trace: &crate::trace::Trace) {
        for (phase, d) in &trace.phases {
            self.phase_duration
                .get_or_create(&PhaseLabel {
                    phase: (*phase).to_string(),
                })
                .observe(d.as_secs_f64().max(0.0));
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in an encoder.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_kubelet_buckets_and_counters() {
        let m = Metrics::new();
        m.phase_duration
            .get_or_create(&PhaseLabel {
                phase: "schedule".into(),
            })
            .observe(0.7);
        m.traces_dropped.inc_by(3);
        m.watch_event("Pod", "added");
        let text = m.encode();
        assert!(text.contains(
            "podtrace_pod_startup_phase_duration_seconds_bucket{le=\"0.5\",phase=\"schedule\"} 0"
        ));
        assert!(text.contains(
            "podtrace_pod_startup_phase_duration_seconds_bucket{le=\"1.0\",phase=\"schedule\"} 1"
        ));
        assert!(text.contains(
            "podtrace_pod_startup_phase_duration_seconds_bucket{le=\"3600.0\",phase=\"schedule\"} 1"
        ));
        assert!(text.contains("podtrace_traces_dropped_total 3"));
        assert!(text.contains("podtrace_watch_events_total{kind=\"Pod\",type=\"added\"} 1"));
    }
}
