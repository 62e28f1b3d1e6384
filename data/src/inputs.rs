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
    /// writing a [`Table`]): `run_0001.parquet`, or the run's one suffixed table when the phase
    /// names its file so (InterpSolver's `run_0001_2H.parquet`); in a chunk, the chunk's.
    fn table(&self, phase: &str) -> Result<Table, PhaseError> {
        Table::read_parquet(&self.earlier_table_path(phase)?)
    }
    /// The path [`table`](PhaseInputs::table) reads: [`earlier_artifact`](PhaseInputs::earlier_artifact)
    /// with `"parquet"` when that file exists, else the one `<stem>_<suffix>.parquet` beside it
    /// (an error naming them when there are several).
    fn earlier_table_path(&self, phase: &str) -> Result<PathBuf, PhaseError>;
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
    fn earlier_table_path(&self, phase: &str) -> Result<PathBuf, PhaseError> {
        let missing = match self.earlier_artifact(phase, "parquet") {
            Ok(path) => return Ok(path),
            Err(e) => e,
        };
        let Some(dir) = self.phase_artifact_dir(phase) else {
            return Err(missing);
        };
        // The stems to look for, the chunk's first: `e0-249`, `run_0001`.
        let mut stems = Vec::new();
        if let Some(c) = self.chunk() {
            let p = spyral_core::chunk::chunk_artifact_path(&dir, self.run(), c.events, "parquet");
            if let (Some(parent), Some(stem)) = (p.parent(), p.file_stem()) {
                stems.push((parent.to_path_buf(), stem.to_string_lossy().into_owned()));
            }
        }
        stems.push((dir.clone(), spyral_core::run_stem(self.run())));
        for (folder, stem) in stems {
            let prefix = format!("{stem}_");
            let mut found: Vec<PathBuf> = std::fs::read_dir(&folder)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.file_name().is_some_and(|n| {
                            let n = n.to_string_lossy();
                            n.starts_with(&prefix) && n.ends_with(".parquet")
                        })
                })
                .collect();
            found.sort();
            match found.len() {
                0 => continue,
                1 => return Ok(found.remove(0)),
                _ => {
                    return Err(PhaseError::invalid_input(format!(
                        "run {}: phase {phase} has several tables ({}); open the one you need with `Table::read_parquet`",
                        self.run(),
                        found
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
        Err(missing)
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

    #[test]
    fn a_table_is_found_by_phase_name_also_when_its_file_name_has_a_suffix() {
        use crate::table::Table;
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path(), dir.path(), "Plots");
        let sink = ChainSink {
            earlier: vec!["Estimation".into(), "InterpSolver".into()],
        };
        let table = |rows: i64| {
            let mut t = Table::with_columns(&["event"], &[]);
            for e in 0..rows {
                t.push_i64("event", e);
            }
            t
        };
        table(2)
            .write_parquet(&dir.path().join("Estimation/run_0001.parquet"))
            .unwrap();
        table(3)
            .write_parquet(&dir.path().join("InterpSolver/run_0001_2H.parquet"))
            .unwrap();
        let ctx = RunContext::new(1, 0, &ws, &sink);
        assert_eq!(ctx.table("Estimation").unwrap().rows(), 2);
        assert_eq!(ctx.table("InterpSolver").unwrap().rows(), 3);
        // In a chunk, the chunk's file first.
        let events = spyral_core::EventRange::new(0, 9);
        table(1)
            .write_parquet(
                &spyral_core::chunk::chunk_artifact_path(
                    &dir.path().join("InterpSolver"),
                    1,
                    events,
                    "x",
                )
                .with_file_name("e0-9_2H.parquet"),
            )
            .unwrap();
        let chunk = spyral_core::Chunk {
            index: 0,
            count: 2,
            events,
        };
        let in_chunk = RunContext::new(1, 0, &ws, &sink).with_chunk(chunk);
        assert_eq!(in_chunk.table("InterpSolver").unwrap().rows(), 1);
        // Two candidates: an error naming both; none: the missing file's error.
        table(4)
            .write_parquet(&dir.path().join("InterpSolver/run_0001_4He.parquet"))
            .unwrap();
        let e = ctx.table("InterpSolver").unwrap_err().to_string();
        assert!(
            e.contains("run_0001_2H.parquet") && e.contains("run_0001_4He.parquet"),
            "{e}"
        );
        let e = RunContext::new(2, 0, &ws, &sink)
            .table("InterpSolver")
            .unwrap_err()
            .to_string();
        assert!(e.contains("run_0002.parquet"), "{e}");
    }
}
