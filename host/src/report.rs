//! What a launch reports: the per-run ledger the parent keeps while workers send their messages,
//! `report.json` (written through a temporary name), and the summary printed at the end.

use crate::chain::PhaseView;
use crate::pipeline::Schedule;
use crate::protocol::{Part, PhaseRecord, PhaseStatus, RunOutcome};
use crate::runs::Run;
use crate::segments::human_bytes;
use serde::Serialize;
use spyral_report::launch::WorkerExit;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where a run stands in a launch.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Not handed to a worker (yet).
    NotStarted,
    /// Handed to a worker, which has not said it started.
    Assigned,
    /// A worker is processing it.
    Started,
    /// Every phase succeeded or was up to date.
    Ok,
    /// A phase failed, or its worker died.
    Failed,
    /// Its trace file vanished.
    Skipped,
    /// Stopped by an interrupt or the abort policy.
    Interrupted,
    /// Another launch on the same workspace was processing it.
    InAnotherLaunch,
}

/// One run of a launch, as `report.json` holds it.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Run number.
    pub run: u32,
    /// Trace bytes.
    pub bytes: u64,
    /// The worker it was handed to last.
    pub worker: Option<usize>,
    /// Where it stands.
    pub status: RunStatus,
    /// Every active phase was already up to date: nothing ran.
    pub up_to_date: bool,
    /// Why it failed, was skipped or left to another launch.
    pub error: Option<String>,
    /// Wall seconds in its workers (all its parts).
    pub wall_s: f64,
    /// Event chunks it was split into (None: processed whole).
    pub chunks: Option<u32>,
    /// Per phase (and per chunk and merge, for a split run).
    pub phases: Vec<PhaseRecord>,
}

/// A shared segment of the launch.
#[derive(Debug, Serialize)]
pub struct SegmentReport {
    /// Owner phase.
    pub phase: String,
    /// Segment name.
    pub name: String,
    /// Size.
    pub bytes: u64,
}

/// Time one phase spent in `create_shared_data`.
#[derive(Debug, Clone, Serialize)]
pub struct SharedReport {
    /// Phase.
    pub phase: String,
    /// Seconds in `create_shared_data`.
    pub seconds: f64,
}

/// One worker of the launch.
#[derive(Debug, Serialize)]
pub struct WorkerReport {
    /// Worker index.
    pub worker: usize,
    /// From spawn to ready, as the parent saw it.
    pub startup_ms: Option<f64>,
    /// Attaching the shared segments.
    pub attach_ms: Option<f64>,
    /// Peak resident memory.
    pub peak_rss_kib: Option<u64>,
    /// How it ended.
    pub exit: WorkerExit,
}

/// `report.json`: the whole launch.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Pipeline file.
    pub pipeline: PathBuf,
    /// Workspace.
    pub workspace: PathBuf,
    /// Base seed.
    pub seed: u64,
    /// Workers started first.
    pub workers: usize,
    /// Schedule.
    pub schedule: Schedule,
    /// Wall seconds of the launch.
    pub wall_s: f64,
    /// Whether an interrupt stopped it.
    pub interrupted: bool,
    /// Runs that ended ok.
    pub runs_ok: usize,
    /// Of those, runs where nothing had to run.
    pub runs_up_to_date: usize,
    /// Failed runs.
    pub runs_failed: usize,
    /// Skipped runs.
    pub runs_skipped: usize,
    /// Runs left to another launch.
    pub runs_in_another_launch: usize,
    /// Runs not run (interrupted, aborted).
    pub runs_not_started: usize,
    /// Replacement workers started.
    pub replacement_workers: usize,
    /// Files named like runs in the range that could not be used, with the reason.
    pub unusable: Vec<String>,
    /// Shared segments.
    pub segments: Vec<SegmentReport>,
    /// Seconds in create_shared_data.
    pub shared_data_seconds: Vec<SharedReport>,
    /// Peak resident memory of the parent.
    pub parent_peak_rss_kib: u64,
    /// Per worker.
    pub worker_reports: Vec<WorkerReport>,
    /// Per run.
    pub runs: Vec<RunReport>,
}

/// The parent's record of every run of a launch, updated from the workers' messages.
#[derive(Debug, Clone)]
pub struct Ledger {
    runs: BTreeMap<u32, RunReport>,
}

impl Ledger {
    /// Every run starts as not started; `chunks` gives the chunk count of split runs.
    pub fn new(runs: &[Run], chunks: &HashMap<u32, u32>) -> Ledger {
        Ledger {
            runs: runs
                .iter()
                .map(|r| {
                    (
                        r.run,
                        RunReport {
                            run: r.run,
                            bytes: r.bytes,
                            worker: None,
                            status: RunStatus::NotStarted,
                            up_to_date: false,
                            error: None,
                            wall_s: 0.0,
                            chunks: chunks.get(&r.run).copied(),
                            phases: Vec::new(),
                        },
                    )
                })
                .collect(),
        }
    }
    /// `run` was handed to `worker`.
    pub fn assigned(&mut self, run: u32, worker: usize) {
        if let Some(r) = self.runs.get_mut(&run) {
            r.worker = Some(worker);
            if r.status == RunStatus::NotStarted {
                r.status = RunStatus::Assigned;
            }
        }
    }
    /// `run` went back to the queue (its worker died before starting it).
    pub fn requeued(&mut self, run: u32) {
        if let Some(r) = self.runs.get_mut(&run) {
            if r.status == RunStatus::Assigned {
                r.worker = None;
                r.status = RunStatus::NotStarted;
            }
        }
    }
    /// `worker` started (a part of) `run`.
    pub fn started(&mut self, run: u32, worker: usize) {
        if let Some(r) = self.runs.get_mut(&run) {
            r.worker = Some(worker);
            if matches!(r.status, RunStatus::NotStarted | RunStatus::Assigned) {
                r.status = RunStatus::Started;
            }
        }
    }
    /// A phase of (a part of) `run` ended.
    pub fn phase(&mut self, run: u32, part: Part, mut record: PhaseRecord) {
        if let Some(r) = self.runs.get_mut(&run) {
            record.part = part;
            r.phases.push(record);
        }
    }
    /// (A part of) `run` ended in its worker. Returns the failure message when it failed. A
    /// split run is ok once its commit is; a chunk or merge that fails fails the run.
    pub fn finished(
        &mut self,
        run: u32,
        part: &Part,
        outcome: RunOutcome,
        wall_s: f64,
    ) -> Option<String> {
        let r = self.runs.get_mut(&run)?;
        r.wall_s += wall_s;
        let final_part = matches!(part, Part::Whole | Part::Commit { .. });
        match outcome {
            RunOutcome::Ok => {
                if final_part && r.status != RunStatus::Failed {
                    r.status = RunStatus::Ok;
                    r.up_to_date = r.phases.iter().any(|ph| ph.status == PhaseStatus::UpToDate)
                        && r.phases.iter().all(|ph| {
                            matches!(ph.status, PhaseStatus::UpToDate | PhaseStatus::Constructed)
                        });
                }
                None
            }
            RunOutcome::Skipped { why } => {
                r.status = RunStatus::Skipped;
                r.error = Some(why);
                None
            }
            RunOutcome::InAnotherLaunch { phase, holder } => {
                if r.status != RunStatus::Failed {
                    r.status = RunStatus::InAnotherLaunch;
                    r.error = Some(format!(
                        "running in another launch ({holder}; phase {phase})"
                    ));
                }
                None
            }
            RunOutcome::Interrupted { phase } => {
                if r.status != RunStatus::Failed {
                    r.status = RunStatus::Interrupted;
                    r.error = Some(format!("stopped on request at phase {phase}{part}"));
                }
                None
            }
            RunOutcome::Failed { error: e } => {
                r.status = RunStatus::Failed;
                let msg = format!("phase {}{part}: {}: {}", e.phase, e.kind, e.message);
                r.error = Some(msg.clone());
                Some(msg)
            }
        }
    }
    /// Runs that reached an end (ok, failed, skipped, interrupted, left to another launch).
    pub fn finished_runs(&self) -> usize {
        self.runs
            .values()
            .filter(|r| {
                !matches!(
                    r.status,
                    RunStatus::NotStarted | RunStatus::Assigned | RunStatus::Started
                )
            })
            .count()
    }
    /// `run`'s worker died while running it.
    pub fn died(&mut self, run: u32, interrupted: bool, why: String) {
        if let Some(r) = self.runs.get_mut(&run) {
            r.status = if interrupted {
                RunStatus::Interrupted
            } else {
                RunStatus::Failed
            };
            r.error = Some(why);
        }
    }
    /// Where `run` stands (None for a run not of this launch).
    pub fn status(&self, run: u32) -> Option<RunStatus> {
        self.runs.get(&run).map(|r| r.status)
    }
    /// How many runs are in `status`.
    pub fn count(&self, status: RunStatus) -> usize {
        self.runs.values().filter(|r| r.status == status).count()
    }
    /// How many runs ended ok with nothing to do.
    pub fn up_to_date(&self) -> usize {
        self.runs.values().filter(|r| r.up_to_date).count()
    }
    /// Runs that did not run (not started, never finished, interrupted).
    pub fn not_run(&self) -> usize {
        self.count(RunStatus::NotStarted)
            + self.count(RunStatus::Assigned)
            + self.count(RunStatus::Started)
            + self.count(RunStatus::Interrupted)
    }
    /// The records, by run number.
    pub fn into_runs(self) -> Vec<RunReport> {
        self.runs.into_values().collect()
    }
}

/// Writes `report.json` through a temporary name; the temporary file is removed on failure.
pub fn write_report(path: &Path, report: &Report) -> std::io::Result<()> {
    let tmp = spyral_core::workspace::partial_path(path);
    let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|_| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The summary printed at the end of a launch.
pub fn summary_text(r: &Report, chain: &[PhaseView], launch: &Path) -> String {
    let mut s = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "spyral: {} runs: {} ok{}, {} failed, {} skipped, {}{} not run{} in {:.2} s ({} workers{}, seed {})",
        r.runs.len(),
        r.runs_ok,
        if r.runs_up_to_date > 0 {
            format!(" ({} already up to date)", r.runs_up_to_date)
        } else {
            String::new()
        },
        r.runs_failed,
        r.runs_skipped,
        if r.runs_in_another_launch > 0 {
            format!("{} running in another launch, ", r.runs_in_another_launch)
        } else {
            String::new()
        },
        r.runs_not_started,
        if r.interrupted { " (interrupted)" } else { "" },
        r.wall_s,
        r.workers,
        if r.replacement_workers > 0 {
            format!(" + {} replacement(s)", r.replacement_workers)
        } else {
            String::new()
        },
        r.seed
    );
    for run in &r.runs {
        let st = match run.status {
            RunStatus::Ok => continue,
            RunStatus::NotStarted | RunStatus::Assigned | RunStatus::Started => "not run",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Interrupted => "interrupted",
            RunStatus::InAnotherLaunch => "in another launch",
        };
        let _ = writeln!(
            s,
            "  run {}: {st}{}",
            run.run,
            run.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    let mut per_phase: Vec<(String, f64, usize)> = Vec::new();
    for c in chain.iter().filter(|c| c.active()) {
        let (t, n) = r
            .runs
            .iter()
            .flat_map(|x| x.phases.iter())
            .filter(|ph| ph.phase == c.name() && ph.status == PhaseStatus::Ok)
            .fold((0.0, 0), |(t, n), ph| (t + ph.wall_s, n + 1));
        per_phase.push((c.name().to_string(), t, n));
    }
    let parts: Vec<String> = per_phase
        .iter()
        .map(|(n, t, k)| format!("{n} {t:.2} s over {k} runs"))
        .collect();
    let _ = writeln!(s, "  phase time: {}", parts.join(", "));
    if !r.segments.is_empty() {
        let segs: Vec<String> = r
            .segments
            .iter()
            .map(|g| format!("{}/{} {}", g.phase, g.name, human_bytes(g.bytes)))
            .collect();
        let _ = writeln!(s, "  shared segments: {}", segs.join(", "));
    }
    let _ = write!(
        s,
        "  outputs in {}; logs and report in {}",
        r.workspace.display(),
        launch.display()
    );
    s
}
