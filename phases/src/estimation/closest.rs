//! The point of a fitted circle closest to the beam axis, as Spyral finds it: among
//! [`CIRCLE_SAMPLES`] points sampled on the circle at `θ = linspace(0, 2π, 100000)` (2π
//! included), the one with the smallest `|xy|` (spec 3.3.1 and 3.3.2 step 7).
//!
//! Evaluating all 100000 samples costs a few milliseconds per cluster. This module returns
//! exactly the same sample (bit for bit, the same expression `c + cos(θ_i)·r` for the same `θ_i`)
//! while evaluating only a few of them: `|p(θ)|² = |c|² + r² + 2r(c·u(θ))` has a single minimum,
//! at `θ* = atan2(-cy, -cx)`, so the sampled minimum lies at one of the two samples around θ*.
//! The samples within [`WINDOW`] indices of θ* (with wrap-around, and with both ends of the
//! sampling, which are the same geometric point) are compared, smallest norm first, ties to the
//! lower index. When the circle is so degenerate that rounding could move the sampled minimum
//! further away (centre at the origin, zero or non-finite radius), all samples are scanned instead
//! (still without allocating). NaN centres or radii give a NaN point, as numpy's `argsort` does
//! (every norm is NaN, so sample 0 is chosen).
//!
//! One possible difference from numpy: Spyral takes `argsort(norms)[0]`, and numpy's default
//! sort is not stable, so when two samples have exactly the same norm it may return either;
//! here the lower index wins. Exact ties only occur between the two ends of the sampling (θ = 0
//! and θ = 2π, the same point to within one rounding) or for degenerate circles.

use std::f64::consts::PI;

/// Number of points Spyral samples on the circle (`generate_circle_points`).
pub const CIRCLE_SAMPLES: usize = 100_000;

/// Half-width, in samples, of the window evaluated around the analytic minimum.
pub const WINDOW: usize = 8;

/// Below this value of `r·|c| / (r + |c|)²` the norm varies too little around the circle for the
/// window to be safe, and every sample is evaluated.
const WELL_CONDITIONED: f64 = 1e-5;

/// `θ_i` of numpy's `linspace(0, 2π, CIRCLE_SAMPLES)`: `i·step` with `step = 2π / (n − 1)`, and
/// exactly 2π for the last sample.
#[inline]
fn theta(i: usize) -> f64 {
    if i == CIRCLE_SAMPLES - 1 {
        2.0 * PI
    } else {
        i as f64 * (2.0 * PI / (CIRCLE_SAMPLES - 1) as f64)
    }
}

/// Sample `i` of the circle and its distance to the axis (`np.linalg.norm(.., axis=1)`).
#[inline]
fn sample(cx: f64, cy: f64, r: f64, i: usize) -> (f64, f64, f64) {
    let t = theta(i);
    let x = cx + t.cos() * r;
    let y = cy + t.sin() * r;
    (x, y, (x * x + y * y).sqrt())
}

/// Keeps the best candidate: smallest norm, NaN never wins, ties go to the lower index.
#[derive(Debug, Clone, Copy)]
struct Best {
    index: usize,
    norm: f64,
    x: f64,
    y: f64,
}

impl Best {
    fn offer(best: &mut Option<Best>, cx: f64, cy: f64, r: f64, i: usize) {
        let (x, y, norm) = sample(cx, cy, r, i);
        if norm.is_nan() {
            return;
        }
        let better = match best {
            None => true,
            Some(b) => norm < b.norm || (norm == b.norm && i < b.index),
        };
        if better {
            *best = Some(Best {
                index: i,
                norm,
                x,
                y,
            });
        }
    }
}

/// The sampled circle point closest to the origin, by scanning every sample.
pub fn closest_point_full_scan(cx: f64, cy: f64, r: f64) -> (f64, f64) {
    let mut best = None;
    for i in 0..CIRCLE_SAMPLES {
        Best::offer(&mut best, cx, cy, r, i);
    }
    finish(best, cx, cy, r)
}

/// The sampled circle point closest to the origin (the same sample as scanning all
/// [`CIRCLE_SAMPLES`] points, see the module documentation).
pub fn closest_point(cx: f64, cy: f64, r: f64) -> (f64, f64) {
    if cx.is_nan() || cy.is_nan() || r.is_nan() {
        let (x, y, _) = sample(cx, cy, r, 0);
        return (x, y);
    }
    let d = (cx * cx + cy * cy).sqrt();
    let scale = (r.abs() + d) * (r.abs() + d);
    let conditioned = r.is_finite()
        && d.is_finite()
        && scale.is_finite()
        && scale > 0.0
        && r.abs() * d / scale > WELL_CONDITIONED;
    if !conditioned {
        return closest_point_full_scan(cx, cy, r);
    }
    // The direction from the centre towards the origin (away from it for a negative radius).
    let mut target = if r > 0.0 {
        (-cy).atan2(-cx)
    } else {
        cy.atan2(cx)
    };
    if target < 0.0 {
        target += 2.0 * PI;
    }
    let period = (CIRCLE_SAMPLES - 1) as f64;
    let step = 2.0 * PI / period;
    // Nearest sample index, in 0..=n-1 (n-1 and 0 are the same angle).
    let centre = ((target / step).round() as usize).min(CIRCLE_SAMPLES - 1);
    let ring = CIRCLE_SAMPLES - 1;
    let mut best = None;
    for k in 0..=2 * WINDOW {
        // centre + k - WINDOW, modulo the ring of n-1 distinct angles.
        let i = (centre + ring + k - WINDOW) % ring;
        Best::offer(&mut best, cx, cy, r, i);
        if i == 0 {
            // θ = 0 and θ = 2π are both sampled.
            Best::offer(&mut best, cx, cy, r, CIRCLE_SAMPLES - 1);
        }
    }
    finish(best, cx, cy, r)
}

fn finish(best: Option<Best>, cx: f64, cy: f64, r: f64) -> (f64, f64) {
    match best {
        Some(b) => (b.x, b.y),
        None => {
            let (x, y, _) = sample(cx, cy, r, 0);
            (x, y)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    fn check(cx: f64, cy: f64, r: f64) {
        let fast = closest_point(cx, cy, r);
        let full = closest_point_full_scan(cx, cy, r);
        assert!(
            fast.0.to_bits() == full.0.to_bits() && fast.1.to_bits() == full.1.to_bits(),
            "circle ({cx}, {cy}, {r}): window {fast:?} != full scan {full:?}"
        );
    }

    #[test]
    fn same_sample_as_the_full_scan() {
        let mut rng = Pcg64::seed_from_u64(7);
        for _ in 0..60 {
            // Realistic: circles passing near the beam axis.
            let r: f64 = rng.random_range(5.0..300.0);
            let phi: f64 = rng.random_range(0.0..2.0 * PI);
            let d = r + rng.random_range(-30.0..30.0);
            check(d * phi.cos(), d * phi.sin(), r);
        }
        for _ in 0..30 {
            // Anything.
            let r: f64 = rng.random_range(1e-3..1e3);
            check(
                rng.random_range(-500.0..500.0),
                rng.random_range(-500.0..500.0),
                r,
            );
        }
    }

    #[test]
    fn edge_cases() {
        // Minimum at θ = 0 / 2π (the two ends of the sampling) and at θ = π.
        check(-50.0, 0.0, 40.0);
        check(-50.0, 1e-12, 40.0);
        check(-50.0, -1e-12, 40.0);
        check(50.0, 0.0, 40.0);
        // Through the origin exactly.
        check(30.0, 40.0, 50.0);
        // Degenerate: centre at the origin, zero radius, negative radius.
        check(0.0, 0.0, 10.0);
        check(3.0, 4.0, 0.0);
        check(3.0, 4.0, -2.0);
        // NaN: sample 0 (every norm is NaN).
        let (x, y) = closest_point(f64::NAN, 1.0, 2.0);
        assert!(x.is_nan() && y == 1.0);
        let (x, _) = closest_point(1.0, 1.0, f64::NAN);
        assert!(x.is_nan());
    }

    #[test]
    fn full_scan_agrees_with_the_shared_circle_sampling() {
        for (cx, cy, r) in [
            (80.0, -60.0, 95.0),
            (-3.5, 120.25, 118.0),
            (0.5, 0.25, 40.0),
        ] {
            let (xs, ys) = crate::fit::circle::circle_points(cx, cy, r, CIRCLE_SAMPLES);
            let mut best = 0;
            let mut best_norm = f64::INFINITY;
            for (i, (x, y)) in xs.iter().zip(&ys).enumerate() {
                let n = (x * x + y * y).sqrt();
                if n < best_norm {
                    best = i;
                    best_norm = n;
                }
            }
            let (x, y) = closest_point_full_scan(cx, cy, r);
            assert_eq!(
                (x.to_bits(), y.to_bits()),
                (xs[best].to_bits(), ys[best].to_bits())
            );
            assert_eq!(closest_point(cx, cy, r), (x, y));
        }
    }

    #[test]
    fn analytic_answer_within_sampling_resolution() {
        let (cx, cy, r) = (80.0, -60.0, 95.0);
        let (x, y) = closest_point(cx, cy, r);
        let d = (cx * cx + cy * cy).sqrt();
        let (ax, ay) = (cx - r * cx / d, cy - r * cy / d);
        let res = r * 2.0 * PI / (CIRCLE_SAMPLES - 1) as f64;
        assert!(((x - ax).powi(2) + (y - ay).powi(2)).sqrt() <= res);
    }
}
