//! End-to-end test of the default chain on simulated data, checked with the tools physicists
//! use: h5py opens the Pointcloud and Cluster artifacts and finds Spyral's names, shapes, dtypes
//! and attributes; polars reads the Estimation parquet with Spyral's schema. Needs python3 with
//! h5py and polars (`scripts/setup-system.sh` installs them).

use spyral_e2e::Sandbox;
use std::process::Command;

fn python(script: &str) -> (bool, String) {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn default_chain_outputs_open_in_h5py_and_polars() {
    let sb = Sandbox::new();
    let out = sb.spyral(&[
        "simulate", "--out", "traces", "--runs", "2", "--events", "40", "--seed", "3",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let p = sb.file(
        "p.yaml",
        &format!(
            "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 2}}\nworkers: 2\nseed: 1\nplugins: [{}]\nphases:\n  - kind: pointcloud\n  - kind: cluster\n  - kind: estimation\n  - kind: charge-sum\n    active: false\n",
            spyral_e2e::plugin("charge_sum").display()
        ),
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let ws = sb.ws();
    // The example plugin reads Pointcloud's artifact: run it after Pointcloud.
    let p2 = sb.file(
        "p2.yaml",
        &format!(
            "workspace: ws\ntraces: traces\nruns: {{min: 1, max: 2}}\nseed: 1\nplugins: [{}]\nphases:\n  - kind: pointcloud\n  - kind: charge-sum\n    config: {{min_points: 20}}\n",
            spyral_e2e::plugin("charge_sum").display()
        ),
    );
    let out = sb.spyral(&["run", p2.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let (ok, text) = python(&format!(
        r#"
import polars as pl, h5py
df = pl.read_parquet("{cs}")
assert df.columns == ["event", "points", "pads", "total_amplitude", "total_integral", "mean_z"], df.columns
assert df.height > 10 and (df["points"] >= 20).all()
f = h5py.File("{pc}", "r")["cloud"]
ev = int(df["event"][0])
d = f[f"cloud_{{ev}}"][:]
d = d[(d[:, 2] >= 0) & (d[:, 2] <= 1000)]
assert d.shape[0] == int(df["points"][0]), (d.shape, df["points"][0])
assert abs(d[:, 3].sum() - df["total_amplitude"][0]) < 1e-6
print("charge-sum ok", df.height)
"#,
        cs = ws.join("ChargeSum/run_0001.parquet").display(),
        pc = ws.join("Pointcloud/run_0001.h5").display()
    ));
    assert!(ok, "{text}");
    let (ok, text) = python(&format!(
        r#"
import h5py, numpy as np
f = h5py.File("{pc}", "r")
g = f["cloud"]
assert g.attrs["min_event"] == 0 and g.attrs["max_event"] == 39, dict(g.attrs)
names = [k for k in g.keys()]
assert len(names) > 20 and all(k.startswith("cloud_") for k in names), names[:5]
pts = 0
for k in names:
    d = g[k]
    assert d.dtype == np.float64 and d.ndim == 2 and d.shape[1] == 8, (k, d.dtype, d.shape)
    for a in ["orig_run", "orig_event", "ic_amplitude", "ic_integral", "ic_centroid", "ic_multiplicity"]:
        assert a in d.attrs, (k, a)
    z = d[:, 2]
    assert np.all(np.diff(z) >= 0), k
    assert np.all((z > -50) & (z < 1050)), (k, z.min(), z.max())
    pts += d.shape[0]
assert pts / len(names) > 30, pts / len(names)
c = h5py.File("{cl}", "r")["cluster"]
assert "min_event" in c.attrs and "max_event" in c.attrs
ev = [k for k in c.keys() if k.startswith("event_")]
assert len(ev) > 10, len(ev)
nclusters = 0
for k in ev:
    e = c[k]
    for a in ["nclusters", "orig_run", "orig_event", "ic_amplitude", "ic_centroid", "ic_integral", "ic_multiplicity"]:
        assert a in e.attrs, (k, a)
    n = int(e.attrs["nclusters"])
    nclusters += n
    for i in range(n):
        cl = e[f"cluster_{{i}}"]
        assert "label" in cl.attrs and "direction" in cl.attrs
        assert cl["cloud"].dtype == np.float64 and cl["cloud"].shape[1] == 5
assert nclusters > 0
print("h5py ok", len(names), "clouds", nclusters, "clusters")
"#,
        pc = ws.join("Pointcloud/run_0001.h5").display(),
        cl = ws.join("Cluster/run_0001.h5").display()
    ));
    assert!(ok, "{text}");
    let (ok, text) = python(&format!(
        r#"
import polars as pl
df = pl.read_parquet("{est}")
ints = ["event", "cluster_index", "cluster_label", "orig_run", "orig_event"]
floats = ["ic_amplitude", "ic_centroid", "ic_integral", "ic_multiplicity", "vertex_x", "vertex_y",
          "vertex_z", "center_x", "center_y", "center_z", "polar", "azimuthal", "brho", "dEdx",
          "sqrt_dEdx", "dE", "arclength"]
assert df.columns == ints + floats + ["direction"], df.columns
for c in ints + ["direction"]:
    assert df.schema[c] == pl.Int64, (c, df.schema[c])
for c in floats:
    assert df.schema[c] == pl.Float64, (c, df.schema[c])
assert df.height > 0
assert df["direction"].is_in([-1, 0, 1]).all()
s = pl.read_parquet("{sc}")
assert s.columns[0] == "event" and len(s.columns) == 12
print("polars ok", df.height, "estimates")
"#,
        est = ws.join("Estimation/run_0001.parquet").display(),
        sc = ws.join("Pointcloud/run_0001_scaler.parquet").display()
    ));
    assert!(ok, "{text}");
}
