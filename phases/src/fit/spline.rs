//! Penalised cubic smoothing spline with scipy's `make_smoothing_spline(x, y, lam)` semantics
//! (unit weights): the natural cubic spline `f` with knots at every `x` that minimises
//! `Σ (y_i - f(x_i))² + lam · ∫ f''(u)² du` over `[x_0, x_{n-1}]`.
//!
//! Solved with the Reinsch algorithm (Green & Silverman, "Nonparametric Regression and
//! Generalized Linear Models", §2.3): with `h_i = x_{i+1} - x_i`, the tridiagonal `Q` (n x n-2)
//! and `R` (n-2 x n-2), the interior second derivatives `γ` solve the banded SPD system
//! `(R + lam·QᵀQ) γ = Qᵀ y` (Cholesky), and the fitted values are `g = y - lam·Q γ`.
//! Like scipy, the fit needs strictly increasing `x`, at least 5 points and `lam >= 0`.
//! Evaluation outside `[x_0, x_{n-1}]` extends the end cubic pieces, as scipy's `BSpline`
//! does with its default `extrapolate=True`.

use thiserror::Error;

/// Why a smoothing spline could not be fitted.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FitError {
    /// `x` and `y` have different lengths.
    #[error("x and y must have the same length (got {x} and {y})")]
    LengthMismatch {
        /// Length of x.
        x: usize,
        /// Length of y.
        y: usize,
    },
    /// Fewer than 5 points.
    #[error("a smoothing spline needs at least 5 points (got {0})")]
    TooFewPoints(usize),
    /// `x` is not strictly increasing (or holds NaN).
    #[error("x must be strictly increasing (x[{index}] = {prev} is followed by {next})")]
    NotIncreasing {
        /// Index of the offending pair's first element.
        index: usize,
        /// `x[index]`.
        prev: f64,
        /// x[index + 1].
        next: f64,
    },
    /// A coordinate is NaN or infinite.
    #[error("x and y must be finite (point {0} is not)")]
    NonFinite(usize),
    /// `lam` is negative or not finite.
    #[error("the smoothing parameter must be finite and non-negative (got {0})")]
    BadLambda(f64),
    /// The linear system was numerically singular.
    #[error("the smoothing-spline system is numerically singular")]
    Singular,
}

/// A fitted natural cubic smoothing spline: knots, fitted values and second derivatives at the
/// knots (zero at both ends).
#[derive(Debug, Clone, PartialEq)]
pub struct SmoothingSpline {
    x: Vec<f64>,
    g: Vec<f64>,
    gamma: Vec<f64>,
}

impl SmoothingSpline {
    /// Fits the smoothing spline of `y` against `x` with smoothing parameter `lam`
    /// (scipy `make_smoothing_spline(x, y, lam=lam)`).
    pub fn fit(x: &[f64], y: &[f64], lam: f64) -> Result<SmoothingSpline, FitError> {
        let n = x.len();
        if y.len() != n {
            return Err(FitError::LengthMismatch { x: n, y: y.len() });
        }
        if let Some(i) = (0..n).find(|&i| !x[i].is_finite() || !y[i].is_finite()) {
            return Err(FitError::NonFinite(i));
        }
        if let Some(i) = (0..n.saturating_sub(1)).find(|&i| x[i + 1] - x[i] <= 0.0) {
            return Err(FitError::NotIncreasing {
                index: i,
                prev: x[i],
                next: x[i + 1],
            });
        }
        if n < 5 {
            return Err(FitError::TooFewPoints(n));
        }
        if !(lam.is_finite() && lam >= 0.0) {
            return Err(FitError::BadLambda(lam));
        }
        let h: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
        let m = n - 2;
        // Column j of Q (interior knot j+1) has entries at rows j, j+1, j+2.
        let q: Vec<[f64; 3]> = (0..m)
            .map(|j| {
                let a = 1.0 / h[j];
                let c = 1.0 / h[j + 1];
                [a, -a - c, c]
            })
            .collect();
        // Banded symmetric matrix A = R + lam QᵀQ, stored as (diag, super1, super2).
        let mut d0 = vec![0.0; m];
        let mut d1 = vec![0.0; m];
        let mut d2 = vec![0.0; m];
        let mut rhs = vec![0.0; m];
        for j in 0..m {
            let qj = &q[j];
            d0[j] = (h[j] + h[j + 1]) / 3.0 + lam * (qj[0] * qj[0] + qj[1] * qj[1] + qj[2] * qj[2]);
            if j + 1 < m {
                let qk = &q[j + 1];
                // Column j rows j..j+2, column j+1 rows j+1..j+3: overlap rows j+1, j+2.
                d1[j] = h[j + 1] / 6.0 + lam * (qj[1] * qk[0] + qj[2] * qk[1]);
            }
            if j + 2 < m {
                let qk = &q[j + 2];
                // Overlap at row j+2 only.
                d2[j] = lam * (qj[2] * qk[0]);
            }
            rhs[j] = qj[0] * y[j] + qj[1] * y[j + 1] + qj[2] * y[j + 2];
        }
        let gamma_in = solve_penta_spd(&mut d0, &mut d1, &mut d2, &mut rhs)?;
        let mut gamma = vec![0.0; n];
        gamma[1..=m].copy_from_slice(&gamma_in);
        let mut g = y.to_vec();
        for (j, qj) in q.iter().enumerate() {
            let s = lam * gamma_in[j];
            g[j] -= s * qj[0];
            g[j + 1] -= s * qj[1];
            g[j + 2] -= s * qj[2];
        }
        if g.iter().any(|v| !v.is_finite()) {
            return Err(FitError::Singular);
        }
        Ok(SmoothingSpline {
            x: x.to_vec(),
            g,
            gamma,
        })
    }

    /// The spline's value at `t` (cubic extrapolation of the end pieces outside the knots;
    /// NaN for NaN `t`).
    pub fn eval(&self, t: f64) -> f64 {
        if t.is_nan() {
            return f64::NAN;
        }
        let n = self.x.len();
        // Piece i covers [x_i, x_{i+1}]; the last knot belongs to the last piece.
        let i = match self.x.partition_point(|&k| k <= t) {
            0 => 0,
            p => (p - 1).min(n - 2),
        };
        let (x0, x1) = (self.x[i], self.x[i + 1]);
        let h = x1 - x0;
        let a = t - x0;
        let b = x1 - t;
        (a * self.g[i + 1] + b * self.g[i]) / h
            - a * b / 6.0 * ((1.0 + a / h) * self.gamma[i + 1] + (1.0 + b / h) * self.gamma[i])
    }

    /// The spline's values at every `t`.
    pub fn eval_many(&self, t: &[f64]) -> Vec<f64> {
        t.iter().map(|&v| self.eval(v)).collect()
    }

    /// The knots (the fitted x).
    pub fn knots(&self) -> &[f64] {
        &self.x
    }

    /// The fitted values at the knots.
    pub fn fitted(&self) -> &[f64] {
        &self.g
    }
}

/// Solves the symmetric positive-definite pentadiagonal system with diagonal `d0`, first
/// super-diagonal `d1` and second super-diagonal `d2` by an in-place banded LDLᵀ
/// factorisation; the solution overwrites and is returned from `b`.
fn solve_penta_spd(
    d0: &mut [f64],
    d1: &mut [f64],
    d2: &mut [f64],
    b: &mut [f64],
) -> Result<Vec<f64>, FitError> {
    let m = d0.len();
    // Factorisation: A = L D Lᵀ with unit lower L of bandwidth 2; l1[j] = L[j+1][j],
    // l2[j] = L[j+2][j], stored in d1 and d2; D in d0.
    for j in 0..m {
        let dj = d0[j];
        if dj <= 0.0 || !dj.is_finite() {
            return Err(FitError::Singular);
        }
        if j + 1 < m {
            let l1 = d1[j] / dj;
            // Update row/col j+1: A[j+1][j+1] -= l1 * A[j][j+1], A[j+1][j+2] -= l1 * A[j][j+2].
            d0[j + 1] -= l1 * d1[j];
            if j + 2 < m {
                d1[j + 1] -= l1 * d2[j];
            }
            if j + 2 < m {
                let l2 = d2[j] / dj;
                d0[j + 2] -= l2 * d2[j];
                d2[j] = l2;
            }
            d1[j] = l1;
        }
    }
    // Forward: L z = b.
    for j in 0..m {
        let mut v = b[j];
        if j >= 1 {
            v -= d1[j - 1] * b[j - 1];
        }
        if j >= 2 {
            v -= d2[j - 2] * b[j - 2];
        }
        b[j] = v;
    }
    // Diagonal.
    for j in 0..m {
        b[j] /= d0[j];
    }
    // Backward: Lᵀ x = z.
    for j in (0..m).rev() {
        let mut v = b[j];
        if j + 1 < m {
            v -= d1[j] * b[j + 1];
        }
        if j + 2 < m {
            v -= d2[j] * b[j + 2];
        }
        b[j] = v;
    }
    Ok(b.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_lambda_interpolates() {
        let x: Vec<f64> = (0..9)
            .map(|i| f64::from(i) * 0.7 + 0.1 * f64::from(i * i))
            .collect();
        let y: Vec<f64> = x.iter().map(|v| (v * 1.3).sin()).collect();
        let s = SmoothingSpline::fit(&x, &y, 0.0).unwrap();
        for (a, b) in x.iter().zip(&y) {
            assert!((s.eval(*a) - b).abs() < 1e-12);
        }
    }

    #[test]
    fn lines_are_kept() {
        let x: Vec<f64> = (0..12).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| 2.0 * v - 3.0).collect();
        let s = SmoothingSpline::fit(&x, &y, 1e4).unwrap();
        for t in [-1.0, 0.0, 3.3, 11.0, 12.5] {
            assert!((s.eval(t) - (2.0 * t - 3.0)).abs() < 1e-9);
        }
    }

    #[test]
    fn errors() {
        let x = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(
            SmoothingSpline::fit(&x, &x, 1.0),
            Err(FitError::TooFewPoints(4))
        );
        let x = [0.0, 1.0, 1.0, 3.0, 4.0];
        assert!(matches!(
            SmoothingSpline::fit(&x, &x, 1.0),
            Err(FitError::NotIncreasing { index: 1, .. })
        ));
        let x = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert!(matches!(
            SmoothingSpline::fit(&x, &x, -1.0),
            Err(FitError::BadLambda(_))
        ));
        assert!(matches!(
            SmoothingSpline::fit(&x, &x[..4], 1.0),
            Err(FitError::LengthMismatch { .. })
        ));
    }
}
