//! Deterministic random numbers for the simulator: per-event `Pcg64` streams derived from
//! (run seed, event id), and the few distributions the simulator needs (uniform, normal via a
//! 256-layer ziggurat, Poisson).

use std::sync::OnceLock;

use rand::RngCore;
use rand_pcg::Pcg64;

/// Ziggurat tables for the standard normal (Marsaglia & Tsang, J. Stat. Softw. 5(8), 2000): 256 layers
/// of equal area `V` under exp(−x²/2), the base layer including the tail beyond `R`.
struct Ziggurat {
    /// Layer edges x[0] (= V/f(R), the base strip) ≥ x[1] = R > … > x[256] = 0.
    x: [f64; 257],
    /// f(x[i]) = exp(−x[i]²/2).
    f: [f64; 257],
}

const ZIG_R: f64 = 3.654_152_885_361_009;
const ZIG_V: f64 = 4.928_673_233_99e-3;

fn ziggurat() -> &'static Ziggurat {
    static TABLE: OnceLock<Ziggurat> = OnceLock::new();
    TABLE.get_or_init(|| {
        let f = |x: f64| (-0.5 * x * x).exp();
        let mut x = [0.0; 257];
        x[0] = ZIG_V / f(ZIG_R);
        x[1] = ZIG_R;
        for i in 2..256 {
            let arg = ZIG_V / x[i - 1] + f(x[i - 1]);
            x[i] = if arg < 1.0 {
                (-2.0 * arg.ln()).sqrt()
            } else {
                0.0
            };
        }
        x[256] = 0.0;
        let mut fx = [0.0; 257];
        for i in 0..257 {
            fx[i] = f(x[i]);
        }
        Ziggurat { x, f: fx }
    })
}

/// SplitMix64 finaliser: a bijective 64-bit mixer.
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A 64-bit key for (seed, purpose, index).
pub(crate) fn derive_key(seed: u64, purpose: u64, index: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ purpose) ^ index)
}

/// Random source of one event (or one per-channel property): a Pcg64 plus a cached normal deviate.
pub(crate) struct SimRng {
    rng: Pcg64,
    zig: &'static Ziggurat,
}

impl SimRng {
    /// A stream determined by (seed, purpose, index).
    pub(crate) fn new(seed: u64, purpose: u64, index: u64) -> Self {
        let k = derive_key(seed, purpose, index);
        let a = splitmix64(k ^ 0x1);
        let b = splitmix64(k ^ 0x2);
        let c = splitmix64(k ^ 0x3);
        let d = splitmix64(k ^ 0x4);
        let state = (u128::from(a) << 64) | u128::from(b);
        let stream = (u128::from(c) << 64) | u128::from(d);
        Self {
            rng: Pcg64::new(state, stream),
            zig: ziggurat(),
        }
    }

    /// Uniform in [0, 1).
    #[inline]
    pub(crate) fn uniform(&mut self) -> f64 {
        // 53 random bits -> [0, 1).
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    #[inline]
    pub(crate) fn uniform_in(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal deviate (ziggurat).
    #[inline]
    pub(crate) fn normal(&mut self) -> f64 {
        let z = self.zig;
        loop {
            let bits = self.rng.next_u64();
            let i = (bits & 0xFF) as usize;
            // Signed uniform in (−1, 1) from the top 53 bits.
            let u = ((bits >> 11) as f64 * (1.0 / (1u64 << 52) as f64)) - 1.0;
            let x = u * z.x[i];
            if x.abs() < z.x[i + 1] {
                return x;
            }
            if i == 0 {
                // Tail beyond R (Marsaglia's method).
                loop {
                    let a = -(1.0 - self.uniform()).ln() / ZIG_R;
                    let b = -(1.0 - self.uniform()).ln();
                    if 2.0 * b >= a * a {
                        return if u < 0.0 { -(ZIG_R + a) } else { ZIG_R + a };
                    }
                }
            }
            let y = z.f[i + 1] + self.uniform() * (z.f[i] - z.f[i + 1]);
            if y < (-0.5 * x * x).exp() {
                return x;
            }
        }
    }

    /// Poisson deviate (Knuth's multiplication method; fine for the small means used here).
    pub(crate) fn poisson(&mut self, mean: f64) -> u32 {
        if mean.is_nan() || mean <= 0.0 {
            return 0;
        }
        if mean > 60.0 {
            let x = mean + mean.sqrt() * self.normal();
            // Clamped to u32's range before the cast.
            return x.round().clamp(0.0, f64::from(u32::MAX)) as u32;
        }
        let limit = (-mean).exp();
        let mut k = 0u32;
        let mut p = self.uniform();
        while p > limit {
            k += 1;
            p *= self.uniform();
        }
        k
    }

    /// Uniform integer in 0..n (n > 0).
    #[inline]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        // The product is < n, so the cast back is exact enough and in range.
        ((self.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_moments() {
        let mut r = SimRng::new(7, 0, 0);
        let n = 200_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let x = r.normal();
            s += x;
            s2 += x * x;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
            "{mean} {var}"
        );
    }

    #[test]
    fn normal_tails() {
        let mut r = SimRng::new(9, 0, 0);
        let n = 1_000_000;
        let beyond2 = (0..n).filter(|_| r.normal().abs() > 2.0).count() as f64 / n as f64;
        let beyond3 = (0..n).filter(|_| r.normal().abs() > 3.0).count() as f64 / n as f64;
        let beyond4 = (0..n).filter(|_| r.normal().abs() > 4.0).count() as f64 / n as f64;
        assert!((beyond2 - 0.045_50).abs() < 0.001, "{beyond2}");
        assert!((beyond3 - 0.002_70).abs() < 0.000_2, "{beyond3}");
        assert!((beyond4 - 6.3e-5).abs() < 3e-5, "{beyond4}");
        let zig = ziggurat();
        assert!(zig.x[255] > 0.0 && zig.x[255] < 0.3, "{}", zig.x[255]);
    }

    #[test]
    fn poisson_mean() {
        let mut r = SimRng::new(3, 1, 2);
        let n = 100_000;
        let total: u64 = (0..n).map(|_| u64::from(r.poisson(3.0))).sum();
        assert!((total as f64 / n as f64 - 3.0).abs() < 0.03);
    }

    #[test]
    fn streams_differ() {
        let mut a = SimRng::new(1, 0, 0);
        let mut b = SimRng::new(1, 0, 1);
        assert_ne!(a.uniform(), b.uniform());
    }
}
