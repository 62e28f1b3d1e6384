//! `spyral run`: the parent process, tying the parts of a launch together.
//!
//! [`run`] is a short sequence of stages, each with one job: signal handling; `open` (the
//! pipeline and its validation through the plugin host, `launch`; nothing is created before it
//! passes and runs are found; then the workspace, the launch's log folder and its log);
//! `plan_work` (assets and shared data in the plugin host, event chunks, the plan over the
//! workers, `runs`, and the dispatcher, `dispatch`); the workers (`supervise`); the
//! `EventLoop`, which feeds worker messages, deaths, interrupts and ticks to the dispatcher
//! (who gets what) and the ledger (`report`, what happened), draws progress (`display`) and
//! carries out the dispatcher's actions; finally `launch_report` and `write_outputs`
//! (`report.json`, the HTML report, the summary and the exit code).

pub use crate::launch::{
    assets, create_workspace, enter_pipeline_dir, load_pipeline, lock_holder, parse_shard, plan,
    prepare, segment_budget, shard_runs, Overrides, PhaseSeconds, PlanView, Prepared, RunError,
    RunFlags,
};

use crate::chain::PhaseView;
use crate::dispatch::{Action, Death, Dispatcher, StopSignal, Stopping, UnitEnd, UnitId};
use crate::display::Display;
use crate::launch::{no_runs, random_seed, remove_orphan_asset_partials, write_layout_reports};
use crate::pipeline::{OnError, Pipeline, Schedule};
use crate::protocol::RunOutcome;
use crate::protocol::{Job, Part, WorkerMsg};
use crate::report::{
    summary_text, write_report, Ledger, Report, RunStatus, SegmentReport, SharedReport,
    WorkerReport,
};
use crate::runs;
use crate::segments::{human_bytes, Segment};
use crate::supervise::{
    signal_thread, spawn_worker, ticker, Event, SignalState, WorkerExit, WorkerProc,
};
use crossbeam_channel::unbounded;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The outcome of `spyral run`.
pub struct Outcome {
    /// Process exit code.
    pub code: i32,
}

/// What comes after a stage of a launch: the next stage's input, or the end of the launch.
enum Step<T> {
    /// Go on with this.
    Go(T),
    /// The launch ends here (nothing to do, or interrupted).
    Stop(Outcome),
}

/// A validated launch: its pipeline (seed fixed), chain, runs, workspace and log folder.
struct Opened {
    p: Pipeline,
    chain: Vec<PhaseView>,
    collected: runs::Collected,
    /// The launch's log folder.
    launch: PathBuf,
    seed: u64,
    seed_given: bool,
    /// Who holds this launch's locks.
    holder: String,
}

/// The work of a launch: shared segments, the units and the dispatcher that hands them out.
struct Planned {
    segments: Vec<Segment>,
    shared_times: Vec<(String, f64)>,
    chunks_per_run: HashMap<u32, u32>,
    unit_of: HashMap<(u32, Part), UnitId>,
    dispatcher: Dispatcher,
    n_workers: usize,
}

/// `spyral run`.
pub fn run(path: &Path, o: &Overrides, flags: &RunFlags) -> Result<Outcome, RunError> {
    let started = Instant::now();
    // Signal handling first: an interrupt at any point ends cleanly.
    let (tx, rx) = unbounded::<Event>();
    let sig_state = Arc::new(SignalState::default());
    let signals = signal_thread(tx.clone(), Arc::clone(&sig_state));
    let (opened, host) = match open(path, o, flags)? {
        Step::Go(x) => x,
        Step::Stop(outcome) => return Ok(outcome),
    };
    let planned = match plan_work(&opened, host, &sig_state)? {
        Step::Go(x) => x,
        Step::Stop(outcome) => return Ok(outcome),
    };
    let Planned {
        segments,
        shared_times,
        chunks_per_run,
        unit_of,
        dispatcher,
        n_workers,
    } = planned;

    let job = job_template(&opened, flags, &segments)?;
    ticker(tx.clone());
    let spawn = |i: usize| {
        let job = Job {
            worker: i,
            log_file: opened.launch.join(format!("worker-{i}.log")),
            ..job.clone()
        };
        spawn_worker(i, &job, &tx)
            .map_err(|e| RunError::Io(format!("cannot start worker {i}: {e}")))
    };
    let mut workers: Vec<WorkerProc> = Vec::new();
    for i in 0..n_workers {
        workers.push(spawn(i)?);
    }
    let mut lp = EventLoop::new(
        &opened,
        flags,
        &segments,
        &chunks_per_run,
        unit_of,
        dispatcher,
        workers,
    );
    while lp.workers.iter().any(|w| w.alive) {
        let Ok(ev) = rx.recv() else { break };
        let actions = lp.handle(ev);
        lp.perform(actions, &spawn)?;
    }
    let ended = lp.end();
    drop(signals);
    let report = launch_report(&opened, ended, segments, shared_times, n_workers, started);
    Ok(write_outputs(&opened, &report))
}

/// Validates everything that can be validated, then creates the workspace and the launch's log
/// folder, starts its log, removes dead launches' temporary files and logs what will run.
fn open(
    path: &Path,
    o: &Overrides,
    flags: &RunFlags,
) -> Result<Step<(Opened, crate::plugin_host::PluginHost)>, RunError> {
    let mut p = load_pipeline(path, o)?;
    // Validate everything that can be validated before creating anything.
    let Prepared {
        host,
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
            return Ok(Step::Stop(Outcome { code: 0 }));
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
    let opened = Opened {
        p,
        chain,
        collected,
        launch,
        seed,
        seed_given,
        holder,
    };
    Ok(Step::Go((opened, host)))
}

/// Creates the assets and shared data (in the plugin host, which ends here), splits long runs
/// into event chunks when the chain allows it, and plans the units over the workers.
fn plan_work(
    o: &Opened,
    mut host: crate::plugin_host::PluginHost,
    sig_state: &SignalState,
) -> Result<Step<Planned>, RunError> {
    let (p, chain, collected) = (&o.p, &o.chain, &o.collected);
    eprintln!("spyral: creating assets...");
    sig_state.child.store(host.pid(), Ordering::SeqCst);
    let made = host.assets(&o.holder, true);
    // Event ranges, to split long runs, when every active phase can be split and merged.
    let splittable = p.chunk_events > 0
        && chain.first().is_some_and(|c| c.active())
        && chain.iter().filter(|c| c.active()).all(|c| c.splittable);
    let mut ranges: HashMap<u32, [u64; 2]> = match (&made, splittable) {
        (Ok(_), true) => {
            let runs: Vec<u32> = collected.runs.iter().map(|r| r.run).collect();
            host.events(&runs)
                .inspect_err(|e| tracing::error!("{e}"))?
                .into_iter()
                .filter_map(|(r, e)| e.map(|e| (r, e)))
                .collect()
        }
        _ => HashMap::new(),
    };
    // One worker gains nothing from splitting a run (the same bytes, plus the merges): runs
    // stay whole, except those an earlier launch left chunks of, which are reused.
    if p.workers <= 1 {
        let has_chunks = |run: u32| {
            chain
                .iter()
                .filter(|c| c.active())
                .any(|c| spyral_core::chunk::chunk_dir(&p.workspace.join(c.name()), run).exists())
        };
        let whole = ranges
            .iter()
            .filter(|&(&run, r)| r[1] - r[0] >= p.chunk_events && !has_chunks(run))
            .count();
        ranges.retain(|&run, _| has_chunks(run));
        if whole > 0 {
            tracing::info!(
                "one worker: {whole} run(s) longer than {} events processed whole, not in chunks",
                p.chunk_events
            );
        }
    }
    sig_state.child.store(0, Ordering::SeqCst);
    host.finish();
    if sig_state.interrupted.load(Ordering::SeqCst) {
        drop(made);
        remove_orphan_asset_partials(p, chain, &o.holder);
        eprintln!("spyral: interrupted while creating assets; nothing ran");
        tracing::warn!("interrupted while creating assets");
        return Ok(Step::Stop(Outcome { code: 130 }));
    }
    let (segments, shared_times) = made.inspect_err(|e| tracing::error!("{e}"))?;

    // The units (whole runs, chunks and merges), the plan, and the dispatcher that follows
    // (and corrects) it.
    let merged: Vec<String> = chain
        .iter()
        .filter(|c| c.active())
        .map(|c| c.name().to_string())
        .collect();
    let units = crate::dispatch::units_for(&collected.runs, &ranges, p.chunk_events, &merged);
    let mut chunks_per_run: HashMap<u32, u32> = HashMap::new();
    for u in &units {
        if let Part::Chunk { count, .. } = u.part {
            chunks_per_run.insert(u.run, count);
        }
    }
    for (run, n) in &chunks_per_run {
        tracing::info!(
            "run {run}: events {}..={} in {n} chunks of about {} events",
            ranges[run][0],
            ranges[run][1],
            p.chunk_events
        );
    }
    // Plan over the units a worker can start with (a chunk's later phases, merges and commits
    // wait for others).
    let waits = crate::dispatch::prerequisites(&units);
    let mut startable: Vec<runs::Run> = units
        .iter()
        .enumerate()
        .filter(|(i, _)| waits[*i].is_empty())
        .map(|(i, u)| runs::Run {
            run: i as u32,
            bytes: u.cost,
        })
        .collect();
    runs::sort_runs(&mut startable);
    let plan = match p.schedule {
        Schedule::Snake => runs::snake(&startable, p.workers),
        Schedule::Dynamic => runs::dynamic_estimate(&startable, p.workers),
    };
    let describe = |i: u32| {
        let u = &units[i as usize];
        format!("{}{}", u.run, u.part)
    };
    for s in &plan {
        tracing::info!(
            "worker {} {} runs [{}]: load {:.2}%",
            s.worker,
            if p.schedule == Schedule::Snake {
                "gets"
            } else {
                "expected to get"
            },
            s.runs
                .iter()
                .map(|&i| describe(i))
                .collect::<Vec<_>>()
                .join(", "),
            s.load_percent
        );
    }
    let n_workers = plan.len();
    warn_worker_count(p.workers, n_workers, collected.runs.len());
    let unit_of: HashMap<(u32, Part), UnitId> = units
        .iter()
        .enumerate()
        .map(|(i, u)| ((u.run, u.part.clone()), UnitId(i)))
        .collect();
    let (plans, shared) = match p.schedule {
        Schedule::Snake => (
            plan.iter()
                .map(|s| s.runs.iter().map(|&i| UnitId(i as usize)).collect())
                .collect(),
            Vec::new(),
        ),
        Schedule::Dynamic => (
            vec![Vec::new(); n_workers],
            startable.iter().map(|r| UnitId(r.run as usize)).collect(),
        ),
    };
    let dispatcher = Dispatcher::new(units, plans, shared, p.on_error == OnError::Abort);
    Ok(Step::Go(Planned {
        segments,
        shared_times,
        chunks_per_run,
        unit_of,
        dispatcher,
        n_workers,
    }))
}

/// The job message every worker gets (its index and log file filled in per worker): the chain
/// exactly as the parent validated it, so workers never read the pipeline file.
fn job_template(o: &Opened, flags: &RunFlags, segments: &[Segment]) -> Result<Job, RunError> {
    let base_dir = std::env::current_dir()
        .map_err(|e| RunError::Io(format!("cannot read the current folder: {e}")))?;
    let launch_name = o
        .launch
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Job {
        pipeline: o.p.path.clone(),
        workspace: o.p.workspace.clone(),
        traces: o.p.traces.clone(),
        base_dir,
        chain: o.chain.iter().map(|c| c.resolved.clone()).collect(),
        launch: launch_name,
        worker: 0,
        seed: o.seed,
        seed_fixed: o.seed_given,
        log_file: o.launch.join("worker-0.log"),
        log_level: flags.log_level.clone(),
        force: flags.force.clone(),
        run_timeout_s: o.p.run_timeout.map(|t| t.seconds()),
        segments: segments.iter().map(Segment::entry).collect(),
    })
}

/// The parent's state while workers run: it feeds each event to the dispatcher (who gets what)
/// and the ledger (what happened), and draws progress.
struct EventLoop<'a> {
    p: &'a Pipeline,
    segments: &'a [Segment],
    unit_of: HashMap<(u32, Part), UnitId>,
    dispatcher: Dispatcher,
    workers: Vec<WorkerProc>,
    ledger: Ledger,
    display: Display,
    /// Cost of the units finished so far (progress).
    done_bytes: u64,
    interrupted: bool,
    /// The split-run markers of the runs in progress as chunks (`spyral status` sees them; None
    /// when another launch holds the run's).
    split_markers: HashMap<u32, Option<crate::locks::Lock>>,
    /// Who holds this launch's locks.
    holder: &'a str,
    /// The active phases' names, in chain order.
    active: Vec<String>,
}

impl<'a> EventLoop<'a> {
    /// Announces the launch and sets up the ledger and the display.
    fn new(
        o: &'a Opened,
        flags: &RunFlags,
        segments: &'a [Segment],
        chunks_per_run: &HashMap<u32, u32>,
        unit_of: HashMap<(u32, Part), UnitId>,
        dispatcher: Dispatcher,
        mut workers: Vec<WorkerProc>,
    ) -> Self {
        let p = &o.p;
        let total_bytes: u64 = dispatcher.units().iter().map(|u| u.cost).sum();
        let ledger = Ledger::new(&o.collected.runs, chunks_per_run);
        eprintln!(
            "spyral: {} runs ({}) on {} worker(s), {} schedule, seed {}; logs in {}",
            o.collected.runs.len(),
            human_bytes(total_bytes),
            workers.len(),
            match p.schedule {
                Schedule::Snake => "snake",
                Schedule::Dynamic => "dynamic",
            },
            o.seed,
            o.launch.display()
        );
        let use_bars = !flags.no_display && std::io::stderr().is_terminal();
        let active_phases = o.chain.iter().filter(|c| c.active()).count() as u32;
        let display = Display::new(
            use_bars,
            &mut workers,
            o.collected.runs.len() as u64,
            total_bytes,
            active_phases,
        );
        EventLoop {
            p,
            segments,
            unit_of,
            dispatcher,
            workers,
            ledger,
            display,
            done_bytes: 0,
            interrupted: false,
            split_markers: HashMap::new(),
            holder: &o.holder,
            active: o
                .chain
                .iter()
                .filter(|c| c.active())
                .map(|c| c.name().to_string())
                .collect(),
        }
    }

    /// One event in, the dispatcher's actions out.
    fn handle(&mut self, ev: Event) -> Vec<Action> {
        let actions = self.handle_event(ev);
        // A split run's marker goes when the run has ended (committed, failed or stopped).
        let ledger = &self.ledger;
        self.split_markers
            .retain(|&run, _| ledger.status(run) == Some(RunStatus::Started));
        actions
    }

    /// Takes the split-run marker of `run` when a part of it starts (tried once per run; a
    /// marker held by another launch splitting the same run is left to it).
    fn mark_split(&mut self, run: u32, part: &Part) {
        if matches!(part, Part::Whole) || self.split_markers.contains_key(&run) {
            return;
        }
        let path = crate::locks::split_run_path(&self.p.workspace, run);
        let lock = crate::locks::insist(|| crate::locks::try_lock(&path, self.holder))
            .unwrap_or_else(|e| {
                tracing::warn!("run {run}: {e} (`spyral status` will not show it running)");
                None
            });
        self.split_markers.insert(run, lock);
    }

    fn handle_event(&mut self, ev: Event) -> Vec<Action> {
        match ev {
            Event::Tick => self.on_tick(),
            Event::Signal(sig) => self.on_signal(sig),
            Event::BadLine(i, line) => {
                tracing::warn!("worker {i} wrote an unreadable message: {line}");
                Vec::new()
            }
            Event::Msg(i, msg) => self.on_message(i, *msg),
            Event::Exited(i, how) => self.on_exit(i, &how),
        }
    }

    /// Redraws, and kills the workers of units past the time limit and its grace period.
    fn on_tick(&mut self) -> Vec<Action> {
        self.display.tick(&self.workers);
        // A phase that ignores the request to stop at the run's time limit: its worker is
        // killed after a grace period (the run fails, the others go on).
        let Some(limit) = self.p.run_timeout else {
            return Vec::new();
        };
        let grace = (limit.seconds() * 0.1).clamp(5.0, 60.0);
        let kills = self.dispatcher.overdue(
            Instant::now(),
            limit.duration(),
            Duration::from_secs_f64(grace),
        );
        for a in &kills {
            if let Action::Signal { worker, .. } = a {
                tracing::error!(
                    "worker {worker}: run {:?} passed run_timeout ({limit}) by {grace:.0} s without stopping; killing the worker",
                    self.workers[*worker].current_run
                );
            }
        }
        kills
    }

    /// SIGINT or SIGTERM: the first stops the workers after their phase, the second kills them.
    fn on_signal(&mut self, sig: i32) -> Vec<Action> {
        if self.interrupted {
            eprintln!("spyral: second interrupt: killing the workers");
        } else {
            self.interrupted = true;
            eprintln!(
                "spyral: interrupted (signal {sig}): stopping the workers after their current phase (interrupt again to kill them)"
            );
            tracing::warn!("interrupted by signal {sig}");
        }
        self.dispatcher.interrupt()
    }

    /// A message from worker `i`.
    fn on_message(&mut self, i: usize, msg: WorkerMsg) -> Vec<Action> {
        match msg {
            WorkerMsg::Ready {
                startup_ms,
                attach_ms,
            } => {
                let w = &mut self.workers[i];
                w.attach_ms = Some(attach_ms);
                // From spawn to ready, as seen by the parent (exec and linking included).
                let seen = w.spawned.elapsed().as_secs_f64() * 1e3;
                w.startup_ms = Some(seen);
                tracing::info!(
                    "worker {i} ready {seen:.1} ms after spawn ({startup_ms:.1} ms inside the worker)"
                );
                Vec::new()
            }
            WorkerMsg::Next => {
                self.workers[i].current_run = None;
                self.workers[i].current_phase = None;
                self.dispatcher.request(i)
            }
            WorkerMsg::RunStarted { run, part } => {
                self.mark_split(run, &part);
                let w = &mut self.workers[i];
                w.current_run = Some(run);
                w.current_part = part.to_string();
                w.one_phase = matches!(part, Part::Chunk { .. } | Part::Merge { .. });
                w.unit_phase = match &part {
                    Part::Chunk { phase, .. } | Part::Merge { phase, .. } => self
                        .active
                        .iter()
                        .position(|a| a == phase)
                        .map(|k| k as u32 + 1),
                    _ => None,
                };
                w.current_phase = None;
                w.phases_done = 0;
                w.done = 0;
                w.total = 0;
                if let Some(&u) = self.unit_of.get(&(run, part)) {
                    self.dispatcher.started(i, u, Instant::now());
                    self.workers[i].unit_cost = self.dispatcher.unit(u).cost;
                }
                self.ledger.started(run, i);
                self.display.worker(&self.workers[i], &self.workers);
                Vec::new()
            }
            WorkerMsg::PhaseStarted { run: _, phase } => {
                let w = &mut self.workers[i];
                w.current_phase = Some(phase);
                w.done = 0;
                w.total = 0;
                self.display.worker(&self.workers[i], &self.workers);
                Vec::new()
            }
            WorkerMsg::Progress { done, total, .. } => {
                let w = &mut self.workers[i];
                w.done = done;
                w.total = total;
                self.display.worker(&self.workers[i], &self.workers);
                Vec::new()
            }
            WorkerMsg::PhaseFinished { run, part, record } => {
                if record.status != crate::protocol::PhaseStatus::Constructed {
                    let w = &mut self.workers[i];
                    w.phases_done += 1;
                    w.done = 0;
                    w.total = 0;
                }
                self.ledger.phase(run, part, record);
                self.display.worker(&self.workers[i], &self.workers);
                Vec::new()
            }
            WorkerMsg::RunFinished {
                run,
                part,
                outcome,
                wall_s,
            } => self.on_unit_finished(i, run, part, outcome, wall_s),
            WorkerMsg::Fatal { message } => {
                tracing::error!("worker {i} could not start: {message}");
                self.display
                    .println(&format!("worker {i} could not start: {message}"));
                self.workers[i].exit = WorkerExit::Fatal { message };
                Vec::new()
            }
            WorkerMsg::Done { peak_rss_kib } => {
                self.workers[i].peak_rss_kib = Some(peak_rss_kib);
                Vec::new()
            }
        }
    }

    /// Worker `i` finished a unit (a run, a chunk or a merge), well or not.
    fn on_unit_finished(
        &mut self,
        i: usize,
        run: u32,
        part: Part,
        outcome: RunOutcome,
        wall_s: f64,
    ) -> Vec<Action> {
        let unit = self.unit_of.get(&(run, part.clone())).copied();
        self.done_bytes += unit.map(|u| self.dispatcher.unit(u).cost).unwrap_or(0);
        let w = &mut self.workers[i];
        w.current_run = None;
        w.current_phase = None;
        w.unit_cost = 0;
        if let RunOutcome::InAnotherLaunch { phase, holder } = &outcome {
            let msg = format!(
                "run {run} is running in another launch ({holder}; phase {phase}); left to it"
            );
            tracing::warn!("{msg}");
            self.display.println(&msg);
        }
        let end = match outcome {
            RunOutcome::Ok => UnitEnd::Ok,
            RunOutcome::Failed { .. } => UnitEnd::Failed,
            RunOutcome::Interrupted { .. }
            | RunOutcome::Skipped { .. }
            | RunOutcome::InAnotherLaunch { .. } => UnitEnd::NotDone,
        };
        let failure = self.ledger.finished(run, &part, outcome, wall_s);
        if let Some(msg) = &failure {
            tracing::error!("run {run}{part} failed on worker {i}: {msg}");
            self.display
                .println(&format!("run {run}{part} failed: {msg}"));
        }
        self.display
            .overall(self.ledger.finished_runs(), self.done_bytes, &self.workers);
        self.display.worker(&self.workers[i], &self.workers);
        let actions = match unit {
            Some(u) => self.dispatcher.finished(i, u, end, Instant::now()),
            None => Vec::new(),
        };
        if self.dispatcher.stopping() == Stopping::Aborted
            && actions.iter().any(|a| matches!(a, Action::Signal { .. }))
        {
            self.display
                .println("on_error is abort: stopping the other workers");
        }
        actions
    }

    /// Worker `i` exited: its unit fails, its queue goes to the others, a replacement may start.
    fn on_exit(&mut self, i: usize, how: &WorkerExit) -> Vec<Action> {
        self.workers[i].exited(how);
        let death = self.dispatcher.died(i);
        self.report_death(i, how, &death);
        if let Some(u) = death.running {
            self.done_bytes += self.dispatcher.unit(u).cost;
        }
        for u in &death.requeued {
            self.ledger.requeued(self.dispatcher.unit(*u).run);
        }
        self.workers[i].current_run = None;
        self.workers[i].current_phase = None;
        death.actions
    }

    /// Draws the last frame and hands over what the report needs.
    fn end(mut self) -> Ended {
        self.display
            .overall(self.ledger.finished_runs(), self.done_bytes, &self.workers);
        self.display.finish(&self.workers);
        Ended {
            replacements: self.dispatcher.replacements(),
            workers: self.workers,
            ledger: self.ledger,
            interrupted: self.interrupted,
        }
    }

    /// Says how a worker died and what became of its run.
    fn report_death(&mut self, i: usize, how: &WorkerExit, death: &Death) {
        let w = &self.workers[i];
        let (dispatcher, segments, interrupted) =
            (&self.dispatcher, self.segments, self.interrupted);
        let run_timeout_s = self.p.run_timeout.map(|t| t.seconds());
        let (ledger, display) = (&mut self.ledger, &self.display);
        let tail = w.stderr_tail(8);
        let tail_text = if tail.is_empty() {
            "(none)".to_string()
        } else {
            tail.join("\n    ")
        };
        if let Some(u) = death.running {
            let run = dispatcher.unit(u).run;
            let part = &dispatcher.unit(u).part;
            let phase = w
                .current_phase
                .clone()
                .unwrap_or_else(|| "(between phases)".into());
            let note = if death.overdue {
                format!(
                    " (run {run} passed run_timeout of {} s and phase {phase} did not stop when asked; the worker was killed)",
                    run_timeout_s.unwrap_or(0.0)
                )
            } else if *how == (WorkerExit::Signal { signal: 11 })
                && segments.iter().any(|s| s.info.phase.as_str() == phase)
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
            } else {
                String::new()
            };
            let msg = format!(
                "worker {i} died ({how}) in run {run}{part}, phase {phase}{note}; last stderr lines:\n    {tail_text}"
            );
            tracing::error!("{msg}");
            display.println(&msg);
            ledger.died(
                run,
                interrupted,
                format!("worker died ({how}) in phase {phase}{note}"),
            );
        } else if !how.is_clean() && !interrupted {
            let msg = format!("worker {i} exited ({how}); last stderr lines:\n    {tail_text}");
            tracing::error!("{msg}");
            display.println(&msg);
        }
        if !death.requeued.is_empty() {
            let runs: Vec<u32> = death
                .requeued
                .iter()
                .map(|u| dispatcher.unit(*u).run)
                .collect();
            tracing::warn!("worker {i}'s unstarted runs {runs:?} go to the other workers");
        }
    }

    /// Carries out the dispatcher's actions on the worker processes.
    fn perform(
        &mut self,
        actions: Vec<Action>,
        spawn: &dyn Fn(usize) -> Result<WorkerProc, RunError>,
    ) -> Result<(), RunError> {
        for a in actions {
            match a {
                Action::Assign { worker, unit } => {
                    let u = self.dispatcher.unit(unit);
                    self.ledger.assigned(u.run, worker);
                    let spent = self.dispatcher.spent(u.run);
                    self.workers[worker].assign(Some((u.run, u.part.clone(), spent)));
                }
                Action::Release { worker } => self.workers[worker].assign(None),
                Action::Signal { worker, signal } => self.workers[worker].signal(match signal {
                    StopSignal::Term => rustix::process::Signal::TERM,
                    StopSignal::Kill => rustix::process::Signal::KILL,
                }),
                Action::Spawn => {
                    // The new worker asks for work itself once it is ready.
                    let i = self.dispatcher.add_worker();
                    tracing::warn!("starting replacement worker {i}");
                    self.workers.push(spawn(i)?);
                    self.display.add_worker(self.workers.last_mut());
                }
            }
        }
        Ok(())
    }
}

/// What is left of the event loop once every worker is gone.
struct Ended {
    replacements: usize,
    workers: Vec<WorkerProc>,
    ledger: Ledger,
    interrupted: bool,
}

/// The launch's report. Takes the shared segments to unmap them once their sizes are noted.
fn launch_report(
    o: &Opened,
    ended: Ended,
    segments: Vec<Segment>,
    shared_times: Vec<(String, f64)>,
    n_workers: usize,
    started: Instant,
) -> Report {
    let Ended {
        replacements,
        workers,
        ledger,
        interrupted,
    } = ended;
    let segment_reports: Vec<SegmentReport> = segments
        .iter()
        .map(|s| SegmentReport {
            phase: s.info.phase.to_string(),
            name: s.info.name.to_string(),
            bytes: s.info.len,
        })
        .collect();
    drop(segments);
    Report {
        pipeline: o.p.path.clone(),
        workspace: o.p.workspace.clone(),
        seed: o.seed,
        workers: n_workers,
        schedule: o.p.schedule,
        wall_s: started.elapsed().as_secs_f64(),
        interrupted,
        runs_ok: ledger.count(RunStatus::Ok),
        runs_up_to_date: ledger.up_to_date(),
        runs_failed: ledger.count(RunStatus::Failed),
        runs_skipped: ledger.count(RunStatus::Skipped),
        runs_in_another_launch: ledger.count(RunStatus::InAnotherLaunch),
        runs_not_started: ledger.not_run(),
        replacement_workers: replacements,
        unusable: o.collected.unusable_lines(),
        segments: segment_reports,
        shared_data_seconds: shared_times
            .into_iter()
            .map(|(phase, seconds)| SharedReport { phase, seconds })
            .collect(),
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
        runs: ledger.into_runs(),
    }
}

/// Writes `report.json` and the HTML report, prints the summary (whatever happens to the
/// reports, a full disk included) and picks the exit code.
fn write_outputs(o: &Opened, report: &Report) -> Outcome {
    let report_error = write_report(&o.launch.join("report.json"), report).err();
    let mut summary = summary_text(report, &o.chain, &o.launch);
    if let Some(e) = &report_error {
        summary.push_str(&format!(
            "\n  the report could not be written ({e}); this summary is all there is"
        ));
    }
    // The HTML report is a convenience: failing to write it is a warning, never a failed run.
    match crate::report_cmd::write(&o.p, &o.chain, Some(&o.launch), None) {
        Ok(html) => summary.push_str(&format!("\n  html report: {}", html.display())),
        Err(e) => summary.push_str(&format!("\n  warning: no html report: {e}")),
    }
    println!("{summary}");
    tracing::info!("summary:\n{summary}");
    let code = if report.interrupted {
        130
    } else if report.runs_failed > 0 || report.runs_not_started > 0 || report_error.is_some() {
        1
    } else {
        0
    };
    Outcome { code }
}

fn warn_worker_count(asked: usize, started: usize, runs: usize) {
    if started < asked {
        let msg = format!("{asked} workers asked for {runs} run(s): starting {started}");
        tracing::info!("{msg}");
        eprintln!("spyral: {msg}");
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if started > cores {
        let msg = format!(
            "{started} workers on {cores} cores: workers will compete for CPU (Spyral's advice: at most one worker per physical core, leaving one for the parent)"
        );
        tracing::warn!("{msg}");
        eprintln!("spyral: warning: {msg}");
    }
}
