//! Nuclear masses: an AME2020 atomic-mass table for light ions, gas nuclei and common AT-TPC beams,
//! and the [`Nucleus`] type used by the energy-loss and kinematics code.
//!
//! Source: AME2020, M. Wang et al., Chinese Physics C 45 (2021) 030003. The table holds atomic masses
//! in micro-u as published (rounded to the digits shown). Following Spyral (spec §3.4), the nuclear mass
//! is the atomic mass minus Z electron masses; electron binding energies are neglected.

use super::constants::{AMU_MEV, BRHO_FACTOR, ELECTRON_MASS_U};
use super::PhysicsError;

/// Element symbols, indexed by Z (index 0 is the neutron).
const SYMBOLS: [&str; 55] = [
    "n", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S",
    "Cl", "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge",
    "As", "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd",
    "In", "Sn", "Sb", "Te", "I", "Xe",
];

/// (Z, A, atomic mass in micro-u), AME2020.
const MASS_TABLE: &[(u32, u32, f64)] = &[
    (0, 1, 1_008_664.915_90),
    (1, 1, 1_007_825.031_90),
    (1, 2, 2_014_101.777_84),
    (1, 3, 3_016_049.281_32),
    (2, 3, 3_016_029.321_97),
    (2, 4, 4_002_603.254_13),
    (2, 6, 6_018_885.889),
    (2, 8, 8_033_934.4),
    (3, 6, 6_015_122.887_4),
    (3, 7, 7_016_003.434),
    (3, 8, 8_022_486.25),
    (3, 9, 9_026_790.2),
    (3, 11, 11_043_723.6),
    (4, 7, 7_016_928.717),
    (4, 8, 8_005_305.102),
    (4, 9, 9_012_183.062),
    (4, 10, 10_013_534.69),
    (4, 11, 11_021_661.08),
    (4, 12, 12_026_922.1),
    (5, 8, 8_024_607.3),
    (5, 10, 10_012_936.862),
    (5, 11, 11_009_305.166),
    (5, 12, 12_014_352.7),
    (6, 10, 10_016_853.2),
    (6, 11, 11_011_432.6),
    (6, 12, 12_000_000.0),
    (6, 13, 13_003_354.835_21),
    (6, 14, 14_003_241.988_43),
    (6, 15, 15_010_599.3),
    (6, 16, 16_014_701.3),
    (7, 12, 12_018_613.2),
    (7, 13, 13_005_738.61),
    (7, 14, 14_003_074.004_25),
    (7, 15, 15_000_108.898_27),
    (7, 17, 17_008_449.0),
    (8, 14, 14_008_596.706),
    (8, 15, 15_003_065.6),
    (8, 16, 15_994_914.619_26),
    (8, 17, 16_999_131.755_95),
    (8, 18, 17_999_159.612_1),
    (8, 19, 19_003_578.0),
    (8, 20, 20_004_075.4),
    (9, 17, 17_002_095.24),
    (9, 18, 18_000_937.3),
    (9, 19, 18_998_403.162_07),
    (10, 18, 18_005_708.7),
    (10, 19, 19_001_880.9),
    (10, 20, 19_992_440.176_2),
    (10, 21, 20_993_846.685),
    (10, 22, 21_991_385.113),
    (12, 24, 23_985_041.699),
    (14, 28, 27_976_926.534_42),
    (16, 32, 31_972_071.174_4),
    (18, 36, 35_967_545.105),
    (18, 40, 39_962_383.122),
    (20, 40, 39_962_590.85),
    (20, 48, 47_952_522.90),
    (36, 84, 83_911_497.728),
    (54, 132, 131_904_155.086),
];

/// The element symbol for a proton number, if known (Z ≤ 54).
pub fn element_symbol(z: u32) -> Option<&'static str> {
    SYMBOLS.get(z as usize).copied()
}

/// AME2020 atomic mass in u.
pub fn atomic_mass_u(z: u32, a: u32) -> Result<f64, PhysicsError> {
    MASS_TABLE
        .iter()
        .find(|(tz, ta, _)| *tz == z && *ta == a)
        .map(|(_, _, micro_u)| micro_u * 1e-6)
        .ok_or(PhysicsError::UnknownIsotope { z, a })
}

/// Atomic mass excess (atomic mass − A u) in keV.
pub fn mass_excess_kev(z: u32, a: u32) -> Result<f64, PhysicsError> {
    Ok((atomic_mass_u(z, a)? - f64::from(a)) * AMU_MEV * 1000.0)
}

/// A bare nucleus: proton number, mass number and nuclear mass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nucleus {
    /// Proton number.
    pub z: u32,
    /// Mass number.
    pub a: u32,
    /// Nuclear (not atomic) mass in MeV/c².
    pub mass_mev: f64,
}

impl Nucleus {
    /// The nucleus (Z, A) from the mass table.
    pub fn new(z: u32, a: u32) -> Result<Self, PhysicsError> {
        let atomic = atomic_mass_u(z, a)?;
        Ok(Self {
            z,
            a,
            mass_mev: (atomic - f64::from(z) * ELECTRON_MASS_U) * AMU_MEV,
        })
    }

    /// Parses "16C", "4He", "2H" (Spyral's isotopic symbols) or the aliases p, d, t, alpha
    /// (also proton, deuteron, triton, a).
    pub fn from_symbol(symbol: &str) -> Result<Self, PhysicsError> {
        let (z, a) = parse_isotope(symbol)?;
        Self::new(z, a)
    }

    /// Isotopic symbol in Spyral's style, e.g. "1H", "4He", "16C".
    pub fn isotope_symbol(&self) -> String {
        format!("{}{}", self.a, element_symbol(self.z).unwrap_or("?"))
    }

    /// Nuclear mass in u.
    pub fn mass_u(&self) -> f64 {
        self.mass_mev / AMU_MEV
    }

    /// Momentum in MeV/c for a kinetic energy in MeV.
    pub fn momentum_mev(&self, ke_mev: f64) -> f64 {
        (ke_mev * (ke_mev + 2.0 * self.mass_mev)).max(0.0).sqrt()
    }

    /// Magnetic rigidity Bρ in T·m for a kinetic energy in MeV (fully stripped ion).
    pub fn brho_tm(&self, ke_mev: f64) -> f64 {
        if self.z == 0 {
            return f64::INFINITY;
        }
        self.momentum_mev(ke_mev) / (BRHO_FACTOR * f64::from(self.z))
    }

    /// Kinetic energy in MeV for a magnetic rigidity in T·m.
    pub fn ke_from_brho(&self, brho_tm: f64) -> f64 {
        let p = brho_tm * BRHO_FACTOR * f64::from(self.z);
        (p * p + self.mass_mev * self.mass_mev).sqrt() - self.mass_mev
    }
}

impl std::fmt::Display for Nucleus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.isotope_symbol())
    }
}

/// Parses an isotope symbol into (Z, A) without looking up its mass.
pub fn parse_isotope(symbol: &str) -> Result<(u32, u32), PhysicsError> {
    let s = symbol.trim();
    let bad = || PhysicsError::BadIsotopeSymbol(symbol.to_string());
    match s.to_ascii_lowercase().as_str() {
        "p" | "proton" => return Ok((1, 1)),
        "d" | "deuteron" => return Ok((1, 2)),
        "t" | "triton" => return Ok((1, 3)),
        "a" | "alpha" => return Ok((2, 4)),
        "n" | "neutron" => return Ok((0, 1)),
        _ => {}
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    if digits_end == 0 {
        return Err(bad());
    }
    let a: u32 = s[..digits_end].parse().map_err(|_| bad())?;
    let name = &s[digits_end..];
    let z = SYMBOLS
        .iter()
        .position(|sym| sym.eq_ignore_ascii_case(name))
        .ok_or_else(bad)?;
    let z = u32::try_from(z).map_err(|_| bad())?;
    if name.eq_ignore_ascii_case("n") && a != 1 {
        return Err(bad());
    }
    Ok((z, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_symbols() {
        assert_eq!(parse_isotope("16C").unwrap(), (6, 16));
        assert_eq!(parse_isotope("4he").unwrap(), (2, 4));
        assert_eq!(parse_isotope("alpha").unwrap(), (2, 4));
        assert_eq!(parse_isotope("d").unwrap(), (1, 2));
        assert!(parse_isotope("C").is_err());
        assert!(parse_isotope("16Xx").is_err());
        assert!(parse_isotope("").is_err());
    }

    #[test]
    fn unknown_isotope_is_an_error() {
        assert!(matches!(
            Nucleus::new(6, 30),
            Err(PhysicsError::UnknownIsotope { z: 6, a: 30 })
        ));
    }

    #[test]
    fn brho_round_trip() {
        let p = Nucleus::new(1, 1).unwrap();
        let b = p.brho_tm(10.0);
        assert!((p.ke_from_brho(b) - 10.0).abs() < 1e-9);
    }
}
