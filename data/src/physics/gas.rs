//! Gas targets in Spyral's JSON format (spec §3.4 create_assets).
//!
//! Two forms are accepted:
//! - a compound: `{"compound": [[Z, A, S], …], "pressure(Torr)": p}` where S is the number of atoms of
//!   (Z, A) in one molecule;
//! - a mixture: `{"components": [[[Z, A, S], …], …], "volume_fractions": [f, …], "pressure(Torr)": p}`
//!   where each component is a compound and the fractions are volume (= mole) fractions.
//!
//! The density follows Spyral: ρ = Σ(A·S)·p / (R·293 K) in g/cm³ with the mass number A; a mixture
//! uses Σᵢ fᵢ·Σ(A·S)ᵢ. For stopping powers the gas is described by the mass fraction of each element,
//! computed with AME2020 atomic masses, and the element stopping powers are added (Bragg's rule).

use std::path::Path;

use serde_json::{json, Map, Value};

use super::constants::{GAS_CONSTANT_CM3_TORR, ROOM_TEMPERATURE_K};
use super::nuclear::{atomic_mass_u, element_symbol, Nucleus};
use super::stopping::{element_dedx, has_stopping_data};
use super::PhysicsError;

/// One entry `[Z, A, S]` of a compound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompoundElement {
    /// Proton number.
    pub z: u32,
    /// Mass number.
    pub a: u32,
    /// Number of such atoms per molecule.
    pub s: u32,
}

/// The share of one element (isotope) in the gas, by mass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ElementShare {
    /// Proton number.
    pub z: u32,
    /// Mass number.
    pub a: u32,
    /// AME2020 atomic mass in u.
    pub atomic_mass_u: f64,
    /// Mass fraction of this isotope in the gas (all shares sum to 1).
    pub mass_fraction: f64,
}

/// A gas target: one compound or a mixture of compounds at a pressure, at 293 K.
#[derive(Debug, Clone, PartialEq)]
pub struct GasTarget {
    components: Vec<Vec<CompoundElement>>,
    volume_fractions: Vec<f64>,
    mixture: bool,
    pressure_torr: f64,
    density_g_cm3: f64,
    elements: Vec<ElementShare>,
}

impl GasTarget {
    /// A single-compound gas.
    pub fn compound(
        elements: Vec<CompoundElement>,
        pressure_torr: f64,
    ) -> Result<Self, PhysicsError> {
        Self::build(vec![elements], vec![1.0], false, pressure_torr)
    }

    /// A mixture of compounds with volume fractions (normalised if they do not sum to 1).
    pub fn mixture(
        components: Vec<Vec<CompoundElement>>,
        volume_fractions: Vec<f64>,
        pressure_torr: f64,
    ) -> Result<Self, PhysicsError> {
        Self::build(components, volume_fractions, true, pressure_torr)
    }

    fn build(
        components: Vec<Vec<CompoundElement>>,
        fractions: Vec<f64>,
        mixture: bool,
        pressure_torr: f64,
    ) -> Result<Self, PhysicsError> {
        let invalid = |m: String| PhysicsError::InvalidGas(m);
        if !(pressure_torr.is_finite() && pressure_torr > 0.0) {
            return Err(invalid(format!(
                "pressure must be positive, got {pressure_torr} Torr"
            )));
        }
        if components.is_empty() {
            return Err(invalid("no components".into()));
        }
        if components.len() != fractions.len() {
            return Err(invalid(format!(
                "{} components but {} volume fractions",
                components.len(),
                fractions.len()
            )));
        }
        if fractions.iter().any(|f| !(f.is_finite() && *f >= 0.0)) {
            return Err(invalid(
                "volume fractions must be finite and non-negative".into(),
            ));
        }
        let total: f64 = fractions.iter().sum();
        if total <= 0.0 {
            return Err(invalid("volume fractions sum to zero".into()));
        }
        let fractions: Vec<f64> = fractions.iter().map(|f| f / total).collect();

        let mut mass_number_weight = 0.0; // Σ f·Σ(A·S), for the density
        let mut molar_mass = 0.0; // Σ f·Σ(m·S) with atomic masses, for mass fractions
        let mut shares: Vec<ElementShare> = Vec::new();
        for (component, &f) in components.iter().zip(&fractions) {
            if component.is_empty() {
                return Err(invalid("a compound has no elements".into()));
            }
            for e in component {
                if e.z == 0 || e.s == 0 {
                    return Err(invalid(format!(
                        "bad compound entry [{}, {}, {}]",
                        e.z, e.a, e.s
                    )));
                }
                if !has_stopping_data(e.z) {
                    return Err(PhysicsError::NoStoppingData(e.z));
                }
                let m = atomic_mass_u(e.z, e.a)?;
                mass_number_weight += f * f64::from(e.a) * f64::from(e.s);
                let w = f * m * f64::from(e.s);
                molar_mass += w;
                match shares.iter_mut().find(|s| s.z == e.z && s.a == e.a) {
                    Some(s) => s.mass_fraction += w,
                    None => shares.push(ElementShare {
                        z: e.z,
                        a: e.a,
                        atomic_mass_u: m,
                        mass_fraction: w,
                    }),
                }
            }
        }
        for s in &mut shares {
            s.mass_fraction /= molar_mass;
        }
        let density_g_cm3 =
            mass_number_weight * pressure_torr / (GAS_CONSTANT_CM3_TORR * ROOM_TEMPERATURE_K);
        Ok(Self {
            components,
            volume_fractions: fractions,
            mixture,
            pressure_torr,
            density_g_cm3,
            elements: shares,
        })
    }

    /// Parses a Spyral gas-target JSON value.
    pub fn from_json_value(value: &Value) -> Result<Self, PhysicsError> {
        let invalid = |m: &str| PhysicsError::InvalidGas(m.to_string());
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("expected a JSON object"))?;
        let pressure = obj
            .get("pressure(Torr)")
            .ok_or_else(|| invalid("missing \"pressure(Torr)\""))?
            .as_f64()
            .ok_or_else(|| invalid("\"pressure(Torr)\" must be a number"))?;
        if let Some(compound) = obj.get("compound") {
            check_keys(obj, &["compound", "pressure(Torr)"])?;
            Self::compound(parse_compound(compound)?, pressure)
        } else if let Some(components) = obj.get("components") {
            check_keys(obj, &["components", "volume_fractions", "pressure(Torr)"])?;
            let comps = components
                .as_array()
                .ok_or_else(|| invalid("\"components\" must be a list of compounds"))?
                .iter()
                .map(parse_compound)
                .collect::<Result<Vec<_>, _>>()?;
            let fractions = obj
                .get("volume_fractions")
                .ok_or_else(|| invalid("a mixture needs \"volume_fractions\""))?
                .as_array()
                .ok_or_else(|| invalid("\"volume_fractions\" must be a list of numbers"))?
                .iter()
                .map(|v| {
                    v.as_f64()
                        .ok_or_else(|| invalid("\"volume_fractions\" must be numbers"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Self::mixture(comps, fractions, pressure)
        } else {
            Err(invalid(
                "expected a \"compound\" or a \"components\" key (not a gas target)",
            ))
        }
    }

    /// Parses a Spyral gas-target JSON string.
    pub fn from_json_str(text: &str) -> Result<Self, PhysicsError> {
        let value: Value = serde_json::from_str(text).map_err(|source| PhysicsError::GasJson {
            what: "string".into(),
            source,
        })?;
        Self::from_json_value(&value)
    }

    /// Reads a Spyral gas-target JSON file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PhysicsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PhysicsError::GasFile {
            path: path.to_path_buf(),
            source,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|source| PhysicsError::GasJson {
            what: path.display().to_string(),
            source,
        })?;
        Self::from_json_value(&value)
    }

    /// The JSON description (the same format that is parsed).
    pub fn to_json_value(&self) -> Value {
        let comp = |c: &Vec<CompoundElement>| -> Value {
            Value::Array(c.iter().map(|e| json!([e.z, e.a, e.s])).collect())
        };
        if self.mixture {
            json!({
                "components": self.components.iter().map(comp).collect::<Vec<_>>(),
                "volume_fractions": self.volume_fractions,
                "pressure(Torr)": self.pressure_torr,
            })
        } else {
            json!({"compound": comp(&self.components[0]), "pressure(Torr)": self.pressure_torr})
        }
    }

    /// Density in g/cm³.
    pub fn density_g_cm3(&self) -> f64 {
        self.density_g_cm3
    }

    /// Pressure in Torr.
    pub fn pressure_torr(&self) -> f64 {
        self.pressure_torr
    }

    /// Whether this gas was given as a mixture.
    pub fn is_mixture(&self) -> bool {
        self.mixture
    }

    /// The compounds (one for a compound gas).
    pub fn components(&self) -> &[Vec<CompoundElement>] {
        &self.components
    }

    /// The normalised volume fractions (`[1.0]` for a compound gas).
    pub fn volume_fractions(&self) -> &[f64] {
        &self.volume_fractions
    }

    /// The isotopes of the gas with their mass fractions.
    pub fn elements(&self) -> &[ElementShare] {
        &self.elements
    }

    /// A compact name such as "1H2" (H₂), "2H2" (D₂) or "12C16O2"; components of a mixture are
    /// joined with "_". This matches Spyral's "ugly string" without its "(Gas)" decoration.
    pub fn ugly_string(&self) -> String {
        self.components
            .iter()
            .map(|c| {
                c.iter()
                    .map(|e| format!("{}{}{}", e.a, element_symbol(e.z).unwrap_or("?"), e.s))
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("_")
    }

    /// Mass stopping power dE/dx in MeV·cm²/g for a projectile at a kinetic energy (Bragg's rule
    /// over the gas elements). Direct evaluation; use an
    /// [`EnergyLossTable`](super::stopping::EnergyLossTable) in loops.
    pub fn dedx(&self, projectile: &Nucleus, ke_mev: f64) -> f64 {
        self.elements
            .iter()
            .map(|e| {
                e.mass_fraction
                    * element_dedx(projectile, ke_mev, e.z, e.atomic_mass_u).unwrap_or(0.0)
            })
            .sum()
    }
}

fn check_keys(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), PhysicsError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(PhysicsError::InvalidGas(format!(
            "unknown key {k:?} (allowed here: {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

fn parse_compound(value: &Value) -> Result<Vec<CompoundElement>, PhysicsError> {
    let invalid = |m: String| PhysicsError::InvalidGas(m);
    let list = value
        .as_array()
        .ok_or_else(|| invalid("a compound must be a list of [Z, A, S] triples".into()))?;
    list.iter()
        .map(|entry| {
            let triple = entry
                .as_array()
                .filter(|t| t.len() == 3)
                .ok_or_else(|| invalid(format!("compound entry {entry} is not [Z, A, S]")))?;
            let mut out = [0u32; 3];
            for (slot, v) in out.iter_mut().zip(triple) {
                let x = v
                    .as_f64()
                    .ok_or_else(|| invalid(format!("compound entry {entry} is not numeric")))?;
                if !(x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= f64::from(u16::MAX)) {
                    return Err(invalid(format!(
                        "compound entry {entry} must hold non-negative integers"
                    )));
                }
                // Exact: x is a non-negative integer no larger than u16::MAX.
                *slot = x as u32;
            }
            Ok(CompoundElement {
                z: out[0],
                a: out[1],
                s: out[2],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d2_density() {
        let gas = GasTarget::from_json_str(r#"{"compound": [[1, 2, 2]], "pressure(Torr)": 300}"#)
            .unwrap();
        // 4 g/mol * 300 Torr / (62363.6 cm3 Torr/(K mol) * 293 K)
        assert!(
            (gas.density_g_cm3() - 6.5672e-5).abs() < 2e-8,
            "{}",
            gas.density_g_cm3()
        );
        assert_eq!(gas.ugly_string(), "2H2");
    }

    #[test]
    fn mixture_fractions() {
        let gas = GasTarget::from_json_str(
            r#"{"components": [[[2, 4, 1]], [[6, 12, 1], [8, 16, 2]]], "volume_fractions": [0.9, 0.1], "pressure(Torr)": 100}"#,
        )
        .unwrap();
        let total: f64 = gas.elements().iter().map(|e| e.mass_fraction).sum();
        assert!((total - 1.0).abs() < 1e-12);
        let expected = (0.9 * 4.0 + 0.1 * 44.0) * 100.0 / (GAS_CONSTANT_CM3_TORR * 293.0);
        assert!((gas.density_g_cm3() - expected).abs() < 1e-15);
        assert_eq!(gas.ugly_string(), "4He1_12C116O2");
    }

    #[test]
    fn bad_gases() {
        assert!(
            GasTarget::from_json_str(r#"{"compound": [[1, 2]], "pressure(Torr)": 300}"#).is_err()
        );
        assert!(GasTarget::from_json_str(r#"{"compound": [[1, 2, 2]]}"#).is_err());
        assert!(
            GasTarget::from_json_str(r#"{"compound": [[1, 2, 2]], "pressure(Torr)": -1}"#).is_err()
        );
        assert!(GasTarget::from_json_str(
            r#"{"compound": [[1, 2, 2]], "pressure(Torr)": 1, "x": 2}"#
        )
        .is_err());
        assert!(
            GasTarget::from_json_str(r#"{"compound": [[3, 7, 1]], "pressure(Torr)": 1}"#).is_err()
        );
        assert!(GasTarget::from_json_str(r#"{"name": "x"}"#).is_err());
        assert!(GasTarget::from_json_str("not json").is_err());
    }
}
