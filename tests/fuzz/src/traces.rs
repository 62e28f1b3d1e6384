//! Trace-reader targets (`legacy`, `merger-1.0`, `merger-2.0`, `harmonizer-0.1`).
//!
//! A case writes a small valid run with `TraceWriter` (a few events with GET rows, FRIB data,
//! silicon matrices, original ids, scalers, a declared range that is exact or one past), then
//! applies 0-5 structural mutations through the hdf5 crate (hostile attribute values and types,
//! deleted attributes and objects, datasets replaced by ones of the wrong type, wrong or empty
//! shape, claimed shapes of up to 2^40 rows, gigabyte chunks, external raw storage; extra
//! event-like members with hostile ids; soft and external links, a FIFO among their targets;
//! groups swapped with datasets; top-level groups removed or added), and sometimes byte-level
//! damage (truncation, flipped bits, overwritten or random bytes).
//!
//! The file is then read as the Pointcloud phase reads it: `TraceReader::open`, every id of
//! `present_event_ids()` through `read_event`, a few absent ids, `read_scalers`. The oracle:
//! every error and warning names the file (and converts to a `PhaseError` that names it), the
//! declared range is bounded by the file's contents, every event read has the declared shapes,
//! and an unmutated file reads back exactly its events.

use crate::{Finding, Outcome};
use hdf5::types::{FixedAscii, VarLenArray, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, Group, H5Type, Location};
use ndarray::{Array2, ArrayD, IxDyn};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use spyral_data::attpc::h5util::hard_links;
use spyral_data::attpc::traces::{
    FRIB_CHANNELS, FRIB_TRACE_LENGTH, GET_COLUMNS, MAX_GET_ROWS, RANGE_MISSING_FACTOR,
    RANGE_MISSING_LIMIT,
};
use spyral_data::attpc::{
    FribData, RawEvent, RunInfo, ScalerRow, TraceError, TraceFormat, TraceReader, TraceWriter,
};
use std::path::Path;
use std::str::FromStr;

/// Whether cases may damage files byte by byte. The in-process smoke test turns it off: the C
/// HDF5 library can crash on such files, which only the supervised worker survives.
pub static BYTE_DAMAGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Runs one case for `format` with `seed` in the empty folder `scratch`.
pub fn run_case(format: TraceFormat, seed: u64, scratch: &Path) -> Result<Outcome, Finding> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut notes = Vec::new();
    let name = *[
        "run_0001.h5",
        "run_0001.h5",
        "run_12345.h5",
        "odd name ü $(x).h5",
    ]
    .choose(&mut rng)
    .unwrap_or(&"run_0001.h5");
    let path = scratch.join(name);
    let finding = |message: String, notes: &[String]| Finding {
        message,
        notes: notes.to_vec(),
    };
    let ids = build_base(&mut rng, format, &path, &mut notes)
        .map_err(|e| finding(format!("harness: cannot write the base file: {e}"), &notes))?;
    let n_mutations = *[0usize, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5]
        .choose(&mut rng)
        .unwrap_or(&1);
    if n_mutations > 0 {
        mutate_structure(&mut rng, format, &path, scratch, n_mutations, &mut notes);
    }
    let damaged = (n_mutations > 0 && rng.random_bool(0.2) || rng.random_bool(0.05))
        && BYTE_DAMAGE.load(std::sync::atomic::Ordering::Relaxed);
    if damaged {
        mutate_bytes(&mut rng, &path, &mut notes);
    }
    let pristine = n_mutations == 0 && !damaged;
    crate::announce(&notes, damaged);
    let (result, elapsed, peak_kib) =
        crate::measured(|| exercise(&path, pristine.then_some(ids.as_slice()), &mut notes));
    match result {
        Ok(class) => Ok(Outcome {
            class,
            notes,
            elapsed,
            peak_kib,
        }),
        Err(message) => Err(Finding { message, notes }),
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle

/// Reads the file as the Pointcloud phase does and checks every outcome. `expected`: the ids
/// of an unmutated file. Returns the outcome class, or what is wrong.
fn exercise(
    path: &Path,
    expected: Option<&[u64]>,
    notes: &mut Vec<String>,
) -> Result<String, String> {
    let name = path.display().to_string();
    // Every error names the file, stays short, and still names it once converted to the
    // phase error the Pointcloud phase returns. Returns the message.
    let check_error = |e: TraceError, during: &str| -> Result<String, String> {
        let msg = e.to_string();
        if !msg.contains(&name) || e.path() != path {
            return Err(format!("{during}: the error does not name the file: {msg}"));
        }
        if msg.len() > 4096 {
            return Err(format!(
                "{during}: an error message of {} bytes (hostile content echoed?): {}...",
                msg.len(),
                msg.chars().take(200).collect::<String>()
            ));
        }
        let phase = spyral_core::PhaseError::from(e);
        if !phase.message().contains(&name) {
            return Err(format!(
                "{during}: the PhaseError does not name the file: {phase}"
            ));
        }
        Ok(msg)
    };
    let reader = match TraceReader::open(path) {
        Ok(r) => r,
        Err(e) => {
            let class = format!("open:{}", kind(&e));
            let msg = check_error(e, "open")?;
            if expected.is_some() {
                return Err(format!("an unmutated file does not open: {msg}"));
            }
            notes.push(format!("open: {msg}"));
            return Ok(class);
        }
    };
    for w in reader.warnings() {
        let text = w.to_string();
        if !text.contains(&name) {
            return Err(format!("a warning does not name the file: {text}"));
        }
        if text.len() > 4096 {
            return Err(format!("a warning of {} bytes", text.len()));
        }
        notes.push(format!("warning: {text}"));
    }
    let present = reader.present_event_ids().to_vec();
    let stored = reader
        .stored_event_ids()
        .map_err(|e| format!("stored_event_ids failed after open: {e}"))?;
    if present.len() > stored.len() || present.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "present ids are not a sorted subset of the stored ids ({} present, {} stored)",
            present.len(),
            stored.len()
        ));
    }
    let bound = RANGE_MISSING_LIMIT
        .max(RANGE_MISSING_FACTOR * present.len() as u64)
        .saturating_add(present.len() as u64);
    if reader.num_events() > bound || reader.last_event() > i64::MAX as u64 {
        return Err(format!(
            "the declared range {}..={} ({} ids) was accepted for {} stored events",
            reader.first_event(),
            reader.last_event(),
            reader.num_events(),
            present.len()
        ));
    }
    if let Some(ids) = expected {
        if present != ids || !reader.warnings().is_empty() {
            return Err(format!(
                "an unmutated file reads ids {present:?} (expected {ids:?}), warnings {:?}",
                reader.warnings()
            ));
        }
    }
    let mut errors = 0usize;
    let mut events = 0usize;
    for &id in &present {
        match reader.read_event(id) {
            Ok(Some(event)) => {
                events += 1;
                if event.id != id {
                    return Err(format!("read_event({id}) returned event {}", event.id));
                }
                let matrices = event
                    .pads
                    .iter()
                    .chain(event.silicon.iter().filter_map(|(_, m)| m));
                for m in matrices {
                    if m.ncols() != GET_COLUMNS || m.nrows() > MAX_GET_ROWS {
                        return Err(format!("event {id}: a GET matrix of shape {:?}", m.dim()));
                    }
                }
                if let Some(f) = &event.frib {
                    if f.traces.dim() != (FRIB_TRACE_LENGTH, FRIB_CHANNELS) {
                        return Err(format!(
                            "event {id}: a FRIB matrix of shape {:?}",
                            f.traces.dim()
                        ));
                    }
                }
            }
            Ok(None) => {
                if expected.is_some() {
                    return Err(format!(
                        "an unmutated file has no data for stored event {id}"
                    ));
                }
            }
            Err(e) => {
                let msg = check_error(e, &format!("read_event({id})"))?;
                if expected.is_some() {
                    return Err(format!("an unmutated file fails to read: {msg}"));
                }
                if errors == 0 {
                    notes.push(format!("read_event({id}): {msg}"));
                }
                errors += 1;
            }
        }
    }
    for id in [u64::MAX, 1 << 63, reader.last_event().saturating_add(1)] {
        if stored.binary_search(&id).is_err() {
            match reader.read_event(id) {
                Ok(None) => {}
                Ok(Some(_)) => return Err(format!("read_event({id}) found an event not stored")),
                Err(e) => {
                    check_error(e, &format!("read_event({id}) of an absent id"))?;
                }
            }
        }
    }
    let scalers = match reader.read_scalers() {
        Ok(s) => s.map_or(0, |rows| rows.len()),
        Err(e) => {
            let msg = check_error(e, "read_scalers")?;
            if expected.is_some() {
                return Err(format!(
                    "an unmutated file fails to read its scalers: {msg}"
                ));
            }
            notes.push(format!("read_scalers: {msg}"));
            errors += 1;
            0
        }
    };
    notes.push(format!(
        "read {events} of {} present events, {scalers} scaler rows, {errors} errors",
        present.len()
    ));
    Ok(if errors > 0 {
        "read:errors".to_string()
    } else {
        "read:ok".to_string()
    })
}

/// The variant name of a trace error, for the statistics.
fn kind(e: &TraceError) -> &'static str {
    match e {
        TraceError::NotFound { .. } => "NotFound",
        TraceError::Io { .. } => "Io",
        TraceError::NotHdf5 { .. } => "NotHdf5",
        TraceError::Damaged { .. } => "Damaged",
        TraceError::Open { .. } => "Open",
        TraceError::UnknownVersion { .. } => "UnknownVersion",
        TraceError::NoKnownFormat { .. } => "NoKnownFormat",
        TraceError::Layout { .. } => "Layout",
        TraceError::EventRange { .. } => "EventRange",
        TraceError::Event { .. } => "Event",
        TraceError::Write { .. } => "Write",
    }
}

// ---------------------------------------------------------------------------------------------
// The valid base file

fn get_matrix(rng: &mut Pcg64, rows: usize) -> Array2<i16> {
    Array2::from_shape_fn((rows, GET_COLUMNS), |(_, c)| match c {
        0 => rng.random_range(0..11),
        1 | 2 => rng.random_range(0..4),
        3 => rng.random_range(0..68),
        4 => rng.random_range(-1..10240),
        _ => rng.random_range(-20..4096),
    })
}

/// Writes a small valid run; returns the ids written.
fn build_base(
    rng: &mut Pcg64,
    format: TraceFormat,
    path: &Path,
    notes: &mut Vec<String>,
) -> Result<Vec<u64>, TraceError> {
    let n = rng.random_range(0..=6usize);
    let mut id = *[0u64, 0, 0, 1, 7, 1000].choose(rng).unwrap_or(&0);
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(id);
        id += if rng.random_bool(0.2) {
            rng.random_range(2..5)
        } else {
            1
        };
    }
    let event_range = match (ids.first(), ids.last(), rng.random_range(0..3)) {
        (Some(&a), Some(&b), 1) => Some((a, b)),
        (Some(&a), Some(&b), 2) => Some((a, b + 1)), // the merger's dropped last event
        _ => None,
    };
    let info = RunInfo {
        event_range,
        frib_run: rng.random(),
        frib_start: rng.random(),
        frib_stop: rng.random(),
        frib_time: rng.random(),
    };
    let mut w = TraceWriter::create(path, format, info)?;
    for &id in &ids {
        let rows = rng.random_range(0..=4);
        let mut e = RawEvent::new(id, get_matrix(rng, rows));
        e.timestamp = rng.random_range(0..1 << 40);
        e.timestamp_other = rng.random_range(0..1 << 40);
        if rng.random_bool(0.3) {
            e.frib = Some(FribData {
                traces: Array2::from_shape_fn((FRIB_TRACE_LENGTH, FRIB_CHANNELS), |_| {
                    rng.random_range(0..4096)
                }),
                trigger: rng.random_range(0..5),
                timestamp: rng.random(),
            });
        }
        if format == TraceFormat::Merger2 && rng.random_bool(0.5) {
            let (front, back) = (rng.random_range(0..3), rng.random_range(0..3));
            e.silicon.upstream_front = rng.random_bool(0.7).then(|| get_matrix(rng, front));
            e.silicon.downstream_back = rng.random_bool(0.5).then(|| get_matrix(rng, back));
        }
        if format == TraceFormat::Harmonizer {
            e.orig_run = rng.random_range(-1..500);
            e.orig_event = rng.random_range(-1..100_000);
        }
        w.write_event(&e)?;
    }
    if format.has_scalers() && rng.random_bool(0.6) {
        let rows: Vec<ScalerRow> = (0..rng.random_range(0..4u64))
            .map(|k| ScalerRow::new(k, std::array::from_fn(|_| rng.random())))
            .collect();
        w.write_scalers(&rows)?;
    }
    w.finish()?;
    notes.push(format!(
        "base: {format}, events {ids:?}, declared range {event_range:?}"
    ));
    Ok(ids)
}

// ---------------------------------------------------------------------------------------------
// Structural mutations

/// Every object of the file reachable through hard links (groups, datasets, attributes).
#[derive(Debug, Default)]
struct Inventory {
    groups: Vec<String>,
    datasets: Vec<String>,
    attrs: Vec<(String, String)>,
}

fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn walk(group: &Group, path: &str, depth: usize, inv: &mut Inventory) {
    inv.groups.push(path.to_string());
    for a in group.attr_names().unwrap_or_default() {
        inv.attrs.push((path.to_string(), a));
    }
    if depth > 6 || inv.groups.len() + inv.datasets.len() > 4000 {
        return;
    }
    let Ok((names, _)) = hard_links(group) else {
        return;
    };
    for n in names {
        let child = join(path, &n);
        if let Ok(g) = group.group(&n) {
            walk(&g, &child, depth + 1, inv);
        } else if let Ok(ds) = group.dataset(&n) {
            for a in ds.attr_names().unwrap_or_default() {
                inv.attrs.push((child.clone(), a));
            }
            inv.datasets.push(child);
        }
    }
}

fn inventory(file: &hdf5::File) -> Inventory {
    let mut inv = Inventory::default();
    walk(file, "/", 0, &mut inv);
    inv
}

/// The location (group or dataset) at `path`.
fn location(file: &hdf5::File, path: &str) -> Option<Location> {
    if let Ok(g) = file.group(path) {
        return Some(Location::clone(&g));
    }
    file.dataset(path).ok().map(|d| Location::clone(&d))
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

/// Applies `n` structural mutations to the file (failures of the hdf5 calls themselves are
/// noted, not findings: the mutation simply did not happen).
fn mutate_structure(
    rng: &mut Pcg64,
    format: TraceFormat,
    path: &Path,
    scratch: &Path,
    n: usize,
    notes: &mut Vec<String>,
) {
    let file = match hdf5::File::open_rw(path) {
        Ok(f) => f,
        Err(e) => {
            notes.push(format!("cannot reopen for mutation: {e}"));
            return;
        }
    };
    for _ in 0..n {
        let inv = inventory(&file);
        let r = rng.random_range(0..100);
        // A panic of the hdf5 crate while building a hostile object is the harness's problem,
        // not a finding: the mutation is noted as failed.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match r {
            0..30 => hostile_attr(rng, &file, &inv, format),
            30..37 => delete_attr(rng, &file, &inv),
            37..46 => delete_object(rng, &file, &inv),
            46..68 => replace_dataset(rng, &file, &inv, scratch),
            68..80 => add_member(rng, &file, format),
            80..86 => add_link(rng, &file, &inv, path, scratch),
            86..91 => swap_kind(rng, &file, &inv),
            _ => top_level(rng, &file, format),
        }));
        match result {
            Ok(Ok(desc)) => notes.push(format!("mutation: {desc}")),
            Ok(Err(e)) => notes.push(format!("mutation failed: {e}")),
            Err(_) => notes.push("mutation panicked in the hdf5 crate (skipped)".into()),
        }
    }
    if let Err(e) = file.flush() {
        notes.push(format!("flush after mutation failed: {e}"));
    }
}

/// Interesting integers: boundaries of every width, huge values, and values near `near`.
fn hostile_int(rng: &mut Pcg64, near: &[u64]) -> i128 {
    const FIXED: [i128; 26] = [
        0,
        1,
        2,
        -1,
        -2,
        127,
        128,
        255,
        256,
        32_767,
        32_768,
        65_535,
        65_536,
        i32::MAX as i128,
        1 << 31,
        (1 << 32) - 1,
        1 << 32,
        1 << 53,
        (1 << 53) + 1,
        1 << 62,
        i64::MAX as i128,
        1 << 63,
        (1 << 63) + 1,
        u64::MAX as i128,
        i64::MIN as i128,
        i32::MIN as i128,
    ];
    match rng.random_range(0..10) {
        0..5 => *FIXED.choose(rng).unwrap_or(&0),
        5..8 if !near.is_empty() => {
            let base = *near.choose(rng).unwrap_or(&0) as i128;
            let delta = *[1i128, 2, 3, 10, 1000, 9_999, 10_001, 100_000, 1 << 31]
                .choose(rng)
                .unwrap_or(&1);
            if rng.random_bool(0.5) {
                base + delta
            } else {
                base - delta
            }
        }
        8 => rng.random::<u64>() as i128,
        _ => rng.random_range(0..2000),
    }
}

/// Writes attribute `name` on `loc` (replacing it) with a hostile value of a random type.
fn write_hostile_attr(
    rng: &mut Pcg64,
    loc: &Location,
    name: &str,
    near: &[u64],
) -> hdf5::Result<String> {
    if loc.attr_names()?.iter().any(|n| n == name) {
        loc.delete_attr(name)?;
    }
    let v = hostile_int(rng, near);
    let scalar = |loc: &Location| loc.new_attr_builder();
    let desc = match rng.random_range(0..17) {
        0 => {
            scalar(loc).with_data(&[v as u8]).create(name)?;
            format!("u8 {}", v as u8)
        }
        1 => {
            scalar(loc).with_data(&[v as i8]).create(name)?;
            format!("i8 {}", v as i8)
        }
        2 => {
            loc.new_attr::<i16>()
                .create(name)?
                .write_scalar(&(v as i16))?;
            format!("i16 {}", v as i16)
        }
        3 => {
            loc.new_attr::<u32>()
                .create(name)?
                .write_scalar(&(v as u32))?;
            format!("u32 {}", v as u32)
        }
        4 => {
            loc.new_attr::<i32>()
                .create(name)?
                .write_scalar(&(v as i32))?;
            format!("i32 {}", v as i32)
        }
        5 | 6 => {
            loc.new_attr::<u64>()
                .create(name)?
                .write_scalar(&(v as u64))?;
            format!("u64 {}", v as u64)
        }
        7 | 8 => {
            loc.new_attr::<i64>()
                .create(name)?
                .write_scalar(&(v as i64))?;
            format!("i64 {}", v as i64)
        }
        9 => {
            let f = *[
                f64::NAN,
                f64::INFINITY,
                -0.0,
                1e300,
                2.5,
                9.3e18,
                1.8446744073709552e19,
                -1.0,
                v as f64,
            ]
            .choose(rng)
            .unwrap_or(&0.0);
            loc.new_attr::<f64>().create(name)?.write_scalar(&f)?;
            format!("f64 {f}")
        }
        10 => {
            loc.new_attr::<f32>()
                .create(name)?
                .write_scalar(&(v as f32))?;
            format!("f32 {}", v as f32)
        }
        11 => {
            loc.new_attr::<bool>().create(name)?.write_scalar(&true)?;
            "bool".to_string()
        }
        12 => {
            let s = hostile_string(rng);
            let text: String = s.chars().filter(|c| *c != '\0').collect();
            let vs =
                VarLenUnicode::from_str(&text).map_err(|e| hdf5::Error::from(e.to_string()))?;
            loc.new_attr::<VarLenUnicode>()
                .create(name)?
                .write_scalar(&vs)?;
            format!("string of {} chars", text.len())
        }
        13 => {
            let s: String = hostile_string(rng)
                .chars()
                .filter(|c| c.is_ascii() && *c != '\0')
                .take(60)
                .collect();
            let fs =
                FixedAscii::<64>::from_ascii(&s).map_err(|e| hdf5::Error::from(e.to_string()))?;
            loc.new_attr::<FixedAscii<64>>()
                .create(name)?
                .write_scalar(&fs)?;
            format!("fixed string {s:?}")
        }
        14 => {
            let vals: Vec<u64> = (0..rng.random_range(2..5))
                .map(|_| hostile_int(rng, near) as u64)
                .collect();
            scalar(loc).with_data(&vals).create(name)?;
            format!("u64 array {vals:?}")
        }
        15 => {
            loc.new_attr::<i64>().shape(0).create(name)?;
            "empty i64 array".to_string()
        }
        _ => {
            let vs = VarLenAscii::from_ascii("12").map_err(|e| hdf5::Error::from(e.to_string()))?;
            loc.new_attr::<VarLenAscii>()
                .create(name)?
                .write_scalar(&vs)?;
            "ascii string \"12\"".to_string()
        }
    };
    Ok(desc)
}

/// Strings for version attributes and names: other formats' versions, near misses, long,
/// control characters, unicode.
fn hostile_string(rng: &mut Pcg64) -> String {
    let versions = [
        "libattpc_merger:1.0",
        "synchronizer:0.1.0",
        "harmonizer:0.1.0",
        "libattpc_merger:2.0",
    ];
    let v = versions.choose(rng).unwrap_or(&versions[0]);
    match rng.random_range(0..9) {
        0 => v.to_string(),
        1 => format!("{v}\0"),
        2 => format!("{v} "),
        3 => format!("{v}\n"),
        4 => String::new(),
        5 => "x".repeat(rng.random_range(1000..200_000)),
        6 => "\u{202e}\u{1b}[31m\u{7f}\u{85}é".to_string(),
        7 => v.to_uppercase(),
        _ => "libattpc_merger:9.9".to_string(),
    }
}

/// The stored ids, for values near them.
fn ids_of(inv: &Inventory) -> Vec<u64> {
    inv.groups
        .iter()
        .chain(&inv.datasets)
        .filter_map(|p| {
            let last = split(p).1;
            let digits: String = last.chars().filter(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .collect()
}

fn hostile_attr(
    rng: &mut Pcg64,
    file: &hdf5::File,
    inv: &Inventory,
    format: TraceFormat,
) -> hdf5::Result<String> {
    let near = ids_of(inv);
    // Mostly the attributes the reader interprets, sometimes any attribute.
    let (obj, name) = if rng.random_bool(0.6) || inv.attrs.is_empty() {
        let events = inv
            .groups
            .iter()
            .filter(|g| g.starts_with("/events/event_"))
            .collect::<Vec<_>>();
        let event = events
            .choose(rng)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "/events".into());
        let choices: Vec<(String, &str)> = match format {
            TraceFormat::Legacy => vec![("/".into(), "version"), ("/meta".into(), "min_event")],
            _ => vec![
                ("/events".into(), "min_event"),
                ("/events".into(), "max_event"),
                ("/events".into(), "max_event"),
                ("/events".into(), "version"),
                ("/scalers".into(), "min_event"),
                ("/scalers".into(), "max_event"),
                (event.clone(), "orig_run"),
                (event.clone(), "orig_event"),
                (format!("{event}/get_traces"), "timestamp"),
                (format!("{event}/get"), "timestamp"),
                (format!("{event}/frib_physics"), "timestamp"),
            ],
        };
        let (o, n) = choices.choose(rng).cloned().unwrap_or(("/".into(), "x"));
        (o, n.to_string())
    } else {
        inv.attrs
            .choose(rng)
            .cloned()
            .unwrap_or(("/".into(), "x".into()))
    };
    if format == TraceFormat::Legacy && rng.random_bool(0.5) {
        return hostile_meta(rng, file, &near);
    }
    let loc = location(file, &obj).ok_or_else(|| hdf5::Error::from(format!("no object {obj}")))?;
    let what = if name == "version" {
        if loc.attr_names()?.iter().any(|n| n == "version") {
            loc.delete_attr("version")?;
        }
        let s: String = hostile_string(rng).chars().filter(|c| *c != '\0').collect();
        let vs = VarLenUnicode::from_str(&s).map_err(|e| hdf5::Error::from(e.to_string()))?;
        loc.new_attr::<VarLenUnicode>()
            .create("version")?
            .write_scalar(&vs)?;
        format!("string of {} chars", s.len())
    } else {
        write_hostile_attr(rng, &loc, &name, &near)?
    };
    Ok(format!("attribute {obj} {name} := {what}"))
}

/// Rewrites the legacy `/meta/meta` with hostile values, type or shape.
fn hostile_meta(rng: &mut Pcg64, file: &hdf5::File, near: &[u64]) -> hdf5::Result<String> {
    let meta = file.group("meta")?;
    if meta.link_exists("meta") {
        meta.unlink("meta")?;
    }
    let vals: Vec<i128> = (0..4).map(|_| hostile_int(rng, near)).collect();
    let len = *[4usize, 4, 4, 3, 2, 0, 5].choose(rng).unwrap_or(&4);
    let mut v4: Vec<i128> = vals.iter().copied().cycle().take(len).collect();
    if rng.random_bool(0.5) && len >= 3 {
        v4[0] = near.iter().min().copied().unwrap_or(0) as i128;
    }
    match rng.random_range(0..5) {
        0 | 1 => {
            let d: Vec<u64> = v4.iter().map(|&x| x as u64).collect();
            meta.new_dataset_builder().with_data(&d).create("meta")?;
            Ok(format!("/meta/meta := u64 {d:?}"))
        }
        2 => {
            let d: Vec<i64> = v4.iter().map(|&x| x as i64).collect();
            meta.new_dataset_builder().with_data(&d).create("meta")?;
            Ok(format!("/meta/meta := i64 {d:?}"))
        }
        3 => {
            let d: Vec<f64> = v4.iter().map(|&x| x as f64).collect();
            meta.new_dataset_builder().with_data(&d).create("meta")?;
            Ok(format!("/meta/meta := f64 {d:?}"))
        }
        _ => {
            let rows = *[1usize << 40, 1 << 31, 1 << 20]
                .choose(rng)
                .unwrap_or(&(1 << 20));
            meta.new_dataset::<u64>()
                .chunk(vec![1024usize])
                .shape(vec![rows])
                .create("meta")?;
            Ok(format!(
                "/meta/meta := unwritten u64 of claimed length {rows}"
            ))
        }
    }
}

fn delete_attr(rng: &mut Pcg64, file: &hdf5::File, inv: &Inventory) -> hdf5::Result<String> {
    let (obj, name) = inv
        .attrs
        .choose(rng)
        .cloned()
        .ok_or_else(|| hdf5::Error::from("no attributes"))?;
    let loc = location(file, &obj).ok_or_else(|| hdf5::Error::from(format!("no object {obj}")))?;
    loc.delete_attr(&name)?;
    Ok(format!("deleted attribute {obj} {name}"))
}

fn delete_object(rng: &mut Pcg64, file: &hdf5::File, inv: &Inventory) -> hdf5::Result<String> {
    let all: Vec<&String> = inv
        .groups
        .iter()
        .chain(&inv.datasets)
        .filter(|p| *p != "/")
        .collect();
    let p = all
        .choose(rng)
        .ok_or_else(|| hdf5::Error::from("nothing to delete"))?;
    let (parent, name) = split(p);
    file.group(parent)?.unlink(name)?;
    Ok(format!("deleted {p}"))
}

/// Writes a dataset of element type `T`, shape `shape`, from `values` (cycled).
fn write_ds<T: H5Type + Clone>(
    g: &Group,
    name: &str,
    shape: &[usize],
    values: &[T],
) -> hdf5::Result<Dataset> {
    let n: usize = shape.iter().product();
    let data: Vec<T> = values.iter().cloned().cycle().take(n).collect();
    let arr =
        ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| hdf5::Error::from(e.to_string()))?;
    g.new_dataset_builder().with_data(&arr).create(name)
}

/// Creates dataset `name` in `g` as one of many hostile variants; `like`: the replaced one's
/// role (`get`, `frib`, `977`, `scaler`, other).
fn hostile_dataset(
    rng: &mut Pcg64,
    g: &Group,
    name: &str,
    like: &str,
    scratch: &Path,
) -> hdf5::Result<String> {
    let ints: Vec<i64> = (0..64).map(|_| hostile_int(rng, &[]) as i64).collect();
    let small_shape = |rng: &mut Pcg64| -> Vec<usize> {
        match like {
            "get" => vec![
                *[0usize, 1, 2, 3].choose(rng).unwrap_or(&1),
                *[517usize, 517, 516, 518, 0, 1].choose(rng).unwrap_or(&517),
            ],
            "frib" => {
                let shapes = [
                    vec![2048, 8],
                    vec![2048, 7],
                    vec![2047, 8],
                    vec![8, 2048],
                    vec![2048],
                ];
                shapes.choose(rng).cloned().unwrap_or_default()
            }
            "977" | "scaler" => vec![*[0usize, 1, 10, 11, 12, 2].choose(rng).unwrap_or(&1)],
            _ => vec![rng.random_range(0..4)],
        }
    };
    let r = rng.random_range(0..12);
    Ok(match r {
        0..3 => {
            // Right role, plausible or slightly wrong shape, hostile values, integer types.
            let shape = small_shape(rng);
            match rng.random_range(0..4) {
                0 => {
                    let v: Vec<i16> = ints.iter().map(|&x| x as i16).collect();
                    write_ds(g, name, &shape, &v)?;
                }
                1 => {
                    let v: Vec<u16> = ints.iter().map(|&x| x as u16).collect();
                    write_ds(g, name, &shape, &v)?;
                }
                2 => {
                    write_ds(g, name, &shape, &ints)?;
                }
                _ => {
                    let v: Vec<u64> = ints.iter().map(|&x| x as u64).collect();
                    write_ds(g, name, &shape, &v)?;
                }
            }
            format!("{name} := integers of shape {shape:?}")
        }
        3 | 4 => {
            // Wrong element type.
            let shape = small_shape(rng);
            match rng.random_range(0..5) {
                0 => {
                    let v: Vec<f64> = ints.iter().map(|&x| x as f64).collect();
                    write_ds(g, name, &shape, &v)?;
                    format!("{name} := f64 of shape {shape:?}")
                }
                1 => {
                    write_ds(g, name, &shape, &[true, false])?;
                    format!("{name} := bool of shape {shape:?}")
                }
                2 => {
                    let s = VarLenUnicode::from_str("517")
                        .map_err(|e| hdf5::Error::from(e.to_string()))?;
                    write_ds(g, name, &shape, &[s])?;
                    format!("{name} := strings of shape {shape:?}")
                }
                3 => {
                    write_ds(g, name, &shape, &[[1i16, 2]])?;
                    format!("{name} := [i16; 2] arrays of shape {shape:?}")
                }
                _ => {
                    let v = VarLenArray::from_slice(&[1i16, 2, 3]);
                    write_ds(g, name, &shape, &[v])?;
                    format!("{name} := variable-length arrays of shape {shape:?}")
                }
            }
        }
        5 => {
            // Scalar or empty.
            if rng.random_bool(0.5) {
                g.new_dataset::<i64>()
                    .shape(())
                    .create(name)?
                    .write_scalar(&(ints[0]))?;
                format!("{name} := scalar i64 {}", ints[0])
            } else {
                let shape = [vec![0usize], vec![0, 517], vec![0, 0], vec![0, 8]]
                    .choose(rng)
                    .cloned()
                    .unwrap_or_default();
                g.new_dataset::<i16>().shape(shape.clone()).create(name)?;
                format!("{name} := empty of shape {shape:?}")
            }
        }
        6..9 => {
            // A huge claimed shape, never written (chunked: nothing stored).
            // (The hdf5 crate's builder multiplies the dimensions unchecked, so the claimed
            // shapes stay below 2^64 elements.)
            let rows = *[MAX_GET_ROWS, MAX_GET_ROWS + 1, 1 << 20, 1 << 31, 1 << 40]
                .choose(rng)
                .unwrap_or(&(1 << 40));
            let shape = match (like, rng.random_range(0..5)) {
                ("get", 0..3) => vec![rows, GET_COLUMNS],
                (_, 0) => vec![rows],
                (_, 1) => vec![rows, 8],
                (_, 2) => vec![1 << 20, 1 << 20, 1 << 20],
                (_, 3) => vec![1 << 62],
                _ => vec![rows, GET_COLUMNS],
            };
            // Large chunks, or tiny ones (a read then walks millions of absent chunks).
            let tiny = rng.random_bool(0.3);
            let chunk: Vec<usize> = shape
                .iter()
                .map(|&d| if tiny { 1 } else { d.clamp(1, 517) })
                .collect();
            g.new_dataset::<i16>()
                .chunk(chunk)
                .shape(shape.clone())
                .create(name)?;
            format!("{name} := unwritten i16 of claimed shape {shape:?}")
        }
        9 if rng.random_bool(0.3) => {
            // A small dataset with a gigantic (compressed) chunk that exists on disk.
            let cols = if like == "get" { GET_COLUMNS } else { 8 };
            // Just over the readers' chunk limit (writing it costs the harness as much).
            let chunk_rows = (spyral_data::attpc::h5util::MAX_CHUNK_BYTES / (2 * cols)) + 1;
            let ds = g
                .new_dataset::<i16>()
                .chunk(vec![chunk_rows, cols])
                .deflate(9)
                .shape(vec![hdf5::Extent::from(2..), hdf5::Extent::from(cols)])
                .create(name)?;
            ds.write(&Array2::<i16>::zeros((2, cols)))?;
            format!("{name} := 2 rows in a deflated chunk of {chunk_rows} rows")
        }
        9 | 10 => {
            // External raw storage: /dev/zero, a missing file or a FIFO.
            let fifo = scratch.join("fifo");
            let _ = rustix::fs::mkfifoat(
                rustix::fs::CWD,
                &fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
            );
            let target = [
                "/dev/zero".to_string(),
                "/nonexistent/raw.bin".to_string(),
                fifo.display().to_string(),
            ]
            .choose(rng)
            .cloned()
            .unwrap_or_default();
            let shape = if like == "get" {
                vec![4, GET_COLUMNS]
            } else {
                vec![2048, 8]
            };
            let bytes = shape.iter().product::<usize>() * 2;
            g.new_dataset::<i16>()
                .external(&target, 0, bytes)
                .shape(shape)
                .create(name)?;
            format!("{name} := external raw storage in {target}")
        }
        _ => {
            // A big but honest matrix at the row limit (34 MB to read), unwritten, in chunks of
            // 64 rows or of one value each (17 million absent chunks).
            let shape = vec![MAX_GET_ROWS, GET_COLUMNS];
            let chunk = if rng.random_bool(0.5) {
                vec![64, GET_COLUMNS]
            } else {
                vec![1, 1]
            };
            g.new_dataset::<i16>()
                .chunk(chunk.clone())
                .shape(shape.clone())
                .create(name)?;
            format!("{name} := unwritten i16 of shape {shape:?} in chunks {chunk:?} (at the limit)")
        }
    })
}

/// The role of a dataset, from its name.
fn role(name: &str) -> &'static str {
    if name == "977" || name.ends_with("_977") {
        "977"
    } else if name == "1903" || name.ends_with("_1903") {
        "frib"
    } else if name.starts_with("scaler") || name.starts_with("event_") || name == "meta" {
        "scaler"
    } else {
        "get"
    }
}

fn replace_dataset(
    rng: &mut Pcg64,
    file: &hdf5::File,
    inv: &Inventory,
    scratch: &Path,
) -> hdf5::Result<String> {
    let p = inv
        .datasets
        .choose(rng)
        .ok_or_else(|| hdf5::Error::from("no datasets"))?;
    let (parent, name) = split(p);
    let g = file.group(parent)?;
    g.unlink(name)?;
    let desc = hostile_dataset(rng, &g, name, role(name), scratch)?;
    Ok(format!("{parent}: {desc}"))
}

/// Adds an event-like member with a hostile id: a group holding a valid-looking event, an
/// empty group, a dataset, or a hostile dataset.
fn add_member(rng: &mut Pcg64, file: &hdf5::File, format: TraceFormat) -> hdf5::Result<String> {
    let id = match rng.random_range(0..8) {
        0 => u64::MAX.to_string(),
        1 => (1u64 << 63).to_string(),
        2 => (i64::MAX as u64).to_string(),
        3 => format!("{}", rng.random_range(0..20u64)),
        4 => "007".to_string(),
        5 => "+5".to_string(),
        6 => "-1".to_string(),
        _ => rng.random::<u64>().to_string(),
    };
    let (group, name, like) = match format {
        TraceFormat::Legacy => match rng.random_range(0..4) {
            0 => ("/get", format!("evt{id}_data"), "get"),
            1 => ("/get", format!("evt{id}_header"), "other"),
            2 => ("/frib/evt", format!("evt{id}_1903"), "frib"),
            _ => ("/frib/evt", format!("evt{id}_977"), "977"),
        },
        _ => {
            if rng.random_bool(0.2) {
                ("/scalers", format!("event_{id}"), "scaler")
            } else {
                ("/events", format!("event_{id}"), "event")
            }
        }
    };
    let g = file.group(group)?;
    if g.link_exists(&name) {
        g.unlink(&name)?;
    }
    if like == "event" {
        let ev = g.create_group(&name)?;
        match (format, rng.random_range(0..3)) {
            (_, 0) => return Ok(format!("added empty group {group}/{name}")),
            (TraceFormat::Merger2, _) => {
                let get = ev.create_group("get")?;
                write_ds(&get, "pads", &[1, GET_COLUMNS], &[1i16])?;
            }
            _ => {
                write_ds(&ev, "get_traces", &[1, GET_COLUMNS], &[1i16])?;
            }
        }
        return Ok(format!("added event group {group}/{name}"));
    }
    if rng.random_bool(0.5) {
        let shape: Vec<usize> = match like {
            "get" => vec![1, GET_COLUMNS],
            "frib" => vec![FRIB_TRACE_LENGTH, FRIB_CHANNELS],
            "scaler" => vec![11],
            _ => vec![3],
        };
        write_ds(&g, &name, &shape, &[3u16])?;
        return Ok(format!("added plausible dataset {group}/{name}"));
    }
    let desc = hostile_dataset(rng, &g, &name, like, Path::new("/nonexistent"))?;
    Ok(format!("added {group}: {desc}"))
}

fn add_link(
    rng: &mut Pcg64,
    file: &hdf5::File,
    inv: &Inventory,
    path: &Path,
    scratch: &Path,
) -> hdf5::Result<String> {
    let parent = inv
        .groups
        .iter()
        .filter(|g| {
            *g == "/"
                || g.starts_with("/events")
                || g.starts_with("/get")
                || g.starts_with("/frib")
                || g.starts_with("/scalers")
        })
        .collect::<Vec<_>>()
        .choose(rng)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "/".into());
    let g = file.group(&parent)?;
    let names = [
        "event_0",
        "event_1",
        "get_traces",
        "get",
        "pads",
        "frib_physics",
        "1903",
        "977",
        "evt0_data",
        "events",
        "meta",
        "scalers",
        "event_9",
    ];
    let name = *names.choose(rng).unwrap_or(&"event_0");
    if g.link_exists(name) {
        g.unlink(name)?;
    }
    let desc = match rng.random_range(0..5) {
        0 => {
            g.link_soft("/nowhere/at/all", name)?;
            "dangling soft link".to_string()
        }
        1 => {
            g.link_soft(&join(&parent, name), name)?;
            "soft link to itself".to_string()
        }
        2 => {
            let target = inv
                .groups
                .choose(rng)
                .cloned()
                .unwrap_or_else(|| "/".into());
            g.link_soft(&target, name)?;
            format!("soft link to {target}")
        }
        3 => {
            let fifo = scratch.join("fifo");
            let _ = rustix::fs::mkfifoat(
                rustix::fs::CWD,
                &fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
            );
            let target = [
                fifo.display().to_string(),
                "/nonexistent.h5".to_string(),
                path.display().to_string(),
                "/dev/zero".to_string(),
            ]
            .choose(rng)
            .cloned()
            .unwrap_or_default();
            g.link_external(&target, "/events", name)?;
            format!("external link to {target}")
        }
        _ => {
            g.link_hard("/", name)?;
            "hard link to the root (a cycle)".to_string()
        }
    };
    Ok(format!("{parent}/{name} := {desc}"))
}

/// Replaces a group by a dataset of the same name or a dataset by a group.
fn swap_kind(rng: &mut Pcg64, file: &hdf5::File, inv: &Inventory) -> hdf5::Result<String> {
    let all: Vec<&String> = inv
        .groups
        .iter()
        .chain(&inv.datasets)
        .filter(|p| *p != "/")
        .collect();
    let p = all
        .choose(rng)
        .ok_or_else(|| hdf5::Error::from("nothing to swap"))?;
    let (parent, name) = split(p);
    let g = file.group(parent)?;
    let was_group = g.group(name).is_ok();
    g.unlink(name)?;
    if was_group {
        write_ds(&g, name, &[2, GET_COLUMNS], &[5i16])?;
        Ok(format!("group {p} := dataset"))
    } else {
        g.create_group(name)?;
        Ok(format!("dataset {p} := empty group"))
    }
}

/// Top-level changes: remove the format's group, add the other format's group.
fn top_level(rng: &mut Pcg64, file: &hdf5::File, format: TraceFormat) -> hdf5::Result<String> {
    let main = if format == TraceFormat::Legacy {
        "meta"
    } else {
        "events"
    };
    match rng.random_range(0..4) {
        0 => {
            file.unlink(main)?;
            Ok(format!("deleted /{main}"))
        }
        1 => {
            if !file.link_exists("meta") {
                file.create_group("meta")?;
            }
            Ok("added an empty /meta group".to_string())
        }
        2 => {
            if !file.link_exists("events") {
                let g = file.create_group("events")?;
                let vs = VarLenUnicode::from_str("libattpc_merger:2.0")
                    .map_err(|e| hdf5::Error::from(e.to_string()))?;
                g.new_attr::<VarLenUnicode>()
                    .create("version")?
                    .write_scalar(&vs)?;
            }
            Ok("added an /events group".to_string())
        }
        _ => {
            file.unlink(main)?;
            write_ds(file, main, &[4], &[1u64])?;
            Ok(format!("/{main} := a dataset"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Byte-level damage

fn mutate_bytes(rng: &mut Pcg64, path: &Path, notes: &mut Vec<String>) {
    let Ok(mut bytes) = std::fs::read(path) else {
        return;
    };
    let len = bytes.len();
    let desc = match rng.random_range(0..7) {
        0 => {
            let cut = rng.random_range(0..=len);
            bytes.truncate(cut);
            format!("truncated to {cut} of {len} bytes")
        }
        1 | 2 => {
            let k = rng.random_range(1..=16);
            for _ in 0..k {
                if len > 0 {
                    let i = rng.random_range(0..len);
                    bytes[i] ^= 1 << rng.random_range(0..8);
                }
            }
            format!("flipped {k} bits")
        }
        3 => {
            if len > 0 {
                let start = rng.random_range(0..len);
                let n = rng.random_range(1..=64.min(len - start).max(1));
                let fill = *[0x00u8, 0xff].choose(rng).unwrap_or(&0);
                for b in bytes.iter_mut().skip(start).take(n) {
                    *b = if rng.random_bool(0.5) {
                        fill
                    } else {
                        rng.random()
                    };
                }
                format!("overwrote {n} bytes at {start}")
            } else {
                "nothing to overwrite".to_string()
            }
        }
        4 => {
            let extra: Vec<u8> = (0..rng.random_range(1..4096))
                .map(|_| rng.random())
                .collect();
            bytes.extend_from_slice(&extra);
            format!("appended {} random bytes", extra.len())
        }
        5 => {
            // Keep the signature and superblock start, randomise the rest.
            let keep = 8.min(len);
            for b in bytes.iter_mut().skip(keep) {
                *b = rng.random();
            }
            "random bytes after the HDF5 signature".to_string()
        }
        _ => {
            let n = rng.random_range(0..8192);
            bytes = (0..n).map(|_| rng.random()).collect();
            format!("replaced by {n} random bytes")
        }
    };
    if std::fs::write(path, &bytes).is_ok() {
        notes.push(format!("bytes: {desc}"));
    }
}
