//! The simulator configuration ([`SimConfig`]) with documented defaults (spec §9) and its validation.
//!
//! Every struct uses `#[serde(default, deny_unknown_fields)]`: a field that is left out takes its
//! default, and a misspelt field is an error that names it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use spyral_data::attpc::DetectorParameters;

use super::SimError;

/// The complete simulator configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Run seed. Each event draws from a `Pcg64` seeded from (seed, event id), so events are
    /// independent of each other, of their order and of threading. Default 1.
    pub seed: u64,
    /// Number of events in a simulated run (used by the caller that loops over events). Default 160.
    pub events: u64,
    /// Detector geometry and fields: the phases' own [`DetectorParameters`], so one YAML anchor
    /// serves both. The simulated field follows Spyral's mesh convention (its equations of
    /// motion use −B along z): positive ions circle counter-clockwise seen from +z, which is what
    /// Estimation's azimuthal angle assumes; a negative `magnetic_field` reverses the sense. The
    /// drift field points along −z (electrons drift to the pad plane at z = L). The simulator
    /// does not use `beam_region_radius` or the Garfield fields.
    pub detector: DetectorParameters,
    /// The gas: a Spyral gas-target JSON object, or a path to such a file. Default D₂ at 300 Torr.
    pub gas: GasSpec,
    /// The beam.
    pub beam: BeamConfig,
    /// What happens at the vertex.
    pub reaction: ReactionConfig,
    /// Ionisation, drift, diffusion, gain and tracking.
    pub transport: TransportConfig,
    /// GET electronics and noise.
    pub electronics: ElectronicsConfig,
    /// FRIBDAQ auxiliary traces (ion chamber, mesh, trigger word).
    pub frib: FribConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            events: 160,
            detector: DetectorParameters::default(),
            gas: GasSpec::default(),
            beam: BeamConfig::default(),
            reaction: ReactionConfig::default(),
            transport: TransportConfig::default(),
            electronics: ElectronicsConfig::default(),
            frib: FribConfig::default(),
        }
    }
}

/// A gas target: an inline Spyral gas JSON object, or the path of a JSON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GasSpec {
    /// Path of a Spyral gas-target JSON file (relative paths are relative to the working directory).
    File(PathBuf),
    /// An inline gas target, e.g. `{"compound": [[1, 2, 2]], "pressure(Torr)": 300}`.
    Inline(Value),
}

impl Default for GasSpec {
    fn default() -> Self {
        GasSpec::Inline(json!({"compound": [[1, 2, 2]], "pressure(Torr)": 300.0}))
    }
}

/// The beam and the vertex distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BeamConfig {
    /// Beam species, e.g. "16C". Default "16C".
    pub species: String,
    /// Kinetic energy at the window (z = 0) in MeV. Default 184.131.
    pub ke_mev: f64,
    /// Gaussian sigma of the beam energy in MeV. Default 0.
    pub ke_spread_mev: f64,
    /// The beam position ρ is |Normal(0, σ)| with a uniform azimuth; the vertex lies on the beam.
    /// Default σ = 7 mm.
    pub vertex_rho_sigma_mm: f64,
    /// Vertex z is uniform in [min, max] mm. Default 0..1000.
    pub vertex_z_min_mm: f64,
    /// See `vertex_z_min_mm`.
    pub vertex_z_max_mm: f64,
    /// Whether the beam's own ionisation (window to vertex) is simulated. Default true.
    pub ionize: bool,
}

impl Default for BeamConfig {
    fn default() -> Self {
        Self {
            species: "16C".into(),
            ke_mev: 184.131,
            ke_spread_mev: 0.0,
            vertex_rho_sigma_mm: 7.0,
            vertex_z_min_mm: 0.0,
            vertex_z_max_mm: 1000.0,
            ionize: true,
        }
    }
}

/// The reaction at the vertex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReactionConfig {
    /// A two-body reaction beam + target → ejectile + residual with relativistic kinematics.
    TwoBody(TwoBodyConfig),
    /// Independent products with uniform kinetic energy and isotropic directions in a polar range.
    Products(ProductsConfig),
}

impl Default for ReactionConfig {
    fn default() -> Self {
        ReactionConfig::TwoBody(TwoBodyConfig::default())
    }
}

/// Two-body reaction (default: elastic ¹⁶C(d,d), flat in cos θ_cm, spec §9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwoBodyConfig {
    /// Target nucleus (a gas nucleus). Default "2H".
    pub target: String,
    /// Light ejectile. Default "2H".
    pub ejectile: String,
    /// Excitation energy of the ejectile in MeV. Default 0.
    pub ejectile_excitation_mev: f64,
    /// Excitation energy of the residual in MeV (the residual is beam + target − ejectile). Default 0.
    pub residual_excitation_mev: f64,
    /// The ejectile's centre-of-mass polar angle is flat in cos θ between these limits (degrees).
    /// Default 0..180.
    pub cm_polar_min_deg: f64,
    /// See `cm_polar_min_deg`.
    pub cm_polar_max_deg: f64,
    /// Whether the heavy residual's ionisation is simulated (near the axis; it is always tracked for
    /// the truth record). Default true.
    pub ionize_residual: bool,
}

impl Default for TwoBodyConfig {
    fn default() -> Self {
        Self {
            target: "2H".into(),
            ejectile: "2H".into(),
            ejectile_excitation_mev: 0.0,
            residual_excitation_mev: 0.0,
            cm_polar_min_deg: 0.0,
            cm_polar_max_deg: 180.0,
            ionize_residual: true,
        }
    }
}

/// Independent reaction products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductsConfig {
    /// The products emitted at each vertex.
    pub particles: Vec<ProductConfig>,
}

impl Default for ProductsConfig {
    fn default() -> Self {
        Self {
            particles: vec![ProductConfig::default()],
        }
    }
}

/// One kind of product: `count` particles per event, KE uniform in [min, max], cos θ uniform in the
/// polar range (isotropic), azimuth uniform in [0, 2π).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductConfig {
    /// Species, e.g. "1H", "2H", "4He" (or p, d, alpha). Default "1H".
    pub species: String,
    /// Particles of this kind per event. Default 1.
    pub count: u32,
    /// Kinetic energy range in MeV. Default 1..10.
    pub ke_min_mev: f64,
    /// See `ke_min_mev`.
    pub ke_max_mev: f64,
    /// Polar angle range in degrees (from +z, the beam direction). Default 20..80.
    pub polar_min_deg: f64,
    /// See `polar_min_deg`.
    pub polar_max_deg: f64,
}

impl Default for ProductConfig {
    fn default() -> Self {
        Self {
            species: "1H".into(),
            count: 1,
            ke_min_mev: 1.0,
            ke_max_mev: 10.0,
            polar_min_deg: 20.0,
            polar_max_deg: 80.0,
        }
    }
}

/// Tracking, ionisation, drift and gain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// Mean energy per ion pair in eV. Default 34.
    pub w_value_ev: f64,
    /// Fano factor: N ~ Normal(dE/W, sqrt(F·dE/W)). Default 0.2.
    pub fano_factor: f64,
    /// Transverse diffusion coefficient D in V: σ_T = sqrt(2·D·drift length/E). Default 0.277.
    pub transverse_diffusion_v: f64,
    /// Longitudinal diffusion coefficient in V (same formula, along the drift). Default 0.277.
    pub longitudinal_diffusion_v: f64,
    /// Micro-pattern gas detector gain. Default 1.75e5.
    pub gain: f64,
    /// Maximum tracking step (path length) in mm. Default 1.
    pub step_mm: f64,
    /// A particle whose remaining range is below this (mm) stops and deposits the rest. Default 0.1.
    pub stop_range_mm: f64,
    /// Tracking stops when ρ exceeds this (mm; the pad-plane radius). Default 270.
    pub max_rho_mm: f64,
    /// Electrons are drifted in clusters of at most this many electrons (speed vs. fidelity).
    /// Default 20.
    pub max_electrons_per_cluster: f64,
    /// Shift arrival times so that the shaped signal *peaks* at the calibrated time bucket of z
    /// (Spyral's micromegas/window edges are measured on peak positions). Default true.
    pub align_peak_to_calibration: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            w_value_ev: 34.0,
            fano_factor: 0.2,
            transverse_diffusion_v: 0.277,
            longitudinal_diffusion_v: 0.277,
            gain: 1.75e5,
            step_mm: 1.0,
            stop_range_mm: 0.1,
            max_rho_mm: 270.0,
            max_electrons_per_cluster: 20.0,
            align_peak_to_calibration: true,
        }
    }
}

/// GET electronics: shaper response, gain, threshold and noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElectronicsConfig {
    /// Shaping time in ns. Default 1000.
    pub shaping_time_ns: f64,
    /// attpc-engine's amplifier constant: ADC per electron = 4095·e/amp_gain/1e-15. Default 900.
    pub amp_gain: f64,
    /// Readout threshold in ADC above the baseline, applied to the noise-free signal. Default 15.
    pub threshold_adc: f64,
    /// ADC maximum (12 bits). Default 4095.
    pub saturation_adc: f64,
    /// Whether any electronics noise is added (false: every channel sits at `baseline_mean_adc`).
    /// Default true.
    pub noise: bool,
    /// Mean channel baseline in ADC. Default 60.
    pub baseline_mean_adc: f64,
    /// Spread (sigma) of the channel baselines; fixed per channel for a seed. Default 15.
    pub baseline_spread_adc: f64,
    /// Amplitude (sigma) of the slow per-event baseline drift (a slow sine). Default 3.
    pub baseline_drift_adc: f64,
    /// White noise sigma in ADC. Default 5.
    pub white_noise_adc: f64,
    /// Mean number of noise-only channels read out per event (Poisson). Default 3.
    pub noise_channels_mean: f64,
}

impl Default for ElectronicsConfig {
    fn default() -> Self {
        Self {
            shaping_time_ns: 1000.0,
            amp_gain: 900.0,
            threshold_adc: 15.0,
            saturation_adc: 4095.0,
            noise: true,
            baseline_mean_adc: 60.0,
            baseline_spread_adc: 15.0,
            baseline_drift_adc: 3.0,
            white_noise_adc: 5.0,
            noise_channels_mean: 3.0,
        }
    }
}

/// FRIBDAQ auxiliary data: the SIS3300 (1903) traces and the V977 (977) trigger word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FribConfig {
    /// Whether FRIB data is produced. Default true.
    pub enabled: bool,
    /// Fraction of events with trigger word 2 (IC_DOWNSCALE): beam-only events with no reaction.
    /// The others have 1 (MESH). Default 0.05.
    pub ic_downscale_fraction: f64,
    /// Sample of the triggering ion-chamber pulse peak (after the IC delay of 1100). Default 1200.
    pub ic_peak_sample: f64,
    /// Gaussian jitter of that position in samples. Default 3.
    pub ic_jitter_samples: f64,
    /// IC amplitude (ADC) for the nominal beam; it scales with the beam's dE/dx. Default 1125
    /// (inside Spyral's 900..1350 gate).
    pub ic_amplitude_adc: f64,
    /// Relative IC resolution (sigma). Default 0.03.
    pub ic_resolution: f64,
    /// Rise time (samples) of the shaped IC pulse (t/τ)³·exp(3(1 − t/τ)). Default 8.
    pub ic_shaping_samples: f64,
    /// Probability of one extra (pile-up) IC pulse at a random time. Default 0.02.
    pub ic_pileup_probability: f64,
    /// Baseline of the digitizer channels in ADC. Default 200.
    pub baseline_adc: f64,
    /// White noise sigma of the digitizer channels. Default 2.
    pub noise_adc: f64,
    /// Mesh signal (column 1) = this × the summed pad signal (ADC). Default 0.02.
    pub mesh_scale: f64,
}

impl Default for FribConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ic_downscale_fraction: 0.05,
            ic_peak_sample: 1200.0,
            ic_jitter_samples: 3.0,
            ic_amplitude_adc: 1125.0,
            ic_resolution: 0.03,
            ic_shaping_samples: 8.0,
            ic_pileup_probability: 0.02,
            baseline_adc: 200.0,
            noise_adc: 2.0,
            mesh_scale: 0.02,
        }
    }
}

fn check(ok: bool, field: &str, reason: &str) -> Result<(), SimError> {
    if ok {
        Ok(())
    } else {
        Err(SimError::InvalidConfig {
            field: field.to_string(),
            reason: reason.to_string(),
        })
    }
}

fn positive(x: f64, field: &str) -> Result<(), SimError> {
    check(
        x.is_finite() && x > 0.0,
        field,
        &format!("must be positive and finite, got {x}"),
    )
}

fn non_negative(x: f64, field: &str) -> Result<(), SimError> {
    check(
        x.is_finite() && x >= 0.0,
        field,
        &format!("must be non-negative and finite, got {x}"),
    )
}

fn ordered(lo: f64, hi: f64, field: &str) -> Result<(), SimError> {
    check(
        lo.is_finite() && hi.is_finite() && lo <= hi,
        field,
        &format!("needs min <= max, got {lo} > {hi}"),
    )
}

impl SimConfig {
    /// Checks every numeric field (the species and the gas are checked by `Simulator::new`).
    pub fn validate(&self) -> Result<(), SimError> {
        let d = &self.detector;
        check(
            d.magnetic_field.is_finite(),
            "detector.magnetic_field",
            "must be finite",
        )?;
        positive(d.electric_field, "detector.electric_field")?;
        positive(d.detector_length, "detector.detector_length")?;
        positive(d.get_frequency, "detector.get_frequency")?;
        check(
            d.window_time_bucket.is_finite()
                && d.micromegas_time_bucket.is_finite()
                && d.window_time_bucket > d.micromegas_time_bucket,
            "detector.window_time_bucket",
            "must be finite and larger than micromegas_time_bucket",
        )?;
        let b = &self.beam;
        positive(b.ke_mev, "beam.ke_mev")?;
        non_negative(b.ke_spread_mev, "beam.ke_spread_mev")?;
        non_negative(b.vertex_rho_sigma_mm, "beam.vertex_rho_sigma_mm")?;
        ordered(b.vertex_z_min_mm, b.vertex_z_max_mm, "beam.vertex_z_min_mm")?;
        check(
            b.vertex_z_min_mm >= 0.0 && b.vertex_z_max_mm <= d.detector_length,
            "beam.vertex_z_max_mm",
            "the vertex range must lie inside 0..detector_length",
        )?;
        match &self.reaction {
            ReactionConfig::TwoBody(t) => {
                non_negative(
                    t.ejectile_excitation_mev,
                    "reaction.ejectile_excitation_mev",
                )?;
                non_negative(
                    t.residual_excitation_mev,
                    "reaction.residual_excitation_mev",
                )?;
                ordered(
                    t.cm_polar_min_deg,
                    t.cm_polar_max_deg,
                    "reaction.cm_polar_min_deg",
                )?;
                check(
                    t.cm_polar_min_deg >= 0.0 && t.cm_polar_max_deg <= 180.0,
                    "reaction.cm_polar_max_deg",
                    "must lie in 0..180 degrees",
                )?;
            }
            ReactionConfig::Products(p) => {
                for (i, prod) in p.particles.iter().enumerate() {
                    let f = |name: &str| format!("reaction.particles[{i}].{name}");
                    check(prod.count <= 1000, &f("count"), "must be at most 1000")?;
                    positive(prod.ke_min_mev, &f("ke_min_mev"))?;
                    ordered(prod.ke_min_mev, prod.ke_max_mev, &f("ke_min_mev"))?;
                    ordered(prod.polar_min_deg, prod.polar_max_deg, &f("polar_min_deg"))?;
                    check(
                        prod.polar_min_deg >= 0.0 && prod.polar_max_deg <= 180.0,
                        &f("polar_max_deg"),
                        "must lie in 0..180 degrees",
                    )?;
                }
            }
        }
        let t = &self.transport;
        positive(t.w_value_ev, "transport.w_value_ev")?;
        non_negative(t.fano_factor, "transport.fano_factor")?;
        non_negative(t.transverse_diffusion_v, "transport.transverse_diffusion_v")?;
        non_negative(
            t.longitudinal_diffusion_v,
            "transport.longitudinal_diffusion_v",
        )?;
        non_negative(t.gain, "transport.gain")?;
        positive(t.step_mm, "transport.step_mm")?;
        positive(t.stop_range_mm, "transport.stop_range_mm")?;
        positive(t.max_rho_mm, "transport.max_rho_mm")?;
        check(
            t.max_electrons_per_cluster.is_finite() && t.max_electrons_per_cluster >= 1.0,
            "transport.max_electrons_per_cluster",
            "must be at least 1",
        )?;
        let e = &self.electronics;
        positive(e.shaping_time_ns, "electronics.shaping_time_ns")?;
        positive(e.amp_gain, "electronics.amp_gain")?;
        non_negative(e.threshold_adc, "electronics.threshold_adc")?;
        check(
            e.saturation_adc.is_finite()
                && e.saturation_adc >= 1.0
                && e.saturation_adc <= f64::from(i16::MAX),
            "electronics.saturation_adc",
            "must be in 1..=32767",
        )?;
        non_negative(e.baseline_mean_adc, "electronics.baseline_mean_adc")?;
        non_negative(e.baseline_spread_adc, "electronics.baseline_spread_adc")?;
        non_negative(e.baseline_drift_adc, "electronics.baseline_drift_adc")?;
        non_negative(e.white_noise_adc, "electronics.white_noise_adc")?;
        non_negative(e.noise_channels_mean, "electronics.noise_channels_mean")?;
        check(
            e.noise_channels_mean <= 1000.0,
            "electronics.noise_channels_mean",
            "must be at most 1000",
        )?;
        let f = &self.frib;
        check(
            (0.0..=1.0).contains(&f.ic_downscale_fraction),
            "frib.ic_downscale_fraction",
            "must be in 0..=1",
        )?;
        check(
            (0.0..=1.0).contains(&f.ic_pileup_probability),
            "frib.ic_pileup_probability",
            "must be in 0..=1",
        )?;
        check(
            f.ic_peak_sample.is_finite() && (0.0..2048.0).contains(&f.ic_peak_sample),
            "frib.ic_peak_sample",
            "must be in 0..2048",
        )?;
        non_negative(f.ic_jitter_samples, "frib.ic_jitter_samples")?;
        non_negative(f.ic_amplitude_adc, "frib.ic_amplitude_adc")?;
        non_negative(f.ic_resolution, "frib.ic_resolution")?;
        positive(f.ic_shaping_samples, "frib.ic_shaping_samples")?;
        non_negative(f.baseline_adc, "frib.baseline_adc")?;
        non_negative(f.noise_adc, "frib.noise_adc")?;
        non_negative(f.mesh_scale, "frib.mesh_scale")?;
        Ok(())
    }
}
