//! The physics the report plots, read through `spyral-data`'s readers (the simulator's truth
//! and the particle-ID gates through `spyral-phases`): the Estimation parquet (`dEdx`, `brho`,
//! `vertex_z` in mm), the InterpSolver parquet (`ke` MeV, `polar` rad, `vertex_z` m), the
//! simulator's truth records (`<traces>/truth/run_NNNN.jsonl`) and the particle-ID gate files
//! (Spyral's JSON, as InterpSolver parses it).
//!
//! Unreadable files are warnings, never errors: the page shows what could be read.

use crate::error::ReadError;
use spyral_data::artifacts::estimation::read_estimation;
use spyral_data::table::{Column, Table};
use spyral_phases::solver::ParticleId;
use spyral_sim::read_truth;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Columns read from one kind of artifact, concatenated over runs, with each run's row count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    /// The values, by requested column, in request order.
    pub values: Vec<Vec<f64>>,
    /// Rows per run, for the runs whose file was read.
    pub rows: BTreeMap<u32, u64>,
}

/// Reads `names` (as floats) from a parquet artifact: with the fast column reader for tables
/// spyral writes, else with the solver's tolerant row reader (polars files with nullable or
/// other numeric columns). A file without columns (Spyral's empty table) has no rows.
pub fn read_parquet_columns(path: &Path, names: &[&str]) -> Result<Vec<Vec<f64>>, ReadError> {
    match Table::read_parquet_columns(path, names) {
        Ok(t) => {
            // Spyral's empty table has no columns at all.
            if t.columns.is_empty() && Table::read_parquet(path).is_ok_and(|t| t.columns.is_empty())
            {
                return Ok(vec![Vec::new(); names.len()]);
            }
            names
                .iter()
                .map(
                    |n| match t.columns.iter().find(|(c, _)| c == n).map(|(_, c)| c) {
                        Some(Column::F64(v)) => Ok(v.clone()),
                        Some(Column::I64(v)) => Ok(v.iter().map(|&x| x as f64).collect()),
                        // The error path lists every column of the file.
                        None => Err(ReadError::MissingColumn {
                            path: path.to_path_buf(),
                            column: n.to_string(),
                            present: Table::read_parquet(path)
                                .map(|t| t.columns.into_iter().map(|(c, _)| c).collect())
                                .unwrap_or_default(),
                        }),
                    },
                )
                .collect()
        }
        Err(first) => match read_estimation(path, names) {
            Ok(t) => Ok(names.iter().map(|n| t.float(n).to_vec()).collect()),
            Err(row_reader) => Err(ReadError::Parquet {
                row_reader,
                column_reader: first,
            }),
        },
    }
}

/// The artifact files of `run` in `dir`: `run_NNNN.parquet` and `run_NNNN_*.parquet` (the
/// solver names its output after the nucleus), sorted; hidden and temporary files excluded.
pub fn run_files(dir: &Path, run: u32) -> Vec<PathBuf> {
    let stem = format!("run_{run:04}");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".parquet")
                .and_then(|s| s.strip_prefix(&stem))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// The run numbers of the parquet artifacts in `dir` (`run_NNNN[_…].parquet`).
pub fn runs_in(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut runs: Vec<u32> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_suffix(".parquet")?.strip_prefix("run_")?;
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let tail = &rest[digits..];
            if digits == 0 || !(tail.is_empty() || tail.starts_with('_')) {
                return None;
            }
            rest[..digits].parse().ok()
        })
        .collect();
    runs.sort_unstable();
    runs.dedup();
    runs
}

/// Reads `names` from every artifact of `runs` in `dir`, concatenated.
pub fn read_runs(dir: &Path, runs: &[u32], names: &[&str], warnings: &mut Vec<String>) -> Columns {
    let mut out = Columns {
        values: vec![Vec::new(); names.len()],
        rows: BTreeMap::new(),
    };
    for &run in runs {
        for file in run_files(dir, run) {
            match read_parquet_columns(&file, names) {
                Ok(cols) => {
                    let n = cols.first().map_or(0, Vec::len);
                    *out.rows.entry(run).or_default() += n as u64;
                    for (dst, src) in out.values.iter_mut().zip(cols) {
                        dst.extend(src);
                    }
                }
                Err(e) => warnings.push(format!("run {run}: {e}")),
            }
        }
    }
    out
}

/// A simulated particle: (polar deg, KE MeV).
pub type TruthPoint = (f64, f64);

/// The truth of the runs' simulated events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    /// Runs whose truth file was read.
    pub runs: Vec<u32>,
    /// Reaction products, with their (Z, A): polar angle (deg) and kinetic energy (MeV).
    pub particles: Vec<(u32, u32, TruthPoint)>,
    /// Vertex z (mm) of the events where a reaction happened.
    pub vertex_z_mm: Vec<f64>,
}

/// Reads `<traces>/truth/run_NNNN.jsonl` of `runs` when present.
pub fn read_truths(traces: &Path, runs: &[u32], warnings: &mut Vec<String>) -> Truth {
    let mut truth = Truth::default();
    for &run in runs {
        let path = traces.join("truth").join(format!("run_{run:04}.jsonl"));
        if !path.is_file() {
            continue;
        }
        match read_truth(&path) {
            Ok(events) => {
                truth.runs.push(run);
                for e in events.iter().filter(|e| e.reaction) {
                    truth.vertex_z_mm.push(e.vertex_mm[2]);
                    for p in &e.particles {
                        truth
                            .particles
                            .push((p.z, p.a, (p.polar_rad.to_degrees(), p.ke_mev)));
                    }
                }
            }
            Err(e) => warnings.push(format!("truth of run {run}: {e}")),
        }
    }
    truth
}

/// A particle-ID gate file.
#[derive(Debug, Clone)]
pub struct Gate {
    /// The file.
    pub file: PathBuf,
    /// The parsed gate.
    pub pid: ParticleId,
}

/// Reads the gate files (each once, in order).
pub fn read_gates(files: &[PathBuf], warnings: &mut Vec<String>) -> Vec<Gate> {
    let mut seen = Vec::new();
    let mut gates = Vec::new();
    for f in files {
        if seen.contains(f) {
            continue;
        }
        seen.push(f.clone());
        match ParticleId::from_file(f) {
            Ok(pid) => gates.push(Gate {
                file: f.clone(),
                pid,
            }),
            Err(e) => warnings.push(e.to_string()),
        }
    }
    gates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_run_files_by_stem() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "run_0001.parquet",
            "run_0001_2H.parquet",
            "run_00012.parquet",
            ".run_0001.parquet.partial",
            "run_0002_scaler.parquet",
            "run_0003.h5",
            "notes.parquet",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names: Vec<String> = run_files(dir.path(), 1)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["run_0001.parquet", "run_0001_2H.parquet"]);
        assert_eq!(runs_in(dir.path()), vec![1, 2, 12]);
    }

    #[test]
    fn reads_columns_of_a_spyral_table() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Table::with_columns(&["event"], &["dEdx", "brho"]);
        for i in 0..5 {
            t.push_i64("event", i);
            t.push_f64("dEdx", i as f64 * 10.0);
            t.push_f64("brho", 0.5);
        }
        let p = t
            .write_parquet(&dir.path().join("run_0007.parquet"))
            .unwrap();
        let cols = read_parquet_columns(&p, &["brho", "event"]).unwrap();
        assert_eq!(cols[0], vec![0.5; 5]);
        assert_eq!(cols[1], vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        let err = read_parquet_columns(&p, &["ke"]).unwrap_err().to_string();
        assert!(err.contains("ke"), "{err}");
        let mut w = Vec::new();
        let c = read_runs(dir.path(), &[7, 8], &["dEdx"], &mut w);
        assert_eq!(c.rows, BTreeMap::from([(7, 5)]));
        assert!(w.is_empty());
    }
}
