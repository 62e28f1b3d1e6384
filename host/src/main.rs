//! `spyral`: the command-line front end. Parses arguments and hands each subcommand to the
//! `spyral_host` library; errors become one clear paragraph on stderr and an exit code.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use spyral_host::parent::{self, Overrides, RunFlags};
use spyral_host::pipeline::{OnError, Schedule};
use spyral_host::{pipeline::Pipeline, runs, scaffold};
use std::path::PathBuf;
use std::process::ExitCode;

/// Spyral-rs: AT-TPC run analysis as a chain of plugin phases, run in parallel.
#[derive(Parser)]
#[command(
    name = "spyral",
    version,
    about = "Spyral-rs: analyse AT-TPC runs through a chain of plugin phases, in parallel worker processes.",
    long_about = None,
    after_help = "Start with `spyral demo` (simulated runs through the default chain) or `spyral validate PIPELINE`."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a pipeline over its runs with worker processes.
    ///
    /// Example: spyral run examples/demo.yaml --runs 1..=10 --workers 4
    Run(RunArgs),
    /// Show the runs found and how they would be split over workers, without running.
    ///
    /// Example: spyral plan examples/demo.yaml --workers 3 --json
    Plan {
        /// Pipeline file.
        pipeline: PathBuf,
        #[command(flatten)]
        o: OverrideArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create the workspace and every active phase's assets, then stop (for batch systems).
    ///
    /// Example: spyral assets examples/demo.yaml
    Assets {
        /// Pipeline file.
        pipeline: PathBuf,
        /// Trace folder (overrides the file).
        #[arg(long)]
        traces: Option<PathBuf>,
    },
    /// Load the plugins, construct every phase, check the schema chain and print the resolved
    /// pipeline (every default filled in).
    ///
    /// Example: spyral validate examples/demo.yaml
    Validate {
        /// Pipeline file.
        pipeline: PathBuf,
    },
    /// List plugin libraries: versions, phase kinds, descriptions and default configs.
    /// With no PATH: the built-in phases, SPYRAL_PLUGIN_PATH and the executable's folder.
    ///
    /// Example: spyral plugins target/release/libtemplate.so
    /// Example: spyral plugins --doc cluster   (every field: type, default, unit, meaning)
    Plugins {
        /// Library files or folders.
        paths: Vec<PathBuf>,
        /// Print the manual of phase kind KIND: every configuration field with its type,
        /// default, unit and meaning.
        #[arg(long, value_name = "KIND")]
        doc: Option<String>,
    },
    /// Write a JSON Schema of the pipeline file (top-level keys and each known kind's `config`)
    /// for editors: put `# yaml-language-server: $schema=spyral-pipeline.schema.json` at the top
    /// of a pipeline.
    ///
    /// Example: spyral schema --out spyral-pipeline.schema.json
    Schema {
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Extra plugin library files or folders whose kinds the schema describes.
        #[arg(long = "plugin", value_name = "PATH")]
        plugins: Vec<PathBuf>,
    },
    /// Write a ready-to-build plugin crate for a new phase, from the template.
    ///
    /// Example: spyral new-phase charge-gate --dir ~/phases && cd ~/phases/charge-gate && cargo build --release
    NewPhase {
        /// Crate and phase kind name (lower case, `-` allowed).
        name: String,
        /// Folder to create the crate in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Install the plugin SDK this spyral carries (the crates a phase plugin builds against) if it
    /// is not installed yet, and show where it is: $SPYRAL_SDK_DIR, else
    /// $XDG_DATA_HOME/spyral/sdk, else ~/.local/share/spyral/sdk, in a `<version>-<hash>` folder.
    ///
    /// Example: spyral sdk --path
    Sdk {
        /// Print only the folder.
        #[arg(long)]
        path: bool,
    },
    /// Show, for every run and phase, whether its artifacts are current, stale (and why),
    /// failed (and the error) or missing, from the provenance records. Runs nothing.
    ///
    /// Example: spyral status examples/demo.yaml --json
    Status {
        /// Pipeline file.
        pipeline: PathBuf,
        #[command(flatten)]
        o: SelectArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write the HTML report of a launch (PID plot with a gate editor, kinematics, vertex z,
    /// per-run table, phase times, worker timeline, failures): one self-contained file.
    ///
    /// Example: spyral report examples/demo.yaml   (writes <workspace>/log/<launch>/report.html)
    Report {
        /// Pipeline file.
        pipeline: PathBuf,
        /// Launch folder (default: the newest, `<workspace>/log/latest`).
        #[arg(long, value_name = "DIR")]
        launch: Option<PathBuf>,
        /// Write to FILE (default: report.html in the launch folder).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Write (and with --submit, submit) SLURM sbatch scripts: `spyral assets` once, then an
    /// array of N tasks, each running one shard of the runs.
    ///
    /// Example: spyral slurm examples/demo.yaml --tasks 16 --cpus-per-task 8 --time 04:00:00 --submit
    Slurm {
        /// Pipeline file.
        pipeline: PathBuf,
        /// Array tasks (shards).
        #[arg(long)]
        tasks: usize,
        /// CPUs per task; each task runs that many workers.
        #[arg(long, default_value_t = 1)]
        cpus_per_task: usize,
        /// Wall-time limit per task (sbatch --time).
        #[arg(long)]
        time: Option<String>,
        /// Partition (sbatch --partition).
        #[arg(long)]
        partition: Option<String>,
        /// Extra sbatch argument, e.g. --sbatch-arg=--mem=16G (repeatable).
        #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
        sbatch_arg: Vec<String>,
        /// A shell line run before spyral in both scripts, e.g. --setup 'module load hdf5'
        /// (repeatable).
        #[arg(long)]
        setup: Vec<String>,
        /// Submit with sbatch and print the job ids.
        #[arg(long)]
        submit: bool,
    },
    /// Simulate AT-TPC runs (realistic GET and FRIB traces, truth records) into a folder.
    ///
    /// Example: spyral simulate --out traces --runs 4 --events 200 --seed 7 --format merger-2.0
    Simulate {
        /// Output folder (run_NNNN.h5, truth/run_NNNN.jsonl).
        #[arg(long)]
        out: PathBuf,
        /// Number of runs.
        #[arg(long, default_value_t = 1)]
        runs: u32,
        /// First run number.
        #[arg(long, default_value_t = 1)]
        first_run: u32,
        /// Events per run.
        #[arg(long, default_value_t = 160)]
        events: u64,
        /// Base seed (each run's seed derives from it).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// legacy, merger-1.0, merger-2.0 or harmonizer-0.1.
        #[arg(long, default_value = "merger-2.0")]
        format: String,
        /// Pad map CSVs: GEOMETRY [TIME] SCALE (default: the built-in pad plane).
        #[arg(long, num_args = 2..=3)]
        pad_map: Vec<PathBuf>,
        /// Simulator configuration (YAML): beam, reaction, gas, noise... (see `spyral_sim::SimConfig`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Replace run and truth files that already exist (otherwise they are an error).
        #[arg(long)]
        overwrite: bool,
    },
    /// Simulate a small dataset into DIR and run the default pipeline on it, with the progress
    /// display; prints where the outputs are.
    ///
    /// Example: spyral demo --dir spyral-demo
    Demo {
        /// Folder for the simulated runs, the pipeline and the workspace.
        #[arg(long, default_value = "spyral-demo")]
        dir: PathBuf,
        /// Draw no progress bars.
        #[arg(long)]
        no_display: bool,
        /// Replace files in DIR that differ from what the demo writes (an edited pipeline.yaml,
        /// other runs); otherwise they are an error. An earlier demo's folder is reused as is.
        #[arg(long)]
        overwrite: bool,
    },
    /// Internal: a worker process started by `spyral run`.
    #[command(hide = true)]
    Worker,
    /// Internal: the process that runs plugin code for the parent (validation, assets, status).
    #[command(hide = true)]
    PluginHost,
}

#[derive(Args, Clone, Default)]
struct OverrideArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// Worker processes (overrides the file).
    #[arg(long)]
    workers: Option<usize>,
    /// snake or dynamic (overrides the file).
    #[arg(long)]
    schedule: Option<Schedule>,
}

/// Which runs: the options of commands that look at runs but start no workers.
#[derive(Args, Clone, Default)]
struct SelectArgs {
    /// Runs to process: MIN..=MAX, MIN..MAX or one run (overrides the file).
    #[arg(long)]
    runs: Option<String>,
    /// Runs to skip: 3,5,7-9 (overrides the file).
    #[arg(long)]
    skip: Option<String>,
    /// Trace folder (overrides the file).
    #[arg(long)]
    traces: Option<PathBuf>,
    /// Process only shard K (0-based) of N: K/N, or `slurm` to take them from
    /// SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT.
    #[arg(long)]
    shard: Option<String>,
}

impl SelectArgs {
    fn to_overrides(&self) -> Result<Overrides> {
        Ok(Overrides {
            runs: self
                .runs
                .as_deref()
                .map(runs::parse_range)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--runs: {e}"))?,
            skip: self
                .skip
                .as_deref()
                .map(runs::parse_list)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--skip: {e}"))?,
            traces: self.traces.clone(),
            shard: self
                .shard
                .as_deref()
                .map(parent::parse_shard)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            ..Overrides::default()
        })
    }
}

impl OverrideArgs {
    fn to_overrides(&self) -> Result<Overrides> {
        Ok(Overrides {
            workers: self.workers,
            schedule: self.schedule,
            ..self.select.to_overrides()?
        })
    }
}

#[derive(Args)]
struct RunArgs {
    /// Pipeline file.
    pipeline: PathBuf,
    #[command(flatten)]
    o: OverrideArgs,
    /// Base seed (overrides the file; drawn at random, printed and logged when absent).
    #[arg(long)]
    seed: Option<u64>,
    /// continue or abort on the first failed run (overrides the file).
    #[arg(long, value_parser = parse_on_error)]
    on_error: Option<OnError>,
    /// Fail a run that takes longer than this: seconds, or 90s, 45m, 2h (overrides the file).
    #[arg(long)]
    run_timeout: Option<spyral_host::pipeline::RunTimeout>,
    /// Split runs with more events than this into chunks of about this many events, processed
    /// in parallel and merged; 0 never splits; one worker splits none (overrides the file;
    /// default 1000).
    #[arg(long)]
    chunk_events: Option<u64>,
    /// Draw no progress bars; print a progress line every few seconds instead.
    #[arg(long)]
    no_display: bool,
    /// Log level of the log files.
    #[arg(long, value_enum, default_value_t = spyral_host::logs::LogLevel::Info)]
    log_level: spyral_host::logs::LogLevel,
    /// Rerun even what is up to date: `--force` for every phase, `--force=PHASE` for one
    /// (repeatable).
    #[arg(long, value_name = "PHASE", num_args = 0..=1, require_equals = true, default_missing_value = "*")]
    force: Vec<String>,
}

fn parse_on_error(s: &str) -> Result<OnError, String> {
    match s {
        "continue" => Ok(OnError::Continue),
        "abort" => Ok(OnError::Abort),
        _ => Err(format!("`{s}`: expected continue or abort")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Worker = cli.command {
        return ExitCode::from(spyral_host::worker::main() as u8);
    }
    if let Cmd::PluginHost = cli.command {
        return ExitCode::from(spyral_host::plugin_host::main() as u8);
    }
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause once: most messages already end with their cause's
/// text (`cannot read X: No such file or directory (os error 2)`), so a cause whose text is
/// already there is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

fn dispatch(cmd: Cmd) -> Result<u8> {
    match cmd {
        Cmd::Run(a) => {
            let mut o = a.o.to_overrides()?;
            o.seed = a.seed;
            o.on_error = a.on_error;
            o.run_timeout = a.run_timeout;
            o.chunk_events = a.chunk_events;
            let flags = RunFlags {
                no_display: a.no_display,
                log_level: a.log_level.as_str().to_string(),
                force: a.force.clone(),
            };
            let out = parent::run(&a.pipeline, &o, &flags)?;
            Ok(out.code as u8)
        }
        Cmd::Plan { pipeline, o, json } => {
            let view = parent::plan(&pipeline, &o.to_overrides()?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_plan(&view);
            }
            Ok(0)
        }
        Cmd::Assets { pipeline, traces } => {
            let o = Overrides {
                traces,
                ..Overrides::default()
            };
            parent::assets(&pipeline, &o, "info")?;
            Ok(0)
        }
        Cmd::Validate { pipeline } => {
            spyral_host::logs::init_stderr_logging("warn");
            validate(&pipeline)?;
            Ok(0)
        }
        Cmd::Plugins { paths, doc } => {
            spyral_host::logs::init_stderr_logging("warn");
            match doc {
                Some(kind) => doc_kind(&paths, &kind)?,
                None => list_plugins(&paths)?,
            }
            Ok(0)
        }
        Cmd::Schema { out, plugins } => {
            spyral_host::logs::init_stderr_logging("warn");
            write_schema(out.as_deref(), &plugins)?;
            Ok(0)
        }
        Cmd::NewPhase { name, dir } => {
            let sdk = spyral_host::sdk::install_default()?;
            let root = scaffold::new_phase(&name, &dir, &sdk.dir)?;
            let lib = name.replace('-', "_");
            println!("wrote plugin crate {}", root.display());
            println!(
                "it builds against the plugin SDK in {}{}",
                sdk.dir.display(),
                if sdk.fresh { " (installed now)" } else { "" }
            );
            println!("next: cd {} && cargo build --release", root.display());
            println!(
                "then: spyral plugins {}",
                root.join(format!("target/release/lib{lib}.so")).display()
            );
            Ok(0)
        }
        Cmd::Sdk { path } => {
            let sdk = spyral_host::sdk::install_default()?;
            if path {
                println!("{}", sdk.dir.display());
            } else {
                println!(
                    "plugin SDK {}: {}",
                    if sdk.fresh {
                        "installed in"
                    } else {
                        "already installed in"
                    },
                    sdk.dir.display()
                );
                for c in spyral_host::sdk::Sdk::crates() {
                    println!(
                        "  {} {}: {}",
                        c.name,
                        c.version,
                        sdk.dir.join(&c.name).display()
                    );
                }
                println!("`spyral new-phase NAME` writes a plugin crate that depends on it.");
            }
            Ok(0)
        }
        Cmd::Status { pipeline, o, json } => {
            spyral_host::logs::init_stderr_logging("warn");
            let p = parent::load_pipeline(&pipeline, &o.to_overrides()?)?;
            let mut prepared = parent::prepare(&p, "warn")?;
            let collected = runs::collect(&p.traces, &p.runs);
            let mut run_list: Vec<u32> = collected.runs.iter().map(|r| r.run).collect();
            run_list.sort_unstable();
            let rows = prepared
                .host
                .status(&run_list)
                .map_err(parent::RunError::from)?;
            prepared.host.finish();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let names: Vec<&str> = prepared.chain.iter().map(|c| c.name()).collect();
                print!("{}", spyral_host::status::render(&rows, &names));
            }
            Ok(0)
        }
        Cmd::Report {
            pipeline,
            launch,
            out,
        } => {
            spyral_host::logs::init_stderr_logging("warn");
            // Absolute before `prepare` enters the pipeline's folder.
            let launch = launch.map(std::path::absolute).transpose()?;
            let out = out.map(std::path::absolute).transpose()?;
            let p = parent::load_pipeline(&pipeline, &Overrides::default())?;
            let prepared = parent::prepare(&p, "warn")?;
            prepared.host.finish();
            let written = spyral_host::report_cmd::write(
                &p,
                &prepared.chain,
                launch.as_deref(),
                out.as_deref(),
            )?;
            println!("wrote {}", written.display());
            Ok(0)
        }
        Cmd::Slurm {
            pipeline,
            tasks,
            cpus_per_task,
            time,
            partition,
            sbatch_arg,
            setup,
            submit,
        } => {
            let p = Pipeline::load(&pipeline)?;
            let abs = std::path::absolute(&pipeline)?;
            // The scripts run `spyral assets` and `spyral run` on this pipeline: it is validated
            // as they would validate it (chain, layout against the trace folder) before the
            // scripts' folders are created.
            drop(parent::prepare(&p, "warn")?);
            let exe = std::env::current_exe()?;
            let has_mem = sbatch_arg.iter().any(|a| a.starts_with("--mem"));
            let opts = spyral_host::slurm::SlurmOptions {
                tasks,
                cpus_per_task,
                time,
                partition,
                extra: sbatch_arg,
                setup,
            };
            let scripts = spyral_host::slurm::write_scripts(&exe, &abs, &p.workspace, &opts)?;
            println!("assets script: {}", scripts.assets.display());
            println!("array script:  {}", scripts.array.display());
            let n_runs = runs::collect(&p.traces, &p.runs).runs.len();
            if tasks > n_runs {
                eprintln!(
                    "spyral: warning: {tasks} tasks for {n_runs} run(s): {} task(s) will have nothing to do",
                    tasks - n_runs
                );
            }
            if !has_mem {
                match spyral_host::slurm::suggest_mem(&p.workspace, cpus_per_task) {
                    Some(s) => eprintln!("spyral: suggestion: {s}"),
                    None => eprintln!(
                        "spyral: no --mem given; after a first launch (even `spyral run --runs N` on one run), `spyral slurm` suggests one from its report"
                    ),
                }
            }
            if submit {
                let (a, b) = spyral_host::slurm::submit(&scripts)?;
                println!("submitted assets job {a} and array job {b} (runs after {a} succeeds)");
            } else {
                // Every path shell-quoted: safe to paste whatever the folder names are.
                let mut line = b"submit with: ".to_vec();
                line.extend(spyral_host::slurm::submit_hint(&scripts).into_encoded_bytes());
                line.push(b'\n');
                std::io::Write::write_all(&mut std::io::stdout(), &line)?;
            }
            Ok(0)
        }
        Cmd::Simulate {
            out,
            runs,
            first_run,
            events,
            seed,
            format,
            pad_map,
            config,
            threads,
            overwrite,
        } => {
            let format = spyral_host::demo::parse_format(&format).map_err(anyhow::Error::msg)?;
            spyral_host::demo::simulate(&spyral_host::demo::SimulateOptions {
                out,
                first_run,
                events: vec![events; runs as usize],
                seed,
                format,
                pad_map,
                config,
                threads: threads.unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(1)
                }),
                overwrite,
            })?;
            Ok(0)
        }
        Cmd::Demo {
            dir,
            no_display,
            overwrite,
        } => Ok(spyral_host::demo::demo(&dir, no_display, overwrite)? as u8),
        Cmd::Worker | Cmd::PluginHost => unreachable!("handled in main"),
    }
}

fn print_plan(v: &parent::PlanView) {
    println!(
        "{} runs found in {} ({}), {:?} schedule",
        v.runs_found,
        v.traces.display(),
        spyral_host::segments::human_bytes(v.total_bytes),
        v.schedule
    );
    if let Some(note) = &v.note {
        println!("{note}");
    }
    if !v.missing.is_empty() {
        println!("missing in range: {}", v.missing.summary(20));
    }
    for u in &v.unusable {
        println!("cannot use {u}");
    }
    if !v.skipped.is_empty() {
        println!("skipped: {}", v.skipped.summary(20));
    }
    println!("{:>6}  {:>8}  {:>12}  runs", "worker", "load", "bytes");
    for s in &v.workers {
        println!(
            "{:>6}  {:>7.2}%  {:>12}  {:?}",
            s.worker,
            s.load_percent,
            spyral_host::segments::human_bytes(s.bytes),
            s.runs
        );
    }
}

fn json_to_yaml(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => serde_saphyr::to_string(&v).unwrap_or_else(|_| text.to_string()),
        Err(_) => text.to_string(),
    }
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.trim_end()
        .lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn validate(path: &std::path::Path) -> Result<()> {
    let p = Pipeline::load(path)?;
    let prepared = parent::prepare(&p, "warn")?;
    prepared.host.finish();
    let chain = prepared.chain;
    // The trace folder and the run range are checked too; a pipeline may be written before
    // its data exist, so finding no runs is a warning here (and an error for `run`).
    let collected = runs::collect(&p.traces, &p.runs);
    if collected.runs.is_empty() {
        eprintln!(
            "spyral: warning: {}",
            spyral_host::launch::no_runs(&p, &collected)
        );
    }
    let bytes: u64 = collected.runs.iter().map(|r| r.bytes).sum();
    println!("# {}: valid", p.path.display());
    println!("workspace: {}", p.workspace.display());
    println!(
        "traces: {}  # {} runs in range ({}){}{}",
        p.traces.display(),
        collected.runs.len(),
        spyral_host::segments::human_bytes(bytes),
        if collected.missing.is_empty() {
            String::new()
        } else {
            format!("; missing: {}", collected.missing.summary(10))
        },
        if collected.unusable.is_empty() {
            String::new()
        } else {
            format!("; unusable: {}", collected.unusable_lines().join(", "))
        }
    );
    println!(
        "runs: {{min: {}, max: {}, skip: {:?}}}",
        p.runs.min, p.runs.max, p.runs.skip
    );
    println!("workers: {}", p.workers);
    println!(
        "schedule: {}",
        match p.schedule {
            Schedule::Snake => "snake",
            Schedule::Dynamic => "dynamic",
        }
    );
    match p.seed {
        Some(s) => println!("seed: {s}"),
        None => println!("seed: null  # drawn at random at each launch"),
    }
    println!(
        "on_error: {}",
        match p.on_error {
            OnError::Continue => "continue",
            OnError::Abort => "abort",
        }
    );
    println!("phases:");
    for c in &chain {
        println!("  - kind: {}", c.resolved.kind);
        println!("    name: {}", c.name());
        println!("    active: {}", c.active());
        println!("    # from {} ({})", c.resolved.library, c.source);
        println!("    config:");
        println!("{}", indent(&json_to_yaml(&c.resolved.config), 6));
    }
    let active: Vec<&str> = chain
        .iter()
        .filter(|c| c.active())
        .map(|c| c.name())
        .collect();
    println!("# schema chain ok: {}", active.join(" -> "));
    Ok(())
}

/// The libraries `spyral plugins` would list (test fixtures found beside the binary left out).
fn listed_libraries(paths: &[PathBuf]) -> Result<Vec<spyral_host::plugin_host::LibraryView>> {
    let mut host = spyral_host::plugin_host::PluginHost::start()?;
    let listed = host.plugins(paths);
    host.finish();
    let (libs, _refused) = listed?;
    Ok(libs
        .into_iter()
        .filter(|l| !(l.scanned && spyral_host::plugins::is_test_library(&l.id.name)))
        .collect())
}

/// `spyral plugins --doc KIND`: the kind's manual, or the unknown-kind error with its "did you
/// mean".
fn doc_kind(paths: &[PathBuf], kind: &str) -> Result<()> {
    let libs = listed_libraries(paths)?;
    for lib in &libs {
        if let Some(k) = lib.kinds.iter().find(|k| k.kind == kind) {
            let from = format!("{} {}  {}", lib.id.name, lib.id.version, lib.source);
            print!("{}", spyral_host::reference::render_doc(k, &from)?);
            return Ok(());
        }
    }
    let mut known: Vec<String> = libs
        .iter()
        .flat_map(|l| l.kinds.iter().map(|k| k.kind.clone()))
        .collect();
    known.sort();
    known.dedup();
    let hint = spyral_host::plugins::closest(kind, &known)
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    anyhow::bail!(
        "unknown phase kind `{kind}`{hint}; known kinds: {}",
        known.join(", ")
    )
}

/// `spyral schema`: the pipeline file's JSON Schema over every kind found.
fn write_schema(out: Option<&std::path::Path>, plugins: &[PathBuf]) -> Result<()> {
    let libs = listed_libraries(plugins)?;
    let kinds: Vec<_> = libs.into_iter().flat_map(|l| l.kinds).collect();
    let schema = spyral_host::reference::pipeline_schema(&kinds);
    let text = format!("{}\n", serde_json::to_string_pretty(&schema)?);
    match out {
        Some(path) => {
            use anyhow::Context as _;
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn list_plugins(paths: &[PathBuf]) -> Result<()> {
    let mut host = spyral_host::plugin_host::PluginHost::start()?;
    let listed = host.plugins(paths);
    if let Some(full) = host.last_full_report.take() {
        // The user asked about this library: the whole layout report is what they need.
        println!("{full}");
    }
    let (libs, refused) = listed?;
    host.finish();
    // spyral's own test fixtures, when found beside a development build, are not listed.
    let libs: Vec<_> = libs
        .into_iter()
        .filter(|l| !(l.scanned && spyral_host::plugins::is_test_library(&l.id.name)))
        .collect();
    let refused: Vec<_> = refused
        .into_iter()
        .filter(|r| {
            !r.path
                .as_deref()
                .is_some_and(spyral_host::plugins::is_test_library_file)
        })
        .collect();
    for lib in &libs {
        println!("{} {}  {}", lib.id.name, lib.id.version, lib.source);
        println!(
            "  built against spyral-core {} with {}; code {}",
            lib.core_version,
            lib.rustc_version,
            spyral_host::identity::short(&lib.id.code)
        );
        if lib.kinds.is_empty() {
            println!("  (no phase kinds)");
        }
        for k in &lib.kinds {
            println!(
                "  kind `{}` (default name {}): {}",
                k.kind, k.default_name, k.description
            );
            println!("    default config:");
            println!("{}", indent(&json_to_yaml(&k.default_config), 6));
        }
    }
    for r in &refused {
        eprintln!(
            "spyral: refused: {}",
            r.message.lines().next().unwrap_or_default()
        );
    }
    Ok(())
}
