//! # spyral-data: data access for phase authors
//!
//! Everything a phase needs to read and write AT-TPC data, and nothing of the phases' logic (the
//! default phases depend on this crate, never the other way round):
//!
//! - [`attpc`]: trace file formats (every layout Spyral reads), the pad plane, detector and
//!   pad-plane parameters;
//! - [`table`]: parquet tables with Spyral's column names and types, every codec;
//! - [`schemas`]: the result schemas of the default phases (artifact names and layouts);
//! - re-exports of [`hdf5`], [`ndarray`] and [`parquet`] at the versions the host uses, so a
//!   plugin never picks an incompatible version (`use spyral_data::hdf5;`).

pub mod attpc;
pub mod schemas;
pub mod table;

pub use hdf5;
pub use ndarray;
pub use parquet;
