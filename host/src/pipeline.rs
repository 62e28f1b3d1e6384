//! The pipeline file: parsing, defaults, path resolution and the checks that need no plugin.
//!
//! A pipeline is one YAML file (parsed with serde-saphyr, which reports line and column and
//! limits alias expansion). Unknown keys are errors. Relative paths are relative to the file.
//! YAML anchors may be defined anywhere, conventionally under the ignored top-level `anchors:`.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};

/// Errors in a pipeline file.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The file cannot be read.
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// YAML syntax or structure error (serde-saphyr's message has line, column and a snippet).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is present and well-formed YAML but invalid.
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file is larger than any pipeline file (see [`MAX_PIPELINE_BYTES`]).
    #[error(
        "{path}: the pipeline file is {size} bytes; a pipeline file is at most {max} bytes (is this the right file?)",
        max = MAX_PIPELINE_BYTES
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes (at least this many when read from a stream).
        size: u64,
    },
}

/// Largest pipeline file accepted (16 MiB). A hand-written pipeline is a few kilobytes; the bound
/// keeps a wrong path (a trace file, a device, a stream) or a generated monster from costing
/// gigabytes of memory and minutes of parsing before the error.
pub const MAX_PIPELINE_BYTES: u64 = 16 << 20;

/// How runs are handed to workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Spyral's snake deal by size, decided before the start.
    #[default]
    Snake,
    /// Workers pull the next-largest run when free.
    Dynamic,
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "snake" => Ok(Schedule::Snake),
            "dynamic" => Ok(Schedule::Dynamic),
            _ => Err(format!(
                "unknown schedule `{s}` (expected snake or dynamic)"
            )),
        }
    }
}

/// What to do when a run fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Record the failure and go on with the other runs.
    #[default]
    Continue,
    /// Stop everything at the first failure.
    Abort,
}

/// A per-run time limit: seconds as a number, or text with a unit (`90s`, `45m`, `2h`, `1.5h`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "f64")]
pub struct RunTimeout {
    seconds: f64,
}

impl RunTimeout {
    /// The limit in seconds.
    pub fn seconds(&self) -> f64 {
        self.seconds
    }
    /// The limit as a duration.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.seconds)
    }
}

impl From<RunTimeout> for f64 {
    fn from(t: RunTimeout) -> f64 {
        t.seconds
    }
}

impl std::fmt::Display for RunTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} s", self.seconds)
    }
}

impl std::str::FromStr for RunTimeout {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
            Some(i) => (&t[..i], &t[i..]),
            None => (t, "s"),
        };
        let factor = match unit.trim() {
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            u => {
                return Err(format!(
                    "run_timeout `{text}`: unknown unit `{u}` (use s, m, h or d)"
                ))
            }
        };
        let n: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("run_timeout `{text}`: `{}` is not a number", num.trim()))?;
        RunTimeout::try_from_seconds(n * factor).map_err(|e| format!("run_timeout `{text}`: {e}"))
    }
}

impl RunTimeout {
    fn try_from_seconds(s: f64) -> Result<RunTimeout, String> {
        if !s.is_finite() || s <= 0.0 || s > 1e9 {
            return Err(format!(
                "must be a positive duration of at most 1e9 seconds, got {s}"
            ));
        }
        Ok(RunTimeout { seconds: s })
    }
}

impl TryFrom<serde_json::Value> for RunTimeout {
    type Error = String;
    fn try_from(v: serde_json::Value) -> Result<Self, String> {
        match v {
            serde_json::Value::Number(n) => {
                RunTimeout::try_from_seconds(n.as_f64().unwrap_or(f64::NAN))
            }
            serde_json::Value::String(s) => s.parse(),
            other => Err(format!(
                "expected seconds or a duration like `2h`, got {other}"
            )),
        }
    }
}

/// The run range and skip list.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RunRange {
    /// First run (inclusive).
    pub min: u32,
    /// Last run (inclusive).
    pub max: u32,
    /// Runs not to process: numbers and `A-B` ranges (`skip: [17, 55, 60-70]`).
    #[serde(default)]
    pub skip: crate::runs::RunSet,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    kind: Spanned<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    config: Option<Spanned<serde_json::Value>>,
}

fn yes() -> bool {
    true
}

fn one() -> usize {
    1
}

/// Events per chunk when runs are split (see [`Pipeline::chunk_events`]).
pub const DEFAULT_CHUNK_EVENTS: u64 = 1000;

fn default_chunk_events() -> u64 {
    DEFAULT_CHUNK_EVENTS
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    workspace: PathBuf,
    traces: PathBuf,
    runs: RunRange,
    #[serde(default = "one")]
    workers: usize,
    #[serde(default)]
    schedule: Schedule,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    plugins: Vec<PathBuf>,
    #[serde(default)]
    on_error: OnError,
    #[serde(default)]
    run_timeout: Option<RunTimeout>,
    #[serde(default = "default_chunk_events")]
    chunk_events: u64,
    #[serde(default)]
    #[allow(dead_code)]
    anchors: Option<serde::de::IgnoredAny>,
    phases: Vec<RawPhase>,
}

/// One phase entry of a pipeline.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct PhaseSpec {
    /// Position in the chain (0-based).
    pub index: usize,
    /// Phase kind.
    pub kind: String,
    /// Name given in the file, if any (the kind's default name is used otherwise).
    pub name: Option<String>,
    /// Whether the phase runs (inactive phases only construct their artifact paths).
    pub active: bool,
    /// The config as JSON (None: all defaults).
    pub config: Option<serde_json::Value>,
    /// Line of the entry's `kind:` in the file.
    pub line: usize,
    /// Line of its `config:` value (0 when absent).
    pub config_line: usize,
}

/// A parsed pipeline with absolute paths (sent as is to the plugin host process).
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Pipeline {
    /// The file it came from.
    pub path: PathBuf,
    /// The file's text (for locating fields in error messages).
    pub text: String,
    /// Workspace root.
    pub workspace: PathBuf,
    /// Trace folder.
    pub traces: PathBuf,
    /// Runs to consider.
    pub runs: RunRange,
    /// Worker processes.
    pub workers: usize,
    /// Scheduling mode.
    pub schedule: Schedule,
    /// Base seed (None: drawn at random at launch).
    pub seed: Option<u64>,
    /// Extra plugin files or folders.
    pub plugins: Vec<PathBuf>,
    /// Error policy.
    pub on_error: OnError,
    /// Longest time one run may take, all its phases; for a run split into event chunks, the
    /// time all its units (chunks' phases, merges, commit) took, summed. None: no limit.
    pub run_timeout: Option<RunTimeout>,
    /// Runs with more events than this are split into event chunks of about this many events,
    /// processed by any workers and merged (when every active phase can); 0: never split. A
    /// launch with one worker splits no run (it finishes chunks an earlier launch left).
    pub chunk_events: u64,
    /// The phases in chain order.
    pub phases: Vec<PhaseSpec>,
}

/// Longest phase name, in bytes (the asset folder adds `_assets`, and file systems allow 255).
pub const MAX_PHASE_NAME: usize = 200;

/// Folder names the workspace uses for itself.
pub const RESERVED_NAMES: [&str; 2] = ["log", "slurm"];

/// Why `name` cannot be a phase (folder) name, or None when it can: not empty, no separators or
/// control characters, no leading `.`, not `.`/`..`, not `log` or `slurm`, not ending in
/// `_assets`, at most [`MAX_PHASE_NAME`] bytes.
pub fn phase_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > MAX_PHASE_NAME {
        return Some(format!(
            "it is {} bytes long (at most {MAX_PHASE_NAME})",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Some(format!("it contains the control character {:?}", c));
    }
    if name.contains(['/', '\\']) {
        return Some("it contains a path separator".into());
    }
    if name.starts_with('.') {
        return Some("it starts with `.` (hidden and reserved names)".into());
    }
    if RESERVED_NAMES.contains(&name) {
        return Some(format!("`{name}` is a folder the workspace uses itself"));
    }
    if name.ends_with("_assets") {
        return Some("names ending in `_assets` are the asset folders".into());
    }
    None
}

/// Whether `name` can be used as a phase folder name (see [`phase_name_problem`]).
pub fn is_plain_dir_name(name: &str) -> bool {
    phase_name_problem(name).is_none()
}

/// `path` made absolute with symbolic links resolved: the longest existing ancestor is
/// canonicalised and the rest (which does not exist, so holds no link) is appended, with `..`
/// applied lexically.
pub fn resolve_path(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = abs.clone();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            let mut out = c;
            for part in rest.iter().rev() {
                if part == ".." {
                    out.pop();
                } else if part != "." {
                    out.push(part);
                }
            }
            return out;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return abs,
        }
    }
}

/// Refuses any layout where something spyral writes (a phase's artifact or asset folder, the
/// log, slurm or lock folders, the workspace itself) is, contains or is inside the trace folder,
/// after resolving symbolic links: raw data is never written.
pub fn check_layout(p: &Pipeline, phase_names: &[&str]) -> Result<(), PipelineError> {
    let ws_line = find_key_line(&p.text, "workspace", 0).unwrap_or(0);
    // The workspace must be a folder or not exist yet (a link loop, a file or an unreadable
    // path is refused now, before anything is created).
    match std::fs::metadata(&p.workspace) {
        Ok(m) if !m.is_dir() => {
            return Err(PipelineError::Invalid {
                path: p.path.clone(),
                line: ws_line,
                message: format!("workspace {} is not a folder", p.workspace.display()),
            })
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(PipelineError::Invalid {
                path: p.path.clone(),
                line: ws_line,
                message: format!("workspace {}: {e}", p.workspace.display()),
            })
        }
        _ => {}
    }
    let traces = resolve_path(&p.traces);
    let mut outputs: Vec<(PathBuf, String, usize)> = Vec::new();
    for dir in ["log", "slurm", ".spyral"] {
        outputs.push((
            p.workspace.join(dir),
            format!("the workspace's `{dir}` folder"),
            ws_line,
        ));
    }
    for (i, name) in phase_names.iter().enumerate() {
        let line = p.phases.get(i).map(|s| s.line).unwrap_or(0);
        outputs.push((
            p.workspace.join(name),
            format!("the artifact folder of phase {name}"),
            line,
        ));
        outputs.push((
            p.workspace.join(format!("{name}_assets")),
            format!("the asset folder of phase {name}"),
            line,
        ));
    }
    for (dir, what, line) in outputs {
        let out = resolve_path(&dir);
        let relation = if out == traces {
            "is"
        } else if out.starts_with(&traces) {
            "is inside"
        } else if traces.starts_with(&out) {
            "contains"
        } else {
            continue;
        };
        return Err(PipelineError::Invalid {
            path: p.path.clone(),
            line,
            message: format!(
                "{what} ({}) {relation} the trace folder {}: spyral never writes into raw data; choose another workspace or phase name",
                out.display(),
                traces.display()
            ),
        });
    }
    Ok(())
}

impl Pipeline {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Pipeline, PipelineError> {
        use std::io::Read as _;
        let read_error = |source| PipelineError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        // Read at most one byte past the bound, so a stream or a device cannot make this unbounded.
        let mut bytes = Vec::new();
        file.take(MAX_PIPELINE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > MAX_PIPELINE_BYTES {
            return Err(PipelineError::TooLarge {
                path: path.to_path_buf(),
                size: std::fs::metadata(path)
                    .map(|m| m.len())
                    .unwrap_or(0)
                    .max(bytes.len() as u64),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            read_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            ))
        })?;
        Self::parse(path, &text)
    }

    /// Parses pipeline `text` read from `path` (used to resolve relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Pipeline, PipelineError> {
        if text.len() as u64 > MAX_PIPELINE_BYTES {
            return Err(PipelineError::TooLarge {
                path: path.to_path_buf(),
                size: text.len() as u64,
            });
        }
        let raw: RawPipeline = serde_saphyr::from_str(text).map_err(|e| PipelineError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let invalid = |line: usize, message: String| PipelineError::Invalid {
            path: path.to_path_buf(),
            line,
            message,
        };
        let line_of = |key: &str| find_key_line(text, key, 0).unwrap_or(0);
        if raw.runs.min > raw.runs.max {
            return Err(invalid(
                line_of("runs"),
                format!(
                    "runs: min ({}) is larger than max ({})",
                    raw.runs.min, raw.runs.max
                ),
            ));
        }
        if raw.workers == 0 {
            return Err(invalid(
                line_of("workers"),
                "workers must be at least 1".to_string(),
            ));
        }
        if raw.phases.is_empty() {
            return Err(invalid(
                line_of("phases"),
                "the pipeline has no phases".to_string(),
            ));
        }
        let mut phases = Vec::new();
        for (index, p) in raw.phases.into_iter().enumerate() {
            let line = p.kind.referenced.line() as usize;
            if let Some(name) = &p.name {
                if let Some(problem) = phase_name_problem(name) {
                    return Err(invalid(
                        line,
                        format!(
                            "phase {}: name {name:?} cannot be a folder name: {problem}",
                            index + 1
                        ),
                    ));
                }
            }
            let (config, config_line) = match p.config {
                Some(c) => (Some(c.value), c.referenced.line() as usize),
                None => (None, 0),
            };
            phases.push(PhaseSpec {
                index,
                kind: p.kind.value,
                name: p.name,
                active: p.active,
                config,
                line,
                config_line,
            });
        }
        Ok(Pipeline {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            text: text.to_string(),
            workspace: resolve(&raw.workspace),
            traces: resolve(&raw.traces),
            runs: raw.runs,
            workers: raw.workers,
            schedule: raw.schedule,
            seed: raw.seed,
            plugins: raw.plugins.iter().map(|p| resolve(p)).collect(),
            on_error: raw.on_error,
            run_timeout: raw.run_timeout,
            chunk_events: raw.chunk_events,
            phases,
        })
    }

    /// The phase kinds the pipeline uses.
    pub fn kinds(&self) -> Vec<&str> {
        self.phases.iter().map(|p| p.kind.as_str()).collect()
    }

    /// The line of the last segment of a config field path (`a.b.c`) inside phase `spec`'s
    /// config, found by scanning the file from the config's line; 0 when not found.
    pub fn config_field_line(&self, spec: &PhaseSpec, field_path: &str) -> usize {
        let start = if spec.config_line > 0 {
            spec.config_line
        } else {
            spec.line
        };
        let mut line = start;
        for seg in field_path.split('.').filter(|s| !s.is_empty()) {
            let key = seg.split('[').next().unwrap_or(seg);
            match find_key_line(&self.text, key, line.saturating_sub(1)) {
                Some(l) => line = l,
                None => return 0,
            }
        }
        line
    }
}

/// The 1-based line of the first `key:` (as a mapping key) at or after 0-based line `from`.
fn find_key_line(text: &str, key: &str, from: usize) -> Option<usize> {
    for (i, l) in text.lines().enumerate().skip(from) {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with(':') {
                return Some(i + 1);
            }
        }
        // Flow mappings: `{a: 1, key: 2}`.
        if l.contains(&format!(" {key}:")) || l.contains(&format!("{{{key}:")) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_touching_the_traces_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("traces")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::os::unix::fs::symlink(root.join("traces"), root.join("data/raw")).unwrap();
        let pipe = |ws: &str, traces: &str| {
            let text = format!(
                "workspace: {ws}\ntraces: {traces}\nruns: {{min: 1, max: 1}}\nphases:\n  - kind: k\n"
            );
            Pipeline::parse(&root.join("p.yaml"), &text).unwrap()
        };
        // A phase named like the trace folder, in a workspace that holds it.
        let e = check_layout(&pipe(".", "traces"), &["traces"]).unwrap_err();
        assert!(e.to_string().contains("is the trace folder"), "{e}");
        // The workspace is the trace folder: its log folder would be inside it.
        let e = check_layout(&pipe("traces", "traces"), &["Pointcloud"]).unwrap_err();
        assert!(e.to_string().contains("inside the trace folder"), "{e}");
        // Through a symbolic link.
        let e = check_layout(&pipe("data", "traces"), &["raw"]).unwrap_err();
        assert!(e.to_string().contains("the trace folder"), "{e}");
        // The trace folder inside an asset folder.
        let e = check_layout(&pipe(".", "P_assets/t"), &["P"]).unwrap_err();
        assert!(e.to_string().contains("contains the trace folder"), "{e}");
        // A workspace that is a link loop or a file.
        std::os::unix::fs::symlink(root.join("loop"), root.join("loop")).unwrap();
        let e = check_layout(&pipe("loop", "traces"), &["P"]).unwrap_err();
        assert!(e.to_string().contains("workspace"), "{e}");
        std::fs::write(root.join("afile"), b"x").unwrap();
        let e = check_layout(&pipe("afile", "traces"), &["P"]).unwrap_err();
        assert!(e.to_string().contains("is not a folder"), "{e}");
        // Side by side is fine, and nothing was created.
        check_layout(&pipe("ws", "traces"), &["Pointcloud"]).unwrap();
        check_layout(&pipe(".", "traces"), &["Pointcloud"]).unwrap();
        assert!(!root.join("ws").exists());
    }

    const GOOD: &str = r#"
workspace: ws
traces: /data/traces
runs: {min: 1, max: 10, skip: [3]}
workers: 2
anchors:
  det: &det {magnetic_field: 2.85}
phases:
  - kind: pointcloud
    config:
      detector: *det
  - kind: cluster
    name: MyCluster
    active: false
"#;

    #[test]
    fn parses_and_resolves() {
        let p = Pipeline::parse(Path::new("/home/u/p.yaml"), GOOD).unwrap();
        assert_eq!(p.workspace, PathBuf::from("/home/u/ws"));
        assert_eq!(p.traces, PathBuf::from("/data/traces"));
        assert_eq!(p.runs.skip, crate::runs::RunSet::from_runs([3]));
        assert_eq!(p.phases.len(), 2);
        assert_eq!(
            p.phases[0].config.as_ref().unwrap()["detector"]["magnetic_field"],
            2.85
        );
        assert!(!p.phases[1].active);
        assert_eq!(p.phases[1].line, 12);
        assert_eq!(p.schedule, Schedule::Snake);
        assert_eq!(p.config_field_line(&p.phases[0], "detector"), 11);
    }

    #[test]
    fn run_timeouts() {
        let t = |text: &str| text.parse::<RunTimeout>().map(|t| t.seconds());
        assert_eq!(t("90"), Ok(90.0));
        assert_eq!(t("90s"), Ok(90.0));
        assert_eq!(t("1.5h"), Ok(5400.0));
        assert_eq!(t("45 m"), Ok(2700.0));
        assert!(t("0").is_err() && t("-3s").is_err() && t("2 weeks").is_err());
        assert!(t("nan").is_err() && t("1e300").is_err());
        let p = Pipeline::parse(
            Path::new("p.yaml"),
            &GOOD.replace("workers: 2", "workers: 2\nrun_timeout: 2h"),
        )
        .unwrap();
        assert_eq!(p.run_timeout.map(|t| t.seconds()), Some(7200.0));
        let e = Pipeline::parse(
            Path::new("p.yaml"),
            &GOOD.replace("workers: 2", "workers: 2\nrun_timeout: soon"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("run_timeout"), "{e}");
    }

    #[test]
    fn unknown_key_names_line() {
        let e = Pipeline::parse(Path::new("p.yaml"), &GOOD.replace("workers:", "wrokers:"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("wrokers"), "{e}");
        assert!(e.contains("line 5") || e.contains(":5:"), "{e}");
    }

    #[test]
    fn bad_names_and_ranges() {
        for bad in [
            "../x",
            "a/b",
            "\"\"",
            "log",
            "slurm",
            "\"a\\x07b\"",
            "x_assets",
        ] {
            let t = GOOD.replace("MyCluster", bad);
            let e = Pipeline::parse(Path::new("p.yaml"), &t)
                .unwrap_err()
                .to_string();
            assert!(e.contains("cannot be a folder name"), "{bad}: {e}");
        }
        let long = "n".repeat(MAX_PHASE_NAME + 1);
        let e = Pipeline::parse(Path::new("p.yaml"), &GOOD.replace("MyCluster", &long))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bytes long"), "{e}");
        let e = Pipeline::parse(Path::new("p.yaml"), &GOOD.replace("max: 10", "max: 0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than max"), "{e}");
    }

    #[test]
    fn oversized_files_and_streams_are_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        let mut text = GOOD.to_string();
        text.push_str(&format!("# {}\n", "x".repeat(MAX_PIPELINE_BYTES as usize)));
        std::fs::write(&big, &text).unwrap();
        let e = Pipeline::load(&big).unwrap_err();
        assert!(matches!(e, PipelineError::TooLarge { size, .. } if size == text.len() as u64));
        let msg = e.to_string();
        assert!(
            msg.contains("big.yaml") && msg.contains("at most 16777216 bytes"),
            "{msg}"
        );
        // A device that never ends is read only up to the bound.
        let e = Pipeline::load(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(e, PipelineError::TooLarge { .. }), "{e}");
        // At the bound a file is still parsed.
        let ok = dir.path().join("ok.yaml");
        std::fs::write(&ok, GOOD).unwrap();
        assert!(Pipeline::load(&ok).is_ok());
    }
}
