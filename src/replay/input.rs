//! Reading recorded watch streams: what `kubectl get … --watch --output-watch-events -o json`
//! and `kubectl get -o json` write, one or many files, plain or gzip.
//!
//! # Accepted values
//! A file is a sequence of JSON values, pretty-printed or one per line:
//! - watch events `{"type": "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR", "object": {…}}`,
//!   optionally with `"observedAt": "<RFC 3339>"` beside `type` (what `podtrace record` adds);
//! - `kind: List` documents (`kubectl get -o json`): every item is read as ADDED;
//! - plain objects (anything with `apiVersion` and `kind`): read as ADDED.
//!
//! Pods, core/v1 and events.k8s.io/v1 Events and Nodes are observed; other kinds and
//! BOOKMARKs are skipped and counted. A gzip file is recognised by its magic bytes.
//!
//! # Merge order
//! Several files are merged into one stream by `metadata.resourceVersion`, streaming: one
//! record per file is buffered, never whole files. The rule: every record gets a merge key,
//! its resourceVersion when that is a decimal integer, otherwise the key of the record before
//! it in the same file (0 at the start). The record with the smallest key goes next; ties go
//! to the file named first. So each file's own order is always kept (a record without a
//! numeric resourceVersion stays right after its predecessor), and files are interleaved by
//! resourceVersion, which Kubernetes assigns from one etcd revision counter — unless Events
//! are stored in a separate etcd, in which case the interleaving is still valid but coarser.
//!
//! # Errors
//! A value that cannot be read is reported as `FILE:LINE: reason`, with the line where the
//! offending value (or, for JSON syntax errors, the offending character) is; reading then
//! resumes at the next value. A value is taken to start at a `{` in the first column, which
//! holds for both kubectl output styles, so a truncated value does not swallow the next one.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use serde_json::Value;

use crate::observe::{Action, Object, Observation, ObserveError, Present};

/// Largest single JSON value accepted; beyond it the value is reported and skipped, so garbage
/// input cannot exhaust memory. `kubectl get -o json` of a large cluster stays well below.
pub const MAX_VALUE_BYTES: usize = 512 << 20;

/// A value that could not be read, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct InputError {
    /// File name as given (`-` for stdin).
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// Why a record was skipped rather than observed (not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// A watch BOOKMARK.
    Bookmark,
    /// An object of a kind podtrace does not follow (`apiVersion/kind`).
    Unsupported(String),
}

/// One item of the merged stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// An observation for the engine, with where it came from.
    Observation {
        /// The observation.
        observation: Observation,
        /// Source file.
        file: Arc<str>,
        /// Line where its value starts.
        line: u64,
    },
    /// Something deliberately skipped.
    Skipped(Skip),
}

/// Where an input comes from.
pub enum Source {
    /// A file path (`-` is stdin).
    Path(String),
    /// In-memory bytes with a display name (tests, benchmarks).
    Bytes {
        /// Name used in error messages.
        name: String,
        /// Content (plain or gzip).
        data: Arc<[u8]>,
    },
}

/// Counts bytes read from the underlying input (for the progress bar).
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens a source, transparently gunzipping. Returns the reader and the raw size when known.
fn open(
    source: &Source,
    count: Arc<AtomicU64>,
) -> io::Result<(Box<dyn BufRead + Send>, Option<u64>)> {
    let (raw, size): (Box<dyn Read + Send>, Option<u64>) = match source {
        Source::Path(p) if p == "-" => (Box::new(io::stdin()), None),
        Source::Path(p) => {
            let f = File::open(p)?;
            let size = f.metadata().ok().map(|m| m.len());
            (Box::new(f), size)
        }
        Source::Bytes { data, .. } => (
            Box::new(io::Cursor::new(data.clone())),
            Some(data.len() as u64),
        ),
    };
    let mut buffered = BufReader::with_capacity(256 << 10, Counting { inner: raw, count });
    let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    if gzip {
        let dec = flate2::bufread::MultiGzDecoder::new(buffered);
        Ok((Box::new(BufReader::with_capacity(256 << 10, dec)), size))
    } else {
        Ok((Box::new(buffered), size))
    }
}

/// Splits a byte stream into top-level JSON values, tracking lines.
struct Splitter {
    reader: Box<dyn BufRead + Send>,
    /// Line of the next unread byte.
    line: u64,
    /// At the first column of a line.
    line_start: bool,
    /// A value that begins at the current position was already detected (resync).
    pending_start: bool,
    /// Skipping an oversized value up to the next `{` in column 0.
    skipping: bool,
    eof: bool,
}

/// One raw top-level value.
struct RawValue {
    bytes: Vec<u8>,
    line: u64,
    /// Set when the splitter already knows the value is broken.
    broken: Option<String>,
}

impl Splitter {
    fn new(reader: Box<dyn BufRead + Send>) -> Self {
        Splitter {
            reader,
            line: 1,
            line_start: true,
            pending_start: false,
            skipping: false,
            eof: false,
        }
    }

    /// The next value, or None at the end. I/O errors end the file.
    fn next_value(&mut self) -> Option<Result<RawValue, (u64, String)>> {
        if self.eof {
            return None;
        }
        let mut bytes = Vec::new();
        let mut start_line = self.line;
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        let mut started = false;
        // Garbage outside any value: collected until the end of its line.
        let mut garbage = false;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.eof = true;
                    return Some(Err((self.line, format!("read error: {e}"))));
                }
            };
            if buf.is_empty() {
                self.eof = true;
                if garbage {
                    return Some(Ok(RawValue {
                        bytes,
                        line: start_line,
                        broken: Some("not JSON".into()),
                    }));
                }
                if started {
                    return Some(Ok(RawValue {
                        bytes,
                        line: start_line,
                        broken: Some("unexpected end of input inside a JSON value".into()),
                    }));
                }
                return None;
            }
            let mut consumed = 0;
            let mut done: Option<RawValue> = None;
            // The bytes of a started value are copied in runs, `buf[copy_from..consumed]`,
            // rather than one by one.
            let mut copy_from = if started { Some(0) } else { None };
            while consumed < buf.len() {
                if in_string && !escaped && !self.line_start {
                    // Inside a string (so `started`): nothing but `"`, `\\` and a newline
                    // changes any state, so skip straight to the next of those.
                    let plain = buf[consumed..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c == b'\n')
                        .unwrap_or(buf.len() - consumed);
                    if plain > 0 {
                        consumed += plain;
                        self.pending_start = false;
                        continue;
                    }
                }
                let b = buf[consumed];
                if started
                    && self.line_start
                    && b == b'{'
                    && (depth > 0 || in_string)
                    && !self.pending_start
                {
                    // A new value begins in column 0 while the previous is unfinished: the
                    // previous one was truncated. Report it; restart here without consuming.
                    self.pending_start = true;
                    if let Some(from) = copy_from.take() {
                        bytes.extend_from_slice(&buf[from..consumed]);
                    }
                    done = Some(RawValue {
                        bytes: std::mem::take(&mut bytes),
                        line: start_line,
                        broken: Some("unexpected end of JSON value (truncated?)".into()),
                    });
                    break;
                }
                self.pending_start = false;
                if self.skipping {
                    if self.line_start && b == b'{' {
                        self.skipping = false;
                    } else {
                        consumed += 1;
                        self.line_start = b == b'\n';
                        if b == b'\n' {
                            self.line += 1;
                        }
                        continue;
                    }
                }
                consumed += 1;
                self.line_start = b == b'\n';
                if garbage {
                    if b == b'\n' {
                        self.line += 1;
                        done = Some(RawValue {
                            bytes: std::mem::take(&mut bytes),
                            line: start_line,
                            broken: Some("not JSON".into()),
                        });
                        break;
                    }
                    if bytes.len() < 200 {
                        bytes.push(b);
                    }
                    continue;
                }
                if !started {
                    match b {
                        b'\n' => {
                            self.line += 1;
                            continue;
                        }
                        b' ' | b'\t' | b'\r' => continue,
                        b'\xEF' | b'\xBB' | b'\xBF' if self.line == 1 => {
                            // A UTF-8 byte order mark: ignore.
                            continue;
                        }
                        b'{' | b'[' => {
                            started = true;
                            start_line = self.line;
                            depth = 1;
                            copy_from = Some(consumed - 1);
                            continue;
                        }
                        _ => {
                            garbage = true;
                            start_line = self.line;
                            bytes.push(b);
                            continue;
                        }
                    }
                }
                if b == b'\n' {
                    self.line += 1;
                }
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            if let Some(from) = copy_from.take() {
                                bytes.extend_from_slice(&buf[from..consumed]);
                            }
                            done = Some(RawValue {
                                bytes: std::mem::take(&mut bytes),
                                line: start_line,
                                broken: None,
                            });
                            break;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(from) = copy_from {
                bytes.extend_from_slice(&buf[from..consumed]);
            }
            self.reader.consume(consumed);
            if let Some(v) = done {
                return Some(Ok(v));
            }
            if bytes.len() > MAX_VALUE_BYTES {
                // Report this one and skip to the next value start.
                self.skipping = true;
                return Some(Ok(RawValue {
                    bytes: Vec::new(),
                    line: start_line,
                    broken: Some(format!("JSON value larger than {MAX_VALUE_BYTES} bytes")),
                }));
            }
        }
    }
}

/// The top level of a value: watch event, List or plain object, everything else skipped.
/// Duplicate keys among these are an error here (the `Value` path then keeps the last).
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow, default)]
    kind_of_event: Present<'a>,
    #[serde(borrow, default)]
    object: Present<'a>,
    #[serde(rename = "observedAt", borrow, default)]
    observed_at: Present<'a>,
    #[serde(rename = "apiVersion", borrow, default)]
    api_version: Present<'a>,
    #[serde(borrow, default)]
    kind: Present<'a>,
    #[serde(borrow, default)]
    items: Present<'a>,
}

/// A leading `,"observedAt":"<RFC 3339>"` (no escapes) and what follows it; no time and the
/// text unchanged when there is none. `None` when it is there but unreadable.
fn compact_observed_at(text: &str) -> Option<(Option<Timestamp>, &str)> {
    let Some(rest) = text.strip_prefix(",\"observedAt\":\"") else {
        return Some((None, text));
    };
    let (at, rest) = rest.split_once('"')?;
    if at.contains('\\') {
        return None;
    }
    Some((Some(at.parse().ok()?), rest))
}

/// A record with its numeric resourceVersion (if any).
type KeyedRecord = (Result<Record, InputError>, Option<u64>);

/// Reads one file into records, expanding Lists.
pub struct FileReader {
    name: Arc<str>,
    splitter: Splitter,
    pending: VecDeque<(Result<Record, InputError>, Option<u64>)>,
    /// Decode every value through `serde_json::Value` (the reference path), never directly.
    via_value: bool,
}

/// The numeric resourceVersion of a Kubernetes object, if it has one.
fn numeric_rv(object: &Value) -> Option<u64> {
    object
        .get("metadata")?
        .get("resourceVersion")?
        .as_str()?
        .parse()
        .ok()
}

impl FileReader {
    /// Opens `source`.
    pub fn open(source: &Source, count: Arc<AtomicU64>) -> io::Result<(FileReader, Option<u64>)> {
        let name: Arc<str> = match source {
            Source::Path(p) => p.as_str().into(),
            Source::Bytes { name, .. } => name.as_str().into(),
        };
        let (reader, size) = open(source, count)?;
        Ok((
            FileReader {
                name,
                splitter: Splitter::new(reader),
                pending: VecDeque::new(),
                via_value: false,
            },
            size,
        ))
    }

    fn err(&self, line: u64, reason: impl Into<String>) -> InputError {
        InputError {
            file: self.name.to_string(),
            line,
            reason: reason.into(),
        }
    }

    /// Turns one object into a record.
    fn object(
        &self,
        action: Result<Action, ObserveError>,
        object: Value,
        observed_at: Option<Timestamp>,
        line: u64,
    ) -> (Result<Record, InputError>, Option<u64>) {
        let rv = numeric_rv(&object);
        let action = match action {
            Ok(a) => a,
            Err(ObserveError::Bookmark) => return (Ok(Record::Skipped(Skip::Bookmark)), rv),
            Err(ObserveError::WatchError(_)) => {
                let msg = object
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message");
                return (Err(self.err(line, format!("watch ERROR event: {msg}"))), rv);
            }
            Err(e) => return (Err(self.err(line, e.to_string())), rv),
        };
        let record = self
            .record(Object::from_json(object), action, observed_at, line)
            .map_err(|e| self.err(line, e.to_string()));
        (record, rv)
    }

    /// The record a decoded object makes: an observation, or a skip for kinds podtrace does
    /// not read; other decoding errors are returned for the caller to report (or retry).
    fn record(
        &self,
        object: Result<Object, ObserveError>,
        action: Action,
        observed_at: Option<Timestamp>,
        line: u64,
    ) -> Result<Record, ObserveError> {
        match object {
            Ok(object) => Ok(Record::Observation {
                observation: Observation {
                    action,
                    object,
                    observed_at,
                },
                file: self.name.clone(),
                line,
            }),
            Err(ObserveError::UnsupportedKind { api_version, kind }) => Ok(Record::Skipped(
                Skip::Unsupported(format!("{api_version}/{kind}")),
            )),
            Err(e) => Err(e),
        }
    }

    /// Parses one raw value into zero or more records (a List expands to its items).
    fn expand(&mut self, raw: RawValue) {
        if let Some(reason) = raw.broken {
            let e = self.err(raw.line, reason);
            self.pending.push_back((Err(e), None));
            return;
        }
        if !self.via_value
            && let Some(records) = self.expand_fast(&raw)
        {
            self.pending.extend(records);
            return;
        }
        self.expand_via_value(raw);
    }

    /// The fast path of [`Self::expand`] for well-formed values: the envelope is read with
    /// the object left as raw text, which is decoded straight into the typed Kubernetes
    /// object (no intermediate `Value`). `None` whenever anything is off (invalid JSON, a
    /// value that is not an object, a watch event without a string `type` or `object`, an
    /// unreadable `observedAt`, ERROR events, an object that does not decode, duplicate
    /// keys…): the caller then takes the `Value` path, so errors read exactly as before.
    fn expand_fast(&self, raw: &RawValue) -> Option<Vec<KeyedRecord>> {
        let text = std::str::from_utf8(&raw.bytes).ok()?;
        if !text.starts_with('{') {
            return None;
        }
        let line = raw.line;
        // What `kubectl --output-watch-events -o json` and `podtrace record` write, byte for
        // byte: `{"type":"ADDED","object":{…}}`, `{"type":"ADDED","observedAt":"…","object":{…}}`.
        // Then the object text is known without reading the envelope; it is valid JSON exactly
        // when the whole value is (decoding it checks).
        if let Some(rest) = text.strip_prefix("{\"type\":\"")
            && let Some((kind, rest)) = rest.split_once('"')
            && kind.bytes().all(|b| b.is_ascii_uppercase())
            && let Some((observed_at, rest)) = compact_observed_at(rest)
            && let Some(object) = rest
                .strip_prefix(",\"object\":")
                .and_then(|o| o.strip_suffix('}'))
            && let Ok(action) = Action::from_watch_type(kind)
            && let Some(record) = self.object_fast(Ok(action), object, observed_at, line)
        {
            return Some(vec![record]);
        }
        let env: Envelope<'_> = serde_json::from_str(text).ok()?;
        if let Some(kind) = env.kind_of_event.0 {
            if !kind.get().starts_with('"') {
                return None;
            }
            let kind: String = serde_json::from_str(kind.get()).ok()?;
            let observed_at = match env.observed_at.0 {
                None => None,
                Some(r) if r.get() == "null" => None,
                Some(r) if r.get().starts_with('"') => Some(
                    serde_json::from_str::<String>(r.get())
                        .ok()?
                        .parse::<Timestamp>()
                        .ok()?,
                ),
                Some(_) => return None,
            };
            let object = env.object.0?;
            let action = match Action::from_watch_type(&kind) {
                Ok(a) => Ok(a),
                Err(ObserveError::Bookmark) => Err(ObserveError::Bookmark),
                Err(_) => return None,
            };
            return Some(vec![self.object_fast(
                action,
                object.get(),
                observed_at,
                line,
            )?]);
        }
        let is_list = env.kind.0.is_some_and(|k| {
            k.get().starts_with('"')
                && serde_json::from_str::<String>(k.get())
                    .is_ok_and(|k| k == "List" || k.ends_with("List"))
        }) && env.items.0.is_some_and(|i| i.get().starts_with('['));
        if is_list {
            let items: Vec<&serde_json::value::RawValue> =
                serde_json::from_str(env.items.0?.get()).ok()?;
            return items
                .into_iter()
                .map(|item| self.object_fast(Ok(Action::Added), item.get(), None, line))
                .collect();
        }
        if env.api_version.0.is_some() && env.kind.0.is_some() {
            return Some(vec![self.object_fast(
                Ok(Action::Added),
                text,
                None,
                line,
            )?]);
        }
        None
    }

    /// [`Self::object`] for an object given as JSON text; `None` when it does not decode
    /// (the caller falls back to the `Value` path for the whole value).
    fn object_fast(
        &self,
        action: Result<Action, ObserveError>,
        object: &str,
        observed_at: Option<Timestamp>,
        line: u64,
    ) -> Option<(Result<Record, InputError>, Option<u64>)> {
        let numeric = |rv: Option<String>| rv.and_then(|v| v.parse().ok());
        let action = match action {
            Ok(a) => a,
            Err(ObserveError::Bookmark) => {
                let rv = numeric(Object::peek_json_str(object).ok()?.resource_version);
                return Some((Ok(Record::Skipped(Skip::Bookmark)), rv));
            }
            Err(_) => return None,
        };
        let (result, rv) = Object::from_json_str_with_resource_version(object);
        let record = self.record(result, action, observed_at, line).ok()?;
        Some((Ok(record), numeric(rv)))
    }

    /// The reference path of [`Self::expand`]: the whole value through `serde_json::Value`.
    fn expand_via_value(&mut self, raw: RawValue) {
        let value: Value = match serde_json::from_slice(&raw.bytes) {
            Ok(v) => v,
            Err(e) => {
                // serde_json counts lines from the value's own first line.
                let line = raw.line + (e.line() as u64).saturating_sub(1);
                let e = self.err(line, format!("invalid JSON: {e}"));
                self.pending.push_back((Err(e), None));
                return;
            }
        };
        let Value::Object(mut map) = value else {
            let e = self.err(
                raw.line,
                "expected a JSON object (watch event, List or Kubernetes object)",
            );
            self.pending.push_back((Err(e), None));
            return;
        };
        if let Some(kind) = map.get("type") {
            let Some(kind) = kind.as_str() else {
                let e = self.err(raw.line, "watch event \"type\" is not a string");
                self.pending.push_back((Err(e), None));
                return;
            };
            let action = Action::from_watch_type(kind);
            let observed_at = match map.get("observedAt") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => match s.parse::<Timestamp>() {
                    Ok(t) => Some(t),
                    Err(e) => {
                        let e = self.err(raw.line, format!("invalid observedAt {s:?}: {e}"));
                        self.pending.push_back((Err(e), None));
                        return;
                    }
                },
                Some(_) => {
                    let e = self.err(raw.line, "observedAt is not a string");
                    self.pending.push_back((Err(e), None));
                    return;
                }
            };
            let Some(object) = map.remove("object") else {
                let r = match action {
                    Err(ObserveError::Bookmark) => Ok(Record::Skipped(Skip::Bookmark)),
                    _ => Err(self.err(raw.line, "watch event has no \"object\"")),
                };
                self.pending.push_back((r, None));
                return;
            };
            let rec = self.object(action, object, observed_at, raw.line);
            self.pending.push_back(rec);
            return;
        }
        let is_list = map
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k == "List" || k.ends_with("List"))
            && map.get("items").is_some_and(Value::is_array);
        if is_list {
            if let Some(Value::Array(items)) = map.remove("items") {
                for item in items {
                    let rec = self.object(Ok(Action::Added), item, None, raw.line);
                    self.pending.push_back(rec);
                }
            }
            return;
        }
        if map.contains_key("apiVersion") && map.contains_key("kind") {
            let rec = self.object(Ok(Action::Added), Value::Object(map), None, raw.line);
            self.pending.push_back(rec);
            return;
        }
        let e = self.err(
            raw.line,
            "not a watch event, List or Kubernetes object (no \"type\" or \"kind\")",
        );
        self.pending.push_back((Err(e), None));
    }

    /// The next record with its numeric resourceVersion (if any).
    pub fn next_record(&mut self) -> Option<(Result<Record, InputError>, Option<u64>)> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Some(r);
            }
            match self.splitter.next_value()? {
                Ok(raw) => self.expand(raw),
                Err((line, reason)) => return Some((Err(self.err(line, reason)), None)),
            }
        }
    }
}

/// The recordings in a directory: files named `*.json`, `*.jsonl`, `*.ndjson` or those
/// with `.gz` appended, not hidden, in name order (so equal resourceVersions merge the same
/// way every time). A directory without any is an error.
pub fn recordings_in(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let name = name.strip_suffix(".gz").unwrap_or(name);
            !name.starts_with('.')
                && [".json", ".jsonl", ".ndjson"]
                    .iter()
                    .any(|x| name.ends_with(x))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{}: no recordings (*.json, *.jsonl, *.ndjson, optionally .gz) in this directory",
                dir.display()
            ),
        ));
    }
    Ok(files)
}

struct Head {
    record: Result<Record, InputError>,
    key: u64,
}

/// The merged stream over several files (see the module docs for the order).
pub struct Inputs {
    files: Vec<FileReader>,
    heads: Vec<Option<Head>>,
    last_key: Vec<u64>,
    bytes_read: Arc<AtomicU64>,
    total_bytes: Option<u64>,
}

impl Inputs {
    /// Opens every source. Fails if one cannot be opened (a missing file is an error of the
    /// whole invocation, not of one value).
    pub fn open(sources: &[Source]) -> io::Result<Inputs> {
        Self::open_with(sources, false)
    }

    /// [`Inputs::open`], decoding every value through `serde_json::Value` first: the
    /// reference the direct decoding is checked against (tests) and measured against
    /// (benchmarks). Same records, slower.
    #[doc(hidden)]
    pub fn open_via_value(sources: &[Source]) -> io::Result<Inputs> {
        Self::open_with(sources, true)
    }

    fn open_with(sources: &[Source], via_value: bool) -> io::Result<Inputs> {
        let bytes_read = Arc::new(AtomicU64::new(0));
        let mut files = Vec::new();
        let mut total = Some(0u64);
        for s in sources {
            let (f, size) = FileReader::open(s, bytes_read.clone()).map_err(|e| {
                let name = match s {
                    Source::Path(p) => p.clone(),
                    Source::Bytes { name, .. } => name.clone(),
                };
                io::Error::new(e.kind(), format!("{name}: {e}"))
            })?;
            total = total.zip(size).map(|(a, b)| a + b);
            let mut f = f;
            f.via_value = via_value;
            files.push(f);
        }
        let n = files.len();
        let mut inputs = Inputs {
            files,
            heads: (0..n).map(|_| None).collect(),
            last_key: vec![0; n],
            bytes_read,
            total_bytes: total,
        };
        for i in 0..n {
            inputs.refill(i);
        }
        Ok(inputs)
    }

    /// Opens files by path (`-` for stdin). A directory stands for the recordings in it
    /// (see [`recordings_in`]).
    pub fn open_paths<P: AsRef<Path>>(paths: &[P]) -> io::Result<Inputs> {
        let mut sources = Vec::new();
        for p in paths {
            let p = p.as_ref();
            if p.is_dir() {
                sources.extend(
                    recordings_in(p)?
                        .into_iter()
                        .map(|f| Source::Path(f.to_string_lossy().into_owned())),
                );
            } else {
                sources.push(Source::Path(p.to_string_lossy().into_owned()));
            }
        }
        Self::open(&sources)
    }

    fn refill(&mut self, i: usize) {
        self.heads[i] = self.files[i].next_record().map(|(record, rv)| {
            let key = rv.unwrap_or(self.last_key[i]);
            self.last_key[i] = key;
            Head { record, key }
        });
    }

    /// Raw bytes read so far (compressed bytes for gzip input).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Total raw size of all inputs, when every input is a regular file or in memory.
    pub fn total_bytes(&self) -> Option<u64> {
        self.total_bytes
    }

    /// Whether a progress bar makes sense: stderr is a terminal and the input is large.
    pub fn wants_progress(&self) -> bool {
        io::stderr().is_terminal() && self.total_bytes.is_some_and(|t| t > 16 << 20)
    }
}

impl Iterator for Inputs {
    type Item = Result<Record, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Errors do not wait for their turn: report them as soon as they are read.
        let mut best: Option<(u64, usize)> = None;
        for (i, h) in self.heads.iter().enumerate() {
            let Some(h) = h else { continue };
            if h.record.is_err() {
                best = Some((0, i));
                break;
            }
            if best.is_none_or(|(k, _)| h.key < k) {
                best = Some((h.key, i));
            }
        }
        let (_, i) = best?;
        let head = self.heads[i].take()?;
        self.refill(i);
        Some(head.record)
    }
}
