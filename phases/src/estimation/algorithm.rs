//! The estimation algorithm for one cluster (spec 3.3.2, Spyral's `estimate_physics` and
//! `estimate_physics_pass`): smoothing splines, vertex guess, first arc, circle fit, closest
//! point to the beam axis, rho-vs-z regression, beam-region and direction checks, angles,
//! magnetic rigidity and energy loss.
//!
//! Every step follows the Python original in order and in its floating-point expressions, so
//! results agree to rounding (the tests compare with golden values made by numpy and scipy).
//! A cluster that Spyral would skip gives a [`Rejection`] saying at which step.

use super::closest::closest_point;
use super::linregress::{linregress, LinRegressError};
use crate::fit::circle::least_squares_circle;
use crate::fit::spline::SmoothingSpline;
use ndarray::ArrayView2;
use std::f64::consts::PI;

/// Radius of the small-pad region in mm: charge is summed until the first arc leaves it.
pub const SMALL_PAD_RADIUS: f64 = 152.0;
/// Number of z samples of the spline curve used for the arc length.
pub const ARC_SAMPLES: usize = 1000;
/// Minimum number of points of the rho-vs-z regression.
pub const MIN_REGRESSION_POINTS: usize = 10;

/// Direction of a trajectory along z (the Cluster phase decides it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Undecided (-1): such clusters are not estimated.
    None,
    /// Travelling towards +z (0).
    Forward,
    /// Travelling towards -z (1).
    Backward,
}

impl Direction {
    /// The stored value: -1, 0 or 1.
    pub fn value(self) -> i64 {
        match self {
            Direction::None => -1,
            Direction::Forward => 0,
            Direction::Backward => 1,
        }
    }

    /// The direction stored as `v`, if `v` is -1, 0 or 1.
    pub fn from_value(v: i64) -> Option<Direction> {
        match v {
            -1 => Some(Direction::None),
            0 => Some(Direction::Forward),
            1 => Some(Direction::Backward),
            _ => None,
        }
    }
}

/// The estimation parameters (Spyral's EstimateParameters plus the two detector parameters the
/// algorithm uses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimateParams {
    /// Clusters with fewer points are skipped.
    pub min_total_trajectory_points: usize,
    /// λ of the smoothing splines.
    pub smoothing_factor: f64,
    /// Magnetic field in tesla.
    pub magnetic_field: f64,
    /// Vertices further than this from the beam axis (mm) are rejected.
    pub beam_region_radius: f64,
}

/// The physics estimate of one cluster. Lengths in mm, angles in radians.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Reaction vertex (x, y, z).
    pub vertex: [f64; 3],
    /// Centre of the fitted circle (x, y) and the vertex z.
    pub center: [f64; 3],
    /// Radius of the fitted circle (mm).
    pub radius: f64,
    /// Polar angle (radians, in (π/2, 3π/2) for backward trajectories).
    pub polar: f64,
    /// Azimuthal angle (radians, in [0, 2π]).
    pub azimuthal: f64,
    /// Magnetic rigidity in T·m (0 when it would be NaN).
    pub brho: f64,
    /// Charge per unit length along the first arc.
    pub dedx: f64,
    /// `sqrt(|dEdx|)`.
    pub sqrt_dedx: f64,
    /// Charge summed along the first arc.
    pub de: f64,
    /// Length of the first arc (spline curve).
    pub arclength: f64,
    /// The direction used.
    pub direction: Direction,
}

/// Why a cluster got no estimate (Spyral returns None at these points).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// The cloud has fewer than 4 columns.
    #[error("the cloud has {0} columns, expected at least 4")]
    BadShape(usize),
    /// Fewer points than `min_total_trajectory_points`.
    #[error("{points} points, fewer than the minimum {min}")]
    TooFewPoints {
        /// Points of the cluster.
        points: usize,
        /// The minimum.
        min: usize,
    },
    /// A smoothing spline could not be made (fewer than 5 points, z not strictly increasing).
    #[error("spline creation failed: {0}")]
    Spline(String),
    /// The cluster's direction is NONE.
    #[error("the cluster has no direction")]
    NoDirection,
    /// The rho-vs-z regression failed (cannot happen after a successful spline).
    #[error("regression failed: {0}")]
    Regression(#[from] LinRegressError),
    /// The rho-vs-z slope is exactly 0.
    #[error("the rho-vs-z slope is 0")]
    ZeroSlope,
    /// The vertex is outside the beam region.
    #[error("vertex {rho} mm from the beam axis")]
    OutsideBeamRegion {
        /// Distance of the vertex from the axis (mm).
        rho: f64,
    },
    /// The polar angle contradicts the direction.
    #[error("polar angle {polar} contradicts direction {direction:?}")]
    DirectionMismatch {
        /// atan(slope).
        polar: f64,
        /// The cluster's direction.
        direction: Direction,
    },
    /// No charge was added along the first arc.
    #[error("no charge along the first arc")]
    NoCharge,
}

impl Rejection {
    /// A short stable name for counting rejections.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::BadShape(_) => "bad_shape",
            Rejection::TooFewPoints { .. } => "too_few_points",
            Rejection::Spline(_) => "spline",
            Rejection::NoDirection => "no_direction",
            Rejection::Regression(_) => "regression",
            Rejection::ZeroSlope => "zero_slope",
            Rejection::OutsideBeamRegion { .. } => "outside_beam_region",
            Rejection::DirectionMismatch { .. } => "direction_mismatch",
            Rejection::NoCharge => "no_charge",
        }
    }
}

/// Reusable buffers for estimating many clusters without allocating per cluster.
#[derive(Debug, Default)]
pub struct Estimator {
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
    c: Vec<f64>,
    rho: Vec<f64>,
}

/// numpy's `argmax`: the first maximum, or the first NaN if there is one. 0 for an empty slice.
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &a) in v.iter().enumerate() {
        if a.is_nan() {
            return i;
        }
        if a > v[best] {
            best = i;
        }
    }
    best
}

/// numpy's `linspace(start, stop, n)` value `i`: `i·step + start`, exactly `stop` last.
#[inline]
fn linspace_at(start: f64, stop: f64, n: usize, i: usize) -> f64 {
    if i + 1 == n {
        return stop;
    }
    let div = (n - 1) as f64;
    let step = (stop - start) / div;
    if step == 0.0 {
        (i as f64 / div) * (stop - start) + start
    } else {
        i as f64 * step + start
    }
}

impl Estimator {
    /// A new estimator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Estimates the physics of one cluster: `cloud` is (N, >= 4) = x, y, z, integral (sorted
    /// by increasing z, as the Cluster phase writes it), `direction` the cluster's direction.
    pub fn estimate(
        &mut self,
        cloud: ArrayView2<'_, f64>,
        direction: Direction,
        params: &EstimateParams,
    ) -> Result<Estimate, Rejection> {
        if cloud.ncols() < 4 {
            return Err(Rejection::BadShape(cloud.ncols()));
        }
        // Step 1.
        let n = cloud.nrows();
        if n < params.min_total_trajectory_points {
            return Err(Rejection::TooFewPoints {
                points: n,
                min: params.min_total_trajectory_points,
            });
        }
        // Step 2: splines of x, y and charge against z; the data replaced by their values.
        for (buf, col) in [
            (&mut self.x, 0),
            (&mut self.y, 1),
            (&mut self.z, 2),
            (&mut self.c, 3),
        ] {
            buf.clear();
            buf.extend(cloud.column(col).iter().copied());
        }
        let lam = params.smoothing_factor;
        let spline = |v: &[f64], z: &[f64]| {
            SmoothingSpline::fit(z, v, lam).map_err(|e| Rejection::Spline(e.to_string()))
        };
        let x_spline = spline(&self.x, &self.z)?;
        let y_spline = spline(&self.y, &self.z)?;
        let c_spline = spline(&self.c, &self.z)?;
        for i in 0..n {
            let zi = self.z[i];
            self.x[i] = x_spline.eval(zi);
            self.y[i] = y_spline.eval(zi);
            self.c[i] = c_spline.eval(zi);
        }
        // Step 3.
        match direction {
            Direction::None => return Err(Rejection::NoDirection),
            Direction::Backward => {
                self.x.reverse();
                self.y.reverse();
                self.z.reverse();
                self.c.reverse();
            }
            Direction::Forward => {}
        }
        let (x, y, z, c) = (&self.x, &self.y, &self.z, &self.c);
        // Step 4: the first point is the vertex guess.
        let mut vertex = [x[0], y[0], z[0]];
        // Step 5: the first arc ends before the point furthest (in rho) from the vertex.
        self.rho.clear();
        self.rho.extend((1..n).map(|i| {
            let dx = x[i] - vertex[0];
            let dy = y[i] - vertex[1];
            (dx * dx + dy * dy).sqrt()
        }));
        let m = argmax(&self.rho);
        // Step 6.
        let circle = least_squares_circle(&x[..=m], &y[..=m]);
        let (cx, cy, radius) = (circle.cx, circle.cy, circle.radius);
        // Step 7: the circle point closest to the beam axis becomes the vertex.
        let (vx, vy) = closest_point(cx, cy, radius);
        vertex[0] = vx;
        vertex[1] = vy;
        // Step 8: first arc again, over all rows.
        self.rho.clear();
        self.rho.extend((0..n).map(|i| {
            let dx = x[i] - vertex[0];
            let dy = y[i] - vertex[1];
            (dx * dx + dy * dy).sqrt()
        }));
        let m = argmax(&self.rho);
        let arc_len = m + 1;
        // Step 9: rho against z over the start of the track.
        let test_index = MIN_REGRESSION_POINTS.max(m / 2).min(n);
        let fit = linregress(&z[..test_index], &self.rho[..test_index])?;
        let vertex_rho = (vertex[0] * vertex[0] + vertex[1] * vertex[1]).sqrt();
        if fit.slope == 0.0 {
            return Err(Rejection::ZeroSlope);
        }
        vertex[2] = -fit.intercept / fit.slope;
        let center = [cx, cy, vertex[2]];
        // Step 10 (NaN passes, as in Python).
        if vertex_rho > params.beam_region_radius {
            return Err(Rejection::OutsideBeamRegion { rho: vertex_rho });
        }
        // Step 11.
        let mut polar = fit.slope.atan();
        if (polar > 0.0 && direction == Direction::Backward)
            || (polar < 0.0 && direction == Direction::Forward)
        {
            return Err(Rejection::DirectionMismatch { polar, direction });
        } else if direction == Direction::Backward {
            polar += PI;
        }
        // Step 12.
        let mut azimuthal = (vertex[1] - center[1]).atan2(vertex[0] - center[0]);
        if azimuthal < 0.0 {
            azimuthal += 2.0 * PI;
        }
        azimuthal += PI * 0.5;
        if azimuthal > PI * 2.0 {
            azimuthal -= 2.0 * PI;
        }
        // Step 13.
        let mut brho = params.magnetic_field * radius * 0.001 / polar.sin().abs();
        if brho.is_nan() {
            brho = 0.0;
        }
        // Step 14: charge over the first arc until it leaves the small pads.
        let mut charge = c[0];
        let mut cutoff = arc_len - 1;
        for i in 0..arc_len - 1 {
            let (xn, yn) = (x[i + 1], y[i + 1]);
            if (xn * xn + yn * yn).sqrt() > SMALL_PAD_RADIUS {
                cutoff = i + 1;
                break;
            }
            charge += c[i + 1];
        }
        if charge == c[0] {
            return Err(Rejection::NoCharge);
        }
        let (z_start, z_stop) = (z[0], z[cutoff]);
        let mut arclength = 0.0;
        let mut prev = [x_spline.eval(z_start), y_spline.eval(z_start), z_start];
        for i in 1..ARC_SAMPLES {
            let zi = linspace_at(z_start, z_stop, ARC_SAMPLES, i);
            let p = [x_spline.eval(zi), y_spline.eval(zi), zi];
            let (dx, dy, dz) = (p[0] - prev[0], p[1] - prev[1], p[2] - prev[2]);
            arclength += (dx * dx + dy * dy + dz * dz).sqrt();
            prev = p;
        }
        let dedx = charge / arclength;
        Ok(Estimate {
            vertex,
            center,
            radius,
            polar,
            azimuthal,
            brho,
            dedx,
            sqrt_dedx: dedx.abs().sqrt(),
            de: charge,
            arclength,
            direction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_is_numpy_like() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[1.0, f64::NAN, 5.0]), 1);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn linspace_matches_numpy() {
        // numpy.linspace(2.0, 7.5, 1000)[[0, 1, 500, 998, 999]]
        let v: Vec<f64> = [0, 1, 500, 998, 999]
            .iter()
            .map(|&i| linspace_at(2.0, 7.5, 1000, i))
            .collect();
        assert_eq!(v[0], 2.0);
        assert_eq!(v[4], 7.5);
        assert_eq!(v[1], 1.0 * (5.5 / 999.0) + 2.0);
        assert_eq!(v[2], 500.0 * (5.5 / 999.0) + 2.0);
        // Decreasing ranges (backward tracks) work the same way.
        assert_eq!(linspace_at(7.5, 2.0, 1000, 999), 2.0);
    }

    #[test]
    fn direction_values() {
        for d in [Direction::None, Direction::Forward, Direction::Backward] {
            assert_eq!(Direction::from_value(d.value()), Some(d));
        }
        assert_eq!(Direction::from_value(2), None);
    }
}
