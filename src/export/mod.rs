//! Turning traces into OTLP: OTLP/JSON documents and export to a receiver.
//!
//! One conversion path serves both outputs: [`Trace`](crate::trace::Trace) →
//! SDK `SpanData` grouped by resource ([`spandata`]) → OTLP protobuf messages ([`proto`]),
//! which are either serialised as OTLP/JSON ([`otlp_json`]) or sent over gRPC or HTTP
//! ([`exporter`]).

pub mod exporter;
pub mod otlp_json;
pub mod proto;
pub mod spandata;
