// Browser test of the HTML report (driven by scripts/browser-test.sh): opens a launch's
// report.html in headless Chromium through puppeteer-core and fails on any console error, page
// error or request that leaves the file (only file:, data: and blob: are allowed).
//
//   node report-test.mjs draw REPORT OUTDIR
//     checks the page's sections and plots, draws a 5-vertex gate around the lower-dE/dx part of
//     the PID data with mouse clicks, names it (deuteron, Z = 1, A = 2), closes it, saves it and
//     captures the download (OUTDIR/deuteron.json, checked field by field), takes screenshots of
//     the page and of the PID plot (OUTDIR/*.png, checked non-blank and showing the gate), and
//     writes what the gate should select to OUTDIR/expect.json.
//   node report-test.mjs verify REPORT OUTDIR
//     the report of the follow-up launch that ran InterpSolver with that gate: the page loads
//     cleanly, shows the gate, InterpSolver reran and Estimation did not (report.json), the
//     solver's gated rows equal the Estimation rows inside the polygon, which agree with what
//     the editor counted, and the fits in the kinematics plot equal the solver's fitted rows.
//
// puppeteer-core is loaded from the folder in PUPPETEER_DIR (its node_modules); the browser is
// CHROMIUM (default /usr/bin/chromium).
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [mode, reportArg, outArg] = process.argv.slice(2);
if (!["draw", "verify"].includes(mode) || !reportArg || !outArg) {
  console.error("usage: report-test.mjs draw|verify REPORT.html OUTDIR");
  process.exit(2);
}
const report = path.resolve(reportArg);
const outDir = path.resolve(outArg);
const require = createRequire(path.join(path.resolve(process.env.PUPPETEER_DIR || "."), "node_modules", "x.js"));
const puppeteer = require("puppeteer-core");

const GATE = { name: "deuteron", Z: 1, A: 2 };
const SECTIONS = ["pid", "kinematics", "vertex", "runs", "phases", "timeline", "failures"];
const PLOTS = ["pid-svg", "ke-svg", "vz-svg", "timeline-svg"];

let failures = 0;
function check(ok, what, detail) {
  if (ok) {
    console.log("  ok: " + what);
  } else {
    failures++;
    console.log("  FAILED: " + what + (detail === undefined ? "" : " (" + JSON.stringify(detail) + ")"));
  }
  return ok;
}
function fatal(what) {
  throw new Error(what);
}

// A launched browser with one page on the report; every console error, page error, failed
// load and request to anything but file:/data:/blob: is collected in `problems`.
async function open(browser, problems) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1000, deviceScaleFactor: 1 });
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "assert") problems.push("console " + m.type() + ": " + m.text());
  });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("request", (r) => {
    const scheme = r.url().split(":")[0];
    if (!["file", "data", "blob"].includes(scheme)) problems.push("request to " + r.url());
  });
  page.on("requestfailed", (r) => {
    if (!r.url().startsWith("blob:")) problems.push("failed load of " + r.url() + ": " + (r.failure() || {}).errorText);
  });
  const resp = await page.goto(pathToFileURL(report).href, { waitUntil: "load" });
  if (!resp || !resp.ok()) fatal("could not load " + report);
  return page;
}

// Common checks of a rendered report; returns its embedded page data.
async function checkPage(page) {
  const facts = await page.evaluate(
    (sections, plots) => {
      const box = (id) => {
        const e = document.getElementById(id);
        if (!e) return null;
        const r = e.getBoundingClientRect();
        return { w: r.width, h: r.height };
      };
      const text = document.getElementById("spyral-report-data");
      return {
        sections: sections.map((id) => [id, !!document.getElementById(id)]),
        plots: plots.map((id) => [id, box(id)]),
        runRows: [...document.querySelectorAll("#runs tbody tr")].map((tr) => Number(tr.dataset.run)),
        pidBins: [...document.querySelectorAll("#pid-svg g.hist2d path")].map((p) => (p.getAttribute("d") || "").split("M").length - 1).reduce((a, b) => a + b, 0),
        timelineRects: document.querySelectorAll("#timeline-svg rect").length,
        vzPaths: document.querySelectorAll("#vz-svg path").length,
        fitPathD: [...document.querySelectorAll('#ke-svg path[fill="#1f5fbf"]')].map((p) => p.getAttribute("d") || ""),
        editor: ["gate-name", "gate-z", "gate-a", "gate-close", "gate-save", "pid-area"].map((id) => [id, !!document.getElementById(id)]),
        data: text ? JSON.parse(text.textContent) : null,
        scripts: [...document.querySelectorAll("script[src], link[href], img[src]")].length,
      };
    },
    SECTIONS,
    PLOTS,
  );
  const d = facts.data;
  if (!check(d !== null, "the page embeds its data (#spyral-report-data)")) fatal("no page data");
  for (const [id, there] of facts.sections) check(there, "section #" + id + " is there");
  for (const [id, b] of facts.plots) check(b && b.w > 200 && b.h > 100, "plot #" + id + " is rendered", b);
  for (const [id, there] of facts.editor) check(there, "gate editor control #" + id + " is there");
  check(facts.scripts === 0, "nothing is loaded by src/href", facts.scripts);
  const runs = d.runs.map((r) => r.run);
  check(runs.length > 0 && JSON.stringify(facts.runRows) === JSON.stringify(runs), "the per-run table has one row per run", { table: facts.runRows, data: runs });
  check(d.runs.every((r) => r.status === "ok"), "every run is ok", d.runs.map((r) => r.status));
  check(d.pid.total > 0 && facts.pidBins > 0, "the PID histogram draws its bins", { total: d.pid.total, bins: facts.pidBins });
  check(facts.timelineRects > 0 || d.timeline.spans.length === 0, "the timeline draws its spans", { rects: facts.timelineRects, spans: d.timeline.spans.length });
  check(d.vertex_z.series.length > 0 && facts.vzPaths > 0, "the vertex z plot has series", d.vertex_z.series.length);
  const squares = facts.fitPathD.join("").split("M").length - 1;
  check(d.kinematics.histogram || (squares > 0 && squares <= d.kinematics.fits), "the KE vs polar plot draws the fits", { squares, fits: d.kinematics.fits });
  return d;
}

// The screen (client) position of data point (x, y) on the PID plot.
async function screenOf(page, pts) {
  return page.evaluate((pts) => {
    const pid = JSON.parse(document.getElementById("spyral-report-data").textContent).pid;
    const svg = document.getElementById("pid-svg");
    const m = svg.getScreenCTM();
    const b = pid.plot;
    return pts.map(([x, y]) => {
      const p = svg.createSVGPoint();
      p.x = b.left + ((x - pid.x_range[0]) / (pid.x_range[1] - pid.x_range[0])) * b.width;
      p.y = b.top + b.height - ((y - pid.y_range[0]) / (pid.y_range[1] - pid.y_range[0])) * b.height;
      const s = p.matrixTransform(m);
      return [s.x, s.y];
    });
  }, pts);
}

// The gate to draw, from the histogram: a rectangle around the lower-dE/dx half of the data, its
// left edge two bins left of the data, its right edge the bin edge right of the median column,
// its bottom and top edges the bin edges outside the 5% and 95% quantile rows; a fifth vertex
// bulges the left edge out where there is no data. Also returns the counts in the bins beside
// the edges that cross data: a click lands within a pixel of a bin edge, so only those can
// differ between the editor's bin-centre count and the exact one.
function planGate(pid) {
  const [nx, ny] = pid.bins;
  const [x0, x1] = pid.x_range;
  const [y0, y1] = pid.y_range;
  const bx = (x1 - x0) / nx;
  const by = (y1 - y0) / ny;
  const at = (ix, iy) => (ix >= 0 && ix < nx && iy >= 0 && iy < ny ? pid.counts[iy * nx + ix] : 0);
  const col = new Array(nx).fill(0);
  const row = new Array(ny).fill(0);
  let ixMin = nx, ixMax = -1, n = 0;
  for (let iy = 0; iy < ny; iy++)
    for (let ix = 0; ix < nx; ix++) {
      const c = at(ix, iy);
      if (!c) continue;
      col[ix] += c;
      row[iy] += c;
      n += c;
      ixMin = Math.min(ixMin, ix);
      ixMax = Math.max(ixMax, ix);
    }
  if (n < 10 || ixMax <= ixMin) fatal("too little PID data to draw a gate: " + n + " entries");
  const quantileRow = (q) => {
    let acc = 0;
    for (let iy = 0; iy < ny; iy++) if ((acc += row[iy]) >= q * n) return iy;
    return ny - 1;
  };
  let split = ixMin, acc = 0;
  while (acc + col[split] <= n / 2 && split < ixMax) acc += col[split++];
  split = Math.min(split + 1, ixMax); // right edge of the median column, left of the last one
  const lo = Math.max(quantileRow(0.05), 1);
  const hi = Math.min(quantileRow(0.95) + 1, ny - 1); // the top edge is the bottom of row `hi`
  const left = Math.max(ixMin - 2, 2);
  const L = x0 + left * bx, R = x0 + split * bx, B = y0 + lo * by, T = y0 + hi * by;
  const verts = [[L, B], [R, B], [R, T], [L, T], [x0 + (left - 2) * bx, (B + T) / 2]];
  let edge = 0;
  for (let iy = lo - 1; iy <= hi; iy++) edge += at(split - 1, iy) + at(split, iy);
  for (let ix = left - 1; ix <= split; ix++) edge += at(ix, lo - 1) + at(ix, lo) + at(ix, hi - 1) + at(ix, hi);
  return { verts, edgeCounts: edge };
}

async function download(browser, dir, action) {
  const cdp = await browser.target().createCDPSession();
  await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: dir, eventsEnabled: true });
  let name = null;
  const done = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no download within 20 s")), 20000);
    cdp.on("Browser.downloadWillBegin", (e) => (name = e.suggestedFilename));
    cdp.on("Browser.downloadProgress", (e) => {
      if (e.state === "completed") {
        clearTimeout(t);
        resolve();
      } else if (e.state === "canceled") {
        clearTimeout(t);
        reject(new Error("download canceled"));
      }
    });
  });
  await action();
  await done;
  return name;
}

// Pixel statistics of a PNG, decoded by the browser itself (a canvas on a blank page).
async function pngStats(browser, file, targets = []) {
  const page = await browser.newPage();
  const url = "data:image/png;base64," + fs.readFileSync(file).toString("base64");
  const s = await page.evaluate(async (url, targets) => {
    const img = new Image();
    img.src = url;
    await img.decode();
    const c = document.createElement("canvas");
    c.width = img.width;
    c.height = img.height;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    const bg = [px[0], px[1], px[2]];
    const colours = new Set();
    const rgb = targets.map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
    let differ = 0, magenta = 0, target = 0;
    for (let i = 0; i < px.length; i += 4) {
      const [r, gr, b] = [px[i], px[i + 1], px[i + 2]];
      if (Math.abs(r - bg[0]) + Math.abs(gr - bg[1]) + Math.abs(b - bg[2]) > 30) differ++;
      colours.add((r >> 3) * 1024 + (gr >> 3) * 32 + (b >> 3));
      if (r > 190 && gr < 60 && b > 90 && b < 160) magenta++; // the editor's #e0007a
      // A histogram colour, maybe under a gate's translucent fill.
      if (rgb.some((t) => Math.abs(r - t[0]) + Math.abs(gr - t[1]) + Math.abs(b - t[2]) <= 45)) target++;
    }
    return { width: c.width, height: c.height, colours: colours.size, differ: differ / (px.length / 4), magenta, target };
  }, url, targets);
  await page.close();
  return s;
}

async function draw(browser, problems) {
  const page = await open(browser, problems);
  const d = await checkPage(page);
  const before = d.runs.reduce((s, r) => s + (r.gated || 0), 0);
  check(d.pid.gates.length === 1 && d.pid.gates[0].inside === before, "the pipeline's gate: its estimates inside are the solver's gated rows", { gates: d.pid.gates.length, inside: d.pid.gates[0] && d.pid.gates[0].inside, gated: before });
  const plan = planGate(d.pid);
  await page.$eval("#pid-svg", (e) => e.scrollIntoView({ block: "center" }));
  const screen = await screenOf(page, plan.verts);
  // Hovering shows data coordinates.
  await page.mouse.move(screen[0][0] + 20, screen[0][1] - 20);
  const cursor = await page.$eval("#gate-cursor", (e) => e.textContent);
  check(/dEdx = .*brho = /.test(cursor), "hovering the plot shows the cursor's data coordinates", cursor);
  for (const [x, y] of screen) await page.mouse.click(x, y);
  const drawn = await page.$$eval("#gate-vertices li", (l) => l.length);
  check(drawn === plan.verts.length, "each click on the plot added a vertex", drawn);
  await page.click("#gate-close");
  // A click after closing adds nothing.
  await page.mouse.click((screen[0][0] + screen[1][0]) / 2, (screen[0][1] + screen[2][1]) / 2);
  const status = await page.$eval("#gate-status", (e) => e.textContent);
  const m = status.match(/^(\d+) vertices \(closed\); about (\d+) of (\d+) estimates inside/);
  if (!check(m !== null, "the gate is closed and the editor counts what it holds", status)) fatal("gate not closed");
  const [nv, editorInside, total] = m.slice(1).map(Number);
  check(nv === plan.verts.length, "a click after closing adds no vertex", nv);
  check(total === d.pid.total && editorInside > 0 && editorInside < total, "the gate holds some but not all estimates", { editorInside, total });
  const shapes = await page.$$eval("#pid-edit polygon", (l) => l.length);
  check(shapes > 0, "the closed polygon is drawn on the plot", shapes);

  for (const [id, v] of [["#gate-name", GATE.name], ["#gate-z", String(GATE.Z)], ["#gate-a", String(GATE.A)]]) {
    await page.click(id, { clickCount: 3 });
    await page.keyboard.press("Backspace");
    await page.type(id, v);
  }
  const name = await download(browser, outDir, () => page.click("#gate-save"));
  check(name === GATE.name + ".json", "save downloads <name>.json", name);
  const file = path.join(outDir, GATE.name + ".json");
  const gate = JSON.parse(fs.readFileSync(file, "utf8"));
  check(
    JSON.stringify(Object.keys(gate).sort()) === JSON.stringify(["A", "Z", "name", "vertices", "xaxis", "yaxis"]),
    "the gate JSON has exactly Spyral's fields",
    Object.keys(gate),
  );
  check(gate.name === GATE.name && gate.Z === GATE.Z && gate.A === GATE.A, "name, Z and A are what was typed", [gate.name, gate.Z, gate.A]);
  check(gate.xaxis === d.pid.x_axis && gate.yaxis === d.pid.y_axis, "the axes are the plot's", [gate.xaxis, gate.yaxis]);
  const v = gate.vertices;
  check(Array.isArray(v) && v.length === plan.verts.length + 1 && JSON.stringify(v[0]) === JSON.stringify(v[v.length - 1]), "the polygon is closed by repeating the first vertex", v);
  // Within two pixels of where the clicks were aimed (a pixel in data units from the CTM).
  const ppx = await page.$eval("#pid-svg", (s) => s.getScreenCTM().a);
  const tolX = (2 / ppx) * (d.pid.x_range[1] - d.pid.x_range[0]) / d.pid.plot.width;
  const tolY = (2 / ppx) * (d.pid.y_range[1] - d.pid.y_range[0]) / d.pid.plot.height;
  const off = plan.verts.map((p, i) => [Math.abs(v[i][0] - p[0]), Math.abs(v[i][1] - p[1])]);
  check(off.every(([dx, dy]) => dx <= tolX && dy <= tolY), "the vertices are where the mouse clicked", { off, tolX, tolY });
  const saved = await page.$eval("#gate-status", (e) => e.textContent);
  check(saved.startsWith("Saved " + GATE.name + ".json"), "the editor says it saved", saved);

  // Screenshot test: the whole page and the PID plot with the drawn gate.
  const full = path.join(outDir, "report.png");
  const pidPng = path.join(outDir, "pid.png");
  await page.screenshot({ path: full, fullPage: true });
  await (await page.$("#pid-svg")).screenshot({ path: pidPng });
  const areaPng = path.join(outDir, "pid-area.png");
  await (await page.$("#pid-area")).screenshot({ path: areaPng });
  const fs1 = await pngStats(browser, full);
  const fills = await page.$$eval("#pid-svg g.hist2d path", (l) => l.filter((p) => p.getAttribute("d")).map((p) => p.getAttribute("fill")));
  const fs2 = await pngStats(browser, areaPng, fills);
  const pageHeight = await page.evaluate(() => document.documentElement.scrollHeight);
  check(fs1.width === 1280 && Math.abs(fs1.height - pageHeight) <= 2 && fs1.height > 1500, "the page screenshot is the whole page", { w: fs1.width, h: fs1.height, pageHeight });
  check(fs1.differ > 0.05 && fs1.colours >= 24, "the page screenshot is not blank", fs1);
  check(fills.length > 0 && fs2.target >= 50 && fs2.colours >= 12, "the PID plot screenshot shows the histogram's colours", { fills, ...fs2 });
  check(fs2.magenta > 100, "the PID plot screenshot shows the drawn gate", fs2.magenta);

  const expect = {
    gate: file,
    vertices: v,
    editor_inside: editorInside,
    edge_counts: plan.edgeCounts,
    total: d.pid.total,
    gated_before: before,
  };
  fs.writeFileSync(path.join(outDir, "expect.json"), JSON.stringify(expect, null, 2));
  console.log("  editor: " + editorInside + " of " + total + " estimates inside the drawn gate; screenshots in " + outDir);
}

async function verify(browser, problems) {
  const expect = JSON.parse(fs.readFileSync(path.join(outDir, "expect.json"), "utf8"));
  const page = await open(browser, problems);
  const d = await checkPage(page);
  const gates = d.pid.gates;
  check(gates.length === 1 && gates[0].name === GATE.name && path.resolve(gates[0].file) === path.resolve(process.env.GATE_FILE || expect.gate), "the report shows the gate file InterpSolver read", gates.map((g) => [g.name, g.file]));
  check(JSON.stringify(gates[0].vertices) === JSON.stringify(expect.vertices), "with the drawn vertices", gates[0].vertices);
  const drawn = await page.$$eval("#pid-gates polygon.gate", (l) => l.map((p) => p.dataset.name));
  check(drawn.length === 1 && drawn[0] === GATE.name, "and draws it on the PID plot", drawn);
  const inside = gates[0].inside;

  const launch = JSON.parse(fs.readFileSync(path.join(path.dirname(report), "report.json"), "utf8"));
  let gated = 0, fitted = 0, rows = 0;
  for (const run of launch.runs) {
    const st = Object.fromEntries(run.phases.map((p) => [p.phase, p]));
    check(st.Estimation && st.Estimation.status === "up-to-date", "run " + run.run + ": Estimation was up to date", st.Estimation && st.Estimation.status);
    const s = st.InterpSolver;
    check(s && s.status === "ok" && s.metadata, "run " + run.run + ": InterpSolver reran (its gate changed)", s && s.status);
    if (!s || !s.metadata) continue;
    gated += s.metadata.gated;
    fitted += s.metadata.fitted;
    rows += s.metadata.rows;
  }
  check(rows === expect.total, "the solver read every Estimation row", { rows, total: expect.total });
  check(gated === inside, "the solver's gated rows are the Estimation rows inside the drawn polygon", { gated, inside });
  check(Math.abs(inside - expect.editor_inside) <= expect.edge_counts, "the editor's count agrees up to the bins on the clicked edge", { inside, editor: expect.editor_inside, edge: expect.edge_counts });
  check(gated > 0 && gated < rows, "the gate selects some but not all rows", { gated, rows });
  check(gated !== expect.gated_before, "the fits now come from a different selection than the pipeline's first gate", { before: expect.gated_before, now: gated });
  check(fitted > 0 && fitted <= gated, "InterpSolver fitted rows of the new gate", { fitted, gated });
  check(d.kinematics.fits === fitted, "the fits read from the InterpSolver parquet are the solver's fitted rows", { parquet: d.kinematics.fits, fitted });
  check(d.runs.reduce((s, r) => s + (r.gated || 0), 0) === gated, "the per-run table shows the new gated counts");
  console.log("  follow-up: " + gated + " of " + rows + " rows gated (was " + expect.gated_before + "), " + fitted + " fitted");
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
const problems = [];
try {
  console.log("browser test (" + mode + "): " + report + " in " + (await browser.version()));
  if (mode === "draw") await draw(browser, problems);
  else await verify(browser, problems);
} catch (e) {
  failures++;
  console.log("  FAILED: " + (e && e.stack ? e.stack : e));
} finally {
  await browser.close();
}
check(problems.length === 0, "no console errors, page errors or outside requests", problems);
if (failures > 0) {
  console.log("browser test (" + mode + "): " + failures + " check(s) failed");
  process.exit(1);
}
console.log("browser test (" + mode + "): all checks passed");
