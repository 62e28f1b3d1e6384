//! Minimisers for the track fit (a handful of parameters, an objective without derivatives):
//!
//! - [`lmfit_lbfgsb`]: what Spyral's default fit runs, `lmfit.minimize(method='lbfgsb')`
//!   (lmfit 1.3): every bounded parameter is mapped to an unbounded internal variable
//!   (`x = min + (sin u + 1)(max − min)/2`, `u = arcsin(2(x − min)/(max − min) − 1)`; `sqrt`
//!   maps for one-sided bounds), fixed parameters are left out, and scipy's L-BFGS-B
//!   ([`lbfgsb::minimize`], a faithful port) runs on the internal variables *without* bounds,
//!   with its 2-point finite-difference gradient (absolute step 1e-8 in `u`), `maxiter` =
//!   `maxfun` = 2·`max_nfev` and lmfit's own abort after `max_nfev` = 2000·(n + 1) evaluations;
//! - [`least_squares_lm`]: Levenberg–Marquardt with Marquardt's diagonal scaling and Nielsen's
//!   damping update, steps projected onto the bounds, forward-difference Jacobians in
//!   unit-box coordinates `u = (x − lo)/(hi − lo)`, and the covariance `(JᵀJ)⁻¹ · χ²/(N − n)`
//!   at the solution. It stops when an accepted step improves χ² by less than 1e-5 of its
//!   value (MINPACK, which Spyral's `leastsq` runs, stops at 1.5e-8 relative).

pub mod lbfgsb;

use lbfgsb::{Iterate, LbfgsbOptions, Stop};

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

/// A parameter as lmfit holds it: its value, bounds (infinite for none) and whether it varies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LmfitParam {
    /// Starting value (clipped into the bounds, as lmfit does).
    pub value: f64,
    /// Lower bound (`-inf` for none).
    pub min: f64,
    /// Upper bound (`inf` for none).
    pub max: f64,
    /// Whether the fit varies it.
    pub vary: bool,
}

impl LmfitParam {
    /// lmfit's `Parameter(value, min, max)`: swapped bounds are put in order, the value is
    /// clipped into them.
    fn normalized(&self) -> LmfitParam {
        let (min, max) = if self.min > self.max {
            (self.max, self.min)
        } else {
            (self.min, self.max)
        };
        let value = if self.value > max {
            max
        } else if self.value < min {
            min
        } else {
            self.value
        };
        LmfitParam {
            value,
            min,
            max,
            vary: self.vary,
        }
    }

    /// The internal (unbounded) variable of the value (lmfit's `setup_bounds`).
    fn internal_of_value(&self) -> f64 {
        let v = self.value;
        let u = match (self.min == f64::NEG_INFINITY, self.max == f64::INFINITY) {
            (true, true) => v,
            (false, true) => ((v - self.min + 1.0).powi(2) - 1.0).sqrt(),
            (true, false) => ((self.max - v + 1.0).powi(2) - 1.0).sqrt(),
            (false, false) => (2.0 * (v - self.min) / (self.max - self.min) - 1.0).asin(),
        };
        if u.abs() < 1e-15 {
            0.0
        } else {
            u
        }
    }

    /// The value of an internal variable (lmfit's `from_internal`, then its clipping setter).
    fn value_of_internal(&self, u: f64) -> f64 {
        let v = match (self.min == f64::NEG_INFINITY, self.max == f64::INFINITY) {
            (true, true) => u,
            (false, true) => self.min - 1.0 + (u * u + 1.0).sqrt(),
            (true, false) => self.max + 1.0 - (u * u + 1.0).sqrt(),
            (false, false) => self.min + (u.sin() + 1.0) * (self.max - self.min) / 2.0,
        };
        if v > self.max {
            self.max
        } else if v < self.min {
            self.min
        } else {
            v
        }
    }
}

/// Settings of [`lmfit_lbfgsb`]; the defaults are lmfit's and scipy's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LmfitOptions {
    /// lmfit's evaluation limit; `None` is its default `2000·(nvary + 1)`.
    pub max_nfev: Option<usize>,
    /// scipy's relative-reduction tolerance (`factr·ε`; default 2.2e-9).
    pub ftol: f64,
    /// scipy's projected-gradient tolerance (default 1e-5, on the internal variables).
    pub gtol: f64,
}

impl Default for LmfitOptions {
    fn default() -> Self {
        let d = LbfgsbOptions::default();
        LmfitOptions {
            max_nfev: None,
            ftol: d.ftol,
            gtol: d.gtol,
        }
    }
}

/// What ended an [`lmfit_lbfgsb`] fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LmfitStop {
    /// scipy's L-BFGS-B stopped.
    Lbfgsb(Stop),
    /// lmfit aborted the fit after `max_nfev` evaluations.
    Aborted,
}

/// The result of [`lmfit_lbfgsb`] (lmfit's `MinimizerResult` fields).
#[derive(Debug, Clone, PartialEq)]
pub struct LmfitResult {
    /// All parameter values (external), in the order given.
    pub values: Vec<f64>,
    /// The internal variables of the varying parameters at the end.
    pub internal: Vec<f64>,
    /// The objective at `values` (lmfit's `residual`).
    pub residual: f64,
    /// lmfit's reduced chi-square for a scalar objective: `residual² / max(1, 1 − nvary)`,
    /// i.e. the objective squared (`ndata` is 1).
    pub redchi: f64,
    /// Objective evaluations (lmfit's `nfev`: finite-difference ones included, the final one
    /// lmfit makes at the result not; `max_nfev + 1` after an abort, as lmfit counts).
    pub nfev: usize,
    /// L-BFGS-B iterations.
    pub nit: usize,
    /// What ended it.
    pub stop: LmfitStop,
}

impl LmfitResult {
    /// lmfit's `message`.
    pub fn message(&self, max_nfev: usize) -> String {
        match self.stop {
            LmfitStop::Lbfgsb(s) => s.message().to_string(),
            LmfitStop::Aborted => {
                format!("Fit aborted: number of function evaluations > {max_nfev}")
            }
        }
    }

    /// lmfit's `success`.
    pub fn success(&self) -> bool {
        matches!(self.stop, LmfitStop::Lbfgsb(s) if s.converged())
    }
}

/// lmfit's default evaluation limit for `nvary` varying parameters.
pub fn lmfit_default_max_nfev(nvary: usize) -> usize {
    2000 * (nvary + 1)
}

enum Halt {
    Abort,
    Fail(OptimError),
}

/// Minimises `f` (called with all parameter values, in order) as
/// `lmfit.minimize(f, params, method='lbfgsb')` does. `observer` sees each L-BFGS-B iterate
/// (internal variables of the varying parameters). A non-finite objective is an error (lmfit's
/// `nan_policy='raise'`).
pub fn lmfit_lbfgsb(
    f: &mut dyn FnMut(&[f64]) -> f64,
    params: &[LmfitParam],
    opts: &LmfitOptions,
    mut observer: Option<&mut dyn FnMut(&Iterate<'_>)>,
) -> Result<LmfitResult, OptimError> {
    let params: Vec<LmfitParam> = params.iter().map(LmfitParam::normalized).collect();
    if params
        .iter()
        .any(|p| !p.value.is_finite() || p.min.is_nan() || p.max.is_nan())
    {
        return Err(OptimError::Problem(format!(
            "parameters need a finite value and bounds ({params:?})"
        )));
    }
    let vary: Vec<usize> = (0..params.len()).filter(|&i| params[i].vary).collect();
    for &i in &vary {
        let p = &params[i];
        // numpy.isclose(min, max, atol=1e-13, rtol=1e-13); infinities are close only to themselves.
        let close = if p.min.is_finite() && p.max.is_finite() {
            (p.min - p.max).abs() <= 1e-13 + 1e-13 * p.max.abs()
        } else {
            p.min == p.max
        };
        if close {
            return Err(OptimError::Problem(format!(
                "parameter {i} has min == max ({})",
                p.min
            )));
        }
    }
    let max_nfev = opts
        .max_nfev
        .unwrap_or_else(|| lmfit_default_max_nfev(vary.len()));
    let x0: Vec<f64> = vary
        .iter()
        .map(|&i| params[i].internal_of_value())
        .collect();
    let bounds = vec![(f64::NEG_INFINITY, f64::INFINITY); vary.len()];
    let lopts = LbfgsbOptions {
        ftol: opts.ftol,
        gtol: opts.gtol,
        maxiter: 2 * max_nfev,
        maxfun: 2 * max_nfev,
        ..LbfgsbOptions::default()
    };
    let external = |u: &[f64]| -> Vec<f64> {
        let mut values: Vec<f64> = params.iter().map(|p| p.value).collect();
        for (k, &i) in vary.iter().enumerate() {
            values[i] = params[i].value_of_internal(u[k]);
        }
        values
    };
    let mut nfev = 0usize;
    let mut last_internal = x0.clone();
    let mut nit_seen = 0usize;
    let outcome = {
        let mut penalty = |u: &[f64]| -> Result<f64, Halt> {
            nfev += 1;
            last_internal.copy_from_slice(u);
            if nfev > max_nfev {
                return Err(Halt::Abort);
            }
            let values = external(u);
            let v = f(&values);
            if v.is_finite() {
                Ok(v)
            } else {
                Err(Halt::Fail(OptimError::NonFinite { at: values }))
            }
        };
        let mut watch = |it: &Iterate<'_>| {
            nit_seen = it.iteration;
            if let Some(obs) = observer.as_mut() {
                obs(it);
            }
        };
        lbfgsb::minimize(&mut penalty, &x0, &bounds, &lopts, Some(&mut watch))
    };
    match outcome {
        Ok(r) => {
            let values = external(&r.x);
            Ok(LmfitResult {
                values,
                residual: r.f_at_x,
                redchi: r.f_at_x * r.f_at_x,
                internal: r.x,
                nfev,
                nit: r.nit,
                stop: LmfitStop::Lbfgsb(r.stop),
            })
        }
        Err(Halt::Abort) => {
            // lmfit keeps the point of the evaluation that overran and evaluates it.
            let values = external(&last_internal);
            let v = f(&values);
            if !v.is_finite() {
                return Err(OptimError::NonFinite { at: values });
            }
            Ok(LmfitResult {
                values,
                residual: v,
                redchi: v * v,
                internal: last_internal,
                // lmfit's count: the overrunning call, minus two, plus the final evaluation,
                // plus one.
                nfev: max_nfev + 1,
                nit: nit_seen,
                stop: LmfitStop::Aborted,
            })
        }
        Err(Halt::Fail(e)) => Err(e),
    }
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

/// A residual evaluator in unit-box coordinates that counts its calls; returns Σr².
type UnitResiduals<'a> = dyn FnMut(&[f64], &mut [f64], &mut usize) -> Result<f64, OptimError> + 'a;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
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
        let mut f = |x: &[f64]| -> Result<f64, ()> { Ok(rosenbrock(x)) };
        let m = lbfgsb::minimize(
            &mut f,
            &[-1.2, 1.0],
            &[(-2.0, 2.0), (-2.0, 2.0)],
            &LbfgsbOptions::default(),
            None,
        )
        .unwrap();
        assert!(m.stop.converged(), "{m:?}");
        assert!(
            (m.x[0] - 1.0).abs() < 1e-3 && (m.x[1] - 1.0).abs() < 1e-3,
            "{m:?}"
        );
        // Minimum of (x-3)² + (y+1)² on [0,2]x[0,2] is at (2, 0).
        let mut f =
            |x: &[f64]| -> Result<f64, ()> { Ok((x[0] - 3.0).powi(2) + (x[1] + 1.0).powi(2)) };
        let m = lbfgsb::minimize(
            &mut f,
            &[0.5, 0.5],
            &[(0.0, 2.0), (0.0, 2.0)],
            &LbfgsbOptions::default(),
            None,
        )
        .unwrap();
        assert!((m.x[0] - 2.0).abs() < 1e-9 && m.x[1].abs() < 1e-9, "{m:?}");
        let mut f = |x: &[f64]| -> Result<f64, ()> { Ok(x[0]) };
        let m = lbfgsb::minimize(
            &mut f,
            &[0.5],
            &[(1.0, 0.0)],
            &LbfgsbOptions::default(),
            None,
        )
        .unwrap();
        assert_eq!(m.stop, Stop::InvalidInput);
    }

    #[test]
    fn lmfit_layer_maps_bounds_and_reports_redchi_as_the_squared_objective() {
        let params = [
            LmfitParam {
                value: 0.3,
                min: -1.0,
                max: 2.0,
                vary: true,
            },
            LmfitParam {
                value: 0.2,
                min: 0.0,
                max: 3.0,
                vary: true,
            },
            LmfitParam {
                value: 9.0,
                min: 0.0,
                max: 1.0,
                vary: false,
            },
        ];
        let mut f = |p: &[f64]| (p[0] - 1.5).powi(2) + (p[1] - 0.7).powi(2) + 0.25 + p[2];
        let r = lmfit_lbfgsb(&mut f, &params, &LmfitOptions::default(), None).unwrap();
        assert!(r.success(), "{r:?}");
        assert_eq!(
            r.values[2], 1.0,
            "fixed parameters are clipped into their bounds"
        );
        assert!(
            (r.values[0] - 1.5).abs() < 1e-4 && (r.values[1] - 0.7).abs() < 1e-4,
            "{r:?}"
        );
        assert!((r.residual - 1.25).abs() < 1e-8);
        assert_eq!(r.redchi, r.residual * r.residual);
        // Every parameter stays inside its bounds, whatever the internal variable.
        for u in [-10.0, -1.0, 0.0, 0.7, 3.0, 1e3] {
            let v = params[0].value_of_internal(u);
            assert!((-1.0..=2.0).contains(&v));
        }
        let one_sided = LmfitParam {
            value: 2.0,
            min: 0.5,
            max: f64::INFINITY,
            vary: true,
        };
        assert!((one_sided.value_of_internal(one_sided.internal_of_value()) - 2.0).abs() < 1e-12);
        let mut nan = |_: &[f64]| f64::NAN;
        assert!(matches!(
            lmfit_lbfgsb(&mut nan, &params, &LmfitOptions::default(), None),
            Err(OptimError::NonFinite { .. })
        ));
        let aborted = lmfit_lbfgsb(
            &mut f,
            &params,
            &LmfitOptions {
                max_nfev: Some(7),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(aborted.stop, LmfitStop::Aborted);
        assert_eq!(aborted.nfev, 8);
        assert_eq!(
            aborted.message(7),
            "Fit aborted: number of function evaluations > 7"
        );
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
