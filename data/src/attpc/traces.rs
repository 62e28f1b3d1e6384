//! Reading AT-TPC raw trace files (`run_0001.h5`) in every format Spyral knows: format
//! detection, the declared event range, raw GET / silicon / FRIBDAQ data per event, and scalers.
//!
//! Formats (see the spec, section 1): the un-versioned legacy merger layout (`/meta`, `/get`,
//! `/frib`), merger 1.0 / synchronizer 0.1.0, harmonizer 0.1.0 and merger 2.0 (all under
//! `/events`, told apart by the `version` attribute of `/events`).
//!
//! Differences from Spyral 1.1.2, all deliberate:
//! - the event range is `first..=last` for every format (Spyral's merger and harmonizer readers
//!   skip the last event);
//! - merger 2.0 silicon datasets are read under the names the merger writes (`si_*`), or
//!   `silicon_*`; missing ones are absent rather than a crash;
//! - merger scalers are read for the whole declared range (Spyral reads only the first);
//! - a FRIB event is built only when both the `1903` and `977` datasets exist.
//!
//! Untrusted files (a corrupt header must never make a run endless or exhaust memory):
//! - the declared range is checked against the events the file holds when it is opened
//!   ([`TraceReader::open`]): an absurd range is a [`TraceError::EventRange`] naming the file and
//!   the attribute, a range slightly off is a [`TraceWarning`]; phases iterate
//!   [`TraceReader::present_event_ids`], which is bounded by the file's contents whatever the
//!   attributes claim;
//! - every dataset's claimed shape, chunk size and storage are checked before it is read
//!   ([`MAX_GET_ROWS`], [`super::h5util::check_read_extent`]); of small datasets only the values
//!   needed are read;
//! - only hard links are followed (no soft or external links: an external link can name any
//!   path, a FIFO included).
//!
//! The reader returns raw integer data; signal processing lives in the phases (`spyral-phases`).

use super::h5util::{
    attr_i64, attr_string, attr_u64, check_read_extent, ensure_integer_dataset, hard_dataset,
    hard_group, hard_links, H5ReadError, HardMembers,
};
use hdf5::types::TypeDescriptor;
use hdf5::{Dataset, Group, MinorErrorCode};
use ndarray::{s, Array2};
use std::collections::HashSet;
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Columns of a GET trace matrix: cobo, asad, aget, channel, pad, then 512 samples.
pub const GET_COLUMNS: usize = 517;
/// Index of the first sample column of a GET trace matrix.
pub const GET_SAMPLE_OFFSET: usize = 5;
/// Number of GET time buckets per trace.
pub const GET_TIME_BUCKETS: usize = 512;
/// Samples per channel of the FRIBDAQ SIS3300 digitizer (dataset `1903`).
pub const FRIB_TRACE_LENGTH: usize = 2048;
/// Channels of the FRIBDAQ SIS3300 digitizer (column 0 = ion chamber, 1 = mesh, 2 = silicon).
pub const FRIB_CHANNELS: usize = 8;
/// Number of named scaler values per scaler record.
pub const NUM_SCALERS: usize = 11;
/// The most rows a GET matrix may claim. The full electronics has 11 CoBos x 4 AsAds x 4 AGETs
/// x 68 channels = 11 968 channels; a larger shape is a corrupt header, refused before anything
/// is allocated.
pub const MAX_GET_ROWS: usize = 32_768;
/// The longest FRIBDAQ trigger dataset (`977`, one word used) read whole on the quick path; a
/// longer one is read the checked way, its first word only.
const MAX_QUICK_977: usize = 64;
/// How many ids a declared range may reach beyond the stored events, on either side, without a
/// warning: the merger declares its last GET event even when it had to drop it.
pub const RANGE_TOLERANCE: u64 = 1;
/// A declared range is refused as corrupt when the ids it declares but the file does not hold
/// outnumber `max(RANGE_MISSING_LIMIT, RANGE_MISSING_FACTOR x the events it holds)`.
pub const RANGE_MISSING_LIMIT: u64 = 10_000;
/// See [`RANGE_MISSING_LIMIT`].
pub const RANGE_MISSING_FACTOR: u64 = 10;
/// The largest event id a file may declare or hold (ids are stored as `i64` downstream).
pub const MAX_EVENT_ID: u64 = i64::MAX as u64;
/// Names of the scaler values, in the order they are stored (spec 1.9).
pub const SCALER_NAMES: [&str; NUM_SCALERS] = [
    "clock_free",
    "clock_live",
    "trigger_free",
    "trigger_live",
    "ic_sca",
    "mesh_sca",
    "si1_cfd",
    "si2_cfd",
    "sipm",
    "ic_ds",
    "ic_cfd",
];

/// The known layouts of a trace file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceFormat {
    /// Un-versioned legacy merger output (top-level `meta` group).
    Legacy,
    /// `libattpc_merger:1.0` or `synchronizer:0.1.0`.
    Merger1,
    /// `harmonizer:0.1.0`.
    Harmonizer,
    /// `libattpc_merger:2.0`.
    Merger2,
}

impl TraceFormat {
    /// Every format, oldest first.
    pub const ALL: [TraceFormat; 4] = [
        TraceFormat::Legacy,
        TraceFormat::Merger1,
        TraceFormat::Harmonizer,
        TraceFormat::Merger2,
    ];

    /// The format a `/events` `version` attribute names, if known.
    pub fn from_version(version: &str) -> Option<TraceFormat> {
        match version {
            "libattpc_merger:1.0" | "synchronizer:0.1.0" => Some(TraceFormat::Merger1),
            "harmonizer:0.1.0" => Some(TraceFormat::Harmonizer),
            "libattpc_merger:2.0" => Some(TraceFormat::Merger2),
            _ => None,
        }
    }

    /// The version string written for this format (`None` for the legacy format).
    pub fn version_string(self) -> Option<&'static str> {
        match self {
            TraceFormat::Legacy => None,
            TraceFormat::Merger1 => Some("libattpc_merger:1.0"),
            TraceFormat::Harmonizer => Some("harmonizer:0.1.0"),
            TraceFormat::Merger2 => Some("libattpc_merger:2.0"),
        }
    }

    /// A short name: `legacy`, `merger-1.0`, `harmonizer-0.1`, `merger-2.0`.
    pub fn name(self) -> &'static str {
        match self {
            TraceFormat::Legacy => "legacy",
            TraceFormat::Merger1 => "merger-1.0",
            TraceFormat::Harmonizer => "harmonizer-0.1",
            TraceFormat::Merger2 => "merger-2.0",
        }
    }

    /// Parses [`TraceFormat::name`] (also accepts the version strings).
    pub fn from_name(name: &str) -> Option<TraceFormat> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .or_else(|| Self::from_version(name))
    }

    /// Whether the format stores FRIBDAQ scalers.
    pub fn has_scalers(self) -> bool {
        !matches!(self, TraceFormat::Harmonizer)
    }

    /// Whether the format stores the four silicon GET matrices.
    pub fn has_silicon(self) -> bool {
        matches!(self, TraceFormat::Merger2)
    }
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// FRIBDAQ trigger type, from the V977 coincidence register (dataset `977`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FribTrigger {
    /// 0: no trigger bit.
    Empty,
    /// 1: mesh trigger.
    Mesh,
    /// 2: down-scaled ion-chamber trigger.
    IcDownscale,
    /// 3: mesh AND ion chamber.
    And,
}

/// The FRIBDAQ auxiliary data of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct FribData {
    /// SIS3300 traces (dataset `1903`), shape `(2048, 8)`: one column per channel.
    pub traces: Array2<u16>,
    /// V977 coincidence register word (dataset `977`, element 0).
    pub trigger: u16,
    /// FRIBDAQ timestamp (attribute `timestamp` of `frib_physics` in merger files; 0 if absent).
    pub timestamp: u32,
}

impl FribData {
    /// The trigger type, or `None` for a register value Spyral does not know.
    pub fn trigger_type(&self) -> Option<FribTrigger> {
        match self.trigger {
            0 => Some(FribTrigger::Empty),
            1 => Some(FribTrigger::Mesh),
            2 => Some(FribTrigger::IcDownscale),
            3 => Some(FribTrigger::And),
            _ => None,
        }
    }
}

/// The four silicon GET matrices of a merger 2.0 event (each in the 517-column layout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiliconTraces {
    /// `si_upstream_front`.
    pub upstream_front: Option<Array2<i16>>,
    /// `si_upstream_back`.
    pub upstream_back: Option<Array2<i16>>,
    /// `si_downstream_front`.
    pub downstream_front: Option<Array2<i16>>,
    /// `si_downstream_back`.
    pub downstream_back: Option<Array2<i16>>,
}

impl SiliconTraces {
    /// Detector names, in storage order; the datasets are `si_<name>` (or `silicon_<name>`).
    pub const NAMES: [&'static str; 4] = [
        "upstream_front",
        "upstream_back",
        "downstream_front",
        "downstream_back",
    ];

    /// Whether no silicon matrix is present.
    pub fn is_empty(&self) -> bool {
        self.iter().all(|(_, m)| m.is_none())
    }

    /// `(name, matrix)` for the four detectors, in [`SiliconTraces::NAMES`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Option<&Array2<i16>>)> {
        [
            self.upstream_front.as_ref(),
            self.upstream_back.as_ref(),
            self.downstream_front.as_ref(),
            self.downstream_back.as_ref(),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, m)| (Self::NAMES[i], m))
    }

    fn slot(&mut self, i: usize) -> &mut Option<Array2<i16>> {
        match i {
            0 => &mut self.upstream_front,
            1 => &mut self.upstream_back,
            2 => &mut self.downstream_front,
            _ => &mut self.downstream_back,
        }
    }
}

/// One raw event as stored in a trace file.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    /// The event number.
    pub id: u64,
    /// The GET pad matrix, shape `(n_traces, 517)`; `None` if the event has no GET data.
    pub pads: Option<Array2<i16>>,
    /// Silicon GET matrices (merger 2.0 only; empty otherwise).
    pub silicon: SiliconTraces,
    /// FRIBDAQ data, present only when both the `1903` and `977` datasets exist.
    pub frib: Option<FribData>,
    /// Run number before harmonization. For merger and legacy files: the reader's run number
    /// (parsed from the file name, -1 if unknown); for harmonizer files the `orig_run`
    /// attribute (-1 if absent).
    pub orig_run: i64,
    /// Event number before harmonization: the event id for merger and legacy files, the
    /// `orig_event` attribute for harmonizer files (-1 if absent).
    pub orig_event: i64,
    /// GET timestamp (0 if not stored).
    pub timestamp: u64,
    /// GET secondary timestamp (0 if not stored).
    pub timestamp_other: u64,
}

impl RawEvent {
    /// An event with GET pad data only: `orig_run` = -1, `orig_event` = `id`, zero timestamps.
    pub fn new(id: u64, pads: Array2<i16>) -> RawEvent {
        RawEvent {
            id,
            pads: Some(pads),
            silicon: SiliconTraces::default(),
            frib: None,
            orig_run: -1,
            orig_event: i64::try_from(id).unwrap_or(-1),
            timestamp: 0,
            timestamp_other: 0,
        }
    }
}

/// One scaler record: the 11 named values ([`SCALER_NAMES`]) and the merger's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalerRow {
    /// The scaler event number (`K` of `scaler{K}_data` or `event_{K}`).
    pub event: u64,
    /// The values, in [`SCALER_NAMES`] order.
    pub values: [u32; NUM_SCALERS],
    /// Merger attribute `start_offset` (0 if absent).
    pub start_offset: u32,
    /// Merger attribute `stop_offset` (0 if absent).
    pub stop_offset: u32,
    /// Merger attribute `timestamp` (0 if absent).
    pub timestamp: u32,
    /// Merger attribute `incremental` (0 if absent).
    pub incremental: u32,
}

impl ScalerRow {
    /// A record with the given values and zero bookkeeping attributes.
    pub fn new(event: u64, values: [u32; NUM_SCALERS]) -> ScalerRow {
        ScalerRow {
            event,
            values,
            start_offset: 0,
            stop_offset: 0,
            timestamp: 0,
            incremental: 0,
        }
    }

    /// The value called `name` (one of [`SCALER_NAMES`]).
    pub fn get(&self, name: &str) -> Option<u32> {
        SCALER_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| self.values[i])
    }
}

/// Everything that can go wrong reading or writing a trace file. Every message starts with the
/// file; event-level problems also name the event and the HDF5 object.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file does not exist.
    #[error("{}: the trace file does not exist", .path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// An operating-system error.
    #[error("{}: {action}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not HDF5 at all.
    #[error("{}: not an HDF5 file ({detail})", .path.display())]
    NotHdf5 {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The file is HDF5 but damaged (truncated, corrupt header).
    #[error("{}: damaged HDF5 file: {detail}", .path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What HDF5 reported.
        detail: String,
    },
    /// The file could not be opened for another reason (e.g. another process is writing it).
    #[error("{}: cannot open: {detail}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What HDF5 reported.
        detail: String,
    },
    /// `/events` carries a version string no reader knows.
    #[error(
        "{}: unknown trace format version \"{version}\" (attribute 'version' of group /events); \
         known versions: libattpc_merger:1.0, synchronizer:0.1.0, harmonizer:0.1.0, \
         libattpc_merger:2.0", .path.display()
    )]
    UnknownVersion {
        /// The file.
        path: PathBuf,
        /// The version string found (escaped, shortened to 80 characters).
        version: String,
    },
    /// Neither a `meta` nor an `events` group at the top level.
    #[error(
        "{}: no known trace format: there is no top-level group 'meta' (legacy merger) or \
         'events' (merger 1.0/2.0, harmonizer)", .path.display()
    )]
    NoKnownFormat {
        /// The file.
        path: PathBuf,
    },
    /// File-level metadata (event range, scalers) is missing or malformed.
    #[error("{}: {object}: {problem}", .path.display())]
    Layout {
        /// The file.
        path: PathBuf,
        /// The HDF5 object, e.g. `/events attribute 'min_event'`.
        object: String,
        /// What is wrong.
        problem: String,
    },
    /// The declared event range contradicts the events the file holds (a corrupt or hostile
    /// header: believed, it would make a reader count through billions of absent ids).
    #[error("{}: {attribute} = {value}, but {problem}", .path.display())]
    EventRange {
        /// The file.
        path: PathBuf,
        /// Where the value is stored, e.g. `/events attribute max_event` or
        /// `/meta/meta[2] (last event)`.
        attribute: String,
        /// The value found.
        value: u64,
        /// What contradicts it, e.g. `the file holds events 0..=119`.
        problem: String,
    },
    /// One event's data is malformed.
    #[error("{}: event {event}: {object}: {problem}", .path.display())]
    Event {
        /// The file.
        path: PathBuf,
        /// The event id.
        event: u64,
        /// The HDF5 object, e.g. `/events/event_3/get_traces`.
        object: String,
        /// What is wrong.
        problem: String,
    },
    /// Writing failed (or the data cannot be stored in the chosen format).
    #[error("{}: writing {object}: {problem}", .path.display())]
    Write {
        /// The final file name.
        path: PathBuf,
        /// What was being written.
        object: String,
        /// What went wrong.
        problem: String,
    },
}

impl TraceError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            TraceError::NotFound { path }
            | TraceError::Io { path, .. }
            | TraceError::NotHdf5 { path, .. }
            | TraceError::Damaged { path, .. }
            | TraceError::Open { path, .. }
            | TraceError::UnknownVersion { path, .. }
            | TraceError::NoKnownFormat { path }
            | TraceError::Layout { path, .. }
            | TraceError::EventRange { path, .. }
            | TraceError::Event { path, .. }
            | TraceError::Write { path, .. } => path,
        }
    }

    /// The event the error is about, for event-level errors.
    pub fn event(&self) -> Option<u64> {
        match self {
            TraceError::Event { event, .. } => Some(*event),
            _ => None,
        }
    }
}

impl From<TraceError> for spyral_core::PhaseError {
    fn from(e: TraceError) -> Self {
        match e {
            TraceError::Io { .. } | TraceError::Write { .. } | TraceError::Open { .. } => {
                spyral_core::PhaseError::io(e.to_string())
            }
            _ => spyral_core::PhaseError::invalid_input(e.to_string()),
        }
    }
}

/// Something odd about a trace file that does not stop it being read ([`TraceReader::warnings`]).
/// Every message starts with the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceWarning {
    /// The declared range reaches further than the stored events (those ids are missing).
    RangeBeyondEvents {
        /// The file.
        path: PathBuf,
        /// Where the value is stored (as in [`TraceError::EventRange`]).
        attribute: String,
        /// The value found.
        value: u64,
        /// How many ids beyond the stored events it reaches.
        beyond: u64,
        /// The events held, e.g. `events 0..=119`.
        held: String,
    },
    /// Events are stored outside the declared range; they are not read.
    EventsOutsideRange {
        /// The file.
        path: PathBuf,
        /// How many.
        count: usize,
        /// One of them.
        example: u64,
        /// The declared range.
        first: u64,
        /// The declared range.
        last: u64,
    },
    /// The declared range is empty (its last event is before its first) and no event is stored.
    EmptyRange {
        /// The file.
        path: PathBuf,
        /// The declared first event.
        first: u64,
        /// The declared last event.
        last: u64,
    },
    /// Members of a group listing events are soft or external links, which are not followed.
    IgnoredLinks {
        /// The file.
        path: PathBuf,
        /// The group, e.g. `/events`.
        group: String,
        /// How many links.
        count: usize,
    },
}

impl fmt::Display for TraceWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceWarning::RangeBeyondEvents {
                path,
                attribute,
                value,
                beyond,
                held,
            } => write!(
                f,
                "{}: {attribute} = {value} reaches {beyond} ids beyond the stored events \
                 ({held}); those events are missing",
                path.display()
            ),
            TraceWarning::EventsOutsideRange {
                path,
                count,
                example,
                first,
                last,
            } => write!(
                f,
                "{}: {count} stored events (e.g. event {example}) are outside the declared range \
                 {first}..={last}; they are not read",
                path.display()
            ),
            TraceWarning::EmptyRange { path, first, last } => write!(
                f,
                "{}: the declared range {first}..={last} is empty and the file holds no events",
                path.display()
            ),
            TraceWarning::IgnoredLinks { path, group, count } => write!(
                f,
                "{}: {count} members of {group} are soft or external links, which are not \
                 followed",
                path.display()
            ),
        }
    }
}

/// The run number in a `run_0001.h5`-style file name, if it has one.
pub fn run_number_from_path(path: &Path) -> Option<u32> {
    let stem = path.file_stem()?.to_str()?;
    let digits = stem.strip_prefix("run_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether the file has the HDF5 signature at offset 0 or at a user-block offset (512, 1024, ...).
fn has_hdf5_signature(path: &Path) -> bool {
    const SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut offset = 0u64;
    while offset + 8 <= len {
        let mut buf = [0u8; 8];
        if f.seek(SeekFrom::Start(offset)).is_err() || f.read_exact(&mut buf).is_err() {
            return false;
        }
        if buf == SIGNATURE {
            return true;
        }
        offset = if offset == 0 { 512 } else { offset * 2 };
    }
    false
}

/// The innermost (most specific) message of an HDF5 error, with the outer description.
pub(crate) fn hdf5_detail(e: &hdf5::Error) -> String {
    let outer = e.to_string();
    match e
        .stack()
        .and_then(|s| s.last().map(|f| f.desc().to_string()))
    {
        Some(inner) if !outer.contains(&inner) => format!("{outer} ({inner})"),
        _ => outer,
    }
}

/// Opens an HDF5 file read-only, turning failures into precise [`TraceError`]s.
fn open_hdf5(path: &Path) -> Result<hdf5::File, TraceError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TraceError::NotFound {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(TraceError::Io {
                path: path.to_path_buf(),
                action: "cannot read the file's metadata",
                source,
            })
        }
    };
    if meta.is_dir() {
        return Err(TraceError::NotHdf5 {
            path: path.to_path_buf(),
            detail: "it is a directory".into(),
        });
    }
    if meta.len() == 0 {
        return Err(TraceError::NotHdf5 {
            path: path.to_path_buf(),
            detail: "the file is empty".into(),
        });
    }
    hdf5::File::open(path).map_err(|e| {
        let path = path.to_path_buf();
        let detail = hdf5_detail(&e);
        if e.contains_minor(MinorErrorCode::Truncated) {
            TraceError::Damaged {
                path,
                detail: format!(
                    "the file is truncated (shorter than its HDF5 header says: an interrupted \
                     copy or write?): {detail}"
                ),
            }
        } else if e.contains_minor(MinorErrorCode::CantLock)
            || e.contains_minor(MinorErrorCode::CantLockFile)
        {
            TraceError::Open {
                path,
                detail: format!(
                    "the file is locked, probably open for writing by another process: {detail}"
                ),
            }
        } else if !has_hdf5_signature(&path) {
            TraceError::NotHdf5 {
                path,
                detail: "no HDF5 signature found".into(),
            }
        } else if e.contains_minor(MinorErrorCode::NotHdf5) {
            TraceError::Damaged {
                path,
                detail: format!("the HDF5 header cannot be read (truncated or corrupt?): {detail}"),
            }
        } else {
            TraceError::Open { path, detail }
        }
    })
}

/// What a legacy file stores for one event id (bit flags; versioned files use [`HAS_GROUP`]).
const HAS_GET: u8 = 1;
const HAS_HEADER: u8 = 2;
const HAS_1903: u8 = 4;
const HAS_977: u8 = 8;
const HAS_GROUP: u8 = 16;

/// The number in a member name: canonical decimal only (no sign, no leading zeros, so that the
/// name [`TraceReader::read_event`] builds from the id is the name listed).
fn parse_id(digits: &str) -> Option<u64> {
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// Text from a file made safe for a message: control characters escaped, at most 80
/// characters (a hostile attribute can hold megabytes).
fn shorten(text: &str) -> String {
    let escaped: String = text.escape_debug().collect();
    if escaped.chars().count() <= 80 {
        return escaped;
    }
    let head: String = escaped.chars().take(80).collect();
    format!("{head}... ({} bytes)", text.len())
}

/// How a set of stored ids reads in a message: `events 0..=119`, `12 events between 0 and 900`.
fn describe_held(ids: &[u64]) -> String {
    match (ids.first(), ids.last()) {
        (Some(&a), Some(&b)) if (b - a) as u128 + 1 == ids.len() as u128 => {
            if a == b {
                format!("only event {a}")
            } else {
                format!("events {a}..={b}")
            }
        }
        (Some(&a), Some(&b)) => format!("{} events between {a} and {b}", ids.len()),
        _ => "no events".to_string(),
    }
}

/// A reader for one trace file. Open it with [`TraceReader::open`].
pub struct TraceReader {
    path: PathBuf,
    file: hdf5::File,
    format: TraceFormat,
    version: Option<String>,
    first: u64,
    last: u64,
    run_number: i64,
    /// Every event id stored (whether or not declared), sorted, with what is stored for it.
    stored: Vec<(u64, u8)>,
    /// The stored ids inside the declared range, sorted.
    present: Vec<u64>,
    warnings: Vec<TraceWarning>,
}

impl fmt::Debug for TraceReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("version", &self.version)
            .field("first", &self.first)
            .field("last", &self.last)
            .field("run_number", &self.run_number)
            .field("stored", &self.stored.len())
            .field("present", &self.present.len())
            .finish()
    }
}

impl TraceReader {
    /// Opens `path`, detects its format (spec 1.2), reads the declared event range and lists
    /// the events the file holds.
    ///
    /// The declared range is checked against the stored events: a value beyond `i64::MAX`, an
    /// inverted range while events are stored, or a range declaring far more ids than the file
    /// holds (more than `max(RANGE_MISSING_LIMIT, RANGE_MISSING_FACTOR x stored)` missing) is a
    /// [`TraceError::EventRange`]; a range reaching more than [`RANGE_TOLERANCE`] ids beyond the
    /// stored events, or stored events outside the range, are [`TraceWarning`]s.
    ///
    /// The run number (used for `orig_run` of merger and legacy events) is parsed from a
    /// `run_NNNN.h5` file name, else -1; override it with [`TraceReader::set_run_number`].
    pub fn open(path: impl AsRef<Path>) -> Result<TraceReader, TraceError> {
        let path = path.as_ref().to_path_buf();
        let file = open_hdf5(&path)?;
        let layout = |object: &str, problem: String| TraceError::Layout {
            path: path.clone(),
            object: object.to_string(),
            problem,
        };
        let (root, _) = hard_links(&file).map_err(|e| layout("/", hdf5_detail(&e)))?;
        let root_group = |name: &str| -> Option<Group> {
            if root.iter().any(|n| n == name) {
                file.group(name).ok()
            } else {
                None
            }
        };

        let (format, version) = if root_group("meta").is_some() {
            (TraceFormat::Legacy, None)
        } else if let Some(events) = root_group("events") {
            let version = attr_string(&events, "version")
                .map_err(|p| layout("/events", p.to_string()))?
                .ok_or_else(|| {
                    layout(
                        "/events",
                        "the group has no 'version' attribute, so the format is unknown".into(),
                    )
                })?;
            match TraceFormat::from_version(&version) {
                Some(f) => (f, Some(version)),
                None => {
                    return Err(TraceError::UnknownVersion {
                        path: path.clone(),
                        version: shorten(&version),
                    })
                }
            }
        } else {
            return Err(TraceError::NoKnownFormat { path: path.clone() });
        };

        let (first, last) = match format {
            TraceFormat::Legacy => {
                let meta =
                    root_group("meta").ok_or_else(|| layout("/meta", "not a group".into()))?;
                let ds = hard_dataset(&meta, "meta")
                    .ok_or_else(|| layout("/meta/meta", "missing dataset".into()))?;
                let values =
                    read_leading_u64(&ds, 3).map_err(|p| layout("/meta/meta", p.to_string()))?;
                (values[0], values[2])
            }
            _ => {
                let events =
                    root_group("events").ok_or_else(|| layout("/events", "not a group".into()))?;
                let get = |name: &str| {
                    attr_u64(&events, name)
                        .map_err(|p| layout("/events", p.to_string()))?
                        .ok_or_else(|| layout("/events", format!("attribute '{name}' is missing")))
                };
                (get("min_event")?, get("max_event")?)
            }
        };

        let run_number = run_number_from_path(&path).map_or(-1, i64::from);
        let mut reader = TraceReader {
            path,
            file,
            format,
            version,
            first,
            last,
            run_number,
            stored: Vec::new(),
            present: Vec::new(),
            warnings: Vec::new(),
        };
        reader.list_stored()?;
        reader.check_range()?;
        Ok(reader)
    }

    /// Lists the events the file holds (hard links only) into `stored`.
    fn list_stored(&mut self) -> Result<(), TraceError> {
        let mut found: Vec<(u64, u8)> = Vec::new();
        let mut scan = |reader: &mut TraceReader,
                        group: &Group,
                        object: &str,
                        parse: &dyn Fn(&str) -> Option<(u64, u8)>|
         -> Result<(), TraceError> {
            let (names, others) =
                hard_links(group).map_err(|e| reader.layout_err(object, hdf5_detail(&e)))?;
            found.extend(names.iter().filter_map(|n| parse(n)));
            if others > 0 {
                reader.warnings.push(TraceWarning::IgnoredLinks {
                    path: reader.path.clone(),
                    group: object.to_string(),
                    count: others,
                });
            }
            Ok(())
        };
        match self.format {
            TraceFormat::Legacy => {
                let id_with = |n: &str, kinds: &[(&str, u8)]| {
                    let rest = n.strip_prefix("evt")?;
                    kinds.iter().find_map(|(suffix, flag)| {
                        rest.strip_suffix(suffix)
                            .and_then(parse_id)
                            .map(|id| (id, *flag))
                    })
                };
                if let Some(get) = hard_group(&self.file, "get") {
                    scan(self, &get, "/get", &|n| {
                        id_with(n, &[("_data", HAS_GET), ("_header", HAS_HEADER)])
                    })?;
                }
                if let Some(evt) =
                    hard_group(&self.file, "frib").and_then(|f| hard_group(&f, "evt"))
                {
                    scan(self, &evt, "/frib/evt", &|n| {
                        id_with(n, &[("_1903", HAS_1903), ("_977", HAS_977)])
                    })?;
                }
            }
            _ => {
                let events = self
                    .file
                    .group("events")
                    .map_err(|e| self.layout_err("/events", hdf5_detail(&e)))?;
                scan(self, &events, "/events", &|n| {
                    n.strip_prefix("event_")
                        .and_then(parse_id)
                        .map(|id| (id, HAS_GROUP))
                })?;
            }
        }
        found.sort_unstable();
        let mut stored: Vec<(u64, u8)> = Vec::with_capacity(found.len());
        for (id, flag) in found {
            match stored.last_mut() {
                Some(last) if last.0 == id => last.1 |= flag,
                _ => stored.push((id, flag)),
            }
        }
        self.stored = stored;
        Ok(())
    }

    /// Where the declared first and last event are stored, for messages.
    fn range_attributes(&self) -> (&'static str, &'static str) {
        match self.format {
            TraceFormat::Legacy => ("/meta/meta[0] (first event)", "/meta/meta[2] (last event)"),
            _ => ("/events attribute min_event", "/events attribute max_event"),
        }
    }

    /// Checks the declared range against the stored events and fills `present` and the
    /// warnings (see [`TraceReader::open`]).
    fn check_range(&mut self) -> Result<(), TraceError> {
        let (first_attr, last_attr) = self.range_attributes();
        let (first, last) = (self.first, self.last);
        let ids: Vec<u64> = self.stored.iter().map(|e| e.0).collect();
        let held = describe_held(&ids);
        let range_err = |attribute: &str, value: u64, problem: String| TraceError::EventRange {
            path: self.path.clone(),
            attribute: attribute.to_string(),
            value,
            problem,
        };
        for (attribute, value) in [(first_attr, first), (last_attr, last)] {
            if value > MAX_EVENT_ID {
                return Err(range_err(
                    attribute,
                    value,
                    format!("event ids above {MAX_EVENT_ID} are not valid (the file holds {held})"),
                ));
            }
        }
        if last < first {
            if ids.is_empty() {
                self.warnings.push(TraceWarning::EmptyRange {
                    path: self.path.clone(),
                    first,
                    last,
                });
                return Ok(());
            }
            return Err(range_err(
                first_attr,
                first,
                format!(
                    "it is after the last event ({last_attr} = {last}) and the file holds {held}"
                ),
            ));
        }
        let lo = ids.partition_point(|&id| id < first);
        let hi = ids.partition_point(|&id| id <= last);
        let present = &ids[lo..hi];
        let declared = last - first + 1; // no overflow: last <= i64::MAX
        let missing = declared - present.len() as u64;
        let allowed =
            RANGE_MISSING_LIMIT.max(RANGE_MISSING_FACTOR.saturating_mul(present.len() as u64));
        // How far the range reaches beyond the stored events on each side.
        let (head, tail) = match (present.first(), present.last()) {
            (Some(&a), Some(&b)) => (a - first, last - b),
            _ => (0, declared),
        };
        if missing > allowed {
            let (attribute, value) = if head > tail {
                (first_attr, first)
            } else {
                (last_attr, last)
            };
            let inside = if present.len() == ids.len() {
                format!("the file holds {held}")
            } else {
                format!(
                    "the range {first}..={last} holds {} of them (the file holds {held})",
                    present.len()
                )
            };
            return Err(range_err(
                attribute,
                value,
                format!(
                    "{inside}: {missing} declared ids would be missing, more than the {allowed} \
                     a trace file may lack (a corrupt header?)"
                ),
            ));
        }
        if !present.is_empty() {
            for (attribute, value, beyond) in [(first_attr, first, head), (last_attr, last, tail)] {
                if beyond > RANGE_TOLERANCE {
                    self.warnings.push(TraceWarning::RangeBeyondEvents {
                        path: self.path.clone(),
                        attribute: attribute.to_string(),
                        value,
                        beyond,
                        held: held.clone(),
                    });
                }
            }
        } else if declared > RANGE_TOLERANCE {
            self.warnings.push(TraceWarning::RangeBeyondEvents {
                path: self.path.clone(),
                attribute: last_attr.to_string(),
                value: last,
                beyond: declared,
                held: held.clone(),
            });
        }
        let outside = ids.len() - present.len();
        if outside > 0 {
            let example = if lo > 0 { ids[0] } else { ids[hi] };
            self.warnings.push(TraceWarning::EventsOutsideRange {
                path: self.path.clone(),
                count: outside,
                example,
                first,
                last,
            });
        }
        self.present = present.to_vec();
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detected format.
    pub fn format(&self) -> TraceFormat {
        self.format
    }

    /// The version string of `/events` (`None` for legacy files).
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The run number used for `orig_run` of merger and legacy events (-1 if unknown).
    pub fn run_number(&self) -> i64 {
        self.run_number
    }

    /// Sets the run number used for `orig_run` of merger and legacy events.
    pub fn set_run_number(&mut self, run: i64) {
        self.run_number = run;
    }

    /// The first declared event id.
    pub fn first_event(&self) -> u64 {
        self.first
    }

    /// The last declared event id (included in [`TraceReader::event_ids`]).
    pub fn last_event(&self) -> u64 {
        self.last
    }

    /// The declared event ids, `first..=last` for every format (checked at open against the
    /// stored events, so at most about `RANGE_MISSING_FACTOR + 1` times as many ids as the file
    /// holds events). Ids in the range may be missing from the file:
    /// [`TraceReader::read_event`] returns `None` for them. To process a run, iterate
    /// [`TraceReader::present_event_ids`] instead.
    pub fn event_ids(&self) -> RangeInclusive<u64> {
        self.first..=self.last
    }

    /// The number of declared event ids (`last - first + 1`, or 0 if `last < first`).
    pub fn num_events(&self) -> u64 {
        if self.last < self.first {
            0
        } else {
            self.last - self.first + 1
        }
    }

    /// The ids of the events the file holds inside the declared range, sorted: what a phase
    /// iterates. Bounded by the file's contents, whatever its attributes claim.
    pub fn present_event_ids(&self) -> &[u64] {
        &self.present
    }

    /// What looked odd when the file was opened (range slightly off, events outside the
    /// range, ignored links). Each names the file; phases log them.
    pub fn warnings(&self) -> &[TraceWarning] {
        &self.warnings
    }

    fn event_err(&self, event: u64, object: &str, problem: impl Into<String>) -> TraceError {
        TraceError::Event {
            path: self.path.clone(),
            event,
            object: object.to_string(),
            problem: problem.into(),
        }
    }

    fn layout_err(&self, object: &str, problem: impl Into<String>) -> TraceError {
        TraceError::Layout {
            path: self.path.clone(),
            object: object.to_string(),
            problem: problem.into(),
        }
    }

    /// The ids of the events actually stored in the file, sorted (whether or not they are in
    /// the declared range).
    pub fn stored_event_ids(&self) -> Result<Vec<u64>, TraceError> {
        Ok(self.stored.iter().map(|e| e.0).collect())
    }

    /// Reads event `id`. `Ok(None)` if the file has no data for it; an error if the data is
    /// malformed (the error names the file, the event and the dataset).
    pub fn read_event(&self, id: u64) -> Result<Option<RawEvent>, TraceError> {
        let Ok(i) = self.stored.binary_search_by_key(&id, |e| e.0) else {
            return Ok(None);
        };
        let flags = self.stored[i].1;
        match self.format {
            TraceFormat::Legacy => self.read_legacy_event(id, flags),
            _ => self.read_versioned_event(id),
        }
    }

    /// A member listed at open as a hard link; it may still not be what the reader expects.
    fn listed_group(&self, path: &str, id: u64) -> Result<Group, TraceError> {
        self.file.group(path).map_err(|e| {
            self.event_err(
                id,
                &format!("/{path}"),
                format!("not a group: {}", hdf5_detail(&e)),
            )
        })
    }

    fn listed_dataset(
        &self,
        group: &Group,
        base: &str,
        name: &str,
        id: u64,
    ) -> Result<Dataset, TraceError> {
        group.dataset(name).map_err(|e| {
            self.event_err(
                id,
                &format!("{base}/{name}"),
                format!("not a dataset: {}", hdf5_detail(&e)),
            )
        })
    }

    fn read_legacy_event(&self, id: u64, flags: u8) -> Result<Option<RawEvent>, TraceError> {
        let mut event = RawEvent {
            id,
            pads: None,
            silicon: SiliconTraces::default(),
            frib: None,
            orig_run: self.run_number,
            orig_event: i64::try_from(id).unwrap_or(-1),
            timestamp: 0,
            timestamp_other: 0,
        };
        if flags & HAS_GET != 0 {
            let get = self.listed_group("get", id)?;
            let name = format!("evt{id}_data");
            let ds = self.listed_dataset(&get, "/get", &name, id)?;
            event.pads = Some(self.read_get_matrix(&ds, id, &format!("/get/{name}"))?);
            // The header [event id, timestamp, timestamp_other] is informational only: read
            // when it is a small float array, ignored otherwise.
            if flags & HAS_HEADER != 0 {
                if let Ok(h) = get.dataset(&format!("evt{id}_header")) {
                    let small =
                        h.ndim() == 1 && h.shape()[0] <= 16 && check_read_extent(&h, 16).is_ok();
                    if let Some(v) = small.then(|| h.read_raw::<f64>().ok()).flatten() {
                        let ts = |t: Option<&f64>| {
                            t.map_or(0, |&t| if t.is_finite() { t.max(0.0) as u64 } else { 0 })
                        };
                        event.timestamp = ts(v.get(1));
                        event.timestamp_other = ts(v.get(2));
                    }
                }
            }
        }
        if flags & HAS_1903 != 0 && flags & HAS_977 != 0 {
            let evt = self.listed_group("frib/evt", id)?;
            let n1903 = format!("evt{id}_1903");
            let n977 = format!("evt{id}_977");
            let d1903 = self.listed_dataset(&evt, "/frib/evt", &n1903, id)?;
            let d977 = self.listed_dataset(&evt, "/frib/evt", &n977, id)?;
            event.frib = Some(self.read_frib(&d1903, &d977, id, "/frib/evt", &n1903, &n977, 0)?);
        }
        if event.pads.is_none() && event.frib.is_none() {
            return Ok(None);
        }
        Ok(Some(event))
    }

    fn read_versioned_event(&self, id: u64) -> Result<Option<RawEvent>, TraceError> {
        let name = format!("event_{id}");
        let group = self.listed_group(&format!("events/{name}"), id)?;
        let base = format!("/events/{name}");
        let mut event = RawEvent {
            id,
            pads: None,
            silicon: SiliconTraces::default(),
            frib: None,
            orig_run: self.run_number,
            orig_event: i64::try_from(id).unwrap_or(-1),
            timestamp: 0,
            timestamp_other: 0,
        };
        let lenient_u64 =
            |loc: &hdf5::Location, n: &str| attr_u64(loc, n).ok().flatten().unwrap_or(0);

        // Each group's hard links are listed once, then looked up by name.
        let members = HardMembers::of(&group);
        if self.format == TraceFormat::Merger2 {
            if let Some(get) = members.group("get") {
                let in_get = HardMembers::of(&get);
                event.timestamp = lenient_u64(&get, "timestamp");
                event.timestamp_other = lenient_u64(&get, "timestamp_other");
                if let Some(ds) = in_get.dataset("pads") {
                    event.pads =
                        Some(self.read_get_matrix(&ds, id, &format!("{base}/get/pads"))?);
                }
                for (i, det) in SiliconTraces::NAMES.iter().enumerate() {
                    let found = [format!("si_{det}"), format!("silicon_{det}")]
                        .into_iter()
                        .find_map(|n| in_get.dataset(&n).map(|ds| (n, ds)));
                    if let Some((n, ds)) = found {
                        let m = self.read_get_matrix(&ds, id, &format!("{base}/get/{n}"))?;
                        *event.silicon.slot(i) = Some(m);
                    }
                }
            }
        } else if let Some(ds) = members.dataset("get_traces") {
            event.timestamp = lenient_u64(&ds, "timestamp");
            event.timestamp_other = lenient_u64(&ds, "timestamp_other");
            event.pads = Some(self.read_get_matrix(&ds, id, &format!("{base}/get_traces"))?);
        }

        if let Some(frib) = members.group("frib_physics") {
            let in_frib = HardMembers::of(&frib);
            if let (Some(d1903), Some(d977)) = (in_frib.dataset("1903"), in_frib.dataset("977")) {
                let ts = attr_u64(&frib, "timestamp")
                    .ok()
                    .flatten()
                    .and_then(|t| u32::try_from(t).ok())
                    .unwrap_or(0);
                let object = format!("{base}/frib_physics");
                event.frib = Some(self.read_frib(&d1903, &d977, id, &object, "1903", "977", ts)?);
            }
        }

        if self.format == TraceFormat::Harmonizer {
            let orig = |n: &str| {
                attr_i64(&group, n)
                    .map_err(|p| self.event_err(id, &base, p.to_string()))
                    .map(|v| v.unwrap_or(-1))
            };
            event.orig_run = orig("orig_run")?;
            event.orig_event = orig("orig_event")?;
        }
        Ok(Some(event))
    }

    fn read_get_matrix(
        &self,
        ds: &Dataset,
        id: u64,
        object: &str,
    ) -> Result<Array2<i16>, TraceError> {
        // The plain case (contiguous 2-byte integers of the expected width) in a few library
        // calls; anything else the checked way below, which says what is wrong.
        if let Some(m) = crate::h5fast::quick_samples::<i16>(ds, MAX_GET_ROWS * GET_COLUMNS) {
            if let [rows, GET_COLUMNS] = m.dims[..] {
                if let Ok(a) = Array2::from_shape_vec((rows, GET_COLUMNS), m.values) {
                    return Ok(a);
                }
            }
        }
        ensure_integer_dataset(ds).map_err(|p| self.event_err(id, object, p.to_string()))?;
        let shape = ds.shape();
        if shape.len() != 2 || shape[1] != GET_COLUMNS {
            return Err(self.event_err(
                id,
                object,
                format!(
                    "the GET matrix has shape {shape:?}, expected (n, {GET_COLUMNS}): cobo, asad, \
                     aget, channel, pad and {GET_TIME_BUCKETS} samples"
                ),
            ));
        }
        if shape[0] > MAX_GET_ROWS {
            return Err(self.event_err(
                id,
                object,
                format!(
                    "the GET matrix claims {} rows, more than the {MAX_GET_ROWS} a reader accepts \
                     (the electronics has 11968 channels): a corrupt header?",
                    shape[0]
                ),
            ));
        }
        check_read_extent(ds, MAX_GET_ROWS * GET_COLUMNS)
            .map_err(|p| self.event_err(id, object, p.to_string()))?;
        if shape[0] == 0 {
            return Ok(Array2::zeros((0, GET_COLUMNS)));
        }
        ds.read_2d::<i16>()
            .map_err(|e| self.event_err(id, object, format!("cannot read: {}", hdf5_detail(&e))))
    }

    #[allow(clippy::too_many_arguments)]
    fn read_frib(
        &self,
        d1903: &Dataset,
        d977: &Dataset,
        id: u64,
        group: &str,
        n1903: &str,
        n977: &str,
        timestamp: u32,
    ) -> Result<FribData, TraceError> {
        // The plain case first, as for the GET matrix.
        let traces = crate::h5fast::quick_samples::<u16>(d1903, FRIB_TRACE_LENGTH * FRIB_CHANNELS)
            .filter(|m| m.dims == [FRIB_TRACE_LENGTH, FRIB_CHANNELS])
            .and_then(|m| {
                Array2::from_shape_vec((FRIB_TRACE_LENGTH, FRIB_CHANNELS), m.values).ok()
            });
        let trigger = crate::h5fast::quick_samples::<u16>(d977, MAX_QUICK_977)
            .filter(|m| m.dims.len() == 1)
            .and_then(|m| m.values.first().copied());
        if let (Some(traces), Some(trigger)) = (traces, trigger) {
            return Ok(FribData {
                traces,
                trigger,
                timestamp,
            });
        }
        let o1903 = format!("{group}/{n1903}");
        let o977 = format!("{group}/{n977}");
        ensure_integer_dataset(d1903).map_err(|p| self.event_err(id, &o1903, p.to_string()))?;
        ensure_integer_dataset(d977).map_err(|p| self.event_err(id, &o977, p.to_string()))?;
        let shape = d1903.shape();
        if shape != [FRIB_TRACE_LENGTH, FRIB_CHANNELS] {
            return Err(self.event_err(
                id,
                &o1903,
                format!(
                    "the SIS3300 matrix has shape {shape:?}, expected ({FRIB_TRACE_LENGTH}, {FRIB_CHANNELS})"
                ),
            ));
        }
        check_read_extent(d1903, FRIB_TRACE_LENGTH * FRIB_CHANNELS)
            .map_err(|p| self.event_err(id, &o1903, p.to_string()))?;
        let traces = d1903
            .read_2d::<u16>()
            .map_err(|e| self.event_err(id, &o1903, format!("cannot read: {}", hdf5_detail(&e))))?;
        let words =
            read_leading::<u16>(d977, 1).map_err(|p| self.event_err(id, &o977, p.to_string()))?;
        Ok(FribData {
            traces,
            trigger: words[0],
            timestamp,
        })
    }

    /// Reads the FRIBDAQ scalers: `Ok(None)` if the format has none (harmonizer) or the file
    /// stores none. Legacy files are scanned `scaler0_data`, `scaler1_data`, ... up to the first
    /// gap; merger files list `/scalers/event_K` within the declared `min_event..=max_event`.
    pub fn read_scalers(&self) -> Result<Option<Vec<ScalerRow>>, TraceError> {
        match self.format {
            TraceFormat::Harmonizer => Ok(None),
            TraceFormat::Legacy => {
                let Some(group) =
                    hard_group(&self.file, "frib").and_then(|f| hard_group(&f, "scaler"))
                else {
                    return Ok(None);
                };
                let (names, _) = hard_links(&group)
                    .map_err(|e| self.layout_err("/frib/scaler", hdf5_detail(&e)))?;
                let names: HashSet<String> = names.into_iter().collect();
                let mut rows = Vec::new();
                for k in 0u64.. {
                    let name = format!("scaler{k}_data");
                    if !names.contains(&name) {
                        break;
                    }
                    let object = format!("/frib/scaler/{name}");
                    let ds = group
                        .dataset(&name)
                        .map_err(|e| self.layout_err(&object, hdf5_detail(&e)))?;
                    let values = self.read_scaler_values(&ds, &object)?;
                    rows.push(ScalerRow::new(k, values));
                }
                Ok(Some(rows))
            }
            TraceFormat::Merger1 | TraceFormat::Merger2 => {
                let Some(group) = hard_group(&self.file, "scalers") else {
                    return Ok(None);
                };
                let range = |n: &str| {
                    attr_u64(&group, n).map_err(|p| self.layout_err("/scalers", p.to_string()))
                };
                let (min, max) = (range("min_event")?, range("max_event")?);
                let (names, _) =
                    hard_links(&group).map_err(|e| self.layout_err("/scalers", hdf5_detail(&e)))?;
                let mut ids: Vec<u64> = names
                    .iter()
                    .filter_map(|n| n.strip_prefix("event_").and_then(parse_id))
                    .filter(|k| min.is_none_or(|m| *k >= m) && max.is_none_or(|m| *k <= m))
                    .collect();
                ids.sort_unstable();
                let mut rows = Vec::with_capacity(ids.len());
                for k in ids {
                    let object = format!("/scalers/event_{k}");
                    let ds = group
                        .dataset(&format!("event_{k}"))
                        .map_err(|e| self.layout_err(&object, hdf5_detail(&e)))?;
                    let values = self.read_scaler_values(&ds, &object)?;
                    let small = |n: &str| {
                        attr_u64(&ds, n)
                            .ok()
                            .flatten()
                            .and_then(|v| u32::try_from(v).ok())
                            .unwrap_or(0)
                    };
                    rows.push(ScalerRow {
                        event: k,
                        values,
                        start_offset: small("start_offset"),
                        stop_offset: small("stop_offset"),
                        timestamp: small("timestamp"),
                        incremental: small("incremental"),
                    });
                }
                Ok(Some(rows))
            }
        }
    }

    fn read_scaler_values(
        &self,
        ds: &Dataset,
        object: &str,
    ) -> Result<[u32; NUM_SCALERS], TraceError> {
        let data = read_leading::<u32>(ds, NUM_SCALERS).map_err(|p| {
            self.layout_err(
                object,
                format!("{p} (the scalers are {})", SCALER_NAMES.join(", ")),
            )
        })?;
        let mut values = [0u32; NUM_SCALERS];
        values.copy_from_slice(&data);
        Ok(values)
    }
}

/// Why [`read_leading`] could not read the leading values of a dataset (the caller names the
/// file and the dataset).
#[derive(Debug, thiserror::Error)]
enum LeadingError {
    /// Its type or storage is refused.
    #[error(transparent)]
    Dataset(#[from] H5ReadError),
    /// libhdf5 failed to read it.
    #[error("cannot read: {0}")]
    Read(String),
    /// It is shorter than needed.
    #[error("holds {len} values, expected at least {n}")]
    TooShort { len: usize, n: usize },
    /// It is not 1-D (nor a scalar when one value is needed).
    #[error("has shape {shape:?}, expected a 1-D array of at least {n} values")]
    Shape { shape: Vec<usize>, n: usize },
    /// It holds a negative value where a count or id is expected.
    #[error("holds the negative value {0}")]
    Negative(i64),
}

/// Reads the first `n` values of a 1-D integer dataset (or the value of a scalar one when
/// `n == 1`), whatever its length: a long dataset is not read whole.
fn read_leading<T: hdf5::H5Type + Copy>(ds: &Dataset, n: usize) -> Result<Vec<T>, LeadingError> {
    ensure_integer_dataset(ds)?;
    check_read_extent(ds, usize::MAX)?;
    let shape = ds.shape();
    let read_err = |e: hdf5::Error| LeadingError::Read(hdf5_detail(&e));
    match shape.as_slice() {
        [] if n == 1 => Ok(vec![ds.read_scalar::<T>().map_err(read_err)?]),
        [len] if *len >= n => Ok(ds
            .read_slice_1d::<T, _>(s![0..n])
            .map_err(read_err)?
            .to_vec()),
        [len] => Err(LeadingError::TooShort { len: *len, n }),
        _ => Err(LeadingError::Shape { shape, n }),
    }
}

/// Reads the first `n` values of a 1-D integer dataset as `u64`, refusing negative values
/// (which a plain conversion would silently clip to 0).
fn read_leading_u64(ds: &Dataset, n: usize) -> Result<Vec<u64>, LeadingError> {
    let signed = matches!(
        ds.dtype().and_then(|t| t.to_descriptor()),
        Ok(TypeDescriptor::Integer(_))
    );
    if signed {
        read_leading::<i64>(ds, n)?
            .into_iter()
            .map(|v| u64::try_from(v).map_err(|_| LeadingError::Negative(v)))
            .collect()
    } else {
        read_leading::<u64>(ds, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_names() {
        for f in TraceFormat::ALL {
            assert_eq!(TraceFormat::from_name(f.name()), Some(f));
            if let Some(v) = f.version_string() {
                assert_eq!(TraceFormat::from_version(v), Some(f));
            }
        }
        assert_eq!(
            TraceFormat::from_version("synchronizer:0.1.0"),
            Some(TraceFormat::Merger1)
        );
        assert_eq!(TraceFormat::from_version("libattpc_merger:3.0"), None);
        assert_eq!(run_number_from_path(Path::new("/x/run_0012.h5")), Some(12));
        assert_eq!(run_number_from_path(Path::new("run_12345.h5")), Some(12345));
        assert_eq!(run_number_from_path(Path::new("run_.h5")), None);
        assert_eq!(run_number_from_path(Path::new("other_0012.h5")), None);
    }

    #[test]
    fn reader_and_writer_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<TraceReader>();
        is_send::<crate::attpc::TraceWriter>();
        is_send::<crate::attpc::PadMap>();
        is_send::<TraceError>();
    }
}
