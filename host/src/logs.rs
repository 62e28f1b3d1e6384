//! Log folders and log files.
//!
//! Each launch gets `<workspace>/log/<UTC timestamp>/` with `parent.log`, one `worker-<i>.log`
//! per worker and `report.json`; `log/latest` points at the newest launch. Earlier launches
//! are kept, never truncated. Files are written with blocking writers (no background thread),
//! so a crash cannot eat the last lines. Log levels are a closed set ([`LogLevel`]); colour codes
//! go to stderr only when it is a terminal (never into a SLURM log or a redirected file).

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// A log level of `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, clap::ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// The default: what happened, per run and phase.
    #[default]
    Info,
    /// More detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level's name, as tracing filters spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A log filter that must be valid: a bad one would silently log nothing.
fn filter(level: &str) -> std::io::Result<EnvFilter> {
    EnvFilter::try_new(level).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("log level `{level}`: {e} (use error, warn, info, debug or trace)"),
        )
    })
}

/// Whether to write colour codes to stderr: only to a terminal, and never with `NO_COLOR` set.
pub fn stderr_colours() -> bool {
    colours(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    )
}

fn colours(terminal: bool, no_color: bool) -> bool {
    terminal && !no_color
}

/// `YYYY-MM-DDTHH-MM-SS` in UTC for `t` (file-name safe).
pub fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Creates a new launch folder `<workspace>/log/<timestamp><suffix>` (suffix e.g. `-shard-2of8`)
/// and points `latest` at it. Safe when several launches start in the same second.
pub fn new_launch_dir(workspace: &Path, suffix: &str) -> std::io::Result<PathBuf> {
    let log = workspace.join("log");
    std::fs::create_dir_all(&log)?;
    let base = format!("{}{suffix}", timestamp(SystemTime::now()));
    let mut n = 1;
    let dir = loop {
        let dir = if n == 1 {
            log.join(&base)
        } else {
            log.join(format!("{base}.{n}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => break dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e),
        }
    };
    // Replace `latest` atomically: make the new link under a private name, then rename it.
    if let Some(name) = dir.file_name() {
        let tmp = log.join(format!(".latest.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        if std::os::unix::fs::symlink(name, &tmp).is_ok() {
            let _ = std::fs::rename(&tmp, log.join("latest"));
        }
    }
    Ok(dir)
}

/// A log file written with blocking appends (a crash keeps the last lines). A write that
/// fails (a full disk) is said once on stderr, so a log is never silently empty.
struct LogFile {
    file: Mutex<File>,
    path: std::path::PathBuf,
    failed: std::sync::atomic::AtomicBool,
}

impl Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = f.write_all(buf) {
            if !self.failed.swap(true, std::sync::atomic::Ordering::Relaxed) {
                eprintln!(
                    "spyral: cannot write the log file {} ({e}); log lines are lost from here on",
                    self.path.display()
                );
            }
            return Err(e);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Routes this process's tracing events to `file` (appending; blocking writes) at `level`,
/// and, when `stderr_level` is given, also to stderr at that level.
pub fn init_file_logging(
    file: &Path,
    level: &str,
    stderr_level: Option<&str>,
) -> std::io::Result<()> {
    let file_filter = filter(level)?;
    let stderr_filter = stderr_level.map(filter).transpose()?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    let writer: &'static LogFile = Box::leak(Box::new(LogFile {
        file: Mutex::new(f),
        path: file.to_path_buf(),
        failed: std::sync::atomic::AtomicBool::new(false),
    }));
    let file_layer = fmt::layer()
        .with_ansi(false)
        .with_target(true)
        .with_writer(move || writer)
        .with_filter(file_filter);
    let stderr_layer = stderr_filter.map(|f| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(stderr_colours())
            .without_time()
            .with_target(false)
            .with_filter(f)
    });
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    Ok(())
}

/// Logging for commands that have no workspace: stderr only.
pub fn init_stderr_logging(level: &str) {
    let _ = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(stderr_colours())
                .without_time()
                .with_target(false)
                .with_filter(filter(level).unwrap_or_else(|_| EnvFilter::new("warn"))),
        )
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00-00-00");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_600_000);
        assert_eq!(timestamp(t), "2026-11-25T09-46-40");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&timestamp(leap)[..10], "2000-02-29");
    }

    #[test]
    fn levels_and_colours() {
        use clap::ValueEnum;
        for l in LogLevel::value_variants() {
            assert!(filter(l.as_str()).is_ok());
            assert_eq!(LogLevel::from_str(l.as_str(), false), Ok(*l));
        }
        assert!(LogLevel::from_str("bogus", false).is_err());
        let e = filter("x=bogus").unwrap_err();
        assert!(e.to_string().contains("log level `x=bogus`"), "{e}");
        assert!(colours(true, false));
        assert!(!colours(false, false));
        assert!(!colours(true, true));
    }

    #[test]
    fn launch_dirs_are_kept() {
        let ws = tempfile::tempdir().unwrap();
        let a = new_launch_dir(ws.path(), "").unwrap();
        let b = new_launch_dir(ws.path(), "").unwrap();
        assert_ne!(a, b);
        assert!(a.exists() && b.exists());
        let latest = std::fs::read_link(ws.path().join("log/latest")).unwrap();
        assert_eq!(latest, PathBuf::from(b.file_name().unwrap()));
    }
}
