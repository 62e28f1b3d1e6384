//! Plugin libraries: finding, loading, checking and listing them.
//!
//! Libraries are loaded with `lib_header_from_path(..).init_root_module()` (never
//! `load_from_file`, which caches one module per interface type and would hand back the first
//! library for every later path) and are never unloaded. abi_stable checks the version and the
//! layout of the whole interface; a refused library gets a short message (file, expected and
//! found versions, last lines of the layout report); the full report is kept in the error, printed
//! by `spyral plugins PATH` and written once into a launch's log folder.
//!
//! Search order for a phase kind: libraries named in the pipeline, then `SPYRAL_PLUGIN_PATH`,
//! then the built-in phases linked into `spyral`, then the executable's folder.

use crate::identity::LibraryId;
use abi_stable::library::{lib_header_from_path, LibraryError};
use spyral_core::{
    bridge::{HostBridge, HostBridge_TO},
    plugin::{PhaseKindInfo, PluginInfo, PluginModRef},
    LogLevel, PhaseBox, PhaseError,
};
use std::path::{Path, PathBuf};

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("source", &self.source)
            .field("info", &self.info)
            .finish()
    }
}

/// Errors while loading plugin libraries.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file does not exist.
    #[error("plugin library {0} does not exist")]
    Missing(PathBuf),
    /// The file could not be opened as a shared library.
    #[error("cannot open plugin library {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// dlopen's message.
        reason: String,
    },
    /// The file is a shared library but not a Spyral plugin.
    #[error("{0} is not a Spyral plugin library (it exports no abi_stable root module)")]
    NotAPlugin(PathBuf),
    /// Built against an incompatible spyral-core version.
    #[error("plugin library {path} was built against spyral-core {found}, but this spyral expects {expected}; rebuild the plugin against spyral-core {expected}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Version this host expects.
        expected: String,
        /// Version the library was built against.
        found: String,
    },
    /// The interface layout differs (the contract changed between the two builds).
    #[error("plugin library {path} does not match this spyral's plugin interface ({versions}); rebuild it against this spyral-core.\n  last lines of the layout report:\n{tail}\n  full report: `spyral plugins {path}` prints it")]
    Layout {
        /// The file.
        path: PathBuf,
        /// What the versions say (`both built against spyral-core 0.2.0, with different
        /// sources or rustc 1.95.0 vs 1.94.0`).
        versions: String,
        /// Last lines of abi_stable's report.
        tail: String,
        /// abi_stable's whole report.
        full: String,
    },
    /// Any other loader error.
    #[error("cannot load plugin library {path}: {reason}")]
    Other {
        /// The file.
        path: PathBuf,
        /// The loader's message (shortened).
        reason: String,
    },
    /// No library provides the kind.
    #[error("unknown phase kind `{kind}`{at}; known kinds: {known}{hint}")]
    UnknownKind {
        /// The kind asked for.
        kind: String,
        /// Where it was asked for (`" (pipeline.yaml:12)"`).
        at: String,
        /// Known kinds.
        known: String,
        /// Extra hint (refused libraries).
        hint: String,
    },
}

impl PluginError {
    /// The library file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            PluginError::Missing(p) | PluginError::NotAPlugin(p) => Some(p),
            PluginError::Open { path, .. }
            | PluginError::Version { path, .. }
            | PluginError::Layout { path, .. }
            | PluginError::Other { path, .. } => Some(path),
            PluginError::UnknownKind { .. } => None,
        }
    }
    /// abi_stable's whole layout report, when the layout was the reason.
    pub fn full_report(&self) -> Option<&str> {
        match self {
            PluginError::Layout { full, .. } => Some(full),
            _ => None,
        }
    }
}

/// Where a library came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Linked into `spyral`.
    Builtin,
    /// Loaded from a file.
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Builtin => f.write_str("(built in)"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A loaded library.
pub struct Library {
    /// Where it came from.
    pub source: Source,
    /// Its root module.
    pub module: PluginModRef,
    /// What it says about itself.
    pub info: PluginInfo,
    /// What identifies its code (provenance and worker jobs carry it).
    pub id: LibraryId,
    /// Found by scanning a folder (not named in the pipeline or `SPYRAL_PLUGIN_PATH` as a file).
    pub scanned: bool,
}

impl Library {
    /// Makes a phase of `kind` named `name` from JSON `config`.
    pub fn new_phase(&self, kind: &str, name: &str, config: &str) -> Result<PhaseBox, PhaseError> {
        (self.module.new_phase())(kind.into(), name.into(), config.into()).into_result()
    }
    /// The JSON Schema text of `kind`'s configuration, when the library describes it (None for
    /// libraries built before spyral-core carried the `config_schema` entry point).
    pub fn config_schema(&self, kind: &str) -> Option<String> {
        let get = self.module.config_schema()?;
        get(kind.into()).into_option().map(String::from)
    }
    /// The kind info of `kind`, if this library provides it.
    pub fn kind(&self, kind: &str) -> Option<&PhaseKindInfo> {
        self.info.kinds.iter().find(|k| k.kind.as_str() == kind)
    }
}

/// Forwards a plugin's events into the host's tracing.
struct Bridge {
    library: String,
}

impl HostBridge for Bridge {
    fn max_level(&self) -> LogLevel {
        let level = tracing::level_filters::LevelFilter::current();
        if level >= tracing::level_filters::LevelFilter::TRACE {
            LogLevel::Trace
        } else if level >= tracing::level_filters::LevelFilter::DEBUG {
            LogLevel::Debug
        } else if level >= tracing::level_filters::LevelFilter::INFO {
            LogLevel::Info
        } else if level >= tracing::level_filters::LevelFilter::WARN {
            LogLevel::Warn
        } else {
            LogLevel::Error
        }
    }
    fn event(
        &self,
        level: LogLevel,
        target: abi_stable::std_types::RStr<'_>,
        message: abi_stable::std_types::RStr<'_>,
    ) {
        let (lib, target, msg) = (&self.library, target.as_str(), message.as_str());
        match level {
            LogLevel::Error => tracing::error!(plugin = %lib, target = %target, "{msg}"),
            LogLevel::Warn => tracing::warn!(plugin = %lib, target = %target, "{msg}"),
            LogLevel::Info => tracing::info!(plugin = %lib, target = %target, "{msg}"),
            LogLevel::Debug => tracing::debug!(plugin = %lib, target = %target, "{msg}"),
            LogLevel::Trace => tracing::trace!(plugin = %lib, target = %target, "{msg}"),
        }
    }
}

/// Libraries of spyral's own test suite (built beside the binary in a development checkout):
/// never offered as kinds or reported as refused noise unless named explicitly.
pub const TEST_LIBRARIES: [&str; 3] = ["spyral-testkit", "abi-version", "abi-layout"];

/// Whether `name` (a library's declared crate name) is one of [`TEST_LIBRARIES`].
pub fn is_test_library(name: &str) -> bool {
    TEST_LIBRARIES.contains(&name)
}

/// Whether a library file is one of [`TEST_LIBRARIES`] (by its file name, for libraries that
/// could not be loaded).
pub fn is_test_library_file(path: &Path) -> bool {
    let stem = path
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .trim_start_matches("lib")
                .replace('_', "-")
        })
        .unwrap_or_default();
    is_test_library(&stem)
}

/// The known kind closest to `kind` (at most 2 edits, or a prefix), for "did you mean".
pub fn closest<'a>(kind: &str, known: &'a [String]) -> Option<&'a str> {
    let dist = |a: &str, b: &str| {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for i in 1..=a.len() {
            let mut cur = vec![i; b.len() + 1];
            for j in 1..=b.len() {
                let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
                cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    };
    known
        .iter()
        .map(|k| (dist(&kind.to_lowercase(), k), k))
        .filter(|(d, k)| *d <= 2 || (kind.len() >= 3 && k.starts_with(&kind.to_lowercase())))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// The crate name of the built-in phases library.
pub const BUILTIN_LIBRARY: &str = "spyral-phases";

/// The built-in library (the default AT-TPC phases).
pub fn builtin() -> Library {
    let module = spyral_phases::spyral_plugin_module();
    let info = (module.info())();
    let id = LibraryId {
        name: info.library_name.to_string(),
        version: info.library_version.to_string(),
        path: None,
        code: crate::identity::exe_identity().to_string(),
    };
    Library {
        source: Source::Builtin,
        module,
        info,
        id,
        scanned: false,
    }
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| {
            let l = l.trim_end();
            let l = if l.len() > 160 { &l[..160] } else { l };
            format!("    {l}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads the plugin library at `path`.
pub fn load(path: &Path) -> Result<Library, PluginError> {
    if !path.exists() {
        return Err(PluginError::Missing(path.to_path_buf()));
    }
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    // Identify the code before loading it, so what runs is what is recorded.
    let code = crate::identity::code_identity(&path).map_err(|e| PluginError::Open {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let expected = spyral_core::CORE_VERSION.to_string();
    let header = lib_header_from_path(&path).map_err(|e| match e {
        LibraryError::OpenError { err, .. } => PluginError::Open {
            path: path.clone(),
            reason: err.to_string(),
        },
        LibraryError::GetSymbolError { .. } => PluginError::NotAPlugin(path.clone()),
        other => PluginError::Other {
            path: path.clone(),
            reason: shorten(&other.to_string()),
        },
    })?;
    let found = header
        .root_mod_consts()
        .version_strings()
        .version
        .to_string();
    let module = header
        .init_root_module::<PluginModRef>()
        .map_err(|e| classify(&path, &expected, &found, e))?;
    let info = (module.info())();
    (module.install_bridge())(HostBridge_TO::from_value(
        Bridge {
            library: info.library_name.to_string(),
        },
        abi_stable::sabi_trait::TD_Opaque,
    ));
    tracing::debug!(
        "loaded plugin {} {} from {} (spyral-core {}, {})",
        info.library_name,
        info.library_version,
        path.display(),
        info.core_version,
        info.rustc_version
    );
    let id = LibraryId {
        name: info.library_name.to_string(),
        version: info.library_version.to_string(),
        path: Some(path.clone()),
        code,
    };
    Ok(Library {
        source: Source::File(path),
        module,
        info,
        id,
        scanned: false,
    })
}

fn shorten(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= 12 {
        text.to_string()
    } else {
        format!(
            "{}\n  ... ({} more lines)",
            lines[..12].join("\n"),
            lines.len() - 12
        )
    }
}

/// Whether two core versions are ABI-compatible by semver (same major; same minor for 0.x).
fn compatible(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split('.')
            .take(2)
            .map(|x| x.trim().parse().unwrap_or(u64::MAX))
            .collect()
    };
    let (a, b) = (parts(a), parts(b));
    match (a.first(), b.first()) {
        (Some(0), Some(0)) => a.get(1) == b.get(1),
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn classify(path: &Path, expected: &str, found: &str, e: LibraryError) -> PluginError {
    match e {
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => PluginError::Version {
            path: path.to_path_buf(),
            expected: expected_version.to_string(),
            found: actual_version.to_string(),
        },
        LibraryError::AbiInstability(_)
        | LibraryError::Many(_)
        | LibraryError::RootModule { .. }
            if !compatible(expected, found) =>
        {
            tracing::debug!("layout report for {}:\n{e}", path.display());
            PluginError::Version {
                path: path.to_path_buf(),
                expected: expected.to_string(),
                found: found.to_string(),
            }
        }
        LibraryError::AbiInstability(_)
        | LibraryError::Many(_)
        | LibraryError::RootModule { .. } => {
            let report = e.to_string();
            tracing::debug!("layout report for {}:\n{report}", path.display());
            let versions = if expected == found {
                format!(
                    "it was built against spyral-core {found} like this spyral, but from different sources: the plugin interface differs (a modified or pre-release spyral-core)"
                )
            } else {
                format!("built against spyral-core {found}, this spyral expects {expected}")
            };
            PluginError::Layout {
                path: path.to_path_buf(),
                versions,
                tail: tail_lines(&report, 8),
                full: report,
            }
        }
        other => PluginError::Other {
            path: path.to_path_buf(),
            reason: shorten(&other.to_string()),
        },
    }
}

/// Shared-library files (`*.so`) directly inside `dir`, sorted.
pub fn libraries_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "so" || x == "dylib"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The folders and files in `SPYRAL_PLUGIN_PATH` (colon separated).
pub fn env_paths() -> Vec<PathBuf> {
    std::env::var_os("SPYRAL_PLUGIN_PATH")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The folder of the running executable.
pub fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

/// All libraries available to a pipeline, in search order.
pub struct Registry {
    /// Libraries in search order.
    pub libraries: Vec<Library>,
    /// Libraries found while scanning folders but refused (shown when a kind is missing).
    pub refused: Vec<PluginError>,
}

impl Registry {
    /// Loads the explicitly named `paths` (files must load; folders are scanned), then
    /// `SPYRAL_PLUGIN_PATH`, the built-ins and, when `scan_exe_dir`, the executable's folder.
    pub fn build(paths: &[PathBuf], scan_exe_dir: bool) -> Result<Registry, PluginError> {
        Registry::build_with(paths, scan_exe_dir, &mut |_: &Path| {})
    }

    /// Like [`Registry::build`], announcing each library file before loading it (its
    /// initialisers are plugin code).
    pub fn build_with(
        paths: &[PathBuf],
        scan_exe_dir: bool,
        on_load: &mut dyn FnMut(&Path),
    ) -> Result<Registry, PluginError> {
        let mut reg = Registry {
            libraries: Vec::new(),
            refused: Vec::new(),
        };
        let mut seen: Vec<PathBuf> = Vec::new();
        for p in paths {
            if p.is_dir() {
                reg.scan(p, &mut seen, on_load);
            } else {
                on_load(p);
                let lib = load(p)?;
                if let Source::File(f) = &lib.source {
                    seen.push(f.clone());
                }
                reg.libraries.push(lib);
            }
        }
        for p in env_paths() {
            if p.is_dir() {
                reg.scan(&p, &mut seen, on_load);
            } else if p.exists() {
                on_load(&p);
                match load(&p) {
                    Ok(lib) => reg.libraries.push(lib),
                    Err(e) => reg.refused.push(e),
                }
            }
        }
        reg.libraries.push(builtin());
        if scan_exe_dir {
            if let Some(dir) = exe_dir() {
                reg.scan(&dir, &mut seen, on_load);
            }
        }
        Ok(reg)
    }

    fn scan(&mut self, dir: &Path, seen: &mut Vec<PathBuf>, on_load: &mut dyn FnMut(&Path)) {
        for file in libraries_in(dir) {
            let canon = std::fs::canonicalize(&file).unwrap_or(file.clone());
            if seen.contains(&canon) {
                continue;
            }
            seen.push(canon);
            on_load(&file);
            match load(&file) {
                Ok(mut lib) => {
                    lib.scanned = true;
                    // The built-in phases are already linked in; skip their cdylib twin.
                    if lib.info.library_name.as_str() == BUILTIN_LIBRARY {
                        continue;
                    }
                    self.libraries.push(lib)
                }
                Err(PluginError::NotAPlugin(_)) | Err(PluginError::Open { .. }) => {}
                Err(e) => {
                    tracing::debug!("{e}");
                    self.refused.push(e)
                }
            }
        }
    }

    /// Like [`Registry::build`], but scans the executable's folder only when some of `kinds`
    /// is not provided by the named libraries, `SPYRAL_PLUGIN_PATH` or the built-ins.
    pub fn build_for(paths: &[PathBuf], kinds: &[&str]) -> Result<Registry, PluginError> {
        Registry::build_for_with(paths, kinds, &mut |_: &Path| {})
    }

    /// Like [`Registry::build_for`], announcing each library file before loading it.
    pub fn build_for_with(
        paths: &[PathBuf],
        kinds: &[&str],
        on_load: &mut dyn FnMut(&Path),
    ) -> Result<Registry, PluginError> {
        let mut reg = Registry::build_with(paths, false, on_load)?;
        if kinds.iter().any(|k| reg.find(k).is_none()) {
            if let Some(dir) = exe_dir() {
                let mut seen: Vec<PathBuf> = reg
                    .libraries
                    .iter()
                    .filter_map(|l| match &l.source {
                        Source::File(f) => Some(f.clone()),
                        Source::Builtin => None,
                    })
                    .collect();
                reg.scan(&dir, &mut seen, on_load);
            }
        }
        Ok(reg)
    }

    /// The first library providing `kind`.
    pub fn find(&self, kind: &str) -> Option<(&Library, &PhaseKindInfo)> {
        self.libraries
            .iter()
            .find_map(|l| l.kind(kind).map(|k| (l, k)))
    }

    /// The error for a kind no library provides.
    pub fn unknown_kind(&self, kind: &str, at: String) -> PluginError {
        let mut known: Vec<String> = self
            .libraries
            .iter()
            .flat_map(|l| l.info.kinds.iter().map(|k| k.kind.to_string()))
            .collect();
        known.sort();
        known.dedup();
        // Test fixtures built beside the binary are not kinds a user should be offered.
        known.retain(|k| {
            !self.libraries.iter().any(|l| {
                l.scanned && is_test_library(l.info.library_name.as_str()) && l.kind(k).is_some()
            })
        });
        let refused: Vec<&PluginError> = self
            .refused
            .iter()
            .filter(|e| !e.path().is_some_and(is_test_library_file))
            .collect();
        let hint = if refused.is_empty() {
            String::new()
        } else {
            format!(
                "\n  (refused while searching: {})",
                refused
                    .iter()
                    .map(|e| e.to_string().lines().next().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        let suggestion = closest(kind, &known)
            .map(|k| format!("; did you mean `{k}`?"))
            .unwrap_or_default();
        PluginError::UnknownKind {
            kind: kind.to_string(),
            at: format!("{at}{suggestion}"),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
            hint,
        }
    }
}
