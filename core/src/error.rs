//! The typed error every phase method returns across the plugin boundary.
//!
//! `PhaseError` is `#[repr(C)]` and `StableAbi`, so it crosses the FFI boundary unchanged; the
//! host turns it into its own error types and reports. The kinds are fixed: adding one would
//! change the ABI.

use abi_stable::{std_types::RString, StableAbi};
use std::fmt;

/// What went wrong, in broad classes the host treats differently in reports.
#[repr(u8)]
#[derive(
    StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseErrorKind {
    /// The phase's configuration is invalid (unknown field, wrong type, bad value).
    Config,
    /// The input of a run (the previous artifact, a trace file) is missing or malformed.
    InvalidInput,
    /// Reading or writing a file failed.
    Io,
    /// A bug or an unexpected state inside the phase.
    Internal,
    /// The phase panicked; the message is the panic payload (and location when known).
    Panic,
    /// The host asked the phase to stop (Ctrl-C, abort policy).
    Cancelled,
}

impl fmt::Display for PhaseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PhaseErrorKind::Config => "configuration error",
            PhaseErrorKind::InvalidInput => "invalid input",
            PhaseErrorKind::Io => "i/o error",
            PhaseErrorKind::Internal => "internal error",
            PhaseErrorKind::Panic => "panic",
            PhaseErrorKind::Cancelled => "cancelled",
        })
    }
}

/// An error returned by a phase method: a kind and a human-readable message.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct PhaseError {
    /// The class of the error.
    pub kind: PhaseErrorKind,
    /// What happened, written for a physicist: name the file, field, event or value.
    pub message: RString,
}

impl PhaseError {
    /// An error of `kind` with `message`.
    pub fn new(kind: PhaseErrorKind, message: impl Into<String>) -> Self {
        PhaseError {
            kind,
            message: RString::from(message.into()),
        }
    }
    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(PhaseErrorKind::Config, message)
    }
    /// An invalid-input error.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(PhaseErrorKind::InvalidInput, message)
    }
    /// An i/o error.
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(PhaseErrorKind::Io, message)
    }
    /// An i/o error about `path`, keeping the OS error text.
    pub fn io_at(path: &std::path::Path, what: &str, err: &std::io::Error) -> Self {
        Self::io(format!("{what} {}: {err}", path.display()))
    }
    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(PhaseErrorKind::Internal, message)
    }
    /// A panic turned into an error.
    pub fn panic(message: impl Into<String>) -> Self {
        Self::new(PhaseErrorKind::Panic, message)
    }
    /// A cancellation.
    pub fn cancelled() -> Self {
        Self::new(PhaseErrorKind::Cancelled, "stopped on request")
    }
    /// The message as a `&str`.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }
}
