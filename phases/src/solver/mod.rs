//! The InterpSolver phase (kind `interp-solver`, folder `InterpSolver`): trajectory mesh asset,
//! shared mesh, track fits (spyral-spec §3.4 and §5).
//!
//! - **Parent, `create_assets`**: builds (or reuses, when its metadata match) the trajectory
//!   mesh `InterpSolver_assets/{iso}_in_{gas}_{pressure}Torr.npy` + `.json` ([`mesh`]).
//! - **Parent, `create_shared_data`**: one shared segment `mesh` (float64, shape
//!   `(n_time_steps, 3, ke_bins, polar_bins)`): the `.npy` file itself, shared read-only, so
//!   workers map it from the page cache and the parent neither copies nor holds it.
//! - **Worker, `attach_shared`**: keeps the segment's `&'static [f64]`; the interpolator reads
//!   it in place ([`interp`]). If no segment was attached (a tool running the phase outside the
//!   host) the first run loads the mesh file into memory instead, with a warning.
//! - **Worker, `run`**: reads the Estimation parquet, keeps the rows strictly inside the PID
//!   polygon and (unless `ic_gate: false`) inside the IC window, loads each kept row's cluster,
//!   fits it ([`fit`]) and writes `InterpSolver/run_NNNN_{iso}.parquet` with Spyral's columns.
//!   Guesses outside the mesh are skipped (as in Spyral); a fit that fails (non-finite
//!   objective, unreadable cluster) is logged and the run goes on (Spyral aborts the worker).
//!   A run where no row passes the gates writes an empty table and succeeds (Spyral returns an
//!   invalid result). A missing Estimation or Cluster artifact is an error naming it (Spyral
//!   sends "Waiting" and returns an invalid result).
//!
//! Splittable: a chunk fits the Estimation rows of its events (its input is the chunk's
//! Estimation table and Cluster file) and writes its table at its chunk path
//! (`.chunks/run_NNNN/e<first>-<last>_{iso}.parquet`); [`Phase::merge`] concatenates the chunk
//! tables in event order through the same writer (the bytes of a whole run). Fits draw no
//! random numbers.
//!
//! Fits read the mesh through a small per-fit cache of node trajectories
//! ([`interp::CachedInterpolator`]): the mesh layout puts consecutive time samples of one node
//! half a megabyte apart, so gathering the few nodes a fit needs once is ~15x cheaper than
//! interpolating from the strided mesh at every evaluation. Closest-point distances use a
//! z-ordered band search ([`distance`]) instead of Spyral's all-pairs loop; both give the same
//! distances.
//!
//! Measured on the 2-core development machine (release build, default mesh 350 x 166 x 1000):
//! generation 2.6 s unloaded (4-5 s while other builds ran); 2-5 ms of CPU per fit depending on
//! the method and the distance definition (~180 points per track).

pub mod config;
pub mod distance;
pub mod fit;
pub mod interp;
pub mod mesh;
pub mod npy;
pub mod ode;
pub mod optim;
pub mod pid;

pub use config::SolverConfig;
pub use distance::DistanceMode;
pub use fit::{FitMethod, FitOutcome, FitResult, FitSettings, Guess, Skip, TrackFitter};
pub use interp::MeshView;
pub use mesh::{MeshAsset, MeshParameters};
pub use pid::ParticleId;

use crate::chunking;
use spyral_core::prelude::*;
use spyral_data::artifacts::estimation::{read_estimation, ClusterFile, ID_COLUMNS};
use spyral_data::physics::{EnergyLossTable, GasTarget};
use spyral_data::schemas::{SOLVER_FLOAT_COLUMNS, SOLVER_INT_COLUMNS};
use spyral_data::table::Table;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

/// Name of the shared segment holding the mesh.
pub const MESH_SEGMENT: &str = "mesh";

/// The phase.
pub struct InterpSolverPhase {
    name: String,
    config: SolverConfig,
    pid: ParticleId,
    mesh_params: MeshParameters,
    shared: Option<&'static [f64]>,
    loaded: OnceLock<Result<Vec<f64>, String>>,
}

/// Why the gas-target file could not be used.
#[derive(Debug, thiserror::Error)]
enum GasFileError {
    #[error("cannot read gas file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gas file {} is not valid JSON: {source}", .path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: {source}", .path.display())]
    Invalid {
        path: PathBuf,
        source: spyral_data::physics::PhysicsError,
    },
}

/// Reads a Spyral gas-target file, keeping the pressure as written (for the mesh file name).
fn read_gas(path: &Path) -> Result<(GasTarget, String), GasFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| GasFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| GasFileError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    let gas = GasTarget::from_json_value(&value).map_err(|source| GasFileError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    let pressure = mesh::pressure_repr(
        value
            .get("pressure(Torr)")
            .unwrap_or(&serde_json::Value::Null),
    );
    Ok((gas, pressure))
}

impl PhaseFactory for InterpSolverPhase {
    type Config = SolverConfig;
    fn from_config(name: &str, config: SolverConfig) -> Result<Self, PhaseError> {
        let cfg = |m: String| PhaseError::config(format!("phase {name}: {m}"));
        config
            .detector
            .validate()
            .map_err(|e| cfg(format!("detector: {e}")))?;
        let gas_path = config.gas_data_path.clone().ok_or_else(|| {
            cfg("gas_data_path is required (a Spyral gas-target JSON file)".into())
        })?;
        let pid_path = config.particle_id_filename.clone().ok_or_else(|| {
            cfg("particle_id_filename is required (a Spyral particle-ID JSON file)".into())
        })?;
        let (gas, pressure_text) = read_gas(&gas_path).map_err(|e| cfg(e.to_string()))?;
        let pid = ParticleId::from_file(&pid_path).map_err(|e| cfg(e.to_string()))?;
        EnergyLossTable::new(&pid.nucleus, &gas).map_err(|e| cfg(e.to_string()))?;
        if config.ic_min_val.is_nan()
            || config.ic_max_val.is_nan()
            || config.ic_min_val > config.ic_max_val
        {
            return Err(cfg(format!(
                "ic_min_val ({}) is larger than ic_max_val ({})",
                config.ic_min_val, config.ic_max_val
            )));
        }
        let mesh_params = MeshParameters {
            particle: pid.nucleus,
            gas,
            pressure_text,
            magnetic_field: config.detector.magnetic_field,
            electric_field: config.detector.electric_field,
            n_time_steps: config.n_time_steps,
            ke_min: config.interp_ke_min,
            ke_max: config.interp_ke_max,
            ke_bins: config.interp_ke_bins,
            polar_min: config.interp_polar_min,
            polar_max: config.interp_polar_max,
            polar_bins: config.interp_polar_bins,
            energy_loss: true,
            threads: 0,
        };
        mesh_params.validate().map_err(|e| cfg(e.to_string()))?;
        Ok(InterpSolverPhase {
            name: name.to_string(),
            config,
            pid,
            mesh_params,
            shared: None,
            loaded: OnceLock::new(),
        })
    }
}

impl InterpSolverPhase {
    /// The mesh parameters this phase uses.
    pub fn mesh_parameters(&self) -> &MeshParameters {
        &self.mesh_params
    }

    /// The PID gate.
    pub fn particle_id(&self) -> &ParticleId {
        &self.pid
    }

    /// The output parquet of `run`: `<InterpSolver>/run_NNNN_{iso}.parquet`.
    pub fn output_path(&self, workspace: &Workspace, run: u32) -> PathBuf {
        chunking::run_file_path(workspace, run, &self.output_suffix())
    }

    /// What follows the run (or chunk) in the output's file name: `_{iso}.parquet`.
    fn output_suffix(&self) -> String {
        format!("_{}.parquet", self.pid.nucleus.isotope_symbol())
    }

    /// The fit settings of this configuration.
    pub fn fit_settings(&self) -> FitSettings {
        let d = &self.config.detector;
        FitSettings {
            method: self.config.fit_method,
            distance: self.config.distance,
            fit_vertex_rho: self.config.fit_vertex_rho,
            fit_vertex_phi: self.config.fit_vertex_phi,
            fit_azimuthal: self.config.fit_azimuthal,
            beam_region_radius_m: d.beam_region_radius * 0.001,
            detector_length_m: d.detector_length * 0.001,
            sigma_z_m: (d.detector_length / (d.window_time_bucket - d.micromegas_time_bucket)
                * 0.001
                * 0.5)
                .abs(),
        }
    }

    fn mesh_data(&self, workspace: &Workspace) -> Result<&[f64], PhaseError> {
        if let Some(s) = self.shared {
            return Ok(s);
        }
        let loaded = self.loaded.get_or_init(|| {
            let (npy, _) = mesh::asset_paths(&self.mesh_params, &workspace.asset_dir());
            tracing::warn!(
                "phase {}: no shared mesh segment was attached; loading {} into this process's memory",
                self.name,
                npy.display()
            );
            mesh::read_mesh(&npy, &self.mesh_params.shape()).map_err(|e| e.to_string())
        });
        loaded
            .as_deref()
            .map_err(|e| PhaseError::invalid_input(format!("phase {}: {e}", self.name)))
    }

    fn mesh_view<'a>(&self, data: &'a [f64]) -> Result<MeshView<'a>, PhaseError> {
        let p = &self.mesh_params;
        MeshView::new(
            data,
            p.n_time_steps,
            p.ke_bins,
            p.polar_bins,
            (p.ke_min, p.ke_max),
            (p.polar_min, p.polar_max),
        )
        .map(|v| v.with_grid(self.config.mesh_grid))
        .ok_or_else(|| {
            PhaseError::internal(format!(
                "phase {}: the mesh holds {} values, its shape {:?} needs {}",
                self.name,
                data.len(),
                p.shape(),
                p.shape().iter().product::<u64>()
            ))
        })
    }
}

/// Counters of one run.
#[derive(Debug, Default, Clone, Copy)]
struct RunCounts {
    rows: usize,
    gated: usize,
    no_ic: usize,
    fitted: usize,
    skipped: usize,
    failed: usize,
}

impl Phase for InterpSolverPhase {
    fn incoming_schema(&self) -> Option<ResultSchema> {
        Some(spyral_data::schemas::estimation())
    }
    fn outgoing_schema(&self) -> Option<ResultSchema> {
        Some(spyral_data::schemas::interp_solver())
    }

    fn create_assets(&mut self, workspace: &Workspace) -> Result<(), PhaseError> {
        let asset = mesh::ensure_mesh(&self.mesh_params, &workspace.asset_dir())
            .map_err(|e| PhaseError::io(format!("phase {}: trajectory mesh: {e}", self.name)))?;
        if let Some(r) = &asset.report {
            tracing::info!(
                "phase {}: mesh generated in {:.2} s (pass 1 {:.2} s, pass 2 {:.2} s, {} threads)",
                self.name,
                r.seconds[2],
                r.seconds[0],
                r.seconds[1],
                r.threads
            );
        }
        Ok(())
    }

    fn create_shared_data(
        &mut self,
        workspace: &Workspace,
        allocator: &mut SharedAllocator<'_, '_>,
    ) -> Result<(), PhaseError> {
        if cfg!(target_endian = "big") {
            return Err(PhaseError::internal(
                "the mesh file is little-endian; sharing it on a big-endian machine is not supported",
            ));
        }
        let shape = self.mesh_params.shape();
        let (npy, _) = mesh::asset_paths(&self.mesh_params, &workspace.asset_dir());
        let (mut file, header) = mesh::check_npy(&npy, &shape)
            .map_err(|e| PhaseError::invalid_input(format!("phase {}: {e}", self.name)))?;
        // The mesh file is shared as it is: workers map it from the page cache, so the parent
        // copies nothing and spends no time (npy data offsets are 64-byte aligned; a file
        // that is not is copied into a sealed segment instead).
        let bytes = if header.data_offset % 8 == 0 {
            allocator.share_file(
                MESH_SEGMENT,
                ElementType::F64,
                &shape,
                &npy,
                header.data_offset,
            )?;
            header.len() * 8
        } else {
            allocator.allocate_from_reader(MESH_SEGMENT, ElementType::F64, &shape, &mut file)?
        };
        tracing::info!(
            "phase {}: shared the trajectory mesh ({:.2} GB) from {}",
            self.name,
            bytes as f64 * 1e-9,
            npy.display()
        );
        Ok(())
    }

    fn attach_shared(&mut self, segments: Vec<SharedSegment<'static>>) -> Result<(), PhaseError> {
        let Some(seg) = segments
            .iter()
            .find(|s| s.info.name.as_str() == MESH_SEGMENT)
        else {
            tracing::warn!(
                "phase {}: no `{MESH_SEGMENT}` segment was shared; the mesh will be read from its file",
                self.name
            );
            return Ok(());
        };
        let shape = self.mesh_params.shape();
        if seg.info.shape.as_slice() != shape {
            return Err(PhaseError::invalid_input(format!(
                "phase {}: the shared mesh has shape {:?}, this configuration needs {:?}",
                self.name,
                seg.info.shape.as_slice(),
                shape
            )));
        }
        let data = seg.as_slice::<f64>()?;
        self.mesh_view(data)?;
        self.shared = Some(data);
        Ok(())
    }

    fn construct_artifact(
        &self,
        payload: &PhaseResult,
        workspace: &Workspace,
    ) -> Result<PhaseResult, PhaseError> {
        Ok(PhaseResult::new(payload.run_number).with_artifact(
            "interp_solver",
            self.output_path(workspace, payload.run_number),
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
        let file = crate::estimation::reader::ClusterFile::open(&payload.require("cluster")?)?;
        Ok(chunking::event_range(file.min_event(), file.max_event()))
    }

    fn merge(
        &self,
        parts: &[PhaseResult],
        ctx: &RunContext<'_>,
    ) -> Result<PhaseResult, PhaseError> {
        let run = ctx.run();
        chunking::check_parts(&self.name, parts, run)?;
        let tables = chunking::part_paths(&self.name, parts, "interp_solver")?;
        let mut merged = Table::with_columns(&SOLVER_INT_COLUMNS, &SOLVER_FLOAT_COLUMNS);
        let mut progress = Progress::new(ctx, tables.len() as u64);
        for path in &tables {
            if ctx.cancelled() {
                return Err(PhaseError::cancelled());
            }
            merged.append(&Table::read_parquet(path)?)?;
            progress.tick();
        }
        let dest = merged.write_parquet(&self.output_path(ctx.workspace(), run))?;
        let mut metadata = chunking::sum_metadata(parts);
        // The time per fit is an average over the fits (fitted or failed) of every chunk.
        let (mut fits, mut ms, mut timed) = (0.0, 0.0, false);
        for p in parts {
            let m = p.metadata_map();
            let count = |k: &str| m.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
            let f = count("fitted") + count("failed");
            timed |= m.contains_key("ms_per_fit");
            fits += f;
            ms += count("ms_per_fit") * f;
        }
        if timed {
            metadata.insert(
                "ms_per_fit".into(),
                serde_json::Value::from(if fits > 0.0 { ms / fits } else { 0.0 }),
            );
        }
        let result = PhaseResult::new(run).with_artifact("interp_solver", &dest);
        Ok(chunking::with_metadata(result, metadata))
    }

    fn run(&self, payload: &PhaseResult, ctx: &RunContext<'_>) -> Result<PhaseResult, PhaseError> {
        let run = ctx.run();
        let ws = ctx.workspace();
        let est_path = payload.require("estimation")?;
        let cluster_path = payload.require("cluster")?;
        let view = self.mesh_view(self.mesh_data(ws)?)?;
        let pid = &self.pid;

        let mut floats = vec![
            "ic_amplitude",
            "vertex_x",
            "vertex_y",
            "vertex_z",
            "polar",
            "azimuthal",
            "brho",
        ];
        for axis in [pid.x_axis.as_str(), pid.y_axis.as_str()] {
            if !floats.contains(&axis) {
                floats.push(axis);
            }
        }
        let est = read_estimation(&est_path, &floats)
            .map_err(|e| PhaseError::invalid_input(format!("run {run}: {e}")))?;
        // The rows of the run, or of the chunk's events.
        let events = est.int("event");
        let rows: Vec<usize> = (0..est.rows)
            .filter(|&i| {
                ctx.chunk().is_none() || u64::try_from(events[i]).is_ok_and(|e| ctx.wants_event(e))
            })
            .collect();
        let mut n = RunCounts {
            rows: rows.len(),
            ..RunCounts::default()
        };
        let (xs, ys, ic) = (
            est.float(&pid.x_axis),
            est.float(&pid.y_axis),
            est.float("ic_amplitude"),
        );
        let gated: Vec<usize> = rows
            .iter()
            .copied()
            .filter(|&i| {
                if !pid.contains(xs[i], ys[i]) {
                    return false;
                }
                if ic[i] == -1.0 {
                    n.no_ic += 1;
                }
                self.config.ic_passes(ic[i])
            })
            .collect();
        n.gated = gated.len();
        if self.config.ic_gate && n.no_ic > 0 {
            tracing::warn!(
                "run {run}: {} of the {} rows inside the PID gate have no ion-chamber data (ic_amplitude = -1) and fail the IC gate; set `ic_gate: false` in the {} config to fit data without an ion chamber",
                n.no_ic,
                rows.iter().filter(|&&i| pid.contains(xs[i], ys[i])).count(),
                self.name
            );
        }
        let mut table = Table::with_columns(&SOLVER_INT_COLUMNS, &SOLVER_FLOAT_COLUMNS);
        let dest = chunking::file_path(ctx, &self.output_suffix());
        let what = match ctx.events() {
            Some(r) => format!("run {run} ({r})"),
            None => format!("run {run}"),
        };
        if gated.is_empty() {
            tracing::warn!(
                "{what}: none of the {} Estimation rows passed the PID{} gate; writing an empty table",
                n.rows,
                if self.config.ic_gate { " and IC" } else { "" }
            );
        }
        let fitter = TrackFitter::new(view, pid.nucleus, self.fit_settings());
        let clusters = if gated.is_empty() {
            None
        } else {
            Some(
                ClusterFile::open(&cluster_path)
                    .map_err(|e| PhaseError::invalid_input(format!("run {run}: {e}")))?,
            )
        };
        let mut progress = Progress::new(ctx, gated.len() as u64);
        let mut fit_seconds = 0.0;
        let ints: Vec<&[i64]> = ID_COLUMNS.iter().map(|c| est.int(c)).collect();
        for &i in &gated {
            if ctx.cancelled() {
                return Err(PhaseError::cancelled());
            }
            progress.tick();
            let (event, index) = (ints[0][i], ints[1][i]);
            let Some(clusters) = &clusters else { break };
            let cloud = match clusters.cloud(event, index) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("run {run}, event {event}, cluster {index}: {e}; not fitted");
                    n.failed += 1;
                    continue;
                }
            };
            let guess = Guess {
                polar: est.float("polar")[i],
                azimuthal: est.float("azimuthal")[i],
                brho: est.float("brho")[i],
                vertex_mm: [
                    est.float("vertex_x")[i],
                    est.float("vertex_y")[i],
                    est.float("vertex_z")[i],
                ],
            };
            let t0 = Instant::now();
            let outcome = fitter.fit(cloud.view(), &guess);
            fit_seconds += t0.elapsed().as_secs_f64();
            match outcome {
                Ok(FitOutcome::Fitted(r)) => {
                    n.fitted += 1;
                    for (c, col) in ID_COLUMNS.iter().zip(&ints) {
                        table.push_i64(c, col[i]);
                    }
                    let values = [
                        r.vertex[0],
                        r.sigma_vertex[0],
                        r.vertex[1],
                        r.sigma_vertex[1],
                        r.vertex[2],
                        r.sigma_vertex[2],
                        r.brho,
                        r.sigma_brho,
                        r.ke,
                        r.sigma_ke,
                        r.polar,
                        r.sigma_polar,
                        r.azimuthal,
                        r.sigma_azimuthal,
                        r.redchisq,
                    ];
                    for (c, v) in SOLVER_FLOAT_COLUMNS.iter().zip(values) {
                        table.push_f64(c, v);
                    }
                }
                Ok(FitOutcome::Skipped(why)) => {
                    n.skipped += 1;
                    tracing::debug!(
                        "run {run}, event {event}, cluster {index}: not fitted: {why:?}"
                    );
                }
                Err(e) => {
                    n.failed += 1;
                    tracing::warn!(
                        "run {run}, event {event}, cluster {index}: the fit failed: {e}"
                    );
                }
            }
        }
        table.write_parquet(&dest)?;
        let ms_per_fit = if n.fitted + n.failed > 0 {
            fit_seconds * 1e3 / (n.fitted + n.failed) as f64
        } else {
            0.0
        };
        tracing::info!(
            "{what}: {} rows, {} passed the gates, {} fitted, {} outside the mesh, {} failed ({ms_per_fit:.2} ms per fit)",
            n.rows,
            n.gated,
            n.fitted,
            n.skipped,
            n.failed
        );
        let mut result = PhaseResult::new(run).with_artifact("interp_solver", &dest);
        result.set_metadata("rows", n.rows as u64);
        result.set_metadata("gated", n.gated as u64);
        result.set_metadata("fitted", n.fitted as u64);
        result.set_metadata("skipped_outside_mesh", n.skipped as u64);
        result.set_metadata("failed", n.failed as u64);
        result.set_metadata("ms_per_fit", ms_per_fit);
        Ok(result)
    }
}
