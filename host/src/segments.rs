//! Shared read-only segments: anonymous memory files (`memfd_create`) that a phase fills in the
//! parent and every worker maps read-only.
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
    /// The memfd (kept open for the workers to inherit).
    pub fd: OwnedFd,
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
        }
    }
}

/// The host's allocator for one phase's `create_shared_data`.
pub struct ParentAllocator {
    phase: String,
    budget: u64,
    pending: Vec<(SegmentInfo, OwnedFd, MmapMut)>,
}

/// Parses `MemAvailable` from /proc/meminfo, in bytes.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
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
        }
    }

    fn alloc(
        &mut self,
        name: &str,
        element: ElementType,
        shape: &[u64],
    ) -> Result<u32, PhaseError> {
        if self.pending.iter().any(|(i, _, _)| i.name.as_str() == name) {
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
                "phase {} wants shared segment `{name}` of {} but only {} of memory is available for segments (MemAvailable minus the safety margin, {} already allocated)",
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
    pub fn seal(self) -> Result<Vec<Segment>, PhaseError> {
        let mut out = Vec::new();
        for (info, fd, map) in self.pending {
            map.flush().ok();
            drop(map);
            rustix::fs::fcntl_add_seals(
                &fd,
                SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
            )
            .map_err(|e| PhaseError::io(format!("cannot seal segment `{}`: {e}", info.name)))?;
            out.push(Segment { info, fd });
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
}

fn element_from_name(name: &str) -> Option<ElementType> {
    use ElementType::*;
    [U8, I8, U16, I16, U32, I32, U64, I64, F32, F64]
        .into_iter()
        .find(|e| e.name() == name)
}

/// Maps the inherited segments read-only. The mappings (and infos) are leaked on purpose: they
/// live as long as the worker process.
pub fn attach(entries: &[SegmentEntry]) -> Result<Vec<SharedSegment<'static>>, String> {
    let mut out = Vec::new();
    for e in entries {
        let element = element_from_name(&e.element)
            .ok_or_else(|| format!("segment `{}`: unknown element type {}", e.name, e.element))?;
        // SAFETY: the parent passed us this descriptor number for an inherited memfd that this
        // worker owns from here on; nothing else in the worker uses that number.
        let fd: OwnedFd = unsafe { <OwnedFd as rustix::fd::FromRawFd>::from_raw_fd(e.fd) };
        let seals = rustix::fs::fcntl_get_seals(fd.as_fd()).map_err(|err| {
            format!(
                "segment `{}` (fd {}): not a sealed memfd: {err}",
                e.name, e.fd
            )
        })?;
        if !seals.contains(SealFlags::WRITE | SealFlags::SHRINK) {
            return Err(format!("segment `{}` is not sealed read-only", e.name));
        }
        let file = File::from(fd);
        let bytes: &'static [u8] = if e.len == 0 {
            &[]
        } else {
            // SAFETY: the memfd is sealed against writes and shrinking (checked above), so its
            // contents and size cannot change while mapped.
            let map = unsafe { Mmap::map(&file) }
                .map_err(|err| format!("cannot map segment `{}`: {err}", e.name))?;
            if map.len() as u64 != e.len {
                return Err(format!(
                    "segment `{}`: {} bytes mapped, {} expected",
                    e.name,
                    map.len(),
                    e.len
                ));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
