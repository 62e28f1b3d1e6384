//! The progress display of a launch: on a terminal, one bar per worker and an overall bar; in a
//! log (no terminal, `--no-display`, SLURM), a plain progress line every few seconds.
//!
//! Progress is measured in work, not in finished runs: every unit (a run, an event chunk, a
//! merge) weighs its trace bytes, and a unit in flight counts the phases it has finished plus
//! the fraction of its current phase (the `done/total` the phase reports). So the overall bar
//! moves while a tens-of-GB run is still running, the elapsed time ticks every second, and the
//! ETA comes from the throughput so far. Lines fit 80 columns; the last frame stays on screen.

use crate::supervise::WorkerProc;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};

/// Scale of the overall bar (positions are parts per million of the launch's work).
const SCALE: u64 = 1_000_000;

/// The display.
pub struct Display {
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    total_runs: u64,
    total_work: u64,
    phases: u32,
    done_work: u64,
    finished_runs: usize,
    started: Instant,
    last_plain: Instant,
}

/// `h:mm:ss` (or `m:ss`).
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// A unit in flight on a worker: its weight, the active phases it has finished, and the
/// progress of its current phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flight {
    /// Weight (trace bytes of the unit).
    pub cost: u64,
    /// Active phases finished.
    pub phases_done: u32,
    /// Whether the unit covers one phase (a chunk through one phase, or a merge) rather than
    /// the chain.
    pub one_phase: bool,
    /// Items done in the current phase.
    pub done: u64,
    /// Items of the current phase (0: unknown).
    pub total: u64,
}

/// The fraction of a launch done: finished work plus the part of each unit in flight.
pub fn fraction(done_work: u64, total_work: u64, flights: &[Flight], phases: u32) -> f64 {
    if total_work == 0 {
        return 0.0;
    }
    let phases = f64::from(phases.max(1));
    let in_flight: f64 = flights
        .iter()
        .map(|f| {
            let within = if f.total > 0 {
                (f.done as f64 / f.total as f64).min(1.0)
            } else {
                0.0
            };
            let of = if f.one_phase { 1.0 } else { phases };
            let of_unit = ((f64::from(f.phases_done) + within) / of).min(1.0);
            f.cost as f64 * of_unit
        })
        .sum();
    ((done_work as f64 + in_flight) / total_work as f64).clamp(0.0, 1.0)
}

fn flights(workers: &[WorkerProc]) -> Vec<Flight> {
    workers.iter().filter_map(WorkerProc::flight).collect()
}

/// The remaining time at the throughput so far (None before any progress).
pub fn eta(elapsed: Duration, fraction: f64) -> Option<Duration> {
    (fraction > 1e-6 && fraction < 1.0)
        .then(|| Duration::from_secs_f64(elapsed.as_secs_f64() * (1.0 - fraction) / fraction))
}

/// What a worker is doing, as the display shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Doing<'a> {
    /// The run it is on.
    pub run: Option<u32>,
    /// Which part of the run (` chunk 2/4 (events ..)`, ` merge of 4 chunks`, or empty).
    pub part: &'a str,
    /// The phase it is in.
    pub phase: Option<&'a str>,
    /// The phase's position (1-based) among the active phases, when known.
    pub position: Option<u32>,
    /// Items done of the phase.
    pub done: u64,
    /// Items of the phase.
    pub total: u64,
    /// Whether the worker is alive.
    pub alive: bool,
}

impl<'a> Doing<'a> {
    /// What `w` is doing: the position of a chain unit's phase is the phases it finished + 1,
    /// a one-phase unit's (a chunk through one phase, a merge) is its phase's place in the chain.
    pub fn of(w: &'a WorkerProc, phases: u32) -> Self {
        Doing {
            run: w.current_run,
            part: &w.current_part,
            phase: w.current_phase.as_deref(),
            position: if w.one_phase {
                w.unit_phase
            } else {
                Some((w.phases_done + 1).min(phases))
            },
            done: w.done,
            total: w.total,
            alive: w.alive,
        }
    }
}

/// What a worker is doing, in at most `width` characters: `run 12 | Cluster 2/4 | 340/1000`
/// (the phase's position among the `phases` active phases, then items done of the phase's
/// items), the same for a one-phase unit: `run 12 chunk 2/4 (events 250..=499) | Cluster 2/4 |
/// 120/250`.
pub fn worker_text(d: &Doing<'_>, phases: u32, width: usize) -> String {
    let line = |part: &str| match (d.run, d.phase) {
        (Some(r), Some(p)) => match d.position {
            Some(k) => format!("run {r}{part} | {p} {k}/{phases} | {}/{}", d.done, d.total),
            None => format!("run {r}{part} | {p} | {}/{}", d.done, d.total),
        },
        (Some(r), None) => format!("run {r}{part}"),
        _ if d.alive => "idle".to_string(),
        _ => "exited".to_string(),
    };
    let mut text = line(d.part);
    if text.chars().count() > width {
        // The chunk's event range goes first, so the moving count stays in view.
        if let Some((short, _)) = d.part.split_once(" (") {
            text = line(short);
        }
    }
    if text.chars().count() <= width {
        text
    } else {
        let mut t: String = text.chars().take(width.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

impl Display {
    /// Bars on a terminal (`bars`), plain lines otherwise. `total_work` is the weight of all
    /// units; `phases` the active phases of the chain.
    pub fn new(
        bars: bool,
        workers: &mut [WorkerProc],
        total_runs: u64,
        total_work: u64,
        phases: u32,
    ) -> Self {
        let mut d = Display {
            multi: None,
            overall: None,
            total_runs,
            total_work,
            phases,
            done_work: 0,
            finished_runs: 0,
            started: Instant::now(),
            last_plain: Instant::now(),
        };
        if !bars {
            return d;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        let overall = multi.add(ProgressBar::new(SCALE));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:20.green/white}] {percent:>3}% {msg} {elapsed_precise} ETA {our_eta}",
            )
            .map(|style| {
                // From the fraction done and the time so far (`?` before anything is done),
                // not indicatif's rate estimate, which says `0s` until it has one.
                style.with_key(
                    "our_eta",
                    |st: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let text = eta(st.elapsed(), f64::from(st.fraction()))
                            .map(clock)
                            .unwrap_or_else(|| "?".into());
                        let _ = w.write_str(&text);
                    },
                )
            })
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        overall.set_prefix("all");
        overall.set_message(format!("0/{total_runs} runs"));
        overall.enable_steady_tick(Duration::from_secs(1));
        d.multi = Some(multi);
        d.overall = Some(overall);
        for w in workers.iter_mut() {
            d.add_worker(Some(w));
        }
        d
    }
    /// A bar for a (replacement) worker.
    pub fn add_worker(&mut self, w: Option<&mut WorkerProc>) {
        let (Some(multi), Some(w)) = (&self.multi, w) else {
            return;
        };
        let bar = multi.add(ProgressBar::new(1));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>3} [{bar:15.cyan/blue}] {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("w{}", w.index));
        bar.set_message("starting");
        w.bar = Some(bar);
    }
    /// Redraws a worker's bar and the overall progress.
    pub fn worker(&self, w: &WorkerProc, workers: &[WorkerProc]) {
        if let Some(bar) = &w.bar {
            bar.set_length(w.total.max(1));
            bar.set_position(w.done.min(w.total.max(1)));
            bar.set_message(worker_text(&Doing::of(w, self.phases), self.phases, 56));
        }
        self.redraw(workers);
    }
    /// Work of finished units, and runs finished.
    pub fn overall(&mut self, finished_runs: usize, done_work: u64, workers: &[WorkerProc]) {
        self.finished_runs = finished_runs;
        self.done_work = done_work;
        self.redraw(workers);
    }
    fn redraw(&self, workers: &[WorkerProc]) {
        if let Some(o) = &self.overall {
            let f = fraction(
                self.done_work,
                self.total_work,
                &flights(workers),
                self.phases,
            );
            o.set_position((f * SCALE as f64) as u64);
            o.set_message(format!("{}/{} runs", self.finished_runs, self.total_runs));
        }
    }
    /// Prints a line above the bars (or on stderr).
    pub fn println(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("spyral: {line}"),
        }
    }
    /// Without bars: a plain progress line every few seconds, with the ETA.
    pub fn tick(&mut self, workers: &[WorkerProc]) {
        if self.multi.is_some() || self.last_plain.elapsed() < Duration::from_secs(5) {
            return;
        }
        self.last_plain = Instant::now();
        eprintln!("spyral: {}", self.plain_line(workers));
    }
    /// The plain progress line.
    pub fn plain_line(&self, workers: &[WorkerProc]) -> String {
        let f = fraction(
            self.done_work,
            self.total_work,
            &flights(workers),
            self.phases,
        );
        let elapsed = self.started.elapsed();
        let ws: Vec<String> = workers
            .iter()
            .filter(|w| w.alive)
            .map(|w| {
                format!(
                    "w{}: {}",
                    w.index,
                    worker_text(&Doing::of(w, self.phases), self.phases, 48)
                )
            })
            .collect();
        format!(
            "[{}] {:.1}% ({}/{} runs), ETA {}; {}",
            clock(elapsed),
            100.0 * f,
            self.finished_runs,
            self.total_runs,
            eta(elapsed, f).map(clock).unwrap_or_else(|| "?".into()),
            ws.join("; ")
        )
    }
    /// Ends the display: the bars' last frame stays on screen.
    pub fn finish(&self, workers: &[WorkerProc]) {
        if let Some(o) = &self.overall {
            self.redraw(workers);
            o.set_message(format!("{}/{} runs", self.finished_runs, self.total_runs));
            o.disable_steady_tick();
            o.abandon();
        }
        for w in workers {
            if let Some(b) = &w.bar {
                b.abandon();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_and_etas() {
        assert_eq!(clock(Duration::from_secs(65)), "1:05");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
        assert_eq!(
            eta(Duration::from_secs(10), 0.25),
            Some(Duration::from_secs(30))
        );
        assert_eq!(eta(Duration::from_secs(10), 0.0), None);
        assert_eq!(eta(Duration::from_secs(10), 1.0), None);
    }

    #[test]
    fn worker_lines_name_the_run_part_phase_position_and_items() {
        let chunk = Doing {
            run: Some(12),
            part: " chunk 2/4 (events 250..=499)",
            phase: Some("Cluster"),
            position: Some(2),
            done: 120,
            total: 250,
            alive: true,
        };
        assert_eq!(
            worker_text(&chunk, 4, 80),
            "run 12 chunk 2/4 (events 250..=499) | Cluster 2/4 | 120/250"
        );
        // Too long: the event range goes first, then the end is cut with a mark.
        assert_eq!(
            worker_text(&chunk, 4, 50),
            "run 12 chunk 2/4 | Cluster 2/4 | 120/250"
        );
        let cut = worker_text(&chunk, 4, 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(cut.ends_with('~'), "{cut}");
        let between = Doing {
            phase: None,
            ..chunk
        };
        assert_eq!(
            worker_text(&between, 4, 80),
            "run 12 chunk 2/4 (events 250..=499)"
        );
        let idle = Doing {
            run: None,
            ..between
        };
        assert_eq!(worker_text(&idle, 4, 80), "idle");
        assert_eq!(
            worker_text(
                &Doing {
                    alive: false,
                    ..idle
                },
                4,
                80
            ),
            "exited"
        );
    }

    #[test]
    fn the_plain_line_has_percent_runs_and_eta() {
        let mut d = Display::new(false, &mut [], 4, 200, 2);
        assert!(d.plain_line(&[]).contains("ETA ?"), "{}", d.plain_line(&[]));
        std::thread::sleep(Duration::from_millis(20));
        d.overall(1, 100, &[]);
        let line = d.plain_line(&[]);
        assert!(line.contains("50.0% (1/4 runs), ETA 0:00"), "{line}");
    }

    #[test]
    fn work_in_flight_counts_finished_phases_and_the_current_fraction() {
        assert_eq!(fraction(0, 0, &[], 4), 0.0);
        assert_eq!(fraction(50, 100, &[], 4), 0.5);
        // A 40-byte unit with 1 of 4 phases done and half of the second: 40 * 1.5/4 = 15.
        let f = Flight {
            cost: 40,
            phases_done: 1,
            one_phase: false,
            done: 5,
            total: 10,
        };
        assert!((fraction(50, 100, &[f], 4) - 0.65).abs() < 1e-12);
        // A unit of one phase (a chunk through one phase, a merge) half done: 40 * 0.5 = 20.
        let one = Flight {
            phases_done: 0,
            one_phase: true,
            ..f
        };
        assert!((fraction(50, 100, &[one], 4) - 0.7).abs() < 1e-12);
        // Unknown totals count only finished phases; nothing exceeds the unit.
        let g = Flight {
            total: 0,
            phases_done: 9,
            ..f
        };
        assert!((fraction(0, 40, &[g], 4) - 1.0).abs() < 1e-12);
    }
}
