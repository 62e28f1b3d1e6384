//! Why a report could not be written, or its embedded data not read back.

use std::path::PathBuf;

/// Why a report could not be written or read back.
///
/// Problems with the launch's own files (an unreadable artifact, a broken gate file, a missing
/// log) are not errors: the page lists them as warnings and shows what it could read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The workspace folder does not exist.
    #[error("the workspace {path} is not a folder")]
    NoWorkspace {
        /// The workspace given.
        path: PathBuf,
    },
    /// The report file could not be written.
    #[error("cannot write the report {path}: {source}")]
    Write {
        /// The file (or its temporary name).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The page data could not be encoded as JSON.
    #[error("cannot encode the report data: {0}")]
    Encode(#[source] serde_json::Error),
    /// A page has no embedded report data.
    #[error("the page holds no embedded report data (no <script id=\"spyral-report-data\">)")]
    NoEmbeddedData,
    /// A page's embedded report data does not parse.
    #[error("the page's embedded report data is not valid: {0}")]
    EmbeddedData(#[source] serde_json::Error),
}

/// Why one of the launch's files could not be read (the page shows it as a warning).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// `report.json` could not be read.
    #[error("{path}: {source}")]
    ReportFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `report.json` does not parse as a launch report.
    #[error("{path}: {source}")]
    ReportJson {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A parquet artifact lacks a column the page plots.
    #[error("{path} has no column `{column}` (it has: {})", .present.join(", "))]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The columns it has.
        present: Vec<String>,
    },
    /// A parquet artifact could be read neither by the column reader nor by the row reader.
    #[error("{row_reader} (column reader: {column_reader})")]
    Parquet {
        /// What the tolerant row reader said.
        row_reader: spyral_data::artifacts::estimation::InputError,
        /// What the column reader said.
        column_reader: spyral_core::PhaseError,
    },
}
