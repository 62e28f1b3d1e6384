//! `spyral status`: for every run and phase, whether its artifacts are done and current, stale
//! (and why), failed (and the error), or missing, from the provenance records on disk. Nothing
//! is run or written.

use crate::chain::ChainPhase;
use crate::pipeline::Pipeline;
use crate::provenance::{self, Identity, State};
use serde::Serialize;
use spyral_core::seed::derive_seed;
use spyral_core::PhaseResult;

/// One cell of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// Phase name.
    pub phase: String,
    /// Its state.
    #[serde(flatten)]
    pub state: State,
}

/// One run's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Run number.
    pub run: u32,
    /// Cells in chain order.
    pub phases: Vec<Cell>,
}

/// The status table of `pipeline` over `runs`.
pub fn table(p: &Pipeline, chain: &[ChainPhase], runs: &[u32]) -> Vec<Row> {
    let mut rows = Vec::new();
    for &run in runs {
        let mut payload =
            PhaseResult::new(run).with_artifact("trace", crate::runs::trace_file(&p.traces, run));
        let mut upstream_changes = false;
        let mut cells = Vec::new();
        for c in chain {
            let ws = c.workspace(p);
            let constructed = c.phase.construct_artifact(&payload, &ws).into_result();
            if !c.spec.active {
                let exists = constructed
                    .as_ref()
                    .map(|r| {
                        r.artifacts
                            .iter()
                            .all(|a| std::path::Path::new(a.path.as_str()).exists())
                    })
                    .unwrap_or(false);
                cells.push(Cell {
                    phase: c.name.clone(),
                    state: State::Inactive { exists },
                });
                if let Ok(r) = constructed {
                    payload = r;
                }
                continue;
            }
            let seed = p.seed.map(|s| derive_seed(s, run, &c.name));
            let now = Identity::of(c, &payload, seed);
            let record = provenance::read(&provenance::record_path(&ws.artifact_dir(), run));
            let state = provenance::state(record.as_ref(), &now);
            let cell = match (&state, upstream_changes) {
                (State::Current, true) => State::Stale {
                    why: "an earlier phase will rerun".into(),
                },
                (other, _) => other.clone(),
            };
            if cell != State::Current {
                upstream_changes = true;
            }
            payload = match (&state, record) {
                (State::Current, Some(rec)) => provenance::result_of(&rec),
                _ => constructed.unwrap_or_else(|_| PhaseResult::invalid(run)),
            };
            cells.push(Cell {
                phase: c.name.clone(),
                state: cell,
            });
        }
        rows.push(Row { run, phases: cells });
    }
    rows
}

/// The table as text.
pub fn render(rows: &[Row], chain: &[ChainPhase]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let width = chain
        .iter()
        .map(|c| c.name.len().max(9))
        .collect::<Vec<_>>();
    let _ = write!(s, "{:>6}", "run");
    for (c, w) in chain.iter().zip(&width) {
        let _ = write!(s, "  {:<w$}", c.name, w = *w);
    }
    s.push('\n');
    let mut notes = Vec::new();
    for r in rows {
        let _ = write!(s, "{:>6}", r.run);
        for (cell, w) in r.phases.iter().zip(&width) {
            let text = match &cell.state {
                State::Current => "current".to_string(),
                State::Stale { why } => {
                    notes.push(format!("run {} {}: stale: {why}", r.run, cell.phase));
                    "stale".to_string()
                }
                State::Failed { error } => {
                    notes.push(format!("run {} {}: failed: {error}", r.run, cell.phase));
                    "FAILED".to_string()
                }
                State::Missing => "missing".to_string(),
                State::Inactive { exists } => if *exists {
                    "inactive"
                } else {
                    "inactive(none)"
                }
                .to_string(),
            };
            let _ = write!(s, "  {:<w$}", text, w = *w);
        }
        s.push('\n');
    }
    for n in notes {
        let _ = writeln!(s, "{n}");
    }
    s
}
