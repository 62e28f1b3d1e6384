//! The analytic least-squares circle fit ("scipy cookbook", spyral-spec section 3.3.1) and
//! sampling of points on a circle (`generate_circle_points`).
//!
//! The fit centres the points on their mean (u = x - x̄, v = y - ȳ), solves
//! `[[Suu, Suv], [Suv, Svv]] c = ½ [Suuu + Suvv, Suuv + Svvv]`, and reports the centre `c + mean`,
//! the radius as the mean distance to the centre and the residual `Σ (r_i - r̄)²`. A singular
//! system (numpy's `LinAlgError`) gives a circle whose fields are all NaN.
//!
//! Sums are sequential and cubes use `pow`, like Spyral's numba-compiled original, so that
//! results agree to the last bits even for nearly straight tracks, where the system is badly
//! conditioned.

/// A fitted circle. All fields are NaN when the fit was singular (or had no points).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Circle {
    /// Centre x.
    pub cx: f64,
    /// Centre y.
    pub cy: f64,
    /// Mean distance of the points to the centre.
    pub radius: f64,
    /// Sum of squared deviations of the point distances from `radius`.
    pub residual: f64,
}

impl Circle {
    /// The all-NaN circle returned by a singular fit.
    pub const NAN: Circle = Circle {
        cx: f64::NAN,
        cy: f64::NAN,
        radius: f64::NAN,
        residual: f64::NAN,
    };

    /// True when the fit succeeded (all fields finite).
    pub fn is_finite(&self) -> bool {
        self.cx.is_finite() && self.cy.is_finite() && self.radius.is_finite()
    }
}

/// Least-squares circle through the points `(x[i], y[i])` (spec 3.3.1).
///
/// Uses the first `min(x.len(), y.len())` points. Returns [`Circle::NAN`] when the normal
/// matrix is exactly singular (as `numpy.linalg.solve` raising) or there are no points.
pub fn least_squares_circle(x: &[f64], y: &[f64]) -> Circle {
    let n = x.len().min(y.len());
    if n == 0 {
        return Circle::NAN;
    }
    let (x, y) = (&x[..n], &y[..n]);
    let nf = n as f64;
    let mx = x.iter().sum::<f64>() / nf;
    let my = y.iter().sum::<f64>() / nf;
    let (mut suu, mut suv, mut svv) = (0.0, 0.0, 0.0);
    let (mut suuu, mut suvv, mut suuv, mut svvv) = (0.0, 0.0, 0.0, 0.0);
    for (&xi, &yi) in x.iter().zip(y) {
        let u = xi - mx;
        let v = yi - my;
        let (uu, vv) = (u * u, v * v);
        suu += uu;
        suv += u * v;
        svv += vv;
        // Spyral's numba kernel computes `u**3.0` with libm's pow.
        suuu += u.powf(3.0);
        suvv += u * vv;
        suuv += uu * v;
        svvv += v.powf(3.0);
    }
    let b0 = 0.5 * (suuu + suvv);
    let b1 = 0.5 * (svvv + suuv);
    let Some((c0, c1)) = solve2(suu, suv, suv, svv, b0, b1) else {
        return Circle::NAN;
    };
    let cx = c0 + mx;
    let cy = c1 + my;
    let dist = |xi: f64, yi: f64| ((xi - cx) * (xi - cx) + (yi - cy) * (yi - cy)).sqrt();
    let radius = x.iter().zip(y).map(|(&a, &b)| dist(a, b)).sum::<f64>() / nf;
    let residual = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| {
            let d = dist(a, b) - radius;
            d * d
        })
        .sum::<f64>();
    Circle {
        cx,
        cy,
        radius,
        residual,
    }
}

/// Solves the 2x2 system `[[a, b], [c, d]] x = [e, f]` by LU with partial pivoting, in the
/// operation order of the OpenBLAS `dgesv` behind numpy and numba on x86-64 (multiplier by the
/// pivot's reciprocal, fused multiply-adds in the triangular solves), so that even badly
/// conditioned systems give the same bits; `None` when a pivot is exactly zero (numpy's
/// `LinAlgError`).
fn solve2(a: f64, b: f64, c: f64, d: f64, e: f64, f: f64) -> Option<(f64, f64)> {
    // Row swap when |c| > |a| (LAPACK picks the first maximal pivot).
    let (a, b, c, d, e, f) = if c.abs() > a.abs() {
        (c, d, a, b, f, e)
    } else {
        (a, b, c, d, e, f)
    };
    if a == 0.0 {
        return None;
    }
    let l = c * (1.0 / a);
    let u22 = d - l * b;
    if u22 == 0.0 {
        return None;
    }
    let y2 = (-e).mul_add(l, f);
    let x2 = y2 / u22;
    let x1 = (-x2).mul_add(b, e) / a;
    Some((x1, x2))
}

/// `n` points on the circle of centre `(cx, cy)` and radius `r`, at angles
/// `numpy.linspace(0, 2π, n)` (both ends included).
pub fn circle_points(cx: f64, cy: f64, r: f64, n: usize) -> (Vec<f64>, Vec<f64>) {
    let theta = linspace(0.0, std::f64::consts::TAU, n);
    let xs = theta.iter().map(|t| cx + r * t.cos()).collect();
    let ys = theta.iter().map(|t| cy + r * t.sin()).collect();
    (xs, ys)
}

/// `numpy.linspace(start, stop, n)` with the endpoint included.
pub fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (n - 1) as f64;
            let mut v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
            v[n - 1] = stop;
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_circle() {
        let (x, y) = circle_points(3.0, -2.0, 5.0, 17);
        let c = least_squares_circle(&x[..16], &y[..16]);
        assert!((c.cx - 3.0).abs() < 1e-12);
        assert!((c.cy + 2.0).abs() < 1e-12);
        assert!((c.radius - 5.0).abs() < 1e-12);
        assert!(c.residual < 1e-20);
    }

    #[test]
    fn singular_is_nan() {
        let c = least_squares_circle(&[1.0, 1.0, 1.0], &[2.0, 2.0, 2.0]);
        assert!(c.cx.is_nan() && c.cy.is_nan() && c.radius.is_nan() && c.residual.is_nan());
        assert!(!least_squares_circle(&[], &[]).is_finite());
    }

    #[test]
    fn linspace_ends() {
        let v = linspace(0.0, 1.0, 5);
        assert_eq!(v, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(linspace(2.0, 3.0, 1), vec![2.0]);
    }
}
