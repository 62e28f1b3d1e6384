//! Simulating whole runs to disk: events generated in parallel (deterministic: each event's
//! randomness depends only on the run seed and its id), written in order to a trace file of the
//! chosen format (through a temporary name), with the truth records beside it and synthetic
//! scalers for the formats that carry them.

use super::{PadLookup, SimConfig, SimError, Simulator};
use spyral_data::attpc::padmap::PadMap;
use spyral_data::attpc::traces::{FribData, RawEvent, ScalerRow, TraceFormat, NUM_SCALERS};
use spyral_data::attpc::writer::{RunInfo, TraceWriter};
use std::path::{Path, PathBuf};

impl PadLookup for PadMap {
    fn pad_at(&self, x: f64, y: f64) -> Option<u16> {
        PadMap::pad_at(self, x, y)
    }
    fn pad_count(&self) -> usize {
        self.len()
    }
    fn time_offset(&self, pad: u16) -> f64 {
        self.pad(pad).map_or(0.0, |p| p.time_offset)
    }
    fn hardware_id(&self, pad: u16) -> [i16; 4] {
        match PadMap::hardware_id(self, pad) {
            Some(h) => [
                i16::from(h.cobo),
                i16::from(h.asad),
                i16::from(h.aget),
                i16::from(h.channel),
            ],
            None => super::synthetic_hardware_id(pad),
        }
    }
}

/// One run to simulate.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec {
    /// Run number (file `run_NNNN.h5`).
    pub run: u32,
    /// Events in the run (ids 0..events).
    pub events: u64,
    /// The run's seed.
    pub seed: u64,
    /// File format.
    pub format: TraceFormat,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The trace file.
    pub trace: PathBuf,
    /// The truth file (JSON lines).
    pub truth: PathBuf,
    /// Bytes of the trace file.
    pub bytes: u64,
    /// Total GET traces written.
    pub traces: u64,
}

/// Simulates `spec` into `out_dir/run_NNNN.h5` (truth in `out_dir/truth/run_NNNN.jsonl`) with
/// `threads` threads, calling `progress(events_done)` as it goes.
pub fn simulate_run<P: PadLookup + Sync>(
    config: &SimConfig,
    pads: P,
    out_dir: &Path,
    spec: RunSpec,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<RunOutput, SimError> {
    let mut cfg = config.clone();
    cfg.seed = spec.seed;
    cfg.events = spec.events;
    let sim = Simulator::new(cfg, pads)?;
    let trace = out_dir.join(format!("{}.h5", spyral_core::run_stem(spec.run)));
    let truth_path = out_dir
        .join("truth")
        .join(format!("{}.jsonl", spyral_core::run_stem(spec.run)));
    let io = |source: std::io::Error| SimError::Io {
        path: out_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(out_dir.join("truth")).map_err(io)?;
    let write_err = |e: spyral_data::attpc::traces::TraceError| SimError::Output(e.to_string());
    let mut writer = TraceWriter::create(
        &trace,
        spec.format,
        RunInfo {
            event_range: Some((0, spec.events.saturating_sub(1))),
            frib_run: spec.run,
            ..RunInfo::default()
        },
    )
    .map_err(write_err)?;
    let threads = threads.max(1);
    let batch = (threads as u64) * 16;
    let mut truths = Vec::with_capacity(spec.events as usize);
    let mut traces = 0u64;
    let mut start = 0u64;
    while start < spec.events {
        let end = (start + batch).min(spec.events);
        let ids: Vec<u64> = (start..end).collect();
        let chunk = ids.len().div_ceil(threads);
        let mut events = Vec::with_capacity(ids.len());
        std::thread::scope(|s| {
            let handles: Vec<_> = ids
                .chunks(chunk.max(1))
                .map(|part| {
                    let sim = &sim;
                    s.spawn(move || {
                        part.iter()
                            .map(|&id| sim.simulate_event(id))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                if let Ok(v) = h.join() {
                    events.extend(v);
                }
            }
        });
        if events.len() != ids.len() {
            return Err(SimError::Output(
                "an event generator thread panicked".into(),
            ));
        }
        for ev in events {
            traces += ev.get.nrows() as u64;
            let mut raw = RawEvent::new(ev.event_id, ev.get);
            raw.frib = ev.frib.map(|f| FribData {
                traces: f.trace_1903,
                trigger: f.trigger,
                timestamp: ev.event_id as u32,
            });
            writer.write_event(&raw).map_err(write_err)?;
            truths.push(ev.truth);
        }
        progress(end);
        start = end;
    }
    if spec.format.has_scalers() {
        // One scaler readout per 100 events with plausible free/live counts.
        let rows: Vec<ScalerRow> = (0..spec.events.div_ceil(100).max(1))
            .map(|k| {
                let mut v = [0u32; NUM_SCALERS];
                let n = ((k + 1) * 100).min(spec.events) as u32;
                v[0] = n * 1000;
                v[1] = n * 900;
                v[2] = n;
                v[3] = n * 9 / 10;
                v[4] = n * 3;
                v[5] = n * 2;
                ScalerRow::new(k, v)
            })
            .collect();
        writer.write_scalers(&rows).map_err(write_err)?;
    }
    let trace = writer.finish().map_err(write_err)?;
    super::write_truth(&truth_path, &truths)?;
    let bytes = std::fs::metadata(&trace).map(|m| m.len()).unwrap_or(0);
    Ok(RunOutput {
        trace,
        truth: truth_path,
        bytes,
        traces,
    })
}
