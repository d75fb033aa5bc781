//! podtrace: distributed traces of Kubernetes pod startup, reconstructed from watch streams.
//!
//! The reconstruction (`observe` → `timeline` → `trace`) is pure: no I/O and no clock reads,
//! so the same code runs live (`podtrace run`) and offline (`podtrace replay`).

#![warn(missing_docs)]

pub mod controller;
pub mod crd;
pub mod export;
pub mod ids;
pub mod latency;
pub mod observe;
pub mod record;
pub mod render;
pub mod replay;
pub mod session;
pub mod telemetry;
pub mod timeline;
pub mod trace;
