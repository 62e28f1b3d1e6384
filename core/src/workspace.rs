//! The workspace a phase sees: where traces are, where its artifacts and assets go, and the
//! naming rules (`run_0001`) and the write-then-rename helper every artifact writer uses.

use crate::error::PhaseError;
use abi_stable::{std_types::RString, StableAbi};
use std::path::{Path, PathBuf};

/// Paths for one phase in one workspace.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The workspace root.
    pub root: RString,
    /// The folder holding the raw trace files (`run_0001.h5`, ...).
    pub traces: RString,
    /// The phase's name (also its folder name).
    pub phase_name: RString,
    /// `<root>/<phase_name>`: the phase's artifacts.
    pub artifact_dir: RString,
    /// `<root>/<phase_name>_assets`: the phase's assets.
    pub asset_dir: RString,
}

/// The stem Spyral uses for a run: `run_0001`, `run_12345`.
pub fn run_stem(run: u32) -> String {
    format!("run_{run:04}")
}

impl Workspace {
    /// The workspace of phase `phase_name` under `root`, reading traces from `traces`.
    pub fn new(root: &Path, traces: &Path, phase_name: &str) -> Self {
        Workspace {
            root: root.to_string_lossy().into_owned().into(),
            traces: traces.to_string_lossy().into_owned().into(),
            phase_name: phase_name.into(),
            artifact_dir: root.join(phase_name).to_string_lossy().into_owned().into(),
            asset_dir: root
                .join(format!("{phase_name}_assets"))
                .to_string_lossy()
                .into_owned()
                .into(),
        }
    }
    /// The workspace root.
    pub fn root(&self) -> PathBuf {
        PathBuf::from(self.root.as_str())
    }
    /// The phase's artifact folder.
    pub fn artifact_dir(&self) -> PathBuf {
        PathBuf::from(self.artifact_dir.as_str())
    }
    /// The phase's asset folder.
    pub fn asset_dir(&self) -> PathBuf {
        PathBuf::from(self.asset_dir.as_str())
    }
    /// The raw trace file of `run`: `<traces>/run_0001.h5`.
    pub fn trace_path(&self, run: u32) -> PathBuf {
        Path::new(self.traces.as_str()).join(format!("{}.h5", run_stem(run)))
    }
    /// The artifact of `run` with extension `ext` (with or without the dot), in the phase folder.
    pub fn artifact_path(&self, run: u32, ext: &str) -> PathBuf {
        let ext = ext.trim_start_matches('.');
        self.artifact_dir().join(format!("{}.{ext}", run_stem(run)))
    }
    /// Another phase's artifact folder in the same workspace.
    pub fn phase_dir(&self, phase_name: &str) -> PathBuf {
        self.root().join(phase_name)
    }
}

/// The temporary name an artifact is written under before it is complete:
/// `<dir>/.<file name>.partial`. Hidden, and never taken for output by the host.
pub fn partial_path(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}.partial"))
}

/// Whether `path` is a temporary (partial) artifact name.
pub fn is_partial_path(path: &Path) -> bool {
    path.file_name()
        .map(|n| {
            let n = n.to_string_lossy();
            n.starts_with('.') && n.ends_with(".partial")
        })
        .unwrap_or(false)
}

/// A file being written under its temporary name; [`PartialFile::commit`] renames it to the
/// final name. Dropped without commit, it removes the temporary file, so an error or a panic
/// never leaves a half-written artifact under its final name.
#[derive(Debug)]
pub struct PartialFile {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl PartialFile {
    /// Prepares to write `dest`: creates its folder and removes a stale temporary file.
    pub fn new(dest: impl Into<PathBuf>) -> Result<Self, PhaseError> {
        let dest = dest.into();
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| PhaseError::io_at(dir, "cannot create folder", &e))?;
        }
        let tmp = partial_path(&dest);
        let _ = std::fs::remove_file(&tmp);
        Ok(PartialFile {
            tmp,
            dest,
            committed: false,
        })
    }
    /// The temporary path to write to.
    pub fn path(&self) -> &Path {
        &self.tmp
    }
    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }
    /// Renames the temporary file to its final name (atomic within one file system).
    pub fn commit(mut self) -> Result<PathBuf, PhaseError> {
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| {
            PhaseError::io(format!(
                "cannot rename {} to {}: {e}",
                self.tmp.display(),
                self.dest.display()
            ))
        })?;
        self.committed = true;
        Ok(self.dest.clone())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(run_stem(1), "run_0001");
        assert_eq!(run_stem(12345), "run_12345");
        let ws = Workspace::new(Path::new("/w"), Path::new("/t"), "Cluster");
        assert_eq!(
            ws.artifact_path(3, ".h5"),
            PathBuf::from("/w/Cluster/run_0003.h5")
        );
        assert_eq!(ws.asset_dir(), PathBuf::from("/w/Cluster_assets"));
        assert_eq!(ws.trace_path(10), PathBuf::from("/t/run_0010.h5"));
        let p = partial_path(Path::new("/w/Cluster/run_0003.h5"));
        assert_eq!(p, PathBuf::from("/w/Cluster/.run_0003.h5.partial"));
        assert!(is_partial_path(&p));
        assert!(!is_partial_path(Path::new("/w/Cluster/run_0003.h5")));
    }

    #[test]
    fn partial_file_renames_or_cleans_up() {
        let dir = std::env::temp_dir().join(format!("spyral-core-pf-{}", std::process::id()));
        let dest = dir.join("a.txt");
        let f = PartialFile::new(&dest).unwrap();
        std::fs::write(f.path(), "x").unwrap();
        assert!(!dest.exists());
        f.commit().unwrap();
        assert!(dest.exists());
        let g = PartialFile::new(dir.join("b.txt")).unwrap();
        std::fs::write(g.path(), "y").unwrap();
        let tmp = g.path().to_path_buf();
        drop(g);
        assert!(!tmp.exists() && !dir.join("b.txt").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
