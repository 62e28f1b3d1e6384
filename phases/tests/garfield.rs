//! The Garfield electron-drift correction (spyral-spec 3.1.6) on synthetic Garfield files:
//! straight drift (the correction vanishes), a uniform +5 mm radial shift (points move radially
//! by -5 mm), rho-dependent transverse and time offsets; grid shape and `.npy` round trip; the
//! Pointcloud phase's asset creation, lazy loading and configuration checks; and the correction
//! applied inside the point-cloud builder on simulated events.

use spyral_core::prelude::*;
use spyral_data::attpc::detector::DetectorParameters;
use spyral_data::attpc::padmap::PadMap;
use spyral_phases::garfield::{self, Corrector, GarfieldError, GRID_SHAPE};
use spyral_phases::pointcloud::{CloudBuilder, PointcloudConfig, PointcloudPhase};
use spyral_sim::{SimConfig, Simulator};
use std::path::{Path, PathBuf};

/// Drift speed of the synthetic files, mm/ns.
const V_DRIFT: f64 = 0.011;

/// Writes a Garfield-style table: for z = 30..1000 (98 steps) and initial rho = -270..270 (55
/// steps), final rho = initial + `shift`, transverse = `trans(rho_i)`, time = z / v + `dt(rho_i)`
/// (all lengths in cm, time in ns).
fn write_garfield(path: &Path, shift: f64, trans: impl Fn(f64) -> f64, dt: impl Fn(f64) -> f64) {
    let mut text = String::from("# x_i y_i x_f y_f z_f time\n");
    for c in 0..98 {
        let z = 30.0 + 10.0 * c as f64;
        for j in 0..55 {
            let rho = -270.0 + 10.0 * j as f64;
            text.push_str(&format!(
                "0.0 {} {} {} {} {}\n",
                rho / 10.0,
                z / 10.0,
                (rho + shift) / 10.0,
                trans(rho) / 10.0,
                z / V_DRIFT + dt(rho)
            ));
        }
    }
    std::fs::write(path, text).expect("write garfield file");
}

fn grid_for(dir: &Path, name: &str, shift: f64) -> (PathBuf, ndarray::Array3<f64>) {
    let path = dir.join(name);
    write_garfield(&path, shift, |_| 0.0, |_| 0.0);
    let grid = garfield::generate(&path, &DetectorParameters::default()).expect("generate");
    (path, grid)
}

fn sample_points() -> Vec<[f64; 8]> {
    let mut pts = Vec::new();
    for (k, &(rho, phi)) in [(30.0, 0.3), (100.0, 2.0), (180.5, -1.2), (240.0, 3.0)]
        .iter()
        .enumerate()
    {
        for &z in &[12.5, 400.0, 987.0] {
            let f64k = k as f64;
            pts.push([
                rho * f64::cos(phi),
                rho * f64::sin(phi),
                z,
                100.0 + f64k,
                2000.0,
                f64k,
                300.0,
                1.0,
            ]);
        }
    }
    pts
}

#[test]
fn straight_drift_gives_no_correction() {
    let dir = tempfile::tempdir().unwrap();
    let (_, grid) = grid_for(dir.path(), "straight.txt", 0.0);
    assert_eq!(grid.shape(), GRID_SHAPE);
    let worst = grid.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(worst < 1e-9, "largest correction {worst}");
    let corrector = Corrector::new(grid).unwrap();
    for p in sample_points() {
        let mut q = p;
        corrector.correct_point(&mut q);
        for k in 0..8 {
            assert!((q[k] - p[k]).abs() < 1e-9, "{p:?} -> {q:?}");
        }
    }
}

#[test]
fn uniform_radial_shift_moves_points_inward() {
    let dir = tempfile::tempdir().unwrap();
    let (_, grid) = grid_for(dir.path(), "shift5.txt", 5.0);
    assert_eq!(grid.shape(), GRID_SHAPE);
    // Final rho = initial + 5: every level up to 270 has a contour at initial rho = r - 5.
    for r in 0..=270 {
        for zi in (0..=1000).step_by(7).chain([1000]) {
            let v = grid[[r, zi, 0]];
            assert!((v + 5.0).abs() < 1e-9, "grid[{r}, {zi}, 0] = {v}");
            assert!(grid[[r, zi, 1]].abs() < 1e-9 && grid[[r, zi, 2]].abs() < 1e-9);
        }
    }
    let corrector = Corrector::new(grid).unwrap();
    for p in sample_points() {
        let mut q = p;
        corrector.correct_point(&mut q);
        let (rho, rho_q) = (p[0].hypot(p[1]), q[0].hypot(q[1]));
        assert!((rho_q - (rho - 5.0)).abs() < 1e-9, "rho {rho} -> {rho_q}");
        let dphi = (q[1].atan2(q[0]) - p[1].atan2(p[0])).abs();
        assert!(dphi < 1e-12, "phi moved by {dphi}");
        assert!((q[2] - p[2]).abs() < 1e-9);
        assert_eq!(&q[3..], &p[3..]);
    }
    // Outside the grid: NaN coordinates (the phase drops the row).
    for bad in [[300.0, 0.0, 500.0], [10.0, 0.0, -1.0], [10.0, 0.0, 1000.5]] {
        let mut q = [bad[0], bad[1], bad[2], 1.0, 1.0, 1.0, 1.0, 1.0];
        corrector.correct_point(&mut q);
        assert!(q[..3].iter().all(|v| v.is_nan()), "{bad:?} -> {q:?}");
    }
}

#[test]
fn transverse_and_time_components_follow_the_initial_rho() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drift.txt");
    // Transverse 2 mm everywhere; the time lags by 0.02 ns/mm^2 * rho^2 behind the axis.
    write_garfield(&path, 0.0, |_| 2.0, |rho| 0.02 * rho * rho);
    let det = DetectorParameters::default();
    let grid = garfield::generate(&path, &det).unwrap();
    let to_mm = det.detector_length / (det.window_time_bucket - det.micromegas_time_bucket)
        * det.get_frequency
        * 0.001;
    for r in [0usize, 7, 55, 150, 269] {
        let rf = r as f64;
        for zi in [0usize, 333, 1000] {
            assert!(grid[[r, zi, 0]].abs() < 1e-9);
            assert!((grid[[r, zi, 1]] - 2.0).abs() < 1e-9);
            // Linear interpolation of a parabola over 10 mm bins: error <= 0.02 * 25 ns.
            let want = 0.02 * rf * rf * to_mm;
            let got = grid[[r, zi, 2]];
            assert!(
                (got - want).abs() <= 0.02 * 25.0 * to_mm + 1e-12,
                "r {r}: {got} vs {want}"
            );
        }
    }
    let corrector = Corrector::new(grid).unwrap();
    let (rho, z) = (120.0, 500.0);
    let mut q = [rho, 0.0, z, 0.0, 0.0, 0.0, 0.0, 0.0];
    corrector.correct_point(&mut q);
    let want_r = rho.hypot(2.0);
    let want_phi = 2.0f64.atan2(rho);
    assert!((q[0].hypot(q[1]) - want_r).abs() < 1e-9);
    assert!((q[1].atan2(q[0]) - want_phi).abs() < 1e-12);
    let z_cor = 0.02 * rho * rho * to_mm;
    assert!((q[2] - (z - z_cor)).abs() < 0.02 * 25.0 * to_mm + 1e-9);
}

#[test]
fn grid_round_trips_through_npy_and_bad_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_, grid) = grid_for(dir.path(), "shift.txt", 5.0);
    let npy = dir.path().join("grid.npy");
    garfield::write_grid(&grid, &npy).unwrap();
    assert_eq!(garfield::read_grid(&npy).unwrap(), grid);

    // Too few rows, a non-number, a wrong column count, a wrong grid file: typed errors.
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "0 0 0 0 0 0\n").unwrap();
    let det = DetectorParameters::default();
    assert!(matches!(
        garfield::generate(&short, &det),
        Err(GarfieldError::RowCount { rows: 1, .. })
    ));
    std::fs::write(&short, "0 0 0 x 0 0\n").unwrap();
    assert!(matches!(
        garfield::generate(&short, &det),
        Err(GarfieldError::Parse { line: 1, .. })
    ));
    std::fs::write(&short, "0 0 0 0 0\n").unwrap();
    assert!(matches!(
        garfield::generate(&short, &det),
        Err(GarfieldError::Parse { line: 1, .. })
    ));
    assert!(matches!(
        garfield::generate(&dir.path().join("absent.txt"), &det),
        Err(GarfieldError::Io { .. })
    ));
    let wrong = dir.path().join("wrong.npy");
    garfield::write_grid(&ndarray::Array3::zeros((2, 3, 3)), &wrong).unwrap();
    assert!(matches!(
        Corrector::load(&wrong),
        Err(GarfieldError::BadGrid { .. })
    ));
}

fn config_with(garfield: Option<PathBuf>) -> PointcloudConfig {
    let mut config = PointcloudConfig::default();
    config.detector.do_garfield_correction = true;
    config.detector.garfield_file_path = garfield;
    config
}

#[test]
fn missing_garfield_file_is_a_config_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no_such_garfield.txt");
    let err = match PointcloudPhase::from_config("Pointcloud", config_with(Some(missing.clone()))) {
        Ok(_) => panic!("a missing Garfield file was accepted"),
        Err(e) => e,
    };
    assert_eq!(err.kind, PhaseErrorKind::Config);
    assert!(
        err.message().contains(&missing.display().to_string()),
        "{}",
        err.message()
    );
    let err = match PointcloudPhase::from_config("Pointcloud", config_with(None)) {
        Ok(_) => panic!("an unset Garfield file was accepted"),
        Err(e) => e,
    };
    assert_eq!(err.kind, PhaseErrorKind::Config);
    assert!(err.message().contains("garfield_file_path"));

    // Also caught if the file disappears between configuration and create_assets.
    let path = dir.path().join("vanishing.txt");
    write_garfield(&path, 0.0, |_| 0.0, |_| 0.0);
    let mut phase =
        PointcloudPhase::from_config("Pointcloud", config_with(Some(path.clone()))).expect("phase");
    std::fs::remove_file(&path).unwrap();
    let ws = Workspace::new(dir.path(), dir.path(), "Pointcloud");
    let err = phase.create_assets(&ws).expect_err("missing file");
    assert_eq!(err.kind, PhaseErrorKind::Config);
    assert!(err.message().contains(&path.display().to_string()));
}

#[test]
fn phase_creates_reuses_and_loads_the_asset() {
    let dir = tempfile::tempdir().unwrap();
    let garfield_path = dir.path().join("e_drift_sim.txt");
    write_garfield(&garfield_path, 5.0, |_| 0.0, |_| 0.0);
    let root = dir.path().join("ws");
    let ws = Workspace::new(&root, dir.path(), "Pointcloud");
    let mut phase =
        PointcloudPhase::from_config("Pointcloud", config_with(Some(garfield_path.clone())))
            .expect("phase");
    phase.create_assets(&ws).expect("create_assets");
    let asset = root.join("Pointcloud_assets").join("e_drift_sim.npy");
    assert!(asset.is_file());
    assert_eq!(phase.garfield_asset_path(&ws), Some(asset.clone()));
    assert!(std::fs::read_dir(root.join("Pointcloud_assets"))
        .unwrap()
        .all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")));
    let grid = garfield::read_grid(&asset).unwrap();
    assert_eq!(grid.shape(), GRID_SHAPE);

    // Present: reused, not regenerated (a straight-drift file now would give other values).
    write_garfield(&garfield_path, 0.0, |_| 0.0, |_| 0.0);
    phase.create_assets(&ws).expect("reuse");
    assert_eq!(garfield::read_grid(&asset).unwrap(), grid);

    // The worker side: loaded once, then the same corrector.
    let worker =
        PointcloudPhase::from_config("Pointcloud", config_with(Some(garfield_path.clone())))
            .expect("phase");
    let c1 = worker.electron_corrector(&ws).unwrap().expect("enabled");
    let c2 = worker.electron_corrector(&ws).unwrap().expect("enabled");
    assert!(std::ptr::eq(c1, c2));
    let mut q = [0.0, 150.0, 300.0, 1.0, 2.0, 3.0, 4.0, 5.0];
    c1.correct_point(&mut q);
    assert!((q[0].hypot(q[1]) - 145.0).abs() < 1e-9);

    // Disabled: no asset, no corrector.
    let off = PointcloudPhase::from_config("Pointcloud", PointcloudConfig::default()).unwrap();
    assert!(off.garfield_asset_path(&ws).is_none());
    assert!(off.electron_corrector(&ws).unwrap().is_none());
}

#[test]
fn builder_applies_the_correction_to_simulated_events() {
    let dir = tempfile::tempdir().unwrap();
    let (_, straight) = grid_for(dir.path(), "straight.txt", 0.0);
    let (_, shifted) = grid_for(dir.path(), "shift.txt", 5.0);
    let (straight, shifted) = (
        Corrector::new(straight).unwrap(),
        Corrector::new(shifted).unwrap(),
    );
    let mut sim_config = SimConfig::default();
    sim_config.electronics.noise = false;
    sim_config.seed = 23;
    let pads = PadMap::builtin();
    let sim = Simulator::new(sim_config, &pads).expect("simulator");
    let config = PointcloudConfig::default();
    let mut plain = CloudBuilder::new(&config, &pads, 5).unwrap();
    let mut same = CloudBuilder::new(&config, &pads, 5)
        .unwrap()
        .with_correction(Some(&straight));
    let mut moved = CloudBuilder::new(&config, &pads, 5)
        .unwrap()
        .with_correction(Some(&shifted));
    let mut checked = 0;
    for id in 0..6 {
        let ev = sim.simulate_event(id);
        let reference = plain.cloud(ev.get.view()).unwrap();
        let a = same.cloud(ev.get.view()).unwrap();
        let b = moved.cloud(ev.get.view()).unwrap();
        // Only points inside the grid survive the correction.
        let inside: Vec<_> = reference
            .outer_iter()
            .filter(|r| r[0].hypot(r[1]) <= 275.0 && (0.0..=1000.0).contains(&r[2]))
            .collect();
        assert_eq!(a.nrows(), inside.len(), "event {id}");
        assert_eq!(b.nrows(), inside.len(), "event {id}");
        for ((r, pa), pb) in inside.iter().zip(a.outer_iter()).zip(b.outer_iter()) {
            for k in 0..8 {
                assert!((r[k] - pa[k]).abs() < 1e-9, "event {id}: {r} vs {pa}");
            }
            let rho = r[0].hypot(r[1]);
            assert!((pb[0].hypot(pb[1]) - (rho - 5.0)).abs() < 1e-9);
            assert!((pb[2] - r[2]).abs() < 1e-9);
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} points checked");
}

#[test]
fn z_dependent_shift_is_followed_along_the_contour() {
    // Final rho = initial + 0.01 * z_garfield: the contour of level r runs diagonally through
    // the cells, and the correction at output z is -0.01 * zg with zg = (1 - z/1000) * 970 + 30.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tilted.txt");
    let mut text = String::new();
    for c in 0..98 {
        let z = 30.0 + 10.0 * c as f64;
        for j in 0..55 {
            let rho = -270.0 + 10.0 * j as f64;
            let fin = rho + 0.01 * z;
            text.push_str(&format!(
                "0 {} {} {} 0 {}\n",
                rho / 10.0,
                z / 10.0,
                fin / 10.0,
                z / V_DRIFT
            ));
        }
    }
    std::fs::write(&path, text).unwrap();
    let grid = garfield::generate(&path, &DetectorParameters::default()).unwrap();
    for r in [0usize, 3, 100, 250] {
        for zi in [0usize, 1, 250, 517, 999, 1000] {
            let zg = (1.0 - zi as f64 / 1000.0) * 970.0 + 30.0;
            let got = grid[[r, zi, 0]];
            assert!((got + 0.01 * zg).abs() < 1e-9, "r {r} z {zi}: {got}");
        }
    }
}
