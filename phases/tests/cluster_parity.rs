//! Parity of the Cluster phase's algorithms with the Python original (scikit-learn `HDBSCAN`
//! and `LocalOutlierFactor`, scipy `make_smoothing_spline`, the numpy least-squares circle of
//! spyral-spec 3.3.1), against the committed golden fixtures in `tests/fixtures/cluster/` (made
//! by `make_fixtures.py` there; Python is not needed to run this), plus a phase-level run on a
//! small Pointcloud file.
//!
//! Checked:
//! - HDBSCAN labels on 40 AT-TPC-like clouds and 4 parameter sets: identical to native
//!   scikit-learn's;
//! - HDBSCAN labels on the Pointcloud clouds of simulated runs where the order of equal-weight
//!   minimum-spanning-tree edges decides the clusters (`tests/fixtures/hdbscan/`, made by
//!   `sklearn_hdbscan.py` there): identical to native scikit-learn's (numpy's AVX-512 argsort),
//!   not to a stable sort's; and `numpy_sort::numpy_argsort_vec` against `numpy.argsort` on arrays with ties;
//! - LOF (`fit_predict`) on every HDBSCAN cluster and on whole clouds: identical outlier sets,
//!   scores within 1e-9 (relative);
//! - smoothing spline values within 1e-6 (relative to max(1, |value|));
//! - circle fits within 1e-9 (relative), NaN where numpy's solve is singular;
//! - the full per-event chain runs on every fixture cloud and gives z-sorted clusters;
//! - the phase writes Spyral's layout and attributes, skips unsorted events, keeps empty ones.
//!
//! `cargo test --release -p spyral-phases --test cluster_parity -- --ignored --nocapture`
//! prints the phase's time per event on ~120-point clouds (no assertion), and with
//! `HDBSCAN_REPORT=<file from sklearn_hdbscan.py --report>` the HDBSCAN parity report on every
//! cloud of that file (`hdbscan_report`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde::{Deserialize, Deserializer};
use spyral_core::{PhaseFactory, PhaseResult, RunContext, Workspace};
use spyral_phases::cluster::clusterize::{cluster_event, hdbscan_features, CloudRow};
use spyral_phases::cluster::hdbscan::Hdbscan;
use spyral_phases::cluster::lof::lof_scores;
use spyral_phases::cluster::{ClusterConfig, ClusterPhase};
use spyral_phases::fit::circle::least_squares_circle;
use spyral_phases::fit::spline::SmoothingSpline;
use spyral_phases::numpy_sort::numpy_argsort_vec;

/// A float array stored as one space-separated string (parsed with the correctly rounded
/// `str::parse`, unlike serde_json's default float parser).
fn floats<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let text = String::deserialize(d)?;
    text.split_ascii_whitespace()
        .map(|t| t.parse::<f64>().map_err(serde::de::Error::custom))
        .collect()
}

/// Clouds stored as strings of flattened x, y, z rows.
fn clouds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<[f64; 3]>>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts
        .iter()
        .map(|text| {
            let v: Vec<f64> = text
                .split_ascii_whitespace()
                .map(|t| t.parse::<f64>().map_err(serde::de::Error::custom))
                .collect::<Result<_, _>>()?;
            if v.len() % 3 != 0 {
                return Err(serde::de::Error::custom("cloud length not a multiple of 3"));
            }
            Ok(v.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
        })
        .collect()
}

#[derive(Deserialize)]
struct HdbCase {
    event: usize,
    set: String,
    min_cluster_size: usize,
    min_samples: usize,
    cluster_selection_epsilon: f64,
    labels: Vec<i64>,
    labels_stable: Vec<i64>,
}

#[derive(Deserialize)]
struct LofCase {
    event: usize,
    indices: Vec<usize>,
    n_neighbors: usize,
    outliers: Vec<usize>,
    #[serde(deserialize_with = "floats")]
    scores: Vec<f64>,
}

#[derive(Deserialize)]
struct SplineCase {
    name: String,
    #[serde(deserialize_with = "floats")]
    x: Vec<f64>,
    #[serde(deserialize_with = "floats")]
    y: Vec<f64>,
    lam: f64,
    #[serde(deserialize_with = "floats")]
    t: Vec<f64>,
    #[serde(deserialize_with = "floats")]
    values: Vec<f64>,
}

#[derive(Deserialize)]
struct CircleCase {
    name: String,
    #[serde(deserialize_with = "floats")]
    x: Vec<f64>,
    #[serde(deserialize_with = "floats")]
    y: Vec<f64>,
    /// cx, cy, radius, residual (NaN when singular).
    #[serde(deserialize_with = "floats")]
    fit: Vec<f64>,
    cond: Option<f64>,
}

#[derive(Deserialize)]
struct Fixtures {
    versions: HashMap<String, String>,
    #[serde(deserialize_with = "clouds")]
    events: Vec<Vec<[f64; 3]>>,
    hdbscan: Vec<HdbCase>,
    lof: Vec<LofCase>,
    spline: Vec<SplineCase>,
    circle: Vec<CircleCase>,
    #[serde(deserialize_with = "clouds")]
    bench: Vec<Vec<[f64; 3]>>,
}

fn fixtures() -> Fixtures {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster/cluster_fixtures.json");
    let text = std::fs::read_to_string(&path).expect("read cluster_fixtures.json");
    serde_json::from_str(&text).expect("parse cluster_fixtures.json")
}

/// A point-cloud row from x, y, z (Pointcloud layout, plausible filler columns).
fn cloud_row(p: &[f64; 3], i: usize) -> CloudRow {
    let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
    let scale = if r < 152.0 { 0.5 } else { 1.0 };
    let tb = 560.0 - p[2] / 1000.0 * 550.0;
    [
        p[0],
        p[1],
        p[2],
        300.0 + (i % 7) as f64 * 20.0,
        2000.0 + i as f64,
        (i % 10240) as f64,
        tb,
        scale,
    ]
}

fn choose2(n: usize) -> f64 {
    let n = n as f64;
    n * (n - 1.0) / 2.0
}

/// Adjusted Rand index (noise counted as one more label, as sklearn's `adjusted_rand_score`).
fn adjusted_rand_index(a: &[i64], b: &[i64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut table: HashMap<(i64, i64), usize> = HashMap::new();
    let mut ca: HashMap<i64, usize> = HashMap::new();
    let mut cb: HashMap<i64, usize> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1;
        *ca.entry(x).or_default() += 1;
        *cb.entry(y).or_default() += 1;
    }
    let index: f64 = table.values().map(|&n| choose2(n)).sum();
    let sa: f64 = ca.values().map(|&n| choose2(n)).sum();
    let sb: f64 = cb.values().map(|&n| choose2(n)).sum();
    let expected = sa * sb / choose2(a.len());
    let max = 0.5 * (sa + sb);
    if max == expected {
        1.0
    } else {
        (index - expected) / (max - expected)
    }
}

/// Whether two labelings are equal up to a renaming of the non-noise labels.
fn same_partition(a: &[i64], b: &[i64]) -> bool {
    let mut map: HashMap<i64, i64> = HashMap::new();
    let mut back: HashMap<i64, i64> = HashMap::new();
    a.iter().zip(b).all(|(&x, &y)| {
        if (x == -1) != (y == -1) {
            return false;
        }
        *map.entry(x).or_insert(y) == y && *back.entry(y).or_insert(x) == x
    })
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn hdbscan_matches_sklearn() {
    let fx = fixtures();
    println!("fixture versions: {:?}", fx.versions);
    let (mut ties, mut total) = (0, 0);
    for case in &fx.hdbscan {
        let cloud: Vec<CloudRow> = fx.events[case.event]
            .iter()
            .enumerate()
            .map(|(i, p)| cloud_row(p, i))
            .collect();
        let h = Hdbscan {
            min_cluster_size: case.min_cluster_size,
            min_samples: case.min_samples,
            cluster_selection_epsilon: case.cluster_selection_epsilon,
        };
        let labels = h.fit(&hdbscan_features(&cloud)).unwrap();
        assert_eq!(
            labels, case.labels,
            "event {} set {}: labels differ from native scikit-learn",
            case.event, case.set
        );
        total += 1;
        ties += usize::from(case.labels_stable != case.labels);
    }
    println!(
        "HDBSCAN: identical labels to native scikit-learn in {total}/{total} cases ({ties} of them differ with a stable edge sort)"
    );
}

/// Clouds and argsort cases of `fixtures/hdbscan/hdbscan_ties.json` (made by
/// `sklearn_hdbscan.py --fixture` there).
#[derive(Deserialize)]
struct TieFixtures {
    versions: HashMap<String, serde_json::Value>,
    params: ReportParams,
    clouds: Vec<ReportCloud>,
    argsort: Vec<ArgsortCase>,
}

#[derive(Deserialize)]
struct ArgsortCase {
    #[serde(deserialize_with = "floats")]
    values: Vec<f64>,
    argsort: Vec<usize>,
    stable_differs: bool,
}

fn tie_fixtures() -> TieFixtures {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hdbscan/hdbscan_ties.json");
    let text = std::fs::read_to_string(&path).expect("read hdbscan_ties.json");
    serde_json::from_str(&text).expect("parse hdbscan_ties.json")
}

/// The Pointcloud clouds (simulated runs) on which a stable sort of the MST edges gives other
/// clusters than scikit-learn: our labels must be scikit-learn's, label for label.
#[test]
fn hdbscan_tie_cases_match_sklearn() {
    let fx = tie_fixtures();
    println!("fixture versions: {:?}", fx.versions);
    assert!(!fx.clouds.is_empty());
    for c in &fx.clouds {
        let pts: Vec<CloudRow> = c
            .xyz
            .chunks_exact(3)
            .enumerate()
            .map(|(i, p)| cloud_row(&[p[0], p[1], p[2]], i))
            .collect();
        assert_eq!(pts.len(), c.labels.len());
        let h = Hdbscan {
            min_cluster_size: c.min_cluster_size,
            min_samples: fx.params.min_points,
            cluster_selection_epsilon: fx.params.cluster_selection_epsilon,
        };
        let labels = h.fit(&hdbscan_features(&pts)).unwrap();
        assert_ne!(c.labels, c.labels_stable, "not a tie case");
        assert!(
            same_partition(&labels, &c.labels),
            "run {} event {} ({} points): clusters {:?}, scikit-learn {:?}",
            c.run,
            c.event,
            pts.len(),
            cluster_sizes(&labels),
            cluster_sizes(&c.labels)
        );
        assert_eq!(
            labels, c.labels,
            "run {} event {}: label numbers",
            c.run, c.event
        );
    }
    println!(
        "{} tie-sensitive clouds ({}..{} points): identical labels to native scikit-learn",
        fx.clouds.len(),
        fx.clouds.iter().map(|c| c.labels.len()).min().unwrap(),
        fx.clouds.iter().map(|c| c.labels.len()).max().unwrap()
    );
}

/// `numpy_argsort` reproduces numpy's (unstable, AVX-512) argsort on arrays full of ties, from
/// the bitonic-network sizes to the partitioned ones.
#[test]
fn numpy_argsort_matches_numpy() {
    let fx = tie_fixtures();
    let mut unstable = 0;
    for case in &fx.argsort {
        let n = case.values.len();
        assert_eq!(
            numpy_argsort_vec(&case.values),
            case.argsort,
            "{n} values: permutation differs from numpy's"
        );
        let mut stable: Vec<usize> = (0..n).collect();
        stable.sort_by(|&a, &b| case.values[a].total_cmp(&case.values[b]));
        assert_eq!(stable != case.argsort, case.stable_differs);
        unstable += usize::from(case.stable_differs);
    }
    assert!(unstable > fx.argsort.len() / 2);
    println!(
        "argsort: {} arrays identical to numpy's ({unstable} not stable-sorted)",
        fx.argsort.len()
    );
}

#[test]
fn lof_matches_sklearn() {
    let fx = fixtures();
    let (mut cases, mut points, mut outliers, mut worst) = (0, 0, 0, 0.0f64);
    for case in &fx.lof {
        let pts: Vec<[f64; 3]> = case
            .indices
            .iter()
            .map(|&i| fx.events[case.event][i])
            .collect();
        let scores = lof_scores(&pts, case.n_neighbors).unwrap();
        let got: Vec<usize> = (0..pts.len()).filter(|&i| scores[i] > 1.5).collect();
        assert_eq!(
            got,
            case.outliers,
            "event {} ({} points, k = {}): outlier sets differ",
            case.event,
            pts.len(),
            case.n_neighbors
        );
        for (a, b) in scores.iter().zip(&case.scores) {
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
            assert!(close(*a, *b, 1e-9), "score {a} vs {b}");
        }
        cases += 1;
        points += pts.len();
        outliers += got.len();
    }
    println!(
        "LOF: {cases} cases, {points} points, {outliers} outliers, identical outlier sets; worst relative score difference {worst:.2e}"
    );
}

#[test]
fn smoothing_spline_matches_scipy() {
    let fx = fixtures();
    let mut worst = 0.0f64;
    for case in &fx.spline {
        let s = SmoothingSpline::fit(&case.x, &case.y, case.lam)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        for (t, v) in case.t.iter().zip(&case.values) {
            let got = s.eval(*t);
            worst = worst.max((got - v).abs() / v.abs().max(1.0));
            assert!(close(got, *v, 1e-6), "{} at {t}: {got} vs {v}", case.name);
        }
    }
    println!(
        "splines: {} cases, worst relative difference {worst:.2e}",
        fx.spline.len()
    );
}

#[test]
fn circle_fit_matches_numpy() {
    let fx = fixtures();
    let (mut worst, mut max_cond, mut bit_identical) = (0.0f64, 0.0f64, true);
    for case in &fx.circle {
        max_cond = max_cond.max(case.cond.unwrap_or(0.0));
        let c = least_squares_circle(&case.x, &case.y);
        let got = [c.cx, c.cy, c.radius, c.residual];
        assert_eq!(case.fit.len(), 4);
        for (g, e) in got.iter().zip(&case.fit) {
            if e.is_nan() {
                assert!(g.is_nan(), "{}: expected NaN, got {g}", case.name);
            } else {
                worst = worst.max((g - e).abs() / e.abs().max(1.0));
                assert!(close(*g, *e, 1e-9), "{}: {g} vs {e}", case.name);
                bit_identical &= g.to_bits() == e.to_bits();
            }
        }
    }
    println!(
        "circles: {} cases (largest condition number {max_cond:.1e}), worst relative difference {worst:.2e}, bit-identical: {bit_identical}",
        fx.circle.len()
    );
}

#[test]
fn full_chain_on_fixture_clouds() {
    let fx = fixtures();
    let config = ClusterConfig::default();
    let mut n_clusters = 0;
    for (e, pts) in fx.events.iter().enumerate() {
        let cloud: Vec<CloudRow> = pts
            .iter()
            .enumerate()
            .map(|(i, p)| cloud_row(p, i))
            .collect();
        let res = cluster_event(&cloud, &config).unwrap();
        assert_eq!(res.labels.len(), cloud.len());
        for c in &res.clusters {
            assert!(c.label >= 0);
            assert!(
                c.data.windows(2).all(|w| w[0][2] <= w[1][2]),
                "event {e}: unsorted"
            );
            for row in &c.data {
                assert!(cloud.iter().any(|r| r[0] == row[0]
                    && r[1] == row[1]
                    && r[2] == row[2]
                    && r[4] == row[3]
                    && r[7] == row[4]));
            }
        }
        n_clusters += res.clusters.len();
    }
    println!(
        "full chain: {} clusters over {} events",
        n_clusters,
        fx.events.len()
    );
}

/// Writes a Pointcloud-layout file with the given clouds (event id -> rows).
fn write_pointcloud(path: &Path, min_event: i64, max_event: i64, clouds: &[(i64, Vec<CloudRow>)]) {
    let file = hdf5::File::create(path).unwrap();
    let g = file.create_group("cloud").unwrap();
    g.new_attr::<i64>()
        .create("min_event")
        .unwrap()
        .write_scalar(&min_event)
        .unwrap();
    g.new_attr::<i64>()
        .create("max_event")
        .unwrap()
        .write_scalar(&max_event)
        .unwrap();
    for (id, rows) in clouds {
        let arr = Array2::from_shape_vec((rows.len(), 8), rows.iter().flatten().copied().collect())
            .unwrap();
        let ds = g
            .new_dataset_builder()
            .with_data(&arr)
            .create(format!("cloud_{id}").as_str())
            .unwrap();
        ds.new_attr::<i64>()
            .create("orig_run")
            .unwrap()
            .write_scalar(&7i64)
            .unwrap();
        ds.new_attr::<i64>()
            .create("orig_event")
            .unwrap()
            .write_scalar(&(id + 1000))
            .unwrap();
        for (k, v) in [
            ("ic_amplitude", 12.5),
            ("ic_integral", 99.0),
            ("ic_centroid", 1200.25),
            ("ic_multiplicity", 1.0),
        ] {
            ds.new_attr::<f64>()
                .create(k)
                .unwrap()
                .write_scalar(&v)
                .unwrap();
        }
    }
}

fn run_phase(dir: &Path, input: &Path, config: ClusterConfig) -> PathBuf {
    let phase = ClusterPhase::from_config("Cluster", config).unwrap();
    let ws = Workspace::new(dir, dir, "Cluster");
    let sink = spyral_core::context::NullSink;
    let ctx = RunContext::new(3, 42, &ws, &sink);
    let payload = PhaseResult::new(3).with_artifact("pointcloud", input);
    let out = spyral_core::Phase::run(&phase, &payload, &ctx).unwrap();
    assert!(out.successful);
    out.artifact("cluster").unwrap()
}

fn attr_i64(loc: &hdf5::Location, name: &str) -> i64 {
    loc.attr(name).unwrap().read_scalar::<i64>().unwrap()
}

#[test]
fn phase_writes_spyral_layout() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("run_0003_pointcloud.h5");
    let to_rows = |pts: &Vec<[f64; 3]>| -> Vec<CloudRow> {
        pts.iter()
            .enumerate()
            .map(|(i, p)| cloud_row(p, i))
            .collect()
    };
    let mut unsorted = to_rows(&fx.events[1]);
    unsorted.swap(3, 10);
    let clouds = vec![
        (10, to_rows(&fx.events[0])),
        (11, Vec::new()),
        (12, to_rows(&fx.events[2])),
        (14, unsorted),
        (15, to_rows(&fx.events[3])[..20].to_vec()),
    ];
    write_pointcloud(&input, 10, 15, &clouds);
    let config = ClusterConfig::default();
    let out = run_phase(dir.path(), &input, config.clone());
    assert_eq!(out, dir.path().join("Cluster/run_0003.h5"));

    let f = hdf5::File::open(&out).unwrap();
    let root = f.group("cluster").unwrap();
    assert_eq!(attr_i64(&root, "min_event"), 10);
    assert_eq!(attr_i64(&root, "max_event"), 15);
    let mut names = root.member_names().unwrap();
    names.sort();
    assert_eq!(names, ["event_10", "event_11", "event_12", "event_15"]);
    for (id, rows) in [
        (10, &clouds[0].1),
        (11, &clouds[1].1),
        (12, &clouds[2].1),
        (15, &clouds[4].1),
    ] {
        let ev = root.group(&format!("event_{id}")).unwrap();
        let expected = cluster_event(rows, &config).unwrap();
        let n = attr_i64(&ev, "nclusters");
        assert_eq!(n as usize, expected.clusters.len());
        assert_eq!(attr_i64(&ev, "orig_run"), 7);
        assert_eq!(attr_i64(&ev, "orig_event"), id + 1000);
        for (k, v) in [
            ("ic_amplitude", 12.5),
            ("ic_integral", 99.0),
            ("ic_centroid", 1200.25),
            ("ic_multiplicity", 1.0),
        ] {
            assert_eq!(ev.attr(k).unwrap().read_scalar::<f64>().unwrap(), v);
        }
        if rows.len() < 50 {
            assert_eq!(n, 0, "event {id}: below min_cloud_size");
        }
        for (k, c) in expected.clusters.iter().enumerate() {
            let g = ev.group(&format!("cluster_{k}")).unwrap();
            assert_eq!(attr_i64(&g, "label"), c.label);
            assert_eq!(attr_i64(&g, "direction"), c.direction.code());
            let ds = g.dataset("cloud").unwrap();
            assert_eq!(ds.shape(), vec![c.data.len(), 5]);
            let data = ds.read_2d::<f64>().unwrap();
            for (row, exp) in data.outer_iter().zip(&c.data) {
                assert_eq!(row.to_vec(), exp.to_vec());
            }
        }
    }
    let ev10 = root.group("event_10").unwrap();
    assert!(attr_i64(&ev10, "nclusters") >= 1);
    // No partial file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("Cluster"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["run_0003.h5"]);
    // The phase rejects tripclust configurations.
    let bad: ClusterConfig = spyral_core::config::parse("Cluster", r#"{"tripclust": {}}"#).unwrap();
    assert!(ClusterPhase::from_config("Cluster", bad).is_err());
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn phase_timing() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bench_pointcloud.h5");
    let clouds: Vec<(i64, Vec<CloudRow>)> = fx
        .bench
        .iter()
        .enumerate()
        .map(|(e, pts)| {
            (
                e as i64,
                pts.iter()
                    .enumerate()
                    .map(|(i, p)| cloud_row(p, i))
                    .collect(),
            )
        })
        .collect();
    write_pointcloud(&input, 0, clouds.len() as i64 - 1, &clouds);
    let config = ClusterConfig::default();
    let points: usize = clouds.iter().map(|c| c.1.len()).sum();
    let clusters: usize = clouds
        .iter()
        .map(|c| cluster_event(&c.1, &config).unwrap().clusters.len())
        .sum();
    let n = clouds.len() as f64;
    let reps = 20;
    let t = std::time::Instant::now();
    for _ in 0..reps {
        run_phase(dir.path(), &input, config.clone());
    }
    let phase_ms = t.elapsed().as_secs_f64() * 1e3 / (reps as f64 * n);
    let t = std::time::Instant::now();
    for _ in 0..reps {
        for c in &clouds {
            std::hint::black_box(cluster_event(&c.1, &config).unwrap());
        }
    }
    let algo_ms = t.elapsed().as_secs_f64() * 1e3 / (reps as f64 * n);
    println!(
        "bench: {} events, {:.1} points/event, {:.2} clusters/event; phase {:.3} ms/event ({:.0} events/s), algorithm only {:.3} ms/event",
        clouds.len(),
        points as f64 / n,
        clusters as f64 / n,
        phase_ms,
        1e3 / phase_ms,
        algo_ms
    );
}

/// One cloud of the parity report written by `fixtures/hdbscan/sklearn_hdbscan.py --report`.
#[derive(Deserialize)]
struct ReportCloud {
    run: i64,
    event: i64,
    /// x, y, z rows, flattened.
    #[serde(deserialize_with = "floats")]
    xyz: Vec<f64>,
    min_cluster_size: usize,
    /// Native scikit-learn on the machine that wrote the report.
    labels: Vec<i64>,
    /// scikit-learn with a stable sort of the MST edges.
    labels_stable: Vec<i64>,
    /// Native scikit-learn with numpy's AVX-512 kernels disabled.
    labels_avx2: Option<Vec<i64>>,
    /// Native scikit-learn with numpy's AVX-512 and AVX2 kernels disabled.
    labels_baseline: Option<Vec<i64>>,
}

#[derive(Deserialize)]
struct ReportParams {
    min_points: usize,
    cluster_selection_epsilon: f64,
}

#[derive(Deserialize)]
struct Report {
    versions: HashMap<String, serde_json::Value>,
    params: ReportParams,
    clouds: Vec<ReportCloud>,
}

/// Sizes of the non-noise clusters, largest first.
fn cluster_sizes(labels: &[i64]) -> Vec<usize> {
    let mut count: HashMap<i64, usize> = HashMap::new();
    for &l in labels.iter().filter(|&&l| l >= 0) {
        *count.entry(l).or_default() += 1;
    }
    let mut sizes: Vec<usize> = count.into_values().collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes
}

/// Agreement of one labelling with a reference over many clouds.
#[derive(Default)]
struct Agreement {
    clouds: usize,
    count_differs: usize,
    sizes_differ: usize,
    partition_differs: usize,
    labels_differ: usize,
    ari_sum: f64,
}

impl Agreement {
    fn add(&mut self, ours: &[i64], reference: &[i64]) -> bool {
        let (a, b) = (cluster_sizes(ours), cluster_sizes(reference));
        self.clouds += 1;
        self.count_differs += usize::from(a.len() != b.len());
        self.sizes_differ += usize::from(a != b);
        let partition = same_partition(ours, reference);
        self.partition_differs += usize::from(!partition);
        self.labels_differ += usize::from(ours != reference);
        self.ari_sum += adjusted_rand_index(ours, reference);
        partition
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what}: {} clouds; cluster count differs in {}, cluster sizes in {}, partition in {}, labels in {}; mean ARI {:.5}",
            self.clouds,
            self.count_differs,
            self.sizes_differ,
            self.partition_differs,
            self.labels_differ,
            self.ari_sum / self.clouds.max(1) as f64
        )
    }
}

/// The parity report on realistic clouds: our HDBSCAN against native scikit-learn (and the
/// variants recorded beside it) on every cloud of a report file. Make one with
/// `fixtures/hdbscan/sklearn_hdbscan.py --report FILE` (see its header), then
/// `HDBSCAN_REPORT=FILE cargo test --release -p spyral-phases --test cluster_parity -- --ignored
/// hdbscan_report --nocapture`.
#[test]
#[ignore = "needs HDBSCAN_REPORT=<report.json> from fixtures/hdbscan/sklearn_hdbscan.py"]
fn hdbscan_report() {
    let path = std::env::var("HDBSCAN_REPORT").expect("set HDBSCAN_REPORT to a report file");
    let text = std::fs::read_to_string(&path).expect("read the report");
    let report: Report = serde_json::from_str(&text).expect("parse the report");
    println!("reference: {:?}", report.versions);
    let mut native = Agreement::default();
    let mut stable = Agreement::default();
    let mut avx2 = Agreement::default();
    let mut baseline = Agreement::default();
    let mut sk_avx2 = Agreement::default();
    for c in &report.clouds {
        let pts: Vec<CloudRow> = c
            .xyz
            .chunks_exact(3)
            .enumerate()
            .map(|(i, p)| cloud_row(&[p[0], p[1], p[2]], i))
            .collect();
        let h = Hdbscan {
            min_cluster_size: c.min_cluster_size,
            min_samples: report.params.min_points,
            cluster_selection_epsilon: report.params.cluster_selection_epsilon,
        };
        let ours = h.fit(&hdbscan_features(&pts)).unwrap();
        if !native.add(&ours, &c.labels) {
            println!(
                "run {} event {} ({} points): ours {:?}, scikit-learn {:?}",
                c.run,
                c.event,
                pts.len(),
                cluster_sizes(&ours),
                cluster_sizes(&c.labels)
            );
        }
        stable.add(&ours, &c.labels_stable);
        if let Some(l) = &c.labels_avx2 {
            avx2.add(&ours, l);
            sk_avx2.add(l, &c.labels);
        }
        if let Some(l) = &c.labels_baseline {
            baseline.add(&ours, l);
        }
    }
    println!("{}", native.line("ours vs native scikit-learn"));
    println!(
        "{}",
        stable.line("ours vs scikit-learn with stable edge sort")
    );
    if avx2.clouds > 0 {
        println!("{}", avx2.line("ours vs scikit-learn without AVX-512"));
        println!("{}", baseline.line("ours vs scikit-learn without AVX2"));
        println!(
            "{}",
            sk_avx2.line("scikit-learn without AVX-512 vs with AVX-512")
        );
    }
}
