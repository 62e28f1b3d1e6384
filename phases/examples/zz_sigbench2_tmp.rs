const BLOCK: usize = 8;
const KEY_INDEX_BITS: u32 = 12;
static SET_BITS: [[u8; 8]; 256] = set_bits_table();
const fn set_bits_table() -> [[u8; 8]; 256] {
    let mut table = [[0u8; 8]; 256];
    let mut mask = 0;
    while mask < 256 {
        let mut count = 0;
        let mut bit = 0;
        while bit < 8 {
            if mask & (1 << bit) != 0 {
                table[mask][count] = bit as u8;
                count += 1;
            }
            bit += 1;
        }
        mask += 1;
    }
    table
}
fn local_maxima_with(
    x: &[f64],
    flags: &mut Vec<u8>,
    plateaus: &mut Vec<usize>,
    out: &mut Vec<usize>,
) {
    out.clear();
    plateaus.clear();
    let n = x.len();
    if n < 3 {
        return;
    }
    let i_max = n - 1;
    // Per sample (vectorizable): bit 0 = a rise in and a drop out (a one-sample maximum),
    // bit 1 = a rise in and an equal sample next (the start of a plateau).
    flags.clear();
    flags.resize(n.div_ceil(8) * 8, 0);
    for (((f, &a), &b), &c) in flags[1..i_max]
        .iter_mut()
        .zip(&x[..i_max - 1])
        .zip(&x[1..i_max])
        .zip(&x[2..])
    {
        let rise = a < b;
        *f = u8::from(rise & (c < b)) | (u8::from(rise & (c == b)) << 1);
    }
    // Branch-free compaction, eight flags at a time: gather one bit of the eight bytes into an
    // 8-bit mask and copy that mask's set-bit positions.
    const LOW_BITS: u64 = 0x0101_0101_0101_0101;
    const GATHER: u64 = 0x0102_0408_1020_4080;
    out.resize(flags.len(), 0);
    plateaus.resize(flags.len(), 0);
    let mut m = 0;
    let mut q = 0;
    for (g, chunk) in flags.chunks_exact(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(bytes);
        let base = g * 8;
        // m, q <= base, so m + 8 and q + 8 <= flags.len().
        let singles = ((word & LOW_BITS).wrapping_mul(GATHER) >> 56) as usize;
        for (dst, &bit) in out[m..m + 8].iter_mut().zip(&SET_BITS[singles]) {
            *dst = base + usize::from(bit);
        }
        m += singles.count_ones() as usize;
        let starts = (((word >> 1) & LOW_BITS).wrapping_mul(GATHER) >> 56) as usize;
        for (dst, &bit) in plateaus[q..q + 8].iter_mut().zip(&SET_BITS[starts]) {
            *dst = base + usize::from(bit);
        }
        q += starts.count_ones() as usize;
    }
    out.truncate(m);
    plateaus.truncate(q);
    if q == 0 {
        return;
    }
    // Plateaus: keep the midpoint (rounded down) of the runs that end with a drop.
    let mut kept = 0;
    for r in 0..q {
        let i = plateaus[r];
        let c = x[i];
        let mut ahead = i + 1;
        while ahead < i_max && x[ahead] == c {
            ahead += 1;
        }
        if x[ahead] < c {
            plateaus[kept] = (i + ahead - 1) / 2;
            kept += 1;
        }
    }
    plateaus.truncate(kept);
    // Merge the two sorted lists, from the back, in place.
    let singles = out.len();
    out.resize(singles + plateaus.len(), 0);
    let (mut a, mut b) = (singles, plateaus.len());
    let mut w = out.len();
    while b > 0 {
        w -= 1;
        if a > 0 && out[a - 1] > plateaus[b - 1] {
            a -= 1;
            out[w] = out[a];
        } else {
            b -= 1;
            out[w] = plateaus[b];
        }
    }
}
fn argmax_key(keys: &[i64], block_max: &[i64], lo: usize, hi: usize) -> usize {
    let first_block = lo.div_ceil(BLOCK);
    let end_block = hi / BLOCK;
    let best = if end_block <= first_block + 1 {
        keys[lo..hi].iter().fold(i64::MIN, |m, &v| m.max(v))
    } else {
        let head = keys[lo..first_block * BLOCK]
            .iter()
            .fold(i64::MIN, |m, &v| m.max(v));
        let body = block_max[first_block..end_block]
            .iter()
            .fold(head, |m, &v| m.max(v));
        keys[end_block * BLOCK..hi]
            .iter()
            .fold(body, |m, &v| m.max(v))
    };
    // The low bits of a key are its candidate number.
    (best & ((1 << KEY_INDEX_BITS) - 1)) as usize
}
fn split_select(
    keys: &[i64],
    block_max: &[i64],
    peaks: &[usize],
    d: usize,
    keep: &mut [bool],
    ranges: &mut Vec<(usize, usize)>,
) {
    ranges.clear();
    ranges.push((0, peaks.len()));
    while let Some((lo, hi)) = ranges.pop() {
        if lo >= hi {
            continue;
        }
        let top = argmax_key(keys, block_max, lo, hi);
        keep[top] = true;
        let pos = peaks[top];
        let mut left = top;
        while left > lo && pos - peaks[left - 1] < d {
            left -= 1;
        }
        let mut right = top + 1;
        while right < hi && peaks[right] - pos < d {
            right += 1;
        }
        ranges.push((lo, left));
        ranges.push((right, hi));
    }
}
fn any_above(block: &[f64; BLOCK], top: f64) -> bool {
    block.iter().fold(false, |acc, &v| acc | !(v <= top))
}
fn contains(block: &[f64; BLOCK], value: f64) -> bool {
    block.iter().fold(false, |acc, &v| acc | (v == value))
}
fn block_at(x: &[f64], start: usize) -> Option<&[f64; BLOCK]> {
    x.get(start..start + BLOCK)
        .and_then(|b| <&[f64; BLOCK]>::try_from(b).ok())
}
fn lane_min(acc: &mut [f64; BLOCK], block: &[f64; BLOCK]) {
    for (a, &v) in acc.iter_mut().zip(block) {
        if v < *a {
            *a = v;
        }
    }
}
fn reduce_min(acc: &[f64; BLOCK]) -> f64 {
    acc.iter().fold(acc[0], |m, &v| if v < m { v } else { m })
}
fn walk_left(x: &[f64], peak: usize, top: f64) -> (f64, usize) {
    // Whole blocks ending at the peak while none of their samples stops the walk.
    let mut acc = [top; BLOCK];
    let mut lo = peak + 1;
    while let Some(block) = lo.checked_sub(BLOCK).and_then(|s| block_at(x, s)) {
        if any_above(block, top) {
            break;
        }
        lane_min(&mut acc, block);
        lo -= BLOCK;
    }
    let mut min = reduce_min(&acc);
    while lo > 0 {
        let v = x[lo - 1];
        if !(v <= top) {
            break;
        }
        if v < min {
            min = v;
        }
        lo -= 1;
    }
    if !(min < top) {
        return (top, peak);
    }
    // Rightmost occurrence of the minimum in [lo, peak], block by block from the peak.
    let region = &x[lo..=peak];
    let mut end = region.len();
    while end > BLOCK {
        match block_at(region, end - BLOCK) {
            Some(block) if !contains(block, min) => end -= BLOCK,
            _ => break,
        }
    }
    let j = region[..end].iter().rposition(|&v| v == min).unwrap_or(0);
    (min, lo + j)
}
fn walk_right(x: &[f64], peak: usize, top: f64) -> (f64, usize) {
    let n = x.len();
    let mut acc = [top; BLOCK];
    let mut hi = peak;
    while let Some(block) = block_at(x, hi) {
        if any_above(block, top) {
            break;
        }
        lane_min(&mut acc, block);
        hi += BLOCK;
    }
    let mut min = reduce_min(&acc);
    while hi < n {
        let v = x[hi];
        if !(v <= top) {
            break;
        }
        if v < min {
            min = v;
        }
        hi += 1;
    }
    if !(min < top) {
        return (top, peak);
    }
    let region = &x[peak..hi];
    let mut start = 0;
    while start + BLOCK < region.len() {
        match block_at(region, start) {
            Some(block) if !contains(block, min) => start += BLOCK,
            _ => break,
        }
    }
    let j = region[start..]
        .iter()
        .position(|&v| v == min)
        .map_or(0, |j| start + j);
    (min, peak + j)
}

use std::time::Instant;
fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/signal/");
    let raw: Vec<i16> = std::fs::read(format!("{dir}get_out.bin")).unwrap().chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    let xs: Vec<Vec<f64>> = raw.chunks_exact(512).map(|r| r.iter().map(|&v| v as f64).collect()).collect();
    let n = xs.len() as f64;
    let time = |name: &str, f: &mut dyn FnMut() -> usize| {
        let mut best = f64::INFINITY; let mut s = 0;
        for _ in 0..300 { let t = Instant::now(); s += f(); best = best.min(t.elapsed().as_nanos() as f64 / n); }
        println!("{name:>24}: {best:7.0} ns/trace ({s})");
    };
    let (mut flags, mut plat, mut out) = (Vec::new(), Vec::new(), Vec::new());
    time("local maxima", &mut || { let mut c = 0; for x in &xs { local_maxima_with(x, &mut flags, &mut plat, &mut out); c += out.len(); } c });
    time("v1 scipy loop", &mut || { let mut c = 0; for x in &xs { v1(x, &mut out); c += out.len(); } c });
    time("v2 branchfree push", &mut || { let mut c = 0; for x in &xs { v2(x, &mut out); c += out.len(); } c });
    time("flags only", &mut || { let mut c = 0; for x in &xs { flags_only(x, &mut flags); c += flags[100] as usize; } c });
    let maxima: Vec<Vec<usize>> = xs.iter().map(|x| { local_maxima_with(x, &mut flags, &mut plat, &mut out); out.clone() }).collect();
    let (mut heights, mut keys, mut bm, mut keep, mut ranges): (Vec<f64>, Vec<i64>, Vec<i64>, Vec<bool>, Vec<(usize,usize)>) = Default::default();
    let mut surv: Vec<Vec<usize>> = vec![Vec::new(); xs.len()];
    time("distance", &mut || { let mut c = 0; for ((x, m), sv) in xs.iter().zip(&maxima).zip(surv.iter_mut()) {
        heights.clear(); heights.extend(m.iter().map(|&i| x[i]));
        let integral = heights.iter().all(|&h| h.abs() < 1e15 && (h as i64) as f64 == h);
        keys.clear(); keys.extend(heights.iter().enumerate().map(|(k, &h)| ((h as i64) << KEY_INDEX_BITS) | k as i64));
        bm.clear(); bm.extend(keys.chunks(BLOCK).map(|c| c.iter().fold(i64::MIN, |m, &v| m.max(v))));
        keep.clear(); keep.resize(m.len(), false);
        if integral { split_select(&keys, &bm, m, 50, &mut keep, &mut ranges); }
        sv.clear(); sv.extend(m.iter().zip(&keep).filter(|(_, &k)| k).map(|(&i, _)| i)); c += sv.len(); } c });
    time("distance prep only", &mut || { let mut c = 0; for (x, m) in xs.iter().zip(&maxima) {
        heights.clear(); heights.extend(m.iter().map(|&i| x[i]));
        let integral = heights.iter().all(|&h| h.abs() < 1e15 && (h as i64) as f64 == h);
        keys.clear(); keys.extend(heights.iter().enumerate().map(|(k, &h)| ((h as i64) << KEY_INDEX_BITS) | k as i64));
        bm.clear(); bm.extend(keys.chunks(BLOCK).map(|c| c.iter().fold(i64::MIN, |m, &v| m.max(v))));
        keep.clear(); keep.resize(m.len(), false); c += integral as usize + bm.len(); } c });
    time("left walks", &mut || { let mut c = 0; for (x, sv) in xs.iter().zip(&surv) { for &p in sv { c += walk_left(x, p, x[p]).1; } } c });
    time("right walks", &mut || { let mut c = 0; for (x, sv) in xs.iter().zip(&surv) { for &p in sv { c += walk_right(x, p, x[p]).1; } } c });
    let xi: Vec<Vec<i32>> = raw.chunks_exact(512).map(|r| r.iter().map(|&v| v as i32).collect()).collect();
    let mut buf: Vec<f64> = Vec::new();
    time("convert", &mut || { let mut c = 0; for x in &xi { buf.clear(); buf.extend(x.iter().map(|&v| v as f64)); c += buf.len(); } c });
}

fn v1(x: &[f64], out: &mut Vec<usize>) {
    out.clear();
    let n = x.len();
    let i_max = n - 1;
    let mut i = 1;
    while i < i_max {
        if x[i - 1] < x[i] {
            let mut ahead = i + 1;
            while ahead < i_max && x[ahead] == x[i] { ahead += 1; }
            if x[ahead] < x[i] { out.push((i + ahead - 1) / 2); i = ahead; }
        }
        i += 1;
    }
}
fn v2(x: &[f64], out: &mut Vec<usize>) {
    out.clear();
    let n = x.len();
    let i_max = n - 1;
    out.resize(n, 0);
    let mut m = 0;
    let mut i = 1;
    while i < i_max {
        let c = x[i];
        let next = x[i + 1];
        let rise = x[i - 1] < c;
        if rise & (next == c) {
            let mut ahead = i + 1;
            while ahead < i_max && x[ahead] == c { ahead += 1; }
            if x[ahead] < c { out[m] = (i + ahead - 1) / 2; m += 1; }
            i = ahead;
            continue;
        }
        out[m] = i;
        m += usize::from(rise & (next < c));
        i += 1;
    }
    out.truncate(m);
}
fn flags_only(x: &[f64], flags: &mut Vec<u8>) {
    let n = x.len();
    let i_max = n - 1;
    flags.clear();
    flags.resize(n.div_ceil(8) * 8, 0);
    for (((f, &a), &b), &c) in flags[1..i_max].iter_mut().zip(&x[..i_max - 1]).zip(&x[1..i_max]).zip(&x[2..]) {
        let rise = a < b;
        *f = u8::from(rise & (c < b)) | (u8::from(rise & (c == b)) << 1);
    }
}
