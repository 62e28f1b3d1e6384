//! End-to-end test of `spyral new-phase`: generate a crate, build it with cargo, validate and
//! run a pipeline that uses it.

use spyral_e2e::{workspace_root, Sandbox};
use std::process::Command;

#[test]
fn new_phase_builds_loads_and_runs() {
    let sb = Sandbox::new();
    let out = sb.spyral(&["new-phase", "mything", "--dir", "plugins"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let krate = sb.path().join("plugins/mything");
    // Reuse the workspace's lock file and target folder so dependencies are not rebuilt.
    std::fs::copy(
        workspace_root().join("Cargo.lock"),
        krate.join("Cargo.lock"),
    )
    .unwrap();
    let target = spyral_e2e::profile_dir()
        .parent()
        .unwrap()
        .join("scaffold-test");
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--offline", "--quiet"])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "cargo build failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let lib = target.join("debug/libmything.so");
    assert!(lib.exists());
    sb.trace(1, 500);
    let p = sb.file(
        "p.yaml",
        &format!(
            "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 1}}\nseed: 1\nplugins: [{}]\nphases:\n  - kind: mything\n",
            lib.display()
        ),
    );
    let out = sb.spyral(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("name: Mything"), "{}", out.stdout);
    let out = sb.spyral(&["run", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let art = std::fs::read_to_string(sb.ws().join("Mything/run_0001.json")).unwrap();
    assert!(art.contains("\"input_bytes\": 500"), "{art}");
}
