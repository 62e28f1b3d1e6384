//! Reference documentation generated from the code: `spyral plugins --doc KIND` (every
//! configuration field of a phase kind with its type, default, unit and meaning, read from the
//! JSON Schema the kind reports) and `spyral schema` (a JSON Schema of the pipeline file: its
//! top-level keys and, per phase `kind`, that kind's `config`, for editors such as
//! yaml-language-server).
//!
//! Units follow the convention of `spyral_core::plugin`: a quantity's doc comment (the schema's
//! `description`) ends with `Unit: <unit>.`

use crate::plugin_host::KindView;
use serde_json::{json, Map, Value};

/// Errors while reading a kind's configuration schema.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The kind reports no schema (declared with `kind` rather than `kind_with_schema`, or built
    /// against a spyral-core from before configuration schemas).
    #[error("phase kind `{0}` does not describe its configuration (its library declares it with `kind` rather than `kind_with_schema`, or was built against an older spyral-core); its defaults:\n{1}")]
    NoSchema(String, String),
    /// The schema text is not JSON.
    #[error("phase kind `{kind}` reports a configuration schema that is not JSON: {source}")]
    BadSchema {
        /// The kind.
        kind: String,
        /// The parser's error.
        source: serde_json::Error,
    },
}

/// One documented configuration field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDoc {
    /// Dotted path in the config (`hdbscan.min_points`).
    pub path: String,
    /// Type as people read it (`number`, `integer or null`, `one of: points, segments`).
    pub ty: String,
    /// Default as compact JSON (None when the schema gives none, e.g. for a group).
    pub default: Option<String>,
    /// Unit (from `Unit: X.` in the description), if any.
    pub unit: Option<String>,
    /// The description without its unit sentence.
    pub meaning: String,
}

/// Splits `Unit: X.` off a description: (meaning, unit).
pub fn split_unit(description: &str) -> (String, Option<String>) {
    let Some(at) = description.rfind("Unit: ") else {
        return (description.trim().to_string(), None);
    };
    let rest = &description[at + "Unit: ".len()..];
    // The unit ends at a period followed by whitespace or the end (`mm/us.`, `MeV.`).
    let end = rest
        .char_indices()
        .find(|&(i, c)| {
            c == '.'
                && rest[i + 1..]
                    .chars()
                    .next()
                    .is_none_or(|n| n.is_whitespace())
        })
        .map(|(i, _)| i)
        .unwrap_or(rest.len());
    let unit = rest[..end].trim().to_string();
    let after = rest.get(end + 1..).unwrap_or("").trim();
    let mut meaning = description[..at].trim().to_string();
    if !after.is_empty() {
        meaning.push(' ');
        meaning.push_str(after);
    }
    (meaning, (!unit.is_empty()).then_some(unit))
}

/// Follows `$ref` (also inside a single-entry `allOf`) to its definition in `root`.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let mut s = schema;
    for _ in 0..16 {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(t) => s = t,
                None => return s,
            }
        } else if let Some([only]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            s = only;
        } else {
            return s;
        }
    }
    s
}

fn scalar_type(s: &Value) -> Option<String> {
    let ty = match s.get("type")? {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => return None,
    };
    Some(ty)
}

/// The values of an enum schema (`enum`, or `oneOf` of `const`s) with their descriptions.
fn enum_values(root: &Value, s: &Value) -> Option<Vec<(String, Option<String>)>> {
    if let Some(vals) = s.get("enum").and_then(Value::as_array) {
        return Some(vals.iter().map(|v| (compact(v), None)).collect());
    }
    let alts = s.get("oneOf").and_then(Value::as_array)?;
    let mut out = Vec::new();
    for a in alts {
        let a = resolve(root, a);
        if let Some(c) = a.get("const") {
            out.push((
                compact(c),
                a.get("description")
                    .and_then(Value::as_str)
                    .map(String::from),
            ));
        } else if let Some(vals) = a.get("enum").and_then(Value::as_array) {
            let d = a
                .get("description")
                .and_then(Value::as_str)
                .map(String::from);
            out.extend(vals.iter().map(|v| (compact(v), d.clone())));
        } else {
            return None;
        }
    }
    Some(out)
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn walk(root: &Value, schema: &Value, prefix: &str, out: &mut Vec<FieldDoc>) {
    let schema = resolve(root, schema);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, prop) in props {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let description = prop
            .get("description")
            .or_else(|| resolve(root, prop).get("description"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let (mut meaning, unit) = split_unit(description);
        let default = prop.get("default");
        let target = resolve(root, prop);
        // `Option<T>`: anyOf [T, null].
        let (target, nullable) = match target.get("anyOf").and_then(Value::as_array) {
            Some(alts)
                if alts.len() == 2
                    && alts.iter().any(|a| a.get("type") == Some(&json!("null"))) =>
            {
                let other = alts.iter().find(|a| a.get("type") != Some(&json!("null")));
                (other.map(|o| resolve(root, o)).unwrap_or(target), true)
            }
            _ => (target, false),
        };
        let or_null = if nullable { " or null" } else { "" };
        let is_group = target.get("properties").is_some();
        let ty = if is_group {
            format!("group{or_null}")
        } else if let Some(vals) = enum_values(root, target) {
            let names: Vec<&str> = vals.iter().map(|(v, _)| v.as_str()).collect();
            for (v, d) in &vals {
                if let Some(d) = d {
                    meaning.push_str(&format!("\n- {v}: {d}"));
                }
            }
            format!("one of: {}{or_null}", names.join(", "))
        } else {
            match scalar_type(target) {
                Some(t) => format!("{t}{or_null}"),
                None if target.as_object().is_some_and(|o| o.is_empty())
                    || target == &json!(true) =>
                {
                    "any".to_string()
                }
                None => format!("value{or_null}"),
            }
        };
        out.push(FieldDoc {
            path: path.clone(),
            ty,
            default: default.filter(|d| !d.is_object()).map(compact_json),
            unit,
            meaning,
        });
        if is_group {
            walk(root, target, &path, out);
        }
    }
}

fn compact_json(v: &Value) -> String {
    v.to_string()
}

/// Every field of a configuration schema, groups before their fields, in schema order.
pub fn fields(schema: &Value) -> Vec<FieldDoc> {
    let mut out = Vec::new();
    walk(schema, schema, "", &mut out);
    out
}

/// Parses the schema a kind reports.
pub fn kind_schema(kind: &KindView) -> Result<Value, ReferenceError> {
    let text = kind
        .config_schema
        .as_deref()
        .ok_or_else(|| ReferenceError::NoSchema(kind.kind.clone(), kind.default_config.clone()))?;
    serde_json::from_str(text).map_err(|source| ReferenceError::BadSchema {
        kind: kind.kind.clone(),
        source,
    })
}

fn wrap(text: &str, indent: usize, width: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && pad.len() + line.len() + 1 + word.len() > width {
                out.push_str(&pad);
                out.push_str(&line);
                out.push('\n');
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&pad);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The manual page of one kind: what it does, where it comes from and every field.
pub fn render_doc(kind: &KindView, library: &str) -> Result<String, ReferenceError> {
    let schema = kind_schema(kind)?;
    let mut out = String::new();
    out.push_str(&format!(
        "NAME\n    {} - {}\n\n",
        kind.kind, kind.description
    ));
    out.push_str(&format!(
        "SYNOPSIS\n    phases:\n      - kind: {}\n        name: {}   # the default name\n        config: {{...}}   # every field below is optional unless it says Required\n\n",
        kind.kind, kind.default_name
    ));
    out.push_str(&format!("LIBRARY\n    {library}\n\n"));
    if let Some(d) = schema.get("description").and_then(Value::as_str) {
        out.push_str("DESCRIPTION\n");
        out.push_str(&wrap(d, 4, 96));
        out.push('\n');
    }
    out.push_str("CONFIGURATION\n");
    let fs = fields(&schema);
    if fs.is_empty() {
        out.push_str("    (no fields)\n");
    }
    for f in fs {
        let mut head = format!("    {}  ({}", f.path, f.ty);
        if let Some(d) = &f.default {
            head.push_str(&format!("; default {d}"));
        }
        if let Some(u) = &f.unit {
            head.push_str(&format!("; unit {u}"));
        }
        head.push(')');
        out.push_str(&head);
        out.push('\n');
        if !f.meaning.is_empty() {
            out.push_str(&wrap(&f.meaning, 8, 96));
        }
    }
    Ok(out)
}

/// The `$ref` prefix of kind `kind`'s embedded schema in the pipeline schema.
fn kind_def(kind: &str) -> String {
    format!("kind:{kind}")
}

/// Rewrites the local `#/definitions/...` and `#/$defs/...` references of an embedded schema
/// to its new place `#/definitions/<def>`.
fn rebase_refs(v: &mut Value, def: &str) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if let Some(rest) = r.strip_prefix("#/") {
                    *r = format!("#/definitions/{}/{rest}", escape_pointer(def));
                } else if r == "#" {
                    *r = format!("#/definitions/{}", escape_pointer(def));
                }
            }
            for (_, x) in m.iter_mut() {
                rebase_refs(x, def);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rebase_refs(x, def)),
        _ => {}
    }
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The JSON Schema (draft-07) of a pipeline file whose phases are of `kinds`: the top-level keys
/// of `host::pipeline` and, for a phase of a known kind, that kind's `config` (`if`/`then` on
/// `kind`). A kind without a schema, or one not among `kinds` (a plugin found later), accepts any
/// `config`.
pub fn pipeline_schema(kinds: &[KindView]) -> Value {
    let mut definitions = Map::new();
    let mut cases = Vec::new();
    let mut known = Vec::new();
    for k in kinds {
        if known.contains(&k.kind) {
            continue; // the first library providing a kind is the one used
        }
        known.push(k.kind.clone());
        let Ok(mut schema) = kind_schema(k) else {
            continue;
        };
        if let Some(o) = schema.as_object_mut() {
            o.remove("$schema");
        }
        let def = kind_def(&k.kind);
        rebase_refs(&mut schema, &def);
        definitions.insert(def.clone(), schema);
        cases.push(json!({
            "if": {"properties": {"kind": {"const": k.kind}}, "required": ["kind"]},
            "then": {"properties": {"config": {"anyOf": [
                {"$ref": format!("#/definitions/{}", escape_pointer(&def))},
                {"type": "null"}
            ]}}}
        }));
    }
    let phase = json!({
        "type": "object",
        "description": "One phase of the chain.",
        "additionalProperties": false,
        "required": ["kind"],
        "properties": {
            "kind": {
                "type": "string",
                "description": format!("The phase kind (`spyral plugins` lists them; `spyral plugins --doc KIND` documents one). Known when this schema was written: {}.", known.join(", ")),
                "examples": known,
            },
            "name": {"type": "string", "description": "The phase's name: its artifact folder and how later phases find its artifacts (default: the kind's default name)."},
            "active": {"type": "boolean", "default": true, "description": "Whether the phase runs; an inactive phase only names its (existing) artifacts for the next ones."},
            "config": {"type": ["object", "null"], "description": "The kind's parameters; every field is optional unless documented as required (null or absent: all defaults)."}
        },
        "allOf": cases,
    });
    definitions.insert("phase".into(), phase);
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Spyral-rs pipeline file",
        "description": "A spyral pipeline (`spyral run FILE`). Relative paths are relative to the file. Written by `spyral schema`.",
        "type": "object",
        "additionalProperties": false,
        "required": ["workspace", "traces", "runs", "phases"],
        "properties": {
            "workspace": {"type": "string", "description": "Workspace root: one folder per phase with its artifacts, assets, logs."},
            "traces": {"type": "string", "description": "Folder of the raw trace files (run_NNNN.h5); never written to."},
            "runs": {
                "type": "object",
                "description": "Runs to consider.",
                "additionalProperties": false,
                "required": ["min", "max"],
                "properties": {
                    "min": {"type": "integer", "minimum": 0, "description": "First run (inclusive)."},
                    "max": {"type": "integer", "minimum": 0, "description": "Last run (inclusive)."},
                    "skip": {
                        "type": "array",
                        "default": [],
                        "description": "Runs not to process: numbers and `A-B` ranges (`[17, 55, 60-70]`).",
                        "items": {"anyOf": [
                            {"type": "integer", "minimum": 0},
                            {"type": "string", "pattern": "^\\s*\\d+\\s*(-\\s*\\d+\\s*)?$"}
                        ]}
                    }
                }
            },
            "workers": {"type": "integer", "minimum": 1, "default": 1, "description": "Worker processes."},
            "schedule": {"enum": ["snake", "dynamic"], "default": "snake", "description": "snake: Spyral's deal by size, decided before the start; dynamic: workers pull the next-largest run when free."},
            "seed": {"type": ["integer", "null"], "minimum": 0, "default": null, "description": "Base seed of every phase's randomness (null: drawn at random at each launch)."},
            "plugins": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Extra plugin library files or folders, searched first."},
            "on_error": {"enum": ["continue", "abort"], "default": "continue", "description": "continue: record a failed run and go on; abort: stop everything at the first failure."},
            "run_timeout": {
                "anyOf": [
                    {"type": "number", "exclusiveMinimum": 0},
                    {"type": "string", "pattern": "^\\s*[0-9.eE+-]+\\s*(s|sec|m|min|h|d)?\\s*$"},
                    {"type": "null"}
                ],
                "default": null,
                "description": "Longest time one run may take (all its phases): seconds, or text with a unit (`90s`, `45m`, `2h`); null: no limit."
            },
            "chunk_events": {"type": "integer", "minimum": 0, "default": 1000, "description": "Runs with more events are split into chunks of about this many events (when every active phase can be split and the launch has more than one worker); 0: never split."},
            "anchors": {"description": "Ignored: a place for YAML anchors (`&detector`) that phases refer to (`*detector`)."},
            "phases": {"type": "array", "items": {"$ref": "#/definitions/phase"}, "description": "The phases in chain order."}
        },
        "definitions": definitions,
    })
}

/// The top-level keys the pipeline schema describes (checked against the parser in tests).
pub fn pipeline_keys(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin_kinds() -> Vec<KindView> {
        let lib = crate::plugins::builtin();
        lib.info
            .kinds
            .iter()
            .map(|k| KindView {
                kind: k.kind.to_string(),
                default_name: k.default_name.to_string(),
                description: k.description.to_string(),
                default_config: k.default_config.to_string(),
                config_schema: lib.config_schema(k.kind.as_str()),
            })
            .collect()
    }

    #[test]
    fn units_split_off() {
        assert_eq!(
            split_unit("Magnetic field along +z. Unit: T."),
            ("Magnetic field along +z.".into(), Some("T".into()))
        );
        assert_eq!(
            split_unit("Drift speed. Unit: mm/us. Measured."),
            ("Drift speed. Measured.".into(), Some("mm/us".into()))
        );
        assert_eq!(split_unit("A count."), ("A count.".into(), None));
    }

    #[test]
    fn every_builtin_field_has_a_type_a_meaning_and_defaults_match() {
        for k in builtin_kinds() {
            let schema = kind_schema(&k).unwrap();
            let defaults: Value = serde_json::from_str(&k.default_config).unwrap();
            let fs = fields(&schema);
            assert!(fs.len() > 3, "{}: {fs:?}", k.kind);
            for f in &fs {
                assert!(
                    !f.meaning.is_empty(),
                    "{}.{} has no description",
                    k.kind,
                    f.path
                );
                // The schema's default is the value `default_config` reports.
                if let Some(d) = &f.default {
                    let ptr = format!("/{}", f.path.replace('.', "/"));
                    // A field of a group whose default is null has its group's own default.
                    let parent = &ptr[..ptr.rfind('/').unwrap_or(0)];
                    if !parent.is_empty() && defaults.pointer(parent).is_some_and(Value::is_null) {
                        continue;
                    }
                    let actual = defaults.pointer(&ptr).map(Value::to_string);
                    assert_eq!(actual.as_deref(), Some(d.as_str()), "{} {}", k.kind, f.path);
                }
            }
        }
    }

    #[test]
    fn cluster_doc_names_units_and_nested_fields() {
        let k = builtin_kinds()
            .into_iter()
            .find(|k| k.kind == "cluster")
            .unwrap();
        let doc = render_doc(&k, "spyral-phases (built in)").unwrap();
        assert!(
            doc.contains("hdbscan.cluster_selection_epsilon  (number; default 10.0; unit mm)"),
            "{doc}"
        );
        assert!(
            doc.contains("detector.magnetic_field  (number; default 2.85; unit T)"),
            "{doc}"
        );
        let k = builtin_kinds()
            .into_iter()
            .find(|k| k.kind == "interp-solver")
            .unwrap();
        let doc = render_doc(&k, "x").unwrap();
        assert!(
            doc.contains("fit_method  (one of: lbfgsb, leastsq"),
            "{doc}"
        );
        assert!(
            doc.contains("gas_data_path  (string or null; default null)"),
            "{doc}"
        );
    }

    #[test]
    fn no_schema_is_a_clear_error() {
        let k = KindView {
            kind: "old".into(),
            default_name: "Old".into(),
            description: String::new(),
            default_config: "{}".into(),
            config_schema: None,
        };
        let e = render_doc(&k, "x").unwrap_err().to_string();
        assert!(e.contains("does not describe its configuration"), "{e}");
    }

    #[test]
    fn pipeline_schema_keys_are_the_parser_keys() {
        let schema = pipeline_schema(&builtin_kinds());
        let mut keys = pipeline_keys(&schema);
        keys.sort();
        // The parser names every key it accepts when it meets an unknown one.
        let text = "workspace: w\ntraces: t\nruns: {min: 1, max: 1}\nphases: []\nbogus_key: 1\n";
        let e = crate::pipeline::Pipeline::parse(std::path::Path::new("p.yaml"), text)
            .unwrap_err()
            .to_string();
        let list = e
            .split("expected one of ")
            .nth(1)
            .and_then(|t| t.lines().next())
            .unwrap_or_else(|| panic!("{e}"));
        let mut expected: Vec<String> = list
            .split(',')
            .map(|k| k.trim().trim_matches('`').to_string())
            .collect();
        expected.sort();
        assert_eq!(keys, expected, "{e}");
        let defs = schema["definitions"].as_object().unwrap();
        for kind in ["pointcloud", "cluster", "estimation", "interp-solver"] {
            assert!(defs.contains_key(&format!("kind:{kind}")), "{kind}");
        }
        // Every reference resolves inside the document.
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|x| refs(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&schema, &mut all);
        assert!(all.len() > 8);
        for r in all {
            let ptr = r
                .strip_prefix('#')
                .unwrap()
                .replace("~1", "/")
                .replace("~0", "~");
            // Pointer segments are unescaped by `pointer` itself; pass the escaped form.
            let escaped = r.strip_prefix('#').unwrap();
            assert!(
                schema.pointer(escaped).is_some(),
                "{r} ({ptr}) does not resolve"
            );
        }
    }
}
