//! Run collection and planning.
//!
//! Runs are the `run_NNNN.h5` files of the trace folder within the range, usable and not
//! skipped, sorted by size (largest first, ties by ascending run number). Collection lists the
//! folder once, so its cost grows with the number of files, never with the width of the range;
//! skip lists and missing runs are [`RunSet`]s (sorted ranges), so `--skip 1-4294967295` is one
//! range, not four billion numbers. Files named like runs that cannot be used (empty files,
//! folders, FIFOs, dangling symlinks, unreadable files) are returned with the reason, so the
//! caller can list them instead of dropping them silently.
//!
//! The snake plan deals runs to workers 0..n-1, then n-1..0, then 0..n-1 again (each end
//! worker takes two in a row), exactly as Python Spyral does; empty stacks are dropped. The
//! dynamic plan hands the next largest run to whichever worker is free (see `parent`).

use crate::pipeline::RunRange;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// A run found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// Run number.
    pub run: u32,
    /// Trace file size in bytes.
    pub bytes: u64,
}

/// A bad run number, range or list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunSpecError {
    /// Not a number in 0..=4294967295.
    #[error("`{0}` is not a run number (0 to 4294967295)")]
    NotANumber(String),
    /// A range with nothing in it.
    #[error("empty range `{0}`")]
    EmptyRange(String),
}

/// A set of run numbers kept as sorted, disjoint, non-adjacent inclusive ranges: its size
/// grows with the number of ranges, never with the number of runs in them.
///
/// In a pipeline file it is a list of runs and `A-B` ranges (`skip: [17, 55, "60-70"]`) or
/// one text (`skip: "17, 55, 60-70"`); it prints the same way.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RunSet {
    ranges: Vec<(u32, u32)>,
}

impl RunSet {
    /// The empty set.
    pub fn new() -> RunSet {
        RunSet::default()
    }

    /// The runs `min..=max` (empty when `min > max`).
    pub fn span(min: u32, max: u32) -> RunSet {
        RunSet::from_ranges([(min, max)])
    }

    /// The union of inclusive ranges (those with `a > b` are empty and ignored).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u32, u32)>) -> RunSet {
        let mut v: Vec<(u32, u32)> = ranges.into_iter().filter(|(a, b)| a <= b).collect();
        v.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        out.shrink_to_fit();
        RunSet { ranges: out }
    }

    /// The set of the given runs.
    pub fn from_runs(runs: impl IntoIterator<Item = u32>) -> RunSet {
        RunSet::from_ranges(runs.into_iter().map(|r| (r, r)))
    }

    /// Parses a list: `3, 5, 7-9` (spaces optional, empty items ignored).
    pub fn parse(text: &str) -> Result<RunSet, RunSpecError> {
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| RunSpecError::NotANumber(s.trim().to_string()))
        };
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some((a, b)) = part.split_once('-') {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(RunSpecError::EmptyRange(part.to_string()));
                }
                ranges.push((a, b));
            } else {
                let r = num(part)?;
                ranges.push((r, r));
            }
        }
        Ok(RunSet::from_ranges(ranges))
    }

    /// The ranges, sorted, disjoint and non-adjacent.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The number of runs in the set.
    pub fn count(&self) -> u64 {
        self.ranges.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
    }

    /// Whether `run` is in the set (binary search).
    pub fn contains(&self, run: u32) -> bool {
        let i = self.ranges.partition_point(|&(_, b)| b < run);
        self.ranges.get(i).is_some_and(|&(a, _)| a <= run)
    }

    /// The runs of the set, in order (as many as the set holds: mind [`RunSet::count`]).
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..=b)
    }

    /// The union of two sets.
    pub fn union(&self, other: &RunSet) -> RunSet {
        RunSet::from_ranges(self.ranges.iter().chain(&other.ranges).copied())
    }

    /// The runs of the set within `min..=max`.
    pub fn within(&self, min: u32, max: u32) -> RunSet {
        RunSet {
            ranges: self
                .ranges
                .iter()
                .filter(|&&(a, b)| b >= min && a <= max)
                .map(|&(a, b)| (a.max(min), b.min(max)))
                .collect(),
        }
    }

    /// The runs of the set outside `min..=max`.
    pub fn outside(&self, min: u32, max: u32) -> RunSet {
        self.minus(&RunSet::span(min, max))
    }

    /// The runs of the set that are not in `other` (one merge pass over both).
    pub fn minus(&self, other: &RunSet) -> RunSet {
        let mut out = Vec::new();
        let mut j = 0;
        for &(a, b) in &self.ranges {
            let mut start = a;
            let mut open = true;
            while j < other.ranges.len() && other.ranges[j].1 < start {
                j += 1;
            }
            let mut k = j;
            while open && k < other.ranges.len() && other.ranges[k].0 <= b {
                let (c, d) = other.ranges[k];
                if c > start {
                    out.push((start, c - 1));
                }
                if d >= b {
                    open = false;
                } else {
                    start = d + 1;
                    k += 1;
                }
            }
            if open {
                out.push((start, b));
            }
        }
        RunSet { ranges: out }
    }

    /// The set as text, at most `max_ranges` ranges followed by how many more there are.
    pub fn summary(&self, max_ranges: usize) -> String {
        let mut s = String::new();
        for (i, &(a, b)) in self.ranges.iter().take(max_ranges).enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            push_range(&mut s, a, b);
        }
        if self.ranges.len() > max_ranges {
            s.push_str(&format!(
                ", ... ({} more ranges)",
                self.ranges.len() - max_ranges
            ));
        }
        let n = self.count();
        if n > 1 {
            s.push_str(&format!(" ({n} runs)"));
        }
        s
    }
}

fn push_range(s: &mut String, a: u32, b: u32) {
    if a == b {
        s.push_str(&a.to_string());
    } else {
        s.push_str(&format!("{a}-{b}"));
    }
}

impl fmt::Display for RunSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        for (i, &(a, b)) in self.ranges.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            push_range(&mut s, a, b);
        }
        f.write_str(&s)
    }
}

/// Printed as in a pipeline file: `[3, 7-9]`.
impl fmt::Debug for RunSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{self}]")
    }
}

impl Serialize for RunSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.ranges.len()))?;
        for &(a, b) in &self.ranges {
            if a == b {
                seq.serialize_element(&a)?;
            } else {
                seq.serialize_element(&format!("{a}-{b}"))?;
            }
        }
        seq.end()
    }
}

struct RunSetVisitor;

impl<'de> serde::de::Visitor<'de> for RunSetVisitor {
    type Value = RunSet;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of run numbers and ranges like [17, 55, \"60-70\"], or text like \"17, 55, 60-70\"")
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RunSet, E> {
        u32::try_from(v)
            .map(|r| RunSet::span(r, r))
            .map_err(|_| E::custom(RunSpecError::NotANumber(v.to_string())))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RunSet, E> {
        u32::try_from(v)
            .map(|r| RunSet::span(r, r))
            .map_err(|_| E::custom(RunSpecError::NotANumber(v.to_string())))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RunSet, E> {
        RunSet::parse(v).map_err(E::custom)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<RunSet, E> {
        Ok(RunSet::new())
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<RunSet, E> {
        Ok(RunSet::new())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RunSet, A::Error> {
        let mut ranges = Vec::new();
        while let Some(item) = seq.next_element::<RunSetItem>()? {
            ranges.extend_from_slice(&item.0.ranges);
        }
        Ok(RunSet::from_ranges(ranges))
    }
}

/// One element of a skip list: a number or a text `A-B` (or `A, B-C`).
struct RunSetItem(RunSet);

impl<'de> Deserialize<'de> for RunSetItem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> serde::de::Visitor<'de> for ItemVisitor {
            type Value = RunSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a run number or a range like \"60-70\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RunSet, E> {
                RunSetVisitor.visit_u64(v)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RunSet, E> {
                RunSetVisitor.visit_i64(v)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RunSet, E> {
                RunSetVisitor.visit_str(v)
            }
        }
        d.deserialize_any(ItemVisitor).map(RunSetItem)
    }
}

impl<'de> Deserialize<'de> for RunSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RunSetVisitor)
    }
}

/// Why a file named like a run cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum Unusable {
    /// A regular file of 0 bytes.
    Empty,
    /// A folder.
    Directory,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// A block or character device.
    Device,
    /// A symlink whose target does not exist.
    DanglingSymlink,
    /// A symlink that points (directly or not) at itself.
    SymlinkLoop,
    /// Cannot be opened for reading (the OS error).
    Unreadable(String),
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Empty => f.write_str("empty file"),
            Unusable::Directory => f.write_str("a folder, not a file"),
            Unusable::Fifo => f.write_str("a named pipe (FIFO), not a file"),
            Unusable::Socket => f.write_str("a socket, not a file"),
            Unusable::Device => f.write_str("a device, not a file"),
            Unusable::DanglingSymlink => f.write_str("a symlink to nothing"),
            Unusable::SymlinkLoop => f.write_str("a symlink loop"),
            Unusable::Unreadable(e) => write!(f, "unreadable: {e}"),
        }
    }
}

/// A file named like a run of the range that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnusableRun {
    /// Run number.
    pub run: u32,
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[serde(flatten)]
    pub why: Unusable,
}

impl fmt::Display for UnusableRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "run {} ({}): {}",
            self.run,
            self.path.display(),
            self.why
        )
    }
}

/// What collection found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Collected {
    /// Runs to process, largest first.
    pub runs: Vec<Run>,
    /// Runs in range, not skipped, with no file.
    pub missing: RunSet,
    /// Files of runs in range (not skipped) that cannot be used, by run number.
    pub unusable: Vec<UnusableRun>,
    /// Runs of the range in the skip list.
    pub skipped: RunSet,
    /// Skip entries outside the range (a warning).
    pub skip_outside: RunSet,
    /// Why the trace folder could not be listed (then every run is missing).
    pub folder_error: Option<String>,
}

impl Collected {
    /// One line per unusable file, for the launch output and log.
    pub fn unusable_lines(&self) -> Vec<String> {
        self.unusable.iter().map(|u| u.to_string()).collect()
    }
}

/// The trace file of `run` in `traces`.
pub fn trace_file(traces: &Path, run: u32) -> PathBuf {
    traces.join(format!("{}.h5", spyral_core::run_stem(run)))
}

/// The run whose trace file is named `name` (exactly as [`trace_file`] names it).
pub fn run_of_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("run_")?.strip_suffix(".h5")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let run: u32 = digits.parse().ok()?;
    (spyral_core::run_stem(run).len() == digits.len() + 4).then_some(run)
}

/// Whether the file at `path` can be read as a trace file: its size, or why not.
fn check_file(path: &Path) -> Result<u64, Unusable> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            return Err(
                if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                    Unusable::SymlinkLoop
                } else if is_link && e.kind() == std::io::ErrorKind::NotFound {
                    Unusable::DanglingSymlink
                } else {
                    Unusable::Unreadable(e.to_string())
                },
            );
        }
    };
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(Unusable::Directory);
    }
    if ft.is_fifo() {
        return Err(Unusable::Fifo);
    }
    if ft.is_socket() {
        return Err(Unusable::Socket);
    }
    if ft.is_block_device() || ft.is_char_device() || !ft.is_file() {
        return Err(Unusable::Device);
    }
    if meta.len() == 0 {
        return Err(Unusable::Empty);
    }
    // A regular file: opening it cannot block.
    std::fs::File::open(path).map_err(|e| Unusable::Unreadable(e.to_string()))?;
    Ok(meta.len())
}

/// Collects the runs of `range` in `traces` from one listing of the folder.
pub fn collect(traces: &Path, range: &RunRange) -> Collected {
    let (min, max) = (range.min, range.max);
    let mut c = Collected {
        skipped: range.skip.within(min, max),
        skip_outside: range.skip.outside(min, max),
        ..Collected::default()
    };
    let mut present = Vec::new();
    match std::fs::read_dir(traces) {
        Err(e) => c.folder_error = Some(e.to_string()),
        Ok(listing) => {
            for entry in listing {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        c.folder_error = Some(e.to_string());
                        break;
                    }
                };
                let name = entry.file_name();
                let Some(run) = name.to_str().and_then(run_of_file_name) else {
                    continue;
                };
                if run < min || run > max || range.skip.contains(run) {
                    continue;
                }
                present.push(run);
                let path = entry.path();
                match check_file(&path) {
                    Ok(bytes) => c.runs.push(Run { run, bytes }),
                    Err(why) => c.unusable.push(UnusableRun { run, path, why }),
                }
            }
        }
    }
    c.missing = RunSet::span(min, max)
        .minus(&range.skip)
        .minus(&RunSet::from_runs(present));
    c.unusable.sort_by_key(|u| u.run);
    sort_runs(&mut c.runs);
    c
}

/// Sorts by size descending, ties by ascending run number.
pub fn sort_runs(runs: &mut [Run]) {
    runs.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.run.cmp(&b.run)));
}

/// One worker's share of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stack {
    /// Worker index.
    pub worker: usize,
    /// Runs in processing order.
    pub runs: Vec<u32>,
    /// Trace bytes.
    pub bytes: u64,
    /// Share of all bytes, in percent.
    pub load_percent: f64,
}

/// Deals `runs` (already sorted) over `workers` in snake order and drops empty stacks.
pub fn snake(runs: &[Run], workers: usize) -> Vec<Stack> {
    assert!(workers > 0, "snake plan needs at least one worker");
    let mut stacks: Vec<Vec<&Run>> = vec![Vec::new(); workers];
    let (mut i, mut forward) = (0usize, true);
    for r in runs {
        stacks[i].push(r);
        if forward {
            if i + 1 == workers {
                forward = false;
            } else {
                i += 1;
            }
        } else if i == 0 {
            forward = true;
        } else {
            i -= 1;
        }
    }
    finish(stacks)
}

fn finish(stacks: Vec<Vec<&Run>>) -> Vec<Stack> {
    let total: u64 = stacks.iter().flatten().map(|r| r.bytes).sum();
    stacks
        .into_iter()
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(worker, s)| {
            let bytes: u64 = s.iter().map(|r| r.bytes).sum();
            Stack {
                worker,
                runs: s.iter().map(|r| r.run).collect(),
                bytes,
                load_percent: if total == 0 {
                    0.0
                } else {
                    100.0 * bytes as f64 / total as f64
                },
            }
        })
        .collect()
}

/// The planned load of a dynamic schedule: a simulation where each free worker takes the next
/// largest run and a run's cost is proportional to its size.
pub fn dynamic_estimate(runs: &[Run], workers: usize) -> Vec<Stack> {
    let n = workers.min(runs.len()).max(1);
    let mut stacks: Vec<Vec<&Run>> = vec![Vec::new(); n];
    let mut load = vec![0u64; n];
    for r in runs {
        let (w, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .unwrap_or((0, &0));
        stacks[w].push(r);
        load[w] += r.bytes;
    }
    finish(stacks)
}

/// Parses `MIN..=MAX`, `MIN..MAX` (exclusive) or a single run number.
pub fn parse_range(text: &str) -> Result<(u32, u32), RunSpecError> {
    let num = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| RunSpecError::NotANumber(s.trim().to_string()))
    };
    if let Some((a, b)) = text.split_once("..=") {
        Ok((num(a)?, num(b)?))
    } else if let Some((a, b)) = text.split_once("..") {
        let (a, b) = (num(a)?, num(b)?);
        if b <= a {
            return Err(RunSpecError::EmptyRange(text.to_string()));
        }
        Ok((a, b - 1))
    } else {
        let r = num(text)?;
        Ok((r, r))
    }
}

/// Parses a skip list: `3,5,7-9`.
pub fn parse_list(text: &str) -> Result<RunSet, RunSpecError> {
    RunSet::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(sizes: &[(u32, u64)]) -> Vec<Run> {
        let mut v: Vec<Run> = sizes
            .iter()
            .map(|&(run, bytes)| Run { run, bytes })
            .collect();
        sort_runs(&mut v);
        v
    }

    #[test]
    fn spyral_example() {
        // Sizes make the size order [9, 0, 2, 1, 3, 4].
        let r = runs(&[(9, 60), (0, 50), (2, 40), (1, 30), (3, 20), (4, 10)]);
        let order: Vec<u32> = r.iter().map(|r| r.run).collect();
        assert_eq!(order, vec![9, 0, 2, 1, 3, 4]);
        let plan: Vec<Vec<u32>> = snake(&r, 3).into_iter().map(|s| s.runs).collect();
        assert_eq!(plan, vec![vec![9, 4], vec![0, 3], vec![2, 1]]);
    }

    #[test]
    fn eight_runs_on_three() {
        // a..h = 1..8 with decreasing sizes.
        let r = runs(&(1..=8).map(|i| (i, 100 - i as u64)).collect::<Vec<_>>());
        let plan: Vec<Vec<u32>> = snake(&r, 3).into_iter().map(|s| s.runs).collect();
        assert_eq!(plan, vec![vec![1, 6, 7], vec![2, 5, 8], vec![3, 4]]);
    }

    #[test]
    fn ties_keep_ascending_run_order() {
        let r = runs(&[(5, 10), (2, 10), (9, 10), (1, 20)]);
        let order: Vec<u32> = r.iter().map(|r| r.run).collect();
        assert_eq!(order, vec![1, 2, 5, 9]);
    }

    #[test]
    fn fewer_runs_than_workers_and_zero_runs() {
        let r = runs(&[(1, 5), (2, 4)]);
        let plan = snake(&r, 4);
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[1].worker, 1);
        assert!(snake(&[], 3).is_empty());
        let loads: f64 = plan.iter().map(|s| s.load_percent).sum();
        assert!((loads - 100.0).abs() < 1e-9);
    }

    fn range(min: u32, max: u32, skip: &str) -> RunRange {
        RunRange {
            min,
            max,
            skip: RunSet::parse(skip).unwrap(),
        }
    }

    #[test]
    fn collection_skips_missing_empty_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        for (run, size) in [(1u32, 10usize), (2, 0), (4, 30), (5, 20), (12345, 5)] {
            std::fs::write(trace_file(dir.path(), run), vec![0u8; size]).unwrap();
        }
        // Not the name of a run: ignored.
        std::fs::write(dir.path().join("run_00003.h5"), b"x").unwrap();
        std::fs::write(dir.path().join("run_0003.h5.bak"), b"x").unwrap();
        assert!(trace_file(dir.path(), 12345).ends_with("run_12345.h5"));
        let c = collect(dir.path(), &range(1, 6, "5, 40"));
        let got: Vec<u32> = c.runs.iter().map(|r| r.run).collect();
        assert_eq!(got, vec![4, 1]);
        assert_eq!(c.unusable.len(), 1);
        assert_eq!(
            (c.unusable[0].run, &c.unusable[0].why),
            (2, &Unusable::Empty)
        );
        assert_eq!(c.missing, RunSet::from_runs([3, 6]));
        assert_eq!(c.skipped, RunSet::from_runs([5]));
        assert_eq!(c.skip_outside, RunSet::from_runs([40]));
        assert!(c.folder_error.is_none());
        let none = collect(&dir.path().join("nope"), &range(1, 3, ""));
        assert!(none.folder_error.is_some());
        assert_eq!(none.missing, RunSet::span(1, 3));
    }

    #[test]
    fn files_named_like_runs_that_cannot_be_used_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(trace_file(d, 1), b"data").unwrap();
        std::fs::write(trace_file(d, 2), b"").unwrap();
        std::fs::create_dir(trace_file(d, 3)).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            trace_file(d, 4),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        std::os::unix::fs::symlink(d.join("gone.h5"), trace_file(d, 5)).unwrap();
        std::os::unix::fs::symlink(trace_file(d, 6), trace_file(d, 6)).unwrap();
        std::os::unix::fs::symlink(trace_file(d, 1), trace_file(d, 7)).unwrap();
        // A FIFO must never be opened (that would block): collection returns at once.
        let c = collect(d, &range(1, 9, "9"));
        let got: Vec<u32> = c.runs.iter().map(|r| r.run).collect();
        assert_eq!(got, vec![1, 7], "a symlink to a good file is a good run");
        let why: Vec<(u32, Unusable)> = c.unusable.iter().map(|u| (u.run, u.why.clone())).collect();
        assert_eq!(
            why,
            vec![
                (2, Unusable::Empty),
                (3, Unusable::Directory),
                (4, Unusable::Fifo),
                (5, Unusable::DanglingSymlink),
                (6, Unusable::SymlinkLoop),
            ]
        );
        assert_eq!(c.missing, RunSet::from_runs([8]));
        let lines = c.unusable_lines();
        assert!(
            lines[2].contains("run 4") && lines[2].contains("FIFO"),
            "{lines:?}"
        );
        assert!(lines[2].contains("run_0004.h5"), "{lines:?}");
    }

    #[test]
    fn a_huge_range_costs_the_files_not_the_range() {
        let dir = tempfile::tempdir().unwrap();
        for run in [3u32, 70_000, 4_000_000_000] {
            std::fs::write(trace_file(dir.path(), run), b"x").unwrap();
        }
        let t = std::time::Instant::now();
        let c = collect(dir.path(), &range(1, u32::MAX, "1-4294967295"));
        assert!(c.runs.is_empty());
        assert_eq!(c.skipped, RunSet::span(1, u32::MAX));
        assert!(c.missing.is_empty());
        let c = collect(dir.path(), &range(0, u32::MAX, "70000"));
        let got: Vec<u32> = c.runs.iter().map(|r| r.run).collect();
        assert_eq!(got, vec![3, 4_000_000_000]);
        assert_eq!(c.missing.ranges().len(), 4);
        assert_eq!(c.missing.count(), (1u64 << 32) - 3);
        assert!(
            c.missing.summary(2).contains("2 more ranges"),
            "{}",
            c.missing.summary(2)
        );
        assert!(t.elapsed().as_secs_f64() < 1.0, "{:?}", t.elapsed());
    }

    #[test]
    fn run_file_names() {
        assert_eq!(run_of_file_name("run_0001.h5"), Some(1));
        assert_eq!(run_of_file_name("run_12345.h5"), Some(12345));
        assert_eq!(run_of_file_name("run_4294967295.h5"), Some(u32::MAX));
        for bad in [
            "run_001.h5",
            "run_00001.h5",
            "run_4294967296.h5",
            "run_.h5",
            "run_+001.h5",
            "run_0001.h5.partial",
            "xrun_0001.h5",
        ] {
            assert_eq!(run_of_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn run_sets() {
        let s = RunSet::from_ranges([(7, 9), (1, 1), (3, 3), (2, 2), (20, 10), (10, 12)]);
        assert_eq!(s.ranges(), &[(1, 3), (7, 12)]);
        assert_eq!(s.count(), 9);
        assert!(s.contains(1) && s.contains(12) && !s.contains(4) && !s.contains(13));
        assert_eq!(s.to_string(), "1-3, 7-12");
        assert_eq!(format!("{s:?}"), "[1-3, 7-12]");
        assert_eq!(s.within(2, 8), RunSet::from_ranges([(2, 3), (7, 8)]));
        assert_eq!(s.outside(2, 8), RunSet::from_ranges([(1, 1), (9, 12)]));
        assert_eq!(
            RunSet::span(0, u32::MAX).minus(&s),
            RunSet::from_ranges([(0, 0), (4, 6), (13, u32::MAX)])
        );
        assert_eq!(RunSet::span(0, u32::MAX).count(), 1 << 32);
        assert_eq!(s.union(&RunSet::from_runs([4, 5, 6])), RunSet::span(1, 12));
        assert_eq!(s.summary(1), "1-3, ... (1 more ranges) (9 runs)");
    }

    #[test]
    fn run_sets_in_pipeline_files() {
        let parse = |t: &str| serde_saphyr::from_str::<RunSet>(t);
        assert_eq!(parse("[17, 55]").unwrap(), RunSet::from_runs([17, 55]));
        assert_eq!(
            parse("[17, 7-9, \"60-70\"]").unwrap(),
            RunSet::from_ranges([(17, 17), (7, 9), (60, 70)])
        );
        assert_eq!(
            parse("\"3, 5-6\"").unwrap(),
            RunSet::from_ranges([(3, 3), (5, 6)])
        );
        assert_eq!(parse("[]").unwrap(), RunSet::new());
        for bad in ["[-1]", "[4294967296]", "[9-7]", "[x]", "[1.5]"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let s = RunSet::from_ranges([(3, 3), (7, 9)]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"[3,"7-9"]"#);
        assert_eq!(serde_json::from_str::<RunSet>(&json).unwrap(), s);
    }

    #[test]
    fn dynamic_estimate_balances() {
        let r = runs(&[(1, 100), (2, 10), (3, 10), (4, 10), (5, 10)]);
        let plan = dynamic_estimate(&r, 2);
        assert_eq!(plan[0].runs, vec![1]);
        assert_eq!(plan[1].runs, vec![2, 3, 4, 5]);
    }

    #[test]
    fn ranges_and_lists() {
        assert_eq!(parse_range("1..=10").unwrap(), (1, 10));
        assert_eq!(parse_range("1..10").unwrap(), (1, 9));
        assert_eq!(parse_range("7").unwrap(), (7, 7));
        assert_eq!(parse_range("0..=4294967295").unwrap(), (0, u32::MAX));
        assert!(parse_range("a..=3").is_err());
        assert_eq!(
            parse_range("5..5"),
            Err(RunSpecError::EmptyRange("5..5".into()))
        );
        assert!(parse_range("1..=4294967296").is_err());
        assert_eq!(
            parse_list("3, 5,7-9").unwrap(),
            RunSet::from_runs([3, 5, 7, 8, 9])
        );
        assert_eq!(
            parse_list("1-4294967295").unwrap().ranges(),
            &[(1, u32::MAX)]
        );
        assert!(parse_list("x").is_err());
        assert!(parse_list("9-7").is_err());
        assert!(parse_list("1-2-3").is_err());
    }
}

/// Random `--runs` and `--skip` texts never panic, and what they parse to stays small.
#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn model(s: &RunSet) -> BTreeSet<u32> {
        s.iter().collect()
    }

    /// A text made of the characters run lists are made of, and a few others.
    fn run_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                4 => proptest::sample::select(vec![
                    "0", "1", "7", "9", "42", "4294967295", "4294967296", "18446744073709551616",
                    "-", ",", ", ", "..", "..=", " ", "",
                ])
                .prop_map(str::to_string),
                1 => any::<char>().prop_map(|c| c.to_string()),
                1 => (0u32..=u32::MAX).prop_map(|n| n.to_string()),
            ],
            0..24,
        )
        .prop_map(|v| v.concat())
    }

    fn small_set() -> impl Strategy<Value = RunSet> {
        proptest::collection::vec((0u32..60, 0u32..8), 0..8)
            .prop_map(|v| RunSet::from_ranges(v.into_iter().map(|(a, l)| (a, a + l))))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn parsing_never_panics_and_stays_small(runs in run_text(), skip in run_text()) {
            let _ = parse_range(&runs);
            if let Ok(set) = parse_list(&skip) {
                // At most one range per comma-separated item, whatever the runs they hold.
                prop_assert!(set.ranges().len() <= skip.split(',').count());
                prop_assert!(set.ranges().windows(2).all(|w| w[0].1.saturating_add(1) < w[1].0));
            }
        }

        #[test]
        fn collection_is_bounded_by_the_files(
            runs in run_text(),
            skip in run_text(),
            files in proptest::collection::btree_set(0u32..=u32::MAX, 0..6),
        ) {
            let dir = tempfile::tempdir().unwrap();
            for &f in &files {
                std::fs::write(trace_file(dir.path(), f), b"x").unwrap();
            }
            let (min, max) = parse_range(&runs).unwrap_or((0, u32::MAX));
            let skip = parse_list(&skip).unwrap_or_default();
            let n_skip = skip.ranges().len();
            let t = std::time::Instant::now();
            let c = collect(dir.path(), &RunRange { min, max, skip });
            prop_assert!(t.elapsed().as_secs_f64() < 2.0);
            prop_assert!(c.runs.len() <= files.len());
            // Missing runs: at most one range per gap between files and skip ranges.
            prop_assert!(c.missing.ranges().len() <= files.len() + n_skip + 1);
            prop_assert!(c.skipped.ranges().len() <= n_skip);
            for r in &c.runs {
                prop_assert!(r.run >= min && r.run <= max && files.contains(&r.run));
            }
        }

        #[test]
        fn set_operations_match_a_model(a in small_set(), b in small_set(), lo in 0u32..70, len in 0u32..70) {
            let (ma, mb) = (model(&a), model(&b));
            prop_assert_eq!(model(&a.minus(&b)), ma.difference(&mb).copied().collect::<BTreeSet<_>>());
            prop_assert_eq!(model(&a.union(&b)), ma.union(&mb).copied().collect::<BTreeSet<_>>());
            let hi = lo + len;
            prop_assert_eq!(model(&a.within(lo, hi)), ma.iter().copied().filter(|r| (lo..=hi).contains(r)).collect::<BTreeSet<_>>());
            prop_assert_eq!(model(&a.outside(lo, hi)), ma.iter().copied().filter(|r| !(lo..=hi).contains(r)).collect::<BTreeSet<_>>());
            for r in 0..80 {
                prop_assert_eq!(a.contains(r), ma.contains(&r));
            }
            prop_assert_eq!(a.count(), ma.len() as u64);
            prop_assert_eq!(RunSet::parse(&a.to_string()).unwrap(), a.clone());
        }
    }
}
