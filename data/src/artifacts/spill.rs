//! Chunk spill files: the compact binary form in which the default phases write the point
//! clouds and clusters of an **event chunk** (`<Phase>/.chunks/run_NNNN/e0-249.h5`).
//!
//! A chunk file is an intermediate: the next phase of the same chunk reads it once, and the
//! phase's merge reads it once more to write the run's artifact in Spyral's HDF5 layout. HDF5
//! costs a handful of library calls per group, attribute and dataset on both sides, which made
//! a split run cost noticeably more CPU than a whole one; a spill file is one sequential write
//! and one read. Whole-run artifacts are never spill files.
//!
//! [`CloudFile`](super::CloudFile), [`ClusterArtifact`](super::ClusterArtifact) and the
//! readers built on them (`PhaseInputs`) open either form, so a phase reading its input through
//! them never sees the difference; a phase that opens a chunk file with `hdf5` directly does.
//!
//! Layout (all numbers little-endian): the 8-byte magic [`MAGIC`], a `u32` kind (1 point clouds,
//! 2 clusters), `min_event` and `max_event` (`i64`), then records in event order until the end
//! of the file:
//!
//! - point cloud: id `u64`, `orig_run` and `orig_event` `i64`, the four [`IC_ATTRS`] `f64`,
//!   rows and columns `u64`, the cloud `f64` row-major;
//! - cluster event: id `i64`, the six `EVENT_ATTRS` (a tag byte, 0 signed, 1 unsigned,
//!   2 float, and 8 bytes), the cluster count `u64`, then per cluster `label` and `direction`
//!   `i64`, rows and columns `u64`, the cloud `f64` row-major.
//!
//! [`IC_ATTRS`]: super::pointcloud::IC_ATTRS

use super::cluster::{ClusterEventRecord, ClusterRecord};
use super::pointcloud::CloudRecord;
use crate::attpc::h5util::AttrNumber;
use ndarray::Array2;
use spyral_core::{PartialFile, PhaseError, RunContext};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The first bytes of every spill file (the last one is the format version).
pub const MAGIC: [u8; 8] = *b"SPYCHNK\x01";

/// How a writer encodes its artifact file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Spyral's HDF5 layout: whole runs and merged chunks.
    Hdf5,
    /// A spill file: the chunk of a split run, read back by the next phase and the merge.
    Spill,
}

impl Encoding {
    /// The encoding of the file a phase call writes: [`Encoding::Spill`] in an event chunk,
    /// [`Encoding::Hdf5`] for a whole run.
    pub fn of_call(ctx: &RunContext<'_>) -> Self {
        if ctx.events().is_some() {
            Encoding::Spill
        } else {
            Encoding::Hdf5
        }
    }
}

/// What a spill file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Point-cloud records.
    Clouds = 1,
    /// Cluster event records.
    Clusters = 2,
}

/// Whether `path` starts with the spill [`MAGIC`] (false when it cannot be read).
pub fn is_spill(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == MAGIC
}

/// Writes a spill file through a temporary name.
pub(crate) struct SpillWriter {
    // Field order matters: the file closes before the partial file is cleaned up.
    out: BufWriter<std::fs::File>,
    partial: PartialFile,
}

impl SpillWriter {
    /// Creates `dest` (through a temporary name) with the header.
    pub(crate) fn create(
        dest: &Path,
        kind: Kind,
        min_event: i64,
        max_event: i64,
    ) -> Result<Self, PhaseError> {
        let partial = PartialFile::new(dest)?;
        let file = std::fs::File::create(partial.path())
            .map_err(|e| PhaseError::io_at(partial.path(), "cannot create", &e))?;
        let mut w = SpillWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            partial,
        };
        w.bytes(&MAGIC)?;
        w.bytes(&(kind as u32).to_le_bytes())?;
        w.i64(min_event)?;
        w.i64(max_event)?;
        Ok(w)
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), PhaseError> {
        self.out
            .write_all(b)
            .map_err(|e| PhaseError::io_at(self.partial.path(), "cannot write", &e))
    }
    fn i64(&mut self, v: i64) -> Result<(), PhaseError> {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> Result<(), PhaseError> {
        self.bytes(&v.to_le_bytes())
    }
    fn f64(&mut self, v: f64) -> Result<(), PhaseError> {
        self.bytes(&v.to_le_bytes())
    }
    fn array(&mut self, a: &Array2<f64>) -> Result<(), PhaseError> {
        self.u64(a.nrows() as u64)?;
        self.u64(a.ncols() as u64)?;
        // Row-major whatever the array's own layout.
        let mut buf = Vec::with_capacity(a.len() * 8);
        for v in a.iter() {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        self.bytes(&buf)
    }

    /// Appends a point-cloud record.
    pub(crate) fn cloud(&mut self, r: &CloudRecord) -> Result<(), PhaseError> {
        self.u64(r.id)?;
        self.i64(r.orig_run)?;
        self.i64(r.orig_event)?;
        for &v in &r.ic {
            self.f64(v)?;
        }
        self.array(&r.cloud)
    }

    /// Appends a cluster event record.
    pub(crate) fn cluster_event(&mut self, r: &ClusterEventRecord) -> Result<(), PhaseError> {
        self.i64(r.id)?;
        for a in r.attrs {
            let (tag, bits) = match a {
                AttrNumber::Signed(v) => (0u8, v.to_le_bytes()),
                AttrNumber::Unsigned(v) => (1, v.to_le_bytes()),
                AttrNumber::Float(v) => (2, v.to_le_bytes()),
            };
            self.bytes(&[tag])?;
            self.bytes(&bits)?;
        }
        self.u64(r.clusters.len() as u64)?;
        for c in &r.clusters {
            self.i64(c.label)?;
            self.i64(c.direction)?;
            self.array(&c.cloud)?;
        }
        Ok(())
    }

    /// Flushes, closes and renames the file to its final name.
    pub(crate) fn finish(self) -> Result<PathBuf, PhaseError> {
        let SpillWriter { out, partial } = self;
        // Like the HDF5 writers, no fsync: the rename makes the file whole or absent, and a
        // chunk lost in a crash of the machine is recomputed.
        let file = out
            .into_inner()
            .map_err(|e| PhaseError::io_at(partial.path(), "cannot write", &e.into_error()))?;
        drop(file);
        partial.commit()
    }
}

/// A spill file read into memory: its range and its records in file (event) order.
#[derive(Debug)]
pub(crate) struct Spill<R> {
    /// `min_event` and `max_event`.
    pub(crate) range: (i64, i64),
    /// The records, ids strictly increasing.
    pub(crate) records: Vec<R>,
}

/// A cursor over the bytes of a spill file; errors name the file and the byte offset.
struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bad(&self, what: &str) -> PhaseError {
        PhaseError::invalid_input(format!(
            "{}: damaged chunk file at byte {}: {what}",
            self.path.display(),
            self.at
        ))
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], PhaseError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.bad(&format!("{what} is cut off")))?;
        let b = &self.bytes[self.at..end];
        self.at = end;
        Ok(b)
    }
    fn word(&mut self, what: &str) -> Result<[u8; 8], PhaseError> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.take(8, what)?);
        Ok(w)
    }
    fn i64(&mut self, what: &str) -> Result<i64, PhaseError> {
        Ok(i64::from_le_bytes(self.word(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, PhaseError> {
        Ok(u64::from_le_bytes(self.word(what)?))
    }
    fn f64(&mut self, what: &str) -> Result<f64, PhaseError> {
        Ok(f64::from_le_bytes(self.word(what)?))
    }
    fn array(&mut self, what: &str) -> Result<Array2<f64>, PhaseError> {
        let rows = self.u64(what)?;
        let cols = self.u64(what)?;
        // The size is checked against the bytes left before anything is allocated.
        let n = usize::try_from(rows)
            .ok()
            .zip(usize::try_from(cols).ok())
            .and_then(|(r, c)| r.checked_mul(c))
            .filter(|n| {
                n.checked_mul(8)
                    .is_some_and(|b| b <= self.bytes.len() - self.at)
            })
            .ok_or_else(|| self.bad(&format!("{what} of {rows} x {cols} values is cut off")))?;
        let data: Vec<f64> = self
            .take(n * 8, what)?
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect();
        Array2::from_shape_vec((rows as usize, cols as usize), data)
            .map_err(|e| self.bad(&format!("{what}: {e}")))
    }
    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// Reads the header of `bytes`, checking the magic and the kind.
fn header<'a>(path: &'a Path, bytes: &'a [u8], kind: Kind) -> Result<Cursor<'a>, PhaseError> {
    let mut c = Cursor { path, bytes, at: 0 };
    if c.take(8, "the header")? != MAGIC {
        return Err(c.bad("not a spill file"));
    }
    let mut k = [0u8; 4];
    k.copy_from_slice(c.take(4, "the header")?);
    let found = u32::from_le_bytes(k);
    if found != kind as u32 {
        return Err(c.bad(&format!(
            "holds {} records, expected {}",
            match found {
                1 => "point-cloud",
                2 => "cluster",
                _ => "unknown",
            },
            match kind {
                Kind::Clouds => "point-cloud",
                Kind::Clusters => "cluster",
            }
        )));
    }
    Ok(c)
}

/// Reads a spill file of `kind`: the header, then `record` until the end of the file; ids
/// (`id`) must increase strictly.
fn read_records<R, K: Ord + std::fmt::Display>(
    path: &Path,
    kind: Kind,
    mut record: impl FnMut(&mut Cursor<'_>) -> Result<R, PhaseError>,
    id: impl Fn(&R) -> K,
) -> Result<Spill<R>, PhaseError> {
    let bytes = std::fs::read(path).map_err(|e| PhaseError::io_at(path, "cannot read", &e))?;
    let mut c = header(path, &bytes, kind)?;
    let range = (c.i64("min_event")?, c.i64("max_event")?);
    let mut records: Vec<R> = Vec::new();
    while !c.done() {
        let r = record(&mut c)?;
        if let Some(last) = records.last() {
            if id(last) >= id(&r) {
                return Err(c.bad(&format!("event {} is out of order", id(&r))));
            }
        }
        records.push(r);
    }
    Ok(Spill { range, records })
}

/// Reads a point-cloud spill file.
pub(crate) fn read_clouds(path: &Path) -> Result<Spill<CloudRecord>, PhaseError> {
    let record = |c: &mut Cursor<'_>| -> Result<CloudRecord, PhaseError> {
        let id = c.u64("an event id")?;
        let orig_run = c.i64("orig_run")?;
        let orig_event = c.i64("orig_event")?;
        let mut ic = [0.0; 4];
        for v in &mut ic {
            *v = c.f64("an ion-chamber value")?;
        }
        Ok(CloudRecord {
            id,
            cloud: c.array("a cloud")?,
            orig_run,
            orig_event,
            ic,
        })
    };
    read_records(path, Kind::Clouds, record, |r| r.id)
}

/// Reads a cluster spill file.
pub(crate) fn read_clusters(path: &Path) -> Result<Spill<ClusterEventRecord>, PhaseError> {
    let record = |c: &mut Cursor<'_>| -> Result<ClusterEventRecord, PhaseError> {
        let id = c.i64("an event id")?;
        let mut attrs = [AttrNumber::Signed(0); 6];
        for a in &mut attrs {
            let tag = c.take(1, "an event attribute")?[0];
            let bits = c.word("an event attribute")?;
            *a = match tag {
                0 => AttrNumber::Signed(i64::from_le_bytes(bits)),
                1 => AttrNumber::Unsigned(u64::from_le_bytes(bits)),
                2 => AttrNumber::Float(f64::from_le_bytes(bits)),
                t => return Err(c.bad(&format!("attribute type tag {t}"))),
            };
        }
        let n = c.u64("a cluster count")?;
        let mut clusters = Vec::new();
        for _ in 0..n {
            let label = c.i64("a cluster label")?;
            let direction = c.i64("a cluster direction")?;
            clusters.push(ClusterRecord {
                label,
                direction,
                cloud: c.array("a cluster cloud")?,
            });
        }
        Ok(ClusterEventRecord {
            id,
            attrs,
            clusters,
        })
    };
    read_records(path, Kind::Clusters, record, |r| r.id)
}

impl<R> Spill<R> {
    /// The record with id `id` (records are sorted by id).
    pub(crate) fn find<K: Ord>(&self, id: K, key: impl Fn(&R) -> K) -> Option<&R> {
        self.records
            .binary_search_by(|r| key(r).cmp(&id))
            .ok()
            .map(|i| &self.records[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn cloud(id: u64) -> CloudRecord {
        CloudRecord {
            id,
            cloud: array![[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [-0.5; 8]],
            orig_run: 3,
            orig_event: id as i64 + 10,
            ic: [1.0, -1.0, 2.5, 1.0],
        }
    }

    fn cluster_event(id: i64) -> ClusterEventRecord {
        ClusterEventRecord {
            id,
            attrs: [
                AttrNumber::Signed(3),
                AttrNumber::Unsigned(id as u64),
                AttrNumber::Float(1.5),
                AttrNumber::Float(-1.0),
                AttrNumber::Float(f64::NAN),
                AttrNumber::Signed(-7),
            ],
            clusters: vec![
                ClusterRecord {
                    label: 0,
                    direction: 1,
                    cloud: array![[1.0, 2.0, 3.0, 4.0, 5.0]],
                },
                ClusterRecord {
                    label: -1,
                    direction: -1,
                    cloud: Array2::zeros((0, 5)),
                },
            ],
        }
    }

    #[test]
    fn clouds_round_trip_and_transposed_arrays_are_written_row_major() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("e0-9.h5");
        let mut w = SpillWriter::create(&dest, Kind::Clouds, 0, 9).unwrap();
        let mut t = cloud(4);
        t.cloud = t.cloud.t().to_owned().reversed_axes(); // same values, Fortran order
        for r in [cloud(2), t.clone(), cloud(7)] {
            w.cloud(&r).unwrap();
        }
        assert!(!dest.exists(), "written under a temporary name");
        w.finish().unwrap();
        assert!(is_spill(&dest));
        let s = read_clouds(&dest).unwrap();
        assert_eq!(s.range, (0, 9));
        assert_eq!(s.records, vec![cloud(2), cloud(4), cloud(7)]);
        assert_eq!(s.find(4, |r| r.id), Some(&cloud(4)));
        assert_eq!(s.find(5, |r| r.id), None);
    }

    #[test]
    fn clusters_round_trip_keeping_attribute_types() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("e0-9.h5");
        let mut w = SpillWriter::create(&dest, Kind::Clusters, -1, 20).unwrap();
        w.cluster_event(&cluster_event(0)).unwrap();
        w.cluster_event(&cluster_event(5)).unwrap();
        w.finish().unwrap();
        let s = read_clusters(&dest).unwrap();
        assert_eq!(s.range, (-1, 20));
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.records[1].attrs[1], AttrNumber::Unsigned(5));
        assert!(matches!(s.records[0].attrs[4], AttrNumber::Float(v) if v.is_nan()));
        assert_eq!(s.records[1].clusters, cluster_event(5).clusters);
    }

    #[test]
    fn damaged_files_are_refused_with_the_file_and_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("e0-9.h5");
        let mut w = SpillWriter::create(&dest, Kind::Clouds, 0, 9).unwrap();
        w.cloud(&cloud(1)).unwrap();
        w.finish().unwrap();
        let good = std::fs::read(&dest).unwrap();

        // Cut anywhere inside the record.
        std::fs::write(&dest, &good[..good.len() - 3]).unwrap();
        let e = read_clouds(&dest).unwrap_err().to_string();
        assert!(e.contains("e0-9.h5") && e.contains("cut off"), "{e}");

        // A row count far beyond the file allocates nothing and says so.
        let mut huge = good.clone();
        let rows_at = 8 + 4 + 16 + 8 * 7;
        huge[rows_at..rows_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&dest, &huge).unwrap();
        let e = read_clouds(&dest).unwrap_err().to_string();
        assert!(e.contains(&format!("at byte {}", rows_at + 16)), "{e}");

        // Another kind, and not a spill file at all.
        let e = read_clusters(&{
            std::fs::write(&dest, &good).unwrap();
            dest.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("holds point-cloud records, expected cluster"),
            "{e}"
        );
        std::fs::write(&dest, b"\x89HDF\r\n\x1a\n....").unwrap();
        assert!(!is_spill(&dest));
        let e = read_clouds(&dest).unwrap_err().to_string();
        assert!(e.contains("not a spill file"), "{e}");
    }

    #[test]
    fn the_readers_give_the_same_records_from_either_encoding() {
        use crate::artifacts::estimation::ClusterFile;
        use crate::artifacts::{CloudFile, CloudWriter, ClusterArtifact, ClusterWriter};
        let dir = tempfile::tempdir().unwrap();
        let mut clouds = Vec::new();
        let mut events = Vec::new();
        for enc in [Encoding::Hdf5, Encoding::Spill] {
            let c = dir.path().join(format!("clouds-{enc:?}.h5"));
            let w = CloudWriter::create_as(&c, 0, 9, enc).unwrap();
            w.write(&cloud(2)).unwrap();
            w.write(&cloud(5)).unwrap();
            w.finish().unwrap();
            assert_eq!(is_spill(&c), enc == Encoding::Spill);
            let f = CloudFile::open(&c).unwrap();
            assert_eq!(f.is_spill(), enc == Encoding::Spill);
            clouds.push((
                f.range,
                f.ids.clone(),
                f.events().collect::<Result<Vec<_>, _>>(),
            ));

            let k = dir.path().join(format!("clusters-{enc:?}.h5"));
            let w = ClusterWriter::create_as(&k, 0, 9, enc).unwrap();
            w.write(&cluster_event(1)).unwrap();
            w.write(&cluster_event(4)).unwrap();
            w.finish().unwrap();
            let a = ClusterArtifact::open(&k).unwrap();
            assert_eq!(a.spilled(4).is_some(), enc == Encoding::Spill);
            let read: Vec<_> = a.ids.iter().map(|&id| a.read(id).unwrap()).collect();
            let by_index = ClusterFile::open(&k).unwrap();
            let first = by_index.cloud(4, 0).unwrap();
            let missing = by_index.cloud(4, 2).unwrap_err().to_string();
            assert!(missing.contains("event_4/cluster_2"), "{missing}");
            events.push((a.range, format!("{read:?}"), first));
        }
        assert_eq!(clouds[0].2.as_ref().unwrap().len(), 2);
        assert_eq!(format!("{:?}", clouds[0]), format!("{:?}", clouds[1]));
        assert_eq!(events[0], events[1]);
        let e = CloudFile::open(&dir.path().join("clouds-Spill.h5"))
            .unwrap()
            .read(3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cloud_3: no such event"), "{e}");
    }

    #[test]
    fn records_out_of_order_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("e0-9.h5");
        let mut w = SpillWriter::create(&dest, Kind::Clouds, 0, 9).unwrap();
        w.cloud(&cloud(3)).unwrap();
        w.cloud(&cloud(3)).unwrap();
        w.finish().unwrap();
        let e = read_clouds(&dest).unwrap_err().to_string();
        assert!(e.contains("event 3 is out of order"), "{e}");
    }
}
