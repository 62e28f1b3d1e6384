use std::time::Instant;
use spyral_phases::signal::{BaselineRemover, FindPeaksParams, PeakFinder, Interval};
fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/signal/");
    let raw: Vec<i16> = std::fs::read(format!("{dir}get_raw.bin")).unwrap().chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    let rows: Vec<&[i16]> = raw.chunks_exact(512).collect();
    let mut r = BaselineRemover::new(512, 20.0).unwrap();
    let mut traces = vec![vec![0i32; 512]; rows.len()];
    for (row, o) in rows.iter().zip(traces.iter_mut()) { r.remove(row, o).unwrap(); }
    let n = rows.len() as f64;
    let time = |name: &str, f: &mut dyn FnMut() -> usize| {
        let mut best = f64::INFINITY; let mut s = 0;
        for _ in 0..300 { let t = Instant::now(); s += f(); best = best.min(t.elapsed().as_nanos() as f64 / n); }
        println!("{name:>24}: {best:7.0} ns/trace ({s})");
    };
    let mut f = PeakFinder::new();
    let p0 = FindPeaksParams { distance: None, prominence: Some(Interval::at_least(1e12)), width: None, rel_height: 0.95 };
    let p1 = FindPeaksParams { distance: Some(50.0), prominence: Some(Interval::at_least(1e12)), width: None, rel_height: 0.95 };
    let only_find = std::env::args().nth(1).is_some_and(|a| a == "x");
    if std::env::args().nth(1).is_some_and(|a| a == "b") {
        let mut o = vec![0i32; 512];
        time("baseline", &mut || { for row in &rows { r.remove(row, &mut o).unwrap(); } 0 });
        return;
    }
    if !only_find { time("maxima (+153 left walks)", &mut || { let mut c = 0; for t in &traces { c += f.find(t, &p0).unwrap().len(); } c });
    time("maxima+dist+leftwalk", &mut || { let mut c = 0; for t in &traces { c += f.find(t, &p1).unwrap().len(); } c }); }
    let p = FindPeaksParams::spyral_get(50.0, 20.0, 50.0);
    time("find (get)", &mut || { let mut c = 0; for t in &traces { c += f.find(t, &p).unwrap().len(); } c });
    if only_find { return; }
    let mut o = vec![0i32; 512];
    time("baseline", &mut || { for row in &rows { r.remove(row, &mut o).unwrap(); } 0 });
    let mut o2 = vec![0f64; 512];
    time("baseline f64", &mut || { for row in &rows { r.baseline(row, &mut o2).unwrap(); } 0 });
    use rustfft::{FftPlanner, num_complex::Complex};
    let mut pl = FftPlanner::<f64>::new(); let fw = pl.plan_fft_forward(256);
    let mut buf = vec![Complex::new(1.0, 0.5); 256]; let mut sc = vec![Complex::new(0.0,0.0); fw.get_inplace_scratch_len()];
    time("one fft256", &mut || { for _ in &rows { fw.process_with_scratch(&mut buf, &mut sc); } 0 });
}
