//! `spyral-fuzz`: a bounded-time, structure-aware fuzz harness on stable Rust (cargo-fuzz needs
//! nightly). One target per trace reader (`legacy`, `merger-1.0`, `merger-2.0`,
//! `harmonizer-0.1`) and one for the pipeline parser (`pipeline`).
//!
//! Every case is generated from a 64-bit case seed (derived from `--seed` and the case index):
//! a valid input is built, then mutated (see [`traces`] and [`pipeline`]), then read through the
//! public API the host and the Pointcloud phase use. A case *finds* something when it panics,
//! crashes the process (SIGSEGV, abort, failed allocation), runs longer than the case time
//! bound, raises the resident memory above the bound (its rise over what the case generation left
//! resident), or returns an error that does not
//! name the file.
//!
//! Process model: the command is a supervisor that runs the cases in a worker child process (the
//! same executable with `--worker`). The worker announces each case on its stdout before running
//! it, so a crash or a hang (the supervisor kills a case that exceeds the bound) is pinned to its
//! case seed; the supervisor then starts a new worker at the next case. The worker caps its
//! address space (`--address-space-mib`) and resets and reads `VmHWM` around each case.
//!
//! Known limitation, reported but not failing (unless `--strict`): the system's C HDF5 library
//! (1.10.8) can crash (SIGSEGV in attribute iteration, global-heap reads, file close), loop
//! forever (global-heap reads) or allocate gigabytes (variable-length data whose corrupt length
//! it believes) on files whose bytes are damaged. Such an event counts as a *known libhdf5
//! failure* when the case's input was byte-damaged and the worker died, hung, ran slow or grew
//! without any Rust message: the readers' only `unsafe` code is spyral-data's direct library
//! calls (buffers sized from what the library reports), so a failure of our own prints one, and
//! our allocations are all checked against the file before they happen. A crash on a sound file
//! in a worker that read damaged files before counts the same when the case passes replayed
//! alone in a fresh process (the library can leave its state corrupt and fail later). Panics
//! and errors that do not name the file are findings on every input, and structural mutations
//! (files that HDF5 itself considers well-formed) stay strict on every count.
//!
//! Reproduce a finding with `spyral-fuzz --target T --replay CASE_SEED` (one case, in this
//! process, with the mutations listed; `--keep DIR` keeps the generated file).

mod measure;
mod pipeline;
mod traces;

use clap::Parser;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "spyral-fuzz",
    about = "Bounded-time fuzzing of the trace readers and the pipeline parser"
)]
struct Cli {
    /// legacy, merger-1.0, merger-2.0, harmonizer-0.1 or pipeline.
    #[arg(long)]
    target: String,
    /// How long to fuzz, in seconds.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Base seed (default: from the clock; always printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Run the single case with this case seed in this process and describe it.
    #[arg(long)]
    replay: Option<String>,
    /// With --replay: keep the generated input in this folder.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// A case running longer than this many seconds is a finding (generous: the harness runs
    /// the debug build, where parsing a pipeline at the parser's 250 000-node budget takes
    /// about 5 s on a loaded machine).
    #[arg(long, default_value_t = 15.0)]
    case_seconds: f64,
    /// A case raising the resident memory by more than this many MiB is a finding.
    #[arg(long, default_value_t = 768)]
    memory_mib: u64,
    /// Address-space cap of the worker, in MiB (a larger allocation fails and is reported).
    #[arg(long, default_value_t = 4096)]
    address_space_mib: u64,
    /// Also fail on crashes and hangs of the C HDF5 library inside byte-damaged files
    /// (reported as known limitations otherwise).
    #[arg(long)]
    strict: bool,
    /// Internal: the worker's scratch folder (created and removed by the supervisor, so that a
    /// crashed worker leaves nothing behind).
    #[arg(long, hide = true)]
    scratch: Option<PathBuf>,
    /// Internal: run cases as the worker of a supervisor, starting at this case index.
    #[arg(long, hide = true)]
    worker: Option<u64>,
}

/// What is being fuzzed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A trace reader.
    Trace(spyral_data::attpc::TraceFormat),
    /// The pipeline parser.
    Pipeline,
}

impl Target {
    fn parse(name: &str) -> Option<Target> {
        if name == "pipeline" {
            return Some(Target::Pipeline);
        }
        spyral_data::attpc::TraceFormat::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .map(Target::Trace)
    }

    fn name(self) -> &'static str {
        match self {
            Target::Trace(f) => f.name(),
            Target::Pipeline => "pipeline",
        }
    }
}

/// The result of one case that found nothing: a short class for the statistics (`ok`,
/// `open:Damaged`, ...), a description for `--replay`, and what the code under test cost
/// (generating the input is the harness's own cost and is not bounded).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Class of the outcome, counted in the summary.
    pub class: String,
    /// What was generated and what happened (printed by `--replay`).
    pub notes: Vec<String>,
    /// Time spent in the code under test.
    pub elapsed: Duration,
    /// Peak resident set while the code under test ran (KiB), if measured.
    pub peak_kib: Option<u64>,
}

/// Called by a target once its input is generated, before the code under test runs. With
/// `--replay`, prints what was generated (so that a crash still shows it); in a worker, tells
/// the supervisor when the input is byte-damaged (a crash inside the C HDF5 library on such a
/// file is classified separately, see [`supervise`]).
pub fn announce(notes: &[String], damaged: bool) {
    match MODE.load(std::sync::atomic::Ordering::Relaxed) {
        MODE_REPLAY => {
            for n in notes {
                let n: String = n.chars().take(400).collect();
                println!("  {n}");
            }
            let _ = std::io::stdout().flush();
        }
        MODE_WORKER if damaged => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "damaged");
            let _ = out.flush();
        }
        _ => {}
    }
}

const MODE_REPLAY: u8 = 1;
const MODE_WORKER: u8 = 2;
static MODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Runs `f` (the code under test) with its time and its peak resident memory measured: how far
/// the resident set rose above what it was when `f` started (what case generation left resident,
/// e.g. a large mutated tree freed into the allocator, is not the code's).
pub fn measured<T>(f: impl FnOnce() -> T) -> (T, Duration, Option<u64>) {
    measure::reset_peak();
    let base = measure::resident_kib();
    let started = Instant::now();
    let value = f();
    let elapsed = started.elapsed();
    let rise = measure::peak_kib().map(|peak| peak.saturating_sub(base.unwrap_or(0)));
    (value, elapsed, rise)
}

/// A case that found something: what the oracle saw.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What went wrong.
    pub message: String,
    /// What was generated (mutations).
    pub notes: Vec<String>,
}

/// Runs one case of `target` in `scratch` (emptied by the caller).
fn run_case(target: Target, case_seed: u64, scratch: &Path) -> Result<Outcome, Finding> {
    match target {
        Target::Trace(format) => traces::run_case(format, case_seed, scratch),
        Target::Pipeline => pipeline::run_case(case_seed, scratch),
    }
}

/// SplitMix64: the case seed of case `index` under base seed `seed`.
fn case_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Text of a panic payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-text panic payload)".to_string()
    }
}

/// One line, for the line protocol between worker and supervisor.
fn one_line(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// Runs one case guarded: panics caught, time and peak memory measured and checked.
fn guarded_case(
    target: Target,
    seed: u64,
    scratch: &Path,
    limits: &Limits,
) -> (Result<Outcome, Finding>, Duration, Option<u64>) {
    for entry in std::fs::read_dir(scratch).into_iter().flatten().flatten() {
        let p = entry.path();
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
    let started = Instant::now();
    let result = std::panic::catch_unwind(|| run_case(target, seed, scratch));
    let total = started.elapsed();
    let mut result = match result {
        Ok(r) => r,
        Err(payload) => Err(Finding {
            message: format!("panic: {}", panic_text(payload.as_ref())),
            notes: Vec::new(),
        }),
    };
    let (mut elapsed, mut peak) = (total, None);
    if let Ok(outcome) = &result {
        (elapsed, peak) = (outcome.elapsed, outcome.peak_kib);
        let notes = outcome.notes.clone();
        if elapsed > limits.case {
            result = Err(Finding {
                message: format!(
                    "slow: the case took {:.1} s (bound {:.1} s)",
                    elapsed.as_secs_f64(),
                    limits.case.as_secs_f64()
                ),
                notes,
            });
        } else if let Some(kib) = peak.filter(|k| *k > limits.memory_kib) {
            result = Err(Finding {
                message: format!(
                    "memory: the resident set rose by {} MiB (bound {} MiB)",
                    kib / 1024,
                    limits.memory_kib / 1024
                ),
                notes,
            });
        }
    }
    (result, elapsed, peak)
}

/// The bounds every case must respect.
#[derive(Debug, Clone, Copy)]
struct Limits {
    case: Duration,
    memory_kib: u64,
}

/// Worker: runs cases from `start` until `deadline` (seconds from now), announcing each on
/// stdout. Exits 3 after a finding (the supervisor restarts a fresh worker), 0 at the deadline.
fn worker(
    target: Target,
    seed: u64,
    start: u64,
    seconds: f64,
    limits: Limits,
    scratch: &Path,
) -> ExitCode {
    std::panic::set_hook(Box::new(|_| {})); // panics are caught and reported per case
    MODE.store(MODE_WORKER, std::sync::atomic::Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    let mut out = std::io::stdout().lock();
    let mut index = start;
    while Instant::now() < deadline {
        let cs = case_seed(seed, index);
        let _ = writeln!(out, "start {index} {cs:#018x}");
        let _ = out.flush();
        let (result, elapsed, peak) = guarded_case(target, cs, scratch, &limits);
        match result {
            Ok(outcome) => {
                let _ = writeln!(
                    out,
                    "done {index} {} {} {}",
                    elapsed.as_micros(),
                    peak.unwrap_or(0),
                    outcome.class
                );
                let _ = out.flush();
            }
            Err(finding) => {
                let _ = writeln!(
                    out,
                    "finding {index} {cs:#018x} {}",
                    one_line(&finding.message)
                );
                let _ = out.flush();
                return ExitCode::from(3);
            }
        }
        index += 1;
    }
    ExitCode::SUCCESS
}

/// A finding as the supervisor reports it.
#[derive(Debug)]
struct Report {
    case_seed: String,
    message: String,
    /// A crash (SIGSEGV, SIGBUS, SIGABRT), hang, slow case or memory blow-up inside a
    /// byte-damaged file without any Rust message: the C HDF5 library failing on a corrupt file
    /// (also a crash on a sound file after damaged ones in the same worker, when the case passes
    /// replayed alone).
    known: bool,
}

/// Statistics of a fuzzing session.
#[derive(Debug, Default)]
struct Stats {
    cases: u64,
    slowest: Duration,
    slowest_seed: String,
    peak_kib: u64,
    /// Count and one example case seed per outcome class.
    classes: std::collections::BTreeMap<String, (u64, String)>,
}

enum Line {
    Out(String),
    Eof,
}

/// Supervisor: runs workers until `seconds` have passed, restarting after each finding.
fn supervise(cli: &Cli, target: Target, seed: u64) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("spyral-fuzz: cannot find my own executable: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let total = Duration::from_secs_f64(cli.seconds.max(0.0));
    let hard_bound = Duration::from_secs_f64(cli.case_seconds) + Duration::from_secs(5);
    let mut next = 0u64;
    let mut reports: Vec<Report> = Vec::new();
    let mut stats = Stats::default();
    println!(
        "spyral-fuzz: target {} for {:.0} s, seed {seed} (case bound {:.1} s, memory {} MiB)",
        target.name(),
        cli.seconds,
        cli.case_seconds,
        cli.memory_mib
    );
    while started.elapsed() < total {
        let remaining = (total - started.elapsed()).as_secs_f64();
        let scratch = match tempfile::Builder::new().prefix("spyral-fuzz-").tempdir() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("spyral-fuzz: cannot create a scratch folder: {e}");
                return ExitCode::from(2);
            }
        };
        let mut child = match Command::new(&exe)
            .args(["--target", target.name()])
            .args(["--seed", &seed.to_string()])
            .args(["--seconds", &format!("{remaining:.3}")])
            .args(["--case-seconds", &cli.case_seconds.to_string()])
            .args(["--memory-mib", &cli.memory_mib.to_string()])
            .args(["--address-space-mib", &cli.address_space_mib.to_string()])
            .arg("--scratch")
            .arg(scratch.path())
            .args(["--worker", &next.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("spyral-fuzz: cannot start a worker: {e}");
                return ExitCode::from(2);
            }
        };
        let (tx, rx) = mpsc::channel::<Line>();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(Line::Out(l)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send(Line::Eof);
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let err_thread = std::thread::spawn(move || {
            // Keep the last 4 KiB of the worker's stderr (crash messages).
            let mut tail: Vec<u8> = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 8192 {
                    tail.drain(..tail.len() - 4096);
                }
            }
            String::from_utf8_lossy(&tail).into_owned()
        });
        // The case in progress: (index, case seed, started), and whether its input is
        // byte-damaged.
        let mut current: Option<(u64, String, Instant)> = None;
        let mut damaged = false;
        // Whether this worker has read a byte-damaged file before: the C library can leave its
        // own state corrupt without failing there, and fail in a later case.
        let mut after_damage = false;
        let mut hung = false;
        loop {
            let wait = match &current {
                Some((_, _, t)) => hard_bound.saturating_sub(t.elapsed()),
                None => Duration::from_secs(3600),
            };
            match rx.recv_timeout(wait) {
                Ok(Line::Out(line)) => {
                    let mut parts = line.splitn(4, ' ');
                    match (parts.next(), parts.next(), parts.next(), parts.next()) {
                        (Some("start"), Some(i), Some(cs), None) => {
                            let i: u64 = i.parse().unwrap_or(next);
                            current = Some((i, cs.to_string(), Instant::now()));
                            damaged = false;
                            next = i + 1;
                        }
                        (Some("damaged"), None, None, None) => {
                            damaged = true;
                            after_damage = true;
                        }
                        (Some("done"), Some(_), Some(us), Some(rest)) => {
                            let mut rest = rest.splitn(2, ' ');
                            let kib: u64 = rest.next().and_then(|k| k.parse().ok()).unwrap_or(0);
                            let class = rest.next().unwrap_or("?").to_string();
                            let us: u64 = us.parse().unwrap_or(0);
                            stats.cases += 1;
                            if Duration::from_micros(us) > stats.slowest {
                                stats.slowest = Duration::from_micros(us);
                                stats.slowest_seed =
                                    current.as_ref().map(|c| c.1.clone()).unwrap_or_default();
                            }
                            stats.peak_kib = stats.peak_kib.max(kib);
                            let example = current.as_ref().map(|c| c.1.clone()).unwrap_or_default();
                            stats.classes.entry(class).or_insert((0, example)).0 += 1;
                            current = None;
                        }
                        (Some("finding"), Some(_), Some(cs), rest) => {
                            stats.cases += 1;
                            let message = rest.unwrap_or("").to_string();
                            // Time and memory blow-ups inside byte-damaged files come from the C
                            // library too (it allocates what a corrupt length says); panics and
                            // wrong errors are ours whatever the input.
                            let known = damaged
                                && (message.starts_with("memory:") || message.starts_with("slow:"));
                            reports.push(Report {
                                case_seed: cs.to_string(),
                                message,
                                known,
                            });
                            current = None;
                        }
                        _ => eprintln!("spyral-fuzz: unexpected worker output: {line}"),
                    }
                }
                Ok(Line::Eof) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // The case in progress exceeded the hard bound: a hang.
                    let _ = child.kill();
                    hung = true;
                    break;
                }
            }
        }
        let status = child.wait();
        let tail = err_thread.join().unwrap_or_default();
        if let Some((_, cs, t)) = current {
            stats.cases += 1;
            use std::os::unix::process::ExitStatusExt;
            let signal = status.as_ref().ok().and_then(|s| s.signal());
            // Only the C library can crash or loop without a word inside a byte-damaged file: a
            // Rust failure prints a message, and every loop of the readers is bounded by the
            // objects the file holds.
            let rust_message = ["panicked", "overflowed its stack", "memory allocation"]
                .iter()
                .any(|m| tail.contains(m));
            let c_failure =
                !rust_message && (hung || matches!(signal, Some(6) | Some(7) | Some(11)));
            // A sound file that kills a worker which read damaged ones before is a finding only
            // if it also fails alone, in a fresh process.
            let known =
                c_failure && (damaged || (after_damage && passes_alone(&exe, target, &cs, cli)));
            let message = if hung {
                format!(
                    "hang: no result after {:.1} s (killed)",
                    t.elapsed().as_secs_f64()
                )
            } else {
                let how = match &status {
                    Ok(s) => describe_exit(s),
                    Err(e) => format!("cannot wait for it: {e}"),
                };
                let tail = tail.trim();
                let tail: String = tail
                    .chars()
                    .rev()
                    .take(600)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                format!("crash: the worker {how}; its stderr ends with: {tail}")
            };
            reports.push(Report {
                case_seed: cs,
                message: one_line(&message),
                known,
            });
        } else if let Ok(s) = &status {
            if !s.success() && s.code() != Some(3) {
                eprintln!(
                    "spyral-fuzz: the worker {} outside a case; stderr: {}",
                    describe_exit(s),
                    tail.trim()
                );
                return ExitCode::from(2);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let classes: Vec<String> = stats
        .classes
        .iter()
        .map(|(k, (n, example))| format!("{k} {n} (e.g. {example})"))
        .collect();
    let failing = reports.iter().filter(|r| cli.strict || !r.known).count();
    println!(
        "spyral-fuzz: target {}: {} cases in {elapsed:.1} s (seed {seed}), {failing} findings, {} known libhdf5 failures; slowest case {:.3} s ({}), largest resident rise {} MiB",
        target.name(),
        stats.cases,
        reports.len() - failing,
        stats.slowest.as_secs_f64(),
        stats.slowest_seed,
        stats.peak_kib / 1024
    );
    println!("spyral-fuzz: outcomes: {}", classes.join(", "));
    for r in &reports {
        let label = if r.known && !cli.strict {
            "KNOWN (the C HDF5 library failed inside a byte-damaged file, or after one in the same worker; not a failure without --strict)"
        } else {
            "FINDING"
        };
        println!(
            "{label} target={} case_seed={}: {}\n  reproduce: spyral-fuzz --target {} --replay {}",
            target.name(),
            r.case_seed,
            r.message,
            target.name(),
            r.case_seed
        );
    }
    if failing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Whether case `cs` succeeds when replayed alone in a fresh process (bounded like a case).
fn passes_alone(exe: &std::path::Path, target: Target, cs: &str, cli: &Cli) -> bool {
    let Ok(mut child) = Command::new(exe)
        .args(["--target", target.name()])
        .args(["--replay", cs])
        .args(["--case-seconds", &cli.case_seconds.to_string()])
        .args(["--memory-mib", &cli.memory_mib.to_string()])
        .args(["--address-space-mib", &cli.address_space_mib.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let bound = Instant::now() + Duration::from_secs_f64(cli.case_seconds * 2.0 + 5.0);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < bound => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

fn describe_exit(s: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "ended".to_string(),
    }
}

/// Parses a seed written in decimal or as `0x...`.
fn parse_seed(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// `--replay`: one case, in this process, described.
fn replay(cli: &Cli, target: Target, cs: u64, limits: Limits) -> ExitCode {
    let scratch = match tempfile::Builder::new().prefix("spyral-fuzz-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("spyral-fuzz: cannot create a scratch folder: {e}");
            return ExitCode::from(2);
        }
    };
    println!("case {cs:#018x} of target {}:", target.name());
    MODE.store(MODE_REPLAY, std::sync::atomic::Ordering::Relaxed);
    let (result, elapsed, peak) = guarded_case(target, cs, scratch.path(), &limits);
    println!("  then:");
    let notes = match &result {
        Ok(o) => &o.notes,
        Err(f) => &f.notes,
    };
    for n in notes {
        let n: String = n.chars().take(400).collect();
        println!("  {n}");
    }
    println!(
        "  the code under test took {:.3} s, its resident set rose by {} MiB",
        elapsed.as_secs_f64(),
        peak.unwrap_or(0) / 1024
    );
    if let Some(keep) = &cli.keep {
        let _ = std::fs::create_dir_all(keep);
        for entry in std::fs::read_dir(scratch.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            // Only regular files: a case may plant a FIFO named like a run, and copying one
            // blocks until a writer appears.
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let dest = keep.join(entry.file_name());
            if std::fs::copy(entry.path(), &dest).is_ok() {
                println!("  kept {}", dest.display());
            }
        }
    }
    match result {
        Ok(o) => {
            println!("  outcome: {}", o.class);
            ExitCode::SUCCESS
        }
        Err(f) => {
            println!("FINDING: {}", f.message);
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(target) = Target::parse(&cli.target) else {
        eprintln!(
            "spyral-fuzz: unknown target `{}` (legacy, merger-1.0, merger-2.0, harmonizer-0.1, pipeline)",
            cli.target
        );
        return ExitCode::from(2);
    };
    let limits = Limits {
        case: Duration::from_secs_f64(cli.case_seconds),
        memory_kib: cli.memory_mib * 1024,
    };
    if cli.worker.is_some() || cli.replay.is_some() {
        if let Err(e) = measure::limit_address_space(cli.address_space_mib << 20) {
            eprintln!("spyral-fuzz: cannot cap the address space: {e}");
        }
    }
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    if let Some(text) = &cli.replay {
        let Some(cs) = parse_seed(text) else {
            eprintln!("spyral-fuzz: --replay wants a case seed (decimal or 0x...), got `{text}`");
            return ExitCode::from(2);
        };
        return replay(&cli, target, cs, limits);
    }
    if let Some(start) = cli.worker {
        let Some(scratch) = &cli.scratch else {
            eprintln!("spyral-fuzz: --worker needs --scratch");
            return ExitCode::from(2);
        };
        return worker(target, seed, start, cli.seconds, limits, scratch);
    }
    supervise(&cli, target, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_the_rise_caused_by_the_code_under_test() {
        // What case generation left resident is not counted ...
        let left_by_generation = vec![1u8; 96 << 20];
        let ((), _, rise) = measured(|| ());
        assert!(rise.unwrap() < 32 * 1024, "{rise:?}");
        // ... what the code under test touches is.
        let (n, _, rise) = measured(|| {
            vec![1u8; 64 << 20]
                .iter()
                .map(|&b| b as usize)
                .sum::<usize>()
        });
        assert_eq!(n, 64 << 20);
        assert!(rise.unwrap() >= 60 * 1024, "{rise:?}");
        drop(left_by_generation);
    }

    #[test]
    fn case_seeds_differ_and_parse_back() {
        let a = case_seed(1, 0);
        assert_ne!(a, case_seed(1, 1));
        assert_ne!(a, case_seed(2, 0));
        assert_eq!(parse_seed(&format!("{a:#018x}")), Some(a));
        assert_eq!(parse_seed("17"), Some(17));
    }

    /// A few cases of every target (the smoke test of the harness itself; the long runs are
    /// `scripts/fuzz.sh`).
    #[test]
    fn every_target_runs_cases_without_findings() {
        let limits = Limits {
            case: Duration::from_secs(30),
            memory_kib: 2 << 20,
        };
        let dir = tempfile::tempdir().unwrap();
        traces::BYTE_DAMAGE.store(false, std::sync::atomic::Ordering::Relaxed);
        for name in [
            "legacy",
            "merger-1.0",
            "merger-2.0",
            "harmonizer-0.1",
            "pipeline",
        ] {
            let target = Target::parse(name).unwrap();
            for i in 0..10 {
                let cs = case_seed(7, i);
                let (result, _, _) = guarded_case(target, cs, dir.path(), &limits);
                if let Err(f) = result {
                    panic!("{name} case {cs:#018x}: {} ({:?})", f.message, f.notes);
                }
            }
        }
    }
}
