//! Packs the plugin SDK into the `spyral` binary: the sources of the crates a phase author builds
//! against (`SDK_CRATES`) and a lock file of their dependencies, as one compressed archive in
//! `OUT_DIR` that `src/sdk.rs` embeds with `include_bytes!` and installs on demand.
//!
//! The archive is deterministic (files in sorted order, no times, no owners) and refers to no path
//! of the tree it was built from: each crate's `Cargo.toml` is rewritten standalone (every
//! `workspace = true` replaced by the workspace's value, path dependencies between SDK crates
//! pointing at the sibling folder `../<package>`, dev-dependencies and test targets dropped), and a
//! build fails here, naming the file, if an SDK crate depends on a crate outside the SDK by path or
//! embeds a file from outside its own folder.
//!
//! Archive layout (before zlib compression): the line `SPYRAL-SDK 1`, then per file a line
//! `<path>\t<length>` followed by that many bytes. Paths are `<package>/<file>`, `Cargo.lock` and
//! `README.md`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use toml_edit::{DocumentMut, InlineTable, Item, Value};

/// The SDK crates, by folder in the workspace, in dependency order. Adding a crate is one line.
const SDK_CRATES: &[&str] = &["core", "data"];
/// The plugin `spyral new-phase` copies (its dependencies are resolved here too).
const TEMPLATE: &str = "plugins/charge-sum";

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("the host crate lives in a workspace folder")
        .to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let packer = Packer::new(&root);
    let sdk = packer.pack();

    let mut payload = b"SPYRAL-SDK 1\n".to_vec();
    for (path, bytes) in &sdk.files {
        assert!(
            !path.contains(['\t', '\n']),
            "SDK file name {path:?} has a tab or newline"
        );
        payload.extend_from_slice(format!("{path}\t{}\n", bytes.len()).as_bytes());
        payload.extend_from_slice(bytes);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&payload).expect("compress the SDK");
    let compressed = z.finish().expect("compress the SDK");
    std::fs::write(out.join("sdk.bin"), compressed).expect("write sdk.bin");
    std::fs::write(
        out.join("template-dependencies.toml"),
        packer.template_dependencies(),
    )
    .expect("write template-dependencies.toml");

    let crates: Vec<String> = sdk
        .crates
        .iter()
        .map(|(name, version)| format!("{name} {version}"))
        .collect();
    println!("cargo:rustc-env=SPYRAL_SDK_CRATES={}", crates.join(";"));
    println!("cargo:rustc-env=SPYRAL_SDK_VERSION={}", sdk.crates[0].1);
    println!("cargo:rerun-if-changed=build.rs");
    for watched in sdk.watched {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
}

/// What was packed.
struct Sdk {
    /// Archive path -> content, sorted.
    files: BTreeMap<String, Vec<u8>>,
    /// (package name, version) of each SDK crate, in `SDK_CRATES` order.
    crates: Vec<(String, String)>,
    /// Files and folders whose change must rebuild the archive.
    watched: Vec<PathBuf>,
}

struct Packer {
    root: PathBuf,
    workspace: DocumentMut,
    /// Canonical crate folder -> package name, for every SDK crate.
    names: BTreeMap<PathBuf, String>,
}

impl Packer {
    fn new(root: &Path) -> Packer {
        let workspace = read_toml(&root.join("Cargo.toml"));
        let mut names = BTreeMap::new();
        for dir in SDK_CRATES {
            let path = root.join(dir);
            let doc = read_toml(&path.join("Cargo.toml"));
            let name = doc["package"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{dir}/Cargo.toml has no package.name"))
                .to_string();
            names.insert(canonical(&path), name);
        }
        Packer {
            root: root.to_path_buf(),
            workspace,
            names,
        }
    }

    fn pack(&self) -> Sdk {
        let mut files = BTreeMap::new();
        let mut crates = Vec::new();
        let mut watched = vec![
            self.root.join("Cargo.toml"),
            self.root.join("Cargo.lock"),
            self.root.join(TEMPLATE).join("Cargo.toml"),
        ];
        for dir in SDK_CRATES {
            let src_dir = self.root.join(dir);
            let (name, version, manifest) = self.manifest(&src_dir);
            watched.push(src_dir.join("Cargo.toml"));
            files.insert(format!("{name}/Cargo.toml"), manifest.into_bytes());
            let mut sources = BTreeSet::new();
            collect(&src_dir.join("src"), &mut sources);
            for extra in ["build.rs", "README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
                if src_dir.join(extra).is_file() {
                    sources.insert(src_dir.join(extra));
                }
            }
            watched.push(src_dir.join("src"));
            if src_dir.join("build.rs").is_file() {
                watched.push(src_dir.join("build.rs"));
            }
            // Files the sources embed (`include_str!`, `include_bytes!`) travel with them.
            let mut queue: VecDeque<PathBuf> = sources.iter().cloned().collect();
            while let Some(file) = queue.pop_front() {
                if file.extension().is_some_and(|e| e == "rs") {
                    for included in embedded_files(&file) {
                        if !included.starts_with(canonical(&src_dir)) {
                            panic!(
                                "{} embeds {}, outside its crate: an SDK crate must build from its own folder",
                                file.display(),
                                included.display()
                            );
                        }
                        if sources.insert(included.clone()) {
                            watched.push(included.clone());
                            queue.push_back(included);
                        }
                    }
                }
            }
            let base = canonical(&src_dir);
            for file in sources {
                let rel = canonical(&file)
                    .strip_prefix(&base)
                    .expect("SDK file inside its crate")
                    .to_string_lossy()
                    .replace('\\', "/");
                let bytes = std::fs::read(&file)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
                files.insert(format!("{name}/{rel}"), bytes);
            }
            crates.push((name, version));
        }
        let names: Vec<&str> = crates.iter().map(|(n, _)| n.as_str()).collect();
        files.insert("Cargo.lock".to_string(), self.lock(&names).into_bytes());
        files.insert("README.md".to_string(), readme(&crates).into_bytes());
        Sdk {
            files,
            crates,
            watched,
        }
    }

    /// The crate's Cargo.toml made standalone: (package name, version, text).
    fn manifest(&self, dir: &Path) -> (String, String, String) {
        let (name, version, doc) = self.standalone(dir);
        let text = format!(
            "# {name}, as installed by `spyral sdk`: this crate's Cargo.toml with the workspace's values\n\
             # filled in, so it builds on its own.\n{doc}"
        );
        assert!(
            !text.contains("workspace = true") && !text.contains("workspace=true"),
            "{}/Cargo.toml: a `workspace = true` was left after packing",
            dir.display()
        );
        (name, version, text)
    }

    /// The crate's manifest with every workspace value resolved: (package name, version, document).
    fn standalone(&self, dir: &Path) -> (String, String, DocumentMut) {
        let file = dir.join("Cargo.toml");
        let mut doc = read_toml(&file);
        let ws_package = self.workspace["workspace"]["package"].clone();
        let package = doc["package"]
            .as_table_mut()
            .unwrap_or_else(|| panic!("{} has no [package]", file.display()));
        let keys: Vec<String> = package.iter().map(|(k, _)| k.to_string()).collect();
        for key in keys {
            if inherits(&package[&key]) {
                let value = ws_package.get(&key).cloned().unwrap_or_else(|| {
                    panic!(
                        "{}: package.{key} comes from the workspace, which does not set it",
                        file.display()
                    )
                });
                package.insert(&key, value);
            }
        }
        let name = package["name"].as_str().expect("package.name").to_string();
        let version = package["version"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: package.version is not a string", file.display()))
            .to_string();
        package.remove("workspace");
        for drop in ["dev-dependencies", "test", "bench", "example", "workspace"] {
            doc.remove(drop);
        }
        for table in ["dependencies", "build-dependencies"] {
            if let Some(deps) = doc.get_mut(table) {
                self.resolve_deps(deps, dir, &file);
            }
        }
        if let Some(targets) = doc.get_mut("target").and_then(Item::as_table_like_mut) {
            for (_, target) in targets.iter_mut() {
                if let Some(t) = target.as_table_like_mut() {
                    t.remove("dev-dependencies");
                    for table in ["dependencies", "build-dependencies"] {
                        if let Some(deps) = t.get_mut(table) {
                            self.resolve_deps(deps, dir, &file);
                        }
                    }
                }
            }
        }
        if doc.get("lints").is_some_and(inherits) {
            let lints = self.workspace["workspace"]["lints"].clone();
            doc.insert("lints", lints);
        }
        (name, version, doc)
    }

    /// The `[dependencies]` of the template plugin, resolved like an SDK crate's (SDK crates as
    /// `path = "../<package>"`), for `spyral new-phase`.
    fn template_dependencies(&self) -> String {
        let dir = self.root.join(TEMPLATE);
        let (_, _, doc) = self.standalone(&dir);
        let mut deps = doc["dependencies"].clone();
        // SDK crates: `{ path = "../<package>", ... }` without a version (new-phase adds the
        // exact one in front).
        if let Some(table) = deps.as_table_like_mut() {
            for (_, spec) in table.iter_mut() {
                if let Some(spec) = spec.as_inline_table_mut() {
                    if let Some(path) = spec.remove("path") {
                        spec.remove("version");
                        let mut ordered = InlineTable::new();
                        ordered.insert("path", path);
                        for (k, v) in spec.iter() {
                            ordered.insert(k, v.clone());
                        }
                        ordered.fmt();
                        *spec = ordered;
                    }
                }
            }
        }
        let mut out = DocumentMut::new();
        out.insert("dependencies", deps);
        out.to_string()
    }

    fn resolve_deps(&self, deps: &mut Item, dir: &Path, file: &Path) {
        let Some(deps) = deps.as_table_like_mut() else {
            return;
        };
        let ws_deps = &self.workspace["workspace"]["dependencies"];
        let keys: Vec<String> = deps.iter().map(|(k, _)| k.to_string()).collect();
        for key in keys {
            let own = deps.get(&key).expect("key listed").clone();
            let (mut spec, origin) = if inherits(&own) {
                let base = ws_deps.get(&key).unwrap_or_else(|| {
                    panic!(
                        "{}: dependency {key} comes from the workspace, which does not declare it",
                        file.display()
                    )
                });
                let mut spec = inline(base);
                // The member may add features and mark the dependency optional.
                if let Some(own) = own.as_table_like() {
                    for (k, v) in own.iter() {
                        match k {
                            "workspace" => {}
                            "features" => {
                                let mut features = spec
                                    .get("features")
                                    .and_then(Value::as_array)
                                    .cloned()
                                    .unwrap_or_default();
                                for f in v.as_array().into_iter().flatten() {
                                    if !features.iter().any(|x| x.as_str() == f.as_str()) {
                                        features.push(f.clone());
                                    }
                                }
                                spec.insert("features", Value::Array(features));
                            }
                            _ => {
                                spec.insert(k, v.as_value().expect("a plain value").clone());
                            }
                        }
                    }
                }
                (spec, self.root.clone())
            } else {
                (inline(&own), dir.to_path_buf())
            };
            if let Some(path) = spec.get("path").and_then(Value::as_str) {
                let target = canonical(&origin.join(path));
                let sibling = self.names.get(&target).unwrap_or_else(|| {
                    panic!(
                        "{}: dependency {key} is the crate at {} by path, which is not part of the SDK \
                         (add it to SDK_CRATES in host/build.rs or depend on a published crate)",
                        file.display(),
                        target.display()
                    )
                });
                spec.insert("path", Value::from(format!("../{sibling}")));
            }
            spec.fmt();
            deps.insert(&key, Item::Value(Value::InlineTable(spec)));
        }
    }

    /// The workspace's Cargo.lock reduced to the SDK crates and what they depend on, so a plugin
    /// gets the dependency versions this spyral was built with.
    fn lock(&self, names: &[&str]) -> String {
        let file = self.root.join("Cargo.lock");
        let mut doc = read_toml(&file);
        let packages = doc["package"]
            .as_array_of_tables()
            .unwrap_or_else(|| panic!("{} has no [[package]]", file.display()));
        let entries: Vec<(String, String, Vec<String>)> = packages
            .iter()
            .map(|t| {
                let deps = t
                    .get("dependencies")
                    .and_then(Item::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|d| d.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    t["name"].as_str().unwrap_or_default().to_string(),
                    t["version"].as_str().unwrap_or_default().to_string(),
                    deps,
                )
            })
            .collect();
        let mut keep: BTreeSet<(String, String)> = BTreeSet::new();
        let mut queue: VecDeque<(String, Option<String>)> =
            names.iter().map(|n| (n.to_string(), None)).collect();
        while let Some((name, version)) = queue.pop_front() {
            for (n, v, deps) in &entries {
                if *n == name
                    && version.as_ref().is_none_or(|want| want == v)
                    && keep.insert((n.clone(), v.clone()))
                {
                    for d in deps {
                        let mut parts = d.split(' ');
                        let dn = parts.next().unwrap_or_default().to_string();
                        queue.push_back((dn, parts.next().map(str::to_string)));
                    }
                }
            }
        }
        doc["package"]
            .as_array_of_tables_mut()
            .expect("checked above")
            .retain(|t| {
                keep.contains(&(
                    t["name"].as_str().unwrap_or_default().to_string(),
                    t["version"].as_str().unwrap_or_default().to_string(),
                ))
            });
        doc.to_string()
    }
}

fn readme(crates: &[(String, String)]) -> String {
    let mut text = String::from(
        "# The Spyral-rs plugin SDK\n\n\
         Installed by `spyral sdk` (and by `spyral new-phase`) from the copy carried inside the `spyral`\n\
         binary: the crates a phase plugin builds against, at the versions this spyral was built with.\n\
         Do not edit these files: `spyral` checks them and reinstalls on any difference.\n\n",
    );
    for (name, version) in crates {
        text.push_str(&format!("- `{name}` {version}: `{name}/`\n"));
    }
    text.push_str(
        "\n`Cargo.lock` pins the dependency versions spyral itself was built with; `spyral new-phase`\n\
         copies it into a new crate.\n",
    );
    text
}

/// `workspace = true` (as `key.workspace = true` or `key = { workspace = true, ... }`).
fn inherits(item: &Item) -> bool {
    item.as_table_like()
        .and_then(|t| t.get("workspace"))
        .and_then(Item::as_bool)
        == Some(true)
}

/// A dependency specification as an inline table (`"1"` becomes `{ version = "1" }`).
fn inline(item: &Item) -> InlineTable {
    match item {
        Item::Value(Value::String(s)) => {
            let mut t = InlineTable::new();
            t.insert("version", Value::from(s.value().as_str()));
            t
        }
        Item::Value(Value::InlineTable(t)) => t.clone(),
        Item::Table(t) => t.clone().into_inline_table(),
        other => panic!("unexpected dependency specification {other}"),
    }
}

fn read_toml(path: &Path) -> DocumentMut {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (the spyral binary is built from the Spyral-rs workspace, which holds the SDK crates)",
            path.display()
        )
    });
    text.parse()
        .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", path.display()))
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|e| panic!("cannot resolve {}: {e}", path.display()))
}

/// Every regular file under `dir`, recursively (hidden files skipped).
fn collect(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            collect(&path, out);
        } else if kind.is_file() {
            out.insert(path);
        }
    }
}

/// Files a Rust source embeds with `include_str!("...")` / `include_bytes!("...")` (literal
/// paths relative to the source file), resolved and normalised.
fn embedded_files(source: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(source)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
    let mut found = Vec::new();
    for mac in ["include_str!(\"", "include_bytes!(\""] {
        let mut rest = text.as_str();
        while let Some(at) = rest.find(mac) {
            rest = &rest[at + mac.len()..];
            if let Some(end) = rest.find('"') {
                let rel = &rest[..end];
                let dir = source.parent().expect("source folder");
                let mut path = PathBuf::new();
                for c in dir.join(rel).components() {
                    match c {
                        Component::ParentDir => {
                            path.pop();
                        }
                        Component::CurDir => {}
                        c => path.push(c),
                    }
                }
                if path.is_file() {
                    found.push(canonical(&path));
                }
            }
        }
    }
    found
}
