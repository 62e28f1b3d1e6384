//! Integration tests of the physics layer (masses, gas targets, stopping powers) and of the run
//! simulator (event generation, transport, electronics, determinism, speed).
//!
//! Stopping-power reference values were computed with catima 1.98 (pycatima, default configuration)
//! for the same gases (AME2020 atomic masses, Spyral's ideal-gas density at 300 Torr).

use std::time::Instant;

use ndarray::Array2;
use spyral_data::physics::{mass_excess_kev, EnergyLossTable, GasTarget, Nucleus, PhysicsError};
use spyral_sim::{
    read_truth, write_truth, GasSpec, GridPadLookup, PadLookup, ProductConfig, ProductsConfig,
    ReactionConfig, SimConfig, SimError, Simulator, StopReason, GET_COLUMNS,
};

/// (gas, projectile, KE MeV, catima dE/dx MeV cm²/g, catima range g/cm²).
const CATIMA: &[(&str, &str, f64, f64, f64)] = &[
    ("H2", "p", 0.5, 1.15054e+03, 2.86675e-04),
    ("H2", "p", 1.0, 6.74187e+02, 8.78944e-04),
    ("H2", "p", 2.0, 3.93384e+02, 2.90266e-03),
    ("H2", "p", 5.0, 1.87383e+02, 1.48055e-02),
    ("H2", "p", 10.0, 1.04620e+02, 5.21859e-02),
    ("H2", "p", 20.0, 5.71920e+01, 1.87944e-01),
    ("H2", "p", 50.0, 2.65029e+01, 1.02685e+00),
    ("H2", "p", 100.0, 1.53141e+01, 3.62708e+00),
    ("H2", "d", 0.5, 1.89927e+03, 2.24332e-04),
    ("H2", "d", 1.0, 1.15015e+03, 5.73381e-04),
    ("H2", "d", 2.0, 6.73952e+02, 1.75833e-03),
    ("H2", "d", 5.0, 3.29377e+02, 8.59809e-03),
    ("H2", "d", 10.0, 1.87310e+02, 2.96219e-02),
    ("H2", "d", 20.0, 1.04578e+02, 1.04412e-01),
    ("H2", "d", 50.0, 4.71422e+01, 5.69705e-01),
    ("H2", "d", 100.0, 2.64926e+01, 2.05451e+00),
    ("H2", "a", 0.5, 7.36025e+03, 9.70673e-05),
    ("H2", "a", 1.0, 6.54961e+03, 1.67737e-04),
    ("H2", "a", 2.0, 4.45220e+03, 3.55245e-04),
    ("H2", "a", 5.0, 2.28304e+03, 1.35675e-03),
    ("H2", "a", 10.0, 1.32835e+03, 4.34552e-03),
    ("H2", "a", 20.0, 7.49793e+02, 1.48159e-02),
    ("H2", "a", 50.0, 3.42846e+02, 7.89173e-02),
    ("H2", "a", 100.0, 1.87544e+02, 2.86234e-01),
    ("D2", "p", 0.5, 5.75403e+02, 5.73776e-04),
    ("D2", "p", 1.0, 3.37183e+02, 1.75802e-03),
    ("D2", "p", 2.0, 1.96752e+02, 5.80429e-03),
    ("D2", "p", 5.0, 9.37235e+01, 2.96022e-02),
    ("D2", "p", 10.0, 5.23289e+01, 1.04337e-01),
    ("D2", "p", 20.0, 2.86066e+01, 3.75752e-01),
    ("D2", "p", 50.0, 1.32567e+01, 2.05291e+00),
    ("D2", "p", 100.0, 7.66037e+00, 7.25120e+00),
    ("D2", "d", 0.5, 9.49781e+02, 4.49714e-04),
    ("D2", "d", 1.0, 5.75198e+02, 1.14768e-03),
    ("D2", "d", 2.0, 3.37063e+02, 3.51701e-03),
    ("D2", "d", 5.0, 1.64739e+02, 1.71926e-02),
    ("D2", "d", 10.0, 9.36865e+01, 5.92267e-02),
    ("D2", "d", 20.0, 5.23075e+01, 2.08756e-01),
    ("D2", "d", 50.0, 2.35798e+01, 1.13900e+00),
    ("D2", "d", 100.0, 1.32515e+01, 4.10748e+00),
    ("D2", "a", 0.5, 3.67918e+03, 1.96607e-04),
    ("D2", "a", 1.0, 3.27522e+03, 3.37947e-04),
    ("D2", "a", 2.0, 2.22665e+03, 7.12886e-04),
    ("D2", "a", 5.0, 1.14188e+03, 2.71532e-03),
    ("D2", "a", 10.0, 6.64407e+02, 8.69085e-03),
    ("D2", "a", 20.0, 3.75033e+02, 2.96242e-02),
    ("D2", "a", 50.0, 1.71489e+02, 1.57779e-01),
    ("D2", "a", 100.0, 9.38087e+01, 5.72251e-01),
    ("He", "p", 0.5, 4.67525e+02, 7.85204e-04),
    ("He", "p", 1.0, 2.85618e+02, 2.20513e-03),
    ("He", "p", 2.0, 1.71924e+02, 6.88920e-03),
    ("He", "p", 5.0, 8.33850e+01, 3.37566e-02),
    ("He", "p", 10.0, 4.64550e+01, 1.17794e-01),
    ("He", "p", 20.0, 2.54708e+01, 4.23588e-01),
    ("He", "p", 50.0, 1.21256e+01, 2.26896e+00),
    ("He", "p", 100.0, 7.05694e+00, 7.92713e+00),
    ("He", "d", 0.5, 7.07557e+02, 6.85796e-04),
    ("He", "d", 1.0, 4.67384e+02, 1.57016e-03),
    ("He", "d", 2.0, 2.85526e+02, 4.41091e-03),
    ("He", "d", 5.0, 1.44963e+02, 2.01433e-02),
    ("He", "d", 10.0, 8.33530e+01, 6.75369e-02),
    ("He", "d", 20.0, 4.64361e+01, 2.35680e-01),
    ("He", "d", 50.0, 2.11734e+01, 1.28061e+00),
    ("He", "d", 100.0, 1.21210e+01, 4.53967e+00),
    ("He", "a", 0.5, 2.39350e+03, 3.18649e-04),
    ("He", "a", 1.0, 2.44282e+03, 5.19826e-04),
    ("He", "a", 2.0, 1.81021e+03, 9.94895e-04),
    ("He", "a", 5.0, 9.78592e+02, 3.37424e-03),
    ("He", "a", 10.0, 5.84807e+02, 1.02278e-02),
    ("He", "a", 20.0, 3.33694e+02, 3.38263e-02),
    ("He", "a", 50.0, 1.52030e+02, 1.78091e-01),
    ("He", "a", 100.0, 8.42690e+01, 6.43341e-01),
    ("CO2", "p", 0.5, 3.38255e+02, 1.10806e-03),
    ("CO2", "p", 1.0, 2.17257e+02, 3.01208e-03),
    ("CO2", "p", 2.0, 1.36830e+02, 9.00444e-03),
    ("CO2", "p", 5.0, 7.00460e+01, 4.16161e-02),
    ("CO2", "p", 10.0, 4.04662e+01, 1.39467e-01),
    ("CO2", "p", 20.0, 2.27765e+01, 4.84335e-01),
    ("CO2", "p", 50.0, 1.09193e+01, 2.54129e+00),
    ("CO2", "p", 100.0, 6.40752e+00, 8.79249e+00),
    ("CO2", "d", 0.5, 4.89733e+02, 9.67763e-04),
    ("CO2", "d", 1.0, 3.38176e+02, 2.21508e-03),
    ("CO2", "d", 2.0, 2.17199e+02, 6.02409e-03),
    ("CO2", "d", 5.0, 1.16982e+02, 2.59456e-02),
    ("CO2", "d", 10.0, 7.00218e+01, 8.32571e-02),
    ("CO2", "d", 20.0, 4.04511e+01, 2.79029e-01),
    ("CO2", "d", 50.0, 1.89701e+01, 1.45267e+00),
    ("CO2", "d", 100.0, 1.09153e+01, 5.08447e+00),
    ("CO2", "a", 0.5, 1.66504e+03, 4.40122e-04),
    ("CO2", "a", 1.0, 1.69128e+03, 7.31573e-04),
    ("CO2", "a", 2.0, 1.31054e+03, 1.40156e-03),
    ("CO2", "a", 5.0, 7.56274e+02, 4.55501e-03),
    ("CO2", "a", 10.0, 4.72357e+02, 1.31898e-02),
    ("CO2", "a", 20.0, 2.80490e+02, 4.17052e-02),
    ("CO2", "a", 50.0, 1.33934e+02, 2.08216e-01),
    ("CO2", "a", 100.0, 7.55234e+01, 7.29496e-01),
];

fn gas(name: &str) -> GasTarget {
    let json = match name {
        "H2" => r#"{"compound": [[1, 1, 2]], "pressure(Torr)": 300}"#,
        "D2" => r#"{"compound": [[1, 2, 2]], "pressure(Torr)": 300}"#,
        "He" => r#"{"compound": [[2, 4, 1]], "pressure(Torr)": 300}"#,
        "CO2" => r#"{"compound": [[6, 12, 1], [8, 16, 2]], "pressure(Torr)": 300}"#,
        _ => unreachable!("unknown test gas"),
    };
    GasTarget::from_json_str(json).expect("valid gas")
}

fn projectile(name: &str) -> Nucleus {
    Nucleus::from_symbol(name).expect("known projectile")
}

#[test]
fn stopping_power_matches_catima() {
    let mut worst_dedx: f64 = 0.0;
    let mut worst_range: f64 = 0.0;
    println!("gas proj  KE(MeV)  dedx(ours) dedx(catima)   diff  | range diff");
    for &(g, p, ke, cat_dedx, cat_range) in CATIMA {
        let table = EnergyLossTable::new(&projectile(p), &gas(g)).unwrap();
        let d = table.dedx(ke);
        let r = table.range_g_cm2(ke);
        let dd = d / cat_dedx - 1.0;
        let dr = r / cat_range - 1.0;
        println!(
            "{g:4} {p:2} {ke:8.1} {d:11.4} {cat_dedx:11.4} {:+7.2}% | {:+7.2}%",
            dd * 100.0,
            dr * 100.0
        );
        worst_dedx = worst_dedx.max(dd.abs());
        worst_range = worst_range.max(dr.abs());
    }
    println!(
        "worst |dE/dx| deviation {:.2}%, worst |range| deviation {:.2}%",
        worst_dedx * 100.0,
        worst_range * 100.0
    );
    assert!(
        worst_dedx < 0.05,
        "dE/dx deviates from catima by {:.2}%",
        worst_dedx * 100.0
    );
    assert!(
        worst_range < 0.05,
        "range deviates from catima by {:.2}%",
        worst_range * 100.0
    );
}

#[test]
fn beam_and_proton_reference_points() {
    // 16C at 184.131 MeV in D2 (catima: 1645.0 MeV cm2/g, range 0.06342 g/cm2).
    let t = EnergyLossTable::new(&projectile("16C"), &gas("D2")).unwrap();
    let d = t.dedx(184.131) / 1644.996 - 1.0;
    let r = t.range_g_cm2(184.131) / 0.063_425 - 1.0;
    println!(
        "16C 184.131 MeV in D2: dE/dx {:+.2}%, range {:+.2}% vs catima",
        d * 100.0,
        r * 100.0
    );
    assert!(d.abs() < 0.05 && r.abs() < 0.05);
    // Proton in H2 at 1, 10, 100 MeV (catima 674.19, 104.62, 15.314 MeV cm2/g; PSTAR gives similar).
    let t = EnergyLossTable::new(&projectile("p"), &gas("H2")).unwrap();
    for (ke, reference) in [(1.0, 674.19), (10.0, 104.62), (100.0, 15.314)] {
        let dev = t.dedx(ke) / reference - 1.0;
        assert!(
            dev.abs() < 0.05,
            "p in H2 at {ke} MeV: {:+.2}%",
            dev * 100.0
        );
    }
}

#[test]
fn range_is_monotonic_and_consistent() {
    for (p, g) in [
        ("p", "H2"),
        ("d", "D2"),
        ("alpha", "He"),
        ("alpha", "CO2"),
        ("16C", "D2"),
    ] {
        let t = EnergyLossTable::new(&projectile(p), &gas(g)).unwrap();
        let mut last = 0.0;
        let mut ke = 1e-3;
        while ke < 500.0 {
            let r = t.range_g_cm2(ke);
            assert!(r >= last, "{p} in {g}: range not monotonic at {ke} MeV");
            assert!(t.dedx(ke) > 0.0);
            last = r;
            ke *= 1.05;
        }
        // Energy after a path agrees with integrating dE/dx in small steps.
        let mut e = 20.0;
        let dx = 0.01; // mm
        for _ in 0..10_000 {
            e -= t.stopping_mev_per_mm(e) * dx;
        }
        let direct = t.ke_after_mm(20.0, 100.0);
        assert!(
            (direct - e).abs() < 1e-3 * 20.0,
            "{p} in {g}: {direct} vs {e}"
        );
    }
}

#[test]
fn mass_table_values() {
    let p = Nucleus::new(1, 1).unwrap();
    let d = Nucleus::new(1, 2).unwrap();
    let a = Nucleus::from_symbol("4He").unwrap();
    assert!((p.mass_mev - 938.272_09).abs() < 1e-3, "{}", p.mass_mev);
    assert!((d.mass_mev - 1_875.612_94).abs() < 1e-3, "{}", d.mass_mev);
    assert!((a.mass_mev - 3_727.379_41).abs() < 1e-3, "{}", a.mass_mev);
    assert!((mass_excess_kev(2, 4).unwrap() - 2424.916).abs() < 0.01);
    assert!((mass_excess_kev(6, 12).unwrap()).abs() < 1e-9);
    assert_eq!(a.isotope_symbol(), "4He");
    assert!(matches!(
        Nucleus::new(3, 20),
        Err(PhysicsError::UnknownIsotope { z: 3, a: 20 })
    ));
    assert!(Nucleus::from_symbol("16C").is_ok());
}

#[test]
fn gas_density_d2_300_torr() {
    let g = gas("D2");
    // rho = 4 * 300 / (62363.6 * 293) g/cm3
    assert!(
        (g.density_g_cm3() - 6.567_2e-5).abs() < 1e-8,
        "{}",
        g.density_g_cm3()
    );
    let mix = GasTarget::from_json_str(
        r#"{"components": [[[1, 1, 2]], [[6, 12, 1], [1, 1, 4]]], "volume_fractions": [0.5, 0.5], "pressure(Torr)": 300}"#,
    )
    .unwrap();
    let expected = (0.5 * 2.0 + 0.5 * 16.0) * 300.0 / (62_363.598 * 293.0);
    assert!((mix.density_g_cm3() - expected).abs() < 1e-12);
}

// ---------------------------------------------------------------------------------------------
// Simulator

/// A quiet, single-product configuration for geometry checks.
fn quiet_config(polar_deg: f64, ke: f64, vertex_z: f64) -> SimConfig {
    let mut cfg = SimConfig {
        seed: 11,
        ..SimConfig::default()
    };
    cfg.beam.ionize = false;
    cfg.beam.vertex_rho_sigma_mm = 0.0;
    cfg.beam.vertex_z_min_mm = vertex_z;
    cfg.beam.vertex_z_max_mm = vertex_z;
    cfg.reaction = ReactionConfig::Products(ProductsConfig {
        particles: vec![ProductConfig {
            species: "1H".into(),
            count: 1,
            ke_min_mev: ke,
            ke_max_mev: ke,
            polar_min_deg: polar_deg,
            polar_max_deg: polar_deg,
        }],
    });
    cfg.electronics.noise = false;
    cfg.frib.enabled = false;
    cfg
}

/// (pad, baseline-subtracted samples) of each trace.
fn traces(get: &Array2<i16>, baseline: f64) -> Vec<(u16, Vec<f64>)> {
    get.rows()
        .into_iter()
        .map(|r| {
            let pad = u16::try_from(r[4]).expect("pad id");
            (
                pad,
                r.iter().skip(5).map(|&v| f64::from(v) - baseline).collect(),
            )
        })
        .collect()
}

fn argmax(samples: &[f64]) -> (usize, f64) {
    samples
        .iter()
        .enumerate()
        .fold((0, f64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
}

fn distance_to_polyline(p: (f64, f64), pts: &[[f64; 3]]) -> (f64, usize) {
    let mut best = (f64::INFINITY, 0);
    for (i, w) in pts.windows(2).enumerate() {
        let (ax, ay, bx, by) = (w[0][0], w[0][1], w[1][0], w[1][1]);
        let (dx, dy) = (bx - ax, by - ay);
        let l2 = dx * dx + dy * dy;
        let t = if l2 > 0.0 {
            (((p.0 - ax) * dx + (p.1 - ay) * dy) / l2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let d = (p.0 - ax - t * dx).hypot(p.1 - ay - t * dy);
        if d < best.0 {
            best = (d, i);
        }
    }
    best
}

#[test]
fn noise_free_event_follows_the_truth_helix() {
    // 20 MeV at 60°: a helix of radius 198 mm that leaves the pad plane within one turn, so every pad
    // sees one piece of track.
    let sim = Simulator::new(quiet_config(60.0, 20.0, 300.0), GridPadLookup::attpc_like()).unwrap();
    let ev = sim.simulate_event(0);
    assert_eq!(ev.truth.particles.len(), 1);
    let truth = &ev.truth.particles[0];
    let track = sim.retrack(truth).unwrap();
    let mut pts: Vec<[f64; 3]> = vec![truth.vertex_mm];
    pts.extend(track.steps.iter().map(|s| s.end_mm));
    let pads = sim.pads();
    let baseline = sim.config().electronics.baseline_mean_adc;
    let tr = traces(&ev.get, baseline);
    assert!(tr.len() > 20, "only {} traces", tr.len());
    let det = &sim.config().detector;
    // Per pad: centre, collected signal (sum of samples) and z from the peak bucket.
    let pad_data: Vec<((f64, f64), f64, f64)> = tr
        .iter()
        .map(|(pad, samples)| {
            let q: f64 = samples.iter().sum();
            let (imax, _) = argmax(samples);
            (
                pads.pad_center(*pad).unwrap(),
                q,
                det.z_from_tb(imax as f64),
            )
        })
        .collect();
    let (mut wsum, mut dsum, mut zsum) = (0.0, 0.0, 0.0);
    for &(c, q, z_tb) in &pad_data {
        let (d, seg) = distance_to_polyline(c, &pts);
        let dz = (z_tb - pts[seg][2])
            .abs()
            .min((z_tb - pts[seg + 1][2]).abs());
        wsum += q;
        dsum += q * d;
        zsum += q * dz;
    }
    let mean_pad_d = dsum / wsum;
    let mean_dz = zsum / wsum;
    // Charge-weighted centroids of the pads within 8 mm of points every 10 mm along the track.
    let mut centroid_d = Vec::new();
    let mut along = 0.0;
    for w in pts.windows(2) {
        along += (w[1][0] - w[0][0]).hypot(w[1][1] - w[0][1]);
        if along < 10.0 || w[1][0].hypot(w[1][1]) > 250.0 {
            continue;
        }
        along = 0.0;
        let (mut sq, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for &(c, q, _) in &pad_data {
            if (c.0 - w[1][0]).hypot(c.1 - w[1][1]) < 8.0 {
                sq += q;
                sx += q * c.0;
                sy += q * c.1;
            }
        }
        if sq > 0.0 {
            centroid_d.push(distance_to_polyline((sx / sq, sy / sq), &pts).0);
        }
    }
    let mean_centroid = centroid_d.iter().sum::<f64>() / centroid_d.len() as f64;
    let worst_centroid = centroid_d.iter().copied().fold(0.0, f64::max);
    println!(
        "noise-free 20 MeV proton at 60 deg: {} traces; charge-weighted pad-centre distance to the helix {:.2} mm; \
         local charge centroids {:.2} mm on average (worst {:.2} mm, {} samples); |z(tb) - z_truth| {:.2} mm",
        tr.len(),
        mean_pad_d,
        mean_centroid,
        worst_centroid,
        centroid_d.len(),
        mean_dz
    );
    assert!(centroid_d.len() > 10);
    assert!(
        mean_centroid < 1.5,
        "charge centroids lie {mean_centroid:.2} mm from the helix"
    );
    assert!(
        worst_centroid < 4.0,
        "a charge centroid lies {worst_centroid:.2} mm from the helix"
    );
    assert!(
        mean_pad_d < 4.0,
        "pads lie {mean_pad_d:.2} mm from the helix on average"
    );
    assert!(
        mean_dz < 3.0,
        "z from time buckets is off by {mean_dz:.2} mm"
    );
}

#[test]
fn time_buckets_follow_the_drift_geometry() {
    // A track perpendicular to the beam at z = 400 mm (20 MeV: it leaves the pad plane within a few ns,
    // before the drift field can push it off that plane): every peak sits at the calibrated bucket.
    let sim = Simulator::new(quiet_config(90.0, 20.0, 400.0), GridPadLookup::attpc_like()).unwrap();
    let det = sim.config().detector.clone();
    let expected_tb = det.tb_from_z(400.0);
    assert!((expected_tb - (560.0 - 400.0 / 1000.0 * 550.0)).abs() < 1e-9);
    assert!((sim.drift_velocity_mm_per_us() - 1000.0 / 88.0).abs() < 1e-9);
    let ev = sim.simulate_event(3);
    let tr = traces(&ev.get, sim.config().electronics.baseline_mean_adc);
    assert!(tr.len() > 5);
    let (mut wsum, mut tsum) = (0.0, 0.0);
    for (_, samples) in &tr {
        let (imax, vmax) = argmax(samples);
        // Single pads fluctuate with the longitudinal diffusion (σ ≈ 1.5 buckets after 600 mm).
        assert!(
            (imax as f64 - expected_tb).abs() <= 4.0,
            "peak at {imax}, expected {expected_tb}"
        );
        wsum += vmax;
        tsum += vmax * imax as f64;
    }
    let mean_tb = tsum / wsum;
    let mean_z = det.z_from_tb(mean_tb);
    println!(
        "perpendicular track at z = 400 mm: {} traces, amplitude-weighted peak bucket {mean_tb:.2} (expected {expected_tb:.2}), z = {mean_z:.2} mm",
        tr.len()
    );
    assert!(
        (mean_tb - expected_tb).abs() < 0.6,
        "mean peak bucket {mean_tb}"
    );
    // The same track at z = 900 mm arrives 500 mm of drift earlier.
    let sim = Simulator::new(quiet_config(90.0, 20.0, 900.0), GridPadLookup::attpc_like()).unwrap();
    let ev = sim.simulate_event(3);
    let tr = traces(&ev.get, sim.config().electronics.baseline_mean_adc);
    for (_, samples) in &tr {
        let (imax, _) = samples
            .iter()
            .enumerate()
            .fold((0, f64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        assert!((imax as f64 - det.tb_from_z(900.0)).abs() <= 1.5);
    }
}

/// The grid plane with a time correction of 3 buckets on every even pad.
struct EvenPadsLate(GridPadLookup);

impl PadLookup for EvenPadsLate {
    fn pad_at(&self, x: f64, y: f64) -> Option<u16> {
        self.0.pad_at(x, y)
    }
    fn pad_count(&self) -> usize {
        self.0.pad_count()
    }
    fn time_offset(&self, pad: u16) -> f64 {
        if pad % 2 == 0 {
            3.0
        } else {
            0.0
        }
    }
}

#[test]
fn pad_time_corrections_make_signals_arrive_earlier() {
    // Pointcloud adds a pad's time correction to its peak centroids, so the simulator makes the
    // pad's signals arrive that much earlier: same event, even pads 3 buckets early, odd pads as
    // they were.
    let cfg = quiet_config(60.0, 20.0, 400.0);
    let plain = Simulator::new(cfg.clone(), GridPadLookup::attpc_like()).unwrap();
    let late = Simulator::new(cfg, EvenPadsLate(GridPadLookup::attpc_like())).unwrap();
    let baseline = plain.config().electronics.baseline_mean_adc;
    let a = traces(&plain.simulate_event(2).get, baseline);
    let b = traces(&late.simulate_event(2).get, baseline);
    let (mut even, mut odd) = (0, 0);
    for (pad, sa) in &a {
        let Some((_, sb)) = b.iter().find(|(p, _)| p == pad) else {
            continue;
        };
        let (ia, va) = argmax(sa);
        let (ib, vb) = argmax(sb);
        if pad % 2 == 1 {
            assert_eq!(sa, sb, "pad {pad}");
            odd += 1;
        } else if va > 100.0 {
            assert_eq!(
                ib + 3,
                ia,
                "pad {pad}: peak at {ib}, without the correction {ia}"
            );
            // The pulse itself is unchanged (a rounding of the split between buckets aside).
            assert!((va - vb).abs() <= 2.0, "pad {pad}: {va} vs {vb}");
            even += 1;
        }
    }
    assert!(
        even > 5 && odd > 5,
        "{even} even and {odd} odd pads compared"
    );
    // The AT-TPC pad plane gives the simulator its own corrections.
    let pads = spyral_data::attpc::padmap::PadMap::builtin();
    let (id, info) = (0..pads.len() as u16)
        .filter_map(|p| pads.pad(p).map(|i| (p, i)))
        .find(|(_, i)| i.time_offset != 0.0)
        .expect("a pad with a time correction");
    assert_eq!(PadLookup::time_offset(&pads, id), info.time_offset);
}

#[test]
fn deterministic_for_a_seed() {
    let pads = GridPadLookup::attpc_like();
    let cfg = SimConfig::default();
    let a = Simulator::new(cfg.clone(), &pads).unwrap();
    let b = Simulator::new(cfg.clone(), &pads).unwrap();
    // Order independence: event 5 is the same whether or not other events were simulated first.
    let _ = a.simulate_event(4);
    let ea = a.simulate_event(5);
    let eb = b.simulate_event(5);
    assert_eq!(ea, eb);
    let mut other = cfg;
    other.seed = 2;
    let c = Simulator::new(other, &pads).unwrap();
    let ec = c.simulate_event(5);
    assert_ne!(ea.get, ec.get);
    assert_ne!(ea.truth, ec.truth);
    assert_ne!(a.simulate_event(6).get, ea.get);
}

#[test]
fn parallel_generation_matches_sequential() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Simulator<GridPadLookup>>();
    let sim = Simulator::new(SimConfig::default(), GridPadLookup::attpc_like()).unwrap();
    let sequential: Vec<_> = (0..6).map(|i| sim.simulate_event(i)).collect();
    let (evens, odds) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            (0..6)
                .step_by(2)
                .map(|i| sim.simulate_event(i))
                .collect::<Vec<_>>()
        });
        let b = s.spawn(|| {
            [5u64, 3, 1]
                .into_iter()
                .map(|i| sim.simulate_event(i))
                .collect::<Vec<_>>()
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    for ev in evens.iter().chain(odds.iter()) {
        assert_eq!(ev, &sequential[ev.event_id as usize]);
    }
}

#[test]
fn saturation_clips_at_4095() {
    let mut cfg = SimConfig::default();
    cfg.transport.gain = 5e6;
    let sim = Simulator::new(cfg, GridPadLookup::attpc_like()).unwrap();
    let ev = sim.simulate_event(1);
    let samples = ev.get.slice(ndarray::s![.., 5..]);
    let max = samples.iter().copied().max().unwrap();
    let at_max = samples.iter().filter(|&&v| v == 4095).count();
    assert_eq!(max, 4095);
    assert!(at_max > 100, "{at_max}");
    assert!(samples.iter().all(|&v| (0..=4095).contains(&v)));
}

#[test]
fn default_events_look_like_attpc_data() {
    let sim = Simulator::new(SimConfig::default(), GridPadLookup::attpc_like()).unwrap();
    let n = 60u64;
    let mut counts = Vec::new();
    let mut downscale = 0;
    let mut saturated_rows = 0usize;
    let mut rows = 0usize;
    for id in 0..n {
        let ev = sim.simulate_event(id);
        assert_eq!(ev.get.ncols(), GET_COLUMNS);
        let frib = ev.frib.as_ref().expect("FRIB data");
        assert_eq!(frib.trace_1903.dim(), (2048, 8));
        assert_eq!(frib.trigger, ev.truth.trigger);
        if frib.trigger == 2 {
            downscale += 1;
            assert!(!ev.truth.reaction);
            continue;
        }
        assert!(ev.truth.reaction);
        assert_eq!(ev.truth.particles.len(), 2);
        // IC pulse: after the 1100-sample delay, inside Spyral's 900..1350 gate.
        let ic = frib.trace_1903.column(0);
        // The triggering pulse is the one after the IC delay (a pile-up pulse may come earlier).
        let (imax, vmax) = ic
            .iter()
            .enumerate()
            .skip(1100)
            .fold((0, 0u16), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        let amp = f64::from(vmax) - sim.config().frib.baseline_adc;
        if ev
            .truth
            .ic_amplitude
            .is_some_and(|a| (950.0..1300.0).contains(&a))
        {
            assert!(
                imax > 1100 && (900.0..1350.0).contains(&amp),
                "IC at {imax} with {amp}"
            );
        }
        // Rows are sorted by hardware id, pads are unique and valid.
        let keys: Vec<Vec<i16>> = ev
            .get
            .rows()
            .into_iter()
            .map(|r| r.iter().take(5).copied().collect())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for r in ev.get.rows() {
            assert!(r[4] >= 0 && (r[4] as usize) < sim.pads().pad_count());
            assert_eq!(
                sim.pads().hardware_id(r[4] as u16).to_vec(),
                r.iter().take(4).copied().collect::<Vec<_>>()
            );
            if r.iter().skip(5).any(|&v| v == 4095) {
                saturated_rows += 1;
            }
        }
        rows += ev.get.nrows();
        counts.push(ev.get.nrows());
    }
    counts.sort_unstable();
    let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
    println!(
        "default settings, {} mesh events: traces/event mean {mean:.0}, median {}, min {}, max {}; {} IC-downscale events; {:.1}% of traces saturated",
        counts.len(),
        counts[counts.len() / 2],
        counts[0],
        counts[counts.len() - 1],
        downscale,
        100.0 * saturated_rows as f64 / rows as f64
    );
    assert!(
        (100.0..500.0).contains(&mean),
        "mean traces per event {mean}"
    );
}

#[test]
fn truth_round_trip() {
    let sim = Simulator::new(SimConfig::default(), GridPadLookup::attpc_like()).unwrap();
    let truths: Vec<_> = (0..4).map(|i| sim.simulate_event(i).truth).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truth.jsonl");
    write_truth(&path, &truths).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 4);
    assert!(text.contains("\"brho_tm\""));
    // JSON keeps 17 significant digits; compare through the serialised form.
    let back = read_truth(&path).unwrap();
    assert_eq!(back.len(), truths.len());
    for (a, b) in back.iter().zip(&truths) {
        assert_eq!(a.event_id, b.event_id);
        assert_eq!(a.particles.len(), b.particles.len());
        for (pa, pb) in a.particles.iter().zip(&b.particles) {
            assert_eq!(pa.species, pb.species);
            assert!((pa.ke_mev - pb.ke_mev).abs() < 1e-9 * pb.ke_mev);
            assert!((pa.brho_tm - pb.brho_tm).abs() < 1e-9);
        }
    }
    for t in &truths {
        for p in &t.particles {
            assert!(p.polar_rad >= 0.0 && p.polar_rad <= std::f64::consts::PI);
            assert!(p.azimuthal_rad >= 0.0 && p.azimuthal_rad < std::f64::consts::TAU);
            assert!(p.stop != StopReason::StepLimit);
        }
    }
}

#[test]
fn configuration_errors_are_typed() {
    let pads = GridPadLookup::attpc_like();
    let mut cfg = SimConfig::default();
    cfg.beam.species = "99Zz".into();
    assert!(matches!(
        Simulator::new(cfg, &pads),
        Err(SimError::Species { .. })
    ));
    let cfg = SimConfig {
        gas: GasSpec::Inline(serde_json::json!({"compound": [[1, 2, 2]]})),
        ..SimConfig::default()
    };
    assert!(matches!(Simulator::new(cfg, &pads), Err(SimError::Gas(_))));
    let cfg = SimConfig {
        gas: GasSpec::File("/nonexistent/gas.json".into()),
        ..SimConfig::default()
    };
    assert!(matches!(
        Simulator::new(cfg, &pads),
        Err(SimError::Gas(PhysicsError::GasFile { .. }))
    ));
    let mut cfg = SimConfig::default();
    cfg.detector.window_time_bucket = 5.0;
    assert!(matches!(
        Simulator::new(cfg, &pads),
        Err(SimError::InvalidConfig { .. })
    ));
    let mut cfg = SimConfig::default();
    cfg.beam.ke_mev = f64::NAN;
    assert!(matches!(
        Simulator::new(cfg, &pads),
        Err(SimError::InvalidConfig { .. })
    ));
}

#[test]
fn events_per_second() {
    let sim = Simulator::new(SimConfig::default(), GridPadLookup::attpc_like()).unwrap();
    let n = if cfg!(debug_assertions) { 20u64 } else { 400 };
    let start = Instant::now();
    let mut traces = 0usize;
    let mut bytes = 0usize;
    for id in 0..n {
        let ev = sim.simulate_event(id);
        traces += ev.get.nrows();
        bytes += ev.get.len() * 2;
    }
    let dt = start.elapsed().as_secs_f64();
    println!(
        "simulated {n} default events in {dt:.3} s: {:.0} events/s on one thread, {:.0} traces/event, {:.1} MB of int16 traces per 160 events ({} build)",
        n as f64 / dt,
        traces as f64 / n as f64,
        bytes as f64 / n as f64 * 160.0 / 1e6,
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
}
