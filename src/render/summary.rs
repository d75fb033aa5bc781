//! The latency summary: per-phase percentiles of a set of traces, podtrace's phases beside
//! ClusterLoader2's PodStartupLatency phases, and outcome counts.

use std::fmt::Write as _;

use jiff::SignedDuration;

use super::waterfall::human_duration;
use crate::latency::{Distribution, Latencies};

/// ClusterLoader2 PodStartupLatency phase names, in its order. The engine computes them
/// with CL2's definitions, so numbers are comparable with CL2 runs.
pub const CL2_PHASES: &[&str] = &[
    "create_to_schedule",
    "schedule_to_run",
    "run_to_watch",
    "schedule_to_watch",
    "pod_startup",
];

fn row(out: &mut String, name: &str, d: &Distribution) {
    let f = |p: Option<SignedDuration>| p.map(human_duration).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "  {name:<28} {:>7} {:>9} {:>9} {:>9} {:>9}",
        d.count(),
        f(d.percentile(50.0)),
        f(d.percentile(90.0)),
        f(d.percentile(99.0)),
        f(d.max()),
    );
}

fn header(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        "{title:<30} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "count", "p50", "p90", "p99", "max"
    );
}

/// Renders the summary table.
pub fn render(l: &Latencies) -> String {
    let mut out = String::new();
    let outcomes: Vec<String> = l
        .outcomes()
        .iter()
        .map(|(k, v)| format!("{} {v}", crate::trace::title_case(k)))
        .collect();
    let _ = writeln!(
        out,
        "traces: {}  ({})",
        l.traces(),
        if outcomes.is_empty() {
            "none".into()
        } else {
            outcomes.join(", ")
        }
    );
    out.push('\n');
    header(&mut out, "podtrace phases");
    row(&mut out, "startup (created → Ready)", l.overall());
    for (name, d) in l.phases().iter().filter(|(n, _)| !CL2_PHASES.contains(n)) {
        row(&mut out, name, d);
    }
    out.push('\n');
    header(&mut out, "ClusterLoader2 PodStartupLatency");
    let empty = Distribution::default();
    for name in CL2_PHASES {
        row(&mut out, name, l.phases().get(name).unwrap_or(&empty));
    }
    let approx = std::iter::once(l.overall())
        .chain(l.phases().values())
        .any(|d| !d.is_exact());
    if approx {
        out.push_str(
            "\n(percentiles over more than 4096 samples are approximate, within ±0.5 %)\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::*;
    use jiff::Timestamp;

    #[test]
    fn table_lists_both_phase_families_and_outcomes() {
        let t0: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let ms = SignedDuration::from_millis;
        let mut l = Latencies::default();
        for i in 1..=10 {
            l.record(&Trace {
                trace_id: TraceId([i as u8; 16]),
                operation: Operation::PodStartup,
                subject: Subject {
                    kind: "Pod",
                    namespace: "d".into(),
                    name: format!("p{i}"),
                    uid: format!("u{i}"),
                    revision: None,
                },
                outcome: if i == 10 {
                    crate::timeline::pod_startup::DELETED
                } else {
                    crate::timeline::pod_startup::READY
                },
                partial: false,
                spans: vec![Span {
                    span_id: SpanId([1; 8]),
                    parent: None,
                    name: "pod.startup",
                    service: Service::Podtrace,
                    start: t0,
                    end: t0 + ms(i * 100),
                    status: Status::Unset,
                    attributes: vec![],
                    events: vec![],
                    links: vec![],
                }],
                phases: vec![("schedule", ms(i * 10)), ("pod_startup", ms(i * 100))],
            });
        }
        let out = render(&l);
        assert!(
            out.starts_with("traces: 10  (Deleted 1, Ready 9)\n"),
            "{out}"
        );
        let line = |prefix: &str| {
            out.lines()
                .find(|x| x.trim_start().starts_with(prefix))
                .unwrap()
        };
        let startup: Vec<_> = line("startup (created")
            .split_whitespace()
            .rev()
            .take(5)
            .collect();
        // count 9, p50 = 5th of 100..900 ms, p90 = 9th, p99 = 9th, max 900ms (reversed).
        assert_eq!(startup, ["900ms", "900ms", "900ms", "500ms", "9"]);
        let sched: Vec<_> = line("schedule ").split_whitespace().collect();
        assert_eq!(sched, ["schedule", "10", "50ms", "90ms", "100ms", "100ms"]);
        let cl2: Vec<_> = line("pod_startup").split_whitespace().collect();
        assert_eq!(
            cl2,
            ["pod_startup", "10", "500ms", "900ms", "1.000s", "1.000s"]
        );
        let missing: Vec<_> = line("run_to_watch").split_whitespace().collect();
        assert_eq!(missing, ["run_to_watch", "0", "-", "-", "-", "-"]);
        // CL2 phases are listed only in their own section.
        assert_eq!(out.matches("pod_startup").count(), 1);
    }
}
