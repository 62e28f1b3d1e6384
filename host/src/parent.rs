//! The parent side of `spyral run` and `spyral assets`.
//!
//! Steps, in order: load and validate the pipeline and its chain (nothing is created before
//! this succeeds); create the workspace folders and the launch's log folder; `create_assets` and
//! `create_shared_data` for each active phase; collect and plan the runs; spawn the workers
//! (the same executable, `spyral worker`, in their own process group); hand out runs, draw
//! progress, record results; on a worker's death, report it and give its unstarted runs to the
//! others; write `report.json`, print the summary.

use crate::chain::{self, PhaseView};
use crate::pipeline::{OnError, Pipeline, Schedule};
use crate::plugin_host::{PluginHost, Refused};
use crate::protocol::{Assign, Job, PhaseRecord, PhaseStatus, RunOutcome, WorkerMsg};
use crate::runs::{self, Collected, Run};
use crate::segments::{human_bytes, Segment};
use crossbeam_channel::{unbounded, Sender};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Errors before any run starts.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Pipeline file problem.
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// Plugin problem.
    #[error(transparent)]
    Plugin(#[from] crate::plugins::PluginError),
    /// Chain problem.
    #[error(transparent)]
    Chain(#[from] chain::ChainError),
    /// File system problem.
    #[error("{0}")]
    Io(String),
    /// The plugin host failed or crashed.
    #[error(transparent)]
    Host(#[from] crate::plugin_host::HostError),
    /// A phase's create_assets / create_shared_data failed.
    #[error("phase {phase}: {what} failed: {message}")]
    Phase {
        /// Phase name.
        phase: String,
        /// Which call.
        what: &'static str,
        /// Its error.
        message: String,
    },
    /// No runs to process.
    #[error("no runs found: no non-empty run_NNNN.h5 for runs {min}..={max} in {traces}{detail}")]
    NoRuns {
        /// Trace folder.
        traces: PathBuf,
        /// Range.
        min: u32,
        /// Range.
        max: u32,
        /// What was seen.
        detail: String,
    },
}

/// Command-line overrides of the pipeline file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--runs`.
    pub runs: Option<(u32, u32)>,
    /// `--skip`.
    pub skip: Option<runs::RunSet>,
    /// `--workers`.
    pub workers: Option<usize>,
    /// `--schedule`.
    pub schedule: Option<Schedule>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--traces`.
    pub traces: Option<PathBuf>,
    /// `--on-error`.
    pub on_error: Option<OnError>,
    /// `--shard K/N`: process only shard K (0-based) of N.
    pub shard: Option<(usize, usize)>,
    /// `--run-timeout`.
    pub run_timeout: Option<crate::pipeline::RunTimeout>,
}

/// Parses `--shard K/N`, or `slurm` (from `SLURM_ARRAY_TASK_ID` and `SLURM_ARRAY_TASK_COUNT`).
pub fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let (k, n) = if text == "slurm" {
        let get = |v: &str| {
            std::env::var(v).map_err(|_| {
                format!("--shard slurm: {v} is not set (not inside a SLURM array job?)")
            })
        };
        (get("SLURM_ARRAY_TASK_ID")?, get("SLURM_ARRAY_TASK_COUNT")?)
    } else {
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("--shard `{text}`: expected K/N (e.g. 0/8) or slurm"))?;
        (k.to_string(), n.to_string())
    };
    let k: usize = k
        .trim()
        .parse()
        .map_err(|_| format!("--shard: `{k}` is not a number"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("--shard: `{n}` is not a number"))?;
    if n == 0 || k >= n {
        return Err(format!(
            "--shard {k}/{n}: K must be in 0..N and N at least 1"
        ));
    }
    Ok((k, n))
}

/// The runs of shard `k` of `n`: the snake plan of all runs over `n` shards (balanced by size).
pub fn shard_runs(all: &[Run], k: usize, n: usize) -> Vec<Run> {
    let plan = runs::snake(all, n);
    plan.into_iter()
        .find(|s| s.worker == k)
        .map(|s| {
            s.runs
                .iter()
                .filter_map(|r| all.iter().find(|x| x.run == *r).cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// Loads `path` and applies `o`.
pub fn load_pipeline(path: &Path, o: &Overrides) -> Result<Pipeline, RunError> {
    let mut p = Pipeline::load(path)?;
    if let Some((a, b)) = o.runs {
        p.runs.min = a;
        p.runs.max = b;
    }
    if let Some(s) = &o.skip {
        p.runs.skip = s.clone();
    }
    if let Some(w) = o.workers {
        if w == 0 {
            return Err(RunError::Io("--workers must be at least 1".into()));
        }
        p.workers = w;
    }
    if let Some(s) = o.schedule {
        p.schedule = s;
    }
    if o.seed.is_some() {
        p.seed = o.seed;
    }
    if let Some(t) = &o.traces {
        p.traces = std::path::absolute(t).unwrap_or(t.clone());
    }
    if let Some(e) = o.on_error {
        p.on_error = e;
    }
    if o.run_timeout.is_some() {
        p.run_timeout = o.run_timeout;
    }
    crate::segments::memory_margin().map_err(|e| RunError::Io(e.to_string()))?;
    if p.runs.min > p.runs.max {
        return Err(RunError::Io(format!(
            "run range {}..={} is empty",
            p.runs.min, p.runs.max
        )));
    }
    Ok(p)
}

/// Makes the pipeline file's folder the current directory, so relative paths inside phase
/// configurations (gas files, particle-ID gates, pad maps) are relative to the pipeline file,
/// in the parent and in every worker. All of the host's own paths are absolute by then.
pub fn enter_pipeline_dir(p: &Pipeline) -> Result<(), RunError> {
    let dir = p
        .path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::env::set_current_dir(dir).map_err(|e| {
        RunError::Io(format!(
            "cannot enter the pipeline folder {}: {e}",
            dir.display()
        ))
    })
}

/// Starts the plugin host and has it load the plugins, build and validate the chain (plugin
/// code never runs in this process); then checks that no output folder of the workspace touches
/// the trace folder. Nothing is created on disk.
pub fn prepare(p: &Pipeline, log_level: &str) -> Result<Prepared, RunError> {
    enter_pipeline_dir(p)?;
    let mut host = PluginHost::start()?;
    let (chain, refused) = host.build(p, log_level)?;
    let names: Vec<&str> = chain.iter().map(|c| c.name()).collect();
    crate::pipeline::check_layout(p, &names)?;
    Ok(Prepared {
        host,
        chain,
        refused,
    })
}

/// A validated chain and the plugin host that holds its phases.
pub struct Prepared {
    /// The plugin host process.
    pub host: PluginHost,
    /// The phases, as the host reported them.
    pub chain: Vec<PhaseView>,
    /// Libraries found but refused while searching.
    pub refused: Vec<Refused>,
}

fn mkdir(path: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(path)
        .map_err(|e| RunError::Io(format!("cannot create folder {}: {e}", path.display())))
}

/// Creates the workspace: a folder per phase for artifacts and one for assets.
pub fn create_workspace(p: &Pipeline, chain: &[PhaseView]) -> Result<(), RunError> {
    mkdir(&p.workspace)?;
    for c in chain {
        let ws = c.workspace(p);
        mkdir(&ws.artifact_dir())?;
        mkdir(&ws.asset_dir())?;
    }
    Ok(())
}

/// What this process writes into lock files it holds.
pub fn lock_holder(launch: &Path) -> String {
    format!(
        "pid {} launch {}",
        std::process::id(),
        launch
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}

/// Writes the full layout report of every refused library into the launch folder, once each
/// (create-new: an existing file, or a planted link, is never written through).
fn write_layout_reports(launch: &Path, refused: &[Refused]) {
    for r in refused {
        let (Some(full), Some(path)) = (&r.full_report, &r.path) else {
            continue;
        };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "library".into());
        let file = launch.join(format!("layout-report-{stem}.txt"));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, full.as_bytes()));
        match written {
            Ok(()) => tracing::warn!(
                "refused plugin library {}; full layout report in {}",
                path.display(),
                file.display()
            ),
            Err(e) => tracing::warn!(
                "refused plugin library {}; cannot write its layout report {}: {e}",
                path.display(),
                file.display()
            ),
        }
    }
    for r in refused.iter().filter(|r| r.full_report.is_none()) {
        tracing::warn!("refused while searching: {}", r.message);
    }
}

/// Safety margin kept free when allocating shared segments.
/// (`load_pipeline` has refused a bad `SPYRAL_MEMORY_MARGIN_MIB` before anything runs.)
pub fn segment_budget() -> u64 {
    crate::segments::segment_budget().unwrap_or(0)
}

/// Seconds spent per phase.
pub type PhaseSeconds = Vec<(String, f64)>;

/// Options of `spyral run` that are not pipeline overrides.
#[derive(Debug, Clone)]
pub struct RunFlags {
    /// Draw no progress bars.
    pub no_display: bool,
    /// Log level for the files.
    pub log_level: String,
    /// Phases to force (resume).
    pub force: Vec<String>,
}

/// Where a run stands in a launch.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RunStatus {
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

#[derive(Debug, Clone, Serialize)]
struct RunReport {
    run: u32,
    bytes: u64,
    worker: Option<usize>,
    status: RunStatus,
    /// Every active phase was already up to date: nothing ran.
    up_to_date: bool,
    error: Option<String>,
    wall_s: f64,
    phases: Vec<PhaseRecord>,
}

#[derive(Debug, Serialize)]
struct SegmentReport {
    phase: String,
    name: String,
    bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
struct SharedReport {
    phase: String,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct WorkerReport {
    worker: usize,
    startup_ms: Option<f64>,
    attach_ms: Option<f64>,
    peak_rss_kib: Option<u64>,
    exit: String,
}

#[derive(Debug, Serialize)]
struct Report {
    pipeline: PathBuf,
    workspace: PathBuf,
    seed: u64,
    workers: usize,
    schedule: Schedule,
    wall_s: f64,
    interrupted: bool,
    runs_ok: usize,
    runs_up_to_date: usize,
    runs_failed: usize,
    runs_skipped: usize,
    runs_in_another_launch: usize,
    runs_not_started: usize,
    replacement_workers: usize,
    /// Files named like runs in the range that could not be used, with the reason.
    unusable: Vec<String>,
    segments: Vec<SegmentReport>,
    shared_data_seconds: Vec<SharedReport>,
    parent_peak_rss_kib: u64,
    worker_reports: Vec<WorkerReport>,
    runs: Vec<RunReport>,
}

enum Event {
    Msg(usize, WorkerMsg),
    BadLine(usize, String),
    Exited(usize, String, bool),
    Signal(i32),
    Tick,
}

struct WorkerState {
    index: usize,
    pid: u32,
    stdin: Option<ChildStdin>,
    own: VecDeque<u32>,
    /// The run handed out last and not yet finished (started or not).
    assigned: Option<u32>,
    /// When the current run started.
    run_started: Option<Instant>,
    /// Killed for passing the run time limit.
    timed_out: bool,
    current_run: Option<u32>,
    current_phase: Option<String>,
    parked: bool,
    alive: bool,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    startup_ms: Option<f64>,
    attach_ms: Option<f64>,
    spawned: Instant,
    peak_rss_kib: Option<u64>,
    exit: String,
    bar: Option<ProgressBar>,
    done: u64,
    total: u64,
}

impl WorkerState {
    fn assign(&mut self, run: Option<u32>) {
        self.parked = false;
        self.assigned = run;
        if let Some(stdin) = self.stdin.as_mut() {
            let mut line = serde_json::to_string(&Assign { run }).unwrap_or_default();
            line.push('\n');
            let _ = stdin.write_all(line.as_bytes());
            let _ = stdin.flush();
        }
        if run.is_none() {
            self.stdin = None;
        }
    }
    fn signal(&self, sig: rustix::process::Signal) {
        if !self.alive {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }
    fn describe(&self) -> String {
        match (&self.current_run, &self.current_phase) {
            (Some(r), Some(p)) => format!("run {r} | {p} {}/{}", self.done, self.total),
            (Some(r), None) => format!("run {r}"),
            _ => "idle".to_string(),
        }
    }
}

fn spawn_worker(index: usize, job: &Job, tx: &Sender<Event>) -> Result<WorkerState, RunError> {
    // `/proc/self/exe` is the running file even if the path it was started from has been
    // replaced since (a rebuild during the launch): workers run the parent's exact code.
    let exe = PathBuf::from("/proc/self/exe");
    use std::os::unix::process::CommandExt;
    let spawned = Instant::now();
    let mut child = Command::new(exe)
        .arg("worker")
        .env("SPYRAL_PARENT_PID", std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| RunError::Io(format!("cannot start worker {index}: {e}")))?;
    let mut stdin = child.stdin.take();
    if let Some(s) = stdin.as_mut() {
        let mut line = serde_json::to_string(job).unwrap_or_default();
        line.push('\n');
        let _ = s.write_all(line.as_bytes());
    }
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let tail: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new(VecDeque::new()));
    let err_thread = {
        let tail = Arc::clone(&tail);
        std::thread::spawn(move || {
            if let Some(e) = stderr {
                for line in BufReader::new(e).lines().map_while(Result::ok) {
                    tracing::debug!(worker = index, "stderr: {line}");
                    let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                    t.push_back(line);
                    if t.len() > 40 {
                        t.pop_front();
                    }
                }
            }
        })
    };
    let pid = child.id();
    {
        // One thread per worker reads its messages in order, then reaps it: the exit event
        // always comes after the worker's last message.
        let tx = tx.clone();
        std::thread::spawn(move || {
            if let Some(out) = stdout {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let ev = match serde_json::from_str::<WorkerMsg>(&line) {
                        Ok(m) => Event::Msg(index, m),
                        Err(_) => Event::BadLine(index, line),
                    };
                    let _ = tx.send(ev);
                }
            }
            let _ = err_thread.join();
            let (text, ok) = match child.wait() {
                Ok(s) => describe_exit(s),
                Err(e) => (format!("wait failed: {e}"), false),
            };
            let _ = tx.send(Event::Exited(index, text, ok));
        });
    }
    Ok(WorkerState {
        index,
        pid,
        stdin,
        own: VecDeque::new(),
        assigned: None,
        run_started: None,
        timed_out: false,
        current_run: None,
        current_phase: None,
        parked: false,
        alive: true,
        stderr_tail: tail,
        startup_ms: None,
        attach_ms: None,
        spawned,
        peak_rss_kib: None,
        exit: String::new(),
        bar: None,
        done: 0,
        total: 0,
    })
}

/// Work stealing: a worker with nothing left takes the last planned run of the worker whose
/// own queue holds the most bytes (a snake plan is an initial order, not a cage: an idle worker
/// never waits while another has runs queued behind a long one).
fn steal(workers: &mut [WorkerState], thief: usize, sizes: &HashMap<u32, u64>) -> Option<u32> {
    let victim = workers
        .iter()
        .filter(|w| w.alive && w.index != thief && !w.own.is_empty())
        .max_by_key(|w| {
            (
                w.own
                    .iter()
                    .map(|r| sizes.get(r).copied().unwrap_or(0))
                    .sum::<u64>(),
                std::cmp::Reverse(w.index),
            )
        })?
        .index;
    let run = workers
        .iter_mut()
        .find(|w| w.index == victim)?
        .own
        .pop_back()?;
    tracing::info!("worker {thief} takes run {run} from worker {victim}'s queue");
    Some(run)
}

/// How a child process ended, in words, and whether that was a clean exit.
pub fn describe_exit(status: std::process::ExitStatus) -> (String, bool) {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        let name = match sig {
            6 => "SIGABRT",
            9 => "SIGKILL",
            11 => "SIGSEGV",
            7 => "SIGBUS",
            15 => "SIGTERM",
            2 => "SIGINT",
            4 => "SIGILL",
            8 => "SIGFPE",
            _ => "signal",
        };
        (format!("killed by {name} ({sig})"), false)
    } else {
        let code = status.code().unwrap_or(-1);
        (format!("exit code {code}"), code == 0)
    }
}

/// The outcome of `spyral run`.
pub struct Outcome {
    /// Process exit code.
    pub code: i32,
}

/// `spyral run`.
pub fn run(path: &Path, o: &Overrides, flags: &RunFlags) -> Result<Outcome, RunError> {
    let started = Instant::now();
    // Signal handling first: an interrupt at any point ends cleanly.
    let (tx, rx) = unbounded::<Event>();
    let sig_state = Arc::new(SignalState::default());
    let signals = signal_thread(tx.clone(), Arc::clone(&sig_state));
    let mut p = load_pipeline(path, o)?;
    // Validate everything that can be validated before creating anything.
    let Prepared {
        mut host,
        chain,
        refused,
    } = prepare(&p, &flags.log_level)?;
    let mut collected = runs::collect(&p.traces, &p.runs);
    if let Some((k, n)) = o.shard {
        let all = collected.runs.len();
        collected.runs = shard_runs(&collected.runs, k, n);
        if collected.runs.is_empty() {
            println!(
                "spyral: shard {k}/{n} has no runs ({all} runs over {n} shards); nothing to do"
            );
            return Ok(Outcome { code: 0 });
        }
    }
    if collected.runs.is_empty() {
        return Err(no_runs(&p, &collected));
    }
    create_workspace(&p, &chain)?;
    let suffix = o
        .shard
        .map(|(k, n)| format!("-shard-{k}of{n}"))
        .unwrap_or_default();
    let launch = crate::logs::new_launch_dir(&p.workspace, &suffix)
        .map_err(|e| RunError::Io(format!("cannot create the log folder: {e}")))?;
    crate::logs::init_file_logging(&launch.join("parent.log"), &flags.log_level, Some("warn"))
        .map_err(|e| RunError::Io(format!("cannot open the parent log: {e}")))?;
    write_layout_reports(&launch, &refused);
    let seed_given = p.seed.is_some();
    let seed = p.seed.unwrap_or_else(random_seed);
    let holder = lock_holder(&launch);
    // Temporary files whose owner is dead (their run's lock is free) go; those of runs another
    // live launch is processing stay.
    for c in chain.iter().filter(|c| c.active()) {
        let n = crate::locks::sweep_dead_partials(
            &p.workspace,
            c.name(),
            &c.workspace(&p).artifact_dir(),
            &holder,
        );
        if n > 0 {
            tracing::info!(
                "removed {n} temporary file(s) of an interrupted launch in {}",
                c.name()
            );
        }
    }
    p.seed = Some(seed);
    tracing::info!(
        "spyral {} launch: pipeline {}, workspace {}, seed {seed} ({})",
        env!("CARGO_PKG_VERSION"),
        p.path.display(),
        p.workspace.display(),
        if seed_given {
            "given"
        } else {
            "drawn at random"
        }
    );
    for c in &chain {
        tracing::info!(
            "phase {} ({}, {}, {}): {}",
            c.name(),
            c.resolved.kind,
            c.resolved.library,
            if c.active() { "active" } else { "inactive" },
            c.resolved.config.replace('\n', " ")
        );
    }
    if let Some((k, n)) = o.shard {
        tracing::info!(
            "shard {k}/{n}: runs {:?}",
            collected.runs.iter().map(|r| r.run).collect::<Vec<_>>()
        );
    }
    // Files named like runs that cannot be used are never dropped silently.
    for u in collected.unusable_lines() {
        tracing::warn!("not processed: {u}");
        eprintln!("spyral: not processed: {u}");
    }
    if !collected.skip_outside.is_empty() {
        tracing::warn!(
            "skip entries {} are outside the run range {}..={}",
            collected.skip_outside.summary(20),
            p.runs.min,
            p.runs.max
        );
    }
    eprintln!("spyral: creating assets...");
    sig_state.child.store(host.pid(), Ordering::SeqCst);
    let made = host.assets(&holder, true);
    sig_state.child.store(0, Ordering::SeqCst);
    host.finish();
    if sig_state.interrupted.load(Ordering::SeqCst) {
        drop(made);
        remove_orphan_asset_partials(&p, &chain, &holder);
        eprintln!("spyral: interrupted while creating assets; nothing ran");
        tracing::warn!("interrupted while creating assets");
        return Ok(Outcome { code: 130 });
    }
    let (segments, shared_times) = made.inspect_err(|e| tracing::error!("{e}"))?;
    let shared_times: Vec<SharedReport> = shared_times
        .into_iter()
        .map(|(phase, seconds)| SharedReport { phase, seconds })
        .collect();
    let plan = match p.schedule {
        Schedule::Snake => runs::snake(&collected.runs, p.workers),
        Schedule::Dynamic => runs::dynamic_estimate(&collected.runs, p.workers),
    };
    for s in &plan {
        tracing::info!(
            "worker {} {} runs {:?}: load {:.2}%",
            s.worker,
            if p.schedule == Schedule::Snake {
                "gets"
            } else {
                "expected to get"
            },
            s.runs,
            s.load_percent
        );
    }
    let n_workers = plan.len();
    if n_workers < p.workers {
        let msg = format!(
            "{} workers asked for {} run(s): starting {n_workers}",
            p.workers,
            collected.runs.len()
        );
        tracing::info!("{msg}");
        eprintln!("spyral: {msg}");
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if n_workers > cores {
        let msg = format!(
            "{n_workers} workers on {cores} cores: workers will compete for CPU (Spyral's advice: at most one worker per physical core, leaving one for the parent)"
        );
        tracing::warn!("{msg}");
        eprintln!("spyral: warning: {msg}");
    }
    let seed_fixed = seed_given;
    let resolved: Vec<chain::ResolvedPhase> = chain.iter().map(|c| c.resolved.clone()).collect();
    let base_dir = std::env::current_dir()
        .map_err(|e| RunError::Io(format!("cannot read the current folder: {e}")))?;
    let launch_name = launch
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let job_for = |i: usize| Job {
        pipeline: p.path.clone(),
        workspace: p.workspace.clone(),
        traces: p.traces.clone(),
        base_dir: base_dir.clone(),
        chain: resolved.clone(),
        launch: launch_name.clone(),
        worker: i,
        seed,
        seed_fixed,
        log_file: launch.join(format!("worker-{i}.log")),
        log_level: flags.log_level.clone(),
        force: flags.force.clone(),
        run_timeout_s: p.run_timeout.map(|t| t.seconds()),
        segments: segments.iter().map(Segment::entry).collect(),
    };
    {
        let tx = tx.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            if tx.send(Event::Tick).is_err() {
                break;
            }
        });
    }
    let mut workers: Vec<WorkerState> = Vec::new();
    for (i, s) in plan.iter().enumerate() {
        let mut st = spawn_worker(i, &job_for(i), &tx)?;
        if p.schedule == Schedule::Snake {
            st.own = s.runs.iter().copied().collect();
        }
        workers.push(st);
    }
    let mut queue: VecDeque<u32> = if p.schedule == Schedule::Dynamic {
        collected.runs.iter().map(|r| r.run).collect()
    } else {
        VecDeque::new()
    };
    let sizes: HashMap<u32, u64> = collected.runs.iter().map(|r| (r.run, r.bytes)).collect();
    let total_bytes: u64 = collected.runs.iter().map(|r| r.bytes).sum();
    let mut reports: BTreeMap<u32, RunReport> = collected
        .runs
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
                    phases: Vec::new(),
                },
            )
        })
        .collect();
    eprintln!(
        "spyral: {} runs ({}) on {} worker(s), {} schedule, seed {seed}; logs in {}",
        collected.runs.len(),
        human_bytes(total_bytes),
        n_workers,
        match p.schedule {
            Schedule::Snake => "snake",
            Schedule::Dynamic => "dynamic",
        },
        launch.display()
    );
    let use_bars = !flags.no_display && std::io::stderr().is_terminal();
    let mut display = Display::new(
        use_bars,
        &mut workers,
        collected.runs.len() as u64,
        total_bytes,
    );
    let mut interrupted = false;
    let mut aborting = false;
    let mut done_bytes = 0u64;
    let mut finished = 0usize;
    let mut replacements = 0usize;
    while workers.iter().any(|w| w.alive) {
        let Ok(ev) = rx.recv() else { break };
        match ev {
            Event::Tick => {
                display.tick(&workers, finished, done_bytes, started);
                // A phase that ignores the request to stop at the run's time limit: kill its
                // worker after a grace period (the run fails; the other runs go on).
                if let Some(limit) = p.run_timeout {
                    let grace = (limit.seconds() * 0.1).clamp(5.0, 60.0);
                    for w in workers.iter_mut().filter(|w| w.alive && !w.timed_out) {
                        let over = w
                            .run_started
                            .is_some_and(|t| t.elapsed().as_secs_f64() > limit.seconds() + grace);
                        if over && w.current_run.is_some() {
                            w.timed_out = true;
                            tracing::error!(
                                "worker {}: run {:?} passed run_timeout ({limit}) by {grace:.0} s without stopping; killing the worker",
                                w.index,
                                w.current_run
                            );
                            w.signal(rustix::process::Signal::KILL);
                        }
                    }
                }
            }
            Event::Signal(sig) => {
                if interrupted {
                    eprintln!("spyral: second interrupt: killing the workers");
                    for w in &workers {
                        w.signal(rustix::process::Signal::KILL);
                    }
                } else {
                    interrupted = true;
                    eprintln!(
                        "spyral: interrupted (signal {sig}): stopping the workers after their current phase (interrupt again to kill them)"
                    );
                    tracing::warn!("interrupted by signal {sig}");
                    for w in workers.iter_mut() {
                        w.signal(rustix::process::Signal::TERM);
                        if w.parked {
                            w.assign(None);
                        }
                    }
                }
            }
            Event::BadLine(i, line) => {
                tracing::warn!("worker {i} wrote an unreadable message: {line}");
            }
            Event::Msg(i, msg) => match msg {
                WorkerMsg::Ready {
                    startup_ms,
                    attach_ms,
                } => {
                    workers[i].attach_ms = Some(attach_ms);
                    // From spawn to ready, as seen by the parent (exec and linking included).
                    let seen = workers[i].spawned.elapsed().as_secs_f64() * 1e3;
                    workers[i].startup_ms = Some(seen);
                    tracing::info!(
                        "worker {i} ready {seen:.1} ms after spawn ({startup_ms:.1} ms inside the worker)"
                    );
                }
                WorkerMsg::Next => {
                    workers[i].current_run = None;
                    workers[i].current_phase = None;
                    if interrupted || aborting {
                        workers[i].assign(None);
                    } else if let Some(r) = workers[i]
                        .own
                        .pop_front()
                        .or_else(|| queue.pop_front())
                        .or_else(|| steal(&mut workers, i, &sizes))
                    {
                        if let Some(rep) = reports.get_mut(&r) {
                            rep.worker = Some(i);
                            rep.status = RunStatus::Assigned;
                        }
                        workers[i].assign(Some(r));
                    } else {
                        workers[i].parked = true;
                    }
                }
                WorkerMsg::RunStarted { run } => {
                    workers[i].current_run = Some(run);
                    workers[i].run_started = Some(Instant::now());
                    workers[i].current_phase = None;
                    if let Some(rep) = reports.get_mut(&run) {
                        rep.status = RunStatus::Started;
                        rep.worker = Some(i);
                    }
                    display.worker(&workers[i]);
                }
                WorkerMsg::PhaseStarted { run: _, phase } => {
                    workers[i].current_phase = Some(phase);
                    workers[i].done = 0;
                    workers[i].total = 0;
                    display.worker(&workers[i]);
                }
                WorkerMsg::Progress { done, total, .. } => {
                    workers[i].done = done;
                    workers[i].total = total;
                    display.progress(&workers[i]);
                }
                WorkerMsg::PhaseFinished { run, record } => {
                    if let Some(rep) = reports.get_mut(&run) {
                        rep.phases.push(record);
                    }
                }
                WorkerMsg::RunFinished {
                    run,
                    outcome,
                    wall_s,
                } => {
                    finished += 1;
                    done_bytes += sizes.get(&run).copied().unwrap_or(0);
                    workers[i].current_run = None;
                    workers[i].current_phase = None;
                    workers[i].assigned = None;
                    let mut failed_msg = None;
                    if let Some(rep) = reports.get_mut(&run) {
                        rep.wall_s = wall_s;
                        match outcome {
                            RunOutcome::Ok => {
                                rep.status = RunStatus::Ok;
                                rep.up_to_date = rep
                                    .phases
                                    .iter()
                                    .any(|ph| ph.status == PhaseStatus::UpToDate)
                                    && rep.phases.iter().all(|ph| {
                                        matches!(
                                            ph.status,
                                            PhaseStatus::UpToDate | PhaseStatus::Constructed
                                        )
                                    });
                            }
                            RunOutcome::Skipped { why } => {
                                rep.status = RunStatus::Skipped;
                                rep.error = Some(why);
                            }
                            RunOutcome::InAnotherLaunch { phase, holder } => {
                                rep.status = RunStatus::InAnotherLaunch;
                                let msg = format!(
                                    "run {run} is running in another launch ({holder}; phase {phase}); left to it"
                                );
                                tracing::warn!("{msg}");
                                display.println(&msg);
                                rep.error = Some(format!(
                                    "running in another launch ({holder}; phase {phase})"
                                ));
                            }
                            RunOutcome::Interrupted { phase } => {
                                rep.status = RunStatus::Interrupted;
                                rep.error = Some(format!("stopped on request at phase {phase}"));
                            }
                            RunOutcome::Failed { error: e } => {
                                rep.status = RunStatus::Failed;
                                let msg = format!("phase {}: {}: {}", e.phase, e.kind, e.message);
                                rep.error = Some(msg.clone());
                                failed_msg = Some(msg);
                            }
                        }
                    }
                    if let Some(msg) = failed_msg {
                        tracing::error!("run {run} failed on worker {i}: {msg}");
                        display.println(&format!("run {run} failed: {msg}"));
                        if p.on_error == OnError::Abort && !aborting {
                            aborting = true;
                            display.println("on_error is abort: stopping the other workers");
                            for w in workers.iter_mut() {
                                w.signal(rustix::process::Signal::TERM);
                                if w.parked {
                                    w.assign(None);
                                }
                            }
                        }
                    }
                    display.overall(finished, done_bytes);
                    display.worker(&workers[i]);
                }
                WorkerMsg::Fatal { message } => {
                    tracing::error!("worker {i} could not start: {message}");
                    display.println(&format!("worker {i} could not start: {message}"));
                    workers[i].exit = format!("fatal: {message}");
                }
                WorkerMsg::Done { peak_rss_kib } => {
                    workers[i].peak_rss_kib = Some(peak_rss_kib);
                }
            },
            Event::Exited(i, text, ok) => {
                let w = &mut workers[i];
                w.alive = false;
                w.stdin = None;
                if w.exit.is_empty() {
                    w.exit = text.clone();
                }
                if let Some(bar) = &w.bar {
                    bar.finish_and_clear();
                }
                let tail: Vec<String> = w
                    .stderr_tail
                    .lock()
                    .map(|t| t.iter().rev().take(8).rev().cloned().collect())
                    .unwrap_or_default();
                if let Some(run) = w.current_run.take() {
                    let phase = w
                        .current_phase
                        .take()
                        .unwrap_or_else(|| "(between phases)".into());
                    let seg_note = if segments.iter().any(|s| s.info.phase.as_str() == phase)
                        && text.contains("SIGSEGV")
                    {
                        let names: Vec<String> = segments
                            .iter()
                            .filter(|s| s.info.phase.as_str() == phase)
                            .map(|s| s.info.name.to_string())
                            .collect();
                        format!(
                            " (phase {phase} wrote to read-only shared segment {}? shared segments are read-only in workers and a write kills the worker with SIGSEGV)",
                            names.join(", ")
                        )
                    } else if w.timed_out {
                        format!(
                            " (run {run} passed run_timeout of {} s and phase {phase} did not stop when asked; the worker was killed)",
                            p.run_timeout.map(|t| t.seconds()).unwrap_or(0.0)
                        )
                    } else {
                        String::new()
                    };
                    let msg = format!(
                        "worker {i} died ({text}) in run {run}, phase {phase}{seg_note}; last stderr lines:\n    {}",
                        if tail.is_empty() { "(none)".to_string() } else { tail.join("\n    ") }
                    );
                    tracing::error!("{msg}");
                    display.println(&msg);
                    finished += 1;
                    done_bytes += sizes.get(&run).copied().unwrap_or(0);
                    if let Some(rep) = reports.get_mut(&run) {
                        rep.status = if interrupted {
                            RunStatus::Interrupted
                        } else {
                            RunStatus::Failed
                        };
                        rep.error =
                            Some(format!("worker died ({text}) in phase {phase}{seg_note}"));
                    }
                    if p.on_error == OnError::Abort && !interrupted && !aborting {
                        aborting = true;
                        for w in workers.iter_mut() {
                            w.signal(rustix::process::Signal::TERM);
                            if w.parked {
                                w.assign(None);
                            }
                        }
                    }
                } else if !ok && !interrupted {
                    let msg = format!(
                        "worker {i} exited ({text}); last stderr lines:\n    {}",
                        if tail.is_empty() {
                            "(none)".to_string()
                        } else {
                            tail.join("\n    ")
                        }
                    );
                    tracing::error!("{msg}");
                    display.println(&msg);
                }
                // Hand its unstarted runs to the others: the one it was handed but had not
                // started, and the rest of its own stack.
                let handed = workers[i].assigned.take().filter(|r| {
                    reports
                        .get(r)
                        .is_some_and(|rep| rep.status == RunStatus::Assigned)
                });
                let orphans: Vec<u32> =
                    handed.into_iter().chain(workers[i].own.drain(..)).collect();
                for r in &orphans {
                    if let Some(rep) = reports.get_mut(r) {
                        rep.status = RunStatus::NotStarted;
                        rep.worker = None;
                    }
                }
                if !orphans.is_empty() && !interrupted && !aborting {
                    tracing::warn!(
                        "worker {i}'s unstarted runs {orphans:?} go to the other workers"
                    );
                    for r in orphans.into_iter().rev() {
                        queue.push_front(r);
                    }
                }
            }
        }
        // Wake parked workers, replace dead ones when work remains.
        if !queue.is_empty() && !interrupted && !aborting {
            for w in workers.iter_mut().filter(|w| w.parked && w.alive) {
                if let Some(r) = queue.pop_front() {
                    if let Some(rep) = reports.get_mut(&r) {
                        rep.worker = Some(w.index);
                        rep.status = RunStatus::Assigned;
                    }
                    w.assign(Some(r));
                }
            }
            if !workers.iter().any(|w| w.alive) && replacements < collected.runs.len() {
                replacements += 1;
                let i = workers.len();
                tracing::warn!("starting replacement worker {i} for runs {queue:?}");
                let st = spawn_worker(i, &job_for(i), &tx)?;
                workers.push(st);
                display.add_worker(workers.last_mut());
            }
        }
        let busy = workers
            .iter()
            .any(|w| w.alive && (w.current_run.is_some() || !w.own.is_empty()));
        if queue.is_empty() && !busy {
            for w in workers.iter_mut().filter(|w| w.parked) {
                w.assign(None);
            }
        }
    }
    display.finish();
    drop(signals);
    let segment_reports: Vec<SegmentReport> = segments
        .iter()
        .map(|s| SegmentReport {
            phase: s.info.phase.to_string(),
            name: s.info.name.to_string(),
            bytes: s.info.len,
        })
        .collect();
    drop(segments);
    let wall = started.elapsed().as_secs_f64();
    let runs: Vec<RunReport> = reports.into_values().collect();
    let count = |s: RunStatus| runs.iter().filter(|r| r.status == s).count();
    let report = Report {
        pipeline: p.path.clone(),
        workspace: p.workspace.clone(),
        seed,
        workers: n_workers,
        schedule: p.schedule,
        wall_s: wall,
        interrupted,
        runs_ok: count(RunStatus::Ok),
        runs_up_to_date: runs.iter().filter(|r| r.up_to_date).count(),
        runs_failed: count(RunStatus::Failed),
        runs_skipped: count(RunStatus::Skipped),
        runs_in_another_launch: count(RunStatus::InAnotherLaunch),
        runs_not_started: count(RunStatus::NotStarted)
            + count(RunStatus::Assigned)
            + count(RunStatus::Started)
            + count(RunStatus::Interrupted),
        replacement_workers: replacements,
        unusable: collected.unusable_lines(),
        segments: segment_reports,
        shared_data_seconds: shared_times,
        parent_peak_rss_kib: crate::worker::peak_rss_kib(),
        worker_reports: workers
            .iter()
            .map(|w| WorkerReport {
                worker: w.index,
                startup_ms: w.startup_ms,
                attach_ms: w.attach_ms,
                peak_rss_kib: w.peak_rss_kib,
                exit: w.exit.clone(),
            })
            .collect(),
        runs,
    };
    let report_path = launch.join("report.json");
    // The summary is printed whatever happens to the report (a full disk included).
    let report_error = write_report(&report_path, &report).err();
    let mut summary = summary_text(&report, &chain, &launch);
    if let Some(e) = &report_error {
        summary.push_str(&format!(
            "\n  the report could not be written ({e}); this summary is all there is"
        ));
    }
    println!("{summary}");
    tracing::info!("summary:\n{summary}");
    let code = if interrupted {
        130
    } else if report.runs_failed > 0 || report.runs_not_started > 0 || report_error.is_some() {
        1
    } else {
        0
    };
    Ok(Outcome { code })
}

/// Writes `report.json` through a temporary name; the temporary file is removed on failure.
fn write_report(path: &Path, report: &Report) -> std::io::Result<()> {
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

fn summary_text(r: &Report, chain: &[PhaseView], launch: &Path) -> String {
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

fn no_runs(p: &Pipeline, c: &Collected) -> RunError {
    let mut detail = String::new();
    if !p.traces.is_dir() {
        detail = " (the trace folder does not exist)".into();
    } else if let Some(e) = &c.folder_error {
        detail = format!(" (cannot list the trace folder: {e})");
    } else {
        let mut parts = Vec::new();
        if !c.unusable.is_empty() {
            parts.push(format!("unusable files: {}", c.unusable_lines().join(", ")));
        }
        if !c.skipped.is_empty() {
            parts.push(format!("skipped: {}", c.skipped.summary(20)));
        }
        if !parts.is_empty() {
            detail = format!(" ({})", parts.join("; "));
        }
    }
    RunError::NoRuns {
        traces: p.traces.clone(),
        min: p.runs.min,
        max: p.runs.max,
        detail,
    }
}

fn random_seed() -> u64 {
    let mut buf = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .is_ok()
    {
        u64::from_le_bytes(buf) >> 11
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    }
}

struct SignalGuard {
    handle: signal_hook::iterator::Handle,
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.handle.close();
    }
}

/// What the signal thread shares with the launch.
#[derive(Default)]
struct SignalState {
    /// An interrupt arrived.
    interrupted: AtomicBool,
    /// The plugin host's pid while it works (0: none): interrupts are passed on to it.
    child: AtomicU32,
}

fn signal_thread(tx: Sender<Event>, state: Arc<SignalState>) -> Option<SignalGuard> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .ok()?;
    let handle = signals.handle();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            state.interrupted.store(true, Ordering::SeqCst);
            let child = state.child.load(Ordering::SeqCst);
            if let Some(pid) = rustix::process::Pid::from_raw(child as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            if tx.send(Event::Signal(sig)).is_err() {
                break;
            }
        }
    });
    Some(SignalGuard { handle })
}

/// After the plugin host was stopped by an interrupt: remove the temporary asset files it left,
/// under each phase's asset lock (taken only if free: a live launch's files stay).
fn remove_orphan_asset_partials(p: &Pipeline, chain: &[PhaseView], holder: &str) {
    for c in chain.iter().filter(|c| c.active()) {
        let path = crate::locks::assets_lock_path(&p.workspace, c.name());
        if let Ok(Some(_lock)) = crate::locks::try_lock(&path, holder) {
            crate::locks::remove_asset_partials(&c.workspace(p).asset_dir());
        }
    }
}

/// Progress display: indicatif bars on a terminal, periodic plain lines otherwise.
struct Display {
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    total_runs: u64,
    total_bytes: u64,
    last_plain: Instant,
}

impl Display {
    fn new(bars: bool, workers: &mut [WorkerState], total_runs: u64, total_bytes: u64) -> Self {
        if !bars {
            return Display {
                multi: None,
                overall: None,
                total_runs,
                total_bytes,
                last_plain: Instant::now(),
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let overall = multi.add(ProgressBar::new(total_bytes.max(1)));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.green/white}] {binary_bytes}/{binary_total_bytes} | {msg} | {elapsed_precise} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        overall.set_prefix("all runs");
        overall.set_message(format!("0/{total_runs} runs"));
        let mut d = Display {
            multi: Some(multi),
            overall: Some(overall),
            total_runs,
            total_bytes,
            last_plain: Instant::now(),
        };
        for w in workers.iter_mut() {
            d.add_worker(Some(w));
        }
        d
    }
    fn add_worker(&mut self, w: Option<&mut WorkerState>) {
        let (Some(multi), Some(w)) = (&self.multi, w) else {
            return;
        };
        let bar = multi.add(ProgressBar::new(1));
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("worker {}", w.index));
        bar.set_message("starting");
        w.bar = Some(bar);
    }
    fn worker(&self, w: &WorkerState) {
        if let Some(bar) = &w.bar {
            bar.set_length(w.total.max(1));
            bar.set_position(w.done);
            bar.set_message(match (&w.current_run, &w.current_phase) {
                (Some(r), Some(p)) => format!("| run {r} | {p}"),
                (Some(r), None) => format!("| run {r}"),
                _ => "| idle".to_string(),
            });
        }
    }
    fn progress(&self, w: &WorkerState) {
        if let Some(bar) = &w.bar {
            bar.set_length(w.total.max(1));
            bar.set_position(w.done);
        }
    }
    fn overall(&self, finished: usize, bytes: u64) {
        if let Some(o) = &self.overall {
            o.set_position(bytes);
            o.set_message(format!("{finished}/{} runs", self.total_runs));
        }
    }
    fn println(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("spyral: {line}"),
        }
    }
    fn tick(&mut self, workers: &[WorkerState], finished: usize, bytes: u64, started: Instant) {
        if self.multi.is_some() || self.last_plain.elapsed() < Duration::from_secs(5) {
            return;
        }
        self.last_plain = Instant::now();
        let pct = if self.total_bytes == 0 {
            0.0
        } else {
            100.0 * bytes as f64 / self.total_bytes as f64
        };
        let ws: Vec<String> = workers
            .iter()
            .filter(|w| w.alive)
            .map(|w| format!("w{}: {}", w.index, w.describe()))
            .collect();
        eprintln!(
            "spyral: [{:.0} s] {finished}/{} runs done ({pct:.1}% of bytes); {}",
            started.elapsed().as_secs_f64(),
            self.total_runs,
            ws.join("; ")
        );
    }
    fn finish(&self) {
        if let Some(o) = &self.overall {
            o.finish_and_clear();
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

/// `spyral assets`: workspace and assets only.
pub fn assets(path: &Path, o: &Overrides, log_level: &str) -> Result<(), RunError> {
    let p = load_pipeline(path, o)?;
    let Prepared {
        mut host,
        chain,
        refused,
    } = prepare(&p, log_level)?;
    create_workspace(&p, &chain)?;
    let launch = crate::logs::new_launch_dir(&p.workspace, "-assets")
        .map_err(|e| RunError::Io(format!("cannot create the log folder: {e}")))?;
    crate::logs::init_file_logging(&launch.join("parent.log"), log_level, Some("warn"))
        .map_err(|e| RunError::Io(format!("cannot open the parent log: {e}")))?;
    write_layout_reports(&launch, &refused);
    host.assets(&lock_holder(&launch), false)?;
    host.finish();
    println!(
        "spyral: workspace {} and the assets of {} active phase(s) are ready",
        p.workspace.display(),
        chain.iter().filter(|c| c.active()).count()
    );
    Ok(())
}

/// The plan as `spyral plan` prints it.
#[derive(Debug, Serialize)]
pub struct PlanView {
    /// Trace folder.
    pub traces: PathBuf,
    /// Schedule.
    pub schedule: Schedule,
    /// Runs found.
    pub runs_found: usize,
    /// Total bytes.
    pub total_bytes: u64,
    /// Runs in size order.
    pub runs: Vec<Run>,
    /// Missing runs in range.
    pub missing: runs::RunSet,
    /// Files named like runs of the range that cannot be used, and why.
    pub unusable: Vec<runs::UnusableRun>,
    /// Skipped.
    pub skipped: runs::RunSet,
    /// Per-worker plan.
    pub workers: Vec<runs::Stack>,
    /// Why there is nothing to do (an empty shard), as `spyral run --shard` says it.
    pub note: Option<String>,
}

/// `spyral plan`.
pub fn plan(path: &Path, o: &Overrides) -> Result<PlanView, RunError> {
    let p = load_pipeline(path, o)?;
    let mut c = runs::collect(&p.traces, &p.runs);
    let mut note = None;
    if let Some((k, n)) = o.shard {
        let all = c.runs.len();
        c.runs = shard_runs(&c.runs, k, n);
        if c.runs.is_empty() {
            // As `spyral run --shard` does: an empty shard is nothing to do, not an error.
            note = Some(format!(
                "shard {k}/{n} has no runs ({all} runs over {n} shards); nothing to do"
            ));
        }
    }
    if c.runs.is_empty() && note.is_none() {
        return Err(no_runs(&p, &c));
    }
    let workers = match p.schedule {
        Schedule::Snake => runs::snake(&c.runs, p.workers),
        Schedule::Dynamic => runs::dynamic_estimate(&c.runs, p.workers),
    };
    Ok(PlanView {
        traces: p.traces.clone(),
        schedule: p.schedule,
        runs_found: c.runs.len(),
        total_bytes: c.runs.iter().map(|r| r.bytes).sum(),
        runs: c.runs,
        missing: c.missing,
        unusable: c.unusable,
        skipped: c.skipped,
        workers,
        note,
    })
}
