//! Reaction kinematics at the vertex: relativistic two-body kinematics for a beam moving along +z, and
//! direction helpers.

use spyral_data::physics::Nucleus;

/// An emitted particle: species (with its excited mass), kinetic energy and unit direction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Emitted {
    pub nucleus: Nucleus,
    pub ke_mev: f64,
    pub direction: [f64; 3],
}

/// Unit vector for polar θ (from +z) and azimuth φ.
pub(crate) fn direction(polar: f64, azimuth: f64) -> [f64; 3] {
    let (st, ct) = polar.sin_cos();
    let (sp, cp) = azimuth.sin_cos();
    [st * cp, st * sp, ct]
}

/// Polar angle (from +z) and azimuth in [0, 2π) of a direction.
pub(crate) fn angles(dir: [f64; 3]) -> (f64, f64) {
    let n = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]).sqrt();
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let polar = (dir[2] / n).clamp(-1.0, 1.0).acos();
    let mut azimuth = dir[1].atan2(dir[0]);
    if azimuth < 0.0 {
        azimuth += std::f64::consts::TAU;
    }
    (polar, azimuth)
}

/// Two-body reaction a + b → c + d with b at rest and a moving along +z with kinetic energy `beam_ke`.
/// `cos_cm` is cos θ* of c in the centre-of-mass frame and `azimuth` its azimuth (d goes opposite).
/// Returns None below threshold.
pub(crate) fn two_body(
    beam: &Nucleus,
    target: &Nucleus,
    ejectile: &Nucleus,
    residual: &Nucleus,
    beam_ke: f64,
    cos_cm: f64,
    azimuth: f64,
) -> Option<(Emitted, Emitted)> {
    let (ma, mb, mc, md) = (
        beam.mass_mev,
        target.mass_mev,
        ejectile.mass_mev,
        residual.mass_mev,
    );
    let ea = beam_ke + ma;
    let pa = (beam_ke * (beam_ke + 2.0 * ma)).sqrt();
    let s = ma * ma + mb * mb + 2.0 * mb * ea;
    let sqrt_s = s.sqrt();
    if sqrt_s.is_nan() || sqrt_s <= mc + md {
        return None;
    }
    let p_star = ((s - (mc + md).powi(2)) * (s - (mc - md).powi(2)))
        .max(0.0)
        .sqrt()
        / (2.0 * sqrt_s);
    let ec_star = (s + mc * mc - md * md) / (2.0 * sqrt_s);
    let ed_star = (s + md * md - mc * mc) / (2.0 * sqrt_s);
    let beta = pa / (ea + mb);
    let gamma = (ea + mb) / sqrt_s;
    let cos_cm = cos_cm.clamp(-1.0, 1.0);
    let sin_cm = (1.0 - cos_cm * cos_cm).sqrt();
    let pt = p_star * sin_cm;

    let pz_c = gamma * (p_star * cos_cm + beta * ec_star);
    let e_c = gamma * (ec_star + beta * p_star * cos_cm);
    let pz_d = gamma * (-p_star * cos_cm + beta * ed_star);
    let e_d = gamma * (ed_star - beta * p_star * cos_cm);

    let (sp, cp) = azimuth.sin_cos();
    let unit = |px: f64, py: f64, pz: f64| -> [f64; 3] {
        let n = (px * px + py * py + pz * pz).sqrt();
        if n > 0.0 {
            [px / n, py / n, pz / n]
        } else {
            [0.0, 0.0, 1.0]
        }
    };
    let c = Emitted {
        nucleus: *ejectile,
        ke_mev: (e_c - mc).max(0.0),
        direction: unit(pt * cp, pt * sp, pz_c),
    };
    let d = Emitted {
        nucleus: *residual,
        ke_mev: (e_d - md).max(0.0),
        direction: unit(-pt * cp, -pt * sp, pz_d),
    };
    Some((c, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elastic_energy_and_momentum_conservation() {
        let c16 = Nucleus::new(6, 16).unwrap();
        let d = Nucleus::new(1, 2).unwrap();
        let t = 184.131;
        for cos in [-1.0, -0.3, 0.0, 0.5, 0.99] {
            let (ej, res) = two_body(&c16, &d, &d, &c16, t, cos, 0.7).unwrap();
            assert!((ej.ke_mev + res.ke_mev - t).abs() < 1e-9);
            let p = |e: &Emitted| {
                let m = e.nucleus.momentum_mev(e.ke_mev);
                [m * e.direction[0], m * e.direction[1], m * e.direction[2]]
            };
            let (a, b) = (p(&ej), p(&res));
            let pa = c16.momentum_mev(t);
            assert!((a[0] + b[0]).abs() < 1e-7 && (a[1] + b[1]).abs() < 1e-7);
            assert!((a[2] + b[2] - pa).abs() < 1e-7);
        }
        // θ* is measured from +z: a deuteron emitted forward in the CM gets the maximum recoil energy,
        // about 4·m1·m2/(m1+m2)²·T (72.7 MeV non-relativistically); one emitted backward is left at rest.
        let (ej, _) = two_body(&c16, &d, &d, &c16, t, 1.0, 0.0).unwrap();
        assert!((ej.ke_mev - 73.36).abs() < 0.05, "{}", ej.ke_mev);
        let (ej, _) = two_body(&c16, &d, &d, &c16, t, -1.0, 0.0).unwrap();
        assert!(ej.ke_mev < 1e-6, "{}", ej.ke_mev);
    }

    #[test]
    fn angles_round_trip() {
        let d = direction(0.8, 5.0);
        let (p, a) = angles(d);
        assert!((p - 0.8).abs() < 1e-12 && (a - 5.0).abs() < 1e-12);
    }
}
