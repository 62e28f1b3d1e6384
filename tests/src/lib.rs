//! A small harness for end-to-end tests: finds the built `spyral` binary and plugin libraries,
//! makes sandboxes (a temporary folder with trace files and a pipeline file) and runs the real
//! binary in them. Build the workspace first (`cargo build --workspace`); the README's test
//! command does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The cargo target profile folder these tests were built into (e.g. `target/debug`).
pub fn profile_dir() -> PathBuf {
    if let Ok(d) = std::env::var("SPYRAL_E2E_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn built(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` before the end-to-end tests",
        path.display()
    );
    path
}

/// The `spyral` binary.
pub fn spyral_bin() -> PathBuf {
    built(profile_dir().join("spyral"))
}

/// The plugin library `lib<name>.so` (name with `_` for `-`).
pub fn plugin(name: &str) -> PathBuf {
    built(profile_dir().join(format!("lib{}.so", name.replace('-', "_"))))
}

/// The result of running the binary.
#[derive(Debug)]
pub struct Output {
    /// Exit code (None: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Self {
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Output {
    /// stdout and stderr together, for assertions.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A temporary folder with `traces/` and room for a pipeline and a workspace.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A new empty sandbox with a `traces/` folder.
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("spyral-e2e-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("traces")).expect("traces dir");
        Sandbox { dir }
    }
    /// Its root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// `traces/`.
    pub fn traces(&self) -> PathBuf {
        self.path().join("traces")
    }
    /// `ws/`, the workspace the helper pipelines use.
    pub fn ws(&self) -> PathBuf {
        self.path().join("ws")
    }
    /// Writes a stand-in trace file of `bytes` deterministic bytes for `run`.
    pub fn trace(&self, run: u32, bytes: usize) -> &Self {
        let data: Vec<u8> = (0..bytes)
            .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ run as u8)
            .collect();
        std::fs::write(self.traces().join(format!("run_{run:04}.h5")), data).expect("write trace");
        self
    }
    /// Copies the example gas target and deuteron particle-ID gate (`examples/`) into the
    /// sandbox as `gas.json` and `pid.json`, and simulates `runs` runs of `events` events into
    /// `traces/` with `spyral simulate`.
    pub fn simulated(&self, runs: u32, events: u64, seed: u64) -> &Self {
        for (name, src) in [
            ("gas.json", "gas/deuterium_300torr.json"),
            ("pid.json", "pid/deuteron.json"),
        ] {
            std::fs::copy(
                workspace_root().join("examples").join(src),
                self.path().join(name),
            )
            .expect("copy example input");
        }
        let (r, e, s) = (runs.to_string(), events.to_string(), seed.to_string());
        let out = self.spyral(&[
            "simulate", "--out", "traces", "--runs", &r, "--events", &e, "--seed", &s,
        ]);
        assert_eq!(out.code, Some(0), "{}", out.all());
        self
    }
    /// Writes `text` to `name` in the sandbox and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write file");
        p
    }
    /// Writes a pipeline with the given header fields (runs, workers, ...) and `phases` YAML,
    /// using testkit and template plugins. Returns its path.
    pub fn pipeline(&self, extra: &str, phases: &str) -> PathBuf {
        let text = format!(
            "workspace: ws\ntraces: traces\nplugins:\n  - {}\n  - {}\n{extra}\nphases:\n{phases}",
            plugin("spyral_testkit").display(),
            plugin("template").display(),
        );
        self.file("pipeline.yaml", &text)
    }
    /// Runs `spyral ARGS` in the sandbox.
    pub fn spyral(&self, args: &[&str]) -> Output {
        self.spyral_env(args, &[])
    }
    /// Runs `spyral ARGS` in the sandbox with extra environment variables.
    pub fn spyral_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = Command::new(spyral_bin())
            .args(args)
            .current_dir(self.path())
            .env_remove("SPYRAL_PLUGIN_PATH")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run spyral");
        Output::from(out)
    }
    /// Starts `spyral ARGS` in the sandbox without waiting (stdout and stderr piped).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(spyral_bin())
            .args(args)
            .current_dir(self.path())
            .env_remove("SPYRAL_PLUGIN_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start spyral")
    }
    /// The newest launch's log folder.
    pub fn latest_log(&self) -> PathBuf {
        std::fs::canonicalize(self.ws().join("log/latest")).expect("log/latest")
    }
    /// The newest launch's logs (every `*.txt` of its log folder, each under a header line):
    /// what a failed assertion about the launch's effects prints.
    pub fn logs(&self) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.latest_log())
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "txt"));
        files.sort();
        files
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                format!("== {}\n{text}", p.display())
            })
            .collect()
    }
    /// The newest launch's report.
    pub fn report(&self) -> serde_json::Value {
        let text =
            std::fs::read_to_string(self.latest_log().join("report.json")).expect("report.json");
        serde_json::from_str(&text).expect("report json")
    }
}

/// The record of `run` in a report.
pub fn run_record(report: &serde_json::Value, run: u64) -> serde_json::Value {
    report["runs"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["run"] == run))
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// Sends signal `sig` (`INT`, `TERM`, `KILL`, ...) to process `pid` with kill(1).
pub fn send_signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Whether process `pid` is running (exists and is not a zombie: a zombie holds no files).
pub fn pid_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}

/// Whether a process with `pid` exists.
pub fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The direct children of process `parent`.
pub fn children(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after = stat.rsplit(')').next().unwrap_or("");
        if after
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<i32>().ok())
            == Some(parent)
        {
            out.push(pid);
        }
    }
    out
}

/// (Pss, Rss) in KiB of the mappings of `pid` whose line contains `tag` (e.g. a memfd name).
pub fn mapping_pss(pid: i32, tag: &str) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return (0, 0);
    };
    let (mut pss, mut rss, mut inside) = (0, 0, false);
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            inside = line.contains(tag);
        } else if inside {
            let val = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if line.starts_with("Pss:") {
                pss += val;
            } else if line.starts_with("Rss:") {
                rss += val;
            }
        }
    }
    (pss, rss)
}

/// Total Pss of `pid` in KiB (from smaps_rollup).
pub fn total_pss(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The regular files directly in `dir`, by name, with their bytes.
pub fn file_bytes(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read folder")
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read file"),
            )
        })
        .collect()
}

/// Every path under `dir` (folders end with `/`), relative to it and sorted: what a failed
/// assertion about left-over files prints.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            if path.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &path, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `Shmem` of /proc/meminfo in KiB.
pub fn shmem_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Shmem:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The first lines of a benchmark table: what was measured, at which commit (with `-dirty` when
/// the checkout has changes other than benchmark tables, which benchmarks themselves write), on what
/// date, so a number is never separated from its code.
pub fn bench_header(title: &str) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(workspace_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    let dirty = if git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":(exclude)bench-results",
    ])
    .is_empty()
    {
        ""
    } else {
        "-dirty"
    };
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!(
        "# {title}\n\nMeasured at commit `{commit}{dirty}` on {date}, {cores} cores, release build. Every launch uses a fresh workspace or `--force`.\n\n"
    )
}

/// A pipeline over the default AT-TPC chain (the demo's detector, gas, gate and mesh) for
/// `runs` runs in the sandbox made by [`Sandbox::simulated`]; `extra` adds header lines.
pub fn default_chain(sb: &Sandbox, runs: u32, extra: &str) -> PathBuf {
    let demo = std::fs::read_to_string(workspace_root().join("examples/demo.yaml"))
        .expect("examples/demo.yaml");
    let text = demo
        .replace(
            "runs: {min: 1, max: 4}",
            &format!("runs: {{min: 1, max: {runs}}}\n{extra}"),
        )
        .replace("workspace: workspace", "workspace: ws")
        .replace("gas/deuterium_300torr.json", "gas.json")
        .replace("pid/deuteron.json", "pid.json");
    sb.file("chain.yaml", &text)
}

/// The default chain's phases with a small InterpSolver mesh (quick in a debug build), for a
/// sandbox made by [`Sandbox::simulated`] (its `gas.json` and `pid.json`).
pub const SMALL_CHAIN: &str = "  - kind: pointcloud
  - kind: cluster
  - kind: estimation
  - kind: interp-solver
    config:
      gas_data_path: gas.json
      particle_id_filename: pid.json
      n_time_steps: 200
      interp_ke_max: 70.0
      interp_ke_bins: 60
      interp_polar_bins: 40
";
