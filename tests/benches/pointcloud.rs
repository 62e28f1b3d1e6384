//! Benchmark of the simulator and the Pointcloud phase (`cargo bench -p spyral-e2e --bench
//! pointcloud`, after `cargo build --release --workspace`): simulator events/s and MB/s;
//! Pointcloud ms per event and trace MB/s per worker against a raw read of the same file (open
//! and read every dataset, no processing), with a warm page cache and a cold one (caches dropped;
//! needs root, otherwise the cold rows say so). Prints a table and writes
//! `bench-results/pointcloud.md`.

use spyral_data::attpc::traces::TraceReader;
use spyral_e2e::{bench_header, Sandbox};
use std::fmt::Write as _;
use std::time::Instant;

const EVENTS: u64 = 400;

fn drop_caches() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn raw_read(path: &std::path::Path) -> f64 {
    let t = Instant::now();
    let r = TraceReader::open(path).expect("open");
    let mut n = 0usize;
    for id in r.event_ids() {
        if let Some(ev) = r.read_event(id).expect("read") {
            n += ev.pads.map(|p| p.len()).unwrap_or(0);
        }
    }
    assert!(n > 0);
    t.elapsed().as_secs_f64()
}

fn pointcloud(sb: &Sandbox, p: &std::path::Path) -> f64 {
    let out = sb.spyral(&[
        "run",
        p.to_str().unwrap(),
        "--no-display",
        "--force",
        "--log-level",
        "warn",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let rep = sb.report();
    rep["runs"][0]["phases"][0]["wall_s"].as_f64().unwrap()
}

fn main() {
    let mut table = bench_header("Simulator and Pointcloud throughput");
    let _ = writeln!(table, "| benchmark | measure | value | goal |");
    let _ = writeln!(table, "|---|---|---|---|");
    let sb = Sandbox::new();
    let t = Instant::now();
    let out = sb.spyral(&[
        "simulate",
        "--out",
        "traces",
        "--runs",
        "1",
        "--events",
        &EVENTS.to_string(),
        "--seed",
        "5",
    ]);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(out.code, Some(0), "{}", out.all());
    let trace = sb.traces().join("run_0001.h5");
    let mb = std::fs::metadata(&trace).unwrap().len() as f64 / 1e6;
    let _ = writeln!(
        table,
        "| simulator ({EVENTS} events, all cores) | events/s | {:.0} | |",
        EVENTS as f64 / secs
    );
    let _ = writeln!(table, "| simulator | MB/s written | {:.1} | |", mb / secs);

    let p = sb.file(
        "p.yaml",
        "workspace: ws\ntraces: traces\nruns: {min: 1, max: 1}\nworkers: 1\nseed: 1\nphases:\n  - kind: pointcloud\n",
    );
    // Warm cache: read once to warm, then measure.
    raw_read(&trace);
    let raw_warm = raw_read(&trace);
    pointcloud(&sb, &p);
    let pc_warm = pointcloud(&sb, &p);
    let per = |s: f64| s / EVENTS as f64 * 1e3;
    let _ = writeln!(
        table,
        "| raw read, warm | ms/event | {:.3} | |",
        per(raw_warm)
    );
    let _ = writeln!(
        table,
        "| Pointcloud, warm, 1 worker | ms/event | {:.3} | <= 0.5 |",
        per(pc_warm)
    );
    let _ = writeln!(
        table,
        "| Pointcloud, warm, 1 worker | trace MB/s | {:.1} | |",
        mb / pc_warm
    );
    if drop_caches() {
        let raw_cold = raw_read(&trace);
        drop_caches();
        let pc_cold = pointcloud(&sb, &p);
        let _ = writeln!(
            table,
            "| raw read, cold | ms/event | {:.3} | |",
            per(raw_cold)
        );
        let _ = writeln!(
            table,
            "| Pointcloud, cold, 1 worker | ms/event | {:.3} | ~max(raw cold, Pointcloud warm) = {:.3} |",
            per(pc_cold),
            per(raw_cold.max(pc_warm))
        );
    } else {
        let _ = writeln!(
            table,
            "| cold cache | (not measured: dropping caches needs root) | | |"
        );
    }
    println!("{table}");
    let dir = spyral_e2e::workspace_root().join("bench-results");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("pointcloud.md"), &table);
    println!("written to {}", dir.join("pointcloud.md").display());
}
