//! Run collection and planning.
//!
//! Runs are the `run_NNNN.h5` files of the trace folder within the range, non-empty and not
//! skipped, sorted by size (largest first, ties by ascending run number). The snake plan deals
//! them to workers 0..n-1, then n-1..0, then 0..n-1 again (each end worker takes two in a row),
//! exactly as Python Spyral does; empty stacks are dropped. The dynamic plan hands the next
//! largest run to whichever worker is free (see `parent`).

use crate::pipeline::RunRange;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A run found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// Run number.
    pub run: u32,
    /// Trace file size in bytes.
    pub bytes: u64,
}

/// What collection found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Collected {
    /// Runs to process, largest first.
    pub runs: Vec<Run>,
    /// Runs in range whose file is missing.
    pub missing: Vec<u32>,
    /// Runs in range whose file is empty.
    pub empty: Vec<u32>,
    /// Runs skipped by the skip list.
    pub skipped: Vec<u32>,
    /// Skip entries outside the range (a warning).
    pub skip_outside: Vec<u32>,
}

/// The trace file of `run` in `traces`.
pub fn trace_file(traces: &Path, run: u32) -> PathBuf {
    traces.join(format!("{}.h5", spyral_core::run_stem(run)))
}

/// Collects the runs of `range` in `traces`.
pub fn collect(traces: &Path, range: &RunRange) -> Collected {
    let mut c = Collected::default();
    for &s in &range.skip {
        if s < range.min || s > range.max {
            c.skip_outside.push(s);
        }
    }
    for run in range.min..=range.max {
        if range.skip.contains(&run) {
            c.skipped.push(run);
            continue;
        }
        match std::fs::metadata(trace_file(traces, run)) {
            Ok(m) if m.is_file() && m.len() > 0 => c.runs.push(Run {
                run,
                bytes: m.len(),
            }),
            Ok(m) if m.is_file() => c.empty.push(run),
            _ => c.missing.push(run),
        }
    }
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
pub fn parse_range(text: &str) -> Result<(u32, u32), String> {
    let num = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| format!("`{s}` is not a run number"))
    };
    if let Some((a, b)) = text.split_once("..=") {
        Ok((num(a)?, num(b)?))
    } else if let Some((a, b)) = text.split_once("..") {
        let b = num(b)?;
        if b == 0 {
            return Err(format!("empty range `{text}`"));
        }
        Ok((num(a)?, b - 1))
    } else {
        let r = num(text)?;
        Ok((r, r))
    }
}

/// Parses a skip list: `3,5,7-9`.
pub fn parse_list(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let (a, b) = (
                a.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("bad run `{a}`"))?,
                b.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("bad run `{b}`"))?,
            );
            out.extend(a..=b);
        } else {
            out.push(part.parse().map_err(|_| format!("bad run `{part}`"))?);
        }
    }
    Ok(out)
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

    #[test]
    fn collection_skips_missing_empty_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        for (run, size) in [(1u32, 10usize), (2, 0), (4, 30), (5, 20), (12345, 5)] {
            std::fs::write(trace_file(dir.path(), run), vec![0u8; size]).unwrap();
        }
        assert!(trace_file(dir.path(), 12345).ends_with("run_12345.h5"));
        let c = collect(
            dir.path(),
            &RunRange {
                min: 1,
                max: 6,
                skip: vec![5, 40],
            },
        );
        let got: Vec<u32> = c.runs.iter().map(|r| r.run).collect();
        assert_eq!(got, vec![4, 1]);
        assert_eq!(c.empty, vec![2]);
        assert_eq!(c.missing, vec![3, 6]);
        assert_eq!(c.skipped, vec![5]);
        assert_eq!(c.skip_outside, vec![40]);
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
        assert!(parse_range("a..=3").is_err());
        assert_eq!(parse_list("3, 5,7-9").unwrap(), vec![3, 5, 7, 8, 9]);
        assert!(parse_list("x").is_err());
    }
}
