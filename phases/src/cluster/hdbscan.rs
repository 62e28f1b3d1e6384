//! HDBSCAN with scikit-learn's semantics (`sklearn.cluster.HDBSCAN`, euclidean metric,
//! `alpha = 1`, `cluster_selection_method = "eom"`, `allow_single_cluster = False`, no maximum
//! cluster size), written for the small clouds of one AT-TPC event (O(N²) time, O(N) memory).
//!
//! The steps follow scikit-learn's:
//! 1. core distance of each point: the distance to its `min_samples`-th nearest neighbour,
//!    **counting the point itself** (so `min_samples = 1` gives 0);
//! 2. minimum spanning tree of the mutual-reachability graph
//!    (`max(core_a, core_b, d(a, b))`) with Prim's algorithm started at point 0, scanning
//!    candidates in index order with the same strict comparisons (so ties resolve alike);
//! 3. edges sorted by weight in the order numpy's default (unstable) `argsort` gives on an
//!    x86-64 CPU with AVX-512 ([`crate::numpy_sort`]), single-linkage tree with new nodes numbered
//!    `N, N+1, ...`. The order of equal weights matters: mutual-reachability weights tie often
//!    (every edge of a point whose core distance dominates has that weight), and the order of
//!    equal-weight merges decides which side of a split keeps the points that fall out there,
//!    and whether a cluster is born at all. A stable sort gave other clusters than
//!    scikit-learn in about 10% of simulated AT-TPC events;
//! 4. condensed tree (breadth-first, `lambda = 1/distance`, children smaller than
//!    `min_cluster_size` fall out as points), stabilities, excess-of-mass selection without the
//!    root, then `cluster_selection_epsilon`: a selected cluster born below epsilon is replaced
//!    by its first ancestor born above it (or by its top-level ancestor under the root);
//! 5. each point takes the label of its nearest selected ancestor, else -1; labels are numbered
//!    in increasing condensed-tree id.
//!
//! `petal-clustering` (the crate first considered) has no `cluster_selection_epsilon` and
//! merges equal-weight edges n-ary, so it cannot reproduce Spyral's clusters.

use crate::numpy_sort::numpy_argsort_vec;
use thiserror::Error;

/// Label of points that belong to no cluster.
pub const NOISE: i64 = -1;

/// Why HDBSCAN could not run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum HdbscanError {
    /// `min_cluster_size` below 2 (scikit-learn's lower bound).
    #[error("min_cluster_size must be at least 2 (got {0})")]
    MinClusterSize(usize),
    /// `min_samples` is 0.
    #[error("min_samples must be at least 1")]
    MinSamples,
    /// `cluster_selection_epsilon` negative or not finite.
    #[error("cluster_selection_epsilon must be finite and non-negative (got {0})")]
    Epsilon(f64),
    /// Fewer points than `min_samples`, or fewer than 2.
    #[error("{points} points are too few for HDBSCAN with min_samples = {min_samples}")]
    TooFewPoints {
        /// Number of points given.
        points: usize,
        /// The configured min_samples.
        min_samples: usize,
    },
    /// A coordinate is NaN or infinite.
    #[error("point {0} has a non-finite coordinate")]
    NonFinite(usize),
}

/// HDBSCAN parameters (scikit-learn names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hdbscan {
    /// Smallest group that counts as a cluster (>= 2).
    pub min_cluster_size: usize,
    /// Neighbourhood size, point included, for the core distance (>= 1).
    pub min_samples: usize,
    /// Clusters born at a distance below this are merged into their ancestor (0: off).
    pub cluster_selection_epsilon: f64,
}

#[derive(Debug, Clone, Copy)]
struct Merge {
    left: usize,
    right: usize,
    distance: f64,
}

#[derive(Debug, Clone, Copy)]
struct CondensedRow {
    parent: usize,
    child: usize,
    lambda: f64,
    size: usize,
}

impl Hdbscan {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), HdbscanError> {
        if self.min_cluster_size < 2 {
            return Err(HdbscanError::MinClusterSize(self.min_cluster_size));
        }
        if self.min_samples < 1 {
            return Err(HdbscanError::MinSamples);
        }
        let e = self.cluster_selection_epsilon;
        if !(e.is_finite() && e >= 0.0) {
            return Err(HdbscanError::Epsilon(e));
        }
        Ok(())
    }

    /// Cluster labels (`0..k`, or [`NOISE`]) of `points`.
    pub fn fit<const D: usize>(&self, points: &[[f64; D]]) -> Result<Vec<i64>, HdbscanError> {
        self.validate()?;
        let n = points.len();
        if n < 2 || n < self.min_samples {
            return Err(HdbscanError::TooFewPoints {
                points: n,
                min_samples: self.min_samples,
            });
        }
        if let Some(i) = points.iter().position(|p| p.iter().any(|v| !v.is_finite())) {
            return Err(HdbscanError::NonFinite(i));
        }
        let core = core_distances(points, self.min_samples);
        let mst = prim_mst(points, &core);
        let weights: Vec<f64> = mst.iter().map(|e| e.distance).collect();
        let sorted: Vec<Merge> = numpy_argsort_vec(&weights)
            .into_iter()
            .map(|i| mst[i])
            .collect();
        let tree = single_linkage(&sorted, n);
        let condensed = condense(&tree, n, self.min_cluster_size);
        Ok(select_and_label(
            &condensed,
            n,
            self.cluster_selection_epsilon,
        ))
    }
}

/// Squared euclidean distance, summed in coordinate order like scikit-learn's `rdist`.
#[inline]
fn dist2<const D: usize>(a: &[f64; D], b: &[f64; D]) -> f64 {
    let mut s = 0.0;
    for k in 0..D {
        let d = a[k] - b[k];
        s += d * d;
    }
    s
}

/// Euclidean distance (`sqrt` of [`dist2`], as scikit-learn's `DistanceMetric`).
#[inline]
fn dist<const D: usize>(a: &[f64; D], b: &[f64; D]) -> f64 {
    dist2(a, b).sqrt()
}

/// Distance of each point to its `k`-th nearest neighbour, itself included (selected on
/// squared distances like scikit-learn's kd-tree, square root taken at the end).
fn core_distances<const D: usize>(points: &[[f64; D]], k: usize) -> Vec<f64> {
    let mut row = vec![0.0f64; points.len()];
    points
        .iter()
        .map(|p| {
            for (r, q) in row.iter_mut().zip(points) {
                *r = dist2(p, q);
            }
            let (_, kth, _) = row.select_nth_unstable_by(k - 1, f64::total_cmp);
            kth.sqrt()
        })
        .collect()
}

/// Prim's minimum spanning tree of the mutual-reachability graph, as scikit-learn's
/// `mst_from_data_matrix` builds it (edge i joins the tree to its (i+2)-th node).
fn prim_mst<const D: usize>(points: &[[f64; D]], core: &[f64]) -> Vec<Merge> {
    let n = points.len();
    let mut in_tree = vec![false; n];
    let mut min_reach = vec![f64::INFINITY; n];
    let mut sources = vec![1usize; n];
    let mut edges = Vec::with_capacity(n - 1);
    let mut current = 0usize;
    for _ in 0..n - 1 {
        in_tree[current] = true;
        let core_cur = core[current];
        let mut new_reach = f64::MAX;
        let mut source = 0usize;
        let mut new_node = 0usize;
        for j in 0..n {
            if in_tree[j] {
                continue;
            }
            let reach_j = min_reach[j];
            let mrd = core_cur
                .max(core[j])
                .max(dist(&points[current], &points[j]));
            if mrd < reach_j {
                min_reach[j] = mrd;
                sources[j] = current;
                if mrd < new_reach {
                    new_reach = mrd;
                    source = current;
                    new_node = j;
                }
            } else if reach_j < new_reach {
                new_reach = reach_j;
                source = sources[j];
                new_node = j;
            }
        }
        edges.push(Merge {
            left: source,
            right: new_node,
            distance: new_reach,
        });
        current = new_node;
    }
    edges
}

/// Single-linkage merges from weight-sorted MST edges: row i creates node `n + i` from the
/// current roots of the edge's ends; returns (left, right, distance, size) per row.
fn single_linkage(mst: &[Merge], n: usize) -> Vec<(Merge, usize)> {
    let mut parent: Vec<usize> = vec![usize::MAX; 2 * n - 1];
    let mut size: Vec<usize> = vec![1; 2 * n - 1];
    let find = |parent: &mut Vec<usize>, x: usize| {
        let mut r = x;
        while parent[r] != usize::MAX {
            r = parent[r];
        }
        let mut p = x;
        while parent[p] != usize::MAX && parent[p] != r {
            let next = parent[p];
            parent[p] = r;
            p = next;
        }
        r
    };
    let mut out = Vec::with_capacity(mst.len());
    for (i, e) in mst.iter().enumerate() {
        let a = find(&mut parent, e.left);
        let b = find(&mut parent, e.right);
        let node = n + i;
        let s = size[a] + size[b];
        parent[a] = node;
        parent[b] = node;
        size[node] = s;
        out.push((
            Merge {
                left: a,
                right: b,
                distance: e.distance,
            },
            s,
        ));
    }
    out
}

/// Breadth-first listing of the single-linkage subtree under `root` (nodes >= n are merges).
fn bfs_hierarchy(tree: &[(Merge, usize)], n: usize, root: usize, out: &mut Vec<usize>) {
    out.clear();
    out.push(root);
    let mut head = 0;
    while head < out.len() {
        let node = out[head];
        head += 1;
        if node >= n {
            let (m, _) = tree[node - n];
            out.push(m.left);
            out.push(m.right);
        }
    }
}

/// scikit-learn's `_condense_tree`.
fn condense(tree: &[(Merge, usize)], n: usize, min_cluster_size: usize) -> Vec<CondensedRow> {
    let root = 2 * (n - 1);
    let mut nodes = Vec::with_capacity(root + 1);
    bfs_hierarchy(tree, n, root, &mut nodes);
    let mut relabel = vec![0usize; root + 1];
    relabel[root] = n;
    let mut next_label = n + 1;
    let mut ignore = vec![false; root + 1];
    let mut rows = Vec::with_capacity(n + 16);
    let mut sub = Vec::new();
    let count = |node: usize| if node >= n { tree[node - n].1 } else { 1 };
    for &node in &nodes {
        if ignore[node] || node < n {
            continue;
        }
        let (m, _) = tree[node - n];
        let lambda = if m.distance > 0.0 {
            1.0 / m.distance
        } else {
            f64::INFINITY
        };
        let (lc, rc) = (count(m.left), count(m.right));
        let parent = relabel[node];
        let mut fall_out = |side: usize, rows: &mut Vec<CondensedRow>, ignore: &mut Vec<bool>| {
            bfs_hierarchy(tree, n, side, &mut sub);
            for &s in &sub {
                if s < n {
                    rows.push(CondensedRow {
                        parent,
                        child: s,
                        lambda,
                        size: 1,
                    });
                }
                ignore[s] = true;
            }
        };
        if lc >= min_cluster_size && rc >= min_cluster_size {
            for (side, c) in [(m.left, lc), (m.right, rc)] {
                relabel[side] = next_label;
                next_label += 1;
                rows.push(CondensedRow {
                    parent,
                    child: relabel[side],
                    lambda,
                    size: c,
                });
            }
        } else if lc < min_cluster_size && rc < min_cluster_size {
            fall_out(m.left, &mut rows, &mut ignore);
            fall_out(m.right, &mut rows, &mut ignore);
        } else if lc < min_cluster_size {
            relabel[m.right] = parent;
            fall_out(m.left, &mut rows, &mut ignore);
        } else {
            relabel[m.left] = parent;
            fall_out(m.right, &mut rows, &mut ignore);
        }
    }
    rows
}

/// Stabilities, excess-of-mass selection, epsilon merging and point labels.
fn select_and_label(rows: &[CondensedRow], n: usize, epsilon: f64) -> Vec<i64> {
    let root = n;
    let max_id = rows
        .iter()
        .map(|r| r.parent.max(r.child))
        .max()
        .unwrap_or(root);
    let n_ids = max_id + 1;
    // Birth lambda of every node (the root is born at 0) and parent of every node.
    let mut birth = vec![f64::NAN; n_ids];
    let mut parent_of = vec![usize::MAX; n_ids];
    for r in rows {
        birth[r.child] = r.lambda;
        parent_of[r.child] = r.parent;
    }
    birth[root] = 0.0;
    let mut stability = vec![0.0f64; n_ids];
    for r in rows {
        stability[r.parent] += (r.lambda - birth[r.parent]) * r.size as f64;
    }
    // Cluster children of each cluster, in row order.
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n_ids];
    for r in rows.iter().filter(|r| r.size > 1) {
        children[r.parent].push(r.child);
    }
    let max_parent = rows.iter().map(|r| r.parent).max().unwrap_or(root);
    let mut is_cluster = vec![false; n_ids];
    // Excess of mass, bottom-up (children have larger ids than their parents).
    for node in (root + 1..=max_parent).rev() {
        is_cluster[node] = true;
    }
    let mut stack = Vec::new();
    for node in (root + 1..=max_parent).rev() {
        let subtree: f64 = children[node].iter().map(|&c| stability[c]).sum();
        if subtree > stability[node] {
            is_cluster[node] = false;
            stability[node] = subtree;
        } else {
            stack.clear();
            stack.extend_from_slice(&children[node]);
            while let Some(d) = stack.pop() {
                is_cluster[d] = false;
                stack.extend_from_slice(&children[d]);
            }
        }
    }
    let has_cluster_tree = rows.iter().any(|r| r.size > 1);
    if epsilon != 0.0 && has_cluster_tree {
        let eom: Vec<usize> = (root + 1..=max_parent).filter(|&c| is_cluster[c]).collect();
        let mut selected = vec![false; n_ids];
        let mut processed = vec![false; n_ids];
        for &leaf in &eom {
            let eps = 1.0 / birth[leaf];
            if eps < epsilon {
                if !processed[leaf] {
                    let chosen = traverse_upwards(leaf, root, epsilon, &parent_of, &birth);
                    selected[chosen] = true;
                    stack.clear();
                    stack.extend_from_slice(&children[chosen]);
                    while let Some(d) = stack.pop() {
                        processed[d] = true;
                        stack.extend_from_slice(&children[d]);
                    }
                }
            } else {
                selected[leaf] = true;
            }
        }
        is_cluster[root + 1..=max_parent].copy_from_slice(&selected[root + 1..=max_parent]);
    }
    // Labels in increasing id order.
    let mut label_of = vec![NOISE; n_ids];
    let mut next = 0i64;
    for c in root + 1..=max_parent {
        if is_cluster[c] {
            label_of[c] = next;
            next += 1;
        }
    }
    (0..n)
        .map(|p| {
            let mut c = parent_of[p];
            while c != usize::MAX && c != root && !is_cluster[c] {
                c = parent_of[c];
            }
            if c == usize::MAX || c == root {
                NOISE
            } else {
                label_of[c]
            }
        })
        .collect()
}

/// scikit-learn's `traverse_upwards` without single clusters: the first ancestor of `leaf`
/// born at a distance above `epsilon`, or the ancestor just under the root.
fn traverse_upwards(
    leaf: usize,
    root: usize,
    epsilon: f64,
    parent_of: &[usize],
    birth: &[f64],
) -> usize {
    let mut node = leaf;
    loop {
        let parent = parent_of[node];
        if parent == root || parent == usize::MAX {
            return node;
        }
        if 1.0 / birth[parent] > epsilon {
            return parent;
        }
        node = parent;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(cx: f64, cy: f64, n: usize, spread: f64) -> Vec<[f64; 2]> {
        (0..n)
            .map(|i| {
                let a = i as f64 * 2.399_963;
                let r = spread * ((i as f64 + 0.5) / n as f64).sqrt();
                [cx + r * a.cos(), cy + r * a.sin()]
            })
            .collect()
    }

    #[test]
    fn two_blobs_and_noise() {
        let mut pts = blob(0.0, 0.0, 40, 3.0);
        pts.extend(blob(50.0, 10.0, 30, 3.0));
        pts.push([200.0, 200.0]);
        let h = Hdbscan {
            min_cluster_size: 10,
            min_samples: 3,
            cluster_selection_epsilon: 0.0,
        };
        let labels = h.fit(&pts).unwrap();
        assert!(labels[..40].iter().all(|&l| l == labels[0]));
        assert!(labels[40..70].iter().all(|&l| l == labels[40]));
        assert_ne!(labels[0], labels[40]);
        assert!(labels[0] >= 0 && labels[40] >= 0);
        assert_eq!(labels[70], NOISE);
    }

    #[test]
    fn epsilon_merges_close_clusters() {
        let mut pts = blob(0.0, 0.0, 40, 3.0);
        pts.extend(blob(8.0, 0.0, 40, 3.0));
        pts.extend(blob(300.0, 0.0, 40, 3.0));
        let base = Hdbscan {
            min_cluster_size: 10,
            min_samples: 3,
            cluster_selection_epsilon: 0.0,
        };
        let l0 = base.fit(&pts).unwrap();
        let k0 = l0.iter().copied().max().unwrap() + 1;
        let l1 = Hdbscan {
            cluster_selection_epsilon: 20.0,
            ..base
        }
        .fit(&pts)
        .unwrap();
        let k1 = l1.iter().copied().max().unwrap() + 1;
        assert!(k1 <= k0);
        assert_eq!(k1, 2);
        assert_eq!(l1[0], l1[45]);
    }

    #[test]
    fn bad_input() {
        let h = Hdbscan {
            min_cluster_size: 5,
            min_samples: 3,
            cluster_selection_epsilon: 0.0,
        };
        assert!(matches!(
            h.fit(&[[0.0, 0.0], [1.0, 1.0]]),
            Err(HdbscanError::TooFewPoints { .. })
        ));
        assert!(matches!(
            h.fit(&[[0.0, 0.0], [1.0, f64::NAN], [2.0, 2.0]]),
            Err(HdbscanError::NonFinite(1))
        ));
        let bad = Hdbscan {
            min_cluster_size: 1,
            ..h
        };
        assert!(bad.validate().is_err());
    }
}
