//! Getting a launch ready: the pipeline file with command-line overrides, validation through
//! the plugin host (nothing is created before it passes), the workspace folders, lock-holder
//! names, layout reports of refused libraries, and the `spyral assets` and `spyral plan`
//! commands.

use crate::chain::{self, PhaseView};
use crate::pipeline::{OnError, Pipeline, Schedule};
use crate::plugin_host::{PluginHost, Refused};
use crate::runs::{self, Collected, Run};
use serde::Serialize;
use std::path::{Path, PathBuf};

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
    /// `--chunk-events`.
    pub chunk_events: Option<u64>,
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
    if let Some(n) = o.chunk_events {
        p.chunk_events = n;
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
pub fn write_layout_reports(launch: &Path, refused: &[Refused]) {
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

/// The "no runs found" error, with what was seen.
pub fn no_runs(p: &Pipeline, c: &Collected) -> RunError {
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

/// A base seed from the OS (when the pipeline fixes none).
pub fn random_seed() -> u64 {
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

/// After the plugin host was stopped by an interrupt: remove the temporary asset files it left,
/// under each phase's asset lock (taken only if free: a live launch's files stay).
pub fn remove_orphan_asset_partials(p: &Pipeline, chain: &[PhaseView], holder: &str) {
    for c in chain.iter().filter(|c| c.active()) {
        let path = crate::locks::assets_lock_path(&p.workspace, c.name());
        if let Ok(Some(_lock)) = crate::locks::try_lock(&path, holder) {
            crate::locks::remove_asset_partials(&c.workspace(p).asset_dir());
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

/// `spyral plan`: the runs found and how they would be split over workers.
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
