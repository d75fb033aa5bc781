//! `podtrace record`: capture Pod/Event/Node watch streams in the replay format.
//!
//! One JSON value per line, `{"type":"ADDED","observedAt":"<RFC3339 ms>","object":{…}}`, the
//! four streams (Pods, core/v1 Events, events.k8s.io/v1 Events, Nodes) interleaved in the
//! order they were received. The initial list of each stream is written as ADDED, later
//! changes as ADDED/MODIFIED/DELETED. kube-runtime's watcher merges ADDED and MODIFIED into
//! one "applied" event, so the type is recovered from whether the object's uid was already
//! seen on that stream (a re-list after a 410 writes the objects again as ADDED, which replay
//! treats as an update). `managedFields`, container env, commands, args, exec hooks/probes and
//! the last-applied annotation are stripped (see [`scrub`]); Secrets are never read.
//!
//! Writing happens on one plain thread fed by a channel, so slow disks never stall a watch.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, Pod};
use k8s_openapi::api::events::v1::Event as EventsV1;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Arguments of `podtrace record`.
#[derive(clap::Args, Debug)]
pub struct RecordArgs {
    /// Cluster connection.
    #[command(flatten)]
    pub cluster: crate::controller::client::ClusterArgs,
    /// File to write; gzip-compressed when the name ends in `.gz`.
    #[arg(long)]
    pub out: PathBuf,
    /// Stop after this long (e.g. `90s`, `10m`); default: until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = crate::telemetry::LogFormat::Text)]
    pub log_format: crate::telemetry::LogFormat,
}

/// Parses a Go-style duration (`90s`, `1h30m`, `250ms`) into a std duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = crate::controller::sessions::parse_go_duration(s).map_err(|e| e.to_string())?;
    Duration::try_from(d).map_err(|_| format!("duration {s:?} is negative"))
}

/// One line of the replay format.
#[derive(Serialize)]
struct Line<'a, K: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "observedAt")]
    observed_at: String,
    object: &'a K,
}

/// Opens the output, gzip-compressed when the name ends in `.gz`.
fn open_output(path: &Path) -> anyhow::Result<Box<dyn Write + Send>> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let buffered = std::io::BufWriter::new(file);
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::write::GzEncoder::new(
            buffered,
            flate2::Compression::default(),
        )))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Records until interrupted.
pub async fn run(args: RecordArgs) -> anyhow::Result<()> {
    crate::telemetry::init_logging(args.log_format);
    let client = args.cluster.client().await?;
    let mut out = open_output(&args.out)?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let writer = std::thread::spawn(move || -> std::io::Result<u64> {
        let mut lines = 0u64;
        for line in rx {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
            lines += 1;
        }
        out.flush()?;
        // Dropping a GzEncoder finishes the stream but swallows errors; flush covers the
        // buffered bytes and drop writes the gzip trailer.
        drop(out);
        Ok(lines)
    });

    let streams = futures::future::join4(
        record_stream::<Pod>(
            Api::all(client.clone()),
            watcher::Config::default(),
            tx.clone(),
        ),
        record_stream::<CoreEvent>(
            Api::all(client.clone()),
            watcher::Config::default().fields("involvedObject.kind=Pod"),
            tx.clone(),
        ),
        record_stream::<EventsV1>(
            Api::all(client.clone()),
            watcher::Config::default().fields("regarding.kind=Pod"),
            tx.clone(),
        ),
        record_stream::<Node>(Api::all(client), watcher::Config::default(), tx),
    );
    let stop = async {
        match args.duration {
            Some(d) => tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = shutdown_signal() => {}
            },
            None => shutdown_signal().await,
        }
    };
    tokio::select! {
        _ = streams => {}
        _ = stop => {}
    }
    // The select dropped the stream futures and with them every sender: the writer sees the
    // channel close, flushes and finishes the gzip stream.
    let lines = tokio::task::spawn_blocking(move || writer.join())
        .await
        .context("joining the writer")?
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?
        .with_context(|| format!("writing {}", args.out.display()))?;
    tracing::info!(lines, out = %args.out.display(), "recording finished");
    Ok(())
}

/// SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Follows one resource type forever, sending replay lines to the writer.
async fn record_stream<K>(api: Api<K>, config: watcher::Config, tx: std::sync::mpsc::Sender<String>)
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let mut seen: HashSet<String> = HashSet::new();
    let mut stream = watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(kind, error = %e, "watch failed; retrying with backoff");
                continue;
            }
        };
        let (verb, mut obj) = match event {
            watcher::Event::Init | watcher::Event::InitDone => continue,
            watcher::Event::InitApply(obj) => {
                seen.insert(obj.uid().unwrap_or_default());
                ("ADDED", obj)
            }
            watcher::Event::Apply(obj) => {
                let fresh = seen.insert(obj.uid().unwrap_or_default());
                (if fresh { "ADDED" } else { "MODIFIED" }, obj)
            }
            watcher::Event::Delete(obj) => {
                seen.remove(&obj.uid().unwrap_or_default());
                ("DELETED", obj)
            }
        };
        obj.meta_mut().managed_fields = None;
        let mut value = match serde_json::to_value(&obj) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(kind, error = %e, "could not serialise an object; skipped");
                continue;
            }
        };
        scrub(&mut value);
        let line = Line {
            kind: verb,
            observed_at: observed_now(),
            object: &value,
        };
        match serde_json::to_string(&line) {
            Ok(s) => {
                if tx.send(s).is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!(kind, error = %e, "could not serialise an object; skipped"),
        }
    }
}

/// Annotation in which `kubectl apply` repeats the whole applied object, env included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Removes what a recording attached to a bug report must never carry: container environment
/// (values and references), command lines and arguments, lifecycle hooks and exec probes
/// (commands again), and the last-applied annotation that repeats all of them. podtrace
/// needs none of it to rebuild a startup.
pub fn scrub(object: &mut serde_json::Value) {
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(|a| a.as_object_mut())
    {
        annotations.remove(LAST_APPLIED);
    }
    let Some(spec) = object.get_mut("spec").and_then(|s| s.as_object_mut()) else {
        return;
    };
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(|c| c.as_array_mut()) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(|c| c.as_object_mut()) {
            for key in ["env", "envFrom", "command", "args", "lifecycle"] {
                c.remove(key);
            }
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if let Some(p) = c.get_mut(probe).and_then(|p| p.as_object_mut()) {
                    p.remove("exec");
                }
            }
        }
    }
}

/// The current time as RFC 3339 with millisecond precision.
fn observed_now() -> String {
    let now = jiff::Timestamp::now();
    let ms = now.as_millisecond();
    let rounded = jiff::Timestamp::from_millisecond(ms).unwrap_or(now);
    format!("{rounded:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_at_has_milliseconds() {
        let s = observed_now();
        let ts: jiff::Timestamp = s.parse().expect("RFC 3339");
        assert_eq!(ts.subsec_nanosecond() % 1_000_000, 0, "{s}");
        assert!(
            s.ends_with('Z') && s.len() == "2026-01-01T00:00:00.000Z".len(),
            "{s}"
        );
    }

    #[test]
    fn gz_output_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.jsonl.gz");
        let mut w = open_output(&path).expect("open");
        w.write_all(b"{\"a\":1}\n").expect("write");
        w.flush().expect("flush");
        drop(w);
        let f = std::fs::File::open(&path).expect("reopen");
        let mut s = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(f), &mut s)
            .expect("gunzip");
        assert_eq!(s, "{\"a\":1}\n");
    }

    #[test]
    fn line_has_type_observed_at_and_typed_object() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        let s = serde_json::to_string(&Line {
            kind: "ADDED",
            observed_at: observed_now(),
            object: &pod,
        })
        .expect("json");
        let v: serde_json::Value = serde_json::from_str(&s).expect("parse");
        assert_eq!(v["type"], "ADDED");
        assert_eq!(v["object"]["kind"], "Pod");
        assert_eq!(v["object"]["apiVersion"], "v1");
    }

    #[test]
    fn scrub_removes_env_commands_and_last_applied() {
        let mut pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"env\":\"SECRET\"}",
                "keep": "me"}},
            "spec": {
                "initContainers": [{"name": "i", "image": "busybox", "command": ["sh", "-c", "SECRET"]}],
                "containers": [{"name": "c", "image": "nginx",
                    "env": [{"name": "TOKEN", "value": "SECRET"}],
                    "envFrom": [{"secretRef": {"name": "s"}}],
                    "args": ["--password=SECRET"],
                    "lifecycle": {"postStart": {"exec": {"command": ["SECRET"]}}},
                    "livenessProbe": {"exec": {"command": ["SECRET"]}, "periodSeconds": 5}}]
            }
        });
        scrub(&mut pod);
        let text = pod.to_string();
        assert!(!text.contains("SECRET"), "left behind: {text}");
        assert!(!text.contains("secretRef"), "left behind: {text}");
        assert_eq!(
            pod.pointer("/metadata/annotations/keep"),
            Some(&serde_json::json!("me"))
        );
        assert_eq!(
            pod.pointer("/spec/containers/0/image"),
            Some(&serde_json::json!("nginx"))
        );
        assert_eq!(
            pod.pointer("/spec/containers/0/livenessProbe/periodSeconds"),
            Some(&serde_json::json!(5))
        );
    }
}
