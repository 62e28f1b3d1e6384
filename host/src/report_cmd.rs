//! `spyral report`: the HTML report of a launch (see `spyral-report`). Builds the report's input
//! from a pipeline and its validated chain (phase names and kinds, the particle-ID gate files the
//! InterpSolver phases name), picks the launch folder (the newest unless one is given) and writes
//! `report.html` into it. Also called at the end of `spyral run`, where a failure is a warning.

use crate::chain::PhaseView;
use crate::pipeline::Pipeline;
use spyral_report::{PhaseInfo, ReportError, ReportInput, REPORT_FILE};
use std::path::{Path, PathBuf};

/// The report's input for the launch folder `launch` of pipeline `p` with chain `chain`.
pub fn input(p: &Pipeline, chain: &[PhaseView], launch: Option<&Path>) -> ReportInput {
    let base = p
        .path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let gates = chain
        .iter()
        .filter(|c| c.resolved.kind == "interp-solver")
        .filter_map(|c| serde_json::from_str::<serde_json::Value>(&c.resolved.config).ok())
        .filter_map(|config| spyral_report::particle_id_file(&config, &base))
        .collect();
    ReportInput {
        title: None,
        workspace: p.workspace.clone(),
        launch: launch.map(Path::to_path_buf),
        traces: Some(p.traces.clone()),
        phases: chain
            .iter()
            .map(|c| PhaseInfo {
                name: c.name().to_string(),
                kind: c.resolved.kind.clone(),
            })
            .collect(),
        gates,
        pid_x_range: None,
        pid_y_range: None,
    }
}

/// The newest launch folder of a workspace (`log/latest`, else the last by name), if any.
pub fn latest_launch(workspace: &Path) -> Option<PathBuf> {
    let log = workspace.join("log");
    if let Ok(target) = std::fs::canonicalize(log.join("latest")) {
        if target.is_dir() {
            return Some(target);
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&log)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// Writes the report of launch `launch` (None: the workspace's newest, or none when it has no
/// launch) to `out` (default: `report.html` in the launch folder, else in the workspace).
pub fn write(
    p: &Pipeline,
    chain: &[PhaseView],
    launch: Option<&Path>,
    out: Option<&Path>,
) -> Result<PathBuf, ReportError> {
    let launch = launch
        .map(Path::to_path_buf)
        .or_else(|| latest_launch(&p.workspace));
    let dest = match (out, &launch) {
        (Some(o), _) => o.to_path_buf(),
        (None, Some(l)) => l.join(REPORT_FILE),
        (None, None) => p.workspace.join(REPORT_FILE),
    };
    spyral_report::write_report(&input(p, chain, launch.as_deref()), &dest)
}
