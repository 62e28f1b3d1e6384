//! Provenance of artifacts, and the one rule that decides whether a (run, phase) is redone.
//!
//! After a phase succeeds (or fails) on a run, the worker writes a small JSON record beside the
//! artifacts: `<workspace>/<Phase>/.provenance/run_0001.json`. It is written last, after the
//! artifacts are complete and renamed, through a temporary name, while the worker holds the
//! (run, phase) lock. It holds the phase kind and name, the library's code identity (build id
//! or file hash, see `identity`), the whole resolved configuration, the identity of every input
//! **by content** (the BLAKE3 hash of an input artifact; raw trace files, which are never
//! rewritten, by size and modification time), the seed, the identity hash of the record of the
//! active phase before it (a chain through every earlier phase), the outputs (size,
//! modification time and content hash) and the status.
//!
//! [`decide`] is the only rule: `spyral run` (in the worker) and `spyral status` both call it,
//! with the same inputs, so status predicts exactly what the next launch does. A (run, phase)
//! is **up to date** when it is not forced, no earlier phase of the run reruns, its record says
//! ok, its identity equals what would be produced now, and every recorded output is still there
//! unchanged. Otherwise it reruns, and the reason is typed ([`RunReason`], [`StaleReason`]) down
//! to the configuration field that changed.

use crate::chain::ChainPhase;
use crate::identity::LibraryId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spyral_core::{run_stem, PhaseResult};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Version of the record format. Records of another version are redone.
pub const RECORD_FORMAT: u32 = 2;

/// Identity of one file: where it is, its size and modification time, and, for artifacts, the
/// hash of its bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileId {
    /// Artifact name (`trace`, `cloud`, ...).
    pub name: String,
    /// Path.
    pub path: PathBuf,
    /// Size in bytes (0 when missing).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch (0 when missing).
    pub mtime_ns: u128,
    /// `blake3:<hex>` of its bytes; `None` for raw trace files (identified by size and time).
    pub hash: Option<String>,
    /// Whether the file existed.
    #[serde(default = "yes")]
    pub exists: bool,
}

fn yes() -> bool {
    true
}

impl FileId {
    /// Whether two identities name the same content: by hash when both have one, else by size
    /// and modification time (a copied artifact with the same bytes is the same input).
    pub fn same_content(&self, other: &FileId) -> bool {
        if self.name != other.name || self.exists != other.exists {
            return false;
        }
        match (&self.hash, &other.hash) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.size == other.size && self.mtime_ns == other.mtime_ns,
            _ => false,
        }
    }
}

/// What identifies the output of a (run, phase): everything that, changed, changes the output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Identity {
    /// Phase kind.
    pub kind: String,
    /// Phase name.
    pub phase: String,
    /// The library's identity (its code, not only its version).
    pub library: LibraryId,
    /// The whole resolved configuration.
    pub config: Value,
    /// Inputs, by content, sorted by name.
    pub inputs: Vec<FileId>,
    /// Seed of the (run, phase), when the pipeline or the command line fixes the base seed.
    pub seed: Option<u64>,
    /// The event chunk `[first, last]` this result covers (None: the whole run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<[u64; 2]>,
    /// Files the configuration names (particle-ID gate, gas file, pad maps, ...), by content,
    /// named by their config field: editing such a file in place makes the phase stale.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileId>,
    /// The record this one follows: the active phase just before it (for this run, or this
    /// chunk) and the identity hash of its record. Each identity holds the one before, so every
    /// earlier phase counts: a phase reading a non-adjacent earlier phase by name is stale when
    /// that phase changed, even if the phases between wrote the same bytes. None for the first
    /// active phase, after an inactive phase (its artifacts are taken as they are), and in
    /// records made before this field (accepted as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<After>,
}

/// The earlier record an [`Identity`] follows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct After {
    /// The earlier phase.
    pub phase: String,
    /// The identity hash of its record ([`Record::hash`]).
    pub record: String,
}

impl After {
    /// Follows the record `r` of phase `phase`.
    pub fn record(phase: &str, r: &Record) -> Option<After> {
        Some(After {
            phase: phase.to_string(),
            record: r.hash.clone(),
        })
    }
}

impl Identity {
    /// What phase `c` would be, run on `payload` with `seed` (None: the seed is drawn at each
    /// launch and is not part of the identity). `traces` is the raw trace folder: files in it
    /// are identified by size and time instead of being hashed.
    pub fn of(c: &ChainPhase, payload: &PhaseResult, seed: Option<u64>) -> Identity {
        Identity {
            kind: c.spec.kind.clone(),
            phase: c.name.clone(),
            library: c.library.clone(),
            config: c.resolved_config_value(),
            inputs: inputs(payload, Path::new(c.workspace.traces.as_str())),
            seed,
            events: None,
            files: config_files(
                &c.resolved_config_value(),
                Path::new(c.workspace.root.as_str()),
            ),
            after: None,
        }
    }
    /// The same identity following `after` (see [`Identity::after`]).
    pub fn following(mut self, after: Option<After>) -> Identity {
        self.after = after;
        self
    }
    /// The same identity for one event chunk.
    pub fn for_chunk(mut self, first: u64, last: u64) -> Identity {
        self.events = Some([first, last]);
        self
    }

    /// A short hash of the whole identity.
    pub fn hash(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
    }
}

/// Whether a record says the phase succeeded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RecordStatus {
    /// The phase succeeded; its outputs are listed.
    Ok,
    /// The phase failed; the error is recorded.
    Failed,
}

/// The record written beside a run's artifacts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// Run number.
    pub run: u32,
    /// What made it.
    pub identity: Identity,
    /// `identity.hash()`.
    pub hash: String,
    /// Ok or failed.
    pub status: RecordStatus,
    /// The error, when failed.
    pub error: Option<String>,
    /// The outputs.
    pub outputs: Vec<FileId>,
    /// The launch that wrote it (its log folder name).
    pub launch: String,
    /// The metadata the phase returned (counts), handed on with the outputs.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Start time (seconds since the epoch).
    pub started: f64,
    /// End time.
    pub finished: f64,
}

/// Where the record of `run` for the phase whose artifacts are in `artifact_dir` lives.
pub fn record_path(artifact_dir: &Path, run: u32) -> PathBuf {
    artifact_dir
        .join(".provenance")
        .join(format!("{}.json", run_stem(run)))
}

fn stat(path: &Path) -> Option<(u64, u128)> {
    let m = std::fs::metadata(path).ok()?;
    let mtime_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Some((m.len(), mtime_ns))
}

fn missing(name: &str, path: &Path) -> FileId {
    FileId {
        name: name.to_string(),
        path: path.to_path_buf(),
        size: 0,
        mtime_ns: 0,
        hash: None,
        exists: false,
    }
}

/// Identity of the artifact `name` at `path` of `run`, by content. Raw trace files (inside
/// `traces`) are not hashed. Otherwise the hash recorded by the phase that wrote the file is
/// used when the file is unchanged since (same size and time); else the file is hashed now.
pub fn content_id(name: &str, path: &Path, run: u32, traces: &Path) -> FileId {
    let Some((size, mtime_ns)) = stat(path) else {
        return missing(name, path);
    };
    let mut id = FileId {
        name: name.to_string(),
        path: path.to_path_buf(),
        size,
        mtime_ns,
        hash: None,
        exists: true,
    };
    if is_inside(path, traces) {
        return id;
    }
    // The record of the run (whole-run artifacts), or of the chunk named like the file
    // (`e0-99.h5` -> `.provenance/e0-99.json`, chunk artifacts).
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = path.parent() {
        candidates.push(record_path(dir, run));
        if let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) {
            let stem = stem.split('_').next().unwrap_or(&stem).to_string();
            candidates.push(dir.join(".provenance").join(format!("{stem}.json")));
        }
    }
    let recorded = candidates.iter().find_map(|rp| match read(rp) {
        RecordRead::Found(r) => r
            .outputs
            .into_iter()
            .find(|o| o.path == path && o.size == size && o.mtime_ns == mtime_ns)
            .and_then(|o| o.hash),
        _ => None,
    });
    id.hash = recorded.or_else(|| crate::identity::file_hash(path).ok());
    id
}

fn is_inside(path: &Path, dir: &Path) -> bool {
    path.parent().is_some_and(|p| p == dir)
        || std::fs::canonicalize(path)
            .ok()
            .zip(std::fs::canonicalize(dir).ok())
            .is_some_and(|(p, d)| p.starts_with(d))
}

/// The identities of a payload's artifacts (the inputs of the next phase), sorted by name.
pub fn inputs(payload: &PhaseResult, traces: &Path) -> Vec<FileId> {
    let mut out: Vec<FileId> = payload
        .artifacts
        .iter()
        .map(|a| {
            content_id(
                a.name.as_str(),
                Path::new(a.path.as_str()),
                payload.run_number,
                traces,
            )
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The regular files that string values of `config` name (relative paths are relative to the
/// current directory, the pipeline file's folder in the parent and in workers), by content, each
/// named by its field (`particle_id_filename`, `pads.map`). Files inside the workspace are left
/// out: artifacts are inputs already, and a phase's own outputs must not make it stale.
pub fn config_files(config: &Value, workspace: &Path) -> Vec<FileId> {
    fn walk(field: String, v: &Value, out: &mut Vec<(String, PathBuf)>) {
        let join = |k: &str| {
            if field.is_empty() {
                k.to_string()
            } else {
                format!("{field}.{k}")
            }
        };
        match v {
            Value::Object(m) => m.iter().for_each(|(k, x)| walk(join(k), x, out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| walk(format!("{field}[{i}]"), x, out)),
            Value::String(s) if !s.is_empty() && s.len() <= 4096 && !s.contains(['\n', '\0']) => {
                let path = std::path::absolute(s).unwrap_or_else(|_| PathBuf::from(s));
                if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                    out.push((field, path));
                }
            }
            _ => {}
        }
    }
    let mut named = Vec::new();
    walk(String::new(), config, &mut named);
    let workspace = std::fs::canonicalize(workspace).unwrap_or_else(|_| workspace.to_path_buf());
    named
        .into_iter()
        .filter(|(_, p)| !std::fs::canonicalize(p).is_ok_and(|c| c.starts_with(&workspace)))
        .map(|(field, path)| cached_file_id(&field, &path))
        .collect()
}

/// The content identity of a configuration file, hashed once per process while its size and
/// modification time stay the same (a launch decides many runs with the same gate file).
fn cached_file_id(field: &str, path: &Path) -> FileId {
    type Key = (PathBuf, u64, u128);
    static HASHES: std::sync::Mutex<Option<std::collections::HashMap<Key, String>>> =
        std::sync::Mutex::new(None);
    let Some((size, mtime_ns)) = stat(path) else {
        return missing(field, path);
    };
    let key = (path.to_path_buf(), size, mtime_ns);
    let known = HASHES
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(&key).cloned()));
    let hash = known.or_else(|| {
        let h = crate::identity::file_hash(path).ok()?;
        if let Ok(mut m) = HASHES.lock() {
            m.get_or_insert_with(Default::default)
                .insert(key, h.clone());
        }
        Some(h)
    });
    FileId {
        name: field.to_string(),
        path: path.to_path_buf(),
        size,
        mtime_ns,
        hash,
        exists: true,
    }
}

/// The outputs of a successful result, hashed now (raw trace files passed through are not).
pub fn outputs(result: &PhaseResult, traces: &Path) -> Vec<FileId> {
    result
        .artifacts
        .iter()
        .map(|a| {
            let path = Path::new(a.path.as_str());
            let Some((size, mtime_ns)) = stat(path) else {
                return missing(a.name.as_str(), path);
            };
            FileId {
                name: a.name.to_string(),
                path: path.to_path_buf(),
                size,
                mtime_ns,
                hash: if is_inside(path, traces) {
                    None
                } else {
                    crate::identity::file_hash(path).ok()
                },
                exists: true,
            }
        })
        .collect()
}

/// What reading a record found.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordRead {
    /// No record: never done, or the record was removed.
    Absent,
    /// A file that is not a record of this format.
    Unreadable(String),
    /// A record.
    Found(Box<Record>),
}

/// Reads a record.
pub fn read(path: &Path) -> RecordRead {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return RecordRead::Absent,
        Err(e) => return RecordRead::Unreadable(format!("cannot read {}: {e}", path.display())),
    };
    let format = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("format").and_then(Value::as_u64));
    if format != Some(u64::from(RECORD_FORMAT)) {
        return RecordRead::Unreadable(format!(
            "{} was written by another version of spyral",
            path.display()
        ));
    }
    match serde_json::from_str(&text) {
        Ok(r) => RecordRead::Found(Box::new(r)),
        Err(e) => RecordRead::Unreadable(format!("{}: {e}", path.display())),
    }
}

/// Where the record of `run`'s chunk `first..=last` lives:
/// `<artifact_dir>/.chunks/run_0001/.provenance/e0-99.json`.
pub fn chunk_record_path(artifact_dir: &Path, run: u32, first: u64, last: u64) -> PathBuf {
    spyral_core::chunk::chunk_dir(artifact_dir, run)
        .join(".provenance")
        .join(format!("e{first}-{last}.json"))
}

/// The event ranges of the chunk records (`e<first>-<last>.json`) an earlier launch left for
/// `run` under `artifact_dir`, in event order: chunk results the next launch reuses where its
/// chunks and their identity match.
pub fn chunk_records(artifact_dir: &Path, run: u32) -> Vec<[u64; 2]> {
    let dir = spyral_core::chunk::chunk_dir(artifact_dir, run).join(".provenance");
    let mut ranges: Vec<[u64; 2]> = std::fs::read_dir(dir).map_or_else(
        |_| Vec::new(),
        |rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name();
                    let (first, last) = name
                        .to_str()?
                        .strip_prefix('e')?
                        .strip_suffix(".json")?
                        .split_once('-')?;
                    Some([first.parse().ok()?, last.parse().ok()?])
                })
                .collect()
        },
    );
    ranges.sort_unstable();
    ranges
}

/// What the merge of one phase's chunks leaves for the run's commit, which turns it into the
/// whole-run [`Record`] once every upstream record exists (a record names its inputs by
/// content, so it can only be written in chain order, while merges run at once).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MergedRecord {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// Run number.
    pub run: u32,
    /// The launch whose merge wrote it (a commit uses only its own launch's merges).
    pub launch: String,
    /// The merged chunks' `[first, last]` event ranges.
    pub ranges: Vec<[u64; 2]>,
    /// The merged artifacts, by content.
    pub outputs: Vec<FileId>,
    /// The metadata the merge returned.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Start time of the merge (seconds since the epoch).
    pub started: f64,
    /// End time.
    pub finished: f64,
}

/// Where the merge of `run`'s chunks leaves its [`MergedRecord`]:
/// `<artifact_dir>/.chunks/run_0001/.provenance/merged.json`.
pub fn merged_record_path(artifact_dir: &Path, run: u32) -> PathBuf {
    spyral_core::chunk::chunk_dir(artifact_dir, run)
        .join(".provenance")
        .join("merged.json")
}

/// Reads a [`MergedRecord`]; `None` when absent or unreadable.
pub fn read_merged(path: &Path) -> Option<MergedRecord> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes a record through a temporary name.
pub fn write(artifact_dir: &Path, record: &Record) -> std::io::Result<()> {
    write_at(&record_path(artifact_dir, record.run), record)
}

/// Writes a record ([`Record`] or [`MergedRecord`]) at `path` through a temporary name.
pub fn write_at<T: Serialize>(path: &Path, record: &T) -> std::io::Result<()> {
    let path = path.to_path_buf();
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = spyral_core::workspace::partial_path(&path);
    let text = serde_json::to_string_pretty(record).map_err(std::io::Error::other)?;
    let written = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path));
    if written.is_err() {
        // A full disk must not leave a temporary record behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// One configuration field that differs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConfigChange {
    /// Dotted path (`hdbscan.min_points`, `pads[3]`).
    pub field: String,
    /// Value in the record (None: absent).
    pub old: Option<Value>,
    /// Value now (None: absent).
    pub new: Option<Value>,
}

impl std::fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| match v {
            None => "(absent)".to_string(),
            Some(v) => {
                let t = v.to_string();
                if t.chars().count() > 40 {
                    format!("{}...", t.chars().take(37).collect::<String>())
                } else {
                    t
                }
            }
        };
        write!(
            f,
            "{} changed {} -> {}",
            self.field,
            show(&self.old),
            show(&self.new)
        )
    }
}

/// The differing leaves of two JSON values, as dotted paths.
pub fn config_changes(old: &Value, new: &Value) -> Vec<ConfigChange> {
    let mut out = Vec::new();
    diff(String::new(), Some(old), Some(new), &mut out);
    out
}

fn diff(path: String, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<ConfigChange>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                diff(join(k), a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        (a, b) if a != b => out.push(ConfigChange {
            field: if path.is_empty() {
                "(whole configuration)".into()
            } else {
                path
            },
            old: a.cloned(),
            new: b.cloned(),
        }),
        _ => {}
    }
}

/// Why a done (run, phase) no longer stands for what would be produced now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum StaleReason {
    /// The record cannot be used (another format, corrupt).
    UnreadableRecord {
        /// Why.
        detail: String,
    },
    /// The phase's library has different code.
    PluginChanged {
        /// Library then.
        old: String,
        /// Library now.
        new: String,
    },
    /// Another phase kind now has this name.
    KindChanged {
        /// Kind then.
        old: String,
        /// Kind now.
        new: String,
    },
    /// Configuration fields changed.
    ConfigChanged {
        /// Every changed field.
        changes: Vec<ConfigChange>,
    },
    /// An input's content changed (or it appeared or disappeared).
    InputChanged {
        /// Input artifact name.
        name: String,
        /// Its path now.
        path: PathBuf,
    },
    /// A file the configuration names (a gate, a gas file) changed or appeared.
    ConfigFileChanged {
        /// The config field naming it.
        field: String,
        /// The file.
        path: PathBuf,
    },
    /// The fixed base seed changed.
    SeedChanged,
    /// The record of the active phase before it was rewritten with another identity since
    /// this phase ran (an earlier phase changed, though its direct input may have the same
    /// bytes).
    EarlierPhaseChanged {
        /// The phase just before, whose record changed.
        phase: String,
    },
    /// An output was modified after it was written.
    OutputModified {
        /// The output.
        path: PathBuf,
    },
    /// An output is gone.
    OutputMissing {
        /// The output.
        path: PathBuf,
    },
}

impl std::fmt::Display for StaleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StaleReason::UnreadableRecord { detail } => write!(f, "unusable record: {detail}"),
            StaleReason::PluginChanged { old, new } => {
                write!(f, "plugin code changed ({old} -> {new})")
            }
            StaleReason::KindChanged { old, new } => write!(f, "phase kind changed {old} -> {new}"),
            StaleReason::ConfigChanged { changes } => {
                let parts: Vec<String> = changes.iter().map(ToString::to_string).collect();
                let s = if changes.len() == 1 { "" } else { "s" };
                write!(f, "config field{s} {}", parts.join(", "))
            }
            StaleReason::ConfigFileChanged { field, path } => write!(
                f,
                "file named by config field {field} ({}) changed",
                path.display()
            ),
            StaleReason::InputChanged { name, path } => {
                write!(f, "input `{name}` ({}) changed", path.display())
            }
            StaleReason::SeedChanged => write!(f, "seed changed"),
            StaleReason::EarlierPhaseChanged { phase } => {
                write!(f, "earlier phases changed since it ran (record of {phase})")
            }
            StaleReason::OutputModified { path } => {
                write!(f, "output {} was modified", path.display())
            }
            StaleReason::OutputMissing { path } => {
                write!(f, "output {} is missing", path.display())
            }
        }
    }
}

/// Why a (run, phase) runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "why", rename_all = "kebab-case")]
pub enum RunReason {
    /// Never done (no record).
    Missing,
    /// The last attempt failed.
    Failed {
        /// Its error.
        error: String,
    },
    /// Done, but something changed.
    Stale {
        /// What changed.
        #[serde(flatten)]
        reason: StaleReason,
    },
    /// `--force` names it.
    Forced,
    /// An earlier phase of the same run reruns, so its input will be rewritten.
    Upstream {
        /// That phase.
        phase: String,
    },
}

impl std::fmt::Display for RunReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunReason::Missing => f.write_str("not done yet"),
            RunReason::Failed { error } => write!(f, "failed last time: {error}"),
            RunReason::Stale { reason } => write!(f, "stale: {reason}"),
            RunReason::Forced => f.write_str("forced"),
            RunReason::Upstream { phase } => write!(f, "stale: earlier phase {phase} reruns"),
        }
    }
}

/// What to do with a (run, phase).
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Up to date: use the record's outputs.
    UpToDate(Box<Record>),
    /// Run it, for this reason.
    Run(RunReason),
}

/// The one rule (see the module doc). `upstream` names the earlier phase of this run that
/// reruns, if any. Reasons are reported in this order: forced, missing, unusable record,
/// failed, earlier phase reruns, then what changed.
pub fn decide(
    record: &RecordRead,
    now: &Identity,
    forced: bool,
    upstream: Option<&str>,
) -> Decision {
    if forced {
        return Decision::Run(RunReason::Forced);
    }
    let stale = |reason| Decision::Run(RunReason::Stale { reason });
    let r = match record {
        RecordRead::Absent => return Decision::Run(RunReason::Missing),
        RecordRead::Unreadable(detail) => {
            return stale(StaleReason::UnreadableRecord {
                detail: detail.clone(),
            })
        }
        RecordRead::Found(r) => r,
    };
    if r.status == RecordStatus::Failed {
        return Decision::Run(RunReason::Failed {
            error: r.error.clone().unwrap_or_else(|| "failed".into()),
        });
    }
    if let Some(phase) = upstream {
        return Decision::Run(RunReason::Upstream {
            phase: phase.to_string(),
        });
    }
    if let Some(reason) = identity_change(&r.identity, now) {
        return stale(reason);
    }
    for o in &r.outputs {
        match stat(&o.path) {
            None if o.exists => {
                return stale(StaleReason::OutputMissing {
                    path: o.path.clone(),
                })
            }
            Some((size, mtime)) if size != o.size || mtime != o.mtime_ns => {
                return stale(StaleReason::OutputModified {
                    path: o.path.clone(),
                })
            }
            _ => {}
        }
    }
    Decision::UpToDate(r.clone())
}

/// The first difference between the identity in a record and the one now.
fn identity_change(old: &Identity, now: &Identity) -> Option<StaleReason> {
    if old.library.code != now.library.code {
        return Some(StaleReason::PluginChanged {
            old: old.library.to_string(),
            new: now.library.to_string(),
        });
    }
    if old.kind != now.kind {
        return Some(StaleReason::KindChanged {
            old: old.kind.clone(),
            new: now.kind.clone(),
        });
    }
    if old.config != now.config {
        return Some(StaleReason::ConfigChanged {
            changes: config_changes(&old.config, &now.config),
        });
    }
    let names = |v: &[FileId]| v.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    if names(&old.inputs) != names(&now.inputs) {
        let name = now
            .inputs
            .iter()
            .find(|i| !old.inputs.iter().any(|o| o.name == i.name))
            .or_else(|| now.inputs.first())
            .map(|i| (i.name.clone(), i.path.clone()))
            .unwrap_or_default();
        return Some(StaleReason::InputChanged {
            name: name.0,
            path: name.1,
        });
    }
    for (o, n) in old.inputs.iter().zip(&now.inputs) {
        if !o.same_content(n) {
            return Some(StaleReason::InputChanged {
                name: n.name.clone(),
                path: n.path.clone(),
            });
        }
    }
    let changed_file = now.files.iter().find(|n| {
        !old.files
            .iter()
            .any(|o| o.name == n.name && o.same_content(n))
    });
    if let Some(f) = changed_file {
        return Some(StaleReason::ConfigFileChanged {
            field: f.name.clone(),
            path: f.path.clone(),
        });
    }
    if now.seed.is_some() && old.seed != now.seed {
        return Some(StaleReason::SeedChanged);
    }
    // A record without it (made before the field existed, or after an inactive phase) is taken
    // as it is.
    if let (Some(o), Some(n)) = (&old.after, &now.after) {
        if o != n {
            return Some(StaleReason::EarlierPhaseChanged {
                phase: n.phase.clone(),
            });
        }
    }
    None
}

/// The result a current record stands for (its outputs), for the next phase.
pub fn result_of(record: &Record) -> PhaseResult {
    let mut r = PhaseResult::new(record.run);
    for o in &record.outputs {
        r.set_artifact(&o.name, &o.path);
    }
    if record.metadata.is_object() {
        r.metadata = record.metadata.to_string().into();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lib(code: &str) -> LibraryId {
        LibraryId {
            name: "lib".into(),
            version: "1.0.0".into(),
            path: None,
            code: code.into(),
        }
    }

    fn ident(inputs: Vec<FileId>) -> Identity {
        Identity {
            kind: "k".into(),
            phase: "P".into(),
            library: lib("build-id:aa"),
            config: json!({"hdbscan": {"min_points": 3}, "scale": 0.5}),
            inputs,
            seed: Some(1),
            events: None,
            files: Vec::new(),
            after: None,
        }
    }

    fn record(now: &Identity, outputs: Vec<FileId>) -> RecordRead {
        RecordRead::Found(Box::new(Record {
            format: RECORD_FORMAT,
            run: 1,
            hash: now.hash(),
            identity: now.clone(),
            status: RecordStatus::Ok,
            error: None,
            outputs,
            launch: "t".into(),
            metadata: serde_json::Value::Null,
            started: 0.0,
            finished: 0.0,
        }))
    }

    fn outputs_of(r: &RecordRead) -> Vec<FileId> {
        match r {
            RecordRead::Found(r) => r.outputs.clone(),
            _ => Vec::new(),
        }
    }

    fn stale(d: Decision) -> StaleReason {
        match d {
            Decision::Run(RunReason::Stale { reason }) => reason,
            other => panic!("expected stale, got {other:?}"),
        }
    }

    #[test]
    fn decisions() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run_0001.bin");
        std::fs::write(&out, b"x").unwrap();
        let traces = dir.path().join("traces");
        let now = ident(vec![]);
        let outputs = outputs(
            &PhaseResult::new(1).with_artifact("a", &out),
            traces.as_path(),
        );
        assert!(outputs[0].hash.is_some());
        let rec = record(&now, outputs);
        assert_eq!(
            decide(&RecordRead::Absent, &now, false, None),
            Decision::Run(RunReason::Missing)
        );
        assert!(matches!(
            decide(&rec, &now, false, None),
            Decision::UpToDate(_)
        ));
        assert_eq!(
            decide(&rec, &now, true, None),
            Decision::Run(RunReason::Forced)
        );
        assert_eq!(
            decide(&rec, &now, false, Some("Cluster")),
            Decision::Run(RunReason::Upstream {
                phase: "Cluster".into()
            })
        );
        // Config: the changed field is named with its values.
        let mut changed = now.clone();
        changed.config["hdbscan"]["min_points"] = json!(4);
        let why = stale(decide(&rec, &changed, false, None));
        assert_eq!(
            why.to_string(),
            "config field hdbscan.min_points changed 3 -> 4"
        );
        // Plugin code.
        let mut rebuilt = now.clone();
        rebuilt.library = lib("build-id:bb");
        assert!(matches!(
            stale(decide(&rec, &rebuilt, false, None)),
            StaleReason::PluginChanged { .. }
        ));
        // A drawn seed is not part of the identity.
        let mut no_seed = now.clone();
        no_seed.seed = None;
        assert!(matches!(
            decide(&rec, &no_seed, false, None),
            Decision::UpToDate(_)
        ));
        // The record before it: another identity hash there makes it stale, naming the phase;
        // a record made without it (before the field existed) is taken as it is.
        let follows = |hash: &str| {
            now.clone().following(Some(After {
                phase: "Cluster".into(),
                record: hash.into(),
            }))
        };
        let chained = record(&follows("aaaa"), outputs_of(&rec));
        assert!(matches!(
            decide(&chained, &follows("aaaa"), false, None),
            Decision::UpToDate(_)
        ));
        let why = stale(decide(&chained, &follows("bbbb"), false, None));
        assert_eq!(
            why,
            StaleReason::EarlierPhaseChanged {
                phase: "Cluster".into()
            }
        );
        assert_eq!(
            why.to_string(),
            "earlier phases changed since it ran (record of Cluster)"
        );
        assert!(matches!(
            decide(&rec, &follows("bbbb"), false, None),
            Decision::UpToDate(_)
        ));
        // Modified and missing outputs.
        std::fs::write(&out, b"xy").unwrap();
        assert!(matches!(
            stale(decide(&rec, &now, false, None)),
            StaleReason::OutputModified { .. }
        ));
        std::fs::remove_file(&out).unwrap();
        assert!(matches!(
            stale(decide(&rec, &now, false, None)),
            StaleReason::OutputMissing { .. }
        ));
        // Failed records rerun with their error.
        let RecordRead::Found(mut failed) = rec.clone() else {
            unreachable!()
        };
        failed.status = RecordStatus::Failed;
        failed.error = Some("boom".into());
        assert_eq!(
            decide(&RecordRead::Found(failed.clone()), &now, false, None),
            Decision::Run(RunReason::Failed {
                error: "boom".into()
            })
        );
        // Round trip, and records of another format are unusable.
        write(dir.path(), &failed).unwrap();
        assert_eq!(read(&record_path(dir.path(), 1)), RecordRead::Found(failed));
        std::fs::write(record_path(dir.path(), 1), r#"{"run": 1, "status": "ok"}"#).unwrap();
        assert!(matches!(
            read(&record_path(dir.path(), 1)),
            RecordRead::Unreadable(_)
        ));
    }

    #[test]
    fn inputs_are_identified_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let traces = dir.path().join("traces");
        std::fs::create_dir_all(&traces).unwrap();
        let trace = traces.join("run_0001.h5");
        std::fs::write(&trace, b"raw").unwrap();
        let art = dir.path().join("run_0001.bin");
        std::fs::write(&art, b"derived").unwrap();
        let t = content_id("trace", &trace, 1, &traces);
        assert_eq!(t.hash, None, "raw traces are not hashed");
        let a = content_id("a", &art, 1, &traces);
        assert!(a.hash.is_some());
        // Same bytes rewritten later: same content.
        std::thread::sleep(std::time::Duration::from_millis(5));
        std::fs::write(&art, b"derived").unwrap();
        let a2 = content_id("a", &art, 1, &traces);
        assert!(a.same_content(&a2));
        // Different bytes: different content, and the decision names the input.
        std::fs::write(&art, b"changed").unwrap();
        let a3 = content_id("a", &art, 1, &traces);
        assert!(!a.same_content(&a3));
        let before = ident(vec![a]);
        let rec = record(&before, vec![]);
        let after = ident(vec![a3]);
        assert!(matches!(
            stale(decide(&rec, &after, false, None)),
            StaleReason::InputChanged { name, .. } if name == "a"
        ));
    }

    #[test]
    fn files_named_by_the_configuration_are_identified_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let gate = dir.path().join("pid.json");
        std::fs::write(&gate, b"{\"Z\": 1}").unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("P")).unwrap();
        let own = ws.join("P/out.csv");
        std::fs::write(&own, b"a,b").unwrap();
        let config = json!({
            "particle_id_filename": gate,
            "nested": {"list": [dir.path(), "not a file", own]},
        });
        let files = config_files(&config, &ws);
        // The gate is named by its field; folders, other strings and workspace files are not.
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["particle_id_filename"]);
        let mut before = ident(vec![]);
        before.files = files;
        let rec = record(&before, vec![]);
        let mut same = ident(vec![]);
        same.files = config_files(&config, &ws);
        assert!(matches!(
            decide(&rec, &same, false, None),
            Decision::UpToDate(_)
        ));
        // The gate edited in place (same path, same config): stale, naming the field.
        std::thread::sleep(std::time::Duration::from_millis(5));
        std::fs::write(&gate, b"{\"Z\": 2}").unwrap();
        let mut after = ident(vec![]);
        after.files = config_files(&config, &ws);
        let reason = stale(decide(&rec, &after, false, None));
        assert!(
            matches!(&reason, StaleReason::ConfigFileChanged { field, .. } if field == "particle_id_filename"),
            "{reason:?}"
        );
        assert!(reason.to_string().contains("pid.json"), "{reason}");
        // A file that went away (a marker, a control file) does not count: a phase that needs
        // it fails on its own.
    }

    #[test]
    fn config_diff_paths() {
        let a = json!({"x": 1, "d": {"b": [1, 2]}, "gone": true});
        let b = json!({"x": 1, "d": {"b": [1, 3]}, "new": "y"});
        let c: Vec<String> = config_changes(&a, &b)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            c,
            vec![
                "d.b[1] changed 2 -> 3",
                "gone changed true -> (absent)",
                "new changed (absent) -> \"y\""
            ]
        );
    }
}
