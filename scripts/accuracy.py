#!/usr/bin/env python3
"""Accuracy of the Estimation and InterpSolver phases on simulated data, against the
simulator's truth records.

Usage: scripts/accuracy.py DEMO_DIR   (e.g. the folder `spyral demo` made)

For every event with exactly one light product (the deuteron of 16C(d,d) elastic scattering),
each Estimation row (and InterpSolver fit) of that event is matched to the deuteron if its polar
angle is within 0.35 rad of the deuteron's (other rows are the heavy beam-like recoil or noise).
Prints, for the Estimation guess and for the fit: the fraction of events with a matched track,
and the median and 68% half-width of the residuals of vertex z (mm), polar angle (deg) and
B rho (T m) / kinetic energy (MeV). Needs polars.
"""
import glob
import json
import math
import os
import sys

import polars as pl


def load_truth(demo):
    truth = {}
    for path in sorted(glob.glob(os.path.join(demo, "traces", "truth", "run_*.jsonl"))):
        run = int(os.path.basename(path)[4:8])
        with open(path) as f:
            for line in f:
                t = json.loads(line)
                light = [p for p in t["particles"] if p["z"] <= 2]
                if t["reaction"] and len(light) == 1:
                    truth[(run, t["event_id"])] = light[0]
    return truth


def stats(values):
    v = sorted(values)
    if not v:
        return float("nan"), float("nan")
    med = v[len(v) // 2]
    lo = v[int(0.16 * (len(v) - 1))]
    hi = v[int(0.84 * (len(v) - 1))]
    return med, (hi - lo) / 2


def match(df, truth, run, cols):
    rows = {}
    for r in df.iter_rows(named=True):
        key = (run, r["event"])
        if key not in truth:
            continue
        d = truth[key]
        if abs(r["polar"] - d["polar_rad"]) > 0.35:
            continue
        best = rows.get(key)
        if best is None or abs(r["polar"] - d["polar_rad"]) < abs(best["polar"] - d["polar_rad"]):
            rows[key] = r
    return rows


def main():
    demo = sys.argv[1] if len(sys.argv) > 1 else "spyral-demo"
    ws = os.path.join(demo, "workspace")
    truth = load_truth(demo)
    est, fit = {}, {}
    for path in sorted(glob.glob(os.path.join(ws, "Estimation", "run_*.parquet"))):
        run = int(os.path.basename(path)[4:8])
        est.update(match(pl.read_parquet(path), truth, run, None))
    for path in sorted(glob.glob(os.path.join(ws, "InterpSolver", "run_*.parquet"))):
        run = int(os.path.basename(path)[4:8])
        fit.update(match(pl.read_parquet(path), truth, run, None))
    n = len(truth)
    print(f"single-deuteron events: {n}")
    print("| stage | tracks found | vertex z (mm) median / 68% | polar (deg) median / 68% | B rho (T m) median / 68% | KE (MeV) median / 68% |")
    print("|---|---|---|---|---|---|")
    for name, rows, zscale in [("Estimation", est, 1.0), ("InterpSolver", fit, 1000.0)]:
        dz = [r["vertex_z"] * zscale - truth[k]["vertex_mm"][2] for k, r in rows.items()]
        dp = [math.degrees(r["polar"] - truth[k]["polar_rad"]) for k, r in rows.items()]
        db = [r["brho"] - truth[k]["brho_tm"] for k, r in rows.items()]
        dk = [r["ke"] - truth[k]["ke_mev"] for k, r in rows.items()] if name == "InterpSolver" else []
        z, p, b, k = stats(dz), stats(dp), stats(db), stats(dk)
        kt = f"{k[0]:+.3f} / {k[1]:.3f}" if dk else "-"
        print(f"| {name} | {len(rows)}/{n} ({100 * len(rows) / max(n, 1):.0f}%) | {z[0]:+.1f} / {z[1]:.1f} | {p[0]:+.2f} / {p[1]:.2f} | {b[0]:+.4f} / {b[1]:.4f} | {kt} |")


if __name__ == "__main__":
    main()
