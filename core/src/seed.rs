//! Deterministic seeds: one per (base seed, run, phase), independent of which worker runs the run,
//! of the worker count and of the schedule.

/// SplitMix64 finaliser: a strong 64-bit mix.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of `text`: a stable hash that does not change between builds or platforms.
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The seed of phase `phase_name` on `run` under `base`.
pub fn derive_seed(base: u64, run: u32, phase_name: &str) -> u64 {
    mix64(mix64(base ^ mix64(u64::from(run))) ^ stable_hash(phase_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_by_run_phase_and_base_and_are_stable() {
        let a = derive_seed(1, 1, "Pointcloud");
        assert_eq!(a, derive_seed(1, 1, "Pointcloud"));
        assert_ne!(a, derive_seed(1, 2, "Pointcloud"));
        assert_ne!(a, derive_seed(1, 1, "Cluster"));
        assert_ne!(a, derive_seed(2, 1, "Pointcloud"));
        // Pinned: a change here changes every simulated and analysed output.
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
