//! Benchmark of the default chain on simulated runs (`cargo bench -p spyral-e2e --bench phases`,
//! after `cargo build --release --workspace`): per-phase cost per event / cluster / fit on one
//! worker, the default trajectory mesh (1000 x 350 x 166) generation time, its attach cost per
//! worker and the parent's peak memory while sharing it. Prints a table and writes
//! `bench-results/phases.md`.

use spyral_e2e::{bench_header, workspace_root, Sandbox};
use std::fmt::Write as _;
use std::time::Instant;

fn main() {
    let sb = Sandbox::new();
    sb.simulated(2, 300, 11);
    let p = sb.file(
        "p.yaml",
        "workspace: ws\ntraces: traces\nruns: {min: 1, max: 2}\nworkers: 1\nseed: 1\nphases:\n  - kind: pointcloud\n  - kind: cluster\n  - kind: estimation\n  - kind: interp-solver\n    config: {gas_data_path: gas.json, particle_id_filename: pid.json}\n",
    );
    let t = Instant::now();
    let out = sb.spyral(&["assets", p.to_str().unwrap()]);
    let mesh_s = t.elapsed().as_secs_f64();
    assert_eq!(out.code, Some(0), "{}", out.all());
    let out = sb.spyral(&[
        "run",
        p.to_str().unwrap(),
        "--no-display",
        "--log-level",
        "warn",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let rep = sb.report();
    let mut wall = std::collections::BTreeMap::<String, f64>::new();
    let (mut events, mut clusters, mut fits, mut ms_fit) = (0.0, 0.0, 0.0, 0.0);
    for run in rep["runs"].as_array().unwrap() {
        for ph in run["phases"].as_array().unwrap() {
            let name = ph["phase"].as_str().unwrap().to_string();
            *wall.entry(name.clone()).or_default() += ph["wall_s"].as_f64().unwrap_or(0.0);
            let m = &ph["metadata"];
            match name.as_str() {
                "Pointcloud" => events += m["events"].as_f64().unwrap_or(0.0),
                "Estimation" => clusters += m["clusters"].as_f64().unwrap_or(0.0),
                "InterpSolver" => {
                    let f = m["fitted"].as_f64().unwrap_or(0.0);
                    fits += f;
                    ms_fit += m["ms_per_fit"].as_f64().unwrap_or(0.0) * f;
                }
                _ => {}
            }
        }
    }
    let mesh_bytes = rep["segments"][0]["bytes"].as_f64().unwrap_or(f64::NAN);
    let mut table = bench_header("Default chain per phase, one worker (fresh workspace)");
    let _ = writeln!(
        table,
        "Python Spyral's per-phase times on the same files are measured by `scripts/parity/run.sh` (bench-results/parity.md), not here.\n"
    );
    let _ = writeln!(table, "| measure | value | goal |");
    let _ = writeln!(table, "|---|---|---|");
    let _ = writeln!(
        table,
        "| events / clusters / fits | {events:.0} / {clusters:.0} / {fits:.0} | |"
    );
    let _ = writeln!(
        table,
        "| Pointcloud ms per event (1 worker, incl. HDF5 read and write) | {:.3} | <= 0.5 |",
        wall["Pointcloud"] / events * 1e3
    );
    let _ = writeln!(
        table,
        "| Cluster ms per event | {:.3} | <= 1 |",
        wall["Cluster"] / events * 1e3
    );
    let _ = writeln!(
        table,
        "| Estimation ms per cluster | {:.3} | <= 0.25 |",
        wall["Estimation"] / clusters * 1e3
    );
    let _ = writeln!(
        table,
        "| InterpSolver ms per fit (fit only) | {:.2} | <= 8 |",
        ms_fit / fits.max(1.0)
    );
    let _ = writeln!(
        table,
        "| InterpSolver ms per fit (whole phase) | {:.2} | |",
        wall["InterpSolver"] / fits.max(1.0) * 1e3
    );
    let _ = writeln!(
        table,
        "| default mesh (1000 x 350 x 166, {:.2} GB): `spyral assets` s | {mesh_s:.1} | <= 10 |",
        mesh_bytes / 1e9
    );
    let _ = writeln!(
        table,
        "| mesh fill into the shared segment, s | {:.2} | |",
        rep["shared_data_seconds"][0]["seconds"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );
    let _ = writeln!(
        table,
        "| mesh attach per worker, ms | {:.3} | < 10 |",
        rep["worker_reports"][0]["attach_ms"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );
    let _ = writeln!(
        table,
        "| parent peak RSS / mesh size | {:.3} | <= 1.1 |",
        rep["parent_peak_rss_kib"].as_f64().unwrap_or(f64::NAN) * 1024.0 / mesh_bytes
    );
    println!("{table}");
    let dir = workspace_root().join("bench-results");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("phases.md"), &table);
    println!("written to {}", dir.join("phases.md").display());
}
