//! The worker process (`spyral worker`, hidden): rebuilds the validated chain, attaches the
//! shared segments, then asks the parent for units of work one at a time (whole runs, event
//! chunks, merges) and hands each to `execute`, streaming typed messages back.
//!
//! The worker never reads the pipeline file: the job message carries the chain the parent
//! validated (kinds, names, resolved configs, libraries and their code identities). A phase
//! error fails only its unit and the worker goes on. Before every plugin call the worker logs
//! what it is about to call, so a crash can be located from the log. The worker dies with its
//! parent (PR_SET_PDEATHSIG).

use crate::chain::{self, ChainPhase};
use crate::protocol::{Assign, Job, WorkerMsg};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
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
        Err(e) => {
            let message = e.to_string();
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
        let spent = std::time::Duration::try_from_secs_f64(assign.spent_s).unwrap_or_default();
        crate::execute::process_unit(&job, &chain, run, &assign.part, spent, &outbox, &cancel);
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

/// Why a worker could not get ready to take runs (it reports this to the parent and exits).
#[derive(Debug, thiserror::Error)]
enum SetupError {
    /// The pipeline's folder (against which configs resolve relative paths) is unreachable.
    #[error("cannot enter the pipeline folder {path}: {source}")]
    Folder {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The chain the parent validated could not be rebuilt here.
    #[error(transparent)]
    Chain(#[from] chain::ChainError),
    /// A shared segment could not be mapped.
    #[error(transparent)]
    Attach(#[from] crate::segments::AttachError),
    /// A phase refused its shared segments.
    #[error("phase {phase}: attach_shared failed: {error}")]
    AttachShared {
        phase: String,
        error: spyral_core::PhaseError,
    },
}

fn setup(job: &Job) -> Result<(Vec<ChainPhase>, f64), SetupError> {
    // Phase configs resolve relative paths against the pipeline's folder, as in the parent.
    std::env::set_current_dir(&job.base_dir).map_err(|source| SetupError::Folder {
        path: job.base_dir.clone(),
        source,
    })?;
    let mut chain = chain::rebuild(&job.chain, &job.workspace, &job.traces)?;
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
            .map_err(|error| SetupError::AttachShared {
                phase: c.name.clone(),
                error,
            })?;
    }
    Ok((chain, t_attach.elapsed().as_secs_f64() * 1e3))
}
