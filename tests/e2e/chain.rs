//! End-to-end test of the whole default chain with the InterpSolver's shared mesh: one worker
//! and two workers (each attaching the parent's sealed mesh segment) produce byte-identical
//! artifacts, and the fits exist.

use spyral_e2e::{file_bytes, Sandbox};

const PHASES: &str = spyral_e2e::SMALL_CHAIN;

#[test]
fn one_and_two_workers_fit_identically_with_the_shared_mesh() {
    let mut outputs = Vec::new();
    for workers in [1, 2] {
        let sb = Sandbox::new();
        sb.simulated(3, 30, 8);
        let p = sb.file(
            "p.yaml",
            &format!("workspace: ws\ntraces: traces\nruns: {{min: 1, max: 3}}\nworkers: {workers}\nseed: 4\nphases:\n{PHASES}"),
        );
        let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
        assert_eq!(out.code, Some(0), "{}", out.all());
        assert!(
            out.stdout.contains("shared segments: InterpSolver/mesh"),
            "{}",
            out.stdout
        );
        let fits = file_bytes(&sb.ws().join("InterpSolver"));
        assert_eq!(fits.len(), 3, "{:?}", fits.keys());
        let total: usize = fits.values().map(|v| v.len()).sum();
        assert!(total > 3 * 1000, "fits were written");
        outputs.push((
            file_bytes(&sb.ws().join("Estimation")),
            fits,
            file_bytes(&sb.ws().join("Cluster")),
        ));
    }
    assert_eq!(outputs[0].0, outputs[1].0, "Estimation");
    assert_eq!(outputs[0].1, outputs[1].1, "InterpSolver");
    assert_eq!(outputs[0].2, outputs[1].2, "Cluster");
}
