//! Log folders and log files.
//!
//! Each launch gets `<workspace>/log/<UTC timestamp>/` with `parent.log`, one `worker-<i>.log`
//! per worker and `report.json`; `log/latest` points at the newest launch. Earlier launches
//! are kept, never truncated. Files are written with blocking writers (no background thread),
//! so a crash cannot eat the last lines.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

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

struct LogFile(Mutex<File>);

impl Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(buf)?;
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
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    let writer: &'static LogFile = Box::leak(Box::new(LogFile(Mutex::new(f))));
    let file_layer = fmt::layer()
        .with_ansi(false)
        .with_target(true)
        .with_writer(move || writer)
        .with_filter(EnvFilter::new(level));
    let stderr_layer = stderr_level.map(|l| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .without_time()
            .with_target(false)
            .with_filter(EnvFilter::new(l))
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
                .without_time()
                .with_target(false)
                .with_filter(EnvFilter::new(level)),
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
