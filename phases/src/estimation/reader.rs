//! Reading the Cluster phase's artifact (spec 3.2.6) for the Estimation phase.
//!
//! Layout: `/cluster` with attributes `min_event` and `max_event`; per event id an optional
//! group `/cluster/event_<id>` with attributes `nclusters`, `orig_run`, `orig_event`,
//! `ic_amplitude`, `ic_centroid`, `ic_integral` and `ic_multiplicity`; in it, for
//! `k < nclusters`, an optional group `cluster_<k>` with attributes `label` and `direction`
//! (-1, 0 or 1) and a float64 dataset `cloud` of shape (N, 5) = `[x, y, z, integral, scale]`.
//!
//! The spill file of a chunk (`spyral_data::artifacts::spill`) is read the same way.
//!
//! Attributes are read tolerantly (any integer width; floats holding whole numbers for the
//! integer ones; integers for the float ones). A missing event or cluster group is skipped, as
//! Spyral does; a missing attribute, a direction other than -1/0/1 or a dataset with fewer than
//! four columns is an error naming the object (Spyral would stop the worker on them).

use super::algorithm::Direction;
use hdf5::{Group, Location};
use ndarray::Array2;
use spyral_data::artifacts::cluster::{ClusterArtifact, ClusterEventRecord, EVENT_ATTRS};
use spyral_data::artifacts::spill;
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

/// An open cluster file: Spyral's HDF5 layout, or the spill file of a chunk (what this
/// crate's Cluster writes for a chunk: `spyral_data::artifacts::spill`).
pub struct ClusterFile {
    path: PathBuf,
    source: Source,
    min_event: i64,
    max_event: i64,
    /// The ids of its `event_<id>` groups, sorted.
    present: Vec<i64>,
}

enum Source {
    Hdf5 { _file: hdf5::File, group: Group },
    Spill(ClusterArtifact),
}

/// An event found by [`ClusterFile::read_event`], to read its clusters from.
pub enum EventRef<'a> {
    /// Its `/cluster/event_<id>` group.
    Group(Group),
    /// Its record in a chunk spill file.
    Spilled(&'a ClusterEventRecord),
}

impl ClusterFile {
    /// Opens `path` and reads the event range of `/cluster`.
    pub fn open(path: &Path) -> Result<ClusterFile, ClusterFileError> {
        if spill::is_spill(path) {
            let artifact = ClusterArtifact::open(path).map_err(|e| ClusterFileError::Open {
                path: path.to_path_buf(),
                detail: e.message().to_string(),
            })?;
            return Ok(ClusterFile {
                path: path.to_path_buf(),
                min_event: artifact.range.0,
                max_event: artifact.range.1,
                present: artifact.ids.clone(),
                source: Source::Spill(artifact),
            });
        }
        let file = hdf5::File::open(path).map_err(|e| ClusterFileError::Open {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let group =
            h5util::opt_group(&file, "cluster").ok_or_else(|| ClusterFileError::MissingGroup {
                path: path.to_path_buf(),
                group: "cluster".into(),
            })?;
        let mut present: Vec<i64> = group
            .member_names()
            .map_err(|e| ClusterFileError::Attribute {
                path: path.to_path_buf(),
                object: "/cluster".into(),
                detail: format!("cannot list: {e}"),
            })?
            .iter()
            .filter_map(|n| n.strip_prefix("event_")?.parse().ok())
            .collect();
        present.sort_unstable();
        let mut f = ClusterFile {
            path: path.to_path_buf(),
            source: Source::Hdf5 { _file: file, group },
            min_event: 0,
            max_event: -1,
            present,
        };
        if let Source::Hdf5 { group, .. } = &f.source {
            f.min_event = f.int_attr(group, "/cluster", "min_event")?;
            f.max_event = f.int_attr(group, "/cluster", "max_event")?;
        }
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

    /// The ids in `first..=last` that have an `event_<id>` group, in order (what a call
    /// iterates, so a damaged `max_event` near 2^63 costs nothing).
    pub fn event_ids(&self, first: i64, last: i64) -> Vec<i64> {
        self.present
            .iter()
            .copied()
            .filter(|id| (first..=last).contains(id))
            .collect()
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
    pub fn read_event(
        &self,
        id: i64,
    ) -> Result<Option<(EventInfo, EventRef<'_>)>, ClusterFileError> {
        let name = format!("event_{id}");
        let object = format!("/cluster/{name}");
        let group = match &self.source {
            Source::Spill(artifact) => {
                let Some(r) = artifact.spilled(id) else {
                    return Ok(None);
                };
                let attr = |name: &str| {
                    EVENT_ATTRS
                        .iter()
                        .position(|&n| n == name)
                        .map(|k| r.attrs[k])
                        .ok_or_else(|| self.attr_error(&object, format!("no attribute '{name}'")))
                };
                let int = |name: &str| {
                    attr(name)?.as_i64().ok_or_else(|| {
                        self.attr_error(
                            &object,
                            format!("attribute '{name}' is not a whole number"),
                        )
                    })
                };
                let info = EventInfo {
                    event: id,
                    nclusters: r.clusters.len() as i64,
                    orig_run: int("orig_run")?,
                    orig_event: int("orig_event")?,
                    ic_amplitude: attr("ic_amplitude")?.as_f64(),
                    ic_centroid: attr("ic_centroid")?.as_f64(),
                    ic_integral: attr("ic_integral")?.as_f64(),
                    ic_multiplicity: attr("ic_multiplicity")?.as_f64(),
                };
                return Ok(Some((info, EventRef::Spilled(r))));
            }
            Source::Hdf5 { group, .. } => group,
        };
        let Some(g) = h5util::opt_group(group, &name) else {
            return Ok(None);
        };
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
        Ok(Some((info, EventRef::Group(g))))
    }

    /// Reads cluster `k` of an event group: `None` if there is no `cluster_<k>` group.
    pub fn read_cluster(
        &self,
        event: &EventRef<'_>,
        event_id: i64,
        k: i64,
    ) -> Result<Option<ClusterData>, ClusterFileError> {
        let name = format!("cluster_{k}");
        let object = format!("/cluster/event_{event_id}/{name}");
        let event = match event {
            EventRef::Spilled(r) => {
                let Some(c) = usize::try_from(k).ok().and_then(|k| r.clusters.get(k)) else {
                    return Ok(None);
                };
                return self
                    .cluster(&object, k, c.label, c.direction, || Ok(c.cloud.clone()))
                    .map(Some);
            }
            EventRef::Group(g) => g,
        };
        let Some(g) = h5util::opt_group(event, &name) else {
            return Ok(None);
        };
        let label = self.int_attr(&g, &object, "label")?;
        let dir = self.int_attr(&g, &object, "direction")?;
        let ds_name = format!("{object}/cloud");
        let ds = h5util::opt_dataset(&g, "cloud").ok_or_else(|| ClusterFileError::Dataset {
            path: self.path.clone(),
            object: ds_name.clone(),
            detail: "missing".into(),
        })?;
        self.cluster(&object, k, label, dir, || {
            let shape = ds.shape();
            if shape.len() != 2 || shape[1] < REQUIRED_CLOUD_COLUMNS {
                return Err(format!(
                    "shape {shape:?}, expected (N, 5) = [x, y, z, integral, scale]"
                ));
            }
            h5util::read_f64_matrix(&ds).map_err(|e| format!("cannot read: {e}"))
        })
        .map(Some)
    }

    /// Cluster `k` from its label, direction code and a way to read its cloud (an error
    /// text on failure); checks the direction and the cloud's columns.
    fn cluster(
        &self,
        object: &str,
        k: i64,
        label: i64,
        dir: i64,
        cloud: impl FnOnce() -> Result<Array2<f64>, String>,
    ) -> Result<ClusterData, ClusterFileError> {
        let direction = Direction::from_value(dir).ok_or_else(|| ClusterFileError::Attribute {
            path: self.path.clone(),
            object: object.to_string(),
            detail: format!("attribute 'direction' = {dir}, expected -1, 0 or 1"),
        })?;
        let ds_err = |detail: String| ClusterFileError::Dataset {
            path: self.path.clone(),
            object: format!("{object}/cloud"),
            detail,
        };
        let cloud = cloud().map_err(ds_err)?;
        if cloud.ncols() < REQUIRED_CLOUD_COLUMNS {
            return Err(ds_err(format!(
                "shape {:?}, expected (N, 5) = [x, y, z, integral, scale]",
                cloud.shape()
            )));
        }
        Ok(ClusterData {
            index: k,
            label,
            direction,
            cloud,
        })
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
