//! `scipy.signal.find_peaks` for the options Spyral uses, and Spyral's peak records (spec §3.1.2,
//! §1.8).
//!
//! [`PeakFinder::find`] reproduces scipy's steps in scipy's order:
//!
//! 1. local maxima: a run of equal samples with a strictly smaller sample on both sides and not
//!    touching either end of the trace; the reported index is the middle of the run, rounded down;
//! 2. `distance`: peaks are visited from the highest to the lowest and every still-kept peak
//!    removes the peaks closer than `ceil(distance)` samples;
//! 3. prominence with `wlen=None`: from the peak, walk outward on each side while samples are `<=`
//!    the peak, the base is the first position of the minimum reached; the prominence is the peak
//!    minus the higher of the two minima; then the `prominence` interval filter (inclusive);
//! 4. widths at `peak - prominence * rel_height`, with the crossing positions linearly
//!    interpolated between samples exactly as scipy's `_peak_widths`, then the `width` interval
//!    filter (inclusive).
//!
//! Arithmetic is done in `f64` with the operations scipy uses, so the properties are bit-identical
//! to scipy's for the same input.
//!
//! **Ties in the distance step.** scipy orders the peaks by height with numpy's default
//! `argsort` (`np.argsort(x[peaks])`, kind `'quicksort'`) and visits them from the end of that
//! order, so between equal heights the one numpy sorts later wins. numpy's default sort is not
//! stable and its tie order is a property of the numpy build and the CPU: on x86-64, numpy 2.x
//! dispatches float64 `argsort` to x86-simd-sort, which on CPUs with AVX-512 sorts arrays of up to
//! 256 elements with a bitonic network over 8-lane vectors and longer ones by vector quicksort
//! partitions down to such networks (with libstdc++'s `std::sort` past a depth limit). Python
//! Spyral 1.1.2 needs numpy < 2.2 (through spyral-utils), so it runs numpy 2.0 or 2.1, whose
//! AVX-512 argsort is the same. That argsort is reproduced exactly
//! ([`crate::numpy_sort`], shared with HDBSCAN; checked against numpy 2.1.3 on 60 000 random arrays of up to 2100 keys
//! full of ties, and through `find_peaks` on 20 000 traces). There is no simpler rule: the order
//! of equal keys depends on how many local maxima the trace has and on all their heights, not
//! only on the tied ones. With numpy 2.1.3 on AVX-512 (`phases/tests/fixtures/peak_ties/`): 2 or
//! 3 keys sort stably (the later peak wins); for two equal keys among n distinct others, the
//! earlier one is sorted last (and wins) in 11% of arrangements at n = 4, 33% at n = 16, about
//! 46% from n = 64 on (a trace's noise gives 100 to 250 local maxima). On 4000 simulated traces
//! with saturated or equal-height pulses the tie order decided Spyral's peaks on 164; "later
//! wins" gets 66 of the first 160 of those wrong and "earlier wins" 98. On x86-64 CPUs without
//! AVX-512 numpy uses a 4-lane AVX2 network whose tie order differs again; that is not
//! reproduced (nor are numpy >= 2.3, which returns already-sorted input unchanged, and non-x86
//! builds).
//!
//! The exact order is only needed when it matters: the distance step first runs without sorting
//! (the highest local maximum of a sample range is kept, its neighbours within the distance are
//! dropped, and the two remaining sides are independent sub-problems), and falls back to scipy's
//! sorted pass with the reproduced argsort as soon as a kept maximum has an equal-height
//! maximum within the distance. Without such a pair every tie order gives the same peaks.
//!
//! Integer samples (`i16`, `u16`, `i32`) are processed as `i32`, others as `f64`; comparisons give
//! the same answers as on scipy's `f64` copy.
//!
//! [`get_peaks`] and [`frib_peaks`] turn the found peaks into Spyral [`Peak`]s.

// scipy's loops are written as `!(x <= peak)` and `!(min < peak)` so that NaN behaves as in C;
// the negated comparisons on `PartialOrd` samples are deliberate.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use super::SignalError;
use crate::numpy_sort::numpy_argsort;

mod sealed {
    pub trait Sealed {}
    impl Sealed for i16 {}
    impl Sealed for u16 {}
    impl Sealed for i32 {}
    impl Sealed for u32 {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A sample type the peak finder accepts. Conversion to `f64` is exact and order-preserving for
/// all of them, so comparing natively is the same as comparing the `f64` values scipy uses.
pub trait PeakSample: Copy + PartialOrd + sealed::Sealed {
    /// Whether every value converts exactly to `i32` (then the finder works on `i32`).
    #[doc(hidden)]
    const EXACT_I32: bool;

    /// The sample as `f64` (exact).
    fn to_f64(self) -> f64;

    /// The sample as `i32`; exact when [`EXACT_I32`](Self::EXACT_I32) holds, otherwise unused.
    #[doc(hidden)]
    fn to_i32(self) -> i32;
}

macro_rules! peak_sample {
    ($exact:expr; $($t:ty),*) => {
        $(impl PeakSample for $t {
            const EXACT_I32: bool = $exact;

            #[inline]
            fn to_f64(self) -> f64 {
                f64::from(self)
            }

            #[inline]
            fn to_i32(self) -> i32 {
                self as i32
            }
        })*
    };
}
peak_sample!(true; i16, u16, i32);
peak_sample!(false; u32, f32, f64);

/// The representation the finder works on: `i32` for integer samples, `f64` otherwise (the
/// comparisons are the same as scipy's on the `f64` conversion).
trait Work: PeakSample {
    /// A value below every local maximum (a maximum always has a smaller neighbour).
    const BELOW_ALL: Self;

    /// The candidate buffer of this type.
    fn candidates(buffers: &mut CandidateBuffers) -> &mut Vec<Self>;
}

impl Work for i32 {
    const BELOW_ALL: Self = i32::MIN;

    fn candidates(buffers: &mut CandidateBuffers) -> &mut Vec<Self> {
        &mut buffers.i32
    }
}

impl Work for f64 {
    const BELOW_ALL: Self = f64::NEG_INFINITY;

    fn candidates(buffers: &mut CandidateBuffers) -> &mut Vec<Self> {
        &mut buffers.f64
    }
}

/// Per-sample candidate values (see [`Scratch::split_select`]), one buffer per work type.
#[derive(Debug, Clone, Default)]
struct CandidateBuffers {
    i32: Vec<i32>,
    f64: Vec<f64>,
}

/// A closed interval condition, as scipy's `(min, max)` tuples; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Interval {
    /// Inclusive lower bound.
    pub min: Option<f64>,
    /// Inclusive upper bound.
    pub max: Option<f64>,
}

impl Interval {
    /// `[min, inf)`, what scipy makes of a single number.
    pub fn at_least(min: f64) -> Self {
        Self {
            min: Some(min),
            max: None,
        }
    }

    /// `[min, max]`.
    pub fn between(min: f64, max: f64) -> Self {
        Self {
            min: Some(min),
            max: Some(max),
        }
    }

    /// scipy's `_select_by_property`: `min <= value and value <= max` (false for NaN).
    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|m| m <= value) && self.max.is_none_or(|m| value <= m)
    }
}

/// The `find_peaks` options supported here (`height`, `threshold`, `plateau_size` and `wlen` are
/// not: Spyral does not use them, and `wlen` is always `None`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FindPeaksParams {
    /// Minimal horizontal distance between peaks, `>= 1` (scipy uses `ceil(distance)`).
    pub distance: Option<f64>,
    /// Prominence condition.
    pub prominence: Option<Interval>,
    /// Width condition.
    pub width: Option<Interval>,
    /// Relative height at which the width is measured (scipy's default is 0.5).
    pub rel_height: f64,
}

impl Default for FindPeaksParams {
    fn default() -> Self {
        Self {
            distance: None,
            prominence: None,
            width: None,
            rel_height: 0.5,
        }
    }
}

impl FindPeaksParams {
    /// Spyral's GET call: `distance=peak_separation, prominence=peak_prominence,
    /// width=(1.0, peak_max_width), rel_height=0.95`.
    pub fn spyral_get(peak_separation: f64, peak_prominence: f64, peak_max_width: f64) -> Self {
        Self {
            distance: Some(peak_separation),
            prominence: Some(Interval::at_least(peak_prominence)),
            width: Some(Interval::between(1.0, peak_max_width)),
            rel_height: 0.95,
        }
    }

    /// Spyral's FRIBDAQ call: `distance=peak_separation, prominence=peak_prominence,
    /// width=(0, peak_max_width), rel_height=0.85`.
    pub fn spyral_frib(peak_separation: f64, peak_prominence: f64, peak_max_width: f64) -> Self {
        Self {
            distance: Some(peak_separation),
            prominence: Some(Interval::at_least(peak_prominence)),
            width: Some(Interval::between(0.0, peak_max_width)),
            rel_height: 0.85,
        }
    }

    /// Checks the arguments scipy would reject (`distance < 1`, `rel_height < 0`); a non-finite
    /// distance is rejected too.
    pub fn validate(&self) -> Result<(), SignalError> {
        if let Some(d) = self.distance {
            if !(d >= 1.0 && d.is_finite()) {
                return Err(SignalError::InvalidDistance(d));
            }
        }
        if self.rel_height < 0.0 {
            return Err(SignalError::InvalidRelHeight(self.rel_height));
        }
        Ok(())
    }
}

/// One peak returned by [`PeakFinder::find`], with scipy's properties.
///
/// The prominence and width properties are always computed (scipy computes them only when the
/// `prominence`/`width` options are set; the selected peaks are the same).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoundPeak {
    /// Sample index of the peak.
    pub index: usize,
    /// `prominences`.
    pub prominence: f64,
    /// `left_bases`.
    pub left_base: usize,
    /// `right_bases`.
    pub right_base: usize,
    /// `widths`.
    pub width: f64,
    /// `width_heights`.
    pub width_height: f64,
    /// `left_ips`.
    pub left_ips: f64,
    /// `right_ips`.
    pub right_ips: f64,
}

/// Work bound (`n * (n / d + 1)` sample visits) above which the distance step sorts the local
/// maxima (as scipy does) instead of splitting sample ranges.
const SPLIT_WORK_LIMIT: usize = 1 << 22;

/// Reusable `find_peaks` state: keeps its buffers between calls so the hot loop does not allocate.
#[derive(Debug, Clone, Default)]
pub struct PeakFinder {
    /// The trace as `i32` (integer inputs) or `f64` (as scipy converts it).
    xi: Vec<i32>,
    xf: Vec<f64>,
    scratch: Scratch,
    found: Vec<FoundPeak>,
}

/// The finder's working buffers.
#[derive(Debug, Clone, Default)]
struct Scratch {
    /// Lower bound on the heights of the returned peaks (applied after the distance step);
    /// None: no bound.
    min_height: Option<f64>,
    maxima: Vec<usize>,
    starts: Vec<u8>,
    candidates: CandidateBuffers,
    heights: Vec<f64>,
    keep: Vec<bool>,
    ranges: Vec<(usize, usize)>,
    order: Vec<usize>,
}

impl PeakFinder {
    /// An empty finder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The peaks of the last successful [`find`](Self::find).
    pub fn peaks(&self) -> &[FoundPeak] {
        &self.found
    }

    /// The peaks of [`find`](Self::find) that are at least `min_height` high (not scipy's
    /// `height` option, which would change the distance step's tie order: here the order is the
    /// one of all local maxima, as in Spyral's call).
    ///
    /// For a caller that keeps only peaks above a threshold `t` anyway (Spyral's
    /// `amplitude > peak_threshold`), `min_height = t` returns exactly the peaks above `t` that
    /// [`find`](Self::find) returns: a lower peak never removes a higher one in the distance step,
    /// and prominence and width depend only on the signal. It skips the work on the many small
    /// noise maxima.
    pub fn find_above(
        &mut self,
        x: &[i32],
        params: &FindPeaksParams,
        min_height: f64,
    ) -> Result<&[FoundPeak], SignalError> {
        params.validate()?;
        self.found.clear();
        // Most noise-only traces never reach the bound: nothing to search.
        let top = x.iter().copied().max().unwrap_or(i32::MIN);
        if f64::from(top) < min_height {
            return Ok(&self.found);
        }
        self.scratch.min_height = Some(min_height);
        self.scratch.run(x, params, &mut self.found);
        self.scratch.min_height = None;
        Ok(&self.found)
    }

    /// Runs `find_peaks(x, **params)` and returns the selected peaks in increasing index order.
    pub fn find<T: PeakSample>(
        &mut self,
        x: &[T],
        params: &FindPeaksParams,
    ) -> Result<&[FoundPeak], SignalError> {
        params.validate()?;
        self.found.clear();
        self.scratch.min_height = None;
        if T::EXACT_I32 {
            self.xi.clear();
            self.xi.extend(x.iter().map(|v| v.to_i32()));
            self.scratch.run(&self.xi, params, &mut self.found);
        } else {
            self.xf.clear();
            self.xf.extend(x.iter().map(|v| v.to_f64()));
            self.scratch.run(&self.xf, params, &mut self.found);
        }
        Ok(&self.found)
    }
}

impl Scratch {
    fn run<W: Work>(&mut self, x: &[W], params: &FindPeaksParams, found: &mut Vec<FoundPeak>) {
        match params.distance {
            Some(distance) => {
                // Peak positions are integers: scipy compares with the rounded-up distance
                // (validated >= 1 and finite).
                let d = distance.ceil() as usize;
                let n = x.len();
                let split =
                    n.saturating_mul(n / d + 1) <= SPLIT_WORK_LIMIT && self.split_select(x, d);
                if !split {
                    // Competing equal heights (or a very long trace): scipy's sorted pass with
                    // numpy's order, on all local maxima.
                    local_maxima(x, &mut self.maxima);
                    self.sort_select(x, d);
                    self.apply_min_height(x);
                }
            }
            None => {
                local_maxima(x, &mut self.maxima);
                self.apply_min_height(x);
            }
        }
        for &peak in &self.maxima {
            if let Some(p) = evaluate_peak(x, peak, params) {
                found.push(p);
            }
        }
    }

    /// Drops the local maxima below the height bound, if any.
    fn apply_min_height<W: Work>(&mut self, x: &[W]) {
        if let Some(h) = self.min_height {
            self.maxima.retain(|&p| x[p].to_f64() >= h);
        }
    }

    /// Distance selection without listing the local maxima: `candidates[i]` is `x[i]` at a local
    /// maximum (plateau midpoints included) and [`Work::BELOW_ALL`] elsewhere. The highest
    /// candidate of a sample range (the last one if several) is kept, the candidates closer
    /// than `d` to it are dropped, and the two remaining sides are solved independently. This is
    /// the same as scipy's highest-first pass, because a dropped peak never removes anything and
    /// two candidates on different sides are at least `2d` apart, as long as the kept candidate
    /// has no equal candidate closer than `d` (then the winner depends on numpy's tie order).
    /// Returns false on the first such tie (ranges below the height bound do not count);
    /// otherwise leaves the kept positions, sorted, in `self.maxima` and returns true.
    fn split_select<W: Work>(&mut self, x: &[W], d: usize) -> bool {
        self.maxima.clear();
        let n = x.len();
        if n < 3 {
            return true;
        }
        let candidates = W::candidates(&mut self.candidates);
        fill_candidates(x, candidates, &mut self.starts);
        let (maxima, ranges) = (&mut self.maxima, &mut self.ranges);
        ranges.clear();
        ranges.push((1, n - 1));
        while let Some((lo, hi)) = ranges.pop() {
            if lo >= hi {
                continue;
            }
            let range = &candidates[lo..hi];
            let top = range
                .iter()
                .fold(W::BELOW_ALL, |m, &v| if v > m { v } else { m });
            if !(top > W::BELOW_ALL) || self.min_height.is_some_and(|h| top.to_f64() < h) {
                // Nothing left, or only maxima under the height bound (the top is the highest).
                continue;
            }
            let peak = lo + last_position(range, top);
            // The candidates after `peak` in the range are lower; an equal one before it and
            // closer than `d` competes with it.
            let reach = (peak + 1).saturating_sub(d).max(lo);
            if candidates[reach..peak].contains(&top) {
                return false;
            }
            maxima.push(peak);
            ranges.push((lo, reach));
            ranges.push((peak.saturating_add(d).min(hi), hi));
        }
        maxima.sort_unstable();
        true
    }

    /// Distance selection as scipy writes it (priorities ordered by numpy's `argsort`, visited
    /// from the last) on the local maxima in `self.maxima`.
    fn sort_select<W: Work>(&mut self, x: &[W], d: usize) {
        let n = self.maxima.len();
        self.heights.clear();
        self.heights
            .extend(self.maxima.iter().map(|&i| x[i].to_f64()));
        self.keep.clear();
        self.keep.resize(n, true);
        numpy_argsort(&self.heights, &mut self.order);
        let (peaks, keep) = (&self.maxima, &mut self.keep);
        for &j in self.order.iter().rev() {
            if !keep[j] {
                continue;
            }
            let mut k = j;
            while k > 0 && peaks[j] - peaks[k - 1] < d {
                keep[k - 1] = false;
                k -= 1;
            }
            let mut k = j + 1;
            while k < n && peaks[k] - peaks[j] < d {
                keep[k] = false;
                k += 1;
            }
        }
        let mut i = 0;
        self.maxima.retain(|_| {
            let k = keep[i];
            i += 1;
            k
        });
    }
}

/// `candidates[i] = x[i]` where a local maximum is reported (single-sample maxima and plateau
/// midpoints), [`Work::BELOW_ALL`] elsewhere. `x.len() >= 3`.
fn fill_candidates<W: Work>(x: &[W], candidates: &mut Vec<W>, starts: &mut Vec<u8>) {
    let n = x.len();
    let i_max = n - 1;
    candidates.clear();
    candidates.resize(n, W::BELOW_ALL);
    starts.clear();
    starts.resize(n.div_ceil(8) * 8, 0);
    // One-sample maxima, and plateau starts (a rise into a pair of equal samples); vectorizable.
    for ((((dst, start), &a), &b), &c) in candidates[1..i_max]
        .iter_mut()
        .zip(&mut starts[1..i_max])
        .zip(&x[..i_max - 1])
        .zip(&x[1..i_max])
        .zip(&x[2..])
    {
        let rise = a < b;
        *dst = if rise & (c < b) { b } else { W::BELOW_ALL };
        *start = u8::from(rise & (c == b));
    }
    // Plateaus (rare): eight start flags per word, resolve the set ones.
    for (g, chunk) in starts.chunks_exact(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let mut word = u64::from_le_bytes(bytes);
        while word != 0 {
            let i = g * 8 + (word.trailing_zeros() / 8) as usize;
            word &= word - 1;
            let c = x[i];
            let mut ahead = i + 1;
            while ahead < i_max && x[ahead] == c {
                ahead += 1;
            }
            if x[ahead] < c {
                let mid = (i + ahead - 1) / 2;
                candidates[mid] = c;
            }
        }
    }
}

/// Position of the last occurrence of `value` in `values` (which contains it), searched block
/// by block from the end.
#[inline]
fn last_position<W: Work>(values: &[W], value: W) -> usize {
    let mut end = values.len();
    while end > BLOCK {
        match block_at(values, end - BLOCK) {
            Some(block) if !contains(block, value) => end -= BLOCK,
            _ => break,
        }
    }
    values[..end].iter().rposition(|&v| v == value).unwrap_or(0)
}

/// scipy's `_local_maxima_1d`: midpoints (rounded down) of the local maxima, into `out`.
///
/// A maximum is a run of equal samples whose left and right neighbours are both smaller; a run
/// touching either end of `x` is not a maximum. (The scipy loop, as written; with a `distance`,
/// [`PeakFinder`] does not list the maxima at all.)
pub fn local_maxima<T: PeakSample>(x: &[T], out: &mut Vec<usize>) {
    out.clear();
    let i_max = x.len().saturating_sub(1);
    let mut i = 1;
    while i < i_max {
        if x[i - 1] < x[i] {
            let mut ahead = i + 1;
            while ahead < i_max && x[ahead] == x[i] {
                ahead += 1;
            }
            if x[ahead] < x[i] {
                out.push((i + ahead - 1) / 2);
                i = ahead;
            }
        }
        i += 1;
    }
}

/// Samples per block in the vectorizable scans.
const BLOCK: usize = 8;

/// Whether any sample of `block` stops a walk from a peak of height `top` (`!(v <= top)`, which
/// is also true for NaN, as in scipy's loop condition).
#[inline]
fn any_above<W: Work>(block: &[W; BLOCK], top: W) -> bool {
    block.iter().fold(false, |acc, &v| acc | !(v <= top))
}

/// Whether `block` contains `value`.
#[inline]
fn contains<W: Work>(block: &[W; BLOCK], value: W) -> bool {
    block.iter().fold(false, |acc, &v| acc | (v == value))
}

/// The `BLOCK` samples starting at `start`, if they are all inside `x`.
#[inline]
fn block_at<W: Work>(x: &[W], start: usize) -> Option<&[W; BLOCK]> {
    x.get(start..start + BLOCK)
        .and_then(|b| <&[W; BLOCK]>::try_from(b).ok())
}

/// Minimum of `values` and `init` (no NaN in `values`: they are all `<=` a peak).
#[inline]
fn min_of<W: Work>(values: &[W], init: W) -> W {
    values.iter().fold(init, |m, &v| if v < m { v } else { m })
}

/// scipy's left walk from `peak`: move left while samples are `<= top`; returns the minimum
/// reached and its first position on the way (its rightmost occurrence), `(top, peak)` if nothing
/// lower is reached.
#[inline]
fn walk_left<W: Work>(x: &[W], peak: usize, top: W) -> (W, usize) {
    // The walked region [lo, peak] ends before the nearest sample that stops the walk; whole
    // blocks first.
    let mut lo = peak + 1;
    while let Some(block) = lo.checked_sub(BLOCK).and_then(|s| block_at(x, s)) {
        if any_above(block, top) {
            break;
        }
        lo -= BLOCK;
    }
    while lo > 0 && x[lo - 1] <= top {
        lo -= 1;
    }
    let region = &x[lo..=peak];
    let min = min_of(region, top);
    if !(min < top) {
        return (top, peak);
    }
    // Rightmost occurrence of the minimum, block by block from the peak.
    let mut end = region.len();
    while end > BLOCK {
        match block_at(region, end - BLOCK) {
            Some(block) if !contains(block, min) => end -= BLOCK,
            _ => break,
        }
    }
    let j = region[..end].iter().rposition(|&v| v == min).unwrap_or(0);
    (min, lo + j)
}

/// scipy's right walk from `peak` (mirror of [`walk_left`]): the minimum reached and its
/// leftmost occurrence.
#[inline]
fn walk_right<W: Work>(x: &[W], peak: usize, top: W) -> (W, usize) {
    let n = x.len();
    let mut hi = peak;
    while let Some(block) = block_at(x, hi) {
        if any_above(block, top) {
            break;
        }
        hi += BLOCK;
    }
    while hi < n && x[hi] <= top {
        hi += 1;
    }
    let region = &x[peak..hi];
    let min = min_of(region, top);
    if !(min < top) {
        return (top, peak);
    }
    let mut start = 0;
    while start + BLOCK < region.len() {
        match block_at(region, start) {
            Some(block) if !contains(block, min) => start += BLOCK,
            _ => break,
        }
    }
    let j = region[start..]
        .iter()
        .position(|&v| v == min)
        .map_or(0, |j| start + j);
    (min, peak + j)
}

/// Prominence, widths and the two interval filters for one peak; `None` if it is filtered out.
fn evaluate_peak<W: Work>(x: &[W], peak: usize, params: &FindPeaksParams) -> Option<FoundPeak> {
    let top = x[peak];
    let top_f = top.to_f64();

    let (left_min, left_base) = walk_left(x, peak, top);
    if let Some(pmin) = params.prominence.and_then(|p| p.min) {
        // prominence = top - max(left_min, right_min) <= top - left_min: reject early.
        if !(pmin <= top_f - left_min.to_f64()) {
            return None;
        }
    }
    let (right_min, right_base) = walk_right(x, peak, top);
    let base_level = if left_min > right_min {
        left_min
    } else {
        right_min
    };
    let prominence = top_f - base_level.to_f64();
    if let Some(p) = params.prominence {
        if !p.contains(prominence) {
            return None;
        }
    }

    // Widths (scipy's `_peak_widths`).
    let height = top_f - prominence * params.rel_height;
    let mut i = peak;
    while left_base < i && height < x[i].to_f64() {
        i -= 1;
    }
    let mut left_ips = i as f64;
    let xi = x[i].to_f64();
    if xi < height && i < peak {
        let next = x[i + 1].to_f64();
        if next != xi {
            left_ips += (height - xi) / (next - xi);
        }
    }
    let mut i = peak;
    while i < right_base && height < x[i].to_f64() {
        i += 1;
    }
    let mut right_ips = i as f64;
    let xi = x[i].to_f64();
    if xi < height && i > peak {
        let prev = x[i - 1].to_f64();
        if prev != xi {
            right_ips -= (height - xi) / (prev - xi);
        }
    }
    let width = right_ips - left_ips;
    if let Some(w) = params.width {
        if !w.contains(width) {
            return None;
        }
    }
    Some(FoundPeak {
        index: peak,
        prominence,
        left_base,
        right_base,
        width,
        width_height: height,
        left_ips,
        right_ips,
    })
}

/// A Spyral `Peak` (spec §3.1.2); `uncorrected_amplitude`, always 0 in Spyral, is left out.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Peak {
    /// Peak position in time buckets (GET: index + jitter; FRIB: the integer index).
    pub centroid: f64,
    /// `trace[index]`.
    pub amplitude: f64,
    /// `floor(left_ips)`.
    pub positive_inflection: i64,
    /// `ceil(right_ips)`.
    pub negative_inflection: i64,
    /// `sum(|trace[floor(left_ips) .. ceil(right_ips)]|)` (end exclusive), as `i64`.
    pub integral: i64,
}

impl Peak {
    /// Builds the Spyral record of `found` on `trace`, with the given centroid.
    pub fn from_found(trace: &[i32], found: &FoundPeak, centroid: f64) -> Self {
        let positive_inflection = found.left_ips.floor() as i64;
        let negative_inflection = found.right_ips.ceil() as i64;
        let start = usize::try_from(positive_inflection)
            .unwrap_or(0)
            .min(trace.len());
        let stop = usize::try_from(negative_inflection)
            .unwrap_or(0)
            .clamp(start, trace.len());
        let integral = trace[start..stop].iter().map(|&v| i64::from(v).abs()).sum();
        Self {
            centroid,
            amplitude: trace.get(found.index).map_or(0.0, |&v| f64::from(v)),
            positive_inflection,
            negative_inflection,
            integral,
        }
    }
}

/// Spyral's GET peak finding on one baseline-removed trace (spec §3.1.2).
///
/// Runs `find_peaks` with `params` (normally [`FindPeaksParams::spyral_get`]), then for every
/// found peak, in index order, calls `jitter` once (Spyral draws one `rng.random()` per found peak,
/// including the ones the threshold rejects) and sets `centroid = index + jitter()`; Spyral's smear
/// is `jitter = || u / 1000.0` with `u` uniform in `[0, 1)`. Peaks with `amplitude > threshold`
/// are written to `out` (cleared first). The pad-id check (`pad != -1`) is the caller's.
pub fn get_peaks(
    finder: &mut PeakFinder,
    trace: &[i32],
    params: &FindPeaksParams,
    threshold: f64,
    mut jitter: impl FnMut() -> f64,
    out: &mut Vec<Peak>,
) -> Result<(), SignalError> {
    let found = finder.find(trace, params)?;
    keep_above(trace, found, threshold, &mut jitter, out);
    Ok(())
}

/// Builds the `Peak` of every found peak (calling `jitter` once each, in index order) and keeps
/// those with `amplitude > threshold` in `out` (cleared first).
fn keep_above(
    trace: &[i32],
    found: &[FoundPeak],
    threshold: f64,
    jitter: &mut impl FnMut() -> f64,
    out: &mut Vec<Peak>,
) {
    out.clear();
    for f in found {
        let peak = Peak::from_found(trace, f, f.index as f64 + jitter());
        if peak.amplitude > threshold {
            out.push(peak);
        }
    }
}

/// [`get_peaks`] for callers that do not need Spyral's random-draw count: the same peaks above
/// `threshold` (see [`PeakFinder::find_above`]), found faster, with `jitter` called once per
/// peak at or above the threshold only.
pub fn get_peaks_above(
    finder: &mut PeakFinder,
    trace: &[i32],
    params: &FindPeaksParams,
    threshold: f64,
    mut jitter: impl FnMut() -> f64,
    out: &mut Vec<Peak>,
) -> Result<(), SignalError> {
    let found = finder.find_above(trace, params, threshold)?;
    keep_above(trace, found, threshold, &mut jitter, out);
    Ok(())
}

/// Spyral's FRIBDAQ peak finding on one baseline-removed column (spec §1.8): `params` normally
/// [`FindPeaksParams::spyral_frib`], centroid = the integer index, kept if
/// `amplitude > threshold`. `out` is cleared first.
pub fn frib_peaks(
    finder: &mut PeakFinder,
    trace: &[i32],
    params: &FindPeaksParams,
    threshold: f64,
    out: &mut Vec<Peak>,
) -> Result<(), SignalError> {
    out.clear();
    // No random draws here, so only the peaks above the threshold are needed.
    for found in finder.find_above(trace, params, threshold)? {
        let peak = Peak::from_found(trace, found, found.index as f64);
        if peak.amplitude > threshold {
            out.push(peak);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maxima(x: &[f64]) -> Vec<usize> {
        let mut out = Vec::new();
        local_maxima(x, &mut out);
        out
    }

    fn find(x: &[f64], params: &FindPeaksParams) -> Vec<FoundPeak> {
        PeakFinder::new().find(x, params).unwrap().to_vec()
    }

    fn indices(x: &[f64], params: &FindPeaksParams) -> Vec<usize> {
        find(x, params).iter().map(|p| p.index).collect()
    }

    #[test]
    fn plateau_midpoint_rounds_down() {
        assert_eq!(maxima(&[0., 1., 1., 0.]), vec![1]);
        assert_eq!(maxima(&[0., 1., 1., 1., 0.]), vec![2]);
        assert_eq!(maxima(&[0., 2., 2., 2., 2., 1.]), vec![2]);
        // A plateau touching an end, or followed by a rise, is not a maximum.
        assert!(maxima(&[0., 1., 1., 1.]).is_empty());
        assert!(maxima(&[1., 1., 0.]).is_empty());
        assert_eq!(maxima(&[0., 1., 1., 2., 0.]), vec![3]);
        // Single samples.
        assert_eq!(maxima(&[0., 3., 0., 3., 1., 1., 4., 0.]), vec![1, 3, 6]);
        assert!(maxima(&[1., 2.]).is_empty());
        // NaN is never a maximum and breaks plateaus.
        assert_eq!(maxima(&[0., f64::NAN, 0., 2., 0.]), vec![3]);
    }

    #[test]
    fn distance_keeps_highest_and_orders_ties_as_numpy() {
        let p = FindPeaksParams {
            distance: Some(3.0),
            ..Default::default()
        };
        // scipy issue #22906's example: scipy gives [3, 7, 11] (numpy sorts six equal keys
        // stably).
        let x = [0., 1., 0., 1., 0., 1., 0., 1., 0., 1., 0., 1., 0.];
        assert_eq!(indices(&x, &p), vec![3, 7, 11]);
        // Heights 1, 1, 3, 3, 1, 1: numpy 2.1 (AVX-512) sorts them [0, 1, 5, 4, 3, 2], so the
        // earlier 3 wins and scipy gives [1, 5, 9] (a stable order would give [3, 7, 11]).
        let x = [0., 1., 0., 1., 0., 3., 0., 3., 0., 1., 0., 1., 0.];
        assert_eq!(indices(&x, &p), vec![1, 5, 9]);
        let mut order = Vec::new();
        numpy_argsort(&[1., 1., 3., 3., 1., 1.], &mut order);
        assert_eq!(order, vec![0, 1, 5, 4, 3, 2]);
        // Highest first: 5 removes 3 and 7 (distance 2 < 3), 1 and 9 survive.
        let x = [0., 1., 0., 2., 0., 3., 0., 2., 0., 1., 0.];
        assert_eq!(indices(&x, &p), vec![1, 5, 9]);
        // A removed peak does not remove others.
        let x = [0., 3., 0., 2., 0., 1., 0.];
        assert_eq!(indices(&x, &p), vec![1, 5]);
        // Non-integer distance is rounded up: 2.5 -> 3.
        let p25 = FindPeaksParams {
            distance: Some(2.5),
            ..Default::default()
        };
        assert_eq!(indices(&[0., 1., 0., 2., 0.], &p25), vec![3]);
    }

    #[test]
    fn split_and_sort_selection_agree() {
        let mut s = 12345u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        let mut scratch = Scratch::default();
        let (mut split_ok, mut ties) = (0, 0);
        for round in 0..300 {
            let n = 20 + (next() % 400) as usize;
            let levels = 1 + next() % 6;
            let xi: Vec<i32> = (0..n).map(|_| (next() % levels) as i32).collect();
            // Non-integer heights for the f64 path.
            let xf: Vec<f64> = xi.iter().map(|&v| f64::from(v) * 0.37).collect();
            for d in [1usize, 2, 3, 5, 9, 50] {
                let done = scratch.split_select(&xi, d);
                let split = scratch.maxima.clone();
                assert_eq!(
                    scratch.split_select(&xf, d),
                    done,
                    "f64 round {round} d {d}"
                );
                if done {
                    assert_eq!(split, scratch.maxima, "f64 round {round} d {d}");
                    local_maxima(&xi, &mut scratch.maxima);
                    scratch.sort_select(&xi, d);
                    assert_eq!(split, scratch.maxima, "round {round} d {d}");
                    split_ok += 1;
                } else {
                    ties += 1;
                }
            }
        }
        // Both outcomes are exercised.
        assert!(split_ok > 100 && ties > 100, "{split_ok} {ties}");
    }

    /// A literal transcription of scipy's `find_peaks` steps (with the reproduced numpy order),
    /// for comparison.
    fn reference(x: &[f64], p: &FindPeaksParams) -> Vec<FoundPeak> {
        let mut peaks = Vec::new();
        local_maxima(x, &mut peaks);
        if let Some(distance) = p.distance {
            let d = distance.ceil() as usize;
            let heights: Vec<f64> = peaks.iter().map(|&p| x[p]).collect();
            let mut order = Vec::new();
            numpy_argsort(&heights, &mut order);
            let mut keep = vec![true; peaks.len()];
            for &j in order.iter().rev() {
                if !keep[j] {
                    continue;
                }
                for k in 0..peaks.len() {
                    if k != j && peaks[k].abs_diff(peaks[j]) < d {
                        keep[k] = false;
                    }
                }
            }
            peaks = peaks
                .iter()
                .zip(&keep)
                .filter(|(_, &k)| k)
                .map(|(&i, _)| i)
                .collect();
        }
        let mut out = Vec::new();
        for &peak in &peaks {
            let top = x[peak];
            let (mut lm, mut lb, mut i) = (top, peak, peak as isize);
            while i >= 0 && x[i as usize] <= top {
                if x[i as usize] < lm {
                    lm = x[i as usize];
                    lb = i as usize;
                }
                i -= 1;
            }
            let (mut rm, mut rb, mut i) = (top, peak, peak);
            while i < x.len() && x[i] <= top {
                if x[i] < rm {
                    rm = x[i];
                    rb = i;
                }
                i += 1;
            }
            let prominence = top - if lm > rm { lm } else { rm };
            if !p.prominence.is_none_or(|iv| iv.contains(prominence)) {
                continue;
            }
            let height = top - prominence * p.rel_height;
            let mut i = peak;
            while lb < i && height < x[i] {
                i -= 1;
            }
            let mut left_ips = i as f64;
            if x[i] < height && x[i + 1] != x[i] {
                left_ips += (height - x[i]) / (x[i + 1] - x[i]);
            }
            let mut i = peak;
            while i < rb && height < x[i] {
                i += 1;
            }
            let mut right_ips = i as f64;
            if x[i] < height && x[i - 1] != x[i] {
                right_ips -= (height - x[i]) / (x[i - 1] - x[i]);
            }
            let width = right_ips - left_ips;
            if !p.width.is_none_or(|iv| iv.contains(width)) {
                continue;
            }
            out.push(FoundPeak {
                index: peak,
                prominence,
                left_base: lb,
                right_base: rb,
                width,
                width_height: height,
                left_ips,
                right_ips,
            });
        }
        out
    }

    #[test]
    fn matches_reference_on_random_traces() {
        let mut s = 987654321u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        let mut finder = PeakFinder::new();
        let param_sets = [
            FindPeaksParams::spyral_get(50.0, 20.0, 50.0),
            FindPeaksParams::spyral_frib(50.0, 20.0, 500.0),
            FindPeaksParams {
                distance: Some(2.5),
                prominence: Some(Interval::between(1.0, 30.0)),
                width: Some(Interval::between(0.5, 9.0)),
                rel_height: 0.3,
            },
            FindPeaksParams::default(),
        ];
        for round in 0..1500 {
            let n = (next() % 300) as usize;
            let levels = 1 + next() % 60;
            let xi: Vec<i32> = (0..n).map(|_| (next() % levels) as i32 - 20).collect();
            let mut xf: Vec<f64> = xi.iter().map(|&v| f64::from(v) * 0.75 + 0.1).collect();
            if round % 7 == 0 && n > 4 {
                xf[(next() as usize) % n] = f64::NAN;
            }
            for p in &param_sets {
                let want = reference(&xi.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), p);
                assert_eq!(finder.find(&xi, p).unwrap(), &want[..], "i32 round {round}");
                let want = reference(&xf, p);
                let got = finder.find(&xf, p).unwrap();
                assert_eq!(got.len(), want.len(), "f64 round {round}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(
                        (g.index, g.left_base, g.right_base),
                        (w.index, w.left_base, w.right_base)
                    );
                    for (a, b) in [
                        (g.prominence, w.prominence),
                        (g.width, w.width),
                        (g.left_ips, w.left_ips),
                        (g.right_ips, w.right_ips),
                    ] {
                        assert!(a.to_bits() == b.to_bits(), "f64 round {round}: {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn prominence_bases() {
        let p = FindPeaksParams {
            prominence: Some(Interval::default()),
            ..Default::default()
        };
        let found = find(&[0., 2., 1., 3., 0.], &p);
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].prominence, found[0].left_base, found[0].right_base),
            (1.0, 0, 2)
        );
        assert_eq!(
            (found[1].prominence, found[1].left_base, found[1].right_base),
            (3.0, 0, 4)
        );
        // Equal samples do not stop the walk; the base is the minimum nearest to the peak.
        let found = find(&[1., 0., 5., 0., 3., 5., 7., 2., 2.], &p);
        let first = found[0];
        assert_eq!(first.index, 2);
        assert_eq!((first.left_base, first.right_base), (1, 3));
        assert_eq!(first.prominence, 5.0);
        assert_eq!((found[1].index, found[1].left_base), (6, 3));
        assert_eq!(found[1].right_base, 7);
        assert_eq!(found[1].prominence, 5.0);
        // Prominence filter is inclusive.
        let p5 = FindPeaksParams {
            prominence: Some(Interval::at_least(5.0)),
            ..Default::default()
        };
        assert_eq!(
            indices(&[1., 0., 5., 0., 3., 5., 7., 2., 2.], &p5),
            vec![2, 6]
        );
        let p6 = FindPeaksParams {
            prominence: Some(Interval::at_least(5.5)),
            ..Default::default()
        };
        assert!(indices(&[1., 0., 5., 0., 3., 5., 7., 2., 2.], &p6).is_empty());
    }

    #[test]
    fn width_interpolation() {
        let p = FindPeaksParams {
            width: Some(Interval::default()),
            ..Default::default()
        };
        let f = find(&[0., 10., 0.], &p)[0];
        assert_eq!(
            (f.width_height, f.left_ips, f.right_ips, f.width),
            (5.0, 0.5, 1.5, 1.0)
        );
        // Asymmetric peak, rel_height 0.95 as in Spyral: height = 20 - 20 * 0.95.
        let p = FindPeaksParams {
            width: Some(Interval::default()),
            rel_height: 0.95,
            ..Default::default()
        };
        let f = find(&[0., 4., 20., 12., 8., 0.], &p)[0];
        let h = 20.0 - 20.0 * 0.95;
        assert_eq!(f.width_height, h);
        assert_eq!(f.left_ips, 0.0 + (h - 0.0) / (4.0 - 0.0));
        assert_eq!(f.right_ips, 5.0 - (h - 0.0) / (8.0 - 0.0));
        assert_eq!(f.width, f.right_ips - f.left_ips);
        // A crossing exactly on a sample is not interpolated.
        let p = FindPeaksParams {
            width: Some(Interval::default()),
            ..Default::default()
        };
        let f = find(&[0., 5., 10., 5., 0.], &p)[0];
        assert_eq!((f.left_ips, f.right_ips), (1.0, 3.0));
        // Width filter bounds are inclusive.
        let w = |min, max| FindPeaksParams {
            width: Some(Interval::between(min, max)),
            ..Default::default()
        };
        assert_eq!(indices(&[0., 5., 10., 5., 0.], &w(2.0, 2.0)), vec![2]);
        assert!(indices(&[0., 5., 10., 5., 0.], &w(2.5, 3.0)).is_empty());
    }

    #[test]
    fn spyral_peak_records() {
        let mut trace = vec![0i32; 40];
        for (i, v) in [(10, 30), (11, 80), (12, 100), (13, 60), (14, 10), (15, -5)] {
            trace[i] = v;
        }
        let mut finder = PeakFinder::new();
        let params = FindPeaksParams::spyral_get(50.0, 20.0, 50.0);
        let mut out = Vec::new();
        let mut draws = 0;
        get_peaks(
            &mut finder,
            &trace,
            &params,
            40.0,
            || {
                draws += 1;
                0.25
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(draws, 1);
        assert_eq!(out.len(), 1);
        let p = out[0];
        let f = finder.peaks()[0];
        assert_eq!(p.centroid, 12.25);
        assert_eq!(p.amplitude, 100.0);
        assert_eq!(p.positive_inflection, f.left_ips.floor() as i64);
        assert_eq!(p.negative_inflection, f.right_ips.ceil() as i64);
        let (a, b) = (
            p.positive_inflection as usize,
            p.negative_inflection as usize,
        );
        let want: i64 = trace[a..b].iter().map(|&v| i64::from(v.abs())).sum();
        assert_eq!(p.integral, want);

        // The threshold is strict and still consumes a draw.
        draws = 0;
        get_peaks(
            &mut finder,
            &trace,
            &params,
            100.0,
            || {
                draws += 1;
                0.0
            },
            &mut out,
        )
        .unwrap();
        assert_eq!((draws, out.len()), (1, 0));

        frib_peaks(
            &mut finder,
            &trace,
            &FindPeaksParams::spyral_frib(50.0, 20.0, 500.0),
            40.0,
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].centroid, 12.0);
    }

    #[test]
    fn rejects_invalid_parameters() {
        let mut f = PeakFinder::new();
        let bad = FindPeaksParams {
            distance: Some(0.5),
            ..Default::default()
        };
        assert_eq!(
            f.find(&[0i32, 1, 0], &bad).unwrap_err(),
            SignalError::InvalidDistance(0.5)
        );
        let bad = FindPeaksParams {
            rel_height: -1.0,
            ..Default::default()
        };
        assert!(matches!(
            f.find(&[0i32, 1, 0], &bad),
            Err(SignalError::InvalidRelHeight(_))
        ));
        // A huge distance keeps only the highest peak (numpy sorts [3, 5, 5, 1] as [3, 0, 1, 2]).
        let far = FindPeaksParams {
            distance: Some(1e300),
            ..Default::default()
        };
        let x = [0i32, 3, 0, 5, 0, 5, 0, 1, 0];
        assert_eq!(f.find(&x, &far).unwrap().len(), 1);
        assert_eq!(f.peaks()[0].index, 5);
        // Degenerate inputs.
        assert!(f
            .find::<i32>(&[], &FindPeaksParams::default())
            .unwrap()
            .is_empty());
        assert!(f
            .find(&[5i32, 5], &FindPeaksParams::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn find_above_equals_find_then_threshold() {
        // Noisy traces with pulses: the peaks above the threshold must be identical.
        let params = FindPeaksParams::spyral_get(50.0, 20.0, 50.0);
        let mut state: u64 = 0x1234_5678;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        let (mut a, mut b) = (PeakFinder::new(), PeakFinder::new());
        for t in 0..400 {
            let mut x = vec![0i32; 512];
            for v in x.iter_mut() {
                *v = ((next() - 0.5) * 30.0) as i32;
            }
            for _ in 0..(t % 4) {
                let c = (next() * 512.0) as usize;
                let amp = next() * 300.0;
                for (i, v) in x.iter_mut().enumerate() {
                    let d = (i as f64 - c as f64) / 6.0;
                    *v += (amp * (-d * d).exp()) as i32;
                }
            }
            for threshold in [0.0, 15.0, 40.0, 100.0] {
                let all: Vec<FoundPeak> = a
                    .find(&x, &params)
                    .unwrap()
                    .iter()
                    .filter(|p| f64::from(x[p.index]) > threshold)
                    .copied()
                    .collect();
                let above: Vec<FoundPeak> = b
                    .find_above(&x, &params, threshold)
                    .unwrap()
                    .iter()
                    .filter(|p| f64::from(x[p.index]) > threshold)
                    .copied()
                    .collect();
                assert_eq!(all, above, "trace {t}, threshold {threshold}");
            }
        }
    }
}
