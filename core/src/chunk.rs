//! Event chunks: a run processed as several event ranges by any workers, then merged.
//!
//! A phase that is *splittable* processes only the events of the context's chunk and writes its
//! artifacts at chunk paths ([`crate::RunContext::artifact_path`]); once every chunk of a run
//! is done, the host asks it to [`merge`](crate::Phase::merge) the chunk results, in event
//! order, into the run's artifacts, byte-identical to an unsplit run. Randomness must then
//! depend on the event, not on the position in the chunk ([`crate::RunContext::event_seed`]).

use abi_stable::StableAbi;
use std::path::{Path, PathBuf};

/// Event ids `first..=last` (inclusive).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventRange {
    /// First event id.
    pub first: u64,
    /// Last event id (inclusive).
    pub last: u64,
}

impl EventRange {
    /// `first..=last`.
    pub fn new(first: u64, last: u64) -> Self {
        EventRange { first, last }
    }
    /// Whether `event` is inside.
    pub fn contains(&self, event: u64) -> bool {
        self.first <= event && event <= self.last
    }
    /// How many ids it spans (0 when empty).
    pub fn len(&self) -> u64 {
        if self.last < self.first {
            0
        } else {
            self.last - self.first + 1
        }
    }
    /// Whether it spans no id.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Splits into `parts` contiguous ranges of near-equal length (fewer when shorter).
    pub fn split(&self, parts: u64) -> Vec<EventRange> {
        let n = self.len();
        let parts = parts.clamp(1, n.max(1));
        (0..parts)
            .map(|k| {
                // In u128: `n * k` overflows u64 for ranges near the top of the id space.
                let at = |k: u64| (u128::from(n) * u128::from(k) / u128::from(parts)) as u64;
                let (a, b) = (self.first + at(k), self.first + at(k + 1));
                EventRange::new(a, b.saturating_sub(1))
            })
            .filter(|r| !r.is_empty())
            .collect()
    }
}

impl std::fmt::Display for EventRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "events {}..={}", self.first, self.last)
    }
}

/// One chunk of a run: its index among the run's chunks and its events.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chunk {
    /// Index (0-based) in event order.
    pub index: u32,
    /// How many chunks the run has.
    pub count: u32,
    /// Its events.
    pub events: EventRange,
}

/// The folder holding the chunk artifacts of `run` under a phase's artifact folder:
/// `<artifact_dir>/.chunks/run_0001`.
pub fn chunk_dir(artifact_dir: &Path, run: u32) -> PathBuf {
    artifact_dir
        .join(".chunks")
        .join(crate::workspace::run_stem(run))
}

/// The artifact of `run`'s chunk `events` with extension `ext`:
/// `<artifact_dir>/.chunks/run_0001/e100-199.<ext>`.
pub fn chunk_artifact_path(
    artifact_dir: &Path,
    run: u32,
    events: EventRange,
    ext: &str,
) -> PathBuf {
    let ext = ext.trim_start_matches('.');
    chunk_dir(artifact_dir, run).join(format!("e{}-{}.{ext}", events.first, events.last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_the_range_without_gaps() {
        let r = EventRange::new(10, 109);
        let parts = r.split(3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].first, 10);
        assert_eq!(parts[2].last, 109);
        for w in parts.windows(2) {
            assert_eq!(w[0].last + 1, w[1].first);
        }
        assert_eq!(parts.iter().map(EventRange::len).sum::<u64>(), 100);
        assert_eq!(EventRange::new(5, 6).split(10).len(), 2);
        assert_eq!(EventRange::new(5, 5).split(0), vec![EventRange::new(5, 5)]);
        assert!(EventRange::new(7, 6).is_empty());
        // A range near the top of the id space splits without overflow.
        let huge = EventRange::new(0, (1u64 << 62) - 1).split(1000);
        assert_eq!(huge.len(), 1000);
        assert_eq!(huge[999].last, (1u64 << 62) - 1);
        assert_eq!(huge.iter().map(EventRange::len).sum::<u64>(), 1u64 << 62);
    }

    #[test]
    fn chunk_paths() {
        let p = chunk_artifact_path(Path::new("/w/Cluster"), 3, EventRange::new(0, 99), ".h5");
        assert_eq!(p, PathBuf::from("/w/Cluster/.chunks/run_0003/e0-99.h5"));
    }
}
