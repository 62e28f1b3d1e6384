//! The per-event clustering algorithm of Spyral's ClusterPhase (spyral-spec section 3.2):
//! `form_clusters` (HDBSCAN on x, y, 0.584·z), `clean_clusters` (LOF #1), the track direction,
//! the continuity or overlap join, and `cleanup_clusters` (z sort, 5 columns, LOF #2).
//!
//! Everything here is pure computation on one event's point cloud (rows of the Pointcloud
//! layout `[x, y, z, amplitude, integral, pad, tb, scale]`, sorted by z); the phase in
//! [`super`] does the file handling.

use super::hdbscan::{Hdbscan, HdbscanError, NOISE};
use super::lof::{lof_outliers, spyral_neighbors, LofError};
use super::{ClusterConfig, ContinuityJoinParameters, OverlapJoinParameters};
use crate::fit::circle::{least_squares_circle, Circle};
use crate::fit::spline::SmoothingSpline;
use thiserror::Error;

/// Columns of a point-cloud row.
pub const CLOUD_COLUMNS: usize = 8;
/// Columns of an output cluster row: `[x, y, z, integral, scale]`.
pub const CLUSTER_COLUMNS: usize = 5;
/// The z scale applied before HDBSCAN (584/1000).
pub const HDBSCAN_Z_SCALE: f64 = 584.0 / 1000.0;
/// Smoothing parameter of the splines used for the direction.
pub const DIRECTION_SPLINE_LAMBDA: f64 = 10.0;
/// Minimum circle radius (mm) for the overlap join.
pub const OVERLAP_MIN_RADIUS: f64 = 10.0;

/// A row of the input point cloud.
pub type CloudRow = [f64; CLOUD_COLUMNS];
/// A row of an output cluster.
pub type ClusterRow = [f64; CLUSTER_COLUMNS];

/// Errors of the clustering algorithm (bugs or impossible inputs; ordinary events never fail).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ClusterError {
    /// HDBSCAN rejected its input.
    #[error("HDBSCAN: {0}")]
    Hdbscan(#[from] HdbscanError),
    /// LOF rejected its input.
    #[error("local outlier factor: {0}")]
    Lof(#[from] LofError),
}

/// Direction of a track along z (Spyral's `Direction`; stored as -1, 0, 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Undetermined (-1).
    #[default]
    None,
    /// Forward (0): the azimuth about the circle centre grows with z.
    Forward,
    /// Backward (1).
    Backward,
}

impl Direction {
    /// The stored integer: -1, 0 or 1.
    pub fn code(self) -> i64 {
        match self {
            Direction::None => -1,
            Direction::Forward => 0,
            Direction::Backward => 1,
        }
    }
    /// The direction of a stored integer (anything else is `None`).
    pub fn from_code(code: i64) -> Self {
        match code {
            0 => Direction::Forward,
            1 => Direction::Backward,
            _ => Direction::None,
        }
    }
}

/// A labelled sub-cloud (Spyral's `LabeledCloud`).
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledCloud {
    /// HDBSCAN label (-1: noise).
    pub label: i64,
    /// Track direction (set by the join step).
    pub direction: Direction,
    /// The member rows, in the original 8-column layout.
    pub data: Vec<CloudRow>,
    /// Row index of each member in the event cloud.
    pub parent_indices: Vec<usize>,
}

/// A final cluster (Spyral's `Cluster`): rows `[x, y, z, integral, scale]` sorted by z.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Label.
    pub label: i64,
    /// Direction.
    pub direction: Direction,
    /// Rows `[x, y, z, integral, scale]`.
    pub data: Vec<ClusterRow>,
}

/// The clusters of one event and the final label of every cloud row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventClusters {
    /// Clusters in output order.
    pub clusters: Vec<Cluster>,
    /// Label of each cloud row (-1: noise or outlier); empty when the cloud was too small.
    pub labels: Vec<i64>,
}

/// HDBSCAN parameters for a cloud of `n` points:
/// `min_cluster_size = max(int(scale·n), cutoff)`, `min_samples = min_points`.
pub fn hdbscan_for(config: &ClusterConfig, n: usize) -> Option<Hdbscan> {
    let h = config.hdbscan.as_ref()?;
    let scaled = (h.min_size_scale_factor * n as f64).trunc();
    let scaled = if scaled.is_finite() && scaled > 0.0 {
        scaled as usize
    } else {
        0
    };
    Some(Hdbscan {
        min_cluster_size: scaled.max(h.min_size_lower_cutoff),
        min_samples: h.min_points,
        cluster_selection_epsilon: h.cluster_selection_epsilon,
    })
}

/// The HDBSCAN features of a cloud: `[x, y, 0.584·z]`.
pub fn hdbscan_features(cloud: &[CloudRow]) -> Vec<[f64; 3]> {
    cloud
        .iter()
        .map(|r| [r[0], r[1], r[2] * HDBSCAN_Z_SCALE])
        .collect()
}

/// `form_clusters`: HDBSCAN labels and one labelled cloud per label (ascending, noise
/// included). A cloud smaller than `min_cloud_size` (or than `min_points`, or than 2 points)
/// has no clusters and an empty label array.
pub fn form_clusters(
    cloud: &[CloudRow],
    config: &ClusterConfig,
) -> Result<(Vec<LabeledCloud>, Vec<i64>), ClusterError> {
    let n = cloud.len();
    let Some(h) = hdbscan_for(config, n) else {
        return Ok((Vec::new(), Vec::new()));
    };
    if n < config.min_cloud_size || n < 2 || n < h.min_samples {
        return Ok((Vec::new(), Vec::new()));
    }
    let labels = h.fit(&hdbscan_features(cloud))?;
    let mut unique: Vec<i64> = labels.clone();
    unique.sort_unstable();
    unique.dedup();
    let clusters = unique
        .into_iter()
        .map(|label| {
            let parent_indices: Vec<usize> = (0..n).filter(|&i| labels[i] == label).collect();
            LabeledCloud {
                label,
                direction: Direction::None,
                data: parent_indices.iter().map(|&i| cloud[i]).collect(),
                parent_indices,
            }
        })
        .collect();
    Ok((clusters, labels))
}

fn xyz(rows: &[CloudRow]) -> Vec<[f64; 3]> {
    rows.iter().map(|r| [r[0], r[1], r[2]]).collect()
}

/// `clean_clusters`: LOF on every non-noise cluster of at least 2 points; outliers are removed
/// and labelled -1. Noise (and clusters of fewer than 2 points) are dropped.
pub fn clean_clusters(
    clusters: Vec<LabeledCloud>,
    labels: &mut [i64],
    outlier_scale_factor: f64,
) -> Result<Vec<LabeledCloud>, ClusterError> {
    let mut out = Vec::with_capacity(clusters.len());
    for mut c in clusters {
        if c.label == NOISE || c.data.len() < 2 {
            continue;
        }
        let k = spyral_neighbors(outlier_scale_factor, c.data.len());
        let outliers = lof_outliers(&xyz(&c.data), k)?;
        if outliers.iter().any(|&o| o) {
            let mut data = Vec::with_capacity(c.data.len());
            let mut parents = Vec::with_capacity(c.data.len());
            for ((row, parent), outlier) in c.data.iter().zip(&c.parent_indices).zip(&outliers) {
                if *outlier {
                    if let Some(l) = labels.get_mut(*parent) {
                        *l = NOISE;
                    }
                } else {
                    data.push(*row);
                    parents.push(*parent);
                }
            }
            c.data = data;
            c.parent_indices = parents;
        }
        if !c.data.is_empty() {
            out.push(c);
        }
    }
    Ok(out)
}

/// `get_direction`: x and y smoothed against z (when more than 5 points), circle fit, and the
/// share of increasing azimuth steps about the centre decides FORWARD or BACKWARD.
///
/// If a spline cannot be fitted (repeated z), the raw x and y are used (Spyral raises).
pub fn direction(data: &[CloudRow], threshold: f64) -> Direction {
    let n = data.len();
    let z: Vec<f64> = data.iter().map(|r| r[2]).collect();
    let mut x: Vec<f64> = data.iter().map(|r| r[0]).collect();
    let mut y: Vec<f64> = data.iter().map(|r| r[1]).collect();
    if n > 5 {
        if let (Ok(sx), Ok(sy)) = (
            SmoothingSpline::fit(&z, &x, DIRECTION_SPLINE_LAMBDA),
            SmoothingSpline::fit(&z, &y, DIRECTION_SPLINE_LAMBDA),
        ) {
            x = sx.fitted().to_vec();
            y = sy.fitted().to_vec();
        }
    }
    if n < 2 {
        return Direction::None;
    }
    let c = least_squares_circle(&x, &y);
    let degrees: Vec<f64> = x
        .iter()
        .zip(&y)
        .map(|(&xi, &yi)| {
            let mut t = (yi - c.cy).atan2(xi - c.cx);
            if t < 0.0 {
                t += std::f64::consts::TAU;
            }
            t.to_degrees()
        })
        .collect();
    let steps = n - 1;
    let positive = degrees.windows(2).filter(|w| w[1] - w[0] > 0.0).count();
    let pos = positive as f64 / steps as f64;
    let neg = 1.0 - pos;
    if pos > threshold {
        Direction::Forward
    } else if neg > threshold {
        Direction::Backward
    } else {
        Direction::None
    }
}

/// `join_clusters`: directions of every cluster, then the continuity join (if configured,
/// it takes precedence) or the overlap join. Without join parameters the clusters are
/// returned unchanged with direction NONE.
pub fn join_clusters(
    mut clusters: Vec<LabeledCloud>,
    config: &ClusterConfig,
    labels: &mut [i64],
) -> Vec<LabeledCloud> {
    if config.continuity_join.is_none() && config.overlap_join.is_none() {
        return clusters;
    }
    for c in &mut clusters {
        c.direction = direction(&c.data, config.direction_threshold);
    }
    if let Some(p) = &config.continuity_join {
        continuity_join(clusters, p, labels)
    } else if let Some(p) = &config.overlap_join {
        overlap_join(clusters, p, labels)
    } else {
        clusters
    }
}

/// Median of a non-empty list (numpy: the mean of the two middle values for even lengths).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median position of `rows` after centring x and y on the circle centre.
fn centred_median(rows: &[CloudRow], circle: &Circle) -> [f64; 3] {
    let mut xs: Vec<f64> = rows.iter().map(|r| r[0] - circle.cx).collect();
    let mut ys: Vec<f64> = rows.iter().map(|r| r[1] - circle.cy).collect();
    let mut zs: Vec<f64> = rows.iter().map(|r| r[2]).collect();
    [median(&mut xs), median(&mut ys), median(&mut zs)]
}

fn circle_of(rows: &[CloudRow]) -> Circle {
    let x: Vec<f64> = rows.iter().map(|r| r[0]).collect();
    let y: Vec<f64> = rows.iter().map(|r| r[1]).collect();
    least_squares_circle(&x, &y)
}

fn z_range(rows: &[CloudRow]) -> (f64, f64) {
    rows.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
            (lo.min(r[2]), hi.max(r[2]))
        })
}

/// Merges `groups` (lists of member indices into `clusters`, in order) into new clouds;
/// `sort_z` re-sorts each merged cloud by z. The direction is the last member's.
fn rebuild(
    clusters: &[LabeledCloud],
    groups: &[(i64, Vec<usize>)],
    sort_z: bool,
) -> Vec<LabeledCloud> {
    groups
        .iter()
        .filter(|(g, _)| *g != NOISE)
        .map(|(g, members)| {
            let mut rows: Vec<(CloudRow, usize)> = members
                .iter()
                .flat_map(|&m| {
                    clusters[m]
                        .data
                        .iter()
                        .copied()
                        .zip(clusters[m].parent_indices.iter().copied())
                })
                .collect();
            if sort_z && members.len() > 1 {
                rows.sort_by(|a, b| a.0[2].total_cmp(&b.0[2]));
            }
            let direction = members
                .last()
                .map(|&m| clusters[m].direction)
                .unwrap_or_default();
            LabeledCloud {
                label: *g,
                direction,
                data: rows.iter().map(|r| r.0).collect(),
                parent_indices: rows.iter().map(|r| r.1).collect(),
            }
        })
        .collect()
}

/// Replaces every label of a merged member by its group's label.
fn relabel(labels: &mut [i64], groups: &[(i64, Vec<i64>)]) {
    for (g, members) in groups {
        if *g == NOISE {
            continue;
        }
        for l in labels.iter_mut() {
            if members.contains(l) {
                *l = *g;
            }
        }
    }
}

/// The continuity join (spec 3.2.4): noise dropped, then, while the count changes and more
/// than one cluster is left, sort by first z and merge at most one pair per step.
pub fn continuity_join(
    clusters: Vec<LabeledCloud>,
    params: &ContinuityJoinParameters,
    labels: &mut [i64],
) -> Vec<LabeledCloud> {
    let mut current: Vec<LabeledCloud> =
        clusters.into_iter().filter(|c| c.label != NOISE).collect();
    let mut before = current.len();
    let mut after = 0;
    while before != after && current.len() > 1 {
        before = current.len();
        current.sort_by(|a, b| a.data[0][2].total_cmp(&b.data[0][2]));
        current = continuity_step(current, params, labels);
        after = current.len();
    }
    current
}

fn continuity_step(
    clusters: Vec<LabeledCloud>,
    params: &ContinuityJoinParameters,
    labels: &mut [i64],
) -> Vec<LabeledCloud> {
    if clusters.len() < 2 {
        return clusters;
    }
    let circles: Vec<Circle> = clusters.iter().map(|c| circle_of(&c.data)).collect();
    let zr: Vec<(f64, f64)> = clusters.iter().map(|c| z_range(&c.data)).collect();
    let mut merge: Option<(usize, usize)> = None;
    'outer: for (a, ca) in clusters.iter().enumerate() {
        if ca.label == NOISE {
            continue;
        }
        for (b, cb) in clusters.iter().enumerate() {
            if cb.label == NOISE || a == b || ca.direction != cb.direction {
                continue;
            }
            let tail = &ca.data[ca.data.len().saturating_sub(3)..];
            let head = &cb.data[..cb.data.len().min(3)];
            let pa = centred_median(tail, &circles[a]);
            let pb = centred_median(head, &circles[b]);
            let z_thr = (zr[a].1.max(zr[b].1) - zr[a].0.min(zr[b].0)) * params.join_z_fraction;
            let rho_thr =
                (circles[a].radius + circles[b].radius) / 2.0 * params.join_radius_fraction;
            let rho_a = (pa[0] * pa[0] + pa[1] * pa[1]).sqrt();
            let rho_b = (pb[0] * pb[0] + pb[1] * pb[1]).sqrt();
            if (rho_a - rho_b).abs() < rho_thr && (pa[2] - pb[2]).abs() < z_thr {
                merge = Some((a, b));
                break 'outer;
            }
        }
    }
    let Some((a, b)) = merge else {
        return clusters;
    };
    let (la, lb) = (clusters[a].label, clusters[b].label);
    let groups: Vec<(i64, Vec<usize>)> = (0..clusters.len())
        .filter(|&i| i != b)
        .map(|i| {
            if i == a {
                (la, vec![a, b])
            } else {
                (clusters[i].label, vec![i])
            }
        })
        .collect();
    relabel(labels, &[(la, vec![la, lb])]);
    rebuild(&clusters, &groups, true)
}

/// Area of the intersection of two circles (Wolfram MathWorld), `None` when they are
/// disjoint; a circle inside the other gives the smaller area.
pub fn circle_overlap(a: &Circle, b: &Circle) -> Option<f64> {
    let (r, s) = (a.radius, b.radius);
    let d = ((a.cx - b.cx).powi(2) + (a.cy - b.cy).powi(2)).sqrt();
    let area_a = std::f64::consts::PI * r * r;
    let area_b = std::f64::consts::PI * s * s;
    let clamp = |t: f64| {
        // Python's min(1, max(-1, t)): NaN becomes -1.
        let t = if t > -1.0 { t } else { -1.0 };
        if t < 1.0 {
            t
        } else {
            1.0
        }
    };
    let t1 = (d * d + r * r - s * s) / (2.0 * d * r);
    let t2 = (d * d + s * s - r * r) / (2.0 * d * s);
    let c1 = -d + r + s;
    let c2 = d + r - s;
    let c3 = d - r + s;
    let c4 = d + r + s;
    let t3 = c1 * c2 * c3 * c4;
    if t3 < 0.0 && c1 < 0.0 {
        None
    } else if t3 < 0.0 && (c2 < 0.0 || c3 < 0.0) {
        Some(area_a.min(area_b))
    } else {
        Some(r * r * clamp(t1).acos() + s * s * clamp(t2).acos() - 0.5 * t3.sqrt())
    }
}

/// The overlap join (spec 3.2.5) as intended: Spyral 1.1.2 re-tests A's radius for B and
/// cannot rebuild merged clusters; here B's radius is checked and the rebuild keeps the
/// last member's direction.
pub fn overlap_join(
    clusters: Vec<LabeledCloud>,
    params: &OverlapJoinParameters,
    labels: &mut [i64],
) -> Vec<LabeledCloud> {
    let mut current = clusters;
    let mut before = current.len();
    let mut after = 0;
    while before != after && current.len() > 1 {
        before = current.len();
        current = overlap_step(current, params, labels);
        after = current.len();
    }
    current
}

fn overlap_step(
    clusters: Vec<LabeledCloud>,
    params: &OverlapJoinParameters,
    labels: &mut [i64],
) -> Vec<LabeledCloud> {
    if clusters.len() < 2 {
        return clusters;
    }
    let circles: Vec<Circle> = clusters.iter().map(|c| circle_of(&c.data)).collect();
    let mut current_label: Vec<i64> = clusters.iter().map(|c| c.label).collect();
    // Groups keyed by label, in first-appearance order: (label, member indices, member labels).
    let mut groups: Vec<(i64, Vec<usize>, Vec<i64>)> = Vec::new();
    for (i, c) in clusters.iter().enumerate() {
        if let Some(g) = groups.iter_mut().find(|g| g.0 == c.label) {
            // Repeated labels do not occur; keep the last index like a dict assignment.
            g.1 = vec![i];
            g.2 = vec![c.label];
        } else {
            groups.push((c.label, vec![i], vec![c.label]));
        }
    }
    let eligible = |i: usize, label: i64| {
        label != NOISE
            && !circles[i].cx.is_nan()
            && circles[i].radius >= OVERLAP_MIN_RADIUS
            && clusters[i].data.len() >= params.min_cluster_size_join
    };
    for a in 0..clusters.len() {
        if !eligible(a, current_label[a]) {
            continue;
        }
        let area_a = std::f64::consts::PI * circles[a].radius.powi(2);
        for b in 0..clusters.len() {
            if b == a || !eligible(b, current_label[b]) {
                continue;
            }
            let Some(overlap) = circle_overlap(&circles[a], &circles[b]) else {
                continue;
            };
            let area_b = std::f64::consts::PI * circles[b].radius.powi(2);
            let la = current_label[a];
            let in_group = groups
                .iter()
                .find(|g| g.0 == la)
                .is_some_and(|g| g.1.contains(&b));
            if overlap > params.circle_overlap_ratio * area_a.min(area_b)
                && !in_group
                && clusters[a].direction == clusters[b].direction
            {
                let lb = current_label[b];
                let Some(pos) = groups.iter().position(|g| g.0 == lb) else {
                    continue;
                };
                let (_, members, member_labels) = groups.remove(pos);
                for &m in &members {
                    current_label[m] = la;
                }
                if let Some(g) = groups.iter_mut().find(|g| g.0 == la) {
                    g.1.extend(members);
                    g.2.extend(member_labels);
                }
            }
        }
    }
    let label_groups: Vec<(i64, Vec<i64>)> = groups.iter().map(|g| (g.0, g.2.clone())).collect();
    relabel(labels, &label_groups);
    let index_groups: Vec<(i64, Vec<usize>)> = groups.into_iter().map(|g| (g.0, g.1)).collect();
    rebuild(&clusters, &index_groups, false)
}

/// `cleanup_clusters`: every non-noise cluster of at least 2 points is sorted by z, reduced to
/// `[x, y, z, integral, scale]` and cleaned by LOF again (outliers dropped, labelled -1).
pub fn cleanup_clusters(
    clusters: Vec<LabeledCloud>,
    labels: &mut [i64],
    outlier_scale_factor: f64,
) -> Result<Vec<Cluster>, ClusterError> {
    let mut out = Vec::with_capacity(clusters.len());
    for c in clusters {
        if c.label == NOISE || c.data.len() < 2 {
            continue;
        }
        let mut rows: Vec<(CloudRow, usize)> = c
            .data
            .iter()
            .copied()
            .zip(c.parent_indices.iter().copied())
            .collect();
        rows.sort_by(|a, b| a.0[2].total_cmp(&b.0[2]));
        let pts: Vec<[f64; 3]> = rows.iter().map(|r| [r.0[0], r.0[1], r.0[2]]).collect();
        let k = spyral_neighbors(outlier_scale_factor, rows.len());
        let outliers = lof_outliers(&pts, k)?;
        let mut data = Vec::with_capacity(rows.len());
        for ((row, parent), outlier) in rows.iter().zip(&outliers) {
            if *outlier {
                if let Some(l) = labels.get_mut(*parent) {
                    *l = NOISE;
                }
            } else {
                data.push([row[0], row[1], row[2], row[4], row[7]]);
            }
        }
        out.push(Cluster {
            label: c.label,
            direction: c.direction,
            data,
        });
    }
    Ok(out)
}

/// The whole per-event chain: form, clean, join (when configured), clean up.
pub fn cluster_event(
    cloud: &[CloudRow],
    config: &ClusterConfig,
) -> Result<EventClusters, ClusterError> {
    let (clusters, mut labels) = form_clusters(cloud, config)?;
    if clusters.is_empty() {
        return Ok(EventClusters {
            clusters: Vec::new(),
            labels,
        });
    }
    let clusters = clean_clusters(clusters, &mut labels, config.outlier_scale_factor)?;
    let clusters = join_clusters(clusters, config, &mut labels);
    let clusters = cleanup_clusters(clusters, &mut labels, config.outlier_scale_factor)?;
    Ok(EventClusters { clusters, labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(x: f64, y: f64, z: f64) -> CloudRow {
        [x, y, z, 100.0, 1000.0, 0.0, 0.0, 0.5]
    }

    /// A helix arc around (0, 80) of radius 80 (or (0, 50), radius 50 when `small`), from angle
    /// `a0` with step `da` per point, starting at `z0` with 2-3 mm per point.
    fn arc(small: bool, a0: f64, da: f64, z0: f64, n: usize) -> Vec<CloudRow> {
        let (c, dz) = if small { (50.0, 2.0) } else { (80.0, 3.0) };
        (0..n)
            .map(|i| {
                let a = a0 + da * i as f64;
                row(c * a.cos(), c + c * a.sin(), z0 + dz * i as f64)
            })
            .collect()
    }

    #[test]
    fn direction_follows_the_azimuth() {
        let fwd = arc(true, -1.5, 0.02, 0.0, 60);
        assert_eq!(direction(&fwd, 0.5), Direction::Forward);
        let bwd = arc(true, -1.5, -0.02, 0.0, 60);
        assert_eq!(direction(&bwd, 0.5), Direction::Backward);
        assert_eq!(direction(&fwd[..1], 0.5), Direction::None);
        assert_eq!(
            Direction::from_code(Direction::Backward.code()),
            Direction::Backward
        );
    }

    #[test]
    fn overlap_area() {
        let a = Circle {
            cx: 0.0,
            cy: 0.0,
            radius: 10.0,
            residual: 0.0,
        };
        let far = Circle { cx: 100.0, ..a };
        assert_eq!(circle_overlap(&a, &far), None);
        let inner = Circle { radius: 2.0, ..a };
        let area = circle_overlap(&a, &inner).unwrap();
        assert!((area - std::f64::consts::PI * 4.0).abs() < 1e-9);
        let same = circle_overlap(&a, &a).unwrap();
        assert!((same - 2.0 * std::f64::consts::PI * 100.0).abs() < 1e-9);
        // Half-overlapping equal circles at distance r: known lens area.
        let b = Circle { cx: 10.0, ..a };
        let lens = circle_overlap(&a, &b).unwrap();
        let expected = 2.0 * 100.0 * (0.5f64).acos() - 0.5 * (30.0 * 10.0 * 10.0 * 10.0f64).sqrt();
        assert!((lens - expected).abs() < 1e-9);
    }

    #[test]
    fn continuity_join_merges_a_broken_track() {
        let config = ClusterConfig::default();
        let first = arc(false, -1.55, 0.01, 0.0, 40);
        let second = arc(false, -1.55 + 0.41, 0.01, 123.0, 40);
        let mut labels = vec![0; 80];
        labels[40..].iter_mut().for_each(|l| *l = 1);
        let clusters = vec![
            LabeledCloud {
                label: 0,
                direction: Direction::None,
                data: first,
                parent_indices: (0..40).collect(),
            },
            LabeledCloud {
                label: 1,
                direction: Direction::None,
                data: second,
                parent_indices: (40..80).collect(),
            },
        ];
        let joined = join_clusters(clusters, &config, &mut labels);
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].data.len(), 80);
        assert_eq!(joined[0].direction, Direction::Forward);
        assert!(joined[0].data.windows(2).all(|w| w[0][2] <= w[1][2]));
        assert!(labels.iter().all(|&l| l == 0));
    }
}
