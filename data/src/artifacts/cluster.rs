//! The Cluster artifact (`Cluster/run_NNNN.h5`), Spyral's layout:
//!
//! - `/cluster` with attributes `min_event`, `max_event` (int64);
//! - `/cluster/event_<id>` (written even with 0 clusters) with attributes `nclusters` (int64) and
//!   [`EVENT_ATTRS`] (copied from the cloud, keeping integer or float type);
//! - `/cluster/event_<id>/cluster_<k>` with attributes `label` and `direction` (int64: -1 none,
//!   0 forward, 1 backward) and dataset `cloud`, float64 `(N, 5)` = `[x, y, z, integral, scale]`
//!   (mm, mm, mm, ADC units, scale).
//!
//! [`ClusterWriter`] writes it, [`ClusterArtifact`] reads events back exactly as written; both
//! also handle the chunk spill form ([`super::spill`]).

use super::spill::{self, Encoding, Kind, Spill};
use super::Out;
use crate::attpc::h5util::{self, AttrNumber};
use crate::h5fast;
use ndarray::Array2;
use spyral_core::{PhaseError, RunContext};
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
/// [`finish`](ClusterWriter::finish). In Spyral's HDF5 layout, or as a chunk spill file
/// ([`Encoding`]).
pub struct ClusterWriter(Out);

impl ClusterWriter {
    /// Creates `dest` (through a temporary name) with `/cluster` and its `min_event`,
    /// `max_event` attributes, in Spyral's HDF5 layout.
    pub fn create(dest: &Path, min_event: i64, max_event: i64) -> Result<Self, PhaseError> {
        Self::create_as(dest, min_event, max_event, Encoding::Hdf5)
    }

    /// [`create`](ClusterWriter::create) with the encoding of the file `ctx`'s call writes:
    /// a spill file in an event chunk, HDF5 for a whole run ([`Encoding::of_call`]).
    pub fn create_for(
        ctx: &RunContext<'_>,
        dest: &Path,
        min_event: i64,
        max_event: i64,
    ) -> Result<Self, PhaseError> {
        Self::create_as(dest, min_event, max_event, Encoding::of_call(ctx))
    }

    /// [`create`](ClusterWriter::create) in the given encoding.
    pub fn create_as(
        dest: &Path,
        min_event: i64,
        max_event: i64,
        encoding: Encoding,
    ) -> Result<Self, PhaseError> {
        Out::create(
            dest,
            Kind::Clusters,
            "cluster",
            min_event,
            max_event,
            encoding,
        )
        .map(ClusterWriter)
    }

    /// Writes one event.
    pub fn write(&self, r: &ClusterEventRecord) -> Result<(), PhaseError> {
        let h = match &self.0 {
            Out::Spill(w) => return w.borrow_mut().cluster_event(r),
            Out::Hdf5(h) => h,
        };
        let (root, make, err) = (&h.group, &h.make, |what: &str, e| h.err(what, e));
        let ev_name = format!("event_{}", r.id);
        let ev = make.group(root, &ev_name).map_err(|e| err(&ev_name, e))?;
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
        self.0.finish()
    }
}

/// A Cluster artifact opened to read its events back as written (to merge chunks, or as an
/// earlier phase's output): Spyral's HDF5 layout or a chunk spill file, told apart by content.
pub struct ClusterArtifact {
    path: PathBuf,
    source: Source,
    /// `min_event` and `max_event` of `/cluster`.
    pub range: (i64, i64),
    /// The ids of its `event_<id>` groups, sorted.
    pub ids: Vec<i64>,
}

enum Source {
    Hdf5 {
        root: hdf5::Group,
        _file: hdf5::File,
    },
    Spill(Spill<ClusterEventRecord>),
}

impl ClusterArtifact {
    /// Opens `path` and lists its events.
    pub fn open(path: &Path) -> Result<Self, PhaseError> {
        if spill::is_spill(path) {
            let s = spill::read_clusters(path)?;
            return Ok(ClusterArtifact {
                path: path.to_path_buf(),
                range: s.range,
                ids: s.records.iter().map(|r| r.id).collect(),
                source: Source::Spill(s),
            });
        }
        let g = super::EventGroup::open(path, "cluster", "event_")?;
        Ok(ClusterArtifact {
            path: g.path,
            source: Source::Hdf5 {
                root: g.group,
                _file: g.file,
            },
            range: g.range,
            ids: g.ids,
        })
    }

    /// The event `id` of a spill file, without copying it (`None` for an HDF5 file or an
    /// id it does not hold).
    pub fn spilled(&self, id: i64) -> Option<&ClusterEventRecord> {
        match &self.source {
            Source::Spill(s) => s.find(id, |r| r.id),
            Source::Hdf5 { .. } => None,
        }
    }

    /// Whether the file is a chunk spill file (not HDF5).
    pub fn is_spill(&self) -> bool {
        matches!(self.source, Source::Spill(_))
    }

    /// Reads event `id` back exactly as it was written.
    pub fn read(&self, id: i64) -> Result<ClusterEventRecord, PhaseError> {
        let name = format!("event_{id}");
        let bad = |what: String| {
            PhaseError::invalid_input(format!("{}: /cluster/{name}: {what}", self.path.display()))
        };
        let root = match &self.source {
            Source::Spill(s) => {
                return s
                    .find(id, |r| r.id)
                    .cloned()
                    .ok_or_else(|| bad("no such event".into()))
            }
            Source::Hdf5 { root, .. } => root,
        };
        let ev = h5fast::open_group(root, &name).map_err(|e| bad(format!("cannot open: {e}")))?;
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
