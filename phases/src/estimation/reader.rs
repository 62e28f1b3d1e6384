//! Reading the Cluster phase's artifact (spec 3.2.6) for the Estimation phase.
//!
//! Layout: `/cluster` with attributes `min_event` and `max_event`; per event id an optional
//! group `/cluster/event_<id>` with attributes `nclusters`, `orig_run`, `orig_event`,
//! `ic_amplitude`, `ic_centroid`, `ic_integral` and `ic_multiplicity`; in it, for
//! `k < nclusters`, an optional group `cluster_<k>` with attributes `label` and `direction`
//! (-1, 0 or 1) and a float64 dataset `cloud` of shape (N, 5) = `[x, y, z, integral, scale]`.
//!
//! Attributes are read tolerantly (any integer width; floats holding whole numbers for the
//! integer ones; integers for the float ones). A missing event or cluster group is skipped, as
//! Spyral does; a missing attribute, a direction other than -1/0/1 or a dataset with fewer than
//! four columns is an error naming the object (Spyral would stop the worker on them).

use super::algorithm::Direction;
use hdf5::{Group, Location};
use ndarray::Array2;
use spyral_data::attpc::h5util;
use std::path::{Path, PathBuf};

/// Columns of the cluster cloud the estimation needs (x, y, z, integral).
pub const REQUIRED_CLOUD_COLUMNS: usize = 4;

/// Errors reading a cluster file.
#[derive(Debug, thiserror::Error)]
pub enum ClusterFileError {
    /// The file could not be opened as HDF5.
    #[error("{}: cannot open the cluster file: {detail}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What HDF5 reported.
        detail: String,
    },
    /// A required group is missing.
    #[error("{}: no `{group}` group (is this a Cluster artifact?)", .path.display())]
    MissingGroup {
        /// The file.
        path: PathBuf,
        /// The group name.
        group: String,
    },
    /// A required attribute is missing or unusable.
    #[error("{}: {object}: {detail}", .path.display())]
    Attribute {
        /// The file.
        path: PathBuf,
        /// The HDF5 object holding it.
        object: String,
        /// What is wrong.
        detail: String,
    },
    /// A cloud dataset is missing, unreadable or has the wrong shape.
    #[error("{}: {object}: {detail}", .path.display())]
    Dataset {
        /// The file.
        path: PathBuf,
        /// The dataset.
        object: String,
        /// What is wrong.
        detail: String,
    },
}

impl From<ClusterFileError> for spyral_core::PhaseError {
    fn from(e: ClusterFileError) -> Self {
        match e {
            ClusterFileError::Open { .. } => spyral_core::PhaseError::io(e.to_string()),
            _ => spyral_core::PhaseError::invalid_input(e.to_string()),
        }
    }
}

/// Per-event information copied into every estimate of the event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventInfo {
    /// The event id (the `<id>` of `event_<id>`).
    pub event: i64,
    /// Number of clusters listed by the event.
    pub nclusters: i64,
    /// Run number in the original data.
    pub orig_run: i64,
    /// Event number in the original data.
    pub orig_event: i64,
    /// Ion-chamber amplitude (-1 when absent).
    pub ic_amplitude: f64,
    /// Ion-chamber centroid.
    pub ic_centroid: f64,
    /// Ion-chamber integral.
    pub ic_integral: f64,
    /// Ion-chamber multiplicity.
    pub ic_multiplicity: f64,
}

/// One cluster of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterData {
    /// Its index `k` in the event (`cluster_<k>`).
    pub index: i64,
    /// The clustering label.
    pub label: i64,
    /// Its direction.
    pub direction: Direction,
    /// The cloud, (N, >= 4): x, y, z, integral (and scale).
    pub cloud: Array2<f64>,
}

/// An open cluster file.
pub struct ClusterFile {
    path: PathBuf,
    _file: hdf5::File,
    group: Group,
    min_event: i64,
    max_event: i64,
}

impl ClusterFile {
    /// Opens `path` and reads the event range of `/cluster`.
    pub fn open(path: &Path) -> Result<ClusterFile, ClusterFileError> {
        let file = hdf5::File::open(path).map_err(|e| ClusterFileError::Open {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let group =
            h5util::opt_group(&file, "cluster").ok_or_else(|| ClusterFileError::MissingGroup {
                path: path.to_path_buf(),
                group: "cluster".into(),
            })?;
        let mut f = ClusterFile {
            path: path.to_path_buf(),
            _file: file,
            group,
            min_event: 0,
            max_event: -1,
        };
        f.min_event = f.int_attr(&f.group, "/cluster", "min_event")?;
        f.max_event = f.int_attr(&f.group, "/cluster", "max_event")?;
        Ok(f)
    }

    /// The first event id (`min_event`).
    pub fn min_event(&self) -> i64 {
        self.min_event
    }

    /// The last event id (`max_event`, inclusive).
    pub fn max_event(&self) -> i64 {
        self.max_event
    }

    /// Number of ids in `min_event..=max_event` (0 if the range is empty).
    pub fn id_count(&self) -> u64 {
        if self.max_event < self.min_event {
            0
        } else {
            self.max_event.abs_diff(self.min_event) + 1
        }
    }

    /// Reads event `id`: `None` if the file has no `event_<id>` group.
    pub fn read_event(&self, id: i64) -> Result<Option<(EventInfo, Group)>, ClusterFileError> {
        let name = format!("event_{id}");
        let Some(g) = h5util::opt_group(&self.group, &name) else {
            return Ok(None);
        };
        let object = format!("/cluster/{name}");
        let info = EventInfo {
            event: id,
            nclusters: self.int_attr(&g, &object, "nclusters")?,
            orig_run: self.int_attr(&g, &object, "orig_run")?,
            orig_event: self.int_attr(&g, &object, "orig_event")?,
            ic_amplitude: self.float_attr(&g, &object, "ic_amplitude")?,
            ic_centroid: self.float_attr(&g, &object, "ic_centroid")?,
            ic_integral: self.float_attr(&g, &object, "ic_integral")?,
            ic_multiplicity: self.float_attr(&g, &object, "ic_multiplicity")?,
        };
        Ok(Some((info, g)))
    }

    /// Reads cluster `k` of an event group: `None` if there is no `cluster_<k>` group.
    pub fn read_cluster(
        &self,
        event: &Group,
        event_id: i64,
        k: i64,
    ) -> Result<Option<ClusterData>, ClusterFileError> {
        let name = format!("cluster_{k}");
        let Some(g) = h5util::opt_group(event, &name) else {
            return Ok(None);
        };
        let object = format!("/cluster/event_{event_id}/{name}");
        let label = self.int_attr(&g, &object, "label")?;
        let dir = self.int_attr(&g, &object, "direction")?;
        let direction = Direction::from_value(dir).ok_or_else(|| ClusterFileError::Attribute {
            path: self.path.clone(),
            object: object.clone(),
            detail: format!("attribute 'direction' = {dir}, expected -1, 0 or 1"),
        })?;
        let ds_name = format!("{object}/cloud");
        let ds_err = |detail: String| ClusterFileError::Dataset {
            path: self.path.clone(),
            object: ds_name.clone(),
            detail,
        };
        let ds = h5util::opt_dataset(&g, "cloud").ok_or_else(|| ds_err("missing".into()))?;
        let shape = ds.shape();
        if shape.len() != 2 || shape[1] < REQUIRED_CLOUD_COLUMNS {
            return Err(ds_err(format!(
                "shape {shape:?}, expected (N, 5) = [x, y, z, integral, scale]"
            )));
        }
        let cloud =
            h5util::read_f64_matrix(&ds).map_err(|e| ds_err(format!("cannot read: {e}")))?;
        Ok(Some(ClusterData {
            index: k,
            label,
            direction,
            cloud,
        }))
    }

    fn int_attr(&self, loc: &Location, object: &str, name: &str) -> Result<i64, ClusterFileError> {
        match h5util::attr_i64(loc, name) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(self.attr_error(object, format!("no attribute '{name}'"))),
            Err(detail) => Err(self.attr_error(object, detail.to_string())),
        }
    }

    fn float_attr(
        &self,
        loc: &Location,
        object: &str,
        name: &str,
    ) -> Result<f64, ClusterFileError> {
        match h5util::attr_f64(loc, name) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(self.attr_error(object, format!("no attribute '{name}'"))),
            Err(detail) => Err(self.attr_error(object, detail.to_string())),
        }
    }

    fn attr_error(&self, object: &str, detail: String) -> ClusterFileError {
        ClusterFileError::Attribute {
            path: self.path.clone(),
            object: object.to_string(),
            detail,
        }
    }
}
