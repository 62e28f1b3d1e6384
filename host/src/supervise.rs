//! Worker processes as the parent sees them: starting them (`spyral worker` from
//! `/proc/self/exe`, in their own process group), one reader thread per worker that forwards its
//! typed messages in order and then reaps it, sending assignments, signalling them, the tail of
//! their stderr, and turning SIGINT/SIGTERM into events.

use crate::protocol::{Assign, Job, Part, WorkerMsg};
use crossbeam_channel::Sender;
use indicatif::ProgressBar;
pub use spyral_report::launch::WorkerExit;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the parent's event loop receives.
#[derive(Debug)]
pub enum Event {
    /// A message from worker `.0`.
    Msg(usize, Box<WorkerMsg>),
    /// A line from worker `.0` that is not a message.
    BadLine(usize, String),
    /// Worker `.0` exited, this way.
    Exited(usize, WorkerExit),
    /// SIGINT or SIGTERM.
    Signal(i32),
    /// Twice a second.
    Tick,
}

/// A worker process, and what the display shows about it.
pub struct WorkerProc {
    /// Index.
    pub index: usize,
    /// Process id.
    pub pid: u32,
    stdin: Option<ChildStdin>,
    /// Still running.
    pub alive: bool,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// When it was started.
    pub spawned: Instant,
    /// From spawn to ready, as seen here.
    pub startup_ms: Option<f64>,
    /// Time it spent attaching segments.
    pub attach_ms: Option<f64>,
    /// Its peak resident memory, when it said.
    pub peak_rss_kib: Option<u64>,
    /// How it ended ([`WorkerExit::Running`] while it runs).
    pub exit: WorkerExit,
    /// The run it is on.
    pub current_run: Option<u32>,
    /// Which part of it (` chunk 2/4 (events ..)`, ` merge of 4 chunks`, ` commit of 4 merged
    /// chunks`, or empty).
    pub current_part: String,
    /// The phase it is in.
    pub current_phase: Option<String>,
    /// Weight of the unit it is on (0: none).
    pub unit_cost: u64,
    /// Active phases of the unit it has finished.
    pub phases_done: u32,
    /// Whether the unit covers one phase (a chunk through one phase, or a merge).
    pub one_phase: bool,
    /// For a one-phase unit, the position (1-based) of its phase among the active phases.
    pub unit_phase: Option<u32>,
    /// Progress inside the phase.
    pub done: u64,
    /// Items of the phase.
    pub total: u64,
    /// Its progress bar, on a terminal.
    pub bar: Option<ProgressBar>,
}

impl WorkerProc {
    /// Sends the next unit: its run, its part and the time the run's finished units took
    /// (None: no more work; its stdin is closed).
    pub fn assign(&mut self, work: Option<(u32, Part, std::time::Duration)>) {
        let run = work.as_ref().map(|w| w.0);
        let spent_s = work.as_ref().map_or(0.0, |w| w.2.as_secs_f64());
        let part = work.map(|w| w.1).unwrap_or_default();
        if let Some(stdin) = self.stdin.as_mut() {
            let mut line =
                serde_json::to_string(&Assign { run, part, spent_s }).unwrap_or_default();
            line.push('\n');
            let _ = stdin.write_all(line.as_bytes());
            let _ = stdin.flush();
        }
        if run.is_none() {
            self.stdin = None;
        }
    }
    /// Sends `sig` if it is alive.
    pub fn signal(&self, sig: rustix::process::Signal) {
        if !self.alive {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }
    /// It exited.
    pub fn exited(&mut self, how: &WorkerExit) {
        self.alive = false;
        self.stdin = None;
        // A worker that said why it could not start keeps that reason.
        if self.exit == WorkerExit::Running {
            self.exit = how.clone();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
    /// The unit it is on, for the progress display.
    pub fn flight(&self) -> Option<crate::display::Flight> {
        (self.alive && self.current_run.is_some()).then_some(crate::display::Flight {
            cost: self.unit_cost,
            phases_done: self.phases_done,
            one_phase: self.one_phase,
            done: self.done,
            total: self.total,
        })
    }
    /// The last `n` lines of its stderr.
    pub fn stderr_tail(&self, n: usize) -> Vec<String> {
        self.stderr_tail
            .lock()
            .map(|t| t.iter().rev().take(n).rev().cloned().collect())
            .unwrap_or_default()
    }
    /// What it is doing, in a few words.
    pub fn describe(&self) -> String {
        match (&self.current_run, &self.current_phase) {
            (Some(r), Some(p)) => format!(
                "run {r}{} | {p} {}/{}",
                self.current_part, self.done, self.total
            ),
            (Some(r), None) => format!("run {r}{}", self.current_part),
            _ => "idle".to_string(),
        }
    }
}

/// Starts worker `index` (the parent's own executable, `spyral worker`, in its own process
/// group) and sends it `job`. One thread forwards its messages into `tx` in order and then
/// reaps it, so [`Event::Exited`] always comes after the worker's last message.
pub fn spawn_worker(index: usize, job: &Job, tx: &Sender<Event>) -> std::io::Result<WorkerProc> {
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
        .spawn()?;
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
                        Ok(m) => Event::Msg(index, Box::new(m)),
                        Err(_) => Event::BadLine(index, line),
                    };
                    let _ = tx.send(ev);
                }
            }
            let _ = err_thread.join();
            let how = match child.wait() {
                Ok(s) => WorkerExit::of(s),
                Err(e) => WorkerExit::WaitFailed {
                    error: e.to_string(),
                },
            };
            let _ = tx.send(Event::Exited(index, how));
        });
    }
    Ok(WorkerProc {
        index,
        pid,
        stdin,
        alive: true,
        stderr_tail: tail,
        spawned,
        startup_ms: None,
        attach_ms: None,
        peak_rss_kib: None,
        exit: WorkerExit::Running,
        current_run: None,
        current_part: String::new(),
        current_phase: None,
        unit_cost: 0,
        phases_done: 0,
        one_phase: false,
        unit_phase: None,
        done: 0,
        total: 0,
        bar: None,
    })
}

/// Keeps the signal thread registered; dropping it unregisters.
pub struct SignalGuard {
    handle: signal_hook::iterator::Handle,
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.handle.close();
    }
}

/// What the signal thread shares with the launch.
#[derive(Default)]
pub struct SignalState {
    /// An interrupt arrived.
    pub interrupted: AtomicBool,
    /// The plugin host's pid while it works (0: none): interrupts are passed on to it.
    pub child: AtomicU32,
}

/// Turns SIGINT and SIGTERM into [`Event::Signal`]s (and passes them on to the plugin host
/// while it works), from the start of the launch.
pub fn signal_thread(tx: Sender<Event>, state: Arc<SignalState>) -> Option<SignalGuard> {
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

/// Sends [`Event::Tick`] twice a second until the receiver is gone.
pub fn ticker(tx: Sender<Event>) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        if tx.send(Event::Tick).is_err() {
            break;
        }
    });
}
