//! Pure parsers for the free-text parts of kubelet events and for names podtrace infers.

use jiff::SignedDuration;

/// Why a Go duration string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    /// Empty string.
    #[error("empty duration")]
    Empty,
    /// Not of the form `<number><unit>…`.
    #[error("invalid duration {0:?}: expected e.g. 90s, 30m or 1h30m")]
    Syntax(String),
    /// Too large to represent.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses a Go `time.Duration` string (`812ms`, `2.304s`, `1m3.5s`, `1h2m`, `750µs`, `10ns`,
/// an optional leading sign), exactly: integer nanoseconds, no floating point, so `2.304s` is
/// 2304 ms and not 2303.999… The one parser for kubelet messages, specs and CLI flags.
pub fn go_duration(input: &str) -> Result<SignedDuration, DurationError> {
    let trimmed = input.trim();
    let (neg, s) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(SignedDuration::ZERO);
    }
    let syntax = || DurationError::Syntax(input.to_string());
    let overflow = || DurationError::Overflow(input.to_string());
    let mut rest = s;
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num.matches('.').count() > 1 || num == "." {
            return Err(syntax());
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_ns: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(syntax()),
        };
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        if int_part.len() > 12 {
            return Err(overflow());
        }
        // Digits past nanoseconds cannot change the result; Go ignores them too.
        let frac_part = frac_part.get(..18).unwrap_or(frac_part);
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| syntax())?
        };
        let mut value = int.checked_mul(unit_ns).ok_or_else(overflow)?;
        if !frac_part.is_empty() {
            let frac: i128 = frac_part.parse().map_err(|_| syntax())?;
            let scale = 10i128
                .checked_pow(u32::try_from(frac_part.len()).map_err(|_| syntax())?)
                .ok_or_else(overflow)?;
            let part = frac.checked_mul(unit_ns).ok_or_else(overflow)? / scale;
            value = value.checked_add(part).ok_or_else(overflow)?;
        }
        total = total.checked_add(value).ok_or_else(overflow)?;
        rest = tail;
    }
    if neg {
        total = -total;
    }
    let secs = i64::try_from(total / 1_000_000_000).map_err(|_| overflow())?;
    let nanos = i32::try_from(total % 1_000_000_000).map_err(|_| overflow())?;
    Ok(SignedDuration::new(secs, nanos))
}

/// What replaces redacted event text.
pub const REDACTED: &str = "[redacted]";

/// Redacts the parts of a kubelet event message that can carry a container's command line or
/// an exec probe's output, which podtrace must never export: the quoted executable after
/// `exec: ` in runtime errors, and a failed probe's output unless it is one of the kubelet's
/// own HTTP/TCP/gRPC probe messages (status codes and connection errors). Returns None when
/// nothing needed redacting.
pub fn redact_event_message(msg: &str) -> Option<String> {
    // Probe failures: "<Liveness|Readiness|Startup> probe failed|errored: <detail>".
    const PROBE_PREFIXES: [&str; 6] = [
        "Liveness probe failed: ",
        "Liveness probe errored: ",
        "Readiness probe failed: ",
        "Readiness probe errored: ",
        "Startup probe failed: ",
        "Startup probe errored: ",
    ];
    // Detail the kubelet writes itself for HTTP, TCP and gRPC probes: no container output.
    const KUBELET_OWN: [&str; 6] = [
        "HTTP probe failed",
        "Get \"",
        "Head \"",
        "dial tcp",
        "timeout: failed to connect service",
        "rpc error",
    ];
    for prefix in PROBE_PREFIXES {
        if let Some(detail) = msg.strip_prefix(prefix) {
            if KUBELET_OWN.iter().any(|p| detail.starts_with(p)) {
                return None;
            }
            return Some(format!("{prefix}{REDACTED}"));
        }
    }
    const EXEC: &str = "exec: \"";
    if !msg.contains(EXEC) {
        return None;
    }
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(EXEC) {
        let (head, tail) = rest.split_at(i + EXEC.len());
        out.push_str(head);
        match tail.find('"') {
            Some(end) => {
                out.push_str(REDACTED);
                rest = tail.get(end..).unwrap_or("");
            }
            None => {
                out.push_str(REDACTED);
                out.push('"');
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// [`go_duration`] for figures in kubelet messages: None for anything Go would reject, and for
/// negative or absurdly large values.
pub fn parse_go_duration(s: &str) -> Option<SignedDuration> {
    go_duration(s).ok().filter(|d| !d.is_negative())
}

/// What a kubelet `Pulled` message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PulledMessage {
    /// `Successfully pulled image "x" in 812ms (2.304s including waiting). Image size: N bytes.`
    /// Older kubelets omit the waiting figure and the size.
    Pulled {
        /// Image reference as quoted.
        image: String,
        /// The pure pull time.
        pull: Option<SignedDuration>,
        /// The pull time including waiting for the image-pull slot.
        including_waiting: Option<SignedDuration>,
        /// Image size in bytes.
        size_bytes: Option<i64>,
    },
    /// `Container image "x" already present on machine`.
    Cached {
        /// Image reference as quoted.
        image: String,
    },
}

fn quoted(s: &str) -> Option<(&str, &str)> {
    let start = s.find('"')?;
    let after = s.get(start + 1..)?;
    let end = after.find('"')?;
    Some((after.get(..end)?, after.get(end + 1..)?))
}

/// Parses a `Pulled` event message; None when it is neither known form.
pub fn parse_pulled_message(msg: &str) -> Option<PulledMessage> {
    let msg = msg.trim();
    if let Some(rest) = msg.strip_prefix("Container image ") {
        let (image, tail) = quoted(rest)?;
        if tail.contains("already present on machine") {
            return Some(PulledMessage::Cached {
                image: image.to_string(),
            });
        }
        return None;
    }
    let rest = msg.strip_prefix("Successfully pulled image ")?;
    let (image, tail) = quoted(rest)?;
    let mut pull = None;
    let mut including_waiting = None;
    if let Some(after_in) = tail.trim_start().strip_prefix("in ") {
        let token = after_in.split_whitespace().next().unwrap_or("");
        pull = parse_go_duration(token.trim_end_matches(['.', ',']));
        if let Some(open) = after_in.find('(') {
            let inner = after_in.get(open + 1..).unwrap_or("");
            if let Some(idx) = inner.find(" including waiting") {
                including_waiting = inner.get(..idx).and_then(parse_go_duration);
            }
        }
    }
    let size_bytes = tail.find("Image size: ").and_then(|i| {
        let digits: String = tail
            .get(i + "Image size: ".len()..)?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    Some(PulledMessage::Pulled {
        image: image.to_string(),
        pull,
        including_waiting,
        size_bytes,
    })
}

/// Splits an image reference into (name, tag): `reg:5000/a/b:1.2@sha256:…` → (`reg:5000/a/b`, Some(`1.2`)).
/// A digest is dropped from the name; no tag is invented when none is written.
pub fn split_image(image: &str) -> (String, Option<String>) {
    let without_digest = image.split_once('@').map_or(image, |(n, _)| n);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest.rfind(':') {
        Some(colon) if colon >= last_slash => {
            let name = without_digest.get(..colon).unwrap_or(without_digest);
            let tag = without_digest.get(colon + 1..).unwrap_or("");
            (
                name.to_string(),
                Some(tag.to_string()).filter(|t| !t.is_empty()),
            )
        }
        _ => (without_digest.to_string(), None),
    }
}

/// Infers a Deployment name from a ReplicaSet name by stripping the pod-template-hash suffix
/// (`web-7d9f8c6b5` → `web`). Inference only: a ReplicaSet created by hand with such a name
/// would be misattributed, which is why the trace model documents the attribute as inferred.
pub fn deployment_from_replicaset(rs: &str) -> Option<String> {
    let (base, hash) = rs.rsplit_once('-')?;
    // The hash is rendered with Kubernetes' SafeEncodeString alphabet (no vowels, no 0/1/3).
    const ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";
    if base.is_empty()
        || hash.is_empty()
        || hash.len() > 10
        || !hash.chars().all(|c| ALPHABET.contains(c))
    {
        return None;
    }
    Some(base.to_string())
}

/// Node named in a scheduler message `Successfully assigned ns/pod to node-1`.
pub fn node_from_scheduled_message(msg: &str) -> Option<String> {
    let (_, node) = msg.rsplit_once(" to ")?;
    let node = node.trim();
    (!node.is_empty() && !node.contains(' ')).then(|| node.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i64) -> SignedDuration {
        SignedDuration::from_millis(n)
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("812ms"), Some(ms(812)));
        assert_eq!(parse_go_duration("2.304s"), Some(ms(2304)));
        assert_eq!(parse_go_duration("1m3.5s"), Some(ms(63_500)));
        assert_eq!(
            parse_go_duration("1h2m"),
            Some(SignedDuration::from_secs(3720))
        );
        assert_eq!(
            parse_go_duration("750µs"),
            Some(SignedDuration::from_micros(750))
        );
        assert_eq!(
            parse_go_duration("750us"),
            Some(SignedDuration::from_micros(750))
        );
        assert_eq!(
            parse_go_duration("10ns"),
            Some(SignedDuration::from_nanos(10))
        );
        assert_eq!(parse_go_duration("0"), Some(SignedDuration::ZERO));
        assert_eq!(parse_go_duration(".5s"), Some(ms(500)));
        for bad in [
            "",
            "s",
            "1",
            "1.2.3s",
            "1x",
            "-1s",
            "1s2",
            ".s",
            "99999999999999999h",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn pulled_messages() {
        let m = parse_pulled_message(
            r#"Successfully pulled image "nginx:1.27" in 812ms (2.304s including waiting). Image size: 6151294 bytes."#,
        );
        assert_eq!(
            m,
            Some(PulledMessage::Pulled {
                image: "nginx:1.27".into(),
                pull: Some(ms(812)),
                including_waiting: Some(ms(2304)),
                size_bytes: Some(6_151_294)
            })
        );
        let m = parse_pulled_message(r#"Successfully pulled image "busybox" in 1m3.5s"#);
        assert_eq!(
            m,
            Some(PulledMessage::Pulled {
                image: "busybox".into(),
                pull: Some(ms(63_500)),
                including_waiting: None,
                size_bytes: None
            })
        );
        assert_eq!(
            parse_pulled_message(
                r#"Container image "registry.k8s.io/pause:3.10" already present on machine"#
            ),
            Some(PulledMessage::Cached {
                image: "registry.k8s.io/pause:3.10".into()
            })
        );
        assert_eq!(parse_pulled_message("Pulling image \"x\""), None);
        assert_eq!(
            parse_pulled_message("Successfully pulled image \"unterminated"),
            None
        );
    }

    #[test]
    fn image_split() {
        assert_eq!(split_image("nginx"), ("nginx".into(), None));
        assert_eq!(
            split_image("nginx:1.27"),
            ("nginx".into(), Some("1.27".into()))
        );
        assert_eq!(split_image("reg:5000/a/b"), ("reg:5000/a/b".into(), None));
        assert_eq!(
            split_image("reg:5000/a/b:v1@sha256:abc"),
            ("reg:5000/a/b".into(), Some("v1".into()))
        );
        assert_eq!(split_image("a/b@sha256:abc"), ("a/b".into(), None));
    }

    #[test]
    fn deployment_inference() {
        assert_eq!(
            deployment_from_replicaset("web-7d9f8c6b5"),
            Some("web".into())
        );
        assert_eq!(
            deployment_from_replicaset("my-app-5c8d4"),
            Some("my-app".into())
        );
        assert_eq!(deployment_from_replicaset("web-abc"), None); // vowel: not a template hash
        assert_eq!(deployment_from_replicaset("web"), None);
        assert_eq!(deployment_from_replicaset("-7d9f8"), None);
    }

    #[test]
    fn scheduled_message() {
        assert_eq!(
            node_from_scheduled_message("Successfully assigned default/p to node-1"),
            Some("node-1".into())
        );
        assert_eq!(node_from_scheduled_message("nothing"), None);
    }

    #[test]
    fn event_messages_lose_commands_and_probe_output() {
        let runtime = "Error: failed to create containerd task: OCI runtime create failed: \
                       runc create failed: unable to start container process: exec: \"/bin/app --token=abc\": \
                       stat /bin/app: no such file or directory: unknown";
        let r = redact_event_message(runtime).unwrap();
        assert!(!r.contains("token=abc"), "{r}");
        assert!(r.contains("exec: \"[redacted]\": stat"), "{r}");
        assert_eq!(
            redact_event_message(
                "Liveness probe failed: cat: can't open '/tmp/healthy': password=hunter2"
            ),
            Some("Liveness probe failed: [redacted]".to_string())
        );
        assert_eq!(
            redact_event_message(
                "Readiness probe errored: command \"sh -c check --key=k\" timed out"
            ),
            Some("Readiness probe errored: [redacted]".to_string())
        );
        for kept in [
            "Readiness probe failed: HTTP probe failed with statuscode: 503",
            "Liveness probe failed: Get \"http://10.0.0.5:8080/healthz\": dial tcp 10.0.0.5:8080: connect: connection refused",
            "Startup probe failed: dial tcp 10.0.0.5:5432: connect: connection refused",
            "Back-off restarting failed container app in pod web_shop(uid)",
            "Successfully pulled image \"nginx:1.27\" in 812ms (2.304s including waiting). Image size: 1 bytes.",
        ] {
            assert_eq!(redact_event_message(kept), None, "{kept}");
        }
        // An unterminated quote still hides everything after it.
        assert_eq!(
            redact_event_message("exec: \"/bin/x --a"),
            Some("exec: \"[redacted]\"".to_string())
        );
    }
}
