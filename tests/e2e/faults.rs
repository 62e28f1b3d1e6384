//! End-to-end tests of plugin faults outside workers: plugin code never runs in the `spyral`
//! parent, so a phase that segfaults, aborts or exits while being constructed, asked for its
//! schemas, or building assets or shared data is reported (phase, kind, call, how it died, the
//! tail of its stderr) with exit code 2, and `spyral` itself never dies with it. Also time
//! limits, stuck runs, a full disk, unusable run files, absurd event ranges, and an interrupt
//! while assets are built (exit 130 at once, no partial asset left).

use spyral_e2e::Sandbox;

fn fail_phase(mode: &str, method: &str) -> String {
    format!("  - kind: fail\n    config: {{mode: {mode}, method: {method}}}\n")
}

#[test]
fn crashes_while_validating_are_reported_not_fatal() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    for (mode, how) in [
        ("segfault", "killed by SIGSEGV"),
        ("abort", "killed by SIGABRT"),
        ("exit", "exit code 7"),
    ] {
        for (method, call) in [
            ("new", "construction"),
            ("incoming_schema", "incoming_schema"),
            ("outgoing_schema", "outgoing_schema"),
        ] {
            let p = sb.pipeline("runs: {min: 1, max: 1}", &fail_phase(mode, method));
            for cmd in ["validate", "run", "status"] {
                let out = sb.spyral(&[cmd, p.to_str().unwrap()]);
                assert_eq!(out.code, Some(2), "{cmd} {mode} {method}: {}", out.all());
                let want = format!("phase Fail (fail) in {call} crashed: {how}");
                assert!(
                    out.stderr.contains(&want),
                    "{cmd} {mode} {method}: expected `{want}` in:\n{}",
                    out.stderr
                );
                // With the tail of the plugin's stderr.
                assert!(
                    out.stderr.contains("last stderr lines")
                        && out.stderr.contains("testkit: about to crash"),
                    "{cmd} {mode} {method}: no stderr tail in:\n{}",
                    out.stderr
                );
            }
            // Validation failed: nothing was created.
            assert!(!sb.ws().exists(), "{mode} {method}: workspace created");
        }
    }
}

#[test]
fn crashes_while_building_assets_or_shared_data_are_reported() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    for (mode, how) in [
        ("segfault", "killed by SIGSEGV"),
        ("abort", "killed by SIGABRT"),
        ("exit", "exit code 7"),
    ] {
        for method in ["create_assets", "create_shared_data"] {
            let p = sb.pipeline("runs: {min: 1, max: 1}", &fail_phase(mode, method));
            let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
            assert_eq!(out.code, Some(2), "{mode} {method}: {}", out.all());
            let want = format!("phase Fail (fail) in {method} crashed: {how}");
            assert!(
                out.stderr.contains(&want),
                "{mode} {method}: expected `{want}` in:\n{}",
                out.stderr
            );
            // The parent lived to log it.
            let log = std::fs::read_to_string(sb.latest_log().join("parent.log")).unwrap();
            assert!(log.contains(&want) || log.contains("crashed"), "{log}");
            if method == "create_assets" {
                let out = sb.spyral(&["assets", p.to_str().unwrap()]);
                assert_eq!(out.code, Some(2), "{}", out.all());
                assert!(out.stderr.contains(&want), "{}", out.stderr);
            }
        }
    }
}

#[test]
fn a_crash_while_loading_a_library_names_the_library() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    // A file that is not a shared library at all is refused cleanly, naming it.
    let bogus = sb.file("libbogus.so", "not an ELF file");
    let p = sb.file(
        "p.yaml",
        &format!(
            "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 1}}\nplugins: [{}]\nphases:\n  - kind: stamp\n",
            bogus.display()
        ),
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("libbogus.so"), "{}", out.stderr);
}

#[test]
fn run_timeout_fails_runs_that_take_too_long() {
    let sb = Sandbox::new();
    for r in 1..=2 {
        sb.trace(r, 500);
    }
    // A phase that honours the request to stop.
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}\nworkers: 1\nseed: 1\nrun_timeout: 1s",
        "  - kind: stamp\n    config: {sleep_ms: 30000}\n",
    );
    let t = std::time::Instant::now();
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(t.elapsed().as_secs() < 20, "took {:?}", t.elapsed());
    for r in 1..=2 {
        let rec = spyral_e2e::run_record(&sb.report(), r);
        assert_eq!(rec["status"], "failed", "{rec}");
        assert!(
            rec["error"]
                .as_str()
                .unwrap()
                .contains("exceeded run_timeout (1 s) in phase Stamp"),
            "{rec}"
        );
    }
    let st = sb.spyral(&["status", p.to_str().unwrap()]);
    assert!(st.stdout.contains("timeout"), "{}", st.stdout);
    // Without the limit (command line overrides the file) the same runs succeed.
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}\nworkers: 1\nseed: 1\nrun_timeout: 1s",
        "  - kind: stamp\n    config: {sleep_ms: 200}\n",
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--run-timeout", "1h"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
}

#[test]
fn a_stuck_run_is_killed_and_an_idle_worker_takes_its_queued_runs() {
    let sb = Sandbox::new();
    // Sizes make the snake plan over 2 workers: worker 0 gets [1, 4], worker 1 gets [2, 3].
    for (r, bytes) in [(1, 4000), (2, 3000), (3, 2000), (4, 1000)] {
        sb.trace(r, bytes);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 4}\nworkers: 2\nseed: 1\nrun_timeout: 1",
        "  - kind: fail\n    config: {runs: [1], mode: hang}\n",
    );
    let plan = sb.spyral(&["plan", p.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(v["workers"][0]["runs"], serde_json::json!([1, 4]), "{v}");
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    let rep = sb.report();
    let r1 = spyral_e2e::run_record(&rep, 1);
    assert_eq!(r1["status"], "failed", "{r1}");
    assert!(
        r1["error"]
            .as_str()
            .unwrap()
            .contains("did not stop when asked"),
        "{r1}"
    );
    for r in 2..=4 {
        assert_eq!(spyral_e2e::run_record(&rep, r)["status"], "ok", "{rep:#}");
    }
    // Run 4 was planned behind the stuck run on worker 0; worker 1 took it.
    assert_eq!(spyral_e2e::run_record(&rep, 4)["worker"], 1, "{rep:#}");
}

fn partial_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            partial_files(&p, out);
        } else if p.to_string_lossy().ends_with(".partial") {
            out.push(p);
        }
    }
}

#[test]
fn a_full_disk_still_gives_a_summary_and_leaves_no_temporary_files() {
    let sb = Sandbox::new();
    for r in 1..=3 {
        sb.trace(r, 500);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 3}\nworkers: 1\nseed: 1",
        "  - kind: stamp\n    config: {bytes: 20000}\n",
    );
    std::fs::create_dir_all(sb.ws()).unwrap();
    // A private mount namespace with a small file system for the workspace, filled up before
    // the launch; what the launch printed and left is captured before the namespace (and its
    // file system) goes away. Needs root (CI runs as root).
    let script = format!(
        "mount -t tmpfs -o size=256k tmpfs {ws} || exit 99; \
         dd if=/dev/zero of={ws}/filler bs=4k 2>/dev/null; \
         {bin} run {p} --no-display >out.txt 2>err.txt; echo $? >code.txt; \
         find {ws} -name '*.partial' >left.txt",
        ws = sb.ws().display(),
        bin = spyral_e2e::spyral_bin().display(),
        p = p.display()
    );
    let status = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .current_dir(sb.path())
        .env_remove("SPYRAL_PLUGIN_PATH")
        .status()
        .expect("unshare");
    assert!(
        status.success(),
        "this test needs root (unshare -m, mount -t tmpfs): {status}"
    );
    let read = |f: &str| std::fs::read_to_string(sb.path().join(f)).unwrap();
    let (stdout, stderr) = (read("out.txt"), read("err.txt"));
    assert_eq!(read("code.txt").trim(), "1", "{stdout}\n{stderr}");
    assert!(
        stdout.contains("3 runs: 0 ok, 3 failed"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("the report could not be written"),
        "{stdout}\n{stderr}"
    );
    assert!(
        read("left.txt").trim().is_empty(),
        "left: {}",
        read("left.txt")
    );
    // The lost log lines are said, not silently dropped.
    assert!(
        stderr.contains("cannot write the log file") && stderr.contains("parent.log"),
        "{stderr}"
    );
    let mut outside = Vec::new();
    partial_files(&sb.ws(), &mut outside);
    assert!(outside.is_empty(), "{outside:?}");
}

#[test]
fn files_named_like_runs_that_cannot_be_used_are_listed() {
    let sb = Sandbox::new();
    sb.trace(1, 500);
    std::fs::write(sb.traces().join("run_0002.h5"), b"").unwrap();
    std::fs::create_dir(sb.traces().join("run_0003.h5")).unwrap();
    std::os::unix::fs::symlink(
        sb.traces().join("nowhere.h5"),
        sb.traces().join("run_0004.h5"),
    )
    .unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(sb.traces().join("run_0005.h5"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let p = sb.pipeline("runs: {min: 1, max: 5}\nseed: 1", "  - kind: stamp\n");
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    for (run, why) in [
        (2, "empty"),
        (3, "a folder"),
        (4, "symlink to nothing"),
        (5, "pipe"),
    ] {
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains(&format!("not processed: run {run} ")))
            .unwrap_or_else(|| panic!("run {run} not listed:\n{}", out.stderr));
        assert!(line.contains(why), "{line}");
    }
    let rep = sb.report();
    assert_eq!(rep["unusable"].as_array().unwrap().len(), 4, "{rep:#}");
    let log = std::fs::read_to_string(sb.latest_log().join("parent.log")).unwrap();
    assert!(log.contains("not processed: run 5"), "{log}");
}

#[test]
fn an_absurd_event_range_fails_its_run_at_once_naming_file_and_attribute() {
    let sb = Sandbox::new();
    let out = sb.spyral(&[
        "simulate",
        "--out",
        "traces",
        "--runs",
        "2",
        "--events",
        "3",
        "--seed",
        "4",
        "--format",
        "merger-1.0",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    // Run 1 claims 2^63 events (h5py, as a damaged or hostile file would).
    let patch = std::process::Command::new("python3")
        .args([
            "-c",
            "import h5py,sys; f=h5py.File(sys.argv[1],'r+'); f['events'].attrs['max_event']=2**63; f.close()",
        ])
        .arg(sb.traces().join("run_0001.h5"))
        .output()
        .unwrap();
    assert!(
        patch.status.success(),
        "{}",
        String::from_utf8_lossy(&patch.stderr)
    );
    let p = sb.file(
        "p.yaml",
        "workspace: ws\ntraces: traces\nruns: {min: 1, max: 2}\nworkers: 1\nseed: 1\nphases:\n  - kind: pointcloud\n",
    );
    let t = std::time::Instant::now();
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(t.elapsed().as_secs() < 60, "took {:?}", t.elapsed());
    let rep = sb.report();
    let r1 = spyral_e2e::run_record(&rep, 1);
    let err = r1["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("run_0001.h5") && err.contains("max_event"),
        "{r1}"
    );
    assert_eq!(spyral_e2e::run_record(&rep, 2)["status"], "ok", "{rep:#}");
}

#[test]
fn an_interrupt_while_assets_are_built_stops_at_once_and_leaves_no_partial_asset() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    let p = sb.pipeline(
        "runs: {min: 1, max: 1}",
        "  - kind: stamp\n    config: {asset_ms: 20000}\n",
    );
    let child = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
    let assets = sb.ws().join("Stamp_assets");
    let partial = || {
        std::fs::read_dir(&assets)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            })
            .unwrap_or(false)
    };
    let t = std::time::Instant::now();
    while !partial() && t.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(partial(), "the asset build never started");
    spyral_e2e::send_signal(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    // Long before the 20 s build would have finished.
    assert!(
        t.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        t.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted while creating assets"),
        "{stderr}"
    );
    assert!(!partial(), "a partial asset was left behind");
    assert!(!assets.join("stamp-asset.bin").exists());
    assert!(!sb.ws().join("Stamp/run_0001.bin").exists());
}

#[test]
fn run_timeout_limits_a_split_run_over_all_its_chunks() {
    let sb = Sandbox::new();
    // Run 1: 40 events of 100 bytes in 4 chunks of 10, 0.5 s each (2 s of work); run 2: 5
    // events, whole (0.25 s).
    sb.trace(1, 4000);
    sb.trace(2, 500);
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}\nworkers: 2\nseed: 1\nchunk_events: 10\nrun_timeout: 1.2s",
        "  - kind: lines\n    config: {sleep_ms_per_event: 50}\n",
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    let rep = sb.report();
    // Every chunk alone is under the limit, the run is not.
    let run1 = spyral_e2e::run_record(&rep, 1);
    assert_eq!(run1["status"], "failed", "{run1}");
    assert!(
        run1["error"]
            .as_str()
            .unwrap()
            .contains("exceeded run_timeout (1.2 s) in phase Lines"),
        "{run1}"
    );
    assert_eq!(spyral_e2e::run_record(&rep, 2)["status"], "ok");
    assert!(!sb.ws().join("Lines/run_0001.txt").exists());
}
