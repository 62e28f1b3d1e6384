//! `spyral slurm`: scale out on a SLURM cluster as a job array.
//!
//! Writes two sbatch scripts into `<workspace>/slurm/`: one that runs `spyral assets` once, and
//! an array of N tasks, each `spyral run PIPELINE --shard $SLURM_ARRAY_TASK_ID/N --no-display
//! --workers C`. Shards are the snake plan of all runs over N, so their loads are balanced by
//! size; inside a task the workers plan as usual and shared segments are created per task (per
//! node). With `--submit`, both are submitted with sbatch, the array depending on the assets job.
//!
//! Nothing the user typed or named reaches a shell unquoted: every path and value goes through
//! [`shell_quote`] (POSIX single quotes), in the scripts and in the printed submit command.
//! Option values with control characters (a newline would end an `#SBATCH` line and start a
//! shell command) or backslashes (sbatch reads them as escapes) are refused before anything is
//! written. A workspace path that cannot be written into an `#SBATCH` line (a newline, a
//! backslash) gets its log redirection from the script body instead.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Options of `spyral slurm`.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// Array tasks.
    pub tasks: usize,
    /// CPUs per task (= workers per task).
    pub cpus_per_task: usize,
    /// Wall-time limit (`--time`), e.g. `04:00:00`.
    pub time: Option<String>,
    /// Partition.
    pub partition: Option<String>,
    /// Extra `#SBATCH` arguments, e.g. `--mem=16G`.
    pub extra: Vec<String>,
    /// Shell lines run before spyral in both scripts, e.g. `module load hdf5` (one line each).
    pub setup: Vec<String>,
}

/// Errors of `spyral slurm`.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// Bad count.
    #[error("{0}")]
    Invalid(String),
    /// A value with a control character.
    #[error("{option} `{}`: control character {} is not allowed (a newline would end the #SBATCH line and run the rest as a shell command)", value.escape_debug(), char_name(*found))]
    ControlCharacter {
        /// The option.
        option: String,
        /// Its value.
        value: String,
        /// The first control character.
        found: char,
    },
    /// A value with a backslash.
    #[error("{option} `{value}`: a backslash cannot be written into an #SBATCH line (sbatch reads it as an escape)")]
    Backslash {
        /// The option.
        option: String,
        /// Its value.
        value: String,
    },
    /// An empty value.
    #[error("{option}: the value is empty")]
    Empty {
        /// The option.
        option: String,
    },
    /// An `--sbatch-arg` that is not an option.
    #[error("--sbatch-arg `{0}`: expected an sbatch option starting with `-`, e.g. --sbatch-arg=--mem=16G")]
    NotAnOption(String),
    /// File problem.
    #[error("cannot write {}: {error}", path.display())]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        error: std::io::Error,
    },
    /// sbatch failed.
    #[error("sbatch failed: {0}")]
    Sbatch(String),
}

fn char_name(c: char) -> String {
    format!("{:?} (U+{:04X})", c, c as u32)
}

/// The scripts written.
#[derive(Debug, Clone)]
pub struct Scripts {
    /// The assets job.
    pub assets: PathBuf,
    /// The array job.
    pub array: PathBuf,
}

/// Quotes `word` as one word for a POSIX shell (bash, dash): a word made only of characters
/// that are never special (letters, digits, `/._-=:+,@%`) stays as it is, anything else goes in
/// single quotes with each `'` written as `'\''`, so every byte (newlines, `$`, backticks,
/// quotes, `;`) reaches the command exactly as it was. The empty word is `''`.
///
/// sbatch reads `#SBATCH` lines with the same quotes, as long as the word has no backslash
/// and no newline (see [`directive_safe`]).
pub fn shell_quote(word: &OsStr) -> OsString {
    let b = word.as_bytes();
    let plain = |c: &u8| c.is_ascii_alphanumeric() || b"/._-=:+,@%".contains(c);
    if !b.is_empty() && b.iter().all(plain) {
        return word.to_os_string();
    }
    let mut out = Vec::with_capacity(b.len() + 2);
    out.push(b'\'');
    for &c in b {
        if c == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(c);
        }
    }
    out.push(b'\'');
    OsString::from_vec(out)
}

/// Whether [`shell_quote`]`(word)` is read back as `word` by sbatch in an `#SBATCH` line: no
/// control character (a newline ends the line) and no backslash (sbatch's escape character,
/// even inside single quotes).
pub fn directive_safe(word: &OsStr) -> bool {
    !word
        .as_bytes()
        .iter()
        .any(|&c| c == b'\\' || c.is_ascii_control())
}

/// Refuses values that cannot be written safely: empty, control characters, backslashes.
fn check_value(option: &str, value: &str) -> Result<(), SlurmError> {
    if value.is_empty() {
        return Err(SlurmError::Empty {
            option: option.into(),
        });
    }
    if let Some(found) = value.chars().find(|c| c.is_control()) {
        return Err(SlurmError::ControlCharacter {
            option: option.into(),
            value: value.into(),
            found,
        });
    }
    if value.contains('\\') {
        return Err(SlurmError::Backslash {
            option: option.into(),
            value: value.into(),
        });
    }
    Ok(())
}

/// Checks every option value; nothing is written before this passes.
pub fn check_options(o: &SlurmOptions) -> Result<(), SlurmError> {
    if o.tasks == 0 {
        return Err(SlurmError::Invalid("--tasks must be at least 1".into()));
    }
    if o.cpus_per_task == 0 {
        return Err(SlurmError::Invalid(
            "--cpus-per-task must be at least 1".into(),
        ));
    }
    if let Some(t) = &o.time {
        check_value("--time", t)?;
    }
    if let Some(p) = &o.partition {
        check_value("--partition", p)?;
    }
    for line in &o.setup {
        check_value("--setup", line)?;
    }
    for e in &o.extra {
        check_value("--sbatch-arg", e)?;
        if !e.starts_with('-') {
            return Err(SlurmError::NotAnOption(e.clone()));
        }
    }
    Ok(())
}

/// A job name from a file stem: control characters and backslashes become `_` (the name is
/// only a label in `squeue`).
fn job_name(stem: &OsStr, suffix: &str) -> String {
    let s: String = stem
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_control() || c == '\\' { '_' } else { c })
        .collect();
    format!("spyral-{s}{suffix}")
}

/// Text and quoted paths, as bytes (paths need not be UTF-8).
#[derive(Default)]
struct Script(Vec<u8>);

impl Script {
    fn text(&mut self, t: &str) -> &mut Self {
        self.0.extend_from_slice(t.as_bytes());
        self
    }
    fn word(&mut self, w: &OsStr) -> &mut Self {
        self.0.extend_from_slice(shell_quote(w).as_bytes());
        self
    }
    fn directive(&mut self, option: &str, value: &str) -> &mut Self {
        self.text("#SBATCH ")
            .text(option)
            .word(OsStr::new(value))
            .text("\n")
    }
}

fn header(s: &mut Script, name: &str, o: &SlurmOptions) {
    s.text("#!/bin/bash\n")
        .directive("--job-name=", name)
        .text(&format!("#SBATCH --cpus-per-task={}\n", o.cpus_per_task));
    if let Some(t) = &o.time {
        s.directive("--time=", t);
    }
    if let Some(p) = &o.partition {
        s.directive("--partition=", p);
    }
    for e in &o.extra {
        s.directive("", e);
    }
}

/// The output of the job: an `#SBATCH --output` line when the log folder can be written there,
/// else a redirection in the script body (returned second). `file` is the file name after the
/// folder with sbatch's `%` patterns; `shell_file` the same with shell variables.
fn output(log_dir: &Path, file: &str, shell_file: &str) -> (Vec<u8>, Vec<u8>) {
    let mut path = log_dir.as_os_str().to_os_string();
    path.push("/");
    if directive_safe(&path) {
        let mut d = Script::default();
        d.text("#SBATCH --output=")
            .word(&path)
            .text(file)
            .text("\n");
        (d.0, Vec::new())
    } else {
        let mut b = Script::default();
        b.text("# The log folder's path cannot be written into an #SBATCH line: log from here.\n")
            .text("exec >>")
            .word(&path)
            .text(shell_file)
            .text(" 2>&1\n");
        (Vec::new(), b.0)
    }
}

/// A `--mem` suggestion from the newest launch report in `workspace`: the shared segments
/// (one copy per node) plus `cpus` workers at the largest peak resident memory a worker reached,
/// with a quarter more for headroom, in whole GiB. None when there is no report yet.
pub fn suggest_mem(workspace: &Path, cpus: usize) -> Option<String> {
    let text = std::fs::read_to_string(workspace.join("log/latest/report.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let segments: u64 = v["segments"]
        .as_array()?
        .iter()
        .filter_map(|s| s["bytes"].as_u64())
        .sum();
    let worker_kib = v["worker_reports"]
        .as_array()?
        .iter()
        .filter_map(|w| w["peak_rss_kib"].as_u64())
        .max()?;
    let bytes = (segments + cpus as u64 * worker_kib * 1024) as f64 * 1.25;
    let gib = (bytes / (1u64 << 30) as f64).ceil().max(1.0) as u64;
    Some(format!(
        "--sbatch-arg=--mem={gib}G (from the last launch: shared segments {}, worker peak {} x {cpus} workers, +25%)",
        crate::segments::human_bytes(segments),
        crate::segments::human_bytes(worker_kib * 1024)
    ))
}

/// The `--setup` lines, verbatim (they are shell commands the user wrote for this purpose, such
/// as `module load hdf5`; control characters were refused).
fn setup_lines(s: &mut Script, o: &SlurmOptions) {
    if o.setup.is_empty() {
        return;
    }
    s.text("# Environment (--setup).\n");
    for line in &o.setup {
        s.text(line).text("\n");
    }
}

/// Writes the scripts for `pipeline` (absolute) whose workspace is `workspace`.
pub fn write_scripts(
    spyral: &Path,
    pipeline: &Path,
    workspace: &Path,
    o: &SlurmOptions,
) -> Result<Scripts, SlurmError> {
    check_options(o)?;
    let dir = workspace.join("slurm");
    let log_dir = workspace.join("log").join("slurm");
    let stem = pipeline
        .file_stem()
        .map(OsStr::to_os_string)
        .unwrap_or_else(|| "pipeline".into());
    let (exe, pipe) = (spyral.as_os_str(), pipeline.as_os_str());

    let mut assets = Script::default();
    header(&mut assets, &job_name(&stem, "-assets"), o);
    let (directive, body) = output(&log_dir, "assets-%j.out", "assets-\"$SLURM_JOB_ID\".out");
    assets.0.extend(directive);
    assets
        .text("\n# Workspace and assets, once, before the array.\n")
        .0
        .extend(body);
    setup_lines(&mut assets, o);
    assets
        .text("exec ")
        .word(exe)
        .text(" assets ")
        .word(pipe)
        .text("\n");

    let mut array = Script::default();
    header(&mut array, &job_name(&stem, ""), o);
    array.text(&format!("#SBATCH --array=0-{}\n", o.tasks - 1));
    let (directive, body) = output(
        &log_dir,
        "run-%A_%a.out",
        "run-\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\".out",
    );
    array.0.extend(directive);
    array
        .text("\n# Task K of N processes shard K of the snake plan of all runs over N.\n")
        .0
        .extend(body);
    setup_lines(&mut array, o);
    array
        .text("exec ")
        .word(exe)
        .text(" run ")
        .word(pipe)
        .text(&format!(
            " --shard \"$SLURM_ARRAY_TASK_ID/{}\" --no-display --workers {}\n",
            o.tasks, o.cpus_per_task
        ));

    for d in [&dir, &log_dir] {
        std::fs::create_dir_all(d).map_err(|error| SlurmError::Io {
            path: d.clone(),
            error,
        })?;
    }
    let write = |suffix: &str, text: &[u8]| -> Result<PathBuf, SlurmError> {
        let mut name = stem.clone();
        name.push(suffix);
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|error| SlurmError::Io {
            path: path.clone(),
            error,
        })?;
        Ok(path)
    };
    Ok(Scripts {
        assets: write("-assets.sbatch", &assets.0)?,
        array: write("-array.sbatch", &array.0)?,
    })
}

/// The shell command that submits both scripts, the array after the assets job succeeds,
/// with every path quoted: safe to paste into bash or sh whatever the folder names are.
pub fn submit_hint(s: &Scripts) -> OsString {
    let mut h = Script::default();
    h.text("jid=$(sbatch --parsable ")
        .word(s.assets.as_os_str())
        .text(") && sbatch --dependency=afterok:\"${jid%%;*}\" ")
        .word(s.array.as_os_str());
    OsString::from_vec(h.0)
}

fn sbatch(args: &[&OsStr]) -> Result<String, SlurmError> {
    let out = Command::new("sbatch")
        .args(args)
        .output()
        .map_err(|e| SlurmError::Sbatch(format!("cannot run sbatch: {e}")))?;
    if !out.status.success() {
        return Err(SlurmError::Sbatch(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // --parsable prints `jobid` or `jobid;cluster`.
    Ok(text.trim().split(';').next().unwrap_or("").to_string())
}

/// Submits the assets job, then the array depending on it. Returns (assets id, array id).
pub fn submit(s: &Scripts) -> Result<(String, String), SlurmError> {
    let a = sbatch(&[OsStr::new("--parsable"), s.assets.as_os_str()])?;
    let dep = format!("--dependency=afterok:{a}");
    let b = sbatch(&[
        OsStr::new("--parsable"),
        OsStr::new(&dep),
        s.array.as_os_str(),
    ])?;
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    fn opts() -> SlurmOptions {
        SlurmOptions {
            tasks: 4,
            cpus_per_task: 8,
            time: Some("02:00:00".into()),
            partition: None,
            extra: vec!["--mem=16G".into()],
            setup: vec!["module load hdf5".into(), "export OMP_NUM_THREADS=1".into()],
        }
    }

    #[test]
    fn memory_suggestion_from_the_last_report() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(suggest_mem(d.path(), 4), None);
        std::fs::create_dir_all(d.path().join("log/latest")).unwrap();
        std::fs::write(
            d.path().join("log/latest/report.json"),
            r#"{"segments": [{"bytes": 1073741824}], "worker_reports": [{"peak_rss_kib": 524288}, {"peak_rss_kib": 262144}]}"#,
        )
        .unwrap();
        // (1 GiB + 4 x 512 MiB) x 1.25 = 3.75 GiB -> 4G.
        let s = suggest_mem(d.path(), 4).unwrap();
        assert!(s.starts_with("--sbatch-arg=--mem=4G"), "{s}");
    }

    #[test]
    fn scripts() {
        let d = tempfile::tempdir().unwrap();
        let s = write_scripts(
            Path::new("/opt/spyral"),
            Path::new("/d/p.yaml"),
            d.path(),
            &opts(),
        )
        .unwrap();
        let a = std::fs::read_to_string(&s.array).unwrap();
        assert!(a.contains("#SBATCH --array=0-3"));
        assert!(a.contains("--shard \"$SLURM_ARRAY_TASK_ID/4\" --no-display --workers 8"));
        assert!(a.contains("#SBATCH --mem=16G") && a.contains("#SBATCH --time=02:00:00"));
        assert!(a.contains("#SBATCH --job-name=spyral-p\n"), "{a}");
        let b = std::fs::read_to_string(&s.assets).unwrap();
        assert!(b.contains("exec /opt/spyral assets /d/p.yaml"));
        assert!(b.contains("#SBATCH --output=") && b.contains("/log/slurm/assets-%j.out"));
        // Setup lines come before spyral starts, in both scripts.
        for text in [&a, &b] {
            let setup = text
                .find("module load hdf5\nexport OMP_NUM_THREADS=1\n")
                .unwrap();
            assert!(setup < text.find("exec ").unwrap(), "{text}");
        }
        assert!(write_scripts(
            Path::new("x"),
            Path::new("y"),
            d.path(),
            &SlurmOptions { tasks: 0, ..opts() }
        )
        .is_err());
    }

    /// Runs `bash -c 'printf "%s\0" WORD'` and returns what bash made of the word.
    fn through_bash(quoted: &OsStr) -> Vec<u8> {
        let mut script = b"printf '%s\\0' ".to_vec();
        script.extend_from_slice(quoted.as_bytes());
        let out = Command::new("bash")
            .arg("-c")
            .arg(OsStr::from_bytes(&script))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", out);
        let mut v = out.stdout;
        assert_eq!(v.pop(), Some(0), "one word");
        assert!(!v.contains(&0), "one word");
        v
    }

    #[test]
    fn quoting_round_trips_through_bash() {
        let words: Vec<&[u8]> = vec![
            b"plain/path_1.yaml",
            b"",
            b"proj $(touch x)",
            b"`touch x`",
            b"it's \"quoted\"",
            b"a; rm -rf b",
            b"new\nline",
            b"tab\there",
            b"$HOME ${x} ~ * ? [a] {a,b} | & > < ( ) # !",
            b"'",
            b"''\\'",
            b"back\\slash",
            b"\xff\xfe not utf-8",
            b"-n",
            b"=x",
        ];
        for w in words {
            let q = shell_quote(OsStr::from_bytes(w));
            assert_eq!(through_bash(&q), w, "quoted as {q:?}");
        }
        assert_eq!(shell_quote(OsStr::new("a/b.c")), "a/b.c");
        assert_eq!(shell_quote(OsStr::new("a b")), "'a b'");
        assert_eq!(shell_quote(OsStr::new("it's")), "'it'\\''s'");
        assert!(directive_safe(OsStr::new("/a b/$(x)'")));
        assert!(!directive_safe(OsStr::new("/a\nb")));
        assert!(!directive_safe(OsStr::new("/a\\b")));
    }

    #[test]
    fn hostile_values_are_refused_naming_the_option() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path().join("ws");
        let cases: Vec<(SlurmOptions, &str)> = vec![
            (
                SlurmOptions {
                    partition: Some("gpu\ntouch /tmp/x".into()),
                    ..opts()
                },
                "--partition",
            ),
            (
                SlurmOptions {
                    time: Some("1:00\r".into()),
                    ..opts()
                },
                "--time",
            ),
            (
                SlurmOptions {
                    extra: vec!["--mem=1G\0".into()],
                    ..opts()
                },
                "--sbatch-arg",
            ),
            (
                SlurmOptions {
                    extra: vec!["--comment=a\u{1b}[31m".into()],
                    ..opts()
                },
                "--sbatch-arg",
            ),
            (
                SlurmOptions {
                    partition: Some("a\\b".into()),
                    ..opts()
                },
                "--partition",
            ),
            (
                SlurmOptions {
                    time: Some(String::new()),
                    ..opts()
                },
                "--time",
            ),
            (
                SlurmOptions {
                    extra: vec!["mem=1G".into()],
                    ..opts()
                },
                "--sbatch-arg",
            ),
            (
                SlurmOptions {
                    setup: vec!["module load hdf5\nrm -rf ~".into()],
                    ..opts()
                },
                "--setup",
            ),
        ];
        for (o, option) in cases {
            let e = write_scripts(Path::new("/x"), Path::new("/p.yaml"), &ws, &o).unwrap_err();
            assert!(e.to_string().starts_with(option), "{e}");
            assert!(
                !ws.exists(),
                "nothing is created before the options are checked"
            );
        }
        let e = check_options(&SlurmOptions {
            partition: Some("gpu\ntouch x".into()),
            ..opts()
        })
        .unwrap_err();
        assert!(e.to_string().contains("'\\n' (U+000A)"), "{e}");
    }

    #[test]
    fn hostile_values_that_are_allowed_stay_one_word() {
        let d = tempfile::tempdir().unwrap();
        let o = SlurmOptions {
            partition: Some("gpu $(touch x); `id` 'q'".into()),
            extra: vec!["--comment=a b # c".into()],
            ..opts()
        };
        let s = write_scripts(Path::new("/x"), Path::new("/p.yaml"), d.path(), &o).unwrap();
        let a = std::fs::read_to_string(&s.array).unwrap();
        assert!(
            a.contains("#SBATCH --partition='gpu $(touch x); `id` '\\''q'\\'''\n"),
            "{a}"
        );
        assert!(a.contains("#SBATCH '--comment=a b # c'\n"), "{a}");
    }

    #[test]
    fn a_log_folder_that_cannot_be_a_directive_is_redirected_in_the_body() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path().join("new\nline");
        let s = write_scripts(Path::new("/x"), Path::new("/p.yaml"), &ws, &opts()).unwrap();
        let a = std::fs::read(&s.assets).unwrap();
        let text = String::from_utf8_lossy(&a);
        assert!(!text.contains("--output"), "{text}");
        assert!(text.contains("exec >>'"), "{text}");
        for line in text.lines().filter(|l| l.starts_with("#SBATCH")) {
            assert!(!line.contains("line"), "{line}");
        }
    }
}
