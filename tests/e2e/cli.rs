//! End-to-end tests of plugin loading, pipeline validation and their error messages
//! (`spyral plugins`, `spyral validate`), and of `spyral slurm`'s advice (idle tasks, `--mem`),
//! with the real binary and real plugin libraries.

use spyral_e2e::{plugin, Sandbox};

const STAMP: &str = "  - kind: stamp\n";

#[test]
fn plugins_lists_template_kind_and_default_config() {
    let sb = Sandbox::new();
    let lib = plugin("template");
    let out = sb.spyral(&["plugins", lib.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("kind `template`"), "{}", out.stdout);
    assert!(
        out.stdout.contains("input_artifact: trace"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("built against spyral-core"),
        "{}",
        out.stdout
    );
}

#[test]
fn plugins_without_paths_lists_builtins() {
    let out = Sandbox::new().spyral(&["plugins"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("spyral-phases"), "{}", out.stdout);
    assert!(out.stdout.contains("(built in)"), "{}", out.stdout);
}

#[test]
fn validate_prints_resolved_defaults() {
    let sb = Sandbox::new();
    let p = sb.pipeline(
        "runs: {min: 1, max: 3}",
        "  - kind: template\n    config: {buffer_kib: 8}\n  - kind: stamp\n",
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("buffer_kib: 8"), "{}", out.stdout);
    assert!(
        out.stdout.contains("input_artifact: trace"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("bytes: 4096"), "{}", out.stdout);
    assert!(out.stdout.contains("Template -> Stamp"), "{}", out.stdout);
}

#[test]
fn missing_plugin_file() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "workspace: ws\ntraces: traces\nruns: {min: 1, max: 2}\nplugins: [nowhere/libx.so]\nphases:\n  - kind: x\n",
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("libx.so does not exist"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn file_that_is_not_a_plugin() {
    let sb = Sandbox::new();
    let junk = sb.file("libjunk.so", "this is not a shared library\n");
    let out = sb.spyral(&["plugins", junk.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("cannot open plugin library"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("libjunk.so"), "{}", out.stderr);
    // A real shared library that is not a Spyral plugin.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    if let Some(libm) = libm {
        let out = sb.spyral(&["plugins", libm]);
        assert_eq!(out.code, Some(2));
        assert!(
            out.stderr.contains("is not a Spyral plugin library"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn plugin_built_against_another_core_version_is_refused() {
    let sb = Sandbox::new();
    let lib = plugin("abi_version");
    let out = sb.spyral(&["plugins", lib.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("libabi_version.so"), "{}", out.stderr);
    assert!(out.stderr.contains("0.9.0"), "{}", out.stderr);
    assert!(
        out.stderr.contains(spyral_core::CORE_VERSION),
        "{}",
        out.stderr
    );
    assert!(out.stderr.lines().count() < 15, "{}", out.stderr);
}

#[test]
fn plugin_with_changed_contract_layout_is_refused_with_report_tail() {
    let sb = Sandbox::new();
    let lib = plugin("abi_layout");
    let out = sb.spyral(&["plugins", lib.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    let e = &out.stderr;
    assert!(e.contains("libabi_layout.so"), "{e}");
    assert!(
        e.contains("does not match this spyral's plugin interface"),
        "{e}"
    );
    assert!(e.contains("last lines of the layout report"), "{e}");
    assert!(e.lines().count() < 20, "message too long:\n{e}");
    // Same core version, different interface: the message says what differs.
    assert!(e.contains("from different sources"), "{e}");
    // Asked about this library, `spyral plugins` prints the whole report on stdout; nothing
    // is written to a temporary folder.
    assert!(e.contains("full report: `spyral plugins"), "{e}");
    assert!(
        out.stdout.len() > e.len(),
        "the full report holds more than the message:\n{}",
        out.stdout
    );
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|f| {
            f.file_name()
                .to_string_lossy()
                .starts_with("spyral-layout-report-abi_layout")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn unknown_kind_lists_known_kinds() {
    let sb = Sandbox::new();
    let p = sb.pipeline("runs: {min: 1, max: 2}", "  - kind: stmap\n");
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    let e = &out.stderr;
    assert!(e.contains("unknown phase kind `stmap`"), "{e}");
    assert!(e.contains("pipeline.yaml:8"), "{e}");
    assert!(e.contains("stamp") && e.contains("template"), "{e}");
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let sb = Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "workspace: ws\ntraces: traces\nruns: {min: 1, max: 2\nphases:\n  - kind: stamp\n",
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("p.yaml"), "{}", out.stderr);
    assert!(out.stderr.contains("line"), "{}", out.stderr);
    assert!(out.stderr.contains("column"), "{}", out.stderr);
}

#[test]
fn unknown_top_level_key_is_an_error() {
    let sb = Sandbox::new();
    let p = sb.pipeline("runs: {min: 1, max: 2}\nworkres: 3", STAMP);
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("workres"), "{}", out.stderr);
}

#[test]
fn unknown_config_field_names_phase_field_and_line() {
    let sb = Sandbox::new();
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}",
        "  - kind: template\n    config:\n      buffer_kib: 8\n      input_artefact: trace\n",
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    let e = &out.stderr;
    assert!(e.contains("phase Template"), "{e}");
    assert!(e.contains("input_artefact"), "{e}");
    assert!(e.contains("pipeline.yaml:11"), "{e}");
}

#[test]
fn mistyped_config_field() {
    let sb = Sandbox::new();
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}",
        "  - kind: template\n    config:\n      buffer_kib: lots\n",
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    let e = &out.stderr;
    assert!(
        e.contains("buffer_kib") && e.contains("invalid type"),
        "{e}"
    );
    assert!(e.contains("pipeline.yaml:10"), "{e}");
}

#[test]
fn duplicate_phase_names() {
    let sb = Sandbox::new();
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}",
        "  - kind: stamp\n  - kind: stamp\n",
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("`Stamp` is used twice"),
        "{}",
        out.stderr
    );
    // Naming the second one fixes it.
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}",
        "  - kind: stamp\n  - kind: noop\n  - kind: noop\n    name: Noop2\n",
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
}

#[test]
fn phase_names_must_be_plain_folder_names() {
    let sb = Sandbox::new();
    for bad in ["../x", "a/b", "''", "slurm", "log", "\"a\\tb\""] {
        let p = sb.pipeline(
            "runs: {min: 1, max: 2}",
            &format!("  - kind: stamp\n    name: {bad}\n"),
        );
        let out = sb.spyral(&["validate", p.to_str().unwrap()]);
        assert_eq!(out.code, Some(2), "{bad}");
        assert!(
            out.stderr.contains("cannot be a folder name"),
            "{bad}: {}",
            out.stderr
        );
    }
}

#[test]
fn schema_mismatch_names_both_phases_and_schemas() {
    let sb = Sandbox::new();
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}",
        "  - kind: stamp\n  - kind: fail\n    config: {expects: cluster}\n",
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    let e = &out.stderr;
    assert!(e.contains("phase Stamp produces"), "{e}");
    assert!(e.contains("phase Fail expects"), "{e}");
    assert!(e.contains("\"stamp\"") && e.contains("\"cluster\""), "{e}");
    // An inactive phase is outside the active chain.
    let p = sb.pipeline(
        "runs: {min: 1, max: 2}",
        "  - kind: stamp\n    active: false\n  - kind: fail\n    config: {expects: cluster}\n",
    );
    assert_eq!(sb.spyral(&["validate", p.to_str().unwrap()]).code, Some(0));
}

#[test]
fn panicking_phase_method_is_an_error_not_a_crash() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    // Panic while constructing.
    let p = sb.pipeline(
        "runs: {min: 1, max: 1}",
        "  - kind: fail\n    config: {mode: panic, method: new}\n",
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("panic"), "{}", out.stderr);
    assert!(
        out.stderr.contains("deliberate panic in new"),
        "{}",
        out.stderr
    );
    assert!(!out
        .stderr
        .contains("Attempted to panic across the ffi boundary"));
    // Panic in create_assets during a run.
    let p = sb.pipeline(
        "runs: {min: 1, max: 1}",
        "  - kind: fail\n    config: {mode: panic, method: create_assets}\n",
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("create_assets failed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("deliberate panic in create_assets"),
        "{}",
        out.stderr
    );
    // Panic in a schema getter: an error naming the phase and the call, never "accepts
    // anything"; also when the phase is first in the chain (nothing before it to compare).
    for (phases, call) in [
        (
            "  - kind: stamp\n  - kind: fail\n    config: {mode: panic, method: incoming_schema}\n",
            "incoming_schema",
        ),
        (
            "  - kind: fail\n    config: {mode: panic, method: incoming_schema}\n",
            "incoming_schema",
        ),
        (
            "  - kind: fail\n    config: {mode: panic, method: outgoing_schema}\n  - kind: stamp\n",
            "outgoing_schema",
        ),
        (
            "  - kind: stamp\n  - kind: fail\n    config: {mode: panic, method: outgoing_schema}\n",
            "outgoing_schema",
        ),
    ] {
        let p = sb.pipeline("runs: {min: 1, max: 1}", phases);
        let out = sb.spyral(&["validate", p.to_str().unwrap()]);
        assert_eq!(out.code, Some(2), "{call}: {}", out.all());
        assert!(
            out.stderr
                .contains(&format!("phase Fail (fail): {call} failed"))
                && out.stderr.contains(&format!("deliberate panic in {call}")),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn plugin_tracing_reaches_the_worker_log() {
    let sb = Sandbox::new();
    sb.trace(1, 1000);
    let p = sb.pipeline("runs: {min: 1, max: 1}\nseed: 1", "  - kind: template\n");
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let log = std::fs::read_to_string(sb.latest_log().join("worker-0.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("Template: run 1 read 1000 bytes"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("name=Template") && line.contains("run=1"),
        "{line}"
    );
    assert!(log.contains("calling Template.run for run 1"), "{log}");
}

#[test]
fn example_pipelines_validate() {
    let root = spyral_e2e::workspace_root();
    for name in ["demo.yaml", "template.yaml"] {
        let p = root.join("examples").join(name);
        let out = Sandbox::new().spyral(&["validate", p.to_str().unwrap()]);
        assert_eq!(out.code, Some(0), "{name}: {}", out.all());
        assert!(
            out.stdout.contains("schema chain ok"),
            "{name}: {}",
            out.stdout
        );
    }
}

#[test]
fn polish_did_you_mean_narrow_flags_and_trace_checks() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    // A typo in a kind gets a suggestion.
    let p = sb.pipeline("runs: {min: 1, max: 2}", "  - kind: templat\n");
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("did you mean `template`?"),
        "{}",
        out.stderr
    );
    // status and assets start no workers: they do not take --workers or --schedule.
    let p = sb.pipeline("runs: {min: 1, max: 2}", "  - kind: stamp\n");
    for cmd in ["status", "assets"] {
        let out = sb.spyral(&[cmd, p.to_str().unwrap(), "--workers", "3"]);
        assert_eq!(out.code, Some(2), "{cmd}: {}", out.all());
        assert!(out.stderr.contains("--workers"), "{}", out.stderr);
    }
    // validate looks at the trace folder and the run range.
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("# 1 runs in range"), "{}", out.stdout);
    assert!(out.stdout.contains("missing: 2\n"), "{}", out.stdout);
    let p = sb.pipeline("runs: {min: 5, max: 9}", "  - kind: stamp\n");
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert!(
        out.stderr.contains("warning: no runs found"),
        "{}",
        out.stderr
    );
    // spyral's own test fixtures beside a development build are not offered as plugins.
    let out = sb.spyral(&["plugins"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(!out.stdout.contains("spyral-testkit"), "{}", out.stdout);
    assert!(!out.stderr.contains("abi_layout"), "{}", out.stderr);
    assert!(out.stdout.contains("spyral-phases"), "{}", out.stdout);
}

#[test]
fn slurm_warns_of_idle_tasks_and_suggests_memory_from_the_last_launch() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    let p = sb.pipeline("runs: {min: 1, max: 1}", "  - kind: stamp\n");
    let p = p.to_str().unwrap();
    let out = sb.spyral(&["slurm", p, "--tasks", "3"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stderr
            .contains("warning: 3 tasks for 1 run(s): 2 task(s) will have nothing to do"),
        "{}",
        out.stderr
    );
    // No launch yet: how to get a suggestion; after one: a --mem from its report.
    assert!(out.stderr.contains("no --mem given"), "{}", out.stderr);
    assert_eq!(sb.spyral(&["run", p, "--no-display"]).code, Some(0));
    let out = sb.spyral(&["slurm", p, "--tasks", "1", "--cpus-per-task", "2"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stderr.contains("suggestion: --sbatch-arg=--mem=")
            && out.stderr.contains("x 2 workers, +25%"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("will have nothing to do"),
        "{}",
        out.stderr
    );
    // Given --mem, no suggestion.
    let out = sb.spyral(&["slurm", p, "--tasks", "1", "--sbatch-arg=--mem=4G"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(!out.stderr.contains("suggestion"), "{}", out.stderr);
}
