//! Physics sanity of the Pointcloud phase on simulated data: with noise off, the point clouds'
//! z values lie inside the drift geometry (0..1000 mm) and the points away from the beam axis
//! lie within a few mm of the simulator's true tracks.

use spyral_data::attpc::padmap::PadMap;
use spyral_phases::pointcloud::{CloudBuilder, PointcloudConfig};
use spyral_sim::{SimConfig, Simulator};

fn distance_to_segment(p: [f64; 3], a: [f64; 3], b: [f64; 3]) -> f64 {
    let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let ap = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
    let len2 = ab.iter().map(|v| v * v).sum::<f64>();
    let t = if len2 > 0.0 {
        (ab.iter().zip(&ap).map(|(x, y)| x * y).sum::<f64>() / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (0..3)
        .map(|i| (a[i] + t * ab[i] - p[i]).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[test]
fn noise_free_points_follow_the_true_tracks() {
    let mut sim_config = SimConfig::default();
    sim_config.electronics.noise = false;
    sim_config.seed = 17;
    let pads = PadMap::builtin();
    let sim = Simulator::new(sim_config, &pads).expect("simulator");
    let config = PointcloudConfig::default();
    let mut builder = CloudBuilder::new(&config, &pads, 5).expect("builder");
    let mut distances = Vec::new();
    let (mut z_min, mut z_max) = (f64::MAX, f64::MIN);
    for id in 0..40 {
        let ev = sim.simulate_event(id);
        if !ev.truth.reaction {
            continue;
        }
        let cloud = builder.cloud(ev.get.view()).expect("cloud");
        let tracks: Vec<_> = ev
            .truth
            .particles
            .iter()
            .map(|p| sim.retrack(p).expect("retrack"))
            .collect();
        for row in cloud.outer_iter() {
            let (x, y, z) = (row[0], row[1], row[2]);
            z_min = z_min.min(z);
            z_max = z_max.max(z);
            // Away from the beam axis only the light product and the heavy recoil ionise.
            if x.hypot(y) < 40.0 {
                continue;
            }
            let d = tracks
                .iter()
                .flat_map(|t| t.steps.iter())
                .map(|s| distance_to_segment([x, y, z], s.start_mm, s.end_mm))
                .fold(f64::MAX, f64::min);
            distances.push(d);
        }
    }
    assert!(distances.len() > 500, "{} points checked", distances.len());
    distances.sort_by(f64::total_cmp);
    let median = distances[distances.len() / 2];
    let p90 = distances[distances.len() * 9 / 10];
    println!(
        "points {}: median {median:.2} mm, 90% {p90:.2} mm, z {z_min:.1}..{z_max:.1} mm",
        distances.len()
    );
    // Pads are 5-10 mm wide, so a point sits up to half a pad from the track.
    assert!(median < 4.0, "median distance {median} mm");
    assert!(p90 < 8.0, "90th percentile {p90} mm");
    assert!(z_min > -15.0 && z_max < 1015.0, "z range {z_min}..{z_max}");
}
