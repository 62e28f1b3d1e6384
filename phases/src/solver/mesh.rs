//! The trajectory mesh (spyral-spec §3.4.1): for every node (kinetic energy, polar angle) of a
//! linspace grid, the track of the particle from the origin (azimuth 0) through the gas in the
//! detector's fields, sampled at `geomspace(1e-11 s, t_max, n_time_steps)`. Stored as a numpy
//! `.npy` file of float64 with shape `(n_time_steps, 3, ke_bins, polar_bins)` (metres) plus a
//! JSON metadata file; the asset is reused when its metadata match the parameters.
//!
//! Equations of motion (state `[x, y, z, γβx, γβy, γβz]`): the Lorentz force of B ẑ and E ẑ plus
//! a continuous energy-loss force `−dE/dx · û` from an [`EnergyLossTable`] built on catima's
//! stopping powers ([`spyral_data::physics::catima_table`], what Spyral uses through spyral-utils) when
//! the table covers the particle and every isotope of the gas, else on our own stopping model
//! ([`spyral_data::physics::stopping`]); see [`energy_loss_table`]. As in Spyral the mesh uses
//! `B := −B` and `E := −E`. A track ends when its remaining range is below 1 mm, when
//! |z| reaches 0.9995 m, or when ρ reaches 0.3315 m: Spyral's event functions are
//! `round(z − 1, 3)`, `round(z + 1, 3)` and `round(ρ − 0.332, 3)`, which reach zero (and stop its
//! integration) half a millimetre before the nominal walls; the range condition is not rounded.
//!
//! Reproducing Spyral's mesh: its time grid is `geomspace(1e-11 s, t_max)` where `t_max` is the
//! longest track time of all nodes, so every sample of every node depends on the one node that
//! lives longest (on the parity setup a deuteron of 5.6 MeV at 86 deg that spirals inside ρ until
//! it stops). That time is set by the stopping power at low energy: with our own stopping model
//! it came out 0.3% shorter than Spyral's, which moved every sample by ~1.7 mm (median) and kept
//! the fitted kinetic energies within 1% of Spyral's in only 74% of fits. With catima's stopping
//! it agrees within 10⁻⁴.
//!
//! Integration: our own Dormand–Prince 5(4) ([`super::ode`]); pass 1 (every node, span 1 µs,
//! looser tolerances) finds the longest track time `t_max`; pass 2 samples every node at the
//! geometric time grid with `rtol = 1e-6`, `atol = 1e-9` (positions in m, γβ dimensionless).
//! Nodes are processed in parallel (`std::thread::scope`, units of a few KE rows handed out
//! dynamically) and each unit is written straight to its place in the file with positional
//! writes, so generation never holds the whole mesh in memory.
//!
//! Deviations from Spyral, on purpose:
//! - explicit DOPRI5 at tight tolerances instead of Radau at rtol 1e-3 (not stiff; more
//!   accurate and faster);
//! - the metadata also record the gas composition and pressure, the integrator and a format
//!   number, so a change of any of them regenerates the mesh (Spyral compares only its keys).

use super::npy;
use super::ode::{locate_root, Control, DenseStep, Dopri5, OdeError, OdeSystem};
use serde_json::{json, Value};
use spyral_core::PartialFile;
use spyral_data::physics::catima_table::{self, CatimaStopping};
use spyral_data::physics::constants::{
    ELEMENTARY_CHARGE_C, MEV_TO_JOULE, MEV_TO_KG, SPEED_OF_LIGHT_M_S,
};
use spyral_data::physics::{element_symbol, EnergyLossTable, GasTarget, Nucleus, PhysicsError};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// First sample time of the mesh (s).
pub const FIRST_SAMPLE_TIME_S: f64 = 1e-11;
/// Time window of the first (coarse) pass (s).
pub const COARSE_WINDOW_S: f64 = 1e-6;
/// A track ends when its remaining range is below this (m).
pub const STOP_RANGE_M: f64 = 0.001;
/// A track ends when |z| reaches this (m): the nominal 1 m wall less Spyral's rounding.
pub const MAX_ABS_Z_M: f64 = 0.9995;
/// A track ends when ρ reaches this (m): the nominal 0.332 m wall less Spyral's rounding.
pub const MAX_RHO_M: f64 = 0.3315;
/// Relative tolerance of the sampling pass.
pub const RTOL: f64 = 1e-6;
/// Absolute tolerance of the sampling pass.
pub const ATOL: f64 = 1e-9;
/// Relative tolerance of the coarse pass (only the track's end time is used).
pub const COARSE_RTOL: f64 = 1e-5;
/// Absolute tolerance of the coarse pass.
pub const COARSE_ATOL: f64 = 1e-8;
/// Bumped whenever the generation algorithm changes what a mesh contains.
pub const MESH_FORMAT: u64 = 2;

/// Why a mesh could not be made, read or reused.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// Invalid parameters.
    #[error("invalid mesh parameters: {0}")]
    Parameters(String),
    /// The energy-loss table could not be built.
    #[error("energy loss: {0}")]
    Physics(#[from] PhysicsError),
    /// A track could not be integrated.
    #[error("integrating the track of KE = {ke} MeV, polar = {polar_deg} deg failed: {source}")]
    Integration {
        /// Kinetic energy of the node (MeV).
        ke: f64,
        /// Polar angle of the node (deg).
        polar_deg: f64,
        /// What went wrong.
        source: OdeError,
    },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A mesh file is not what the parameters say it should be.
    #[error("mesh file {path}: {problem}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Writing through a temporary name failed.
    #[error("{0}")]
    Commit(String),
}

/// Everything that determines a mesh.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshParameters {
    /// The particle.
    pub particle: Nucleus,
    /// The gas.
    pub gas: GasTarget,
    /// The pressure as written in the gas file (Python's repr of the JSON number, e.g. `300` or
    /// `300.0`), used in the file name.
    pub pressure_text: String,
    /// Magnetic field (T) as configured; the mesh uses its negative.
    pub magnetic_field: f64,
    /// Electric field (V/m) as configured; the mesh uses its negative.
    pub electric_field: f64,
    /// Number of time samples.
    pub n_time_steps: usize,
    /// Lowest kinetic energy (MeV).
    pub ke_min: f64,
    /// Highest kinetic energy (MeV).
    pub ke_max: f64,
    /// Number of kinetic-energy nodes.
    pub ke_bins: usize,
    /// Lowest polar angle (deg).
    pub polar_min: f64,
    /// Highest polar angle (deg).
    pub polar_max: f64,
    /// Number of polar-angle nodes.
    pub polar_bins: usize,
    /// Whether the energy-loss force is applied (always true in the phase; false gives pure
    /// Lorentz motion, which tests compare with an independent integration).
    pub energy_loss: bool,
    /// Worker threads (0: all available cores).
    pub threads: usize,
}

impl MeshParameters {
    /// Checks the grid.
    pub fn validate(&self) -> Result<(), MeshError> {
        let bad = |m: String| Err(MeshError::Parameters(m));
        if self.n_time_steps < 2 {
            return bad(format!("n_time_steps = {} (at least 2)", self.n_time_steps));
        }
        if self.ke_bins < 2 || self.polar_bins < 2 {
            return bad(format!(
                "interp_ke_bins = {} and interp_polar_bins = {} (each at least 2)",
                self.ke_bins, self.polar_bins
            ));
        }
        if !(self.ke_min > 0.0 && self.ke_max > self.ke_min && self.ke_max.is_finite()) {
            return bad(format!(
                "kinetic energy range [{}, {}] MeV (need 0 < min < max)",
                self.ke_min, self.ke_max
            ));
        }
        if !(self.polar_min >= 0.0 && self.polar_max > self.polar_min && self.polar_max <= 180.0) {
            return bad(format!(
                "polar range [{}, {}] deg (need 0 <= min < max <= 180)",
                self.polar_min, self.polar_max
            ));
        }
        if !(self.magnetic_field.is_finite() && self.electric_field.is_finite()) {
            return bad("the fields must be finite".into());
        }
        let elements = self
            .shape()
            .iter()
            .try_fold(8u64, |acc, &d| acc.checked_mul(d));
        if elements.is_none_or(|b| b > isize::MAX as u64) {
            return bad("the mesh would be larger than memory can address".into());
        }
        Ok(())
    }

    /// The array shape `(n_time_steps, 3, ke_bins, polar_bins)`.
    pub fn shape(&self) -> [u64; 4] {
        [
            self.n_time_steps as u64,
            3,
            self.ke_bins as u64,
            self.polar_bins as u64,
        ]
    }

    /// Size of the data in bytes.
    pub fn nbytes(&self) -> u64 {
        self.shape().iter().product::<u64>() * 8
    }

    /// Kinetic energy of node `i` (MeV): numpy's `linspace`.
    pub fn ke_node(&self, i: usize) -> f64 {
        linspace_at(self.ke_min, self.ke_max, self.ke_bins, i)
    }

    /// Polar angle of node `j` (deg): numpy's `linspace`.
    pub fn polar_node_deg(&self, j: usize) -> f64 {
        linspace_at(self.polar_min, self.polar_max, self.polar_bins, j)
    }

    /// File stem `{iso}_in_{gas}_{pressure}Torr` (e.g. `1H_in_2H2_300Torr`).
    pub fn stem(&self) -> String {
        format!(
            "{}_in_{}_{}Torr",
            self.particle.isotope_symbol(),
            self.gas.ugly_string(),
            self.pressure_text
        )
    }

    /// The metadata keys that must match for a mesh file to be reused: Spyral's keys plus the
    /// gas composition, the energy-loss switch, the integrator and the format number.
    pub fn identity(&self) -> Value {
        json!({
            "particle": self.particle.isotope_symbol(),
            "gas": pretty_gas(&self.gas),
            "bfield": self.magnetic_field,
            "efield": self.electric_field,
            "time_steps": self.n_time_steps,
            "ke_min": self.ke_min,
            "ke_max": self.ke_max,
            "ke_bins": self.ke_bins,
            "polar_min": self.polar_min,
            "polar_max": self.polar_max,
            "polar_bins": self.polar_bins,
            "shape": self.shape(),
            "dtype": "float64",
            "gas_target": self.gas.to_json_value(),
            "energy_loss": self.energy_loss,
            "stopping": if self.energy_loss {
                energy_loss_source(&self.particle, &self.gas)
            } else {
                "none"
            },
            "integrator": format!(
                "dopri5 rtol={RTOL:e} atol={ATOL:e}; coarse pass rtol={COARSE_RTOL:e} atol={COARSE_ATOL:e}"
            ),
            "mesh_format": MESH_FORMAT,
        })
    }
}

/// The energy-loss table of the mesh: catima's tabulated stopping (Spyral's physics) when it covers
/// `particle` and every isotope of `gas`, else our own stopping model.
pub fn energy_loss_table(
    particle: &Nucleus,
    gas: &GasTarget,
) -> Result<EnergyLossTable, MeshError> {
    Ok(match CatimaStopping::new(particle, gas) {
        Some(c) => EnergyLossTable::from_stopping(particle, gas, |t| c.dedx(t))?,
        None => EnergyLossTable::new(particle, gas)?,
    })
}

/// Which stopping powers [`energy_loss_table`] uses for `particle` in `gas` (mesh metadata).
pub fn energy_loss_source(particle: &Nucleus, gas: &GasTarget) -> &'static str {
    if CatimaStopping::new(particle, gas).is_some() {
        catima_table::source()
    } else {
        "spyral-rs stopping model (physics/stopping.rs)"
    }
}

/// `linspace(a, b, n)[i]` as numpy computes it (the last node is exactly `b`).
pub fn linspace_at(a: f64, b: f64, n: usize, i: usize) -> f64 {
    if i + 1 == n {
        b
    } else {
        a + (b - a) / (n - 1) as f64 * i as f64
    }
}

/// numpy's `geomspace(a, b, n)` (endpoints exact).
pub fn geomspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    let (la, lb) = (a.ln(), b.ln());
    let mut v: Vec<f64> = (0..n)
        .map(|i| {
            if n == 1 {
                a
            } else {
                (la + (lb - la) * i as f64 / (n - 1) as f64).exp()
            }
        })
        .collect();
    if let Some(f) = v.first_mut() {
        *f = a;
    }
    if n > 1 {
        v[n - 1] = b;
    }
    v
}

/// A readable gas name with unicode super- and subscripts, e.g. `²H₂ (gas)`.
pub fn pretty_gas(gas: &GasTarget) -> String {
    const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    const SUB: [char; 10] = ['₀', '₁', '₂', '₃', '₄', '₅', '₆', '₇', '₈', '₉'];
    let digits = |n: u32, table: &[char; 10]| -> String {
        n.to_string()
            .bytes()
            .map(|b| table[usize::from(b - b'0')])
            .collect()
    };
    let parts: Vec<String> = gas
        .components()
        .iter()
        .zip(gas.volume_fractions())
        .map(|(comp, f)| {
            let name: String = comp
                .iter()
                .map(|e| {
                    let sub = if e.s > 1 {
                        digits(e.s, &SUB)
                    } else {
                        String::new()
                    };
                    format!(
                        "{}{}{sub}",
                        digits(e.a, &SUP),
                        element_symbol(e.z).unwrap_or("?")
                    )
                })
                .collect();
            if gas.is_mixture() {
                format!("{name} {:.4}", f)
            } else {
                name
            }
        })
        .collect();
    format!("{} (gas)", parts.join(" + "))
}

/// Python's `repr` of a JSON number as a pressure text (`300`, `300.0`, `250.5`).
pub fn pressure_repr(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::Number(n) => n.as_f64().map(|f| format!("{f:?}")).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// Why a track ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Its remaining range fell below 1 mm.
    Stopped,
    /// |z| reached [`MAX_ABS_Z_M`].
    LeftZ,
    /// ρ reached [`MAX_RHO_M`].
    LeftRho,
    /// The time span ended first.
    TimeLimit,
}

/// One integrated node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeTrack {
    /// When the track ended (s).
    pub t_end: f64,
    /// Why it ended.
    pub reason: StopReason,
    /// Accepted integration steps.
    pub steps: usize,
    /// Number of requested sample times at or before `t_end`.
    pub samples: usize,
}

/// The equations of motion of one particle in one gas and field configuration.
#[derive(Debug, Clone)]
pub struct TrackModel {
    mass_mev: f64,
    q_over_m: f64,
    bz: f64,
    ez: f64,
    loss_factor: f64,
    table: Option<EnergyLossTable>,
}

impl OdeSystem<6> for TrackModel {
    #[inline]
    fn rhs(&self, _t: f64, y: &[f64; 6], dy: &mut [f64; 6]) {
        let (ux, uy, uz) = (y[3], y[4], y[5]);
        let g2 = ux * ux + uy * uy + uz * uz;
        let gamma = (1.0 + g2).sqrt();
        let k = SPEED_OF_LIGHT_M_S / gamma;
        let (vx, vy, vz) = (ux * k, uy * k, uz * k);
        dy[0] = vx;
        dy[1] = vy;
        dy[2] = vz;
        let mut ax = self.q_over_m * vy * self.bz;
        let mut ay = -self.q_over_m * vx * self.bz;
        let mut az = self.q_over_m * self.ez;
        if let Some(table) = &self.table {
            let u = g2.sqrt();
            if u > 0.0 {
                let ke = self.mass_mev * g2 / (gamma + 1.0);
                let a = table.dedx(ke) * self.loss_factor / u;
                ax -= a * ux;
                ay -= a * uy;
                az -= a * uz;
            }
        }
        let inv_c = 1.0 / SPEED_OF_LIGHT_M_S;
        dy[3] = ax * inv_c;
        dy[4] = ay * inv_c;
        dy[5] = az * inv_c;
    }
}

impl TrackModel {
    /// The model of `params` (fields negated as in Spyral).
    pub fn new(params: &MeshParameters) -> Result<Self, MeshError> {
        let p = &params.particle;
        let mass_kg = p.mass_mev * MEV_TO_KG;
        let table = if params.energy_loss {
            Some(energy_loss_table(p, &params.gas)?)
        } else {
            None
        };
        Ok(TrackModel {
            mass_mev: p.mass_mev,
            q_over_m: f64::from(p.z) * ELEMENTARY_CHARGE_C / mass_kg,
            bz: -params.magnetic_field,
            ez: -params.electric_field,
            // dE/dx [MeV cm²/g] · ρ [g/cm³] · 100 [cm/m] · MeV→J / m [kg] = deceleration [m/s²].
            loss_factor: params.gas.density_g_cm3() * 100.0 * MEV_TO_JOULE / mass_kg,
            table,
        })
    }

    /// Kinetic energy (MeV) of a state.
    pub fn kinetic_energy(&self, y: &[f64; 6]) -> f64 {
        let g2 = y[3] * y[3] + y[4] * y[4] + y[5] * y[5];
        self.mass_mev * g2 / ((1.0 + g2).sqrt() + 1.0)
    }

    /// The initial state of a node: origin, direction `(sin θ, 0, cos θ)`.
    pub fn initial_state(&self, ke: f64, polar_rad: f64) -> [f64; 6] {
        let gamma = ke / self.mass_mev + 1.0;
        let gb = (gamma * gamma - 1.0).max(0.0).sqrt();
        [
            0.0,
            0.0,
            0.0,
            gb * polar_rad.sin(),
            0.0,
            gb * polar_rad.cos(),
        ]
    }

    /// Remaining range above the stop threshold (m); positive while the track goes on.
    fn range_margin(&self, y: &[f64; 6]) -> f64 {
        match &self.table {
            Some(t) => t.range_mm(self.kinetic_energy(y)) * 0.001 - STOP_RANGE_M,
            None => f64::INFINITY,
        }
    }

    /// The first terminal condition met within `step`, with its time.
    fn terminal(&self, step: &DenseStep<6>) -> Option<(f64, StopReason)> {
        let y1 = &step.y1;
        let rho = |y: &[f64; 6]| y[0].hypot(y[1]);
        let mut best: Option<(f64, StopReason)> = None;
        let mut consider = |t: f64, r: StopReason| {
            if best.is_none_or(|(bt, _)| t < bt) {
                best = Some((t, r));
            }
        };
        let tol = step.h * 1e-9;
        let (t0, t1) = (step.t0, step.t1());
        if y1[2] >= MAX_ABS_Z_M {
            let t = locate_root(
                |t| step.component(2, t) - MAX_ABS_Z_M,
                t0,
                t1,
                step.y0[2] - MAX_ABS_Z_M,
                y1[2] - MAX_ABS_Z_M,
                tol,
            );
            consider(t, StopReason::LeftZ);
        }
        if y1[2] <= -MAX_ABS_Z_M {
            let t = locate_root(
                |t| -MAX_ABS_Z_M - step.component(2, t),
                t0,
                t1,
                -MAX_ABS_Z_M - step.y0[2],
                -MAX_ABS_Z_M - y1[2],
                tol,
            );
            consider(t, StopReason::LeftZ);
        }
        if rho(y1) >= MAX_RHO_M {
            let g = |t: f64| step.component(0, t).hypot(step.component(1, t)) - MAX_RHO_M;
            let t = locate_root(
                g,
                t0,
                t1,
                rho(&step.y0) - MAX_RHO_M,
                rho(y1) - MAX_RHO_M,
                tol,
            );
            consider(t, StopReason::LeftRho);
        }
        if self.table.is_some() {
            let g1 = self.range_margin(y1);
            if g1 <= 0.0 {
                let g = |t: f64| -self.range_margin(&step.state(t));
                let t = locate_root(g, t0, t1, -self.range_margin(&step.y0), -g1, tol);
                consider(t, StopReason::Stopped);
            }
        }
        best
    }

    /// Integrates the node `(ke, polar)` over `[0, t_end]` and writes its position at each of
    /// `times` (sorted) into `out` (same length); samples after the end copy the last sampled
    /// position (the origin if none), as Spyral does.
    pub fn track(
        &self,
        ode: &Dopri5,
        ke: f64,
        polar_rad: f64,
        t_end: f64,
        times: &[f64],
        out: &mut [[f64; 3]],
    ) -> Result<NodeTrack, OdeError> {
        let y0 = self.initial_state(ke, polar_rad);
        let mut next = 0usize;
        let mut reason = StopReason::TimeLimit;
        if self.range_margin(&y0) <= 0.0 {
            out.fill([0.0; 3]);
            return Ok(NodeTrack {
                t_end: 0.0,
                reason: StopReason::Stopped,
                steps: 0,
                samples: 0,
            });
        }
        let outcome = ode.integrate(self, 0.0, y0, t_end, |step| {
            let stop = self.terminal(step);
            let limit = stop.map_or(step.t1(), |(t, _)| t);
            while next < times.len() && times[next] <= limit {
                let t = times[next];
                out[next] = [
                    step.component(0, t),
                    step.component(1, t),
                    step.component(2, t),
                ];
                next += 1;
            }
            match stop {
                Some((t, r)) => {
                    reason = r;
                    Control::Stop(t)
                }
                None => Control::Continue,
            }
        })?;
        let last = if next == 0 { [0.0; 3] } else { out[next - 1] };
        for o in out.iter_mut().skip(next) {
            *o = last;
        }
        Ok(NodeTrack {
            t_end: outcome.t_final,
            reason,
            steps: outcome.steps,
            samples: next,
        })
    }
}

/// What a generation did.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshReport {
    /// The longest track time from pass 1 (s): the last sample time.
    pub t_max: f64,
    /// Wall-clock seconds of pass 1, pass 2 (including writing) and in total.
    pub seconds: [f64; 3],
    /// Accepted integration steps, summed over the nodes, of pass 1 and pass 2.
    pub steps: [u64; 2],
    /// Threads used.
    pub threads: usize,
}

/// Total physical memory in bytes (Linux `/proc/meminfo`), if known.
pub fn total_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> MeshError + 'a {
    move |source| MeshError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Integrates every node and writes the `.npy` mesh to `dest` (through a temporary name).
pub fn generate(params: &MeshParameters, dest: &Path) -> Result<MeshReport, MeshError> {
    params.validate()?;
    let started = Instant::now();
    let model = TrackModel::new(params)?;
    let threads = if params.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        params.threads
    };
    let (nk, np, nt) = (params.ke_bins, params.polar_bins, params.n_time_steps);
    let nodes = nk * np;
    if let Some(total) = total_memory_bytes() {
        if params.nbytes() > total / 2 {
            tracing::warn!(
                "the trajectory mesh needs {:.2} GB, more than half of this machine's {:.2} GB of memory; every worker maps it (once, shared), so the machine may run out of memory",
                params.nbytes() as f64 * 1e-9,
                total as f64 * 1e-9
            );
        }
    }
    tracing::info!(
        "generating the trajectory mesh {} ({} KE x {} polar nodes, {} time steps, {:.2} GB) on {threads} threads",
        params.stem(),
        nk,
        np,
        nt,
        params.nbytes() as f64 * 1e-9
    );
    let ke_of = |i: usize| params.ke_node(i);
    let polar_of = |j: usize| params.polar_node_deg(j).to_radians();

    // Pass 1: the longest track time.
    let coarse = Dopri5::new(COARSE_RTOL, COARSE_ATOL);
    let first_error: Mutex<Option<MeshError>> = Mutex::new(None);
    let counter = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let t_pass1 = Instant::now();
    let results: Vec<(f64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let (mut t_max, mut steps) = (0.0f64, 0u64);
                    let mut dummy: [[f64; 3]; 0] = [];
                    loop {
                        let node = counter.fetch_add(1, Ordering::Relaxed);
                        if node >= nodes || first_error.lock().map_or(true, |e| e.is_some()) {
                            break;
                        }
                        let (i, j) = (node / np, node % np);
                        match model.track(
                            &coarse,
                            ke_of(i),
                            polar_of(j),
                            COARSE_WINDOW_S,
                            &[],
                            &mut dummy,
                        ) {
                            Ok(r) => {
                                t_max = t_max.max(r.t_end);
                                steps += r.steps as u64;
                            }
                            Err(source) => {
                                if let Ok(mut e) = first_error.lock() {
                                    e.get_or_insert(MeshError::Integration {
                                        ke: ke_of(i),
                                        polar_deg: params.polar_node_deg(j),
                                        source,
                                    });
                                }
                                break;
                            }
                        }
                        report_progress(&done, 1, nodes, "pass 1 of 2", started);
                    }
                    (t_max, steps)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    if let Some(e) = first_error.lock().ok().and_then(|mut e| e.take()) {
        return Err(e);
    }
    if results.len() != threads {
        return Err(MeshError::Parameters(
            "a mesh worker thread panicked".into(),
        ));
    }
    let t_max = results.iter().map(|r| r.0).fold(0.0, f64::max);
    let steps1: u64 = results.iter().map(|r| r.1).sum();
    let secs1 = t_pass1.elapsed().as_secs_f64();
    if t_max.is_nan() || t_max <= FIRST_SAMPLE_TIME_S {
        return Err(MeshError::Parameters(format!(
            "every track ends before {FIRST_SAMPLE_TIME_S:e} s (longest {t_max:e} s): nothing to sample"
        )));
    }
    tracing::info!("mesh pass 1 done in {secs1:.2} s: longest track time {t_max:.4e} s");

    // Pass 2: sample every node and write it in place.
    let times = geomspace(FIRST_SAMPLE_TIME_S, t_max, nt);
    let header = npy::f64_header(&params.shape());
    let out = PartialFile::new(dest).map_err(|e| MeshError::Commit(e.message().to_string()))?;
    let tmp = out.path().to_path_buf();
    let mut file = File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
    file.write_all(&header)
        .map_err(io_err("cannot write", &tmp))?;
    file.set_len(header.len() as u64 + params.nbytes())
        .map_err(io_err("cannot size", &tmp))?;
    let fine = Dopri5::new(RTOL, ATOL);
    // Units of whole KE rows, so each (t, xyz) block of a unit is contiguous in the file.
    let rows_per_unit = (nk / (threads * 8)).clamp(1, 8);
    let units = nk.div_ceil(rows_per_unit);
    let unit_counter = AtomicUsize::new(0);
    let done2 = AtomicUsize::new(0);
    let t_pass2 = Instant::now();
    let header_len = header.len() as u64;
    let file_ref = &file;
    let steps2: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut steps = 0u64;
                    let mut buf: Vec<f64> = Vec::new();
                    let mut node = vec![[0.0f64; 3]; nt];
                    let mut bytes: Vec<u8> = Vec::new();
                    loop {
                        let unit = unit_counter.fetch_add(1, Ordering::Relaxed);
                        if unit >= units || first_error.lock().map_or(true, |e| e.is_some()) {
                            break;
                        }
                        let k0 = unit * rows_per_unit;
                        let k1 = (k0 + rows_per_unit).min(nk);
                        let kn = k1 - k0;
                        buf.clear();
                        buf.resize(nt * 3 * kn * np, 0.0);
                        for i in k0..k1 {
                            for j in 0..np {
                                match model.track(
                                    &fine,
                                    ke_of(i),
                                    polar_of(j),
                                    t_max,
                                    &times,
                                    &mut node,
                                ) {
                                    Ok(r) => steps += r.steps as u64,
                                    Err(source) => {
                                        if let Ok(mut e) = first_error.lock() {
                                            e.get_or_insert(MeshError::Integration {
                                                ke: ke_of(i),
                                                polar_deg: params.polar_node_deg(j),
                                                source,
                                            });
                                        }
                                        return steps;
                                    }
                                }
                                let kl = i - k0;
                                for (t, p) in node.iter().enumerate() {
                                    for (c, v) in p.iter().enumerate() {
                                        buf[((t * 3 + c) * kn + kl) * np + j] = *v;
                                    }
                                }
                            }
                            report_progress(&done2, np, nodes, "pass 2 of 2", started);
                        }
                        for (b, block) in buf.chunks_exact(kn * np).enumerate() {
                            bytes.clear();
                            for v in block {
                                bytes.extend_from_slice(&v.to_le_bytes());
                            }
                            let (t, c) = (b / 3, b % 3);
                            let offset = header_len + ((((t * 3 + c) * nk + k0) * np) as u64) * 8;
                            if let Err(source) = file_ref.write_all_at(&bytes, offset) {
                                if let Ok(mut e) = first_error.lock() {
                                    e.get_or_insert(MeshError::Io {
                                        what: "cannot write",
                                        path: tmp.clone(),
                                        source,
                                    });
                                }
                                return steps;
                            }
                        }
                    }
                    steps
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    if let Some(e) = first_error.lock().ok().and_then(|mut e| e.take()) {
        return Err(e);
    }
    if steps2.len() != threads {
        return Err(MeshError::Parameters(
            "a mesh worker thread panicked".into(),
        ));
    }
    drop(file);
    out.commit()
        .map_err(|e| MeshError::Commit(e.message().to_string()))?;
    let secs2 = t_pass2.elapsed().as_secs_f64();
    let total = started.elapsed().as_secs_f64();
    tracing::info!(
        "trajectory mesh written to {} in {total:.2} s",
        dest.display()
    );
    Ok(MeshReport {
        t_max,
        seconds: [secs1, secs2, total],
        steps: [steps1, steps2.iter().sum()],
        threads,
    })
}

fn report_progress(done: &AtomicUsize, n: usize, total: usize, what: &str, started: Instant) {
    let after = done.fetch_add(n, Ordering::Relaxed) + n;
    let before = after - n;
    if after * 10 / total.max(1) > before * 10 / total.max(1) {
        tracing::info!(
            "mesh {what}: {}% ({after}/{total} nodes, {:.1} s)",
            after * 100 / total.max(1),
            started.elapsed().as_secs_f64()
        );
    }
}

/// The mesh files of a set of parameters in an asset folder.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshAsset {
    /// The `.npy` file.
    pub npy_path: PathBuf,
    /// The metadata `.json` file.
    pub meta_path: PathBuf,
    /// The shape.
    pub shape: [u64; 4],
    /// Whether an existing mesh was reused.
    pub reused: bool,
    /// The generation report (None when reused).
    pub report: Option<MeshReport>,
}

/// Paths of the mesh of `params` in `asset_dir`.
pub fn asset_paths(params: &MeshParameters, asset_dir: &Path) -> (PathBuf, PathBuf) {
    let stem = params.stem();
    (
        asset_dir.join(format!("{stem}.npy")),
        asset_dir.join(format!("{stem}.json")),
    )
}

/// Reuses the mesh in `asset_dir` if its metadata match `params` and the file is complete;
/// otherwise generates it (mesh first, then metadata, each through a temporary name).
pub fn ensure_mesh(params: &MeshParameters, asset_dir: &Path) -> Result<MeshAsset, MeshError> {
    params.validate()?;
    let (npy_path, meta_path) = asset_paths(params, asset_dir);
    match is_current(params, &npy_path, &meta_path) {
        Ok(()) => {
            tracing::info!("reusing the trajectory mesh {}", npy_path.display());
            return Ok(MeshAsset {
                npy_path,
                meta_path,
                shape: params.shape(),
                reused: true,
                report: None,
            });
        }
        Err(why) => tracing::info!("generating the trajectory mesh: {why}"),
    }
    std::fs::create_dir_all(asset_dir).map_err(io_err("cannot create folder", asset_dir))?;
    // The metadata go first so that a stale JSON never describes a new mesh.
    let _ = std::fs::remove_file(&meta_path);
    let report = generate(params, &npy_path)?;
    let mut meta = params.identity();
    if let Some(obj) = meta.as_object_mut() {
        obj.insert("t_max".into(), json!(report.t_max));
        obj.insert("generation_seconds".into(), json!(report.seconds[2]));
    }
    let text = serde_json::to_string_pretty(&meta)
        .map_err(|e| MeshError::Parameters(format!("cannot serialise the metadata: {e}")))?;
    let out =
        PartialFile::new(&meta_path).map_err(|e| MeshError::Commit(e.message().to_string()))?;
    std::fs::write(out.path(), text).map_err(io_err("cannot write", &meta_path))?;
    out.commit()
        .map_err(|e| MeshError::Commit(e.message().to_string()))?;
    Ok(MeshAsset {
        npy_path,
        meta_path,
        shape: params.shape(),
        reused: false,
        report: Some(report),
    })
}

/// Why an existing mesh cannot be reused (it is generated again).
#[derive(Debug, thiserror::Error)]
pub enum MeshStale {
    /// The metadata file is missing or unreadable.
    #[error("no metadata file {}", .0.display())]
    NoMetadata(PathBuf),
    /// The metadata file is not JSON.
    #[error("unreadable metadata {}: {source}", .path.display())]
    BadMetadata {
        /// The metadata file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A parameter differs from the one the mesh was made with.
    #[error("parameter `{key}` changed ({stored} -> {wanted})")]
    Changed {
        /// The parameter.
        key: String,
        /// Its value in the metadata.
        stored: Value,
        /// Its value now.
        wanted: Value,
    },
    /// The metadata lack a parameter.
    #[error("the metadata have no `{0}`")]
    Missing(String),
    /// The `.npy` file is missing, has the wrong header or is incomplete.
    #[error(transparent)]
    Npy(#[from] MeshError),
}

/// `Ok(())` if the files exist, the metadata match the parameters and the `.npy` header and
/// size are right; otherwise the reason to regenerate.
pub fn is_current(
    params: &MeshParameters,
    npy_path: &Path,
    meta_path: &Path,
) -> Result<(), MeshStale> {
    let text = std::fs::read_to_string(meta_path)
        .map_err(|_| MeshStale::NoMetadata(meta_path.to_path_buf()))?;
    let stored: Value = serde_json::from_str(&text).map_err(|source| MeshStale::BadMetadata {
        path: meta_path.to_path_buf(),
        source,
    })?;
    let expected = params.identity();
    if let Some(obj) = expected.as_object() {
        for (k, v) in obj {
            match stored.get(k) {
                Some(s) if json_close(s, v) => {}
                Some(s) => {
                    return Err(MeshStale::Changed {
                        key: k.clone(),
                        stored: s.clone(),
                        wanted: v.clone(),
                    })
                }
                None => return Err(MeshStale::Missing(k.clone())),
            }
        }
    }
    check_npy(npy_path, &params.shape())?;
    Ok(())
}

/// Opens a mesh `.npy` file and checks its header against `shape` and its size; returns the
/// file positioned at the first data byte.
pub fn check_npy(path: &Path, shape: &[u64; 4]) -> Result<(File, npy::NpyHeader), MeshError> {
    let mut f = File::open(path).map_err(io_err("cannot open", path))?;
    let fmt = |problem: String| MeshError::Format {
        path: path.to_path_buf(),
        problem,
    };
    let header = npy::read_header(&mut f).map_err(|e| fmt(e.to_string()))?;
    if header.descr != "<f8" || header.fortran_order {
        return Err(fmt(format!(
            "holds {} (fortran order {}), expected C-ordered <f8",
            header.descr, header.fortran_order
        )));
    }
    if header.shape != shape {
        return Err(fmt(format!(
            "has shape {:?}, expected {:?}",
            header.shape, shape
        )));
    }
    let len = f.metadata().map_err(io_err("cannot stat", path))?.len();
    let want = header.data_offset + header.len() * 8;
    if len != want {
        return Err(fmt(format!(
            "is {len} bytes long, expected {want} (incomplete?)"
        )));
    }
    Ok((f, header))
}

/// Reads a whole mesh file into memory (tests and tools; the phase shares it instead).
pub fn read_mesh(path: &Path, shape: &[u64; 4]) -> Result<Vec<f64>, MeshError> {
    use std::io::Read;
    let (f, header) = check_npy(path, shape)?;
    let n = header.len() as usize;
    let mut out = Vec::with_capacity(n);
    let mut r = std::io::BufReader::with_capacity(1 << 20, f);
    let mut chunk = vec![0u8; 1 << 16];
    while out.len() < n {
        let want = ((n - out.len()) * 8).min(chunk.len());
        r.read_exact(&mut chunk[..want])
            .map_err(io_err("cannot read", path))?;
        out.extend(
            chunk[..want]
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])),
        );
    }
    Ok(out)
}

fn json_close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_close(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_match_numpy() {
        assert_eq!(linspace_at(2.0, 88.0, 166, 165), 88.0);
        assert!((linspace_at(2.0, 88.0, 166, 1) - (2.0 + 86.0 / 165.0)).abs() < 1e-12);
        let g = geomspace(1e-11, 1e-6, 5);
        assert_eq!(g[0], 1e-11);
        assert_eq!(g[4], 1e-6);
        assert!((g[2] / 3.1622776601683795e-9 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn names_and_pressure_text() {
        let gas = GasTarget::from_json_str(r#"{"compound": [[1, 2, 2]], "pressure(Torr)": 300}"#)
            .unwrap();
        assert_eq!(pretty_gas(&gas), "²H₂ (gas)");
        assert_eq!(pressure_repr(&json!(300)), "300");
        assert_eq!(pressure_repr(&json!(300.0)), "300.0");
        assert_eq!(pressure_repr(&json!(250.5)), "250.5");
    }
}
