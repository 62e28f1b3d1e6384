//! Local Outlier Factor with scikit-learn's semantics (`LocalOutlierFactor(n_neighbors)` with
//! its defaults, used through `fit_predict`): euclidean distances, each point's own entry
//! excluded from its neighbours, `n_neighbors` clamped to `n - 1`, local reachability density
//! `1 / (mean reach-distance + 1e-10)`, score = mean ratio of the neighbours' densities to the
//! point's, and `contamination = "auto"`: a point is an outlier when its score exceeds 1.5.
//!
//! Neighbours are found by brute force (the clouds are small) on squared distances; among equal
//! ones the lower index is taken first. Means use numpy's pairwise summation so that scores match to the last
//! bits on typical neighbourhood sizes.

use thiserror::Error;

/// Score above which a point is an outlier (`contamination = "auto"`, offset -1.5).
pub const OUTLIER_THRESHOLD: f64 = 1.5;

/// Why LOF could not run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LofError {
    /// Fewer than 2 points.
    #[error("local outlier factor needs at least 2 points (got {0})")]
    TooFewPoints(usize),
    /// `n_neighbors` is 0.
    #[error("n_neighbors must be at least 1")]
    NoNeighbors,
}

/// The `n_neighbors` Spyral asks for on a cluster of `n` points: `max(2, int(factor * n))`.
pub fn spyral_neighbors(factor: f64, n: usize) -> usize {
    let k = (factor * n as f64).trunc();
    if k.is_finite() && k > 2.0 {
        k as usize
    } else {
        2
    }
}

/// numpy's pairwise summation (`np.add.reduce` over a contiguous row).
pub(crate) fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&a[..n2]) + np_sum(&a[n2..])
    }
}

/// LOF scores (scikit-learn's `-negative_outlier_factor_`) of `points`.
pub fn lof_scores<const D: usize>(
    points: &[[f64; D]],
    n_neighbors: usize,
) -> Result<Vec<f64>, LofError> {
    let n = points.len();
    if n < 2 {
        return Err(LofError::TooFewPoints(n));
    }
    if n_neighbors == 0 {
        return Err(LofError::NoNeighbors);
    }
    let k = n_neighbors.min(n - 1).max(1);
    // k nearest neighbours of each point (self excluded), sorted by (squared distance, index)
    // like scikit-learn's kd-tree, which compares squared distances and takes the square root
    // of the k it keeps.
    let mut nd = vec![0.0f64; n * k];
    let mut ni = vec![0usize; n * k];
    let mut cand: Vec<(f64, usize)> = Vec::with_capacity(n);
    for (i, p) in points.iter().enumerate() {
        cand.clear();
        for (j, q) in points.iter().enumerate() {
            if j != i {
                let mut s = 0.0;
                for c in 0..D {
                    let d = p[c] - q[c];
                    s += d * d;
                }
                cand.push((s, j));
            }
        }
        let by = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        if k < cand.len() {
            cand.select_nth_unstable_by(k - 1, by);
            cand.truncate(k);
        }
        cand.sort_unstable_by(by);
        for (m, &(d, j)) in cand.iter().enumerate() {
            nd[i * k + m] = d.sqrt();
            ni[i * k + m] = j;
        }
    }
    let kdist = |o: usize| nd[o * k + k - 1];
    let mut row = vec![0.0f64; k];
    let lrd: Vec<f64> = (0..n)
        .map(|i| {
            for m in 0..k {
                row[m] = nd[i * k + m].max(kdist(ni[i * k + m]));
            }
            1.0 / (np_sum(&row) / k as f64 + 1e-10)
        })
        .collect();
    Ok((0..n)
        .map(|i| {
            for m in 0..k {
                row[m] = lrd[ni[i * k + m]] / lrd[i];
            }
            np_sum(&row) / k as f64
        })
        .collect())
}

/// `fit_predict` of scikit-learn's LOF: `true` for outliers (score > 1.5).
pub fn lof_outliers<const D: usize>(
    points: &[[f64; D]],
    n_neighbors: usize,
) -> Result<Vec<bool>, LofError> {
    Ok(lof_scores(points, n_neighbors)?
        .into_iter()
        .map(|s| s > OUTLIER_THRESHOLD)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_point_is_an_outlier() {
        let mut pts: Vec<[f64; 3]> = (0..30)
            .map(|i| [f64::from(i % 5), f64::from(i / 5), 0.1 * f64::from(i)])
            .collect();
        pts.push([40.0, 40.0, 40.0]);
        let out = lof_outliers(&pts, 3).unwrap();
        assert!(out[30]);
        assert_eq!(out.iter().filter(|&&o| o).count(), 1);
    }

    #[test]
    fn neighbours_and_sums() {
        assert_eq!(spyral_neighbors(0.1, 10), 2);
        assert_eq!(spyral_neighbors(0.1, 57), 5);
        assert_eq!(spyral_neighbors(0.1, 200), 20);
        let v: Vec<f64> = (0..300).map(|i| f64::from(i) * 0.1).collect();
        assert!((np_sum(&v) - 4485.0).abs() < 1e-9);
        assert!(lof_scores(&[[0.0; 3]], 2).is_err());
        let two = lof_scores(&[[0.0; 3], [1.0, 0.0, 0.0]], 5).unwrap();
        assert!((two[0] - 1.0).abs() < 1e-12 && (two[1] - 1.0).abs() < 1e-12);
    }
}
