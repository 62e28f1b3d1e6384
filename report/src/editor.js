// The PID gate editor: click on the PID plot to draw a polygon, name it (Z, A) and save it as
// Spyral's particle-ID JSON ({"name", "Z", "A", "xaxis", "yaxis", "vertices"}), the format
// InterpSolver's particle_id_filename reads. Data coordinates come from the plot's mapping in
// the page data (pid.plot, pid.x_range, pid.y_range); saving is a download of a Blob.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("spyral-report-data").textContent);
  const pid = data.pid;
  const svg = document.getElementById("pid-svg");
  const area = document.getElementById("pid-area");
  const layer = document.getElementById("pid-edit");
  const NS = svg.namespaceURI;
  const $ = (id) => document.getElementById(id);
  const box = pid.plot;
  const [x0, x1] = pid.x_range;
  const [y0, y1] = pid.y_range;
  let verts = [];
  let closed = false;
  let hover = null;

  // Screen position of a mouse event -> SVG user units (whatever the CSS scaling).
  function svgPoint(evt) {
    const pt = svg.createSVGPoint();
    pt.x = evt.clientX;
    pt.y = evt.clientY;
    return pt.matrixTransform(svg.getScreenCTM().inverse());
  }
  const toData = (p) => [
    x0 + ((p.x - box.left) / box.width) * (x1 - x0),
    y0 + ((box.top + box.height - p.y) / box.height) * (y1 - y0),
  ];
  const toSvg = (v) => [
    box.left + ((v[0] - x0) / (x1 - x0)) * box.width,
    box.top + box.height - ((v[1] - y0) / (y1 - y0)) * box.height,
  ];
  const round = (v) => Number(v.toPrecision(7));
  const fmt = (v) => String(Number(v.toPrecision(5)));

  function el(name, attrs) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }

  // Even-odd point-in-polygon test; boundary points count as outside.
  function inside(poly, x, y) {
    let c = false;
    for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
      const [xi, yi] = poly[i];
      const [xj, yj] = poly[j];
      if (yi > y !== yj > y && x < xi + ((y - yi) * (xj - xi)) / (yj - yi)) c = !c;
    }
    return c;
  }

  // Estimates inside the polygon, counted at bin centres.
  function countInside() {
    const [nx, ny] = pid.bins;
    let n = 0;
    for (let iy = 0; iy < ny; iy++) {
      const y = y0 + ((iy + 0.5) / ny) * (y1 - y0);
      for (let ix = 0; ix < nx; ix++) {
        const c = pid.counts[iy * nx + ix];
        if (c && inside(verts, x0 + ((ix + 0.5) / nx) * (x1 - x0), y)) n += c;
      }
    }
    return n;
  }

  function redraw() {
    while (layer.firstChild) layer.removeChild(layer.firstChild);
    const pts = verts.map(toSvg);
    if (pts.length > 1 || (pts.length === 1 && hover)) {
      const all = closed || !hover ? pts : pts.concat([hover]);
      const shape = el(closed ? "polygon" : "polyline", {
        points: all.map((p) => p[0] + "," + p[1]).join(" "),
        fill: closed ? "rgba(255,255,255,0.15)" : "none",
        stroke: "#fff",
        "stroke-width": 3,
      });
      const inner = shape.cloneNode();
      inner.setAttribute("stroke", "#e0007a");
      inner.setAttribute("stroke-width", 1.6);
      if (!closed) inner.setAttribute("stroke-dasharray", "5 3");
      layer.appendChild(shape);
      layer.appendChild(inner);
    }
    pts.forEach((p, i) => {
      layer.appendChild(el("circle", { cx: p[0], cy: p[1], r: i === 0 ? 5 : 3.5, fill: "#e0007a", stroke: "#fff", "stroke-width": 1.5 }));
    });
    const list = $("gate-vertices");
    list.textContent = "";
    for (const v of verts) {
      const li = document.createElement("li");
      li.textContent = fmt(v[0]) + ", " + fmt(v[1]);
      list.appendChild(li);
    }
    let status;
    if (!verts.length) status = "No vertices yet.";
    else if (verts.length < 3) status = verts.length + " vertices: add at least 3.";
    else status = verts.length + " vertices" + (closed ? " (closed)" : "") + "; about " + countInside() + " of " + pid.total + " estimates inside (bin centres).";
    $("gate-status").textContent = status;
  }

  area.addEventListener("click", (evt) => {
    if (closed) return;
    const p = svgPoint(evt);
    if (verts.length >= 3) {
      const f = toSvg(verts[0]);
      if (Math.hypot(f[0] - p.x, f[1] - p.y) < 7) {
        closed = true;
        hover = null;
        redraw();
        return;
      }
    }
    verts.push(toData(p).map(round));
    redraw();
  });
  area.addEventListener("mousemove", (evt) => {
    const p = svgPoint(evt);
    const d = toData(p);
    $("gate-cursor").textContent = pid.x_axis + " = " + fmt(d[0]) + ", " + pid.y_axis + " = " + fmt(d[1]);
    if (!closed && verts.length) {
      hover = [p.x, p.y];
      redraw();
    }
  });
  area.addEventListener("mouseleave", () => {
    hover = null;
    redraw();
  });
  $("gate-undo").addEventListener("click", () => {
    if (closed) closed = false;
    else verts.pop();
    redraw();
  });
  $("gate-clear").addEventListener("click", () => {
    verts = [];
    closed = false;
    redraw();
  });
  $("gate-close").addEventListener("click", () => {
    if (verts.length >= 3) closed = true;
    hover = null;
    redraw();
  });

  // The gate as InterpSolver reads it: polygon closed by repeating the first vertex.
  function gateJson() {
    const name = $("gate-name").value.trim() || "gate";
    const Z = Number($("gate-z").value);
    const A = Number($("gate-a").value);
    if (verts.length < 3) throw new Error("draw at least 3 vertices first");
    if (!Number.isInteger(Z) || Z < 1) throw new Error("Z must be a positive integer");
    if (!Number.isInteger(A) || A < Z) throw new Error("A must be an integer no smaller than Z");
    const vertices = verts.map((v) => [v[0], v[1]]);
    vertices.push([verts[0][0], verts[0][1]]);
    return { name: name, Z: Z, A: A, xaxis: pid.x_axis, yaxis: pid.y_axis, vertices: vertices };
  }

  $("gate-save").addEventListener("click", () => {
    let gate;
    try {
      gate = gateJson();
    } catch (e) {
      $("gate-status").textContent = "Not saved: " + e.message + ".";
      return;
    }
    closed = true;
    redraw();
    const blob = new Blob([JSON.stringify(gate, null, 4) + "\n"], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = gate.name.replace(/[^A-Za-z0-9_.-]+/g, "_") + ".json";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    $("gate-status").textContent = "Saved " + a.download + " (" + (gate.vertices.length - 1) + " vertices).";
  });
  redraw();
})();
