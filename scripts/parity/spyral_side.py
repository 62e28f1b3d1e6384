"""Runs Python Spyral 1.1.2 (unpatched) on simulated traces, as a user script would, for the
parity comparison: its default phases (PointcloudPhase, ClusterPhase, EstimationPhase,
InterpSolverPhase) built from the shared parameter set (params.py), in one process.

Usage (inside the parity venv):
    python spyral_side.py --repo R --traces T --workspace W --runs 1-4 --seed N
                          [--last pointcloud|cluster|estimation|solver] [--mesh-from DIR]

It uses Spyral's own API: `Pipeline` creates the workspace, the assets (the interpolation
mesh) and the shared memory, and validates the schema chain; the worker loop (one
`PhaseResult` per run pushed through every phase, as `Pipeline.run` does) is written out here so
that each phase can be timed and a run that raises is recorded (Spyral's loop logs the
exception and silently drops the worker's remaining runs). The seed is fixed and printed.

Two things a user of 1.1.2 has to do, both without touching Spyral's code:
- EstimationPhase cannot write its parquet: each result row holds the `Direction` enum object,
  polars infers the Object dtype and `write_parquet` raises ("cannot write 'Object' datatype").
  `ParityEstimationPhase` below is EstimationPhase with its `run` written out here: it calls
  Spyral's own `estimate_physics` on every cluster, exactly as EstimationPhase does, and stores
  the direction as its integer value (what the schema says), with polars' default codec (zstd).
- The mesh's shared-memory segment gets a name unique to this process instead of the fixed
  "interp_shared_mesh", so a concurrent Spyral on the same machine cannot collide with it.

Writes `<workspace>/parity-spyral.json`: seed, per-phase wall and CPU seconds, and per-run
errors (phase, exception text).
"""

import argparse
import json
import os
import shutil
import sys
import time
import traceback
import warnings
from pathlib import Path

import h5py
import polars as pl
from numpy.random import SeedSequence, default_rng

sys.path.insert(0, str(Path(__file__).resolve().parent))
import params  # noqa: E402

import spyral  # noqa: E402
from spyral import PhaseResult  # noqa: E402
from spyral.core.cluster import Cluster, Direction  # noqa: E402
from spyral.core.estimator import estimate_physics  # noqa: E402
from spyral.core.spy_log import init_spyral_logger_parent  # noqa: E402

PHASES = ["pointcloud", "cluster", "estimation", "solver"]
# scikit-learn 1.9 announces a change of HDBSCAN's `copy` default on every call.
warnings.filterwarnings("ignore", category=FutureWarning)


class ParityEstimationPhase(spyral.EstimationPhase):
    """EstimationPhase whose artifact can be written (see the module doc)."""

    def run(self, payload, workspace_path, msg_queue, rng):
        cluster_path = payload.artifacts["cluster"]
        if not payload.successful or not Path(cluster_path).exists():
            return PhaseResult.invalid_result(payload.run_number)
        result = self.construct_artifact(payload, workspace_path)
        rows = []
        with h5py.File(cluster_path, "r") as f:
            group = f["cluster"]
            first, last = int(group.attrs["min_event"]), int(group.attrs["max_event"])
            for event in range(first, last + 1):
                name = f"event_{event}"
                if name not in group:
                    continue
                g = group[name]
                info = [
                    float(g.attrs["ic_amplitude"]),
                    float(g.attrs["ic_centroid"]),
                    float(g.attrs["ic_integral"]),
                    float(g.attrs["ic_multiplicity"]),
                    int(g.attrs["orig_run"]),
                    int(g.attrs["orig_event"]),
                ]
                for index in range(int(g.attrs["nclusters"])):
                    cname = f"cluster_{index}"
                    if cname not in g:
                        continue
                    c = g[cname]
                    cluster = Cluster(
                        event,
                        c.attrs["label"],
                        Direction(c.attrs["direction"]),
                        c["cloud"][:].copy(),
                    )
                    est = estimate_physics(
                        index, cluster, *info, self.estimate_params, self.det_params
                    )
                    if est is not None:
                        row = dict(vars(est))
                        row["direction"] = int(est.direction.value)
                        rows.append(row)
        pl.DataFrame(rows).write_parquet(result.artifacts["estimation"])
        return result


class NullQueue:
    """Stands in for the progress queue (no display)."""

    def put(self, _msg):
        pass


def parse_runs(text):
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--traces", type=Path, required=True)
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--last", choices=PHASES, default="solver")
    ap.add_argument("--mesh-from", type=Path, help="InterpSolver_assets folder to reuse")
    args = ap.parse_args()

    repo = args.repo.resolve()
    ws = args.workspace.resolve()
    ws.parent.mkdir(parents=True, exist_ok=True)
    pads, get, frib, det, cluster, estimate, solver = params.spyral_phases(repo)
    phases = [
        spyral.PointcloudPhase(get, frib, det, pads),
        spyral.ClusterPhase(cluster, det),
        ParityEstimationPhase(estimate, det),
        spyral.InterpSolverPhase(solver, det),
    ][: PHASES.index(args.last) + 1]
    if len(phases) == 4:
        phases[3].shared_mesh_name = f"parity_mesh_{os.getpid()}"
    pipeline = spyral.Pipeline(phases, [True] * len(phases), ws, args.traces.resolve())

    pipeline.create_workspace()
    init_spyral_logger_parent(ws)
    if args.mesh_from and len(phases) == 4:
        dest = ws / "InterpSolver_assets"
        for f in args.mesh_from.iterdir():
            if not (dest / f.name).exists():
                shutil.copy2(f, dest / f.name)
    t0 = time.time()
    if not pipeline.create_assets():
        sys.exit("spyral: create_assets failed")
    assets_s = time.time() - t0
    ok = pipeline.validate()
    if not all(ok.values()):
        sys.exit(f"spyral: schema validation failed: {ok}")
    handles = {}
    timing = {p.name: {"wall_s": 0.0, "cpu_s": 0.0} for p in phases}
    errors = []
    try:
        pipeline.create_shared_data(handles)
        rng = default_rng(SeedSequence(args.seed))
        queue = NullQueue()
        for run in parse_runs(args.runs):
            trace = args.traces.resolve() / f"run_{run:04d}.h5"
            if not trace.exists():
                continue
            result = PhaseResult({"trace": trace}, True, run)
            for phase in phases:
                w0, c0 = time.time(), time.process_time()
                try:
                    result = phase.run(result, ws, queue, rng)
                except Exception as e:  # noqa: BLE001 - recorded, next run goes on
                    errors.append(
                        {
                            "run": run,
                            "phase": phase.name,
                            "error": f"{type(e).__name__}: {e}",
                            "traceback": traceback.format_exc(limit=3),
                        }
                    )
                    break
                finally:
                    timing[phase.name]["wall_s"] += time.time() - w0
                    timing[phase.name]["cpu_s"] += time.process_time() - c0
                if not result.successful:
                    errors.append({"run": run, "phase": phase.name, "error": "invalid result"})
                    break
    finally:
        for h in handles.values():
            h.close()
            h.unlink()
    summary = {"seed": args.seed, "assets_s": assets_s, "timing": timing, "errors": errors}
    (ws / "parity-spyral.json").write_text(json.dumps(summary, indent=2))
    for e in errors:
        print(f"spyral: run {e['run']} {e['phase']}: {e['error']}", file=sys.stderr)
    print(json.dumps({k: v for k, v in summary.items() if k != "errors"}))


if __name__ == "__main__":
    main()
