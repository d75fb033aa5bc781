//! The reconstruction engine: observations in, finished traces out.
//!
//! Pure: no I/O, no clock reads. Time comes from the objects themselves and from the
//! observation times carried with each event; `advance` lets a live caller move time on
//! when nothing arrives.

use jiff::{SignedDuration, Timestamp};

use crate::observe::Observation;
use crate::trace::Trace;

/// Engine settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long to wait after Ready (or failure) for late events before finishing a trace.
    pub grace: SignedDuration,
    /// Finish a startup as timed out when it has not ended this long after creation.
    pub timeout: SignedDuration,
    /// Pods whose startup ended before this instant are not traced (restart safety: the
    /// controller sets it so it does not re-send what it already exported). None: trace all.
    pub ignore_finished_before: Option<Timestamp>,
    /// Upper bound on events buffered for pods not (yet) seen.
    pub max_orphan_events: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grace: SignedDuration::from_secs(10),
            timeout: SignedDuration::from_secs(15 * 60),
            ignore_finished_before: None,
            max_orphan_events: 10_000,
        }
    }
}

/// Counters the engine keeps about its own input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Observations consumed.
    pub observations: u64,
    /// Events that matched no pod before they expired.
    pub orphan_events_dropped: u64,
    /// Duplicate events ignored.
    pub duplicate_events: u64,
}

/// Reconstructs pod startups from observations.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    stats: Stats,
}

impl Engine {
    /// A new engine with no pods in flight.
    pub fn new(config: Config) -> Self {
        Engine { config, stats: Stats::default() }
    }

    /// Feeds one observation; returns traces it finished.
    pub fn observe(&mut self, _obs: Observation) -> Vec<Trace> {
        self.stats.observations += 1;
        Vec::new()
    }

    /// Moves time on to `now` (live ticks); returns traces whose grace period or timeout ended.
    pub fn advance(&mut self, _now: Timestamp) -> Vec<Trace> {
        Vec::new()
    }

    /// Ends the input: finishes every startup still in flight as it stands.
    pub fn drain(&mut self) -> Vec<Trace> {
        Vec::new()
    }

    /// Pods whose startup is being followed.
    pub fn in_flight(&self) -> usize {
        0
    }

    /// Input counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Settings.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
