//! A launch's log folder as the report reads it: `report.json` (the fields the host writes,
//! every one optional so an older or newer host's file still reads), the worker logs' timeline
//! (which phase of which run or chunk ran on which worker, and when) and log tails.
//!
//! The timeline comes from each phase record's `worker` and `started_s` when `report.json`
//! has them; otherwise it is derived from the worker logs' timestamped lines
//! (`calling P.run for run N…`, `calling P.merge for run N…`, `phase P complete for run N… in T s`,
//! `run N…: phase P failed: …`).

use crate::error::ReadError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// At most this many bytes of a log are read (its end).
const LOG_READ_LIMIT: u64 = 32 << 20;

/// How a launch handed runs to its workers (`report.json`'s `schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Spyral's snake deal by size, decided before the start.
    Snake,
    /// Workers pull the next-largest unit when free.
    Dynamic,
    /// A schedule this version does not know (a newer host's report still reads).
    #[serde(other)]
    Other,
}

impl Schedule {
    /// The name `report.json` and the pipeline file use.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Snake => "snake",
            Schedule::Dynamic => "dynamic",
            Schedule::Other => "other",
        }
    }
}

/// `report.json` of a launch.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LaunchReport {
    /// Pipeline file.
    pub pipeline: Option<PathBuf>,
    /// Workspace.
    pub workspace: Option<PathBuf>,
    /// Base seed.
    pub seed: Option<u64>,
    /// Workers started first.
    pub workers: Option<usize>,
    /// How runs were handed to workers.
    pub schedule: Option<Schedule>,
    /// Wall seconds of the launch.
    pub wall_s: f64,
    /// Whether an interrupt stopped it.
    pub interrupted: bool,
    /// Runs that ended ok.
    pub runs_ok: usize,
    /// Of those, runs where nothing had to run.
    pub runs_up_to_date: usize,
    /// Failed runs.
    pub runs_failed: usize,
    /// Skipped runs.
    pub runs_skipped: usize,
    /// Runs not run.
    pub runs_not_started: usize,
    /// Replacement workers started.
    pub replacement_workers: usize,
    /// Unusable run files, with the reason.
    pub unusable: Vec<String>,
    /// Per worker.
    pub worker_reports: Vec<WorkerReport>,
    /// Per run.
    pub runs: Vec<RunRecord>,
}

/// One worker in `report.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WorkerReport {
    /// Worker index.
    pub worker: usize,
    /// Peak resident memory.
    pub peak_rss_kib: Option<u64>,
    /// How it ended.
    pub exit: WorkerExit,
}

/// How a worker process ended, as `report.json` records it (`{"how": "code", "code": 0}`).
/// The host writes it; this crate reads it back, so both use this one type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "kebab-case")]
pub enum WorkerExit {
    /// It has not ended (while the launch runs), or the report does not say.
    #[default]
    Running,
    /// It exited with this code (0: cleanly).
    Code {
        /// The exit code.
        code: i32,
    },
    /// A signal killed it.
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// It told the parent it could not start.
    Fatal {
        /// What it said.
        message: String,
    },
    /// Waiting for it failed.
    WaitFailed {
        /// The error.
        error: String,
    },
    /// A kind of ending this reader does not know (a newer host).
    #[serde(other)]
    Unknown,
}

impl WorkerExit {
    /// How a child process with this status ended.
    pub fn of(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match status.signal() {
            Some(signal) => WorkerExit::Signal { signal },
            None => WorkerExit::Code {
                code: status.code().unwrap_or(-1),
            },
        }
    }

    /// Whether this is a clean exit (code 0).
    pub fn is_clean(&self) -> bool {
        *self == WorkerExit::Code { code: 0 }
    }

    /// Whether the report has something to say about it: it ended, and not cleanly.
    pub fn is_failure(&self) -> bool {
        !matches!(self, WorkerExit::Running) && !self.is_clean()
    }
}

impl std::fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerExit::Running => f.write_str("running"),
            WorkerExit::Code { code } => write!(f, "exit code {code}"),
            WorkerExit::Signal { signal } => {
                let name = match signal {
                    2 => "SIGINT",
                    4 => "SIGILL",
                    6 => "SIGABRT",
                    7 => "SIGBUS",
                    8 => "SIGFPE",
                    9 => "SIGKILL",
                    11 => "SIGSEGV",
                    15 => "SIGTERM",
                    _ => "signal",
                };
                write!(f, "killed by {name} ({signal})")
            }
            WorkerExit::Fatal { message } => write!(f, "fatal: {message}"),
            WorkerExit::WaitFailed { error } => write!(f, "wait failed: {error}"),
            WorkerExit::Unknown => f.write_str("an unknown ending"),
        }
    }
}

/// Where a run stands, as `report.json` says (the host's run statuses), plus the two states
/// the report itself gives a row: `up-to-date` (nothing had to run) and `artifacts` (found in
/// the workspace without a launch report). A status this reader does not know is `unknown`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// Not handed to a worker.
    NotStarted,
    /// Handed to a worker that had not started it.
    Assigned,
    /// Being processed when the report was written.
    Started,
    /// Every phase succeeded or was up to date.
    Ok,
    /// A phase failed, or its worker died.
    Failed,
    /// Its trace file vanished.
    Skipped,
    /// Stopped by an interrupt or the abort policy.
    Interrupted,
    /// Another launch on the workspace was processing it.
    InAnotherLaunch,
    /// Nothing had to run (row state).
    UpToDate,
    /// Artifacts without a launch report (row state).
    #[default]
    Artifacts,
    /// A status this reader does not know.
    #[serde(other)]
    Unknown,
}

impl RunState {
    /// How the page shows it.
    pub fn label(self) -> &'static str {
        match self {
            RunState::NotStarted => "not started",
            RunState::Assigned => "assigned",
            RunState::Started => "started",
            RunState::Ok => "ok",
            RunState::Failed => "failed",
            RunState::Skipped => "skipped",
            RunState::Interrupted => "interrupted",
            RunState::InAnotherLaunch => "in another launch",
            RunState::UpToDate => "up to date",
            RunState::Artifacts => "artifacts",
            RunState::Unknown => "unknown",
        }
    }
    /// Whether the run went wrong (the page lists it among the failures).
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            RunState::Failed | RunState::Interrupted | RunState::Skipped
        )
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// What happened to one phase of a run, as `report.json` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseState {
    /// Ran and succeeded.
    Ok,
    /// Ran and failed.
    Failed,
    /// Inactive: its artifact was constructed without running.
    Constructed,
    /// Not run because an earlier phase failed.
    NotRun,
    /// Its artifact was current.
    UpToDate,
    /// A status this reader does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

/// One run in `report.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RunRecord {
    /// Run number.
    pub run: u32,
    /// Trace bytes.
    pub bytes: u64,
    /// The worker it was handed to last.
    pub worker: Option<usize>,
    /// Where it stands.
    pub status: RunState,
    /// Nothing had to run.
    pub up_to_date: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// Wall seconds in its workers.
    pub wall_s: f64,
    /// Event chunks it was split into.
    pub chunks: Option<u32>,
    /// Phase records (per chunk and merge for a split run).
    pub phases: Vec<PhaseRecord>,
}

/// One phase record in `report.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PhaseRecord {
    /// Phase name.
    pub phase: String,
    /// What happened to it.
    pub status: PhaseState,
    /// Error when failed.
    pub error: Option<String>,
    /// Wall seconds.
    pub wall_s: f64,
    /// CPU seconds.
    pub cpu_s: f64,
    /// Items processed.
    pub items: u64,
    /// The phase's metadata.
    pub metadata: Value,
    /// Which part of the run (absent: the whole run).
    pub part: Option<PartRecord>,
    /// The worker that ran it (not yet written by the host; used when present).
    pub worker: Option<usize>,
    /// When it started, in seconds since the launch started (not yet written by the host; used
    /// when present).
    pub started_s: Option<f64>,
}

/// The part of a run a record covers.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct PartRecord {
    /// `whole`, `chunk` or `merge`.
    pub part: String,
    /// Chunk index.
    pub index: Option<u32>,
    /// Chunk count.
    pub count: Option<u32>,
}

impl PhaseRecord {
    /// `chunk i/n`, `merge` or an empty string for the whole run.
    pub fn part_label(&self) -> String {
        match &self.part {
            Some(p) if p.part == "chunk" => format!(
                "chunk {}/{}",
                p.index.map_or(0, |i| i + 1),
                p.count.unwrap_or(0)
            ),
            Some(p) if p.part == "merge" => "merge".into(),
            _ => String::new(),
        }
    }
    /// Whether it covers one chunk.
    pub fn is_chunk(&self) -> bool {
        self.part.as_ref().is_some_and(|p| p.part == "chunk")
    }
    /// Whether it is a merge.
    pub fn is_merge(&self) -> bool {
        self.part.as_ref().is_some_and(|p| p.part == "merge")
    }
}

/// Reads `report.json`.
pub fn read_report(path: &Path) -> Result<LaunchReport, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::ReportFile {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ReadError::ReportJson {
        path: path.to_path_buf(),
        source,
    })
}

/// One phase call of one run part on one worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Worker index.
    pub worker: usize,
    /// Run number.
    pub run: u32,
    /// `chunk i/n`, `merge` or empty.
    pub part: String,
    /// Phase name.
    pub phase: String,
    /// Start, seconds since the launch started.
    pub start_s: f64,
    /// End, seconds since the launch started.
    pub end_s: f64,
    /// Whether it ended well (false: failed, or never ended).
    pub ok: bool,
}

/// One line of a log with its time.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Seconds since the Unix epoch, when the line starts with a timestamp.
    pub t: Option<f64>,
    /// The whole line.
    pub text: String,
}

/// A worker log.
#[derive(Debug, Clone)]
pub struct WorkerLog {
    /// Worker index.
    pub worker: usize,
    /// The file.
    pub path: PathBuf,
    /// Its lines (the last [`LOG_READ_LIMIT`] bytes at most).
    pub lines: Vec<LogLine>,
}

/// The launch folder's logs.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    /// When the launch started (first timestamp of `parent.log`), seconds since the epoch.
    pub start: Option<f64>,
    /// Worker logs by index.
    pub workers: Vec<WorkerLog>,
}

/// Reads the end of a text file (lossy UTF-8).
pub fn read_tail(path: &Path, limit: u64) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut bytes = Vec::new();
    if len > limit {
        f.seek(SeekFrom::Start(len - limit))?;
    }
    f.take(limit).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(if len > limit {
        // Drop the partial first line.
        text.split_once('\n')
            .map_or(String::new(), |(_, r)| r.to_string())
    } else {
        text
    })
}

fn parse_lines(text: &str) -> Vec<LogLine> {
    text.lines()
        .map(|l| LogLine {
            t: l.split_whitespace().next().and_then(parse_timestamp),
            text: l.to_string(),
        })
        .collect()
}

/// Reads `parent.log` (start time) and every `worker-N.log` of a launch folder.
pub fn read_logs(launch: &Path, warnings: &mut Vec<String>) -> Logs {
    let mut logs = Logs::default();
    if let Ok(text) = read_tail(&launch.join("parent.log"), 64 * 1024) {
        logs.start = parse_lines(&text).iter().find_map(|l| l.t);
    }
    let Ok(entries) = std::fs::read_dir(launch) else {
        warnings.push(format!(
            "cannot list the launch folder {}",
            launch.display()
        ));
        return logs;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(worker) = name
            .strip_prefix("worker-")
            .and_then(|s| s.strip_suffix(".log"))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        match read_tail(&e.path(), LOG_READ_LIMIT) {
            Ok(text) => logs.workers.push(WorkerLog {
                worker,
                path: e.path(),
                lines: parse_lines(&text),
            }),
            Err(err) => warnings.push(format!("cannot read {}: {err}", e.path().display())),
        }
    }
    logs.workers.sort_by_key(|w| w.worker);
    logs
}

/// `YYYY-MM-DDTHH:MM:SS[.frac]Z` as seconds since the Unix epoch.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let mut t = time.split(':');
    let hh: f64 = t.next()?.parse().ok()?;
    let mm: f64 = t.next()?.parse().ok()?;
    let ss: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + hh * 3600.0 + mm * 60.0 + ss)
}

/// The run number and part label at the start of `s` (`12 chunk 2/4 (events …) …`).
fn run_and_part(s: &str) -> Option<(u32, String, &str)> {
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let run: u32 = s[..digits].parse().ok()?;
    let rest = &s[digits..];
    let part = if let Some(c) = rest.strip_prefix(" chunk ") {
        let end = c.find(' ').unwrap_or(c.len());
        format!("chunk {}", &c[..end])
    } else {
        String::new()
    };
    Some((run, part, rest))
}

/// What one log message says about a phase call.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Start {
        phase: String,
        run: u32,
        part: String,
    },
    End {
        phase: String,
        run: u32,
        part: String,
        ok: bool,
    },
}

fn parse_event(line: &str) -> Option<Event> {
    if let Some(i) = line.find(" calling ") {
        let rest = &line[i + 9..];
        let dot = rest.find('.')?;
        let phase = rest[..dot].to_string();
        let after = &rest[dot + 1..];
        if let Some(r) = after.strip_prefix("run for run ") {
            let (run, part, _) = run_and_part(r)?;
            return Some(Event::Start { phase, run, part });
        }
        if let Some(r) = after.strip_prefix("merge for run ") {
            let (run, _, _) = run_and_part(r)?;
            return Some(Event::Start {
                phase,
                run,
                part: "merge".into(),
            });
        }
        return None;
    }
    if let Some(i) = line.find(" complete for run ") {
        let head = &line[..i];
        let phase = head.rsplit_once(" phase ")?.1.to_string();
        let (run, part, _) = run_and_part(&line[i + 18..])?;
        return Some(Event::End {
            phase,
            run,
            part,
            ok: true,
        });
    }
    if line.contains(" failed: ") {
        let i = line.find(" run ")?;
        let (run, part, rest) = run_and_part(&line[i + 5..])?;
        let rest = rest.split_once(": phase ")?.1;
        let (phase, _) = rest.split_once(" failed: ")?;
        return Some(Event::End {
            phase: phase.to_string(),
            run,
            part,
            ok: false,
        });
    }
    None
}

/// The phase calls found in the worker logs, relative to `start` (or to the earliest call).
/// A call that never ended (its worker died) ends at the log's last timestamp, not ok.
pub fn spans_from_logs(logs: &Logs) -> Vec<Span> {
    let mut raw: Vec<(usize, u32, String, String, f64, f64, bool)> = Vec::new();
    for w in &logs.workers {
        let mut open: BTreeMap<(u32, String, String), f64> = BTreeMap::new();
        let last_t = w.lines.iter().rev().find_map(|l| l.t);
        for l in &w.lines {
            let (Some(t), Some(ev)) = (l.t, parse_event(&l.text)) else {
                continue;
            };
            match ev {
                Event::Start { phase, run, part } => {
                    open.insert((run, part, phase), t);
                }
                Event::End {
                    phase,
                    run,
                    part,
                    ok,
                } => {
                    // The merge's end line names the run without a part.
                    let key = if open.contains_key(&(run, part.clone(), phase.clone())) {
                        (run, part, phase)
                    } else {
                        (run, "merge".to_string(), phase)
                    };
                    if let Some(t0) = open.remove(&key) {
                        raw.push((w.worker, key.0, key.1, key.2, t0, t, ok));
                    }
                }
            }
        }
        for ((run, part, phase), t0) in open {
            raw.push((w.worker, run, part, phase, t0, last_t.unwrap_or(t0), false));
        }
    }
    let origin = logs
        .start
        .or_else(|| raw.iter().map(|r| r.4).reduce(f64::min))
        .unwrap_or(0.0);
    let mut spans: Vec<Span> = raw
        .into_iter()
        .map(|(worker, run, part, phase, t0, t1, ok)| Span {
            worker,
            run,
            part,
            phase,
            start_s: t0 - origin,
            end_s: t1 - origin,
            ok,
        })
        .collect();
    spans.sort_by(|a, b| {
        (a.worker, a.start_s)
            .partial_cmp(&(b.worker, b.start_s))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    spans
}

/// The phase calls from `report.json`, when every record that ran names its worker and start.
pub fn spans_from_report(report: &LaunchReport) -> Option<Vec<Span>> {
    let mut spans = Vec::new();
    for r in &report.runs {
        for p in &r.phases {
            if !matches!(p.status, PhaseState::Ok | PhaseState::Failed) {
                continue;
            }
            let (Some(worker), Some(start)) = (p.worker, p.started_s) else {
                return None;
            };
            spans.push(Span {
                worker,
                run: r.run,
                part: p.part_label(),
                phase: p.phase.clone(),
                start_s: start,
                end_s: start + p.wall_s,
                ok: p.status == PhaseState::Ok,
            });
        }
    }
    if spans.is_empty() {
        return None;
    }
    spans.sort_by(|a, b| {
        (a.worker, a.start_s)
            .partial_cmp(&(b.worker, b.start_s))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Some(spans)
}

/// Whether `line` is about run `run` (`run 12`, `run=12`, not `run 123`).
pub fn mentions_run(line: &str, run: u32) -> bool {
    let n = run.to_string();
    ["run ", "run="].iter().any(|prefix| {
        let pat = format!("{prefix}{n}");
        line.match_indices(&pat).any(|(i, _)| {
            let before_ok = i == 0 || !line.as_bytes()[i - 1].is_ascii_alphanumeric();
            let after = line.as_bytes().get(i + pat.len());
            before_ok && !after.is_some_and(|c| c.is_ascii_digit())
        })
    })
}

/// The last `max` lines of each worker log that mention `run`, by worker.
pub fn run_tail(logs: &Logs, run: u32, max: usize) -> Vec<(usize, Vec<String>)> {
    logs.workers
        .iter()
        .filter_map(|w| {
            let lines: Vec<&LogLine> = w
                .lines
                .iter()
                .filter(|l| mentions_run(&l.text, run))
                .collect();
            if lines.is_empty() {
                return None;
            }
            let from = lines.len().saturating_sub(max);
            Some((
                w.worker,
                lines[from..].iter().map(|l| l.text.clone()).collect(),
            ))
        })
        .collect()
}

/// The last `max` lines of worker `worker`'s log.
pub fn worker_tail(logs: &Logs, worker: usize, max: usize) -> Vec<String> {
    logs.workers
        .iter()
        .find(|w| w.worker == worker)
        .map(|w| {
            let from = w.lines.len().saturating_sub(max);
            w.lines[from..].iter().map(|l| l.text.clone()).collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_read_by_name_and_unknown_ones_still_read() {
        let read = |text: &str| serde_json::from_str::<LaunchReport>(text).unwrap().schedule;
        assert_eq!(read(r#"{"schedule": "snake"}"#), Some(Schedule::Snake));
        assert_eq!(read(r#"{"schedule": "dynamic"}"#), Some(Schedule::Dynamic));
        assert_eq!(
            read(r#"{"schedule": "round-robin"}"#),
            Some(Schedule::Other)
        );
        assert_eq!(read("{}"), None);
    }

    fn log(worker: usize, text: &str) -> WorkerLog {
        WorkerLog {
            worker,
            path: PathBuf::new(),
            lines: parse_lines(text),
        }
    }

    #[test]
    fn worker_exits_are_typed_in_json_and_read_in_words() {
        let cases = [
            (r#"{"how": "code", "code": 0}"#, "exit code 0", false),
            (r#"{"how": "code", "code": 7}"#, "exit code 7", true),
            (
                r#"{"how": "signal", "signal": 11}"#,
                "killed by SIGSEGV (11)",
                true,
            ),
            (
                r#"{"how": "signal", "signal": 64}"#,
                "killed by signal (64)",
                true,
            ),
            (
                r#"{"how": "fatal", "message": "no mesh"}"#,
                "fatal: no mesh",
                true,
            ),
            (r#"{"how": "running"}"#, "running", false),
            (
                r#"{"how": "a-newer-kind", "x": 1}"#,
                "an unknown ending",
                true,
            ),
        ];
        for (json, words, failure) in cases {
            let e: WorkerExit = serde_json::from_str(json).unwrap();
            assert_eq!(e.to_string(), words, "{json}");
            assert_eq!(e.is_failure(), failure, "{json}");
        }
        let w: WorkerReport = serde_json::from_str(r#"{"worker": 1}"#).unwrap();
        assert_eq!(w.exit, WorkerExit::Running);
        let back = serde_json::to_string(&WorkerExit::Signal { signal: 9 }).unwrap();
        assert_eq!(back, r#"{"how":"signal","signal":9}"#);
    }

    #[test]
    fn timestamps_are_epoch_seconds() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            parse_timestamp("2000-03-01T00:00:01.5Z"),
            Some(951_868_801.5)
        );
        assert_eq!(
            parse_timestamp("2026-12-04T20:49:16Z"),
            Some(1_796_417_356.0)
        );
        assert_eq!(parse_timestamp("spyral:"), None);
        assert_eq!(parse_timestamp("2026-13-04T20:49:16Z"), None);
    }

    #[test]
    fn spans_from_worker_lines() {
        let w0 = "\
2026-12-04T20:49:16.000000Z  INFO spyral_host::execute: calling Pointcloud.run for run 1 (seed 0x3f; not done yet)
2026-12-04T20:49:17.500000Z  INFO phase{name=Pointcloud run=1}: spyral_phases::pointcloud: Pointcloud: run 1: 234 events
2026-12-04T20:49:17.500000Z  INFO spyral_host::execute: phase Pointcloud complete for run 1 in 1.500 s
2026-12-04T20:49:17.600000Z  INFO spyral_host::execute: calling Cluster.run for run 12 chunk 2/3 (events 100..=199) (seed 0x1; missing)
2026-12-04T20:49:18.600000Z ERROR spyral_host::execute: run 12 chunk 2/3 (events 100..=199): phase Cluster failed: panic: boom
2026-12-04T20:49:19.000000Z  INFO spyral_host::execute: calling Estimation.merge for run 3 (2 chunks; missing)
2026-12-04T20:49:19.250000Z  INFO spyral_host::execute: phase Estimation complete for run 3 in 0.250 s
2026-12-04T20:49:19.300000Z  INFO spyral_host::execute: calling InterpSolver.run for run 4 (seed 0x2; missing)
2026-12-04T20:49:20.000000Z  INFO spyral_host::worker: still here";
        let logs = Logs {
            start: parse_timestamp("2026-12-04T20:49:15Z"),
            workers: vec![log(0, w0)],
        };
        let spans = spans_from_logs(&logs);
        let brief: Vec<(u32, &str, &str, f64, f64, bool)> = spans
            .iter()
            .map(|s| {
                (
                    s.run,
                    s.part.as_str(),
                    s.phase.as_str(),
                    (s.start_s * 1000.0).round() / 1000.0,
                    (s.end_s * 1000.0).round() / 1000.0,
                    s.ok,
                )
            })
            .collect();
        assert_eq!(
            brief,
            vec![
                (1, "", "Pointcloud", 1.0, 2.5, true),
                (12, "chunk 2/3", "Cluster", 2.6, 3.6, false),
                (3, "merge", "Estimation", 4.0, 4.25, true),
                (4, "", "InterpSolver", 4.3, 5.0, false),
            ]
        );
    }

    #[test]
    fn run_mentions_are_exact() {
        assert!(mentions_run("phase{name=A run=12}: x", 12));
        assert!(mentions_run("calling A.run for run 12 (seed", 12));
        assert!(mentions_run("run 12: phase", 12));
        assert!(!mentions_run("calling A.run for run 123 (seed", 12));
        assert!(!mentions_run("rerun 12", 12));
        let logs = Logs {
            start: None,
            workers: vec![log(1, "a run 2\nb run 3\nc run 2\nd run 2")],
        };
        assert_eq!(
            run_tail(&logs, 2, 2),
            vec![(1, vec!["c run 2".to_string(), "d run 2".to_string()])]
        );
        assert_eq!(worker_tail(&logs, 1, 1), vec!["d run 2".to_string()]);
    }
}
