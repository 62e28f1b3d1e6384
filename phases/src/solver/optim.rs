//! Bounded minimisers for the track fit, written for a handful of parameters and an objective
//! without analytic derivatives:
//!
//! - [`minimize_lbfgsb`]: a projected limited-memory BFGS (L-BFGS-B-like): the two-loop
//!   recursion on the free variables, a projected backtracking (Armijo) line search, bounds
//!   enforced by projection, forward-difference gradients;
//! - [`least_squares_lm`]: Levenberg–Marquardt with Marquardt's diagonal scaling and Nielsen's
//!   damping update, steps projected onto the bounds, forward-difference Jacobians, and the
//!   covariance `(JᵀJ)⁻¹ · χ²/(N − n)` at the solution.
//!
//! Both work in unit-box coordinates `u = (x − lo)/(hi − lo) ∈ [0, 1]`, so finite-difference
//! steps and tolerances mean the same for every parameter. Spyral (through lmfit) instead maps
//! each bounded parameter with `sin`/`arcsin` to an unbounded one and runs scipy's L-BFGS-B or
//! MINPACK on that; projection keeps the problem's geometry (no flattening near the bounds) and
//! gives covariances in the physical parameters directly.
//!
//! Stopping: both stop when an iteration improves the objective by less than 1e-5 of its value
//! (scipy's L-BFGS-B with lmfit's settings stops at ~2e-9 absolute, MINPACK at 1.5e-8
//! relative). On synthetic tracks the parameter changes after that point are orders of
//! magnitude below the fit's statistical precision, and the looser criterion halves the
//! number of objective evaluations.

/// Why a minimisation could not be completed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptimError {
    /// The objective (or a residual) was NaN or infinite.
    #[error("the objective is not finite at {at:?}")]
    NonFinite {
        /// The (physical) parameters where it happened.
        at: Vec<f64>,
    },
    /// Invalid bounds or start.
    #[error("invalid problem: {0}")]
    Problem(String),
}

/// Settings of [`minimize_lbfgsb`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LbfgsOptions {
    /// Number of correction pairs kept.
    pub memory: usize,
    /// Objective evaluation limit.
    pub max_evals: usize,
    /// Stop when an iteration lowers the objective by less than `ftol · |f|`.
    pub ftol: f64,
    /// Stop when the largest projected-gradient component (unit-box coordinates) is below this.
    pub pgtol: f64,
    /// Forward-difference step (unit-box coordinates).
    pub fd_step: f64,
    /// Largest first step (unit-box coordinates), before curvature is known.
    pub first_step: f64,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        LbfgsOptions {
            memory: 10,
            max_evals: 15_000,
            ftol: 1e-5,
            pgtol: 1e-10,
            fd_step: 1e-7,
            first_step: 0.02,
        }
    }
}

/// Settings of [`least_squares_lm`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LmOptions {
    /// Residual-vector evaluation limit.
    pub max_evals: usize,
    /// Stop when an accepted step lowers χ² by less than `ftol · χ²`.
    pub ftol: f64,
    /// Stop when a step (unit-box coordinates) is shorter than `xtol`.
    pub xtol: f64,
    /// Forward-difference step (unit-box coordinates).
    pub fd_step: f64,
}

impl Default for LmOptions {
    fn default() -> Self {
        LmOptions {
            max_evals: 15_000,
            ftol: 1e-5,
            xtol: 1e-7,
            fd_step: 1e-7,
        }
    }
}

/// Result of a minimisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// The parameters (physical units).
    pub x: Vec<f64>,
    /// The objective there (for least squares: χ² = Σ r²).
    pub f: f64,
    /// Objective (or residual-vector) evaluations.
    pub evals: usize,
    /// Iterations.
    pub iterations: usize,
    /// Whether a convergence criterion (rather than a limit or a failed search) ended it.
    pub converged: bool,
    /// What ended it.
    pub reason: &'static str,
    /// Least squares only: the covariance of the parameters (row-major n x n), when `JᵀJ` is
    /// invertible and there are more residuals than parameters.
    pub covariance: Option<Vec<f64>>,
}

struct UnitBox<'a> {
    lo: &'a [f64],
    span: Vec<f64>,
}

impl<'a> UnitBox<'a> {
    fn new(lo: &'a [f64], hi: &[f64], x0: &[f64]) -> Result<Self, OptimError> {
        if lo.len() != hi.len() || lo.len() != x0.len() || lo.is_empty() {
            return Err(OptimError::Problem(
                "bounds and start differ in length".into(),
            ));
        }
        let span: Vec<f64> = lo.iter().zip(hi).map(|(l, h)| h - l).collect();
        if span.iter().any(|s| !(s.is_finite() && *s > 0.0)) || x0.iter().any(|v| !v.is_finite()) {
            return Err(OptimError::Problem(format!(
                "every parameter needs finite bounds lo < hi and a finite start (lo {lo:?}, hi {hi:?}, start {x0:?})"
            )));
        }
        Ok(UnitBox { lo, span })
    }
    fn to_unit(&self, x: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(self.lo)
            .zip(&self.span)
            .map(|((v, l), s)| ((v - l) / s).clamp(0.0, 1.0))
            .collect()
    }
    fn to_phys(&self, u: &[f64], out: &mut [f64]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.lo[i] + u[i] * self.span[i];
        }
    }
}

/// An objective evaluator in unit-box coordinates that counts its calls.
type UnitObjective<'a> = dyn FnMut(&[f64], &mut usize) -> Result<f64, OptimError> + 'a;
/// A residual evaluator in unit-box coordinates that counts its calls; returns Σr².
type UnitResiduals<'a> = dyn FnMut(&[f64], &mut [f64], &mut usize) -> Result<f64, OptimError> + 'a;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises `f` over the box `[lo, hi]` from `x0` with a projected L-BFGS.
pub fn minimize_lbfgsb(
    f: &mut dyn FnMut(&[f64]) -> f64,
    x0: &[f64],
    lo: &[f64],
    hi: &[f64],
    opts: &LbfgsOptions,
) -> Result<Minimum, OptimError> {
    let ub = UnitBox::new(lo, hi, x0)?;
    let n = x0.len();
    let mut phys = vec![0.0; n];
    let mut evals = 0usize;
    let mut eval = |u: &[f64], evals: &mut usize| -> Result<f64, OptimError> {
        ub.to_phys(u, &mut phys);
        *evals += 1;
        let v = f(&phys);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(OptimError::NonFinite { at: phys.clone() })
        }
    };
    let grad = |u: &[f64],
                fu: f64,
                evals: &mut usize,
                eval: &mut UnitObjective<'_>|
     -> Result<Vec<f64>, OptimError> {
        let mut g = vec![0.0; u.len()];
        let mut up = u.to_vec();
        for i in 0..u.len() {
            let h = if u[i] + opts.fd_step <= 1.0 {
                opts.fd_step
            } else {
                -opts.fd_step
            };
            up[i] = u[i] + h;
            g[i] = (eval(&up, evals)? - fu) / h;
            up[i] = u[i];
        }
        Ok(g)
    };
    let mut u = ub.to_unit(x0);
    let mut fu = eval(&u, &mut evals)?;
    let mut g = grad(&u, fu, &mut evals, &mut eval)?;
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut iterations = 0usize;
    let (converged, reason) = loop {
        // Variables held at a bound by the gradient are not free.
        let free: Vec<bool> = (0..n)
            .map(|i| !((u[i] <= 0.0 && g[i] > 0.0) || (u[i] >= 1.0 && g[i] < 0.0)))
            .collect();
        let pg_max = (0..n)
            .filter(|&i| free[i])
            .map(|i| g[i].abs())
            .fold(0.0, f64::max);
        if pg_max <= opts.pgtol {
            break (true, "projected gradient below tolerance");
        }
        if evals >= opts.max_evals {
            break (false, "evaluation limit");
        }
        // Two-loop recursion on the free subspace.
        let mut q: Vec<f64> = (0..n).map(|i| if free[i] { g[i] } else { 0.0 }).collect();
        let mask =
            |v: &[f64]| -> Vec<f64> { (0..n).map(|i| if free[i] { v[i] } else { 0.0 }).collect() };
        let pairs: Vec<(Vec<f64>, Vec<f64>)> = s_hist
            .iter()
            .zip(&y_hist)
            .map(|(s, y)| (mask(s), mask(y)))
            .filter(|(s, y)| dot(s, y) > 1e-12 * dot(y, y).max(1e-300))
            .collect();
        let mut alphas = vec![0.0; pairs.len()];
        for (k, (s, y)) in pairs.iter().enumerate().rev() {
            let rho = 1.0 / dot(y, s);
            alphas[k] = rho * dot(s, &q);
            for i in 0..n {
                q[i] -= alphas[k] * y[i];
            }
        }
        if let Some((s, y)) = pairs.last() {
            let gamma = dot(s, y) / dot(y, y);
            for v in q.iter_mut() {
                *v *= gamma;
            }
        }
        for (k, (s, y)) in pairs.iter().enumerate() {
            let rho = 1.0 / dot(y, s);
            let beta = rho * dot(y, &q);
            for i in 0..n {
                q[i] += s[i] * (alphas[k] - beta);
            }
        }
        let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut scaled = !pairs.is_empty();
        if dot(&d, &g) >= 0.0 {
            d = (0..n).map(|i| if free[i] { -g[i] } else { 0.0 }).collect();
            scaled = false;
        }
        let dmax = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if dmax == 0.0 {
            break (true, "no descent direction");
        }
        let mut alpha = if scaled {
            1.0
        } else {
            (opts.first_step / dmax).min(1.0)
        };
        // Projected backtracking line search.
        let mut accepted: Option<(Vec<f64>, f64)> = None;
        for _ in 0..40 {
            let un: Vec<f64> = (0..n)
                .map(|i| (u[i] + alpha * d[i]).clamp(0.0, 1.0))
                .collect();
            let step: Vec<f64> = (0..n).map(|i| un[i] - u[i]).collect();
            if step.iter().all(|v| v.abs() <= f64::EPSILON) {
                break;
            }
            let fn_ = eval(&un, &mut evals)?;
            let slope = dot(&g, &step);
            if fn_ <= fu + 1e-4 * slope {
                accepted = Some((un, fn_));
                break;
            }
            // Quadratic interpolation of the step, kept within [0.1, 0.5] of the current one.
            let denom = 2.0 * (fn_ - fu - slope);
            let shrink = if denom > 0.0 {
                (-slope / denom).clamp(0.1, 0.5)
            } else {
                0.5
            };
            alpha *= shrink;
            if evals >= opts.max_evals {
                break;
            }
        }
        let Some((un, fn_)) = accepted else {
            if !s_hist.is_empty() {
                // Curvature pairs misled the search: restart from steepest descent.
                s_hist.clear();
                y_hist.clear();
                continue;
            }
            break (true, "line search found no decrease");
        };
        iterations += 1;
        let gn = grad(&un, fn_, &mut evals, &mut eval)?;
        let s: Vec<f64> = (0..n).map(|i| un[i] - u[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| gn[i] - g[i]).collect();
        if dot(&s, &y) > 1e-12 * dot(&y, &y) {
            s_hist.push(s);
            y_hist.push(y);
            if s_hist.len() > opts.memory {
                s_hist.remove(0);
                y_hist.remove(0);
            }
        }
        let decrease = fu - fn_;
        u = un;
        g = gn;
        let small = decrease <= opts.ftol * fu.abs().max(fn_.abs());
        fu = fn_;
        if small {
            break (true, "relative decrease below tolerance");
        }
    };
    ub.to_phys(&u, &mut phys);
    Ok(Minimum {
        x: phys,
        f: fu,
        evals,
        iterations,
        converged,
        reason,
        covariance: None,
    })
}

/// Cholesky solve of the symmetric positive-definite `a` (n x n, row-major) with `b`; None if
/// it is not positive definite.
fn cholesky_solve(a: &[f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s.is_nan() || s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * y[k];
        }
        y[i] = s / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in i + 1..n {
            s -= l[k * n + i] * x[k];
        }
        x[i] = s / l[i * n + i];
    }
    Some(x)
}

/// The inverse of a symmetric positive-definite matrix, or None.
pub fn spd_inverse(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut inv = vec![0.0; n * n];
    for c in 0..n {
        let mut e = vec![0.0; n];
        e[c] = 1.0;
        let col = cholesky_solve(a, &e, n)?;
        for r in 0..n {
            inv[r * n + c] = col[r];
        }
    }
    Some(inv)
}

/// Minimises `Σ r_i²` over the box `[lo, hi]` from `x0` with Levenberg–Marquardt. `residuals`
/// fills its output (length `m`) and returns false if it cannot be evaluated.
pub fn least_squares_lm(
    residuals: &mut dyn FnMut(&[f64], &mut [f64]) -> bool,
    m: usize,
    x0: &[f64],
    lo: &[f64],
    hi: &[f64],
    opts: &LmOptions,
) -> Result<Minimum, OptimError> {
    let ub = UnitBox::new(lo, hi, x0)?;
    let n = x0.len();
    if m == 0 {
        return Err(OptimError::Problem("no residuals".into()));
    }
    let mut phys = vec![0.0; n];
    let mut evals = 0usize;
    let mut eval = |u: &[f64], r: &mut [f64], evals: &mut usize| -> Result<f64, OptimError> {
        ub.to_phys(u, &mut phys);
        *evals += 1;
        let ok = residuals(&phys, r);
        let c: f64 = r.iter().map(|v| v * v).sum();
        if ok && c.is_finite() {
            Ok(c)
        } else {
            Err(OptimError::NonFinite { at: phys.clone() })
        }
    };
    // Jacobian (m x n, column-major: column j contiguous) by forward differences.
    let jacobian = |u: &[f64],
                    r: &[f64],
                    evals: &mut usize,
                    jac: &mut Vec<f64>,
                    eval: &mut UnitResiduals<'_>|
     -> Result<(), OptimError> {
        jac.resize(m * n, 0.0);
        let mut up = u.to_vec();
        let mut rp = vec![0.0; m];
        for j in 0..n {
            let h = if u[j] + opts.fd_step <= 1.0 {
                opts.fd_step
            } else {
                -opts.fd_step
            };
            up[j] = u[j] + h;
            eval(&up, &mut rp, evals)?;
            for i in 0..m {
                jac[j * m + i] = (rp[i] - r[i]) / h;
            }
            up[j] = u[j];
        }
        Ok(())
    };
    let normal = |jac: &[f64], r: &[f64]| -> (Vec<f64>, Vec<f64>) {
        let mut a = vec![0.0; n * n];
        let mut g = vec![0.0; n];
        for j in 0..n {
            let cj = &jac[j * m..(j + 1) * m];
            g[j] = dot(cj, r);
            for k in 0..=j {
                let v = dot(cj, &jac[k * m..(k + 1) * m]);
                a[j * n + k] = v;
                a[k * n + j] = v;
            }
        }
        (a, g)
    };
    let mut u = ub.to_unit(x0);
    let mut r = vec![0.0; m];
    let mut cost = eval(&u, &mut r, &mut evals)?;
    let mut jac = Vec::new();
    jacobian(&u, &r, &mut evals, &mut jac, &mut eval)?;
    let (mut a, mut g) = normal(&jac, &r);
    let mut jac_at_u = true;
    let max_diag = (0..n).map(|i| a[i * n + i]).fold(0.0, f64::max);
    // Marquardt's scaling: the damping term is λ·diag(JᵀJ), so λ is dimensionless.
    let mut lambda = 1e-3;
    let mut nu = 2.0;
    let mut iterations = 0usize;
    let mut rn = vec![0.0; m];
    let (converged, reason) = loop {
        if evals >= opts.max_evals {
            break (false, "evaluation limit");
        }
        if g.iter().all(|v| *v == 0.0) {
            break (true, "zero gradient");
        }
        let mut damped = a.clone();
        for i in 0..n {
            damped[i * n + i] += lambda * a[i * n + i].max(1e-12 * max_diag.max(1e-300));
        }
        let rhs: Vec<f64> = g.iter().map(|v| -v).collect();
        let Some(delta) = cholesky_solve(&damped, &rhs, n) else {
            lambda *= nu;
            nu *= 2.0;
            if !lambda.is_finite() {
                break (false, "singular normal equations");
            }
            continue;
        };
        let un: Vec<f64> = (0..n).map(|i| (u[i] + delta[i]).clamp(0.0, 1.0)).collect();
        let step: Vec<f64> = (0..n).map(|i| un[i] - u[i]).collect();
        let step_norm = dot(&step, &step).sqrt();
        if step_norm <= opts.xtol * (dot(&u, &u).sqrt() + opts.xtol) {
            break (true, "step below tolerance");
        }
        let cn = eval(&un, &mut rn, &mut evals)?;
        // Predicted decrease of Σr² for the (projected) step from the linear model.
        let mut a_step = vec![0.0; n];
        for i in 0..n {
            a_step[i] = (0..n).map(|k| a[i * n + k] * step[k]).sum();
        }
        let predicted = -(2.0 * dot(&g, &step) + dot(&step, &a_step));
        let actual = cost - cn;
        if actual > 0.0 && predicted > 0.0 {
            let rho = actual / predicted;
            lambda *= (1.0f64 / 3.0).max(1.0 - (2.0 * rho - 1.0).powi(3));
            nu = 2.0;
            iterations += 1;
            u = un;
            std::mem::swap(&mut r, &mut rn);
            let small = actual <= opts.ftol * cost;
            cost = cn;
            if small {
                jac_at_u = false;
                break (true, "relative decrease below tolerance");
            }
            jacobian(&u, &r, &mut evals, &mut jac, &mut eval)?;
            (a, g) = normal(&jac, &r);
        } else {
            lambda *= nu;
            nu *= 2.0;
            if !lambda.is_finite() || lambda > 1e30 {
                break (true, "no further decrease");
            }
        }
    };
    if !jac_at_u {
        jacobian(&u, &r, &mut evals, &mut jac, &mut eval)?;
        (a, _) = normal(&jac, &r);
    }
    // Covariance in physical units: J_phys = J_unit / span.
    let covariance = if m > n {
        let mut ap = a.clone();
        for i in 0..n {
            for k in 0..n {
                ap[i * n + k] /= ub.span[i] * ub.span[k];
            }
        }
        spd_inverse(&ap, n).map(|inv| {
            let scale = cost / (m - n) as f64;
            inv.into_iter().map(|v| v * scale).collect()
        })
    } else {
        None
    };
    ub.to_phys(&u, &mut phys);
    Ok(Minimum {
        x: phys,
        f: cost,
        evals,
        iterations,
        converged,
        reason,
        covariance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(x: &[f64]) -> f64 {
        (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2)
    }

    #[test]
    fn lbfgsb_finds_interior_and_bound_minima() {
        let m = minimize_lbfgsb(
            &mut |x| rosenbrock(x),
            &[-1.2, 1.0],
            &[-2.0, -2.0],
            &[2.0, 2.0],
            &LbfgsOptions {
                ftol: 1e-14,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            (m.x[0] - 1.0).abs() < 1e-3 && (m.x[1] - 1.0).abs() < 1e-3,
            "{m:?}"
        );
        // Minimum of (x-3)² + (y+1)² on [0,2]x[0,2] is at (2, 0).
        let m = minimize_lbfgsb(
            &mut |x| (x[0] - 3.0).powi(2) + (x[1] + 1.0).powi(2),
            &[0.5, 0.5],
            &[0.0, 0.0],
            &[2.0, 2.0],
            &LbfgsOptions::default(),
        )
        .unwrap();
        assert!((m.x[0] - 2.0).abs() < 1e-9 && m.x[1].abs() < 1e-9, "{m:?}");
        let e = minimize_lbfgsb(
            &mut |_| f64::NAN,
            &[0.5],
            &[0.0],
            &[1.0],
            &LbfgsOptions::default(),
        );
        assert!(matches!(e, Err(OptimError::NonFinite { .. })));
        assert!(minimize_lbfgsb(
            &mut |x| x[0],
            &[0.5],
            &[1.0],
            &[0.0],
            &LbfgsOptions::default()
        )
        .is_err());
    }

    #[test]
    fn lm_fits_an_exponential_with_covariance() {
        // y = 2 exp(-0.5 t) + noise-free; residuals scaled by 1/sigma = 10.
        let ts: Vec<f64> = (0..30).map(|i| i as f64 * 0.2).collect();
        let ys: Vec<f64> = ts
            .iter()
            .enumerate()
            .map(|(i, t)| 2.0 * (-0.5 * t).exp() + if i % 2 == 0 { 0.01 } else { -0.01 })
            .collect();
        let mut res = |p: &[f64], r: &mut [f64]| {
            for (i, (t, y)) in ts.iter().zip(&ys).enumerate() {
                r[i] = (p[0] * (-p[1] * t).exp() - y) * 10.0;
            }
            true
        };
        let m = least_squares_lm(
            &mut res,
            30,
            &[1.0, 1.0],
            &[0.0, 0.0],
            &[5.0, 5.0],
            &LmOptions::default(),
        )
        .unwrap();
        assert!(
            (m.x[0] - 2.0).abs() < 0.02 && (m.x[1] - 0.5).abs() < 0.01,
            "{m:?}"
        );
        let cov = m.covariance.unwrap();
        assert!(cov[0] > 0.0 && cov[3] > 0.0 && cov[0].sqrt() < 0.05);
    }
}
