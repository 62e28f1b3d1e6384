//! Benchmark of the parallel runner (`cargo bench -p spyral-e2e --bench runner`, after
//! `cargo build --release --workspace`): framework overhead per run, worker start-up, 1 vs 2
//! worker scaling on a CPU-bound phase, and snake vs dynamic makespan on skewed run sizes.
//! Prints a table and writes it to `bench-results/runner.md`.

use spyral_e2e::Sandbox;
use std::fmt::Write as _;
use std::time::Instant;

fn run(sb: &Sandbox, args: &[&str]) -> f64 {
    let t = Instant::now();
    let out = sb.spyral(args);
    let wall = t.elapsed().as_secs_f64();
    assert_eq!(out.code, Some(0), "{}", out.all());
    wall
}

fn main() {
    let mut table = String::new();
    let _ = writeln!(table, "| benchmark | measure | value | goal |");
    let _ = writeln!(table, "|---|---|---|---|");

    // 1. Framework overhead: a no-op phase over 500 tiny runs with 2 workers.
    let sb = Sandbox::new();
    for r in 1..=500 {
        sb.trace(r, 512);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 500}\nworkers: 2\nseed: 1",
        "  - kind: noop\n",
    );
    let wall = run(
        &sb,
        &[
            "run",
            p.to_str().unwrap(),
            "--no-display",
            "--log-level",
            "warn",
        ],
    );
    let rep = sb.report();
    let startup: Vec<f64> = rep["worker_reports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["startup_ms"].as_f64())
        .collect();
    let per_run_ms = wall * 2.0 / 500.0 * 1e3;
    let _ = writeln!(
        table,
        "| overhead (no-op, 500 runs, 2 workers) | runs/s | {:.0} | |",
        500.0 / wall
    );
    let _ = writeln!(
        table,
        "| overhead | framework ms per run per phase (wall x workers / runs, launch included) | {per_run_ms:.2} | < 2 |"
    );
    let _ = writeln!(
        table,
        "| overhead | worker start-up (spawn + plugin load), ms | {} | < 50 |",
        startup
            .iter()
            .map(|s| format!("{s:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // 2. Scaling: CPU-bound phase on 8 equal runs, 1 vs 2 workers.
    let sb = Sandbox::new();
    for r in 1..=8 {
        sb.trace(r, 256 * 1024);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 8}\nseed: 1",
        "  - kind: burn\n    config: {rounds_per_kib: 1000000}\n",
    );
    let t1 = run(
        &sb,
        &["run", p.to_str().unwrap(), "--no-display", "--workers", "1"],
    );
    let t2 = run(
        &sb,
        &["run", p.to_str().unwrap(), "--no-display", "--workers", "2"],
    );
    let _ = writeln!(
        table,
        "| scaling (burn, 8 equal runs) | 1 worker s | {t1:.2} | |"
    );
    let _ = writeln!(table, "| scaling | 2 workers s | {t2:.2} | |");
    let _ = writeln!(table, "| scaling | speed-up | {:.2} | >= 1.8 |", t1 / t2);

    // 3. Balance: one huge run and several small ones; cost proportional to size.
    let sb = Sandbox::new();
    let sizes_kib = [2048usize, 512, 448, 384, 320, 256, 256, 192, 128, 128];
    for (i, s) in sizes_kib.iter().enumerate() {
        sb.trace(i as u32 + 1, s * 1024);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 10}\nseed: 1\nworkers: 2",
        "  - kind: burn\n    config: {rounds_per_kib: 100000}\n",
    );
    // Cost of one KiB, measured on one worker over everything.
    let total_kib: usize = sizes_kib.iter().sum();
    let one = run(
        &sb,
        &["run", p.to_str().unwrap(), "--no-display", "--workers", "1"],
    );
    let per_kib = one / total_kib as f64;
    let bound = (total_kib as f64 / 2.0).max(*sizes_kib.iter().max().unwrap() as f64) * per_kib;
    for schedule in ["snake", "dynamic"] {
        let t = run(
            &sb,
            &[
                "run",
                p.to_str().unwrap(),
                "--no-display",
                "--schedule",
                schedule,
            ],
        );
        let _ = writeln!(
            table,
            "| balance (1 huge + 9 small, 2 workers) | {schedule} makespan s (/ lower bound {bound:.2} s) | {t:.2} ({:.2}) | {} |",
            t / bound,
            if schedule == "dynamic" { "<= 1.10" } else { "" }
        );
    }

    println!("{table}");
    let dir = spyral_e2e::workspace_root().join("bench-results");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("runner.md"), &table);
    println!("written to {}", dir.join("runner.md").display());
}
