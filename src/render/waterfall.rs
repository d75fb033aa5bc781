//! The waterfall: one trace as an indented span tree with durations and time bars.
//!
//! ```text
//! default/web-7d9f8-abcde  Ready  4.200s  trace 4bf92f3577b34da6a3ce929d0e0e4736
//!   pod.startup                               4.200s │██████████████████████████████│
//!     pod.schedule                              35ms │▏                             │
//!     container.image_pull app [node-a]       1.234s │  █████████                   │
//! ```
//! Bars are scaled to the root span; the header carries the pod, outcome, total, trace ID and
//! a `partial` marker when the pod was first seen mid-startup.

use std::collections::HashMap;
use std::fmt::Write as _;

use jiff::SignedDuration;

use crate::trace::{Outcome, Service, Span, SpanId, Status, Trace, Value};

/// Rendering options.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Emit ANSI colours.
    pub color: bool,
    /// Width of the bar column in characters.
    pub bar_width: usize,
    /// Span events shown per span at most.
    pub max_events: usize,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            color: false,
            bar_width: 40,
            max_events: 3,
        }
    }
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset (<https://no-color.org>).
    pub fn for_stdout() -> Self {
        use std::io::IsTerminal;
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Style {
            color,
            ..Style::default()
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// A duration for humans: `1.234s`, `850ms`, `0.4ms`, `2m03.5s`.
pub fn human_duration(d: SignedDuration) -> String {
    let neg = d.is_negative();
    // `unsigned_abs`, not `abs`: the latter panics on `SignedDuration::MIN`.
    let d = d.unsigned_abs();
    let ms = d.as_secs_f64() * 1000.0;
    let s = if ms >= 60_000.0 {
        // Split whole tenths of a second, not float seconds: `{:04.1}` of 59.96 s would
        // print `60.0` and give `1m60.0s`.
        let tenths = d.as_millis().saturating_add(50) / 100;
        let (m, rest) = (tenths / 600, tenths % 600);
        format!("{m}m{:02}.{}s", rest / 10, rest % 10)
    } else if ms >= 999.5 {
        format!("{:.3}s", ms / 1000.0)
    } else if ms >= 1.0 || ms == 0.0 {
        format!("{}ms", ms.round() as u64)
    } else {
        format!("{ms:.1}ms")
    };
    if neg { format!("-{s}") } else { s }
}

/// Outcome as shown in headers.
pub fn outcome_text(o: &Outcome) -> String {
    match &o.reason {
        Some(reason) => format!("{} ({reason})", o.title()),
        None => o.title(),
    }
}

fn attr<'a>(span: &'a Span, keys: &[&str]) -> Option<&'a str> {
    span.attributes.iter().find_map(|(k, v)| match v {
        Value::Str(s) if keys.contains(k) => Some(s.as_str()),
        _ => None,
    })
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::StrList(l) => l.join(","),
    }
}

/// Spans in display order: depth-first from the root, children by start time then input
/// order. Spans whose parent is unknown hang off the root so nothing is hidden.
fn tree_order(trace: &Trace) -> Vec<(usize, usize)> {
    if trace.spans.is_empty() {
        return Vec::new();
    }
    let index: HashMap<SpanId, usize> = trace
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); trace.spans.len()];
    for (i, s) in trace.spans.iter().enumerate().skip(1) {
        let parent = s
            .parent
            .and_then(|p| index.get(&p).copied())
            .filter(|p| *p != i)
            .unwrap_or(0);
        children[parent].push(i);
    }
    for c in &mut children {
        c.sort_by_key(|i| (trace.spans[*i].start, *i));
    }
    let mut out = Vec::with_capacity(trace.spans.len());
    let mut seen = vec![false; trace.spans.len()];
    let mut stack = vec![(0usize, 0usize)];
    // Spans on a parent cycle that does not reach the root (bad input) are never pushed from
    // the root; they are started from the root's level afterwards, so nothing is hidden.
    let mut next_orphan = 1;
    loop {
        while let Some((i, depth)) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue; // a parent cycle in bad input: show each span once
            }
            out.push((i, depth));
            for c in children[i].iter().rev() {
                stack.push((*c, depth + 1));
            }
        }
        match (next_orphan..trace.spans.len()).find(|i| !seen[*i]) {
            Some(i) => {
                next_orphan = i + 1;
                stack.push((i, 1));
            }
            None => break,
        }
    }
    out
}

/// The label of a span: its name plus what identifies it (container, node).
fn label(trace: &Trace, span: &Span) -> String {
    let mut l = span.name.to_string();
    if let Some(c) = attr(span, &["k8s.container.name", "container.name"]) {
        let _ = write!(l, " {}", printable(c));
    }
    if let Service::Kubelet { node } = &span.service {
        let parent_service = span
            .parent
            .and_then(|p| trace.spans.iter().find(|s| s.span_id == p))
            .map(|p| &p.service);
        if parent_service != Some(&span.service) {
            let _ = write!(l, " [{}]", printable(node));
        }
    }
    l
}

fn bar(style: &Style, root: &Span, span: &Span) -> String {
    let w = style.bar_width.max(1);
    let total = root.duration().as_nanos().max(1) as f64;
    let offset = span.start.duration_since(root.start).as_nanos().max(0) as f64;
    let len = span.duration().as_nanos().max(0) as f64;
    let from = ((offset / total) * w as f64).floor().min(w as f64 - 1.0) as usize;
    // A child longer than the root (bad input, or a root whose end precedes its start) gives
    // a cell count far beyond the width; the float→usize cast saturates, so add saturating.
    let cells = ((len / total) * w as f64).round() as usize;
    let to = from.saturating_add(cells.max(1)).min(w);
    let mut s = String::with_capacity(w * 3);
    for i in 0..w {
        s.push(if i >= from && i < to {
            if cells == 0 { '▏' } else { '█' }
        } else {
            ' '
        });
    }
    s
}

/// At most `max` characters, with an ellipsis when cut, and control characters escaped.
fn shorten(s: &str, max: usize) -> String {
    let s = printable(s);
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `s` with control characters escaped (`\n`, `\u{1b}`). Names and messages come from watch
/// streams: a newline would break the layout, and an escape sequence in an Event message
/// must not reach the user's terminal.
fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Colour of a span by who did the work; errors are red whoever did it.
fn span_color(span: &Span) -> &'static str {
    if matches!(span.status, Status::Error(_)) {
        return "31";
    }
    match span.service {
        Service::Podtrace => "35",
        Service::Scheduler => "36",
        Service::Kubelet { .. } => "32",
        Service::ControllerManager { .. } => "34",
    }
}

/// Renders one trace.
pub fn render(trace: &Trace, style: &Style) -> String {
    let mut out = String::new();
    let root = trace.spans.first();
    let total = root.map(Span::duration).unwrap_or(SignedDuration::ZERO);
    let outcome = outcome_text(&trace.outcome);
    let outcome_code = if trace.outcome.success {
        "32"
    } else if trace.outcome.reason.is_some() {
        "31"
    } else {
        "33"
    };
    let _ = write!(
        out,
        "{}  {}  {}  trace {}",
        style.paint(
            "1",
            &printable(&format!(
                "{}/{}",
                trace.subject.namespace, trace.subject.name
            ))
        ),
        style.paint(outcome_code, &printable(&outcome)),
        human_duration(total),
        trace.trace_id
    );
    if trace.partial {
        let _ = write!(out, "  {}", style.paint("33", "partial (seen mid-startup)"));
    }
    for l in root.iter().flat_map(|r| r.links.iter()) {
        let _ = write!(out, "  linked {}", l.context.trace_id);
    }
    out.push('\n');
    let Some(root) = root else {
        out.push_str("  (no spans)\n");
        return out;
    };
    let rows: Vec<(usize, usize, String)> = tree_order(trace)
        .into_iter()
        .map(|(i, depth)| {
            (
                i,
                depth,
                format!(
                    "{}{}",
                    "  ".repeat(depth + 1),
                    label(trace, &trace.spans[i])
                ),
            )
        })
        .collect();
    let name_width = rows
        .iter()
        .map(|(_, _, l)| l.chars().count())
        .max()
        .unwrap_or(0);
    for (i, depth, l) in rows {
        let span = &trace.spans[i];
        let pad = name_width - l.chars().count();
        let _ = write!(
            out,
            "{}{}  {:>8} │{}│",
            style.paint(span_color(span), &l),
            " ".repeat(pad),
            human_duration(span.duration()),
            style.paint(span_color(span), &bar(style, root, span)),
        );
        if let Status::Error(msg) = &span.status {
            let _ = write!(
                out,
                " {}",
                style.paint("31", &format!("✗ {}", shorten(msg, 80)))
            );
        }
        out.push('\n');
        let indent = "  ".repeat(depth + 2);
        for e in span.events.iter().take(style.max_events) {
            let at = human_duration(e.time.duration_since(root.start));
            let detail = e
                .attributes
                .iter()
                .find(|(k, _)| *k == "message" || k.ends_with(".message"))
                .map(|(_, v)| value_text(v))
                .unwrap_or_default();
            let mut line = format!("{indent}· {} at +{at}", printable(&e.name));
            if !detail.is_empty() {
                let _ = write!(line, ": {}", shorten(&detail, 90));
            }
            let _ = writeln!(out, "{}", style.paint("2", &line));
        }
        if span.events.len() > style.max_events {
            let _ = writeln!(
                out,
                "{indent}· … {} more events",
                span.events.len() - style.max_events
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::*;
    use jiff::Timestamp;

    fn fixed() -> Trace {
        let t0: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let ms = SignedDuration::from_millis;
        let mk = |id: u8, parent: Option<u8>, name, service, s: i64, e: i64| Span {
            span_id: SpanId([id; 8]),
            parent: parent.map(|p| SpanId([p; 8])),
            name,
            service,
            start: t0 + ms(s),
            end: t0 + ms(e),
            status: Status::Unset,
            attributes: vec![],
            events: vec![],
            links: vec![],
        };
        let node = Service::Kubelet {
            node: "node-a".into(),
        };
        let mut c = mk(3, Some(1), "container.startup", node.clone(), 1000, 4000);
        c.attributes = vec![("container.name", Value::Str("app".into()))];
        let mut pull = mk(4, Some(3), "container.image_pull", node.clone(), 1000, 3000);
        pull.attributes = vec![("container.name", Value::Str("app".into()))];
        pull.status = Status::Error("ErrImagePull".into());
        pull.events = vec![SpanEvent {
            name: "Failed".into(),
            time: t0 + ms(2000),
            attributes: vec![("message", Value::Str("pull access denied".into()))],
        }];
        Trace {
            trace_id: TraceId([0xab; 16]),
            operation: Operation::PodStartup,
            subject: Subject {
                kind: "Pod",
                namespace: "default".into(),
                name: "web-1".into(),
                uid: "u".into(),
                revision: None,
            },
            outcome: crate::timeline::pod_startup::failed("ErrImagePull"),
            partial: true,
            // Deliberately out of tree order: the pull (child of 3) comes before the schedule.
            spans: vec![
                mk(1, None, "pod.startup", Service::Podtrace, 0, 4000),
                c,
                pull,
                mk(2, Some(1), "pod.schedule", Service::Scheduler, 0, 400),
            ],
            phases: vec![],
        }
    }

    #[test]
    fn layout_without_colour() {
        let style = Style {
            color: false,
            bar_width: 20,
            max_events: 3,
        };
        let out = render(&fixed(), &style);
        let expected = "\
default/web-1  Failed (ErrImagePull)  4.000s  trace abababababababababababababababab  partial (seen mid-startup)
  pod.startup                         4.000s │████████████████████│
    pod.schedule                       400ms │██                  │
    container.startup app [node-a]    3.000s │     ███████████████│
      container.image_pull app        2.000s │     ██████████     │ ✗ ErrImagePull
        · Failed at +2.000s: pull access denied
";
        assert_eq!(out, expected, "\n{out}");
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn colour_marks_errors_red() {
        let style = Style {
            color: true,
            bar_width: 10,
            max_events: 3,
        };
        let out = render(&fixed(), &style);
        assert!(out.contains("\x1b[31m✗ ErrImagePull"));
        assert!(out.contains("\x1b[36m    pod.schedule"));
    }

    #[test]
    fn long_messages_are_shortened() {
        let mut t = fixed();
        t.spans[2].status = Status::Error("x".repeat(200));
        let out = render(&t, &Style::default());
        let line = out.lines().find(|l| l.contains('✗')).unwrap();
        assert!(line.ends_with(&format!("✗ {}…", "x".repeat(79))), "{line}");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(SignedDuration::from_millis(1234)), "1.234s");
        assert_eq!(human_duration(SignedDuration::from_millis(850)), "850ms");
        assert_eq!(human_duration(SignedDuration::from_micros(400)), "0.4ms");
        assert_eq!(human_duration(SignedDuration::ZERO), "0ms");
        assert_eq!(
            human_duration(SignedDuration::from_millis(123_500)),
            "2m03.5s"
        );
    }

    #[test]
    fn zero_length_root_and_tiny_spans_do_not_panic() {
        let mut t = fixed();
        let start = t.spans[0].start;
        for s in &mut t.spans {
            s.start = start;
            s.end = start;
        }
        let out = render(&t, &Style::default());
        assert_eq!(out.lines().count(), 6);
        t.spans.clear();
        assert!(render(&t, &Style::default()).contains("(no spans)"));
    }
}
