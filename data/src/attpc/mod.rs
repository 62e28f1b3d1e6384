//! The AT-TPC data layer: trace file formats (reading and writing every layout Spyral knows),
//! the pad plane, and the detector and signal-analysis parameters.
//!
//! - [`traces`]: format detection and [`TraceReader`] (raw GET, silicon and FRIBDAQ data,
//!   scalers) with the typed [`TraceError`];
//! - [`writer`]: [`TraceWriter`], which writes runs in the legacy, merger 1.0, merger 2.0 and
//!   harmonizer layouts (used by the simulator and the tests);
//! - [`padmap`]: [`PadMap`] (Spyral CSV maps or the built-in plane), beam pads, point -> pad
//!   lookup and hardware ids;
//! - [`detector`]: [`DetectorParameters`], [`GetParameters`], [`FribParameters`],
//!   [`PadParameters`] with Spyral's documented defaults, and the z / drift-velocity helpers;
//! - [`h5util`]: tolerant HDF5 attribute helpers shared by readers and writers.

pub mod detector;
pub mod h5util;
pub mod padmap;
pub mod traces;
pub mod writer;

pub use detector::{
    calculate_window_time, drift_velocity, z_from_tb, DetectorParameters, FribParameters,
    GetParameters, PadParameters, ParameterError,
};
pub use padmap::{HardwareId, PadGeometry, PadInfo, PadMap, PadMapError, LEGACY_BEAM_PADS};
pub use traces::{
    FribData, FribTrigger, RawEvent, ScalerRow, SiliconTraces, TraceError, TraceFormat,
    TraceReader, SCALER_NAMES,
};
pub use writer::{RunInfo, TraceWriter};
