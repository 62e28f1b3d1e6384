//! Bilinear interpolation of the trajectory mesh (spyral-spec §3.4.2) over a borrowed slice (a
//! shared segment in the workers, a `Vec` in tests): the track of any (KE, polar) inside the
//! grid, then rotated by the azimuth and moved to the vertex.
//!
//! Grid: the nodes are where the mesh was generated, `linspace(min, max, bins)`, so the cell
//! width is `(max − min)/(bins − 1)`. Spyral's interpolator uses `(max − min)/bins`, which puts
//! its nodes at positions the mesh was not computed for (an error growing to almost one cell at
//! the top of each axis); we use the generation grid so that a node's interpolated track is the
//! node's track. Points outside the grid are rejected (Spyral returns NaN); the upper edge
//! itself is inside (Spyral reads past its array there).
//!
//! For fixed (KE, polar) the four bilinear weights are the same for every time sample and
//! coordinate, so one trajectory costs `4 · 3 · n_time_steps` reads of the mesh.

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
}

/// Tolerance (in cells) for points a rounding error outside the grid.
const EDGE_TOLERANCE: f64 = 1e-9;

impl<'a> MeshView<'a> {
    /// A view of `data` with shape `(n_t, 3, n_ke, n_polar)`, KE axis in MeV and polar axis in
    /// degrees. `None` if the length does not match or an axis has fewer than 2 nodes.
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
            polar_min: polar_range_deg.0.to_radians(),
            polar_max: polar_range_deg.1.to_radians(),
        })
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
    fn locate(v: f64, min: f64, max: f64, n: usize) -> Option<(usize, f64)> {
        let cells = (n - 1) as f64;
        let x = (v - min) / (max - min) * cells;
        if !(x >= -EDGE_TOLERANCE && x <= cells + EDGE_TOLERANCE) {
            return None;
        }
        let x = x.clamp(0.0, cells);
        let i = (x.floor() as usize).min(n - 2);
        Some((i, x - i as f64))
    }

    /// The mesh-frame trajectory (origin, azimuth 0) of `(ke, polar)` into `out` (resized to
    /// `n_t`).
    pub fn trajectory(
        &self,
        ke: f64,
        polar_rad: f64,
        out: &mut Vec<[f64; 3]>,
    ) -> Result<(), InterpError> {
        let err = InterpError::OutOfRange {
            ke,
            polar_deg: polar_rad.to_degrees(),
        };
        let (i, fk) = Self::locate(ke, self.ke_min, self.ke_max, self.n_ke).ok_or(err)?;
        let (j, fp) =
            Self::locate(polar_rad, self.polar_min, self.polar_max, self.n_polar).ok_or(err)?;
        let w00 = (1.0 - fk) * (1.0 - fp);
        let w01 = (1.0 - fk) * fp;
        let w10 = fk * (1.0 - fp);
        let w11 = fk * fp;
        let plane = self.n_ke * self.n_polar;
        let o00 = i * self.n_polar + j;
        let o10 = o00 + self.n_polar;
        out.clear();
        out.reserve(self.n_t);
        for slab in self.data.chunks_exact(3 * plane) {
            let mut p = [0.0; 3];
            for (c, v) in p.iter_mut().enumerate() {
                let base = &slab[c * plane..(c + 1) * plane];
                let a = &base[o00..o00 + 2];
                let b = &base[o10..o10 + 2];
                *v = w00 * a[0] + w01 * a[1] + w10 * b[0] + w11 * b[1];
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
    keys: Vec<(usize, usize)>,
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

    fn slot(&mut self, i: usize, j: usize) -> usize {
        if let Some(k) = self.keys.iter().position(|&key| key == (i, j)) {
            return k;
        }
        let v = &self.view;
        let plane = v.n_ke * v.n_polar;
        let off = i * v.n_polar + j;
        let k = if self.keys.len() < CACHE_NODES {
            self.keys.push((i, j));
            self.nodes.push(Vec::with_capacity(v.n_t));
            self.last.push(0);
            self.keys.len() - 1
        } else {
            let k = self.next_slot;
            self.next_slot = (self.next_slot + 1) % CACHE_NODES;
            self.keys[k] = (i, j);
            k
        };
        let node = &mut self.nodes[k];
        node.clear();
        for slab in v.data.chunks_exact(3 * plane) {
            node.push([slab[off], slab[plane + off], slab[2 * plane + off]]);
        }
        let end = node.last().copied().unwrap_or([0.0; 3]);
        self.last[k] = node.iter().rposition(|p| *p != end).map_or(0, |x| x + 1);
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
        let v = self.view;
        let err = InterpError::OutOfRange {
            ke,
            polar_deg: polar_rad.to_degrees(),
        };
        let (i, fk) = MeshView::locate(ke, v.ke_min, v.ke_max, v.n_ke).ok_or(err)?;
        let (j, fp) =
            MeshView::locate(polar_rad, v.polar_min, v.polar_max, v.n_polar).ok_or(err)?;
        let w00 = (1.0 - fk) * (1.0 - fp);
        let w01 = (1.0 - fk) * fp;
        let w10 = fk * (1.0 - fp);
        let w11 = fk * fp;
        let s = [
            self.slot(i, j),
            self.slot(i, j + 1),
            self.slot(i + 1, j),
            self.slot(i + 1, j + 1),
        ];
        let len = (s.iter().map(|&k| self.last[k]).max().unwrap_or(0) + 1).min(v.n_t);
        let (a, b, c, d) = (
            &self.nodes[s[0]][..len],
            &self.nodes[s[1]][..len],
            &self.nodes[s[2]][..len],
            &self.nodes[s[3]][..len],
        );
        let (sn, cs) = azimuthal_rad.sin_cos();
        out.clear();
        out.extend(
            a.iter()
                .zip(b)
                .zip(c)
                .zip(d)
                .map(|(((p00, p01), p10), p11)| {
                    let mut p = [0.0; 3];
                    for (k, x) in p.iter_mut().enumerate() {
                        *x = w00 * p00[k] + w01 * p01[k] + w10 * p10[k] + w11 * p11[k];
                    }
                    [
                        cs * p[0] - sn * p[1] + vertex[0],
                        sn * p[0] + cs * p[1] + vertex[1],
                        p[2] + vertex[2],
                    ]
                }),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mesh whose value at (t, c, i, j) is a known linear function of the node's (KE, polar),
    /// so bilinear interpolation must reproduce it exactly.
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
    fn interpolates_linear_functions_exactly_and_rejects_outside() {
        let d = linear_mesh(4, 5, 7);
        let v = MeshView::new(&d, 4, 5, 7, (1.0, 10.0), (10.0, 80.0)).unwrap();
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
        let v = MeshView::new(&d, nt, nk, np, (1.0, 4.0), (10.0, 50.0)).unwrap();
        let mut cache = CachedInterpolator::new(v);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for k in 0..200 {
            let ke = 1.0 + 3.0 * ((k * 37) % 101) as f64 / 100.0;
            let th = (10.0 + 40.0 * ((k * 53) % 97) as f64 / 96.0).to_radians();
            v.trajectory_at([0.1, 0.2, 0.3], th, 0.7, ke, &mut a)
                .unwrap();
            cache
                .trajectory_at([0.1, 0.2, 0.3], th, 0.7, ke, &mut b)
                .unwrap();
            assert!(b.len() <= a.len() && b.len() >= 11);
            assert_eq!(&a[..b.len()], &b[..]);
            assert!(a[b.len()..].iter().all(|p| p == b.last().unwrap()));
        }
        assert!(cache
            .trajectory_at([0.0; 3], 0.5, 0.0, 9.0, &mut b)
            .is_err());
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
