//! Typed readers and writers of the default phases' artifacts, in Spyral's layouts:
//!
//! - [`pointcloud`]: `Pointcloud/run_NNNN.h5` ([`CloudWriter`], [`CloudFile`]);
//! - [`cluster`]: `Cluster/run_NNNN.h5` ([`ClusterWriter`], [`ClusterArtifact`]);
//! - [`estimation`]: the Estimation table read by column name whatever its numeric types (what
//!   the InterpSolver reads), and cluster clouds by (event, index);
//! - the Estimation and InterpSolver tables are parquet files, written and read exactly with
//!   [`crate::table::Table`] (column names in [`crate::schemas`]), or as typed [`rows`]
//!   ([`EstimateRow`], [`FitRow`]).
//!
//! Writers go through a hidden temporary name renamed when complete, and the same calls in the
//! same order give the same bytes (chunk merges rely on it). The point clouds and clusters of an
//! event chunk are written as [`spill`] files, which the same readers open.

pub mod cluster;
pub mod estimation;
pub mod pointcloud;
pub mod rows;
pub mod spill;

pub use cluster::{ClusterArtifact, ClusterEventRecord, ClusterRecord, ClusterWriter};
pub use pointcloud::{CloudFile, CloudRecord, CloudWriter};
pub use rows::{EstimateRow, FitRow};
pub use spill::Encoding;

use crate::attpc::h5util;
use spyral_core::PhaseError;
use std::path::{Path, PathBuf};

/// An artifact's top group opened to read its events back: the file, the group, its
/// `min_event`/`max_event` attributes and the sorted ids of its `<prefix><id>` members.
struct EventGroup<I> {
    path: PathBuf,
    file: hdf5::File,
    group: hdf5::Group,
    range: (i64, i64),
    ids: Vec<I>,
}

impl<I: std::str::FromStr + Ord> EventGroup<I> {
    /// Opens `/<group>` of `path`; errors name the file and what is wrong.
    fn open(path: &Path, group: &str, prefix: &str) -> Result<Self, PhaseError> {
        let bad = |what: String| PhaseError::invalid_input(format!("{}: {what}", path.display()));
        let file = hdf5::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        let g = file
            .group(group)
            .map_err(|e| bad(format!("no `{group}` group: {e}")))?;
        let bound = |name: &str| -> Result<i64, PhaseError> {
            h5util::attr_i64(&g, name)
                .map_err(|e| bad(format!("/{group}: {e}")))?
                .ok_or_else(|| bad(format!("/{group} has no `{name}` attribute")))
        };
        let range = (bound("min_event")?, bound("max_event")?);
        let mut ids: Vec<I> = g
            .member_names()
            .map_err(|e| bad(format!("/{group}: cannot list: {e}")))?
            .iter()
            .filter_map(|n| n.strip_prefix(prefix).and_then(|i| i.parse().ok()))
            .collect();
        ids.sort_unstable();
        Ok(EventGroup {
            path: path.to_path_buf(),
            file,
            group: g,
            range,
            ids,
        })
    }
}
