//! # spyral-report: what physicists see of a launch
//!
//! [`write_report`] writes ONE self-contained HTML file (inline CSS, inline SVG, inline script;
//! nothing loaded from the network) for a launch of the AT-TPC chain:
//!
//! - the particle-ID plot: dE/dx (`dEdx`) vs Bρ (`brho`) of the Estimation artifacts as a 2D
//!   histogram on a log colour scale, with the particle-ID gates drawn on top, and a **gate
//!   editor**: click to draw a polygon, give it a name, Z and A, save it as Spyral's
//!   particle-ID JSON (the file InterpSolver's `particle_id_filename` reads);
//! - kinetic energy vs polar angle of the InterpSolver fits, with the simulator's truth
//!   (`<traces>/truth/run_NNNN.jsonl`) overlaid when present;
//! - vertex z (fitted, estimated, simulated);
//! - a per-run table (events, clouds, clusters, estimates, gated rows, fits, rejections by
//!   reason, status, errors), time per phase, a worker timeline, and failures with the tails of
//!   their worker logs.
//!
//! Modules: [`launch`] reads the launch folder (`report.json`, worker logs), [`data`] the
//! artifacts, truth and gates (through `spyral-phases`' readers), [`page`] builds the
//! [`PageData`] embedded in the page, [`svg`] draws, [`html`] assembles the page.

pub mod data;
pub mod error;
pub mod html;
pub mod launch;
pub mod page;
pub mod svg;

pub use error::{ReadError, ReportError};
pub use launch::{PhaseState, RunState};
pub use page::PageData;

use std::path::{Path, PathBuf};

/// The report's usual file name in a launch folder.
pub const REPORT_FILE: &str = "report.html";

/// A phase of the chain, as the report needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseInfo {
    /// The phase's name (its workspace folder).
    pub name: String,
    /// Its kind (`pointcloud`, `cluster`, `estimation`, `interp-solver`, or a plugin's).
    pub kind: String,
}

/// What a report is made from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportInput {
    /// Page title (default: `Spyral report — launch <folder name>`).
    pub title: Option<String>,
    /// The workspace (phase folders hold the artifacts).
    pub workspace: PathBuf,
    /// The launch's log folder (`report.json`, `parent.log`, `worker-N.log`); None: the page
    /// shows the artifacts of every run found, without run status, times or timeline.
    pub launch: Option<PathBuf>,
    /// The trace folder; its `truth/run_NNNN.jsonl` files are overlaid when present.
    pub traces: Option<PathBuf>,
    /// The chain, in order. The Estimation artifacts are those of the first phase of kind
    /// `estimation`, the fits those of the first `interp-solver` (the folders `Estimation` and
    /// `InterpSolver` when the chain has none).
    pub phases: Vec<PhaseInfo>,
    /// Particle-ID gate files to draw (see [`particle_id_file`]).
    pub gates: Vec<PathBuf>,
    /// PID plot's dE/dx range (default: the data's 0.5–99.5 % quantiles and the gates).
    pub pid_x_range: Option<[f64; 2]>,
    /// PID plot's Bρ range (default: as for x).
    pub pid_y_range: Option<[f64; 2]>,
}

/// The particle-ID file an InterpSolver configuration names (`particle_id_filename`), a
/// relative path taken relative to `base_dir` (the pipeline file's folder, which is what the
/// workers' current directory is).
pub fn particle_id_file(config: &serde_json::Value, base_dir: &Path) -> Option<PathBuf> {
    let p = Path::new(config.get("particle_id_filename")?.as_str()?);
    Some(if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    })
}

/// A rendered page and the data embedded in it.
#[derive(Debug, Clone)]
pub struct Page {
    /// The HTML.
    pub html: String,
    /// The data embedded in it.
    pub data: PageData,
}

/// Builds the page in memory.
pub fn render(input: &ReportInput) -> Result<Page, ReportError> {
    let built = page::build(input)?;
    let html = html::render(&built).map_err(ReportError::Encode)?;
    Ok(Page {
        html,
        data: built.data,
    })
}

/// Writes the report of `input` to `dest` (through a hidden temporary name in the same folder,
/// renamed when complete) and returns `dest`.
pub fn write_report(input: &ReportInput, dest: &Path) -> Result<PathBuf, ReportError> {
    let page = render(input)?;
    let name = dest
        .file_name()
        .map_or_else(|| REPORT_FILE.into(), |n| n.to_string_lossy().into_owned());
    let tmp = dest.with_file_name(format!(".{name}.partial"));
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Write { path, source }
    };
    let written = std::fs::write(&tmp, page.html.as_bytes())
        .map_err(werr(&tmp))
        .and_then(|()| std::fs::rename(&tmp, dest).map_err(werr(dest)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| dest.to_path_buf())
}

/// Reads back the data embedded in a page written by [`write_report`].
pub fn embedded_data(html: &str) -> Result<PageData, ReportError> {
    let open = format!(
        "<script type=\"application/json\" id=\"{}\">",
        html::DATA_ID
    );
    let start = html.find(&open).ok_or(ReportError::NoEmbeddedData)? + open.len();
    let len = html[start..]
        .find("</script>")
        .ok_or(ReportError::NoEmbeddedData)?;
    serde_json::from_str(&html[start..start + len]).map_err(ReportError::EmbeddedData)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn particle_id_paths_resolve_against_the_pipeline_folder() {
        let c = serde_json::json!({"particle_id_filename": "pid/d.json"});
        assert_eq!(
            particle_id_file(&c, Path::new("/a/b")),
            Some(PathBuf::from("/a/b/pid/d.json"))
        );
        let c = serde_json::json!({"particle_id_filename": "/x/d.json"});
        assert_eq!(
            particle_id_file(&c, Path::new("/a")),
            Some(PathBuf::from("/x/d.json"))
        );
        assert_eq!(
            particle_id_file(&serde_json::json!({}), Path::new("/a")),
            None
        );
    }
}
