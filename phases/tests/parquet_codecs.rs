//! Parquet codecs: a run can start from Python Spyral's own Estimation output whatever codec
//! wrote it, and our tables are written and read back with every codec.
//!
//! - The fixtures in `tests/fixtures/parquet_codecs/` (made by `make_fixtures.py` there with
//!   Spyral's `EstimateResult` rows, polars and pyarrow) are read through the InterpSolver's
//!   Estimation reader: polars' default (zstd, what Spyral writes) and its zstd, snappy, lz4,
//!   gzip, brotli and uncompressed files, pyarrow's default (snappy) and its zstd, lz4, gzip,
//!   brotli and uncompressed files; every value must be the recorded one.
//! - A [`Table`] written with each [`Codec`] reads back identically, with that codec in the file
//!   metadata; the default codec is zstd.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::Deserialize;
use spyral_data::artifacts::estimation::read_estimation;
use spyral_data::schemas::{ESTIMATION_FLOAT_COLUMNS, ESTIMATION_INT_COLUMNS};
use spyral_data::table::{Codec, Table};

#[derive(Deserialize)]
struct Expected {
    columns: BTreeMap<String, Vec<f64>>,
    files: BTreeMap<String, String>,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parquet_codecs")
}

/// The codec of the first column chunk, by its parquet name.
fn codec_name(path: &Path) -> String {
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    let name = match reader.metadata().row_group(0).column(0).compression() {
        Compression::UNCOMPRESSED => "UNCOMPRESSED",
        Compression::SNAPPY => "SNAPPY",
        Compression::GZIP(_) => "GZIP",
        Compression::LZ4 => "LZ4",
        Compression::LZ4_RAW => "LZ4_RAW",
        Compression::ZSTD(_) => "ZSTD",
        Compression::BROTLI(_) => "BROTLI",
        Compression::LZO => "LZO",
    };
    name.to_string()
}

#[test]
fn reads_spyral_estimation_files_of_every_codec() {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let expected: Expected = serde_json::from_str(&text).unwrap();
    assert_eq!(expected.files.len(), 13);
    assert_eq!(expected.files["polars_default.parquet"], "ZSTD");
    let mut seen = BTreeMap::new();
    for (file, pyarrow_codec) in &expected.files {
        let path = dir().join(file);
        let table = read_estimation(&path, &ESTIMATION_FLOAT_COLUMNS)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(table.rows, 7, "{file}");
        for c in ESTIMATION_INT_COLUMNS {
            let want: Vec<i64> = expected.columns[c].iter().map(|&v| v as i64).collect();
            assert_eq!(table.int(c), &want[..], "{file}: {c}");
        }
        for c in ESTIMATION_FLOAT_COLUMNS {
            assert_eq!(table.float(c), &expected.columns[c][..], "{file}: {c}");
        }
        // pyarrow names LZ4_RAW "LZ4"; the file itself says which framing it has.
        let codec = codec_name(&path);
        let same = codec == *pyarrow_codec || (codec == "LZ4_RAW" && pyarrow_codec == "LZ4");
        assert!(same, "{file}: {codec} vs {pyarrow_codec}");
        seen.insert(codec, file.clone());
    }
    let codecs: Vec<&str> = seen.keys().map(String::as_str).collect();
    eprintln!("codecs read: {seen:?}");
    assert_eq!(
        codecs,
        [
            "BROTLI",
            "GZIP",
            "LZ4_RAW",
            "SNAPPY",
            "UNCOMPRESSED",
            "ZSTD"
        ]
    );
}

#[test]
fn tables_round_trip_with_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Table::with_columns(&ESTIMATION_INT_COLUMNS, &ESTIMATION_FLOAT_COLUMNS);
    for i in 0..500i64 {
        for c in ESTIMATION_INT_COLUMNS {
            t.push_i64(c, i * 7 - 3);
        }
        for (k, c) in ESTIMATION_FLOAT_COLUMNS.iter().enumerate() {
            t.push_f64(c, (i as f64 * 0.37 + k as f64).sin() * 1e3);
        }
    }
    let names = [
        (Codec::Zstd, "ZSTD"),
        (Codec::Snappy, "SNAPPY"),
        (Codec::Lz4Raw, "LZ4_RAW"),
        (Codec::Lz4, "LZ4"),
        (Codec::Gzip, "GZIP"),
        (Codec::Brotli, "BROTLI"),
        (Codec::Uncompressed, "UNCOMPRESSED"),
    ];
    assert_eq!(names.len(), Codec::ALL.len());
    for (codec, name) in names {
        let path = t
            .write_parquet_with(&dir.path().join(format!("{name}.parquet")), codec)
            .unwrap();
        assert_eq!(codec_name(&path), name);
        let back = read_estimation(&path, &ESTIMATION_FLOAT_COLUMNS).unwrap();
        assert_eq!(back.rows, 500);
        for (n, col) in &t.columns {
            match col {
                spyral_data::table::Column::I64(v) => assert_eq!(back.int(n), &v[..], "{name}"),
                spyral_data::table::Column::F64(v) => {
                    assert_eq!(back.float(n), &v[..], "{name}")
                }
            }
        }
    }
    let default = t
        .write_parquet(&dir.path().join("default.parquet"))
        .unwrap();
    assert_eq!(codec_name(&default), "ZSTD");
}
