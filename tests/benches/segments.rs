//! Benchmark of shared segments (`cargo bench -p spyral-e2e --bench segments`, after
//! `cargo build --release --workspace`): a 1.4 GB segment (the default interpolation mesh size)
//! streamed from a file in the parent; fill time, peak parent RSS over the segment size, attach
//! time per worker, and the total Pss of 2 and 4 workers holding it. Prints a table and writes
//! `bench-results/segments.md`.

use spyral_e2e::{bench_header, children, mapping_pss, total_pss, Sandbox};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

const BYTES: u64 = 1_394_400_000; // (1000, 3, 350, 166) float64

fn main() {
    let sb = Sandbox::new();
    let file = sb.path().join("mesh.bin");
    {
        let mut w =
            std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(&file).unwrap());
        for i in 0..BYTES / 8 {
            let x = spyral_core::seed::mix64(i ^ 0x5eed);
            w.write_all(&x.to_ne_bytes()).unwrap();
        }
        w.flush().unwrap();
    }
    for r in 1..=4 {
        sb.trace(r, 100);
    }
    let mut table = bench_header("Shared segments: fill, attach, memory");
    let _ = writeln!(table, "| workers | fill s | parent peak RSS / segment | attach ms per worker | total Pss of workers (MiB) | one copy + 50 MiB/worker (MiB) |");
    let _ = writeln!(table, "|---|---|---|---|---|---|");
    let seg_mib = BYTES as f64 / (1 << 20) as f64;
    for workers in [2usize, 4] {
        let p = sb.pipeline(
            &format!("runs: {{min: 1, max: 4}}\nworkers: {workers}\nseed: 1"),
            &format!(
                "  - kind: segment\n    config: {{from_file: {}, hold_ms: 4000}}\n",
                file.display()
            ),
        );
        let child = sb.spawn(&["run", p.to_str().unwrap(), "--no-display", "--force"]);
        let tag = "spyral:Segment:pattern";
        let full_kib = BYTES / 1024;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut total = 0u64;
        while Instant::now() < deadline {
            let ws = children(child.id() as i32);
            let touched = ws.len() == workers
                && ws
                    .iter()
                    .all(|&w| mapping_pss(w, tag).1 >= full_kib * 99 / 100);
            if touched {
                total = ws.iter().map(|&w| total_pss(w)).sum();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "spyral run failed");
        let rep = sb.report();
        let fill = rep["shared_data_seconds"][0]["seconds"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let parent =
            rep["parent_peak_rss_kib"].as_f64().unwrap_or(f64::NAN) * 1024.0 / BYTES as f64;
        let attach: Vec<String> = rep["worker_reports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| format!("{:.2}", w["attach_ms"].as_f64().unwrap_or(f64::NAN)))
            .collect();
        let _ = writeln!(
            table,
            "| {workers} | {fill:.2} | {parent:.3} (goal <= 1.1) | {} (goal < 10) | {:.0} | {:.0} |",
            attach.join(", "),
            total as f64 / 1024.0,
            seg_mib + 50.0 * workers as f64
        );
    }
    println!("{table}");
    let dir = spyral_e2e::workspace_root().join("bench-results");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("segments.md"), &table);
    println!("written to {}", dir.join("segments.md").display());
}
