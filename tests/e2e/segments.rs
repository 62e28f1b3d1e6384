//! End-to-end tests of shared segments: read-only attach in workers, one physical copy,
//! enforcement of read-only, no leaks, refusal of segments larger than memory.

use spyral_e2e::{run_record, shmem_kib, Sandbox};

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

/// Word `i` of the testkit segment phase's pattern (its documented rule).
fn pattern(i: u64) -> u64 {
    spyral_core::seed::mix64(i ^ 0x5eed)
}

/// Writes the testkit's segment pattern (`words` u64 words) to `path`.
fn pattern_file(path: &std::path::Path, words: u64) {
    let mut bytes = Vec::with_capacity(words as usize * 8);
    for i in 0..words {
        bytes.extend_from_slice(&pattern(i).to_ne_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_shared_file_is_mapped_by_every_worker_and_stays_read_only() {
    let sb = Sandbox::new();
    for r in 1..=4 {
        sb.trace(r, 100 * r as usize);
    }
    let words = 4 * 1024 * 1024 / 8;
    let file = sb.path().join("pattern.bin");
    pattern_file(&file, words);
    let p = sb.pipeline(
        "runs: {min: 1, max: 4}\nworkers: 2\nseed: 1",
        &format!(
            "  - kind: segment\n    config: {{from_file: {}, share_file: true, write_on_runs: [3], hold_ms: 400}}\n",
            file.display()
        ),
    );
    let child = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
    // While the workers hold the file mapped (each run holds it for a moment), no process of
    // the launch holds a shared-memory copy of it (looked at per process: other tests' segments
    // do not count).
    let maps = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let launch = loop {
        let mut pids = spyral_e2e::children(child.id() as i32);
        pids.push(child.id() as i32);
        if pids
            .iter()
            .any(|&pid| maps(pid).contains(file.to_str().unwrap()))
        {
            break pids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker mapped {}",
            file.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let copies: Vec<i32> = memfd_holders()
        .into_iter()
        .filter(|pid| launch.contains(pid))
        .collect();
    assert!(
        copies.is_empty(),
        "processes {copies:?} hold a shared-memory copy"
    );
    let out = spyral_e2e::Output::from(child.wait_with_output().unwrap());
    assert_eq!(out.code, Some(1), "{}", out.all());
    let rep = sb.report();
    for r in [1, 2, 4] {
        let rec = run_record(&rep, r);
        assert_eq!(rec["status"], "ok", "{rec}");
        assert_eq!(rec["phases"][0]["metadata"]["segment_words"], words);
    }
    // A write into the mapped file is stopped by the kernel, and the file is untouched.
    let err = run_record(&rep, 3)["error"].as_str().unwrap().to_string();
    assert!(err.contains("SIGSEGV"), "{err}");
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(
        u64::from_ne_bytes(bytes[..8].try_into().unwrap()),
        pattern(0)
    );
}

#[test]
fn two_workers_share_one_physical_copy() {
    let sb = Sandbox::new();
    for r in 1..=2 {
        sb.trace(r, 100);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}\nworkers: 2\nseed: 1",
        "  - kind: segment\n    config: {mib: 256, hold_ms: 4000}\n",
    );
    let child = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
    let tag = "spyral:Segment:pattern";
    let full_kib = 256 * 1024;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut best: Option<(u64, Vec<(u64, u64)>)> = None;
    while std::time::Instant::now() < deadline {
        let workers = spyral_e2e::children(child.id() as i32);
        let per: Vec<(u64, u64)> = workers
            .iter()
            .map(|&w| spyral_e2e::mapping_pss(w, tag))
            .collect();
        let all_touched = per.len() == 2 && per.iter().all(|&(_, rss)| rss >= full_kib * 99 / 100);
        if all_touched {
            best = Some((per.iter().map(|p| p.0).sum(), per));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (sum, per) = best.expect("both workers mapped the whole segment");
    // One copy shared by two processes: each is charged half, the sum is one copy.
    assert!(
        sum <= full_kib * 105 / 100,
        "sum of Pss {sum} KiB for a {full_kib} KiB segment (per worker {per:?}): more than one copy"
    );
}

/// Processes holding a file descriptor or mapping of one of our memfds (`memfd:spyral:`).
fn memfd_holders() -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"));
        let has_fd = fds.map(|d| {
            d.flatten().any(|f| {
                std::fs::read_link(f.path())
                    .map(|l| l.to_string_lossy().contains("memfd:spyral:"))
                    .unwrap_or(false)
            })
        });
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        if has_fd.unwrap_or(false) || maps.contains("memfd:spyral:") {
            out.push(pid);
        }
    }
    out
}

#[test]
fn stopping_or_killing_the_parent_leaks_nothing() {
    for signal in ["KILL", "INT", "TERM"] {
        let before = shmem_kib();
        let sb = Sandbox::new();
        for r in 1..=2 {
            sb.trace(r, 100);
        }
        let p = sb.pipeline(
            "runs: {min: 1, max: 2}\nworkers: 2\nseed: 1",
            "  - kind: segment\n    config: {mib: 128, hold_ms: 20000}\n",
        );
        let child = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while spyral_e2e::children(child.id() as i32).len() < 2
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(
            shmem_kib() > before + 64 * 1024,
            "the segment exists while running"
        );
        // SIGKILL: no cleanup code runs in the parent; INT and TERM: the orderly stop.
        let sent = std::process::Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = child.wait_with_output().unwrap();
        if signal != "KILL" {
            assert_eq!(out.status.code(), Some(130), "SIG{signal}");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let holders = memfd_holders();
            let shmem = shmem_kib();
            if holders.is_empty() && shmem < before + 32 * 1024 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "after SIG{signal} to the parent: holders {holders:?}, Shmem {shmem} KiB (before {before})"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

#[test]
fn two_launches_of_one_pipeline_at_once_both_work() {
    let sb = Sandbox::new();
    for r in 1..=4 {
        sb.trace(r, 100);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 4}\nworkers: 2\nseed: 1",
        "  - kind: segment\n    config: {mib: 32, hold_ms: 300}\n",
    );
    let spawn = || sb.spawn(&["run", p.to_str().unwrap(), "--no-display", "--force"]);
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
