//! Charged-particle tracking through the gas: the equations of motion of spec §3.4.1 (Lorentz force
//! plus continuous energy loss, state `[x, y, z, γβx, γβy, γβz]`) integrated with a classic RK4 whose
//! step is adapted to the remaining range and the radius of curvature. The output is a list of
//! straight segments with the energy deposited along each, which the transport turns into electrons.

use spyral_data::physics::constants::{
    BRHO_FACTOR, ELEMENTARY_CHARGE_C, MEV_TO_JOULE, MEV_TO_KG, SPEED_OF_LIGHT_M_S,
};
use spyral_data::physics::{EnergyLossTable, Nucleus};

/// Fields, volume and step control for [`track_particle`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackParams {
    /// Magnetic field along z in T, signed (the simulator passes −`magnetic_field`, the mesh
    /// convention of spec §3.4.1).
    pub bz_tesla: f64,
    /// Electric field along z in V/m, signed (the simulator passes −`electric_field`).
    pub ez_v_per_m: f64,
    /// Largest step (path length) in mm.
    pub max_step_mm: f64,
    /// The particle stops when its remaining range is below this (mm) and deposits what is left.
    pub stop_range_mm: f64,
    /// Tracking stops when z leaves [z_min, z_max] (mm).
    pub z_min_mm: f64,
    /// See `z_min_mm`.
    pub z_max_mm: f64,
    /// Tracking stops when ρ exceeds this (mm).
    pub max_rho_mm: f64,
    /// Safety limit on the number of steps.
    pub max_steps: usize,
}

/// One straight tracking segment and the energy lost along it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Start position (mm).
    pub start_mm: [f64; 3],
    /// End position (mm).
    pub end_mm: [f64; 3],
    /// Time at the start (ns, 0 at the track's start).
    pub t_start_ns: f64,
    /// Time at the end (ns).
    pub t_end_ns: f64,
    /// Energy deposited in the gas along the segment (MeV).
    pub energy_mev: f64,
}

/// Why tracking ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The particle stopped in the gas.
    Stopped,
    /// It left the active length (z < z_min or z > z_max).
    LeftZ,
    /// It left the pad-plane radius.
    LeftRho,
    /// It reached the requested z (the beam at the vertex).
    ReachedStopZ,
    /// The step limit was hit.
    StepLimit,
}

/// A tracked particle.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// The segments, in order.
    pub steps: Vec<Step>,
    /// Why tracking ended.
    pub stop: StopReason,
    /// Final position (mm).
    pub end_mm: [f64; 3],
    /// Final kinetic energy (MeV).
    pub end_ke_mev: f64,
    /// Path length (mm).
    pub path_length_mm: f64,
    /// Flight time (ns).
    pub time_ns: f64,
}

struct Eom<'a> {
    table: &'a EnergyLossTable,
    mass_mev: f64,
    q_over_m: f64,
    loss_per_dedx: f64,
    bz: f64,
    ez: f64,
}

impl Eom<'_> {
    #[inline]
    fn deriv(&self, s: &[f64; 6]) -> [f64; 6] {
        let c = SPEED_OF_LIGHT_M_S;
        let g2 = s[3] * s[3] + s[4] * s[4] + s[5] * s[5];
        if g2.is_nan() || g2 <= 0.0 {
            return [0.0; 6];
        }
        let g = g2.sqrt();
        let gamma = (1.0 + g2).sqrt();
        let beta = g / gamma;
        let u = [s[3] / g, s[4] / g, s[5] / g];
        let v = beta * c;
        let (vx, vy, vz) = (u[0] * v, u[1] * v, u[2] * v);
        let ke = self.mass_mev * g2 / (gamma + 1.0);
        let a_loss = self.table.dedx(ke) * self.loss_per_dedx;
        let fx = self.q_over_m * vy * self.bz;
        let fy = -self.q_over_m * vx * self.bz;
        let fz = self.q_over_m * self.ez;
        [
            vx,
            vy,
            vz,
            (fx - a_loss * u[0]) / c,
            (fy - a_loss * u[1]) / c,
            (fz - a_loss * u[2]) / c,
        ]
    }

    fn rk4(&self, s: &[f64; 6], dt: f64) -> [f64; 6] {
        let add = |a: &[f64; 6], k: &[f64; 6], h: f64| -> [f64; 6] {
            std::array::from_fn(|i| a[i] + h * k[i])
        };
        let k1 = self.deriv(s);
        let k2 = self.deriv(&add(s, &k1, 0.5 * dt));
        let k3 = self.deriv(&add(s, &k2, 0.5 * dt));
        let k4 = self.deriv(&add(s, &k3, dt));
        std::array::from_fn(|i| s[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
    }

    fn kinetic_energy(&self, s: &[f64; 6]) -> f64 {
        let g2 = s[3] * s[3] + s[4] * s[4] + s[5] * s[5];
        self.mass_mev * g2 / ((1.0 + g2).sqrt() + 1.0)
    }
}

/// Tracks `nucleus` with kinetic energy `ke_mev` from `start_mm` along `direction` (normalised here)
/// until it stops, leaves the volume, reaches `stop_at_z_mm` (if given) or hits the step limit.
pub fn track_particle(
    nucleus: &Nucleus,
    table: &EnergyLossTable,
    params: &TrackParams,
    start_mm: [f64; 3],
    direction: [f64; 3],
    ke_mev: f64,
    stop_at_z_mm: Option<f64>,
) -> Track {
    let m_kg = nucleus.mass_mev * MEV_TO_KG;
    let eom = Eom {
        table,
        mass_mev: nucleus.mass_mev,
        q_over_m: f64::from(nucleus.z) * ELEMENTARY_CHARGE_C / m_kg,
        // dE/dx [MeV cm²/g] → deceleration [m/s²]: ×ρ [g/cm³] ×100 [cm/m] ×MeV→J ÷ m.
        loss_per_dedx: table.density_g_cm3() * 100.0 * MEV_TO_JOULE / m_kg,
        bz: params.bz_tesla,
        ez: params.ez_v_per_m,
    };
    let norm = (direction[0].powi(2) + direction[1].powi(2) + direction[2].powi(2)).sqrt();
    let dir = if norm > 0.0 {
        direction.map(|d| d / norm)
    } else {
        [0.0, 0.0, 1.0]
    };
    let ke0 = if ke_mev.is_finite() {
        ke_mev.max(0.0)
    } else {
        0.0
    };
    let gamma0 = 1.0 + ke0 / nucleus.mass_mev;
    let gb0 = (gamma0 * gamma0 - 1.0).max(0.0).sqrt();
    let mut s = [
        start_mm[0] * 1e-3,
        start_mm[1] * 1e-3,
        start_mm[2] * 1e-3,
        gb0 * dir[0],
        gb0 * dir[1],
        gb0 * dir[2],
    ];
    let mut steps = Vec::new();
    let mut t_ns = 0.0;
    let mut path = 0.0;
    let mut ke = ke0;
    let b_abs = params.bz_tesla.abs();
    let stop = loop {
        let pos_mm = [s[0] * 1e3, s[1] * 1e3, s[2] * 1e3];
        if let Some(zs) = stop_at_z_mm {
            if pos_mm[2] >= zs {
                break StopReason::ReachedStopZ;
            }
        }
        let range_mm = table.range_mm(ke);
        if range_mm < params.stop_range_mm || ke <= 0.0 {
            if ke > 0.0 {
                steps.push(Step {
                    start_mm: pos_mm,
                    end_mm: pos_mm,
                    t_start_ns: t_ns,
                    t_end_ns: t_ns,
                    energy_mev: ke,
                });
            }
            ke = 0.0;
            break StopReason::Stopped;
        }
        if steps.len() >= params.max_steps {
            break StopReason::StepLimit;
        }
        let mut ds_mm = params.max_step_mm.min(0.25 * range_mm);
        if b_abs > 0.0 && nucleus.z > 0 {
            let radius_mm =
                nucleus.momentum_mev(ke) / (BRHO_FACTOR * f64::from(nucleus.z)) / b_abs * 1e3;
            ds_mm = ds_mm.min(0.05 * radius_mm);
        }
        let g2 = s[3] * s[3] + s[4] * s[4] + s[5] * s[5];
        let beta = (g2 / (1.0 + g2)).sqrt();
        let v_mm_per_s = beta * SPEED_OF_LIGHT_M_S * 1e3;
        let mut dt = ds_mm / v_mm_per_s;
        let mut reached = false;
        if let Some(zs) = stop_at_z_mm {
            let vz = v_mm_per_s * s[5] / g2.sqrt();
            if vz > 0.0 && pos_mm[2] + vz * dt >= zs {
                dt = (zs - pos_mm[2]) / vz;
                reached = true;
            }
        }
        let next = eom.rk4(&s, dt);
        let mut ke_next = eom.kinetic_energy(&next);
        if !ke_next.is_finite() || ke_next < 0.0 {
            ke_next = 0.0;
        }
        let end_mm = [next[0] * 1e3, next[1] * 1e3, next[2] * 1e3];
        let seg = ((end_mm[0] - pos_mm[0]).powi(2)
            + (end_mm[1] - pos_mm[1]).powi(2)
            + (end_mm[2] - pos_mm[2]).powi(2))
        .sqrt();
        let t_next = t_ns + dt * 1e9;
        // Energy lost to the gas = ΔKE corrected for the work of the electric field (Z·e·E_z·Δz).
        let field_work_mev =
            f64::from(nucleus.z) * params.ez_v_per_m * (end_mm[2] - pos_mm[2]) * 1e-9;
        steps.push(Step {
            start_mm: pos_mm,
            end_mm,
            t_start_ns: t_ns,
            t_end_ns: t_next,
            energy_mev: (ke + field_work_mev - ke_next).max(0.0),
        });
        s = next;
        if reached {
            s[2] = stop_at_z_mm.unwrap_or(s[2] * 1e3) * 1e-3;
        }
        t_ns = t_next;
        path += seg;
        ke = ke_next;
        if reached {
            break StopReason::ReachedStopZ;
        }
        if end_mm[2] < params.z_min_mm || end_mm[2] > params.z_max_mm {
            break StopReason::LeftZ;
        }
        if end_mm[0].hypot(end_mm[1]) > params.max_rho_mm {
            break StopReason::LeftRho;
        }
    };
    Track {
        steps,
        stop,
        end_mm: [s[0] * 1e3, s[1] * 1e3, s[2] * 1e3],
        end_ke_mev: ke,
        path_length_mm: path,
        time_ns: t_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spyral_data::physics::GasTarget;

    fn params() -> TrackParams {
        TrackParams {
            bz_tesla: -2.85,
            ez_v_per_m: -45_000.0,
            max_step_mm: 1.0,
            stop_range_mm: 0.1,
            z_min_mm: -1e9,
            z_max_mm: 1e9,
            max_rho_mm: 1e9,
            max_steps: 1_000_000,
        }
    }

    #[test]
    fn helix_in_near_vacuum_matches_analytic_radius() {
        // 1e-6 Torr: energy loss is negligible, so the track is a helix of radius p·sinθ/(qB).
        let gas = GasTarget::from_json_str(r#"{"compound": [[1, 2, 2]], "pressure(Torr)": 1e-6}"#)
            .unwrap();
        let p = Nucleus::new(1, 1).unwrap();
        let table = EnergyLossTable::new(&p, &gas).unwrap();
        let theta: f64 = 1.0;
        let dir = [theta.sin(), 0.0, theta.cos()];
        let mut prm = params();
        prm.z_max_mm = 300.0;
        prm.ez_v_per_m = 0.0;
        let tr = track_particle(&p, &table, &prm, [0.0; 3], dir, 5.0, None);
        assert_eq!(tr.stop, StopReason::LeftZ);
        let radius = p.brho_tm(5.0) * theta.sin() / 2.85 * 1e3;
        // Counter-clockwise seen from +z with bz < 0: the centre is at +90° from the momentum.
        let centre = [0.0, radius];
        for st in &tr.steps {
            let r = (st.end_mm[0] - centre[0]).hypot(st.end_mm[1] - centre[1]);
            assert!((r - radius).abs() < 1e-3 * radius, "{r} vs {radius}");
        }
        assert!((tr.end_ke_mev - 5.0).abs() < 1e-4);
    }

    #[test]
    fn proton_stops_at_its_range() {
        let gas = GasTarget::from_json_str(r#"{"compound": [[1, 2, 2]], "pressure(Torr)": 300}"#)
            .unwrap();
        let p = Nucleus::new(1, 1).unwrap();
        let table = EnergyLossTable::new(&p, &gas).unwrap();
        let mut prm = params();
        prm.ez_v_per_m = 0.0;
        let tr = track_particle(&p, &table, &prm, [0.0; 3], [0.0, 0.0, 1.0], 2.0, None);
        assert_eq!(tr.stop, StopReason::Stopped);
        let deposited: f64 = tr.steps.iter().map(|s| s.energy_mev).sum();
        assert!((deposited - 2.0).abs() < 1e-9, "{deposited}");
        let range = table.range_mm(2.0);
        assert!(
            (tr.path_length_mm - range).abs() < 0.002 * range + 0.2,
            "{} vs {range}",
            tr.path_length_mm
        );
        // With the drift field (along −z) a proton moving along +z is also slowed by 45 keV/m; the
        // deposited energy is still only what it lost to the gas.
        let tr = track_particle(&p, &table, &params(), [0.0; 3], [0.0, 0.0, 1.0], 2.0, None);
        let deposited: f64 = tr.steps.iter().map(|s| s.energy_mev).sum();
        let field_work = 45_000.0 * tr.end_mm[2] * 1e-9;
        assert!(
            (deposited + field_work - 2.0).abs() < 1e-6,
            "{deposited} {field_work}"
        );
        assert!(tr.path_length_mm < range);
    }
}
