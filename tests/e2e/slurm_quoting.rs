//! `spyral slurm` with hostile names: folders (spaces, `$(...)`, backticks, quotes, `;`, a
//! newline, a backslash), pipeline file names (the job name), partitions and `--sbatch-arg`
//! values. The generated scripts run under `bash` (their `exec` line starts the real spyral,
//! itself hard-linked into a hostile folder), the printed submit command is pasted into `bash`
//! with a stub `sbatch` on PATH that records its argv, and the `#SBATCH` lines are read back
//! with sbatch's quoting rules: no injected command may run, and every path and value must
//! arrive intact. Control characters in option values are refused before anything is written.
//! Also: `plan --shard` agrees with `run --shard` on an empty shard.

use spyral_e2e::{plugin, spyral_bin, Sandbox};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What every injection attempt would create in the folder it runs in.
const MARKER: &str = "pwned";

/// Folder names: one with every shell metacharacter, one with a newline and a backslash.
const FOLDERS: [&str; 2] = [
    "p $(touch pwned) `touch pwned` it's \"q\"; touch pwned & *",
    "nl\ntouch pwned\n\\ back $HOME",
];

/// A partition with shell syntax in it (allowed: it contains no control character).
const PARTITION: &str = "gpu $(touch pwned);`touch pwned`'x'";

/// An `--sbatch-arg` with spaces, quotes and a `#` (a comment to sbatch when unquoted).
const COMMENT: &str = "--comment=a b 'c' \"d\" # e; touch pwned";

/// Every file or folder named exactly [`MARKER`] under `dir`.
fn markers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_name() == MARKER {
                found.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    found
}

/// A stub `sbatch` in `dir/bin` that records each call's argv (NUL-separated, so newlines
/// survive) as `dir/calls/N` and prints a parsable job id `100N;cluster`.
fn stub_sbatch(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(dir.join("calls")).unwrap();
    let calls = dir.join("calls");
    let script = format!(
        "#!/bin/bash\nn=$(ls -1 {calls} | wc -l)\nprintf '%s\\0' \"$@\" > {calls}/$n\necho \"100$n;cluster\"\n",
        calls = calls.display()
    );
    let sbatch = bin.join("sbatch");
    std::fs::write(&sbatch, script).unwrap();
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn recorded_calls(dir: &Path) -> Vec<Vec<OsString>> {
    let mut calls = Vec::new();
    for n in 0.. {
        let Ok(bytes) = std::fs::read(dir.join("calls").join(n.to_string())) else {
            break;
        };
        let args = bytes
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect();
        calls.push(args);
    }
    calls
}

/// The arguments of the `#SBATCH` lines of `script`, read as sbatch reads them: lines up to
/// the first command; a backslash escapes the next character; `'` and `"` group; an unquoted
/// `#` starts a comment.
fn sbatch_directives(script: &[u8]) -> Vec<Vec<u8>> {
    let mut args = Vec::new();
    for line in script.split(|&b| b == b'\n').skip(1) {
        let trimmed: &[u8] = line.trim_ascii_start();
        if trimmed.is_empty() {
            continue;
        }
        if !trimmed.starts_with(b"#") {
            break;
        }
        let Some(rest) = line.strip_prefix(b"#SBATCH") else {
            continue;
        };
        let (mut cur, mut in_word, mut quote, mut escape) = (Vec::new(), false, None, false);
        for &c in rest {
            if escape {
                cur.push(c);
                escape = false;
                in_word = true;
            } else if c == b'\\' {
                escape = true;
            } else if let Some(q) = quote {
                if c == q {
                    quote = None;
                } else {
                    cur.push(c);
                }
            } else if c == b'\'' || c == b'"' {
                quote = Some(c);
                in_word = true;
            } else if c == b'#' {
                break;
            } else if c.is_ascii_whitespace() {
                if in_word {
                    args.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            } else {
                cur.push(c);
                in_word = true;
            }
        }
        assert!(quote.is_none(), "unterminated quote in {line:?}");
        if in_word {
            args.push(cur);
        }
    }
    args
}

/// A folder named `name` inside a sandbox with three runs, a pipeline file named `name.yaml`
/// (the job name comes from it) and the spyral binary hard-linked (copied if it must be) into
/// `name/bin dir/`. Returns (folder, pipeline, spyral).
fn hostile_project(sb: &Sandbox, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let root = sb.path().join(name);
    std::fs::create_dir_all(root.join("traces")).unwrap();
    for run in 1..=3u32 {
        std::fs::write(
            root.join(format!("traces/run_{run:04}.h5")),
            vec![run as u8; 100 * run as usize],
        )
        .unwrap();
    }
    let pipeline = root.join(format!("{name}.yaml"));
    std::fs::write(
        &pipeline,
        format!(
            "workspace: ws\ntraces: traces\nplugins:\n  - {}\nruns: {{min: 1, max: 3}}\nseed: 1\nphases:\n  - kind: stamp\n",
            plugin("spyral_testkit").display()
        ),
    )
    .unwrap();
    let bin = root.join("bin dir");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("spyral");
    if std::fs::hard_link(spyral_bin(), &exe).is_err() {
        std::fs::copy(spyral_bin(), &exe).unwrap();
    }
    (root, pipeline, exe)
}

fn run_in(dir: &Path, cmd: &mut Command) -> Output {
    cmd.current_dir(dir)
        .env_remove("SPYRAL_PLUGIN_PATH")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn hostile_names_reach_sbatch_and_spyral_intact_and_run_nothing() {
    let sb = Sandbox::new();
    let probe = sb.path().join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    for name in FOLDERS {
        let (root, pipeline, exe) = hostile_project(&sb, name);
        let out = run_in(
            &probe,
            Command::new(&exe)
                .arg("slurm")
                .arg(&pipeline)
                .args(["--tasks", "2", "--cpus-per-task", "1", "--time", "00:10:00"])
                .args(["--partition", PARTITION])
                .arg(format!("--sbatch-arg={COMMENT}"))
                .arg("--sbatch-arg=--mem=1G"),
        );
        assert!(
            out.status.success(),
            "{name:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let slurm_dir = root.join("ws/slurm");
        let assets = slurm_dir.join(format!("{name}-assets.sbatch"));
        let array = slurm_dir.join(format!("{name}-array.sbatch"));
        assert!(assets.is_file() && array.is_file(), "{name:?}");

        // The #SBATCH lines, read as sbatch reads them.
        let job = format!("spyral-{}", name.replace(['\n', '\\'], "_"));
        let log_dir = root.join("ws/log/slurm");
        let directive_safe = !name.contains(['\n', '\\']);
        for (script, job, output) in [
            (&assets, format!("{job}-assets"), "assets-%j.out"),
            (&array, job.clone(), "run-%A_%a.out"),
        ] {
            let bytes = std::fs::read(script).unwrap();
            let got = sbatch_directives(&bytes);
            let mut want: Vec<Vec<u8>> = vec![
                format!("--job-name={job}").into_bytes(),
                b"--cpus-per-task=1".to_vec(),
                b"--time=00:10:00".to_vec(),
                format!("--partition={PARTITION}").into_bytes(),
                COMMENT.as_bytes().to_vec(),
                b"--mem=1G".to_vec(),
            ];
            if script == &array {
                want.push(b"--array=0-1".to_vec());
            }
            if directive_safe {
                let mut o = b"--output=".to_vec();
                o.extend_from_slice(log_dir.as_os_str().as_bytes());
                o.extend_from_slice(format!("/{output}").as_bytes());
                want.push(o);
            }
            let show = |v: &Vec<Vec<u8>>| v.iter().map(|a| text(a)).collect::<Vec<_>>();
            assert_eq!(show(&got), show(&want), "{name:?}: {}", text(&bytes));
        }

        // The printed submit command, pasted into bash with a stub sbatch.
        let stdout = out.stdout;
        let at = stdout
            .windows(13)
            .position(|w| w == b"submit with: ")
            .expect("a submit hint");
        let mut hint = stdout[at + 13..].to_vec();
        assert_eq!(hint.pop(), Some(b'\n'));
        let stub = sb.path().join(format!("stub-{}", name.len()));
        let bin = stub_sbatch(&stub);
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let pasted = run_in(
            &probe,
            Command::new("bash")
                .arg("-c")
                .arg(OsStr::from_bytes(&hint))
                .env("PATH", &path),
        );
        assert!(
            pasted.status.success(),
            "{name:?}: {}{}",
            text(&pasted.stdout),
            text(&pasted.stderr)
        );
        let calls = recorded_calls(&stub);
        assert_eq!(
            calls,
            vec![
                vec![
                    OsString::from("--parsable"),
                    assets.clone().into_os_string()
                ],
                vec![
                    OsString::from("--dependency=afterok:1000"),
                    array.clone().into_os_string()
                ],
            ],
            "{name:?}: the hint submits the two scripts, the array after the assets job"
        );

        // The scripts under bash: they start the real spyral on the right pipeline.
        let assets_run = run_in(
            &probe,
            Command::new("bash")
                .arg(&assets)
                .env("SLURM_JOB_ID", "1000"),
        );
        assert!(
            assets_run.status.success(),
            "{name:?}: {}{}",
            text(&assets_run.stdout),
            text(&assets_run.stderr)
        );
        for task in ["0", "1"] {
            let r = run_in(
                &probe,
                Command::new("bash")
                    .arg(&array)
                    .env("SLURM_ARRAY_TASK_ID", task)
                    .env("SLURM_ARRAY_JOB_ID", "1001"),
            );
            assert!(
                r.status.success(),
                "{name:?} task {task}: {}{}",
                text(&r.stdout),
                text(&r.stderr)
            );
        }
        for run in 1..=3 {
            assert!(
                root.join(format!("ws/Stamp/run_{run:04}.bin")).is_file(),
                "{name:?}: run {run} was not processed by the array tasks"
            );
        }
        let shard_logs = std::fs::read_dir(root.join("ws/log"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("-shard-"))
            .count();
        assert_eq!(shard_logs, 2, "{name:?}: one launch per shard");
        if !directive_safe {
            // The log redirection in the script body took the place of #SBATCH --output.
            assert!(log_dir.join("assets-1000.out").is_file(), "{name:?}");
            assert!(log_dir.join("run-1001_0.out").is_file(), "{name:?}");
        }
    }
    assert_eq!(
        markers(sb.path()),
        Vec::<PathBuf>::new(),
        "an injected command ran"
    );
}

#[test]
fn control_characters_in_values_are_refused_naming_the_option() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    let p = sb.pipeline("runs: {min: 1, max: 1}", "  - kind: stamp\n");
    let p = p.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--partition", "gpu\ntouch pwned"], "--partition"),
        (&["--time", "1:00\r"], "--time"),
        (&["--sbatch-arg=--comment=\u{1b}[31mred"], "--sbatch-arg"),
        (&["--sbatch-arg=--mem=1G\ttouch"], "--sbatch-arg"),
        (&["--partition", "a\\b"], "--partition"),
    ];
    for (args, option) in cases {
        let mut all = vec!["slurm", p, "--tasks", "2"];
        all.extend_from_slice(args);
        let out = sb.spyral(&all);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.all());
        assert!(
            out.stderr.contains(&format!("error: {option} `")),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!sb.ws().exists(), "{args:?}: created before validation");
    }
    assert_eq!(markers(sb.path()), Vec::<PathBuf>::new());
}

#[test]
fn plan_and_run_agree_on_an_empty_shard() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    let p = sb.pipeline("runs: {min: 1, max: 3}", "  - kind: stamp\n");
    let p = p.to_str().unwrap();
    let plan = sb.spyral(&["plan", p, "--shard", "1/2"]);
    let run = sb.spyral(&["run", p, "--shard", "1/2", "--no-display"]);
    assert_eq!(plan.code, Some(0), "{}", plan.all());
    assert_eq!(run.code, Some(0), "{}", run.all());
    for out in [&plan, &run] {
        assert!(
            out.stdout
                .contains("shard 1/2 has no runs (1 runs over 2 shards); nothing to do"),
            "{}",
            out.all()
        );
    }
    let json = sb.spyral(&["plan", p, "--shard", "1/2", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["runs_found"], 0);
    assert!(v["note"].as_str().unwrap().contains("nothing to do"));
    // The other shard has the run, in both.
    let plan = sb.spyral(&["plan", p, "--shard", "0/2"]);
    assert!(plan.stdout.contains("1 runs found"), "{}", plan.all());
    assert!(!sb.ws().exists(), "plan and an empty shard create nothing");
}
