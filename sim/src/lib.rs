//! The AT-TPC run simulator: physics and event generation.
//!
//! Per event ([`Simulator::simulate_event`]):
//! 1. a beam ion enters at the window (z = 0) on a line parallel to the axis at ρ = |N(0, σ)|, and is
//!    tracked with energy loss to a vertex uniform in z (the beam's ionisation lies on beam pads);
//! 2. the reaction (two-body kinematics, or independent products) emits particles that are tracked
//!    through the gas in B and E ([`track`]: spec §3.4.1 equations of motion, RK4);
//! 3. each tracking step ionises the gas (N = ΔE/W with a Fano spread); electrons drift to the pad plane
//!    at z = L with the drift velocity L/((window_tb − micromegas_tb)/f), diffuse transversely
//!    (σ_T = sqrt(2·D·d/E)) and longitudinally, and land on the pad returned by [`PadLookup::pad_at`];
//! 4. arrival times are converted to time buckets with the inverse of Spyral's z calibration (§3.1.4:
//!    z = L arrives at the micromegas bucket, z = 0 at the window bucket), moved earlier by the
//!    pad's time correction ([`PadLookup::time_offset`], which Pointcloud adds back), histogrammed
//!    per pad and convolved with the GET response times the gains ([`electronics`]);
//! 5. channel baselines, slow drifts, white noise, the readout threshold, noise-only channels and
//!    12-bit saturation give the (n_traces, 517) int16 GET matrix, sorted by hardware id;
//! 6. optionally the FRIB 1903 matrix (ion chamber, mesh) and the 977 trigger word ([`frib`]);
//! 7. the truth record ([`truth`]).
//!
//! Each event uses its own `Pcg64` seeded from (run seed, event id), so events can be generated in any
//! order or in parallel with identical results.

pub mod config;
pub mod electronics;
pub mod frib;
pub mod grid;
pub(crate) mod kinematics;
pub(crate) mod rng;
pub mod run;
pub mod track;
pub mod truth;

use std::path::PathBuf;
use std::sync::Arc;

use ndarray::Array2;

use spyral_data::physics::{EnergyLossTable, GasTarget, Nucleus, PhysicsError};

pub use config::{
    BeamConfig, ElectronicsConfig, FribConfig, GasSpec, ProductConfig, ProductsConfig,
    ReactionConfig, SimConfig, TransportConfig, TwoBodyConfig,
};
pub use electronics::{GetResponse, GET_COLUMNS, GET_SAMPLES};
pub use frib::{FribData, FRIB_CHANNELS, FRIB_SAMPLES, TRIGGER_IC_DOWNSCALE, TRIGGER_MESH};
pub use grid::GridPadLookup;
pub use run::{simulate_run, RunOutput, RunSpec};
pub use track::{track_particle, Step, StopReason, Track, TrackParams};
pub use truth::{read_truth, write_truth, BeamTruth, EventTruth, ParticleTruth};

use electronics::{ChannelNoise, PadCharges};
use frib::{build_frib, FribInputs, FRIB_FREQUENCY_MHZ};
use kinematics::{angles, direction, two_body, Emitted};
use rng::SimRng;

/// The pad plane as seen by the simulator. The AT-TPC pad map implements it; tests use
/// [`GridPadLookup`].
pub trait PadLookup {
    /// The pad whose area contains (x, y) in mm, if any.
    fn pad_at(&self, x: f64, y: f64) -> Option<u16>;
    /// Number of pads (pad ids are 0..pad_count).
    fn pad_count(&self) -> usize;
    /// The pad's time correction in GET time buckets: Pointcloud adds it to every peak centroid
    /// of the pad, so the simulator makes the pad's signals arrive that much earlier. Default 0.
    fn time_offset(&self, _pad: u16) -> f64 {
        0.0
    }
    /// Hardware id `[cobo, asad, aget, channel]` of a pad. The default numbers pads consecutively
    /// over AGET channels, skipping the FPN channels 11, 22, 45 and 56 ([`synthetic_hardware_id`]).
    fn hardware_id(&self, pad: u16) -> [i16; 4] {
        synthetic_hardware_id(pad)
    }
}

/// Forwards the lookup through a pointer type.
macro_rules! forward_pad_lookup {
    ($($ptr:ty),*) => {$(
        impl<T: PadLookup + ?Sized> PadLookup for $ptr {
            fn pad_at(&self, x: f64, y: f64) -> Option<u16> {
                (**self).pad_at(x, y)
            }
            fn pad_count(&self) -> usize {
                (**self).pad_count()
            }
            fn time_offset(&self, pad: u16) -> f64 {
                (**self).time_offset(pad)
            }
            fn hardware_id(&self, pad: u16) -> [i16; 4] {
                (**self).hardware_id(pad)
            }
        }
    )*};
}
forward_pad_lookup!(&T, Box<T>, Arc<T>);

/// A plausible hardware id for a pad when no electronics map is available: 64 pads per AGET (68
/// channels minus the FPN channels 11, 22, 45, 56), 4 AGETs per AsAd, 4 AsAds per CoBo.
pub fn synthetic_hardware_id(pad: u16) -> [i16; 4] {
    // All values are below 2^15 (pad <= 65535 gives cobo <= 63).
    spyral_data::attpc::padmap::hardware_address(pad).map(|v| v as i16)
}

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A configuration value is out of range.
    #[error("invalid simulator configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field (dotted path).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A species in the configuration is unknown or unusable.
    #[error("invalid simulator configuration: {field}: {source}")]
    Species {
        /// The field (dotted path).
        field: String,
        /// The physics error.
        source: PhysicsError,
    },
    /// The gas target is invalid.
    #[error("invalid simulator gas: {0}")]
    Gas(#[source] PhysicsError),
    /// The pad lookup has no pads.
    #[error("the pad lookup has no pads")]
    NoPads,
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Writing the simulated run file failed.
    #[error("{0}")]
    Output(String),
}

/// One simulated event.
#[derive(Debug, Clone, PartialEq)]
pub struct SimEvent {
    /// Event id.
    pub event_id: u64,
    /// The GET matrix, shape (n_traces, 517), int16: cobo, asad, aget, channel, pad, 512 samples.
    pub get: Array2<i16>,
    /// FRIB data, if enabled.
    pub frib: Option<FribData>,
    /// What was simulated.
    pub truth: EventTruth,
}

/// A species with its energy-loss table in the gas.
#[derive(Debug, Clone)]
struct Species {
    nucleus: Nucleus,
    table: EnergyLossTable,
}

impl Species {
    fn new(symbol: &str, field: &str, gas: &GasTarget) -> Result<Self, SimError> {
        let err = |source| SimError::Species {
            field: field.to_string(),
            source,
        };
        let nucleus = Nucleus::from_symbol(symbol).map_err(err)?;
        let table = EnergyLossTable::new(&nucleus, gas).map_err(err)?;
        Ok(Self { nucleus, table })
    }
}

#[derive(Debug, Clone)]
struct TwoBodyReaction {
    target: Nucleus,
    ejectile: Species,
    /// The ejectile with its excitation energy added to the mass.
    ejectile_mass: Nucleus,
    residual: Species,
    /// The residual with its excitation energy added to the mass.
    residual_mass: Nucleus,
    cos_lo: f64,
    cos_hi: f64,
    ionize_residual: bool,
}

#[derive(Debug, Clone)]
enum Reaction {
    TwoBody(Box<TwoBodyReaction>),
    Products(Vec<(ProductConfig, Species)>),
}

/// RNG stream purposes.
const PURPOSE_EVENT: u64 = 0x45_5645_4E54;
const PURPOSE_BASELINE: u64 = 0x4241_5345;

/// The run simulator. Immutable after construction: `simulate_event` takes `&self` and may be called
/// from several threads.
pub struct Simulator<P> {
    config: SimConfig,
    pads: P,
    gas: GasTarget,
    beam: Species,
    reaction: Reaction,
    track_params: TrackParams,
    response: GetResponse,
    baselines: Vec<f64>,
    hardware: Vec<[i16; 4]>,
    ic_reference_dedx: f64,
}

impl<P: PadLookup> Simulator<P> {
    /// Validates the configuration, loads the gas and builds the energy-loss tables and the response.
    pub fn new(config: SimConfig, pads: P) -> Result<Self, SimError> {
        config.validate()?;
        if pads.pad_count() == 0 {
            return Err(SimError::NoPads);
        }
        let gas = match &config.gas {
            GasSpec::File(path) => GasTarget::from_file(path),
            GasSpec::Inline(value) => GasTarget::from_json_value(value),
        }
        .map_err(SimError::Gas)?;
        let beam = Species::new(&config.beam.species, "beam.species", &gas)?;
        let reaction = match &config.reaction {
            ReactionConfig::TwoBody(t) => {
                let target =
                    Nucleus::from_symbol(&t.target).map_err(|source| SimError::Species {
                        field: "reaction.target".into(),
                        source,
                    })?;
                let ejectile = Species::new(&t.ejectile, "reaction.ejectile", &gas)?;
                let (bz, ba) = (beam.nucleus.z + target.z, beam.nucleus.a + target.a);
                let (ez, ea) = (ejectile.nucleus.z, ejectile.nucleus.a);
                if ez > bz || ea > ba || (ea == ba) {
                    return Err(SimError::InvalidConfig {
                        field: "reaction.ejectile".into(),
                        reason: format!(
                            "{} cannot be emitted from {} + {}",
                            ejectile.nucleus, beam.nucleus, target
                        ),
                    });
                }
                let residual_nucleus =
                    Nucleus::new(bz - ez, ba - ea).map_err(|source| SimError::Species {
                        field: "reaction (residual nucleus)".into(),
                        source,
                    })?;
                let residual = Species::new(
                    &residual_nucleus.isotope_symbol(),
                    "reaction (residual nucleus)",
                    &gas,
                )?;
                let mut ejectile_mass = ejectile.nucleus;
                ejectile_mass.mass_mev += t.ejectile_excitation_mev;
                let mut residual_mass = residual.nucleus;
                residual_mass.mass_mev += t.residual_excitation_mev;
                Reaction::TwoBody(Box::new(TwoBodyReaction {
                    target,
                    ejectile,
                    ejectile_mass,
                    residual,
                    residual_mass,
                    cos_lo: t.cm_polar_max_deg.to_radians().cos(),
                    cos_hi: t.cm_polar_min_deg.to_radians().cos(),
                    ionize_residual: t.ionize_residual,
                }))
            }
            ReactionConfig::Products(p) => Reaction::Products(
                p.particles
                    .iter()
                    .enumerate()
                    .map(|(i, prod)| {
                        Species::new(
                            &prod.species,
                            &format!("reaction.particles[{i}].species"),
                            &gas,
                        )
                        .map(|s| (prod.clone(), s))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let det = &config.detector;
        let track_params = TrackParams {
            bz_tesla: -det.magnetic_field,
            ez_v_per_m: -det.electric_field,
            max_step_mm: config.transport.step_mm,
            stop_range_mm: config.transport.stop_range_mm,
            z_min_mm: 0.0,
            z_max_mm: det.detector_length,
            max_rho_mm: config.transport.max_rho_mm,
            max_steps: 200_000,
        };
        let response = GetResponse::new(
            &config.electronics,
            det.get_frequency,
            config.transport.gain,
        );
        let e = &config.electronics;
        let pad_count = pads.pad_count().min(usize::from(u16::MAX) + 1);
        let baselines = (0..pad_count)
            .map(|pad| {
                let mut r = SimRng::new(config.seed, PURPOSE_BASELINE, pad as u64);
                (e.baseline_mean_adc + e.baseline_spread_adc * r.normal()).max(0.0)
            })
            .collect();
        // pad < pad_count ≤ 65536, so it fits in u16.
        let hardware = (0..pad_count)
            .map(|pad| pads.hardware_id(pad as u16))
            .collect();
        let ic_reference_dedx = beam.table.dedx(config.beam.ke_mev);
        Ok(Self {
            config,
            pads,
            gas,
            beam,
            reaction,
            track_params,
            response,
            baselines,
            hardware,
            ic_reference_dedx,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The gas target.
    pub fn gas(&self) -> &GasTarget {
        &self.gas
    }

    /// The pad lookup.
    pub fn pads(&self) -> &P {
        &self.pads
    }

    /// The GET response (ADC per primary electron, gains included).
    pub fn response(&self) -> &GetResponse {
        &self.response
    }

    /// The tracking parameters (fields in the simulator's sign convention).
    pub fn track_params(&self) -> &TrackParams {
        &self.track_params
    }

    /// Drift velocity in mm/µs.
    pub fn drift_velocity_mm_per_us(&self) -> f64 {
        self.config.detector.drift_velocity()
    }

    /// Re-tracks a product from its truth record (same physics as the event, no ionisation).
    pub fn retrack(&self, particle: &ParticleTruth) -> Result<Track, SimError> {
        let err = |source| SimError::Species {
            field: format!("particle {}", particle.species),
            source,
        };
        let nucleus = Nucleus::new(particle.z, particle.a).map_err(err)?;
        let table = EnergyLossTable::new(&nucleus, &self.gas).map_err(err)?;
        Ok(track_particle(
            &nucleus,
            &table,
            &self.track_params,
            particle.vertex_mm,
            direction(particle.polar_rad, particle.azimuthal_rad),
            particle.ke_mev,
            None,
        ))
    }

    /// Simulates one event.
    pub fn simulate_event(&self, event_id: u64) -> SimEvent {
        let cfg = &self.config;
        let mut rng = SimRng::new(cfg.seed, PURPOSE_EVENT, event_id);
        let downscale = cfg.frib.enabled && rng.uniform() < cfg.frib.ic_downscale_fraction;
        let trigger = if downscale {
            TRIGGER_IC_DOWNSCALE
        } else {
            TRIGGER_MESH
        };

        // Beam.
        let b = &cfg.beam;
        let rho = (b.vertex_rho_sigma_mm * rng.normal()).abs();
        let phi = rng.uniform_in(0.0, std::f64::consts::TAU);
        let entry = [rho * phi.cos(), rho * phi.sin(), 0.0];
        let vertex_z = rng.uniform_in(b.vertex_z_min_mm, b.vertex_z_max_mm);
        let ke_entry = (b.ke_mev + b.ke_spread_mev * rng.normal()).max(1e-6);
        let beam_track = track_particle(
            &self.beam.nucleus,
            &self.beam.table,
            &self.track_params,
            entry,
            [0.0, 0.0, 1.0],
            ke_entry,
            (!downscale).then_some(vertex_z),
        );
        let vertex = beam_track.end_mm;
        let ke_vertex = beam_track.end_ke_mev;
        let mut ionizing: Vec<(&Track, f64)> = Vec::new();

        // Reaction.
        let mut emitted: Vec<(Emitted, &Species, bool)> = Vec::new();
        let mut reaction = false;
        if !downscale && beam_track.stop == StopReason::ReachedStopZ && ke_vertex > 0.0 {
            match &self.reaction {
                Reaction::TwoBody(r) => {
                    let cos_cm = rng.uniform_in(r.cos_lo, r.cos_hi);
                    let az = rng.uniform_in(0.0, std::f64::consts::TAU);
                    if let Some((c, d)) = two_body(
                        &self.beam.nucleus,
                        &r.target,
                        &r.ejectile_mass,
                        &r.residual_mass,
                        ke_vertex,
                        cos_cm,
                        az,
                    ) {
                        reaction = true;
                        emitted.push((c, &r.ejectile, true));
                        emitted.push((d, &r.residual, r.ionize_residual));
                    }
                }
                Reaction::Products(list) => {
                    reaction = true;
                    for (prod, species) in list {
                        for _ in 0..prod.count {
                            let ke = rng.uniform_in(prod.ke_min_mev, prod.ke_max_mev);
                            let cos_t = rng.uniform_in(
                                prod.polar_max_deg.to_radians().cos(),
                                prod.polar_min_deg.to_radians().cos(),
                            );
                            let az = rng.uniform_in(0.0, std::f64::consts::TAU);
                            let e = Emitted {
                                nucleus: species.nucleus,
                                ke_mev: ke,
                                direction: direction(cos_t.clamp(-1.0, 1.0).acos(), az),
                            };
                            emitted.push((e, species, true));
                        }
                    }
                }
            }
        }
        let tracks: Vec<Track> = emitted
            .iter()
            .map(|(e, s, _)| {
                track_particle(
                    &e.nucleus,
                    &s.table,
                    &self.track_params,
                    vertex,
                    e.direction,
                    e.ke_mev,
                    None,
                )
            })
            .collect();
        if b.ionize {
            ionizing.push((&beam_track, -beam_track.time_ns));
        }
        for (t, (_, _, ionizes)) in tracks.iter().zip(&emitted) {
            if *ionizes {
                ionizing.push((t, 0.0));
            }
        }

        // Ionisation, drift and collection.
        let mut charges = PadCharges::new(self.baselines.len(), self.response.len());
        for (track, t0) in &ionizing {
            self.ionize(track, *t0, &mut charges, &mut rng);
        }

        // Electronics.
        let get = self.digitize(&charges, &mut rng);

        // FRIB.
        let mut ic_amplitude = None;
        let frib = cfg.frib.enabled.then(|| {
            let f = &cfg.frib;
            let ratio = if self.ic_reference_dedx > 0.0 {
                self.beam.table.dedx(ke_entry) / self.ic_reference_dedx
            } else {
                1.0
            };
            let amp =
                (f.ic_amplitude_adc * ratio * (1.0 + f.ic_resolution * rng.normal())).max(0.0);
            ic_amplitude = Some(amp);
            let mut mesh = [0.0; GET_SAMPLES];
            charges.total_signal(&self.response, &mut mesh);
            let inputs = FribInputs {
                trigger,
                ic_amplitude: amp,
                mesh_signal: &mesh,
                samples_per_bucket: FRIB_FREQUENCY_MHZ / cfg.detector.get_frequency,
                micromegas_tb: cfg.detector.micromegas_time_bucket,
            };
            build_frib(f, &inputs, &mut rng)
        });

        // Truth.
        let particles = emitted
            .iter()
            .zip(&tracks)
            .map(|((e, _, _), t)| {
                let (polar, azimuth) = angles(e.direction);
                ParticleTruth {
                    species: e.nucleus.isotope_symbol(),
                    z: e.nucleus.z,
                    a: e.nucleus.a,
                    vertex_mm: vertex,
                    ke_mev: e.ke_mev,
                    polar_rad: polar,
                    azimuthal_rad: azimuth,
                    brho_tm: e.nucleus.brho_tm(e.ke_mev),
                    end_mm: t.end_mm,
                    path_length_mm: t.path_length_mm,
                    stop: t.stop,
                }
            })
            .collect();
        let truth = EventTruth {
            event_id,
            trigger,
            reaction,
            vertex_mm: vertex,
            beam: BeamTruth {
                species: self.beam.nucleus.isotope_symbol(),
                entry_mm: entry,
                ke_entry_mev: ke_entry,
                ke_vertex_mev: ke_vertex,
            },
            ic_amplitude,
            particles,
        };
        SimEvent {
            event_id,
            get,
            frib,
            truth,
        }
    }

    /// Turns the energy deposited along a track into electron clusters on the pads.
    fn ionize(&self, track: &Track, t0_ns: f64, charges: &mut PadCharges, rng: &mut SimRng) {
        let det = &self.config.detector;
        let tr = &self.config.transport;
        let length = det.detector_length;
        let tb_per_mm = det.get_frequency / det.drift_velocity();
        let tb_per_ns = det.get_frequency * 1e-3;
        let shift = if tr.align_peak_to_calibration {
            self.response.peak_offset_tb
        } else {
            0.0
        };
        // σ [mm] = sqrt(2·D·d[m]/E)·1000 = k·sqrt(d[mm]).
        let k_t = (2.0 * tr.transverse_diffusion_v / det.electric_field * 1e-3).sqrt() * 1e3;
        let k_l = (2.0 * tr.longitudinal_diffusion_v / det.electric_field * 1e-3).sqrt() * 1e3;
        let per_ev = 1e6 / tr.w_value_ev;
        for step in &track.steps {
            let n_mean = step.energy_mev * per_ev;
            if n_mean.is_nan() || n_mean <= 0.0 {
                continue;
            }
            let n = (n_mean + (tr.fano_factor * n_mean).sqrt() * rng.normal()).round();
            if n.is_nan() || n <= 0.0 {
                continue;
            }
            let clusters = (n / tr.max_electrons_per_cluster).ceil().max(1.0);
            let q = n / clusters;
            // clusters ≥ 1 and bounded by the deposited energy; the cast is safe.
            for _ in 0..clusters as u64 {
                let u = rng.uniform();
                let x = step.start_mm[0] + u * (step.end_mm[0] - step.start_mm[0]);
                let y = step.start_mm[1] + u * (step.end_mm[1] - step.start_mm[1]);
                let z = step.start_mm[2] + u * (step.end_mm[2] - step.start_mm[2]);
                if !(0.0..=length).contains(&z) {
                    continue;
                }
                let t_ns = t0_ns + step.t_start_ns + u * (step.t_end_ns - step.t_start_ns);
                let drift = length - z;
                let sqrt_d = drift.sqrt();
                let xd = x + k_t * sqrt_d * rng.normal();
                let yd = y + k_t * sqrt_d * rng.normal();
                let dd = drift + k_l * sqrt_d * rng.normal();
                let Some(pad) = self.pads.pad_at(xd, yd) else {
                    continue;
                };
                // Minus the pad's time correction, which Pointcloud adds back.
                let tb = det.micromegas_time_bucket + dd * tb_per_mm + t_ns * tb_per_ns
                    - shift
                    - self.pads.time_offset(pad);
                charges.deposit(pad, tb, q);
            }
        }
    }

    /// Builds the GET matrix: shaped signals, threshold, noise, noise-only channels, saturation.
    fn digitize(&self, charges: &PadCharges, rng: &mut SimRng) -> Array2<i16> {
        let e = &self.config.electronics;
        let max_adc = e.saturation_adc;
        let mut signal = [0.0; GET_SAMPLES];
        let mut rows: Vec<Vec<i16>> = Vec::new();
        let mut read = vec![false; self.baselines.len()];
        let header = |pad: u16, hw: [i16; 4]| -> Vec<i16> {
            let mut row = vec![0i16; GET_COLUMNS];
            row[..4].copy_from_slice(&hw);
            // Pad ids above i16::MAX cannot be stored in the int16 matrix; they are marked -1.
            row[4] = i16::try_from(pad).unwrap_or(-1);
            row
        };
        for (i, &pad) in charges.pads().iter().enumerate() {
            charges.signal(i, &self.response, &mut signal);
            let peak = signal.iter().fold(0.0f64, |m, &v| m.max(v));
            if peak <= e.threshold_adc {
                continue;
            }
            let p = usize::from(pad);
            read[p] = true;
            let noise = ChannelNoise::draw(e, self.baselines[p], rng);
            let mut row = header(pad, self.hardware[p]);
            noise.render(&signal, max_adc, rng, &mut row[5..]);
            rows.push(row);
        }
        if e.noise && e.noise_channels_mean > 0.0 {
            let n_noise = rng.poisson(e.noise_channels_mean);
            signal.fill(0.0);
            for _ in 0..n_noise {
                // A few attempts to find a channel that is not read out yet.
                for _ in 0..16 {
                    let p = rng.below(read.len());
                    if read[p] {
                        continue;
                    }
                    read[p] = true;
                    let noise = ChannelNoise::draw(e, self.baselines[p], rng);
                    // p < pad_count ≤ 65536.
                    let mut row = header(p as u16, self.hardware[p]);
                    noise.render(&signal, max_adc, rng, &mut row[5..]);
                    rows.push(row);
                    break;
                }
            }
        }
        rows.sort_by(|a, b| a[..5].cmp(&b[..5]));
        let n = rows.len();
        let flat: Vec<i16> = rows.into_iter().flatten().collect();
        Array2::from_shape_vec((n, GET_COLUMNS), flat)
            .unwrap_or_else(|_| Array2::zeros((0, GET_COLUMNS)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_ids_skip_fpn() {
        assert_eq!(synthetic_hardware_id(0), [0, 0, 0, 0]);
        assert_eq!(synthetic_hardware_id(11), [0, 0, 0, 12]);
        assert_eq!(synthetic_hardware_id(63), [0, 0, 0, 67]);
        assert_eq!(synthetic_hardware_id(64), [0, 0, 1, 0]);
        assert_eq!(synthetic_hardware_id(64 * 16), [1, 0, 0, 0]);
    }

    #[test]
    fn config_round_trip_and_unknown_fields() {
        let text = serde_json::to_string(&SimConfig::default()).unwrap();
        let back: SimConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, SimConfig::default());
        let err = serde_json::from_str::<SimConfig>(r#"{"beam": {"speces": "16C"}}"#).unwrap_err();
        assert!(err.to_string().contains("speces"), "{err}");
        let err = serde_json::from_str::<SimConfig>(
            r#"{"reaction": {"kind": "two_body", "targt": "2H"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("targt"), "{err}");
        let cfg: SimConfig = serde_json::from_str(
            r#"{"reaction": {"kind": "products", "particles": [{"species": "alpha", "count": 2}]},
                "gas": {"compound": [[2, 4, 1]], "pressure(Torr)": 200}}"#,
        )
        .unwrap();
        match cfg.reaction {
            ReactionConfig::Products(p) => assert_eq!(p.particles[0].count, 2),
            ReactionConfig::TwoBody(_) => panic!("wrong variant"),
        }
        let cfg: SimConfig = serde_json::from_str(r#"{"gas": "some/file.json"}"#).unwrap();
        assert_eq!(cfg.gas, GasSpec::File("some/file.json".into()));
    }
}
