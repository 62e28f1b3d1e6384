//! Tabular artifacts: a small column-oriented table written as a parquet file with the column
//! names and types Spyral's polars DataFrames have (Int64 and Float64 columns), readable by
//! polars and pandas. Uses the `parquet` crate's low-level writer (no arrow dependency).
//!
//! Tables are zstd-compressed by default ([`Codec::Zstd`]), as polars (and so Python Spyral)
//! writes them; the other codecs polars and pyarrow write by choice or default (snappy, LZ4 in
//! both framings, gzip, brotli, none) can be chosen with [`Table::write_parquet_with`], and all of them
//! are read back (the workspace enables the `parquet` crate's codecs).
//!
//! [`Table::read_parquet`] reads such a table back (column by column, every row group), and
//! [`Table::append`] concatenates tables of the same columns: merging a run's chunk tables in
//! event order and writing the result gives the bytes the whole run's table would have.

use parquet::basic::{
    BrotliLevel, Compression, GzipLevel, Repetition, Type as PhysicalType, ZstdLevel,
};
use parquet::column::reader::ColumnReader;
use parquet::data_type::{DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use spyral_core::{PartialFile, PhaseError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The compression codec of a written parquet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// Zstandard at level 3 (zstd's own default level): polars' default codec.
    #[default]
    Zstd,
    /// Snappy: pyarrow's default codec.
    Snappy,
    /// LZ4 blocks without framing (`LZ4_RAW`), what polars and pyarrow write for "lz4".
    Lz4Raw,
    /// The older Hadoop-framed `LZ4` codec.
    Lz4,
    /// Gzip at level 6.
    Gzip,
    /// Brotli at level 1 (the parquet crate's default level).
    Brotli,
    /// No compression.
    Uncompressed,
}

impl Codec {
    /// Every codec.
    pub const ALL: [Codec; 7] = [
        Codec::Zstd,
        Codec::Snappy,
        Codec::Lz4Raw,
        Codec::Lz4,
        Codec::Gzip,
        Codec::Brotli,
        Codec::Uncompressed,
    ];

    fn to_parquet(self) -> Result<Compression, PhaseError> {
        let level = |e: parquet::errors::ParquetError| {
            PhaseError::internal(format!("parquet compression level: {e}"))
        };
        Ok(match self {
            Codec::Zstd => Compression::ZSTD(ZstdLevel::try_new(3).map_err(level)?),
            Codec::Snappy => Compression::SNAPPY,
            Codec::Lz4Raw => Compression::LZ4_RAW,
            Codec::Lz4 => Compression::LZ4,
            Codec::Gzip => Compression::GZIP(GzipLevel::try_new(6).map_err(level)?),
            Codec::Brotli => Compression::BROTLI(BrotliLevel::try_new(1).map_err(level)?),
            Codec::Uncompressed => Compression::UNCOMPRESSED,
        })
    }
}

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

    /// Int64 column `name`, or None when the table has no Int64 column of that name.
    pub fn int(&self, name: &str) -> Option<&[i64]> {
        self.columns.iter().find_map(|(n, c)| match c {
            Column::I64(v) if n == name => Some(v.as_slice()),
            _ => None,
        })
    }

    /// Float64 column `name`, or None when the table has no Float64 column of that name.
    pub fn float(&self, name: &str) -> Option<&[f64]> {
        self.columns.iter().find_map(|(n, c)| match c {
            Column::F64(v) if n == name => Some(v.as_slice()),
            _ => None,
        })
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

    /// Appends the rows of `other`, which must have the same column names and types in the
    /// same order.
    pub fn append(&mut self, other: &Table) -> Result<(), PhaseError> {
        let same = self.columns.len() == other.columns.len()
            && self.columns.iter().zip(&other.columns).all(|(a, b)| {
                a.0 == b.0
                    && matches!(
                        (&a.1, &b.1),
                        (Column::I64(_), Column::I64(_)) | (Column::F64(_), Column::F64(_))
                    )
            });
        if !same {
            let names = |t: &Table| {
                t.columns
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(PhaseError::invalid_input(format!(
                "cannot append a table with columns [{}] to one with columns [{}]",
                names(other),
                names(self)
            )));
        }
        for ((_, a), (_, b)) in self.columns.iter_mut().zip(&other.columns) {
            match (a, b) {
                (Column::I64(a), Column::I64(b)) => a.extend_from_slice(b),
                (Column::F64(a), Column::F64(b)) => a.extend_from_slice(b),
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads a table this module wrote (required Int64 and Float64 columns, any codec, any
    /// number of row groups). Other column types are an error naming the column.
    pub fn read_parquet(path: &Path) -> Result<Table, PhaseError> {
        Table::read_parquet_selected(path, None)
    }

    /// Reads only the columns `names` of a parquet table (those the file has, in the file's
    /// order; a name it lacks is simply absent from the result), with the rules of
    /// [`Table::read_parquet`] for them. The other columns are not decoded, so a few columns of
    /// a wide table cost a few columns.
    pub fn read_parquet_columns(path: &Path, names: &[&str]) -> Result<Table, PhaseError> {
        Table::read_parquet_selected(path, Some(names))
    }

    fn read_parquet_selected(path: &Path, names: Option<&[&str]>) -> Result<Table, PhaseError> {
        let err = |e: &dyn std::fmt::Display| {
            PhaseError::invalid_input(format!("reading {}: {e}", path.display()))
        };
        let file =
            std::fs::File::open(path).map_err(|e| PhaseError::io_at(path, "cannot open", &e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| err(&e))?;
        let meta = reader.metadata();
        let schema = meta.file_metadata().schema_descr();
        let mut table = Table::default();
        // The file's index of each column read.
        let mut index: Vec<usize> = Vec::new();
        for (i, c) in schema.columns().iter().enumerate() {
            if names.is_some_and(|n| !n.contains(&c.name())) {
                continue;
            }
            index.push(i);
            if c.max_def_level() != 0 || c.max_rep_level() != 0 {
                return Err(err(&format!(
                    "column `{}` is optional or repeated; only required columns are read",
                    c.name()
                )));
            }
            let col = match c.physical_type() {
                PhysicalType::INT64 => Column::I64(Vec::new()),
                PhysicalType::DOUBLE => Column::F64(Vec::new()),
                other => {
                    return Err(err(&format!(
                        "column `{}` is {other}, only INT64 and DOUBLE are read",
                        c.name()
                    )))
                }
            };
            table.columns.push((c.name().to_string(), col));
        }
        const BATCH: usize = 64 * 1024;
        for g in 0..reader.num_row_groups() {
            let group = reader.get_row_group(g).map_err(|e| err(&e))?;
            let expected = usize::try_from(meta.row_group(g).num_rows()).unwrap_or(0);
            for (&j, (name, col)) in index.iter().zip(table.columns.iter_mut()) {
                let before = col.len();
                match (group.get_column_reader(j).map_err(|e| err(&e))?, &mut *col) {
                    (ColumnReader::Int64ColumnReader(mut r), Column::I64(v)) => loop {
                        let (n, _, _) =
                            r.read_records(BATCH, None, None, v).map_err(|e| err(&e))?;
                        if n == 0 {
                            break;
                        }
                    },
                    (ColumnReader::DoubleColumnReader(mut r), Column::F64(v)) => loop {
                        let (n, _, _) =
                            r.read_records(BATCH, None, None, v).map_err(|e| err(&e))?;
                        if n == 0 {
                            break;
                        }
                    },
                    _ => {
                        return Err(err(&format!(
                            "column `{name}` changed type between row groups"
                        )))
                    }
                }
                if col.len() - before != expected {
                    return Err(err(&format!(
                        "column `{name}` of row group {g} holds {} values, the row group {expected} rows",
                        col.len() - before
                    )));
                }
            }
        }
        let rows = table.rows();
        if let Some((n, _)) = table.columns.iter().find(|(_, c)| c.len() != rows) {
            return Err(err(&format!(
                "column `{n}` has a different length from the others"
            )));
        }
        Ok(table)
    }

    /// Writes the table to `dest` with the default codec ([`Codec::Zstd`]), through a temporary
    /// name renamed when complete.
    pub fn write_parquet(&self, dest: &Path) -> Result<PathBuf, PhaseError> {
        self.write_parquet_with(dest, Codec::default())
    }

    /// Writes the table to `dest` with `codec` (through a temporary name, renamed when complete).
    pub fn write_parquet_with(&self, dest: &Path, codec: Codec) -> Result<PathBuf, PhaseError> {
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
            .set_compression(codec.to_parquet()?)
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
        // zstd by default, as polars writes.
        assert!(matches!(
            r.metadata().row_group(0).column(0).compression(),
            Compression::ZSTD(_)
        ));
        assert!(!crate::table::tests::partial_left(dir.path()));
    }

    /// A projection reads the named columns (in the file's order) with the values a full read
    /// gives, and leaves out a name the file lacks.
    #[test]
    fn reads_only_the_named_columns() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Table::with_columns(&["event"], &["x", "y"]);
        for i in 0..10 {
            t.push_i64("event", i);
            t.push_f64("x", i as f64 * 0.5);
            t.push_f64("y", -(i as f64));
        }
        let p = t.write_parquet(&dir.path().join("a.parquet")).unwrap();
        let all = Table::read_parquet(&p).unwrap();
        let some = Table::read_parquet_columns(&p, &["y", "event", "absent"]).unwrap();
        let names: Vec<&str> = some.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["event", "y"]);
        assert_eq!(some.columns[0], all.columns[0]);
        assert_eq!(some.columns[1], all.columns[2]);
        assert!(Table::read_parquet_columns(&p, &[])
            .unwrap()
            .columns
            .is_empty());
    }

    #[test]
    fn reads_back_appends_and_rewrites_identically() {
        let dir = tempfile::tempdir().unwrap();
        let mut whole = Table::with_columns(&["event"], &["x"]);
        let mut parts = [whole.clone(), whole.clone(), whole.clone()];
        for i in 0..100_000i64 {
            whole.push_i64("event", i);
            whole.push_f64("x", (i as f64).sqrt());
            let p = &mut parts[(i * 3 / 100_000) as usize];
            p.push_i64("event", i);
            p.push_f64("x", (i as f64).sqrt());
        }
        let a = whole.write_parquet(&dir.path().join("a.parquet")).unwrap();
        assert_eq!(Table::read_parquet(&a).unwrap(), whole);
        let mut merged = Table::with_columns(&["event"], &["x"]);
        for (k, p) in parts.iter().enumerate() {
            let f = p
                .write_parquet(&dir.path().join(format!("p{k}.parquet")))
                .unwrap();
            merged.append(&Table::read_parquet(&f).unwrap()).unwrap();
        }
        let b = merged.write_parquet(&dir.path().join("b.parquet")).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        // Empty tables keep their schema.
        let empty = Table::with_columns(&["event"], &["x"]);
        let e = empty.write_parquet(&dir.path().join("e.parquet")).unwrap();
        assert_eq!(Table::read_parquet(&e).unwrap(), empty);
        // Different columns do not append.
        let other = Table::with_columns(&["x"], &["event"]);
        assert!(merged.append(&other).is_err());
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
