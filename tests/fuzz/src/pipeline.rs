//! The `pipeline` target: `spyral_host::pipeline::Pipeline::parse(path, text)` on generated
//! and mutated pipeline files.
//!
//! A case starts from `examples/demo.yaml`, `examples/template.yaml` or a synthetic file using
//! every key, turns it into a tree, mutates the tree (hostile scalars: huge and non-finite
//! numbers, control characters, very long strings; keys renamed, removed, added or emptied;
//! values wrapped in lists and maps; lists repeated), writes it back as block YAML or as JSON,
//! then mutates the text (alias bombs feeding a phase config, deep flow and block nesting, lines
//! of megabytes, control characters and BOMs, tags, merge keys, directives, several documents,
//! complex keys, undefined and self-referencing aliases, numbers in every YAML notation, spans
//! deleted, duplicated or swapped, truncation).
//!
//! The oracle: no panic (the driver catches it), bounded time and memory (measured by the
//! driver), and every error message names the file.

use crate::{Finding, Outcome};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde_json::{Map, Value};
use spyral_host::pipeline::Pipeline;
use std::path::{Path, PathBuf};

const DEMO: &str = include_str!("../../../examples/demo.yaml");
const TEMPLATE: &str = include_str!("../../../examples/template.yaml");
const FULL: &str = "\
workspace: ws
traces: traces
runs: {min: 1, max: 40, skip: [3, 5-9]}
workers: 2
schedule: dynamic
seed: 17
plugins: [plugins/a.so]
on_error: abort
run_timeout: 2h
anchors:
  d: &d {magnetic_field: 2.85}
phases:
  - kind: pointcloud
    name: Pc
    active: true
    config: {detector: *d}
  - kind: cluster
    active: false
";

/// Runs one case with `seed`; `scratch` is only used to build the file's (never created) path.
pub fn run_case(seed: u64, scratch: &Path) -> Result<Outcome, Finding> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut notes = Vec::new();
    let base = *[DEMO, TEMPLATE, FULL].choose(&mut rng).unwrap_or(&DEMO);
    let mut text = base.to_string();
    if rng.random_bool(0.7) {
        if let Ok(mut tree) = serde_saphyr::from_str::<Value>(base) {
            let n = rng.random_range(0..4);
            for _ in 0..n {
                notes.push(format!("tree: {}", mutate_tree(&mut rng, &mut tree)));
            }
            text = if rng.random_bool(0.8) {
                let mut out = String::new();
                emit_block(&tree, 0, &mut out);
                out
            } else {
                let mut out = Capped(Vec::new());
                // A write past the cap stops serialisation; what was written so far is kept.
                let _ = serde_json::to_writer_pretty(&mut out, &tree);
                String::from_utf8_lossy(&out.0).into_owned()
            };
            cap(&mut text);
        }
    }
    for _ in 0..rng.random_range(0..4) {
        notes.push(format!("text: {}", mutate_text(&mut rng, &mut text)));
        cap(&mut text);
    }
    let path: PathBuf = match rng.random_range(0..5) {
        0 => PathBuf::from("pipeline.yaml"),
        1 => scratch.join("my pipeline ü $(touch x).yaml"),
        2 => scratch.join("deep/er/pipeline.yml"),
        3 => PathBuf::from("/pipeline.yaml"),
        _ => scratch.join("pipeline.yaml"),
    };
    notes.push(format!(
        "parsing {} bytes as {}",
        text.len(),
        path.display()
    ));
    crate::announce(&notes, false);
    let (parsed, elapsed, peak_kib) = crate::measured(|| Pipeline::parse(&path, &text));
    match parsed {
        Ok(p) => {
            notes.push(format!(
                "parsed: {} phases, runs {}..={}",
                p.phases.len(),
                p.runs.min,
                p.runs.max
            ));
            Ok(Outcome {
                class: "ok".into(),
                notes,
                elapsed,
                peak_kib,
            })
        }
        Err(e) => {
            let msg = e.to_string();
            let name = path.display().to_string();
            if !msg.contains(&name) {
                return Err(Finding {
                    message: format!(
                        "the error does not name the file {name}: {}",
                        msg.chars().take(500).collect::<String>()
                    ),
                    notes,
                });
            }
            notes.push(format!(
                "error: {}",
                msg.chars().take(300).collect::<String>()
            ));
            let class = match e {
                spyral_host::pipeline::PipelineError::Syntax { .. } => "syntax",
                spyral_host::pipeline::PipelineError::Invalid { .. } => "invalid",
                spyral_host::pipeline::PipelineError::TooLarge { .. } => "too-large",
                _ => "other",
            };
            Ok(Outcome {
                class: class.into(),
                notes,
                elapsed,
                peak_kib,
            })
        }
    }
}

/// Longest generated text: above the parser's own bound
/// ([`spyral_host::pipeline::MAX_PIPELINE_BYTES`]), so oversized files are exercised, but small
/// enough that building a case (repeats of deep nesting, duplicated spans) stays fast.
const TEXT_CAP: usize = 24 << 20;

/// Cuts `text` to [`TEXT_CAP`] bytes (at a character boundary).
fn cap(text: &mut String) {
    if text.len() > TEXT_CAP {
        let mut end = TEXT_CAP;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// A writer that refuses bytes past [`TEXT_CAP`].
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > TEXT_CAP {
            return Err(std::io::Error::other("generated text reached its cap"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Tree mutations

/// A hostile scalar or small structure.
fn hostile_value(rng: &mut Pcg64) -> Value {
    match rng.random_range(0..16) {
        0 => Value::from(0),
        1 => Value::from(-1),
        2 => Value::from(u64::MAX),
        3 => Value::from(i64::MIN),
        4 => Value::from(u32::MAX as u64 + 1),
        5 => serde_json::Number::from_f64(1e300).map_or(Value::Null, Value::Number),
        6 => Value::from(""),
        7 => Value::from("\u{0}\u{1b}[2J\u{7f}\u{85}\u{2028}\u{202e}"),
        8 => Value::from("x".repeat(rng.random_range(1000..300_000))),
        9 => Value::Null,
        10 => Value::from(true),
        11 => Value::Array(vec![Value::from(1), Value::from("a")]),
        12 => Value::Object(Map::new()),
        13 => Value::from("../../../../etc"),
        14 => Value::from("1-4294967295"),
        _ => Value::from(rng.random::<u64>()),
    }
}

/// Paths (as key/index steps) of every node of the tree.
fn node_paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    if out.len() > 2000 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                here.push(Step::Key(k.clone()));
                node_paths(c, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(Step::Index(i));
                node_paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn node_mut<'a>(v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut cur = v;
    for s in path {
        cur = match (s, cur) {
            (Step::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Step::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn mutate_tree(rng: &mut Pcg64, tree: &mut Value) -> String {
    let mut paths = Vec::new();
    node_paths(tree, &mut Vec::new(), &mut paths);
    let Some(path) = paths.choose(rng).cloned() else {
        return "nothing".into();
    };
    let at = format!("{path:?}");
    let Some(node) = node_mut(tree, &path) else {
        return "missing node".into();
    };
    match rng.random_range(0..8) {
        0 | 1 => {
            *node = hostile_value(rng);
            format!("{at} := hostile value")
        }
        2 => {
            let inner = std::mem::take(node);
            *node = Value::Array(vec![inner]);
            format!("{at} wrapped in a list")
        }
        3 => {
            let inner = std::mem::take(node);
            let mut m = Map::new();
            m.insert("kind".into(), inner);
            *node = Value::Object(m);
            format!("{at} wrapped in a map")
        }
        4 => match node {
            Value::Object(m) if !m.is_empty() => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = keys.choose(rng).cloned().unwrap_or_default();
                let v = m.remove(&k).unwrap_or(Value::Null);
                let new = match rng.random_range(0..5) {
                    0 => format!("{k}s"),
                    1 => String::new(),
                    2 => format!("{k}\u{1b}"),
                    3 => "k".repeat(5000),
                    _ => k.to_uppercase(),
                };
                m.insert(new, v);
                format!("{at}: key {k} renamed")
            }
            _ => "no key to rename".into(),
        },
        5 => match node {
            Value::Object(m) if !m.is_empty() => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = keys.choose(rng).cloned().unwrap_or_default();
                m.remove(&k);
                format!("{at}: key {k} removed")
            }
            Value::Array(a) if !a.is_empty() => {
                a.remove(0);
                format!("{at}: first element removed")
            }
            _ => "nothing to remove".into(),
        },
        6 => match node {
            Value::Array(a) if !a.is_empty() => {
                // At most about a million copied nodes: the case stays a hostile file for the
                // parser (whose size cap it meets) rather than gigabytes in the generator.
                let asked = *[2usize, 100, 5000].choose(rng).unwrap_or(&2);
                let times = asked
                    .min((1 << 20) / node_count(&a[0], 1 << 20).max(1))
                    .max(1);
                let first = a[0].clone();
                a.extend(std::iter::repeat_n(first, times));
                format!("{at}: first element repeated {times} times")
            }
            Value::Object(m) => {
                m.insert("unknown_key".into(), hostile_value(rng));
                format!("{at}: unknown key added")
            }
            _ => "nothing to repeat".into(),
        },
        _ => {
            let mut v = hostile_value(rng);
            for _ in 0..rng.random_range(1..60) {
                v = Value::Array(vec![v]);
            }
            *node = v;
            format!("{at} := deeply nested lists")
        }
    }
}

/// A YAML double-quoted scalar (escapes everything that is not printable ASCII).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quoted(s),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(m) if m.is_empty() => "{}".into(),
        other => other.to_string(), // JSON is YAML flow style
    }
}

/// Writes `v` as block YAML at `indent`.
fn emit_block(v: &Value, indent: usize, out: &mut String) {
    if out.len() > TEXT_CAP {
        return;
    }
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                if out.len() > TEXT_CAP {
                    return;
                }
                out.push_str(&format!("{pad}{}:", quoted(k)));
                match c {
                    Value::Object(cm) if !cm.is_empty() => {
                        out.push('\n');
                        emit_block(c, indent + 2, out);
                    }
                    Value::Array(ca) if !ca.is_empty() => {
                        out.push('\n');
                        emit_block(c, indent + 2, out);
                    }
                    _ => out.push_str(&format!(" {}\n", scalar(c))),
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for c in a {
                if out.len() > TEXT_CAP {
                    return;
                }
                out.push_str(&format!("{pad}-"));
                match c {
                    Value::Object(_) | Value::Array(_) if !is_empty(c) => {
                        out.push('\n');
                        emit_block(c, indent + 2, out);
                    }
                    _ => out.push_str(&format!(" {}\n", scalar(c))),
                }
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", scalar(v))),
    }
}

/// The number of values in `v` (itself included), counting stops past `limit`.
fn node_count(v: &Value, limit: usize) -> usize {
    let mut n = 1;
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(m) => Box::new(m.values()),
        _ => Box::new(std::iter::empty()),
    };
    for c in children {
        if n > limit {
            break;
        }
        n += node_count(c, limit - n);
    }
    n
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Text mutations

/// A character boundary at or before `i`.
fn boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn random_pos(rng: &mut Pcg64, text: &str) -> usize {
    boundary(text, rng.random_range(0..=text.len()))
}

/// An alias bomb: `levels` anchors, each a list of `width` aliases of the previous one.
fn alias_bomb(levels: usize, width: usize) -> (String, String) {
    let mut s = String::from("anchors:\n  l0: &l0 [\"lol\"]\n");
    for i in 1..levels {
        let refs = vec![format!("*l{}", i - 1); width].join(", ");
        s.push_str(&format!("  l{i}: &l{i} [{refs}]\n"));
    }
    (s, format!("*l{}", levels - 1))
}

fn mutate_text(rng: &mut Pcg64, text: &mut String) -> String {
    match rng.random_range(0..14) {
        0 => {
            // Billion laughs feeding a phase config (a free-form JSON value) or a path.
            let levels = rng.random_range(3..12);
            let width = rng.random_range(2..12);
            let (defs, top) = alias_bomb(levels, width);
            let without: String = text
                .lines()
                .filter(|l| !l.starts_with("anchors:"))
                .collect::<Vec<_>>()
                .join("\n");
            let use_site = match rng.random_range(0..3) {
                0 => format!("phases:\n  - kind: pointcloud\n    config: {{detector: {top}}}\n"),
                1 => format!("workspace: {top}\n"),
                _ => format!("runs: {{min: 1, max: 2, skip: {top}}}\n"),
            };
            *text = format!("{defs}{use_site}{without}\n");
            format!("alias bomb {levels} levels x {width}")
        }
        1 => {
            let depth = *[100usize, 1000, 10_000, 200_000]
                .choose(rng)
                .unwrap_or(&1000);
            let (open, close) = if rng.random_bool(0.5) {
                ("[", "]")
            } else {
                ("{a: ", "}")
            };
            let nest = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            let pos = random_pos(rng, text);
            text.insert_str(pos, &format!("\nnested: {nest}\n"));
            format!("flow nesting of depth {depth}")
        }
        2 => {
            let depth = *[100usize, 1000, 3000].choose(rng).unwrap_or(&100);
            let mut s = String::from("config:\n");
            for i in 0..depth {
                s.push_str(&" ".repeat(i + 1));
                s.push_str("a:\n");
            }
            text.push_str(&s);
            format!("block nesting of depth {depth}")
        }
        3 => {
            let n = *[100_000usize, 1 << 20, 4 << 20]
                .choose(rng)
                .unwrap_or(&100_000);
            let long = "y".repeat(n);
            if rng.random_bool(0.5) {
                text.push_str(&format!("\nworkspace: {long}\n"));
            } else {
                text.push_str(&format!("\n{long}: 1\n"));
            }
            format!("a line of {n} bytes")
        }
        4 => {
            let chars = [
                '\0', '\u{1}', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}', '\u{feff}', '\t', '\r',
                '\u{fffd}',
            ];
            let k = rng.random_range(1..8);
            for _ in 0..k {
                let pos = random_pos(rng, text);
                let c = *chars.choose(rng).unwrap_or(&'\0');
                text.insert(pos, c);
            }
            format!("{k} control characters inserted")
        }
        5 => {
            let pieces = [
                "%YAML 1.1\n---\n",
                "%TAG ! tag:evil.example,2024:\n---\n",
                "--- !!map\n",
                "---\n...\n---\n",
                "? [complex, key]\n: value\n",
                "<<: *nothing\n",
                "self: &s [*s]\n",
                "workspace: !!binary aGVsbG8=\n",
                "workers: !!python/object:os.system ls\n",
                "runs: {<<: {min: 1, max: 3}}\n",
                "seed: *undefined_anchor\n",
                "\u{feff}",
            ];
            let p = *pieces.choose(rng).unwrap_or(&pieces[0]);
            if rng.random_bool(0.5) {
                text.insert_str(0, p);
            } else {
                text.push('\n');
                text.push_str(p);
            }
            format!("inserted {p:?}")
        }
        6 => {
            let numbers = [
                "99999999999999999999999999",
                "1e400",
                "-0",
                "0x7fffffff",
                "0o777",
                ".inf",
                "-.inf",
                ".nan",
                "1_000",
                "+1",
                "4294967296",
                "18446744073709551616",
                "-9223372036854775809",
                "1.5",
            ];
            let n = *numbers.choose(rng).unwrap_or(&numbers[0]);
            // Replace the first number token after a random position.
            let start = random_pos(rng, text);
            if let Some(off) = text[start..].find(|c: char| c.is_ascii_digit()) {
                let s = start + off;
                let e = text[s..]
                    .find(|c: char| !c.is_ascii_digit() && c != '.')
                    .map_or(text.len(), |x| s + x);
                text.replace_range(s..e, n);
                format!("number at {s} := {n}")
            } else {
                "no number".into()
            }
        }
        7 => {
            let a = random_pos(rng, text);
            let b = random_pos(rng, text);
            let (a, b) = (a.min(b), a.max(b));
            text.replace_range(a..b, "");
            format!("deleted bytes {a}..{b}")
        }
        8 => {
            let a = random_pos(rng, text);
            let b = boundary(text, a + rng.random_range(0..200));
            let span = text[a..b].to_string();
            let times = *[1usize, 10, 1000].choose(rng).unwrap_or(&1);
            text.insert_str(b, &span.repeat(times));
            format!("duplicated bytes {a}..{b} {times} times")
        }
        9 => {
            let mut lines: Vec<&str> = text.lines().collect();
            if lines.len() > 1 {
                let i = rng.random_range(0..lines.len());
                let j = rng.random_range(0..lines.len());
                lines.swap(i, j);
            }
            *text = lines.join("\n");
            "swapped two lines".into()
        }
        10 => {
            let cut = random_pos(rng, text);
            text.truncate(cut);
            format!("truncated at {cut}")
        }
        11 => {
            *text = text.replace('\n', if rng.random_bool(0.5) { "\r\n" } else { "\r" });
            "line endings changed".into()
        }
        12 => {
            let n = *[100usize, 10_000, 40_000].choose(rng).unwrap_or(&100);
            let mut s = String::from("phases:\n");
            for i in 0..n {
                s.push_str(&format!("  - {{kind: pointcloud, name: P{i}}}\n"));
            }
            let without: String = text
                .lines()
                .filter(|l| !l.starts_with("phases:") && !l.starts_with("  "))
                .collect::<Vec<_>>()
                .join("\n");
            *text = format!("{without}\n{s}");
            format!("{n} phases")
        }
        _ => {
            // Random printable garbage spliced in.
            let pos = random_pos(rng, text);
            let garbage: String = (0..rng.random_range(1..64))
                .map(|_| char::from(rng.random_range(0x20u8..0x7f)))
                .collect();
            text.insert_str(pos, &garbage);
            format!("garbage {garbage:?} at {pos}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_counts_stop_past_the_limit() {
        let leaf = Value::from(1);
        let list = Value::Array(vec![leaf.clone(); 10]);
        assert_eq!(node_count(&leaf, 100), 1);
        assert_eq!(node_count(&list, 100), 11);
        let big = Value::Array(vec![list; 1000]);
        assert_eq!(node_count(&big, usize::MAX), 11_001);
        assert!(node_count(&big, 50) <= 62);
    }
}
