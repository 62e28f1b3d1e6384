//! FRIBDAQ auxiliary data: the SIS3300 (1903) matrix of 2048 samples × 8 channels at 12.5 MHz with an
//! ion-chamber pulse (column 0) and the mesh signal (column 1), and the V977 (977) trigger word.

use ndarray::Array2;

use super::config::FribConfig;
use super::electronics::GET_SAMPLES;
use super::rng::SimRng;

/// Samples per FRIB trace.
pub const FRIB_SAMPLES: usize = 2048;
/// Channels of the SIS3300 matrix.
pub const FRIB_CHANNELS: usize = 8;
/// FRIB sampling frequency in MHz.
pub const FRIB_FREQUENCY_MHZ: f64 = 12.5;
/// Trigger word of a mesh-triggered event.
pub const TRIGGER_MESH: u16 = 1;
/// Trigger word of a down-scaled ion-chamber trigger.
pub const TRIGGER_IC_DOWNSCALE: u16 = 2;

/// FRIB data of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct FribData {
    /// The 1903 matrix, shape (2048, 8): IC in column 0, mesh in column 1, silicon in column 2.
    pub trace_1903: Array2<u16>,
    /// The 977 trigger word (1 = MESH, 2 = IC_DOWNSCALE).
    pub trigger: u16,
}

/// Shaped pulse (t/τ)³·exp(3(1 − t/τ)), peak 1 at t = τ.
fn pulse(t: f64, tau: f64) -> f64 {
    if t <= 0.0 {
        0.0
    } else {
        let x = t / tau;
        x * x * x * (3.0 * (1.0 - x)).exp()
    }
}

/// Inputs of [`build_frib`] that come from the event.
pub(crate) struct FribInputs<'a> {
    pub trigger: u16,
    /// Triggering IC amplitude (ADC).
    pub ic_amplitude: f64,
    /// Summed pad signal per GET bucket (ADC).
    pub mesh_signal: &'a [f64; GET_SAMPLES],
    /// FRIB samples per GET bucket.
    pub samples_per_bucket: f64,
    /// GET bucket of the micromegas edge.
    pub micromegas_tb: f64,
}

pub(crate) fn build_frib(
    config: &FribConfig,
    inputs: &FribInputs<'_>,
    rng: &mut SimRng,
) -> FribData {
    let mut m = vec![0.0f64; FRIB_SAMPLES * FRIB_CHANNELS];
    let tau = config.ic_shaping_samples;
    let peak = config.ic_peak_sample + config.ic_jitter_samples * rng.normal();
    let add_ic = |m: &mut [f64], peak: f64, amp: f64| {
        // The pulse is negligible beyond 8τ after its start.
        let start = peak - tau;
        let first = start.floor().max(0.0);
        let last = (start + 8.0 * tau).ceil().min((FRIB_SAMPLES - 1) as f64);
        if first > last {
            return;
        }
        // Both bounds are clamped into 0..FRIB_SAMPLES.
        for s in first as usize..=last as usize {
            m[s * FRIB_CHANNELS] += amp * pulse(s as f64 - start, tau);
        }
    };
    add_ic(&mut m, peak, inputs.ic_amplitude);
    if rng.uniform() < config.ic_pileup_probability {
        let at = rng.uniform_in(0.0, FRIB_SAMPLES as f64);
        let amp = config.ic_amplitude_adc * (1.0 + config.ic_resolution * rng.normal());
        add_ic(&mut m, at, amp.max(0.0));
    }
    // Mesh: the summed pad signal, with the micromegas edge aligned on the IC peak.
    if config.mesh_scale > 0.0 {
        let offset = peak - inputs.samples_per_bucket * inputs.micromegas_tb;
        for s in 0..FRIB_SAMPLES {
            let tb = (s as f64 - offset) / inputs.samples_per_bucket;
            if tb < 0.0 || tb >= (GET_SAMPLES - 1) as f64 {
                continue;
            }
            // 0 <= tb < GET_SAMPLES - 1.
            let i = tb.floor() as usize;
            let f = tb - i as f64;
            let v = inputs.mesh_signal[i] * (1.0 - f) + inputs.mesh_signal[i + 1] * f;
            m[s * FRIB_CHANNELS + 1] += config.mesh_scale * v;
        }
    }
    let data = m
        .iter()
        .map(|&v| {
            let x = config.baseline_adc + v + config.noise_adc * rng.normal();
            // Clamped to the 12-bit range before the cast.
            x.round().clamp(0.0, 4095.0) as u16
        })
        .collect::<Vec<u16>>();
    let trace_1903 = Array2::from_shape_vec((FRIB_SAMPLES, FRIB_CHANNELS), data)
        .unwrap_or_else(|_| Array2::zeros((FRIB_SAMPLES, FRIB_CHANNELS)));
    FribData {
        trace_1903,
        trigger: inputs.trigger,
    }
}
