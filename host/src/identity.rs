//! What identifies code and data by content: plugin libraries (their GNU build id, or a hash
//! of the whole file), the `spyral` executable (which carries the built-in phases), and artifact
//! files (a BLAKE3 hash of their bytes).
//!
//! These identities are what provenance records compare (see `provenance`): a plugin rebuilt
//! with changed code but the same version gets a new identity, and an artifact replaced by
//! different bytes gets a new content hash, so everything that depended on it becomes stale.

use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Identity of a plugin library as provenance records and worker jobs carry it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LibraryId {
    /// The library's declared crate name.
    pub name: String,
    /// Its declared version.
    pub version: String,
    /// Where it was loaded from; `None` for the built-in phases linked into `spyral`.
    pub path: Option<PathBuf>,
    /// What its code is: `build-id:<hex>` (the GNU build id the linker derives from the linked
    /// bytes) or `blake3:<hex>` of the whole file when it has none. For the built-in phases it
    /// is the identity of the `spyral` executable.
    pub code: String,
}

impl std::fmt::Display for LibraryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} [{}]", self.name, self.version, short(&self.code))
    }
}

/// `build-id:0123456789ab` from a long identity, for messages.
pub fn short(code: &str) -> String {
    match code.split_once(':') {
        Some((kind, hex)) => format!("{kind}:{}", &hex[..hex.len().min(12)]),
        None => code.chars().take(20).collect(),
    }
}

/// The BLAKE3 hash of the bytes of `path`, as `blake3:<hex>`.
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(format!("blake3:{}", h.finalize().to_hex()))
}

/// The code identity of a shared library or executable: its GNU build id when it has one
/// (read from the ELF notes, microseconds), else the hash of the whole file.
pub fn code_identity(path: &Path) -> std::io::Result<String> {
    match build_id(path) {
        Some(id) => Ok(format!("build-id:{id}")),
        None => file_hash(path),
    }
}

/// The code identity of the running `spyral` executable (the built-in phases' identity),
/// computed once per process from `/proc/self/exe`, which names the running file even when
/// the path it was started from has since been replaced.
pub fn exe_identity() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        code_identity(Path::new("/proc/self/exe"))
            .or_else(|_| {
                std::env::current_exe()
                    .and_then(|p| code_identity(&p))
                    .map_err(|e| e.to_string())
            })
            .unwrap_or_else(|e| format!("unknown:{e}"))
    })
}

/// The GNU build id (hex) of the ELF file at `path`, if it has one.
pub fn build_id(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut head = [0u8; 64];
    f.read_exact(&mut head).ok()?;
    let elf = ElfHeader::parse(&head)?;
    let mut table = vec![0u8; elf.phnum * elf.phentsize];
    read_at(&mut f, elf.phoff, &mut table)?;
    for i in 0..elf.phnum {
        let ph = &table[i * elf.phentsize..(i + 1) * elf.phentsize];
        const PT_NOTE: u32 = 4;
        if elf.u32(&ph[0..4]) != PT_NOTE {
            continue;
        }
        let (offset, size) = if elf.is64 {
            (elf.u64(&ph[8..16]), elf.u64(&ph[32..40]))
        } else {
            (
                u64::from(elf.u32(&ph[4..8])),
                u64::from(elf.u32(&ph[16..20])),
            )
        };
        if size > 1 << 20 {
            continue;
        }
        let mut notes = vec![0u8; size as usize];
        read_at(&mut f, offset, &mut notes)?;
        if let Some(id) = find_build_id(&elf, &notes) {
            return Some(id);
        }
    }
    None
}

struct ElfHeader {
    is64: bool,
    little: bool,
    phoff: u64,
    phentsize: usize,
    phnum: usize,
}

impl ElfHeader {
    fn parse(h: &[u8; 64]) -> Option<ElfHeader> {
        if &h[0..4] != b"\x7fELF" {
            return None;
        }
        let is64 = match h[4] {
            1 => false,
            2 => true,
            _ => return None,
        };
        let little = match h[5] {
            1 => true,
            2 => false,
            _ => return None,
        };
        let mut e = ElfHeader {
            is64,
            little,
            phoff: 0,
            phentsize: 0,
            phnum: 0,
        };
        if is64 {
            e.phoff = e.u64(&h[32..40]);
            e.phentsize = usize::from(e.u16(&h[54..56]));
            e.phnum = usize::from(e.u16(&h[56..58]));
        } else {
            e.phoff = u64::from(e.u32(&h[28..32]));
            e.phentsize = usize::from(e.u16(&h[42..44]));
            e.phnum = usize::from(e.u16(&h[44..46]));
        }
        let min = if is64 { 56 } else { 32 };
        (e.phentsize >= min && e.phnum > 0 && e.phnum < 4096).then_some(e)
    }
    fn u16(&self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        if self.little {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        }
    }
    fn u32(&self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    }
    fn u64(&self, b: &[u8]) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        if self.little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        }
    }
}

fn read_at(f: &mut std::fs::File, offset: u64, buf: &mut [u8]) -> Option<()> {
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(offset)).ok()?;
    f.read_exact(buf).ok()
}

/// Walks a PT_NOTE segment for the `GNU` note of type 3 (NT_GNU_BUILD_ID).
fn find_build_id(elf: &ElfHeader, notes: &[u8]) -> Option<String> {
    let align4 = |n: usize| (n + 3) & !3;
    let mut at = 0usize;
    while at + 12 <= notes.len() {
        let namesz = elf.u32(&notes[at..at + 4]) as usize;
        let descsz = elf.u32(&notes[at + 4..at + 8]) as usize;
        let kind = elf.u32(&notes[at + 8..at + 12]);
        let name_at = at + 12;
        let desc_at = name_at.checked_add(align4(namesz))?;
        let end = desc_at.checked_add(align4(descsz))?;
        if desc_at + descsz > notes.len() {
            return None;
        }
        const NT_GNU_BUILD_ID: u32 = 3;
        if kind == NT_GNU_BUILD_ID && namesz == 4 && &notes[name_at..name_at + 4] == b"GNU\0" {
            let desc = &notes[desc_at..desc_at + descsz];
            if desc.is_empty() {
                return None;
            }
            return Some(desc.iter().map(|b| format!("{b:02x}")).collect());
        }
        at = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_executable_has_a_code_identity() {
        // Test binaries are linked like any other: on Debian's toolchain they carry a build id.
        let id = exe_identity();
        assert!(
            id.starts_with("build-id:") || id.starts_with("blake3:"),
            "{id}"
        );
        assert_eq!(id, exe_identity());
    }

    #[test]
    fn file_hash_changes_with_content_and_non_elf_has_no_build_id() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"one").unwrap();
        let h1 = file_hash(&a).unwrap();
        std::fs::write(&a, b"two").unwrap();
        let h2 = file_hash(&a).unwrap();
        assert_ne!(h1, h2);
        assert!(h1.starts_with("blake3:") && h1.len() == 7 + 64);
        assert_eq!(build_id(&a), None);
        assert_eq!(code_identity(&a).unwrap(), h2);
        // A truncated ELF header is not an ELF.
        std::fs::write(&a, b"\x7fELF\x02\x01").unwrap();
        assert_eq!(build_id(&a), None);
    }

    #[test]
    fn build_id_matches_readelf_layout() {
        // A hand-made ELF64 with one PT_NOTE holding a GNU build id.
        let mut f = vec![0u8; 64];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        f[54..56].copy_from_slice(&56u16.to_le_bytes()); // phentsize
        f[56..58].copy_from_slice(&1u16.to_le_bytes()); // phnum
        let note_off = 64 + 56;
        let mut ph = vec![0u8; 56];
        ph[0..4].copy_from_slice(&4u32.to_le_bytes());
        ph[8..16].copy_from_slice(&(note_off as u64).to_le_bytes());
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&3u32.to_le_bytes());
        note.extend_from_slice(&3u32.to_le_bytes());
        note.extend_from_slice(b"GNU\0");
        note.extend_from_slice(&[0xab, 0xcd, 0xef, 0]);
        ph[32..40].copy_from_slice(&(note.len() as u64).to_le_bytes());
        f.extend_from_slice(&ph);
        f.extend_from_slice(&note);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.so");
        std::fs::write(&p, &f).unwrap();
        assert_eq!(build_id(&p).as_deref(), Some("abcdef"));
        assert_eq!(code_identity(&p).unwrap(), "build-id:abcdef");
    }
}
