//! The worker process (`spyral worker`, hidden): loads the plugins, constructs the phases,
//! attaches the shared segments, then asks the parent for runs one at a time and pushes each
//! through the chain, streaming typed messages back.
//!
//! The worker never reads the pipeline file: the job message carries the chain the parent
//! validated (kinds, names, resolved configs, libraries and their code identities). Before a
//! run, the worker takes the run's (run, phase) locks (see `locks`); a run another launch holds
//! is reported and left to it. Whether each phase runs is decided by `provenance::decide`.
//!
//! A phase error fails only its run (the later phases of that run are not called) and the worker
//! goes on. Before every plugin call the worker logs what it is about to call, so a crash can be
//! located from the log. The worker dies with its parent (PR_SET_PDEATHSIG).

use crate::chain::{self, ChainPhase};
use crate::locks;
use crate::protocol::{Assign, ErrorInfo, Job, PhaseRecord, PhaseStatus, RunOutcome, WorkerMsg};
use crate::provenance::{self, Decision, Identity, RecordStatus};
use abi_stable::std_types::RStr;
use spyral_core::{LogLevel, PhaseErrorKind, PhaseResult, RunContext, RunSink};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The message stream to the parent.
pub struct Outbox {
    out: Mutex<std::fs::File>,
}

impl Outbox {
    /// Takes over the process's stdout for messages and points fd 1 at stderr, so prints from
    /// plugins land in the captured stderr instead of corrupting the stream.
    pub fn take_stdout() -> std::io::Result<Outbox> {
        let dup = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3)?;
        rustix::stdio::dup2_stdout(rustix::stdio::stderr())?;
        Ok(Outbox {
            out: Mutex::new(std::fs::File::from(dup)),
        })
    }
    /// Sends one message (a JSON line). Errors mean the parent is gone: exit.
    pub fn send(&self, msg: &WorkerMsg) {
        self.send_json(msg);
    }
    /// Sends any serializable message as one JSON line. Errors mean the parent is gone: exit.
    pub fn send_json<T: serde::Serialize>(&self, msg: &T) {
        let mut line = serde_json::to_string(msg).unwrap_or_default();
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if out.write_all(line.as_bytes()).is_err() {
            std::process::exit(4);
        }
    }
}

/// Seconds since the epoch.
pub fn epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// CPU seconds used by this process.
pub fn cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Peak resident set size of this process in KiB (VmHWM).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct Sink<'a> {
    outbox: &'a Outbox,
    run: u32,
    cancel: &'a AtomicBool,
    /// When the run's time limit expires (phases are then asked to stop).
    deadline: Option<Instant>,
    last: Mutex<Instant>,
    total: AtomicU64,
    phase: &'a str,
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
}

/// Entry point of `spyral worker`. Returns the process exit code.
pub fn main() -> i32 {
    let started = Instant::now();
    let outbox = match Outbox::take_stdout() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("spyral worker: cannot set up the message stream: {e}");
            return 3;
        }
    };
    // Die with the parent.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if let Ok(ppid) = std::env::var("SPYRAL_PARENT_PID") {
        let alive = rustix::process::getppid().map(|p| p.as_raw_nonzero().get().to_string());
        if alive.as_deref() != Some(ppid.as_str()) {
            return 5;
        }
    }
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    if stdin.read_line(&mut line).unwrap_or(0) == 0 {
        eprintln!("spyral worker: no job on stdin (this command is started by `spyral run`)");
        return 3;
    }
    let job: Job = match serde_json::from_str(&line) {
        Ok(j) => j,
        Err(e) => {
            outbox.send(&WorkerMsg::Fatal {
                message: format!("bad job message: {e}"),
            });
            return 3;
        }
    };
    if let Err(e) = crate::logs::init_file_logging(&job.log_file, &job.log_level, None) {
        eprintln!(
            "spyral worker: cannot open log {}: {e}",
            job.log_file.display()
        );
    }
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&cancel));
    }
    tracing::info!(
        "worker {} started (pid {}), pipeline {} as validated by the parent",
        job.worker,
        std::process::id(),
        job.pipeline.display()
    );
    let (chain, attach) = match setup(&job) {
        Ok(pair) => pair,
        Err(message) => {
            tracing::error!("{message}");
            outbox.send(&WorkerMsg::Fatal { message });
            return 3;
        }
    };
    let startup_ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::info!("ready after {startup_ms:.1} ms (attaching shared segments: {attach:.3} ms)");
    outbox.send(&WorkerMsg::Ready {
        startup_ms,
        attach_ms: attach,
    });
    loop {
        if cancel.load(Ordering::Relaxed) {
            tracing::warn!("stop requested: not taking more runs");
            break;
        }
        outbox.send(&WorkerMsg::Next);
        line.clear();
        if stdin.read_line(&mut line).unwrap_or(0) == 0 {
            tracing::warn!("the parent closed the job stream; exiting");
            break;
        }
        let assign: Assign = match serde_json::from_str(&line) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("bad assignment from the parent: {e}");
                break;
            }
        };
        let Some(run) = assign.run else { break };
        inject_fault(run);
        process_run(&job, &chain, run, &outbox, &cancel);
    }
    let peak = peak_rss_kib();
    tracing::info!("worker {} done, peak RSS {} KiB", job.worker, peak);
    outbox.send(&WorkerMsg::Done { peak_rss_kib: peak });
    0
}

/// Fault injection for the end-to-end tests: `SPYRAL_FAULT=die-after-assign:RUN@MARKER` makes
/// the worker abort when it is handed RUN, before it reports the run started; it fires once
/// (the first worker to remove MARKER). Without the variable this does nothing.
fn inject_fault(run: u32) {
    let Ok(spec) = std::env::var("SPYRAL_FAULT") else {
        return;
    };
    let Some((r, marker)) = spec
        .strip_prefix("die-after-assign:")
        .and_then(|rest| rest.split_once('@'))
    else {
        return;
    };
    if r.parse::<u32>().ok() == Some(run) && std::fs::remove_file(marker).is_ok() {
        tracing::warn!("SPYRAL_FAULT: aborting after being handed run {run}");
        std::process::abort();
    }
}

fn setup(job: &Job) -> Result<(Vec<ChainPhase>, f64), String> {
    // Phase configs resolve relative paths against the pipeline's folder, as in the parent.
    std::env::set_current_dir(&job.base_dir).map_err(|e| {
        format!(
            "cannot enter the pipeline folder {}: {e}",
            job.base_dir.display()
        )
    })?;
    let mut chain =
        chain::rebuild(&job.chain, &job.workspace, &job.traces).map_err(|e| e.to_string())?;
    let t_attach = Instant::now();
    let segments = crate::segments::attach(&job.segments)?;
    for c in chain.iter_mut().filter(|c| c.spec.active) {
        let mine: Vec<_> = segments
            .iter()
            .filter(|s| s.info.phase.as_str() == c.name)
            .copied()
            .collect();
        if mine.is_empty() {
            continue;
        }
        tracing::info!(
            "calling {}.attach_shared with {} segment(s)",
            c.name,
            mine.len()
        );
        c.phase
            .attach_shared(mine.into())
            .into_result()
            .map_err(|e| format!("phase {}: attach_shared failed: {e}", c.name))?;
    }
    Ok((chain, t_attach.elapsed().as_secs_f64() * 1e3))
}

/// Takes the (run, phase) lock of every active phase of `run`. `Err((phase, holder))` when
/// another launch holds one of them (nothing is kept then).
fn lock_run(
    job: &Job,
    chain: &[ChainPhase],
    run: u32,
) -> Result<Result<Vec<locks::Lock>, (String, String)>, locks::LockError> {
    let me = format!(
        "pid {} worker {} launch {}",
        std::process::id(),
        job.worker,
        job.launch
    );
    let mut held = Vec::new();
    for c in chain.iter().filter(|c| c.spec.active) {
        let path = locks::run_lock_path(&job.workspace, &c.name, run);
        match locks::try_lock(&path, &me)? {
            Some(l) => held.push(l),
            None => {
                let who = std::fs::read_to_string(&path).unwrap_or_default();
                return Ok(Err((c.name.clone(), who.trim().to_string())));
            }
        }
    }
    Ok(Ok(held))
}

fn process_run(job: &Job, chain: &[ChainPhase], run: u32, outbox: &Outbox, cancel: &AtomicBool) {
    let t0 = Instant::now();
    let deadline = job
        .run_timeout_s
        .map(|s| t0 + std::time::Duration::from_secs_f64(s));
    let expired = || deadline.is_some_and(|d| Instant::now() >= d);
    let timeout_error = |phase: &str| ErrorInfo {
        phase: phase.to_string(),
        kind: "timeout".into(),
        message: format!(
            "run {run} exceeded run_timeout ({} s) in phase {phase}",
            job.run_timeout_s.unwrap_or(0.0)
        ),
    };
    outbox.send(&WorkerMsg::RunStarted { run });
    let finish = |outcome: RunOutcome| {
        outbox.send(&WorkerMsg::RunFinished {
            run,
            outcome,
            wall_s: t0.elapsed().as_secs_f64(),
        });
    };
    let trace = crate::runs::trace_file(&job.traces, run);
    if !trace.exists() {
        tracing::warn!(
            "run {run}: trace file {} vanished; skipping",
            trace.display()
        );
        finish(RunOutcome::Skipped {
            why: format!("trace file {} is missing", trace.display()),
        });
        return;
    }
    let _locks = match lock_run(job, chain, run) {
        Ok(Ok(held)) => held,
        Ok(Err((phase, holder))) => {
            tracing::warn!(
                "run {run}: phase {phase} is running in another launch ({holder}); going on"
            );
            finish(RunOutcome::InAnotherLaunch { phase, holder });
            return;
        }
        Err(e) => {
            tracing::error!("run {run}: {e}");
            finish(RunOutcome::Failed {
                error: ErrorInfo {
                    phase: "(locking)".into(),
                    kind: "i/o error".into(),
                    message: e.to_string(),
                },
            });
            return;
        }
    };
    // Holding the run's locks, its temporary files are ours: any left are from a dead launch.
    for c in chain.iter().filter(|c| c.spec.active) {
        let n = locks::remove_run_partials(&c.workspace.artifact_dir(), run);
        if n > 0 {
            tracing::info!(
                "run {run}: removed {n} temporary file(s) of an interrupted launch in {}",
                c.name
            );
        }
    }
    let mut payload = PhaseResult::new(run).with_artifact("trace", &trace);
    let mut failure: Option<RunOutcome> = None;
    // The last active phase of this run that ran (its outputs are new): every later active
    // phase reruns too, the rule `spyral status` predicts with.
    let mut upstream: Option<String> = None;
    for c in chain {
        let ws = c.workspace();
        if failure.is_some() {
            outbox.send(&WorkerMsg::PhaseFinished {
                run,
                record: record_of(&c.name, PhaseStatus::NotRun, None, 0.0, 0.0, 0, None),
            });
            continue;
        }
        if !c.spec.active {
            // Its artifacts are used as they are, whatever ran before.
            upstream = None;
            tracing::debug!("calling {}.construct_artifact for run {run}", c.name);
            match c.phase.construct_artifact(&payload, &ws).into_result() {
                Ok(r) => {
                    payload = r;
                    outbox.send(&WorkerMsg::PhaseFinished {
                        run,
                        record: record_of(
                            &c.name,
                            PhaseStatus::Constructed,
                            None,
                            0.0,
                            0.0,
                            0,
                            None,
                        ),
                    });
                }
                Err(e) => {
                    tracing::error!("run {run}: {}.construct_artifact failed: {e}", c.name);
                    failure = Some(RunOutcome::Failed {
                        error: ErrorInfo {
                            phase: c.name.clone(),
                            kind: e.kind.to_string(),
                            message: e.message().to_string(),
                        },
                    });
                    outbox.send(&WorkerMsg::PhaseFinished {
                        run,
                        record: record_of(
                            &c.name,
                            PhaseStatus::Failed,
                            Some(e.to_string()),
                            0.0,
                            0.0,
                            0,
                            None,
                        ),
                    });
                }
            }
            continue;
        }
        if expired() {
            failure = Some(RunOutcome::Failed {
                error: timeout_error(&c.name),
            });
            outbox.send(&WorkerMsg::PhaseFinished {
                run,
                record: record_of(&c.name, PhaseStatus::NotRun, None, 0.0, 0.0, 0, None),
            });
            continue;
        }
        if cancel.load(Ordering::Relaxed) {
            failure = Some(RunOutcome::Interrupted {
                phase: c.name.clone(),
            });
            outbox.send(&WorkerMsg::PhaseFinished {
                run,
                record: record_of(&c.name, PhaseStatus::NotRun, None, 0.0, 0.0, 0, None),
            });
            continue;
        }
        let seed = spyral_core::seed::derive_seed(job.seed, run, &c.name);
        let identity = Identity::of(c, &payload, job.seed_fixed.then_some(seed));
        let artifact_dir = ws.artifact_dir();
        let forced = job.force.iter().any(|f| f == "*" || *f == c.name);
        let record = provenance::read(&provenance::record_path(&artifact_dir, run));
        let reason = match provenance::decide(&record, &identity, forced, upstream.as_deref()) {
            Decision::UpToDate(rec) => {
                tracing::info!("run {run}: phase {} is up to date; not running it", c.name);
                payload = provenance::result_of(&rec);
                outbox.send(&WorkerMsg::PhaseFinished {
                    run,
                    record: record_of(&c.name, PhaseStatus::UpToDate, None, 0.0, 0.0, 0, None),
                });
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
        };
        let ctx = RunContext::new(run, seed, &ws, &sink);
        tracing::info!(
            "calling {}.run for run {run} (seed {seed:#x}; {reason})",
            c.name
        );
        let (w0, c0) = (Instant::now(), cpu_seconds());
        // Every event logged during the call (the plugin's own, through the bridge, included)
        // carries the phase and the run.
        let span = tracing::info_span!("phase", name = %c.name, run);
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
            started: started_at,
            finished: 0.0,
        };
        match out {
            Ok(r) if r.successful => {
                tracing::info!("phase {} complete for run {run} in {wall:.3} s", c.name);
                prov.outputs = provenance::outputs(&r, &job.traces);
                prov.finished = epoch_seconds();
                if let Err(e) = provenance::write(&artifact_dir, &prov) {
                    tracing::warn!("run {run}: cannot write the provenance of {}: {e}", c.name);
                }
                let meta = serde_json::Value::Object(r.metadata_map());
                let mut rec =
                    record_of(&c.name, PhaseStatus::Ok, None, wall, cpu, items, Some(meta));
                rec.reason = Some(reason);
                outbox.send(&WorkerMsg::PhaseFinished { run, record: rec });
                payload = r;
            }
            other => {
                let (mut kind, mut message, mut cancelled) = match other {
                    Ok(_) => (
                        "invalid result".to_string(),
                        "the phase returned an unsuccessful result".to_string(),
                        false,
                    ),
                    Err(e) => (
                        e.kind.to_string(),
                        e.message().to_string(),
                        e.kind == PhaseErrorKind::Cancelled,
                    ),
                };
                if cancelled && expired() && !cancel.load(Ordering::Relaxed) {
                    // Stopped by the run's time limit, not by an interrupt: a failure.
                    let t = timeout_error(&c.name);
                    (kind, message, cancelled) = (t.kind, t.message, false);
                }
                tracing::error!("run {run}: phase {} failed: {kind}: {message}", c.name);
                if !cancelled {
                    prov.status = RecordStatus::Failed;
                    prov.error = Some(format!("{kind}: {message}"));
                    prov.finished = epoch_seconds();
                    if let Err(e) = provenance::write(&artifact_dir, &prov) {
                        tracing::warn!("run {run}: cannot record the failure of {}: {e}", c.name);
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
                outbox.send(&WorkerMsg::PhaseFinished { run, record: rec });
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
    finish(failure.unwrap_or(RunOutcome::Ok));
}

fn record_of(
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
    }
}
