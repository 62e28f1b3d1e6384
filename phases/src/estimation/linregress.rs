//! Ordinary least-squares regression of y on x with `scipy.stats.linregress` semantics (the
//! slope, intercept and correlation coefficient; not the p-value).
//!
//! scipy computes the means, then the biased covariance matrix (`np.cov(x, y, bias=1)`: sums of
//! centred products divided by n), then `slope = ssxym / ssxm` and
//! `intercept = ymean - slope * xmean`. The same order of operations is kept here so that the
//! results agree to rounding. Empty input and all-identical x are errors, as in scipy; NaN input
//! gives NaN results (scipy does not reject it either).

/// Why a regression could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinRegressError {
    /// No points (scipy: "Inputs must not be empty.").
    #[error("linear regression of empty inputs")]
    Empty,
    /// x and y differ in length.
    #[error("linear regression inputs differ in length ({x} x values, {y} y values)")]
    LengthMismatch {
        /// Number of x values.
        x: usize,
        /// Number of y values.
        y: usize,
    },
    /// Every x is the same (scipy: "Cannot calculate a linear regression if all x values are
    /// identical").
    #[error("cannot calculate a linear regression if all x values are identical")]
    IdenticalX,
}

/// The fitted line `y = slope * x + intercept` and Pearson's r.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinRegress {
    /// Slope of the line.
    pub slope: f64,
    /// Intercept of the line (y at x = 0).
    pub intercept: f64,
    /// Pearson correlation coefficient, clamped to [-1, 1]; NaN when both variances and the
    /// covariance are zero, 0 when only a variance is zero (scipy's conventions).
    pub rvalue: f64,
}

/// Fits `y = slope * x + intercept` by ordinary least squares (scipy `linregress`).
pub fn linregress(x: &[f64], y: &[f64]) -> Result<LinRegress, LinRegressError> {
    if x.is_empty() || y.is_empty() {
        return Err(LinRegressError::Empty);
    }
    if x.len() != y.len() {
        return Err(LinRegressError::LengthMismatch {
            x: x.len(),
            y: y.len(),
        });
    }
    let n = x.len();
    // np.amax(x) == np.amin(x): a NaN makes both NaN, so NaN input is not rejected here.
    if n > 1 {
        let (lo, hi) = nan_min_max(x);
        if lo == hi {
            return Err(LinRegressError::IdenticalX);
        }
    }
    let nf = n as f64;
    let xmean = x.iter().sum::<f64>() / nf;
    let ymean = y.iter().sum::<f64>() / nf;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for (&xi, &yi) in x.iter().zip(y) {
        let dx = xi - xmean;
        let dy = yi - ymean;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    let ssxm = sxx / nf;
    let ssxym = sxy / nf;
    let ssym = syy / nf;
    let rvalue = if ssxm == 0.0 || ssym == 0.0 {
        if ssxym == 0.0 {
            f64::NAN
        } else {
            0.0
        }
    } else {
        (ssxym / (ssxm * ssym).sqrt()).clamp(-1.0, 1.0)
    };
    let slope = ssxym / ssxm;
    let intercept = ymean - slope * xmean;
    Ok(LinRegress {
        slope,
        intercept,
        rvalue,
    })
}

/// numpy's `amin`/`amax`: NaN if any value is NaN.
fn nan_min_max(v: &[f64]) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for &a in v {
        if a.is_nan() {
            return (f64::NAN, f64::NAN);
        }
        lo = lo.min(a);
        hi = hi.max(a);
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line() {
        let x = [0.0, 1.0, 2.0, 3.0, 4.0];
        let y: Vec<f64> = x.iter().map(|v| 2.5 * v - 1.0).collect();
        let r = linregress(&x, &y).unwrap();
        assert!((r.slope - 2.5).abs() < 1e-14);
        assert!((r.intercept + 1.0).abs() < 1e-14);
        assert!((r.rvalue - 1.0).abs() < 1e-14);
    }

    #[test]
    fn matches_scipy_on_noisy_points() {
        // scipy.stats.linregress([1, 2, 4, 7, 11], [3.1, 2.9, 6.2, 8.8, 14.5]) ->
        // slope 1.1712121212121211, intercept 1.2439393939393941, rvalue 0.9914657382900365
        let r = linregress(&[1.0, 2.0, 4.0, 7.0, 11.0], &[3.1, 2.9, 6.2, 8.8, 14.5]).unwrap();
        assert!((r.slope - 1.171_212_121_212_121_1).abs() < 1e-12, "{r:?}");
        assert!(
            (r.intercept - 1.243_939_393_939_394_1).abs() < 1e-12,
            "{r:?}"
        );
        assert!((r.rvalue - 0.991_465_738_290_036_5).abs() < 1e-12, "{r:?}");
    }

    #[test]
    fn errors_and_special_cases() {
        assert_eq!(linregress(&[], &[]), Err(LinRegressError::Empty));
        assert_eq!(
            linregress(&[1.0, 2.0], &[1.0]),
            Err(LinRegressError::LengthMismatch { x: 2, y: 1 })
        );
        assert_eq!(
            linregress(&[3.0, 3.0, 3.0], &[1.0, 2.0, 3.0]),
            Err(LinRegressError::IdenticalX)
        );
        // A flat line: slope exactly 0 and r = 0 (ssym = 0, ssxym = 0 -> NaN in scipy).
        let r = linregress(&[1.0, 2.0, 3.0], &[5.0, 5.0, 5.0]).unwrap();
        assert_eq!(r.slope, 0.0);
        assert!(r.rvalue.is_nan());
        // NaN propagates.
        let r = linregress(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!(r.slope.is_nan());
    }
}
