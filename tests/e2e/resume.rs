//! End-to-end tests of resume and provenance: re-runs skip what is current, config changes
//! rerun that phase and the later ones, interrupted launches finish only what is missing with
//! byte-identical results, failed runs are retried, and `spyral status` shows each state.

use spyral_e2e::{run_record, Sandbox};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_file() {
            m.insert(
                p.file_name().unwrap().to_string_lossy().into_owned(),
                (
                    std::fs::read(&p).unwrap(),
                    std::fs::metadata(&p).unwrap().modified().unwrap(),
                ),
            );
        }
    }
    m
}

fn chain(stamp_bytes: usize, template_kib: usize) -> String {
    format!(
        "  - kind: stamp\n    config: {{bytes: {stamp_bytes}}}\n  - kind: template\n    config: {{input_artifact: stamp, buffer_kib: {template_kib}}}\n"
    )
}

#[test]
fn rerun_is_up_to_date_and_rewrites_nothing() {
    let sb = Sandbox::new();
    for r in 1..=4 {
        sb.trace(r, 5000);
    }
    let p = sb.pipeline(
        "runs: {min: 1, max: 4}\nworkers: 2\nseed: 5",
        &chain(4096, 64),
    );
    let out = sb.spyral(&["run", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let stamp = snapshot(&sb.ws().join("Stamp"));
    let tmpl = snapshot(&sb.ws().join("Template"));
    let out = sb.spyral(&["run", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stdout.contains("4 already up to date"),
        "{}",
        out.stdout
    );
    assert_eq!(snapshot(&sb.ws().join("Stamp")), stamp);
    assert_eq!(snapshot(&sb.ws().join("Template")), tmpl);
    let rep = sb.report();
    assert_eq!(run_record(&rep, 1)["phases"][0]["status"], "up-to-date");
    // --force reruns one phase.
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--force=Template"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let rep = sb.report();
    assert_eq!(run_record(&rep, 1)["phases"][0]["status"], "up-to-date");
    assert_eq!(run_record(&rep, 1)["phases"][1]["status"], "ok");
}

#[test]
fn config_change_reruns_that_phase_and_later_ones() {
    let sb = Sandbox::new();
    for r in 1..=3 {
        sb.trace(r, 5000);
    }
    let p = sb.pipeline("runs: {min: 1, max: 3}\nseed: 5", &chain(4096, 64));
    assert_eq!(sb.spyral(&["run", p.to_str().unwrap()]).code, Some(0));
    let stamp = snapshot(&sb.ws().join("Stamp"));
    // Change the first phase: both rerun.
    let p = sb.pipeline("runs: {min: 1, max: 3}\nseed: 5", &chain(2048, 64));
    let status = sb.spyral(&["status", p.to_str().unwrap()]);
    assert!(
        status
            .stdout
            .contains("run 1 Stamp: stale: config field bytes changed 4096 -> 2048"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("run 1 Template: stale: earlier phase Stamp reruns"),
        "{}",
        status.stdout
    );
    assert_eq!(sb.spyral(&["run", p.to_str().unwrap()]).code, Some(0));
    let rep = sb.report();
    for r in 1..=3 {
        assert_eq!(run_record(&rep, r)["phases"][0]["status"], "ok");
        assert_eq!(run_record(&rep, r)["phases"][1]["status"], "ok");
    }
    assert_ne!(snapshot(&sb.ws().join("Stamp")), stamp);
    // Change only the second phase: the first is not rerun.
    let stamp = snapshot(&sb.ws().join("Stamp"));
    let p = sb.pipeline("runs: {min: 1, max: 3}\nseed: 5", &chain(2048, 32));
    assert_eq!(sb.spyral(&["run", p.to_str().unwrap()]).code, Some(0));
    let rep = sb.report();
    for r in 1..=3 {
        assert_eq!(run_record(&rep, r)["phases"][0]["status"], "up-to-date");
        assert_eq!(run_record(&rep, r)["phases"][1]["status"], "ok");
    }
    assert_eq!(snapshot(&sb.ws().join("Stamp")), stamp);
}

#[test]
fn killed_launch_finishes_only_what_is_missing_with_identical_results() {
    let phases = "  - kind: fail\n    config: {sleep_ms: 300}\n  - kind: template\n    config: {input_artifact: stamp}\n";
    // Reference: an uninterrupted run.
    let reference = Sandbox::new();
    for r in 1..=8 {
        reference.trace(r, 3000 + r as usize);
    }
    let p = reference.pipeline("runs: {min: 1, max: 8}\nworkers: 2\nseed: 9", phases);
    assert_eq!(
        reference.spyral(&["run", p.to_str().unwrap()]).code,
        Some(0)
    );

    let sb = Sandbox::new();
    for r in 1..=8 {
        sb.trace(r, 3000 + r as usize);
    }
    let p = sb.pipeline("runs: {min: 1, max: 8}\nworkers: 2\nseed: 9", phases);
    let mut child = sb.spawn(&["run", p.to_str().unwrap(), "--no-display"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        // A run is finished once the last phase's provenance record is written (records are
        // written after the artifacts, so counting artifacts would race the record).
        let done = std::fs::read_dir(sb.ws().join("Template/.provenance"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0);
        if done >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let workers = spyral_e2e::children(child.id() as i32);
    child.kill().unwrap();
    child.wait().unwrap();
    // The workers die with the parent (PR_SET_PDEATHSIG); wait until they are gone, so their
    // run locks are released before the next launch.
    let gone = Instant::now() + Duration::from_secs(30);
    while workers.iter().any(|&w| spyral_e2e::pid_running(w)) && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stale = sb.ws().join("Fail/.run_0042.bin.partial");
    std::fs::write(&stale, b"half").unwrap();
    let out = sb.spyral(&["run", p.to_str().unwrap()]);
    assert!(
        !stale.exists(),
        "temporary files of the interrupted launch are removed"
    );
    assert_eq!(out.code, Some(0), "{}", out.all());
    let rep = sb.report();
    let skipped = (1..=8)
        .filter(|&r| run_record(&rep, r)["up_to_date"] == true)
        .count();
    assert!(skipped >= 3, "the finished runs were not redone: {rep:#}");
    assert!(skipped < 8, "some runs were left to do");
    for dir in ["Fail", "Template"] {
        let a: BTreeMap<String, Vec<u8>> = snapshot(&sb.ws().join(dir))
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let b: BTreeMap<String, Vec<u8>> = snapshot(&reference.ws().join(dir))
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        // Template's JSON names no path, so both folders must hold identical bytes.
        assert_eq!(a, b, "{dir}");
    }
}

#[test]
fn failed_runs_are_retried_and_status_shows_states() {
    let sb = Sandbox::new();
    for r in 1..=3 {
        sb.trace(r, 2000);
    }
    let marker = sb.file("fail-now", "x");
    let p = sb.pipeline(
        "runs: {min: 1, max: 3}\nseed: 5",
        &format!(
            "  - kind: fail\n    config: {{runs: [2], while_exists: {}}}\n  - kind: template\n    config: {{input_artifact: stamp}}\n",
            marker.display()
        ),
    );
    assert_eq!(
        sb.spyral(&["status", p.to_str().unwrap()])
            .stdout
            .matches("missing")
            .count(),
        6
    );
    assert_eq!(sb.spyral(&["run", p.to_str().unwrap()]).code, Some(1));
    let st = sb.spyral(&["status", p.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v[0]["phases"][0]["state"], "current");
    assert_eq!(v[1]["phases"][0]["state"], "failed");
    assert!(v[1]["phases"][0]["error"]
        .as_str()
        .unwrap()
        .contains("deliberate failure"));
    assert_eq!(v[1]["phases"][1]["state"], "missing");
    std::fs::remove_file(&marker).unwrap();
    let out = sb.spyral(&["run", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let rep = sb.report();
    assert_eq!(run_record(&rep, 1)["up_to_date"], true);
    assert_eq!(run_record(&rep, 2)["phases"][0]["status"], "ok");
    let st = sb.spyral(&["status", p.to_str().unwrap()]);
    assert_eq!(st.stdout.matches("current").count(), 6, "{}", st.stdout);
}
