//! Closest-point distances from data points to a sampled trajectory: for every data point the
//! distance to the nearest trajectory sample (`Points`, Spyral's definition) or to the nearest
//! segment of the trajectory polyline (`Segments`).
//!
//! Spyral computes all N·T distances. Here the trajectory is split into runs along which z is
//! monotonic (a track usually is one run; a steep track turned around by the drift field gives
//! two), and for each data point only the samples whose z lies within the best distance found so
//! far are visited, outward from the point's z (binary search). The result is exact: any
//! sample (or segment) outside that z band is farther away than the current best. If the
//! trajectory has too many runs (z oscillating), it falls back to the exhaustive search.

use serde::{Deserialize, Serialize};

/// Distance to what.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DistanceMode {
    /// The nearest trajectory sample (Spyral).
    #[default]
    Points,
    /// The nearest point of the polyline through the samples (no sampling floor).
    Segments,
}

/// Above this many monotonic runs the exhaustive search is used.
const MAX_RUNS: usize = 16;

/// Reusable buffers.
#[derive(Debug, Default, Clone)]
pub struct DistanceScratch {
    runs: Vec<(usize, usize, bool)>,
    reversed: Vec<[f64; 3]>,
}

#[inline]
fn d2(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    let (x, y, z) = (a[0] - b[0], a[1] - b[1], a[2] - b[2]);
    x * x + y * y + z * z
}

#[inline]
fn seg_d2(p: &[f64; 3], a: &[f64; 3], b: &[f64; 3]) -> f64 {
    let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let ap = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
    let l2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
    let t = if l2 > 0.0 {
        ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / l2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let q = [a[0] + t * ab[0], a[1] + t * ab[1], a[2] + t * ab[2]];
    d2(p, &q)
}

/// Best squared distance from `p` to the samples (or segments) of `pts`, whose z never
/// decreases, improving on `best`; `s` is the first sample with z >= p.z. Returns the new best
/// and the index of the sample (segment) that gave it, if it improved.
#[inline]
fn band_search(
    pts: &[[f64; 3]],
    p: &[f64; 3],
    s: usize,
    mode: DistanceMode,
    mut best: f64,
) -> (f64, Option<usize>) {
    let z = p[2];
    let mut at = None;
    match mode {
        DistanceMode::Points => {
            for (k, q) in pts.iter().enumerate().skip(s) {
                let dz = q[2] - z;
                if dz * dz >= best {
                    break;
                }
                let d = d2(p, q);
                if d < best {
                    best = d;
                    at = Some(k);
                }
            }
            for k in (0..s).rev() {
                let q = &pts[k];
                let dz = z - q[2];
                if dz * dz >= best {
                    break;
                }
                let d = d2(p, q);
                if d < best {
                    best = d;
                    at = Some(k);
                }
            }
        }
        DistanceMode::Segments => {
            let nseg = pts.len() - 1;
            let k0 = s.saturating_sub(1).min(nseg - 1);
            for k in k0..nseg {
                let gap = (pts[k][2] - z).max(0.0);
                if gap * gap >= best {
                    break;
                }
                let d = seg_d2(p, &pts[k], &pts[k + 1]);
                if d < best {
                    best = d;
                    at = Some(k);
                }
            }
            for k in (0..k0).rev() {
                let gap = (z - pts[k + 1][2]).max(0.0);
                if gap * gap >= best {
                    break;
                }
                let d = seg_d2(p, &pts[k], &pts[k + 1]);
                if d < best {
                    best = d;
                    at = Some(k);
                }
            }
        }
    }
    (best, at)
}

/// Writes into `out[i]` the distance from `data[i]` to the trajectory `traj`. Any order of
/// `data` gives the same result; sorted by z it is fastest.
pub fn nearest_distances(
    traj: &[[f64; 3]],
    data: &[[f64; 3]],
    mode: DistanceMode,
    scratch: &mut DistanceScratch,
    out: &mut [f64],
) {
    if traj.is_empty() {
        out.fill(f64::INFINITY);
        return;
    }
    let mode = if traj.len() < 2 {
        DistanceMode::Points
    } else {
        mode
    };
    // Monotonic runs [start, end] (inclusive; consecutive runs share their turning sample).
    let runs = &mut scratch.runs;
    runs.clear();
    let (mut start, mut dir) = (0usize, 0i8);
    for k in 1..traj.len() {
        let dz = traj[k][2] - traj[k - 1][2];
        let sign = if dz > 0.0 {
            1
        } else if dz < 0.0 {
            -1
        } else {
            0
        };
        if sign == 0 {
            continue;
        }
        if dir == 0 {
            dir = sign;
        } else if sign != dir {
            runs.push((start, k - 1, dir < 0));
            start = k - 1;
            dir = sign;
        }
        if runs.len() > MAX_RUNS {
            break;
        }
    }
    runs.push((start, traj.len() - 1, dir < 0));
    if runs.len() > MAX_RUNS {
        brute_force(traj, data, mode, out);
        return;
    }
    // Reversed copies of decreasing runs, back to back.
    scratch.reversed.clear();
    let mut views: [(usize, usize, bool); MAX_RUNS + 1] = [(0, 0, false); MAX_RUNS + 1];
    for (v, &(a, b, decreasing)) in views.iter_mut().zip(runs.iter()) {
        if decreasing {
            let off = scratch.reversed.len();
            scratch.reversed.extend(traj[a..=b].iter().rev());
            *v = (off, off + (b - a + 1), true);
        } else {
            *v = (a, b + 1, false);
        }
    }
    let nruns = runs.len();
    out.fill(f64::INFINITY);
    for &(a, b, rev) in &views[..nruns] {
        let pts = if rev {
            &scratch.reversed[a..b]
        } else {
            &traj[a..b]
        };
        if mode == DistanceMode::Segments && pts.len() < 2 {
            // A one-sample run is the end of a segment of its neighbour run.
            continue;
        }
        let (mut s, mut hint) = (0usize, 0usize);
        for (p, o) in data.iter().zip(out.iter_mut()) {
            while s < pts.len() && pts[s][2] < p[2] {
                s += 1;
            }
            while s > 0 && pts[s - 1][2] >= p[2] {
                s -= 1;
            }
            // Seed with the previous point's nearest sample (segment): neighbouring data
            // points are near each other along the track, so the band starts narrow.
            let seed = match mode {
                DistanceMode::Points => d2(p, &pts[hint]),
                DistanceMode::Segments => {
                    let k = hint.min(pts.len() - 2);
                    seg_d2(p, &pts[k], &pts[k + 1])
                }
            };
            let (best, at) = band_search(pts, p, s, mode, o.min(seed));
            if let Some(k) = at {
                hint = k;
            }
            *o = best;
        }
    }
    for o in out.iter_mut() {
        *o = o.sqrt();
    }
}

/// The exhaustive O(N·T) search (Spyral's method).
pub fn brute_force(traj: &[[f64; 3]], data: &[[f64; 3]], mode: DistanceMode, out: &mut [f64]) {
    for (p, o) in data.iter().zip(out.iter_mut()) {
        let best = match mode {
            DistanceMode::Points => traj.iter().map(|q| d2(p, q)).fold(f64::INFINITY, f64::min),
            DistanceMode::Segments if traj.len() >= 2 => traj
                .windows(2)
                .map(|w| seg_d2(p, &w[0], &w[1]))
                .fold(f64::INFINITY, f64::min),
            DistanceMode::Segments => traj.iter().map(|q| d2(p, q)).fold(f64::INFINITY, f64::min),
        };
        *o = best.sqrt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn matches_brute_force_on_helices_and_turning_tracks() {
        let mut seed = 7u64;
        for case in 0..4 {
            let traj: Vec<[f64; 3]> = (0..400)
                .map(|k| {
                    let t = k as f64 * 0.05;
                    let z = match case {
                        0 => 0.02 * t,
                        1 => -0.03 * t,
                        2 => 0.1 * t - 0.006 * t * t, // turns around
                        _ => 0.0,                     // flat
                    };
                    [0.1 * t.cos(), 0.1 * t.sin(), z]
                })
                .collect();
            let data: Vec<[f64; 3]> = (0..200)
                .map(|_| {
                    [
                        lcg(&mut seed) * 0.3 - 0.15,
                        lcg(&mut seed) * 0.3 - 0.15,
                        lcg(&mut seed) * 0.6 - 0.3,
                    ]
                })
                .collect();
            let mut sc = DistanceScratch::default();
            for mode in [DistanceMode::Points, DistanceMode::Segments] {
                let (mut a, mut b) = (vec![0.0; 200], vec![0.0; 200]);
                nearest_distances(&traj, &data, mode, &mut sc, &mut a);
                brute_force(&traj, &data, mode, &mut b);
                for (x, y) in a.iter().zip(&b) {
                    assert!((x - y).abs() < 1e-15, "case {case} {mode:?}: {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn segment_distance_has_no_sampling_floor() {
        let traj = [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        let data = [[0.1, 0.0, 0.5]];
        let mut out = [0.0];
        let mut sc = DistanceScratch::default();
        nearest_distances(&traj, &data, DistanceMode::Segments, &mut sc, &mut out);
        assert!((out[0] - 0.1).abs() < 1e-15);
        nearest_distances(&traj, &data, DistanceMode::Points, &mut sc, &mut out);
        assert!((out[0] - (0.01f64 + 0.25).sqrt()).abs() < 1e-15);
    }
}
