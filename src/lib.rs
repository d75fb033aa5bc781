//! podtrace: distributed traces of Kubernetes pod startup, reconstructed from watch streams.
//!
//! The reconstruction (`observe` → `timeline` → `trace`) is pure: no I/O and no clock reads,
//! so the same code runs live (`podtrace run`) and offline (`podtrace replay`).

pub mod crd;
pub mod observe;
pub mod session;
pub mod timeline;
pub mod trace;
