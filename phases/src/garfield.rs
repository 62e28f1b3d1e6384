//! The optional Garfield electron-drift correction of the Pointcloud phase (spyral-spec 3.1.6):
//! generating the `(276, 1001, 3)` correction grid from a Garfield simulation text file, writing
//! and reading it as `.npy`, and applying it to point-cloud rows.
//!
//! # Generation ([`generate`])
//! The Garfield file is whitespace-separated text with 6 columns per row (`#` starts a comment,
//! blank lines are skipped, like `np.loadtxt`). As in Spyral, column 2 (cm, times 10 to mm) is
//! used as "z", column 3 (times 10) as the final rho, column 4 (times 10) as the transverse
//! displacement and column 5 as the drift time in ns. Rows come in [`CHUNK_ROWS`] = 55 chunks
//! (initial rho `linspace(-270, 270, 55)`), one chunk per z step `linspace(30, 1000, 98)`; the
//! file must hold exactly 98 chunks. In each chunk the time is made relative to row 27 (the
//! axis) and converted to mm with `detector_length / (window_tb - micromegas_tb) *
//! get_frequency * 0.001`. A bilinear interpolator over (z, initial rho) of `[z, transverse,
//! time]` and the contour lines of the final rho over the (z, initial rho) grid (marching
//! squares with linear interpolation along cell edges, saddles resolved by the cell-centre
//! average, as contourpy does) give, for every level `r` in `0..=275` mm and every
//! `z` in `0..=1000` mm with `zg = (1 - z/1000) * 970 + 30`:
//! - `grid[r, z, 0]` = the initial rho on the contour at `zg`, minus `r`;
//! - `grid[r, z, 1..3]` = the transverse and time components of the interpolator.
//!
//! Where there is no contour line at `zg` the three values are 0.
//!
//! Readings of the spec chosen here (the spec leaves them open):
//! - the transverse and time components are evaluated at the *initial* rho found on the contour
//!   (where the electron that ends at rho `r` started), the physically meaningful point; the
//!   spec's `interp(zg, rho_cor)` could also be read as the correction itself (initial − r);
//! - when several contour segments cross `zg` (a non-monotonic drift map), the one whose
//!   initial rho is closest to `r` (the smallest correction) is used, independent of the order
//!   in which the lines are traced;
//! - a contour segment that spans `zg` includes its end points (segments share end points, so
//!   every crossing is found once even when `zg` falls on a grid line).
//!
//! # Application ([`Corrector::correct_point`])
//! The grid is interpolated bilinearly at `(rho = |xy|, z)` (rho 0..275 with 276 bins, z
//! 0..1000 with 1001 bins; outside, the point becomes NaN and the phase drops it), giving
//! `(rho_cor, trans_cor, z_cor)`; then `r' = sqrt((rho + rho_cor)^2 + trans_cor^2)`,
//! `phi' = phi + atan2(trans_cor, rho + rho_cor)`, `x', y' = r' cos phi', r' sin phi'` and,
//! literally as the spec states, `z' = z - clamp(z_cor, 0, 1000)`. Other columns are unchanged.

use crate::solver::npy;
use ndarray::{Array2, Array3};
use spyral_data::attpc::detector::DetectorParameters;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Rows per Garfield chunk (initial rho steps).
pub const CHUNK_ROWS: usize = 55;
/// Index of the chunk row on the axis (initial rho 0), the time reference.
pub const CHUNK_MIDPOINT: usize = 27;
/// Number of chunks (z steps) in a Garfield file.
pub const Z_STEPS: usize = 98;
/// Columns of a Garfield row.
pub const GARFIELD_COLUMNS: usize = 6;
/// Garfield z range, mm.
pub const GARFIELD_Z: (f64, f64) = (30.0, 1000.0);
/// Garfield initial rho range, mm.
pub const GARFIELD_RHO: (f64, f64) = (-270.0, 270.0);
/// Rho bins of the correction grid (0..=275 mm).
pub const GRID_RHO_BINS: usize = 276;
/// z bins of the correction grid (0..=1000 mm).
pub const GRID_Z_BINS: usize = 1001;
/// Shape of the correction grid.
pub const GRID_SHAPE: [usize; 3] = [GRID_RHO_BINS, GRID_Z_BINS, 3];

/// Errors of the Garfield correction.
#[derive(Debug, thiserror::Error)]
pub enum GarfieldError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of the Garfield file is not 6 numbers.
    #[error("{}, line {line}: {problem}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The Garfield table does not have the expected number of rows.
    #[error("the Garfield table has {rows} rows; expected {expected} ({Z_STEPS} z steps of {CHUNK_ROWS} rho steps)")]
    RowCount {
        /// Rows found.
        rows: usize,
        /// Rows expected.
        expected: usize,
    },
    /// The correction grid file is not a float64 `(276, 1001, 3)` `.npy`.
    #[error("{}: not a correction grid: {problem}", path.display())]
    BadGrid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Interpolator axes or values do not fit together.
    #[error("bilinear interpolator: {0}")]
    Interpolator(String),
}

/// A bilinear interpolator of 3-vectors on a regular `linspace` grid; `None` outside it.
#[derive(Debug, Clone)]
pub struct Bilinear {
    x_min: f64,
    x_max: f64,
    x_step: f64,
    y_min: f64,
    y_max: f64,
    y_step: f64,
    values: Array3<f64>,
}

impl Bilinear {
    /// An interpolator over `x = linspace(x_min, x_max, nx)`, `y = linspace(y_min, y_max, ny)`
    /// of `values` with shape `(nx, ny, 3)`.
    pub fn new(
        (x_min, x_max): (f64, f64),
        (y_min, y_max): (f64, f64),
        values: Array3<f64>,
    ) -> Result<Self, GarfieldError> {
        let (nx, ny, k) = values.dim();
        if nx < 2 || ny < 2 || k != 3 {
            return Err(GarfieldError::Interpolator(format!(
                "values of shape ({nx}, {ny}, {k}); need at least (2, 2, 3)"
            )));
        }
        if !(x_max > x_min && y_max > y_min && x_min.is_finite() && y_min.is_finite()) {
            return Err(GarfieldError::Interpolator(
                "each axis needs finite bounds with min < max".into(),
            ));
        }
        Ok(Bilinear {
            x_min,
            x_max,
            x_step: (x_max - x_min) / (nx - 1) as f64,
            y_min,
            y_max,
            y_step: (y_max - y_min) / (ny - 1) as f64,
            values,
        })
    }

    /// The interpolated vector at `(x, y)`; `None` outside the grid or for NaN coordinates.
    pub fn eval(&self, x: f64, y: f64) -> Option<[f64; 3]> {
        if !(x >= self.x_min && x <= self.x_max && y >= self.y_min && y <= self.y_max) {
            return None;
        }
        let (nx, ny, _) = self.values.dim();
        let locate = |v: f64, min: f64, step: f64, n: usize| {
            let f = (v - min) / step;
            // f >= 0 here; the last cell also takes the upper edge.
            let i = (f.floor() as usize).min(n - 2);
            (i, f - i as f64)
        };
        let (i, tx) = locate(x, self.x_min, self.x_step, nx);
        let (j, ty) = locate(y, self.y_min, self.y_step, ny);
        let v = &self.values;
        let mut out = [0.0; 3];
        for (k, o) in out.iter_mut().enumerate() {
            *o = v[[i, j, k]] * (1.0 - tx) * (1.0 - ty)
                + v[[i + 1, j, k]] * tx * (1.0 - ty)
                + v[[i, j + 1, k]] * (1.0 - tx) * ty
                + v[[i + 1, j + 1, k]] * tx * ty;
        }
        Some(out)
    }
}

/// `linspace(min, max, n)` value `i`.
fn linspace_at((min, max): (f64, f64), n: usize, i: usize) -> f64 {
    min + (max - min) * i as f64 / (n - 1) as f64
}

/// Reads a Garfield text file: rows of [`GARFIELD_COLUMNS`] numbers.
pub fn read_table(path: &Path) -> Result<Vec<[f64; GARFIELD_COLUMNS]>, GarfieldError> {
    let text = std::fs::read_to_string(path).map_err(|source| GarfieldError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parse_err = |problem: String| GarfieldError::Parse {
            path: path.to_path_buf(),
            line: n + 1,
            problem,
        };
        let mut row = [0.0; GARFIELD_COLUMNS];
        let mut count = 0;
        for field in line.split_whitespace() {
            if count < GARFIELD_COLUMNS {
                row[count] = field
                    .parse::<f64>()
                    .map_err(|_| parse_err(format!("{field:?} is not a number")))?;
            }
            count += 1;
        }
        if count != GARFIELD_COLUMNS {
            return Err(parse_err(format!(
                "{count} columns; expected {GARFIELD_COLUMNS}"
            )));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Generates the correction grid from a Garfield text file (see the module documentation).
pub fn generate(
    garfield_txt: &Path,
    detector: &DetectorParameters,
) -> Result<Array3<f64>, GarfieldError> {
    generate_from_rows(&read_table(garfield_txt)?, detector)
}

/// Generates the correction grid from the rows of a Garfield table.
pub fn generate_from_rows(
    rows: &[[f64; GARFIELD_COLUMNS]],
    detector: &DetectorParameters,
) -> Result<Array3<f64>, GarfieldError> {
    let expected = Z_STEPS * CHUNK_ROWS;
    if rows.len() != expected {
        return Err(GarfieldError::RowCount {
            rows: rows.len(),
            expected,
        });
    }
    let time_to_mm = detector.detector_length
        / (detector.window_time_bucket - detector.micromegas_time_bucket)
        * detector.get_frequency
        * 0.001;
    let mut rho_final = Array2::<f64>::zeros((Z_STEPS, CHUNK_ROWS));
    let mut misc = Array3::<f64>::zeros((Z_STEPS, CHUNK_ROWS, 3));
    for (c, chunk) in rows.chunks_exact(CHUNK_ROWS).enumerate() {
        let t0 = chunk[CHUNK_MIDPOINT][5];
        for (j, row) in chunk.iter().enumerate() {
            misc[[c, j, 0]] = row[2] * 10.0;
            rho_final[[c, j]] = row[3] * 10.0;
            misc[[c, j, 1]] = row[4] * 10.0;
            misc[[c, j, 2]] = (row[5] - t0) * time_to_mm;
        }
    }
    let interp = Bilinear::new(GARFIELD_Z, GARFIELD_RHO, misc)?;

    let zgs: Vec<f64> = (0..GRID_Z_BINS)
        .map(|zi| {
            let z = linspace_at((0.0, 1000.0), GRID_Z_BINS, zi);
            (1.0 - z / 1000.0) * 970.0 + 30.0
        })
        .collect();
    let mut grid = Array3::<f64>::zeros((GRID_RHO_BINS, GRID_Z_BINS, 3));
    let mut segments = Vec::new();
    for ri in 0..GRID_RHO_BINS {
        let level = linspace_at((0.0, 275.0), GRID_RHO_BINS, ri);
        contour_segments(&rho_final, level, &mut segments);
        for (zi, &zg) in zgs.iter().enumerate() {
            let Some(rho_initial) = contour_rho_at(&segments, zg, level) else {
                continue;
            };
            grid[[ri, zi, 0]] = rho_initial - level;
            if let Some(v) = interp.eval(zg, rho_initial) {
                grid[[ri, zi, 1]] = v[1];
                grid[[ri, zi, 2]] = v[2];
            }
        }
    }
    Ok(grid)
}

/// A contour segment between two points `(z, initial rho)`.
type Segment = [(f64, f64); 2];

/// Marching squares over `field` (shape `(Z_STEPS, CHUNK_ROWS)`, axes z and initial rho): the
/// segments of the contour at `level`, replacing `out`. Cells with a NaN corner are skipped.
fn contour_segments(field: &Array2<f64>, level: f64, out: &mut Vec<Segment>) {
    out.clear();
    let (nz, nr) = field.dim();
    let z_at = |i: usize| linspace_at(GARFIELD_Z, nz, i);
    let r_at = |j: usize| linspace_at(GARFIELD_RHO, nr, j);
    for i in 0..nz - 1 {
        for j in 0..nr - 1 {
            // Corners counter-clockwise: (i, j), (i+1, j), (i+1, j+1), (i, j+1).
            let corners = [
                ((z_at(i), r_at(j)), field[[i, j]]),
                ((z_at(i + 1), r_at(j)), field[[i + 1, j]]),
                ((z_at(i + 1), r_at(j + 1)), field[[i + 1, j + 1]]),
                ((z_at(i), r_at(j + 1)), field[[i, j + 1]]),
            ];
            if corners.iter().any(|c| c.1.is_nan()) {
                continue;
            }
            // Edge k joins corner k and corner k+1: bottom, right, top, left.
            let mut cross: [Option<(f64, f64)>; 4] = [None; 4];
            for (k, c) in cross.iter_mut().enumerate() {
                let (pa, a) = corners[k];
                let (pb, b) = corners[(k + 1) % 4];
                if (a > level) != (b > level) {
                    let t = (level - a) / (b - a);
                    *c = Some((pa.0 + t * (pb.0 - pa.0), pa.1 + t * (pb.1 - pa.1)));
                }
            }
            let found: Vec<(f64, f64)> = cross.iter().flatten().copied().collect();
            match found.len() {
                2 => out.push([found[0], found[1]]),
                4 => {
                    let centre = corners.iter().map(|c| c.1).sum::<f64>() / 4.0;
                    let e = |k: usize| cross[k].unwrap_or_default();
                    if (centre > level) == (corners[0].1 > level) {
                        // Corners 0 and 2 are joined through the centre: cut off 1 and 3.
                        out.push([e(0), e(1)]);
                        out.push([e(2), e(3)]);
                    } else {
                        // Cut off corners 0 and 2.
                        out.push([e(3), e(0)]);
                        out.push([e(1), e(2)]);
                    }
                }
                _ => {}
            }
        }
    }
}

/// The initial rho of the contour at `zg`: over the segments spanning `zg`, the value closest
/// to `level`; `None` when no segment spans it.
fn contour_rho_at(segments: &[Segment], zg: f64, level: f64) -> Option<f64> {
    let mut best: Option<f64> = None;
    for &[(za, ra), (zb, rb)] in segments {
        let (lo, hi) = if za <= zb { (za, zb) } else { (zb, za) };
        if !(zg >= lo && zg <= hi) || hi == lo {
            continue;
        }
        let rho = ra + (zg - za) / (zb - za) * (rb - ra);
        if best.is_none_or(|b| (rho - level).abs() < (b - level).abs()) {
            best = Some(rho);
        }
    }
    best
}

/// Writes `grid` as a float64 `.npy` file at `path` (the caller chooses a temporary name).
pub fn write_grid(grid: &Array3<f64>, path: &Path) -> Result<(), GarfieldError> {
    let io = |source| GarfieldError::Io {
        path: path.to_path_buf(),
        source,
    };
    let shape: Vec<u64> = grid.shape().iter().map(|&d| d as u64).collect();
    let mut bytes = npy::f64_header(&shape);
    bytes.reserve(grid.len() * 8);
    // `iter` walks in logical (C) order whatever the memory layout.
    for v in grid.iter() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let mut f = std::fs::File::create(path).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Reads a correction grid written by [`write_grid`] (or numpy), checking dtype and shape.
pub fn read_grid(path: &Path) -> Result<Array3<f64>, GarfieldError> {
    let io = |source| GarfieldError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |problem: String| GarfieldError::BadGrid {
        path: path.to_path_buf(),
        problem,
    };
    let mut f = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    let header = npy::read_header(&mut f).map_err(|e| bad(e.to_string()))?;
    if header.descr != "<f8" || header.fortran_order {
        return Err(bad(format!(
            "dtype {} (fortran order {}); expected C-ordered <f8",
            header.descr, header.fortran_order
        )));
    }
    let want: Vec<u64> = GRID_SHAPE.iter().map(|&d| d as u64).collect();
    if header.shape != want {
        return Err(bad(format!(
            "shape {:?}; expected {:?}",
            header.shape, GRID_SHAPE
        )));
    }
    let n = GRID_SHAPE.iter().product::<usize>();
    let mut bytes = vec![0u8; n * 8];
    f.read_exact(&mut bytes)
        .map_err(|e| bad(format!("data too short: {e}")))?;
    let data: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            f64::from_le_bytes(b)
        })
        .collect();
    Array3::from_shape_vec(GRID_SHAPE, data).map_err(|e| bad(e.to_string()))
}

/// The asset path of a Garfield file: `<asset_dir>/<stem of garfield_file>.npy`.
pub fn asset_path(asset_dir: &Path, garfield_file: &Path) -> PathBuf {
    let stem = garfield_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "garfield".to_string());
    asset_dir.join(format!("{stem}.npy"))
}

/// Applies a correction grid to points.
#[derive(Debug, Clone)]
pub struct Corrector {
    interp: Bilinear,
}

impl Corrector {
    /// A corrector over `grid` (shape `(276, 1001, 3)`: rho 0..275, z 0..1000).
    pub fn new(grid: Array3<f64>) -> Result<Self, GarfieldError> {
        if grid.shape() != GRID_SHAPE {
            return Err(GarfieldError::Interpolator(format!(
                "correction grid of shape {:?}; expected {:?}",
                grid.shape(),
                GRID_SHAPE
            )));
        }
        Ok(Corrector {
            interp: Bilinear::new((0.0, 275.0), (0.0, 1000.0), grid)?,
        })
    }

    /// Loads the corrector from a grid `.npy` file.
    pub fn load(path: &Path) -> Result<Self, GarfieldError> {
        Corrector::new(read_grid(path)?)
    }

    /// `(rho_cor, trans_cor, z_cor)` at `(rho, z)`; `None` outside the grid.
    pub fn correction(&self, rho: f64, z: f64) -> Option<[f64; 3]> {
        self.interp.eval(rho, z)
    }

    /// Corrects a point-cloud row `[x, y, z, ...]` in place; a point outside the grid (or a row
    /// shorter than 3) gets NaN coordinates, so the phase drops it.
    pub fn correct_point(&self, row: &mut [f64]) {
        if row.len() < 3 {
            row.iter_mut().for_each(|v| *v = f64::NAN);
            return;
        }
        let (x, y, z) = (row[0], row[1], row[2]);
        let rho = x.hypot(y);
        let Some([rho_cor, trans_cor, z_cor]) = self.correction(rho, z) else {
            row[..3].iter_mut().for_each(|v| *v = f64::NAN);
            return;
        };
        let radial = rho + rho_cor;
        let r = radial.hypot(trans_cor);
        let phi = y.atan2(x) + trans_cor.atan2(radial);
        row[0] = r * phi.cos();
        row[1] = r * phi.sin();
        row[2] = z - z_cor.clamp(0.0, 1000.0);
    }
}
