//! Trace signal processing: baseline removal and scipy-compatible peak finding.
//!
//! This module turns raw digitizer traces into peaks, exactly as Spyral's
//! `GetEvent`/`FribEvent` preprocessing does (spec §3.1.1, §3.1.2 and §1.8):
//!
//! - [`baseline`]: the Fourier-filter baseline removal that Spyral runs on every GET trace
//!   (512 samples, `i16`) and on every FRIBDAQ column (2048 samples, `u16`), with precomputed
//!   filter and FFT plans ([`BaselineRemover`]);
//! - [`peaks`]: a re-implementation of `scipy.signal.find_peaks` for the options Spyral uses
//!   (`distance`, `prominence`, `width`, `rel_height`; `wlen=None`) in [`PeakFinder`], and the
//!   helpers that turn its output into Spyral [`Peak`]s for GET and FRIB traces.
//!
//! Both halves keep their working memory in reusable structs, so processing an event does not
//! allocate once the structs have been created.
//!
//! Typical GET use, one remover and one finder per worker:
//!
//! ```
//! use spyral_phases::signal::{get_peaks, BaselineRemover, FindPeaksParams, PeakFinder};
//!
//! let mut remover = BaselineRemover::new(512, 20.0)?;
//! let mut finder = PeakFinder::new();
//! let params = FindPeaksParams::spyral_get(50.0, 20.0, 50.0);
//! let raw: Vec<i16> = (0..512)
//!     .map(|i| 60 + if (200..220).contains(&i) { 300 } else { 0 })
//!     .collect();
//! let mut trace = vec![0i32; 512];
//! remover.remove(&raw, &mut trace)?;
//! let mut peaks = Vec::new();
//! get_peaks(&mut finder, &trace, &params, 40.0, || 0.0, &mut peaks)?;
//! assert_eq!(peaks.len(), 1);
//! # Ok::<(), spyral_phases::signal::SignalError>(())
//! ```

pub mod baseline;
pub mod peaks;

pub use baseline::{BaselineRemover, RawSample};
pub use peaks::{
    frib_peaks, get_peaks, get_peaks_above, FindPeaksParams, FoundPeak, Interval, Peak, PeakFinder,
    PeakSample,
};

/// Number of time buckets in a GET trace (matrix columns 5..517).
pub const GET_TRACE_LENGTH: usize = 512;
/// Number of samples in a FRIBDAQ (SIS3300) trace column.
pub const FRIB_TRACE_LENGTH: usize = 2048;
/// First sample column of the GET trace matrix (columns 0..5 are the hardware id).
pub const GET_SAMPLE_COLUMN_OFFSET: usize = 5;

/// Errors of the signal-processing functions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    /// A trace (or output buffer) does not have the length the processor was built for.
    #[error("trace length mismatch: expected {expected} samples, got {got}")]
    LengthMismatch {
        /// The expected number of samples.
        expected: usize,
        /// The number of samples supplied.
        got: usize,
    },
    /// A matrix does not have the shape the operation needs.
    #[error("matrix shape mismatch: expected {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// The expected `(rows, columns)`.
        expected: (usize, usize),
        /// The supplied `(rows, columns)`.
        got: (usize, usize),
    },
    /// The baseline filter needs an even number of samples, at least 4.
    #[error("baseline removal needs an even number of samples >= 4, got {0}")]
    InvalidSampleCount(usize),
    /// The baseline window scale must be finite and non-zero.
    #[error("baseline window scale must be finite and non-zero, got {0}")]
    InvalidWindowScale(f64),
    /// `find_peaks` requires `distance >= 1` (scipy raises `ValueError` otherwise).
    #[error("peak distance must be >= 1, got {0}")]
    InvalidDistance(f64),
    /// `peak_widths` requires `rel_height >= 0` (scipy raises `ValueError` otherwise).
    #[error("rel_height must be >= 0, got {0}")]
    InvalidRelHeight(f64),
}
