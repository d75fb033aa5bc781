//! OTLP/JSON: one `{"resourceSpans":[…]}` document per trace, one per line (the OTLP file
//! exporter format), as the OTLP/JSON spec encodes it: camelCase field names, trace and span
//! IDs as lower-case hex, 64-bit integers as decimal strings, enums as integers.

use super::proto::request;
use crate::trace::Trace;

/// One trace as a single-line OTLP/JSON document (no trailing newline).
pub fn document(
    trace: &Trace,
    span_extra: &[(String, String)],
    resource_extra: &[(String, String)],
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&request([(trace, span_extra)], resource_extra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::spandata::tests::sample_trace;

    #[test]
    fn matches_otlp_json_encoding() {
        let t = sample_trace("uid-1");
        let line = document(&t, &[], &[("env".into(), "test".into())]).unwrap();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let rs = v["resourceSpans"].as_array().unwrap();
        assert_eq!(rs.len(), 3, "podtrace, scheduler, one kubelet");
        let services: Vec<String> = rs
            .iter()
            .map(|r| {
                r["resource"]["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["key"] == "service.name")
                    .unwrap()["value"]["stringValue"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(services, ["podtrace", "kube-scheduler", "kubelet"]);
        let scope = &rs[0]["scopeSpans"][0]["scope"];
        assert_eq!(scope["name"], "podtrace");
        assert_eq!(scope["version"], env!("CARGO_PKG_VERSION"));
        let root = &rs[0]["scopeSpans"][0]["spans"][0];
        assert_eq!(root["traceId"], t.trace_id.to_string());
        assert_eq!(root["spanId"], "0101010101010101");
        assert_eq!(root["kind"], 1, "SPAN_KIND_INTERNAL as an integer");
        let start = t.spans[0].start.as_nanosecond().to_string();
        assert_eq!(root["startTimeUnixNano"], start.as_str(), "u64 as a string");
        let restarts = root["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == "k8s.pod.restarts")
            .unwrap();
        assert_eq!(restarts["value"]["intValue"], "0", "int64 as a string");
        let kubelet_spans = rs[2]["scopeSpans"][0]["spans"].as_array().unwrap();
        assert_eq!(kubelet_spans[0]["parentSpanId"], "0101010101010101");
        assert_eq!(kubelet_spans[1]["status"]["code"], 2, "STATUS_CODE_ERROR");
        assert_eq!(kubelet_spans[1]["status"]["message"], "CrashLoopBackOff");
        assert_eq!(kubelet_spans[0]["events"][0]["name"], "Pulled");
        // Deterministic: the same trace gives the same bytes.
        assert_eq!(
            line,
            document(&t, &[], &[("env".into(), "test".into())]).unwrap()
        );
    }
}
