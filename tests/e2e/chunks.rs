//! End-to-end tests of event-level parallelism: long runs are split into event chunks that any
//! worker processes, then merged into the run's artifacts, byte-identical to an unsplit run;
//! a killed launch redoes only the unfinished chunks; a failed chunk fails its run only.

use spyral_e2e::{file_bytes, run_record, tree, Sandbox};
use std::time::Duration;

const LINES: &str = "  - kind: lines\n    config: {event_bytes: 100, sleep_ms_per_event: SLEEP}\n  - kind: lines\n    name: Lines2\n";

fn phases(sleep_ms: u64) -> String {
    LINES.replace("SLEEP", &sleep_ms.to_string())
}

fn sandbox(runs: &[(u32, usize)]) -> Sandbox {
    let sb = Sandbox::new();
    for &(r, bytes) in runs {
        sb.trace(r, bytes);
    }
    sb
}

#[test]
fn split_runs_give_the_bytes_of_unsplit_runs() {
    let runs = [(1, 5000), (2, 3000), (3, 400)];
    let header = "runs: {min: 1, max: 3}\nworkers: 2\nseed: 11";
    let whole = sandbox(&runs);
    let p = whole.pipeline(header, &phases(0));
    let out = whole.spyral(&["run", p.to_str().unwrap(), "--chunk-events", "0"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let split = sandbox(&runs);
    let p = split.pipeline(header, &phases(0));
    let out = split.spyral(&["run", p.to_str().unwrap(), "--chunk-events", "12"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    for dir in ["Lines", "Lines2"] {
        assert_eq!(
            file_bytes(&whole.ws().join(dir)),
            file_bytes(&split.ws().join(dir)),
            "{dir}"
        );
        // Chunk files are gone once merged.
        let chunks = split.ws().join(dir).join(".chunks");
        assert!(
            !chunks.exists(),
            "{dir}: {:?}\n{}",
            tree(&chunks),
            split.logs()
        );
    }
    let rep = split.report();
    // 50 events in chunks of about 12: 5 chunks; 30 events: 3; 4 events: whole.
    assert_eq!(run_record(&rep, 1)["chunks"], 5, "{rep:#}");
    assert_eq!(run_record(&rep, 2)["chunks"], 3);
    assert_eq!(run_record(&rep, 3)["chunks"], serde_json::Value::Null);
    let merges = run_record(&rep, 1)["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ph| ph["part"]["part"] == "merge")
        .count();
    assert_eq!(merges, 2, "{rep:#}");
    // The merge reports what an unsplit run reports (the chunks' counts, summed).
    let merged = run_record(&rep, 1)["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ph| ph["part"]["part"] == "merge" && ph["phase"] == "Lines")
        .cloned()
        .unwrap();
    assert_eq!(merged["metadata"]["events"], 50, "{merged}");
    // The merged run is current as a whole run: status agrees and a rerun does nothing.
    let st = split.spyral(&["status", p.to_str().unwrap()]);
    assert_eq!(st.stdout.matches("current").count(), 6, "{}", st.stdout);
    let out = split.spyral(&["run", p.to_str().unwrap(), "--chunk-events", "12"]);
    assert!(
        out.stdout.contains("3 already up to date"),
        "{}",
        out.stdout
    );
    // And the other way round: the unsplit workspace is current for a split launch.
    let p = whole.pipeline(header, &phases(0));
    let out = whole.spyral(&["run", p.to_str().unwrap(), "--chunk-events", "12"]);
    assert!(
        out.stdout.contains("3 already up to date"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_chunks_of_one_run_go_to_every_worker() {
    let sb = sandbox(&[(1, 4000)]);
    let p = sb.pipeline("runs: {min: 1, max: 1}\nworkers: 2\nseed: 3", &phases(20));
    let out = sb.spyral(&[
        "run",
        p.to_str().unwrap(),
        "--chunk-events",
        "10",
        "--no-display",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    for w in 0..2 {
        let log = std::fs::read_to_string(sb.latest_log().join(format!("worker-{w}.log"))).unwrap();
        assert!(
            log.contains("run 1 chunk"),
            "worker {w} did no chunk:\n{log}"
        );
    }
    let text = std::fs::read_to_string(sb.ws().join("Lines/run_0001.txt")).unwrap();
    assert_eq!(text.lines().count(), 40);
}

#[test]
fn a_killed_launch_redoes_only_unfinished_chunks() {
    let runs = [(1, 6000)];
    let header = "runs: {min: 1, max: 1}\nworkers: 2\nseed: 5";
    let sb = sandbox(&runs);
    let p = sb.pipeline(header, &phases(40));
    let mut child = sb.spawn(&[
        "run",
        p.to_str().unwrap(),
        "--chunk-events",
        "10",
        "--no-display",
    ]);
    // Wait until at least two chunks of the slow first phase are recorded (four of its six
    // chunks are then still to do, and so are all of the second phase's), then kill the
    // parent and its workers.
    let records = sb.ws().join("Lines/.chunks/run_0001/.provenance");
    let t = std::time::Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the launch ended ({status}) before it could be killed");
        }
        let n = std::fs::read_dir(&records)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0);
        if n >= 2 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no chunk finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    let workers = spyral_e2e::children(child.id() as i32);
    for &pid in &workers {
        spyral_e2e::send_signal(pid as u32, "KILL");
    }
    spyral_e2e::send_signal(child.id(), "KILL");
    let _ = child.wait_with_output();
    // Dead workers hold no locks; wait until they are gone.
    let t = std::time::Instant::now();
    while workers.iter().any(|&w| spyral_e2e::pid_running(w))
        && t.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    // `status` says the chunk results are kept (the run is still to do).
    let out = sb.spyral(&["status", p.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let lines = &rows[0]["phases"][0];
    assert_eq!(lines["phase"], "Lines", "{rows:#}");
    assert_ne!(lines["state"], "current", "{rows:#}");
    assert!(lines["kept_chunks"].as_u64().unwrap_or(0) >= 2, "{rows:#}");
    // Each kept chunk is named by its events: ten of them, as `--chunk-events 10` split the run.
    let kept = lines["kept_chunk_events"].as_array().expect("kept ranges");
    assert_eq!(kept.len() as u64, lines["kept_chunks"].as_u64().unwrap());
    for r in kept {
        let (a, b) = (r[0].as_u64().unwrap(), r[1].as_u64().unwrap());
        assert_eq!(b + 1 - a, 10, "{rows:#}");
    }
    let out = sb.spyral(&["status", p.to_str().unwrap()]);
    assert!(
        out.stdout
            .contains("chunk result(s) of an interrupted launch kept (events "),
        "{}",
        out.all()
    );
    assert!(
        out.stdout.contains("(the same chunk_events)"),
        "{}",
        out.all()
    );
    // Resumed by one worker, which splits no new run but finishes the chunks it finds.
    let out = sb.spyral(&[
        "run",
        p.to_str().unwrap(),
        "--chunk-events",
        "10",
        "--workers",
        "1",
        "--no-display",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let rep = sb.report();
    assert_eq!(run_record(&rep, 1)["chunks"], 6, "{rep:#}");
    let records = run_record(&rep, 1)["phases"].as_array().unwrap().clone();
    let reused = records
        .iter()
        .filter(|ph| ph["part"]["part"] == "chunk" && ph["status"] == "up-to-date")
        .count();
    assert!(reused >= 2, "finished chunks were redone: {records:#?}");
    // Same bytes as an uninterrupted, unsplit run.
    let reference = sandbox(&runs);
    let rp = reference.pipeline(header, &phases(40));
    let out = reference.spyral(&["run", rp.to_str().unwrap(), "--chunk-events", "0"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    for dir in ["Lines", "Lines2"] {
        assert_eq!(
            file_bytes(&sb.ws().join(dir)),
            file_bytes(&reference.ws().join(dir)),
            "{dir}"
        );
    }
}

#[test]
fn one_worker_keeps_runs_whole() {
    let runs = [(1, 5000)];
    let sb = sandbox(&runs);
    let p = sb.pipeline("runs: {min: 1, max: 1}\nworkers: 1\nseed: 11", &phases(0));
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--chunk-events", "12"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let rep = sb.report();
    assert_eq!(
        run_record(&rep, 1)["chunks"],
        serde_json::Value::Null,
        "{rep:#}"
    );
    assert!(!sb.ws().join("Lines/.chunks").exists());
    // The same bytes as two workers splitting it.
    let split = sandbox(&runs);
    let p = split.pipeline("runs: {min: 1, max: 1}\nworkers: 2\nseed: 11", &phases(0));
    let out = split.spyral(&["run", p.to_str().unwrap(), "--chunk-events", "12"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_eq!(run_record(&split.report(), 1)["chunks"], 5);
    for dir in ["Lines", "Lines2"] {
        assert_eq!(
            file_bytes(&sb.ws().join(dir)),
            file_bytes(&split.ws().join(dir)),
            "{dir}"
        );
    }
}

#[test]
fn a_failed_chunk_fails_its_run_only() {
    let sb = sandbox(&[(1, 3000), (2, 3000)]);
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}\nworkers: 2\nseed: 2",
        "  - kind: lines\n    config: {fail_on_event: 17}\n",
    );
    // Both runs have event 17; make run 2 shorter so only run 1 reaches it.
    sb.trace(2, 1500);
    let out = sb.spyral(&[
        "run",
        p.to_str().unwrap(),
        "--chunk-events",
        "5",
        "--no-display",
    ]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    let rep = sb.report();
    let r1 = run_record(&rep, 1);
    assert_eq!(r1["status"], "failed", "{r1}");
    assert!(
        r1["error"].as_str().unwrap().contains("chunk 4/6")
            && r1["error"].as_str().unwrap().contains("event 17"),
        "{r1}"
    );
    assert!(!sb.ws().join("Lines/run_0001.txt").exists());
    assert_eq!(run_record(&rep, 2)["status"], "ok");
    assert_eq!(
        std::fs::read_to_string(sb.ws().join("Lines/run_0002.txt"))
            .unwrap()
            .lines()
            .count(),
        15
    );
}

#[test]
fn a_run_in_progress_as_chunks_shows_as_running_and_another_launch_leaves_it() {
    let sb = sandbox(&[(1, 20000)]);
    let p = sb.pipeline("runs: {min: 1, max: 1}\nworkers: 2\nseed: 13", &phases(30));
    let p = p.to_str().unwrap();
    let mut child = sb.spawn(&["run", p, "--chunk-events", "10", "--no-display"]);
    // From the first finished chunk on (units come and go; between two of them no worker holds
    // the run's locks), `status` says the run is running, in every phase.
    let records = sb.ws().join("Lines/.chunks/run_0001/.provenance");
    let t = std::time::Instant::now();
    while std::fs::read_dir(&records).map_or(0, |rd| rd.count()) == 0 {
        assert!(t.elapsed() < Duration::from_secs(60), "no chunk finished");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut polls = 0;
    let mut late_launch = None;
    while child.try_wait().unwrap().is_none() && polls < 8 {
        let out = sb.spyral(&["status", p, "--json"]);
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert_eq!(out.code, Some(0), "{}", out.all());
        let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let cells = rows[0]["phases"].as_array().unwrap();
        // Committed (the parent is still writing its report): the run is simply current.
        if cells.iter().all(|c| c["state"] == "current") {
            break;
        }
        for cell in cells {
            assert_eq!(cell["state"], "running", "{rows:#}");
            assert!(
                cell["holder"].as_str().unwrap().contains("pid "),
                "{rows:#}"
            );
        }
        polls += 1;
        // A second launch (one worker: it would process the run whole) leaves the run to the
        // first, even between the first's units.
        if late_launch.is_none() {
            late_launch = Some(sb.spyral(&["run", p, "--workers", "1", "--no-display"]));
        }
    }
    assert!(polls > 0, "the launch ended before status could look");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let late = late_launch.unwrap();
    assert_eq!(late.code, Some(0), "{}", late.all());
    assert!(
        late.all().contains("running in another launch"),
        "{}",
        late.all()
    );
    // Done: current everywhere, and the split run's marker is gone with its launch.
    let out = sb.spyral(&["status", p, "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for cell in rows[0]["phases"].as_array().unwrap() {
        assert_eq!(cell["state"], "current", "{rows:#}");
    }
}
