//! Tabular artifacts: a small column-oriented table written as a parquet file with the column
//! names and types Spyral's polars DataFrames have (Int64 and Float64 columns), readable by
//! polars and pandas. Uses the `parquet` crate's low-level writer (no arrow dependency).

use parquet::basic::{Compression, Repetition, Type as PhysicalType};
use parquet::data_type::{DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use spyral_core::{PartialFile, PhaseError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Int64 values.
    I64(Vec<i64>),
    /// Float64 values.
    F64(Vec<f64>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::I64(v) => v.len(),
            Column::F64(v) => v.len(),
        }
    }
}

/// A table: named columns of equal length, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// (name, values) in column order.
    pub columns: Vec<(String, Column)>,
}

impl Table {
    /// An empty table with the given Int64 and Float64 column names, in order.
    pub fn with_columns(int_names: &[&str], float_names: &[&str]) -> Table {
        let mut t = Table::default();
        for n in int_names {
            t.columns.push((n.to_string(), Column::I64(Vec::new())));
        }
        for n in float_names {
            t.columns.push((n.to_string(), Column::F64(Vec::new())));
        }
        t
    }

    /// Number of rows (of the first column).
    pub fn rows(&self) -> usize {
        self.columns.first().map(|(_, c)| c.len()).unwrap_or(0)
    }

    /// Appends to Int64 column `name`.
    pub fn push_i64(&mut self, name: &str, v: i64) {
        if let Some((_, Column::I64(c))) = self.columns.iter_mut().find(|(n, _)| n == name) {
            c.push(v);
        }
    }

    /// Appends to Float64 column `name`.
    pub fn push_f64(&mut self, name: &str, v: f64) {
        if let Some((_, Column::F64(c))) = self.columns.iter_mut().find(|(n, _)| n == name) {
            c.push(v);
        }
    }

    /// Writes the table to `dest` (through a temporary name, renamed when complete).
    pub fn write_parquet(&self, dest: &Path) -> Result<PathBuf, PhaseError> {
        let rows = self.rows();
        if let Some((n, _)) = self.columns.iter().find(|(_, c)| c.len() != rows) {
            return Err(PhaseError::internal(format!(
                "table column `{n}` has a different length from the others"
            )));
        }
        let fields: Vec<Arc<Type>> = self
            .columns
            .iter()
            .map(|(name, c)| {
                let t = match c {
                    Column::I64(_) => PhysicalType::INT64,
                    Column::F64(_) => PhysicalType::DOUBLE,
                };
                Type::primitive_type_builder(name, t)
                    .with_repetition(Repetition::REQUIRED)
                    .build()
                    .map(Arc::new)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| PhaseError::internal(format!("parquet schema: {e}")))?;
        let schema = Type::group_type_builder("schema")
            .with_fields(fields)
            .build()
            .map_err(|e| PhaseError::internal(format!("parquet schema: {e}")))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("spyral-rs {}", env!("CARGO_PKG_VERSION")))
            .build();
        let out = PartialFile::new(dest)?;
        let err = |e: parquet::errors::ParquetError| {
            PhaseError::io(format!("writing {}: {e}", dest.display()))
        };
        let file = std::fs::File::create(out.path())
            .map_err(|e| PhaseError::io_at(out.path(), "cannot create", &e))?;
        let mut writer =
            SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props)).map_err(err)?;
        let mut group = writer.next_row_group().map_err(err)?;
        for (_, col) in &self.columns {
            let Some(mut cw) = group.next_column().map_err(err)? else {
                break;
            };
            match col {
                Column::I64(v) => {
                    cw.typed::<Int64Type>()
                        .write_batch(v, None, None)
                        .map_err(err)?;
                }
                Column::F64(v) => {
                    cw.typed::<DoubleType>()
                        .write_batch(v, None, None)
                        .map_err(err)?;
                }
            }
            cw.close().map_err(err)?;
        }
        group.close().map_err(err)?;
        writer.close().map_err(err)?;
        out.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn writes_a_readable_parquet_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Table::with_columns(&["event"], &["x"]);
        for i in 0..10 {
            t.push_i64("event", i);
            t.push_f64("x", i as f64 * 0.5);
        }
        let p = t.write_parquet(&dir.path().join("a.parquet")).unwrap();
        let r = SerializedFileReader::new(std::fs::File::open(&p).unwrap()).unwrap();
        assert_eq!(r.metadata().file_metadata().num_rows(), 10);
        let names: Vec<String> = r
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        assert_eq!(names, vec!["event", "x"]);
        assert!(!crate::table::tests::partial_left(dir.path()));
    }

    fn partial_left(dir: &Path) -> bool {
        std::fs::read_dir(dir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
    }
}
