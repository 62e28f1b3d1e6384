//! Detector and signal-analysis parameters of the AT-TPC, with Spyral's documented defaults,
//! and the small calibration helpers built on them: time bucket <-> z, window time, drift
//! velocity.
//!
//! Every struct deserializes with `#[serde(default, deny_unknown_fields)]`: a missing field takes
//! the documented default, a misspelt one is an error that names it. Each also derives
//! `schemars::JsonSchema` (its doc comments and defaults are the reference `spyral plugins --doc`
//! prints); a quantity's doc comment ends with `Unit: <unit>.`

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Errors from [`DetectorParameters::validate`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParameterError {
    /// A parameter has a value that makes the calibration meaningless.
    #[error("detector parameter {field} = {value}: {problem}")]
    Invalid {
        /// The field name, as written in the configuration.
        field: &'static str,
        /// The offending value.
        value: f64,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// Detector geometry, fields and the GET timing calibration.
///
/// Defaults are Spyral's documented values: B = 2.85 T, E = 45 kV/m, a 1 m drift length, a
/// 25 mm beam region, the micromegas at time bucket 10 and the window at 560, GET at 6.25 MHz.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorParameters {
    /// Magnetic field along +z. Unit: T.
    pub magnetic_field: f64,
    /// Drift electric field. Unit: V/m.
    pub electric_field: f64,
    /// Active (drift) length of the detector. Unit: mm.
    pub detector_length: f64,
    /// Radius of the beam region around the axis. Unit: mm.
    pub beam_region_radius: f64,
    /// GET time bucket of the micromegas (the pad plane, z = detector_length). Unit: time bucket.
    pub micromegas_time_bucket: f64,
    /// GET time bucket of the entrance window (z = 0). Unit: time bucket.
    pub window_time_bucket: f64,
    /// GET sampling frequency. Unit: MHz.
    pub get_frequency: f64,
    /// Garfield electron-drift simulation file; null when no correction is configured.
    pub garfield_file_path: Option<PathBuf>,
    /// Whether the Garfield electron-drift correction is applied.
    pub do_garfield_correction: bool,
}

impl Default for DetectorParameters {
    fn default() -> Self {
        DetectorParameters {
            magnetic_field: 2.85,
            electric_field: 45000.0,
            detector_length: 1000.0,
            beam_region_radius: 25.0,
            micromegas_time_bucket: 10.0,
            window_time_bucket: 560.0,
            get_frequency: 6.25,
            garfield_file_path: None,
            do_garfield_correction: false,
        }
    }
}

impl DetectorParameters {
    /// Checks that the calibration is usable: a positive length and frequency and a window
    /// time bucket different from the micromegas one.
    pub fn validate(&self) -> Result<(), ParameterError> {
        let positive = |field: &'static str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(ParameterError::Invalid {
                    field,
                    value,
                    problem: "must be a positive number",
                })
            }
        };
        positive("detector_length", self.detector_length)?;
        positive("get_frequency", self.get_frequency)?;
        let span = self.window_time_bucket - self.micromegas_time_bucket;
        if !(span.is_finite() && span != 0.0) {
            return Err(ParameterError::Invalid {
                field: "window_time_bucket",
                value: self.window_time_bucket,
                problem: "must differ from micromegas_time_bucket",
            });
        }
        Ok(())
    }

    /// z in mm of a signal at GET time bucket `tb` (Spyral's micromegas/window calibration):
    /// `z = (window_tb - tb) / (window_tb - micromegas_tb) * detector_length`.
    /// The micromegas maps to `detector_length`, the window to 0.
    pub fn z_from_tb(&self, tb: f64) -> f64 {
        z_from_tb(
            tb,
            self.micromegas_time_bucket,
            self.window_time_bucket,
            self.detector_length,
        )
    }

    /// The inverse of [`DetectorParameters::z_from_tb`]: the time bucket of a signal from `z` mm.
    pub fn tb_from_z(&self, z: f64) -> f64 {
        self.window_time_bucket
            - z / self.detector_length * (self.window_time_bucket - self.micromegas_time_bucket)
    }

    /// Electron drift velocity in mm/µs implied by the calibration:
    /// `detector_length / ((window_tb - micromegas_tb) / get_frequency)`
    /// (11.36 mm/µs with the defaults).
    pub fn drift_velocity(&self) -> f64 {
        drift_velocity(
            self.micromegas_time_bucket,
            self.window_time_bucket,
            self.detector_length,
            self.get_frequency,
        )
    }

    /// Length of one GET time bucket along z, in mm (1000/550 mm with the defaults).
    pub fn mm_per_time_bucket(&self) -> f64 {
        self.detector_length / (self.window_time_bucket - self.micromegas_time_bucket)
    }
}

/// `z = (window_tb - tb) / (window_tb - micromegas_tb) * detector_length` (mm).
pub fn z_from_tb(tb: f64, micromegas_tb: f64, window_tb: f64, detector_length: f64) -> f64 {
    (window_tb - tb) / (window_tb - micromegas_tb) * detector_length
}

/// The window time bucket for a drift velocity (Spyral's `calculate_window_time`):
/// `detector_length / drift_velocity * get_frequency + micromegas_tb`,
/// with the velocity in mm/µs, the length in mm and the frequency in MHz.
pub fn calculate_window_time(
    micromegas_tb: f64,
    drift_velocity: f64,
    detector_length: f64,
    get_frequency: f64,
) -> f64 {
    detector_length / drift_velocity * get_frequency + micromegas_tb
}

/// Drift velocity in mm/µs from the time calibration:
/// `detector_length / ((window_tb - micromegas_tb) / get_frequency)`.
pub fn drift_velocity(
    micromegas_tb: f64,
    window_tb: f64,
    detector_length: f64,
    get_frequency: f64,
) -> f64 {
    detector_length / ((window_tb - micromegas_tb) / get_frequency)
}

/// Peak-finding parameters for the GET pad traces (Spyral's `GetParameters`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GetParameters {
    /// Width scale of the baseline low-pass filter. Unit: time bucket.
    pub baseline_window_scale: f64,
    /// Minimum distance between peaks. Unit: time bucket.
    pub peak_separation: f64,
    /// Minimum peak prominence. Unit: ADC.
    pub peak_prominence: f64,
    /// Maximum peak width. Unit: time bucket.
    pub peak_max_width: f64,
    /// Minimum peak amplitude kept. Unit: ADC.
    pub peak_threshold: f64,
}

impl Default for GetParameters {
    fn default() -> Self {
        GetParameters {
            baseline_window_scale: 20.0,
            peak_separation: 50.0,
            peak_prominence: 20.0,
            peak_max_width: 50.0,
            peak_threshold: 40.0,
        }
    }
}

/// Peak-finding and ion-chamber gating parameters for the FRIBDAQ traces (Spyral's
/// `FribParameters`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FribParameters {
    /// Width scale of the baseline low-pass filter. Unit: FRIB time bucket.
    pub baseline_window_scale: f64,
    /// Minimum distance between peaks. Unit: FRIB time bucket.
    pub peak_separation: f64,
    /// Minimum peak prominence. Unit: ADC.
    pub peak_prominence: f64,
    /// Maximum peak width. Unit: FRIB time bucket.
    pub peak_max_width: f64,
    /// Minimum peak amplitude kept. Unit: ADC.
    pub peak_threshold: f64,
    /// IC peaks at or before this FRIB time bucket are ignored. Unit: FRIB time bucket.
    pub ic_delay_time_bucket: u32,
    /// Largest IC multiplicity counted as a good (gated) event.
    pub ic_multiplicity: u32,
}

impl Default for FribParameters {
    fn default() -> Self {
        FribParameters {
            baseline_window_scale: 100.0,
            peak_separation: 50.0,
            peak_prominence: 20.0,
            peak_max_width: 500.0,
            peak_threshold: 100.0,
            ic_delay_time_bucket: 1100,
            ic_multiplicity: 1,
        }
    }
}

/// Where the pad plane comes from. `None` for a path means the built-in value for that
/// quantity (see [`crate::attpc::padmap::PadMap::load`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PadParameters {
    /// CSV of pad centres (`x,y` in mm), one row per pad; null = the built-in plane (the
    /// AT-TPC's, as Spyral uses it by default).
    pub pad_geometry_path: Option<PathBuf>,
    /// CSV of per-pad time offsets (time buckets); null = the built-in plane's time
    /// corrections (zero offsets for a CSV geometry without the AT-TPC's 10240 pads).
    pub pad_time_path: Option<PathBuf>,
    /// CSV of per-pad scales (0.5 small, 1.0 big); null = the built-in plane's scales (needed
    /// for a CSV geometry without the AT-TPC's 10240 pads).
    pub pad_scale_path: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_calibration() {
        let d = DetectorParameters::default();
        d.validate().unwrap();
        assert!((d.z_from_tb(10.0) - 1000.0).abs() < 1e-12);
        assert!(d.z_from_tb(560.0).abs() < 1e-12);
        assert!((d.tb_from_z(d.z_from_tb(123.4)) - 123.4).abs() < 1e-9);
        let v = d.drift_velocity();
        assert!((v - 1000.0 / 88.0).abs() < 1e-12, "{v}");
        let w = calculate_window_time(10.0, v, 1000.0, 6.25);
        assert!((w - 560.0).abs() < 1e-9);
        let bad = DetectorParameters {
            window_time_bucket: 10.0,
            ..d
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn serde_defaults_and_unknown_fields() {
        let g: GetParameters = serde_json::from_str(r#"{"peak_threshold": 30.0}"#).unwrap();
        assert_eq!(g.peak_threshold, 30.0);
        assert_eq!(g.peak_separation, 50.0);
        let e = serde_json::from_str::<FribParameters>(r#"{"ic_multiplicty": 2}"#).unwrap_err();
        assert!(e.to_string().contains("ic_multiplicty"), "{e}");
        let p: PadParameters = serde_json::from_str("{}").unwrap();
        assert_eq!(p, PadParameters::default());
        let d: DetectorParameters =
            serde_json::from_str(r#"{"garfield_file_path": "e.txt"}"#).unwrap();
        assert_eq!(d.garfield_file_path, Some(PathBuf::from("e.txt")));
        assert_eq!(d.magnetic_field, 2.85);
    }
}
