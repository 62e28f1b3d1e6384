"""Python Spyral as an independent reader of the trace files spyral's simulator writes, in all
four formats (legacy, merger 1.0, merger 2.0, harmonizer 0.1). Used by parity.py.

The same runs (same seed, runs and event count) are simulated once per format, so every format
holds the same events. For each format, Spyral's `create_reader` must pick the reader of that
format, its event range must be the simulated events (the truth records' event ids; Spyral's
merger and harmonizer readers stop one event early, so the last one is expected to be missing
there), and the GET pad matrix and FRIB 1903 matrix of every event, read with Spyral's
`read_raw_get_event` / `read_raw_frib_event`, must be identical across the four formats. Spyral's
full `read_event` (which builds the GET and FRIB events) is also called on the first events of
each file; for the harmonizer, the original event and run numbers it reports are listed.
"""

import json
import os

import numpy as np

EXPECTED_READER = {
    "legacy": "MergerLegacyReader",
    "merger-1.0": "MergerV1Reader",
    "merger-2.0": "MergerV2Reader",
    "harmonizer-0.1": "HarmonizerReader",
}
# Spyral's event_range() excludes max_event for these readers (spyral-spec 1.5-1.7).
SKIPS_LAST = {"merger-1.0", "merger-2.0", "harmonizer-0.1"}


def truth_ids(folder, run):
    with open(os.path.join(folder, "truth", f"run_{run:04d}.jsonl")) as f:
        return [json.loads(line)["event_id"] for line in f]


def check(folders, runs, full_events=3):
    """folders: {format: folder}. Returns {format: result dict}."""
    from pathlib import Path

    import spyral
    from numpy.random import default_rng

    from params import FRIB, GET

    get_params = spyral.GetParameters(**GET)
    frib_params = spyral.FribParameters(**FRIB)
    raw = {}
    results = {}
    for fmt, folder in folders.items():
        res = {
            "reader": set(),
            "events_expected": 0,
            "events_read": 0,
            "range_ok": True,
            "read_event_errors": [],
            "orig_ok": None,
        }
        raw[fmt] = {}
        for run in runs:
            path = Path(folder) / f"run_{run:04d}.h5"
            reader = spyral.create_reader(path, run)
            if reader is None:
                res["reader"].add("None")
                res["range_ok"] = False
                continue
            res["reader"].add(type(reader).__name__)
            ids = truth_ids(folder, run)
            expected = ids[:-1] if fmt in SKIPS_LAST else ids
            got = list(reader.event_range())
            res["events_expected"] += len(expected)
            res["events_read"] += len(got)
            if got != expected:
                res["range_ok"] = False
            # raw matrices of every simulated event (also the one Spyral's range skips)
            for ev in ids:
                g = reader.read_raw_get_event(ev)
                fr = reader.read_raw_frib_event(ev)
                raw[fmt][(run, ev)] = (g, fr)
            rng = default_rng(0)
            orig = []
            for ev in got[:full_events]:
                try:
                    e = reader.read_event(ev, get_params, frib_params, rng)
                    if fmt == "harmonizer-0.1":
                        orig.append((int(e.original_run), int(e.original_event) - ev))
                except Exception as exc:  # noqa: BLE001 - reported
                    res["read_event_errors"].append(f"{type(exc).__name__}: {exc}")
            if orig:
                runs_seen = sorted({r for r, _ in orig})
                same_event = sum(1 for _, d in orig if d == 0)
                res["orig_ok"] = f"orig_event = event {same_event}/{len(orig)}, orig_run {runs_seen}"
        res["reader"] = ",".join(sorted(res["reader"]))
        res["reader_ok"] = res["reader"] == EXPECTED_READER[fmt]
        results[fmt] = res

    ref_fmt = "merger-1.0"
    ref = raw.get(ref_fmt, {})
    for fmt, res in results.items():
        same_get = same_frib = total = 0
        for key, (g, fr) in raw[fmt].items():
            total += 1
            rg, rf = ref.get(key, (None, None))
            same_get += g is not None and rg is not None and np.array_equal(g, rg)
            same_frib += (fr is None and rf is None) or (
                fr is not None and rf is not None and np.array_equal(fr, rf)
            )
        res["events_compared"] = total
        res["get_identical"] = same_get
        res["frib_identical"] = same_frib
        res["traces"] = sum(len(g) for g, _ in raw[fmt].values() if g is not None)
        res["read_event_errors"] = sorted(set(res["read_event_errors"]))
    return results


def same_get(path_a, path_b, run):
    """(events whose GET pad matrix is identical, events) of two files of the same events, read
    with Spyral's readers."""
    import spyral

    ra, rb = spyral.create_reader(path_a, run), spyral.create_reader(path_b, run)
    ids = range(ra.first_event(), ra.last_event() + 1)
    same = sum(
        1 for ev in ids if np.array_equal(ra.read_raw_get_event(ev), rb.read_raw_get_event(ev))
    )
    return same, len(ids)
