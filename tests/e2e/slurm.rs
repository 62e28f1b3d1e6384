//! End-to-end test against a real SLURM cluster: `spyral slurm --submit` runs `spyral assets`
//! and an array job of shards; every run must be processed exactly once and the artifacts must
//! equal a local `spyral run`. Needs a running cluster (`scripts/slurm-cluster.sh start`), so it
//! is `#[ignore]`d by default and run explicitly by `scripts/test.sh`:
//! `cargo nextest run -p spyral-e2e --test slurm --run-ignored only`.

use spyral_e2e::{file_bytes, Sandbox};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

fn job_states(id: &str) -> Vec<(String, String)> {
    let out = Command::new("scontrol")
        .args(["-o", "show", "job", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|f| f.strip_prefix(k))
                    .unwrap_or("")
                    .to_string()
            };
            (field("JobState="), field("ExitCode="))
        })
        .collect()
}

#[test]
#[ignore = "needs a SLURM cluster: scripts/slurm-cluster.sh start (scripts/test.sh runs it)"]
fn array_job_processes_every_run_once_like_a_local_run() {
    let phases = "  - kind: stamp\n  - kind: template\n    config: {input_artifact: stamp}\n";
    let local = Sandbox::new();
    let sb = Sandbox::new();
    for s in [&local, &sb] {
        for r in 1..=7 {
            s.trace(r, 1000 * r as usize);
        }
    }
    let p = local.pipeline("runs: {min: 1, max: 7}\nworkers: 2\nseed: 21", phases);
    assert_eq!(local.spyral(&["run", p.to_str().unwrap()]).code, Some(0));

    let p = sb.pipeline("runs: {min: 1, max: 7}\nworkers: 2\nseed: 21", phases);
    let out = sb.spyral(&[
        "slurm",
        p.to_str().unwrap(),
        "--tasks",
        "3",
        "--cpus-per-task",
        "1",
        "--submit",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("submitted"))
        .expect("job ids");
    let ids: Vec<String> = line
        .split_whitespace()
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .map(String::from)
        .collect();
    assert_eq!(ids.len(), 3, "{line}"); // assets id, array id, and the dependency mention
    let (assets, array) = (&ids[0], &ids[1]);
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let q = Command::new("squeue")
            .args(["-h", "-j", &format!("{assets},{array}")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&q.stdout).trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jobs still queued: {}",
            String::from_utf8_lossy(&q.stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for id in [assets, array] {
        let states = job_states(id);
        assert!(!states.is_empty(), "job {id} unknown to scontrol");
        for (state, code) in &states {
            assert_eq!(state, "COMPLETED", "job {id}: {states:?}");
            assert_eq!(code, "0:0", "job {id}: {states:?}");
        }
    }
    assert_eq!(job_states(array).len(), 3, "three array tasks");
    // Every run processed exactly once across the shards' reports.
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for e in std::fs::read_dir(sb.ws().join("log")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.contains("-shard-") {
            continue;
        }
        let rep: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(e.path().join("report.json")).unwrap())
                .unwrap();
        for r in rep["runs"].as_array().unwrap() {
            assert_eq!(r["status"], "ok", "{r}");
            *seen.entry(r["run"].as_u64().unwrap()).or_default() += 1;
        }
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    for dir in ["Stamp", "Template"] {
        assert_eq!(
            file_bytes(&sb.ws().join(dir)),
            file_bytes(&local.ws().join(dir)),
            "{dir}"
        );
    }
    // spyral status sees all shards' work.
    let st = sb.spyral(&["status", p.to_str().unwrap()]);
    assert_eq!(st.stdout.matches("current").count(), 14, "{}", st.stdout);
}
