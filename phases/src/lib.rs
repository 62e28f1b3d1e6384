//! # spyral-phases: the default AT-TPC phases and data layer
//!
//! - [`signal`]: trace signal processing (baseline removal, scipy-compatible peak finding);
//! - [`attpc`]: the AT-TPC data layer (trace file formats, pad plane, detector parameters);
//! - [`sim`]: the run simulator used by demos, tests and benchmarks;
//! - the phases themselves, exported as a plugin library (and linked into `spyral` as built-ins).

pub mod attpc;
pub mod signal;
pub mod sim;

spyral_core::export_plugin! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    kinds: [],
}
