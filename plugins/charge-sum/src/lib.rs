//! Example plugin `charge-sum`: a researcher's custom analysis step after Pointcloud.
//!
//! For every event of a run's Pointcloud artifact (`/cloud/cloud_<event>`, columns
//! `[x, y, z, amplitude, integral, pad, tb, scale]`), it sums the amplitude and integral of the
//! points, counts them and the distinct pads, and keeps the event if it passes a simple filter
//! (minimum number of points, optional z window). Output: `<workspace>/ChargeSum/run_NNNN.parquet`
//! with columns `event, points, pads` (Int64) and `total_amplitude, total_integral, mean_z`
//! (Float64), readable with polars: `pl.read_parquet("ChargeSum/run_0001.parquet")`.

use parquet::basic::{Compression, Repetition, Type as PhysicalType};
use parquet::data_type::{DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde::{Deserialize, Serialize};
use spyral_core::prelude::*;
use std::sync::Arc;

/// Parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChargeSumConfig {
    /// Events with fewer points are dropped.
    pub min_points: usize,
    /// Only points with z in [z_min, z_max] mm are summed.
    pub z_min: f64,
    /// See `z_min`.
    pub z_max: f64,
}

impl Default for ChargeSumConfig {
    fn default() -> Self {
        ChargeSumConfig {
            min_points: 10,
            z_min: 0.0,
            z_max: 1000.0,
        }
    }
}

/// The phase.
pub struct ChargeSum {
    config: ChargeSumConfig,
}

impl PhaseFactory for ChargeSum {
    type Config = ChargeSumConfig;
    fn from_config(_name: &str, config: ChargeSumConfig) -> Result<Self, PhaseError> {
        if config.z_min >= config.z_max {
            return Err(PhaseError::config(format!(
                "z_min ({}) must be below z_max ({})",
                config.z_min, config.z_max
            )));
        }
        Ok(ChargeSum { config })
    }
}

const INT_COLUMNS: [&str; 3] = ["event", "points", "pads"];
const FLOAT_COLUMNS: [&str; 3] = ["total_amplitude", "total_integral", "mean_z"];

#[derive(Default)]
struct Rows {
    ints: [Vec<i64>; 3],
    floats: [Vec<f64>; 3],
}

fn write_parquet(rows: &Rows, path: &std::path::Path) -> Result<(), PhaseError> {
    let err = |e: parquet::errors::ParquetError| PhaseError::io(format!("{}: {e}", path.display()));
    let mut fields = Vec::new();
    for n in INT_COLUMNS {
        fields.push(Arc::new(
            Type::primitive_type_builder(n, PhysicalType::INT64)
                .with_repetition(Repetition::REQUIRED)
                .build()
                .map_err(err)?,
        ));
    }
    for n in FLOAT_COLUMNS {
        fields.push(Arc::new(
            Type::primitive_type_builder(n, PhysicalType::DOUBLE)
                .with_repetition(Repetition::REQUIRED)
                .build()
                .map_err(err)?,
        ));
    }
    let schema = Type::group_type_builder("schema")
        .with_fields(fields)
        .build()
        .map_err(err)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let file =
        std::fs::File::create(path).map_err(|e| PhaseError::io_at(path, "cannot create", &e))?;
    let mut w = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props)).map_err(err)?;
    let mut g = w.next_row_group().map_err(err)?;
    for v in &rows.ints {
        if let Some(mut c) = g.next_column().map_err(err)? {
            c.typed::<Int64Type>()
                .write_batch(v, None, None)
                .map_err(err)?;
            c.close().map_err(err)?;
        }
    }
    for v in &rows.floats {
        if let Some(mut c) = g.next_column().map_err(err)? {
            c.typed::<DoubleType>()
                .write_batch(v, None, None)
                .map_err(err)?;
            c.close().map_err(err)?;
        }
    }
    g.close().map_err(err)?;
    w.close().map_err(err)?;
    Ok(())
}

impl Phase for ChargeSum {
    fn incoming_schema(&self) -> Option<ResultSchema> {
        // The same description the Pointcloud phase declares for its output.
        Some(ResultSchema::new().with(
            "pointcloud",
            ".h5",
            serde_json::json!({"cloud": {"cloud": "array"}}),
        ))
    }
    fn outgoing_schema(&self) -> Option<ResultSchema> {
        Some(ResultSchema::new().with(
            "charge_sum",
            ".parquet",
            serde_json::json!({"event": "int", "points": "int", "pads": "int",
                "total_amplitude": "float", "total_integral": "float", "mean_z": "float"}),
        ))
    }
    fn construct_artifact(
        &self,
        p: &PhaseResult,
        ws: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        Ok(PhaseResult::new(p.run_number)
            .with_artifact("charge_sum", ws.artifact_path(p.run_number, "parquet")))
    }
    fn run(&self, p: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        let input = p.require("pointcloud")?;
        let h5 = |e: hdf5::Error| PhaseError::invalid_input(format!("{}: {e}", input.display()));
        let file = hdf5::File::open(&input).map_err(h5)?;
        let cloud = file.group("cloud").map_err(h5)?;
        let min: i64 = cloud
            .attr("min_event")
            .and_then(|a| a.read_scalar())
            .map_err(h5)?;
        let max: i64 = cloud
            .attr("max_event")
            .and_then(|a| a.read_scalar())
            .map_err(h5)?;
        let names: std::collections::HashSet<String> =
            cloud.member_names().map_err(h5)?.into_iter().collect();
        let mut rows = Rows::default();
        let mut progress = Progress::new(ctx, (max - min + 1).max(0) as u64);
        let (mut kept, mut dropped) = (0u64, 0u64);
        for event in min..=max {
            progress.tick();
            if ctx.cancelled() {
                return Err(PhaseError::cancelled());
            }
            let name = format!("cloud_{event}");
            if !names.contains(&name) {
                continue;
            }
            let data: ndarray::Array2<f64> =
                cloud.dataset(&name).and_then(|d| d.read_2d()).map_err(h5)?;
            let mut pads = std::collections::BTreeSet::new();
            let (mut n, mut amp, mut integral, mut zsum) = (0i64, 0.0, 0.0, 0.0);
            for row in data.outer_iter() {
                let z = row[2];
                if z < self.config.z_min || z > self.config.z_max {
                    continue;
                }
                n += 1;
                amp += row[3];
                integral += row[4];
                zsum += z;
                pads.insert(row[5] as i64);
            }
            if (n as usize) < self.config.min_points {
                dropped += 1;
                continue;
            }
            kept += 1;
            rows.ints[0].push(event);
            rows.ints[1].push(n);
            rows.ints[2].push(pads.len() as i64);
            rows.floats[0].push(amp);
            rows.floats[1].push(integral);
            rows.floats[2].push(zsum / n as f64);
        }
        let dest = ctx.workspace().artifact_path(ctx.run(), "parquet");
        let out = PartialFile::new(&dest)?;
        write_parquet(&rows, out.path())?;
        let dest = out.commit()?;
        tracing::info!("run {}: kept {kept} events, dropped {dropped}", ctx.run());
        let mut r = PhaseResult::new(ctx.run()).with_artifact("charge_sum", dest);
        r.set_metadata("events_kept", kept);
        r.set_metadata("events_dropped", dropped);
        Ok(r)
    }
}

spyral_core::export_plugin! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    kinds: [spyral_core::kind::<ChargeSum>(
        "charge-sum",
        "ChargeSum",
        "Per-event charge sums of point clouds with an event filter, as parquet (example plugin)",
    )],
}
