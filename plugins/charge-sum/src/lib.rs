//! Example plugin `charge-sum`: a charge gate, the analysis step a researcher writes after
//! Pointcloud, on the plugin SDK (`spyral-core` for the contract, `spyral-data` for the data).
//!
//! It reads the point clouds of an earlier phase by name (`input_phase`, `Pointcloud` by
//! default: `ctx.clouds(..)`), sums per event the amplitude and integral of the points inside a z
//! window, counts them and their distinct pads, keeps events with at least `min_points` such
//! points, and writes `<workspace>/ChargeSum/run_NNNN.parquet`: columns `event, points, pads`
//! (Int64) and `total_amplitude, total_integral, mean_z` (Float64; ADC units, mm), readable
//! with polars: `pl.read_parquet("ChargeSum/run_0001.parquet")`.

use serde::{Deserialize, Serialize};
use spyral_core::prelude::*;
use spyral_data::prelude::*;

/// Parameters. The JSON Schema derived here is what `spyral plugins --doc KIND` prints
/// and `spyral schema` checks pipelines with (doc comments are the descriptions; a quantity's
/// ends with `Unit: <unit>.`).
#[derive(Debug, Clone, Serialize, Deserialize, spyral_core::schemars::JsonSchema)]
#[schemars(crate = "spyral_core::schemars")]
#[serde(default, deny_unknown_fields)]
pub struct ChargeSumConfig {
    /// The earlier phase whose point clouds are read (a `pointcloud` phase).
    pub input_phase: String,
    /// Events with fewer points inside the z window are dropped. Unit: points.
    pub min_points: usize,
    /// Only points with z in [z_min, z_max] are summed. Unit: mm.
    pub z_min: f64,
    /// Upper end of the z window. Unit: mm.
    pub z_max: f64,
}

impl Default for ChargeSumConfig {
    fn default() -> Self {
        ChargeSumConfig {
            input_phase: "Pointcloud".to_string(),
            min_points: 10,
            z_min: 0.0,
            z_max: 1000.0,
        }
    }
}

/// The phase.
pub struct ChargeSumPhase {
    config: ChargeSumConfig,
}

impl PhaseFactory for ChargeSumPhase {
    type Config = ChargeSumConfig;
    fn from_config(_name: &str, config: ChargeSumConfig) -> Result<Self, PhaseError> {
        if config.z_min >= config.z_max {
            return Err(PhaseError::config(format!(
                "z_min ({}) must be below z_max ({})",
                config.z_min, config.z_max
            )));
        }
        Ok(ChargeSumPhase { config })
    }
}

const INTS: [&str; 3] = ["event", "points", "pads"];
const FLOATS: [&str; 3] = ["total_amplitude", "total_integral", "mean_z"];

impl Phase for ChargeSumPhase {
    /// `None`: the input is found by phase name, wherever it is in the chain.
    fn incoming_schema(&self) -> Option<ResultSchema> {
        None
    }
    fn outgoing_schema(&self) -> Option<ResultSchema> {
        let columns = INTS.map(|c| (c, "int")).into_iter();
        let columns = columns.chain(FLOATS.map(|c| (c, "float")));
        let json: serde_json::Map<_, _> = columns.map(|(c, t)| (c.into(), t.into())).collect();
        Some(ResultSchema::new().with("charge_sum", ".parquet", json.into()))
    }
    fn construct_artifact(
        &self,
        p: &PhaseResult,
        ws: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        let path = ws.artifact_path(p.run_number, "parquet");
        Ok(PhaseResult::new(p.run_number).with_artifact("charge_sum", path))
    }
    fn run(&self, _p: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        let clouds = ctx.clouds(&self.config.input_phase)?;
        let mut table = Table::with_columns(&INTS, &FLOATS);
        let mut progress = Progress::new(ctx, clouds.ids.len() as u64);
        for event in clouds.events() {
            let event = event?;
            progress.tick();
            if ctx.cancelled() {
                return Err(PhaseError::cancelled());
            }
            // Rows are [x, y, z, amplitude, integral, pad, time bucket, scale].
            let window = self.config.z_min..=self.config.z_max;
            let rows: Vec<_> = event
                .cloud
                .rows()
                .into_iter()
                .filter(|r| window.contains(&r[2]))
                .collect();
            if rows.is_empty() || rows.len() < self.config.min_points {
                continue;
            }
            let sum = |c: usize| rows.iter().map(|r| r[c]).sum::<f64>();
            let pads: std::collections::BTreeSet<i64> = rows.iter().map(|r| r[5] as i64).collect();
            table.push_i64("event", event.id as i64);
            table.push_i64("points", rows.len() as i64);
            table.push_i64("pads", pads.len() as i64);
            table.push_f64("total_amplitude", sum(3));
            table.push_f64("total_integral", sum(4));
            table.push_f64("mean_z", sum(2) / rows.len() as f64);
        }
        let dest = table.write_parquet(&ctx.artifact_path("parquet"))?;
        let kept = table.rows() as u64;
        tracing::info!(
            "run {}: kept {kept} of {} events",
            ctx.run(),
            clouds.ids.len()
        );
        let mut result = PhaseResult::new(ctx.run()).with_artifact("charge_sum", dest);
        result.set_metadata("events_kept", kept);
        result.set_metadata("events_dropped", clouds.ids.len() as u64 - kept);
        Ok(result)
    }
}

spyral_core::export_plugin! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    kinds: [spyral_core::kind_with_schema::<ChargeSumPhase>(
        "charge-sum",
        "ChargeSum",
        "Charge gate: per-event charge sums of an earlier phase's point clouds in a z window, as parquet (example plugin)",
    )],
}
