//! Deterministic trace and span IDs derived from the operation, its subject and the span's
//! place in the tree.
//!
//! Determinism is what makes podtrace restart-safe and replay reproducible: the same pod
//! always yields the same startup trace ID, and each span keeps its ID however often it is
//! rebuilt. The operation is part of every hash, so a pod's startup and termination traces
//! never collide. The prefix is versioned so a change to the derivation can never collide
//! with old IDs. docs/trace-model.md gives the derivation with a test vector (checked below),
//! so an application that knows its pod UID can put its own spans into its startup trace.

use sha2::{Digest, Sha256};

use crate::session::Operation;
use crate::trace::{SpanId, TraceContext, TraceId};

/// Version prefix mixed into every hash; bump it if the derivation or the span paths change.
/// v1 hashed the pod UID alone; v2 adds the operation and allows several key parts.
pub const ID_PREFIX: &str = "podtrace/ids/v2";

fn digest(kind: &str, operation: Operation, key: &[&str], path: Option<&str>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(ID_PREFIX.as_bytes());
    // The separator keeps ("ab","c") and ("a","bc") apart.
    for p in [kind, operation.as_str()]
        .into_iter()
        .chain(key.iter().copied())
        .chain(path)
    {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// The trace ID of one operation on one subject: the first 16 bytes of
/// SHA-256(`prefix \0 "trace" \0 operation \0 key…`), where the key is the pod UID for pod
/// operations and (workload UID, revision) for rollouts. Never all-zero (invalid in W3C/OTLP).
pub fn trace_id(operation: Operation, key: &[&str]) -> TraceId {
    let d = digest("trace", operation, key, None);
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    if id == [0u8; 16] {
        id[15] = 1;
    }
    TraceId(id)
}

/// The span ID of the span at `path` (e.g. `pod.startup/container.startup:app`) in that
/// trace: the first 8 bytes of SHA-256(`prefix \0 "span" \0 operation \0 key… \0 path`).
/// Never all-zero.
pub fn span_id(operation: Operation, key: &[&str], path: &str) -> SpanId {
    let d = digest("span", operation, key, Some(path));
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    if id == [0u8; 8] {
        id[7] = 1;
    }
    SpanId(id)
}

/// Parses a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), strictly: version 00 only,
/// lowercase hex, exact lengths, no all-zero IDs. Anything else yields None and is ignored.
pub fn parse_traceparent(s: &str) -> Option<TraceContext> {
    let s = s.trim();
    let mut parts = s.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version != "00" {
        return None;
    }
    let trace_id: [u8; 16] = decode_hex(trace)?;
    let span_id: [u8; 8] = decode_hex(span)?;
    let [flags]: [u8; 1] = decode_hex(flags)?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(TraceContext {
        trace_id: TraceId(trace_id),
        span_id: SpanId(span_id),
        sampled: flags & 1 == 1,
    })
}

fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() != N * 2 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let (hi, lo) = (nibble(*pair.first()?)?, nibble(*pair.get(1)?)?);
        *out.get_mut(i)? = hi << 4 | lo;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Operation = Operation::PodStartup;
    const END: Operation = Operation::PodTermination;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(trace_id(START, &["u1"]), trace_id(START, &["u1"]));
        assert_ne!(trace_id(START, &["u1"]), trace_id(START, &["u2"]));
        assert_ne!(trace_id(START, &["u1"]), trace_id(END, &["u1"]));
        let root = span_id(START, &["u1"], "pod.startup");
        assert_eq!(root, span_id(START, &["u1"], "pod.startup"));
        assert_ne!(root, span_id(START, &["u1"], "pod.startup/pod.schedule"));
        assert_ne!(root, span_id(END, &["u1"], "pod.startup"));
        assert_ne!(span_id(START, &["u1"], "a"), span_id(START, &["u2"], "a"));
        // Separator: concatenation ambiguity must not collide.
        assert_ne!(span_id(START, &["ab"], "c"), span_id(START, &["a"], "bc"));
        assert_ne!(
            trace_id(Operation::Rollout, &["ab", "1"]),
            trace_id(Operation::Rollout, &["a", "b1"])
        );
    }

    #[test]
    fn ids_match_sha256_definition() {
        let mut h = Sha256::new();
        h.update(b"podtrace/ids/v2\0trace\0PodStartup\0abc");
        let d: [u8; 32] = h.finalize().into();
        assert_eq!(&trace_id(START, &["abc"]).0[..], &d[..16]);
        let mut h = Sha256::new();
        h.update(b"podtrace/ids/v2\0span\0PodStartup\0abc\0pod.startup");
        let d: [u8; 32] = h.finalize().into();
        assert_eq!(&span_id(START, &["abc"], "pod.startup").0[..], &d[..8]);
    }

    /// The test vector docs/trace-model.md publishes; changing it breaks applications that
    /// derive the IDs themselves.
    #[test]
    fn documented_test_vector() {
        let uid = "6f1c2a3e-0b8d-4c5e-9f7a-1d2e3f4a5b6c";
        assert_eq!(
            trace_id(START, &[uid]).to_string(),
            DOC_TRACE_ID,
            "update docs/trace-model.md"
        );
        assert_eq!(
            span_id(START, &[uid], "pod.startup").to_string(),
            DOC_ROOT_SPAN_ID
        );
        let doc = include_str!("../docs/trace-model.md");
        assert!(doc.contains(DOC_TRACE_ID) && doc.contains(DOC_ROOT_SPAN_ID) && doc.contains(uid));
    }

    const DOC_TRACE_ID: &str = "d390a7ae089ee11a3b58995d7f578414";
    const DOC_ROOT_SPAN_ID: &str = "2a3eb01d72720d8c";

    #[test]
    fn traceparent_valid() {
        let p =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(p.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.span_id.to_string(), "00f067aa0ba902b7");
        assert!(p.sampled);
        let p =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!p.sampled);
    }

    #[test]
    fn traceparent_invalid() {
        for bad in [
            "",
            "00",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4é6-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }
}
