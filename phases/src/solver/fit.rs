//! One track fit (spyral-spec §3.4.4): from a cluster's points and the Estimation guess, the
//! (Bρ, polar, vertex ρ/φ/z, azimuth) whose interpolated trajectory lies closest to the
//! points, with Spyral's bounds, weights, objectives and output quantities.
//!
//! - Data: cluster xyz in m; per-point errors `σz = L/(window − mm)·0.5 mm`,
//!   `σx = scale·5 mm`, `σy = scale·10/√3 mm`.
//! - `lbfgsb` (default): minimise `Σ wᵢ dᵢ / Σ wᵢ` with `w = 1/(σx² + σy² + σz²)` exactly as
//!   Spyral does, `lmfit.minimize(method='lbfgsb')`: lmfit's sin/arcsin map of each bounded
//!   parameter to an unbounded internal variable and scipy's L-BFGS-B on those with its 2-point
//!   finite-difference gradient and default stops ([`super::optim::lmfit_lbfgsb`]). The fit
//!   therefore stops where Spyral's stops (relative reduction below 2.2e-9 or projected
//!   gradient of the internal variables below 1e-5), not at the objective's exact minimum.
//!   `redchisq` is lmfit's `redchi` for a scalar objective: `ndata = 1`, `nfree = 1 − nvary`,
//!   `chisqr` the objective squared, so `redchisq` = (final weighted mean distance in m)²;
//!   every sigma is the 1e6 sentinel (as in Spyral). Running the same minimiser on to
//!   convergence (relative reduction 1e-15, projected gradient 1e-9) was measured on 60
//!   synthetic proton tracks against Spyral's stops: polar within ±0.001°, KE within 0.005 %
//!   (16–84 %), no change in accuracy against the truth, 35 % more evaluations; so no stricter
//!   variant is offered.
//! - `leastsq`: minimise `Σ (wᵢ dᵢ)²` with `w = 1/√(σx² + σy² + σz²)`; `redchisq = Σr²/(N − n)`
//!   (lmfit's `redchi`: N points, n varying parameters), sigmas from the covariance (vertex x/y
//!   propagated from ρ and φ with their correlation). Bounds are enforced by projection in our
//!   Levenberg–Marquardt ([`super::optim::least_squares_lm`]), not by lmfit's transform.
//! - A guess whose KE or polar angle is outside the mesh is skipped (`FitOutcome::Skipped`), as in
//!   Spyral. A non-finite objective is a failed fit ([`FitError`]); Spyral aborts the worker.
//!
//! Parameters a guess puts outside their bounds (a vertex outside the beam region or the drift
//! length) start at the nearest bound (lmfit clips the same way). A parameter whose bounds
//! coincide (lmfit refuses it and Spyral's worker dies) is held fixed instead.

use super::distance::{nearest_distances, DistanceMode, DistanceScratch};
use super::interp::{CachedInterpolator, MeshView};
use super::optim::lbfgsb::Iterate;
use super::optim::{
    least_squares_lm, lmfit_default_max_nfev, lmfit_lbfgsb, LmOptions, LmfitOptions, LmfitParam,
    OptimError,
};
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};
use spyral_data::physics::constants::BRHO_FACTOR;
use spyral_data::physics::Nucleus;
use std::f64::consts::{FRAC_PI_2, TAU};

/// Spyral's "no uncertainty available" value.
pub const SIGMA_SENTINEL: f64 = 1e6;
/// Pad height used for the x/y errors (m).
pub const BIG_PAD_HEIGHT_M: f64 = 0.01;

/// The minimiser.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FitMethod {
    /// Spyral's fit: lmfit + scipy L-BFGS-B on the weighted mean distance, with their stops.
    #[default]
    Lbfgsb,
    /// Levenberg–Marquardt on the weighted distances.
    Leastsq,
}

/// Fixed settings of a fitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitSettings {
    /// The minimiser.
    pub method: FitMethod,
    /// Distance definition.
    pub distance: DistanceMode,
    /// Whether the vertex ρ varies.
    pub fit_vertex_rho: bool,
    /// Whether the vertex φ varies.
    pub fit_vertex_phi: bool,
    /// Whether the azimuth varies.
    pub fit_azimuthal: bool,
    /// Beam-region radius (m): the bound on the vertex ρ.
    pub beam_region_radius_m: f64,
    /// Drift length (m): the bound on the vertex z.
    pub detector_length_m: f64,
    /// The z error of a point (m): `L/(window − mm)·0.5 mm`.
    pub sigma_z_m: f64,
}

/// The Estimation phase's guess for one cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guess {
    /// Polar angle (rad).
    pub polar: f64,
    /// Azimuthal angle (rad).
    pub azimuthal: f64,
    /// Magnetic rigidity (T·m).
    pub brho: f64,
    /// Vertex (mm).
    pub vertex_mm: [f64; 3],
}

/// A fitted track (SI units: m, rad, T·m, MeV).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitResult {
    /// Vertex (m).
    pub vertex: [f64; 3],
    /// Vertex uncertainties (m).
    pub sigma_vertex: [f64; 3],
    /// Bρ (T·m).
    pub brho: f64,
    /// σ(Bρ).
    pub sigma_brho: f64,
    /// Kinetic energy from Bρ (MeV).
    pub ke: f64,
    /// σ(KE).
    pub sigma_ke: f64,
    /// Polar angle (rad).
    pub polar: f64,
    /// σ(polar).
    pub sigma_polar: f64,
    /// Azimuthal angle (rad).
    pub azimuthal: f64,
    /// σ(azimuth).
    pub sigma_azimuthal: f64,
    /// lmfit's reduced chi-square (see the module documentation): for `lbfgsb` the final
    /// objective (weighted mean distance, m) squared, for `leastsq` `Σr²/(N − n)`.
    pub redchisq: f64,
    /// Objective evaluations.
    pub evaluations: usize,
    /// Minimiser iterations.
    pub iterations: usize,
    /// Whether the minimiser reported convergence.
    pub converged: bool,
}

/// Why a guess was not fitted (not an error: Spyral drops these rows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Skip {
    /// The guess's KE (MeV) is outside the mesh.
    KineticEnergy(f64),
    /// The guess's polar angle (deg) is outside the mesh.
    Polar(f64),
    /// Fewer points than free parameters.
    TooFewPoints(usize),
    /// A guess value is NaN or infinite.
    NonFiniteGuess,
}

/// The result of [`TrackFitter::fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FitOutcome {
    /// The fit ran.
    Fitted(FitResult),
    /// The guess was out of range.
    Skipped(Skip),
}

/// Why a fit failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    /// The minimiser failed (typically a non-finite objective).
    #[error("{0}")]
    Optimizer(#[from] OptimError),
    /// The cloud is not an (N, ≥5) array.
    #[error("the cluster cloud has {0} columns, expected at least 5")]
    Columns(usize),
}

/// Parameter order in the full vector.
const BRHO: usize = 0;
const POLAR: usize = 1;
const RHO: usize = 2;
const PHI: usize = 3;
const AZIM: usize = 4;
const VZ: usize = 5;

/// Fits tracks against one mesh.
#[derive(Debug, Clone, Copy)]
pub struct TrackFitter<'m> {
    mesh: MeshView<'m>,
    particle: Nucleus,
    settings: FitSettings,
}

struct Evaluator<'a, 'm> {
    interp: CachedInterpolator<'m>,
    particle: &'a Nucleus,
    mode: DistanceMode,
    points: Vec<[f64; 3]>,
    weights: Vec<f64>,
    traj: Vec<[f64; 3]>,
    dist: Vec<f64>,
    scratch: DistanceScratch,
    ke_range: (f64, f64),
}

impl Evaluator<'_, '_> {
    /// Distances for the full parameter vector; false if the trajectory cannot be made.
    fn distances(&mut self, p: &[f64; 6]) -> bool {
        let ke = clamp_close(self.particle.ke_from_brho(p[BRHO]), self.ke_range);
        let vertex = [p[RHO] * p[PHI].cos(), p[RHO] * p[PHI].sin(), p[VZ]];
        if self
            .interp
            .trajectory_at(vertex, p[POLAR], p[AZIM], ke, &mut self.traj)
            .is_err()
        {
            return false;
        }
        nearest_distances(
            &self.traj,
            &self.points,
            self.mode,
            &mut self.scratch,
            &mut self.dist,
        );
        true
    }
}

/// Pulls a value a rounding error outside `range` back in.
fn clamp_close(v: f64, range: (f64, f64)) -> f64 {
    let tol = 1e-9 * (range.1 - range.0);
    if v < range.0 && v > range.0 - tol {
        range.0
    } else if v > range.1 && v < range.1 + tol {
        range.1
    } else {
        v
    }
}

impl<'m> TrackFitter<'m> {
    /// A fitter for `particle` on `mesh`.
    pub fn new(mesh: MeshView<'m>, particle: Nucleus, settings: FitSettings) -> Self {
        TrackFitter {
            mesh,
            particle,
            settings,
        }
    }

    /// Bρ (T·m) of a kinetic energy (MeV) for the fitted particle.
    pub fn brho_of(&self, ke: f64) -> f64 {
        self.particle.brho_tm(ke)
    }

    /// The cluster's points (m, sorted by z) and their weights for the configured method.
    fn prepare(&self, cloud: ArrayView2<'_, f64>) -> Result<(Vec<[f64; 3]>, Vec<f64>), FitError> {
        let s = &self.settings;
        if cloud.ncols() < 5 {
            return Err(FitError::Columns(cloud.ncols()));
        }
        // Sorted by z: the distance search wants it; the objective is a sum.
        let mut rows: Vec<[f64; 5]> = cloud
            .outer_iter()
            .map(|r| [r[0], r[1], r[2], r[3], r[4]])
            .filter(|r| [r[0], r[1], r[2], r[4]].iter().all(|v| v.is_finite()))
            .collect();
        rows.sort_by(|a, b| a[2].total_cmp(&b[2]));
        let sz2 = s.sigma_z_m * s.sigma_z_m;
        let points: Vec<[f64; 3]> = rows
            .iter()
            .map(|r| [r[0] * 0.001, r[1] * 0.001, r[2] * 0.001])
            .collect();
        let weights = rows
            .iter()
            .map(|r| {
                let sx = r[4] * BIG_PAD_HEIGHT_M * 0.5;
                let sy = r[4] * BIG_PAD_HEIGHT_M / 3f64.sqrt();
                let var = sx * sx + sy * sy + sz2;
                match s.method {
                    FitMethod::Lbfgsb => 1.0 / var,
                    FitMethod::Leastsq => 1.0 / var.sqrt(),
                }
            })
            .collect();
        Ok((points, weights))
    }

    /// The method's objective for a track (vertex in m, angles in rad, KE in MeV): the weighted
    /// mean distance (`lbfgsb`) or `Σ (w d)²` (`leastsq`); None if the track is outside the mesh.
    pub fn objective(
        &self,
        cloud: ArrayView2<'_, f64>,
        vertex: [f64; 3],
        polar: f64,
        azimuthal: f64,
        ke: f64,
    ) -> Result<Option<f64>, FitError> {
        let (points, weights) = self.prepare(cloud)?;
        let mut traj = Vec::new();
        if self
            .mesh
            .trajectory_at(vertex, polar, azimuthal, ke, &mut traj)
            .is_err()
        {
            return Ok(None);
        }
        let mut dist = vec![0.0; points.len()];
        let mut scratch = DistanceScratch::default();
        nearest_distances(
            &traj,
            &points,
            self.settings.distance,
            &mut scratch,
            &mut dist,
        );
        Ok(Some(match self.settings.method {
            FitMethod::Lbfgsb => {
                weights.iter().zip(&dist).map(|(w, d)| w * d).sum::<f64>()
                    / weights.iter().sum::<f64>()
            }
            FitMethod::Leastsq => weights
                .iter()
                .zip(&dist)
                .map(|(w, d)| (w * d).powi(2))
                .sum(),
        }))
    }

    /// Fits one cluster. `cloud` rows are `[x, y, z, integral, scale, ...]` in mm (rows with a
    /// non-finite coordinate or scale are ignored).
    pub fn fit(&self, cloud: ArrayView2<'_, f64>, guess: &Guess) -> Result<FitOutcome, FitError> {
        self.fit_observed(cloud, guess, None)
    }

    /// [`TrackFitter::fit`], with `observer` seeing every L-BFGS-B iterate of an `lbfgsb` fit
    /// (lmfit's internal variables of the varying parameters, in the order brho, polar, vertex
    /// ρ, vertex φ, azimuth, vertex z).
    pub fn fit_observed(
        &self,
        cloud: ArrayView2<'_, f64>,
        guess: &Guess,
        observer: Option<&mut dyn FnMut(&Iterate<'_>)>,
    ) -> Result<FitOutcome, FitError> {
        let s = &self.settings;
        let g = guess;
        if ![
            g.polar,
            g.azimuthal,
            g.brho,
            g.vertex_mm[0],
            g.vertex_mm[1],
            g.vertex_mm[2],
        ]
        .iter()
        .all(|v| v.is_finite())
        {
            return Ok(FitOutcome::Skipped(Skip::NonFiniteGuess));
        }
        let (ke_min, ke_max) = self.mesh.ke_range();
        let (pol_min, pol_max) = self.mesh.polar_range();
        let ke_guess = self.particle.ke_from_brho(g.brho);
        if !(ke_guess >= ke_min && ke_guess <= ke_max) {
            return Ok(FitOutcome::Skipped(Skip::KineticEnergy(ke_guess)));
        }
        if !(g.polar >= pol_min && g.polar <= pol_max) {
            return Ok(FitOutcome::Skipped(Skip::Polar(g.polar.to_degrees())));
        }
        let (points, weights) = self.prepare(cloud)?;

        // Parameters, bounds and which vary.
        let brho_lo = (g.brho - 2.0).max(self.particle.brho_tm(ke_min));
        let brho_hi = (g.brho + 2.0).min(self.particle.brho_tm(ke_max));
        let (mut plo, mut phi_) = (pol_min, pol_max);
        if g.polar < FRAC_PI_2 {
            phi_ = phi_.min(FRAC_PI_2);
        } else if g.polar > FRAC_PI_2 {
            plo = plo.max(FRAC_PI_2);
        }
        let l = s.detector_length_m;
        let vz0 = (g.vertex_mm[2] * 0.001).clamp(0.0, l.max(0.0));
        let rho0 = g.vertex_mm[0].hypot(g.vertex_mm[1]) * 0.001;
        // Spyral: atan2, plus 2π when negative; the azimuth is taken as it is (lmfit clips
        // both into [0, 2π]).
        let mut phi0 = g.vertex_mm[1].atan2(g.vertex_mm[0]);
        if phi0 < 0.0 {
            phi0 += TAU;
        }
        let init = [g.brho, g.polar, rho0, phi0, g.azimuthal, vz0];
        let lo = [brho_lo, plo, 0.0, 0.0, 0.0, (vz0 - 0.2).max(0.0)];
        let hi = [
            brho_hi,
            phi_,
            s.beam_region_radius_m.max(0.0),
            TAU,
            TAU,
            (vz0 + 0.2).min(l),
        ];
        let wants = [
            true,
            true,
            s.fit_vertex_rho,
            s.fit_vertex_phi,
            s.fit_azimuthal,
            true,
        ];
        let mut full = [0.0; 6];
        let mut vary: Vec<usize> = Vec::with_capacity(6);
        for k in 0..6 {
            full[k] = init[k].clamp(lo[k].min(hi[k]), hi[k].max(lo[k]));
            // lmfit refuses a parameter with min == max (numpy.isclose, 1e-13); it is fixed here.
            if wants[k] && (hi[k] - lo[k]).abs() > 1e-13 + 1e-13 * hi[k].abs() {
                vary.push(k);
            }
        }
        if points.len() <= vary.len() {
            return Ok(FitOutcome::Skipped(Skip::TooFewPoints(points.len())));
        }
        let x0: Vec<f64> = vary.iter().map(|&k| full[k]).collect();
        let vlo: Vec<f64> = vary.iter().map(|&k| lo[k]).collect();
        let vhi: Vec<f64> = vary.iter().map(|&k| hi[k]).collect();

        let n = points.len();
        let mut ev = Evaluator {
            interp: CachedInterpolator::new(self.mesh),
            particle: &self.particle,
            mode: s.distance,
            points,
            weights,
            traj: Vec::with_capacity(self.mesh.time_steps()),
            dist: vec![0.0; n],
            scratch: DistanceScratch::default(),
            ke_range: (ke_min, ke_max),
        };
        let wsum: f64 = ev.weights.iter().sum();
        let base = full;
        let expand = |x: &[f64]| -> [f64; 6] {
            let mut p = base;
            for (&k, v) in vary.iter().zip(x) {
                p[k] = *v;
            }
            p
        };
        let max_evals = 2 * 2000 * (vary.len() + 1);
        let nvary = vary.len();
        let (best, sigmas, redchisq, evals, iterations, converged) = match s.method {
            FitMethod::Lbfgsb => {
                // lmfit's parameters (all six, in Spyral's order); the objective gets them all.
                let params: Vec<LmfitParam> = (0..6)
                    .map(|k| LmfitParam {
                        value: full[k],
                        min: lo[k],
                        max: hi[k],
                        vary: vary.contains(&k),
                    })
                    .collect();
                let mut obj = |p: &[f64]| -> f64 {
                    let p6 = [p[0], p[1], p[2], p[3], p[4], p[5]];
                    if !ev.distances(&p6) {
                        return f64::NAN;
                    }
                    ev.weights
                        .iter()
                        .zip(&ev.dist)
                        .map(|(w, d)| w * d)
                        .sum::<f64>()
                        / wsum
                };
                let opts = LmfitOptions {
                    max_nfev: Some(lmfit_default_max_nfev(nvary)),
                    ..LmfitOptions::default()
                };
                let m = lmfit_lbfgsb(&mut obj, &params, &opts, observer)?;
                let p = [
                    m.values[0],
                    m.values[1],
                    m.values[2],
                    m.values[3],
                    m.values[4],
                    m.values[5],
                ];
                // lmfit's reduced chi-square of a scalar objective: the objective squared.
                (p, None, m.redchi, m.nfev, m.nit, m.success())
            }
            FitMethod::Leastsq => {
                let mut res = |x: &[f64], r: &mut [f64]| -> bool {
                    if !ev.distances(&expand(x)) {
                        return false;
                    }
                    for ((ri, w), d) in r.iter_mut().zip(&ev.weights).zip(&ev.dist) {
                        *ri = w * d;
                    }
                    true
                };
                let opts = LmOptions {
                    max_evals,
                    ..LmOptions::default()
                };
                let m = least_squares_lm(&mut res, n, &x0, &vlo, &vhi, &opts)?;
                let p = expand(&m.x);
                let redchi = m.f / (n - nvary) as f64;
                (p, m.covariance, redchi, m.evals, m.iterations, m.converged)
            }
        };

        let ke = clamp_close(self.particle.ke_from_brho(best[BRHO]), (ke_min, ke_max));
        let (rho, phi) = (best[RHO], best[PHI]);
        let mut out = FitResult {
            vertex: [rho * phi.cos(), rho * phi.sin(), best[VZ]],
            sigma_vertex: [SIGMA_SENTINEL; 3],
            brho: best[BRHO],
            sigma_brho: SIGMA_SENTINEL,
            ke,
            sigma_ke: SIGMA_SENTINEL,
            polar: best[POLAR],
            sigma_polar: SIGMA_SENTINEL,
            azimuthal: best[AZIM],
            sigma_azimuthal: SIGMA_SENTINEL,
            redchisq,
            evaluations: evals,
            iterations,
            converged,
        };
        if let Some(cov) = sigmas {
            let idx = |k: usize| vary.iter().position(|&v| v == k);
            let var = |k: usize| idx(k).map(|i| cov[i * nvary + i]);
            let sd = |k: usize| var(k).filter(|v| *v >= 0.0 && v.is_finite()).map(f64::sqrt);
            if let Some(v) = sd(BRHO) {
                out.sigma_brho = v;
                let sc = BRHO_FACTOR * f64::from(self.particle.z);
                let m = self.particle.mass_mev;
                out.sigma_ke =
                    (sc * sc * best[BRHO] / ((best[BRHO] * sc).powi(2) + m * m).sqrt() * v).abs();
            }
            if let Some(v) = sd(POLAR) {
                out.sigma_polar = v;
            }
            if let Some(v) = sd(AZIM) {
                out.sigma_azimuthal = v;
            }
            if let Some(v) = sd(VZ) {
                out.sigma_vertex[2] = v;
            }
            // vx = ρ cos φ, vy = ρ sin φ: first-order propagation with the ρ–φ covariance.
            let (ir, ip) = (idx(RHO), idx(PHI));
            if ir.is_some() || ip.is_some() {
                let c = |a: Option<usize>, b: Option<usize>| match (a, b) {
                    (Some(a), Some(b)) => cov[a * nvary + b],
                    _ => 0.0,
                };
                let (vrr, vpp, vrp) = (c(ir, ir), c(ip, ip), c(ir, ip));
                let (cp, sp) = (phi.cos(), phi.sin());
                let vx = cp * cp * vrr + rho * rho * sp * sp * vpp - 2.0 * rho * cp * sp * vrp;
                let vy = sp * sp * vrr + rho * rho * cp * cp * vpp + 2.0 * rho * cp * sp * vrp;
                if vx >= 0.0 && vx.is_finite() {
                    out.sigma_vertex[0] = vx.sqrt();
                }
                if vy >= 0.0 && vy.is_finite() {
                    out.sigma_vertex[1] = vy.sqrt();
                }
            }
        }
        Ok(FitOutcome::Fitted(out))
    }
}
