//! The Cluster artifact (`Cluster/run_NNNN.h5`), Spyral's layout:
//!
//! - `/cluster` with attributes `min_event`, `max_event` (int64);
//! - `/cluster/event_<id>` (written even with 0 clusters) with attributes `nclusters` (int64) and
//!   [`EVENT_ATTRS`] (copied from the cloud, keeping integer or float type);
//! - `/cluster/event_<id>/cluster_<k>` with attributes `label` and `direction` (int64: -1 none,
//!   0 forward, 1 backward) and dataset `cloud`, float64 `(N, 5)` = `[x, y, z, integral, scale]`
//!   (mm, mm, mm, ADC units, scale).
//!
//! [`ClusterWriter`] writes it, [`ClusterArtifact`] reads events back exactly as written.

use crate::attpc::h5util::{self, AttrNumber};
use crate::h5fast;
use ndarray::Array2;
use spyral_core::{PartialFile, PhaseError};
use std::path::{Path, PathBuf};

/// Event attributes copied from the cloud dataset to the event group, in output order.
pub const EVENT_ATTRS: [&str; 6] = [
    "orig_run",
    "orig_event",
    "ic_amplitude",
    "ic_centroid",
    "ic_integral",
    "ic_multiplicity",
];

/// Writes a scalar attribute keeping its integer or float type.
pub fn write_number(loc: &hdf5::Location, name: &str, v: AttrNumber) -> hdf5::Result<()> {
    match v {
        AttrNumber::Signed(x) => h5util::write_attr(loc, name, &x),
        AttrNumber::Unsigned(x) => h5util::write_attr(loc, name, &x),
        AttrNumber::Float(x) => h5util::write_attr(loc, name, &x),
    }
}

/// Reads a scalar attribute written by [`write_number`] back as the same [`AttrNumber`].
pub fn read_number(loc: &hdf5::Location, name: &str) -> hdf5::Result<AttrNumber> {
    use hdf5::types::TypeDescriptor;
    let attr = loc.attr(name)?;
    Ok(match attr.dtype()?.to_descriptor()? {
        TypeDescriptor::Integer(_) => AttrNumber::Signed(attr.read_scalar::<i64>()?),
        TypeDescriptor::Unsigned(_) => AttrNumber::Unsigned(attr.read_scalar::<u64>()?),
        TypeDescriptor::Float(_) => AttrNumber::Float(attr.read_scalar::<f64>()?),
        other => return Err(format!("{other} is not a number").into()),
    })
}
/// One cluster of a [`ClusterEventRecord`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRecord {
    /// `label`.
    pub label: i64,
    /// `direction` code (-1 none, 0 forward, 1 backward).
    pub direction: i64,
    /// `cloud`, `(N, 5)` = `[x, y, z, integral, scale]`.
    pub cloud: Array2<f64>,
}

/// One event of the Cluster artifact: `/cluster/event_<id>` and its clusters.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterEventRecord {
    /// The event id.
    pub id: i64,
    /// The [`EVENT_ATTRS`] values, as stored in the cloud (integer or float).
    pub attrs: [AttrNumber; 6],
    /// The clusters, `cluster_0`, `cluster_1`, ... (`nclusters` is their number).
    pub clusters: Vec<ClusterRecord>,
}

/// Writes a Cluster artifact (whole run, chunk, or merged chunks: the same calls in the same
/// order give the same bytes). Create, [`write`](ClusterWriter::write) events in id order,
/// [`finish`](ClusterWriter::finish).
pub struct ClusterWriter {
    // Field order matters: the HDF5 objects close before the partial file is cleaned up.
    root: hdf5::Group,
    make: h5fast::Maker,
    file: hdf5::File,
    out: PartialFile,
    dest: PathBuf,
}

fn h5_error(dest: &Path, what: &str, e: hdf5::Error) -> PhaseError {
    PhaseError::io(format!("writing {}: {what}: {e}", dest.display()))
}

impl ClusterWriter {
    /// Creates `dest` (through a temporary name) with `/cluster` and its `min_event`,
    /// `max_event` attributes.
    pub fn create(dest: &Path, min_event: i64, max_event: i64) -> Result<Self, PhaseError> {
        let out = PartialFile::new(dest)?;
        let err = |what: &str, e: hdf5::Error| h5_error(dest, what, e);
        let file = hdf5::File::with_options()
            .with_fcpl(|p| p.obj_track_times(false))
            .create(out.path())
            .map_err(|e| err("create", e))?;
        let root = h5util::create_group(&file, "cluster").map_err(|e| err("cluster", e))?;
        h5util::write_attr(&root, "min_event", &min_event).map_err(|e| err("min_event", e))?;
        h5util::write_attr(&root, "max_event", &max_event).map_err(|e| err("max_event", e))?;
        let make = h5fast::Maker::new().map_err(|e| err("property lists", e))?;
        Ok(ClusterWriter {
            root,
            make,
            file,
            out,
            dest: dest.to_path_buf(),
        })
    }

    /// Writes one event.
    pub fn write(&self, r: &ClusterEventRecord) -> Result<(), PhaseError> {
        let err = |what: &str, e: hdf5::Error| h5_error(&self.dest, what, e);
        let make = &self.make;
        let ev_name = format!("event_{}", r.id);
        let ev = make
            .group(&self.root, &ev_name)
            .map_err(|e| err(&ev_name, e))?;
        make.attr(&ev, "nclusters", r.clusters.len() as i64)
            .map_err(|e| err("nclusters", e))?;
        for (attr, value) in EVENT_ATTRS.iter().zip(r.attrs) {
            make.number(&ev, attr, value).map_err(|e| err(attr, e))?;
        }
        for (k, c) in r.clusters.iter().enumerate() {
            let cname = format!("cluster_{k}");
            let g = make.group(&ev, &cname).map_err(|e| err(&cname, e))?;
            make.attr(&g, "label", c.label)
                .map_err(|e| err("label", e))?;
            make.attr(&g, "direction", c.direction)
                .map_err(|e| err("direction", e))?;
            make.dataset(&g, "cloud", &c.cloud)
                .map_err(|e| err(&format!("{ev_name}/{cname}/cloud"), e))?;
        }
        Ok(())
    }

    /// Closes the file and renames it to its final name.
    pub fn finish(self) -> Result<PathBuf, PhaseError> {
        let ClusterWriter {
            root,
            make,
            file,
            out,
            dest,
        } = self;
        drop((root, make));
        file.close().map_err(|e| h5_error(&dest, "close", e))?;
        out.commit()
    }
}

/// A Cluster artifact opened to read its events back as written (to merge chunks).
pub struct ClusterArtifact {
    path: PathBuf,
    root: hdf5::Group,
    _file: hdf5::File,
    /// `min_event` and `max_event` of `/cluster`.
    pub range: (i64, i64),
    /// The ids of its `event_<id>` groups, sorted.
    pub ids: Vec<i64>,
}

impl ClusterArtifact {
    /// Opens `path` and lists its events.
    pub fn open(path: &Path) -> Result<Self, PhaseError> {
        let g = super::EventGroup::open(path, "cluster", "event_")?;
        Ok(ClusterArtifact {
            path: g.path,
            root: g.group,
            _file: g.file,
            range: g.range,
            ids: g.ids,
        })
    }

    /// Reads event `id` back exactly as it was written.
    pub fn read(&self, id: i64) -> Result<ClusterEventRecord, PhaseError> {
        let name = format!("event_{id}");
        let bad = |what: String| {
            PhaseError::invalid_input(format!("{}: /cluster/{name}: {what}", self.path.display()))
        };
        let ev =
            h5fast::open_group(&self.root, &name).map_err(|e| bad(format!("cannot open: {e}")))?;
        // The attributes are read as [`ClusterWriter`] writes them, by name: no listing, no
        // conversion (the event attributes keep their integer or float type).
        let int = |loc: &h5fast::Id, n: &str| -> Result<i64, PhaseError> {
            h5fast::read_attr::<i64>(loc, n).map_err(|e| bad(format!("attribute `{n}`: {e}")))
        };
        let n = int(&ev, "nclusters")?;
        let mut attrs = [AttrNumber::Signed(0); 6];
        for (v, name) in attrs.iter_mut().zip(EVENT_ATTRS) {
            *v = h5fast::read_number(&ev, name)
                .map_err(|e| bad(format!("attribute `{name}`: {e}")))?;
        }
        // `nclusters` comes from the file: it sizes nothing before the clusters are read.
        let mut clusters = Vec::new();
        for k in 0..n.max(0) {
            let g = h5fast::open_group(&ev, &format!("cluster_{k}"))
                .map_err(|e| bad(format!("cluster_{k}: {e}")))?;
            let cloud = h5fast::open_dataset(&g, "cloud")
                .and_then(|d| h5fast::read_2d(&d))
                .map_err(|e| bad(format!("cluster_{k}/cloud: {e}")))?;
            clusters.push(ClusterRecord {
                label: int(&g, "label")?,
                direction: int(&g, "direction")?,
                cloud,
            });
        }
        Ok(ClusterEventRecord {
            id,
            attrs,
            clusters,
        })
    }
}

impl std::fmt::Debug for ClusterArtifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterArtifact")
            .field("path", &self.path)
            .field("range", &self.range)
            .field("events", &self.ids.len())
            .finish()
    }
}
