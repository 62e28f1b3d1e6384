//! Integration tests of the AT-TPC data layer: every trace format written by `TraceWriter` reads
//! back identically through `TraceReader` (events, FRIB data, silicon, original ids, scalers, the
//! inclusive event range), damaged or foreign files give precise errors, and pad maps load from
//! CSV (any line ending) or are the built-in AT-TPC plane (checked against its derived table,
//! `data/data/padplane.csv`) with exact triangle lookups.

use hdf5::types::{FixedAscii, VarLenUnicode};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use spyral_data::attpc::padmap::{hardware_id_for_pad, NUM_PADS, NUM_SMALL_PADS};
use spyral_data::attpc::{
    FribData, PadMap, PadMapError, PadParameters, RawEvent, RunInfo, ScalerRow, SiliconTraces,
    TraceError, TraceFormat, TraceReader, TraceWriter, LEGACY_BEAM_PADS,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

const RUN: i64 = 7;
/// Event ids written: 0..=5 without 3 (a hole inside the declared range).
const IDS: [u64; 5] = [0, 1, 2, 4, 5];

fn get_matrix(rng: &mut Pcg64, rows: usize, columns: usize) -> Array2<i16> {
    let mut m = Array2::<i16>::zeros((rows, columns));
    for r in 0..rows {
        let pad = rng.random_range(0..NUM_PADS as u16);
        let hw = hardware_id_for_pad(pad).unwrap();
        m[[r, 0]] = hw.cobo.into();
        m[[r, 1]] = hw.asad.into();
        m[[r, 2]] = hw.aget.into();
        m[[r, 3]] = hw.channel.into();
        m[[r, 4]] = pad as i16;
        for c in 5..columns {
            m[[r, c]] = rng.random_range(-50..4096);
        }
    }
    m
}

fn frib(rng: &mut Pcg64, trigger: u16) -> FribData {
    FribData {
        traces: Array2::from_shape_fn((2048, 8), |_| rng.random_range(0..4096u16)),
        trigger,
        timestamp: rng.random_range(0..1_000_000),
    }
}

/// The events of the test run for `format` (as written).
fn events(format: TraceFormat) -> Vec<RawEvent> {
    let mut rng = Pcg64::seed_from_u64(99);
    IDS.iter()
        .map(|&id| {
            let rows = if id == 2 { 0 } else { rng.random_range(1..40) };
            let mut e = RawEvent::new(id, get_matrix(&mut rng, rows, 517));
            e.timestamp = 1000 * id + 17;
            e.timestamp_other = 5 * id;
            if id == 1 || id == 4 {
                e.frib = Some(frib(&mut rng, if id == 1 { 2 } else { 1 }));
            }
            if format == TraceFormat::Merger2 && id != 0 {
                e.silicon = SiliconTraces {
                    upstream_front: Some(get_matrix(&mut rng, 3, 517)),
                    upstream_back: Some(get_matrix(&mut rng, 0, 517)),
                    downstream_front: None,
                    downstream_back: (id == 4).then(|| get_matrix(&mut rng, 2, 517)),
                };
            }
            if format == TraceFormat::Harmonizer {
                e.orig_run = 40 + id as i64;
                e.orig_event = 1000 + id as i64;
            }
            e
        })
        .collect()
}

/// What the reader should return for a written event.
fn expected(format: TraceFormat, written: &RawEvent) -> RawEvent {
    let mut e = written.clone();
    if format != TraceFormat::Harmonizer {
        e.orig_run = RUN;
        e.orig_event = e.id as i64;
    }
    if format == TraceFormat::Legacy {
        if let Some(f) = &mut e.frib {
            f.timestamp = 0; // legacy files keep no FRIB timestamp
        }
    }
    e
}

fn scalers() -> Vec<ScalerRow> {
    (0..4u64)
        .map(|k| {
            let mut values = [0u32; 11];
            for (i, v) in values.iter_mut().enumerate() {
                *v = (k as u32 + 1) * 1000 + i as u32;
            }
            let mut row = ScalerRow::new(k, values);
            row.start_offset = k as u32;
            row.stop_offset = k as u32 + 10;
            row.timestamp = 77 + k as u32;
            row.incremental = 1;
            row
        })
        .collect()
}

fn write_run(dir: &Path, format: TraceFormat, info: RunInfo) -> PathBuf {
    let dest = dir.join(format!("run_{RUN:04}.h5"));
    let partial = dir.join(format!(".run_{RUN:04}.h5.partial"));
    let mut w = TraceWriter::create(&dest, format, info).unwrap();
    for e in events(format) {
        w.write_event(&e).unwrap();
    }
    if format.has_scalers() {
        w.write_scalers(&scalers()).unwrap();
    } else {
        let err = w.write_scalers(&scalers()).unwrap_err();
        assert!(err.to_string().contains("no scalers"), "{err}");
    }
    assert!(partial.exists(), "the data goes to the hidden partial file");
    assert!(!dest.exists(), "the final name appears only on finish");
    let done = w.finish().unwrap();
    assert_eq!(done, dest);
    assert!(dest.exists() && !partial.exists());
    dest
}

#[test]
fn every_format_round_trips() {
    for format in TraceFormat::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = write_run(dir.path(), format, RunInfo::default());
        let reader = TraceReader::open(&path).unwrap();
        assert_eq!(reader.format(), format);
        assert_eq!(reader.version(), format.version_string());
        assert_eq!(reader.run_number(), RUN);
        assert_eq!((reader.first_event(), reader.last_event()), (0, 5));
        assert_eq!(
            reader.event_ids(),
            0..=5,
            "{format}: the range includes the last event"
        );
        assert_eq!(reader.num_events(), 6);
        assert_eq!(reader.stored_event_ids().unwrap(), IDS.to_vec());

        let written = events(format);
        let mut read = Vec::new();
        for id in reader.event_ids() {
            match reader.read_event(id).unwrap() {
                Some(e) => read.push(e),
                None => assert_eq!(id, 3, "{format}: only event 3 is missing"),
            }
        }
        assert_eq!(read.len(), written.len());
        for (got, w) in read.iter().zip(&written) {
            assert_eq!(*got, expected(format, w), "{format}: event {}", w.id);
        }
        // Presence checks spelled out, in case RawEvent equality ever loosens.
        assert!(read[1].frib.is_some() && read[0].frib.is_none());
        assert_eq!(read[1].frib.as_ref().unwrap().trigger, 2);
        assert_eq!(read[2].pads.as_ref().unwrap().dim(), (0, 517));
        if format == TraceFormat::Merger2 {
            assert!(read[0].silicon.is_empty());
            assert!(read[3].silicon.downstream_back.is_some());
            assert!(read[3].silicon.downstream_front.is_none());
        } else {
            assert!(read.iter().all(|e| e.silicon.is_empty()));
        }
        if format == TraceFormat::Harmonizer {
            assert_eq!((read[4].orig_run, read[4].orig_event), (45, 1005));
        } else {
            assert_eq!((read[4].orig_run, read[4].orig_event), (RUN, 5));
        }

        let got = reader.read_scalers().unwrap();
        if format.has_scalers() {
            let mut want = scalers();
            if format == TraceFormat::Legacy {
                for r in &mut want {
                    *r = ScalerRow::new(r.event, r.values);
                }
            }
            assert_eq!(got.unwrap(), want, "{format}");
        } else {
            assert!(got.is_none());
        }
    }
}

#[test]
fn explicit_range_and_run_number() {
    let dir = tempfile::tempdir().unwrap();
    let info = RunInfo {
        event_range: Some((0, 7)),
        frib_run: 7,
        ..RunInfo::default()
    };
    let path = write_run(dir.path(), TraceFormat::Merger1, info);
    let mut reader = TraceReader::open(&path).unwrap();
    assert_eq!(reader.event_ids(), 0..=7);
    assert!(reader.read_event(7).unwrap().is_none());
    assert!(reader.read_event(1000).unwrap().is_none());
    reader.set_run_number(12);
    assert_eq!(reader.read_event(0).unwrap().unwrap().orig_run, 12);
}

#[test]
fn files_are_byte_reproducible() {
    // HDF5 time stamps have a resolution of one second: write, wait, write again.
    let write_all = || {
        TraceFormat::ALL.map(|format| {
            let dir = tempfile::tempdir().unwrap();
            let bytes = std::fs::read(write_run(dir.path(), format, RunInfo::default())).unwrap();
            (format, bytes)
        })
    };
    let first = write_all();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = write_all();
    for ((format, a), (_, b)) in first.iter().zip(&second) {
        assert!(a == b, "{format}: two writes of the same run differ");
    }
}

#[test]
fn writer_refuses_bad_events_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run_0001.h5");
    let mut rng = Pcg64::seed_from_u64(1);
    let mut w = TraceWriter::create(&dest, TraceFormat::Merger1, RunInfo::default()).unwrap();
    let err = w
        .write_event(&RawEvent::new(9, get_matrix(&mut rng, 2, 516)))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("run_0001.h5") && msg.contains("event 9") && msg.contains("516"),
        "{msg}"
    );
    let mut si = RawEvent::new(3, get_matrix(&mut rng, 2, 517));
    si.silicon.upstream_front = Some(get_matrix(&mut rng, 1, 517));
    assert!(w
        .write_event(&si)
        .unwrap_err()
        .to_string()
        .contains("silicon"));
    w.write_event(&RawEvent::new(4, get_matrix(&mut rng, 2, 517)))
        .unwrap();
    let dup = w.write_event(&RawEvent::new(4, get_matrix(&mut rng, 2, 517)));
    assert!(dup.unwrap_err().to_string().contains("already written"));
    drop(w);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "an unfinished writer leaves nothing behind"
    );
}

fn assert_names_file(err: &TraceError, path: &Path) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert_eq!(err.path(), path);
}

#[test]
fn missing_empty_and_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("run_0002.h5");
    let err = TraceReader::open(&missing).unwrap_err();
    assert!(matches!(err, TraceError::NotFound { .. }), "{err}");
    assert_names_file(&err, &missing);

    let empty = dir.path().join("empty.h5");
    std::fs::write(&empty, b"").unwrap();
    let err = TraceReader::open(&empty).unwrap_err();
    assert!(matches!(err, TraceError::NotHdf5 { .. }), "{err}");

    let text = dir.path().join("notes.h5");
    std::fs::write(&text, "this is not an HDF5 file\n".repeat(100)).unwrap();
    let err = TraceReader::open(&text).unwrap_err();
    assert!(matches!(err, TraceError::NotHdf5 { .. }), "{err}");
    assert_names_file(&err, &text);
    assert!(err.to_string().contains("not an HDF5 file"), "{err}");
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let full = write_run(dir.path(), TraceFormat::Merger1, RunInfo::default());
    let bytes = std::fs::read(&full).unwrap();
    for cut in [bytes.len() / 2, 4096, 100] {
        let path = dir.path().join(format!("cut_{cut}.h5"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = TraceReader::open(&path).unwrap_err();
        assert!(
            matches!(err, TraceError::Damaged { .. }),
            "cut at {cut}: {err}"
        );
        assert_names_file(&err, &path);
        if cut == bytes.len() / 2 {
            assert!(err.to_string().contains("truncated"), "{err}");
        }
    }
}

/// A hand-made `/events` file: version attribute written by `version`, range attributes as i32.
fn handmade(path: &Path, version: impl FnOnce(&hdf5::Group)) -> hdf5::Group {
    let file = hdf5::File::create(path).unwrap();
    let events = file.create_group("events").unwrap();
    version(&events);
    events
        .new_attr::<i32>()
        .create("min_event")
        .unwrap()
        .write_scalar(&10)
        .unwrap();
    events
        .new_attr::<i64>()
        .create("max_event")
        .unwrap()
        .write_scalar(&12)
        .unwrap();
    events
}

#[test]
fn version_strings_and_attribute_types() {
    let dir = tempfile::tempdir().unwrap();

    let unknown = dir.path().join("unknown.h5");
    drop(handmade(&unknown, |g| {
        let v = VarLenUnicode::from_str("libattpc_merger:9.9").unwrap();
        g.new_attr::<VarLenUnicode>()
            .create("version")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    }));
    let err = TraceReader::open(&unknown).unwrap_err();
    assert!(matches!(err, TraceError::UnknownVersion { .. }), "{err}");
    assert!(err.to_string().contains("\"libattpc_merger:9.9\""), "{err}");
    assert_names_file(&err, &unknown);

    // Fixed-length ASCII version (as numpy bytes would store it), i32/i64 range attributes,
    // u32 orig ids.
    let fixed = dir.path().join("fixed.h5");
    let events = handmade(&fixed, |g| {
        let v = FixedAscii::<24>::from_ascii("harmonizer:0.1.0").unwrap();
        g.new_attr::<FixedAscii<24>>()
            .create("version")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    });
    let ev = events.create_group("event_11").unwrap();
    ev.new_attr::<u32>()
        .create("orig_run")
        .unwrap()
        .write_scalar(&3)
        .unwrap();
    ev.new_attr::<i16>()
        .create("orig_event")
        .unwrap()
        .write_scalar(&-4)
        .unwrap();
    let m = get_matrix(&mut Pcg64::seed_from_u64(5), 4, 517);
    ev.new_dataset_builder()
        .with_data(&m)
        .create("get_traces")
        .unwrap();
    drop((ev, events));
    let reader = TraceReader::open(&fixed).unwrap();
    assert_eq!(reader.format(), TraceFormat::Harmonizer);
    assert_eq!(reader.event_ids(), 10..=12);
    let e = reader.read_event(11).unwrap().unwrap();
    assert_eq!((e.orig_run, e.orig_event), (3, -4));
    assert_eq!(e.pads.unwrap(), m);
    assert!(reader.read_event(10).unwrap().is_none());

    let nover = dir.path().join("noversion.h5");
    drop(handmade(&nover, |_| {}));
    let err = TraceReader::open(&nover).unwrap_err();
    assert!(matches!(err, TraceError::Layout { .. }), "{err}");
    assert!(err.to_string().contains("version"), "{err}");

    let other = dir.path().join("other.h5");
    let f = hdf5::File::create(&other).unwrap();
    f.create_group("something").unwrap();
    drop(f);
    let err = TraceReader::open(&other).unwrap_err();
    assert!(matches!(err, TraceError::NoKnownFormat { .. }), "{err}");
    assert!(err.to_string().contains("no known trace format"), "{err}");
    assert_names_file(&err, &other);
}

#[test]
fn damaged_event_names_file_and_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run_0003.h5");
    let events = handmade(&path, |g| {
        let v = VarLenUnicode::from_str("libattpc_merger:1.0").unwrap();
        g.new_attr::<VarLenUnicode>()
            .create("version")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    });
    let mut rng = Pcg64::seed_from_u64(3);
    let good = events.create_group("event_10").unwrap();
    good.new_dataset_builder()
        .with_data(&get_matrix(&mut rng, 3, 517))
        .create("get_traces")
        .unwrap();
    let bad = events.create_group("event_12").unwrap();
    bad.new_dataset_builder()
        .with_data(&get_matrix(&mut rng, 3, 516))
        .create("get_traces")
        .unwrap();
    drop((good, bad, events));

    let reader = TraceReader::open(&path).unwrap();
    assert_eq!(reader.format(), TraceFormat::Merger1);
    assert!(reader.read_event(10).unwrap().is_some());
    assert!(reader.read_event(11).unwrap().is_none());
    let err = reader.read_event(12).unwrap_err();
    assert_eq!(err.event(), Some(12));
    assert_names_file(&err, &path);
    let msg = err.to_string();
    assert!(
        msg.contains("event 12") && msg.contains("516") && msg.contains("517"),
        "{msg}"
    );
    assert!(msg.contains("/events/event_12/get_traces"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Hostile event ranges and shapes (a corrupt header must never make a run endless or huge)

/// A run of `n` events `0..n` (one GET row each) in `format`, then its declared range
/// overwritten with `range` (u64 attributes, or the legacy `/meta/meta` values).
fn run_with_range(dir: &Path, format: TraceFormat, n: u64, range: (u64, u64)) -> PathBuf {
    let dest = dir.join(format!("run_{RUN:04}.h5"));
    let _ = std::fs::remove_file(&dest);
    let mut rng = Pcg64::seed_from_u64(n);
    let mut w = TraceWriter::create(&dest, format, RunInfo::default()).unwrap();
    for id in 0..n {
        w.write_event(&RawEvent::new(id, get_matrix(&mut rng, 1, 517)))
            .unwrap();
    }
    let path = w.finish().unwrap();
    let file = hdf5::File::open_rw(&path).unwrap();
    if format == TraceFormat::Legacy {
        let meta = file.dataset("meta/meta").unwrap();
        meta.write(&[range.0, 0, range.1, 0][..]).unwrap();
    } else {
        let events = file.group("events").unwrap();
        for (name, value) in [("min_event", range.0), ("max_event", range.1)] {
            events.delete_attr(name).unwrap();
            events
                .new_attr::<u64>()
                .create(name)
                .unwrap()
                .write_scalar(&value)
                .unwrap();
        }
    }
    path
}

#[test]
fn absurd_event_ranges_are_refused_naming_file_and_attribute() {
    let dir = tempfile::tempdir().unwrap();
    for format in TraceFormat::ALL {
        let attribute = match format {
            TraceFormat::Legacy => "/meta/meta[2] (last event)",
            _ => "/events attribute max_event",
        };
        for max in [1u64 << 63, u64::MAX, 1 << 31, 119 + 20_000] {
            let path = run_with_range(dir.path(), format, 120, (0, max));
            let started = std::time::Instant::now();
            let err = TraceReader::open(&path).unwrap_err();
            assert!(started.elapsed().as_secs() < 5, "{format}: refused quickly");
            assert!(
                matches!(err, TraceError::EventRange { .. }),
                "{format}: {err}"
            );
            assert_names_file(&err, &path);
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("{attribute} = {max}")) && msg.contains("events 0..=119"),
                "{format}: {msg}"
            );
        }
        // An absurd first event names the first-event attribute.
        let path = run_with_range(dir.path(), format, 120, (1 << 63, (1 << 63) + 5));
        let msg = TraceReader::open(&path).unwrap_err().to_string();
        assert!(
            msg.contains("min") || msg.contains("first"),
            "{format}: {msg}"
        );
        // First after last while events are stored: an error; with none stored: empty.
        let path = run_with_range(dir.path(), format, 3, (10, 2));
        let err = TraceReader::open(&path).unwrap_err();
        assert!(err.to_string().contains("after the last event"), "{err}");
        let path = run_with_range(dir.path(), format, 0, (10, 2));
        let reader = TraceReader::open(&path).unwrap();
        assert!(reader.present_event_ids().is_empty());
        assert_eq!(reader.warnings().len(), 1, "{:?}", reader.warnings());
    }
}

#[test]
fn slightly_off_ranges_are_read_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    for format in TraceFormat::ALL {
        // The merger declares its last event even when it dropped it: no warning.
        let path = run_with_range(dir.path(), format, 10, (0, 10));
        let reader = TraceReader::open(&path).unwrap();
        assert!(reader.warnings().is_empty(), "{:?}", reader.warnings());
        assert_eq!(reader.present_event_ids(), (0..10).collect::<Vec<_>>());
        assert_eq!(reader.event_ids(), 0..=10);

        // Further beyond: read, with a warning naming the file and the attribute.
        let path = run_with_range(dir.path(), format, 10, (0, 500));
        let reader = TraceReader::open(&path).unwrap();
        assert_eq!(reader.present_event_ids().len(), 10);
        let warnings: Vec<String> = reader.warnings().iter().map(|w| w.to_string()).collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(&path.display().to_string())
                && warnings[0].contains("= 500")
                && warnings[0].contains("491 ids beyond"),
            "{warnings:?}"
        );

        // Events stored outside the declared range are not read, and said so.
        let path = run_with_range(dir.path(), format, 10, (2, 5));
        let reader = TraceReader::open(&path).unwrap();
        assert_eq!(reader.present_event_ids(), [2, 3, 4, 5]);
        assert_eq!(reader.stored_event_ids().unwrap().len(), 10);
        let w = reader.warnings();
        assert!(
            matches!(
                w,
                [spyral_data::attpc::traces::TraceWarning::EventsOutsideRange { count: 6, .. }]
            ),
            "{w:?}"
        );
        for id in reader.present_event_ids() {
            assert!(reader.read_event(*id).unwrap().is_some());
        }
    }
}

#[test]
fn sparse_event_ids_cannot_declare_an_endless_range() {
    // Two stored events far apart: the range 0..=2^62 matches them but is billions of absent ids.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run_0005.h5");
    let far = 1u64 << 62;
    let events = handmade(&path, |g| {
        let v = VarLenUnicode::from_str("libattpc_merger:1.0").unwrap();
        g.new_attr::<VarLenUnicode>()
            .create("version")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    });
    events.delete_attr("max_event").unwrap();
    events.delete_attr("min_event").unwrap();
    events
        .new_attr::<u64>()
        .create("min_event")
        .unwrap()
        .write_scalar(&0)
        .unwrap();
    events
        .new_attr::<u64>()
        .create("max_event")
        .unwrap()
        .write_scalar(&far)
        .unwrap();
    let mut rng = Pcg64::seed_from_u64(8);
    for id in [0, far] {
        let g = events.create_group(&format!("event_{id}")).unwrap();
        g.new_dataset_builder()
            .with_data(&get_matrix(&mut rng, 1, 517))
            .create("get_traces")
            .unwrap();
    }
    drop(events);
    let err = TraceReader::open(&path).unwrap_err();
    assert_names_file(&err, &path);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("max_event = {far}")) && msg.contains("2 events between 0 and"),
        "{msg}"
    );
}

#[test]
fn huge_claimed_shapes_are_refused_before_reading() {
    // Datasets that claim far more data than they store (chunked, never written): reading one
    // whole would allocate terabytes. Each must be refused with an error naming file and event.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run_0004.h5");
    let events = handmade(&path, |g| {
        let v = VarLenUnicode::from_str("libattpc_merger:1.0").unwrap();
        g.new_attr::<VarLenUnicode>()
            .create("version")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    });
    let rows = events.create_group("event_10").unwrap();
    rows.new_dataset::<i16>()
        .chunk((1, 517))
        .shape((1usize << 40, 517))
        .create("get_traces")
        .unwrap();
    let chunk = events.create_group("event_11").unwrap();
    chunk
        .new_dataset::<i16>()
        .chunk((1 << 20, 517))
        .shape((4.., 517))
        .create("get_traces")
        .unwrap();
    let frib = events.create_group("event_12").unwrap();
    frib.new_dataset_builder()
        .with_data(&get_matrix(&mut Pcg64::seed_from_u64(2), 1, 517))
        .create("get_traces")
        .unwrap();
    let fp = frib.create_group("frib_physics").unwrap();
    fp.new_dataset::<u16>()
        .shape((2048, 8))
        .create("1903")
        .unwrap();
    fp.new_dataset::<u16>()
        .chunk(1 << 30)
        .shape(1usize << 50)
        .create("977")
        .unwrap();
    drop((rows, chunk, frib, fp, events));

    let reader = TraceReader::open(&path).unwrap();
    assert_eq!(reader.present_event_ids(), [10, 11, 12]);
    for (id, needle) in [(10, "rows"), (11, "chunks"), (12, "chunks")] {
        let started = std::time::Instant::now();
        let err = reader.read_event(id).unwrap_err();
        assert!(started.elapsed().as_secs() < 5);
        assert_eq!(err.event(), Some(id));
        assert_names_file(&err, &path);
        assert!(err.to_string().contains(needle), "event {id}: {err}");
    }
}

/// A run sink that reports "cancelled" once `cancelled()` has been asked `after` times (the
/// host's per-run time limit or Ctrl-C arriving mid-run).
struct CancelAfter {
    after: usize,
    asked: std::sync::atomic::AtomicUsize,
}

impl spyral_core::RunSink for CancelAfter {
    fn progress(&self, _done: u64, _total: u64) {}
    fn log(
        &self,
        _level: spyral_core::LogLevel,
        _message: spyral_core::abi_stable::std_types::RStr<'_>,
    ) {
    }
    fn cancelled(&self) -> bool {
        self.asked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            >= self.after
    }
}

#[test]
fn pointcloud_stops_between_events_when_cancelled() {
    use spyral_core::{Phase, PhaseErrorKind, PhaseFactory, PhaseResult, RunContext, Workspace};
    use spyral_phases::pointcloud::{PointcloudConfig, PointcloudPhase};
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir_all(&traces).unwrap();
    let path = run_with_range(&traces, TraceFormat::Merger1, 200, (0, 199));
    let payload = PhaseResult::new(RUN as u32).with_artifact("trace", path);
    let phase = PointcloudPhase::from_config("Pointcloud", PointcloudConfig::default()).unwrap();
    let root = dir.path().join("ws");
    let ws = Workspace::new(&root, &traces, "Pointcloud");
    std::fs::create_dir_all(ws.artifact_dir()).unwrap();
    let listing = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(ws.artifact_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    // Cancelled after a few events: a Cancelled error, nothing committed, nothing left over.
    let sink = CancelAfter {
        after: 10,
        asked: Default::default(),
    };
    let ctx = RunContext::new(RUN as u32, 1, &ws, &sink);
    let err = phase.run(&payload, &ctx).unwrap_err();
    assert_eq!(err.kind, PhaseErrorKind::Cancelled, "{err}");
    let asked = sink.asked.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        asked < 40,
        "it stopped soon after the cancellation ({asked} checks)"
    );
    assert!(listing().is_empty(), "{:?}", listing());

    // Not cancelled: the same run completes (the control).
    let sink = CancelAfter {
        after: usize::MAX,
        asked: Default::default(),
    };
    let ctx = RunContext::new(RUN as u32, 1, &ws, &sink);
    let done = phase.run(&payload, &ctx).unwrap();
    assert!(
        sink.asked.load(std::sync::atomic::Ordering::Relaxed) >= 200,
        "checked per event"
    );
    assert!(
        listing().contains(&format!("run_{RUN:04}.h5")),
        "{:?}",
        listing()
    );
    drop(done);
}

// ---------------------------------------------------------------------------------------------
// Pad maps

#[test]
fn csv_maps_with_any_line_ending() {
    let dir = tempfile::tempdir().unwrap();
    let geo = dir.path().join("padxy.csv");
    let time = dir.path().join("pad_time_correction.csv");
    let scale = dir.path().join("pad_scale.csv");
    std::fs::write(&geo, "x,y\n-10.5,4.25\n0,0\n3e1,-2\n").unwrap();
    std::fs::write(&time, "tcorr\r0.5\r-1.25\r0\r").unwrap(); // CR only, like Spyral's file
    std::fs::write(&scale, "scale\r\n0.5\r\n1.0\r\n0.5\r\n\r\n").unwrap();
    let map = PadMap::load(&PadParameters {
        pad_geometry_path: Some(geo.clone()),
        pad_time_path: Some(time),
        pad_scale_path: Some(scale.clone()),
    })
    .unwrap();
    assert_eq!(map.len(), 3);
    let p0 = map.pad(0i16).unwrap();
    assert_eq!(
        (p0.x, p0.y, p0.time_offset, p0.scale),
        (-10.5, 4.25, 0.5, 0.5)
    );
    let p2 = map.pad(2u16).unwrap();
    assert_eq!(
        (p2.x, p2.y, p2.time_offset, p2.scale),
        (30.0, -2.0, 0.0, 0.5)
    );
    assert!(map.pad(-1i16).is_none() && map.pad(3).is_none());
    assert!(!map.is_builtin());
    assert_eq!(map.pad_at(1.0, 1.0), Some(1));

    // A CSV geometry without a scale file is refused.
    let err = PadMap::load(&PadParameters {
        pad_geometry_path: Some(geo),
        ..PadParameters::default()
    })
    .unwrap_err();
    assert!(matches!(err, PadMapError::MissingScale { .. }), "{err}");
}

#[test]
fn csv_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let geo = dir.path().join("geo.csv");
    let scale = dir.path().join("scale.csv");
    std::fs::write(&scale, "scale\n1\n1\n1\n").unwrap();

    std::fs::write(&geo, "x,y\r1,2\r3,abc\r5,6\r").unwrap();
    let err = PadMap::from_csv(&geo, None, &scale).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PadMapError::Parse { line: 3, .. }), "{msg}");
    assert!(
        msg.contains("geo.csv") && msg.contains("line 3") && msg.contains("abc"),
        "{msg}"
    );

    std::fs::write(&geo, "x,y\n1,2\n\n5,6\n").unwrap();
    let err = PadMap::from_csv(&geo, None, &scale).unwrap_err();
    assert!(matches!(err, PadMapError::Parse { line: 3, .. }), "{err}");

    std::fs::write(&geo, "x,y\n1,2\n3\n").unwrap();
    let err = PadMap::from_csv(&geo, None, &scale).unwrap_err();
    assert!(matches!(err, PadMapError::Parse { line: 3, .. }), "{err}");

    std::fs::write(&geo, "x,y\n1,2\n3,4\n").unwrap();
    let err = PadMap::from_csv(&geo, None, &scale).unwrap_err();
    assert!(matches!(err, PadMapError::CountMismatch { .. }), "{err}");
    assert!(err.to_string().contains("scale.csv"), "{err}");

    std::fs::write(&geo, "x,y\n").unwrap();
    let err = PadMap::from_csv(&geo, None, &scale).unwrap_err();
    assert!(matches!(err, PadMapError::Empty { .. }), "{err}");

    let mut big = String::from("x,y\n");
    for i in 0..40000 {
        big.push_str(&format!("{i},0\n"));
    }
    std::fs::write(&geo, big).unwrap();
    let err = PadMap::from_csv(&geo, None, &scale).unwrap_err();
    assert!(
        matches!(err, PadMapError::PadOutOfRange { pad: 32768, .. }),
        "{err}"
    );

    let err = PadMap::from_csv(&dir.path().join("nope.csv"), None, &scale).unwrap_err();
    assert!(matches!(err, PadMapError::Io { .. }) && err.to_string().contains("nope.csv"));
}

/// `data/data/padplane.csv` read independently of the library: (x, y, tcorr, scale) per pad.
fn derived_table() -> Vec<[f64; 4]> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/data/padplane.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("attpc-spyral 1.1.2") && text.contains("spyral/data/padxy.csv"),
        "the table names its source"
    );
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let v: Vec<f64> = line.split(',').map(|f| f.parse().unwrap()).collect();
        assert_eq!(v[0], rows.len() as f64, "pad ids in order");
        rows.push([v[1], v[2], v[3], v[4]]);
    }
    rows
}

#[test]
fn builtin_plane_is_the_derived_attpc_table() {
    let map = PadMap::load(&PadParameters::default()).unwrap();
    assert!(map.is_builtin());
    let table = derived_table();
    assert_eq!(map.len(), NUM_PADS);
    assert_eq!(table.len(), NUM_PADS);
    for (id, (p, t)) in map.pads().iter().zip(&table).enumerate() {
        assert_eq!([p.x, p.y, p.time_offset, p.scale], *t, "pad {id}");
    }
    // Facts about Spyral's default plane (spec section 2), independent of the table.
    let p0 = map.pad(0u16).unwrap();
    assert_eq!(
        (p0.x, p0.y, p0.time_offset, p0.scale),
        (-269.95294, 4.2506561, 0.0, 1.0)
    );
    let max_abs = |f: fn(&spyral_data::attpc::PadInfo) -> f64| {
        map.pads().iter().map(|p| f(p).abs()).fold(0.0, f64::max)
    };
    assert!((max_abs(|p| p.x) - 269.95).abs() < 0.01);
    assert!((max_abs(|p| p.y) - 267.79).abs() < 0.01);
    assert_eq!(
        map.pads().iter().filter(|p| p.scale == 0.5).count(),
        NUM_SMALL_PADS
    );
    assert_eq!(
        map.pads().iter().filter(|p| p.time_offset == 0.0).count(),
        83
    );
    let (tmin, tmax) = map.pads().iter().fold((0.0f64, 0.0f64), |(a, b), p| {
        (a.min(p.time_offset), b.max(p.time_offset))
    });
    assert!(
        (tmin + 1.908).abs() < 1e-3 && (tmax - 1.485).abs() < 1e-3,
        "{tmin} {tmax}"
    );
    assert_eq!(map.beam_pads(), LEGACY_BEAM_PADS.to_vec());
}

#[test]
fn builtin_plane_lookups() {
    let map = PadMap::builtin();
    let centres: HashSet<(i64, i64)> = map
        .pads()
        .iter()
        .map(|p| ((p.x * 1e6).round() as i64, (p.y * 1e6).round() as i64))
        .collect();
    assert_eq!(centres.len(), NUM_PADS, "pad centres are distinct");
    for (id, p) in map.pads().iter().enumerate() {
        assert_eq!(map.pad_at(p.x, p.y), Some(id as u16), "pad {id}");
        assert_eq!(map.nearest_pad(p.x, p.y), Some(id as u16), "pad {id}");
        let hw = map.hardware_id(id as u16).unwrap();
        assert_eq!(map.pad_for_hardware(hw), Some(id as u16));
    }
    // Triangle sides: big 9.8165 mm, small half of it. A point is on a pad whose centre (half
    // way up the triangle's axis) is at most side * sqrt(7) / 4 away, and is never farther from
    // that centre than from the centre of a pad of the same size more than one side away.
    let big_side = 9.8164706;
    let mut rng = Pcg64::seed_from_u64(11);
    let mut on_small = 0usize;
    let n = 100_000;
    for _ in 0..n {
        let r = 255.0 * rng.random::<f64>().sqrt();
        let phi = std::f64::consts::TAU * rng.random::<f64>();
        let (x, y) = (r * phi.cos(), r * phi.sin());
        let pad = map
            .pad_at(x, y)
            .unwrap_or_else(|| panic!("no pad at ({x}, {y})"));
        let c = map.pad(pad).unwrap();
        let side = big_side * c.scale;
        let d = (c.x - x).hypot(c.y - y);
        assert!(
            d <= side * 7f64.sqrt() / 4.0 + 1e-6,
            "({x}, {y}) -> {pad} at {d}"
        );
        assert!(d <= map.snap_distance() + 1e-9);
        on_small += usize::from(c.scale == 0.5);
    }
    // Area check: the small pads cover 6144 quarter-size triangles, the big ones 4096 triangles;
    // within r < 255 mm (inside the outer edge) the small-pad share is their area over pi r^2.
    let tri = big_side * big_side * 3f64.sqrt() / 4.0;
    let small_share = NUM_SMALL_PADS as f64 * tri / 4.0 / (std::f64::consts::PI * 255.0 * 255.0);
    let got = on_small as f64 / n as f64;
    assert!((got - small_share).abs() < 0.01, "{got} vs {small_share}");
    // Crossing the edge between two neighbouring big pads of one row changes the pad.
    let big: Vec<usize> = (0..NUM_PADS)
        .filter(|&i| map.pads()[i].scale == 1.0)
        .collect();
    let (a, b) = (map.pads()[big[0]], map.pads()[big[1]]);
    assert!((a.y - b.y).abs() < 1e-9 && ((b.x - a.x) - big_side / 2.0).abs() < 1e-4);
    let mid = (a.x + b.x) / 2.0;
    assert_eq!(map.pad_at(mid - 0.01, a.y), Some(big[0] as u16));
    assert_eq!(map.pad_at(mid + 0.01, a.y), Some(big[1] as u16));
    assert_eq!(map.pad_at(400.0, 0.0), None);
    assert_eq!(map.pad_at(f64::NAN, 0.0), None);
}

#[test]
fn builtin_values_fill_in_missing_files() {
    let builtin = PadMap::builtin();
    let dir = tempfile::tempdir().unwrap();
    // A time file only: the built-in geometry and scales.
    let time = dir.path().join("t.csv");
    let mut t = String::from("tcorr\r");
    for i in 0..NUM_PADS {
        t.push_str(&format!("{}\r", i as f64 * 1e-4));
    }
    std::fs::write(&time, t).unwrap();
    let map = PadMap::load(&PadParameters {
        pad_time_path: Some(time),
        ..PadParameters::default()
    })
    .unwrap();
    assert!(map.is_builtin());
    assert_eq!(map.pad(5u16).unwrap().time_offset, 5e-4);
    assert_eq!(map.pad(5u16).unwrap().x, builtin.pad(5u16).unwrap().x);
    assert_eq!(
        map.pad_at(builtin.pads()[9].x, builtin.pads()[9].y),
        Some(9)
    );
    // A CSV geometry of another size needs a scale file.
    let geo = dir.path().join("g.csv");
    std::fs::write(&geo, "x,y\n0,0\n1,1\n").unwrap();
    let err = PadMap::load(&PadParameters {
        pad_geometry_path: Some(geo),
        ..PadParameters::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, PadMapError::MissingScale { count: 2, .. }),
        "{err}"
    );
}

#[test]
fn csv_copy_of_builtin_plane_uses_spyral_beam_pads() {
    let builtin = PadMap::builtin();
    let dir = tempfile::tempdir().unwrap();
    let (geo, scale) = (dir.path().join("xy.csv"), dir.path().join("scale.csv"));
    let mut g = String::from("x,y\n");
    let mut s = String::from("scale\r");
    for p in builtin.pads() {
        g.push_str(&format!("{},{}\n", p.x, p.y));
        s.push_str(&format!("{}\r", p.scale));
    }
    std::fs::write(&geo, g).unwrap();
    std::fs::write(&scale, s).unwrap();
    let map = PadMap::load(&PadParameters {
        pad_geometry_path: Some(geo),
        pad_time_path: None,
        pad_scale_path: Some(scale),
    })
    .unwrap();
    assert_eq!(map.pads(), builtin.pads());
    assert_eq!(map.beam_pads(), LEGACY_BEAM_PADS.to_vec());
    assert!(map.is_beam_pad(134) && !map.is_beam_pad(165));
    for (id, p) in map.pads().iter().enumerate() {
        assert_eq!(map.pad_at(p.x, p.y), Some(id as u16));
    }
    assert_eq!(map.pad_at(400.0, 0.0), None);
}
