//! Human-readable output: the waterfall and the latency summary.

pub mod summary;
pub mod waterfall;
