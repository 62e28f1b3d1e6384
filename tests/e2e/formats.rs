//! The artifact reference (docs/formats.md) against what the default phases write: a small
//! simulated chain runs with the real binary, then every file, HDF5 object, attribute and parquet
//! column named in the document's tables must exist with the stated dtype (and column count), and
//! every file and object the artifacts hold must be named there; spyral-data's typed rows
//! rewrite the Estimation and InterpSolver tables byte for byte. Also the generated reference:
//! `spyral plugins --doc` and `spyral schema` (which must validate the example pipeline).

use spyral_data::hdf5;
use spyral_data::parquet::basic::Type as Physical;
use spyral_data::parquet::file::reader::{FileReader, SerializedFileReader};
use spyral_e2e::{workspace_root, Sandbox};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One table of the document: its marker (after `table:`) and its rows (cells, backticks removed).
struct DocTable {
    marker: String,
    rows: Vec<Vec<String>>,
}

fn doc_tables() -> Vec<DocTable> {
    let text = std::fs::read_to_string(workspace_root().join("docs/formats.md")).unwrap();
    let mut tables = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(marker) = line
            .trim()
            .strip_prefix("<!-- table:")
            .and_then(|m| m.strip_suffix("-->"))
        else {
            continue;
        };
        let mut rows = Vec::new();
        // Header and separator, then rows until the first line that is not a table row.
        let _header = lines.next();
        let _sep = lines.next();
        while let Some(l) = lines.peek() {
            if !l.starts_with('|') {
                break;
            }
            let inner = l.trim().strip_prefix('|').and_then(|r| r.strip_suffix('|'));
            let cells: Vec<String> = inner
                .unwrap_or_else(|| panic!("table row without outer pipes: {l}"))
                .split('|')
                .map(|c| c.trim().replace('`', ""))
                .collect();
            rows.push(cells);
            lines.next();
        }
        tables.push(DocTable {
            marker: marker.trim().to_string(),
            rows,
        });
    }
    tables
}

/// A documented path pattern (`run_NNNN_<iso>.parquet`) as a matcher.
fn matches(pattern: &str, actual: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        if p.is_empty() {
            return a.is_empty();
        }
        if p.starts_with(b"NNNN") {
            return a.len() >= 4 && a[..4].iter().all(u8::is_ascii_digit) && go(&p[4..], &a[4..]);
        }
        if p[0] == b'<' {
            let close = p.iter().position(|&c| c == b'>').unwrap();
            // A placeholder is one or more characters that are not `/`.
            return (1..=a.len())
                .take_while(|&n| a[n - 1] != b'/')
                .any(|n| go(&p[close + 1..], &a[n..]));
        }
        !a.is_empty() && p[0] == a[0] && go(&p[1..], &a[1..])
    }
    go(pattern.as_bytes(), actual.as_bytes())
}

/// A numbered HDF5 member name (`cloud_12`) with its number replaced by the document's
/// placeholder.
fn normalise(name: &str) -> String {
    for (prefix, placeholder) in [
        ("cloud_", "cloud_<event>"),
        ("event_", "event_<event>"),
        ("cluster_", "cluster_<k>"),
    ] {
        if let Some(n) = name.strip_prefix(prefix) {
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                return placeholder.to_string();
            }
        }
    }
    name.to_string()
}

fn dtype_name(t: &hdf5::types::TypeDescriptor) -> String {
    use hdf5::types::{FloatSize, IntSize, TypeDescriptor as T};
    let bits = |s: IntSize| match s {
        IntSize::U1 => 8,
        IntSize::U2 => 16,
        IntSize::U4 => 32,
        IntSize::U8 => 64,
    };
    match t {
        T::Integer(s) => format!("int{}", bits(*s)),
        T::Unsigned(s) => format!("uint{}", bits(*s)),
        T::Float(FloatSize::U4) => "float32".into(),
        T::Float(FloatSize::U8) => "float64".into(),
        other => format!("{other:?}"),
    }
}

/// What an HDF5 file holds: object (`/a/b` or `/a@attr`, numbered names normalised) -> (kind,
/// dtype, shape). Objects with the same normalised name must agree.
type Objects = BTreeMap<String, (String, String, String)>;

fn note(out: &mut Objects, key: String, value: (String, String, String)) {
    if let Some(old) = out.insert(key.clone(), value.clone()) {
        assert_eq!(old, value, "{key} differs between members");
    }
}

fn attr_shape(a: &hdf5::Attribute) -> String {
    if a.ndim() == 0 {
        "scalar".into()
    } else {
        format!("{:?}", a.shape())
    }
}

fn walk(group: &hdf5::Group, path: &str, out: &mut Objects) {
    for attr in group.attr_names().unwrap() {
        let a = group.attr(&attr).unwrap();
        let shape = attr_shape(&a);
        note(
            out,
            format!("{path}@{attr}"),
            (
                "attribute".into(),
                dtype_name(&a.dtype().unwrap().to_descriptor().unwrap()),
                shape,
            ),
        );
    }
    for name in group.member_names().unwrap() {
        let child = format!("{path}/{}", normalise(&name));
        if let Ok(g) = group.group(&name) {
            note(
                out,
                child.clone(),
                ("group".into(), String::new(), String::new()),
            );
            walk(&g, &child, out);
        } else {
            let ds = group.dataset(&name).unwrap();
            let shape = ds.shape();
            let shape = match shape.len() {
                2 => format!("(N, {})", shape[1]),
                n => format!("rank {n}"),
            };
            note(
                out,
                child.clone(),
                (
                    "dataset".into(),
                    dtype_name(&ds.dtype().unwrap().to_descriptor().unwrap()),
                    shape,
                ),
            );
            for attr in ds.attr_names().unwrap() {
                let a = ds.attr(&attr).unwrap();
                let shape = attr_shape(&a);
                note(
                    out,
                    format!("{child}@{attr}"),
                    (
                        "attribute".into(),
                        dtype_name(&a.dtype().unwrap().to_descriptor().unwrap()),
                        shape,
                    ),
                );
            }
        }
    }
}

fn parquet_columns(path: &Path) -> Vec<(String, String)> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    schema
        .columns()
        .iter()
        .map(|c| {
            let ty = match c.physical_type() {
                Physical::INT64 => "int64".to_string(),
                Physical::DOUBLE => "float64".to_string(),
                Physical::INT32 => "int32".to_string(),
                Physical::FLOAT => "float32".to_string(),
                other => format!("{other:?}"),
            };
            (c.name().to_string(), ty)
        })
        .collect()
}

/// Every file under the workspace's phase and asset folders, relative (logs and locks are the
/// framework's, described in ARCHITECTURE.md).
fn files(root: &Path) -> Vec<String> {
    fn go(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                go(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() && name != "log" && name != ".spyral" {
            go(&p, root, &mut out);
        }
    }
    out.sort();
    out
}

fn the_file(all: &[String], root: &Path, pattern: &str) -> PathBuf {
    let hits: Vec<&String> = all.iter().filter(|f| matches(pattern, f)).collect();
    assert_eq!(hits.len(), 1, "{pattern}: {hits:?} in {all:?}");
    root.join(hits[0])
}

#[test]
fn formats_doc_matches_what_the_default_phases_write() {
    let tables = doc_tables();
    assert!(tables.len() >= 8, "{} tables", tables.len());
    let sb = Sandbox::new();
    sb.simulated(1, 12, 5);
    let p = sb.file(
        "p.yaml",
        "workspace: ws\ntraces: traces\nruns: {min: 1, max: 1}\nseed: 2\nphases:
  - kind: pointcloud
  - kind: cluster
  - kind: estimation
  - kind: interp-solver
    config: {gas_data_path: gas.json, particle_id_filename: pid.json, n_time_steps: 200, interp_ke_max: 80.0, interp_ke_bins: 60, interp_polar_bins: 40}
",
    );
    let out = sb.spyral(&["run", p.to_str().unwrap(), "--no-display"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let root = sb.ws();
    let all = files(&root);

    // Files: each exists, and nothing undocumented is there.
    let file_table = tables.iter().find(|t| t.marker == "files").unwrap();
    let patterns: Vec<&str> = file_table.rows.iter().map(|r| r[0].as_str()).collect();
    for pat in &patterns {
        assert!(
            all.iter().any(|f| matches(pat, f)),
            "documented file {pat} not written: {all:?}"
        );
    }
    for f in &all {
        assert!(
            patterns.iter().any(|p| matches(p, f)),
            "undocumented file {f}"
        );
    }

    let mut checked = 0;
    for t in &tables {
        let words: Vec<&str> = t.marker.split_whitespace().collect();
        match words.as_slice() {
            ["files"] => {}
            ["hdf5", file] => {
                let path = the_file(&all, &root, file);
                let h5 = hdf5::File::open(&path).unwrap();
                let mut actual = Objects::new();
                walk(&h5, "", &mut actual);
                let mut documented = BTreeSet::new();
                for r in &t.rows {
                    let (obj, kind, dtype, shape) = (&r[0], &r[1], &r[2], &r[3]);
                    let got = actual
                        .get(obj)
                        .unwrap_or_else(|| panic!("{file}: documented {obj} not written"));
                    assert_eq!(
                        (&got.0, &got.1, &got.2),
                        (kind, dtype, shape),
                        "{file}: {obj} (kind, dtype, shape)"
                    );
                    documented.insert(obj.clone());
                    checked += 1;
                }
                for obj in actual.keys() {
                    assert!(documented.contains(obj), "{file}: undocumented {obj}");
                }
            }
            ["columns", file, dataset] => {
                let h5 = hdf5::File::open(the_file(&all, &root, file)).unwrap();
                let mut actual = Objects::new();
                walk(&h5, "", &mut actual);
                let shape = &actual[*dataset].2;
                assert_eq!(shape, &format!("(N, {})", t.rows.len()), "{file} {dataset}");
                for (i, r) in t.rows.iter().enumerate() {
                    assert_eq!(r[0], i.to_string(), "{dataset}: column indices in order");
                    assert!(!r[2].is_empty(), "{dataset} column {} has a unit", r[1]);
                }
                checked += 1;
            }
            ["parquet", file] => {
                let cols = parquet_columns(&the_file(&all, &root, file));
                let documented: Vec<(String, String)> = t
                    .rows
                    .iter()
                    .map(|r| (r[0].clone(), r[1].clone()))
                    .collect();
                assert_eq!(cols, documented, "{file}: columns (name, dtype) in order");
                checked += cols.len();
            }
            other => panic!("unknown table marker {other:?}"),
        }
    }
    assert!(checked > 60, "{checked} objects checked");
    let gated = std::fs::read_to_string(the_file(
        &all,
        &root,
        "Pointcloud/run_NNNN_gated_ic_scaler.txt",
    ))
    .unwrap();
    assert!(
        gated.starts_with("IC counts with multiplicity <= "),
        "{gated}"
    );

    // The typed rows of spyral-data read the tables the phases wrote and write them back in
    // exactly their layout (the same bytes).
    let copy = sb.path().join("copy.parquet");
    let estimation = the_file(&all, &root, "Estimation/run_NNNN.parquet");
    let rows = spyral_data::artifacts::EstimateRow::read(&estimation).unwrap();
    assert!(!rows.is_empty());
    spyral_data::artifacts::EstimateRow::write(&rows, &copy).unwrap();
    assert!(std::fs::read(&copy).unwrap() == std::fs::read(&estimation).unwrap());
    let fits = the_file(&all, &root, "InterpSolver/run_NNNN_<iso>.parquet");
    let rows = spyral_data::artifacts::FitRow::read(&fits).unwrap();
    assert!(rows.iter().all(|r| r.ke > 0.0 && r.sigma_ke == 1e6));
    spyral_data::artifacts::FitRow::write(&rows, &copy).unwrap();
    assert!(std::fs::read(&copy).unwrap() == std::fs::read(&fits).unwrap());
}

#[test]
fn plugins_doc_shows_units_defaults_and_suggests_on_a_typo() {
    let sb = Sandbox::new();
    let out = sb.spyral(&["plugins", "--doc", "cluster"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stdout
            .contains("hdbscan.cluster_selection_epsilon  (number; default 10.0; unit mm)"),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .contains("detector.magnetic_field  (number; default 2.85; unit T)"));
    let out = sb.spyral(&["plugins", "--doc", "interp-solver"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stdout
            .contains("interp_polar_min  (number; default 2.0; unit deg)"),
        "{}",
        out.stdout
    );
    // A plugin's kind (the template, beside the binary) is described from its own schema.
    let out = sb.spyral(&["plugins", "--doc", "template"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stdout
            .contains("buffer_kib  (integer; default 256; unit KiB)"),
        "{}",
        out.stdout
    );
    let out = sb.spyral(&["plugins", "--doc", "clustr"]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("did you mean `cluster`"),
        "{}",
        out.all()
    );
}

/// YAML (with anchors and aliases) to JSON, as an editor's language server sees it.
fn yaml_to_json(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).unwrap()
}

#[test]
fn schema_validates_the_example_pipeline_and_rejects_mistakes() {
    let sb = Sandbox::new();
    let out = sb.spyral(&["schema", "--out", "schema.json"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path().join("schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::draft7::new(&schema).expect("a valid draft-07 schema");
    let demo = std::fs::read_to_string(workspace_root().join("examples/demo.yaml")).unwrap();
    let doc = yaml_to_json(&demo);
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "examples/demo.yaml: {errors:?}");
    // The same file to standard output.
    let out = sb.spyral(&["schema"]);
    let printed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed, schema);
    // A misspelt top-level key, a misspelt config field and a wrong type are refused.
    for (from, to) in [
        ("workers: 2", "wrokers: 2"),
        ("      n_time_steps: 500", "      n_time_step: 500"),
        ("      interp_ke_bins: 250", "      interp_ke_bins: many"),
        ("    magnetic_field: 2.85", "    magnetic_field: strong"),
    ] {
        assert!(demo.contains(from), "{from}");
        let bad = yaml_to_json(&demo.replace(from, to));
        assert!(!validator.is_valid(&bad), "accepted {to}");
    }
}
