//! GET electronics: the AGET shaper response (spec §9), per-pad arrival-time histograms, their
//! convolution with the response, and the noise model (channel baselines, slow drift, white noise).

use super::config::ElectronicsConfig;
use super::rng::SimRng;
use spyral_data::physics::constants::ELEMENTARY_CHARGE_C;

/// Number of GET time buckets per trace.
pub const GET_SAMPLES: usize = 512;
/// Columns of the GET matrix: cobo, asad, aget, channel, pad, then the samples.
pub const GET_COLUMNS: usize = GET_SAMPLES + 5;

/// The shaper response sampled at integer time-bucket offsets, in ADC per primary electron
/// (avalanche gain included), and the offset of its maximum.
#[derive(Debug, Clone, PartialEq)]
pub struct GetResponse {
    /// `kernel[k]` = ADC at k buckets after one electron arrives.
    pub kernel: Vec<f64>,
    /// Offset (buckets, fractional) of the continuous response's maximum.
    pub peak_offset_tb: f64,
}

/// The unnormalised response shape exp(−3u)·u³·sin(u), clipped to 0 where negative.
fn shape(u: f64) -> f64 {
    if u <= 0.0 || u >= std::f64::consts::PI {
        0.0
    } else {
        (-3.0 * u).exp() * u * u * u * u.sin()
    }
}

impl GetResponse {
    /// R(tb) = c1·exp(−3u)·u³·sin(u), u = tb/(shaping_time·clock·1e-3), c1 = 4095·e/amp_gain/1e-15,
    /// times the gas gain.
    pub fn new(config: &ElectronicsConfig, get_frequency_mhz: f64, gain: f64) -> Self {
        let tau = config.shaping_time_ns * get_frequency_mhz * 1e-3; // buckets per unit of u
        let c1 = 4095.0 * ELEMENTARY_CHARGE_C / config.amp_gain / 1e-15;
        // The response is zero beyond u = π.
        let len = ((std::f64::consts::PI * tau).ceil().max(1.0) as usize + 1).min(4 * GET_SAMPLES);
        let kernel = (0..len)
            .map(|k| c1 * gain * shape(k as f64 / tau))
            .collect();
        // d/du ln(shape) = −3 + 3/u + cot(u) = 0, solved by bisection on (0.01, π − 0.01).
        let h = |u: f64| -3.0 + 3.0 / u + u.cos() / u.sin();
        let (mut lo, mut hi) = (0.01, std::f64::consts::PI - 0.01);
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if h(mid) > 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Self {
            kernel,
            peak_offset_tb: 0.5 * (lo + hi) * tau,
        }
    }

    /// Kernel length in buckets.
    pub fn len(&self) -> usize {
        self.kernel.len()
    }

    /// Whether the kernel is empty (never for a valid configuration).
    pub fn is_empty(&self) -> bool {
        self.kernel.is_empty()
    }
}

/// Arrival-time histograms of the pads that received charge in one event.
pub(crate) struct PadCharges {
    /// Histogram slot of each pad, `u32::MAX` if none.
    slot: Vec<u32>,
    /// Pads with a histogram, in order of first charge.
    pads: Vec<u16>,
    /// Flattened histograms, `hist_len` bins each; bin j is arrival bucket j − `pre`.
    hist: Vec<f64>,
    hist_len: usize,
    pre: usize,
}

impl PadCharges {
    pub(crate) fn new(pad_count: usize, kernel_len: usize) -> Self {
        Self {
            slot: vec![u32::MAX; pad_count],
            pads: Vec::new(),
            hist: Vec::new(),
            hist_len: GET_SAMPLES + kernel_len,
            pre: kernel_len,
        }
    }

    /// Adds `charge` electrons arriving at fractional bucket `tb` on `pad`, split linearly between the
    /// two neighbouring bins.
    #[inline]
    pub(crate) fn deposit(&mut self, pad: u16, tb: f64, charge: f64) {
        let pos = tb + self.pre as f64;
        if !(pos >= 0.0 && pos < (self.hist_len - 1) as f64) {
            return;
        }
        let Some(slot) = self.slot.get_mut(usize::from(pad)) else {
            return;
        };
        if *slot == u32::MAX {
            // At most pad_count (≤ 65536) slots, so the cast is exact.
            *slot = self.pads.len() as u32;
            self.pads.push(pad);
            self.hist.resize(self.hist.len() + self.hist_len, 0.0);
        }
        let base = *slot as usize * self.hist_len;
        // pos is in [0, hist_len − 1): truncation is the floor and fits in usize.
        let j = pos as usize;
        let f = pos - j as f64;
        self.hist[base + j] += charge * (1.0 - f);
        self.hist[base + j + 1] += charge * f;
    }

    pub(crate) fn pads(&self) -> &[u16] {
        &self.pads
    }

    /// The shaped signal (ADC, no baseline or noise) of the i-th pad.
    pub(crate) fn signal(&self, i: usize, response: &GetResponse, out: &mut [f64; GET_SAMPLES]) {
        out.fill(0.0);
        let h = &self.hist[i * self.hist_len..(i + 1) * self.hist_len];
        convolve(h, self.pre, response, out);
    }

    /// The summed signal of all pads (for the mesh).
    pub(crate) fn total_signal(&self, response: &GetResponse, out: &mut [f64; GET_SAMPLES]) {
        out.fill(0.0);
        let mut total = vec![0.0; self.hist_len];
        for chunk in self.hist.chunks_exact(self.hist_len) {
            for (t, c) in total.iter_mut().zip(chunk) {
                *t += c;
            }
        }
        convolve(&total, self.pre, response, out);
    }
}

/// out[n] += Σ_j h[j]·kernel[n − (j − pre)], only over non-empty bins.
fn convolve(h: &[f64], pre: usize, response: &GetResponse, out: &mut [f64; GET_SAMPLES]) {
    let k_len = response.kernel.len();
    for (j, &q) in h.iter().enumerate() {
        if q == 0.0 {
            continue;
        }
        // Sample n = j − pre + k for k in 0..k_len, restricted to 0..GET_SAMPLES.
        let k_start = pre.saturating_sub(j);
        let k_end = k_len.min((GET_SAMPLES + pre).saturating_sub(j));
        for k in k_start..k_end {
            out[j + k - pre] += q * response.kernel[k];
        }
    }
}

/// Per-event noise of one channel: baseline, slow drift and white noise; quantised and clipped.
pub(crate) struct ChannelNoise {
    pub baseline: f64,
    pub drift_amplitude: f64,
    pub drift_omega: f64,
    pub drift_phase: f64,
    pub white: f64,
}

impl ChannelNoise {
    /// Draws the per-event drift of a channel whose fixed baseline is `baseline`.
    pub(crate) fn draw(config: &ElectronicsConfig, baseline: f64, rng: &mut SimRng) -> Self {
        if !config.noise {
            return Self {
                baseline: config.baseline_mean_adc,
                drift_amplitude: 0.0,
                drift_omega: 0.0,
                drift_phase: 0.0,
                white: 0.0,
            };
        }
        // A slow sine with a period of 1–4 traces.
        let period = rng.uniform_in(512.0, 2048.0);
        Self {
            baseline,
            drift_amplitude: config.baseline_drift_adc * rng.normal(),
            drift_omega: std::f64::consts::TAU / period,
            drift_phase: rng.uniform_in(0.0, std::f64::consts::TAU),
            white: config.white_noise_adc,
        }
    }

    /// Writes baseline + drift + white noise + `signal` into `out`, rounded and clipped to 0..=max.
    pub(crate) fn render(
        &self,
        signal: &[f64; GET_SAMPLES],
        max_adc: f64,
        rng: &mut SimRng,
        out: &mut [i16],
    ) {
        // The drift sine is advanced by a rotation instead of calling sin() per sample.
        let (mut s, mut c) = self.drift_phase.sin_cos();
        let (sw, cw) = self.drift_omega.sin_cos();
        for (o, sig) in out.iter_mut().zip(signal.iter()) {
            let mut v = self.baseline + sig + self.drift_amplitude * s;
            (s, c) = (s * cw + c * sw, c * cw - s * sw);
            if self.white > 0.0 {
                v += self.white * rng.normal();
            }
            // Round half up after clamping to 0..=max_adc ≤ i16::MAX (the truncating cast of a
            // non-negative value is its floor).
            *o = (v.clamp(0.0, max_adc) + 0.5).min(max_adc) as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_shape() {
        let r = GetResponse::new(&ElectronicsConfig::default(), 6.25, 1.75e5);
        // u = tb/6.25 reaches π at 19.6 buckets.
        assert_eq!(r.len(), 21);
        assert!(r.kernel[0] == 0.0 && r.kernel[20] == 0.0);
        let (imax, vmax) =
            r.kernel.iter().enumerate().fold(
                (0, 0.0),
                |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
            );
        assert_eq!(imax, 7);
        assert!(
            (r.peak_offset_tb - 7.29).abs() < 0.02,
            "{}",
            r.peak_offset_tb
        );
        // About 5.6 ADC per electron at the peak.
        assert!((vmax - 5.6).abs() < 0.1, "{vmax}");
    }

    #[test]
    fn convolution_places_pulse() {
        let r = GetResponse::new(&ElectronicsConfig::default(), 6.25, 1.0);
        let mut pc = PadCharges::new(4, r.len());
        pc.deposit(2, 100.0, 1000.0);
        let mut out = [0.0; GET_SAMPLES];
        pc.signal(0, &r, &mut out);
        let imax = out
            .iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > out[b] { i } else { b });
        assert_eq!(imax, 107);
        // Charge before bucket 0 still shows up at the start of the trace.
        let mut pc = PadCharges::new(4, r.len());
        pc.deposit(1, -5.0, 1000.0);
        pc.signal(0, &r, &mut out);
        assert!(out[0] > 0.0 && out[15] == 0.0);
    }
}
