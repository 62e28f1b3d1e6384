//! End-to-end tests of `spyral run`: failure isolation, worker deaths, determinism across worker
//! counts and schedules, interrupts, logs, planning and the report.

use spyral_e2e::{file_bytes, pid_alive, run_record, Sandbox};
use std::time::{Duration, Instant};

fn runs_with(sb: &Sandbox, n: u32) {
    for r in 1..=n {
        sb.trace(r, 1000 + 300 * r as usize);
    }
}

fn status(report: &serde_json::Value, run: u64) -> String {
    run_record(report, run)["status"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

#[test]
fn failures_stay_in_their_run() {
    for mode in ["error", "panic", "segfault", "abort", "exit"] {
        let sb = Sandbox::new();
        runs_with(&sb, 6);
        let p = sb.pipeline(
            "runs: {min: 1, max: 6}\nworkers: 2\nseed: 3",
            &format!("  - kind: fail\n    config: {{runs: [2], mode: {mode}}}\n  - kind: stamp\n"),
        );
        let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
        assert_eq!(out.code, Some(1), "{mode}: {}", out.all());
        let rep = sb.report();
        for r in [1u64, 3, 4, 5, 6] {
            assert_eq!(status(&rep, r), "ok", "{mode}: run {r}: {rep:#}");
            assert!(
                sb.ws().join(format!("Stamp/run_{r:04}.bin")).exists(),
                "{mode} run {r}"
            );
        }
        assert_eq!(status(&rep, 2), "failed", "{mode}");
        let err = run_record(&rep, 2)["error"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(err.contains("Fail"), "{mode}: {err}");
        match mode {
            "error" => assert!(err.contains("deliberate failure in run 2"), "{err}"),
            "panic" => assert!(err.contains("deliberate panic in run 2"), "{err}"),
            "segfault" => assert!(err.contains("SIGSEGV"), "{err}"),
            "abort" => assert!(err.contains("SIGABRT"), "{err}"),
            _ => assert!(err.contains("exit code 7"), "{err}"),
        }
        // The failed run's later phase was not called.
        assert!(!sb.ws().join("Stamp/run_0002.bin").exists(), "{mode}");
        let phases = run_record(&rep, 2)["phases"].clone();
        assert!(
            phases
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["phase"] == "Stamp" && p["status"] == "not-run")
                || mode != "error" && mode != "panic",
            "{mode}: {phases:#}"
        );
        assert!(out.stdout.contains("1 failed"), "{mode}: {}", out.stdout);
        assert!(
            out.stdout.contains("run 2: failed"),
            "{mode}: {}",
            out.stdout
        );
    }
}

#[test]
fn worker_death_hands_unstarted_runs_to_others_even_with_one_worker() {
    let sb = Sandbox::new();
    runs_with(&sb, 5);
    // Run 5 is the largest, so with one worker it runs first and the worker dies on it.
    let p = sb.pipeline(
        "runs: {min: 1, max: 5}\nworkers: 1\nseed: 3",
        "  - kind: fail\n    config: {runs: [5], mode: segfault}\n",
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    let rep = sb.report();
    assert_eq!(status(&rep, 5), "failed");
    for r in 1..=4 {
        assert_eq!(status(&rep, r), "ok", "run {r}: {rep:#}");
    }
    assert!(
        out.stderr.contains("worker 0 died (killed by SIGSEGV"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("in run 5, phase Fail"),
        "{}",
        out.stderr
    );
    // report.json records how each worker ended, typed: the dead one and its replacement.
    let exits: Vec<&serde_json::Value> = rep["worker_reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["exit"])
        .collect();
    assert_eq!(
        exits,
        [
            &serde_json::json!({"how": "signal", "signal": 11}),
            &serde_json::json!({"how": "code", "code": 0})
        ],
        "{rep:#}"
    );
}

#[test]
fn abort_policy_stops_at_first_failure() {
    let sb = Sandbox::new();
    runs_with(&sb, 6);
    let p = sb.pipeline(
        "runs: {min: 1, max: 6}\nworkers: 1\nseed: 3\non_error: abort",
        "  - kind: fail\n    config: {runs: [6], mode: error}\n",
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    let rep = sb.report();
    assert_eq!(status(&rep, 6), "failed");
    let not_started = (1..=5)
        .filter(|&r| status(&rep, r) == "not-started")
        .count();
    assert_eq!(not_started, 5, "{rep:#}");
}

#[test]
fn outputs_do_not_depend_on_workers_or_schedule() {
    let mut results = Vec::new();
    for (workers, schedule) in [(1, "snake"), (2, "snake"), (2, "dynamic"), (3, "dynamic")] {
        let sb = Sandbox::new();
        runs_with(&sb, 7);
        let p = sb.pipeline(
            &format!(
                "runs: {{min: 1, max: 7}}\nworkers: {workers}\nschedule: {schedule}\nseed: 11"
            ),
            "  - kind: stamp\n",
        );
        let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
        assert_eq!(out.code, Some(0), "{}", out.all());
        let a = file_bytes(&sb.ws().join("Stamp"));
        assert_eq!(a.len(), 7);
        results.push(a);
    }
    for r in &results[1..] {
        assert_eq!(r, &results[0]);
    }
    // A different seed gives different bytes.
    let sb = Sandbox::new();
    runs_with(&sb, 7);
    let p = sb.pipeline("runs: {min: 1, max: 7}\nseed: 12", "  - kind: stamp\n");
    assert_eq!(sb.spyral(&["run", p.to_str().unwrap()]).code, Some(0));
    assert_ne!(file_bytes(&sb.ws().join("Stamp")), results[0]);
}

#[test]
fn random_seed_is_printed_and_logged() {
    let sb = Sandbox::new();
    runs_with(&sb, 1);
    let p = sb.pipeline("runs: {min: 1, max: 1}", "  - kind: stamp\n");
    let out = sb.spyral(&["run", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let seed = sb.report()["seed"].as_u64().unwrap();
    assert!(out.all().contains(&format!("seed {seed}")), "{}", out.all());
    let log = std::fs::read_to_string(sb.latest_log().join("parent.log")).unwrap();
    assert!(
        log.contains(&format!("seed {seed} (drawn at random)")),
        "{log}"
    );
}

#[test]
fn logs_per_process_and_launches_are_kept() {
    let sb = Sandbox::new();
    runs_with(&sb, 4);
    // Runs long enough that both workers get some (an idle worker may take a busy one's
    // queued runs).
    let p = sb.pipeline(
        "runs: {min: 1, max: 4}\nworkers: 2\nseed: 1",
        "  - kind: stamp\n    config: {sleep_ms: 300}\n",
    );
    assert_eq!(sb.spyral(&["run", p.to_str().unwrap()]).code, Some(0));
    let first = sb.latest_log();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        sb.spyral(&["run", p.to_str().unwrap(), "--force"]).code,
        Some(0)
    );
    let second = sb.latest_log();
    assert_ne!(first, second);
    for dir in [&first, &second] {
        for f in ["parent.log", "worker-0.log", "worker-1.log", "report.json"] {
            assert!(dir.join(f).exists(), "{}/{f}", dir.display());
        }
        let parent = std::fs::read_to_string(dir.join("parent.log")).unwrap();
        assert!(parent.contains("worker 0 gets runs"), "{parent}");
        assert!(parent.contains("load"), "{parent}");
        let w = std::fs::read_to_string(dir.join("worker-1.log")).unwrap();
        assert!(w.contains("calling Stamp.run for run"), "{w}");
    }
}

#[test]
fn report_has_per_phase_records() {
    let sb = Sandbox::new();
    runs_with(&sb, 2);
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}\nseed: 1",
        "  - kind: template\n  - kind: stamp\n    active: false\n",
    );
    assert_eq!(sb.spyral(&["run", p.to_str().unwrap()]).code, Some(0));
    let rep = sb.report();
    let rec = run_record(&rep, 1);
    let phases = rec["phases"].as_array().unwrap();
    assert_eq!(phases[0]["phase"], "Template");
    assert_eq!(phases[0]["status"], "ok");
    assert!(phases[0]["wall_s"].as_f64().unwrap() >= 0.0);
    assert!(phases[0]["peak_rss_kib"].as_u64().unwrap() > 0);
    assert!(phases[0]["items"].as_u64().unwrap() > 0);
    assert_eq!(phases[1]["status"], "constructed");
}

#[test]
fn zero_runs_is_a_clear_error_and_spawns_nothing() {
    let sb = Sandbox::new();
    let p = sb.pipeline("runs: {min: 1, max: 9}", "  - kind: stamp\n");
    let out = sb.spyral(&["run", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("no runs found"), "{}", out.stderr);
    assert!(out.stderr.contains("1..=9"), "{}", out.stderr);
    assert!(out.stderr.contains("traces"), "{}", out.stderr);
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--workers", "0"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("at least 1"), "{}", out.stderr);
}

#[test]
fn plan_json_and_table() {
    let sb = Sandbox::new();
    for (run, size) in [
        (9u32, 600usize),
        (10, 500),
        (2, 400),
        (1, 300),
        (3, 200),
        (4, 100),
    ] {
        sb.trace(run, size);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 12, skip: [7, 40]}\nworkers: 3",
        "  - kind: stamp\n",
    );
    let out = sb.spyral(&["plan", p.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["runs_found"], 6);
    let runs: Vec<Vec<u64>> = v["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(runs, vec![vec![9, 4], vec![10, 3], vec![2, 1]]);
    assert!(v["workers"][0]["load_percent"].as_f64().unwrap() > 30.0);
    let out = sb.spyral(&[
        "plan",
        p.to_str().unwrap(),
        "--workers",
        "2",
        "--runs",
        "1..=4",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("4 runs found"), "{}", out.stdout);
}

#[test]
fn sigint_stops_cleanly() {
    let sb = Sandbox::new();
    runs_with(&sb, 8);
    let p = sb.pipeline(
        "runs: {min: 1, max: 8}\nworkers: 2\nseed: 1",
        "  - kind: fail\n    config: {sleep_ms: 400}\n",
    );
    let child = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
    // Wait until some run has finished.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let n = std::fs::read_dir(sb.ws().join("Fail"))
            .map(|d| d.count())
            .unwrap_or(0);
        if n >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Remember the workers.
    let workers = spyral_e2e::children(child.id() as i32);
    assert!(!workers.is_empty());
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    assert!(stdout.contains("ok"), "{stdout}");
    for w in workers {
        assert!(!pid_alive(w), "worker {w} survived");
    }
    // No partial artifact under a final name: every final artifact is complete.
    for e in std::fs::read_dir(sb.ws().join("Fail")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 1024 + 16, "{name}");
    }
    let rep = sb.report();
    assert_eq!(rep["interrupted"], true);
}

/// Runs `cmd` in a detached 160x24 tmux session on a private server; returns the server name.
/// The pane is wider than the 80 columns the display must fit, so a longer line shows as one
/// (in an 80-column pane it would wrap into lines that fit).
fn tmux_start(name: &str, cmd: &str) {
    let st = std::process::Command::new("tmux")
        .args([
            "-L",
            name,
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "24",
            cmd,
        ])
        .status()
        .expect("tmux (scripts/setup-system.sh installs it)");
    assert!(st.success());
}

fn tmux_capture(name: &str) -> String {
    let out = std::process::Command::new("tmux")
        .args(["-L", name, "capture-pane", "-p"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_live_display_moves_with_events_fits_80_columns_and_keeps_its_last_frame() {
    let sb = Sandbox::new();
    sb.trace(1, 6000);
    sb.trace(2, 2000);
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}\nworkers: 2\nseed: 1",
        "  - kind: lines\n    config: {sleep_ms_per_event: 60}\n  - kind: lines\n    name: Lines2\n",
    );
    let server = format!("spyral-e2e-{}", std::process::id());
    let cmd = format!(
        "cd {} && {} run {} --chunk-events 0; echo EXIT-$?; sleep 60",
        sb.path().display(),
        spyral_e2e::spyral_bin().display(),
        p.display()
    );
    tmux_start(&server, &cmd);
    // Mid-run: the overall bar has moved (events, not finished runs) and shows an ETA.
    let t = Instant::now();
    let mut mid = String::new();
    while t.elapsed() < Duration::from_secs(60) {
        mid = tmux_capture(&server);
        let moved = mid.lines().any(|l| {
            l.starts_with("all")
                && l.contains("ETA")
                && !l.contains(" 0% ")
                && l.contains("0/2 runs")
        });
        if moved || mid.contains("EXIT-") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        mid.lines()
            .any(|l| l.starts_with("all") && l.contains("ETA") && l.contains("0/2 runs")),
        "{mid}"
    );
    assert!(mid.contains("run 1 | Lines 1/2"), "{mid}");
    // The ETA is a time from the throughput so far once the bar moved (never indicatif's `0s`
    // before it has a rate), and the elapsed time ticks between frames.
    let overall = |frame: &str| {
        frame
            .lines()
            .find(|l| l.starts_with("all"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let first = overall(&mid);
    let eta = first.rsplit("ETA ").next().unwrap_or("").trim().to_string();
    assert!(
        eta == "?" || (eta.contains(':') && eta.chars().all(|c| c.is_ascii_digit() || c == ':')),
        "{first}"
    );
    assert!(!first.contains("ETA 0s"), "{first}");
    let elapsed = |line: &str| {
        line.split_whitespace()
            .find(|w| w.len() == 8 && w.as_bytes()[2] == b':' && w.as_bytes()[5] == b':')
            .map(str::to_string)
    };
    std::thread::sleep(Duration::from_millis(2200));
    let later = overall(&tmux_capture(&server));
    if !later.contains("100%") {
        assert!(elapsed(&first).is_some(), "{first}");
        assert_ne!(elapsed(&first), elapsed(&later), "{first}\n{later}");
    }
    // The end: the last frame is still there, above the summary.
    let mut end = String::new();
    while t.elapsed() < Duration::from_secs(120) {
        end = tmux_capture(&server);
        if end.contains("EXIT-") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::process::Command::new("tmux")
        .args(["-L", &server, "kill-server"])
        .status();
    assert!(end.contains("EXIT-0"), "{end}");
    assert!(
        end.lines()
            .any(|l| l.starts_with("all") && l.contains("100%") && l.contains("2/2 runs")),
        "{end}"
    );
    // Every progress line (the overall bar and the worker bars) fits 80 columns.
    let bar_line = |l: &&str| {
        let t = l.trim_start();
        t.starts_with("all ") || (t.starts_with('w') && t.contains(" ["))
    };
    let bars: Vec<&str> = end.lines().chain(mid.lines()).filter(bar_line).collect();
    assert!(bars.len() >= 3, "{mid}\n{end}");
    for l in bars {
        assert!(
            l.trim_end().chars().count() <= 80,
            "wider than 80 columns: {l}"
        );
    }
}
