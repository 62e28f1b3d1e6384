//! The Pointcloud artifact (`Pointcloud/run_NNNN.h5`), Spyral's layout so h5py scripts work
//! unchanged: `/cloud` (attributes `min_event`, `max_event`, int64), `/cloud/cloud_<event>`
//! float64 `(N, 8)` with columns [`CLOUD_COLUMN_NAMES`] (x, y, z in mm; amplitude and integral in
//! ADC units; pad number; time bucket; scale) and attributes `orig_run`, `orig_event` (int64) and
//! [`IC_ATTRS`] (float64, -1 when the event has no ion-chamber peak).
//!
//! [`CloudWriter`] writes it (through a temporary name, renamed when complete), [`CloudFile`]
//! reads it back event by event; both also handle the chunk spill form ([`super::spill`]).

use super::spill::{self, Encoding, Kind, Spill};
use super::Out;
use crate::h5fast;
use ndarray::Array2;
use spyral_core::{PhaseError, RunContext};
use std::path::{Path, PathBuf};

/// Number of columns of a point-cloud row.
pub const CLOUD_COLUMNS: usize = 8;
/// The file name suffix of the point-cloud artifact (`run_0001.h5`).
pub const CLOUD_SUFFIX: &str = ".h5";
/// The file name suffix of the scaler table (`run_0001_scaler.parquet`, columns `event` and the
/// scaler names of [`crate::attpc::SCALER_NAMES`], int64).
pub const SCALER_SUFFIX: &str = "_scaler.parquet";
/// The file name suffix of the gated IC count (`run_0001_gated_ic_scaler.txt`).
pub const GATED_SUFFIX: &str = "_gated_ic_scaler.txt";
/// The ion-chamber attributes of a cloud dataset, in the order they are written.
pub const IC_ATTRS: [&str; 4] = [
    "ic_amplitude",
    "ic_integral",
    "ic_centroid",
    "ic_multiplicity",
];
/// The names of the columns of a point-cloud row, in order.
pub const CLOUD_COLUMN_NAMES: [&str; CLOUD_COLUMNS] = [
    "x",
    "y",
    "z",
    "amplitude",
    "integral",
    "pad",
    "time_bucket",
    "scale",
];

/// One event of the point-cloud artifact: `/cloud/cloud_<id>` and its attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudRecord {
    /// The event id.
    pub id: u64,
    /// Rows `[x, y, z, amplitude, integral, pad, time bucket, scale]`.
    pub cloud: Array2<f64>,
    /// `orig_run`.
    pub orig_run: i64,
    /// `orig_event`.
    pub orig_event: i64,
    /// `ic_amplitude`, `ic_integral`, `ic_centroid`, `ic_multiplicity` ([`IC_ATTRS`]; -1 when
    /// the event has no usable ion-chamber peak).
    pub ic: [f64; 4],
}

/// Writes a point-cloud artifact (whole run, chunk, or merged chunks: the same calls in the
/// same order give the same bytes). Create, [`write`](CloudWriter::write) events in id order,
/// [`finish`](CloudWriter::finish). In Spyral's HDF5 layout, or as a chunk spill file
/// ([`Encoding`]).
pub struct CloudWriter(Out);

impl CloudWriter {
    /// Creates `dest` (through a temporary name) with `/cloud` and its `min_event`,
    /// `max_event` attributes, in Spyral's HDF5 layout.
    pub fn create(dest: &Path, min_event: i64, max_event: i64) -> Result<Self, PhaseError> {
        Self::create_as(dest, min_event, max_event, Encoding::Hdf5)
    }

    /// [`create`](CloudWriter::create) with the encoding of the file `ctx`'s call writes:
    /// a spill file in an event chunk, HDF5 for a whole run ([`Encoding::of_call`]).
    pub fn create_for(
        ctx: &RunContext<'_>,
        dest: &Path,
        min_event: i64,
        max_event: i64,
    ) -> Result<Self, PhaseError> {
        Self::create_as(dest, min_event, max_event, Encoding::of_call(ctx))
    }

    /// [`create`](CloudWriter::create) in the given encoding.
    pub fn create_as(
        dest: &Path,
        min_event: i64,
        max_event: i64,
        encoding: Encoding,
    ) -> Result<Self, PhaseError> {
        Out::create(dest, Kind::Clouds, "cloud", min_event, max_event, encoding).map(CloudWriter)
    }

    /// Writes one event.
    pub fn write(&self, r: &CloudRecord) -> Result<(), PhaseError> {
        let h = match &self.0 {
            Out::Spill(w) => return w.borrow_mut().cloud(r),
            Out::Hdf5(h) => h,
        };
        let (group, make, err) = (&h.group, &h.make, |what: &str, e| h.err(what, e));
        let name = format!("cloud_{}", r.id);
        let ds = make
            .dataset(group, &name, &r.cloud)
            .map_err(|e| err(&name, e))?;
        make.attr(&ds, "orig_run", r.orig_run)
            .map_err(|e| err("orig_run", e))?;
        make.attr(&ds, "orig_event", r.orig_event)
            .map_err(|e| err("orig_event", e))?;
        for (k, &v) in IC_ATTRS.iter().zip(&r.ic) {
            make.attr(&ds, k, v).map_err(|e| err(k, e))?;
        }
        Ok(())
    }

    /// Closes the file and renames it to its final name.
    pub fn finish(self) -> Result<PathBuf, PhaseError> {
        self.0.finish()
    }
}

/// A point-cloud artifact opened for reading its events back (to merge chunks, or as an
/// earlier phase's output): Spyral's HDF5 layout or a chunk spill file, told apart by content.
pub struct CloudFile {
    path: PathBuf,
    source: Source,
    /// `min_event` and `max_event` of `/cloud`.
    pub range: (i64, i64),
    /// The event ids of its `cloud_<id>` datasets, sorted.
    pub ids: Vec<u64>,
}

enum Source {
    Hdf5 {
        group: hdf5::Group,
        _file: hdf5::File,
    },
    Spill(Spill<CloudRecord>),
}

impl CloudFile {
    /// Opens `path` and lists its events.
    pub fn open(path: &Path) -> Result<Self, PhaseError> {
        if spill::is_spill(path) {
            let s = spill::read_clouds(path)?;
            return Ok(CloudFile {
                path: path.to_path_buf(),
                range: s.range,
                ids: s.records.iter().map(|r| r.id).collect(),
                source: Source::Spill(s),
            });
        }
        let g = super::EventGroup::open(path, "cloud", "cloud_")?;
        Ok(CloudFile {
            path: g.path,
            source: Source::Hdf5 {
                group: g.group,
                _file: g.file,
            },
            range: g.range,
            ids: g.ids,
        })
    }

    /// Every event, in id order.
    pub fn events(&self) -> impl Iterator<Item = Result<CloudRecord, PhaseError>> + '_ {
        self.ids.iter().map(|&id| self.read(id))
    }

    /// Reads event `id` back.
    pub fn read(&self, id: u64) -> Result<CloudRecord, PhaseError> {
        let name = format!("cloud_{id}");
        let bad = |what: String| {
            PhaseError::invalid_input(format!("{}: /cloud/{name}: {what}", self.path.display()))
        };
        let group = match &self.source {
            Source::Spill(s) => {
                return s
                    .find(id, |r| r.id)
                    .cloned()
                    .ok_or_else(|| bad("no such event".into()))
            }
            Source::Hdf5 { group, .. } => group,
        };
        let ds =
            h5fast::open_dataset(group, &name).map_err(|e| bad(format!("cannot open: {e}")))?;
        let cloud = h5fast::read_2d(&ds).map_err(|e| bad(format!("cannot read: {e}")))?;
        // The attributes are read as this module writes them (i64 and f64), by name: no
        // listing.
        let int = |n: &str| -> Result<i64, PhaseError> {
            h5fast::read_attr::<i64>(&ds, n).map_err(|e| bad(format!("attribute `{n}`: {e}")))
        };
        let mut ic = [0.0; 4];
        for (v, n) in ic.iter_mut().zip(IC_ATTRS) {
            *v = h5fast::read_attr::<f64>(&ds, n)
                .map_err(|e| bad(format!("attribute `{n}`: {e}")))?;
        }
        Ok(CloudRecord {
            id,
            cloud,
            orig_run: int("orig_run")?,
            orig_event: int("orig_event")?,
            ic,
        })
    }

    /// Whether the file is a chunk spill file (not HDF5).
    pub fn is_spill(&self) -> bool {
        matches!(self.source, Source::Spill(_))
    }
}

impl std::fmt::Debug for CloudFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudFile")
            .field("path", &self.path)
            .field("range", &self.range)
            .field("events", &self.ids.len())
            .finish()
    }
}
