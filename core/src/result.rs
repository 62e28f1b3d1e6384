//! `PhaseResult`: what a phase hands to the next phase for one run.
//!
//! It maps artifact names to file paths, says whether the phase succeeded, carries the run
//! number, and holds free-form metadata (a JSON object as text) that the host copies into its
//! report (for example the number of events processed).

use crate::error::PhaseError;
use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};
use std::path::{Path, PathBuf};

/// One named artifact of a run.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Artifact name, as in the phase's schema (e.g. `pointcloud`).
    pub name: RString,
    /// Path of the artifact file.
    pub path: RString,
}

/// The outcome of one phase on one run.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct PhaseResult {
    /// Artifacts in insertion order.
    pub artifacts: RVec<Artifact>,
    /// Whether the phase produced valid output for this run.
    pub successful: bool,
    /// The run number.
    pub run_number: u32,
    /// A JSON object (as text) with free-form metadata; empty means `{}`.
    pub metadata: RString,
}

impl PhaseResult {
    /// A successful result for `run` with no artifacts yet.
    pub fn new(run: u32) -> Self {
        PhaseResult {
            artifacts: RVec::new(),
            successful: true,
            run_number: run,
            metadata: RString::new(),
        }
    }

    /// An unsuccessful result for `run` (Spyral's `invalid_result`).
    pub fn invalid(run: u32) -> Self {
        PhaseResult {
            successful: false,
            ..Self::new(run)
        }
    }

    /// Adds (or replaces) the artifact `name` at `path`.
    pub fn with_artifact(mut self, name: &str, path: impl AsRef<Path>) -> Self {
        self.set_artifact(name, path);
        self
    }

    /// Adds (or replaces) the artifact `name` at `path`.
    pub fn set_artifact(&mut self, name: &str, path: impl AsRef<Path>) {
        let path = RString::from(path.as_ref().to_string_lossy().into_owned());
        if let Some(a) = self.artifacts.iter_mut().find(|a| a.name.as_str() == name) {
            a.path = path;
        } else {
            self.artifacts.push(Artifact {
                name: name.into(),
                path,
            });
        }
    }

    /// The path of artifact `name`, if present.
    pub fn artifact(&self, name: &str) -> Option<PathBuf> {
        self.artifacts
            .iter()
            .find(|a| a.name.as_str() == name)
            .map(|a| PathBuf::from(a.path.as_str()))
    }

    /// The path of artifact `name`, checking that the previous phase succeeded, that the
    /// artifact is listed and that its file exists. The error says which of these failed.
    pub fn require(&self, name: &str) -> Result<PathBuf, PhaseError> {
        if !self.successful {
            return Err(PhaseError::invalid_input(format!(
                "the previous phase did not succeed for run {}",
                self.run_number
            )));
        }
        let path = self.artifact(name).ok_or_else(|| {
            let have: Vec<&str> = self.artifacts.iter().map(|a| a.name.as_str()).collect();
            PhaseError::invalid_input(format!(
                "run {}: no `{name}` artifact in the input (it has: {})",
                self.run_number,
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ))
        })?;
        if !path.exists() {
            return Err(PhaseError::invalid_input(format!(
                "run {}: the `{name}` artifact {} does not exist",
                self.run_number,
                path.display()
            )));
        }
        Ok(path)
    }

    /// The metadata as a JSON object (empty when none was set or it is not an object).
    pub fn metadata_map(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(self.metadata.as_str())
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    }

    /// Sets one metadata key.
    pub fn set_metadata(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        let mut map = self.metadata_map();
        map.insert(key.to_string(), value.into());
        self.metadata = serde_json::Value::Object(map).to_string().into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_and_metadata() {
        let mut r = PhaseResult::new(7).with_artifact("a", "/x/a.h5");
        r.set_artifact("a", "/x/b.h5");
        assert_eq!(r.artifacts.len(), 1);
        assert_eq!(r.artifact("a").unwrap(), PathBuf::from("/x/b.h5"));
        r.set_metadata("events", 12);
        r.set_metadata("note", "hi");
        assert_eq!(r.metadata_map()["events"], 12);
        assert!(r
            .require("missing")
            .unwrap_err()
            .message()
            .contains("no `missing`"));
        assert!(r
            .require("a")
            .unwrap_err()
            .message()
            .contains("does not exist"));
        let bad = PhaseResult::invalid(7);
        assert!(bad
            .require("a")
            .unwrap_err()
            .message()
            .contains("did not succeed"));
    }
}
