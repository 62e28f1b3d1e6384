//! The InterpSolver's inputs: the Estimation parquet (columns read by name, whatever their
//! numeric type or nullability) and the cluster clouds of the Cluster HDF5 file
//! (`/cluster/event_{event}/cluster_{index}/cloud`, float64 (N, 5)) or of a chunk spill file.

use hdf5::File as H5File;
use ndarray::Array2;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The parquet file could not be opened or decoded.
    #[error("cannot read {path}: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A required column is missing.
    #[error("{path} has no column `{column}` (it has: {have})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// The columns present.
        have: String,
    },
    /// A value has a type that is not a number.
    #[error("{path}: column `{column}` holds {value}, not a number")]
    NotNumeric {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// The value.
        value: String,
    },
    /// The cluster file or a cluster could not be read.
    #[error("{path}: {message}")]
    Cluster {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Integer identification columns of the Estimation (and InterpSolver) parquet.
pub const ID_COLUMNS: [&str; 5] = [
    "event",
    "cluster_index",
    "cluster_label",
    "orig_run",
    "orig_event",
];

/// The Estimation rows the solver needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EstimationTable {
    /// Integer columns by name ([`ID_COLUMNS`]).
    pub ints: HashMap<String, Vec<i64>>,
    /// Float columns by name (the requested ones).
    pub floats: HashMap<String, Vec<f64>>,
    /// Number of rows.
    pub rows: usize,
}

impl EstimationTable {
    /// Integer column `name` (empty if not read).
    pub fn int(&self, name: &str) -> &[i64] {
        self.ints.get(name).map_or(&[], Vec::as_slice)
    }
    /// Float column `name` (empty if not read).
    pub fn float(&self, name: &str) -> &[f64] {
        self.floats.get(name).map_or(&[], Vec::as_slice)
    }
}

fn field_f64(f: &Field) -> Option<f64> {
    Some(match f {
        Field::Null => f64::NAN,
        Field::Bool(b) => f64::from(u8::from(*b)),
        Field::Byte(v) => f64::from(*v),
        Field::Short(v) => f64::from(*v),
        Field::Int(v) => f64::from(*v),
        Field::Long(v) => *v as f64,
        Field::UByte(v) => f64::from(*v),
        Field::UShort(v) => f64::from(*v),
        Field::UInt(v) => f64::from(*v),
        Field::ULong(v) => *v as f64,
        Field::Float(v) => f64::from(*v),
        Field::Double(v) => *v,
        _ => return None,
    })
}

fn field_i64(f: &Field) -> Option<i64> {
    Some(match f {
        Field::Byte(v) => i64::from(*v),
        Field::Short(v) => i64::from(*v),
        Field::Int(v) => i64::from(*v),
        Field::Long(v) => *v,
        Field::UByte(v) => i64::from(*v),
        Field::UShort(v) => i64::from(*v),
        Field::UInt(v) => i64::from(*v),
        Field::ULong(v) => i64::try_from(*v).ok()?,
        Field::Double(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => *v as i64,
        Field::Float(v) if v.fract() == 0.0 => *v as i64,
        _ => return None,
    })
}

/// Reads the [`ID_COLUMNS`] as integers and `float_columns` as floats from an Estimation
/// parquet file. A file with no columns at all (what Spyral writes for zero rows) is an empty
/// table.
pub fn read_estimation(path: &Path, float_columns: &[&str]) -> Result<EstimationTable, InputError> {
    let perr = |e: &dyn std::fmt::Display| InputError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|e| perr(&e))?;
    let reader = SerializedFileReader::new(file).map_err(|e| perr(&e))?;
    let meta = reader.metadata().file_metadata();
    let names: Vec<String> = meta
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut table = EstimationTable::default();
    if names.is_empty() || meta.num_rows() == 0 {
        for c in ID_COLUMNS {
            table.ints.insert(c.to_string(), Vec::new());
        }
        for c in float_columns {
            table.floats.insert(c.to_string(), Vec::new());
        }
        return Ok(table);
    }
    for c in ID_COLUMNS.iter().chain(float_columns) {
        if !names.iter().any(|n| n == c) {
            return Err(InputError::MissingColumn {
                path: path.to_path_buf(),
                column: c.to_string(),
                have: names.join(", "),
            });
        }
    }
    // Column position -> destination.
    enum Dest {
        Int(String),
        Float(String),
        Skip,
    }
    let dests: Vec<Dest> = names
        .iter()
        .map(|n| {
            if ID_COLUMNS.contains(&n.as_str()) {
                Dest::Int(n.clone())
            } else if float_columns.contains(&n.as_str()) {
                Dest::Float(n.clone())
            } else {
                Dest::Skip
            }
        })
        .collect();
    for c in ID_COLUMNS {
        table.ints.insert(c.to_string(), Vec::new());
    }
    for c in float_columns {
        table.floats.insert(c.to_string(), Vec::new());
    }
    let rows = reader.get_row_iter(None).map_err(|e| perr(&e))?;
    for row in rows {
        let row = row.map_err(|e| perr(&e))?;
        for ((_, field), dest) in row.get_column_iter().zip(&dests) {
            let bad = |column: &str| InputError::NotNumeric {
                path: path.to_path_buf(),
                column: column.to_string(),
                value: field.to_string(),
            };
            match dest {
                Dest::Int(name) => {
                    let v = field_i64(field).ok_or_else(|| bad(name))?;
                    if let Some(col) = table.ints.get_mut(name) {
                        col.push(v);
                    }
                }
                Dest::Float(name) => {
                    let v = field_f64(field).ok_or_else(|| bad(name))?;
                    if let Some(col) = table.floats.get_mut(name) {
                        col.push(v);
                    }
                }
                Dest::Skip => {}
            }
        }
        table.rows += 1;
    }
    Ok(table)
}

/// An open Cluster file: Spyral's HDF5 layout or a chunk spill file ([`super::spill`]).
pub struct ClusterFile {
    path: PathBuf,
    source: Source,
}

enum Source {
    Hdf5(H5File),
    Spill(super::spill::Spill<super::ClusterEventRecord>),
}

impl ClusterFile {
    /// Opens a Cluster file.
    pub fn open(path: &Path) -> Result<Self, InputError> {
        let err = |message: String| InputError::Cluster {
            path: path.to_path_buf(),
            message,
        };
        let source = if super::spill::is_spill(path) {
            Source::Spill(super::spill::read_clusters(path).map_err(|e| err(e.to_string()))?)
        } else {
            Source::Hdf5(H5File::open(path).map_err(|e| err(format!("cannot open: {e}")))?)
        };
        Ok(ClusterFile {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The cloud of cluster `index` of `event`: (N, ≥5) in mm.
    pub fn cloud(&self, event: i64, index: i64) -> Result<Array2<f64>, InputError> {
        let name = format!("cluster/event_{event}/cluster_{index}/cloud");
        let err = |m: String| InputError::Cluster {
            path: self.path.clone(),
            message: m,
        };
        let cloud = match &self.source {
            Source::Spill(s) => s
                .find(event, |r| r.id)
                .and_then(|r| r.clusters.get(usize::try_from(index).ok()?))
                .map(|c| c.cloud.clone())
                .ok_or_else(|| err(format!("no dataset {name}")))?,
            Source::Hdf5(file) => {
                let ds = crate::h5fast::open_dataset(&**file, &name)
                    .map_err(|e| err(format!("no dataset {name}: {e}")))?;
                crate::h5fast::read_2d(&ds).map_err(|e| err(format!("cannot read {name}: {e}")))?
            }
        };
        if cloud.ncols() < 5 {
            return Err(err(format!(
                "{name} has {} columns, expected 5 (x, y, z, integral, scale)",
                cloud.ncols()
            )));
        }
        Ok(cloud)
    }
}
