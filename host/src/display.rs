//! The progress display of a launch: indicatif bars on a terminal (one per worker plus an
//! overall bar), a plain progress line every few seconds otherwise (SLURM logs).

use crate::supervise::WorkerProc;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};

/// Progress display: indicatif bars on a terminal, periodic plain lines otherwise.
pub struct Display {
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    total_runs: u64,
    total_bytes: u64,
    last_plain: Instant,
}

impl Display {
    /// Bars on a terminal (`bars`), plain lines otherwise.
    pub fn new(bars: bool, workers: &mut [WorkerProc], total_runs: u64, total_bytes: u64) -> Self {
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
    /// A bar for a (replacement) worker.
    pub fn add_worker(&mut self, w: Option<&mut WorkerProc>) {
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
    /// Redraws a worker's bar (run, phase, progress).
    pub fn worker(&self, w: &WorkerProc) {
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
    /// Redraws a worker's progress.
    pub fn progress(&self, w: &WorkerProc) {
        if let Some(bar) = &w.bar {
            bar.set_length(w.total.max(1));
            bar.set_position(w.done);
        }
    }
    /// Redraws the overall bar.
    pub fn overall(&self, finished: usize, bytes: u64) {
        if let Some(o) = &self.overall {
            o.set_position(bytes);
            o.set_message(format!("{finished}/{} runs", self.total_runs));
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
    /// Without bars: a plain progress line every few seconds.
    pub fn tick(&mut self, workers: &[WorkerProc], finished: usize, bytes: u64, started: Instant) {
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
    /// Clears the bars.
    pub fn finish(&self) {
        if let Some(o) = &self.overall {
            o.finish_and_clear();
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}
