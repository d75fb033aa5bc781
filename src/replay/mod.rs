//! `podtrace replay`: the engine over recorded watch streams.
//!
//! Reads the files (see [`input`] for formats and merge order), feeds the engine, and prints
//! each finished trace as it finishes (waterfall or OTLP/JSON), or a latency summary at the
//! end; optionally also exports the traces to an OTLP receiver.

pub mod input;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jiff::SignedDuration;

use crate::export::exporter::{ExportConfig, Exporter, Protocol};
use crate::export::otlp_json;
use crate::latency::Latencies;
use crate::render::{summary, waterfall};
use crate::timeline::{Config, Engine};
use crate::trace::Trace;
use input::{Inputs, Record, Skip};

/// Output format of `podtrace replay`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One indented span tree with time bars per trace.
    Waterfall,
    /// One OTLP/JSON `{"resourceSpans":[…]}` document per line, one per trace.
    OtlpJson,
    /// Latency percentiles per phase and outcome counts, after all input is read.
    Summary,
    /// Nothing on stdout (useful with `--otlp-endpoint`).
    None,
}

/// OTLP transport selectable on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// Arguments of `podtrace replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Waterfall)]
    pub format: Format,

    /// Also export every trace to this OTLP receiver: `http://HOST:4317` for gRPC, or
    /// `http://HOST:4318` for HTTP (`/v1/traces` is appended unless present).
    /// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES` apply.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// OTLP transport for `--otlp-endpoint` [default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else grpc].
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<OtlpProtocol>,

    /// Stop at the first value that cannot be read, with a non-zero exit status.
    #[arg(long)]
    pub strict: bool,

    /// How long after Ready (or failure) late events may still join a trace, e.g. `10s`.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub grace: SignedDuration,

    /// Finish a startup as timed out when it has not ended this long after creation, e.g. `15m`.
    #[arg(long, value_name = "DUR", default_value = "15m", value_parser = parse_duration)]
    pub timeout: SignedDuration,

    /// With `--otlp-endpoint`: how long to keep sending (and retrying) queued traces once the
    /// input is read; what is still unsent then is dropped and the exit status is non-zero.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    pub export_deadline: SignedDuration,

    /// Recorded watch streams (plain or gzip JSON); `-` reads stdin; a directory stands for
    /// the `*.json`, `*.jsonl`, `*.ndjson` (optionally `.gz`) files in it.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
}

/// Parses Go durations such as `10s`, `1m30s`, `500ms`, `2h` (the form the CRD uses too).
pub fn parse_duration(s: &str) -> Result<SignedDuration, String> {
    let d = crate::timeline::parse::go_duration(s).map_err(|e| e.to_string())?;
    if d.is_negative() {
        return Err(format!("duration {s:?} is negative"));
    }
    Ok(d)
}

/// Counters of one replay, printed on stderr at the end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    /// Observations fed to the engine.
    pub observations: u64,
    /// Values that could not be read.
    pub malformed: u64,
    /// BOOKMARK events skipped.
    pub bookmarks: u64,
    /// Objects of unsupported kinds skipped, by `apiVersion/kind`.
    pub unsupported: BTreeMap<String, u64>,
    /// Traces produced.
    pub traces: u64,
}

impl std::fmt::Display for ReplayStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replayed {} observations into {} traces",
            self.observations, self.traces
        )?;
        if self.malformed > 0 {
            write!(f, "; {} malformed values", self.malformed)?;
        }
        if self.bookmarks > 0 {
            write!(f, "; skipped {} BOOKMARKs", self.bookmarks)?;
        }
        for (kind, n) in &self.unsupported {
            write!(f, "; skipped {n} {kind}")?;
        }
        Ok(())
    }
}

/// Where finished traces go.
struct Sink {
    format: Format,
    out: io::BufWriter<io::StdoutLock<'static>>,
    style: waterfall::Style,
    latencies: Latencies,
    resource_attributes: Vec<(String, String)>,
    exporter: Option<(Exporter, tokio::runtime::Runtime)>,
    /// stdout went away (`| head`): stop writing, keep going quietly.
    closed: bool,
}

impl Sink {
    fn emit(&mut self, trace: Trace) -> anyhow::Result<()> {
        self.latencies.record(&trace);
        if !self.closed {
            let written = match self.format {
                Format::Waterfall => {
                    let text = waterfall::render(&trace, &self.style);
                    writeln!(self.out, "{text}")
                }
                Format::OtlpJson => {
                    let line = otlp_json::document(&trace, &[], &self.resource_attributes)
                        .context("encoding OTLP/JSON")?;
                    writeln!(self.out, "{line}")
                }
                Format::Summary | Format::None => Ok(()),
            };
            if let Err(e) = written {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    self.closed = true;
                } else {
                    return Err(e).context("writing to stdout");
                }
            }
        }
        if let Some((exp, rt)) = &self.exporter {
            // Replay prefers backpressure to dropping: wait while the queue is full.
            rt.block_on(exp.wait_for_room());
            exp.submit(trace, Arc::new(Vec::new()), 0);
        }
        Ok(())
    }
}

fn start_exporter(
    args: &ReplayArgs,
    endpoint: &str,
) -> anyhow::Result<(Exporter, tokio::runtime::Runtime)> {
    let mut config = ExportConfig::from_env().context("reading OTEL_* environment variables")?;
    config.endpoint = endpoint.to_string();
    if let Some(p) = args.otlp_protocol {
        config.protocol = match p {
            OtlpProtocol::Grpc => Protocol::Grpc,
            OtlpProtocol::Http => Protocol::HttpProtobuf,
        };
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the export runtime")?;
    let (exporter, _join) = {
        let _guard = rt.enter();
        Exporter::start(config).context("configuring the OTLP exporter")?
    };
    Ok((exporter, rt))
}

/// Runs `podtrace replay`.
pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let inputs = Inputs::open_paths(&args.files).context("opening input")?;
    let resource_attributes = match std::env::var("OTEL_RESOURCE_ATTRIBUTES") {
        Ok(v) if !v.trim().is_empty() => {
            crate::export::exporter::parse_kv_list("OTEL_RESOURCE_ATTRIBUTES", &v)?
        }
        _ => Vec::new(),
    };
    let exporter = match &args.otlp_endpoint {
        Some(endpoint) => Some(start_exporter(&args, endpoint)?),
        None => None,
    };
    let mut sink = Sink {
        format: args.format,
        out: io::BufWriter::new(io::stdout().lock()),
        style: waterfall::Style::for_stdout(),
        latencies: Latencies::default(),
        resource_attributes,
        exporter,
        closed: false,
    };
    let mut engine = Engine::new(Config {
        grace: args.grace,
        timeout: args.timeout,
        ..Config::default()
    });
    let stats = replay(inputs, &mut engine, &mut sink, args.strict)?;

    if args.format == Format::Summary {
        let text = summary::render(&sink.latencies);
        if let Err(e) = write!(sink.out, "{text}")
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            return Err(e).context("writing to stdout");
        }
    }
    match sink.out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(e).context("writing to stdout");
        }
        _ => {}
    }
    eprintln!("{stats}");
    if let Some((exporter, rt)) = sink.exporter.take() {
        let deadline = Duration::try_from(args.export_deadline).unwrap_or(Duration::from_secs(30));
        let handle = exporter.clone();
        let s = rt.block_on(exporter.shutdown(deadline));
        let last_error = handle.last_error();
        eprintln!(
            "exported {} traces ({} spans); {} dropped, {} failed, {} retries",
            s.exported_traces, s.exported_spans, s.dropped_traces, s.failed_traces, s.retries
        );
        if s.dropped_traces + s.failed_traces > 0 {
            let why = last_error
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default();
            anyhow::bail!(
                "{} traces were not exported{why}",
                s.dropped_traces + s.failed_traces
            );
        }
    }
    Ok(())
}

fn replay(
    inputs: Inputs,
    engine: &mut Engine,
    sink: &mut Sink,
    strict: bool,
) -> anyhow::Result<ReplayStats> {
    let mut stats = ReplayStats::default();
    let progress = inputs.wants_progress().then(|| {
        let bar = indicatif::ProgressBar::new(inputs.total_bytes().unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut inputs = inputs;
    let mut n = 0u64;
    while let Some(item) = inputs.next() {
        n += 1;
        if let Some(bar) = &progress
            && n.is_multiple_of(4096)
        {
            bar.set_position(inputs.bytes_read());
            bar.set_message(format!("{} traces", stats.traces));
        }
        match item {
            Err(e) => {
                stats.malformed += 1;
                if strict {
                    if let Some(bar) = &progress {
                        bar.finish_and_clear();
                    }
                    return Err(anyhow::Error::new(e).context("malformed input (--strict)"));
                }
                match &progress {
                    Some(bar) => bar.suspend(|| eprintln!("{e}")),
                    None => eprintln!("{e}"),
                }
            }
            Ok(Record::Skipped(Skip::Bookmark)) => stats.bookmarks += 1,
            Ok(Record::Skipped(Skip::Unsupported(kind))) => {
                *stats.unsupported.entry(kind).or_default() += 1
            }
            Ok(Record::Observation { observation, .. }) => {
                stats.observations += 1;
                for t in engine.observe(observation) {
                    stats.traces += 1;
                    sink.emit(t)?;
                }
            }
        }
    }
    for t in engine.drain() {
        stats.traces += 1;
        sink.emit(t)?;
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(stats)
}
