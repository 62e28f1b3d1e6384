//! Physical constants (CODATA 2018) and the conventions shared by the physics and simulator code.

/// Atomic mass unit in MeV/c².
pub const AMU_MEV: f64 = 931.494_102_42;
/// Electron mass in MeV/c².
pub const ELECTRON_MASS_MEV: f64 = 0.510_998_95;
/// Electron mass in u.
pub const ELECTRON_MASS_U: f64 = ELECTRON_MASS_MEV / AMU_MEV;
/// Speed of light in m/s.
pub const SPEED_OF_LIGHT_M_S: f64 = 299_792_458.0;
/// Elementary charge in C.
pub const ELEMENTARY_CHARGE_C: f64 = 1.602_176_634e-19;
/// One MeV in J.
pub const MEV_TO_JOULE: f64 = 1.602_176_634e-13;
/// Mass of one MeV/c² in kg.
pub const MEV_TO_KG: f64 = MEV_TO_JOULE / (SPEED_OF_LIGHT_M_S * SPEED_OF_LIGHT_M_S);
/// Fine-structure constant.
pub const FINE_STRUCTURE: f64 = 7.297_352_569_3e-3;
/// Bethe constant K = 4π N_A r_e² m_e c² in MeV cm²/mol.
pub const BETHE_K: f64 = 0.307_075;
/// Molar gas constant in cm³·Torr/(K·mol) (8.314462618 J/(K mol) / 133.322368 Pa/Torr).
pub const GAS_CONSTANT_CM3_TORR: f64 = 62_363.598;
/// Gas temperature assumed by Spyral's gas targets, in K.
pub const ROOM_TEMPERATURE_K: f64 = 293.0;
/// p [MeV/c] = `BRHO_FACTOR` · Z · Bρ [T·m].
pub const BRHO_FACTOR: f64 = 299.792_458;
