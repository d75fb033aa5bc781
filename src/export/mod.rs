//! Turning traces into OTLP: OTLP/JSON documents and export to a receiver.
