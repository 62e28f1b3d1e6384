//! numpy's default `argsort` (`kind='quicksort'`) of a float64 array as numpy 2.0 to 2.2 run it
//! on x86-64 CPUs with AVX-512 (numpy's `AVX512_SKX` dispatch target, Intel x86-simd-sort's
//! `avx512_argsort`), reproduced lane by lane, equal keys included. Two phases need that order:
//! scipy's `find_peaks` visits peaks in it in its `distance` step
//! ([`crate::signal::peaks`]), and scikit-learn's HDBSCAN merges its minimum-spanning-tree edges
//! in it ([`crate::cluster::hdbscan`]). The sort is not stable, so between equal keys the order
//! decides which peak survives and which cluster keeps the points at a split.
//!
//! Python Spyral 1.1.2 needs numpy < 2.2 (through spyral-utils), so it runs numpy 2.0 or 2.1,
//! whose AVX-512 argsort is the same. Written from the behaviour of that algorithm and checked
//! against numpy 2.1.3: `phases/tests/peak_ties.rs` (random arrays full of ties, up to 2100
//! keys) and `phases/tests/cluster_parity.rs` (arrays from HDBSCAN's spanning trees).
//!
//! - Arrays of up to 256 elements are sorted by a bitonic network on 8-lane (key, index) vectors:
//!   the array is padded with (+inf, max) to 8 x a power of two lanes, each vector is sorted by a
//!   fixed network of lane permutations, then vectors are merged pairwise, in fours, and so on.
//!   Every step is a compare-exchange that never moves equal keys, so the order of ties is decided
//!   by where the network carries them; the network is run here as its list of compare-exchanges.
//! - Longer arrays are partitioned around the fifth smallest of 8 samples (quicksort with
//!   vector partitioning, 4 x 8 elements per step) until a part has at most 256 elements; a part
//!   whose recursion depth exceeds `2 floor(log2 n)` is finished by the C++ standard library's
//!   introsort (libstdc++'s `std::sort`), reproduced too.
//!
//! On x86-64 CPUs without AVX-512 numpy uses a 4-lane AVX2 network whose tie order differs
//! again; that is not reproduced (nor are numpy >= 2.3, which returns already-sorted input
//! unchanged, and non-x86 builds).

const LANES: usize = 8;
/// Largest array sorted by the network alone.
const NETWORK_MAX: usize = 256;
/// Vectors in the largest network.
const MAX_VECTORS: usize = NETWORK_MAX / LANES;
/// Vectors loaded per partitioning step.
const UNROLL: usize = 4;

/// Lane permutations of the vector layers (`lane k meets lane perm[k]`).
const SWAP_1: [usize; 8] = [1, 0, 3, 2, 5, 4, 7, 6];
const SWAP_2: [usize; 8] = [2, 3, 0, 1, 6, 7, 4, 5];
const SWAP_4: [usize; 8] = [4, 5, 6, 7, 0, 1, 2, 3];
const REVERSE_4: [usize; 8] = [3, 2, 1, 0, 7, 6, 5, 4];
const REVERSE: [usize; 8] = [7, 6, 5, 4, 3, 2, 1, 0];
/// The layers sorting one vector: (permutation, lanes keeping the larger key).
const SORT_VECTOR: [([usize; 8], u8); 6] = [
    (SWAP_1, 0xAA),
    (REVERSE_4, 0xCC),
    (SWAP_1, 0xAA),
    (REVERSE, 0xF0),
    (SWAP_2, 0xCC),
    (SWAP_1, 0xAA),
];
/// The layers sorting a bitonic vector.
const MERGE_VECTOR: [([usize; 8], u8); 3] = [(SWAP_4, 0xF0), (SWAP_2, 0xCC), (SWAP_1, 0xAA)];

/// A compare-exchange between flat positions `vector * 8 + lane`: the smaller key goes to
/// the first, and the two swap only if the first key is strictly larger.
///
/// Every step of the vector code is such a compare-exchange: in a layer, lane `k` meets lane
/// `perm[k]`, the lane whose mask bit is clear takes the smaller key (the instruction's
/// `min` returns its second operand on equality) and keeps its own index when the kept key
/// equals its own; between vectors, `min`/`max` lane by lane with the same index rule,
/// against the reversed second vector in the first step of a merge.
type Pair = (u8, u8);

/// The compare-exchanges of the network for `vectors` vectors (1 to 32, a power of two), in
/// order: each vector sorted, then merges of 2, 4, ... vectors.
fn build_network(vectors: usize) -> Vec<Pair> {
    // Every pair has its first position below its second (checked in the tests).
    let at = |v: usize, lane: usize| (v * LANES + lane) as u8;
    let mut pairs = Vec::new();
    let layers = |pairs: &mut Vec<Pair>, v: usize, layers: &[([usize; 8], u8)]| {
        for (perm, max_lanes) in layers {
            for (k, &other) in perm.iter().enumerate() {
                if (max_lanes >> k) & 1 == 0 {
                    pairs.push((at(v, k), at(v, other)));
                }
            }
        }
    };
    for v in 0..vectors {
        layers(&mut pairs, v, &SORT_VECTOR);
    }
    let mut group = 2;
    while group <= vectors {
        for start in (0..vectors).step_by(group) {
            // First half against the reversed second half, mirrored.
            for i in 0..group / 2 {
                let (a, b) = (start + i, start + group - 1 - i);
                for k in 0..LANES {
                    pairs.push((at(a, k), at(b, LANES - 1 - k)));
                }
            }
            // Bitonic cleaning across vectors, then inside each vector.
            let mut span = group / 2;
            while span >= 2 {
                for from in (start..start + group).step_by(span) {
                    for i in 0..span / 2 {
                        for k in 0..LANES {
                            pairs.push((at(from + i, k), at(from + i + span / 2, k)));
                        }
                    }
                }
                span /= 2;
            }
            for v in start..start + group {
                layers(&mut pairs, v, &MERGE_VECTOR);
            }
        }
        group *= 2;
    }
    pairs
}

/// The network for `vectors` vectors, built once.
fn network(vectors: usize) -> &'static [Pair] {
    static NETWORKS: std::sync::OnceLock<Vec<Vec<Pair>>> = std::sync::OnceLock::new();
    let all = NETWORKS.get_or_init(|| {
        (0..=MAX_VECTORS.ilog2())
            .map(|e| build_network(1 << e))
            .collect()
    });
    &all[vectors.ilog2() as usize]
}

/// The network sort of `arg` (at most [`NETWORK_MAX`] indices into `keys`), padded with
/// (+inf, max) to the fewest vectors (a power of two) that hold it.
fn network_sort(keys: &[f64], arg: &mut [usize]) {
    let n = arg.len();
    let mut vectors = MAX_VECTORS;
    while vectors > 1 && n * 2 <= vectors * LANES {
        vectors /= 2;
    }
    let mut key = [f64::INFINITY; NETWORK_MAX];
    let mut index = [usize::MAX; NETWORK_MAX];
    for (pos, &i) in arg.iter().enumerate() {
        key[pos] = keys[i];
        index[pos] = i;
    }
    // In every compare-exchange the smaller key goes to the lower position, so padding
    // (+inf, above every finite key) at the end never moves: pairs reaching past the data
    // are no-ops.
    for &(p, q) in network(vectors) {
        let (p, q) = (usize::from(p), usize::from(q));
        if q >= n {
            continue;
        }
        let (a, b) = (key[p], key[q]);
        // Branch-free (the outcome is data-dependent): keys are finite, so min/max are
        // the compare-exchange; the indices follow through a mask.
        key[p] = a.min(b);
        key[q] = a.max(b);
        let mask = 0usize.wrapping_sub(usize::from(a > b));
        let (ia, ib) = (index[p], index[q]);
        let flip = (ia ^ ib) & mask;
        index[p] = ia ^ flip;
        index[q] = ib ^ flip;
    }
    arg.copy_from_slice(&index[..n]);
}

/// Partitions `arg[left..right]` around `pivot` (keys `>= pivot` to the right), vector by
/// vector as the AVX-512 code does; updates the smallest and largest key seen. Returns the
/// first position of the right part.
fn partition(
    keys: &[f64],
    arg: &mut [usize],
    mut left: usize,
    mut right: usize,
    pivot: f64,
    bounds: &mut (f64, f64),
) -> usize {
    const STEP: usize = UNROLL * LANES;
    fn see(k: f64, bounds: &mut (f64, f64)) {
        bounds.0 = if k < bounds.0 { k } else { bounds.0 };
        bounds.1 = if bounds.1 < k { k } else { bounds.1 };
    }
    // Peel elements one by one until the length is a multiple of the step.
    for _ in 0..(right - left) % STEP {
        let k = keys[arg[left]];
        see(k, bounds);
        if k < pivot {
            left += 1;
        } else {
            right -= 1;
            arg.swap(left, right);
        }
    }
    if left == right {
        return left;
    }
    let load = |arg: &[usize], at: usize| -> [usize; LANES] {
        let mut v = [0; LANES];
        v.copy_from_slice(&arg[at..at + LANES]);
        v
    };
    let first: [[usize; LANES]; UNROLL] = std::array::from_fn(|u| load(arg, left + u * LANES));
    let last: [[usize; LANES]; UNROLL] =
        std::array::from_fn(|u| load(arg, right - (UNROLL - u) * LANES));
    // Stores go to [l_store, ..) for keys below the pivot and to [.., r_end) for the others
    // (the C++ code keeps r_end - LANES, which may wrap around zero).
    let mut l_store = left;
    let mut r_end = right;
    left += STEP;
    right -= STEP;
    // Stores one vector, each group in lane order.
    let store = |arg: &mut [usize],
                 v: &[usize; LANES],
                 l_store: &mut usize,
                 r_end: &mut usize,
                 bounds: &mut (f64, f64)| {
        let high = v.iter().filter(|&&i| keys[i] >= pivot).count();
        let mut lo = *l_store;
        let mut hi = *r_end - high;
        for &i in v {
            see(keys[i], bounds);
            if keys[i] >= pivot {
                arg[hi] = i;
                hi += 1;
            } else {
                arg[lo] = i;
                lo += 1;
            }
        }
        *l_store += LANES - high;
        *r_end -= high;
    };
    while right != left {
        let from = if r_end - right < left - l_store {
            right -= STEP;
            right
        } else {
            left += STEP;
            left - STEP
        };
        let batch: [[usize; LANES]; UNROLL] = std::array::from_fn(|u| load(arg, from + u * LANES));
        for v in &batch {
            store(arg, v, &mut l_store, &mut r_end, bounds);
        }
    }
    for v in first.iter().chain(&last) {
        store(arg, v, &mut l_store, &mut r_end, bounds);
    }
    l_store
}

/// libstdc++'s `std::sort` (introsort: median-of-three quicksort above 16 elements, heapsort
/// past `2 floor(log2 n)` levels, then insertion sort) of `arg` by key.
fn std_sort(keys: &[f64], arg: &mut [usize]) {
    let n = arg.len();
    if n < 2 {
        return;
    }
    introsort_loop(keys, arg, 2 * n.ilog2() as usize);
    if n > 16 {
        insertion_sort(keys, &mut arg[..16]);
        for i in 16..n {
            unguarded_linear_insert(keys, arg, i);
        }
    } else {
        insertion_sort(keys, arg);
    }
}

fn introsort_loop(keys: &[f64], arg: &mut [usize], mut depth: usize) {
    let less = |a: usize, b: usize| keys[a] < keys[b];
    let mut last = arg.len();
    while last > 16 {
        if depth == 0 {
            heap_sort(keys, &mut arg[..last]);
            return;
        }
        depth -= 1;
        // Median of (1, middle, last - 1) moved to 0.
        let (a, b, c) = (1, last / 2, last - 1);
        let median = if less(arg[a], arg[b]) {
            if less(arg[b], arg[c]) {
                b
            } else if less(arg[a], arg[c]) {
                c
            } else {
                a
            }
        } else if less(arg[a], arg[c]) {
            a
        } else if less(arg[b], arg[c]) {
            c
        } else {
            b
        };
        arg.swap(0, median);
        // Unguarded partition of [1, last) around arg[0].
        let pivot = arg[0];
        let (mut f, mut l) = (1, last);
        let cut = loop {
            while less(arg[f], pivot) {
                f += 1;
            }
            l -= 1;
            while less(pivot, arg[l]) {
                l -= 1;
            }
            if f >= l {
                break f;
            }
            arg.swap(f, l);
            f += 1;
        };
        introsort_loop(keys, &mut arg[cut..last], depth);
        last = cut;
    }
}

fn insertion_sort(keys: &[f64], arg: &mut [usize]) {
    for i in 1..arg.len() {
        if keys[arg[i]] < keys[arg[0]] {
            arg[..=i].rotate_right(1);
        } else {
            unguarded_linear_insert(keys, arg, i);
        }
    }
}

fn unguarded_linear_insert(keys: &[f64], arg: &mut [usize], mut i: usize) {
    let value = arg[i];
    while keys[value] < keys[arg[i - 1]] {
        arg[i] = arg[i - 1];
        i -= 1;
    }
    arg[i] = value;
}

fn heap_sort(keys: &[f64], arg: &mut [usize]) {
    let n = arg.len();
    if n >= 2 {
        let mut parent = (n - 2) / 2;
        loop {
            let value = arg[parent];
            adjust_heap(keys, arg, parent, n, value);
            if parent == 0 {
                break;
            }
            parent -= 1;
        }
    }
    let mut end = n;
    while end > 1 {
        end -= 1;
        let value = arg[end];
        arg[end] = arg[0];
        adjust_heap(keys, arg, 0, end, value);
    }
}

fn adjust_heap(keys: &[f64], arg: &mut [usize], mut hole: usize, len: usize, value: usize) {
    let top = hole;
    let mut child = hole;
    while child < (len - 1) / 2 {
        child = 2 * (child + 1);
        if keys[arg[child]] < keys[arg[child - 1]] {
            child -= 1;
        }
        arg[hole] = arg[child];
        hole = child;
    }
    if len % 2 == 0 && child == (len - 2) / 2 {
        child = 2 * (child + 1);
        arg[hole] = arg[child - 1];
        hole = child - 1;
    }
    // Push the value back up.
    while hole > top {
        let parent = (hole - 1) / 2;
        // libstdc++ stops when `!(parent < value)`; the keys are finite here.
        if keys[arg[parent]] >= keys[value] {
            break;
        }
        arg[hole] = arg[parent];
        hole = parent;
    }
    arg[hole] = value;
}

/// Sorts `arg[left..=right]`.
fn sort_range(keys: &[f64], arg: &mut [usize], left: usize, right: usize, depth: usize) {
    if depth == 0 {
        std_sort(keys, &mut arg[left..=right]);
        return;
    }
    if right + 1 - left <= NETWORK_MAX {
        network_sort(keys, &mut arg[left..=right]);
        return;
    }
    let step = (right - left) / 8;
    let mut samples = [0.0; 8];
    for (k, s) in samples.iter_mut().enumerate() {
        *s = keys[arg[left + (k + 1) * step]];
    }
    samples.sort_by(f64::total_cmp);
    let pivot = samples[4];
    let mut bounds = (f64::INFINITY, f64::NEG_INFINITY);
    let split = partition(keys, arg, left, right + 1, pivot, &mut bounds);
    if pivot != bounds.0 {
        sort_range(keys, arg, left, split - 1, depth - 1);
    }
    if pivot != bounds.1 {
        sort_range(keys, arg, split, right, depth - 1);
    }
}

/// `numpy.argsort(keys)` (default kind) as numpy 2.0 to 2.2 compute it on x86-64 CPUs with
/// AVX-512, equal keys included, into `out`. Keys must be finite (peak heights of a trace and
/// HDBSCAN's spanning-tree weights always are); with a non-finite key the order is the stable
/// one (numpy's may differ).
pub fn numpy_argsort(keys: &[f64], out: &mut Vec<usize>) {
    let n = keys.len();
    out.clear();
    out.extend(0..n);
    if n < 2 {
        return;
    }
    if keys.iter().any(|k| !k.is_finite()) {
        out.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
        return;
    }
    let depth = 2 * ((n as f64).log2() as usize);
    sort_range(keys, out, 0, n - 1, depth);
}

/// [`numpy_argsort`] into a new vector.
pub fn numpy_argsort_vec(keys: &[f64]) -> Vec<usize> {
    let mut out = Vec::with_capacity(keys.len());
    numpy_argsort(keys, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_shape() {
        for e in 0..=5 {
            let vectors = 1usize << e;
            let net = build_network(vectors);
            // Lower position first in every pair (so padding at the end never moves).
            assert!(net.iter().all(|&(p, q)| p < q), "{vectors}");
            assert!(net.iter().all(|&(_, q)| usize::from(q) < vectors * 8));
        }
    }

    /// Permutations `numpy.argsort` returned (numpy 2.1.3, AVX-512 CPU).
    #[test]
    fn known_permutations() {
        assert_eq!(numpy_argsort_vec(&[0.0; 16]), (0..16).collect::<Vec<_>>());
        let alternating = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        assert_eq!(
            numpy_argsort_vec(&alternating),
            vec![1, 3, 7, 5, 9, 2, 4, 0, 6, 8]
        );
        assert_eq!(
            numpy_argsort_vec(&[0.0; 300])[..20],
            [
                280, 281, 282, 283, 284, 285, 286, 287, 272, 273, 274, 275, 276, 277, 278, 279,
                264, 265, 266, 267
            ]
        );
        assert_eq!(
            numpy_argsort_vec(&[1., 1., 3., 3., 1., 1.]),
            vec![0, 1, 5, 4, 3, 2]
        );
    }

    /// Whatever the ties, the result is a permutation that sorts the keys (networks, partitions
    /// and the introsort fallback).
    #[test]
    fn sorts() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut lengths: Vec<usize> = (0..300).collect();
        lengths.extend([513, 1000, 2049]);
        let mut out = Vec::new();
        for n in lengths {
            for distinct in [1, 3, 9, 50, 1 << 30] {
                let keys: Vec<f64> = (0..n).map(|_| (next() % distinct) as f64 * 0.5).collect();
                numpy_argsort(&keys, &mut out);
                let mut seen = vec![false; n];
                for &i in &out {
                    assert!(!seen[i], "n {n}: index {i} twice");
                    seen[i] = true;
                }
                assert!(out.windows(2).all(|w| keys[w[0]] <= keys[w[1]]), "n {n}");
            }
        }
        // The introsort fallback on its own.
        let keys: Vec<f64> = (0..500).map(|i| f64::from((i * 7919) % 13)).collect();
        let mut arg: Vec<usize> = (0..keys.len()).collect();
        std_sort(&keys, &mut arg);
        assert!(arg.windows(2).all(|w| keys[w[0]] <= keys[w[1]]));
    }

    #[test]
    fn non_finite_keys_sort_stably() {
        assert_eq!(
            numpy_argsort_vec(&[2.0, f64::INFINITY, 1.0, 2.0]),
            vec![2, 0, 3, 1]
        );
    }
}
