//! End-to-end tests of result integrity: workers run exactly the chain the parent validated,
//! provenance identifies code and inputs by content, `status` predicts exactly what the next
//! launch does, launches sharing a workspace coordinate through OS locks, raw data and existing
//! files are never overwritten, and a run handed to a worker that dies is not lost.

use spyral_e2e::{run_record, workspace_root, Output, Sandbox};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Waits until `path` exists (panics after 60 s).
fn wait_for(path: &Path) {
    let t = Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every launch report in the workspace's log folder.
fn all_reports(ws: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(ws.join("log")).unwrap().flatten() {
        let p = e.path().join("report.json");
        if e.file_type().unwrap().is_dir() && p.exists() {
            out.push(serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap());
        }
    }
    out
}

/// `(run, phase) -> state` from `spyral status --json`.
fn status_states(sb: &Sandbox, p: &Path) -> BTreeMap<(u64, String), String> {
    let out = sb.spyral(&["status", p.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut m = BTreeMap::new();
    for row in v.as_array().unwrap() {
        for cell in row["phases"].as_array().unwrap() {
            m.insert(
                (
                    row["run"].as_u64().unwrap(),
                    cell["phase"].as_str().unwrap().to_string(),
                ),
                cell["state"].as_str().unwrap().to_string(),
            );
        }
    }
    m
}

/// The `status` of each phase record of a run's `phases` in `report.json`.
fn statuses(phases: &serde_json::Value) -> Vec<&str> {
    phases
        .as_array()
        .unwrap()
        .iter()
        .map(|ph| ph["status"].as_str().unwrap())
        .collect()
}

fn partials(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn workers_run_the_validated_chain_even_if_the_file_is_edited() {
    let sb = Sandbox::new();
    for r in 1..=3 {
        sb.trace(r, 1000);
    }
    let marker = sb.file("segfault-armed", "x");
    let pipeline = |bytes: usize| {
        sb.pipeline(
            "runs: {min: 1, max: 3}\nworkers: 1\nseed: 3",
            &format!(
                "  - kind: stamp\n    config: {{bytes: {bytes}, sleep_ms: 300}}\n  - kind: fail\n    config: {{runs: [1], mode: segfault, while_exists: {}}}\n",
                marker.display()
            ),
        )
    };
    let p = pipeline(4096);
    let child = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
    // The first worker has its job once its log exists: edit the file then.
    wait_for(&sb.ws().join("log/latest/worker-0.log"));
    pipeline(2048);
    let out = Output::from(child.wait_with_output().unwrap());
    let text = out.all();
    // Run 1's Fail phase killed the worker; a replacement did runs 2 and 3.
    assert_eq!(out.code, Some(1), "{text}");
    assert!(text.contains("replacement"), "{text}");
    for r in 1..=3 {
        let len = std::fs::metadata(sb.ws().join(format!("Stamp/run_{r:04}.bin")))
            .unwrap()
            .len();
        assert_eq!(len, 4096 + 16, "run {r} ran with an edited config");
    }
    // With the validated config every Stamp is current; with the edited one, stale by field.
    pipeline(4096);
    let st = status_states(&sb, &p);
    for r in 1..=3 {
        assert_eq!(st[&(r, "Stamp".to_string())], "current", "{st:?}");
    }
    pipeline(2048);
    let out = sb.spyral(&["status", p.to_str().unwrap()]);
    assert!(
        out.stdout
            .contains("run 2 Stamp: stale: config field bytes changed 4096 -> 2048"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_rebuilt_plugin_with_the_same_version_makes_its_results_stale() {
    let sb = Sandbox::new();
    // The generated phase is a charge gate over Pointcloud's clouds.
    sb.simulated(1, 8, 3);
    let sdk = sb.path().join("sdk");
    let out = sb.spyral_env(
        &["new-phase", "rebuilt", "--dir", "plugins"],
        &[("SPYRAL_SDK_DIR", sdk.to_str().unwrap())],
    );
    assert_eq!(out.code, Some(0), "{}", out.all());
    let krate = sb.path().join("plugins/rebuilt");
    std::fs::copy(
        workspace_root().join("Cargo.lock"),
        krate.join("Cargo.lock"),
    )
    .unwrap();
    // Shared with the scaffold test, so dependencies are built once.
    let target = spyral_e2e::profile_dir()
        .parent()
        .unwrap()
        .join("scaffold-test");
    let build = || {
        let b = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--offline", "--quiet"])
            .current_dir(&krate)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(
            b.status.success(),
            "cargo build failed:\n{}",
            String::from_utf8_lossy(&b.stderr)
        );
    };
    build();
    // Copy the build out of the shared target folder (another test may rebuild there).
    let lib = sb.path().join("librebuilt.so");
    std::fs::copy(target.join("debug/librebuilt.so"), &lib).unwrap();
    let p = sb.file(
        "p.yaml",
        &format!(
            "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 1}}\nseed: 1\nplugins: [{}]\nphases:\n  - kind: pointcloud\n  - kind: rebuilt\n    config: {{min_points: 1}}\n",
            lib.display()
        ),
    );
    assert_eq!(sb.spyral(&["run", p.to_str().unwrap()]).code, Some(0));
    let before = std::fs::read(sb.ws().join("Rebuilt/run_0001.parquet")).unwrap();
    assert_eq!(status_states(&sb, &p)[&(1, "Rebuilt".into())], "current");
    // Same crate, same version, different code.
    let src = krate.join("src/lib.rs");
    let code = std::fs::read_to_string(&src).unwrap();
    let sum = "table.push_f64(\"total_amplitude\", sum(3));";
    assert!(code.contains(sum), "{code}");
    std::fs::write(&src, code.replace(sum, &sum.replace("sum(3)", "sum(4)"))).unwrap();
    build();
    std::fs::copy(target.join("debug/librebuilt.so"), &lib).unwrap();
    let out = sb.spyral(&["status", p.to_str().unwrap()]);
    assert!(
        out.stdout
            .contains("run 1 Rebuilt: stale: plugin code changed"),
        "{}",
        out.stdout
    );
    let out = sb.spyral(&["run", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let ph = &run_record(&sb.report(), 1)["phases"][1];
    assert_eq!(ph["status"], "ok", "{ph}");
    assert_eq!(ph["reason"]["why"], "stale", "{ph}");
    assert_eq!(ph["reason"]["reason"], "plugin-changed", "{ph}");
    let after = std::fs::read(sb.ws().join("Rebuilt/run_0001.parquet")).unwrap();
    assert_ne!(before, after);
}

fn stamp_template() -> &'static str {
    "  - kind: stamp\n  - kind: template\n    config: {input_artifact: stamp}\n"
}

#[test]
fn a_forced_phase_reruns_everything_after_it() {
    let sb = Sandbox::new();
    for r in 1..=2 {
        sb.trace(r, 900);
    }
    let p = sb.pipeline("runs: {min: 1, max: 2}\nseed: 4", stamp_template());
    assert_eq!(sb.spyral(&["run", p.to_str().unwrap()]).code, Some(0));
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--force=Stamp"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let rep = sb.report();
    for r in 1..=2 {
        let phases = &run_record(&rep, r)["phases"];
        assert_eq!(phases[0]["status"], "ok");
        assert_eq!(phases[0]["reason"]["why"], "forced");
        assert_eq!(phases[1]["status"], "ok", "{phases}");
        assert_eq!(phases[1]["reason"]["why"], "upstream");
        assert_eq!(phases[1]["reason"]["phase"], "Stamp");
    }
    // Afterwards everything is current.
    assert!(status_states(&sb, &p).values().all(|s| s == "current"));
}

#[test]
fn inputs_are_compared_by_content() {
    let sb = Sandbox::new();
    for r in 1..=2 {
        sb.trace(r, 900);
    }
    let p = sb.pipeline("runs: {min: 1, max: 2}\nseed: 4", stamp_template());
    assert_eq!(sb.spyral(&["run", p.to_str().unwrap()]).code, Some(0));
    // Stamp inactive: its artifacts are used as they are, identified by their bytes.
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}\nseed: 4",
        "  - kind: stamp\n    active: false\n  - kind: template\n    config: {input_artifact: stamp}\n",
    );
    let st = status_states(&sb, &p);
    assert_eq!(st[&(1, "Template".into())], "current", "{st:?}");
    // The same bytes written again (new modification time) are the same input.
    let f1 = sb.ws().join("Stamp/run_0001.bin");
    let bytes = std::fs::read(&f1).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&f1, &bytes).unwrap();
    // Different bytes are not.
    let f2 = sb.ws().join("Stamp/run_0002.bin");
    let mut other = std::fs::read(&f2).unwrap();
    other[20] ^= 0xff;
    std::fs::write(&f2, &other).unwrap();
    let out = sb.spyral(&["status", p.to_str().unwrap()]);
    assert!(
        out.stdout.contains("run 2 Template: stale: input `stamp`"),
        "{}",
        out.stdout
    );
    let st = status_states(&sb, &p);
    assert_eq!(st[&(1, "Template".into())], "current", "{st:?}");
    assert_eq!(st[&(2, "Template".into())], "stale", "{st:?}");
    assert_eq!(sb.spyral(&["run", p.to_str().unwrap()]).code, Some(0));
    let rep = sb.report();
    assert_eq!(run_record(&rep, 1)["phases"][1]["status"], "up-to-date");
    assert_eq!(run_record(&rep, 2)["phases"][1]["status"], "ok");
}

#[test]
fn status_predicts_exactly_what_the_next_launch_does_after_an_interrupt() {
    let sb = Sandbox::new();
    for r in 1..=4 {
        sb.trace(r, 900);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 4}\nworkers: 1\nseed: 8",
        "  - kind: stamp\n    config: {sleep_ms: 250}\n  - kind: template\n    config: {input_artifact: stamp}\n",
    );
    let child = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
    wait_for(&sb.ws().join("Template/run_0001.json"));
    std::thread::sleep(Duration::from_millis(100));
    spyral_e2e::send_signal(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    // Make one done phase stale too.
    let p = sb.pipeline(
        "runs: {min: 1, max: 4}\nworkers: 1\nseed: 8",
        "  - kind: stamp\n    config: {sleep_ms: 250}\n  - kind: template\n    config: {input_artifact: stamp, buffer_kib: 8}\n",
    );
    let predicted = status_states(&sb, &p);
    assert!(predicted.values().any(|s| s == "current"), "{predicted:?}");
    assert!(predicted.values().any(|s| s != "current"), "{predicted:?}");
    let out = sb.spyral(&["run", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let rep = sb.report();
    for ((run, phase), state) in &predicted {
        let ph = run_record(&rep, *run)["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["phase"] == phase.as_str())
            .cloned()
            .unwrap();
        let skipped = ph["status"] == "up-to-date";
        assert_eq!(
            skipped,
            state == "current",
            "run {run} {phase}: status said {state}, the launch did {ph}"
        );
    }
}

#[test]
fn overlapping_launches_compute_every_run_exactly_once() {
    let sb = Sandbox::new();
    for r in 1..=6 {
        sb.trace(r, 900);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 6}\nworkers: 1\nseed: 2",
        "  - kind: stamp\n    config: {sleep_ms: 300}\n",
    );
    let a = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
    std::thread::sleep(Duration::from_millis(500));
    let b = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for o in [Output::from(a), Output::from(b)] {
        let text = o.all();
        assert_eq!(o.code, Some(0), "{text}");
        assert!(!text.contains("cannot rename"), "{text}");
    }
    let reports = all_reports(&sb.ws());
    assert_eq!(reports.len(), 2);
    for r in 1..=6u64 {
        let computed = reports
            .iter()
            .filter(|rep| run_record(rep, r)["phases"][0]["status"] == "ok")
            .count();
        assert_eq!(computed, 1, "run {r} computed {computed} times");
        for rep in &reports {
            let st = run_record(rep, r)["status"].clone();
            assert!(
                st == "ok" || st == "in-another-launch",
                "run {r}: {st} in {rep:#}"
            );
        }
    }
    assert!(partials(&sb.ws().join("Stamp")).is_empty());
    assert!(status_states(&sb, &p).values().all(|s| s == "current"));
}

#[test]
fn launches_started_together_build_the_assets_once() {
    let sb = Sandbox::new();
    for r in 1..=2 {
        sb.trace(r, 900);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}\nseed: 2",
        "  - kind: stamp\n    config: {asset_ms: 800}\n",
    );
    let a = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
    let b = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let stderr = format!(
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert_eq!(a.status.code(), Some(0), "{stderr}");
    assert_eq!(b.status.code(), Some(0), "{stderr}");
    let builds = std::fs::read_to_string(sb.ws().join("Stamp_assets/builds.log")).unwrap();
    assert_eq!(builds.lines().count(), 1, "{builds}");
    assert!(stderr.contains("waiting for another launch"), "{stderr}");
}

#[test]
fn output_folders_touching_the_traces_are_refused_before_anything_is_created() {
    let sb = Sandbox::new();
    sb.trace(1, 800);
    let raw = std::fs::read(sb.traces().join("run_0001.h5")).unwrap();
    let plugin = spyral_e2e::plugin("spyral_testkit");
    let p = sb.file(
        "p.yaml",
        &format!(
            "workspace: .\ntraces: traces\nruns: {{min: 1, max: 1}}\nplugins: [{}]\nphases:\n  - kind: stamp\n    name: traces\n",
            plugin.display()
        ),
    );
    for cmd in ["validate", "run", "assets"] {
        let out = sb.spyral(&[cmd, p.to_str().unwrap()]);
        assert_eq!(out.code, Some(2), "{cmd}: {}", out.all());
        assert!(
            out.stderr.contains("is the trace folder")
                && out.stderr.contains("never writes into raw data"),
            "{cmd}: {}",
            out.stderr
        );
    }
    assert_eq!(std::fs::read(sb.traces().join("run_0001.h5")).unwrap(), raw);
    assert!(!sb.path().join("log").exists());
    assert!(!sb.path().join(".spyral").exists());
    assert!(!sb.path().join("traces_assets").exists());
    // Through a symbolic link made by hand in the workspace.
    std::fs::create_dir_all(sb.ws()).unwrap();
    std::os::unix::fs::symlink(sb.traces(), sb.ws().join("Stamp")).unwrap();
    let p = sb.pipeline("runs: {min: 1, max: 1}", "  - kind: stamp\n");
    let out = sb.spyral(&["run", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("the trace folder"), "{}", out.stderr);
    assert_eq!(std::fs::read(sb.traces().join("run_0001.h5")).unwrap(), raw);
    assert!(!sb.ws().join("log").exists());

    // `spyral slurm` validates the same way before it writes its scripts: with the traces in
    // the workspace's `slurm` folder, nothing is written there.
    let slurm = sb.path().join("slurm");
    std::fs::create_dir_all(&slurm).unwrap();
    std::fs::write(slurm.join("run_0001.h5"), &raw).unwrap();
    let p = sb.file(
        "s.yaml",
        &format!(
            "workspace: .\ntraces: slurm\nruns: {{min: 1, max: 1}}\nplugins: [{}]\nphases:\n  - kind: stamp\n",
            plugin.display()
        ),
    );
    let out = sb.spyral(&["slurm", p.to_str().unwrap(), "--tasks", "1"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("slurm") && out.stderr.contains("the trace folder"),
        "{}",
        out.stderr
    );
    let names: Vec<_> = std::fs::read_dir(&slurm)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["run_0001.h5"],
        "nothing written beside the raw data"
    );
    assert!(!sb.path().join("log").exists());
}

#[test]
fn a_plugins_default_phase_name_is_checked_like_a_written_one() {
    let sb = Sandbox::new();
    sb.trace(1, 800);
    let p = sb.pipeline("runs: {min: 1, max: 1}", "  - kind: log-named\n");
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(
        out.stderr
            .contains("default phase name cannot be a folder name")
            && out.stderr.contains("give the phase a `name:`"),
        "{}",
        out.stderr
    );
    assert!(!sb.ws().exists());
    let p = sb.pipeline(
        "runs: {min: 1, max: 1}",
        "  - kind: log-named\n    name: Quiet\n",
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
}

#[test]
fn simulate_and_demo_refuse_to_overwrite_existing_files() {
    let sb = Sandbox::new();
    let sim = |extra: &[&str]| {
        let mut args = vec!["simulate", "--out", "sim", "--runs", "1", "--events", "2"];
        args.extend_from_slice(extra);
        sb.spyral(&args)
    };
    assert_eq!(sim(&["--seed", "1"]).code, Some(0));
    let first = std::fs::read(sb.path().join("sim/run_0001.h5")).unwrap();
    let out = sim(&["--seed", "2"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("refusing to overwrite") && out.stderr.contains("run_0001.h5"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read(sb.path().join("sim/run_0001.h5")).unwrap(),
        first
    );
    assert_eq!(sim(&["--seed", "2", "--overwrite"]).code, Some(0));
    assert_ne!(
        std::fs::read(sb.path().join("sim/run_0001.h5")).unwrap(),
        first
    );
    // A demo folder whose pipeline was edited is left alone.
    let mine = sb.file("d/pipeline.yaml", "# my own pipeline\n");
    let out = sb.spyral(&["demo", "--dir", "d", "--no-display"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("refusing to overwrite") && out.stderr.contains("pipeline.yaml"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&mine).unwrap(),
        "# my own pipeline\n"
    );
    assert!(!sb.path().join("d/traces").exists());
}

#[test]
fn a_run_handed_to_a_worker_that_dies_before_starting_it_is_requeued() {
    let sb = Sandbox::new();
    for r in 1..=3 {
        sb.trace(r, 800);
    }
    let marker = sb.file("die-once", "x");
    let p = sb.pipeline(
        "runs: {min: 1, max: 3}\nworkers: 1\nseed: 1",
        "  - kind: stamp\n",
    );
    let fault = format!("die-after-assign:2@{}", marker.display());
    let out = sb.spyral_env(
        &["run", p.to_str().unwrap(), "--no-display"],
        &[("SPYRAL_FAULT", &fault)],
    );
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(!marker.exists(), "the fault did not fire");
    let rep = sb.report();
    assert_eq!(rep["replacement_workers"], 1, "{rep:#}");
    for r in 1..=3 {
        assert_eq!(run_record(&rep, r)["status"], "ok", "{rep:#}");
    }
    assert!(out.stdout.contains("1 replacement"), "{}", out.stdout);
}

#[test]
fn a_gate_file_edited_in_place_makes_only_the_solver_stale() {
    let sb = Sandbox::new();
    sb.simulated(1, 6, 9);
    let p = sb.file(
        "p.yaml",
        &format!(
            "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 1}}\nseed: 2\nphases:\n{}",
            spyral_e2e::SMALL_CHAIN
        ),
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(status_states(&sb, &p).values().all(|s| s == "current"));
    // Same path, same configuration, different gate (as the report's gate editor saves it).
    let gate = sb.path().join("pid.json");
    let text = std::fs::read_to_string(&gate).unwrap();
    let edited = text.replacen("\"name\"", "\"comment\": \"redrawn\", \"name\"", 1);
    assert_ne!(text, edited);
    std::fs::write(&gate, edited).unwrap();
    let out = sb.spyral(&["status", p.to_str().unwrap()]);
    assert!(
        out.stdout
            .contains("run 1 InterpSolver: stale: file named by config field particle_id_filename"),
        "{}",
        out.stdout
    );
    let st = status_states(&sb, &p);
    for phase in ["Pointcloud", "Cluster", "Estimation"] {
        assert_eq!(st[&(1, phase.into())], "current", "{st:?}");
    }
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let phases = run_record(&sb.report(), 1)["phases"].clone();
    let states = statuses(&phases);
    assert_eq!(
        states,
        ["up-to-date", "up-to-date", "up-to-date", "ok"],
        "{phases}"
    );
    assert!(status_states(&sb, &p).values().all(|s| s == "current"));
}

#[test]
fn a_replacement_worker_refuses_a_library_rebuilt_during_the_launch() {
    let sb = Sandbox::new();
    for r in 1..=3 {
        sb.trace(r, 1000);
    }
    // A private copy of the test plugin, replaced (by rename, as a build would) mid-launch.
    let lib_dir = sb.path().join("lib");
    std::fs::create_dir_all(&lib_dir).unwrap();
    let lib = lib_dir.join("libspyral_testkit.so");
    std::fs::copy(spyral_e2e::plugin("spyral_testkit"), &lib).unwrap();
    let marker = sb.file("segfault-armed", "x");
    let p = sb.file(
        "p.yaml",
        &format!(
            "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 3}}\nworkers: 1\nseed: 3\nplugins: [{}]\nphases:\n  - kind: stamp\n    config: {{sleep_ms: 300}}\n  - kind: fail\n    config: {{runs: [1], mode: segfault, while_exists: {}}}\n",
            lib.display(),
            marker.display()
        ),
    );
    let other = lib_dir.join(".new.so");
    std::fs::copy(spyral_e2e::plugin("template"), &other).unwrap();
    let child = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
    // The first worker has loaded the library once its log exists; run 1 takes 300 ms.
    wait_for(&sb.ws().join("log/latest/worker-0.log"));
    std::fs::rename(&other, &lib).unwrap();
    let out = Output::from(child.wait_with_output().unwrap());
    let text = out.all();
    // Run 1 killed the first worker; its replacements refuse the changed library, by name,
    // and the launch ends (a bounded number of replacements) with the other runs not run.
    assert_eq!(out.code, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "plugin library {} changed after the launch validated it",
            lib.display()
        )) && text.contains("rerun `spyral run` to use the new build"),
        "{text}"
    );
    assert!(
        text.contains("run 2: not run") && text.contains("run 3: not run"),
        "{text}"
    );
    assert!(!sb.ws().join("Stamp/run_0002.bin").exists());
}

/// A phase that reads a non-adjacent earlier phase by name (charge-sum reads Pointcloud's clouds)
/// is stale when that phase changed, even if the phase between wrote the same bytes: here a
/// second pipeline over the same workspace reruns Pointcloud with another threshold and a
/// `stamp` whose output ignores its input, without charge-sum. Every identity holds the record
/// hash of the phase before it, so the change reaches charge-sum through Stamp's record.
#[test]
fn a_phase_reading_an_earlier_phase_by_name_sees_it_change_through_identical_outputs() {
    let sb = Sandbox::new();
    sb.simulated(1, 6, 9);
    let pipeline = |name: &str, threshold: f64, tail: &str| {
        sb.file(
            name,
            &format!(
                "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 1}}\nseed: 2\nplugins:\n  - {}\n  - {}\n\
                 phases:\n  - kind: pointcloud\n    config: {{get: {{peak_threshold: {threshold}}}}}\n\
                 \x20 - kind: stamp\n    config: {{ignore_input: true}}\n{tail}",
                spyral_e2e::plugin("spyral_testkit").display(),
                spyral_e2e::plugin("charge_sum").display(),
            ),
        )
    };
    let charge = "  - kind: charge-sum\n    config: {min_points: 1}\n";
    let full = pipeline("full.yaml", 40.0, charge);
    let out = sb.spyral(&["run", full.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let stamp = sb.ws().join("Stamp/run_0001.bin");
    let stamp_before = std::fs::read(&stamp).unwrap();
    let clouds_before = std::fs::read(sb.ws().join("Pointcloud/run_0001.h5")).unwrap();

    // Pointcloud and Stamp only, with another threshold.
    let partial = pipeline("partial.yaml", 60.0, "");
    let out = sb.spyral(&["run", partial.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let rep = sb.report();
    assert_eq!(run_record(&rep, 1)["phases"][0]["status"], "ok");
    assert_eq!(run_record(&rep, 1)["phases"][1]["status"], "ok");
    assert_eq!(std::fs::read(&stamp).unwrap(), stamp_before, "same bytes");
    assert_ne!(
        std::fs::read(sb.ws().join("Pointcloud/run_0001.h5")).unwrap(),
        clouds_before,
        "the threshold changed the clouds"
    );

    // The full chain with the new threshold: Pointcloud and Stamp are current, ChargeSum is
    // not, and `status` says why.
    let full = pipeline("full.yaml", 60.0, charge);
    let out = sb.spyral(&["status", full.to_str().unwrap()]);
    assert!(
        out.stdout.contains(
            "run 1 ChargeSum: stale: earlier phases changed since it ran (record of Stamp)"
        ),
        "{}",
        out.stdout
    );
    let st = status_states(&sb, &full);
    assert_eq!(st[&(1, "Pointcloud".into())], "current", "{st:?}");
    assert_eq!(st[&(1, "Stamp".into())], "current", "{st:?}");
    assert_eq!(st[&(1, "ChargeSum".into())], "stale", "{st:?}");
    let out = sb.spyral(&["run", full.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let phases = run_record(&sb.report(), 1)["phases"].clone();
    let states = statuses(&phases);
    assert_eq!(states, ["up-to-date", "up-to-date", "ok"], "{phases}");
    assert!(status_states(&sb, &full).values().all(|s| s == "current"));
}
