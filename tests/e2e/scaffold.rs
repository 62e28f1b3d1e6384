//! End-to-end test of the plugin SDK, as a user without the source tree meets it: the `spyral`
//! binary alone is copied into an empty folder outside the repository (HOME inside it), where
//! `spyral new-phase` installs the SDK the binary carries and writes a crate; cargo builds that
//! crate (offline, from the local registry cache); the copied binary runs it in a chain after
//! Pointcloud on simulated data, and the test reads its output. Nothing may point into the checkout.
//! A second test builds a crate against a copy of that SDK whose spyral-core interface was changed
//! and checks how the binary refuses the library (by name, with abi_stable's layout report).
//!
//! Steps and their times go to stderr (`--nocapture` shows them). The crate is built into a target
//! folder shared with other runs of this test (beside the workspace's), so only the first run
//! compiles the dependencies.

use spyral_e2e::{spyral_bin, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The user's machine: a folder with `bin/spyral` and `home/`.
struct Machine {
    _dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    spyral: PathBuf,
}

impl Machine {
    fn new() -> Machine {
        let dir = tempfile::Builder::new()
            .prefix("spyral-sdk-e2e-")
            .tempdir()
            .expect("temp dir");
        let root = std::fs::canonicalize(dir.path()).expect("temp dir path");
        assert!(
            !root.starts_with(workspace_root()),
            "{} is inside the repository",
            root.display()
        );
        let home = root.join("home");
        std::fs::create_dir_all(root.join("bin")).expect("bin");
        std::fs::create_dir_all(&home).expect("home");
        // What a user installs: the binary, nothing else.
        let spyral = root.join("bin/spyral");
        std::fs::copy(spyral_bin(), &spyral).expect("copy spyral");
        Machine {
            _dir: dir,
            root,
            home,
            spyral,
        }
    }

    /// Runs the copied `spyral ARGS` in the machine's root with HOME inside it, and extra
    /// environment variables, whatever its exit code.
    fn spyral_env(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        Command::new(&self.spyral)
            .args(args)
            .current_dir(&self.root)
            .env("HOME", &self.home)
            .env_remove("XDG_DATA_HOME")
            .env_remove("SPYRAL_SDK_DIR")
            .env_remove("SPYRAL_PLUGIN_PATH")
            .envs(env.iter().copied())
            .output()
            .expect("run spyral")
    }

    /// Runs the copied `spyral ARGS` in the machine's root with HOME inside it; it must succeed.
    fn spyral(&self, args: &[&str]) -> Output {
        let out = self.spyral_env(args, &[]);
        assert!(
            out.status.success(),
            "spyral {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Asserts that `file` names no path inside the repository.
fn assert_outside_repo(file: &Path) {
    let text = std::fs::read_to_string(file).expect("read file");
    let repo = workspace_root().to_string_lossy().into_owned();
    assert!(
        !text.contains(&repo),
        "{} refers to the checkout {repo}:\n{text}",
        file.display()
    );
}

/// Builds the crate `krate` offline with the user's cargo and registry cache (HOME inside the
/// machine) into the target folder shared by the tests of this file, which it returns. The
/// tests build crates of different names there: each copies out its own library.
fn cargo_build(m: &Machine, krate: &Path) -> PathBuf {
    let target = spyral_e2e::profile_dir()
        .parent()
        .expect("target folder")
        .join("scaffold-test");
    let real_home = std::env::var_os("HOME").map(PathBuf::from);
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args(["build", "--offline", "--quiet"])
        .current_dir(krate)
        .env("CARGO_TARGET_DIR", &target)
        .env("HOME", &m.home);
    for (var, default) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
        let dir = std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| real_home.as_ref().map(|h| h.join(default)));
        if let Some(dir) = dir.filter(|d| d.exists()) {
            cargo.env(var, dir);
        }
    }
    let build = cargo.output().expect("run cargo");
    assert!(
        build.status.success(),
        "cargo build failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    target
}

/// Copies the folder `from` to `to`, recursively (files and folders only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let entry = entry.expect("folder entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy file");
        }
    }
}

fn step(t: &mut Instant, what: &str) {
    eprintln!("[scaffold] {what}: {:.1} s", t.elapsed().as_secs_f64());
    *t = Instant::now();
}

#[test]
fn a_phase_scaffolded_by_a_copied_binary_builds_and_runs_after_pointcloud() {
    let m = Machine::new();
    let mut t = Instant::now();

    // 1. new-phase installs the SDK under HOME and writes the crate.
    let out = m.spyral(&["new-phase", "gate", "--dir", "work"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sdk_base = m.home.join(".local/share/spyral/sdk");
    assert!(
        stdout.contains(&*sdk_base.to_string_lossy()),
        "the SDK goes under XDG's default data home: {stdout}"
    );
    let krate = m.root.join("work/gate");
    let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("path = \"{}", sdk_base.display())),
        "{manifest}"
    );
    assert_outside_repo(&krate.join("Cargo.toml"));
    let sdk = m.spyral(&["sdk", "--path"]);
    let sdk = PathBuf::from(String::from_utf8_lossy(&sdk.stdout).trim());
    assert!(sdk.starts_with(&sdk_base), "{}", sdk.display());
    for entry in std::fs::read_dir(&sdk).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        if manifest.exists() {
            assert_outside_repo(&manifest);
        }
    }
    step(&mut t, "new-phase (SDK installed)");

    // 2. cargo builds it: the user's own cargo and registry cache, nothing of the checkout.
    let target = cargo_build(&m, &krate);
    assert_outside_repo(&krate.join("Cargo.lock"));
    let lock = std::fs::read_to_string(krate.join("Cargo.lock")).unwrap();
    assert!(
        lock.contains("name = \"gate\"")
            && lock.contains("name = \"spyral-core\"")
            && lock.contains("name = \"spyral-data\""),
        "{lock}"
    );
    // Copy the library out of the shared target folder (another test may build there).
    let lib = m.root.join("libgate.so");
    std::fs::copy(target.join("debug/libgate.so"), &lib).expect("the plugin library");
    step(&mut t, "cargo build");

    // 3. Run it after Pointcloud with the copied binary, and read its output.
    m.spyral(&[
        "simulate", "--out", "traces", "--runs", "1", "--events", "12", "--seed", "5",
    ]);
    let pipeline = m.root.join("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 1}}\nseed: 2\nplugins: [{}]\n\
             phases:\n  - kind: pointcloud\n  - kind: gate\n    config: {{input_phase: Pointcloud, min_points: 1}}\n",
            lib.display()
        ),
    )
    .unwrap();
    let p = pipeline.to_str().unwrap();
    let out = m.spyral(&["validate", p]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("name: Gate"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    m.spyral(&["run", p, "--no-display"]);
    // The generated charge gate read Pointcloud's artifact by phase name: one row per event
    // with at least one point in its z window, sums equal to the clouds'.
    let clouds = spyral_data::artifacts::CloudFile::open(&m.root.join("ws/Pointcloud/run_0001.h5"))
        .expect("Pointcloud's artifact");
    let gate = spyral_data::table::Table::read_parquet(&m.root.join("ws/Gate/run_0001.parquet"))
        .expect("gate output");
    let events = gate.int("event").expect("event column");
    assert!(!events.is_empty(), "{gate:?}");
    let first = clouds.read(events[0] as u64).unwrap();
    let inside: Vec<_> = first
        .cloud
        .rows()
        .into_iter()
        .filter(|r| (0.0..=1000.0).contains(&r[2]))
        .collect();
    assert_eq!(gate.int("points").unwrap()[0], inside.len() as i64);
    let amplitude: f64 = inside.iter().map(|r| r[3]).sum();
    assert_eq!(gate.float("total_amplitude").unwrap()[0], amplitude);
    step(&mut t, "simulate, validate, run");
}

/// A plugin built against a spyral-core of the same version whose interface differs from this
/// spyral's (here two fields of `PhaseKindInfo` declared in the other order, as a modified or
/// pre-release spyral-core would) is refused by name with abi_stable's layout report: named in a
/// pipeline, the launch stops before creating anything (exit 2); found while searching
/// `SPYRAL_PLUGIN_PATH`, a launch that does not need it goes on and keeps the whole report in its
/// log folder; `spyral plugins LIB` prints the report.
#[test]
fn a_plugin_built_against_another_interface_is_refused_with_its_layout_report() {
    let m = Machine::new();
    let mut t = Instant::now();
    m.spyral(&["new-phase", "skewed", "--dir", "work"]);
    let sdk = m.spyral(&["sdk", "--path"]);
    let sdk = PathBuf::from(String::from_utf8_lossy(&sdk.stdout).trim());
    let modified = m.root.join("sdk-modified");
    copy_tree(&sdk, &modified);
    let plugin_rs = modified.join("spyral-core/src/plugin.rs");
    let text = std::fs::read_to_string(&plugin_rs).expect("the SDK's spyral-core");
    let fields = "    /// One line saying what it does.\n    pub description: RString,\n    \
                  /// The default configuration as JSON text.\n    pub default_config: RString,\n";
    let swapped =
        "    /// The default configuration as JSON text.\n    pub default_config: RString,\n    \
                   /// One line saying what it does.\n    pub description: RString,\n";
    assert!(
        text.contains(fields),
        "PhaseKindInfo changed: update the fields this test swaps"
    );
    std::fs::write(&plugin_rs, text.replace(fields, swapped)).expect("modify spyral-core");
    let krate = m.root.join("work/skewed");
    let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).expect("manifest");
    let sdk_text = sdk.to_string_lossy().into_owned();
    assert!(manifest.contains(&sdk_text), "{manifest}");
    std::fs::write(
        krate.join("Cargo.toml"),
        manifest.replace(&sdk_text, &modified.to_string_lossy()),
    )
    .expect("point the crate at the modified SDK");
    let target = cargo_build(&m, &krate);
    let plugins = m.root.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins folder");
    let lib = plugins.join("libskewed.so");
    std::fs::copy(target.join("debug/libskewed.so"), &lib).expect("the plugin library");
    step(&mut t, "build against a modified spyral-core");

    let lib_s = lib.to_string_lossy().into_owned();
    // `spyral plugins LIB`: refused by name, with the whole report (the swapped field in it).
    let out = m.spyral_env(&["plugins", &lib_s], &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&lib_s)
            && stderr.contains("does not match this spyral's plugin interface")
            && stderr.contains("from different sources"),
        "{stderr}"
    );
    assert!(stdout.contains("field_name:description"), "{stdout}");

    m.spyral(&[
        "simulate", "--out", "traces", "--runs", "1", "--events", "4", "--seed", "5",
    ]);
    // Named in the pipeline: exit 2 before anything is created.
    let named = m.root.join("named.yaml");
    std::fs::write(
        &named,
        format!(
            "workspace: ws-named\ntraces: traces\nruns: {{min: 1, max: 1}}\nplugins: [{lib_s}]\n\
             phases:\n  - kind: pointcloud\n  - kind: skewed\n"
        ),
    )
    .unwrap();
    let out = m.spyral_env(&["run", named.to_str().unwrap(), "--no-display"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&lib_s) && stderr.contains("does not match this spyral's plugin interface"),
        "{stderr}"
    );
    assert!(!m.root.join("ws-named").exists(), "nothing is created");

    // Found while searching, not needed: the launch goes on and keeps the report.
    let searched = m.root.join("searched.yaml");
    std::fs::write(
        &searched,
        "workspace: ws-searched\ntraces: traces\nruns: {min: 1, max: 1}\nphases:\n  - kind: pointcloud\n",
    )
    .unwrap();
    let out = m.spyral_env(
        &["run", searched.to_str().unwrap(), "--no-display"],
        &[("SPYRAL_PLUGIN_PATH", &plugins)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = m
        .root
        .join("ws-searched/log/latest/layout-report-libskewed.txt");
    let report =
        std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{}: {e}", report.display()));
    assert!(report.contains("field_name:description"), "{report}");
    let log = std::fs::read_to_string(m.root.join("ws-searched/log/latest/parent.log"))
        .expect("parent log");
    assert!(
        log.contains("refused plugin library") && log.contains(&lib_s),
        "{log}"
    );
    assert!(m.root.join("ws-searched/Pointcloud/run_0001.h5").exists());
    step(&mut t, "refused when named, reported when found");
}
