//! Trace signal processing: baseline removal and scipy-compatible peak finding.
