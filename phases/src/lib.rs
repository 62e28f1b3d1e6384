//! # spyral-phases: the default AT-TPC phases
//!
//! The phases and the algorithms only they use. Their data access (trace formats, pad plane,
//! detector parameters, artifact readers and writers, parquet tables, schemas) and the physics
//! they share with the simulator (nuclear masses, gas targets, stopping powers) are
//! `spyral-data`, the crate plugins use too; the run simulator is `spyral-sim`.
//!
//! - [`signal`]: trace signal processing (baseline removal, scipy-compatible peak finding);
//! - [`chunking`]: what the phases share to process runs in event chunks and merge them;
//! - [`garfield`]: the optional Garfield electron-drift correction used by Pointcloud;
//! - the phases: [`pointcloud`], [`cluster`], [`estimation`], [`solver`].
//!
//! The crate is both an `rlib` (linked into `spyral` as the built-in phases) and a `cdylib` (a
//! plugin library like any other).

pub mod chunking;
pub mod cluster;
pub mod estimation;
pub mod fit;
pub mod garfield;
pub mod numpy_sort;
pub mod pointcloud;
pub mod signal;
pub mod solver;

spyral_core::export_plugin! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    kinds: [
        spyral_core::kind_with_schema::<pointcloud::PointcloudPhase>(
            "pointcloud",
            "Pointcloud",
            "Raw GET traces to point clouds: baseline removal, peak finding, pad geometry, z calibration, IC gate",
        ),
        spyral_core::kind_with_schema::<cluster::ClusterPhase>(
            "cluster",
            "Cluster",
            "Point clouds to clusters: HDBSCAN (scikit-learn semantics), LOF outlier cleaning, track direction, continuity/overlap joins",
        ),
        spyral_core::kind_with_schema::<estimation::EstimationPhase>(
            "estimation",
            "Estimation",
            "Clusters to physics estimates: smoothing splines, vertex, polar/azimuthal angles, B rho, dE/dx",
        ),
        spyral_core::kind_with_schema::<solver::InterpSolverPhase>(
            "interp-solver",
            "InterpSolver",
            "Estimates to fitted tracks: ODE trajectory mesh (shared), PID and IC gates, bounded fits of B rho, angles and vertex",
        ),
    ],
}
