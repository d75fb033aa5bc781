//! Latency percentiles over finished traces, with bounded memory.
//!
//! Used by `podtrace replay --format summary` and by the controller for a TraceSession's
//! `status.latency`. Pure: no I/O.
//!
//! # Accuracy and memory
//! Each distribution keeps its samples exactly up to [`EXACT_SAMPLES`]; percentiles are then
//! exact, by the nearest-rank method (the value at rank ⌈p/100 · n⌉ of the sorted samples).
//! Beyond that it folds them into a sparse logarithmic histogram whose buckets are
//! [`BUCKET_GROWTH`] wide (relative), and reports a bucket's geometric midpoint, so a
//! percentile is then within ±0.5 % of the exact nearest-rank value. The maximum stays exact.
//! Memory per distribution is therefore bounded by `EXACT_SAMPLES` · 8 bytes, or by the number
//! of occupied buckets (at most a few thousand for durations from 1 µs to days), whichever
//! applies — never by the number of pods seen.

use std::collections::BTreeMap;

use jiff::SignedDuration;

use crate::session::{LatencyStatus, Percentiles};
use crate::trace::{Outcome, Trace};

/// Samples kept exactly per distribution before switching to the histogram.
pub const EXACT_SAMPLES: usize = 4096;

/// Relative width of a histogram bucket (1 %: percentiles within ±0.5 %).
pub const BUCKET_GROWTH: f64 = 1.01;

/// A distribution of non-negative durations (nanoseconds).
#[derive(Clone, Debug, Default)]
pub struct Distribution {
    count: u64,
    max: i64,
    /// Exact samples while `count <= EXACT_SAMPLES`; emptied when folded into `buckets`.
    exact: Vec<i64>,
    /// Log buckets (index → samples) once the exact buffer overflowed.
    buckets: BTreeMap<i32, u64>,
    /// Samples of exactly zero in histogram mode (log buckets cannot hold them).
    zeros: u64,
}

fn bucket_of(nanos: i64) -> i32 {
    // nanos >= 1 here; the log of a positive i64 fits comfortably in i32.
    ((nanos as f64).ln() / BUCKET_GROWTH.ln()).floor() as i32
}

fn bucket_mid(index: i32) -> i64 {
    let lo = BUCKET_GROWTH.powi(index);
    (lo * BUCKET_GROWTH.sqrt()).round() as i64
}

impl Distribution {
    /// Adds one sample; negative durations (clock skew between components) count as zero.
    pub fn record(&mut self, d: SignedDuration) {
        let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX).max(0);
        self.count += 1;
        self.max = self.max.max(nanos);
        if self.buckets.is_empty() && self.zeros == 0 && self.exact.len() < EXACT_SAMPLES {
            self.exact.push(nanos);
            return;
        }
        if !self.exact.is_empty() {
            for v in std::mem::take(&mut self.exact) {
                self.add_bucket(v);
            }
        }
        self.add_bucket(nanos);
    }

    fn add_bucket(&mut self, nanos: i64) {
        if nanos == 0 {
            self.zeros += 1;
        } else {
            *self.buckets.entry(bucket_of(nanos)).or_default() += 1;
        }
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest sample (exact), None when empty.
    pub fn max(&self) -> Option<SignedDuration> {
        (self.count > 0).then(|| SignedDuration::from_nanos(self.max))
    }

    /// Whether percentiles are exact (the histogram has not been used yet).
    pub fn is_exact(&self) -> bool {
        self.buckets.is_empty() && self.zeros == 0
    }

    /// The nearest-rank percentile `p` (0 < p ≤ 100); None when empty.
    pub fn percentile(&self, p: f64) -> Option<SignedDuration> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * self.count as f64)
            .ceil()
            .max(1.0) as u64;
        if self.is_exact() {
            let mut sorted = self.exact.clone();
            sorted.sort_unstable();
            let i = usize::try_from(rank - 1)
                .unwrap_or(usize::MAX)
                .min(sorted.len() - 1);
            return sorted.get(i).map(|n| SignedDuration::from_nanos(*n));
        }
        if rank >= self.count {
            return self.max();
        }
        let mut seen = self.zeros;
        if seen >= rank {
            return Some(SignedDuration::ZERO);
        }
        for (index, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(SignedDuration::from_nanos(bucket_mid(*index).min(self.max)));
            }
        }
        self.max()
    }

    /// p50/p90/p99/max as Go durations (see [`go_duration`] for the rounding).
    pub fn to_percentiles(&self) -> Percentiles {
        let f = |d: Option<SignedDuration>| d.map(go_duration).unwrap_or_else(|| "0s".into());
        Percentiles {
            count: i64::try_from(self.count).unwrap_or(i64::MAX),
            p50: f(self.percentile(50.0)),
            p90: f(self.percentile(90.0)),
            p99: f(self.percentile(99.0)),
            max: f(self.max()),
        }
    }
}

/// Latency distributions of a set of traces: the overall startup and each phase.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    overall: Distribution,
    phases: BTreeMap<&'static str, Distribution>,
    outcomes: BTreeMap<&'static str, u64>,
}

/// A short, stable label for an outcome (`ready`, `failed`, `deleted`, `timed_out`, …).
pub fn outcome_label(outcome: &Outcome) -> &'static str {
    outcome.label
}

impl Latencies {
    /// Adds a finished trace. The overall distribution takes the root span's duration of
    /// traces that succeeded (a pod Ready, …) and were seen from the start (a partial trace's root starts
    /// at creation but its early phases are guesses); every phase the engine measured is
    /// recorded whatever the outcome, since a phase that ended is a valid sample.
    pub fn record(&mut self, trace: &Trace) {
        *self
            .outcomes
            .entry(outcome_label(&trace.outcome))
            .or_default() += 1;
        if trace.outcome.success
            && !trace.partial
            && let Some(root) = trace.spans.first()
        {
            self.overall.record(root.duration());
        }
        for (name, d) in &trace.phases {
            self.phases.entry(name).or_default().record(*d);
        }
    }

    /// Creation-to-Ready distribution.
    pub fn overall(&self) -> &Distribution {
        &self.overall
    }

    /// Per-phase distributions, by phase name.
    pub fn phases(&self) -> &BTreeMap<&'static str, Distribution> {
        &self.phases
    }

    /// Traces recorded, per outcome label (see [`outcome_label`]).
    pub fn outcomes(&self) -> &BTreeMap<&'static str, u64> {
        &self.outcomes
    }

    /// Traces recorded.
    pub fn traces(&self) -> u64 {
        self.outcomes.values().sum()
    }

    /// The TraceSession `status.latency` form.
    pub fn to_status(&self) -> LatencyStatus {
        LatencyStatus {
            overall: self.overall.to_percentiles(),
            phases: self
                .phases
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.to_percentiles()))
                .collect(),
        }
    }
}

/// Formats a duration like Go's `time.Duration.String`, rounded to the millisecond above one
/// second and to the microsecond above one millisecond (`1.25s`, `850ms`, `2m3.5s`, `1h0m0s`, `0s`), so status values stay readable
/// and parse with Go's `time.ParseDuration` and CEL's `duration()`.
pub fn go_duration(d: SignedDuration) -> String {
    let nanos = d.as_nanos();
    let neg = nanos < 0;
    let mut n = nanos.unsigned_abs();
    if n >= 1_000_000_000 {
        n = (n + 500_000) / 1_000_000 * 1_000_000;
    } else if n >= 1_000_000 {
        n = (n + 500) / 1_000 * 1_000;
    }
    let sign = if neg { "-" } else { "" };
    if n == 0 {
        return "0s".into();
    }
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", frac(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", frac(n, 1_000_000));
    }
    let total_secs = n / 1_000_000_000;
    let sub = n % 1_000_000_000;
    let (h, m, s) = (total_secs / 3600, (total_secs / 60) % 60, total_secs % 60);
    let secs = frac(s * 1_000_000_000 + sub, 1_000_000_000);
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{sign}{m}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

/// `n / unit` as a decimal without trailing zeros.
fn frac(n: u128, unit: u128) -> String {
    let whole = n / unit;
    let rest = n % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = unit.ilog10() as usize;
    let s = format!("{rest:0digits$}");
    format!("{whole}.{}", s.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i64) -> SignedDuration {
        SignedDuration::from_millis(n)
    }

    #[test]
    fn go_duration_formats() {
        assert_eq!(go_duration(SignedDuration::ZERO), "0s");
        assert_eq!(go_duration(ms(850)), "850ms");
        assert_eq!(go_duration(ms(1250)), "1.25s");
        assert_eq!(go_duration(ms(123_500)), "2m3.5s");
        assert_eq!(go_duration(SignedDuration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(SignedDuration::from_micros(1500)), "1.5ms");
        assert_eq!(
            go_duration(SignedDuration::from_nanos(1_234_567_891)),
            "1.235s"
        );
        assert_eq!(go_duration(SignedDuration::from_micros(250)), "250µs");
        assert_eq!(go_duration(ms(-1500)), "-1.5s");
    }

    #[test]
    fn nearest_rank_exact() {
        let mut d = Distribution::default();
        for v in [5, 1, 4, 2, 3, 10, 9, 8, 7, 6] {
            d.record(ms(v));
        }
        assert!(d.is_exact());
        assert_eq!(d.percentile(50.0), Some(ms(5)));
        assert_eq!(d.percentile(90.0), Some(ms(9)));
        assert_eq!(d.percentile(99.0), Some(ms(10)));
        assert_eq!(d.percentile(1.0), Some(ms(1)));
        assert_eq!(d.max(), Some(ms(10)));
        let p = d.to_percentiles();
        assert_eq!(
            (p.count, p.p50.as_str(), p.max.as_str()),
            (10, "5ms", "10ms")
        );
    }

    #[test]
    fn empty_and_negative() {
        let mut d = Distribution::default();
        assert_eq!(d.percentile(50.0), None);
        assert_eq!(d.to_percentiles().p50, "0s");
        d.record(ms(-3));
        assert_eq!(d.percentile(50.0), Some(SignedDuration::ZERO));
    }

    #[test]
    fn histogram_mode_is_bounded_and_accurate() {
        let mut d = Distribution::default();
        let n = 100_000i64;
        // A permutation of 1..=n ms so insertion order is not sorted.
        for i in 0..n {
            d.record(ms((i * 7919) % n + 1));
        }
        assert!(!d.is_exact());
        assert_eq!(d.count(), n as u64);
        assert!(d.buckets.len() < 2000, "{} buckets", d.buckets.len());
        for (p, exact) in [(50.0, 50_000.0), (90.0, 90_000.0), (99.0, 99_000.0)] {
            let got = d.percentile(p).unwrap().as_secs_f64() * 1000.0;
            assert!(
                (got - exact).abs() / exact <= 0.006,
                "p{p}: {got} vs {exact}"
            );
        }
        assert_eq!(d.max(), Some(ms(n)));
        assert_eq!(d.percentile(100.0), Some(ms(n)));
    }

    #[test]
    fn latencies_record_traces() {
        use crate::trace::*;
        use jiff::Timestamp;
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mk = |outcome: Outcome, total_ms: i64, partial: bool| Trace {
            trace_id: TraceId([1; 16]),
            operation: Operation::PodStartup,
            subject: Subject {
                kind: "Pod",
                namespace: "ns".into(),
                name: "p".into(),
                uid: "u".into(),
                revision: None,
            },
            outcome,
            partial,
            spans: vec![Span {
                span_id: SpanId([1; 8]),
                parent: None,
                name: "pod.startup",
                service: Service::Podtrace,
                start: t0,
                end: t0 + ms(total_ms),
                status: Status::Unset,
                attributes: vec![],
                events: vec![],
                links: vec![],
            }],
            phases: vec![("schedule", ms(total_ms / 10))],
        };
        let mut l = Latencies::default();
        use crate::timeline::pod_startup::{READY, failed};
        l.record(&mk(READY, 1000, false));
        l.record(&mk(READY, 3000, false));
        l.record(&mk(READY, 9000, true));
        l.record(&mk(failed("ErrImagePull"), 5000, false));
        assert_eq!(l.overall().count(), 2);
        assert_eq!(l.traces(), 4);
        assert_eq!(l.outcomes().get("failed"), Some(&1));
        let s = l.to_status();
        assert_eq!(s.overall.max, "3s");
        assert_eq!(s.overall.p50, "1s");
        assert_eq!(s.phases.get("schedule").map(|p| p.count), Some(4));
        assert_eq!(
            s.phases.get("schedule").map(|p| p.max.as_str()),
            Some("900ms")
        );
    }
}
