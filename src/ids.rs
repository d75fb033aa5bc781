//! Deterministic trace and span IDs derived from the pod UID and the span's place in the tree.
