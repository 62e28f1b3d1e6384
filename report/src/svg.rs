//! Hand-written SVG plots: a frame with its data-to-pixel mapping, axes with round ticks, a
//! 2D histogram on a log colour scale (one path per colour level, equal neighbours merged),
//! points, 1D step histograms, horizontal bars and a worker timeline.
//!
//! Hand-written rather than a plotting crate: the page's gate editor needs the exact
//! data-to-pixel mapping of the PID plot (it is [`Frame`], embedded in the page), the output
//! is a few kB per plot, and no dependency is added.

use std::fmt::Write as _;

/// Colour levels of the 2D histograms.
pub const LEVELS: usize = 32;

/// Viridis, sampled at nine stops.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (0x44, 0x01, 0x54),
    (0x47, 0x2d, 0x7b),
    (0x3b, 0x52, 0x8b),
    (0x2c, 0x72, 0x8e),
    (0x21, 0x91, 0x8c),
    (0x28, 0xae, 0x80),
    (0x5e, 0xc9, 0x62),
    (0xad, 0xdc, 0x30),
    (0xfd, 0xe7, 0x25),
];

/// Distinct colours for categories (phases, gates, series).
pub const CATEGORY: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// The colour of level `i` of [`LEVELS`] (viridis).
pub fn level_colour(i: usize) -> String {
    let t = i as f64 / (LEVELS - 1) as f64 * (VIRIDIS.len() - 1) as f64;
    let k = (t.floor() as usize).min(VIRIDIS.len() - 2);
    let f = t - k as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (VIRIDIS[k], VIRIDIS[k + 1]);
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// A number for SVG: at most two decimals, no trailing zeros.
pub fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Escapes text for HTML and SVG; `://` is written with entities so the page holds no URL.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out.replace("://", ":&#47;&#47;")
}

/// A plot's size, plot area and data ranges: the data-to-pixel mapping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// SVG width.
    pub width: f64,
    /// SVG height.
    pub height: f64,
    /// Plot area's left edge.
    pub left: f64,
    /// Plot area's top edge.
    pub top: f64,
    /// Plot area's width.
    pub pw: f64,
    /// Plot area's height.
    pub ph: f64,
    /// Data x range (left, right).
    pub x: [f64; 2],
    /// Data y range (bottom, top).
    pub y: [f64; 2],
}

impl Frame {
    /// A frame of `width` x `height` with the usual margins (`right` leaves room for a colour
    /// bar or legend).
    pub fn new(width: f64, height: f64, right: f64, x: [f64; 2], y: [f64; 2]) -> Frame {
        let (left, top, bottom) = (70.0, 16.0, 48.0);
        Frame {
            width,
            height,
            left,
            top,
            pw: width - left - right,
            ph: height - top - bottom,
            x,
            y,
        }
    }
    /// Pixel x of data x.
    pub fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x[0]) / (self.x[1] - self.x[0]) * self.pw
    }
    /// Pixel y of data y.
    pub fn py(&self, y: f64) -> f64 {
        self.top + self.ph - (y - self.y[0]) / (self.y[1] - self.y[0]) * self.ph
    }
    /// Whether a data point lies in the ranges.
    pub fn holds(&self, x: f64, y: f64) -> bool {
        x >= self.x[0] && x <= self.x[1] && y >= self.y[0] && y <= self.y[1]
    }
    /// The opening `<svg>` tag.
    pub fn open(&self, id: &str, label: &str) -> String {
        format!(
            "<svg id=\"{id}\" class=\"plot\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{l}\">",
            w = num(self.width),
            h = num(self.height),
            l = esc(label)
        )
    }
    /// A clip path named `id` for the plot area.
    pub fn clip(&self, id: &str) -> String {
        format!(
            "<defs><clipPath id=\"{id}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/></clipPath></defs>",
            num(self.left),
            num(self.top),
            num(self.pw),
            num(self.ph)
        )
    }
    /// The plot area's background, grid, ticks, tick labels and axis titles.
    pub fn axes(&self, xlabel: &str, ylabel: &str) -> String {
        let mut s = format!(
            "<rect class=\"area\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fff\"/>",
            num(self.left),
            num(self.top),
            num(self.pw),
            num(self.ph)
        );
        let bottom = self.top + self.ph;
        let (xt, xs) = ticks(self.x[0], self.x[1], 7);
        let (yt, ys) = ticks(self.y[0], self.y[1], 6);
        let _ = write!(
            s,
            "<g class=\"grid\" stroke=\"#e4e4e4\" stroke-width=\"1\">"
        );
        for &t in &xt {
            let x = num(self.px(t));
            let _ = write!(
                s,
                "<line x1=\"{x}\" x2=\"{x}\" y1=\"{}\" y2=\"{}\"/>",
                num(self.top),
                num(bottom)
            );
        }
        for &t in &yt {
            let y = num(self.py(t));
            let _ = write!(
                s,
                "<line x1=\"{}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\"/>",
                num(self.left),
                num(self.left + self.pw)
            );
        }
        s.push_str("</g><g class=\"ticks\" font-size=\"11\" fill=\"#333\">");
        for &t in &xt {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                num(self.px(t)),
                num(bottom + 15.0),
                tick_label(t, xs)
            );
        }
        for &t in &yt {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                num(self.left - 6.0),
                num(self.py(t) + 4.0),
                tick_label(t, ys)
            );
        }
        let _ = write!(
            s,
            "</g><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
            num(self.left + self.pw / 2.0),
            num(bottom + 38.0),
            esc(xlabel)
        );
        let _ = write!(
            s,
            "<text transform=\"translate({} {}) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
            num(16.0),
            num(self.top + self.ph / 2.0),
            esc(ylabel)
        );
        s
    }
    /// The plot area's outline (drawn last, over the data).
    pub fn outline(&self) -> String {
        format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>",
            num(self.left),
            num(self.top),
            num(self.pw),
            num(self.ph)
        )
    }
}

/// Round ticks in `[lo, hi]` (about `target` of them) and their step.
pub fn ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return (Vec::new(), 1.0);
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let ticks = (first..=last).map(|k| k as f64 * step).collect();
    (ticks, step)
}

fn tick_label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        "0".into()
    } else {
        s
    }
}

/// The `lo`..`hi` quantiles (fractions) of the finite values, or None without any.
pub fn quantile_range(values: &[f64], lo: f64, hi: f64) -> Option<[f64; 2]> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Some([at(lo), at(hi)])
}

/// `r` widened by `pad` of its width on each side and rounded out to ticks; a point becomes a
/// unit-wide range.
pub fn padded(r: [f64; 2], pad: f64) -> [f64; 2] {
    let [mut a, mut b] = r;
    if b <= a {
        a -= 0.5;
        b += 0.5;
    }
    let w = b - a;
    let (a, b) = (a - pad * w, b + pad * w);
    let (_, step) = ticks(a, b, 8);
    [(a / step).floor() * step, (b / step).ceil() * step]
}

/// A 2D histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct Hist2d {
    /// Bins along x.
    pub nx: usize,
    /// Bins along y.
    pub ny: usize,
    /// Counts, row-major from the bottom row: `counts[iy * nx + ix]`.
    pub counts: Vec<u32>,
    /// Entries inside the ranges.
    pub entries: u64,
}

impl Hist2d {
    /// Fills `nx` x `ny` bins over the frame's ranges (points on the upper edges go in the
    /// last bins; points outside are not counted).
    pub fn fill(frame: &Frame, xs: &[f64], ys: &[f64], nx: usize, ny: usize) -> Hist2d {
        let mut h = Hist2d {
            nx,
            ny,
            counts: vec![0; nx * ny],
            entries: 0,
        };
        for (&x, &y) in xs.iter().zip(ys) {
            if !x.is_finite() || !y.is_finite() || !frame.holds(x, y) {
                continue;
            }
            let ix =
                (((x - frame.x[0]) / (frame.x[1] - frame.x[0]) * nx as f64) as usize).min(nx - 1);
            let iy =
                (((y - frame.y[0]) / (frame.y[1] - frame.y[0]) * ny as f64) as usize).min(ny - 1);
            h.counts[iy * nx + ix] += 1;
            h.entries += 1;
        }
        h
    }
    /// The largest count.
    pub fn max(&self) -> u32 {
        self.counts.iter().copied().max().unwrap_or(0)
    }
    /// The colour level of a count on the log scale (None for an empty bin).
    pub fn level(&self, c: u32) -> Option<usize> {
        if c == 0 {
            return None;
        }
        let max = self.max();
        let t = if max > 1 {
            f64::from(c).ln() / f64::from(max).ln()
        } else {
            1.0
        };
        Some(((t * (LEVELS - 1) as f64).round() as usize).min(LEVELS - 1))
    }
    /// The bins as SVG: one path per colour level, equal neighbours in a row merged.
    pub fn render(&self, frame: &Frame) -> String {
        let (w, h) = (frame.pw / self.nx as f64, frame.ph / self.ny as f64);
        let mut paths = vec![String::new(); LEVELS];
        for iy in 0..self.ny {
            let y = frame.top + frame.ph - (iy + 1) as f64 * h;
            let mut ix = 0;
            while ix < self.nx {
                let Some(level) = self.level(self.counts[iy * self.nx + ix]) else {
                    ix += 1;
                    continue;
                };
                let mut end = ix + 1;
                while end < self.nx && self.level(self.counts[iy * self.nx + end]) == Some(level) {
                    end += 1;
                }
                let x0 = frame.left + ix as f64 * w;
                let x1 = frame.left + end as f64 * w;
                let _ = write!(
                    paths[level],
                    "M{} {}H{}V{}H{}z",
                    num(x0),
                    num(y),
                    num(x1),
                    num(y + h),
                    num(x0)
                );
                ix = end;
            }
        }
        let mut s = String::from("<g class=\"hist2d\" shape-rendering=\"crispEdges\">");
        for (level, d) in paths.iter().enumerate() {
            if !d.is_empty() {
                let _ = write!(s, "<path fill=\"{}\" d=\"{d}\"/>", level_colour(level));
            }
        }
        s.push_str("</g>");
        s
    }
    /// A vertical log colour bar to the right of the plot area.
    pub fn colour_bar(&self, frame: &Frame) -> String {
        let x = frame.left + frame.pw + 14.0;
        let h = frame.ph / LEVELS as f64;
        let mut s = String::from("<g class=\"colour-bar\" shape-rendering=\"crispEdges\">");
        for level in 0..LEVELS {
            let y = frame.top + frame.ph - (level + 1) as f64 * h;
            let _ = write!(
                s,
                "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"{}\" fill=\"{}\"/>",
                num(x),
                num(y),
                num(h + 0.5),
                level_colour(level)
            );
        }
        let max = u64::from(self.max().max(1));
        let y_of = |c: u64| {
            let t = if max > 1 {
                (c as f64).ln() / (max as f64).ln()
            } else {
                1.0
            };
            frame.top + frame.ph - t * frame.ph
        };
        // Powers of ten, and the largest count at the top unless a label is already there.
        let mut labels: Vec<u64> = std::iter::successors(Some(1u64), |c| c.checked_mul(10))
            .take_while(|&c| c <= max)
            .collect();
        if labels.last().is_some_and(|&c| y_of(c) - y_of(max) >= 12.0) {
            labels.push(max);
        }
        for c in labels {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" font-size=\"10\">{c}</text>",
                num(x + 18.0),
                num(y_of(c) + 3.5)
            );
        }
        // The title above the bar, clear of the x axis' tick labels.
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">count</text></g>",
            num(x + 7.0),
            num(frame.top - 6.0)
        );
        s
    }
}

/// Points inside the frame as small squares (`size` px) in one path, at most `max` of them
/// (an even stride through the list beyond that).
pub fn squares(frame: &Frame, pts: &[(f64, f64)], size: f64, colour: &str, max: usize) -> String {
    let stride = pts.len().div_ceil(max.max(1)).max(1);
    let mut d = String::new();
    for &(x, y) in pts.iter().step_by(stride) {
        if x.is_finite() && y.is_finite() && frame.holds(x, y) {
            let _ = write!(
                d,
                "M{} {}h{s}v{s}h-{s}z",
                num(frame.px(x) - size / 2.0),
                num(frame.py(y) - size / 2.0),
                s = num(size)
            );
        }
    }
    format!("<path fill=\"{colour}\" d=\"{d}\"/>")
}

/// Points inside the frame as small crosses (`size` px) in one stroked path, at most `max`.
pub fn crosses(frame: &Frame, pts: &[(f64, f64)], size: f64, colour: &str, max: usize) -> String {
    let stride = pts.len().div_ceil(max.max(1)).max(1);
    let mut d = String::new();
    let r = size / 2.0;
    for &(x, y) in pts.iter().step_by(stride) {
        if x.is_finite() && y.is_finite() && frame.holds(x, y) {
            let (px, py) = (frame.px(x), frame.py(y));
            let _ = write!(
                d,
                "M{} {}h{s}M{} {}v{s}",
                num(px - r),
                num(py),
                num(px),
                num(py - r),
                s = num(size)
            );
        }
    }
    format!("<path fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.2\" d=\"{d}\"/>")
}

/// A 1D histogram: counts per bin plus the values below and above the range.
#[derive(Debug, Clone, PartialEq)]
pub struct Hist1d {
    /// Counts.
    pub counts: Vec<u64>,
    /// Finite values below the range.
    pub under: u64,
    /// Finite values above the range.
    pub over: u64,
}

impl Hist1d {
    /// Fills `bins` bins over `range`.
    pub fn fill(values: &[f64], range: [f64; 2], bins: usize) -> Hist1d {
        let mut h = Hist1d {
            counts: vec![0; bins],
            under: 0,
            over: 0,
        };
        for &v in values.iter().filter(|v| v.is_finite()) {
            if v < range[0] {
                h.under += 1;
            } else if v > range[1] {
                h.over += 1;
            } else {
                let i = ((v - range[0]) / (range[1] - range[0]) * bins as f64) as usize;
                h.counts[i.min(bins - 1)] += 1;
            }
        }
        h
    }
    /// The histogram as a step line (with a light fill) in the frame.
    pub fn render(&self, frame: &Frame, colour: &str) -> String {
        let n = self.counts.len();
        let mut d = format!("M{} {}", num(frame.left), num(frame.py(frame.y[0])));
        for (i, &c) in self.counts.iter().enumerate() {
            let x0 = frame.px(frame.x[0] + (frame.x[1] - frame.x[0]) * i as f64 / n as f64);
            let x1 = frame.px(frame.x[0] + (frame.x[1] - frame.x[0]) * (i + 1) as f64 / n as f64);
            let y = frame.py((c as f64).min(frame.y[1]));
            let _ = write!(d, "L{} {}L{} {}", num(x0), num(y), num(x1), num(y));
        }
        let _ = write!(
            d,
            "L{} {}",
            num(frame.left + frame.pw),
            num(frame.py(frame.y[0]))
        );
        format!(
            "<path d=\"{d}\" fill=\"{colour}\" fill-opacity=\"0.12\" stroke=\"{colour}\" stroke-width=\"1.5\"/>"
        )
    }
}

/// A legend entry list at (x, y): coloured swatches and labels, one per line.
pub fn legend(x: f64, y: f64, entries: &[(String, String)]) -> String {
    let mut s = String::from("<g class=\"legend\" font-size=\"11\">");
    for (i, (colour, label)) in entries.iter().enumerate() {
        let yy = y + i as f64 * 16.0;
        let _ = write!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            num(x),
            num(yy - 9.0),
            num(x + 17.0),
            num(yy),
            esc(label)
        );
    }
    s.push_str("</g>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        let (t, s) = ticks(0.0, 1.0, 5);
        assert_eq!(s, 0.2);
        assert_eq!(t.len(), 6);
        let (t, s) = ticks(30.0, 1500.0, 7);
        assert_eq!(s, 500.0);
        assert_eq!(t, vec![500.0, 1000.0, 1500.0]);
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(-0.0, 0.1), "0");
        assert!(ticks(1.0, 1.0, 5).0.is_empty());
    }

    #[test]
    fn frame_maps_data_to_pixels() {
        let f = Frame::new(600.0, 400.0, 80.0, [0.0, 100.0], [1.0, 3.0]);
        assert_eq!(f.px(0.0), f.left);
        assert_eq!(f.px(100.0), f.left + f.pw);
        assert_eq!(f.py(1.0), f.top + f.ph);
        assert_eq!(f.py(3.0), f.top);
        assert!(f.holds(50.0, 2.0) && !f.holds(101.0, 2.0));
    }

    #[test]
    fn histogram_bins_and_log_levels() {
        let f = Frame::new(600.0, 400.0, 80.0, [0.0, 10.0], [0.0, 10.0]);
        let mut xs = vec![0.5; 100];
        let mut ys = vec![0.5; 100];
        xs.extend([9.5, 10.0, 11.0, f64::NAN]);
        ys.extend([9.5, 10.0, 5.0, 1.0]);
        let h = Hist2d::fill(&f, &xs, &ys, 10, 10);
        assert_eq!(h.entries, 102);
        assert_eq!(h.counts[0], 100);
        assert_eq!(h.counts[99], 2);
        assert_eq!(h.level(100), Some(LEVELS - 1));
        assert_eq!(h.level(1), Some(0));
        assert_eq!(h.level(0), None);
        let svg = h.render(&f);
        assert_eq!(svg.matches("<path").count(), 2);
        let q = quantile_range(&[3.0, f64::NAN, 1.0, 2.0], 0.0, 1.0).unwrap();
        assert_eq!(q, [1.0, 3.0]);
        assert_eq!(padded([0.0, 1.0], 0.0), [0.0, 1.0]);
        let h1 = Hist1d::fill(&[-1.0, 0.0, 0.5, 1.0, 2.0, f64::NAN], [0.0, 1.0], 2);
        assert_eq!((h1.counts.clone(), h1.under, h1.over), (vec![1, 2], 1, 1));
    }

    #[test]
    fn escaping_hides_urls() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert!(!esc("see https://example.org").contains("://"));
        assert_eq!(num(1.0), "1");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(12.0 / 7.0), "1.71");
    }
}
