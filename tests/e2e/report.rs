//! The HTML report of a launch, made by the real binary: `spyral run` writes `report.html` into
//! the launch folder at the end (also when a run failed), `spyral report` rewrites it on demand
//! or to another file, and the page is self-contained (nothing fetched from the network) and
//! agrees with the artifacts it was made from (estimates and fits per run, the gate, the truth,
//! the worker timeline, the failure and its log tail).

use spyral_data::parquet::file::reader::{FileReader, SerializedFileReader};
use spyral_e2e::{run_record, Sandbox};
use spyral_report::{PageData, RunState};
use std::path::Path;

const PHASES: &str = spyral_e2e::SMALL_CHAIN;

/// Rows of a parquet file.
fn parquet_rows(path: &Path) -> u64 {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = SerializedFileReader::new(file).expect("parquet");
    reader.metadata().file_metadata().num_rows() as u64
}

/// Rows of every parquet file of `run` in a phase folder (InterpSolver names files by isotope).
fn run_rows(dir: &Path, run: u32) -> u64 {
    let prefix = format!("run_{run:04}");
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&prefix) && name.ends_with(".parquet") && !name.contains("scaler")
        })
        .map(|p| parquet_rows(&p))
        .sum()
}

fn page(path: &Path) -> (String, PageData) {
    let html = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let data = spyral_report::embedded_data(&html).expect("embedded page data");
    (html, data)
}

/// Nothing in the page is fetched: no external script, style, image or font.
fn assert_self_contained(html: &str) {
    for bad in [
        "src=\"http",
        "src='http",
        "href=\"http",
        "url(http",
        "@import",
        "<link",
    ] {
        assert!(!html.contains(bad), "the page loads something: {bad}");
    }
    assert!(html.contains("<svg"), "plots are inline SVG");
    assert!(html.contains("gate-save"), "the gate editor is in the page");
}

#[test]
fn run_writes_a_self_contained_report_that_agrees_with_the_artifacts() {
    let sb = Sandbox::new();
    sb.simulated(2, 16, 11);
    let p = sb.file(
        "p.yaml",
        &format!(
            "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 2}}\nworkers: 2\nseed: 3\nphases:\n{PHASES}"
        ),
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let launch = sb.latest_log();
    let html_path = launch.join("report.html");
    assert!(
        out.stdout.contains("html report: ") && out.stdout.contains("report.html"),
        "{}",
        out.stdout
    );
    let (html, data) = page(&html_path);
    assert_self_contained(&html);

    // Per-run rows agree with the artifacts and with report.json.
    let report = sb.report();
    assert_eq!(data.runs.len(), 2, "{:?}", data.runs);
    let mut estimates = 0;
    let mut fits = 0;
    for row in &data.runs {
        let rec = run_record(&report, row.run.into());
        assert_eq!(row.status, RunState::Ok, "run {}: {row:?}", row.run);
        let est = run_rows(&sb.ws().join("Estimation"), row.run);
        let fit = run_rows(&sb.ws().join("InterpSolver"), row.run);
        assert!(est > 0, "run {} has estimates", row.run);
        assert_eq!(row.estimates, Some(est), "run {}", row.run);
        assert_eq!(row.fits, Some(fit), "run {}", row.run);
        assert_eq!(
            row.worker.map(|w| w as u64),
            rec["worker"].as_u64(),
            "run {}: {rec}",
            row.run
        );
        estimates += est;
        fits += fit;
    }
    // The PID histogram holds every estimate (inside or outside its range), the kinematics every
    // fit, and the simulated truth is overlaid.
    assert_eq!(data.pid.total, estimates);
    assert!(data.pid.entries > 0 && data.pid.entries <= estimates);
    assert_eq!(
        data.pid.counts.len(),
        data.pid.bins[0] * data.pid.bins[1],
        "histogram shape"
    );
    assert_eq!(data.kinematics.fits, fits);
    assert!(data.kinematics.truth > 0, "truth overlaid");
    assert_eq!(data.kinematics.truth_runs, vec![1, 2]);
    // The pipeline's gate is drawn, with how many estimates it holds.
    assert_eq!(data.pid.gates.len(), 1, "{:?}", data.pid.gates);
    let gate = &data.pid.gates[0];
    assert_eq!((gate.z, gate.a), (1, 2));
    assert!(gate.vertices.len() >= 3);
    let inside = gate.inside.expect("estimates inside the gate");
    assert!(inside > 0 && inside <= estimates);
    // Every phase has a time, and the timeline shows both runs on the workers that ran them.
    let names: Vec<&str> = data.phases.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(
        names,
        ["Pointcloud", "Cluster", "Estimation", "InterpSolver"]
    );
    assert!(data.phases.iter().all(|p| p.calls >= 2 && p.failed == 0));
    let mut runs: Vec<u32> = data.timeline.spans.iter().map(|s| s.run).collect();
    runs.dedup();
    runs.sort();
    runs.dedup();
    assert_eq!(runs, vec![1, 2], "{:?}", data.timeline.spans);
    assert!(data
        .timeline
        .spans
        .iter()
        .all(|s| s.ok && s.end_s >= s.start_s));
    assert!(data.failures.is_empty(), "{:?}", data.failures);

    // `spyral report` rewrites the same page on demand, and to another file.
    let other = sb.path().join("copy.html");
    let out = sb.spyral(&[
        "report",
        p.to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("copy.html"), "{}", out.stdout);
    let (_, again) = page(&other);
    assert_eq!(again.runs, data.runs);
    assert_eq!(again.pid.counts, data.pid.counts);
    assert_eq!(again.kinematics, data.kinematics);
}

#[test]
fn a_failed_run_is_in_the_report_with_its_log_tail() {
    let sb = Sandbox::new();
    sb.simulated(1, 6, 2);
    // Run 2 is not an HDF5 file: it fails, run 1 goes on.
    std::fs::write(sb.traces().join("run_0002.h5"), b"not an hdf5 file at all").unwrap();
    let p = sb.file(
        "p.yaml",
        &format!(
            "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 2}}\nworkers: 1\nphases:\n{}",
            PHASES.lines().take(3).collect::<Vec<_>>().join("\n")
        ),
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    let (_, data) = page(&sb.latest_log().join("report.html"));
    let failed: Vec<_> = data
        .runs
        .iter()
        .filter(|r| r.status != RunState::Ok)
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", data.runs);
    assert_eq!(failed[0].run, 2);
    assert!(failed[0].error.is_some(), "{:?}", failed[0]);
    let f = data
        .failures
        .iter()
        .find(|f| f.what.contains('2'))
        .unwrap_or_else(|| panic!("run 2 among the failures: {:?}", data.failures));
    assert!(f.error.contains("run_0002.h5"), "{f:?}");
    assert!(
        f.tails.iter().any(|(_, lines)| !lines.is_empty()),
        "a log tail: {f:?}"
    );
}

#[test]
fn report_names_a_missing_workspace_or_launch_folder() {
    let sb = Sandbox::new();
    sb.simulated(1, 2, 1);
    let p = sb.file(
        "p.yaml",
        &format!(
            "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 1}}\nphases:\n{}",
            PHASES.lines().take(1).collect::<Vec<_>>().join("\n")
        ),
    );
    // Before any launch: the workspace is named.
    let out = sb.spyral(&["report", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("ws"), "{}", out.all());
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let out = sb.spyral(&["report", p.to_str().unwrap(), "--launch", "no-such-launch"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("no-such-launch"), "{}", out.all());
}
