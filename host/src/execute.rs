//! Running one unit of work in a worker: a whole run through the chain, one event chunk
//! through one phase, the merge of one phase's chunks, or the commit of a merged run.
//!
//! For every unit the worker first takes its locks (see `locks`): a whole run or a commit holds
//! the (run, phase) locks of every active phase exclusively, a merge only its phase's; a chunk
//! holds its chunk lock and its phase's run lock shared, so chunks of one run proceed in
//! parallel but never beside a whole run, a merge or a commit of that run in another launch.
//! Then `provenance::decide` says whether to run each phase or to use its current result, and a
//! record is written after the artifacts. A chunk unit takes its earlier phases' results from
//! their chunk records (when one of them ran in this launch, the unit's phase reruns, as in a
//! whole run). A chunk, merge or commit whose whole run is already current does nothing. A merge
//! writes its phase's artifacts and leaves a `MergedRecord`; the commit turns those into
//! whole-run records in chain order (each names its inputs by content, as an unsplit run's
//! records do). After a successful whole run or commit, the run's chunk files are removed.

use crate::chain::ChainPhase;
use crate::locks;
use crate::protocol::{
    ErrorInfo, FailureKind, Job, Part, PhaseRecord, PhaseStatus, RunOutcome, WorkerMsg,
};
use crate::provenance::{self, After, Decision, Identity, RecordRead, RecordStatus};
use crate::worker::{cpu_seconds, epoch_seconds, peak_rss_kib, Outbox};
use abi_stable::std_types::{RStr, RString, RVec};
use spyral_core::{LogLevel, PhaseErrorKind, PhaseResult, RunContext, RunSink};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The host side of a phase call: progress and log lines to the parent, cancellation from an
/// interrupt or the run's time limit.
struct Sink<'a> {
    outbox: &'a Outbox,
    run: u32,
    cancel: &'a AtomicBool,
    /// When the run's time limit expires (phases are then asked to stop).
    deadline: Option<Instant>,
    last: Mutex<Instant>,
    total: AtomicU64,
    phase: &'a str,
    /// The names of the phases before this one in the chain.
    earlier: &'a [String],
}

impl RunSink for Sink<'_> {
    fn progress(&self, done: u64, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if done == 0 || done >= total || last.elapsed().as_millis() >= 50 {
            *last = Instant::now();
            self.outbox.send(&WorkerMsg::Progress {
                run: self.run,
                done,
                total,
            });
        }
    }
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let (p, r, m) = (self.phase, self.run, message.as_str());
        match level {
            LogLevel::Error => tracing::error!(phase = p, run = r, "{m}"),
            LogLevel::Warn => tracing::warn!(phase = p, run = r, "{m}"),
            LogLevel::Info => tracing::info!(phase = p, run = r, "{m}"),
            LogLevel::Debug => tracing::debug!(phase = p, run = r, "{m}"),
            LogLevel::Trace => tracing::trace!(phase = p, run = r, "{m}"),
        }
    }
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
    fn earlier_phases(&self) -> RVec<RString> {
        self.earlier
            .iter()
            .map(|n| RString::from(n.as_str()))
            .collect()
    }
}

/// A phase record for the report of a phase that was not called (up to date, constructed, not
/// run, or failed before the call): no time, no items, no metadata.
fn no_call(phase: &str, status: PhaseStatus, error: Option<String>) -> PhaseRecord {
    record_of(phase, status, error, 0.0, 0.0, 0, None)
}

/// A phase record for the report.
pub fn record_of(
    phase: &str,
    status: PhaseStatus,
    error: Option<String>,
    wall_s: f64,
    cpu_s: f64,
    items: u64,
    metadata: Option<serde_json::Value>,
) -> PhaseRecord {
    PhaseRecord {
        phase: phase.to_string(),
        status,
        error,
        wall_s,
        cpu_s,
        peak_rss_kib: peak_rss_kib(),
        items,
        metadata: metadata.unwrap_or(serde_json::Value::Null),
        reason: None,
        part: Part::Whole,
    }
}

fn holder(job: &Job) -> String {
    format!(
        "pid {} worker {} launch {}",
        std::process::id(),
        job.worker,
        job.launch
    )
}

/// The active phases a unit writes: its phase for a chunk or a merge, every active phase for a
/// whole run or a commit.
fn unit_phases<'a>(
    chain: &'a [ChainPhase],
    part: &'a Part,
) -> impl Iterator<Item = &'a ChainPhase> {
    chain.iter().filter(move |c| {
        c.spec.active
            && match part {
                Part::Chunk { phase, .. } | Part::Merge { phase, .. } => *phase == c.name,
                Part::Whole | Part::Commit { .. } => true,
            }
    })
}

/// Removes the chunk folders of `run` (its artifacts are complete: the chunks of this launch's
/// merges, or stale ones of an earlier launch, are no longer needed).
fn remove_chunk_dirs(chain: &[ChainPhase], run: u32, label: &str) {
    for c in chain.iter().filter(|c| c.spec.active) {
        let dir = spyral_core::chunk::chunk_dir(&c.workspace.artifact_dir(), run);
        if dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!("{label}: cannot remove {}: {e}", dir.display());
            }
        }
        // The `.chunks` folder itself goes when no other run has chunks there.
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// The error of a run stopped by its time limit (`run_timeout`) in `phase`.
fn timeout_error(job: &Job, run: u32, phase: &str) -> ErrorInfo {
    ErrorInfo {
        phase: phase.to_string(),
        kind: FailureKind::TIMEOUT,
        message: format!(
            "run {run} exceeded run_timeout ({} s) in phase {phase}",
            job.run_timeout_s.unwrap_or(0.0)
        ),
    }
}

/// Why a phase call did not succeed: error kind, message, and whether an interrupt stopped it
/// (a stop by the run's time limit is a failure, reported as a timeout).
fn call_failure(
    out: Result<PhaseResult, spyral_core::PhaseError>,
    timed_out: bool,
    interrupted: bool,
    timeout: ErrorInfo,
) -> (FailureKind, String, bool) {
    let (kind, message, cancelled) = match out {
        Ok(_) => (
            FailureKind::INVALID_RESULT,
            "the phase returned an unsuccessful result".to_string(),
            false,
        ),
        Err(e) => (
            e.kind.into(),
            e.message().to_string(),
            e.kind == PhaseErrorKind::Cancelled,
        ),
    };
    if cancelled && timed_out && !interrupted {
        return (timeout.kind, timeout.message, false);
    }
    (kind, message, cancelled)
}

/// Takes the unit's locks for every phase it writes. `Err((phase, holder))` when another launch
/// holds one of them (nothing is kept then).
fn lock_unit(
    job: &Job,
    chain: &[ChainPhase],
    run: u32,
    part: &Part,
) -> Result<Result<Vec<locks::Lock>, (String, String)>, locks::LockError> {
    let me = holder(job);
    // A run another launch is processing in chunks is left to it, even between its units
    // (when its workers hold none of the run's locks).
    if matches!(part, Part::Whole) {
        let marker = locks::split_run_path(&job.workspace, run);
        if let (Some(h), Some(c)) = (locks::holder(&marker), unit_phases(chain, part).next()) {
            return Ok(Err((c.name.clone(), h)));
        }
    }
    let mut held = Vec::new();
    for c in unit_phases(chain, part) {
        let run_lock = locks::run_lock_path(&job.workspace, &c.name, run);
        let busy = |path: &std::path::Path| Ok(Err((c.name.clone(), locks::holder_text(path))));
        match part {
            Part::Chunk { first, last, .. } => {
                match locks::insist(|| locks::try_lock_shared(&run_lock))? {
                    Some(l) => held.push(l),
                    None => return busy(&run_lock),
                }
                let path = locks::chunk_lock_path(&job.workspace, &c.name, run, *first, *last);
                match locks::insist(|| locks::try_lock(&path, &me))? {
                    Some(l) => held.push(l),
                    None => return busy(&path),
                }
            }
            _ => match locks::insist(|| locks::try_lock(&run_lock, &me))? {
                Some(l) => held.push(l),
                None => return busy(&run_lock),
            },
        }
    }
    Ok(Ok(held))
}

/// Whether every active phase of `run` is current as a whole run (the chunks of such a run
/// have nothing to do).
fn whole_run_current(job: &Job, chain: &[ChainPhase], run: u32, trace: &PathBuf) -> bool {
    let mut payload = PhaseResult::new(run).with_artifact("trace", trace);
    let mut after = None;
    for c in chain {
        let ws = c.workspace();
        if !c.spec.active {
            match c.phase.construct_artifact(&payload, &ws).into_result() {
                Ok(r) => payload = r,
                Err(_) => return false,
            }
            after = None;
            continue;
        }
        let forced = job.force.iter().any(|f| f == "*" || *f == c.name);
        let seed = spyral_core::seed::derive_seed(job.seed, run, &c.name);
        let identity =
            Identity::of(c, &payload, job.seed_fixed.then_some(seed)).following(after.take());
        let record = provenance::read(&provenance::record_path(&ws.artifact_dir(), run));
        match provenance::decide(&record, &identity, forced, None) {
            Decision::UpToDate(rec) => {
                payload = provenance::result_of(&rec);
                after = After::record(&c.name, &rec);
            }
            Decision::Run(_) => return false,
        }
    }
    true
}

/// A chunk whose result a merge needs has no successful record.
#[derive(Debug, thiserror::Error)]
#[error("no result for events {first}..={last} ({} is missing or failed)", .record.display())]
struct MissingChunk {
    first: u64,
    last: u64,
    record: PathBuf,
}

/// The chunk results a merge of phase `c` combines, in event order.
fn chunk_parts(
    c: &ChainPhase,
    run: u32,
    ranges: &[[u64; 2]],
) -> Result<Vec<PhaseResult>, MissingChunk> {
    let dir = c.workspace.artifact_dir();
    ranges
        .iter()
        .map(|&[a, b]| {
            let path = provenance::chunk_record_path(&dir, run, a, b);
            match provenance::read(&path) {
                RecordRead::Found(r) if r.status == RecordStatus::Ok => {
                    Ok(provenance::result_of(&r))
                }
                _ => Err(MissingChunk {
                    first: a,
                    last: b,
                    record: path,
                }),
            }
        })
        .collect()
}

/// What a merge unit needs from its worker and launch.
struct UnitEnv<'a> {
    job: &'a Job,
    chain: &'a [ChainPhase],
    run: u32,
    label: &'a str,
    outbox: &'a Outbox,
    cancel: &'a AtomicBool,
    deadline: Option<Instant>,
}

/// Merges the chunks of `phase` (events `ranges`) into its run artifacts and leaves a
/// [`provenance::MergedRecord`] for the commit. Nothing to do when the whole run is current.
fn merge_phase(
    u: &UnitEnv<'_>,
    trace: &PathBuf,
    phase: &str,
    ranges: &[[u64; 2]],
    phase_done: &dyn Fn(PhaseRecord),
) -> RunOutcome {
    let (job, run, label) = (u.job, u.run, u.label);
    let failed = |kind: FailureKind, message: String| RunOutcome::Failed {
        error: ErrorInfo {
            phase: phase.to_string(),
            kind,
            message,
        },
    };
    let Some((k, c)) = u
        .chain
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == phase && c.spec.active)
    else {
        return failed(
            PhaseErrorKind::InvalidInput.into(),
            format!("{phase} is not an active phase of the chain"),
        );
    };
    if whole_run_current(job, u.chain, run, trace) {
        tracing::info!("{label}: the whole run is up to date; nothing to merge in {phase}");
        phase_done(no_call(phase, PhaseStatus::UpToDate, None));
        return RunOutcome::Ok;
    }
    if u.cancel.load(Ordering::Relaxed) {
        phase_done(no_call(phase, PhaseStatus::NotRun, None));
        return RunOutcome::Interrupted {
            phase: phase.to_string(),
        };
    }
    let names: Vec<String> = u.chain.iter().map(|c| c.name.clone()).collect();
    let ws = c.workspace();
    let seed = spyral_core::seed::derive_seed(job.seed, run, &c.name);
    u.outbox.send(&WorkerMsg::PhaseStarted {
        run,
        phase: c.name.clone(),
    });
    let started = epoch_seconds();
    let sink = Sink {
        outbox: u.outbox,
        run,
        cancel: u.cancel,
        deadline: u.deadline,
        last: Mutex::new(Instant::now()),
        total: AtomicU64::new(0),
        phase: &c.name,
        earlier: &names[..k],
    };
    let ctx = RunContext::new(run, seed, &ws, &sink);
    let (w0, c0) = (Instant::now(), cpu_seconds());
    let span = tracing::info_span!("phase", name = %c.name, run);
    let out = match chunk_parts(c, run, ranges) {
        Ok(parts) => {
            tracing::info!(
                "calling {}.merge for run {run} ({} chunks)",
                c.name,
                parts.len()
            );
            span.in_scope(|| c.phase.merge(parts.as_slice().into(), &ctx).into_result())
        }
        Err(missing) => Err(spyral_core::PhaseError::invalid_input(missing.to_string())),
    };
    let (wall, cpu) = (w0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    let items = sink.total.load(Ordering::Relaxed);
    match out {
        Ok(r) if r.successful => {
            let merged = provenance::MergedRecord {
                format: provenance::RECORD_FORMAT,
                run,
                launch: job.launch.clone(),
                ranges: ranges.to_vec(),
                outputs: provenance::outputs(&r, &job.traces),
                metadata: serde_json::Value::Object(r.metadata_map()),
                started,
                finished: epoch_seconds(),
            };
            let path = provenance::merged_record_path(&ws.artifact_dir(), run);
            if let Err(e) = provenance::write_at(&path, &merged) {
                tracing::error!("{label}: cannot write {}: {e}", path.display());
                phase_done(record_of(
                    phase,
                    PhaseStatus::Failed,
                    Some(e.to_string()),
                    wall,
                    cpu,
                    items,
                    None,
                ));
                return failed(
                    PhaseErrorKind::Io.into(),
                    format!("cannot write {}: {e}", path.display()),
                );
            }
            tracing::info!("phase {} complete for {label} in {wall:.3} s", c.name);
            phase_done(record_of(
                phase,
                PhaseStatus::Ok,
                None,
                wall,
                cpu,
                items,
                Some(merged.metadata),
            ));
            RunOutcome::Ok
        }
        other => {
            let timed_out = u.deadline.is_some_and(|d| Instant::now() >= d);
            let timeout = timeout_error(job, run, phase);
            let interrupted = u.cancel.load(Ordering::Relaxed);
            let (kind, message, cancelled) = call_failure(other, timed_out, interrupted, timeout);
            tracing::error!("{label}: phase {phase} failed: {kind}: {message}");
            phase_done(record_of(
                phase,
                PhaseStatus::Failed,
                Some(format!("{kind}: {message}")),
                wall,
                cpu,
                items,
                None,
            ));
            if cancelled {
                RunOutcome::Interrupted {
                    phase: phase.to_string(),
                }
            } else {
                failed(kind, message)
            }
        }
    }
}

/// Writes the whole-run records of a merged run in chain order, from the merges of this launch
/// (each record names its upstream artifacts by content, as an unsplit run's would), then
/// removes the chunks. Nothing to write when the whole run is current.
fn commit_run(
    job: &Job,
    chain: &[ChainPhase],
    run: u32,
    trace: &PathBuf,
    ranges: &[[u64; 2]],
    label: &str,
    phase_done: &dyn Fn(PhaseRecord),
) -> RunOutcome {
    let failed = |phase: &str, kind: FailureKind, message: String| {
        tracing::error!("{label}: phase {phase} failed: {kind}: {message}");
        RunOutcome::Failed {
            error: ErrorInfo {
                phase: phase.to_string(),
                kind,
                message,
            },
        }
    };
    if whole_run_current(job, chain, run, trace) {
        tracing::info!("{label}: the whole run is up to date; nothing to commit");
        remove_chunk_dirs(chain, run, label);
        return RunOutcome::Ok;
    }
    let mut payload = PhaseResult::new(run).with_artifact("trace", trace);
    let mut after = None;
    for c in chain {
        let ws = c.workspace();
        if !c.spec.active {
            after = None;
            match c.phase.construct_artifact(&payload, &ws).into_result() {
                Ok(r) => payload = r,
                Err(e) => {
                    phase_done(no_call(&c.name, PhaseStatus::Failed, Some(e.to_string())));
                    return failed(&c.name, e.kind.into(), e.message().to_string());
                }
            }
            continue;
        }
        let dir = ws.artifact_dir();
        let path = provenance::merged_record_path(&dir, run);
        let merged = match provenance::read_merged(&path) {
            Some(m) if m.launch == job.launch && m.run == run && m.ranges == ranges => m,
            _ => {
                return failed(
                    &c.name,
                    PhaseErrorKind::InvalidInput.into(),
                    format!(
                        "the merge of this launch left no result for run {run} ({} is missing or from another launch)",
                        path.display()
                    ),
                )
            }
        };
        let seed = spyral_core::seed::derive_seed(job.seed, run, &c.name);
        let identity =
            Identity::of(c, &payload, job.seed_fixed.then_some(seed)).following(after.take());
        let record = provenance::Record {
            format: provenance::RECORD_FORMAT,
            run,
            hash: identity.hash(),
            identity,
            status: RecordStatus::Ok,
            error: None,
            outputs: merged.outputs,
            launch: job.launch.clone(),
            metadata: merged.metadata,
            started: merged.started,
            finished: merged.finished,
        };
        let record_path = provenance::record_path(&dir, run);
        if let Err(e) = provenance::write_at(&record_path, &record) {
            return failed(
                &c.name,
                PhaseErrorKind::Io.into(),
                format!("cannot write {}: {e}", record_path.display()),
            );
        }
        payload = provenance::result_of(&record);
        after = After::record(&c.name, &record);
    }
    tracing::info!("{label}: whole-run records written");
    remove_chunk_dirs(chain, run, label);
    RunOutcome::Ok
}

/// Runs `part` of `run` through the chain and reports it to the parent.
pub fn process_unit(
    job: &Job,
    chain: &[ChainPhase],
    run: u32,
    part: &Part,
    spent: std::time::Duration,
    outbox: &Outbox,
    cancel: &AtomicBool,
) {
    let t0 = Instant::now();
    // `run_timeout` is the run's: a unit of a split run has what its earlier units left.
    let deadline = job
        .run_timeout_s
        .map(|s| t0 + std::time::Duration::from_secs_f64(s).saturating_sub(spent));
    let label = format!("run {run}{part}");
    outbox.send(&WorkerMsg::RunStarted {
        run,
        part: part.clone(),
    });
    let finish = |outcome: RunOutcome| {
        outbox.send(&WorkerMsg::RunFinished {
            run,
            part: part.clone(),
            outcome,
            wall_s: t0.elapsed().as_secs_f64(),
        });
    };
    let phase_done = |record: PhaseRecord| {
        outbox.send(&WorkerMsg::PhaseFinished {
            run,
            part: part.clone(),
            record,
        });
    };
    let trace = crate::runs::trace_file(&job.traces, run);
    if !trace.exists() {
        tracing::warn!("{label}: trace file {} vanished; skipping", trace.display());
        finish(RunOutcome::Skipped {
            why: format!("trace file {} is missing", trace.display()),
        });
        return;
    }
    let unit = UnitEnv {
        job,
        chain,
        run,
        label: &label,
        outbox,
        cancel,
        deadline,
    };
    // The unit's locks are released before the parent hears that it ended: the next unit of
    // this run (a merge after its chunks, say) may start at once in another worker.
    finish(locked_unit(&unit, part, &trace, &phase_done));
}

/// Runs `part` of a run holding its locks (taken here, released on return) and says how it ended.
fn locked_unit(
    u: &UnitEnv<'_>,
    part: &Part,
    trace: &PathBuf,
    phase_done: &dyn Fn(PhaseRecord),
) -> RunOutcome {
    let UnitEnv {
        job,
        chain,
        run,
        label,
        outbox,
        cancel,
        deadline,
    } = *u;
    let expired = || deadline.is_some_and(|d| Instant::now() >= d);
    let _locks = match lock_unit(job, chain, run, part) {
        Ok(Ok(held)) => held,
        Ok(Err((phase, holder))) => {
            tracing::warn!(
                "{label}: phase {phase} is running in another launch ({holder}); going on"
            );
            return RunOutcome::InAnotherLaunch { phase, holder };
        }
        Err(e) => {
            tracing::error!("{label}: {e}");
            return RunOutcome::Failed {
                error: ErrorInfo {
                    phase: "(locking)".into(),
                    kind: PhaseErrorKind::Io.into(),
                    message: e.to_string(),
                },
            };
        }
    };
    // Holding the locks, the unit's temporary files are ours: any left are from a dead launch.
    for c in unit_phases(chain, part) {
        let dir = c.workspace.artifact_dir();
        let n = match part {
            Part::Chunk { first, last, .. } => locks::remove_chunk_partials(
                &spyral_core::chunk::chunk_dir(&dir, run),
                Some((*first, *last)),
            ),
            _ => locks::remove_run_partials(&dir, run),
        };
        if n > 0 {
            tracing::info!(
                "{label}: removed {n} temporary file(s) of an interrupted launch in {}",
                c.name
            );
        }
    }
    match part {
        Part::Merge { phase, ranges } => {
            return merge_phase(u, trace, phase, ranges, phase_done);
        }
        Part::Commit { ranges } => {
            return commit_run(job, chain, run, trace, ranges, label, phase_done);
        }
        Part::Whole | Part::Chunk { .. } => {}
    }
    let chunk = part.chunk();
    // A chunk unit runs one phase of the chain: its earlier phases were run by earlier units of
    // this chunk (their records give the payload), its later ones by later units.
    let target: Option<usize> = match part {
        Part::Chunk { phase, .. } => match chain.iter().position(|c| c.name == *phase) {
            Some(t) => Some(t),
            None => {
                return RunOutcome::Failed {
                    error: ErrorInfo {
                        phase: phase.clone(),
                        kind: PhaseErrorKind::InvalidInput.into(),
                        message: format!("{phase} is not a phase of the chain"),
                    },
                };
            }
        },
        _ => None,
    };
    let reported = |k: usize| target.is_none_or(|t| t == k);
    if chunk.is_some() && whole_run_current(job, chain, run, trace) {
        tracing::info!("{label}: the whole run is up to date; nothing to do");
        for (_, c) in chain.iter().enumerate().filter(|(k, _)| reported(*k)) {
            let status = if c.spec.active {
                PhaseStatus::UpToDate
            } else {
                PhaseStatus::Constructed
            };
            phase_done(no_call(&c.name, status, None));
        }
        return RunOutcome::Ok;
    }
    let mut payload = PhaseResult::new(run).with_artifact("trace", trace);
    let mut failure: Option<RunOutcome> = None;
    // The last active phase of this unit that ran (its outputs are new): every later active
    // phase reruns too, the rule `spyral status` predicts with.
    let mut upstream: Option<String> = None;
    // The record the next active phase follows (see `Identity::after`).
    let mut after: Option<After> = None;
    let names: Vec<String> = chain.iter().map(|c| c.name.clone()).collect();
    for (k, c) in chain.iter().enumerate() {
        if target.is_some_and(|t| k > t) {
            break;
        }
        let ws = c.workspace();
        if failure.is_some() {
            if !reported(k) {
                continue;
            }
            phase_done(no_call(&c.name, PhaseStatus::NotRun, None));
            continue;
        }
        if !c.spec.active {
            // Its artifacts are used as they are, whatever ran before.
            upstream = None;
            after = None;
            tracing::debug!("calling {}.construct_artifact for {label}", c.name);
            match c.phase.construct_artifact(&payload, &ws).into_result() {
                Ok(r) if !reported(k) => payload = r,
                Ok(r) => {
                    payload = r;
                    phase_done(no_call(&c.name, PhaseStatus::Constructed, None));
                }
                Err(e) => {
                    tracing::error!("{label}: {}.construct_artifact failed: {e}", c.name);
                    failure = Some(RunOutcome::Failed {
                        error: ErrorInfo {
                            phase: c.name.clone(),
                            kind: e.kind.into(),
                            message: e.message().to_string(),
                        },
                    });
                    phase_done(no_call(&c.name, PhaseStatus::Failed, Some(e.to_string())));
                }
            }
            continue;
        }
        if let (false, Some(ch)) = (reported(k), chunk) {
            // An earlier phase of this chunk: its result, as its own unit recorded it.
            let seed = spyral_core::seed::derive_seed(job.seed, run, &c.name);
            let (first, last) = (ch.events.first, ch.events.last);
            let identity = Identity::of(c, &payload, job.seed_fixed.then_some(seed))
                .for_chunk(first, last)
                .following(after.take());
            let path = provenance::chunk_record_path(&ws.artifact_dir(), run, first, last);
            match provenance::decide(&provenance::read(&path), &identity, false, None) {
                Decision::UpToDate(rec) => {
                    if rec.launch == job.launch {
                        // It ran in this launch: its outputs are new.
                        upstream = Some(c.name.clone());
                    }
                    payload = provenance::result_of(&rec);
                    after = After::record(&c.name, &rec);
                }
                Decision::Run(reason) => {
                    tracing::error!("{label}: the result of {} is not current: {reason}", c.name);
                    failure = Some(RunOutcome::Failed {
                        error: ErrorInfo {
                            phase: c.name.clone(),
                            kind: PhaseErrorKind::InvalidInput.into(),
                            message: format!(
                                "events {first}..={last}: the result of {} is not current ({reason})",
                                c.name
                            ),
                        },
                    });
                }
            }
            continue;
        }
        if expired() {
            failure = Some(RunOutcome::Failed {
                error: timeout_error(job, run, &c.name),
            });
            phase_done(no_call(&c.name, PhaseStatus::NotRun, None));
            continue;
        }
        if cancel.load(Ordering::Relaxed) {
            failure = Some(RunOutcome::Interrupted {
                phase: c.name.clone(),
            });
            phase_done(no_call(&c.name, PhaseStatus::NotRun, None));
            continue;
        }
        let seed = spyral_core::seed::derive_seed(job.seed, run, &c.name);
        let mut identity =
            Identity::of(c, &payload, job.seed_fixed.then_some(seed)).following(after.take());
        let artifact_dir = ws.artifact_dir();
        let record_path = match chunk {
            Some(ch) => {
                identity = identity.for_chunk(ch.events.first, ch.events.last);
                provenance::chunk_record_path(&artifact_dir, run, ch.events.first, ch.events.last)
            }
            None => provenance::record_path(&artifact_dir, run),
        };
        let forced = job.force.iter().any(|f| f == "*" || *f == c.name);
        let record = provenance::read(&record_path);
        let reason = match provenance::decide(&record, &identity, forced, upstream.as_deref()) {
            Decision::UpToDate(rec) => {
                tracing::info!("{label}: phase {} is up to date; not running it", c.name);
                payload = provenance::result_of(&rec);
                after = After::record(&c.name, &rec);
                phase_done(no_call(&c.name, PhaseStatus::UpToDate, None));
                continue;
            }
            Decision::Run(reason) => reason,
        };
        upstream = Some(c.name.clone());
        outbox.send(&WorkerMsg::PhaseStarted {
            run,
            phase: c.name.clone(),
        });
        let started_at = epoch_seconds();
        let sink = Sink {
            outbox,
            run,
            cancel,
            deadline,
            last: Mutex::new(Instant::now()),
            total: AtomicU64::new(0),
            phase: &c.name,
            earlier: &names[..k],
        };
        let mut ctx = RunContext::new(run, seed, &ws, &sink);
        if let Some(ch) = chunk {
            ctx = ctx.with_chunk(ch);
        }
        let (w0, c0) = (Instant::now(), cpu_seconds());
        // Every event logged during the call (the plugin's own, through the bridge, included)
        // carries the phase and the run.
        let span = tracing::info_span!("phase", name = %c.name, run);
        tracing::info!(
            "calling {}.run for {label} (seed {seed:#x}; {reason})",
            c.name
        );
        let out = span.in_scope(|| c.phase.run(&payload, &ctx).into_result());
        let (wall, cpu) = (w0.elapsed().as_secs_f64(), cpu_seconds() - c0);
        let items = sink.total.load(Ordering::Relaxed);
        let mut prov = provenance::Record {
            format: provenance::RECORD_FORMAT,
            run,
            hash: identity.hash(),
            identity,
            status: RecordStatus::Ok,
            error: None,
            outputs: Vec::new(),
            launch: job.launch.clone(),
            metadata: serde_json::Value::Null,
            started: started_at,
            finished: 0.0,
        };
        match out {
            Ok(r) if r.successful => {
                tracing::info!("phase {} complete for {label} in {wall:.3} s", c.name);
                prov.outputs = provenance::outputs(&r, &job.traces);
                prov.metadata = serde_json::Value::Object(r.metadata_map());
                prov.finished = epoch_seconds();
                if let Err(e) = provenance::write_at(&record_path, &prov) {
                    tracing::warn!("{label}: cannot write the provenance of {}: {e}", c.name);
                }
                after = After::record(&c.name, &prov);
                let meta = serde_json::Value::Object(r.metadata_map());
                let mut rec =
                    record_of(&c.name, PhaseStatus::Ok, None, wall, cpu, items, Some(meta));
                rec.reason = Some(reason);
                phase_done(rec);
                payload = r;
            }
            other => {
                let (kind, message, cancelled) = call_failure(
                    other,
                    expired(),
                    cancel.load(Ordering::Relaxed),
                    timeout_error(job, run, &c.name),
                );
                tracing::error!("{label}: phase {} failed: {kind}: {message}", c.name);
                if !cancelled {
                    prov.status = RecordStatus::Failed;
                    prov.error = Some(format!("{kind}: {message}"));
                    prov.finished = epoch_seconds();
                    if let Err(e) = provenance::write_at(&record_path, &prov) {
                        tracing::warn!("{label}: cannot record the failure of {}: {e}", c.name);
                    }
                }
                let mut rec = record_of(
                    &c.name,
                    PhaseStatus::Failed,
                    Some(format!("{kind}: {message}")),
                    wall,
                    cpu,
                    items,
                    None,
                );
                rec.reason = Some(reason);
                phase_done(rec);
                failure = Some(if cancelled {
                    RunOutcome::Interrupted {
                        phase: c.name.clone(),
                    }
                } else {
                    RunOutcome::Failed {
                        error: ErrorInfo {
                            phase: c.name.clone(),
                            kind,
                            message,
                        },
                    }
                });
            }
        }
    }
    if failure.is_none() && chunk.is_none() {
        remove_chunk_dirs(chain, run, label);
    }
    failure.unwrap_or(RunOutcome::Ok)
}
