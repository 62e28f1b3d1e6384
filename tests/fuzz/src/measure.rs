//! Process measurements for the harness (Linux): the peak resident set size (`VmHWM`, which the
//! worker resets before every case through `/proc/self/clear_refs`), and a cap on the address
//! space so that an allocation driven by a hostile header fails at once instead of swapping the
//! machine.

use std::io;

/// Resets the peak resident set size of this process to its current size. Returns whether the
/// kernel accepted it (Linux >= 4.0).
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `/proc/self/status` field in KiB (`VmHWM`, `VmRSS`).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The resident set size now, in KiB.
pub fn resident_kib() -> Option<u64> {
    status_kib("VmRSS")
}

/// The peak resident set size since the last [`reset_peak`], in KiB.
pub fn peak_kib() -> Option<u64> {
    status_kib("VmHWM")
}

/// Caps the address space of this process at `bytes` (soft limit; the hard limit is kept).
pub fn limit_address_space(bytes: u64) -> io::Result<()> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let old = getrlimit(Resource::As);
    let current = match old.maximum {
        Some(max) => bytes.min(max),
        None => bytes,
    };
    setrlimit(
        Resource::As,
        Rlimit {
            current: Some(current),
            maximum: old.maximum,
        },
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_is_measured_and_reset() {
        assert!(reset_peak());
        let before = peak_kib().unwrap();
        let big = vec![1u8; 64 << 20];
        let during = peak_kib().unwrap();
        assert!(during >= before + 60 * 1024, "{before} -> {during}");
        drop(big);
        assert!(reset_peak());
        assert!(peak_kib().unwrap() < during);
    }
}
