//! Shared read-only segments: anonymous memory files (`memfd_create`) that a phase fills in the
//! parent and every worker maps read-only, or read-only files (assets on disk) that every
//! worker maps straight from the page cache.
//!
//! File segments (`SharedAllocator::share_file`) cost no copy and no time: the file is opened
//! read-only in the plugin host, its descriptor travels to the parent and is inherited by the
//! workers, which map the byte range read-only (a write is a SIGSEGV). Assets are replaced by
//! renaming a new file over the old one, so a mapping keeps the bytes it was given.
//!
//! Parent: [`ParentAllocator`] reserves each segment with `fallocate` (a segment that cannot fit
//! fails at once instead of a SIGBUS later), maps it writable while the phase fills it, then
//! unmaps it and seals it against writing, shrinking and growing. The fds are inherited by the
//! workers. No name exists in /dev/shm, so nothing leaks when processes die, and two launches
//! can never collide. Worker: [`attach`] maps each inherited fd read-only (no copy); the mappings
//! live until the process exits. A write into a sealed, read-only mapping is killed by SIGSEGV.

use abi_stable::std_types::{RErr, ROk, RResult, RSlice, RSliceMut, RStr};
use memmap2::{Mmap, MmapMut};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{MemfdFlags, SealFlags};
use spyral_core::shared::{ElementType, SegmentAllocator, SegmentInfo, SharedSegment};
use spyral_core::PhaseError;
use std::fs::File;

use crate::protocol::SegmentEntry;

/// A sealed segment held by the parent.
#[derive(Debug)]
pub struct Segment {
    /// What it is.
    pub info: SegmentInfo,
    /// The memfd or file (kept open for the workers to inherit).
    pub fd: OwnedFd,
    /// For a file segment, where its bytes start in the file (None: a sealed memfd).
    pub file_offset: Option<u64>,
}

impl Segment {
    /// The entry sent to workers.
    pub fn entry(&self) -> SegmentEntry {
        SegmentEntry {
            phase: self.info.phase.to_string(),
            name: self.info.name.to_string(),
            fd: self.fd.as_raw_fd(),
            len: self.info.len,
            element: self.info.element.name().to_string(),
            shape: self.info.shape.to_vec(),
            file_offset: self.file_offset,
        }
    }
}

/// The host's allocator for one phase's `create_shared_data`.
pub struct ParentAllocator {
    phase: String,
    budget: u64,
    pending: Vec<(SegmentInfo, OwnedFd, MmapMut)>,
    files: Vec<(SegmentInfo, OwnedFd, u64)>,
}

/// The environment variable holding the memory kept free when allocating shared segments.
pub const MARGIN_VAR: &str = "SPYRAL_MEMORY_MARGIN_MIB";

/// The margin when [`MARGIN_VAR`] is not set, in MiB.
pub const DEFAULT_MARGIN_MIB: u64 = 512;

/// A bad memory setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// Not a whole number.
    #[error("{MARGIN_VAR}=`{0}`: expected a whole number of MiB, e.g. {DEFAULT_MARGIN_MIB}")]
    NotANumber(String),
    /// Overflows a byte count.
    #[error("{MARGIN_VAR}={0}: too large (the margin in bytes must fit in 64 bits)")]
    TooLarge(u64),
}

/// The memory kept free when allocating shared segments, in bytes: [`MARGIN_VAR`] (MiB) or
/// [`DEFAULT_MARGIN_MIB`]. A value that is not a whole number, or overflows, is an error.
pub fn memory_margin() -> Result<u64, MemoryError> {
    parse_margin(std::env::var_os(MARGIN_VAR).as_deref())
}

fn parse_margin(value: Option<&std::ffi::OsStr>) -> Result<u64, MemoryError> {
    let mib = match value {
        None => DEFAULT_MARGIN_MIB,
        Some(v) => {
            let text = v.to_string_lossy();
            text.trim()
                .parse::<u64>()
                .map_err(|_| MemoryError::NotANumber(text.into_owned()))?
        }
    };
    mib.checked_mul(1 << 20).ok_or(MemoryError::TooLarge(mib))
}

/// The bytes that shared segments may use: the memory available (see [`mem_available`])
/// minus the margin.
pub fn segment_budget() -> Result<u64, MemoryError> {
    let margin = memory_margin()?;
    Ok(mem_available()
        .unwrap_or(u64::MAX / 4)
        .saturating_sub(margin))
}

/// The memory this process can still use, in bytes: the smaller of the machine's
/// `MemAvailable` and the headroom of every memory cgroup limit above this process (a SLURM
/// `--mem` job, a container), cgroup v2 or v1. `None` when neither can be read.
pub fn mem_available() -> Option<u64> {
    let host = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| meminfo_available(&t));
    combined_available(host, cgroup_headroom())
}

/// The memory a launch may use: the smaller of the host's `MemAvailable` and the cgroup's
/// headroom, whichever is known.
fn combined_available(host: Option<u64>, cgroup: Option<u64>) -> Option<u64> {
    match (host, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `MemAvailable` of a /proc/meminfo text, in bytes.
pub fn meminfo_available(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb.saturating_mul(1024))
}

/// A cgroup hierarchy that can limit memory, from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// The hierarchy's folder inside the cgroup namespace that is mounted.
    pub root: String,
    /// Where it is mounted.
    pub mount_point: std::path::PathBuf,
    /// cgroup v2 (`memory.max`) rather than v1 (`memory.limit_in_bytes`).
    pub v2: bool,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mountinfo(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 mount and the cgroup v1 `memory` mount of a /proc/self/mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.is_empty() {
            continue;
        }
        let v2 = match r[0] {
            "cgroup2" => true,
            "cgroup"
                if r.get(2)
                    .is_some_and(|o| o.split(',').any(|o| o == "memory")) =>
            {
                false
            }
            _ => continue,
        };
        out.push(CgroupMount {
            root: unescape_mountinfo(l[3]),
            mount_point: unescape_mountinfo(l[4]).into(),
            v2,
        });
    }
    out
}

/// This process's cgroup v2 path and v1 `memory` path from a /proc/self/cgroup text.
pub fn parse_proc_cgroup(text: &str) -> (Option<String>, Option<String>) {
    let (mut v2, mut v1) = (None, None);
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path.to_string());
        }
    }
    (v2, v1)
}

/// The folders of this process's cgroup and of every ancestor up to the mount point.
pub fn cgroup_dirs(mount: &CgroupMount, path: &str) -> Vec<std::path::PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let rel = path
        .strip_prefix(root)
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .unwrap_or("");
    let mut dir = mount.mount_point.clone();
    let mut dirs = vec![dir.clone()];
    for part in rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
    {
        dir.push(part);
        dirs.push(dir.clone());
    }
    dirs.reverse();
    dirs
}

/// Limits at or above this are "no limit" (cgroup v1 writes 2^63 rounded down to a page).
const UNLIMITED: u64 = 1 << 62;

/// The headroom under one cgroup's limit: limit minus the usage that cannot be reclaimed
/// (usage minus inactive page cache). `None` when there is no limit or the texts are not
/// numbers. `limit` is `memory.max` (v2, `max` = none) or `memory.limit_in_bytes` (v1), `usage`
/// `memory.current` or `memory.usage_in_bytes`, `stat` `memory.stat` (may be empty).
pub fn cgroup_headroom_of(limit: &str, usage: &str, stat: &str) -> Option<u64> {
    let limit: u64 = limit.trim().parse().ok()?;
    if limit >= UNLIMITED {
        return None;
    }
    let usage: u64 = usage.trim().parse().ok()?;
    let stat_value = |key: &str| {
        stat.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
        })
    };
    let reclaimable = stat_value("total_inactive_file")
        .or_else(|| stat_value("inactive_file"))
        .unwrap_or(0);
    Some(limit.saturating_sub(usage.saturating_sub(reclaimable)))
}

/// The smallest headroom under the memory limits of this process's cgroups and their
/// ancestors (v2 and v1), or `None` when no limit is set or none can be read.
pub fn cgroup_headroom() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let (v2, v1) = parse_proc_cgroup(&own);
    let read = |d: &std::path::Path, f: &str| std::fs::read_to_string(d.join(f)).ok();
    let mut best: Option<u64> = None;
    for m in parse_mountinfo(&mounts) {
        let (path, limit_file, usage_file) = if m.v2 {
            (v2.as_deref(), "memory.max", "memory.current")
        } else {
            (
                v1.as_deref(),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        };
        let Some(path) = path else { continue };
        for dir in cgroup_dirs(&m, path) {
            let (Some(limit), Some(usage)) = (read(&dir, limit_file), read(&dir, usage_file))
            else {
                continue;
            };
            let stat = read(&dir, "memory.stat").unwrap_or_default();
            if let Some(h) = cgroup_headroom_of(&limit, &usage, &stat) {
                best = Some(best.map_or(h, |b| b.min(h)));
            }
        }
    }
    best
}

/// Human-readable byte count.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[i])
    }
}

impl ParentAllocator {
    /// An allocator for `phase` that may use at most `budget` bytes in total.
    pub fn new(phase: &str, budget: u64) -> Self {
        ParentAllocator {
            phase: phase.to_string(),
            budget,
            pending: Vec::new(),
            files: Vec::new(),
        }
    }

    fn alloc(
        &mut self,
        name: &str,
        element: ElementType,
        shape: &[u64],
    ) -> Result<u32, PhaseError> {
        if self.taken(name) {
            return Err(PhaseError::config(format!(
                "phase {} asked twice for a shared segment named `{name}`",
                self.phase
            )));
        }
        let len = shape
            .iter()
            .try_fold(element.size() as u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                PhaseError::config(format!(
                    "shared segment `{name}`: shape {shape:?} overflows"
                ))
            })?;
        let used: u64 = self.pending.iter().map(|(i, _, _)| i.len).sum();
        if used + len > self.budget {
            return Err(PhaseError::io(format!(
                "phase {} wants shared segment `{name}` of {} but only {} of memory is available for segments (MemAvailable or the cgroup limit's headroom, minus the safety margin, {} already allocated)",
                self.phase,
                human_bytes(len),
                human_bytes(self.budget.saturating_sub(used)),
                human_bytes(used)
            )));
        }
        let fd = rustix::fs::memfd_create(
            format!("spyral:{}:{name}", self.phase),
            MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| PhaseError::io(format!("memfd_create for segment `{name}`: {e}")))?;
        if len > 0 {
            rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, len).map_err(
                |e| {
                    PhaseError::io(format!(
                        "phase {}: cannot reserve {} for shared segment `{name}`: {e}",
                        self.phase,
                        human_bytes(len)
                    ))
                },
            )?;
        }
        let file = File::from(fd.try_clone().map_err(|e| PhaseError::io(e.to_string()))?);
        // SAFETY: the memfd was just created by this process and is not shared with anyone yet,
        // so no other mapping can change its size or contents while this mapping exists.
        #[allow(unsafe_code)]
        let map = unsafe { MmapMut::map_mut(&file) }
            .map_err(|e| PhaseError::io(format!("cannot map shared segment `{name}`: {e}")))?;
        self.pending.push((
            SegmentInfo {
                phase: self.phase.as_str().into(),
                name: name.into(),
                element,
                shape: shape.to_vec().into(),
                len,
            },
            fd,
            map,
        ));
        Ok((self.pending.len() - 1) as u32)
    }

    /// Unmaps and seals every segment (no more writes, no resizing) and returns them.
    /// Shares `shape` elements of `element` from the file at `path`, from byte `offset`.
    fn file(
        &mut self,
        name: &str,
        element: ElementType,
        shape: &[u64],
        path: &std::path::Path,
        offset: u64,
    ) -> Result<(), PhaseError> {
        if self.taken(name) {
            return Err(PhaseError::config(format!(
                "phase {} asked twice for a shared segment named `{name}`",
                self.phase
            )));
        }
        let len = segment_len(name, element, shape)?;
        if offset % element.size() as u64 != 0 {
            return Err(PhaseError::invalid_input(format!(
                "shared segment `{name}`: offset {offset} in {} is not aligned for {}",
                path.display(),
                element.name()
            )));
        }
        let f = File::open(path).map_err(|e| {
            PhaseError::io(format!(
                "shared segment `{name}`: cannot open {}: {e}",
                path.display()
            ))
        })?;
        let m = f.metadata().map_err(|e| PhaseError::io(e.to_string()))?;
        if !m.is_file() {
            return Err(PhaseError::invalid_input(format!(
                "shared segment `{name}`: {} is not a regular file",
                path.display()
            )));
        }
        if offset.checked_add(len).is_none_or(|end| end > m.len()) {
            return Err(PhaseError::invalid_input(format!(
                "shared segment `{name}`: {} holds {} bytes, fewer than {offset} + {len}",
                path.display(),
                m.len()
            )));
        }
        self.files.push((
            SegmentInfo {
                phase: self.phase.as_str().into(),
                name: name.into(),
                element,
                shape: shape.to_vec().into(),
                len,
            },
            OwnedFd::from(f),
            offset,
        ));
        Ok(())
    }

    fn taken(&self, name: &str) -> bool {
        self.pending.iter().any(|(i, _, _)| i.name.as_str() == name)
            || self.files.iter().any(|(i, _, _)| i.name.as_str() == name)
    }

    /// Unmaps and seals every memfd segment (no more writes, no resizing) and returns them with
    /// the file segments.
    pub fn seal(self) -> Result<Vec<Segment>, PhaseError> {
        let mut out: Vec<Segment> = self
            .files
            .into_iter()
            .map(|(info, fd, offset)| Segment {
                info,
                fd,
                file_offset: Some(offset),
            })
            .collect();
        for (info, fd, map) in self.pending {
            map.flush().ok();
            drop(map);
            seal_read_only(&fd)
                .map_err(|e| PhaseError::io(format!("cannot seal segment `{}`: {e}", info.name)))?;
            out.push(Segment {
                info,
                fd,
                file_offset: None,
            });
        }
        Ok(out)
    }
}

impl SegmentAllocator for ParentAllocator {
    fn allocate(
        &mut self,
        name: RStr<'_>,
        element: ElementType,
        shape: RSlice<'_, u64>,
    ) -> RResult<u32, PhaseError> {
        match self.alloc(name.as_str(), element, shape.as_slice()) {
            Ok(id) => ROk(id),
            Err(e) => RErr(e),
        }
    }
    fn buffer(&mut self, id: u32) -> RResult<RSliceMut<'_, u8>, PhaseError> {
        match self.pending.get_mut(id as usize) {
            Some((_, _, map)) => ROk(RSliceMut::from_mut_slice(&mut map[..])),
            None => RErr(PhaseError::internal(format!(
                "no shared segment with id {id}"
            ))),
        }
    }
    fn share_file(
        &mut self,
        name: RStr<'_>,
        element: ElementType,
        shape: RSlice<'_, u64>,
        path: RStr<'_>,
        offset: u64,
    ) -> RResult<(), PhaseError> {
        self.file(
            name.as_str(),
            element,
            shape.as_slice(),
            std::path::Path::new(path.as_str()),
            offset,
        )
        .into()
    }
}

/// The byte length of `shape` elements of `element` (an error when it overflows).
/// Seals a memfd against writing, shrinking and growing. The kernel refuses the write seal
/// (`EBUSY`) while any page still has a transient extra reference (pages in a per-CPU LRU batch,
/// a memory monitor's scan) and waits only about 80 ms for them itself; on a loaded machine that
/// is not always enough, so a busy refusal is retried for up to about 2.5 s.
fn seal_read_only(fd: &OwnedFd) -> rustix::io::Result<()> {
    let seals = SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
    let mut wait = std::time::Duration::from_millis(10);
    for _ in 0..8 {
        match rustix::fs::fcntl_add_seals(fd, seals) {
            Err(rustix::io::Errno::BUSY) => {
                std::thread::sleep(wait);
                wait *= 2;
            }
            other => return other,
        }
    }
    rustix::fs::fcntl_add_seals(fd, seals)
}

fn segment_len(name: &str, element: ElementType, shape: &[u64]) -> Result<u64, PhaseError> {
    shape
        .iter()
        .try_fold(element.size() as u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            PhaseError::config(format!(
                "shared segment `{name}`: shape {shape:?} overflows"
            ))
        })
}

fn element_from_name(name: &str) -> Option<ElementType> {
    use ElementType::*;
    [U8, I8, U16, I16, U32, I32, U64, I64, F32, F64]
        .into_iter()
        .find(|e| e.name() == name)
}

/// Why a worker could not map an inherited shared segment.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The job names an element type this build does not know.
    #[error("segment `{name}`: unknown element type {element}")]
    UnknownElement {
        /// The segment.
        name: String,
        /// The element type named.
        element: String,
    },
    /// The descriptor is not a sealed memfd.
    #[error("segment `{name}` (fd {fd}): not a sealed memfd: {source}")]
    NotMemfd {
        /// The segment.
        name: String,
        /// The descriptor number.
        fd: i32,
        /// What the seal query said.
        source: rustix::io::Errno,
    },
    /// The memfd can still be written or shrunk.
    #[error("segment `{name}` is not sealed read-only")]
    NotSealed {
        /// The segment.
        name: String,
    },
    /// The mapping failed.
    #[error("cannot map segment `{name}`: {source}")]
    Map {
        /// The segment.
        name: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The memfd's size is not the segment's.
    #[error("segment `{name}`: {mapped} bytes mapped, {expected} expected")]
    Length {
        /// The segment.
        name: String,
        /// Bytes mapped.
        mapped: usize,
        /// Bytes the parent announced.
        expected: u64,
    },
    /// The shared file's metadata could not be read.
    #[error("segment `{name}`: {source}")]
    FileMetadata {
        /// The segment.
        name: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The shared file is shorter than the segment's range (or not a regular file).
    #[error("segment `{name}`: the shared file holds {size} bytes, fewer than {offset} + {len}")]
    FileTooShort {
        /// The segment.
        name: String,
        /// The file's size.
        size: u64,
        /// The segment's offset in it.
        offset: u64,
        /// The segment's length.
        len: u64,
    },
}

/// Maps the inherited segments read-only. The mappings (and infos) are leaked on purpose: they
/// live as long as the worker process.
pub fn attach(entries: &[SegmentEntry]) -> Result<Vec<SharedSegment<'static>>, AttachError> {
    let mut out = Vec::new();
    for e in entries {
        let element = element_from_name(&e.element).ok_or_else(|| AttachError::UnknownElement {
            name: e.name.clone(),
            element: e.element.clone(),
        })?;
        // SAFETY: the parent passed us this descriptor number for an inherited memfd or file
        // that this worker owns from here on; nothing else in the worker uses that number.
        #[allow(unsafe_code)]
        let fd: OwnedFd = unsafe { <OwnedFd as rustix::fd::FromRawFd>::from_raw_fd(e.fd) };
        if let Some(offset) = e.file_offset {
            out.push(attach_file(e, element, fd, offset)?);
            continue;
        }
        let seals =
            rustix::fs::fcntl_get_seals(fd.as_fd()).map_err(|source| AttachError::NotMemfd {
                name: e.name.clone(),
                fd: e.fd,
                source,
            })?;
        if !seals.contains(SealFlags::WRITE | SealFlags::SHRINK) {
            return Err(AttachError::NotSealed {
                name: e.name.clone(),
            });
        }
        let file = File::from(fd);
        let bytes: &'static [u8] = if e.len == 0 {
            &[]
        } else {
            // SAFETY: the memfd is sealed against writes and shrinking (checked above), so its
            // contents and size cannot change while mapped.
            #[allow(unsafe_code)]
            let map = unsafe { Mmap::map(&file) }.map_err(|source| AttachError::Map {
                name: e.name.clone(),
                source,
            })?;
            if map.len() as u64 != e.len {
                return Err(AttachError::Length {
                    name: e.name.clone(),
                    mapped: map.len(),
                    expected: e.len,
                });
            }
            let map: &'static Mmap = Box::leak(Box::new(map));
            &map[..]
        };
        let info: &'static SegmentInfo = Box::leak(Box::new(SegmentInfo {
            phase: e.phase.as_str().into(),
            name: e.name.as_str().into(),
            element,
            shape: e.shape.clone().into(),
            len: e.len,
        }));
        out.push(SharedSegment {
            info,
            bytes: bytes.into(),
        });
    }
    Ok(out)
}

/// Maps bytes `offset..offset + len` of an inherited read-only file (a file segment); the
/// mapping is read-only and leaked (it lives as long as the worker).
fn attach_file(
    e: &SegmentEntry,
    element: ElementType,
    fd: OwnedFd,
    offset: u64,
) -> Result<SharedSegment<'static>, AttachError> {
    let file = File::from(fd);
    let m = file
        .metadata()
        .map_err(|source| AttachError::FileMetadata {
            name: e.name.clone(),
            source,
        })?;
    if !m.is_file() || offset.checked_add(e.len).is_none_or(|end| end > m.len()) {
        return Err(AttachError::FileTooShort {
            name: e.name.clone(),
            size: m.len(),
            offset,
            len: e.len,
        });
    }
    let page = rustix::param::page_size() as u64;
    let start = offset - offset % page;
    let skip = (offset - start) as usize;
    let bytes: &'static [u8] = if e.len == 0 {
        &[]
    } else {
        // SAFETY: the file is mapped read-only. Assets are never modified in place (they are
        // replaced by renaming a new file over them, which leaves this inode and its bytes
        // intact), so its contents do not change while mapped.
        #[allow(unsafe_code)]
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(start)
                .len(skip + e.len as usize)
                .map(&file)
        }
        .map_err(|source| AttachError::Map {
            name: e.name.clone(),
            source,
        })?;
        let map: &'static Mmap = Box::leak(Box::new(map));
        &map[skip..]
    };
    let info: &'static SegmentInfo = Box::leak(Box::new(SegmentInfo {
        phase: e.phase.as_str().into(),
        name: e.name.as_str().into(),
        element,
        shape: e.shape.clone().into(),
        len: e.len,
    }));
    Ok(SharedSegment {
        info,
        bytes: bytes.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn sealing_waits_out_a_busy_memfd_and_gives_up_on_a_mapping_that_stays() {
        let fd = rustix::fs::memfd_create("busy", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        let file = File::from(fd.try_clone().unwrap());
        // SAFETY: a private memfd of this test, mapped once, nothing else resizes it.
        #[allow(unsafe_code)]
        let mut map = unsafe { MmapMut::map_mut(&file) }.unwrap();
        map[0] = 1;
        // A writable mapping makes the kernel refuse the write seal (EBUSY), as a transient page
        // reference does; it goes away while the sealer waits.
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(60));
            drop(map);
        });
        seal_read_only(&fd).unwrap();
        holder.join().unwrap();
        assert!(rustix::fs::fcntl_get_seals(&fd)
            .unwrap()
            .contains(SealFlags::WRITE));

        // A mapping that never goes away: a busy error after the retries, not a hang.
        let fd = rustix::fs::memfd_create("kept", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        let file = File::from(fd.try_clone().unwrap());
        // SAFETY: as above.
        #[allow(unsafe_code)]
        let _kept = unsafe { MmapMut::map_mut(&file) }.unwrap();
        assert_eq!(seal_read_only(&fd), Err(rustix::io::Errno::BUSY));
    }

    #[test]
    fn allocate_fill_seal_attach() {
        let mut a = ParentAllocator::new("P", 1 << 30);
        let id = a.alloc("mesh", ElementType::F64, &[4, 2]).unwrap();
        match SegmentAllocator::buffer(&mut a, id) {
            ROk(mut b) => {
                let s = b.as_mut_slice();
                assert_eq!(s.len(), 64);
                for (i, x) in s.chunks_mut(8).enumerate() {
                    x.copy_from_slice(&(i as f64).to_ne_bytes());
                }
            }
            RErr(e) => panic!("{e}"),
        }
        assert!(a.alloc("mesh", ElementType::F64, &[1]).is_err());
        let segs = a.seal().unwrap();
        let entry = segs[0].entry();
        // Attach through a duplicate fd, as a worker would through an inherited one.
        let dup = rustix::io::fcntl_dupfd_cloexec(&segs[0].fd, 100).unwrap();
        let mut e2 = entry.clone();
        e2.fd = dup.as_raw_fd();
        std::mem::forget(dup);
        let views = attach(&[e2]).unwrap();
        let v = views[0].view::<f64>().unwrap();
        assert_eq!(v.shape(), &[4, 2]);
        assert_eq!(v[[3, 1]], 7.0);
        assert!(views[0].as_slice::<f32>().is_err());
        // Sealed: writing through the fd fails.
        let f = File::from(segs[0].fd.try_clone().unwrap());
        use std::os::unix::fs::FileExt;
        assert!(f.write_at(&[1], 0).is_err());
    }

    #[test]
    fn over_budget_fails_with_sizes() {
        let mut a = ParentAllocator::new("Solver", 1000);
        let e = a.alloc("mesh", ElementType::F64, &[1000]).unwrap_err();
        assert!(
            e.message().contains("Solver") && e.message().contains("mesh"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn memory_margins() {
        use std::ffi::OsStr;
        assert_eq!(parse_margin(None), Ok(512 << 20));
        assert_eq!(parse_margin(Some(OsStr::new(" 64 "))), Ok(64 << 20));
        assert_eq!(parse_margin(Some(OsStr::new("0"))), Ok(0));
        let max_ok = u64::MAX >> 20;
        assert_eq!(
            parse_margin(Some(OsStr::new(&max_ok.to_string()))),
            Ok(max_ok << 20)
        );
        assert_eq!(
            parse_margin(Some(OsStr::new(&(max_ok + 1).to_string()))),
            Err(MemoryError::TooLarge(max_ok + 1))
        );
        for bad in ["-1", "1.5", "512MiB", "", "18446744073709551616"] {
            let e = parse_margin(Some(OsStr::new(bad))).unwrap_err();
            assert!(e.to_string().contains(MARGIN_VAR), "{e}");
        }
    }

    #[test]
    fn meminfo() {
        let t =
            "MemTotal:       32000000 kB\nMemFree:         1000 kB\nMemAvailable:   22877456 kB\n";
        assert_eq!(meminfo_available(t), Some(22877456 * 1024));
        assert_eq!(meminfo_available("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn cgroup_v2_fixture() {
        let mountinfo = "24 30 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n\
                         30 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n";
        let mounts = parse_mountinfo(mountinfo);
        assert_eq!(
            mounts,
            vec![CgroupMount {
                root: "/".into(),
                mount_point: "/sys/fs/cgroup".into(),
                v2: true
            }]
        );
        let (v2, v1) =
            parse_proc_cgroup("0::/system.slice/slurmstepd.scope/job_42/step_0/user/task_0\n");
        assert_eq!(v1, None);
        let dirs = cgroup_dirs(&mounts[0], v2.as_deref().unwrap());
        assert_eq!(
            dirs.first().unwrap(),
            Path::new("/sys/fs/cgroup/system.slice/slurmstepd.scope/job_42/step_0/user/task_0")
        );
        assert!(dirs.contains(
            &Path::new("/sys/fs/cgroup/system.slice/slurmstepd.scope/job_42").to_path_buf()
        ));
        assert_eq!(dirs.last().unwrap(), Path::new("/sys/fs/cgroup"));
        // A job limited to 4 GiB using 3 GiB of which 512 MiB is reclaimable page cache.
        let stat =
            "anon 2684354560\nfile 805306368\ninactive_file 536870912\nactive_file 268435456\n";
        assert_eq!(
            cgroup_headroom_of("4294967296\n", "3221225472\n", stat),
            Some((4u64 << 30) - (3u64 << 30) + (512 << 20))
        );
        assert_eq!(cgroup_headroom_of("max\n", "3221225472\n", stat), None);
        // Over the limit: no headroom, never an underflow.
        assert_eq!(cgroup_headroom_of("1000", "5000", ""), Some(0));
    }

    #[test]
    fn cgroup_v1_fixture() {
        let mountinfo = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                         32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                         35 31 0:32 /slurm /sys/fs/cgroup/memory\\040x rw,relatime - cgroup cgroup rw,memory\n\
                         41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let mounts = parse_mountinfo(mountinfo);
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].mount_point, Path::new("/sys/fs/cgroup/memory x"));
        assert!(!mounts[0].v2 && mounts[1].v2);
        let own =
            "9:name=systemd:/\n4:memory:/slurm/uid_1000/job_7/step_batch\n1:cpu,cpuacct:/\n0::/\n";
        let (v2, v1) = parse_proc_cgroup(own);
        assert_eq!(v2.as_deref(), Some("/"));
        assert_eq!(v1.as_deref(), Some("/slurm/uid_1000/job_7/step_batch"));
        // The mount's root (/slurm) is stripped from the process's path.
        let dirs = cgroup_dirs(&mounts[0], v1.as_deref().unwrap());
        assert_eq!(
            dirs[0],
            Path::new("/sys/fs/cgroup/memory x/uid_1000/job_7/step_batch")
        );
        assert_eq!(dirs.len(), 4);
        assert_eq!(
            cgroup_dirs(&mounts[1], "/"),
            vec![PathBuf::from("/sys/fs/cgroup/unified")]
        );
        let stat = "cache 100\nrss 200\ninactive_file 50\ntotal_inactive_file 80\n";
        assert_eq!(
            cgroup_headroom_of("1000", "400", stat),
            Some(1000 - (400 - 80))
        );
        // 2^63 rounded down to a 4 KiB page: no limit.
        assert_eq!(cgroup_headroom_of("9223372036854771712", "400", stat), None);
        assert_eq!(cgroup_headroom_of("garbage", "400", stat), None);
    }

    #[test]
    fn this_machine_reads() {
        // Whatever the machine: never more than MemAvailable nor the cgroup's headroom (both
        // read once: MemAvailable moves while other tests run).
        let host = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| meminfo_available(&t));
        let cgroup = cgroup_headroom();
        let all = combined_available(host, cgroup);
        assert_eq!(all.is_some(), host.is_some() || cgroup.is_some());
        for bound in [host, cgroup].into_iter().flatten() {
            assert!(all.unwrap() <= bound, "{all:?} > {bound}");
        }
        assert!(mem_available().is_some() || all.is_none());
    }
}
