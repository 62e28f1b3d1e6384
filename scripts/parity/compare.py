"""Phase-by-phase comparison of two sets of artifacts (Spyral vs spyral, or Spyral vs Spyral),
and accuracy against the simulator's truth. Used by parity.py; every function returns plain
numbers so the caller can put them in a table.

How things are matched and measured:
- Points: within an event, a point is keyed by (pad id, rank of its time bucket on that pad).
  When both clouds of an event have the same keys, points are paired by key and "max |dxyz|"
  is the largest distance between paired points of the event.
- Clusters: each cloud point gets the index of the cluster that holds it (found by its exact
  x, y, z in that side's cloud) or -1; the adjusted Rand index (scikit-learn) is computed over
  the points present on both sides (by key), for events whose clouds reach `min_cloud_size` on
  both sides.
- Estimation and InterpSolver rows: within an event, rows are paired greedily by the smallest
  normalised difference of polar angle and vertex z; a pair counts as matched when the polar
  angles differ by less than 0.2 rad and the vertex z by less than 50 mm.
- Estimation "within 1%": every float column satisfies |a - b| <= 1% of max(|a|, |b|, m), where
  m is the median |value| of that column on the reference side (so columns that cross zero,
  such as vertex_x, are not held to 1% of a number near zero); azimuthal differences are taken
  modulo 2 pi; integer columns must be equal.
- InterpSolver "within 1%": |a - b| <= 1% of |reference| for KE, polar and vertex z.
- Truth: events with exactly one light product (Z <= 2, the deuteron) are matched to the row
  (or fit) of that event whose polar angle is closest to the truth, within 0.35 rad.
"""

import glob
import json
import math
import os
from collections import defaultdict

import h5py
import numpy as np
import polars as pl

TWO_PI = 2.0 * math.pi


# ---------------------------------------------------------------------------------------------
# readers


def run_number(path):
    return int(os.path.basename(path)[4:8])


def read_clouds(path):
    """{event: (N, 8) array} of a Pointcloud artifact."""
    out = {}
    with h5py.File(path, "r") as f:
        g = f["cloud"]
        for name in g:
            if name.startswith("cloud_"):
                out[int(name[6:])] = g[name][:]
    return out


def read_clusters(path):
    """{event: [ (N, 5) array per cluster ]} of a Cluster artifact."""
    out = {}
    with h5py.File(path, "r") as f:
        g = f["cluster"]
        for name in g:
            if not name.startswith("event_"):
                continue
            ev = g[name]
            n = int(ev.attrs["nclusters"])
            out[int(name[6:])] = [ev[f"cluster_{k}"]["cloud"][:] for k in range(n) if f"cluster_{k}" in ev]
    return out


def artifact(ws, phase, run):
    """The artifact of `phase` for `run` in workspace `ws` (None if missing)."""
    stem = f"run_{run:04d}"
    if phase == "Pointcloud":
        p = os.path.join(ws, "Pointcloud", stem + ".h5")
    elif phase == "Cluster":
        p = os.path.join(ws, "Cluster", stem + ".h5")
    elif phase == "Estimation":
        p = os.path.join(ws, "Estimation", stem + ".parquet")
    else:
        hits = sorted(glob.glob(os.path.join(ws, "InterpSolver", stem + "_*.parquet")))
        p = hits[0] if hits else ""
    return p if os.path.isfile(p) else None


def read_table(path):
    try:
        return pl.read_parquet(path)
    except Exception:  # noqa: BLE001 - an empty result (0 columns) or unreadable file
        return None


# ---------------------------------------------------------------------------------------------
# statistics


def quantiles(values):
    """(median, 16%, 84%) or NaNs."""
    if len(values) == 0:
        return (float("nan"),) * 3
    v = np.asarray(values, dtype=float)
    return tuple(float(x) for x in np.percentile(v, [50, 16, 84]))


def frac(num, den):
    return float("nan") if den == 0 else num / den


# ---------------------------------------------------------------------------------------------
# Pointcloud


def point_keys(cloud):
    """Key (pad, rank of tb on that pad) per row, and the row order sorted by (pad, tb)."""
    order = np.lexsort((cloud[:, 6], cloud[:, 5])) if len(cloud) else np.zeros(0, int)
    keys = [None] * len(cloud)
    last_pad, rank = None, 0
    for i in order:
        pad = int(cloud[i, 5])
        rank = rank + 1 if pad == last_pad else 0
        last_pad = pad
        keys[i] = (pad, rank)
    return keys, order


def compare_pointclouds(pairs):
    """pairs: [(path_a, path_b)] per run. Returns the Pointcloud metrics.

    An event is "identical within 0.01 mm" when both clouds have the same points by key (pad,
    rank on the pad) and every paired point is within 0.01 mm; the max |dxyz| statistics are
    over the events whose keys agree (other events differ in which pads or peaks they have)."""
    events = same = same_keys = within = only_one = 0
    dmax = []
    for pa, pb in pairs:
        a, b = read_clouds(pa), read_clouds(pb)
        for ev in sorted(set(a) | set(b)):
            if ev not in a or ev not in b:
                only_one += 1
                continue
            events += 1
            ca, cb = a[ev], b[ev]
            if len(ca) != len(cb):
                continue
            same += 1
            ka, oa = point_keys(ca)
            kb, ob = point_keys(cb)
            if sorted(ka) != sorted(kb):
                continue
            same_keys += 1
            d = np.linalg.norm(ca[oa, :3] - cb[ob, :3], axis=1).max() if len(ca) else 0.0
            dmax.append(float(d))
            within += d <= 0.01
    return {
        "events": events,
        "events_in_one_only": only_one,
        "same_count": frac(same, events),
        "same_points": frac(same_keys, events),
        "dxyz_median_mm": quantiles(dmax)[0],
        "dxyz_max_mm": max(dmax) if dmax else float("nan"),
        "dxyz_within_0.01mm": frac(within, events),
    }


# ---------------------------------------------------------------------------------------------
# Cluster


def labels_for(cloud, clusters):
    """Per cloud row: the index of the cluster holding it, or -1."""
    where = {tuple(row[:3]): i for i, row in enumerate(cloud)}
    labels = np.full(len(cloud), -1)
    for k, c in enumerate(clusters):
        for row in c:
            i = where.get(tuple(row[:3]))
            if i is not None:
                labels[i] = k
    return labels


def compare_clusters(runs, min_cloud_size):
    """runs: [(cloud_a, cluster_a, cloud_b, cluster_b)] paths per run."""
    from sklearn.metrics import adjusted_rand_score

    aris, same_n, diff_examples = [], 0, []
    for pca, pka, pcb, pkb in runs:
        ca, cb = read_clouds(pca), read_clouds(pcb)
        ka, kb = read_clusters(pka), read_clusters(pkb)
        for ev in sorted(set(ka) & set(kb)):
            if ev not in ca or ev not in cb:
                continue
            if len(ca[ev]) < min_cloud_size or len(cb[ev]) < min_cloud_size:
                continue
            la = labels_for(ca[ev], ka[ev])
            lb = labels_for(cb[ev], kb[ev])
            keys_a, _ = point_keys(ca[ev])
            keys_b, _ = point_keys(cb[ev])
            index_b = {k: i for i, k in enumerate(keys_b)}
            xa, xb = [], []
            for i, k in enumerate(keys_a):
                j = index_b.get(k)
                if j is not None:
                    xa.append(la[i])
                    xb.append(lb[j])
            ari = adjusted_rand_score(xa, xb) if xa else float("nan")
            aris.append(ari)
            if len(ka[ev]) == len(kb[ev]):
                same_n += 1
            elif len(diff_examples) < 5:
                diff_examples.append(
                    {
                        "run": run_number(pka),
                        "event": ev,
                        "points": len(ca[ev]),
                        "a": sorted(len(c) for c in ka[ev]),
                        "b": sorted(len(c) for c in kb[ev]),
                    }
                )
    return {
        "events": len(aris),
        "ari_mean": float(np.nanmean(aris)) if aris else float("nan"),
        "ari_below_0.99": frac(sum(1 for x in aris if x < 0.99), len(aris)),
        "same_cluster_count": frac(same_n, len(aris)),
        "examples": diff_examples,
    }


# ---------------------------------------------------------------------------------------------
# Estimation and InterpSolver rows


def pair_rows(ta, tb, z_scale):
    """Greedy per-event pairing of rows (dicts) of two tables. z_scale converts vertex_z to mm."""
    by_a, by_b = defaultdict(list), defaultdict(list)
    for r in ta:
        by_a[r["event"]].append(r)
    for r in tb:
        by_b[r["event"]].append(r)
    pairs = []
    for ev, ra in by_a.items():
        rb = list(by_b.get(ev, []))
        cands = []
        for i, x in enumerate(ra):
            for j, y in enumerate(rb):
                dp = abs(x["polar"] - y["polar"])
                dz = abs(x["vertex_z"] - y["vertex_z"]) * z_scale
                if dp < 0.2 and dz < 50.0:
                    cands.append((dp / 0.01 + dz / 1.0, i, j))
        used_a, used_b = set(), set()
        for _, i, j in sorted(cands):
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            pairs.append((ra[i], rb[j]))
    return pairs


def load_rows(paths):
    rows = []
    for p in paths:
        if p is None:
            continue
        t = read_table(p)
        if t is None or t.height == 0 or "event" not in t.columns:
            continue
        run = run_number(p)
        for r in t.iter_rows(named=True):
            r["event"] = (run, r["event"])
            rows.append(r)
    return rows


ESTIMATION_FLOATS = [
    "ic_amplitude", "ic_centroid", "ic_integral", "ic_multiplicity",
    "vertex_x", "vertex_y", "vertex_z", "center_x", "center_y", "center_z",
    "polar", "azimuthal", "brho", "dEdx", "sqrt_dEdx", "dE", "arclength",
]
ESTIMATION_INTS = ["cluster_index", "cluster_label", "direction"]


def angle_diff(a, b):
    d = abs(a - b) % TWO_PI
    return min(d, TWO_PI - d)


def compare_estimation(paths_a, paths_b):
    ra, rb = load_rows(paths_a), load_rows(paths_b)
    pairs = pair_rows(ra, rb, 1.0)
    scale = {
        c: float(np.median([abs(r[c]) for r in ra])) if ra else 0.0 for c in ESTIMATION_FLOATS
    }
    ok, worst = 0, defaultdict(int)
    for a, b in pairs:
        good = True
        for c in ESTIMATION_FLOATS:
            d = angle_diff(a[c], b[c]) if c == "azimuthal" else abs(a[c] - b[c])
            if not d <= 0.01 * max(abs(a[c]), abs(b[c]), scale[c]):
                good = False
                worst[c] += 1
        for c in ESTIMATION_INTS:
            if a[c] != b[c]:
                good = False
                worst[c] += 1
        ok += good
    return {
        "rows_a": len(ra),
        "rows_b": len(rb),
        "matched": len(pairs),
        "within_1pct": frac(ok, len(pairs)),
        "columns_off": dict(sorted(worst.items(), key=lambda kv: -kv[1])),
    }


def compare_solver(paths_a, paths_b):
    ra, rb = load_rows(paths_a), load_rows(paths_b)
    pairs = pair_rows(ra, rb, 1000.0)

    def within(c):
        return frac(sum(1 for a, b in pairs if abs(a[c] - b[c]) <= 0.01 * abs(a[c])), len(pairs))

    dpolar = [math.degrees(b["polar"] - a["polar"]) for a, b in pairs]
    dke = [b["ke"] - a["ke"] for a, b in pairs]
    return {
        "fits_a": len(ra),
        "fits_b": len(rb),
        "matched": len(pairs),
        "ke_1pct": within("ke"),
        "polar_1pct": within("polar"),
        "vz_1pct": within("vertex_z"),
        "dpolar_deg": quantiles(dpolar),
        "dke_mev": quantiles(dke),
    }


# ---------------------------------------------------------------------------------------------
# truth


def load_truth(truth_dir, runs):
    truth = {}
    for run in runs:
        path = os.path.join(truth_dir, f"run_{run:04d}.jsonl")
        with open(path) as f:
            for line in f:
                t = json.loads(line)
                light = [p for p in t["particles"] if p["z"] <= 2]
                if t.get("reaction") and len(light) == 1:
                    truth[(run, t["event_id"])] = light[0]
    return truth


def accuracy(paths, truth):
    """Residuals of the fits against the truth (KE MeV, polar deg, vertex z mm)."""
    best = {}
    for r in load_rows(paths):
        t = truth.get(r["event"])
        if t is None:
            continue
        d = abs(r["polar"] - t["polar_rad"])
        if d > 0.35:
            continue
        if r["event"] not in best or d < best[r["event"]][0]:
            best[r["event"]] = (d, r)
    ke, pol, vz = [], [], []
    for key, (_, r) in best.items():
        t = truth[key]
        ke.append(r["ke"] - t["ke_mev"])
        pol.append(math.degrees(r["polar"] - t["polar_rad"]))
        vz.append(r["vertex_z"] * 1000.0 - t["vertex_mm"][2])
    return {
        "truth_events": len(truth),
        "found": len(best),
        "ke_mev": quantiles(ke),
        "polar_deg": quantiles(pol),
        "vz_mm": quantiles(vz),
    }
