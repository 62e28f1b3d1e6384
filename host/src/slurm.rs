//! `spyral slurm`: scale out on a SLURM cluster as a job array.
//!
//! Writes two sbatch scripts into `<workspace>/slurm/`: one that runs `spyral assets` once, and
//! an array of N tasks, each `spyral run PIPELINE --shard $SLURM_ARRAY_TASK_ID/N --no-display
//! --workers C`. Shards are the snake plan of all runs over N, so their loads are balanced by
//! size; inside a task the workers plan as usual and shared segments are created per task (per
//! node). With `--submit`, both are submitted with sbatch, the array depending on the assets job.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Options of `spyral slurm`.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// Array tasks.
    pub tasks: usize,
    /// CPUs per task (= workers per task).
    pub cpus_per_task: usize,
    /// Wall-time limit (`--time`), e.g. `04:00:00`.
    pub time: Option<String>,
    /// Partition.
    pub partition: Option<String>,
    /// Extra `#SBATCH` arguments, e.g. `--mem=16G`.
    pub extra: Vec<String>,
}

/// Errors of `spyral slurm`.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// Bad option.
    #[error("{0}")]
    Invalid(String),
    /// File problem.
    #[error("cannot write {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// sbatch failed.
    #[error("sbatch failed: {0}")]
    Sbatch(String),
}

/// The scripts written.
#[derive(Debug, Clone)]
pub struct Scripts {
    /// The assets job.
    pub assets: PathBuf,
    /// The array job.
    pub array: PathBuf,
}

fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-=:+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn header(name: &str, o: &SlurmOptions, log_dir: &Path, cpus: usize) -> String {
    let mut h = format!("#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --cpus-per-task={cpus}\n");
    if let Some(t) = &o.time {
        h += &format!("#SBATCH --time={t}\n");
    }
    if let Some(p) = &o.partition {
        h += &format!("#SBATCH --partition={p}\n");
    }
    for e in &o.extra {
        h += &format!("#SBATCH {e}\n");
    }
    let _ = log_dir;
    h
}

/// Writes the scripts for `pipeline` (absolute) whose workspace is `workspace`.
pub fn write_scripts(
    spyral: &Path,
    pipeline: &Path,
    workspace: &Path,
    o: &SlurmOptions,
) -> Result<Scripts, SlurmError> {
    if o.tasks == 0 {
        return Err(SlurmError::Invalid("--tasks must be at least 1".into()));
    }
    if o.cpus_per_task == 0 {
        return Err(SlurmError::Invalid(
            "--cpus-per-task must be at least 1".into(),
        ));
    }
    let dir = workspace.join("slurm");
    let log_dir = workspace.join("log").join("slurm");
    for d in [&dir, &log_dir] {
        std::fs::create_dir_all(d).map_err(|source| SlurmError::Io {
            path: d.clone(),
            source,
        })?;
    }
    let stem = pipeline
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipeline".into());
    let (exe, pipe) = (
        quote(&spyral.display().to_string()),
        quote(&pipeline.display().to_string()),
    );
    let assets = format!(
        "{}#SBATCH --output={}/assets-%j.out\n\n# Workspace and assets, once, before the array.\nexec {exe} assets {pipe}\n",
        header(&format!("spyral-{stem}-assets"), o, &log_dir, o.cpus_per_task),
        quote(&log_dir.display().to_string()),
    );
    let array = format!(
        "{}#SBATCH --array=0-{}\n#SBATCH --output={}/run-%A_%a.out\n\n# Task K of N processes shard K of the snake plan of all runs over N.\nexec {exe} run {pipe} --shard \"$SLURM_ARRAY_TASK_ID/{}\" --no-display --workers {}\n",
        header(&format!("spyral-{stem}"), o, &log_dir, o.cpus_per_task),
        o.tasks - 1,
        quote(&log_dir.display().to_string()),
        o.tasks,
        o.cpus_per_task,
    );
    let write = |name: String, text: &str| -> Result<PathBuf, SlurmError> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| SlurmError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    Ok(Scripts {
        assets: write(format!("{stem}-assets.sbatch"), &assets)?,
        array: write(format!("{stem}-array.sbatch"), &array)?,
    })
}

fn sbatch(args: &[&str]) -> Result<String, SlurmError> {
    let out = Command::new("sbatch")
        .args(args)
        .output()
        .map_err(|e| SlurmError::Sbatch(format!("cannot run sbatch: {e}")))?;
    if !out.status.success() {
        return Err(SlurmError::Sbatch(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // --parsable prints `jobid` or `jobid;cluster`.
    Ok(text.trim().split(';').next().unwrap_or("").to_string())
}

/// Submits the assets job, then the array depending on it. Returns (assets id, array id).
pub fn submit(s: &Scripts) -> Result<(String, String), SlurmError> {
    let a = sbatch(&["--parsable", &s.assets.display().to_string()])?;
    let b = sbatch(&[
        "--parsable",
        &format!("--dependency=afterok:{a}"),
        &s.array.display().to_string(),
    ])?;
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts() {
        let d = tempfile::tempdir().unwrap();
        let o = SlurmOptions {
            tasks: 4,
            cpus_per_task: 8,
            time: Some("02:00:00".into()),
            partition: None,
            extra: vec!["--mem=16G".into()],
        };
        let s = write_scripts(
            Path::new("/opt/spyral"),
            Path::new("/d/p.yaml"),
            d.path(),
            &o,
        )
        .unwrap();
        let a = std::fs::read_to_string(&s.array).unwrap();
        assert!(a.contains("#SBATCH --array=0-3"));
        assert!(a.contains("--shard \"$SLURM_ARRAY_TASK_ID/4\" --no-display --workers 8"));
        assert!(a.contains("#SBATCH --mem=16G") && a.contains("#SBATCH --time=02:00:00"));
        let b = std::fs::read_to_string(&s.assets).unwrap();
        assert!(b.contains("exec /opt/spyral assets /d/p.yaml"));
        assert!(write_scripts(
            Path::new("x"),
            Path::new("y"),
            d.path(),
            &SlurmOptions { tasks: 0, ..o }
        )
        .is_err());
    }
}
