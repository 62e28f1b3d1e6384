//! `spyral simulate` and `spyral demo`: simulated AT-TPC runs on disk, and the default pipeline
//! run over them. The physics lives in `spyral-phases` (`sim`); this module is the command-line
//! side: options, progress display, files and the demo pipeline.

use crate::parent::{self, Overrides, RunError, RunFlags};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use spyral_data::attpc::detector::PadParameters;
use spyral_data::attpc::padmap::PadMap;
use spyral_data::attpc::traces::TraceFormat;
use spyral_sim::{simulate_run, RunSpec, SimConfig};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Errors of simulate/demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Bad option or configuration.
    #[error("{0}")]
    Invalid(String),
    /// Simulation failed.
    #[error("simulating run {run}: {message}")]
    Sim {
        /// Run.
        run: u32,
        /// What failed.
        message: String,
    },
    /// File problem.
    #[error("{0}")]
    Io(String),
    /// The pipeline run failed to start.
    #[error(transparent)]
    Run(Box<RunError>),
    /// Files would be replaced and `--overwrite` was not given.
    #[error("refusing to overwrite {} existing file(s) in {}: {}{}; pass --overwrite to replace them", files.len(), dir.display(), list_files(files), if files.len() > 5 { ", ..." } else { "" })]
    WouldOverwrite {
        /// The folder.
        dir: PathBuf,
        /// The files that exist.
        files: Vec<PathBuf>,
    },
}

fn list_files(files: &[PathBuf]) -> String {
    files
        .iter()
        .take(5)
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<RunError> for DemoError {
    fn from(e: RunError) -> Self {
        DemoError::Run(Box::new(e))
    }
}

/// Options of `spyral simulate`.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Output folder.
    pub out: PathBuf,
    /// First run number.
    pub first_run: u32,
    /// Events per run, one entry per run.
    pub events: Vec<u64>,
    /// Base seed.
    pub seed: u64,
    /// File format.
    pub format: TraceFormat,
    /// Pad map CSVs: geometry, time offsets, scales.
    pub pad_map: Vec<PathBuf>,
    /// Simulator configuration file (YAML or JSON).
    pub config: Option<PathBuf>,
    /// Threads.
    pub threads: usize,
    /// Replace existing run and truth files (otherwise their presence is an error).
    pub overwrite: bool,
}

/// Loads a simulator configuration file (YAML or JSON); defaults when `None`.
pub fn load_config(path: Option<&Path>) -> Result<SimConfig, DemoError> {
    let Some(path) = path else {
        return Ok(SimConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| DemoError::Io(format!("cannot read {}: {e}", path.display())))?;
    serde_saphyr::from_str(&text)
        .map_err(|e| DemoError::Invalid(format!("{}: {e}", path.display())))
}

/// Parses a format name (`legacy`, `merger-1.0`, `merger-2.0`, `harmonizer-0.1`).
pub fn parse_format(name: &str) -> Result<TraceFormat, String> {
    TraceFormat::from_name(name).ok_or_else(|| {
        format!(
            "unknown format `{name}` (expected one of: {})",
            TraceFormat::ALL
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn pad_map(files: &[PathBuf]) -> Result<PadMap, DemoError> {
    let params = match files {
        [] => PadParameters::default(),
        [geo, time, scale] => PadParameters {
            pad_geometry_path: Some(geo.clone()),
            pad_time_path: Some(time.clone()),
            pad_scale_path: Some(scale.clone()),
        },
        [geo, scale] => PadParameters {
            pad_geometry_path: Some(geo.clone()),
            pad_time_path: None,
            pad_scale_path: Some(scale.clone()),
        },
        _ => {
            return Err(DemoError::Invalid(
                "--pad-map takes GEOMETRY.csv [TIME.csv] SCALE.csv".into(),
            ))
        }
    };
    PadMap::load(&params).map_err(|e| DemoError::Invalid(format!("pad map: {e}")))
}

/// The files `spyral simulate` would write: each run's trace file and truth record.
pub fn simulated_files(o: &SimulateOptions) -> Vec<PathBuf> {
    (0..o.events.len() as u32)
        .flat_map(|i| {
            let stem = spyral_core::run_stem(o.first_run + i);
            [
                o.out.join(format!("{stem}.h5")),
                o.out.join("truth").join(format!("{stem}.jsonl")),
            ]
        })
        .collect()
}

/// `spyral simulate`. Returns the written trace files. Existing run or truth files are an
/// error unless `o.overwrite`.
pub fn simulate(o: &SimulateOptions) -> Result<Vec<PathBuf>, DemoError> {
    let config = load_config(o.config.as_deref())?;
    let pads = pad_map(&o.pad_map)?;
    if !o.overwrite {
        let existing: Vec<PathBuf> = simulated_files(o)
            .into_iter()
            .filter(|f| f.symlink_metadata().is_ok())
            .collect();
        if !existing.is_empty() {
            return Err(DemoError::WouldOverwrite {
                dir: o.out.clone(),
                files: existing,
            });
        }
    }
    std::fs::create_dir_all(&o.out)
        .map_err(|e| DemoError::Io(format!("cannot create {}: {e}", o.out.display())))?;
    let total: u64 = o.events.iter().sum();
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10));
        b.set_style(
            ProgressStyle::with_template(
                "simulating [{bar:30.cyan/blue}] {pos}/{len} events {msg} | {elapsed_precise} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let t0 = Instant::now();
    let mut written = Vec::new();
    let mut done_before = 0u64;
    let mut bytes = 0u64;
    for (i, &events) in o.events.iter().enumerate() {
        let run = o.first_run + i as u32;
        let spec = RunSpec {
            run,
            events,
            seed: spyral_core::seed::derive_seed(o.seed, run, "simulate"),
            format: o.format,
        };
        if let Some(b) = &bar {
            b.set_message(format!("(run {run})"));
        }
        let progress = |done: u64| {
            if let Some(b) = &bar {
                b.set_position(done_before + done);
            }
        };
        let out =
            simulate_run(&config, &pads, &o.out, spec, o.threads, &progress).map_err(|e| {
                DemoError::Sim {
                    run,
                    message: e.to_string(),
                }
            })?;
        done_before += events;
        bytes += out.bytes;
        let line = format!(
            "wrote {} ({} events, {} traces, {}) and {}",
            out.trace.display(),
            events,
            out.traces,
            crate::segments::human_bytes(out.bytes),
            out.truth.display()
        );
        match &bar {
            Some(b) => b.println(line),
            None => eprintln!("spyral: {line}"),
        }
        written.push(out.trace);
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "spyral: simulated {total} events in {secs:.1} s ({:.0} events/s, {:.1} MB/s written)",
        total as f64 / secs.max(1e-9),
        bytes as f64 / 1e6 / secs.max(1e-9)
    );
    Ok(written)
}

/// The demo pipeline, relative to the demo folder.
pub const DEMO_PIPELINE: &str = include_str!("../../examples/demo.yaml");

/// The files `spyral demo` writes besides the runs, with their contents.
fn demo_inputs() -> [(&'static str, &'static str); 3] {
    [
        ("pipeline.yaml", DEMO_PIPELINE),
        (
            "gas/deuterium_300torr.json",
            include_str!("../../examples/gas/deuterium_300torr.json"),
        ),
        (
            "pid/deuteron.json",
            include_str!("../../examples/pid/deuteron.json"),
        ),
    ]
}

/// `spyral demo`: simulate a few runs into `dir/traces`, write `dir/pipeline.yaml`, run it.
/// A folder from an earlier demo is reused as it is; files that differ from what the demo
/// writes (an edited pipeline, other runs) are never replaced unless `overwrite`.
pub fn demo(dir: &Path, no_display: bool, overwrite: bool) -> Result<i32, DemoError> {
    let traces = dir.join("traces");
    let events = vec![250, 150, 200, 100];
    let sim = SimulateOptions {
        out: traces.clone(),
        first_run: 1,
        events,
        seed: 2026,
        format: TraceFormat::Merger2,
        pad_map: Vec::new(),
        config: None,
        threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        overwrite,
    };
    // Check everything before writing anything.
    let differing: Vec<PathBuf> = demo_inputs()
        .iter()
        .map(|(name, text)| (dir.join(name), text))
        .filter(|(path, text)| {
            path.symlink_metadata().is_ok()
                && std::fs::read_to_string(path).ok().as_deref() != Some(**text)
        })
        .map(|(path, _)| path)
        .collect();
    if !differing.is_empty() && !overwrite {
        return Err(DemoError::WouldOverwrite {
            dir: dir.to_path_buf(),
            files: differing,
        });
    }
    let runs = simulated_files(&sim);
    let have_all = runs.iter().all(|f| f.exists());
    std::fs::create_dir_all(dir)
        .map_err(|e| DemoError::Io(format!("cannot create {}: {e}", dir.display())))?;
    if have_all && !overwrite {
        eprintln!("spyral: reusing the simulated runs in {}", traces.display());
    } else {
        simulate(&sim)?;
    }
    for (name, text) in demo_inputs() {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text) {
            continue;
        }
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)
                .map_err(|e| DemoError::Io(format!("cannot create {}: {e}", d.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| DemoError::Io(format!("cannot write {}: {e}", path.display())))?;
    }
    let pipeline = dir.join("pipeline.yaml");
    eprintln!("spyral: running {}", pipeline.display());
    let out = parent::run(
        &pipeline,
        &Overrides::default(),
        &RunFlags {
            no_display,
            log_level: "info".into(),
            force: Vec::new(),
        },
    )?;
    println!(
        "\ndemo outputs under {}:\n  traces/        simulated runs (merger 2.0 format) and truth/ records\n  workspace/     one folder per phase (Pointcloud, Cluster, Estimation, InterpSolver) and log/\n  pipeline.yaml  the pipeline that was run; try `spyral status {}`",
        dir.display(),
        pipeline.display()
    );
    Ok(out.code)
}
