"""The parity comparison of spyral with Python Spyral 1.1.2 (issue 13): simulates runs in every
trace format, checks that Spyral reads them, runs both pipelines on the same files with the
same parameters (params.py), compares every phase on the full chain and stage by stage (each of
our phases fed Spyral's own input), measures Spyral's run-to-run agreement, and writes the table
to bench-results/parity.md. Started by scripts/parity/run.sh, which prepares the venv and the
binary; see there for the environment variables.

Usage: python parity.py --repo REPO --bin SPYRAL --work DIR [--runs 4] [--events 120]
                        [--format-events 40] [--commit HASH] [--out FILE]
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import compare  # noqa: E402
import params  # noqa: E402

FORMATS = ["legacy", "merger-1.0", "merger-2.0", "harmonizer-0.1"]
MAIN_FORMAT = "merger-1.0"
SIM_SEED = 13
SPYRAL_SEEDS = (101, 202)
RUST_SEED = 7

TARGETS = {
    "pc_same": 0.995,
    "pc_dxyz": 0.01,
    "ari": 0.98,
    "est": 0.99,
    "ke": 0.85,
    "polar": 0.97,
    "vz": 0.95,
}


def log(msg):
    print(f"[parity {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], **kw)


class Context:
    def __init__(self, args):
        self.repo = args.repo.resolve()
        self.bin = args.bin.resolve()
        self.work = args.work.resolve()
        self.runs = list(range(1, args.runs + 1))
        self.events = args.events
        self.format_events = args.format_events
        self.py = sys.executable
        self.sim_pads = params.spyral_pad_files() if args.sim_pads == "spyral" else None
        self.timings = {}

    def traces(self, fmt, main=True):
        return self.work / "traces" / (fmt if main else f"formats/{fmt}")


def simulate(ctx):
    """The main runs, the per-format runs, and one run with the simulator's own default pad
    plane (compared with the per-format merger-1.0 run, made with Spyral's plane)."""
    pads = [] if ctx.sim_pads is None else ["--pad-map", *ctx.sim_pads]
    jobs = [(ctx.traces(MAIN_FORMAT), MAIN_FORMAT, len(ctx.runs), ctx.events, pads)]
    jobs += [(ctx.traces(f, False), f, 1, ctx.format_events, pads) for f in FORMATS]
    jobs += [(ctx.work / "traces" / "default-plane", MAIN_FORMAT, 1, ctx.format_events, [])]
    for out, fmt, runs, events, extra in jobs:
        sh(
            [ctx.bin, "simulate", "--out", out, "--runs", runs, "--events", events,
             "--seed", SIM_SEED, "--format", fmt, "--overwrite", *extra],
            check=True, stdout=subprocess.DEVNULL,
        )


def run_spyral(ctx, name, traces, runs, seed, last="solver", mesh_from=None):
    ws = ctx.work / name
    if ws.exists():
        shutil.rmtree(ws)
    cmd = [ctx.py, HERE / "spyral_side.py", "--repo", ctx.repo, "--traces", traces,
           "--workspace", ws, "--runs", f"{min(runs)}-{max(runs)}", "--seed", seed,
           "--last", last]
    if mesh_from:
        cmd += ["--mesh-from", mesh_from]
    t0 = time.time()
    with open(ctx.work / f"{name}.log", "w") as logf:
        p = sh(cmd, stdout=logf, stderr=subprocess.STDOUT)
    ctx.timings[name] = time.time() - t0
    if p.returncode != 0:
        sys.exit(f"Python Spyral failed, see {ctx.work / (name + '.log')}")
    return ws


def run_rust(ctx, name, traces, runs, active, copy=(), mesh_from=None, pads=None, solver=None,
             mesh_npy=None):
    """Runs spyral on a fresh workspace; `copy` lists (src folder, phase folder) to put in it
    first (artifacts of inactive phases); `solver` overrides InterpSolver parameters; with
    `mesh_npy`, the assets are made first (`spyral assets`) and the mesh array is then replaced
    by that .npy file (same shape; used to hand our solver Spyral's mesh)."""
    ws = ctx.work / name
    if ws.exists():
        shutil.rmtree(ws)
    ws.mkdir(parents=True)
    for src, folder in copy:
        shutil.copytree(src / folder, ws / folder)
    if mesh_from:
        shutil.copytree(mesh_from, ws / "InterpSolver_assets")
    pipe = params.rust_pipeline(ctx.repo, ws, traces, runs, active, RUST_SEED, pads)
    if solver:
        pipe["phases"][3]["config"].update(solver)
    path = ctx.work / f"{name}.yaml"
    params.write_rust_pipeline(path, pipe)
    t0 = time.time()
    out = ""
    if mesh_npy:
        p = sh([ctx.bin, "assets", path], capture_output=True, text=True)
        out += p.stdout + p.stderr
        ours = sorted((ws / "InterpSolver_assets").glob("*.npy"))
        if p.returncode != 0 or len(ours) != 1:
            sys.exit(f"spyral assets failed for {name}: {out[-500:]}")
        shutil.copy2(mesh_npy, ours[0])
    p = sh([ctx.bin, "run", path, "--no-display"], capture_output=True, text=True)
    out += p.stdout + p.stderr
    ctx.timings[name] = time.time() - t0
    (ctx.work / f"{name}.log").write_text(out)
    return ws, p.returncode, out


def rust_report(ws):
    """{phase: wall seconds} summed over runs from the latest launch's report.json."""
    path = ws / "log" / "latest" / "report.json"
    out = {}
    try:
        rep = json.loads(path.read_text())
    except (OSError, ValueError):
        return out
    for run in rep.get("runs", []):
        for ph in run.get("phases", []):
            if ph.get("status") in ("done", "ok", "succeeded", "success"):
                out[ph["phase"]] = out.get(ph["phase"], 0.0) + float(ph.get("wall_s", 0.0))
    return out


def paths(ws, phase, runs):
    return [compare.artifact(str(ws), phase, r) for r in runs]


def pc_pairs(wa, wb, runs):
    return [(a, b) for a, b in zip(paths(wa, "Pointcloud", runs), paths(wb, "Pointcloud", runs)) if a and b]


def cluster_runs(cloud_a, clus_a, cloud_b, clus_b, runs):
    out = []
    for r in runs:
        p = [compare.artifact(str(cloud_a), "Pointcloud", r), compare.artifact(str(clus_a), "Cluster", r),
             compare.artifact(str(cloud_b), "Pointcloud", r), compare.artifact(str(clus_b), "Cluster", r)]
        if all(p):
            out.append(tuple(p))
    return out


def rewrite_snappy(ws, runs):
    """Rewrites the Estimation parquet files of `ws` with the snappy codec (same content)."""
    import polars as pl

    for p in paths(ws, "Estimation", runs):
        if p:
            pl.read_parquet(p).write_parquet(p, compression="snappy")


def git(repo, *args):
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


# ---------------------------------------------------------------------------------------------
# formatting


def pct(x):
    return "n/a" if x is None or x != x else f"{100 * x:.1f}%"


def num(x, fmt="{:.3g}"):
    return "n/a" if x is None or x != x else fmt.format(x)


def q3(q, fmt="{:+.3f}"):
    m, lo, hi = q
    if m != m:
        return "n/a"
    return f"{fmt.format(m)} [{fmt.format(lo)} .. {fmt.format(hi)}]"


def mark(value, target, higher=True):
    if value is None or value != value:
        return ""
    ok = value >= target if higher else value <= target
    return " ✓" if ok else " ✗"


def run_all(ctx):
    """Every simulation and pipeline run; returns what the analysis needs besides the files."""
    runs = ctx.runs
    main_traces = ctx.traces(MAIN_FORMAT)
    log("simulating")
    t0 = time.time()
    simulate(ctx)
    ctx.timings["simulate"] = time.time() - t0

    log("Python Spyral, full chain, twice (run-to-run reference)")
    py_a = run_spyral(ctx, "py-a", main_traces, runs, SPYRAL_SEEDS[0])
    run_spyral(ctx, "py-b", main_traces, runs, SPYRAL_SEEDS[1],
               mesh_from=py_a / "InterpSolver_assets")

    log("spyral, full chain")
    rc = {}
    rs_full, rc["rs-full"], _ = run_rust(ctx, "rs-full", main_traces, runs, [True] * 4)
    our_mesh = rs_full / "InterpSolver_assets"
    _, rc["rs-full-spyral-pads"], _ = run_rust(
        ctx, "rs-full-spyral-pads", main_traces, runs, [True] * 4, mesh_from=our_mesh,
        pads=params.spyral_pad_files())
    log("spyral, each phase fed Spyral's input")
    _, rc["rs-on-py-cloud"], _ = run_rust(ctx, "rs-on-py-cloud", main_traces, runs, [False, True],
                                          copy=[(py_a, "Pointcloud")])
    _, rc["rs-on-py-clusters"], _ = run_rust(
        ctx, "rs-on-py-clusters", main_traces, runs, [False, False, True],
        copy=[(py_a, "Pointcloud"), (py_a, "Cluster")])
    est = ("Pointcloud", "Cluster", "Estimation")
    solver_only = [False, False, False, True]
    rs_so, rc_so, out_so = run_rust(ctx, "rs-on-py-estimates", main_traces, runs, solver_only,
                                    copy=[(py_a, f) for f in est], mesh_from=our_mesh)
    reads_zstd = rc_so == 0 and all(paths(rs_so, "InterpSolver", runs))
    zstd_error = ""
    src = py_a
    if not reads_zstd:
        log("spyral could not start from Spyral's Estimation parquet (zstd); retrying with a "
            "snappy copy of the same table")
        zstd_error = next((ln for ln in out_so.splitlines() if "rror" in ln), out_so[-300:])
        src = ctx.work / "py-a-snappy"
        if src.exists():
            shutil.rmtree(src)
        for folder in est:
            shutil.copytree(py_a / folder, src / folder)
        rewrite_snappy(src, runs)
        _, rc_so, _ = run_rust(ctx, "rs-on-py-estimates", main_traces, runs, solver_only,
                               copy=[(src, f) for f in est], mesh_from=our_mesh)
    rc["rs-on-py-estimates"] = rc_so
    # Same, with Spyral's own mesh file in place of ours: isolates the fit from the mesh.
    py_mesh = sorted((py_a / "InterpSolver_assets").glob("*.npy"))[0]
    _, rc["rs-on-py-estimates-py-mesh"], _ = run_rust(
        ctx, "rs-on-py-estimates-py-mesh", main_traces, runs, solver_only,
        copy=[(src, f) for f in est], mesh_npy=py_mesh)
    # The physically exact grid (`mesh_grid: exact`: nodes where the mesh was computed) instead
    # of Spyral's node positions: on Spyral's mesh, on ours, and on the full chain.
    exact = {"mesh_grid": "exact"}
    _, rc["rs-on-py-estimates-py-mesh-exact"], _ = run_rust(
        ctx, "rs-on-py-estimates-py-mesh-exact", main_traces, runs, solver_only,
        copy=[(src, f) for f in est], mesh_npy=py_mesh, solver=exact)
    _, rc["rs-on-py-estimates-exact"], _ = run_rust(
        ctx, "rs-on-py-estimates-exact", main_traces, runs, solver_only,
        copy=[(src, f) for f in est], mesh_from=our_mesh, solver=exact)
    _, rc["rs-full-exact"], _ = run_rust(
        ctx, "rs-full-exact", main_traces, runs, solver_only,
        copy=[(rs_full, f) for f in est], mesh_from=our_mesh, solver=exact)

    log("Pointcloud in the other formats")
    for fmt in FORMATS:
        tr = ctx.traces(fmt, False)
        name = fmt.replace(".", "")
        run_spyral(ctx, f"py-pc-{name}", tr, [1], SPYRAL_SEEDS[0], last="pointcloud")
        _, rc[f"rs-pc-{name}"], _ = run_rust(ctx, f"rs-pc-{name}", tr, [1], [True],
                                            pads=ctx.sim_pads)
    return {"exit_codes": rc, "reads_zstd": reads_zstd, "zstd_error": zstd_error,
            "timings": ctx.timings}


def analyse(ctx):
    """Every comparison, from the files in the work folder."""
    import readcheck

    runs = ctx.runs
    w = ctx.work
    py_a, py_b = w / "py-a", w / "py-b"
    log("Spyral reads our files (all formats)")
    reads = readcheck.check({f: ctx.traces(f, False) for f in FORMATS}, [1])
    plane = readcheck.same_get(w / "traces" / "default-plane" / "run_0001.h5",
                               ctx.traces(MAIN_FORMAT, False) / "run_0001.h5", 1)
    fmt_pc = {}
    for fmt in FORMATS:
        name = fmt.replace(".", "")
        pw, rw = w / f"py-pc-{name}", w / f"rs-pc-{name}"
        fmt_pc[fmt] = compare.compare_pointclouds(pc_pairs(pw, rw, [1]))
        fmt_pc[fmt]["spyral_errors"] = json.loads((pw / "parity-spyral.json").read_text())["errors"]

    log("comparing")
    mcs = params.CLUSTER["min_cloud_size"]
    full, fullp = w / "rs-full", w / "rs-full-spyral-pads"

    def est(b):
        return compare.compare_estimation(paths(py_a, "Estimation", runs), paths(b, "Estimation", runs))

    def sol(b):
        return compare.compare_solver(paths(py_a, "InterpSolver", runs), paths(b, "InterpSolver", runs))

    res = {
        "pc": {
            "full": compare.compare_pointclouds(pc_pairs(py_a, full, runs)),
            "fullp": compare.compare_pointclouds(pc_pairs(py_a, fullp, runs)),
            "ref": compare.compare_pointclouds(pc_pairs(py_a, py_b, runs)),
        },
        "cl": {
            "full": compare.compare_clusters(cluster_runs(py_a, py_a, full, full, runs), mcs),
            "fullp": compare.compare_clusters(cluster_runs(py_a, py_a, fullp, fullp, runs), mcs),
            "iso": compare.compare_clusters(
                cluster_runs(py_a, py_a, py_a, w / "rs-on-py-cloud", runs), mcs),
            "ref": compare.compare_clusters(cluster_runs(py_a, py_a, py_b, py_b, runs), mcs),
        },
        "es": {"full": est(full), "fullp": est(fullp), "iso": est(w / "rs-on-py-clusters"),
               "ref": est(py_b)},
        "so": {"full": sol(full), "fullp": sol(fullp), "iso": sol(w / "rs-on-py-estimates"),
               "ref": sol(py_b), "iso_pymesh": sol(w / "rs-on-py-estimates-py-mesh"),
               "iso_pymesh_exact": sol(w / "rs-on-py-estimates-py-mesh-exact"),
               "iso_exact": sol(w / "rs-on-py-estimates-exact"),
               "full_exact": sol(w / "rs-full-exact")},
    }
    truth = compare.load_truth(str(ctx.traces(MAIN_FORMAT) / "truth"), runs)
    acc = {}
    for label, ws in (
        ("Spyral (run A)", py_a),
        ("Spyral (run B)", py_b),
        ("spyral, full chain", full),
        ("spyral, full chain, pads = Spyral's CSVs", fullp),
        ("spyral on Spyral's estimates", w / "rs-on-py-estimates"),
        ("spyral on Spyral's estimates and mesh", w / "rs-on-py-estimates-py-mesh"),
        ("spyral, full chain, `mesh_grid: exact`", w / "rs-full-exact"),
        ("spyral on Spyral's estimates, `mesh_grid: exact`", w / "rs-on-py-estimates-exact"),
        ("spyral on Spyral's estimates and mesh, `mesh_grid: exact`",
         w / "rs-on-py-estimates-py-mesh-exact"),
    ):
        acc[label] = compare.accuracy(paths(ws, "InterpSolver", runs), truth)
    sp = {n: json.loads((w / n / "parity-spyral.json").read_text()) for n in ("py-a", "py-b")}
    ours = rust_report(fullp)
    return {"results": res, "accuracy": acc, "reads": reads, "default_plane": plane,
            "formats": fmt_pc, "spyral": sp, "ours_phase_s": ours}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--bin", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--events", type=int, default=120)
    ap.add_argument("--format-events", type=int, default=40)
    ap.add_argument("--sim-pads", choices=["spyral", "default"], default="spyral",
                    help="pad plane of the simulated runs: Spyral's packaged CSVs (default) or "
                         "the simulator's built-in plane")
    ap.add_argument("--compare-only", action="store_true",
                    help="only compare the workspaces an earlier run left in --work")
    ap.add_argument("--commit", default="")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    ctx = Context(args)
    ctx.work.mkdir(parents=True, exist_ok=True)
    state_path = ctx.work / "state.json"
    t_start = time.time()
    if args.compare_only:
        state = json.loads(state_path.read_text())
        ctx.timings = state["timings"]
    else:
        state = run_all(ctx)
        state["total_s"] = time.time() - t_start
        state_path.write_text(json.dumps(state, indent=2))
    found = analyse(ctx)

    commit = args.commit or git(ctx.repo, "rev-parse", "--short=12", "HEAD")
    dirty = "" if args.commit else (" (+ uncommitted changes)" if git(
        ctx.repo, "status", "--porcelain", "--untracked-files=no", "--", "core", "host", "phases") else "")
    text = render(ctx, found, state, f"{commit}{dirty}")
    out = args.out or (ctx.repo / "bench-results" / "parity.md")
    notes = ""
    if out.exists():
        old = out.read_text()
        i = old.find("\n## Notes")
        if i >= 0:
            notes = old[i:]
    out.write_text(text + notes)
    (ctx.work / "parity.json").write_text(json.dumps(dict(found, **state), indent=2, default=str))
    print(text)
    log(f"wrote {out} and {ctx.work / 'parity.json'} ({state['total_s'] / 60:.1f} min of runs)")


def render(ctx, found, state, commit):
    T = TARGETS
    res, acc, reads = found["results"], found["accuracy"], found["reads"]
    plane, fmt_pc, sp = found["default_plane"], found["formats"], found["spyral"]
    rc, reads_zstd, zstd_error = state["exit_codes"], state["reads_zstd"], state["zstd_error"]
    total_s = state["total_s"]
    pc, cl, es, so = res["pc"], res["cl"], res["es"], res["so"]
    L = []
    a = L.append
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    plane_src = "Spyral's packaged pad-plane CSVs (`--pad-map`)" if ctx.sim_pads else \
        "the simulator's built-in pad plane"
    a("# Parity with Python Spyral 1.1.2")
    a("")
    a(f"Commit {commit}, {now}. Made by `scripts/parity/run.sh` (the runs took {total_s / 60:.0f} min "
      "after the venv and the build): "
      f"{len(ctx.runs)} merger-1.0 runs x {ctx.events} events simulated by `spyral simulate` "
      f"(default reaction, {plane_src}); Spyral's default parameters "
      f"(`scripts/parity/params.py`), interpolation mesh {params.SOLVER['n_time_steps']} x "
      f"{params.SOLVER['interp_ke_bins']} x {params.SOLVER['interp_polar_bins']}; one process each.")
    a("")
    a("Columns: **full chain** = both pipelines from the same trace files, ours with its "
      "default pad plane; **pads = Spyral's CSVs** = the same with our `pads` set to Spyral's "
      "packaged files; **fed Spyral's input** = each of our phases run on Spyral's own output "
      "of the previous phase (identical inputs); **Spyral vs Spyral** = two Spyral runs with "
      "different seeds (its run-to-run agreement). ✓/✗: target met or not.")
    a("")
    a("| phase | measure | target | full chain | pads = Spyral's CSVs | fed Spyral's input | Spyral vs Spyral |")
    a("|---|---|---|---|---|---|---|")

    def row(phase, label, target, key, fmt, cols, tkey=None, higher=True):
        cells = []
        for c in cols:
            if c is None:
                cells.append("")
                continue
            v = c[key]
            cell = fmt(v)
            if tkey and c is not cols[-1]:
                cell += mark(v, T[tkey], higher)
            cells.append(cell)
        a(f"| {phase} | {label} | {target} | " + " | ".join(cells) + " |")

    f, fp, r = pc["full"], pc["fullp"], pc["ref"]
    cols = [f, fp, None, r]
    row("Pointcloud", "events with the same point count", ">= 99.5%", "same_count", pct, cols, "pc_same")
    row("Pointcloud", "events with the same points (pad, peak rank)", "", "same_points", pct, cols)
    row("Pointcloud", "same points: per-event max \\|dxyz\\|, median (mm)", "<= 0.01", "dxyz_median_mm", num, cols, "pc_dxyz", False)
    row("Pointcloud", "same points: largest per-event max \\|dxyz\\| (mm)", "", "dxyz_max_mm", num, cols)
    row("Pointcloud", "events with every point within 0.01 mm", "", "dxyz_within_0.01mm", pct, cols)
    cols = [cl["full"], cl["fullp"], cl["iso"], cl["ref"]]
    row("Cluster", "ARI mean", ">= 0.98", "ari_mean", lambda v: num(v, "{:.4f}"), cols, "ari")
    row("Cluster", "events compared", "", "events", str, cols)
    row("Cluster", "events with the same cluster count", "", "same_cluster_count", pct, cols)
    cols = [es["full"], es["fullp"], es["iso"], es["ref"]]
    a("| Estimation | rows Spyral / other / matched | | " + " | ".join(
        f"{c['rows_a']} / {c['rows_b']} / {c['matched']}" for c in cols) + " |")
    row("Estimation", "matched rows with every column within 1%", ">= 99%", "within_1pct", pct, cols, "est")
    cols = [so["full"], so["fullp"], so["iso"], so["ref"]]
    a("| InterpSolver | fits Spyral / other / matched | | " + " | ".join(
        f"{c['fits_a']} / {c['fits_b']} / {c['matched']}" for c in cols) + " |")
    row("InterpSolver", "KE within 1%", ">= 85%", "ke_1pct", pct, cols, "ke")
    row("InterpSolver", "polar within 1%", ">= 97%", "polar_1pct", pct, cols, "polar")
    row("InterpSolver", "vertex z within 1%", ">= 95%", "vz_1pct", pct, cols, "vz")
    row("InterpSolver", "polar, other − Spyral: median [16% .. 84%] (deg)", "", "dpolar_deg", q3, cols)
    row("InterpSolver", "KE, other − Spyral: median [16% .. 84%] (MeV)", "", "dke_mev", q3, cols)
    if "iso_pymesh_exact" in so:
        a("")
        a("InterpSolver fed Spyral's estimates, with **Spyral's mesh file** or ours, and either "
          "grid: `mesh_grid: spyral` (the default: Spyral's interpolator, node i at "
          "`min + i (max − min)/bins`) or `mesh_grid: exact` (node i at "
          "`min + i (max − min)/(bins − 1)`, where the mesh was computed). The full-chain row "
          "is our own chain with the exact grid.")
        a("")
        a("| mesh, grid | fits Spyral / ours / matched | KE within 1% | polar within 1% | vertex z within 1% | polar ours − Spyral (deg) | KE ours − Spyral (MeV) |")
        a("|---|---|---|---|---|---|---|")
        for label, m in (("Spyral's mesh, `spyral` grid", so["iso_pymesh"]),
                         ("our mesh, `spyral` grid", so["iso"]),
                         ("Spyral's mesh, `exact` grid", so["iso_pymesh_exact"]),
                         ("our mesh, `exact` grid", so["iso_exact"]),
                         ("full chain, `exact` grid", so["full_exact"])):
            a(f"| {label} | {m['fits_a']} / {m['fits_b']} / {m['matched']} | {pct(m['ke_1pct'])} | "
              f"{pct(m['polar_1pct'])} | {pct(m['vz_1pct'])} | {q3(m['dpolar_deg'])} | {q3(m['dke_mev'])} |")
    a("")
    if not reads_zstd:
        a("spyral could **not** start from Spyral's own Estimation parquet (polars' default "
          f"codec, zstd): `{zstd_error.strip()[:200]}`. The InterpSolver 'fed Spyral's input' "
          "numbers use a snappy copy of the same table.")
    else:
        a("spyral starts from Spyral's own Estimation parquet (polars' default codec, zstd).")
    a("")
    a("## Accuracy against the simulator's truth")
    a("")
    a("Residual (fit − truth), median [16% .. 84%], over events with one deuteron; a fit "
      "matches the truth when its polar angle is within 0.35 rad of the deuteron's.")
    a("")
    a("| pipeline | fits matched to truth | KE (MeV) | polar (deg) | vertex z (mm) |")
    a("|---|---|---|---|---|")
    for name, x in acc.items():
        a(f"| {name} | {x['found']}/{x['truth_events']} | {q3(x['ke_mev'])} | {q3(x['polar_deg'])} | {q3(x['vz_mm'], '{:+.1f}')} |")
    a("")
    a("## Spyral reads our trace files")
    a("")
    a(f"The same run (1 x {ctx.format_events} events, same seed) simulated in each format; "
      "Spyral's `create_reader` on each; GET and FRIB matrices (Spyral's `read_raw_*_event`) "
      "compared with the merger-1.0 file; Spyral's `read_event` on the first events; both "
      "Pointcloud phases on each format (ours with the simulation's pad plane).")
    a("")
    a("| format | Spyral reader | events read / expected | GET identical | FRIB identical | read_event | Pointcloud same count | max \\|dxyz\\| median (mm) |")
    a("|---|---|---|---|---|---|---|---|")
    for fmt in FORMATS:
        x, p = reads[fmt], fmt_pc[fmt]
        errs = "; ".join(x["read_event_errors"]) or "ok"
        if x.get("orig_ok"):
            errs += f" ({x['orig_ok']})"
        sperr = p["spyral_errors"]
        pcs = pct(p["same_count"]) if p["events"] else (
            "Spyral failed: " + sperr[0]["error"][:80] if sperr else "n/a")
        a(f"| {fmt} | {x['reader']}{' ✓' if x['reader_ok'] else ' ✗'} | {x['events_read']} / {x['events_expected']}{' ✓' if x['range_ok'] else ' ✗'} | {x['get_identical']}/{x['events_compared']} | {x['frib_identical']}/{x['events_compared']} | {errs[:160].replace('|', '/')} | {pcs} | {num(p['dxyz_median_mm'])} |")
    a("")
    a("Expected events: the truth records' events, except that Spyral's merger and harmonizer "
      "readers stop before the last event of a file (we read it).")
    a("")
    a(f"Simulator's default pad plane vs Spyral's pad-plane CSVs (same run, merger-1.0): GET "
      f"matrices identical in {plane[0]}/{plane[1]} events.")
    a("")
    a("## Time")
    a("")
    a("| step | wall (s) |")
    a("|---|---|")
    for k, v in ctx.timings.items():
        a(f"| {k} | {v:.0f} |")
    a("")
    ours = found["ours_phase_s"]
    if ours:
        a("spyral per phase (wall s, full chain with Spyral's pad CSVs, 1 worker): " + ", ".join(
            f"{k} {v:.1f}" for k, v in ours.items()) + ".")
        a("")
    for n in ("py-a", "py-b"):
        t = sp[n]["timing"]
        a(f"Spyral {n[-1].upper()} per phase (wall s): " + ", ".join(
            f"{k} {v['wall_s']:.0f}" for k, v in t.items()) + f"; mesh {sp[n]['assets_s']:.0f}.")
        a("")
    errs = [e for n in ("py-a", "py-b") for e in sp[n]["errors"]]
    bad = {k: v for k, v in rc.items() if v != 0}
    if errs or bad:
        a("Failures: " + "; ".join(
            [f"Spyral run {e['run']} {e['phase']}: {e['error'][:120]}" for e in errs]
            + [f"{k} exit code {v}" for k, v in bad.items()]))
        a("")
    a("Cluster-count differences, first examples (cluster sizes, Spyral vs ours): full chain "
      + json.dumps(cl["full"]["examples"][:2]) + "; fed Spyral's clouds "
      + json.dumps(cl["iso"]["examples"][:3]) + ".")
    a("")
    a("Estimation columns off by more than 1% (matched rows): fed Spyral's clusters "
      + json.dumps(es["iso"]["columns_off"]) + "; full chain " + json.dumps(es["full"]["columns_off"]) + ".")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
