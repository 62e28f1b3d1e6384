//! What the default phases share to process a run in event chunks and merge them (the
//! `splittable` contract of `spyral-core`): where a phase's files go for a whole run or a chunk,
//! which event ids of a range a chunk owns, finding the whole-run file a chunk file stands for,
//! checking the parts handed to `merge`, and adding up the parts' metadata.
//!
//! Every file of a phase is named `<stem><suffix>`: the stem is `run_0001` for a whole run
//! (`<Phase>/run_0001.h5`, `<Phase>/run_0001_scaler.parquet`) and `e<first>-<last>` for a chunk
//! (`<Phase>/.chunks/run_0001/e0-19.h5`, `..._scaler.parquet`), so a chunk's files sit beside
//! each other exactly as the run's do.

use spyral_core::{EventRange, PhaseError, PhaseResult, RunContext, Workspace};
use std::path::{Path, PathBuf};

/// Name of the folder holding the chunk folders under an artifact folder (as in
/// `spyral_core::chunk::chunk_dir`).
const CHUNKS_DIR: &str = ".chunks";

/// The path of this call's file with `suffix` (`".h5"`, `"_scaler.parquet"`): the run's
/// (`<Phase>/run_0001<suffix>`) or, in a chunk, the chunk's
/// (`<Phase>/.chunks/run_0001/e0-19<suffix>`). `suffix` `".<ext>"` gives
/// [`RunContext::artifact_path`]`(ext)`.
pub fn file_path(ctx: &RunContext<'_>, suffix: &str) -> PathBuf {
    // The context names the file for one extension; the stem is everything before it.
    let probe = ctx.artifact_path("x");
    let stem = probe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    probe.with_file_name(format!("{stem}{suffix}"))
}

/// The whole run's file with `suffix`: `<Phase>/run_0001<suffix>`.
pub fn run_file_path(ws: &Workspace, run: u32, suffix: &str) -> PathBuf {
    ws.artifact_dir()
        .join(format!("{}{suffix}", spyral_core::run_stem(run)))
}

/// A sibling of a file written by [`file_path`] with `suffix` in place of `own_suffix`
/// (`.../e0-19.h5` with `".h5"` -> `.../e0-19_scaler.parquet` for `"_scaler.parquet"`).
/// `None` when `path` does not end with `own_suffix`.
pub fn sibling(path: &Path, own_suffix: &str, suffix: &str) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let stem = name.strip_suffix(own_suffix)?;
    Some(path.with_file_name(format!("{stem}{suffix}")))
}

/// The whole-run file a chunk file stands for: `<dir>/.chunks/run_0001/e0-19<suffix>` ->
/// `<dir>/run_0001<suffix>` (`suffix` being what follows the event range in the name). Any
/// other path is returned as it is (a whole-run file already).
pub fn run_file_of(path: &Path) -> PathBuf {
    let parts = || -> Option<PathBuf> {
        let run_dir = path.parent()?;
        let chunks = run_dir.parent()?;
        if chunks.file_name()? != CHUNKS_DIR {
            return None;
        }
        let run = run_dir.file_name()?.to_string_lossy().into_owned();
        if !run.starts_with("run_") {
            return None;
        }
        let name = path.file_name()?.to_string_lossy().into_owned();
        let rest = name.strip_prefix('e')?;
        let (first, rest) = rest.split_once('-')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (last, suffix) = rest.split_at(digits);
        if first.is_empty() || last.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(chunks.parent()?.join(format!("{run}{suffix}")))
    };
    parts().unwrap_or_else(|| path.to_path_buf())
}

/// The ids of `first..=last` this call processes: all of them for a whole run, those inside
/// the chunk's event range otherwise (empty when they do not meet).
pub fn id_range(ctx: &RunContext<'_>, first: i64, last: i64) -> Option<(i64, i64)> {
    let (mut a, mut b) = (first, last);
    if let Some(r) = ctx.events() {
        let lo = i64::try_from(r.first).unwrap_or(i64::MAX);
        let hi = i64::try_from(r.last).unwrap_or(i64::MAX);
        a = a.max(lo);
        b = b.min(hi);
    }
    (a <= b).then_some((a, b))
}

/// How many ids `range` spans (0 for `None`).
pub fn id_count(range: Option<(i64, i64)>) -> u64 {
    range.map_or(0, |(a, b)| b.abs_diff(a).saturating_add(1))
}

/// The event range `first..=last` of a file's `min_event`/`max_event` pair, or `None` when it
/// is empty or negative (nothing to split).
pub fn event_range(first: i64, last: i64) -> Option<EventRange> {
    let first = u64::try_from(first).ok()?;
    let last = u64::try_from(last).ok()?;
    (first <= last).then(|| EventRange::new(first, last))
}

/// Checks the parts handed to `merge`: at least one, all successful, all of the merging run.
pub fn check_parts(phase: &str, parts: &[PhaseResult], run: u32) -> Result<(), PhaseError> {
    if parts.is_empty() {
        return Err(PhaseError::internal(format!(
            "{phase}: run {run}: merge called with no chunk results"
        )));
    }
    for (k, p) in parts.iter().enumerate() {
        if p.run_number != run {
            return Err(PhaseError::internal(format!(
                "{phase}: run {run}: chunk result {k} is of run {}",
                p.run_number
            )));
        }
        if !p.successful {
            return Err(PhaseError::invalid_input(format!(
                "{phase}: run {run}: chunk {k} did not succeed; the run cannot be merged"
            )));
        }
    }
    Ok(())
}

/// The path of artifact `name` of every part, in order.
pub fn part_paths(
    phase: &str,
    parts: &[PhaseResult],
    name: &str,
) -> Result<Vec<PathBuf>, PhaseError> {
    parts
        .iter()
        .enumerate()
        .map(|(k, p)| {
            p.require(name).map_err(|e| {
                PhaseError::invalid_input(format!(
                    "{phase}: run {}: chunk {k}: {}",
                    p.run_number,
                    e.message()
                ))
            })
        })
        .collect()
}

/// The parts' metadata added up key by key: numbers are summed (whole numbers stay whole),
/// objects are merged the same way recursively, anything else keeps the first part's value.
/// This is what a whole run reports when its metadata are counts.
pub fn sum_metadata(parts: &[PhaseResult]) -> serde_json::Map<String, serde_json::Value> {
    let mut total = serde_json::Map::new();
    for p in parts {
        add_into(&mut total, p.metadata_map());
    }
    total
}

fn add_into(
    total: &mut serde_json::Map<String, serde_json::Value>,
    part: serde_json::Map<String, serde_json::Value>,
) {
    use serde_json::Value;
    for (k, v) in part {
        match (total.get_mut(&k), v) {
            (None, v) => {
                total.insert(k, v);
            }
            (Some(Value::Object(t)), Value::Object(o)) => add_into(t, o),
            (Some(t), Value::Number(n)) => {
                if let Value::Number(a) = t {
                    let sum = add_numbers(a, &n);
                    *t = sum;
                }
            }
            _ => {}
        }
    }
}

fn add_numbers(a: &serde_json::Number, b: &serde_json::Number) -> serde_json::Value {
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        if let Some(s) = x.checked_add(y) {
            return s.into();
        }
    }
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        if let Some(s) = x.checked_add(y) {
            return s.into();
        }
    }
    let s = a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0);
    serde_json::Number::from_f64(s).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// A whole-run result for `run` with `metadata` as its metadata.
pub fn with_metadata(
    mut result: PhaseResult,
    metadata: serde_json::Map<String, serde_json::Value>,
) -> PhaseResult {
    result.metadata = serde_json::Value::Object(metadata).to_string().into();
    result
}

/// Copies `src` to `dest` byte for byte through a temporary name (a file the same writer
/// produced for the run, e.g. the run-level scaler table written by the first chunk).
pub fn copy_file(src: &Path, dest: &Path) -> Result<PathBuf, PhaseError> {
    let out = spyral_core::PartialFile::new(dest)?;
    std::fs::copy(src, out.path()).map_err(|e| PhaseError::io_at(src, "cannot copy", &e))?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use spyral_core::context::NullSink;
    use spyral_core::Chunk;

    #[test]
    fn file_paths_follow_the_contexts_naming() {
        let ws = Workspace::new(Path::new("/w"), Path::new("/t"), "Pointcloud");
        let sink = NullSink;
        let ctx = RunContext::new(3, 1, &ws, &sink);
        assert_eq!(file_path(&ctx, ".h5"), ctx.artifact_path("h5"));
        assert_eq!(
            file_path(&ctx, "_scaler.parquet"),
            PathBuf::from("/w/Pointcloud/run_0003_scaler.parquet")
        );
        assert_eq!(run_file_path(&ws, 3, ".h5"), ctx.artifact_path("h5"));
        let chunk = Chunk {
            index: 1,
            count: 2,
            events: EventRange::new(20, 39),
        };
        let ctx = RunContext::new(3, 1, &ws, &sink).with_chunk(chunk);
        let p = file_path(&ctx, ".h5");
        assert_eq!(p, ctx.artifact_path("h5"));
        let s = file_path(&ctx, "_scaler.parquet");
        assert_eq!(
            s,
            PathBuf::from("/w/Pointcloud/.chunks/run_0003/e20-39_scaler.parquet")
        );
        assert_eq!(sibling(&p, ".h5", "_scaler.parquet"), Some(s.clone()));
        assert_eq!(
            run_file_of(&s),
            PathBuf::from("/w/Pointcloud/run_0003_scaler.parquet")
        );
        assert_eq!(run_file_of(&p), ctx.workspace().artifact_path(3, "h5"));
        let whole = PathBuf::from("/w/Cluster/run_0003.h5");
        assert_eq!(run_file_of(&whole), whole);
        assert_eq!(id_range(&ctx, 0, 100), Some((20, 39)));
        assert_eq!(id_range(&ctx, 40, 100), None);
        assert_eq!(id_count(id_range(&ctx, 25, 100)), 15);
    }

    #[test]
    fn metadata_adds_up() {
        let mut a = PhaseResult::new(1);
        a.set_metadata("events", 3);
        a.set_metadata("rejected", serde_json::json!({"few points": 2}));
        a.set_metadata("ms", 1.5);
        let mut b = PhaseResult::new(1);
        b.set_metadata("events", 4);
        b.set_metadata(
            "rejected",
            serde_json::json!({"few points": 1, "spline": 5}),
        );
        b.set_metadata("ms", 0.5);
        let m = sum_metadata(&[a, b]);
        assert_eq!(m["events"], 7);
        assert_eq!(m["rejected"]["few points"], 3);
        assert_eq!(m["rejected"]["spline"], 5);
        assert_eq!(m["ms"], 2.0);
        assert!(check_parts("P", &[], 1).is_err());
        assert!(check_parts("P", &[PhaseResult::invalid(1)], 1).is_err());
        assert!(check_parts("P", &[PhaseResult::new(2)], 1).is_err());
    }
}
