//! `spyral run`: the parent process, tying the parts of a launch together.
//!
//! In order: signal handling; the pipeline and its validation through the plugin host
//! (`launch`; nothing is created before it passes and runs are found); the workspace and the
//! launch's log folder; assets and shared data (in the plugin host); the plan (`runs`); the
//! workers (`supervise`); then an event loop that feeds worker messages, deaths, interrupts and
//! ticks to the dispatcher (`dispatch`, which decides who gets what) and to the ledger
//! (`report`), and draws progress (`display`); finally `report.json` and the summary.

pub use crate::launch::{
    assets, create_workspace, enter_pipeline_dir, load_pipeline, lock_holder, parse_shard, plan,
    prepare, segment_budget, shard_runs, Overrides, PhaseSeconds, PlanView, Prepared, RunError,
    RunFlags,
};
pub use crate::supervise::describe_exit;

use crate::dispatch::{Action, Death, Dispatcher, StopSignal, Stopping, UnitId};
use crate::display::Display;
use crate::launch::{no_runs, random_seed, remove_orphan_asset_partials, write_layout_reports};
use crate::pipeline::{OnError, Schedule};
use crate::protocol::{Job, WorkerMsg};
use crate::report::{
    summary_text, write_report, Ledger, Report, RunStatus, SegmentReport, SharedReport,
    WorkerReport,
};
use crate::runs;
use crate::segments::{human_bytes, Segment};
use crate::supervise::{signal_thread, spawn_worker, ticker, Event, SignalState, WorkerProc};
use crossbeam_channel::unbounded;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    // Event ranges, to split long runs, when every active phase can be split and merged.
    let splittable = p.chunk_events > 0
        && chain.first().is_some_and(|c| c.active())
        && chain.iter().filter(|c| c.active()).all(|c| c.splittable);
    let ranges: HashMap<u32, [u64; 2]> = match (&made, splittable) {
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

    // The units (whole runs, chunks and merges), the plan, and the dispatcher that follows
    // (and corrects) it.
    let units = crate::dispatch::units_for(&collected.runs, &ranges, p.chunk_events);
    let mut chunks_per_run: HashMap<u32, u32> = HashMap::new();
    for u in &units {
        if let crate::protocol::Part::Chunk { count, .. } = u.part {
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
    // Plan over the units a worker can start with (merges wait for their chunks).
    let mut startable: Vec<runs::Run> = units
        .iter()
        .enumerate()
        .filter(|(_, u)| !matches!(u.part, crate::protocol::Part::Merge { .. }))
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
    let unit_of: HashMap<(u32, crate::protocol::Part), UnitId> = units
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
    let mut dispatcher = Dispatcher::new(units, plans, shared, p.on_error == OnError::Abort);

    let resolved: Vec<crate::chain::ResolvedPhase> =
        chain.iter().map(|c| c.resolved.clone()).collect();
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
        seed_fixed: seed_given,
        log_file: launch.join(format!("worker-{i}.log")),
        log_level: flags.log_level.clone(),
        force: flags.force.clone(),
        run_timeout_s: p.run_timeout.map(|t| t.seconds()),
        segments: segments.iter().map(Segment::entry).collect(),
    };
    ticker(tx.clone());
    let spawn = |i: usize| {
        spawn_worker(i, &job_for(i), &tx)
            .map_err(|e| RunError::Io(format!("cannot start worker {i}: {e}")))
    };
    let mut workers: Vec<WorkerProc> = Vec::new();
    for i in 0..n_workers {
        workers.push(spawn(i)?);
    }
    let total_bytes: u64 = dispatcher.units().iter().map(|u| u.cost).sum();
    let mut ledger = Ledger::new(&collected.runs, &chunks_per_run);
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
    let active_phases = chain.iter().filter(|c| c.active()).count() as u32;
    let mut display = Display::new(
        use_bars,
        &mut workers,
        collected.runs.len() as u64,
        total_bytes,
        active_phases,
    );
    let mut done_bytes = 0u64;
    let mut interrupted = false;

    // The event loop.
    while workers.iter().any(|w| w.alive) {
        let Ok(ev) = rx.recv() else { break };
        let actions = match ev {
            Event::Tick => {
                display.tick(&workers);
                match p.run_timeout {
                    // A phase that ignores the request to stop at the run's time limit: its
                    // worker is killed after a grace period (the run fails, the others go on).
                    Some(limit) => {
                        let grace = (limit.seconds() * 0.1).clamp(5.0, 60.0);
                        let kills = dispatcher.overdue(
                            Instant::now(),
                            limit.duration(),
                            Duration::from_secs_f64(grace),
                        );
                        for a in &kills {
                            if let Action::Signal { worker, .. } = a {
                                tracing::error!(
                                    "worker {worker}: run {:?} passed run_timeout ({limit}) by {grace:.0} s without stopping; killing the worker",
                                    workers[*worker].current_run
                                );
                            }
                        }
                        kills
                    }
                    None => Vec::new(),
                }
            }
            Event::Signal(sig) => {
                if interrupted {
                    eprintln!("spyral: second interrupt: killing the workers");
                } else {
                    interrupted = true;
                    eprintln!(
                        "spyral: interrupted (signal {sig}): stopping the workers after their current phase (interrupt again to kill them)"
                    );
                    tracing::warn!("interrupted by signal {sig}");
                }
                dispatcher.interrupt()
            }
            Event::BadLine(i, line) => {
                tracing::warn!("worker {i} wrote an unreadable message: {line}");
                Vec::new()
            }
            Event::Msg(i, msg) => match *msg {
                WorkerMsg::Ready {
                    startup_ms,
                    attach_ms,
                } => {
                    let w = &mut workers[i];
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
                    workers[i].current_run = None;
                    workers[i].current_phase = None;
                    dispatcher.request(i)
                }
                WorkerMsg::RunStarted { run, part } => {
                    let w = &mut workers[i];
                    w.current_run = Some(run);
                    w.current_part = part.to_string();
                    w.current_phase = None;
                    w.phases_done = 0;
                    w.done = 0;
                    w.total = 0;
                    if let Some(&u) = unit_of.get(&(run, part)) {
                        dispatcher.started(i, u, Instant::now());
                        workers[i].unit_cost = dispatcher.unit(u).cost;
                    }
                    ledger.started(run, i);
                    display.worker(&workers[i], &workers);
                    Vec::new()
                }
                WorkerMsg::PhaseStarted { run: _, phase } => {
                    let w = &mut workers[i];
                    w.current_phase = Some(phase);
                    w.done = 0;
                    w.total = 0;
                    display.worker(&workers[i], &workers);
                    Vec::new()
                }
                WorkerMsg::Progress { done, total, .. } => {
                    let w = &mut workers[i];
                    w.done = done;
                    w.total = total;
                    display.worker(&workers[i], &workers);
                    Vec::new()
                }
                WorkerMsg::PhaseFinished { run, part, record } => {
                    if record.status != crate::protocol::PhaseStatus::Constructed {
                        let w = &mut workers[i];
                        w.phases_done += 1;
                        w.done = 0;
                        w.total = 0;
                    }
                    ledger.phase(run, part, record);
                    display.worker(&workers[i], &workers);
                    Vec::new()
                }
                WorkerMsg::RunFinished {
                    run,
                    part,
                    outcome,
                    wall_s,
                } => {
                    let unit = unit_of.get(&(run, part.clone())).copied();
                    done_bytes += unit.map(|u| dispatcher.unit(u).cost).unwrap_or(0);
                    workers[i].current_run = None;
                    workers[i].current_phase = None;
                    workers[i].unit_cost = 0;
                    if let crate::protocol::RunOutcome::InAnotherLaunch { phase, holder } = &outcome
                    {
                        let msg = format!(
                            "run {run} is running in another launch ({holder}; phase {phase}); left to it"
                        );
                        tracing::warn!("{msg}");
                        display.println(&msg);
                    }
                    let failure = ledger.finished(run, &part, outcome, wall_s);
                    if let Some(msg) = &failure {
                        tracing::error!("run {run}{part} failed on worker {i}: {msg}");
                        display.println(&format!("run {run}{part} failed: {msg}"));
                    }
                    display.overall(ledger.finished_runs(), done_bytes, &workers);
                    display.worker(&workers[i], &workers);
                    let actions = match unit {
                        Some(u) => dispatcher.finished(i, u, failure.is_some()),
                        None => Vec::new(),
                    };
                    if dispatcher.stopping() == Stopping::Aborted
                        && actions.iter().any(|a| matches!(a, Action::Signal { .. }))
                    {
                        display.println("on_error is abort: stopping the other workers");
                    }
                    actions
                }
                WorkerMsg::Fatal { message } => {
                    tracing::error!("worker {i} could not start: {message}");
                    display.println(&format!("worker {i} could not start: {message}"));
                    workers[i].exit = format!("fatal: {message}");
                    Vec::new()
                }
                WorkerMsg::Done { peak_rss_kib } => {
                    workers[i].peak_rss_kib = Some(peak_rss_kib);
                    Vec::new()
                }
            },
            Event::Exited(i, text, ok) => {
                workers[i].exited(&text);
                let death = dispatcher.died(i);
                report_death(
                    &workers[i],
                    &text,
                    ok,
                    &death,
                    &dispatcher,
                    &segments,
                    p.run_timeout.map(|t| t.seconds()),
                    interrupted,
                    &mut ledger,
                    &display,
                );
                if let Some(u) = death.running {
                    done_bytes += dispatcher.unit(u).cost;
                }
                for u in &death.requeued {
                    ledger.requeued(dispatcher.unit(*u).run);
                }
                workers[i].current_run = None;
                workers[i].current_phase = None;
                death.actions
            }
        };
        perform(
            actions,
            &mut dispatcher,
            &mut workers,
            &mut ledger,
            &mut display,
            &spawn,
        )?;
    }
    display.overall(ledger.finished_runs(), done_bytes, &workers);
    display.finish(&workers);
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
    let report = Report {
        pipeline: p.path.clone(),
        workspace: p.workspace.clone(),
        seed,
        workers: n_workers,
        schedule: p.schedule,
        wall_s: started.elapsed().as_secs_f64(),
        interrupted,
        runs_ok: ledger.count(RunStatus::Ok),
        runs_up_to_date: ledger.up_to_date(),
        runs_failed: ledger.count(RunStatus::Failed),
        runs_skipped: ledger.count(RunStatus::Skipped),
        runs_in_another_launch: ledger.count(RunStatus::InAnotherLaunch),
        runs_not_started: ledger.not_run(),
        replacement_workers: dispatcher.replacements(),
        unusable: collected.unusable_lines(),
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
    };
    // The summary is printed whatever happens to the report (a full disk included).
    let report_error = write_report(&launch.join("report.json"), &report).err();
    let mut summary = summary_text(&report, &chain, &launch);
    if let Some(e) = &report_error {
        summary.push_str(&format!(
            "\n  the report could not be written ({e}); this summary is all there is"
        ));
    }
    // The HTML report is a convenience: failing to write it is a warning, never a failed run.
    match crate::report_cmd::write(&p, &chain, Some(&launch), None) {
        Ok(html) => summary.push_str(&format!("\n  html report: {}", html.display())),
        Err(e) => summary.push_str(&format!("\n  warning: no html report: {e}")),
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

/// Carries out the dispatcher's actions on the worker processes.
fn perform(
    mut actions: Vec<Action>,
    dispatcher: &mut Dispatcher,
    workers: &mut Vec<WorkerProc>,
    ledger: &mut Ledger,
    display: &mut Display,
    spawn: &dyn Fn(usize) -> Result<WorkerProc, RunError>,
) -> Result<(), RunError> {
    {
        for a in actions.drain(..) {
            match a {
                Action::Assign { worker, unit } => {
                    let u = dispatcher.unit(unit);
                    ledger.assigned(u.run, worker);
                    workers[worker].assign(Some((u.run, u.part.clone())));
                }
                Action::Release { worker } => workers[worker].assign(None),
                Action::Signal { worker, signal } => workers[worker].signal(match signal {
                    StopSignal::Term => rustix::process::Signal::TERM,
                    StopSignal::Kill => rustix::process::Signal::KILL,
                }),
                Action::Spawn => {
                    // The new worker asks for work itself once it is ready.
                    let i = dispatcher.add_worker();
                    tracing::warn!("starting replacement worker {i}");
                    workers.push(spawn(i)?);
                    display.add_worker(workers.last_mut());
                }
            }
        }
    }
    Ok(())
}

/// Says how a worker died and what became of its run.
#[allow(clippy::too_many_arguments)]
fn report_death(
    w: &WorkerProc,
    text: &str,
    ok: bool,
    death: &Death,
    dispatcher: &Dispatcher,
    segments: &[Segment],
    run_timeout_s: Option<f64>,
    interrupted: bool,
    ledger: &mut Ledger,
    display: &Display,
) {
    let i = w.index;
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
        } else if text.contains("SIGSEGV")
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
            "worker {i} died ({text}) in run {run}{part}, phase {phase}{note}; last stderr lines:\n    {tail_text}"
        );
        tracing::error!("{msg}");
        display.println(&msg);
        ledger.died(
            run,
            interrupted,
            format!("worker died ({text}) in phase {phase}{note}"),
        );
    } else if !ok && !interrupted {
        let msg = format!("worker {i} exited ({text}); last stderr lines:\n    {tail_text}");
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
