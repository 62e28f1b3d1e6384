//! The Pointcloud phase (kind `pointcloud`, folder `Pointcloud`): raw GET traces to point clouds.
//!
//! Per event (spyral-spec section 3.1): baseline removal with the sinc filter, scipy-compatible
//! peak finding with a centroid jitter drawn from the run's seeded RNG, one point per peak of
//! every trace with 1-5 peaks on a known, non-beam pad, the pad's time offset added, z from the
//! micromegas and window time buckets, NaN rows dropped, rows sorted by z. Events whose FRIB
//! trigger is IC-downscale are counted (gated IC scaler) and skipped; other events carry the IC
//! amplitude, integral, centroid and multiplicity. Scalers go to `run_NNNN_scaler.parquet`.
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

use crate::attpc::detector::{DetectorParameters, FribParameters, GetParameters, PadParameters};
use crate::attpc::h5util;
use crate::attpc::padmap::PadMap;
use crate::attpc::traces::{
    FribData, FribTrigger, RawEvent, TraceReader, GET_SAMPLE_OFFSET, NUM_SCALERS, SCALER_NAMES,
};
use crate::garfield::Corrector;
use crate::signal::{
    frib_peaks, get_peaks_above, BaselineRemover, FindPeaksParams, Peak, PeakFinder,
};
use crate::table::Table;
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};
use spyral_core::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Number of columns of a point-cloud row.
pub const CLOUD_COLUMNS: usize = 8;
/// Traces with more peaks than this are not used (spec 3.1.3).
pub const MAX_PEAKS_PER_TRACE: usize = 5;

/// Pointcloud parameters (Spyral's GetParameters, FribParameters, DetectorParameters and
/// PadParameters), each group with its documented defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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

impl Phase for PointcloudPhase {
    fn incoming_schema(&self) -> Option<ResultSchema> {
        Some(crate::schemas::trace())
    }
    fn outgoing_schema(&self) -> Option<ResultSchema> {
        Some(crate::schemas::pointcloud())
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

    fn run(&self, payload: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        let run = ctx.run();
        let trace_path = payload.require("trace")?;
        let mut reader = TraceReader::open(&trace_path)?;
        reader.set_run_number(i64::from(run));
        let ws = ctx.workspace();
        let dest = ws.artifact_path(run, "h5");
        let out = PartialFile::new(&dest)?;
        let h5err = |what: &str, e: hdf5::Error| {
            PhaseError::io(format!(
                "run {run}: writing {}: {what}: {e}",
                dest.display()
            ))
        };
        let file = hdf5::File::with_options()
            .with_fcpl(|p| p.obj_track_times(false))
            .create(out.path())
            .map_err(|e| h5err("create", e))?;
        let cloud_group = h5util::create_group(&file, "cloud").map_err(|e| h5err("cloud", e))?;
        h5util::write_attr(&cloud_group, "min_event", &(reader.first_event() as i64))
            .map_err(|e| h5err("min_event", e))?;
        h5util::write_attr(&cloud_group, "max_event", &(reader.last_event() as i64))
            .map_err(|e| h5err("max_event", e))?;

        let corrector = self.electron_corrector(ws)?;
        let mut builder =
            CloudBuilder::new(&self.config, &self.pads, ctx.seed())?.with_correction(corrector);
        for warning in reader.warnings() {
            tracing::warn!("run {run}: {warning}");
        }
        // The stored events of the declared range: bounded by the file's contents, whatever its
        // attributes claim.
        let ids = reader.present_event_ids();
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
                let ds = h5util::dataset_builder(&cloud_group)
                    .with_data(&cloud)
                    .create(format!("cloud_{id}").as_str())
                    .map_err(|e| h5err(&format!("cloud_{id}"), e))?;
                let (mut amp, mut integral, mut centroid, mut mult) = (-1.0, -1.0, -1.0, -1.0);
                if let Some(IcInfo {
                    multiplicity,
                    trigger: Some(peak),
                }) = ic
                {
                    if multiplicity > 0 && multiplicity <= max_mult {
                        amp = peak.amplitude;
                        integral = peak.integral as f64;
                        centroid = peak.centroid;
                        mult = multiplicity as f64;
                    }
                }
                let attrs: [(&str, f64); 4] = [
                    ("ic_amplitude", amp),
                    ("ic_integral", integral),
                    ("ic_centroid", centroid),
                    ("ic_multiplicity", mult),
                ];
                h5util::write_attr(&ds, "orig_run", &event.orig_run)
                    .map_err(|e| h5err("orig_run", e))?;
                h5util::write_attr(&ds, "orig_event", &event.orig_event)
                    .map_err(|e| h5err("orig_event", e))?;
                for (k, v) in attrs {
                    h5util::write_attr(&ds, k, &v).map_err(|e| h5err(k, e))?;
                }
                events += 1;
                points += cloud.nrows() as u64;
            }
            // The reader thread stops early when the run is cancelled: never commit a partial run.
            if ctx.cancelled() {
                return Err(PhaseError::cancelled());
            }
            Ok(())
        });
        outcome?;
        drop(cloud_group);
        file.close().map_err(|e| h5err("close", e))?;
        let dest = out.commit()?;

        // Scalers.
        match reader.read_scalers()? {
            Some(rows) => {
                let mut t = Table::with_columns(&["event"], &[]);
                for name in SCALER_NAMES {
                    t.columns
                        .push((name.to_string(), crate::table::Column::I64(Vec::new())));
                }
                for r in &rows {
                    t.push_i64("event", r.event as i64);
                    for (k, name) in SCALER_NAMES.iter().enumerate().take(NUM_SCALERS) {
                        t.push_i64(name, i64::from(r.values[k]));
                    }
                }
                t.write_parquet(
                    &ws.artifact_dir()
                        .join(format!("{}_scaler.parquet", run_stem(run))),
                )?;
            }
            None => tracing::info!("run {run}: the trace file has no scalers"),
        }
        let gated_path = ws
            .artifact_dir()
            .join(format!("{}_gated_ic_scaler.txt", run_stem(run)));
        let g = PartialFile::new(&gated_path)?;
        std::fs::write(
            g.path(),
            format!("IC counts with multiplicity <= {max_mult}\n{gated}"),
        )
        .map_err(|e| PhaseError::io_at(g.path(), "cannot write", &e))?;
        g.commit()?;
        tracing::info!(
            "{}: run {run}: {events} events, {points} points, {gated} gated IC counts",
            self.name
        );
        let mut result = PhaseResult::new(run).with_artifact("pointcloud", dest);
        result.set_metadata("events", events);
        result.set_metadata("points", points);
        Ok(result)
    }
}
