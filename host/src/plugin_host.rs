//! The plugin host: a child process (`spyral plugin-host`, hidden) that runs every piece of
//! plugin code the parent needs, so a plugin that crashes, aborts or exits never takes the
//! parent down with it.
//!
//! The parent sends one request per line on the child's stdin and reads replies on a private
//! duplicate of its stdout (the child's fd 1 points at its stderr, so prints from plugins cannot
//! corrupt the stream); shared-segment file descriptors come back over a Unix socket
//! (`SCM_RIGHTS`). Requests: build and validate the chain (load libraries, construct phases,
//! resolved configs, schemas), create assets and shared data, compute the status table, and
//! list plugin libraries. Before every plugin call the child announces it (phase, kind, call),
//! so when it dies the parent reports `phase X (kind) crashed in create_assets: killed by
//! SIGSEGV (11)` with the tail of its stderr. The child's log lines are forwarded into the
//! parent's log.

use crate::chain::{self, ChainPhase, PhaseView};
use crate::identity::LibraryId;
use crate::pipeline::Pipeline;
use crate::plugins::{PluginError, Registry};
use crate::protocol::SegmentEntry;
use crate::segments::Segment;
use crate::status::Row;
use serde::{Deserialize, Serialize};
use spyral_core::shared::{ElementType, SegmentInfo};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

/// Sealed segments and the seconds each phase spent making them.
pub type Made = (Vec<Segment>, Vec<(String, f64)>);

/// Errors of the plugin host, as the parent sees them.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The request failed cleanly; the message is the child's error text.
    #[error("{0}")]
    Failed(String),
    /// The child died during a plugin call.
    #[error("{what} crashed: {how}; last stderr lines:\n    {tail}")]
    Crashed {
        /// What it was doing (`phase X (kind) in create_assets`, `loading plugin library L`).
        what: String,
        /// How it died.
        how: String,
        /// The tail of its stderr.
        tail: String,
    },
    /// The child could not be started or spoke nonsense.
    #[error("plugin host process: {0}")]
    Protocol(String),
}

/// A request to the plugin host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum HostRequest {
    /// Load the libraries and build and validate the chain of `pipeline`.
    Build {
        /// The parsed pipeline (the child never reads the file).
        pipeline: Box<Pipeline>,
        /// Log level for forwarded log lines.
        log_level: String,
    },
    /// `create_assets` (and, when `shared`, `create_shared_data`) of every active phase, each
    /// under its asset lock.
    Assets {
        /// What to write into lock files.
        holder: String,
        /// Also create shared segments.
        shared: bool,
    },
    /// The status table for `runs`.
    Status {
        /// Runs.
        runs: Vec<u32>,
    },
    /// The event ids the first phase would process for each of `runs` (to plan chunks).
    Events {
        /// Runs.
        runs: Vec<u32>,
    },
    /// Describe the libraries at `paths` (or, when empty, every library spyral would find).
    Plugins {
        /// Files or folders.
        paths: Vec<PathBuf>,
    },
}

/// A library as `spyral plugins` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LibraryView {
    /// Identity (name, version, path, code).
    pub id: LibraryId,
    /// Where it came from, for people.
    pub source: String,
    /// The spyral-core version it was built against.
    pub core_version: String,
    /// The rustc that built it.
    pub rustc_version: String,
    /// Its phase kinds.
    pub kinds: Vec<KindView>,
    /// Found by scanning a folder rather than named.
    #[serde(default)]
    pub scanned: bool,
}

/// A phase kind as `spyral plugins` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindView {
    /// Kind.
    pub kind: String,
    /// Default phase name.
    pub default_name: String,
    /// Description.
    pub description: String,
    /// Default configuration (JSON text).
    pub default_config: String,
    /// JSON Schema of the configuration (JSON text); None when the library does not describe
    /// it (a kind declared with `kind` rather than `kind_with_schema`, or a library built
    /// before spyral-core described configurations).
    #[serde(default)]
    pub config_schema: Option<String>,
}

/// A library that was found but refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refused {
    /// The library file.
    pub path: Option<PathBuf>,
    /// The short message.
    pub message: String,
    /// abi_stable's full layout report, when that was the reason.
    pub full_report: Option<String>,
}

/// A segment as the child describes it (its fd follows over the socket).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Owner phase.
    pub phase: String,
    /// Name.
    pub name: String,
    /// Element type name.
    pub element: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// Bytes.
    pub len: u64,
    /// For a file segment, where its bytes start in the file.
    #[serde(default)]
    pub file_offset: Option<u64>,
}

/// A reply from the plugin host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum HostReply {
    /// About to call plugin code.
    Calling {
        /// Phase name (empty while loading libraries).
        phase: String,
        /// Phase kind, or the library file while loading.
        kind: String,
        /// The call (`construction`, `create_assets`, `loading`, ...).
        call: String,
    },
    /// A log line (formatted, level first).
    Log {
        /// The line.
        line: String,
    },
    /// Something the user should see now (e.g. waiting for another launch).
    Notice {
        /// The text.
        text: String,
    },
    /// The chain is valid.
    Built {
        /// Its phases.
        chain: Vec<PhaseView>,
        /// Libraries found but refused while searching.
        refused: Vec<Refused>,
    },
    /// Assets (and segments) are ready; the segments' fds were sent first, in this order.
    AssetsReady {
        /// Segments.
        segments: Vec<SegmentMeta>,
        /// Seconds spent in `create_shared_data`, per phase that made segments.
        shared_seconds: Vec<(String, f64)>,
    },
    /// The status table.
    Status {
        /// Rows.
        rows: Vec<Row>,
    },
    /// Event ranges `[first, last]` per run (None: unknown).
    Events {
        /// `(run, range)`.
        ranges: Vec<(u32, Option<[u64; 2]>)>,
    },
    /// Libraries.
    Plugins {
        /// Loaded.
        libraries: Vec<LibraryView>,
        /// Refused.
        refused: Vec<Refused>,
    },
    /// The request failed.
    Failed {
        /// The error text.
        message: String,
        /// The full layout report of a refused library, if that was the error.
        full_report: Option<String>,
    },
}

// ---------------------------------------------------------------------------------------------
// Parent side.

/// The parent's handle on a running plugin host.
pub struct PluginHost {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: BufReader<std::process::ChildStdout>,
    socket: UnixStream,
    tail: Arc<Mutex<VecDeque<String>>>,
    err_thread: Option<std::thread::JoinHandle<()>>,
    last_call: Option<(String, String, String)>,
    /// The full layout report of the last refused library error, if any.
    pub last_full_report: Option<String>,
}

/// The environment variable that gives the child its end of the fd socket.
const FD_ENV: &str = "SPYRAL_PLUGIN_HOST_FD";

impl PluginHost {
    /// Starts `spyral plugin-host` (the parent's own executable).
    pub fn start() -> Result<PluginHost, HostError> {
        let (mine, theirs) = UnixStream::pair()
            .map_err(|e| HostError::Protocol(format!("cannot create a socket pair: {e}")))?;
        // The child's end must survive exec.
        rustix::io::fcntl_setfd(&theirs, rustix::io::FdFlags::empty())
            .map_err(|e| HostError::Protocol(format!("cannot pass the socket: {e}")))?;
        let mut child = Command::new("/proc/self/exe")
            .arg("plugin-host")
            .env(FD_ENV, theirs.as_raw_fd().to_string())
            .env("SPYRAL_PARENT_PID", std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| HostError::Protocol(format!("cannot start: {e}")))?;
        drop(theirs);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| HostError::Protocol("no stdout".into()))?;
        let stderr = child.stderr.take();
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new(VecDeque::new()));
        let err_thread = {
            let tail = Arc::clone(&tail);
            std::thread::spawn(move || {
                if let Some(e) = stderr {
                    for line in BufReader::new(e).lines().map_while(Result::ok) {
                        tracing::debug!(target: "plugin-host", "stderr: {line}");
                        let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                        t.push_back(line);
                        if t.len() > 40 {
                            t.pop_front();
                        }
                    }
                }
            })
        };
        Ok(PluginHost {
            stdin: child.stdin.take(),
            child,
            replies: BufReader::new(stdout),
            socket: mine,
            tail,
            err_thread: Some(err_thread),
            last_call: None,
            last_full_report: None,
        })
    }

    /// The child's process id (to forward signals to it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `req` and returns the final reply, handling announcements, log lines and notices
    /// on the way. A dead child becomes [`HostError::Crashed`].
    pub fn request(&mut self, req: &HostRequest) -> Result<HostReply, HostError> {
        let mut line =
            serde_json::to_string(req).map_err(|e| HostError::Protocol(e.to_string()))?;
        line.push('\n');
        let sent = self
            .stdin
            .as_mut()
            .map(|s| s.write_all(line.as_bytes()).and_then(|_| s.flush()));
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.died());
        }
        loop {
            let mut text = String::new();
            match self.replies.read_line(&mut text) {
                Ok(0) | Err(_) => return Err(self.died()),
                Ok(_) => {}
            }
            let reply: HostReply = serde_json::from_str(&text).map_err(|e| {
                HostError::Protocol(format!("unreadable reply ({e}): {}", text.trim()))
            })?;
            match reply {
                HostReply::Calling { phase, kind, call } => {
                    self.last_call = Some((phase, kind, call));
                }
                HostReply::Log { line } => forward_log(&line),
                HostReply::Notice { text } => {
                    tracing::info!("{text}");
                    eprintln!("spyral: {text}");
                }
                HostReply::Failed {
                    message,
                    full_report,
                } => {
                    self.last_full_report = full_report;
                    return Err(HostError::Failed(message));
                }
                other => {
                    self.last_call = None;
                    return Ok(other);
                }
            }
        }
    }

    /// Receives `n` file descriptors sent over the socket.
    pub fn receive_fds(&self, n: usize) -> Result<Vec<OwnedFd>, HostError> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let got = crate::fdpass::recv_fds(self.socket.as_fd())
                .map_err(|e| HostError::Protocol(format!("receiving segment fds: {e}")))?;
            if got.is_empty() {
                return Err(HostError::Protocol(format!(
                    "expected {n} segment fds, got {}",
                    out.len()
                )));
            }
            out.extend(got);
        }
        Ok(out)
    }

    /// Builds and validates `pipeline`'s chain.
    pub fn build(
        &mut self,
        pipeline: &Pipeline,
        log_level: &str,
    ) -> Result<(Vec<PhaseView>, Vec<Refused>), HostError> {
        match self.request(&HostRequest::Build {
            pipeline: Box::new(pipeline.clone()),
            log_level: log_level.to_string(),
        })? {
            HostReply::Built { chain, refused } => Ok((chain, refused)),
            other => Err(unexpected(&other)),
        }
    }

    /// Creates the assets (and the shared segments when `shared`) of every active phase.
    pub fn assets(&mut self, holder: &str, shared: bool) -> Result<Made, HostError> {
        let reply = self.request(&HostRequest::Assets {
            holder: holder.to_string(),
            shared,
        })?;
        let HostReply::AssetsReady {
            segments,
            shared_seconds,
        } = reply
        else {
            return Err(unexpected(&reply));
        };
        let fds = self.receive_fds(segments.len())?;
        let mut out = Vec::new();
        for (meta, fd) in segments.into_iter().zip(fds) {
            out.push(segment_from(meta, fd)?);
        }
        Ok((out, shared_seconds))
    }

    /// The status table of `runs`.
    pub fn status(&mut self, runs: &[u32]) -> Result<Vec<Row>, HostError> {
        match self.request(&HostRequest::Status {
            runs: runs.to_vec(),
        })? {
            HostReply::Status { rows } => Ok(rows),
            other => Err(unexpected(&other)),
        }
    }

    /// The event ranges of `runs`, from the chain's first phase.
    pub fn events(&mut self, runs: &[u32]) -> Result<Ranges, HostError> {
        match self.request(&HostRequest::Events {
            runs: runs.to_vec(),
        })? {
            HostReply::Events { ranges } => Ok(ranges),
            other => Err(unexpected(&other)),
        }
    }

    /// The libraries at `paths`.
    pub fn plugins(
        &mut self,
        paths: &[PathBuf],
    ) -> Result<(Vec<LibraryView>, Vec<Refused>), HostError> {
        match self.request(&HostRequest::Plugins {
            paths: paths.to_vec(),
        })? {
            HostReply::Plugins { libraries, refused } => Ok((libraries, refused)),
            other => Err(unexpected(&other)),
        }
    }

    /// Ends the child (closing its stdin) and waits for it.
    pub fn finish(mut self) {
        self.stdin = None;
        let _ = self.child.wait();
        if let Some(t) = self.err_thread.take() {
            let _ = t.join();
        }
    }

    fn died(&mut self) -> HostError {
        self.stdin = None;
        let how = match self.child.wait() {
            Ok(s) => crate::supervise::WorkerExit::of(s).to_string(),
            Err(e) => format!("wait failed: {e}"),
        };
        if let Some(t) = self.err_thread.take() {
            let _ = t.join();
        }
        let tail: Vec<String> = self
            .tail
            .lock()
            .map(|t| t.iter().rev().take(8).rev().cloned().collect())
            .unwrap_or_default();
        let what = match self.last_call.take() {
            Some((phase, kind, call)) if phase.is_empty() => format!("{call} {kind}"),
            Some((phase, kind, call)) => format!("phase {phase} ({kind}) in {call}"),
            None => "the plugin host process".to_string(),
        };
        HostError::Crashed {
            what,
            how,
            tail: if tail.is_empty() {
                "(none)".to_string()
            } else {
                tail.join("\n    ")
            },
        }
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn unexpected(reply: &HostReply) -> HostError {
    HostError::Protocol(format!("unexpected reply {reply:?}"))
}

fn forward_log(line: &str) {
    let line = line.trim();
    let (level, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let msg = if ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level) {
        rest.trim_start()
    } else {
        line
    };
    match level {
        "ERROR" => tracing::error!(target: "plugin-host", "{msg}"),
        "WARN" => tracing::warn!(target: "plugin-host", "{msg}"),
        "DEBUG" => tracing::debug!(target: "plugin-host", "{msg}"),
        "TRACE" => tracing::trace!(target: "plugin-host", "{msg}"),
        _ => tracing::info!(target: "plugin-host", "{msg}"),
    }
}

fn element_from_name(name: &str) -> Option<ElementType> {
    use ElementType::*;
    [U8, I8, U16, I16, U32, I32, U64, I64, F32, F64]
        .into_iter()
        .find(|e| e.name() == name)
}

/// A received segment, checked to be a sealed memfd of the announced size.
fn segment_from(meta: SegmentMeta, fd: OwnedFd) -> Result<Segment, HostError> {
    use rustix::fs::SealFlags;
    let size = rustix::fs::fstat(&fd)
        .map_err(|e| HostError::Protocol(e.to_string()))?
        .st_size as u64;
    let element = element_from_name(&meta.element).ok_or_else(|| {
        HostError::Protocol(format!("segment `{}`: element {}", meta.name, meta.element))
    })?;
    if let Some(offset) = meta.file_offset {
        if offset.checked_add(meta.len).is_none_or(|end| end > size) {
            return Err(HostError::Protocol(format!(
                "file segment `{}`: {size} bytes, fewer than {offset} + {}",
                meta.name, meta.len
            )));
        }
        return Ok(Segment {
            info: SegmentInfo {
                phase: meta.phase.as_str().into(),
                name: meta.name.as_str().into(),
                element,
                shape: meta.shape.into(),
                len: meta.len,
            },
            fd,
            file_offset: Some(offset),
        });
    }
    let seals = rustix::fs::fcntl_get_seals(&fd)
        .map_err(|e| HostError::Protocol(format!("segment `{}`: not a memfd: {e}", meta.name)))?;
    if !seals.contains(SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW) {
        return Err(HostError::Protocol(format!(
            "segment `{}` is not sealed read-only",
            meta.name
        )));
    }
    if size != meta.len {
        return Err(HostError::Protocol(format!(
            "segment `{}`: {size} bytes, {} announced",
            meta.name, meta.len
        )));
    }
    Ok(Segment {
        info: SegmentInfo {
            phase: meta.phase.as_str().into(),
            name: meta.name.as_str().into(),
            element,
            shape: meta.shape.into(),
            len: meta.len,
        },
        fd,
        file_offset: None,
    })
}

fn meta_of(s: &SegmentEntry) -> SegmentMeta {
    SegmentMeta {
        phase: s.phase.clone(),
        name: s.name.clone(),
        element: s.element.clone(),
        shape: s.shape.clone(),
        len: s.len,
        file_offset: s.file_offset,
    }
}

// ---------------------------------------------------------------------------------------------
// Child side.

struct ChildState {
    pipeline: Pipeline,
    _registry: Registry,
    chain: Vec<ChainPhase>,
}

fn refused_of(e: &PluginError) -> Refused {
    Refused {
        path: e.path().map(Path::to_path_buf),
        message: e.to_string(),
        full_report: e.full_report().map(str::to_string),
    }
}

/// Entry point of `spyral plugin-host`. Returns the process exit code.
pub fn main() -> i32 {
    let outbox = match crate::worker::Outbox::take_stdout() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("spyral plugin-host: cannot set up the message stream: {e}");
            return 3;
        }
    };
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let socket = match std::env::var(FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        Some(fd) => crate::fdpass::adopt(fd),
        None => {
            eprintln!("spyral plugin-host: started without a socket (this command is internal)");
            return 3;
        }
    };
    let outbox: &'static crate::worker::Outbox = Box::leak(Box::new(outbox));
    let send = |r: &HostReply| outbox.send_json(r);
    let mut state: Option<ChildState> = None;
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 {
            return 0;
        }
        let req: HostRequest = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                send(&HostReply::Failed {
                    message: format!("bad request: {e}"),
                    full_report: None,
                });
                continue;
            }
        };
        let calling = |phase: &str, kind: &str, call: &str| {
            send(&HostReply::Calling {
                phase: phase.to_string(),
                kind: kind.to_string(),
                call: call.to_string(),
            })
        };
        let reply = match req {
            HostRequest::Build {
                pipeline,
                log_level,
            } => {
                init_forwarded_logging(outbox, &log_level);
                match build(*pipeline, &calling).and_then(|(st, refused)| {
                    let mut chain: Vec<PhaseView> = Vec::new();
                    for c in &st.chain {
                        let mut v = c.view();
                        if c.spec.active {
                            calling(&c.name, &c.spec.kind, "splittable");
                            v.splittable = c.phase.splittable().into_result().map_err(|e| {
                                failed(format!(
                                    "phase {} ({}): splittable failed: {e}",
                                    c.name, c.spec.kind
                                ))
                            })?;
                        }
                        chain.push(v);
                    }
                    Ok((st, refused, chain))
                }) {
                    Ok((st, refused, chain)) => {
                        state = Some(st);
                        HostReply::Built { chain, refused }
                    }
                    Err(reply) => reply,
                }
            }
            HostRequest::Assets { holder, shared } => match state.as_mut() {
                None => failed("no chain built".into()),
                Some(st) => match assets(st, &holder, shared, &calling, &|text: &str| {
                    send(&HostReply::Notice {
                        text: text.to_string(),
                    })
                }) {
                    Ok((segments, shared_seconds)) => {
                        let fds: Vec<_> = segments.iter().map(|s| s.fd.as_fd()).collect();
                        match crate::fdpass::send_fds(socket.as_fd(), &fds) {
                            Ok(()) => HostReply::AssetsReady {
                                segments: segments.iter().map(|s| meta_of(&s.entry())).collect(),
                                shared_seconds,
                            },
                            Err(e) => failed(format!("cannot pass the segments: {e}")),
                        }
                    }
                    Err(e) => failed(e.to_string()),
                },
            },
            HostRequest::Status { runs } => match state.as_ref() {
                None => failed("no chain built".into()),
                Some(st) => HostReply::Status {
                    rows: crate::status::table(&st.pipeline, &st.chain, &runs),
                },
            },
            HostRequest::Events { runs } => match state.as_ref() {
                None => failed("no chain built".into()),
                Some(st) => HostReply::Events {
                    ranges: events(st, &runs, &calling),
                },
            },
            HostRequest::Plugins { paths } => plugins(&paths, &calling),
        };
        send(&reply);
    }
}

fn failed(message: String) -> HostReply {
    HostReply::Failed {
        message,
        full_report: None,
    }
}

fn build(
    pipeline: Pipeline,
    calling: &dyn Fn(&str, &str, &str),
) -> Result<(ChildState, Vec<Refused>), HostReply> {
    crate::parent::enter_pipeline_dir(&pipeline).map_err(|e| failed(e.to_string()))?;
    let registry = Registry::build_for_with(&pipeline.plugins, &pipeline.kinds(), &mut |p| {
        calling("", &p.display().to_string(), "loading plugin library")
    })
    .map_err(|e| HostReply::Failed {
        message: e.to_string(),
        full_report: e.full_report().map(str::to_string),
    })?;
    let chain = chain::build_with(&pipeline, &registry, &mut |n, k, c| calling(n, k, c))
        .map_err(|e| failed(e.to_string()))?;
    chain::validate_with(&chain, &mut |n, k, c| calling(n, k, c))
        .map_err(|e| failed(e.to_string()))?;
    let refused = registry.refused.iter().map(refused_of).collect();
    Ok((
        ChildState {
            pipeline,
            _registry: registry,
            chain,
        },
        refused,
    ))
}

/// Why the plugin-host child could not build a phase's assets or shared data (sent to the
/// parent as the text of a failed reply).
#[derive(Debug, thiserror::Error)]
enum AssetsError {
    /// The phase's asset lock could not be taken.
    #[error(transparent)]
    Lock(#[from] crate::locks::LockError),
    /// A phase call returned an error.
    #[error("phase {phase}: {call} failed: {error}")]
    Phase {
        /// The phase.
        phase: String,
        /// The call: `create_assets`, `create_shared_data` or sealing shared segments.
        call: &'static str,
        /// What it returned.
        error: spyral_core::PhaseError,
    },
}

/// Takes phase `c`'s asset lock, waiting (with a notice) while another launch builds them, and
/// removes temporary asset files left by a dead launch.
fn lock_assets(
    p: &Pipeline,
    c: &ChainPhase,
    holder: &str,
    notice: &dyn Fn(&str),
) -> Result<crate::locks::Lock, AssetsError> {
    let path = crate::locks::assets_lock_path(&p.workspace, &c.name);
    let lock = crate::locks::lock(&path, holder, |who| {
        notice(&format!(
            "waiting for another launch ({who}) to finish the assets of phase {}",
            c.name
        ))
    })?;
    let n = crate::locks::remove_asset_partials(&c.workspace.asset_dir());
    if n > 0 {
        tracing::info!(
            "removed {n} temporary asset file(s) of an interrupted launch in {}",
            c.name
        );
    }
    Ok(lock)
}

/// `create_assets` of `c` (its asset lock held).
fn create_assets_of(c: &mut ChainPhase) -> Result<(), AssetsError> {
    let ws = c.workspace();
    let t = std::time::Instant::now();
    tracing::info!("calling {}.create_assets", c.name);
    c.phase
        .create_assets(&ws)
        .into_result()
        .map_err(|error| phase_failed(c, "create_assets", error))?;
    tracing::info!(
        "{}: assets ready in {:.2} s",
        c.name,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn phase_failed(c: &ChainPhase, call: &'static str, error: spyral_core::PhaseError) -> AssetsError {
    AssetsError::Phase {
        phase: c.name.clone(),
        call,
        error,
    }
}

/// `create_shared_data` of `c`, sealing what it allocates (its asset lock held, so the assets
/// it reads cannot change meanwhile).
fn create_shared_of(c: &mut ChainPhase, budget: u64) -> Result<Vec<Segment>, AssetsError> {
    let ws = c.workspace();
    let mut alloc = crate::segments::ParentAllocator::new(&c.name, budget);
    tracing::debug!("calling {}.create_shared_data", c.name);
    c.phase
        .create_shared_data(
            &ws,
            spyral_core::shared::SegmentAllocator_TO::from_ptr(
                abi_stable::sabi_types::RMut::new(&mut alloc),
                abi_stable::sabi_trait::TD_Opaque,
            ),
        )
        .into_result()
        .map_err(|error| phase_failed(c, "create_shared_data", error))?;
    let sealed = alloc
        .seal()
        .map_err(|error| phase_failed(c, "sealing shared segments", error))?;
    for s in &sealed {
        tracing::info!(
            "phase {} allocated shared segment `{}`: {} ({} {:?})",
            c.name,
            s.info.name,
            crate::segments::human_bytes(s.info.len),
            s.info.element.name(),
            s.info.shape.as_slice()
        );
    }
    Ok(sealed)
}

fn assets(
    st: &mut ChildState,
    holder: &str,
    shared: bool,
    calling: &dyn Fn(&str, &str, &str),
    notice: &dyn Fn(&str),
) -> Result<Made, AssetsError> {
    let mut all: Vec<Segment> = Vec::new();
    let mut times = Vec::new();
    for c in st.chain.iter_mut().filter(|c| c.spec.active) {
        let _lock = lock_assets(&st.pipeline, c, holder, notice)?;
        calling(&c.name, &c.spec.kind, "create_assets");
        create_assets_of(c)?;
        if shared {
            let t = std::time::Instant::now();
            let used: u64 = all.iter().map(|s| s.info.len).sum();
            calling(&c.name, &c.spec.kind, "create_shared_data");
            let budget = crate::parent::segment_budget().saturating_sub(used);
            let sealed = create_shared_of(c, budget)?;
            if !sealed.is_empty() {
                times.push((c.name.clone(), t.elapsed().as_secs_f64()));
            }
            all.extend(sealed);
        }
    }
    Ok((all, times))
}

/// The event range the chain's first phase reports for each run (None when it is inactive or
/// does not know).
pub type Ranges = Vec<(u32, Option<[u64; 2]>)>;

fn events(st: &ChildState, runs: &[u32], calling: &dyn Fn(&str, &str, &str)) -> Ranges {
    let Some(first) = st.chain.first().filter(|c| c.spec.active) else {
        return runs.iter().map(|&r| (r, None)).collect();
    };
    let mut out = Vec::new();
    for &run in runs {
        let payload = spyral_core::PhaseResult::new(run)
            .with_artifact("trace", crate::runs::trace_file(&st.pipeline.traces, run));
        calling(&first.name, &first.spec.kind, "events");
        // A run whose events cannot be told (a damaged file) is processed whole: its own run
        // reports the problem.
        let range = match first.phase.events(&payload, &first.workspace).into_result() {
            Ok(r) => r.into_option().map(|r| [r.first, r.last]),
            Err(e) => {
                tracing::warn!(
                    "run {run}: {}.events failed ({e}); not splitting it",
                    first.name
                );
                None
            }
        };
        out.push((run, range));
    }
    out
}

fn plugins(paths: &[PathBuf], calling: &dyn Fn(&str, &str, &str)) -> HostReply {
    let mut on_load = |p: &Path| calling("", &p.display().to_string(), "loading plugin library");
    let mut refused = Vec::new();
    let libs = if paths.is_empty() {
        match Registry::build_with(&[], true, &mut on_load) {
            Ok(r) => {
                refused.extend(r.refused.iter().map(refused_of));
                r.libraries
            }
            Err(e) => return failed(e.to_string()),
        }
    } else {
        let mut v = Vec::new();
        for p in paths {
            let files = if p.is_dir() {
                crate::plugins::libraries_in(p)
            } else {
                vec![p.clone()]
            };
            for f in files {
                on_load(&f);
                match crate::plugins::load(&f) {
                    Ok(l) => v.push(l),
                    Err(PluginError::NotAPlugin(_)) if p.is_dir() => {}
                    Err(e) => {
                        return HostReply::Failed {
                            message: e.to_string(),
                            full_report: e.full_report().map(str::to_string),
                        }
                    }
                }
            }
        }
        v
    };
    let libraries = libs
        .iter()
        .map(|l| LibraryView {
            id: l.id.clone(),
            source: l.source.to_string(),
            core_version: l.info.core_version.to_string(),
            rustc_version: l.info.rustc_version.to_string(),
            kinds: l
                .info
                .kinds
                .iter()
                .map(|k| KindView {
                    kind: k.kind.to_string(),
                    default_name: k.default_name.to_string(),
                    description: k.description.to_string(),
                    default_config: k.default_config.to_string(),
                    config_schema: l.config_schema(k.kind.as_str()),
                })
                .collect(),
            scanned: l.scanned,
        })
        .collect();
    HostReply::Plugins { libraries, refused }
}

/// Sends every formatted log line of this process to the parent.
fn init_forwarded_logging(outbox: &'static crate::worker::Outbox, level: &str) {
    use tracing_subscriber::prelude::*;
    let writer = move || ForwardWriter(outbox);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .without_time()
                .with_target(true)
                .with_writer(writer)
                .with_filter(tracing_subscriber::EnvFilter::new(level)),
        )
        .try_init();
}

struct ForwardWriter(&'static crate::worker::Outbox);

impl Write for ForwardWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.0.send_json(&HostReply::Log {
                line: line.to_string(),
            });
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
