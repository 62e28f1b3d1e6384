//! The Estimation phase (kind `estimation`, folder `Estimation`): clusters to physics estimates
//! (vertex, angles, B rho, dE/dx), spyral-spec section 3.3.
//!
//! For every event id `min_event..=max_event` of the Cluster artifact that has an `event_<id>`
//! group, and every `cluster_<k>` group of it (`k < nclusters`), the cluster is estimated by
//! [`algorithm::Estimator`] (spec 3.3.2); clusters Spyral would skip are skipped (counted per
//! reason in the result metadata, spline failures also logged as warnings as Spyral does).
//!
//! Output: `<workspace>/Estimation/run_NNNN.parquet`, one row per accepted cluster, with
//! Spyral's columns in Spyral's order (spec 3.3.3): Int64 `event, cluster_index, cluster_label,
//! orig_run, orig_event`, Float64 `ic_amplitude ... arclength`, then Int64 `direction`.
//!
//! Differences from Spyral 1.1.2, on purpose:
//! - `direction` is written as Int64 (-1, 0, 1; 0 or 1 in practice, NONE clusters are rejected).
//!   1.1.2 puts the Python enum object in the column and polars fails to write it; Int64 is what
//!   the schema and the earlier releases intend.
//! - With no accepted cluster the file still has the full schema (all 23 columns) and 0 rows;
//!   Spyral writes a parquet file with no columns. Readers (and the next phase) can rely on the
//!   columns existing.
//! - Malformed cluster files (missing attributes, a direction other than -1/0/1, a cloud with
//!   fewer than 4 columns) fail the run with an error naming the object; Spyral would raise and
//!   stop the worker.
//!
//! Artifacts: `estimation` (the parquet file) and `cluster` (the input cluster file, passed
//! through for the solver).
//!
//! Splittable: a chunk estimates the events of its range and writes its table at its chunk
//! path (its `cluster` artifact is the cluster file it read, the chunk's);
//! [`Phase::merge`] concatenates the chunk tables in event order and writes them through the
//! same writer (the bytes of a whole run), and names the run's cluster file.

pub mod algorithm;
pub mod closest;
pub mod linregress;
pub mod reader;

use crate::chunking;
use algorithm::{Estimate, EstimateParams, Estimator, Rejection};
use reader::{ClusterFile, EventInfo};
use serde::{Deserialize, Serialize};
use spyral_core::prelude::*;
use spyral_data::attpc::detector::DetectorParameters;
use spyral_data::schemas::{ESTIMATION_FLOAT_COLUMNS, ESTIMATION_INT_COLUMNS};
use spyral_data::table::{Column, Table};
use std::collections::BTreeMap;

/// Name of the last (Int64) column of the Estimation parquet.
pub const DIRECTION_COLUMN: &str = "direction";

/// Estimation parameters (Spyral's EstimateParameters and DetectorParameters) with the
/// documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EstimationConfig {
    /// Clusters with fewer points are not estimated (default 30). Unit: points.
    pub min_total_trajectory_points: usize,
    /// λ of the smoothing splines of x, y and charge against z (default 100.0; ≥ 0; larger is
    /// smoother).
    pub smoothing_factor: f64,
    /// Detector parameters; the estimation uses `magnetic_field` and `beam_region_radius`.
    pub detector: DetectorParameters,
}

impl Default for EstimationConfig {
    fn default() -> Self {
        EstimationConfig {
            min_total_trajectory_points: 30,
            smoothing_factor: 100.0,
            detector: DetectorParameters::default(),
        }
    }
}

impl EstimationConfig {
    /// The parameters the per-cluster algorithm needs.
    pub fn params(&self) -> EstimateParams {
        EstimateParams {
            min_total_trajectory_points: self.min_total_trajectory_points,
            smoothing_factor: self.smoothing_factor,
            magnetic_field: self.detector.magnetic_field,
            beam_region_radius: self.detector.beam_region_radius,
        }
    }

    /// Checks the values: a finite, non-negative smoothing factor, a finite field and beam
    /// region, and a valid detector calibration.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.smoothing_factor.is_finite() && self.smoothing_factor >= 0.0) {
            return Err(format!(
                "smoothing_factor = {} must be a finite number >= 0",
                self.smoothing_factor
            ));
        }
        if !self.detector.magnetic_field.is_finite() {
            return Err(format!(
                "detector.magnetic_field = {} must be finite",
                self.detector.magnetic_field
            ));
        }
        if !self.detector.beam_region_radius.is_finite() {
            return Err(format!(
                "detector.beam_region_radius = {} must be finite",
                self.detector.beam_region_radius
            ));
        }
        self.detector
            .validate()
            .map_err(|e| format!("detector: {e}"))
    }
}

/// One output row: the cluster's identity, the event's information and the estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimateRow {
    /// Event information.
    pub event: EventInfo,
    /// Index `k` of the cluster in the event.
    pub cluster_index: i64,
    /// Clustering label.
    pub cluster_label: i64,
    /// The estimate.
    pub estimate: Estimate,
}

/// The Estimation parquet table of `rows`, columns in Spyral's order.
pub fn rows_to_table(rows: &[EstimateRow]) -> Table {
    let mut t = Table::with_columns(&ESTIMATION_INT_COLUMNS, &ESTIMATION_FLOAT_COLUMNS);
    t.columns
        .push((DIRECTION_COLUMN.to_string(), Column::I64(Vec::new())));
    for r in rows {
        let e = &r.estimate;
        let ints = [
            r.event.event,
            r.cluster_index,
            r.cluster_label,
            r.event.orig_run,
            r.event.orig_event,
        ];
        let floats = [
            r.event.ic_amplitude,
            r.event.ic_centroid,
            r.event.ic_integral,
            r.event.ic_multiplicity,
            e.vertex[0],
            e.vertex[1],
            e.vertex[2],
            e.center[0],
            e.center[1],
            e.center[2],
            e.polar,
            e.azimuthal,
            e.brho,
            e.dedx,
            e.sqrt_dedx,
            e.de,
            e.arclength,
        ];
        for (name, v) in ESTIMATION_INT_COLUMNS.iter().zip(ints) {
            t.push_i64(name, v);
        }
        for (name, v) in ESTIMATION_FLOAT_COLUMNS.iter().zip(floats) {
            t.push_f64(name, v);
        }
        t.push_i64(DIRECTION_COLUMN, e.direction.value());
    }
    t
}

/// The phase.
#[derive(Debug)]
pub struct EstimationPhase {
    name: String,
    config: EstimationConfig,
}

impl EstimationPhase {
    /// Its configuration.
    pub fn config(&self) -> &EstimationConfig {
        &self.config
    }
}

impl PhaseFactory for EstimationPhase {
    type Config = EstimationConfig;
    fn from_config(name: &str, config: EstimationConfig) -> Result<Self, PhaseError> {
        config
            .validate()
            .map_err(|e| PhaseError::config(format!("phase {name}: {e}")))?;
        Ok(EstimationPhase {
            name: name.to_string(),
            config,
        })
    }
}

/// What one run produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunSummary {
    /// Events read.
    pub events: u64,
    /// Clusters read.
    pub clusters: u64,
    /// Rejected clusters per reason ([`Rejection::reason`]).
    pub rejected: BTreeMap<&'static str, u64>,
}

/// Estimates every cluster of an open cluster file, calling `tick` once per event it holds and
/// `cancelled` before each; returns the accepted rows in file order.
pub fn estimate_file(
    file: &ClusterFile,
    params: &EstimateParams,
    tick: impl FnMut(),
    cancelled: impl Fn() -> bool,
) -> Result<(Vec<EstimateRow>, RunSummary), PhaseError> {
    let ids = (file.max_event() >= file.min_event()).then(|| (file.min_event(), file.max_event()));
    estimate_ids(file, ids, params, tick, cancelled)
}

/// [`estimate_file`] for the event ids `first..=last` of `ids` only (none for `None`).
pub fn estimate_ids(
    file: &ClusterFile,
    ids: Option<(i64, i64)>,
    params: &EstimateParams,
    mut tick: impl FnMut(),
    cancelled: impl Fn() -> bool,
) -> Result<(Vec<EstimateRow>, RunSummary), PhaseError> {
    let mut estimator = Estimator::new();
    let mut rows = Vec::new();
    let mut summary = RunSummary::default();
    let Some((first, last)) = ids else {
        return Ok((rows, summary));
    };
    for id in file.event_ids(first, last) {
        if cancelled() {
            return Err(PhaseError::cancelled());
        }
        let event = file.read_event(id)?;
        tick();
        let Some((info, group)) = event else { continue };
        summary.events += 1;
        for k in 0..info.nclusters.max(0) {
            let Some(cluster) = file.read_cluster(&group, id, k)? else {
                continue;
            };
            summary.clusters += 1;
            match estimator.estimate(cluster.cloud.view(), cluster.direction, params) {
                Ok(estimate) => rows.push(EstimateRow {
                    event: info,
                    cluster_index: cluster.index,
                    cluster_label: cluster.label,
                    estimate,
                }),
                Err(r) => {
                    if let Rejection::Spline(_) = r {
                        tracing::warn!("Spline creation failed for event {id} (cluster {k}): {r}");
                    }
                    *summary.rejected.entry(r.reason()).or_default() += 1;
                }
            }
        }
    }
    Ok((rows, summary))
}

impl Phase for EstimationPhase {
    fn incoming_schema(&self) -> Option<ResultSchema> {
        Some(spyral_data::schemas::cluster())
    }
    fn outgoing_schema(&self) -> Option<ResultSchema> {
        Some(spyral_data::schemas::estimation())
    }
    fn construct_artifact(
        &self,
        payload: &PhaseResult,
        workspace: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        let cluster = payload.artifact("cluster").ok_or_else(|| {
            PhaseError::invalid_input(format!(
                "{}: run {}: no `cluster` artifact in the input",
                self.name, payload.run_number
            ))
        })?;
        Ok(PhaseResult::new(payload.run_number)
            .with_artifact(
                "estimation",
                workspace.artifact_path(payload.run_number, "parquet"),
            )
            .with_artifact("cluster", cluster))
    }

    fn splittable(&self) -> bool {
        true
    }

    fn events(
        &self,
        payload: &PhaseResult,
        _workspace: &Workspace,
    ) -> Result<Option<EventRange>, PhaseError> {
        let file = ClusterFile::open(&payload.require("cluster")?)?;
        Ok(chunking::event_range(file.min_event(), file.max_event()))
    }

    fn run(&self, payload: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        let run = ctx.run();
        let cluster_path = payload.require("cluster")?;
        let file = ClusterFile::open(&cluster_path)?;
        let params = self.config.params();
        // The run's ids, or those of the chunk.
        let ids = chunking::id_range(ctx, file.min_event(), file.max_event());
        let total = ids.map_or(0, |(a, b)| file.event_ids(a, b).len() as u64);
        let mut progress = Progress::new(ctx, total);
        let (rows, summary) =
            estimate_ids(&file, ids, &params, || progress.tick(), || ctx.cancelled())?;
        drop(file);
        let dest = rows_to_table(&rows).write_parquet(&ctx.artifact_path("parquet"))?;
        let rejected: u64 = summary.rejected.values().sum();
        tracing::info!(
            "{}: run {run}{}: {} events, {} clusters, {} estimates, {rejected} rejected",
            self.name,
            ctx.events().map(|r| format!(" ({r})")).unwrap_or_default(),
            summary.events,
            summary.clusters,
            rows.len()
        );
        let mut result = PhaseResult::new(run)
            .with_artifact("estimation", dest)
            .with_artifact("cluster", cluster_path);
        result.set_metadata("events", summary.events);
        result.set_metadata("clusters", summary.clusters);
        result.set_metadata("estimates", rows.len() as u64);
        let reasons: serde_json::Map<String, serde_json::Value> = summary
            .rejected
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        result.set_metadata("rejected", serde_json::Value::Object(reasons));
        Ok(result)
    }

    fn merge(
        &self,
        parts: &[PhaseResult],
        ctx: &RunContext<'_>,
    ) -> Result<PhaseResult, PhaseError> {
        let run = ctx.run();
        chunking::check_parts(&self.name, parts, run)?;
        let tables = chunking::part_paths(&self.name, parts, "estimation")?;
        let clusters = chunking::part_paths(&self.name, parts, "cluster")?;
        let mut merged = rows_to_table(&[]);
        let mut progress = Progress::new(ctx, tables.len() as u64);
        for path in &tables {
            if ctx.cancelled() {
                return Err(PhaseError::cancelled());
            }
            merged.append(&spyral_data::table::Table::read_parquet(path)?)?;
            progress.tick();
        }
        let dest = merged.write_parquet(&ctx.workspace().artifact_path(run, "parquet"))?;
        // The chunks read the chunks of the run's cluster file (or, when the Cluster phase did
        // not run in chunks, the run's file itself): the merged result names the run's.
        let cluster = chunking::run_file_of(&clusters[0]);
        let result = PhaseResult::new(run)
            .with_artifact("estimation", dest)
            .with_artifact("cluster", cluster);
        Ok(chunking::with_metadata(
            result,
            chunking::sum_metadata(parts),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_spyrals() {
        let c = EstimationConfig::default();
        assert_eq!(c.min_total_trajectory_points, 30);
        assert_eq!(c.smoothing_factor, 100.0);
        assert_eq!(c.detector.magnetic_field, 2.85);
        assert_eq!(c.detector.beam_region_radius, 25.0);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn config_rejects_bad_values() {
        let c = EstimationConfig {
            smoothing_factor: -1.0,
            ..Default::default()
        };
        assert!(EstimationPhase::from_config("Estimation", c).is_err());
        let c = EstimationConfig {
            smoothing_factor: f64::NAN,
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn empty_table_has_the_full_schema() {
        let t = rows_to_table(&[]);
        assert_eq!(t.columns.len(), 23);
        assert_eq!(t.rows(), 0);
        assert_eq!(t.columns.last().map(|c| c.0.as_str()), Some("direction"));
    }
}
