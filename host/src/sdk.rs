//! The plugin SDK this `spyral` carries: the sources of the crates a phase plugin builds against
//! (spyral-core, ...) and the lock file of their dependencies, packed by `build.rs` into the
//! binary and installed on demand into a versioned folder that generated plugin crates depend on
//! by path (`spyral sdk`, `spyral new-phase`).
//!
//! Where: `$SPYRAL_SDK_DIR/<version>-<hash>/`, else `$XDG_DATA_HOME/spyral/sdk/<version>-<hash>/`,
//! else `~/.local/share/spyral/sdk/<version>-<hash>/`; `<hash>` is the first 12 hex digits of the
//! BLAKE3 hash of the archive, so two spyral builds with different SDK sources never share a folder.
//!
//! Installing is atomic: the files are written to a temporary sibling folder that is renamed into
//! place, so the folder is either absent or complete. An existing folder is reused when every file
//! matches the archive (files it does not know, such as a `target/`, are ignored); a folder with a
//! missing or different file is moved aside and replaced. Concurrent installs are safe: the first
//! rename wins and the others find a complete folder.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The compressed archive written by `build.rs`.
const ARCHIVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sdk.bin"));
/// First line of the uncompressed archive.
const MAGIC: &[u8] = b"SPYRAL-SDK 1\n";
/// The file in an installed folder that says the install finished (holds the SDK id).
pub const MARKER: &str = ".spyral-sdk";

/// Errors while reading or installing the SDK.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The embedded archive cannot be read (a broken build).
    #[error("the SDK archive inside this spyral is damaged: {0}")]
    Archive(String),
    /// No folder to install into.
    #[error(
        "cannot choose where to install the plugin SDK: set SPYRAL_SDK_DIR, XDG_DATA_HOME or HOME"
    )]
    NoHome,
    /// A file operation failed.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// File or folder.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Other installers kept replacing the folder.
    #[error("could not install the plugin SDK into {0}: it kept changing while installing (another spyral?); try again")]
    Contended(PathBuf),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SdkError + 'a {
    move |source| SdkError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// One SDK crate: package name and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkCrate {
    /// Package name, also its folder in the SDK (`spyral-core`).
    pub name: String,
    /// Version.
    pub version: String,
}

/// The SDK as carried by this binary.
#[derive(Debug)]
pub struct Sdk {
    files: Vec<(String, Vec<u8>)>,
    hash: String,
}

/// An installed SDK.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Its folder (`.../<version>-<hash>`).
    pub dir: PathBuf,
    /// Whether this call wrote it (false: a complete install was already there).
    pub fresh: bool,
}

impl Sdk {
    /// Decompresses and reads the embedded archive.
    pub fn embedded() -> Result<Sdk, SdkError> {
        Sdk::from_archive(ARCHIVE)
    }

    /// Reads a compressed archive in `build.rs`'s format.
    pub fn from_archive(compressed: &[u8]) -> Result<Sdk, SdkError> {
        let mut payload = Vec::new();
        flate2::read::ZlibDecoder::new(compressed)
            .read_to_end(&mut payload)
            .map_err(|e| SdkError::Archive(e.to_string()))?;
        let hash = blake3::hash(&payload).to_hex()[..12].to_string();
        let mut rest = payload
            .strip_prefix(MAGIC)
            .ok_or_else(|| SdkError::Archive("unknown format".into()))?;
        let mut files = Vec::new();
        while !rest.is_empty() {
            let line_end = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or_else(|| SdkError::Archive("truncated header".into()))?;
            let header = std::str::from_utf8(&rest[..line_end])
                .map_err(|_| SdkError::Archive("header is not UTF-8".into()))?;
            let (path, len) = header
                .split_once('\t')
                .ok_or_else(|| SdkError::Archive(format!("bad header {header:?}")))?;
            let len: usize = len
                .parse()
                .map_err(|_| SdkError::Archive(format!("bad length in {header:?}")))?;
            let safe = !path.is_empty()
                && Path::new(path)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !safe {
                return Err(SdkError::Archive(format!("unsafe path {path:?}")));
            }
            let body = &rest[line_end + 1..];
            if body.len() < len {
                return Err(SdkError::Archive(format!("{path} is truncated")));
            }
            files.push((path.to_string(), body[..len].to_vec()));
            rest = &body[len..];
        }
        Ok(Sdk { files, hash })
    }

    /// The SDK crates (name and version), in dependency order.
    pub fn crates() -> Vec<SdkCrate> {
        env!("SPYRAL_SDK_CRATES")
            .split(';')
            .filter_map(|c| c.split_once(' '))
            .map(|(name, version)| SdkCrate {
                name: name.to_string(),
                version: version.to_string(),
            })
            .collect()
    }

    /// The SDK version (spyral-core's).
    pub fn version() -> &'static str {
        env!("SPYRAL_SDK_VERSION")
    }

    /// `<version>-<hash>`: the name of its install folder.
    pub fn id(&self) -> String {
        format!("{}-{}", Sdk::version(), self.hash)
    }

    /// Its files (archive path, content), sorted by path.
    pub fn files(&self) -> &[(String, Vec<u8>)] {
        &self.files
    }

    /// One file's content.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b.as_slice())
    }

    /// Whether `dir` holds a complete, unmodified install of this SDK.
    pub fn is_installed_in(&self, dir: &Path) -> bool {
        let marker = std::fs::read_to_string(dir.join(MARKER)).unwrap_or_default();
        marker.trim() == self.id()
            && self
                .files
                .iter()
                .all(|(path, bytes)| std::fs::read(dir.join(path)).is_ok_and(|b| b == *bytes))
    }

    /// Installs into `base/<id>` unless a complete install is there; returns the folder.
    pub fn install(&self, base: &Path) -> Result<Installed, SdkError> {
        let dest = base.join(self.id());
        for _ in 0..8 {
            if self.is_installed_in(&dest) {
                return Ok(Installed {
                    dir: dest,
                    fresh: false,
                });
            }
            std::fs::create_dir_all(base).map_err(io("create", base))?;
            let tmp = unique(base, &format!(".{}.tmp", self.id()));
            if let Err(e) = self.write_into(&tmp) {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
            // A damaged install is moved aside (one rename) before ours takes its place.
            if dest.exists() && !self.is_installed_in(&dest) {
                let old = unique(base, &format!(".{}.old", self.id()));
                if std::fs::rename(&dest, &old).is_ok() {
                    let _ = std::fs::remove_dir_all(&old);
                }
            }
            match std::fs::rename(&tmp, &dest) {
                Ok(()) => {
                    return Ok(Installed {
                        dir: dest,
                        fresh: true,
                    })
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    // Another installer got there first (non-empty folder): check theirs.
                    if !dest.exists() {
                        return Err(io("install the SDK into", &dest)(e));
                    }
                }
            }
        }
        Err(SdkError::Contended(dest))
    }

    fn write_into(&self, dir: &Path) -> Result<(), SdkError> {
        std::fs::create_dir(dir).map_err(io("create", dir))?;
        for (path, bytes) in &self.files {
            let file = dir.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(io("create", parent))?;
            }
            std::fs::write(&file, bytes).map_err(io("write", &file))?;
        }
        let marker = dir.join(MARKER);
        std::fs::write(&marker, format!("{}\n", self.id())).map_err(io("write", &marker))
    }
}

/// A fresh sibling name: `<base>/<prefix>-<pid>-<counter>-<nanos>`.
fn unique(base: &Path, prefix: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    base.join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()))
}

/// The folder SDK versions are installed under, from the environment (see the module docs).
pub fn default_base() -> Result<PathBuf, SdkError> {
    let var = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(dir) = var("SPYRAL_SDK_DIR") {
        return Ok(dir);
    }
    let data = var("XDG_DATA_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".local/share")))
        .ok_or(SdkError::NoHome)?;
    Ok(data.join("spyral/sdk"))
}

/// Installs the embedded SDK under [`default_base`] (or reuses it) and returns its folder.
pub fn install_default() -> Result<Installed, SdkError> {
    Sdk::embedded()?.install(&default_base()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sdk_is_standalone() {
        let sdk = Sdk::embedded().unwrap();
        let crates = Sdk::crates();
        assert_eq!(crates[0].name, "spyral-core");
        for c in &crates {
            let manifest =
                std::str::from_utf8(sdk.file(&format!("{}/Cargo.toml", c.name)).unwrap()).unwrap();
            assert!(!manifest.contains("workspace = true"), "{manifest}");
            assert!(manifest.contains(&format!("version = \"{}\"", c.version)));
            assert!(sdk.file(&format!("{}/src/lib.rs", c.name)).is_some());
        }
        assert!(sdk.file("Cargo.lock").is_some());
        // Nothing of the tree it was built from.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for (path, bytes) in sdk.files() {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains(&*root.to_string_lossy()),
                "{path} names the build tree"
            );
        }
    }

    #[test]
    fn installs_once_reuses_and_repairs() {
        let sdk = Sdk::embedded().unwrap();
        let base = tempfile::tempdir().unwrap();
        let first = sdk.install(base.path()).unwrap();
        assert!(first.fresh);
        assert_eq!(first.dir, base.path().join(sdk.id()));
        assert!(sdk.is_installed_in(&first.dir));
        // A build folder left by the user does not count as damage.
        std::fs::create_dir(first.dir.join("target")).unwrap();
        assert!(!sdk.install(base.path()).unwrap().fresh);
        // A changed file is repaired.
        std::fs::write(first.dir.join("spyral-core/src/lib.rs"), "broken").unwrap();
        let again = sdk.install(base.path()).unwrap();
        assert!(again.fresh);
        assert!(sdk.is_installed_in(&again.dir));
        // Only the install folder is left behind.
        let names: Vec<_> = std::fs::read_dir(base.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(sdk.id())]);
    }

    #[test]
    fn concurrent_installs_agree() {
        let base = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| Sdk::embedded().unwrap().install(base.path()).unwrap().dir))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let sdk = Sdk::embedded().unwrap();
        assert!(dirs.iter().all(|d| *d == base.path().join(sdk.id())));
        assert!(sdk.is_installed_in(&dirs[0]));
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 1);
    }

    #[test]
    fn damaged_archives_are_refused() {
        assert!(matches!(
            Sdk::from_archive(b"nope"),
            Err(SdkError::Archive(_))
        ));
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut z, b"SPYRAL-SDK 1\n../evil\t1\nx").unwrap();
        let bad = z.finish().unwrap();
        assert!(
            matches!(Sdk::from_archive(&bad), Err(SdkError::Archive(m)) if m.contains("unsafe"))
        );
    }
}
