//! What the page shows, as data: [`PageData`] is built from the launch folder, the artifacts,
//! the truth and the gates, embedded in the page as JSON (the gate editor reads the PID plot's
//! mapping and bins from it; tests read it back with [`crate::embedded_data`]), and rendered
//! by [`crate::html`].

use crate::data::{self, Columns, Gate, Truth};
use crate::launch::{self, LaunchReport, Logs, PhaseRecord, PhaseState, RunState, Span};
use crate::svg::{padded, quantile_range, Frame, Hist2d};
use crate::{ReportError, ReportInput};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Version of the embedded data's layout.
pub const DATA_FORMAT: u32 = 1;

/// PID plot size and binning.
pub(crate) const PID_SIZE: (f64, f64, f64) = (760.0, 520.0, 96.0);
/// PID histogram bins (x, y).
pub(crate) const PID_BINS: (usize, usize) = (160, 110);
/// Log lines shown per failed run and worker.
const TAIL_LINES: usize = 40;

/// Everything the page shows, embedded in it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageData {
    /// [`DATA_FORMAT`].
    pub format: u32,
    /// Page title.
    pub title: String,
    /// The launch.
    pub summary: Summary,
    /// The PID plot and its gates.
    pub pid: PidPlot,
    /// Kinetic energy vs polar angle.
    pub kinematics: Kinematics,
    /// Vertex z.
    pub vertex_z: VertexZ,
    /// Per run.
    pub runs: Vec<RunRow>,
    /// Per phase.
    pub phases: Vec<PhaseTime>,
    /// Who ran what, when.
    pub timeline: Timeline,
    /// Failed runs, dead workers and unusable files.
    pub failures: Vec<Failure>,
    /// What could not be read.
    pub warnings: Vec<String>,
}

/// The launch in brief.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Pipeline file.
    pub pipeline: Option<String>,
    /// Workspace.
    pub workspace: String,
    /// Launch folder.
    pub launch: Option<String>,
    /// Trace folder.
    pub traces: Option<String>,
    /// Wall seconds.
    pub wall_s: Option<f64>,
    /// Workers.
    pub workers: Option<usize>,
    /// Schedule.
    pub schedule: Option<crate::launch::Schedule>,
    /// Seed.
    pub seed: Option<u64>,
    /// Runs ok, failed, skipped, not run.
    pub runs_ok: usize,
    /// Failed runs.
    pub runs_failed: usize,
    /// Skipped runs.
    pub runs_skipped: usize,
    /// Runs not run.
    pub runs_not_started: usize,
    /// Whether an interrupt stopped it.
    pub interrupted: bool,
    /// The chain: (name, kind).
    pub chain: Vec<(String, String)>,
}

/// A rectangle in SVG user units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlotBox {
    /// Left edge.
    pub left: f64,
    /// Top edge.
    pub top: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

/// The PID plot: its data-to-pixel mapping, histogram and gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PidPlot {
    /// Estimation column on x (`dEdx`).
    pub x_axis: String,
    /// Estimation column on y (`brho`).
    pub y_axis: String,
    /// Data x range (left, right edge of the plot area).
    pub x_range: [f64; 2],
    /// Data y range (bottom, top edge).
    pub y_range: [f64; 2],
    /// SVG size (viewBox width, height).
    pub svg: [f64; 2],
    /// The plot area in SVG units: data x_range[0] is at `left`, y_range[0] at `top + height`.
    pub plot: PlotBox,
    /// Bins (x, y).
    pub bins: [usize; 2],
    /// Counts, row-major from the bottom row (`counts[iy * nx + ix]`).
    pub counts: Vec<u32>,
    /// Rows with finite values.
    pub total: u64,
    /// Of those, inside the ranges.
    pub entries: u64,
    /// Gates drawn on top.
    pub gates: Vec<GateData>,
}

/// A gate as drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateData {
    /// Name.
    pub name: String,
    /// Proton number.
    #[serde(rename = "Z")]
    pub z: u32,
    /// Mass number.
    #[serde(rename = "A")]
    pub a: u32,
    /// Axis columns.
    pub xaxis: String,
    /// Axis columns.
    pub yaxis: String,
    /// Vertices (data coordinates).
    pub vertices: Vec<[f64; 2]>,
    /// The file.
    pub file: String,
    /// Estimates strictly inside (None when its axes are not the plot's).
    pub inside: Option<u64>,
}

/// Kinetic energy vs polar angle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kinematics {
    /// Polar range (deg).
    pub x_range: [f64; 2],
    /// KE range (MeV).
    pub y_range: [f64; 2],
    /// Fitted rows.
    pub fits: u64,
    /// Truth particles overlaid.
    pub truth: u64,
    /// Runs with truth.
    pub truth_runs: Vec<u32>,
    /// Whether the fits are drawn as a 2D histogram (many rows) rather than points.
    pub histogram: bool,
}

/// Vertex z histograms (mm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VertexZ {
    /// Range (mm).
    pub range: [f64; 2],
    /// Bins.
    pub bins: usize,
    /// Series: (label, counts, below, above).
    pub series: Vec<Series>,
}

/// One vertex-z series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Label.
    pub label: String,
    /// Counts per bin.
    pub counts: Vec<u64>,
    /// Values below the range.
    pub under: u64,
    /// Values above the range.
    pub over: u64,
}

/// One row of the per-run table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    /// Run.
    pub run: u32,
    /// Where it stands (`artifacts` without a launch report).
    pub status: RunState,
    /// Worker it ran on last.
    pub worker: Option<usize>,
    /// Event chunks.
    pub chunks: Option<u32>,
    /// Wall seconds.
    pub wall_s: Option<f64>,
    /// Events read (the first phase's items).
    pub events: Option<u64>,
    /// Non-empty point clouds.
    pub clouds: Option<u64>,
    /// Clusters.
    pub clusters: Option<u64>,
    /// Estimates.
    pub estimates: Option<u64>,
    /// Rows inside the gates.
    pub gated: Option<u64>,
    /// Fits.
    pub fits: Option<u64>,
    /// Rejections by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Time spent in one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTime {
    /// Phase name.
    pub phase: String,
    /// Kind.
    pub kind: String,
    /// Wall seconds over all its calls (chunks and merges included).
    pub wall_s: f64,
    /// CPU seconds.
    pub cpu_s: f64,
    /// Calls that ran and succeeded.
    pub calls: u64,
    /// Calls that failed.
    pub failed: u64,
    /// Runs it ran on.
    pub runs: u64,
}

/// The worker timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// `report.json`, `worker logs` or `none`.
    pub source: String,
    /// Launch length (s).
    pub wall_s: f64,
    /// Phase calls.
    pub spans: Vec<TimelineSpan>,
}

/// One phase call on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineSpan {
    /// Worker.
    pub worker: usize,
    /// Run.
    pub run: u32,
    /// `chunk i/n`, `merge` or empty.
    pub part: String,
    /// Phase.
    pub phase: String,
    /// Start (s since the launch started).
    pub start_s: f64,
    /// End.
    pub end_s: f64,
    /// Ended well.
    pub ok: bool,
}

/// A failure and its log tail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// What failed (`run 3`, `worker 1`, `unusable file`).
    pub what: String,
    /// The error.
    pub error: String,
    /// Log tails: (log name, lines).
    pub tails: Vec<(String, Vec<String>)>,
}

/// The first phase of `kind` in the chain, else `fallback` when its folder exists.
fn phase_named(input: &ReportInput, kind: &str, fallback: &str) -> Option<String> {
    input
        .phases
        .iter()
        .find(|p| p.kind == kind)
        .map(|p| p.name.clone())
        .or_else(|| {
            input
                .workspace
                .join(fallback)
                .is_dir()
                .then(|| fallback.to_string())
        })
}

fn kind_of(input: &ReportInput, phase: &str) -> String {
    input
        .phases
        .iter()
        .find(|p| p.name == phase)
        .map(|p| p.kind.clone())
        .unwrap_or_else(|| match phase {
            "Pointcloud" => "pointcloud".into(),
            "Cluster" => "cluster".into(),
            "Estimation" => "estimation".into(),
            "InterpSolver" => "interp-solver".into(),
            _ => String::new(),
        })
}

/// One phase's metadata and items over a run's records: the merge's (or the whole run's)
/// metadata, items summed over chunks; chunk metadata summed when no merge record exists.
fn phase_summary(records: &[&PhaseRecord]) -> (u64, Value) {
    let items: u64 = if records.iter().any(|r| r.is_chunk()) {
        records
            .iter()
            .filter(|r| r.is_chunk())
            .map(|r| r.items)
            .sum()
    } else {
        records.iter().map(|r| r.items).sum()
    };
    if let Some(m) = records
        .iter()
        .find(|r| (r.is_merge() || r.part.is_none()) && !r.metadata.is_null())
    {
        return (items, m.metadata.clone());
    }
    let mut sum = Value::Null;
    for r in records.iter().filter(|r| r.is_chunk()) {
        sum = sum_values(sum, &r.metadata);
    }
    (items, sum)
}

fn sum_values(a: Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Null, b) => b.clone(),
        (Value::Object(mut a), Value::Object(b)) => {
            for (k, v) in b {
                let old = a.remove(k).unwrap_or(Value::Null);
                a.insert(k.clone(), sum_values(old, v));
            }
            Value::Object(a)
        }
        (Value::Number(x), Value::Number(y)) => match (x.as_u64(), y.as_u64()) {
            (Some(x), Some(y)) => Value::from(x + y),
            _ => Value::Number(x),
        },
        (a, _) => a,
    }
}

fn meta_u64(m: &Value, key: &str) -> Option<u64> {
    m.get(key).and_then(Value::as_u64)
}

/// The per-run table row of `run`.
fn run_row(
    input: &ReportInput,
    run: u32,
    record: Option<&launch::RunRecord>,
    estimates: &Columns,
    fits: &Columns,
) -> RunRow {
    let mut row = RunRow {
        run,
        status: RunState::Artifacts,
        ..RunRow::default()
    };
    if let Some(r) = record {
        row.status = if r.up_to_date {
            RunState::UpToDate
        } else {
            r.status
        };
        row.worker = r.worker;
        row.chunks = r.chunks;
        row.wall_s = Some(r.wall_s);
        row.error = r.error.clone();
        // Phases in chain order (report order when the chain is unknown).
        let mut names: Vec<String> = input.phases.iter().map(|p| p.name.clone()).collect();
        for p in &r.phases {
            if !names.contains(&p.phase) {
                names.push(p.phase.clone());
            }
        }
        let mut first = true;
        for name in names {
            let recs: Vec<&PhaseRecord> = r.phases.iter().filter(|p| p.phase == name).collect();
            if recs.is_empty() {
                continue;
            }
            let (items, meta) = phase_summary(&recs);
            if first && items > 0 {
                row.events = Some(items);
            }
            first = false;
            match kind_of(input, &name).as_str() {
                "pointcloud" => row.clouds = meta_u64(&meta, "events"),
                "cluster" => {
                    row.clusters = meta_u64(&meta, "clusters");
                    if let Some(n) = meta_u64(&meta, "skipped_events").filter(|n| *n > 0) {
                        row.rejected.insert("cluster: events skipped".into(), n);
                    }
                }
                "estimation" => {
                    row.estimates = meta_u64(&meta, "estimates");
                    if row.clusters.is_none() {
                        row.clusters = meta_u64(&meta, "clusters");
                    }
                    if let Some(Value::Object(rej)) = meta.get("rejected") {
                        for (k, v) in rej {
                            if let Some(n) = v.as_u64().filter(|n| *n > 0) {
                                row.rejected.insert(format!("estimation: {k}"), n);
                            }
                        }
                    }
                }
                "interp-solver" => {
                    row.gated = meta_u64(&meta, "gated");
                    row.fits = meta_u64(&meta, "fitted");
                    if let (Some(rows), Some(gated)) = (meta_u64(&meta, "rows"), row.gated) {
                        if rows > gated {
                            row.rejected
                                .insert("solver: outside the gates".into(), rows - gated);
                        }
                    }
                    for (key, label) in [
                        ("skipped_outside_mesh", "solver: outside the mesh"),
                        ("failed", "solver: fit failed"),
                    ] {
                        if let Some(n) = meta_u64(&meta, key).filter(|n| *n > 0) {
                            row.rejected.insert(label.into(), n);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    // Up-to-date runs (and runs without a report) carry no metadata: count the artifacts.
    if row.estimates.is_none() {
        row.estimates = estimates.rows.get(&run).copied();
    }
    if row.fits.is_none() {
        row.fits = fits.rows.get(&run).copied();
    }
    row
}

fn phase_times(input: &ReportInput, report: &LaunchReport) -> Vec<PhaseTime> {
    let mut names: Vec<String> = input.phases.iter().map(|p| p.name.clone()).collect();
    for r in &report.runs {
        for p in &r.phases {
            if !names.contains(&p.phase) {
                names.push(p.phase.clone());
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
            let mut t = PhaseTime {
                kind: kind_of(input, &name),
                phase: name,
                wall_s: 0.0,
                cpu_s: 0.0,
                calls: 0,
                failed: 0,
                runs: 0,
            };
            for r in &report.runs {
                let mut ran = false;
                for p in r.phases.iter().filter(|p| p.phase == t.phase) {
                    match p.status {
                        PhaseState::Ok => t.calls += 1,
                        PhaseState::Failed => t.failed += 1,
                        _ => continue,
                    }
                    ran = true;
                    t.wall_s += p.wall_s;
                    t.cpu_s += p.cpu_s;
                }
                t.runs += u64::from(ran);
            }
            t
        })
        .collect()
}

fn failures(report: &LaunchReport, logs: &Logs) -> Vec<Failure> {
    let mut out = Vec::new();
    for r in &report.runs {
        let bad = r.status.is_bad();
        if !bad && r.error.is_none() {
            continue;
        }
        let tails = launch::run_tail(logs, r.run, TAIL_LINES)
            .into_iter()
            .map(|(w, lines)| (format!("worker-{w}.log"), lines))
            .collect();
        out.push(Failure {
            what: format!("run {} ({})", r.run, r.status),
            error: r.error.clone().unwrap_or_default(),
            tails,
        });
    }
    for w in &report.worker_reports {
        if !w.exit.is_failure() {
            continue;
        }
        out.push(Failure {
            what: format!("worker {}", w.worker),
            error: format!("ended with {}", w.exit),
            tails: vec![(
                format!("worker-{}.log", w.worker),
                launch::worker_tail(logs, w.worker, TAIL_LINES),
            )],
        });
    }
    for u in &report.unusable {
        out.push(Failure {
            what: "unusable run file".into(),
            error: u.clone(),
            tails: Vec::new(),
        });
    }
    out
}

fn timeline(report: Option<&LaunchReport>, logs: &Logs) -> Timeline {
    let (source, spans): (&str, Vec<Span>) = match report.and_then(launch::spans_from_report) {
        Some(s) => ("report.json", s),
        None => {
            let s = launch::spans_from_logs(logs);
            if s.is_empty() {
                ("none", s)
            } else {
                ("worker logs", s)
            }
        }
    };
    let end = spans.iter().map(|s| s.end_s).fold(0.0, f64::max);
    Timeline {
        source: source.into(),
        wall_s: report.map_or(end, |r| r.wall_s.max(end)),
        spans: spans
            .into_iter()
            .map(|s| TimelineSpan {
                worker: s.worker,
                run: s.run,
                part: s.part,
                phase: s.phase,
                start_s: s.start_s,
                end_s: s.end_s,
                ok: s.ok,
            })
            .collect(),
    }
}

/// The PID plot's frame: the data's 0.5–99.5 % quantiles (or the input's ranges) widened to
/// hold the gates drawn on these axes.
pub(crate) fn pid_frame(input: &ReportInput, dedx: &[f64], brho: &[f64], gates: &[Gate]) -> Frame {
    let gate_pts = || {
        gates
            .iter()
            .filter(|g| g.pid.x_axis == "dEdx" && g.pid.y_axis == "brho")
            .flat_map(|g| g.pid.vertices.iter())
    };
    let range = |values: &[f64], k: usize, given: Option<[f64; 2]>| -> [f64; 2] {
        if let Some(r) = given.filter(|r| r[1] > r[0]) {
            return r;
        }
        let data = quantile_range(values, 0.005, 0.995);
        let g: Vec<f64> = gate_pts().map(|v| v[k]).collect();
        let gate = quantile_range(&g, 0.0, 1.0);
        let r = match (data, gate) {
            (Some(d), Some(g)) => [d[0].min(g[0]), d[1].max(g[1])],
            (Some(r), None) | (None, Some(r)) => r,
            (None, None) => [0.0, 1.0],
        };
        padded(r, 0.04)
    };
    let x = range(dedx, 0, input.pid_x_range);
    let y = range(brho, 1, input.pid_y_range);
    Frame::new(PID_SIZE.0, PID_SIZE.1, PID_SIZE.2, x, y)
}

/// Everything read for the page, and the page data.
pub(crate) struct Built {
    pub data: PageData,
    pub pid_frame: Frame,
    pub pid_hist: Hist2d,
    pub fits: Vec<(f64, f64)>,
    pub truth_pts: Vec<(f64, f64)>,
}

/// Reads the launch, the artifacts, the truth and the gates into the page data.
pub(crate) fn build(input: &ReportInput) -> Result<Built, ReportError> {
    if !input.workspace.is_dir() {
        return Err(ReportError::NoWorkspace {
            path: input.workspace.clone(),
        });
    }
    let mut warnings = Vec::new();
    let (report, logs) = match &input.launch {
        Some(dir) => {
            let report = match launch::read_report(&dir.join("report.json")) {
                Ok(r) => Some(r),
                Err(e) => {
                    warnings.push(format!("no launch report: {e}"));
                    None
                }
            };
            (report, launch::read_logs(dir, &mut warnings))
        }
        None => (None, Logs::default()),
    };
    let est_phase = phase_named(input, "estimation", "Estimation");
    let sol_phase = phase_named(input, "interp-solver", "InterpSolver");
    let est_dir = est_phase.as_ref().map(|n| input.workspace.join(n));
    let sol_dir = sol_phase.as_ref().map(|n| input.workspace.join(n));
    let runs: Vec<u32> = match &report {
        Some(r) if !r.runs.is_empty() => r.runs.iter().map(|r| r.run).collect(),
        _ => {
            let mut v: Vec<u32> = est_dir
                .iter()
                .chain(sol_dir.iter())
                .flat_map(|d| data::runs_in(d))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        }
    };
    let est = est_dir.as_ref().map_or_else(
        || Columns {
            values: vec![Vec::new(); 3],
            ..Columns::default()
        },
        |d| data::read_runs(d, &runs, &["dEdx", "brho", "vertex_z"], &mut warnings),
    );
    let sol = sol_dir.as_ref().map_or_else(
        || Columns {
            values: vec![Vec::new(); 3],
            ..Columns::default()
        },
        |d| data::read_runs(d, &runs, &["ke", "polar", "vertex_z"], &mut warnings),
    );
    let truth = input
        .traces
        .as_ref()
        .map(|t| data::read_truths(t, &runs, &mut warnings))
        .unwrap_or_default();
    let gates = data::read_gates(&input.gates, &mut warnings);

    // PID.
    let (dedx, brho) = (&est.values[0], &est.values[1]);
    let frame = pid_frame(input, dedx, brho, &gates);
    let hist = Hist2d::fill(&frame, dedx, brho, PID_BINS.0, PID_BINS.1);
    let total = dedx
        .iter()
        .zip(brho)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .count() as u64;
    let gate_data: Vec<GateData> = gates
        .iter()
        .map(|g| {
            let on_plot = g.pid.x_axis == "dEdx" && g.pid.y_axis == "brho";
            GateData {
                name: g.pid.name.clone(),
                z: g.pid.nucleus.z,
                a: g.pid.nucleus.a,
                xaxis: g.pid.x_axis.clone(),
                yaxis: g.pid.y_axis.clone(),
                vertices: g.pid.vertices.clone(),
                file: g.file.display().to_string(),
                inside: on_plot.then(|| {
                    dedx.iter()
                        .zip(brho)
                        .filter(|(x, y)| g.pid.contains(**x, **y))
                        .count() as u64
                }),
            }
        })
        .collect();
    let pid = PidPlot {
        x_axis: "dEdx".into(),
        y_axis: "brho".into(),
        x_range: frame.x,
        y_range: frame.y,
        svg: [frame.width, frame.height],
        plot: PlotBox {
            left: frame.left,
            top: frame.top,
            width: frame.pw,
            height: frame.ph,
        },
        bins: [hist.nx, hist.ny],
        counts: hist.counts.clone(),
        total,
        entries: hist.entries,
        gates: gate_data,
    };

    // Kinematics: fits and the truth of the gated nuclei (of every product without gates).
    let fits: Vec<(f64, f64)> = sol.values[1]
        .iter()
        .zip(&sol.values[0])
        .map(|(p, ke)| (p.to_degrees(), *ke))
        .filter(|(p, ke)| p.is_finite() && ke.is_finite())
        .collect();
    let nuclei: Vec<(u32, u32)> = gates
        .iter()
        .map(|g| (g.pid.nucleus.z, g.pid.nucleus.a))
        .collect();
    let truth_pts: Vec<(f64, f64)> = truth
        .particles
        .iter()
        .filter(|(z, a, _)| nuclei.is_empty() || nuclei.contains(&(*z, *a)))
        .map(|(_, _, p)| *p)
        .collect();
    let kinematics = kinematics_ranges(&fits, &truth_pts, &truth);

    // Vertex z (mm).
    let vertex_z = vertex_series(&sol.values[2], &est.values[2], &truth);

    let empty = LaunchReport::default();
    let rep = report.as_ref().unwrap_or(&empty);
    let records: BTreeMap<u32, &launch::RunRecord> = rep.runs.iter().map(|r| (r.run, r)).collect();
    let rows: Vec<RunRow> = runs
        .iter()
        .map(|&run| run_row(input, run, records.get(&run).copied(), &est, &sol))
        .collect();
    let summary = Summary {
        pipeline: rep.pipeline.as_ref().map(|p| p.display().to_string()),
        workspace: input.workspace.display().to_string(),
        launch: input.launch.as_ref().map(|p| p.display().to_string()),
        traces: input.traces.as_ref().map(|p| p.display().to_string()),
        wall_s: report.as_ref().map(|r| r.wall_s),
        workers: rep.workers,
        schedule: rep.schedule,
        seed: rep.seed,
        runs_ok: rep.runs_ok,
        runs_failed: rep.runs_failed,
        runs_skipped: rep.runs_skipped,
        runs_not_started: rep.runs_not_started,
        interrupted: rep.interrupted,
        chain: input
            .phases
            .iter()
            .map(|p| (p.name.clone(), p.kind.clone()))
            .collect(),
    };
    let title = input.title.clone().unwrap_or_else(|| {
        let launch = input
            .launch
            .as_ref()
            .and_then(|l| l.file_name())
            .map(|n| format!(" — launch {}", n.to_string_lossy()))
            .unwrap_or_default();
        format!("Spyral report{launch}")
    });
    let data = PageData {
        format: DATA_FORMAT,
        title,
        summary,
        pid,
        kinematics,
        vertex_z,
        runs: rows,
        phases: phase_times(input, rep),
        timeline: timeline(report.as_ref(), &logs),
        failures: failures(rep, &logs),
        warnings,
    };
    Ok(Built {
        data,
        pid_frame: frame,
        pid_hist: hist,
        fits,
        truth_pts,
    })
}

/// Points above this count are drawn as a 2D histogram.
pub(crate) const MAX_POINTS: usize = 4000;

fn kinematics_ranges(fits: &[(f64, f64)], truth_pts: &[(f64, f64)], truth: &Truth) -> Kinematics {
    let all = || fits.iter().chain(truth_pts);
    let xs: Vec<f64> = all().map(|p| p.0).collect();
    let ys: Vec<f64> = all().map(|p| p.1).collect();
    let top = |v: &[f64], default: f64| {
        let hi = quantile_range(v, 0.0, 0.998).map_or(default, |r| r[1].max(0.0));
        padded([0.0, hi.max(1e-9)], 0.03)
    };
    Kinematics {
        x_range: [0.0, top(&xs, 90.0)[1]],
        y_range: [0.0, top(&ys, 10.0)[1]],
        fits: fits.len() as u64,
        truth: truth_pts.len() as u64,
        truth_runs: truth.runs.clone(),
        histogram: fits.len() > MAX_POINTS,
    }
}

/// Vertex-z bins.
const VZ_BINS: usize = 80;

fn vertex_series(fit_m: &[f64], est_mm: &[f64], truth: &Truth) -> VertexZ {
    let fit_mm: Vec<f64> = fit_m.iter().map(|z| z * 1000.0).collect();
    let mut basis: Vec<f64> = fit_mm.iter().chain(&truth.vertex_z_mm).copied().collect();
    if basis.iter().all(|v| !v.is_finite()) {
        basis = est_mm.to_vec();
    }
    let range = padded(
        quantile_range(&basis, 0.005, 0.995).unwrap_or([0.0, 1000.0]),
        0.03,
    );
    let mut series = Vec::new();
    for (label, values) in [
        ("fitted (InterpSolver)", &fit_mm[..]),
        ("estimated (Estimation)", est_mm),
        ("truth (simulated)", &truth.vertex_z_mm[..]),
    ] {
        if values.is_empty() {
            continue;
        }
        let h = crate::svg::Hist1d::fill(values, range, VZ_BINS);
        series.push(Series {
            label: label.into(),
            counts: h.counts,
            under: h.under,
            over: h.over,
        });
    }
    VertexZ {
        range,
        bins: VZ_BINS,
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(phase: &str, part: Option<&str>, items: u64, meta: Value) -> PhaseRecord {
        PhaseRecord {
            phase: phase.into(),
            status: PhaseState::Ok,
            items,
            metadata: meta,
            part: part.map(|p| launch::PartRecord {
                part: p.into(),
                index: Some(0),
                count: Some(2),
            }),
            ..PhaseRecord::default()
        }
    }

    #[test]
    fn chunk_metadata_sums_without_a_merge() {
        let a = rec(
            "E",
            Some("chunk"),
            3,
            json!({"estimates": 2, "rejected": {"x": 1}}),
        );
        let b = rec(
            "E",
            Some("chunk"),
            4,
            json!({"estimates": 5, "rejected": {"x": 2, "y": 1}}),
        );
        let (items, meta) = phase_summary(&[&a, &b]);
        assert_eq!(items, 7);
        assert_eq!(meta, json!({"estimates": 7, "rejected": {"x": 3, "y": 1}}));
        let m = rec("E", Some("merge"), 0, json!({"estimates": 9}));
        let (items, meta) = phase_summary(&[&a, &b, &m]);
        assert_eq!((items, meta), (7, json!({"estimates": 9})));
        let w = rec("E", None, 11, json!({"estimates": 1}));
        assert_eq!(phase_summary(&[&w]), (11, json!({"estimates": 1})));
    }
}
