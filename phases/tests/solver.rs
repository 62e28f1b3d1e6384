//! Tests of the InterpSolver phase: the trajectory mesh against an independent scipy
//! integration (fixture made by `fixtures/solver/make_fixtures.py`), energy loss against the
//! physics module's range, `.npy` headers against numpy's, mesh reuse and invalidation, fits of
//! synthetic tracks sampled from the mesh, and the whole phase through a shared segment.
//!
//! Benchmarks (release build, ignored by default):
//! `cargo test --release -p spyral-phases --test solver -- --ignored --nocapture bench_`.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde_json::{json, Value};
use spyral_core::abi_stable::{
    sabi_trait::TD_Opaque,
    sabi_types::RMut,
    std_types::{RErr, ROk, RResult, RSlice, RSliceMut, RStr, RString, RVec},
};
use spyral_core::shared::{SegmentAllocator, SegmentAllocator_TO, SegmentInfo};
use spyral_core::{
    context::NullSink, ElementType, Phase, PhaseError, PhaseFactory, PhaseResult, RunContext,
    SharedAllocator, SharedSegment, Workspace,
};
use spyral_data::physics::{GasTarget, Nucleus};
use spyral_data::schemas::{
    ESTIMATION_FLOAT_COLUMNS, ESTIMATION_INT_COLUMNS, SOLVER_FLOAT_COLUMNS, SOLVER_INT_COLUMNS,
};
use spyral_data::table::Table;
use spyral_phases::solver::interp::{CachedInterpolator, MeshGrid};
use spyral_phases::solver::mesh::{self, MeshParameters, StopReason, TrackModel};
use spyral_phases::solver::ode::Dopri5;
use spyral_phases::solver::{
    npy, DistanceMode, FitMethod, FitOutcome, FitSettings, Guess, InterpSolverPhase, MeshView,
    SolverConfig, TrackFitter,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/solver")
        .join(name)
}

fn deuterium() -> GasTarget {
    GasTarget::from_json_str(r#"{"compound": [[1, 2, 2]], "pressure(Torr)": 300}"#).unwrap()
}

fn proton() -> Nucleus {
    Nucleus::new(1, 1).unwrap()
}

fn default_params() -> MeshParameters {
    MeshParameters {
        particle: proton(),
        gas: deuterium(),
        pressure_text: "300".into(),
        magnetic_field: 2.85,
        electric_field: 45000.0,
        n_time_steps: 1000,
        ke_min: 0.1,
        ke_max: 70.0,
        ke_bins: 350,
        polar_min: 2.0,
        polar_max: 88.0,
        polar_bins: 166,
        energy_loss: true,
        threads: 0,
    }
}

/// A small mesh for fits: 1-8 MeV in 15 nodes, 20-80 deg in 25 nodes, 300 time steps.
fn small_params() -> MeshParameters {
    MeshParameters {
        n_time_steps: 300,
        ke_min: 1.0,
        ke_max: 8.0,
        ke_bins: 15,
        polar_min: 20.0,
        polar_max: 80.0,
        polar_bins: 25,
        ..default_params()
    }
}

fn settings(method: FitMethod, distance: DistanceMode) -> FitSettings {
    FitSettings {
        method,
        distance,
        fit_vertex_rho: true,
        fit_vertex_phi: true,
        fit_azimuthal: true,
        beam_region_radius_m: 0.025,
        detector_length_m: 1.0,
        sigma_z_m: 1000.0 / 550.0 * 0.001 * 0.5,
    }
}

// ---------------------------------------------------------------------------------------------
// .npy format

#[test]
fn npy_header_is_byte_identical_to_numpys() {
    for shape in [
        vec![5u64],
        vec![2, 3],
        vec![60, 3, 3, 3],
        vec![1000, 3, 350, 166],
        vec![10000, 3, 400, 170],
    ] {
        let name = format!(
            "npy_header_{}.bin",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x")
        );
        let want = std::fs::read(fixture(&name)).unwrap();
        assert_eq!(npy::f64_header(&shape), want, "{name}");
    }
    // A file numpy wrote reads back.
    let v = mesh::read_mesh(&fixture("small.npy"), &[2, 3, 2, 2]).unwrap();
    assert_eq!(v, (0..24).map(f64::from).collect::<Vec<_>>());
    assert!(mesh::read_mesh(&fixture("small.npy"), &[2, 3, 2, 3]).is_err());
}

/// If python3 with numpy is installed, numpy loads a mesh we wrote.
#[test]
fn numpy_loads_our_mesh_file() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("python3 with numpy is not available: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = MeshParameters {
        n_time_steps: 20,
        ke_bins: 3,
        polar_bins: 4,
        ke_min: 1.0,
        ke_max: 3.0,
        ..small_params()
    };
    let path = dir.path().join("m.npy");
    mesh::generate(&p, &path).unwrap();
    let data = mesh::read_mesh(&path, &p.shape()).unwrap();
    let script = format!(
        "import numpy as np; a = np.load({:?}); assert a.shape == (20, 3, 3, 4) and a.dtype == np.float64; print(repr(float(a[19, 2, 1, 3])))",
        path.to_str().unwrap()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(v, data[((19 * 3 + 2) * 3 + 1) * 4 + 3]);
}

// ---------------------------------------------------------------------------------------------
// Mesh generation

#[test]
fn lorentz_mesh_matches_scipy() {
    let fx: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("lorentz_mesh.json")).unwrap())
            .unwrap();
    let f = |k: &str| fx[k].as_f64().unwrap();
    let u = |k: &str| fx[k].as_u64().unwrap() as usize;
    assert!(
        (f("mass_mev") - proton().mass_mev).abs() < 1e-9,
        "the fixture uses another proton mass"
    );
    let p = MeshParameters {
        magnetic_field: f("magnetic_field"),
        electric_field: f("electric_field"),
        n_time_steps: u("n_time_steps"),
        ke_min: f("ke_min"),
        ke_max: f("ke_max"),
        ke_bins: u("ke_bins"),
        polar_min: f("polar_min"),
        polar_max: f("polar_max"),
        polar_bins: u("polar_bins"),
        energy_loss: false,
        ..default_params()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lorentz.npy");
    let report = mesh::generate(&p, &path).unwrap();
    assert!(
        (report.t_max / f("t_max") - 1.0).abs() < 1e-9,
        "t_max {} vs {}",
        report.t_max,
        f("t_max")
    );
    let ours = mesh::read_mesh(&path, &p.shape()).unwrap();
    let want: Vec<f64> = fx["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(ours.len(), want.len());
    let worst = ours
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let scale = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
    println!("Lorentz mesh vs scipy DOP853 (rtol 1e-12): max |difference| = {worst:.3e} m (largest coordinate {scale:.3} m)");
    assert!(worst < 2e-5, "max difference {worst} m");
}

#[test]
fn energy_loss_stops_tracks_at_the_physics_range() {
    let gas = deuterium();
    let table = mesh::energy_loss_table(&proton(), &gas).unwrap();
    let p = MeshParameters {
        electric_field: 0.0,
        ..small_params()
    };
    let model = TrackModel::new(&p).unwrap();
    let ode = Dopri5::new(mesh::RTOL, mesh::ATOL);
    for (ke, polar_deg) in [(1.0, 30.0), (2.0, 60.0), (0.5, 85.0)] {
        let t_end = 2e-6;
        let times: Vec<f64> = (1..=40000).map(|k| t_end * k as f64 / 40000.0).collect();
        let mut out = vec![[0.0; 3]; times.len()];
        let r = model
            .track(
                &ode,
                ke,
                f64::to_radians(polar_deg),
                t_end,
                &times,
                &mut out,
            )
            .unwrap();
        assert_eq!(r.reason, StopReason::Stopped, "KE {ke}: {r:?}");
        let mut path = out[0].iter().map(|v| v * v).sum::<f64>().sqrt();
        for w in out[..r.samples].windows(2) {
            path += ((w[1][0] - w[0][0]).powi(2)
                + (w[1][1] - w[0][1]).powi(2)
                + (w[1][2] - w[0][2]).powi(2))
            .sqrt();
        }
        let want = table.range_mm(ke) * 0.001 - mesh::STOP_RANGE_M;
        println!("KE {ke} MeV, polar {polar_deg}: path {path:.5} m, range - 1 mm = {want:.5} m");
        assert!((path / want - 1.0).abs() < 2e-3, "path {path} vs {want}");
        // Without energy loss the same node goes on (it leaves the volume or runs out of time).
        let free = TrackModel::new(&MeshParameters {
            energy_loss: false,
            ..p.clone()
        })
        .unwrap();
        let r2 = free
            .track(
                &ode,
                ke,
                f64::to_radians(polar_deg),
                t_end,
                &times,
                &mut out,
            )
            .unwrap();
        assert_ne!(r2.reason, StopReason::Stopped);
    }
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn mesh_is_reused_only_when_its_parameters_match() {
    let dir = tempfile::tempdir().unwrap();
    let p = MeshParameters {
        n_time_steps: 20,
        ke_bins: 4,
        polar_bins: 4,
        ..small_params()
    };
    let a = mesh::ensure_mesh(&p, dir.path()).unwrap();
    assert!(!a.reused);
    assert_eq!(a.npy_path.file_name().unwrap(), "1H_in_2H2_300Torr.npy");
    assert_eq!(a.meta_path.file_name().unwrap(), "1H_in_2H2_300Torr.json");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(&a.meta_path).unwrap()).unwrap();
    for key in [
        "particle",
        "gas",
        "bfield",
        "efield",
        "time_steps",
        "ke_min",
        "ke_max",
        "ke_bins",
        "polar_min",
        "polar_max",
        "polar_bins",
        "shape",
        "dtype",
    ] {
        assert!(meta.get(key).is_some(), "metadata lack `{key}`");
    }
    assert_eq!(meta["shape"], json!([20, 3, 4, 4]));
    assert_eq!(meta["particle"], "1H");
    let t0 = mtime(&a.npy_path);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let b = mesh::ensure_mesh(&p, dir.path()).unwrap();
    assert!(b.reused);
    assert_eq!(
        mtime(&b.npy_path),
        t0,
        "a reused mesh must not be rewritten"
    );

    // Any parameter change regenerates.
    let changes: Vec<MeshParameters> = vec![
        MeshParameters {
            ke_bins: 5,
            ..p.clone()
        },
        MeshParameters {
            magnetic_field: 3.0,
            ..p.clone()
        },
        MeshParameters {
            polar_max: 70.0,
            ..p.clone()
        },
        MeshParameters {
            n_time_steps: 21,
            ..p.clone()
        },
        MeshParameters {
            energy_loss: false,
            ..p.clone()
        },
    ];
    let mut last = t0;
    for c in &changes {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let r = mesh::ensure_mesh(c, dir.path()).unwrap();
        assert!(!r.reused, "{c:?} should regenerate");
        assert_ne!(mtime(&r.npy_path), last);
        last = mtime(&r.npy_path);
    }
    // A truncated file regenerates too, and no temporary file is left behind.
    let r = mesh::ensure_mesh(&p, dir.path()).unwrap();
    assert!(!r.reused);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&r.npy_path)
        .unwrap();
    f.set_len(200).unwrap();
    assert!(!mesh::ensure_mesh(&p, dir.path()).unwrap().reused);
    assert!(mesh::ensure_mesh(&p, dir.path()).unwrap().reused);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// ---------------------------------------------------------------------------------------------
// The interpolator against Spyral's

/// `MeshGrid::Spyral` against Python Spyral 1.1.2's own `BilinearInterpolator`s, built by its
/// `create_interpolator_from_array` on a mesh from its own `generate_track_mesh`
/// (`fixtures/solver/interp_spyral.json`, made by `make_interp_fixture.py` there): inside the
/// cells, on its node positions, in the last cell of each axis (its edge formulas), exactly at
/// each maximum (its read one node past the axis) and one ulp outside (NaN there, refused here).
/// Every value is identical to the bit (0.0 and -0.0 aside), through both the view and the
/// cached interpolator the fit uses; the detector-frame trajectory (numpy's rotation) within
/// 1e-15 m.
#[test]
fn spyral_grid_reproduces_spyrals_interpolator() {
    // Floats are stored as exact decimal strings (serde_json may misround JSON numbers).
    let exact = |v: &Value| v.as_str().map(|t| t.parse::<f64>().unwrap());
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("interp_spyral.json")).unwrap())
            .unwrap();
    let m = &doc["mesh"];
    let u = |k: &str| m[k].as_u64().unwrap() as usize;
    let f = |k: &str| m[k].as_f64().unwrap();
    let data: Vec<f64> = m["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| exact(v).unwrap())
        .collect();
    let nt = u("time_steps");
    let view = MeshView::new(
        &data,
        nt,
        u("ke_bins"),
        u("polar_bins"),
        (f("ke_min"), f("ke_max")),
        (f("polar_min"), f("polar_max")),
    )
    .unwrap();
    assert_eq!(view.grid(), MeshGrid::Spyral);
    let mut cache = CachedInterpolator::new(view);
    let (mut out, mut cached) = (Vec::new(), Vec::new());
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for p in doc["points"].as_array().unwrap() {
        let kind = p["kind"].as_str().unwrap();
        let (polar, ke) = (exact(&p["polar"]).unwrap(), exact(&p["ke"]).unwrap());
        let want: Vec<Option<f64>> = p["values"].as_array().unwrap().iter().map(exact).collect();
        assert_eq!(want.len(), nt * 3);
        *kinds.entry(kind.to_string()).or_default() += 1;
        let got = view.trajectory(ke, polar, &mut out);
        let got_cached = cache.trajectory_at([0.0; 3], polar, 0.0, ke, &mut cached);
        if want.iter().all(Option::is_none) {
            assert!(
                got.is_err() && got_cached.is_err(),
                "{kind} ({polar}, {ke}): not refused"
            );
            continue;
        }
        got.unwrap_or_else(|e| panic!("{kind} ({polar}, {ke}): {e}"));
        got_cached.unwrap();
        for (t, (p, w)) in out.iter().zip(want.chunks(3)).enumerate() {
            for c in 0..3 {
                let w = w[c].unwrap();
                assert!(
                    p[c] == w,
                    "{kind} (polar {polar}, KE {ke}), t {t}, xyz {c}: {} vs Spyral {w}",
                    p[c]
                );
                // The cache drops the constant tail; azimuth 0 and vertex 0 change nothing.
                let q = cached[t.min(cached.len() - 1)][c];
                assert!(q == w, "{kind} cached, t {t}, xyz {c}: {q} vs {w}");
            }
        }
    }
    println!("identical to Spyral's interpolator: {kinds:?}");
    for kind in [
        "inside",
        "node",
        "last polar cell",
        "last KE cell",
        "last cells",
        "polar max",
        "KE max",
        "outside",
    ] {
        assert!(kinds.get(kind).copied().unwrap_or(0) > 0, "no {kind} point");
    }
    let tr = &doc["trajectory"];
    let vertex: Vec<f64> = tr["vertex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| exact(v).unwrap())
        .collect();
    let num = |k: &str| exact(&tr[k]).unwrap();
    view.trajectory_at(
        [vertex[0], vertex[1], vertex[2]],
        num("polar"),
        num("azimuthal"),
        num("ke"),
        &mut out,
    )
    .unwrap();
    let want = tr["values"].as_array().unwrap();
    assert_eq!(want.len(), out.len() * 3);
    for (p, w) in out.iter().flatten().zip(want) {
        let w = exact(w).unwrap();
        assert!((p - w).abs() <= 1e-15, "{p} vs {w}");
    }
}

/// The two grids on the same mesh: at a generation node `exact` returns the node's track, while
/// `spyral` returns it at the node's Spyral position `min + i (max - min)/bins`, i.e. Spyral's
/// polar for the track computed at θ_i is lower by (θ_i − θmin)/bins.
#[test]
fn exact_grid_puts_nodes_where_the_mesh_was_computed() {
    let (p, data) = small_mesh_data();
    let spyral = view_of(p, data);
    let exact = spyral.with_grid(MeshGrid::Exact);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (i, j) = (6, 13);
    let ke = mesh::linspace_at(p.ke_min, p.ke_max, p.ke_bins, i);
    let th = mesh::linspace_at(p.polar_min, p.polar_max, p.polar_bins, j);
    exact.trajectory(ke, th.to_radians(), &mut a).unwrap();
    let ke_s = p.ke_min + i as f64 * (p.ke_max - p.ke_min) / p.ke_bins as f64;
    let th_s = p.polar_min + j as f64 * (p.polar_max - p.polar_min) / p.polar_bins as f64;
    spyral.trajectory(ke_s, th_s.to_radians(), &mut b).unwrap();
    let plane = p.ke_bins * p.polar_bins;
    for (t, (x, y)) in a.iter().zip(&b).enumerate() {
        for c in 0..3 {
            let node = data[(t * 3 + c) * plane + i * p.polar_bins + j];
            assert!((x[c] - node).abs() < 1e-12, "exact, t {t}");
            assert!((y[c] - node).abs() < 1e-12, "spyral, t {t}");
        }
    }
    assert!(((th - th_s) - (th - p.polar_min) / p.polar_bins as f64).abs() < 1e-9);
}

// ---------------------------------------------------------------------------------------------
// Fits

/// Data points along the mesh's own trajectory (inside the detector), with Gaussian noise of
/// `sigma_mm`, as cluster rows `[x, y, z, integral, scale]` in mm.
fn synthetic_cloud(
    view: &MeshView<'_>,
    truth: &Truth,
    sigma_mm: f64,
    n: usize,
    seed: u64,
) -> Array2<f64> {
    let mut traj = Vec::new();
    view.trajectory_at(
        truth.vertex,
        truth.polar,
        truth.azimuthal,
        truth.ke,
        &mut traj,
    )
    .unwrap();
    traj.dedup();
    let inside: Vec<[f64; 3]> = traj
        .into_iter()
        .filter(|p| p[2] >= 0.0 && p[2] <= 1.0 && p[0].hypot(p[1]) < 0.29)
        .collect();
    assert!(
        inside.len() >= 20,
        "only {} trajectory samples inside",
        inside.len()
    );
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut gauss = || {
        let u1: f64 = rng.random::<f64>().max(1e-300);
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    // Points evenly spaced in path length along the sample polyline (as pads see a track).
    let mut arc = vec![0.0];
    for w in inside.windows(2) {
        let d = ((w[1][0] - w[0][0]).powi(2)
            + (w[1][1] - w[0][1]).powi(2)
            + (w[1][2] - w[0][2]).powi(2))
        .sqrt();
        arc.push(arc.last().unwrap() + d);
    }
    let total = *arc.last().unwrap();
    let mut rows = Vec::new();
    for k in 0..n {
        let target = total * k as f64 / (n - 1) as f64;
        let i = arc
            .partition_point(|a| *a < target)
            .clamp(1, inside.len() - 1)
            - 1;
        let seg = arc[i + 1] - arc[i];
        let f = if seg > 0.0 {
            ((target - arc[i]) / seg).clamp(0.0, 1.0)
        } else {
            0.0
        };
        for (a, b) in inside[i].iter().zip(&inside[i + 1]) {
            let v = (a * (1.0 - f) + b * f) * 1000.0;
            rows.push(v + sigma_mm * gauss());
        }
        rows.push(100.0);
        rows.push(0.5);
    }
    Array2::from_shape_vec((n, 5), rows).unwrap()
}

#[derive(Debug, Clone, Copy)]
struct Truth {
    ke: f64,
    polar: f64,
    azimuthal: f64,
    vertex: [f64; 3],
}

fn small_mesh_data() -> &'static (MeshParameters, Vec<f64>) {
    static MESH: std::sync::OnceLock<(MeshParameters, Vec<f64>)> = std::sync::OnceLock::new();
    MESH.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = small_params();
        let path = dir.path().join("small.npy");
        mesh::generate(&p, &path).unwrap();
        let data = mesh::read_mesh(&path, &p.shape()).unwrap();
        (p, data)
    })
}

fn view_of(p: &MeshParameters, data: &'static [f64]) -> MeshView<'static> {
    MeshView::new(
        data,
        p.n_time_steps,
        p.ke_bins,
        p.polar_bins,
        (p.ke_min, p.ke_max),
        (p.polar_min, p.polar_max),
    )
    .unwrap()
}

#[test]
fn fits_recover_a_synthetic_track_better_than_the_guess() {
    let (p, data) = small_mesh_data();
    let view = view_of(p, data);
    let truth = Truth {
        ke: 4.3,
        polar: f64::to_radians(55.0),
        azimuthal: 1.2,
        vertex: [0.005, -0.003, 0.3],
    };
    let cloud = synthetic_cloud(&view, &truth, 1.0, 120, 11);
    let proton = proton();
    let guess = Guess {
        polar: truth.polar + f64::to_radians(3.0),
        azimuthal: truth.azimuthal + 0.08,
        brho: proton.brho_tm(truth.ke) * 1.06,
        vertex_mm: [
            truth.vertex[0] * 1000.0 + 6.0,
            truth.vertex[1] * 1000.0 - 4.0,
            truth.vertex[2] * 1000.0 + 15.0,
        ],
    };
    let guess_ke = proton.ke_from_brho(guess.brho);
    let gv = [
        guess.vertex_mm[0] * 0.001,
        guess.vertex_mm[1] * 0.001,
        guess.vertex_mm[2] * 0.001,
    ];
    let dist = |a: [f64; 3], b: [f64; 3]| {
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
    };
    for method in [FitMethod::Lbfgsb, FitMethod::Leastsq] {
        for mode in [DistanceMode::Points, DistanceMode::Segments] {
            let fitter = TrackFitter::new(view, proton, settings(method, mode));
            let t0 = Instant::now();
            let FitOutcome::Fitted(r) = fitter.fit(cloud.view(), &guess).unwrap() else {
                panic!("not fitted")
            };
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            println!(
                "{method:?}/{mode:?}: KE {:.4} (truth {:.4}, guess {:.4}) polar {:.3} deg (truth {:.3}, guess {:.3}) vertex off by {:.2} mm (guess {:.2} mm), azimuth {:.4} (truth {:.4}), redchisq {:.4e}, {} evals, converged {}, {ms:.1} ms (debug build)",
                r.ke, truth.ke, guess_ke,
                r.polar.to_degrees(), truth.polar.to_degrees(), guess.polar.to_degrees(),
                dist(r.vertex, truth.vertex) * 1e3, dist(gv, truth.vertex) * 1e3,
                r.azimuthal, truth.azimuthal, r.redchisq, r.evaluations, r.converged
            );
            let at_truth = fitter
                .objective(
                    cloud.view(),
                    truth.vertex,
                    truth.polar,
                    truth.azimuthal,
                    truth.ke,
                )
                .unwrap()
                .unwrap();
            let at_fit = fitter
                .objective(cloud.view(), r.vertex, r.polar, r.azimuthal, r.ke)
                .unwrap()
                .unwrap();
            println!("  vertex {:?} (truth {:?}); objective at the fit {at_fit:.6e}, at the truth {at_truth:.6e}", r.vertex, truth.vertex);
            // The minimiser reaches about as good an objective as the truth itself (noise and
            // the trajectory sampling move the optimum a little away from the truth). The
            // `points` objective has kinks wherever the nearest sample changes, where a local
            // minimiser may stop a little short: 1% of slack.
            let slack = match mode {
                DistanceMode::Points => 1.01,
                DistanceMode::Segments => 1.0001,
            };
            assert!(
                at_fit <= at_truth * slack,
                "{method:?}/{mode:?}: objective {at_fit} above the truth's {at_truth}"
            );
            assert!(
                (r.ke - truth.ke).abs() < 0.5 * (guess_ke - truth.ke).abs(),
                "{method:?}/{mode:?} KE"
            );
            assert!(
                (r.polar - truth.polar).abs() < 0.5 * (guess.polar - truth.polar).abs(),
                "{method:?}/{mode:?} polar"
            );
            assert!(
                dist(r.vertex, truth.vertex) < dist(gv, truth.vertex),
                "{method:?}/{mode:?} vertex"
            );
            assert!((r.ke - proton.ke_from_brho(r.brho)).abs() < 1e-12);
            match method {
                FitMethod::Lbfgsb => {
                    assert_eq!(r.sigma_brho, 1e6);
                    // lmfit's redchi of a scalar objective: the weighted mean distance squared.
                    assert!(
                        (r.redchisq / (at_fit * at_fit) - 1.0).abs() < 1e-9,
                        "redchisq {} vs objective {at_fit} squared",
                        r.redchisq
                    );
                }
                FitMethod::Leastsq => {
                    assert!(
                        r.sigma_brho > 0.0 && r.sigma_brho < 0.05,
                        "sigma brho {}",
                        r.sigma_brho
                    );
                    assert!(r.sigma_ke > 0.0 && r.sigma_polar > 0.0 && r.sigma_vertex[2] > 0.0);
                    assert!(
                        r.redchisq > 0.1 && r.redchisq < 10.0,
                        "redchisq {}",
                        r.redchisq
                    );
                }
            }
        }
    }
}

#[test]
fn guesses_outside_the_mesh_are_skipped_and_bad_clouds_rejected() {
    let (p, data) = small_mesh_data();
    let view = view_of(p, data);
    let fitter = TrackFitter::new(
        view,
        proton(),
        settings(FitMethod::Lbfgsb, DistanceMode::Points),
    );
    let cloud = Array2::from_shape_vec((10, 5), (0..50).map(f64::from).collect()).unwrap();
    let g = Guess {
        polar: 1.0,
        azimuthal: 0.0,
        brho: proton().brho_tm(20.0),
        vertex_mm: [0.0, 0.0, 100.0],
    };
    assert!(matches!(
        fitter.fit(cloud.view(), &g).unwrap(),
        FitOutcome::Skipped(spyral_phases::solver::Skip::KineticEnergy(_))
    ));
    let g = Guess {
        polar: f64::to_radians(85.0),
        brho: proton().brho_tm(3.0),
        ..g
    };
    assert!(matches!(
        fitter.fit(cloud.view(), &g).unwrap(),
        FitOutcome::Skipped(spyral_phases::solver::Skip::Polar(_))
    ));
    let g = Guess {
        polar: f64::NAN,
        ..g
    };
    assert!(matches!(
        fitter.fit(cloud.view(), &g).unwrap(),
        FitOutcome::Skipped(_)
    ));
    let narrow = Array2::<f64>::zeros((10, 3));
    let g = Guess { polar: 1.0, ..g };
    assert!(fitter.fit(narrow.view(), &g).is_err());
}

// ---------------------------------------------------------------------------------------------
// The phase, through a shared segment

/// A segment allocator backed by heap memory, standing in for the host's memfd allocator.
#[derive(Default)]
struct TestAllocator {
    segments: Vec<(SegmentInfo, Vec<u8>, usize)>,
}

impl SegmentAllocator for TestAllocator {
    fn allocate(
        &mut self,
        name: RStr<'_>,
        element: ElementType,
        shape: RSlice<'_, u64>,
    ) -> RResult<u32, PhaseError> {
        let len = shape.iter().product::<u64>() * element.size() as u64;
        let buf = vec![0u8; len as usize + 8];
        let offset = (8 - buf.as_ptr() as usize % 8) % 8;
        self.segments.push((
            SegmentInfo {
                phase: RString::from("InterpSolver"),
                name: RString::from(name.as_str()),
                element,
                shape: RVec::from(shape.as_slice().to_vec()),
                len,
            },
            buf,
            offset,
        ));
        ROk((self.segments.len() - 1) as u32)
    }
    fn buffer(&mut self, id: u32) -> RResult<RSliceMut<'_, u8>, PhaseError> {
        match self.segments.get_mut(id as usize) {
            Some((info, buf, off)) => {
                let len = info.len as usize;
                ROk(RSliceMut::from_mut_slice(&mut buf[*off..*off + len]))
            }
            None => RErr(PhaseError::internal("no such segment")),
        }
    }
    /// Reads the shared byte range into memory, as a worker's mapping would see it.
    fn share_file(
        &mut self,
        name: RStr<'_>,
        element: ElementType,
        shape: RSlice<'_, u64>,
        path: RStr<'_>,
        offset: u64,
    ) -> RResult<(), PhaseError> {
        let id = match self.allocate(name, element, shape) {
            ROk(id) => id,
            RErr(e) => return RErr(e),
        };
        let bytes = match std::fs::read(path.as_str()) {
            Ok(b) => b,
            Err(e) => return RErr(PhaseError::io(e.to_string())),
        };
        let (info, buf, off) = &mut self.segments[id as usize];
        let len = info.len as usize;
        let start = offset as usize;
        buf[*off..*off + len].copy_from_slice(&bytes[start..start + len]);
        ROk(())
    }
}

impl TestAllocator {
    /// What a worker would receive: read-only segments that live for the rest of the process.
    fn into_segments(self) -> Vec<SharedSegment<'static>> {
        self.segments
            .into_iter()
            .map(|(info, buf, off)| {
                let len = info.len as usize;
                let ptr = buf.as_ptr();
                let leaked: &'static [u8] = Box::leak(buf.into_boxed_slice());
                assert_eq!(leaked.as_ptr(), ptr);
                SharedSegment {
                    info: Box::leak(Box::new(info)),
                    bytes: RSlice::from_slice(&leaked[off..off + len]),
                }
            })
            .collect()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: Value,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let gas = root.join("gas.json");
    std::fs::write(&gas, r#"{"compound": [[1, 2, 2]], "pressure(Torr)": 300}"#).unwrap();
    let pid = root.join("pid.json");
    std::fs::write(&pid, r#"{"name": "protons", "vertices": [[0, 0], [5000, 0], [5000, 1.0], [0, 1.0], [0, 0]], "Z": 1, "A": 1}"#).unwrap();
    let p = small_params();
    let config = json!({
        "gas_data_path": gas,
        "particle_id_filename": pid,
        "n_time_steps": p.n_time_steps,
        "interp_ke_min": p.ke_min,
        "interp_ke_max": p.ke_max,
        "interp_ke_bins": p.ke_bins,
        "interp_polar_min": p.polar_min,
        "interp_polar_max": p.polar_max,
        "interp_polar_bins": p.polar_bins,
    });
    Setup {
        _dir: dir,
        root,
        config,
    }
}

fn make_phase(config: &Value) -> Result<InterpSolverPhase, PhaseError> {
    let cfg: SolverConfig = spyral_core::config::parse("InterpSolver", &config.to_string())?;
    InterpSolverPhase::from_config("InterpSolver", cfg)
}

/// Writes an Estimation parquet and a Cluster file with the given (guess, cloud, ic, dEdx) rows.
fn write_inputs(root: &Path, rows: &[(Guess, Array2<f64>, f64, f64)]) -> PhaseResult {
    let est_path = root.join("Estimation/run_0007.parquet");
    let cl_path = root.join("Cluster/run_0007.h5");
    std::fs::create_dir_all(cl_path.parent().unwrap()).unwrap();
    let mut t = Table::with_columns(&ESTIMATION_INT_COLUMNS, &ESTIMATION_FLOAT_COLUMNS);
    t.columns.push((
        "direction".into(),
        spyral_data::table::Column::I64(Vec::new()),
    ));
    let file = hdf5::File::create(&cl_path).unwrap();
    let top = file.create_group("cluster").unwrap();
    for (k, (g, cloud, ic, dedx)) in rows.iter().enumerate() {
        let event = 100 + k as i64;
        for (c, v) in ESTIMATION_INT_COLUMNS
            .iter()
            .zip([event, 0, 3, 7, event + 1000])
        {
            t.push_i64(c, v);
        }
        t.push_i64("direction", 0);
        let vals = [
            ("ic_amplitude", *ic),
            ("ic_centroid", 1.0),
            ("ic_integral", 1.0),
            ("ic_multiplicity", 1.0),
            ("vertex_x", g.vertex_mm[0]),
            ("vertex_y", g.vertex_mm[1]),
            ("vertex_z", g.vertex_mm[2]),
            ("center_x", 0.0),
            ("center_y", 0.0),
            ("center_z", 0.0),
            ("polar", g.polar),
            ("azimuthal", g.azimuthal),
            ("brho", g.brho),
            ("dEdx", *dedx),
            ("sqrt_dEdx", dedx.sqrt()),
            ("dE", 1.0),
            ("arclength", 1.0),
        ];
        for (c, v) in vals {
            t.push_f64(c, v);
        }
        let eg = top.create_group(&format!("event_{event}")).unwrap();
        let cg = eg.create_group("cluster_0").unwrap();
        cg.new_dataset_builder()
            .with_data(cloud)
            .create("cloud")
            .unwrap();
    }
    drop(top);
    file.close().unwrap();
    t.write_parquet(&est_path).unwrap();
    PhaseResult::new(7)
        .with_artifact("estimation", &est_path)
        .with_artifact("cluster", &cl_path)
}

fn read_output(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let r = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let names: Vec<String> = r
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut rows = Vec::new();
    for row in r.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        rows.push(
            row.get_column_iter()
                .map(|(_, f)| match f {
                    parquet::record::Field::Long(v) => *v as f64,
                    parquet::record::Field::Double(v) => *v,
                    other => panic!("unexpected {other}"),
                })
                .collect(),
        );
    }
    (names, rows)
}

#[test]
fn phase_runs_end_to_end_through_a_shared_segment() {
    let s = setup();
    let mut phase = make_phase(&s.config).unwrap();
    let ws = Workspace::new(&s.root, &s.root, "InterpSolver");
    phase.create_assets(&ws).unwrap();
    assert!(ws.asset_dir().join("1H_in_2H2_300Torr.npy").exists());

    let mut alloc = TestAllocator::default();
    {
        let mut to = SegmentAllocator_TO::from_ptr(RMut::new(&mut alloc), TD_Opaque);
        let mut shared = SharedAllocator::new(&mut to);
        phase.create_shared_data(&ws, &mut shared).unwrap();
    }
    assert_eq!(alloc.segments.len(), 1);
    assert_eq!(alloc.segments[0].0.name.as_str(), "mesh");
    assert_eq!(alloc.segments[0].0.shape.as_slice(), &[300, 3, 15, 25]);
    let segments = alloc.into_segments();

    // A worker: a fresh phase from the same config, attached to the segment.
    let mut worker = make_phase(&s.config).unwrap();
    worker.attach_shared(segments.clone()).unwrap();

    let (p, _) = small_mesh_data();
    let view = MeshView::new(
        segments[0].as_slice::<f64>().unwrap(),
        p.n_time_steps,
        p.ke_bins,
        p.polar_bins,
        (p.ke_min, p.ke_max),
        (p.polar_min, p.polar_max),
    )
    .unwrap();
    let truth = Truth {
        ke: 3.1,
        polar: f64::to_radians(40.0),
        azimuthal: 4.0,
        vertex: [-0.004, 0.002, 0.45],
    };
    let cloud = synthetic_cloud(&view, &truth, 1.0, 100, 5);
    let guess = Guess {
        polar: truth.polar - 0.04,
        azimuthal: truth.azimuthal + 0.05,
        brho: proton().brho_tm(truth.ke) * 0.95,
        vertex_mm: [-4.0, 8.0, 440.0],
    };
    let rows = vec![
        (guess, cloud.clone(), 1000.0, 500.0),  // fitted
        (guess, cloud.clone(), 2000.0, 500.0),  // IC outside the window
        (guess, cloud.clone(), 1000.0, 6000.0), // outside the PID polygon
        (
            Guess {
                polar: f64::to_radians(85.0),
                ..guess
            },
            cloud.clone(),
            1000.0,
            500.0,
        ), // outside the mesh
        (guess, cloud.clone(), -1.0, 500.0),    // no IC data
    ];
    let payload = write_inputs(&s.root, &rows);
    let sink = NullSink;
    let ctx = RunContext::new(7, 1, &ws, &sink);
    let result = worker.run(&payload, &ctx).unwrap();
    assert!(result.successful);
    let out = result.artifact("interp_solver").unwrap();
    assert_eq!(out, s.root.join("InterpSolver/run_0007_1H.parquet"));
    assert_eq!(
        worker
            .construct_artifact(&payload, &ws)
            .unwrap()
            .artifact("interp_solver")
            .unwrap(),
        out
    );
    let meta = result.metadata_map();
    assert_eq!(meta["rows"], 5);
    assert_eq!(meta["gated"], 2);
    assert_eq!(meta["fitted"], 1);
    assert_eq!(meta["skipped_outside_mesh"], 1);
    assert_eq!(meta["failed"], 0);

    let (names, table) = read_output(&out);
    let want: Vec<&str> = SOLVER_INT_COLUMNS
        .iter()
        .chain(SOLVER_FLOAT_COLUMNS.iter())
        .copied()
        .collect();
    assert_eq!(names, want);
    assert_eq!(table.len(), 1);
    let row = &table[0];
    let col = |n: &str| row[want.iter().position(|c| *c == n).unwrap()];
    assert_eq!(col("event"), 100.0);
    assert_eq!(col("orig_event"), 1100.0);
    assert_eq!(col("cluster_label"), 3.0);
    println!(
        "phase fit: KE {:.4} (truth {}), polar {:.3} deg, vertex z {:.4} m",
        col("ke"),
        truth.ke,
        col("polar").to_degrees(),
        col("vertex_z")
    );
    assert!((col("ke") - truth.ke).abs() < 0.1);
    assert!((col("polar") - truth.polar).abs() < 0.01);
    // The closest-point objective hardly constrains the vertex upstream along the track (the
    // trajectory may start earlier at no cost), so only "no worse than the guess" is asked here.
    assert!(
        (col("vertex_z") - truth.vertex[2]).abs()
            <= (guess.vertex_mm[2] * 1e-3 - truth.vertex[2]).abs() + 1e-3
    );

    // `mesh_grid: exact` reaches the fit: the cloud is the track of Spyral's grid at the truth,
    // i.e. the mesh's track of polar θmin + (θ − θmin)·bins/(bins − 1), which the exact grid
    // finds (the polar higher by (θ − θmin)/(bins − 1)).
    let mut cfg = s.config.clone();
    cfg["mesh_grid"] = json!("exact");
    let mut exact = make_phase(&cfg).unwrap();
    exact.attach_shared(segments.clone()).unwrap();
    let result = exact.run(&payload, &ctx).unwrap();
    let (_, table) = read_output(&result.artifact("interp_solver").unwrap());
    let polar_exact = table[0][want.iter().position(|c| *c == "polar").unwrap()];
    let shift = (polar_exact - col("polar")).to_degrees();
    let expected = (truth.polar.to_degrees() - p.polar_min) / (p.polar_bins - 1) as f64;
    println!("polar, exact grid − Spyral grid: {shift:.3} deg (expected {expected:.3})");
    assert!(
        (shift - expected).abs() < 0.25 * expected,
        "{shift} vs {expected}"
    );

    // Without the IC gate, the no-IC row (and the out-of-window one) are fitted too.
    let mut cfg = s.config.clone();
    cfg["ic_gate"] = json!(false);
    cfg["fit_method"] = json!("leastsq");
    let mut worker = make_phase(&cfg).unwrap();
    worker.attach_shared(segments).unwrap();
    let result = worker.run(&payload, &ctx).unwrap();
    assert_eq!(result.metadata_map()["gated"], 4);
    assert_eq!(result.metadata_map()["fitted"], 3);
    let (_, table) = read_output(&result.artifact("interp_solver").unwrap());
    assert_eq!(table.len(), 3);
}

#[test]
fn phase_without_a_segment_reads_the_mesh_file_and_gates_to_an_empty_table() {
    let s = setup();
    let mut phase = make_phase(&s.config).unwrap();
    let ws = Workspace::new(&s.root, &s.root, "InterpSolver");
    phase.create_assets(&ws).unwrap();
    phase.attach_shared(Vec::new()).unwrap();
    let (p, data) = small_mesh_data();
    let view = view_of(p, data);
    let truth = Truth {
        ke: 2.0,
        polar: 1.0,
        azimuthal: 0.5,
        vertex: [0.0, 0.0, 0.2],
    };
    let cloud = synthetic_cloud(&view, &truth, 0.5, 50, 3);
    let g = Guess {
        polar: 1.0,
        azimuthal: 0.5,
        brho: proton().brho_tm(2.0),
        vertex_mm: [0.0, 0.0, 200.0],
    };
    let payload = write_inputs(
        &s.root,
        &[(g, cloud.clone(), -1.0, 100.0), (g, cloud, -1.0, 200.0)],
    );
    let sink = NullSink;
    let ctx = RunContext::new(7, 1, &ws, &sink);
    let result = phase.run(&payload, &ctx).unwrap();
    assert!(result.successful);
    assert_eq!(result.metadata_map()["gated"], 0);
    let (names, table) = read_output(&result.artifact("interp_solver").unwrap());
    assert_eq!(names.len(), 20);
    assert!(table.is_empty());
    // A missing input is an error naming it.
    let bad = PhaseResult::new(7).with_artifact("estimation", s.root.join("nope.parquet"));
    let e = phase.run(&bad, &ctx).unwrap_err();
    assert!(e.message().contains("estimation"), "{}", e.message());
}

#[test]
fn config_errors_name_the_problem() {
    let e = make_phase(&json!({})).err().unwrap();
    assert!(
        e.message().contains("gas_data_path is required"),
        "{}",
        e.message()
    );
    let s = setup();
    let mut c = s.config.clone();
    c["particle_id_filename"] = Value::Null;
    assert!(make_phase(&c)
        .err()
        .unwrap()
        .message()
        .contains("particle_id_filename is required"));
    let mut c = s.config.clone();
    c["fit_method"] = json!("nelder-mead");
    let e = make_phase(&c).err().unwrap();
    assert!(e.message().contains("fit_method"), "{}", e.message());
    let mut c = s.config.clone();
    c["interp_ke_bins"] = json!(1);
    assert!(make_phase(&c).is_err());
    let mut c = s.config.clone();
    c["gas_data_path"] = json!(s.root.join("missing.json"));
    assert!(make_phase(&c)
        .err()
        .unwrap()
        .message()
        .contains("missing.json"));
    let mut c = s.config.clone();
    c["detector"] = json!({"magnetic_feld": 3.0});
    assert!(make_phase(&c).is_err());
}

#[test]
fn example_inputs_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let gas = GasTarget::from_file(root.join("examples/gas/deuterium_300torr.json")).unwrap();
    assert_eq!(gas.ugly_string(), "2H2");
    let pid = spyral_phases::solver::ParticleId::from_file(&root.join("examples/pid/proton.json"))
        .unwrap();
    assert_eq!(pid.nucleus.isotope_symbol(), "1H");
}

// ---------------------------------------------------------------------------------------------
// Benchmarks

/// CPU time of this process, all threads (s), from /proc/self/stat (clock ticks of 10 ms).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

/// CPU time of the calling thread (s), from /proc: wall time is unreliable on a shared machine.
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |ns| ns * 1e-9)
}

/// The default mesh (350 x 166 x 1000, 1.39 GB).
#[test]
#[ignore]
fn bench_default_mesh() {
    let dir = std::env::var("SOLVER_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dest = dir.join("bench_default_mesh.npy");
    let cpu0 = process_cpu_seconds();
    let r = mesh::generate(&default_params(), &dest).unwrap();
    println!(
        "default mesh: {:.2} s of CPU (all threads)",
        process_cpu_seconds() - cpu0
    );
    println!(
        "default mesh: {:.2} s total (pass 1 {:.2} s, pass 2 + writing {:.2} s) on {} threads; t_max {:.4e} s; steps {:?}",
        r.seconds[2], r.seconds[0], r.seconds[1], r.threads, r.t_max, r.steps
    );
    let _ = std::fs::remove_file(&dest);
}

/// Fits of synthetic tracks on the default mesh: milliseconds per fit.
#[test]
#[ignore]
fn bench_fits_on_default_mesh() {
    let dir = std::env::var("SOLVER_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dest = dir.join("bench_fit_mesh.npy");
    let p = default_params();
    mesh::generate(&p, &dest).unwrap();
    let data: &'static [f64] = Box::leak(
        mesh::read_mesh(&dest, &p.shape())
            .unwrap()
            .into_boxed_slice(),
    );
    let _ = std::fs::remove_file(&dest);
    let view = view_of(&p, data);
    let proton = proton();
    let mut rng = Pcg64::seed_from_u64(99);
    {
        // Cost of one objective evaluation's parts.
        let truth = Truth {
            ke: 4.0,
            polar: 1.0,
            azimuthal: 1.0,
            vertex: [0.0, 0.0, 0.3],
        };
        let cloud = synthetic_cloud(&view, &truth, 1.0, 180, 1);
        let pts: Vec<[f64; 3]> = cloud
            .outer_iter()
            .map(|r| [r[0] * 1e-3, r[1] * 1e-3, r[2] * 1e-3])
            .collect();
        let mut traj = Vec::new();
        let t0 = Instant::now();
        for k in 0..2000 {
            view.trajectory_at(
                truth.vertex,
                truth.polar + 1e-7 * k as f64,
                1.0,
                4.0,
                &mut traj,
            )
            .unwrap();
        }
        let t_interp = t0.elapsed().as_secs_f64() / 2000.0;
        let mut cached = spyral_phases::solver::interp::CachedInterpolator::new(view);
        let t0 = Instant::now();
        for k in 0..2000 {
            cached
                .trajectory_at(
                    truth.vertex,
                    truth.polar + 1e-7 * k as f64,
                    1.0,
                    4.0,
                    &mut traj,
                )
                .unwrap();
        }
        println!(
            "one trajectory: {:.1} us from the mesh, {:.1} us from the per-fit node cache ({} of {} samples kept)",
            t_interp * 1e6,
            t0.elapsed().as_secs_f64() / 2000.0 * 1e6,
            traj.len(),
            view.time_steps()
        );
        let mut out = vec![0.0; pts.len()];
        let mut sc = spyral_phases::solver::distance::DistanceScratch::default();
        for mode in [DistanceMode::Points, DistanceMode::Segments] {
            let t0 = Instant::now();
            for _ in 0..2000 {
                spyral_phases::solver::distance::nearest_distances(
                    &traj, &pts, mode, &mut sc, &mut out,
                );
            }
            println!(
                "distances ({mode:?}, 180 points): {:.1} us",
                t0.elapsed().as_secs_f64() / 2000.0 * 1e6
            );
        }
    }
    for method in [FitMethod::Lbfgsb, FitMethod::Leastsq] {
        for mode in [DistanceMode::Points, DistanceMode::Segments] {
            let fitter = TrackFitter::new(view, proton, settings(method, mode));
            let (mut total, mut n, mut evals, mut iters) = (0.0, 0usize, 0usize, 0usize);
            let (mut better, mut points) = (0usize, 0usize);
            let mut errs = [0.0f64; 3];
            for k in 0..100 {
                let truth = Truth {
                    ke: rng.random_range(1.0..8.0),
                    polar: f64::to_radians(rng.random_range(20.0..80.0)),
                    azimuthal: rng.random_range(0.5..5.5),
                    vertex: [
                        rng.random_range(-0.01..0.01),
                        rng.random_range(-0.01..0.01),
                        rng.random_range(0.1..0.8),
                    ],
                };
                let cloud = synthetic_cloud(&view, &truth, 1.0, rng.random_range(60..300), k);
                points += cloud.nrows();
                let guess = Guess {
                    polar: truth.polar + f64::to_radians(rng.random_range(-3.0..3.0)),
                    azimuthal: truth.azimuthal + rng.random_range(-0.1..0.1),
                    brho: proton.brho_tm(truth.ke) * rng.random_range(0.93..1.07),
                    vertex_mm: [
                        truth.vertex[0] * 1e3 + 3.0,
                        truth.vertex[1] * 1e3 - 3.0,
                        truth.vertex[2] * 1e3 + rng.random_range(-15.0..15.0),
                    ],
                };
                let t0 = thread_cpu_seconds();
                let out = fitter.fit(cloud.view(), &guess).unwrap();
                total += thread_cpu_seconds() - t0;
                if let FitOutcome::Fitted(r) = out {
                    n += 1;
                    evals += r.evaluations;
                    iters += r.iterations;
                    let gke = proton.ke_from_brho(guess.brho);
                    if (r.ke - truth.ke).abs() < (gke - truth.ke).abs()
                        && (r.polar - truth.polar).abs() < (guess.polar - truth.polar).abs()
                    {
                        better += 1;
                    }
                    errs[0] += (r.ke - truth.ke).abs() / truth.ke;
                    errs[1] += (r.polar - truth.polar).abs().to_degrees();
                    errs[2] += (r.vertex[2] - truth.vertex[2]).abs() * 1e3;
                }
            }
            println!(
                "{method:?}/{mode:?}: {:.2} ms (CPU) per fit, {:.0} evaluations and {:.0} iterations per fit, {:.0} points per track; KE and polar better than the guess in {better}/{n}; mean |dKE|/KE {:.4}, |dpolar| {:.3} deg, |dz| {:.2} mm",
                total * 1e3 / 100.0,
                evals as f64 / n as f64,
                iters as f64 / n as f64,
                points as f64 / 100.0,
                errs[0] / n as f64,
                errs[1] / n as f64,
                errs[2] / n as f64
            );
        }
    }
}
