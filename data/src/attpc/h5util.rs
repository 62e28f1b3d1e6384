//! Small, tolerant HDF5 helpers shared by the trace reader and writer (and usable by phases):
//! reading integer, float and string attributes whatever integer width, signedness or string
//! flavour the producer chose, checking dataset types, and creating groups and attributes
//! without modification times so that files are byte-reproducible.
//!
//! Readers return `Ok(None)` when an attribute is absent and an [`H5ReadError`] when it is
//! present but unusable (or a dataset is unsafe to read); callers add the file and object names.
//!
//! Hostile files: sizes are computed with checked arithmetic (a dataspace may claim dimensions
//! whose product overflows), [`check_read_extent`] refuses datasets whose claimed shape, chunk
//! size or storage would make a read allocate out of proportion (or read outside the file), and
//! [`hard_links`] / [`hard_member`] let readers follow only objects stored in the file itself
//! (an external link can name any path, a FIFO included, and would block the reader).

use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, Group, H5Type, IndexType, IterationOrder, LinkType, Location};
use std::str::FromStr;

/// The largest chunk, in bytes, [`check_read_extent`] accepts: HDF5 allocates a whole chunk to
/// read any part of it, and a compressed chunk can claim gigabytes while storing a few bytes.
pub const MAX_CHUNK_BYTES: usize = 64 << 20;

/// The longest fixed-length string attribute the readers accept, in bytes.
const MAX_FIXED_STRING: usize = 1024;

/// Why an attribute or dataset cannot be read by these helpers. The texts name the attribute
/// (or, for datasets, describe it as "it": the caller names the dataset and the file).
#[derive(Debug, thiserror::Error)]
pub enum H5ReadError {
    /// The attribute exists but could not be opened.
    #[error("cannot open attribute '{name}': {source}")]
    Open {
        /// The attribute.
        name: String,
        /// What libhdf5 said.
        source: hdf5::Error,
    },
    /// The attribute holds more (or fewer) than one element.
    #[error("attribute '{name}' should hold one {what}, it has shape {shape:?}")]
    Shape {
        /// The attribute.
        name: String,
        /// "value" or "string".
        what: &'static str,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// The attribute's type could not be read.
    #[error("cannot read the type of attribute '{name}': {source}")]
    TypeUnreadable {
        /// The attribute.
        name: String,
        /// What libhdf5 said.
        source: hdf5::Error,
    },
    /// The attribute's value could not be read.
    #[error("cannot read attribute '{name}': {source}")]
    Read {
        /// The attribute.
        name: String,
        /// What libhdf5 said.
        source: hdf5::Error,
    },
    /// The attribute is of another type than the reader expects.
    #[error("attribute '{name}' should be a {expected}, it is of type {found}")]
    WrongType {
        /// The attribute.
        name: String,
        /// "number" or "string".
        expected: &'static str,
        /// Its type.
        found: String,
    },
    /// The attribute has no element.
    #[error("attribute '{name}' is empty")]
    Empty {
        /// The attribute.
        name: String,
    },
    /// The attribute's number does not fit the type asked for.
    #[error("attribute '{name}' = {value} {problem}")]
    OutOfRange {
        /// The attribute.
        name: String,
        /// Its value, as stored.
        value: String,
        /// What is wrong ("should not be negative", ...).
        problem: &'static str,
    },
    /// A property of the dataset could not be read.
    #[error("cannot read its {what}: {source}")]
    DatasetUnreadable {
        /// "type" or "storage properties".
        what: &'static str,
        /// What libhdf5 said.
        source: hdf5::Error,
    },
    /// The dataset does not hold integers.
    #[error("it holds {found}, expected integers")]
    NotIntegers {
        /// Its type.
        found: String,
    },
    /// The dataset claims more elements than a reader accepts.
    #[error(
        "it claims shape {shape:?}, more than the {max_elements} elements a reader accepts \
         (a corrupt or hostile header?)"
    )]
    TooManyElements {
        /// The claimed shape.
        shape: Vec<usize>,
        /// The reader's limit.
        max_elements: usize,
    },
    /// The dataset's chunks are larger than [`MAX_CHUNK_BYTES`].
    #[error(
        "its chunks have shape {chunk:?} ({elem}-byte elements), over the {MAX_CHUNK_BYTES} \
         bytes a reader accepts"
    )]
    ChunkTooLarge {
        /// The chunk shape.
        chunk: Vec<usize>,
        /// Bytes per element.
        elem: usize,
    },
    /// The dataset is virtual (its data lives in other files).
    #[error("it is a virtual dataset (its data lives in other files), which is not read")]
    Virtual,
    /// The dataset's data is stored in external raw files.
    #[error(
        "its data is stored in external raw files, which are not read (only data inside the \
         HDF5 file is)"
    )]
    External,
}

/// A numeric attribute value, as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttrNumber {
    /// A signed integer of any width.
    Signed(i64),
    /// An unsigned integer of any width.
    Unsigned(u64),
    /// A float of any width.
    Float(f64),
}

impl AttrNumber {
    /// The value as `i64`: any integer that fits, or a float holding a whole number.
    pub fn as_i64(self) -> Option<i64> {
        match self {
            AttrNumber::Signed(v) => Some(v),
            AttrNumber::Unsigned(v) => i64::try_from(v).ok(),
            AttrNumber::Float(v) => {
                (v.fract() == 0.0 && v.abs() < i64::MAX as f64).then_some(v as i64)
            }
        }
    }

    /// The value as `f64` (integers are converted).
    pub fn as_f64(self) -> f64 {
        match self {
            AttrNumber::Signed(v) => v as f64,
            AttrNumber::Unsigned(v) => v as f64,
            AttrNumber::Float(v) => v,
        }
    }
}

/// Whether `loc` has an attribute called `name`.
pub fn has_attr(loc: &Location, name: &str) -> bool {
    loc.attr_names()
        .map(|names| names.iter().any(|n| n == name))
        .unwrap_or(false)
}

/// Reads a single numeric attribute (a scalar or a one-element array) of any integer or float
/// type. `Ok(None)` if it does not exist.
pub fn attr_number(loc: &Location, name: &str) -> Result<Option<AttrNumber>, H5ReadError> {
    // The usual case (absent, or one plain number) in a few library calls; anything else goes
    // the long way below, which says what is wrong.
    match crate::h5fast::quick_number(loc, name) {
        crate::h5fast::Quick::Absent => return Ok(None),
        crate::h5fast::Quick::Number(v) => return Ok(Some(v)),
        crate::h5fast::Quick::Other => {}
    }
    if !has_attr(loc, name) {
        return Ok(None);
    }
    let (attr, desc) = open_single(loc, name, "value")?;
    let read_err = |source| H5ReadError::Read {
        name: name.to_owned(),
        source,
    };
    let value = match desc {
        TypeDescriptor::Integer(_) => {
            AttrNumber::Signed(first(attr.read_raw::<i64>().map_err(read_err)?, name)?)
        }
        TypeDescriptor::Unsigned(_) => {
            AttrNumber::Unsigned(first(attr.read_raw::<u64>().map_err(read_err)?, name)?)
        }
        TypeDescriptor::Float(_) => {
            AttrNumber::Float(first(attr.read_raw::<f64>().map_err(read_err)?, name)?)
        }
        other => {
            return Err(H5ReadError::WrongType {
                name: name.to_owned(),
                expected: "number",
                found: other.to_string(),
            })
        }
    };
    Ok(Some(value))
}

/// Opens attribute `name`, checks that it holds one element (`what` it should hold, for the
/// message) and reads its type.
fn open_single(
    loc: &Location,
    name: &str,
    what: &'static str,
) -> Result<(hdf5::Attribute, TypeDescriptor), H5ReadError> {
    let attr = loc.attr(name).map_err(|source| H5ReadError::Open {
        name: name.to_owned(),
        source,
    })?;
    if element_count(&attr.shape()) != Some(1) {
        return Err(H5ReadError::Shape {
            name: name.to_owned(),
            what,
            shape: attr.shape(),
        });
    }
    let desc = attr
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|source| H5ReadError::TypeUnreadable {
            name: name.to_owned(),
            source,
        })?;
    Ok((attr, desc))
}

fn first<T: Copy>(v: Vec<T>, name: &str) -> Result<T, H5ReadError> {
    v.first().copied().ok_or_else(|| H5ReadError::Empty {
        name: name.to_owned(),
    })
}

fn out_of_range(name: &str, value: impl std::fmt::Display, problem: &'static str) -> H5ReadError {
    H5ReadError::OutOfRange {
        name: name.to_owned(),
        value: value.to_string(),
        problem,
    }
}

/// Reads an integer attribute as `u64` (any integer type; a float only if it holds a whole,
/// non-negative number). `Ok(None)` if absent.
pub fn attr_u64(loc: &Location, name: &str) -> Result<Option<u64>, H5ReadError> {
    Ok(match attr_number(loc, name)? {
        None => None,
        Some(AttrNumber::Unsigned(v)) => Some(v),
        Some(AttrNumber::Signed(v)) => {
            Some(u64::try_from(v).map_err(|_| out_of_range(name, v, "should not be negative"))?)
        }
        Some(AttrNumber::Float(v)) => {
            if v.fract() == 0.0 && v >= 0.0 && v < u64::MAX as f64 {
                Some(v as u64)
            } else {
                return Err(out_of_range(
                    name,
                    v,
                    "should be a non-negative whole number",
                ));
            }
        }
    })
}

/// Reads an integer attribute as `i64` (any integer type; a float only if it holds a whole
/// number). `Ok(None)` if absent.
pub fn attr_i64(loc: &Location, name: &str) -> Result<Option<i64>, H5ReadError> {
    let Some(n) = attr_number(loc, name)? else {
        return Ok(None);
    };
    n.as_i64().map(Some).ok_or_else(|| match n {
        AttrNumber::Unsigned(v) => out_of_range(name, v, "is too large"),
        _ => out_of_range(name, n.as_f64(), "should be a whole number"),
    })
}

/// Reads a numeric attribute as `f64` (integers are converted). `Ok(None)` if absent.
pub fn attr_f64(loc: &Location, name: &str) -> Result<Option<f64>, H5ReadError> {
    Ok(attr_number(loc, name)?.map(AttrNumber::as_f64))
}

/// Reads a string attribute stored as variable-length or fixed-length, ASCII or UTF-8, scalar
/// or one-element array. Trailing NULs and spaces of fixed strings are removed. `Ok(None)` if
/// absent.
pub fn attr_string(loc: &Location, name: &str) -> Result<Option<String>, H5ReadError> {
    if !has_attr(loc, name) {
        return Ok(None);
    }
    let (attr, desc) = open_single(loc, name, "string")?;
    let read_err = |source| H5ReadError::Read {
        name: name.to_owned(),
        source,
    };
    let text = match desc {
        TypeDescriptor::VarLenUnicode => first_string(
            attr.read_raw::<VarLenUnicode>().map_err(read_err)?,
            name,
            |s| s.as_bytes().to_vec(),
        )?,
        TypeDescriptor::VarLenAscii => first_string(
            attr.read_raw::<VarLenAscii>().map_err(read_err)?,
            name,
            |s| s.as_bytes().to_vec(),
        )?,
        TypeDescriptor::FixedAscii(n) if n <= MAX_FIXED_STRING => first_string(
            attr.read_raw::<FixedAscii<MAX_FIXED_STRING>>()
                .map_err(read_err)?,
            name,
            |s| s.as_bytes().to_vec(),
        )?,
        TypeDescriptor::FixedUnicode(n) if n <= MAX_FIXED_STRING => first_string(
            attr.read_raw::<FixedUnicode<MAX_FIXED_STRING>>()
                .map_err(read_err)?,
            name,
            |s| s.as_bytes().to_vec(),
        )?,
        other => {
            return Err(H5ReadError::WrongType {
                name: name.to_owned(),
                expected: "string",
                found: other.to_string(),
            })
        }
    };
    let text = String::from_utf8_lossy(&text);
    Ok(Some(text.trim_end_matches(['\0', ' ']).to_string()))
}

fn first_string<T>(
    v: Vec<T>,
    name: &str,
    bytes: impl Fn(&T) -> Vec<u8>,
) -> Result<Vec<u8>, H5ReadError> {
    v.first().map(bytes).ok_or_else(|| H5ReadError::Empty {
        name: name.to_owned(),
    })
}

/// Checks that a dataset holds integers (any width, signed or not), returning its type name
/// otherwise.
pub fn ensure_integer_dataset(ds: &Dataset) -> Result<(), H5ReadError> {
    let desc = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|source| H5ReadError::DatasetUnreadable {
            what: "type",
            source,
        })?;
    match desc {
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => Ok(()),
        other => Err(H5ReadError::NotIntegers {
            found: other.to_string(),
        }),
    }
}

/// The number of elements of `shape`, `None` if it overflows `usize` (hdf5's own `size()`
/// multiplies unchecked, which panics or wraps for absurd dataspaces).
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Checks, before reading, that reading `ds` (or any part of it) is bounded: the claimed shape
/// holds at most `max_elements` elements, a chunk holds at most [`MAX_CHUNK_BYTES`], and the
/// data is stored in the file itself (not in external raw files or a virtual mapping to other
/// files). The error text describes the problem ("it claims shape ...").
pub fn check_read_extent(ds: &Dataset, max_elements: usize) -> Result<(), H5ReadError> {
    let shape = ds.shape();
    match element_count(&shape) {
        Some(n) if n <= max_elements => {}
        _ => {
            return Err(H5ReadError::TooManyElements {
                shape,
                max_elements,
            })
        }
    }
    let dcpl = ds.dcpl().map_err(|source| H5ReadError::DatasetUnreadable {
        what: "storage properties",
        source,
    })?;
    let elem = ds
        .dtype()
        .map(|t| t.size())
        .map_err(|source| H5ReadError::DatasetUnreadable {
            what: "type",
            source,
        })?;
    match dcpl.layout() {
        hdf5::dataset::Layout::Chunked => {
            let chunk = dcpl.chunk().unwrap_or_default();
            let bytes = element_count(&chunk).and_then(|n| n.checked_mul(elem.max(1)));
            if bytes.is_none_or(|b| b > MAX_CHUNK_BYTES) {
                return Err(H5ReadError::ChunkTooLarge { chunk, elem });
            }
        }
        hdf5::dataset::Layout::Virtual => return Err(H5ReadError::Virtual),
        _ => {}
    }
    if !dcpl.external().is_empty() {
        return Err(H5ReadError::External);
    }
    Ok(())
}

/// The members of `group` that are hard links (objects stored in this file), and the number of
/// other links (soft, external), which readers of untrusted files do not follow.
pub fn hard_links(group: &Group) -> hdf5::Result<(Vec<String>, usize)> {
    crate::h5fast::hard_links(group)
}

/// Whether `group` has a hard link called `name` (a scan of the group's links: for small
/// groups; list big ones once with [`hard_links`]).
pub fn hard_member(group: &Group, name: &str) -> bool {
    group
        .find_link(IndexType::Name, IterationOrder::Native, |n, info| {
            Ok((n == name).then_some(info.link_type == LinkType::Hard))
        })
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Opens the member group `name` of the (small) `group` if it is a hard link to a group.
pub fn hard_group(group: &Group, name: &str) -> Option<Group> {
    if hard_member(group, name) {
        group.group(name).ok()
    } else {
        None
    }
}

/// Opens the member dataset `name` of the (small) `group` if it is a hard link to a dataset.
pub fn hard_dataset(group: &Group, name: &str) -> Option<Dataset> {
    if hard_member(group, name) {
        group.dataset(name).ok()
    } else {
        None
    }
}

/// The hard links of one small group, listed once: a reader that looks up several members of
/// the same group (an event's `get`, `frib_physics`) scans its links once instead of once per
/// name, as [`hard_member`] does.
pub struct HardMembers<'g> {
    group: &'g Group,
    names: Vec<String>,
}

impl<'g> HardMembers<'g> {
    /// Lists the hard links of `group`; a group whose links cannot be listed has none.
    pub fn of(group: &'g Group) -> HardMembers<'g> {
        let names = hard_links(group).map(|(n, _)| n).unwrap_or_default();
        HardMembers { group, names }
    }

    /// Whether `name` is a hard link of the group.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Opens the member group `name` if it is a hard link to a group.
    pub fn group(&self, name: &str) -> Option<Group> {
        self.contains(name)
            .then(|| self.group.group(name).ok())
            .flatten()
    }

    /// Opens the member dataset `name` if it is a hard link to a dataset.
    pub fn dataset(&self, name: &str) -> Option<Dataset> {
        self.contains(name)
            .then(|| self.group.dataset(name).ok())
            .flatten()
    }
}

/// Whether `group` has a member (group or dataset) called `name`.
pub fn has_member(group: &Group, name: &str) -> bool {
    group.link_exists(name)
}

/// Opens the member group `name` of `group` if it exists and is a group.
pub fn opt_group(group: &Group, name: &str) -> Option<Group> {
    if group.link_exists(name) {
        group.group(name).ok()
    } else {
        None
    }
}

/// Opens the member dataset `name` of `group` if it exists and is a dataset.
pub fn opt_dataset(group: &Group, name: &str) -> Option<Dataset> {
    if group.link_exists(name) {
        group.dataset(name).ok()
    } else {
        None
    }
}

/// Reads the 2-D dataset `ds` as float64, converting from any numeric type, in a few library
/// calls (readers of point clouds and clusters call it once per event). A claimed shape of more
/// than 2^28 elements is an error, as is any other rank.
pub fn read_f64_matrix(ds: &Dataset) -> hdf5::Result<ndarray::Array2<f64>> {
    crate::h5fast::read_2d(ds)
}

/// Creates a group without modification-time tracking.
pub fn create_group(parent: &Group, name: &str) -> hdf5::Result<Group> {
    parent
        .create_group_builder()
        .obj_track_times(false)
        .create_intermediate_group(false)
        .create(name)
}

/// A dataset builder without modification-time tracking (hdf5-metno's default too, but stated
/// here so that a change of default cannot make files irreproducible).
pub fn dataset_builder(parent: &Group) -> hdf5::DatasetBuilder {
    parent.new_dataset_builder().obj_track_times(false)
}

/// Writes a scalar attribute of type `T`.
pub fn write_attr<T: H5Type>(loc: &Location, name: &str, value: &T) -> hdf5::Result<()> {
    loc.new_attr::<T>().create(name)?.write_scalar(value)
}

/// Writes a scalar variable-length UTF-8 string attribute (what h5py and the merger write).
pub fn write_string_attr(loc: &Location, name: &str, value: &str) -> hdf5::Result<()> {
    let v = VarLenUnicode::from_str(value)
        .map_err(|e| hdf5::Error::from(format!("string attribute '{name}': {e}")))?;
    write_attr(loc, name, &v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `attr_number` reads a plain number of any type quickly and everything else the long way:
    /// the values and the error texts are those of the long way alone.
    #[test]
    fn numeric_attributes_of_every_shape_and_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attrs.h5");
        let f = hdf5::File::create(&path).unwrap();
        write_attr(&f, "i32", &-7i32).unwrap();
        write_attr(&f, "u16", &9u16).unwrap();
        write_attr(&f, "f32", &0.5f32).unwrap();
        f.new_attr::<i64>()
            .shape(1)
            .create("one_of_array")
            .unwrap()
            .write(&[42i64])
            .unwrap();
        f.new_attr::<f64>()
            .shape((1, 1))
            .create("one_of_matrix")
            .unwrap()
            .write(&ndarray::arr2(&[[1.5f64]]))
            .unwrap();
        f.new_attr::<i64>()
            .shape(2)
            .create("two")
            .unwrap()
            .write(&[1i64, 2])
            .unwrap();
        write_string_attr(&f, "text", "x").unwrap();

        assert_eq!(attr_number(&f, "absent").unwrap(), (None));
        assert_eq!(
            attr_number(&f, "i32").unwrap(),
            (Some(AttrNumber::Signed(-7)))
        );
        assert_eq!(
            attr_number(&f, "u16").unwrap(),
            (Some(AttrNumber::Unsigned(9)))
        );
        assert_eq!(
            attr_number(&f, "f32").unwrap(),
            (Some(AttrNumber::Float(0.5)))
        );
        assert_eq!(
            attr_number(&f, "one_of_array").unwrap(),
            (Some(AttrNumber::Signed(42)))
        );
        assert_eq!(
            attr_number(&f, "one_of_matrix").unwrap(),
            (Some(AttrNumber::Float(1.5)))
        );
        let two = attr_number(&f, "two").unwrap_err().to_string();
        assert!(
            two.contains("should hold one value, it has shape [2]"),
            "{two}"
        );
        let text = attr_number(&f, "text").unwrap_err().to_string();
        assert!(text.contains("should be a number"), "{text}");
        assert_eq!(attr_i64(&f, "u16").unwrap(), (Some(9)));
        assert_eq!(attr_f64(&f, "i32").unwrap(), (Some(-7.0)));
    }
}
