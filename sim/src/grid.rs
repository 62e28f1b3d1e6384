//! A simple square-grid pad plane ([`GridPadLookup`]): a stand-in for the real AT-TPC pad map in tests
//! and demos. Two zones of square pads (small pads inside a transition radius, big pads outside, as in
//! the AT-TPC's 6144 small and 4096 big pads), numbered row by row, inner zone first.

use super::PadLookup;

/// A two-zone square pad grid centred on the beam axis.
#[derive(Debug, Clone, PartialEq)]
pub struct GridPadLookup {
    inner_pitch: f64,
    outer_pitch: f64,
    transition_radius: f64,
    outer_radius: f64,
    inner_n: i64,
    outer_n: i64,
    inner_ids: Vec<u16>,
    outer_ids: Vec<u16>,
    centers: Vec<(f64, f64)>,
}

const NO_PAD: u16 = u16::MAX;

impl GridPadLookup {
    /// Square pads of side `inner_pitch` (mm) whose centres lie within `transition_radius`, and of side
    /// `outer_pitch` with centres between the transition and `outer_radius`. Returns None for
    /// non-positive sizes or more than 65535 pads.
    pub fn new(
        inner_pitch: f64,
        outer_pitch: f64,
        transition_radius: f64,
        outer_radius: f64,
    ) -> Option<Self> {
        let ok = |x: f64| x.is_finite() && x > 0.0;
        if !(ok(inner_pitch) && ok(outer_pitch) && ok(transition_radius) && ok(outer_radius))
            || transition_radius > outer_radius
        {
            return None;
        }
        // Half-widths in cells; bounded because the pad count is checked below.
        let inner_n = (transition_radius / inner_pitch).ceil() as i64 + 1;
        let outer_n = (outer_radius / outer_pitch).ceil() as i64 + 1;
        if inner_n > 2000 || outer_n > 2000 {
            return None;
        }
        let side_i = (2 * inner_n) as usize;
        let side_o = (2 * outer_n) as usize;
        let mut inner_ids = vec![NO_PAD; side_i * side_i];
        let mut outer_ids = vec![NO_PAD; side_o * side_o];
        let mut centers = Vec::new();
        for iy in 0..side_i {
            for ix in 0..side_i {
                let cx = (ix as f64 - inner_n as f64 + 0.5) * inner_pitch;
                let cy = (iy as f64 - inner_n as f64 + 0.5) * inner_pitch;
                if cx.hypot(cy) <= transition_radius {
                    inner_ids[iy * side_i + ix] =
                        u16::try_from(centers.len()).ok().filter(|&v| v != NO_PAD)?;
                    centers.push((cx, cy));
                }
            }
        }
        for iy in 0..side_o {
            for ix in 0..side_o {
                let cx = (ix as f64 - outer_n as f64 + 0.5) * outer_pitch;
                let cy = (iy as f64 - outer_n as f64 + 0.5) * outer_pitch;
                let r = cx.hypot(cy);
                if r > transition_radius && r <= outer_radius {
                    outer_ids[iy * side_o + ix] =
                        u16::try_from(centers.len()).ok().filter(|&v| v != NO_PAD)?;
                    centers.push((cx, cy));
                }
            }
        }
        Some(Self {
            inner_pitch,
            outer_pitch,
            transition_radius,
            outer_radius,
            inner_n,
            outer_n,
            inner_ids,
            outer_ids,
            centers,
        })
    }

    /// An AT-TPC-like plane: 3.5 mm pads to r = 155 mm, 6.1 mm pads to r = 270 mm (about 10,300 pads
    /// with the AT-TPC's small and big pad areas).
    pub fn attpc_like() -> Self {
        // The arguments are valid constants, so `new` cannot fail; fall back to a coarser grid anyway.
        Self::new(3.5, 6.1, 155.0, 270.0)
            .or_else(|| Self::new(10.0, 10.0, 155.0, 270.0))
            .unwrap_or_else(Self::empty)
    }

    fn empty() -> Self {
        Self {
            inner_pitch: 1.0,
            outer_pitch: 1.0,
            transition_radius: 0.0,
            outer_radius: 0.0,
            inner_n: 0,
            outer_n: 0,
            inner_ids: Vec::new(),
            outer_ids: Vec::new(),
            centers: Vec::new(),
        }
    }

    /// Centre of a pad (mm).
    pub fn pad_center(&self, pad: u16) -> Option<(f64, f64)> {
        self.centers.get(usize::from(pad)).copied()
    }

    /// Pad side length (mm).
    pub fn pad_size(&self, pad: u16) -> Option<f64> {
        let (x, y) = self.pad_center(pad)?;
        Some(if x.hypot(y) <= self.transition_radius {
            self.inner_pitch
        } else {
            self.outer_pitch
        })
    }

    fn cell(ids: &[u16], n: i64, pitch: f64, x: f64, y: f64) -> Option<u16> {
        // Shifted to non-negative cell coordinates, where truncation is the floor.
        let ix = x / pitch + n as f64;
        let iy = y / pitch + n as f64;
        let side = 2 * n;
        if !(ix >= 0.0 && iy >= 0.0 && ix < side as f64 && iy < side as f64) {
            return None;
        }
        // In range by the check above.
        let id = ids[iy as usize * side as usize + ix as usize];
        (id != NO_PAD).then_some(id)
    }
}

impl PadLookup for GridPadLookup {
    fn pad_at(&self, x: f64, y: f64) -> Option<u16> {
        if !(x.is_finite() && y.is_finite()) {
            return None;
        }
        Self::cell(&self.inner_ids, self.inner_n, self.inner_pitch, x, y)
            .or_else(|| Self::cell(&self.outer_ids, self.outer_n, self.outer_pitch, x, y))
    }

    fn pad_count(&self) -> usize {
        self.centers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attpc_like_grid() {
        let g = GridPadLookup::attpc_like();
        assert!(
            (10_000..10_600).contains(&g.pad_count()),
            "{}",
            g.pad_count()
        );
        let p = g.pad_at(1.0, 1.0).unwrap();
        let (cx, cy) = g.pad_center(p).unwrap();
        assert!((cx - 1.75).abs() < 1e-9 && (cy - 1.75).abs() < 1e-9);
        assert!(g.pad_at(0.0, 300.0).is_none());
        let q = g.pad_at(200.0, 3.0).unwrap();
        assert_eq!(g.pad_size(q), Some(6.1));
    }
}
