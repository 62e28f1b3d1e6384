//! L-BFGS-B as scipy 1.17 runs it for `minimize(method='L-BFGS-B')`, written from the
//! published algorithm and scipy's behaviour, step for step, so that our iterates are scipy's:
//!
//! - the bound-constrained limited-memory BFGS of Byrd, Lu, Nocedal and Zhu (1995), version 3.0
//!   (Morales and Nocedal 2011: subspace minimisation with a projected backtrack): generalized
//!   Cauchy point along the projected steepest-descent path (breakpoints taken from a heap),
//!   direct primal subspace minimisation with the compact representation of the BFGS matrix,
//!   the Moré–Thuente line search (`dcsrch`/`dcstep`: ftol 1e-3, gtol 0.9, xtol 0.1, at most
//!   `maxls` trials, first step `min(1/‖d‖, stpmax)` on the first iteration of an unboxed
//!   problem), the curvature skip (`sᵀy ≤ ε·(−gᵀd)`), memory resets on failures, and the stops
//!   "projected gradient ≤ pgtol" and "(f_k − f_k+1)/max(|f_k|, |f_k+1|, 1) ≤ factr·ε";
//! - scipy's driver (`_minimize_lbfgsb`): the start clipped into the bounds, `maxiter` checked
//!   after each new iterate before `maxfun` (`nfev > maxfun`), and the quirk that the reported
//!   `fun` is the last evaluated value even when the line search failed and `x` went back to
//!   the previous iterate;
//! - scipy's gradient (`ScalarFunction` with `approx_derivative(method='2-point')` and an
//!   absolute step `eps`): forward differences `(f(x + h eᵢ) − f(x))/((xᵢ + h) − xᵢ)`, a step
//!   that would not change `xᵢ` replaced by `√ε·max(1, |xᵢ|)`, steps turned around or shortened
//!   at the bounds, and the value/gradient cache keyed on exactly equal `x`.
//!
//! The small dense linear algebra reproduces the operation order of the OpenBLAS build scipy
//! ships as measured on an x86-64 AVX-512 machine (dot products accumulated with fused
//! multiply-adds, 4-lane partial sums from 16 elements on; `axpy` fused; triangular solves by
//! column `axpy` (no transpose) or by dot products (transpose); `nrm2` as the rounded root of the
//! exact sum of squares). Elsewhere the last bits of scipy's own results differ.

// The routine is kept in the index form of the published algorithm (column-major arrays, loops
// over index sets) so that it can be checked line by line against it.
#![allow(clippy::needless_range_loop)]

/// Machine epsilon, as the Fortran/C source hard-codes it.
const EPSMACH: f64 = 2.220_446_049_250_313e-16;

/// Settings of [`minimize`], with scipy's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LbfgsbOptions {
    /// Correction pairs kept (`maxcor`, the `m` of the paper).
    pub maxcor: usize,
    /// Relative-reduction stop (`ftol`; the routine's `factr` is `ftol/ε`).
    pub ftol: f64,
    /// Projected-gradient stop (`gtol`, the routine's `pgtol`).
    pub gtol: f64,
    /// Absolute finite-difference step (`eps`).
    pub eps: f64,
    /// Evaluation limit (`maxfun`), checked after each iteration.
    pub maxfun: usize,
    /// Iteration limit (`maxiter`).
    pub maxiter: usize,
    /// Line-search trials per iteration (`maxls`).
    pub maxls: usize,
}

impl Default for LbfgsbOptions {
    fn default() -> Self {
        LbfgsbOptions {
            maxcor: 10,
            ftol: 2.220_446_049_250_313e-9,
            gtol: 1e-5,
            eps: 1e-8,
            maxfun: 15_000,
            maxiter: 15_000,
            maxls: 20,
        }
    }
}

/// What ended a run, with scipy's message ([`Stop::message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The largest projected-gradient component is at most `gtol`.
    ProjectedGradient,
    /// The relative reduction of the objective is at most `factr·ε`.
    RelativeReduction,
    /// More than `maxfun` evaluations after an iteration.
    EvaluationLimit,
    /// `maxiter` iterations.
    IterationLimit,
    /// The line search failed with no correction pairs left to drop (`x` is the last iterate).
    Abnormal,
    /// The problem was refused (bounds crossing, empty).
    InvalidInput,
}

impl Stop {
    /// scipy's `OptimizeResult.message` for this stop.
    pub fn message(&self) -> &'static str {
        match self {
            Stop::ProjectedGradient => "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL",
            Stop::RelativeReduction => "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH",
            Stop::EvaluationLimit => "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT",
            Stop::IterationLimit => "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT",
            Stop::Abnormal => "ABNORMAL: ",
            Stop::InvalidInput => "ERROR: NO FEASIBLE SOLUTION",
        }
    }

    /// scipy's `success`: a convergence test ended the run.
    pub fn converged(&self) -> bool {
        matches!(self, Stop::ProjectedGradient | Stop::RelativeReduction)
    }
}

/// The result of [`minimize`] (scipy's `OptimizeResult` fields).
#[derive(Debug, Clone, PartialEq)]
pub struct LbfgsbResult {
    /// The final point.
    pub x: Vec<f64>,
    /// scipy's `fun`: the last objective value evaluated (after a failed line search this is
    /// the failed trial's, not `x`'s; see [`LbfgsbResult::f_at_x`]).
    pub fun: f64,
    /// The objective at `x`.
    pub f_at_x: f64,
    /// The gradient the routine holds at the end.
    pub jac: Vec<f64>,
    /// Iterations (scipy's `nit`).
    pub nit: usize,
    /// Objective evaluations, finite-difference ones included (scipy's `nfev`).
    pub nfev: usize,
    /// What ended it.
    pub stop: Stop,
}

/// One accepted iterate, as scipy's callback sees it.
#[derive(Debug, Clone, Copy)]
pub struct Iterate<'a> {
    /// 1-based iteration number.
    pub iteration: usize,
    /// The new point.
    pub x: &'a [f64],
    /// The objective there.
    pub f: f64,
    /// Evaluations so far.
    pub nfev: usize,
}

/// Minimises `fun` from `x0` within `bounds` (`(lo, hi)`, infinite for none) exactly as scipy's
/// `minimize(fun, x0, method='L-BFGS-B', bounds=bounds, options=opts)` with the default
/// finite-difference gradient. `observer` sees every new iterate. The objective's error aborts
/// the run and is returned as is.
pub fn minimize<E>(
    fun: &mut dyn FnMut(&[f64]) -> Result<f64, E>,
    x0: &[f64],
    bounds: &[(f64, f64)],
    opts: &LbfgsbOptions,
    mut observer: Option<&mut dyn FnMut(&Iterate<'_>)>,
) -> Result<LbfgsbResult, E> {
    let n = x0.len();
    let invalid = |x: &[f64]| LbfgsbResult {
        x: x.to_vec(),
        fun: f64::NAN,
        f_at_x: f64::NAN,
        jac: vec![0.0; x.len()],
        nit: 0,
        nfev: 0,
        stop: Stop::InvalidInput,
    };
    if n == 0
        || bounds.len() != n
        || opts.maxcor == 0
        || opts.maxls == 0
        || bounds
            .iter()
            .any(|(lo, hi)| lo.is_nan() || hi.is_nan() || lo > hi)
    {
        return Ok(invalid(x0));
    }
    let lb: Vec<f64> = bounds.iter().map(|b| b.0).collect();
    let ub: Vec<f64> = bounds.iter().map(|b| b.1).collect();
    // The start is clipped into the bounds before anything else.
    let mut x: Vec<f64> = x0
        .iter()
        .zip(bounds)
        .map(|(v, (lo, hi))| clip(*v, *lo, *hi))
        .collect();
    let mut sf = ScalarFunction::new(fun, &x, lb.clone(), ub.clone(), opts.eps)?;
    let nbd: Vec<i32> = bounds
        .iter()
        .map(|(lo, hi)| match (lo.is_finite(), hi.is_finite()) {
            (false, false) => 0,
            (true, false) => 1,
            (true, true) => 2,
            (false, true) => 3,
        })
        .collect();
    let low: Vec<f64> = lb
        .iter()
        .map(|v| if v.is_finite() { *v } else { 0.0 })
        .collect();
    let upp: Vec<f64> = ub
        .iter()
        .map(|v| if v.is_finite() { *v } else { 0.0 })
        .collect();
    let factr = opts.ftol / f64::EPSILON;
    let mut st = Lbfgsb::new(n, opts.maxcor, low, upp, nbd);
    let mut f = 0.0;
    let mut f_local: f64;
    let mut g = vec![0.0; n];
    let mut nit = 0usize;
    let mut python_stop: Option<Stop> = None;
    loop {
        f_local = st.setulb(&mut x, f, &mut g, factr, opts.gtol, opts.maxls);
        match st.task {
            Task::Fg => {
                let (fv, gv) = sf.fun_and_grad(&x)?;
                f = fv;
                g.copy_from_slice(&gv);
            }
            Task::NewX => {
                nit += 1;
                if let Some(obs) = observer.as_mut() {
                    obs(&Iterate {
                        iteration: nit,
                        x: &x,
                        f,
                        nfev: sf.nfev,
                    });
                }
                if nit >= opts.maxiter {
                    st.task = Task::Stop;
                    python_stop = Some(Stop::IterationLimit);
                } else if sf.nfev > opts.maxfun {
                    st.task = Task::Stop;
                    python_stop = Some(Stop::EvaluationLimit);
                }
            }
            _ => break,
        }
    }
    let stop = match (st.task, st.msg) {
        (Task::Convergence, Msg::ConvGrad) => Stop::ProjectedGradient,
        (Task::Convergence, _) => Stop::RelativeReduction,
        (Task::Stop, _) => python_stop.unwrap_or(Stop::IterationLimit),
        (Task::Abnormal, _) => Stop::Abnormal,
        _ => Stop::InvalidInput,
    };
    Ok(LbfgsbResult {
        x,
        fun: f,
        f_at_x: f_local,
        jac: g,
        nit,
        nfev: sf.nfev,
        stop,
    })
}

fn clip(v: f64, lo: f64, hi: f64) -> f64 {
    // numpy.clip(v, lo, hi) = minimum(maximum(v, lo), hi).
    let a = if v < lo { lo } else { v };
    if a > hi {
        hi
    } else {
        a
    }
}

// ---------------------------------------------------------------------------------------------
// scipy's ScalarFunction with a 2-point finite-difference gradient.

struct ScalarFunction<'f, E> {
    fun: &'f mut dyn FnMut(&[f64]) -> Result<f64, E>,
    x: Vec<f64>,
    f: f64,
    g: Vec<f64>,
    nfev: usize,
    lb: Vec<f64>,
    ub: Vec<f64>,
    eps: f64,
}

impl<'f, E> ScalarFunction<'f, E> {
    fn new(
        fun: &'f mut dyn FnMut(&[f64]) -> Result<f64, E>,
        x0: &[f64],
        lb: Vec<f64>,
        ub: Vec<f64>,
        eps: f64,
    ) -> Result<Self, E> {
        let mut sf = ScalarFunction {
            fun,
            x: x0.to_vec(),
            f: 0.0,
            g: vec![0.0; x0.len()],
            nfev: 0,
            lb,
            ub,
            eps,
        };
        sf.f = (sf.fun)(x0)?;
        sf.nfev += 1;
        sf.update_grad()?;
        Ok(sf)
    }

    fn fun_and_grad(&mut self, x: &[f64]) -> Result<(f64, Vec<f64>), E> {
        // np.array_equal: NaN is never equal.
        if !x.iter().zip(&self.x).all(|(a, b)| a == b) {
            self.x.copy_from_slice(x);
            self.f = (self.fun)(x)?;
            self.nfev += 1;
            self.update_grad()?;
        }
        Ok((self.f, self.g.clone()))
    }

    fn update_grad(&mut self) -> Result<(), E> {
        let n = self.x.len();
        let x0 = self.x.clone();
        let rstep = f64::EPSILON.sqrt();
        let mut h: Vec<f64> = x0
            .iter()
            .map(|&xi| {
                let sign = if xi >= 0.0 { 1.0 } else { -1.0 };
                if (xi + self.eps) - xi == 0.0 {
                    rstep * sign * xi.abs().max(1.0)
                } else {
                    self.eps
                }
            })
            .collect();
        let unbounded = self
            .lb
            .iter()
            .zip(&self.ub)
            .all(|(l, u)| *l == f64::NEG_INFINITY && *u == f64::INFINITY);
        if !unbounded {
            for i in 0..n {
                let lower = x0[i] - self.lb[i];
                let upper = self.ub[i] - x0[i];
                let xh = x0[i] + h[i];
                let violated = xh < self.lb[i] || xh > self.ub[i];
                let fitting = h[i].abs() <= np_maximum(lower, upper);
                if violated && fitting {
                    h[i] = -h[i];
                }
                if !fitting {
                    if upper >= lower {
                        h[i] = upper;
                    } else if upper < lower {
                        h[i] = -lower;
                    }
                }
            }
        }
        let mut x1 = x0.clone();
        for i in 0..n {
            x1[i] = x0[i] + h[i];
            let fi = (self.fun)(&x1)?;
            self.nfev += 1;
            x1[i] = x0[i];
            let dx = (x0[i] + h[i]) - x0[i];
            self.g[i] = (fi - self.f) / dx;
        }
        Ok(())
    }
}

/// numpy.maximum: NaN propagates.
fn np_maximum(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

// ---------------------------------------------------------------------------------------------
// Small dense linear algebra in OpenBLAS's operation order.

/// `Σ xᵢ yᵢ` as OpenBLAS's `ddot` (SkylakeX kernel) computes it.
fn ddot(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let n1 = n & !15;
    let mut dot = 0.0;
    if n1 > 0 {
        let n32 = n1 & !31;
        let mut i = 0;
        let mut acc = [[0.0f64; 4]; 4];
        if n32 > 0 {
            let mut acc8 = [[0.0f64; 8]; 4];
            while i < n32 {
                for (k, a) in acc8.iter_mut().enumerate() {
                    for (l, v) in a.iter_mut().enumerate() {
                        let j = i + 8 * k + l;
                        *v = x[j].mul_add(y[j], *v);
                    }
                }
                i += 32;
            }
            for k in 0..4 {
                for l in 0..4 {
                    acc[k][l] = acc8[k][l] + acc8[k][l + 4];
                }
            }
        }
        while i < n1 {
            for (k, a) in acc.iter_mut().enumerate() {
                for (l, v) in a.iter_mut().enumerate() {
                    let j = i + 4 * k + l;
                    *v = x[j].mul_add(y[j], *v);
                }
            }
            i += 16;
        }
        let s: Vec<f64> = (0..4)
            .map(|l| ((acc[0][l] + acc[1][l]) + acc[2][l]) + acc[3][l])
            .collect();
        dot = (s[0] + s[2]) + (s[1] + s[3]);
    }
    for j in n1..n {
        dot = y[j].mul_add(x[j], dot);
    }
    dot
}

/// `y += a·x` (fused).
fn daxpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = a.mul_add(*xi, *yi);
    }
}

/// `‖x‖₂`: the square root of the (nearly exact) sum of squares, as the x87 kernel gives it.
fn dnrm2(x: &[f64]) -> f64 {
    // Double-double accumulation of Σ xᵢ².
    let (mut hi, mut lo) = (0.0f64, 0.0f64);
    for &v in x {
        let p = v * v;
        let pe = v.mul_add(v, -p);
        let s = hi + p;
        let bb = s - hi;
        let se = (hi - (s - bb)) + (p - bb);
        hi = s;
        lo += se + pe;
    }
    let sum = hi + lo;
    let corr = lo - (sum - hi);
    if sum <= 0.0 || !sum.is_finite() {
        return sum.sqrt();
    }
    let r = sum.sqrt();
    // One Newton step on the double-double sum rounds the root correctly in practice.
    let resid = (-r).mul_add(r, sum) + corr;
    r + resid / (2.0 * r)
}

/// `y[c·incy] += alpha · Σ_r a[r, c] x[r]` for `n` columns of `m` rows (`a` column-major with
/// leading dimension `lda` from `a_off`), in the operation order of OpenBLAS's `dgemv_t`
/// (Haswell/SkylakeX): rows in multiples of 4 by 4-lane fused accumulation (columns in groups
/// of 4; 2- and 1-column remainders with separate multiply and add), the last `m mod 4` rows
/// added column by column.
#[allow(clippy::too_many_arguments)]
fn dgemv_t(
    m: usize,
    n: usize,
    alpha: f64,
    a: &[f64],
    a_off: usize,
    lda: usize,
    x: &[f64],
    y: &mut [f64],
    y_off: usize,
    incy: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let col = |c: usize| &a[a_off + lda * c..a_off + lda * c + m];
    let m3 = m & 3;
    let m2 = m - m3;
    if m2 > 0 {
        let k4 = |ac: &[f64]| {
            let mut acc = [0.0f64; 4];
            for r in 0..m2 {
                acc[r % 4] = ac[r].mul_add(x[r], acc[r % 4]);
            }
            (acc[0] + acc[2]) + (acc[1] + acc[3])
        };
        let k2 = |ac: &[f64]| {
            let mut acc = [0.0f64; 2];
            for r in 0..m2 {
                acc[r % 2] += ac[r] * x[r];
            }
            acc[0] + acc[1]
        };
        let k1 = |ac: &[f64]| {
            let (mut a10, mut a9) = ([0.0f64; 2], [0.0f64; 2]);
            for r in (0..m2).step_by(4) {
                for l in 0..2 {
                    a10[l] += ac[r + l] * x[r + l];
                    a9[l] += ac[r + 2 + l] * x[r + 2 + l];
                }
            }
            (a10[0] + a9[0]) + (a10[1] + a9[1])
        };
        let n1 = n >> 2;
        let n2 = n & 3;
        let mut c = 0;
        for _ in 0..4 * n1 {
            let t = k4(col(c));
            let yi = y_off + incy * c;
            y[yi] = t.mul_add(alpha, y[yi]);
            c += 1;
        }
        if n2 & 2 != 0 {
            for _ in 0..2 {
                let t = k2(col(c));
                let yi = y_off + incy * c;
                y[yi] = t.mul_add(alpha, y[yi]);
                c += 1;
            }
        }
        if n2 & 1 != 0 {
            let t = k1(col(c));
            let yi = y_off + incy * c;
            y[yi] = t.mul_add(alpha, y[yi]);
        }
    }
    if m3 == 0 {
        return;
    }
    let xt: Vec<f64> = (0..m3).map(|k| x[m2 + k] * alpha).collect();
    for c in 0..n {
        let ac = &col(c)[m2..];
        let yi = y_off + incy * c;
        match m3 {
            1 => y[yi] = ac[0].mul_add(xt[0], y[yi]),
            2 => y[yi] += ac[0].mul_add(xt[0], ac[1] * xt[1]),
            _ => y[yi] += ac[2].mul_add(xt[2], ac[0].mul_add(xt[0], ac[1] * xt[1])),
        }
    }
}

/// Cholesky factor `A = UᵀU` of the leading `n × n` block at `a[off..]` (column-major, leading
/// dimension `lda`), in place in the upper triangle, as OpenBLAS's unblocked `potf2` computes
/// it. Returns LAPACK's `info`.
fn dpotrf_upper(a: &mut [f64], off: usize, lda: usize, n: usize) -> i32 {
    let at = |i: usize, j: usize| off + i + lda * j;
    for j in 0..n {
        let colj: Vec<f64> = (0..j).map(|i| a[at(i, j)]).collect();
        let ajj = a[at(j, j)] - ddot(&colj, &colj);
        if ajj <= 0.0 {
            a[at(j, j)] = ajj;
            return (j + 1) as i32;
        }
        let ajj = ajj.sqrt();
        a[at(j, j)] = ajj;
        let rest = n - j - 1;
        if rest > 0 {
            // Row j right of the diagonal: a[j, k] -= Σ_i a[i, j] a[i, k], then scaled.
            let src: Vec<f64> = a.to_vec();
            dgemv_t(
                j,
                rest,
                -1.0,
                &src,
                at(0, j + 1),
                lda,
                &colj,
                a,
                at(j, j + 1),
                lda,
            );
            let inv = 1.0 / ajj;
            for k in j + 1..n {
                a[at(j, k)] *= inv;
            }
        }
    }
    0
}

/// Solves `U x = b` (`trans` false) or `Uᵀ x = b` (`trans` true) for `nrhs` right-hand sides,
/// `U` the upper triangle of the `n × n` block `a[a_off..]` (leading dimension `lda`), the
/// right-hand sides `b[b_off..]` (leading dimension `ldb`), overwritten; in OpenBLAS's order
/// (`trsv` for one right-hand side, the blocked `trsm` kernels otherwise). Returns LAPACK's
/// `info` (a zero diagonal element; nothing solved then).
#[allow(clippy::too_many_arguments)]
fn dtrtrs_upper(
    trans: bool,
    n: usize,
    nrhs: usize,
    a: &[f64],
    a_off: usize,
    lda: usize,
    b: &mut [f64],
    b_off: usize,
    ldb: usize,
) -> i32 {
    let at = |i: usize, j: usize| a_off + i + lda * j;
    for i in 0..n {
        if a[at(i, i)] == 0.0 {
            return (i + 1) as i32;
        }
    }
    for r in 0..nrhs {
        let col = b_off + ldb * r;
        if nrhs == 1 {
            if trans {
                for i in 0..n {
                    let ucol: Vec<f64> = (0..i).map(|k| a[at(k, i)]).collect();
                    let dot = ddot(&ucol, &b[col..col + i]);
                    b[col + i] = (b[col + i] - dot) / a[at(i, i)];
                }
            } else {
                for k in (0..n).rev() {
                    b[col + k] /= a[at(k, k)];
                    let xk = -b[col + k];
                    for i in 0..k {
                        b[col + i] = xk.mul_add(a[at(i, k)], b[col + i]);
                    }
                }
            }
        } else {
            // trsm: row blocks of 16, then of 8, 4, 2, 1 (GEMM_UNROLL_M); earlier blocks enter
            // through a fused dot product, a block is solved with reciprocal diagonals.
            let mut blocks = Vec::new();
            let mut s = 0;
            for _ in 0..n / 16 {
                blocks.push((s, s + 16));
                s += 16;
            }
            let mut w = 8;
            while w > 0 {
                if n & w != 0 {
                    blocks.push((s, s + w));
                    s += w;
                }
                w >>= 1;
            }
            if !trans {
                // U x = b runs from the bottom: mirror the block order.
                blocks = blocks.iter().rev().map(|&(s, e)| (n - e, n - s)).collect();
            }
            let x = &mut b[col..col + n];
            for &(s, e) in &blocks {
                for i in s..e {
                    let mut acc = 0.0f64;
                    if trans {
                        for k in 0..s {
                            acc = a[at(k, i)].mul_add(x[k], acc);
                        }
                    } else {
                        for k in e..n {
                            acc = a[at(i, k)].mul_add(x[k], acc);
                        }
                    }
                    if (trans && s > 0) || (!trans && e < n) {
                        x[i] -= acc;
                    }
                }
                if trans {
                    for i in s..e {
                        x[i] *= 1.0 / a[at(i, i)];
                        let xi = -x[i];
                        for k in i + 1..e {
                            x[k] = xi.mul_add(a[at(i, k)], x[k]);
                        }
                    }
                } else {
                    for i in (s..e).rev() {
                        x[i] *= 1.0 / a[at(i, i)];
                        let xi = -x[i];
                        for k in s..i {
                            x[k] = xi.mul_add(a[at(k, i)], x[k]);
                        }
                    }
                }
            }
        }
    }
    0
}

// ---------------------------------------------------------------------------------------------
// The routine.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Start,
    NewX,
    Restart,
    Fg,
    Convergence,
    Stop,
    Warning,
    Error,
    Abnormal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    None,
    FgStart,
    FgLnsrch,
    ConvGrad,
    ConvF,
    WarnRound,
    WarnStpmax,
    WarnStpmin,
    WarnXtol,
    ErrorNofeas,
    ErrorStp1,
    ErrorStp2,
    ErrorInitg,
    ErrorFtol,
    ErrorGtol,
    ErrorXtol,
    ErrorStpmin,
    ErrorStpmax,
}

/// The state `dcsrch` keeps between calls.
#[derive(Debug, Clone, Copy, Default)]
struct Dcsrch {
    brackt: bool,
    stage: i32,
    ginit: f64,
    gtest: f64,
    gx: f64,
    gy: f64,
    finit: f64,
    fx: f64,
    fy: f64,
    stx: f64,
    sty: f64,
    stmin: f64,
    stmax: f64,
    width: f64,
    width1: f64,
}

enum Label {
    L111,
    L222,
    L333,
    L555,
    L666,
    L777,
}

/// `mainlb`'s state between reverse-communication calls.
struct Lbfgsb {
    n: usize,
    m: usize,
    l: Vec<f64>,
    u: Vec<f64>,
    nbd: Vec<i32>,
    task: Task,
    msg: Msg,
    ln_task: Task,
    ln_msg: Msg,
    ls: Dcsrch,
    // Scalars.
    cnstnd: bool,
    boxed: bool,
    updatd: bool,
    iback: i64,
    head: usize,
    col: usize,
    itail: usize,
    iter: usize,
    iupdat: usize,
    nseg: usize,
    info: i32,
    ifun: i64,
    iword: i32,
    nfree: usize,
    ileave: usize,
    nenter: usize,
    theta: f64,
    fold: f64,
    tol: f64,
    dnorm: f64,
    gd: f64,
    stpmx: f64,
    sbgnrm: f64,
    stp: f64,
    gdold: f64,
    dtd: f64,
    // Arrays (column-major as in the routine).
    ws: Vec<f64>,
    wy: Vec<f64>,
    sy: Vec<f64>,
    ss: Vec<f64>,
    wt: Vec<f64>,
    wn: Vec<f64>,
    snd: Vec<f64>,
    z: Vec<f64>,
    r: Vec<f64>,
    d: Vec<f64>,
    t: Vec<f64>,
    xp: Vec<f64>,
    wa: Vec<f64>,
    index: Vec<usize>,
    iwhere: Vec<i32>,
    indx2: Vec<usize>,
}

impl Lbfgsb {
    fn new(n: usize, m: usize, l: Vec<f64>, u: Vec<f64>, nbd: Vec<i32>) -> Self {
        Lbfgsb {
            n,
            m,
            l,
            u,
            nbd,
            task: Task::Start,
            msg: Msg::None,
            ln_task: Task::Start,
            ln_msg: Msg::None,
            ls: Dcsrch::default(),
            cnstnd: false,
            boxed: false,
            updatd: false,
            iback: 0,
            head: 0,
            col: 0,
            itail: 0,
            iter: 0,
            iupdat: 0,
            nseg: 0,
            info: 0,
            ifun: 0,
            iword: 0,
            nfree: n,
            ileave: 0,
            nenter: 0,
            theta: 1.0,
            fold: 0.0,
            tol: 0.0,
            dnorm: 0.0,
            gd: 0.0,
            stpmx: 0.0,
            sbgnrm: 0.0,
            stp: 0.0,
            gdold: 0.0,
            dtd: 0.0,
            ws: vec![0.0; m * n],
            wy: vec![0.0; m * n],
            sy: vec![0.0; m * m],
            ss: vec![0.0; m * m],
            wt: vec![0.0; m * m],
            wn: vec![0.0; 4 * m * m],
            snd: vec![0.0; 4 * m * m],
            z: vec![0.0; n],
            r: vec![0.0; n],
            d: vec![0.0; n],
            t: vec![0.0; n],
            xp: vec![0.0; n],
            wa: vec![0.0; 8 * m],
            index: vec![0; n],
            iwhere: vec![0; n],
            indx2: vec![0; n],
        }
    }

    /// Forgets the BFGS memory.
    fn reset_memory(&mut self) {
        self.col = 0;
        self.head = 0;
        self.theta = 1.0;
        self.iupdat = 0;
        self.updatd = false;
    }

    /// One call of the routine (`mainlb`). `f` is passed by value as scipy's wrapper does: the
    /// routine's own changes to it are returned (the objective at `x` after the call) but do
    /// not reach the driver's copy.
    fn setulb(
        &mut self,
        x: &mut [f64],
        f_in: f64,
        g: &mut [f64],
        factr: f64,
        pgtol: f64,
        maxls: usize,
    ) -> f64 {
        let mut f = f_in;
        let n = self.n;
        let mut wrk = false;
        let mut label;
        if self.task == Task::Start {
            self.col = 0;
            self.head = 0;
            self.theta = 1.0;
            self.iupdat = 0;
            self.updatd = false;
            self.iback = 0;
            self.itail = 0;
            self.iword = 0;
            self.ileave = 0;
            self.nenter = 0;
            self.fold = 0.0;
            self.dnorm = 0.0;
            self.gd = 0.0;
            self.sbgnrm = 0.0;
            self.stp = 0.0;
            self.gdold = 0.0;
            self.dtd = 0.0;
            self.iter = 0;
            self.nseg = 0;
            self.nfree = n;
            self.ifun = 0;
            self.tol = factr * EPSMACH;
            self.info = 0;
            if factr < 0.0
                || (0..n).any(|i| self.nbd[i] == 2 && self.l[i] > self.u[i])
                || self.m == 0
                || n == 0
            {
                self.task = Task::Error;
                self.msg = Msg::ErrorNofeas;
                return f;
            }
            self.active(x);
            self.task = Task::Fg;
            self.msg = Msg::FgStart;
            return f;
        }
        label = match (self.task, self.msg) {
            (Task::Fg, Msg::FgLnsrch) => Label::L666,
            (Task::NewX, _) => Label::L777,
            (Task::Fg, Msg::FgStart) => Label::L111,
            (Task::Stop, _) => return f,
            _ => {
                self.task = Task::Fg;
                self.msg = Msg::FgStart;
                return f;
            }
        };
        loop {
            match label {
                Label::L111 => {
                    self.sbgnrm = projgr(&self.l, &self.u, &self.nbd, x, g);
                    if self.sbgnrm <= pgtol {
                        self.task = Task::Convergence;
                        self.msg = Msg::ConvGrad;
                        return f;
                    }
                    label = Label::L222;
                }
                Label::L222 => {
                    self.iword = -1;
                    if !self.cnstnd && self.col > 0 {
                        self.z.copy_from_slice(x);
                        wrk = self.updatd;
                        self.nseg = 0;
                        label = Label::L333;
                        continue;
                    }
                    let (p, rest) = self.wa.split_at_mut(2 * self.m);
                    let (c, rest) = rest.split_at_mut(2 * self.m);
                    let (wbp, v) = rest.split_at_mut(2 * self.m);
                    self.info = cauchy(
                        n,
                        x,
                        &self.l,
                        &self.u,
                        &self.nbd,
                        g,
                        &mut self.indx2,
                        &mut self.iwhere,
                        &mut self.t,
                        &mut self.d,
                        &mut self.z,
                        self.m,
                        &self.wy,
                        &self.ws,
                        &self.sy,
                        &self.wt,
                        self.theta,
                        self.col,
                        self.head,
                        p,
                        c,
                        wbp,
                        v,
                        &mut self.nseg,
                        self.sbgnrm,
                    );
                    if self.info != 0 {
                        self.info = 0;
                        self.reset_memory();
                        label = Label::L222;
                        continue;
                    }
                    wrk = self.freev();
                    label = Label::L333;
                }
                Label::L333 => {
                    if self.nfree == 0 || self.col == 0 {
                        label = Label::L555;
                        continue;
                    }
                    if wrk {
                        self.info = self.formk();
                    }
                    if self.info != 0 {
                        self.info = 0;
                        self.reset_memory();
                        label = Label::L222;
                        continue;
                    }
                    self.info = self.cmprlb(x, g);
                    if self.info == 0 {
                        self.info = self.subsm(x, g);
                    }
                    if self.info != 0 {
                        self.info = 0;
                        self.reset_memory();
                        label = Label::L222;
                        continue;
                    }
                    label = Label::L555;
                }
                Label::L555 => {
                    for i in 0..n {
                        self.d[i] = self.z[i] - x[i];
                    }
                    label = Label::L666;
                }
                Label::L666 => {
                    self.lnsrlb(x, f, g);
                    if self.info != 0 || self.iback >= maxls as i64 {
                        x.copy_from_slice(&self.t);
                        g.copy_from_slice(&self.r);
                        f = self.fold;
                        if self.col == 0 {
                            if self.info == 0 {
                                self.info = -9;
                                self.ifun -= 1;
                                self.iback -= 1;
                            }
                            self.task = Task::Abnormal;
                            self.msg = Msg::None;
                            self.iter += 1;
                            return f;
                        }
                        self.info = 0;
                        self.reset_memory();
                        self.task = Task::Restart;
                        self.msg = Msg::None;
                        label = Label::L222;
                        continue;
                    }
                    if self.task == Task::Fg && self.msg == Msg::FgLnsrch {
                        return f;
                    }
                    self.iter += 1;
                    self.sbgnrm = projgr(&self.l, &self.u, &self.nbd, x, g);
                    return f;
                }
                Label::L777 => {
                    if self.sbgnrm <= pgtol {
                        self.task = Task::Convergence;
                        self.msg = Msg::ConvGrad;
                        return f;
                    }
                    let ddum = self.fold.abs().max(f.abs()).max(1.0);
                    if self.fold - f <= self.tol * ddum {
                        self.task = Task::Convergence;
                        self.msg = Msg::ConvF;
                        if self.iback >= 10 {
                            self.info = -5;
                        }
                        return f;
                    }
                    for i in 0..n {
                        self.r[i] = g[i] - self.r[i];
                    }
                    let rn = dnrm2(&self.r);
                    let rr = rn * rn;
                    let (dr, ddum) = if self.stp == 1.0 {
                        (self.gd - self.gdold, -self.gdold)
                    } else {
                        let stp = self.stp;
                        for v in self.d.iter_mut() {
                            *v *= stp;
                        }
                        ((self.gd - self.gdold) * stp, -self.gdold * stp)
                    };
                    if dr <= EPSMACH * ddum {
                        self.updatd = false;
                        label = Label::L222;
                        continue;
                    }
                    self.updatd = true;
                    self.iupdat += 1;
                    self.matupd(rr, dr);
                    self.info = formt(
                        self.m,
                        &mut self.wt,
                        &self.sy,
                        &self.ss,
                        self.col,
                        self.theta,
                    );
                    if self.info != 0 {
                        self.info = 0;
                        self.reset_memory();
                    }
                    label = Label::L222;
                }
            }
        }
    }

    /// Projects `x` into the bounds and classifies the variables (`active`).
    fn active(&mut self, x: &mut [f64]) {
        self.cnstnd = false;
        self.boxed = true;
        for i in 0..self.n {
            if self.nbd[i] > 0 {
                if self.nbd[i] <= 2 && x[i] <= self.l[i] {
                    if x[i] < self.l[i] {
                        x[i] = self.l[i];
                    }
                } else if self.nbd[i] >= 2 && x[i] >= self.u[i] && x[i] > self.u[i] {
                    x[i] = self.u[i];
                }
            }
        }
        for i in 0..self.n {
            if self.nbd[i] != 2 {
                self.boxed = false;
            }
            if self.nbd[i] == 0 {
                self.iwhere[i] = -1;
            } else {
                self.cnstnd = true;
                self.iwhere[i] = if self.nbd[i] == 2 && self.u[i] - self.l[i] <= 0.0 {
                    3
                } else {
                    0
                };
            }
        }
    }

    /// The free/active partition at the Cauchy point and its changes (`freev`); returns `wrk`
    /// (whether the reduced matrix must be rebuilt).
    fn freev(&mut self) -> bool {
        let n = self.n;
        self.nenter = 0;
        self.ileave = n;
        if self.iter > 0 && self.cnstnd {
            for i in 0..self.nfree {
                let k = self.index[i];
                if self.iwhere[k] > 0 {
                    self.ileave -= 1;
                    self.indx2[self.ileave] = k;
                }
            }
            for i in self.nfree..n {
                let k = self.index[i];
                if self.iwhere[k] <= 0 {
                    self.indx2[self.nenter] = k;
                    self.nenter += 1;
                }
            }
        }
        let wrk = self.ileave < n || self.nenter > 0 || self.updatd;
        self.nfree = 0;
        let mut iact = n;
        for i in 0..n {
            if self.iwhere[i] <= 0 {
                self.index[self.nfree] = i;
                self.nfree += 1;
            } else {
                iact -= 1;
                self.index[iact] = i;
            }
        }
        wrk
    }

    /// The reduced system for the subspace minimisation (`formk`): the 2col × 2col matrix
    /// `[[Y'ZZ'Y/θ + D, ...], [..., θ S'AA'S ...]]` factored in `wn`, with its inner products
    /// kept up to date in `snd`.
    fn formk(&mut self) -> i32 {
        let (n, m) = (self.n, self.m);
        let m2 = 2 * m;
        let (col, head, theta) = (self.col, self.head, self.theta);
        let ws = &self.ws;
        let wy = &self.wy;
        let wn1 = &mut self.snd;
        let wn = &mut self.wn;
        let ind = &self.index;
        let indx2 = &self.indx2;
        let nsub = self.nfree;
        let upcl;
        if self.updatd {
            if self.iupdat > m {
                // Shift the old part of wn1 up-left by one.
                for jy in 0..m - 1 {
                    let js = m + jy;
                    let cnt = m - (jy + 1);
                    for k in 0..cnt {
                        wn1[jy + m2 * jy + k] = wn1[(jy + 1) + m2 * (jy + 1) + k];
                        wn1[js + m2 * js + k] = wn1[(js + 1) + m2 * (js + 1) + k];
                    }
                    for k in 0..m - 1 {
                        wn1[m + m2 * jy + k] = wn1[(m + 1) + m2 * (jy + 1) + k];
                    }
                }
            }
            // The new row of blocks (1,1), (2,2) and (2,1).
            let iy = col - 1;
            let is = m + col - 1;
            let mut ipntr = head + col - 1;
            if ipntr >= m {
                ipntr -= m;
            }
            let mut jpntr = head;
            for jy in 0..col {
                let js = m + jy;
                let mut temp1 = 0.0;
                let mut temp2 = 0.0;
                let mut temp3 = 0.0;
                for &k1 in &ind[0..nsub] {
                    temp1 += wy[k1 + n * ipntr] * wy[k1 + n * jpntr];
                }
                for &k1 in &ind[nsub..n] {
                    temp2 += ws[k1 + n * ipntr] * ws[k1 + n * jpntr];
                    temp3 += ws[k1 + n * ipntr] * wy[k1 + n * jpntr];
                }
                wn1[iy + m2 * jy] = temp1;
                wn1[is + m2 * js] = temp2;
                wn1[is + m2 * jy] = temp3;
                jpntr = (jpntr + 1) % m;
            }
            // The new column of block (2,1).
            let jy = col - 1;
            let mut jpntr = head + col - 1;
            if jpntr >= m {
                jpntr -= m;
            }
            let mut ipntr = head;
            for i in 0..col {
                let is = m + i;
                let mut temp3 = 0.0;
                for &k1 in &ind[0..nsub] {
                    temp3 += ws[k1 + n * ipntr] * wy[k1 + n * jpntr];
                }
                ipntr = (ipntr + 1) % m;
                wn1[is + m2 * jy] = temp3;
            }
            upcl = col - 1;
        } else {
            upcl = col;
        }
        // Modify the old parts for variables that entered or left the free set.
        let nenter = self.nenter;
        let ileave = self.ileave;
        let mut ipntr = head;
        for iy in 0..upcl {
            let is = m + iy;
            let mut jpntr = head;
            for jy in 0..=iy {
                let js = m + jy;
                let (mut temp1, mut temp2, mut temp3, mut temp4) = (0.0, 0.0, 0.0, 0.0);
                for &k1 in &indx2[0..nenter] {
                    temp1 += wy[k1 + n * ipntr] * wy[k1 + n * jpntr];
                    temp2 += ws[k1 + n * ipntr] * ws[k1 + n * jpntr];
                }
                for &k1 in &indx2[ileave..n] {
                    temp3 += wy[k1 + n * ipntr] * wy[k1 + n * jpntr];
                    temp4 += ws[k1 + n * ipntr] * ws[k1 + n * jpntr];
                }
                wn1[iy + m2 * jy] = wn1[iy + m2 * jy] + temp1 - temp3;
                wn1[is + m2 * js] = wn1[is + m2 * js] - temp2 + temp4;
                jpntr = (jpntr + 1) % m;
            }
            ipntr = (ipntr + 1) % m;
        }
        let mut ipntr = head;
        for is in m..m + upcl {
            let mut jpntr = head;
            for jy in 0..upcl {
                let mut temp1 = 0.0;
                let mut temp3 = 0.0;
                for &k1 in &indx2[0..nenter] {
                    temp1 += ws[k1 + n * ipntr] * wy[k1 + n * jpntr];
                }
                for &k1 in &indx2[ileave..n] {
                    temp3 += ws[k1 + n * ipntr] * wy[k1 + n * jpntr];
                }
                if is <= jy + m {
                    wn1[is + m2 * jy] = wn1[is + m2 * jy] + temp1 - temp3;
                } else {
                    wn1[is + m2 * jy] = wn1[is + m2 * jy] - temp1 + temp3;
                }
                jpntr = (jpntr + 1) % m;
            }
            ipntr = (ipntr + 1) % m;
        }
        // The upper triangle of the 2col × 2col matrix.
        for iy in 0..col {
            let is = col + iy;
            let is1 = m + iy;
            for jy in 0..=iy {
                let js = col + jy;
                let js1 = m + jy;
                wn[jy + m2 * iy] = wn1[iy + m2 * jy] / theta;
                wn[js + m2 * is] = wn1[is1 + m2 * js1] * theta;
            }
            for jy in 0..iy {
                wn[jy + m2 * is] = -wn1[is1 + m2 * jy];
            }
            for jy in iy..col {
                wn[jy + m2 * is] = wn1[is1 + m2 * jy];
            }
            wn[iy + m2 * iy] += self.sy[iy + m * iy];
        }
        // Factor the (1,1) block, solve for the (1,2) block, form and factor the (2,2) block.
        if dpotrf_upper(wn, 0, m2, col) != 0 {
            return -1;
        }
        let col2 = 2 * col;
        let a_copy: Vec<f64> = wn.clone();
        dtrtrs_upper(true, col, col, &a_copy, 0, m2, wn, m2 * col, m2);
        for is in col..col2 {
            for js in is..col2 {
                let dot = ddot(&wn[m2 * is..m2 * is + col], &wn[m2 * js..m2 * js + col]);
                wn[is + m2 * js] += dot;
            }
        }
        if dpotrf_upper(wn, col + m2 * col, m2, col) != 0 {
            return -2;
        }
        0
    }

    /// `r = −Z'(B(xcp − x) + g)` (`cmprlb`).
    fn cmprlb(&mut self, x: &[f64], g: &[f64]) -> i32 {
        let (n, m, col) = (self.n, self.m, self.col);
        if !self.cnstnd && col > 0 {
            for i in 0..n {
                self.r[i] = -g[i];
            }
            return 0;
        }
        for i in 0..self.nfree {
            let k = self.index[i];
            self.r[i] = -self.theta * (self.z[k] - x[k]) - g[k];
        }
        let (p, rest) = self.wa.split_at_mut(2 * m);
        let c = &rest[..2 * m];
        if bmv(m, &self.sy, &self.wt, col, c, p) != 0 {
            return -8;
        }
        let mut pointr = self.head;
        for j in 0..col {
            let a1 = self.wa[j];
            let a2 = self.theta * self.wa[col + j];
            for i in 0..self.nfree {
                let k = self.index[i];
                self.r[i] = self.r[i] + self.wy[k + n * pointr] * a1 + self.ws[k + n * pointr] * a2;
            }
            pointr = (pointr + 1) % m;
        }
        0
    }

    /// Direct primal subspace minimisation with the projected backtrack of version 3.0
    /// (`subsm`). Moves `z` (the Cauchy point) towards the subspace minimum; `r` holds the
    /// reduced gradient on entry.
    fn subsm(&mut self, xx: &[f64], gg: &[f64]) -> i32 {
        let (n, m, col, head, theta) = (self.n, self.m, self.col, self.head, self.theta);
        let nsub = self.nfree;
        if nsub == 0 {
            return 0;
        }
        let ind = &self.index;
        let d = &mut self.r;
        let x = &mut self.z;
        let (l, u, nbd) = (&self.l, &self.u, &self.nbd);
        let wv = &mut self.wa[..2 * m];
        // wv = W'Zd.
        let mut pointr = head;
        for i in 0..col {
            let mut temp1 = 0.0;
            let mut temp2 = 0.0;
            for j in 0..nsub {
                let k = ind[j];
                temp1 += self.wy[k + n * pointr] * d[j];
                temp2 += self.ws[k + n * pointr] * d[j];
            }
            wv[i] = temp1;
            wv[col + i] = theta * temp2;
            pointr = (pointr + 1) % m;
        }
        // wv = K⁻¹ wv.
        let m2 = 2 * m;
        let col2 = 2 * col;
        let info = dtrtrs_upper(true, col2, 1, &self.wn, 0, m2, wv, 0, m2);
        if info != 0 {
            return info;
        }
        for v in wv[..col].iter_mut() {
            *v = -*v;
        }
        let info = dtrtrs_upper(false, col2, 1, &self.wn, 0, m2, wv, 0, m2);
        if info != 0 {
            return info;
        }
        // d = (1/θ)d + (1/θ²)Z'W wv.
        let mut pointr = head;
        for jy in 0..col {
            let js = col + jy;
            for i in 0..nsub {
                let k = ind[i];
                d[i] = d[i]
                    + (self.wy[k + n * pointr] * wv[jy] / theta)
                    + (self.ws[k + n * pointr] * wv[js]);
            }
            pointr = (pointr + 1) % m;
        }
        let temp = 1.0 / theta;
        for v in d[..nsub].iter_mut() {
            *v *= temp;
        }
        // Move to the subspace minimum, projected.
        self.iword = 0;
        self.xp.copy_from_slice(x);
        for i in 0..nsub {
            let k = ind[i];
            let dk = d[i];
            let xk = x[k];
            match nbd[k] {
                0 => x[k] = xk + dk,
                1 => {
                    x[k] = l[k].max(xk + dk);
                    if x[k] == l[k] {
                        self.iword = 1;
                    }
                }
                2 => {
                    let xk = l[k].max(xk + dk);
                    x[k] = u[k].min(xk);
                    if x[k] == l[k] || x[k] == u[k] {
                        self.iword = 1;
                    }
                }
                3 => {
                    x[k] = u[k].min(xk + dk);
                    if x[k] == u[k] {
                        self.iword = 1;
                    }
                }
                _ => {}
            }
        }
        if self.iword == 0 {
            return 0;
        }
        // Is the projected point a descent direction? If not, backtrack to the box.
        let mut dd_p = 0.0;
        for i in 0..n {
            dd_p += (x[i] - xx[i]) * gg[i];
        }
        if dd_p > 0.0 {
            x.copy_from_slice(&self.xp);
        } else {
            return 0;
        }
        let mut alpha: f64 = 1.0;
        let mut temp1: f64 = 1.0;
        let mut ibd = 0;
        for i in 0..nsub {
            let k = ind[i];
            let dk = d[i];
            if nbd[k] != 0 {
                if dk < 0.0 && nbd[k] <= 2 {
                    let temp2 = l[k] - x[k];
                    if temp2 >= 0.0 {
                        temp1 = 0.0;
                    } else if dk * alpha < temp2 {
                        temp1 = temp2 / dk;
                    }
                } else if dk > 0.0 && nbd[k] >= 2 {
                    let temp2 = u[k] - x[k];
                    if temp2 <= 0.0 {
                        temp1 = 0.0;
                    } else if dk * alpha > temp2 {
                        temp1 = temp2 / dk;
                    }
                }
                if temp1 < alpha {
                    alpha = temp1;
                    ibd = i;
                }
            }
        }
        if alpha < 1.0 {
            let dk = d[ibd];
            let k = ind[ibd];
            if dk > 0.0 {
                x[k] = u[k];
                d[ibd] = 0.0;
            } else if dk < 0.0 {
                x[k] = l[k];
                d[ibd] = 0.0;
            }
        }
        for i in 0..nsub {
            let k = ind[i];
            x[k] += alpha * d[i];
        }
        0
    }

    /// The line search along `d` (`lnsrlb`).
    fn lnsrlb(&mut self, x: &mut [f64], f: f64, g: &[f64]) {
        let n = self.n;
        let (ftol, gtol, xtol) = (1e-3, 0.9, 0.1);
        if self.msg != Msg::FgLnsrch {
            self.dnorm = dnrm2(&self.d);
            self.dtd = self.dnorm * self.dnorm;
            self.stpmx = 1e10;
            if self.cnstnd {
                if self.iter == 0 {
                    self.stpmx = 1.0;
                } else {
                    for i in 0..n {
                        let a1 = self.d[i];
                        if self.nbd[i] != 0 {
                            if a1 < 0.0 && self.nbd[i] <= 2 {
                                let a2 = self.l[i] - x[i];
                                if a2 >= 0.0 {
                                    self.stpmx = 0.0;
                                } else if a1 * self.stpmx < a2 {
                                    self.stpmx = a2 / a1;
                                }
                            } else if a1 > 0.0 && self.nbd[i] >= 2 {
                                let a2 = self.u[i] - x[i];
                                if a2 <= 0.0 {
                                    self.stpmx = 0.0;
                                } else if a1 * self.stpmx > a2 {
                                    self.stpmx = a2 / a1;
                                }
                            }
                        }
                    }
                }
            }
            self.stp = if self.iter == 0 && !self.boxed {
                (1.0 / self.dnorm).min(self.stpmx)
            } else {
                1.0
            };
            self.t.copy_from_slice(x);
            self.r.copy_from_slice(g);
            self.fold = f;
            self.ifun = 0;
            self.iback = 0;
            self.ln_task = Task::Start;
            self.ln_msg = Msg::None;
        }
        self.gd = ddot(g, &self.d);
        if self.ifun == 0 {
            self.gdold = self.gd;
            if self.gd >= 0.0 {
                // Not a descent direction (rounding errors or a bad search direction).
                self.info = -4;
                return;
            }
        }
        self.dcsrch(f, self.gd, ftol, gtol, xtol, 0.0, self.stpmx);
        if self.ln_task != Task::Convergence && self.ln_task != Task::Warning {
            self.task = Task::Fg;
            self.msg = Msg::FgLnsrch;
            self.ifun += 1;
            self.iback = self.ifun - 1;
            if self.stp == 1.0 {
                x.copy_from_slice(&self.z);
            } else {
                for i in 0..n {
                    x[i] = self.stp * self.d[i] + self.t[i];
                    if self.nbd[i] == 1 || self.nbd[i] == 2 {
                        x[i] = x[i].max(self.l[i]);
                    }
                    if self.nbd[i] == 2 || self.nbd[i] == 3 {
                        x[i] = x[i].min(self.u[i]);
                    }
                }
            }
        } else {
            self.task = Task::NewX;
            self.msg = Msg::None;
        }
    }

    /// Stores the new correction pair and updates `sy`, `ss` and θ (`matupd`).
    fn matupd(&mut self, rr: f64, dr: f64) {
        let (n, m) = (self.n, self.m);
        if self.iupdat <= m {
            self.col = self.iupdat;
            self.itail = (self.head + self.iupdat - 1) % m;
        } else {
            self.itail = (self.itail + 1) % m;
            self.head = (self.head + 1) % m;
        }
        let it = self.itail;
        self.ws[it * n..(it + 1) * n].copy_from_slice(&self.d);
        self.wy[it * n..(it + 1) * n].copy_from_slice(&self.r);
        self.theta = rr / dr;
        let col = self.col;
        if self.iupdat > m {
            // Drop the oldest column/row of ss and sy.
            for j in 1..col {
                for k in 0..j {
                    self.ss[m * (j - 1) + k] = self.ss[1 + m * j + k];
                }
                for k in 0..col - j {
                    self.sy[(j - 1) + m * (j - 1) + k] = self.sy[j + m * j + k];
                }
            }
        }
        let mut pointr = self.head;
        for j in 0..col - 1 {
            self.sy[col - 1 + m * j] = ddot(&self.d, &self.wy[pointr * n..(pointr + 1) * n]);
            self.ss[j + m * (col - 1)] = ddot(&self.ws[pointr * n..(pointr + 1) * n], &self.d);
            pointr = (pointr + 1) % m;
        }
        self.ss[(col - 1) + m * (col - 1)] = if self.stp == 1.0 {
            self.dtd
        } else {
            self.stp * self.stp * self.dtd
        };
        self.sy[(col - 1) + m * (col - 1)] = dr;
    }

    /// The Moré–Thuente line search (`dcsrch`): updates `self.stp` and `self.ln_task`.
    #[allow(clippy::too_many_arguments)]
    fn dcsrch(
        &mut self,
        f: f64,
        g: f64,
        ftol: f64,
        gtol: f64,
        xtol: f64,
        stpmin: f64,
        stpmax: f64,
    ) {
        let (xtrapl, xtrapu) = (1.1, 4.0);
        let stp = &mut self.stp;
        let s = &mut self.ls;
        if self.ln_task == Task::Start {
            let mut err = None;
            if *stp < stpmin {
                err = Some(Msg::ErrorStp1);
            }
            if *stp > stpmax {
                err = Some(Msg::ErrorStp2);
            }
            if g >= 0.0 {
                err = Some(Msg::ErrorInitg);
            }
            if ftol < 0.0 {
                err = Some(Msg::ErrorFtol);
            }
            if gtol < 0.0 {
                err = Some(Msg::ErrorGtol);
            }
            if xtol < 0.0 {
                err = Some(Msg::ErrorXtol);
            }
            if stpmin < 0.0 {
                err = Some(Msg::ErrorStpmin);
            }
            if stpmax < stpmin {
                err = Some(Msg::ErrorStpmax);
            }
            if let Some(e) = err {
                self.ln_task = Task::Error;
                self.ln_msg = e;
                return;
            }
            s.brackt = false;
            s.stage = 1;
            s.finit = f;
            s.ginit = g;
            s.gtest = ftol * s.ginit;
            s.width = stpmax - stpmin;
            s.width1 = s.width / 0.5;
            s.stx = 0.0;
            s.fx = s.finit;
            s.gx = s.ginit;
            s.sty = 0.0;
            s.fy = s.finit;
            s.gy = s.ginit;
            s.stmin = 0.0;
            s.stmax = *stp + xtrapu * *stp;
            self.ln_task = Task::Fg;
            self.ln_msg = Msg::None;
            return;
        }
        let ftest = s.finit + *stp * s.gtest;
        if s.stage == 1 && f <= ftest && g >= 0.0 {
            s.stage = 2;
        }
        if s.brackt && (*stp <= s.stmin || *stp >= s.stmax) {
            self.ln_task = Task::Warning;
            self.ln_msg = Msg::WarnRound;
        }
        if s.brackt && (s.stmax - s.stmin) <= xtol * s.stmax {
            self.ln_task = Task::Warning;
            self.ln_msg = Msg::WarnXtol;
        }
        if *stp == stpmax && f <= ftest && g <= s.gtest {
            self.ln_task = Task::Warning;
            self.ln_msg = Msg::WarnStpmax;
        }
        if *stp == stpmin && (f > ftest || g >= s.gtest) {
            self.ln_task = Task::Warning;
            self.ln_msg = Msg::WarnStpmin;
        }
        if f <= ftest && g.abs() <= gtol * (-s.ginit) {
            self.ln_task = Task::Convergence;
        }
        if self.ln_task == Task::Warning || self.ln_task == Task::Convergence {
            return;
        }
        if s.stage == 1 && f <= s.fx && f > ftest {
            // The modified function.
            let fm = f - *stp * s.gtest;
            let mut fxm = s.fx - s.stx * s.gtest;
            let mut fym = s.fy - s.sty * s.gtest;
            let gm = g - s.gtest;
            let mut gxm = s.gx - s.gtest;
            let mut gym = s.gy - s.gtest;
            dcstep(
                &mut s.stx,
                &mut fxm,
                &mut gxm,
                &mut s.sty,
                &mut fym,
                &mut gym,
                stp,
                fm,
                gm,
                &mut s.brackt,
                s.stmin,
                s.stmax,
            );
            s.fx = fxm + s.stx * s.gtest;
            s.fy = fym + s.sty * s.gtest;
            s.gx = gxm + s.gtest;
            s.gy = gym + s.gtest;
        } else {
            dcstep(
                &mut s.stx,
                &mut s.fx,
                &mut s.gx,
                &mut s.sty,
                &mut s.fy,
                &mut s.gy,
                stp,
                f,
                g,
                &mut s.brackt,
                s.stmin,
                s.stmax,
            );
        }
        if s.brackt {
            if (s.sty - s.stx).abs() >= 0.66 * s.width1 {
                *stp = s.stx + 0.5 * (s.sty - s.stx);
            }
            s.width1 = s.width;
            s.width = (s.sty - s.stx).abs();
        }
        if s.brackt {
            s.stmin = s.stx.min(s.sty);
            s.stmax = s.stx.max(s.sty);
        } else {
            s.stmin = *stp + xtrapl * (*stp - s.stx);
            s.stmax = *stp + xtrapu * (*stp - s.stx);
        }
        *stp = stp.max(stpmin);
        *stp = stp.min(stpmax);
        if s.brackt && (*stp <= s.stmin || *stp >= s.stmax || s.stmax - s.stmin <= xtol * s.stmax) {
            *stp = s.stx;
        }
        self.ln_task = Task::Fg;
        self.ln_msg = Msg::None;
    }
}

/// The infinity norm of the projected gradient (`projgr`); NaN if a component is NaN.
fn projgr(l: &[f64], u: &[f64], nbd: &[i32], x: &[f64], g: &[f64]) -> f64 {
    let mut sbgnrm: f64 = 0.0;
    for i in 0..x.len() {
        let mut gi = g[i];
        if gi.is_nan() {
            return gi;
        }
        if nbd[i] != 0 {
            if gi < 0.0 {
                if nbd[i] >= 2 {
                    gi = (x[i] - u[i]).max(gi);
                }
            } else if nbd[i] <= 2 {
                gi = (x[i] - l[i]).min(gi);
            }
        }
        sbgnrm = sbgnrm.max(gi.abs());
    }
    sbgnrm
}

/// `p = M v` for the middle matrix of the compact L-BFGS representation (`bmv`).
fn bmv(m: usize, sy: &[f64], wt: &[f64], col: usize, v: &[f64], p: &mut [f64]) -> i32 {
    if col == 0 {
        return 0;
    }
    p[col] = v[col];
    for i in 1..col {
        let i2 = col + i;
        let mut ssum = 0.0;
        for k in 0..i {
            ssum += sy[i + m * k] * v[k] / sy[k + m * k];
        }
        p[i2] = v[i2] + ssum;
    }
    let info = dtrtrs_upper(true, col, 1, wt, 0, m, p, col, col);
    if info != 0 {
        return info;
    }
    for i in 0..col {
        p[i] = v[i] / sy[i + m * i].sqrt();
    }
    let info = dtrtrs_upper(false, col, 1, wt, 0, m, p, col, col);
    if info != 0 {
        return info;
    }
    for i in 0..col {
        p[i] = -p[i] / sy[i + m * i].sqrt();
    }
    for i in 0..col {
        let mut ssum = 0.0;
        for k in i + 1..col {
            ssum += sy[k + m * i] * p[col + k] / sy[i + m * i];
        }
        p[i] += ssum;
    }
    0
}

/// Factors `θ S'S + L D⁻¹ L'` into `wt` (`formt`).
fn formt(m: usize, wt: &mut [f64], sy: &[f64], ss: &[f64], col: usize, theta: f64) -> i32 {
    for j in 0..col {
        wt[m * j] = theta * ss[m * j];
    }
    for i in 1..col {
        for j in i..col {
            let k1 = i.min(j);
            let mut ddum = 0.0;
            for k in 0..k1 {
                ddum += (sy[i + m * k] * sy[j + m * k]) / sy[k + m * k];
            }
            wt[i + m * j] = ddum + theta * ss[i + m * j];
        }
    }
    if dpotrf_upper(wt, 0, m, col) != 0 {
        return -3;
    }
    0
}

/// The heap step of the breakpoint sort (`hpsolb`): with `iheap == 0` builds a heap of
/// `t[0..=n]` first; then moves the least breakpoint to `t[n]`.
fn hpsolb(n: usize, t: &mut [f64], iorder: &mut [usize], iheap: usize) {
    if iheap == 0 {
        for k in 2..=n + 1 {
            let ddum = t[k - 1];
            let indxin = iorder[k - 1];
            let mut i = k;
            while i > 1 {
                let j = i / 2;
                if ddum < t[j - 1] {
                    t[i - 1] = t[j - 1];
                    iorder[i - 1] = iorder[j - 1];
                    i = j;
                } else {
                    break;
                }
            }
            t[i - 1] = ddum;
            iorder[i - 1] = indxin;
        }
    }
    if n > 0 {
        let mut i = 1;
        let out = t[0];
        let indxout = iorder[0];
        let ddum = t[n];
        let indxin = iorder[n];
        loop {
            let mut j = i + i;
            if j <= n {
                if t[j] < t[j - 1] {
                    j += 1;
                }
                if t[j - 1] < ddum {
                    t[i - 1] = t[j - 1];
                    iorder[i - 1] = iorder[j - 1];
                    i = j;
                } else {
                    break;
                }
            } else {
                break;
            }
        }
        t[i - 1] = ddum;
        iorder[i - 1] = indxin;
        t[n] = out;
        iorder[n] = indxout;
    }
}

/// The generalized Cauchy point (`cauchy`): the first local minimiser of the quadratic model
/// along the projected steepest-descent path, into `xcp`; `c = W'(xcp − x)` for the subspace
/// step. Returns `info` (non-zero: a singular triangular system).
#[allow(clippy::too_many_arguments)]
fn cauchy(
    n: usize,
    x: &[f64],
    l: &[f64],
    u: &[f64],
    nbd: &[i32],
    g: &[f64],
    iorder: &mut [usize],
    iwhere: &mut [i32],
    t: &mut [f64],
    d: &mut [f64],
    xcp: &mut [f64],
    m: usize,
    wy: &[f64],
    ws: &[f64],
    sy: &[f64],
    wt: &[f64],
    theta: f64,
    col: usize,
    head: usize,
    p: &mut [f64],
    c: &mut [f64],
    wbp: &mut [f64],
    v: &mut [f64],
    nseg: &mut usize,
    sbgnrm: f64,
) -> i32 {
    if sbgnrm <= 0.0 {
        xcp.copy_from_slice(x);
        return 0;
    }
    let mut f1: f64 = 0.0;
    let mut tl = 0.0;
    let mut tu = 0.0;
    let mut bnded = true;
    let mut nfree = n;
    // Breakpoints counted from 0 (`nbreak` is one less than the count; -1 = none).
    let mut nbreak: i64 = -1;
    let mut ibkmin: usize = 0;
    let mut bkmin = 0.0;
    let col2 = 2 * col;
    for v in p[..col2].iter_mut() {
        *v = 0.0;
    }
    for i in 0..n {
        let neggi = -g[i];
        if iwhere[i] != 3 && iwhere[i] != -1 {
            if nbd[i] <= 2 {
                tl = x[i] - l[i];
            }
            if nbd[i] >= 2 {
                tu = u[i] - x[i];
            }
            let xlower = nbd[i] <= 2 && tl <= 0.0;
            let xupper = nbd[i] >= 2 && tu <= 0.0;
            iwhere[i] = 0;
            if xlower {
                if neggi <= 0.0 {
                    iwhere[i] = 1;
                }
            } else if xupper {
                if neggi >= 0.0 {
                    iwhere[i] = 2;
                }
            } else if neggi.abs() <= 0.0 {
                iwhere[i] = -3;
            }
        }
        let mut pointr = head;
        if iwhere[i] != 0 && iwhere[i] != -1 {
            d[i] = 0.0;
        } else {
            d[i] = neggi;
            f1 -= neggi * neggi;
            for j in 0..col {
                p[j] += wy[i + n * pointr] * neggi;
                p[col + j] += ws[i + n * pointr] * neggi;
                pointr = (pointr + 1) % m;
            }
            if nbd[i] <= 2 && nbd[i] != 0 && neggi < 0.0 {
                nbreak += 1;
                let nb = nbreak as usize;
                iorder[nb] = i;
                t[nb] = tl / (-neggi);
                if nbreak == 0 || t[nb] < bkmin {
                    bkmin = t[nb];
                    ibkmin = nb;
                }
            } else if nbd[i] >= 2 && neggi > 0.0 {
                nbreak += 1;
                let nb = nbreak as usize;
                iorder[nb] = i;
                t[nb] = tu / neggi;
                if nbreak == 0 || t[nb] < bkmin {
                    bkmin = t[nb];
                    ibkmin = nb;
                }
            } else {
                nfree -= 1;
                iorder[nfree] = i;
                if neggi.abs() > 0.0 {
                    bnded = false;
                }
            }
        }
    }
    if theta != 1.0 {
        for v in p[col..col2].iter_mut() {
            *v *= theta;
        }
    }
    xcp.copy_from_slice(x);
    if nbreak == -1 && nfree == n {
        return 0;
    }
    for v in c[..col2].iter_mut() {
        *v = 0.0;
    }
    let mut f2 = -theta * f1;
    let f2_org = f2;
    if col > 0 {
        let info = bmv(m, sy, wt, col, p, v);
        if info != 0 {
            return info;
        }
        f2 -= ddot(&v[..col2], &p[..col2]);
    }
    let mut dtm = -f1 / f2;
    let mut tsum = 0.0;
    *nseg = 1;
    let mut skip_final_axpy = false;
    if nbreak != -1 {
        let mut nleft = nbreak;
        let mut iter = 0usize;
        let mut tj = 0.0;
        loop {
            let tj0 = tj;
            let ibp;
            if iter == 0 {
                tj = bkmin;
                ibp = iorder[ibkmin];
            } else {
                if iter == 1 && ibkmin as i64 != nbreak {
                    let nb = nbreak as usize;
                    t[ibkmin] = t[nb];
                    iorder[ibkmin] = iorder[nb];
                }
                let nl = nleft as usize;
                hpsolb(nl, t, iorder, iter - 1);
                tj = t[nl];
                ibp = iorder[nl];
            }
            let dt = tj - tj0;
            if dtm < dt {
                break;
            }
            tsum += dt;
            nleft -= 1;
            iter += 1;
            let mut dibp = d[ibp];
            d[ibp] = 0.0;
            let zibp;
            if dibp > 0.0 {
                zibp = u[ibp] - x[ibp];
                xcp[ibp] = u[ibp];
                iwhere[ibp] = 2;
            } else {
                zibp = l[ibp] - x[ibp];
                xcp[ibp] = l[ibp];
                iwhere[ibp] = 1;
            }
            if nleft == -1 && nbreak == n as i64 {
                dtm = dt;
                skip_final_axpy = true;
                break;
            }
            *nseg += 1;
            let dibp2 = dibp * dibp;
            f1 = f1 + dt * f2 + dibp2 - theta * dibp * zibp;
            f2 -= theta * dibp2;
            if col > 0 {
                daxpy(dt, &p[..col2], &mut c[..col2]);
                let mut pointr = head;
                for j in 0..col {
                    wbp[j] = wy[ibp + n * pointr];
                    wbp[col + j] = theta * ws[ibp + n * pointr];
                    pointr = (pointr + 1) % m;
                }
                let info = bmv(m, sy, wt, col, wbp, v);
                if info != 0 {
                    return info;
                }
                let wmc = ddot(&c[..col2], &v[..col2]);
                let wmp = ddot(&p[..col2], &v[..col2]);
                let wmw = ddot(&wbp[..col2], &v[..col2]);
                dibp = -dibp;
                daxpy(dibp, &wbp[..col2], &mut p[..col2]);
                dibp = -dibp;
                f1 += dibp * wmc;
                f2 = f2 + dibp * 2.0 * wmp - dibp2 * wmw;
            }
            f2 = (EPSMACH * f2_org).max(f2);
            if nleft >= 0 {
                dtm = -f1 / f2;
            } else if bnded {
                dtm = 0.0;
                break;
            } else {
                dtm = -f1 / f2;
                break;
            }
        }
    }
    if !skip_final_axpy {
        if dtm <= 0.0 {
            dtm = 0.0;
        }
        tsum += dtm;
        daxpy(tsum, d, xcp);
    }
    if col > 0 {
        daxpy(dtm, &p[..col2], &mut c[..col2]);
    }
    0
}

/// One safeguarded step of the Moré–Thuente search (`dcstep`).
#[allow(clippy::too_many_arguments)]
fn dcstep(
    stx: &mut f64,
    fx: &mut f64,
    dx: &mut f64,
    sty: &mut f64,
    fy: &mut f64,
    dy: &mut f64,
    stp: &mut f64,
    fp: f64,
    dp: f64,
    brackt: &mut bool,
    stpmin: f64,
    stpmax: f64,
) {
    let sgnd = dp * (*dx / dx.abs());
    let stpf;
    if fp > *fx {
        let theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        let s = theta.abs().max(dx.abs().max(dp.abs()));
        let mut gamma = s * ((theta / s).powi(2) - (*dx / s) * (dp / s)).sqrt();
        if *stp < *stx {
            gamma = -gamma;
        }
        let p = (gamma - *dx) + theta;
        let q = ((gamma - *dx) + gamma) + dp;
        let r = p / q;
        let stpc = *stx + r * (*stp - *stx);
        let stpq = *stx + ((*dx / ((*fx - fp) / (*stp - *stx) + *dx)) / 2.0) * (*stp - *stx);
        stpf = if (stpc - *stx).abs() < (stpq - *stx).abs() {
            stpc
        } else {
            stpc + (stpq - stpc) / 2.0
        };
        *brackt = true;
    } else if sgnd < 0.0 {
        let theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        let s = theta.abs().max(dx.abs().max(dp.abs()));
        let mut gamma = s * ((theta / s).powi(2) - (*dx / s) * (dp / s)).sqrt();
        if *stp > *stx {
            gamma = -gamma;
        }
        let p = (gamma - dp) + theta;
        let q = ((gamma - dp) + gamma) + *dx;
        let r = p / q;
        let stpc = *stp + r * (*stx - *stp);
        let stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        stpf = if (stpc - *stp).abs() > (stpq - *stp).abs() {
            stpc
        } else {
            stpq
        };
        *brackt = true;
    } else if dp.abs() < dx.abs() {
        let theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        let s = theta.abs().max(dx.abs().max(dp.abs()));
        let mut gamma = s * (0.0f64.max((theta / s).powi(2) - (*dx / s) * (dp / s))).sqrt();
        if *stp > *stx {
            gamma = -gamma;
        }
        let p = (gamma - dp) + theta;
        let q = (gamma + (*dx - dp)) + gamma;
        let r = p / q;
        let stpc = if r < 0.0 && gamma != 0.0 {
            *stp + r * (*stx - *stp)
        } else if *stp > *stx {
            stpmax
        } else {
            stpmin
        };
        let stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        if *brackt {
            let mut sf = if (stpc - *stp).abs() < (stpq - *stp).abs() {
                stpc
            } else {
                stpq
            };
            if *stp > *stx {
                sf = (*stp + 0.66 * (*sty - *stp)).min(sf);
            } else {
                sf = (*stp + 0.66 * (*sty - *stp)).max(sf);
            }
            stpf = sf;
        } else {
            let mut sf = if (stpc - *stp).abs() > (stpq - *stp).abs() {
                stpc
            } else {
                stpq
            };
            sf = stpmax.min(sf);
            sf = stpmin.max(sf);
            stpf = sf;
        }
    } else if *brackt {
        let theta = 3.0 * (fp - *fy) / (*sty - *stp) + *dy + dp;
        let s = theta.abs().max(dy.abs().max(dp.abs()));
        let mut gamma = s * ((theta / s).powi(2) - (*dy / s) * (dp / s)).sqrt();
        if *stp > *sty {
            gamma = -gamma;
        }
        let p = (gamma - dp) + theta;
        let q = ((gamma - dp) + gamma) + *dy;
        let r = p / q;
        stpf = *stp + r * (*sty - *stp);
    } else if *stp > *stx {
        stpf = stpmax;
    } else {
        stpf = stpmin;
    }
    if fp > *fx {
        *sty = *stp;
        *fy = fp;
        *dy = dp;
    } else {
        if sgnd < 0.0 {
            *sty = *stx;
            *fy = *fx;
            *dy = *dx;
        }
        *stx = *stp;
        *fx = fp;
        *dx = dp;
    }
    *stp = stpf;
}
