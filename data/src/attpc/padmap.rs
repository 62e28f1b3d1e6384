//! The AT-TPC pad plane: per-pad centre (x, y in mm), time offset (GET time buckets) and scale
//! (0.5 small, 1.0 big), built in or loaded from Spyral-style CSV files; the beam-pad list; a fast
//! "which pad is at (x, y)" lookup; and a hardware (cobo, asad, aget, channel) numbering of the
//! pads.
//!
//! # The built-in plane
//! The default plane is the real AT-TPC pad plane exactly as Python Spyral 1.1.2 uses it by
//! default: the centres, time corrections and scales of its 10240 pads, embedded from
//! `data/data/padplane.csv` (derived from the attpc-spyral 1.1.2 package's data files by
//! `scripts/parity/derive_padplane.py`; the file header names the source). Pad gains are 1.0, as
//! in Spyral. Beam pads are Spyral's [`LEGACY_BEAM_PADS`] (the 122 pads whose centres lie within
//! 20 mm of the axis).
//!
//! # CSV files
//! One header line, then one row per pad: row `i` (0-based, after the header) is pad `i`.
//! Line endings may be LF, CRLF or CR only (two of Spyral's files use CR). The geometry file has
//! `x,y` columns, the time and scale files one column; extra columns are ignored. Errors name the
//! file and the line.
//!
//! # Point lookup
//! The AT-TPC's pads are equilateral triangles on a lattice with a vertex on the beam axis: big
//! pads (scale 1.0) of side about 9.82 mm and, inside about 150 mm, small pads (scale 0.5) of half
//! that side, four to a big lattice cell. Spyral's pad "centre" is the middle of the triangle's
//! axis, half way up (not its centroid). When a map's pads fit that pattern (the built-in plane
//! and a CSV copy of it do), [`PadMap::pad_at`] finds the triangle containing the point exactly,
//! from the lattice; otherwise it returns the pad with the nearest centre if that centre is within
//! [`PadMap::snap_distance`] (1.25 x the largest centre-to-nearest-centre spacing). Both are O(1)
//! (lattice arithmetic, or a bucket grid of centres).

use super::detector::PadParameters;
use std::fmt;
use std::path::{Path, PathBuf};

/// Pads in the AT-TPC (and in the built-in plane).
pub const NUM_PADS: usize = 10240;
/// Small pads (scale 0.5) of the AT-TPC.
pub const NUM_SMALL_PADS: usize = 6144;
/// Big pads (scale 1.0) of the AT-TPC.
pub const NUM_BIG_PADS: usize = 4096;
/// Scale of a small pad.
pub const SMALL_PAD_SCALE: f64 = 0.5;
/// Scale of a big pad.
pub const BIG_PAD_SCALE: f64 = 1.0;
/// The largest pad id a map may have (the GET matrix stores pad ids as int16).
pub const MAX_PAD_ID: usize = i16::MAX as usize;

const fn legacy_beam_pads() -> [u16; 122] {
    // 134-164, 166, 435-457, 459, 733, 735, 738, 740, 741, and the same shifted by 5120.
    let mut out = [0u16; 122];
    let mut n = 0;
    let mut half = 0;
    while half < 2 {
        let shift = half * 5120;
        let mut p = 134;
        while p <= 164 {
            out[n] = p + shift;
            n += 1;
            p += 1;
        }
        out[n] = 166 + shift;
        n += 1;
        p = 435;
        while p <= 457 {
            out[n] = p + shift;
            n += 1;
            p += 1;
        }
        out[n] = 459 + shift;
        n += 1;
        let tail = [733, 735, 738, 740, 741];
        let mut t = 0;
        while t < tail.len() {
            out[n] = tail[t] + shift;
            n += 1;
            t += 1;
        }
        half += 1;
    }
    out
}

/// Spyral's `LEGACY_BEAM_PADS`: the 122 pads always excluded from point clouds when the pad
/// geometry comes from a CSV file (Spyral's own plane).
pub const LEGACY_BEAM_PADS: [u16; 122] = legacy_beam_pads();

/// Whether `pad` is in [`LEGACY_BEAM_PADS`].
pub fn is_legacy_beam_pad(pad: i64) -> bool {
    u16::try_from(pad).is_ok_and(|p| LEGACY_BEAM_PADS.binary_search(&p).is_ok())
}

/// FPN channels of an AGET, which carry no pad.
pub const FPN_CHANNELS: [u8; 4] = [11, 22, 45, 56];
/// CoBos in the GET system.
pub const NUM_COBOS: u8 = 11;
/// AsAds per CoBo.
pub const ASADS_PER_COBO: u8 = 4;
/// AGETs per AsAd.
pub const AGETS_PER_ASAD: u8 = 4;
/// Channels per AGET (including the FPN channels).
pub const CHANNELS_PER_AGET: u8 = 68;
const PADS_PER_AGET: usize = CHANNELS_PER_AGET as usize - FPN_CHANNELS.len();

/// The electronics address of a pad: columns 0..4 of a GET trace matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HardwareId {
    /// CoBo 0..10.
    pub cobo: u8,
    /// AsAd 0..3.
    pub asad: u8,
    /// AGET 0..3.
    pub aget: u8,
    /// Channel 0..67, never an FPN channel.
    pub channel: u8,
}

/// The hardware address of `pad` in this project's numbering: pads fill the non-FPN channels
/// of AGET 0 of AsAd 0 of CoBo 0, then AGET 1, ... (64 pads per AGET, so 10240 pads use CoBos
/// 0..9). `None` beyond the 11 x 4 x 4 x 64 available channels.
pub fn hardware_id_for_pad(pad: u16) -> Option<HardwareId> {
    let [cobo, asad, aget, channel] = hardware_address(pad);
    if cobo >= usize::from(NUM_COBOS) {
        return None;
    }
    Some(HardwareId {
        cobo: cobo as u8,
        asad: asad as u8,
        aget: aget as u8,
        channel: channel as u8,
    })
}

/// `[cobo, asad, aget, channel]` of `pad` in this project's numbering (see
/// [`hardware_id_for_pad`]), without the limit on the number of CoBos.
pub fn hardware_address(pad: u16) -> [usize; 4] {
    let pad = usize::from(pad);
    let aget_index = pad / PADS_PER_AGET;
    let slot = pad % PADS_PER_AGET;
    let agets_per_cobo = usize::from(ASADS_PER_COBO) * usize::from(AGETS_PER_ASAD);
    let asad = (aget_index / usize::from(AGETS_PER_ASAD)) % usize::from(ASADS_PER_COBO);
    let aget = aget_index % usize::from(AGETS_PER_ASAD);
    // The slot-th channel that is not an FPN channel.
    let mut channel = slot;
    for fpn in FPN_CHANNELS {
        if channel >= usize::from(fpn) {
            channel += 1;
        }
    }
    [aget_index / agets_per_cobo, asad, aget, channel]
}

/// The pad at a hardware address (inverse of [`hardware_id_for_pad`]); `None` for FPN or
/// out-of-range channels.
pub fn pad_for_hardware_id(hw: HardwareId) -> Option<u16> {
    if hw.cobo >= NUM_COBOS
        || hw.asad >= ASADS_PER_COBO
        || hw.aget >= AGETS_PER_ASAD
        || hw.channel >= CHANNELS_PER_AGET
        || FPN_CHANNELS.contains(&hw.channel)
    {
        return None;
    }
    let slot = usize::from(hw.channel) - FPN_CHANNELS.iter().filter(|&&f| f < hw.channel).count();
    let aget_index = (usize::from(hw.cobo) * usize::from(ASADS_PER_COBO) + usize::from(hw.asad))
        * usize::from(AGETS_PER_ASAD)
        + usize::from(hw.aget);
    u16::try_from(aget_index * PADS_PER_AGET + slot).ok()
}

/// One pad's calibration data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PadInfo {
    /// Centre x, mm.
    pub x: f64,
    /// Centre y, mm.
    pub y: f64,
    /// Time offset added to peak centroids, in GET time buckets.
    pub time_offset: f64,
    /// 0.5 for a small pad, 1.0 for a big one.
    pub scale: f64,
}

/// Where a map's pad geometry came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PadGeometry {
    /// The built-in plane (the AT-TPC's, as Spyral uses it by default).
    BuiltIn,
    /// A CSV file.
    Csv(PathBuf),
}

/// Errors loading a pad map.
#[derive(Debug, thiserror::Error)]
pub enum PadMapError {
    /// The file could not be read.
    #[error("pad map {}: cannot read: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A line could not be parsed.
    #[error("pad map {}: line {line}: {problem}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number (the header is line 1).
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The file has no data rows.
    #[error("pad map {}: no data rows after the header line", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// More rows than pad ids can address.
    #[error(
        "pad map {}: line {line}: pad id {pad} is out of range (pad ids are stored as int16 in \
         GET matrices, so the largest is {MAX_PAD_ID}; an AT-TPC map has {NUM_PADS} rows)",
        .path.display()
    )]
    PadOutOfRange {
        /// The file.
        path: PathBuf,
        /// The line of the first pad out of range.
        line: usize,
        /// Its pad id (row index).
        pad: usize,
    },
    /// Two sources describe different numbers of pads.
    #[error(
        "pad map {}: {count} pads, but {other} has {other_count}; the pad files must describe \
         the same pads, one row per pad", .path.display()
    )]
    CountMismatch {
        /// The file.
        path: PathBuf,
        /// Its number of pads.
        count: usize,
        /// The other source (a file, or the built-in plane).
        other: String,
        /// Its number of pads.
        other_count: usize,
    },
    /// A CSV geometry without the AT-TPC's pad count was given without a scale file.
    #[error(
        "pad_scale_path must be given when pad_geometry_path ({}) has {count} pads: the \
         built-in pad scales are per pad id of the AT-TPC's {NUM_PADS} pads", .geometry.display()
    )]
    MissingScale {
        /// The geometry file.
        geometry: PathBuf,
        /// Its number of pads.
        count: usize,
    },
}

/// Reads the first `ncols` numeric columns of every data row of a Spyral-style pad CSV.
fn read_csv(path: &Path, ncols: usize) -> Result<Vec<[f64; 2]>, PadMapError> {
    let bytes = std::fs::read(path).map_err(|source| PadMapError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let text = text.replace("\r\n", "\n");
    let lines: Vec<&str> = text.split(['\n', '\r']).collect();
    // Blank lines are allowed only at the end (row index = pad id, so no row may be skipped).
    let last_data = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .unwrap_or(0);
    if last_data == 0 {
        return Err(PadMapError::Empty {
            path: path.to_path_buf(),
        });
    }
    let header = lines[0];
    if header
        .split(',')
        .next()
        .is_some_and(|f| f.trim().parse::<f64>().is_ok())
    {
        tracing::warn!(
            "pad map {}: the first line ({header:?}) looks like data, but it is read as a header \
             and skipped",
            path.display()
        );
    }
    let mut rows = Vec::with_capacity(last_data);
    for (index, line) in lines[1..=last_data].iter().enumerate() {
        let line_no = index + 2;
        let parse_err = |problem: String| PadMapError::Parse {
            path: path.to_path_buf(),
            line: line_no,
            problem,
        };
        if index > MAX_PAD_ID {
            return Err(PadMapError::PadOutOfRange {
                path: path.to_path_buf(),
                line: line_no,
                pad: index,
            });
        }
        if line.trim().is_empty() {
            return Err(parse_err(format!(
                "empty line inside the data (row {index} is pad {index}; rows cannot be skipped)"
            )));
        }
        let mut fields = line.split(',');
        let mut row = [0.0; 2];
        for (c, slot) in row.iter_mut().enumerate().take(ncols) {
            let field = fields.next().map(str::trim).ok_or_else(|| {
                parse_err(format!(
                    "expected {ncols} comma-separated value(s), found {c}"
                ))
            })?;
            let value: f64 = field
                .parse()
                .map_err(|_| parse_err(format!("column {}: {field:?} is not a number", c + 1)))?;
            if !value.is_finite() {
                return Err(parse_err(format!(
                    "column {}: {field:?} is not a finite number",
                    c + 1
                )));
            }
            *slot = value;
        }
        rows.push(row);
    }
    Ok(rows)
}

/// A triangular lattice of side `side` with a vertex at the origin; cells are `(i, j, k)`
/// with `k` = 0 for an upward and 1 for a downward triangle. In lattice coordinates (u, v),
/// x = (u + v / 2) side and y = v side sqrt(3) / 2; cell (i, j, 0) has corners (i, j), (i + 1, j),
/// (i, j + 1) and cell (i, j, 1) has corners (i + 1, j), (i, j + 1), (i + 1, j + 1).
#[derive(Debug, Clone, Copy)]
struct Lattice {
    side: f64,
}

const SQRT3_2: f64 = 0.866_025_403_784_438_6;

impl Lattice {
    fn cell_of(self, x: f64, y: f64) -> (i64, i64, u8) {
        let v = y / (self.side * SQRT3_2);
        let u = x / self.side - v / 2.0;
        let (fi, fj) = (u.floor(), v.floor());
        let k = u8::from((u - fi) + (v - fj) >= 1.0);
        (fi as i64, fj as i64, k)
    }

    /// The point Spyral gives as a triangle's centre: on its vertical axis, half way up.
    fn axis_midpoint(self, i: i64, j: i64, k: u8) -> (f64, f64) {
        let (i, j) = (i as f64, j as f64);
        let u = if k == 0 { i + 0.5 } else { i + 1.0 };
        (self.side * (u + j / 2.0), self.side * SQRT3_2 * (j + 0.5))
    }
}

/// A dense table over a rectangle of lattice cells.
#[derive(Debug, Clone)]
struct CellTable {
    lattice: Lattice,
    i0: i64,
    j0: i64,
    ni: i64,
    nj: i64,
    cells: Vec<u16>,
}

const NO_PAD: u16 = u16::MAX;
const SPLIT: u16 = u16::MAX - 1;

impl CellTable {
    fn new(lattice: Lattice, cells: &[((i64, i64, u8), u16)]) -> CellTable {
        let i0 = cells.iter().map(|c| c.0 .0).min().unwrap_or(0);
        let i1 = cells.iter().map(|c| c.0 .0).max().unwrap_or(0);
        let j0 = cells.iter().map(|c| c.0 .1).min().unwrap_or(0);
        let j1 = cells.iter().map(|c| c.0 .1).max().unwrap_or(0);
        let (ni, nj) = (i1 - i0 + 1, j1 - j0 + 1);
        let mut table = CellTable {
            lattice,
            i0,
            j0,
            ni,
            nj,
            cells: vec![NO_PAD; (ni * nj * 2) as usize],
        };
        for &((i, j, k), v) in cells {
            if let Some(idx) = table.index(i, j, k) {
                table.cells[idx] = v;
            }
        }
        table
    }

    fn index(&self, i: i64, j: i64, k: u8) -> Option<usize> {
        let (di, dj) = (i - self.i0, j - self.j0);
        if di < 0 || dj < 0 || di >= self.ni || dj >= self.nj {
            return None;
        }
        Some(((di * self.nj + dj) * 2 + i64::from(k)) as usize)
    }

    fn get(&self, cell: (i64, i64, u8)) -> u16 {
        self.index(cell.0, cell.1, cell.2)
            .map_or(NO_PAD, |idx| self.cells[idx])
    }

    fn at(&self, x: f64, y: f64) -> u16 {
        if !(x.is_finite() && y.is_finite()) {
            return NO_PAD;
        }
        self.get(self.lattice.cell_of(x, y))
    }
}

/// Exact point -> pad lookup for planes of lattice triangles (see the module documentation):
/// big cells hold a big pad, [`SPLIT`] (four small pads) or nothing.
#[derive(Debug, Clone)]
struct TriangleLocator {
    big: CellTable,
    small: CellTable,
}

/// Largest distance (mm) between a given pad centre and the axis midpoint of the lattice triangle
/// it is taken for (the AT-TPC table has about 2e-5 mm).
const LATTICE_TOLERANCE_MM: f64 = 1e-3;

impl TriangleLocator {
    fn pad_at(&self, x: f64, y: f64) -> Option<u16> {
        match self.big.at(x, y) {
            NO_PAD => None,
            SPLIT => Some(self.small.at(x, y)).filter(|&p| p < SPLIT),
            pad => Some(pad),
        }
    }

    /// The side of the big lattice: twice the smallest horizontal spacing of big-pad centres in
    /// one row (neighbouring up and down triangles), or four times that of small pads.
    fn big_side(pads: &[PadInfo]) -> Option<f64> {
        let spacing = |scale: f64| {
            let mut centres: Vec<(f64, f64)> = pads
                .iter()
                .filter(|p| p.scale == scale)
                .map(|p| (p.y, p.x))
                .collect();
            centres.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            centres
                .windows(2)
                .filter(|w| (w[1].0 - w[0].0).abs() < LATTICE_TOLERANCE_MM)
                .map(|w| w[1].1 - w[0].1)
                .filter(|&dx| dx > LATTICE_TOLERANCE_MM)
                .min_by(f64::total_cmp)
        };
        let rough = spacing(BIG_PAD_SCALE)
            .map(|dx| 2.0 * dx)
            .or_else(|| spacing(SMALL_PAD_SCALE).map(|dx| 4.0 * dx))?;
        // Refine by least squares: centres sit at whole multiples of a quarter side (small pads)
        // or a half side (big pads) in x.
        let (mut sxn, mut snn) = (0.0, 0.0);
        for p in pads {
            let n = (p.x / (rough / 4.0)).round();
            sxn += p.x * n;
            snn += n * n;
        }
        Some(if snn > 0.0 { 4.0 * sxn / snn } else { rough })
    }

    /// Builds the locator if every pad is a big or small lattice triangle with its centre given
    /// as Spyral does, no two pads share a triangle and no big pad covers a small one. `None`
    /// otherwise (the map then uses nearest-centre lookup). Returns the big side too.
    fn infer(pads: &[PadInfo]) -> Option<(TriangleLocator, f64)> {
        if pads.is_empty() || pads.len() >= usize::from(SPLIT) {
            return None;
        }
        let side = Self::big_side(pads)?;
        if !(side.is_finite() && side > 0.0) {
            return None;
        }
        let big = Lattice { side };
        let small = Lattice { side: side / 2.0 };
        let mut big_cells: Vec<((i64, i64, u8), u16)> = Vec::new();
        let mut small_cells: Vec<((i64, i64, u8), u16)> = Vec::new();
        for (id, p) in pads.iter().enumerate() {
            let lattice = if p.scale == BIG_PAD_SCALE {
                big
            } else if p.scale == SMALL_PAD_SCALE {
                small
            } else {
                return None;
            };
            if !(p.x.is_finite() && p.y.is_finite()) {
                return None;
            }
            let (i, j, k) = lattice.cell_of(p.x, p.y);
            let (mx, my) = lattice.axis_midpoint(i, j, k);
            if (mx - p.x).hypot(my - p.y) > LATTICE_TOLERANCE_MM {
                return None;
            }
            let id = id as u16;
            if p.scale == BIG_PAD_SCALE {
                big_cells.push(((i, j, k), id));
            } else {
                small_cells.push(((i, j, k), id));
                big_cells.push((big.cell_of(p.x, p.y), SPLIT));
            }
        }
        // Each triangle at most once; a big cell is either one big pad or split.
        big_cells.sort_unstable();
        big_cells.dedup();
        if big_cells.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        small_cells.sort_unstable();
        if small_cells.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        let locator = TriangleLocator {
            big: CellTable::new(big, &big_cells),
            small: CellTable::new(small, &small_cells),
        };
        // Every centre must map back to its own pad.
        let ok = pads
            .iter()
            .enumerate()
            .all(|(id, p)| locator.pad_at(p.x, p.y) == Some(id as u16));
        ok.then_some((locator, side))
    }
}

/// The built-in plane's table (see the module documentation).
const BUILTIN_TABLE: &str = include_str!("../../data/padplane.csv");

/// What is wrong with the built-in pad table (a build defect: the tests parse it).
#[derive(Debug, thiserror::Error)]
enum TableError {
    #[error("unexpected column line {0:?}")]
    Header(Option<String>),
    #[error("line {line}: column {column} is not a number")]
    NotANumber { line: usize, column: usize },
    #[error("line {line}: expected pad {pad}")]
    Row { line: usize, pad: usize },
    #[error("{0} pads, expected {NUM_PADS}")]
    Count(usize),
}

/// Parses [`BUILTIN_TABLE`]: `#` comment lines, the column line `pad,x,y,tcorr,scale`, then one
/// row per pad in id order.
fn parse_builtin_table(text: &str) -> Result<Vec<PadInfo>, TableError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty());
    match lines.next() {
        Some((_, "pad,x,y,tcorr,scale")) => {}
        other => return Err(TableError::Header(other.map(|(_, l)| l.to_string()))),
    }
    let mut pads = Vec::with_capacity(NUM_PADS);
    for (line, row) in lines {
        let fields: Vec<&str> = row.split(',').collect();
        let number = |k: usize| -> Result<f64, TableError> {
            fields
                .get(k)
                .and_then(|f| f.trim().parse::<f64>().ok())
                .ok_or(TableError::NotANumber {
                    line: line + 1,
                    column: k + 1,
                })
        };
        if fields.len() != 5 || number(0)? != pads.len() as f64 {
            return Err(TableError::Row {
                line: line + 1,
                pad: pads.len(),
            });
        }
        pads.push(PadInfo {
            x: number(1)?,
            y: number(2)?,
            time_offset: number(3)?,
            scale: number(4)?,
        });
    }
    if pads.len() != NUM_PADS {
        return Err(TableError::Count(pads.len()));
    }
    Ok(pads)
}

/// The built-in plane, parsed once.
fn builtin_plane() -> &'static PadMap {
    static PLANE: std::sync::OnceLock<PadMap> = std::sync::OnceLock::new();
    PLANE.get_or_init(|| {
        // The table is compiled in and checked by the tests, so this cannot fail at run time.
        let pads = parse_builtin_table(BUILTIN_TABLE)
            .unwrap_or_else(|e| panic!("the built-in pad plane table is corrupt: {e}"));
        let beam = (0..pads.len())
            .map(|p| is_legacy_beam_pad(p as i64))
            .collect();
        PadMap::assemble(pads, beam, PadGeometry::BuiltIn)
    })
}

/// A bucket grid of pad centres for nearest-centre queries.
#[derive(Debug, Clone)]
struct BucketGrid {
    x0: f64,
    y0: f64,
    cell: f64,
    nx: usize,
    ny: usize,
    start: Vec<u32>,
    items: Vec<u16>,
}

impl BucketGrid {
    fn new(pads: &[PadInfo]) -> BucketGrid {
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for p in pads {
            x0 = x0.min(p.x);
            y0 = y0.min(p.y);
            x1 = x1.max(p.x);
            y1 = y1.max(p.y);
        }
        if pads.is_empty() {
            (x0, y0, x1, y1) = (0.0, 0.0, 0.0, 0.0);
        }
        let n = pads.len().max(1) as f64;
        let (w, h) = (x1 - x0, y1 - y0);
        // About two centres per bucket, at most 1024 buckets a side.
        let cell = (w * h * 2.0 / n).sqrt().max(w.max(h) / 1024.0).max(1e-6);
        let nx = ((w / cell) as usize + 1).min(1025);
        let ny = ((h / cell) as usize + 1).min(1025);
        let mut grid = BucketGrid {
            x0,
            y0,
            cell,
            nx,
            ny,
            start: vec![0; nx * ny + 1],
            items: vec![0; pads.len()],
        };
        let buckets: Vec<usize> = pads.iter().map(|p| grid.bucket(p.x, p.y)).collect();
        for &b in &buckets {
            grid.start[b + 1] += 1;
        }
        for b in 0..nx * ny {
            grid.start[b + 1] += grid.start[b];
        }
        let mut fill = grid.start.clone();
        for (pad, &b) in buckets.iter().enumerate() {
            grid.items[fill[b] as usize] = pad as u16;
            fill[b] += 1;
        }
        grid
    }

    fn coords(&self, x: f64, y: f64) -> (usize, usize) {
        let cx = ((x - self.x0) / self.cell)
            .floor()
            .clamp(0.0, (self.nx - 1) as f64) as usize;
        let cy = ((y - self.y0) / self.cell)
            .floor()
            .clamp(0.0, (self.ny - 1) as f64) as usize;
        (cx, cy)
    }

    fn bucket(&self, x: f64, y: f64) -> usize {
        let (cx, cy) = self.coords(x, y);
        cy * self.nx + cx
    }

    /// Nearest centre to (x, y) other than `exclude`: `(pad, squared distance)`.
    fn nearest(
        &self,
        pads: &[PadInfo],
        x: f64,
        y: f64,
        exclude: Option<u16>,
    ) -> Option<(u16, f64)> {
        if pads.is_empty() || !(x.is_finite() && y.is_finite()) {
            return None;
        }
        let mut best: Option<(u16, f64)> = None;
        let consider = |best: &mut Option<(u16, f64)>, pad: u16| {
            if Some(pad) == exclude {
                return;
            }
            let p = &pads[usize::from(pad)];
            let d2 = (p.x - x).powi(2) + (p.y - y).powi(2);
            if best.is_none_or(|(bp, bd)| d2 < bd || (d2 == bd && pad < bp)) {
                *best = Some((pad, d2));
            }
        };
        let inside = x >= self.x0
            && y >= self.y0
            && x <= self.x0 + self.cell * self.nx as f64
            && y <= self.y0 + self.cell * self.ny as f64;
        if !inside {
            (0..pads.len()).for_each(|p| consider(&mut best, p as u16));
            return best;
        }
        let (cx, cy) = self.coords(x, y);
        let max_ring = self.nx.max(self.ny);
        for r in 0..=max_ring {
            let (r_i, cx_i, cy_i) = (r as i64, cx as i64, cy as i64);
            for dy in -r_i..=r_i {
                let by = cy_i + dy;
                if by < 0 || by >= self.ny as i64 {
                    continue;
                }
                let step = if dy.abs() == r_i { 1 } else { (2 * r_i).max(1) };
                let mut dx = -r_i;
                while dx <= r_i {
                    let bx = cx_i + dx;
                    if bx >= 0 && bx < self.nx as i64 {
                        let b = by as usize * self.nx + bx as usize;
                        for &pad in &self.items[self.start[b] as usize..self.start[b + 1] as usize]
                        {
                            consider(&mut best, pad);
                        }
                    }
                    dx += step;
                }
            }
            if let Some((_, d2)) = best {
                let reach = r as f64 * self.cell;
                if d2 <= reach * reach {
                    break;
                }
            }
        }
        best
    }
}

/// The pad plane in use: per-pad data, beam pads and point lookup.
#[derive(Clone)]
pub struct PadMap {
    pads: Vec<PadInfo>,
    beam: Vec<bool>,
    geometry: PadGeometry,
    locator: Option<TriangleLocator>,
    grid: BucketGrid,
    snap_distance: f64,
}

impl fmt::Debug for PadMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PadMap")
            .field("geometry", &self.geometry)
            .field("pads", &self.pads.len())
            .field("beam_pads", &self.beam.iter().filter(|b| **b).count())
            .finish()
    }
}

impl PadMap {
    /// The built-in plane: the AT-TPC's, as Spyral uses it by default (see the module
    /// documentation).
    pub fn builtin() -> PadMap {
        builtin_plane().clone()
    }

    /// Builds the lookups of a map: the exact triangle locator when the pads fit the AT-TPC's
    /// lattice pattern, the bucket grid of centres always.
    fn assemble(pads: Vec<PadInfo>, beam: Vec<bool>, geometry: PadGeometry) -> PadMap {
        let grid = BucketGrid::new(&pads);
        let (locator, snap_distance) = match TriangleLocator::infer(&pads) {
            // The farthest point of a triangle from Spyral's centre (half way up the axis) is a
            // corner of the base: sqrt((s / 2)^2 + (s sqrt(3) / 4)^2) = s sqrt(7) / 4.
            Some((locator, side)) => (Some(locator), side * 7f64.sqrt() / 4.0),
            None => {
                let widest = (0..pads.len())
                    .filter_map(|p| {
                        let q = &pads[p];
                        grid.nearest(&pads, q.x, q.y, Some(p as u16))
                    })
                    .map(|(_, d2)| d2.sqrt())
                    .fold(0.0, f64::max);
                (None, 1.25 * widest)
            }
        };
        PadMap {
            pads,
            beam,
            geometry,
            locator,
            grid,
            snap_distance,
        }
    }

    /// Loads the map `params` describe. A `None` path means the built-in (Spyral's default) value
    /// for that quantity: the built-in geometry, the built-in time corrections, the built-in
    /// scales. The built-in time corrections and scales are per pad id, so they are used with a
    /// CSV geometry only when it has the AT-TPC's [`NUM_PADS`] pads; otherwise time offsets are
    /// zero and a scale file is required. Beam pads are always Spyral's [`LEGACY_BEAM_PADS`]. All
    /// sources must describe the same number of pads.
    pub fn load(params: &PadParameters) -> Result<PadMap, PadMapError> {
        let builtin = builtin_plane();
        if *params == PadParameters::default() {
            return Ok(builtin.clone());
        }
        let (mut pads, geometry) = match &params.pad_geometry_path {
            None => (builtin.pads.clone(), PadGeometry::BuiltIn),
            Some(geometry) => {
                let xy = read_csv(geometry, 2)?;
                let fits_builtin = xy.len() == builtin.pads.len();
                if params.pad_scale_path.is_none() && !fits_builtin {
                    return Err(PadMapError::MissingScale {
                        geometry: geometry.clone(),
                        count: xy.len(),
                    });
                }
                if xy.len() != NUM_PADS {
                    tracing::warn!(
                        "pad map {}: {} pads (the AT-TPC has {NUM_PADS})",
                        geometry.display(),
                        xy.len()
                    );
                }
                let pads = xy
                    .iter()
                    .enumerate()
                    .map(|(id, c)| {
                        let own = fits_builtin.then(|| builtin.pads[id]);
                        PadInfo {
                            x: c[0],
                            y: c[1],
                            time_offset: own.map_or(0.0, |p| p.time_offset),
                            scale: own.map_or(0.0, |p| p.scale),
                        }
                    })
                    .collect();
                (pads, PadGeometry::Csv(geometry.clone()))
            }
        };
        let source = match &geometry {
            PadGeometry::BuiltIn => "the built-in pad plane".to_string(),
            PadGeometry::Csv(path) => path.display().to_string(),
        };
        if let Some(time) = &params.pad_time_path {
            let rows = read_csv(time, 1)?;
            check_count(time, rows.len(), &source, pads.len())?;
            for (p, r) in pads.iter_mut().zip(&rows) {
                p.time_offset = r[0];
            }
        }
        if let Some(scale) = &params.pad_scale_path {
            let rows = read_csv(scale, 1)?;
            check_count(scale, rows.len(), &source, pads.len())?;
            for (p, r) in pads.iter_mut().zip(&rows) {
                p.scale = r[0];
            }
        }
        let beam = (0..pads.len())
            .map(|p| is_legacy_beam_pad(p as i64))
            .collect();
        Ok(Self::assemble(pads, beam, geometry))
    }

    /// Loads a map from Spyral-style CSV files only (time offsets zero when `time` is `None`).
    /// Beam pads are Spyral's [`LEGACY_BEAM_PADS`].
    pub fn from_csv(
        geometry: &Path,
        time: Option<&Path>,
        scale: &Path,
    ) -> Result<PadMap, PadMapError> {
        let xy = read_csv(geometry, 2)?;
        let scales = read_csv(scale, 1)?;
        check_count(
            scale,
            scales.len(),
            &geometry.display().to_string(),
            xy.len(),
        )?;
        let times = match time {
            Some(t) => {
                let rows = read_csv(t, 1)?;
                check_count(t, rows.len(), &geometry.display().to_string(), xy.len())?;
                rows.into_iter().map(|r| r[0]).collect()
            }
            None => vec![0.0; xy.len()],
        };
        if xy.len() != NUM_PADS {
            tracing::warn!(
                "pad map {}: {} pads (the AT-TPC has {NUM_PADS})",
                geometry.display(),
                xy.len()
            );
        }
        let pads: Vec<PadInfo> = xy
            .iter()
            .zip(&scales)
            .zip(&times)
            .map(|((c, s), &t)| PadInfo {
                x: c[0],
                y: c[1],
                time_offset: t,
                scale: s[0],
            })
            .collect();
        let beam = (0..pads.len())
            .map(|p| is_legacy_beam_pad(p as i64))
            .collect();
        Ok(Self::assemble(
            pads,
            beam,
            PadGeometry::Csv(geometry.to_path_buf()),
        ))
    }

    /// Where the geometry came from.
    pub fn geometry(&self) -> &PadGeometry {
        &self.geometry
    }

    /// Whether this map's geometry is the built-in plane's.
    pub fn is_builtin(&self) -> bool {
        self.geometry == PadGeometry::BuiltIn
    }

    /// Number of pads.
    pub fn len(&self) -> usize {
        self.pads.len()
    }

    /// Whether the map has no pads.
    pub fn is_empty(&self) -> bool {
        self.pads.is_empty()
    }

    /// All pads, indexed by pad id.
    pub fn pads(&self) -> &[PadInfo] {
        &self.pads
    }

    /// The data of pad `id` (any integer type); `None` for -1 (no pad) or an id not in the map.
    pub fn pad(&self, id: impl Into<i64>) -> Option<&PadInfo> {
        usize::try_from(id.into())
            .ok()
            .and_then(|i| self.pads.get(i))
    }

    /// Whether pad `id` is a beam pad of this map (always excluded from point clouds): one of
    /// Spyral's [`LEGACY_BEAM_PADS`].
    pub fn is_beam_pad(&self, id: impl Into<i64>) -> bool {
        usize::try_from(id.into())
            .ok()
            .and_then(|i| self.beam.get(i).copied())
            .unwrap_or(false)
    }

    /// The beam pads of this map, sorted.
    pub fn beam_pads(&self) -> Vec<u16> {
        (0..self.beam.len())
            .filter(|&p| self.beam[p])
            .map(|p| p as u16)
            .collect()
    }

    /// The largest distance from a pad centre at which [`PadMap::pad_at`] assigns a point to
    /// that pad: for lattice planes (the built-in one), a big triangle's centre-to-corner
    /// distance; otherwise the nearest-centre cut-off.
    pub fn snap_distance(&self) -> f64 {
        self.snap_distance
    }

    /// The pad collecting charge at (x, y) mm, or `None` off the plane: the triangle containing
    /// the point for lattice planes (the built-in one); the nearest centre within
    /// [`PadMap::snap_distance`] otherwise. O(1).
    pub fn pad_at(&self, x: f64, y: f64) -> Option<u16> {
        match &self.locator {
            Some(loc) => loc.pad_at(x, y),
            None => self
                .grid
                .nearest(&self.pads, x, y, None)
                .filter(|&(_, d2)| d2 <= self.snap_distance * self.snap_distance)
                .map(|(p, _)| p),
        }
    }

    /// The pad whose centre is nearest to (x, y), however far (ties: the lowest id).
    pub fn nearest_pad(&self, x: f64, y: f64) -> Option<u16> {
        self.grid.nearest(&self.pads, x, y, None).map(|(p, _)| p)
    }

    /// The hardware address of pad `pad` (see [`hardware_id_for_pad`]); `None` if the pad is
    /// not in the map.
    pub fn hardware_id(&self, pad: u16) -> Option<HardwareId> {
        if usize::from(pad) < self.pads.len() {
            hardware_id_for_pad(pad)
        } else {
            None
        }
    }

    /// The pad at a hardware address (see [`pad_for_hardware_id`]); `None` if unassigned.
    pub fn pad_for_hardware(&self, hw: HardwareId) -> Option<u16> {
        pad_for_hardware_id(hw).filter(|&p| usize::from(p) < self.pads.len())
    }
}

fn check_count(
    path: &Path,
    count: usize,
    other: &str,
    other_count: usize,
) -> Result<(), PadMapError> {
    if count == other_count {
        Ok(())
    } else {
        Err(PadMapError::CountMismatch {
            path: path.to_path_buf(),
            count,
            other: other.to_string(),
            other_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_beam_pad_list() {
        assert_eq!(LEGACY_BEAM_PADS.len(), 122);
        assert!(LEGACY_BEAM_PADS.windows(2).all(|w| w[0] < w[1]));
        for p in [
            134, 164, 166, 435, 457, 459, 733, 741, 5254, 5286, 5579, 5861,
        ] {
            assert!(is_legacy_beam_pad(p), "{p}");
        }
        for p in [133, 165, 458, 734, 5253, 5862, -1] {
            assert!(!is_legacy_beam_pad(p), "{p}");
        }
    }

    #[test]
    fn hardware_ids_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for pad in 0..NUM_PADS as u16 {
            let hw = hardware_id_for_pad(pad).unwrap();
            assert!(!FPN_CHANNELS.contains(&hw.channel));
            assert!(hw.cobo < NUM_COBOS && hw.channel < CHANNELS_PER_AGET);
            assert!(seen.insert(hw));
            assert_eq!(pad_for_hardware_id(hw), Some(pad));
        }
        assert_eq!(
            pad_for_hardware_id(HardwareId {
                cobo: 0,
                asad: 0,
                aget: 0,
                channel: 11
            }),
            None
        );
        assert!(hardware_id_for_pad(11 * 4 * 4 * 64).is_none());
    }

    #[test]
    fn builtin_plane_shape() {
        let map = PadMap::builtin();
        assert_eq!(map.len(), NUM_PADS);
        let small: Vec<_> = map.pads().iter().filter(|p| p.scale == 0.5).collect();
        assert_eq!(small.len(), NUM_SMALL_PADS);
        let r = |p: &PadInfo| p.x.hypot(p.y);
        let small_max = small.iter().map(|p| r(p)).fold(0.0, f64::max);
        let big_min = map
            .pads()
            .iter()
            .filter(|p| p.scale == 1.0)
            .map(r)
            .fold(f64::MAX, f64::min);
        assert!(
            small_max <= 155.3 && big_min >= 138.1,
            "{small_max} {big_min}"
        );
        // The beam pads are the pads within 20 mm of the axis.
        for (id, p) in map.pads().iter().enumerate() {
            assert_eq!(map.is_beam_pad(id as u16), r(p) <= 20.0, "pad {id}");
        }
        assert_eq!(map.beam_pads(), LEGACY_BEAM_PADS.to_vec());
        assert!(!map.is_beam_pad(-1));
        // The lattice lookup is in use, with the AT-TPC's big side (about 9.82 mm).
        assert!(map.locator.is_some());
        let side = map.snap_distance() * 4.0 / 7f64.sqrt();
        assert!((side - 9.8164705).abs() < 1e-5, "{side}");
    }

    #[test]
    fn lattice_inference_refuses_other_layouts() {
        let pad = |x, y, scale| PadInfo {
            x,
            y,
            time_offset: 0.0,
            scale,
        };
        // A square grid is not a triangle lattice.
        let square: Vec<PadInfo> = (0..25)
            .map(|i| pad(f64::from(i % 5) * 3.0, f64::from(i / 5) * 3.0, 1.0))
            .collect();
        assert!(TriangleLocator::infer(&square).is_none());
        // Two pads on the same triangle.
        let builtin = PadMap::builtin();
        let mut twice = builtin.pads().to_vec();
        twice[1] = twice[0];
        assert!(TriangleLocator::infer(&twice).is_none());
        // An unknown scale.
        let mut odd = builtin.pads().to_vec();
        odd[7].scale = 0.75;
        assert!(TriangleLocator::infer(&odd).is_none());
    }

    #[test]
    fn grid_nearest_matches_brute_force() {
        let map = PadMap::builtin();
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..2000 {
            let (x, y) = (next() * 600.0 - 300.0, next() * 600.0 - 300.0);
            let got = map.grid.nearest(map.pads(), x, y, None).unwrap();
            let brute = (0..map.len())
                .map(|p| {
                    let q = &map.pads()[p];
                    (p as u16, (q.x - x).powi(2) + (q.y - y).powi(2))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
                .unwrap();
            assert_eq!(got.1, brute.1, "({x}, {y})");
        }
    }
}
