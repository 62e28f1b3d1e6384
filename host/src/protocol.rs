//! The messages between the parent and its workers.
//!
//! One JSON object per line. The parent writes a [`Job`] and then [`Assign`] answers to the
//! worker's stdin; the worker writes [`WorkerMsg`]s to a private duplicate of its original
//! stdout (its fd 1 is pointed at stderr, so stray prints from plugins cannot corrupt the stream).

use crate::chain::ResolvedPhase;
use crate::provenance::RunReason;
use serde::{Deserialize, Serialize};
use spyral_core::PhaseErrorKind;
use std::fmt;
use std::path::PathBuf;

/// A shared segment as the worker must map it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SegmentEntry {
    /// Owning phase name.
    pub phase: String,
    /// Segment name.
    pub name: String,
    /// Inherited file descriptor number (a sealed memfd, or a read-only file).
    pub fd: i32,
    /// Length in bytes.
    pub len: u64,
    /// Element type name (`float64`, ...).
    pub element: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// For a file shared as is: where its bytes start in the file (None: a sealed memfd).
    #[serde(default)]
    pub file_offset: Option<u64>,
}

/// What the parent tells a worker at start: everything the worker needs, so it never reads the
/// pipeline file (which may have been edited since the parent validated it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The pipeline file (for messages only; never read by the worker).
    pub pipeline: PathBuf,
    /// Workspace root.
    pub workspace: PathBuf,
    /// Trace folder.
    pub traces: PathBuf,
    /// The folder phase configs resolve relative paths against (the pipeline's folder); the
    /// worker makes it its current directory.
    pub base_dir: PathBuf,
    /// The validated chain: kinds, names, resolved configs, library paths and code identities.
    pub chain: Vec<ResolvedPhase>,
    /// The launch's name (its log folder), recorded in provenance and lock files.
    pub launch: String,
    /// Worker index.
    pub worker: usize,
    /// Base seed.
    pub seed: u64,
    /// Whether the pipeline or the command line fixed the seed (it is then part of provenance).
    pub seed_fixed: bool,
    /// The worker's log file.
    pub log_file: PathBuf,
    /// Log level name.
    pub log_level: String,
    /// Phases forced to rerun (resume), by name; `*` for all.
    pub force: Vec<String>,
    /// Longest time one run may take, in seconds (None: no limit). Past it, phases are asked
    /// to stop (`cancelled()` turns true) and the run fails with a timeout.
    pub run_timeout_s: Option<f64>,
    /// Shared segments to attach.
    pub segments: Vec<SegmentEntry>,
}

/// What part of a run a unit of work covers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default, Hash)]
#[serde(tag = "part", rename_all = "kebab-case")]
pub enum Part {
    /// The whole run.
    #[default]
    Whole,
    /// Events `first..=last`, chunk `index` of `count`, through one phase: a split run's chunk
    /// goes through the chain one phase per unit, so phases of different chunks, and merges of
    /// finished phases, run at once on different workers.
    Chunk {
        /// Index in event order.
        index: u32,
        /// Chunks of the run.
        count: u32,
        /// First event id.
        first: u64,
        /// Last event id (inclusive).
        last: u64,
        /// The phase this unit runs (the chunk's earlier phases are done by then).
        phase: String,
    },
    /// Merge one phase's chunk artifacts (their event ranges, in order) into that phase's
    /// artifacts of the run. The merges of a run's phases are independent units (they may run
    /// at once on different workers); [`Part::Commit`] then records the run as current.
    Merge {
        /// The phase whose chunks are merged.
        phase: String,
        /// The chunks' `[first, last]` event ranges.
        ranges: Vec<[u64; 2]>,
    },
    /// After every phase's merge: write the run's whole-run provenance records in chain order
    /// (each names its upstream by content, as an unsplit run's would) and remove the chunks.
    Commit {
        /// The chunks' `[first, last]` event ranges.
        ranges: Vec<[u64; 2]>,
    },
}

impl Part {
    /// Whether it is the whole run.
    pub fn is_whole(&self) -> bool {
        *self == Part::Whole
    }
    /// The chunk, for a chunk unit.
    pub fn chunk(&self) -> Option<spyral_core::Chunk> {
        match *self {
            Part::Chunk {
                index,
                count,
                first,
                last,
                ..
            } => Some(spyral_core::Chunk {
                index,
                count,
                events: spyral_core::EventRange::new(first, last),
            }),
            _ => None,
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Whole => Ok(()),
            Part::Chunk {
                index,
                count,
                first,
                last,
                ..
            } => write!(f, " chunk {}/{count} (events {first}..={last})", index + 1),
            // The phase is not in the label: log lines name it already (`phase P complete for
            // run 3 merge of 8 chunks`), and the report parses them.
            Part::Merge { ranges, .. } => write!(f, " merge of {} chunks", ranges.len()),
            Part::Commit { ranges } => write!(f, " commit of {} merged chunks", ranges.len()),
        }
    }
}

/// The parent's answer to [`WorkerMsg::Next`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Assign {
    /// The run to process next, or None: no more work, exit.
    pub run: Option<u32>,
    /// Which part of it.
    #[serde(default)]
    pub part: Part,
    /// Seconds the run's finished units already took: `run_timeout` limits a run split into
    /// event chunks over all its units, so this unit has what is left.
    #[serde(default)]
    pub spent_s: f64,
}

/// Outcome of one phase on one run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseStatus {
    /// Ran and succeeded.
    Ok,
    /// Ran and failed.
    Failed,
    /// Inactive: artifact constructed without running.
    Constructed,
    /// Not run because an earlier phase of the run failed.
    NotRun,
    /// Skipped because its artifact is current.
    UpToDate,
}

/// Why a run failed: the kind of a phase's own error, or what the host saw around the call.
/// Travels as one word (`invalid-input`, `timeout`, ...).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum FailureKind {
    /// An error the phase returned (or the host's own of the same class, e.g. `Io`).
    Phase(PhaseErrorKind),
    /// Something only the host sees.
    Host(HostFailure),
}

/// The failures a phase cannot report about itself.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HostFailure {
    /// The run exceeded `run_timeout`.
    Timeout,
    /// The phase returned a result that did not say it succeeded.
    InvalidResult,
}

impl FailureKind {
    /// The run exceeded `run_timeout`.
    pub const TIMEOUT: FailureKind = FailureKind::Host(HostFailure::Timeout);
    /// The phase returned a result that did not say it succeeded.
    pub const INVALID_RESULT: FailureKind = FailureKind::Host(HostFailure::InvalidResult);
}

impl From<PhaseErrorKind> for FailureKind {
    fn from(kind: PhaseErrorKind) -> Self {
        FailureKind::Phase(kind)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Phase(kind) => kind.fmt(f),
            FailureKind::Host(HostFailure::Timeout) => f.write_str("timeout"),
            FailureKind::Host(HostFailure::InvalidResult) => f.write_str("invalid result"),
        }
    }
}

/// A phase error as reported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorInfo {
    /// Phase name.
    pub phase: String,
    /// What kind of failure it was.
    pub kind: FailureKind,
    /// Message.
    pub message: String,
}

/// The record of one phase on one run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseRecord {
    /// Phase name.
    pub phase: String,
    /// Outcome.
    pub status: PhaseStatus,
    /// Error message when failed.
    pub error: Option<String>,
    /// Wall seconds.
    pub wall_s: f64,
    /// CPU seconds of the worker process during the call.
    pub cpu_s: f64,
    /// Peak resident memory of the worker so far, in KiB.
    pub peak_rss_kib: u64,
    /// Items processed (the last progress total reported).
    pub items: u64,
    /// Metadata returned by the phase.
    pub metadata: serde_json::Value,
    /// Why it ran (None when it did not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RunReason>,
    /// Which part of the run (set by the parent's ledger; absent for whole runs).
    #[serde(default, skip_serializing_if = "Part::is_whole")]
    pub part: Part,
}

/// How a run ended in a worker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum RunOutcome {
    /// Every phase succeeded or was up to date.
    Ok,
    /// A phase failed (the later phases were not called).
    Failed {
        /// The error.
        error: ErrorInfo,
    },
    /// Stopped on request (interrupt, abort policy) before it finished.
    Interrupted {
        /// The phase it stopped at.
        phase: String,
    },
    /// Not processed: its trace file is gone.
    Skipped {
        /// Why.
        why: String,
    },
    /// Not processed here: another launch on the same workspace holds the run.
    InAnotherLaunch {
        /// The phase whose lock is held.
        phase: String,
        /// What the holder wrote into the lock file.
        holder: String,
    },
}

/// What a worker tells the parent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum WorkerMsg {
    /// Plugins loaded, phases constructed, segments attached.
    Ready {
        /// Milliseconds from process start.
        startup_ms: f64,
        /// Milliseconds spent mapping the shared segments and in `attach_shared`.
        attach_ms: f64,
    },
    /// Asks for the next run.
    Next,
    /// A run begins.
    RunStarted {
        /// Run number.
        run: u32,
        /// Which part of it.
        #[serde(default)]
        part: Part,
    },
    /// A phase begins on a run.
    PhaseStarted {
        /// Run number.
        run: u32,
        /// Phase name.
        phase: String,
    },
    /// Progress inside the current phase.
    Progress {
        /// Run number.
        run: u32,
        /// Done items.
        done: u64,
        /// Total items.
        total: u64,
    },
    /// A phase ended.
    PhaseFinished {
        /// Run number.
        run: u32,
        /// Which part of it.
        #[serde(default)]
        part: Part,
        /// The record.
        record: PhaseRecord,
    },
    /// A run ended.
    RunFinished {
        /// Run number.
        run: u32,
        /// Which part of it.
        #[serde(default)]
        part: Part,
        /// How.
        outcome: RunOutcome,
        /// Wall seconds for the run.
        wall_s: f64,
    },
    /// The worker could not start (plugin, config, segment problem).
    Fatal {
        /// What went wrong.
        message: String,
    },
    /// The worker is exiting normally.
    Done {
        /// Peak RSS in KiB.
        peak_rss_kib: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_kind_travels_as_a_word_and_reads_as_the_phase_error_does() {
        let e = ErrorInfo {
            phase: "Cluster".into(),
            kind: PhaseErrorKind::InvalidInput.into(),
            message: "no point cloud".into(),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"kind\":\"invalid-input\""), "{text}");
        assert_eq!(serde_json::from_str::<ErrorInfo>(&text).unwrap(), e);
        assert_eq!(e.kind.to_string(), PhaseErrorKind::InvalidInput.to_string());
        assert_eq!(FailureKind::TIMEOUT.to_string(), "timeout");
        let t = serde_json::to_string(&FailureKind::TIMEOUT).unwrap();
        assert_eq!(t, "\"timeout\"");
        assert_eq!(
            serde_json::from_str::<FailureKind>(&t).unwrap(),
            FailureKind::TIMEOUT
        );
    }

    #[test]
    fn messages_round_trip_as_json_lines() {
        let m = WorkerMsg::PhaseStarted {
            run: 3,
            phase: "Cluster".into(),
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(!text.contains('\n'));
        assert!(text.contains("\"type\":\"phase-started\""));
        assert_eq!(serde_json::from_str::<WorkerMsg>(&text).unwrap(), m);
    }

    #[test]
    fn outcomes_and_reasons_round_trip() {
        use crate::provenance::{ConfigChange, StaleReason};
        let msgs = [
            WorkerMsg::RunFinished {
                run: 5,
                part: Part::Chunk {
                    index: 1,
                    count: 3,
                    first: 100,
                    last: 199,
                    phase: "Cluster".into(),
                },
                outcome: RunOutcome::InAnotherLaunch {
                    phase: "Cluster".into(),
                    holder: "pid 9".into(),
                },
                wall_s: 0.5,
            },
            WorkerMsg::PhaseFinished {
                run: 5,
                part: Part::Merge {
                    phase: "Cluster".into(),
                    ranges: vec![[0, 99], [100, 199]],
                },
                record: PhaseRecord {
                    phase: "Cluster".into(),
                    status: PhaseStatus::Ok,
                    error: None,
                    wall_s: 1.0,
                    cpu_s: 1.0,
                    peak_rss_kib: 1,
                    items: 2,
                    metadata: serde_json::Value::Null,
                    reason: Some(RunReason::Stale {
                        reason: StaleReason::ConfigChanged {
                            changes: vec![ConfigChange {
                                field: "a.b".into(),
                                old: Some(3.into()),
                                new: Some(4.into()),
                            }],
                        },
                    }),
                    part: Part::Whole,
                },
            },
            WorkerMsg::RunFinished {
                run: 5,
                part: Part::Commit {
                    ranges: vec![[0, 99], [100, 199]],
                },
                outcome: RunOutcome::Ok,
                wall_s: 0.1,
            },
        ];
        for m in msgs {
            let text = serde_json::to_string(&m).unwrap();
            assert!(text.contains("\"part\""), "{text}");
            assert_eq!(
                serde_json::from_str::<WorkerMsg>(&text).unwrap(),
                m,
                "{text}"
            );
        }
    }
}
