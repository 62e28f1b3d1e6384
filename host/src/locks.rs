//! Coordination between launches that share a workspace (a second `spyral run`, a late SLURM
//! array task, a shard started by hand): OS file locks (`flock`) that the kernel releases when
//! their process dies, so there is never a stale lock to remove by hand.
//!
//! - **(run, phase) locks**, `<workspace>/.spyral/locks/<Phase>/run_0001.lock`: a worker holds
//!   the locks of every active phase of a run while it processes the run. A launch that finds
//!   one held reports the run as "running in another launch" and goes on with its other runs.
//!   Temporary (`.partial`) files of a run belong to whoever holds its lock: they are removed
//!   only by a process that holds the lock, i.e. when their owner is dead.
//! - **asset locks**, `<workspace>/.spyral/locks/<Phase>/assets.lock`: held around a phase's
//!   `create_assets` and `create_shared_data`; a second launch waits for the first and then
//!   reuses the assets it built.
//! - **split-run markers**, `<workspace>/.spyral/locks/.split/run_0001.lock`: the parent of a
//!   launch holds one while it has a run in progress as event chunks (its chunk workers hold the
//!   run's locks only shared, and only while a unit runs), so that `spyral status` can say the run
//!   is running and another launch does not take the run whole between its units. Chunks, merges
//!   and commits are still coordinated by the (run, phase) and chunk locks alone.
//!
//! The lock files themselves stay (empty but for the holder's pid); only the kernel lock on them
//! means anything.

use rustix::fs::FlockOperation;
use spyral_core::run_stem;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Errors taking a lock.
#[derive(Debug, thiserror::Error)]
#[error("cannot lock {path}: {source}")]
pub struct LockError {
    /// The lock file.
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    file: std::fs::File,
    path: PathBuf,
    /// Held exclusively with the holder's name written in: cleared on release, so a name in a
    /// lock file is always its current holder's (a killed holder's name stays, but then the
    /// lock is free and nobody asks).
    stamped: bool,
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.stamped {
            let _ = self.file.set_len(0);
        }
    }
}

/// What a process that cannot take a lock says about who holds it: the name its exclusive
/// holder wrote, or, when there is none yet (held shared by another launch's chunk workers, or
/// taken a moment ago), a description of that.
pub fn holder_text(path: &Path) -> String {
    let who = std::fs::read_to_string(path).unwrap_or_default();
    match who.trim() {
        "" => "another launch (held shared by its chunk workers, or just taken)".to_string(),
        name => name.to_string(),
    }
}

impl Lock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The folder of a workspace's lock files.
pub fn locks_dir(workspace: &Path) -> PathBuf {
    workspace.join(".spyral").join("locks")
}

/// The lock of (run, phase).
pub fn run_lock_path(workspace: &Path, phase: &str, run: u32) -> PathBuf {
    locks_dir(workspace)
        .join(phase)
        .join(format!("{}.lock", run_stem(run)))
}

/// The lock of one event chunk of (run, phase); chunk workers also hold the run's lock shared.
pub fn chunk_lock_path(workspace: &Path, phase: &str, run: u32, first: u64, last: u64) -> PathBuf {
    locks_dir(workspace)
        .join(phase)
        .join(format!("{}.e{first}-{last}.lock", run_stem(run)))
}

/// The marker a launch's parent holds while it processes `run` in event chunks (a folder name
/// starting with `.` is never a phase's: such names are refused).
pub fn split_run_path(workspace: &Path, run: u32) -> PathBuf {
    locks_dir(workspace)
        .join(".split")
        .join(format!("{}.lock", run_stem(run)))
}

/// The lock of a phase's assets.
pub fn assets_lock_path(workspace: &Path, phase: &str) -> PathBuf {
    locks_dir(workspace).join(phase).join("assets.lock")
}

fn open(path: &Path) -> Result<std::fs::File, LockError> {
    let err = |source| LockError {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(err)
}

fn stamp(file: &mut std::fs::File, holder: &str) {
    let _ = file.set_len(0);
    let _ = file.write_all(format!("{holder}\n").as_bytes());
}

/// Takes the exclusive lock at `path` if it is free; `Ok(None)` when another process holds it.
/// `holder` (e.g. "pid 123 launch 2026-...") is written into the file for people and `status`.
pub fn try_lock(path: &Path, holder: &str) -> Result<Option<Lock>, LockError> {
    let mut file = open(path)?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            stamp(&mut file, holder);
            Ok(Some(Lock {
                file,
                path: path.to_path_buf(),
                stamped: true,
            }))
        }
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(LockError {
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

/// Tries `attempt` (a `try_lock...`) again for a few tens of milliseconds while the lock is busy:
/// `spyral status` holds a run's lock shared for an instant to see whether a launch is on it,
/// and a unit must not take that probe for another launch. A launch holds its locks for as
/// long as its units run, so a lock still busy after the last try is really held.
pub fn insist<T>(
    mut attempt: impl FnMut() -> Result<Option<T>, LockError>,
) -> Result<Option<T>, LockError> {
    for wait_ms in [1, 4, 10, 25] {
        if let Some(lock) = attempt()? {
            return Ok(Some(lock));
        }
        std::thread::sleep(std::time::Duration::from_millis(wait_ms));
    }
    attempt()
}

/// Takes the lock at `path` shared (several holders; none while someone holds it exclusively),
/// if it can be had now. Chunk workers hold their run's lock this way, so a launch processing
/// the whole run (exclusive) and launches processing chunks exclude each other.
pub fn try_lock_shared(path: &Path) -> Result<Option<Lock>, LockError> {
    let file = open(path)?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => Ok(Some(Lock {
            file,
            path: path.to_path_buf(),
            stamped: false,
        })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(LockError {
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

/// Takes the exclusive lock at `path`, waiting for its holder; `waiting` is called once if the
/// lock is held when asked, with what the holder wrote into the file.
pub fn lock(path: &Path, holder: &str, waiting: impl FnOnce(&str)) -> Result<Lock, LockError> {
    if let Some(l) = try_lock(path, holder)? {
        return Ok(l);
    }
    waiting(&holder_text(path));
    let mut file = open(path)?;
    loop {
        match rustix::fs::flock(&file, FlockOperation::LockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(LockError {
                    path: path.to_path_buf(),
                    source: e.into(),
                })
            }
        }
    }
    stamp(&mut file, holder);
    Ok(Lock {
        file,
        path: path.to_path_buf(),
        stamped: true,
    })
}

/// Who holds the lock at `path` right now (what they wrote into it), or None when it is free
/// or does not exist. Takes nothing.
pub fn holder(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => None,
        Err(_) => Some(holder_text(path)),
    }
}

/// The run a temporary file belongs to: `.run_0005.h5.partial`, `.run_0005_p.parquet.partial`
/// and `.run_0005.json.partial` all give 5.
pub fn partial_run(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(".run_")?;
    if !name.ends_with(".partial") {
        return None;
    }
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    digits.parse().ok()
}

/// Removes the temporary files of `run` in `dir` and its `.provenance` folder. The caller must
/// hold the run's lock for the phase that owns `dir`. Returns how many were removed.
pub fn remove_run_partials(dir: &Path, run: u32) -> usize {
    let mut n = 0;
    for d in [dir.to_path_buf(), dir.join(".provenance")] {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if partial_run(&name) == Some(run) && std::fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// Removes the temporary files of one chunk (`events`: `(first, last)`), or of every chunk
/// (None), in a run's chunk folder and its `.provenance`; the caller holds the matching lock.
pub fn remove_chunk_partials(chunk_dir: &Path, events: Option<(u64, u64)>) -> usize {
    let prefix = events.map(|(a, b)| format!(".e{a}-{b}."));
    let mut n = 0;
    for d in [chunk_dir.to_path_buf(), chunk_dir.join(".provenance")] {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = prefix.as_ref().is_none_or(|p| name.starts_with(p.as_str()));
            if name.starts_with('.')
                && name.ends_with(".partial")
                && ours
                && std::fs::remove_file(e.path()).is_ok()
            {
                n += 1;
            }
        }
    }
    n
}

/// Removes the temporary files in phase folder `dir` whose owner is dead (their run's lock is
/// free), taking each lock for the time of the removal. Files of runs that a live launch is
/// processing are left alone. Returns how many were removed.
pub fn sweep_dead_partials(workspace: &Path, phase: &str, dir: &Path, holder: &str) -> usize {
    let mut runs: Vec<u32> = Vec::new();
    for d in [dir.to_path_buf(), dir.join(".provenance")] {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if let Some(r) = partial_run(&e.file_name().to_string_lossy()) {
                runs.push(r);
            }
        }
    }
    runs.sort_unstable();
    runs.dedup();
    // Chunk folders: `.chunks/run_NNNN/`.
    let mut chunked: Vec<(u32, PathBuf)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir.join(".chunks")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(run) = name
                .strip_prefix("run_")
                .and_then(|d| d.parse::<u32>().ok())
            {
                chunked.push((run, e.path()));
            }
        }
    }
    let mut n = 0;
    for run in runs {
        if let Ok(Some(_lock)) = try_lock(&run_lock_path(workspace, phase, run), holder) {
            n += remove_run_partials(dir, run);
        }
    }
    for (run, chunk_dir) in chunked {
        // Nobody holds the run (not even shared, as chunk workers do): its chunk files'
        // temporary files are orphans.
        if let Ok(Some(_lock)) = try_lock(&run_lock_path(workspace, phase, run), holder) {
            n += remove_chunk_partials(&chunk_dir, None);
        }
    }
    n
}

/// Removes the temporary files in a phase's asset folder; the caller holds its asset lock.
pub fn remove_asset_partials(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| spyral_core::workspace::is_partial_path(&e.path()))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_names_map_to_runs() {
        assert_eq!(partial_run(".run_0005.h5.partial"), Some(5));
        assert_eq!(
            partial_run(".run_12345_deuteron.parquet.partial"),
            Some(12345)
        );
        assert_eq!(partial_run(".run_0005.h5"), None);
        assert_eq!(partial_run("run_0005.h5.partial"), None);
        assert_eq!(partial_run(".run_x.partial"), None);
    }

    #[test]
    fn locks_exclude_other_holders_and_release_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = run_lock_path(dir.path(), "P", 3);
        let a = try_lock(&p, "pid 1").unwrap().expect("free lock");
        // flock locks belong to the open file: a second open, even in this process, is refused.
        assert!(try_lock(&p, "pid 2").unwrap().is_none());
        assert_eq!(holder(&p).as_deref(), Some("pid 1"));
        drop(a);
        assert_eq!(holder(&p), None);
        // The released lock names nobody: a later refusal never names a former holder.
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
        assert!(try_lock(&p, "pid 2").unwrap().is_some());
    }

    #[test]
    fn a_unit_insists_past_a_momentary_probe_but_not_past_a_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = run_lock_path(dir.path(), "P", 4);
        // A probe (as `spyral status` takes) that lets go right after the first attempt.
        let mut probe = Some(try_lock_shared(&p).unwrap().expect("free"));
        let mut attempts = 0;
        let got = insist(|| {
            attempts += 1;
            let r = try_lock(&p, "unit");
            probe = None;
            r
        })
        .unwrap();
        assert!(
            got.is_some(),
            "a momentary probe was taken for another launch"
        );
        assert_eq!(attempts, 2);
        drop(got);
        // A holder that stays: still refused.
        let _held = try_lock(&p, "other launch").unwrap().expect("free");
        assert!(insist(|| try_lock_shared(&p)).unwrap().is_none());
    }

    #[test]
    fn shared_and_exclusive_run_locks_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let p = run_lock_path(dir.path(), "P", 1);
        let a = try_lock_shared(&p).unwrap().expect("free");
        let b = try_lock_shared(&p).unwrap().expect("shared twice");
        assert!(try_lock(&p, "x").unwrap().is_none());
        assert!(
            holder_text(&p).contains("held shared"),
            "{}",
            holder_text(&p)
        );
        drop((a, b));
        let x = try_lock(&p, "x").unwrap().expect("free again");
        assert!(try_lock_shared(&p).unwrap().is_none());
        drop(x);
    }

    #[test]
    fn chunk_partials_are_removed_by_range_or_all() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("P/.chunks/run_0002");
        std::fs::create_dir_all(c.join(".provenance")).unwrap();
        for name in [".e0-9.h5.partial", ".e10-19.h5.partial", "e0-9.h5"] {
            std::fs::write(c.join(name), b"x").unwrap();
        }
        std::fs::write(c.join(".provenance/.e0-9.json.partial"), b"x").unwrap();
        assert_eq!(remove_chunk_partials(&c, Some((0, 9))), 2);
        assert!(c.join(".e10-19.h5.partial").exists());
        assert_eq!(
            sweep_dead_partials(dir.path(), "P", &dir.path().join("P"), "me"),
            1
        );
        assert!(c.join("e0-9.h5").exists());
    }

    #[test]
    fn sweep_removes_only_partials_of_free_runs() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path();
        let phase_dir = ws.join("P");
        std::fs::create_dir_all(phase_dir.join(".provenance")).unwrap();
        for name in [
            ".run_0001.h5.partial",
            ".run_0002.h5.partial",
            ".run_00020.h5.partial",
            "run_0001.h5",
        ] {
            std::fs::write(phase_dir.join(name), b"x").unwrap();
        }
        std::fs::write(phase_dir.join(".provenance/.run_0001.json.partial"), b"x").unwrap();
        let live = try_lock(&run_lock_path(ws, "P", 2), "live")
            .unwrap()
            .unwrap();
        assert_eq!(sweep_dead_partials(ws, "P", &phase_dir, "sweeper"), 3);
        assert!(phase_dir.join(".run_0002.h5.partial").exists());
        assert!(!phase_dir.join(".run_00020.h5.partial").exists());
        assert!(phase_dir.join("run_0001.h5").exists());
        drop(live);
        assert_eq!(sweep_dead_partials(ws, "P", &phase_dir, "sweeper"), 1);
    }
}
