//! podtrace's own logs and metrics.
