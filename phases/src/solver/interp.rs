//! Bilinear interpolation of the trajectory mesh (spyral-spec §3.4.2) over a borrowed slice (a
//! shared segment in the workers, a `Vec` in tests): the track of any (KE, polar) inside the
//! grid, then rotated by the azimuth and moved to the vertex.
//!
//! The mesh holds, for each time sample, the track of node `(i, j)` computed at
//! `KE_i = linspace(ke_min, ke_max, ke_bins)[i]` and `polar_j = linspace(polar_min, polar_max,
//! polar_bins)[j]`. Where the interpolator puts those nodes is a choice ([`MeshGrid`]):
//!
//! - [`MeshGrid::Spyral`] (default) reproduces Spyral 1.1.2's `BilinearInterpolator`
//!   (`spyral/interpolate/bilinear.py`, built per time sample by `create_interpolator_from_array`
//!   with x = polar in radians, `polar_min·π/180 .. polar_max·π/180`, and y = KE in MeV, both with
//!   `bins` = the mesh's node count, NaN outside), operation for operation:
//!   - the cell width is `w = (max − min)/bins`, so node `i` sits at `min + i·w` although its
//!     track was computed at `min + i·(max − min)/(bins − 1)`: the track interpolated at polar θ is
//!     the mesh's track of `θmin + (θ − θmin)·bins/(bins − 1)` (same for KE), and a fit's polar
//!     comes out lower than the physically right one by about `(θ − θmin)/bins` (KE by
//!     `(KE − KEmin)/ke_bins`);
//!   - a point is refused (Spyral returns NaN) when `x > x_max`, `x < x_min`, `y < y_min` or
//!     `y > y_max`; a NaN coordinate is refused here too (Spyral does not test for it);
//!   - per axis `lo = floor((v − min)/w)`, `e_lo = min + lo·w`, `hi = min(lo + 1, bins − 1)`,
//!     `e_hi = min + hi·w`;
//!   - inside a cell the four corners are combined as `(q11·(x2−x)·(y2−y) + q21·(x−x1)·(y2−y) +
//!     q12·(x2−x)·(y−y1) + q22·(x−x1)·(y−y1)) / ((x2−x1)·(y2−y1))`, in that order;
//!   - in the last polar cell (`x ≥ min + (bins − 1)·w`, where `hi = lo` and `x1 = x2`) the
//!     value is `(q11·(y−y1) + q12·(y2−y)) / (y2−y1)`: the polar column of node `bins − 1` (the
//!     track computed at polar_max) with the two KE weights swapped;
//!   - in the last KE cell (`y1 = y2`) it is `(q11·(x−x1) + q21·(x2−x)) / (x1−x2)`: weights
//!     swapped and the sign flipped (the negated track); in the last cell of both, `q11`;
//!   - at `v = max` exactly, `floor` gives `bins` (for the usual ranges), so Spyral reads one
//!     node past the axis: its array is a strided view of the mesh (`mesh[t].T`), so that read
//!     lands on the flat position `((t·3 + c)·ke_bins + k)·polar_bins + j` with `j = polar_bins`
//!     or `k = ke_bins`, i.e. on the next row of the mesh (or, past the mesh's end, on the zero
//!     tail of Spyral's shared-memory page). The same flat position is read here, 0.0 past the
//!     end, with the cell formula (`x2 < x1` there).
//! - [`MeshGrid::Exact`] puts node `i` at `min + i·(max − min)/(bins − 1)`, where its track was
//!   computed, so that a node's interpolated track is the node's track; plain bilinear weights;
//!   the upper edge itself is inside, points outside `[min, max]` (beyond a rounding tolerance)
//!   are refused.
//!
//! For fixed (KE, polar) the combination is the same for every time sample and coordinate, so one
//! trajectory costs `4 · 3 · n_time_steps` reads of the mesh.

use serde::{Deserialize, Serialize};

/// Why a trajectory could not be interpolated.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum InterpError {
    /// KE or polar angle outside the mesh (or NaN).
    #[error("KE = {ke} MeV, polar = {polar_deg} deg is outside the mesh")]
    OutOfRange {
        /// Kinetic energy (MeV).
        ke: f64,
        /// Polar angle (deg).
        polar_deg: f64,
    },
}

/// Where the interpolator places the mesh nodes (see the module documentation).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MeshGrid {
    /// Spyral 1.1.2's interpolator, reproduced exactly: node `i` at `min + i·(max − min)/bins`
    /// (not where its track was computed), its edge formulas in the last cell of each axis and
    /// its read past the axis at the upper edge.
    #[default]
    Spyral,
    /// Nodes where the mesh was computed, `min + i·(max − min)/(bins − 1)`: no bias.
    Exact,
}

/// A read-only view of a mesh with its axes.
#[derive(Debug, Clone, Copy)]
pub struct MeshView<'a> {
    data: &'a [f64],
    n_t: usize,
    n_ke: usize,
    n_polar: usize,
    ke_min: f64,
    ke_max: f64,
    polar_min: f64,
    polar_max: f64,
    grid: MeshGrid,
}

/// Tolerance (in cells) for points a rounding error outside the grid ([`MeshGrid::Exact`]).
const EDGE_TOLERANCE: f64 = 1e-9;

/// How the four corner values `q = [q11, q12, q21, q22]` of a point combine (Spyral's naming:
/// `1`/`2` = low/high node, first digit polar, second KE).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    /// Plain bilinear weights, summed in the order q11, q21, q12, q22.
    Weights([f64; 4]),
    /// Spyral, inside a cell.
    Cell {
        x2x: f64,
        xx1: f64,
        y2y: f64,
        yy1: f64,
        den: f64,
    },
    /// Spyral, last polar cell (`x1 = x2`).
    PolarEdge { yy1: f64, y2y: f64, den: f64 },
    /// Spyral, last KE cell (`y1 = y2`).
    KeEdge { xx1: f64, x2x: f64, den: f64 },
    /// Spyral, last cell of both axes.
    Corner,
}

impl Rule {
    #[inline(always)]
    fn apply(&self, q11: f64, q12: f64, q21: f64, q22: f64) -> f64 {
        match *self {
            Rule::Weights(w) => w[0] * q11 + w[2] * q21 + w[1] * q12 + w[3] * q22,
            Rule::Cell {
                x2x,
                xx1,
                y2y,
                yy1,
                den,
            } => (q11 * x2x * y2y + q21 * xx1 * y2y + q12 * x2x * yy1 + q22 * xx1 * yy1) / den,
            Rule::PolarEdge { yy1, y2y, den } => (q11 * yy1 + q12 * y2y) / den,
            Rule::KeEdge { xx1, x2x, den } => (q11 * xx1 + q21 * x2x) / den,
            Rule::Corner => q11,
        }
    }
}

/// The corner nodes of a point, as offsets `k·n_polar + j` into one coordinate plane of a time
/// sample (`j` may be `n_polar` and `k` may be `n_ke`: Spyral's read past an axis), in the order
/// q11, q12, q21, q22, and how they combine.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stencil {
    nodes: [usize; 4],
    rule: Rule,
}

/// Spyral's `get_edges_*`: `(lo, e_lo, hi, e_hi)`.
#[inline]
fn spyral_edges(v: f64, min: f64, max: f64, bins: usize) -> (usize, f64, usize, f64) {
    let width = (max - min) / bins as f64;
    // v >= min (checked), so the floor is >= 0; v <= max keeps it <= bins.
    let lo = ((v - min) / width).floor() as usize;
    let e_lo = min + lo as f64 * width;
    let hi = (lo + 1).min(bins - 1);
    let e_hi = min + hi as f64 * width;
    (lo, e_lo, hi, e_hi)
}

impl<'a> MeshView<'a> {
    /// A view of `data` with shape `(n_t, 3, n_ke, n_polar)`, KE axis in MeV and polar axis in
    /// degrees, with Spyral's node positions ([`MeshGrid::Spyral`]; see [`MeshView::with_grid`]).
    /// `None` if the length does not match or an axis has fewer than 2 nodes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        data: &'a [f64],
        n_t: usize,
        n_ke: usize,
        n_polar: usize,
        ke_range: (f64, f64),
        polar_range_deg: (f64, f64),
    ) -> Option<Self> {
        let len = n_t
            .checked_mul(3)?
            .checked_mul(n_ke)?
            .checked_mul(n_polar)?;
        if data.len() != len || n_t == 0 || n_ke < 2 || n_polar < 2 {
            return None;
        }
        if !(ke_range.1 > ke_range.0 && polar_range_deg.1 > polar_range_deg.0) {
            return None;
        }
        Some(MeshView {
            data,
            n_t,
            n_ke,
            n_polar,
            ke_min: ke_range.0,
            ke_max: ke_range.1,
            // `x·(π/180)`, as Spyral's `polar_min * DEG2RAD`.
            polar_min: polar_range_deg.0.to_radians(),
            polar_max: polar_range_deg.1.to_radians(),
            grid: MeshGrid::default(),
        })
    }

    /// The same view with the nodes placed by `grid`.
    pub fn with_grid(mut self, grid: MeshGrid) -> Self {
        self.grid = grid;
        self
    }

    /// Where the nodes are placed.
    pub fn grid(&self) -> MeshGrid {
        self.grid
    }

    /// Number of time samples.
    pub fn time_steps(&self) -> usize {
        self.n_t
    }

    /// KE range (MeV).
    pub fn ke_range(&self) -> (f64, f64) {
        (self.ke_min, self.ke_max)
    }

    /// Polar range (rad).
    pub fn polar_range(&self) -> (f64, f64) {
        (self.polar_min, self.polar_max)
    }

    /// Cell index and fraction of `v` on a linspace axis, or None outside.
    #[inline]
    fn locate_exact(v: f64, min: f64, max: f64, n: usize) -> Option<(usize, f64)> {
        let cells = (n - 1) as f64;
        let x = (v - min) / (max - min) * cells;
        if !(x >= -EDGE_TOLERANCE && x <= cells + EDGE_TOLERANCE) {
            return None;
        }
        let x = x.clamp(0.0, cells);
        let i = (x.floor() as usize).min(n - 2);
        Some((i, x - i as f64))
    }

    /// The corner nodes of `(ke, polar)` and their combination, or the reason it has none.
    #[inline]
    fn stencil(&self, ke: f64, polar: f64) -> Result<Stencil, InterpError> {
        let err = || InterpError::OutOfRange {
            ke,
            polar_deg: polar.to_degrees(),
        };
        let np = self.n_polar;
        match self.grid {
            MeshGrid::Exact => {
                let (i, fk) =
                    Self::locate_exact(ke, self.ke_min, self.ke_max, self.n_ke).ok_or_else(err)?;
                let (j, fp) = Self::locate_exact(polar, self.polar_min, self.polar_max, np)
                    .ok_or_else(err)?;
                let base = i * np + j;
                Ok(Stencil {
                    nodes: [base, base + np, base + 1, base + np + 1],
                    rule: Rule::Weights([
                        (1.0 - fk) * (1.0 - fp),
                        fk * (1.0 - fp),
                        (1.0 - fk) * fp,
                        fk * fp,
                    ]),
                })
            }
            MeshGrid::Spyral => {
                // x = polar, y = KE, as Spyral's interpolators are built.
                let (x, y) = (polar, ke);
                if !(x >= self.polar_min
                    && x <= self.polar_max
                    && y >= self.ke_min
                    && y <= self.ke_max)
                {
                    return Err(err());
                }
                let (x1b, x1, x2b, x2) = spyral_edges(x, self.polar_min, self.polar_max, np);
                let (y1b, y1, y2b, y2) = spyral_edges(y, self.ke_min, self.ke_max, self.n_ke);
                let (x2x, y2y, xx1, yy1) = (x2 - x, y2 - y, x - x1, y - y1);
                let rule = if x2 == x1 && y1 == y2 {
                    Rule::Corner
                } else if x2 == x1 {
                    Rule::PolarEdge {
                        yy1,
                        y2y,
                        den: y2 - y1,
                    }
                } else if y1 == y2 {
                    Rule::KeEdge {
                        xx1,
                        x2x,
                        den: x1 - x2,
                    }
                } else {
                    Rule::Cell {
                        x2x,
                        xx1,
                        y2y,
                        yy1,
                        den: (x2 - x1) * (y2 - y1),
                    }
                };
                Ok(Stencil {
                    nodes: [
                        y1b * np + x1b,
                        y2b * np + x1b,
                        y1b * np + x2b,
                        y2b * np + x2b,
                    ],
                    rule,
                })
            }
        }
    }

    /// Coordinate `c` of time sample `t` at plane offset `node` (flat position
    /// `(t·3 + c)·plane + node`; 0.0 past the end of the mesh, see the module documentation).
    #[inline]
    fn at(&self, t: usize, c: usize, node: usize) -> f64 {
        let plane = self.n_ke * self.n_polar;
        self.data
            .get((t * 3 + c) * plane + node)
            .copied()
            .unwrap_or(0.0)
    }

    /// The mesh-frame trajectory (origin, azimuth 0) of `(ke, polar)` into `out` (resized to
    /// `n_t`).
    pub fn trajectory(
        &self,
        ke: f64,
        polar_rad: f64,
        out: &mut Vec<[f64; 3]>,
    ) -> Result<(), InterpError> {
        let s = self.stencil(ke, polar_rad)?;
        let [n11, n12, n21, n22] = s.nodes;
        out.clear();
        out.reserve(self.n_t);
        for t in 0..self.n_t {
            let mut p = [0.0; 3];
            for (c, v) in p.iter_mut().enumerate() {
                *v = s.rule.apply(
                    self.at(t, c, n11),
                    self.at(t, c, n12),
                    self.at(t, c, n21),
                    self.at(t, c, n22),
                );
            }
            out.push(p);
        }
        Ok(())
    }

    /// The trajectory in the detector frame: rotated about z by `azimuthal` and moved to
    /// `vertex` (all SI: m and rad).
    pub fn trajectory_at(
        &self,
        vertex: [f64; 3],
        polar_rad: f64,
        azimuthal_rad: f64,
        ke: f64,
        out: &mut Vec<[f64; 3]>,
    ) -> Result<(), InterpError> {
        self.trajectory(ke, polar_rad, out)?;
        let (s, c) = azimuthal_rad.sin_cos();
        for p in out.iter_mut() {
            let (x, y) = (p[0], p[1]);
            *p = [
                c * x - s * y + vertex[0],
                s * x + c * y + vertex[1],
                p[2] + vertex[2],
            ];
        }
        Ok(())
    }
}

/// Node trajectories kept by a [`CachedInterpolator`].
const CACHE_NODES: usize = 32;

/// An interpolator for one fit: it gathers the (strided) trajectories of the mesh nodes it needs
/// into contiguous buffers once, so the many evaluations of a fit, which stay in a few cells,
/// read a few contiguous kilobytes instead of touching a page of the mesh per time sample. It
/// also drops the repeated samples after the last corner node has stopped. The points it
/// returns are those of [`MeshView::trajectory_at`] (same arithmetic), minus that tail.
#[derive(Debug, Clone)]
pub struct CachedInterpolator<'a> {
    view: MeshView<'a>,
    keys: Vec<usize>,
    nodes: Vec<Vec<[f64; 3]>>,
    /// Index of the last sample that differs from the node's final position.
    last: Vec<usize>,
    next_slot: usize,
}

impl<'a> CachedInterpolator<'a> {
    /// An empty cache over `view`.
    pub fn new(view: MeshView<'a>) -> Self {
        CachedInterpolator {
            view,
            keys: Vec::new(),
            nodes: Vec::new(),
            last: Vec::new(),
            next_slot: 0,
        }
    }

    /// The underlying view.
    pub fn view(&self) -> &MeshView<'a> {
        &self.view
    }

    /// The cache slot holding the track of plane offset `node`, filled if needed.
    fn slot(&mut self, node: usize) -> usize {
        if let Some(k) = self.keys.iter().position(|&key| key == node) {
            return k;
        }
        let v = self.view;
        let k = if self.keys.len() < CACHE_NODES {
            self.keys.push(node);
            self.nodes.push(Vec::with_capacity(v.n_t));
            self.last.push(0);
            self.keys.len() - 1
        } else {
            let k = self.next_slot;
            self.next_slot = (self.next_slot + 1) % CACHE_NODES;
            self.keys[k] = node;
            k
        };
        let track = &mut self.nodes[k];
        track.clear();
        track.extend((0..v.n_t).map(|t| [v.at(t, 0, node), v.at(t, 1, node), v.at(t, 2, node)]));
        let end = track.last().copied().unwrap_or([0.0; 3]);
        self.last[k] = track.iter().rposition(|p| *p != end).map_or(0, |x| x + 1);
        k
    }

    /// Like [`MeshView::trajectory_at`], without the constant tail.
    pub fn trajectory_at(
        &mut self,
        vertex: [f64; 3],
        polar_rad: f64,
        azimuthal_rad: f64,
        ke: f64,
        out: &mut Vec<[f64; 3]>,
    ) -> Result<(), InterpError> {
        let st = self.view.stencil(ke, polar_rad)?;
        let s = st.nodes.map(|node| self.slot(node));
        let len = (s.iter().map(|&k| self.last[k]).max().unwrap_or(0) + 1).min(self.view.n_t);
        let (q11, q12, q21, q22) = (
            &self.nodes[s[0]][..len],
            &self.nodes[s[1]][..len],
            &self.nodes[s[2]][..len],
            &self.nodes[s[3]][..len],
        );
        let (sn, cs) = azimuthal_rad.sin_cos();
        out.clear();
        // One loop per rule, so that each is compiled without a branch per sample.
        macro_rules! fill {
            ($rule:expr) => {{
                let rule = $rule;
                out.extend(
                    q11.iter()
                        .zip(q12)
                        .zip(q21)
                        .zip(q22)
                        .map(|(((a, b), c), d)| {
                            let p: [f64; 3] =
                                std::array::from_fn(|k| rule.apply(a[k], b[k], c[k], d[k]));
                            [
                                cs * p[0] - sn * p[1] + vertex[0],
                                sn * p[0] + cs * p[1] + vertex[1],
                                p[2] + vertex[2],
                            ]
                        }),
                );
            }};
        }
        match st.rule {
            r @ Rule::Weights(_) => fill!(r),
            r @ Rule::Cell { .. } => fill!(r),
            r @ Rule::PolarEdge { .. } => fill!(r),
            r @ Rule::KeEdge { .. } => fill!(r),
            Rule::Corner => fill!(Rule::Corner),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mesh whose value at (t, c, i, j) is a known linear function of the node's (KE, polar)
    /// on the generation grid, so bilinear interpolation on the exact grid must reproduce it.
    fn linear_mesh(nt: usize, nk: usize, np: usize) -> Vec<f64> {
        let mut d = vec![0.0; nt * 3 * nk * np];
        for t in 0..nt {
            for c in 0..3 {
                for i in 0..nk {
                    for j in 0..np {
                        let ke = 1.0 + 9.0 * i as f64 / (nk - 1) as f64;
                        let th = (10.0 + 70.0 * j as f64 / (np - 1) as f64).to_radians();
                        d[((t * 3 + c) * nk + i) * np + j] =
                            t as f64 + (c as f64 + 1.0) * ke + 2.0 * th;
                    }
                }
            }
        }
        d
    }

    #[test]
    fn exact_grid_interpolates_linear_functions_exactly_and_rejects_outside() {
        let d = linear_mesh(4, 5, 7);
        let v = MeshView::new(&d, 4, 5, 7, (1.0, 10.0), (10.0, 80.0))
            .unwrap()
            .with_grid(MeshGrid::Exact);
        let mut out = Vec::new();
        for (ke, th_deg) in [(1.0, 10.0), (10.0, 80.0), (3.3, 47.1), (9.99, 10.01)] {
            let th = f64::to_radians(th_deg);
            v.trajectory(ke, th, &mut out).unwrap();
            assert_eq!(out.len(), 4);
            for (t, p) in out.iter().enumerate() {
                for (c, pc) in p.iter().enumerate() {
                    let want = t as f64 + (c as f64 + 1.0) * ke + 2.0 * th;
                    assert!(
                        (pc - want).abs() < 1e-9,
                        "{ke} {th_deg} {t} {c}: {pc} vs {want}"
                    );
                }
            }
        }
        assert!(v.trajectory(0.9, 0.5, &mut out).is_err());
        assert!(v.trajectory(5.0, f64::NAN, &mut out).is_err());
        assert!(v.trajectory(5.0, 81f64.to_radians(), &mut out).is_err());
        assert!(MeshView::new(&d[1..], 4, 5, 7, (1.0, 10.0), (10.0, 80.0)).is_none());
    }

    /// Spyral's grid: node i at min + i (max - min)/bins. A mesh that is linear in the node
    /// index is reproduced at those positions inside the cells; the last cell of each axis and
    /// the upper edge follow Spyral's formulas.
    #[test]
    fn spyral_grid_nodes_edges_and_refusals() {
        let (nt, nk, np) = (2, 5, 7);
        let mut d = vec![0.0; nt * 3 * nk * np];
        for t in 0..nt {
            for c in 0..3 {
                for i in 0..nk {
                    for j in 0..np {
                        d[((t * 3 + c) * nk + i) * np + j] =
                            100.0 * t as f64 + 10.0 * c as f64 + i as f64 + 0.1 * j as f64;
                    }
                }
            }
        }
        let (k0, k1, p0, p1) = (1.0, 11.0, 10.0, 80.0);
        let v = MeshView::new(&d, nt, nk, np, (k0, k1), (p0, p1)).unwrap();
        assert_eq!(v.grid(), MeshGrid::Spyral);
        let (wk, wp) = ((k1 - k0) / nk as f64, (p1 - p0) / np as f64);
        let value =
            |i: f64, j: f64, t: usize, c: usize| 100.0 * t as f64 + 10.0 * c as f64 + i + 0.1 * j;
        let mut out = Vec::new();
        // Inside: fractional node coordinates (i, j) at Spyral's positions.
        for (i, j) in [(0.0, 0.0), (1.5, 2.25), (3.9, 5.5), (2.0, 3.0)] {
            let ke = k0 + i * wk;
            let th = (p0 + j * wp).to_radians();
            v.trajectory(ke, th, &mut out).unwrap();
            for (t, p) in out.iter().enumerate() {
                for (c, &pc) in p.iter().enumerate() {
                    let want = value(i, j, t, c);
                    assert!(
                        (pc - want).abs() < 1e-9,
                        "({i}, {j}) {t} {c}: {pc} vs {want}"
                    );
                }
            }
        }
        // Last polar cell: the column of the last node, KE weights swapped.
        let th = (p0 + 6.5 * wp).to_radians();
        v.trajectory(k0 + 1.25 * wk, th, &mut out).unwrap();
        assert!(
            (out[0][0] - value(1.75, 6.0, 0, 0)).abs() < 1e-9,
            "{}",
            out[0][0]
        );
        // Last KE cell: polar weights swapped, sign flipped.
        v.trajectory(k0 + 4.5 * wk, (p0 + 2.25 * wp).to_radians(), &mut out)
            .unwrap();
        assert!(
            (out[1][2] + value(4.0, 2.75, 1, 2)).abs() < 1e-9,
            "{}",
            out[1][2]
        );
        // Both: the low corner.
        v.trajectory(k0 + 4.5 * wk, th, &mut out).unwrap();
        assert_eq!(out[1][1], value(4.0, 6.0, 1, 1));
        // Refused outside (NaN in Spyral), accepted at the edges.
        assert!(v.trajectory(k0 - 1e-12, 0.5, &mut out).is_err());
        assert!(v.trajectory(k1 + 1e-12, 0.5, &mut out).is_err());
        assert!(v
            .trajectory(5.0, p1.to_radians() + 1e-15, &mut out)
            .is_err());
        assert!(v.trajectory(5.0, f64::NAN, &mut out).is_err());
        assert!(v.trajectory(k0, p0.to_radians(), &mut out).is_ok());
        // At the polar maximum the floor gives bins: the read past the axis lands on the next
        // KE row's first node (flat position (t·3 + c)·plane + k·np + np), past the mesh's end
        // on 0.0.
        let s = v.stencil(k0 + 1.5 * wk, p1.to_radians()).unwrap();
        assert_eq!(s.nodes[0], np + np);
        v.trajectory(k0 + 4.5 * wk, p1.to_radians(), &mut out)
            .unwrap();
        assert!(out.iter().all(|p| p.iter().all(|x| x.is_finite())));
    }

    #[test]
    fn cached_interpolator_matches_the_view() {
        // Tracks that stop at different times (constant tails).
        let (nt, nk, np) = (50, 4, 5);
        let mut d = vec![0.0; nt * 3 * nk * np];
        for t in 0..nt {
            for c in 0..3 {
                for i in 0..nk {
                    for j in 0..np {
                        let stop = 10 + 7 * i + 3 * j;
                        let tt = t.min(stop) as f64;
                        d[((t * 3 + c) * nk + i) * np + j] =
                            (tt * (c as f64 + 1.0) * 0.01 + i as f64 * 0.1).sin() + j as f64 * 0.01;
                    }
                }
            }
        }
        for grid in [MeshGrid::Spyral, MeshGrid::Exact] {
            let v = MeshView::new(&d, nt, nk, np, (1.0, 4.0), (10.0, 50.0))
                .unwrap()
                .with_grid(grid);
            let mut cache = CachedInterpolator::new(v);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for k in 0..300 {
                // Every cell, the last cells and both upper edges included.
                let ke = 1.0 + 3.0 * ((k * 37) % 101) as f64 / 100.0;
                let th = (10.0 + 40.0 * ((k * 53) % 97) as f64 / 96.0).to_radians();
                v.trajectory_at([0.1, 0.2, 0.3], th, 0.7, ke, &mut a)
                    .unwrap();
                cache
                    .trajectory_at([0.1, 0.2, 0.3], th, 0.7, ke, &mut b)
                    .unwrap();
                assert!(b.len() <= a.len() && b.len() >= 11, "{grid:?}");
                assert_eq!(&a[..b.len()], &b[..], "{grid:?} {ke} {th}");
                assert!(a[b.len()..].iter().all(|p| p == b.last().unwrap()));
            }
            assert!(cache
                .trajectory_at([0.0; 3], 0.5, 0.0, 9.0, &mut b)
                .is_err());
        }
    }

    #[test]
    fn rotation_and_vertex() {
        let d = linear_mesh(2, 2, 2);
        let v = MeshView::new(&d, 2, 2, 2, (1.0, 10.0), (10.0, 80.0)).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        v.trajectory(2.0, 0.5, &mut a).unwrap();
        v.trajectory_at(
            [1.0, 2.0, 3.0],
            0.5,
            std::f64::consts::FRAC_PI_2,
            2.0,
            &mut b,
        )
        .unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert!((q[0] - (-p[1] + 1.0)).abs() < 1e-12);
            assert!((q[1] - (p[0] + 2.0)).abs() < 1e-12);
            assert!((q[2] - (p[2] + 3.0)).abs() < 1e-12);
        }
    }
}
