//! Typed readers and writers of the default phases' artifacts, in Spyral's layouts:
//!
//! - [`pointcloud`]: `Pointcloud/run_NNNN.h5` ([`CloudWriter`], [`CloudFile`]);
//! - [`cluster`]: `Cluster/run_NNNN.h5` ([`ClusterWriter`], [`ClusterArtifact`]);
//! - [`estimation`]: the Estimation table read by column name whatever its numeric types (what
//!   the InterpSolver reads), and cluster clouds by (event, index);
//! - the Estimation and InterpSolver tables are parquet files, written and read exactly with
//!   [`crate::table::Table`] (column names in [`crate::schemas`]).
//!
//! Writers go through a hidden temporary name renamed when complete, and the same calls in the
//! same order give the same bytes (chunk merges rely on it).

pub mod cluster;
pub mod estimation;
pub mod pointcloud;

pub use cluster::{ClusterArtifact, ClusterEventRecord, ClusterRecord, ClusterWriter};
pub use pointcloud::{CloudFile, CloudRecord, CloudWriter};
