//! Provenance of artifacts, and the resume rule built on it.
//!
//! After a phase succeeds (or fails) on a run, the worker writes a small JSON record beside the
//! artifacts: `<workspace>/<Phase>/.provenance/run_0001.json`. It is written last, after the
//! artifacts are complete and renamed, through a temporary name. It holds the phase kind and
//! name, the plugin library and version, a hash of the resolved configuration, the identity of
//! every input (path, size, modification time, and the input's own provenance hash when it has
//! one), the seed, the start and end time, the outputs (path, size, modification time), and the
//! status (ok or failed, with the error).
//!
//! A (run, phase) is **current** when its record says ok, its identity hash equals what would be
//! produced now, and every recorded output still exists unchanged. Otherwise it reruns.

use serde::{Deserialize, Serialize};
use spyral_core::seed::{mix64, stable_hash};
use spyral_core::{run_stem, PhaseResult};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Identity of one file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileId {
    /// Artifact name.
    pub name: String,
    /// Path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: u128,
    /// The provenance hash of the phase that made it, when known.
    pub provenance: Option<String>,
}

/// What identifies the output of a (run, phase): everything that, changed, changes the output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// Phase kind.
    pub kind: String,
    /// Phase name.
    pub phase: String,
    /// Library name and version.
    pub library: String,
    /// Hash of the resolved configuration.
    pub config_hash: String,
    /// Inputs.
    pub inputs: Vec<FileId>,
    /// Seed of the (run, phase), when the pipeline fixes the base seed.
    pub seed: Option<u64>,
}

impl Identity {
    /// What phase `c` would be, run on `payload` with `seed` (None: the seed is drawn at each
    /// launch and is not part of the identity).
    pub fn of(c: &crate::chain::ChainPhase, payload: &PhaseResult, seed: Option<u64>) -> Identity {
        Identity {
            kind: c.spec.kind.clone(),
            phase: c.name.clone(),
            library: c.library.clone(),
            config_hash: format!("{:016x}", stable_hash(&c.resolved_config())),
            inputs: inputs(payload),
            seed,
        }
    }

    /// A short hash of the whole identity.
    pub fn hash(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        format!("{:016x}", mix64(stable_hash(&text)))
    }
}

/// The record written beside a run's artifacts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Run number.
    pub run: u32,
    /// What made it.
    pub identity: Identity,
    /// `identity.hash()`.
    pub hash: String,
    /// "ok" or "failed".
    pub status: String,
    /// The error, when failed.
    pub error: Option<String>,
    /// The outputs.
    pub outputs: Vec<FileId>,
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

/// Identity of the file at `path` (None if it does not exist).
pub fn file_id(name: &str, path: &Path) -> Option<FileId> {
    let m = std::fs::metadata(path).ok()?;
    let mtime_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Some(FileId {
        name: name.to_string(),
        path: path.to_path_buf(),
        size: m.len(),
        mtime_ns,
        provenance: None,
    })
}

/// The artifact folder a file belongs to, and the provenance hash recorded there for `run`.
fn provenance_of(path: &Path, run: u32) -> Option<String> {
    let dir = path.parent()?;
    read(&record_path(dir, run))
        .filter(|r| r.status == "ok")
        .map(|r| r.hash)
}

/// The identities of a payload's artifacts (inputs of the next phase).
pub fn inputs(payload: &PhaseResult) -> Vec<FileId> {
    let mut out: Vec<FileId> = payload
        .artifacts
        .iter()
        .map(|a| {
            let path = PathBuf::from(a.path.as_str());
            let mut id = file_id(a.name.as_str(), &path).unwrap_or(FileId {
                name: a.name.to_string(),
                path: path.clone(),
                size: 0,
                mtime_ns: 0,
                provenance: None,
            });
            id.provenance = provenance_of(&path, payload.run_number);
            // A derived input is identified by the provenance of what made it.
            if id.provenance.is_some() {
                id.size = 0;
                id.mtime_ns = 0;
            }
            id
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The outputs of a result.
pub fn outputs(result: &PhaseResult) -> Vec<FileId> {
    result
        .artifacts
        .iter()
        .filter_map(|a| file_id(a.name.as_str(), Path::new(a.path.as_str())))
        .collect()
}

/// Reads a record (None if absent or unreadable).
pub fn read(path: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes a record through a temporary name.
pub fn write(artifact_dir: &Path, record: &Record) -> std::io::Result<()> {
    let path = record_path(artifact_dir, record.run);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = spyral_core::workspace::partial_path(&path);
    std::fs::write(
        &tmp,
        serde_json::to_string_pretty(record).unwrap_or_default(),
    )?;
    std::fs::rename(&tmp, &path)
}

/// The state of a (run, phase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Done, and what would be produced now.
    Current,
    /// Done, but something changed.
    Stale {
        /// What changed.
        why: String,
    },
    /// Failed last time.
    Failed {
        /// The error.
        error: String,
    },
    /// Never done (or the record is gone).
    Missing,
    /// An inactive phase: its artifacts are used as they are (shown by `spyral status`).
    Inactive {
        /// Whether its artifacts exist.
        exists: bool,
    },
}

/// Compares the record on disk with the identity the phase would have now.
pub fn state(record: Option<&Record>, now: &Identity) -> State {
    let Some(r) = record else {
        return State::Missing;
    };
    if r.status != "ok" {
        return State::Failed {
            error: r.error.clone().unwrap_or_else(|| "failed".into()),
        };
    }
    let old = &r.identity;
    let why = if old.library != now.library {
        Some(format!(
            "plugin changed ({} -> {})",
            old.library, now.library
        ))
    } else if old.config_hash != now.config_hash {
        Some("configuration changed".to_string())
    } else if old.kind != now.kind {
        Some("phase kind changed".to_string())
    } else if old.inputs != now.inputs {
        Some("input changed".to_string())
    } else if now.seed.is_some() && old.seed != now.seed {
        Some("seed changed".to_string())
    } else {
        None
    };
    if let Some(why) = why {
        return State::Stale { why };
    }
    for o in &r.outputs {
        match file_id(&o.name, &o.path) {
            Some(f) if f.size == o.size && f.mtime_ns == o.mtime_ns => {}
            Some(_) => {
                return State::Stale {
                    why: format!("output {} was modified", o.path.display()),
                }
            }
            None => {
                return State::Stale {
                    why: format!("output {} is missing", o.path.display()),
                }
            }
        }
    }
    State::Current
}

/// The result a current record stands for (its outputs), for the next phase.
pub fn result_of(record: &Record) -> PhaseResult {
    let mut r = PhaseResult::new(record.run);
    for o in &record.outputs {
        r.set_artifact(&o.name, &o.path);
    }
    r
}

/// Removes temporary files left by interrupted launches (`.*.partial`) in `dir` and its
/// `.provenance` folder. Returns how many were removed.
pub fn clean_partials(dir: &Path) -> usize {
    let mut n = 0;
    for d in [dir.to_path_buf(), dir.join(".provenance")] {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if spyral_core::workspace::is_partial_path(&p) && std::fs::remove_file(&p).is_ok() {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident() -> Identity {
        Identity {
            kind: "k".into(),
            phase: "P".into(),
            library: "lib 1".into(),
            config_hash: "c".into(),
            inputs: vec![],
            seed: Some(1),
        }
    }

    #[test]
    fn states() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run_0001.bin");
        std::fs::write(&out, b"x").unwrap();
        let now = ident();
        let rec = Record {
            run: 1,
            hash: now.hash(),
            identity: now.clone(),
            status: "ok".into(),
            error: None,
            outputs: vec![file_id("a", &out).unwrap()],
            started: 0.0,
            finished: 0.0,
        };
        assert_eq!(state(None, &now), State::Missing);
        assert_eq!(state(Some(&rec), &now), State::Current);
        let mut changed = now.clone();
        changed.config_hash = "d".into();
        assert!(
            matches!(state(Some(&rec), &changed), State::Stale { why } if why.contains("configuration"))
        );
        let mut no_seed = now.clone();
        no_seed.seed = None;
        assert_eq!(state(Some(&rec), &no_seed), State::Current);
        std::fs::remove_file(&out).unwrap();
        assert!(matches!(state(Some(&rec), &now), State::Stale { why } if why.contains("missing")));
        let mut failed = rec.clone();
        failed.status = "failed".into();
        failed.error = Some("boom".into());
        assert!(matches!(state(Some(&failed), &now), State::Failed { error } if error == "boom"));
        write(dir.path(), &rec).unwrap();
        assert_eq!(read(&record_path(dir.path(), 1)).unwrap(), rec);
        std::fs::write(dir.path().join(".run_0002.bin.partial"), b"").unwrap();
        assert_eq!(clean_partials(dir.path()), 1);
    }
}
