//! Human-readable output: the waterfall and the latency summary.
