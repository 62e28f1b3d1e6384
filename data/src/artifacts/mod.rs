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
use crate::h5fast;
use spill::{Kind, SpillWriter};
use spyral_core::{PartialFile, PhaseError};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// Where a point-cloud or cluster writer's events go: an HDF5 artifact in Spyral's layout, or
/// the spill file of an event chunk.
pub(crate) enum Out {
    /// A whole run's HDF5 artifact.
    Hdf5(H5Out),
    /// A chunk's spill file.
    Spill(RefCell<SpillWriter>),
}

impl Out {
    /// Creates `dest` in `encoding`: a spill file of `kind`, or an HDF5 file with the top group
    /// `group`; both with the range `min_event..=max_event`.
    pub(crate) fn create(
        dest: &Path,
        kind: Kind,
        group: &str,
        min_event: i64,
        max_event: i64,
        encoding: Encoding,
    ) -> Result<Out, PhaseError> {
        Ok(match encoding {
            Encoding::Spill => Out::Spill(RefCell::new(SpillWriter::create(
                dest, kind, min_event, max_event,
            )?)),
            Encoding::Hdf5 => Out::Hdf5(H5Out::create(dest, group, min_event, max_event)?),
        })
    }

    /// Closes the file and renames it to its final name.
    pub(crate) fn finish(self) -> Result<PathBuf, PhaseError> {
        match self {
            Out::Spill(w) => w.into_inner().finish(),
            Out::Hdf5(h) => h.finish(),
        }
    }
}

/// An artifact being written in Spyral's HDF5 layout: the file (through a temporary name, without
/// object timestamps so the same calls give the same bytes), its top group with the
/// `min_event`/`max_event` attributes, and the property lists of [`h5fast::Maker`].
pub(crate) struct H5Out {
    // Field order matters: the HDF5 objects close before the partial file is cleaned up.
    pub(crate) group: hdf5::Group,
    pub(crate) make: h5fast::Maker,
    file: hdf5::File,
    out: PartialFile,
    dest: PathBuf,
}

impl H5Out {
    /// Creates `dest` with the top group `group` and its range attributes.
    pub(crate) fn create(
        dest: &Path,
        group: &str,
        min_event: i64,
        max_event: i64,
    ) -> Result<Self, PhaseError> {
        let out = PartialFile::new(dest)?;
        let err = |what: &str, e: hdf5::Error| h5_error(dest, what, e);
        let file = hdf5::File::with_options()
            .with_fcpl(|p| p.obj_track_times(false))
            .create(out.path())
            .map_err(|e| err("create", e))?;
        let g = h5util::create_group(&file, group).map_err(|e| err(group, e))?;
        h5util::write_attr(&g, "min_event", &min_event).map_err(|e| err("min_event", e))?;
        h5util::write_attr(&g, "max_event", &max_event).map_err(|e| err("max_event", e))?;
        let make = h5fast::Maker::new().map_err(|e| err("property lists", e))?;
        Ok(H5Out {
            group: g,
            make,
            file,
            out,
            dest: dest.to_path_buf(),
        })
    }

    /// The error of writing `what`, naming the file.
    pub(crate) fn err(&self, what: &str, e: hdf5::Error) -> PhaseError {
        h5_error(&self.dest, what, e)
    }

    /// Closes the file and renames it to its final name.
    pub(crate) fn finish(self) -> Result<PathBuf, PhaseError> {
        let H5Out {
            group,
            make,
            file,
            out,
            dest,
        } = self;
        drop((group, make));
        file.close().map_err(|e| h5_error(&dest, "close", e))?;
        out.commit()
    }
}

fn h5_error(dest: &Path, what: &str, e: hdf5::Error) -> PhaseError {
    PhaseError::io(format!("writing {}: {what}: {e}", dest.display()))
}

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
