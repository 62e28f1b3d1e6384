//! Hostile input to `spyral plan`, `run` and `validate`: run ranges and skip lists as wide as
//! u32 allows (answered from the folder listing in moments, never run by run), files named
//! like runs that cannot be used (listed with the reason), a bogus `--log-level`, a bad
//! `SPYRAL_MEMORY_MARGIN_MIB` (refused before anything is created), colour codes in redirected
//! stderr, OS error text printed once, more workers than runs (capped) or cores (warned), and an
//! over-long phase name or a link-loop workspace (refused, nothing created).

use spyral_e2e::Sandbox;
use std::time::{Duration, Instant};

/// A sandbox with runs 1..=3 and a pipeline over `runs` with the stamp phase.
fn three_runs(runs: &str) -> (Sandbox, String) {
    let sb = Sandbox::new();
    for r in 1..=3 {
        sb.trace(r, 100 * r as usize);
    }
    let p = sb.pipeline(&format!("runs: {runs}\nseed: 1"), "  - kind: stamp\n");
    let p = p.to_str().unwrap().to_string();
    (sb, p)
}

#[test]
fn huge_ranges_and_skip_lists_are_answered_at_once() {
    let (sb, p) = three_runs("{min: 1, max: 3}");
    let t = Instant::now();
    let out = sb.spyral(&["plan", &p, "--runs", "0..=4294967295", "--skip", "2"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("2 runs found"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("missing in range: 0, 4-4294967295 (4294967293 runs)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("skipped: 2\n"), "{}", out.stdout);
    // Everything skipped: no runs, said in ranges, nothing created.
    for cmd in ["plan", "run"] {
        let mut args = vec![
            cmd,
            &p,
            "--runs",
            "1..=4294967295",
            "--skip",
            "1-4294967295",
        ];
        if cmd == "run" {
            args.push("--no-display");
        }
        let out = sb.spyral(&args);
        assert_eq!(out.code, Some(2), "{cmd}: {}", out.all());
        assert!(
            out.stderr
                .contains("skipped: 1-4294967295 (4294967295 runs)"),
            "{cmd}: {}",
            out.stderr
        );
    }
    // The same ranges in the pipeline file, with a range item.
    let p2 = sb.pipeline(
        "runs: {min: 0, max: 4294967295, skip: [1, 3-4294967295]}",
        "  - kind: stamp\n",
    );
    let out = sb.spyral(&["plan", p2.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["runs_found"], 1);
    assert_eq!(v["skipped"], serde_json::json!([1, "3-4294967295"]));
    assert_eq!(v["missing"], serde_json::json!([0]));
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    assert!(!sb.ws().exists(), "created before runs were found");
    // Bad ranges: one clear line each.
    for (flag, value, says) in [
        (
            "--runs",
            "1..=4294967296",
            "`4294967296` is not a run number",
        ),
        ("--skip", "9-7", "empty range `9-7`"),
        ("--runs", "5..5", "empty range `5..5`"),
    ] {
        let out = sb.spyral(&["plan", &p, flag, value]);
        assert_eq!(out.code, Some(2), "{}", out.all());
        assert!(
            out.stderr.contains(&format!("{flag}: {says}")),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn files_named_like_runs_that_cannot_be_used_are_listed() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    let t = sb.traces();
    std::fs::write(t.join("run_0002.h5"), b"").unwrap();
    std::fs::create_dir(t.join("run_0003.h5")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(t.join("run_0004.h5"))
        .status()
        .unwrap();
    assert!(fifo.success());
    std::os::unix::fs::symlink(t.join("nowhere.h5"), t.join("run_0005.h5")).unwrap();
    let p = sb.pipeline("runs: {min: 1, max: 6}", "  - kind: stamp\n");
    let p = p.to_str().unwrap();
    let out = sb.spyral(&["plan", p]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    for (run, why) in [
        (2, "empty file"),
        (3, "a folder, not a file"),
        (4, "a named pipe (FIFO), not a file"),
        (5, "a symlink to nothing"),
    ] {
        let line = format!("cannot use run {run} (");
        let at = out
            .stdout
            .find(&line)
            .unwrap_or_else(|| panic!("{}", out.stdout));
        let rest = &out.stdout[at..];
        let rest = &rest[..rest.find('\n').unwrap()];
        assert!(
            rest.contains(&format!("run_{run:04}.h5")) && rest.ends_with(why),
            "{rest}"
        );
    }
    assert!(
        out.stdout.contains("missing in range: 6\n"),
        "{}",
        out.stdout
    );
    let json = sb.spyral(&["plan", p, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["unusable"][2]["run"], 4);
    assert_eq!(v["unusable"][2]["reason"], "fifo");
    // With no usable run at all, the error lists them.
    std::fs::remove_file(t.join("run_0001.h5")).unwrap();
    let out = sb.spyral(&["run", p, "--no-display"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("unusable files: run 2 (")
            && out.stderr.contains("a symlink to nothing"),
        "{}",
        out.stderr
    );
    assert!(!sb.ws().exists());
}

#[test]
fn a_bogus_log_level_is_refused() {
    let (sb, p) = three_runs("{min: 1, max: 3}");
    let out = sb.spyral(&["run", &p, "--log-level", "bogus", "--no-display"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("bogus") && out.stderr.contains("debug"),
        "{}",
        out.stderr
    );
    assert!(!sb.ws().exists());
    let out = sb.spyral(&["run", &p, "--log-level", "debug", "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let log = std::fs::read_to_string(sb.latest_log().join("parent.log")).unwrap();
    assert!(log.contains("DEBUG") || log.contains("INFO"), "{log}");
}

#[test]
fn a_bad_memory_margin_is_refused_before_anything_is_created() {
    let (sb, p) = three_runs("{min: 1, max: 3}");
    for value in ["99999999999999999", "abc", "-5", "18446744073709551616"] {
        let out = sb.spyral_env(
            &["run", &p, "--no-display"],
            &[("SPYRAL_MEMORY_MARGIN_MIB", value)],
        );
        assert_eq!(out.code, Some(2), "{value}: {}", out.all());
        assert!(
            out.stderr.contains("SPYRAL_MEMORY_MARGIN_MIB"),
            "{value}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(value), "{value}: {}", out.stderr);
        assert!(!sb.ws().exists(), "{value}");
    }
    let out = sb.spyral_env(
        &["run", &p, "--no-display"],
        &[("SPYRAL_MEMORY_MARGIN_MIB", "64")],
    );
    assert_eq!(out.code, Some(0), "{}", out.all());
}

#[test]
fn redirected_stderr_has_no_colour_codes() {
    // A skip entry outside the range is a warning on stderr (through the log layer).
    let (sb, p) = three_runs("{min: 1, max: 3, skip: [40]}");
    let out = sb.spyral(&["run", &p, "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stderr
            .contains("skip entries 40 are outside the run range 1..=3"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
}

#[test]
fn os_error_text_is_printed_once() {
    let sb = Sandbox::new();
    let out = sb.spyral(&["validate", "no-such-pipeline.yaml"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert_eq!(
        out.stderr.matches("(os error 2)").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("no-such-pipeline.yaml"),
        "{}",
        out.stderr
    );
    // A workspace whose parent is a file: the slurm scripts cannot be written.
    sb.trace(1, 10);
    std::fs::write(sb.path().join("blocker"), b"").unwrap();
    let p = sb.pipeline("runs: {min: 1, max: 1}", "  - kind: stamp\n");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("workspace: ws", "workspace: blocker/ws");
    std::fs::write(&p, text).unwrap();
    let out = sb.spyral(&["slurm", p.to_str().unwrap(), "--tasks", "2"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert_eq!(
        out.stderr.matches("(os error 20)").count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn more_workers_than_runs_or_cores_are_capped_or_warned() {
    let (sb, p) = three_runs("{min: 1, max: 3}");
    let out = sb.spyral(&["run", &p, "--workers", "50", "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stderr
            .contains("50 workers asked for 3 run(s): starting 3"),
        "{}",
        out.stderr
    );
    let cores = std::thread::available_parallelism().unwrap().get();
    if cores < 3 {
        assert!(
            out.stderr
                .contains(&format!("warning: 3 workers on {cores} cores")),
            "{}",
            out.stderr
        );
    }
    let rep = sb.report();
    assert_eq!(rep["workers"], 3, "{rep}");
}

#[test]
fn an_over_long_phase_name_or_a_link_loop_workspace_creates_nothing() {
    let (sb, _) = three_runs("{min: 1, max: 3}");
    let long = "P".repeat(201);
    let p = sb.pipeline(
        "runs: {min: 1, max: 3}",
        &format!("  - kind: stamp\n    name: {long}\n"),
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("201 bytes long"), "{}", out.stderr);
    assert!(!sb.ws().exists());
    // A workspace that is a symbolic link to itself.
    std::os::unix::fs::symlink(sb.ws(), sb.ws()).unwrap();
    let p = sb.pipeline("runs: {min: 1, max: 3}", "  - kind: stamp\n");
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("workspace"), "{}", out.stderr);
    assert!(std::fs::symlink_metadata(sb.ws()).unwrap().is_symlink());
    assert!(!sb.path().join("log").exists() && !sb.path().join(".spyral").exists());
}
