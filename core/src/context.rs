//! The run context: everything a phase gets from the host while it processes one run.
//!
//! Run number, workspace, the deterministic per-(run, phase) seed, and a sink through which the
//! phase reports progress, writes log lines and learns that it should stop. The sink is a
//! `#[sabi_trait]` object implemented by the host.

use crate::chunk::{Chunk, EventRange};
use crate::workspace::Workspace;
use abi_stable::{
    sabi_trait,
    sabi_trait::TD_Opaque,
    sabi_types::RRef,
    std_types::{RNone, ROption, RSome, RStr, RString, RVec},
    StableAbi,
};
use std::path::PathBuf;

/// Log levels, in increasing verbosity.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Something failed.
    Error = 1,
    /// Something looks wrong but processing goes on.
    Warn = 2,
    /// Normal progress information.
    Info = 3,
    /// Details for developers.
    Debug = 4,
    /// Very fine details.
    Trace = 5,
}

impl LogLevel {
    /// The matching `tracing` level.
    pub fn to_tracing(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
    /// The matching level of a `tracing` level.
    pub fn from_tracing(level: &tracing::Level) -> Self {
        match *level {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            _ => LogLevel::Trace,
        }
    }
}

/// The host side of a run: progress, log lines and cancellation.
#[sabi_trait]
pub trait RunSink: Sync {
    /// `done` of `total` work items of the current phase are finished.
    fn progress(&self, done: u64, total: u64);
    /// A log line for the worker's log file.
    fn log(&self, level: LogLevel, message: RStr<'_>);
    /// Whether the host asked the phase to stop as soon as it can.
    #[sabi(last_prefix_field)]
    fn cancelled(&self) -> bool;
    /// The names of the phases before this one in the chain, in chain order (a phase's
    /// artifacts are in `<workspace root>/<name>`). Appended after the prefix, so plugins and
    /// hosts built before it still load: a host without it reports no earlier phase.
    fn earlier_phases(&self) -> RVec<RString> {
        RVec::new()
    }
}

/// A borrowed run sink.
pub type RunSinkRef<'a> = RunSink_TO<'a, RRef<'a, ()>>;

/// What a phase gets for one run.
#[repr(C)]
#[derive(StableAbi)]
pub struct RunContext<'a> {
    run: u32,
    seed: u64,
    workspace: &'a Workspace,
    sink: RunSinkRef<'a>,
    chunk: ROption<Chunk>,
}

impl<'a> RunContext<'a> {
    /// Built by the host (or by a test) for one (run, phase).
    pub fn new<S: RunSink + Sync + 'a>(
        run: u32,
        seed: u64,
        workspace: &'a Workspace,
        sink: &'a S,
    ) -> Self {
        RunContext {
            run,
            seed,
            workspace,
            sink: RunSink_TO::from_ptr(RRef::new(sink), TD_Opaque),
            chunk: RNone,
        }
    }
    /// The same context for one chunk of the run (a splittable phase processes only its
    /// events and writes at chunk paths).
    pub fn with_chunk(mut self, chunk: Chunk) -> Self {
        self.chunk = RSome(chunk);
        self
    }
    /// The chunk of the run this call processes, or None for the whole run.
    pub fn chunk(&self) -> Option<Chunk> {
        self.chunk.into_option()
    }
    /// Whether `event` is processed by this call (always, for a whole run).
    pub fn wants_event(&self, event: u64) -> bool {
        self.chunk().is_none_or(|c| c.events.contains(event))
    }
    /// Where this call writes its artifact with extension `ext`: the run's artifact path
    /// (`<Phase>/run_0001.h5`), or the chunk's (`<Phase>/.chunks/run_0001/e0-99.h5`).
    pub fn artifact_path(&self, ext: &str) -> PathBuf {
        match self.chunk() {
            None => self.workspace.artifact_path(self.run, ext),
            Some(c) => crate::chunk::chunk_artifact_path(
                &self.workspace.artifact_dir(),
                self.run,
                c.events,
                ext,
            ),
        }
    }
    /// The seed of `event` in this (run, phase): randomness drawn per event does not depend on
    /// how the run was split into chunks.
    pub fn event_seed(&self, event: u64) -> u64 {
        crate::seed::mix64(self.seed ^ crate::seed::mix64(event.wrapping_add(0x5eed)))
    }
    /// The events of this call's chunk, or None for the whole run.
    pub fn events(&self) -> Option<EventRange> {
        self.chunk().map(|c| c.events)
    }
    /// The run number.
    pub fn run(&self) -> u32 {
        self.run
    }
    /// The seed for this (run, phase): the same whatever worker, worker count or schedule.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// The phase's workspace.
    pub fn workspace(&self) -> &Workspace {
        self.workspace
    }
    /// The names of the phases before this one in the chain, in chain order (empty when the
    /// host does not tell, e.g. in a test with a sink that does not implement it).
    pub fn earlier_phases(&self) -> Vec<String> {
        self.sink
            .earlier_phases()
            .into_iter()
            .map(String::from)
            .collect()
    }
    /// The artifact folder of the earlier phase `name` (`<workspace root>/<name>`), or None when
    /// no phase of that name comes before this one in the chain.
    pub fn phase_artifact_dir(&self, name: &str) -> Option<PathBuf> {
        self.earlier_phases()
            .iter()
            .any(|p| p == name)
            .then(|| self.workspace.phase_dir(name))
    }
    /// The artifact with extension `ext` that the earlier phase `name` wrote for this call:
    /// in a chunk, the chunk's file when it exists (the earlier phase processed the same
    /// chunk), else the run's (`<root>/<name>/run_0001.<ext>`). None when no phase of that
    /// name comes before this one.
    pub fn phase_artifact_path(&self, name: &str, ext: &str) -> Option<PathBuf> {
        let dir = self.phase_artifact_dir(name)?;
        let ext = ext.trim_start_matches('.');
        let run_path = dir.join(format!("{}.{ext}", crate::workspace::run_stem(self.run)));
        Some(match self.chunk() {
            Some(c) => {
                let p = crate::chunk::chunk_artifact_path(&dir, self.run, c.events, ext);
                if p.exists() {
                    p
                } else {
                    run_path
                }
            }
            None => run_path,
        })
    }
    /// Reports that `done` of `total` items are finished.
    pub fn progress(&self, done: u64, total: u64) {
        self.sink.progress(done, total);
    }
    /// Writes a line to the worker's log.
    pub fn log(&self, level: LogLevel, message: &str) {
        self.sink.log(level, message.into());
    }
    /// Whether the phase should stop as soon as it can (return `PhaseError::cancelled()`).
    pub fn cancelled(&self) -> bool {
        self.sink.cancelled()
    }
}

/// Sends progress at most about `steps` times over `total` items (every item when there are
/// fewer), so a phase can call [`Progress::tick`] per item without flooding the host.
#[derive(Debug)]
pub struct Progress<'c, 'a> {
    ctx: &'c RunContext<'a>,
    total: u64,
    done: u64,
    every: u64,
}

impl<'c, 'a> Progress<'c, 'a> {
    /// Starts counting `total` items and reports `0/total`.
    pub fn new(ctx: &'c RunContext<'a>, total: u64) -> Self {
        let every = (total / 200).max(1);
        ctx.progress(0, total);
        Progress {
            ctx,
            total,
            done: 0,
            every,
        }
    }
    /// One more item is done.
    pub fn tick(&mut self) {
        self.done += 1;
        if self.done % self.every == 0 || self.done == self.total {
            self.ctx.progress(self.done, self.total);
        }
    }
    /// Items done so far.
    pub fn done(&self) -> u64 {
        self.done
    }
}

impl std::fmt::Debug for RunContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("run", &self.run)
            .field("seed", &self.seed)
            .field("workspace", &self.workspace)
            .field("chunk", &self.chunk)
            .finish()
    }
}

/// A sink that discards everything; for tests and tools that run a phase outside the host.
#[derive(Debug, Default)]
pub struct NullSink;

impl RunSink for NullSink {
    fn progress(&self, _done: u64, _total: u64) {}
    fn log(&self, _level: LogLevel, _message: RStr<'_>) {}
    fn cancelled(&self) -> bool {
        false
    }
}

/// A sink that discards progress and logs and names the earlier phases of a chain: runs a phase
/// outside the host (tests, tools) with [`RunContext::phase_artifact_path`] working.
#[derive(Debug, Default)]
pub struct ChainSink {
    /// The phases before the one being run, in chain order.
    pub earlier: Vec<String>,
}

impl RunSink for ChainSink {
    fn progress(&self, _done: u64, _total: u64) {}
    fn log(&self, _level: LogLevel, _message: RStr<'_>) {}
    fn cancelled(&self) -> bool {
        false
    }
    fn earlier_phases(&self) -> RVec<RString> {
        self.earlier
            .iter()
            .map(|s| RString::from(s.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn earlier_phases_by_name() {
        let ws = Workspace::new(Path::new("/w"), Path::new("/t"), "Gate");
        let sink = ChainSink {
            earlier: vec!["Pointcloud".into(), "Cluster".into()],
        };
        let ctx = RunContext::new(7, 1, &ws, &sink);
        assert_eq!(ctx.earlier_phases(), ["Pointcloud", "Cluster"]);
        assert_eq!(
            ctx.phase_artifact_path("Pointcloud", ".h5"),
            Some(PathBuf::from("/w/Pointcloud/run_0007.h5"))
        );
        assert_eq!(
            ctx.phase_artifact_dir("Cluster"),
            Some(PathBuf::from("/w/Cluster"))
        );
        // Neither a later phase nor the phase itself nor an unknown name.
        assert_eq!(ctx.phase_artifact_path("Gate", "h5"), None);
        assert_eq!(ctx.phase_artifact_path("Estimation", "h5"), None);
        // A chunk whose earlier chunk file is missing falls back to the run's file.
        let chunked = RunContext::new(7, 1, &ws, &sink).with_chunk(Chunk {
            events: EventRange::new(0, 9),
            index: 0,
            count: 2,
        });
        assert_eq!(
            chunked.phase_artifact_path("Pointcloud", "h5"),
            Some(PathBuf::from("/w/Pointcloud/run_0007.h5"))
        );
    }

    #[test]
    fn in_a_chunk_the_earlier_phase_chunk_file_is_preferred() {
        let dir = std::env::temp_dir().join(format!("spyral-ctx-{}", std::process::id()));
        let ws = Workspace::new(&dir, Path::new("/t"), "Gate");
        let sink = ChainSink {
            earlier: vec!["Pointcloud".into()],
        };
        let events = EventRange::new(0, 9);
        let chunk_file =
            crate::chunk::chunk_artifact_path(&dir.join("Pointcloud"), 7, events, "h5");
        std::fs::create_dir_all(chunk_file.parent().unwrap()).unwrap();
        std::fs::write(&chunk_file, b"").unwrap();
        let ctx = RunContext::new(7, 1, &ws, &sink).with_chunk(Chunk {
            events,
            index: 0,
            count: 2,
        });
        let found = ctx.phase_artifact_path("Pointcloud", "h5");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found, Some(chunk_file));
    }

    #[test]
    fn a_sink_without_the_method_reports_no_earlier_phase() {
        let ws = Workspace::new(Path::new("/w"), Path::new("/t"), "Gate");
        let ctx = RunContext::new(1, 1, &ws, &NullSink);
        assert!(ctx.earlier_phases().is_empty());
        assert_eq!(ctx.phase_artifact_path("Pointcloud", "h5"), None);
    }
}
