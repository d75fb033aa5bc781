//! Traces as OTLP protobuf messages: the single conversion used by OTLP/JSON output and by
//! the exporter.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;

use super::spandata::{group_by_service, resource_for};
use crate::trace::Trace;

/// One `ResourceSpans` per distinct [`Service`](crate::trace::Service) among the spans of
/// `traces` (each trace paired with its extra span attributes), in service order, with
/// `resource_extra` added to every resource. Resource attributes are sorted by key so the
/// output is byte-for-byte reproducible.
pub fn resource_spans<'a>(
    traces: impl IntoIterator<Item = (&'a Trace, &'a [(String, String)])>,
    resource_extra: &[(String, String)],
) -> Vec<ResourceSpans> {
    let mut out = Vec::new();
    for (service, spans) in group_by_service(traces) {
        let resource = resource_for(&service, resource_extra);
        let attrs = ResourceAttributesWithSchema::from(&resource);
        for mut rs in group_spans_by_resource_and_scope(spans, &attrs) {
            if let Some(r) = rs.resource.as_mut() {
                r.attributes.sort_by(|a, b| a.key.cmp(&b.key));
            }
            out.push(rs);
        }
    }
    out
}

/// An `ExportTraceServiceRequest` carrying `traces`.
pub fn request<'a>(
    traces: impl IntoIterator<Item = (&'a Trace, &'a [(String, String)])>,
    resource_extra: &[(String, String)],
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: resource_spans(traces, resource_extra),
    }
}
