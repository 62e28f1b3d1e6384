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


def run_rust(ctx, name, traces, runs, active, copy=(), mesh_from=None, pads=None):
    """Runs spyral on a fresh workspace; `copy` lists (src folder, phase folder) to put in it
    first (artifacts of inactive phases)."""
    ws = ctx.work / name
    if ws.exists():
        shutil.rmtree(ws)
    ws.mkdir(parents=True)
    for src, folder in copy:
        shutil.copytree(src / folder, ws / folder)
    if mesh_from:
        shutil.copytree(mesh_from, ws / "InterpSolver_assets")
    pipe = params.rust_pipeline(ctx.repo, ws, traces, runs, active, RUST_SEED, pads)
    path = ctx.work / f"{name}.yaml"
    params.write_rust_pipeline(path, pipe)
    t0 = time.time()
    p = sh([ctx.bin, "run", path, "--no-display"], capture_output=True, text=True)
    ctx.timings[name] = time.time() - t0
    (ctx.work / f"{name}.log").write_text(p.stdout + p.stderr)
    return ws, p.returncode, p.stdout + p.stderr


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
    ap.add_argument("--commit", default="")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    ctx = Context(args)
    ctx.work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    runs = ctx.runs
    main_traces = ctx.traces(MAIN_FORMAT)

    log("simulating")
    t0 = time.time()
    simulate(ctx)
    ctx.timings["simulate"] = time.time() - t0

    log("Spyral reads our files (all formats)")
    import readcheck

    reads = readcheck.check({f: ctx.traces(f, False) for f in FORMATS}, [1])
    plane = readcheck.same_get(ctx.work / "traces" / "default-plane" / "run_0001.h5",
                               ctx.traces(MAIN_FORMAT, False) / "run_0001.h5", 1)

    log("Python Spyral, full chain, twice (run-to-run reference)")
    py_a = run_spyral(ctx, "py-a", main_traces, runs, SPYRAL_SEEDS[0])
    py_b = run_spyral(ctx, "py-b", main_traces, runs, SPYRAL_SEEDS[1],
                      mesh_from=py_a / "InterpSolver_assets")

    log("spyral, full chain")
    rs_full, rc_full, _ = run_rust(ctx, "rs-full", main_traces, runs, [True] * 4)
    our_mesh = rs_full / "InterpSolver_assets"
    rs_fp, rc_fp, _ = run_rust(ctx, "rs-full-spyral-pads", main_traces, runs, [True] * 4,
                               mesh_from=our_mesh, pads=params.spyral_pad_files())
    log("spyral, each phase fed Spyral's input")
    rs_cl, rc_cl, _ = run_rust(ctx, "rs-on-py-cloud", main_traces, runs, [False, True],
                               copy=[(py_a, "Pointcloud")])
    rs_es, rc_es, _ = run_rust(ctx, "rs-on-py-clusters", main_traces, runs, [False, False, True],
                               copy=[(py_a, "Pointcloud"), (py_a, "Cluster")])
    est_copy = [(py_a, "Pointcloud"), (py_a, "Cluster"), (py_a, "Estimation")]
    rs_so, rc_so, out_so = run_rust(ctx, "rs-on-py-estimates", main_traces, runs,
                                    [False, False, False, True], copy=est_copy, mesh_from=our_mesh)
    reads_zstd = rc_so == 0 and all(paths(rs_so, "InterpSolver", runs))
    if not reads_zstd:
        log("spyral could not start from Spyral's Estimation parquet (zstd); retrying with a "
            "snappy copy of the same table")
        zstd_error = next((l for l in out_so.splitlines() if "rror" in l), out_so[-300:])
        tmp = ctx.work / "py-a-snappy"
        if tmp.exists():
            shutil.rmtree(tmp)
        for folder in ("Pointcloud", "Cluster", "Estimation"):
            shutil.copytree(py_a / folder, tmp / folder)
        rewrite_snappy(tmp, runs)
        rs_so, rc_so, out_so = run_rust(
            ctx, "rs-on-py-estimates", main_traces, runs, [False, False, False, True],
            copy=[(tmp, f) for f in ("Pointcloud", "Cluster", "Estimation")], mesh_from=our_mesh)
    else:
        zstd_error = ""
    # Same, with Spyral's own mesh in place of ours (isolates the fit from the mesh).
    py_mesh = sorted((py_a / "InterpSolver_assets").glob("*.npy"))
    our_npy = sorted(our_mesh.glob("*.npy"))
    rs_sm = None
    if py_mesh and our_npy:
        src = ctx.work / "py-a-snappy" if not reads_zstd else py_a
        mesh_dir = ctx.work / "py-mesh-as-ours"
        if mesh_dir.exists():
            shutil.rmtree(mesh_dir)
        shutil.copytree(our_mesh, mesh_dir)
        shutil.copy2(py_mesh[0], mesh_dir / our_npy[0].name)
        rs_sm, _, _ = run_rust(ctx, "rs-on-py-estimates-py-mesh", main_traces, runs,
                               [False, False, False, True],
                               copy=[(src, f) for f in ("Pointcloud", "Cluster", "Estimation")],
                               mesh_from=mesh_dir)

    log("Pointcloud in the other formats")
    fmt_pc = {}
    for fmt in FORMATS:
        tr = ctx.traces(fmt, False)
        name = fmt.replace(".", "")
        pw = run_spyral(ctx, f"py-pc-{name}", tr, [1], SPYRAL_SEEDS[0], last="pointcloud")
        rw, _, _ = run_rust(ctx, f"rs-pc-{name}", tr, [1], [True], pads=ctx.sim_pads)
        fmt_pc[fmt] = compare.compare_pointclouds(pc_pairs(pw, rw, [1]))
        fmt_pc[fmt]["spyral_errors"] = json.loads((pw / "parity-spyral.json").read_text())["errors"]

    log("comparing")
    mcs = params.CLUSTER["min_cloud_size"]
    res = {
        "pc": {
            "full": compare.compare_pointclouds(pc_pairs(py_a, rs_full, runs)),
            "fullp": compare.compare_pointclouds(pc_pairs(py_a, rs_fp, runs)),
            "ref": compare.compare_pointclouds(pc_pairs(py_a, py_b, runs)),
        },
        "cl": {
            "full": compare.compare_clusters(cluster_runs(py_a, py_a, rs_full, rs_full, runs), mcs),
            "fullp": compare.compare_clusters(cluster_runs(py_a, py_a, rs_fp, rs_fp, runs), mcs),
            "iso": compare.compare_clusters(cluster_runs(py_a, py_a, py_a, rs_cl, runs), mcs),
            "ref": compare.compare_clusters(cluster_runs(py_a, py_a, py_b, py_b, runs), mcs),
        },
        "es": {
            "full": compare.compare_estimation(paths(py_a, "Estimation", runs), paths(rs_full, "Estimation", runs)),
            "fullp": compare.compare_estimation(paths(py_a, "Estimation", runs), paths(rs_fp, "Estimation", runs)),
            "iso": compare.compare_estimation(paths(py_a, "Estimation", runs), paths(rs_es, "Estimation", runs)),
            "ref": compare.compare_estimation(paths(py_a, "Estimation", runs), paths(py_b, "Estimation", runs)),
        },
        "so": {
            "full": compare.compare_solver(paths(py_a, "InterpSolver", runs), paths(rs_full, "InterpSolver", runs)),
            "fullp": compare.compare_solver(paths(py_a, "InterpSolver", runs), paths(rs_fp, "InterpSolver", runs)),
            "iso": compare.compare_solver(paths(py_a, "InterpSolver", runs), paths(rs_so, "InterpSolver", runs)),
            "ref": compare.compare_solver(paths(py_a, "InterpSolver", runs), paths(py_b, "InterpSolver", runs)),
        },
    }
    if rs_sm is not None:
        res["so"]["iso_pymesh"] = compare.compare_solver(
            paths(py_a, "InterpSolver", runs), paths(rs_sm, "InterpSolver", runs))
    truth = compare.load_truth(str(main_traces / "truth"), runs)
    acc = {
        "Spyral (run A)": compare.accuracy(paths(py_a, "InterpSolver", runs), truth),
        "Spyral (run B)": compare.accuracy(paths(py_b, "InterpSolver", runs), truth),
        "spyral, full chain": compare.accuracy(paths(rs_full, "InterpSolver", runs), truth),
        "spyral, full chain, pads = Spyral's CSVs": compare.accuracy(paths(rs_fp, "InterpSolver", runs), truth),
        "spyral on Spyral's estimates": compare.accuracy(paths(rs_so, "InterpSolver", runs), truth),
    }
    if rs_sm is not None:
        acc["spyral on Spyral's estimates and mesh"] = compare.accuracy(
            paths(rs_sm, "InterpSolver", runs), truth)
    sp_errors = {n: json.loads((ctx.work / n / "parity-spyral.json").read_text())
                 for n in ("py-a", "py-b")}
    rc = {"rs-full": rc_full, "rs-full-spyral-pads": rc_fp, "rs-on-py-cloud": rc_cl, "rs-on-py-clusters": rc_es,
          "rs-on-py-estimates": rc_so}
    total_s = time.time() - t_start

    commit = args.commit or git(ctx.repo, "rev-parse", "--short=12", "HEAD")
    dirty = "" if args.commit else (" (+ uncommitted changes)" if git(
        ctx.repo, "status", "--porcelain", "--untracked-files=no", "--", "core", "host", "phases") else "")
    text = render(ctx, res, acc, reads, plane, fmt_pc, sp_errors, rc, reads_zstd, zstd_error,
                  f"{commit}{dirty}", total_s)
    out = args.out or (ctx.repo / "bench-results" / "parity.md")
    notes = ""
    if out.exists():
        old = out.read_text()
        i = old.find("\n## Notes")
        if i >= 0:
            notes = old[i:]
    out.write_text(text + notes)
    (ctx.work / "parity.json").write_text(json.dumps(
        {"results": res, "accuracy": acc, "reads": reads, "default_plane": plane, "formats": fmt_pc,
         "timings": ctx.timings, "spyral": sp_errors, "exit_codes": rc}, indent=2, default=str))
    print(text)
    log(f"wrote {out} and {ctx.work / 'parity.json'} ({total_s / 60:.1f} min)")


def render(ctx, res, acc, reads, plane, fmt_pc, sp, rc, reads_zstd, zstd_error, commit, total_s):
    T = TARGETS
    pc, cl, es, so = res["pc"], res["cl"], res["es"], res["so"]
    L = []
    a = L.append
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    plane_src = "Spyral's packaged pad-plane CSVs (`--pad-map`)" if ctx.sim_pads else \
        "the simulator's built-in pad plane"
    a("# Parity with Python Spyral 1.1.2")
    a("")
    a(f"Commit {commit}, {now}. Made by `scripts/parity/run.sh` in {total_s / 60:.0f} min: "
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
    row("Pointcloud", "per-event max \\|dxyz\\|, median (mm)", "<= 0.01", "dxyz_median_mm", num, cols, "pc_dxyz", False)
    row("Pointcloud", "events with max \\|dxyz\\| <= 0.01 mm", "", "dxyz_within_0.01mm", pct, cols)
    row("Pointcloud", "largest per-event max \\|dxyz\\| (mm)", "", "dxyz_max_mm", num, cols)
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
    if "iso_pymesh" in so:
        m = so["iso_pymesh"]
        a("")
        a("InterpSolver fed Spyral's estimates **and Spyral's mesh file** (isolates the fit from "
          f"the mesh): fits {m['fits_a']} / {m['fits_b']} / {m['matched']}; KE within 1% "
          f"{pct(m['ke_1pct'])}, polar {pct(m['polar_1pct'])}, vertex z {pct(m['vz_1pct'])}; "
          f"polar ours − Spyral {q3(m['dpolar_deg'])} deg; KE ours − Spyral {q3(m['dke_mev'])} MeV.")
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
