//! The `PodStartup` operation: from a pod's creation until it is Ready (or failed, deleted,
//! timed out). Its span tree and boundaries are specified in docs/trace-model.md.

pub(crate) mod build;
pub(crate) mod state;

use crate::trace::Outcome;

/// The Ready condition turned True.
pub const READY: Outcome = Outcome::new("ready", true);
/// The startup is known to have failed (image pull failure, crash loop, …); the reason says
/// which (ImagePullBackOff, CrashLoopBackOff, …).
pub const FAILED: Outcome = Outcome::new("failed", false);
/// The pod was deleted before it became Ready.
pub const DELETED: Outcome = Outcome::new("deleted", false);
/// Nothing ended the startup within the configured timeout.
pub const TIMED_OUT: Outcome = Outcome::new("timed_out", false);
/// The input ended (replay) before the startup did.
pub const INCOMPLETE: Outcome = Outcome::new("incomplete", false);

/// A failed startup with its reason.
pub fn failed(reason: impl Into<String>) -> Outcome {
    FAILED.with_reason(reason)
}
