//! catima's stopping powers of light ions in single isotopes, tabulated (`catima_stopping.csv`,
//! made by `scripts/parity/derive_stopping.py` with pycatima as spyral-utils calls it), so that the
//! trajectory mesh can use the energy loss Python Spyral uses without linking catima.
//!
//! The table holds mass stopping powers S(T/u) (MeV cm²/g) on a geometric grid of the energy per
//! mass unit (1 keV/u .. 1 GeV/u, 40 points per decade) for the projectiles ¹H, ²H, ³H, ³He, ⁴He in
//! the targets ¹H, ²H, ⁴He, ¹²C, ¹⁴N, ¹⁶O, ¹⁹F, ²⁰Ne, ³²S, ⁴⁰Ar, ⁸⁴Kr, ¹³²Xe. It is read with a
//! Catmull–Rom cubic in (ln T/u, ln S) (within 6·10⁻⁴ of catima everywhere, within 10⁻⁶ typically;
//! the largest errors sit at catima's kinks between its low- and high-energy models); outside the
//! grid the end intervals extend as power laws. A gas is the Bragg sum with mass fractions of its
//! isotopes, which is what catima computes for a compound (the generator checks this).

use super::constants::AMU_MEV;
use super::gas::GasTarget;
use super::nuclear::Nucleus;
use std::collections::HashMap;
use std::sync::OnceLock;

const CSV: &str = include_str!("catima_stopping.csv");

/// The parsed table: ln(T/u) grid start and step, and ln S per (projectile Z, A, target Z, A).
struct Table {
    ln_e0: f64,
    h: f64,
    columns: HashMap<(u32, u32, u32, u32), Vec<f64>>,
}

fn parse_key(name: &str) -> Option<(u32, u32, u32, u32)> {
    let (p, t) = name.strip_prefix('p')?.split_once("_t")?;
    let (pz, pa) = p.split_once('_')?;
    let (tz, ta) = t.split_once('_')?;
    Some((
        pz.parse().ok()?,
        pa.parse().ok()?,
        tz.parse().ok()?,
        ta.parse().ok()?,
    ))
}

fn parse() -> Option<Table> {
    let mut lines = CSV.lines().filter(|l| !l.starts_with('#'));
    let header = lines.next()?;
    let keys: Vec<(u32, u32, u32, u32)> = header
        .split(',')
        .skip(1)
        .map(parse_key)
        .collect::<Option<_>>()?;
    let mut energies = Vec::new();
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); keys.len()];
    for line in lines {
        let mut fields = line.split(',');
        energies.push(fields.next()?.parse::<f64>().ok()?.ln());
        for col in cols.iter_mut() {
            let v: f64 = fields.next()?.parse().ok()?;
            if !(v.is_finite() && v > 0.0) {
                return None;
            }
            col.push(v.ln());
        }
    }
    if energies.len() < 4 {
        return None;
    }
    let h = (energies[energies.len() - 1] - energies[0]) / (energies.len() - 1) as f64;
    Some(Table {
        ln_e0: energies[0],
        h,
        columns: keys.into_iter().zip(cols).collect(),
    })
}

fn table() -> Option<&'static Table> {
    static TABLE: OnceLock<Option<Table>> = OnceLock::new();
    TABLE.get_or_init(parse).as_ref()
}

/// ln S at ln(T/u) = `x` from one column `y` (Catmull–Rom inside, power laws outside).
fn interpolate(t: &Table, y: &[f64], x: f64) -> f64 {
    let n = y.len();
    let s = (x - t.ln_e0) / t.h;
    if s <= 0.0 {
        return y[0] + s * (y[1] - y[0]);
    }
    let last = (n - 1) as f64;
    if s >= last {
        return y[n - 1] + (s - last) * (y[n - 1] - y[n - 2]);
    }
    let i = s.floor();
    let u = s - i;
    // `i` is in [0, n - 2]: the cast is exact.
    let i = i as usize;
    let p1 = y[i];
    let p2 = y[i + 1];
    let p0 = if i == 0 { 2.0 * p1 - p2 } else { y[i - 1] };
    let p3 = if i + 2 >= n { 2.0 * p2 - p1 } else { y[i + 2] };
    p1 + 0.5
        * u
        * (p2 - p0 + u * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3 + u * (3.0 * (p1 - p2) + p3 - p0)))
}

/// catima's mass stopping power (MeV cm²/g) of `projectile` in `gas` as a function of its kinetic
/// energy (MeV), if the table covers the projectile and every isotope of the gas.
#[derive(Debug, Clone)]
pub struct CatimaStopping {
    per_u: f64,
    parts: Vec<(f64, &'static [f64])>,
}

impl CatimaStopping {
    /// The tabulated stopping of `projectile` in `gas`, or `None` if a pair is not tabulated.
    pub fn new(projectile: &Nucleus, gas: &GasTarget) -> Option<Self> {
        let t = table()?;
        let parts = gas
            .elements()
            .iter()
            .map(|e| {
                t.columns
                    .get(&(projectile.z, projectile.a, e.z, e.a))
                    .map(|c| (e.mass_fraction, c.as_slice()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            per_u: projectile.mass_mev / AMU_MEV,
            parts,
        })
    }

    /// Mass stopping power (MeV cm²/g) at kinetic energy `ke_mev` (MeV).
    pub fn dedx(&self, ke_mev: f64) -> f64 {
        let Some(t) = table() else { return 0.0 };
        let x = (ke_mev / self.per_u).ln();
        self.parts
            .iter()
            .map(|(w, y)| w * interpolate(t, y, x).exp())
            .sum()
    }
}

/// A short description of the table's source, for mesh metadata.
pub fn source() -> &'static str {
    "catima (pycatima 1.982, default configuration), tabulated"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by pycatima 1.982 (`catima.dedx`, deuteron of mass 2.013553197934956 u in
    /// D2 built from ²H of 2.014101777844 u), off the table's grid points.
    #[test]
    fn deuteron_in_deuterium_matches_catima() {
        let gas = GasTarget::from_json_str(r#"{"compound": [[1, 2, 2]], "pressure(Torr)": 300}"#)
            .unwrap();
        let d = Nucleus::new(1, 2).unwrap();
        let s = CatimaStopping::new(&d, &gas).expect("tabulated");
        for (t_u, want) in [
            (0.0375, 1_113.412_685_9),
            (0.7, 441.252_979_3),
            (2.8, 149.616_726_9),
            (12.3, 43.448_511_7),
        ] {
            let got = s.dedx(t_u * d.mass_mev / AMU_MEV);
            assert!(
                (got / want - 1.0).abs() < 2e-4,
                "T/u {t_u}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn untabulated_pairs_are_none() {
        let gas = GasTarget::from_json_str(r#"{"compound": [[1, 2, 2]], "pressure(Torr)": 300}"#)
            .unwrap();
        assert!(CatimaStopping::new(&Nucleus::new(6, 12).unwrap(), &gas).is_none());
    }
}
