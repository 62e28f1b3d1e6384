"""The one parameter set of the parity comparison, and the two things made from it: Python
Spyral's parameter objects and spyral's pipeline YAML, so the two pipelines cannot drift apart.

Values are Spyral 1.1.2's documented defaults (its README / user guide), except the
interpolation mesh, which is smaller than the default (1000 x 350 x 166) so that Spyral builds
it and fits with it in a few minutes. Gas and particle ID are the project's examples (examples/gas, examples/pid): the
simulator's default reaction is 16C + d elastic scattering in D2 at 300 Torr.

Both sides get every value explicitly: spyral's YAML names every field, so a change of one of
our defaults cannot change the comparison. The pad plane is the one thing left to each side's
default (Spyral's DEFAULT_MAP, spyral's built-in plane): whether those agree is part of what is
measured.
"""

import copy
import json
from pathlib import Path

DETECTOR = {
    "magnetic_field": 2.85,
    "electric_field": 45000.0,
    "detector_length": 1000.0,
    "beam_region_radius": 25.0,
    "micromegas_time_bucket": 10.0,
    "window_time_bucket": 560.0,
    "get_frequency": 6.25,
    "do_garfield_correction": False,
}

GET = {
    "baseline_window_scale": 20.0,
    "peak_separation": 50.0,
    "peak_prominence": 20.0,
    "peak_max_width": 50.0,
    "peak_threshold": 40.0,
}

FRIB = {
    "baseline_window_scale": 100.0,
    "peak_separation": 50.0,
    "peak_prominence": 20.0,
    "peak_max_width": 500.0,
    "peak_threshold": 100.0,
    "ic_delay_time_bucket": 1100,
    "ic_multiplicity": 1,
}

CLUSTER = {
    "min_cloud_size": 50,
    "hdbscan": {
        "min_points": 3,
        "min_size_scale_factor": 0.03,
        "min_size_lower_cutoff": 10,
        "cluster_selection_epsilon": 10.0,
    },
    "continuity_join": {"join_radius_fraction": 0.4, "join_z_fraction": 0.2},
    "overlap_join": None,
    "direction_threshold": 0.5,
    "outlier_scale_factor": 0.1,
}

ESTIMATE = {
    "min_total_trajectory_points": 30,
    "smoothing_factor": 100.0,
}

# Relative to the repository root.
GAS_FILE = "examples/gas/deuterium_300torr.json"
PID_FILE = "examples/pid/deuteron.json"

SOLVER = {
    "ic_min_val": 900.0,
    "ic_max_val": 1350.0,
    # The mesh: the default ranges with fewer nodes (Spyral's default is 1000 x 350 x 166).
    "n_time_steps": 500,
    "interp_ke_min": 0.1,
    "interp_ke_max": 70.0,
    "interp_ke_bins": 140,
    "interp_polar_min": 2.0,
    "interp_polar_max": 88.0,
    "interp_polar_bins": 87,
    "fit_vertex_rho": True,
    "fit_vertex_phi": True,
    "fit_azimuthal": True,
    "fit_method": "lbfgsb",
}


def describe():
    """The parameter set as one JSON-able dict (printed into the results)."""
    return {
        "detector": DETECTOR,
        "get": GET,
        "frib": FRIB,
        "cluster": CLUSTER,
        "estimate": ESTIMATE,
        "solver": dict(SOLVER, gas_data_path=GAS_FILE, particle_id_filename=PID_FILE),
    }


# ---------------------------------------------------------------------------------------------
# Python Spyral


def spyral_phases(repo: Path):
    """Spyral's four default phases built from the parameter set, as a user script would."""
    import spyral

    det = spyral.DetectorParameters(
        garfield_file_path=Path("unused-garfield.txt"), **DETECTOR
    )
    pads = spyral.PadParameters(
        pad_geometry_path=spyral.DEFAULT_MAP,
        pad_time_path=spyral.DEFAULT_MAP,
        pad_scale_path=spyral.DEFAULT_MAP,
    )
    get = spyral.GetParameters(**GET)
    frib = spyral.FribParameters(**FRIB)
    c = CLUSTER
    cluster = spyral.ClusterParameters(
        min_cloud_size=c["min_cloud_size"],
        hdbscan_parameters=spyral.HdbscanParameters(**c["hdbscan"]),
        tripclust_parameters=None,
        overlap_join=(
            spyral.OverlapJoinParameters(**c["overlap_join"]) if c["overlap_join"] else None
        ),
        continuity_join=spyral.ContinuityJoinParameters(**c["continuity_join"]),
        direction_threshold=c["direction_threshold"],
        outlier_scale_factor=c["outlier_scale_factor"],
    )
    estimate = spyral.EstimateParameters(**ESTIMATE)
    solver = spyral.SolverParameters(
        gas_data_path=repo / GAS_FILE,
        particle_id_filename=repo / PID_FILE,
        **SOLVER,
    )
    return pads, get, frib, det, cluster, estimate, solver


# ---------------------------------------------------------------------------------------------
# spyral (this project)


def rust_pipeline(repo: Path, workspace: Path, traces: Path, runs, active, seed: int, pads=None):
    """spyral's pipeline (a dict, written as YAML/JSON) with the same parameters.

    `active` holds one bool per phase (pointcloud, cluster, estimation, interp-solver); an
    inactive phase reuses the artifacts already in its folder. Phases after the last active one
    are left out. `pads` (geometry, time, scale CSV paths) replaces the built-in pad plane.
    """
    det = copy.deepcopy(DETECTOR)
    last = max(i for i, a in enumerate(active) if a)
    phases = [
        {
            "kind": "pointcloud",
            "config": {
                "get": GET,
                "frib": FRIB,
                "detector": det,
                "pads": {} if pads is None else {
                    "pad_geometry_path": str(pads[0]),
                    "pad_time_path": str(pads[1]),
                    "pad_scale_path": str(pads[2]),
                },
            },
        },
        {
            "kind": "cluster",
            "config": {
                "min_cloud_size": CLUSTER["min_cloud_size"],
                "hdbscan": CLUSTER["hdbscan"],
                "continuity_join": CLUSTER["continuity_join"],
                "overlap_join": CLUSTER["overlap_join"],
                "direction_threshold": CLUSTER["direction_threshold"],
                "outlier_scale_factor": CLUSTER["outlier_scale_factor"],
                "detector": det,
            },
        },
        {"kind": "estimation", "config": dict(ESTIMATE, detector=det)},
        {
            "kind": "interp-solver",
            "config": dict(
                SOLVER,
                gas_data_path=str((repo / GAS_FILE).resolve()),
                particle_id_filename=str((repo / PID_FILE).resolve()),
                # Ours only; these values are Spyral's behaviour.
                ic_gate=True,
                distance="points",
                mesh_grid="spyral",
                detector=det,
            ),
        },
    ][: last + 1]
    for phase, on in zip(phases, active):
        if not on:
            phase["active"] = False
    return {
        "workspace": str(workspace),
        "traces": str(traces),
        "runs": {"min": min(runs), "max": max(runs)},
        "workers": 1,
        "seed": seed,
        "phases": phases,
    }


def spyral_pad_files():
    """Spyral's packaged pad-plane CSVs (geometry, time correction, scale): the AT-TPC pad plane
    Spyral uses by default. Needs the venv with attpc-spyral."""
    import spyral.data

    d = Path(spyral.data.__file__).parent
    return (d / "padxy.csv", d / "pad_time_correction.csv", d / "pad_scale.csv")


def write_rust_pipeline(path: Path, pipeline: dict) -> None:
    """Writes the pipeline; JSON is valid YAML, so no YAML library is needed."""
    path.write_text(json.dumps(pipeline, indent=2) + "\n")
