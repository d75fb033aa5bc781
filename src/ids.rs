//! Deterministic trace and span IDs derived from the pod UID and the span's place in the tree.
//!
//! Determinism is what makes podtrace restart-safe and replay reproducible: the same pod
//! always yields the same trace ID, and each span keeps its ID however often it is rebuilt.
//! The prefix is versioned so a change to the derivation can never collide with old IDs.

use sha2::{Digest, Sha256};

use crate::trace::{RemoteParent, SpanId, TraceId};

/// Version prefix mixed into every hash; bump it if the derivation or the span paths change.
pub const ID_PREFIX: &str = "podtrace/ids/v1";

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(ID_PREFIX.as_bytes());
    for p in parts {
        // The separator keeps ("ab","c") and ("a","bc") apart.
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// The trace ID of a pod's startup trace: the first 16 bytes of SHA-256 over the prefix and
/// the pod UID. Never all-zero (invalid in W3C/OTLP).
pub fn trace_id(pod_uid: &str) -> TraceId {
    let d = digest(&["trace", pod_uid]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    if id == [0u8; 16] {
        id[15] = 1;
    }
    TraceId(id)
}

/// The span ID for the span at `path` (e.g. `pod.startup/container.startup:app`) in a pod's
/// trace: the first 8 bytes of SHA-256 over the prefix, the UID and the path. Never all-zero.
pub fn span_id(pod_uid: &str, path: &str) -> SpanId {
    let d = digest(&["span", pod_uid, path]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    if id == [0u8; 8] {
        id[7] = 1;
    }
    SpanId(id)
}

/// Parses a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), strictly: version 00 only,
/// lowercase hex, exact lengths, no all-zero IDs. Anything else yields None and is ignored.
pub fn parse_traceparent(s: &str) -> Option<RemoteParent> {
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
    Some(RemoteParent {
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

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(trace_id("u1"), trace_id("u1"));
        assert_ne!(trace_id("u1"), trace_id("u2"));
        assert_eq!(span_id("u1", "pod.startup"), span_id("u1", "pod.startup"));
        assert_ne!(
            span_id("u1", "pod.startup"),
            span_id("u1", "pod.startup/pod.schedule")
        );
        assert_ne!(span_id("u1", "a"), span_id("u2", "a"));
        // Separator: concatenation ambiguity must not collide.
        assert_ne!(span_id("ab", "c"), span_id("a", "bc"));
    }

    #[test]
    fn ids_match_sha256_definition() {
        let mut h = Sha256::new();
        h.update(b"podtrace/ids/v1\0trace\0abc");
        let d: [u8; 32] = h.finalize().into();
        assert_eq!(&trace_id("abc").0[..], &d[..16]);
        assert_ne!(trace_id("abc").0, [0; 16]);
    }

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
