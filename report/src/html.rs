//! The page: one HTML file with inline CSS, inline SVG plots, the page data as an inline JSON
//! script and the gate editor's inline script. Nothing is loaded from anywhere.

use crate::page::{Built, PageData, MAX_POINTS};
use crate::svg::{self, esc, num, Frame, Hist2d, CATEGORY};
use std::fmt::Write as _;

/// The `id` of the script element holding the page data.
pub const DATA_ID: &str = "spyral-report-data";

const STYLE: &str = include_str!("style.css");
const EDITOR: &str = include_str!("editor.js");

/// The page data as the text of a `<script type="application/json">`: `<` is escaped so no
/// `</script>` can end it early, and `/` after `:` so the page holds no URL.
pub fn data_json(data: &PageData) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string(data)?
        .replace('<', "\\u003c")
        .replace("://", ":\\/\\/"))
}

fn fmt_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "—".into(), |v| v.to_string())
}

fn header(d: &PageData) -> String {
    let s = &d.summary;
    let mut h = format!("<header><h1>{}</h1><dl class=\"meta\">", esc(&d.title));
    let mut item = |k: &str, v: String| {
        let _ = write!(h, "<dt>{}</dt><dd>{}</dd>", esc(k), v);
    };
    if let Some(p) = &s.pipeline {
        item("pipeline", format!("<code>{}</code>", esc(p)));
    }
    item("workspace", format!("<code>{}</code>", esc(&s.workspace)));
    if let Some(l) = &s.launch {
        item("launch", format!("<code>{}</code>", esc(l)));
    }
    if let Some(t) = &s.traces {
        item("traces", format!("<code>{}</code>", esc(t)));
    }
    if let Some(w) = s.wall_s {
        item(
            "launch",
            format!(
                "{} runs: {} ok, {} failed, {} skipped, {} not run{} in {:.2} s on {} workers ({} schedule, seed {})",
                d.runs.len(),
                s.runs_ok,
                s.runs_failed,
                s.runs_skipped,
                s.runs_not_started,
                if s.interrupted { " (interrupted)" } else { "" },
                w,
                fmt_opt(s.workers),
                esc(s.schedule.map_or("?", |x| x.name())),
                fmt_opt(s.seed)
            ),
        );
    }
    if !s.chain.is_empty() {
        item(
            "chain",
            s.chain
                .iter()
                .map(|(n, k)| format!("{} <span class=\"kind\">({})</span>", esc(n), esc(k)))
                .collect::<Vec<_>>()
                .join(" → "),
        );
    }
    h.push_str("</dl><nav><a href=\"#pid\">PID</a> <a href=\"#kinematics\">KE vs angle</a> <a href=\"#vertex\">vertex z</a> <a href=\"#runs\">runs</a> <a href=\"#phases\">phase time</a> <a href=\"#timeline\">timeline</a> <a href=\"#failures\">failures</a></nav></header>");
    h
}

fn gate_colour(i: usize) -> &'static str {
    ["#ff2d55", "#ff9500", "#00c7be", "#af52de", "#ffcc00"][i % 5]
}

fn pid_section(b: &Built) -> String {
    let d = &b.data;
    let f = &b.pid_frame;
    let mut s = String::from("<section id=\"pid\"><h2>Particle identification: dE/dx vs Bρ</h2>");
    let _ = write!(
        s,
        "<p class=\"note\">Estimation rows: {} with finite dEdx and brho, {} inside the plotted range; colour: count per bin (log scale, {}×{} bins).</p>",
        d.pid.total, d.pid.entries, d.pid.bins[0], d.pid.bins[1]
    );
    s.push_str("<div class=\"pid-wrap\"><div>");
    s.push_str(&f.open(
        "pid-svg",
        "dE/dx versus B rho histogram with the particle-ID gates",
    ));
    s.push_str(&f.clip("pid-clip"));
    s.push_str(&f.axes(
        "dE/dx  (Estimation dEdx, charge per mm)",
        "Bρ  (Estimation brho, T·m)",
    ));
    s.push_str(&b.pid_hist.render(f));
    s.push_str(
        "<g id=\"pid-gates\" clip-path=\"url(#pid-clip)\" fill=\"none\" stroke-width=\"2\">",
    );
    for (i, g) in d.pid.gates.iter().enumerate() {
        if g.inside.is_none() || g.vertices.is_empty() {
            continue;
        }
        let pts: Vec<String> = g
            .vertices
            .iter()
            .map(|v| format!("{},{}", num(f.px(v[0])), num(f.py(v[1]))))
            .collect();
        let _ = write!(
            s,
            "<polygon class=\"gate\" data-name=\"{}\" points=\"{}\" stroke=\"{c}\" fill=\"{c}\" fill-opacity=\"0.06\"/>",
            esc(&g.name),
            pts.join(" "),
            c = gate_colour(i)
        );
        let v = g.vertices[0];
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"{}\" stroke=\"none\" font-size=\"12\" font-weight=\"bold\">{}</text>",
            num(f.px(v[0]) + 4.0),
            num(f.py(v[1]) - 4.0),
            gate_colour(i),
            esc(&g.name)
        );
    }
    s.push_str("</g>");
    s.push_str(&f.outline());
    s.push_str(&b.pid_hist.colour_bar(f));
    s.push_str("<g id=\"pid-edit\" clip-path=\"url(#pid-clip)\"></g>");
    let _ = write!(
        s,
        "<rect id=\"pid-area\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"transparent\" pointer-events=\"all\"/></svg>",
        num(f.left),
        num(f.top),
        num(f.pw),
        num(f.ph)
    );
    s.push_str("<ul class=\"gates\">");
    if d.pid.gates.is_empty() {
        s.push_str("<li>No particle-ID gate file.</li>");
    }
    for (i, g) in d.pid.gates.iter().enumerate() {
        let inside = match g.inside {
            Some(n) => format!("{n} of {} estimates inside", d.pid.total),
            None => format!(
                "axes {} / {}: not drawn on this plot",
                esc(&g.xaxis),
                esc(&g.yaxis)
            ),
        };
        let _ = write!(
            s,
            "<li><span class=\"swatch\" style=\"background:{}\"></span><b>{}</b> (Z = {}, A = {}): {inside} <span class=\"file\">{}</span></li>",
            gate_colour(i),
            esc(&g.name),
            g.z,
            g.a,
            esc(&g.file)
        );
    }
    s.push_str("</ul></div>");
    let (z, a) = d.pid.gates.first().map_or((1, 1), |g| (g.z, g.a));
    let _ = write!(
        s,
        "<form id=\"gate-editor\" class=\"editor\" onsubmit=\"return false\"><h3>Draw a gate</h3>\
<p class=\"hint\">Click on the plot to add vertices; click the first vertex or <i>Close</i> to close the polygon. \
<i>Save</i> downloads it as a particle-ID JSON file for InterpSolver's <code>particle_id_filename</code>.</p>\
<label>Name <input id=\"gate-name\" value=\"gate\" autocomplete=\"off\"></label>\
<label>Z <input id=\"gate-z\" type=\"number\" min=\"1\" step=\"1\" value=\"{z}\"></label>\
<label>A <input id=\"gate-a\" type=\"number\" min=\"1\" step=\"1\" value=\"{a}\"></label>\
<div class=\"buttons\"><button type=\"button\" id=\"gate-undo\">Undo</button><button type=\"button\" id=\"gate-close\">Close</button>\
<button type=\"button\" id=\"gate-clear\">Clear</button><button type=\"button\" id=\"gate-save\" class=\"primary\">Save gate JSON</button></div>\
<p id=\"gate-cursor\" class=\"mono\">&nbsp;</p><p id=\"gate-status\">No vertices yet.</p><ol id=\"gate-vertices\" class=\"mono\"></ol></form>"
    );
    s.push_str("</div></section>");
    s
}

fn kinematics_section(b: &Built) -> String {
    let k = &b.data.kinematics;
    let f = Frame::new(760.0, 480.0, 190.0, k.x_range, k.y_range);
    let mut s = String::from("<section id=\"kinematics\"><h2>Kinetic energy vs polar angle</h2>");
    let _ = write!(
        s,
        "<p class=\"note\">{} fitted rows (InterpSolver <code>ke</code>, <code>polar</code>){}.</p>",
        k.fits,
        if k.truth > 0 {
            format!(
                "; {} simulated particles of the gated nuclei overlaid (truth of runs {})",
                k.truth,
                k.truth_runs
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        }
    );
    s.push_str(&f.open("ke-svg", "kinetic energy versus polar angle"));
    s.push_str(&f.clip("ke-clip"));
    s.push_str(&f.axes("polar angle (deg)", "kinetic energy (MeV)"));
    s.push_str("<g clip-path=\"url(#ke-clip)\">");
    let mut legend = Vec::new();
    if k.histogram {
        let xs: Vec<f64> = b.fits.iter().map(|p| p.0).collect();
        let ys: Vec<f64> = b.fits.iter().map(|p| p.1).collect();
        let h = Hist2d::fill(&f, &xs, &ys, 120, 90);
        s.push_str(&h.render(&f));
        legend.push((svg::level_colour(20), "fits (count, log scale)".to_string()));
    } else {
        s.push_str(&svg::squares(&f, &b.fits, 3.0, "#1f5fbf", MAX_POINTS));
        legend.push(("#1f5fbf".to_string(), "fits".to_string()));
    }
    if !b.truth_pts.is_empty() {
        s.push_str(&svg::crosses(&f, &b.truth_pts, 5.0, "#ff7f0e", MAX_POINTS));
        legend.push(("#ff7f0e".to_string(), "truth (simulated)".to_string()));
    }
    s.push_str("</g>");
    s.push_str(&f.outline());
    s.push_str(&svg::legend(f.left + f.pw + 14.0, f.top + 12.0, &legend));
    s.push_str("</svg></section>");
    s
}

fn vertex_section(d: &PageData) -> String {
    let v = &d.vertex_z;
    let max = v
        .series
        .iter()
        .flat_map(|s| s.counts.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let f = Frame::new(760.0, 360.0, 190.0, v.range, [0.0, (max * 1.08).ceil()]);
    let mut s = String::from("<section id=\"vertex\"><h2>Vertex z</h2>");
    s.push_str(&f.open("vz-svg", "vertex z distributions"));
    s.push_str(&f.axes("vertex z (mm)", "rows per bin"));
    let mut legend = Vec::new();
    for (i, series) in v.series.iter().enumerate() {
        let colour = CATEGORY[i % CATEGORY.len()];
        let h = svg::Hist1d {
            counts: series.counts.clone(),
            under: series.under,
            over: series.over,
        };
        s.push_str(&h.render(&f, colour));
        let total: u64 = series.counts.iter().sum::<u64>() + series.under + series.over;
        legend.push((colour.to_string(), format!("{} ({total})", series.label)));
        if series.under + series.over > 0 {
            legend.push((
                "none".into(),
                format!("  {} below, {} above", series.under, series.over),
            ));
        }
    }
    s.push_str(&f.outline());
    s.push_str(&svg::legend(f.left + f.pw + 14.0, f.top + 12.0, &legend));
    s.push_str("</svg>");
    if v.series.is_empty() {
        s.push_str("<p class=\"note\">No vertex data.</p>");
    }
    s.push_str("</section>");
    s
}

fn runs_section(d: &PageData) -> String {
    let mut s = String::from("<section id=\"runs\"><h2>Runs</h2><table class=\"runs\"><thead><tr>");
    for h in [
        "run",
        "status",
        "worker",
        "chunks",
        "wall s",
        "events",
        "clouds",
        "clusters",
        "estimates",
        "gated",
        "fits",
        "rejected",
        "error",
    ] {
        let _ = write!(s, "<th>{h}</th>");
    }
    s.push_str("</tr></thead><tbody>");
    let sum = |get: fn(&crate::page::RunRow) -> Option<u64>| -> String {
        let v: Vec<u64> = d.runs.iter().filter_map(get).collect();
        if v.is_empty() {
            "—".into()
        } else {
            v.iter().sum::<u64>().to_string()
        }
    };
    for r in &d.runs {
        let rejected: Vec<String> = r
            .rejected
            .iter()
            .map(|(k, v)| format!("{}: {v}", esc(k)))
            .collect();
        let _ = write!(
            s,
            "<tr class=\"st-{}\" data-run=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"rej\">{}</td><td class=\"err\">{}</td></tr>",
            esc(&r.status.label().replace(' ', "-")),
            r.run,
            r.run,
            esc(r.status.label()),
            fmt_opt(r.worker),
            fmt_opt(r.chunks),
            r.wall_s.map_or("—".into(), |w| format!("{w:.2}")),
            fmt_opt(r.events),
            fmt_opt(r.clouds),
            fmt_opt(r.clusters),
            fmt_opt(r.estimates),
            fmt_opt(r.gated),
            fmt_opt(r.fits),
            rejected.join("<br>"),
            esc(r.error.as_deref().unwrap_or(""))
        );
    }
    let wall: f64 = d.runs.iter().filter_map(|r| r.wall_s).sum();
    let _ = write!(
        s,
        "</tbody><tfoot><tr><td>all</td><td></td><td></td><td></td><td>{wall:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td></td><td></td></tr></tfoot></table>",
        sum(|r| r.events),
        sum(|r| r.clouds),
        sum(|r| r.clusters),
        sum(|r| r.estimates),
        sum(|r| r.gated),
        sum(|r| r.fits)
    );
    s.push_str("<p class=\"note\">Counts from each phase's metadata in <code>report.json</code> (runs that were already up to date: estimates and fits counted from the artifacts). Events: read by the first phase; clouds: non-empty point clouds.</p></section>");
    s
}

fn phases_section(d: &PageData) -> String {
    let mut s = String::from("<section id=\"phases\"><h2>Time per phase</h2>");
    let ran: Vec<_> = d.phases.iter().filter(|p| p.calls + p.failed > 0).collect();
    if ran.is_empty() {
        s.push_str("<p class=\"note\">No phase ran in this launch.</p></section>");
        return s;
    }
    let max = ran.iter().map(|p| p.wall_s).fold(0.0, f64::max).max(1e-9);
    let (w, row, left, bar) = (960.0, 26.0, 130.0, 520.0);
    let h = row * ran.len() as f64 + 10.0;
    let _ = write!(
        s,
        "<svg id=\"phase-svg\" class=\"plot\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"wall time per phase\">",
        w = num(w),
        h = num(h)
    );
    for (i, p) in ran.iter().enumerate() {
        let y = 5.0 + i as f64 * row;
        let bw = (p.wall_s / max * bar).max(1.0);
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"12\">{}</text><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{}</title></rect><text x=\"{}\" y=\"{}\" font-size=\"12\">{:.2} s wall, {:.2} s CPU, {} runs{}</text>",
            num(left - 8.0),
            num(y + 16.0),
            esc(&p.phase),
            num(left),
            num(y + 3.0),
            num(bw),
            num(row - 8.0),
            CATEGORY[i % CATEGORY.len()],
            esc(&p.phase),
            num(left + bw + 8.0),
            num(y + 16.0),
            p.wall_s,
            p.cpu_s,
            p.runs,
            if p.failed > 0 {
                format!(", {} failed calls", p.failed)
            } else {
                String::new()
            }
        );
    }
    s.push_str("</svg><p class=\"note\">Wall and CPU seconds summed over every call in the workers (event chunks and merges included).</p></section>");
    s
}

fn phase_colour(d: &PageData, phase: &str) -> &'static str {
    let i = d.phases.iter().position(|p| p.phase == phase).unwrap_or(0);
    CATEGORY[i % CATEGORY.len()]
}

fn timeline_section(d: &PageData) -> String {
    let t = &d.timeline;
    let mut s = String::from("<section id=\"timeline\"><h2>Worker timeline</h2>");
    if t.spans.is_empty() {
        s.push_str("<p class=\"note\">No phase calls found (no launch folder, or its worker logs are empty).</p></section>");
        return s;
    }
    let mut workers: Vec<usize> = t.spans.iter().map(|x| x.worker).collect();
    workers.sort_unstable();
    workers.dedup();
    let wall = t.wall_s.max(1e-9);
    let (w, row, left, right) = (960.0, 30.0, 80.0, 90.0);
    let top = 8.0;
    let h = top + row * workers.len() as f64 + 40.0;
    let f = Frame {
        width: w,
        height: h,
        left,
        top,
        pw: w - left - right,
        ph: row * workers.len() as f64,
        x: [0.0, wall],
        y: [0.0, workers.len() as f64],
    };
    let _ = write!(
        s,
        "<p class=\"note\">Which phase of which run (or event chunk, or merge) ran on which worker, from the {}. Hover a bar for details.</p>",
        esc(&t.source)
    );
    s.push_str(&f.open("timeline-svg", "worker timeline"));
    let (xt, step) = svg::ticks(0.0, wall, 10);
    for x in xt {
        let px = num(f.px(x));
        let _ = write!(
            s,
            "<line x1=\"{px}\" x2=\"{px}\" y1=\"{}\" y2=\"{}\" stroke=\"#e4e4e4\"/><text x=\"{px}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            num(f.top),
            num(f.top + f.ph),
            num(f.top + f.ph + 14.0),
            svg::num((x / step).round() * step)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">seconds since the launch started</text>",
        num(f.left + f.pw / 2.0),
        num(f.top + f.ph + 32.0)
    );
    for (i, wk) in workers.iter().enumerate() {
        let y = f.top + i as f64 * row;
        let busy: f64 = t
            .spans
            .iter()
            .filter(|x| x.worker == *wk)
            .map(|x| (x.end_s - x.start_s).max(0.0))
            .sum();
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">worker {wk}</text><text x=\"{}\" y=\"{}\" font-size=\"11\">busy {:.0}%</text>",
            num(f.left - 8.0),
            num(y + row / 2.0 + 4.0),
            num(f.left + f.pw + 8.0),
            num(y + row / 2.0 + 4.0),
            busy / wall * 100.0
        );
        for x in t.spans.iter().filter(|x| x.worker == *wk) {
            let x0 = f.px(x.start_s);
            let bw = (f.px(x.end_s) - x0).max(1.0);
            let label = format!(
                "run {}{}{}: {} {:.3}–{:.3} s ({:.3} s){}",
                x.run,
                if x.part.is_empty() { "" } else { " " },
                x.part,
                x.phase,
                x.start_s,
                x.end_s,
                x.end_s - x.start_s,
                if x.ok {
                    ""
                } else {
                    " — failed or unfinished"
                }
            );
            let _ = write!(
                s,
                "<rect class=\"span\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"{}><title>{}</title></rect>",
                num(x0),
                num(y + 4.0),
                num(bw),
                num(row - 8.0),
                phase_colour(d, &x.phase),
                if x.ok { "" } else { " stroke=\"#d00\" stroke-width=\"2\"" },
                esc(&label)
            );
            if bw > 26.0 {
                let _ = write!(
                    s,
                    "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#fff\" pointer-events=\"none\">{}</text>",
                    num(x0 + 3.0),
                    num(y + row / 2.0 + 3.5),
                    x.run
                );
            }
        }
    }
    s.push_str(&f.outline());
    s.push_str("</svg><p class=\"legend\">");
    for p in &d.phases {
        let _ = write!(
            s,
            "<span class=\"swatch\" style=\"background:{}\"></span>{} ",
            phase_colour(d, &p.phase),
            esc(&p.phase)
        );
    }
    s.push_str("</p></section>");
    s
}

fn failures_section(d: &PageData) -> String {
    let mut s = String::from("<section id=\"failures\"><h2>Failures</h2>");
    if d.failures.is_empty() {
        s.push_str("<p class=\"ok\">No failures.</p></section>");
        return s;
    }
    for f in &d.failures {
        let _ = write!(
            s,
            "<details class=\"failure\" open><summary><b>{}</b>: {}</summary>",
            esc(&f.what),
            esc(&f.error)
        );
        for (log, lines) in &f.tails {
            let _ = write!(
                s,
                "<p class=\"log\">{} (its lines about this, last {}):</p><pre>{}</pre>",
                esc(log),
                lines.len(),
                esc(&lines.join("\n"))
            );
        }
        s.push_str("</details>");
    }
    s.push_str("</section>");
    s
}

/// The whole page.
pub(crate) fn render(b: &Built) -> Result<String, serde_json::Error> {
    let d = &b.data;
    let mut s = String::with_capacity(64 * 1024);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(&d.title)
    );
    s.push_str(&header(d));
    if !d.warnings.is_empty() {
        s.push_str("<section id=\"warnings\"><h2>Warnings</h2><ul>");
        for w in &d.warnings {
            let _ = write!(s, "<li>{}</li>", esc(w));
        }
        s.push_str("</ul></section>");
    }
    s.push_str(&pid_section(b));
    s.push_str(&kinematics_section(b));
    s.push_str(&vertex_section(d));
    s.push_str(&runs_section(d));
    s.push_str(&phases_section(d));
    s.push_str(&timeline_section(d));
    s.push_str(&failures_section(d));
    let _ = writeln!(
        s,
        "<script type=\"application/json\" id=\"{DATA_ID}\">{}</script><script>{EDITOR}</script></body></html>",
        data_json(d)?
    );
    Ok(s)
}
