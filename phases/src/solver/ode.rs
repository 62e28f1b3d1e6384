//! An explicit adaptive Runge–Kutta integrator: Dormand–Prince 5(4) with FSAL, the standard
//! error-per-step controller and Hairer's 4th-order continuous extension (dense output), used
//! to integrate the trajectory mesh's equations of motion.
//!
//! Why not Radau (what Spyral calls through scipy): the track equations are not stiff (the only
//! time scales are the cyclotron period and the slowing-down time, which differ by a factor
//! of ~10-100, not by orders of magnitude), so an explicit method is several times cheaper per
//! unit of accuracy than an implicit one. Spyral runs Radau at scipy's default tolerances
//! (rtol 1e-3, atol 1e-6); we integrate much more tightly (see `mesh.rs`).
//!
//! The caller sees every accepted step through a callback that receives the step's dense output
//! ([`DenseStep`]); it samples output times and checks terminal conditions there, and can stop
//! the integration at a time inside the step.

/// A first-order system `dy/dt = f(t, y)` of dimension `N`.
pub trait OdeSystem<const N: usize> {
    /// Writes `f(t, y)` into `dy`.
    fn rhs(&self, t: f64, y: &[f64; N], dy: &mut [f64; N]);
}

/// Why an integration could not be completed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OdeError {
    /// The step size fell below what the floating-point time can resolve.
    #[error("the step size underflowed at t = {t:e} (h = {h:e})")]
    StepUnderflow {
        /// Time reached.
        t: f64,
        /// Step size tried.
        h: f64,
    },
    /// The step limit was reached.
    #[error("more than {max_steps} steps were needed (t = {t:e})")]
    TooManySteps {
        /// The limit.
        max_steps: usize,
        /// Time reached.
        t: f64,
    },
    /// The derivative or the state became NaN or infinite.
    #[error("the state became non-finite at t = {t:e}")]
    NonFinite {
        /// Time reached.
        t: f64,
    },
    /// Invalid arguments (tolerances, time span).
    #[error("invalid integration settings: {0}")]
    Settings(&'static str),
}

/// What the step callback tells the integrator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop; the integration ends at this time (inside the step just taken).
    Stop(f64),
}

/// How an integration ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The final time (the end of the span, or the time the callback stopped at).
    pub t_final: f64,
    /// Whether the callback stopped it.
    pub stopped: bool,
    /// Accepted steps.
    pub steps: usize,
    /// Right-hand-side evaluations.
    pub evaluations: usize,
}

/// One accepted step `[t0, t0 + h]` with its continuous extension.
#[derive(Debug, Clone)]
pub struct DenseStep<const N: usize> {
    /// Start of the step.
    pub t0: f64,
    /// Step size.
    pub h: f64,
    /// State at the start.
    pub y0: [f64; N],
    /// State at the end.
    pub y1: [f64; N],
    r: [[f64; N]; 4],
}

impl<const N: usize> DenseStep<N> {
    /// End of the step.
    pub fn t1(&self) -> f64 {
        self.t0 + self.h
    }
    /// Component `i` of the interpolated state at `t` (within the step).
    #[inline]
    pub fn component(&self, i: usize, t: f64) -> f64 {
        let th = (t - self.t0) / self.h;
        let th1 = 1.0 - th;
        self.y0[i]
            + th * (self.r[0][i] + th1 * (self.r[1][i] + th * (self.r[2][i] + th1 * self.r[3][i])))
    }
    /// The interpolated state at `t` (within the step).
    pub fn state(&self, t: f64) -> [f64; N] {
        let mut out = [0.0; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.component(i, t);
        }
        out
    }
}

/// Dormand–Prince 5(4) settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dopri5 {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Step limit.
    pub max_steps: usize,
}

// Butcher tableau (Dormand & Prince 1980).
const C2: f64 = 1.0 / 5.0;
const C3: f64 = 3.0 / 10.0;
const C4: f64 = 4.0 / 5.0;
const C5: f64 = 8.0 / 9.0;
const A21: f64 = 1.0 / 5.0;
const A31: f64 = 3.0 / 40.0;
const A32: f64 = 9.0 / 40.0;
const A41: f64 = 44.0 / 45.0;
const A42: f64 = -56.0 / 15.0;
const A43: f64 = 32.0 / 9.0;
const A51: f64 = 19372.0 / 6561.0;
const A52: f64 = -25360.0 / 2187.0;
const A53: f64 = 64448.0 / 6561.0;
const A54: f64 = -212.0 / 729.0;
const A61: f64 = 9017.0 / 3168.0;
const A62: f64 = -355.0 / 33.0;
const A63: f64 = 46732.0 / 5247.0;
const A64: f64 = 49.0 / 176.0;
const A65: f64 = -5103.0 / 18656.0;
const A71: f64 = 35.0 / 384.0;
const A73: f64 = 500.0 / 1113.0;
const A74: f64 = 125.0 / 192.0;
const A75: f64 = -2187.0 / 6784.0;
const A76: f64 = 11.0 / 84.0;
// Error estimate: 5th-order weights minus the embedded 4th-order ones.
const E1: f64 = 71.0 / 57600.0;
const E3: f64 = -71.0 / 16695.0;
const E4: f64 = 71.0 / 1920.0;
const E5: f64 = -17253.0 / 339200.0;
const E6: f64 = 22.0 / 525.0;
const E7: f64 = -1.0 / 40.0;
// Continuous extension (Hairer, Nørsett & Wanner, "Solving ODEs I", dopri5 dense output).
const D1: f64 = -12715105075.0 / 11282082432.0;
const D3: f64 = 87487479700.0 / 32700410799.0;
const D4: f64 = -10690763975.0 / 1880347072.0;
const D5: f64 = 701980252875.0 / 199316789632.0;
const D6: f64 = -1453857185.0 / 822651844.0;
const D7: f64 = 69997945.0 / 29380423.0;

const SAFETY: f64 = 0.9;
const MIN_FACTOR: f64 = 0.2;
const MAX_FACTOR: f64 = 10.0;

impl Dopri5 {
    /// Settings with the given tolerances and a generous step limit.
    pub fn new(rtol: f64, atol: f64) -> Self {
        Dopri5 {
            rtol,
            atol,
            max_steps: 1_000_000,
        }
    }

    fn err_norm<const N: usize>(&self, y0: &[f64; N], y1: &[f64; N], err: &[f64; N]) -> f64 {
        let mut sum = 0.0;
        for i in 0..N {
            let scale = self.atol + self.rtol * y0[i].abs().max(y1[i].abs());
            let e = err[i] / scale;
            sum += e * e;
        }
        (sum / N as f64).sqrt()
    }

    /// scipy's initial step heuristic (Hairer's algorithm with a 5th-order method).
    fn initial_step<const N: usize, S: OdeSystem<N>>(
        &self,
        sys: &S,
        t0: f64,
        y0: &[f64; N],
        f0: &[f64; N],
        span: f64,
    ) -> f64 {
        let rms = |v: &[f64; N], w: &[f64; N]| -> f64 {
            let mut s = 0.0;
            for i in 0..N {
                let x = v[i] / (self.atol + w[i].abs() * self.rtol);
                s += x * x;
            }
            (s / N as f64).sqrt()
        };
        let d0 = rms(y0, y0);
        let d1 = rms(f0, y0);
        let h0 = if d0 < 1e-5 || d1 < 1e-5 {
            1e-6
        } else {
            0.01 * d0 / d1
        }
        .min(span);
        let mut y1 = [0.0; N];
        for i in 0..N {
            y1[i] = y0[i] + h0 * f0[i];
        }
        let mut f1 = [0.0; N];
        sys.rhs(t0 + h0, &y1, &mut f1);
        let mut df = [0.0; N];
        for i in 0..N {
            df[i] = f1[i] - f0[i];
        }
        let d2 = rms(&df, y0) / h0;
        let h1 = if d1 <= 1e-15 && d2 <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).powf(1.0 / 5.0)
        };
        (100.0 * h0).min(h1).min(span)
    }

    /// Integrates `sys` from `(t0, y0)` to `t_end`, calling `on_step` after every accepted step.
    pub fn integrate<const N: usize, S, F>(
        &self,
        sys: &S,
        t0: f64,
        y0: [f64; N],
        t_end: f64,
        mut on_step: F,
    ) -> Result<Outcome, OdeError>
    where
        S: OdeSystem<N>,
        F: FnMut(&DenseStep<N>) -> Control,
    {
        if !(self.rtol > 0.0 && self.atol > 0.0) {
            return Err(OdeError::Settings("tolerances must be positive"));
        }
        if t_end.is_nan() || t0.is_nan() || t_end <= t0 {
            return Err(OdeError::Settings("the time span must be positive"));
        }
        let span = t_end - t0;
        let mut t = t0;
        let mut y = y0;
        let mut k1 = [0.0; N];
        sys.rhs(t, &y, &mut k1);
        let mut evals = 1;
        if k1.iter().any(|v| !v.is_finite()) {
            return Err(OdeError::NonFinite { t });
        }
        let mut h = self.initial_step(sys, t, &y, &k1, span);
        evals += 1;
        let mut steps = 0usize;
        let mut rejected_last = false;
        let (mut k2, mut k3, mut k4, mut k5, mut k6, mut k7) =
            ([0.0; N], [0.0; N], [0.0; N], [0.0; N], [0.0; N], [0.0; N]);
        let mut yt = [0.0; N];
        let mut y1 = [0.0; N];
        let mut err = [0.0; N];
        let mut dense = DenseStep {
            t0,
            h,
            y0,
            y1: y0,
            r: [[0.0; N]; 4],
        };
        loop {
            if steps >= self.max_steps {
                return Err(OdeError::TooManySteps {
                    max_steps: self.max_steps,
                    t,
                });
            }
            let last = t + h >= t_end;
            if last {
                h = t_end - t;
            }
            if h <= f64::EPSILON * 16.0 * t.abs().max(span) {
                return Err(OdeError::StepUnderflow { t, h });
            }
            for i in 0..N {
                yt[i] = y[i] + h * A21 * k1[i];
            }
            sys.rhs(t + C2 * h, &yt, &mut k2);
            for i in 0..N {
                yt[i] = y[i] + h * (A31 * k1[i] + A32 * k2[i]);
            }
            sys.rhs(t + C3 * h, &yt, &mut k3);
            for i in 0..N {
                yt[i] = y[i] + h * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i]);
            }
            sys.rhs(t + C4 * h, &yt, &mut k4);
            for i in 0..N {
                yt[i] = y[i] + h * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i]);
            }
            sys.rhs(t + C5 * h, &yt, &mut k5);
            for i in 0..N {
                yt[i] = y[i]
                    + h * (A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i]);
            }
            let t_new = if last { t_end } else { t + h };
            sys.rhs(t_new, &yt, &mut k6);
            for i in 0..N {
                y1[i] = y[i]
                    + h * (A71 * k1[i] + A73 * k3[i] + A74 * k4[i] + A75 * k5[i] + A76 * k6[i]);
            }
            sys.rhs(t_new, &y1, &mut k7);
            evals += 6;
            for i in 0..N {
                err[i] = h
                    * (E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i]);
            }
            let en = self.err_norm(&y, &y1, &err);
            if !en.is_finite() {
                // A blow-up inside the trial step: retry smaller, but give up on a real NaN state.
                if y1.iter().all(|v| !v.is_nan()) && !rejected_last {
                    h *= MIN_FACTOR;
                    rejected_last = true;
                    continue;
                }
                return Err(OdeError::NonFinite { t });
            }
            if en > 1.0 {
                let factor = (SAFETY * en.powf(-0.2)).max(MIN_FACTOR);
                h *= factor;
                rejected_last = true;
                continue;
            }
            // Accepted.
            steps += 1;
            dense.t0 = t;
            dense.h = t_new - t;
            dense.y0 = y;
            dense.y1 = y1;
            for i in 0..N {
                let dy = y1[i] - y[i];
                let bspl = h * k1[i] - dy;
                dense.r[0][i] = dy;
                dense.r[1][i] = bspl;
                dense.r[2][i] = dy - h * k7[i] - bspl;
                dense.r[3][i] = h
                    * (D1 * k1[i] + D3 * k3[i] + D4 * k4[i] + D5 * k5[i] + D6 * k6[i] + D7 * k7[i]);
            }
            if let Control::Stop(ts) = on_step(&dense) {
                return Ok(Outcome {
                    t_final: ts,
                    stopped: true,
                    steps,
                    evaluations: evals,
                });
            }
            t = t_new;
            y = y1;
            k1 = k7;
            if last {
                return Ok(Outcome {
                    t_final: t,
                    stopped: false,
                    steps,
                    evaluations: evals,
                });
            }
            let mut factor = if en == 0.0 {
                MAX_FACTOR
            } else {
                (SAFETY * en.powf(-0.2)).min(MAX_FACTOR)
            };
            if rejected_last {
                factor = factor.min(1.0);
            }
            rejected_last = false;
            h *= factor.max(MIN_FACTOR);
        }
    }
}

/// Finds a root of `g` in `[a, b]` given `g(a)` and `g(b)` of opposite signs (or `g(b) == 0`),
/// by the Illinois variant of regula falsi; returns a time within `tol` of the crossing, on the
/// side where the condition already holds (`b` side).
pub fn locate_root(
    mut g: impl FnMut(f64) -> f64,
    a: f64,
    b: f64,
    ga: f64,
    gb: f64,
    tol: f64,
) -> f64 {
    let (mut a, mut b, mut ga, mut gb) = (a, b, ga, gb);
    if gb == 0.0 {
        return b;
    }
    let mut side = 0i8;
    for _ in 0..100 {
        if (b - a).abs() <= tol {
            break;
        }
        let mut c = (a * gb - b * ga) / (gb - ga);
        if !(c > a.min(b) && c < a.max(b)) {
            c = 0.5 * (a + b);
        }
        let gc = g(c);
        if gc == 0.0 {
            return c;
        }
        if (gc > 0.0) == (gb > 0.0) {
            b = c;
            gb = gc;
            if side == 1 {
                ga *= 0.5;
            }
            side = 1;
        } else {
            a = c;
            ga = gc;
            if side == -1 {
                gb *= 0.5;
            }
            side = -1;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Oscillator;
    impl OdeSystem<2> for Oscillator {
        fn rhs(&self, _t: f64, y: &[f64; 2], dy: &mut [f64; 2]) {
            dy[0] = y[1];
            dy[1] = -y[0];
        }
    }

    #[test]
    fn harmonic_oscillator_and_dense_output() {
        let ode = Dopri5::new(1e-9, 1e-12);
        let mut worst_dense: f64 = 0.0;
        let out = ode
            .integrate(&Oscillator, 0.0, [0.0, 1.0], 20.0, |s| {
                for k in 1..10 {
                    let t = s.t0 + s.h * k as f64 / 10.0;
                    worst_dense = worst_dense.max((s.component(0, t) - t.sin()).abs());
                }
                Control::Continue
            })
            .unwrap();
        assert_eq!(out.t_final, 20.0);
        assert!(worst_dense < 1e-7, "dense output error {worst_dense}");
    }

    #[test]
    fn callback_stops_and_root_is_located() {
        let ode = Dopri5::new(1e-8, 1e-11);
        // First zero of cos(t) = y[1] after t = 0 is pi/2.
        let out = ode
            .integrate(&Oscillator, 0.0, [0.0, 1.0], 10.0, |s| {
                if s.y1[1] <= 0.0 {
                    let t =
                        locate_root(|t| s.component(1, t), s.t0, s.t1(), s.y0[1], s.y1[1], 1e-13);
                    Control::Stop(t)
                } else {
                    Control::Continue
                }
            })
            .unwrap();
        assert!(out.stopped);
        assert!(
            (out.t_final - std::f64::consts::FRAC_PI_2).abs() < 1e-7,
            "{}",
            out.t_final
        );
    }

    #[test]
    fn bad_settings_are_errors() {
        let ode = Dopri5::new(0.0, 1e-9);
        assert!(ode
            .integrate(&Oscillator, 0.0, [0.0, 1.0], 1.0, |_| Control::Continue)
            .is_err());
    }
}
