//! `spyral status`: for every run and phase, what the next `spyral run` would do and why, from
//! the provenance records on disk: current (skipped), stale (which field, input or plugin
//! changed), failed (the error), missing, running in another launch, or inactive. Nothing is run
//! or written.
//!
//! It walks each run's chain with the rule the workers use (`provenance::decide`), feeding each
//! phase the payload a launch would feed it, so what it predicts is what the next launch does.

use crate::chain::ChainPhase;
use crate::pipeline::Pipeline;
use crate::provenance::{self, After, Decision, Identity, RunReason};
use serde::{Deserialize, Serialize};
use spyral_core::seed::derive_seed;
use spyral_core::PhaseResult;

/// The state of one (run, phase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Done and current: the next launch skips it.
    Current,
    /// Never done: the next launch runs it.
    Missing,
    /// Failed last time: the next launch retries it.
    Failed {
        /// The error.
        error: String,
    },
    /// Done, but the next launch reruns it.
    Stale {
        /// Why, in words.
        why: String,
        /// Why, typed.
        reason: RunReason,
    },
    /// Another launch holds the run right now.
    Running {
        /// What the holder wrote into the lock.
        holder: String,
    },
    /// An inactive phase: its artifacts are used as they are.
    Inactive {
        /// Whether its artifacts exist.
        exists: bool,
    },
}

/// One cell of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    /// Phase name.
    pub phase: String,
    /// Its state.
    #[serde(flatten)]
    pub state: State,
    /// Chunk results an interrupted split launch left for a (run, phase) that is to run: the
    /// next launch reuses those whose chunk and identity match.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kept_chunks: usize,
    /// Their event ranges (`[first, last]`, in event order): a launch reuses them when it splits
    /// the run into the same ranges (the same `chunk_events`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_chunk_events: Vec<[u64; 2]>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One run's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Run number.
    pub run: u32,
    /// Cells in chain order.
    pub phases: Vec<Cell>,
}

/// The status table of `pipeline` over `runs`.
pub fn table(p: &Pipeline, chain: &[ChainPhase], runs: &[u32]) -> Vec<Row> {
    runs.iter().map(|&run| row(p, chain, run)).collect()
}

fn row(p: &Pipeline, chain: &[ChainPhase], run: u32) -> Row {
    let mut payload =
        PhaseResult::new(run).with_artifact("trace", crate::runs::trace_file(&p.traces, run));
    let mut upstream: Option<String> = None;
    // The record the next active phase follows (see `Identity::after`).
    let mut after: Option<After> = None;
    let mut cells = Vec::new();
    // A launch processing the run in event chunks holds its split-run marker throughout; its
    // chunk workers hold the run's locks only shared, and only while a unit runs.
    let split = crate::locks::holder(&crate::locks::split_run_path(&p.workspace, run));
    for c in chain {
        let ws = c.workspace();
        let constructed = c.phase.construct_artifact(&payload, &ws).into_result();
        if !c.spec.active {
            let exists = constructed.as_ref().is_ok_and(|r| {
                r.artifacts
                    .iter()
                    .all(|a| std::path::Path::new(a.path.as_str()).exists())
            });
            cells.push(Cell {
                phase: c.name.clone(),
                state: State::Inactive { exists },
                kept_chunks: 0,
                kept_chunk_events: Vec::new(),
            });
            upstream = None;
            after = None;
            if let Ok(r) = constructed {
                payload = r;
            }
            continue;
        }
        let lock = crate::locks::run_lock_path(&p.workspace, &c.name, run);
        if let Some(holder) = crate::locks::holder(&lock).or_else(|| split.clone()) {
            cells.push(Cell {
                phase: c.name.clone(),
                state: State::Running { holder },
                kept_chunks: 0,
                kept_chunk_events: Vec::new(),
            });
            upstream = Some(c.name.clone());
            payload = constructed.unwrap_or_else(|_| PhaseResult::invalid(run));
            continue;
        }
        let seed = p.seed.map(|s| derive_seed(s, run, &c.name));
        let now = Identity::of(c, &payload, seed).following(after.take());
        let record = provenance::read(&provenance::record_path(&ws.artifact_dir(), run));
        let state = match provenance::decide(&record, &now, false, upstream.as_deref()) {
            Decision::UpToDate(rec) => {
                payload = provenance::result_of(&rec);
                after = After::record(&c.name, &rec);
                State::Current
            }
            Decision::Run(reason) => {
                upstream = Some(c.name.clone());
                payload = constructed.unwrap_or_else(|_| PhaseResult::invalid(run));
                match reason {
                    RunReason::Missing => State::Missing,
                    RunReason::Failed { error } => State::Failed { error },
                    other => State::Stale {
                        why: other.to_string(),
                        reason: other,
                    },
                }
            }
        };
        let kept_chunk_events = match state {
            State::Current => Vec::new(),
            _ => provenance::chunk_records(&ws.artifact_dir(), run),
        };
        cells.push(Cell {
            phase: c.name.clone(),
            state,
            kept_chunks: kept_chunk_events.len(),
            kept_chunk_events,
        });
    }
    Row { run, phases: cells }
}

/// Event ranges as `events 0..=249, 250..=499`, the middle elided past four.
fn ranges_text(ranges: &[[u64; 2]]) -> String {
    let one = |r: &[u64; 2]| format!("{}..={}", r[0], r[1]);
    let parts: Vec<String> = if ranges.len() > 4 {
        vec![
            one(&ranges[0]),
            one(&ranges[1]),
            format!("... {} more", ranges.len() - 3),
            one(&ranges[ranges.len() - 1]),
        ]
    } else {
        ranges.iter().map(one).collect()
    };
    format!("events {}", parts.join(", "))
}

/// The table as text (`names`: the chain's phase names, in order).
pub fn render(rows: &[Row], names: &[&str]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let width = names.iter().map(|n| n.len().max(9)).collect::<Vec<_>>();
    let _ = write!(s, "{:>6}", "run");
    for (n, w) in names.iter().zip(&width) {
        let _ = write!(s, "  {:<w$}", n, w = *w);
    }
    s.push('\n');
    let mut notes = Vec::new();
    for r in rows {
        let _ = write!(s, "{:>6}", r.run);
        for (cell, w) in r.phases.iter().zip(&width) {
            let text = match &cell.state {
                State::Current => "current".to_string(),
                State::Stale { why, .. } => {
                    notes.push(format!("run {} {}: {why}", r.run, cell.phase));
                    "stale".to_string()
                }
                State::Failed { error } => {
                    notes.push(format!("run {} {}: failed: {error}", r.run, cell.phase));
                    "FAILED".to_string()
                }
                State::Missing => "missing".to_string(),
                State::Running { holder } => {
                    notes.push(format!(
                        "run {} {}: running in another launch ({holder})",
                        r.run, cell.phase
                    ));
                    "running".to_string()
                }
                State::Inactive { exists } => if *exists {
                    "inactive"
                } else {
                    "inactive(none)"
                }
                .to_string(),
            };
            if cell.kept_chunks > 0 {
                notes.push(format!(
                    "run {} {}: {} chunk result(s) of an interrupted launch kept ({}): a launch reuses those of its own split (the same chunk_events) made with the phase's current code and configuration",
                    r.run,
                    cell.phase,
                    cell.kept_chunks,
                    ranges_text(&cell.kept_chunk_events),
                ));
            }
            let _ = write!(s, "  {:<w$}", text, w = *w);
        }
        s.push('\n');
    }
    for n in notes {
        let _ = writeln!(s, "{n}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::ranges_text;

    #[test]
    fn kept_ranges_read_as_events_with_the_middle_elided() {
        assert_eq!(ranges_text(&[[0, 9], [10, 19]]), "events 0..=9, 10..=19");
        let many: Vec<[u64; 2]> = (0..6).map(|k| [k * 10, k * 10 + 9]).collect();
        assert_eq!(
            ranges_text(&many),
            "events 0..=9, 10..=19, ... 3 more, 50..=59"
        );
    }
}
