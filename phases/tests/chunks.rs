//! Event chunks: the default chain (Pointcloud, Cluster, Estimation, InterpSolver) run over a
//! simulated run as a whole and as 1, 2 and 3 chunks (one of them empty) followed by each
//! phase's merge gives byte-identical artifacts (every file of every phase folder, HDF5 and
//! parquet alike) and the same metadata, with the chunks' point clouds and clusters written as
//! spill files; `events()` of each phase names the run's event ids, of a whole-run artifact and
//! of a chunk's spill file alike.
//!
//! The merge benchmark (release build, ignored by default) times each phase's merge on a larger
//! run: `cargo test --release -p spyral-phases --test chunks -- --ignored --nocapture bench_`.

use serde_json::json;
use spyral_core::{
    context::NullSink, Chunk, EventRange, Phase, PhaseFactory, PhaseResult, RunContext, Workspace,
};
use spyral_data::artifacts::spill;
use spyral_data::attpc::padmap::PadMap;
use spyral_data::attpc::traces::TraceFormat;
use spyral_phases::cluster::{ClusterArtifact, ClusterPhase};
use spyral_phases::estimation::EstimationPhase;
use spyral_phases::pointcloud::{CloudFile, PointcloudPhase};
use spyral_phases::solver::InterpSolverPhase;
use spyral_sim::{simulate_run, RunSpec, SimConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

const RUN: u32 = 3;
const NAMES: [&str; 4] = ["Pointcloud", "Cluster", "Estimation", "InterpSolver"];

/// The default chain, configured as the demo pipeline but with a small solver mesh.
struct Chain {
    phases: Vec<Box<dyn Phase>>,
}

fn parse<P: PhaseFactory>(name: &str, config: serde_json::Value) -> P {
    let cfg = spyral_core::config::parse(name, &config.to_string()).expect("config");
    P::from_config(name, cfg).expect("phase")
}

impl Chain {
    fn new(dir: &Path) -> Chain {
        let gas = dir.join("gas.json");
        std::fs::write(&gas, r#"{"compound": [[1, 2, 2]], "pressure(Torr)": 300}"#).unwrap();
        let pid = dir.join("pid.json");
        std::fs::write(
            &pid,
            r#"{"name": "deuteron", "Z": 1, "A": 2, "xaxis": "dEdx", "yaxis": "brho",
                "vertices": [[30, 0.1], [1500, 0.1], [1500, 2.5], [30, 2.5], [30, 0.1]]}"#,
        )
        .unwrap();
        let solver = json!({
            "gas_data_path": gas,
            "particle_id_filename": pid,
            "ic_gate": false,
            "n_time_steps": 300,
            "interp_ke_min": 0.5,
            "interp_ke_max": 40.0,
            "interp_ke_bins": 40,
            "interp_polar_min": 2.0,
            "interp_polar_max": 88.0,
            "interp_polar_bins": 44,
        });
        Chain {
            phases: vec![
                Box::new(parse::<PointcloudPhase>("Pointcloud", json!({}))),
                Box::new(parse::<ClusterPhase>("Cluster", json!({}))),
                Box::new(parse::<EstimationPhase>("Estimation", json!({}))),
                Box::new(parse::<InterpSolverPhase>("InterpSolver", solver)),
            ],
        }
    }

    fn workspaces(root: &Path, traces: &Path) -> Vec<Workspace> {
        NAMES
            .iter()
            .map(|n| Workspace::new(root, traces, n))
            .collect()
    }

    /// Runs the chain over the whole run into `root`.
    fn run_whole(&self, root: &Path, traces: &Path, trace: &Path) -> Vec<PhaseResult> {
        let sink = NullSink;
        let mut payload = PhaseResult::new(RUN).with_artifact("trace", trace);
        let mut results = Vec::new();
        for (k, (phase, ws)) in self
            .phases
            .iter()
            .zip(Self::workspaces(root, traces))
            .enumerate()
        {
            let ctx = RunContext::new(RUN, 100 + k as u64, &ws, &sink);
            payload = phase.run(&payload, &ctx).expect("whole run");
            results.push(payload.clone());
        }
        results
    }

    /// Runs the chain over each of `ranges` as chunks into `root`. Returns each phase's chunk
    /// results (in event order) and the seconds its chunk runs took.
    fn run_chunks(
        &self,
        root: &Path,
        traces: &Path,
        trace: &Path,
        ranges: &[EventRange],
    ) -> (Vec<Vec<PhaseResult>>, Vec<f64>) {
        let sink = NullSink;
        let wss = Self::workspaces(root, traces);
        let mut parts: Vec<Vec<PhaseResult>> = vec![Vec::new(); self.phases.len()];
        let mut run_seconds = vec![0.0; self.phases.len()];
        for (index, &events) in ranges.iter().enumerate() {
            let chunk = Chunk {
                index: index as u32,
                count: ranges.len() as u32,
                events,
            };
            let mut payload = PhaseResult::new(RUN).with_artifact("trace", trace);
            for (k, (phase, ws)) in self.phases.iter().zip(&wss).enumerate() {
                let ctx = RunContext::new(RUN, 100 + k as u64, ws, &sink).with_chunk(chunk);
                let t0 = Instant::now();
                payload = phase.run(&payload, &ctx).expect("chunk run");
                run_seconds[k] += t0.elapsed().as_secs_f64();
                // Chunk artifacts live under the phase's chunk folder.
                for a in payload.artifacts.iter() {
                    if a.name.as_str() == "cluster" && k == 2 {
                        continue; // Estimation passes the Cluster chunk file through.
                    }
                    let p = PathBuf::from(a.path.as_str());
                    assert!(
                        p.starts_with(ws.artifact_dir().join(".chunks")),
                        "{}",
                        p.display()
                    );
                    // Point clouds and clusters of a chunk are spill files, which the next
                    // phase and the merge read (the merged files are compared below).
                    if matches!(a.name.as_str(), "pointcloud" | "cluster") {
                        assert!(spill::is_spill(&p), "{} is not a spill file", p.display());
                    }
                }
                parts[k].push(payload.clone());
            }
        }
        (parts, run_seconds)
    }

    /// Merges phase `k`'s chunk results into `root`; returns the result and the wall and
    /// thread CPU seconds the merge took.
    fn merge(
        &self,
        k: usize,
        root: &Path,
        traces: &Path,
        parts: &[PhaseResult],
    ) -> (PhaseResult, f64, f64) {
        let sink = NullSink;
        let ws = Workspace::new(root, traces, NAMES[k]);
        let ctx = RunContext::new(RUN, 100 + k as u64, &ws, &sink);
        let (t0, c0) = (Instant::now(), thread_cpu_seconds());
        let merged = self.phases[k].merge(parts, &ctx).expect("merge");
        (
            merged,
            t0.elapsed().as_secs_f64(),
            thread_cpu_seconds() - c0,
        )
    }

    /// Runs the chain over each of `ranges` as chunks, then merges every phase, into `root`.
    /// Returns the merged results and the seconds each phase's merge took.
    fn run_chunked(
        &self,
        root: &Path,
        traces: &Path,
        trace: &Path,
        ranges: &[EventRange],
    ) -> (Vec<PhaseResult>, Vec<f64>) {
        let (parts, _) = self.run_chunks(root, traces, trace, ranges);
        parts
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let (m, s, _) = self.merge(k, root, traces, p);
                (m, s)
            })
            .unzip()
    }
}

/// CPU seconds of the calling thread so far.
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |ns| ns * 1e-9)
}

/// Every file under `root`'s phase folders (not the chunk folders, not the assets), by path
/// relative to `root`.
fn artifacts(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for name in NAMES {
        let dir = root.join(name);
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_file() {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// A simulated run of `events` events in a temporary folder, the chain with its mesh built
/// into `<dir>/mesh` (copied into each workspace's asset folder).
struct Fixture {
    dir: tempfile::TempDir,
    traces: PathBuf,
    trace: PathBuf,
    chain: Chain,
}

impl Fixture {
    fn new(events: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let traces = dir.path().join("traces");
        let pads = PadMap::builtin();
        let out = simulate_run(
            &SimConfig::default(),
            &pads,
            &traces,
            RunSpec {
                run: RUN,
                events,
                seed: 11,
                format: TraceFormat::Merger2,
            },
            2,
            &|_| {},
        )
        .expect("simulate");
        let mut chain = Chain::new(dir.path());
        let mesh_root = dir.path().join("mesh");
        let ws = Workspace::new(&mesh_root, &traces, "InterpSolver");
        chain.phases[3].create_assets(&ws).expect("mesh");
        chain.phases[3].attach_shared(Vec::new()).unwrap();
        Fixture {
            traces,
            trace: out.trace,
            chain,
            dir,
        }
    }

    /// A fresh workspace root holding the mesh asset (hard links to the one built).
    fn workspace(&self, name: &str) -> PathBuf {
        let root = self.dir.path().join(name);
        let assets = root.join("InterpSolver_assets");
        std::fs::create_dir_all(&assets).unwrap();
        for e in std::fs::read_dir(self.dir.path().join("mesh/InterpSolver_assets")).unwrap() {
            let e = e.unwrap();
            std::fs::hard_link(e.path(), assets.join(e.file_name())).unwrap();
        }
        root
    }
}

fn metadata_without_timing(r: &PhaseResult) -> serde_json::Map<String, serde_json::Value> {
    let mut m = r.metadata_map();
    m.remove("ms_per_fit");
    m
}

/// Events of the simulated run of the merge tests.
const EVENTS: u64 = 30;

/// Runs the chain whole, then chunked by each scheme, and compares every artifact byte for
/// byte, the merged results' metadata and the files they name.
fn check_schemes(schemes: &[(&str, Vec<EventRange>)]) {
    let t0 = Instant::now();
    let f = Fixture::new(EVENTS);
    let setup = t0.elapsed().as_secs_f64();

    let whole_root = f.workspace("whole");
    let t1 = Instant::now();
    let whole = f.chain.run_whole(&whole_root, &f.traces, &f.trace);
    let whole_seconds = t1.elapsed().as_secs_f64();
    let want = artifacts(&whole_root);
    let names: Vec<String> = want.keys().map(|p| p.display().to_string()).collect();
    println!("setup {setup:.1} s, whole chain {whole_seconds:.1} s; artifacts: {names:?}");
    for (k, r) in whole.iter().enumerate() {
        println!("  {}: {}", NAMES[k], r.metadata);
    }
    // Every phase wrote its files, the solver fitted tracks, the scalers are there.
    for expected in [
        "Pointcloud/run_0003.h5",
        "Pointcloud/run_0003_scaler.parquet",
        "Pointcloud/run_0003_gated_ic_scaler.txt",
        "Cluster/run_0003.h5",
        "Estimation/run_0003.parquet",
        "InterpSolver/run_0003_2H.parquet",
    ] {
        assert!(want.contains_key(Path::new(expected)), "{expected} missing");
    }
    let meta = |k: usize, key: &str| whole[k].metadata_map()[key].as_u64().unwrap();
    assert!(meta(0, "events") > 20, "{}", whole[0].metadata);
    assert!(meta(1, "clusters") > 0, "{}", whole[1].metadata);
    assert!(meta(2, "estimates") > 0, "{}", whole[2].metadata);
    assert!(meta(3, "fitted") > 0, "{}", whole[3].metadata);

    for (label, ranges) in schemes {
        let root = f.workspace(&label.replace(' ', "_"));
        let t = Instant::now();
        let (merged, merge_seconds) = f.chain.run_chunked(&root, &f.traces, &f.trace, ranges);
        println!(
            "{label}: {:.1} s, merges {:?} ms",
            t.elapsed().as_secs_f64(),
            merge_seconds
                .iter()
                .map(|s| (s * 1e3).round())
                .collect::<Vec<_>>()
        );
        let got = artifacts(&root);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{label}: the same files"
        );
        for (path, bytes) in &want {
            assert!(
                got[path] == *bytes,
                "{label}: {} differs from the whole run's ({} vs {} bytes)",
                path.display(),
                got[path].len(),
                bytes.len()
            );
        }
        for (k, (m, w)) in merged.iter().zip(&whole).enumerate() {
            assert_eq!(
                metadata_without_timing(m),
                metadata_without_timing(w),
                "{label}: {} metadata",
                NAMES[k]
            );
            // The merged result names the run's files, as the whole run's does.
            let rel = |r: &PhaseResult, root: &Path| -> Vec<(String, PathBuf)> {
                r.artifacts
                    .iter()
                    .map(|a| {
                        let p = PathBuf::from(a.path.as_str());
                        (
                            a.name.to_string(),
                            p.strip_prefix(root).unwrap_or(&p).to_path_buf(),
                        )
                    })
                    .collect()
            };
            assert_eq!(rel(m, &root), rel(w, &whole_root), "{label}: {}", NAMES[k]);
        }
    }
}

#[test]
fn one_and_two_chunks_merge_to_the_whole_runs_bytes() {
    let all = EventRange::new(0, EVENTS - 1);
    check_schemes(&[("1 chunk", all.split(1)), ("2 chunks", all.split(2))]);
}

#[test]
fn three_chunks_and_an_empty_one_merge_to_the_whole_runs_bytes() {
    let all = EventRange::new(0, EVENTS - 1);
    check_schemes(&[
        ("3 chunks", all.split(3)),
        (
            // A chunk of one event, and one past the last event (no events at all).
            "uneven with an empty chunk",
            vec![
                EventRange::new(0, 12),
                EventRange::new(13, 13),
                EventRange::new(14, EVENTS - 1),
                EventRange::new(EVENTS, EVENTS + 9),
            ],
        ),
    ]);
}

#[test]
fn events_name_the_runs_event_ids() {
    const EVENTS: u64 = 12;
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    let out = simulate_run(
        &SimConfig::default(),
        PadMap::builtin(),
        &traces,
        RunSpec {
            run: RUN,
            events: EVENTS,
            seed: 5,
            format: TraceFormat::Merger2,
        },
        2,
        &|_| {},
    )
    .unwrap();
    let chain = Chain::new(dir.path());
    let root = dir.path().join("ws");
    let wss = Chain::workspaces(&root, &traces);
    let sink = NullSink;
    let trace = PhaseResult::new(RUN).with_artifact("trace", &out.trace);
    assert!(chain.phases.iter().all(|p| p.splittable()));
    let want = Some(EventRange::new(0, EVENTS - 1));
    assert_eq!(chain.phases[0].events(&trace, &wss[0]).unwrap(), want);
    // Cluster and Estimation read the range of their input file.
    let ctx = RunContext::new(RUN, 1, &wss[0], &sink);
    let clouds = chain.phases[0].run(&trace, &ctx).unwrap();
    assert_eq!(chain.phases[1].events(&clouds, &wss[1]).unwrap(), want);
    let ctx = RunContext::new(RUN, 1, &wss[1], &sink);
    let clusters = chain.phases[1].run(&clouds, &ctx).unwrap();
    assert_eq!(chain.phases[2].events(&clusters, &wss[2]).unwrap(), want);
    // The same from a chunk's spill files (the range is the run's).
    let chunk = Chunk {
        index: 0,
        count: 2,
        events: EventRange::new(0, 4),
    };
    let ctx = RunContext::new(RUN, 1, &wss[0], &sink).with_chunk(chunk);
    let clouds = chain.phases[0].run(&trace, &ctx).unwrap();
    assert!(spill::is_spill(&clouds.require("pointcloud").unwrap()));
    assert_eq!(chain.phases[1].events(&clouds, &wss[1]).unwrap(), want);
    let ctx = RunContext::new(RUN, 1, &wss[1], &sink).with_chunk(chunk);
    let clusters = chain.phases[1].run(&clouds, &ctx).unwrap();
    assert_eq!(chain.phases[2].events(&clusters, &wss[2]).unwrap(), want);
    let ctx = RunContext::new(RUN, 1, &wss[2], &sink).with_chunk(chunk);
    let estimates = chain.phases[2].run(&clusters, &ctx).unwrap();
    assert_eq!(chain.phases[3].events(&estimates, &wss[3]).unwrap(), want);
    // A missing input is an error, not a guess.
    let missing = PhaseResult::new(RUN).with_artifact("trace", dir.path().join("nope.h5"));
    assert!(chain.phases[0].events(&missing, &wss[0]).is_err());
    // A chunk's progress counts the chunk's events only.
    #[derive(Default)]
    struct Totals(std::sync::Mutex<Vec<u64>>);
    impl spyral_core::RunSink for Totals {
        fn progress(&self, _done: u64, total: u64) {
            self.0.lock().unwrap().push(total);
        }
        fn log(&self, _l: spyral_core::LogLevel, _m: spyral_core::abi_stable::std_types::RStr<'_>) {
        }
        fn cancelled(&self) -> bool {
            false
        }
    }
    let totals = Totals::default();
    let chunk = Chunk {
        index: 1,
        count: 2,
        events: EventRange::new(4, 8),
    };
    let ctx = RunContext::new(RUN, 1, &wss[0], &totals).with_chunk(chunk);
    let part = chain.phases[0].run(&trace, &ctx).unwrap();
    assert_eq!(part.metadata_map()["events"].as_u64(), Some(5));
    let ctx = RunContext::new(RUN, 1, &wss[1], &totals).with_chunk(chunk);
    chain.phases[1].run(&part, &ctx).unwrap();
    let t = totals.0.lock().unwrap();
    assert!(!t.is_empty() && t.iter().all(|&n| n == 5), "{t:?}");
}

/// Merge cost per phase on a larger run (release build): each merge is repeated and the
/// fastest kept (wall and thread CPU), beside the phase's own time over the chunks.
#[test]
#[ignore]
fn bench_merge() {
    let events: u64 = std::env::var("CHUNKS_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let f = Fixture::new(events);
    let root = f.workspace("chunked");
    let all = EventRange::new(0, events - 1);
    let (parts, run_seconds) = f
        .chain
        .run_chunks(&root, &f.traces, &f.trace, &all.split(4));
    for (k, p) in parts.iter().enumerate() {
        let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let (_, w, c) = f.chain.merge(k, &root, &f.traces, p);
            wall = wall.min(w);
            cpu = cpu.min(c);
        }
        // The share of reading the chunk files back (Pointcloud and Cluster).
        let mut read = f64::MAX;
        for _ in 0..5 {
            let c0 = thread_cpu_seconds();
            for part in p {
                if k == 0 {
                    let file = CloudFile::open(&part.artifact("pointcloud").unwrap()).unwrap();
                    for &id in &file.ids {
                        std::hint::black_box(file.read(id).unwrap());
                    }
                } else if k == 1 {
                    let file = ClusterArtifact::open(&part.artifact("cluster").unwrap()).unwrap();
                    for &id in &file.ids {
                        std::hint::black_box(file.read(id).unwrap());
                    }
                }
            }
            read = read.min(thread_cpu_seconds() - c0);
        }
        let bytes: u64 = std::fs::read_dir(root.join(NAMES[k]))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.metadata().unwrap().len())
            .sum();
        println!(
            "{:<12} merge of 4 chunks, {events} events: {:7.1} ms wall ({:6.1} ms CPU, {:5.1} ms reading the chunks) = {:.3} ms/event, {:5.2} MB written, {:6.1} MB/s; the phase's chunk runs: {:.2} s wall",
            NAMES[k],
            wall * 1e3,
            cpu * 1e3,
            if k < 2 { read * 1e3 } else { f64::NAN },
            wall * 1e3 / events as f64,
            bytes as f64 * 1e-6,
            bytes as f64 * 1e-6 / wall,
            run_seconds[k]
        );
    }
}
