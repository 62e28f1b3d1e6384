//! Nuclear and atomic physics for the AT-TPC: nuclear masses, gas targets and energy loss.
//!
//! - [`nuclear`]: a table of AME2020 atomic masses for light ions and common beams, and the
//!   [`Nucleus`] type (nuclear mass = atomic mass − Z·mₑ, as in Spyral);
//! - [`gas`]: Spyral-style gas targets (`{"compound": …}` and `{"components": …}` JSON) with the
//!   ideal-gas density of spec §3.4;
//! - [`stopping`]: electronic stopping powers (Bethe–Bloch at high energy, a fitted
//!   Andersen–Ziegler-style form at low energy, effective charges for ions) and the
//!   [`EnergyLossTable`] (dE/dx and range per projectile and gas, interpolated);
//! - [`catima_table`]: catima's stopping powers of light ions, tabulated, for the trajectory mesh;
//! - [`constants`]: the physical constants they share.
//!
//! These building blocks are shared by the run simulator (`spyral-sim`), the trajectory-mesh
//! solver of the default phases and any plugin that needs kinematics or energy loss.

pub mod catima_table;
pub mod constants;
pub mod gas;
pub mod nuclear;
pub mod stopping;

use std::path::PathBuf;

pub use gas::{CompoundElement, ElementShare, GasTarget};
pub use nuclear::{atomic_mass_u, element_symbol, mass_excess_kev, Nucleus};
pub use stopping::{element_dedx, has_stopping_data, EnergyLossTable};

/// Errors of the physics layer.
#[derive(Debug, thiserror::Error)]
pub enum PhysicsError {
    /// The isotope is not in the mass table.
    #[error("unknown isotope Z={z}, A={a}: it is not in the mass table")]
    UnknownIsotope {
        /// Proton number.
        z: u32,
        /// Mass number.
        a: u32,
    },
    /// An isotope symbol such as "16C" could not be parsed.
    #[error(
        "cannot parse isotope symbol {0:?} (expected e.g. \"16C\", \"4He\", \"p\", \"alpha\")"
    )]
    BadIsotopeSymbol(String),
    /// No stopping-power parameters exist for a target element.
    #[error(
        "no stopping-power data for target element Z={0} (supported: H, He, C, N, O, F, Ne, S, Ar, Kr, Xe)"
    )]
    NoStoppingData(u32),
    /// The gas target description is invalid.
    #[error("invalid gas target: {0}")]
    InvalidGas(String),
    /// A gas target file could not be read.
    #[error("cannot read gas target file {path}: {source}")]
    GasFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A gas target file or string is not valid JSON.
    #[error("gas target {what} is not valid JSON: {source}")]
    GasJson {
        /// Which input (a path or "string").
        what: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A kinetic energy is negative, zero or not finite where a positive one is needed.
    #[error("invalid kinetic energy {0} MeV")]
    InvalidEnergy(f64),
}
