//! The Pointcloud phase (kind `pointcloud`, folder `Pointcloud`): raw GET traces to point clouds.
//!
//! Per event (spyral-spec section 3.1): baseline removal with the sinc filter, scipy-compatible
//! peak finding with a centroid jitter drawn from the event's seeded RNG
//! ([`RunContext::event_seed`]: the same whether the run is processed whole or in chunks, so
//! it differs from Spyral's one stream per run), one point per peak of
//! every trace with 1-5 peaks on a known, non-beam pad, the pad's time offset added, z from the
//! micromegas and window time buckets, NaN rows dropped, rows sorted by z. Events whose FRIB
//! trigger is IC-downscale are counted (gated IC scaler) and skipped; other events carry the IC
//! amplitude, integral, centroid and multiplicity. Scalers go to `run_NNNN_scaler.parquet`, the
//! gated IC count to `run_NNNN_gated_ic_scaler.txt`.
//!
//! The artifact keeps Spyral's layout so h5py scripts work unchanged: `/cloud` (attrs
//! `min_event`, `max_event`), `/cloud/cloud_<event>` float64 (N, 8) with columns
//! `[x, y, z, amplitude, integral, pad, time bucket, scale]` and attributes `orig_run`,
//! `orig_event`, `ic_amplitude`, `ic_integral`, `ic_centroid`, `ic_multiplicity`.
//!
//! With `detector.do_garfield_correction`, the Garfield electron-drift correction
//! ([`crate::garfield`]) is applied after the z calibration: `create_assets` generates
//! `<workspace>/Pointcloud_assets/<garfield file stem>.npy` unless it exists (it is keyed only by
//! the stem, so it is reused even if the parameters change), and each worker loads it once, on
//! its first run. Points outside the correction grid are dropped with the other NaN rows.
//!
//! Splittable: a chunk processes the stored events of its range and writes the same files at
//! its chunk paths, its clouds as a spill file (`spyral_data::artifacts::spill`; the range
//! attributes are the run's; the scalers, which are not GET events, are written by the first
//! chunk only). [`Phase::merge`] re-writes the chunks'
//! clouds in event order through the same [`CloudWriter`], copies the first chunk's scaler
//! table and adds up the gated counts: the files are byte-identical to a whole run's.

use crate::chunking;
use crate::garfield::Corrector;
use crate::signal::{
    frib_peaks, get_peaks_above, BaselineRemover, FindPeaksParams, Peak, PeakFinder,
};
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};
use spyral_core::prelude::*;
pub use spyral_data::artifacts::pointcloud::{
    CloudFile, CloudRecord, CloudWriter, CLOUD_COLUMNS, CLOUD_COLUMN_NAMES, CLOUD_SUFFIX,
    GATED_SUFFIX, IC_ATTRS, SCALER_SUFFIX,
};
use spyral_data::attpc::detector::{
    DetectorParameters, FribParameters, GetParameters, PadParameters,
};
use spyral_data::attpc::padmap::PadMap;
use spyral_data::attpc::traces::{
    FribData, FribTrigger, RawEvent, TraceReader, GET_SAMPLE_OFFSET, NUM_SCALERS, SCALER_NAMES,
};
use spyral_data::table::Table;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Traces with more peaks than this are not used (spec 3.1.3).
pub const MAX_PEAKS_PER_TRACE: usize = 5;

/// Pointcloud parameters (Spyral's GetParameters, FribParameters, DetectorParameters and
/// PadParameters), each group with its documented defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PointcloudConfig {
    /// GET trace processing.
    pub get: GetParameters,
    /// FRIBDAQ auxiliary trace processing (ion chamber).
    pub frib: FribParameters,
    /// Detector geometry and calibration.
    pub detector: DetectorParameters,
    /// Pad plane files (absent: the built-in plane).
    pub pads: PadParameters,
}

/// The phase.
pub struct PointcloudPhase {
    name: String,
    config: PointcloudConfig,
    pads: Arc<PadMap>,
    /// The Garfield corrector, loaded on the first run that needs it.
    corrector: OnceLock<Corrector>,
}

/// The Garfield file of an enabled correction, checked to exist; `None` when disabled.
fn garfield_file(name: &str, detector: &DetectorParameters) -> Result<Option<PathBuf>, PhaseError> {
    if !detector.do_garfield_correction {
        return Ok(None);
    }
    let Some(path) = &detector.garfield_file_path else {
        return Err(PhaseError::config(format!(
            "phase {name}: detector.do_garfield_correction is set but detector.garfield_file_path is not"
        )));
    };
    if !path.is_file() {
        return Err(PhaseError::config(format!(
            "phase {name}: detector.garfield_file_path {} does not exist or is not a file (needed by detector.do_garfield_correction)",
            path.display()
        )));
    }
    Ok(Some(path.clone()))
}

impl PointcloudPhase {
    /// The Garfield correction asset of this configuration in `workspace`, or `None` when the
    /// correction is disabled.
    pub fn garfield_asset_path(&self, workspace: &Workspace) -> Option<PathBuf> {
        let det = &self.config.detector;
        if !det.do_garfield_correction {
            return None;
        }
        det.garfield_file_path
            .as_deref()
            .map(|g| crate::garfield::asset_path(&workspace.asset_dir(), g))
    }

    /// The Garfield corrector for runs in `workspace` (`None` when disabled): loaded from the
    /// asset on the first call and kept for the phase's lifetime.
    pub fn electron_corrector(
        &self,
        workspace: &Workspace,
    ) -> Result<Option<&Corrector>, PhaseError> {
        let Some(path) = self.garfield_asset_path(workspace) else {
            return Ok(None);
        };
        if let Some(c) = self.corrector.get() {
            return Ok(Some(c));
        }
        let loaded = Corrector::load(&path).map_err(|e| {
            PhaseError::invalid_input(format!(
                "phase {}: Garfield correction asset (run create_assets first): {e}",
                self.name
            ))
        })?;
        // Another thread may have won the race; either value is the same grid.
        let _ = self.corrector.set(loaded);
        Ok(self.corrector.get())
    }
}

/// Generates the Garfield correction grid from `garfield` into `dest` (through a temporary
/// name) unless `dest` already exists.
fn ensure_garfield_asset(
    name: &str,
    garfield: &Path,
    detector: &DetectorParameters,
    dest: &Path,
) -> Result<(), PhaseError> {
    if dest.is_file() {
        tracing::info!(
            "phase {name}: reusing the Garfield correction {}",
            dest.display()
        );
        return Ok(());
    }
    tracing::info!(
        "phase {name}: generating the Garfield correction {} from {}",
        dest.display(),
        garfield.display()
    );
    let grid = crate::garfield::generate(garfield, detector).map_err(|e| {
        PhaseError::invalid_input(format!("phase {name}: Garfield correction: {e}"))
    })?;
    let out = PartialFile::new(dest)?;
    crate::garfield::write_grid(&grid, out.path())
        .map_err(|e| PhaseError::io(format!("phase {name}: Garfield correction: {e}")))?;
    out.commit()?;
    Ok(())
}

impl PhaseFactory for PointcloudPhase {
    type Config = PointcloudConfig;
    fn from_config(name: &str, config: PointcloudConfig) -> Result<Self, PhaseError> {
        config
            .detector
            .validate()
            .map_err(|e| PhaseError::config(format!("phase {name}: detector: {e}")))?;
        garfield_file(name, &config.detector)?;
        FindPeaksParams::spyral_get(
            config.get.peak_separation,
            config.get.peak_prominence,
            config.get.peak_max_width,
        )
        .validate()
        .map_err(|e| PhaseError::config(format!("phase {name}: get: {e}")))?;
        BaselineRemover::get(config.get.baseline_window_scale)
            .map_err(|e| PhaseError::config(format!("phase {name}: get: {e}")))?;
        let pads = PadMap::load(&config.pads)
            .map_err(|e| PhaseError::config(format!("phase {name}: pads: {e}")))?;
        Ok(PointcloudPhase {
            name: name.to_string(),
            config,
            pads: Arc::new(pads),
            corrector: OnceLock::new(),
        })
    }
}

/// Ion-chamber information of one event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IcInfo {
    /// IC peaks after the delay.
    pub multiplicity: usize,
    /// The earliest IC peak after the delay.
    pub trigger: Option<Peak>,
}

/// Reusable per-run state: filters, peak finder and buffers.
pub struct CloudBuilder<'a> {
    config: &'a PointcloudConfig,
    pads: &'a PadMap,
    get_baseline: BaselineRemover,
    frib_baseline: BaselineRemover,
    get_params: FindPeaksParams,
    frib_params: FindPeaksParams,
    finder: PeakFinder,
    trace: Vec<i32>,
    raw: Vec<i16>,
    frib_raw: Vec<u16>,
    frib_trace: Vec<i32>,
    peaks: Vec<Peak>,
    rng: Pcg64,
    corrector: Option<&'a Corrector>,
}

impl<'a> CloudBuilder<'a> {
    /// State for one run, with its RNG seeded from `seed`.
    pub fn new(
        config: &'a PointcloudConfig,
        pads: &'a PadMap,
        seed: u64,
    ) -> Result<Self, PhaseError> {
        let cfg_err = |e: crate::signal::SignalError| PhaseError::config(e.to_string());
        Ok(CloudBuilder {
            config,
            pads,
            get_baseline: BaselineRemover::get(config.get.baseline_window_scale)
                .map_err(cfg_err)?,
            frib_baseline: BaselineRemover::frib(config.frib.baseline_window_scale)
                .map_err(cfg_err)?,
            get_params: FindPeaksParams::spyral_get(
                config.get.peak_separation,
                config.get.peak_prominence,
                config.get.peak_max_width,
            ),
            frib_params: FindPeaksParams::spyral_frib(
                config.frib.peak_separation,
                config.frib.peak_prominence,
                config.frib.peak_max_width,
            ),
            finder: PeakFinder::new(),
            trace: vec![0; crate::signal::GET_TRACE_LENGTH],
            raw: vec![0; crate::signal::GET_TRACE_LENGTH],
            frib_raw: vec![0; crate::signal::FRIB_TRACE_LENGTH],
            frib_trace: vec![0; crate::signal::FRIB_TRACE_LENGTH],
            peaks: Vec::with_capacity(8),
            rng: Pcg64::seed_from_u64(seed),
            corrector: None,
        })
    }

    /// Restarts the centroid-jitter RNG from `seed` (the phase does it per event with
    /// [`RunContext::event_seed`], so a cloud does not depend on the events before it).
    pub fn reseed(&mut self, seed: u64) {
        self.rng = Pcg64::seed_from_u64(seed);
    }

    /// Applies the Garfield electron-drift correction to every point (after z calibration).
    pub fn with_correction(mut self, corrector: Option<&'a Corrector>) -> Self {
        self.corrector = corrector;
        self
    }

    /// The point cloud of a GET matrix `(n, 517)`: rows `[x, y, z, amplitude, integral, pad,
    /// tb, scale]` sorted by z.
    pub fn cloud(&mut self, pads: ArrayView2<'_, i16>) -> Result<Array2<f64>, PhaseError> {
        let mut rows: Vec<[f64; CLOUD_COLUMNS]> = Vec::with_capacity(128);
        let det = &self.config.detector;
        for row in pads.outer_iter() {
            let pad = row[4];
            if pad == -1 {
                continue;
            }
            match row.as_slice() {
                Some(s) => self.raw.copy_from_slice(&s[GET_SAMPLE_OFFSET..]),
                None => {
                    for (d, s) in self.raw.iter_mut().zip(row.iter().skip(GET_SAMPLE_OFFSET)) {
                        *d = *s;
                    }
                }
            }
            self.get_baseline
                .remove(&self.raw, &mut self.trace)
                .map_err(|e| PhaseError::internal(e.to_string()))?;
            let rng = &mut self.rng;
            // Only peaks above the threshold are kept: skip the small noise maxima early.
            get_peaks_above(
                &mut self.finder,
                &self.trace,
                &self.get_params,
                self.config.get.peak_threshold,
                || rng.random::<f64>() / 1000.0,
                &mut self.peaks,
            )
            .map_err(|e| PhaseError::internal(e.to_string()))?;
            if self.peaks.is_empty() || self.peaks.len() > MAX_PEAKS_PER_TRACE {
                continue;
            }
            let Some(info) = self.pads.pad(pad) else {
                continue;
            };
            if self.pads.is_beam_pad(pad) {
                continue;
            }
            for p in &self.peaks {
                let tb = p.centroid + info.time_offset;
                rows.push([
                    info.x,
                    info.y,
                    det.z_from_tb(tb),
                    p.amplitude,
                    p.integral as f64,
                    f64::from(pad),
                    tb,
                    info.scale,
                ]);
            }
        }
        if let Some(c) = self.corrector {
            for r in &mut rows {
                c.correct_point(r);
            }
        }
        rows.retain(|r| r.iter().all(|v| !v.is_nan()));
        rows.sort_by(|a, b| a[2].total_cmp(&b[2]));
        let n = rows.len();
        Array2::from_shape_vec((n, CLOUD_COLUMNS), rows.into_iter().flatten().collect())
            .map_err(|e| PhaseError::internal(e.to_string()))
    }

    /// Ion-chamber multiplicity and triggering peak of an event's FRIB traces (spec 1.8).
    pub fn ion_chamber(&mut self, frib: &FribData) -> Result<IcInfo, PhaseError> {
        for (d, s) in self.frib_raw.iter_mut().zip(frib.traces.column(0).iter()) {
            *d = *s;
        }
        self.frib_baseline
            .remove(&self.frib_raw, &mut self.frib_trace)
            .map_err(|e| PhaseError::internal(e.to_string()))?;
        frib_peaks(
            &mut self.finder,
            &self.frib_trace,
            &self.frib_params,
            self.config.frib.peak_threshold,
            &mut self.peaks,
        )
        .map_err(|e| PhaseError::internal(e.to_string()))?;
        let delay = f64::from(self.config.frib.ic_delay_time_bucket);
        let after: Vec<&Peak> = self.peaks.iter().filter(|p| p.centroid > delay).collect();
        let trigger = after
            .iter()
            .min_by(|a, b| a.centroid.total_cmp(&b.centroid))
            .map(|p| **p);
        Ok(IcInfo {
            multiplicity: after.len(),
            trigger,
        })
    }
}

/// Writes the scaler table of `reader`'s file to `dest`; `None` when the file has no scalers.
fn write_scalers(reader: &TraceReader, dest: &Path) -> Result<Option<PathBuf>, PhaseError> {
    let Some(rows) = reader.read_scalers()? else {
        return Ok(None);
    };
    let mut t = Table::with_columns(&["event"], &[]);
    for name in SCALER_NAMES {
        t.columns.push((
            name.to_string(),
            spyral_data::table::Column::I64(Vec::new()),
        ));
    }
    for r in &rows {
        t.push_i64("event", r.event as i64);
        for (k, name) in SCALER_NAMES.iter().enumerate().take(NUM_SCALERS) {
            t.push_i64(name, i64::from(r.values[k]));
        }
    }
    t.write_parquet(dest).map(Some)
}

/// Writes the gated IC count file.
fn write_gated(dest: &Path, max_mult: usize, gated: u64) -> Result<PathBuf, PhaseError> {
    let g = PartialFile::new(dest)?;
    std::fs::write(
        g.path(),
        format!("IC counts with multiplicity <= {max_mult}\n{gated}"),
    )
    .map_err(|e| PhaseError::io_at(g.path(), "cannot write", &e))?;
    g.commit()
}

/// Reads the count back from a gated IC count file.
fn read_gated(path: &Path) -> Result<u64, PhaseError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| PhaseError::io_at(path, "cannot read", &e))?;
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| {
            PhaseError::invalid_input(format!(
                "{}: expected a count on the second line",
                path.display()
            ))
        })
}

/// The slice of the sorted `ids` inside the context's chunk (all of them for a whole run).
fn chunk_ids<'i>(ids: &'i [u64], ctx: &RunContext<'_>) -> &'i [u64] {
    match ctx.events() {
        None => ids,
        Some(r) => {
            let a = ids.partition_point(|&x| x < r.first);
            let b = ids.partition_point(|&x| x <= r.last);
            &ids[a..b.max(a)]
        }
    }
}

impl Phase for PointcloudPhase {
    fn incoming_schema(&self) -> Option<ResultSchema> {
        Some(spyral_data::schemas::trace())
    }
    fn outgoing_schema(&self) -> Option<ResultSchema> {
        Some(spyral_data::schemas::pointcloud())
    }
    fn create_assets(&mut self, workspace: &Workspace) -> Result<(), PhaseError> {
        let Some(garfield) = garfield_file(&self.name, &self.config.detector)? else {
            return Ok(());
        };
        let dest = crate::garfield::asset_path(&workspace.asset_dir(), &garfield);
        ensure_garfield_asset(&self.name, &garfield, &self.config.detector, &dest)
    }
    fn construct_artifact(
        &self,
        payload: &PhaseResult,
        workspace: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        Ok(PhaseResult::new(payload.run_number).with_artifact(
            "pointcloud",
            workspace.artifact_path(payload.run_number, "h5"),
        ))
    }

    fn splittable(&self) -> bool {
        true
    }

    fn events(
        &self,
        payload: &PhaseResult,
        _workspace: &Workspace,
    ) -> Result<Option<EventRange>, PhaseError> {
        let reader = TraceReader::open(payload.require("trace")?)?;
        let ids = reader.present_event_ids();
        Ok(match (ids.first(), ids.last()) {
            (Some(&a), Some(&b)) => Some(EventRange::new(a, b)),
            _ => None,
        })
    }

    fn run(&self, payload: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        let run = ctx.run();
        let trace_path = payload.require("trace")?;
        let mut reader = TraceReader::open(&trace_path)?;
        reader.set_run_number(i64::from(run));
        let ws = ctx.workspace();
        let writer = CloudWriter::create_for(
            ctx,
            &chunking::file_path(ctx, CLOUD_SUFFIX),
            reader.first_event() as i64,
            reader.last_event() as i64,
        )?;

        let corrector = self.electron_corrector(ws)?;
        let mut builder =
            CloudBuilder::new(&self.config, &self.pads, ctx.seed())?.with_correction(corrector);
        for warning in reader.warnings() {
            tracing::warn!("run {run}: {warning}");
        }
        // The stored events of the declared range (bounded by the file's contents, whatever its
        // attributes claim), those of the chunk when processing one.
        let ids = chunk_ids(reader.present_event_ids(), ctx);
        let mut progress = Progress::new(ctx, ids.len() as u64);
        let (mut events, mut points, mut gated) = (0u64, 0u64, 0u64);
        let max_mult = self.config.frib.ic_multiplicity as usize;
        // A reader thread fetches the next events while this one computes (HDF5 calls are
        // serialised inside the library, computing is not), so reading overlaps processing.
        let outcome: Result<(), PhaseError> = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(8);
            let reader = &reader;
            scope.spawn(move || {
                for &id in ids {
                    // Stop reading ahead as soon as the run is cancelled (e.g. its time limit).
                    if ctx.cancelled() {
                        break;
                    }
                    let event = reader.read_event(id);
                    let failed = event.is_err();
                    if tx.send((id, event)).is_err() || failed {
                        break;
                    }
                }
            });
            for (id, event) in rx {
                if ctx.cancelled() {
                    return Err(PhaseError::cancelled());
                }
                let event: Option<RawEvent> = event?;
                progress.tick();
                let Some(event) = event else { continue };
                // Randomness of the event's own: the same in a whole run and in any chunk.
                builder.reseed(ctx.event_seed(id));
                let mut ic: Option<IcInfo> = None;
                if let Some(frib) = &event.frib {
                    match frib.trigger_type() {
                        Some(FribTrigger::IcDownscale) => {
                            let info = builder.ion_chamber(frib)?;
                            if info.multiplicity > 0
                                && info.multiplicity <= max_mult
                                && info.trigger.is_some()
                            {
                                gated += 1;
                            }
                            continue;
                        }
                        Some(_) => ic = Some(builder.ion_chamber(frib)?),
                        None => tracing::warn!(
                            "run {run}, event {id}: unknown FRIB trigger word {}; ion-chamber data ignored",
                            frib.trigger
                        ),
                    }
                }
                let Some(get) = &event.pads else { continue };
                let cloud = builder.cloud(get.view())?;
                let mut record = CloudRecord {
                    id,
                    cloud,
                    orig_run: event.orig_run,
                    orig_event: event.orig_event,
                    ic: [-1.0; 4],
                };
                if let Some(IcInfo {
                    multiplicity,
                    trigger: Some(peak),
                }) = ic
                {
                    if multiplicity > 0 && multiplicity <= max_mult {
                        record.ic = [
                            peak.amplitude,
                            peak.integral as f64,
                            peak.centroid,
                            multiplicity as f64,
                        ];
                    }
                }
                writer.write(&record)?;
                events += 1;
                points += record.cloud.nrows() as u64;
            }
            // The reader thread stops early when the run is cancelled: never commit a partial run.
            if ctx.cancelled() {
                return Err(PhaseError::cancelled());
            }
            Ok(())
        });
        outcome?;
        let dest = writer.finish()?;

        // Scalers are records of their own, not GET events: a chunked run writes them once,
        // with its first chunk.
        if ctx.chunk().is_none_or(|c| c.index == 0)
            && write_scalers(&reader, &chunking::file_path(ctx, SCALER_SUFFIX))?.is_none()
        {
            tracing::info!("run {run}: the trace file has no scalers");
        }
        write_gated(&chunking::file_path(ctx, GATED_SUFFIX), max_mult, gated)?;
        let what = match ctx.events() {
            Some(r) => format!("run {run} ({r})"),
            None => format!("run {run}"),
        };
        tracing::info!(
            "{}: {what}: {events} events, {points} points, {gated} gated IC counts",
            self.name
        );
        let mut result = PhaseResult::new(run).with_artifact("pointcloud", dest);
        result.set_metadata("events", events);
        result.set_metadata("points", points);
        Ok(result)
    }

    fn merge(
        &self,
        parts: &[PhaseResult],
        ctx: &RunContext<'_>,
    ) -> Result<PhaseResult, PhaseError> {
        let run = ctx.run();
        chunking::check_parts(&self.name, parts, run)?;
        let clouds = chunking::part_paths(&self.name, parts, "pointcloud")?;
        let ws = ctx.workspace();
        let first = CloudFile::open(&clouds[0])?;
        let writer = CloudWriter::create(
            &chunking::run_file_path(ws, run, CLOUD_SUFFIX),
            first.range.0,
            first.range.1,
        )?;
        drop(first);
        let mut gated = 0u64;
        let mut progress = Progress::new(ctx, clouds.len() as u64);
        for path in &clouds {
            let part = CloudFile::open(path)?;
            for &id in &part.ids {
                if ctx.cancelled() {
                    return Err(PhaseError::cancelled());
                }
                writer.write(&part.read(id)?)?;
            }
            let count = chunking::sibling(path, CLOUD_SUFFIX, GATED_SUFFIX).ok_or_else(|| {
                PhaseError::invalid_input(format!(
                    "{}: run {run}: {} is not a `{CLOUD_SUFFIX}` file",
                    self.name,
                    path.display()
                ))
            })?;
            gated += read_gated(&count)?;
            progress.tick();
        }
        let dest = writer.finish()?;
        if let Some(scalers) = chunking::sibling(&clouds[0], CLOUD_SUFFIX, SCALER_SUFFIX) {
            if scalers.is_file() {
                chunking::copy_file(&scalers, &chunking::run_file_path(ws, run, SCALER_SUFFIX))?;
            }
        }
        let max_mult = self.config.frib.ic_multiplicity as usize;
        write_gated(
            &chunking::run_file_path(ws, run, GATED_SUFFIX),
            max_mult,
            gated,
        )?;
        let result = PhaseResult::new(run).with_artifact("pointcloud", dest);
        Ok(chunking::with_metadata(
            result,
            chunking::sum_metadata(parts),
        ))
    }
}
