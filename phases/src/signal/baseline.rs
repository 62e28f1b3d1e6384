//! Fourier-filter baseline removal for GET and FRIBDAQ traces (spec §3.1.1 and §1.8).
//!
//! For each trace (a GET row of 512 `i16` samples, or a FRIBDAQ column of 2048 `u16` samples),
//! Spyral:
//!
//! 1. copies sample 1 onto sample 0 and sample `n-2` onto sample `n-1` (in the integer type);
//! 2. computes the mean and the population standard deviation of the row, marks the samples with
//!    `x - mean > 1.5 * std` (one-sided), and replaces them by the mean of the unmasked samples,
//!    truncated toward zero (the row is still integer);
//! 3. filters that masked row with `fil = ifftshift(sinc(window / window_scale))`,
//!    `window = -n/2 .. n/2 - 1`, used directly as a real frequency response:
//!    `baseline = real(IFFT(FFT(row) * fil))`;
//! 4. returns `trace - baseline` as `f64`, which the trace classes cast to `i32` (truncation toward
//!    zero).
//!
//! [`BaselineRemover`] does exactly that with the filter, its per-bin coefficients and the FFT
//! plans computed once, and all buffers preallocated. Because the row is real and the filter is
//! real and even, the filtered spectrum is Hermitian: one complex FFT of half the length (even
//! samples as real parts, odd samples as imaginary parts), one 2x2 complex linear map per pair of
//! bins `(k, n/2 - k)` (split into the real row's spectrum, filter, repack), and one inverse
//! half-length FFT give the same baseline as numpy's full complex transforms, to rounding (about
//! 1e-13 here).
//!
//! Numerical notes (why the integer outputs agree with the Python original):
//! - the mean is `sum / n` with an exact sum (integers, far below 2^53), as in numpy and numba;
//! - numba's `np.std` sums the squared deviations sequentially in `f64`. For power-of-two `n` and
//!   12-bit ADC data every partial sum is exactly representable, so the exact integer formula
//!   `(n·Σx² − (Σx)²) / n` gives the same bits; when it cannot be proven exact the sequential
//!   loop is used instead. The standard deviation is `sqrt(var)` (numba writes `var ** 0.5`);
//! - the mask test is evaluated with the same `f64` operations (`x - mean > std * 1.5`);
//! - a row whose masked copy is constant has an exactly constant baseline here, as in numpy, so
//!   flat regions do not produce off-by-one truncations.

use std::f64::consts::PI;
use std::fmt;
use std::sync::Arc;

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use super::{SignalError, FRIB_TRACE_LENGTH, GET_TRACE_LENGTH};

mod sealed {
    pub trait Sealed {}
    impl Sealed for i16 {}
    impl Sealed for u16 {}
}

/// A raw digitizer sample type the baseline remover accepts: `i16` (GET) or `u16` (FRIBDAQ).
///
/// The trait is sealed: the exactness arguments of this module rely on 16-bit integers.
pub trait RawSample: Copy + sealed::Sealed {
    /// The sample as an `f64` (exact).
    fn to_f64(self) -> f64;
}

impl RawSample for i16 {
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl RawSample for u16 {
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

/// numpy's normalized sinc: `sin(pi x) / (pi x)`, with `x == 0` replaced by `1e-20`.
fn numpy_sinc(x: f64) -> f64 {
    let x = if x == 0.0 { 1.0e-20 } else { x };
    let y = PI * x;
    y.sin() / y
}

/// Reusable Spyral baseline remover for traces of one length.
///
/// Build one per worker (it owns its FFT plans and scratch buffers) and feed it traces one at a
/// time. `BaselineRemover::new(512, 20.0)` reproduces the GET defaults, `BaselineRemover::new(2048,
/// 100.0)` the FRIBDAQ defaults.
#[derive(Clone)]
pub struct BaselineRemover {
    n_samples: usize,
    half: usize,
    window_scale: f64,
    inv_n: f64,
    /// `fil[k]` for `k = 0..=half` (the filter is even: `fil[n - k] == fil[k]`).
    filter: Vec<f64>,
    /// Per `k = 1..=half/2`, the real coefficients `[p, q, r]` of the linear map from
    /// `(A, B) = (Z[k], conj(Z[half-k]))` (half-length transform of the packed row) to
    /// `Z'[k] = p A + i r B`, `conj(Z'[half-k]) = -i r A + q B` (half-length transform of the packed
    /// baseline); see [`pair_coefficients`].
    coefficients: Vec<[f64; 3]>,
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
    /// Half-length complex buffer: packed row, then packed baseline (unnormalized).
    packed: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    /// The edge-fixed trace as `f64`.
    trace: Vec<f64>,
}

impl fmt::Debug for BaselineRemover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaselineRemover")
            .field("n_samples", &self.n_samples)
            .field("window_scale", &self.window_scale)
            .finish_non_exhaustive()
    }
}

impl BaselineRemover {
    /// Creates a remover for traces of `n_samples` samples and the given `baseline_window_scale`.
    ///
    /// `n_samples` must be even and at least 4; `window_scale` must be finite and non-zero.
    pub fn new(n_samples: usize, window_scale: f64) -> Result<Self, SignalError> {
        if n_samples < 4 || n_samples % 2 != 0 {
            return Err(SignalError::InvalidSampleCount(n_samples));
        }
        if !window_scale.is_finite() || window_scale == 0.0 {
            return Err(SignalError::InvalidWindowScale(window_scale));
        }
        let half = n_samples / 2;
        // After ifftshift, fil[k] = sinc(k / s) for k < n/2 and sinc((k - n) / s) for k >= n/2.
        let filter: Vec<f64> = (0..=half)
            .map(|k| {
                let w = if k < half {
                    k as f64
                } else {
                    k as f64 - n_samples as f64
                };
                numpy_sinc(w / window_scale)
            })
            .collect();
        let coefficients = (1..=half / 2)
            .map(|k| {
                let theta = 2.0 * PI * (k as f64) / (n_samples as f64);
                pair_coefficients(filter[k], filter[half - k], theta)
            })
            .collect();
        let mut planner = FftPlanner::<f64>::new();
        let forward = planner.plan_fft_forward(half);
        let inverse = planner.plan_fft_inverse(half);
        let scratch_len = forward
            .get_inplace_scratch_len()
            .max(inverse.get_inplace_scratch_len());
        Ok(Self {
            n_samples,
            half,
            window_scale,
            inv_n: 1.0 / n_samples as f64,
            filter,
            coefficients,
            forward,
            inverse,
            packed: vec![Complex::new(0.0, 0.0); half],
            scratch: vec![Complex::new(0.0, 0.0); scratch_len],
            trace: vec![0.0; n_samples],
        })
    }

    /// A remover for GET traces (512 samples).
    pub fn get(window_scale: f64) -> Result<Self, SignalError> {
        Self::new(GET_TRACE_LENGTH, window_scale)
    }

    /// A remover for FRIBDAQ traces (2048 samples).
    pub fn frib(window_scale: f64) -> Result<Self, SignalError> {
        Self::new(FRIB_TRACE_LENGTH, window_scale)
    }

    /// The trace length this remover was built for.
    pub fn n_samples(&self) -> usize {
        self.n_samples
    }

    /// The baseline window scale this remover was built for.
    pub fn window_scale(&self) -> f64 {
        self.window_scale
    }

    /// The real frequency response `fil[k]` for `k = 0..=n/2` (the rest follows from
    /// `fil[n - k] == fil[k]`).
    pub fn filter_half(&self) -> &[f64] {
        &self.filter
    }

    /// Removes the baseline of one trace and truncates the result toward zero into `out`, as
    /// Spyral's `preprocess_traces` followed by `astype(int32)`.
    ///
    /// `row` is the raw trace (for GET: matrix columns 5..517); both slices must have
    /// [`n_samples`](Self::n_samples) elements.
    pub fn remove<T: RawSample>(&mut self, row: &[T], out: &mut [i32]) -> Result<(), SignalError> {
        self.check_len(out.len())?;
        self.process(row)?;
        // trace - baseline, then the integer cast in a separate loop (which vectorizes).
        let inv_n = self.inv_n;
        for (t, b) in self.trace.chunks_exact_mut(2).zip(self.packed.iter()) {
            t[0] -= b.re * inv_n;
            t[1] -= b.im * inv_n;
        }
        for (o, &v) in out.iter_mut().zip(self.trace.iter()) {
            // `as` truncates toward zero (and saturates), like numpy's astype(int32) in range.
            *o = v as i32;
        }
        Ok(())
    }

    /// Like [`remove`](Self::remove) but returns `trace - baseline` before the integer cast.
    pub fn remove_f64<T: RawSample>(
        &mut self,
        row: &[T],
        out: &mut [f64],
    ) -> Result<(), SignalError> {
        self.check_len(out.len())?;
        self.process(row)?;
        let inv_n = self.inv_n;
        for ((pair, o), b) in out
            .chunks_exact_mut(2)
            .zip(self.trace.chunks_exact(2))
            .zip(self.packed.iter())
        {
            pair[0] = o[0] - b.re * inv_n;
            pair[1] = o[1] - b.im * inv_n;
        }
        Ok(())
    }

    /// Computes only the baseline (the filtered, masked trace) of one trace.
    pub fn baseline<T: RawSample>(
        &mut self,
        row: &[T],
        out: &mut [f64],
    ) -> Result<(), SignalError> {
        self.check_len(out.len())?;
        self.process(row)?;
        let inv_n = self.inv_n;
        for (pair, b) in out.chunks_exact_mut(2).zip(self.packed.iter()) {
            pair[0] = b.re * inv_n;
            pair[1] = b.im * inv_n;
        }
        Ok(())
    }

    /// Processes every row of `input` (shape `(n_traces, n_samples)`, e.g. the GET matrix sliced
    /// to columns 5..517) into the same-shaped `output`.
    pub fn remove_rows<T: RawSample>(
        &mut self,
        input: ArrayView2<'_, T>,
        mut output: ArrayViewMut2<'_, i32>,
    ) -> Result<(), SignalError> {
        let (rows, cols) = input.dim();
        if cols != self.n_samples || output.dim() != (rows, cols) {
            return Err(SignalError::ShapeMismatch {
                expected: (rows, self.n_samples),
                got: output.dim(),
            });
        }
        for (row_in, row_out) in input.outer_iter().zip(output.outer_iter_mut()) {
            self.remove_view(row_in, row_out)?;
        }
        Ok(())
    }

    /// Processes every column of `input` (shape `(n_samples, n_columns)`, the FRIBDAQ 1903 layout
    /// `(2048, 8)`) into the same-shaped `output`, as Spyral's `preprocess_frib_traces` followed by
    /// the per-column `astype(int32)`.
    pub fn remove_columns<T: RawSample>(
        &mut self,
        input: ArrayView2<'_, T>,
        mut output: ArrayViewMut2<'_, i32>,
    ) -> Result<(), SignalError> {
        let (rows, cols) = input.dim();
        if rows != self.n_samples || output.dim() != (rows, cols) {
            return Err(SignalError::ShapeMismatch {
                expected: (self.n_samples, cols),
                got: output.dim(),
            });
        }
        for (col_in, col_out) in input.columns().into_iter().zip(output.columns_mut()) {
            self.remove_view(col_in, col_out)?;
        }
        Ok(())
    }

    fn remove_view<T: RawSample>(
        &mut self,
        row: ArrayView1<'_, T>,
        mut out: ArrayViewMut1<'_, i32>,
    ) -> Result<(), SignalError> {
        if let (Some(r), Some(o)) = (row.as_slice(), out.as_slice_mut()) {
            return self.remove(r, o);
        }
        self.check_len(row.len())?;
        self.check_len(out.len())?;
        // Strided data (e.g. FRIB columns): load through the iterator, then write the same way.
        let first = row[1];
        let last = row[self.n_samples - 2];
        let n = self.n_samples;
        for (j, (dst, &v)) in self.trace.iter_mut().zip(row.iter()).enumerate() {
            let v = if j == 0 {
                first
            } else if j == n - 1 {
                last
            } else {
                v
            };
            *dst = v.to_f64();
        }
        let (sum, sum_sq) = sums(&self.trace);
        self.filter_loaded(sum, sum_sq);
        let inv_n = self.inv_n;
        for (j, o) in out.iter_mut().enumerate() {
            let b = self.packed[j / 2];
            let b = if j % 2 == 0 { b.re } else { b.im };
            *o = (self.trace[j] - b * inv_n) as i32;
        }
        Ok(())
    }

    fn check_len(&self, got: usize) -> Result<(), SignalError> {
        if got == self.n_samples {
            Ok(())
        } else {
            Err(SignalError::LengthMismatch {
                expected: self.n_samples,
                got,
            })
        }
    }

    /// Loads `row` (with the edge fix) into `self.trace` and computes the unnormalized packed
    /// baseline into `self.packed`.
    fn process<T: RawSample>(&mut self, row: &[T]) -> Result<(), SignalError> {
        self.check_len(row.len())?;
        let n = self.n_samples;
        // Load and sum in two lanes; every value and partial sum is an integer below 2^53
        // (16-bit samples, a few thousand of them), so the sums are exact in any order.
        let mut sum = [0.0f64; 2];
        let mut sum_sq = [0.0f64; 2];
        for (dst, src) in self.trace.chunks_exact_mut(2).zip(row.chunks_exact(2)) {
            let (a, b) = (src[0].to_f64(), src[1].to_f64());
            dst[0] = a;
            dst[1] = b;
            sum[0] += a;
            sum[1] += b;
            sum_sq[0] += a * a;
            sum_sq[1] += b * b;
        }
        // Edge fix, and the same change in the sums (exact).
        let (first, last) = (self.trace[0], self.trace[n - 1]);
        let (second, before_last) = (self.trace[1], self.trace[n - 2]);
        self.trace[0] = second;
        self.trace[n - 1] = before_last;
        let sum = (sum[0] + sum[1]) + (second - first) + (before_last - last);
        let sum_sq = (sum_sq[0] + sum_sq[1])
            + (second * second - first * first)
            + (before_last * before_last - last * last);
        self.filter_loaded(sum, sum_sq);
        Ok(())
    }

    /// The masking and filtering steps on the already loaded, edge-fixed `self.trace`; leaves the
    /// unnormalized packed baseline in `self.packed`.
    fn filter_loaded(&mut self, sum: f64, sum_sq: f64) {
        let nf = self.n_samples as f64;
        let trace = &self.trace;

        let mean = sum / nf;
        let var = population_variance(trace, sum, sum_sq, mean);
        let threshold = var.sqrt() * 1.5;

        // One-sided mask `x - mean > 1.5 std`; the unmasked mean from the masked sum (exact).
        let masked = |v: f64| v - mean > threshold;
        let (masked_sum, masked_count) = selected_sum(trace, masked);
        let kept = self.n_samples - masked_count;
        // The row is an integer array: the assigned mean is truncated toward zero.
        let fill = if kept > 0 && masked_count > 0 {
            ((sum - masked_sum) / kept as f64).trunc()
        } else {
            0.0
        };

        // Pack the masked row: even samples in the real parts, odd samples in the imaginary parts.
        let pick = |v: f64| if masked(v) { fill } else { v };
        if masked_count > 0 {
            for (z, pair) in self.packed.iter_mut().zip(trace.chunks_exact(2)) {
                *z = Complex::new(pick(pair[0]), pick(pair[1]));
            }
        } else {
            for (z, pair) in self.packed.iter_mut().zip(trace.chunks_exact(2)) {
                *z = Complex::new(pair[0], pair[1]);
            }
        }

        self.forward
            .process_with_scratch(&mut self.packed, &mut self.scratch);
        self.apply_filter();
        self.inverse
            .process_with_scratch(&mut self.packed, &mut self.scratch);
    }

    /// Turns the half-length transform `Z` of the packed row into the half-length transform `Z'`
    /// whose inverse is the packed (unnormalized) baseline, in place (see [`pair_coefficients`]).
    fn apply_filter(&mut self) {
        let h = self.half;
        let fil = &self.filter;
        let z = &mut self.packed;
        let z0 = z[0];
        // Bins 0 and h of the real row's spectrum are real: Re Z0 + Im Z0 and Re Z0 - Im Z0.
        let y0 = (z0.re + z0.im) * fil[0];
        let yh = (z0.re - z0.im) * fil[h];
        z[0] = Complex::new(y0 + yh, y0 - yh);
        for (k, &[p, q, r]) in (1..=h / 2).zip(&self.coefficients) {
            let a = z[k];
            // b = conj(Z[h-k])
            let (b_re, b_im) = (z[h - k].re, -z[h - k].im);
            // Z'[k] = p A + i r B; Z'[h-k] = conj(-i r A + q B).
            z[k] = Complex::new(p * a.re - r * b_im, p * a.im + r * b_re);
            if k != h - k {
                z[h - k] = Complex::new(r * a.im + q * b_re, r * a.re - q * b_im);
            }
        }
    }
}

/// The linear map of one bin pair `(k, h-k)` (`h = n/2`, `f1 = fil[k]`, `f2 = fil[h-k]`,
/// `theta = 2 pi k / n`, `w = exp(-i theta)`) from `(A, B) = (Z[k], conj(Z[h-k]))` to
/// `(Z'[k], conj(Z'[h-k]))`, returned as `[p, q, r]` with `Z'[k] = p A + i r B` and
/// `conj(Z'[h-k]) = -i r A + q B`.
///
/// Derivation: the spectrum of the real row is `X[k] = S + w D` and `X[h-k] = conj(S - w D)`
/// with `S = (A + B) / 2`, `D = (A - B) / 2i`; the filtered bins are `Y = fil X`; the inverse
/// packing is `Z'[k] = E + i O`, `conj(Z'[h-k]) = E - i O` with `E = Y[k] + conj(Y[h-k])` and
/// `O = (Y[k] - conj(Y[h-k])) conj(w)`. With `s = f1 + f2` and `d = f1 - f2` this gives
/// `Z'[k] = (s - d sin theta) A + i d cos theta B` and
/// `conj(Z'[h-k]) = -i d cos theta A + (s + d sin theta) B`.
fn pair_coefficients(f1: f64, f2: f64, theta: f64) -> [f64; 3] {
    let (s, d) = (f1 + f2, f1 - f2);
    [s - d * theta.sin(), s + d * theta.sin(), d * theta.cos()]
}

/// Lane-parallel sum and sum of squares. Exact for integer-valued data below 2^53.
#[inline]
fn sums(values: &[f64]) -> (f64, f64) {
    let mut a = [0.0f64; 4];
    let mut b = [0.0f64; 4];
    let mut chunks = values.chunks_exact(4);
    for c in &mut chunks {
        for l in 0..4 {
            a[l] += c[l];
            b[l] += c[l] * c[l];
        }
    }
    for &v in chunks.remainder() {
        a[0] += v;
        b[0] += v * v;
    }
    ((a[0] + a[1]) + (a[2] + a[3]), (b[0] + b[1]) + (b[2] + b[3]))
}

/// Lane-parallel sum and count of the values `select` picks. Exact for integer-valued data.
#[inline]
fn selected_sum(values: &[f64], select: impl Fn(f64) -> bool) -> (f64, usize) {
    let mut a = [0.0f64; 4];
    let mut c = [0u64; 4];
    let mut chunks = values.chunks_exact(4);
    for ch in &mut chunks {
        for l in 0..4 {
            let on = select(ch[l]);
            a[l] += if on { ch[l] } else { 0.0 };
            c[l] += u64::from(on);
        }
    }
    for &v in chunks.remainder() {
        if select(v) {
            a[0] += v;
            c[0] += 1;
        }
    }
    let count = (c[0] + c[1] + c[2] + c[3]) as usize;
    ((a[0] + a[1]) + (a[2] + a[3]), count)
}

/// Population variance with numba's semantics (sequential `f64` sum of squared deviations),
/// computed exactly from the integer sums when that provably gives the same bits.
fn population_variance(trace: &[f64], sum: f64, sum_sq: f64, mean: f64) -> f64 {
    let n = trace.len();
    let nf = n as f64;
    if n.is_power_of_two() && sum.abs() < 9.0e15 && sum_sq < 9.0e15 {
        // Exact: n·Σx² − (Σx)², an integer (both sums are exact integers).
        let n_i = n as i128;
        let num = n_i * (sum_sq as i128) - (sum as i128) * (sum as i128);
        // With n = 2^k, every squared deviation and every partial sum of them is a multiple of
        // 2^-2k no larger than the total num / 2^k; all are exactly representable when
        // num < 2^(53 - k), and the sequential sum then equals the exact total.
        let k = n.trailing_zeros();
        if (0..(1i128 << (53 - k))).contains(&num) {
            let ssd = num as f64 / nf;
            return ssd / nf;
        }
    }
    let mut ssd = 0.0f64;
    for &v in trace {
        let d = v - mean;
        ssd += d * d;
    }
    ssd / nf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward reference: full-length complex FFTs, as numpy does.
    fn reference(row: &[i16], scale: f64) -> (Vec<f64>, Vec<f64>) {
        let n = row.len();
        let mut t: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
        t[0] = t[1];
        t[n - 1] = t[n - 2];
        let mean = t.iter().sum::<f64>() / n as f64;
        let mut ssd = 0.0;
        for &v in &t {
            ssd += (v - mean) * (v - mean);
        }
        let std = (ssd / n as f64).sqrt();
        let mask: Vec<bool> = t.iter().map(|&v| v - mean > std * 1.5).collect();
        let (s, c) = t
            .iter()
            .zip(&mask)
            .filter(|(_, &m)| !m)
            .fold((0.0, 0usize), |(s, c), (&v, _)| (s + v, c + 1));
        let fill = (s / c as f64).trunc();
        let bases: Vec<f64> = t
            .iter()
            .zip(&mask)
            .map(|(&v, &m)| if m { fill } else { v })
            .collect();
        let mut buf: Vec<Complex<f64>> = bases.iter().map(|&v| Complex::new(v, 0.0)).collect();
        let mut planner = FftPlanner::new();
        planner.plan_fft_forward(n).process(&mut buf);
        for (k, z) in buf.iter_mut().enumerate() {
            let w = if k < n / 2 {
                k as f64
            } else {
                k as f64 - n as f64
            };
            *z *= numpy_sinc(w / scale);
        }
        planner.plan_fft_inverse(n).process(&mut buf);
        let baseline: Vec<f64> = buf.iter().map(|z| z.re / n as f64).collect();
        let out = t.iter().zip(&baseline).map(|(a, b)| a - b).collect();
        (baseline, out)
    }

    fn lcg_trace(seed: u64, n: usize) -> Vec<i16> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((s >> 33) % 11) as i16 - 5;
                let pulse = if (200..230).contains(&i) { 400 } else { 0 };
                60 + noise + pulse + (i / 64) as i16
            })
            .collect()
    }

    #[test]
    fn filter_matches_numpy_sinc_layout() {
        let r = BaselineRemover::new(512, 20.0).unwrap();
        let f = r.filter_half();
        assert_eq!(f.len(), 257);
        assert_eq!(f[0], 1.0);
        assert!(f[20].abs() < 1e-15, "first zero at bin 20");
        assert!((f[10] - 2.0 / PI).abs() < 1e-15);
        assert!((f[256] - numpy_sinc(-256.0 / 20.0)).abs() < 1e-18);
    }

    #[test]
    fn half_length_transform_matches_full_transform() {
        let mut r = BaselineRemover::new(512, 20.0).unwrap();
        for seed in 0..20 {
            let row = lcg_trace(seed, 512);
            let (want_base, want_out) = reference(&row, 20.0);
            let mut base = vec![0.0; 512];
            let mut out = vec![0.0; 512];
            r.baseline(&row, &mut base).unwrap();
            r.remove_f64(&row, &mut out).unwrap();
            for j in 0..512 {
                assert!((base[j] - want_base[j]).abs() < 1e-9, "seed {seed} j {j}");
                assert!((out[j] - want_out[j]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn constant_rows_give_exact_integer_output() {
        let mut r = BaselineRemover::new(512, 20.0).unwrap();
        let mut row = vec![57i16; 512];
        // A spike gets masked, so the masked copy is exactly constant.
        for v in &mut row[100..110] {
            *v = 157;
        }
        let mut out = vec![0i32; 512];
        r.remove(&row, &mut out).unwrap();
        assert_eq!(out[0], 0);
        assert_eq!(out[105], 100);
        assert!(out.iter().all(|&v| v == 0 || v == 100));
    }

    #[test]
    fn masked_fill_is_truncated_toward_zero() {
        // Negative values: the unmasked mean is negative and must be truncated toward zero.
        let mut row = vec![-3i16; 8];
        row[2] = -4;
        row[4] = 40;
        let mut r = BaselineRemover::new(8, 20.0).unwrap();
        let mut b = vec![0.0; 8];
        r.baseline(&row, &mut b).unwrap();
        // unmasked: seven values summing to -22 -> mean -3.142..., truncated to -3.
        let (want, _) = reference(&row, 20.0);
        for j in 0..8 {
            assert!((b[j] - want[j]).abs() < 1e-12);
        }
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(matches!(
            BaselineRemover::new(511, 20.0),
            Err(SignalError::InvalidSampleCount(511))
        ));
        assert!(matches!(
            BaselineRemover::new(512, 0.0),
            Err(SignalError::InvalidWindowScale(_))
        ));
        let mut r = BaselineRemover::new(512, 20.0).unwrap();
        let mut out = vec![0i32; 512];
        assert!(matches!(
            r.remove(&[0i16; 10], &mut out),
            Err(SignalError::LengthMismatch {
                expected: 512,
                got: 10
            })
        ));
    }

    #[test]
    fn exact_variance_matches_sequential_sum() {
        for seed in 0..50 {
            let row = lcg_trace(seed, 512);
            let t: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            let sum: f64 = t.iter().sum();
            let sum_sq: f64 = t.iter().map(|v| v * v).sum();
            let mean = sum / 512.0;
            let mut ssd = 0.0;
            for &v in &t {
                ssd += (v - mean) * (v - mean);
            }
            assert_eq!(
                population_variance(&t, sum, sum_sq, mean).to_bits(),
                (ssd / 512.0).to_bits()
            );
        }
    }

    #[test]
    fn rows_and_columns_agree_with_single_traces() {
        let n = 16;
        let mut r = BaselineRemover::new(n, 5.0).unwrap();
        let m = ndarray::Array2::from_shape_fn((n, 3), |(i, c)| {
            (100 + (i * 7 + c * 13) % 17 + if i == 8 { 200 } else { 0 }) as u16
        });
        let mut out = ndarray::Array2::<i32>::zeros((n, 3));
        r.remove_columns(m.view(), out.view_mut()).unwrap();
        let mut rows_out = ndarray::Array2::<i32>::zeros((3, n));
        let mt = m.t().to_owned();
        r.remove_rows(mt.view(), rows_out.view_mut()).unwrap();
        for c in 0..3 {
            let col: Vec<u16> = m.column(c).to_vec();
            let mut single = vec![0i32; n];
            r.remove(&col, &mut single).unwrap();
            assert_eq!(out.column(c).to_vec(), single);
            assert_eq!(rows_out.row(c).to_vec(), single);
        }
    }
}
