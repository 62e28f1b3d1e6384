//! Earlier phases' artifacts by phase name, from a phase's [`RunContext`].
//!
//! The host tells each phase which phases come before it in the chain
//! ([`RunContext::earlier_phases`]); [`PhaseInputs`] opens their artifacts of the current run
//! (or of the current chunk, when the run is split and the earlier phase wrote chunk files)
//! with the typed readers of [`crate::artifacts`], and refuses a name that is not an earlier
//! phase with an error listing the ones that are.

use crate::artifacts::{CloudFile, ClusterArtifact};
use crate::table::Table;
use rand_pcg::Pcg64;
use spyral_core::{PhaseError, RunContext};
use std::path::PathBuf;

/// Access to earlier phases' artifacts and to per-event random numbers; implemented for
/// [`RunContext`] (`use spyral_data::prelude::*;`).
pub trait PhaseInputs {
    /// The artifact with extension `ext` (`"h5"`, `"parquet"`) that the earlier phase `phase`
    /// wrote for this run; an error when no earlier phase has that name or the file is missing.
    fn earlier_artifact(&self, phase: &str, ext: &str) -> Result<PathBuf, PhaseError>;
    /// The point-cloud artifact of the earlier phase `phase` (a Pointcloud phase).
    fn clouds(&self, phase: &str) -> Result<CloudFile, PhaseError> {
        CloudFile::open(&self.earlier_artifact(phase, "h5")?)
    }
    /// The cluster artifact of the earlier phase `phase` (a Cluster phase).
    fn clusters(&self, phase: &str) -> Result<ClusterArtifact, PhaseError> {
        ClusterArtifact::open(&self.earlier_artifact(phase, "h5")?)
    }
    /// The parquet table of the earlier phase `phase` (Estimation, InterpSolver, or any phase
    /// writing a [`Table`]).
    fn table(&self, phase: &str) -> Result<Table, PhaseError> {
        Table::read_parquet(&self.earlier_artifact(phase, "parquet")?)
    }
    /// The random generator of `event` ([`crate::rng::event_rng`]).
    fn event_rng(&self, event: u64) -> Pcg64;
}

impl PhaseInputs for RunContext<'_> {
    fn earlier_artifact(&self, phase: &str, ext: &str) -> Result<PathBuf, PhaseError> {
        let Some(path) = self.phase_artifact_path(phase, ext) else {
            let earlier = self.earlier_phases();
            return Err(PhaseError::config(format!(
                "`{phase}` is not a phase before `{}` in the chain (earlier phases: {})",
                self.workspace().phase_name.as_str(),
                if earlier.is_empty() {
                    "none".to_string()
                } else {
                    earlier.join(", ")
                }
            )));
        };
        if !path.is_file() {
            return Err(PhaseError::invalid_input(format!(
                "run {}: phase {phase} has no artifact {} (did it run for this run?)",
                self.run(),
                path.display()
            )));
        }
        Ok(path)
    }
    fn event_rng(&self, event: u64) -> Pcg64 {
        crate::rng::event_rng(self, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::{CloudRecord, CloudWriter};
    use spyral_core::context::ChainSink;
    use spyral_core::Workspace;

    #[test]
    fn opens_an_earlier_phase_artifact_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path(), dir.path(), "Gate");
        std::fs::create_dir_all(dir.path().join("Pointcloud")).unwrap();
        let w = CloudWriter::create(&dir.path().join("Pointcloud/run_0002.h5"), 0, 5).unwrap();
        w.write(&CloudRecord {
            id: 4,
            cloud: ndarray::Array2::zeros((3, 8)),
            orig_run: 2,
            orig_event: 4,
            ic: [-1.0; 4],
        })
        .unwrap();
        w.finish().unwrap();
        let sink = ChainSink {
            earlier: vec!["Pointcloud".into()],
        };
        let ctx = RunContext::new(2, 0, &ws, &sink);
        let clouds = ctx.clouds("Pointcloud").unwrap();
        assert_eq!(clouds.ids, [4]);
        assert_eq!(clouds.read(4).unwrap().cloud.nrows(), 3);
        let e = ctx.clouds("Cluster").unwrap_err().to_string();
        assert!(e.contains("earlier phases: Pointcloud"), "{e}");
        // The right name, but no file for this run.
        let other_run = RunContext::new(3, 0, &ws, &sink);
        let e = other_run.clouds("Pointcloud").unwrap_err().to_string();
        assert!(e.contains("run_0003.h5"), "{e}");
    }
}
