//! # spyral-data: data access for phase authors
//!
//! Everything a phase needs to read and write AT-TPC data, and nothing of the phases' logic (the
//! default phases depend on this crate, never the other way round):
//!
//! - [`attpc`]: trace file formats (every layout Spyral reads), the pad plane, detector and
//!   pad-plane parameters;
//! - [`table`]: parquet tables with Spyral's column names and types, every codec;
//! - [`artifacts`]: typed readers and writers of the default phases' artifacts (point clouds,
//!   clusters, the Estimation and InterpSolver tables) in Spyral's layouts;
//! - [`inputs`]: [`PhaseInputs`], earlier phases' artifacts by phase name from a `RunContext`
//!   (`ctx.clouds("Pointcloud")?`);
//! - [`physics`]: nuclear masses (AME2020), gas targets, stopping powers and energy-loss tables,
//!   physical constants (what Spyral's phases take from spyral-utils);
//! - [`rng`]: a ready random generator per event, built from the run's seed;
//! - [`schemas`]: the result schemas of the default phases (artifact names and layouts);
//! - re-exports of [`hdf5`], [`ndarray`] and [`parquet`] at the versions the host uses, so a
//!   plugin never picks an incompatible version (`use spyral_data::hdf5;`).

pub mod artifacts;
pub mod attpc;
mod h5fast;
pub mod inputs;
pub mod physics;
pub mod rng;
pub mod schemas;
pub mod table;

pub use inputs::PhaseInputs;

pub use hdf5;
pub use ndarray;
pub use parquet;

/// What a phase usually needs: `use spyral_data::prelude::*;` (with `spyral_core::prelude::*`).
pub mod prelude {
    pub use crate::artifacts::{
        CloudFile, CloudRecord, CloudWriter, ClusterArtifact, ClusterEventRecord, ClusterRecord,
        ClusterWriter, Encoding, EstimateRow, FitRow,
    };
    pub use crate::attpc::{DetectorParameters, GetParameters, PadMap, PadParameters};
    pub use crate::inputs::PhaseInputs;
    pub use crate::rng::{event_rng, Pcg64, Rng};
    pub use crate::table::{Codec, Column, Table};
}
