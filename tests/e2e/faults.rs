//! End-to-end tests of plugin faults outside workers: plugin code never runs in the `spyral`
//! parent, so a phase that segfaults, aborts or exits while being constructed, asked for its
//! schemas, or building assets or shared data is reported (phase, kind, call, how it died, the
//! tail of its stderr) with exit code 2, and `spyral` itself never dies with it.

use spyral_e2e::Sandbox;

fn fail_phase(mode: &str, method: &str) -> String {
    format!("  - kind: fail\n    config: {{mode: {mode}, method: {method}}}\n")
}

#[test]
fn crashes_while_validating_are_reported_not_fatal() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    for (mode, how) in [
        ("segfault", "killed by SIGSEGV"),
        ("abort", "killed by SIGABRT"),
        ("exit", "exit code 7"),
    ] {
        for (method, call) in [
            ("new", "construction"),
            ("incoming_schema", "incoming_schema"),
            ("outgoing_schema", "outgoing_schema"),
        ] {
            let p = sb.pipeline("runs: {min: 1, max: 1}", &fail_phase(mode, method));
            for cmd in ["validate", "run", "status"] {
                let out = sb.spyral(&[cmd, p.to_str().unwrap()]);
                assert_eq!(out.code, Some(2), "{cmd} {mode} {method}: {}", out.all());
                let want = format!("phase Fail (fail) in {call} crashed: {how}");
                assert!(
                    out.stderr.contains(&want),
                    "{cmd} {mode} {method}: expected `{want}` in:\n{}",
                    out.stderr
                );
            }
            // Validation failed: nothing was created.
            assert!(!sb.ws().exists(), "{mode} {method}: workspace created");
        }
    }
}

#[test]
fn crashes_while_building_assets_or_shared_data_are_reported() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    for (mode, how) in [
        ("segfault", "killed by SIGSEGV"),
        ("abort", "killed by SIGABRT"),
        ("exit", "exit code 7"),
    ] {
        for method in ["create_assets", "create_shared_data"] {
            let p = sb.pipeline("runs: {min: 1, max: 1}", &fail_phase(mode, method));
            let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
            assert_eq!(out.code, Some(2), "{mode} {method}: {}", out.all());
            let want = format!("phase Fail (fail) in {method} crashed: {how}");
            assert!(
                out.stderr.contains(&want),
                "{mode} {method}: expected `{want}` in:\n{}",
                out.stderr
            );
            // The parent lived to log it.
            let log = std::fs::read_to_string(sb.latest_log().join("parent.log")).unwrap();
            assert!(log.contains(&want) || log.contains("crashed"), "{log}");
            if method == "create_assets" {
                let out = sb.spyral(&["assets", p.to_str().unwrap()]);
                assert_eq!(out.code, Some(2), "{}", out.all());
                assert!(out.stderr.contains(&want), "{}", out.stderr);
            }
        }
    }
}

#[test]
fn a_crash_while_loading_a_library_names_the_library() {
    let sb = Sandbox::new();
    sb.trace(1, 100);
    // A file that is not a shared library at all is refused cleanly, naming it.
    let bogus = sb.file("libbogus.so", "not an ELF file");
    let p = sb.file(
        "p.yaml",
        &format!(
            "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 1}}\nplugins: [{}]\nphases:\n  - kind: stamp\n",
            bogus.display()
        ),
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("libbogus.so"), "{}", out.stderr);
}
