//! Writing AT-TPC raw trace files in the legacy, merger 1.0, merger 2.0 and harmonizer 0.1
//! layouts, with the group, dataset and attribute names and types of the spec (section 1) and of
//! the merger itself, so that Spyral (h5py) and [`super::traces::TraceReader`] read them back.
//!
//! A file is written under a hidden temporary name (`.<name>.partial`, via
//! [`spyral_core::PartialFile`]) and renamed by [`TraceWriter::finish`]; dropped without
//! `finish`, the temporary file is removed. Objects are created without modification times, so
//! the same content gives byte-identical files.
//!
//! Layouts written (`N` = event id, `K` = scaler record):
//! - legacy: `/meta/meta` `u64[4]` `[first, first_ts, last, last_ts]`; `/get/evtN_data` i16
//!   (n, 517) and `/get/evtN_header` `f64[3]`; `/frib/evt/evtN_1903` u16 (2048, 8),
//!   `/frib/evt/evtN_977` `u16[1]`; `/frib/scaler/scalerK_data` `u32[11]` (K = 0, 1, ...
//!   without gaps).
//! - merger 1.0: `/events` attrs `version` (var-len UTF-8), `min_event`, `max_event`,
//!   `min_get_ts`, `max_get_ts` (u64), `frib_run`, `frib_start`, `frib_stop`, `frib_time` (u32);
//!   `/events/event_N/get_traces` i16 (n, 517) with attrs `id` (u32), `timestamp`,
//!   `timestamp_other` (u64); `/events/event_N/frib_physics` attrs `id`, `timestamp` (u32) with
//!   datasets `1903` and `977`; `/scalers` attrs `min_event`, `max_event` (u32), `version`,
//!   datasets `event_K` `u32[11]` with attrs `start_offset`, `stop_offset`, `timestamp`,
//!   `incremental` (u32).
//! - merger 2.0: as 1.0, but GET data goes to the group `/events/event_N/get` (attrs `id`,
//!   `timestamp`, `timestamp_other`) with datasets `pads` and `si_upstream_front`,
//!   `si_upstream_back`, `si_downstream_front`, `si_downstream_back` (those present).
//! - harmonizer 0.1: `/events` attrs `version`, `min_event`, `max_event` (u64); each
//!   `/events/event_N` carries `orig_run`, `orig_event` (i64), `get_traces` and `frib_physics`
//!   as in 1.0. No scalers.

use super::h5util::{create_group, dataset_builder, write_attr, write_string_attr};
use super::traces::{
    hdf5_detail, FribData, RawEvent, ScalerRow, TraceError, TraceFormat, FRIB_CHANNELS,
    FRIB_TRACE_LENGTH, GET_COLUMNS,
};
use hdf5::{Group, H5Type, Location};
use ndarray::{Array2, ArrayView2};
use spyral_core::PartialFile;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Run-level metadata for [`TraceWriter::create`]. `Default` is all zeros and no explicit range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunInfo {
    /// The declared event range `(first, last)`, both included. `None`: the smallest and largest
    /// id written (`(0, 0)` if none).
    pub event_range: Option<(u64, u64)>,
    /// FRIBDAQ run number (merger `frib_run`).
    pub frib_run: u32,
    /// FRIBDAQ run start time (merger `frib_start`).
    pub frib_start: u32,
    /// FRIBDAQ run stop time (merger `frib_stop`).
    pub frib_stop: u32,
    /// FRIBDAQ run duration (merger `frib_time`).
    pub frib_time: u32,
}

/// Writes one trace file. Create with [`TraceWriter::create`], add events and scalers, then
/// call [`TraceWriter::finish`].
pub struct TraceWriter {
    // Field order matters: the HDF5 file closes before the partial file is cleaned up.
    file: hdf5::File,
    partial: PartialFile,
    dest: PathBuf,
    format: TraceFormat,
    info: RunInfo,
    events: BTreeSet<u64>,
    first_ts: u64,
    last_ts: u64,
    scalers: BTreeSet<u64>,
}

impl std::fmt::Debug for TraceWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceWriter")
            .field("dest", &self.dest)
            .field("tmp", &self.partial.path())
            .field("format", &self.format)
            .field("events", &self.events.len())
            .field("scalers", &self.scalers.len())
            .finish()
    }
}

impl TraceWriter {
    /// Starts writing `path` in `format`. The data goes to `.<name>.partial` in the same folder
    /// (created if needed) until [`TraceWriter::finish`].
    pub fn create(
        path: impl AsRef<Path>,
        format: TraceFormat,
        info: RunInfo,
    ) -> Result<TraceWriter, TraceError> {
        let dest = path.as_ref().to_path_buf();
        let werr = |object: &str, problem: String| TraceError::Write {
            path: dest.clone(),
            object: object.to_string(),
            problem,
        };
        if let Some((a, b)) = info.event_range {
            if b < a {
                return Err(werr(
                    "the event range",
                    format!("last event {b} is before first event {a}"),
                ));
            }
        }
        let partial = PartialFile::new(&dest).map_err(|e| werr("the file", e.to_string()))?;
        let file = hdf5::File::with_options()
            .with_fcpl(|p| p.obj_track_times(false))
            .create(partial.path())
            .map_err(|e| {
                werr(
                    &format!("the temporary file {}", partial.path().display()),
                    hdf5_detail(&e),
                )
            })?;
        let writer = TraceWriter {
            file,
            partial,
            dest: dest.clone(),
            format,
            info,
            events: BTreeSet::new(),
            first_ts: 0,
            last_ts: 0,
            scalers: BTreeSet::new(),
        };
        writer.create_skeleton()?;
        Ok(writer)
    }

    /// The format being written.
    pub fn format(&self) -> TraceFormat {
        self.format
    }

    /// The final path (the file appears there after [`TraceWriter::finish`]).
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// The number of events written so far.
    pub fn events_written(&self) -> usize {
        self.events.len()
    }

    fn err(&self, object: &str, problem: impl Into<String>) -> TraceError {
        TraceError::Write {
            path: self.dest.clone(),
            object: object.to_string(),
            problem: problem.into(),
        }
    }

    fn h5<T>(&self, object: &str, r: hdf5::Result<T>) -> Result<T, TraceError> {
        r.map_err(|e| self.err(object, hdf5_detail(&e)))
    }

    fn group(&self, parent: &Group, name: &str, object: &str) -> Result<Group, TraceError> {
        self.h5(object, create_group(parent, name))
    }

    fn open(&self, name: &str) -> Result<Group, TraceError> {
        self.h5(&format!("/{name}"), self.file.group(name))
    }

    fn attr<T: H5Type>(
        &self,
        loc: &Location,
        object: &str,
        name: &str,
        v: T,
    ) -> Result<(), TraceError> {
        self.h5(
            &format!("{object} attribute '{name}'"),
            write_attr(loc, name, &v),
        )
    }

    fn create_skeleton(&self) -> Result<(), TraceError> {
        match self.format {
            TraceFormat::Legacy => {
                self.group(&self.file, "meta", "/meta")?;
                self.group(&self.file, "get", "/get")?;
                let frib = self.group(&self.file, "frib", "/frib")?;
                self.group(&frib, "evt", "/frib/evt")?;
            }
            format => {
                let events = self.group(&self.file, "events", "/events")?;
                let version = format.version_string().unwrap_or_default();
                self.h5(
                    "/events attribute 'version'",
                    write_string_attr(&events, "version", version),
                )?;
                if format.has_scalers() {
                    let scalers = self.group(&self.file, "scalers", "/scalers")?;
                    self.h5(
                        "/scalers attribute 'version'",
                        write_string_attr(&scalers, "version", version),
                    )?;
                }
            }
        }
        Ok(())
    }

    fn dataset<T: H5Type>(
        &self,
        parent: &Group,
        name: &str,
        object: &str,
        data: ArrayView2<T>,
    ) -> Result<hdf5::Dataset, TraceError> {
        self.h5(object, dataset_builder(parent).with_data(data).create(name))
    }

    fn check_get(&self, m: &Array2<i16>, object: &str, id: u64) -> Result<(), TraceError> {
        if m.ncols() != GET_COLUMNS {
            return Err(self.err(
                object,
                format!(
                    "event {id}: the GET matrix has {} columns, expected {GET_COLUMNS}",
                    m.ncols()
                ),
            ));
        }
        Ok(())
    }

    /// Writes one event. Errors (naming the event) on a duplicate id, a GET matrix without 517
    /// columns, a FRIB matrix not shaped (2048, 8), silicon data in a format other than merger
    /// 2.0, or a missing GET matrix in merger 1.0 / harmonizer files (Spyral reads `get_traces`
    /// for every stored event). `orig_run`/`orig_event` are stored by the harmonizer format
    /// only; the other formats derive them when read.
    pub fn write_event(&mut self, event: &RawEvent) -> Result<(), TraceError> {
        let id = event.id;
        if self.events.contains(&id) {
            return Err(self.err(&format!("event {id}"), "the event was already written"));
        }
        if let Some(m) = &event.pads {
            self.check_get(m, &format!("event {id}"), id)?;
        }
        for (det, m) in event.silicon.iter() {
            if let Some(m) = m {
                if !self.format.has_silicon() {
                    return Err(self.err(
                        &format!("event {id}"),
                        format!(
                            "the {} format cannot store silicon traces ({det})",
                            self.format
                        ),
                    ));
                }
                self.check_get(m, &format!("event {id} silicon {det}"), id)?;
            }
        }
        if let Some(f) = &event.frib {
            if f.traces.dim() != (FRIB_TRACE_LENGTH, FRIB_CHANNELS) {
                return Err(self.err(
                    &format!("event {id}"),
                    format!(
                        "the FRIB 1903 matrix has shape {:?}, expected ({FRIB_TRACE_LENGTH}, {FRIB_CHANNELS})",
                        f.traces.dim()
                    ),
                ));
            }
        }
        if event.pads.is_none()
            && matches!(self.format, TraceFormat::Merger1 | TraceFormat::Harmonizer)
        {
            return Err(self.err(
                &format!("event {id}"),
                format!(
                    "the {} format needs a GET matrix (get_traces) for every event",
                    self.format
                ),
            ));
        }
        match self.format {
            TraceFormat::Legacy => self.write_legacy_event(event)?,
            _ => self.write_versioned_event(event)?,
        }
        if self.events.first().is_none_or(|&first| id < first) {
            self.first_ts = event.timestamp;
        }
        if self.events.last().is_none_or(|&last| id > last) {
            self.last_ts = event.timestamp;
        }
        self.events.insert(id);
        Ok(())
    }

    fn write_frib(
        &self,
        group: &Group,
        base: &str,
        n1903: &str,
        n977: &str,
        f: &FribData,
    ) -> Result<(), TraceError> {
        self.dataset(group, n1903, &format!("{base}/{n1903}"), f.traces.view())?;
        self.h5(
            &format!("{base}/{n977}"),
            dataset_builder(group)
                .with_data(&[f.trigger][..])
                .create(n977),
        )?;
        Ok(())
    }

    fn write_legacy_event(&self, event: &RawEvent) -> Result<(), TraceError> {
        let id = event.id;
        if !event.silicon.is_empty() {
            return Err(self.err(
                &format!("event {id}"),
                "legacy files cannot store silicon traces",
            ));
        }
        if let Some(m) = &event.pads {
            let get = self.open("get")?;
            let name = format!("evt{id}_data");
            self.dataset(&get, &name, &format!("/get/{name}"), m.view())?;
            let header = [
                id as f64,
                event.timestamp as f64,
                event.timestamp_other as f64,
            ];
            let hname = format!("evt{id}_header");
            self.h5(
                &format!("/get/{hname}"),
                dataset_builder(&get)
                    .with_data(&header[..])
                    .create(hname.as_str()),
            )?;
        }
        if let Some(f) = &event.frib {
            let evt = self.h5("/frib/evt", self.file.group("frib/evt"))?;
            self.write_frib(
                &evt,
                "/frib/evt",
                &format!("evt{id}_1903"),
                &format!("evt{id}_977"),
                f,
            )?;
        }
        Ok(())
    }

    fn write_versioned_event(&self, event: &RawEvent) -> Result<(), TraceError> {
        let id = event.id;
        let id32 = u32::try_from(id).unwrap_or(u32::MAX);
        let events = self.open("events")?;
        let name = format!("event_{id}");
        let base = format!("/events/{name}");
        let group = self.group(&events, &name, &base)?;
        match self.format {
            TraceFormat::Merger2 => {
                if let Some(pads) = &event.pads {
                    let gbase = format!("{base}/get");
                    let get = self.group(&group, "get", &gbase)?;
                    self.dataset(&get, "pads", &format!("{gbase}/pads"), pads.view())?;
                    for (det, m) in event.silicon.iter() {
                        if let Some(m) = m {
                            let n = format!("si_{det}");
                            self.dataset(&get, &n, &format!("{gbase}/{n}"), m.view())?;
                        }
                    }
                    self.attr(&get, &gbase, "id", id32)?;
                    self.attr(&get, &gbase, "timestamp", event.timestamp)?;
                    self.attr(&get, &gbase, "timestamp_other", event.timestamp_other)?;
                } else if !event.silicon.is_empty() {
                    return Err(self.err(&base, "silicon traces need a GET pad matrix too"));
                }
            }
            format => {
                let Some(pads) = &event.pads else {
                    return Err(self.err(&base, "missing GET matrix"));
                };
                let object = format!("{base}/get_traces");
                let ds = self.dataset(&group, "get_traces", &object, pads.view())?;
                self.attr(&ds, &object, "id", id32)?;
                self.attr(&ds, &object, "timestamp", event.timestamp)?;
                self.attr(&ds, &object, "timestamp_other", event.timestamp_other)?;
                if format == TraceFormat::Harmonizer {
                    self.attr(&group, &base, "orig_run", event.orig_run)?;
                    self.attr(&group, &base, "orig_event", event.orig_event)?;
                }
            }
        }
        if let Some(f) = &event.frib {
            let fbase = format!("{base}/frib_physics");
            let frib = self.group(&group, "frib_physics", &fbase)?;
            self.attr(&frib, &fbase, "id", id32)?;
            self.attr(&frib, &fbase, "timestamp", f.timestamp)?;
            self.write_frib(&frib, &fbase, "1903", "977", f)?;
        }
        Ok(())
    }

    /// Writes scaler records. Errors for the harmonizer format (it has no scalers) and for a
    /// duplicate record number; legacy files need the records numbered 0, 1, 2, ... in order
    /// (the reader stops at the first gap).
    pub fn write_scalers(&mut self, rows: &[ScalerRow]) -> Result<(), TraceError> {
        if !self.format.has_scalers() {
            return Err(self.err(
                "scalers",
                format!("the {} format has no scalers", self.format),
            ));
        }
        for row in rows {
            let k = row.event;
            if self.scalers.contains(&k) {
                return Err(self.err(&format!("scaler record {k}"), "already written"));
            }
            match self.format {
                TraceFormat::Legacy => {
                    let expected = self.scalers.len() as u64;
                    if k != expected {
                        return Err(self.err(
                            &format!("scaler record {k}"),
                            format!("legacy scalers must be numbered without gaps; expected record {expected}"),
                        ));
                    }
                    let frib = self.open("frib")?;
                    let group = if self.scalers.is_empty() {
                        self.group(&frib, "scaler", "/frib/scaler")?
                    } else {
                        self.h5("/frib/scaler", frib.group("scaler"))?
                    };
                    let name = format!("scaler{k}_data");
                    self.h5(
                        &format!("/frib/scaler/{name}"),
                        dataset_builder(&group)
                            .with_data(&row.values[..])
                            .create(name.as_str()),
                    )?;
                }
                _ => {
                    let group = self.open("scalers")?;
                    let name = format!("event_{k}");
                    let object = format!("/scalers/{name}");
                    let ds = self.h5(
                        &object,
                        dataset_builder(&group)
                            .with_data(&row.values[..])
                            .create(name.as_str()),
                    )?;
                    self.attr(&ds, &object, "start_offset", row.start_offset)?;
                    self.attr(&ds, &object, "stop_offset", row.stop_offset)?;
                    self.attr(&ds, &object, "timestamp", row.timestamp)?;
                    self.attr(&ds, &object, "incremental", row.incremental)?;
                }
            }
            self.scalers.insert(k);
        }
        Ok(())
    }

    /// Writes the run-level metadata, closes the file and renames it to its final name.
    /// Returns the final path.
    pub fn finish(self) -> Result<PathBuf, TraceError> {
        let (first, last) = self.info.event_range.unwrap_or_else(|| {
            (
                self.events.first().copied().unwrap_or(0),
                self.events.last().copied().unwrap_or(0),
            )
        });
        match self.format {
            TraceFormat::Legacy => {
                let meta = self.open("meta")?;
                let values = [first, self.first_ts, last, self.last_ts];
                self.h5(
                    "/meta/meta",
                    dataset_builder(&meta).with_data(&values[..]).create("meta"),
                )?;
            }
            format => {
                let events = self.open("events")?;
                let o = "/events";
                self.attr(&events, o, "min_event", first)?;
                self.attr(&events, o, "max_event", last)?;
                if format != TraceFormat::Harmonizer {
                    self.attr(&events, o, "min_get_ts", self.first_ts)?;
                    self.attr(&events, o, "max_get_ts", self.last_ts)?;
                    self.attr(&events, o, "frib_run", self.info.frib_run)?;
                    self.attr(&events, o, "frib_start", self.info.frib_start)?;
                    self.attr(&events, o, "frib_stop", self.info.frib_stop)?;
                    self.attr(&events, o, "frib_time", self.info.frib_time)?;
                    let scalers = self.open("scalers")?;
                    let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
                    let smin = small(self.scalers.first().copied().unwrap_or(0));
                    let smax = small(self.scalers.last().copied().unwrap_or(0));
                    self.attr(&scalers, "/scalers", "min_event", smin)?;
                    self.attr(&scalers, "/scalers", "max_event", smax)?;
                }
            }
        }
        let TraceWriter {
            file,
            partial,
            dest,
            ..
        } = self;
        let close_err = |e: hdf5::Error| TraceError::Write {
            path: dest.clone(),
            object: "the file".into(),
            problem: format!("cannot close: {}", hdf5_detail(&e)),
        };
        file.flush().map_err(close_err)?;
        file.close().map_err(close_err)?;
        partial.commit().map_err(|e| TraceError::Write {
            path: dest.clone(),
            object: "the file".into(),
            problem: e.to_string(),
        })
    }
}
