//! The truth record of simulated events and its JSON-lines writer.
//!
//! `write_truth` writes one JSON object per line and per event:
//!
//! | key | meaning |
//! |---|---|
//! | `event_id` | event number (the row in the trace file) |
//! | `trigger` | the 977 trigger word: 1 = MESH, 2 = IC_DOWNSCALE (beam-only event) |
//! | `reaction` | whether a reaction happened (false for IC_DOWNSCALE events or below threshold) |
//! | `vertex_mm` | [x, y, z] of the vertex in mm (for beam-only events: where the beam left) |
//! | `beam` | `species`, `entry_mm` [x, y, z], `ke_entry_mev` at the window, `ke_vertex_mev` |
//! | `ic_amplitude` | amplitude of the triggering IC pulse (ADC), null without FRIB data |
//! | `particles` | the reaction products, each with: `species` ("2H"), `z`, `a`, `vertex_mm`, `ke_mev` (at the vertex), `polar_rad` (from +z), `azimuthal_rad` (of the initial momentum, in [0, 2π)), `brho_tm`, `end_mm`, `path_length_mm`, `stop` (stopped, left_z, left_rho, reached_stop_z, step_limit) |

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::track::StopReason;
use super::SimError;

/// The beam in one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeamTruth {
    /// Isotopic symbol, e.g. "16C".
    pub species: String,
    /// Entry point at the window (mm).
    pub entry_mm: [f64; 3],
    /// Kinetic energy at the window (MeV).
    pub ke_entry_mev: f64,
    /// Kinetic energy at the vertex (MeV).
    pub ke_vertex_mev: f64,
}

/// One reaction product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticleTruth {
    /// Isotopic symbol, e.g. "2H".
    pub species: String,
    /// Proton number.
    pub z: u32,
    /// Mass number.
    pub a: u32,
    /// Vertex (mm).
    pub vertex_mm: [f64; 3],
    /// Kinetic energy at the vertex (MeV).
    pub ke_mev: f64,
    /// Polar angle of the initial momentum from +z (rad).
    pub polar_rad: f64,
    /// Azimuth of the initial momentum in [0, 2π) (rad).
    pub azimuthal_rad: f64,
    /// Magnetic rigidity at the vertex (T·m).
    pub brho_tm: f64,
    /// Where tracking ended (mm).
    pub end_mm: [f64; 3],
    /// Path length in the gas (mm).
    pub path_length_mm: f64,
    /// Why tracking ended.
    pub stop: StopReason,
}

/// The truth of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventTruth {
    /// Event id.
    pub event_id: u64,
    /// Trigger word (1 = MESH, 2 = IC_DOWNSCALE).
    pub trigger: u16,
    /// Whether a reaction happened.
    pub reaction: bool,
    /// Vertex (mm).
    pub vertex_mm: [f64; 3],
    /// The beam.
    pub beam: BeamTruth,
    /// Triggering IC amplitude (ADC), if FRIB data is produced.
    pub ic_amplitude: Option<f64>,
    /// The reaction products.
    pub particles: Vec<ParticleTruth>,
}

/// Writes the truth records as JSON lines (one event per line; columns in the module docs).
pub fn write_truth(path: impl AsRef<Path>, truths: &[EventTruth]) -> Result<(), SimError> {
    let path = path.as_ref();
    let io = |source: std::io::Error| SimError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::new(file);
    for t in truths {
        serde_json::to_writer(&mut w, t).map_err(|e| SimError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        w.write_all(b"\n").map_err(io)?;
    }
    w.flush().map_err(io)
}

/// Reads a file written by [`write_truth`].
pub fn read_truth(path: impl AsRef<Path>) -> Result<Vec<EventTruth>, SimError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| SimError::Io {
                path: path.to_path_buf(),
                source: e.into(),
            })
        })
        .collect()
}
