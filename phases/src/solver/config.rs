//! The InterpSolver configuration: Spyral's `SolverParameters` with their documented defaults,
//! the detector parameters, and three additions (`ic_gate`, `distance`, `mesh_grid`).
//!
//! Paths (`gas_data_path`, `particle_id_filename`) are used as given: a relative path is
//! relative to the current directory of the `spyral` process (the host passes the config
//! through unchanged). Both are required; there is no sensible default gas or particle.
//!
//! The fit's outputs (InterpSolver parquet) are in SI-like units: vertices in metres, angles in
//! radians, the kinetic energy in MeV; an uncertainty `sigma_* = 1e6` means "not computed"
//! (see docs/formats.md). The mesh bounds below are in MeV and degrees, as Spyral's.

use super::distance::DistanceMode;
use super::fit::FitMethod;
use super::interp::MeshGrid;
use serde::{Deserialize, Serialize};
use spyral_data::attpc::detector::DetectorParameters;
use std::path::PathBuf;

/// InterpSolver parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SolverConfig {
    /// Gas target JSON file (Spyral format). Required (null is refused).
    pub gas_data_path: Option<PathBuf>,
    /// Particle-ID JSON file (gate polygon, Z, A). Required (null is refused).
    pub particle_id_filename: Option<PathBuf>,
    /// IC gate: keep rows with `ic_min_val < ic_amplitude < ic_max_val`. Unit: ADC.
    pub ic_min_val: f64,
    /// Upper bound of the IC gate (see `ic_min_val`). Unit: ADC.
    pub ic_max_val: f64,
    /// Whether the IC gate is applied (data without an ion chamber have `ic_amplitude = -1`
    /// and fail it; set false to fit them).
    pub ic_gate: bool,
    /// Time samples per mesh track (the trajectory's resolution).
    pub n_time_steps: usize,
    /// Lowest mesh kinetic energy. Unit: MeV.
    pub interp_ke_min: f64,
    /// Highest mesh kinetic energy. Unit: MeV.
    pub interp_ke_max: f64,
    /// Mesh kinetic-energy nodes (count).
    pub interp_ke_bins: usize,
    /// Lowest mesh polar angle. Unit: deg.
    pub interp_polar_min: f64,
    /// Highest mesh polar angle. Unit: deg.
    pub interp_polar_max: f64,
    /// Mesh polar-angle nodes (count).
    pub interp_polar_bins: usize,
    /// Whether the vertex's distance from the axis is fitted (false: held at the estimate).
    pub fit_vertex_rho: bool,
    /// Whether the vertex's azimuth about the axis is fitted.
    pub fit_vertex_phi: bool,
    /// Whether the track's azimuthal angle is fitted.
    pub fit_azimuthal: bool,
    /// `lbfgsb` (Spyral's fit: lmfit over scipy's L-BFGS-B, reproduced iterate for iterate, with
    /// its stops) or `leastsq` (Levenberg–Marquardt, with uncertainties).
    pub fit_method: FitMethod,
    /// Residual distance: `points` (nearest trajectory sample, Spyral) or `segments` (nearest
    /// point of the trajectory polyline).
    pub distance: DistanceMode,
    /// Where the interpolator places the mesh nodes (the mesh itself is the same):
    /// - `spyral` (default): as Spyral 1.1.2's interpolator, node `i` of an axis at
    ///   `min + i·(max − min)/bins` although its track was computed at
    ///   `min + i·(max − min)/(bins − 1)`; with its formulas in the last cell of each axis and
    ///   its read past the axis at the upper edge. Fits reproduce Spyral's, including its bias:
    ///   the fitted polar angle is low by about `(polar − interp_polar_min)/interp_polar_bins`
    ///   (0.29° at 50° with the default 166 nodes) and the KE by about
    ///   `(KE − interp_ke_min)/interp_ke_bins`;
    /// - `exact`: node `i` at `min + i·(max − min)/(bins − 1)`, where its track was computed
    ///   (plain bilinear interpolation, no bias).
    pub mesh_grid: MeshGrid,
    /// Detector parameters (fields, drift length, beam region, time calibration).
    pub detector: DetectorParameters,
}

impl Default for SolverConfig {
    fn default() -> Self {
        SolverConfig {
            gas_data_path: None,
            particle_id_filename: None,
            ic_min_val: 900.0,
            ic_max_val: 1350.0,
            ic_gate: true,
            n_time_steps: 1000,
            interp_ke_min: 0.1,
            interp_ke_max: 70.0,
            interp_ke_bins: 350,
            interp_polar_min: 2.0,
            interp_polar_max: 88.0,
            interp_polar_bins: 166,
            fit_vertex_rho: true,
            fit_vertex_phi: true,
            fit_azimuthal: true,
            fit_method: FitMethod::Lbfgsb,
            distance: DistanceMode::Points,
            mesh_grid: MeshGrid::Spyral,
            detector: DetectorParameters::default(),
        }
    }
}

impl SolverConfig {
    /// The IC gate test for one row.
    pub fn ic_passes(&self, ic_amplitude: f64) -> bool {
        !self.ic_gate || (self.ic_min_val < ic_amplitude && ic_amplitude < self.ic_max_val)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: SolverConfig = spyral_core::config::parse("InterpSolver", "{}").unwrap();
        assert_eq!(c, SolverConfig::default());
        assert_eq!(c.interp_polar_bins, 166);
        let c: SolverConfig =
            spyral_core::config::parse("InterpSolver", r#"{"fit_method": "leastsq"}"#).unwrap();
        assert_eq!(c.fit_method, FitMethod::Leastsq);
        let e = spyral_core::config::parse::<SolverConfig>(
            "InterpSolver",
            r#"{"fit_method": "nelder"}"#,
        )
        .unwrap_err();
        assert!(e.message().contains("fit_method"), "{}", e.message());
        assert_eq!(c.mesh_grid, MeshGrid::Spyral);
        let c: SolverConfig =
            spyral_core::config::parse("InterpSolver", r#"{"mesh_grid": "exact"}"#).unwrap();
        assert_eq!(c.mesh_grid, MeshGrid::Exact);
        let e = spyral_core::config::parse::<SolverConfig>(
            "InterpSolver",
            r#"{"mesh_grid": "linspace"}"#,
        )
        .unwrap_err();
        assert!(e.message().contains("mesh_grid"), "{}", e.message());
        assert!(spyral_core::config::parse::<SolverConfig>("X", r#"{"ic_mn_val": 1}"#).is_err());
        assert!(c.ic_passes(1000.0) || !c.ic_gate);
        assert!(!SolverConfig::default().ic_passes(-1.0));
    }
}
