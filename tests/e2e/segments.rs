//! End-to-end tests of shared segments: read-only attach in workers, one physical copy,
//! enforcement of read-only, no leaks, refusal of segments larger than memory.

use spyral_e2e::{run_record, Sandbox};

fn shmem_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Shmem:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn workers_verify_a_shared_segment() {
    let sb = Sandbox::new();
    for r in 1..=4 {
        sb.trace(r, 100);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 4}\nworkers: 2\nseed: 1",
        "  - kind: segment\n    config: {mib: 64}\n",
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let rep = sb.report();
    for r in 1..=4 {
        let rec = run_record(&rep, r);
        assert_eq!(rec["status"], "ok");
        assert_eq!(
            rec["phases"][0]["metadata"]["segment_words"],
            64 * 1024 * 1024 / 8
        );
    }
    let log = std::fs::read_to_string(sb.latest_log().join("parent.log")).unwrap();
    assert!(
        log.contains("allocated shared segment `pattern`: 64.00 MiB"),
        "{log}"
    );
}

#[test]
fn writing_to_a_segment_kills_only_that_run() {
    let sb = Sandbox::new();
    for r in 1..=4 {
        sb.trace(r, 100 * r as usize);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 4}\nworkers: 2\nseed: 1",
        "  - kind: segment\n    config: {mib: 1, write_on_runs: [3]}\n",
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    let rep = sb.report();
    let err = run_record(&rep, 3)["error"].as_str().unwrap().to_string();
    assert!(err.contains("SIGSEGV"), "{err}");
    assert!(
        err.contains("phase Segment wrote to read-only shared segment pattern"),
        "{err}"
    );
    for r in [1, 2, 4] {
        assert_eq!(run_record(&rep, r)["status"], "ok", "run {r}");
    }
}

#[test]
fn segments_leave_nothing_behind() {
    let before = shmem_kib();
    let sb = Sandbox::new();
    for r in 1..=2 {
        sb.trace(r, 100);
    }
    // Normal end, and a run that crashes its worker.
    for write in ["[]", "[2]"] {
        let p = sb.pipeline(
            "runs: {min: 1, max: 2}\nworkers: 2\nseed: 1",
            &format!("  - kind: segment\n    config: {{mib: 128, write_on_runs: {write}}}\n"),
        );
        sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
        // Other tests may hold segments for a moment: wait for the level to settle.
        let mut after = shmem_kib();
        for _ in 0..50 {
            if after < before + 32 * 1024 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            after = shmem_kib();
        }
        assert!(
            after < before + 32 * 1024,
            "Shmem grew from {before} KiB to {after} KiB (write_on_runs {write})"
        );
    }
}

#[test]
fn a_segment_larger_than_memory_fails_fast() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    let p = sb.pipeline(
        "runs: {min: 1, max: 1}\nseed: 1",
        "  - kind: segment\n    config: {mib: 100000000}\n",
    );
    let t = std::time::Instant::now();
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(t.elapsed().as_secs() < 10);
    let e = &out.stderr;
    assert!(
        e.contains("phase Segment") && e.contains("`pattern`"),
        "{e}"
    );
    assert!(e.contains("TiB") || e.contains("GiB"), "{e}");
    assert!(e.contains("available"), "{e}");
    assert!(!sb.latest_log().join("worker-0.log").exists());
}
