//! The fast path for the many small HDF5 objects of the default artifacts (groups, scalar
//! attributes, small 2-D float64 datasets), used by the point-cloud and cluster writers and
//! readers.
//!
//! Through hdf5-metno every scalar attribute is about a dozen library calls: a datatype, a
//! dataspace and a property list created and closed, and every handle's type checked again when
//! it is dropped. A Cluster artifact of 2000 events holds some 20 000 attributes and 10 000
//! groups and datasets, and those extra calls were half the time of writing it and of merging
//! chunks. Here the scalar dataspace and the property lists are made once per [`Maker`], and an
//! attribute is one create, one write and one close. The objects are the ones hdf5-metno makes
//! (the same property lists and in-file types), so files keep their exact bytes (a test
//! compares).
//!
//! This module is the only place in spyral-data that calls libhdf5 directly (`unsafe` FFI).
//! Every call runs under hdf5-metno's library lock (`hdf5::sync::sync`), as hdf5-metno's own calls
//! do, every identifier it opens is owned by one [`Id`] that releases it once, and every
//! buffer handed to the library is sized from the dataspace the library reports.

use crate::attpc::h5util::AttrNumber;
use hdf5_sys::h5::HADDR_UNDEF;
use hdf5_sys::h5::{H5_index_t, H5_iter_order_t};
use hdf5_sys::h5a::{H5Acreate2, H5Aexists, H5Aget_space, H5Aget_type, H5Aopen, H5Aread, H5Awrite};
use hdf5_sys::h5d::{
    H5D_fill_time_t, H5Dcreate2, H5Dget_offset, H5Dget_space, H5Dget_type, H5Dopen2, H5Dread,
    H5Dwrite,
};
use hdf5_sys::h5g::{H5Gcreate2, H5Gopen2};
use hdf5_sys::h5i::{hid_t, H5Idec_ref};
use hdf5_sys::h5l::{H5L_info_t, H5L_type_t, H5Literate};
use hdf5_sys::h5p::{
    H5Pcreate, H5Pset_char_encoding, H5Pset_chunk, H5Pset_fill_time, H5Pset_obj_track_times,
    H5P_CLS_ATTRIBUTE_CREATE, H5P_CLS_DATASET_CREATE, H5P_CLS_GROUP_CREATE, H5P_DEFAULT,
};
use hdf5_sys::h5s::{
    H5S_class_t, H5Screate, H5Screate_simple, H5Sget_simple_extent_dims,
    H5Sget_simple_extent_ndims, H5Sget_simple_extent_npoints, H5Sget_simple_extent_type, H5S_ALL,
};
use hdf5_sys::h5t::{
    H5T_class_t, H5T_cset_t, H5T_sign_t, H5Tget_class, H5Tget_sign, H5Tget_size, H5T_NATIVE_DOUBLE,
    H5T_NATIVE_INT64, H5T_NATIVE_SHORT, H5T_NATIVE_UINT64, H5T_NATIVE_USHORT,
};
use ndarray::Array2;
use std::ffi::{c_char, c_void, CStr, CString};

/// The most elements a 2-D dataset read here may claim (2^28 float64, 2 GiB): a point cloud or
/// a cluster is at most a few hundred thousand values, and a corrupt header must not make the
/// reader allocate without bound.
pub const MAX_READ_ELEMENTS: usize = 1 << 28;

/// A library return value that is negative on failure (identifiers, statuses, counts).
trait Status: Copy {
    fn failed(self) -> bool;
}
impl Status for i64 {
    fn failed(self) -> bool {
        self < 0
    }
}
impl Status for i32 {
    fn failed(self) -> bool {
        self < 0
    }
}

/// Runs `f` under hdf5-metno's library lock and turns a negative identifier or status into the
/// library's error (its message stack, read under the same lock).
fn call<T: Status>(f: impl FnOnce() -> T) -> hdf5::Result<T> {
    hdf5::sync::sync(|| {
        let v = f();
        if v.failed() {
            Err(hdf5::Error::query().unwrap_or_else(|e| e))
        } else {
            Ok(v)
        }
    })
}

/// An HDF5 identifier opened here, released (closed) when dropped.
#[derive(Debug)]
pub struct Id(hid_t);

impl Id {
    /// Takes ownership of `id` from a call that returned it, or the library's error.
    fn own(f: impl FnOnce() -> hid_t) -> hdf5::Result<Id> {
        call(f).map(Id)
    }
}

impl Drop for Id {
    fn drop(&mut self) {
        // SAFETY: `self.0` is an identifier this `Id` owns (a successful open or create); it is
        // released exactly once, here, under the library lock.
        #[allow(unsafe_code)]
        hdf5::sync::sync(|| unsafe {
            H5Idec_ref(self.0);
        });
    }
}

/// Anything standing for an open HDF5 location: an hdf5-metno object or an [`Id`].
pub trait Loc {
    /// The location's identifier, valid while `self` lives.
    fn hid(&self) -> hid_t;
}

impl Loc for Id {
    fn hid(&self) -> hid_t {
        self.0
    }
}

impl Loc for hdf5::Location {
    fn hid(&self) -> hid_t {
        self.id()
    }
}

impl Loc for hdf5::Group {
    fn hid(&self) -> hid_t {
        self.id()
    }
}

impl Loc for hdf5::Dataset {
    fn hid(&self) -> hid_t {
        self.id()
    }
}

/// A scalar type stored and read with its native in-memory type.
pub trait Scalar: Copy + Default {
    /// The native HDF5 type of `Self`.
    fn native() -> hid_t;
}

macro_rules! scalar {
    ($t:ty, $h:ident) => {
        impl Scalar for $t {
            fn native() -> hid_t {
                // One of the library's predefined types (hdf5-sys opens the library first).
                *$h
            }
        }
    };
}
scalar!(i64, H5T_NATIVE_INT64);
scalar!(u64, H5T_NATIVE_UINT64);
scalar!(f64, H5T_NATIVE_DOUBLE);
scalar!(i16, H5T_NATIVE_SHORT);
scalar!(u16, H5T_NATIVE_USHORT);

/// A 2-byte integer sample type (GET and SIS3300 traces), with its sign.
pub trait Sample: Scalar {
    /// Whether the type is signed.
    const SIGNED: bool;
}
impl Sample for i16 {
    const SIGNED: bool = true;
}
impl Sample for u16 {
    const SIGNED: bool = false;
}

fn cname(name: &str) -> hdf5::Result<CString> {
    CString::new(name).map_err(|_| hdf5::Error::from(format!("name {name:?} holds a NUL byte")))
}

/// Makes groups, scalar attributes and 2-D float64 datasets, with the property lists made once:
/// no modification times (files are byte-reproducible), UTF-8 attribute names (hdf5-metno's
/// default), and an empty dataset chunked by `[1, 1]` with fill values written at allocation,
/// as hdf5-metno stores one.
#[derive(Debug)]
pub struct Maker {
    scalar: Id,
    acpl: Id,
    gcpl: Id,
    dcpl: Id,
    dcpl_empty: Id,
}

impl Maker {
    /// Creates the shared dataspace and property lists.
    pub fn new() -> hdf5::Result<Maker> {
        // SAFETY: plain library calls on identifiers created here; each result is checked (a
        // negative identifier is an error) before it is used.
        #[allow(unsafe_code)]
        unsafe {
            let scalar = Id::own(|| H5Screate(H5S_class_t::H5S_SCALAR))?;
            let acpl = Id::own(|| H5Pcreate(*H5P_CLS_ATTRIBUTE_CREATE))?;
            call(|| H5Pset_char_encoding(acpl.0, H5T_cset_t::H5T_CSET_UTF8))?;
            let gcpl = Id::own(|| H5Pcreate(*H5P_CLS_GROUP_CREATE))?;
            call(|| H5Pset_obj_track_times(gcpl.0, 0))?;
            let dcpl = Id::own(|| H5Pcreate(*H5P_CLS_DATASET_CREATE))?;
            call(|| H5Pset_obj_track_times(dcpl.0, 0))?;
            let dcpl_empty = Id::own(|| H5Pcreate(*H5P_CLS_DATASET_CREATE))?;
            call(|| H5Pset_obj_track_times(dcpl_empty.0, 0))?;
            let unit = [1u64; 2];
            call(|| H5Pset_chunk(dcpl_empty.0, 2, unit.as_ptr()))?;
            call(|| H5Pset_fill_time(dcpl_empty.0, H5D_fill_time_t::H5D_FILL_TIME_ALLOC))?;
            Ok(Maker {
                scalar,
                acpl,
                gcpl,
                dcpl,
                dcpl_empty,
            })
        }
    }

    /// Creates group `name` in `parent`.
    pub fn group(&self, parent: &impl Loc, name: &str) -> hdf5::Result<Id> {
        let c = cname(name)?;
        // SAFETY: `parent` is open while borrowed, `c` is a NUL-terminated string alive for the
        // call, the property lists are owned by `self`.
        #[allow(unsafe_code)]
        Id::own(|| unsafe {
            H5Gcreate2(
                parent.hid(),
                c.as_ptr(),
                H5P_DEFAULT,
                self.gcpl.0,
                H5P_DEFAULT,
            )
        })
    }

    /// Writes the scalar attribute `name` of `loc`.
    pub fn attr<T: Scalar>(&self, loc: &impl Loc, name: &str, value: T) -> hdf5::Result<()> {
        let c = cname(name)?;
        // SAFETY: `loc` is open while borrowed; the attribute is created with the scalar
        // dataspace (one element) and written from `value`, one element of the type passed.
        #[allow(unsafe_code)]
        unsafe {
            let a = Id::own(|| {
                H5Acreate2(
                    loc.hid(),
                    c.as_ptr(),
                    T::native(),
                    self.scalar.0,
                    self.acpl.0,
                    H5P_DEFAULT,
                )
            })?;
            call(|| H5Awrite(a.0, T::native(), (&value as *const T).cast::<c_void>()))?;
        }
        Ok(())
    }

    /// Writes `value` as an attribute keeping its integer or float type.
    pub fn number(&self, loc: &impl Loc, name: &str, value: AttrNumber) -> hdf5::Result<()> {
        match value {
            AttrNumber::Signed(x) => self.attr(loc, name, x),
            AttrNumber::Unsigned(x) => self.attr(loc, name, x),
            AttrNumber::Float(x) => self.attr(loc, name, x),
        }
    }

    /// Creates dataset `name` in `parent` holding `data` (float64, contiguous, its shape).
    pub fn dataset(&self, parent: &impl Loc, name: &str, data: &Array2<f64>) -> hdf5::Result<Id> {
        let c = cname(name)?;
        let standard;
        let values: &[f64] = match data.as_slice() {
            Some(s) => s,
            None => {
                standard = data.as_standard_layout().into_owned();
                standard.as_slice().unwrap_or_default()
            }
        };
        let dims = [data.nrows() as u64, data.ncols() as u64];
        let dcpl = if values.is_empty() {
            &self.dcpl_empty
        } else {
            &self.dcpl
        };
        // SAFETY: `dims` has the 2 entries the rank says; `values` holds exactly rows x cols
        // float64 in row-major order (standard layout), which is what `H5S_ALL` over that
        // dataspace reads from memory; `parent` is open while borrowed.
        #[allow(unsafe_code)]
        unsafe {
            let space = Id::own(|| H5Screate_simple(2, dims.as_ptr(), std::ptr::null()))?;
            let ds = Id::own(|| {
                H5Dcreate2(
                    parent.hid(),
                    c.as_ptr(),
                    *H5T_NATIVE_DOUBLE,
                    space.0,
                    H5P_DEFAULT,
                    dcpl.0,
                    H5P_DEFAULT,
                )
            })?;
            if !values.is_empty() {
                call(|| {
                    H5Dwrite(
                        ds.0,
                        *H5T_NATIVE_DOUBLE,
                        H5S_ALL,
                        H5S_ALL,
                        H5P_DEFAULT,
                        values.as_ptr().cast::<c_void>(),
                    )
                })?;
            }
            Ok(ds)
        }
    }
}

/// Opens group `name` of `parent`.
pub fn open_group(parent: &impl Loc, name: &str) -> hdf5::Result<Id> {
    let c = cname(name)?;
    // SAFETY: `parent` is open while borrowed; `c` is alive for the call.
    #[allow(unsafe_code)]
    Id::own(|| unsafe { H5Gopen2(parent.hid(), c.as_ptr(), H5P_DEFAULT) })
}

/// Opens dataset `name` of `parent`.
pub fn open_dataset(parent: &impl Loc, name: &str) -> hdf5::Result<Id> {
    let c = cname(name)?;
    // SAFETY: as in `open_group`.
    #[allow(unsafe_code)]
    Id::own(|| unsafe { H5Dopen2(parent.hid(), c.as_ptr(), H5P_DEFAULT) })
}

/// Opens attribute `name` of `loc` and checks that it holds exactly one value.
fn open_scalar_attr(loc: &impl Loc, name: &str) -> hdf5::Result<Id> {
    let c = cname(name)?;
    // SAFETY: `loc` is open while borrowed; the identifiers are owned by `Id`s.
    #[allow(unsafe_code)]
    unsafe {
        let a = Id::own(|| H5Aopen(loc.hid(), c.as_ptr(), H5P_DEFAULT))?;
        let space = Id::own(|| H5Aget_space(a.0))?;
        let n = call(|| H5Sget_simple_extent_npoints(space.0))?;
        if n != 1 {
            return Err(format!("attribute '{name}' holds {n} values, not one").into());
        }
        Ok(a)
    }
}

/// How a stored number reads: the kinds of [`AttrNumber`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Signed,
    Unsigned,
    Float,
}

/// The kind of the stored type `ty`, for an integer of 1, 2, 4 or 8 bytes or a float of 4 or 8
/// bytes (the types hdf5-metno reads); `None` for anything else, a damaged header's type of
/// megabytes included (the library would allocate conversion buffers for it).
fn number_kind(ty: &Id) -> Option<Kind> {
    // SAFETY: queries on a type identifier owned by `ty`.
    #[allow(unsafe_code)]
    hdf5::sync::sync(|| unsafe {
        let size = H5Tget_size(ty.0);
        match H5Tget_class(ty.0) {
            H5T_class_t::H5T_INTEGER if matches!(size, 1 | 2 | 4 | 8) => {
                Some(if H5Tget_sign(ty.0) == H5T_sign_t::H5T_SGN_NONE {
                    Kind::Unsigned
                } else {
                    Kind::Signed
                })
            }
            H5T_class_t::H5T_FLOAT if matches!(size, 4 | 8) => Some(Kind::Float),
            _ => None,
        }
    })
}

/// The error for a value that is not a plain number.
fn not_a_number(what: &str) -> hdf5::Error {
    hdf5::Error::from(format!(
        "{what} is not a number (an integer of 1 to 8 bytes or a float of 4 or 8 bytes)"
    ))
}

/// Opens the one-value attribute `name` of `loc` and says what kind of number it stores (an
/// error when it is not a plain number).
fn open_number(loc: &impl Loc, name: &str) -> hdf5::Result<(Id, Kind)> {
    let a = open_scalar_attr(loc, name)?;
    // SAFETY: a type query on an open attribute; the type identifier is owned by an `Id`.
    #[allow(unsafe_code)]
    let ty = Id::own(|| unsafe { H5Aget_type(a.0) })?;
    let kind = number_kind(&ty).ok_or_else(|| not_a_number(&format!("attribute '{name}'")))?;
    Ok((a, kind))
}

/// Reads the value of a one-value numeric attribute opened by [`open_number`] as `T`.
fn read_value<T: Scalar>(a: &Id) -> hdf5::Result<T> {
    let mut v = T::default();
    // SAFETY: the attribute holds one element (checked when opened), read into one `T` of the
    // memory type passed.
    #[allow(unsafe_code)]
    call(|| unsafe { H5Aread(a.0, T::native(), (&mut v as *mut T).cast::<c_void>()) })?;
    Ok(v)
}

/// Reads the one-value attribute `name` of `loc` as `T`, converting from any integer or float
/// type as hdf5-metno's reads do.
pub fn read_attr<T: Scalar>(loc: &impl Loc, name: &str) -> hdf5::Result<T> {
    let (a, _) = open_number(loc, name)?;
    read_value(&a)
}

/// Reads the one-value attribute `name` of `loc` keeping its kind: signed, unsigned or float.
pub fn read_number(loc: &impl Loc, name: &str) -> hdf5::Result<AttrNumber> {
    let (a, kind) = open_number(loc, name)?;
    Ok(match kind {
        Kind::Unsigned => AttrNumber::Unsigned(read_value(&a)?),
        Kind::Signed => AttrNumber::Signed(read_value(&a)?),
        Kind::Float => AttrNumber::Float(read_value(&a)?),
    })
}

/// What [`quick_number`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quick {
    /// No attribute of that name.
    Absent,
    /// One integer or float value, as stored.
    Number(AttrNumber),
    /// Anything else (several values, a string, a library error): the caller's tolerant path
    /// looks again and says what is wrong.
    Other,
}

/// A quick read of the one-value numeric attribute `name` of `loc` (scalar or one-element
/// array, any integer or float type), for readers that accept whatever a producer wrote and
/// read it often (the trace reader, the clustering's cloud attributes).
pub fn quick_number(loc: &impl Loc, name: &str) -> Quick {
    let Ok(c) = cname(name) else {
        return Quick::Other;
    };
    // SAFETY: `loc` is open while borrowed and `c` is alive for the call.
    #[allow(unsafe_code)]
    match call(|| unsafe { H5Aexists(loc.hid(), c.as_ptr()) }) {
        Ok(0) => Quick::Absent,
        Ok(_) => read_number(loc, name).map_or(Quick::Other, Quick::Number),
        Err(_) => Quick::Other,
    }
}

/// The names of the hard links of the group `loc` (objects stored in this file), in the
/// group's native order, and the number of its other links (soft, external), which readers of
/// untrusted files do not follow: one pass over its links that reads only each link's kind,
/// never the objects they point to.
pub fn hard_links(loc: &impl Loc) -> hdf5::Result<(Vec<String>, usize)> {
    /// Called by the library once per link, never concurrently; `data` is the pair below.
    #[allow(unsafe_code)]
    unsafe extern "C" fn collect(
        _group: hid_t,
        name: *const c_char,
        info: *const H5L_info_t,
        data: *mut c_void,
    ) -> i32 {
        // SAFETY: `data` is the `&mut (Vec<String>, usize)` passed to `H5Literate`, alive for
        // the whole iteration and only touched here; `name` is a NUL-terminated string and
        // `info` a link info, both valid during the call (checked for null).
        let ((names, others), info) = unsafe {
            match (data.cast::<(Vec<String>, usize)>().as_mut(), info.as_ref()) {
                (Some(d), Some(i)) if !name.is_null() => (d, i),
                _ => return -1,
            }
        };
        if info.type_ == H5L_type_t::H5L_TYPE_HARD {
            // SAFETY: checked non-null above; the library passes a NUL-terminated name.
            let name = unsafe { CStr::from_ptr(name) };
            names.push(name.to_string_lossy().into_owned());
        } else {
            *others += 1;
        }
        0
    }
    let mut found: (Vec<String>, usize) = (Vec::new(), 0);
    // SAFETY: `loc` is open while borrowed; the callback above matches the library's link
    // iteration callback and receives a pointer to `found`, which outlives the call.
    #[allow(unsafe_code)]
    call(|| unsafe {
        H5Literate(
            loc.hid(),
            H5_index_t::H5_INDEX_NAME,
            H5_iter_order_t::H5_ITER_NATIVE,
            std::ptr::null_mut(),
            Some(collect),
            (&mut found as *mut (Vec<String>, usize)).cast::<c_void>(),
        )
    })?;
    Ok(found)
}

/// A whole dataset read by [`quick_samples`]: its dimensions (rank 1 or 2) and its values in
/// row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples<T> {
    /// The dimensions.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub values: Vec<T>,
}

/// A quick read of the whole dataset `ds` in its plain case: 2-byte integers of `T`'s sign,
/// stored contiguously in the file itself (one block at a known address: not chunked, compact,
/// virtual or in external files, and allocated), a 1-D or 2-D dataspace of at most
/// `max_elements` elements. Anything else is `None`, and the caller reads the long way, which
/// checks every property and says what is wrong. This is the trace reader's path for every
/// event's GET and SIS3300 matrices: a handful of library calls instead of the dozens the
/// checked path makes (property-list copies, type descriptors).
pub fn quick_samples<T: Sample>(ds: &impl Loc, max_elements: usize) -> Option<Samples<T>> {
    // SAFETY: every identifier opened here is owned by an `Id`; the rank is checked to be 1 or
    // 2 before at most two dimensions are copied out; the buffer holds exactly the dataspace's
    // element count of `T`, which is what `H5S_ALL` writes into memory of `T`'s native type.
    #[allow(unsafe_code)]
    hdf5::sync::sync(|| unsafe {
        // Not contiguous, not allocated, or in external files: no single address.
        if H5Dget_offset(ds.hid()) == HADDR_UNDEF {
            return None;
        }
        let ty = Id::own(|| H5Dget_type(ds.hid())).ok()?;
        let plain = H5Tget_class(ty.0) == H5T_class_t::H5T_INTEGER
            && H5Tget_size(ty.0) == 2
            && (H5Tget_sign(ty.0) != H5T_sign_t::H5T_SGN_NONE) == T::SIGNED;
        if !plain {
            return None;
        }
        let space = Id::own(|| H5Dget_space(ds.hid())).ok()?;
        if H5Sget_simple_extent_type(space.0) != H5S_class_t::H5S_SIMPLE {
            return None;
        }
        let rank = H5Sget_simple_extent_ndims(space.0);
        if !(1..=2).contains(&rank) {
            return None;
        }
        let mut raw = [0u64; 2];
        if H5Sget_simple_extent_dims(space.0, raw.as_mut_ptr(), std::ptr::null_mut()) != rank {
            return None;
        }
        let dims: Vec<usize> = raw[..rank as usize]
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect::<Option<_>>()?;
        let n = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= max_elements)?;
        let mut values = vec![T::default(); n];
        if n > 0
            && H5Dread(
                ds.hid(),
                T::native(),
                H5S_ALL,
                H5S_ALL,
                H5P_DEFAULT,
                values.as_mut_ptr().cast::<c_void>(),
            ) < 0
        {
            return None;
        }
        Some(Samples { dims, values })
    })
}

/// Reads the 2-D dataset `ds` as float64 (converted by the library from any integer or float
/// type of a standard size), refusing a claimed shape over [`MAX_READ_ELEMENTS`] elements.
pub fn read_2d(ds: &impl Loc) -> hdf5::Result<Array2<f64>> {
    // SAFETY: the dataspace is queried for its rank before its dimensions are copied into a
    // 2-entry array; the buffer is allocated for exactly rows x cols float64, which is what
    // `H5S_ALL` over that dataspace writes into memory of the native double type.
    #[allow(unsafe_code)]
    unsafe {
        let ty = Id::own(|| H5Dget_type(ds.hid()))?;
        if number_kind(&ty).is_none() {
            return Err(not_a_number("the dataset's element type"));
        }
        let space = Id::own(|| H5Dget_space(ds.hid()))?;
        let rank = call(|| H5Sget_simple_extent_ndims(space.0))?;
        if rank != 2 {
            return Err(format!("the dataset has {rank} dimensions, not 2").into());
        }
        let mut dims = [0u64; 2];
        call(|| H5Sget_simple_extent_dims(space.0, dims.as_mut_ptr(), std::ptr::null_mut()))?;
        let (rows, cols) = (
            usize::try_from(dims[0]).unwrap_or(usize::MAX),
            usize::try_from(dims[1]).unwrap_or(usize::MAX),
        );
        let n = rows
            .checked_mul(cols)
            .filter(|&n| n <= MAX_READ_ELEMENTS)
            .ok_or_else(|| {
                hdf5::Error::from(format!(
                    "the dataset claims shape [{rows}, {cols}], more than the \
                     {MAX_READ_ELEMENTS} elements a reader accepts (a corrupt header?)"
                ))
            })?;
        let mut values = vec![0f64; n];
        if n > 0 {
            call(|| {
                H5Dread(
                    ds.hid(),
                    *H5T_NATIVE_DOUBLE,
                    H5S_ALL,
                    H5S_ALL,
                    H5P_DEFAULT,
                    values.as_mut_ptr().cast::<c_void>(),
                )
            })?;
        }
        Array2::from_shape_vec((rows, cols), values)
            .map_err(|e| hdf5::Error::from(format!("the dataset's shape: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attpc::h5util;
    use ndarray::{array, Array2, ShapeBuilder};

    fn file(path: &std::path::Path) -> hdf5::File {
        hdf5::File::with_options()
            .with_fcpl(|p| p.obj_track_times(false))
            .create(path)
            .unwrap()
    }

    /// The same objects through hdf5-metno and through the fast path give the same bytes: a
    /// group, attributes of every kind, a dataset with rows, an empty one, one from a
    /// column-major array.
    #[test]
    fn the_fast_path_writes_the_bytes_hdf5_metno_writes() {
        let dir = tempfile::tempdir().unwrap();
        let rows = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let empty = Array2::<f64>::zeros((0, 8));
        let mut fortran = Array2::<f64>::zeros((3, 2).f());
        fortran.assign(&array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);

        let slow = dir.path().join("slow.h5");
        {
            let f = file(&slow);
            let g = h5util::create_group(&f, "event_7").unwrap();
            h5util::write_attr(&g, "signed", &-3i64).unwrap();
            h5util::write_attr(&g, "unsigned", &5u64).unwrap();
            h5util::write_attr(&g, "float", &0.25f64).unwrap();
            for (name, data) in [("rows", &rows), ("empty", &empty), ("fortran", &fortran)] {
                let ds = h5util::dataset_builder(&g)
                    .with_data(&data.as_standard_layout())
                    .create(name)
                    .unwrap();
                h5util::write_attr(&ds, "label", &1i64).unwrap();
            }
        }
        let fast = dir.path().join("fast.h5");
        {
            let f = file(&fast);
            let make = Maker::new().unwrap();
            let g = make.group(&*f, "event_7").unwrap();
            make.number(&g, "signed", AttrNumber::Signed(-3)).unwrap();
            make.number(&g, "unsigned", AttrNumber::Unsigned(5))
                .unwrap();
            make.number(&g, "float", AttrNumber::Float(0.25)).unwrap();
            for (name, data) in [("rows", &rows), ("empty", &empty), ("fortran", &fortran)] {
                let ds = make.dataset(&g, name, data).unwrap();
                make.attr(&ds, "label", 1i64).unwrap();
            }
        }
        assert_eq!(std::fs::read(&slow).unwrap(), std::fs::read(&fast).unwrap());

        // And it reads back what it wrote, keeping each attribute's kind.
        let f = hdf5::File::open(&fast).unwrap();
        let g = open_group(&*f, "event_7").unwrap();
        assert_eq!(read_number(&g, "signed").unwrap(), AttrNumber::Signed(-3));
        assert_eq!(
            read_number(&g, "unsigned").unwrap(),
            AttrNumber::Unsigned(5)
        );
        assert_eq!(read_number(&g, "float").unwrap(), AttrNumber::Float(0.25));
        assert_eq!(read_attr::<f64>(&g, "signed").unwrap(), -3.0);
        assert_eq!(
            quick_number(&g, "unsigned"),
            Quick::Number(AttrNumber::Unsigned(5))
        );
        for (name, data) in [("rows", &rows), ("empty", &empty), ("fortran", &fortran)] {
            let ds = open_dataset(&g, name).unwrap();
            assert_eq!(&read_2d(&ds).unwrap(), data, "{name}");
            assert_eq!(read_attr::<i64>(&ds, "label").unwrap(), 1);
        }
    }

    /// A file beside `path` with a scalar attribute and a 2 x 2 dataset `wide` of 16-byte floats.
    fn odd_sized(path: &std::path::Path) -> std::path::PathBuf {
        use hdf5_sys::h5t::H5T_NATIVE_LDOUBLE;
        let odd = path.with_extension("odd.h5");
        let f = file(&odd);
        let make = Maker::new().unwrap();
        let root: &hdf5::Location = &f;
        let c = cname("wide").unwrap();
        let bytes = [0u8; 64];
        let dims = [2u64, 2];
        // SAFETY: the attribute has one element and the dataset four, of 16 bytes each (the
        // native long double of x86-64), written from a 64-byte buffer.
        #[allow(unsafe_code)]
        unsafe {
            let ty = *H5T_NATIVE_LDOUBLE;
            assert_eq!(hdf5::sync::sync(|| H5Tget_size(ty)), 16);
            let a = Id::own(|| {
                H5Acreate2(
                    root.hid(),
                    c.as_ptr(),
                    ty,
                    make.scalar.0,
                    H5P_DEFAULT,
                    H5P_DEFAULT,
                )
            })
            .unwrap();
            call(|| H5Awrite(a.0, ty, bytes.as_ptr().cast())).unwrap();
            let space = Id::own(|| H5Screate_simple(2, dims.as_ptr(), std::ptr::null())).unwrap();
            let ds = Id::own(|| {
                H5Dcreate2(
                    root.hid(),
                    c.as_ptr(),
                    ty,
                    space.0,
                    H5P_DEFAULT,
                    H5P_DEFAULT,
                    H5P_DEFAULT,
                )
            })
            .unwrap();
            call(|| {
                H5Dwrite(
                    ds.0,
                    ty,
                    H5S_ALL,
                    H5S_ALL,
                    H5P_DEFAULT,
                    bytes.as_ptr().cast(),
                )
            })
            .unwrap();
        }
        odd
    }

    /// Missing objects, wrong shapes and a header claiming a huge dataset are errors with the
    /// library's or our message, never a panic or an unbounded allocation.
    #[test]
    fn bad_objects_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.h5");
        {
            let f = file(&path);
            f.new_attr::<i64>()
                .shape(3)
                .create("three")
                .unwrap()
                .write(&[1i64, 2, 3])
                .unwrap();
            h5util::write_string_attr(&f, "text", "x").unwrap();
            f.new_dataset::<f64>().shape(4).create("flat").unwrap();
            // 2^29 elements claimed, nothing stored (allocated late, never written).
            f.new_dataset::<f64>()
                .shape((1 << 20, 1 << 9))
                .create("huge")
                .unwrap();
        }
        let f = hdf5::File::open(&path).unwrap();
        let root: &hdf5::Location = &f;
        assert!(open_group(root, "nothing").is_err());
        assert!(open_dataset(root, "nothing").is_err());
        assert!(read_attr::<i64>(root, "nothing").is_err());
        let three = read_attr::<i64>(root, "three").unwrap_err().to_string();
        assert!(three.contains("holds 3 values"), "{three}");
        let text = read_number(root, "text").unwrap_err().to_string();
        assert!(text.contains("not a number"), "{text}");
        let flat = read_2d(&open_dataset(root, "flat").unwrap())
            .unwrap_err()
            .to_string();
        assert!(flat.contains("1 dimensions"), "{flat}");
        let huge = read_2d(&open_dataset(root, "huge").unwrap())
            .unwrap_err()
            .to_string();
        assert!(huge.contains("claims shape [1048576, 512]"), "{huge}");
        assert!(Maker::new().unwrap().group(root, "a\0b").is_err());
        assert_eq!(quick_number(root, "nothing"), Quick::Absent);
        assert_eq!(quick_number(root, "three"), Quick::Other);
        assert_eq!(quick_number(root, "text"), Quick::Other);
        // A number type of an unusual size (16-byte floats here; a damaged header can claim
        // megabytes) is refused before anything is read or converted.
        let odd = odd_sized(&path);
        let f = hdf5::File::open(&odd).unwrap();
        let root: &hdf5::Location = &f;
        let e = read_number(root, "wide").unwrap_err().to_string();
        assert!(
            e.contains("is not a number (an integer of 1 to 8 bytes"),
            "{e}"
        );
        assert!(read_attr::<f64>(root, "wide").is_err());
        assert_eq!(quick_number(root, "wide"), Quick::Other);
        let e = read_2d(&open_dataset(root, "wide").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("element type is not a number"), "{e}");
    }

    /// The quick read gives what hdf5-metno reads for the plain case, and declines everything
    /// else (chunked, another width or sign, a scalar, too many elements), leaving it to the
    /// checked path.
    #[test]
    fn quick_samples_reads_the_plain_case_and_declines_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.h5");
        let f = file(&path);
        let pads = ndarray::Array2::from_shape_fn((3, 5), |(i, j)| (i * 7) as i16 - j as i16);
        f.new_dataset_builder()
            .with_data(&pads)
            .create("pads")
            .unwrap();
        f.new_dataset_builder()
            .with_data(&pads)
            .chunk((1, 5))
            .create("chunked")
            .unwrap();
        f.new_dataset_builder()
            .with_data(&pads.mapv(i32::from))
            .create("wide")
            .unwrap();
        let words = ndarray::arr1(&[7u16, 9, 11]);
        f.new_dataset_builder()
            .with_data(&words)
            .create("words")
            .unwrap();
        f.new_dataset_builder()
            .with_data(&ndarray::arr0(5u16))
            .create("scalar")
            .unwrap();
        f.new_dataset_builder()
            .with_data(&Array2::<i16>::zeros((0, 5)))
            .create("empty")
            .unwrap();

        let read = |name: &str| f.dataset(name).unwrap();
        let quick = quick_samples::<i16>(&read("pads"), 100).unwrap();
        assert_eq!(quick.dims, [3, 5]);
        assert_eq!(quick.values, read("pads").read_raw::<i16>().unwrap());
        let quick = quick_samples::<u16>(&read("words"), 100).unwrap();
        assert_eq!((quick.dims, quick.values), (vec![3], vec![7, 9, 11]));
        // An empty matrix may be stored without an address (then the checked path reads it).
        if let Some(q) = quick_samples::<i16>(&read("empty"), 100) {
            assert_eq!((q.dims, q.values.len()), (vec![0, 5], 0));
        }
        assert_eq!(quick_samples::<i16>(&read("chunked"), 100), None);
        assert_eq!(quick_samples::<i16>(&read("wide"), 100), None);
        assert_eq!(quick_samples::<u16>(&read("pads"), 100), None);
        assert_eq!(quick_samples::<u16>(&read("scalar"), 100), None);
        assert_eq!(quick_samples::<i16>(&read("pads"), 14), None);
    }

    /// Only hard links are listed; soft and external links are counted, not followed.
    #[test]
    fn hard_links_lists_hard_links_and_counts_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir.path().join("links.h5"));
        let g = f.create_group("event_1").unwrap();
        g.create_group("get").unwrap();
        g.new_dataset::<u16>().shape(2).create("977").unwrap();
        g.link_soft("/event_1/get", "soft").unwrap();
        g.link_external("other.h5", "/x", "external").unwrap();
        let (mut names, others) = hard_links(&g).unwrap();
        names.sort();
        assert_eq!((names, others), (vec!["977".to_string(), "get".into()], 2));
        let (names, others) = hard_links(&f.create_group("empty").unwrap()).unwrap();
        assert!(names.is_empty() && others == 0);
    }
}
