//! Test phases for spyral's end-to-end tests and benchmarks.
//!
//! - `noop`: passes its input through; measures framework overhead.
//! - `stamp`: writes `run_NNNN.bin`, bytes derived from the run's seed and its input's size
//!   (determinism tests: the output must not depend on worker, worker count or schedule);
//!   optionally sleeps per run and builds a slow asset (tests of overlapping launches).
//! - `fail`: misbehaves on chosen runs (error, panic, segfault, abort, exit) or in a chosen
//!   method; otherwise behaves like `stamp`.
//! - `burn`: CPU work proportional to the input's size (scaling and balance benchmarks).
//! - `lines`: one line per event, splittable into event chunks and merged by concatenation
//!   (tests of event-level parallelism).
//! - `segment`: allocates a shared segment with a deterministic pattern in the parent and
//!   verifies its checksum in every run; can be told to write into it (must be killed).

use serde::{Deserialize, Serialize};
use spyral_core::prelude::*;
use spyral_core::seed::mix64;

fn input_of(payload: &PhaseResult) -> Result<std::path::PathBuf, PhaseError> {
    let name = payload
        .artifacts
        .first()
        .map(|a| a.name.to_string())
        .ok_or_else(|| PhaseError::invalid_input("no input artifact"))?;
    payload.require(&name)
}

fn stamp(
    ctx: &RunContext<'_>,
    payload: &PhaseResult,
    bytes: usize,
    ignore_input: bool,
) -> Result<PhaseResult, PhaseError> {
    let input = input_of(payload)?;
    let size = std::fs::metadata(&input)
        .map_err(|e| PhaseError::io_at(&input, "cannot stat", &e))?
        .len();
    let size = if ignore_input { 0 } else { size };
    let mut out = Vec::with_capacity(bytes + 16);
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&u64::from(ctx.run()).to_le_bytes());
    let mut x = ctx.seed();
    while out.len() < bytes + 16 {
        x = mix64(x);
        out.extend_from_slice(&x.to_le_bytes());
    }
    let dest = ctx.workspace().artifact_path(ctx.run(), "bin");
    let f = PartialFile::new(&dest)?;
    std::fs::write(f.path(), &out).map_err(|e| PhaseError::io_at(f.path(), "cannot write", &e))?;
    let dest = f.commit()?;
    ctx.progress(1, 1);
    Ok(PhaseResult::new(ctx.run()).with_artifact("stamp", dest))
}

/// No-op config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoopConfig {}

/// Passes the input through.
pub struct Noop;
impl PhaseFactory for Noop {
    type Config = NoopConfig;
    fn from_config(_: &str, _: NoopConfig) -> Result<Self, PhaseError> {
        Ok(Noop)
    }
}
impl Phase for Noop {
    fn construct_artifact(
        &self,
        p: &PhaseResult,
        _: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        Ok(p.clone())
    }
    fn run(&self, p: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        ctx.progress(1, 1);
        Ok(p.clone())
    }
}

/// Stamp config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StampConfig {
    /// Payload bytes to write.
    pub bytes: usize,
    /// Leave the input's size out of the bytes: the output is the same whatever the input
    /// (a phase between two others whose result does not depend on what it reads).
    pub ignore_input: bool,
    /// Sleep this many milliseconds in every run, honouring cancellation (launch-overlap tests).
    pub sleep_ms: u64,
    /// Build an asset in `create_assets` that takes this many milliseconds (None: no asset).
    /// The asset (`stamp-asset.bin`) is reused when present; every actual build appends a line
    /// to `builds.log` in the asset folder, so tests can count builds.
    pub asset_ms: Option<u64>,
}
impl Default for StampConfig {
    fn default() -> Self {
        StampConfig {
            bytes: 4096,
            ignore_input: false,
            sleep_ms: 0,
            asset_ms: None,
        }
    }
}

fn sleep_cancellable(ctx: &RunContext<'_>, ms: u64) -> Result<(), PhaseError> {
    let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    while std::time::Instant::now() < end {
        if ctx.cancelled() {
            return Err(PhaseError::cancelled());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(())
}

/// Writes seed-derived bytes.
pub struct Stamp(StampConfig);
impl PhaseFactory for Stamp {
    type Config = StampConfig;
    fn from_config(_: &str, c: StampConfig) -> Result<Self, PhaseError> {
        Ok(Stamp(c))
    }
}
fn stamp_schema() -> ResultSchema {
    ResultSchema::new().with("stamp", ".bin", serde_json::json!({"bytes": "u8"}))
}
impl Phase for Stamp {
    fn outgoing_schema(&self) -> Option<ResultSchema> {
        Some(stamp_schema())
    }
    fn construct_artifact(
        &self,
        p: &PhaseResult,
        ws: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        Ok(PhaseResult::new(p.run_number)
            .with_artifact("stamp", ws.artifact_path(p.run_number, "bin")))
    }
    fn create_assets(&mut self, ws: &Workspace) -> Result<(), PhaseError> {
        let Some(ms) = self.0.asset_ms else {
            return Ok(());
        };
        let dest = ws.asset_dir().join("stamp-asset.bin");
        if dest.exists() {
            return Ok(());
        }
        let f = PartialFile::new(&dest)?;
        std::fs::write(f.path(), b"asset").map_err(|e| PhaseError::io_at(f.path(), "write", &e))?;
        std::thread::sleep(std::time::Duration::from_millis(ms));
        f.commit()?;
        let log = ws.asset_dir().join("builds.log");
        let mut text = std::fs::read_to_string(&log).unwrap_or_default();
        text.push_str(&format!("built by pid {}\n", std::process::id()));
        std::fs::write(&log, text).map_err(|e| PhaseError::io_at(&log, "write", &e))?;
        Ok(())
    }
    fn run(&self, p: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        sleep_cancellable(ctx, self.0.sleep_ms)?;
        stamp(ctx, p, self.0.bytes, self.0.ignore_input)
    }
}

/// How `fail` misbehaves.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Return an error.
    #[default]
    Error,
    /// Panic.
    Panic,
    /// Dereference null (SIGSEGV).
    Segfault,
    /// `std::process::abort` (SIGABRT).
    Abort,
    /// `std::process::exit(7)`.
    Exit,
    /// Sleep (for interrupt tests).
    Hang,
}

/// Fail config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailConfig {
    /// Runs on which `run` misbehaves.
    pub runs: Vec<u32>,
    /// How.
    pub mode: Mode,
    /// Misbehave in this method instead: `new`, `incoming_schema`, `outgoing_schema`,
    /// `create_assets`, `create_shared_data`.
    pub method: Option<String>,
    /// Wanted incoming schema artifact name (to provoke schema mismatches).
    pub expects: Option<String>,
    /// Sleep this many milliseconds in every run (interrupt tests).
    pub sleep_ms: u64,
    /// Fail the chosen runs only while this file exists (retry tests).
    pub while_exists: Option<std::path::PathBuf>,
}

fn misbehave(mode: Mode, what: &str) -> PhaseError {
    if matches!(mode, Mode::Segfault | Mode::Abort | Mode::Exit) {
        // What a crash report should show: the last lines the plugin wrote to stderr.
        eprintln!("testkit: about to crash ({mode:?}) in {what}");
    }
    match mode {
        Mode::Error => PhaseError::invalid_input(format!("deliberate failure in {what}")),
        Mode::Panic => panic!("deliberate panic in {what}"),
        Mode::Segfault => {
            // SAFETY: none; this deliberately writes through a null pointer to test that a
            // segfaulting plugin is contained by process isolation.
            #[allow(unsafe_code)]
            unsafe {
                std::ptr::null_mut::<u64>().write_volatile(1)
            };
            PhaseError::internal("survived a null write?")
        }
        Mode::Abort => std::process::abort(),
        Mode::Exit => std::process::exit(7),
        Mode::Hang => {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            PhaseError::internal("woke up")
        }
    }
}

/// Misbehaves on command.
pub struct Fail(FailConfig);
impl PhaseFactory for Fail {
    type Config = FailConfig;
    fn from_config(_: &str, c: FailConfig) -> Result<Self, PhaseError> {
        if c.method.as_deref() == Some("new") {
            return Err(misbehave(c.mode, "new"));
        }
        Ok(Fail(c))
    }
}
impl Phase for Fail {
    fn incoming_schema(&self) -> Option<ResultSchema> {
        if self.0.method.as_deref() == Some("incoming_schema") {
            let _ = misbehave(self.0.mode, "incoming_schema");
        }
        self.0
            .expects
            .as_ref()
            .map(|n| ResultSchema::new().with(n, ".h5", serde_json::json!({"x": "array"})))
    }
    fn outgoing_schema(&self) -> Option<ResultSchema> {
        if self.0.method.as_deref() == Some("outgoing_schema") {
            let _ = misbehave(self.0.mode, "outgoing_schema");
        }
        Some(stamp_schema())
    }
    fn create_assets(&mut self, _: &Workspace) -> Result<(), PhaseError> {
        if self.0.method.as_deref() == Some("create_assets") {
            return Err(misbehave(self.0.mode, "create_assets"));
        }
        Ok(())
    }
    fn create_shared_data(
        &mut self,
        _: &Workspace,
        _: &mut SharedAllocator<'_, '_>,
    ) -> Result<(), PhaseError> {
        if self.0.method.as_deref() == Some("create_shared_data") {
            return Err(misbehave(self.0.mode, "create_shared_data"));
        }
        Ok(())
    }
    fn construct_artifact(
        &self,
        p: &PhaseResult,
        ws: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        Ok(PhaseResult::new(p.run_number)
            .with_artifact("stamp", ws.artifact_path(p.run_number, "bin")))
    }
    fn run(&self, p: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        sleep_cancellable(ctx, self.0.sleep_ms)?;
        let armed = self.0.while_exists.as_ref().is_none_or(|f| f.exists());
        if self.0.method.is_none() && armed && self.0.runs.contains(&ctx.run()) {
            return Err(misbehave(self.0.mode, &format!("run {}", ctx.run())));
        }
        stamp(ctx, p, 1024, false)
    }
}

/// Burn config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BurnConfig {
    /// Mixing rounds per KiB of input.
    pub rounds_per_kib: u64,
}
impl Default for BurnConfig {
    fn default() -> Self {
        BurnConfig {
            rounds_per_kib: 1000,
        }
    }
}

/// CPU work proportional to the input's size.
pub struct Burn(BurnConfig);
impl PhaseFactory for Burn {
    type Config = BurnConfig;
    fn from_config(_: &str, c: BurnConfig) -> Result<Self, PhaseError> {
        Ok(Burn(c))
    }
}
impl Phase for Burn {
    fn construct_artifact(
        &self,
        p: &PhaseResult,
        _: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        Ok(p.clone())
    }
    fn run(&self, p: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        let input = input_of(p)?;
        let kib = std::fs::metadata(&input)
            .map_err(|e| PhaseError::io_at(&input, "cannot stat", &e))?
            .len()
            / 1024;
        let total = kib * self.0.rounds_per_kib;
        let mut x = ctx.seed();
        let mut progress = Progress::new(ctx, 100);
        let step = (total / 100).max(1);
        for i in 0..total {
            x = mix64(x ^ i);
            if (i + 1) % step == 0 && progress.done() < 100 {
                progress.tick();
            }
        }
        let mut r = p.clone();
        r.set_metadata("burn", format!("{x:016x}"));
        Ok(r)
    }
}

/// Segment config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentConfig {
    /// Segment size in MiB.
    pub mib: u64,
    /// Write into the segment in the worker on these runs (must be killed by SIGSEGV).
    pub write_on_runs: Vec<u32>,
    /// Hold the worker this long after checking (for memory measurements).
    pub hold_ms: u64,
    /// Fill the segment from this file (streamed, no second copy) instead of computing the
    /// pattern; the file must hold the pattern (see [`pattern`]) as native-endian u64 words.
    pub from_file: Option<std::path::PathBuf>,
    /// With `from_file`: share the file itself (mapped from the page cache in every worker)
    /// instead of copying it into a segment.
    pub share_file: bool,
}
impl Default for SegmentConfig {
    fn default() -> Self {
        SegmentConfig {
            mib: 16,
            write_on_runs: Vec::new(),
            hold_ms: 0,
            from_file: None,
            share_file: false,
        }
    }
}

/// The value of word `i` of the pattern.
pub fn pattern(i: u64) -> u64 {
    mix64(i ^ 0x5eed)
}

/// Shared-segment checksum phase.
pub struct Segment {
    config: SegmentConfig,
    data: Option<&'static [u64]>,
}
impl PhaseFactory for Segment {
    type Config = SegmentConfig;
    fn from_config(_: &str, config: SegmentConfig) -> Result<Self, PhaseError> {
        Ok(Segment { config, data: None })
    }
}
impl Phase for Segment {
    fn create_shared_data(
        &mut self,
        _: &Workspace,
        alloc: &mut SharedAllocator<'_, '_>,
    ) -> Result<(), PhaseError> {
        if let Some(path) = &self.config.from_file {
            let len = std::fs::metadata(path)
                .map_err(|e| PhaseError::io_at(path, "cannot stat", &e))?
                .len();
            if self.config.share_file {
                return alloc.share_file("pattern", ElementType::U64, &[len / 8], path, 0);
            }
            let mut f = std::fs::File::open(path)
                .map_err(|e| PhaseError::io_at(path, "cannot open", &e))?;
            alloc.allocate_from_reader("pattern", ElementType::U64, &[len / 8], &mut f)?;
            return Ok(());
        }
        let words = self.config.mib * (1 << 20) / 8;
        let buf = alloc.allocate("pattern", ElementType::U64, &[words])?;
        for (i, chunk) in buf.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&pattern(i as u64).to_ne_bytes());
        }
        Ok(())
    }
    fn attach_shared(&mut self, segments: Vec<SharedSegment<'static>>) -> Result<(), PhaseError> {
        let seg = segments
            .iter()
            .find(|s| s.info.name.as_str() == "pattern")
            .ok_or_else(|| PhaseError::invalid_input("no `pattern` segment"))?;
        self.data = Some(seg.as_slice::<u64>()?);
        Ok(())
    }
    fn construct_artifact(
        &self,
        p: &PhaseResult,
        _: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        Ok(p.clone())
    }
    fn run(&self, p: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        let data = self
            .data
            .ok_or_else(|| PhaseError::internal("segment not attached"))?;
        if self.config.write_on_runs.contains(&ctx.run()) {
            // SAFETY: none; this deliberately writes into a sealed read-only mapping to check
            // that the kernel stops it (the worker must die with SIGSEGV).
            #[allow(unsafe_code)]
            unsafe {
                (data.as_ptr() as *mut u64).write_volatile(0)
            };
        }
        let bad = data
            .iter()
            .enumerate()
            .filter(|(i, &w)| w != pattern(*i as u64))
            .count();
        if bad > 0 {
            return Err(PhaseError::invalid_input(format!(
                "{bad} words of the segment differ"
            )));
        }
        let end = std::time::Instant::now() + std::time::Duration::from_millis(self.config.hold_ms);
        while std::time::Instant::now() < end {
            if ctx.cancelled() {
                return Err(PhaseError::cancelled());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        ctx.progress(1, 1);
        let mut r = p.clone();
        r.set_metadata("segment_words", data.len() as u64);
        Ok(r)
    }
}

/// Lines config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinesConfig {
    /// Bytes of the raw trace that make one "event" (events are 0, 1, ... in file order).
    pub event_bytes: u64,
    /// Sleep this many milliseconds per event (speed-up and interruption tests).
    pub sleep_ms_per_event: u64,
    /// Fail when processing this event.
    pub fail_on_event: Option<u64>,
}
impl Default for LinesConfig {
    fn default() -> Self {
        LinesConfig {
            event_bytes: 100,
            sleep_ms_per_event: 0,
            fail_on_event: None,
        }
    }
}

/// A splittable phase: one text line per event, derived from the event's input and its event
/// seed. As the first phase it reads the raw trace as `event_bytes`-byte events; after another
/// `lines` phase it reads that phase's lines. Chunked runs merge by concatenation, so a split
/// run must give the same bytes as a whole one (the host's chunking tests).
pub struct Lines(LinesConfig);
impl PhaseFactory for Lines {
    type Config = LinesConfig;
    fn from_config(_: &str, c: LinesConfig) -> Result<Self, PhaseError> {
        if c.event_bytes == 0 {
            return Err(PhaseError::config("event_bytes must be at least 1"));
        }
        Ok(Lines(c))
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Lines {
    /// The input's events: `(id, bytes)`.
    fn input_events(&self, p: &PhaseResult) -> Result<Vec<(u64, Vec<u8>)>, PhaseError> {
        let path = input_of(p)?;
        let bytes =
            std::fs::read(&path).map_err(|e| PhaseError::io_at(&path, "cannot read", &e))?;
        if p.artifacts
            .first()
            .is_some_and(|a| a.name.as_str() == "trace")
        {
            return Ok(bytes
                .chunks(self.0.event_bytes as usize)
                .enumerate()
                .map(|(i, c)| (i as u64, c.to_vec()))
                .collect());
        }
        let text = String::from_utf8_lossy(&bytes);
        text.lines()
            .map(|l| {
                let id = l
                    .split_whitespace()
                    .next()
                    .and_then(|t| t.parse::<u64>().ok())
                    .ok_or_else(|| PhaseError::invalid_input(format!("bad line `{l}`")))?;
                Ok((id, l.as_bytes().to_vec()))
            })
            .collect()
    }
}

impl Phase for Lines {
    fn outgoing_schema(&self) -> Option<ResultSchema> {
        Some(ResultSchema::new().with("lines", ".txt", serde_json::json!({"line": "text"})))
    }
    fn splittable(&self) -> bool {
        true
    }
    fn events(&self, p: &PhaseResult, _: &Workspace) -> Result<Option<EventRange>, PhaseError> {
        let n = self.input_events(p)?.len() as u64;
        Ok((n > 0).then(|| EventRange::new(0, n - 1)))
    }
    fn construct_artifact(
        &self,
        p: &PhaseResult,
        ws: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        Ok(PhaseResult::new(p.run_number)
            .with_artifact("lines", ws.artifact_path(p.run_number, "txt")))
    }
    fn run(&self, p: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        let events: Vec<(u64, Vec<u8>)> = self
            .input_events(p)?
            .into_iter()
            .filter(|(id, _)| ctx.wants_event(*id))
            .collect();
        let mut progress = Progress::new(ctx, events.len() as u64);
        let mut out = String::new();
        for (id, bytes) in &events {
            if ctx.cancelled() {
                return Err(PhaseError::cancelled());
            }
            if self.0.fail_on_event == Some(*id) {
                return Err(PhaseError::invalid_input(format!(
                    "deliberate failure at event {id}"
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(self.0.sleep_ms_per_event));
            out.push_str(&format!(
                "{id} {:016x}\n",
                mix64(ctx.event_seed(*id) ^ fnv(bytes))
            ));
            progress.tick();
        }
        let f = PartialFile::new(ctx.artifact_path("txt"))?;
        std::fs::write(f.path(), &out)
            .map_err(|e| PhaseError::io_at(f.path(), "cannot write", &e))?;
        let dest = f.commit()?;
        let mut r = PhaseResult::new(ctx.run()).with_artifact("lines", dest);
        r.set_metadata("events", events.len() as u64);
        Ok(r)
    }
    fn merge(
        &self,
        parts: &[PhaseResult],
        ctx: &RunContext<'_>,
    ) -> Result<PhaseResult, PhaseError> {
        let mut out = Vec::new();
        let mut events = 0u64;
        for part in parts {
            let path = part.require("lines")?;
            let bytes =
                std::fs::read(&path).map_err(|e| PhaseError::io_at(&path, "cannot read", &e))?;
            events += bytes.iter().filter(|b| **b == b'\n').count() as u64;
            out.extend_from_slice(&bytes);
        }
        let f = PartialFile::new(ctx.artifact_path("txt"))?;
        std::fs::write(f.path(), &out)
            .map_err(|e| PhaseError::io_at(f.path(), "cannot write", &e))?;
        let dest = f.commit()?;
        let mut r = PhaseResult::new(ctx.run()).with_artifact("lines", dest);
        r.set_metadata("events", events);
        Ok(r)
    }
}

spyral_core::export_plugin! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    kinds: [
        spyral_core::kind::<Noop>("noop", "Noop", "Passes its input through (framework overhead)"),
        spyral_core::kind::<Stamp>("stamp", "Stamp", "Writes seed-derived bytes per run (determinism)"),
        spyral_core::kind::<Fail>("fail", "Fail", "Misbehaves on chosen runs or methods"),
        spyral_core::kind::<Burn>("burn", "Burn", "CPU work proportional to the input size"),
        spyral_core::kind::<Segment>("segment", "Segment", "Shared segment with a checksum verified per run"),
        spyral_core::kind::<Lines>("lines", "Lines", "One line per event; splittable into event chunks and merged"),
        spyral_core::kind::<Noop>("log-named", "log", "A no-op whose default phase name is a reserved folder name (refused unless named)"),
    ],
}
